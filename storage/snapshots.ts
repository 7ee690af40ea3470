/**
 * Snapshot files: `snap/<index>-<term>.snap`, each a run of checksummed records (record.ts):
 *
 *   META  "RKVSNAP" | u8 formatVersion | snapshot meta (index, term, voters)
 *   KV*   u32 pairs | (u32 keyBytes | key | u32 valueBytes | value)*     (~256 KiB per record)
 *   END   f64 pairs                                                      (must match the KVs)
 *
 * A file is written to a temporary name, synced, renamed into place and the directory synced,
 * so a crash leaves either the whole snapshot or none. Files are read back as a stream of
 * records (bounded memory) and every record's checksum is verified. A follower receives a
 * snapshot into `recv-<index>-<term>.tmp` chunk by chunk (resumable by offset), verifies it,
 * and only then lets it become a snapshot file.
 */
import { join } from "@std/path";
import { Reader, readMeta, writeMeta, Writer } from "../raft/codec.ts";
import type { SnapshotMeta } from "../raft/types.ts";
import type { FrozenView } from "../kv/store.ts";
import { crc32c } from "./crc32c.ts";
import { RECORD_BYTES_MAX, RECORD_HEADER_BYTES, writeRecord } from "./record.ts";
import { syncDir, writeAll } from "./wal.ts";

const META = 1, KV = 2, END = 3;
const MAGIC = "RKVSNAP";
const FORMAT_VERSION = 1;
const KV_RECORD_BYTES = 256 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export class SnapshotCorruptError extends Error {
  override name = "SnapshotCorruptError";
  constructor(readonly file: string, readonly offset: number, reason: string) {
    super(`snapshot ${file} is damaged at byte offset ${offset}: ${reason}`);
  }
}

export interface SnapshotFile {
  meta: SnapshotMeta;
  path: string;
  bytes: number;
}

/**
 * Writing a snapshot competes with the WAL for the disk: a WAL sync that lands behind megabytes
 * of snapshot data being flushed waits for all of it. So the writer syncs every
 * SYNC_EVERY_BYTES and then rests as long as that sync took: snapshot data never holds the disk
 * for long at a time, and the busier the disk, the slower the snapshot (it is background work).
 */
const SYNC_EVERY_BYTES = 1 << 20;

const fileName = (index: number, term: number) =>
  `${String(index).padStart(16, "0")}-${String(term).padStart(16, "0")}.snap`;
const NAME_RE = /^(\d{16})-(\d{16})\.snap$/;

export class SnapshotStore {
  private constructor(readonly dir: string, private readonly log: (m: string) => void) {}

  static async open(dir: string, log: (m: string) => void = () => {}): Promise<SnapshotStore> {
    await Deno.mkdir(dir, { recursive: true });
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name.endsWith(".tmp")) await Deno.remove(join(dir, e.name));
    }
    return new SnapshotStore(dir, log);
  }

  /** Snapshot files by name, newest first (not yet verified). */
  async list(): Promise<{ index: number; term: number; path: string }[]> {
    const out: { index: number; term: number; path: string }[] = [];
    for await (const e of Deno.readDir(this.dir)) {
      const m = e.isFile ? NAME_RE.exec(e.name) : null;
      if (m) out.push({ index: Number(m[1]), term: Number(m[2]), path: join(this.dir, e.name) });
    }
    return out.sort((a, b) => b.index - a.index || b.term - a.term);
  }

  pathFor(meta: { index: number; term: number }): string {
    return join(this.dir, fileName(meta.index, meta.term));
  }

  /**
   * Write the frozen state `view` as a snapshot file. Yields to the event loop between
   * records, so a large map does not stall the node. Returns the durable file.
   */
  async write(view: FrozenView, voters: string[]): Promise<SnapshotFile> {
    const meta: SnapshotMeta = { index: view.index, term: view.term, voters };
    const path = this.pathFor(meta);
    const tmp = `${path}.tmp`;
    const f = await Deno.open(tmp, { create: true, write: true, truncate: true });
    let bytes = 0;
    try {
      const w = new Writer(KV_RECORD_BYTES + 64 * 1024);
      const body = new Writer(KV_RECORD_BYTES + 64 * 1024);
      writeRecord(w, META, (w) => writeMetaPayload(w, meta));
      let pairs = 0, inBody = 0, unsynced = 0;
      const flushBody = () => {
        writeRecord(w, KV, (w) => {
          w.u32(inBody);
          w.bytes(body.finish());
        });
        body.reset();
        inBody = 0;
      };
      for (const [k, v] of view.entries()) {
        writeStr32(body, k);
        writeStr32(body, v);
        inBody++;
        pairs++;
        if (body.pos >= KV_RECORD_BYTES) {
          flushBody();
          await writeAll(f, w.finish()); // the await lets the node serve between records
          bytes += w.pos;
          unsynced += w.pos;
          w.reset();
          if (unsynced >= SYNC_EVERY_BYTES) {
            const t0 = performance.now();
            await f.syncData();
            unsynced = 0;
            await new Promise((r) => setTimeout(r, performance.now() - t0));
          }
        }
      }
      if (inBody > 0) flushBody();
      writeRecord(w, END, (w) => w.f64(pairs));
      await writeAll(f, w.finish());
      bytes += w.pos;
      await f.syncData();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
    await syncDir(this.dir);
    return { meta, path, bytes };
  }

  /** Read and verify a whole snapshot file; returns its meta. Throws SnapshotCorruptError. */
  async verify(path: string): Promise<SnapshotMeta> {
    let meta: SnapshotMeta | null = null;
    for await (const chunk of this.read(path)) meta = chunk.meta;
    return meta!;
  }

  /** Read, verify and load a snapshot file into a fresh map (one pass, bounded buffering). */
  async load(path: string): Promise<{ meta: SnapshotMeta; state: Map<string, string> }> {
    const state = new Map<string, string>();
    let meta: SnapshotMeta | null = null;
    for await (const chunk of this.read(path)) {
      meta = chunk.meta;
      for (const [k, v] of chunk.pairs) state.set(k, v);
    }
    return { meta: meta!, state };
  }

  /**
   * Stream a snapshot's pairs, record by record, verifying every checksum and the structure
   * (META first, END last with the right count). The caller sees each record's pairs only
   * after that record verified; a damaged file throws before its END.
   */
  async *read(path: string): AsyncGenerator<{ meta: SnapshotMeta; pairs: [string, string][] }> {
    const f = await Deno.open(path, { read: true });
    try {
      let meta: SnapshotMeta | null = null;
      let count = 0;
      let ended = false;
      for await (const rec of readRecords(f, path)) {
        if (ended) throw new SnapshotCorruptError(path, rec.offset, "data after the END record");
        const r = new Reader(rec.payload);
        try {
          if (meta === null) {
            if (rec.type !== META) throw new Error("the first record is not META");
            meta = readMetaPayload(r);
            continue;
          }
          if (rec.type === KV) {
            const n = r.u32("pair count");
            const pairs: [string, string][] = new Array(n);
            for (let i = 0; i < n; i++) pairs[i] = [readStr32(r), readStr32(r)];
            count += n;
            yield { meta, pairs };
          } else if (rec.type === END) {
            const total = r.uint("pair total");
            if (total !== count) throw new Error(`END says ${total} pairs, file holds ${count}`);
            ended = true;
          } else {
            throw new Error(`unexpected record type ${rec.type}`);
          }
        } catch (err) {
          if (err instanceof SnapshotCorruptError) throw err;
          throw new SnapshotCorruptError(path, rec.offset, (err as Error).message);
        }
      }
      if (meta === null) throw new SnapshotCorruptError(path, 0, "no META record");
      if (!ended) throw new SnapshotCorruptError(path, -1, "no END record (incomplete file)");
      yield { meta, pairs: [] };
    } finally {
      f.close();
    }
  }

  /** Keep the newest `keep` snapshot files, delete the rest. Returns the retained ones. */
  async retain(keep: number): Promise<{ index: number; term: number; path: string }[]> {
    const all = await this.list();
    for (const s of all.slice(keep)) {
      await Deno.remove(s.path);
      this.log(`deleted old snapshot ${s.path}`);
    }
    if (all.length > keep) await syncDir(this.dir);
    return all.slice(0, keep);
  }

  // ---- receiving a snapshot from the leader ---------------------------------------------------

  receivePath(meta: { index: number; term: number }): string {
    return join(this.dir, `recv-${fileName(meta.index, meta.term)}.tmp`);
  }

  /** Bytes already received for this snapshot (0 if none): where the sender should resume. */
  async receivedBytes(meta: { index: number; term: number }): Promise<number> {
    try {
      return (await Deno.stat(this.receivePath(meta))).size;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return 0;
      throw err;
    }
  }

  /**
   * Append a chunk at `offset`. Returns the new size; if `offset` is not where the file ends,
   * nothing is written and the current size is returned (the sender resumes from there).
   */
  async receiveChunk(meta: SnapshotMeta, offset: number, data: Uint8Array): Promise<number> {
    const path = this.receivePath(meta);
    if (offset === 0) await this.dropOtherReceives(path);
    const f = await Deno.open(path, { create: true, write: true, read: true });
    try {
      const size = (await f.stat()).size;
      if (offset !== size) return size;
      await f.seek(size, Deno.SeekMode.Start);
      await writeAll(f, data);
      return size + data.length;
    } finally {
      f.close();
    }
  }

  /** The whole file arrived: sync, verify and load it. Returns its content, ready to install. */
  async finishReceive(meta: SnapshotMeta): Promise<Map<string, string>> {
    const path = this.receivePath(meta);
    const f = await Deno.open(path, { read: true, write: true });
    try {
      await f.syncData();
    } finally {
      f.close();
    }
    let got: { meta: SnapshotMeta; state: Map<string, string> };
    try {
      got = await this.load(path);
    } catch (err) {
      await Deno.remove(path).catch(() => {});
      throw err;
    }
    if (got.meta.index !== meta.index || got.meta.term !== meta.term) {
      await Deno.remove(path).catch(() => {});
      throw new SnapshotCorruptError(
        path,
        0,
        `holds ${got.meta.term}/${got.meta.index}, expected ${meta.term}/${meta.index}`,
      );
    }
    return got.state;
  }

  /** Make a received, verified snapshot a snapshot file (atomic rename + directory sync). */
  async install(meta: SnapshotMeta): Promise<string> {
    const path = this.pathFor(meta);
    await Deno.rename(this.receivePath(meta), path);
    await syncDir(this.dir);
    return path;
  }

  private async dropOtherReceives(keep: string): Promise<void> {
    for await (const e of Deno.readDir(this.dir)) {
      const p = join(this.dir, e.name);
      if (e.isFile && e.name.startsWith("recv-") && p !== keep) await Deno.remove(p);
    }
  }
}

function writeMetaPayload(w: Writer, meta: SnapshotMeta): void {
  w.bytes(encoder.encode(MAGIC));
  w.u8(FORMAT_VERSION);
  writeMeta(w, meta);
}

function readMetaPayload(r: Reader): SnapshotMeta {
  const magic = decoder.decode(r.bytes(MAGIC.length, "magic"));
  if (magic !== MAGIC) throw new Error(`not a snapshot file (magic ${JSON.stringify(magic)})`);
  const v = r.u8("format version");
  if (v !== FORMAT_VERSION) throw new Error(`unsupported snapshot format version ${v}`);
  return readMeta(r);
}

function writeStr32(w: Writer, s: string): void {
  w.str32(s);
}

function readStr32(r: Reader): string {
  const n = r.u32("string length");
  return decoder.decode(r.bytes(n, "string"));
}

/** Stream the records of an open file, verifying checksums; throws on any damage. */
async function* readRecords(
  f: Deno.FsFile,
  path: string,
): AsyncGenerator<{ type: number; payload: Uint8Array; offset: number }> {
  let buf = new Uint8Array(1 << 20);
  let len = 0; // bytes in buf
  let fileOffset = 0; // file offset of buf[0]
  let eof = false;
  const fill = async (need: number): Promise<void> => {
    if (need > buf.length) {
      const next = new Uint8Array(Math.max(need, buf.length * 2));
      next.set(buf.subarray(0, len));
      buf = next;
    }
    while (len < need && !eof) {
      const n = await f.read(buf.subarray(len));
      if (n === null) eof = true;
      else len += n;
    }
  };
  let pos = 0;
  while (true) {
    if (pos > 0 && len - pos < RECORD_HEADER_BYTES * 4) {
      buf.copyWithin(0, pos, len);
      len -= pos;
      fileOffset += pos;
      pos = 0;
    }
    await fill(pos + RECORD_HEADER_BYTES);
    if (len - pos === 0) return;
    const at = fileOffset + pos;
    if (len - pos < RECORD_HEADER_BYTES) {
      throw new SnapshotCorruptError(path, at, "incomplete record header");
    }
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const size = view.getUint32(pos, true);
    const sum = view.getUint32(pos + 4, true);
    if (size > RECORD_BYTES_MAX) throw new SnapshotCorruptError(path, at, `record length ${size}`);
    const total = RECORD_HEADER_BYTES + size;
    if (len - pos < total) {
      if (pos > 0) {
        buf.copyWithin(0, pos, len);
        len -= pos;
        fileOffset += pos;
        pos = 0;
      }
      await fill(total);
      if (len < total) throw new SnapshotCorruptError(path, at, "record runs past the end of file");
    }
    if (crc32c(buf, pos + 8, pos + total) !== sum) {
      throw new SnapshotCorruptError(path, at, "checksum mismatch");
    }
    yield {
      type: buf[pos + 8],
      payload: buf.slice(pos + RECORD_HEADER_BYTES, pos + total),
      offset: at,
    };
    pos += total;
  }
}
