/**
 * Record framing shared by WAL segments and snapshot files:
 *
 *   record = u32 payloadBytes | u32 crc32c(type, payload) | u8 type | payload
 *
 * `scanRecords` walks a buffer of records and classifies the first bad one:
 *   - "torn": the damage is confined to the end of the buffer (an incomplete header, a record
 *     that runs past the end, or a bad checksum with nothing valid after it). A crash in the
 *     middle of an append leaves exactly this; the caller may cut it off.
 *   - "corrupt": a bad record followed by valid ones. Data that was once durable is damaged;
 *     the caller must stop and say where.
 */
import { Writer } from "../raft/codec.ts";
import { crc32c } from "./crc32c.ts";

export const RECORD_HEADER_BYTES = 9;
/** No record is larger than this; a larger length field is damage. */
export const RECORD_BYTES_MAX = 256 << 20;

/** Append one record to `w`; `body` writes the payload. */
export function writeRecord(w: Writer, type: number, body: (w: Writer) => void): void {
  const start = w.pos;
  w.u32(0);
  w.u32(0);
  w.u8(type);
  body(w);
  const len = w.pos - start - RECORD_HEADER_BYTES;
  const buf = w.finish();
  w.setU32(start, len);
  w.setU32(start + 4, crc32c(buf, start + 8, w.pos));
}

export interface RecordRef {
  type: number;
  /** Offset of the record's header in the buffer. */
  offset: number;
  /** Payload is buf[payloadStart, end). */
  payloadStart: number;
  end: number;
}

export type ScanEnd =
  | { kind: "clean"; end: number }
  | { kind: "torn"; at: number; reason: string }
  | { kind: "corrupt"; at: number; reason: string };

/** Check the record at `at`; returns the reason it is bad, or its end offset. */
export function checkRecordAt(
  buf: Uint8Array,
  at: number,
  end: number,
  knownType: (t: number) => boolean,
): { ok: true; next: number; type: number } | { ok: false; pastEnd: boolean; reason: string } {
  if (end - at < RECORD_HEADER_BYTES) {
    return { ok: false, pastEnd: true, reason: `incomplete record header (${end - at} bytes)` };
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const len = view.getUint32(at, true);
  const sum = view.getUint32(at + 4, true);
  const type = buf[at + 8];
  if (len > RECORD_BYTES_MAX) {
    return { ok: false, pastEnd: false, reason: `record length ${len} is implausible` };
  }
  const next = at + RECORD_HEADER_BYTES + len;
  if (next > end) {
    return { ok: false, pastEnd: true, reason: `record of ${len} bytes runs past the end` };
  }
  if (crc32c(buf, at + 8, next) !== sum) {
    return { ok: false, pastEnd: false, reason: "checksum mismatch" };
  }
  if (!knownType(type)) return { ok: false, pastEnd: false, reason: `unknown record type ${type}` };
  return { ok: true, next, type };
}

/** Walk the records of buf[from, end), calling `visit` for each valid one in order. */
export function scanRecords(
  buf: Uint8Array,
  visit: (r: RecordRef) => void,
  knownType: (t: number) => boolean,
  from = 0,
  end = buf.length,
): ScanEnd {
  let at = from;
  while (at < end) {
    const r = checkRecordAt(buf, at, end, knownType);
    if (!r.ok) {
      if (r.pastEnd || !validRecordAfter(buf, at + 1, end, knownType)) {
        return { kind: "torn", at, reason: r.reason };
      }
      return { kind: "corrupt", at, reason: r.reason };
    }
    visit({ type: r.type, offset: at, payloadStart: at + RECORD_HEADER_BYTES, end: r.next });
    at = r.next;
  }
  return { kind: "clean", end: at };
}

/** Is there any offset in [from, end) where a valid record starts? (damage vs. torn tail) */
function validRecordAfter(
  buf: Uint8Array,
  from: number,
  end: number,
  knownType: (t: number) => boolean,
): boolean {
  for (let q = from; q + RECORD_HEADER_BYTES <= end; q++) {
    if (!knownType(buf[q + 8])) continue;
    if (checkRecordAt(buf, q, end, knownType).ok) return true;
  }
  return false;
}
