/**
 * WAL tests: a round trip of every record kind, torn tails cut off, damage elsewhere refused
 * with file and offset, segments rolled and released.
 */
import { assert, assertEquals, assertRejects } from "@std/assert";
import { join } from "@std/path";
import { type Entry, EntryType } from "../raft/types.ts";
import { Wal, WalCorruptError } from "./wal.ts";

const enc = new TextEncoder();
const entry = (index: number, term: number, text = `cmd${index}`): Entry => ({
  index,
  term,
  type: EntryType.Command,
  data: enc.encode(text),
});
const quiet = { segmentBytes: 1 << 20, log: () => {} };

async function segments(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".wal")) out.push(join(dir, e.name));
  return out.sort();
}

Deno.test("WAL round trip: term, vote, entries, truncation and commit survive a reopen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { wal } = await Wal.open(dir, quiet);
    await wal.write({
      hardState: { term: 1, vote: "n1" },
      entries: [entry(1, 1), entry(2, 1)],
      sync: true,
    });
    await wal.write({ entries: [entry(3, 1)], commit: 2, sync: true });
    // A new leader in term 2 replaces entry 3 (conflict, §5.3) and adds 4.
    await wal.write({
      hardState: { term: 2, vote: "" },
      entries: [entry(3, 2, "x"), entry(4, 2)],
      sync: true,
    });
    await wal.write({ entries: [], commit: 4, sync: false });
    wal.close();

    const { wal: again, state } = await Wal.open(dir, quiet);
    again.close();
    assertEquals(state.hardState, { term: 2, vote: "", commit: 4 });
    assertEquals(state.base, { index: 0, term: 0 });
    assertEquals(state.entries.map((e) => `${e.term}/${e.index}`), ["1/1", "1/2", "2/3", "2/4"]);
    assertEquals(new TextDecoder().decode(state.entries[2].data), "x");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a torn tail (a crash mid-append) is cut off and logged, earlier records kept", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { wal } = await Wal.open(dir, quiet);
    await wal.write({
      hardState: { term: 3, vote: "n2" },
      entries: [entry(1, 3), entry(2, 3)],
      sync: true,
    });
    wal.close();
    const [seg] = await segments(dir);
    const full = await Deno.readFile(seg);
    // Append half of a valid record: what a crash during write() leaves.
    const { wal: w2 } = await Wal.open(join(dir, "scratch"), quiet);
    await w2.write({
      entries: [entry(1, 3), entry(2, 3), entry(3, 3, "y".repeat(100))],
      sync: true,
    });
    w2.close();
    const [other] = await segments(join(dir, "scratch"));
    const otherBytes = await Deno.readFile(other);
    const lastRecord = otherBytes.subarray(otherBytes.length - 140);
    await Deno.writeFile(seg, new Uint8Array([...full, ...lastRecord.subarray(0, 70)]));

    const logs: string[] = [];
    const { wal: again, state } = await Wal.open(dir, { ...quiet, log: (m) => logs.push(m) });
    assertEquals(state.entries.length, 2);
    assertEquals(state.hardState.term, 3);
    assert(logs.some((l) => l.includes("torn tail")), logs.join("\n"));
    assertEquals((await Deno.stat(seg)).size, full.length, "the torn bytes are cut off on disk");
    // The log goes on after the cut.
    await again.write({ entries: [entry(3, 3)], sync: true });
    again.close();
    const { wal: third, state: s3 } = await Wal.open(dir, quiet);
    third.close();
    assertEquals(s3.entries.length, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a damaged record followed by valid ones stops recovery, naming file and offset", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { wal } = await Wal.open(dir, quiet);
    for (let i = 1; i <= 5; i++) await wal.write({ entries: [entry(i, 1)], sync: true });
    wal.close();
    const [seg] = await segments(dir);
    const bytes = await Deno.readFile(seg);
    // Flip one byte inside the payload of an entry record in the middle of the file.
    const at = Math.floor(bytes.length / 2);
    bytes[at] ^= 0xff;
    await Deno.writeFile(seg, bytes);
    const err = await assertRejects(() => Wal.open(dir, quiet), WalCorruptError);
    assert(err.message.includes(seg), err.message);
    assert(/byte offset \d+/.test(err.message), err.message);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("segments roll at the size limit, replay across them, and old ones are released", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const opts = { segmentBytes: 2048, log: () => {} };
    const { wal } = await Wal.open(dir, opts);
    await wal.write({ hardState: { term: 4, vote: "n3" }, entries: [], sync: true });
    for (let i = 1; i <= 200; i++) {
      await wal.write({ entries: [entry(i, 4, "v".repeat(50))], commit: i - 1, sync: true });
    }
    const before = (await segments(dir)).length;
    assert(before > 5, `expected several segments, got ${before}`);
    const released = await wal.releaseBelow(150);
    assert(released > 0);
    wal.close();
    const { wal: again, state } = await Wal.open(dir, opts);
    again.close();
    assertEquals(state.hardState.term, 4, "term and vote survive in every segment's header");
    assertEquals(state.hardState.vote, "n3");
    const first = state.entries[0].index;
    assert(first <= 150, `entries from ${first} must cover 150`);
    assertEquals(state.base.index, first - 1);
    assertEquals(state.entries[state.entries.length - 1].index, 200);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a reset (installed snapshot) empties the log and rebases it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { wal } = await Wal.open(dir, quiet);
    await wal.write({ entries: [entry(1, 1), entry(2, 1)], sync: true });
    await wal.write({
      reset: { index: 50, term: 3 },
      entries: [entry(51, 3)],
      commit: 50,
      sync: true,
    });
    wal.close();
    const { wal: again, state } = await Wal.open(dir, quiet);
    again.close();
    assertEquals(state.base, { index: 50, term: 3 });
    assertEquals(state.entries.map((e) => e.index), [51]);
    assertEquals(state.hardState.commit, 50);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
