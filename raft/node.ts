/**
 * The driver: the only part of raft/ that does I/O. It feeds the deterministic core (raft.ts)
 * with time (a ticker), messages (from the transport) and client intent, and carries out each
 * Ready in the order safety requires (DESIGN.md "Ordering rules"):
 *
 *   1. a leader's appends and snapshots go out at once (thesis §10.2.1: the leader's own write
 *      runs in parallel with replication; it counts itself only once its write is durable);
 *   2. one storage batch, one sync, for everything the Ready persists (group commit: every
 *      proposal and every append that arrived while the previous sync ran is in this batch);
 *   3. only then every other message: votes and append acknowledgements leave after the data
 *      they vouch for is durable (persist before you speak);
 *   4. committed entries are applied in index order, and waiting clients are answered.
 *
 * One Ready is in flight at a time; while its sync runs, new work piles up in the core and
 * forms the next batch.
 */
import { encodeCommand } from "../kv/command.ts";
import type { ApplyResult, FrozenView, KvStore } from "../kv/store.ts";
import { describeMessage } from "./describe.ts";
import { Stat } from "./stats.ts";
import { type ProposeResult, Raft, type RaftConfig, type RaftStatus } from "./raft.ts";
import {
  canSendBeforePersist,
  type Entry,
  invariant,
  type Message,
  type NodeId,
  type ReadState,
  type Ready,
  REPLY_TYPE,
  type SnapshotMeta,
  type SnapshotRequest,
} from "./types.ts";

/**
 * How the driver reaches other nodes. A request's reply comes back through `RaftNode.onReply`,
 * a failure (unreachable, timeout) through `RaftNode.onSendFailure`.
 */
export interface Transport {
  /** Send a request: vote, append or readIndex. */
  send(m: Message): void;
  /** Stream the snapshot file at `path` (described by `m.meta`) to `m.to`. */
  sendSnapshot(m: SnapshotRequest, path: string): void;
}

/** What the driver needs from storage (storage/mod.ts's DiskStorage, or a twin in tests). */
export interface NodeStorage {
  /**
   * Make a Ready's snapshot, hard state and entries durable (one sync when it must); with
   * `blocking`, by blocking calls (faster to finish, but the event loop waits).
   */
  persist(rd: Ready, blocking?: boolean): Promise<void>;
  /** Write a snapshot of `view`; returns what it describes and its size on disk. */
  saveSnapshot(view: FrozenView, voters: string[]): Promise<{ meta: SnapshotMeta; bytes: number }>;
  snapshotPath(meta: SnapshotMeta): string;
  /** Store a received chunk at `offset`; returns the bytes now held (where to resume). */
  receiveChunk(meta: SnapshotMeta, offset: number, data: Uint8Array): Promise<number>;
  /** The received snapshot is complete: verify it and return its content. */
  finishReceive(meta: SnapshotMeta): Promise<Map<string, string>>;
  loadSnapshot(meta: SnapshotMeta): Promise<Map<string, string>>;
}

export interface NodeOptions {
  raft: Omit<RaftConfig, "random">;
  random: () => number;
  peers: Map<NodeId, string>;
  tickMs: number;
  /** Give up on a write after this long: its outcome is then unknown to the client. */
  writeTimeoutMs: number;
  readTimeoutMs: number;
  /** Take a snapshot after this many applied entries (0: never). */
  snapshotEntries: number;
  /** ...or after this many bytes of applied commands. */
  snapshotBytes: number;
  /** Entries kept in the log below a snapshot (so slightly lagging followers need no snapshot). */
  trailingEntries: number;
  /** Most client reads waiting at once; more are refused (back-pressure). */
  pendingReadsMax: number;
  /** When WAL syncs block the event loop instead of running async (see WalBatch.blocking). */
  blockingSync: "never" | "follower" | "always";
  log: (msg: string) => void;
  /** Storage failed: the node cannot go on safely. */
  onFatal: (err: unknown) => void;
}

/** The node is not the leader; `leaderId` is empty when no leader is known. */
export class NotLeaderError extends Error {
  override name = "NotLeaderError";
  constructor(readonly leaderId: NodeId, readonly leaderAddr: string) {
    super(
      leaderId
        ? `not the leader; the leader is ${leaderId} at ${leaderAddr}`
        : "no leader is known",
    );
  }
}

/** Temporarily unable to serve (no leader, too busy, read could not be confirmed): retry. */
export class UnavailableError extends Error {
  override name = "UnavailableError";
  constructor(message: string, readonly retryAfterS = 1) {
    super(message);
  }
}

/** The write was proposed but its fate is not known yet: it may or may not be applied. */
export class OutcomeUnknownError extends Error {
  override name = "OutcomeUnknownError";
}

/** The write was proposed but a leader change replaced it: it is certainly not applied. */
export class NotCommittedError extends Error {
  override name = "NotCommittedError";
}

/** How often waiting writes and reads are checked for their timeout. */
const SWEEP_MS = 50;

/** WAL framing per entry record (record header + entry header), for snapshot accounting. */
const ENTRY_OVERHEAD_BYTES = 30;

interface WriteWaiter {
  term: number;
  resolve: (r: ApplyResult) => void;
  reject: (e: Error) => void;
  /** performance.now() after which the client is told the outcome is unknown. */
  deadline: number;
}

interface ReadWaiter {
  ctx: number;
  key: string;
  index: number;
  resolve: (r: { value: string | undefined; index: number }) => void;
  reject: (e: Error) => void;
  deadline: number;
}

interface ReplyWaiter {
  from: NodeId;
  type: Message["type"];
  resolve: (m: Message | null) => void;
}

export class RaftNode {
  readonly id: NodeId;
  readonly core: Raft;
  private readonly voters: NodeId[];
  private ticker: ReturnType<typeof setInterval> | undefined;
  private sweeper: ReturnType<typeof setInterval> | undefined;
  private tickStart = 0;
  private ticksDone = 0;
  private looping = false;
  private stopped = false;
  private loopDone: Promise<void> = Promise.resolve();
  private fatal: unknown = null;
  private seen = { role: "", leader: "", term: -1 };
  /** The driver's own measurements, for /cluster/status. */
  readonly stats = {
    persistMs: new Stat(),
    entriesPerBatch: new Stat(),
    appliedPerBatch: new Stat(),
    messagesPerBatch: new Stat(),
    /** Follower: from an append's arrival to its acknowledgement being ready (ms). */
    appendHoldMs: new Stat(),
  };

  private writes = new Map<number, WriteWaiter>();
  private reads = new Map<number, ReadWaiter>();
  /** Reads with a confirmed index, waiting for the state machine to reach it. */
  private readsAwaitingApply: ReadWaiter[] = [];
  private ctxSeq = 0;
  /** Inbound requests waiting for the reply the core produces when it steps them. */
  private replyWaiters: ReplyWaiter[] = [];
  /** Followers' readIndex requests, waiting for the leader's answer, by "from/ctx". */
  private readIndexWaiters = new Map<string, (m: Message | null) => void>();

  private snapshotting = false;
  private lastSnapshotIndex = 0;
  /** Log bytes (commands plus framing) applied since the last snapshot, and its size. */
  private bytesSinceSnapshot = 0;
  private lastSnapshotBytes = 0;
  /**
   * This node's threshold for the next snapshot: --snapshot-entries stretched by a random
   * 0-50 %, so the nodes of a cluster do not all write snapshots at the same moment (a write
   * commits with any majority, so one node busy with a snapshot then costs nothing).
   */
  private snapshotEntriesNext = 0;
  /** A snapshot received from the leader and verified, until the core installs it. */
  private received: { meta: SnapshotMeta; state: Map<string, string> } | null = null;

  constructor(
    private readonly opts: NodeOptions,
    core: Raft,
    readonly kv: KvStore,
    private readonly storage: NodeStorage,
    private readonly transport: Transport,
  ) {
    this.id = opts.raft.id;
    this.core = core;
    this.voters = [...opts.raft.voters];
    this.lastSnapshotIndex = core.status().snapshotIndex;
  }

  start(): void {
    this.tickStart = performance.now();
    this.ticker = setInterval(() => this.onTimer(), this.opts.tickMs);
    this.sweeper = setInterval(() => this.expireWaiters(), SWEEP_MS);
    this.schedule();
  }

  /**
   * Fail the writes and reads that waited too long. One timer for all of them instead of one
   * per request: waiters sit in insertion order with equal timeouts, so only the front expires.
   */
  private expireWaiters(): void {
    const now = performance.now();
    for (const [index, w] of this.writes) {
      if (w.deadline > now) break;
      this.writes.delete(index);
      w.reject(
        new OutcomeUnknownError(
          `not committed within ${this.opts.writeTimeoutMs} ms (no majority reachable?); ` +
            `the write may still be applied later`,
        ),
      );
    }
    for (const [ctx, r] of this.reads) {
      if (r.deadline > now) break;
      this.dropRead(ctx);
      this.core.readFailed(ctx); // forget it in the core too (a forwarded read)
      r.reject(new UnavailableError(`read not confirmed within ${this.opts.readTimeoutMs} ms`));
    }
  }

  /** Stop ticking and serving; waits for the batch being persisted to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.ticker);
    clearInterval(this.sweeper);
    await this.loopDone;
    for (const w of this.writes.values()) {
      w.reject(new OutcomeUnknownError("the node is shutting down; the write may still commit"));
    }
    this.writes.clear();
    for (const r of this.reads.values()) {
      r.reject(new UnavailableError("the node is shutting down"));
    }
    this.reads.clear();
    for (const w of this.replyWaiters) w.resolve(null);
    this.replyWaiters = [];
    for (const w of this.readIndexWaiters.values()) w(null);
    this.readIndexWaiters.clear();
  }

  // ---- time --------------------------------------------------------------------------------

  private onTimer(): void {
    // Tick once per elapsed tickMs, even if the timer fired late (a busy event loop, a pause):
    // the core's timeouts follow real time. A long stall is capped so it cannot loop forever.
    const due = Math.floor((performance.now() - this.tickStart) / this.opts.tickMs);
    let n = Math.min(due - this.ticksDone, this.opts.raft.electionTicksMax * 2);
    this.ticksDone = due;
    while (n-- > 0) this.core.tick();
    this.schedule();
  }

  // ---- the Ready loop ------------------------------------------------------------------------

  private schedule(): void {
    if (this.stopped) return;
    if (this.looping) {
      this.sendSoon();
      return;
    }
    this.looping = true;
    this.loopDone = this.loop();
  }

  private sendQueued = false;

  /**
   * While a sync is in flight, let the leader's appends for new proposals (and for flow-control
   * slots that acknowledgements freed) leave without waiting for it. Coalesced: at most once
   * per batch of work on the event loop, so proposals still travel together.
   */
  private sendSoon(): void {
    if (this.sendQueued || this.core.currentRole !== "leader") return;
    this.sendQueued = true;
    queueMicrotask(() => {
      this.sendQueued = false;
      if (!this.looping || this.stopped) return;
      for (const m of this.core.takeEarlyMessages()) this.dispatch(m);
    });
  }

  private async loop(): Promise<void> {
    try {
      await Promise.resolve(); // let the current task finish stepping first (bigger batches)
      while (!this.stopped && this.core.hasReady()) {
        await this.handleReady(this.core.ready());
      }
    } catch (err) {
      this.die(err);
    } finally {
      this.looping = false;
    }
  }

  /** A failure that leaves the node unable to go on safely (storage, apply): stop it. */
  private die(err: unknown): void {
    if (this.fatal !== null) return;
    this.fatal = err;
    this.stopped = true;
    clearInterval(this.ticker);
    this.opts.onFatal(err);
  }

  private async handleReady(rd: Ready): Promise<void> {
    const late: Message[] = [];
    for (const m of rd.messages) {
      if (canSendBeforePersist(m)) this.dispatch(m);
      else late.push(m);
    }
    // Committed entries are durable on a majority and here already: apply them (and answer
    // their clients) now rather than after this batch's sync. After a snapshot install they
    // must wait for it.
    if (!rd.snapshot) this.apply(rd.committed);
    const t0 = performance.now();
    // A follower's sync is the critical path of every write it acknowledges, and a follower
    // has little else to do: blocking for it (~0.15-0.2 ms on an SSD) beats the two event-loop
    // round trips of an async write and sync. A leader must keep serving clients and reading
    // acknowledgements while its own sync runs, so it syncs async (measured: blocking on the
    // leader too cuts write throughput by more than half).
    await this.storage.persist(
      rd,
      this.opts.blockingSync === "always" ||
        (this.opts.blockingSync === "follower" && this.core.currentRole !== "leader"),
    );
    if (rd.mustSync) {
      this.stats.persistMs.add(performance.now() - t0);
      this.stats.entriesPerBatch.add(rd.entries.length);
    }
    this.stats.messagesPerBatch.add(rd.messages.length);
    for (const m of late) this.dispatch(m);
    if (rd.snapshot) {
      await this.restoreSnapshot(rd.snapshot);
      this.apply(rd.committed);
    }
    if (rd.readStates.length > 0) this.onReadStates(rd.readStates);
    if (this.readsAwaitingApply.length > 0) this.serveReads();
    this.core.advance(rd);
    this.noteRole();
    this.maybeSnapshot();
  }

  /** Apply entries committed since the last Ready without waiting for the sync in flight. */
  private applyNow(): void {
    try {
      const entries = this.core.takeCommitted();
      if (entries.length === 0) return;
      this.apply(entries);
      if (this.readsAwaitingApply.length > 0) this.serveReads();
    } catch (err) {
      this.die(err); // entries were handed out: the state machine cannot go on consistently
    }
  }

  private apply(entries: Entry[]): void {
    if (entries.length === 0) return;
    this.applyEntries(entries);
    this.stats.appliedPerBatch.add(entries.length);
  }

  private dispatch(m: Message): void {
    switch (m.type) {
      case "voteResp":
      case "appendResp":
      case "snapshotResp": {
        // The core answers the requests it steps in order (types.ts): this reply belongs to
        // the oldest request still waiting.
        const w = this.replyWaiters.shift();
        invariant(
          w !== undefined && w.from === m.to &&
            REPLY_TYPE[w.type as keyof typeof REPLY_TYPE] === m.type,
          () => `reply ${describeMessage(m)} does not match the oldest waiting request`,
        );
        w.resolve(m);
        return;
      }
      case "readIndexResp": {
        const w = this.readIndexWaiters.get(`${m.to}/${m.ctx}`);
        this.readIndexWaiters.delete(`${m.to}/${m.ctx}`);
        w?.(m);
        return;
      }
      case "snapshot":
        this.transport.sendSnapshot(m, this.storage.snapshotPath(m.meta));
        return;
      default:
        this.transport.send(m);
    }
  }

  // ---- applying --------------------------------------------------------------------------------

  private applyEntries(entries: Entry[]): void {
    for (const e of entries) {
      const result = this.kv.apply(e);
      this.bytesSinceSnapshot += e.data.length + ENTRY_OVERHEAD_BYTES;
      const w = this.writes.get(e.index);
      if (w === undefined) continue;
      this.writes.delete(e.index);
      if (w.term === e.term) {
        if (result.error) w.reject(new Error(`the command could not be applied: ${result.error}`));
        else w.resolve(result);
      } else {
        // Another leader's entry took this index: ours can never commit (log matching, §5.3).
        w.reject(
          new NotCommittedError(
            "leadership changed before the write committed; it was not applied",
          ),
        );
      }
    }
  }

  private async restoreSnapshot(meta: SnapshotMeta): Promise<void> {
    const started = performance.now();
    const r = this.received;
    this.received = null;
    const state = r !== null && r.meta.index === meta.index && r.meta.term === meta.term
      ? r.state
      : await this.storage.loadSnapshot(meta);
    this.kv.restore(meta.index, meta.term, state);
    this.lastSnapshotIndex = meta.index;
    this.bytesSinceSnapshot = 0;
    // Writes waiting for indexes the snapshot covers: their fate is in the snapshot, not
    // visible per entry. A write of ours can only be there if it committed in our term, but we
    // cannot tell which: report them as unknown.
    for (const [index, w] of this.writes) {
      if (index > meta.index) continue;
      this.writes.delete(index);
      w.reject(new OutcomeUnknownError("the write's outcome was folded into a snapshot"));
    }
    this.opts.log(
      `installed snapshot ${meta.term}/${meta.index} (${this.kv.size} keys) in ` +
        `${Math.round(performance.now() - started)} ms`,
    );
  }

  /**
   * Snapshot when `snapshotEntries` entries were applied since the last snapshot and the log
   * written since then is at least half the size of that snapshot (so rewriting a large state
   * stays a bounded share of the disk traffic), or when `snapshotBytes` of log were applied.
   */
  private maybeSnapshot(): void {
    if (this.snapshotting || this.stopped) return;
    const since = this.kv.appliedIndex - this.lastSnapshotIndex;
    const { snapshotEntries, snapshotBytes } = this.opts;
    const logBytes = this.bytesSinceSnapshot;
    if (this.snapshotEntriesNext === 0) this.snapshotEntriesNext = this.jittered(snapshotEntries);
    const due = since > 0 && (
      (snapshotEntries > 0 && since >= this.snapshotEntriesNext &&
        logBytes >= this.lastSnapshotBytes / 2) ||
      (snapshotBytes > 0 && logBytes >= snapshotBytes)
    );
    if (!due) return;
    this.snapshotEntriesNext = this.jittered(snapshotEntries);
    this.snapshotting = true;
    const view = this.kv.freeze();
    this.bytesSinceSnapshot = 0;
    const started = performance.now();
    this.storage.saveSnapshot(view, this.voters).then(({ meta, bytes }) => {
      this.kv.thaw(view);
      if (this.stopped) return;
      this.lastSnapshotIndex = Math.max(this.lastSnapshotIndex, meta.index);
      this.lastSnapshotBytes = bytes;
      this.core.compact(meta, Math.max(0, meta.index - this.opts.trailingEntries));
      this.opts.log(
        `snapshot ${meta.term}/${meta.index} (${view.size} keys, ${bytes} bytes) written in ` +
          `${Math.round(performance.now() - started)} ms`,
      );
      this.schedule();
    }, (err) => {
      this.kv.thaw(view);
      this.opts.log(`snapshot at ${view.index} failed: ${(err as Error).message}`);
    }).finally(() => {
      this.snapshotting = false;
    });
  }

  private jittered(n: number): number {
    return Math.round(n * (1 + 0.5 * this.opts.random()));
  }

  // ---- client writes ---------------------------------------------------------------------------

  /** Replicate a put; resolves once it is committed and applied here. */
  put(key: string, value: string): Promise<ApplyResult> {
    return this.propose(encodeCommand({ op: "put", key, value }));
  }

  del(key: string): Promise<ApplyResult> {
    return this.propose(encodeCommand({ op: "del", key }));
  }

  private propose(data: Uint8Array): Promise<ApplyResult> {
    this.assertServing();
    const r: ProposeResult = this.core.propose(data);
    if (!r.ok) {
      if (r.reason === "busy") {
        return Promise.reject(new UnavailableError("too many uncommitted writes; retry shortly"));
      }
      return Promise.reject(this.notLeader());
    }
    this.schedule();
    const deadline = performance.now() + this.opts.writeTimeoutMs;
    return new Promise((resolve, reject) => {
      this.writes.set(r.index, { term: r.term, resolve, reject, deadline });
    });
  }

  // ---- client reads ----------------------------------------------------------------------------

  /**
   * A linearizable read (ReadIndex, thesis §6.4): on the leader after a heartbeat round confirms
   * its leadership; on a follower after asking the leader for the read index. Either way the
   * value is read here once this node has applied that index.
   */
  read(key: string): Promise<{ value: string | undefined; index: number }> {
    this.assertServing();
    if (this.reads.size >= this.opts.pendingReadsMax) {
      return Promise.reject(new UnavailableError("too many reads waiting; retry shortly"));
    }
    const ctx = ++this.ctxSeq;
    const deadline = performance.now() + this.opts.readTimeoutMs;
    const p = new Promise<{ value: string | undefined; index: number }>((resolve, reject) => {
      this.reads.set(ctx, { ctx, key, index: -1, resolve, reject, deadline });
    });
    this.core.readIndex(ctx);
    this.schedule();
    return p;
  }

  /** A local read of whatever this node has applied: fast, possibly stale. */
  staleRead(key: string): { value: string | undefined; index: number } {
    return { value: this.kv.get(key), index: this.kv.appliedIndex };
  }

  private onReadStates(states: ReadState[]): void {
    for (const rs of states) {
      const r = this.reads.get(rs.ctx);
      if (r === undefined) continue;
      if (!rs.ok) {
        this.dropRead(rs.ctx);
        r.reject(new UnavailableError("the read could not be confirmed by a leader (election?)"));
        continue;
      }
      r.index = rs.index;
      this.readsAwaitingApply.push(r);
    }
  }

  private serveReads(): void {
    const applied = this.kv.appliedIndex;
    const still: ReadWaiter[] = [];
    for (const r of this.readsAwaitingApply) {
      if (r.index > applied) {
        still.push(r);
        continue;
      }
      this.reads.delete(r.ctx);
      r.resolve({ value: this.kv.get(r.key), index: applied });
    }
    this.readsAwaitingApply = still;
  }

  private dropRead(ctx: number): void {
    const r = this.reads.get(ctx);
    this.reads.delete(ctx);
    if (r) this.readsAwaitingApply = this.readsAwaitingApply.filter((x) => x !== r);
  }

  // ---- messages from peers ---------------------------------------------------------------------

  /**
   * A request from a peer (vote, append, snapshot chunk, readIndex). Resolves with the core's
   * reply once it may be sent (after the batch it depends on is durable), or null if the node
   * stopped first.
   */
  handleRequest(m: Message): Promise<Message | null> {
    this.checkPeerMessage(m);
    if (this.stopped) return Promise.resolve(null);
    let p: Promise<Message | null>;
    if (m.type === "readIndex") {
      p = new Promise((resolve) => {
        const key = `${m.from}/${m.ctx}`;
        this.readIndexWaiters.set(key, resolve);
        setTimeout(() => {
          if (this.readIndexWaiters.get(key) === resolve) {
            this.readIndexWaiters.delete(key);
            resolve(null);
          }
        }, this.opts.readTimeoutMs);
      });
    } else if (m.type === "append") {
      const t0 = performance.now();
      p = new Promise((resolve) =>
        this.replyWaiters.push({
          from: m.from,
          type: m.type,
          resolve: (r) => {
            this.stats.appendHoldMs.add(performance.now() - t0);
            resolve(r);
          },
        })
      );
    } else if (m.type === "vote" || m.type === "snapshot") {
      p = new Promise((resolve) => this.replyWaiters.push({ from: m.from, type: m.type, resolve }));
    } else {
      throw new RangeError(`${m.type} is not a request`);
    }
    this.core.step(m);
    if (this.looping) this.applyNow();
    this.schedule();
    return p;
  }

  /**
   * One chunk of a snapshot the leader streams to us (InstallSnapshot, §7). Each chunk is first
   * stepped as a non-final snapshot message (term check, election timer reset), then stored at
   * `offset`. When all `totalBytes` are here the file is verified and the final message lets
   * the core decide to install it. Returns the core's reply and the offset to continue from.
   */
  async handleSnapshotChunk(
    m: SnapshotRequest,
    offset: number,
    totalBytes: number,
    data: Uint8Array,
  ): Promise<{ reply: Message | null; next: number }> {
    const ack = await this.handleRequest({ ...m, done: false });
    if (ack === null || ack.type !== "snapshotResp" || !ack.accepted) {
      return { reply: ack, next: 0 };
    }
    const next = await this.storage.receiveChunk(m.meta, offset, data);
    if (next < totalBytes) return { reply: ack, next };
    if (next > totalBytes) {
      throw new RangeError(`snapshot has ${next} bytes, sender said ${totalBytes}`);
    }
    const state = await this.storage.finishReceive(m.meta);
    this.received = { meta: m.meta, state };
    const pending = this.handleRequest({ ...m, done: true }); // steps it now
    if (this.core.installPending?.index !== m.meta.index) this.received = null; // not needed
    return { reply: await pending, next };
  }

  /** A reply that came back on the HTTP exchange of a request we sent. */
  onReply(m: Message): void {
    if (this.stopped) return;
    this.checkPeerMessage(m);
    this.core.step(m);
    if (this.looping) this.applyNow(); // a sync is in flight: do not make clients wait for it
    this.schedule();
  }

  /** A request we sent got no reply (connection refused, timeout, bad answer). */
  onSendFailure(m: Message): void {
    if (this.stopped) return;
    if (m.type === "append") this.core.reportUnreachable(m.to);
    if (m.type === "snapshot") this.core.reportSnapshot(m.to, false);
    if (m.type === "readIndex") this.core.readFailed(m.ctx);
    this.schedule();
  }

  /** Log role, term and leader changes (once per Ready, cheap). */
  private noteRole(): void {
    const role = this.core.currentRole, leader = this.core.leaderId;
    const term = this.core.currentTerm;
    if (role === this.seen.role && leader === this.seen.leader && term === this.seen.term) return;
    this.seen = { role, leader, term };
    this.opts.log(
      `term ${term}: ${role}${leader && role !== "leader" ? `, leader ${leader}` : ""}`,
    );
  }

  private checkPeerMessage(m: Message): void {
    if (m.to !== this.id) throw new RangeError(`message addressed to ${m.to}, this is ${this.id}`);
    if (!this.opts.peers.has(m.from) || m.from === this.id) {
      throw new RangeError(`message from unknown peer ${JSON.stringify(m.from)}`);
    }
  }

  // ---- status ----------------------------------------------------------------------------------

  status(): RaftStatus & { leaderAddr: string } {
    const s = this.core.status();
    return {
      ...s,
      lastApplied: this.kv.appliedIndex,
      leaderAddr: this.opts.peers.get(s.leaderId) ?? "",
    };
  }

  isLeader(): boolean {
    return this.core.currentRole === "leader";
  }

  notLeader(): NotLeaderError {
    const leader = this.core.leaderId;
    return new NotLeaderError(leader, this.opts.peers.get(leader) ?? "");
  }

  peerAddr(id: NodeId): string | undefined {
    return this.opts.peers.get(id);
  }

  private assertServing(): void {
    if (this.stopped) {
      throw new UnavailableError(
        this.fatal
          ? `the node stopped after a storage failure: ${this.fatal}`
          : "the node is stopping",
      );
    }
  }
}
