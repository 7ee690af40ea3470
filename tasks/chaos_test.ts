/**
 * Tests of `deno task chaos` (tasks/chaos.ts). First its pure parts: how HTTP outcomes are
 * classified (ok / not executed / indeterminate, which decides what enters the history), flags,
 * the seeded fault plan, which faults may overlap, how partitions map to directed link cuts,
 * and the report's helpers. Then the task itself as a subprocess with its own permissions (as
 * `deno task chaos` runs it): the scenario passes, a bounded randomized run with all three
 * nemeses is linearizable, and Ctrl-C stops every node and exits 130. Each run gets free ports
 * and its own work dir under .cluster/, removed when the test passes.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { join } from "@std/path";
import { freePorts, isOurNode, layout, PROJECT_ROOT, readPid } from "./_cluster.ts";
import {
  admitTarget,
  type ChaosConfig,
  classifyRead,
  classifyWrite,
  convergenceProblems,
  type Cuttable,
  FAULT_GAP_MS,
  FAULT_LENGTH_MS,
  fetchFailure,
  gapsOver,
  type HttpResult,
  type KeyRead,
  LinkCuts,
  longestGap,
  NEMESES,
  parseChaosArgs,
  partitionLinks,
  planFaults,
  type RandomizedConfig,
  type ScenarioConfig,
  UsageError,
} from "./chaos.ts";

const IDS = ["n1", "n2", "n3"];

// (@std/assert comes without type declarations here, so assert() does not narrow types.)
function scenario(c: ChaosConfig | "help"): ScenarioConfig {
  if (c === "help" || c.mode !== "scenario") throw new Error(`expected the scenario: ${c}`);
  return c;
}

function randomized(c: ChaosConfig | "help"): RandomizedConfig {
  if (c === "help" || c.mode !== "randomized") throw new Error(`expected a randomized run: ${c}`);
  return c;
}

function res(status: number, body: Record<string, unknown> | null = {}): HttpResult {
  return { status, body };
}

Deno.test("classifyWrite: only a certainly-not-executed write is left out of the history", () => {
  const cases: [HttpResult, string][] = [
    [res(200, { key: "k", index: 7 }), "ok"],
    [res(307, { leaderId: "n2", leaderAddr: "127.0.0.1:9305" }), "redirect"],
    [res(307, { leaderId: "" }), "definite"],
    [res(503, { error: "no leader is elected yet" }), "definite"],
    [res(503, { error: "replaced", outcome: "not applied" }), "definite"],
    [res(503, { error: "?", outcome: "unknown" }), "indeterminate"],
    [res(503, null), "definite"],
    [res(504, { error: "not committed", outcome: "unknown" }), "indeterminate"],
    [res(500, { error: "internal error" }), "indeterminate"],
    [res(502, null), "indeterminate"],
    [res(200, null), "indeterminate"], // applied or not: the answer was unreadable
    [res(400, { error: "bad" }), "definite"],
    [res(413, { error: "too big" }), "definite"],
    [{ error: "timeout", message: "" }, "indeterminate"],
    [{ error: "network", message: "connection closed before message completed" }, "indeterminate"],
    [{ error: "refused", message: "tcp connect error" }, "indeterminate"], // see the next test
  ];
  for (const [r, want] of cases) {
    assertEquals(classifyWrite("put", r).class, want, JSON.stringify(r));
  }
  assertEquals(classifyWrite("del", res(200, { index: 3, deleted: true })), {
    class: "ok",
    index: 3,
    deleted: true,
  });
  assertEquals(classifyWrite("del", res(200, { index: 3 })).class, "indeterminate");
  const r = classifyWrite("put", res(307, { leaderId: "n3" }));
  assert(r.class === "redirect" && r.leaderId === "n3");
});

Deno.test({
  name:
    "a write the server received but never answered is indeterminate, even when fetch reports 'connection refused'",
  sanitizeResources: false, // fetch's pooled connections close asynchronously
  async fn() {
    // A server that answers one request on a kept-alive connection, then reads a second request
    // in full and dies (closes that connection and stops listening), like a SIGKILLed leader.
    // Deno's fetch retries the second request on a new connection and reports that retry's
    // "connection refused": not a proof that nothing was sent.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let received = 0;
    const serving = (async () => {
      for await (const conn of listener) {
        const buf = new Uint8Array(65536);
        let text = "";
        while (true) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) break;
          text += new TextDecoder().decode(buf.subarray(0, n));
          if (!text.endsWith("}")) continue; // whole request (headers and JSON body) read
          received++;
          text = "";
          if (received === 1) {
            await conn.write(new TextEncoder().encode(
              'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"index":1}',
            ));
            continue;
          }
          listener.close();
          break;
        }
        conn.close();
        if (received >= 2) return;
      }
    })().catch(() => {});
    const url = `http://127.0.0.1:${listener.addr.port}/kv/put`;
    const put = (value: string) =>
      fetch(url, { method: "PUT", body: JSON.stringify({ key: "k", value }) }).then(
        async (res): Promise<HttpResult> => ({ status: res.status, body: await res.json() }),
        fetchFailure,
      );
    assertEquals(classifyWrite("put", await put("a")).class, "ok");
    const second = await put("b");
    await serving;
    assertEquals(received, 2, "the server got the second request in full");
    assert("error" in second, JSON.stringify(second));
    assertEquals(classifyWrite("put", second).class, "indeterminate", JSON.stringify(second));
  },
});

Deno.test("classifyRead: 200 and 404 for the key are outputs; anything else is dropped", () => {
  assertEquals(classifyRead("k", res(200, { key: "k", value: "v", index: 4 })), {
    class: "ok",
    value: "v",
  });
  assertEquals(classifyRead("k", res(404, { error: "key not found", key: "k", index: 4 })), {
    class: "ok",
    value: null,
  });
  assertEquals(classifyRead("k", res(404, { error: "no route GET /kv/gett" })).class, "dropped");
  assertEquals(classifyRead("k", res(200, { key: "other", value: "v" })).class, "dropped");
  assertEquals(classifyRead("k", res(503, { error: "read not confirmed" })).class, "dropped");
  assertEquals(classifyRead("k", { error: "timeout", message: "" }).class, "dropped");
});

Deno.test({
  name: "fetchFailure: refused connect, timeout and a dropped connection are told apart",
  sanitizeResources: false, // fetch's pooled connections close asynchronously
  async fn() {
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closedPort = closed.addr.port;
    closed.close();
    const refused = await fetch(`http://127.0.0.1:${closedPort}/`).then(() => null, fetchFailure);
    assertEquals(refused?.error, "refused", refused?.message);

    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const c of silent) held.push(c);
    })();
    const timeout = await fetch(`http://127.0.0.1:${silent.addr.port}/`, {
      signal: AbortSignal.timeout(200),
    }).then(() => null, fetchFailure);
    assertEquals(timeout?.error, "timeout", timeout?.message);
    silent.close();
    await accepting;
    for (const c of held) c.close();

    const rude = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closing = (async () => {
      for await (const c of rude) c.close();
    })();
    const lost = await fetch(`http://127.0.0.1:${rude.addr.port}/`, {
      method: "PUT",
      body: "{}",
    }).then(() => null, fetchFailure);
    assertEquals(lost?.error, "network", lost?.message);
    rude.close();
    await closing;
  },
});

Deno.test("flags: no randomized flag is the scenario; defaults; bad values are usage errors", () => {
  const plain = scenario(parseChaosArgs([]));
  assertEquals(plain.basePort, 9301);
  assertEquals(plain.workDir, join(PROJECT_ROOT, ".cluster", "chaos"));
  assertEquals(scenario(parseChaosArgs(["--base-port", "9400"])).basePort, 9400);

  const r = randomized(parseChaosArgs(["--seed", "5"]));
  assertEquals([r.durationS, r.nemeses, r.clients, r.keys, r.seed, r.load], [
    60,
    [...NEMESES],
    8,
    5,
    5,
    0,
  ]);
  assertEquals(randomized(parseChaosArgs(["--load", "16"])).load, 16);
  const picked = randomized(
    parseChaosArgs(["--duration", "10", "--nemesis", "pause,kill"], () => 77),
  );
  assertEquals([picked.durationS, picked.nemeses, picked.seed], [10, ["kill", "pause"], 77]);
  assertEquals(randomized(parseChaosArgs(["--nemesis", "none"])).nemeses, []);
  assertEquals(parseChaosArgs(["--help"]), "help");

  const bad: [string[], string][] = [
    [["--duration", "0"], "--duration"],
    [["--duration", "abc"], "--duration"],
    [["--duration", "1.5"], "--duration"],
    [["--nemesis", "kill,flood"], "flood"],
    [["--clients", "0"], "--clients"],
    [["--keys", "1001"], "--keys"],
    [["--load", "257"], "--load"],
    [["--seed", "4294967296"], "--seed"],
    [["--base-port", "80"], "--base-port"],
    [["--duration", "5", "--duration", "6"], "more than once"],
    [["--bogus"], "unknown argument"],
    [["scenario"], "unknown argument"],
  ];
  for (const [args, msg] of bad) {
    const err = assertThrows(() => parseChaosArgs(args), UsageError);
    assert(err.message.includes(msg), `${args.join(" ")}: "${err.message}" should mention ${msg}`);
  }
});

Deno.test("planFaults: one fault every 1-4 s from the enabled kinds, all over by the end, seeded", () => {
  const durationMs = 60_000;
  const plan = planFaults(42, durationMs, NEMESES, IDS);
  assertEquals(planFaults(42, durationMs, NEMESES, IDS), plan, "same seed, same plan");
  assert(
    JSON.stringify(planFaults(43, durationMs, NEMESES, IDS)) !== JSON.stringify(plan),
    "another seed, another plan",
  );
  assert(plan.length >= 60 / 4 - 1 && plan.length <= 60, `${plan.length} faults`);
  let prev = 0;
  for (const f of plan) {
    const gap = f.atMs - prev;
    assert(gap >= FAULT_GAP_MS[0] && gap <= FAULT_GAP_MS[1], `gap of ${gap} ms before ${f.atMs}`);
    prev = f.atMs;
    assert(f.durationMs >= 1000 && f.durationMs <= FAULT_LENGTH_MS[f.kind][1], `${f.durationMs}`);
    assert(f.atMs + f.durationMs <= durationMs, `fault at ${f.atMs} outlasts the phase`);
    assert(IDS.includes(f.node) && f.peerOffset >= 1 && f.peerOffset <= 2);
  }
  for (const kind of NEMESES) assert(plan.some((f) => f.kind === kind), `no ${kind} planned`);
  assert(plan.some((f) => f.targetLeader) && plan.some((f) => !f.targetLeader));
  assert(plan.some((f) => f.mode === "drop") && plan.some((f) => f.mode === "reset"));
  const onlyPause = planFaults(1, 20_000, ["pause"], IDS);
  assert(onlyPause.length > 0 && onlyPause.every((f) => f.kind === "pause"));
  assertEquals(planFaults(1, 20_000, [], IDS), []);
  assertEquals(planFaults(1, 1000, NEMESES, IDS), [], "no room for a 1 s fault");
});

Deno.test("admitTarget: a minority affected at once (a majority only when allowed), never two process faults on one node", () => {
  assertEquals(admitTarget([], "kill", "n2", false, IDS), "n2");
  // n1 partitioned: killing n2 too would cut off a majority; n1 is hit instead (stacked faults).
  const partitioned = [{ kind: "partition" as const, node: "n1" }];
  assertEquals(admitTarget(partitioned, "kill", "n2", false, IDS), "n1");
  assertEquals(admitTarget(partitioned, "kill", "n2", true, IDS), "n2");
  // n1 killed: neither a pause of n1 (already down) nor of n2 (majority) is allowed.
  const killed = [{ kind: "kill" as const, node: "n1" }];
  assertEquals(admitTarget(killed, "pause", "n1", false, IDS), null);
  assertEquals(admitTarget(killed, "pause", "n2", false, IDS), null);
  assertEquals(admitTarget(killed, "partition", "n3", false, IDS), "n1");
  // Even when a majority may be hit, one node is always left alone.
  const two = [{ kind: "kill" as const, node: "n1" }, { kind: "pause" as const, node: "n2" }];
  assertEquals(admitTarget(two, "partition", "n3", true, IDS), "n1");
  assertEquals(admitTarget(two, "kill", "n3", true, IDS), null);
});

Deno.test("partitionLinks: each shape cuts exactly its directed links", () => {
  const sorted = (links: [string, string][]) => links.map(([a, b]) => `${a}->${b}`).sort();
  assertEquals(sorted(partitionLinks("isolate", "n1", "n2", IDS)), [
    "n1->n2",
    "n1->n3",
    "n2->n1",
    "n3->n1",
  ]);
  assertEquals(sorted(partitionLinks("one-way-out", "n2", "n3", IDS)), ["n2->n1", "n2->n3"]);
  assertEquals(sorted(partitionLinks("one-way-in", "n2", "n3", IDS)), ["n1->n2", "n3->n2"]);
  assertEquals(sorted(partitionLinks("link", "n3", "n1", IDS)), ["n3->n1"]);
});

Deno.test("LinkCuts: a link cut by two overlapping faults heals only when both have ended", () => {
  const calls: string[] = [];
  const blocked = new Set<string>();
  const mesh: Cuttable = {
    cut: (from, to, mode) => {
      calls.push(`cut ${from}->${to} ${mode}`);
      blocked.add(`${from}->${to}`);
    },
    heal: (from, to) => {
      calls.push(`heal ${from}->${to}`);
      blocked.delete(`${from}->${to}`);
    },
  };
  const cuts = new LinkCuts(mesh);
  const isolateN1 = partitionLinks("isolate", "n1", "n2", IDS);
  const linkN1N2 = partitionLinks("link", "n1", "n2", IDS);
  cuts.cut(isolateN1, "drop");
  cuts.cut(linkN1N2, "reset");
  assertEquals(cuts.cutLinks, 4);
  cuts.heal(isolateN1);
  assertEquals([...blocked], ["n1->n2"], "the single link is still cut");
  cuts.heal(linkN1N2);
  assertEquals(blocked.size, 0);
  cuts.cut(linkN1N2, "drop");
  cuts.healAll();
  assertEquals([blocked.size, cuts.cutLinks], [0, 0]);
  assert(calls.includes("cut n1->n2 reset") && calls.includes("cut n1->n3 drop"));
});

Deno.test("longestGap and gapsOver measure stretches without acknowledged writes", () => {
  assertEquals(longestGap([2, 3, 10, 50], 0, 12), { gapMs: 7, startMs: 3 });
  assertEquals(longestGap([], 5, 9), { gapMs: 4, startMs: 5 });
  assertEquals(longestGap([1, 2], 0, 100), { gapMs: 98, startMs: 2 });
  assertEquals(gapsOver([2, 3, 10], 0, 12, 2), { count: 3, totalMs: 11 });
  assertEquals(gapsOver([2, 3, 10], 0, 12, 5), { count: 1, totalMs: 7 });
});

Deno.test("convergenceProblems: equal stale reads everywhere, equal to the final reads at the same index", () => {
  const reads = (entries: [string, string | null, number][]) =>
    new Map<string, KeyRead>(entries.map(([k, value, index]) => [k, { value, index }]));
  const same = reads([["a", "1", 9], ["b", null, 9]]);
  const stale = new Map([["n1", same], ["n2", same], ["n3", same]]);
  assertEquals(convergenceProblems(stale, stale), []);

  const split = new Map(stale).set("n3", reads([["a", "0", 9], ["b", null, 9]]));
  const problems = convergenceProblems(split, new Map());
  assertEquals(problems.length, 1);
  assert(problems[0].includes("key a") && problems[0].includes(`n3="0"`), problems[0]);

  const behind = new Map(stale).set("n2", reads([["a", "1", 8], ["b", null, 8]]));
  assert(convergenceProblems(behind, new Map())[0].includes("different applied indexes"));

  const finals = new Map([["n1", reads([["a", "2", 9], ["b", null, 9]])]]);
  const lost = convergenceProblems(stale, finals);
  assertEquals(lost.length, 1);
  assert(lost[0].includes("key a on n1"), lost[0]);
  const later = new Map([["n1", reads([["a", "2", 10], ["b", null, 10]])]]);
  assertEquals(convergenceProblems(stale, later), [], "reads at another index are not compared");
});

// ---------------------------------------------------------------------------------------------
// The task as a subprocess

const CHAOS_PERMISSIONS = [
  "--allow-read",
  "--allow-write=.cluster",
  "--allow-run",
  "--allow-net=127.0.0.1",
  "--allow-env",
  "--allow-sys",
];

interface ChaosRun {
  code: number;
  stdout: string;
  stderr: string;
}

function chaosCommand(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...CHAOS_PERMISSIONS, "tasks/chaos.ts", ...args],
    cwd: PROJECT_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

/**
 * Run the chaos task to completion; after `limitMs` it gets SIGINT (it then stops its nodes and
 * exits 130), and SIGKILL 20 s later, so a hung run cannot hang the test suite.
 */
async function runChaos(args: string[], limitMs: number): Promise<ChaosRun> {
  const child = chaosCommand(args);
  const interrupt = setTimeout(() => child.kill("SIGINT"), limitMs);
  const kill = setTimeout(() => child.kill("SIGKILL"), limitMs + 20_000);
  try {
    const out = await child.output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
  } finally {
    clearTimeout(interrupt);
    clearTimeout(kill);
  }
}

function workDir(): string {
  return join(".cluster", `chaos-test-${crypto.randomUUID().slice(0, 8)}`);
}

Deno.test("the chaos task exits 2 with its usage on a bad flag", async () => {
  const r = await runChaos(["--duration", "soon"], 30_000);
  assertEquals(r.code, 2, r.stdout + r.stderr);
  assert(r.stderr.includes("--duration") && r.stderr.includes("Usage:"), r.stderr);
});

Deno.test({
  name: "scenario mode: failover keeps every acknowledged write and the old leader catches up",
  async fn() {
    const dir = workDir();
    const r = await runChaos(["--base-port", String(freePorts(3)), "--work-dir", dir], 60_000);
    const output = r.stdout + r.stderr;
    assertEquals(r.code, 0, output);
    assert(output.includes("scenario PASSED"), output);
    assert(!output.includes("FAIL"), output);
    assert(/writes unavailable for \d+ ms/.test(output), output);
    await Deno.remove(join(PROJECT_ROOT, dir), { recursive: true });
  },
});

Deno.test({
  name:
    "randomized mode: 15 s of kills, pauses and partitions, 6 clients and 4 load writers, seed 7: linearizable, converged, no acknowledged write lost",
  async fn() {
    const dir = workDir();
    const args = [
      "--duration",
      "15",
      "--nemesis",
      "kill,pause,partition",
      "--clients",
      "6",
      "--keys",
      "3",
      "--seed",
      "7",
      "--load",
      "4",
      "--base-port",
      String(freePorts(9)),
      "--work-dir",
      dir,
    ];
    const r = await runChaos(args, 75_000);
    const output = r.stdout + r.stderr;
    assertEquals(r.code, 0, output);
    assert(output.includes("verdict: linearizable"), output);
    assert(output.includes("convergence: every node at lastApplied"), output);
    assert(
      /load: [1-9]\d* acknowledged writes read back in .*: 0 lost, 0 unreadable/.test(output),
      output,
    );
    assert(/faults injected: kill \d+, pause \d+, partition \d+/.test(output), output);
    assert(output.includes("chaos PASSED (seed 7)"), output);
    await Deno.remove(join(PROJECT_ROOT, dir), { recursive: true });
  },
});

Deno.test({
  name: "Ctrl-C during a randomized run stops every node and exits 130",
  async fn() {
    const dir = workDir();
    const base = freePorts(9);
    const child = chaosCommand(["--seed", "3", "--base-port", String(base), "--work-dir", dir]);
    const kill = setTimeout(() => child.kill("SIGKILL"), 60_000);
    let seen = "";
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    while (!seen.includes("clients start")) {
      const { done, value } = await reader.read();
      if (done) break;
      seen += value;
    }
    child.kill("SIGINT");
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      seen += value;
    }
    const status = await child.status;
    clearTimeout(kill);
    await child.stderr.cancel();
    assertEquals(status.code, 130, seen);
    assert(seen.includes("SIGINT: stopping"), seen);
    for (const n of layout(join(PROJECT_ROOT, dir, "run-3"), 3, base).nodes) {
      const pid = await readPid(n);
      if (pid === null) throw new Error(`no pid file for ${n.id}`);
      assert(!await isOurNode(pid, n.id), `${n.id} (pid ${pid}) still runs after Ctrl-C`);
    }
    await Deno.remove(join(PROJECT_ROOT, dir), { recursive: true });
  },
});
