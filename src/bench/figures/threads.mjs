// T11, T12: two DMA workers against one. Each worker is a worker thread that joined the bench's
// shared memory through the worker API (attachWorker: its own worker slot, epoch word and
// IOTLB) and runs the T1 / T3 copy workload (bench_dma_batch: translated DMA_OP_COPY
// descriptors, repeated inside wasm) over a region of its own, so the two share no cache line
// of data. A trial runs one round with worker 0 alone and one with both (the order alternates),
// each of the same descriptors and repetitions per worker; the figure is the scaling,
// aggregate GB/s of two over GB/s of one. The bench's own thread blocks in Atomics.wait while
// a round runs (PERF.md: two cores; it does not spin), and rounds start and end through
// Atomics on a control word, not postMessage.
//
// Baseline C: the native child runs the same descriptor sizes and working set per thread with
// memcpy, one thread alone, then two at once (bench.c `scale`), so its scaling is what this
// machine's cores and memory allow the same copies.
//   T11: cache-resident (T1's 256 KiB per side per worker, 4 KiB leaves): bar >= 1.8x absolute;
//        not judged (null) when C itself scales below 1.8x on the same workload.
//   T12: DRAM-bound (64 MiB per side per worker, 2 MiB leaves, as T3): bar >= 0.9x of C's
//        scaling (the ratio of scalings).
import { Worker } from "node:worker_threads";
import { availableParallelism, cpus } from "node:os";
import { makeDescs, writeDescs, fillPattern, KiB, MiB, lo, hi } from "./common.mjs";
import { sizeFor } from "../lib/harness.mjs";

const MIX = [4 * KiB, 8 * KiB, 16 * KiB, 32 * KiB, 64 * KiB];
// Control words of src/bench/workers/dma-batch.mjs.
const GO = 0, DONE = 1, READY = 2, JOB = 8, RES = 24;
const SCALE_HOT_IOVA = 0x3_0000_0000; // worker i's hot src | dst at + i * 1 MiB
const SCALE_COLD_IOVA = 0x10_0000_0000; // worker i's cold src | dst at + i * 256 MiB (2 MiB aligned)

const ncpus = () => availableParallelism?.() ?? cpus().length;

/** Two DMA workers over the bench env's memory, driven round by round through Atomics. */
class Pair {
  static async start(env) {
    const p = new Pair();
    p.ctl = new Int32Array(new SharedArrayBuffer(4 * 32));
    p.workers = [0, 1].map((id) => new Worker(new URL("../workers/dma-batch.mjs", import.meta.url), {
      workerData: { init: env.core.init(), control: p.ctl.buffer, id },
    }));
    p.exited = p.workers.map((w) => new Promise((resolve) => w.once("exit", resolve)));
    p.slots = await Promise.all(p.workers.map((w) => new Promise((resolve, reject) => {
      w.once("message", (m) => resolve(m.slot));
      w.once("error", reject);
    })));
    return p;
  }

  /**
   * One round: jobs[i] = { at, count, reps } for worker i, or null (sits out). Blocks this
   * thread until every active worker is done; returns the wall time in ns.
   */
  round(jobs) {
    const ctl = this.ctl;
    let n = 0;
    jobs.forEach((j, i) => {
      const b = JOB + 4 * i;
      Atomics.store(ctl, b + 3, j ? 1 : 0);
      if (!j) return;
      Atomics.store(ctl, b, j.at);
      Atomics.store(ctl, b + 1, j.count);
      Atomics.store(ctl, b + 2, j.reps);
      Atomics.store(ctl, RES + i, -1);
      n++;
    });
    Atomics.store(ctl, DONE, 0);
    const t0 = process.hrtime.bigint();
    Atomics.add(ctl, GO, 1); // paired with the workers' wait on GO
    Atomics.notify(ctl, GO);
    for (let d; (d = Atomics.load(ctl, DONE)) < n;) {
      if (Atomics.wait(ctl, DONE, d, 30_000) === "timed-out") throw new Error("a DMA worker did not finish its round in 30 s");
    }
    const ns = Number(process.hrtime.bigint() - t0);
    jobs.forEach((j, i) => {
      if (j && Atomics.load(ctl, RES + i) !== j.count * j.reps) throw new Error(`worker ${i}: ${j.count * j.reps - Atomics.load(ctl, RES + i)} descriptors failed`);
    });
    return ns;
  }

  async close() {
    Atomics.store(this.ctl, GO, -1);
    Atomics.notify(this.ctl, GO);
    await Promise.all(this.exited);
  }
}

function scaleFigure({ id, title, absScaling, bars, goals, hot }) {
  const st = { trial: 0 };
  const oneAndTwo = (reps) => {
    const jobs = st.regions.map((r) => ({ at: r.desc, count: st.count, reps }));
    const first = st.trial++ % 2 === 0;
    let one = 0, two = 0;
    if (first) one = st.pair.round([jobs[0], null]);
    two = st.pair.round(jobs);
    if (!first) one = st.pair.round([jobs[0], null]);
    // aggregate GB/s of two / GB/s of one, the same bytes per worker
    return { one, two, scale: (2 * one) / two };
  };
  const native = async (ctx, reps) => {
    const a = await ctx.native.cmd(`scale ${st.ws} ${MIX.join(",")} ${st.count} ${reps}`);
    return { one: a.one, two: a.two, scale: (2 * a.one) / a.two };
  };
  return {
    id, title, unit: "x", kind: "ratio", bars, goals,
    async setup(ctx) {
      const env = ctx.env;
      const { x, core, alloc, host } = env;
      st.ws = hot ? 256 * KiB : (ctx.quick ? 16 : 64) * MiB;
      st.descs = makeDescs(st.ws, MIX);
      st.count = st.descs.length;
      st.bytes = st.descs.reduce((a, d) => a + d.len, 0);
      // A domain of its own (4 KiB leaves for the hot figure, 2 MiB leaves for the cold one)
      // holding one private src | dst region per worker, populated before any timing.
      const d = x.domain_alloc(core.consts.IOPT_X86, 0);
      if (d < 0) throw new Error(`${id}: domain_alloc: ${d}`);
      st.dom = d >>> 0;
      const order = Math.ceil(Math.log2((2 * st.ws) / 4096));
      st.regions = [0, 1].map((i) => {
        const frame = alloc(order);
        const iova = hot ? SCALE_HOT_IOVA + i * MiB : SCALE_COLD_IOVA + i * 256 * MiB;
        const rc = x.domain_map(st.dom, lo(iova), hi(iova), frame, (2 * st.ws) / 4096, 3, hot ? 0 : 1);
        if (rc !== 0) throw new Error(`${id}: domain_map: ${rc}`);
        const r = { iova, host: host(frame), ws: st.ws };
        fillPattern(core, r.host, st.ws, 0x9e3779b9 + i);
        core.u8.fill(0, r.host + st.ws, r.host + 2 * st.ws);
        r.desc = writeDescs(env, st.descs, r, st.dom).t;
        return r;
      });
      if (!hot && (x.domain_lookup(st.dom, lo(SCALE_COLD_IOVA), hi(SCALE_COLD_IOVA)) >>> 4 & 31) !== 21) throw new Error(`${id}: no 2 MiB leaves`);
      st.pair = await Pair.start(env);
      // Each worker's pass must reproduce its source: one round of both, checked.
      st.pair.round(st.regions.map((r) => ({ at: r.desc, count: st.count, reps: 1 })));
      const end = st.descs.at(-1).off + st.descs.at(-1).len;
      for (const r of st.regions) {
        const u8 = core.u8;
        if (!Buffer.from(u8.buffer, r.host, end).equals(Buffer.from(u8.buffer, r.host + st.ws, end))) throw new Error(`${id}: a worker's copy did not reproduce its source`);
      }
    },
    async calibrate(ctx) {
      st.pair.round([{ at: st.regions[0].desc, count: st.count, reps: 1 }, null]);
      st.reps = sizeFor(ctx, st.pair.round([{ at: st.regions[0].desc, count: st.count, reps: 1 }, null]));
      if (ctx.native.ok) {
        const a = await ctx.native.cmd(`scale ${st.ws} ${MIX.join(",")} ${st.count} 1`);
        st.cReps = sizeFor(ctx, a.one);
      }
    },
    subject: () => oneAndTwo(st.reps).scale,
    baselines: { C: async (ctx) => (await native(ctx, st.cReps)).scale },
    unjudged(rec, ctx) {
      if (ncpus() < 2) return `${ncpus()} cpu: two workers cannot run at once on this machine`;
      if (!absScaling) return null;
      const c = rec.baselines.C?.median;
      if (c != null && c < 1.8) {
        return `not judged: C itself scales ${c.toFixed(2)}x < 1.8x with 2 threads on the same cache-resident copies on this machine` +
          ` (machine cTwoThreadScaling, DRAM memcpy: ${ctx.machine?.cTwoThreadScaling ?? "null"})`;
      }
      return null;
    },
    note(rec) {
      return `${st.count} descriptors x ${st.reps} per worker per round, ${(2 * st.ws / MiB).toFixed(2)} MiB per worker` +
        (rec.baselines.C ? `; C scales ${rec.baselines.C.median.toFixed(2)}x on the same copies` : "");
    },
    async teardown() {
      if (st.pair) await st.pair.close();
      st.pair = null;
    },
  };
}

export default [
  scaleFigure({
    id: "T11", title: "2 DMA workers vs 1, hot (T1 copies, 256 KiB per worker)", absScaling: true, hot: true,
    bars: [{ abs: "x", min: 1.8 }], goals: [{ abs: "x", min: 1.95 }],
  }),
  scaleFigure({
    id: "T12", title: "2 DMA workers vs 1, DRAM-bound (64 MiB, 2 MiB leaves) / C's", absScaling: false, hot: false,
    bars: [{ vs: "C", min: 0.9 }], goals: [{ vs: "C", min: 1.0 }],
  }),
];
