// vfio-emu/worker (API.md §3): what a thread other than the kernel's needs to reach the data
// plane. attachWorker instantiates the core over the kernel's shared memory and claims a
// worker slot (its epoch word, its IOTLB, its bounce buffer); through it a worker does gated
// file operations on device files and device DMA, never touching the control plane.

import { Core, type CoreInit } from "./wasm/core.js";

export { Core };
export type { CoreInit };

/** An open file as another thread names it: its gate slot and generation (proc.fileRef). */
export interface FileRef { readonly slot: number; readonly gen: number }

export interface WorkerFile {
  /** Gated: -EINVAL until the file is bound, -EBADF once it is closed. Bytes or -errno. */
  pread(buf: Uint8Array, offset: number | bigint): number;
  pwrite(buf: Uint8Array, offset: number | bigint): number;
}

export interface WorkerDevice {
  /** As DeviceHandle.dmaRead / dmaWrite: 0, or -EFAULT on an IOMMU fault. */
  dmaRead(iova: number | bigint, out: Uint8Array): number;
  dmaWrite(iova: number | bigint, data: Uint8Array): number;
}

export interface WorkerContext {
  readonly slot: number;
  readonly core: Core;
  file(ref: FileRef): WorkerFile;
  device(index: number): WorkerDevice;
  /** Gives the slot back. */
  detach(): void;
}

interface WorkerExports {
  worker_claim(token: number): number;
  worker_release(slot: number): void;
  iotlb_attach(slot: number): number;
  iotlb_flush(): void;
  epoch_enter(): void;
  epoch_exit(): void;
  gate_check(slot: number, gen: number): number;
  dev_dma(dev: number, iovaLo: number, iovaHi: number, host: number, len: number, write: number): number;
}

const EINVAL = 22;
const EFAULT = 14;
const EBUSY = 16;
/** vfio-pci's region offsets: index << 40. */
const REGION_SHIFT = 2 ** 40;
const CONFIG_REGION = 7;
const NUM_REGIONS = 9;

/** Instantiates the data-plane core in this thread over the memory of `init`. */
export function attachCore(init: CoreInit): Promise<Core> {
  return Core.attach(init);
}

/** Claims a worker slot over the kernel's memory (API.md §3). Throws when all 63 are taken. */
export async function attachWorker(init: CoreInit): Promise<WorkerContext> {
  const core = await Core.attach(init);
  const x = core.x as unknown as WorkerExports;
  const slot = x.worker_claim((Math.random() * 0x7fffffff) | 1);
  if (slot < 0) throw Object.assign(new Error("attachWorker: every worker slot is taken"), { errno: EBUSY });
  x.iotlb_attach(slot);
  x.iotlb_flush();
  return new Context(core, x, slot);
}

const toOffset = (o: number | bigint): number => {
  const v = typeof o === "bigint" ? Number(o) : o;
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`offset must be a non-negative integer (got ${o})`);
  return v;
};

class Context implements WorkerContext {
  private detached = false;
  private readonly bounce: number;
  private readonly bounceBytes: number;

  constructor(readonly core: Core, private readonly x: WorkerExports, readonly slot: number) {
    this.bounceBytes = core.c("BOUNCE_BYTES");
    this.bounce = core.c("BOUNCE_BASE") + slot * this.bounceBytes;
  }

  private live(): void {
    if (this.detached) throw new Error("the worker context is detached");
  }

  file(ref: FileRef): WorkerFile {
    return {
      pread: (buf, offset) => this.fileRw(ref, buf, toOffset(offset), false),
      pwrite: (buf, offset) => this.fileRw(ref, buf, toOffset(offset), true),
    };
  }

  /**
   * A device file's read/write from this thread: one atomic load of the gate word first
   * (paired with gate_grant in BIND: passing it makes every store of the bind visible), then
   * the device state published in shared memory. The whole operation is a grace-period read
   * section, so the device's memory is not freed under it.
   */
  private fileRw(ref: FileRef, buf: Uint8Array, pos: number, write: boolean): number {
    this.live();
    const x = this.x;
    x.epoch_enter();
    try {
      const g = x.gate_check(ref.slot, ref.gen);
      if (g !== 0) return g;
      const c = this.core;
      const dev = c.u32[(c.c("FILE_DEV_BASE") >>> 2) + ref.slot] - 1;
      if (dev < 0) return -EINVAL;
      if (buf.length === 0) return 0;
      const line = (c.c("DEV_BASE") + dev * c.c("DEV_STRIDE")) >>> 2;
      const field = (name: string) => c.u32[line + c.c(name) / 4];
      const index = Math.floor(pos / REGION_SHIFT);
      const off = pos % REGION_SHIFT;
      if (index >= NUM_REGIONS) return -EINVAL;
      const mem = c.u8;
      if (index === CONFIG_REGION) {
        const size = field("DEV_CONFIG_SIZE");
        if (off >= size || off + buf.length > size) return -EFAULT;
        const at = field("DEV_CONFIG") + off;
        if (!write) { buf.set(mem.subarray(at, at + buf.length)); return buf.length; }
        // Writes go through the virtualization masks, as on the kernel's side.
        const mask = field("DEV_CONFIG_MASK") + off;
        for (let i = 0; i < buf.length; i++) mem[at + i] = (mem[at + i] & ~mem[mask + i]) | (buf[i] & mem[mask + i]);
        return buf.length;
      }
      if (index !== 0) return -EINVAL;
      const size = field("DEV_BAR0_SIZE");
      if (off >= size) return -EINVAL;
      const n = Math.min(buf.length, size - off);
      const at = field("DEV_BAR0") + off;
      if (write) mem.set(buf.subarray(0, n), at);
      else buf.set(mem.subarray(at, at + n));
      return n;
    } finally {
      x.epoch_exit();
    }
  }

  device(index: number): WorkerDevice {
    if (!Number.isInteger(index) || index < 0 || index >= this.core.c("DEV_SLOTS")) throw new RangeError(`no device index ${index}`);
    return {
      dmaRead: (iova, out) => this.dma(index, iova, out, false),
      dmaWrite: (iova, data) => this.dma(index, iova, data, true),
    };
  }

  /** Device DMA through the device's current domain (dev_dma loads it in its own section). */
  private dma(index: number, iova: number | bigint, buf: Uint8Array, write: boolean): number {
    this.live();
    let at = typeof iova === "bigint" ? iova : BigInt(iova);
    const mem = this.core.u8;
    for (let done = 0; done < buf.length;) {
      const n = Math.min(this.bounceBytes, buf.length - done);
      const lo = Number(at & 0xffffffffn);
      const hi = Number((at >> 32n) & 0xffffffffn);
      if (write) mem.set(buf.subarray(done, done + n), this.bounce);
      const rc = this.x.dev_dma(index, lo, hi, this.bounce, n, write ? 1 : 0);
      if (!write && rc === 0) buf.set(mem.subarray(this.bounce, this.bounce + n), done);
      if (rc < 0) return rc;
      done += n;
      at += BigInt(n);
    }
    return 0;
  }

  detach(): void {
    if (this.detached) return;
    this.detached = true;
    this.x.worker_release(this.slot);
  }
}

