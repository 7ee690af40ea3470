/**
 * A small HTTP/1.1 client for the Raft RPC routes: persistent TCP connections (Deno.connect,
 * TCP_NODELAY) to one peer, one request at a time per connection, a bounded pool of them.
 *
 * Why not fetch: measured here, a fetch round trip costs about 75 µs of CPU and a request over
 * a plain keep-alive socket about 10 µs; a leader sends thousands of appends per second, so
 * fetch alone would eat most of a core. The protocol is still plain HTTP/1.1 (the same routes
 * and bodies curl or fetch can use); this client just does the minimum:
 *
 *   request  = POST <path> HTTP/1.1, Host, Content-Type, Content-Length, body
 *   response = status line, headers; body by Content-Length, chunked, or none (204/304)
 *
 * Any error or timeout closes that connection (its state is unknown) and rejects the request.
 */

import { concat } from "@std/bytes/concat";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CRLF2 = [13, 10, 13, 10];

export class HttpClientError extends Error {
  override name = "HttpClientError";
}

export interface HttpResponse {
  status: number;
  body: Uint8Array;
}

interface Waiter {
  resolve: (c: Connection) => void;
  reject: (e: Error) => void;
  deadline: number;
  timeoutMs: number;
}

const SWEEP_MS = 50;

/** `p`, or a timeout error after `ms`; a result that arrives too late is passed to `dispose`. */
function withTimeout<T>(p: Promise<T>, ms: number, dispose: (late: T) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new HttpClientError(`could not connect within ${ms} ms`));
    }, ms);
    p.then((v) => {
      clearTimeout(timer);
      if (done) dispose(v);
      else resolve(v);
    }, (err) => {
      clearTimeout(timer);
      if (!done) reject(err);
    });
  });
}

/** One keep-alive connection, used by one request at a time. */
class Connection {
  private buf = new Uint8Array(64 * 1024);
  /** Bytes in buf: [start, end) not yet consumed. */
  private start = 0;
  private end = 0;
  closed = false;
  /** Closed by the pool because its request ran past the deadline. */
  timedOut = false;

  constructor(readonly conn: Deno.TcpConn) {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  /** Send one request (head and body in one buffer: one write) and read its response. */
  async request(req: Uint8Array): Promise<HttpResponse> {
    await this.writeAll(req);
    const headEnd = await this.readUntilHeadEnd();
    const text = decoder.decode(this.buf.subarray(this.start, headEnd));
    this.start = headEnd + 4;
    const lines = text.split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) throw new HttpClientError(`bad status line ${JSON.stringify(lines[0].slice(0, 80))}`);
    const status = Number(m[1]);
    let length = -1, chunked = false, close = false;
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      if (colon < 0) continue;
      const name = lines[i].slice(0, colon).trim().toLowerCase();
      const value = lines[i].slice(colon + 1).trim().toLowerCase();
      if (name === "content-length") length = Number(value);
      else if (name === "transfer-encoding") chunked = value.includes("chunked");
      else if (name === "connection") close = value.includes("close");
    }
    let out: Uint8Array;
    if (status === 204 || status === 304 || (status >= 100 && status < 200)) out = new Uint8Array();
    else if (chunked) out = await this.readChunked();
    else if (length >= 0) out = await this.readBytes(length);
    else {
      out = await this.readToEnd();
      close = true;
    }
    if (close) this.close();
    return { status, body: out };
  }

  private async writeAll(b: Uint8Array): Promise<void> {
    let off = 0;
    while (off < b.length) off += await this.conn.write(b.subarray(off));
  }

  /** Read more bytes into the buffer (growing it if full); false at end of stream. */
  private async fill(): Promise<boolean> {
    if (this.start > 0 && this.start === this.end) this.start = this.end = 0;
    if (this.end === this.buf.length) {
      if (this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      } else {
        const next = new Uint8Array(this.buf.length * 2);
        next.set(this.buf);
        this.buf = next;
      }
    }
    const n = await this.conn.read(this.buf.subarray(this.end));
    if (n === null) return false;
    this.end += n;
    return true;
  }

  private async readUntilHeadEnd(): Promise<number> {
    let scanned = 0; // bytes after `start` known not to begin the CRLFCRLF (fill() may move start)
    while (true) {
      for (let i = this.start + scanned; i + 3 < this.end; i++) {
        if (
          this.buf[i] === CRLF2[0] && this.buf[i + 1] === CRLF2[1] &&
          this.buf[i + 2] === CRLF2[2] &&
          this.buf[i + 3] === CRLF2[3]
        ) return i;
      }
      scanned = Math.max(0, this.end - this.start - 3);
      if (this.end - this.start > 64 * 1024) {
        throw new HttpClientError("response headers too large");
      }
      if (!await this.fill()) throw new HttpClientError("connection closed before the response");
    }
  }

  private async readBytes(n: number): Promise<Uint8Array> {
    while (this.end - this.start < n) {
      if (!await this.fill()) throw new HttpClientError("connection closed in the response body");
    }
    const out = this.buf.slice(this.start, this.start + n);
    this.start += n;
    return out;
  }

  private async readLine(): Promise<string> {
    while (true) {
      for (let i = this.start; i + 1 < this.end; i++) {
        if (this.buf[i] === 13 && this.buf[i + 1] === 10) {
          const line = decoder.decode(this.buf.subarray(this.start, i));
          this.start = i + 2;
          return line;
        }
      }
      if (!await this.fill()) throw new HttpClientError("connection closed in a chunked body");
    }
  }

  private async readChunked(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    while (true) {
      const size = parseInt(await this.readLine(), 16);
      if (!Number.isFinite(size) || size < 0) throw new HttpClientError("bad chunk size");
      if (size === 0) {
        while ((await this.readLine()) !== "") { /* trailers */ }
        break;
      }
      parts.push(await this.readBytes(size));
      await this.readBytes(2);
    }
    return concat(parts);
  }

  private async readToEnd(): Promise<Uint8Array> {
    while (await this.fill()) { /* until the server closes */ }
    const out = this.buf.slice(this.start, this.end);
    this.start = this.end;
    return out;
  }
}

/** A pool of keep-alive connections to one host:port. */
export class HttpPool {
  private idle: Connection[] = [];
  private open = 0;
  private waiting: Waiter[] = [];
  private closed = false;
  private readonly all = new Set<Connection>();
  /** Connections with a request in flight, and when that request times out. */
  private readonly busy = new Map<Connection, number>();
  /** One timer checks every deadline (instead of one timer per request). */
  private sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(readonly host: string, readonly port: number, readonly connectionsMax: number) {}

  /** POST `body` to `path`; rejects on any network error or after `timeoutMs`. */
  post(
    path: string,
    body: Uint8Array,
    contentType: string,
    timeoutMs: number,
  ): Promise<HttpResponse> {
    return this.request("POST", path, body, contentType, timeoutMs);
  }

  /** Send one request; rejects on any network error or after `timeoutMs`. */
  async request(
    method: string,
    path: string,
    body: Uint8Array,
    contentType: string,
    timeoutMs: number,
  ): Promise<HttpResponse> {
    const head = `${method} ${path} HTTP/1.1\r\nhost: ${this.host}:${this.port}\r\n` +
      `content-type: ${contentType}\r\ncontent-length: ${body.length}\r\n\r\n`;
    const req = new Uint8Array(head.length + body.length); // the head is ASCII: 1 byte a char
    encoder.encodeInto(head, req);
    req.set(body, head.length);
    const deadline = performance.now() + timeoutMs;
    let conn: Connection;
    try {
      conn = await this.acquire(deadline, timeoutMs);
    } catch (err) {
      throw err instanceof HttpClientError ? err : new HttpClientError((err as Error).message);
    }
    this.busy.set(conn, deadline);
    this.startSweeping();
    try {
      const res = await conn.request(req);
      this.busy.delete(conn);
      this.release(conn);
      return res;
    } catch (err) {
      this.busy.delete(conn);
      this.discard(conn);
      if (conn.timedOut) throw new HttpClientError(`no answer within ${timeoutMs} ms`);
      throw err instanceof HttpClientError ? err : new HttpClientError((err as Error).message);
    }
  }

  private startSweeping(): void {
    if (this.sweeper !== undefined) return;
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
  }

  /** Close connections whose request is past its deadline (their read fails); expire waiters. */
  private sweep(): void {
    const now = performance.now();
    for (const [c, deadline] of this.busy) {
      if (deadline > now) continue;
      this.busy.delete(c);
      c.timedOut = true;
      c.close();
    }
    const still: Waiter[] = [];
    for (const w of this.waiting) {
      if (w.deadline <= now) {
        w.reject(new HttpClientError(`no connection free within ${w.timeoutMs} ms`));
      } else still.push(w);
    }
    this.waiting = still;
    if (this.busy.size === 0 && this.waiting.length === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private async acquire(deadline: number, timeoutMs: number): Promise<Connection> {
    if (this.closed) throw new HttpClientError("client closed");
    while (this.idle.length > 0) {
      const c = this.idle.pop()!;
      if (!c.closed) return c;
      this.forget(c);
    }
    if (this.open < this.connectionsMax) {
      this.open++;
      try {
        const tcp = await withTimeout(
          Deno.connect({ hostname: this.host, port: this.port }),
          timeoutMs,
          (late) => late.close(),
        );
        tcp.setNoDelay(true);
        const c = new Connection(tcp);
        this.all.add(c);
        if (this.closed) {
          this.discard(c);
          throw new HttpClientError("client closed");
        }
        return c;
      } catch (err) {
        this.open--;
        this.wakeNext();
        throw err;
      }
    }
    this.startSweeping();
    return await new Promise<Connection>((resolve, reject) => {
      let settled = false;
      this.waiting.push({
        // A connection handed to a waiter that already gave up goes back to the pool.
        resolve: (c) => settled ? this.release(c) : (settled = true, resolve(c)),
        reject: (e) => {
          if (!settled) reject(e);
          settled = true;
        },
        deadline,
        timeoutMs,
      });
    });
  }

  private release(c: Connection): void {
    if (c.closed || this.closed) return this.discard(c);
    const w = this.waiting.shift();
    if (w) w.resolve(c);
    else this.idle.push(c);
  }

  private discard(c: Connection): void {
    c.close();
    this.forget(c);
  }

  private forget(c: Connection): void {
    if (!this.all.delete(c)) return;
    this.open--;
    this.wakeNext();
  }

  /** A connection slot freed up: let a waiting request open a new one. */
  private wakeNext(): void {
    const w = this.waiting.shift();
    if (!w) return;
    this.acquire(w.deadline, w.timeoutMs).then(w.resolve, w.reject);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.busy.clear();
    for (const c of this.all) c.close();
    this.all.clear();
    this.idle = [];
    this.open = 0;
    for (const w of this.waiting) w.reject(new HttpClientError("client closed"));
    this.waiting = [];
  }
}
