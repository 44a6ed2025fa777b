// The IOTLB: translation of an IOVA through a domain for one access, cached.
//
//   1. a one-entry "last translation" in wasm globals (per instance, so per thread): one
//      compare of handle, leaf base and invalidation counter;
//   2. this thread's direct-mapped array in its worker slot (layout.ts IOTLB_*), probed once
//      per leaf size the domain has used (DOM_SHIFTS), tagged with the domain serial (never
//      reused), leaf base, leaf shift and the invalidation counter seen before the walk that
//      filled it;
//   3. the format's walk (iopt_x86.ts / iopt_mock.ts), which returns the leaf size so a
//      transfer translates once per leaf.
// Nothing is ever flushed: an entry whose domain counter moved on (domain_unmap,
// domain_invalidate, dirty read-and-clear, domain_free) simply stops matching. The array is
// written only by the thread that owns the slot, so its words are plain loads and stores.

import {
  IOTLB_BASE, IOTLB_ENTRIES, IOTLB_ENTRY_SIZE, IOTLB_SLOT_BYTES, WORKER_SLOTS, DOMAIN_BASE,
  DOMAIN_SLOTS, DOMAIN_STRIDE,
} from "./layout";
import { pool_base } from "./frames";
import { IOPT_X86, LEAF_R, LEAF_W, LEAF_D, LEAF_SHIFT_POS, LEAF_FLAGS, EINVAL, walkPte } from "./iopt";
import { DOM_FORMAT, DOM_FLAGS, DOM_ROOT, DOM_SERIAL, DOM_INV, DOM_SHIFTS, DOMAIN_F_DIRTY_TRACKING, domainWalk } from "./domain";
import { x86_walk, X86_D, X86_IOVA_BITS } from "./iopt_x86";
import { mock_walk, mock_in_aperture, MOCK_DIRTY } from "./iopt_mock";
import {
  FAULT_REASON_UNMAPPED, FAULT_REASON_PERM, FAULT_REASON_BLOCKED, FAULT_REASON_RANGE,
} from "./fault";
import { epochSetSlot } from "./epoch";
import { stat_inc, STAT_IOTLB_LAST_HITS, STAT_IOTLB_HITS, STAT_IOTLB_MISSES, STAT_IOTLB_WALKS } from "./stats";

// Entry fields (layout.ts).
const E_SERIAL: u32 = 0;
const E_INV: u32 = 4;
const E_TAG: u32 = 8; // u64: leaf IOVA base | leaf shift
const E_LEAF: u32 = 16;
const E_PTE: u32 = 20;
const E_DBIT: u32 = 24; // dirty bit a write must still set (0: none)

let slotNo: u32 = 0;
let tlb: u32 = IOTLB_BASE;

// The last translation.
const NO_DOM: u32 = 0xffffffff; // never a handle, not even the blocking domain's 0
let lDom: u32 = NO_DOM;
let lInv: u32 = 0;
let lBase: u64 = 0;
let lMask: u64 = 0;
let lLeaf: u32 = 0;
let lPte: u32 = 0;
let lDbit: u32 = 0;
let lEnt: u32 = 0;

// Results of xlate: host address of the byte, bytes left in its leaf.
export let tHost: u32 = 0;
export let tAvail: u32 = 0;
// Serial the current transfer started with: a handle reused meanwhile must not translate.
let xSerial: u32 = 0;

/**
 * Binds this thread (instance) to worker slot `slot`: its IOTLB array and its epoch word.
 * A slot belongs to one thread at a time. 0, or -EINVAL.
 */
export function iotlb_attach(slot: u32): i32 {
  if (slot >= WORKER_SLOTS) return -EINVAL;
  slotNo = slot;
  tlb = IOTLB_BASE + slot * IOTLB_SLOT_BYTES;
  epochSetSlot(slot);
  lDom = NO_DOM;
  return 0;
}

export function iotlb_slot(): u32 { return slotNo; }

/** Empties this thread's IOTLB and last translation (never needed for correctness). */
export function iotlb_flush(): void {
  memory.fill(<usize>tlb, 0, <usize>IOTLB_SLOT_BYTES);
  lDom = NO_DOM;
}

@inline function domKnown(dom: u32): bool {
  return dom - DOMAIN_BASE < DOMAIN_SLOTS * DOMAIN_STRIDE && (dom & (DOMAIN_STRIDE - 1)) == 0;
}

/** Starts a transfer on `dom`: remembers its serial (0 for the blocking or a dead domain). */
@inline export function xlateBegin(dom: u32): void {
  xSerial = domKnown(dom) ? atomic.load<u32>(dom + DOM_SERIAL) : 0;
}

// Index: the page number folded byte by byte (xor), so that consecutive pages and power-of-two
// strides both land on distinct entries (a multiplicative hash gave birthday collisions).
@inline function entryFor(serial: u32, base: u64, shift: u32): u32 {
  const vpn = base >> shift;
  let f = <u32>vpn ^ <u32>(vpn >> 32) ^ (serial * 0x9e3779b1);
  f ^= f >> 16;
  f ^= f >> 8;
  return tlb + ((f & (IOTLB_ENTRIES - 1)) * IOTLB_ENTRY_SIZE);
}

/**
 * Translates `iova` for a read or a write through `dom`: 0 and tHost / tAvail set, or a fault
 * reason. The fast path is the last translation; everything else is xlateSlow.
 */
@inline export function xlate(dom: u32, iova: u64, write: bool): u32 {
  // Atomic load paired with domain_invalidate's RMW (domain.ts).
  if (dom == lDom && (iova & ~lMask) == lBase && atomic.load<u32>(dom + DOM_INV) == lInv) {
    stat_inc(STAT_IOTLB_LAST_HITS);
    return finish(iova, write);
  }
  return xlateSlow(dom, iova, write);
}

@inline function finish(iova: u64, write: bool): u32 {
  if ((lLeaf & (write ? LEAF_W : LEAF_R)) == 0) return FAULT_REASON_PERM;
  if (write && lDbit != 0) setDirty();
  const off = <u32>(iova & lMask);
  tHost = pool_base() + (lLeaf & ~LEAF_FLAGS) + off;
  tAvail = <u32>(lMask + 1 - <u64>off);
  return 0;
}

function setDirty(): void {
  // Paired with the atomic AND of the read-and-clear (iopt_x86.ts / iopt_mock.ts).
  atomic.or<u32>(lPte, lDbit);
  lDbit = 0;
  store<u32>(lEnt + E_DBIT, 0);
}

function xlateSlow(dom: u32, iova: u64, write: bool): u32 {
  const serial = xSerial; // 0: blocking domain, unknown handle, or a domain already gone
  if (serial == 0) return FAULT_REASON_BLOCKED;
  // Loaded before any walk: an unmap the walk might miss bumps it past this value, so an
  // entry filled below cannot outlive that unmap. Paired with domain_invalidate's RMW.
  const inv = atomic.load<u32>(dom + DOM_INV);
  // Entries carry the serial the transfer began with, so a reused handle never hits them.
  let shifts = load<u32>(dom + DOM_SHIFTS);
  do {
    const s = shifts & 0xff;
    const base = iova & ~((<u64>1 << s) - 1);
    const e = entryFor(serial, base, s);
    if (load<u64>(e + E_TAG) == (base | <u64>s) && load<u32>(e + E_SERIAL) == serial && load<u32>(e + E_INV) == inv) {
      stat_inc(STAT_IOTLB_HITS);
      setLast(dom, inv, base, s, load<u32>(e + E_LEAF), load<u32>(e + E_PTE), load<u32>(e + E_DBIT), e);
      return finish(iova, write);
    }
    shifts >>= 8;
  } while (shifts != 0);

  stat_inc(STAT_IOTLB_MISSES);
  // The descriptor must still be the domain the transfer began on. Paired with the atomic
  // stores in domain_alloc / domain_free.
  if (atomic.load<u32>(dom + DOM_SERIAL) != serial) return FAULT_REASON_BLOCKED;
  const x86 = load<u32>(dom + DOM_FORMAT) == IOPT_X86;
  if (x86 ? iova >= (<u64>1 << X86_IOVA_BITS) : !mock_in_aperture(iova)) return FAULT_REASON_RANGE;
  stat_inc(STAT_IOTLB_WALKS);
  const root = load<u32>(dom + DOM_ROOT);
  const w = x86 ? x86_walk(root, iova) : mock_walk(root, iova);
  if (w == 0) return FAULT_REASON_UNMAPPED;
  const s = (w >> LEAF_SHIFT_POS) & 31;
  const base = iova & ~((<u64>1 << s) - 1);
  const tracking = (load<u32>(dom + DOM_FLAGS) & DOMAIN_F_DIRTY_TRACKING) != 0;
  const dbit: u32 = tracking && (w & LEAF_D) == 0 ? (x86 ? X86_D : MOCK_DIRTY) : 0;
  const pte = walkPte;
  const e = entryFor(serial, base, s);
  store<u32>(e + E_SERIAL, serial);
  store<u32>(e + E_INV, inv);
  store<u64>(e + E_TAG, base | <u64>s);
  store<u32>(e + E_LEAF, w);
  store<u32>(e + E_PTE, pte);
  store<u32>(e + E_DBIT, dbit);
  setLast(dom, inv, base, s, w, pte, dbit, e);
  return finish(iova, write);
}

@inline function setLast(dom: u32, inv: u32, base: u64, shift: u32, leaf: u32, pte: u32, dbit: u32, ent: u32): void {
  lDom = dom; lInv = inv; lBase = base; lMask = (<u64>1 << shift) - 1;
  lLeaf = leaf; lPte = pte; lDbit = dbit; lEnt = ent;
}

/**
 * One translation, for tests and slow paths: 0 (then iotlb_host / iotlb_avail tell the result)
 * or a fault reason (FAULT_REASON_*). Records no fault.
 */
export function iotlb_translate(dom: u32, iova_lo: u32, iova_hi: u32, write: u32): u32 {
  xlateBegin(dom);
  return xlate(dom, (<u64>iova_hi << 32) | <u64>iova_lo, write != 0);
}
export function iotlb_host(): u32 { return tHost; }
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
  const iova = (<u64>iova_hi << 32) | <u64>iova_lo;
  const mask: u32 = (<u32>1 << span_log2) - 1;
  const stride: u64 = (mode >> 8) != 0 ? <u64>((mode >> 8) & 0xff) : 12;
  const m = mode & 0xff;
  xlateBegin(dom);
  let x: u32 = 12345;
  let sum: u32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    x = x * 1664525 + 1013904223;
    const va = m == 1 ? iova : iova + (<u64>((x >> 8) & mask) << stride);
    if (m == 0) sum += <u32>va;
    else if (m == 3) sum += domainWalk(dom, va);
    else sum += xlate(dom, va, false) + tHost;
  }
  return sum;
}
