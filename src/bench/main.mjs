// vfio-emu's benchmark harness (PERF.md), shipped in the package and run by `vfio-emu bench`
// (`npm run bench` builds first, then runs the same verb). It measures the registered figures
// (figures/index.mjs) against their baselines (W: identity domain in the same wasm; C / Ct:
// native/bench.c built with the machine's `cc -O2` at bench time; TS: a naive TypeScript
// translator), prints a table and a summary against the bars and goals and, with json, one
// JSON document in PERF.md's schema on stdout (the table then goes to stderr).
//
// Plain ESM, copied as it is into dist/bench/ by the build: it reaches the package's own
// modules by relative path from there (../index.js, ../wasm/core.js, ../worker.js) and
// build/core-bench.wasm from the package root, so an installed package runs it as a checkout does.
//
// Exit status (runBench's result): 0 when every judged bar holds (a figure that cannot be
// judged here, holds null, does not fail), 1 when at least one bar fails; a quick run judges
// nothing and gives 0. A harness failure throws (the CLI exits 3 then).
import { cpus, availableParallelism } from "node:os";
import { runFigure, table, verdicts, plannedTrials } from "./lib/harness.mjs";
import { startNative } from "./lib/native.mjs";
import { Progress } from "./lib/progress.mjs";
import { bootEnv, MiB } from "./figures/common.mjs";
import figures from "./figures/index.mjs";

/** The ids of the registered figures, in order. */
export const FIGURE_IDS = figures.map((f) => f.id);

/**
 * Expands an --only list ("T1,T5", ranges "T1-T4") into figure ids; throws a RangeError naming
 * what is not a figure.
 */
export function selectFigures(only) {
  const out = new Set();
  const num = (id) => Number(id.slice(1));
  for (const part of only.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^(T\d+)(?:-(T\d+))?$/.exec(part);
    if (!m) throw new RangeError(`--only: '${part}' is not a figure id (T1, T5, or a range T1-T4)`);
    if (!m[2]) {
      if (!FIGURE_IDS.includes(m[1])) throw new RangeError(`--only: no figure ${m[1]} (there are ${FIGURE_IDS.join(", ")})`);
      out.add(m[1]);
      continue;
    }
    const [a, b] = [num(m[1]), num(m[2])];
    if (a > b) throw new RangeError(`--only: '${part}' is an empty range`);
    const hit = FIGURE_IDS.filter((id) => num(id) >= a && num(id) <= b);
    if (hit.length === 0) throw new RangeError(`--only: no figure in ${part} (there are ${FIGURE_IDS.join(", ")})`);
    for (const id of hit) out.add(id);
  }
  if (out.size === 0) throw new RangeError("--only: no figure named");
  return out;
}

/**
 * Runs the bench. opts: { json, quick, only (a Set of ids, or null for all), stdout, stderr }.
 * Resolves to [exit status (see the header), the document in PERF.md's schema].
 */
export async function runBench({ json = false, quick = false, only = null, stdout = process.stdout, stderr = process.stderr } = {}) {
  const t0 = Date.now();
  const chosen = figures.filter((f) => !only || only.has(f.id));
  const [env, native] = await Promise.all([bootEnv(), startNative()]);
  const ctx = {
    env, native, quick,
    trials: quick ? 3 : 7,
    warmup: quick ? 1 : 2,
    targetMs: quick ? 3 : 25,
  };
  ctx.progress = new Progress(stderr, chosen.reduce((n, f) => n + plannedTrials(f, ctx), 0));
  if (!native.ok) ctx.progress.line(native.reason);
  const machine = { cMemcpyGBs: null, cTwoThreadScaling: null, node: process.version, cpus: availableParallelism?.() ?? cpus().length };
  let doc;
  try {
    if (native.ok) {
      ctx.progress.line("machine: C memcpy, 1 and 2 threads");
      const m = await native.cmd(`machine ${(quick ? 16 : 64) * MiB}`);
      machine.cMemcpyGBs = m.cMemcpyGBs;
      machine.cTwoThreadScaling = m.cTwoThreadScaling;
    }
    ctx.machine = machine;
    const out = [];
    for (const fig of chosen) out.push(await runFigure(fig, ctx));
    doc = { machine, figures: out };
  } finally {
    ctx.progress.end();
    native.ok && native.close();
  }

  const human = `${table(doc)}\n\n${verdicts(doc, quick)}\n\n${quick ? "quick run, " : ""}${((Date.now() - t0) / 1000).toFixed(1)} s`;
  // The JSON holds exactly PERF.md's fields.
  const strip = ({ title, seconds, goals, goalMet, ...f }) => f;
  const published = { machine: doc.machine, figures: doc.figures.map(strip) };
  if (json) {
    stderr.write(human + "\n");
    stdout.write(JSON.stringify(published, null, 2) + "\n");
  } else {
    stdout.write(human + "\n");
  }
  return [exitStatus(doc, quick), published];
}

/** 0 unless a full run has a bar that fails (holds false): then 1. */
export function exitStatus(doc, quick) {
  return !quick && doc.figures.some((f) => f.holds === false) ? 1 : 0;
}
