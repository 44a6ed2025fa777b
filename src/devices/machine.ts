// The emulated machine: the PCI bus, the IOMMU groups, driver probe (vfio-pci or a kernel
// driver on the DMA API), BAR placement, and the DeviceHandle each present function gets.
// src/index.ts gives it its public face (createKernel).

import { deviceDma, dmaPort, type DmaPort, type FaultRecord } from "../iommu/dma.js";
import { GroupDevice, iommuCaps, IommuGroups, type IommuGroup } from "../iommu/iommu_group.js";
import { Iommufd } from "../iommufd/main.js";
import { modelBar0Size, modelEngine, modelIds, modelIrqs } from "./models.js";
import { onRootBus, PciBus } from "./pci.js";
import { VfioPciCoreDevice } from "../vfio/pci_core.js";
import { Vfio, type VfioDevice } from "../vfio/vfio_main.js";
import type { KernelCore } from "../kernel/kernel.js";
import type { Process, ProcessOptions } from "../kernel/process.js";
import type { TraceSink } from "../kernel/trace.js";
import type { DeviceConfig, DeviceHandle, DmaFault, Kernel, KernelConfig, WorkerInit } from "../index.js";

/** The driver name sysfs shows for a device's `driver` setting. */
const driverName = (d: DeviceConfig["driver"]): string | null =>
  d === "none" ? null : d === "kernel" ? "pci-stub-dma" : "vfio-pci";

/** Validates a u64 IOVA; a number stays one (deviceDma splits it without a BigInt). */
const toIova = (iova: number | bigint): number | bigint => {
  if (typeof iova === "bigint") {
    if (iova < 0n || iova >= 1n << 64n) throw new RangeError(`iova ${iova} is not a u64`);
    return iova;
  }
  if (!Number.isSafeInteger(iova) || iova < 0) throw new TypeError(`iova must be a non-negative integer (got ${iova})`);
  return iova;
};

/** A present PCI function (API.md DeviceHandle). */
class PciDevice implements DeviceHandle {
  private readonly faultLog: FaultRecord[] = [];
  private unplugging: Promise<void> | null = null;

  constructor(
    private readonly kernel: Machine,
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
    // As a worker's DMA (the same function): through the domain published in the device's
    // line of the shared table by every attach, detach and replace, iommufd or type1. A
    // function without a line (no vfio-pci, or an index past DEV_SLOTS) is blocked.
    const i = this.vdev ? this.vdev.index : -1;
    return deviceDma(this.kernel.dmaPort, i < this.kernel.devSlots ? i : -1, at, buf, write, this.faultLog);
  }

  dmaRead(iova: number | bigint, out: Uint8Array): number { return this.dma(iova, out, false); }
  dmaWrite(iova: number | bigint, data: Uint8Array): number { return this.dma(iova, data, true); }

  faults(): DmaFault[] {
    return this.faultLog.map((f) => ({ iova: f.iova, write: f.write, reason: f.reason }));
  }
}

/** BAR0 addresses: one 64 KiB slot per vfio index below the x86 MSI window. */
const BAR0_BASE = 0xfd000000;

export class Machine implements Kernel {
  private readonly pci: PciBus;
  private readonly groups: IommuGroups;
  readonly iommufd: Iommufd;
  readonly vfio: Vfio;
  private readonly present: PciDevice[] = [];
  /** Devices unplugged whose release is pending (their last file is still open). */
  private readonly leaving = new Set<string>();
  private closed = false;
  /** The kernel thread's device-DMA port: worker slot 0's bounce buffer. */
  readonly dmaPort: DmaPort;
  readonly devSlots: number;

  constructor(readonly kcore: KernelCore, readonly config: KernelConfig) {
    this.dmaPort = dmaPort(kcore.core, 0);
    this.devSlots = kcore.core.consts.DEV_SLOTS;
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
    const bar0Size = cfg.bar0Size ?? modelBar0Size[cfg.model] ?? 4096;
    // Naturally aligned inside the device's 64 KiB BAR0 slot.
    if (typeof bar0Size !== "number" || !Number.isInteger(bar0Size) || bar0Size < 4096 || bar0Size > 0x10000 || (bar0Size & (bar0Size - 1)) !== 0) {
      throw new RangeError(`bad bar0Size ${String(cfg.bar0Size)} (a power of two from 4096 to 65536)`);
    }
    const dir = this.pci.add(cfg.bdf, ids, null);
    const group = this.groups.add(groupId, { bdf: cfg.bdf, sysfsDir: dir });
    const fn = this.pci.function(cfg.bdf)!;
    fn.iommuGroup = groupId;
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
        ids, bar0Size, bar0Address: BAR0_BASE + index * 0x10000,
        ...modelIrqs[cfg.model],
        engine: modelEngine[cfg.model],
      });
      // vfio_pci_core_register_device: a root-bus function is a reset domain of its own; one
      // behind a root port (no slot reset) shares a dev_set with every function of its bus.
      const devSetKey = onRootBus(fn) ? undefined : `pci-bus ${fn.segment}:${fn.bus}`;
      const r = this.vfio.register(cfg.bdf, pciCore, new GroupDevice(cfg.bdf, group, caps), dir, devSetKey);
      if (typeof r === "number") {
        pciCore.free();
        this.groups.remove(groupId, cfg.bdf);
        this.pci.remove(cfg.bdf, null);
        throw new Error(`vfio-pci: registering ${cfg.bdf} failed with errno ${-r}`);
      }
      vdev = r;
      vdev.driverData = pciCore;
      pciCore.resetBus = () => this.pci.resetBusFunctions(cfg.bdf);
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
