/**
 * Link proxies: real, cuttable network links between Raft nodes for chaos tests.
 *
 * The Raft nodes talk HTTP/1.1 to each other (Deno `fetch` with keep-alive as the client,
 * `Deno.serve` as the server). To make a "nemesis" able to break the network for real, node A
 * never talks to node B directly: A's configuration says that B lives at the port of a small TCP
 * proxy dedicated to the DIRECTED link A->B, and that proxy forwards every byte to B's real port.
 * There is one such proxy per ordered pair of nodes, so a 3-node cluster has 6 proxies.
 *
 * A directed cut blocks one proxy. Blocking the proxy A->B stops A's requests to B and also the
 * answers to them, because an HTTP response travels back on the same TCP connection that carried
 * the request, i.e. through the same proxy. B's requests to A go through the other proxy B->A,
 * which is not affected, so they (and their answers) still work: an asymmetric partition, as when
 * a firewall drops only the connections that one side opens.
 *
 * Two ways to block a link:
 * - "reset" (default): every open connection pair is closed at once and new connections are
 *   accepted and immediately closed. Clients see "connection closed / reset" errors right away,
 *   like a crashed peer or a firewall that rejects.
 * - "drop": a black hole. Connections stay open but every byte is discarded in both directions,
 *   and new connections are accepted but never connected through. Clients see timeouts, as with a
 *   packet-dropping network. When the link is healed, the black-holed connections are closed
 *   (their byte streams are out of sync after the dropped bytes), so clients reconnect.
 *
 * These are real socket failures seen by the nodes' HTTP stacks, not a flag inside the node.
 * Everything listens and connects on 127.0.0.1 by default.
 *
 * @module
 */

export type BlockMode = "drop" | "reset";

export interface LinkProxyOptions {
  /** Port the proxy listens on (0 = ephemeral, read the real one from `listenPort` after start). */
  listenPort: number;
  /** Port of the real server behind the proxy. */
  targetPort: number;
  /** Interface for listening and connecting; default "127.0.0.1". */
  host?: string;
  /** Label used in diagnostics, e.g. "a->b". */
  name?: string;
}

export interface LinkProxyStats {
  /** Connections accepted by the listening socket (including the refused ones). */
  accepted: number;
  /** Connections accepted and closed at once because the link was blocked in "reset" mode. */
  refused: number;
  /** Client connections currently held by the proxy (forwarded or black-holed). */
  open: number;
  /** Bytes written through to the other side, both directions summed. */
  bytesForwarded: number;
  /** Bytes read and discarded because the link was blocked in "drop" mode. */
  bytesDropped: number;
}

/** A client connection and, once connected, its upstream connection to the target. */
interface Pair {
  client: Deno.TcpConn;
  upstream: Deno.TcpConn | null;
  /** Black-holed: bytes read from either side are discarded. Never goes back to false. */
  black: boolean;
  closed: boolean;
}

const BUFFER_SIZE = 64 * 1024;

function closeQuietly(conn: { close(): void } | null): void {
  if (conn === null) return;
  try {
    conn.close();
  } catch {
    // Already closed (BadResource) or similar: nothing left to release.
  }
}

function isClosedResourceError(err: unknown): boolean {
  return err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted;
}

/** A TCP proxy for one directed link, which can be blocked and unblocked. */
export class LinkProxy {
  readonly name: string;
  readonly targetPort: number;
  readonly host: string;

  #listenPort: number;
  #listener: Deno.TcpListener | null = null;
  #closing = false;
  #blockMode: BlockMode | null = null;
  readonly #pairs = new Set<Pair>();
  readonly #tasks = new Set<Promise<void>>();
  #accepted = 0;
  #refused = 0;
  #bytesForwarded = 0;
  #bytesDropped = 0;

  constructor(opts: LinkProxyOptions) {
    this.#listenPort = opts.listenPort;
    this.targetPort = opts.targetPort;
    this.host = opts.host ?? "127.0.0.1";
    this.name = opts.name ?? `${this.host}:${opts.listenPort}->${opts.targetPort}`;
  }

  /** The port the proxy listens on; after start() with port 0, the port actually assigned. */
  get listenPort(): number {
    return this.#listenPort;
  }

  /** Whether the link is currently blocked (in either mode). */
  get blocked(): boolean {
    return this.#blockMode !== null;
  }

  /** The current block mode, or null when the link is healthy. */
  get blockMode(): BlockMode | null {
    return this.#blockMode;
  }

  /** Starts listening. Throws if already started/closed or if the port cannot be bound. */
  start(): void {
    if (this.#listener !== null || this.#closing) {
      throw new Error(`LinkProxy ${this.name}: already started or closed`);
    }
    const listener = Deno.listen({ hostname: this.host, port: this.#listenPort, transport: "tcp" });
    this.#listener = listener;
    this.#listenPort = listener.addr.port;
    this.#track(this.#acceptLoop(listener));
  }

  /**
   * Cuts the link. "reset" closes every open connection and refuses new ones; "drop" black-holes
   * open and new connections. Blocking again with another mode switches mode: going to "reset"
   * closes the black-holed connections too.
   */
  block(mode: BlockMode = "reset"): void {
    this.#blockMode = mode;
    for (const pair of [...this.#pairs]) {
      if (mode === "reset") this.#closePair(pair);
      else pair.black = true;
    }
  }

  /** Heals the link. Connections black-holed by "drop" are closed so that clients reconnect. */
  unblock(): void {
    this.#blockMode = null;
    for (const pair of [...this.#pairs]) {
      if (pair.black) this.#closePair(pair);
    }
  }

  stats(): LinkProxyStats {
    return {
      accepted: this.#accepted,
      refused: this.#refused,
      open: this.#pairs.size,
      bytesForwarded: this.#bytesForwarded,
      bytesDropped: this.#bytesDropped,
    };
  }

  /** Stops listening, closes every connection and waits for all pipe tasks. Never throws. */
  async close(): Promise<void> {
    this.#closing = true;
    closeQuietly(this.#listener);
    for (const pair of [...this.#pairs]) this.#closePair(pair);
    // Closing a socket cancels its pending reads and writes (they reject with Interrupted or
    // BadResource), so every pipe ends promptly; the accept loop ends when accept() fails, and a
    // connect still in flight closes its new socket when it sees the pair closed. Loop in case a
    // task registered another one while we were waiting (none should once #closing is set).
    while (this.#tasks.size > 0) {
      await Promise.all([...this.#tasks]);
    }
  }

  // ---------------------------------------------------------------------------------------------

  /** Registers a background task; tasks never reject (each catches its own errors). */
  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.then(() => this.#tasks.delete(task));
  }

  async #acceptLoop(listener: Deno.TcpListener): Promise<void> {
    while (!this.#closing) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (this.#closing || isClosedResourceError(err)) return;
        // Transient accept failure (e.g. out of file descriptors): back off a little.
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      this.#handle(conn);
    }
  }

  #handle(client: Deno.TcpConn): void {
    this.#accepted++;
    if (this.#closing) {
      closeQuietly(client);
      return;
    }
    if (this.#blockMode === "reset") {
      this.#refused++;
      closeQuietly(client);
      return;
    }
    trySetNoDelay(client);
    const pair: Pair = { client, upstream: null, black: false, closed: false };
    this.#pairs.add(pair);
    if (this.#blockMode === "drop") {
      // Black hole from the start: never connect through, just swallow what the client sends.
      pair.black = true;
      this.#track(this.#pipe(pair, "up"));
      return;
    }
    this.#track(this.#connectAndPipe(pair));
  }

  async #connectAndPipe(pair: Pair): Promise<void> {
    let upstream: Deno.TcpConn;
    try {
      upstream = await Deno.connect({ hostname: this.host, port: this.targetPort });
    } catch {
      // Target down: the client sees its connection closed, as if the peer were unreachable.
      this.#closePair(pair);
      return;
    }
    if (pair.closed) {
      // Reset-blocked or closed while connecting.
      closeQuietly(upstream);
      return;
    }
    trySetNoDelay(upstream);
    pair.upstream = upstream;
    await Promise.all([this.#pipe(pair, "up"), this.#pipe(pair, "down")]);
  }

  /**
   * Copies bytes for one direction of a pair: "up" = client -> target, "down" = target -> client.
   * While the pair is black-holed, bytes are read and discarded. Never rejects.
   */
  async #pipe(pair: Pair, direction: "up" | "down"): Promise<void> {
    const src = direction === "up" ? pair.client : pair.upstream;
    if (src === null) return;
    const buf = new Uint8Array(BUFFER_SIZE);
    try {
      while (!pair.closed) {
        const n = await src.read(buf);
        if (n === null) break;
        if (n === 0) continue;
        const dst = direction === "up" ? pair.upstream : pair.client;
        if (pair.black || pair.closed || dst === null) {
          this.#bytesDropped += n;
          continue;
        }
        let off = 0;
        while (off < n) off += await dst.write(buf.subarray(off, n));
        this.#bytesForwarded += n;
      }
    } catch {
      // Peer reset, write to a closed socket, or our own close() interrupting the read/write:
      // all mean this direction is over.
    }
    if (direction === "down" && pair.black && !pair.closed) {
      // In a black hole the client must not learn that the target went away (a dropping network
      // would not tell it): release only the upstream side and keep swallowing client bytes.
      closeQuietly(pair.upstream);
      pair.upstream = null;
      return;
    }
    this.#closePair(pair);
  }

  /** Closes both sides of a pair; the pipes' pending reads/writes then fail and end. */
  #closePair(pair: Pair): void {
    if (pair.closed) return;
    pair.closed = true;
    this.#pairs.delete(pair);
    closeQuietly(pair.client);
    closeQuietly(pair.upstream);
  }
}

function trySetNoDelay(conn: Deno.TcpConn): void {
  try {
    // Forward small HTTP messages immediately instead of waiting on Nagle + delayed ACKs.
    conn.setNoDelay(true);
  } catch {
    // Socket already gone; the pipe will notice.
  }
}

/** One LinkProxy per ordered pair of nodes (from, to), with helpers for partitions. */
export class ProxyMesh {
  readonly #nodes = new Map<string, number>();
  readonly #links = new Map<string, LinkProxy>();
  readonly host = "127.0.0.1";

  /**
   * @param nodes the cluster's nodes and their REAL ports (where their servers listen).
   * @param portFor the port of the proxy that `from` uses to reach `to` (from !== to).
   */
  constructor(
    nodes: { id: string; port: number }[],
    portFor: (from: string, to: string) => number,
  ) {
    for (const { id, port } of nodes) {
      if (this.#nodes.has(id)) throw new Error(`ProxyMesh: duplicate node id ${id}`);
      this.#nodes.set(id, port);
    }
    for (const from of this.#nodes.keys()) {
      for (const [to, targetPort] of this.#nodes) {
        if (from === to) continue;
        const proxy = new LinkProxy({
          listenPort: portFor(from, to),
          targetPort,
          host: this.host,
          name: `${from}->${to}`,
        });
        this.#links.set(linkKey(from, to), proxy);
      }
    }
  }

  /** Starts every proxy. If one fails to bind, the ones already started are closed again. */
  start(): void {
    const started: LinkProxy[] = [];
    try {
      for (const proxy of this.#links.values()) {
        proxy.start();
        started.push(proxy);
      }
    } catch (err) {
      for (const proxy of started) void proxy.close();
      throw err;
    }
  }

  /** The ids of the nodes, in construction order. */
  get nodeIds(): string[] {
    return [...this.#nodes.keys()];
  }

  /** All proxies, one per directed link. */
  links(): LinkProxy[] {
    return [...this.#links.values()];
  }

  /** The proxy that `from` uses to reach `to`. */
  link(from: string, to: string): LinkProxy {
    this.#checkNode(from);
    this.#checkNode(to);
    const proxy = this.#links.get(linkKey(from, to));
    if (proxy === undefined) throw new Error(`ProxyMesh: no link from ${from} to itself`);
    return proxy;
  }

  /** The address `from` must use for `to`: the proxy's, or its own real address if from === to. */
  peerAddr(from: string, to: string): string {
    if (from === to) return `${this.host}:${this.#checkNode(from)}`;
    return `${this.host}:${this.link(from, to).listenPort}`;
  }

  /** Cuts the directed link from -> to only (requests from `from` to `to` and their answers). */
  cut(from: string, to: string, mode?: BlockMode): void {
    this.link(from, to).block(mode);
  }

  heal(from: string, to: string): void {
    this.link(from, to).unblock();
  }

  /** Cuts every link into and out of `id`. */
  isolate(id: string, mode?: BlockMode): void {
    this.#checkNode(id);
    for (const other of this.#nodes.keys()) {
      if (other === id) continue;
      this.cut(id, other, mode);
      this.cut(other, id, mode);
    }
  }

  /**
   * Cuts every link between nodes of different groups, in both directions. Additive: links inside
   * a group are not healed (call healAll() first for a fresh topology), and links of nodes that
   * appear in no group are left as they are.
   */
  partition(groups: string[][], mode?: BlockMode): void {
    const groupOf = new Map<string, number>();
    groups.forEach((group, index) => {
      for (const id of group) {
        this.#checkNode(id);
        if (groupOf.has(id)) throw new Error(`ProxyMesh: node ${id} is in two groups`);
        groupOf.set(id, index);
      }
    });
    for (const [from, fromGroup] of groupOf) {
      for (const [to, toGroup] of groupOf) {
        if (fromGroup !== toGroup) this.cut(from, to, mode);
      }
    }
  }

  healAll(): void {
    for (const proxy of this.#links.values()) proxy.unblock();
  }

  /** Closes every proxy; never throws. */
  async close(): Promise<void> {
    await Promise.all([...this.#links.values()].map((proxy) => proxy.close()));
  }

  #checkNode(id: string): number {
    const port = this.#nodes.get(id);
    if (port === undefined) throw new Error(`ProxyMesh: unknown node ${id}`);
    return port;
  }
}

function linkKey(from: string, to: string): string {
  return `${from}\u0000${to}`;
}
