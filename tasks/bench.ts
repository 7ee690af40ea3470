/**
 * `deno task bench [writes] [reads] [--clients 16,64] [--duration 5] [--value-size 100]
 * [--warmup 2] [--base-port 9401] [--keep]`: benchmark a fresh local 3-node cluster.
 *
 * Starts a clean cluster in `.cluster/bench` (ports --base-port..+2), waits for the leader,
 * preloads a read keyspace (--keyspace keys, default 10,000), warms up for --warmup seconds (not
 * recorded), then runs, all against the leader over keep-alive connections:
 *   - sequential writes (1 client, `writes` ops), sequential linearizable reads and sequential
 *     stale reads (1 client, `reads` ops each), each also cut at 60 s;
 *   - for each --clients value c: concurrent writes, linearizable reads and stale reads, c
 *     closed-loop clients for --duration seconds each.
 * Each workload reports ops, errors, ops/s, mean/p50/p99/max latency (per-op performance.now()),
 * CPU per node and of this process (cores, from /proc/<pid>/stat), and RSS per node (VmRSS at the
 * end). Prints a markdown table and one `BENCH_JSON {...}` line on stdout (progress goes to
 * stderr), writes `benchmarks/latest.md`, stops the nodes by PID on every path out (also on
 * Ctrl-C), and removes `.cluster/bench` unless --keep (or a failure, so its logs stay).
 *
 * Exit codes: 0 all clean; 1 the cluster failed to start, the preload failed, a workload had more
 * than ERRORS_TOLERATED_MAX errors or the leader changed during a run; 2 bad arguments; 130 Ctrl-C
 * (SIGINT), 143 SIGTERM.
 *
 * The load generator runs in this one process and shares the machine's cores with the nodes, so
 * its own cost matters. It speaks HTTP/1.1 over `Deno.connect` itself (one keep-alive connection
 * per client, requests written as one buffer, responses framed by Content-Length): on 2 cores
 * that costs about a fifth of the CPU per request of `fetch` (with a shared pool or a
 * `Deno.createHttpClient` per client, which were no different), so `fetch` saturated a core
 * before the nodes did. `--http fetch` switches to `fetch` to compare.
 */
import { parseArgs } from "@std/cli/parse-args";
import { join } from "@std/path";
import {
  fetchStatus,
  type Layout,
  layout,
  portFree,
  PROJECT_ROOT,
  sleep,
  type Started,
  startNode,
  stopPid,
  tail,
  waitForLeader,
} from "./_cluster.ts";

// ---- limits (unit last) ------------------------------------------------------------------------

const OPS_MAX = 1_000_000;
const CLIENTS_MAX = 1024;
const DURATION_S_MAX = 60;
const WARMUP_S_MAX = 60;
/** The nodes' default --max-value-bytes. */
const VALUE_BYTES_MAX = 1_048_576;
const KEYSPACE_MAX = 1_000_000;
/** A sequential run stops after this long even if it has not done its count. */
const SEQUENTIAL_S_MAX = 60;
/** An op still unanswered this long after its run's end is abandoned (its connection closed). */
const GRACE_MS = 10_000;
/** More errors than this in one workload fail the task. */
export const ERRORS_TOLERATED_MAX = 3;
const PRELOAD_CLIENTS = 32;
const PRELOAD_S_MAX = 120;
const WARMUP_CLIENTS = 16;
const LEADER_WAIT_MS = 15_000;
const RESPONSE_HEAD_BYTES_MAX = 16 * 1024;
/** Before starting, wait for the machine to be less busy than this (other tenants)... */
const QUIET_BUSY_PCT = 15;
const QUIET_WAIT_S_MAX = 600;
/** Runs shorter than this report no CPU: /proc counts in clock ticks (10 ms). */
const CPU_WINDOW_S_MIN = 0.5;
/** Distinct error messages kept per workload (each with its count). */
const ERROR_SAMPLES_MAX = 8;

const USAGE = `Usage: deno task bench [writes=300] [reads=300] [flags]

Benchmarks a fresh local 3-node cluster in .cluster/bench; writes benchmarks/latest.md.

  writes              sequential writes (1 client); 0 skips them (default 300)
  reads               sequential linearizable reads and as many stale reads (default 300)
  --clients LIST      comma-separated client counts for the concurrent runs; "none" skips
                      them (default 16,64)
  --duration S        seconds per concurrent run, at most ${DURATION_S_MAX} (default 5)
  --value-size B      value bytes of every write (default 100)
  --warmup S          seconds of mixed load before measuring, not recorded (default 2)
  --keyspace N        keys preloaded for the reads (default 10000)
  --base-port P       node ports P, P+1, P+2 on 127.0.0.1 (default 9401)
  --http raw|fetch    load generator's HTTP client (default raw; fetch to compare its cost)
  --quiet-wait S      wait up to S s for other load to drop below ${QUIET_BUSY_PCT} % of the machine
                      before starting; 0 measures once and goes on (default 30)
  --keep              leave .cluster/bench (data dirs and logs) for inspection
  --help              print this help`;

// ---- configuration -----------------------------------------------------------------------------

export interface Config {
  writes: number;
  reads: number;
  clients: number[];
  durationS: number;
  valueBytes: number;
  warmupS: number;
  keyspace: number;
  basePort: number;
  http: "raw" | "fetch";
  quietWaitS: number;
  keep: boolean;
}

/** Parse and validate the command line; throws RangeError naming the bad value. */
export function parseConfig(args: string[]): Config | "help" {
  const a = parseArgs(args, {
    string: [
      "clients",
      "duration",
      "value-size",
      "warmup",
      "keyspace",
      "base-port",
      "http",
      "quiet-wait",
    ],
    boolean: ["keep", "help"],
    default: {
      clients: "16,64",
      duration: "5",
      "value-size": "100",
      warmup: "2",
      keyspace: "10000",
      "base-port": "9401",
      http: "raw",
      "quiet-wait": "30",
    },
    unknown: (x: string) => {
      if (x.startsWith("-")) throw new RangeError(`unknown flag ${x}`);
      return true;
    },
  });
  if (a.help) return "help";
  const pos: string[] = a._.map(String);
  if (pos.length > 2) throw new RangeError(`expected at most 2 arguments, got ${pos.join(" ")}`);
  const clients = ["", "none"].includes(String(a.clients).trim())
    ? []
    : String(a.clients).split(",").map((c) => int("--clients", c.trim(), 1, CLIENTS_MAX));
  if (a.http !== "raw" && a.http !== "fetch") {
    throw new RangeError(`--http must be raw or fetch, not ${JSON.stringify(a.http)}`);
  }
  return {
    writes: int("writes", pos[0] ?? "300", 0, OPS_MAX),
    reads: int("reads", pos[1] ?? "300", 0, OPS_MAX),
    clients,
    durationS: num("--duration", a.duration, 0.1, DURATION_S_MAX),
    valueBytes: int("--value-size", a["value-size"], 1, VALUE_BYTES_MAX),
    warmupS: num("--warmup", a.warmup, 0, WARMUP_S_MAX),
    keyspace: int("--keyspace", a.keyspace, 1, KEYSPACE_MAX),
    basePort: int("--base-port", a["base-port"], 1024, 65533),
    http: a.http,
    quietWaitS: num("--quiet-wait", a["quiet-wait"], 0, QUIET_WAIT_S_MAX),
    keep: a.keep,
  };
}

function num(name: string, text: string, min: number, max: number): number {
  const v = Number(text);
  if (text === "" || !Number.isFinite(v) || v < min || v > max) {
    throw new RangeError(
      `${name} must be a number in [${min}, ${max}], not ${JSON.stringify(text)}`,
    );
  }
  return v;
}

function int(name: string, text: string, min: number, max: number): number {
  const v = num(name, text, min, max);
  if (!Number.isInteger(v)) throw new RangeError(`${name} must be an integer, not ${text}`);
  return v;
}

// ---- workloads ---------------------------------------------------------------------------------

export type Op = "write" | "read" | "stale-read";

export interface WorkloadSpec {
  op: Op;
  clients: number;
  /** Sequential runs: this many ops (and at most SEQUENTIAL_S_MAX seconds). */
  count?: number;
  /** Concurrent runs: this long. */
  durationS?: number;
}

/** The workloads, in the order they run. */
export function plan(cfg: Config): WorkloadSpec[] {
  const out: WorkloadSpec[] = [];
  if (cfg.writes > 0) out.push({ op: "write", clients: 1, count: cfg.writes });
  if (cfg.reads > 0) {
    out.push({ op: "read", clients: 1, count: cfg.reads });
    out.push({ op: "stale-read", clients: 1, count: cfg.reads });
  }
  for (const c of cfg.clients) {
    for (const op of ["write", "read", "stale-read"] as const) {
      out.push({ op, clients: c, durationS: cfg.durationS });
    }
  }
  return out;
}

const OP_LABEL: Record<Op, string> = {
  "write": "write",
  "read": "read (linearizable)",
  "stale-read": "read (stale)",
};

export function label(w: { op: Op; clients: number; count?: number }): string {
  return `${OP_LABEL[w.op]}, ${w.count !== undefined ? "sequential" : `${w.clients} clients`}`;
}

/** The read keyspace: 16-byte keys, like peer-bench's kv.lua. */
export function readKey(i: number): string {
  return "r" + String(i).padStart(15, "0");
}

/** An ASCII value of exactly `bytes` bytes (request bodies stay ASCII: length = byte count). */
export function makeValue(bytes: number): string {
  return "v".repeat(bytes - 1) + ".";
}

// ---- latency statistics ------------------------------------------------------------------------

/** A growable array of latencies in ms. */
export class Samples {
  #a = new Float64Array(4096);
  length = 0;

  push(ms: number): void {
    if (this.length === this.#a.length) {
      const b = new Float64Array(this.#a.length * 2);
      b.set(this.#a);
      this.#a = b;
    }
    this.#a[this.length++] = ms;
  }

  /** A sorted copy (ascending). */
  sorted(): Float64Array {
    return this.#a.slice(0, this.length).sort();
  }
}

/** Nearest-rank percentile of an ascending array (p in (0, 100]); NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export interface LatencySummary {
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export function summarize(sorted: Float64Array): LatencySummary | null {
  if (sorted.length === 0) return null;
  let sum = 0;
  for (const x of sorted) sum += x;
  return {
    meanMs: sum / sorted.length,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted[sorted.length - 1],
  };
}

/** Counts errors by message, keeping at most ERROR_SAMPLES_MAX distinct messages. */
export class ErrorTally {
  count = 0;
  #byMessage = new Map<string, number>();

  add(message: string): void {
    this.count++;
    const m = message.length > 160 ? message.slice(0, 157) + "..." : message;
    if (this.#byMessage.has(m) || this.#byMessage.size < ERROR_SAMPLES_MAX) {
      this.#byMessage.set(m, (this.#byMessage.get(m) ?? 0) + 1);
    }
  }

  samples(): { message: string; count: number }[] {
    return [...this.#byMessage].map(([message, count]) => ({ message, count }));
  }
}

// ---- /proc accounting --------------------------------------------------------------------------

/** utime + stime (clock ticks) from a /proc/<pid>/stat line. */
export function parseStatTicks(stat: string): number {
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ")".
  const f = stat.slice(stat.lastIndexOf(")") + 2).trim().split(/\s+/);
  const utime = Number(f[11]), stime = Number(f[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new RangeError(`cannot read utime/stime from ${JSON.stringify(stat.slice(0, 80))}`);
  }
  return utime + stime;
}

/** VmRSS in KiB from a /proc/<pid>/status text, or null if absent (a zombie). */
export function parseVmRssKiB(status: string): number | null {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) : null;
}

/** Busy and total clock ticks of the whole machine from the "cpu " line of /proc/stat. */
export function parseCpuLine(line: string): { busy: number; total: number } {
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number); // user..steal (guest is in user)
  if (v.length < 8 || v.some((x) => !Number.isFinite(x))) {
    throw new RangeError(`unexpected /proc/stat line ${JSON.stringify(line)}`);
  }
  const total = v.reduce((s, x) => s + x, 0);
  return { busy: total - v[3] - v[4], total }; // idle and iowait are not busy
}

export interface ProcSample {
  atMs: number;
  /** utime+stime per pid; missing when the process is gone. */
  ticks: Map<number, number>;
  rssKiB: Map<number, number>;
  machineBusyTicks: number;
}

/**
 * One snapshot of /proc/stat and /proc/<pid>/{stat,status} of `pids`, read by one `grep`
 * process: Deno refuses to read other processes' /proc entries without --allow-all.
 */
async function sampleProcs(pids: number[]): Promise<ProcSample> {
  const files = ["/proc/stat", ...pids.flatMap((p) => [`/proc/${p}/stat`, `/proc/${p}/status`])];
  const atMs = performance.now();
  const out = await new Deno.Command("grep", {
    args: ["-H", "-e", "^cpu ", "-e", "^VmRSS:", "-e", ") ", ...files],
    stdout: "piped",
    stderr: "null",
  }).output();
  const s: ProcSample = { atMs, ticks: new Map(), rssKiB: new Map(), machineBusyTicks: NaN };
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const file = line.slice(0, colon), text = line.slice(colon + 1);
    if (file === "/proc/stat") {
      if (text.startsWith("cpu ")) s.machineBusyTicks = parseCpuLine(text).busy;
      continue;
    }
    const pid = Number(file.split("/")[2]);
    if (file.endsWith("/stat")) s.ticks.set(pid, parseStatTicks(text));
    else if (text.startsWith("VmRSS:")) s.rssKiB.set(pid, parseVmRssKiB(text) ?? NaN);
  }
  return s;
}

/**
 * Cores used by `pid` between two samples; NaN if it vanished or the window is too short for
 * clock-tick accounting to mean anything.
 */
export function coresOf(pid: number, a: ProcSample, b: ProcSample, ticksPerS: number): number {
  const t0 = a.ticks.get(pid), t1 = b.ticks.get(pid);
  const seconds = (b.atMs - a.atMs) / 1000;
  if (t0 === undefined || t1 === undefined || seconds < CPU_WINDOW_S_MIN) return NaN;
  return (t1 - t0) / ticksPerS / seconds;
}

/** Busy cores of the whole machine between two samples (NaN as for coresOf). */
export function machineCores(a: ProcSample, b: ProcSample, ticksPerS: number): number {
  const seconds = (b.atMs - a.atMs) / 1000;
  if (seconds < CPU_WINDOW_S_MIN) return NaN;
  return (b.machineBusyTicks - a.machineBusyTicks) / ticksPerS / seconds;
}

// ---- HTTP clients ------------------------------------------------------------------------------

export interface Reply {
  status: number;
  bodyBytes: number;
  /** The body as text (only for error reports: the raw client's buffer is reused). */
  text: string | (() => string);
}

/** One closed-loop client: one request at a time. */
interface KvClient {
  send(method: string, path: string, body: string | null): Promise<Reply>;
  /** Abandon the connection; an outstanding send rejects. The next send reconnects. */
  close(): void;
}

export interface ResponseHead {
  status: number;
  /** Offset of the body (just past the blank line). */
  bodyStart: number;
  contentLength: number;
  close: boolean;
}

const CRLFCRLF = [13, 10, 13, 10];

/**
 * Parse an HTTP/1.1 response head from buf[0, len): null while incomplete. Throws on anything
 * this minimal client does not handle (no Content-Length, chunked bodies, a malformed status).
 */
export function parseResponseHead(buf: Uint8Array, len: number): ResponseHead | null {
  let end = -1;
  for (let i = 0; i + 3 < len; i++) {
    if (
      buf[i] === CRLFCRLF[0] && buf[i + 1] === CRLFCRLF[1] && buf[i + 2] === CRLFCRLF[2] &&
      buf[i + 3] === CRLFCRLF[3]
    ) {
      end = i;
      break;
    }
  }
  if (end < 0) {
    if (len > RESPONSE_HEAD_BYTES_MAX) throw new Error(`response head over ${len} bytes`);
    return null;
  }
  const lines = new TextDecoder().decode(buf.subarray(0, end)).split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) throw new Error(`malformed status line ${JSON.stringify(lines[0].slice(0, 80))}`);
  let contentLength = -1, close = false;
  for (let i = 1; i < lines.length; i++) {
    const colon = lines[i].indexOf(":");
    const name = lines[i].slice(0, colon).trim().toLowerCase();
    const value = lines[i].slice(colon + 1).trim();
    if (name === "content-length") contentLength = Number(value);
    else if (name === "connection") close = value.toLowerCase() === "close";
    else if (name === "transfer-encoding") {
      throw new Error(`unsupported transfer-encoding ${value} (expected Content-Length)`);
    }
  }
  if (!Number.isSafeInteger(contentLength) || contentLength < 0) {
    throw new Error(`response ${m[1]} without a valid Content-Length`);
  }
  return { status: Number(m[1]), bodyStart: end + 4, contentLength, close };
}

const encoder = new TextEncoder();

/** HTTP/1.1 over one keep-alive TCP connection, written and framed by hand (see module doc). */
class RawClient implements KvClient {
  #conn: Deno.TcpConn | null = null;
  #buf = new Uint8Array(16 * 1024);

  constructor(readonly hostname: string, readonly port: number) {}

  async send(method: string, path: string, body: string | null): Promise<Reply> {
    if (this.#conn === null) {
      this.#conn = await Deno.connect({ hostname: this.hostname, port: this.port });
      this.#conn.setNoDelay(true);
    }
    const conn = this.#conn;
    const host = `${this.hostname}:${this.port}`;
    // Bodies are ASCII by construction, so body.length is the byte count.
    const req = body === null
      ? `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\n\r\n`
      : `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\ncontent-type: application/json\r\n` +
        `content-length: ${body.length}\r\n\r\n${body}`;
    try {
      const bytes = encoder.encode(req);
      for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
      return await this.#readResponse(conn);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  async #readResponse(conn: Deno.TcpConn): Promise<Reply> {
    let have = 0, need = Infinity;
    let head: ResponseHead | null = null;
    while (have < need) {
      if (have === this.#buf.length) this.#grow(this.#buf.length * 2);
      const n = await conn.read(this.#buf.subarray(have));
      if (n === null) throw new Error("connection closed by the server");
      have += n;
      if (head === null) {
        head = parseResponseHead(this.#buf, have);
        if (head === null) continue;
        need = head.bodyStart + head.contentLength;
        if (need > this.#buf.length) this.#grow(need);
      }
    }
    if (have > need) throw new Error(`${have - need} unexpected bytes after a response`);
    const h = head!;
    if (h.close) this.close();
    const buf = this.#buf;
    return {
      status: h.status,
      bodyBytes: h.contentLength,
      text: () => new TextDecoder().decode(buf.subarray(h.bodyStart, need)),
    };
  }

  #grow(size: number): void {
    const b = new Uint8Array(size);
    b.set(this.#buf);
    this.#buf = b;
  }

  close(): void {
    try {
      this.#conn?.close();
    } catch { /* already closed */ }
    this.#conn = null;
  }
}

/** The same through fetch (Deno's shared keep-alive pool), to compare the client's cost. */
class FetchClient implements KvClient {
  #abort = new AbortController();

  constructor(readonly base: string) {}

  async send(method: string, path: string, body: string | null): Promise<Reply> {
    const res = await fetch(this.base + path, {
      method,
      body,
      headers: body === null ? undefined : { "content-type": "application/json" },
      signal: this.#abort.signal,
    });
    const text = await res.text();
    return { status: res.status, bodyBytes: text.length, text };
  }

  close(): void {
    this.#abort.abort(new Error("abandoned"));
    this.#abort = new AbortController();
  }
}

// ---- running load ------------------------------------------------------------------------------

interface Target {
  hostname: string;
  port: number;
  http: Config["http"];
}

function newClient(t: Target): KvClient {
  return t.http === "raw" ? new RawClient(t.hostname, t.port) : new FetchClient(
    `http://${t.hostname}:${t.port}`,
  );
}

/** One request: what to send and what a good answer carries. */
export interface Req {
  method: string;
  path: string;
  body: string | null;
  /** A 200 with a shorter body is an error (a read must carry its value). */
  minBodyBytes: number;
}

interface Load {
  clients: number;
  /** The request client `client` sends as its `seq`-th op, the `nth` op of the whole load. */
  next: (client: number, seq: number, nth: number) => Req;
  /** Total ops over all clients (undefined: until endAt). */
  count?: number;
  /** performance.now() after which no new op starts. */
  endAt: number;
  /** Stop early after more errors than this. */
  errorsMax?: number;
  /** Print a dot per second while it runs. */
  dots?: boolean;
}

interface LoadResult {
  samples: Samples;
  errors: ErrorTally;
  startMs: number;
  endMs: number;
}

/**
 * Run closed-loop clients until `count` ops were started or `endAt` passed, whichever is first.
 * Ops unanswered GRACE_MS after endAt are abandoned and counted as errors.
 */
async function drive(target: Target, load: Load): Promise<LoadResult> {
  const clients = Array.from({ length: load.clients }, () => newClient(target));
  const samples = new Samples(), errors = new ErrorTally();
  const errorsMax = load.errorsMax ?? Infinity;
  let started = 0, abandoned = false, dots = 0;
  const more = () =>
    performance.now() < load.endAt && errors.count <= errorsMax &&
    (load.count === undefined || started < load.count);
  const hardStop = setTimeout(() => {
    abandoned = true;
    for (const c of clients) c.close();
  }, Math.max(0, load.endAt - performance.now()) + GRACE_MS);
  const ticker = load.dots
    ? setInterval(() => {
      dots++;
      progress(".");
    }, 1000)
    : undefined;

  async function loop(i: number): Promise<void> {
    const client = clients[i];
    for (let seq = 0; more(); seq++) {
      const r = load.next(i, seq, started++);
      const t = performance.now();
      try {
        const reply = await client.send(r.method, r.path, r.body);
        const ms = performance.now() - t;
        if (reply.status === 200 && reply.bodyBytes >= r.minBodyBytes) {
          samples.push(ms);
        } else {
          errors.add(`HTTP ${reply.status} on ${r.method} ${r.path.split("?")[0]}: ${text(reply)}`);
        }
      } catch (err) {
        errors.add(
          abandoned
            ? `no answer ${GRACE_MS} ms after the run ended (abandoned)`
            : `${(err as Error).name}: ${(err as Error).message}`,
        );
        if (!abandoned) await sleep(20); // a refused connection must not become a busy loop
      }
    }
  }

  const startMs = performance.now();
  try {
    await Promise.all(clients.map((_, i) => loop(i)));
  } finally {
    clearTimeout(hardStop);
    clearInterval(ticker);
    for (const c of clients) c.close();
    if (dots > 0) progress("\n");
  }
  return { samples, errors, startMs, endMs: performance.now() };
}

function text(r: Reply): string {
  return (typeof r.text === "string" ? r.text : r.text()).slice(0, 120);
}

/** The request for one op; reads pick a random preloaded key. */
export function request(
  op: Op,
  writeKey: string,
  w: { valueJson: string; valueBytes: number; keyspace: number },
): Req {
  if (op === "write") {
    return {
      method: "PUT",
      path: "/kv/put",
      body: `{"key":"${writeKey}","value":${w.valueJson}}`,
      minBodyBytes: 0,
    };
  }
  const key = readKey(Math.floor(Math.random() * w.keyspace));
  return {
    method: "GET",
    path: `/kv/get?key=${key}${op === "stale-read" ? "&stale=true" : ""}`,
    body: null,
    minBodyBytes: w.valueBytes, // a 200 must carry the preloaded value
  };
}

// ---- results -----------------------------------------------------------------------------------

export interface WorkloadResult {
  label: string;
  op: Op;
  clients: number;
  /** "300 ops" or "5 s" (with a note if a sequential run was cut at SEQUENTIAL_S_MAX). */
  bound: string;
  ops: number;
  errors: number;
  errorSamples: { message: string; count: number }[];
  seconds: number;
  opsPerS: number;
  latency: LatencySummary | null;
  /** Cores used per node id over the run. */
  cpuCores: Record<string, number>;
  clientCpuCores: number;
  /** Busy cores of the whole machine minus the nodes and this process. */
  otherCpuCores: number;
  rssMiB: Record<string, number>;
  leaderStable: boolean;
}

export interface MachineFacts {
  cpus: string;
  cpuModel: string;
  memory: string;
  kernel: string;
  deno: string;
  dataDir: string;
  disk: string;
  mount: string;
  /** Machine busy % (all cores) over 1 s just before the nodes start: other tenants. */
  backgroundBusyPct: number;
  /** Seconds spent waiting for it to drop below QUIET_BUSY_PCT. */
  quietWaitedS: number;
}

export interface Report {
  generatedAt: string;
  command: string;
  config: Config;
  wallSeconds: number;
  /** Kernel clock ticks per second (the resolution of the CPU figures). */
  ticksPerS: number;
  machine: MachineFacts;
  cluster: {
    nodes: { id: string; addr: string; pid: number }[];
    leaderId: string;
    term: number;
    electionMs: number;
    dataDirBytes: Record<string, number>;
  };
  preload: { keys: number; seconds: number; opsPerS: number; errors: number } | null;
  warmup: { seconds: number; ops: number; errors: number } | null;
  workloads: WorkloadResult[];
  failures: string[];
}

const fmt = {
  int: (x: number) => Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "-",
  ms: (x: number | undefined) =>
    x === undefined || !Number.isFinite(x)
      ? "-"
      : x < 10
      ? x.toFixed(2)
      : x < 100
      ? x.toFixed(1)
      : x.toFixed(0),
  cores: (x: number) => Number.isFinite(x) ? x.toFixed(2) : "-",
  mib: (x: number) => Number.isFinite(x) ? x.toFixed(0) : "-",
};

/** The results as a markdown table (leader's columns marked with *). */
export function renderTable(
  results: WorkloadResult[],
  nodeIds: string[],
  leaderId: string,
): string {
  const mark = (id: string) => id === leaderId ? `${id}*` : id;
  const head = [
    "workload",
    "bound",
    "ops",
    "errors",
    "ops/s",
    "mean ms",
    "p50 ms",
    "p99 ms",
    "max ms",
    ...nodeIds.map((id) => `CPU ${mark(id)}`),
    "CPU client",
    "CPU other",
    `RSS MiB ${nodeIds.map(mark).join("/")}`,
  ];
  const rows = results.map((r) => [
    r.label,
    r.bound,
    fmt.int(r.ops),
    fmt.int(r.errors),
    fmt.int(r.opsPerS),
    fmt.ms(r.latency?.meanMs),
    fmt.ms(r.latency?.p50Ms),
    fmt.ms(r.latency?.p99Ms),
    fmt.ms(r.latency?.maxMs),
    ...nodeIds.map((id) => fmt.cores(r.cpuCores[id])),
    fmt.cores(r.clientCpuCores),
    fmt.cores(r.otherCpuCores),
    nodeIds.map((id) => fmt.mib(r.rssMiB[id])).join("/"),
  ]);
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

/** Error details under the table: one line per distinct message. */
export function renderErrors(results: WorkloadResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    for (const e of r.errorSamples) lines.push(`- ${r.label}: ${e.count} x ${e.message}`);
    if (!r.leaderStable) lines.push(`- ${r.label}: the leader changed during the run`);
  }
  return lines.length === 0 ? "No errors." : lines.join("\n");
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** benchmarks/latest.md. */
export function renderMarkdown(r: Report): string {
  const c = r.config, m = r.machine, cl = r.cluster;
  const ids = cl.nodes.map((n) => n.id);
  const verdict = r.failures.length === 0
    ? "every workload ran clean."
    : `**FAILED**: ${r.failures.join("; ")}.`;
  const preload = r.preload === null ? "not reached" : [
    `${fmt.int(r.preload.keys)} keys of ${c.valueBytes} B by ${PRELOAD_CLIENTS} clients`,
    `in ${r.preload.seconds.toFixed(1)} s (${fmt.int(r.preload.opsPerS)} writes/s)`,
  ].join(" ");
  const warm = r.warmup === null ? "none" : [
    `${r.warmup.seconds} s with ${WARMUP_CLIENTS} clients (half writes, half reads),`,
    `${fmt.int(r.warmup.ops)} ops, ${r.warmup.errors} errors, not recorded`,
  ].join(" ");
  const client = c.http === "raw"
    ? "HTTP/1.1 written over Deno.connect, one keep-alive connection per client"
    : "fetch (Deno's shared keep-alive pool)";
  const nodes = cl.nodes.map((n) => `${n.id} ${n.addr} (pid ${n.pid})`).join(", ");
  const elected = cl.electionMs.toFixed(0);
  const sizes = ids.map((id) => `${id} ${mb(cl.dataDirBytes[id])}`).join(", ");
  const settings = [
    `writes=${c.writes}`,
    `reads=${c.reads}`,
    `clients=${c.clients.join(",") || "none"}`,
    `duration=${c.durationS}s`,
    `value-size=${c.valueBytes}B`,
    `warmup=${c.warmupS}s`,
    `keyspace=${c.keyspace}`,
    `base-port=${c.basePort}`,
    `http=${c.http}`,
    `quiet-wait=${c.quietWaitS}s`,
  ].join(" ");
  return [
    "# Benchmark: 3-node Raft KV store on one machine",
    "",
    `Generated ${r.generatedAt} (UTC) by \`${r.command}\` in ${r.wallSeconds.toFixed(0)} s; ` +
    verdict,
    "",
    "## Machine",
    "",
    `- CPU: ${m.cpus} cores (nproc), ${m.cpuModel}`,
    `- Memory: ${m.memory}`,
    `- Kernel: ${m.kernel}`,
    `- Deno: ${m.deno}`,
    `- Data dir \`${m.dataDir}\`: ${m.disk}`,
    `- Mount options: \`${m.mount}\``,
    `- Machine busy just before the run (other tenants): ${m.backgroundBusyPct.toFixed(0)} %` +
    (m.quietWaitedS >= 1 ? ` (after waiting ${m.quietWaitedS.toFixed(0)} s for it to drop)` : ""),
    "",
    "## Setup",
    "",
    `- Nodes: ${nodes}; default flags, fresh data dirs.`,
    `- Leader **${cl.leaderId}** (term ${cl.term}), elected ${elected} ms after start; every ` +
    "request goes to it.",
    `- Preload: ${preload}.`,
    `- Warmup: ${warm}.`,
    `- Load generator: this task's own process, ${client}. Writes use unique keys and ` +
    `${c.valueBytes}-byte values; reads pick random keys of the preloaded keyspace.`,
    `- Data dirs after the run: ${sizes}.`,
    "",
    "## Results",
    "",
    renderTable(r.workloads, ids, cl.leaderId),
    "",
    renderErrors(r.workloads),
    "",
    "## Command",
    "",
    "```",
    r.command,
    "```",
    "",
    `Resolved settings: ${settings}.`,
    "",
    "## How to read it",
    "",
    "- **Closed loop**: each client sends its next request only when the previous one is",
    "  answered, so ops/s ≈ clients / mean latency, and with many clients latency is mostly",
    "  queueing (no coordinated-omission correction). Sequential runs (1 client) show the",
    "  latency of one request on an otherwise idle cluster.",
    "- ops and latencies count successful requests only (HTTP 200; a read must carry its",
    "  value). Latency is each request's wall time in the client (performance.now()), including",
    "  the client's own scheduling delay.",
    "- A write is answered after a majority has it in its WAL (fsync) and the leader applied it;",
    "  a linearizable read after the leader confirmed its leadership with a heartbeat round",
    "  (ReadIndex); a stale read from the leader's local state.",
    `- **One machine**: the load generator and all three nodes (and whatever else runs) share`,
    `  ${m.cpus} cores. CPU columns are cores used on average during the run (1.00 = one full`,
    "  core), from utime+stime in /proc/<pid>/stat; * marks the leader; *client* is the load",
    "  generator, *other* everything else busy on the machine (other tenants skew a row where it",
    `  is high). Where all CPU columns add up to about ${m.cpus}, the machine was saturated: the`,
    "  figure is this machine's limit, not the protocol's. Runs shorter than",
    `  ${CPU_WINDOW_S_MIN} s show no CPU (the kernel counts in ${
      (1000 / r.ticksPerS).toFixed(0)
    } ms ticks). RSS is VmRSS at the end of each run.`,
    "- The nodes run with default flags, so write runs include the snapshots they take",
    "  (--snapshot-entries, --snapshot-bytes).",
    "- One run of each workload: run the task again to see the spread before comparing figures.",
    "",
  ].join("\n");
}

/** `deno task bench <args>` as the user typed it (quoted where the shell needs it). */
export function commandLine(args: string[]): string {
  const q = (a: string) => /^[A-Za-z0-9_.,=:\/-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`;
  return ["deno", "task", "bench", ...args.map(q)].join(" ");
}

// ---- the task ----------------------------------------------------------------------------------

const t0Task = performance.now();

function progress(s: string): void {
  Deno.stderr.writeSync(encoder.encode(s));
}

function say(s: string): void {
  progress(`[${((performance.now() - t0Task) / 1000).toFixed(1).padStart(6)} s] ${s}\n`);
}

/** Machine facts through zx (loaded here: importing it needs --allow-sys, which tests lack). */
async function machineFacts(
  dataDir: string,
): Promise<Omit<MachineFacts, "backgroundBusyPct" | "quietWaitedS">> {
  const { $ } = await import("zx");
  const sh = async (p: Promise<{ stdout: string }>) => {
    try {
      return (await p).stdout.trim() || "unknown";
    } catch {
      return "unknown";
    }
  };
  const q = $({ quiet: true });
  const [cpus, model, mem, kernel, deno, df, mount] = await Promise.all([
    sh(q`nproc`),
    sh(q`grep -m1 "^model name" /proc/cpuinfo`),
    sh(q`grep -m1 "^MemTotal" /proc/meminfo`),
    sh(q`uname -r`),
    sh(q`${Deno.execPath()} --version`),
    sh(q`df -hT ${dataDir}`),
    sh(q`findmnt -n -o SOURCE,FSTYPE,OPTIONS -T ${dataDir}`),
  ]);
  const memKiB = Number(/(\d+)/.exec(mem)?.[1]);
  const dfRow = df.split("\n")[1]?.trim().split(/\s+/) ?? [];
  const [src, fstype, options] = mount.split(/\s+/);
  return {
    cpus,
    cpuModel: model.replace(/^model name\s*:\s*/, ""),
    memory: Number.isFinite(memKiB) ? `${(memKiB / 1024 / 1024).toFixed(1)} GiB` : mem,
    kernel,
    deno: deno.split("\n").join(", "),
    dataDir,
    disk: dfRow.length >= 7
      ? `${src ?? dfRow[0]}, ${fstype ?? dfRow[1]}, ${dfRow[2]} total, ${
        dfRow[4]
      } free, mounted on ${dfRow[6]}`
      : df,
    mount: options ?? mount,
  };
}

async function clockTicksPerS(): Promise<number> {
  const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).output();
  const v = Number(new TextDecoder().decode(out.stdout).trim());
  return Number.isFinite(v) && v > 0 ? v : 100;
}

async function dirBytes(path: string): Promise<number> {
  const out = await new Deno.Command("du", { args: ["-sb", path], stdout: "piped", stderr: "null" })
    .output();
  return Number(new TextDecoder().decode(out.stdout).split(/\s/)[0]);
}

class Failure extends Error {}

interface Run {
  cfg: Config;
  lay: Layout;
  started: Started[];
  target: Target;
  ticksPerS: number;
  /** What request() needs to build requests. */
  shape: { valueJson: string; valueBytes: number; keyspace: number };
  leader: { id: string; addr: string; term: number };
}

async function runWorkload(run: Run, spec: WorkloadSpec, index: number): Promise<WorkloadResult> {
  const name = label(spec);
  const bound = spec.count !== undefined ? `${spec.count} ops` : `${spec.durationS} s`;
  say(`start ${name} (${bound})`);
  const pids = run.started.map((s) => s.pid);
  const before = await sampleProcs([...pids, Deno.pid]);
  const seconds = spec.count !== undefined ? SEQUENTIAL_S_MAX : spec.durationS!;
  const res = await drive(run.target, {
    clients: spec.clients,
    next: (client, seq) => request(spec.op, `w${index}-${client}-${seq}`, run.shape),
    count: spec.count,
    endAt: performance.now() + seconds * 1000,
    dots: true,
  });
  const after = await sampleProcs([...pids, Deno.pid]);
  const st = await fetchStatus(run.leader.addr);
  const leaderStable = st?.role === "leader" && st.currentTerm === run.leader.term;
  const sorted = res.samples.sorted();
  const secs = (res.endMs - res.startMs) / 1000;
  const cpuCores: Record<string, number> = {}, rssMiB: Record<string, number> = {};
  const clientCpuCores = coresOf(Deno.pid, before, after, run.ticksPerS);
  let ours = clientCpuCores;
  run.lay.nodes.forEach((n, i) => {
    cpuCores[n.id] = coresOf(pids[i], before, after, run.ticksPerS);
    rssMiB[n.id] = (after.rssKiB.get(pids[i]) ?? NaN) / 1024;
    ours += cpuCores[n.id];
  });
  const machine = machineCores(before, after, run.ticksPerS);
  const cut = spec.count !== undefined && sorted.length + res.errors.count < spec.count;
  const r: WorkloadResult = {
    label: name,
    op: spec.op,
    clients: spec.clients,
    bound: cut ? `${bound} (cut at ${SEQUENTIAL_S_MAX} s)` : bound,
    ops: sorted.length,
    errors: res.errors.count,
    errorSamples: res.errors.samples(),
    seconds: secs,
    opsPerS: sorted.length / secs,
    latency: summarize(sorted),
    cpuCores,
    clientCpuCores,
    otherCpuCores: Math.max(0, machine - ours),
    rssMiB,
    leaderStable,
  };
  say(
    `end   ${name}: ${fmt.int(r.ops)} ops, ${r.errors} errors, ${fmt.int(r.opsPerS)} ops/s, p50 ${
      fmt.ms(r.latency?.p50Ms)
    } ms, p99 ${fmt.ms(r.latency?.p99Ms)} ms${leaderStable ? "" : ", LEADER CHANGED"}`,
  );
  return r;
}

/** Write the read keyspace (keys r000..., values of --value-size) and read the last one back. */
async function preload(run: Run): Promise<NonNullable<Report["preload"]>> {
  const n = run.cfg.keyspace;
  say(`preload ${fmt.int(n)} keys with ${PRELOAD_CLIENTS} clients`);
  const res = await drive(run.target, {
    clients: PRELOAD_CLIENTS,
    next: (_client, _seq, nth) => ({
      method: "PUT",
      path: "/kv/put",
      body: `{"key":"${readKey(nth)}","value":${run.shape.valueJson}}`,
      minBodyBytes: 0,
    }),
    count: n,
    endAt: performance.now() + PRELOAD_S_MAX * 1000,
    errorsMax: ERRORS_TOLERATED_MAX,
    dots: true,
  });
  const secs = (res.endMs - res.startMs) / 1000;
  if (res.errors.count > 0 || res.samples.length < n) {
    const why = res.errors.samples().map((e) => `${e.count} x ${e.message}`).join("; ");
    throw new Failure(`preload wrote ${res.samples.length} of ${n} keys: ${why || "too slow"}`);
  }
  const last = readKey(n - 1);
  const client = newClient(run.target);
  try {
    const check = await client.send("GET", `/kv/get?key=${last}`, null);
    if (check.status !== 200 || check.bodyBytes < run.cfg.valueBytes) {
      throw new Failure(`preloaded key ${last} reads back as HTTP ${check.status}: ${text(check)}`);
    }
  } finally {
    client.close();
  }
  say(`preload done: ${fmt.int(n / secs)} writes/s`);
  return { keys: n, seconds: secs, opsPerS: n / secs, errors: 0 };
}

/** Mixed load, not recorded: JIT-compiles both sides' hot paths. */
async function warmup(run: Run): Promise<NonNullable<Report["warmup"]>> {
  const s = run.cfg.warmupS;
  say(`warm up for ${s} s (${WARMUP_CLIENTS} clients: writes, reads, stale reads; not recorded)`);
  const ops: Op[] = Array.from(
    { length: WARMUP_CLIENTS },
    (_, i) => i % 2 === 0 ? "write" : i % 4 === 1 ? "read" : "stale-read",
  );
  const res = await drive(run.target, {
    clients: WARMUP_CLIENTS,
    next: (client, seq) => request(ops[client], `warm-${client}-${seq}`, run.shape),
    endAt: performance.now() + s * 1000,
  });
  if (res.errors.count > 0) {
    say(`warmup had ${res.errors.count} errors: ${JSON.stringify(res.errors.samples())}`);
  }
  return { seconds: s, ops: res.samples.length, errors: res.errors.count };
}

/**
 * Machine facts, then wait (at most --quiet-wait seconds) until other tenants leave the machine
 * less than QUIET_BUSY_PCT busy, measured over 1 s windows; the last window is recorded.
 */
async function measureMachine(
  cfg: Config,
  dataDir: string,
  ticksPerS: number,
): Promise<MachineFacts> {
  const facts = await machineFacts(dataDir);
  const cpus = Number(facts.cpus) || 1;
  const t0 = performance.now();
  let busyPct: number;
  for (let first = true;; first = false) {
    const a = await sampleProcs([]);
    await sleep(1000);
    busyPct = 100 * machineCores(a, await sampleProcs([]), ticksPerS) / cpus;
    const waitedS = (performance.now() - t0) / 1000;
    if (busyPct < QUIET_BUSY_PCT || waitedS >= cfg.quietWaitS) break;
    if (first) say(`machine ${busyPct.toFixed(0)} % busy: waiting up to ${cfg.quietWaitS} s`);
  }
  if (busyPct >= QUIET_BUSY_PCT) say(`still ${busyPct.toFixed(0)} % busy: measuring anyway`);
  const quietWaitedS = (performance.now() - t0) / 1000 - 1; // the last window is the measurement
  return { ...facts, backgroundBusyPct: busyPct, quietWaitedS };
}

function checkPorts(lay: Layout): void {
  const busy = lay.nodes.filter((n) => !portFree(n.port)).map((n) => n.port);
  if (busy.length > 0) {
    throw new Failure(`port ${busy.join(", ")} on 127.0.0.1 in use; pass another --base-port`);
  }
}

/** Start the nodes (recorded in `started` at once, for the stop paths) and wait for a leader. */
async function startCluster(
  lay: Layout,
  started: Started[],
): Promise<{ leader: Run["leader"]; electionMs: number }> {
  checkPorts(lay); // again: the quiet wait took time
  const t0 = performance.now();
  for (const n of lay.nodes) {
    const s = await startNode(lay, n);
    started.push(s);
    say(`started ${n.id} pid ${s.pid} on ${n.addr}`);
  }
  const leader = await waitForLeader(lay.nodes.map((n) => n.addr), LEADER_WAIT_MS);
  if (!leader) throw new Failure(`no leader elected within ${LEADER_WAIT_MS} ms`);
  say(`leader ${leader.id} at ${leader.addr} (term ${leader.term})`);
  return { leader, electionMs: performance.now() - t0 };
}

/** Preload, warm up and run every workload, filling `report` as results come in. */
async function runAll(run: Run, report: Report): Promise<void> {
  report.preload = await preload(run);
  if (run.cfg.warmupS > 0) report.warmup = await warmup(run);
  const specs = plan(run.cfg);
  for (let i = 0; i < specs.length; i++) {
    const r = await runWorkload(run, specs[i], i);
    report.workloads.push(r);
    if (r.errors > ERRORS_TOLERATED_MAX) report.failures.push(`${r.label}: ${r.errors} errors`);
    if (!r.leaderStable) {
      report.failures.push(`${r.label}: the leader changed`);
      const rest = specs.length - i - 1;
      if (rest > 0) report.failures.push(`${rest} later workloads skipped (no stable leader)`);
      break;
    }
  }
  for (const n of run.lay.nodes) {
    report.cluster.dataDirBytes[n.id] = await dirBytes(n.dataDir);
  }
}

/** The table and BENCH_JSON on stdout, and benchmarks/latest.md. */
async function publish(report: Report): Promise<void> {
  const ids = report.cluster.nodes.map((n) => n.id);
  console.log(`\n${renderTable(report.workloads, ids, report.cluster.leaderId)}\n`);
  console.log(`${renderErrors(report.workloads)}\n`);
  console.log(
    `CPU in cores (1.00 = one of ${report.machine.cpus}), * = leader; latencies of successful ` +
      `ops, closed loop; full notes in benchmarks/latest.md.\n`,
  );
  console.log(`BENCH_JSON ${JSON.stringify({ ok: report.failures.length === 0, ...report })}`);
  const dir = join(PROJECT_ROOT, "benchmarks");
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "latest.md"), renderMarkdown(report));
  say(`wrote ${join(dir, "latest.md")}`);
}

async function main(): Promise<number> {
  let cfg: Config;
  try {
    const c = parseConfig(Deno.args);
    if (c === "help") {
      console.log(USAGE);
      return 0;
    }
    cfg = c;
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const root = join(PROJECT_ROOT, ".cluster", "bench");
  const lay = layout(root, 3, cfg.basePort);
  const started: Started[] = [];
  let stopping: Promise<void> | null = null;
  const stopAll = () =>
    stopping ??= Promise.all(started.map(async (s, i) => {
      await stopPid(s.pid, lay.nodes[i].id, 5000);
      await s.child.status;
    })).then(() => {});
  const onSignal = (sig: Deno.Signal, code: number) => () => {
    progress("\n");
    say(`${sig}: stopping the nodes (pids ${started.map((s) => s.pid).join(" ") || "none"})`);
    stopAll().finally(() => Deno.exit(code));
  };
  Deno.addSignalListener("SIGINT", onSignal("SIGINT", 130));
  Deno.addSignalListener("SIGTERM", onSignal("SIGTERM", 143));

  const failures: string[] = [];
  let report: Report | null = null;
  try {
    checkPorts(lay);
    await Deno.remove(root, { recursive: true }).catch(() => {});
    await Deno.mkdir(join(root, "data"), { recursive: true });
    const ticksPerS = await clockTicksPerS();
    const machine = await measureMachine(cfg, join(root, "data"), ticksPerS);
    say(
      `machine: ${machine.cpus} cores, ${machine.cpuModel}, ` +
        `${machine.backgroundBusyPct.toFixed(0)} % busy before start`,
    );
    const { leader, electionMs } = await startCluster(lay, started);
    const [hostname, port] = leader.addr.split(":");
    report = {
      generatedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      command: commandLine(Deno.args),
      config: cfg,
      wallSeconds: NaN,
      ticksPerS,
      machine,
      cluster: {
        nodes: lay.nodes.map((n, i) => ({ id: n.id, addr: n.addr, pid: started[i].pid })),
        leaderId: leader.id,
        term: leader.term,
        electionMs,
        dataDirBytes: {},
      },
      preload: null,
      warmup: null,
      workloads: [],
      failures,
    };
    await runAll({
      cfg,
      lay,
      started,
      target: { hostname, port: Number(port), http: cfg.http },
      ticksPerS,
      shape: {
        valueJson: JSON.stringify(makeValue(cfg.valueBytes)),
        valueBytes: cfg.valueBytes,
        keyspace: cfg.keyspace,
      },
      leader,
    }, report);
  } catch (err) {
    failures.push(err instanceof Failure ? err.message : `${(err as Error)?.stack ?? err}`);
    say(`FAIL: ${failures.at(-1)}`);
    for (const n of started.length > 0 ? lay.nodes : []) {
      console.error(`--- ${n.id} log (${n.logFile})\n${await tail(n.logFile, 10)}`);
    }
  } finally {
    if (started.length > 0) {
      say(`stopping the nodes (pids ${started.map((s) => s.pid).join(" ")})`);
      await stopAll();
    }
  }

  if (report !== null) {
    report.wallSeconds = (performance.now() - t0Task) / 1000;
    await publish(report);
  }
  const ok = failures.length === 0;
  if (ok && !cfg.keep) await Deno.remove(root, { recursive: true }).catch(() => {});
  else if (started.length > 0) say(`left ${root} for inspection (data dirs and logs)`);
  say(ok ? "bench passed" : `bench FAILED: ${failures.join("; ")}`);
  return ok ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
