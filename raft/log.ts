/**
 * The in-memory Raft log of one node: entries (base, last], where `base` is the index of the
 * last entry folded into a snapshot (0 when nothing was compacted) and `baseTerm` its term.
 *
 * It also tracks how far the log is durable (`stable`): entries (stable, last] have been
 * handed to storage or are waiting to be. Nothing here does I/O.
 */
import { type Entry, invariant } from "./types.ts";

export class RaftLog {
  /** entries[k] has index base + 1 + k. */
  private entries: Entry[] = [];
  private base = 0;
  private baseTerm = 0;
  /** Highest index durable in storage (and still part of this log). */
  stable = 0;

  /** Build a log from what storage recovered: a base (snapshot) and the entries after it. */
  static restore(base: number, baseTerm: number, entries: Entry[]): RaftLog {
    const log = new RaftLog();
    log.base = base;
    log.baseTerm = baseTerm;
    for (let k = 0; k < entries.length; k++) {
      invariant(
        entries[k].index === base + 1 + k,
        () => `restored entry ${entries[k].index} should have index ${base + 1 + k}`,
      );
    }
    log.entries = entries.slice();
    log.stable = log.lastIndex();
    return log;
  }

  firstIndex(): number {
    return this.base + 1;
  }

  lastIndex(): number {
    return this.base + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length > 0 ? this.entries[this.entries.length - 1].term : this.baseTerm;
  }

  baseIndex(): number {
    return this.base;
  }

  /** Term of entry `index`, or undefined if it was compacted away or is past the end. */
  term(index: number): number | undefined {
    if (index === this.base) return this.baseTerm;
    if (index < this.base || index > this.lastIndex()) return undefined;
    return this.entries[index - this.base - 1].term;
  }

  entry(index: number): Entry {
    invariant(
      index > this.base && index <= this.lastIndex(),
      () => `entry ${index} is outside the log (${this.base}, ${this.lastIndex()}]`,
    );
    return this.entries[index - this.base - 1];
  }

  /** True if the log holds an entry at `index` with `term` (index 0 always matches). */
  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /**
   * Entries [lo, hi) capped at `bytesMax` of data (at least one entry if any). The returned
   * array is fresh; the entries themselves are shared and must not be mutated.
   */
  slice(lo: number, hi: number, bytesMax = Infinity): Entry[] {
    invariant(lo > this.base, () => `slice from ${lo}: compacted up to ${this.base}`);
    hi = Math.min(hi, this.lastIndex() + 1);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.entries[i - this.base - 1];
      bytes += e.data.length + 32;
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(e);
    }
    return out;
  }

  /** Up-to-date check of §5.4.1: is (lastTerm, lastIndex) at least as new as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Leader-side append of new entries at the end. */
  append(entries: Entry[]): void {
    for (const e of entries) {
      invariant(
        e.index === this.lastIndex() + 1,
        () => `cannot append entry ${e.index}: log ends at ${this.lastIndex()}`,
      );
      this.entries.push(e);
    }
  }

  /**
   * Follower-side merge of an AppendEntries payload whose prev entry already matched:
   * skip entries we already hold, truncate at the first conflict (§5.3: "if an existing entry
   * conflicts with a new one, delete the existing entry and all that follow it"), append the
   * rest. Never truncates when there is no conflict (a stale, reordered append must not
   * remove entries a newer one added). Returns the index of the first truncated entry, or 0.
   */
  merge(entries: Entry[]): number {
    let k = 0;
    for (; k < entries.length; k++) {
      const e = entries[k];
      if (e.index <= this.base) continue; // already folded into our snapshot: committed, matches
      const t = this.term(e.index);
      if (t === undefined) break; // past our end: append from here
      if (t !== e.term) {
        this.truncateFrom(e.index);
        this.append(entries.slice(k));
        return e.index;
      }
    }
    if (k < entries.length) this.append(entries.slice(k));
    return 0;
  }

  /** Remove entries [index, last]. */
  truncateFrom(index: number): void {
    invariant(index > this.base, () => `cannot truncate at ${index}: compacted up to ${this.base}`);
    if (index > this.lastIndex()) return;
    this.entries.length = index - this.base - 1;
    if (this.stable >= index) this.stable = index - 1;
  }

  /** First index of the run of entries with the same term as entry `index` (for hints). */
  firstIndexOfTerm(index: number): number {
    const t = this.term(index);
    let i = index;
    while (i - 1 > this.base && this.term(i - 1) === t) i--;
    return i;
  }

  /** Last index whose term is `term`, or 0 if the log has no entry of that term. */
  lastIndexOfTerm(term: number): number {
    for (let i = this.lastIndex(); i > this.base; i--) {
      const t = this.entries[i - this.base - 1].term;
      if (t === term) return i;
      if (t < term) return 0;
    }
    return this.baseTerm === term ? this.base : 0;
  }

  /** Entries not yet handed to storage: (stable, last]. */
  unstable(): Entry[] {
    return this.stable >= this.lastIndex() ? [] : this.slice(this.stable + 1, this.lastIndex() + 1);
  }

  /** Storage made entries up to `index` (of `term`) durable. Ignored if they were replaced. */
  stableTo(index: number, term: number): void {
    if (index > this.stable && this.term(index) === term) this.stable = index;
  }

  /** Drop entries up to `index` (which must be covered by a snapshot). */
  compact(index: number): void {
    if (index <= this.base) return;
    invariant(
      index <= this.stable,
      () => `cannot compact to ${index}: only ${this.stable} is durable`,
    );
    const t = this.term(index);
    invariant(t !== undefined, () => `cannot compact to ${index}: log ends at ${this.lastIndex()}`);
    this.entries = this.entries.slice(index - this.base);
    this.base = index;
    this.baseTerm = t;
  }

  /** Replace the whole log by a snapshot's position (InstallSnapshot on a follower). */
  resetTo(index: number, term: number): void {
    this.entries = [];
    this.base = index;
    this.baseTerm = term;
    this.stable = index;
  }
}
