/**
 * `deno task bench:etcd [--peer-bench ../shared/peer-bench] [--duration 10] [--reps 3]`: our
 * 3-node cluster and a 3-member etcd 3.4 cluster, measured one after the other in one run by the
 * same load generator (wrk) with the same workload (peer-bench's kv.lua through bench-kv.sh):
 * writes at 1 and 64 connections, linearizable reads and stale/serializable reads at 64, all
 * sent to the leader, median of --reps runs. Writes benchmarks/vs-etcd.md with the machine,
 * the table, the ratios against the targets, and the command.
 *
 * Needs the peer-bench folder (shipped beside the project in ../shared) and Debian's etcd-server,
 * etcd-client and wrk (`apt-get install etcd-server etcd-client wrk`). Every process it starts
 * is stopped by PID (ours here, etcd by peer-bench's stop-etcd.sh), also on failure.
 */
import { parseArgs } from "@std/cli/parse-args";
import { join, resolve } from "@std/path";
import {
  fetchStatus,
  layout,
  portFree,
  PROJECT_ROOT,
  type Started,
  startNode,
  stopStarted,
  waitForLeader,
} from "./_cluster.ts";

const USAGE =
  "Usage: deno task bench:etcd [--peer-bench DIR] [--duration S] [--reps N] [--base-port 9701]";

interface Row {
  group: string;
  ops_s?: number;
  p50_us?: number;
  p99_us?: number;
  server_cpu_cores?: number;
  leader_cpu_cores?: number;
  client_cpu_cores?: number;
  errors?: number;
}

/** Median of each metric per group, from peer-bench's JSON lines. */
export function medians(lines: string[]): Map<string, Row> {
  const groups = new Map<string, Row[]>();
  for (const l of lines) {
    if (!l.trim().startsWith("{")) continue;
    const r = JSON.parse(l) as Row & { kind?: string };
    if (r.kind !== "wrk" || !r.group) continue;
    groups.set(r.group, [...(groups.get(r.group) ?? []), r]);
  }
  const med = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const out = new Map<string, Row>();
  for (const [g, rs] of groups) {
    const row: Row = { group: g };
    for (
      const k of [
        "ops_s",
        "p50_us",
        "p99_us",
        "server_cpu_cores",
        "leader_cpu_cores",
        "client_cpu_cores",
      ] as const
    ) {
      const xs = rs.map((r) => r[k]).filter((v): v is number => typeof v === "number");
      if (xs.length) row[k] = med(xs);
    }
    row.errors = rs.reduce((a, r) => a + (r.errors ?? 0), 0);
    out.set(g, row);
  }
  return out;
}

/** The four targets of the performance issue, evaluated on the medians. */
export function verdicts(
  m: Map<string, Row>,
): { what: string; value: string; target: string; met: boolean }[] {
  const g = (who: string, w: string) => m.get(`${who} ${w}`);
  const out: { what: string; value: string; target: string; met: boolean }[] = [];
  const ratio = (w: string) => (g("ours", w)?.ops_s ?? 0) / (g("etcd", w)?.ops_s ?? Infinity);
  const put64 = ratio("put64");
  const p99ok = (g("ours", "put64")?.p99_us ?? Infinity) <= (g("etcd", "put64")?.p99_us ?? 0);
  out.push({
    what: "writes, 64 connections: ops/s ratio",
    value: `${put64.toFixed(2)}x`,
    target: ">= 2.0x",
    met: put64 >= 2,
  });
  out.push({
    what: "writes, 64 connections: p99",
    value: `${fmtUs(g("ours", "put64")?.p99_us)} vs ${fmtUs(g("etcd", "put64")?.p99_us)}`,
    target: "no worse than etcd",
    met: p99ok,
  });
  const get64 = ratio("get64");
  out.push({
    what: "linearizable reads, 64 connections: ops/s ratio",
    value: `${get64.toFixed(2)}x`,
    target: ">= 3.0x",
    met: get64 >= 3,
  });
  const sget64 = ratio("sget64");
  out.push({
    what: "stale vs serializable reads, 64 connections: ops/s ratio",
    value: `${sget64.toFixed(2)}x`,
    target: ">= 5.0x",
    met: sget64 >= 5,
  });
  const o1 = g("ours", "put1")?.p50_us ?? Infinity, e1 = g("etcd", "put1")?.p50_us ?? 0;
  out.push({
    what: "writes, 1 connection: p50",
    value: `${fmtUs(o1)} vs ${fmtUs(e1)}`,
    target: "no higher than etcd",
    met: o1 <= e1,
  });
  return out;
}

function fmtUs(us: number | undefined): string {
  return us === undefined
    ? "?"
    : us >= 1000
    ? `${(us / 1000).toFixed(2)} ms`
    : `${Math.round(us)} µs`;
}

async function run(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  cwd: string,
): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env, cwd, stdout: "piped", stderr: "inherit" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code})`);
  return text;
}

async function main(): Promise<number> {
  const a = parseArgs(Deno.args, {
    string: ["peer-bench", "duration", "reps", "base-port"],
    default: {
      "peer-bench": join(PROJECT_ROOT, "..", "shared", "peer-bench"),
      duration: "10",
      reps: "3",
      "base-port": "9701",
    },
    unknown: (x: string) => {
      console.error(`unknown argument ${x}\n${USAGE}`);
      Deno.exit(2);
    },
  });
  const pb = resolve(a["peer-bench"]);
  for (const f of ["bench-kv.sh", "start-etcd.sh", "stop-etcd.sh", "kv.lua"]) {
    try {
      await Deno.stat(join(pb, f));
    } catch {
      console.error(`error: ${join(pb, f)} not found; pass --peer-bench DIR`);
      return 1;
    }
  }
  for (const tool of ["wrk", "etcd", "etcdctl"]) {
    const ok = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" })
      .output();
    if (!ok.success) {
      console.error(
        `error: ${tool} is not installed (apt-get install etcd-server etcd-client wrk)`,
      );
      return 1;
    }
  }
  const env = { DURATION: a.duration, REPS: a.reps, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };
  const root = join(PROJECT_ROOT, ".cluster", "vs-etcd");
  await Deno.remove(root, { recursive: true }).catch(() => {});
  await Deno.mkdir(root, { recursive: true });
  const out = join(root, "runs.jsonl");
  await Deno.writeTextFile(out, "");
  const lay = layout(root, 3, Number(a["base-port"]));
  const started: Started[] = [];
  const stopOurs = async () => {
    await stopStarted(started.map((s, i) => [lay.nodes[i].id, s]));
    started.length = 0;
  };
  const etcdDir = join(root, "etcd");
  let etcdUp = false;
  const stopEtcd = async () => {
    if (!etcdUp) return;
    etcdUp = false;
    await run(join(pb, "stop-etcd.sh"), [etcdDir, "--clean"], env, pb).catch(() => "");
  };
  Deno.addSignalListener(
    "SIGINT",
    () => Promise.all([stopOurs(), stopEtcd()]).then(() => Deno.exit(130)),
  );
  const t0 = performance.now();
  try {
    // ---- ours
    for (const n of lay.nodes) if (!portFree(n.port)) throw new Error(`port ${n.port} is in use`);
    for (const n of lay.nodes) started.push(await startNode(lay, n, { flags: ["--quiet"] }));
    const leader = await waitForLeader(lay.nodes.map((n) => n.addr), 15_000);
    if (!leader) throw new Error("our cluster elected no leader");
    const leaderPid = (await fetchStatus(leader.addr))?.pid;
    console.error(`ours: leader ${leader.id} at ${leader.addr}`);
    await run(join(pb, "bench-kv.sh"), ["api", `http://${leader.addr}`, out], {
      ...env,
      LABEL: "ours",
      SERVER_PIDS: started.map((s) => s.pid).join(" "),
      LEADER_PID: String(leaderPid ?? ""),
      STALE_QUERY: "&stale=1",
    }, pb);
    await stopOurs();
    // ---- etcd
    const etcdLeader = (await run(join(pb, "start-etcd.sh"), [etcdDir], env, pb)).trim().split("\n")
      .pop()!;
    etcdUp = true;
    const pids = (await Deno.readTextFile(join(etcdDir, "etcd.pids"))).trim().split(/\s+/);
    const idx = etcdLeader.endsWith(":2379") ? 0 : etcdLeader.endsWith(":22379") ? 1 : 2;
    console.error(`etcd: leader ${etcdLeader}`);
    await run(join(pb, "bench-kv.sh"), ["etcd", etcdLeader, out], {
      ...env,
      LABEL: "etcd",
      SERVER_PIDS: pids.join(" "),
      LEADER_PID: pids[idx],
    }, pb);
    await stopEtcd();
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    await stopOurs();
    await stopEtcd();
    return 1;
  }

  const m = medians((await Deno.readTextFile(out)).split("\n"));
  const table =
    (await run(Deno.execPath(), ["run", "--allow-read", join(pb, "summarize.ts"), out], env, pb))
      .trim();
  const checks = verdicts(m);
  const machine = (await run(
    "sh",
    [
      "-c",
      [
        `echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"`,
        `awk '/MemTotal/{printf "%.1f GiB RAM\\n", $2/1048576}' /proc/meminfo`,
        `echo "kernel $(uname -r)"`,
        `echo "$(etcd --version | head -1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), deno ${Deno.version.deno}"`,
        `df -hT ${root} | awk 'NR==2{print "disk: "$1", "$2}'`,
      ].join("; "),
    ],
    env,
    pb,
  )).trim().split("\n").join("; ");
  const cmd = `deno task bench:etcd --duration ${a.duration} --reps ${a.reps}`;
  const md = [
    "# Ours vs etcd on the same machine",
    "",
    `Generated ${new Date().toISOString()} by \`${cmd}\` (${
      Math.round((performance.now() - t0) / 1000)
    } s).`,
    "",
    `Machine: ${machine}.`,
    "",
    "Both clusters have 3 members on this one machine (127.0.0.1), default settings, durable",
    "writes (fsync). One wrk process (peer-bench's `kv.lua` through `bench-kv.sh`) sends the same",
    "workload to each cluster's leader: unique 16-byte keys and 100-byte values for writes,",
    "random preloaded keys for reads; etcd through its JSON gateway (`/v3/kv/put`, `/v3/kv/range`,",
    "`serializable: true` for the stale reads), ours through `PUT /kv/put` and `GET /kv/get`",
    "(`&stale=1` for stale reads). Each workload: 2 s warmup, then the median of the runs.",
    "",
    "## Targets",
    "",
    "| target | measured | wanted | met |",
    "| --- | --- | --- | --- |",
    ...checks.map((c) => `| ${c.what} | ${c.value} | ${c.target} | ${c.met ? "yes" : "no"} |`),
    "",
    "## Table (medians)",
    "",
    table,
    "",
    "Groups: `put1` writes over 1 connection, `put64` writes over 64, `get64` linearizable reads",
    "over 64, `sget64` stale (ours) or serializable (etcd) reads over 64. CPU in cores (2.00 =",
    "the whole machine); server = all three members, leader = the leader alone.",
    "",
  ].join("\n");
  await Deno.mkdir(join(PROJECT_ROOT, "benchmarks"), { recursive: true });
  await Deno.writeTextFile(join(PROJECT_ROOT, "benchmarks", "vs-etcd.md"), md);
  console.log(md);
  console.log("wrote benchmarks/vs-etcd.md");
  return 0;
}

if (import.meta.main) Deno.exit(await main());
