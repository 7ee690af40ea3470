/**
 * The Raft RPC client: sends the core's messages to peers over HTTP/1.1 (Deno fetch, which keeps
 * connections alive and reuses them) and hands each reply back to the node. Every request has a
 * timeout; a failure is reported so the core can stop streaming to an unreachable follower.
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
  log: (msg: string) => void;
}

const OCTETS = { "content-type": "application/octet-stream" };

export class PeerClient implements Transport {
  private sink: ReplySink | null = null;
  private closed = false;
  private readonly inflight = new Set<AbortController>();
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
    const timeout = m.type === "readIndex" ? this.opts.readTimeoutMs : this.opts.rpcTimeoutMs;
    const t0 = performance.now();
    this.post(m.to, `http://${addr}${route}`, encodeMessage(m), timeout).then((body) => {
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
    const addr = this.opts.peers.get(m.to);
    if (!addr) return null;
    const url = `http://${addr}${RAFT_ROUTES.snapshot}`;
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
        const body = await this.post(m.to, url, w.finish(), this.opts.rpcTimeoutMs * 4);
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
    url: string,
    body: Uint8Array<ArrayBuffer>,
    timeoutMs: number,
  ): Promise<Uint8Array | null> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    this.inflight.add(ac);
    try {
      const res = await fetch(url, { method: "POST", body, headers: OCTETS, signal: ac.signal });
      const buf = new Uint8Array(await res.arrayBuffer());
      if (res.status === 200) return buf;
      if (res.status !== 204) {
        this.unreachable(
          to,
          `HTTP ${res.status} ${new TextDecoder().decode(buf.subarray(0, 200))}`,
        );
      }
      return null;
    } catch (err) {
      this.unreachable(to, (err as Error).message);
      return null;
    } finally {
      clearTimeout(timer);
      this.inflight.delete(ac);
    }
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

  /** Abort every request in flight. */
  close(): void {
    this.closed = true;
    for (const ac of this.inflight) ac.abort();
    this.inflight.clear();
  }
}
