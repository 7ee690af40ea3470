/**
 * The Raft RPC client: sends the core's messages to peers over HTTP/1.1 keep-alive connections
 * (http_client.ts: a lean client, a pool per peer) and hands each reply back to the node. Every
 * request has a timeout; a failure is reported so the core can stop streaming to an unreachable
 * follower. Read-index requests, which wait for the leader's heartbeat round, use a pool of
 * their own so they never hold up replication.
 *
 *   vote      -> POST /raft/requestVote      body: message        reply: message
 *   append    -> POST /raft/appendEntries    body: message        reply: message
 *   readIndex -> POST /raft/readIndex        body: message        reply: message
 *   snapshot  -> POST /raft/installSnapshot  body: chunk (below)  reply: message + next offset
 *
 * Snapshots stream in chunks of `snapshotChunkBytes` read from the file one at a time (bounded
 * memory); the receiver answers each with the offset it wants next, so an interrupted transfer
 * resumes where the receiver's temporary file ends.
 */
import { decodeMessage, encodeMessage, Reader, Writer } from "../raft/codec.ts";
import type { Transport } from "../raft/node.ts";
import type { Message, NodeId, SnapshotRequest } from "../raft/types.ts";
import { Stat } from "../raft/stats.ts";
import { HttpPool } from "./http_client.ts";

export const RAFT_ROUTES = {
  vote: "/raft/requestVote",
  append: "/raft/appendEntries",
  readIndex: "/raft/readIndex",
  snapshot: "/raft/installSnapshot",
} as const;

/** Where replies and failures go (RaftNode). */
export interface ReplySink {
  onReply(m: Message): void;
  onSendFailure(m: Message): void;
}

export interface PeerClientOptions {
  peers: Map<NodeId, string>;
  /** Timeout for votes and appends. */
  rpcTimeoutMs: number;
  /** Timeout for a read-index request (the leader answers after a heartbeat round). */
  readTimeoutMs: number;
  snapshotChunkBytes: number;
  /** Connections per peer for votes, appends and snapshots (appends in flight + a few). */
  connectionsMax: number;
  /** Connections per peer for read-index requests. */
  readConnectionsMax: number;
  log: (msg: string) => void;
}

const OCTETS = "application/octet-stream";

export class PeerClient implements Transport {
  private sink: ReplySink | null = null;
  private closed = false;
  private readonly pools = new Map<string, HttpPool>();
  /** Peers we currently fail to reach (logged once per outage, not per message). */
  private readonly down = new Set<NodeId>();
  /** Round-trip times of appends (ms), request to reply. */
  readonly appendRttMs = new Stat();

  constructor(private readonly opts: PeerClientOptions) {}

  attach(sink: ReplySink): void {
    this.sink = sink;
  }

  send(m: Message): void {
    const route = RAFT_ROUTES[m.type as keyof typeof RAFT_ROUTES];
    const addr = this.opts.peers.get(m.to);
    if (this.closed || !route || !addr) return;
    const read = m.type === "readIndex";
    const timeout = read ? this.opts.readTimeoutMs : this.opts.rpcTimeoutMs;
    const t0 = performance.now();
    this.post(m.to, route, encodeMessage(m), timeout, read).then((body) => {
      if (body === null) return this.fail(m);
      if (m.type === "append") this.appendRttMs.add(performance.now() - t0);
      this.reachable(m.to);
      let reply: Message;
      try {
        reply = decodeMessage(body);
      } catch (err) {
        this.opts.log(`bad reply from ${m.to}: ${(err as Error).message}`);
        return this.fail(m);
      }
      this.sink?.onReply(reply);
    });
  }

  sendSnapshot(m: SnapshotRequest, path: string): void {
    if (this.closed) return;
    this.streamSnapshot(m, path).then((reply) => {
      if (reply === null) return this.fail(m);
      this.sink?.onReply(reply);
    }, (err) => {
      this.opts.log(`snapshot ${m.meta.index} to ${m.to} failed: ${(err as Error).message}`);
      this.fail(m);
    });
  }

  private async streamSnapshot(m: SnapshotRequest, path: string): Promise<Message | null> {
    if (!this.opts.peers.has(m.to)) return null;
    const file = await Deno.open(path, { read: true });
    const started = performance.now();
    try {
      const total = (await file.stat()).size;
      const head = encodeMessage(m).slice();
      const chunk = new Uint8Array(this.opts.snapshotChunkBytes);
      let offset = 0;
      let chunks = 0;
      this.opts.log(`sending snapshot ${m.meta.term}/${m.meta.index} (${total} bytes) to ${m.to}`);
      while (true) {
        await file.seek(offset, Deno.SeekMode.Start);
        let n = 0;
        while (n < chunk.length && offset + n < total) {
          const r = await file.read(chunk.subarray(n));
          if (r === null) break;
          n += r;
        }
        const w = new Writer(head.length + n + 32);
        w.u32(head.length);
        w.bytes(head);
        w.f64(offset);
        w.f64(total);
        w.bytes(chunk.subarray(0, n));
        const body = await this.post(
          m.to,
          RAFT_ROUTES.snapshot,
          w.finish(),
          this.opts.rpcTimeoutMs * 4,
        );
        if (body === null || this.closed) return null;
        const r = new Reader(body);
        const reply = decodeMessage(r.bytes(r.u32("reply length"), "reply"));
        const next = r.uint("next offset");
        if (reply.type !== "snapshotResp" || !reply.accepted || reply.matchIndex > 0) {
          if (reply.type === "snapshotResp" && reply.matchIndex > 0) {
            this.opts.log(
              `snapshot ${m.meta.index} to ${m.to}: done, ${chunks + 1} chunks in ` +
                `${Math.round(performance.now() - started)} ms`,
            );
          }
          return reply; // installed (or refused: a newer term) — the core takes it from here
        }
        if (next > total) return null;
        offset = next;
        chunks++;
      }
    } finally {
      file.close();
    }
  }

  /** POST and return the 200 body, or null on any failure (logged once per outage). */
  private async post(
    to: NodeId,
    path: string,
    body: Uint8Array,
    timeoutMs: number,
    read = false,
  ): Promise<Uint8Array | null> {
    const pool = this.pool(to, read);
    if (pool === null) return null;
    try {
      const res = await pool.post(path, body, OCTETS, timeoutMs);
      if (res.status === 200) return res.body;
      if (res.status !== 204) {
        this.unreachable(
          to,
          `HTTP ${res.status} ${new TextDecoder().decode(res.body.subarray(0, 200))}`,
        );
      }
      return null;
    } catch (err) {
      this.unreachable(to, (err as Error).message);
      return null;
    }
  }

  private pool(to: NodeId, read: boolean): HttpPool | null {
    const key = `${to}/${read ? "read" : "rpc"}`;
    let p = this.pools.get(key);
    if (p === undefined) {
      const addr = this.opts.peers.get(to);
      const colon = addr?.lastIndexOf(":") ?? -1;
      if (!addr || colon < 0) return null;
      const host = addr.slice(0, colon).replace(/^\[|\]$/g, "");
      p = new HttpPool(
        host,
        Number(addr.slice(colon + 1)),
        read ? this.opts.readConnectionsMax : this.opts.connectionsMax,
      );
      this.pools.set(key, p);
    }
    return p;
  }

  private fail(m: Message): void {
    if (!this.closed) this.sink?.onSendFailure(m);
  }

  private unreachable(to: NodeId, why: string): void {
    if (this.closed || this.down.has(to)) return;
    this.down.add(to);
    this.opts.log(`cannot reach ${to}: ${why.split("\n")[0]}`);
  }

  private reachable(to: NodeId): void {
    if (this.down.delete(to)) this.opts.log(`${to} is reachable again`);
  }

  /** Abort every request in flight and close every connection. */
  close(): void {
    this.closed = true;
    for (const p of this.pools.values()) p.close();
    this.pools.clear();
  }
}
