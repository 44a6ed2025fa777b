// IOMMU domains (the kernel's struct iommu_domain of a paging domain): a descriptor in shared
// memory plus a page table of one format. The handle is the descriptor's offset; 0 is the
// blocking domain (every DMA faults).
//
// Ownership: the kernel thread alone allocates, maps, unmaps and frees. Workers read
// format/flags/root with plain loads (a domain reaches a worker only through a device's
// domain pointer, published with an atomic store after the descriptor is complete), and the
// serial and the invalidation counter with atomic loads (paired with the stores below).
// Freeing tables and unmapping are safe for workers only after the grace period (DESIGN.md):
// the caller detaches / waits before domain_free, and waits after domain_unmap before it
// unpins the pages.

import {
  DOMAIN_BASE, DOMAIN_SLOTS, DOMAIN_STRIDE, HDR_DOMAIN_SERIAL, HDR_DOMAIN_HINT, FRAME_NONE, PAGE_SHIFT,
} from "./layout";
import { frame_alloc } from "./frames";
import {
  IOPT_X86, IOPT_MOCK, LEAF_SHIFT_POS, LEAF_FLAGS, EINVAL, ENOMEM, ENOSPC, iova64,
} from "./iopt";
import {
  x86_walk, x86_map, x86_unmap, x86_destroy, x86_tables_delta, x86_leaf_shifts, x86_read_and_clear_dirty, x86_mark_dirty,
  x86_in_aperture, X86_IOVA_BITS, X86_PGSIZE_BITMAP, X86_SHIFTS,
} from "./iopt_x86";
import {
  mock_walk, mock_map, mock_unmap, mock_destroy, mock_tables_delta, mock_read_and_clear_dirty,
  mock_mark_dirty, mock_in_aperture, mock_huge_used, MOCK_IO_PAGE_SHIFT, MOCK_PGSIZE, MOCK_PGSIZE_HUGE,
  MOCK_SHIFTS, MOCK_HUGE_SHIFT, MOCK_APERTURE_START, MOCK_APERTURE_LAST,
} from "./iopt_mock";

// Descriptor fields (layout.ts "IOMMU domain descriptors").
export const DOM_FORMAT: u32 = 0;
export const DOM_FLAGS: u32 = 4;
export const DOM_ROOT: u32 = 8;
export const DOM_PGSIZE: u32 = 12;
export const DOM_SERIAL: u32 = 16;
export const DOM_INV: u32 = 20;
export const DOM_TABLES: u32 = 24;
export const DOM_MAPPED: u32 = 28;
export const DOM_SHIFTS: u32 = 32;

// domain_alloc flags.
export const DOMAIN_F_HUGE: u32 = 1; // mock: 1 MiB pages allowed (x86 always has 2M/1G)
export const DOMAIN_F_DIRTY_TRACKING: u32 = 2; // DMA writes set dirty bits

/** True when `dom` is a descriptor's address (live or free); the blocking domain 0 is not. */
@inline export function domainKnown(dom: u32): bool {
  return dom - DOMAIN_BASE < DOMAIN_SLOTS * DOMAIN_STRIDE && (dom & (DOMAIN_STRIDE - 1)) == 0;
}

/** True when `dom` names a live descriptor. */
export function domain_valid(dom: u32): bool {
  return domainKnown(dom) && load<u32>(dom + DOM_FORMAT) != 0;
}

/**
 * A new empty domain of `format` (IOPT_X86, IOPT_MOCK) with `flags` (DOMAIN_F_*): its handle,
 * or -EINVAL (unknown format or flags), -ENOSPC (no descriptor free), -ENOMEM (no root frame).
 */
export function domain_alloc(format: u32, flags: u32): i32 {
  if (format != IOPT_X86 && format != IOPT_MOCK) return -EINVAL;
  if ((flags & ~(DOMAIN_F_HUGE | DOMAIN_F_DIRTY_TRACKING)) != 0) return -EINVAL;
  // Round robin from the hint, so a freed handle is reused as late as possible.
  const hint = load<u32>(HDR_DOMAIN_HINT);
  let dom: u32 = 0;
  for (let i: u32 = 0; i < DOMAIN_SLOTS; i++) {
    const s = (hint + i) & (DOMAIN_SLOTS - 1);
    const d = DOMAIN_BASE + s * DOMAIN_STRIDE;
    if (load<u32>(d + DOM_FORMAT) == 0) { dom = d; store<u32>(HDR_DOMAIN_HINT, s + 1); break; }
  }
  if (dom == 0) return -ENOSPC;
  const root = frame_alloc(0);
  if (root == FRAME_NONE) return -ENOMEM;
  let serial = load<u32>(HDR_DOMAIN_SERIAL) + 1;
  if (serial == 0) serial = 1; // 0 marks an empty IOTLB entry
  store<u32>(HDR_DOMAIN_SERIAL, serial);
  store<u32>(dom + DOM_FORMAT, format);
  store<u32>(dom + DOM_FLAGS, flags);
  store<u32>(dom + DOM_ROOT, root);
  if (format == IOPT_X86) {
    store<u32>(dom + DOM_PGSIZE, X86_PGSIZE_BITMAP);
    store<u32>(dom + DOM_SHIFTS, X86_SHIFTS);
  } else {
    const huge = (flags & DOMAIN_F_HUGE) != 0;
    store<u32>(dom + DOM_PGSIZE, huge ? MOCK_PGSIZE_HUGE : MOCK_PGSIZE);
    store<u32>(dom + DOM_SHIFTS, MOCK_SHIFTS);
  }
  store<u32>(dom + DOM_TABLES, 1);
  store<u32>(dom + DOM_MAPPED, 0);
  // The invalidation counter is never reset: with domain_free's bump, (handle, counter) never
  // repeats; IOTLB entries (and the last translations, which point at entries) are also
  // tagged with the serial the transfer began with (iotlb.ts).
  atomic.store<u32>(dom + DOM_SERIAL, serial); // paired with the atomic load in iotlb.ts
  return <i32>dom;
}

/**
 * Frees every table frame and the descriptor. The caller has already made the domain
 * unreachable and waited for the grace period. 0 or -EINVAL.
 */
export function domain_free(dom: u32): i32 {
  if (!domain_valid(dom)) return -EINVAL;
  const root = load<u32>(dom + DOM_ROOT);
  if (load<u32>(dom + DOM_FORMAT) == IOPT_X86) x86_destroy(root);
  else mock_destroy(root);
  atomic.store<u32>(dom + DOM_SERIAL, 0); // paired with the atomic load in iotlb.ts
  atomic.add<u32>(dom + DOM_INV, 1); // stale "last translations" of this handle miss
  store<u32>(dom + DOM_TABLES, 0);
  store<u32>(dom + DOM_MAPPED, 0);
  store<u32>(dom + DOM_FORMAT, 0);
  return 0;
}

/**
 * Bumps the invalidation counter: every IOTLB entry and "last translation" of the domain
 * filled before stops matching. Seq-cst RMW, paired with the atomic load of DOM_INV in
 * iotlb.ts: a worker that sees the new value (or a later epoch) also sees the cleared PTEs.
 */
export function domain_invalidate(dom: u32): void {
  atomic.add<u32>(dom + DOM_INV, 1);
}

/** IO page shift of the domain: 12 (x86) or 11 (mock). */
export function domain_page_shift(dom: u32): u32 {
  return load<u32>(dom + DOM_FORMAT) == IOPT_X86 ? PAGE_SHIFT : MOCK_IO_PAGE_SHIFT;
}

export function domain_serial(dom: u32): u32 { return atomic.load<u32>(dom + DOM_SERIAL); }
export function domain_tables(dom: u32): u32 { return load<u32>(dom + DOM_TABLES); }
export function domain_mapped_pages(dom: u32): u32 { return load<u32>(dom + DOM_MAPPED); }
export function domain_pgsize_bitmap(dom: u32): u32 { return load<u32>(dom + DOM_PGSIZE); }

/** Checks that [iova, iova + n IO pages) is aligned and inside the aperture. */
function rangeOk(dom: u32, iova: u64, npages: u32): bool {
  if (npages == 0 || npages > 0x7fffffff) return false;
  if (load<u32>(dom + DOM_FORMAT) == IOPT_X86) {
    if ((iova & 0xfff) != 0) return false;
    const end = iova + (<u64>npages << PAGE_SHIFT);
    return end > iova && end <= (<u64>1 << X86_IOVA_BITS); // end > iova: no wrap past 2^64
  }
  if ((iova & 0x7ff) != 0) return false;
  const last = iova + (<u64>npages << MOCK_IO_PAGE_SHIFT) - 1;
  return iova >= <u64>MOCK_APERTURE_START && last >= iova && last <= <u64>MOCK_APERTURE_LAST;
}

/**
 * Maps `npages` IO pages (4 KiB for x86, 2 KiB for mock) at IOVA (iova_hi:iova_lo) onto
 * physical IO page `phys_page` onwards (physical address = phys_page << page shift), with
 * prot IOMMU_READ | IOMMU_WRITE. With allow_huge, runs whose IOVA, physical address and length
 * allow it get 2 MiB / 1 GiB (x86) or 1 MiB (mock, DOMAIN_F_HUGE) leaves.
 * 0; -EINVAL (bad domain, unaligned, outside the aperture, npages 0); -EEXIST (something in
 * the range is mapped); -ENOMEM (a table frame could not be had). On error nothing of this
 * call stays mapped and the table frames it allocated are freed.
 */
export function domain_map(dom: u32, iova_lo: u32, iova_hi: u32, phys_page: u32, npages: u32, prot: u32, allow_huge: u32): i32 {
  if (!domain_valid(dom)) return -EINVAL;
  const iova = iova64(iova_lo, iova_hi);
  if (!rangeOk(dom, iova, npages)) return -EINVAL;
  const root = load<u32>(dom + DOM_ROOT);
  let rc: i32;
  let delta: i32;
  if (load<u32>(dom + DOM_FORMAT) == IOPT_X86) {
    if (phys_page > 0xfffff || npages > 0x100000 - phys_page) return -EINVAL; // below 4 GiB
    rc = x86_map(root, iova, phys_page, npages, prot, allow_huge != 0);
    delta = x86_tables_delta();
    addProbeShifts(dom, x86_leaf_shifts());
  } else {
    if (phys_page > 0x1fffff || npages > 0x200000 - phys_page) return -EINVAL;
    const huge = allow_huge != 0 && (load<u32>(dom + DOM_FLAGS) & DOMAIN_F_HUGE) != 0;
    rc = mock_map(root, <u32>(iova >> MOCK_IO_PAGE_SHIFT), phys_page, npages, prot, huge);
    delta = mock_tables_delta();
    addProbeShifts(dom, mock_huge_used() ? <u32>1 << MOCK_HUGE_SHIFT : 0);
  }
  store<u32>(dom + DOM_TABLES, <u32>(<i32>load<u32>(dom + DOM_TABLES) + delta));
  if (rc == 0) store<u32>(dom + DOM_MAPPED, load<u32>(dom + DOM_MAPPED) + npages);
  else domain_invalidate(dom); // a racing worker may have cached a leaf of the rolled-back part
  return rc;
}

/**
 * Adds leaf shifts (bit s = shift s) to the domain's IOTLB probe list, kept ascending, one per
 * byte. Only ever grows. Done after the leaves are in place: a worker that misses the new
 * shift meanwhile only walks again, it never translates wrongly (plain store, no pairing).
 */
function addProbeShifts(dom: u32, used: u32): void {
  if (used == 0) return;
  let list = load<u32>(dom + DOM_SHIFTS);
  let have: u32 = 0;
  for (let l = list; l != 0; l >>= 8) have |= <u32>1 << (l & 0xff);
  if ((have | used) == have) return;
  have |= used;
  list = 0;
  let pos: u32 = 0;
  for (let s: u32 = 11; s < 32; s++) {
    if ((have & (<u32>1 << s)) != 0) { list |= s << pos; pos += 8; }
  }
  store<u32>(dom + DOM_SHIFTS, list);
}

/**
 * Unmaps every mapping in `npages` IO pages from IOVA (iova_hi:iova_lo), skipping holes, and
 * invalidates the domain's IOTLB entries. Returns the IO pages unmapped, or -EINVAL with
 * nothing changed when the range is bad or would cut a huge leaf (or, for a mock domain
 * without huge pages, does not start and end on the boundaries of earlier map calls).
 */
export function domain_unmap(dom: u32, iova_lo: u32, iova_hi: u32, npages: u32): i32 {
  if (!domain_valid(dom)) return -EINVAL;
  const iova = iova64(iova_lo, iova_hi);
  if (!rangeOk(dom, iova, npages)) return -EINVAL;
  const root = load<u32>(dom + DOM_ROOT);
  let n: i64;
  if (load<u32>(dom + DOM_FORMAT) == IOPT_X86) {
    n = x86_unmap(root, iova, npages);
  } else {
    const huge = (load<u32>(dom + DOM_FLAGS) & DOMAIN_F_HUGE) != 0;
    n = <i64>mock_unmap(root, <u32>(iova >> MOCK_IO_PAGE_SHIFT), npages, huge);
  }
  if (n < 0) return <i32>n;
  if (n > 0) {
    store<u32>(dom + DOM_MAPPED, load<u32>(dom + DOM_MAPPED) - <u32>n);
    domain_invalidate(dom);
  }
  return <i32>n;
}

/**
 * The format's own walk for (iova_hi:iova_lo): the leaf word (iopt.ts: physical base | P R W D
 * | leaf shift << 4), or 0 when nothing is mapped there or the IOVA is outside the aperture.
 */
export function domain_lookup(dom: u32, iova_lo: u32, iova_hi: u32): u32 {
  if (!domain_valid(dom)) return 0;
  return domainWalk(dom, iova64(iova_lo, iova_hi));
}

/** The walk, dispatched on format; 0 outside the aperture. Sets walkPte. */
export function domainWalk(dom: u32, iova: u64): u32 {
  const root = load<u32>(dom + DOM_ROOT);
  if (load<u32>(dom + DOM_FORMAT) == IOPT_X86) {
    if (!x86_in_aperture(iova)) return 0;
    return x86_walk(root, iova);
  }
  if (!mock_in_aperture(iova)) return 0;
  return mock_walk(root, iova);
}

/** Physical address of (iova_hi:iova_lo), or 0xffffffff when unmapped (read it with >>> 0). */
export function domain_iova_to_phys(dom: u32, iova_lo: u32, iova_hi: u32): u32 {
  const w = domain_lookup(dom, iova_lo, iova_hi);
  if (w == 0) return 0xffffffff;
  const mask = (<u32>1 << ((w >> LEAF_SHIFT_POS) & 31)) - 1;
  return (w & ~LEAF_FLAGS) + (iova_lo & mask);
}

/**
 * Reports dirty leaves in `npages` IO pages from IOVA (iova_hi:iova_lo) into the bitmap at
 * host address `bitmap` (bit i = iova + i << page_shift; the caller zeroed it and aligned iova
 * to 1 << page_shift) and clears their dirty bits unless no_clear, then invalidates the IOTLB
 * so the next DMA write sets them again. The dirty leaves found, or -EINVAL.
 */
export function domain_read_and_clear_dirty(dom: u32, iova_lo: u32, iova_hi: u32, npages: u32, bitmap: u32, page_shift: u32, no_clear: u32): i32 {
  if (!domain_valid(dom) || page_shift < 11 || page_shift > 40) return -EINVAL;
  const iova = iova64(iova_lo, iova_hi);
  if (!rangeOk(dom, iova, npages)) return -EINVAL;
  const root = load<u32>(dom + DOM_ROOT);
  let n: u32;
  if (load<u32>(dom + DOM_FORMAT) == IOPT_X86) {
    n = x86_read_and_clear_dirty(root, iova, iova + (<u64>npages << PAGE_SHIFT), bitmap, page_shift, no_clear != 0);
  } else {
    n = mock_read_and_clear_dirty(root, <u32>(iova >> MOCK_IO_PAGE_SHIFT), npages, bitmap, page_shift, no_clear != 0);
  }
  if (no_clear == 0 && n > 0) domain_invalidate(dom);
  return <i32>n;
}

/** Sets the dirty bit of every leaf in the range (the selftest's DIRTY op). Count, or -EINVAL. */
export function domain_mark_dirty(dom: u32, iova_lo: u32, iova_hi: u32, npages: u32): i32 {
  if (!domain_valid(dom)) return -EINVAL;
  const iova = iova64(iova_lo, iova_hi);
  if (!rangeOk(dom, iova, npages)) return -EINVAL;
  const root = load<u32>(dom + DOM_ROOT);
  if (load<u32>(dom + DOM_FORMAT) == IOPT_X86) {
    return <i32>x86_mark_dirty(root, iova, iova + (<u64>npages << PAGE_SHIFT));
  }
  return <i32>mock_mark_dirty(root, <u32>(iova >> MOCK_IO_PAGE_SHIFT), npages);
}

/**
 * Turns dirty tracking on or off (DMA writes set dirty bits only while it is on) and
 * invalidates the IOTLB, whose entries remember whether a write still has a bit to set.
 */
export function domain_set_dirty_tracking(dom: u32, enable: u32): i32 {
  if (!domain_valid(dom)) return -EINVAL;
  const f = load<u32>(dom + DOM_FLAGS);
  store<u32>(dom + DOM_FLAGS, enable != 0 ? f | DOMAIN_F_DIRTY_TRACKING : f & ~DOMAIN_F_DIRTY_TRACKING);
  domain_invalidate(dom);
  return 0;
}
