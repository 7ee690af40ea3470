/**
 * Binary encoding of Raft messages and log entries, shared by the HTTP transport (request and
 * response bodies of /raft/*) and the write-ahead log. Pure functions, no I/O.
 *
 * Layout (all integers little-endian; index/term/count fields are float64 holding safe
 * non-negative integers, which keeps the format simple and exact up to 2^53):
 *
 *   message = u8 version(1) | u8 type | str from | str to | f64 term | body
 *   str     = u16 byteLength | UTF-8 bytes
 *   entry   = f64 index | f64 term | u8 entryType | u32 dataLength | data
 *   vote          = u8 pre | f64 lastLogIndex | f64 lastLogTerm
 *   voteResp      = u8 pre | u8 granted
 *   append        = f64 prevLogIndex | f64 prevLogTerm | f64 leaderCommit | f64 readSeq |
 *                   u32 count | entry*
 *   appendResp    = u8 success | f64 matchIndex | f64 conflictIndex | f64 conflictTerm |
 *                   f64 rejectIndex | f64 lastLogIndex | f64 readSeq
 *   snapshot      = u8 done | meta
 *   snapshotResp  = u8 accepted | f64 matchIndex
 *   readIndex     = f64 ctx
 *   readIndexResp = u8 ok | f64 ctx | f64 index
 *   meta          = f64 index | f64 term | u16 count | str*   (voters)
 *
 * Decoding validates everything and throws `CodecError` (a RangeError) naming the offset, so a
 * malformed request body becomes a 400, never a crash or a corrupt log.
 */
import {
  type Entry,
  EntryType,
  type Message,
  type MessageType,
  type NodeId,
  type SnapshotMeta,
} from "./types.ts";

export class CodecError extends RangeError {
  override name = "CodecError";
}

const VERSION = 1;
const TYPE_CODES: MessageType[] = [
  "vote",
  "voteResp",
  "append",
  "appendResp",
  "snapshot",
  "snapshotResp",
  "readIndex",
  "readIndexResp",
];
const CODE_OF = new Map(TYPE_CODES.map((t, i) => [t, i]));

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Growable little-endian byte writer. */
export class Writer {
  private buf: Uint8Array<ArrayBuffer>;
  private view: DataView;
  pos = 0;

  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity);
    this.view = new DataView(this.buf.buffer);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  f64(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** u16 length + UTF-8. */
  str(s: string): void {
    this.ensure(2 + s.length * 3);
    const { written } = encoder.encodeInto(s, this.buf.subarray(this.pos + 2));
    if (written > 0xffff) throw new CodecError(`string of ${written} bytes is too long`);
    this.view.setUint16(this.pos, written, true);
    this.pos += 2 + written;
  }

  /** u32 length + UTF-8 (strings of any length), encoded straight into the buffer. */
  str32(s: string): void {
    this.ensure(4 + s.length * 3);
    const { written } = encoder.encodeInto(s, this.buf.subarray(this.pos + 4));
    this.view.setUint32(this.pos, written, true);
    this.pos += 4 + written;
  }

  /** Patch a u32 at an earlier position. */
  setU32(at: number, v: number): void {
    this.view.setUint32(at, v, true);
  }

  /** The bytes written so far (a view: copy it if the writer is reused). */
  finish(): Uint8Array<ArrayBuffer> {
    return this.buf.subarray(0, this.pos);
  }

  reset(): void {
    this.pos = 0;
  }
}

/** Bounds-checked little-endian reader; every failure names the offset. */
export class Reader {
  private readonly view: DataView;
  pos: number;

  constructor(readonly buf: Uint8Array, start = 0, readonly end = buf.length) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.end) {
      throw new CodecError(`truncated: ${what} needs ${n} bytes at offset ${this.pos}`);
    }
  }

  remaining(): number {
    return this.end - this.pos;
  }

  u8(what = "u8"): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }

  u16(what = "u16"): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  u32(what = "u32"): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** A non-negative safe integer stored as float64. */
  uint(what: string): number {
    this.need(8, what);
    const v = this.view.getFloat64(this.pos, true);
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new CodecError(`${what} at offset ${this.pos} is not a non-negative integer: ${v}`);
    }
    this.pos += 8;
    return v;
  }

  bool(what: string): boolean {
    const v = this.u8(what);
    if (v > 1) throw new CodecError(`${what} at offset ${this.pos - 1} is not a boolean: ${v}`);
    return v === 1;
  }

  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  str(what: string): string {
    const n = this.u16(`${what} length`);
    const at = this.pos;
    const b = this.bytes(n, what);
    try {
      return decoder.decode(b);
    } catch {
      throw new CodecError(`${what} at offset ${at} is not valid UTF-8`);
    }
  }
}

// ---- entries --------------------------------------------------------------------------------

export function writeEntry(w: Writer, e: Entry): void {
  w.f64(e.index);
  w.f64(e.term);
  w.u8(e.type);
  w.u32(e.data.length);
  w.bytes(e.data);
}

/** Reads one entry; `data` is copied so the result does not pin the source buffer. */
export function readEntry(r: Reader): Entry {
  const index = r.uint("entry index");
  const term = r.uint("entry term");
  const type = r.u8("entry type");
  if (type !== EntryType.Noop && type !== EntryType.Command) {
    throw new CodecError(`entry ${index} has unknown type ${type} at offset ${r.pos - 1}`);
  }
  const n = r.u32("entry data length");
  const data = r.bytes(n, `entry ${index} data`).slice();
  if (index === 0) throw new CodecError(`entry at offset ${r.pos} has index 0`);
  return { index, term, type, data };
}

export function writeMeta(w: Writer, m: SnapshotMeta): void {
  w.f64(m.index);
  w.f64(m.term);
  w.u16(m.voters.length);
  for (const v of m.voters) w.str(v);
}

export function readMeta(r: Reader): SnapshotMeta {
  const index = r.uint("snapshot index");
  const term = r.uint("snapshot term");
  const n = r.u16("voter count");
  const voters: NodeId[] = [];
  for (let i = 0; i < n; i++) voters.push(r.str("voter"));
  return { index, term, voters };
}

// ---- messages -------------------------------------------------------------------------------

/** An upper bound of a message's encoded size, so the writer never has to grow. */
function sizeHint(m: Message): number {
  let n = 128 + 3 * (m.from.length + m.to.length);
  if (m.type === "append") { for (const e of m.entries) n += 21 + e.data.length; }
  if (m.type === "snapshot") { for (const v of m.meta.voters) n += 2 + 3 * v.length; }
  return n;
}

export function encodeMessage(m: Message, w = new Writer(sizeHint(m))): Uint8Array<ArrayBuffer> {
  w.u8(VERSION);
  w.u8(CODE_OF.get(m.type)!);
  w.str(m.from);
  w.str(m.to);
  w.f64(m.term);
  switch (m.type) {
    case "vote":
      w.u8(m.pre ? 1 : 0);
      w.f64(m.lastLogIndex);
      w.f64(m.lastLogTerm);
      break;
    case "voteResp":
      w.u8(m.pre ? 1 : 0);
      w.u8(m.granted ? 1 : 0);
      break;
    case "append":
      w.f64(m.prevLogIndex);
      w.f64(m.prevLogTerm);
      w.f64(m.leaderCommit);
      w.f64(m.readSeq);
      w.u32(m.entries.length);
      for (const e of m.entries) writeEntry(w, e);
      break;
    case "appendResp":
      w.u8(m.success ? 1 : 0);
      w.f64(m.matchIndex);
      w.f64(m.conflictIndex);
      w.f64(m.conflictTerm);
      w.f64(m.rejectIndex);
      w.f64(m.lastLogIndex);
      w.f64(m.readSeq);
      break;
    case "snapshot":
      w.u8(m.done ? 1 : 0);
      writeMeta(w, m.meta);
      break;
    case "snapshotResp":
      w.u8(m.accepted ? 1 : 0);
      w.f64(m.matchIndex);
      break;
    case "readIndex":
      w.f64(m.ctx);
      break;
    case "readIndexResp":
      w.u8(m.ok ? 1 : 0);
      w.f64(m.ctx);
      w.f64(m.index);
      break;
  }
  return w.finish();
}

/** Decode and validate one message that fills `buf` exactly. */
export function decodeMessage(buf: Uint8Array): Message {
  const r = new Reader(buf);
  const m = readMessage(r);
  if (r.remaining() !== 0) {
    throw new CodecError(`${r.remaining()} unexpected trailing bytes at offset ${r.pos}`);
  }
  return m;
}

export function readMessage(r: Reader): Message {
  const version = r.u8("version");
  if (version !== VERSION) throw new CodecError(`unsupported message version ${version}`);
  const code = r.u8("message type");
  const type = TYPE_CODES[code];
  if (type === undefined) throw new CodecError(`unknown message type ${code} at offset 1`);
  const from = r.str("from");
  const to = r.str("to");
  if (from === "" || to === "") throw new CodecError("message without sender or receiver");
  const term = r.uint("term");
  const base = { from, to, term };
  switch (type) {
    case "vote":
      return {
        ...base,
        type,
        pre: r.bool("pre"),
        lastLogIndex: r.uint("lastLogIndex"),
        lastLogTerm: r.uint("lastLogTerm"),
      };
    case "voteResp":
      return { ...base, type, pre: r.bool("pre"), granted: r.bool("granted") };
    case "append": {
      const prevLogIndex = r.uint("prevLogIndex");
      const prevLogTerm = r.uint("prevLogTerm");
      const leaderCommit = r.uint("leaderCommit");
      const readSeq = r.uint("readSeq");
      const n = r.u32("entry count");
      if (n > r.remaining() / 21) throw new CodecError(`entry count ${n} exceeds the body`);
      const entries: Entry[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const e = readEntry(r);
        if (e.index !== prevLogIndex + 1 + i) {
          throw new CodecError(`entry ${i} has index ${e.index}, expected ${prevLogIndex + 1 + i}`);
        }
        if (e.term > term) throw new CodecError(`entry ${e.index} term ${e.term} > message term`);
        entries[i] = e;
      }
      return { ...base, type, prevLogIndex, prevLogTerm, leaderCommit, readSeq, entries };
    }
    case "appendResp":
      return {
        ...base,
        type,
        success: r.bool("success"),
        matchIndex: r.uint("matchIndex"),
        conflictIndex: r.uint("conflictIndex"),
        conflictTerm: r.uint("conflictTerm"),
        rejectIndex: r.uint("rejectIndex"),
        lastLogIndex: r.uint("lastLogIndex"),
        readSeq: r.uint("readSeq"),
      };
    case "snapshot":
      return { ...base, type, done: r.bool("done"), meta: readMeta(r) };
    case "snapshotResp":
      return { ...base, type, accepted: r.bool("accepted"), matchIndex: r.uint("matchIndex") };
    case "readIndex":
      return { ...base, type, ctx: r.uint("ctx") };
    case "readIndexResp":
      return { ...base, type, ok: r.bool("ok"), ctx: r.uint("ctx"), index: r.uint("index") };
  }
}
