// eventfd(2). The u64 counter lives in shared memory (assembly/layout.ts EVENTFD_*) so that a
// device worker can signal with one atomic add (assembly/eventfd.ts efd_signal); reads and
// writes here use Atomics on the same words (all seq-cst, so the two sides pair naturally).

import { errno } from "../uapi/errno.js";
import { EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, O_NONBLOCK, O_RDWR, POLLIN, POLLOUT } from "../uapi/posix.js";
import type { Core } from "../wasm/core.js";
import { File, type FileOperations } from "./file.js";
import type { SlotAllocator } from "./slots.js";

const MAX = 0xfffffffffffffffen;

export class EventFd {
  constructor(readonly core: Core, readonly slot: number, readonly semaphore: boolean, private readonly slots: SlotAllocator) {}

  /** Index of the counter in core.u64. */
  get index(): number {
    return (this.core.consts.EVENTFD_BASE + this.slot * this.core.consts.EVENTFD_STRIDE) / 8;
  }

  count(): bigint {
    return Atomics.load(this.core.u64, this.index);
  }

  /** Takes the value (or 1 in semaphore mode); 0n when nothing is pending. */
  take(): bigint {
    const u64 = this.core.u64, i = this.index;
    for (;;) {
      const cur = Atomics.load(u64, i);
      if (cur === 0n) return 0n;
      const next = this.semaphore ? cur - 1n : 0n;
      if (Atomics.compareExchange(u64, i, cur, next) === cur) {
        this.core.pollWake();
        return this.semaphore ? 1n : cur;
      }
    }
  }

  /** Adds v unless the counter would pass 2^64-2; false then. */
  add(v: bigint): boolean {
    const u64 = this.core.u64, i = this.index;
    for (;;) {
      const cur = Atomics.load(u64, i);
      if (MAX - cur < v) return false;
      if (Atomics.compareExchange(u64, i, cur, cur + v) === cur) {
        this.core.pollWake();
        return true;
      }
    }
  }

  release(): void {
    Atomics.store(this.core.u64, this.index, 0n);
    this.slots.free(this.slot);
  }
}

function efd(file: File): EventFd { return file.priv as EventFd; }

export const eventfdFops: FileOperations = {
  kind: "eventfd",
  read(file: File, buf: Uint8Array, pos: number | null): number {
    if (pos !== null) return -errno.ESPIPE;
    if (buf.length < 8) return -errno.EINVAL;
    const e = efd(file);
    let v: bigint;
    for (;;) {
      const seq = e.core.pollSeq();
      v = e.take();
      if (v !== 0n) break;
      if (file.flags & O_NONBLOCK || !e.core.pollWait(seq, -1)) return -errno.EAGAIN;
    }
    new DataView(buf.buffer, buf.byteOffset, 8).setBigUint64(0, v, true);
    return 8;
  },
  write(file: File, buf: Uint8Array, pos: number | null): number {
    if (pos !== null) return -errno.ESPIPE;
    if (buf.length < 8) return -errno.EINVAL;
    const v = new DataView(buf.buffer, buf.byteOffset, 8).getBigUint64(0, true);
    if (v === 0xffffffffffffffffn) return -errno.EINVAL;
    const e = efd(file);
    for (;;) {
      const seq = e.core.pollSeq();
      if (e.add(v)) break;
      if (file.flags & O_NONBLOCK || !e.core.pollWait(seq, -1)) return -errno.EAGAIN;
    }
    return 8;
  },
  poll(file: File): number {
    const c = efd(file).count();
    return (c > 0n ? POLLIN : 0) | (c < MAX ? POLLOUT : 0);
  },
  stat(): { mode: number; rdev: number; size: number } {
    return { mode: 0o600, rdev: 0, size: 0 };
  },
  release(file: File): void {
    efd(file).release();
  },
};

export const EFD_VALID_FLAGS = EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK;

/** The file flags an eventfd gets from its creation flags. */
export function eventfdFileFlags(flags: number): number {
  return O_RDWR | (flags & EFD_NONBLOCK ? O_NONBLOCK : 0);
}
