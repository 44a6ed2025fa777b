// npm run fuzz -- [--seed N | --seeds 1,2,3] [--ops N] [--trace] [--budget N] [--no-minimise] [--skip kind,kind] [--calls] [--deep]
//                   [--replay file.json]
// Runs the raw-layer fuzzer; a failing seed prints its violation and a minimised operation list
// (also written to fuzz-failure-<seed>.json, which --replay runs again).

import { readFileSync, writeFileSync } from "node:fs";
import { generate, minimise, modeOf, run, signature, type Op } from "./fuzzer.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const has = (name: string) => process.argv.includes(`--${name}`);

function intArg(name: string, dflt: number): number {
  const v = arg(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`--${name} wants a whole number (got ${JSON.stringify(v)})`);
  return n;
}

export async function main(): Promise<number> {
  const nOps = intArg("ops", 20000);
  const budget = intArg("budget", 300);
  const trace = has("trace") ? (i: number, call: string, rc: number | string) => process.stdout.write(`${i}\t${call}\t${rc}\n`) : undefined;
  const replay = arg("replay");
  if (replay) {
    const { seed, ops } = JSON.parse(readFileSync(replay, "utf8")) as { seed: number; ops: Op[] };
    const r = await run(ops, { vfioContainer: modeOf(seed), trace });
    for (const v of r.violations) console.log(`violation at op ${v.index} (${v.op ? JSON.stringify(v.op) : "teardown"}): ${v.detail}`);
    console.log(`replay of ${replay}: ${r.ops} ops, ${r.violations.length ? "FAILED" : "clean"}`);
    return r.violations.length ? 1 : 0;
  }
  const seeds = (arg("seeds") ?? arg("seed") ?? "1").split(",").map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`bad seed ${JSON.stringify(s)}`);
    return n;
  });
  let total = 0, ms = 0, failed = 0;
  const calls = new Map<string, { ok: number; err: number }>();
  for (const seed of seeds) {
    const skip = new Set((arg("skip") ?? "").split(",").filter(Boolean));
    const ops = generate(seed, nOps).filter((op) => !skip.has(op.k));
    const r = await run(ops, { vfioContainer: modeOf(seed), trace, deep: has("deep") });
    total += r.ops;
    for (const [name, c] of r.calls) {
      const t = calls.get(name) ?? { ok: 0, err: 0 };
      t.ok += c.ok;
      t.err += c.err;
      calls.set(name, t);
    }
    ms += r.ms;
    const rate = Math.round(r.ops / (r.ms / 1000));
    if (!r.violations.length) {
      console.log(`seed ${seed} (${modeOf(seed)}): ${r.ops} ops, ${rate} ops/s, clean`);
      continue;
    }
    failed++;
    const v = r.violations[0];
    console.log(`seed ${seed} (${modeOf(seed)}): violation at op ${v.index} (${v.op ? JSON.stringify(v.op) : "teardown"}): ${v.detail}`);
    if (v.stack) console.log(`  at ${v.stack}`);
    if (has("no-minimise")) continue;
    const min = await minimise(ops, signature(v), budget, { vfioContainer: modeOf(seed) });
    const file = `fuzz-failure-${seed}.json`;
    writeFileSync(file, JSON.stringify({ seed, ops: min }, null, 1));
    console.log(`  minimised to ${min.length} ops (written to ${file}; npm run fuzz -- --replay ${file}):`);
    for (const op of min) console.log(`    ${JSON.stringify(op)}`);
  }
  if (has("calls")) {
    // What the run reached: per call, how often it succeeded and how often it failed.
    for (const [name, c] of [...calls].sort((a, b) => a[0].localeCompare(b[0]))) console.log(`  ${name.padEnd(40)} ${String(c.ok).padStart(7)} ok ${String(c.err).padStart(7)} err`);
  }
  console.log(`fuzz: ${total} ops over ${seeds.length} seed(s) in ${(ms / 1000).toFixed(1)} s (${Math.round(total / (ms / 1000))} ops/s), ${failed} failing`);
  return failed ? 1 : 0;
}
