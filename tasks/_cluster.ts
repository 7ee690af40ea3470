/**
 * Shared by the tasks and the process-level tests: lay out a local cluster, start nodes as real
 * processes (Deno.Command), talk to them over HTTP, and stop them by PID only (SIGTERM, then
 * SIGKILL after a grace period). A PID is only signalled after checking, in /proc, that it
 * still runs this project's main.ts with the expected --id, so a reused PID is never touched.
 */
import { join, resolve } from "@std/path";

export const PROJECT_ROOT = resolve(new URL("..", import.meta.url).pathname);
export const MAIN_TS = join(PROJECT_ROOT, "main.ts");

export interface NodeSpec {
  id: string;
  port: number;
  addr: string;
  dataDir: string;
  logFile: string;
  pidFile: string;
}

export interface Layout {
  root: string;
  nodes: NodeSpec[];
  /** The --peers flag value every node gets (unless a task overrides a node's peers). */
  peers: string;
}

export function layout(root: string, count = 3, basePort = 9101): Layout {
  const nodes: NodeSpec[] = [];
  for (let i = 1; i <= count; i++) {
    const id = `n${i}`;
    nodes.push({
      id,
      port: basePort + i - 1,
      addr: `127.0.0.1:${basePort + i - 1}`,
      dataDir: join(root, "data", id),
      logFile: join(root, "logs", `${id}.log`),
      pidFile: join(root, "pids", `${id}.pid`),
    });
  }
  return { root, nodes, peers: nodes.map((n) => `${n.id}=${n.addr}`).join(",") };
}

export interface StartOptions {
  /** Extra flags for main.ts (e.g. timing, snapshot thresholds). */
  flags?: string[];
  /** Override --peers (chaos gives each node addresses that go through proxies). */
  peers?: string;
  /** Keep running after this process exits (cluster:start). */
  detached?: boolean;
}

export interface Started {
  pid: number;
  child: Deno.ChildProcess;
}

/**
 * Start one node as `deno run main.ts ...` with permissions scoped to loopback and its own
 * data dir; stdout and stderr are appended to its log file (through `sh -c 'exec ...'`, so the
 * PID is the deno process itself).
 */
export async function startNode(
  lay: Layout,
  n: NodeSpec,
  opts: StartOptions = {},
): Promise<Started> {
  await Deno.mkdir(n.dataDir, { recursive: true });
  await Deno.mkdir(join(lay.root, "logs"), { recursive: true });
  await Deno.mkdir(join(lay.root, "pids"), { recursive: true });
  const args = [
    "run",
    "--allow-net=127.0.0.1",
    `--allow-read=${n.dataDir}`,
    `--allow-write=${n.dataDir}`,
    MAIN_TS,
    "--id",
    n.id,
    "--listen",
    n.addr,
    "--peers",
    opts.peers ?? lay.peers,
    "--data-dir",
    n.dataDir,
    ...(opts.flags ?? []),
  ];
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", 'exec "$@" >>"$LOGFILE" 2>&1', "sh", Deno.execPath(), ...args],
    env: { LOGFILE: n.logFile, NO_COLOR: "1" },
    cwd: PROJECT_ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: opts.detached ?? false,
  }).spawn();
  if (opts.detached) child.unref();
  await Deno.writeTextFile(n.pidFile, `${child.pid}\n`);
  return { pid: child.pid, child };
}

/**
 * Is `pid` alive and running main.ts as node `id`? (false for zombies and reused PIDs). Asks
 * `ps`: Deno only lets a fully privileged process read other processes' /proc entries.
 */
export async function isOurNode(pid: number, id: string): Promise<boolean> {
  const out = await new Deno.Command("ps", {
    args: ["-o", "stat=,args=", "-p", String(pid)],
    stdout: "piped",
    stderr: "null",
  }).output();
  const line = new TextDecoder().decode(out.stdout).trim();
  if (!out.success || line === "" || line.startsWith("Z")) return false;
  return line.includes(` ${MAIN_TS} `) && line.includes(` --id ${id} `);
}

export async function readPid(n: NodeSpec): Promise<number | null> {
  try {
    const pid = Number((await Deno.readTextFile(n.pidFile)).trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** The PID of `n` if it is running, else null. */
export async function runningPid(n: NodeSpec): Promise<number | null> {
  const pid = await readPid(n);
  return pid !== null && await isOurNode(pid, n.id) ? pid : null;
}

/**
 * Stop node `id` at `pid`: SIGTERM, wait up to `graceMs`, then SIGKILL. Returns how it ended.
 * Never signals a process that is not that node.
 */
export async function stopPid(
  pid: number,
  id: string,
  graceMs = 5000,
): Promise<"term" | "kill" | "gone"> {
  if (!await isOurNode(pid, id)) return "gone";
  if (!killIfAlive(pid, "SIGTERM")) return "gone";
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!await isOurNode(pid, id)) return "term";
    await sleep(50);
  }
  if (await isOurNode(pid, id)) killIfAlive(pid, "SIGKILL");
  return "kill";
}

/** Deno.kill, false if the process is already gone (any other error, e.g. permissions, throws). */
function killIfAlive(pid: number, sig: Deno.Signal): boolean {
  try {
    Deno.kill(pid, sig);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/**
 * Stop nodes this process started (id and its Started), all at once: SIGTERM, SIGKILL after
 * `graceMs`, then wait for each child so none is left a zombie.
 */
export async function stopStarted(
  nodes: Iterable<[string, Started]>,
  graceMs = 5000,
): Promise<void> {
  await Promise.all([...nodes].map(async ([id, s]) => {
    await stopPid(s.pid, id, graceMs);
    await s.child.status;
  }));
}

/** Send a signal to node `id` at `pid` (SIGKILL, SIGSTOP, SIGCONT), checking it is ours. */
export async function signalNode(pid: number, id: string, sig: Deno.Signal): Promise<boolean> {
  if (!await isOurNode(pid, id)) return false;
  return killIfAlive(pid, sig);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface NodeStatus {
  id: string;
  role: string;
  currentTerm: number;
  leaderId: string;
  commitIndex: number;
  lastApplied: number;
  leaderAddr?: string;
  snapshotIndex?: number;
  snapshotTerm?: number;
  lastLogIndex?: number;
  firstLogIndex?: number;
  walBytes?: number;
  walSegments?: number;
  snapshotBytes?: number;
  keys?: number;
  pid?: number;
}

/** GET /cluster/status, or null if the node does not answer in time. */
export async function fetchStatus(addr: string, timeoutMs = 1000): Promise<NodeStatus | null> {
  try {
    const res = await fetch(`http://${addr}/cluster/status`, {
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) {
      await res.body?.cancel();
      return null;
    }
    return await res.json() as NodeStatus;
  } catch {
    return null;
  }
}

/** Wait until the nodes agree on a leader (a majority names the same one, which says leader). */
export async function waitForLeader(
  addrs: string[],
  timeoutMs: number,
): Promise<{ id: string; addr: string; term: number } | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const sts = await Promise.all(addrs.map((a) => fetchStatus(a, 500)));
    for (let i = 0; i < sts.length; i++) {
      const s = sts[i];
      if (s === null || s.role !== "leader") continue;
      const agree = sts.filter((o) => o?.leaderId === s.id && o.currentTerm === s.currentTerm);
      if (agree.length > addrs.length / 2) return { id: s.id, addr: addrs[i], term: s.currentTerm };
    }
    await sleep(50);
  }
  return null;
}

/** Ensure a TCP port on 127.0.0.1 is free (nothing listens on it). */
export function portFree(port: number): boolean {
  try {
    const l = Deno.listen({ hostname: "127.0.0.1", port });
    l.close();
    return true;
  } catch {
    return false;
  }
}

/** Find `count` consecutive free ports from a random base (for tests running side by side). */
export function freePorts(count: number): number {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = portFree(base + i);
    if (ok) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/** Last `lines` lines of a log file (for failure reports). */
export async function tail(path: string, lines = 20): Promise<string> {
  try {
    const text = await Deno.readTextFile(path);
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
