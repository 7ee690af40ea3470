// Tests for tasks/linearizability.ts. Run with: deno test tasks/linearizability_test.ts
// Each test is named after the rule it demonstrates. Hand-made histories use small integer times;
// the randomized tests use a seeded PRNG and print the seed of any failing case.

import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  checkHistory,
  checkKey,
  cutWindow,
  type Operation,
  smallestFailingWindow,
} from "./linearizability.ts";

// ---------------------------------------------------------------------------------------------
// Helpers for hand-made histories

let nextId = 1;

function put(
  client: number,
  value: string,
  invoke: number,
  complete: number | null,
  key = "k",
): Operation {
  return { id: nextId++, client, kind: "put", key, value, invoke, complete, output: {} };
}

/** A get that returned `value` (null = key absent); with complete = null the value is ignored. */
function get(
  client: number,
  value: string | null,
  invoke: number,
  complete: number | null,
  key = "k",
): Operation {
  const op: Operation = { id: nextId++, client, kind: "get", key, invoke, complete };
  if (complete !== null) op.output = { value };
  return op;
}

/** A del that reported `deleted`; with complete = null the output is unknown. */
function del(
  client: number,
  deleted: boolean,
  invoke: number,
  complete: number | null,
  key = "k",
): Operation {
  const op: Operation = { id: nextId++, client, kind: "del", key, invoke, complete };
  if (complete !== null) op.output = { deleted };
  return op;
}

/** Checks one register and insists on a definite answer. */
function linearizable(ops: Operation[], initial: "absent" | "unknown" = "absent"): boolean {
  const r = checkKey(ops, { initial });
  assert(!r.unknown, "the search should not run out of budget on a tiny history");
  return r.ok;
}

// ---------------------------------------------------------------------------------------------
// Helpers for random histories: a simulated atomic register

/** xorshift32: a tiny seeded PRNG so that every randomized failure can be reproduced. */
class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = (seed * 2654435761 + 1) >>> 0 || 1;
    for (let i = 0; i < 8; i++) this.next(); // let nearby seeds diverge
  }
  /** Uniform in [0, 1). */
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 4294967296;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

interface SimOptions {
  ops: number;
  clients: number;
  keys?: string[];
  /** Probability that an op's response is lost (complete = null). */
  indeterminateRate?: number;
  /** Upper bound of an op's latency. */
  maxLatency?: number;
}

/**
 * Generates a linearizable history by simulating an atomic register: every op picks its
 * linearization instant uniformly inside [invoke, complete] and outputs are computed by applying
 * the ops in the order of those instants. A lost response (indeterminate op) takes effect at a
 * random instant after its invoke half of the time, and never otherwise; its client times out
 * and moves on. Values are unique per put.
 */
function simulate(rng: Rng, o: SimOptions): Operation[] {
  const keys = o.keys ?? ["k"];
  const maxLatency = o.maxLatency ?? 10;
  const timeout = 3 * maxLatency;
  const free = Array.from({ length: o.clients }, () => rng.next() * 5);
  const ops: Operation[] = [];
  const instant = new Map<Operation, number>();
  for (let i = 0; i < o.ops; i++) {
    let client = 0;
    for (let c = 1; c < free.length; c++) if (free[c] < free[client]) client = c;
    const invoke = free[client] + rng.next() * 2;
    const latency = 0.1 + rng.next() * maxLatency;
    const r = rng.next();
    const kind = r < 0.4 ? "put" : r < 0.8 ? "get" : "del";
    const op: Operation = {
      id: nextId++,
      client,
      kind,
      key: keys[rng.int(keys.length)],
      invoke,
      complete: invoke + latency,
    };
    if (kind === "put") op.value = `v${op.id}`;
    if (rng.next() < (o.indeterminateRate ?? 0)) {
      op.complete = null;
      if (rng.next() < 0.5) instant.set(op, invoke + rng.next() * 3 * timeout);
      free[client] = invoke + timeout;
    } else {
      instant.set(op, invoke + rng.next() * latency);
      free[client] = invoke + latency;
    }
    ops.push(op);
  }
  const register = new Map<string, string>();
  const effective = [...instant.keys()].sort((a, b) => instant.get(a)! - instant.get(b)!);
  for (const op of effective) {
    const current = register.get(op.key) ?? null;
    if (op.kind === "put") register.set(op.key, op.value!);
    if (op.kind === "del") register.delete(op.key);
    if (op.complete === null) continue;
    op.output = op.kind === "get"
      ? { value: current }
      : op.kind === "del"
      ? { deleted: current !== null }
      : {};
  }
  return ops;
}

/**
 * Turns one completed get into a stale read: it returns the value of a completed put p that was
 * overwritten by a completed write q with p before q before the get (in real time). Since values
 * are unique, no instant of the get's interval can hold that value. Picks the get nearest to
 * position `where` (0..1, by invoke order) that admits such a (p, q); falls back to a value that
 * was never written. Returns the mutated get.
 */
function injectStaleRead(rng: Rng, ops: Operation[], where: number): Operation {
  const sorted = [...ops].sort((a, b) => a.invoke - b.invoke);
  const gets = sorted.filter((op) => op.kind === "get" && op.complete !== null);
  assert(gets.length > 0, "the history has no completed get to corrupt");
  const center = Math.floor(where * gets.length);
  const order = gets.map((_, i) => i).sort((a, b) => Math.abs(a - center) - Math.abs(b - center));
  for (const gi of order) {
    const g = gets[gi];
    const done = (op: Operation) => op.key === g.key && op.complete !== null;
    const writes = sorted.filter((q) => done(q) && q.kind !== "get" && q.complete! < g.invoke);
    const q = writes.at(-1 - rng.int(Math.min(3, writes.length)));
    const p = q && sorted.find((p) => done(p) && p.kind === "put" && p.complete! < q.invoke);
    if (p) {
      g.output = { value: p.value };
      return g;
    }
  }
  const g = gets[center];
  g.output = { value: "never-written" };
  return g;
}

// ---------------------------------------------------------------------------------------------
// Sequential histories

Deno.test("sequential puts, gets and dels that follow the register model are linearizable", () => {
  assert(linearizable([
    get(0, null, 0, 1), // never written: absent
    put(0, "a", 2, 3),
    get(0, "a", 4, 5),
    put(0, "b", 6, 7),
    get(0, "b", 8, 9),
    del(0, true, 10, 11), // the key existed
    get(0, null, 12, 13),
    del(0, false, 14, 15), // the key no longer existed
  ]));
  assert(linearizable([]), "the empty history is linearizable");
});

Deno.test("a sequential read of a value that was already overwritten is not linearizable", () => {
  assert(!linearizable([put(0, "a", 0, 1), put(0, "b", 2, 3), get(0, "a", 4, 5)]));
});

Deno.test("a read after a completed del must find the key absent", () => {
  assert(!linearizable([put(0, "a", 0, 1), del(0, true, 2, 3), get(0, "a", 4, 5)]));
  assert(linearizable([put(0, "a", 0, 1), del(0, true, 2, 3), get(0, null, 4, 5)]));
});

Deno.test("a del reports whether the key existed", () => {
  assert(!linearizable([put(0, "a", 0, 1), del(0, false, 2, 3)]));
  assert(!linearizable([del(0, true, 0, 1)]), "deleted=true on a never-written key");
});

// ---------------------------------------------------------------------------------------------
// Concurrency and real-time order

Deno.test("a get concurrent with a put may see either the old or the new value", () => {
  const before = () => put(0, "a", 0, 1);
  assert(linearizable([before(), put(0, "b", 2, 6), get(1, "a", 3, 4)]));
  assert(linearizable([before(), put(0, "b", 2, 6), get(1, "b", 3, 4)]));
  assert(!linearizable([before(), put(0, "b", 2, 6), get(1, null, 3, 4)]), "but not absent");
});

Deno.test("a read that returns a value overwritten before it began is not linearizable", () => {
  // put a, then put b completes; a read that starts afterwards sees a: a stale read. Other
  // clients' concurrent activity does not make it legal.
  assert(
    !linearizable([
      put(0, "a", 0, 1),
      put(1, "b", 2, 3),
      get(2, "a", 4, 10),
      put(3, "c", 5, 6),
      get(4, "c", 7, 8),
    ]),
  );
});

Deno.test("a read that sees a value that was never written is not linearizable", () => {
  assert(!linearizable([put(0, "a", 0, 1), get(1, "zzz", 2, 3)]));
  assert(!linearizable([get(0, "zzz", 0, 1)]));
});

Deno.test("a read cannot return a value before that value's put was invoked", () => {
  assert(!linearizable([put(0, "a", 0, 1), get(1, "b", 2, 3), put(0, "b", 4, 5)]));
  // Control: if the read is still in flight when the put starts, it may see the new value.
  assert(linearizable([put(0, "a", 0, 1), get(1, "b", 2, 4.5), put(0, "b", 4, 5)]));
});

Deno.test("once a read returns the new value, a later read cannot return the old one", () => {
  // Both reads overlap the put, but the second begins after the first returned.
  assert(
    !linearizable([put(0, "a", 0, 1), put(0, "b", 2, 10), get(1, "b", 3, 4), get(2, "a", 5, 6)]),
  );
  assert(
    linearizable([put(0, "a", 0, 1), put(0, "b", 2, 10), get(1, "a", 3, 4), get(2, "b", 5, 6)]),
  );
});

Deno.test("operations whose intervals only touch are treated as concurrent", () => {
  // The get starts at the very instant the put's response arrives, so it may be ordered first.
  // (The generous reading: it can hide a violation but never invent one.)
  assert(linearizable([put(0, "a", 0, 2), get(1, null, 2, 3)]));
  assert(!linearizable([put(0, "a", 0, 2), get(1, null, 2.5, 3)]));
});

// ---------------------------------------------------------------------------------------------
// Indeterminate operations

Deno.test("an indeterminate put may take effect long after its invoke and then be read", () => {
  assert(linearizable([
    put(0, "a", 0, 1),
    put(1, "b", 2, null), // timed out
    get(2, "a", 3, 4), // not yet in effect
    get(2, "b", 100, 101), // in effect now
  ]));
});

Deno.test("an indeterminate put whose value was read cannot be undone by reading the older value again", () => {
  assert(
    !linearizable([
      put(0, "a", 0, 1),
      put(1, "b", 2, null),
      get(2, "b", 3, 4),
      get(2, "a", 5, 6),
    ]),
  );
});

Deno.test("an indeterminate put may also never take effect", () => {
  assert(
    linearizable([put(0, "a", 0, 1), put(1, "b", 2, null), get(2, "a", 3, 4), get(2, "a", 50, 51)]),
  );
});

Deno.test("an indeterminate put cannot be read before it was invoked", () => {
  assert(!linearizable([put(0, "a", 0, 1), get(2, "b", 2, 3), put(1, "b", 4, null)]));
});

Deno.test("an indeterminate get constrains nothing", () => {
  assert(linearizable([put(0, "a", 0, 1), get(1, "never-written", 2, null), get(1, "a", 3, 4)]));
});

Deno.test("an indeterminate del may or may not take effect, whatever it would have reported", () => {
  const start = () => [put(0, "a", 0, 1), del(1, false, 2, null)];
  assert(linearizable([...start(), get(2, "a", 3, 4), get(2, null, 5, 6)]));
  assert(linearizable([...start(), get(2, "a", 3, 4), get(2, "a", 5, 6)]));
  // Once the key was seen absent, only a new put can bring a value back.
  assert(!linearizable([...start(), get(2, null, 3, 4), get(2, "a", 5, 6)]));
});

Deno.test("several indeterminate writes can be woven in wherever their values are observed", () => {
  assert(linearizable([
    put(0, "a", 0, 1),
    put(1, "b", 2, null),
    put(2, "c", 3, null),
    del(3, true, 4, null),
    get(4, "c", 10, 11),
    get(4, "b", 12, 13),
    get(4, null, 14, 15),
  ]));
  // ... but each takes effect at most once.
  assert(
    !linearizable([
      put(0, "a", 0, 1),
      put(1, "b", 2, null),
      put(2, "c", 3, null),
      get(4, "c", 10, 11),
      get(4, "b", 12, 13),
      get(4, "c", 14, 15),
    ]),
  );
});

// ---------------------------------------------------------------------------------------------
// del

Deno.test("a del reporting deleted=true on an absent key is not linearizable", () => {
  assert(!linearizable([del(0, true, 0, 1)]));
  assert(!linearizable([put(0, "a", 0, 1), del(0, true, 2, 3), del(1, true, 4, 5)]));
  assert(linearizable([put(0, "a", 0, 1), del(0, true, 2, 3), del(1, false, 4, 5)]));
});

Deno.test("a del concurrent with a put may or may not find the key, and later reads must agree", () => {
  // deleted=true: the del went after the put, so the key is absent afterwards.
  assert(linearizable([put(0, "a", 0, 4), del(1, true, 1, 2), get(2, null, 5, 6)]));
  assert(!linearizable([put(0, "a", 0, 4), del(1, true, 1, 2), get(2, "a", 5, 6)]));
  // deleted=false: the del went first, so the put's value survives.
  assert(linearizable([put(0, "a", 0, 4), del(1, false, 1, 2), get(2, "a", 5, 6)]));
  assert(!linearizable([put(0, "a", 0, 4), del(1, false, 1, 2), get(2, null, 5, 6)]));
});

// ---------------------------------------------------------------------------------------------
// Keys and initial state

Deno.test("operations on different keys do not constrain each other", () => {
  // As one register this would be a stale read; as two keys it is fine.
  const r = checkHistory([put(0, "a", 0, 1, "x"), get(1, null, 2, 3, "y")]);
  assertEquals(r.ok, true);
  assertEquals(r.keys, 2);
});

Deno.test("of two keys, one fine and one broken, failedKey names the broken one", () => {
  const good = [put(0, "a", 0, 1, "good"), get(1, "a", 2, 3, "good")];
  const bad = [put(0, "a", 4, 5, "bad"), put(0, "b", 6, 7, "bad"), get(1, "a", 8, 9, "bad")];
  const r = checkHistory([good[0], bad[0], good[1], bad[1], bad[2]]);
  assertEquals(r.ok, false);
  assertEquals(r.unknown, false);
  assertEquals(r.keys, 2);
  assertEquals(r.failedKey, "bad");
  assertEquals(r.failingOps, bad);
  const window = r.smallestWindow ?? [];
  assert(window.length > 0 && window.length <= bad.length);
  assertEquals(checkKey(window, { initial: "unknown" }).ok, false);
  assertEquals(r.stats.ops, 5);
  assertEquals(r.stats.indeterminate, 0);
  assert(r.stats.statesExplored > 0 && r.stats.ms >= 0);
});

Deno.test("with an unknown initial state the first read may see anything, but later reads must be consistent", () => {
  // A window starting mid-history: the register already holds something we did not see written.
  assert(linearizable([get(0, "x", 0, 1), get(0, "x", 2, 3)], "unknown"));
  assert(!linearizable([get(0, "x", 0, 1)], "absent"));
  assert(!linearizable([get(0, "x", 0, 1), get(0, "y", 2, 3)], "unknown"));
  assert(linearizable([get(0, null, 0, 1), put(0, "a", 2, 3), get(0, "a", 4, 5)], "unknown"));
  assert(linearizable([del(0, true, 0, 1), get(0, null, 2, 3)], "unknown"));
  assert(!linearizable([del(0, true, 0, 1), del(0, true, 2, 3)], "unknown"));
  // Concurrent first reads may disagree only if a write can separate them.
  assert(!linearizable([get(0, "x", 0, 1), get(1, "y", 0, 1)], "unknown"));
  assert(linearizable([get(0, "x", 0, 3), put(2, "y", 1, 2), get(1, "y", 0, 3)], "unknown"));
});

// ---------------------------------------------------------------------------------------------
// Input validation and budgets

Deno.test("malformed operations are rejected instead of being checked", () => {
  assertThrows(() => checkKey([put(0, "a", 5, 4)]), RangeError, "complete");
  assertThrows(() => checkKey([{ ...get(0, null, 0, 1), output: {} }]), RangeError, "output.value");
  assertThrows(() => checkKey([{ ...del(0, true, 0, 1), output: {} }]), RangeError, "deleted");
  const p = put(0, "a", 0, 1);
  assertThrows(() => checkHistory([p, { ...p }]), RangeError, "duplicate");
});

Deno.test("a violation proven in one key is reported even if another key ran out of budget", () => {
  const slow = [put(0, "a", 0, 1, "slow"), put(0, "b", 2, 3, "slow"), get(0, "a", 4, 5, "slow")];
  const bad = [get(1, "zzz", 0, 1, "bad")]; // refuted without exploring any state
  const r = checkHistory([...slow, ...bad], { maxStates: 1 });
  assertEquals([r.ok, r.unknown, r.failedKey], [false, false, "bad"]);
});

Deno.test("when the budget runs out the result is unknown, never a claimed violation", () => {
  const stale = [put(0, "a", 0, 1), put(0, "b", 2, 3), get(0, "a", 4, 5)];
  const r = checkKey(stale, { maxStates: 1 });
  assertEquals([r.ok, r.unknown], [false, true]);
  assert(r.statesExplored <= 1, `explored ${r.statesExplored} states with maxStates 1`);
  const h = checkHistory(stale, { maxStates: 1 });
  assertEquals([h.ok, h.unknown, h.failedKey], [false, true, undefined]);
  // A zero time budget on a large history that needs real work.
  const rng = new Rng(7);
  const big = simulate(rng, { ops: 5_000, clients: 8 });
  injectStaleRead(rng, big, 0.9);
  assertEquals(checkKey(big, { budgetMs: 0 }).unknown, true);
});

Deno.test("long sequential histories do not overflow the stack", () => {
  const ops: Operation[] = [];
  for (let i = 0; i < 20_000; i++) {
    ops.push(
      i % 2 === 0 ? put(0, `v${i}`, 2 * i, 2 * i + 1) : get(0, `v${i - 1}`, 2 * i, 2 * i + 1),
    );
  }
  assert(linearizable(ops));
  ops.push(get(0, "v0", 50_000, 50_001));
  assert(!linearizable(ops));
});

// ---------------------------------------------------------------------------------------------
// Windows

Deno.test("a window keeps ops inside it, drops ops outside it, and makes ops on its edges indeterminate", () => {
  const before = put(0, "a", 0, 1);
  const straddlesStart = put(1, "b", 2, 6);
  const inside = get(2, "b", 7, 8);
  const straddlesEnd = del(3, true, 9, 20);
  const readOnEdge = get(4, "b", 9, 20);
  const after = put(0, "c", 30, 31);
  const pending = put(5, "p", 1, null);
  const w = cutWindow(
    [before, straddlesStart, inside, straddlesEnd, readOnEdge, after, pending],
    5,
    10,
  );
  assertEquals(w.map((op) => op.id), [pending.id, straddlesStart.id, inside.id, straddlesEnd.id]);
  assertEquals(w.map((op) => op.complete), [null, null, 8, null]);
  assertEquals(w[3].output, undefined, "an indeterminate del's output is unknown");
  assert(w[2] === inside, "ops inside the window are kept as they are");
});

Deno.test("the smallest failing window of a long history with one buried stale read is short and still fails", () => {
  const seed = 2024;
  const rng = new Rng(seed);
  const ops = simulate(rng, { ops: 2_000, clients: 6, indeterminateRate: 0.01 });
  assert(checkKey(ops).ok, `seed ${seed}: the generated history should be linearizable`);
  const stale = injectStaleRead(rng, ops, 0.5);
  const full = checkKey(ops);
  assert(!full.ok && !full.unknown, `seed ${seed}: the stale read should be caught`);

  const started = performance.now();
  const window = smallestFailingWindow(ops);
  const ms = performance.now() - started;
  console.log(`  window: ${window.length} of ${ops.length} ops, found in ${ms.toFixed(0)} ms`);
  assert(window.length < ops.length / 10, `seed ${seed}: window of ${window.length} ops`);
  assert(window.some((op) => op.id === stale.id), "the window contains the stale read");
  const r = checkKey(window, { initial: "unknown" });
  assert(!r.ok && !r.unknown, `seed ${seed}: the window must still fail on its own`);
});

Deno.test("a violation that needs the register to start absent keeps the whole history as its window", () => {
  // Any initial value would explain this read, so no window (checked from an unknown state) fails.
  const ops = [get(0, "x", 0, 1), put(0, "a", 2, 3)];
  assert(!linearizable(ops));
  assertEquals(smallestFailingWindow(ops), ops);
});

// ---------------------------------------------------------------------------------------------
// Randomized tests

Deno.test("random histories of an atomic register are linearizable, and corrupting one read breaks them", () => {
  const runs = 300;
  let corrupted = 0;
  for (let seed = 1; seed <= runs; seed++) {
    const rng = new Rng(seed);
    const keyCount = 1 + rng.int(3);
    const history = simulate(rng, {
      ops: 20 + rng.int(300),
      clients: 5 + rng.int(6),
      keys: Array.from({ length: keyCount }, (_, i) => `key${i}`),
      indeterminateRate: rng.next() * 0.1,
      maxLatency: 1 + rng.next() * 20,
    });
    const r = checkHistory(history);
    assert(r.ok && !r.unknown, `seed ${seed}: a simulated history was rejected (${r.failedKey})`);

    if (!history.some((op) => op.kind === "get" && op.complete !== null)) continue;
    const stale = injectStaleRead(rng, history, rng.next());
    const bad = checkHistory(history);
    assert(!bad.ok && !bad.unknown, `seed ${seed}: a corrupted read (op ${stale.id}) was accepted`);
    assertEquals(bad.failedKey, stale.key, `seed ${seed}: wrong failedKey`);
    // The window must fail on its own, unless the violation needs the register to start absent
    // (a first read of a never-written value): then no window can fail and all ops are returned.
    const window = bad.smallestWindow!;
    const keyOps = bad.failingOps!;
    assert(window.length <= keyOps.length, `seed ${seed}: window larger than the key`);
    const w = checkKey(window, { initial: "unknown" });
    const onlyFromAbsent = window.length === keyOps.length &&
      checkKey(keyOps, { initial: "unknown" }).ok;
    assert(
      (!w.ok && !w.unknown) || onlyFromAbsent,
      `seed ${seed}: the reported window does not fail on its own`,
    );
    corrupted++;
  }
  assert(corrupted > runs * 0.9, `only ${corrupted} of ${runs} histories were corrupted`);
});

Deno.test("a violation in a long history with many timeouts is still proven, by a local window", () => {
  // Pending indeterminate ops make refuting every order of the whole prefix expensive; the
  // checker proves the violation with a small window around the point where its search got stuck.
  const seed = 31;
  const rng = new Rng(seed);
  const ops = simulate(rng, { ops: 5_000, clients: 10, indeterminateRate: 0.05 });
  injectStaleRead(rng, ops, 0.5);
  const started = performance.now();
  const r = checkKey(ops);
  const ms = performance.now() - started;
  console.log(`  ${r.statesExplored} states in ${ms.toFixed(0)} ms`);
  assert(!r.ok && !r.unknown, `seed ${seed}: the violation was not proven`);
  // The window leaves out the hundreds of old timeouts that cannot matter to it.
  const window = smallestFailingWindow(ops);
  console.log(`  window: ${window.length} ops`);
  assert(window.length < 50, `seed ${seed}: window of ${window.length} ops`);
  const w = checkKey(window, { initial: "unknown" });
  assert(!w.ok && !w.unknown, `seed ${seed}: the window must still fail on its own`);
});

Deno.test("performance: 5,000 ops from 8 concurrent clients on one key check ok without running out of budget", () => {
  const rng = new Rng(99);
  const ops = simulate(rng, { ops: 5_000, clients: 8, indeterminateRate: 0.02 });
  const started = performance.now();
  const r = checkKey(ops);
  const ms = performance.now() - started;
  console.log(`  ${ops.length} ops: ${r.statesExplored} states in ${ms.toFixed(0)} ms`);
  assert(r.ok && !r.unknown);
});

// ---------------------------------------------------------------------------------------------
// Cross-check against brute force on tiny histories

/**
 * Reference checker by exhaustive enumeration, straight from the definition: choose which
 * indeterminate ops take effect, then try every order of the chosen ops that respects real time
 * (a before b whenever a completed before b was invoked), replaying the register model. With an
 * unknown initial state, every value that appears in the history, absent, and a fresh value are
 * tried as the initial state. Exponential: only for a handful of ops.
 */
function bruteForce(ops: Operation[], initial: "absent" | "unknown"): boolean {
  const relevant = ops.filter((op) => !(op.kind === "get" && op.complete === null));
  const open = relevant.filter((op) => op.complete === null);
  const values = new Set<string | null>([null, "fresh-initial-value"]);
  for (const op of relevant) {
    if (op.value !== undefined) values.add(op.value);
    if (op.output?.value !== undefined) values.add(op.output.value);
  }
  const initials = initial === "absent" ? [null] : [...values];

  const linearize = (
    chosen: Operation[],
    placed: Set<Operation>,
    state: string | null,
  ): boolean => {
    if (placed.size === chosen.length) return true;
    for (const op of chosen) {
      if (placed.has(op)) continue;
      const mustPrecede = chosen.some((o) =>
        o !== op && !placed.has(o) && o.complete !== null && o.complete < op.invoke
      );
      if (mustPrecede) continue;
      let next: string | null;
      if (op.kind === "put") next = op.value!;
      else if (op.kind === "get") {
        if (op.output!.value !== state) continue;
        next = state;
      } else {
        if (op.complete !== null && op.output!.deleted !== (state !== null)) continue;
        next = null;
      }
      placed.add(op);
      const ok = linearize(chosen, placed, next);
      placed.delete(op);
      if (ok) return true;
    }
    return false;
  };

  for (let mask = 0; mask < 1 << open.length; mask++) {
    const chosen = relevant.filter((op) => op.complete !== null || (mask >> open.indexOf(op)) & 1);
    for (const s of initials) if (linearize(chosen, new Set(), s)) return true;
  }
  return false;
}

/** A tiny random history with few distinct values, coarse times (many ties) and random outputs. */
function tinyHistory(rng: Rng): Operation[] {
  const ops: Operation[] = [];
  const count = 2 + rng.int(6);
  const values = ["a", "b", "c"];
  for (let i = 0; i < count; i++) {
    const invoke = rng.int(8);
    const complete = rng.next() < 0.2 ? null : invoke + rng.int(4);
    const r = rng.next();
    if (r < 0.4) ops.push(put(i, values[rng.int(3)], invoke, complete));
    else if (r < 0.75) {
      ops.push(get(i, rng.next() < 0.3 ? null : values[rng.int(3)], invoke, complete));
    } else ops.push(del(i, rng.next() < 0.5, invoke, complete));
  }
  return ops;
}

Deno.test("the checker agrees with brute-force enumeration on thousands of tiny random histories", () => {
  let linearizableCount = 0;
  for (let seed = 1; seed <= 4_000; seed++) {
    const ops = tinyHistory(new Rng(seed));
    for (const initial of ["absent", "unknown"] as const) {
      const expected = bruteForce(ops, initial);
      const r = checkKey(ops, { initial });
      assert(!r.unknown, `seed ${seed}: unknown`);
      assertEquals(r.ok, expected, `seed ${seed}, initial ${initial}: ${JSON.stringify(ops)}`);
      if (expected) linearizableCount++;
    }
  }
  // Both verdicts must be well represented for the comparison to mean anything.
  assert(linearizableCount > 1_000 && linearizableCount < 7_000, `${linearizableCount} passed`);
});

Deno.test("every window of a linearizable history is linearizable from an unknown state (windows are sound)", () => {
  let windows = 0;
  for (let seed = 1; seed <= 1_500; seed++) {
    const rng = new Rng(seed);
    const ops = tinyHistory(rng);
    if (!bruteForce(ops, "absent")) continue;
    for (let i = 0; i < 4; i++) {
      const from = rng.int(10) - 1;
      const to = from + rng.int(8);
      const window = cutWindow(ops, from, to);
      assert(bruteForce(window, "unknown"), `seed ${seed}: window [${from}, ${to}] fails`);
      assert(checkKey(window, { initial: "unknown" }).ok, `seed ${seed}: checker disagrees`);
      windows++;
    }
  }
  assert(windows > 1_000, `only ${windows} windows checked`);
});
