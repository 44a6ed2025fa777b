#!/usr/bin/env node
// vfio-emu's benchmark harness (PERF.md): `npm run bench` builds, then runs this against dist/
// and build/core.wasm. It measures the registered figures (bench/figures/index.mjs) against
// their baselines (W: identity domain in the same wasm; C / Ct: bench/native/bench.c built with
// `cc -O2` here; TS: a naive TypeScript translator) and prints a table; with --json, stdout is
// one JSON document in PERF.md's schema (the table then goes to stderr).
//
//   node bench/run.mjs [--json] [--quick] [--only T1,T5]
//
// --quick: a reduced run for CI smoke checks (3 trials, short trials, one run per figure, no bar
// judged). Progress goes to stderr. The exit status is 0 unless the harness itself fails.
import { cpus, availableParallelism } from "node:os";
import { runFigure, table } from "./lib/harness.mjs";
import { startNative } from "./lib/native.mjs";
import { bootEnv, MiB } from "./figures/common.mjs";
import figures from "./figures/index.mjs";

const args = process.argv.slice(2);
const json = args.includes("--json");
const quick = args.includes("--quick");
const onlyArg = args.find((a) => a.startsWith("--only"));
const only = onlyArg ? (onlyArg.includes("=") ? onlyArg.split("=")[1] : args[args.indexOf(onlyArg) + 1]).split(",") : null;

const t0 = Date.now();
const [env, native] = await Promise.all([bootEnv(), startNative()]);
if (!native.ok) process.stderr.write(`[bench] ${native.reason}\n`);

const ctx = {
  env, native, quick,
  trials: quick ? 3 : 7,
  warmup: quick ? 1 : 2,
  targetMs: quick ? 3 : 25,
};

const machine = { cMemcpyGBs: null, cTwoThreadScaling: null, node: process.version, cpus: availableParallelism?.() ?? cpus().length };
let doc;
try {
  if (native.ok) {
    process.stderr.write("[bench] machine: C memcpy, 1 and 2 threads\n");
    const m = await native.cmd(`machine ${(quick ? 16 : 64) * MiB}`);
    machine.cMemcpyGBs = m.cMemcpyGBs;
    machine.cTwoThreadScaling = m.cTwoThreadScaling;
  }
  ctx.machine = machine;
  const out = [];
  for (const fig of figures) {
    if (only && !only.includes(fig.id)) continue;
    out.push(await runFigure(fig, ctx));
  }
  doc = { machine, figures: out };
} finally {
  native.ok && native.close();
}

const human = table(doc) + `\n\n${quick ? "quick run, " : ""}${((Date.now() - t0) / 1000).toFixed(1)} s`;
// The JSON holds exactly PERF.md's fields.
const strip = ({ title, seconds, ...f }) => f;
if (json) {
  process.stderr.write(human + "\n");
  process.stdout.write(JSON.stringify({ machine: doc.machine, figures: doc.figures.map(strip) }, null, 2) + "\n");
} else {
  console.log(human);
}
