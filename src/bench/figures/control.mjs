// T9 and T10: the control plane through the raw syscall layer, on a real kernel (createKernel)
// with one memcpy device bound through its cdev and attached to the IOAS, so every map fills
// a domain (pins and page-table writes) and every unmap empties it and waits out the grace
// period. The ioctl structs are written into user memory once; the calls pass their addresses.
//
// T9: one IOMMU_IOAS_MAP + IOMMU_IOAS_UNMAP pair of 4 KiB (ns per pair), bar <= 2 us.
// T10: IOMMU_IOAS_MAP of 1 GiB of already-populated memory (ns), bar <= 25 ms; a kernel of
// 1.5 GiB with CAP_IPC_LOCK, as PERF.md says. --quick maps 64 MiB instead (not judged).
import { MiB, bootAttached } from "./common.mjs";

const t9st = {};
const t9 = {
  id: "T9", title: "IOAS_MAP + IOAS_UNMAP of 4 KiB, raw ioctls, domain attached", unit: "ns", kind: "abs",
  bars: [{ abs: "ns", max: 2000 }], goals: [{ abs: "ns", max: 1000 }],
  async setup() {
    Object.assign(t9st, await bootAttached(64 * MiB, 4096));
    for (let i = 0; i < 2000; i++) if (t9st.map() !== 0 || t9st.unmap() !== 0) throw new Error("T9: warm-up failed");
    t9st.n = 2000;
  },
  calibrate(ctx) {
    const t0 = performance.now();
    for (let i = 0; i < t9st.n; i++) { t9st.map(); t9st.unmap(); }
    const ms = performance.now() - t0;
    t9st.n = Math.max(100, Math.round(t9st.n * ctx.targetMs / Math.max(ms, 0.01)));
  },
  subject() {
    const n = t9st.n;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      if (t9st.map() !== 0) throw new Error("T9: IOMMU_IOAS_MAP failed");
      if (t9st.unmap() !== 0) throw new Error("T9: IOMMU_IOAS_UNMAP failed");
    }
    return (performance.now() - t0) * 1e6 / n;
  },
  baselines: {},
  async teardown() { await t9st.kernel?.close(); },
};

const t10st = {};
const t10 = {
  id: "T10", title: "IOAS_MAP of 1 GiB of populated memory, domain attached", unit: "ns", kind: "abs",
  bars: [{ abs: "ns", max: 25_000_000 }], goals: [{ abs: "ns", max: 10_000_000 }],
  async setup(ctx) {
    t10st.bytes = ctx.quick ? 64 * MiB : 1024 * MiB;
    Object.assign(t10st, await bootAttached(ctx.quick ? 128 * MiB : 1536 * MiB, t10st.bytes));
    // One map and unmap first: the page tables and frames of the first fill stay warm.
    if (t10st.map() !== 0 || t10st.unmap() !== 0) throw new Error("T10: warm-up failed");
  },
  subject() {
    const t0 = performance.now();
    if (t10st.map() !== 0) throw new Error("T10: IOMMU_IOAS_MAP failed");
    const ns = (performance.now() - t0) * 1e6;
    if (t10st.unmap() !== 0) throw new Error("T10: IOMMU_IOAS_UNMAP failed");
    return ns;
  },
  baselines: {},
  note() { return `${t10st.bytes / MiB} MiB per map; the unmap after each is not timed`; },
  async teardown() { await t10st.kernel?.close(); },
};

export default [t9, t10];
