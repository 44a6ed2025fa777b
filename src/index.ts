// vfio-emu's public face (API.md §1–§2): createKernel, the raw syscall layer through
// Process, the constants by their kernel names, and the typed layer.

import { Machine } from "./devices/machine.js";
import { KernelCore } from "./kernel/kernel.js";
import type { Process, ProcessOptions } from "./kernel/process.js";
import type { TraceSink } from "./kernel/trace.js";
import { MAX_MEMORY_BYTES, WASM_PAGE, type CoreInit } from "./wasm/core.js";
import { RECORD_HOOK, type RecordHook } from "./trace/recorder.js";

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
  /**
   * Boot the data-plane build with its counters compiled in: kernel.stats() then has
   * iotlbLastHits, iotlbHits, iotlbMisses and iotlbWalks (default false: the counters cost nothing).
   */
  counters?: boolean;
}

export interface DmaFault { iova: bigint; write: boolean; reason: "unmapped" | "perm" | "blocked" }

export interface DeviceHandle {
  readonly bdf: string;
  readonly model: string;
  readonly iommuGroup: number;
  /** N of /dev/vfio/devices/vfioN; -1 for a device not bound to vfio-pci (no cdev). */
  readonly index: number;
  /**
   * Unregisters the device: it leaves kernel.devices and its node disappears at once (a path
   * open gives -ENOENT), the request event fires (the REQ eventfd, if armed), and the promise
   * resolves after the last open file of the device is closed.
   */
  unplug(): Promise<void>;
  /** Device DMA through the IOMMU: 0, or -EFAULT on a fault (one fault record). */
  dmaRead(iova: number | bigint, out: Uint8Array): number;
  dmaWrite(iova: number | bigint, data: Uint8Array): number;
  /** The IOMMU faults this device's DMA has hit, oldest first. */
  faults(): DmaFault[];
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

/** Boots a kernel (API.md §1). */
export async function createKernel(config: KernelConfig = {}): Promise<Kernel> {
  const memoryBytes = config.memoryBytes ?? DEFAULT_MEMORY_BYTES;
  if (!Number.isInteger(memoryBytes) || memoryBytes % WASM_PAGE !== 0 || memoryBytes <= 0 || memoryBytes > MAX_MEMORY_BYTES) {
    throw new RangeError(`memoryBytes must be a multiple of 64 KiB up to 4 GiB (got ${memoryBytes})`);
  }
  const kcore = await KernelCore.boot(memoryBytes, config.counters === true);
  const kernel = new Machine(kcore, config);
  // `vfio-emu trace --record` installs this hook in the program it runs (trace/preload.ts).
  const record = (globalThis as Record<symbol, RecordHook | undefined>)[RECORD_HOOK];
  if (record) record.attach(kernel, config);
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const glob = env?.VFIO_EMU_TRACE;
  if (glob) kernel.trace(glob, (line) => console.error(line));
  for (const d of config.devices ?? []) kernel.addDevice(d);
  return kernel;
}

export { IommuFd, Ioas } from "./typed/iommufd.js";
export type { MapOptions, MapFileOptions, IovaRange } from "./typed/iommufd.js";
export { VfioDeviceFile } from "./typed/vfio.js";
export type { VfioDeviceRef, VfioDeviceInfo, VfioRegionInfo } from "./typed/vfio.js";
export { VfioGroup, VfioContainer } from "./typed/vfio_group.js";
export type { DmaMapOptions, Type1Info, VfioGroupStatus } from "./typed/vfio_group.js";
