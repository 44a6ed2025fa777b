// The Intel I/OAT DMA engine (CBDMA v3.2, as on Skylake-SP: drivers/dma/ioat/, and the vfio
// selftests' userspace driver tools/testing/selftests/vfio/lib/drivers/ioat/): its BAR0
// register file and what a CPU store to each register does. One channel. The registers live
// in BAR0's memory, so loads (pread, or an mmap of BAR0) read them as they are; stores come
// here from whichever thread makes them (the kernel's pwrite, an MMIO store through an mmap,
// a worker's pwrite), are applied with atomic compare-and-swap on each u32 (the engine changes
// bits of the same words), and a store to DMACOUNT or CHANCMD rings the engine's doorbell:
// an atomic add and a notify that wakes the device's worker (src/devices/ioat_worker.ts),
// which runs the descriptors in wasm (assembly/ioat.ts).

import type { Core } from "../wasm/core.js";

// ---- BAR0 (drivers/dma/ioat/registers.h) ----------------------------------------------------
export const IOAT_CHANCNT_OFFSET = 0x00;
export const IOAT_XFERCAP_OFFSET = 0x01;
export const IOAT_GENCTRL_OFFSET = 0x02;
export const IOAT_INTRCTRL_OFFSET = 0x03;
export const IOAT_ATTNSTATUS_OFFSET = 0x04;
export const IOAT_VER_OFFSET = 0x08;
export const IOAT_INTRDELAY_OFFSET = 0x0c;
export const IOAT_DMA_CAP_OFFSET = 0x10;
export const IOAT_CHANNEL_MMIO_SIZE = 0x80;
/** Channel registers, relative to the channel's block (channel 0 at IOAT_CHANNEL_MMIO_SIZE). */
export const IOAT_CHANCTRL_OFFSET = 0x00;
export const IOAT_DMA_COMP_OFFSET = 0x02;
export const IOAT2_CHANCMD_OFFSET = 0x04;
export const IOAT_CHAN_DMACOUNT_OFFSET = 0x06;
export const IOAT_CHANSTS_OFFSET = 0x08;
export const IOAT2_CHAINADDR_OFFSET = 0x10;
export const IOAT_CHANCMP_OFFSET = 0x18;
export const IOAT_CDAR_OFFSET = 0x20;
export const IOAT_CHANERR_OFFSET = 0x28;
export const IOAT_CHANERR_MASK_OFFSET = 0x2c;

export const IOAT_INTRCTRL_MASTER_INT_EN = 0x01;
export const IOAT_INTRCTRL_INT_STATUS = 0x02;
export const IOAT_INTRCTRL_INT = 0x04;
export const IOAT_INTRCTRL_MSIX_VECTOR_CONTROL = 0x08;

export const IOAT_CHANCTRL_INT_REARM = 0x0001;
export const IOAT_CHANCTRL_ERR_COMPLETION_EN = 0x0004;
export const IOAT_CHANCTRL_ANY_ERR_ABORT_EN = 0x0008;
export const IOAT_CHANCTRL_ERR_INT_EN = 0x0010;

export const IOAT_CHANCMD_RESET = 0x20;
export const IOAT_CHANCMD_RESUME = 0x10;
export const IOAT_CHANCMD_ABORT = 0x08;
export const IOAT_CHANCMD_SUSPEND = 0x04;
export const IOAT_CHANCMD_APPEND = 0x02;
export const IOAT_CHANCMD_START = 0x01;

export const IOAT_CHANSTS_STATUS = 0x7;
export const IOAT_CHANSTS_ACTIVE = 0x0;
export const IOAT_CHANSTS_DONE = 0x1;
export const IOAT_CHANSTS_SUSPENDED = 0x2;
export const IOAT_CHANSTS_HALTED = 0x3;

export const IOAT_CHANERR_SRC_ADDR_ERR = 0x0001;
export const IOAT_CHANERR_DEST_ADDR_ERR = 0x0002;
export const IOAT_CHANERR_NEXT_ADDR_ERR = 0x0004;
export const IOAT_CHANERR_NEXT_DESC_ALIGN_ERR = 0x0008;
export const IOAT_CHANERR_CHAIN_ADDR_VALUE_ERR = 0x0010;
export const IOAT_CHANERR_CONTROL_ERR = 0x0400;
export const IOAT_CHANERR_LENGTH_ERR = 0x0800;
export const IOAT_CHANERR_COMPLETION_ADDR_ERR = 0x1000;

/** CBVER of the v3.2 engine the selftest driver accepts (IOAT_VER_3_2). */
export const IOAT_VER_3_2 = 0x32;
/** IOAT_DMA_COMP_V2: the channel takes version-2 style chains (CHAINADDR at 0x10). */
const IOAT_DMA_COMP_V2 = 0x0002;

/** Descriptor control bits (struct ioat_dma_descriptor ctl_f) and its size. */
export const IOAT_DESC_SIZE = 64;
export const IOAT_DESC_INT_EN = 1 << 0;
export const IOAT_DESC_COMPL_WRITE = 1 << 3;
export const IOAT_DESC_FENCE = 1 << 4;
export const IOAT_DESC_NULL = 1 << 5;
export const IOAT_OP_COPY = 0x00;

/** PCI ids the selftest driver's probe matches: PCI_VENDOR_ID_INTEL, PCI_DEVICE_ID_INTEL_IOAT_SKX. */
export const PCI_VENDOR_ID_INTEL = 0x8086;
export const PCI_DEVICE_ID_INTEL_IOAT_SKX = 0x2021;

const CHAN = IOAT_CHANNEL_MMIO_SIZE;
/** The register window the model decodes; BAR0 above it (the MSI-X table) is plain memory. */
const REG_WINDOW = 0x100;

// What a store does to each byte of the window.
const RO = 0, RW = 1, W1C = 2, CMD = 3, DOORBELL = 4, CHAIN = 5;
const kind = new Uint8Array(REG_WINDOW);
const mask = new Uint8Array(REG_WINDOW);
function reg(off: number, size: number, k: number, m = 0xffffffff, m2 = 0xffffffff): void {
  for (let i = 0; i < size; i++) {
    kind[off + i] = k;
    mask[off + i] = ((i < 4 ? m : m2) >>> ((i % 4) * 8)) & 0xff;
  }
}
reg(IOAT_GENCTRL_OFFSET, 1, RW, 0x01);
reg(IOAT_INTRCTRL_OFFSET, 1, RW, IOAT_INTRCTRL_MASTER_INT_EN | IOAT_INTRCTRL_MSIX_VECTOR_CONTROL);
reg(IOAT_INTRDELAY_OFFSET, 2, RW, 0x3fff);
reg(CHAN + IOAT_CHANCTRL_OFFSET, 2, RW, 0xf33d);
reg(CHAN + IOAT2_CHANCMD_OFFSET, 1, CMD, 0x3f);
reg(CHAN + IOAT_CHAN_DMACOUNT_OFFSET, 2, DOORBELL);
reg(CHAN + IOAT2_CHAINADDR_OFFSET, 8, CHAIN);
reg(CHAN + IOAT_CHANCMP_OFFSET, 8, RW, 0xffffffc0);
reg(CHAN + IOAT_CHANERR_OFFSET, 4, W1C, 0x7ffff);
reg(CHAN + IOAT_CHANERR_MASK_OFFSET, 4, RW, 0x7ffff);
// INTRCTRL's INT_STATUS is cleared by writing it back.
mask[IOAT_INTRCTRL_OFFSET] |= IOAT_INTRCTRL_INT_STATUS;

/**
 * One I/OAT function's registers and engine state, as any thread sees them: `bar` is BAR0's
 * host address, `eng` the engine's state page (assembly/ioat.ts ENG_*).
 */
export class IoatRegisters {
  private readonly u8: Uint8Array;
  private readonly i32: Int32Array;
  private readonly doorbell: number;
  private readonly cmdWord: number;
  private readonly reloadWord: number;
  private readonly reloadChain: number;
  private readonly reloadArmed: number;

  constructor(core: Core, readonly bar: number, readonly eng: number) {
    this.u8 = core.u8;
    this.i32 = core.i32;
    this.doorbell = (eng + core.consts.ENG_DOORBELL) >>> 2;
    this.cmdWord = (eng + core.consts.ENG_CMD) >>> 2;
    this.reloadWord = (eng + core.consts.ENG_RELOAD) >>> 2;
    this.reloadChain = core.consts.RELOAD_CHAIN;
    this.reloadArmed = core.consts.RELOAD_ARMED;
  }

  /** Power-on values of the register window (the rest of BAR0 is left as it is). */
  powerOn(): void {
    const { u8, bar } = this;
    u8.fill(0, bar, bar + REG_WINDOW);
    u8[bar + IOAT_CHANCNT_OFFSET] = 1;
    u8[bar + IOAT_XFERCAP_OFFSET] = 16; // assembly/ioat.ts IOAT_XFERCAP_LOG2
    u8[bar + IOAT_VER_OFFSET] = IOAT_VER_3_2;
    u8[bar + CHAN + IOAT_DMA_COMP_OFFSET] = IOAT_DMA_COMP_V2;
    u8[bar + CHAN + IOAT_CHANSTS_OFFSET] = IOAT_CHANSTS_HALTED;
  }

  /** A function reset: the engine drops its chain and comes back halted. */
  reset(): void {
    this.powerOn();
    Atomics.or(this.i32, this.cmdWord, IOAT_CHANCMD_RESET);
    this.ring();
  }

  /** A CPU store of `data` at BAR0 offset `off` (the caller clipped it to the BAR). */
  write(off: number, data: Uint8Array): void {
    const { u8, i32, bar } = this;
    let cmd = 0, ring = false, reload = false, doorbell = false;
    const end = off + data.length;
    for (let w = off & ~3; w < end; w += 4) {
      if (w >= REG_WINDOW) {
        // Past the register window: plain memory (the MSI-X table and PBA).
        const from = Math.max(w, off);
        u8.set(data.subarray(from - off, end - off), bar + from);
        break;
      }
      const idx = (bar + w) >>> 2;
      for (;;) {
        const old = Atomics.load(i32, idx);
        let nv = old;
        for (let b = 0; b < 4; b++) {
          const at = w + b;
          if (at < off || at >= end) continue;
          const v = data[at - off];
          const k = kind[at];
          const m = mask[at];
          const sh = b * 8;
          const cur = (nv >>> sh) & 0xff;
          let next = cur;
          if (k === RW || k === DOORBELL || k === CHAIN || k === CMD) next = (cur & ~m) | (v & m);
          if (k === RW && at === IOAT_INTRCTRL_OFFSET) next &= ~(v & IOAT_INTRCTRL_INT_STATUS);
          else if (k === W1C) next = cur & ~(v & m);
          nv = (nv & ~(0xff << sh)) | ((next & 0xff) << sh);
        }
        if (Atomics.compareExchange(i32, idx, old, nv) === old) break;
      }
      for (let b = 0; b < 4; b++) {
        const at = w + b;
        if (at < off || at >= end) continue;
        const k = kind[at];
        if (k === CMD) { cmd |= data[at - off] & mask[at]; ring = true; }
        else if (k === DOORBELL) ring = doorbell = true;
        else if (k === CHAIN) reload = true;
      }
    }
    // The engine reads CHAINADDR once it sees the reload armed by a DMACOUNT write after it
    // (paired with its atomic load): a new chain waits for its own doorbell, never runs
    // against the count the previous chain left in DMACOUNT.
    if (reload) Atomics.store(i32, this.reloadWord, this.reloadChain);
    if (doorbell) Atomics.or(i32, this.reloadWord, this.reloadArmed);
    if (cmd) Atomics.or(i32, this.cmdWord, cmd);
    if (doorbell) this.activate();
    if (ring || reload) this.ring();
  }

  /**
   * A doorbell that gives the channel work makes it ACTIVE at once, as the hardware's status
   * does, so a driver polling CHANSTS right after never sees the state before it: before the
   * ring, so the engine's pass after it ends the run with DONE (or HALTED).
   */
  private activate(): void {
    const { i32 } = this;
    const sts = (this.bar + CHAN + IOAT_CHANSTS_OFFSET) >>> 2;
    const reload = Atomics.load(i32, this.reloadWord) === (this.reloadChain | this.reloadArmed);
    const errs = Atomics.load(i32, (this.bar + CHAN + IOAT_CHANERR_OFFSET) >>> 2) !== 0;
    for (;;) {
      const old = Atomics.load(i32, sts);
      const st = old & IOAT_CHANSTS_STATUS;
      const takes = st === IOAT_CHANSTS_DONE || (reload && !(st === IOAT_CHANSTS_HALTED && errs));
      if (!takes || st === IOAT_CHANSTS_ACTIVE) return;
      if (Atomics.compareExchange(i32, sts, old, (old & ~IOAT_CHANSTS_STATUS) | IOAT_CHANSTS_ACTIVE) === old) return;
    }
  }

  /** Wakes the engine (paired with the worker's Atomics.wait on the doorbell word). */
  ring(): void {
    Atomics.add(this.i32, this.doorbell, 1);
    Atomics.notify(this.i32, this.doorbell);
  }
}

/** What starts a device worker on this host: Node's worker_threads or a Web Worker. */
interface SpawnedWorker {
  terminate(): unknown;
  /** Calls `fn` once the thread is gone (exited or terminated). */
  gone(fn: () => void): void;
}

// Node's Worker, loaded with this module (a driver on the kernel's thread may spin on a
// register right after the open that spawns the worker: spawning must not wait for the event
// loop). Hidden from bundlers: a browser build never reaches Node's module.
const host = (globalThis as { process?: { versions?: { node?: string } } }).process;
const NodeWorker = host?.versions?.node
  ? (await import(/* @vite-ignore */ ["node", "worker_threads"].join(":")) as typeof import("node:worker_threads")).Worker
  : null;

function spawnWorker(data: unknown): SpawnedWorker {
  const here = import.meta.url;
  // Compiled, this module sits beside ioat_worker.js (dist/devices/, or the browser bundle's
  // directory); run from the sources (tests), the compiled worker is in dist/.
  const url = here.endsWith(".ts") ? new URL("../../dist/devices/ioat_worker.js", here) : new URL("./ioat_worker.js", here);
  if (NodeWorker) {
    const w = new NodeWorker(url, { workerData: data });
    w.unref();
    w.on("error", () => { /* the engine stops; the kernel keeps running */ });
    return { terminate: () => w.terminate(), gone: (fn) => { w.once("exit", fn); } };
  }
  const W = (globalThis as unknown as { Worker: new (u: URL, o: object) => { postMessage(d: unknown): void; terminate(): void } }).Worker;
  const w = new W(url, { type: "module" });
  w.postMessage(data);
  // A Web Worker has no exit event: it is gone once terminated.
  let onGone: (() => void) | null = null;
  return { terminate: () => { w.terminate(); onGone?.(); onGone = null; }, gone: (fn) => { onGone = fn; } };
}

/** The message a device worker starts with. */
export interface IoatWorkerData {
  init: unknown;
  bar: number;
  eng: number;
  /** The vfio device index (MSI-X vectors). */
  dev: number;
}

/**
 * The engine of one I/OAT function: its state page in shared memory and the worker thread that
 * runs it, spawned at the first open and stopped when the function goes away.
 */
export class IoatEngine {
  readonly regs: IoatRegisters;
  private worker: SpawnedWorker | null = null;
  private readonly stopWord: number;
  private readonly devWord: number;

  constructor(private readonly core: Core, private readonly workerInit: () => unknown, bar: number, readonly eng: number) {
    core.u8.fill(0, eng, eng + 4096);
    this.regs = new IoatRegisters(core, bar, eng);
    this.stopWord = (eng + core.consts.ENG_STOP) >>> 2;
    this.devWord = (eng + core.consts.ENG_DEV) >>> 2;
    this.regs.powerOn();
  }

  /** The function is enabled for vfio device `index`: the engine's worker runs. */
  start(index: number): void {
    Atomics.store(this.core.i32, this.devWord, index);
    this.regs.reset();
    if (!this.worker) {
      const data: IoatWorkerData = { init: this.workerInit(), bar: this.regs.bar, eng: this.eng, dev: index };
      this.worker = spawnWorker(data);
    }
  }

  /**
   * Stops the worker (the function is released or the kernel closes): it gives its worker slot
   * back and exits; one that does not within a second is terminated.
   */
  stop(gone?: () => void): void {
    Atomics.store(this.core.i32, this.stopWord, 1);
    this.regs.ring();
    const w = this.worker;
    this.worker = null;
    if (!w) { gone?.(); return; }
    let done = false;
    w.gone(() => { if (!done) { done = true; gone?.(); } });
    const t = setTimeout(() => void w.terminate(), 1000);
    (t as { unref?: () => void }).unref?.();
  }
}
