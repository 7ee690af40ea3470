/**
 * `deno task demo`: a clean 3-node cluster in `.cluster/demo` (ports 9201-9203, so it does not
 * collide with `cluster:start`), then PUT, GET, DEL, GET (404) with the answers checked, the
 * 307 redirect from a follower, the status of all three nodes, and a clean shutdown. Exits 0
 * only if every step saw what it expected; the nodes are stopped by PID on every path out.
 */
import { parseArgs } from "@std/cli/parse-args";
import { join } from "@std/path";
import {
  fetchStatus,
  layout,
  portFree,
  PROJECT_ROOT,
  type Started,
  startNode,
  stopStarted,
  tail,
  waitForLeader,
} from "./_cluster.ts";

let failures = 0;

function step(title: string): void {
  console.log(`\n== ${title}`);
}

function expect(what: string, ok: boolean, got: unknown): void {
  console.log(`   ${ok ? "ok  " : "FAIL"} ${what}${ok ? "" : `: got ${JSON.stringify(got)}`}`);
  if (!ok) failures++;
}

async function call(
  method: string,
  url: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown>; location: string | null }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    redirect: "manual",
    signal: AbortSignal.timeout(5000),
  });
  const json = await res.json();
  console.log(
    `   ${method} ${url}${body ? ` ${JSON.stringify(body)}` : ""}\n     -> ${res.status} ${
      JSON.stringify(json)
    }`,
  );
  return { status: res.status, json, location: res.headers.get("location") };
}

async function main(): Promise<number> {
  const a = parseArgs(Deno.args, {
    string: ["base-port"],
    default: { "base-port": "9201" },
    unknown: (x: string) => {
      console.error(`unknown argument ${x}\nUsage: deno task demo [--base-port 9201]`);
      Deno.exit(2);
    },
  });
  const base = Number(a["base-port"]);
  const root = join(PROJECT_ROOT, ".cluster", "demo");
  await Deno.remove(root, { recursive: true }).catch(() => {});
  const lay = layout(root, 3, base);
  const started: Started[] = [];
  const stopAll = async () => {
    await stopStarted(started.map((s, i) => [lay.nodes[i].id, s]));
    started.length = 0;
  };
  Deno.addSignalListener("SIGINT", () => stopAll().then(() => Deno.exit(130)));
  try {
    step("start a clean 3-node cluster");
    for (const n of lay.nodes) {
      if (!portFree(n.port)) throw new Error(`port ${n.port} is in use; pass --base-port`);
    }
    for (const n of lay.nodes) {
      const s = await startNode(lay, n);
      started.push(s);
      console.log(`   ${n.id} pid ${s.pid} on ${n.addr} (log ${n.logFile})`);
    }

    step("find the leader");
    const t0 = performance.now();
    const leader = await waitForLeader(lay.nodes.map((n) => n.addr), 15_000);
    if (!leader) throw new Error("no leader elected within 15 s");
    console.log(
      `   leader ${leader.id} at ${leader.addr}, term ${leader.term}, after ${
        Math.round(performance.now() - t0)
      } ms`,
    );
    const follower = lay.nodes.find((n) => n.id !== leader.id)!;
    const L = `http://${leader.addr}`, F = `http://${follower.addr}`;

    step("PUT a value through the leader");
    const put = await call("PUT", `${L}/kv/put`, { key: "greeting", value: "hello raft" });
    expect("200 with a log index", put.status === 200 && typeof put.json.index === "number", put);

    step("GET it from a follower (linearizable read)");
    const get = await call("GET", `${F}/kv/get?key=greeting`);
    expect("200 with the value", get.status === 200 && get.json.value === "hello raft", get.json);

    step("a write sent to a follower is redirected to the leader");
    const red = await call("PUT", `${F}/kv/put`, { key: "x", value: "y" });
    expect(
      "307 with Location and leaderId",
      red.status === 307 && red.location === `${L}/kv/put` && red.json.leaderId === leader.id,
      { status: red.status, location: red.location, body: red.json },
    );

    step("DEL it");
    const del = await call("POST", `${L}/kv/del`, { key: "greeting" });
    expect("200 with deleted: true", del.status === 200 && del.json.deleted === true, del.json);

    step("GET it again");
    const gone = await call("GET", `${F}/kv/get?key=greeting`);
    expect("404", gone.status === 404, gone.json);

    step("cluster status of all three nodes");
    for (const n of lay.nodes) {
      const s = await fetchStatus(n.addr);
      console.log(`   ${
        JSON.stringify(
          s && {
            id: s.id,
            role: s.role,
            currentTerm: s.currentTerm,
            leaderId: s.leaderId,
            commitIndex: s.commitIndex,
            lastApplied: s.lastApplied,
          },
        )
      }`);
      expect(`${n.id} answers and knows leader ${leader.id}`, s?.leaderId === leader.id, s);
    }
  } catch (err) {
    console.error(`\nFAIL: ${(err as Error).message}`);
    for (const n of lay.nodes) console.error(`--- ${n.id} log\n${await tail(n.logFile, 8)}`);
    failures++;
  } finally {
    step("shut down");
    await stopAll();
    console.log("   all nodes stopped");
  }
  console.log(failures === 0 ? "\ndemo passed" : `\ndemo FAILED (${failures} failed checks)`);
  return failures === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
