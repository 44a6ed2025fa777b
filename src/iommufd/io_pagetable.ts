// io_pagetable (drivers/iommu/iommufd/io_pagetable.c): the IOVA space of one IOAS — its areas
// (each a slice of an iopt_pages), the reserved ranges nothing may be mapped into, the optional
// allowed list that bounds automatic placement, and the alignment every map must keep.
// The placement and unmap rules here are the kernel's, errno for errno (SPEC.md §4).

import { errno } from "../uapi/errno.js";
import type { IoDomain, IommuProt } from "../iommu/domain.js";
import {
  addOverflow, holes, u64Number, HPAGE_SIZE, intersects, lowestBit, PAGE, PAGE_MASK, PAGE_SIZE, pageOff, pow2ceil,
  ULONG_MAX, usedSpans, type Interval,
} from "./iova.js";
import type { Process } from "../kernel/process.js";
import type { IommufdCtx } from "./iommufd_private.js";
import { checkPagesLength, pageCount, userSource, type IoptPages, type PagesSource } from "./pages.js";
import type { DmabufAttachment, DmabufTrack } from "./dmabuf.js";

/** Where a map reports the IOVA it used (the kernel's `unsigned long *iova`), written only on success. */
export interface IovaOut { iova: bigint }

/** Where an unmap reports the bytes it removed (the kernel's `unsigned long *unmapped`). */
export interface UnmappedOut { unmapped: bigint }


export class IoptArea implements Interval {
  /** null while the map that creates it is in progress (an UNMAP that meets it gets EBUSY). */
  pages: IoptPages | null = null;
  /** Pins held on it by accesses: an unmap must ask them to let go first. */
  numAccesses = 0;
  /** Those of them held by internal accesses (a HW queue's): no unmap until they go. */
  numLocks = 0;
  /** Offset of the first byte in its page (below PAGE_SIZE, so a number). */
  readonly pageOffset: number;
  /** The pages that back it, [firstPage, lastPage] (iopt_area_index, iopt_area_last_index). */
  readonly firstPage: number;
  readonly lastPage: number;
  // As numbers (Number(bigint) is a runtime call), for the paths that need a domain: exact
  // there, since such an area lies in pinnable memory and in an aperture, both below 2^53.
  /** Its length. */
  readonly bytes: number;
  /** Its start, as domains take it. */
  readonly iova: number;
  /** Its startByte. */
  readonly startOff: number;

  readonly last: bigint;

  constructor(
    readonly start: bigint,
    readonly length: bigint,
    /** Offset of the area's first byte from byte 0 of its pages. */
    readonly startByte: bigint,
    readonly prot: IommuProt,
  ) {
    // Computed once: the map and unmap paths read them, and each bigint operation allocates.
    this.last = start + length - 1n;
    const sb = u64Number(startByte);
    this.startOff = sb;
    this.bytes = u64Number(length);
    this.iova = u64Number(start);
    if (sb + this.bytes <= Number.MAX_SAFE_INTEGER) {
      this.pageOffset = pageOff(sb);
      this.firstPage = Math.floor(sb / PAGE_SIZE);
      this.lastPage = Math.floor((sb + this.bytes - 1) / PAGE_SIZE);
    } else {
      this.pageOffset = Number(startByte % PAGE);
      this.firstPage = Number(startByte / PAGE);
      this.lastPage = Number((startByte + this.length - 1n) / PAGE);
    }
  }
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
  private alignment = 1n;
  /** alignment - 1, kept with it for the map path's checks; also as a number (-1 past 2^31). */
  private alignMask = 0n;
  private alignMaskN = 0;
  get iovaAlignment(): bigint { return this.alignment; }
  set iovaAlignment(v: bigint) {
    this.alignment = v;
    this.alignMask = v - 1n;
    this.alignMaskN = v <= 1n << 31n ? Number(v - 1n) : -1;
  }

  /** v & (alignment - 1) != 0 (V8 compiles a bigint & of 64-bit values to one machine and). */
  private misaligned(v: bigint): boolean {
    return (v & this.alignMask) !== 0n;
  }

  /** The same for 0 <= n < 2^31; an alignment past that keeps only n = 0. */
  private misalignedSmall(n: number): boolean {
    return this.alignMaskN >= 0 ? (n & this.alignMaskN) !== 0 : n !== 0;
  }
  disableLargePages = false;
  /** The domains every area is mirrored into. */
  readonly domains: IoDomain[] = [];
  /** Minimum alignments asked by accesses (PAGE_SIZE for pinning users). */
  readonly accessAlignments: bigint[] = [];
  /** Asks every access of the IOAS to drop its pins in [iova, iova+length) (their unmap op). */
  notifyAccessUnmap: (iova: bigint, length: bigint) => void = () => {};

  constructor(
    /** The kernel's fault-injection point: shouldFail() when an allocation must fail (ENOMEM). */
    private readonly faults: { shouldFail(): boolean },
  ) {}

  // ---- lookups ----------------------------------------------------------------------------

  // Loops rather than find(): no closure per lookup on the map and unmap paths.
  private firstArea(start: bigint, last: bigint): IoptArea | undefined {
    for (const a of this.areas) if (intersects(a, start, last)) return a;
    return undefined;
  }

  private firstReserved(start: bigint, last: bigint): Reserved | undefined {
    for (const r of this.reserved) if (intersects(r, start, last)) return r;
    return undefined;
  }

  private firstAllowed(start: bigint, last: bigint): Interval | undefined {
    return this.allowed.find((r) => intersects(r, start, last));
  }

  private insertArea(a: IoptArea): void {
    let i = this.areas.length;
    while (i > 0 && this.areas[i - 1].start > a.start) i--;
    if (i === this.areas.length) this.areas.push(a);
    else this.areas.splice(i, 0, a);
  }

  private removeArea(a: IoptArea): void {
    const i = this.areas.indexOf(a);
    if (i === this.areas.length - 1) this.areas.pop();
    else if (i >= 0) this.areas.splice(i, 1);
  }

  // ---- placement (iopt_alloc_iova / iopt_check_iova) ---------------------------------------

  /**
   * Chooses an IOVA for `length` bytes whose source starts at `addr` (user VA or file offset):
   * the lowest fitting hole that keeps the source's sub-page offset. IOVA 0 is never chosen.
   * 0 with the IOVA in `out`, or -errno (`out` untouched).
   */
  allocIova(addr: bigint, length: bigint, out: IovaOut): number {
    if (length === 0n || length >= ULONG_MAX / 2n) return -errno.EOVERFLOW;
    let align = pow2ceil(length);
    if (addr !== 0n && lowestBit(addr) < align) align = lowestBit(addr);
    if (align > HPAGE_SIZE) align = HPAGE_SIZE;
    if (align < this.iovaAlignment) return -errno.EINVAL;
    const pageOffset = addr % PAGE;

    // __alloc_iova_check_range: fits `length` at [start, last] once start is aligned and carries
    // the page offset? Aligning a start near 2^64 must fail, not wrap to 0.
    const fit = (start: bigint, last: bigint): bigint | null => {
      const up = addOverflow(start, align - 1n);
      if (up === null) return null;
      const s = (up & ~(align - 1n)) | pageOffset;
      if (s >= last || last - s < length - 1n) return null;
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
        if (at !== null) { out.iova = at; return 0; }
      }
    }
    return -errno.ENOSPC;
  }

  /** A fixed IOVA: aligned, not wrapping, clear of reserved ranges (EINVAL) and areas (EEXIST). */
  checkIova(iova: bigint, length: bigint): number {
    if (this.misaligned(iova)) return -errno.EINVAL;
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
   * on failure nothing is left behind and the caller still owns them. 0 with the IOVA in
   * `out`, or -errno (`out` untouched).
   */
  mapPages(slices: PagesSlice[], length: bigint, iova: bigint | null, prot: IommuProt, out: IovaOut): number {
    for (let i = 0; i < slices.length; i++) if (this.faults.shouldFail()) return -errno.ENOMEM;
    if (length === 0n || this.misaligned(length)) return -errno.EINVAL;
    let at: bigint;
    if (iova === null) {
      const first = slices[0];
      const rc = this.allocIova(first.pages.base + first.startByte, length, out);
      if (rc < 0) return rc;
      at = out.iova;
    } else {
      const rc = this.checkIova(iova, length);
      if (rc < 0) return rc;
      at = iova;
    }
    // Sized up front: an empty array's first push gives it room for 17.
    const areas = new Array<IoptArea>(slices.length);
    let made = 0;
    let rc = 0;
    let cur = at;
    for (const s of slices) {
      if (prot.write && !s.pages.writable) { rc = -errno.EPERM; break; }
      const area = new IoptArea(cur, s.length, s.startByte, prot);
      if (this.misalignedSmall(area.pageOffset)) { rc = -errno.EINVAL; break; }
      this.insertArea(area);
      areas[made++] = area;
      if (slices.length > 1) cur += s.length;
    }
    if (rc === 0) {
      // Every domain gets the new areas before they are published.
      for (let i = 0; i < made; i++) areas[i].pages = slices[i].pages;
      rc = this.fillDomainsAreas(areas);
      if (rc < 0) for (let i = 0; i < made; i++) areas[i].pages = null;
    }
    if (rc < 0) {
      for (let i = 0; i < made; i++) this.removeArea(areas[i]);
      return rc;
    }
    out.iova = at;
    return 0;
  }

  /**
   * iopt_unmap_iova_range: removes every area inside [start, last], lowest first. An area still
   * being created, or locked by an internal access, stops it with EBUSY; one that sticks out
   * of the range with ENOENT (the earlier ones stay removed, in both cases). The bytes
   * unmapped go to `out` whatever the result. Returns `emptyRc` when the range met no area at
   * all (ENOENT for IOAS_UNMAP; 0 for unmap-all and for the type1 compat unmap, which succeed
   * on nothing).
   */
  private unmapRange(start: bigint, last: bigint, emptyRc: number, out: UnmappedOut): number {
    let unmapped = 0n;
    let any = false; // a boolean, not bigint compares with 0n, on the common path
    let rc = 0;
    for (;;) {
      const area = this.firstArea(start, last);
      if (!area) break;
      if (!area.pages || area.numLocks > 0) { rc = -errno.EBUSY; break; }
      if (area.start < start || area.last > last) { rc = -errno.ENOENT; break; }
      if (area.numAccesses > 0) {
        this.notifyAccessUnmap(area.start, area.length);
        // An access that keeps its pins would make the unmap spin forever (EDEADLOCK).
        if (area.numAccesses > 0) { rc = -errno.EDEADLK; break; }
        continue;
      }
      const pages = area.pages;
      for (const d of this.domains) this.unfillArea(area, d);
      area.pages = null;
      this.removeArea(area);
      pages.put();
      unmapped = any ? unmapped + area.length : area.length;
      any = true;
    }
    out.unmapped = unmapped;
    return rc < 0 ? rc : any ? 0 : emptyRc;
  }

  /** iopt_unmap_iova: a range of `length` bytes from `iova` (`emptyRc`, `out`: see unmapRange). */
  unmapIova(iova: bigint, length: bigint, out: UnmappedOut, emptyRc = -errno.ENOENT): number {
    out.unmapped = 0n;
    if (length === 0n) return -errno.EINVAL;
    const last = addOverflow(iova, length - 1n);
    if (last === null) return -errno.EOVERFLOW;
    return this.unmapRange(iova, last, emptyRc, out);
  }

  /** iopt_unmap_all: succeeds on an empty table. */
  unmapAll(out: UnmappedOut): number {
    return this.unmapRange(0n, ULONG_MAX, 0, out);
  }

  /**
   * iopt_for_each_contig_area: calls `each(area, start, last)` for the published areas that
   * cover [iova, lastIova] without a hole, lowest first, with the part of each inside the range.
   * 0, -ENOENT at a hole or an area still being created, or the first error `each` returns.
   */
  forEachContigArea(iova: bigint, lastIova: bigint,
    each: (area: IoptArea, start: bigint, last: bigint) => number): number {
    let i = this.areas.findIndex((a) => intersects(a, iova, iova));
    for (let cur = iova; ; i++) {
      const area = this.areas[i];
      if (!area || !area.pages || area.start > cur) return -errno.ENOENT;
      const last = lastIova < area.last ? lastIova : area.last;
      const rc = each(area, cur, last);
      if (rc < 0) return rc;
      if (last === lastIova) return 0;
      cur = area.last + 1n;
    }
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
    const rc = this.forEachContigArea(iova, lastIova, (area, cur, last) => {
      if (this.faults.shouldFail()) return -errno.ENOMEM;
      area.pages!.get();
      out.push({ pages: area.pages!, startByte: area.startByteOf(cur), length: last - cur + 1n });
      return 0;
    });
    if (rc < 0) {
      for (const s of out) s.pages.put();
      return rc;
    }
    return out;
  }

  // ---- reserved and allowed ranges ---------------------------------------------------------

  /** iopt_reserve_iova: EADDRINUSE over an area or an allowed range. */
  reserveIova(start: bigint, last: bigint, owner: unknown): number {
    if (this.firstArea(start, last) || this.firstAllowed(start, last)) return -errno.EADDRINUSE;
    if (this.faults.shouldFail()) return -errno.ENOMEM;
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
    for (const a of this.areas) if ((a.start & m) || (a.length & m) || (BigInt(a.pageOffset) & m)) return -errno.EADDRINUSE;
    return 0;
  }

  /**
   * iopt_calculate_iova_alignment: PAGE_SIZE with large pages off, else 1, raised by every
   * domain's and access's minimum (`floors`).
   */
  recalcAlignment(): number {
    let align = this.disableLargePages ? PAGE : 1n;
    for (const f of this.floors()) if (f > align) align = f;
    if (align > this.iovaAlignment) {
      const rc = this.checkAlignment(align);
      if (rc < 0) return rc;
    }
    this.iovaAlignment = align;
    return 0;
  }

  /** iopt_disable_large_pages (HUGE_PAGES=0, type1 v1 compat): EINVAL once domains hold areas. */
  disableLarge(): number {
    if (this.disableLargePages) return 0;
    if (this.domains.length > 0 && this.areas.length > 0) return -errno.EINVAL;
    this.disableLargePages = true;
    const rc = this.recalcAlignment();
    if (rc < 0) this.disableLargePages = false;
    return rc;
  }

  enableLarge(): void {
    this.disableLargePages = false;
    this.recalcAlignment();
  }

  // ---- domains (iopt_table_add_domain / iopt_table_remove_domain) ------------------------

  /**
   * Pins the area's pages for one more user (this domain) and maps them, run by run of
   * physically contiguous frames. On failure nothing of it stays mapped or pinned.
   */
  private fillArea(a: IoptArea, d: IoDomain): number {
    const pages = a.pages!;
    if (pages.source.kind === "dmabuf") return this.fillDmabufArea(a, d, pages.source.attach, pages.source.start);
    const first = a.firstPage, last = a.lastPage;
    let rc = pages.pinRange(first, last);
    if (rc < 0) return rc;
    const allowLarge = !this.disableLargePages;
    // Byte offsets as numbers: the pages just pinned lie in memory, far below 2^53.
    let done = 0;
    let off = a.startOff;
    let left = a.bytes;
    while (left > 0) {
      const idx = Math.floor(off / PAGE_SIZE);
      const inPage = pageOff(off);
      // One call per run of physically contiguous frames.
      const npages = pages.contigFrames(idx, Math.ceil((inPage + left) / PAGE_SIZE));
      const run = Math.min(npages * PAGE_SIZE - inPage, left);
      const phys = pages.frameAt(idx) * PAGE_SIZE + inPage;
      // batch_iommu_map_small: with large pages off (VFIO type1 v1) every PAGE_SIZE is its own
      // map call, so a later cut of the area can unmap any page-aligned piece of it.
      const step = allowLarge ? run : PAGE_SIZE;
      for (let o = 0; o < run; o += step) {
        const len = Math.min(step, run - o);
        rc = d.map(a.iova + done, phys + o, len, a.prot, allowLarge);
        if (rc < 0) {
          if (done > 0) d.unmap(a.iova, done);
          pages.unpinRange(first, last);
          return rc;
        }
        done += len;
      }
      off += run;
      left -= run;
    }
    return 0;
  }

  /**
   * A dmabuf area into a domain (iopt_dmabuf_track_domain + iopt_area_fill_domain): the
   * exporter's pages as they are, nothing pinned; a revoked one maps nothing.
   */
  private fillDmabufArea(a: IoptArea, d: IoDomain, att: DmabufAttachment, base: bigint): number {
    if (att.revoked) return 0;
    const start = Number(base + a.startByte);
    const len = Number(a.length);
    let done = 0;
    while (done < len) {
      const off = start + done;
      const run = Math.min(PAGE_SIZE - (off % PAGE_SIZE), len - done);
      const rc = d.map(a.iova + done, att.frameAt(off) * PAGE_SIZE + (off % PAGE_SIZE), run, a.prot, false);
      if (rc < 0) {
        if (done > 0) d.unmap(a.iova, done);
        return rc;
      }
      done += run;
    }
    att.tracks.add(this.dmabufTrack(a, d));
    return 0;
  }

  /** The (area, domain) a revoke unmaps; one object per pair so unfill finds it again. */
  private readonly tracks = new Map<IoptArea, Map<IoDomain, DmabufTrack>>();
  private dmabufTrack(a: IoptArea, d: IoDomain): DmabufTrack {
    let m = this.tracks.get(a);
    if (!m) { m = new Map(); this.tracks.set(a, m); }
    let t = m.get(d);
    if (!t) {
      t = { unmap: () => { d.unmap(a.iova, a.bytes); this.untrack(a, d); } };
      m.set(d, t);
    }
    return t;
  }

  private untrack(a: IoptArea, d: IoDomain): DmabufTrack | undefined {
    const m = this.tracks.get(a);
    const t = m?.get(d);
    if (t) { m!.delete(d); if (m!.size === 0) this.tracks.delete(a); }
    return t;
  }

  private unfillArea(a: IoptArea, d: IoDomain): void {
    const src = a.pages!.source;
    if (src.kind === "dmabuf") {
      // Revoked: the revoke unmapped it already (iopt_dmabuf_untrack_domain).
      const t = this.untrack(a, d);
      if (t) { src.attach.tracks.delete(t); d.unmap(a.iova, a.bytes); }
      return;
    }
    d.unmap(a.iova, a.bytes);
    a.pages!.unpinRange(a.firstPage, a.lastPage);
  }

  /** Fills every domain with new areas; all or nothing (undone in reverse order). */
  private fillDomainsAreas(areas: IoptArea[]): number {
    const doms = this.domains;
    for (let di = 0; di < doms.length; di++) {
      for (let ai = 0; ai < areas.length; ai++) {
        const rc = this.fillArea(areas[ai], doms[di]);
        if (rc < 0) {
          for (let j = ai - 1; j >= 0; j--) this.unfillArea(areas[j], doms[di]);
          for (let e = di - 1; e >= 0; e--) for (let j = areas.length - 1; j >= 0; j--) this.unfillArea(areas[j], doms[e]);
          return rc;
        }
      }
    }
    return 0;
  }

  private minPageSize(d: IoDomain): bigint { return lowestBit(d.pgsizeBitmap); }

  /**
   * iopt_table_add_domain: raises the alignment to the domain's smallest page (EINVAL above
   * PAGE_SIZE; EADDRINUSE if an area does not keep it), reserves what lies outside its aperture
   * (EADDRINUSE over an area or allowed range), and fills it with every area (pinning).
   */
  addDomain(d: IoDomain): number {
    let align = this.minPageSize(d);
    if (align < this.iovaAlignment) align = this.iovaAlignment;
    if (align > PAGE) return -errno.EINVAL;
    if (align !== this.iovaAlignment) {
      const rc = this.checkAlignment(align);
      if (rc < 0) return rc;
    }
    let rc = 0;
    if (d.apertureStart !== 0n) rc = this.reserveIova(0n, d.apertureStart - 1n, d);
    if (rc === 0 && d.apertureEnd !== ULONG_MAX) rc = this.reserveIova(d.apertureEnd + 1n, ULONG_MAX, d);
    if (rc < 0) { this.removeReserved(d); return rc; }
    const filled: IoptArea[] = [];
    for (const a of this.areas) {
      if (!a.pages) continue;
      rc = this.fillArea(a, d);
      if (rc < 0) {
        for (const f of filled) this.unfillArea(f, d);
        this.removeReserved(d);
        return rc;
      }
      filled.push(a);
    }
    this.iovaAlignment = align;
    this.domains.push(d);
    return 0;
  }

  /** iopt_table_remove_domain: unmaps and unpins every area from it; the alignment relaxes. */
  removeDomain(d: IoDomain): void {
    const i = this.domains.indexOf(d);
    if (i < 0) return;
    this.domains.splice(i, 1);
    for (const a of this.areas) if (a.pages) this.unfillArea(a, d);
    this.removeReserved(d);
    this.recalcAlignment();
  }

  /** The floors of the alignment: every domain's smallest page and every access's. */
  private floors(): bigint[] {
    return [...this.domains.map((d) => this.minPageSize(d)), ...this.accessAlignments];
  }

  // ---- area split (VFIO type1 v1 compatibility) --------------------------------------------

  /** iopt_area_split: `iova` becomes the last byte of a new left-hand area. */
  private splitArea(area: IoptArea, iova: bigint, largeMapped: boolean): number {
    if (iova === area.start || iova === area.last) return 0;
    if (!area.pages) return -errno.EBUSY;
    // Accesses' pins are tracked per area: a split would lose them.
    if (area.numAccesses > 0) return -errno.EINVAL;
    const newStart = iova + 1n;
    const m = this.iovaAlignment - 1n;
    if ((newStart & m) || (area.startByteOf(newStart) & m)) return -errno.EINVAL;
    if (this.faults.shouldFail() || this.faults.shouldFail()) return -errno.ENOMEM;
    // A domain that may hold the area in huge IOPTEs cannot be cut.
    if (largeMapped && !this.disableLargePages) return -errno.EINVAL;
    const lhs = new IoptArea(area.start, newStart - area.start, area.startByte, area.prot);
    const rhs = new IoptArea(newStart, area.last - iova, area.startByteOf(newStart), area.prot);
    lhs.pages = area.pages;
    rhs.pages = area.pages;
    area.pages.get();
    const i = this.areas.indexOf(area);
    this.areas.splice(i, 1, lhs, rhs);
    return 0;
  }

  /** iopt_cut_iova: cuts areas so that each given IOVA ends one. */
  cutIova(iovas: bigint[]): number {
    for (const iova of iovas) {
      const area = this.firstArea(iova, iova);
      if (!area) continue;
      const rc = this.splitArea(area, iova, this.domains.length > 0);
      if (rc < 0) return rc;
    }
    return 0;
  }
}

/**
 * iopt_alloc_pages + iopt_map_common: new pages over `source` (`startByte` into its first page)
 * charged to `owner` — under per-mm accounting with `mmAccounting` — mapped at `iova` (an
 * automatic one when null). A file source gets a reference of the pages' own. On failure the
 * pages go again.
 */
export function mapNewPages(ctx: IommufdCtx, iopt: IoPagetable, src: PagesSource | (() => PagesSource | number), startByte: bigint,
  length: bigint, iova: bigint | null, prot: IommuProt, owner: Process, mmAccounting: boolean, out: IovaOut): number {
  const rc = checkPagesLength(length);
  if (rc < 0) return rc;
  if (ctx.shouldFail()) return -errno.ENOMEM;
  // A dmabuf source is attached only now (iopt_map_dmabuf after iopt_alloc_pages).
  const source = typeof src === "function" ? src() : src;
  if (typeof source === "number") return source;
  if (source.kind === "file") source.file.refs++;
  const pages = ctx.newPages(source, pageCount(startByte, length), prot.write, owner);
  if (mmAccounting && pages.accountMode === "user") pages.accountMode = "mm";
  const r = iopt.mapPages([{ pages, startByte, length }], length, iova, prot, out);
  if (r < 0) pages.put();
  return r;
}

/** iopt_map_user_pages: `length` bytes of the caller's memory from `uptr`. */
export function mapUserPages(ctx: IommufdCtx, iopt: IoPagetable, proc: Process, uptr: bigint, length: bigint,
  iova: bigint | null, prot: IommuProt, out: IovaOut, legacyAccounting = false): number {
  if (addOverflow(uptr, length) === null) return -errno.EOVERFLOW;
  const startByte = uptr & PAGE_MASK;
  const source = userSource(proc.mm, uptr - startByte);
  return mapNewPages(ctx, iopt, source, startByte, length, iova, prot, proc, legacyAccounting || ctx.accountMode === "mm", out);
}
