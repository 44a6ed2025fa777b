// A lowest-free id allocator (the kernel's IDA): vfio device indexes and group minors.

import { errno } from "../uapi/errno.js";

export class Ida {
  private readonly used = new Set<number>();
  /** Ids are taken from [0, limit). */
  constructor(private readonly limit = Infinity) {}

  /** The lowest free id, or -ENOSPC when [0, limit) is full. */
  alloc(): number {
    const i = this.peek();
    if (i >= this.limit) return -errno.ENOSPC;
    this.used.add(i);
    return i;
  }

  free(i: number): void { this.used.delete(i); }

  /** The id the next alloc() returns. */
  peek(): number {
    let i = 0;
    while (this.used.has(i)) i++;
    return i;
  }
}
