// IOMMU domains (the kernel's struct iommu_domain): a page table in the wasm core that device
// DMA is translated through. iommufd mirrors IOAS areas into them through IoDomain, the
// contract defined here (the IOMMU core depends on no user of it).

import { errno } from "../uapi/errno.js";
import type { KernelCore } from "../kernel/kernel.js";
import type { IommuCaps } from "./device.js";
import { synchronizeDma } from "../kernel/grace.js";
import { PAGE_SIZE } from "../kernel/mm.js";
import { FRAME_NONE, type Core, type CoreFunctions } from "../wasm/core.js";

/** IOMMU_READ / IOMMU_WRITE of a mapping. */
export interface IommuProt { read: boolean; write: boolean }

/**
 * An IOMMU domain as the io_pagetable drives it (WasmDomain below implements it in wasm):
 * map and unmap runs of physically contiguous bytes. `phys` is a byte offset in the frame pool.
 */
export interface IoDomain {
  /** Bit n set: 2^n-byte IO pages are supported (the smallest one sets the alignment). */
  readonly pgsizeBitmap: bigint;
  readonly apertureStart: bigint;
  readonly apertureEnd: bigint;
  /**
   * 0 or -errno; a failed call leaves nothing of itself mapped. IOVAs are numbers: every
   * aperture ends below 2^53, and a number past it, exact or not, lies outside them all.
   */
  map(iova: number, phys: number, length: number, prot: IommuProt, allowLarge: boolean): number;
  /** Unmaps [iova, iova+length) that earlier map calls covered. */
  unmap(iova: number, length: number): void;
}

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

/** The core's format of each IommuCaps format (assembly/iopt.ts), by the name it exports. */
const FORMAT_IDS = { x86: "IOPT_X86", mock: "IOPT_MOCK" } as const satisfies Record<IommuCaps["format"], keyof Core["consts"]>;

/** The aperture of a format, from the core's constants: [0, 2^48-1] for x86, the mock's window. */
export function aperture(core: Core, format: IommuCaps["format"]): [bigint, bigint] {
  if (format === "x86") return [0n, (1n << BigInt(core.consts.X86_IOVA_BITS)) - 1n];
  return [BigInt(core.consts.MOCK_APERTURE_START), BigInt(core.consts.MOCK_APERTURE_LAST)];
}

// The two u32 halves of an IOVA for the wasm calls (domains and DMA); IOVAs below 2^53 (all
// real apertures) take the number path, which allocates no intermediate BigInt.
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const U32 = 0x100000000;
/** The halves of a safe integer n >= 0, by floor: `%` on a double past 2^31 is an fmod call. */
export const hi32 = (n: number): number => Math.floor(n / U32);
export const lo32 = (n: number): number => n - hi32(n) * U32;
export const iovaLo = (v: bigint): number => (v <= SAFE ? lo32(Number(v)) : Number(v & 0xffffffffn));
/** The high half (wasm takes its low 32 bits). */
export const iovaHi = (v: bigint): number => (v <= SAFE ? hi32(Number(v)) : Number(v >> 32n));

/** A paging domain in the wasm core. */
class WasmDomain implements IommuDomain {
  readonly pgsizeBitmap: bigint;
  readonly apertureStart: bigint;
  readonly apertureEnd: bigint;
  private readonly shift: number;
  /** The core's IOMMU_READ / IOMMU_WRITE prot bits. */
  private readonly protRead: number;
  private readonly protWrite: number;
  private dirtyOn = false;

  private readonly core: Core;
  private readonly x: CoreFunctions;

  constructor(private readonly kcore: KernelCore, readonly handle: number, readonly format: IommuCaps["format"]) {
    const core = kcore.core;
    this.core = core;
    this.x = core.x;
    this.shift = this.x.domain_page_shift(handle);
    [this.apertureStart, this.apertureEnd] = aperture(core, format);
    this.pgsizeBitmap = BigInt(this.x.domain_pgsize_bitmap(handle) >>> 0);
    this.protRead = core.consts.IOMMU_READ;
    this.protWrite = core.consts.IOMMU_WRITE;
  }

  map(iova: number, phys: number, length: number, prot: IommuProt, allowLarge: boolean): number {
    // Past 2^53 (where a number may be rounded): outside every aperture, as the core says.
    if (!(iova <= Number.MAX_SAFE_INTEGER)) return -errno.EINVAL;
    const unit = 1 << this.shift;
    // The IO page divides 2^32: the low half of the IOVA tells its alignment.
    const lo = lo32(iova);
    // Masks, not `%` (an fmod on doubles): phys and lo pass 2^31; all three are integers.
    const m = unit - 1;
    if ((lo & m) || (phys & m) || (length & m)) return -errno.EINVAL;
    const p = (prot.read ? this.protRead : 0) | (prot.write ? this.protWrite : 0);
    const rc = this.x.domain_map(this.handle, lo, hi32(iova), phys / unit, length / unit, p, allowLarge ? 1 : 0);
    // A failed map rolled back the leaves it had written (and invalidated): a worker that
    // raced into them is waited out before the caller unpins their frames.
    if (rc < 0) synchronizeDma(this.kcore, "map");
    return rc;
  }

  /** Unmaps, then waits out the grace period: no DMA reaches the range once this returns. */
  unmap(iova: number, length: number): void {
    // Only what map took can be unmapped: an IOVA no aperture holds is a caller's bug (and
    // past 2^53 its halves would name another IOVA).
    const ok = iova <= Number.MAX_SAFE_INTEGER;
    const rc = ok ? this.x.domain_unmap(this.handle, lo32(iova), hi32(iova), length >> this.shift) : -errno.EINVAL;
    if (rc < 0) throw new Error(`iommu domain: unmap of [0x${iova.toString(16)}, +0x${length.toString(16)}) failed (${rc})`);
    synchronizeDma(this.kcore, "unmap");
  }

  iovaToPhys(iova: bigint): number {
    const p = this.x.domain_iova_to_phys(this.handle, iovaLo(iova), iovaHi(iova)) >>> 0;
    return p === 0xffffffff ? -1 : p;
  }

  get dirtyEnabled(): boolean { return this.dirtyOn; }

  markDirty(iova: bigint, length: bigint): number {
    return this.x.domain_mark_dirty(this.handle, iovaLo(iova), iovaHi(iova), Number(length >> BigInt(this.shift)));
  }

  setDirtyTracking(on: boolean): number {
    this.dirtyOn = on;
    const rc = this.x.domain_set_dirty_tracking(this.handle, on ? 1 : 0);
    // The IOTLB entries remember whether a write owes a dirty bit: once tracking is on, no
    // worker still writes through one filled before (it drops them at its next stretch).
    if (rc === 0) synchronizeDma(this.kcore, "dirty_tracking");
    return rc;
  }

  readAndClearDirty(iova: bigint, length: bigint, pageSize: bigint, noClear: boolean, mark: (i: number) => void): number {
    if (!this.dirtyOn) return -errno.EINVAL;
    const nbits = Number(length / pageSize);
    const pageShift = Math.log2(Number(pageSize));
    // A scratch bitmap in the pool: whole frames, zeroed by the allocator.
    const bytes = Math.ceil(nbits / 8);
    const order = Math.max(0, Math.ceil(Math.log2(Math.ceil(bytes / PAGE_SIZE))));
    const f = this.x.frame_alloc(order) >>> 0;
    if (f === FRAME_NONE) return -errno.ENOMEM;
    try {
      const at = this.core.poolBase + f * PAGE_SIZE;
      const rc = this.x.domain_read_and_clear_dirty(this.handle, iovaLo(iova), iovaHi(iova), Number(length >> BigInt(this.shift)), at, pageShift, noClear ? 1 : 0);
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
  const core = kcore.core;
  const x = core.x;
  const flags = (opts.hugeIova ? core.consts.DOMAIN_F_HUGE : 0) | (opts.dirtyTracking ? core.consts.DOMAIN_F_DIRTY_TRACKING : 0);
  const h = x.domain_alloc(core.consts[FORMAT_IDS[format]], flags);
  if (h < 0) return -errno.ENOMEM;
  const d = new WasmDomain(kcore, h >>> 0, format);
  // Dirty bits are recorded only once userspace enables tracking.
  if (opts.dirtyTracking) x.domain_set_dirty_tracking(h >>> 0, 0);
  return d;
}
