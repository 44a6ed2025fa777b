// vfio-emu's public face (API.md §1–§2): createKernel, the raw syscall layer through
// Process, the constants by their kernel names, and the typed layer.

import { IommuGroups } from "./iommu/iommu_group.js";
import { Iommufd } from "./iommufd/main.js";
import { modelIds } from "./devices/models.js";
import { PciBus } from "./devices/pci.js";
import { KernelCore } from "./kernel/kernel.js";
import type { Process, ProcessOptions } from "./kernel/process.js";
import type { TraceSink } from "./kernel/trace.js";
import { MAX_MEMORY_BYTES, WASM_PAGE, type CoreInit } from "./wasm/core.js";

export * from "./uapi/index.js";
export { VfioError } from "./errors.js";
export type { Process, ProcessOptions, FileRef, PollFd } from "./kernel/process.js";
export type { StatResult } from "./kernel/file.js";

export interface DeviceConfig {
  bdf: string;
  model: string;
  iommuGroup?: number;
  driver?: "vfio-pci" | "kernel" | "none";
  iommu?: {
    format?: "x86" | "mock";
    dirtyTracking?: boolean;
    coherent?: boolean;
    msiIsolated?: boolean;
  };
  [option: string]: unknown;
}

export interface KernelConfig {
  memoryBytes?: number;
  devices?: DeviceConfig[];
  vfioContainer?: "legacy" | "iommufd";
  dmaEntryLimit?: number;
  allowUnsafeInterrupts?: boolean;
}

export interface DeviceHandle {
  readonly bdf: string;
  readonly model: string;
  readonly iommuGroup: number;
}

export interface WorkerInit extends CoreInit {}

export interface Kernel {
  addDevice(cfg: DeviceConfig): DeviceHandle;
  device(bdf: string): DeviceHandle | undefined;
  readonly devices: readonly DeviceHandle[];
  createProcess(opts?: ProcessOptions): Process;
  stats(): Record<string, number>;
  workerInit(): WorkerInit;
  readonly memory: WebAssembly.Memory;
  /** Subscribes to trace events whose names match `glob`; returns the unsubscribe. */
  trace(glob: string, sink: TraceSink): () => void;
  close(): Promise<void>;
}

export const DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024;

/** The driver name sysfs shows for a device's `driver` setting. */
const driverName = (d: DeviceConfig["driver"]): string | null =>
  d === "none" ? null : d === "kernel" ? "pci-stub-dma" : "vfio-pci";

class EmulatedKernel implements Kernel {
  private readonly pci: PciBus;
  private readonly groups: IommuGroups;
  readonly iommufd: Iommufd;
  private readonly present: DeviceHandle[] = [];
  private closed = false;

  constructor(readonly kcore: KernelCore, readonly config: KernelConfig) {
    this.pci = new PciBus(kcore.vfs);
    this.groups = new IommuGroups(kcore.vfs);
    this.iommufd = new Iommufd(kcore);
    kcore.vfs.mkdirp("/dev/vfio/devices");
  }

  get memory(): WebAssembly.Memory { return this.kcore.core.memory; }
  get devices(): readonly DeviceHandle[] { return [...this.present]; }

  addDevice(cfg: DeviceConfig): DeviceHandle {
    if (!cfg || typeof cfg.bdf !== "string") throw new TypeError("a device needs a bdf");
    if (this.present.some((d) => d.bdf === cfg.bdf)) throw new Error(`device ${cfg.bdf} is already present`);
    const ids = modelIds(cfg.model);
    const group = cfg.iommuGroup ?? this.groups.freshId();
    if (!Number.isInteger(group) || group < 0) throw new TypeError(`bad iommuGroup ${cfg.iommuGroup}`);
    const dir = this.pci.add(cfg.bdf, ids, driverName(cfg.driver));
    this.groups.add(group, { bdf: cfg.bdf, sysfsDir: dir });
    const handle: DeviceHandle = Object.freeze({ bdf: cfg.bdf, model: cfg.model, iommuGroup: group });
    this.present.push(handle);
    return handle;
  }

  device(bdf: string): DeviceHandle | undefined {
    return this.present.find((d) => d.bdf === bdf);
  }

  createProcess(opts?: ProcessOptions): Process {
    if (this.closed) throw new Error("kernel is closed");
    return this.kcore.createProcess(opts);
  }

  stats(): Record<string, number> {
    const k = this.kcore;
    return {
      framesTotal: k.core.poolFrames,
      framesFree: k.core.freeFrames,
      committedPages: k.acct.committed,
      commitLimitPages: k.acct.commitLimit,
      openFiles: k.openFiles,
      processes: k.processes.size,
      ...Object.fromEntries([...k.stats].map(([name, read]) => [name, read()])),
    };
  }

  workerInit(): WorkerInit {
    return this.kcore.core.init();
  }

  trace(glob: string, sink: TraceSink): () => void {
    return this.kcore.trace.subscribe(glob, sink);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.kcore.processes]) p.kill();
  }
}

/** Boots a kernel (API.md §1). */
export async function createKernel(config: KernelConfig = {}): Promise<Kernel> {
  const memoryBytes = config.memoryBytes ?? DEFAULT_MEMORY_BYTES;
  if (!Number.isInteger(memoryBytes) || memoryBytes % WASM_PAGE !== 0 || memoryBytes <= 0 || memoryBytes > MAX_MEMORY_BYTES) {
    throw new RangeError(`memoryBytes must be a multiple of 64 KiB up to 4 GiB (got ${memoryBytes})`);
  }
  const kcore = await KernelCore.boot(memoryBytes);
  const kernel = new EmulatedKernel(kcore, config);
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const glob = env?.VFIO_EMU_TRACE;
  if (glob) kernel.trace(glob, (line) => console.error(line));
  for (const d of config.devices ?? []) kernel.addDevice(d);
  return kernel;
}

export { IommuFd, Ioas } from "./typed/iommufd.js";
export type { MapOptions, MapFileOptions, IovaRange } from "./typed/iommufd.js";
