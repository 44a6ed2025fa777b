// T7, T8: the x86 page-table operations alone (x86_map / x86_unmap on a domain's table, no
// invalidation, no domain bookkeeping), looping inside wasm (assembly/bench.ts). Ct runs the C
// replica of the same map / unmap recursion; TS is Map.set / Map.delete on the naive translator.
import { timeNs, sizeFor } from "../lib/harness.mjs";
import { MAP_IOVA, BULK_IOVA, lo, hi } from "./common.mjs";

const BULK_PAGES = 256; // per call, one leaf table's worth (the kernel's 256-PTE reference)
const BULK_CALLS = 512; // ranges per cycle: 512 MiB of IOVA, 256 leaf tables

const t7 = (() => {
  const st = { count: 100000 };
  const wasm = (ctx, count) => {
    const { x, domMap, hotFrame } = ctx.env;
    let fails = 0;
    const ns = timeNs(() => { fails = x.bench_map_unmap(domMap, lo(MAP_IOVA), hi(MAP_IOVA), hotFrame, count); });
    if (fails !== 0) throw new Error(`T7: ${fails} map/unmap failures`);
    return ns;
  };
  const tsMap = new Map();
  const ts = (count) => {
    const base = MAP_IOVA / 4096;
    return timeNs(() => {
      for (let i = 0; i < count; i++) {
        const p = base + (i & 255);
        tsMap.set(p, i);
        tsMap.delete(p);
      }
    });
  };
  return {
    id: "T7", title: "page-table map+unmap, one 4 KiB page", unit: "ns", kind: "abs",
    bars: [{ abs: "ns", max: 30 }], goals: [{ abs: "ns", max: 15 }],
    calibrate(ctx) {
      wasm(ctx, 100000);
      st.count = sizeFor(ctx, wasm(ctx, 100000), 100000, 10000);
      st.tsCount = sizeFor(ctx, ts(100000), 100000, 10000);
    },
    subject: (ctx) => wasm(ctx, st.count) / st.count,
    baselines: {
      Ct: async (ctx) => {
        const a = await ctx.native.cmd(`mapunmap ${st.count}`);
        if (a.fails) throw new Error("T7 Ct: failures");
        return a.ns / a.ops;
      },
      TS: () => ts(st.tsCount) / st.tsCount,
    },
  };
})();

const t8 = (() => {
  const st = { cycles: 1 };
  const cycle = (ctx) => {
    const { x, domMap, coldFrame } = ctx.env;
    let fails = 0;
    const ns = timeNs(() => { fails = x.bench_map_range(domMap, lo(BULK_IOVA), hi(BULK_IOVA), coldFrame, BULK_PAGES, BULK_CALLS); });
    const un = x.bench_unmap_range(domMap, lo(BULK_IOVA), hi(BULK_IOVA), BULK_PAGES, BULK_CALLS);
    if (fails !== 0 || un !== BULK_PAGES * BULK_CALLS) throw new Error(`T8: ${fails} failed maps, ${un} pages unmapped`);
    return ns;
  };
  const tsMap = new Map();
  const tsCycle = () => {
    const base = BULK_IOVA / 4096, n = BULK_PAGES * BULK_CALLS;
    const ns = timeNs(() => {
      for (let c = 0; c < BULK_CALLS; c++) {
        for (let i = 0, p = base + c * BULK_PAGES; i < BULK_PAGES; i++) tsMap.set(p + i, i * 4096);
      }
    });
    for (let i = 0; i < n; i++) tsMap.delete(base + i);
    return ns;
  };
  const pages = () => BULK_PAGES * BULK_CALLS * st.cycles;
  return {
    id: "T8", title: `bulk map, ${BULK_PAGES} contiguous 4 KiB pages per call (ns/page)`, unit: "ns", kind: "abs",
    bars: [{ abs: "ns", max: 5 }], goals: [{ abs: "ns", max: 2 }],
    calibrate(ctx) {
      cycle(ctx); // the first cycle allocates the tables; later ones reuse them (unmap keeps tables)
      st.cycles = sizeFor(ctx, cycle(ctx));
      tsCycle();
      st.tsCycles = sizeFor(ctx, tsCycle());
    },
    subject: (ctx) => {
      let ns = 0;
      for (let c = 0; c < st.cycles; c++) ns += cycle(ctx);
      return ns / pages();
    },
    baselines: {
      Ct: async (ctx) => {
        let ns = 0, ops = 0;
        for (let c = 0; c < st.cycles; c++) {
          const a = await ctx.native.cmd(`bulkmap ${BULK_PAGES} ${BULK_CALLS}`);
          if (a.fails) throw new Error("T8 Ct: failures");
          ns += a.ns; ops += a.ops;
        }
        return ns / ops;
      },
      TS: () => {
        let ns = 0;
        for (let c = 0; c < st.tsCycles; c++) ns += tsCycle();
        return ns / (BULK_PAGES * BULK_CALLS * st.tsCycles);
      },
    },
  };
})();

export default [t7, t8];
