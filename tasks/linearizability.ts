/**
 * Linearizability checker for histories of a key-value store with put / get / del.
 *
 * WHAT IS CHECKED. A history is a list of operations, each with the time it was invoked and the
 * time its response arrived (or `null` when the client never learned the outcome: a timeout or a
 * connection error). The history is linearizable if every operation can be given a single instant
 * at which it takes effect atomically, inside its [invoke, complete] interval, such that replaying
 * the operations in the order of those instants against a sequential model reproduces every
 * observed output. The model is one register per key, initially absent (null): put(v) sets it to
 * v; del reports `deleted = (register !== null)` and clears it; get returns the register. An
 * indeterminate operation (complete === null) may never take effect at all, or take effect at any
 * instant after its invoke; its output is unknown, so an indeterminate get is simply discarded.
 * Linearizability is compositional (Herlihy & Wing's "locality", Porcupine's P-compositionality):
 * a history is linearizable iff its restriction to each key is, so every key is checked alone.
 *
 * HOW (Wing & Gong's search with Lowe's memoization, the approach of Porcupine by A. Athalye).
 * The completed operations of one key become a time-ordered doubly linked list of call and return
 * events (at equal times calls sort first, so touching intervals count as concurrent: the generous
 * reading, which can only hide a violation, never invent one). The search walks the list from the
 * front. Every call event met before the first remaining return event belongs to a "minimal"
 * operation: everything that returned before it was invoked has already been linearized, so it
 * may go next. If the model accepts it (its output matches the current state), the operation is
 * linearized: its call and return events are unlinked from the list (dancing links, so undoing is
 * O(1)), it is pushed on an explicit stack (no recursion, so 10,000+ operations cannot overflow
 * the call stack), and the walk restarts at the front. Reaching a return event means the operation
 * it belongs to had to be linearized by now and cannot be: the search pops the last choice,
 * relinks it, restores the model state, and tries the next candidate after it. Indeterminate
 * operations never return, so they wait in a second list, by invoke time, and are candidates once
 * invoked (before the first remaining return event). The history is linearizable as soon as all
 * completed operations are linearized (unused indeterminate ones are taken to never have happened,
 * which is allowed); it is not linearizable when the search must pop from an empty stack, i.e.
 * every order has been refuted.
 *
 * Lowe's memoization makes this practical: the future of the search depends only on which
 * operations are linearized and on the model state, so every (set, state) pair is recorded and a
 * candidate leading to an already-seen pair is skipped. The set is a bitset; completed operations
 * are numbered in invoke order, so the linearized ones are "all operations up to some point plus a
 * few concurrent ones" and the cache key stores only the words past the all-ones prefix. A few
 * reductions, each justified where it is coded, keep the search small: a read that matches the
 * current state is taken at once, without trying alternatives (READS); values no get ever returned
 * are merged into one state (UNREAD); indeterminate writes, which are optional, are tried last,
 * only right before an op that observes them, interchangeable ones only in invoke order, and
 * those beyond what the observers could absorb are dropped up front (withoutIdleOps); and a
 * position reached with a superset of the optional ops already used is known to fail.
 *
 * BOUNDS AND WINDOWS. Checking linearizability is NP-complete in general, so the search has a time
 * budget (`budgetMs`) and a state budget (`maxStates`); when they run out the answer is "unknown",
 * never a violation that was not proven. Failures are usually local, though, and can be proven
 * locally: a "window" of the history (see `cutWindow` for the exact definition) that is not
 * linearizable on its own proves that the whole history is not. The search reports the latest
 * return event it could not get past, which is where a violation sits. So the full search runs in
 * rounds with growing budgets, and after an inconclusive round small windows around that point are
 * checked (checkOneKey); `smallestFailingWindow` shrinks such a window to show the few ops involved.
 */

// ---------------------------------------------------------------------------------------------
// Public types

export type OpKind = "put" | "get" | "del";

export interface Operation {
  /** Unique in the history. */
  id: number;
  /** Client that issued it (a client has at most one op outstanding). */
  client: number;
  kind: OpKind;
  key: string;
  /** put: the value written. */
  value?: string;
  /** Time the op was invoked (ms, monotonic; any finite number). */
  invoke: number;
  /** Time the response arrived; null = indeterminate (may or may not take effect after invoke). */
  complete: number | null;
  /** Completed ops: get -> value (null = absent); del -> deleted (key existed); put -> {}. */
  output?: { value?: string | null; deleted?: boolean };
}

export interface CheckResult {
  /** True = every key's history is linearizable. */
  ok: boolean;
  /** True = no violation was found but the search budget ran out for some key (ok is false). */
  unknown: boolean;
  /** Number of keys checked. */
  keys: number;
  /** First key found non-linearizable. */
  failedKey?: string;
  /** All ops of that key. */
  failingOps?: Operation[];
  /** A small window of that key's ops that is still non-linearizable on its own (see cutWindow). */
  smallestWindow?: Operation[];
  stats: { ops: number; indeterminate: number; statesExplored: number; ms: number };
}

export interface CheckKeyOptions {
  /** Initial register state: absent (a whole history) or any value (a window cut from one). */
  initial?: "absent" | "unknown";
  /** Wall-clock budget for the search (default 10,000 ms). */
  budgetMs?: number;
  /** Maximum number of search states to explore (default 2,000,000). */
  maxStates?: number;
}

export interface CheckKeyResult {
  ok: boolean;
  unknown: boolean;
  statesExplored: number;
}

export interface WindowOptions {
  /** Wall-clock budget for the whole shrinking process (default 5,000 ms). */
  budgetMs?: number;
  /** Search states for the whole shrinking process, over all its checks (default 2,000,000). */
  maxStates?: number;
}

export const DEFAULT_BUDGET_MS = 10_000;
export const DEFAULT_MAX_STATES = 2_000_000;
export const DEFAULT_WINDOW_BUDGET_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// Internal assertions

class InvariantError extends Error {
  override name = "InvariantError";
}

function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}

// ---------------------------------------------------------------------------------------------
// The sequential model, on small integers
//
// Register states are interned: ABSENT, UNKNOWN (only as the initial state of a window),
// UNREAD, and one id >= FIRST_VALUE per value that some completed get returned. UNREAD stands for
// every value that no get ever returned: no op can tell those values apart (a get of any of them
// would have returned it; a del only asks "present or not"), so merging them loses nothing and
// makes more search states equal. A step returns the new state, or REJECT when the operation's
// recorded output is impossible from the current state.

const ABSENT = 0;
const UNKNOWN = 1;
const UNREAD = 2;
const FIRST_VALUE = 3;
const REJECT = -1;

const PUT = 0;
const GET = 1;
const DEL = 2;

/** `arg` of a del: what it reported. */
const DELETED_FALSE = 0;
const DELETED_TRUE = 1;
const DELETED_ANY = 2; // indeterminate del: output unknown

function step(state: number, kind: number, arg: number): number {
  if (kind === PUT) return arg; // arg = value id
  if (kind === GET) return state === UNKNOWN || state === arg ? arg : REJECT; // arg = observed
  // DEL: the register ends up absent; the output must match whether it existed.
  if (arg === DELETED_ANY || state === UNKNOWN) return ABSENT;
  return (state !== ABSENT) === (arg === DELETED_TRUE) ? ABSENT : REJECT;
}

// ---------------------------------------------------------------------------------------------
// Input validation

function describe(op: Operation): string {
  return `operation id=${op.id} (${op.kind} ${JSON.stringify(op.key)})`;
}

function validate(op: Operation): void {
  if (!Number.isFinite(op.invoke)) throw new RangeError(`${describe(op)}: invoke must be finite`);
  if (op.complete !== null) {
    if (!Number.isFinite(op.complete) || op.complete < op.invoke) {
      throw new RangeError(`${describe(op)}: complete must be null or a finite time >= invoke`);
    }
    if (op.kind === "get" && (op.output === undefined || op.output.value === undefined)) {
      throw new RangeError(`${describe(op)}: a completed get needs output.value (null = absent)`);
    }
    if (op.kind === "del" && typeof op.output?.deleted !== "boolean") {
      throw new RangeError(`${describe(op)}: a completed del needs a boolean output.deleted`);
    }
  }
  if (op.kind === "put" && typeof op.value !== "string") {
    throw new RangeError(`${describe(op)}: a put needs a string value`);
  }
  if (op.kind !== "put" && op.kind !== "get" && op.kind !== "del") {
    throw new RangeError(`${describe(op)}: unknown kind`);
  }
}

function checkUniqueIds(ops: Operation[]): void {
  const seen = new Set<number>();
  for (const op of ops) {
    if (seen.has(op.id)) throw new RangeError(`duplicate operation id ${op.id}`);
    seen.add(op.id);
  }
}

function byInvoke(a: Operation, b: Operation): number {
  return a.invoke - b.invoke || a.id - b.id;
}

// ---------------------------------------------------------------------------------------------
// Preparing one key's history for the search

/**
 * One key's history in the flat form the search works on. Operations are numbered 0..n-1:
 * completed ones first (0..completed-1, in invoke order), then indeterminate ones (in invoke
 * order). The completed ops' call and return events are the nodes 1..2*completed of the event
 * list, in time order (see search() for the node layout).
 */
interface Prepared {
  n: number;
  completed: number;
  kind: Uint8Array; // per op: PUT / GET / DEL
  arg: Int32Array; // per op: see step()
  invokeTime: Float64Array; // per op
  completeTime: Float64Array; // per op (+Infinity if indeterminate)
  nodeOp: Int32Array; // per event node: the op it belongs to
  nodeIsCall: Uint8Array; // per event node: 1 = call event, 0 = return event
  returnNode: Int32Array; // per completed op: its return node
  /**
   * Per indeterminate op: the previous (by invoke) indeterminate op with exactly the same effect
   * (all dels; puts of the same state id), or -1. Such ops are interchangeable, so the search only
   * uses them in invoke order: if a linearization uses a later one while an earlier one is unused
   * (or used later), swapping their roles gives another valid linearization, because the earlier
   * one was invoked first and neither has a return to respect.
   */
  previousTwin: Int32Array;
}

/**
 * Drops the ops of one key that cannot change the verdict (the result is linearizable exactly
 * when `ops` is; `ops` must be valid):
 *  - indeterminate gets: no effect and no known output;
 *  - optional (indeterminate) writes beyond what the completed ops can observe. The search only
 *    uses an optional write right before an op that observes its effect (a get of its value or a
 *    del reporting deleted=true, after a put; a get of null or a del reporting deleted=false,
 *    after a del), each observer serving at most one, and interchangeable optional writes
 *    (previousTwin) only in invoke order. So a group of interchangeable writes with k possible
 *    observers never uses more than its first k members, and the rest can go.
 */
function withoutIdleOps(ops: Operation[]): Operation[] {
  const read = new Set<string>();
  const readsOf = new Map<string, number>(); // value -> completed gets returning it
  let deletedTrue = 0; // completed dels that found the key
  let absentSeen = 0; // completed gets of null and dels that did not find the key
  for (const op of ops) {
    if (op.complete === null) continue;
    if (op.kind === "get") {
      const value = op.output?.value ?? null;
      if (value === null) absentSeen++;
      else {
        read.add(value);
        readsOf.set(value, (readsOf.get(value) ?? 0) + 1);
      }
    } else if (op.kind === "del") {
      if (op.output?.deleted) deletedTrue++;
      else absentSeen++;
    }
  }
  const group = (op: Operation) =>
    op.kind === "del" ? "del" : read.has(op.value as string) ? `put ${op.value}` : "unread put";
  const capacity = (op: Operation) =>
    op.kind === "del" ? absentSeen : (readsOf.get(op.value as string) ?? 0) + deletedTrue;
  const usedOfGroup = new Map<string, number>();
  const kept = new Set<Operation>();
  const optional = ops.filter((op) => op.complete === null && op.kind !== "get").sort(byInvoke);
  for (const op of optional) {
    const used = usedOfGroup.get(group(op)) ?? 0;
    if (used < capacity(op)) {
      kept.add(op);
      usedOfGroup.set(group(op), used + 1);
    }
  }
  return ops.filter((op) => op.complete !== null || kept.has(op));
}

function prepare(ops: Operation[]): Prepared {
  for (const op of ops) validate(op);
  checkUniqueIds(ops);
  const relevant = withoutIdleOps(ops);
  const done = relevant.filter((op) => op.complete !== null).sort(byInvoke);
  const open = relevant.filter((op) => op.complete === null).sort(byInvoke);
  const order = done.concat(open);
  const n = order.length;
  const completed = done.length;

  const read = new Set<string>();
  for (const op of done) {
    if (op.kind === "get" && typeof op.output?.value === "string") read.add(op.output.value);
  }
  const valueIds = new Map<string, number>();
  const intern = (value: string | null): number => {
    if (value === null) return ABSENT;
    if (!read.has(value)) return UNREAD;
    let id = valueIds.get(value);
    if (id === undefined) {
      id = FIRST_VALUE + valueIds.size;
      valueIds.set(value, id);
    }
    return id;
  };

  const kind = new Uint8Array(n);
  const arg = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const op = order[i];
    if (op.kind === "put") {
      kind[i] = PUT;
      arg[i] = intern(op.value as string);
    } else if (op.kind === "get") {
      kind[i] = GET;
      arg[i] = intern(op.output?.value as string | null);
    } else {
      kind[i] = DEL;
      arg[i] = op.complete === null
        ? DELETED_ANY
        : op.output?.deleted
        ? DELETED_TRUE
        : DELETED_FALSE;
    }
  }
  const invokeTime = Float64Array.from(order, (op) => op.invoke);
  const completeTime = Float64Array.from(order, (op) => op.complete ?? Infinity);

  // Events of completed ops: 2i = call of op i, 2i+1 = its return; sorted by time, calls before
  // returns at equal times (touching intervals are concurrent), then by op number.
  const time = (e: number) => (e & 1) === 0 ? invokeTime[e >> 1] : completeTime[e >> 1];
  const events = Array.from({ length: 2 * completed }, (_, e) => e);
  events.sort((a, b) => time(a) - time(b) || (a & 1) - (b & 1) || a - b);
  const nodeOp = new Int32Array(2 * completed + 2).fill(-1);
  const nodeIsCall = new Uint8Array(2 * completed + 2);
  const returnNode = new Int32Array(completed);
  events.forEach((e, k) => {
    nodeOp[k + 1] = e >> 1;
    if ((e & 1) === 0) nodeIsCall[k + 1] = 1;
    else returnNode[e >> 1] = k + 1;
  });

  const previousTwin = new Int32Array(n).fill(-1);
  const lastOfEffect = new Map<number, number>(); // DEL -> -1, put of state s -> s
  for (let i = completed; i < n; i++) {
    const effect = kind[i] === DEL ? -1 : arg[i];
    previousTwin[i] = lastOfEffect.get(effect) ?? -1;
    lastOfEffect.set(effect, i);
  }
  return {
    n,
    completed,
    kind,
    arg,
    invokeTime,
    completeTime,
    nodeOp,
    nodeIsCall,
    returnNode,
    previousTwin,
  };
}

// ---------------------------------------------------------------------------------------------
// The search

const ALL_ONES = 0xffffffff;
/** How many search iterations pass between two looks at the clock. */
const CLOCK_EVERY = 1024;

/**
 * The passes over the candidates of one search position, in order:
 *  - READS: completed ops that observe the register without changing it (a get returning the
 *    current value, a del reporting deleted=false on an absent key). Such an op is taken at once
 *    and without alternatives: if any linearization exists from here, one exists that starts with
 *    it (moving it to the front breaks no real-time order, as it is minimal, and changes no other
 *    op's view, as it has no effect). This is what keeps read-heavy histories cheap.
 *  - WRITES: the other completed ops (puts, dels that remove a present key).
 *  - OPTIONAL_WRITES: indeterminate puts and dels, only used when nothing else works.
 */
const READS = 0;
const WRITES = 1;
const OPTIONAL_WRITES = 2;

/** Packs words [from, to) of a bitset into a string, two UTF-16 units per word. */
function packWords(bits: Uint32Array, from: number, to: number): string {
  let packed = "";
  for (let w = from; w < to; w++) packed += String.fromCharCode(bits[w] & 0xffff, bits[w] >>> 16);
  return packed;
}

/** Whether every bit set in `packed` (from packWords(bits, offset, ...)) is set in `bits`. */
function packedIsSubset(packed: string, bits: Uint32Array, offset: number): boolean {
  for (let i = 0; i < packed.length; i++) {
    const word = bits[offset + (i >> 1)];
    const half = (i & 1) === 0 ? word & 0xffff : word >>> 16;
    if ((packed.charCodeAt(i) & ~half) !== 0) return false;
  }
  return true;
}

interface SearchOutcome extends CheckKeyResult {
  /**
   * Completion time of the latest return event the search could not get past (-Infinity if it
   * never got stuck). Every linearization attempt died at or before it: that is where to look for
   * the violation.
   */
  blockedAt: number;
}

function search(
  p: Prepared,
  initial: number,
  deadline: number,
  maxStates: number,
): SearchOutcome {
  const { n, completed, kind, arg, invokeTime, nodeOp, nodeIsCall, returnNode, previousTwin } = p;
  if (completed === 0) return { ok: true, unknown: false, statesExplored: 0, blockedAt: -Infinity };

  // Two doubly linked lists in the same arrays. The event list: HEAD, the completed ops' events
  // in time order, TAIL. The optional list: OPEN_HEAD, one node per indeterminate op in invoke
  // order, OPEN_TAIL. Indeterminate ops have no return event; one may be linearized once its
  // invoke is no later than the first remaining return event.
  const HEAD = 0;
  const TAIL = 2 * completed + 1;
  const OPEN_HEAD = TAIL + 1;
  const OPEN_TAIL = OPEN_HEAD + (n - completed) + 1;
  const next = new Int32Array(OPEN_TAIL + 1);
  const prev = new Int32Array(OPEN_TAIL + 1);
  for (let i = 0; i <= OPEN_TAIL; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
  }
  const unlink = (node: number) => {
    next[prev[node]] = next[node];
    prev[next[node]] = prev[node];
  };
  const relink = (node: number) => {
    next[prev[node]] = node;
    prev[next[node]] = node;
  };
  const opOf = (node: number) => node < TAIL ? nodeOp[node] : completed + (node - OPEN_HEAD - 1);

  // The set of linearized ops. Words [0, doneWords) hold completed ops, the rest indeterminate
  // ones. `full` = number of leading all-ones words; `top` = highest completed op linearized.
  const doneWords = (completed + 31) >>> 5;
  const bits = new Uint32Array(doneWords + ((n - completed + 31) >>> 5));
  const openWords = bits.length - doneWords;
  let full = 0;
  let top = -1;
  const bitOf = (op: number) => op < completed ? op : doneWords * 32 + (op - completed);

  /**
   * Cache key of (completed ops linearized, model state, pending flag): "<state*2+flag>:<full>:"
   * then the completed region's words from `full` up to the one holding `top`. The set
   * determines `full` and `top`, so equal keys mean equal triples.
   */
  const cacheKey = (stateAndFlag: number, keyFull: number, keyTop: number): string =>
    stateAndFlag + ":" + keyFull + ":" +
    (keyTop < 0 ? "" : packWords(bits, keyFull, (keyTop >>> 5) + 1));

  /**
   * The memo. Without indeterminate ops it is a plain set of keys. With them, each key maps to
   * the sets of indeterminate ops that were already used when it was reached, and a visit is
   * redundant if one of those is a subset of the current one: having used fewer of the optional
   * ops leaves at least as many ways to finish, and that search already failed.
   */
  const seenKeys = new Set<string>();
  const seenWithOpen = new Map<string, string[]>(); // key -> packed indeterminate regions
  let states = 0;
  const alreadySeen = (key: string): boolean => {
    if (openWords === 0) {
      if (seenKeys.has(key)) return true;
      seenKeys.add(key);
      return false;
    }
    let used = seenWithOpen.get(key);
    if (used === undefined) {
      used = [];
      seenWithOpen.set(key, used);
    } else {
      for (const earlier of used) if (packedIsSubset(earlier, bits, doneWords)) return true;
    }
    used.push(packWords(bits, doneWords, bits.length));
    return false;
  };

  // The explicit DFS stack: per level, the node linearized and what to restore on undo.
  const stackNode = new Int32Array(n);
  const stackStateAndFlag = new Int32Array(n);
  const stackFull = new Int32Array(n);
  const stackTop = new Int32Array(n);
  const stackLimit = new Int32Array(n); // the position's first return node (for optional ops)
  const stackForced = new Uint8Array(n); // 1 = a read taken without alternatives (see READS)
  let depth = 0;

  let state = initial;
  let flag = 0; // 1 right after linearizing an indeterminate write: the next op must observe it
  let remaining = completed; // completed ops not linearized yet
  let phase = READS;
  let entry = next[HEAD]; // the next node to look at, in the event list or the optional list
  let limit = TAIL; // in the OPTIONAL_WRITES pass: the first remaining return node
  let blockedNode = HEAD; // the latest return node the search got stuck at (nodes are in time order)
  let iterations = 0;
  const outcome = (ok: boolean, unknown: boolean): SearchOutcome => ({
    ok,
    unknown,
    statesExplored: Math.min(states, maxStates),
    blockedAt: blockedNode === HEAD ? -Infinity : p.completeTime[nodeOp[blockedNode]],
  });

  while (true) {
    if (remaining === 0) return outcome(true, false);
    if (++iterations % CLOCK_EVERY === 0 && performance.now() > deadline) {
      return outcome(false, true);
    }
    const node = entry;
    let passOver = false;
    if (phase !== OPTIONAL_WRITES) {
      // Some completed op is not linearized, so its return is still in the event list.
      invariant(node !== TAIL, "walked past every return event");
      if (nodeIsCall[node] === 0) {
        // A return event ends a pass over the completed candidates. Make the next pass, if any.
        if (phase === READS) {
          phase = WRITES;
          entry = next[HEAD];
          continue;
        }
        if (flag === 0 && next[OPEN_HEAD] !== OPEN_TAIL) {
          phase = OPTIONAL_WRITES;
          limit = node;
          entry = next[OPEN_HEAD];
          continue;
        }
        passOver = true;
        limit = node;
      }
    } else if (node === OPEN_TAIL || invokeTime[opOf(node)] > p.completeTime[nodeOp[limit]]) {
      passOver = true; // no more optional op invoked before the first remaining return
    }

    if (passOver) {
      // Every candidate failed: the op returning at `limit` cannot be linearized in time. Undo
      // the last real choice (forced reads had no alternative, so undo through them) and try the
      // next candidate after it.
      if (limit > blockedNode) blockedNode = limit;
      let undoneNode: number;
      let undone: number;
      let forced: number;
      do {
        if (depth === 0) return outcome(false, false);
        depth--;
        undoneNode = stackNode[depth];
        undone = opOf(undoneNode);
        forced = stackForced[depth];
        const b = bitOf(undone);
        bits[b >>> 5] &= ~(1 << (b & 31));
        if (undone < completed) {
          relink(returnNode[undone]); // relink in the reverse order of unlinking
          remaining++;
        }
        relink(undoneNode);
      } while (forced === 1);
      state = stackStateAndFlag[depth] >> 1;
      flag = stackStateAndFlag[depth] & 1;
      full = stackFull[depth];
      top = stackTop[depth];
      limit = stackLimit[depth];
      phase = undone < completed ? WRITES : OPTIONAL_WRITES;
      entry = next[undoneNode];
      continue;
    }

    // A candidate: a minimal completed op, or an optional op invoked early enough. Try it.
    entry = next[node]; // where the walk goes on if this op is not taken
    const op = opOf(node);
    const indeterminate = op >= completed;
    const observes = kind[op] === GET || (kind[op] === DEL && !indeterminate);
    if (flag === 1 && !observes) continue;
    const newState = step(state, kind[op], arg[op]);
    if (newState === REJECT) continue;
    const isRead = observes && newState === state;
    if (!indeterminate && isRead !== (phase === READS)) continue;
    if (indeterminate) {
      // An optional write that changes nothing is pointless: not using it is at least as good.
      // And interchangeable optional writes are used in invoke order only (see previousTwin).
      const twin = previousTwin[op];
      if (newState === state) continue;
      if (twin >= 0) {
        const twinBit = bitOf(twin);
        if ((bits[twinBit >>> 5] & (1 << (twinBit & 31))) === 0) continue;
      }
    }

    const newFlag = indeterminate ? 1 : 0; // indeterminate gets were dropped: this is a write
    const b = bitOf(op);
    const w = b >>> 5;
    bits[w] |= 1 << (b & 31);
    let newFull = full;
    let newTop = top;
    if (!indeterminate) {
      while (newFull < doneWords && bits[newFull] === ALL_ONES) newFull++;
      if (op > newTop) newTop = op;
    }
    if (alreadySeen(cacheKey(newState * 2 + newFlag, newFull, newTop))) {
      bits[w] &= ~(1 << (b & 31)); // already explored from an equal or better position: skip
      continue;
    }
    if (++states > maxStates) return outcome(false, true);
    stackNode[depth] = node;
    stackStateAndFlag[depth] = state * 2 + flag;
    stackFull[depth] = full;
    stackTop[depth] = top;
    stackLimit[depth] = limit;
    stackForced[depth] = isRead ? 1 : 0;
    depth++;
    state = newState;
    flag = newFlag;
    full = newFull;
    top = newTop;
    unlink(node);
    if (!indeterminate) {
      unlink(returnNode[op]);
      remaining--;
    }
    phase = READS;
    entry = next[HEAD];
  }
}

// ---------------------------------------------------------------------------------------------
// Budgets

/** What is left of one call's budget; every search the call runs draws from it. */
interface Budget {
  deadline: number; // a performance.now() time
  statesLeft: number;
  parent?: Budget; // a share of this budget was carved out of `parent`, which is charged too
}

function makeBudget(budgetMs: number, maxStates = DEFAULT_MAX_STATES): Budget {
  return { deadline: performance.now() + budgetMs, statesLeft: maxStates };
}

/** A budget of `share` of what is left of `budget` (time and states); charges flow back up. */
function shareOf(budget: Budget, share: number): Budget {
  const now = performance.now();
  return {
    deadline: now + Math.max(0, budget.deadline - now) * share,
    statesLeft: Math.max(0, Math.floor(budget.statesLeft * share)),
    parent: budget,
  };
}

function charge(budget: Budget | undefined, states: number): void {
  for (let b = budget; b !== undefined; b = b.parent) b.statesLeft -= states;
}

function exhausted(budget: Budget): boolean {
  return budget.statesLeft <= 0 || performance.now() >= budget.deadline;
}

/** Runs one search within `budget` and charges it. */
function runSearch(ops: Operation[], initial: number, budget: Budget): SearchOutcome {
  const outcome = search(prepare(ops), initial, budget.deadline, Math.max(0, budget.statesLeft));
  charge(budget, outcome.statesExplored);
  return outcome;
}

// ---------------------------------------------------------------------------------------------
// Windows

/**
 * The window [from, to] of one key's history. Every op of the key falls in one of four cases:
 *
 *  1. complete < from (it finished before the window): left out. Its effect is summarized by the
 *     register's state at `from`, which is why windows are checked with `initial: "unknown"`.
 *  2. invoke > to (it started after the window): left out.
 *  3. from <= invoke and complete <= to (entirely inside): kept unchanged.
 *  4. anything else: it straddles an edge of the window, i.e. it was in flight at `from` or at
 *     `to` (this includes every op that is indeterminate in the history and was invoked before
 *     `to`). It is kept as an indeterminate op: a copy with `complete: null` and no output (so a
 *     get of this kind is left out entirely, as it would have no effect).
 *
 * Soundness: if the full history is linearizable, so is every window of it, checked from an
 * unknown initial state. Take the full history's linearization points and keep the ops whose point
 * lies in [from, to], in the same order, starting from the register's state at `from`. Every op
 * of case 3 is among them with the same output; ops of cases 1 and 2 have their points outside the
 * window; an op of case 4 either has its point inside the window, which is after its invoke, as an
 * indeterminate op allows, or is dropped, which an indeterminate op also allows. Contrapositive: a
 * window that is not linearizable is, on its own, a proof that the history is not. (The same
 * argument shows that a window of a window is a window, and that shrinking `to` can only turn a
 * failing window into a passing one, never the reverse; shrinking `from` has no such property.)
 * The window's ops are returned in invoke order (ties broken by id).
 */
export function cutWindow(ops: Operation[], from: number, to: number): Operation[] {
  const window: Operation[] = [];
  for (const op of ops) {
    const end = op.complete ?? Infinity;
    if (end < from || op.invoke > to) continue; // cases 1 and 2
    if (op.invoke >= from && end <= to) window.push(op); // case 3
    else if (op.kind !== "get") window.push(asIndeterminate(op)); // case 4
  }
  return window.sort(byInvoke);
}

function asIndeterminate(op: Operation): Operation {
  if (op.complete === null && op.output === undefined) return op;
  const copy: Operation = {
    id: op.id,
    client: op.client,
    kind: op.kind,
    key: op.key,
    invoke: op.invoke,
    complete: null,
  };
  if (op.value !== undefined) copy.value = op.value;
  return copy;
}

interface FailingWindow {
  from: number;
  to: number;
  ops: Operation[];
}

/**
 * The window [from, to] if a search proves it non-linearizable, else null. The ops returned are
 * the window's minus those that cannot change its verdict (withoutIdleOps), which often removes
 * most of the old indeterminate ops a window must otherwise carry.
 */
function failingWindow(
  ops: Operation[],
  from: number,
  to: number,
  budget: Budget,
): FailingWindow | null {
  const window = cutWindow(ops, from, to);
  const r = runSearch(window, UNKNOWN, budget);
  return !r.ok && !r.unknown ? { from, to, ops: withoutIdleOps(window) } : null;
}

/**
 * Looks for a failing window around `hint` (a search's `blockedAt`): windows reaching 4, 8, 16,
 * ... ops back from the last op invoked by `hint`, and a quarter as many forward, until one fails,
 * the window is the whole history, or the budget runs out. Small windows are cheap to check, so
 * a local violation is proven quickly even when the whole history is too big to search.
 */
function findFailingWindow(ops: Operation[], hint: number, budget: Budget): FailingWindow | null {
  if (ops.length === 0) return null;
  const sorted = ops.slice().sort(byInvoke);
  const n = sorted.length;
  let anchor = n - 1;
  if (hint > -Infinity) {
    while (anchor > 0 && sorted[anchor].invoke > hint) anchor--;
  }
  for (let span = 4; !exhausted(budget); span *= 2) {
    const lo = anchor - span;
    const hi = anchor + span / 4;
    const from = lo <= 0 ? -Infinity : sorted[lo].invoke;
    const to = hi >= n - 1 ? Infinity : Math.max(hint, sorted[hi].invoke);
    const found = failingWindow(ops, from, to, budget);
    if (found !== null || (lo <= 0 && hi >= n - 1)) return found;
  }
  return null;
}

/**
 * Shrinks a failing window: alternately binary-search the earliest end `to` (over completion
 * times) that still fails, and the latest start `from` (over invoke times) that still fails,
 * until neither moves or the budget runs out. Shrinking `to` is monotone (see cutWindow), so that
 * search finds the true minimum for the current `from`; shrinking `from` is not, so that search
 * only finds some failing start. Every candidate is checked in full and only proven failures are
 * kept; the smallest one (by number of ops) is returned.
 */
function shrinkWindow(ops: Operation[], found: FailingWindow, budget: Budget): Operation[] {
  const distinct = (times: number[]) =>
    [...new Set(times)].filter(Number.isFinite).sort((a, b) => a - b);
  const starts = [-Infinity, ...distinct(ops.map((op) => op.invoke))];
  const ends = [...distinct(ops.map((op) => op.complete ?? Infinity)), Infinity];
  let best = found.ops;
  const fails = (from: number, to: number): boolean => {
    if (exhausted(budget)) return false;
    const window = failingWindow(ops, from, to, budget);
    if (window !== null && window.ops.length < best.length) best = window.ops;
    return window !== null;
  };

  let fromIdx = starts.indexOf(found.from); // found.from is -Infinity or some op's invoke
  let toIdx = ends.findIndex((t) => t >= found.to); // fails too: a later end cannot pass
  invariant(fromIdx >= 0 && toIdx >= 0, "window bounds not among the candidates");
  let moved = true;
  while (moved && !exhausted(budget)) {
    moved = false;
    // Earliest failing end: ends[toIdx] fails; an end before the start gives an empty window.
    let lo = ends.findIndex((t) => t >= starts[fromIdx]) - 1;
    let hi = toIdx;
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (fails(starts[fromIdx], ends[mid])) hi = mid;
      else lo = mid;
    }
    if (hi !== toIdx) {
      toIdx = hi;
      moved = true;
    }
    // Latest failing start: starts[fromIdx] fails; a start after the end gives an empty window.
    lo = fromIdx;
    hi = starts.findIndex((t) => t > ends[toIdx]);
    if (hi === -1) hi = starts.length;
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (fails(starts[mid], ends[toIdx])) lo = mid;
      else hi = mid;
    }
    if (lo !== fromIdx) {
      fromIdx = lo;
      moved = true;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// Public entry points

interface KeyVerdict extends CheckKeyResult {
  blockedAt: number;
  /** Set when the violation was proven by a window rather than by the full search. */
  window?: FailingWindow;
}

/** Shares of the remaining budget given to successive rounds of the full search. */
const ROUND_SHARES = [1 / 16, 1 / 4, 1];

/**
 * Checks one key. A search of the whole history decides it, but proving a violation that way means
 * refuting every order of everything before it, which can be very expensive when many optional
 * (indeterminate) ops are pending. Failures are local, though, and the search reports where it
 * got stuck almost at once. So the full search runs in rounds with growing shares of the budget;
 * after each inconclusive round, the same share goes to looking for a failing window around the
 * point where it got stuck, which is a proof too (see cutWindow). The last round gets the rest:
 * at least about half of the budget, for hard histories that really need the full search.
 */
function checkOneKey(ops: Operation[], initial: number, budget: Budget): KeyVerdict {
  const statesAtStart = budget.statesLeft;
  let full!: SearchOutcome;
  for (const share of ROUND_SHARES) {
    full = runSearch(ops, initial, shareOf(budget, share));
    if (!full.unknown || share === 1 || exhausted(budget)) break;
    const window = findFailingWindow(ops, full.blockedAt, shareOf(budget, share));
    if (window !== null) {
      const statesExplored = statesAtStart - budget.statesLeft;
      return { ok: false, unknown: false, statesExplored, blockedAt: full.blockedAt, window };
    }
  }
  return { ...full, statesExplored: statesAtStart - budget.statesLeft };
}

/**
 * Checks that `ops` is a linearizable history of ONE register (the `key` fields are not looked
 * at: pass the ops of a single key). `initial: "unknown"` lets the register start with any value,
 * which is how windows cut out of the middle of a history are checked. `budgetMs` and `maxStates`
 * bound the whole call; `statesExplored` counts the search states of all the searches it ran.
 * Throws RangeError on malformed input (complete < invoke, missing outputs, duplicate ids).
 */
export function checkKey(ops: Operation[], opts: CheckKeyOptions = {}): CheckKeyResult {
  const budget = makeBudget(opts.budgetMs ?? DEFAULT_BUDGET_MS, opts.maxStates);
  const initial = opts.initial === "unknown" ? UNKNOWN : ABSENT;
  const { ok, unknown, statesExplored } = checkOneKey(ops, initial, budget);
  return { ok, unknown, statesExplored };
}

/**
 * Checks a whole history, key by key (in order of first appearance), stopping at the first key
 * that is proven non-linearizable; for that key it also computes a small failing window, with
 * whatever is left of `budgetMs`. `maxStates` bounds each key's work separately. `unknown` is
 * only set when no violation was proven and some key ran out of budget.
 */
export function checkHistory(
  history: Operation[],
  opts: { budgetMs?: number; maxStates?: number } = {},
): CheckResult {
  const started = performance.now();
  const { deadline } = makeBudget(opts.budgetMs ?? DEFAULT_BUDGET_MS);
  const maxStates = opts.maxStates ?? DEFAULT_MAX_STATES;
  for (const op of history) validate(op);
  checkUniqueIds(history);

  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    const list = byKey.get(op.key);
    if (list) list.push(op);
    else byKey.set(op.key, [op]);
  }

  const result: CheckResult = {
    ok: true,
    unknown: false,
    keys: byKey.size,
    stats: {
      ops: history.length,
      indeterminate: history.filter((op) => op.complete === null).length,
      statesExplored: 0,
      ms: 0,
    },
  };
  for (const [key, ops] of byKey) {
    const verdict = checkOneKey(ops, ABSENT, { deadline, statesLeft: maxStates });
    result.stats.statesExplored += verdict.statesExplored;
    if (verdict.unknown) {
      result.ok = false;
      result.unknown = true; // keep going: another key may still be proven broken
    } else if (!verdict.ok) {
      result.ok = false;
      result.unknown = false; // a proven violation outranks an inconclusive key
      result.failedKey = key;
      result.failingOps = ops;
      const budget = { deadline, statesLeft: maxStates };
      const found = verdict.window ?? findFailingWindow(ops, verdict.blockedAt, budget);
      result.smallestWindow = found ? shrinkWindow(ops, found, budget) : ops.slice();
      break;
    }
  }
  result.stats.ms = performance.now() - started;
  return result;
}

/**
 * Shrinks a non-linearizable history of one key to a small window (see `cutWindow`) that is still
 * non-linearizable when checked with `initial: "unknown"`, and returns that window's ops (in
 * invoke order; ops cut at the window's edges are indeterminate copies; indeterminate ops that
 * cannot change the verdict are left out, see withoutIdleOps). The window is thus a
 * self-contained proof of the violation. First the history is checked from an unknown initial
 * state with half of the budget (which also locates where linearization attempts get stuck, see
 * checkOneKey); growing windows around that point are checked until one fails (findFailingWindow)
 * and that one is shrunk from both ends (shrinkWindow). `ops` is returned as is if no failing
 * window is found: when the budget is too small, or when the violation depends on the register
 * starting absent (then no window can fail: every window of a history that is linearizable from
 * some initial state is linearizable).
 * `budgetMs` (default 5,000) and `maxStates` bound the whole call.
 */
export function smallestFailingWindow(ops: Operation[], opts: WindowOptions = {}): Operation[] {
  const budget = makeBudget(opts.budgetMs ?? DEFAULT_WINDOW_BUDGET_MS, opts.maxStates);
  const verdict = checkOneKey(ops, UNKNOWN, shareOf(budget, 0.5));
  if (verdict.ok || verdict.unknown) return ops.slice();
  const found = verdict.window ?? findFailingWindow(ops, verdict.blockedAt, budget);
  return found ? shrinkWindow(ops, found, budget) : ops.slice();
}
