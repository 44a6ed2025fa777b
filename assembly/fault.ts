// The DMA fault ring (layout.ts FAULT_*): one record per faulting transfer, written by any
// thread, read by the kernel thread. Producers reserve a record with an atomic add on the
// head, fill it, and publish it by storing its sequence number last; a reader trusts a record
// only when its sequence matches (paired with fault_rec's atomic load). The ring overwrites
// the oldest records: a reader that falls FAULT_SLOTS behind sees the sequence move on.

import { FAULT_HEAD, FAULT_RECS, FAULT_SLOTS, FAULT_REC_SIZE } from "./layout";
import { DOM_SERIAL, domainKnown } from "./domain";
import { stat_inc, STAT_DMA_FAULTS } from "./stats";

export const FAULT_REASON_UNMAPPED: u32 = 1; // no leaf maps the IOVA
export const FAULT_REASON_PERM: u32 = 2; // leaf lacks the read / write permission
export const FAULT_REASON_BLOCKED: u32 = 3; // blocking domain (0), or a domain that is gone
export const FAULT_REASON_RANGE: u32 = 4; // IOVA outside the domain's aperture

export const FAULT_F_WRITE: u32 = 1;

// Record fields.
export const FAULT_SEQ: u32 = 0;
export const FAULT_IOVA_LO: u32 = 4;
export const FAULT_IOVA_HI: u32 = 8;
export const FAULT_FLAGS: u32 = 12; // FAULT_F_WRITE | reason << 8
export const FAULT_DOM: u32 = 16;
export const FAULT_SERIAL: u32 = 20;
export const FAULT_SLOT: u32 = 24;

/** Appends one record; returns its number (fault_rec's `i`). */
export function faultRecord(dom: u32, iova: u64, write: bool, reason: u32, slot: u32): u32 {
  stat_inc(STAT_DMA_FAULTS);
  const i = atomic.add<u32>(FAULT_HEAD, 1);
  const r = FAULT_RECS + (i & (FAULT_SLOTS - 1)) * FAULT_REC_SIZE;
  atomic.store<u32>(r + FAULT_SEQ, 0); // being written
  store<u32>(r + FAULT_IOVA_LO, <u32>iova);
  store<u32>(r + FAULT_IOVA_HI, <u32>(iova >> 32));
  store<u32>(r + FAULT_FLAGS, (write ? FAULT_F_WRITE : 0) | (reason << 8));
  store<u32>(r + FAULT_DOM, dom);
  store<u32>(r + FAULT_SERIAL, domainKnown(dom) ? atomic.load<u32>(dom + DOM_SERIAL) : 0);
  store<u32>(r + FAULT_SLOT, slot);
  atomic.store<u32>(r + FAULT_SEQ, i + 1); // publish; paired with fault_rec
  return i;
}

/** Records ever written (the head). */
export function fault_head(): u32 { return atomic.load<u32>(FAULT_HEAD); }

/**
 * Address of record number i while it is published and not overwritten, else 0. A reader
 * checks again after copying the fields (a producer may lap the ring meanwhile).
 */
export function fault_rec(i: u32): u32 {
  const r = FAULT_RECS + (i & (FAULT_SLOTS - 1)) * FAULT_REC_SIZE;
  return atomic.load<u32>(r + FAULT_SEQ) == i + 1 ? r : 0;
}
