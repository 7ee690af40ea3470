/**
 * Unit tests of the core, one Raft rule each (section numbers from the paper / thesis). Each test
 * builds a node in a known state, steps messages into it and checks the messages and Ready it
 * produces. The whole-cluster behaviour is covered by sim_test.ts.
 */
import { assert, assertEquals } from "@std/assert";
import { defaultRaftConfig, Raft } from "./raft.ts";
import { Prng } from "./rand.ts";
import {
  type AppendRequest,
  type AppendResponse,
  type Entry,
  EntryType,
  type Message,
  type Ready,
  type VoteRequest,
  type VoteResponse,
} from "./types.ts";

const enc = new TextEncoder();
const e = (index: number, term: number, text = `c${index}`): Entry => ({
  index,
  term,
  type: EntryType.Command,
  data: enc.encode(text),
});

function node(
  id = "n1",
  opts: { term?: number; vote?: string; entries?: Entry[]; commit?: number; voters?: string[] } =
    {},
): Raft {
  return new Raft({
    ...defaultRaftConfig,
    id,
    voters: opts.voters ?? ["n1", "n2", "n3"],
    electionTicksMin: 10,
    electionTicksMax: 20,
    heartbeatTicks: 2,
    random: new Prng(7).fn(),
  }, {
    hardState: { term: opts.term ?? 0, vote: opts.vote ?? "", commit: opts.commit ?? 0 },
    snapshot: null,
    entries: opts.entries ?? [],
  });
}

/** Take one Ready, acknowledge it as the driver would, and return it. */
function drain(r: Raft): Ready {
  const rd = r.ready();
  r.advance(rd);
  return rd;
}

function vote(
  from: string,
  to: string,
  term: number,
  lastLogIndex: number,
  lastLogTerm: number,
  pre = false,
): VoteRequest {
  return { type: "vote", from, to, term, pre, lastLogIndex, lastLogTerm };
}

function append(
  from: string,
  to: string,
  term: number,
  prev: [number, number],
  entries: Entry[],
  commit = 0,
): AppendRequest {
  return {
    type: "append",
    from,
    to,
    term,
    prevLogIndex: prev[0],
    prevLogTerm: prev[1],
    entries,
    leaderCommit: commit,
    readSeq: 0,
  };
}

/** A follower's successful append response to leader n1. */
function ack(r: Raft, from: string, matchIndex: number, readSeq: number): AppendResponse {
  return {
    type: "appendResp",
    from,
    to: "n1",
    term: r.currentTerm,
    success: true,
    matchIndex,
    conflictIndex: 0,
    conflictTerm: 0,
    rejectIndex: 0,
    lastLogIndex: matchIndex,
    readSeq,
  };
}

function only<T extends Message["type"]>(rd: Ready, type: T): Extract<Message, { type: T }>[] {
  return rd.messages.filter((m) => m.type === type) as Extract<Message, { type: T }>[];
}

function elect(r: Raft): void {
  for (let i = 0; i < 25 && r.currentRole === "follower"; i++) r.tick();
  drain(r);
  const term = r.currentTerm;
  r.step({ type: "voteResp", from: "n2", to: "n1", term: term + 1, pre: true, granted: true });
  drain(r);
  r.step({
    type: "voteResp",
    from: "n2",
    to: "n1",
    term: r.currentTerm,
    pre: false,
    granted: true,
  });
  assertEquals(r.currentRole, "leader");
}

Deno.test("grants one vote per term and persists it before answering (§5.2, Figure 2)", () => {
  const r = node("n1", { term: 1 });
  r.step(vote("n2", "n1", 2, 0, 0));
  const rd = drain(r);
  assertEquals(rd.hardState?.term, 2);
  assertEquals(rd.hardState?.vote, "n2");
  assert(rd.mustSync, "a vote must be synced before the reply leaves");
  assertEquals(only(rd, "voteResp")[0].granted, true);
  // Another candidate in the same term is refused; the same one again is granted again.
  r.step(vote("n3", "n1", 2, 0, 0));
  assertEquals(only(drain(r), "voteResp")[0].granted, false);
  r.step(vote("n2", "n1", 2, 0, 0));
  assertEquals(only(drain(r), "voteResp")[0].granted, true);
});

Deno.test("a higher term clears the vote: a new candidate can be granted (§5.1)", () => {
  const r = node("n1", { term: 2, vote: "n2" });
  r.step(vote("n3", "n1", 3, 0, 0));
  const rd = drain(r);
  assertEquals(rd.hardState, { term: 3, vote: "n3", commit: 0 });
  const resp = only(rd, "voteResp")[0] as VoteResponse;
  assertEquals([resp.term, resp.granted], [3, true]);
});

Deno.test("refuses a candidate whose log is less up to date (§5.4.1)", () => {
  const r = node("n1", { term: 2, entries: [e(1, 1), e(2, 2)] });
  r.step(vote("n2", "n1", 3, 5, 1)); // longer but older last term
  let resp = only(drain(r), "voteResp")[0];
  assertEquals(resp.granted, false);
  assertEquals(r.currentTerm, 3, "the term still advances");
  r.step(vote("n3", "n1", 3, 1, 2)); // same last term, shorter
  resp = only(drain(r), "voteResp")[0];
  assertEquals(resp.granted, false);
  r.step(vote("n3", "n1", 4, 2, 2)); // as up to date
  resp = only(drain(r), "voteResp")[0];
  assertEquals(resp.granted, true);
});

Deno.test("rejects a vote request from a stale term and tells the candidate our term", () => {
  const r = node("n1", { term: 5 });
  r.step(vote("n2", "n1", 4, 9, 4));
  const resp = only(drain(r), "voteResp")[0];
  assertEquals([resp.term, resp.granted], [5, false]);
});

Deno.test("a pre-vote changes no term and records no vote (thesis §9.6)", () => {
  const r = node("n1", { term: 2 });
  r.step(vote("n2", "n1", 3, 0, 0, true));
  const rd = drain(r);
  assertEquals(rd.hardState, null, "nothing to persist");
  const resp = only(rd, "voteResp")[0];
  assertEquals([resp.pre, resp.granted, resp.term], [true, true, 3]);
  assertEquals(r.currentTerm, 2);
});

Deno.test("a follower that hears from its leader ignores disruptive candidates (thesis §4.2.3)", () => {
  const r = node("n1", { term: 2 });
  r.step(append("n2", "n1", 2, [0, 0], []));
  drain(r);
  r.step(vote("n3", "n1", 3, 10, 3));
  const resp = only(drain(r), "voteResp")[0];
  assertEquals(resp.granted, false);
  assertEquals(r.currentTerm, 2, "the leader's term is kept");
});

Deno.test("rejects an append whose previous entry does not match, with a back-off hint (§5.3)", () => {
  const r = node("n1", { term: 2, entries: [e(1, 1), e(2, 1), e(3, 1)] });
  r.step(append("n2", "n1", 2, [3, 2], [e(4, 2)]));
  let resp = only(drain(r), "appendResp")[0] as AppendResponse;
  assertEquals(resp.success, false);
  assertEquals(
    [resp.conflictTerm, resp.conflictIndex],
    [1, 1],
    "first index of the conflicting term",
  );
  r.step(append("n2", "n1", 2, [7, 2], [e(8, 2)]));
  resp = only(drain(r), "appendResp")[0] as AppendResponse;
  assertEquals(
    [resp.success, resp.conflictTerm, resp.conflictIndex],
    [false, 0, 4],
    "log too short",
  );
});

Deno.test("a conflicting suffix is truncated and replaced by the leader's entries (§5.3)", () => {
  const r = node("n1", { term: 2, entries: [e(1, 1), e(2, 1), e(3, 2, "old3"), e(4, 2, "old4")] });
  r.step(append("n3", "n1", 3, [2, 1], [e(3, 3, "new3")], 3));
  const rd = drain(r);
  assertEquals(
    rd.entries.map((x) => `${x.term}/${x.index}`),
    ["3/3"],
    "only the replacement is written",
  );
  assertEquals(r.status().lastIndex, 3, "old entry 4 is gone");
  assertEquals(new TextDecoder().decode(r.entryAt(3)!.data), "new3");
  const resp = only(rd, "appendResp")[0] as AppendResponse;
  assertEquals([resp.success, resp.matchIndex], [true, 3]);
  assertEquals(r.status().commitIndex, 3);
});

Deno.test("an append that only repeats known entries never truncates later ones (§5.3)", () => {
  const r = node("n1", { term: 2, entries: [e(1, 2), e(2, 2), e(3, 2)] });
  r.step(append("n2", "n1", 2, [0, 0], [e(1, 2)]));
  const rd = drain(r);
  assertEquals(r.status().lastIndex, 3);
  assertEquals(rd.entries.length, 0);
  assertEquals((only(rd, "appendResp")[0] as AppendResponse).matchIndex, 1);
});

Deno.test("a leader steps down when it sees a higher-term append (§5.1)", () => {
  const r = node("n1", { term: 1 });
  elect(r);
  const term = r.currentTerm;
  drain(r);
  r.step(append("n3", "n1", term + 1, [0, 0], []));
  const rd = drain(r);
  assertEquals(r.currentRole, "follower");
  assertEquals(r.leaderId, "n3");
  assertEquals(rd.hardState?.term, term + 1, "the new term is persisted");
});

Deno.test("a candidate that sees an append from a leader of its term becomes follower (§5.2)", () => {
  const r = node("n1", { term: 1 });
  for (let i = 0; i < 25 && r.currentRole === "follower"; i++) r.tick();
  drain(r);
  r.step({ type: "voteResp", from: "n2", to: "n1", term: 2, pre: true, granted: true });
  drain(r);
  assertEquals(r.currentRole, "candidate");
  r.step(append("n3", "n1", r.currentTerm, [0, 0], []));
  assertEquals(r.currentRole, "follower");
  assertEquals(r.leaderId, "n3");
});

Deno.test("a new leader appends a no-op and commits only by a majority of its own term (§5.4.2)", () => {
  const r = node("n1", { term: 1, entries: [e(1, 1)] });
  elect(r);
  const rd = drain(r);
  const noop = rd.entries[rd.entries.length - 1];
  assertEquals([noop.index, noop.type], [2, EntryType.Noop]);
  const a = only(rd, "append").find((m) => m.to === "n2")!;
  // n2 acknowledges only the old entry 1: that is not enough to commit anything.
  r.step(ack(r, "n2", 1, a.readSeq));
  drain(r);
  assertEquals(r.status().commitIndex, 0, "entry 1 is from an older term");
  r.step(ack(r, "n2", 2, a.readSeq));
  const rd2 = drain(r);
  assertEquals(r.status().commitIndex, 2, "the no-op commits, and entry 1 with it");
  const rd3 = drain(r);
  assertEquals(
    [...rd2.committed, ...rd3.committed].map((x) => x.index),
    [1, 2],
    "applied in order",
  );
});

Deno.test("every request gets exactly one reply, in the order the requests were stepped", () => {
  const r = node("n1", { term: 1 });
  r.step(vote("n2", "n1", 2, 0, 0));
  r.step(append("n2", "n1", 2, [0, 0], [e(1, 2)]));
  r.step(append("n3", "n1", 1, [0, 0], [])); // stale
  r.step(vote("n3", "n1", 2, 0, 0));
  const replies = drain(r).messages.map((m) => `${m.to}:${m.type}`);
  assertEquals(replies, ["n2:voteResp", "n2:appendResp", "n3:appendResp", "n3:voteResp"]);
});

Deno.test("a read on the leader waits for a heartbeat round acknowledged by a majority (thesis §6.4)", () => {
  const r = node("n1", { term: 1 });
  elect(r);
  let rd = drain(r);
  // Commit the no-op first.
  r.step(ack(r, "n2", 1, 0));
  drain(r);
  drain(r);
  r.readIndex(42);
  rd = drain(r);
  assertEquals(rd.readStates.length, 0, "not before the round is acknowledged");
  const beats = only(rd, "append");
  assertEquals(beats.length, 2);
  const seq = beats[0].readSeq;
  assert(seq > 0);
  r.step(ack(r, "n3", 1, seq));
  rd = drain(r);
  assertEquals(rd.readStates, [{ ctx: 42, index: 1, ok: true }]);
});

Deno.test("a follower forwards a read to its leader and fails it when the leader changes", () => {
  const r = node("n1", { term: 1 });
  r.step(append("n2", "n1", 1, [0, 0], []));
  drain(r);
  r.readIndex(7);
  const rd = drain(r);
  const fwd = only(rd, "readIndex");
  assertEquals(fwd.map((m) => [m.to, m.ctx]), [["n2", 7]]);
  r.step(append("n3", "n1", 2, [0, 0], []));
  assertEquals(drain(r).readStates, [{ ctx: 7, index: 0, ok: false }]);
});
