// T17: what the data-plane counters (IOTLB last hits / hits / misses, walks, faults:
// assembly/stats.ts) cost when switched on. The two shipped builds, build/core.wasm and
// build/core-stats.wasm (asc --target stats, IOMMU_STATS defined), are instantiated over the
// bench's own shared memory, so both run T1's workload (translated DMA_OP_COPY of 4-64 KiB
// descriptors, hot) on the same descriptors, domain and bytes. Neither carries the benchmark's
// loops (those are build/core-bench.wasm's), so a slice calls dma_batch over the whole batch
// `reps` times from JS: one crossing per batch of ~256 KiB of copies, the same for both. They
// alternate in slices inside each trial (the order flips every slice); a trial's value is the
// median over its slice pairs of the throughput lost with the counters on, in % (1 - GB/s(stats)
// / GB/s(core)).
//
// "0 % when off" (PERF.md) is not measured: it holds by construction when build/core.wasm
// compiles the counters out. setup() checks that as a fact: core.wasm's STATS_ENABLED is 0 and
// a pass of the workload through it leaves every counter unchanged, while core-stats.wasm's is
// 1 and the same pass moves them. A build that breaks this fails the figure.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Core } from "../../wasm/core.js";
import { median, timeNs, sizeFor } from "../lib/harness.mjs";
import { makeDescs, writeDescs, KiB } from "./common.mjs";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const MIX = [4 * KiB, 8 * KiB, 16 * KiB, 32 * KiB, 64 * KiB];
const SLICES = 16;
const NSTATS = 5; // STAT_IOTLB_LAST_HITS .. STAT_DMA_FAULTS

const st = {};

const counters = (core) => Array.from({ length: NSTATS }, (_, i) => core.x.stat_read(i) >>> 0);

/** dma_batch over the `count` descriptors at `at`, `reps` times: the descriptors that succeeded. */
function batches(x, at, count, reps) {
  let ok = 0;
  for (let r = 0; r < reps; r++) ok += x.dma_batch(at, count);
  return ok;
}

/** One of the shipped builds, instantiated over the bench's memory map (already set up). */
async function attachBuild(file, memory) {
  return Core.attach({ module: await WebAssembly.compile(readFileSync(`${root}${file}`)), memory });
}

const t17 = {
  id: "T17", title: "counters on: core-stats.wasm vs core.wasm, T1 copies (cost)", unit: "%", kind: "ratio",
  bars: [{ abs: "%", max: 1 }],
  async setup(ctx) {
    const env = ctx.env;
    const plain = await attachBuild("build/core.wasm", env.core.memory);
    const stats = await attachBuild("build/core-stats.wasm", env.core.memory);
    // One memory map: every layout constant agrees, except the switch itself.
    const a = plain.consts, b = stats.consts;
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (k !== "STATS_ENABLED" && a[k] !== b[k]) throw new Error(`T17: core.wasm and core-stats.wasm disagree on ${k} (${a[k]} vs ${b[k]})`);
    }
    if (plain.consts.STATS_ENABLED !== 0) throw new Error("T17: build/core.wasm has STATS_ENABLED = 1: the counters do not compile out");
    if (stats.consts.STATS_ENABLED !== 1) throw new Error("T17: build/core-stats.wasm has STATS_ENABLED = 0");
    const r = env.region.hot;
    st.descs = makeDescs(r.ws, MIX);
    st.count = st.descs.length;
    st.bytes = st.descs.reduce((s, d) => s + d.len, 0);
    st.at = writeDescs(env, st.descs, r, env.domHot).t;
    st.run = { plain: plain.x, stats: stats.x };
    // The fact behind "0 % when off", and a check that both builds copy the same bytes.
    const end = st.descs.at(-1).off + st.descs.at(-1).len;
    const src = Buffer.from(plain.u8.buffer, r.host, end), dst = Buffer.from(plain.u8.buffer, r.host + r.ws, end);
    const moved = {};
    for (const k of ["plain", "stats"]) {
      dst.fill(0);
      const before = counters(plain);
      const ok = batches(st.run[k], st.at, st.count, 2);
      if (ok !== 2 * st.count) throw new Error(`T17 ${k}: ${2 * st.count - ok} descriptors failed`);
      if (!src.equals(dst)) throw new Error(`T17 ${k}: the copy did not reproduce the source`);
      moved[k] = counters(plain).map((v, i) => (v - before[i]) >>> 0);
    }
    if (moved.plain.some((d) => d !== 0)) throw new Error(`T17: build/core.wasm moved the counters (${moved.plain}): they are not compiled out`);
    if (moved.stats.every((d) => d === 0)) throw new Error("T17: build/core-stats.wasm counted nothing over the workload");
    st.fact = `0 % when off holds by construction: build/core.wasm has STATS_ENABLED = 0 and ${2 * st.count} descriptors through it left all ${NSTATS} counters unchanged` +
      ` (build/core-stats.wasm: STATS_ENABLED = 1, the same pass counted ${moved.stats.join("/")} last-hits/hits/misses/walks/faults)`;
  },
  calibrate(ctx) {
    const x = st.run.plain;
    batches(x, st.at, st.count, 1);
    const per = timeNs(() => batches(x, st.at, st.count, 1));
    st.reps = sizeFor(ctx, per * SLICES);
  },
  subject() {
    const { plain, stats } = st.run;
    const slice = (x) => {
      let ok = 0;
      const ns = timeNs(() => { ok = batches(x, st.at, st.count, st.reps); });
      if (ok !== st.count * st.reps) throw new Error(`T17: ${st.count * st.reps - ok} descriptors failed`);
      return ns;
    };
    const cost = [];
    for (let s = 0; s < SLICES; s++) {
      let p, q;
      if (s % 2 === 0) { p = slice(plain); q = slice(stats); } else { q = slice(stats); p = slice(plain); }
      (st.gp ??= []).push((st.bytes * st.reps) / p);
      (st.gs ??= []).push((st.bytes * st.reps) / q);
      cost.push((1 - p / q) * 100); // 1 - GB/s(stats) / GB/s(core), same bytes
    }
    return median(cost);
  },
  note() {
    return `T1 copies at ${median(st.gp).toFixed(1)} GB/s (core.wasm) vs ${median(st.gs).toFixed(1)} GB/s (core-stats.wasm), median slices; ${st.fact}`;
  },
};

export default [t17];
