// The worker side of the grace period (DESIGN.md "The grace period"), plus the check the
// kernel thread polls while it waits.
//
// Each worker slot's word @0 (layout.ts WORKER_*) holds the global epoch the thread last
// observed while it may hold a domain pointer, an IOTLB entry or a PTE, and 0 when idle.
// This thread's slot is chosen by iotlb_attach (iotlb.ts), default 0.

import { HDR_GLOBAL_EPOCH, HDR_WORKER_HIGH, WORKER_BASE, WORKER_SLOTS, WORKER_STRIDE, WORKER_OWNER } from "./layout";

let epochWord: u32 = WORKER_BASE;

// This thread's stretch counter: odd inside a read-side section, even outside, moved on by
// every epoch_enter (entry or refresh), epoch_exit and slot change. Two equal readings mean
// one stretch of one section: whatever this thread loaded in it is covered by the same epoch
// (the IOTLB keeps a transfer's domain state for a stretch, iotlb.ts xlateBegin). Plain:
// only this thread reads it.
let stretch: u64 = 0;

/** This thread's stretch counter (odd: inside a section). */
@inline export function epochStretch(): u64 { return stretch; }

/**
 * Makes `slot` this thread's. HDR_WORKER_HIGH is raised past it first (a CAS loop: threads
 * attach at once), so it is seq-cst before any epoch_enter of this thread, and epoch_quiescent,
 * which loads it after its epoch_advance, scans every slot that can hold an older epoch.
 */
export function epochSetSlot(slot: u32): void {
  let high = atomic.load<u32>(HDR_WORKER_HIGH);
  while (high < slot + 1) {
    const seen = atomic.cmpxchg<u32>(HDR_WORKER_HIGH, high, slot + 1);
    if (seen == high) break;
    high = seen;
  }
  epochWord = WORKER_BASE + slot * WORKER_STRIDE;
  stretch = (stretch + 2) & ~(<u64>1);
}

/** This thread's worker-slot line (its epoch word is @0). */
@inline export function epochWordAddr(): u32 { return epochWord; }

/**
 * Enters a read-side section: stores the current global epoch into this thread's slot. Seq-cst
 * load and store, paired with epoch_advance + epoch_quiescent on the kernel thread: either the
 * kernel sees this slot's store and waits, or this thread's later loads see the kernel's
 * changes made before its epoch_advance.
 */
export function epoch_enter(): void {
  atomic.store<u32>(epochWord, atomic.load<u32>(HDR_GLOBAL_EPOCH));
  stretch = (stretch + 2) | 1;
}

/** Leaves the section: the slot reads idle. Paired with the loads in epoch_quiescent. */
export function epoch_exit(): void {
  atomic.store<u32>(epochWord, 0);
  stretch = (stretch + 2) & ~(<u64>1);
}

/** True when this thread is inside a section (entered by its caller). */
@inline export function epochActive(): bool {
  return atomic.load<u32>(epochWord) != 0;
}

/** Kernel thread: starts a new epoch after making a change; returns it. */
export function epoch_advance(): u32 {
  let e = atomic.add<u32>(HDR_GLOBAL_EPOCH, 1) + 1;
  if (e == 0) e = atomic.add<u32>(HDR_GLOBAL_EPOCH, 1) + 1; // 0 means idle: skip it
  return e;
}

/**
 * Kernel thread: the first slot that may still hold something from before epoch `e` (idle or
 * at epoch >= e is fine), or -1 when none. The caller spins / waits and retries.
 */
export function epoch_quiescent(e: u32): i32 {
  // Slots never attached are idle: only [0, high) can hold an epoch (slot 0 always: the
  // default of every thread that attaches none). Paired with epochSetSlot's raise.
  const high = atomic.load<u32>(HDR_WORKER_HIGH);
  const n: u32 = high == 0 ? 1 : high > WORKER_SLOTS ? WORKER_SLOTS : high;
  for (let s: u32 = 0; s < n; s++) {
    const w = atomic.load<u32>(WORKER_BASE + s * WORKER_STRIDE);
    if (w != 0 && <i32>(w - e) < 0) return <i32>s;
  }
  return -1;
}

/**
 * Claims the lowest free worker slot for `token` (non-zero): the slot number, or -1 when all
 * are taken. A CAS, so threads racing for slots never share one (paired with worker_release).
 */
export function worker_claim(token: u32): i32 {
  for (let s: u32 = 1; s < WORKER_SLOTS; s++) {
    const w = WORKER_BASE + s * WORKER_STRIDE;
    if (atomic.cmpxchg<u32>(w + WORKER_OWNER, 0, token) == 0) return <i32>s;
  }
  return -1;
}

/** Gives a slot back: its epoch word reads idle first, then the owner word frees the slot. */
export function worker_release(slot: u32): void {
  if (slot == 0 || slot >= WORKER_SLOTS) return;
  const w = WORKER_BASE + slot * WORKER_STRIDE;
  atomic.store<u32>(w, 0);
  atomic.store<u32>(w + WORKER_OWNER, 0);
}
