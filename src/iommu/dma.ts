// Device DMA, the one path for every thread: DeviceHandle.dmaRead/dmaWrite on the kernel's
// thread and WorkerDevice.dmaRead/dmaWrite in a worker both come here. The bytes go through
// the calling thread's bounce buffer (layout.ts BOUNCE_*: slot 0 is the kernel thread's, a
// worker has its slot's), and wasm's dev_dma translates every page through the domain the
// device's published word names (layout.ts DEV_DOMAIN, assembly/dma.ts), loaded inside the
// call's grace-period section. A fault stops the transfer after the bytes before it (a read
// hands those over, a write has stored them) and leaves one fault record, found by the number
// this thread's core kept for it (never "the newest record", which another thread may own).

import { errno } from "../uapi/errno.js";
import type { Core } from "../wasm/core.js";
import { hi32, lo32 } from "./domain.js";

export interface FaultRecord {
  readonly iova: bigint;
  readonly write: boolean;
  readonly reason: "unmapped" | "perm" | "blocked";
}

/** A thread's way into device DMA: its core and its bounce buffer. */
export interface DmaPort {
  readonly core: Core;
  readonly bounce: number;
  readonly bounceBytes: number;
  /** dev_dma's device number for a function with no vfio index (blocked). */
  readonly none: number;
}

/** The port of worker slot `slot` (0: the kernel's thread). */
export function dmaPort(core: Core, slot: number): DmaPort {
  const bounceBytes = core.consts.BOUNCE_BYTES;
  return { core, bounce: core.consts.BOUNCE_BASE + slot * bounceBytes, bounceBytes, none: core.consts.DEV_NONE | 0 };
}

const U32 = 2 ** 32;

function reasonOf(core: Core, code: number): FaultRecord["reason"] {
  if (code === core.consts.FAULT_REASON_PERM) return "perm";
  if (code === core.consts.FAULT_REASON_BLOCKED) return "blocked";
  // Unmapped, or outside the domain's aperture: nothing translates there.
  return "unmapped";
}

/** Fault record number `seq` of the ring, or null once the ring has overwritten it. */
function faultRecordAt(core: Core, seq: number): FaultRecord | null {
  const r = core.x.fault_rec(seq) >>> 0;
  if (r === 0) return null;
  const u32 = core.u32;
  const lo = u32[(r + core.consts.FAULT_IOVA_LO) >>> 2];
  const hi = u32[(r + core.consts.FAULT_IOVA_HI) >>> 2];
  const flags = u32[(r + core.consts.FAULT_FLAGS) >>> 2];
  const rec: FaultRecord = {
    iova: (BigInt(hi) << 32n) | BigInt(lo),
    write: (flags & core.consts.FAULT_F_WRITE) !== 0,
    reason: reasonOf(core, flags >>> 8),
  };
  // A producer may have lapped the ring while the fields were read.
  return core.x.fault_rec(seq) >>> 0 === r ? rec : null;
}

/**
 * One transfer of `buf` by vfio device `dev` (-1: a function without one) at `iova` (a u64,
 * validated by the caller; carried as two u32 halves, mod 2^64). 0, or -EFAULT: the bytes
 * before the faulting IOVA have moved (into `buf` for a read), the rest of `buf` or of memory
 * is untouched, and the fault's record is appended to `faults` when one is given.
 */
export function deviceDma(port: DmaPort, dev: number, iova: number | bigint, buf: Uint8Array, write: boolean,
  faults?: FaultRecord[]): number {
  let lo: number;
  let hi: number;
  if (typeof iova === "number" && iova >= 0 && Number.isSafeInteger(iova)) {
    hi = hi32(iova);
    lo = lo32(iova);
  } else {
    const at = typeof iova === "bigint" ? iova : BigInt(iova);
    lo = Number(at & 0xffffffffn);
    hi = Number((at >> 32n) & 0xffffffffn);
  }
  const core = port.core;
  const x = core.x;
  const mem = core.u8;
  const bounce = port.bounce;
  const d = dev < 0 ? port.none : dev;
  for (let done = 0; done < buf.length;) {
    const n = Math.min(port.bounceBytes, buf.length - done);
    if (write) mem.set(n === buf.length ? buf : buf.subarray(done, done + n), bounce);
    const rc = x.dev_dma(d, lo, hi, bounce, n, write ? 1 : 0);
    if (rc < 0) {
      if (rc !== -errno.EFAULT) return rc;
      // The partial-transfer rule, the same for every caller: what moved before the fault.
      if (!write) buf.set(mem.subarray(bounce, bounce + x.dma_fault_done()), done);
      if (faults) {
        const f = faultRecordAt(core, x.dma_fault_seq());
        if (f) faults.push(f);
      }
      return rc;
    }
    if (!write) buf.set(mem.subarray(bounce, bounce + n), done);
    done += n;
    lo += n;
    if (lo >= U32) {
      lo -= U32;
      hi = (hi + 1) >>> 0;
    }
  }
  return 0;
}
