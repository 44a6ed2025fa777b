// The kernel's core: the shared memory and its core module, the namespace, file descriptions
// and their gate slots, processes, memory accounting and tracing. It knows no driver: drivers
// register device nodes in `vfs` with an opener that returns files with their operations.

import { errno } from "../uapi/errno.js";
import { Core } from "../wasm/core.js";
import { MemAccounting } from "./accounting.js";
import { File, type FileOperations, type StatResult } from "./file.js";
import { PinLedger } from "./gup.js";
import { Mm } from "./mm.js";
import { Process, type ProcessOptions } from "./process.js";
import { SlotAllocator } from "./slots.js";
import { Tracer } from "./trace.js";
import { Vfs } from "./vfs.js";
import { synchronizeDma } from "./grace.js";

/** Frames kept out of the commit limit for page tables and kernel use: 1/32 of the pool. */
const RESERVE_DIVISOR = 32;

export class KernelCore {
  readonly vfs = new Vfs();
  readonly trace = new Tracer();
  readonly acct: MemAccounting;
  /** Long-term pins of frames (GUP), whoever took them. */
  readonly pins: PinLedger;
  readonly gates: SlotAllocator;
  readonly eventfdSlots: SlotAllocator;
  readonly processes = new Set<Process>();
  private nextPid = 1;
  /** Files currently open (for leak checks and kernel.close()). */
  openFiles = 0;
  /** Counters drivers publish through kernel.stats() (iommufdObjects, pinnedPages, ...). */
  readonly stats = new Map<string, () => number>();

  constructor(readonly core: Core) {
    const frames = core.poolFrames;
    this.acct = new MemAccounting(frames - Math.ceil(frames / RESERVE_DIVISOR));
    this.pins = new PinLedger(frames);
    this.stats.set("pinnedPages", () => this.pins.pinnedPages);
    this.gates = new SlotAllocator(core.consts.GATE_SLOTS);
    this.eventfdSlots = new SlotAllocator(core.consts.EVENTFD_SLOTS);
  }

  static async boot(memoryBytes: number, counters = false): Promise<KernelCore> {
    const k = new KernelCore(await Core.boot(memoryBytes, counters));
    // The data plane's counters (summed over worker slots) and its fault ring.
    const x = k.core.x;
    if (counters) {
      const names = ["iotlbLastHits", "iotlbHits", "iotlbMisses", "iotlbWalks"];
      names.forEach((name, i) => k.stats.set(name, () => x.stat_read(i) >>> 0));
    }
    k.stats.set("dmaFaults", () => x.fault_head() >>> 0);
    return k;
  }

  /**
   * A fault-injection point of the control plane (failNth): counts down the same counter as
   * frame allocations in the core; true when this allocation or copy must fail.
   */
  shouldFail(): boolean {
    // Not armed (every call but under failNth): one load of the counter fail_point would
    // read, instead of a call into the core on every allocation and copy of every ioctl.
    if (this.core.i32[this.core.consts.HDR_FAIL_NTH >>> 2] <= 0) return false;
    return this.core.x.fail_point() !== 0;
  }

  /** A new process with an empty address space, or -ENOMEM when none can be allocated. */
  allocProcess(opts: ProcessOptions = {}): Process | number {
    const mm = Mm.alloc(this.core, this.acct);
    if (typeof mm === "number") return mm;
    const p = new Process(this, this.nextPid++, opts, mm);
    this.processes.add(p);
    return p;
  }

  /** Kernel.createProcess: the harness spawns a process; out of memory is an Error here. */
  createProcess(opts?: ProcessOptions): Process {
    const p = this.allocProcess(opts);
    if (typeof p === "number") throw new RangeError("vfio-emu: out of memory for a process page table");
    return p;
  }

  processExited(p: Process): void {
    this.processes.delete(p);
  }

  /**
   * A new open file description with a fresh gate slot (granted byte 0), or -ENFILE when the
   * gate table is full.
   */
  newFile(ops: FileOperations, flags: number, priv: unknown, path: string, stat: StatResult): File | number {
    const slot = this.gates.alloc();
    if (slot < 0) return -errno.ENFILE;
    const f = new File(ops, flags, priv, path, stat);
    f.gateSlot = slot;
    f.gateGen = this.core.x.gate_generation(slot) >>> 0;
    this.openFiles++;
    return f;
  }

  /**
   * Drops one reference; the last one retires the file's gate and releases it. The gate closes
   * first (the generation moves on: every FileRef to this file now gets EBADF), then the
   * grace period lets worker operations that passed the gate before finish, and only then does
   * release tear down what they might read.
   */
  fput(f: File): void {
    if (--f.refs > 0) return;
    f.closed = true;
    f.wasGranted = this.core.x.gate_check(f.gateSlot, f.gateGen) === 0;
    this.core.x.gate_close(f.gateSlot);
    // Workers pass only a granted gate: a file never granted has no operation to wait for.
    if (f.wasGranted) synchronizeDma(this, "file_release");
    f.ops.release?.(f);
    this.gates.free(f.gateSlot);
    this.openFiles--;
  }
}
