// Device DMA through a domain: bytes move between the frame pool and host buffers (user
// memory, device-model buffers: any address of the shared memory) with memory.copy, one
// translation and one copy per run of contiguous leaves with the same permissions (iotlb.ts),
// cut at every 64 KiB epoch refresh. Read = the device reads memory at an IOVA; write = it
// writes memory at an IOVA (needs IOMMU_WRITE, sets the dirty bit while tracking is on).
//
// A fault (unmapped, no permission, outside the aperture, blocking domain) stops the transfer
// after the bytes before it have moved, writes one fault record (fault.ts) and returns
// -EFAULT. Runs in any thread; each call is a grace-period read section (epoch.ts), entered
// here unless the caller already is in one, and refreshed at least every 64 KiB.

import { EFAULT, EINVAL, iova64 } from "./iopt";
import { DEV_BASE, DEV_SLOTS, DEV_STRIDE, DEV_DOMAIN, DEV_NONE } from "./layout";
import { xlate, xlateBegin, xlateLast, xlateRecheck, tAvail, iotlb_slot, XLATE_HOST } from "./iotlb";
import { faultRecord } from "./fault";
import { stat_inc, STAT_IOTLB_LAST_HITS } from "./stats";
import { epoch_enter, epoch_exit, epochActive } from "./epoch";

const EPOCH_CHUNK: u32 = 65536;
let budget: u32 = EPOCH_CHUNK; // bytes left before the next epoch refresh
// Which side the last failed copy faulted on (true: the destination, a write); this thread's.
let copyFaultWrite: bool = false;
// The last faulting transfer of this thread (each thread has its own instance, so its own
// globals): the bytes it moved before the fault, and the number of the record it wrote. The
// caller reads them right after the -EFAULT, so another thread's faults never get in between.
let faultDone: u32 = 0;
let faultSeq: u32 = 0;

// dma_batch descriptor: DMA_DESC_SIZE bytes in shared memory.
export const DMA_DESC_OP: u32 = 0;
export const DMA_DESC_DOM: u32 = 4;
export const DMA_DESC_SRC_LO: u32 = 8; // READ, COPY: source IOVA; WRITE: host source address
export const DMA_DESC_SRC_HI: u32 = 12;
export const DMA_DESC_DST_LO: u32 = 16; // WRITE, COPY: destination IOVA; READ: host destination
export const DMA_DESC_DST_HI: u32 = 20;
export const DMA_DESC_LEN: u32 = 24;
export const DMA_DESC_STATUS: u32 = 28; // i32 written back: 0, -EFAULT or -EINVAL
export const DMA_DESC_SIZE: u32 = 32;

export const DMA_OP_READ: u32 = 1;
export const DMA_OP_WRITE: u32 = 2;
export const DMA_OP_COPY: u32 = 3;

@inline function begin(): bool {
  if (epochActive()) return false;
  epoch_enter();
  budget = EPOCH_CHUNK;
  return true;
}

@inline function end(own: bool): void {
  if (own) epoch_exit();
}

/**
 * Charges n bytes to the epoch budget; refreshes the slot's epoch when it runs out, and then a
 * transfer on a domain rechecks its invalidation counter (xlateRecheck) before it translates
 * again, so nothing translated before the refresh is used after it.
 */
@inline function charge(identity: bool, dom: u32, n: u32): void {
  budget -= n;
  if (budget != 0) return;
  epoch_enter();
  budget = EPOCH_CHUNK;
  if (!identity) xlateRecheck(dom);
}

// How far ahead (bytes) a transfer asks a translation fill to look for a run of contiguous
// leaves beyond what it still has to move: the next descriptors of a sequential stream then
// hit the run too. Bounded, so a miss never scans more than 16 PTEs beyond the transfer.
const RUN_AHEAD: u32 = 65536;

@inline function want(left: u32): u64 { return <u64>(left > RUN_AHEAD ? left : RUN_AHEAD); }

// Every loop below takes `identity` as a compile-time constant (each caller passes a literal
// and the body is inlined): false is the DMA path; true is the benchmarks' baseline W
// (bench.ts), the very same loops with translation switched off: an IOVA is the host address
// itself (an identity domain over the 32-bit memory), so the only "walk" left is the range
// check, and a fault records nothing.
const IDENTITY_LIMIT: u64 = 0x100000000; // the identity domain's aperture: the 32-bit memory

// One memory.copy per run of contiguous leaves (iotlb.ts), at most the epoch budget: a long
// run is still cut at every 64 KiB refresh, and the translation is re-validated (invalidation
// counter) after each.
@inline function xferWith(identity: bool, dom: u32, iova: u64, host: u32, len: u32, write: bool): i32 {
  if (!identity) {
    xlateBegin(dom);
    // The common small transfer: the last translation holds it whole, one copy, no loop.
    if (len <= budget) {
      const h = xlateLast(iova, len, write);
      if (h != 0) {
        stat_inc(STAT_IOTLB_LAST_HITS);
        if (write) memory.copy(<usize>h, <usize>host, <usize>len);
        else memory.copy(<usize>host, <usize>h, <usize>len);
        charge(false, dom, len);
        return 0;
      }
    }
  }
  let done: u32 = 0;
  while (done < len) {
    const at = iova + <u64>done;
    let n = len - done;
    let h: u32;
    if (identity) {
      if (at >= IDENTITY_LIMIT) return -EFAULT;
      h = <u32>at;
      const avail = IDENTITY_LIMIT - at;
      if (avail < <u64>n) n = <u32>avail;
    } else {
      h = xlate(dom, at, write, want(n));
      if (h < XLATE_HOST) {
        faultDone = done;
        faultSeq = faultRecord(dom, at, write, h, iotlb_slot());
        return -EFAULT;
      }
      if (tAvail < n) n = tAvail;
    }
    if (budget < n) n = budget;
    if (write) memory.copy(<usize>h, <usize>(host + done), <usize>n);
    else memory.copy(<usize>(host + done), <usize>h, <usize>n);
    done += n;
    charge(identity, dom, n);
  }
  return 0;
}

// Source through the read-side last translation, destination through the write-side one, so
// both hit; each chunk is the shortest of the two runs, the bytes left and the epoch budget.
@inline function copyWith(identity: bool, dom: u32, src: u64, dst: u64, len: u32): i32 {
  if (!identity) {
    xlateBegin(dom);
    // Both ends held whole by the last translations: one copy, no loop.
    if (len <= budget) {
      const from = xlateLast(src, len, false);
      const to = from != 0 ? xlateLast(dst, len, true) : 0;
      if (to != 0) {
        stat_inc(STAT_IOTLB_LAST_HITS); // both ends
        stat_inc(STAT_IOTLB_LAST_HITS);
        memory.copy(<usize>to, <usize>from, <usize>len);
        charge(false, dom, len);
        return 0;
      }
    }
  }
  let done: u32 = 0;
  while (done < len) {
    const s = src + <u64>done;
    const d = dst + <u64>done;
    let n = len - done;
    let from: u32, to: u32;
    if (identity) {
      if (s >= IDENTITY_LIMIT) return -EFAULT;
      let avail = IDENTITY_LIMIT - s;
      if (avail < <u64>n) n = <u32>avail;
      if (d >= IDENTITY_LIMIT) return -EFAULT;
      avail = IDENTITY_LIMIT - d;
      if (avail < <u64>n) n = <u32>avail;
      from = <u32>s;
      to = <u32>d;
    } else {
      const w = want(n);
      from = xlate(dom, s, false, w);
      if (from < XLATE_HOST) {
        copyFaultWrite = false;
        faultDone = done;
        faultSeq = faultRecord(dom, s, false, from, iotlb_slot());
        return -EFAULT;
      }
      if (tAvail < n) n = tAvail;
      to = xlate(dom, d, true, w);
      if (to < XLATE_HOST) {
        copyFaultWrite = true;
        faultDone = done;
        faultSeq = faultRecord(dom, d, true, to, iotlb_slot());
        return -EFAULT;
      }
      if (tAvail < n) n = tAvail;
    }
    if (budget < n) n = budget;
    memory.copy(<usize>to, <usize>from, <usize>n);
    done += n;
    charge(identity, dom, n);
  }
  return 0;
}

export function xfer(dom: u32, iova: u64, host: u32, len: u32, write: bool): i32 {
  return xferWith(false, dom, iova, host, len, write);
}

export function copy(dom: u32, src: u64, dst: u64, len: u32): i32 {
  return copyWith(false, dom, src, dst, len);
}

/** After copy() returned -EFAULT: true when the destination (a device write) faulted. */
export function copyFaultedOnWrite(): bool {
  return copyFaultWrite;
}

/**
 * After a transfer of this thread returned -EFAULT: the bytes it moved before the faulting
 * IOVA (a read delivered them, a write stored them). The one partial-transfer rule that every
 * caller hands on (src/iommu/dma.ts deviceDma).
 */
export function dma_fault_done(): u32 {
  return faultDone;
}

/** After a transfer of this thread returned -EFAULT: the number of its fault record (fault_rec). */
export function dma_fault_seq(): u32 {
  return faultSeq;
}

/** Opens a grace-period read section unless one is open (paired with dmaSectionEnd). */
export function dmaSectionBegin(): bool {
  return begin();
}

/** Closes the section dmaSectionBegin opened (`own` is what it returned). */
export function dmaSectionEnd(own: bool): void {
  end(own);
}

function identityXfer(iova: u64, host: u32, len: u32, write: bool): i32 {
  return xferWith(true, 0, iova, host, len, write);
}

function identityCopy(src: u64, dst: u64, len: u32): i32 {
  return copyWith(true, 0, src, dst, len);
}

/** The device reads `len` bytes at IOVA (iova_hi:iova_lo) into host address `dst`. 0 or -EFAULT. */
export function dma_read(dom: u32, iova_lo: u32, iova_hi: u32, dst: u32, len: u32): i32 {
  const own = begin();
  const rc = xfer(dom, iova64(iova_lo, iova_hi), dst, len, false);
  end(own);
  return rc;
}

/** The device writes `len` bytes from host address `src` at IOVA (iova_hi:iova_lo). 0 or -EFAULT. */
export function dma_write(dom: u32, iova_lo: u32, iova_hi: u32, src: u32, len: u32): i32 {
  const own = begin();
  const rc = xfer(dom, iova64(iova_lo, iova_hi), src, len, true);
  end(own);
  return rc;
}

/**
 * The device copies `len` bytes from IOVA src to IOVA dst (memmove per leaf-sized chunk, in
 * ascending order). A fault names the source IOVA (read) or the destination (write), whichever
 * comes first; the bytes before it have moved. 0 or -EFAULT.
 */
export function dma_copy(dom: u32, src_lo: u32, src_hi: u32, dst_lo: u32, dst_hi: u32, len: u32): i32 {
  const own = begin();
  const rc = copy(dom, iova64(src_lo, src_hi), iova64(dst_lo, dst_hi), len);
  end(own);
  return rc;
}

/**
 * dma_batch's body: one epoch section around the descriptors, each run through the DMA path,
 * or (identity, bench.ts) the identity domain, its descriptors' DMA_DESC_DOM unread.
 */
@inline export function batchWith(identity: bool, desc: u32, count: u32): i32 {
  const own = begin();
  let ok: i32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    const d = desc + i * DMA_DESC_SIZE;
    const op = load<u32>(d + DMA_DESC_OP);
    const dom = identity ? 0 : load<u32>(d + DMA_DESC_DOM);
    const len = load<u32>(d + DMA_DESC_LEN);
    let rc: i32;
    if (op == DMA_OP_READ) {
      const iova = iova64(load<u32>(d + DMA_DESC_SRC_LO), load<u32>(d + DMA_DESC_SRC_HI));
      const host = load<u32>(d + DMA_DESC_DST_LO);
      rc = identity ? identityXfer(iova, host, len, false) : xfer(dom, iova, host, len, false);
    } else if (op == DMA_OP_WRITE) {
      const iova = iova64(load<u32>(d + DMA_DESC_DST_LO), load<u32>(d + DMA_DESC_DST_HI));
      const host = load<u32>(d + DMA_DESC_SRC_LO);
      rc = identity ? identityXfer(iova, host, len, true) : xfer(dom, iova, host, len, true);
    } else if (op == DMA_OP_COPY) {
      const src = iova64(load<u32>(d + DMA_DESC_SRC_LO), load<u32>(d + DMA_DESC_SRC_HI));
      const dst = iova64(load<u32>(d + DMA_DESC_DST_LO), load<u32>(d + DMA_DESC_DST_HI));
      rc = identity ? identityCopy(src, dst, len) : copy(dom, src, dst, len);
    } else {
      rc = -EINVAL;
    }
    atomic.store<i32>(d + DMA_DESC_STATUS, rc);
    if (rc == 0) ok++;
  }
  end(own);
  return ok;
}

/**
 * Runs `count` descriptors (DMA_DESC_*) at `desc` in order, one crossing from JS for all. Each
 * gets its status (0, -EFAULT, -EINVAL for an unknown op) with an atomic store, paired with
 * whoever polls it. A fault ends only its own descriptor. Returns how many succeeded.
 */
export function dma_batch(desc: u32, count: u32): i32 {
  return batchWith(false, desc, count);
}

/**
 * A device's DMA from any thread (DeviceHandle and worker `device(index)` alike, through
 * src/iommu/dma.ts deviceDma): the device's domain is loaded from its published word inside
 * this call's grace-period section, so a detach that returned is never bypassed. A device
 * without a line in the table (DEV_NONE: no vfio index) has no domain: blocked. `write`: the
 * device writes memory. 0 or -EFAULT.
 */
export function dev_dma(dev: u32, iova_lo: u32, iova_hi: u32, host: u32, len: u32, write: u32): i32 {
  if (dev >= DEV_SLOTS && dev != DEV_NONE) return -EINVAL;
  const own = begin();
  // Paired with the atomic stores of attach / detach / replace (publishDomain in
  // src/vfio/vfio_main.ts), each made before its grace period (src/kernel/grace.ts).
  const dom = dev == DEV_NONE ? 0 : atomic.load<u32>(DEV_BASE + dev * DEV_STRIDE + DEV_DOMAIN);
  const rc = xfer(dom, iova64(iova_lo, iova_hi), host, len, write != 0);
  end(own);
  return rc;
}
