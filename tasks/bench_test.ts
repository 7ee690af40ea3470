/**
 * The pure parts of `deno task bench`: argument validation, the workload plan, latency
 * statistics, /proc parsing, HTTP response framing of the raw client, and the report rendering.
 * No processes, no network, no files.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import {
  commandLine,
  type Config,
  coresOf,
  ErrorTally,
  label,
  machineCores,
  makeValue,
  parseConfig,
  parseCpuLine,
  parseResponseHead,
  parseStatTicks,
  parseVmRssKiB,
  percentile,
  plan,
  type ProcSample,
  readKey,
  renderErrors,
  renderMarkdown,
  renderTable,
  type Report,
  request,
  Samples,
  summarize,
  type WorkloadResult,
} from "./bench.ts";

const encode = (s: string) => new TextEncoder().encode(s);

Deno.test("parseConfig: the seed's positional counts, defaults for every flag", () => {
  assertEquals(parseConfig([]), {
    writes: 300,
    reads: 300,
    clients: [16, 64],
    durationS: 5,
    valueBytes: 100,
    warmupS: 2,
    keyspace: 10000,
    basePort: 9401,
    http: "raw",
    quietWaitS: 30,
    keep: false,
  });
  const args = ["50", "70", "--clients", "1,8", "--duration", "0.5", "--keep"];
  const c = parseConfig(args) as Config;
  assertEquals([c.writes, c.reads, c.clients, c.durationS, c.keep], [50, 70, [1, 8], 0.5, true]);
  assertEquals(parseConfig(["--help"]), "help");
  assertEquals((parseConfig(["--clients", "none"]) as Config).clients, []);
  assertEquals((parseConfig(["--clients="]) as Config).clients, []);
});

Deno.test("parseConfig: rejects out-of-range, non-integer and unknown arguments by name", () => {
  const bad: [string[], RegExp][] = [
    [["many"], /writes must be a number/],
    [["-1"], /unknown flag -1/],
    [["10", "1.5"], /reads must be an integer/],
    [["1", "2", "3"], /at most 2 arguments/],
    [["--clients", "16,0"], /--clients/],
    [["--clients", "2000"], /--clients/],
    [["--duration", "61"], /--duration/],
    [["--duration", "x"], /--duration/],
    [["--value-size", "0"], /--value-size/],
    [["--base-port", "80"], /--base-port/],
    [["--http", "curl"], /--http must be raw or fetch/],
    [["--bogus", "1"], /unknown flag --bogus/],
  ];
  for (const [args, msg] of bad) {
    const err = assertThrows(() => parseConfig(args), RangeError);
    assertMatch((err as Error).message, msg);
  }
});

Deno.test("plan: sequential write, read and stale read, then the three per client count", () => {
  const c = parseConfig(["300", "200", "--clients", "16,64"]) as Config;
  const p = plan(c);
  assertEquals(p.map((w) => [w.op, w.clients, w.count ?? w.durationS]), [
    ["write", 1, 300],
    ["read", 1, 200],
    ["stale-read", 1, 200],
    ["write", 16, 5],
    ["read", 16, 5],
    ["stale-read", 16, 5],
    ["write", 64, 5],
    ["read", 64, 5],
    ["stale-read", 64, 5],
  ]);
  assertEquals(label(p[0]), "write, sequential");
  assertEquals(label(p[7]), "read (linearizable), 64 clients");
  assertEquals(plan(parseConfig(["0", "0", "--clients", "none"]) as Config), []);
});

Deno.test("keys and values have the sizes the workload promises", () => {
  assertEquals(readKey(42), "r000000000000042");
  assertEquals(readKey(42).length, 16);
  assertEquals(makeValue(100).length, 100);
  assertEquals(makeValue(1), ".");
  const w = { valueJson: JSON.stringify(makeValue(10)), valueBytes: 10, keyspace: 5 };
  const put = request("write", "w1-0-7", w);
  assertEquals(put.method, "PUT");
  assertEquals(JSON.parse(put.body!), { key: "w1-0-7", value: makeValue(10) });
  const get = request("read", "unused", w);
  assertMatch(get.path, /^\/kv\/get\?key=r0{14}[0-4]$/);
  assertEquals(get.minBodyBytes, 10);
  assertMatch(request("stale-read", "unused", w).path, /&stale=true$/);
});

Deno.test("percentile: nearest rank on sorted data; NaN when empty", () => {
  const xs = Float64Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
  assertEquals(percentile(xs, 50), 50);
  assertEquals(percentile(xs, 99), 99);
  assertEquals(percentile(xs, 100), 100);
  assertEquals(percentile(xs, 0.001), 1);
  assertEquals(percentile([7], 99), 7);
  assertEquals(percentile([1, 2, 3, 4], 50), 2);
  assert(Number.isNaN(percentile([], 50)));
});

Deno.test("Samples grows past its first buffer and sorts numerically", () => {
  const s = new Samples();
  for (let i = 10_000; i > 0; i--) s.push(i / 10); // 1000.0 .. 0.1, more than 4096 entries
  assertEquals(s.length, 10_000);
  const sorted = s.sorted();
  assertEquals([sorted[0], sorted[9_999]], [0.1, 1000]);
  const sum = summarize(sorted)!;
  assertEquals([sum.p50Ms, sum.p99Ms, sum.maxMs], [500, 990, 1000]);
  assert(Math.abs(sum.meanMs - 500.05) < 1e-9);
  assertEquals(summarize(new Float64Array()), null);
});

Deno.test("ErrorTally counts every error but keeps a bounded set of distinct messages", () => {
  const t = new ErrorTally();
  for (let i = 0; i < 5; i++) t.add("HTTP 503: busy");
  for (let i = 0; i < 20; i++) t.add(`distinct ${i}`);
  t.add("x".repeat(500));
  assertEquals(t.count, 26);
  const s = t.samples();
  assertEquals(s[0], { message: "HTTP 503: busy", count: 5 });
  assert(s.length <= 8);
  assert(s.every((e) => e.message.length <= 160));
});

Deno.test("/proc parsing: utime+stime past a command name with spaces, VmRSS, machine busy", () => {
  const stat = "4242 (deno worker) S 1 4242 4242 0 -1 4194560 100 0 0 0 " +
    "250 31 0 0 20 0 9 0 1000 123456 789 18446744073709551615";
  assertEquals(parseStatTicks(stat), 281);
  assertThrows(() => parseStatTicks("garbage"), RangeError);
  assertEquals(parseVmRssKiB("Name:\tdeno\nVmRSS:\t  102400 kB\nThreads: 9\n"), 102400);
  assertEquals(parseVmRssKiB("Name:\tdeno\nState:\tZ (zombie)\n"), null);
  // user nice system idle iowait irq softirq steal guest guest_nice
  assertEquals(parseCpuLine("cpu  100 5 50 1000 20 1 2 3 7 0"), { busy: 161, total: 1181 });
});

Deno.test("coresOf: ticks over wall time, NaN for short windows and vanished processes", () => {
  const sample = (atMs: number, ticks: number, busy: number): ProcSample => ({
    atMs,
    ticks: new Map([[7, ticks]]),
    rssKiB: new Map(),
    machineBusyTicks: busy,
  });
  const a = sample(0, 1000, 5000), b = sample(2000, 1150, 5300);
  assertEquals(coresOf(7, a, b, 100), 0.75);
  assertEquals(machineCores(a, b, 100), 1.5);
  assert(Number.isNaN(coresOf(8, a, b, 100)));
  assert(Number.isNaN(coresOf(7, a, sample(100, 1010, 5010), 100)));
});

Deno.test("parseResponseHead: Content-Length framing, waits for the head, refuses chunked", () => {
  const r = encode(
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 13\r\n\r\n",
  );
  const body = encode(`{"key":"a"}\r\n`);
  const buf = new Uint8Array(r.length + body.length);
  buf.set(r);
  buf.set(body, r.length);
  assertEquals(parseResponseHead(buf, r.length - 1), null);
  assertEquals(parseResponseHead(buf, buf.length), {
    status: 200,
    bodyStart: r.length,
    contentLength: 13,
    close: false,
  });
  const closing = encode(
    "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
  );
  assertEquals(parseResponseHead(closing, closing.length)?.close, true);
  assertEquals(parseResponseHead(closing, closing.length)?.status, 503);
  const chunked = encode("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
  assertThrows(() => parseResponseHead(chunked, chunked.length), Error, "transfer-encoding");
  const noLength = encode("HTTP/1.1 200 OK\r\n\r\n");
  assertThrows(() => parseResponseHead(noLength, noLength.length), Error, "Content-Length");
  const junk = encode("SSH-2.0-OpenSSH\r\n\r\n");
  assertThrows(() => parseResponseHead(junk, junk.length), Error, "malformed status line");
  const huge = new Uint8Array(20_000).fill(65);
  assertThrows(() => parseResponseHead(huge, huge.length), Error, "response head over");
});

function result(over: Partial<WorkloadResult> = {}): WorkloadResult {
  return {
    label: "write, 16 clients",
    op: "write",
    clients: 16,
    bound: "5 s",
    ops: 31834,
    errors: 0,
    errorSamples: [],
    seconds: 5,
    opsPerS: 6366.8,
    latency: { meanMs: 2.5, p50Ms: 1.234, p99Ms: 31.32, maxMs: 140.2 },
    cpuCores: { n1: 0.671, n2: 0.24, n3: NaN },
    clientCpuCores: 0.09,
    otherCpuCores: 0.01,
    rssMiB: { n1: 120.4, n2: 66, n3: 65.6 },
    leaderStable: true,
    ...over,
  };
}

Deno.test("renderTable: one row per workload, leader marked, unmeasured values as '-'", () => {
  const t = renderTable([result(), result({ ops: 0, latency: null })], ["n1", "n2", "n3"], "n1");
  const lines = t.split("\n");
  assertEquals(lines.length, 4);
  assertMatch(lines[0], /\| CPU n1\* \| CPU n2 \| CPU n3 \| CPU client \| CPU other \|/);
  assertMatch(lines[0], /RSS MiB n1\*\/n2\/n3 \|$/);
  assertEquals(lines[1].split("|").length, lines[0].split("|").length);
  assertEquals(
    lines[2],
    "| write, 16 clients | 5 s | 31,834 | 0 | 6,367 | 2.50 | 1.23 | 31.3 | 140 | 0.67 | 0.24 | - " +
      "| 0.09 | 0.01 | 120/66/66 |",
  );
  assertMatch(lines[3], /\| 0 \| 0 \| 6,367 \| - \| - \| - \| - \|/);
});

Deno.test("renderErrors: every distinct message with its count, and leader changes", () => {
  assertEquals(renderErrors([result()]), "No errors.");
  const r = result({
    errors: 4,
    errorSamples: [{ message: "HTTP 503 on PUT /kv/put: busy", count: 4 }],
    leaderStable: false,
  });
  assertEquals(
    renderErrors([r]),
    "- write, 16 clients: 4 x HTTP 503 on PUT /kv/put: busy\n" +
      "- write, 16 clients: the leader changed during the run",
  );
});

Deno.test("renderMarkdown: date, machine, table, the command and how to read it", () => {
  const report: Report = {
    generatedAt: "2026-11-26T10:00:00Z",
    command: "deno task bench 300 300",
    config: parseConfig(["300", "300"]) as Config,
    wallSeconds: 71.4,
    ticksPerS: 100,
    machine: {
      cpus: "2",
      cpuModel: "Intel(R) Xeon(R) Processor",
      memory: "23.6 GiB",
      kernel: "6.18.44",
      deno: "deno 2.9.6",
      dataDir: "/w/.cluster/bench/data",
      disk: "/dev/vda, ext4, 252G total, 80G free, mounted on /",
      mount: "rw,relatime,discard",
      backgroundBusyPct: 3,
      quietWaitedS: 0,
    },
    cluster: {
      nodes: ["n1", "n2", "n3"].map((id, i) => ({
        id,
        addr: `127.0.0.1:${9401 + i}`,
        pid: 100 + i,
      })),
      leaderId: "n2",
      term: 1,
      electionMs: 512,
      dataDirBytes: { n1: 5e6, n2: 5.1e6, n3: 5e6 },
    },
    preload: { keys: 10000, seconds: 1.6, opsPerS: 6250, errors: 0 },
    warmup: { seconds: 2, ops: 9000, errors: 0 },
    workloads: [result()],
    failures: [],
  };
  const md = renderMarkdown(report);
  for (
    const want of [
      "Generated 2026-11-26T10:00:00Z (UTC) by `deno task bench 300 300` in 71 s; every",
      "every workload ran clean.",
      "- CPU: 2 cores (nproc), Intel(R) Xeon(R) Processor",
      "- Memory: 23.6 GiB",
      "- Kernel: 6.18.44",
      "/dev/vda, ext4",
      "`rw,relatime,discard`",
      "Leader **n2** (term 1)",
      "10,000 keys of 100 B",
      "| write, 16 clients | 5 s | 31,834 |",
      "```\ndeno task bench 300 300\n```",
      "**Closed loop**",
      "**One machine**",
      "10 ms ticks",
    ]
  ) assert(md.includes(want), `missing ${JSON.stringify(want)} in\n${md}`);
  const failed = renderMarkdown({ ...report, failures: ["write, 16 clients: 9 errors"] });
  assert(failed.includes("**FAILED**: write, 16 clients: 9 errors."));
  assert(md.split("\n").every((l) => !/\bNaN\b|undefined/.test(l)), md);
});

Deno.test("commandLine: the command as typed, quoted only where a shell needs it", () => {
  assertEquals(commandLine(["300", "300"]), "deno task bench 300 300");
  assertEquals(
    commandLine(["--clients", "16,64", "--clients", "", "it's"]),
    `deno task bench --clients 16,64 --clients '' 'it'\\''s'`,
  );
});
