/**
 * Deterministic binary encoding of key-value commands, the payload of Raft log entries.
 * The same command always encodes to the same bytes, and decoding validates everything:
 *
 *   put = u8 1 | u32 keyBytes | key (UTF-8) | u32 valueBytes | value (UTF-8)
 *   del = u8 2 | u32 keyBytes | key (UTF-8)
 */
import { CodecError } from "../raft/codec.ts";

export type Command =
  | { op: "put"; key: string; value: string }
  | { op: "del"; key: string };

const OP_PUT = 1;
const OP_DEL = 2;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Scratch space for encoding (grown as needed); the result is an exact-size copy. */
let scratch = new Uint8Array(4096);

export function encodeCommand(c: Command): Uint8Array {
  const value = c.op === "put" ? c.value : "";
  const max = 9 + 3 * (c.key.length + value.length); // UTF-8 needs at most 3 bytes per UTF-16 unit
  if (scratch.length < max) scratch = new Uint8Array(Math.max(max, scratch.length * 2));
  const view = new DataView(scratch.buffer);
  scratch[0] = c.op === "put" ? OP_PUT : OP_DEL;
  const k = encoder.encodeInto(c.key, scratch.subarray(5)).written;
  view.setUint32(1, k, true);
  let end = 5 + k;
  if (c.op === "put") {
    const v = encoder.encodeInto(value, scratch.subarray(end + 4)).written;
    view.setUint32(end, v, true);
    end += 4 + v;
  }
  return scratch.slice(0, end);
}

export function decodeCommand(b: Uint8Array): Command {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let pos = 0;
  const text = (what: string): string => {
    if (pos + 4 > b.length) throw new CodecError(`command truncated before ${what} length`);
    const n = view.getUint32(pos, true);
    pos += 4;
    if (pos + n > b.length) throw new CodecError(`command truncated in ${what} (${n} bytes)`);
    const s = b.subarray(pos, pos + n);
    pos += n;
    try {
      return decoder.decode(s);
    } catch {
      throw new CodecError(`command ${what} is not valid UTF-8`);
    }
  };
  if (b.length === 0) throw new CodecError("empty command");
  const op = b[pos++];
  let c: Command;
  if (op === OP_PUT) {
    const key = text("key");
    c = { op: "put", key, value: text("value") };
  } else if (op === OP_DEL) {
    c = { op: "del", key: text("key") };
  } else {
    throw new CodecError(`unknown command op ${op}`);
  }
  if (pos !== b.length) throw new CodecError(`${b.length - pos} trailing bytes after command`);
  return c;
}
