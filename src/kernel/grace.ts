// The grace period (DESIGN.md "The grace period"): after the kernel thread changes what DMA
// may reach (clears PTEs, swaps a device's domain, frees tables), it starts a new epoch and
// waits until no worker can still be inside a transfer that began before the change. Only
// then may it unpin frames, free table pages or report success.
//
// Paired with epoch_enter / epoch_exit in the workers (assembly/epoch.ts): a worker stores the
// global epoch into its slot before it loads a domain pointer, an IOTLB entry or a PTE.

import type { KernelCore } from "./kernel.js";

/** A wait longer than this is reported in the trace (once per wait). */
const REPORT_MS = 1000;
/** A slot that keeps a stale epoch this long belongs to a worker that died: it is reclaimed. */
const DEAD_MS = 2000;

const now = () => (globalThis.performance ?? Date).now();

/**
 * synchronize: returns once every worker slot is idle or has seen the new epoch. Spins
 * briefly, then sleeps in short slices where the host lets this thread block.
 */
export function synchronizeDma(kcore: KernelCore, why: string): void {
  const x = kcore.core.x;
  const e = x.epoch_advance() >>> 0;
  let slot = x.epoch_quiescent(e);
  if (slot < 0) return;
  const start = now();
  let reported = false;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let spins = 0; slot >= 0; spins++, slot = x.epoch_quiescent(e)) {
    if (spins < 1000) continue;
    const waited = now() - start;
    if (!reported && waited > REPORT_MS) {
      reported = true;
      kcore.trace.emit("dma_grace_wait", { why, slot, waited_ms: Math.round(waited) });
    }
    if (waited > DEAD_MS) {
      // A worker that stopped inside a transfer and never came back: it can make no more
      // accesses, so its slot is released and the wait goes on with the others.
      kcore.trace.emit("dma_grace_reclaim", { why, slot });
      x.worker_release(slot);
      continue;
    }
    if (canBlock()) Atomics.wait(nap, 0, 0, 0.05);
  }
}

let blockable: boolean | null = null;

/** Node's main thread and workers may Atomics.wait; a browser's main thread may not. */
function canBlock(): boolean {
  if (blockable === null) {
    try {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
      blockable = true;
    } catch {
      blockable = false;
    }
  }
  return blockable;
}
