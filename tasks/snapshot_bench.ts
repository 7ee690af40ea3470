/**
 * `deno task bench:snapshot [--keys 100000,1000000] [--value-size 100] [--tail 10000]`: what
 * snapshots cost at scale, measured with the real state machine and storage in this process:
 *
 *   - writing a snapshot of N keys: time, file size, and the longest event-loop pause while it
 *     runs (a 1 ms interval timer records every gap; heartbeats would stall by that much);
 *   - restart: opening the data dir (verify + load the snapshot, replay the WAL tail), the time
 *     a node takes before it can serve;
 *   - receiving: loading a received snapshot file for installation, and its longest pause.
 *
 * Results go to stdout and to benchmarks/snapshot.md (with the machine and the command).
 */
import { parseArgs } from "@std/cli/parse-args";
import { join } from "@std/path";
import { $ } from "zx";
import { encodeCommand } from "../kv/command.ts";
import { KvStore } from "../kv/store.ts";
import { EntryType } from "../raft/types.ts";
import { DiskStorage } from "../storage/mod.ts";
import { PROJECT_ROOT } from "./_cluster.ts";

/** Records the longest gap between ticks of a 1 ms timer while `fn` runs. */
async function withPauseMeter<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; maxPauseMs: number; ms: number }> {
  let last = performance.now(), maxPause = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxPause = Math.max(maxPause, now - last);
    last = now;
  }, 1);
  const t0 = performance.now();
  try {
    const result = await fn();
    const ms = performance.now() - t0;
    maxPause = Math.max(maxPause, performance.now() - last);
    return { result, maxPauseMs: maxPause, ms };
  } finally {
    clearInterval(timer);
  }
}

/** One size: build N keys, snapshot, restart, load; returns the table rows for it. */
async function measure(
  keys: number,
  valueSize: number,
  tailN: number,
  dir: string,
): Promise<string[][]> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const value = "v".repeat(valueSize);
  const n = keys.toLocaleString("en-US");
  const rows: string[][] = [];
  try {
    console.log(`building a state machine of ${n} keys (${valueSize}-byte values)...`);
    const kv = new KvStore();
    for (let i = 1; i <= keys; i++) {
      kv.apply({
        index: i,
        term: 1,
        type: EntryType.Command,
        data: encodeCommand({ op: "put", key: `key-${String(i).padStart(10, "0")}`, value }),
      });
    }
    const { storage } = await DiskStorage.open({ dataDir: dir, segmentBytes: 16 << 20 });
    // 1. snapshot while the "node" keeps running (the pause meter stands in for heartbeats)
    const view = kv.freeze();
    const snap = await withPauseMeter(() => storage.saveSnapshot(view, ["n1", "n2", "n3"]));
    kv.thaw(view);
    const bytes = (await Deno.stat(storage.snapshotPath(snap.result.meta))).size;
    rows.push([
      n,
      "write a snapshot",
      fmtMs(snap.ms),
      fmtMs(snap.maxPauseMs),
      `${(bytes / 1e6).toFixed(1)} MB`,
    ]);
    console.log(`  snapshot written in ${fmtMs(snap.ms)}, longest pause ${fmtMs(snap.maxPauseMs)}`);

    // A WAL tail after the snapshot, as a running node would have; it continues the snapshot.
    await storage.wal.write({ reset: { index: keys, term: 1 }, entries: [], sync: true });
    for (let i = 1; i <= tailN; i += 1000) {
      const entries = [];
      for (let j = i; j < Math.min(i + 1000, tailN + 1); j++) {
        entries.push({
          index: keys + j,
          term: 1,
          type: EntryType.Command,
          data: encodeCommand({ op: "put", key: `tail-${j}`, value }),
        });
      }
      await storage.wal.write({ entries, commit: keys + i + entries.length - 1, sync: true });
    }
    storage.close();

    // 2. restart: recovery + loading the state machine + replaying the WAL tail
    const restart = await withPauseMeter(async () => {
      const { storage: s2, recovered } = await DiskStorage.open({
        dataDir: dir,
        segmentBytes: 16 << 20,
      });
      const kv2 = new KvStore();
      kv2.restore(recovered.snapshot!.index, recovered.snapshot!.term, recovered.state!);
      for (const e of recovered.entries) kv2.apply(e);
      s2.close();
      return kv2.size;
    });
    rows.push([
      n,
      `restart (snapshot + ${tailN} WAL entries)`,
      fmtMs(restart.ms),
      fmtMs(restart.maxPauseMs),
      "",
    ]);
    console.log(`  restart in ${fmtMs(restart.ms)}, longest pause ${fmtMs(restart.maxPauseMs)}`);

    // 3. loading a received snapshot (what a follower does before InstallSnapshot completes)
    const { storage: s3 } = await DiskStorage.open({ dataDir: dir, segmentBytes: 16 << 20 });
    const load = await withPauseMeter(() => s3.loadSnapshot(snap.result.meta));
    s3.close();
    rows.push([n, "load a received snapshot", fmtMs(load.ms), fmtMs(load.maxPauseMs), ""]);
    console.log(
      `  received snapshot loaded in ${fmtMs(load.ms)}, longest pause ${fmtMs(load.maxPauseMs)}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return rows;
}

async function main(): Promise<number> {
  const usage = "Usage: deno task bench:snapshot [--keys N[,N...]] [--value-size B] [--tail N]";
  const a = parseArgs(Deno.args, {
    string: ["keys", "value-size", "tail"],
    default: { keys: "100000,1000000", "value-size": "100", tail: "10000" },
    unknown: (x: string) => {
      console.error(`unknown argument ${x}\n${usage}`);
      Deno.exit(2);
    },
  });
  const sizes = String(a.keys).split(",").map(Number);
  const valueSize = Number(a["value-size"]), tailN = Number(a.tail);
  const ints = [...sizes, valueSize, tailN].every((x) => Number.isSafeInteger(x) && x >= 0);
  if (!ints || sizes.some((x) => x < 1 || x > 10_000_000)) {
    console.error(
      `--keys (1..10,000,000 each), --value-size and --tail must be integers\n${usage}`,
    );
    return 2;
  }
  const dir = join(PROJECT_ROOT, ".cluster", "snapshot-bench");
  const rows: string[][] = [];
  for (const keys of sizes) rows.push(...await measure(keys, valueSize, tailN, dir));

  const machine = await machineFacts();
  const cmd = `deno task bench:snapshot --keys ${
    sizes.join(",")
  } --value-size ${valueSize} --tail ${tailN}`;
  const md = [
    "# Snapshot costs",
    "",
    `Generated ${new Date().toISOString()} by \`${cmd}\`.`,
    "",
    `Machine: ${machine}`,
    "",
    `Keys of 17 bytes, values of ${valueSize} bytes; the real state machine and storage code, in one process.`,
    "",
    "| keys | step | time | longest event-loop pause | size |",
    "| --- | --- | --- | --- | --- |",
    ...rows.map((r) => `| ${r.join(" | ")} |`),
    "",
    "The longest pause is the largest gap seen by a 1 ms timer while the step ran: how long a",
    "node doing this would delay its heartbeats and answers (election timeouts start at 350 ms).",
    "A restart happens before the node serves, so its pauses delay nobody.",
    "",
  ].join("\n");
  await Deno.mkdir(join(PROJECT_ROOT, "benchmarks"), { recursive: true });
  await Deno.writeTextFile(join(PROJECT_ROOT, "benchmarks", "snapshot.md"), md);
  console.log("\nwrote benchmarks/snapshot.md");
  return 0;
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}

async function machineFacts(): Promise<string> {
  const q = $({ quiet: true, nothrow: true });
  const cpu = (await q`grep -m1 ${"model name"} /proc/cpuinfo`).stdout.split(":")[1]?.trim() ?? "?";
  const memKiB = Number(/MemTotal:\s+(\d+)/.exec((await q`cat /proc/meminfo`).stdout)?.[1]);
  const mem = `${(memKiB / 1048576).toFixed(1)} GiB`;
  const disk = (await q`sh -c ${`df -T ${PROJECT_ROOT} | awk 'NR==2{print $2", "$1}'`}`).stdout
    .trim();
  return `${navigator.hardwareConcurrency} cores (${cpu}), ${mem}, Deno ${Deno.version.deno}, disk ${disk}`;
}

if (import.meta.main) Deno.exit(await main());
