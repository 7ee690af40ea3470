/**
 * A node's durable storage: the data directory with its lock, the WAL (`wal/`) and the snapshot
 * files (`snap/`). `open()` recovers what the Raft core needs to restart; `persist()` makes one
 * Ready durable; `saveSnapshot()` writes a snapshot and frees the WAL segments and older
 * snapshots it makes unnecessary.
 *
 * Recovery picks the newest snapshot file that verifies and that the WAL continues (the WAL
 * holds that snapshot's last entry with the same term, or was reset to it). A damaged newest
 * snapshot falls back to an older one when the WAL still covers the gap; otherwise start-up
 * stops with an error that names the files. Two snapshots are kept, and WAL segments are only
 * deleted once the older of the two covers them, so that fallback usually works.
 */
import { join } from "@std/path";
import type { Entry, HardState, Ready, SnapshotMeta } from "../raft/types.ts";
import type { FrozenView } from "../kv/store.ts";
import { type DataDirLock, lockDataDir } from "./lock.ts";
import { SnapshotCorruptError, SnapshotStore } from "./snapshots.ts";
import { Wal, type WalState } from "./wal.ts";

export { DataDirLockedError } from "./lock.ts";
export { SnapshotCorruptError } from "./snapshots.ts";
export { WalCorruptError } from "./wal.ts";

export interface StorageOptions {
  dataDir: string;
  /** Roll to a new WAL segment at this size. */
  segmentBytes: number;
  /** Snapshot files kept (at least 1; 2 allows falling back from a damaged newest one). */
  snapshotsKept?: number;
  /** Warnings: torn tails cut off, damaged snapshots skipped. */
  log?: (msg: string) => void;
  /** Routine news: old snapshots deleted. */
  info?: (msg: string) => void;
}

export interface Recovered {
  hardState: HardState;
  snapshot: SnapshotMeta | null;
  /** The content of `snapshot`, for the state machine. */
  state: Map<string, string> | null;
  /** Entries after the snapshot, contiguous. */
  entries: Entry[];
}

export class RecoveryError extends Error {
  override name = "RecoveryError";
}

export class DiskStorage {
  private constructor(
    readonly dataDir: string,
    private readonly lock: DataDirLock,
    readonly wal: Wal,
    readonly snapshots: SnapshotStore,
    private readonly opts: StorageOptions,
  ) {}

  static async open(opts: StorageOptions): Promise<{ storage: DiskStorage; recovered: Recovered }> {
    const log = opts.log ?? (() => {});
    const lock = await lockDataDir(opts.dataDir);
    try {
      const snapshots = await SnapshotStore.open(join(opts.dataDir, "snap"), opts.info ?? log);
      const { wal, state } = await Wal.open(join(opts.dataDir, "wal"), {
        segmentBytes: opts.segmentBytes,
        log,
      });
      const storage = new DiskStorage(opts.dataDir, lock, wal, snapshots, opts);
      const recovered = await storage.recover(state, log);
      return { storage, recovered };
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  private async recover(w: WalState, log: (m: string) => void): Promise<Recovered> {
    const last = w.base.index + w.entries.length;
    const termAt = (i: number) =>
      i === w.base.index ? w.base.term : w.entries[i - w.base.index - 1]?.term;
    const damaged: string[] = [];
    for (const s of await this.snapshots.list()) {
      let meta: SnapshotMeta, state: Map<string, string>;
      try {
        ({ meta, state } = await this.snapshots.load(s.path));
      } catch (err) {
        if (!(err instanceof SnapshotCorruptError)) throw err;
        log(`${err.message}; trying an older snapshot`);
        damaged.push(err.message);
        continue;
      }
      let entries: Entry[];
      let rebase = false;
      if (meta.index > last) {
        entries = []; // the whole WAL log is older than the snapshot
        rebase = true;
      } else if (meta.index < w.base.index) {
        throw new RecoveryError(
          `cannot recover ${this.dataDir}: snapshot ${s.path} ends at ${meta.index} but the WAL ` +
            `only holds entries after ${w.base.index}` +
            (damaged.length ? `; newer snapshots are damaged: ${damaged.join("; ")}` : ""),
        );
      } else if (termAt(meta.index) === meta.term) {
        entries = w.entries.slice(meta.index - w.base.index);
      } else {
        // Left by a crash between installing a leader's snapshot and recording it in the WAL:
        // the WAL's entries after it belong to an older, conflicting log. None of them can have
        // been committed (a committed entry would match the snapshot's history).
        log(
          `WAL entries after ${meta.index} do not follow snapshot ${meta.term}/${meta.index}; ` +
            `discarding ${last - meta.index} of them`,
        );
        entries = [];
        rebase = true;
      }
      if (damaged.length > 0) log(`recovering from older snapshot ${s.path}`);
      if (rebase) {
        await this.wal.write({ reset: meta, entries: [], sync: true });
      }
      return {
        hardState: { ...w.hardState, commit: Math.max(w.hardState.commit, meta.index) },
        snapshot: meta,
        state,
        entries,
      };
    }
    if (w.base.index > 0) {
      throw new RecoveryError(
        `cannot recover ${this.dataDir}: the WAL starts after entry ${w.base.index} but no ` +
          `usable snapshot covers it` + (damaged.length ? ` (${damaged.join("; ")})` : ""),
      );
    }
    return { hardState: w.hardState, snapshot: null, state: null, entries: w.entries };
  }

  /**
   * Make the persistent part of a Ready durable: install a received snapshot (atomic rename),
   * then one WAL batch (reset, term/vote, entries, commit) with one sync if the Ready needs it.
   * `blocking` writes and syncs with blocking calls (see WalBatch.blocking).
   */
  async persist(rd: Ready, blocking = false): Promise<void> {
    if (rd.snapshot) await this.snapshots.install(rd.snapshot);
    if (!rd.snapshot && !rd.hardState && rd.entries.length === 0) return;
    await this.wal.write({
      reset: rd.snapshot ?? undefined,
      hardState: rd.hardState ?? undefined,
      entries: rd.entries,
      commit: rd.hardState?.commit,
      sync: rd.mustSync,
      blocking,
    });
    if (rd.snapshot) await this.releaseOld();
  }

  /** Write the frozen state as a snapshot file, then release what it makes unnecessary. */
  async saveSnapshot(
    view: FrozenView,
    voters: string[],
  ): Promise<{ meta: SnapshotMeta; bytes: number }> {
    const file = await this.snapshots.write(view, voters);
    await this.releaseOld();
    return { meta: file.meta, bytes: file.bytes };
  }

  private async releaseOld(): Promise<void> {
    const kept = await this.snapshots.retain(Math.max(1, this.opts.snapshotsKept ?? 2));
    if (kept.length === 0) return;
    await this.wal.releaseBelow(kept[kept.length - 1].index);
  }

  snapshotPath(meta: { index: number; term: number }): string {
    return this.snapshots.pathFor(meta);
  }

  receiveChunk(meta: SnapshotMeta, offset: number, data: Uint8Array): Promise<number> {
    return this.snapshots.receiveChunk(meta, offset, data);
  }

  finishReceive(meta: SnapshotMeta): Promise<Map<string, string>> {
    return this.snapshots.finishReceive(meta);
  }

  async loadSnapshot(meta: SnapshotMeta): Promise<Map<string, string>> {
    return (await this.snapshots.load(this.snapshots.pathFor(meta))).state;
  }

  /** Bytes on disk: WAL segments and snapshot files. */
  async diskUsage(): Promise<{ walBytes: number; walSegments: number; snapshotBytes: number }> {
    const ws = this.wal.stats();
    let snapshotBytes = 0;
    for (const s of await this.snapshots.list()) {
      try {
        snapshotBytes += (await Deno.stat(s.path)).size;
      } catch { /* deleted meanwhile */ }
    }
    return { walBytes: ws.bytes, walSegments: ws.segments, snapshotBytes };
  }

  close(): void {
    this.wal.close();
    this.lock.release();
  }
}
