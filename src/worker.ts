// vfio-emu/worker (API.md §3): what a thread other than the kernel's needs to reach the data
// plane. attachWorker instantiates the core over the kernel's shared memory and claims a
// worker slot (its epoch word, its IOTLB, its bounce buffer); through it a worker does gated
// file operations on device files and device DMA, never touching the control plane.

import { errno } from "./uapi/errno.js";
import { Core, type CoreFunctions, type CoreInit } from "./wasm/core.js";
import { IoatRegisters } from "./devices/ioat.js";
import { pciRw, type PciRwState } from "./devices/pci_rw.js";
import { deviceDma, dmaPort, type DmaPort } from "./iommu/dma.js";

export { Core };
export type { CoreInit };
// A device model raising its interrupts from this thread.
export { msixRaise, msiRaise, IRQ_SENT, IRQ_PENDING, IRQ_OFF } from "./devices/msix.js";

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

const { EINVAL, EBUSY } = errno;

/** Instantiates the data-plane core in this thread over the memory of `init`. */
export function attachCore(init: CoreInit): Promise<Core> {
  return Core.attach(init);
}

/** Claims a worker slot over the kernel's memory (API.md §3). Throws when all 63 are taken. */
export async function attachWorker(init: CoreInit): Promise<WorkerContext> {
  const core = await Core.attach(init);
  const x = core.x;
  const slot = x.worker_claim((Math.random() * 0x7fffffff) | 1);
  if (slot < 0) throw Object.assign(new Error("attachWorker: every worker slot is taken"), { errno: EBUSY });
  x.iotlb_attach(slot);
  x.iotlb_flush();
  return new Context(core, slot);
}

const toOffset = (o: number | bigint): number => {
  const v = typeof o === "bigint" ? Number(o) : o;
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`offset must be a non-negative integer (got ${o})`);
  return v;
};

/**
 * A device file's read/write from a worker once the file's gate is passed: the device state
 * published in shared memory (the file's FILE_DEV_BASE word, the device's DEV_* line, its
 * config-space shadow with the write masks, BAR0), as vfio-pci's rw does it on the kernel's
 * side. The layout constants are read once, here. It neither checks the gate nor opens a
 * grace-period section: WorkerFiles wraps it in both.
 */
export class DeviceFileIo {
  private readonly mem: Uint8Array;
  private readonly u32: Uint32Array;
  /** Word indexes: the FILE_DEV_BASE table, and each DEV_* field within a device's line. */
  private readonly fileDev: number;
  private readonly config: number;
  private readonly configSize: number;
  private readonly bar0: number;
  private readonly bar0Size: number;
  private readonly msixTable: number;
  private readonly msixSize: number;
  /** Byte address of the device table and its line size. */
  private readonly devBase: number;
  private readonly devStride: number;

  private readonly engine: number;
  private readonly engines = new Map<number, { regs: IoatRegisters; sink: (off: number, data: Uint8Array) => void }>();
  /** The device the current rw reaches (one object, refilled per call: nothing allocated). */
  private readonly state: PciRwState;

  constructor(private readonly core: Core) {
    this.engine = core.consts.DEV_ENGINE / 4;
    this.mem = core.u8;
    this.u32 = core.u32;
    this.fileDev = core.consts.FILE_DEV_BASE >>> 2;
    this.devBase = core.consts.DEV_BASE;
    this.devStride = core.consts.DEV_STRIDE;
    this.config = core.consts.DEV_CONFIG / 4;
    this.configSize = core.consts.DEV_CONFIG_SIZE / 4;
    this.bar0 = core.consts.DEV_BAR0 / 4;
    this.bar0Size = core.consts.DEV_BAR0_SIZE / 4;
    this.msixTable = core.consts.DEV_MSIX_TABLE / 4;
    this.msixSize = core.consts.DEV_MSIX_SIZE / 4;
    // Every field from the start, so the object keeps one shape (the rw stays monomorphic).
    this.state = {
      mem: this.mem, config: 0, configSize: 0, bar0: 0, bar0Size: 0, msixStart: 0, msixEnd: 0,
      barSink: undefined, configWrite: undefined,
    };
  }

  /** pos: region index * 2^40 + offset. Bytes transferred, or -errno. */
  rw(fileSlot: number, buf: Uint8Array, pos: number, write: boolean): number {
    const u32 = this.u32;
    const dev = u32[this.fileDev + fileSlot] - 1;
    if (dev < 0) return -EINVAL;
    if (buf.length === 0) return 0;
    const line = (this.devBase + dev * this.devStride) >>> 2;
    // vfio-pci's rw, the kernel thread's own (devices/pci_rw.ts), over the published line.
    // The registers with side effects (power state, MSI flags, PCIe FLR) act only when
    // written on the kernel's thread; an engine's register file takes BAR0 stores here too.
    const s = this.state;
    s.config = u32[line + this.config];
    s.configSize = u32[line + this.configSize];
    s.bar0 = u32[line + this.bar0];
    s.bar0Size = u32[line + this.bar0Size];
    const table = u32[line + this.msixTable];
    s.msixStart = table ? table - s.bar0 : 0;
    s.msixEnd = table ? s.msixStart + u32[line + this.msixSize] * 16 : 0;
    const eng = u32[line + this.engine];
    s.barSink = eng ? this.registers(s.bar0, eng).sink : undefined;
    return pciRw(s, buf, pos, write);
  }

  /** The register model of the engine whose state page is `eng` (one per device, kept). */
  private registers(bar: number, eng: number): { regs: IoatRegisters; sink: (off: number, data: Uint8Array) => void } {
    let r = this.engines.get(eng);
    if (!r || r.regs.bar !== bar) {
      const regs = new IoatRegisters(this.core, bar, eng);
      this.engines.set(eng, r = { regs, sink: (o, data) => regs.write(o, data) });
    }
    return r;
  }

}

/**
 * The file side of a worker context (ctx.file(ref)): a device file's read/write from this
 * thread. `enter` begins each operation: it enters the grace-period read section, so the
 * device's memory is not freed under the operation, and makes the gate check, one atomic load
 * of the gate word (paired with gate_grant in BIND: passing it makes every store of the bind
 * visible), both in one wasm call (gate_enter: a call costs more than the check). Then the
 * device state published in shared memory (DeviceFileIo). The T16 benchmark builds a second
 * one whose `enter` is the same call minus the check, so both sides run this very code.
 */
export class WorkerFiles {
  /** Set by the context's detach(): every later operation throws. */
  detached = false;
  private readonly io: DeviceFileIo;
  private readonly x: CoreFunctions;

  constructor(core: Core, private readonly enter: (slot: number, gen: number) => number = core.x.gate_enter) {
    this.x = core.x;
    this.io = new DeviceFileIo(core);
  }

  file(ref: FileRef): WorkerFile {
    return {
      pread: (buf, offset) => this.rw(ref, buf, toOffset(offset), false),
      pwrite: (buf, offset) => this.rw(ref, buf, toOffset(offset), true),
    };
  }

  private rw(ref: FileRef, buf: Uint8Array, pos: number, write: boolean): number {
    if (this.detached) throw new Error("the worker context is detached");
    try {
      const g = this.enter(ref.slot, ref.gen);
      if (g !== 0) return g;
      return this.io.rw(ref.slot, buf, pos, write);
    } finally {
      this.x.epoch_exit();
    }
  }
}

class Context implements WorkerContext {
  private readonly port: DmaPort;
  /** Also holds the context's detached state: its file operations check it on every call. */
  private readonly files: WorkerFiles;

  constructor(readonly core: Core, readonly slot: number) {
    this.port = dmaPort(core, slot);
    this.files = new WorkerFiles(core);
  }

  private live(): void {
    if (this.files.detached) throw new Error("the worker context is detached");
  }

  file(ref: FileRef): WorkerFile {
    return this.files.file(ref);
  }

  device(index: number): WorkerDevice {
    if (!Number.isInteger(index) || index < 0 || index >= this.core.consts.DEV_SLOTS) throw new RangeError(`no device index ${index}`);
    return {
      dmaRead: (iova, out) => this.dma(index, iova, out, false),
      dmaWrite: (iova, data) => this.dma(index, iova, data, true),
    };
  }

  /**
   * Device DMA through the device's published domain (dev_dma loads it in its own section),
   * one bounce buffer at a time: the kernel thread's DeviceHandle DMA, the same function.
   */
  private dma(index: number, iova: number | bigint, buf: Uint8Array, write: boolean): number {
    this.live();
    return deviceDma(this.port, index, iova, buf, write);
  }

  detach(): void {
    if (this.files.detached) return;
    this.files.detached = true;
    this.core.x.worker_release(this.slot);
  }
}
