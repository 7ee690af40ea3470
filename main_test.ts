/**
 * Process-level tests: real `main.ts` processes on loopback ports, driven over HTTP, killed with
 * SIGKILL. They check what a user relies on: failover keeps every acknowledged write, a
 * restarted node catches up from its WAL, a whole-cluster crash loses nothing acknowledged, and
 * bad input gets a clear error while the node keeps serving. Every process is stopped by PID.
 */
import { assert, assertEquals } from "@std/assert";
import { parseFlags, UsageError } from "./main.ts";
import {
  fetchStatus,
  freePorts,
  type Layout,
  layout,
  type NodeSpec,
  signalNode,
  sleep,
  type Started,
  startNode,
  stopPid,
  stopStarted,
  tail,
  waitForLeader,
} from "./tasks/_cluster.ts";

class TestCluster {
  procs = new Map<string, Started>();
  private constructor(readonly lay: Layout, readonly flags: string[]) {}

  static async start(count: number, flags: string[] = []): Promise<TestCluster> {
    const root = await Deno.makeTempDir({ prefix: "kv-test-" });
    const c = new TestCluster(layout(root, count, freePorts(count)), flags);
    for (const n of c.lay.nodes) await c.startNode(n);
    return c;
  }

  node(id: string): NodeSpec {
    return this.lay.nodes.find((n) => n.id === id)!;
  }

  async startNode(n: NodeSpec): Promise<void> {
    this.procs.set(n.id, await startNode(this.lay, n, { flags: this.flags }));
  }

  async kill9(id: string): Promise<void> {
    const p = this.procs.get(id)!;
    assert(await signalNode(p.pid, id, "SIGKILL"), `could not SIGKILL ${id}`);
    await p.child.status;
    this.procs.delete(id);
  }

  async leader(among = this.lay.nodes, timeoutMs = 10_000) {
    const l = await waitForLeader(among.map((n) => n.addr), timeoutMs);
    if (!l) throw new Error(`no leader among ${among.map((n) => n.id)}\n${await this.logs()}`);
    return l;
  }

  async logs(): Promise<string> {
    const parts = await Promise.all(
      this.lay.nodes.map(async (n) => `--- ${n.id}\n${await tail(n.logFile, 15)}`),
    );
    return parts.join("\n");
  }

  async stop(): Promise<void> {
    await stopStarted(this.procs, 3000);
    this.procs.clear();
    await Deno.remove(this.lay.root, { recursive: true }).catch(() => {});
  }
}

/** Run `fn` against a fresh cluster; print the nodes' logs if it fails; stop it either way. */
async function withCluster(
  count: number,
  flags: string[],
  fn: (c: TestCluster) => Promise<void>,
): Promise<void> {
  const c = await TestCluster.start(count, flags);
  try {
    await fn(c);
  } catch (err) {
    console.error(await c.logs());
    throw err;
  } finally {
    await c.stop();
  }
}

async function put(addr: string, key: string, value: string): Promise<number> {
  const res = await fetch(`http://${addr}/kv/put`, {
    method: "PUT",
    body: JSON.stringify({ key, value }),
    signal: AbortSignal.timeout(5000),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`put ${key} -> ${res.status} ${JSON.stringify(body)}`);
  return body.index;
}

async function get(
  addr: string,
  key: string,
  stale = false,
): Promise<{ status: number; value?: string }> {
  const res = await fetch(
    `http://${addr}/kv/get?key=${encodeURIComponent(key)}${stale ? "&stale=true" : ""}`,
    {
      signal: AbortSignal.timeout(5000),
    },
  );
  const body = await res.json();
  return { status: res.status, value: body.value };
}

/** Put `count` keys `prefix<i>` with `concurrency` parallel clients; returns the acknowledged ones. */
async function putMany(
  addr: string,
  prefix: string,
  count: number,
  concurrency = 8,
): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++;
      const key = `${prefix}${i}`, value = `value-${prefix}-${i}`;
      await put(addr, key, value);
      acked.set(key, value);
    }
  }));
  return acked;
}

async function expectAll(addr: string, acked: Map<string, string>): Promise<void> {
  for (const [k, v] of acked) {
    const r = await get(addr, k);
    assertEquals(r, { status: 200, value: v }, `key ${k} on ${addr}`);
  }
}

Deno.test({
  name:
    "failover: SIGKILL the leader, a new one within 3 s, no acknowledged write lost, the old one catches up",
  sanitizeResources: false, // fetch keep-alive connections to killed nodes close asynchronously
  async fn() {
    await withCluster(3, [], async (c) => {
      const l1 = await c.leader();
      const acked = await putMany(l1.addr, "a", 100);
      assertEquals(acked.size, 100);

      await c.kill9(l1.id);
      const t0 = performance.now();
      const survivors = c.lay.nodes.filter((n) => n.id !== l1.id);
      const l2 = await c.leader(survivors, 5000);
      const failoverMs = performance.now() - t0;
      console.log(
        `new leader ${l2.id} (term ${l2.term}) ${
          Math.round(failoverMs)
        } ms after SIGKILL of ${l1.id}`,
      );
      assert(failoverMs < 3000, `failover took ${Math.round(failoverMs)} ms`);
      assert(l2.term > l1.term);

      for (const s of survivors) await expectAll(s.addr, acked);
      const more = await putMany(l2.addr, "b", 30);
      for (const [k, v] of more) acked.set(k, v);

      // The old leader restarts from its WAL and catches up with everything it missed.
      await c.startNode(c.node(l1.id));
      const target = (await fetchStatus(l2.addr))!.commitIndex;
      const deadline = Date.now() + 10_000;
      let st = await fetchStatus(c.node(l1.id).addr);
      while ((st === null || st.lastApplied < target) && Date.now() < deadline) {
        await sleep(50);
        st = await fetchStatus(c.node(l1.id).addr);
      }
      assert(
        st && st.lastApplied >= target,
        `restarted ${l1.id} at ${st?.lastApplied}, leader at ${target}`,
      );
      assertEquals(st?.role, "follower");
      for (const [k, v] of acked) {
        assertEquals(await get(c.node(l1.id).addr, k, true), { status: 200, value: v });
      }
    });
  },
});

Deno.test({
  name: "SIGKILL all three nodes and restart: every acknowledged write is still there",
  sanitizeResources: false,
  async fn() {
    await withCluster(3, [], async (c) => {
      const l = await c.leader();
      const acked = await putMany(l.addr, "k", 200, 16);
      await Promise.all(c.lay.nodes.map((n) => c.kill9(n.id)));
      for (const n of c.lay.nodes) await c.startNode(n);
      const l2 = await c.leader();
      await expectAll(l2.addr, acked);
      // and a follower serves them too (linearizable read through the leader)
      const f = c.lay.nodes.find((n) => n.id !== l2.id)!;
      await expectAll(f.addr, acked);
    });
  },
});

Deno.test({
  name:
    "a follower that missed 50,000 writes catches up through InstallSnapshot and serves every key",
  sanitizeResources: false,
  async fn() {
    await withCluster(3, [], async (c) => {
      const l = await c.leader();
      const f = c.lay.nodes.find((n) => n.id !== l.id)!;
      const p = c.procs.get(f.id)!;
      await stopPid(p.pid, f.id, 3000);
      await p.child.status;
      c.procs.delete(f.id);

      const t0 = performance.now();
      const acked = await putMany(l.addr, "s", 50_000, 64);
      const writeS = (performance.now() - t0) / 1000;
      const leaderSt = (await fetchStatus(l.addr))!;
      assert((leaderSt.snapshotIndex ?? 0) > 0, "the leader compacted its log");

      const t1 = performance.now();
      await c.startNode(f);
      const deadline = Date.now() + 60_000;
      let st = await fetchStatus(f.addr);
      while ((st === null || st.lastApplied < leaderSt.commitIndex) && Date.now() < deadline) {
        await sleep(50);
        st = await fetchStatus(f.addr);
      }
      const catchUpMs = performance.now() - t1;
      assert(st && st.lastApplied >= leaderSt.commitIndex, `follower at ${st?.lastApplied}`);
      const log = await Deno.readTextFile(f.logFile);
      assert(/installed snapshot/.test(log), "the follower caught up through a snapshot");
      console.log(
        `50,000 writes in ${writeS.toFixed(1)} s while ${f.id} was down; it caught up ` +
          `(restart + InstallSnapshot + log tail) in ${Math.round(catchUpMs)} ms, ` +
          `snapshot ${st?.snapshotTerm}/${st?.snapshotIndex}`,
      );
      // Every key is in its own state machine (stale reads are served locally).
      const keys = [...acked.keys()];
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < keys.length) {
          const k = keys[next++];
          const r = await get(f.addr, k, true);
          if (r.status !== 200 || r.value !== acked.get(k)) {
            throw new Error(`${f.id} has ${k}=${r.value} (${r.status}), expected ${acked.get(k)}`);
          }
        }
      }));
    });
  },
});

Deno.test({
  name: "bad input gets a JSON error with the right status, and the node keeps serving",
  sanitizeResources: false,
  async fn() {
    await withCluster(3, [
      "--max-body-bytes",
      "1000",
      "--max-key-bytes",
      "50",
      "--max-value-bytes",
      "100",
    ], async (c) => {
      const l = await c.leader();
      const follower = c.lay.nodes.find((n) => n.id !== l.id)!;
      const L = `http://${l.addr}`;
      const cases: [string, string, string | Uint8Array<ArrayBuffer> | undefined, number][] = [
        ["PUT", "/kv/put", "{not json", 400],
        ["PUT", "/kv/put", "[1,2]", 400],
        ["PUT", "/kv/put", '"just a string"', 400],
        ["PUT", "/kv/put", "", 400],
        ["PUT", "/kv/put", '{"value":"v"}', 400],
        ["PUT", "/kv/put", '{"key":"","value":"v"}', 400],
        ["PUT", "/kv/put", '{"key":5,"value":"v"}', 400],
        ["PUT", "/kv/put", '{"key":"k"}', 400],
        ["PUT", "/kv/put", '{"key":"k","value":7}', 400],
        ["PUT", "/kv/put", JSON.stringify({ key: "k".repeat(51), value: "v" }), 400],
        ["PUT", "/kv/put", JSON.stringify({ key: "k", value: "v".repeat(101) }), 413],
        ["PUT", "/kv/put", JSON.stringify({ key: "k", value: "v".repeat(2000) }), 413],
        ["POST", "/kv/put", '{"key":"k","value":"v"}', 405],
        ["GET", "/kv/put", undefined, 405],
        ["POST", "/kv/del", "{}", 400],
        ["PUT", "/kv/del", '{"key":"k"}', 405],
        ["GET", "/kv/get", undefined, 400],
        ["GET", "/kv/get?key=", undefined, 400],
        ["GET", "/kv/get?key=k&stale=maybe", undefined, 400],
        ["GET", "/kv/get?key=missing", undefined, 404],
        ["DELETE", "/cluster/status", undefined, 405],
        ["GET", "/nope", undefined, 404],
        ["GET", "/", undefined, 404],
        ["POST", "/raft/appendEntries", "garbage", 400],
        ["POST", "/raft/appendEntries", new Uint8Array([1, 2, 0, 0]), 400],
        ["POST", "/raft/requestVote", new Uint8Array(0), 400],
        ["POST", "/raft/installSnapshot", new Uint8Array([0, 0, 0, 9, 1]), 400],
        ["POST", "/raft/readIndex", new Uint8Array([1, 7, 2, 0]), 400],
        ["GET", "/raft/appendEntries", undefined, 405],
      ];
      for (const [method, path, body, want] of cases) {
        const res = await fetch(`${L}${path}`, { method, body, signal: AbortSignal.timeout(5000) });
        const text = await res.text();
        assertEquals(
          res.status,
          want,
          `${method} ${path} ${typeof body === "string" ? body.slice(0, 40) : ""}: ${text}`,
        );
        const j = JSON.parse(text);
        assert(
          typeof j.error === "string" && j.error.length > 0,
          `${method} ${path}: no error message`,
        );
        if (want === 405) assert(res.headers.get("allow"), `${method} ${path}: 405 without Allow`);
      }
      // A chunked body over the limit is refused without being buffered whole.
      const big = new ReadableStream<Uint8Array>({
        start(ctl) {
          for (let i = 0; i < 20; i++) ctl.enqueue(new TextEncoder().encode("x".repeat(100)));
          ctl.close();
        },
      });
      const r413 = await fetch(`${L}/kv/put`, {
        method: "PUT",
        body: big,
        signal: AbortSignal.timeout(5000),
      });
      assertEquals(r413.status, 413, await r413.text());
      // A raft message addressed to another node, or from a stranger, is refused.
      // (n9 is not a member; the message is otherwise well formed.)
      const { encodeMessage } = await import("./raft/codec.ts");
      const stranger = encodeMessage({
        type: "vote",
        from: "n9",
        to: l.id,
        term: 99,
        pre: false,
        lastLogIndex: 0,
        lastLogTerm: 0,
      });
      const rs = await fetch(`${L}/raft/requestVote`, {
        method: "POST",
        body: stranger,
        signal: AbortSignal.timeout(5000),
      });
      assertEquals(rs.status, 400, await rs.text());
      // The follower redirects writes; the leader still serves; nothing changed the term.
      const red = await fetch(`http://${follower.addr}/kv/put`, {
        method: "PUT",
        body: '{"key":"a","value":"b"}',
        redirect: "manual",
        signal: AbortSignal.timeout(5000),
      });
      assertEquals(red.status, 307);
      assertEquals(red.headers.get("location"), `${L}/kv/put`);
      const rb = await red.json();
      assertEquals([rb.leaderId, rb.leaderAddr], [l.id, l.addr]);
      await put(l.addr, "after", "still serving");
      assertEquals(await get(follower.addr, "after"), { status: 200, value: "still serving" });
      const st = await fetchStatus(l.addr);
      assertEquals([st?.role, st?.currentTerm], ["leader", l.term]);
    });
  },
});

Deno.test("flags: missing or invalid ones are usage errors naming the flag", () => {
  const base = [
    "--id",
    "n1",
    "--listen",
    "127.0.0.1:9101",
    "--peers",
    "n1=127.0.0.1:9101",
    "--data-dir",
    "d",
  ];
  const cfg = parseFlags(base);
  if (cfg === "help") throw new Error("--help was not given");
  assertEquals([cfg.id, cfg.port, cfg.n["heartbeat-ms"]], ["n1", 9101, 120]);
  const bad: [string[], string][] = [
    [base.slice(2), "--id is required"],
    [[...base, "--heartbeat-ms", "abc"], "--heartbeat-ms"],
    [[...base, "--bogus"], "unknown argument"],
    [
      ["--id", "n1", "--listen", "nohost", "--peers", "n1=127.0.0.1:1", "--data-dir", "d"],
      "--listen",
    ],
    [
      ["--id", "n2", "--listen", "127.0.0.1:1", "--peers", "n1=127.0.0.1:1", "--data-dir", "d"],
      "must include",
    ],
    [[...base, "--election-timeout-min-ms", "800"], "election-timeout-max-ms must exceed"],
  ];
  for (const [args, msg] of bad) {
    try {
      parseFlags(args);
      throw new Error(`accepted ${args.join(" ")}`);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      assert(err.message.includes(msg), `${err.message} should mention ${msg}`);
    }
  }
  assertEquals(parseFlags(["--help"]), "help");
});

Deno.test("a bad flag exits with code 2 and a usage message on stderr", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-net=127.0.0.1",
      "main.ts",
      "--id",
      "n1",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 2);
  const err = new TextDecoder().decode(out.stderr);
  assert(err.includes("--listen is required") && err.includes("Usage:"), err);
});

Deno.test("a second node on the same data dir fails at start with a clear message", async () => {
  await withCluster(1, [], async (c) => {
    await c.leader();
    const n = c.lay.nodes[0];
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        `--allow-read=${n.dataDir}`,
        `--allow-write=${n.dataDir}`,
        "main.ts",
        "--id",
        n.id,
        "--listen",
        `127.0.0.1:${n.port + 50}`,
        "--peers",
        `${n.id}=127.0.0.1:${n.port + 50}`,
        "--data-dir",
        n.dataDir,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 1, err);
    const pid = c.procs.get(n.id)!.pid;
    assert(err.includes(`is in use by another process (pid ${pid})`), err);
    assertEquals((await fetchStatus(n.addr))?.role, "leader", "the first node is unharmed");
  });
});
