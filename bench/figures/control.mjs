// T9 and T10: the control plane through the raw syscall layer, on a real kernel (createKernel)
// with one memcpy device bound through its cdev and attached to the IOAS, so every map fills
// a domain (pins and page-table writes) and every unmap empties it and waits out the grace
// period. The ioctl structs are written into user memory once; the calls pass their addresses.
//
// T9: one IOMMU_IOAS_MAP + IOMMU_IOAS_UNMAP pair of 4 KiB (ns per pair), bar <= 2 us.
// T10: IOMMU_IOAS_MAP of 1 GiB of already-populated memory (ns), bar <= 25 ms; a kernel of
// 1.5 GiB with CAP_IPC_LOCK, as PERF.md says. --quick maps 64 MiB instead (not judged).
import {
  createKernel, IommuFd, VfioDeviceFile, MAP_ANONYMOUS, MAP_POPULATE, MAP_SHARED, PROT_READ, PROT_WRITE,
  IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP,
} from "../../dist/index.js";
import { MiB } from "./common.mjs";

const BDF = "0000:00:04.0";
const IOVA = 0x100000;

function mapCmd(ioas, va, len, iova) {
  const b = new Uint8Array(40);
  const v = new DataView(b.buffer);
  v.setUint32(0, 40, true);
  v.setUint32(4, 1 | 2 | 4, true); // FIXED_IOVA | WRITEABLE | READABLE
  v.setUint32(8, ioas, true);
  v.setBigUint64(16, BigInt(va), true);
  v.setBigUint64(24, BigInt(len), true);
  v.setBigUint64(32, BigInt(iova), true);
  return b;
}

function unmapCmd(ioas, iova, len) {
  const b = new Uint8Array(24);
  const v = new DataView(b.buffer);
  v.setUint32(0, 24, true);
  v.setUint32(4, ioas, true);
  v.setBigUint64(8, BigInt(iova), true);
  v.setBigUint64(16, BigInt(len), true);
  return b;
}

/** A kernel with the device attached to an IOAS, `bytes` of populated memory, and the two structs. */
async function bootAttached(memoryBytes, bytes) {
  const kernel = await createKernel({ memoryBytes, devices: [{ bdf: BDF, model: "memcpy" }] });
  const proc = kernel.createProcess({ capIpcLock: true });
  const iommufd = IommuFd.open(proc);
  const ioas = iommufd.allocIoas();
  const dev = VfioDeviceFile.open(proc, kernel.device(BDF));
  dev.bind(iommufd);
  dev.attach(ioas.id);
  const flags = MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE;
  const buf = proc.mmap(0, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
  const args = proc.mmap(0, 4096, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (buf < 0 || args < 0) throw new Error(`mmap: ${buf}, ${args}`);
  if (proc.writeMemory(args, mapCmd(ioas.id, buf, bytes, IOVA)) !== 0) throw new Error("writeMemory");
  if (proc.writeMemory(args + 64, unmapCmd(ioas.id, IOVA, bytes)) !== 0) throw new Error("writeMemory");
  return {
    kernel,
    map: () => proc.ioctl(iommufd.fd, IOMMU_IOAS_MAP, args),
    unmap: () => proc.ioctl(iommufd.fd, IOMMU_IOAS_UNMAP, args + 64),
  };
}

const t9st = {};
const t9 = {
  id: "T9", title: "IOAS_MAP + IOAS_UNMAP of 4 KiB, raw ioctls, domain attached", unit: "ns", kind: "abs",
  bars: [{ abs: "ns", max: 2000 }],
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
  bars: [{ abs: "ns", max: 25_000_000 }],
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
