/**
 * Storage tests: snapshot files (round trip, damage detection, resumable receive), the data-dir
 * lock, and recovery choosing a snapshot the WAL continues, falling back from a damaged one.
 */
import { assert, assertEquals, assertRejects } from "@std/assert";
import { join } from "@std/path";
import { KvStore } from "../kv/store.ts";
import { encodeCommand } from "../kv/command.ts";
import { type Entry, EntryType, type Ready } from "../raft/types.ts";
import { DataDirLockedError, DiskStorage, RecoveryError, SnapshotCorruptError } from "./mod.ts";
import { SnapshotStore } from "./snapshots.ts";

const put = (index: number, term: number, key: string, value: string): Entry => ({
  index,
  term,
  type: EntryType.Command,
  data: encodeCommand({ op: "put", key, value }),
});

function ready(entries: Entry[], term: number, commit: number): Ready {
  return {
    hardState: { term, vote: "", commit },
    snapshot: null,
    entries,
    messages: [],
    committed: [],
    readStates: [],
    mustSync: true,
  };
}

function storeWith(n: number, index = n, term = 1): KvStore {
  const kv = new KvStore();
  const entries: [string, string][] = [];
  for (let i = 0; i < n; i++) entries.push([`key${i}`, `value-${i}-${"x".repeat(i % 50)}`]);
  kv.restore(index, term, entries);
  return kv;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a snapshot file round-trips every pair, with its meta", () =>
  withDir(async (dir) => {
    const store = await SnapshotStore.open(dir);
    const kv = storeWith(20_000, 777, 5);
    const view = kv.freeze();
    const file = await store.write(view, ["n1", "n2", "n3"]);
    kv.thaw(view);
    assertEquals(file.meta, { index: 777, term: 5, voters: ["n1", "n2", "n3"] });
    const got = new Map<string, string>();
    for await (const c of store.read(file.path)) for (const [k, v] of c.pairs) got.set(k, v);
    assertEquals(got.size, 20_000);
    assertEquals(got.get("key19999"), kv.get("key19999"));
    assertEquals(await store.verify(file.path), file.meta);
  }));

Deno.test("writes applied while a snapshot is written do not leak into it", () =>
  withDir(async (dir) => {
    const store = await SnapshotStore.open(dir);
    const kv = storeWith(10, 10);
    const view = kv.freeze();
    kv.apply(put(11, 1, "key0", "changed"));
    kv.apply(put(12, 1, "new", "later"));
    const file = await store.write(view, ["n1"]);
    kv.thaw(view);
    const got = new Map<string, string>();
    for await (const c of store.read(file.path)) for (const [k, v] of c.pairs) got.set(k, v);
    assertEquals(got.get("key0"), "value-0-");
    assertEquals(got.has("new"), false);
    assertEquals(file.meta.index, 10);
    assertEquals(kv.get("key0"), "changed", "the live state has the later writes");
    assertEquals(kv.get("new"), "later");
  }));

Deno.test("a damaged snapshot file is detected, naming file and offset", () =>
  withDir(async (dir) => {
    const store = await SnapshotStore.open(dir);
    const kv = storeWith(5000);
    const file = await store.write(kv.freeze(), ["n1"]);
    const bytes = await Deno.readFile(file.path);
    bytes[Math.floor(bytes.length / 3)] ^= 0x55;
    await Deno.writeFile(file.path, bytes);
    const err = await assertRejects(() => store.verify(file.path), SnapshotCorruptError);
    assert(err.message.includes(file.path) && /offset \d+/.test(err.message), err.message);
    // A truncated file (no END record) is refused too.
    await Deno.writeFile(file.path, (await Deno.readFile(file.path)).subarray(0, 100));
    await assertRejects(() => store.verify(file.path), SnapshotCorruptError);
  }));

Deno.test("receiving a snapshot resumes at the offset the receiver already has", () =>
  withDir(async (dir) => {
    const src = await SnapshotStore.open(join(dir, "a"));
    const dst = await SnapshotStore.open(join(dir, "b"));
    const file = await src.write(storeWith(3000, 40, 2).freeze(), ["n1", "n2"]);
    const bytes = await Deno.readFile(file.path);
    const meta = file.meta;
    const half = Math.floor(bytes.length / 2);
    assertEquals(await dst.receiveChunk(meta, 0, bytes.subarray(0, half)), half);
    // A retry from 0 after reconnecting learns where to resume instead of rewriting.
    assertEquals(await dst.receivedBytes(meta), half);
    assertEquals(await dst.receiveChunk(meta, 10, bytes.subarray(10, 20)), half, "wrong offset");
    assertEquals(await dst.receiveChunk(meta, half, bytes.subarray(half)), bytes.length);
    const state = await dst.finishReceive(meta);
    assertEquals(state.size, 3000);
    const path = await dst.install(meta);
    assertEquals(await dst.verify(path), meta);
  }));

Deno.test("a second process on the same data dir is refused with a clear message", () =>
  withDir(async (dir) => {
    const { storage } = await DiskStorage.open({ dataDir: dir, segmentBytes: 1 << 20 });
    try {
      const err = await assertRejects(
        () => DiskStorage.open({ dataDir: dir, segmentBytes: 1 << 20 }),
        DataDirLockedError,
      );
      assert(err.message.includes(`pid ${Deno.pid}`), err.message);
    } finally {
      storage.close();
    }
    // Released on close: it opens again.
    const again = await DiskStorage.open({ dataDir: dir, segmentBytes: 1 << 20 });
    again.storage.close();
  }));

/** Build a data dir with entries 1..n, snapshots at each of `snapAt`, small WAL segments. */
async function buildDir(dir: string, n: number, snapAt: number[]): Promise<void> {
  const { storage } = await DiskStorage.open({ dataDir: dir, segmentBytes: 4096 });
  const kv = new KvStore();
  for (let i = 1; i <= n; i++) {
    const e = put(i, 1, `k${i % 10}`, `v${i}`);
    await storage.persist(ready([e], 1, i));
    kv.apply(e);
    if (snapAt.includes(i)) {
      const view = kv.freeze();
      await storage.saveSnapshot(view, ["n1"]);
      kv.thaw(view);
    }
  }
  storage.close();
}

Deno.test("recovery loads the newest snapshot and only the WAL tail after it", () =>
  withDir(async (dir) => {
    await buildDir(dir, 300, [100, 200]);
    const { storage, recovered } = await DiskStorage.open({ dataDir: dir, segmentBytes: 4096 });
    storage.close();
    assertEquals(recovered.snapshot?.index, 200);
    assertEquals(recovered.entries[0].index, 201);
    assertEquals(recovered.entries.length, 100);
    assertEquals(recovered.hardState.commit, 300);
  }));

Deno.test("a damaged newest snapshot falls back to the older one the WAL still covers", () =>
  withDir(async (dir) => {
    await buildDir(dir, 300, [100, 200]);
    const newest = join(dir, "snap", `${"200".padStart(16, "0")}-${"1".padStart(16, "0")}.snap`);
    const bytes = await Deno.readFile(newest);
    bytes[bytes.length - 20] ^= 1;
    await Deno.writeFile(newest, bytes);
    const logs: string[] = [];
    const { storage, recovered } = await DiskStorage.open({
      dataDir: dir,
      segmentBytes: 4096,
      log: (m) => logs.push(m),
    });
    storage.close();
    assertEquals(recovered.snapshot?.index, 100);
    assertEquals(recovered.entries[0].index, 101);
    assertEquals(recovered.entries[recovered.entries.length - 1].index, 300);
    assert(logs.some((l) => l.includes("damaged")), logs.join("\n"));
  }));

Deno.test("with every usable snapshot damaged and the WAL compacted, start-up stops clearly", () =>
  withDir(async (dir) => {
    await buildDir(dir, 400, [100, 200, 300]);
    for await (const e of Deno.readDir(join(dir, "snap"))) {
      const p = join(dir, "snap", e.name);
      const b = await Deno.readFile(p);
      b[b.length - 20] ^= 1;
      await Deno.writeFile(p, b);
    }
    const err = await assertRejects(
      () => DiskStorage.open({ dataDir: dir, segmentBytes: 4096 }),
      RecoveryError,
    );
    assert(err.message.includes("no usable snapshot"), err.message);
  }));

Deno.test("disk use stays bounded: old WAL segments and snapshots are deleted", () =>
  withDir(async (dir) => {
    await buildDir(dir, 2000, [500, 1000, 1500, 1900]);
    const { storage } = await DiskStorage.open({ dataDir: dir, segmentBytes: 4096 });
    const usage = await storage.diskUsage();
    storage.close();
    // Entries are ~50 bytes framed; everything before the older kept snapshot (1500) is gone.
    assert(usage.walBytes < 600 * 60, `WAL holds ${usage.walBytes} bytes`);
    let snaps = 0;
    for await (const _ of Deno.readDir(join(dir, "snap"))) snaps++;
    assertEquals(snaps, 2);
  }));
