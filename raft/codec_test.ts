/** The Raft message codec: exact round trips of every message type, and garbage refused cleanly. */
import { assertEquals, assertThrows } from "@std/assert";
import { CodecError, decodeMessage, encodeMessage } from "./codec.ts";
import { Prng } from "./rand.ts";
import { EntryType, type Message } from "./types.ts";

const samples: Message[] = [
  { type: "vote", from: "n1", to: "n2", term: 3, pre: true, lastLogIndex: 9, lastLogTerm: 2 },
  { type: "voteResp", from: "n2", to: "n1", term: 3, pre: false, granted: true },
  {
    type: "append",
    from: "n1",
    to: "n3",
    term: 4,
    prevLogIndex: 10,
    prevLogTerm: 3,
    leaderCommit: 9,
    readSeq: 17,
    entries: [
      { index: 11, term: 4, type: EntryType.Noop, data: new Uint8Array() },
      { index: 12, term: 4, type: EntryType.Command, data: new Uint8Array([1, 2, 3]) },
    ],
  },
  {
    type: "appendResp",
    from: "n3",
    to: "n1",
    term: 4,
    success: false,
    matchIndex: 0,
    conflictIndex: 5,
    conflictTerm: 2,
    rejectIndex: 10,
    lastLogIndex: 8,
    readSeq: 17,
  },
  {
    type: "snapshot",
    from: "n1",
    to: "n2",
    term: 4,
    done: true,
    meta: { index: 100, term: 3, voters: ["n1", "n2", "n3"] },
  },
  { type: "snapshotResp", from: "n2", to: "n1", term: 4, accepted: true, matchIndex: 100 },
  { type: "readIndex", from: "n2", to: "n1", term: 4, ctx: 12345 },
  { type: "readIndexResp", from: "n1", to: "n2", term: 4, ctx: 12345, index: 99, ok: true },
];

Deno.test("every message type round-trips exactly", () => {
  for (const m of samples) assertEquals(decodeMessage(encodeMessage(m)), m);
});

Deno.test("truncated or corrupted messages throw CodecError, never anything else", () => {
  const rng = new Prng(42);
  for (const m of samples) {
    const bytes = encodeMessage(m).slice();
    for (let n = 0; n < bytes.length; n++) {
      assertThrows(() => decodeMessage(bytes.subarray(0, n)), CodecError);
    }
    for (let i = 0; i < 300; i++) {
      const b = bytes.slice();
      b[rng.int(0, b.length)] = rng.int(0, 256);
      try {
        decodeMessage(b); // a flip may still decode to a valid message: fine
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
      }
    }
  }
});

Deno.test("an append whose entries do not follow prevLogIndex is refused", () => {
  const m = samples[2] as Extract<Message, { type: "append" }>;
  const bad = { ...m, entries: [{ ...m.entries[0], index: 13 }] };
  assertThrows(() => decodeMessage(encodeMessage(bad)), CodecError, "expected 11");
});
