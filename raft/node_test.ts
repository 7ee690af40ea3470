/**
 * Driver tests on a single-node cluster in this process, with the real storage in a temporary
 * directory and no network: writes commit through the Ready loop (group commit), reads are
 * linearizable, a restart recovers everything, and disk use stays bounded under endless
 * overwrites because snapshots let old WAL segments go.
 */
import { assert, assertEquals } from "@std/assert";
import { KvStore } from "../kv/store.ts";
import { DiskStorage } from "../storage/mod.ts";
import { RaftNode, type Transport } from "./node.ts";
import { defaultRaftConfig, Raft } from "./raft.ts";
import { Prng } from "./rand.ts";

const noNetwork: Transport = { send() {}, sendSnapshot() {} };

interface Opened {
  node: RaftNode;
  storage: DiskStorage;
  close(): Promise<void>;
}

async function openNode(
  dir: string,
  extra: { snapshotEntries?: number; segmentBytes?: number } = {},
): Promise<Opened> {
  const { storage, recovered } = await DiskStorage.open({
    dataDir: dir,
    segmentBytes: extra.segmentBytes ?? 1 << 20,
  });
  const kv = new KvStore();
  if (recovered.snapshot && recovered.state) {
    kv.restore(recovered.snapshot.index, recovered.snapshot.term, recovered.state);
  }
  const raft = {
    ...defaultRaftConfig,
    id: "n1",
    voters: ["n1"],
    electionTicksMin: 2,
    electionTicksMax: 4,
    heartbeatTicks: 1,
  };
  const random = new Prng(1).fn();
  const core = new Raft({ ...raft, random }, recovered);
  const node = new RaftNode(
    {
      raft,
      random,
      peers: new Map([["n1", "127.0.0.1:1"]]),
      tickMs: 5,
      writeTimeoutMs: 10_000,
      readTimeoutMs: 10_000,
      snapshotEntries: extra.snapshotEntries ?? 0,
      snapshotBytes: 0,
      trailingEntries: 100,
      pendingReadsMax: 100_000,
      blockingSync: "follower",
      log: () => {},
      onFatal: (err) => {
        throw err;
      },
    },
    core,
    kv,
    storage,
    noNetwork,
  );
  node.start();
  const deadline = Date.now() + 5000;
  while (!node.isLeader() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert(node.isLeader(), "a single node elects itself");
  return {
    node,
    storage,
    async close() {
      await node.stop();
      storage.close();
    },
  };
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) total += await dirBytes(p);
    else total += (await Deno.stat(p).catch(() => ({ size: 0 }))).size; // deleted meanwhile
  }
  return total;
}

Deno.test("writes commit and apply through the driver; reads see them; a restart recovers them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let n = await openNode(dir);
    // Many concurrent proposals share syncs (group commit) and are answered in index order.
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) => n.node.put(`k${i}`, `v${i}`)),
    );
    const indexes = results.map((r) => r.index);
    assertEquals(new Set(indexes).size, 500, "every write got its own index");
    assertEquals((await n.node.read("k499")).value, "v499");
    assertEquals((await n.node.del("k0")).deleted, true);
    assertEquals((await n.node.read("k0")).value, undefined);
    await n.close();

    n = await openNode(dir);
    assertEquals((await n.node.read("k1")).value, "v1");
    assertEquals((await n.node.read("k0")).value, undefined);
    assertEquals(n.node.kv.size, 499);
    await n.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("disk use stays bounded: 1,000 keys overwritten 200 times keep the data dir small", async () => {
  // Bound: two snapshots (~1,000 keys, ~40 KB each) + the WAL since the older one (at most
  // 2 x 10,000 entries of ~58 bytes) + one partly filled 1 MiB segment (segments are deleted
  // whole): under 3 MiB, while the 200,000 writes put over 11 MB through the WAL.
  const BOUND = 3 << 20;
  const dir = await Deno.makeTempDir();
  try {
    const n = await openNode(dir, { snapshotEntries: 10_000, segmentBytes: 1 << 20 });
    let maxSeen = 0;
    for (let round = 0; round < 200; round++) {
      await Promise.all(
        Array.from({ length: 1000 }, (_, k) => n.node.put(`key-${k}`, `value-${round}-${k}`)),
      );
      if (round % 20 === 19) maxSeen = Math.max(maxSeen, await dirBytes(dir));
    }
    const walWritten = n.storage.wal.stats().written;
    assertEquals((await n.node.read("key-999")).value, "value-199-999");
    const end = await dirBytes(dir);
    maxSeen = Math.max(maxSeen, end);
    const usage = await n.storage.diskUsage();
    console.log(
      `200,000 writes (${(walWritten / 1e6).toFixed(1)} MB of WAL records): data dir ${
        (end / 1024).toFixed(0)
      } KiB ` +
        `at the end, at most ${
          (maxSeen / 1024).toFixed(0)
        } KiB when sampled; WAL ${usage.walSegments} segments`,
    );
    assert(maxSeen < BOUND, `data dir reached ${maxSeen} bytes, bound ${BOUND}`);
    assert(walWritten > 3 * BOUND, "the test writes much more than the bound");
    await n.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
