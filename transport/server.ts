/**
 * The HTTP handler of a node (one Deno.serve serves both): the client API (JSON) and the Raft RPC
 * routes (binary, raft/codec.ts). Every bad request gets a JSON error with its status code and
 * never touches the node's state:
 *
 *   400 malformed JSON or body, wrong or missing fields, empty key, limits exceeded by a key
 *   404 unknown route, or a key that does not exist (GET /kv/get)
 *   405 wrong method (with Allow)
 *   413 body larger than the limit
 *   307 a write sent to a follower: Location points at the leader
 *   503 no leader known, too busy, or a read that could not be confirmed (Retry-After)
 *   504 a write that did not commit in time: its outcome is unknown
 */
import { concat } from "@std/bytes/concat";
import { STATUS_CODE } from "@std/http/status";
import { decodeMessage, encodeMessage, Reader, Writer } from "../raft/codec.ts";
import {
  NotCommittedError,
  NotLeaderError,
  OutcomeUnknownError,
  type RaftNode,
  UnavailableError,
} from "../raft/node.ts";
import type { Message } from "../raft/types.ts";
import { RAFT_ROUTES } from "./peer_client.ts";

export interface Limits {
  /** Largest client request body. */
  bodyBytesMax: number;
  keyBytesMax: number;
  valueBytesMax: number;
  /** Largest Raft RPC body (appends carry batches of entries, snapshots carry chunks). */
  raftBodyBytesMax: number;
}

export interface ServerContext {
  node: RaftNode;
  limits: Limits;
  /** Extra status fields (disk usage, ...). */
  extraStatus?: () => Promise<Record<string, unknown>>;
  log: (msg: string) => void;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const JSON_HEADERS = { "content-type": "application/json" };
const OCTETS = { "content-type": "application/octet-stream" };
const encoder = new TextEncoder();

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

export function createHandler(ctx: ServerContext): (req: Request) => Promise<Response> {
  const { node, limits } = ctx;

  const routes: Record<
    string,
    { methods: string[]; handle: (req: Request, query: string) => Promise<Response> }
  > = {
    "/kv/put": { methods: ["PUT"], handle: (req) => put(req) },
    "/kv/del": { methods: ["POST"], handle: (req) => del(req) },
    "/kv/get": { methods: ["GET"], handle: (_req, q) => get(q) },
    "/cluster/status": { methods: ["GET"], handle: () => status() },
    [RAFT_ROUTES.vote]: { methods: ["POST"], handle: (req) => raft(req, "vote") },
    [RAFT_ROUTES.append]: { methods: ["POST"], handle: (req) => raft(req, "append") },
    [RAFT_ROUTES.readIndex]: { methods: ["POST"], handle: (req) => raft(req, "readIndex") },
    [RAFT_ROUTES.snapshot]: { methods: ["POST"], handle: (req) => installSnapshot(req) },
  };

  async function put(req: Request): Promise<Response> {
    const body = await readJson(req, limits.bodyBytesMax);
    const key = checkKey(body.key);
    if (typeof body.value !== "string") {
      throw new HttpError(400, `"value" must be a string`);
    }
    if (utf8Exceeds(body.value, limits.valueBytesMax)) {
      throw new HttpError(413, `value is longer than ${limits.valueBytesMax} bytes`);
    }
    const value = body.value;
    const r = await write("/kv/put", () => node.put(key, value));
    return json(200, { key, index: r.index });
  }

  async function del(req: Request): Promise<Response> {
    const body = await readJson(req, limits.bodyBytesMax);
    const key = checkKey(body.key);
    const r = await write("/kv/del", () => node.del(key));
    return json(200, { key, deleted: r.deleted ?? false, index: r.index });
  }

  async function write<T>(path: string, op: () => Promise<T>): Promise<T> {
    leaderOrRedirect(path);
    try {
      return await op();
    } catch (err) {
      if (err instanceof NotLeaderError) leaderOrRedirect(path); // lost leadership meanwhile
      throw err;
    }
  }

  async function get(query: string): Promise<Response> {
    const params = new URLSearchParams(query);
    const key = checkKey(params.get("key"));
    const staleParam = params.get("stale");
    const stale = staleParam === "true" || staleParam === "1";
    if (staleParam !== null && !stale && staleParam !== "false" && staleParam !== "0") {
      throw new HttpError(400, `"stale" must be true or false`);
    }
    const r = stale ? node.staleRead(key) : await node.read(key);
    if (r.value === undefined) return json(404, { error: "key not found", key, index: r.index });
    return json(200, { key, value: r.value, index: r.index });
  }

  async function status(): Promise<Response> {
    const s = node.status();
    return json(200, {
      id: s.id,
      role: s.role,
      currentTerm: s.term,
      leaderId: s.leaderId,
      commitIndex: s.commitIndex,
      lastApplied: s.lastApplied,
      leaderAddr: s.leaderAddr,
      votedFor: s.vote,
      firstLogIndex: s.firstIndex,
      lastLogIndex: s.lastIndex,
      lastLogTerm: s.lastTerm,
      snapshotIndex: s.snapshotIndex,
      snapshotTerm: s.snapshotTerm,
      keys: node.kv.size,
      ...(ctx.extraStatus ? await ctx.extraStatus() : {}),
      progress: s.progress,
    });
  }

  /** Writes go to the leader: a follower answers 307 with the leader's address, or 503. */
  function leaderOrRedirect(path: string): void {
    if (node.isLeader()) return;
    const e = node.notLeader();
    if (!e.leaderId || !e.leaderAddr) {
      throw new HttpError(503, "no leader is elected yet; retry shortly", { "retry-after": "1" });
    }
    throw new Redirect(`http://${e.leaderAddr}${path}`, e.leaderId, e.leaderAddr);
  }

  async function raft(req: Request, type: "vote" | "append" | "readIndex"): Promise<Response> {
    const bytes = await readBody(req, limits.raftBodyBytesMax);
    let m: Message;
    try {
      m = decodeMessage(bytes);
    } catch (err) {
      throw new HttpError(400, `malformed Raft message: ${(err as Error).message}`);
    }
    if (m.type !== type) throw new HttpError(400, `expected a ${type} message, got ${m.type}`);
    let reply: Message | null;
    try {
      reply = await node.handleRequest(m);
    } catch (err) {
      if (err instanceof RangeError) throw new HttpError(400, err.message);
      throw err;
    }
    if (reply === null) return new Response(null, { status: 204 });
    return new Response(encodeMessage(reply).slice(), { status: 200, headers: OCTETS });
  }

  async function installSnapshot(req: Request): Promise<Response> {
    const bytes = await readBody(req, limits.raftBodyBytesMax);
    let m: Message, offset: number, total: number, data: Uint8Array;
    try {
      const r = new Reader(bytes);
      m = decodeMessage(r.bytes(r.u32("message length"), "message"));
      offset = r.uint("offset");
      total = r.uint("total bytes");
      data = r.bytes(r.remaining(), "chunk");
    } catch (err) {
      throw new HttpError(400, `malformed snapshot chunk: ${(err as Error).message}`);
    }
    if (m.type !== "snapshot") {
      throw new HttpError(400, `expected a snapshot message, got ${m.type}`);
    }
    let result;
    try {
      result = await node.handleSnapshotChunk(m, offset, total, data);
    } catch (err) {
      if (err instanceof RangeError) throw new HttpError(400, err.message);
      throw err;
    }
    if (result.reply === null) return new Response(null, { status: 204 });
    const head = encodeMessage(result.reply).slice();
    const w = new Writer(head.length + 16);
    w.u32(head.length);
    w.bytes(head);
    w.f64(result.next);
    return new Response(w.finish().slice(), { status: 200, headers: OCTETS });
  }

  function checkKey(key: unknown): string {
    if (typeof key !== "string") throw new HttpError(400, `"key" must be a string`);
    if (key === "") throw new HttpError(400, `"key" must not be empty`);
    if (utf8Exceeds(key, limits.keyBytesMax)) {
      throw new HttpError(400, `key is longer than ${limits.keyBytesMax} bytes`);
    }
    return key;
  }

  return async (req: Request): Promise<Response> => {
    // Split "http://host:port/path?query" without building a URL object (hot path).
    const url = req.url;
    const slash = url.indexOf("/", url.indexOf("//") + 2);
    const q = url.indexOf("?", slash);
    const path = slash < 0 ? "/" : url.slice(slash, q < 0 ? undefined : q);
    const query = q < 0 ? "" : url.slice(q + 1);
    const route = routes[path];
    try {
      if (route === undefined) throw new HttpError(404, `no route ${req.method} ${path}`);
      if (!route.methods.includes(req.method)) {
        throw new HttpError(405, `${path} accepts ${route.methods.join(", ")}, not ${req.method}`, {
          allow: route.methods.join(", "),
        });
      }
      return await route.handle(req, query);
    } catch (err) {
      return errorResponse(err, ctx.log);
    }
  };
}

class Redirect extends Error {
  constructor(readonly location: string, readonly leaderId: string, readonly leaderAddr: string) {
    super("not the leader");
  }
}

function errorResponse(err: unknown, log: (m: string) => void): Response {
  if (err instanceof HttpError) return json(err.status, { error: err.message }, err.headers);
  if (err instanceof Redirect) {
    return json(STATUS_CODE.TemporaryRedirect, {
      error: "not the leader; retry at the leader",
      leaderId: err.leaderId,
      leaderAddr: err.leaderAddr,
    }, { location: err.location });
  }
  if (err instanceof NotLeaderError) {
    return json(503, { error: err.message }, { "retry-after": "1" });
  }
  if (err instanceof OutcomeUnknownError) {
    return json(504, { error: err.message, outcome: "unknown" });
  }
  if (err instanceof NotCommittedError) {
    return json(503, { error: err.message, outcome: "not applied" }, { "retry-after": "1" });
  }
  if (err instanceof UnavailableError) {
    return json(503, { error: err.message }, { "retry-after": String(err.retryAfterS) });
  }
  log(`internal error: ${(err as Error)?.stack ?? err}`);
  return json(500, { error: `internal error: ${(err as Error)?.message ?? err}` });
}

/** Is `s` longer than `max` bytes in UTF-8? (Encodes only when it could be: 3 bytes a unit.) */
function utf8Exceeds(s: string, max: number): boolean {
  return s.length * 3 > max && encoder.encode(s).length > max;
}

const decoder = new TextDecoder();

async function readJson(req: Request, max: number): Promise<Record<string, unknown>> {
  const bytes = await readBody(req, max);
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(bytes));
  } catch (err) {
    throw new HttpError(400, `malformed JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new HttpError(400, "the body must be a JSON object");
  }
  return v as Record<string, unknown>;
}

/**
 * Read a request body, refusing more than `max` bytes (413) without buffering the excess. A
 * client that goes away mid-body gets a 400 (nobody reads it) instead of an internal error.
 */
export async function readBody(req: Request, max: number): Promise<Uint8Array> {
  try {
    return await readBodyRaw(req, max);
  } catch (err) {
    if (err instanceof HttpError) throw err;
    throw new HttpError(400, `could not read the request body: ${(err as Error).message}`);
  }
}

async function readBodyRaw(req: Request, max: number): Promise<Uint8Array> {
  const cl = req.headers.get("content-length");
  if (cl !== null) {
    const n = Number(cl);
    if (!Number.isSafeInteger(n) || n < 0) throw new HttpError(400, "bad Content-Length");
    if (n > max) throw new HttpError(413, `body of ${n} bytes exceeds the limit of ${max}`);
    return new Uint8Array(await req.arrayBuffer());
  }
  if (req.body === null) return new Uint8Array();
  const reader = req.body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel();
      throw new HttpError(413, `body exceeds the limit of ${max} bytes`);
    }
    parts.push(value);
  }
  return concat(parts);
}
