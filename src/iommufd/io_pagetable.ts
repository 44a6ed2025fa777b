// io_pagetable (drivers/iommu/iommufd/io_pagetable.c): the IOVA space of one IOAS — its areas
// (each a slice of an iopt_pages), the reserved ranges nothing may be mapped into, the optional
// allowed list that bounds automatic placement, and the alignment every map must keep.
// The placement and unmap rules here are the kernel's, errno for errno (SPEC.md §4).

import { errno } from "../uapi/errno.js";
import {
  addOverflow, alignUp, holes, HPAGE_SIZE, intersects, lowestBit, PAGE_SIZE, pow2ceil,
  ULONG_MAX, usedSpans, type Interval,
} from "./iova.js";
import type { IoptPages } from "./pages.js";

const PAGE = BigInt(PAGE_SIZE);

export interface IommuProt { read: boolean; write: boolean }

export class IoptArea implements Interval {
  /** null while the map that creates it is in progress (an UNMAP that meets it gets EBUSY). */
  pages: IoptPages | null = null;
  constructor(
    public start: bigint,
    public last: bigint,
    /** Offset of the area's first byte from byte 0 of its pages. */
    readonly startByte: bigint,
    readonly prot: IommuProt,
  ) {}

  get length(): bigint { return this.last - this.start + 1n; }
  get pageOffset(): bigint { return this.startByte % PAGE; }
  /** The offset into the pages of `iova` inside this area (iopt_area_start_byte). */
  startByteOf(iova: bigint): bigint { return this.startByte + (iova - this.start); }
}

export interface Reserved extends Interval { owner: unknown }

/** One slice of pages to map (struct iopt_pages_list). */
export interface PagesSlice { pages: IoptPages; startByte: bigint; length: bigint }

export class IoPagetable {
  /** Sorted by start; never overlapping. */
  readonly areas: IoptArea[] = [];
  /** Sorted by start; may overlap each other (different owners). */
  readonly reserved: Reserved[] = [];
  /** Sorted, non-overlapping (ALLOW_IOVAS). */
  allowed: Interval[] = [];
  /** A fresh table is a software table over the whole 64-bit space, with no alignment. */
  iovaAlignment = 1n;
  disableLargePages = false;

  constructor(
    /** A fault-injection point: true when this allocation must fail (ENOMEM). */
    private readonly shouldFail: () => boolean,
  ) {}

  // ---- lookups ----------------------------------------------------------------------------

  firstArea(start: bigint, last: bigint): IoptArea | undefined {
    return this.areas.find((a) => intersects(a, start, last));
  }

  private firstReserved(start: bigint, last: bigint): Reserved | undefined {
    return this.reserved.find((r) => intersects(r, start, last));
  }

  private firstAllowed(start: bigint, last: bigint): Interval | undefined {
    return this.allowed.find((r) => intersects(r, start, last));
  }

  private insertArea(a: IoptArea): void {
    let i = this.areas.findIndex((b) => b.start > a.start);
    if (i < 0) i = this.areas.length;
    this.areas.splice(i, 0, a);
  }

  private removeArea(a: IoptArea): void {
    const i = this.areas.indexOf(a);
    if (i >= 0) this.areas.splice(i, 1);
  }

  // ---- placement (iopt_alloc_iova / iopt_check_iova) ---------------------------------------

  /**
   * Chooses an IOVA for `length` bytes whose source starts at `addr` (user VA or file offset):
   * the lowest fitting hole that keeps the source's sub-page offset. IOVA 0 is never chosen.
   */
  allocIova(addr: bigint, length: bigint): bigint | number {
    if (length === 0n || length >= ULONG_MAX / 2n) return -errno.EOVERFLOW;
    let align = pow2ceil(length);
    if (addr !== 0n && lowestBit(addr) < align) align = lowestBit(addr);
    if (align > HPAGE_SIZE) align = HPAGE_SIZE;
    if (align < this.iovaAlignment) return -errno.EINVAL;
    const pageOffset = addr % PAGE;

    // Fits `length` at [start, last] once start is aligned and given the page offset?
    const fit = (start: bigint, last: bigint): bigint | null => {
      if (last - start < length - 1n) return null;
      const s = alignUp(start, align) | pageOffset;
      if (s > last || last - s < length - 1n) return null;
      return s;
    };

    const window: Interval = { start: PAGE, last: ULONG_MAX - PAGE };
    const spans = this.allowed.length === 0 ? [window] : usedSpans(this.allowed, window.start, window.last);
    const taken = [...this.reserved, ...this.areas].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    for (const span of spans) {
      const s = fit(span.start, span.last);
      if (s === null) continue;
      for (const hole of holes(taken, s, span.last)) {
        const at = fit(hole.start, hole.last);
        if (at !== null) return at;
      }
    }
    return -errno.ENOSPC;
  }

  /** A fixed IOVA: aligned, not wrapping, clear of reserved ranges (EINVAL) and areas (EEXIST). */
  checkIova(iova: bigint, length: bigint): number {
    if (iova & (this.iovaAlignment - 1n)) return -errno.EINVAL;
    const last = addOverflow(iova, length - 1n);
    if (last === null) return -errno.EOVERFLOW;
    if (this.firstReserved(iova, last)) return -errno.EINVAL;
    if (this.firstArea(iova, last)) return -errno.EEXIST;
    return 0;
  }

  // ---- map / unmap -------------------------------------------------------------------------

  /**
   * iopt_map_pages: places `length` bytes made of `slices` at `iova` (or an automatic IOVA when
   * null) and publishes the areas. On success the slices' page references move into the areas;
   * on failure nothing is left behind and the caller still owns them. Returns the IOVA.
   */
  mapPages(slices: PagesSlice[], length: bigint, iova: bigint | null, prot: IommuProt,
    fill: (areas: IoptArea[]) => number = () => 0): bigint | number {
    for (let i = 0; i < slices.length; i++) if (this.shouldFail()) return -errno.ENOMEM;
    if ((length & (this.iovaAlignment - 1n)) || length === 0n) return -errno.EINVAL;
    let at: bigint;
    if (iova === null) {
      const first = slices[0];
      const r = this.allocIova(first.pages.base + first.startByte, length);
      if (typeof r === "number") return r;
      at = r;
    } else {
      const rc = this.checkIova(iova, length);
      if (rc < 0) return rc;
      at = iova;
    }
    const areas: IoptArea[] = [];
    const undo = () => { for (const a of areas) this.removeArea(a); };
    let cur = at;
    for (const s of slices) {
      if (prot.write && !s.pages.writable) { undo(); return -errno.EPERM; }
      const area = new IoptArea(cur, cur + s.length - 1n, s.startByte, prot);
      if (area.pageOffset & (this.iovaAlignment - 1n)) { undo(); return -errno.EINVAL; }
      this.insertArea(area);
      areas.push(area);
      cur += s.length;
    }
    // Every domain gets the new areas before they are published (filled in the domain issue).
    const rc = fill(areas);
    if (rc < 0) { undo(); return rc; }
    slices.forEach((s, i) => { areas[i].pages = s.pages; });
    return at;
  }

  /**
   * iopt_unmap_iova_range: removes every area inside [start, last], lowest first. An area that
   * sticks out of the range stops it with ENOENT (the earlier ones stay removed). Returns the
   * bytes unmapped and the result (ENOENT when nothing was unmapped).
   */
  unmapRange(start: bigint, last: bigint, unfill: (a: IoptArea) => void = () => {}): { rc: number; unmapped: bigint } {
    let unmapped = 0n;
    let rc = -errno.ENOENT;
    for (;;) {
      const area = this.firstArea(start, last);
      if (!area) break;
      if (!area.pages) return { rc: -errno.EBUSY, unmapped };
      if (area.start < start || area.last > last) return { rc: -errno.ENOENT, unmapped };
      const pages = area.pages;
      area.pages = null;
      unfill(area);
      this.removeArea(area);
      pages.put();
      unmapped += area.length;
    }
    if (unmapped > 0n) rc = 0;
    return { rc, unmapped };
  }

  /** iopt_unmap_iova: a range of `length` bytes from `iova`. */
  unmapIova(iova: bigint, length: bigint): { rc: number; unmapped: bigint } {
    if (length === 0n) return { rc: -errno.EINVAL, unmapped: 0n };
    const last = addOverflow(iova, length - 1n);
    if (last === null) return { rc: -errno.EOVERFLOW, unmapped: 0n };
    return this.unmapRange(iova, last);
  }

  /** iopt_unmap_all: succeeds on an empty table. */
  unmapAll(): { rc: number; unmapped: bigint } {
    const r = this.unmapRange(0n, ULONG_MAX);
    if (r.rc === -errno.ENOENT) r.rc = 0;
    return r;
  }

  /**
   * iopt_get_pages: the slices behind [iova, iova+length), which must be covered by contiguous
   * published areas (ENOENT otherwise). Each slice holds a reference on its pages.
   */
  getPages(iova: bigint, length: bigint): PagesSlice[] | number {
    if (length === 0n) return -errno.EINVAL;
    const lastIova = addOverflow(iova, length - 1n);
    if (lastIova === null) return -errno.EOVERFLOW;
    const out: PagesSlice[] = [];
    const fail = (rc: number) => { for (const s of out) s.pages.put(); return rc; };
    let cur = iova;
    let area = this.firstArea(iova, iova);
    for (;;) {
      if (!area || !area.pages || area.start > cur) return fail(-errno.ENOENT);
      if (this.shouldFail()) return fail(-errno.ENOMEM);
      const last: bigint = lastIova < area.last ? lastIova : area.last;
      area.pages.get();
      out.push({ pages: area.pages, startByte: area.startByteOf(cur), length: last - cur + 1n });
      if (last === lastIova) return out;
      cur = area.last + 1n;
      area = this.areas[this.areas.indexOf(area) + 1];
      if (area && area.start !== cur) area = undefined;
    }
  }

  // ---- reserved and allowed ranges ---------------------------------------------------------

  /** iopt_reserve_iova: EADDRINUSE over an area or an allowed range. */
  reserveIova(start: bigint, last: bigint, owner: unknown): number {
    if (this.firstArea(start, last) || this.firstAllowed(start, last)) return -errno.EADDRINUSE;
    if (this.shouldFail()) return -errno.ENOMEM;
    let i = this.reserved.findIndex((r) => r.start > start);
    if (i < 0) i = this.reserved.length;
    this.reserved.splice(i, 0, { start, last, owner });
    return 0;
  }

  removeReserved(owner: unknown): void {
    for (let i = this.reserved.length - 1; i >= 0; i--) if (this.reserved[i].owner === owner) this.reserved.splice(i, 1);
  }

  /** iopt_set_allow_iova: replaces the list unless one of the new ranges meets a reserved one. */
  setAllowIovas(list: Interval[]): number {
    const sorted = [...list].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    if (sorted.some((a) => this.firstReserved(a.start, a.last))) return -errno.EADDRINUSE;
    this.allowed = sorted;
    return 0;
  }

  /** The holes of the reserved ranges over the whole space (what IOVA_RANGES reports). */
  validRanges(): Interval[] {
    return holes(this.reserved, 0n, ULONG_MAX);
  }

  // ---- alignment and huge pages -----------------------------------------------------------

  /** iopt_check_iova_alignment: every area keeps a raised alignment, or EADDRINUSE. */
  private checkAlignment(align: bigint): number {
    const m = align - 1n;
    for (const a of this.areas) if ((a.start & m) || (a.length & m) || (a.pageOffset & m)) return -errno.EADDRINUSE;
    return 0;
  }

  /**
   * iopt_calculate_iova_alignment: PAGE_SIZE with large pages off, else 1, raised by every
   * domain's and access's minimum (`floors`).
   */
  recalcAlignment(floors: bigint[] = []): number {
    let align = this.disableLargePages ? PAGE : 1n;
    for (const f of floors) if (f > align) align = f;
    if (align > this.iovaAlignment) {
      const rc = this.checkAlignment(align);
      if (rc < 0) return rc;
    }
    this.iovaAlignment = align;
    return 0;
  }

  /** iopt_disable_large_pages (HUGE_PAGES=0, type1 v1 compat). `hasDomains`: EINVAL with areas. */
  disableLarge(hasDomains: boolean, floors: bigint[] = []): number {
    if (this.disableLargePages) return 0;
    if (hasDomains && this.areas.length > 0) return -errno.EINVAL;
    this.disableLargePages = true;
    const rc = this.recalcAlignment(floors);
    if (rc < 0) this.disableLargePages = false;
    return rc;
  }

  enableLarge(floors: bigint[] = []): void {
    this.disableLargePages = false;
    this.recalcAlignment(floors);
  }

  // ---- area split (VFIO type1 v1 compatibility) --------------------------------------------

  /** iopt_area_split: `iova` becomes the last byte of a new left-hand area. */
  private splitArea(area: IoptArea, iova: bigint, largeMapped: boolean): number {
    if (iova === area.start || iova === area.last) return 0;
    if (!area.pages) return -errno.EBUSY;
    const newStart = iova + 1n;
    const m = this.iovaAlignment - 1n;
    if ((newStart & m) || (area.startByteOf(newStart) & m)) return -errno.EINVAL;
    if (this.shouldFail() || this.shouldFail()) return -errno.ENOMEM;
    // A domain that may hold the area in huge IOPTEs cannot be cut.
    if (largeMapped && !this.disableLargePages) return -errno.EINVAL;
    const lhs = new IoptArea(area.start, iova, area.startByte, area.prot);
    const rhs = new IoptArea(newStart, area.last, area.startByteOf(newStart), area.prot);
    lhs.pages = area.pages;
    rhs.pages = area.pages;
    area.pages.get();
    const i = this.areas.indexOf(area);
    this.areas.splice(i, 1, lhs, rhs);
    return 0;
  }

  /** iopt_cut_iova: cuts areas so that each given IOVA ends one. */
  cutIova(iovas: bigint[], largeMapped = false): number {
    for (const iova of iovas) {
      const area = this.firstArea(iova, iova);
      if (!area) continue;
      const rc = this.splitArea(area, iova, largeMapped);
      if (rc < 0) return rc;
    }
    return 0;
  }
}
