/**
 * The key-value state machine: applies committed log entries in order, serves reads, and gives
 * point-in-time views for snapshots without stopping the world.
 *
 * Snapshot views: `freeze()` turns the current map into a read-only `base` and sends every later
 * write to an `overlay` (a value, or null for a deletion). The snapshot writer can walk `base`
 * at its own pace across many event-loop turns while the node keeps applying; `thaw()` folds the
 * overlay back in. The pause is O(1) to start and O(writes during the snapshot) to end.
 */
import { decodeCommand } from "./command.ts";
import { type Entry, EntryType, invariant } from "../raft/types.ts";

export interface ApplyResult {
  index: number;
  /** For deletions: whether the key existed. */
  deleted?: boolean;
  /** Set when the entry's command could not be decoded (it is skipped on every node alike). */
  error?: string;
}

export interface FrozenView {
  index: number;
  term: number;
  size: number;
  entries(): IterableIterator<[string, string]>;
}

export class KvStore {
  private base = new Map<string, string>();
  private overlay: Map<string, string | null> | null = null;
  private frozen: FrozenView | null = null;
  private count = 0;
  appliedIndex = 0;
  appliedTerm = 0;

  get size(): number {
    return this.count;
  }

  get(key: string): string | undefined {
    if (this.overlay !== null) {
      const v = this.overlay.get(key);
      if (v !== undefined) return v === null ? undefined : v;
    }
    return this.base.get(key);
  }

  /** Apply the next committed entry. Entries must arrive in strictly increasing index order. */
  apply(e: Entry): ApplyResult {
    invariant(
      e.index === this.appliedIndex + 1,
      () =>
        `apply of entry ${e.index} after ${this.appliedIndex}: entries must be applied in order`,
    );
    this.appliedIndex = e.index;
    this.appliedTerm = e.term;
    if (e.type === EntryType.Noop) return { index: e.index };
    let cmd;
    try {
      cmd = decodeCommand(e.data);
    } catch (err) {
      // Only bytes that passed the leader's validation reach the log, so this is unreachable in
      // practice; skipping is deterministic (every replica skips it) and never crashes a node.
      return { index: e.index, error: (err as Error).message };
    }
    if (cmd.op === "put") {
      this.put(cmd.key, cmd.value);
      return { index: e.index };
    }
    return { index: e.index, deleted: this.delete(cmd.key) };
  }

  private put(key: string, value: string): void {
    if (this.get(key) === undefined) this.count++;
    if (this.overlay !== null) this.overlay.set(key, value);
    else this.base.set(key, value);
  }

  private delete(key: string): boolean {
    if (this.get(key) === undefined) return false;
    this.count--;
    if (this.overlay !== null) this.overlay.set(key, null);
    else this.base.delete(key);
    return true;
  }

  /** Start a point-in-time view at the applied index. Call `thaw()` when done with it. */
  freeze(): FrozenView {
    invariant(this.overlay === null, "a snapshot view is already open");
    this.overlay = new Map();
    const base = this.base;
    this.frozen = {
      index: this.appliedIndex,
      term: this.appliedTerm,
      size: this.count,
      entries: () => base.entries(),
    };
    return this.frozen;
  }

  /** Close `view` and fold the writes made meanwhile into the live map. */
  thaw(view: FrozenView): void {
    const overlay = this.overlay;
    if (overlay === null || view !== this.frozen) return; // a restore replaced the state since
    this.frozen = null;
    for (const [k, v] of overlay) {
      if (v === null) this.base.delete(k);
      else this.base.set(k, v);
    }
    this.overlay = null;
  }

  /**
   * Replace the whole state by a snapshot's content (a Map is taken over, not copied). A view
   * that is still open keeps reading the old (immutable) base; its later `thaw()` does nothing.
   */
  restore(
    index: number,
    term: number,
    entries: Map<string, string> | Iterable<[string, string]>,
  ): void {
    this.overlay = null;
    this.frozen = null;
    this.base = entries instanceof Map ? entries : new Map(entries);
    this.count = this.base.size;
    this.appliedIndex = index;
    this.appliedTerm = term;
  }

  /** A sorted copy of the content, for tests and the simulator. */
  dump(): [string, string][] {
    const out: [string, string][] = [];
    for (const k of this.keys()) out.push([k, this.get(k)!]);
    return out;
  }

  private keys(): string[] {
    const ks = new Set(this.base.keys());
    if (this.overlay) { for (const [k, v] of this.overlay) v === null ? ks.delete(k) : ks.add(k); }
    return [...ks].sort();
  }
}
