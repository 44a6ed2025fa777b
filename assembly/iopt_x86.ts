// The x86-64 IO page table (second-stage-like, as VT-d / AMD-Vi v1 in spirit): 4 levels of
// 512 x 8-byte entries per 4 KiB table frame, 48-bit IOVA, leaves of 4 KiB (level 1), 2 MiB
// (level 2, PS) and 1 GiB (level 3, PS).
//
// PTE (low word; the high word is always 0 because physical addresses are below 4 GiB):
//   bit 0 R, bit 1 W, bit 7 PS, bit 8 A, bit 9 D, bit 11 P (software present, so that a
//   mapping without R or W still exists), bits 12..31 physical address.
//
// Tables are changed only by the kernel thread (map, unmap, free); workers walk them with
// plain loads under the grace period (DESIGN.md), and set D with an atomic OR on the low word
// (paired with the atomic AND in x86_read_and_clear_dirty).

import { PAGE_SHIFT, FRAME_NONE } from "./layout";
import { frame_alloc, frame_addr, frame_put } from "./frames";
import {
  LEAF_P, LEAF_SHIFT_POS, IOMMU_READ, IOMMU_WRITE, EEXIST, ENOMEM, EINVAL,
  setWalkPte, bitmapSetRange,
} from "./iopt";

export const X86_R: u32 = 0x1;
export const X86_W: u32 = 0x2;
export const X86_PS: u32 = 0x80;
export const X86_A: u32 = 0x100;
export const X86_D: u32 = 0x200;
export const X86_P: u32 = 0x800;
const ADDR: u32 = 0xfffff000;
const TABLE_BITS: u32 = X86_P | X86_R | X86_W;

export const X86_IOVA_BITS: u32 = 48;
export const X86_PGSIZE_BITMAP: u32 = (1 << 12) | (1 << 21) | (1 << 30); // 4 KiB | 2 MiB | 1 GiB
// IOTLB probe list of a new domain: leaf shifts, smallest first, one per byte; domain_map
// appends 21 and 30 once it installs such leaves (domain.ts).
export const X86_SHIFTS: u32 = PAGE_SHIFT;
const TOP_SHIFT: u32 = 39;

@inline export function x86_in_aperture(iova: u64): bool {
  return iova < (<u64>1 << X86_IOVA_BITS);
}

/**
 * The walk: the leaf word for `iova` (< 2^48), or 0. Sets walkPte to the leaf's PTE. Unrolled
 * by level so each step is one load, one test and one shift.
 */
export function x86_walk(root: u32, iova: u64): u32 {
  let at = frame_addr(root) + ((<u32>(iova >> 39) & 511) << 3);
  let e = load<u32>(at);
  if ((e & X86_P) == 0) return 0;
  at = frame_addr(e >> PAGE_SHIFT) + ((<u32>(iova >> 30) & 511) << 3);
  e = load<u32>(at);
  if ((e & X86_P) == 0) return 0;
  if ((e & X86_PS) != 0) return leafWord(at, e, 30);
  at = frame_addr(e >> PAGE_SHIFT) + ((<u32>(iova >> 21) & 511) << 3);
  e = load<u32>(at);
  if ((e & X86_P) == 0) return 0;
  if ((e & X86_PS) != 0) return leafWord(at, e, 21);
  at = frame_addr(e >> PAGE_SHIFT) + ((<u32>(iova >> 12) & 511) << 3);
  e = load<u32>(at);
  if ((e & X86_P) == 0) return 0;
  return leafWord(at, e, 12);
}

@inline function leafWord(at: u32, e: u32, shift: u32): u32 {
  setWalkPte(at);
  // R, W -> LEAF_R, LEAF_W (bits 1, 2); D (bit 9) -> LEAF_D (bit 3).
  return (e & ADDR) | LEAF_P | ((e & 3) << 1) | ((e >> 6) & 0x8) | (shift << LEAF_SHIFT_POS);
}

/**
 * Run extension after a walk: the bytes from the leaf at PTE address `pte` (shift `shift`)
 * onwards that the following entries of the same table continue, one leaf after the other,
 * with the very same bits (present, R, W, PS and, when `dirty` (a tracking domain), D) and
 * physically contiguous addresses, stopping once `want` bytes are covered. 1 GiB leaves are
 * not extended (one already covers any transfer). Never crosses the table, so it reads only
 * PTEs the walk's tables hold (same grace-period rules as the walk).
 */
export function x86_run(pte: u32, shift: u32, want: u64, dirty: bool): u32 {
  const size: u32 = <u32>1 << shift;
  if (shift >= 30 || want <= <u64>size) return size;
  const e = load<u32>(pte);
  const mask: u32 = ADDR | X86_P | X86_R | X86_W | X86_PS | (dirty ? X86_D : 0);
  const end = (pte | 4095) + 1; // table frames are 4 KiB aligned (pool base is 2 MiB aligned)
  let expect = (e & mask) + size;
  let run: u32 = size;
  let at = pte + 8;
  // (expect & ADDR) == 0: the address wrapped past 4 GiB, so nothing can continue the run.
  while (<u64>run < want && at < end && (expect & ADDR) != 0) {
    if ((load<u32>(at) & mask) != expect) break;
    run += size;
    expect += size;
    at += 8;
  }
  return run;
}

/**
 * The host address of the level-1 (4 KiB leaf) table that covers `iova` (< 2^48), or 0 when a
 * level above holds no table there (absent, or a huge leaf).
 */
@inline function leafTable(root: u32, iova: u64): u32 {
  let e = load<u32>(frame_addr(root) + ((<u32>(iova >> 39) & 511) << 3));
  if ((e & X86_P) == 0) return 0;
  e = load<u32>(frame_addr(e >> PAGE_SHIFT) + ((<u32>(iova >> 30) & 511) << 3));
  if ((e & (X86_P | X86_PS)) != X86_P) return 0;
  e = load<u32>(frame_addr(e >> PAGE_SHIFT) + ((<u32>(iova >> 21) & 511) << 3));
  if ((e & (X86_P | X86_PS)) != X86_P) return 0;
  return frame_addr(e >> PAGE_SHIFT);
}

// ---- map --------------------------------------------------------------------------------
// Per-call state in globals (kernel thread only): no managed allocation, no long argument lists.
let mPhys: u64 = 0; // physical address of the next leaf
let mBits: u32 = 0; // R/W/P bits of the leaves
let mHuge: bool = false;
let mFail: u64 = 0; // iova where the call failed: [start, mFail) is what it mapped
let mTables: i32 = 0; // table frames allocated (+) or freed (-) by the last call
let mLeafShifts: u32 = 0; // bit s set: the last call installed a leaf of shift s (> 12)

export function x86_tables_delta(): i32 { return mTables; }
export function x86_leaf_shifts(): u32 { return mLeafShifts; }

function mapLevel(table: u32, shift: u32, iova: u64, end: u64): i32 {
  const size: u64 = <u64>1 << shift;
  let at = frame_addr(table) + ((<u32>(iova >> shift) & 511) << 3);
  // Keep the position: consecutive entries of this table are filled without re-walking.
  while (iova < end) {
    const e = load<u32>(at);
    const next = (iova | (size - 1)) + 1;
    const stop = next < end ? next : end;
    const leafHere = shift == 12 || (mHuge && shift <= 30 && (iova & (size - 1)) == 0 && stop == next
      && (mPhys & (size - 1)) == 0 && (e & X86_P) == 0);
    if (leafHere) {
      if ((e & X86_P) != 0) { mFail = iova; return -EEXIST; }
      if (shift > 12) {
        store<u64>(at, <u64>(<u32>mPhys | mBits | X86_PS));
        mLeafShifts |= <u32>1 << shift;
      } else {
        store<u64>(at, <u64>(<u32>mPhys | mBits));
      }
      mPhys += size;
    } else {
      let child: u32;
      if ((e & X86_P) == 0) {
        child = frame_alloc(0);
        if (child == FRAME_NONE) { mFail = iova; return -ENOMEM; }
        mTables++;
        store<u64>(at, <u64>((child << PAGE_SHIFT) | TABLE_BITS));
      } else if ((e & X86_PS) != 0) {
        mFail = iova; return -EEXIST;
      } else {
        child = e >> PAGE_SHIFT;
      }
      const rc = mapLevel(child, shift - 9, iova, stop);
      if (rc != 0) return rc;
    }
    iova = stop;
    at += 8;
  }
  return 0;
}

/**
 * Maps [iova, iova + n pages) onto physical page `phys` onwards. 0, or -EEXIST / -ENOMEM after
 * rolling back everything this call mapped (and the table frames it left empty).
 */
export function x86_map(root: u32, iova: u64, phys: u32, npages: u32, prot: u32, huge: bool): i32 {
  const end = iova + (<u64>npages << PAGE_SHIFT);
  mBits = X86_P | ((prot & IOMMU_READ) != 0 ? X86_R : 0) | ((prot & IOMMU_WRITE) != 0 ? X86_W : 0);
  mTables = 0;
  mLeafShifts = 0;
  // Fast path: the range lies in one leaf table that exists already. The recursion would
  // descend to the very same table (a huge leaf goes only where no table is), so this is
  // the same operation without the per-level loops.
  const pt = leafTable(root, iova);
  if (pt != 0 && ((iova ^ (end - 1)) >> 21) == 0) {
    const first = pt + ((<u32>(iova >> PAGE_SHIFT) & 511) << 3);
    const stop = first + (npages << 3);
    let pte = (phys << PAGE_SHIFT) | mBits;
    for (let at = first; at < stop; at += 8) {
      if ((load<u32>(at) & X86_P) != 0) {
        // Roll back what this call stored: the table still holds the entry found, so it stays.
        for (let back = first; back < at; back += 8) store<u64>(back, 0);
        mFail = iova + (<u64>((at - first) >> 3) << PAGE_SHIFT);
        return -EEXIST;
      }
      store<u64>(at, <u64>pte);
      pte += 1 << PAGE_SHIFT;
    }
    return 0;
  }
  mPhys = <u64>phys << PAGE_SHIFT;
  mHuge = huge;
  const rc = mapLevel(root, TOP_SHIFT, iova, end);
  if (rc != 0) {
    if (mFail > iova) unmapLevels(root, iova, mFail);
    pruneLevel(root, TOP_SHIFT, iova, end);
  }
  return rc;
}

// ---- leaf visits: unmap and dirty tracking ------------------------------------------------
// One recursion visits every present leaf of [iova, end) (a leaf cut by a boundary too: the
// callers decide whether that may happen) and does lOp to it. Kernel thread only.
const OP_UNMAP: u32 = 0; // clear it; counts 4 KiB pages
const OP_DIRTY: u32 = 1; // a dirty leaf: report it into the bitmap, clear D unless dKeep; counts those
const OP_MARK: u32 = 2; // set D (the selftest's DIRTY op); counts leaves
let lOp: u32 = OP_UNMAP;
let dBitmap: u32 = 0;
let dBase: u64 = 0;
let dShift: u32 = 0;
let dKeep: bool = false;

function leafLevel(table: u32, shift: u32, iova: u64, end: u64): u64 {
  const size: u64 = <u64>1 << shift;
  let at = frame_addr(table) + ((<u32>(iova >> shift) & 511) << 3);
  let n: u64 = 0;
  while (iova < end) {
    const e = load<u32>(at);
    const next = (iova | (size - 1)) + 1;
    const stop = next < end ? next : end;
    if ((e & X86_P) != 0) {
      if (shift == 12 || (e & X86_PS) != 0) n += leafOp(at, e, size, iova, stop);
      else n += leafLevel(e >> PAGE_SHIFT, shift - 9, iova, stop);
    }
    iova = stop;
    at += 8;
  }
  return n;
}

/** lOp on the leaf PTE at `at` (low word `e`, `size` bytes, [iova, stop) of it in range). */
@inline function leafOp(at: u32, e: u32, size: u64, iova: u64, stop: u64): u64 {
  if (lOp == OP_UNMAP) {
    store<u64>(at, 0);
    return size >> PAGE_SHIFT;
  }
  if (lOp == OP_MARK) {
    atomic.or<u32>(at, X86_D); // paired with the atomic AND below and with DMA's atomic OR (iotlb.ts)
    return 1;
  }
  if ((e & X86_D) == 0) return 0;
  bitmapSetRange(dBitmap, dBase, dShift, iova, stop);
  if (!dKeep) atomic.and<u32>(at, ~X86_D); // paired with DMA's atomic OR (iotlb.ts)
  return 1;
}

/** Clears every leaf of [iova, end) (no boundary may cut one); the 4 KiB pages unmapped. */
function unmapLevels(root: u32, iova: u64, end: u64): u64 {
  lOp = OP_UNMAP;
  return leafLevel(root, TOP_SHIFT, iova, end);
}

/** True when the leaf covering `iova` (if any) is cut by a range boundary at `iova`. */
function cutsLeaf(root: u32, iova: u64): bool {
  if (!x86_in_aperture(iova)) return false;
  const w = x86_walk(root, iova);
  if (w == 0) return false;
  const size: u64 = <u64>1 << ((w >> LEAF_SHIFT_POS) & 31);
  return (iova & (size - 1)) != 0;
}

/**
 * Unmaps every leaf in [iova, iova + n pages): the number of 4 KiB pages unmapped, or -EINVAL
 * (nothing changed) when a boundary would cut a huge leaf.
 */
export function x86_unmap(root: u32, iova: u64, npages: u32): i64 {
  const end = iova + (<u64>npages << PAGE_SHIFT);
  // Fast path: the range lies in one existing leaf table and ends before its last byte, so
  // no huge leaf covers either boundary (the table stands where one would be) and the
  // recursion would clear exactly these entries.
  const pt = leafTable(root, iova);
  if (pt != 0 && ((iova ^ end) >> 21) == 0) {
    const first = pt + ((<u32>(iova >> PAGE_SHIFT) & 511) << 3);
    const stop = first + (npages << 3);
    let pages: i64 = 0;
    for (let at = first; at < stop; at += 8) {
      if ((load<u32>(at) & X86_P) != 0) {
        store<u64>(at, 0);
        pages++;
      }
    }
    return pages;
  }
  if (cutsLeaf(root, iova) || cutsLeaf(root, end)) return -EINVAL;
  return <i64>unmapLevels(root, iova, end);
}

// ---- table frames -----------------------------------------------------------------------

/** Frees the empty tables below `table` within [iova, end); true when `table` is empty now. */
function pruneLevel(table: u32, shift: u32, iova: u64, end: u64): bool {
  const size: u64 = <u64>1 << shift;
  const base = frame_addr(table);
  let at = base + ((<u32>(iova >> shift) & 511) << 3);
  if (shift > 12) {
    while (iova < end) {
      const e = load<u32>(at);
      const next = (iova | (size - 1)) + 1;
      const stop = next < end ? next : end;
      if ((e & X86_P) != 0 && (e & X86_PS) == 0 && pruneLevel(e >> PAGE_SHIFT, shift - 9, iova, stop)) {
        store<u64>(at, 0);
        frame_put(e >> PAGE_SHIFT);
        mTables--;
      }
      iova = stop;
      at += 8;
    }
  }
  for (let i: u32 = 0; i < 512; i++) if (load<u32>(base + (i << 3)) != 0) return false;
  return true;
}

function destroyLevel(table: u32, shift: u32): i32 {
  let n: i32 = 1;
  if (shift > 12) {
    const base = frame_addr(table);
    for (let i: u32 = 0; i < 512; i++) {
      const e = load<u32>(base + (i << 3));
      if ((e & X86_P) != 0 && (e & X86_PS) == 0) n += destroyLevel(e >> PAGE_SHIFT, shift - 9);
    }
  }
  frame_put(table);
  return n;
}

/** Frees every table frame (the leaves' frames belong to their owners). Returns how many. */
export function x86_destroy(root: u32): i32 {
  return destroyLevel(root, TOP_SHIFT);
}

// ---- dirty tracking (leafLevel) ------------------------------------------------------------

/**
 * Reports the dirty leaves of [iova, end) into the bitmap (bit i = iova + i << shift) and
 * clears their D bits unless noClear. Returns the number of dirty leaves.
 */
export function x86_read_and_clear_dirty(root: u32, iova: u64, end: u64, bitmap: u32, shift: u32, noClear: bool): u32 {
  lOp = OP_DIRTY; dBitmap = bitmap; dBase = iova; dShift = shift; dKeep = noClear;
  return <u32>leafLevel(root, TOP_SHIFT, iova, end);
}

/** Sets D on every leaf that [iova, end) touches (the selftest's DIRTY op). Leaves marked. */
export function x86_mark_dirty(root: u32, iova: u64, end: u64): u32 {
  lOp = OP_MARK;
  return <u32>leafLevel(root, TOP_SHIFT, iova, end);
}
