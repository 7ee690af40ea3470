/**
 * The seeded whole-cluster simulation (sim.ts) over many seeds, for 3- and 5-node clusters.
 * `deno test` runs a bounded number of seeds; SIM_SEEDS=N runs N per configuration and
 * SIM_SEED=S replays one seed. A failure prints its seed and the last events.
 */
import { runSimulation, type SimOptions } from "./sim.ts";

const envInt = (name: string, dflt: number): number => {
  const v = Deno.env.get(name);
  return v === undefined ? dflt : Number(v);
};

function runSeeds(name: string, base: Partial<SimOptions>, count: number, first: number): void {
  const one = Deno.env.get("SIM_SEED");
  const seeds = one !== undefined
    ? [Number(one)]
    : Array.from({ length: count }, (_, i) => first + i);
  let acked = 0, reads = 0, snaps = 0, crashes = 0;
  for (const seed of seeds) {
    const r = runSimulation({ ...base, seed });
    acked += r.acked;
    reads += r.reads;
    snaps += r.snapshotsInstalled;
    crashes += r.crashes;
  }
  console.log(
    `${name}: ${seeds.length} seeds ok; ${acked} acked writes, ${reads} linearizable reads, ` +
      `${crashes} crashes, ${snaps} snapshots installed`,
  );
}

Deno.test("3-node cluster keeps every safety property and recovers under faults", () => {
  runSeeds("3 nodes", { nodes: 3 }, envInt("SIM_SEEDS", 120), 1);
});

Deno.test("5-node cluster keeps every safety property and recovers under faults", () => {
  runSeeds("5 nodes", { nodes: 5 }, envInt("SIM_SEEDS", 60), 100_001);
});

Deno.test("heavy faults: high loss, long delays, frequent crashes and partitions", () => {
  runSeeds(
    "heavy faults",
    {
      nodes: 3,
      loss: 0.2,
      duplicate: 0.1,
      delayTicksMax: 8,
      crashRate: 0.01,
      partitionRate: 0.01,
    },
    envInt("SIM_SEEDS", 40),
    200_001,
  );
});
