/**
 * The deterministic Raft core: leader election (with pre-vote and check-quorum), log
 * replication with flow control, commitment, ReadIndex and snapshots, as a pure state machine.
 *
 * It never does I/O, never reads a clock and never draws real randomness. Time arrives as
 * `tick()`, messages as `step()`, client intent as `propose()` and `readIndex()`. Everything the
 * node must then do (persist, send, apply) is collected and handed out by `ready()`; the driver
 * acknowledges it with `advance()`. The spec is Figure 2 of the Raft paper; section numbers in
 * comments refer to the paper (§5.x) or to Ongaro's thesis (thesis §x.y).
 */
import { RaftLog } from "./log.ts";
import { Progress } from "./progress.ts";
import {
  type AppendRequest,
  type AppendResponse,
  canSendBeforePersist,
  type Entry,
  EntryType,
  type HardState,
  invariant,
  type Message,
  type NodeId,
  type ReadIndexRequest,
  type ReadState,
  type Ready,
  type Role,
  type SnapshotMeta,
  type SnapshotRequest,
  type SnapshotResponse,
  type VoteRequest,
  type VoteResponse,
} from "./types.ts";

export interface RaftConfig {
  id: NodeId;
  /** Every voting member, including this node. */
  voters: NodeId[];
  /** Election timeout is drawn uniformly from [electionTicksMin, electionTicksMax). */
  electionTicksMin: number;
  electionTicksMax: number;
  heartbeatTicks: number;
  /** A seeded source of numbers in [0, 1): the only randomness the core sees. */
  random: () => number;
  /** Pre-vote (thesis §9.6): a candidate first checks it could win before bumping its term. */
  preVote: boolean;
  /** A leader that has not heard from a majority for an election timeout steps down. */
  checkQuorum: boolean;
  /** Soft cap on entry bytes per append message (at least one entry is always sent). */
  appendBytesMax: number;
  /** Appends in flight per follower in the replicate state. */
  inflightAppendsMax: number;
  /** Proposals beyond this many uncommitted entries are refused (back-pressure). */
  uncommittedEntriesMax: number;
  /** Committed entries handed out per Ready. */
  applyBatchMax: number;
}

export const defaultRaftConfig = {
  preVote: true,
  checkQuorum: true,
  appendBytesMax: 1 << 20,
  inflightAppendsMax: 2,
  uncommittedEntriesMax: 20_000,
  applyBatchMax: 4096,
} satisfies Partial<RaftConfig>;

/** What storage recovered at start: the durable state of Figure 2, plus the snapshot base. */
export interface RaftRestore {
  hardState: HardState;
  snapshot: SnapshotMeta | null;
  /** Entries after the snapshot (or from index 1), contiguous. */
  entries: Entry[];
}

export type ProposeResult =
  | { ok: true; index: number; term: number }
  | { ok: false; reason: "notLeader"; leaderId: NodeId }
  | { ok: false; reason: "busy"; leaderId: NodeId };

export interface RaftStatus {
  id: NodeId;
  role: Role;
  term: number;
  vote: NodeId;
  leaderId: NodeId;
  commitIndex: number;
  lastApplied: number;
  firstIndex: number;
  lastIndex: number;
  lastTerm: number;
  stableIndex: number;
  snapshotIndex: number;
  snapshotTerm: number;
  progress: Record<NodeId, string>;
}

interface PendingRead {
  from: NodeId;
  ctx: number;
  index: number;
  seq: number;
}

export class Raft {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;
  private readonly voters: NodeId[];
  private readonly quorum: number;

  private term = 0;
  private vote: NodeId = "";
  private role: Role = "follower";
  private leader: NodeId = "";
  private readonly log: RaftLog;
  private commit = 0;
  /** Highest index handed out for applying, by ready() or takeCommitted() (or covered by an
   * installed snapshot). */
  private applied = 0;
  /** Newest snapshot this node holds durably (what it sends to followers that lag). */
  private snapshot: SnapshotMeta | null;
  /** A snapshot received from the leader, to be installed by the driver. */
  private pendingInstall: SnapshotMeta | null = null;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private electionTimeout = 0;
  private votes = new Map<NodeId, boolean>();
  private prs = new Map<NodeId, Progress>();
  /** Leader: followers that must get a message at the next flush (commit, read round, beat). */
  private beatDue = new Set<NodeId>();
  /** Leader: something changed that may let appends go out at the next flush. */
  private sendDue = false;

  // ReadIndex (thesis §6.4): rounds of leadership confirmation, numbered by readSeq.
  private readSeq = 0;
  private readConfirmed = 0;
  private reads: PendingRead[] = [];
  /** Reads that arrived before this leader committed an entry of its own term. */
  private readsBeforeNoop: { from: NodeId; ctx: number }[] = [];
  /** Follower: reads forwarded to the leader, by ctx. */
  private forwarded = new Map<number, NodeId>();

  private outbox: Message[] = [];
  private readStates: ReadState[] = [];
  /** Last hard state handed out in a Ready (what storage has or is about to have). */
  private handedHard: HardState;
  private readyOut: Ready | null = null;

  constructor(cfg: RaftConfig, restore: RaftRestore) {
    validateConfig(cfg);
    this.cfg = cfg;
    this.id = cfg.id;
    this.voters = [...cfg.voters].sort();
    this.quorum = Math.floor(this.voters.length / 2) + 1;
    const snap = restore.snapshot;
    this.snapshot = snap;
    this.log = RaftLog.restore(snap?.index ?? 0, snap?.term ?? 0, restore.entries);
    this.term = restore.hardState.term;
    this.vote = restore.hardState.vote;
    // A commit index is only ever recorded after it was learned, but never trust it past the log.
    this.commit = Math.min(
      Math.max(restore.hardState.commit, snap?.index ?? 0),
      this.log.lastIndex(),
    );
    this.applied = snap?.index ?? 0;
    this.handedHard = { ...restore.hardState };
    this.becomeFollower(this.term, "");
  }

  // ---- inputs --------------------------------------------------------------------------------

  /** One unit of logical time passed. */
  tick(): void {
    if (this.role === "leader") this.tickLeader();
    else this.tickElection();
  }

  /** Client intent: append `data` if this node leads. The entry commits later (or never). */
  propose(data: Uint8Array): ProposeResult {
    if (this.role !== "leader") return { ok: false, reason: "notLeader", leaderId: this.leader };
    if (this.log.lastIndex() - this.commit >= this.cfg.uncommittedEntriesMax) {
      return { ok: false, reason: "busy", leaderId: this.leader };
    }
    const index = this.log.lastIndex() + 1;
    this.log.append([{ index, term: this.term, type: EntryType.Command, data }]);
    this.sendDue = true;
    return { ok: true, index, term: this.term };
  }

  /**
   * Client intent: a linearizable read. Its answer arrives as a ReadState with this `ctx` in a
   * later Ready: serve the read once the state machine has applied `index`.
   */
  readIndex(ctx: number): void {
    if (this.role === "leader") {
      this.acceptRead(this.id, ctx);
    } else if (this.leader !== "") {
      this.forwarded.set(ctx, this.leader);
      this.send({ type: "readIndex", from: this.id, to: this.leader, term: this.term, ctx });
    } else {
      this.readStates.push({ ctx, index: 0, ok: false });
    }
  }

  /** A message from another node. */
  step(m: Message): void {
    invariant(m.to === this.id, () => `message for ${m.to} stepped into ${this.id}`);
    if (m.term > this.term) {
      if (m.type === "vote" && this.inLease()) {
        // Thesis §4.2.3: while we hear from a leader, a disruptive candidate is ignored.
        this.replyVote(m, false);
        return;
      }
      const keepTerm = (m.type === "vote" && m.pre) ||
        (m.type === "voteResp" && m.pre && m.granted);
      if (!keepTerm) {
        const fromLeader = m.type === "append" || m.type === "snapshot";
        this.becomeFollower(m.term, fromLeader ? m.from : "");
      }
    } else if (m.term < this.term) {
      this.rejectStale(m);
      return;
    }

    switch (m.type) {
      case "vote":
        this.handleVote(m);
        break;
      case "voteResp":
        this.handleVoteResp(m);
        break;
      case "append":
        this.followLeader(m.from);
        this.handleAppend(m);
        break;
      case "appendResp":
        if (this.role === "leader") this.handleAppendResp(m);
        break;
      case "snapshot":
        this.followLeader(m.from);
        this.handleSnapshot(m);
        break;
      case "snapshotResp":
        if (this.role === "leader") this.handleSnapshotResp(m);
        break;
      case "readIndex":
        this.handleReadIndex(m);
        break;
      case "readIndexResp": {
        if (this.forwarded.delete(m.ctx)) {
          this.readStates.push({ ctx: m.ctx, index: m.index, ok: m.ok });
        }
        break;
      }
    }
  }

  /** The transport could not reach `peer`: stop streaming to it and probe again. */
  reportUnreachable(peer: NodeId): void {
    const pr = this.prs.get(peer);
    if (this.role === "leader" && pr && pr.state === "replicate") {
      pr.becomeProbe();
      this.sendDue = true;
    }
  }

  /** The transport finished (ok) or gave up (!ok) sending a snapshot to `peer`. */
  reportSnapshot(peer: NodeId, ok: boolean): void {
    const pr = this.prs.get(peer);
    if (this.role !== "leader" || !pr || pr.state !== "snapshot") return;
    if (!ok) {
      pr.becomeProbe();
      pr.probeSent = true; // wait for the next heartbeat before trying again
    }
  }

  /**
   * The driver made a snapshot at `meta.index` (<= applied) durable. Entries up to `compactTo`
   * (<= meta.index) may be dropped; followers that need older ones will get the snapshot.
   */
  compact(meta: SnapshotMeta, compactTo: number): void {
    invariant(
      meta.index <= this.applied,
      () => `snapshot at ${meta.index} is ahead of applied ${this.applied}`,
    );
    invariant(compactTo <= meta.index, () => `compact to ${compactTo} past snapshot ${meta.index}`);
    if (this.snapshot === null || meta.index > this.snapshot.index) this.snapshot = meta;
    this.log.compact(Math.min(compactTo, this.log.stable));
  }

  // ---- output ---------------------------------------------------------------------------------

  hasReady(): boolean {
    if (this.readyOut !== null) return false;
    return this.outbox.length > 0 || this.readStates.length > 0 || this.sendDue ||
      this.beatDue.size > 0 || this.pendingInstall !== null ||
      this.log.stable < this.log.lastIndex() || this.hardStateChanged() ||
      this.applied < Math.min(this.commit, this.log.stable);
  }

  /** Hand out the next batch of work. Call `advance` with it before calling `ready` again. */
  ready(): Ready {
    invariant(this.readyOut === null, "ready() called again before advance()");
    if (this.role === "leader") this.flush();
    const hs = this.hardStateChanged() ? this.hardState() : null;
    const entries = this.log.unstable();
    const applyTo = Math.min(this.commit, this.log.stable, this.applied + this.cfg.applyBatchMax);
    const committed = this.applied < applyTo ? this.log.slice(this.applied + 1, applyTo + 1) : [];
    if (committed.length > 0) this.applied = applyTo; // handed out: never handed out again
    const rd: Ready = {
      hardState: hs,
      snapshot: this.pendingInstall,
      entries,
      messages: this.outbox,
      committed,
      readStates: this.readStates,
      mustSync: entries.length > 0 || this.pendingInstall !== null ||
        (hs !== null && (hs.term !== this.handedHard.term || hs.vote !== this.handedHard.vote)),
    };
    if (hs) this.handedHard = hs;
    this.outbox = [];
    this.readStates = [];
    this.pendingInstall = null;
    this.readyOut = rd;
    return rd;
  }

  /**
   * Committed entries that may be applied right now, outside the Ready cycle: a driver whose
   * Ready is waiting on a sync can apply what a majority acknowledged meanwhile (the entries
   * are already durable here). Entries are handed out once, in order, shared with `ready()`.
   */
  takeCommitted(): Entry[] {
    if (this.pendingInstall !== null || this.readyOut?.snapshot) return []; // install first
    const applyTo = Math.min(this.commit, this.log.stable, this.applied + this.cfg.applyBatchMax);
    if (applyTo <= this.applied) return [];
    const entries = this.log.slice(this.applied + 1, applyTo + 1);
    this.applied = applyTo;
    return entries;
  }

  /**
   * A leader's appends (and snapshot requests) that may leave right now, outside the Ready
   * cycle: while the driver waits on a sync, new proposals and freed flow-control slots need
   * not wait for it (thesis §10.2.1 lets a leader replicate entries it has not synced yet).
   * Every other message stays for the next Ready.
   */
  takeEarlyMessages(): Message[] {
    if (this.role !== "leader") return [];
    this.flush();
    const early: Message[] = [];
    const rest: Message[] = [];
    for (const m of this.outbox) (canSendBeforePersist(m) ? early : rest).push(m);
    this.outbox = rest;
    return early;
  }

  /** The driver did everything `rd` asked (persisted, sent, applied). */
  advance(rd: Ready): void {
    invariant(this.readyOut === rd, "advance() with a Ready that is not the outstanding one");
    this.readyOut = null;
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      this.log.stableTo(last.index, last.term);
      if (this.role === "leader") this.maybeCommit();
    }
    if (rd.committed.length > 0) {
      this.applied = Math.max(this.applied, rd.committed[rd.committed.length - 1].index);
    }
    if (rd.snapshot && (this.snapshot === null || rd.snapshot.index > this.snapshot.index)) {
      this.snapshot = rd.snapshot;
    }
    this.checkInvariants();
  }

  status(): RaftStatus {
    const progress: Record<NodeId, string> = {};
    for (const [id, pr] of this.prs) progress[id] = pr.describe();
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leaderId: this.leader,
      commitIndex: this.commit,
      lastApplied: this.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      stableIndex: this.log.stable,
      snapshotIndex: this.snapshot?.index ?? 0,
      snapshotTerm: this.snapshot?.term ?? 0,
      progress,
    };
  }

  /** The snapshot the core decided to install but has not handed out in a Ready yet. */
  get installPending(): SnapshotMeta | null {
    return this.pendingInstall;
  }

  /** Cheap accessors for the hot path (status() builds a whole report). */
  get currentRole(): Role {
    return this.role;
  }

  get leaderId(): NodeId {
    return this.leader;
  }

  get currentTerm(): number {
    return this.term;
  }

  /**
   * The transport could not deliver a forwarded read (or gave up waiting): fail it now. The
   * answer arrives as a ReadState with ok false, like any other failed read.
   */
  readFailed(ctx: number): void {
    if (this.forwarded.delete(ctx)) this.readStates.push({ ctx, index: 0, ok: false });
  }

  /** Entry `index` if the log still holds it (for tests and the simulator). */
  entryAt(index: number): Entry | undefined {
    return index > this.log.baseIndex() && index <= this.log.lastIndex()
      ? this.log.entry(index)
      : undefined;
  }

  // ---- roles (only these four change `role`) -------------------------------------------------

  private becomeFollower(term: number, leader: NodeId): void {
    invariant(term >= this.term, () => `term would go back from ${this.term} to ${term}`);
    if (this.role === "leader") this.failLeaderReads();
    if (term > this.term || leader !== this.leader || this.role !== "follower") {
      this.failForwardedReads();
    }
    if (term > this.term) {
      this.term = term;
      this.vote = "";
    }
    this.role = "follower";
    this.leader = leader;
    this.prs.clear();
    this.beatDue.clear();
    this.sendDue = false;
    this.resetElectionTimer();
  }

  private becomePreCandidate(): void {
    invariant(this.role !== "leader", "a leader cannot become a pre-candidate");
    this.failForwardedReads();
    this.role = "preCandidate";
    this.leader = "";
    this.votes.clear();
    this.resetElectionTimer();
  }

  private becomeCandidate(): void {
    invariant(this.role !== "leader", "a leader cannot become a candidate");
    this.failForwardedReads();
    this.term += 1;
    this.vote = this.id;
    this.role = "candidate";
    this.leader = "";
    this.votes.clear();
    this.resetElectionTimer();
  }

  private becomeLeader(): void {
    invariant(this.role === "candidate", () => `${this.role} cannot become leader`);
    this.role = "leader";
    this.leader = this.id;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.readSeq = 0;
    this.readConfirmed = 0;
    this.prs.clear();
    const next = this.log.lastIndex() + 1;
    for (const id of this.voters) {
      if (id === this.id) continue;
      const pr = new Progress(id, next);
      pr.recentActive = true; // give every follower one full check-quorum round
      this.prs.set(id, pr);
    }
    // §5.4.2 / §8: a leader commits entries of earlier terms only through one of its own.
    this.log.append([{
      index: next,
      term: this.term,
      type: EntryType.Noop,
      data: new Uint8Array(),
    }]);
    this.sendDue = true;
    if (this.voters.length === 1) this.maybeCommit();
  }

  // ---- elections ------------------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) this.campaign();
  }

  private campaign(): void {
    if (!this.voters.includes(this.id)) return;
    if (this.cfg.preVote) this.becomePreCandidate();
    else this.becomeCandidate();
    this.requestVotes();
  }

  private requestVotes(): void {
    const pre = this.role === "preCandidate";
    this.votes.set(this.id, true);
    if (this.tally()) return; // single-node cluster
    for (const to of this.voters) {
      if (to === this.id) continue;
      this.send({
        type: "vote",
        from: this.id,
        to,
        term: pre ? this.term + 1 : this.term,
        pre,
        lastLogIndex: this.log.lastIndex(),
        lastLogTerm: this.log.lastTerm(),
      });
    }
  }

  /** Count votes; act on a decided election. Returns true if the role changed. */
  private tally(): boolean {
    let granted = 0, rejected = 0;
    for (const v of this.votes.values()) v ? granted++ : rejected++;
    if (granted >= this.quorum) {
      if (this.role === "preCandidate") {
        this.becomeCandidate();
        this.requestVotes();
      } else {
        this.becomeLeader();
      }
      return true;
    }
    if (rejected >= this.quorum) {
      this.becomeFollower(this.term, "");
      return true;
    }
    return false;
  }

  private handleVote(m: VoteRequest): void {
    // Figure 2 RequestVote receiver: grant if we have not voted for someone else in this term
    // and the candidate's log is at least as up to date as ours (§5.4.1). A pre-vote for a
    // future term is granted on the log check alone, and it records nothing.
    const canVote = this.vote === m.from ||
      (this.vote === "" && this.leader === "") ||
      (m.pre && m.term > this.term);
    const granted = canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    if (granted && !m.pre) {
      this.vote = m.from;
      this.electionElapsed = 0;
    }
    this.replyVote(m, granted);
  }

  private replyVote(m: VoteRequest, granted: boolean): void {
    // A granted pre-vote answers in the candidate's future term, so it is not dropped as stale.
    this.send({
      type: "voteResp",
      from: this.id,
      to: m.from,
      term: granted && m.pre ? m.term : this.term,
      pre: m.pre,
      granted,
    });
  }

  private handleVoteResp(m: VoteResponse): void {
    const want = this.role === "preCandidate" ? true : this.role === "candidate" ? false : null;
    if (want === null || m.pre !== want) return;
    this.votes.set(m.from, m.granted);
    this.tally();
  }

  private inLease(): boolean {
    return this.cfg.checkQuorum && this.leader !== "" &&
      this.electionElapsed < this.cfg.electionTicksMin;
  }

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    const span = this.cfg.electionTicksMax - this.cfg.electionTicksMin;
    this.electionTimeout = this.cfg.electionTicksMin + Math.floor(this.cfg.random() * span);
  }

  /** A valid leader (or snapshot sender) of our term spoke: follow it. */
  private followLeader(from: NodeId): void {
    if (this.role !== "follower" || this.leader !== from) this.becomeFollower(this.term, from);
    this.electionElapsed = 0;
  }

  // ---- replication: follower side ------------------------------------------------------------

  private handleAppend(m: AppendRequest): void {
    let prev = m.prevLogIndex;
    let entries = m.entries;
    if (prev < this.commit) {
      // Everything up to our commit index already matches the leader's log (leader
      // completeness, §5.4): skip that part. It may have been compacted here.
      const skip = Math.min(entries.length, this.commit - prev);
      entries = entries.slice(skip);
      prev = this.commit;
    } else if (!this.log.matchTerm(prev, m.prevLogTerm)) {
      // §5.3: reply false if the log has no entry at prevLogIndex with prevLogTerm. Hint where
      // the leader should continue: the start of our conflicting term, or our end.
      const t = this.log.term(prev);
      this.replyAppend(m, {
        success: false,
        matchIndex: 0,
        conflictIndex: t === undefined ? this.log.lastIndex() + 1 : this.log.firstIndexOfTerm(prev),
        conflictTerm: t ?? 0,
      });
      return;
    }
    if (entries.length > 0) {
      invariant(
        entries[0].index === prev + 1,
        () => `append after ${prev} starts at ${entries[0].index}`,
      );
      const cut = this.log.merge(entries);
      invariant(
        cut === 0 || cut > this.commit,
        () => `append from ${m.from} would truncate committed entry ${cut} (commit ${this.commit})`,
      );
    }
    const lastNew = prev + entries.length;
    // Figure 2: commitIndex = min(leaderCommit, index of last new entry).
    const newCommit = Math.min(m.leaderCommit, lastNew);
    if (newCommit > this.commit) this.commit = newCommit;
    this.replyAppend(m, { success: true, matchIndex: lastNew, conflictIndex: 0, conflictTerm: 0 });
  }

  private replyAppend(
    m: AppendRequest,
    r: Pick<AppendResponse, "success" | "matchIndex" | "conflictIndex" | "conflictTerm">,
  ): void {
    this.send({
      type: "appendResp",
      from: this.id,
      to: m.from,
      term: this.term,
      ...r,
      rejectIndex: r.success ? 0 : m.prevLogIndex,
      lastLogIndex: this.log.lastIndex(),
      readSeq: m.readSeq,
    });
  }

  private handleSnapshot(m: SnapshotRequest): void {
    const s = m.meta;
    let match: number;
    if (!m.done) {
      match = 0; // a chunk: the term check and timer reset above are all it needs
    } else if (s.index <= this.commit) {
      match = this.commit; // we already have all of it
    } else if (this.log.matchTerm(s.index, s.term)) {
      // §7: our log already contains the snapshot's last entry: keep the entries after it
      // (we may have acknowledged them) and just learn that it is committed.
      this.commit = s.index;
      match = s.index;
    } else {
      this.log.resetTo(s.index, s.term);
      this.commit = s.index;
      this.applied = s.index;
      this.pendingInstall = s; // becomes our snapshot once the driver installed it (advance)
      match = s.index;
    }
    this.send({
      type: "snapshotResp",
      from: this.id,
      to: m.from,
      term: this.term,
      matchIndex: match,
      accepted: true,
    });
  }

  // ---- replication: leader side --------------------------------------------------------------

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicksMin) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.term, "");
        return;
      }
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      for (const pr of this.prs.values()) {
        if (pr.state === "probe") pr.probeSent = false;
        // Appends outstanding but nothing acknowledged for a whole heartbeat: assume they were
        // lost and find the follower's end again.
        if (
          pr.state === "replicate" && pr.inflight.length > 0 && pr.match === pr.matchAtHeartbeat
        ) {
          pr.becomeProbe();
        }
        pr.matchAtHeartbeat = pr.match;
        this.beatDue.add(pr.id);
      }
      this.sendDue = true;
    }
  }

  private quorumActive(): boolean {
    let active = 1; // self
    for (const pr of this.prs.values()) {
      if (pr.recentActive) active++;
      pr.recentActive = false;
    }
    return active >= this.quorum;
  }

  /**
   * Turn pending work into messages: appends where the window allows, beats where due. A
   * follower that has not heard the latest commit index gets a beat once nothing is in flight
   * to it (while appends are in flight, the next one will carry it): followers apply promptly
   * without one extra message per commit under load.
   */
  private flush(): void {
    if (!this.sendDue && this.beatDue.size === 0) return;
    for (const pr of this.prs.values()) {
      const beat = this.beatDue.has(pr.id);
      if (this.maybeSendAppend(pr, beat)) continue;
      if (
        beat || (pr.commitSent < this.commit && pr.inflight.length === 0 && pr.state !== "snapshot")
      ) {
        this.sendHeartbeat(pr);
      }
    }
    this.beatDue.clear();
    this.sendDue = false;
  }

  /**
   * Send the follower the entries it lacks, if flow control allows. With `probeEmpty`, a probe
   * goes out even without entries (to learn whether the follower matches at next-1).
   */
  private maybeSendAppend(pr: Progress, probeEmpty: boolean): boolean {
    if (pr.isPaused(this.cfg.inflightAppendsMax)) return false;
    const prev = pr.next - 1;
    const prevTerm = this.log.term(prev);
    if (prevTerm === undefined) {
      // The entries it needs are compacted: send the snapshot (§7). Right after installing one
      // from a former leader, wait until it is durable here before passing it on.
      const snap = this.snapshot;
      if (snap === null || snap.index < this.log.baseIndex()) return false;
      pr.becomeSnapshot(snap.index);
      this.send({
        type: "snapshot",
        from: this.id,
        to: pr.id,
        term: this.term,
        meta: snap,
        done: true,
      });
      return true;
    }
    const last = this.log.lastIndex();
    const entries = pr.next <= last
      ? this.log.slice(pr.next, last + 1, this.cfg.appendBytesMax)
      : [];
    const wantEmpty = probeEmpty && pr.state === "probe" && pr.match < prev;
    if (entries.length === 0 && !wantEmpty) return false;
    this.send({
      type: "append",
      from: this.id,
      to: pr.id,
      term: this.term,
      prevLogIndex: prev,
      prevLogTerm: prevTerm,
      entries,
      leaderCommit: this.commit,
      readSeq: this.readSeq,
    });
    pr.commitSent = this.commit;
    pr.sentEntries(prev + entries.length);
    return true;
  }

  /**
   * A heartbeat checks the log only up to what the follower already acknowledged, so it never
   * fails on an up-to-date follower and never interferes with appends in flight; it carries the
   * commit index and the current ReadIndex round.
   */
  private sendHeartbeat(pr: Progress): void {
    const t = this.log.term(pr.match);
    this.send({
      type: "append",
      from: this.id,
      to: pr.id,
      term: this.term,
      prevLogIndex: t === undefined ? 0 : pr.match,
      prevLogTerm: t ?? 0,
      entries: [],
      leaderCommit: this.commit,
      readSeq: this.readSeq,
    });
    pr.commitSent = this.commit;
  }

  private handleAppendResp(m: AppendResponse): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.readSeq > pr.readSeqAcked) {
      pr.readSeqAcked = m.readSeq;
      this.checkReads();
    }
    if (!m.success) {
      // A rejection of something at or below the known match is stale (reordered): ignore it.
      if (pr.state === "snapshot" || m.rejectIndex <= pr.match) return;
      let next = m.conflictIndex;
      if (m.conflictTerm > 0) {
        const last = this.log.lastIndexOfTerm(m.conflictTerm);
        if (last > 0) next = last + 1;
      }
      pr.becomeProbe();
      pr.next = Math.max(pr.match + 1, Math.min(next, m.rejectIndex));
      this.sendDue = true;
      return;
    }
    const moved = pr.maybeUpdate(m.matchIndex);
    if (pr.state === "probe" && moved) pr.becomeReplicate();
    else if (pr.state === "snapshot" && pr.match >= pr.pendingSnapshot) pr.becomeProbe();
    if (moved) this.maybeCommit();
    this.sendDue = true;
  }

  private handleSnapshotResp(m: SnapshotResponse): void {
    const pr = this.prs.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.matchIndex === 0) return; // a chunk was accepted; the transport keeps streaming
    pr.maybeUpdate(m.matchIndex);
    if (pr.state === "snapshot") pr.becomeProbe();
    this.maybeCommit();
    this.sendDue = true;
  }

  /** §5.3/§5.4.2: commit the highest index stored on a majority, if it is of our term. */
  private maybeCommit(): void {
    const matches = this.voters.map((id) =>
      id === this.id ? this.log.stable : (this.prs.get(id)?.match ?? 0)
    ).sort((a, b) => b - a);
    const n = matches[this.quorum - 1];
    if (n <= this.commit || this.log.term(n) !== this.term) return;
    this.commit = n;
    this.sendDue = true; // followers learn it with the next append or beat (flush)
    if (this.readsBeforeNoop.length > 0) {
      const waiting = this.readsBeforeNoop;
      this.readsBeforeNoop = [];
      for (const r of waiting) this.acceptRead(r.from, r.ctx);
    }
  }

  // ---- ReadIndex (thesis §6.4) ---------------------------------------------------------------

  private handleReadIndex(m: ReadIndexRequest): void {
    if (this.role === "leader") {
      this.acceptRead(m.from, m.ctx);
    } else {
      this.send({
        type: "readIndexResp",
        from: this.id,
        to: m.from,
        term: this.term,
        ctx: m.ctx,
        index: 0,
        ok: false,
      });
    }
  }

  /**
   * Record the read at the current commit index and join it to the next confirmation round:
   * only a heartbeat round that starts after the read arrived proves we still lead.
   */
  private acceptRead(from: NodeId, ctx: number): void {
    if (this.log.term(this.commit) !== this.term) {
      // Until our no-op commits we may not know the latest commit index (thesis §6.4 step 1).
      this.readsBeforeNoop.push({ from, ctx });
      return;
    }
    this.reads.push({ from, ctx, index: this.commit, seq: this.readSeq + 1 });
    this.maybeStartReadRound();
    this.checkReads();
  }

  private maybeStartReadRound(): void {
    if (this.readConfirmed < this.readSeq) return; // a round is in flight; wait for it
    if (this.reads.length === 0 || this.reads[this.reads.length - 1].seq <= this.readSeq) return;
    this.readSeq++;
    for (const id of this.prs.keys()) this.beatDue.add(id);
  }

  private checkReads(): void {
    const acked = [this.readSeq];
    for (const pr of this.prs.values()) acked.push(pr.readSeqAcked);
    acked.sort((a, b) => b - a);
    const confirmed = acked[this.quorum - 1];
    if (confirmed <= this.readConfirmed) return;
    this.readConfirmed = confirmed;
    let k = 0;
    for (; k < this.reads.length && this.reads[k].seq <= confirmed; k++) {
      this.answerRead(this.reads[k], true);
    }
    this.reads.splice(0, k);
    this.maybeStartReadRound();
    if (this.reads.length > 0 && this.voters.length === 1) this.checkReads();
  }

  private answerRead(r: { from: NodeId; ctx: number; index: number }, ok: boolean): void {
    if (r.from === this.id) {
      this.readStates.push({ ctx: r.ctx, index: r.index, ok });
    } else {
      this.send({
        type: "readIndexResp",
        from: this.id,
        to: r.from,
        term: this.term,
        ctx: r.ctx,
        index: r.index,
        ok,
      });
    }
  }

  private failLeaderReads(): void {
    for (const r of this.reads) this.answerRead(r, false);
    for (const r of this.readsBeforeNoop) this.answerRead({ ...r, index: 0 }, false);
    this.reads = [];
    this.readsBeforeNoop = [];
  }

  private failForwardedReads(): void {
    for (const ctx of this.forwarded.keys()) this.readStates.push({ ctx, index: 0, ok: false });
    this.forwarded.clear();
  }

  // ---- helpers --------------------------------------------------------------------------------

  private send(m: Message): void {
    this.outbox.push(m);
  }

  /** Answer a request from a stale term so its sender learns our term (Figure 2). */
  private rejectStale(m: Message): void {
    const base = { from: this.id, to: m.from, term: this.term };
    switch (m.type) {
      case "vote":
        this.replyVote(m, false);
        break;
      case "append":
        this.send({
          ...base,
          type: "appendResp",
          success: false,
          matchIndex: 0,
          conflictIndex: 0,
          conflictTerm: 0,
          rejectIndex: 0,
          lastLogIndex: this.log.lastIndex(),
          readSeq: 0,
        });
        break;
      case "snapshot":
        this.send({ ...base, type: "snapshotResp", matchIndex: 0, accepted: false });
        break;
      case "readIndex":
        this.send({ ...base, type: "readIndexResp", ctx: m.ctx, index: 0, ok: false });
        break;
      default:
        break; // stale responses are dropped
    }
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.commit };
  }

  private hardStateChanged(): boolean {
    const h = this.handedHard;
    return h.term !== this.term || h.vote !== this.vote || h.commit !== this.commit;
  }

  private checkInvariants(): void {
    invariant(
      this.applied <= this.commit && this.commit <= this.log.lastIndex(),
      () =>
        `${this.id}: applied ${this.applied} <= commit ${this.commit} <= last ${this.log.lastIndex()}`,
    );
    invariant(
      this.log.stable <= this.log.lastIndex(),
      () => `${this.id}: stable ${this.log.stable} past last ${this.log.lastIndex()}`,
    );
  }
}

export function validateConfig(c: RaftConfig): void {
  const fail = (msg: string): never => {
    throw new RangeError(msg);
  };
  if (!c.voters.includes(c.id)) fail(`node ${c.id} is not among the voters ${c.voters.join(",")}`);
  if (new Set(c.voters).size !== c.voters.length) fail(`duplicate voter in ${c.voters.join(",")}`);
  if (!(c.heartbeatTicks >= 1)) fail(`heartbeatTicks must be >= 1, got ${c.heartbeatTicks}`);
  if (!(c.electionTicksMin > c.heartbeatTicks)) {
    fail(
      `electionTicksMin (${c.electionTicksMin}) must exceed heartbeatTicks (${c.heartbeatTicks})`,
    );
  }
  if (!(c.electionTicksMax > c.electionTicksMin)) {
    fail(
      `electionTicksMax (${c.electionTicksMax}) must exceed electionTicksMin (${c.electionTicksMin})`,
    );
  }
  if (!(c.inflightAppendsMax >= 1)) fail(`inflightAppendsMax must be >= 1`);
  if (!(c.appendBytesMax >= 1)) fail(`appendBytesMax must be >= 1`);
  if (!(c.uncommittedEntriesMax >= 1)) fail(`uncommittedEntriesMax must be >= 1`);
  if (!(c.applyBatchMax >= 1)) fail(`applyBatchMax must be >= 1`);
}
