/**
 * `deno task chaos`: failure testing of a real 3-node cluster — real processes, real signals, real
 * socket failures — with every outcome checked. Two modes.
 *
 * SCENARIO (no arguments, or only --base-port / --work-dir). The seed's failover scenario, one
 * checked and timed step at a time, in `.cluster/chaos/scenario` on ports 9301-9303: start 3
 * nodes; wait for a leader; write 100 keys (all must be acknowledged); SIGKILL the leader; from
 * the kill on, a writer keeps trying (following 307 redirects to whoever is named leader) until a
 * write is acknowledged: that gap is the write unavailability, reported beside the time to a new
 * leader; read every acknowledged key from both survivors (linearizable GETs); write 50 more keys;
 * restart the old leader from its data dir and check that it catches up (its lastApplied reaches
 * the leader's commitIndex) and serves every key from its own state (`stale=true` reads). Each
 * step prints PASS or FAIL; the exit code is 0 only if all passed.
 *
 * RANDOMIZED (any of --duration --nemesis --clients --seed --keys --load). Nodes in
 * `.cluster/chaos/run-<seed>` whose peer links all go through TCP proxies, one per direction
 * (link_proxy.ts ProxyMesh): node X's --peers names, for every other node Y, the proxy X->Y, so
 * a link can be cut in one direction with real connection failures. Clients talk to the nodes'
 * real addresses.
 *
 * What is recorded. `--clients` concurrent clients, each with at most one operation outstanding,
 * issue put / get / del (50/35/15) on `--keys` keys, with values unique across the run, to random
 * nodes. Every operation goes into the history (linearizability.ts `Operation`) with the
 * performance.now() times of its invocation and of its response, unless it certainly did not
 * happen. A write answered 307 was not executed: it is retried at the leader named in the body
 * (up to 3 hops), and the attempt that may have executed gives the invoke time. Outcomes
 * (classifyWrite / classifyRead, exported and unit-tested):
 *   - 200: completed, with its output (put: {}, del: {deleted}, get: {value}; a get's 404 is
 *     value null);
 *   - definite failure, left out of the history (it did not happen): a 503 whose body does not
 *     say `"outcome": "unknown"` (no leader, busy, or "not applied"), a 307 not followed, a 4xx;
 *   - indeterminate (complete = null: it may take effect at any time after its invoke, or never):
 *     a write answered 504 or any other 5xx, a timeout (the client waits a bit longer than the
 *     nodes' --write-timeout-ms), and every connection error, even "connection refused": fetch
 *     sends a request on a pooled keep-alive connection and, if that connection dies before the
 *     answer, retries it on a new one and reports that retry's error, so a "refused" write may
 *     have reached a node that then died (see classifyWrite). The client then continues under
 *     a new client id, since the old op stays outstanding forever.
 *   - a read that fails in any way is dropped: it has no effect and no known output.
 *
 * How faults are injected. A nemesis driven by a PRNG seeded with --seed (random by default and
 * always printed; the seed fixes the plan of choices, the processes' timing still varies) picks a
 * fault every 1-4 s among the enabled ones (planFaults, pure):
 *   - kill: SIGKILL a node, restart it from its data dir after 1-5 s;
 *   - pause: SIGSTOP a node, SIGCONT after 1-5 s;
 *   - partition: for 1-6 s, isolate a node (the 1|2 split), cut only its outgoing or only its
 *     incoming links (one-way isolation), or cut a single direction A->B; the proxies either
 *     "reset" (connections refused/closed at once) or "drop" (a black hole: timeouts).
 * Half of the faults aim at whoever is leader at that moment. Faults overlap only as far as a
 * minority of the nodes is affected (admitTarget), except that a few (15%) may hit a second node
 * briefly, so that a majority is usually alive but writes sometimes cannot commit. Every fault is
 * logged with a timestamp when it starts and ends; all end within --duration. A node process
 * that exits by itself fails the run; it is restarted after 1 s (as a supervisor would) so the
 * rest of the run still tests something, and it counts as affected meanwhile.
 *
 * A write load (--load N): N more writers put unique keys (disjoint from the checked ones) to
 * the leader as fast as it takes them, over a lean keep-alive HTTP client; they are not in the
 * history, but every put they saw acknowledged must read back with its value at the end.
 *
 * What is checked. After --duration seconds of faults, a recovery phase bounded to 30 s: heal
 * every link, resume and restart every node, wait for a leader and for a write to be acknowledged
 * again, stop the clients, wait until the cluster is quiet (every node applied the leader's whole
 * log), record a final linearizable read of every key from each node, and check convergence
 * (every node at the same lastApplied, stale reads of every key equal on all nodes and equal to
 * the final reads). Then the history is checked with checkHistory (30 s budget). The report gives
 * the op counts (ok / indeterminate / failed-definite), faults injected by kind, availability (the
 * longest gap without an acknowledged write, measured by a probe writer that follows the leader
 * with a 1 s timeout and is not part of the history, and as seen by the workload's clients), and
 * the verdict. `history.json` (one op per line) is always written to the run directory. A
 * violation, a lost acknowledged write (which the final reads turn into a violation), a
 * convergence failure, a recovery failure or a node process that exited by itself exits 1; a
 * violation also writes `window.json`, the smallest failing window (smallestFailingWindow), and
 * prints it. A checker "unknown" (budget exhausted) is reported as inconclusive and exits 1 too:
 * it must not hide a bug.
 *
 * Every process this task starts is stopped by PID on every way out, Ctrl-C included (exit 130);
 * paused nodes are resumed first. Bad flags: usage on stderr, exit 2.
 */
import { parseArgs } from "@std/cli/parse-args";
import { join, resolve } from "@std/path";
import { Prng } from "../raft/rand.ts";
import {
  fetchStatus,
  type Layout,
  layout,
  type NodeSpec,
  type NodeStatus,
  portFree,
  PROJECT_ROOT,
  signalNode,
  sleep,
  type Started,
  startNode,
  stopPid,
  tail,
  waitForLeader,
} from "./_cluster.ts";
import { type BlockMode, ProxyMesh } from "./link_proxy.ts";
import { checkHistory, type Operation, smallestFailingWindow } from "./linearizability.ts";
import { HttpPool } from "../transport/http_client.ts";

// ---------------------------------------------------------------------------------------------
// Flags

export const NEMESES = ["kill", "pause", "partition"] as const;
export type Nemesis = typeof NEMESES[number];

interface CommonConfig {
  /** First of the ports: nodes at base..base+2, proxies (randomized mode) at base+3..base+8. */
  basePort: number;
  /** Absolute directory holding `scenario/` and `run-<seed>/`. */
  workDir: string;
}

export interface ScenarioConfig extends CommonConfig {
  mode: "scenario";
}

export interface RandomizedConfig extends CommonConfig {
  mode: "randomized";
  durationS: number;
  nemeses: Nemesis[];
  clients: number;
  keys: number;
  seed: number;
  /** Extra writers of unique keys outside the history (load), each read back at the end. */
  load: number;
}

export type ChaosConfig = ScenarioConfig | RandomizedConfig;

export class UsageError extends Error {
  override name = "UsageError";
}

export const USAGE = `Usage:
  deno task chaos [--base-port 9301]
      the seed's failover scenario, step by step (see the top of tasks/chaos.ts)
  deno task chaos --duration 60 --nemesis kill,pause,partition --clients 8 [--seed N] [--keys 5]
                  [--base-port 9301]
      a randomized run: faults for --duration seconds, then recovery and a linearizability check

Flags:
  --duration S       seconds of fault injection, 1-3600 (randomized; default 60)
  --nemesis LIST     comma-separated faults among kill,pause,partition, or "none" (default all)
  --clients N        concurrent clients, each with one op outstanding, 1-64 (default 8)
  --keys N           number of keys the clients use, 1-1000 (default 5)
  --load N           N more writers putting unique keys as fast as they can (a write load on
                     top of the checked clients; every acknowledged one must read back), 0-256
                     (default 0)
  --seed N           seed of the nemesis and the clients, 0-4294967295 (default random, printed)
  --base-port P      nodes listen on P..P+2, link proxies on P+3..P+8 (default 9301)
  --work-dir DIR     where scenario/ and run-<seed>/ go, inside .cluster (default .cluster/chaos)
  --help             print this help`;

const RANDOMIZED_FLAGS = ["duration", "nemesis", "clients", "keys", "seed", "load"];

function integerFlag(name: string, raw: unknown, min: number, max: number): number {
  const text = String(raw);
  const v = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new UsageError(`--${name}: expected an integer from ${min} to ${max}, got "${text}"`);
  }
  return v;
}

/**
 * Parse the task's flags. No randomized flag means the scenario. Throws UsageError naming the bad
 * flag. `randomSeed` gives the seed when --seed is absent.
 */
export function parseChaosArgs(
  args: string[],
  randomSeed: () => number = () => crypto.getRandomValues(new Uint32Array(1))[0],
): ChaosConfig | "help" {
  const unknown: string[] = [];
  const valued = [...RANDOMIZED_FLAGS, "base-port", "work-dir"];
  const parsed = parseArgs(args, {
    string: valued,
    boolean: ["help"],
    collect: valued, // so that a repeated flag is seen, not silently overridden
    unknown: (arg: string) => {
      unknown.push(arg);
      return false;
    },
  });
  if (unknown.length > 0) throw new UsageError(`unknown argument ${unknown[0]}`);
  if (parsed.help) return "help";
  const a: Record<string, string | undefined> = {};
  for (const name of valued) {
    const values: string[] = parsed[name] ?? [];
    if (values.length > 1) throw new UsageError(`--${name} given more than once`);
    if (values[0] === "") throw new UsageError(`--${name} needs a value`);
    a[name] = values[0];
  }
  const common: CommonConfig = {
    basePort: a["base-port"] === undefined
      ? 9301
      : integerFlag("base-port", a["base-port"], 1024, 65535 - 8),
    workDir: resolve(PROJECT_ROOT, a["work-dir"] ?? join(".cluster", "chaos")),
  };
  if (!RANDOMIZED_FLAGS.some((name) => a[name] !== undefined)) {
    return { mode: "scenario", ...common };
  }
  let nemeses: Nemesis[] = [...NEMESES];
  if (a.nemesis !== undefined) {
    const parts = a.nemesis.split(",").map((s) => s.trim());
    if (parts.length === 1 && parts[0] === "none") nemeses = [];
    else {
      for (const p of parts) {
        if (!(NEMESES as readonly string[]).includes(p)) {
          throw new UsageError(
            `--nemesis: unknown fault "${p}" (use ${NEMESES.join(",")} or none)`,
          );
        }
      }
      nemeses = NEMESES.filter((n) => parts.includes(n));
    }
  }
  return {
    mode: "randomized",
    ...common,
    durationS: a.duration === undefined ? 60 : integerFlag("duration", a.duration, 1, 3600),
    nemeses,
    clients: a.clients === undefined ? 8 : integerFlag("clients", a.clients, 1, 64),
    keys: a.keys === undefined ? 5 : integerFlag("keys", a.keys, 1, 1000),
    seed: a.seed === undefined ? randomSeed() : integerFlag("seed", a.seed, 0, 0xffffffff),
    load: a.load === undefined ? 0 : integerFlag("load", a.load, 0, 256),
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP outcomes

/** What a client learned from one request: a response, or why there was none. */
export type HttpResult =
  | { status: number; body: Record<string, unknown> | null }
  | { error: "timeout" | "refused" | "network"; message: string };

export type WriteOutcome =
  /** Executed; `deleted` for a del. */
  | { class: "ok"; index: number; deleted?: boolean }
  /** Not executed: a follower named the leader; retry there. */
  | { class: "redirect"; leaderId: string; reason: string }
  /** Certainly not executed: leave it out of the history. */
  | { class: "definite"; reason: string }
  /** May or may not take effect: record it with complete = null. */
  | { class: "indeterminate"; reason: string };

export type ReadOutcome =
  | { class: "ok"; value: string | null }
  | { class: "dropped"; reason: string };

/**
 * Classify the answer to a put or del. 200 = done; 307 = not executed (redirect); 503 = not
 * executed unless its body says `"outcome": "unknown"` (no leader, too busy, or a write that a
 * leader change replaced, `"outcome": "not applied"`); other 4xx = refused, not executed.
 * Everything else may have been applied: 504 (`"outcome": "unknown"`), any other 5xx, a 200 with
 * a malformed body, a timeout, and any connection error. "Connection refused" included: Deno's
 * fetch (hyper's pooled client) sends a request on a kept-alive connection and, when that
 * connection closes before the answer, silently retries on a new connection and reports the
 * retry's error. So a request the node received in full, before it was SIGKILLed, comes back as
 * "client error (Connect): Connection refused" (chaos_test.ts reproduces this). Taking that as
 * "never sent" once hid two committed deletes from the history and produced a false violation.
 */
export function classifyWrite(kind: "put" | "del", r: HttpResult): WriteOutcome {
  if ("error" in r) {
    const reason = r.error === "timeout"
      ? "timeout"
      : r.error === "refused"
      ? "connection refused"
      : "connection lost";
    return { class: "indeterminate", reason };
  }
  const { status, body } = r;
  if (status === 200) {
    const index = body?.index;
    const deleted = body?.deleted;
    if (typeof index !== "number" || (kind === "del" && typeof deleted !== "boolean")) {
      return { class: "indeterminate", reason: "200 with a malformed body" };
    }
    return kind === "del" ? { class: "ok", index, deleted: deleted as boolean } : {
      class: "ok",
      index,
    };
  }
  if (status === 307) {
    const leaderId = body?.leaderId;
    if (typeof leaderId === "string" && leaderId !== "") {
      return { class: "redirect", leaderId, reason: `307 to ${leaderId}` };
    }
    return { class: "definite", reason: "307 without a leader" };
  }
  if (status === 503) {
    if (body?.outcome === "unknown") return { class: "indeterminate", reason: "503 unknown" };
    return {
      class: "definite",
      reason: body?.outcome === "not applied" ? "503 not applied" : "503 unavailable",
    };
  }
  if (status >= 400 && status < 500) return { class: "definite", reason: `${status} refused` };
  return { class: "indeterminate", reason: String(status) };
}

/** Classify the answer to `GET /kv/get?key=<key>`: 200 or 404 for that key, else dropped. */
export function classifyRead(key: string, r: HttpResult): ReadOutcome {
  if ("error" in r) return { class: "dropped", reason: r.error };
  const { status, body } = r;
  if (status === 200 && body?.key === key && typeof body.value === "string") {
    return { class: "ok", value: body.value };
  }
  if (status === 404 && body?.key === key && body.value === undefined) {
    return { class: "ok", value: null };
  }
  return { class: "dropped", reason: String(status) };
}

/**
 * Why a fetch threw: its timeout fired, a connection could not be opened (for reports only: see
 * classifyWrite for why this does not prove the request was never sent), or it broke later.
 */
export function fetchFailure(
  err: unknown,
): { error: "timeout" | "refused" | "network"; message: string } {
  if (err instanceof DOMException && (err.name === "TimeoutError" || err.name === "AbortError")) {
    return { error: "timeout", message: err.message };
  }
  const e = err as { message?: string; cause?: { message?: string } };
  const message = `${e?.message ?? err}${e?.cause?.message ? `: ${e.cause.message}` : ""}`;
  // hyper's "client error (Connect)": the last connection attempt failed.
  if (message.includes("client error (Connect)")) return { error: "refused", message };
  return { error: "network", message };
}

async function request(
  method: string,
  url: string,
  body: unknown,
  timeoutMs: number,
): Promise<HttpResult> {
  try {
    const res = await fetch(url, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let parsed: Record<string, unknown> | null = null;
    try {
      const v = JSON.parse(text);
      if (v !== null && typeof v === "object" && !Array.isArray(v)) parsed = v;
    } catch {
      // Not JSON: the status alone decides.
    }
    return { status: res.status, body: parsed };
  } catch (err) {
    return fetchFailure(err);
  }
}

function putRequest(addr: string, key: string, value: string, timeoutMs: number) {
  return request("PUT", `http://${addr}/kv/put`, { key, value }, timeoutMs);
}

function getRequest(addr: string, key: string, stale: boolean, timeoutMs: number) {
  const q = `key=${encodeURIComponent(key)}${stale ? "&stale=true" : ""}`;
  return request("GET", `http://${addr}/kv/get?${q}`, undefined, timeoutMs);
}

// ---------------------------------------------------------------------------------------------
// Fault plans (pure)

export type PartitionShape = "isolate" | "one-way-out" | "one-way-in" | "link";
export const PARTITION_SHAPES: readonly PartitionShape[] = [
  "isolate",
  "one-way-out",
  "one-way-in",
  "link",
];

/** One planned fault. Times are offsets from the start of the fault phase. */
export interface FaultPlan {
  atMs: number;
  /** How long it lasts; atMs + durationMs never passes the end of the fault phase. */
  durationMs: number;
  kind: Nemesis;
  /** The node to hit (also when `targetLeader` is set but no leader is known). */
  node: string;
  /** Hit whichever node is leader when the fault starts. */
  targetLeader: boolean;
  /** Partitions: which links to cut (partitionLinks), and how. */
  shape: PartitionShape;
  /** Partitions of shape "link": the other end is `peerOffset` places after the target. */
  peerOffset: number;
  mode: BlockMode;
  /** May affect a second node at once (a majority), see admitTarget. */
  mayImpairMajority: boolean;
}

export const FAULT_GAP_MS = [1000, 4000];
export const FAULT_LENGTH_MS: Record<Nemesis, [number, number]> = {
  kill: [1000, 5000],
  pause: [1000, 5000],
  partition: [1000, 6000],
};

/**
 * The faults of a run: one every 1-4 s while at least 1 s of the phase is left, each drawn from
 * `nemeses`. Every draw is made for every fault (whether used or not), so the plan depends only
 * on the arguments. Faults that would overlap too much are sorted out when they start
 * (admitTarget), since who is leader is only known then.
 */
export function planFaults(
  seed: number,
  durationMs: number,
  nemeses: readonly Nemesis[],
  ids: readonly string[],
): FaultPlan[] {
  const plan: FaultPlan[] = [];
  if (nemeses.length === 0) return plan;
  const prng = new Prng(seed);
  const between = (lo: number, hi: number) => prng.int(lo, hi + 1);
  for (let at = between(FAULT_GAP_MS[0], FAULT_GAP_MS[1]); at + 1000 <= durationMs;) {
    const kind = prng.pick(nemeses);
    const node = prng.pick(ids);
    const targetLeader = prng.chance(0.5);
    const shape = prng.pick(PARTITION_SHAPES);
    const peerOffset = between(1, ids.length - 1);
    const mode: BlockMode = prng.chance(0.5) ? "reset" : "drop";
    const mayImpairMajority = prng.chance(0.15);
    const [lo, hi] = FAULT_LENGTH_MS[kind];
    const durationMsWanted = between(lo, hi);
    plan.push({
      atMs: at,
      durationMs: Math.min(durationMsWanted, durationMs - at),
      kind,
      node,
      targetLeader,
      shape,
      peerOffset,
      mode,
      mayImpairMajority,
    });
    at += between(FAULT_GAP_MS[0], FAULT_GAP_MS[1]);
  }
  return plan;
}

/** A fault in progress, as admitTarget sees it: which node it affects. */
export interface ActiveView {
  kind: Nemesis;
  node: string;
}

/**
 * The node a new fault may hit, or null to skip it. Each fault affects one node (a partition:
 * the isolated node, or the sending end of a cut link). The nodes affected at once stay a
 * minority, or at most all but one with `mayImpairMajority`; a node is never killed or paused
 * twice at once. If `wanted` is not allowed, a node that is already affected is taken instead
 * (stacking faults on one node: a partitioned node gets killed, a paused one isolated).
 */
export function admitTarget(
  active: readonly ActiveView[],
  kind: Nemesis,
  wanted: string,
  mayImpairMajority: boolean,
  ids: readonly string[],
): string | null {
  const affected = new Set(active.map((a) => a.node));
  const limit = mayImpairMajority ? ids.length - 1 : Math.floor((ids.length - 1) / 2);
  const allowed = (node: string) => {
    const processFault = kind !== "partition";
    if (processFault && active.some((a) => a.kind !== "partition" && a.node === node)) return false;
    return new Set(affected).add(node).size <= limit;
  };
  if (allowed(wanted)) return wanted;
  return active.map((a) => a.node).find(allowed) ?? null;
}

/** The directed links a partition cuts: [from, to] pairs, `from`'s requests to `to` fail. */
export function partitionLinks(
  shape: PartitionShape,
  node: string,
  peer: string,
  ids: readonly string[],
): [string, string][] {
  const others = ids.filter((id) => id !== node);
  switch (shape) {
    case "isolate":
      return others.flatMap((o): [string, string][] => [[node, o], [o, node]]);
    case "one-way-out":
      return others.map((o): [string, string] => [node, o]);
    case "one-way-in":
      return others.map((o): [string, string] => [o, node]);
    case "link":
      return [[node, peer]];
  }
}

export function describePartition(
  shape: PartitionShape,
  node: string,
  peer: string,
  ids: readonly string[],
): string {
  const others = ids.filter((id) => id !== node).join(",");
  switch (shape) {
    case "isolate":
      return `isolate ${node} (split ${node} | ${others})`;
    case "one-way-out":
      return `one-way isolation: cut ${node} -> {${others}} (${node} cannot reach them)`;
    case "one-way-in":
      return `one-way isolation: cut {${others}} -> ${node} (they cannot reach ${node})`;
    case "link":
      return `cut the single direction ${node} -> ${peer}`;
  }
}

/** What LinkCuts needs of a ProxyMesh. */
export interface Cuttable {
  cut(from: string, to: string, mode?: BlockMode): void;
  heal(from: string, to: string): void;
}

/**
 * Reference-counted link cuts over a ProxyMesh, so overlapping partitions compose: a link cut by
 * two faults heals only when both have ended. A repeated cut switches the link to the newest mode.
 */
export class LinkCuts {
  readonly #count = new Map<string, number>();
  constructor(readonly mesh: Cuttable) {}

  cut(links: readonly [string, string][], mode: BlockMode): void {
    for (const [from, to] of links) {
      const k = `${from}>${to}`;
      this.#count.set(k, (this.#count.get(k) ?? 0) + 1);
      this.mesh.cut(from, to, mode);
    }
  }

  heal(links: readonly [string, string][]): void {
    for (const [from, to] of links) {
      const k = `${from}>${to}`;
      const left = (this.#count.get(k) ?? 0) - 1;
      if (left > 0) {
        this.#count.set(k, left);
        continue;
      }
      this.#count.delete(k);
      this.mesh.heal(from, to);
    }
  }

  /** Heal every link this object cut. */
  healAll(): void {
    for (const k of this.#count.keys()) {
      const [from, to] = k.split(">");
      this.mesh.heal(from, to);
    }
    this.#count.clear();
  }

  /** Directed links currently cut. */
  get cutLinks(): number {
    return this.#count.size;
  }
}

// ---------------------------------------------------------------------------------------------
// Small pure helpers for the report

/**
 * The longest stretch of [from, to] with no time in `times` (acknowledged writes), and where it
 * starts. Times outside [from, to] are ignored.
 */
export function longestGap(times: readonly number[], from: number, to: number): {
  gapMs: number;
  startMs: number;
} {
  const inside = times.filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let best = { gapMs: 0, startMs: from };
  let prev = from;
  for (const t of [...inside, to]) {
    if (t - prev > best.gapMs) best = { gapMs: t - prev, startMs: prev };
    prev = t;
  }
  return best;
}

/** The gaps of at least `minMs` in [from, to] with no time in `times`: how many, how long in all. */
export function gapsOver(
  times: readonly number[],
  from: number,
  to: number,
  minMs: number,
): { count: number; totalMs: number } {
  const inside = times.filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let count = 0, totalMs = 0, prev = from;
  for (const t of [...inside, to]) {
    if (t - prev >= minMs) {
      count++;
      totalMs += t - prev;
    }
    prev = t;
  }
  return { count, totalMs };
}

/** A read of one key on one node: its value (null = absent) and the node's applied index. */
export interface KeyRead {
  value: string | null;
  index: number;
}

/**
 * Convergence problems, as readable lines (empty = converged): the stale reads of every key must
 * agree on every node, all at the same applied index, and equal the final linearizable reads
 * (`finalReads`, per node and key) when those were taken at that same index.
 */
export function convergenceProblems(
  stale: ReadonlyMap<string, ReadonlyMap<string, KeyRead>>,
  finalReads: ReadonlyMap<string, ReadonlyMap<string, KeyRead>>,
): string[] {
  const problems: string[] = [];
  const nodes = [...stale.keys()];
  const indexes = new Set(nodes.flatMap((n) => [...stale.get(n)!.values()].map((r) => r.index)));
  if (indexes.size > 1) problems.push(`stale reads at different applied indexes: ${[...indexes]}`);
  const keys = new Set(nodes.flatMap((n) => [...stale.get(n)!.keys()]));
  for (const key of keys) {
    const values = nodes.map((n) => stale.get(n)!.get(key)?.value);
    if (new Set(values).size > 1) {
      problems.push(
        `key ${key}: nodes disagree: ${
          nodes.map((n, i) => `${n}=${JSON.stringify(values[i] ?? "(no read)")}`).join(" ")
        }`,
      );
    }
    for (const n of nodes) {
      const s = stale.get(n)!.get(key);
      const f = finalReads.get(n)?.get(key);
      if (s && f && s.index === f.index && s.value !== f.value) {
        problems.push(
          `key ${key} on ${n}: stale read ${JSON.stringify(s.value)} but linearizable read ` +
            `${JSON.stringify(f.value)} at the same index ${s.index}`,
        );
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Logging

const T0 = performance.now();

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

function log(msg: string): void {
  console.log(`[${((performance.now() - T0) / 1000).toFixed(3).padStart(8)}s] ${msg}`);
}

// ---------------------------------------------------------------------------------------------
// Node processes

/**
 * The node processes of a run: start, SIGKILL, SIGSTOP/SIGCONT and stop them, by PID only (each
 * signal goes through _cluster.ts signalNode/stopPid, which check the PID is still that node). A
 * node that exits without having been killed is recorded in `unexpectedExits` (a failure of the
 * run) and, with `superviseMs`, restarted after that long, like a supervisor would (at most
 * MAX_SUPERVISED_RESTARTS times per node), so the rest of the run still tests something.
 */
class Processes {
  readonly running = new Map<string, Started>();
  readonly paused = new Set<string>();
  readonly unexpectedExits: string[] = [];
  readonly #expectedExit = new Set<number>();
  readonly #starting = new Set<Promise<unknown>>();
  readonly #restarts = new Map<string, number>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #stopping = false;

  constructor(
    readonly lay: Layout,
    readonly flags: string[],
    readonly peersFor: (id: string) => string | undefined = () => undefined,
    readonly superviseMs: number | null = null,
  ) {}

  spec(id: string): NodeSpec {
    const n = this.lay.nodes.find((x) => x.id === id);
    if (n === undefined) throw new Error(`unknown node ${id}`);
    return n;
  }

  async start(id: string): Promise<Started | null> {
    if (this.#stopping || this.running.has(id)) return null;
    const spawning = startNode(this.lay, this.spec(id), {
      flags: this.flags,
      peers: this.peersFor(id),
    });
    this.#starting.add(spawning);
    let s: Started;
    try {
      s = await spawning;
    } finally {
      this.#starting.delete(spawning);
    }
    this.running.set(id, s);
    s.child.status.then((st) => {
      if (this.running.get(id) === s) this.running.delete(id);
      this.paused.delete(id);
      if (this.#expectedExit.has(s.pid) || this.#stopping) return;
      const what = `${id} (pid ${s.pid}) exited by itself with code ${st.code}` +
        (st.signal ? ` (signal ${st.signal})` : "");
      this.unexpectedExits.push(what);
      log(`UNEXPECTED: ${what}; see ${this.spec(id).logFile}`);
      const restarts = this.#restarts.get(id) ?? 0;
      if (this.superviseMs === null || restarts >= MAX_SUPERVISED_RESTARTS) return;
      this.#restarts.set(id, restarts + 1);
      const timer = setTimeout(async () => {
        this.#timers.delete(timer);
        const again = await this.start(id);
        if (again !== null) log(`supervisor: restarted ${id} after it exited: pid ${again.pid}`);
      }, this.superviseMs);
      this.#timers.add(timer);
    });
    return s;
  }

  /** SIGKILL a running node and wait for it to be gone; its PID, or null if it was not running. */
  async kill(id: string): Promise<number | null> {
    const s = this.running.get(id);
    if (s === undefined) return null;
    this.#expectedExit.add(s.pid);
    const sent = await signalNode(s.pid, id, "SIGKILL");
    await s.child.status;
    this.running.delete(id);
    this.paused.delete(id);
    return sent ? s.pid : null;
  }

  async pause(id: string): Promise<number | null> {
    const s = this.running.get(id);
    if (s === undefined || this.paused.has(id)) return null;
    if (!await signalNode(s.pid, id, "SIGSTOP")) return null;
    this.paused.add(id);
    return s.pid;
  }

  async resume(id: string): Promise<number | null> {
    const s = this.running.get(id);
    if (s === undefined || !this.paused.delete(id)) return null;
    return await signalNode(s.pid, id, "SIGCONT") ? s.pid : null;
  }

  /** Stop every node (SIGCONT first if paused, then SIGTERM, SIGKILL after 3 s). */
  async stopAll(): Promise<string[]> {
    this.#stopping = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    await Promise.allSettled([...this.#starting]);
    return await Promise.all([...this.running].map(async ([id, s]) => {
      this.#expectedExit.add(s.pid);
      if (this.paused.delete(id)) await signalNode(s.pid, id, "SIGCONT");
      const how = await stopPid(s.pid, id, 3000);
      await s.child.status;
      this.running.delete(id);
      return `${id} (pid ${s.pid}): ${
        how === "term" ? "stopped by SIGTERM" : how === "kill" ? "needed SIGKILL" : "already gone"
      }`;
    }));
  }
}

const MAX_SUPERVISED_RESTARTS = 5;

/** Run `fn` once on the first call (cleanup can be reached from the main path and from SIGINT). */
function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | null = null;
  return () => (p ??= fn());
}

function checkPortsFree(ports: number[]): void {
  const busy = ports.filter((p) => !portFree(p));
  if (busy.length > 0) {
    throw new Error(`port(s) ${busy.join(", ")} on 127.0.0.1 are in use; pass another --base-port`);
  }
}

async function nodeLogs(lay: Layout, lines = 12): Promise<string> {
  const parts = await Promise.all(
    lay.nodes.map(async (n) => `--- ${n.id} (${n.logFile})\n${await tail(n.logFile, lines)}`),
  );
  return parts.join("\n");
}

/** Put with redirects followed (up to 3 hops) and definite failures retried until `deadline`. */
async function putAcknowledged(
  addrOf: (id: string) => string | undefined,
  startAddr: string,
  key: string,
  value: string,
  deadline: number,
): Promise<{ ok: true; index: number } | { ok: false; reason: string }> {
  let addr = startAddr;
  let reason = "deadline passed";
  let hops = 0;
  while (performance.now() < deadline) {
    const o = classifyWrite("put", await putRequest(addr, key, value, 5000));
    if (o.class === "ok") return { ok: true, index: o.index };
    if (o.class === "indeterminate") return { ok: false, reason: `outcome unknown (${o.reason})` };
    reason = o.reason;
    const leader = o.class === "redirect" ? addrOf(o.leaderId) : undefined;
    if (leader !== undefined && hops++ < 3) {
      addr = leader;
      continue;
    }
    hops = 0;
    addr = startAddr;
    await sleep(50);
  }
  return { ok: false, reason };
}

async function parallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Mode 1: the scenario

/** A scenario step failed: the message says what was expected and what was seen. */
class StepFailure extends Error {}

class Steps {
  passed = 0;
  failed = 0;
  #n = 0;

  constructor(readonly signal: AbortSignal) {}

  /**
   * Run one step; prints PASS with its detail or FAIL with the error, and its duration. Once
   * the run is interrupted (Ctrl-C), no further step runs.
   */
  async run(title: string, fn: () => Promise<string>): Promise<boolean> {
    if (this.signal.aborted) return false;
    const n = ++this.#n;
    log(`step ${n}: ${title}`);
    const t = performance.now();
    try {
      const detail = await fn();
      log(`  PASS step ${n}: ${detail} (${Math.round(performance.now() - t)} ms)`);
      this.passed++;
      return true;
    } catch (err) {
      if (this.signal.aborted) return false;
      const msg = err instanceof StepFailure ? err.message : String((err as Error)?.stack ?? err);
      log(`  FAIL step ${n}: ${msg} (${Math.round(performance.now() - t)} ms)`);
      this.failed++;
      return false;
    }
  }
}

function expect(ok: boolean, message: string): asserts ok {
  if (!ok) throw new StepFailure(message);
}

/** Keys whose reads on `addr` do not return the expected value, as readable lines. */
async function mismatches(
  addr: string,
  expected: Map<string, string>,
  stale: boolean,
): Promise<string[]> {
  const bad: string[] = [];
  await parallel([...expected], 8, async ([key, value]) => {
    const r = classifyRead(key, await getRequest(addr, key, stale, 5000));
    if (r.class !== "ok") bad.push(`${key}: read failed (${r.reason})`);
    else if (r.value !== value) bad.push(`${key}: got ${JSON.stringify(r.value)}, want ${value}`);
  });
  return bad.sort();
}

async function runScenario(
  cfg: ScenarioConfig,
  onCleanup: (fn: () => Promise<void>) => void,
  signal: AbortSignal,
): Promise<number> {
  const root = join(cfg.workDir, "scenario");
  const lay = layout(root, 3, cfg.basePort);
  const procs = new Processes(lay, []);
  const addrOf = (id: string) => lay.nodes.find((n) => n.id === id)?.addr;
  const cleanup = once(async () => {
    for (const line of await procs.stopAll()) log(`  ${line}`);
  });
  onCleanup(cleanup);
  const steps = new Steps(signal);
  const acked = new Map<string, string>();
  let leader: { id: string; addr: string; term: number } | null = null;
  let newLeader: { id: string; addr: string; term: number } | null = null;
  log(
    `chaos scenario: 3 nodes on 127.0.0.1:${cfg.basePort}-${cfg.basePort + 2}, data in ${root}`,
  );

  const writeKeys = async (prefix: string, count: number, at: string) => {
    const t = performance.now();
    const keys = Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(3, "0")}`);
    const failures: string[] = [];
    await parallel(keys, 8, async (key) => {
      const value = `value-of-${key}`;
      const r = await putAcknowledged(addrOf, at, key, value, performance.now() + 15_000);
      if (r.ok) acked.set(key, value);
      else failures.push(`${key}: ${r.reason}`);
    });
    expect(
      failures.length === 0,
      `${failures.length} of ${count} writes not acknowledged: ${failures.slice(0, 5).join("; ")}`,
    );
    return `${count}/${count} acknowledged in ${Math.round(performance.now() - t)} ms`;
  };

  const ok = await steps.run("start 3 nodes from empty data dirs", async () => {
    checkPortsFree(lay.nodes.map((n) => n.port));
    await Deno.remove(root, { recursive: true }).catch(() => {});
    for (const n of lay.nodes) {
      const s = await procs.start(n.id);
      log(`  ${n.id} pid ${s?.pid} on ${n.addr} (log ${n.logFile})`);
    }
    return "3 processes started";
  }) &&
    await steps.run("wait for a leader", async () => {
      const t = performance.now();
      leader = await waitForLeader(lay.nodes.map((n) => n.addr), 15_000);
      expect(leader !== null, "no leader agreed by a majority within 15 s");
      return `leader ${leader.id}, term ${leader.term}, after ${
        Math.round(performance.now() - t)
      } ms`;
    }) &&
    await steps.run("write 100 keys through the leader", () => writeKeys("key", 100, leader!.addr));

  let killedAt = 0;
  const old = leader as { id: string; addr: string; term: number } | null;
  const survivors = lay.nodes.filter((n) => n.id !== old?.id);
  const ok2 = ok &&
    await steps.run(`SIGKILL the leader ${old!.id}`, async () => {
      const s = procs.running.get(old!.id);
      expect(s !== undefined, `${old!.id} is not running`);
      killedAt = performance.now();
      const pid = await procs.kill(old!.id);
      expect(pid !== null, `${old!.id} could not be signalled`);
      return `killed ${old!.id} (pid ${pid}); it exited after ${
        Math.round(performance.now() - killedAt)
      } ms`;
    }) &&
    await steps.run("failover: time to a new leader and write unavailability", async () => {
      const boundMs = 5000;
      const [elected, probe] = await Promise.all([
        waitForLeader(survivors.map((n) => n.addr), 10_000).then((l) => ({
          l,
          ms: performance.now() - killedAt,
        })),
        probeUntilWritable(survivors.map((n) => n.addr), addrOf, killedAt + 10_000),
      ]);
      newLeader = elected.l;
      expect(newLeader !== null, "no new leader among the survivors within 10 s");
      expect(newLeader.term > old!.term, `new term ${newLeader.term} <= old ${old!.term}`);
      expect(probe.ok, `no write acknowledged within 10 s (${probe.attemptsText})`);
      acked.set(probe.key!, probe.value!);
      const gapMs = probe.at - killedAt;
      const detail =
        `new leader ${newLeader.id} (term ${newLeader.term}) ${
          Math.round(elected.ms)
        } ms after the kill; writes unavailable for ${Math.round(gapMs)} ms ` +
        `(first acknowledged write after ${probe.attempts} attempts: ${probe.attemptsText})`;
      expect(elected.ms <= boundMs && gapMs <= boundMs, `over the ${boundMs} ms bound: ${detail}`);
      return detail;
    });

  if (ok2) {
    await steps.run(
      `read all ${acked.size} acknowledged keys from both survivors (linearizable)`,
      async () => {
        const bad: string[] = [];
        for (const n of survivors) {
          for (const line of await mismatches(n.addr, acked, false)) bad.push(`${n.id} ${line}`);
        }
        expect(bad.length === 0, `${bad.length} bad reads: ${bad.slice(0, 5).join("; ")}`);
        return `${acked.size * survivors.length}/${acked.size * survivors.length} reads matched`;
      },
    );
    const ok3 = await steps.run(
      `write 50 more keys on the new leader ${newLeader!.id}`,
      () => writeKeys("more", 50, newLeader!.addr),
    ) &&
      await steps.run(`restart ${old!.id} from its data dir`, async () => {
        const s = await procs.start(old!.id);
        expect(s !== null, `${old!.id} could not be started`);
        return `${old!.id} pid ${s.pid}`;
      });
    if (ok3) {
      const oldAddr = old!.addr;
      await steps.run(`${old!.id} catches up with the leader`, async () => {
        const t = performance.now();
        const target = await fetchStatus(newLeader!.addr, 2000);
        expect(target !== null, `the leader ${newLeader!.id} does not answer /cluster/status`);
        let st: NodeStatus | null = null;
        while (performance.now() - t < 15_000) {
          st = await fetchStatus(oldAddr, 500);
          if (st !== null && st.lastApplied >= target.commitIndex) break;
          await sleep(50);
        }
        expect(
          st !== null && st.lastApplied >= target.commitIndex,
          `after 15 s ${old!.id} has applied ${st?.lastApplied ?? "(no answer)"}, the leader ` +
            `had committed ${target.commitIndex}`,
        );
        expect(
          st.role === "follower" && st.leaderId === newLeader!.id,
          `${old!.id} is ${st.role} with leader "${st.leaderId}", expected a follower of ` +
            newLeader!.id,
        );
        return `lastApplied ${st.lastApplied} >= leader commitIndex ${target.commitIndex} after ${
          Math.round(performance.now() - t)
        } ms; follower of ${st.leaderId}, term ${st.currentTerm}`;
      });
      await steps.run(
        `${old!.id} serves all ${acked.size} keys from its own state (stale reads)`,
        async () => {
          const bad = await mismatches(oldAddr, acked, true);
          expect(bad.length === 0, `${bad.length} bad reads: ${bad.slice(0, 5).join("; ")}`);
          return `${acked.size}/${acked.size} stale reads matched`;
        },
      );
    }
  }
  if (signal.aborted) return 130;
  if (steps.failed > 0) log(`node logs:\n${await nodeLogs(lay)}`);
  await steps.run("stop every node by PID", async () => {
    const lines = await procs.stopAll();
    for (const line of lines) log(`  ${line}`);
    expect(procs.running.size === 0, `still running: ${[...procs.running.keys()]}`);
    expect(
      procs.unexpectedExits.length === 0,
      `node(s) exited by themselves: ${procs.unexpectedExits.join("; ")}`,
    );
    return `${lines.length} node(s) stopped`;
  });
  await cleanup();
  const verdict = steps.failed === 0 ? "PASSED" : "FAILED";
  log(`scenario ${verdict}: ${steps.passed} step(s) passed, ${steps.failed} failed`);
  return steps.failed === 0 ? 0 : 1;
}

/**
 * From a leader's SIGKILL on, try writes until one is acknowledged: to a survivor, then to
 * whoever a 307 names, round-robin over the survivors after any other failure.
 */
async function probeUntilWritable(
  survivors: string[],
  addrOf: (id: string) => string | undefined,
  deadline: number,
): Promise<{
  ok: boolean;
  at: number;
  attempts: number;
  attemptsText: string;
  key?: string;
  value?: string;
}> {
  const reasons = new Map<string, number>();
  let attempts = 0;
  let addr = survivors[0];
  let turn = 0;
  while (performance.now() < deadline) {
    attempts++;
    const key = `probe-${attempts}`;
    const value = `probe-value-${attempts}`;
    const o = classifyWrite("put", await putRequest(addr, key, value, 1500));
    if (o.class === "ok") {
      return { ok: true, at: performance.now(), attempts, attemptsText: text(), key, value };
    }
    reasons.set(o.reason, (reasons.get(o.reason) ?? 0) + 1);
    const named = o.class === "redirect" ? addrOf(o.leaderId) : undefined;
    addr = named ?? survivors[++turn % survivors.length];
    if (named === undefined) await sleep(10);
  }
  return { ok: false, at: performance.now(), attempts, attemptsText: text() };

  function text(): string {
    const parts = [...reasons].map(([r, n]) => `${n}x ${r}`);
    return parts.length === 0 ? "none failed" : `failed: ${parts.join(", ")}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Mode 2: randomized

/**
 * Node flags of randomized runs: short timeouts keep runs snappy; frequent snapshots with few
 * trailing entries make a node that was down for a few seconds catch up by InstallSnapshot.
 */
export const RANDOMIZED_NODE_FLAGS = [
  "--write-timeout-ms",
  "2000",
  "--read-timeout-ms",
  "2000",
  "--snapshot-entries",
  "1000",
  "--snapshot-trailing-entries",
  "100",
];
/** Client timeout: a bit above the nodes' write timeout, so a node's 504 arrives first. */
const CLIENT_TIMEOUT_MS = 3000;
/** Timeout of the availability probe's writes. */
const PROBE_TIMEOUT_MS = 1000;
const RECOVERY_MS = 30_000;
const CHECK_BUDGET_MS = 30_000;
/** Client ids of the final reads (one per node), apart from the clients'. */
const FINAL_READ_CLIENT = 1_000_000;

interface Counters {
  ok: number;
  indeterminate: number;
  definite: number;
  readsDropped: number;
  redirectsFollowed: number;
  reasons: Map<string, number>;
}

/** What the clients share: the history, counters and the stop flag. */
class Workload {
  readonly history: Operation[] = [];
  readonly counts: Counters = {
    ok: 0,
    indeterminate: 0,
    definite: 0,
    readsDropped: 0,
    redirectsFollowed: 0,
    reasons: new Map(),
  };
  /** Completion times of acknowledged writes. */
  readonly writesOk: number[] = [];
  /** Completion times of the availability probe's acknowledged writes. */
  readonly probesOk: number[] = [];
  /** The load writers' acknowledged keys and values, and their other outcomes. */
  readonly loadAcked = new Map<string, string>();
  loadFailed = 0;
  loadIndeterminate = 0;
  stop = false;
  #opId = 0;
  #value = 0;
  #clientId: number;

  constructor(
    readonly nodes: NodeSpec[],
    readonly keys: string[],
    readonly clients: number,
    readonly seed: number,
  ) {
    this.#clientId = clients;
  }

  addrOf(id: string): string | undefined {
    return this.nodes.find((n) => n.id === id)?.addr;
  }

  record(op: Omit<Operation, "id">): void {
    this.history.push({ id: this.#opId++, ...op });
  }

  uniqueValue(): string {
    return `v${this.#value++}`;
  }

  newClientId(): number {
    return this.#clientId++;
  }

  count(what: string): void {
    this.counts.reasons.set(what, (this.counts.reasons.get(what) ?? 0) + 1);
  }

  /** One client: ops until `stop`, one at a time; a new id after an indeterminate op. */
  async client(slot: number): Promise<void> {
    const prng = new Prng((this.seed ^ Math.imul(slot + 1, 0x9e3779b1)) >>> 0);
    let id = slot;
    while (!this.stop) {
      const roll = prng.next();
      const kind = roll < 0.5 ? "put" : roll < 0.85 ? "get" : "del";
      const key = prng.pick(this.keys);
      const node = prng.pick(this.nodes);
      let result: "ok" | "definite" | "indeterminate";
      if (kind === "get") result = await this.#get(id, node.addr, key);
      else result = await this.#write(id, kind, node.addr, key);
      if (result === "indeterminate") id = this.newClientId();
      // Back off after a failure so a dead node is not hammered; otherwise a short pause.
      await sleep(result === "ok" ? prng.int(0, 5) : prng.int(30, 100));
    }
  }

  /**
   * The availability probe: one writer that always follows the leader (307s, round-robin after
   * other failures) with a short timeout, putting to its own key `probe`. It is not part of the
   * history: it only measures how long the cluster could not take writes, which the workload
   * cannot (its clients sit out 3 s timeouts on a paused or cut-off node).
   */
  async probe(): Promise<void> {
    let addr = this.nodes[0].addr;
    for (let n = 0, turn = 0; !this.stop; n++) {
      const o = classifyWrite("put", await putRequest(addr, "probe", `p${n}`, PROBE_TIMEOUT_MS));
      if (o.class === "ok") {
        this.probesOk.push(performance.now());
        await sleep(50);
        continue;
      }
      const named = o.class === "redirect" ? this.addrOf(o.leaderId) : undefined;
      addr = named ?? this.nodes[++turn % this.nodes.length].addr;
      if (named === undefined) await sleep(20);
    }
  }

  /**
   * A load writer (--load): puts unique keys `load-<slot>-<n>` to the leader (following 307s)
   * over a lean keep-alive client, as fast as the cluster takes them. Not part of the history:
   * its keys are disjoint from the checked ones. Every acknowledged put is read back at the end.
   */
  async loadWriter(slot: number, pools: Map<string, HttpPool>): Promise<void> {
    let addr = this.nodes[slot % this.nodes.length].addr;
    for (let n = 0, turn = 0; !this.stop; n++) {
      const key = `load-${slot}-${n}`, value = `lv${slot}-${n}`;
      const body = new TextEncoder().encode(JSON.stringify({ key, value }));
      let r: HttpResult;
      try {
        const res = await pools.get(addr)!.request(
          "PUT",
          "/kv/put",
          body,
          "application/json",
          CLIENT_TIMEOUT_MS,
        );
        let parsed: Record<string, unknown> | null = null;
        try {
          parsed = JSON.parse(new TextDecoder().decode(res.body));
        } catch { /* the status decides */ }
        r = { status: res.status, body: parsed };
      } catch (err) {
        // This client never retries a request by itself: a refused connection did not send it.
        const msg = (err as Error).message;
        r = {
          error: /refused/i.test(msg) ? "refused" : /within/.test(msg) ? "timeout" : "network",
          message: msg,
        };
      }
      const o = classifyWrite("put", r);
      if (o.class === "ok") {
        this.loadAcked.set(key, value);
        continue;
      }
      if (o.class === "indeterminate") this.loadIndeterminate++;
      else this.loadFailed++;
      const named = o.class === "redirect" ? this.addrOf(o.leaderId) : undefined;
      addr = named ?? this.nodes[++turn % this.nodes.length].addr;
      if (named === undefined) await sleep(20);
    }
  }

  async #get(client: number, addr: string, key: string): Promise<"ok" | "definite"> {
    const invoke = performance.now();
    const r = classifyRead(key, await getRequest(addr, key, false, CLIENT_TIMEOUT_MS));
    const complete = performance.now();
    if (r.class === "dropped") {
      this.counts.readsDropped++;
      this.count(`get dropped: ${r.reason}`);
      return "definite";
    }
    this.counts.ok++;
    this.record({ client, kind: "get", key, invoke, complete, output: { value: r.value } });
    return "ok";
  }

  async #write(
    client: number,
    kind: "put" | "del",
    addr: string,
    key: string,
  ): Promise<"ok" | "definite" | "indeterminate"> {
    const value = kind === "put" ? this.uniqueValue() : undefined;
    for (let hop = 0;; hop++) {
      const invoke = performance.now();
      const r = kind === "put"
        ? await putRequest(addr, key, value!, CLIENT_TIMEOUT_MS)
        : await request("POST", `http://${addr}/kv/del`, { key }, CLIENT_TIMEOUT_MS);
      const complete = performance.now();
      const o = classifyWrite(kind, r);
      if (o.class === "redirect") {
        const leader = this.addrOf(o.leaderId);
        if (leader !== undefined && hop < 3) {
          this.counts.redirectsFollowed++;
          addr = leader;
          continue;
        }
      }
      const base = { client, kind, key, invoke, ...(value === undefined ? {} : { value }) };
      if (o.class === "ok") {
        this.counts.ok++;
        this.writesOk.push(complete);
        this.record({ ...base, complete, output: kind === "del" ? { deleted: o.deleted } : {} });
        return "ok";
      }
      if (o.class === "indeterminate") {
        this.counts.indeterminate++;
        this.count(`${kind} indeterminate: ${o.reason}`);
        this.record({ ...base, complete: null });
        return "indeterminate";
      }
      this.counts.definite++;
      this.count(`${kind} not executed: ${o.reason}`);
      return "definite";
    }
  }
}

interface ActiveFault extends ActiveView {
  label: string;
  endAt: number;
  undo: () => Promise<string>;
}

/** Executes a fault plan against the processes and the link proxies. */
class NemesisRunner {
  readonly active: ActiveFault[] = [];
  readonly injected: Record<Nemesis, number> = { kill: 0, pause: 0, partition: 0 };
  readonly shapes = new Map<string, number>();
  skipped = 0;

  constructor(
    readonly procs: Processes,
    readonly cuts: LinkCuts,
    readonly ids: string[],
    readonly signal: AbortSignal,
  ) {}

  /** Run `plan` (times from `startAt`); every fault ends by `endAt`. */
  async run(plan: FaultPlan[], startAt: number, endAt: number): Promise<void> {
    let i = 0;
    while (!this.signal.aborted) {
      const nextStart = i < plan.length ? startAt + plan[i].atMs : Infinity;
      const ending = this.active.reduce<ActiveFault | null>(
        (a, f) => (a === null || f.endAt < a.endAt ? f : a),
        null,
      );
      const nextEnd = ending?.endAt ?? Infinity;
      if (nextStart === Infinity && nextEnd === Infinity) return;
      await sleepUntil(Math.min(nextStart, nextEnd), this.signal);
      if (this.signal.aborted) return;
      if (ending !== null && nextEnd <= nextStart) await this.#end(ending);
      else await this.#begin(plan[i++], endAt);
    }
  }

  /** End every fault still active (heal, resume, restart). */
  async healAll(): Promise<void> {
    for (const f of [...this.active]) await this.#end(f);
  }

  async #begin(p: FaultPlan, endAt: number): Promise<void> {
    const leader = p.targetLeader ? await this.#leader() : null;
    // A node that is down without a kill of ours (it crashed) counts as affected too.
    const crashed = this.ids.filter((id) =>
      !this.procs.running.has(id) && !this.active.some((a) => a.kind === "kill" && a.node === id)
    ).map((node): ActiveView => ({ kind: "kill", node }));
    const node = admitTarget(
      [...this.active, ...crashed],
      p.kind,
      leader ?? p.node,
      p.mayImpairMajority,
      this.ids,
    );
    if (node === null) {
      this.skipped++;
      log(`nemesis: skip a ${p.kind} of ${leader ?? p.node}: too many nodes affected already`);
      return;
    }
    const who = node === leader ? `${node} (the leader)` : node;
    let label: string;
    let undo: () => Promise<string>;
    if (p.kind === "kill") {
      const pid = await this.procs.kill(node);
      if (pid === null) return this.#notRunning(p.kind, node);
      label = `kill ${who}: SIGKILL pid ${pid}`;
      undo = async () => {
        const s = await this.procs.start(node);
        return `restart ${node} from its data dir: pid ${s?.pid ?? "(not started)"}`;
      };
    } else if (p.kind === "pause") {
      const pid = await this.procs.pause(node);
      if (pid === null) return this.#notRunning(p.kind, node);
      label = `pause ${who}: SIGSTOP pid ${pid}`;
      undo = async () => {
        const resumed = await this.procs.resume(node);
        return `resume ${node}: SIGCONT ${resumed === null ? "(no longer running)" : `pid ${pid}`}`;
      };
    } else {
      const peer = this.ids[(this.ids.indexOf(node) + p.peerOffset) % this.ids.length];
      const links = partitionLinks(p.shape, node, peer, this.ids);
      this.cuts.cut(links, p.mode);
      this.shapes.set(p.shape, (this.shapes.get(p.shape) ?? 0) + 1);
      label = `${describePartition(p.shape, node, peer, this.ids)}, mode ${p.mode}` +
        (node === leader ? " [target: the leader]" : "");
      undo = () => {
        this.cuts.heal(links);
        return Promise.resolve(`heal: ${links.map(([a, b]) => `${a}->${b}`).join(" ")}`);
      };
    }
    this.injected[p.kind]++;
    const end = Math.min(performance.now() + p.durationMs, endAt);
    this.active.push({ kind: p.kind, node, label, endAt: end, undo });
    log(`nemesis: ${label}; ends in ${secs(end - performance.now())}`);
  }

  #notRunning(kind: Nemesis, node: string): void {
    this.skipped++;
    log(`nemesis: skip a ${kind} of ${node}: not running`);
  }

  async #end(f: ActiveFault): Promise<void> {
    this.active.splice(this.active.indexOf(f), 1);
    log(`nemesis: ${await f.undo()}`);
  }

  /** The node that says it is leader with the highest term, among running unpaused nodes. */
  async #leader(): Promise<string | null> {
    const ids = [...this.procs.running.keys()].filter((id) => !this.procs.paused.has(id));
    const sts = await Promise.all(ids.map((id) => fetchStatus(this.procs.spec(id).addr, 300)));
    const leaders = sts.filter((s): s is NodeStatus => s?.role === "leader");
    leaders.sort((a, b) => b.currentTerm - a.currentTerm);
    return leaders[0]?.id ?? null;
  }
}

function sleepUntil(at: number, signal: AbortSignal): Promise<void> {
  const ms = at - performance.now();
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/** The proxy port `from` uses to reach `to`: base+3 onwards, two per node. */
function proxyPort(base: number, ids: string[], from: string, to: string): number {
  const i = ids.indexOf(from);
  const j = ids.indexOf(to);
  return base + ids.length + i * (ids.length - 1) + (j < i ? j : j - 1);
}

/** Wait until every node has applied all of a settled leader's log: nothing is left to commit. */
async function waitQuiet(nodes: NodeSpec[], deadline: number): Promise<NodeStatus | null> {
  while (performance.now() < deadline) {
    const sts = await Promise.all(nodes.map((n) => fetchStatus(n.addr, 1000)));
    const leader = sts.find((s) => s?.role === "leader");
    if (
      leader !== undefined && leader !== null && leader.lastLogIndex === leader.commitIndex &&
      sts.every((s) =>
        s !== null && s.lastApplied === leader.commitIndex && s.leaderId === leader.id &&
        s.currentTerm === leader.currentTerm
      )
    ) return leader;
    await sleep(100);
  }
  return null;
}

/** Read every key on every node (linearizable, or stale); a read is retried until `deadline`. */
async function readAll(
  nodes: NodeSpec[],
  keys: string[],
  stale: boolean,
  deadline: number,
  onRead?: (
    node: number,
    key: string,
    invoke: number,
    complete: number,
    value: string | null,
  ) => void,
): Promise<Map<string, Map<string, KeyRead>> | string> {
  const out = new Map<string, Map<string, KeyRead>>();
  for (const [i, n] of nodes.entries()) {
    const reads = new Map<string, KeyRead>();
    out.set(n.id, reads);
    for (const key of keys) {
      while (true) {
        const invoke = performance.now();
        const r = await getRequest(n.addr, key, stale, CLIENT_TIMEOUT_MS);
        const complete = performance.now();
        const o = classifyRead(key, r);
        if (o.class === "ok" && !("error" in r)) {
          reads.set(key, { value: o.value, index: Number(r.body?.index) });
          onRead?.(i, key, invoke, complete, o.value);
          break;
        }
        if (performance.now() > deadline) {
          return `${stale ? "stale" : "linearizable"} read of ${key} on ${n.id} failed: ${
            o.class === "dropped" ? o.reason : "?"
          }`;
        }
        await sleep(100);
      }
    }
  }
  return out;
}

function historyJson(ops: Operation[]): string {
  return `[\n${ops.map((op) => JSON.stringify(op)).join(",\n")}\n]\n`;
}

async function runRandomized(
  cfg: RandomizedConfig,
  onCleanup: (fn: () => Promise<void>) => void,
  abort: AbortController,
): Promise<number> {
  const root = join(cfg.workDir, `run-${cfg.seed}`);
  const lay = layout(root, 3, cfg.basePort);
  const ids = lay.nodes.map((n) => n.id);
  const problems: string[] = [];
  log(
    `chaos randomized run: seed ${cfg.seed}, ${cfg.durationS} s of faults (${
      cfg.nemeses.join(",") || "none"
    }), ${cfg.clients} clients, ${cfg.keys} keys; replay with --seed ${cfg.seed}`,
  );
  log(
    `nodes on 127.0.0.1:${cfg.basePort}-${cfg.basePort + 2}, link proxies on ${cfg.basePort + 3}-${
      cfg.basePort + 8
    }, data and logs in ${root}; node flags ${RANDOMIZED_NODE_FLAGS.join(" ")}`,
  );
  checkPortsFree(Array.from({ length: 9 }, (_, i) => cfg.basePort + i));
  await Deno.remove(root, { recursive: true }).catch(() => {});

  const mesh = new ProxyMesh(
    lay.nodes.map((n) => ({ id: n.id, port: n.port })),
    (from, to) => proxyPort(cfg.basePort, ids, from, to),
  );
  mesh.start();
  const cuts = new LinkCuts(mesh);
  const peersFor = (id: string) => ids.map((to) => `${to}=${mesh.peerAddr(id, to)}`).join(",");
  const procs = new Processes(lay, RANDOMIZED_NODE_FLAGS, peersFor, 1000);
  const work = new Workload(
    lay.nodes,
    Array.from({ length: cfg.keys }, (_, i) => `k${i}`),
    cfg.clients,
    cfg.seed,
  );
  const cleanup = once(async () => {
    work.stop = true;
    cuts.healAll();
    for (const line of await procs.stopAll()) log(`  ${line}`);
    await mesh.close();
  });
  onCleanup(cleanup);

  for (const id of ids) {
    const s = await procs.start(id);
    log(`${id} pid ${s?.pid}, peers ${peersFor(id)}`);
  }
  const first = await waitForLeader(lay.nodes.map((n) => n.addr), 20_000);
  if (first === null) {
    log(`FAIL: no leader within 20 s\n${await nodeLogs(lay)}`);
    await cleanup();
    return 1;
  }
  log(`leader ${first.id}, term ${first.term}`);

  const durationMs = cfg.durationS * 1000;
  const plan = planFaults(cfg.seed, durationMs, cfg.nemeses, ids);
  log(`${cfg.clients} clients start; ${plan.length} faults planned over ${cfg.durationS} s`);
  const faultsFrom = performance.now();
  const clients = Array.from({ length: cfg.clients }, (_, slot) => work.client(slot));
  clients.push(work.probe());
  const loadPools = new Map<string, HttpPool>();
  for (const n of lay.nodes) {
    loadPools.set(n.addr, new HttpPool("127.0.0.1", n.port, Math.max(1, cfg.load)));
  }
  for (let slot = 0; slot < cfg.load; slot++) clients.push(work.loadWriter(slot, loadPools));
  const progress = setInterval(() => {
    const c = work.counts;
    const last = work.writesOk.at(-1);
    log(
      `progress: ${c.ok} ok, ${c.indeterminate} indeterminate, ${
        c.definite + c.readsDropped
      } failed; last acknowledged write ${
        last === undefined ? "never" : `${secs(performance.now() - last)} ago`
      }`,
    );
  }, 5000);
  const nemesis = new NemesisRunner(procs, cuts, ids, abort.signal);
  try {
    await nemesis.run(plan, faultsFrom, faultsFrom + durationMs);
    await sleepUntil(faultsFrom + durationMs, abort.signal);
    if (abort.signal.aborted) return 130;

    // Recovery: heal everything, then the cluster must serve writes again.
    const healedAt = performance.now();
    const recoveryDeadline = healedAt + RECOVERY_MS;
    log(`faults over after ${secs(healedAt - faultsFrom)}: heal everything, recovery phase`);
    await nemesis.healAll();
    cuts.healAll();
    for (const id of ids) {
      if (procs.paused.has(id)) await procs.resume(id);
      if (!procs.running.has(id)) log(`recovery: start ${id}: pid ${(await procs.start(id))?.pid}`);
    }
    const leader = await waitForLeader(
      lay.nodes.map((n) => n.addr),
      Math.max(0, recoveryDeadline - performance.now()),
    );
    const lastWrite = () => work.writesOk.at(-1) ?? -Infinity;
    const lastProbe = () => work.probesOk.at(-1) ?? -Infinity;
    if (leader === null) {
      problems.push("no leader after healing (recovery phase)");
    } else {
      const after = secs(performance.now() - healedAt);
      log(`recovery: leader ${leader.id}, term ${leader.term}, ${after} after healing`);
      const writable = () => lastWrite() > healedAt && lastProbe() > healedAt;
      while (!writable() && performance.now() < recoveryDeadline) await sleep(50);
      if (writable()) {
        const firstProbe = work.probesOk.find((t) => t > healedAt)!;
        log(
          `recovery: writes acknowledged again ${secs(firstProbe - healedAt)} after healing ` +
            `(probe), ${secs(lastWrite() - healedAt)} (a client)`,
        );
      } else {
        problems.push("no write acknowledged after healing (recovery phase)");
      }
    }
    work.stop = true;
    await Promise.all(clients);
    for (const pool of loadPools.values()) pool.close();
    clearInterval(progress);
    const clientsStoppedAt = performance.now();
    log(`clients stopped; ${work.history.length} ops in the history`);

    // Final reads and convergence, once nothing is left to commit.
    if (problems.length === 0) {
      const converged = await finalReadsAndConvergence(lay.nodes, work, recoveryDeadline);
      problems.push(...converged);
    }
    if (problems.length === 0 && cfg.load > 0) {
      problems.push(...await readBackLoad(lay.nodes, work));
    }
    if (procs.unexpectedExits.length > 0) {
      problems.push(`node process(es) exited by themselves: ${procs.unexpectedExits.join("; ")}`);
    }
    await cleanup();
    return await report(cfg, root, work, nemesis, problems, faultsFrom, clientsStoppedAt, healedAt);
  } finally {
    clearInterval(progress);
    work.stop = true;
    await cleanup();
  }
}

/**
 * Every put the load writers saw acknowledged must read back with its value (linearizable reads
 * spread over the nodes). A missing or different value is a lost acknowledged write.
 */
async function readBackLoad(nodes: NodeSpec[], work: Workload): Promise<string[]> {
  const entries = [...work.loadAcked];
  let missing = 0, unreadable = 0;
  const examples: string[] = [];
  const t0 = performance.now();
  await parallel(entries.map((e, i) => [e, i] as const), 32, async ([[key, value], i]) => {
    for (let attempt = 0;; attempt++) {
      const r = await getRequest(
        nodes[(i + attempt) % nodes.length].addr,
        key,
        false,
        CLIENT_TIMEOUT_MS,
      );
      if ("status" in r && r.status === 200 && r.body?.value === value) return;
      if ("status" in r && (r.status === 200 || r.status === 404)) {
        missing++;
        if (examples.length < 5) {
          examples.push(`${key}: got ${JSON.stringify(r.body?.value ?? null)}`);
        }
        return;
      }
      if (attempt >= 5) {
        unreadable++;
        return;
      }
      await sleep(100);
    }
  });
  log(
    `load: ${entries.length} acknowledged writes read back in ${secs(performance.now() - t0)}: ` +
      `${missing} lost, ${unreadable} unreadable; ${work.loadIndeterminate} indeterminate and ` +
      `${work.loadFailed} refused writes not checked`,
  );
  const problems: string[] = [];
  if (missing > 0) {
    problems.push(`${missing} acknowledged load writes lost (${examples.join("; ")})`);
  }
  if (unreadable > 0) {
    problems.push(`${unreadable} acknowledged load writes could not be read back`);
  }
  return problems;
}

/**
 * Record a final linearizable read of every key from each node, then check that all nodes
 * converged (same lastApplied, equal stale reads, equal to the final reads). If an entry still
 * committed meanwhile (lastApplied moved), try again, up to 3 times. Returns the problems found.
 */
async function finalReadsAndConvergence(
  nodes: NodeSpec[],
  work: Workload,
  deadline: number,
): Promise<string[]> {
  for (let round = 1; round <= 3; round++) {
    const quiet = await waitQuiet(nodes, deadline);
    if (quiet === null) {
      return ["the cluster did not settle (every node applying the leader's whole log)"];
    }
    log(
      `final reads: all nodes applied ${quiet.commitIndex} (leader ${quiet.id}, term ${quiet.currentTerm})`,
    );
    const finals = await readAll(
      nodes,
      work.keys,
      false,
      deadline,
      (i, key, invoke, complete, value) =>
        work.record({
          client: FINAL_READ_CLIENT + i,
          kind: "get",
          key,
          invoke,
          complete,
          output: { value },
        }),
    );
    if (typeof finals === "string") return [finals];
    const stale = await readAll(nodes, work.keys, true, deadline);
    if (typeof stale === "string") return [stale];
    const after = await Promise.all(nodes.map((n) => fetchStatus(n.addr, 1000)));
    const moved = after.some((s) => s?.lastApplied !== quiet.commitIndex);
    const found = convergenceProblems(stale, finals);
    if (found.length > 0 && moved && round < 3) {
      log(`final reads: lastApplied moved meanwhile; again (round ${round + 1})`);
      continue;
    }
    const values = work.keys.map((k) =>
      `${k}=${JSON.stringify(stale.get(nodes[0].id)?.get(k)?.value)}`
    );
    if (found.length === 0) {
      log(
        `convergence: every node at lastApplied ${quiet.commitIndex}, same values: ${
          values.join(" ")
        }`,
      );
    }
    return found;
  }
  return ["unreachable"];
}

async function report(
  cfg: RandomizedConfig,
  root: string,
  work: Workload,
  nemesis: NemesisRunner,
  problems: string[],
  faultsFrom: number,
  clientsStoppedAt: number,
  healedAt: number,
): Promise<number> {
  const c = work.counts;
  const total = c.ok + c.indeterminate + c.definite + c.readsDropped;
  const runS = (clientsStoppedAt - faultsFrom) / 1000;
  console.log("");
  log(`== report (seed ${cfg.seed})`);
  log(
    `ops: ${total} total (${
      Math.round(total / runS)
    }/s), ${c.ok} ok, ${c.indeterminate} indeterminate, ` +
      `${c.definite + c.readsDropped} failed-definite (${c.definite} writes not executed, ` +
      `${c.readsDropped} reads dropped); ${c.redirectsFollowed} redirects followed`,
  );
  const reasons = [...c.reasons].sort((a, b) => b[1] - a[1]);
  if (reasons.length > 0) {
    log(`  failures by cause: ${reasons.map(([r, n]) => `${r} ${n}`).join(", ")}`);
  }
  const shapes = [...nemesis.shapes].map(([s, n]) => `${s} ${n}`).join(", ");
  log(
    `faults injected: kill ${nemesis.injected.kill}, pause ${nemesis.injected.pause}, partition ${nemesis.injected.partition}` +
      (shapes ? ` (${shapes})` : "") + `; skipped ${nemesis.skipped}`,
  );
  const probe = longestGap(work.probesOk, faultsFrom, healedAt);
  const outages = gapsOver(work.probesOk, faultsFrom, healedAt, 1000);
  const gap = longestGap(work.writesOk, faultsFrom, healedAt);
  log(
    `availability (probe writer following the leader): longest gap without an acknowledged ` +
      `write ${secs(probe.gapMs)} (from ${secs(probe.startMs - faultsFrom)} into the faults); ` +
      `${outages.count} gap(s) over 1 s, ${secs(outages.totalMs)} in all`,
  );
  log(
    `  workload clients: longest gap without an acknowledged write ${secs(gap.gapMs)} (from ${
      secs(gap.startMs - faultsFrom)
    } into the faults; longer than the probe's when clients wait out timeouts on a stuck node)`,
  );
  for (const p of problems) log(`PROBLEM: ${p}`);

  const history = work.history;
  log(`checking ${history.length} ops for linearizability (budget ${secs(CHECK_BUDGET_MS)})...`);
  const result = checkHistory(history, { budgetMs: CHECK_BUDGET_MS });
  const s = result.stats;
  const checked =
    `${result.keys} keys, ${s.ops} ops (${s.indeterminate} indeterminate), ${s.statesExplored} states, ${
      Math.round(s.ms)
    } ms`;
  let verdict: string;
  if (result.ok) verdict = `linearizable (${checked})`;
  else if (result.unknown) verdict = `INCONCLUSIVE: the checker's budget ran out (${checked})`;
  else verdict = `NOT LINEARIZABLE: key ${result.failedKey} (${checked})`;
  log(`verdict: ${verdict}`);

  const failed = !result.ok || problems.length > 0;
  await Deno.mkdir(root, { recursive: true });
  await Deno.writeTextFile(join(root, "history.json"), historyJson(history));
  log(`wrote ${join(root, "history.json")} (times are performance.now() ms of this process)`);
  if (failed) {
    if (!result.ok && !result.unknown) {
      const window = result.smallestWindow ??
        smallestFailingWindow(result.failingOps ?? [], { budgetMs: 10_000 });
      await Deno.writeTextFile(join(root, "window.json"), historyJson(window));
      log(`wrote ${join(root, "window.json")}: ${window.length} ops that are not linearizable`);
      for (const op of window.slice(0, 40)) log(`  ${describeOp(op, faultsFrom)}`);
    }
    log(`node logs in ${join(root, "logs")}`);
  }
  log(
    failed
      ? `chaos FAILED (seed ${cfg.seed}): ${problems.length} problem(s), verdict ${
        verdict.split(" (")[0]
      }`
      : `chaos PASSED (seed ${cfg.seed})`,
  );
  return failed ? 1 : 0;
}

function describeOp(op: Operation, t0: number): string {
  const t = (x: number) => ((x - t0) / 1000).toFixed(3);
  const what = op.kind === "put"
    ? `put ${op.key}=${op.value}`
    : op.kind === "del"
    ? `del ${op.key}`
    : `get ${op.key}`;
  const out = op.complete === null
    ? "-> ? (indeterminate)"
    : op.kind === "get"
    ? `-> ${JSON.stringify(op.output?.value)}`
    : op.kind === "del"
    ? `-> deleted=${op.output?.deleted}`
    : "-> ok";
  return `#${op.id} client ${op.client} [${t(op.invoke)}, ${
    op.complete === null ? "?" : t(op.complete)
  }] ${what} ${out}`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  let cfg: ChaosConfig | "help";
  try {
    cfg = parseChaosArgs(Deno.args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`error: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (cfg === "help") {
    console.log(USAGE);
    return 0;
  }
  const abort = new AbortController();
  let cleanup: () => Promise<void> = () => Promise.resolve();
  const onSigint = () => {
    if (abort.signal.aborted) return;
    abort.abort();
    log("SIGINT: stopping every node and proxy");
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    const register = (fn: () => Promise<void>) => {
      cleanup = fn;
    };
    return cfg.mode === "scenario"
      ? await runScenario(cfg, register, abort.signal)
      : await runRandomized(cfg, register, abort);
  } catch (err) {
    log(`FAIL: ${(err as Error)?.stack ?? err}`);
    await cleanup();
    return 1;
  } finally {
    if (!abort.signal.aborted) Deno.removeSignalListener("SIGINT", onSigint);
  }
}

if (import.meta.main) Deno.exit(await main());
