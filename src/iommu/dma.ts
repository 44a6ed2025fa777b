// Device DMA from the kernel's thread (DeviceHandle.dmaRead/dmaWrite): the bytes go through a
// bounce buffer in the frame pool, and the wasm core translates every page through the
// device's domain (assembly/dma.ts). A fault stops the transfer after the bytes before it and
// leaves one record, which is read back here from the core's fault ring.

import { errno } from "../uapi/errno.js";
import type { KernelCore } from "../kernel/kernel.js";
import { PAGE_SIZE } from "../kernel/mm.js";
import { iovaHi, iovaLo } from "./domain.js";

export interface FaultRecord {
  readonly iova: bigint;
  readonly write: boolean;
  readonly reason: "unmapped" | "perm" | "blocked";
}

/** Bytes per bounce: 16 frames. */
const BOUNCE_ORDER = 4;
const BOUNCE_BYTES = PAGE_SIZE << BOUNCE_ORDER;

function reasonOf(kcore: KernelCore, code: number): FaultRecord["reason"] {
  const c = kcore.core;
  if (code === c.c("FAULT_REASON_PERM")) return "perm";
  if (code === c.c("FAULT_REASON_BLOCKED")) return "blocked";
  // Unmapped, or outside the domain's aperture: nothing translates there.
  return "unmapped";
}

/** The newest fault record, as the device sees it. */
function lastFault(kcore: KernelCore): FaultRecord | null {
  const c = kcore.core;
  const x = c.x;
  const head = x.fault_head() >>> 0;
  if (head === 0) return null;
  const r = x.fault_rec(head - 1) >>> 0;
  if (r === 0) return null;
  const lo = c.u32[(r + c.c("FAULT_IOVA_LO")) >>> 2];
  const hi = c.u32[(r + c.c("FAULT_IOVA_HI")) >>> 2];
  const flags = c.u32[(r + c.c("FAULT_FLAGS")) >>> 2];
  return {
    iova: (BigInt(hi) << 32n) | BigInt(lo),
    write: (flags & c.c("FAULT_F_WRITE")) !== 0,
    reason: reasonOf(kcore, flags >>> 8),
  };
}

/**
 * One device transfer of `buf` at `iova` through domain `dom` (0: blocked). 0, or -EFAULT
 * with the fault appended to `faults` (the bytes before it have moved).
 */
export function deviceDma(kcore: KernelCore, dom: number, iova: bigint, buf: Uint8Array, write: boolean,
  faults: FaultRecord[]): number {
  const core = kcore.core;
  const x = core.x;
  if (buf.length === 0) return 0;
  const frame = x.frame_alloc(BOUNCE_ORDER) >>> 0;
  if (frame === 0xffffffff) return -errno.ENOMEM;
  const bounce = core.poolBase + frame * PAGE_SIZE;
  try {
    for (let done = 0; done < buf.length;) {
      const n = Math.min(BOUNCE_BYTES, buf.length - done);
      const at = iova + BigInt(done);
      const lo = iovaLo(at);
      const hi = iovaHi(at);
      let rc: number;
      if (write) {
        core.u8.set(buf.subarray(done, done + n), bounce);
        rc = x.dma_write(dom, lo, hi, bounce, n);
      } else {
        rc = x.dma_read(dom, lo, hi, bounce, n);
        // On a fault the bytes before it arrived: hand over what the bounce holds of them.
        const got = rc < 0 ? faultOffset(kcore, at, n) : n;
        buf.set(core.u8.subarray(bounce, bounce + got), done);
      }
      if (rc < 0) {
        const f = lastFault(kcore);
        if (f) faults.push(f);
        return -errno.EFAULT;
      }
      done += n;
    }
    return 0;
  } finally {
    for (let i = 0; i < 1 << BOUNCE_ORDER; i++) x.frame_put(frame + i);
  }
}

/** How many bytes of a faulted read of `n` bytes at `at` had arrived: up to the fault's IOVA. */
function faultOffset(kcore: KernelCore, at: bigint, n: number): number {
  const f = lastFault(kcore);
  if (!f || f.iova < at) return 0;
  const off = f.iova - at;
  return off > BigInt(n) ? n : Number(off);
}
