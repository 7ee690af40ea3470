/**
 * The core must stay deterministic: no I/O, clock, timers, real randomness or awaits in raft/
 * outside the driver (node.ts) and tests. This scans the source so a slip fails the build.
 */
import { assertEquals } from "@std/assert";

const FORBIDDEN = [
  /\bDeno\./,
  /\bfetch\(/,
  /\bDate\.now\b/,
  /\bnew Date\b/,
  /\bperformance\.now\b/,
  /\bMath\.random\b/,
  /\bsetTimeout\b/,
  /\bsetInterval\b/,
  /\bqueueMicrotask\b/,
  /\bawait\b/,
  /\basync\b/,
  /\bcrypto\./,
];

Deno.test("the Raft core does no I/O, reads no clock and draws no real randomness", async () => {
  const dir = new URL(".", import.meta.url);
  const offenders: string[] = [];
  for await (const f of Deno.readDir(dir)) {
    if (!f.name.endsWith(".ts") || f.name.endsWith("_test.ts") || f.name === "node.ts") continue;
    const text = await Deno.readTextFile(new URL(f.name, dir));
    const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    for (const re of FORBIDDEN) if (re.test(code)) offenders.push(`${f.name}: ${re.source}`);
  }
  assertEquals(offenders, []);
});
