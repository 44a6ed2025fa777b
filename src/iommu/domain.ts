// IOMMU domains (the kernel's struct iommu_domain): a page table in the wasm core that device
// DMA is translated through. iommufd mirrors IOAS areas into them (io_pagetable.ts IoDomain).

import { errno } from "../uapi/errno.js";
import type { IoDomain } from "../iommufd/io_pagetable.js";
import type { KernelCore } from "../kernel/kernel.js";
import type { IommuCaps } from "./device.js";
import { synchronizeDma } from "../kernel/grace.js";

export interface DomainOptions {
  /** IOMMU_HWPT_ALLOC_DIRTY_TRACKING: the domain can record dirty IO pages. */
  readonly dirtyTracking: boolean;
  /** The mock format's huge (1 MiB) IO pages (MOCK_FLAGS_DEVICE_HUGE_IOVA). */
  readonly hugeIova?: boolean;
}

export interface IommuDomain extends IoDomain {
  /** The wasm-side descriptor DMA translates through (never 0: 0 is the blocking domain). */
  readonly handle: number;
  readonly format: IommuCaps["format"];
  /** Enables or disables dirty tracking (enabling clears stale dirty bits). 0 or -errno. */
  setDirtyTracking(on: boolean): number;
  /**
   * Reads (and unless `noClear`, clears) the dirty bits of [iova, iova+length) in `pageSize`
   * units: calls `mark(index)` for each dirty unit. 0 or -errno.
   */
  readAndClearDirty(iova: bigint, length: bigint, pageSize: bigint, noClear: boolean, mark: (i: number) => void): number;
  /** The physical byte address `iova` translates to, or -1. */
  iovaToPhys(iova: bigint): number;
  /** Dirty tracking is on. */
  readonly dirtyEnabled: boolean;
  /** Sets the dirty bit of every leaf in [iova, iova+length) (the selftest's DIRTY); the count. */
  markDirty(iova: bigint, length: bigint): number;
  /** Frees the table pages; the domain must be empty of users. */
  free(): void;
}

/** The wasm exports a domain drives (assembly/domain.ts). */
interface DomainExports {
  domain_alloc(format: number, flags: number): number;
  domain_free(dom: number): number;
  domain_map(dom: number, iovaLo: number, iovaHi: number, physPage: number, npages: number, prot: number, allowHuge: number): number;
  domain_unmap(dom: number, iovaLo: number, iovaHi: number, npages: number): number;
  domain_iova_to_phys(dom: number, iovaLo: number, iovaHi: number): number;
  domain_pgsize_bitmap(dom: number): number;
  domain_read_and_clear_dirty(dom: number, iovaLo: number, iovaHi: number, npages: number, bitmap: number, pageShift: number, noClear: number): number;
  domain_set_dirty_tracking(dom: number, enable: number): number;
  domain_mark_dirty(dom: number, iovaLo: number, iovaHi: number, npages: number): number;
  frame_alloc(order: number): number;
  frame_put(f: number): void;
}

/** Formats as the core numbers them (assembly/iopt.ts), and their geometry. */
const FORMATS = {
  x86: { id: "IOPT_X86", ioPageShift: 12, apertureStart: 0n, apertureEnd: (1n << 48n) - 1n },
  mock: { id: "IOPT_MOCK", ioPageShift: 11, apertureStart: 0x1000000n, apertureEnd: 0x7fffffffn },
} as const;

const DOMAIN_F_HUGE = 1;
const DOMAIN_F_DIRTY_TRACKING = 2;
const IOMMU_READ = 1;
const IOMMU_WRITE = 2;

// The two u32 halves of an IOVA for the wasm calls; IOVAs below 2^53 (all real apertures)
// take the number path, which allocates no intermediate BigInt.
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const lo = (v: bigint) => (v <= SAFE ? Number(v) % 0x100000000 : Number(v & 0xffffffffn));
const hi = (v: bigint) => (v <= SAFE ? Math.floor(Number(v) / 0x100000000) : Number(v >> 32n));

/** A paging domain in the wasm core. */
class WasmDomain implements IommuDomain {
  readonly pgsizeBitmap: bigint;
  readonly apertureStart: bigint;
  readonly apertureEnd: bigint;
  private readonly shift: number;
  private dirtyOn = false;

  private readonly core: KernelCore["core"];

  constructor(private readonly x: DomainExports, private readonly kcore: KernelCore,
    readonly handle: number, readonly format: IommuCaps["format"]) {
    this.core = kcore.core;
    const f = FORMATS[format];
    this.shift = f.ioPageShift;
    this.apertureStart = f.apertureStart;
    this.apertureEnd = f.apertureEnd;
    this.pgsizeBitmap = BigInt(x.domain_pgsize_bitmap(handle) >>> 0);
  }

  map(iova: bigint, phys: number, length: number, prot: { read: boolean; write: boolean }, allowLarge: boolean): number {
    const unit = 1 << this.shift;
    if (Number(iova % BigInt(unit)) || phys % unit || length % unit) return -errno.EINVAL;
    const p = (prot.read ? IOMMU_READ : 0) | (prot.write ? IOMMU_WRITE : 0);
    return this.x.domain_map(this.handle, lo(iova), hi(iova), phys / unit, length / unit, p, allowLarge ? 1 : 0);
  }

  /** Unmaps, then waits out the grace period: no DMA reaches the range once this returns. */
  unmap(iova: bigint, length: number): void {
    const rc = this.x.domain_unmap(this.handle, lo(iova), hi(iova), length >> this.shift);
    if (rc < 0) throw new Error(`iommu domain: unmap of [0x${iova.toString(16)}, +0x${length.toString(16)}) failed (${rc})`);
    synchronizeDma(this.kcore, "unmap");
  }

  iovaToPhys(iova: bigint): number {
    const p = this.x.domain_iova_to_phys(this.handle, lo(iova), hi(iova)) >>> 0;
    return p === 0xffffffff ? -1 : p;
  }

  get dirtyEnabled(): boolean { return this.dirtyOn; }

  markDirty(iova: bigint, length: bigint): number {
    return this.x.domain_mark_dirty(this.handle, lo(iova), hi(iova), Number(length >> BigInt(this.shift)));
  }

  setDirtyTracking(on: boolean): number {
    this.dirtyOn = on;
    return this.x.domain_set_dirty_tracking(this.handle, on ? 1 : 0);
  }

  readAndClearDirty(iova: bigint, length: bigint, pageSize: bigint, noClear: boolean, mark: (i: number) => void): number {
    if (!this.dirtyOn) return -errno.EINVAL;
    const nbits = Number(length / pageSize);
    const pageShift = Math.log2(Number(pageSize));
    // A scratch bitmap in the pool: whole frames, zeroed by the allocator.
    const bytes = Math.ceil(nbits / 8);
    const order = Math.max(0, Math.ceil(Math.log2(Math.ceil(bytes / 4096))));
    const f = this.x.frame_alloc(order) >>> 0;
    if (f === 0xffffffff) return -errno.ENOMEM;
    try {
      const at = this.core.poolBase + f * 4096;
      const rc = this.x.domain_read_and_clear_dirty(this.handle, lo(iova), hi(iova), Number(length >> BigInt(this.shift)), at, pageShift, noClear ? 1 : 0);
      if (rc < 0) return rc;
      // Workers drop the IOTLB entries that remember a bit already set before we report.
      if (!noClear) synchronizeDma(this.kcore, "dirty");
      const u8 = this.core.u8;
      for (let i = 0; i < nbits; i++) if (u8[at + (i >> 3)] & (1 << (i & 7))) mark(i);
      return 0;
    } finally {
      for (let i = 0; i < 1 << order; i++) this.x.frame_put(f + i);
    }
  }

  free(): void {
    // No transfer that might still walk these tables survives the wait.
    synchronizeDma(this.kcore, "domain_free");
    const rc = this.x.domain_free(this.handle);
    if (rc < 0) throw new Error(`iommu domain: free failed (${rc})`);
  }
}

/** iommu_paging_domain_alloc for a device's IOMMU: a domain, or -ENOMEM. */
export function allocDomain(kcore: KernelCore, format: IommuCaps["format"], opts: DomainOptions): IommuDomain | number {
  if (kcore.shouldFail()) return -errno.ENOMEM;
  const x = kcore.core.x as unknown as DomainExports;
  const flags = (opts.hugeIova ? DOMAIN_F_HUGE : 0) | (opts.dirtyTracking ? DOMAIN_F_DIRTY_TRACKING : 0);
  const h = x.domain_alloc(kcore.core.c(FORMATS[format].id), flags);
  if (h < 0) return -errno.ENOMEM;
  const d = new WasmDomain(x, kcore, h >>> 0, format);
  // Dirty bits are recorded only once userspace enables tracking.
  if (opts.dirtyTracking) x.domain_set_dirty_tracking(h >>> 0, 0);
  return d;
}
