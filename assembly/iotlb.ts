// The IOTLB: translation of an IOVA through a domain for one access, cached.
//
// Every level translates a *run*: leaves that follow each other in IOVA and in physical memory
// with identical permission bits (and, on a dirty-tracking domain, all already dirty), so one
// translation and one memory.copy cover a contiguous transfer.
//
//   1. two "last translations" (wasm globals, so per thread): the array entry that served the
//      last read and the one that served the last write, so that a copy (source read,
//      destination write) hits both. Checked in place like an array hit (range, serial of the
//      transfer, invalidation counter, permission; a write also needs no dirty bit pending),
//      without hashing and without copying the entry anywhere;
//   2. this thread's direct-mapped array in its worker slot (layout.ts IOTLB_*), probed once
//      per leaf size the domain has used (DOM_SHIFTS), tagged with the domain serial (never
//      reused), leaf base, leaf shift and the invalidation counter seen before the walk that
//      filled it; an entry also keeps the run length found at the fill;
//   3. the format's walk (iopt_x86.ts / iopt_mock.ts), which returns the leaf size, then the
//      run extension (x86_run / mock_run), which scans the following PTEs of the same table
//      only as far as the caller asked (want), so a random single-page access pays nothing.
// Nothing is ever flushed: an entry whose domain counter moved on (domain_unmap,
// domain_invalidate, dirty read-and-clear, domain_free) simply stops matching, and so does a
// run (unmap, the only way a PTE of a run changes, bumps the counter; map never overwrites a
// present PTE). A thread reads the counter once per stretch of its grace-period section
// (xlateBegin, xlateRecheck), which is what the grace period after every change waits for. The
// array is written only by the thread that owns the slot, so its words are plain loads and
// stores.

import { IOTLB_BASE, IOTLB_ENTRIES, IOTLB_ENTRY_SIZE, IOTLB_SLOT_BYTES, WORKER_SLOTS } from "./layout";
import { pool_base } from "./frames";
import { IOPT_X86, LEAF_R, LEAF_W, LEAF_D, LEAF_SHIFT_POS, LEAF_FLAGS, EINVAL, walkPte, iova64 } from "./iopt";
import {
  DOM_FORMAT, DOM_FLAGS, DOM_ROOT, DOM_SERIAL, DOM_INV, DOM_SHIFTS, DOMAIN_F_DIRTY_TRACKING, domainWalk, domainKnown,
} from "./domain";
import { x86_walk, x86_run, x86_in_aperture, X86_D } from "./iopt_x86";
import { mock_walk, mock_run, mock_in_aperture, MOCK_DIRTY } from "./iopt_mock";
import {
  FAULT_REASON_UNMAPPED, FAULT_REASON_PERM, FAULT_REASON_BLOCKED, FAULT_REASON_RANGE,
} from "./fault";
import { epochSetSlot, epochStretch } from "./epoch";
import { stat_inc, STAT_IOTLB_LAST_HITS, STAT_IOTLB_HITS, STAT_IOTLB_MISSES, STAT_IOTLB_WALKS } from "./stats";

// Entry fields (layout.ts; @28 is the run length, bytes from the leaf base).
const E_SERIAL: u32 = 0;
const E_INV: u32 = 4;
const E_TAG: u32 = 8; // u64: leaf IOVA base | leaf shift
const E_LEAF: u32 = 16;
const E_PTE: u32 = 20;
const E_DBIT: u32 = 24; // dirty bit a write must still set (0: none)
const E_RUN: u32 = 28; // bytes from the leaf base that translate contiguously (>= the leaf)
const E_SHIFT_MASK: u32 = 63; // tag bits below every leaf base: the leaf shift

let slotNo: u32 = 0;
let tlb: u32 = IOTLB_BASE;

// The last translations: the array entry (this thread's, see below) that served the last read
// and the last write. Only a hint of where to look first: a hit checks the entry itself as an
// array hit does (serial of this transfer, invalidation counter, range, permission), so an
// entry refilled meanwhile is either still right or misses.
let rEnt: u32 = IOTLB_BASE;
let wEnt: u32 = IOTLB_BASE;

// Side result of a successful xlate: bytes left in the run from the translated byte.
export let tAvail: u32 = 0;
// xlate's result: a host address when at least XLATE_HOST (every host address of the pool is:
// the pool lies above the fixed area), else a fault reason (FAULT_REASON_*, all below it).
export const XLATE_HOST: u32 = 0x10000;
// iotlb_translate's last host address.
let lastHost: u32 = 0;
// Serial the current transfer started with: a handle reused meanwhile must not translate.
let xSerial: u32 = 0;
// The serial's share of the array index (entryFor), computed once per transfer.
let xMix: u32 = 0;
// What a valid entry of this transfer holds at E_SERIAL (u64): the serial, and the domain's
// invalidation counter as last rechecked above it.
let xKey: u64 = 0;
// The domain whose serial and key the globals above hold, and the stretch they were loaded in.
const NO_DOM: u32 = 0xffffffff;
let xDom: u32 = NO_DOM;
let xStretch: u64 = 0;

/**
 * Binds this thread (instance) to worker slot `slot`: its IOTLB array and its epoch word.
 * A slot belongs to one thread at a time. 0, or -EINVAL.
 */
export function iotlb_attach(slot: u32): i32 {
  if (slot >= WORKER_SLOTS) return -EINVAL;
  slotNo = slot;
  tlb = IOTLB_BASE + slot * IOTLB_SLOT_BYTES;
  epochSetSlot(slot);
  rEnt = tlb;
  wEnt = tlb;
  return 0;
}

export function iotlb_slot(): u32 { return slotNo; }

/** Empties this thread's IOTLB and last translations (never needed for correctness). */
export function iotlb_flush(): void {
  memory.fill(<usize>tlb, 0, <usize>IOTLB_SLOT_BYTES);
}

/**
 * Starts a transfer on `dom`: remembers its serial (0 for the blocking or a dead domain) and
 * its invalidation counter. Both are loaded once per stretch of the caller's grace-period
 * section (epoch.ts epochStretch) for the domain of the stretch's last transfer: neither can
 * change under a domain this thread reached inside the stretch until the stretch ends, since
 * domain_free and every invalidation are followed by a grace period that waits for it
 * (DESIGN.md). Outside a section nothing is kept: each transfer loads them.
 */
@inline export function xlateBegin(dom: u32): void {
  const now = epochStretch();
  if (dom == xDom && now == xStretch) return;
  xSerial = domainKnown(dom) ? atomic.load<u32>(dom + DOM_SERIAL) : 0;
  xMix = serialMix(xSerial);
  xlateKey(dom);
  // A dead handle is not kept: the kernel may allocate it without waiting for anyone.
  xDom = (now & 1) != 0 && xSerial != 0 ? dom : NO_DOM;
  xStretch = now;
}

/**
 * After an epoch refresh in the middle of a transfer (dma.ts charge): the stretch it began
 * in is over, so what it loaded is checked again. A domain freed meanwhile leaves serial 0
 * (the rest of the transfer is blocked, and its handle may since name another domain).
 */
@inline export function xlateRecheck(dom: u32): void {
  if (xSerial != 0 && atomic.load<u32>(dom + DOM_SERIAL) != xSerial) {
    xSerial = 0;
    xDom = NO_DOM; // the next transfer loads the handle afresh
  }
  xlateKey(dom);
  xStretch = epochStretch();
}

// The last translations compare their entry with xKey instead of an atomic load of the
// counter per access. Atomic load paired with domain_invalidate's RMW.
@inline function xlateKey(dom: u32): void {
  const inv = xSerial != 0 ? atomic.load<u32>(dom + DOM_INV) : 0;
  xKey = (<u64>inv << 32) | <u64>xSerial;
}

@inline function serialMix(serial: u32): u32 { return serial * 0x9e3779b1; }

// Index: the page number folded byte by byte (xor), so that consecutive pages and power-of-two
// strides both land on distinct entries (a multiplicative hash gave birthday collisions).
// `mix`: serialMix of the entry's domain serial (xMix for the current transfer).
@inline function entryFor(mix: u32, vpn: u64): u32 {
  let f = <u32>vpn ^ <u32>(vpn >> 32) ^ mix;
  f ^= f >> 16;
  f ^= f >> 8;
  return tlb + ((f & (IOTLB_ENTRIES - 1)) * IOTLB_ENTRY_SIZE);
}

/**
 * Translates `iova` for a read or a write through `dom` (the handle given to xlateBegin): the
 * host address of the byte (>= XLATE_HOST) with tAvail set, or a fault reason. `want`: bytes
 * from iova the caller would like covered (how far a fill may look for a run; 1 for a single
 * access). The fast path is the last translation of the access's kind; else xlateSlow.
 */
@inline export function xlate(dom: u32, iova: u64, write: bool, want: u64): u32 {
  const h = xlateLast(iova, 1, write);
  if (h != 0) {
    stat_inc(STAT_IOTLB_LAST_HITS);
    return h;
  }
  return xlateSlow(dom, iova, write, want);
}

/**
 * The last translation of the access's kind, when its run holds [iova, iova + len) whole: the
 * host address of iova, with tAvail set; else 0 (the caller goes the slow way). An empty
 * entry has run 0; a filled one has a non-zero serial, so a key match means the entry belongs
 * to the live domain this transfer began on and no invalidation of it is due (xlateRecheck).
 * Counted by the caller (STAT_IOTLB_LAST_HITS) once the translation is used.
 */
@inline export function xlateLast(iova: u64, len: u32, write: bool): u32 {
  const e = write ? wEnt : rEnt;
  const off = iova - (load<u64>(e + E_TAG) & ~(<u64>E_SHIFT_MASK));
  const run = load<u32>(e + E_RUN);
  // off is below run (so fits a u32) before len is compared with what is left of the run.
  if (off >= <u64>run || len > run - <u32>off || load<u64>(e + E_SERIAL) != xKey) return 0;
  const leaf = load<u32>(e + E_LEAF);
  if ((leaf & (write ? LEAF_W : LEAF_R)) == 0 || (write && load<u32>(e + E_DBIT) != 0)) return 0;
  tAvail = run - <u32>off;
  return pool_base() + (leaf & ~LEAF_FLAGS) + <u32>off;
}

/**
 * A hit (or a fill) of array entry `e` for `iova` in its run from `base`: checks the
 * permission, sets the dirty bit a write still owes, makes `e` the last translation of the
 * access's kind and sets tAvail. The host address, or the fault reason.
 */
@inline function grant(iova: u64, write: bool, base: u64, e: u32): u32 {
  const leaf = load<u32>(e + E_LEAF);
  if ((leaf & (write ? LEAF_W : LEAF_R)) == 0) return FAULT_REASON_PERM;
  const off = <u32>(iova - base);
  if (write) {
    const dbit = load<u32>(e + E_DBIT);
    if (dbit != 0) {
      // Paired with the atomic AND of the read-and-clear (iopt_x86.ts / iopt_mock.ts). A run
      // with a bit to set is one leaf (fill extends tracked runs only over leaves already
      // dirty), so this bit covers every byte the entry serves.
      atomic.or<u32>(load<u32>(e + E_PTE), dbit);
      store<u32>(e + E_DBIT, 0);
    }
    wEnt = e;
  } else {
    rEnt = e;
  }
  tAvail = load<u32>(e + E_RUN) - off;
  return pool_base() + (leaf & ~LEAF_FLAGS) + off;
}

@inline function xlateSlow(dom: u32, iova: u64, write: bool, want: u64): u32 {
  const serial = xSerial; // 0: blocking domain, unknown handle, or a domain already gone
  if (serial == 0) return FAULT_REASON_BLOCKED;
  // Loaded before any walk: an unmap the walk might miss bumps it past this value, so an
  // entry filled below cannot outlive that unmap. Paired with domain_invalidate's RMW.
  const inv = atomic.load<u32>(dom + DOM_INV);
  // Newer is only stricter: the probes below and the last translations from now on want
  // what this walk will see.
  xKey = (<u64>inv << 32) | <u64>serial;
  // Entries carry the serial the transfer began with, so a reused handle never hits them.
  let shifts = load<u32>(dom + DOM_SHIFTS);
  do {
    const s = <u64>(shifts & 0xff);
    const vpn = iova >> s;
    const base = vpn << s;
    const e = entryFor(xMix, vpn);
    // Serial and invalidation count side by side: one 64-bit compare for both.
    if (load<u64>(e + E_TAG) == (base | s) && load<u64>(e + E_SERIAL) == xKey) {
      stat_inc(STAT_IOTLB_HITS);
      return grant(iova, write, base, e);
    }
    shifts >>= 8;
  } while (shifts != 0);
  return fill(dom, serial, inv, iova, write, want);
}

function fill(dom: u32, serial: u32, inv: u32, iova: u64, write: bool, want: u64): u32 {
  stat_inc(STAT_IOTLB_MISSES);
  // The descriptor must still be the domain the transfer began on. Paired with the atomic
  // stores in domain_alloc / domain_free.
  if (atomic.load<u32>(dom + DOM_SERIAL) != serial) return FAULT_REASON_BLOCKED;
  const x86 = load<u32>(dom + DOM_FORMAT) == IOPT_X86;
  if (!(x86 ? x86_in_aperture(iova) : mock_in_aperture(iova))) return FAULT_REASON_RANGE;
  stat_inc(STAT_IOTLB_WALKS);
  const root = load<u32>(dom + DOM_ROOT);
  const w = x86 ? x86_walk(root, iova) : mock_walk(root, iova);
  if (w == 0) return FAULT_REASON_UNMAPPED;
  const pte = walkPte;
  const s = (w >> LEAF_SHIFT_POS) & 31;
  const base = iova & ~((<u64>1 << s) - 1);
  const tracking = (load<u32>(dom + DOM_FLAGS) & DOMAIN_F_DIRTY_TRACKING) != 0;
  const dbit: u32 = tracking && (w & LEAF_D) == 0 ? (x86 ? X86_D : MOCK_DIRTY) : 0;
  // A leaf whose dirty bit is still to be set stays alone: its entry's bit must cover the run.
  const reach = dbit != 0 ? 0 : (iova - base) + want;
  const run = x86 ? x86_run(pte, s, reach, tracking) : mock_run(pte, s, reach, tracking);
  const e = entryFor(serialMix(serial), base >> s);
  store<u32>(e + E_SERIAL, serial);
  store<u32>(e + E_INV, inv);
  store<u64>(e + E_TAG, base | <u64>s);
  store<u32>(e + E_LEAF, w);
  store<u32>(e + E_PTE, pte);
  store<u32>(e + E_DBIT, dbit);
  store<u32>(e + E_RUN, run);
  return grant(iova, write, base, e);
}

/**
 * One translation, for tests and slow paths: 0 (then iotlb_host / iotlb_avail tell the result)
 * or a fault reason (FAULT_REASON_*). Records no fault.
 */
export function iotlb_translate(dom: u32, iova_lo: u32, iova_hi: u32, write: u32): u32 {
  xlateBegin(dom);
  const h = xlate(dom, iova64(iova_lo, iova_hi), write != 0, 1);
  if (h < XLATE_HOST) return h;
  lastHost = h;
  return 0;
}
export function iotlb_host(): u32 { return lastHost; }
export function iotlb_avail(): u32 { return tAvail; }

/**
 * Indicative micro-benchmark, looping inside wasm: `count` translations of IOVAs (iova + a
 * pseudo-random page index below 2^span_log2, times 2^stride_log2 bytes; mode bits 8..15 give
 * stride_log2, 0 meaning 12). mode & 0xff: 0 the same loop without translating; 1 the same IOVA
 * every time (last-translation hit); 2 random pages through the IOTLB (hits while the span
 * fits the array, misses + walks when it does not); 3 the bare walk, no IOTLB. Returns a
 * checksum so nothing is optimised away.
 */
export function iotlb_bench(dom: u32, iova_lo: u32, iova_hi: u32, span_log2: u32, count: u32, mode: u32): u32 {
  const iova = iova64(iova_lo, iova_hi);
  const mask: u32 = (<u32>1 << span_log2) - 1;
  const stride: u64 = (mode >> 8) != 0 ? <u64>((mode >> 8) & 0xff) : 12;
  xlateBegin(dom);
  // One loop per mode (the mode a constant in each), so a timed loop holds only its own work.
  switch (mode & 0xff) {
    case 0: return benchLoop(0, dom, iova, mask, stride, count);
    case 1: return benchLoop(1, dom, iova, mask, stride, count);
    case 3: return benchLoop(3, dom, iova, mask, stride, count);
    default: return benchLoop(2, dom, iova, mask, stride, count);
  }
}

@inline function benchLoop(m: u32, dom: u32, iova: u64, mask: u32, stride: u64, count: u32): u32 {
  let x: u32 = 12345;
  let sum: u32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    x = x * 1664525 + 1013904223;
    const va = m == 1 ? iova : iova + (<u64>((x >> 8) & mask) << stride);
    if (m == 0) sum += <u32>va;
    else if (m == 3) sum += domainWalk(dom, va);
    else sum += xlate(dom, va, false, 1);
  }
  return sum;
}
