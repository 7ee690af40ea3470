/** The Raft RPC HTTP client against a real Deno.serve: bodies, concurrency, failures, timeouts. */
import { assert, assertEquals, assertRejects } from "@std/assert";
import { HttpClientError, HttpPool } from "./http_client.ts";

function serve(handler: (req: Request) => Response | Promise<Response>) {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    handler,
  );
  return {
    port: server.addr.port,
    close: async () => {
      ac.abort();
      await server.finished;
    },
  };
}

Deno.test("posts bodies and reads Content-Length, chunked and empty responses over one pool", async () => {
  const s = serve(async (req) => {
    const body = new Uint8Array(await req.arrayBuffer());
    const path = new URL(req.url).pathname;
    if (path === "/empty") return new Response(null, { status: 204 });
    if (path === "/chunked") {
      return new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode("ab"));
            c.enqueue(new TextEncoder().encode("cd"));
            c.close();
          },
        }),
      );
    }
    return new Response(body.reverse(), { status: 200 });
  });
  const pool = new HttpPool("127.0.0.1", s.port, 2);
  try {
    const r = await pool.post("/echo", new Uint8Array([1, 2, 3]), "application/octet-stream", 2000);
    assertEquals([r.status, [...r.body]], [200, [3, 2, 1]]);
    assertEquals((await pool.post("/empty", new Uint8Array(), "x", 2000)).status, 204);
    const c = await pool.post("/chunked", new Uint8Array([0]), "x", 2000);
    assertEquals(new TextDecoder().decode(c.body), "abcd");
    const big = new Uint8Array(3 << 20).map((_, i) => i & 0xff);
    const rb = await pool.post("/echo", big, "x", 5000);
    assertEquals(rb.body.length, big.length);
    assertEquals(rb.body[0], big[big.length - 1]);
    // many concurrent requests share at most 2 connections, each gets its own answer
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => pool.post("/echo", new Uint8Array([i, 0]), "x", 5000)),
    );
    assertEquals(answers.map((a) => a.body[1]), Array.from({ length: 50 }, (_, i) => i));
  } finally {
    pool.close();
    await s.close();
  }
});

Deno.test("a refused connection or a silent server fails the request, and the pool recovers", async () => {
  const s = serve(async (req) => {
    const b = await req.text();
    if (b === "hang") await new Promise((r) => setTimeout(r, 1000));
    return new Response("ok");
  });
  const pool = new HttpPool("127.0.0.1", s.port, 1);
  try {
    await assertRejects(
      () => pool.post("/", new TextEncoder().encode("hang"), "x", 100),
      HttpClientError,
    );
    const r = await pool.post("/", new TextEncoder().encode("fine"), "x", 2000);
    assertEquals(new TextDecoder().decode(r.body), "ok");
  } finally {
    pool.close();
    await s.close();
  }
  const dead = new HttpPool("127.0.0.1", s.port, 1); // nothing listens there now
  try {
    const err = await assertRejects(() => dead.post("/", new Uint8Array(), "x", 1000));
    assert(err instanceof Error);
  } finally {
    dead.close();
  }
});
