// The kernel selftest's mock IO page table (drivers/iommu/iommufd/selftest.c, xarray era;
// CONFORMANCE.md §4a): 2 KiB IO pages, optional 1 MiB huge pages, aperture
// [MOCK_APERTURE_START, MOCK_APERTURE_LAST]. One u32 entry per 2 KiB unit, as the xarray held
// one value per unit: physical address / 2 KiB plus the START / LAST markers of the map call
// that made it, HUGE (part of a 1 MiB mapping) and DIRTY.
//
// Storage: a two-level table indexed by iova / 2 KiB (< 2^20): the root frame holds 1024 u32
// pointers (frame << 12 | 1), each leaf-table frame 1024 u32 entries (2 MiB of IOVA).
// Changed only by the kernel thread; workers read entries with plain loads under the grace
// period and set DIRTY with an atomic OR (paired with the atomic AND in the read-and-clear).

import { PAGE_SHIFT, FRAME_NONE } from "./layout";
import { frame_alloc, frame_addr, frame_put } from "./frames";
import {
  LEAF_P, LEAF_R, LEAF_W, LEAF_D, LEAF_SHIFT_POS, IOMMU_READ, IOMMU_WRITE, EEXIST, ENOMEM, EINVAL,
  setWalkPte, bitmapSetRange,
} from "./iopt";

export const MOCK_P: u32 = 0x80000000;
export const MOCK_START: u32 = 0x40000000;
export const MOCK_LAST: u32 = 0x20000000;
export const MOCK_HUGE: u32 = 0x10000000;
export const MOCK_DIRTY: u32 = 0x08000000;
export const MOCK_R: u32 = 0x04000000;
export const MOCK_W: u32 = 0x02000000;
export const MOCK_PFN_MASK: u32 = 0x001fffff; // physical address >> 11

export const MOCK_IO_PAGE_SHIFT: u32 = 11;
export const MOCK_HUGE_SHIFT: u32 = 20;
export const MOCK_APERTURE_START: u32 = 0x1000000;
export const MOCK_APERTURE_LAST: u32 = 0x7fffffff;
export const MOCK_PGSIZE: u32 = 1 << MOCK_IO_PAGE_SHIFT;
export const MOCK_PGSIZE_HUGE: u32 = MOCK_PGSIZE | (1 << MOCK_HUGE_SHIFT);
export const MOCK_SHIFTS: u32 = MOCK_IO_PAGE_SHIFT; // IOTLB probe list; domain_map appends 20 on first use
const HUGE_UNITS: u32 = 1 << (MOCK_HUGE_SHIFT - MOCK_IO_PAGE_SHIFT); // 2 KiB units of a 1 MiB page

@inline function entryAt(root: u32, unit: u32, alloc: bool): u32 {
  const top = frame_addr(root) + ((unit >> 10) << 2);
  const t = load<u32>(top);
  if (t == 0) {
    if (!alloc) return 0;
    const f = frame_alloc(0);
    if (f == FRAME_NONE) return 0;
    mTables++;
    store<u32>(top, (f << PAGE_SHIFT) | 1);
    return frame_addr(f) + ((unit & 1023) << 2);
  }
  return frame_addr(t >> PAGE_SHIFT) + ((unit & 1023) << 2);
}

@inline export function mock_in_aperture(iova: u64): bool {
  return iova >= <u64>MOCK_APERTURE_START && iova <= <u64>MOCK_APERTURE_LAST;
}

/** The walk: the leaf word for `iova` (inside the aperture), or 0. Sets walkPte. */
export function mock_walk(root: u32, iova: u64): u32 {
  const unit = <u32>(iova >> MOCK_IO_PAGE_SHIFT);
  const t = load<u32>(frame_addr(root) + ((unit >> 10) << 2));
  if (t == 0) return 0;
  const at = frame_addr(t >> PAGE_SHIFT) + ((unit & 1023) << 2);
  const e = load<u32>(at);
  if ((e & MOCK_P) == 0) return 0;
  const perm = ((e & MOCK_R) != 0 ? LEAF_R : 0) | ((e & MOCK_W) != 0 ? LEAF_W : 0);
  if ((e & MOCK_HUGE) != 0) {
    // The head unit of the 1 MiB page carries its dirty bit for DMA.
    const within = unit & (HUGE_UNITS - 1);
    const head = at - (within << 2);
    setWalkPte(head);
    const base = ((e & MOCK_PFN_MASK) - within) << MOCK_IO_PAGE_SHIFT;
    const d = (load<u32>(head) & MOCK_DIRTY) != 0 ? LEAF_D : 0;
    return base | LEAF_P | perm | d | (MOCK_HUGE_SHIFT << LEAF_SHIFT_POS);
  }
  setWalkPte(at);
  return ((e & MOCK_PFN_MASK) << MOCK_IO_PAGE_SHIFT) | LEAF_P | perm | ((e & MOCK_DIRTY) != 0 ? LEAF_D : 0)
    | (MOCK_IO_PAGE_SHIFT << LEAF_SHIFT_POS);
}

/**
 * Run extension after a walk (see x86_run): the bytes from the 2 KiB unit at `pte` onwards that
 * the following units of the same leaf table continue with the same P / R / W bits (and DIRTY
 * on a tracking domain), not HUGE, at consecutive physical units, stopping once `want` bytes
 * are covered. A 1 MiB leaf is not extended. START / LAST markers do not matter to DMA.
 */
export function mock_run(pte: u32, shift: u32, want: u64, dirty: bool): u32 {
  const size: u32 = <u32>1 << shift;
  if (shift != MOCK_IO_PAGE_SHIFT || want <= <u64>size) return size;
  // Bit 21 is never set in an entry: a PFN that overflows into it stops the run.
  const mask: u32 = MOCK_P | MOCK_R | MOCK_W | MOCK_HUGE | (MOCK_PFN_MASK << 1 | 1) | (dirty ? MOCK_DIRTY : 0);
  const end = (pte | 4095) + 1;
  let expect = (load<u32>(pte) & mask) + 1;
  let run: u32 = size;
  let at = pte + 4;
  while (<u64>run < want && at < end) {
    if ((load<u32>(at) & mask) != expect) break;
    run += size;
    expect += 1;
    at += 4;
  }
  return run;
}

let mTables: i32 = 0;
let mHugeUsed: bool = false;
export function mock_tables_delta(): i32 { return mTables; }
export function mock_huge_used(): bool { return mHugeUsed; }

/**
 * Maps units [u0, u0 + n) onto 2 KiB physical units from `phys`: START on the first, LAST on
 * the last, HUGE on every unit of a 1 MiB run (huge: the domain allows it and the caller asked).
 * 0, or -EEXIST / -ENOMEM with nothing of this call left mapped.
 */
export function mock_map(root: u32, u0: u32, phys: u32, n: u32, prot: u32, huge: bool): i32 {
  mTables = 0;
  mHugeUsed = false;
  const bits = MOCK_P | ((prot & IOMMU_READ) != 0 ? MOCK_R : 0) | ((prot & IOMMU_WRITE) != 0 ? MOCK_W : 0);
  const end = u0 + n;
  let u = u0;
  let p = phys;
  let rc: i32 = 0;
  let at: u32 = 0;
  let hugeLeft: u32 = 0;
  while (u < end) {
    // Keep the position inside a leaf table; re-walk at its boundary.
    if (at == 0 || (u & 1023) == 0) {
      at = entryAt(root, u, true);
      if (at == 0) { rc = -ENOMEM; break; }
    }
    if (hugeLeft == 0 && huge && (u & (HUGE_UNITS - 1)) == 0 && (p & (HUGE_UNITS - 1)) == 0 && end - u >= HUGE_UNITS) {
      hugeLeft = HUGE_UNITS;
    }
    if ((load<u32>(at) & MOCK_P) != 0) { rc = -EEXIST; break; }
    let e = bits | p;
    if (hugeLeft != 0) { e |= MOCK_HUGE; hugeLeft--; mHugeUsed = true; }
    if (u == u0) e |= MOCK_START;
    if (u == end - 1) e |= MOCK_LAST;
    store<u32>(at, e);
    u++; p++; at += 4;
  }
  if (rc != 0) {
    clearUnits(root, u0, u);
    prune(root, u0, end);
  }
  return rc;
}

/** Clears units [u, end), skipping absent leaf tables. Units cleared. */
function clearUnits(root: u32, u: u32, end: u32): u32 {
  let n: u32 = 0;
  while (u < end) {
    const stop = min((u | 1023) + 1, end);
    let at = entryAt(root, u, false);
    if (at != 0) {
      for (; u < stop; u++, at += 4) {
        if ((load<u32>(at) & MOCK_P) != 0) { store<u32>(at, 0); n++; }
      }
    }
    u = stop;
  }
  return n;
}

/** Frees the leaf tables of [u, end) that hold nothing. */
function prune(root: u32, u: u32, end: u32): void {
  while (u < end) {
    const top = frame_addr(root) + ((u >> 10) << 2);
    const t = load<u32>(top);
    if (t != 0) {
      const base = frame_addr(t >> PAGE_SHIFT);
      let empty = true;
      for (let i: u32 = 0; i < 1024; i++) if (load<u32>(base + (i << 2)) != 0) { empty = false; break; }
      if (empty) { store<u32>(top, 0); frame_put(t >> PAGE_SHIFT); mTables--; }
    }
    u = (u | 1023) + 1;
  }
}

@inline function entryOf(root: u32, u: u32): u32 {
  const at = entryAt(root, u, false);
  return at == 0 ? 0 : load<u32>(at);
}

/**
 * Unmaps units [u0, u0 + n). Without huge support the range must start on a START and end on
 * a LAST unit, as the kernel mock demands (its WARN_ONs); with huge support a 1 MiB page may
 * be cut only at its boundaries. Units unmapped, or -EINVAL with nothing changed.
 */
export function mock_unmap(root: u32, u0: u32, n: u32, hugeDomain: bool): i32 {
  const end = u0 + n;
  const first = entryOf(root, u0);
  const last = entryOf(root, end - 1);
  if (hugeDomain) {
    if ((first & MOCK_HUGE) != 0 && (u0 & (HUGE_UNITS - 1)) != 0) return -EINVAL;
    if ((last & MOCK_HUGE) != 0 && (end & (HUGE_UNITS - 1)) != 0) return -EINVAL;
  } else {
    if ((first & MOCK_P) != 0 && (first & MOCK_START) == 0) return -EINVAL;
    if ((last & MOCK_P) != 0 && (last & MOCK_LAST) == 0) return -EINVAL;
  }
  return <i32>clearUnits(root, u0, end);
}

export function mock_destroy(root: u32): i32 {
  let n: i32 = 1;
  const base = frame_addr(root);
  for (let i: u32 = 0; i < 1024; i++) {
    const t = load<u32>(base + (i << 2));
    if (t != 0) { frame_put(t >> PAGE_SHIFT); n++; }
  }
  frame_put(root);
  return n;
}

/**
 * Read-and-clear as the mock does it: a HUGE unit stands for its whole 1 MiB page, reported
 * if any of its units is dirty; DIRTY is cleared unless noClear (atomic AND, paired with DMA's
 * atomic OR). Bitmap bit i covers iova + i << shift. Returns dirty leaves found.
 */
export function mock_read_and_clear_dirty(root: u32, u0: u32, n: u32, bitmap: u32, shift: u32, noClear: bool): u32 {
  const end = u0 + n;
  const base = <u64>u0 << MOCK_IO_PAGE_SHIFT;
  let found: u32 = 0;
  let u = u0;
  while (u < end) {
    const e = entryOf(root, u);
    if ((e & MOCK_P) == 0) { u++; continue; }
    const span: u32 = (e & MOCK_HUGE) != 0 ? HUGE_UNITS : 1;
    const head = u & ~(span - 1);
    let dirty = false;
    for (let v = head; v < head + span; v++) {
      const at = entryAt(root, v, false);
      if (at != 0 && (load<u32>(at) & MOCK_DIRTY) != 0) {
        dirty = true;
        if (!noClear) atomic.and<u32>(at, ~MOCK_DIRTY);
      }
    }
    if (dirty) {
      const lo = max(<u64>head << MOCK_IO_PAGE_SHIFT, base);
      const hi = min(<u64>(head + span) << MOCK_IO_PAGE_SHIFT, <u64>end << MOCK_IO_PAGE_SHIFT);
      bitmapSetRange(bitmap, base, shift, lo, hi);
      found++;
    }
    u = head + span;
  }
  return found;
}

/** Sets DIRTY on every mapped unit of [u0, u0 + n) (the selftest's DIRTY op). Units marked. */
export function mock_mark_dirty(root: u32, u0: u32, n: u32): u32 {
  let marked: u32 = 0;
  for (let u = u0; u < u0 + n; u++) {
    const at = entryAt(root, u, false);
    if (at != 0 && (load<u32>(at) & MOCK_P) != 0) {
      atomic.or<u32>(at, MOCK_DIRTY); // paired with the atomic AND of the read-and-clear
      marked++;
    }
  }
  return marked;
}
