/**
 * Local cluster lifecycle: `deno task cluster:start | cluster:stop | cluster:status |
 * cluster:leader`. State lives in `.cluster/` (data/n1..n3, logs/, pids/).
 *
 *   start   start every node that is not running (all three on a fresh checkout; a node you
 *           killed by hand is restarted from its data dir), wait for a leader, say where
 *   stop    SIGTERM each node by PID, SIGKILL after a grace period
 *   status  a table: id, address, role, term, leader, commit, applied, snapshot, log, pid
 *   leader  print the leader's id and address (exit 1 if there is none)
 *
 * Flags: --nodes N (3), --base-port P (9101), --dir D (.cluster), --grace-ms (5000);
 * start passes anything after `--` to every node (e.g. -- --snapshot-entries 500).
 */
import { parseArgs } from "@std/cli/parse-args";
import { join } from "@std/path";
import {
  fetchStatus,
  type Layout,
  layout,
  portFree,
  PROJECT_ROOT,
  runningPid,
  startNode,
  stopPid,
  tail,
  waitForLeader,
} from "./_cluster.ts";

const USAGE =
  `Usage: deno task cluster:<start|stop|status|leader> [--nodes 3] [--base-port 9101] ` +
  `[--dir .cluster] [--grace-ms 5000] [-- node flags...]`;

function fail(msg: string, code = 2): never {
  console.error(`error: ${msg}\n${USAGE}`);
  Deno.exit(code);
}

async function start(lay: Layout, nodeFlags: string[]): Promise<number> {
  const toStart = [];
  for (const n of lay.nodes) {
    const pid = await runningPid(n);
    if (pid !== null) console.log(`${n.id} is already running (pid ${pid}) on ${n.addr}`);
    else toStart.push(n);
  }
  if (toStart.length === 0) {
    console.log("cluster is already running; nothing to start");
    return 0;
  }
  for (const n of toStart) {
    if (!portFree(n.port)) {
      fail(`port ${n.port} for ${n.id} is in use by another program`, 1);
    }
  }
  for (const n of toStart) {
    const s = await startNode(lay, n, { detached: true, flags: nodeFlags });
    console.log(`started ${n.id} on ${n.addr} (pid ${s.pid}), log ${n.logFile}`);
  }
  const t0 = performance.now();
  const leader = await waitForLeader(lay.nodes.map((n) => n.addr), 15_000);
  if (!leader) {
    console.error("no leader elected within 15 s; last log lines:");
    for (const n of lay.nodes) console.error(`--- ${n.id}\n${await tail(n.logFile, 10)}`);
    return 1;
  }
  console.log(
    `leader: ${leader.id} at http://${leader.addr} (term ${leader.term}, elected after ` +
      `${Math.round(performance.now() - t0)} ms)`,
  );
  return 0;
}

async function stop(lay: Layout, graceMs: number): Promise<number> {
  let stopped = 0;
  await Promise.all(lay.nodes.map(async (n) => {
    const pid = await runningPid(n);
    await Deno.remove(n.pidFile).catch(() => {});
    if (pid === null) return;
    const how = await stopPid(pid, n.id, graceMs);
    stopped++;
    console.log(
      `${n.id} (pid ${pid}) ${how === "kill" ? "killed after the grace period" : "stopped"}`,
    );
  }));
  if (stopped === 0) console.log("no node was running");
  return 0;
}

async function status(lay: Layout): Promise<number> {
  const rows = [[
    "id",
    "address",
    "role",
    "term",
    "leader",
    "commitIndex",
    "lastApplied",
    "snapshot",
    "log entries",
    "wal",
    "pid",
  ]];
  for (const n of lay.nodes) {
    const pid = await runningPid(n);
    const s = pid === null ? null : await fetchStatus(n.addr);
    if (s === null) {
      rows.push([
        n.id,
        n.addr,
        pid === null ? "down" : "no answer",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        pid ? String(pid) : "-",
      ]);
      continue;
    }
    const entries = (s.lastLogIndex ?? 0) - (s.firstLogIndex ?? 1) + 1;
    rows.push([
      s.id,
      n.addr,
      s.role,
      String(s.currentTerm),
      s.leaderId || "-",
      String(s.commitIndex),
      String(s.lastApplied),
      s.snapshotIndex ? `${s.snapshotTerm}/${s.snapshotIndex}` : "-",
      String(entries),
      s.walBytes === undefined ? "" : `${(s.walBytes / 1024).toFixed(0)} KiB/${s.walSegments} seg`,
      String(pid),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const [i, r] of rows.entries()) {
    console.log(r.map((v, c) => v.padEnd(widths[c])).join("  ").trimEnd());
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
  return 0;
}

async function leader(lay: Layout): Promise<number> {
  const l = await waitForLeader(lay.nodes.map((n) => n.addr), 1000);
  if (!l) {
    console.error("no leader (is the cluster running? deno task cluster:start)");
    return 1;
  }
  console.log(`${l.id} http://${l.addr} term ${l.term}`);
  return 0;
}

async function main(): Promise<number> {
  const dash = Deno.args.indexOf("--");
  const own = dash < 0 ? Deno.args : Deno.args.slice(0, dash);
  const nodeFlags = dash < 0 ? [] : Deno.args.slice(dash + 1);
  const a = parseArgs(own, {
    string: ["nodes", "base-port", "dir", "grace-ms"],
    default: {
      nodes: "3",
      "base-port": "9101",
      dir: join(PROJECT_ROOT, ".cluster"),
      "grace-ms": "5000",
    },
    unknown: (x: string) => x.startsWith("-") ? fail(`unknown flag ${x}`) : true,
  });
  const [cmd, ...rest] = a._.map(String);
  if (rest.length > 0) fail(`unexpected argument ${rest[0]}`);
  const count = Number(a.nodes), base = Number(a["base-port"]), grace = Number(a["grace-ms"]);
  if (!Number.isInteger(count) || count < 1 || count > 9) fail("--nodes must be 1..9");
  if (!Number.isInteger(base) || base < 1024 || base + count > 65535) {
    fail("--base-port is out of range");
  }
  if (!Number.isInteger(grace) || grace < 0) fail("--grace-ms must be a non-negative integer");
  const lay = layout(a.dir, count, base);
  switch (cmd) {
    case "start":
      return await start(lay, nodeFlags);
    case "stop":
      return await stop(lay, grace);
    case "status":
      return await status(lay);
    case "leader":
      return await leader(lay);
    default:
      fail(cmd === undefined ? "missing command" : `unknown command ${cmd}`);
  }
}

if (import.meta.main) Deno.exit(await main());
