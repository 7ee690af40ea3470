/**
 * A key-value store node: flags -> config, storage recovery, the Raft core and its driver, the
 * peer client and one Deno.serve for client and Raft routes; SIGINT/SIGTERM shut it down
 * cleanly (stop serving, finish the WAL write in flight, close files).
 *
 *   deno run -A main.ts --id n1 --listen 127.0.0.1:9101 \
 *     --peers n1=127.0.0.1:9101,n2=127.0.0.1:9102,n3=127.0.0.1:9103 --data-dir .cluster/data/n1
 */
import { parseArgs } from "@std/cli/parse-args";
import { KvStore } from "./kv/store.ts";
import { RaftNode } from "./raft/node.ts";
import { defaultRaftConfig, Raft } from "./raft/raft.ts";
import { Prng } from "./raft/rand.ts";
import { Stat } from "./raft/stats.ts";
import { DiskStorage } from "./storage/mod.ts";
import { PeerClient } from "./transport/peer_client.ts";
import { createHandler } from "./transport/server.ts";

interface FlagSpec {
  name: string;
  help: string;
  default?: number | string;
}

const MiB = 1 << 20;

/** Every flag, with its default and meaning (printed by --help). */
export const FLAGS: FlagSpec[] = [
  { name: "id", help: "this node's id; must appear in --peers (required)" },
  { name: "listen", help: "host:port to serve clients and peers on (required)" },
  { name: "peers", help: "every member as id=host:port,... including this node (required)" },
  { name: "data-dir", help: "directory for the WAL and snapshots; created and locked (required)" },
  { name: "election-timeout-min-ms", default: 350, help: "election timeout lower bound" },
  { name: "election-timeout-max-ms", default: 700, help: "election timeout upper bound" },
  { name: "heartbeat-ms", default: 120, help: "leader heartbeat interval" },
  { name: "tick-ms", default: 10, help: "resolution of the Raft clock" },
  { name: "rpc-timeout-ms", default: 1000, help: "timeout of one Raft RPC to a peer" },
  {
    name: "write-timeout-ms",
    default: 5000,
    help: "a write not committed by then answers 504 (outcome unknown)",
  },
  {
    name: "read-timeout-ms",
    default: 3000,
    help: "a linearizable read not confirmed by then answers 503",
  },
  {
    name: "snapshot-entries",
    default: 10_000,
    help: "snapshot after about this many applied entries (0: off; see the README)",
  },
  {
    name: "snapshot-bytes",
    default: 64 * MiB,
    help: "...or after this many bytes of applied commands (0: off)",
  },
  {
    name: "snapshot-trailing-entries",
    default: 1000,
    help: "log entries kept below a snapshot for lagging followers",
  },
  {
    name: "snapshot-chunk-bytes",
    default: MiB,
    help: "chunk size when streaming a snapshot to a follower",
  },
  { name: "wal-segment-bytes", default: 16 * MiB, help: "start a new WAL segment at this size" },
  {
    name: "wal-sync",
    default: "auto",
    help: "auto: block on WAL syncs while a follower, async while leader; blocking; async",
  },
  { name: "max-body-bytes", default: 2 * MiB, help: "largest client request body (413 beyond)" },
  { name: "max-key-bytes", default: 4096, help: "largest key, UTF-8 bytes (400 beyond)" },
  { name: "max-value-bytes", default: MiB, help: "largest value, UTF-8 bytes (413 beyond)" },
  { name: "max-append-bytes", default: MiB, help: "entry bytes per AppendEntries message" },
  { name: "max-inflight-appends", default: 2, help: "unanswered AppendEntries per follower" },
  {
    name: "max-uncommitted-entries",
    default: 20_000,
    help: "writes waiting to commit before 503 (back-pressure)",
  },
  {
    name: "max-pending-reads",
    default: 20_000,
    help: "linearizable reads waiting before 503 (back-pressure)",
  },
  { name: "quiet", help: "log only warnings and errors" },
  { name: "help", help: "print this help" },
];

export interface Config {
  id: string;
  host: string;
  port: number;
  peers: Map<string, string>;
  dataDir: string;
  walSync: "auto" | "blocking" | "async";
  quiet: boolean;
  n: Record<string, number>;
}

export class UsageError extends Error {
  override name = "UsageError";
}

export function usage(): string {
  const lines = [
    "Usage: deno run -A main.ts --id ID --listen HOST:PORT --peers ID=HOST:PORT,... --data-dir DIR [flags]",
    "",
    "Flags:",
  ];
  for (const f of FLAGS) {
    const d = f.default === undefined ? "" : ` (default ${f.default})`;
    lines.push(`  --${f.name.padEnd(27)} ${f.help}${d}`);
  }
  return lines.join("\n");
}

const HOST_PORT = /^([A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/;

function hostPort(flag: string, v: string): { host: string; port: number } {
  const m = HOST_PORT.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new UsageError(`--${flag}: expected host:port, got "${v}"`);
  }
  return { host: m[1], port };
}

/** Parse and validate flags; throws UsageError with a message naming the bad flag. */
export function parseFlags(args: string[]): Config | "help" {
  const numeric = FLAGS.filter((f) => typeof f.default === "number").map((f) => f.name);
  const unknown: string[] = [];
  const a = parseArgs(args, {
    string: ["id", "listen", "peers", "data-dir", "wal-sync", ...numeric],
    boolean: ["help", "quiet"],
    unknown: (arg: string) => {
      unknown.push(arg);
      return false;
    },
  });
  if (unknown.length > 0) throw new UsageError(`unknown argument ${unknown[0]}`);
  if (a.help) return "help";
  for (const name of ["id", "listen", "peers", "data-dir"]) {
    if (typeof a[name] !== "string" || a[name] === "") {
      throw new UsageError(`--${name} is required`);
    }
  }
  const n: Record<string, number> = {};
  for (const name of numeric) {
    const raw = a[name];
    const spec = FLAGS.find((f) => f.name === name)!;
    if (raw === undefined) {
      n[name] = spec.default as number;
      continue;
    }
    const v = Number(raw);
    if (typeof raw !== "string" || raw.trim() === "" || !Number.isSafeInteger(v) || v < 0) {
      throw new UsageError(`--${name}: expected a non-negative integer, got "${raw}"`);
    }
    n[name] = v;
  }
  const positive = numeric.filter((x) =>
    !["snapshot-entries", "snapshot-bytes", "snapshot-trailing-entries"].includes(x)
  );
  for (const name of positive) {
    if (n[name] === 0) throw new UsageError(`--${name} must be at least 1`);
  }
  if (n["election-timeout-max-ms"] <= n["election-timeout-min-ms"]) {
    throw new UsageError("--election-timeout-max-ms must exceed --election-timeout-min-ms");
  }
  if (n["heartbeat-ms"] * 2 > n["election-timeout-min-ms"]) {
    throw new UsageError("--heartbeat-ms must be at most half of --election-timeout-min-ms");
  }
  if (n["tick-ms"] > n["heartbeat-ms"]) {
    throw new UsageError("--tick-ms must not exceed --heartbeat-ms");
  }
  if (n["max-body-bytes"] < 64) throw new UsageError("--max-body-bytes must be at least 64");
  const id = a.id as string;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) {
    throw new UsageError(`--id: use 1-64 letters, digits, '.', '_' or '-', got "${id}"`);
  }
  const listen = hostPort("listen", a.listen as string);
  const peers = new Map<string, string>();
  for (const part of (a.peers as string).split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new UsageError(`--peers: expected id=host:port, got "${part}"`);
    const pid = part.slice(0, eq), addr = part.slice(eq + 1);
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(pid)) throw new UsageError(`--peers: bad id "${pid}"`);
    hostPort("peers", addr);
    if (peers.has(pid)) throw new UsageError(`--peers: ${pid} appears twice`);
    peers.set(pid, addr);
  }
  if (!peers.has(id)) throw new UsageError(`--peers must include this node (${id})`);
  const walSync = a["wal-sync"] ?? "auto";
  if (walSync !== "auto" && walSync !== "blocking" && walSync !== "async") {
    throw new UsageError(`--wal-sync: expected auto, blocking or async, got "${walSync}"`);
  }
  return {
    id,
    host: listen.host,
    port: listen.port,
    peers,
    dataDir: a["data-dir"] as string,
    walSync,
    quiet: a.quiet === true,
    n,
  };
}

async function main(): Promise<void> {
  let cfg: Config | "help";
  try {
    cfg = parseFlags(Deno.args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`error: ${err.message}\n\n${usage()}`);
    Deno.exit(2);
  }
  if (cfg === "help") {
    console.log(usage());
    return;
  }
  const c = cfg;
  const log = (msg: string) => console.error(`${new Date().toISOString()} ${c.id} ${msg}`);
  const info = c.quiet ? () => {} : log;
  globalThis.addEventListener("unhandledrejection", (e) => {
    log(`unhandled rejection: ${e.reason?.stack ?? e.reason}`);
    e.preventDefault(); // a bug must not take the node down
  });

  const started = performance.now();
  let opened;
  try {
    opened = await DiskStorage.open({
      dataDir: c.dataDir,
      info,
      segmentBytes: c.n["wal-segment-bytes"],
      log,
    });
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    Deno.exit(1);
  }
  const { storage, recovered } = opened;
  const kv = new KvStore();
  if (recovered.snapshot && recovered.state) {
    kv.restore(recovered.snapshot.index, recovered.snapshot.term, recovered.state);
  }
  const hs = recovered.hardState;
  info(
    `recovered term ${hs.term}, vote ${hs.vote || "-"}, commit ${hs.commit}, snapshot ` +
      `${
        recovered.snapshot?.index ?? 0
      } (${kv.size} keys), ${recovered.entries.length} log entries ` +
      `in ${Math.round(performance.now() - started)} ms`,
  );

  const tick = c.n["tick-ms"];
  const seed = crypto.getRandomValues(new Uint32Array(1))[0];
  const raftConfig = {
    ...defaultRaftConfig,
    id: c.id,
    voters: [...c.peers.keys()],
    electionTicksMin: Math.max(2, Math.round(c.n["election-timeout-min-ms"] / tick)),
    electionTicksMax: Math.max(3, Math.round(c.n["election-timeout-max-ms"] / tick)),
    heartbeatTicks: Math.max(1, Math.round(c.n["heartbeat-ms"] / tick)),
    appendBytesMax: c.n["max-append-bytes"],
    inflightAppendsMax: c.n["max-inflight-appends"],
    uncommittedEntriesMax: c.n["max-uncommitted-entries"],
  };
  const random = new Prng(seed).fn();
  const core = new Raft({ ...raftConfig, random }, recovered);
  const peers = new PeerClient({
    peers: c.peers,
    rpcTimeoutMs: c.n["rpc-timeout-ms"],
    readTimeoutMs: c.n["read-timeout-ms"],
    snapshotChunkBytes: c.n["snapshot-chunk-bytes"],
    connectionsMax: c.n["max-inflight-appends"] + 4,
    readConnectionsMax: 64,
    log: info,
  });
  let shuttingDown = false;
  const node = new RaftNode(
    {
      raft: raftConfig,
      random: new Prng(seed ^ 0x5bd1e995).fn(), // the driver's own draws, apart from the core's
      peers: c.peers,
      tickMs: tick,
      writeTimeoutMs: c.n["write-timeout-ms"],
      readTimeoutMs: c.n["read-timeout-ms"],
      snapshotEntries: c.n["snapshot-entries"],
      snapshotBytes: c.n["snapshot-bytes"],
      trailingEntries: c.n["snapshot-trailing-entries"],
      pendingReadsMax: c.n["max-pending-reads"],
      blockingSync: ({ auto: "follower", blocking: "always", async: "never" } as const)[c.walSync],
      log: info,
      onFatal: (err) => {
        log(`FATAL: cannot go on safely, stopping: ${(err as Error)?.stack ?? err}`);
        if (!shuttingDown) Deno.exit(1);
      },
    },
    core,
    kv,
    storage,
    peers,
  );
  peers.attach(node);

  // How late timers fire: the event loop's queueing delay, which every request also pays.
  const loopLagMs = new Stat();
  let lagLast = performance.now();
  setInterval(() => {
    const now = performance.now();
    loopLagMs.add(Math.max(0, now - lagLast - 10));
    lagLast = now;
  }, 10);

  const handler = createHandler({
    node,
    limits: {
      bodyBytesMax: c.n["max-body-bytes"],
      keyBytesMax: c.n["max-key-bytes"],
      valueBytesMax: c.n["max-value-bytes"],
      raftBodyBytesMax: Math.max(c.n["max-append-bytes"] * 2, c.n["snapshot-chunk-bytes"]) + MiB,
    },
    extraStatus: async () => ({
      pid: Deno.pid,
      ...(await storage.diskUsage()),
      stats: {
        persistMs: node.stats.persistMs.summary(),
        entriesPerBatch: node.stats.entriesPerBatch.summary(1),
        appliedPerBatch: node.stats.appliedPerBatch.summary(1),
        messagesPerBatch: node.stats.messagesPerBatch.summary(1),
        appendRttMs: peers.appendRttMs.summary(),
        appendHoldMs: node.stats.appendHoldMs.summary(),
        eventLoopLagMs: loopLagMs.summary(),
      },
    }),
    log,
  });
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname: c.host,
      port: c.port,
      onListen: () =>
        info(
          `listening on ${c.host}:${c.port}, peers ${
            [...c.peers].map(([i, a]) => `${i}=${a}`).join(",")
          }`,
        ),
    }, handler);
  } catch (err) {
    log(`cannot listen on ${c.host}:${c.port}: ${(err as Error).message}`);
    storage.close();
    Deno.exit(1);
  }
  node.start();

  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    info(`${signal}: shutting down`);
    await node.stop(); // waits for the WAL batch in flight
    peers.close();
    await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 2000))]);
    storage.close();
    info("stopped");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => shutdown("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => shutdown("SIGTERM"));
}

if (import.meta.main) await main();
