// The type1 IOMMU backend of the legacy container (drivers/vfio/vfio_iommu_type1.c): the tree
// of user DMA mappings (vfio_dma), pinned once each with RLIMIT_MEMLOCK charged per mm (device
// memory, a BAR's VM_PFNMAP mmap, taken by pfn instead: reserved, neither pinned nor charged),
// and mirrored into one IOMMU domain per IOMMU kind among the attached groups. v1 and v2 differ
// only in UNMAP_DMA: v2 refuses a range that bisects a mapping; v1 removes every mapping that
// starts inside the range and stops at one that starts before it (SPEC.md §3.4).
//
// Control plane only (the kernel's iommu->lock is implicit). What other threads see are the
// domains' page tables: DMA translates through IommuDomain handles (VfioDevice.domainHandle).

import { errno } from "../uapi/errno.js";
import {
  VFIO_CHECK_EXTENSION, VFIO_IOMMU_DIRTY_PAGES, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA,
} from "../uapi/ioctl.js";
import {
  VFIO_DMA_CC_IOMMU, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_VADDR, VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, VFIO_IOMMU_DIRTY_PAGES_FLAG_START, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
  VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR, vfio_bitmap, vfio_info_cap_header, vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_type1_dirty_bitmap_get, vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap, vfio_iommu_type1_info,
} from "../uapi/vfio.js";
import { vfioCopyIn } from "../kernel/ioctl.js";
import type { KernelCore } from "../kernel/kernel.js";
import { synchronizeDma } from "../kernel/grace.js";
import { PAGE_SIZE } from "../kernel/mm.js";
import type { Process } from "../kernel/process.js";
import type { IommuCaps } from "../iommu/device.js";
import { allocDomain, aperture, type IommuDomain } from "../iommu/domain.js";
import { IoptPages, userSource } from "../iommufd/pages.js";
import type { VfioGroup } from "./group.js";
import { capDmaAvail, capIovaRange, capMigration, capPaddedSize } from "../uapi/vfio_type1_caps.js";

const PAGE = BigInt(PAGE_SIZE);
const U64_MAX = (1n << 64n) - 1n;
/** DIRTY_BITMAP_SIZE_MAX: the bitmap of INT_MAX pages, in bytes. */
const DIRTY_BITMAP_SIZE_MAX = 0x10000000n;
/** DIRTY_BITMAP_PAGES_MAX. */
const DIRTY_BITMAP_PAGES_MAX = 0x7fffffffn;

/** One user mapping (struct vfio_dma). */
interface VfioDma {
  iova: bigint;
  size: bigint;
  vaddr: bigint;
  read: boolean;
  write: boolean;
  /** The pinned user pages (one user: this mapping), charged to their owner's mm. */
  pages: IoptPages;
  /** The pages are pinned and mapped into every domain. */
  pinned: boolean;
  vaddrInvalid: boolean;
  /** Dirty tracking: every pinned page counts as dirty until reported (no hw dirty bits). */
  dirty: boolean;
}

/** A domain and the groups attached to it (struct vfio_domain). */
interface Type1Domain {
  readonly format: IommuCaps["format"];
  readonly domain: IommuDomain;
  readonly groups: Set<VfioGroup>;
}

export interface IovaRange { start: bigint; last: bigint }

/** Settings of the type1 module (its module parameters). */
export interface Type1Params {
  /** dma_entry_limit */
  readonly dmaEntryLimit: number;
  /** allow_unsafe_interrupts */
  readonly allowUnsafeInterrupts: boolean;
}

const last = (d: VfioDma): bigint => d.iova + d.size - 1n;

/** struct vfio_iommu: the data of one container whose IOMMU is type1 or type1v2. */
export class VfioIommuType1 {
  /** Mappings sorted by iova (the kernel's rb-tree). */
  private readonly dmas: VfioDma[] = [];
  readonly domains: Type1Domain[] = [];
  dmaAvail: number;
  private dirtyTracking = false;

  constructor(readonly kcore: KernelCore, readonly v2: boolean, private readonly params: Type1Params) {
    this.dmaAvail = params.dmaEntryLimit;
  }

  /** vfio_iommu_type1_open: TYPE1 or TYPE1v2 (anything else is not ours). */
  static typeSupported(type: number): boolean {
    return type === VFIO_TYPE1_IOMMU || type === VFIO_TYPE1v2_IOMMU;
  }

  /** vfio_iommu_type1_check_extension; `iommu` is null while the container has no IOMMU set. */
  static checkExtension(iommu: VfioIommuType1 | null, ext: number): number {
    switch (ext) {
      case VFIO_TYPE1_IOMMU:
      case VFIO_TYPE1v2_IOMMU:
      case VFIO_UNMAP_ALL:
        return 1;
      case VFIO_UPDATE_VADDR:
        // Disabled with emulated (mdev) groups; there are none here.
        return iommu ? 1 : 0;
      case VFIO_DMA_CC_IOMMU:
        // Every domain here is created with IOMMU_CACHE (coherent devices only).
        return iommu ? 1 : 0;
      default:
        return 0;
    }
  }

  /** The domain handle the devices of `group` translate through, or 0 (blocked). */
  domainHandleOf(group: VfioGroup): number {
    for (const d of this.domains) if (d.groups.has(group)) return d.domain.handle;
    return 0;
  }

  // ---- groups (vfio_iommu_type1_attach_group / detach_group) --------------------------------

  /** What the group's devices' IOMMU is: all members of a group sit behind one IOMMU. */
  private capsOf(group: VfioGroup): IommuCaps | null {
    const dev = group.devices[0];
    return dev ? dev.iommuDev.caps : null;
  }

  /**
   * Attaches a group: interrupt isolation (EPERM unless allow_unsafe_interrupts), cache
   * coherency (EINVAL), a domain of its IOMMU kind (shared with groups of the same kind, or a
   * new one filled with every mapping), existing mappings inside the new valid IOVA ranges
   * (EINVAL). All or nothing.
   */
  attachGroup(group: VfioGroup): number {
    if (this.domains.some((d) => d.groups.has(group))) return -errno.EINVAL;
    const caps = this.capsOf(group);
    if (!caps) return -errno.ENODEV;
    for (const dev of group.devices) {
      if (!dev.iommuDev.caps.coherent) return -errno.EINVAL;
      if (!dev.iommuDev.caps.msiIsolated && !this.params.allowUnsafeInterrupts) return -errno.EPERM;
    }
    // The IOVA ranges with this group in: every existing mapping must stay valid.
    const ranges = this.computeRanges(group);
    for (const dma of this.dmas) {
      if (!ranges.some((r) => dma.iova >= r.start && last(dma) <= r.last)) return -errno.EINVAL;
    }
    let d = this.domains.find((x) => x.format === caps.format);
    if (!d) {
      const dom = allocDomain(this.kcore, caps.format, { dirtyTracking: false });
      if (typeof dom === "number") return dom;
      const fresh: Type1Domain = { format: caps.format, domain: dom, groups: new Set() };
      const rc = this.replay(fresh);
      if (rc < 0) { dom.free(); return rc; }
      this.domains.push(fresh);
      d = fresh;
    }
    d.groups.add(group);
    group.iommuGroup.setUserDomain(true);
    // Where device engines on other threads read it (paired with dev_dma's load of DEV_DOMAIN).
    for (const dev of group.devices) dev.iommuDev.publishDomain?.(d.domain.handle);
    return 0;
  }

  /**
   * Detaches a group: back to the blocking domain. A domain left without groups is emptied
   * and freed; when it was the last one every mapping goes (unpinned, uncharged).
   */
  detachGroup(group: VfioGroup): void {
    const i = this.domains.findIndex((d) => d.groups.has(group));
    if (i < 0) return;
    const d = this.domains[i];
    d.groups.delete(group);
    // Blocked from now on: no DMA of the group's devices reaches the domain once this returns.
    for (const dev of group.devices) dev.iommuDev.publishDomain?.(0);
    synchronizeDma(this.kcore, "detach");
    group.iommuGroup.setUserDomain(false);
    if (d.groups.size > 0) return;
    if (this.domains.length === 1) {
      this.removeAll();
    } else {
      for (const dma of this.dmas) if (dma.pinned) d.domain.unmap(Number(dma.iova), Number(dma.size));
    }
    this.domains.splice(i, 1);
    d.domain.free();
  }

  /** vfio_iommu_type1_release: every mapping goes, then every domain. */
  release(): void {
    this.removeAll();
    for (const d of this.domains.splice(0)) {
      for (const g of d.groups) g.iommuGroup.setUserDomain(false);
      d.domain.free();
    }
  }

  /** Maps every pinned mapping into a new domain (pinning the ones nobody pinned yet). */
  private replay(d: Type1Domain): number {
    const done: VfioDma[] = [];
    const pinnedHere: VfioDma[] = [];
    const unwind = () => {
      for (const dma of done) d.domain.unmap(Number(dma.iova), Number(dma.size));
      for (const dma of pinnedHere) { dma.pages.unpinRange(0, dma.pages.npages - 1); dma.pinned = false; }
    };
    for (const dma of this.dmas) {
      if (!dma.pinned) {
        const rc = dma.pages.pinRange(0, dma.pages.npages - 1);
        if (rc < 0) { unwind(); return rc; }
        dma.pinned = true;
        pinnedHere.push(dma);
      }
      const rc = this.mapInto(d.domain, dma);
      if (rc < 0) { unwind(); return rc; }
      done.push(dma);
    }
    return 0;
  }

  /** Maps the pinned pages of `dma` into `dom`, run by run of contiguous frames. */
  private mapInto(dom: IommuDomain, dma: VfioDma): number {
    const n = dma.pages.npages;
    for (let i = 0; i < n;) {
      const f = dma.pages.frameAt(i);
      const run = dma.pages.contigFrames(i, n - i);
      const rc = dom.map(Number(dma.iova) + i * PAGE_SIZE, f * PAGE_SIZE, run * PAGE_SIZE, { read: dma.read, write: dma.write }, true);
      if (rc < 0) {
        if (i > 0) dom.unmap(Number(dma.iova), i * PAGE_SIZE);
        return rc;
      }
      i += run;
    }
    return 0;
  }

  // ---- the valid IOVA ranges (iova_list) and page sizes ----------------------------------

  /**
   * The IOVA ranges a mapping may use: the intersection of the domain apertures, less every
   * reserved region of every attached device (direct-relaxable ones excepted). `extra`: a
   * group about to be attached. An empty list means "no restriction" (no domain yet).
   */
  private computeRanges(extra?: VfioGroup): IovaRange[] {
    const groups = new Set<VfioGroup>();
    for (const d of this.domains) for (const g of d.groups) groups.add(g);
    if (extra) groups.add(extra);
    if (groups.size === 0) return [];
    let start = 0n;
    let end = U64_MAX;
    const resv: IovaRange[] = [];
    for (const g of groups) {
      for (const dev of g.devices) {
        const [s, e] = aperture(this.kcore.core, dev.iommuDev.caps.format);
        if (s > start) start = s;
        if (e < end) end = e;
        for (const r of dev.iommuDev.reservedRegions) {
          if (r.type !== "direct-relaxable") resv.push({ start: r.start, last: r.last });
        }
      }
    }
    let ranges: IovaRange[] = start <= end ? [{ start, last: end }] : [];
    for (const r of resv) {
      const next: IovaRange[] = [];
      for (const x of ranges) {
        if (r.last < x.start || r.start > x.last) { next.push(x); continue; }
        if (r.start > x.start) next.push({ start: x.start, last: r.start - 1n });
        if (r.last < x.last) next.push({ start: r.last + 1n, last: x.last });
      }
      ranges = next;
    }
    return ranges.sort((a, b) => (a.start < b.start ? -1 : 1));
  }

  validRanges(): IovaRange[] { return this.computeRanges(); }

  /** vfio_update_pgsize_bitmap: the AND of the domains', sub-page sizes folded into PAGE_SIZE. */
  pgsizeBitmap(): bigint {
    let bm = U64_MAX;
    for (const d of this.domains) bm &= d.domain.pgsizeBitmap;
    if (bm & (PAGE - 1n)) bm = (bm & ~(PAGE - 1n)) | PAGE;
    return bm;
  }

  /** The smallest supported IOMMU page size. */
  private minPage(): bigint {
    const bm = this.pgsizeBitmap();
    return bm & -bm;
  }

  // ---- the mapping tree ------------------------------------------------------------------

  /** vfio_find_dma: a mapping that overlaps [start, end], or undefined. */
  private findDma(start: bigint, end: bigint): VfioDma | undefined {
    return this.dmas.find((d) => d.iova <= end && last(d) >= start);
  }

  /** The index of the lowest mapping that overlaps [start, end], or -1. */
  private firstIndex(start: bigint, end: bigint): number {
    return this.dmas.findIndex((d) => last(d) >= start && d.iova <= end);
  }

  private insert(dma: VfioDma): void {
    let i = 0;
    while (i < this.dmas.length && this.dmas[i].iova < dma.iova) i++;
    this.dmas.splice(i, 0, dma);
  }

  /** vfio_remove_dma: out of every domain, unpinned and uncharged, out of the tree. */
  private removeDma(dma: VfioDma): void {
    if (dma.pinned) {
      for (const d of this.domains) d.domain.unmap(Number(dma.iova), Number(dma.size));
      dma.pages.unpinRange(0, dma.pages.npages - 1);
      dma.pinned = false;
    }
    dma.pages.put();
    const i = this.dmas.indexOf(dma);
    if (i >= 0) this.dmas.splice(i, 1);
    this.dmaAvail++;
  }

  private removeAll(): void {
    for (const dma of [...this.dmas]) this.removeDma(dma);
  }

  // ---- ioctls ----------------------------------------------------------------------------

  /** vfio_iommu_type1_ioctl: what the container forwards once the IOMMU is set. */
  ioctl(proc: Process, cmd: number, arg: number): number {
    switch (cmd) {
      case VFIO_CHECK_EXTENSION: return VfioIommuType1.checkExtension(this, arg);
      case VFIO_IOMMU_GET_INFO: return this.getInfo(proc, arg);
      case VFIO_IOMMU_MAP_DMA: return this.mapDmaIoctl(proc, arg);
      case VFIO_IOMMU_UNMAP_DMA: return this.unmapDmaIoctl(proc, arg);
      case VFIO_IOMMU_DIRTY_PAGES: return this.dirtyPages(proc, arg);
      default: return -errno.ENOTTY;
    }
  }

  /** VFIO_IOMMU_MAP_DMA: argsz >= 32, flags within READ|WRITE|VADDR (EINVAL). */
  private mapDmaIoctl(proc: Process, arg: number): number {
    const L = vfio_iommu_type1_dma_map;
    const c = vfioCopyIn(proc, arg, L);
    if (typeof c === "number") return c;
    const v = c.view;
    const flags = v.getUint32(L.fields.flags.off, true);
    if (flags & ~(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR)) return -errno.EINVAL;
    return this.doMap(proc, flags, v.getBigUint64(L.fields.vaddr.off, true), v.getBigUint64(L.fields.iova.off, true),
      v.getBigUint64(L.fields.size.off, true));
  }

  /**
   * vfio_dma_do_map, in the kernel's order: size 0 (EINVAL); iova or vaddr range wraps
   * (EOVERFLOW); READ/WRITE together with VADDR, or none of them (EINVAL); size, iova, vaddr
   * not multiples of the smallest IOMMU page (EINVAL); VADDR: no mapping (ENOENT), not
   * invalidated or not the same range (EINVAL); overlap (EEXIST); no entry left (ENOSPC);
   * outside the valid IOVA ranges (EINVAL); pin failures (ENOMEM over RLIMIT_MEMLOCK, EFAULT).
   */
  doMap(proc: Process, flags: number, vaddr: bigint, iova: bigint, size: bigint): number {
    const setVaddr = (flags & VFIO_DMA_MAP_FLAG_VADDR) !== 0;
    if (size === 0n) return -errno.EINVAL;
    if (iova + size - 1n > U64_MAX || vaddr + size - 1n > U64_MAX) return -errno.EOVERFLOW;
    const read = (flags & VFIO_DMA_MAP_FLAG_READ) !== 0;
    const write = (flags & VFIO_DMA_MAP_FLAG_WRITE) !== 0;
    const prot = read || write;
    if ((prot && setVaddr) || (!prot && !setVaddr)) return -errno.EINVAL;
    const pg = this.minPage();
    if ((size | iova | vaddr) & (pg - 1n)) return -errno.EINVAL;
    const end = iova + size - 1n;
    const hit = this.findDma(iova, end);
    if (setVaddr) {
      if (!hit) return -errno.ENOENT;
      if (!hit.vaddrInvalid || hit.iova !== iova || hit.size !== size) return -errno.EINVAL;
      // vfio_change_dma_owner: the pinned pages' charge moves to the caller's mm first.
      if (hit.pages.owner !== proc) {
        const rc = hit.pages.moveCharge(proc);
        if (rc < 0) return rc;
      }
      hit.vaddr = vaddr;
      hit.vaddrInvalid = false;
      return 0;
    }
    if (hit) return -errno.EEXIST;
    if (this.dmaAvail === 0) return -errno.ENOSPC;
    const ranges = this.validRanges();
    if (ranges.length > 0 && !ranges.some((r) => iova >= r.start && end <= r.last)) return -errno.EINVAL;
    if (this.kcore.shouldFail()) return -errno.ENOMEM;
    // Sizes that cannot be pinned page by page here are far past any RLIMIT_MEMLOCK.
    if (size / PAGE > BigInt(Number.MAX_SAFE_INTEGER)) return -errno.ENOMEM;
    const npages = Number(size / PAGE);
    const pages = new IoptPages(userSource(proc.mm, vaddr), npages, write, proc, this.kcore, () => {});
    // type1 charges locked_vm of the mapping task's mm (CAP_IPC_LOCK: nothing is charged),
    // and takes device memory (VM_PFNMAP, a BAR mmap) by pfn, uncharged (vaddr_get_pfns).
    if (pages.accountMode === "user") pages.accountMode = "mm";
    pages.followPfnmap = true;
    const dma: VfioDma = { iova, size, vaddr, read, write, pages, pinned: false, vaddrInvalid: false, dirty: this.dirtyTracking };
    this.dmaAvail--;
    this.insert(dma);
    if (this.domains.length > 0) {
      // The limit check the kernel makes page by page while pinning, made up front so that
      // a mapping far over the limit fails without faulting in its pages first.
      // Reserved pfns (a BAR's) are never charged, so they do not count here either.
      const chargeable = () => npages - proc.mm.pfnmapPages(Number(vaddr), Number(size));
      let rc = pages.accountMode === "mm" && proc.mm.lockedVm + npages > proc.memlockPages &&
        proc.mm.lockedVm + chargeable() > proc.memlockPages ? -errno.ENOMEM : 0;
      if (rc === 0) rc = pages.pinRange(0, npages - 1);
      if (rc === 0) {
        dma.pinned = true;
        const done: IommuDomain[] = [];
        for (const d of this.domains) {
          rc = this.mapInto(d.domain, dma);
          if (rc < 0) break;
          done.push(d.domain);
        }
        if (rc < 0) {
          for (const d of done) d.unmap(Number(iova), Number(size));
          pages.unpinRange(0, npages - 1);
          dma.pinned = false;
        }
      }
      if (rc < 0) {
        this.removeDma(dma);
        return rc;
      }
    }
    return 0;
  }

  /** VFIO_IOMMU_UNMAP_DMA: on success the 24-byte head is written back with size = bytes unmapped. */
  private unmapDmaIoctl(proc: Process, arg: number): number {
    const L = vfio_iommu_type1_dma_unmap;
    const c = vfioCopyIn(proc, arg, L);
    if (typeof c === "number") return c;
    const { argsz, view: v } = c;
    const flags = v.getUint32(L.fields.flags.off, true);
    const mask = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL;
    if (flags & ~mask) return -errno.EINVAL;
    const dirty = (flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0;
    if (dirty && (flags & (VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR))) return -errno.EINVAL;
    let bitmap: { pgsize: bigint; size: bigint; data: bigint } | null = null;
    const iova = v.getBigUint64(L.fields.iova.off, true);
    const size = v.getBigUint64(L.fields.size.off, true);
    if (dirty) {
      if (argsz < L.minSize + vfio_bitmap.size) return -errno.EINVAL;
      const bb = proc.mm.copyFromUser(arg + L.minSize, vfio_bitmap.size);
      if (typeof bb === "number") return bb;
      const bv = new DataView(bb.buffer, bb.byteOffset, bb.byteLength);
      const B = vfio_bitmap.fields;
      bitmap = { pgsize: bv.getBigUint64(B.pgsize.off, true), size: bv.getBigUint64(B.size.off, true), data: bv.getBigUint64(B.data.off, true) };
      if (bitmap.pgsize === 0n) return -errno.EINVAL;
      const rc = verifyBitmapSize(size / bitmap.pgsize, bitmap.size);
      if (rc < 0) return rc;
    }
    const r = this.doUnmap(proc, flags, iova, size, bitmap);
    if (r.rc < 0) return r.rc;
    v.setBigUint64(L.fields.size.off, r.unmapped, true);
    return proc.mm.copyToUser(arg, c.bytes) < 0 ? -errno.EFAULT : 0;
  }

  /**
   * vfio_dma_do_unmap: iova not aligned (EINVAL); ALL needs iova = size = 0 (EINVAL); else
   * size 0 or unaligned (EINVAL), range wraps (EOVERFLOW); dirty bitmap without tracking or
   * with another page size (EINVAL); v2: a mapping bisected at either end (EINVAL, nothing
   * done). Then every mapping from the first one in range: v1 stops at one that starts
   * before iova. Nothing in range: success, 0 bytes.
   */
  doUnmap(proc: Process | null, flags: number, iova: bigint, size: bigint,
    bitmap: { pgsize: bigint; size: bigint; data: bigint } | null): { rc: number; unmapped: bigint } {
    const all = (flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
    const invalidate = (flags & VFIO_DMA_UNMAP_FLAG_VADDR) !== 0;
    const fail = (rc: number) => ({ rc, unmapped: 0n });
    const pg = this.minPage();
    if (iova & (pg - 1n)) return fail(-errno.EINVAL);
    let end: bigint;
    if (all) {
      if (iova || size) return fail(-errno.EINVAL);
      end = U64_MAX;
    } else {
      if (size === 0n || (size & (pg - 1n))) return fail(-errno.EINVAL);
      end = iova + size - 1n;
      if (end > U64_MAX) return fail(-errno.EOVERFLOW);
    }
    if (bitmap && (!this.dirtyTracking || bitmap.pgsize !== pg)) return fail(-errno.EINVAL);
    if (this.v2 && !all) {
      const a = this.findDma(iova, iova);
      if (a && a.iova !== iova) return fail(-errno.EINVAL);
      const z = this.findDma(end, end);
      if (z && last(z) !== end) return fail(-errno.EINVAL);
    }
    let unmapped = 0n;
    let i = this.firstIndex(iova, end);
    if (i < 0) return { rc: 0, unmapped: 0n };
    const invalidated: VfioDma[] = [];
    while (i < this.dmas.length) {
      const dma = this.dmas[i];
      if (dma.iova > end) break;
      if (!this.v2 && iova > dma.iova) break;
      if (invalidate) {
        if (dma.vaddrInvalid) {
          for (const d of invalidated) d.vaddrInvalid = false;
          return fail(-errno.EINVAL);
        }
        dma.vaddrInvalid = true;
        invalidated.push(dma);
        unmapped += dma.size;
        i++;
        continue;
      }
      if (bitmap && proc) {
        const rc = this.reportDirty(proc, bitmap.data, dma, iova, pg);
        if (rc < 0) return { rc, unmapped };
      }
      unmapped += dma.size;
      this.removeDma(dma);
    }
    return { rc: 0, unmapped };
  }

  /**
   * VFIO_IOMMU_GET_INFO: flags PGSIZES|CAPS, the page sizes, and the capability chain
   * (migration, dma-avail, iova-range, each padded to 8 bytes) after the 24-byte struct when
   * argsz has room for all of it; otherwise argsz is raised to the size needed, cap_offset
   * stays 0, and the call still succeeds. min(argsz, 24) bytes are written back.
   */
  private getInfo(proc: Process, arg: number): number {
    const L = vfio_iommu_type1_info;
    const c = vfioCopyIn(proc, arg, L);
    if (typeof c === "number") return c;
    const argsz = c.argsz;
    const bm = this.pgsizeBitmap();
    const ranges = this.validRanges();
    const caps = [capMigration(bm & -bm, DIRTY_BITMAP_SIZE_MAX), capDmaAvail(this.dmaAvail)];
    if (ranges.length > 0) caps.push(capIovaRange(ranges));
    const capsSize = caps.reduce((n, c) => n + capPaddedSize(c), 0);
    const info = new Uint8Array(L.size);
    const iv = new DataView(info.buffer);
    iv.setUint32(L.fields.argsz.off, argsz, true);
    iv.setUint32(L.fields.flags.off, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS, true);
    iv.setBigUint64(L.fields.iova_pgsizes.off, bm, true);
    if (argsz < L.size + capsSize) {
      iv.setUint32(L.fields.argsz.off, L.size + capsSize, true);
    } else {
      // The chain, with each header's next made relative to the start of the user's buffer.
      const chain = new Uint8Array(capsSize);
      let off = 0;
      caps.forEach((c, k) => {
        chain.set(c, off);
        const next = k + 1 < caps.length ? L.size + off + capPaddedSize(c) : 0;
        new DataView(chain.buffer).setUint32(off + vfio_info_cap_header.fields.next.off, next, true);
        off += capPaddedSize(c);
      });
      if (proc.mm.copyToUser(arg + L.size, chain) < 0) return -errno.EFAULT;
      iv.setUint32(L.fields.cap_offset.off, L.size, true);
    }
    return proc.mm.copyToUser(arg, info.subarray(0, Math.min(argsz, L.size))) < 0 ? -errno.EFAULT : 0;
  }

  // ---- dirty page tracking (VFIO_IOMMU_DIRTY_PAGES) --------------------------------------

  /**
   * Dirty tracking of a container of physical devices: type1 cannot see device writes, so
   * every pinned page of a mapping is reported dirty (vfio_dma_populate_bitmap with
   * non-pinned groups). v1 containers: EACCES.
   */
  private dirtyPages(proc: Process, arg: number): number {
    if (!this.v2) return -errno.EACCES;
    const L = vfio_iommu_type1_dirty_bitmap;
    const c = vfioCopyIn(proc, arg, L);
    if (typeof c === "number") return c;
    const argsz = c.argsz;
    const flags = c.view.getUint32(L.fields.flags.off, true);
    const mask = VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP | VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
    if (flags & ~mask) return -errno.EINVAL;
    // Exactly one flag.
    if (flags === 0 || (flags & (flags - 1))) return -errno.EINVAL;
    if (flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_START) {
      if (!this.dirtyTracking) {
        this.dirtyTracking = true;
        for (const d of this.dmas) d.dirty = true;
      }
      return 0;
    }
    if (flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) {
      this.dirtyTracking = false;
      return 0;
    }
    const G = vfio_iommu_type1_dirty_bitmap_get;
    if (argsz < L.size + G.size) return -errno.EINVAL;
    const gb = proc.mm.copyFromUser(arg + L.size, G.size);
    if (typeof gb === "number") return gb;
    const gv = new DataView(gb.buffer, gb.byteOffset, gb.byteLength);
    const iova = gv.getBigUint64(G.fields.iova.off, true);
    const size = gv.getBigUint64(G.fields.size.off, true);
    const pgsize = gv.getBigUint64(G.fields["bitmap.pgsize"].off, true);
    const bsize = gv.getBigUint64(G.fields["bitmap.size"].off, true);
    const data = gv.getBigUint64(G.fields["bitmap.data"].off, true);
    if (size === 0n) return -errno.EINVAL;
    if (iova + size - 1n > U64_MAX) return -errno.EOVERFLOW;
    if (pgsize === 0n) return -errno.EINVAL;
    let rc = verifyBitmapSize(size / pgsize, bsize);
    if (rc < 0) return rc;
    const pg = this.minPage();
    if (pgsize !== pg || (iova & (pg - 1n)) || (size & (pg - 1n))) return -errno.EINVAL;
    if (!this.dirtyTracking) return -errno.EINVAL;
    const end = iova + size - 1n;
    // The range must not bisect a mapping.
    const a = this.findDma(iova, iova);
    if (a && a.iova !== iova) return -errno.EINVAL;
    const z = this.findDma(end, end);
    if (z && last(z) !== end) return -errno.EINVAL;
    for (const dma of this.dmas) {
      if (dma.iova < iova) continue;
      if (dma.iova > end) break;
      rc = this.reportDirty(proc, data, dma, iova, pg);
      if (rc < 0) return rc;
    }
    return 0;
  }

  /** Sets the bits of `dma`'s pages (relative to `base`) in the user bitmap, then clears them. */
  private reportDirty(proc: Process, data: bigint, dma: VfioDma, base: bigint, pg: bigint): number {
    if (!dma.dirty || !dma.pinned) return 0;
    const first = Number((dma.iova - base) / pg);
    const nbits = Number(dma.size / pg);
    const lo = Math.floor(first / 8);
    const hi = Math.floor((first + nbits - 1) / 8);
    const addr = Number(data) + lo;
    const cur = proc.mm.copyFromUser(addr, hi - lo + 1);
    if (typeof cur === "number") return -errno.EFAULT;
    for (let k = 0; k < nbits; k++) {
      const bit = first + k;
      cur[(bit >> 3) - lo] |= 1 << (bit & 7);
    }
    if (proc.mm.copyToUser(addr, cur) < 0) return -errno.EFAULT;
    // Re-populated at once: pinned pages stay dirty for as long as tracking runs.
    return 0;
  }
}

/** verify_bitmap_size: at most DIRTY_BITMAP_PAGES_MAX pages, and a big enough buffer. */
function verifyBitmapSize(npages: bigint, bitmapSize: bigint): number {
  if (npages === 0n || bitmapSize === 0n || npages > DIRTY_BITMAP_PAGES_MAX) return -errno.EINVAL;
  const bytes = ((npages + 63n) / 64n) * 8n;
  if (bitmapSize < bytes) return -errno.EINVAL;
  return 0;
}
