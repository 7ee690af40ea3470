/**
 * What a leader knows about one follower's log (Figure 2's nextIndex/matchIndex, plus the flow
 * control states of etcd's raft):
 *
 *   probe      the leader does not know where the follower's log ends; it sends one append at
 *              a time and waits for the answer (or the next heartbeat) before sending another.
 *   replicate  the follower is in step; the leader streams appends optimistically, up to
 *              `inflightMax` unanswered ones, advancing `next` as it sends.
 *   snapshot   the follower needs entries the leader has compacted; a snapshot is on its way
 *              and nothing else is sent until it is answered or reported failed.
 */
import type { NodeId } from "./types.ts";

export type ProgressState = "probe" | "replicate" | "snapshot";

export class Progress {
  /** Highest index known to be replicated on the follower. */
  match = 0;
  /** Next index to send. Invariant: match < next. */
  next: number;
  state: ProgressState = "probe";
  /** probe: an append is outstanding; wait for its answer or the next heartbeat. */
  probeSent = false;
  /** replicate: last index of each unanswered append, oldest first. */
  inflight: number[] = [];
  /** snapshot: index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from this follower since the last check-quorum round. */
  recentActive = false;
  /** Highest ReadIndex round the follower has acknowledged. */
  readSeqAcked = 0;
  /** match as of the previous heartbeat (to notice appends that were lost). */
  matchAtHeartbeat = 0;
  /** Highest commit index sent to this follower. */
  commitSent = 0;

  constructor(readonly id: NodeId, next: number) {
    this.next = next;
  }

  becomeProbe(): void {
    // After a snapshot the follower holds at least pendingSnapshot.
    const from = this.state === "snapshot"
      ? Math.max(this.match, this.pendingSnapshot)
      : this.match;
    this.state = "probe";
    this.next = from + 1;
    this.probeSent = false;
    this.inflight.length = 0;
    this.pendingSnapshot = 0;
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflight.length = 0;
    this.pendingSnapshot = 0;
  }

  becomeSnapshot(index: number): void {
    this.state = "snapshot";
    this.pendingSnapshot = index;
    this.probeSent = false;
    this.inflight.length = 0;
  }

  /** The follower acknowledged entries up to `index`. Returns true if match moved. */
  maybeUpdate(index: number): boolean {
    let moved = false;
    if (index > this.match) {
      this.match = index;
      moved = true;
      this.probeSent = false;
    }
    if (this.next < index + 1) this.next = index + 1;
    // Answers arrive in order per connection but appends travel on several; free every
    // inflight append the acknowledgement covers.
    let k = 0;
    while (k < this.inflight.length && this.inflight[k] <= index) k++;
    if (k > 0) this.inflight.splice(0, k);
    return moved;
  }

  /** Can another append carrying entries be sent now? */
  isPaused(inflightMax: number): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflight.length >= inflightMax;
      case "snapshot":
        return true;
    }
  }

  /** An append carrying entries up to `last` was sent. */
  sentEntries(last: number): void {
    if (this.state === "replicate") {
      this.next = last + 1;
      this.inflight.push(last);
    } else {
      this.probeSent = true;
    }
  }

  describe(): string {
    return `${this.id}:${this.state} match=${this.match} next=${this.next}` +
      (this.state === "replicate" ? ` inflight=${this.inflight.length}` : "") +
      (this.state === "snapshot" ? ` snap=${this.pendingSnapshot}` : "");
  }
}
