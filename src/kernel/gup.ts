// Long-term page pins (pin_user_pages with FOLL_LONGTERM): the per-frame pin count the kernel
// keeps in each folio's refcount (in units of GUP_PIN_COUNTING_BIAS), and their sum. It is mm
// state, not a driver's: iommufd's iopt_pages and legacy type1 both record their pins here.

import type { Core } from "../wasm/core.js";

/**
 * Moves `n` frame numbers between the core's pin batch (GUP_BATCH, as u32) and a caller's
 * list: dst[di..] = src[si..]. A short batch goes by hand, since a subarray for set() would
 * allocate on every call (T9 pins and unpins one page).
 */
export function copyFrames(dst: Int32Array | Uint32Array, di: number, src: Int32Array | Uint32Array, si: number, n: number): void {
  if (n < 16) for (let k = 0; k < n; k++) dst[di + k] = src[si + k];
  else dst.set(src.subarray(si, si + n), di);
}

/**
 * unpin_user_pages: drops one frame reference on each of the first `n` of `frames`, through
 * the core's pin batch (assembly/gup.ts gup_unpin) a batch at a time.
 */
export function unpinFrames(core: Core, frames: Int32Array, n: number): void {
  const { x, u32, consts } = core;
  const at = consts.GUP_BATCH >>> 2;
  for (let done = 0; done < n;) {
    const m = Math.min(n - done, consts.GUP_BATCH_PAGES);
    copyFrames(u32, at, frames, done, m);
    done += x.gup_unpin(m);
  }
}

export class PinLedger {
  /** Long-term DMA pins per frame; allocated at the first pin. */
  private pins: Int32Array | null = null;
  /** Pages pinned, summed over frames (kernel.stats().pinnedPages). */
  pinnedPages = 0;

  constructor(private readonly frames: number) {}

  pinCount(frame: number): number { return this.pins?.[frame] ?? 0; }

  /** Records one long-term pin of each of the first n frames (taken with the frame reference). */
  notePinned(frames: ArrayLike<number>, delta: 1 | -1, n = frames.length): void {
    const pins = (this.pins ??= new Int32Array(this.frames));
    for (let k = 0; k < n; k++) pins[frames[k]] += delta;
    this.pinnedPages += delta * n;
  }
}
