// The shared bench environment: one core (build/core-bench.wasm, loaded through dist/'s Core) on a
// fixed-size shared memory, the domains every figure uses, the descriptor generator and the
// naive TypeScript translator (baseline TS). src/bench/native/bench.c mirrors this layout (IOVA
// bases, physical blocks, domain order, so the domain serials mixed into the IOTLB index match).
// Also the kernel-level setup the control-plane figures share (bootAttached).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Core, WASM_PAGE } from "../../wasm/core.js";
import {
  createKernel, IommuFd, VfioDeviceFile, MAP_ANONYMOUS, MAP_POPULATE, MAP_SHARED, PROT_READ, PROT_WRITE,
  IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_WRITEABLE, IOMMU_IOAS_MAP_READABLE,
  iommu_ioas_map, iommu_ioas_unmap, setField, errno,
} from "../../index.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const MEM_BYTES = 768 * MiB;

export const HOT_IOVA = 0x1_0000_0000; // hot src | dst, contiguous: 128 distinct IOTLB entries
export const COLD_IOVA = 0x2_0000_0000; // cold src | dst (T2: 4 KiB leaves, T3: 2 MiB leaves)
export const TLB_IOVA = 0x80_0000_0000; // T5/T6: 1 GiB of 4 KiB leaves (aliases of the cold block)
export const MAP_IOVA = 0x40_0000_0000; // T7
export const BULK_IOVA = 0x60_0000_0000; // T8
export const HOT_WS = 256 * KiB; // per side
export const COLD_WS = 64 * MiB; // per side
export const TLB_SPAN_LOG2 = 18; // 2^18 pages = 1 GiB

export const lo = (v) => v % 0x1_0000_0000;
export const hi = (v) => Math.floor(v / 0x1_0000_0000);
const NONE = 0xffffffff;

/**
 * Boots the benchmark's core (build/core-bench.wasm: build/core.wasm plus the timing loops of
 * assembly/bench_index.ts, which the shipped cores leave out) and lays out every figure's
 * domains (once per bench process).
 */
export async function bootEnv(wasmFile = "build/core-bench.wasm") {
  const module = await WebAssembly.compile(readFileSync(`${root}${wasmFile}`));
  const pages = MEM_BYTES / WASM_PAGE;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const core = await Core.attach({ module, memory }, false);
  const x = core.x;
  if (x.frames_init(pages) !== 0) throw new Error("frames_init failed");
  if (typeof x.bench_identity_batch !== "function") throw new Error(`${wasmFile} lacks assembly/bench_index.ts's exports: run \`npm run build\``);
  const alloc = (order) => {
    const f = x.frame_alloc(order) >>> 0;
    if (f === NONE) throw new Error(`frame_alloc(${order}) failed`);
    return f;
  };
  const coldFrame = alloc(15); // 128 MiB, naturally aligned (2 MiB leaves possible)
  const hotFrame = alloc(7); // 512 KiB
  const host = (f) => core.poolBase + f * 4096;
  // Populate the data pages now, so no first touch lands in a trial: a pattern in each source
  // half, zeroes in each destination half (the figures' setup checks the copies against it).
  fillPattern(core, host(coldFrame), 64 * MiB, 0x12345678);
  core.u8.fill(0, host(coldFrame) + 64 * MiB, host(coldFrame) + 128 * MiB);
  fillPattern(core, host(hotFrame), 256 * KiB, 0x12345678);
  core.u8.fill(0, host(hotFrame) + 256 * KiB, host(hotFrame) + 512 * KiB);
  const X86 = core.consts.IOPT_X86;
  const dom = () => {
    const d = x.domain_alloc(X86, 0);
    if (d < 0) throw new Error(`domain_alloc: ${d}`);
    return d >>> 0;
  };
  // Same order as bench.c: serials 1..5.
  const domHot = dom(), domCold4k = dom(), domCold2m = dom(), domTlb = dom(), domMap = dom();
  const map = (d, iova, frame, bytes, huge) => {
    const rc = x.domain_map(d, lo(iova), hi(iova), frame, bytes / 4096, 3, huge ? 1 : 0);
    if (rc !== 0) throw new Error(`domain_map: ${rc}`);
  };
  map(domHot, HOT_IOVA, hotFrame, 512 * KiB, false);
  map(domCold4k, COLD_IOVA, coldFrame, 128 * MiB, false);
  map(domCold2m, COLD_IOVA, coldFrame, 128 * MiB, true);
  for (let i = 0; i < 16; i++) map(domTlb, TLB_IOVA + i * 64 * MiB, coldFrame, 64 * MiB, false);
  if ((x.domain_lookup(domCold2m, lo(COLD_IOVA), hi(COLD_IOVA)) >>> 4 & 31) !== 21) throw new Error("T3 domain has no 2 MiB leaves");
  // TS baseline's translator, filled with the same mappings (4 KiB granularity: it is naive).
  const ts = new NaiveTs(core.u8);
  ts.map(HOT_IOVA, host(hotFrame), 512 * KiB);
  ts.map(COLD_IOVA, host(coldFrame), 128 * MiB);
  return {
    core, x, alloc, host, coldFrame, hotFrame, domHot, domCold4k, domCold2m, domTlb, domMap, ts,
    region: {
      hot: { iova: HOT_IOVA, host: host(hotFrame), ws: HOT_WS },
      cold: { iova: COLD_IOVA, host: host(coldFrame), ws: COLD_WS },
    },
  };
}

/** Fills `bytes` at host address `at` with a pseudo-random pattern of u32 words from `seed`. */
export function fillPattern(core, at, bytes, seed) {
  const w = core.u32;
  for (let i = at >>> 2, e = (at + bytes) >>> 2, v = seed; i < e; i++) { v = (Math.imul(v, 1664525) + 1013904223) >>> 0; w[i] = v; }
}

/**
 * The descriptor generator (bench.c gen_desc): sizes cycle, each descriptor starts where the
 * last ended and wraps to 0 when it would pass the working set; src and dst (the second half of
 * the region) at the same offset. One pass: until the first wrap.
 */
export function makeDescs(ws, sizes) {
  const out = [];
  let cursor = 0;
  for (let i = 0; ; i++) {
    const len = sizes[i % sizes.length];
    if (cursor + len > ws) break;
    out.push({ off: cursor, len });
    cursor += len;
  }
  return out;
}

/**
 * Writes `descs` as DMA_OP_COPY descriptors into fresh frames: one array with IOVAs (through
 * `dom`), one with host addresses (the identity domain, baseline W). Returns their addresses.
 */
export function writeDescs(env, descs, region, dom) {
  const { core, alloc, host } = env;
  const size = core.consts.DMA_DESC_SIZE;
  const bytes = descs.length * size;
  const order = Math.max(0, Math.ceil(Math.log2(Math.ceil(bytes / 4096))));
  const at = { t: host(alloc(order)), w: host(alloc(order)) };
  const u32 = core.u32;
  // The descriptor's fields (assembly/dma.ts DMA_DESC_*), as word offsets.
  const F = Object.fromEntries(["OP", "DOM", "SRC_LO", "SRC_HI", "DST_LO", "DST_HI", "LEN", "STATUS"]
    .map((n) => [n, core.consts[`DMA_DESC_${n}`] >>> 2]));
  const COPY = core.consts.DMA_OP_COPY;
  const put = (base, i, src, dst, len) => {
    const w = (base + i * size) >>> 2;
    u32[w + F.OP] = COPY;
    u32[w + F.DOM] = dom;
    u32[w + F.SRC_LO] = lo(src); u32[w + F.SRC_HI] = hi(src);
    u32[w + F.DST_LO] = lo(dst); u32[w + F.DST_HI] = hi(dst);
    u32[w + F.LEN] = len;
    u32[w + F.STATUS] = 0;
  };
  descs.forEach((d, i) => {
    put(at.t, i, region.iova + d.off, region.iova + region.ws + d.off, d.len);
    put(at.w, i, region.host + d.off, region.host + region.ws + d.off, d.len);
  });
  return at;
}

/**
 * Baseline TS: a naive translator, a Map from IOVA page number to the host address of the
 * page, and TypedArray copies (subarray + set) on the shared memory, one per page piece.
 */
export class NaiveTs {
  constructor(u8) {
    this.u8 = u8;
    this.pages = new Map();
  }
  map(iova, host, len) {
    for (let o = 0; o < len; o += 4096) this.pages.set((iova + o) / 4096, host + o);
  }
  unmap(iova, len) {
    for (let o = 0; o < len; o += 4096) this.pages.delete((iova + o) / 4096);
  }
  /** Copies len bytes from IOVA src to IOVA dst: 0, or -EFAULT. */
  copy(src, dst, len) {
    const u8 = this.u8;
    let done = 0;
    while (done < len) {
      const s = src + done, d = dst + done;
      const sp = this.pages.get(Math.floor(s / 4096));
      const dp = this.pages.get(Math.floor(d / 4096));
      if (sp === undefined || dp === undefined) return -errno.EFAULT;
      const so = s % 4096, dof = d % 4096;
      const n = Math.min(len - done, 4096 - so, 4096 - dof);
      u8.set(u8.subarray(sp + so, sp + so + n), dp + dof);
      done += n;
    }
    return 0;
  }
}

// ---- control-plane figures (T9, T10, T15): a kernel with one device attached ----------------

export const DEV_BDF = "0000:00:04.0"; // the memcpy device of every kernel-level figure
export const IOAS_IOVA = 0x100000; // where bootAttached's IOMMU_IOAS_MAP puts the buffer

/** A uapi struct's bytes, built from its layout in dist/: size set, `values` by field name, the rest 0. */
export function structBytes(layout, values) {
  const b = new Uint8Array(layout.size);
  const v = new DataView(b.buffer);
  for (const [k, x] of Object.entries({ size: layout.size, ...values })) setField(v, layout.fields[k], x);
  return b;
}

/**
 * A real kernel (createKernel, `memoryBytes`) with one memcpy device bound through its cdev and
 * attached to an IOAS, `bytes` of populated memory, and one IOMMU_IOAS_MAP of all of it at
 * IOAS_IOVA plus the matching IOMMU_IOAS_UNMAP written once into user memory: map() and
 * unmap() are raw ioctls passing their addresses. Nothing is mapped yet. `label` prefixes
 * errors. The kernel is closed again when the setup fails.
 */
export async function bootAttached(memoryBytes, bytes, label = "") {
  const kernel = await createKernel({ memoryBytes, devices: [{ bdf: DEV_BDF, model: "memcpy" }] });
  try {
    const proc = kernel.createProcess({ capIpcLock: true });
    const iommufd = IommuFd.open(proc);
    const ioas = iommufd.allocIoas();
    const handle = kernel.device(DEV_BDF);
    const dev = VfioDeviceFile.open(proc, handle);
    dev.bind(iommufd);
    dev.attach(ioas.id);
    const flags = MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE;
    const buf = proc.mmap(0, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
    const args = proc.mmap(0, 4096, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (buf < 0 || args < 0) throw new Error(`${label}mmap: ${buf}, ${args}`);
    const map = structBytes(iommu_ioas_map, {
      flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE,
      ioas_id: ioas.id, user_va: buf, length: bytes, iova: IOAS_IOVA,
    });
    const unmap = structBytes(iommu_ioas_unmap, { ioas_id: ioas.id, iova: IOAS_IOVA, length: bytes });
    if (proc.writeMemory(args, map) !== 0) throw new Error(`${label}writeMemory`);
    if (proc.writeMemory(args + 64, unmap) !== 0) throw new Error(`${label}writeMemory`);
    return {
      kernel, handle,
      map: () => proc.ioctl(iommufd.fd, IOMMU_IOAS_MAP, args),
      unmap: () => proc.ioctl(iommufd.fd, IOMMU_IOAS_UNMAP, args + 64),
    };
  } catch (e) {
    await kernel.close();
    throw e;
  }
}
