// vfio-emu's public face (API.md §1–§2): createKernel, the raw syscall layer through
// Process, the constants by their kernel names, and the typed layer.

import { deviceDma, type FaultRecord } from "./iommu/dma.js";
import { GroupDevice, iommuCaps, IommuGroups, type IommuGroup } from "./iommu/iommu_group.js";
import { Iommufd } from "./iommufd/main.js";
import { modelBar0Size, modelEngine, modelIds, modelIrqs } from "./devices/models.js";
import { PciBus } from "./devices/pci.js";
import { VfioPciCoreDevice } from "./vfio/pci_core.js";
import { Vfio, type VfioDevice } from "./vfio/vfio_main.js";
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

/** The driver name sysfs shows for a device's `driver` setting. */
const driverName = (d: DeviceConfig["driver"]): string | null =>
  d === "none" ? null : d === "kernel" ? "pci-stub-dma" : "vfio-pci";

const toIova = (iova: number | bigint): bigint => {
  if (typeof iova === "bigint") {
    if (iova < 0n || iova >= 1n << 64n) throw new RangeError(`iova ${iova} is not a u64`);
    return iova;
  }
  if (!Number.isSafeInteger(iova) || iova < 0) throw new TypeError(`iova must be a non-negative integer (got ${iova})`);
  return BigInt(iova);
};

/** A present PCI function (API.md DeviceHandle). */
class PciDevice implements DeviceHandle {
  private readonly faultLog: FaultRecord[] = [];
  private unplugging: Promise<void> | null = null;

  constructor(
    private readonly kernel: EmulatedKernel,
    readonly bdf: string,
    readonly model: string,
    readonly group: IommuGroup,
    readonly driver: string | null,
    /** The vfio device (driver vfio-pci), or null. */
    readonly vdev: VfioDevice | null,
    readonly pciCore: VfioPciCoreDevice | null,
  ) {}

  get iommuGroup(): number { return this.group.id; }
  get index(): number { return this.vdev ? this.vdev.index : -1; }

  unplug(): Promise<void> {
    this.unplugging ??= this.kernel.unplug(this);
    return this.unplugging;
  }

  private dma(iova: number | bigint, buf: Uint8Array, write: boolean): number {
    if (!(buf instanceof Uint8Array)) throw new TypeError("the DMA buffer must be a Uint8Array");
    const at = toIova(iova);
    // The domain the device translates through: its iommufd attachment (cdev, or a group
    // with an iommufd), else its group's legacy container domain (VfioDevice.domainHandle).
    return deviceDma(this.kernel.kcore, this.vdev?.domainHandle ?? 0, at, buf, write, this.faultLog);
  }

  dmaRead(iova: number | bigint, out: Uint8Array): number { return this.dma(iova, out, false); }
  dmaWrite(iova: number | bigint, data: Uint8Array): number { return this.dma(iova, data, true); }

  faults(): DmaFault[] {
    return this.faultLog.map((f) => ({ iova: f.iova, write: f.write, reason: f.reason }));
  }
}

/** BAR0 addresses: one 64 KiB slot per vfio index below the x86 MSI window. */
const BAR0_BASE = 0xfd000000;

class EmulatedKernel implements Kernel {
  private readonly pci: PciBus;
  private readonly groups: IommuGroups;
  readonly iommufd: Iommufd;
  readonly vfio: Vfio;
  private readonly present: PciDevice[] = [];
  /** Devices unplugged whose release is pending (their last file is still open). */
  private readonly leaving = new Set<string>();
  private closed = false;

  constructor(readonly kcore: KernelCore, readonly config: KernelConfig) {
    this.pci = new PciBus(kcore.vfs);
    this.groups = new IommuGroups(kcore.vfs);
    this.iommufd = new Iommufd(kcore);
    this.iommufd.allowUnsafeInterrupts = config.allowUnsafeInterrupts ?? false;
    this.vfio = new Vfio(kcore, this.iommufd, {
      vfioContainer: config.vfioContainer, dmaEntryLimit: config.dmaEntryLimit,
      allowUnsafeInterrupts: config.allowUnsafeInterrupts,
    });
  }

  get memory(): WebAssembly.Memory { return this.kcore.core.memory; }
  get devices(): readonly DeviceHandle[] { return [...this.present]; }

  addDevice(cfg: DeviceConfig): DeviceHandle {
    if (this.closed) throw new Error("kernel is closed");
    if (!cfg || typeof cfg.bdf !== "string") throw new TypeError("a device needs a bdf");
    if (this.present.some((d) => d.bdf === cfg.bdf)) throw new Error(`device ${cfg.bdf} is already present`);
    if (this.leaving.has(cfg.bdf)) throw new Error(`device ${cfg.bdf} is still being unplugged (a file of it is open)`);
    const ids = modelIds(cfg.model);
    const driver = cfg.driver ?? "vfio-pci";
    if (driver !== "vfio-pci" && driver !== "kernel" && driver !== "none") throw new TypeError(`bad driver ${JSON.stringify(cfg.driver)}`);
    const groupId = cfg.iommuGroup ?? this.groups.freshId();
    if (!Number.isInteger(groupId) || groupId < 0) throw new TypeError(`bad iommuGroup ${cfg.iommuGroup}`);
    const caps = iommuCaps(cfg.iommu);
    const dir = this.pci.add(cfg.bdf, ids, null);
    const group = this.groups.add(groupId, { bdf: cfg.bdf, sysfsDir: dir });
    let bound: string | null = null;
    let vdev: VfioDevice | null = null;
    let pciCore: VfioPciCoreDevice | null = null;
    if (driver === "kernel") {
      // Driver probe: an ordinary driver uses the DMA API (the group's default domain); it
      // fails (EBUSY) on a group a user owns, and the device then stays without a driver.
      if (group.useDefaultDomain() === 0) bound = driverName("kernel");
    } else if (driver === "vfio-pci") {
      // vfio-pci manages DMA itself (driver_managed_dma): binding it claims nothing.
      const index = this.vfio.nextIndexHint();
      pciCore = new VfioPciCoreDevice(this.kcore, {
        ids, bar0Size: modelBar0Size[cfg.model] ?? 4096, bar0Address: BAR0_BASE + index * 0x10000,
        ...modelIrqs[cfg.model],
        engine: modelEngine[cfg.model],
      });
      const r = this.vfio.register(cfg.bdf, pciCore, new GroupDevice(cfg.bdf, group, caps), dir);
      if (typeof r === "number") {
        pciCore.free();
        this.groups.remove(groupId, cfg.bdf);
        this.pci.remove(cfg.bdf, null);
        throw new Error(`vfio-pci: registering ${cfg.bdf} failed with errno ${-r}`);
      }
      vdev = r;
      vdev.driverData = pciCore;
      bound = "vfio-pci";
    }
    if (bound) this.pci.bindDriver(cfg.bdf, bound);
    const handle = new PciDevice(this, cfg.bdf, cfg.model, group, bound, vdev, pciCore);
    this.present.push(handle);
    return handle;
  }

  /** Hot-unplug (DeviceHandle.unplug): see vfio_main.ts unregister. */
  unplug(d: PciDevice): Promise<void> {
    const i = this.present.indexOf(d);
    if (i >= 0) this.present.splice(i, 1);
    const finish = () => {
      if (d.driver === "pci-stub-dma") d.group.unuseDefaultDomain();
      this.groups.remove(d.group.id, d.bdf);
      this.pci.remove(d.bdf, d.driver);
      d.pciCore?.free();
      this.leaving.delete(d.bdf);
    };
    if (!d.vdev) {
      finish();
      return Promise.resolve();
    }
    this.leaving.add(d.bdf);
    return new Promise((resolve) => this.vfio.unregister(d.vdev!, () => { finish(); resolve(); }));
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
    // Device engines' workers stop with the kernel (DESIGN.md "Threads and hosts").
    for (const d of this.present) d.pciCore?.stopEngine();
  }
}

/** Boots a kernel (API.md §1). */
export async function createKernel(config: KernelConfig = {}): Promise<Kernel> {
  const memoryBytes = config.memoryBytes ?? DEFAULT_MEMORY_BYTES;
  if (!Number.isInteger(memoryBytes) || memoryBytes % WASM_PAGE !== 0 || memoryBytes <= 0 || memoryBytes > MAX_MEMORY_BYTES) {
    throw new RangeError(`memoryBytes must be a multiple of 64 KiB up to 4 GiB (got ${memoryBytes})`);
  }
  const kcore = await KernelCore.boot(memoryBytes, config.counters === true);
  const kernel = new EmulatedKernel(kcore, config);
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
