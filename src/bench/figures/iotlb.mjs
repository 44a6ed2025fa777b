// T5, T6: translations looping inside wasm (iotlb_bench mode 2: random 4 KiB pages of a span,
// through the last translation and the IOTLB array), in ns per translation including the
// loop's pseudo-random generator. Ct runs the same loop in C over the same structures; TS is a
// Map lookup per translation (the naive translator has no IOTLB: its "walk" is the Map).
import { timeNs, sizeFor } from "../lib/harness.mjs";
import { TLB_IOVA, TLB_SPAN_LOG2, lo, hi } from "./common.mjs";

let tsPages; // page number -> host address, 2^18 entries, shared by T5 and T6

function tlbFigure({ id, title, span, bars }) {
  const st = { count: 100000 };
  const wasm = (ctx, count) => {
    const { x, domTlb } = ctx.env;
    return timeNs(() => x.iotlb_bench(domTlb, lo(TLB_IOVA), hi(TLB_IOVA), span, count, 2));
  };
  const ts = (count) => {
    const base = TLB_IOVA / 4096, mask = (1 << span) - 1;
    let x = 12345, sum = 0;
    const ns = timeNs(() => {
      for (let i = 0; i < count; i++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        sum = (sum + tsPages.get(base + ((x >>> 8) & mask))) | 0;
      }
    });
    if (sum === 0.5) throw new Error("unreachable"); // keeps sum alive
    return ns;
  };
  return {
    id, title, unit: "ns", kind: "abs", bars,
    setup(ctx) {
      if (!tsPages) {
        tsPages = new Map();
        const base = TLB_IOVA / 4096, host = ctx.env.host(ctx.env.coldFrame), per = (64 * 1024 * 1024) / 4096;
        for (let i = 0; i < 1 << TLB_SPAN_LOG2; i++) tsPages.set(base + i, host + (i % per) * 4096);
      }
      // Every IOVA of the span translates (iotlb_translate returns 0 = no fault).
      const { x, domTlb } = ctx.env;
      for (const p of [0, (1 << span) - 1]) {
        const iova = TLB_IOVA + p * 4096;
        if (x.iotlb_translate(domTlb, lo(iova), hi(iova), 0) !== 0) throw new Error(`${id}: IOVA 0x${iova.toString(16)} does not translate`);
      }
    },
    calibrate(ctx) {
      wasm(ctx, 100000);
      st.count = sizeFor(ctx, wasm(ctx, 100000), 100000, 100000);
      st.tsCount = sizeFor(ctx, ts(100000), 100000, 10000);
    },
    subject: (ctx) => wasm(ctx, st.count) / st.count,
    baselines: {
      Ct: async (ctx) => {
        const a = await ctx.native.cmd(`tlb ${span} ${st.count}`);
        return a.ns / a.ops;
      },
      TS: () => ts(st.tsCount) / st.tsCount,
    },
  };
}

export default [
  tlbFigure({
    id: "T5", title: "IOTLB hit, amortised (128 random pages)", span: 7,
    bars: [{ abs: "ns", max: 5 }, { vs: "Ct", max: 4 }], goals: [{ abs: "ns", max: 3 }],
  }),
  tlbFigure({
    id: "T6", title: "IOTLB miss + 4-level walk (1 GiB random)", span: TLB_SPAN_LOG2,
    bars: [{ abs: "ns", max: 25 }, { vs: "Ct", max: 5 }], goals: [{ abs: "ns", max: 12 }, { vs: "Ct", max: 2.5 }],
  }),
];
