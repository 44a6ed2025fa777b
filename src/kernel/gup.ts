// Long-term page pins (pin_user_pages with FOLL_LONGTERM): the per-frame pin count the kernel
// keeps in each folio's refcount (in units of GUP_PIN_COUNTING_BIAS), and their sum. It is mm
// state, not a driver's: iommufd's iopt_pages and legacy type1 both record their pins here.

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
