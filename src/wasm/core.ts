// Loads the data-plane core into the one shared memory, in the kernel's thread or in a worker.
// Knows no kernel object: it only hands out the module's exports and typed views, and reads
// the memory map from the module's exported constants (assembly/layout.ts), never a copy.

import { CORE_STATS_WASM_BASE64, CORE_WASM_BASE64 } from "./core_bytes.js";

/** The core's exports, as wasm hands them to JS (u32 results arrive as signed numbers). */
export interface CoreExports {
  // layout constants (immutable globals)
  readonly [name: string]: unknown;
  frames_init(memPages: number): number;
  frames_attach(): void;
  frames_ready(): number;
  pool_base(): number;
  pool_frames(): number;
  frames_free(): number;
  fail_point(): number;
  frame_alloc(order: number): number;
  frame_valid(f: number): number;
  frame_refcount(f: number): number;
  frame_get(f: number): void;
  frame_put(f: number): number;
  frame_order(f: number): number;
  frame_addr(f: number): number;
  radix_alloc_root(): number;
  radix_lookup(root: number, va: number): number;
  radix_install(root: number, va: number, phys: number, flags: number, level: number): number;
  radix_remove(root: number, va: number, level: number): number;
  radix_protect(root: number, va: number, writable: number): number;
  radix_destroy(root: number): void;
  gate_generation(slot: number): number;
  gate_grant(slot: number, gen: number): void;
  gate_close(slot: number): void;
  gate_check(slot: number, gen: number): number;
  /** A worker's gated file operation: epoch_enter, then gate_check (the section stays entered). */
  gate_enter(slot: number, gen: number): number;
  gate_word(slot: number): number;
  efd_signal(slot: number): number;
  // message-signalled interrupts (assembly/msi.ts): index 1 MSI, 2 MSI-X
  irq_raise(dev: number, index: number, vector: number): number;
  irq_unmask(dev: number, index: number, vector: number): number;
  irq_mask(dev: number, index: number, vector: number): number;
  irq_flush(dev: number, index: number): number;
  // grace period (assembly/epoch.ts)
  epoch_enter(): void;
  epoch_exit(): void;
  epoch_advance(): number;
  epoch_quiescent(epoch: number): number;
  worker_release(slot: number): void;
  stat_read(index: number): number;
  // IOMMU domains (assembly/domain.ts); IOVAs as two u32 halves, sizes in IO pages
  domain_valid(dom: number): number;
  domain_alloc(format: number, flags: number): number;
  domain_free(dom: number): number;
  domain_invalidate(dom: number): void;
  domain_page_shift(dom: number): number;
  domain_serial(dom: number): number;
  domain_tables(dom: number): number;
  domain_mapped_pages(dom: number): number;
  domain_pgsize_bitmap(dom: number): number;
  domain_map(dom: number, iovaLo: number, iovaHi: number, physPage: number, npages: number, prot: number, allowHuge: number): number;
  domain_unmap(dom: number, iovaLo: number, iovaHi: number, npages: number): number;
  domain_lookup(dom: number, iovaLo: number, iovaHi: number): number;
  domain_iova_to_phys(dom: number, iovaLo: number, iovaHi: number): number;
  domain_read_and_clear_dirty(dom: number, iovaLo: number, iovaHi: number, npages: number, bitmap: number, pageShift: number, noClear: number): number;
  domain_mark_dirty(dom: number, iovaLo: number, iovaHi: number, npages: number): number;
  domain_set_dirty_tracking(dom: number, enable: number): number;
  // DMA fault ring (assembly/fault.ts)
  fault_head(): number;
  fault_rec(i: number): number;
  // IOTLB (assembly/iotlb.ts)
  iotlb_attach(slot: number): number;
  iotlb_slot(): number;
  iotlb_flush(): void;
  iotlb_translate(dom: number, iovaLo: number, iovaHi: number, write: number): number;
  iotlb_host(): number;
  iotlb_avail(): number;
  iotlb_bench(dom: number, iovaLo: number, iovaHi: number, spanLog2: number, count: number, mode: number): number;
  // DMA (assembly/dma.ts)
  dma_read(dom: number, iovaLo: number, iovaHi: number, dst: number, len: number): number;
  dma_write(dom: number, iovaLo: number, iovaHi: number, src: number, len: number): number;
  dma_copy(dom: number, srcLo: number, srcHi: number, dstLo: number, dstHi: number, len: number): number;
  dma_batch(desc: number, count: number): number;
  /** A device's DMA through its published domain word (DEV_NONE: blocked). */
  dev_dma(dev: number, iovaLo: number, iovaHi: number, host: number, len: number, write: number): number;
  /** After this thread's -EFAULT: bytes moved before the fault, and its fault record's number. */
  dma_fault_done(): number;
  dma_fault_seq(): number;
}

/** What a worker needs to join: structured-cloneable. */
export interface CoreInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
}

let compiled: Promise<WebAssembly.Module> | undefined;
let compiledStats: Promise<WebAssembly.Module> | undefined;

function decodeBase64(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * The compiled core, compiled once per thread. `counters`: the build with the data plane's
 * counters compiled in (IOTLB hits, misses, walks, faults); the default build has none and
 * pays nothing for them.
 */
export function compileCore(counters = false): Promise<WebAssembly.Module> {
  if (counters) return (compiledStats ??= WebAssembly.compile(decodeBase64(CORE_STATS_WASM_BASE64)));
  compiled ??= WebAssembly.compile(decodeBase64(CORE_WASM_BASE64));
  return compiled;
}

/** What frame_alloc (and radix_alloc_root) return when no frame is left: assembly/layout.ts FRAME_NONE, read as a u32. */
export const FRAME_NONE = 0xffffffff;
export const WASM_PAGE = 65536;
export const MAX_MEMORY_BYTES = 65536 * WASM_PAGE;

export class Core {
  readonly x: CoreExports;
  readonly memory: WebAssembly.Memory;
  readonly module: WebAssembly.Module;
  /** Views over the whole memory; the memory never grows, so they never go stale. */
  readonly u8: Uint8Array;
  readonly i32: Int32Array;
  readonly u32: Uint32Array;
  readonly u64: BigUint64Array;
  readonly dv: DataView;

  private constructor(module: WebAssembly.Module, memory: WebAssembly.Memory, instance: WebAssembly.Instance) {
    this.module = module;
    this.memory = memory;
    this.x = instance.exports as unknown as CoreExports;
    const buf = memory.buffer;
    this.u8 = new Uint8Array(buf);
    this.i32 = new Int32Array(buf);
    this.u32 = new Uint32Array(buf);
    this.u64 = new BigUint64Array(buf);
    this.dv = new DataView(buf);
  }

  /** A layout constant of assembly/layout.ts (or another exported global), by name. */
  c(name: string): number {
    const g = this.x[name];
    if (!(g instanceof WebAssembly.Global)) throw new Error(`core exports no constant ${name}`);
    return (g.value as number) >>> 0;
  }

  /** Creates the shared memory (fixed size) and lays out the memory map in it. */
  static async boot(memoryBytes: number, counters = false): Promise<Core> {
    const pages = memoryBytes / WASM_PAGE;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const core = await Core.attach({ module: await compileCore(counters), memory }, false);
    const rc = core.x.frames_init(pages);
    if (rc !== 0) throw new RangeError(`memoryBytes ${memoryBytes} is too small for the memory map`);
    return core;
  }

  /** Instantiates the core over an existing memory (in a worker, or by boot()). */
  static async attach(init: CoreInit, requireReady = true): Promise<Core> {
    const instance = await WebAssembly.instantiate(init.module, { env: { memory: init.memory } });
    const core = new Core(init.module, init.memory, instance);
    if (requireReady) {
      if (!core.x.frames_ready()) throw new Error("the shared memory holds no initialised vfio-emu memory map");
      core.x.frames_attach();
    }
    return core;
  }

  init(): CoreInit {
    return { module: this.module, memory: this.memory };
  }

  /** The poll sequence: bumped by every eventfd change (assembly/eventfd.ts, src/kernel/eventfd.ts). */
  pollSeq(): number {
    return Atomics.load(this.i32, this.c("HDR_POLL_SEQ") >>> 2);
  }

  /** Bumps the poll sequence and wakes sleepers; paired with pollWait's compare. */
  pollWake(): void {
    const i = this.c("HDR_POLL_SEQ") >>> 2;
    Atomics.add(this.i32, i, 1);
    Atomics.notify(this.i32, i);
  }

  /**
   * Sleeps until the poll sequence moves past `seen` or `timeoutMs` passes (negative: no
   * limit). Where the host forbids blocking (a browser's main thread) it spins, but only for
   * a bounded time; returns false when it could neither sleep nor spin to the end.
   */
  pollWait(seen: number, timeoutMs: number): boolean {
    const i = this.c("HDR_POLL_SEQ") >>> 2;
    try {
      Atomics.wait(this.i32, i, seen, timeoutMs < 0 ? Infinity : timeoutMs);
      return true;
    } catch {
      if (timeoutMs < 0) return false;
      const until = Date.now() + Math.min(timeoutMs, 1000);
      while (Date.now() < until && Atomics.load(this.i32, i) === seen) { /* bounded spin */ }
      return true;
    }
  }

  /** Host address of physical address 0. */
  get poolBase(): number { return this.x.pool_base() >>> 0; }
  get poolFrames(): number { return this.x.pool_frames() >>> 0; }
  get freeFrames(): number { return this.x.frames_free() >>> 0; }
}
