// T1-T4: translated DMA copies (dma_batch of DMA_OP_COPY descriptors, repeated inside wasm)
// against W (the same batch loop over the identity domain, assembly/bench.ts), C (native memcpy
// of the same descriptors), Ct (the C replica translator) and TS (the naive translator).
// Throughput in GB/s of bytes copied (1 GB/s = 1 byte/ns).
import { timeNs, sizeFor } from "../lib/harness.mjs";
import { makeDescs, writeDescs, KiB } from "./common.mjs";

const MIX = [4 * KiB, 8 * KiB, 16 * KiB, 32 * KiB, 64 * KiB];

function copyFigure({ id, title, bars, goals, region, leaf, dom, sizes }) {
  const st = {};
  const run = (ctx, desc, reps) => {
    const x = ctx.env.x;
    let ok = 0;
    const ns = timeNs(() => { ok = desc === st.at.t ? x.bench_dma_batch(desc, st.count, reps) : x.bench_identity_batch(desc, st.count, reps); });
    if (ok !== st.count * reps) throw new Error(`${id}: ${st.count * reps - ok} descriptors failed`);
    return ns;
  };
  const tsRun = (ctx, reps) => {
    const { ts } = ctx.env;
    const r = ctx.env.region[region];
    const ns = timeNs(() => {
      for (let k = 0; k < reps; k++) {
        for (const d of st.descs) {
          if (ts.copy(r.iova + d.off, r.iova + r.ws + d.off, d.len) !== 0) throw new Error(`${id}: TS copy faulted`);
        }
      }
    });
    return ns;
  };
  const native = async (ctx, impl) => {
    const r = ctx.env.region[region];
    const a = await ctx.native.cmd(`copy ${impl} ${region} ${leaf} ${r.ws} ${sizes.join(",")} ${st.count} ${st.reps}`);
    return a.bytes / a.ns;
  };
  return {
    id, title, unit: "GB/s", kind: "ratio", bars, goals,
    setup(ctx) {
      const env = ctx.env;
      const r = env.region[region];
      st.descs = makeDescs(r.ws, sizes);
      st.count = st.descs.length;
      st.bytes = st.descs.reduce((a, d) => a + d.len, 0);
      st.at = writeDescs(env, st.descs, r, env[dom]);
      // The subject and W must move the same bytes: check one pass of each.
      const u8 = env.core.u8;
      const end = st.descs.at(-1).off + st.descs.at(-1).len;
      const src = Buffer.from(u8.buffer, r.host, end), dst = Buffer.from(u8.buffer, r.host + r.ws, end);
      for (const at of [st.at.t, st.at.w]) {
        dst.fill(0);
        run(ctx, at, 1);
        if (!src.equals(dst)) throw new Error(`${id}: the copy did not reproduce the source`);
      }
    },
    calibrate(ctx) {
      run(ctx, st.at.t, 1);
      st.reps = sizeFor(ctx, run(ctx, st.at.t, 1));
      tsRun(ctx, 1);
      st.tsReps = sizeFor(ctx, tsRun(ctx, 1));
    },
    subject: (ctx) => (st.bytes * st.reps) / run(ctx, st.at.t, st.reps),
    baselines: {
      W: (ctx) => (st.bytes * st.reps) / run(ctx, st.at.w, st.reps),
      C: (ctx) => native(ctx, "memcpy"),
      Ct: (ctx) => native(ctx, "ct"),
      TS: (ctx) => (st.bytes * st.tsReps) / tsRun(ctx, st.tsReps),
    },
  };
}

export default [
  copyFigure({
    id: "T1", title: "DMA copy 4-64 KiB, hot", region: "hot", leaf: 12, dom: "domHot", sizes: MIX,
    bars: [{ vs: "W", min: 0.9 }, { vs: "C", min: 0.85 }], goals: [{ vs: "W", min: 0.95 }, { vs: "C", min: 0.9 }],
  }),
  copyFigure({
    id: "T2", title: "DMA copy 4-64 KiB, cold 64 MiB, 4 KiB leaves", region: "cold", leaf: 12, dom: "domCold4k", sizes: MIX,
    bars: [{ vs: "W", min: 0.8 }], goals: [{ vs: "W", min: 0.9 }],
  }),
  copyFigure({
    id: "T3", title: "DMA copy 4-64 KiB, cold 64 MiB, 2 MiB leaves", region: "cold", leaf: 21, dom: "domCold2m", sizes: MIX,
    bars: [{ vs: "W", min: 0.95 }], goals: [{ vs: "W", min: 0.98 }],
  }),
  copyFigure({
    id: "T4", title: "DMA copy 64 B descriptors, hot", region: "hot", leaf: 12, dom: "domHot", sizes: [64],
    bars: [{ vs: "W", min: 0.6 }], goals: [{ vs: "W", min: 0.75 }],
  }),
];
