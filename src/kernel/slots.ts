// Lowest-free allocation of small integers (slot tables in shared memory, fds, IDA-style ids).

export class SlotAllocator {
  private readonly used: Uint8Array;
  private hint = 0;
  inUse = 0;

  constructor(readonly capacity: number, private readonly first = 0) {
    this.used = new Uint8Array(capacity);
  }

  /** The lowest free slot, or -1 when all are taken. */
  alloc(): number {
    for (let i = this.hint; i < this.capacity; i++) {
      if (!this.used[i]) {
        this.used[i] = 1;
        this.hint = i + 1;
        this.inUse++;
        return i + this.first;
      }
    }
    return -1;
  }

  free(slot: number): void {
    const i = slot - this.first;
    if (!this.used[i]) throw new Error(`slot ${slot} freed twice`);
    this.used[i] = 0;
    this.inUse--;
    if (i < this.hint) this.hint = i;
  }

  isUsed(slot: number): boolean {
    return this.used[slot - this.first] === 1;
  }
}
