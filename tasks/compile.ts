/**
 * `deno task compile [--output dist/kvnode] [--target <triple>]`: build a standalone node binary
 * with `deno compile` (the node's permissions: network, read and write). `deno compile` needs
 * Deno's runtime binary (denort), which it downloads from dl.deno.land unless DENORT_BIN points
 * at a local copy of the same version. Where neither works, this fails with one clear line,
 * never a stack trace.
 */
import { parseArgs } from "@std/cli/parse-args";
import { $ } from "zx";
import { PROJECT_ROOT } from "./_cluster.ts";

const USAGE = "Usage: deno task compile [--output dist/kvnode] [--target <target triple>]";

async function main(): Promise<number> {
  const a = parseArgs(Deno.args, {
    string: ["output", "target"],
    default: { output: "dist/kvnode" },
    unknown: (x: string) => {
      console.error(`error: unknown argument ${x}\n${USAGE}`);
      Deno.exit(2);
    },
  });
  const target = a.target ? ["--target", a.target] : [];
  const denort = Deno.env.get("DENORT_BIN");
  console.log(
    `compiling main.ts to ${a.output}` +
      (denort ? ` with DENORT_BIN=${denort}` : " (downloads denort)"),
  );
  const r = await $({
    cwd: PROJECT_ROOT,
    nothrow: true,
    quiet: true,
    env: { ...Deno.env.toObject(), NO_COLOR: "1" },
  })`
    ${Deno.execPath()} compile --allow-net --allow-read --allow-write ${target} --output ${a.output} main.ts`;
  if (r.exitCode === 0) {
    console.log(
      `built ${a.output}; run it as: ${a.output} --id n1 --listen 127.0.0.1:9101 ` +
        `--peers n1=127.0.0.1:9101,n2=127.0.0.1:9102,n3=127.0.0.1:9103 --data-dir data/n1`,
    );
    return 0;
  }
  const out = `${r.stdout}\n${r.stderr}`;
  if (denort && /could not find denort/i.test(out)) {
    console.error(
      `error: DENORT_BIN=${denort} does not exist; point it at a denort ${Deno.version.deno} binary`,
    );
  } else if (/dl\.deno\.land|denort|error sending request|dns error/i.test(out)) {
    console.error(
      `error: deno compile could not get its runtime (denort ${Deno.version.deno}): the download ` +
        `from dl.deno.land failed; set DENORT_BIN to a local denort binary of that version and retry`,
    );
  } else {
    const lines = out.trim().split("\n").filter((l) => l.trim() !== "");
    console.error(`error: deno compile failed: ${lines.slice(-3).join(" | ")}`);
  }
  return 1;
}

if (import.meta.main) Deno.exit(await main());
