// Tests for tasks/link_proxy.ts. Run with: deno test --allow-net=127.0.0.1 tasks/link_proxy_test.ts
// All tests run with Deno's default op and resource sanitizers: every proxy, server, socket and
// HTTP client a test opens is closed before it ends.

import { assert, assertEquals, assertRejects } from "@std/assert";
import { LinkProxy, ProxyMesh } from "./link_proxy.ts";

const HOST = "127.0.0.1";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// Helpers

/** Picks `n` distinct free ports by binding them all on port 0 at once, then releasing them. */
function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname: HOST, port: 0 }));
  const ports = listeners.map((l) => l.addr.port);
  for (const l of listeners) l.close();
  return ports;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await delay(5);
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Reads exactly `n` bytes (fails on EOF). */
async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const got = await conn.read(out.subarray(off));
    if (got === null) throw new Error(`EOF after ${off} of ${n} bytes`);
    off += got;
  }
  return out;
}

/** Resolves "closed" if the connection ends (EOF or reset) within `ms`, else "open". */
async function seesClose(conn: Deno.Conn, ms = 1000): Promise<"closed" | "open" | "data"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"open">((resolve) => {
    timer = setTimeout(() => resolve("open"), ms);
  });
  const read = (async () => {
    try {
      const n = await conn.read(new Uint8Array(1024));
      return n === null ? "closed" : "data";
    } catch (err) {
      // Peer reset, or our own close() below interrupting the read.
      return err instanceof Deno.errors.Interrupted || err instanceof Deno.errors.BadResource
        ? "interrupted"
        : "closed";
    }
  })();
  const first = await Promise.race([read, timeout]);
  clearTimeout(timer);
  if (first === "open") {
    conn.close(); // interrupts the pending read so that no op leaks
    await read;
    return "open";
  }
  return first === "interrupted" ? "open" : first;
}

/** A TCP echo server on an ephemeral port. */
class EchoServer {
  readonly listener = Deno.listen({ hostname: HOST, port: 0 });
  readonly conns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #acceptTask: Promise<void>;

  constructor() {
    this.#acceptTask = this.#acceptLoop();
  }

  get port(): number {
    return this.listener.addr.port;
  }

  async #acceptLoop(): Promise<void> {
    try {
      for await (const conn of this.listener) {
        this.conns.add(conn);
        const task = this.#echo(conn);
        this.#tasks.add(task);
        task.then(() => this.#tasks.delete(task));
      }
    } catch {
      // listener closed
    }
  }

  async #echo(conn: Deno.Conn): Promise<void> {
    const buf = new Uint8Array(16 * 1024);
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        await writeAll(conn, buf.subarray(0, n));
      }
    } catch {
      // reset or closed by dropConnections()/close()
    }
    this.conns.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }

  /** Closes every accepted connection from the server side. */
  dropConnections(): void {
    for (const conn of this.conns) {
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  }

  async close(): Promise<void> {
    this.listener.close();
    this.dropConnections();
    await this.#acceptTask;
    await Promise.all([...this.#tasks]);
  }
}

function serveHttp(
  handler: (req: Request) => Response | Promise<Response>,
): { server: Deno.HttpServer<Deno.NetAddr>; port: number } {
  const server = Deno.serve({ hostname: HOST, port: 0, onListen() {} }, handler);
  return { server, port: server.addr.port };
}

type FetchResult = { ok: true; status: number; text: string; ms: number } | {
  ok: false;
  error: Error;
  ms: number;
};

/** fetch that reports success or failure (and how long it took) instead of throwing. */
async function tryFetch(
  client: Deno.HttpClient,
  url: string,
  init: RequestInit = {},
): Promise<FetchResult> {
  const t0 = performance.now();
  try {
    const res = await fetch(url, { ...init, client });
    const text = await res.text();
    return { ok: true, status: res.status, text, ms: performance.now() - t0 };
  } catch (err) {
    return { ok: false, error: err as Error, ms: performance.now() - t0 };
  }
}

/** The error of a fetch that must have failed. */
function failure(r: FetchResult, what: string): Error {
  if (r.ok) {
    throw new Error(`${what}: expected a failure, got ${r.status} ${JSON.stringify(r.text)}`);
  }
  return r.error;
}

async function fetchText(client: Deno.HttpClient, url: string, init?: RequestInit) {
  const r = await tryFetch(client, url, init);
  if (!r.ok) throw new Error(`fetch ${url} failed: ${r.error}`);
  assertEquals(r.status, 200);
  return r.text;
}

// ---------------------------------------------------------------------------------------------
// Tests

Deno.test("bytes pass through both ways, and a closed side closes the other side", async () => {
  const echo = new EchoServer();
  const proxy = new LinkProxy({ listenPort: 0, targetPort: echo.port, name: "echo" });
  proxy.start();
  assert(proxy.listenPort !== 0, "listenPort is the assigned port after start");
  try {
    const conn = await Deno.connect({ hostname: HOST, port: proxy.listenPort });
    await writeAll(conn, encoder.encode("hello"));
    assertEquals(decoder.decode(await readExactly(conn, 5)), "hello");

    // 4 MiB in both directions at once: larger than any socket buffer, so the pipe must keep
    // reading while writing and write fully.
    const big = new Uint8Array(4 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 11)) & 0xff;
    const writing = writeAll(conn, big);
    const back = await readExactly(conn, big.length);
    await writing;
    assertEquals(back.length, big.length);
    assert(back.every((b, i) => b === big[i]), "echoed bytes are identical");

    // Client closes -> the proxy closes its upstream connection -> the echo server sees EOF.
    assertEquals(echo.conns.size, 1);
    conn.close();
    await waitFor("echo server connection closed", () => echo.conns.size === 0);
    await waitFor("proxy pair released", () => proxy.stats().open === 0);
    const total = 5 + big.length;
    assertEquals(proxy.stats().bytesForwarded, 2 * total);

    // Server closes -> the proxy closes the client connection -> the client sees EOF.
    const conn2 = await Deno.connect({ hostname: HOST, port: proxy.listenPort });
    await writeAll(conn2, encoder.encode("x"));
    assertEquals(decoder.decode(await readExactly(conn2, 1)), "x");
    echo.dropConnections();
    assertEquals(await seesClose(conn2), "closed");
    conn2.close();
    await waitFor("proxy pair released", () => proxy.stats().open === 0);
    assertEquals(proxy.stats().accepted, 2);
    assertEquals(proxy.stats().refused, 0);
  } finally {
    await proxy.close();
    await echo.close();
  }
});

Deno.test("an HTTP server behind the proxy answers fetch: sequential keep-alive and concurrent", async () => {
  let count = 0;
  const { server, port } = serveHttp(async (req) => {
    count++;
    if (req.method === "POST") return new Response(await req.arrayBuffer());
    return new Response(`ok ${new URL(req.url).searchParams.get("i")}`);
  });
  const proxy = new LinkProxy({ listenPort: 0, targetPort: port });
  proxy.start();
  const client = Deno.createHttpClient({});
  const base = `http://${HOST}:${proxy.listenPort}`;
  try {
    const t0 = performance.now();
    for (let i = 0; i < 500; i++) {
      assertEquals(await fetchText(client, `${base}/?i=${i}`), `ok ${i}`);
    }
    const ms = performance.now() - t0;
    // Keep-alive: the sequential requests share one connection through the proxy.
    assert(proxy.stats().accepted <= 2, `expected keep-alive reuse, got ${proxy.stats().accepted}`);
    assert(ms < 5000, `500 sequential requests took ${ms.toFixed(0)} ms`);

    // Concurrent requests with bodies in both directions (several connections at once).
    const bodies = Array.from({ length: 40 }, (_, i) => "x".repeat(1000 * i) + `#${i}`);
    const answers = await Promise.all(
      bodies.map((body) => fetchText(client, `${base}/echo`, { method: "POST", body })),
    );
    assertEquals(answers, bodies);
    assertEquals(count, 540);
    assert(proxy.stats().accepted > 1, "concurrent requests opened more connections");
  } finally {
    client.close();
    await proxy.close();
    await server.shutdown();
  }
});

Deno.test("reset block closes in-flight keep-alive connections, new fetches fail fast, unblock heals", async () => {
  const entered = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  const { server, port } = serveHttp(async (req) => {
    if (new URL(req.url).pathname === "/slow") {
      entered.resolve();
      await release.promise;
    }
    return new Response("ok");
  });
  const proxy = new LinkProxy({ listenPort: 0, targetPort: port });
  proxy.start();
  const client = Deno.createHttpClient({});
  const base = `http://${HOST}:${proxy.listenPort}`;
  let raw: Deno.TcpConn | null = null;
  try {
    assertEquals(await fetchText(client, `${base}/`), "ok");

    // A raw keep-alive HTTP/1.1 connection that has completed one exchange and stays open.
    raw = await Deno.connect({ hostname: HOST, port: proxy.listenPort });
    await writeAll(raw, encoder.encode(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`));
    let head = "";
    while (!head.endsWith("\r\n\r\nok")) {
      const buf = new Uint8Array(4096);
      const n = await raw.read(buf);
      if (n === null) throw new Error("EOF before the response");
      head += decoder.decode(buf.subarray(0, n));
    }
    assert(head.startsWith("HTTP/1.1 200"), head);

    // An in-flight request, waiting inside the server handler.
    const slow = tryFetch(client, `${base}/slow`);
    await entered.promise;
    // The fetch client's keep-alive connection (now carrying /slow) and the raw one.
    assertEquals(proxy.stats().open, 2);

    proxy.block("reset");
    assert(proxy.blocked);
    assertEquals(proxy.stats().open, 0);
    const slowResult = await slow;
    failure(slowResult, "the in-flight request");
    assert(slowResult.ms < 1000, "the in-flight request failed as soon as the link was cut");
    assertEquals(await seesClose(raw), "closed");

    // New requests fail fast with a connection error.
    for (let i = 0; i < 3; i++) {
      const r = await tryFetch(client, `${base}/`);
      const error = failure(r, "fetch through a reset-blocked link");
      assert(error instanceof TypeError, `connection error, got ${error}`);
      assert(r.ms < 1000, `failed fast (${r.ms.toFixed(0)} ms)`);
    }
    assert(proxy.stats().refused >= 1, "new connections were refused");
    assertEquals(proxy.stats().open, 0);

    proxy.unblock();
    assert(!proxy.blocked);
    assertEquals(await fetchText(client, `${base}/`), "ok");
    assertEquals(await fetchText(client, `${base}/`), "ok");
  } finally {
    raw?.close();
    release.resolve();
    client.close();
    await proxy.close();
    await server.shutdown();
  }
});

Deno.test("drop block makes fetches time out without a response, unblock heals with a new connection", async () => {
  let served = 0;
  const { server, port } = serveHttp(() => {
    served++;
    return new Response("ok");
  });
  const proxy = new LinkProxy({ listenPort: 0, targetPort: port });
  proxy.start();
  const client = Deno.createHttpClient({});
  const fresh = Deno.createHttpClient({});
  const base = `http://${HOST}:${proxy.listenPort}`;
  let raw: Deno.TcpConn | null = null;
  try {
    assertEquals(await fetchText(client, `${base}/`), "ok");
    assertEquals(served, 1);

    proxy.block("drop");
    assert(proxy.blocked);
    assertEquals(proxy.stats().open, 1, "the keep-alive connection stays open (black hole)");

    // The existing keep-alive connection: the request vanishes, the fetch times out.
    const r1 = await tryFetch(client, `${base}/`, { signal: AbortSignal.timeout(300) });
    assertEquals(failure(r1, "fetch through a black hole").name, "TimeoutError");
    assert(r1.ms >= 250, `waited for the timeout (${r1.ms.toFixed(0)} ms)`);

    // A new connection is accepted but never connected through: timeout as well.
    const r2 = await tryFetch(fresh, `${base}/`, { signal: AbortSignal.timeout(300) });
    assertEquals(failure(r2, "new connection through a black hole").name, "TimeoutError");

    // At the TCP level: connect succeeds, the bytes disappear, nothing comes back, no EOF.
    raw = await Deno.connect({ hostname: HOST, port: proxy.listenPort });
    await writeAll(raw, encoder.encode(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`));
    assertEquals(await seesClose(raw, 300), "open");
    raw = null; // seesClose closed it

    assertEquals(served, 1, "no request reached the server while dropped");
    assert(proxy.stats().bytesDropped > 0);
    assertEquals(proxy.stats().refused, 0);

    const acceptedBefore = proxy.stats().accepted;
    proxy.unblock();
    assert(!proxy.blocked);
    assertEquals(proxy.stats().open, 0, "black-holed connections are closed on unblock");
    assertEquals(await fetchText(client, `${base}/`), "ok");
    assertEquals(await fetchText(fresh, `${base}/`), "ok");
    assert(proxy.stats().accepted > acceptedBefore, "healed fetches use new connections");
    assertEquals(served, 3);
  } finally {
    raw?.close();
    client.close();
    fresh.close();
    await proxy.close();
    await server.shutdown();
  }
});

Deno.test("ProxyMesh: partitions, asymmetric cuts, isolation and healAll", async () => {
  const ids = ["a", "b", "c"];
  const servers = ids.map((id) => serveHttp(() => new Response(id)));
  const nodes = ids.map((id, i) => ({ id, port: servers[i].port }));
  const pairs = ids.flatMap((from) => ids.filter((to) => to !== from).map((to) => `${from}>${to}`));
  const ports = freePorts(pairs.length);
  const portOf = new Map(pairs.map((p, i) => [p, ports[i]]));
  const mesh = new ProxyMesh(nodes, (from, to) => portOf.get(`${from}>${to}`)!);
  // One HTTP client per fake node, as each Raft node has its own.
  const clients = new Map(ids.map((id) => [id, Deno.createHttpClient({})]));
  mesh.start();

  const reach = async (from: string, to: string): Promise<boolean> => {
    const r = await tryFetch(clients.get(from)!, `http://${mesh.peerAddr(from, to)}/`);
    if (!r.ok) {
      assert(r.ms < 1000, `${from}->${to} failed fast (${r.ms.toFixed(0)} ms)`);
      return false;
    }
    assertEquals(r.text, to);
    return true;
  };
  /** Checks every directed link; `down` lists the links expected to fail, as "from>to". */
  const expectReach = async (down: string[]) => {
    for (const p of pairs) {
      const [from, to] = p.split(">");
      assertEquals(await reach(from, to), !down.includes(p), `link ${from}->${to}`);
    }
  };

  try {
    assertEquals(mesh.peerAddr("a", "b"), `${HOST}:${portOf.get("a>b")}`);
    assertEquals(mesh.peerAddr("b", "b"), `${HOST}:${servers[1].port}`);
    assertEquals(mesh.link("c", "a").listenPort, portOf.get("c>a"));
    assertEquals(mesh.link("c", "a").name, "c->a");
    await expectReach([]);

    mesh.partition([["a"], ["b", "c"]]);
    await expectReach(["a>b", "a>c", "b>a", "c>a"]);
    mesh.healAll();
    await expectReach([]);

    // Asymmetric: a's requests to b fail, b's requests to a still work.
    mesh.cut("a", "b");
    await expectReach(["a>b"]);
    mesh.heal("a", "b");
    await expectReach([]);

    mesh.isolate("c");
    await expectReach(["a>c", "b>c", "c>a", "c>b"]);
    mesh.healAll();
    await expectReach([]);
  } finally {
    for (const c of clients.values()) c.close();
    await mesh.close();
    await Promise.all(servers.map((s) => s.server.shutdown()));
  }
});

Deno.test("close() releases every connection and the listener, and is idempotent", async () => {
  const echo = new EchoServer();
  const proxy = new LinkProxy({ listenPort: 0, targetPort: echo.port });
  proxy.start();
  const port = proxy.listenPort;
  const conns: Deno.TcpConn[] = [];
  try {
    // Forwarded connections with pending reads on both sides of the proxy.
    for (let i = 0; i < 3; i++) {
      const conn = await Deno.connect({ hostname: HOST, port });
      conns.push(conn);
      await writeAll(conn, encoder.encode("ping"));
      assertEquals(decoder.decode(await readExactly(conn, 4)), "ping");
    }
    // Black-holed connections, old and new, with bytes swallowed.
    proxy.block("drop");
    const late = await Deno.connect({ hostname: HOST, port });
    conns.push(late);
    await writeAll(late, encoder.encode("lost"));
    await waitFor("black-holed connection accepted", () => proxy.stats().open === 4);
    await writeAll(conns[0], encoder.encode("lost too"));

    await proxy.close();
    assertEquals(proxy.stats().open, 0);
    for (const conn of conns) assertEquals(await seesClose(conn), "closed");
    await waitFor("echo server connections closed", () => echo.conns.size === 0);
    await assertRejects(
      () => Deno.connect({ hostname: HOST, port }),
      Deno.errors.ConnectionRefused,
    );

    await proxy.close(); // second close is a no-op
    await new LinkProxy({ listenPort: 0, targetPort: echo.port }).close(); // never started
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // already closed by seesClose
      }
    }
    await proxy.close();
    await echo.close();
  }
});

Deno.test("a connection through a proxy whose target is down is closed, not left hanging", async () => {
  const [deadPort] = freePorts(1);
  const proxy = new LinkProxy({ listenPort: 0, targetPort: deadPort });
  proxy.start();
  try {
    const conn = await Deno.connect({ hostname: HOST, port: proxy.listenPort });
    assertEquals(await seesClose(conn), "closed");
    conn.close();
    await waitFor("pair released", () => proxy.stats().open === 0);
  } finally {
    await proxy.close();
  }
});
