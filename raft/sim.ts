/**
 * A seeded, in-memory simulation of a whole Raft cluster built on the real core (raft.ts), the
 * real message codec and the real key-value state machine. One seed fixes everything: ticks,
 * message loss, duplication, delay and reordering, partitions, crashes and restarts, client
 * writes and reads, snapshots. After every simulated tick it checks Raft's safety properties:
 *
 *   election safety      at most one leader per term
 *   log matching         two logs with an entry of the same index and term agree up to it
 *   leader completeness  a new leader holds every entry already applied anywhere
 *   state machine safety no two nodes apply different entries at the same index, and every
 *                        installed snapshot equals the reference state at its index
 *   durability           every write acknowledged to a client stays in the applied history
 *   linearizable reads   a ReadIndex read reflects every write committed before it began
 *   reply contract       every request the core steps gets exactly one reply, in step order
 *
 * and, once every fault is healed, liveness: a leader is elected, a new write commits, and all
 * nodes converge on the same state. A failure throws SimulationError with the seed and the last
 * events, so `runSimulation({ seed })` replays it exactly.
 */
import { decodeCommand, encodeCommand } from "../kv/command.ts";
import { KvStore } from "../kv/store.ts";
import { decodeMessage, encodeMessage } from "./codec.ts";
import { describeMessage, describeReady } from "./describe.ts";
import { defaultRaftConfig, Raft, type RaftConfig } from "./raft.ts";
import { Prng } from "./rand.ts";
import {
  type Entry,
  EntryType,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
  REPLY_TYPE,
  type SnapshotMeta,
} from "./types.ts";

export interface SimOptions {
  seed: number;
  nodes?: number;
  /** Ticks with faults, followed by a healed phase that must reach liveness. */
  chaosTicks?: number;
  healTicksMax?: number;
  /** Take a snapshot when this many entries were applied since the last one (0: never). */
  snapshotEntries?: number;
  /** Entries kept in the log below a snapshot. */
  trailingEntries?: number;
  keys?: number;
  /** Fault rates per message / per tick. */
  loss?: number;
  duplicate?: number;
  delayTicksMax?: number;
  crashRate?: number;
  partitionRate?: number;
  writeRate?: number;
  readRate?: number;
  eventsKept?: number;
}

export interface SimReport {
  seed: number;
  ticks: number;
  leaders: number;
  maxTerm: number;
  committed: number;
  acked: number;
  reads: number;
  readsFailed: number;
  crashes: number;
  partitions: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  messages: number;
  dropped: number;
}

export class SimulationError extends Error {
  override name = "SimulationError";
  constructor(readonly seed: number, reason: string, readonly events: string[]) {
    super(`seed ${seed}: ${reason}\nlast events:\n  ${events.join("\n  ")}`);
  }
}

interface Disk {
  hard: HardState;
  /** Contiguous entries; may start at or below the snapshot index (trailing entries). */
  entries: Entry[];
  snapshot: { meta: SnapshotMeta; state: [string, string][] } | null;
}

interface Proposal {
  term: number;
  key: string;
  value: string;
}

interface PendingRead {
  key: string;
  invokeCommit: number;
  index?: number;
}

interface SnapTransfer {
  from: NodeId;
  index: number;
  chunks: number;
  received: number;
}

class SimNode {
  disk: Disk = { hard: { term: 0, vote: "", commit: 0 }, entries: [], snapshot: null };
  core: Raft | null = null;
  kv = new KvStore();
  pending: { rd: Ready; doneAt: number } | null = null;
  /** Requests stepped since the last Ready: each must get one reply, in order. */
  expectReplies: { to: NodeId; type: string }[] = [];
  proposals = new Map<number, Proposal>();
  reads = new Map<number, PendingRead>();
  incoming: SnapTransfer | null = null;
  downUntil = -1;
  lastSnapshotIndex = 0;
  /** Probability that a tick is skipped: this node's clock runs slow by that much. */
  clockSkip = 0;
  /** Entry bytes per append (tiny values force one entry per message). */
  appendBytesMax = 300;
  constructor(readonly id: NodeId) {}
  get up(): boolean {
    return this.core !== null;
  }
}

interface InFlight {
  at: number;
  bytes: Uint8Array;
  from: NodeId;
  to: NodeId;
  /** For snapshot chunk transfers: chunk number and total (the final one has done=true). */
  chunk?: { n: number; of: number; state: [string, string][] };
}

export function runSimulation(opts: SimOptions): SimReport {
  return new Simulation(opts).run();
}

class Simulation {
  private readonly rng: Prng;
  private readonly o: Required<SimOptions>;
  private readonly ids: NodeId[];
  private readonly nodes = new Map<NodeId, SimNode>();
  private net: InFlight[] = [];
  private blocked = new Set<string>();
  private healAt = -1;
  private time = 0;
  private events: string[] = [];
  private evPos = 0;
  private ctxSeq = 0;
  private valueSeq = 0;

  // global knowledge for the checks
  private leaderOfTerm = new Map<number, NodeId>();
  /** First application of each index anywhere: the reference history. */
  private applied: Entry[] = [];
  /** Per key: (index, value) changes in index order (value null = deleted). */
  private keyHistory = new Map<string, { index: number; value: string | null }[]>();
  private acked: { index: number; term: number; key: string; value: string }[] = [];
  private report: SimReport;

  constructor(opts: SimOptions) {
    this.o = {
      nodes: 3,
      chaosTicks: 1500,
      healTicksMax: 3000,
      snapshotEntries: 12,
      trailingEntries: 3,
      keys: 4,
      loss: 0.05,
      duplicate: 0.02,
      delayTicksMax: 3,
      crashRate: 0.004,
      partitionRate: 0.004,
      writeRate: 0.3,
      readRate: 0.2,
      eventsKept: 80,
      ...opts,
    };
    this.rng = new Prng(opts.seed);
    this.ids = Array.from({ length: this.o.nodes }, (_, i) => `n${i + 1}`);
    for (const id of this.ids) {
      const n = new SimNode(id);
      n.clockSkip = this.rng.pick([0, 0.02, 0.1, 0.3]);
      n.appendBytesMax = this.rng.pick([1, 100, 300, 2000]);
      this.nodes.set(id, n);
    }
    this.report = {
      seed: opts.seed,
      ticks: 0,
      leaders: 0,
      maxTerm: 0,
      committed: 0,
      acked: 0,
      reads: 0,
      readsFailed: 0,
      crashes: 0,
      partitions: 0,
      snapshotsTaken: 0,
      snapshotsInstalled: 0,
      messages: 0,
      dropped: 0,
    };
  }

  run(): SimReport {
    for (const n of this.nodes.values()) this.start(n);
    for (; this.time < this.o.chaosTicks; this.time++) {
      this.faults();
      this.tickAll();
    }
    this.healEverything();
    const deadline = this.time + this.o.healTicksMax;
    let probe: { key: string; value: string } | null = null;
    for (; this.time < deadline; this.time++) {
      this.tickAll(false);
      const leader = this.currentLeader();
      if (!leader) continue;
      if (probe === null) {
        probe = { key: "liveness", value: `final-${this.o.seed}` };
        const r = leader.core!.propose(encodeCommand({ op: "put", ...probe }));
        if (!r.ok) probe = null;
        else leader.proposals.set(r.index, { term: r.term, ...probe });
        continue;
      }
      if (this.converged(probe)) {
        this.finalChecks();
        this.report.ticks = this.time;
        return this.report;
      }
      if (this.time % 200 === 0) probe = null; // the probe may have been lost in a leader change
    }
    const states = [...this.nodes.values()].map((n) => {
      const s = n.core?.status();
      return s
        ? `${n.id} ${s.role} t${s.term} commit=${s.commitIndex} applied=${n.kv.appliedIndex} ` +
          `last=${s.lastIndex} ${Object.values(s.progress).join(" ")}`
        : `${n.id} down`;
    });
    this.fail(`no liveness ${this.o.healTicksMax} ticks after healing: ${states.join("; ")}`);
  }

  // ---- the tick loop --------------------------------------------------------------------------

  private tickAll(clients = true): void {
    for (const n of this.shuffled()) {
      if (n.up && !this.rng.chance(n.clockSkip)) n.core!.tick(); // some clocks run slow
    }
    this.deliver();
    this.expireTransfers();
    for (const n of this.shuffled()) if (n.up) this.processReady(n);
    if (clients) this.clients();
    this.check();
  }

  private shuffled(): SimNode[] {
    const xs = [...this.nodes.values()];
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.rng.int(0, i + 1);
      [xs[i], xs[j]] = [xs[j], xs[i]];
    }
    return xs;
  }

  private deliver(): void {
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.net) (f.at <= this.time ? due : later).push(f);
    this.net = later;
    // Messages due in the same tick arrive in random order.
    for (let i = due.length - 1; i > 0; i--) {
      const j = this.rng.int(0, i + 1);
      [due[i], due[j]] = [due[j], due[i]];
    }
    for (const f of due) this.arrive(f);
  }

  private arrive(f: InFlight): void {
    const dst = this.nodes.get(f.to)!;
    const m = decodeMessage(f.bytes);
    if (!dst.up || this.blocked.has(`${f.from}>${f.to}`)) {
      this.report.dropped++;
      this.event(`drop ${describeMessage(m)}`);
      this.snapshotLost(m, f);
      return;
    }
    if (f.chunk) {
      // A snapshot streams as chunks; the receiver keeps them in memory (lost on a crash) and
      // steps the final message only when it has all of them, as the real transport does.
      const meta = (m as { meta: SnapshotMeta }).meta;
      const t = dst.incoming;
      if (f.chunk.n === 0) {
        dst.incoming = { from: f.from, index: meta.index, chunks: f.chunk.of, received: 1 };
      } else if (t && t.from === f.from && t.index === meta.index && t.received === f.chunk.n) {
        t.received++;
      } else {
        this.event(`snapshot chunk ${f.chunk.n} out of sequence at ${f.to}: transfer fails`);
        this.snapshotLost(m, f);
        return;
      }
      if (f.chunk.n === f.chunk.of - 1) {
        (m as { done: boolean }).done = true;
        this.stepInto(dst, m, f.chunk.state);
        dst.incoming = null;
        return;
      }
    }
    this.stepInto(dst, m, null);
  }

  /** Snapshot streams in progress, by "leader>peer": when the transport gives up on them. */
  private transfers = new Map<string, number>();

  /** The real transport times out a stream whose answer never comes (receiver crashed). */
  private expireTransfers(): void {
    for (const [key, deadline] of this.transfers) {
      if (deadline > this.time) continue;
      this.transfers.delete(key);
      const [leaderId, peer] = key.split(">");
      const l = this.nodes.get(leaderId)!;
      if (l.up) l.core!.reportSnapshot(peer, false);
      this.event(`snapshot stream ${key} timed out`);
    }
  }

  private snapshotLost(m: Message, f: InFlight): void {
    // The real transport notices a failed snapshot stream and reports it to the leader core.
    const leaderId = m.type === "snapshot" ? f.from : m.type === "snapshotResp" ? f.to : null;
    if (leaderId === null) return;
    const peer = m.type === "snapshot" ? f.to : f.from;
    const l = this.nodes.get(leaderId)!;
    if (l.up) l.core!.reportSnapshot(peer, false);
  }

  private stepInto(n: SimNode, m: Message, snapState: [string, string][] | null): void {
    this.event(`recv ${describeMessage(m)}`);
    if (m.type === "snapshotResp" && m.matchIndex > 0) this.transfers.delete(`${m.to}>${m.from}`);
    if (m.type === "vote" || m.type === "append" || m.type === "snapshot") {
      n.expectReplies.push({ to: m.from, type: REPLY_TYPE[m.type] });
    }
    if (snapState) {
      this.snapStates.set(`${n.id}/${(m as { meta: SnapshotMeta }).meta.index}`, snapState);
    }
    n.core!.step(m);
    this.observeRole(n);
  }

  /** Snapshot content received by a node, waiting for its core to decide to install it. */
  private snapStates = new Map<string, [string, string][]>();

  private send(from: SimNode, m: Message): void {
    this.report.messages++;
    if (this.blocked.has(`${m.from}>${m.to}`) || this.rng.chance(this.lossRate())) {
      this.report.dropped++;
      this.event(`lost ${describeMessage(m)}`);
      if (m.type === "snapshot" || m.type === "snapshotResp") {
        this.snapshotLost(m, { at: 0, bytes: new Uint8Array(), from: m.from, to: m.to });
      }
      return;
    }
    const bytes = encodeMessage(m).slice();
    const delay = () => this.rng.int(0, this.delayMax() + 1);
    if (m.type === "snapshot") {
      const snap = from.disk.snapshot;
      if (!snap || snap.meta.index !== m.meta.index) {
        this.fail(`${from.id} asked to send snapshot ${m.meta.index} it does not hold`);
      }
      const of = this.rng.int(1, 4);
      let at = this.time;
      this.transfers.set(`${m.from}>${m.to}`, this.time + 60);
      for (let n = 0; n < of; n++) {
        at += 1 + delay(); // chunks of one stream arrive in order
        const chunkMsg = encodeMessage({ ...m, done: false }).slice();
        this.net.push({
          at,
          bytes: chunkMsg,
          from: m.from,
          to: m.to,
          chunk: { n, of, state: snap.state },
        });
      }
      return;
    }
    this.net.push({ at: this.time + delay(), bytes, from: m.from, to: m.to });
    if (this.rng.chance(this.dupRate())) {
      this.net.push({ at: this.time + delay(), bytes, from: m.from, to: m.to });
    }
  }

  private healed = false;
  private lossRate(): number {
    return this.healed ? 0 : this.o.loss;
  }
  private dupRate(): number {
    return this.healed ? 0 : this.o.duplicate;
  }
  private delayMax(): number {
    return this.healed ? Math.min(2, this.o.delayTicksMax) : this.o.delayTicksMax;
  }

  // ---- a node's driver ------------------------------------------------------------------------

  private processReady(n: SimNode): void {
    if (n.pending !== null) {
      if (n.pending.doneAt > this.time) {
        // While the sync runs, the driver applies what a majority acknowledged meanwhile, and a
        // leader sends appends for new entries.
        if (this.rng.chance(0.5)) {
          for (const e of n.core!.takeCommitted()) this.apply(n, e);
          this.serveReads(n);
        }
        if (this.rng.chance(0.5)) { for (const m of n.core!.takeEarlyMessages()) this.send(n, m); }
        return;
      }
      const rd = n.pending.rd;
      n.pending = null;
      this.finishReady(n, rd);
    }
    const core = n.core!;
    if (!core.hasReady()) return;
    const rd = core.ready();
    this.event(`${n.id} ready ${describeReady(rd)}`);
    this.checkReplies(n, rd);
    // A leader may send appends before its own write is durable (thesis §10.2.1).
    for (const m of rd.messages) if (m.type === "append" || m.type === "snapshot") this.send(n, m);
    // Committed entries are already durable here and on a majority: the driver applies them
    // before this Ready's sync (after a snapshot install, only once it is installed).
    if (!rd.snapshot) { for (const e of rd.committed) this.apply(n, e); }
    if (rd.mustSync && this.rng.chance(0.3)) {
      n.pending = { rd, doneAt: this.time + this.rng.int(1, 4) }; // a slow disk
    } else {
      this.finishReady(n, rd);
    }
  }

  private checkReplies(n: SimNode, rd: Ready): void {
    const replies = rd.messages.filter((m) =>
      m.type === "voteResp" || m.type === "appendResp" || m.type === "snapshotResp"
    );
    const want = n.expectReplies;
    n.expectReplies = [];
    const got = replies.map((m) => `${m.to}:${m.type}`).join(",");
    const exp = want.map((w) => `${w.to}:${w.type}`).join(",");
    if (got !== exp) this.fail(`${n.id} replies ${got || "none"} do not match requests ${exp}`);
  }

  private finishReady(n: SimNode, rd: Ready): void {
    const core = n.core!;
    this.persist(n, rd);
    for (const m of rd.messages) if (m.type !== "append" && m.type !== "snapshot") this.send(n, m);
    if (rd.snapshot) {
      this.install(n, rd.snapshot);
      for (const e of rd.committed) this.apply(n, e);
    }
    for (const rs of rd.readStates) {
      const r = n.reads.get(rs.ctx);
      if (!r) continue;
      if (!rs.ok) {
        n.reads.delete(rs.ctx);
        this.report.readsFailed++;
        continue;
      }
      r.index = rs.index;
    }
    this.serveReads(n);
    core.advance(rd);
    this.observeRole(n);
    this.maybeSnapshot(n);
  }

  private persist(n: SimNode, rd: Ready): void {
    const d = n.disk;
    if (rd.snapshot) {
      const state = this.snapStates.get(`${n.id}/${rd.snapshot.index}`);
      if (!state) this.fail(`${n.id} installs snapshot ${rd.snapshot.index} it never received`);
      d.snapshot = { meta: rd.snapshot, state: state! };
      d.entries = [];
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      const diskFirst = d.entries.length > 0 ? d.entries[0].index : first;
      const keep = Math.max(0, first - diskFirst);
      if (d.entries.length > 0 && first < diskFirst) {
        this.fail(`${n.id} persists entry ${first} below its disk log start ${diskFirst}`);
      }
      if (d.entries.length > 0 && first > d.entries[d.entries.length - 1].index + 1) {
        this.fail(`${n.id} persists entry ${first} leaving a gap after ${d.entries.length}`);
      }
      d.entries = d.entries.slice(0, keep).concat(rd.entries);
      if (d.entries.length > 0 && d.snapshot === null && d.entries[0].index !== 1) {
        this.fail(`${n.id} disk log starts at ${d.entries[0].index} without a snapshot`);
      }
    }
    if (rd.hardState) d.hard = { ...rd.hardState };
  }

  private install(n: SimNode, meta: SnapshotMeta): void {
    const state = this.snapStates.get(`${n.id}/${meta.index}`)!;
    this.snapStates.delete(`${n.id}/${meta.index}`);
    this.checkStateAt(meta.index, state, `${n.id} installed snapshot`);
    n.kv.restore(meta.index, meta.term, state);
    n.lastSnapshotIndex = meta.index;
    // Reads waiting for an index the snapshot covers can be served now.
    this.report.snapshotsInstalled++;
    this.event(`${n.id} installed snapshot ${meta.term}/${meta.index}`);
  }

  private apply(n: SimNode, e: Entry): void {
    const ref = this.applied[e.index - 1];
    if (ref === undefined) {
      if (e.index !== this.applied.length + 1) {
        this.fail(`${n.id} applies ${e.index} before anyone applied ${this.applied.length + 1}`);
      }
      this.applied.push(e);
      this.report.committed = e.index;
      this.recordKeyChange(e);
    } else if (ref.term !== e.term || !sameBytes(ref.data, e.data)) {
      this.fail(
        `state machine safety: ${n.id} applies ${e.term}/${e.index} but ${ref.term}/${e.index} ` +
          `was applied before`,
      );
    }
    n.kv.apply(e);
    const p = n.proposals.get(e.index);
    if (p) {
      n.proposals.delete(e.index);
      if (p.term === e.term) {
        this.acked.push({ index: e.index, term: e.term, key: p.key, value: p.value });
        this.report.acked++;
      }
    }
  }

  private recordKeyChange(e: Entry): void {
    if (e.type !== EntryType.Command) return;
    const c = decodeCommand(e.data);
    const h = this.keyHistory.get(c.key) ?? [];
    h.push({ index: e.index, value: c.op === "put" ? c.value : null });
    this.keyHistory.set(c.key, h);
  }

  private valueAt(key: string, index: number): string | null {
    const h = this.keyHistory.get(key);
    if (!h) return null;
    let v: string | null = null;
    for (const c of h) {
      if (c.index > index) break;
      v = c.value;
    }
    return v;
  }

  private checkStateAt(index: number, state: [string, string][], what: string): void {
    const want: [string, string][] = [];
    for (const key of [...this.keyHistory.keys()].sort()) {
      const v = this.valueAt(key, index);
      if (v !== null) want.push([key, v]);
    }
    const got = [...state].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      this.fail(`${what} at ${index}: ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
    }
  }

  private serveReads(n: SimNode): void {
    for (const [ctx, r] of n.reads) {
      if (r.index === undefined || n.kv.appliedIndex < r.index) continue;
      n.reads.delete(ctx);
      if (r.index < r.invokeCommit) {
        this.fail(
          `linearizability: ${n.id} read ${r.key} at index ${r.index} but ${r.invokeCommit} ` +
            `was committed before the read began`,
        );
      }
      const got = n.kv.get(r.key) ?? null;
      const want = this.valueAt(r.key, n.kv.appliedIndex);
      if (got !== want) {
        this.fail(`${n.id} read ${r.key}=${got} at ${n.kv.appliedIndex}, reference ${want}`);
      }
      this.report.reads++;
    }
  }

  private maybeSnapshot(n: SimNode): void {
    const every = this.o.snapshotEntries;
    if (every <= 0 || n.kv.appliedIndex - n.lastSnapshotIndex < every) return;
    const meta: SnapshotMeta = {
      index: n.kv.appliedIndex,
      term: n.kv.appliedTerm,
      voters: this.ids,
    };
    const view = n.kv.freeze();
    const state = [...view.entries()];
    n.kv.thaw(view);
    this.checkStateAt(meta.index, state, `${n.id} took snapshot`);
    n.disk.snapshot = { meta, state };
    n.lastSnapshotIndex = meta.index;
    const compactTo = Math.max(0, meta.index - this.o.trailingEntries);
    n.core!.compact(meta, compactTo);
    const st = n.core!.status();
    // The disk keeps what the core keeps (it may keep more if entries were not yet durable).
    n.disk.entries = n.disk.entries.filter((e) => e.index >= st.firstIndex);
    this.report.snapshotsTaken++;
    this.event(`${n.id} snapshot at ${meta.term}/${meta.index}, log from ${st.firstIndex}`);
  }

  // ---- lifecycle and faults --------------------------------------------------------------------

  private config(n: SimNode): RaftConfig {
    return {
      ...defaultRaftConfig,
      id: n.id,
      voters: this.ids,
      electionTicksMin: 10,
      electionTicksMax: 20,
      heartbeatTicks: 2,
      random: this.rng.fn(),
      appendBytesMax: n.appendBytesMax,
      inflightAppendsMax: 3,
      uncommittedEntriesMax: 200,
      applyBatchMax: 16,
    };
  }

  private start(n: SimNode): void {
    const d = n.disk;
    const base = d.snapshot?.meta.index ?? 0;
    const entries = d.entries.filter((e) => e.index > base);
    n.core = new Raft(this.config(n), {
      hardState: d.hard,
      snapshot: d.snapshot?.meta ?? null,
      entries,
    });
    n.kv = new KvStore();
    if (d.snapshot) n.kv.restore(d.snapshot.meta.index, d.snapshot.meta.term, d.snapshot.state);
    n.lastSnapshotIndex = base;
    n.downUntil = -1;
    this.event(
      `${n.id} start t${d.hard.term} commit=${d.hard.commit} snap=${base} log=${entries.length}`,
    );
  }

  private crash(n: SimNode): void {
    if (n.pending && this.rng.chance(0.5)) {
      // A torn batch: a prefix of the entries reached the disk, the rest (and the hard state
      // record that follows them) did not. Nothing of it was acknowledged.
      const rd = n.pending.rd;
      const k = this.rng.int(0, rd.entries.length + 1);
      if (!rd.snapshot) {
        this.persist(n, { ...rd, entries: rd.entries.slice(0, k), hardState: null });
      }
    }
    n.core = null;
    n.pending = null;
    n.expectReplies = [];
    n.proposals.clear();
    n.reads.clear();
    n.incoming = null;
    n.downUntil = this.time + this.rng.int(5, 60);
    for (const key of [...this.snapStates.keys()]) {
      if (key.startsWith(`${n.id}/`)) this.snapStates.delete(key);
    }
    this.report.crashes++;
    this.event(`${n.id} CRASH`);
  }

  private faults(): void {
    for (const n of this.nodes.values()) {
      if (!n.up && this.time >= n.downUntil) this.start(n);
      else if (n.up && this.rng.chance(this.o.crashRate)) {
        const down = [...this.nodes.values()].filter((x) => !x.up).length;
        if (down < Math.ceil(this.o.nodes / 2)) this.crash(n);
      }
    }
    if (this.healAt >= 0 && this.time >= this.healAt) {
      this.blocked.clear();
      this.healAt = -1;
      this.event("partition healed");
    } else if (this.healAt < 0 && this.rng.chance(this.o.partitionRate)) {
      this.partition();
    }
  }

  private partition(): void {
    const kind = this.rng.int(0, 3);
    const ids = [...this.ids];
    if (kind === 0) {
      const iso = this.rng.pick(ids);
      for (const o of ids) {
        if (o !== iso) {
          this.blocked.add(`${iso}>${o}`);
          this.blocked.add(`${o}>${iso}`);
        }
      }
      this.event(`partition: ${iso} isolated`);
    } else if (kind === 1) {
      const side = new Set(ids.filter(() => this.rng.chance(0.5)));
      for (const a of ids) {
        for (const b of ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}>${b}`);
      }
      this.event(`partition: {${[...side]}} | {${ids.filter((i) => !side.has(i))}}`);
    } else {
      const a = this.rng.pick(ids), b = this.rng.pick(ids.filter((x) => x !== a));
      this.blocked.add(`${a}>${b}`);
      this.event(`partition: link ${a}>${b} cut`);
    }
    this.healAt = this.time + this.rng.int(20, 200);
    this.report.partitions++;
  }

  private healEverything(): void {
    this.healed = true;
    this.blocked.clear();
    this.healAt = -1;
    for (const n of this.nodes.values()) if (!n.up) this.start(n);
    this.event("HEAL: all nodes up, no partitions, no loss");
  }

  // ---- clients --------------------------------------------------------------------------------

  private clients(): void {
    if (this.rng.chance(this.o.writeRate)) {
      const n = this.rng.pick([...this.nodes.values()]);
      if (n.up) {
        const key = `k${this.rng.int(0, this.o.keys)}`;
        const del = this.rng.chance(0.15);
        const value = `v${++this.valueSeq}`;
        const data = encodeCommand(del ? { op: "del", key } : { op: "put", key, value });
        const r = n.core!.propose(data);
        if (r.ok) n.proposals.set(r.index, { term: r.term, key, value: del ? "" : value });
      }
    }
    if (this.rng.chance(this.o.readRate)) {
      const n = this.rng.pick([...this.nodes.values()]);
      if (n.up) {
        const ctx = ++this.ctxSeq;
        n.reads.set(ctx, {
          key: `k${this.rng.int(0, this.o.keys)}`,
          invokeCommit: this.maxCommit(),
        });
        n.core!.readIndex(ctx);
      }
    }
  }

  /** The highest commit index any node knows: everything up to it is committed. */
  private maxCommit(): number {
    let c = 0;
    for (const n of this.nodes.values()) {
      c = Math.max(c, n.core ? n.core.status().commitIndex : n.disk.hard.commit);
    }
    return c;
  }

  // ---- checks ---------------------------------------------------------------------------------

  private observeRole(n: SimNode): void {
    const s = n.core!.status();
    if (s.term > this.report.maxTerm) this.report.maxTerm = s.term;
    if (s.role !== "leader") return;
    const prev = this.leaderOfTerm.get(s.term);
    if (prev === undefined) {
      this.leaderOfTerm.set(s.term, n.id);
      this.report.leaders++;
      this.event(`${n.id} LEADER of term ${s.term}`);
      this.checkLeaderCompleteness(n);
    } else if (prev !== n.id) {
      this.fail(`election safety: ${prev} and ${n.id} both lead term ${s.term}`);
    }
  }

  private checkLeaderCompleteness(n: SimNode): void {
    const core = n.core!;
    const s = core.status();
    for (let i = s.firstIndex; i <= this.applied.length; i++) {
      const e = core.entryAt(i);
      const ref = this.applied[i - 1];
      if (!e || e.term !== ref.term) {
        this.fail(
          `leader completeness: new leader ${n.id} (term ${s.term}) lacks committed ` +
            `${ref.term}/${i}, has ${e ? `${e.term}/${i}` : "nothing"}`,
        );
      }
    }
    if (s.snapshotIndex > this.applied.length) {
      this.fail(`${n.id} holds a snapshot at ${s.snapshotIndex} beyond the applied history`);
    }
  }

  private check(): void {
    const live = [...this.nodes.values()].filter((n) => n.up);
    for (const n of live) this.observeRole(n);
    // Log matching (§5.3): same index and term => identical logs up to there.
    for (let a = 0; a < live.length; a++) {
      for (let b = a + 1; b < live.length; b++) this.checkLogMatching(live[a], live[b]);
    }
  }

  private checkLogMatching(x: SimNode, y: SimNode): void {
    const sx = x.core!.status(), sy = y.core!.status();
    const lo = Math.max(sx.firstIndex, sy.firstIndex);
    const hi = Math.min(sx.lastIndex, sy.lastIndex);
    let matched = false;
    for (let i = hi; i >= lo; i--) {
      const ex = x.core!.entryAt(i)!, ey = y.core!.entryAt(i)!;
      if (!matched) {
        matched = ex.term === ey.term;
        if (!matched) continue;
      }
      if (ex.term !== ey.term || !sameBytes(ex.data, ey.data)) {
        this.fail(
          `log matching: ${x.id} and ${y.id} share a later entry but differ at ${i} ` +
            `(${ex.term} vs ${ey.term})`,
        );
      }
    }
  }

  private converged(probe: { key: string; value: string }): boolean {
    const all = [...this.nodes.values()];
    if (all.some((n) => !n.up || n.pending !== null)) return false;
    const target = all[0].kv.appliedIndex;
    if (all.some((n) => n.kv.appliedIndex !== target || n.core!.status().commitIndex !== target)) {
      return false;
    }
    return all.every((n) => n.kv.get(probe.key) === probe.value);
  }

  private finalChecks(): void {
    const all = [...this.nodes.values()];
    for (const n of all) this.checkStateAt(n.kv.appliedIndex, n.kv.dump(), `${n.id} final state`);
    for (const a of this.acked) {
      const ref = this.applied[a.index - 1];
      if (!ref || ref.term !== a.term) {
        this.fail(`acknowledged write ${a.term}/${a.index} (${a.key}) is not in the history`);
      }
    }
  }

  private currentLeader(): SimNode | null {
    let best: SimNode | null = null;
    let bestTerm = -1;
    for (const n of this.nodes.values()) {
      const s = n.core?.status();
      if (s && s.role === "leader" && s.term > bestTerm) {
        best = n;
        bestTerm = s.term;
      }
    }
    return best;
  }

  // ---- events ---------------------------------------------------------------------------------

  private event(text: string): void {
    const line = `[${this.time}] ${text}`;
    if (this.events.length < this.o.eventsKept) this.events.push(line);
    else {
      this.events[this.evPos] = line;
      this.evPos = (this.evPos + 1) % this.o.eventsKept;
    }
  }

  private fail(reason: string): never {
    const trail = this.events.slice(this.evPos).concat(this.events.slice(0, this.evPos));
    throw new SimulationError(this.o.seed, reason, trail);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
