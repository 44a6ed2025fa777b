// The VFIO core (drivers/vfio/vfio_main.c): vfio_device allocation and registration (index
// IDA, the vfio-dev character region, sysfs), the registration reference that every open file
// holds and unregister waits for, device sets and open_count, vfio_df_open/close, and the
// device file's operations with the access gate (SPEC.md §1.2, §1.3, §1.8, §3.2, §6).
//
// Lock/plane ownership: everything here runs on the kernel's thread (the kernel's dev_set
// mutex and group mutex are implicit). The one word shared with other threads is each file's
// gate word (assembly/gate.ts): written here with gate_grant (BIND) and by KernelCore.fput
// (gate_close), read lock-free by gate_check at the top of every gated operation.

import { errno } from "../uapi/errno.js";
import { getField } from "../uapi/struct.js";
import type { CoreConstants } from "../wasm/core.js";
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_FEATURE,
} from "../uapi/ioctl.js";
import { S_IFCHR, makedev } from "../uapi/posix.js";
import {
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  VFIO_DEVICE_FEATURE_MIGRATION, VFIO_DEVICE_FEATURE_PROBE, VFIO_DEVICE_FEATURE_SET,
  vfio_device_feature,
} from "../uapi/vfio.js";
import type { File, FileMapping, FileOperations, MmapRequest } from "../kernel/file.js";
import { vfioCopyIn } from "../kernel/ioctl.js";
import type { KernelCore } from "../kernel/kernel.js";
import type { Process } from "../kernel/process.js";
import type { GroupDevice } from "../iommu/iommu_group.js";
import { iommufdDeviceBind, iommufdDeviceUnbind, type IommufdDevice } from "../iommufd/device.js";
import type { Iommufd, IommufdCtx } from "../iommufd/main.js";
import { vfioDeviceFopsCdevOpen, vfioDfIoctlAttachPt, vfioDfIoctlBindIommufd, vfioDfIoctlDetachPt, vfioDfUnbindIommufd } from "./device_cdev.js";
import { VfioGroups, vfioDfGroupClose, type VfioGroup } from "./group.js";
import { containerFops, containerFromFile, vfioContainerOpen, VFIO_CONTAINER_RDEV, type VfioContainer } from "./container.js";
import { Ida } from "./ida.js";
import type { Type1Params } from "./vfio_iommu_type1.js";

/** The "vfio-dev" character region: a dynamic major (the kernel's documented example is 511). */
export const VFIO_DEV_MAJOR = 511;
/** MINORMASK: 2^20 minors, indexes 0..2^20-1. */
export const VFIO_DEV_MINORS = 1 << 20;

/**
 * vfio_check_feature: the ops a feature supports (GET/SET) and the payload it needs. 0 for a
 * PROBE that passes (nothing done), 1 when the caller goes on, else -EINVAL.
 */
export function vfioCheckFeature(flags: number, argsz: number, supportedOps: number, minsz: number): number {
  if ((flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)) & ~supportedOps) return -errno.EINVAL;
  if (flags & VFIO_DEVICE_FEATURE_PROBE) return 0;
  // Without PROBE one of GET or SET must be asked for.
  if (!(flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET))) return -errno.EINVAL;
  if (argsz < minsz) return -errno.EINVAL;
  return 1;
}

/** What a VFIO bus driver (vfio-pci) supplies: the kernel's struct vfio_device_ops. */
export interface VfioDeviceOps {
  /** The driver's name ("vfio-pci"), for messages. */
  readonly name: string;
  openDevice?(dev: VfioDevice): number;
  closeDevice?(dev: VfioDevice): void;
  ioctl?(dev: VfioDevice, df: VfioDeviceFile, cmd: number, arg: number, proc: Process): number;
  /** pos: the file offset (region index << 40 | offset); returns bytes or -errno. */
  read?(dev: VfioDevice, buf: Uint8Array, pos: number, proc: Process): number;
  write?(dev: VfioDevice, buf: Uint8Array, pos: number, proc: Process): number;
  mmap?(dev: VfioDevice, req: MmapRequest): FileMapping | number;
  /** The unplug request (vfio-pci signals the REQ eventfd); count is 0, 1, 2, ... */
  request?(dev: VfioDevice, count: number): void;
  /**
   * vfio_device_pm_runtime_get before every ioctl of a granted file: the device resumes from
   * runtime suspend (vfio-pci: a low-power entry with a wake-up eventfd ends, signalling it).
   */
  runtimeResume?(dev: VfioDevice): void;
  /** VFIO_DEVICE_FEATURE for indexes the core does not handle. */
  deviceFeature?(dev: VfioDevice, flags: number, dataArg: number, dataLen: number, proc: Process): number;
  /** match_token_uuid: validates a BIND token (null when none was given). */
  matchTokenUuid?(dev: VfioDevice, uuid: Uint8Array | null): number;
  /** The state worker threads read through a granted file, in shared memory. */
  sharedState?(): DeviceSharedState;
}

/** A device's state in shared memory (byte addresses and sizes): its DEV_* line's fields. */
export interface DeviceSharedState {
  config: number; configSize: number; configMask: number; bar0: number; bar0Size: number;
  /** MSI/MSI-X (host addresses; absent without them): trigger words, capabilities, table, PBA. */
  irqCtx?: number; msiCap?: number; msixCap?: number; msixTable?: number; msixPba?: number; msixSize?: number;
  /** The DMA engine's state page (src/devices/ioat.ts), absent when BAR0 is plain memory. */
  engine?: number;
}

/** Where each field of DeviceSharedState goes in the device's line (layout.ts DEV_*); absent fields are 0. */
const DEV_LINE = [
  ["config", "DEV_CONFIG"], ["configSize", "DEV_CONFIG_SIZE"], ["configMask", "DEV_CONFIG_MASK"], ["bar0", "DEV_BAR0"],
  ["bar0Size", "DEV_BAR0_SIZE"], ["irqCtx", "DEV_IRQ_CTX"], ["msiCap", "DEV_MSI_CAP"], ["msixCap", "DEV_MSIX_CAP"],
  ["msixTable", "DEV_MSIX_TABLE"], ["msixPba", "DEV_MSIX_PBA"], ["msixSize", "DEV_MSIX_SIZE"], ["engine", "DEV_ENGINE"],
] as const satisfies readonly (readonly [keyof DeviceSharedState, keyof CoreConstants])[];

/** A vfio_device_set: devices that share a reset domain (one lock, one open_count sum). */
export class VfioDeviceSet {
  readonly devices = new Set<VfioDevice>();
  constructor(readonly key: unknown) {}

  /** vfio_device_set_open_count. */
  openCount(): number {
    let n = 0;
    for (const d of this.devices) n += d.openCount;
    return n;
  }
}

/**
 * struct vfio_device. Control plane only.
 */
export class VfioDevice {
  /** Registration references: 1 while registered, +1 per open file (try-get). */
  registration = 0;
  /** Successful device-file opens (group files may stack; a cdev allows one). */
  openCount = 0;
  /** A cdev file is bound. */
  cdevOpened = false;
  /** The iommufd binding of the physical device while open through iommufd. */
  iommufdDevice: IommufdDevice | null = null;
  iommufdAttached = false;
  /** vdev->pasids: the PASIDs attached through VFIO_DEVICE_ATTACH_IOMMUFD_PT. */
  readonly pasids = new Set<number>();
  devSet!: VfioDeviceSet;
  /** Driver state (the vfio-pci core device). */
  driverData: unknown = null;
  /** Set by unregister: runs when the last registration reference goes. */
  private onUnregistered: (() => void) | null = null;
  unregistering = false;

  constructor(
    readonly vfio: Vfio,
    readonly index: number,
    /** dev_name of the parent (the PCI address). */
    readonly name: string,
    readonly ops: VfioDeviceOps,
    readonly iommuDev: GroupDevice,
    readonly group: VfioGroup,
    readonly sysfsDir: string,
  ) {}

  get nodePath(): string { return `/dev/vfio/devices/vfio${this.index}`; }
  get rdev(): number { return makedev(VFIO_DEV_MAJOR, this.index); }

  /** vfio_device_try_get_registration. */
  tryGetRegistration(): boolean {
    if (this.registration === 0) return false;
    this.registration++;
    return true;
  }

  /** vfio_device_put_registration: the last one completes a pending unregister. */
  putRegistration(): void {
    if (this.registration === 0) throw new Error(`vfio${this.index}: registration reference underflow`);
    if (--this.registration > 0) return;
    const done = this.onUnregistered;
    this.onUnregistered = null;
    done?.();
  }

  /** Called by unregister; runs `done` once every reference is gone (maybe at once). */
  whenUnregistered(done: () => void): void {
    if (this.registration === 0) done();
    else this.onUnregistered = done;
  }

  /**
   * The device's current IOMMU domain handle for DMA: 0 = blocked (nothing attached). Bound
   * to an iommufd (cdev, or a group with an iommufd): its iommufd attachment. Otherwise the
   * domain of the legacy container's backend that its group is attached to, if any.
   */
  get domainHandle(): number {
    if (this.iommufdDevice) return this.iommufdDevice.domainHandle;
    return this.group.containerDomainHandle;
  }
}

/** struct vfio_device_file ("df"): one per open device file. */
export class VfioDeviceFile {
  /** The vfio group for a group-obtained file; null for a cdev file. */
  group: VfioGroup | null = null;
  /** iommufd object id of the bound device (valid while iommufd is set). */
  devid = 0;
  /** The context (cdev: a reference on its file is held from BIND until close). */
  iommufd: IommufdCtx | null = null;
  /** The iommufd file whose reference this df holds (cdev only). */
  iommufdFile: File | null = null;
  /** The file this df backs (for its gate slot). */
  file!: File;

  constructor(readonly device: VfioDevice) {}
}

/** Module parameters and the kernel configuration of the legacy path. */
export interface VfioOptions {
  /** What /dev/vfio/vfio is: the legacy container (default) or an iommufd. */
  readonly vfioContainer?: "legacy" | "iommufd";
  /** type1's dma_entry_limit (default 65535). */
  readonly dmaEntryLimit?: number;
  /** type1's allow_unsafe_interrupts (default false). */
  readonly allowUnsafeInterrupts?: boolean;
}

/** The VFIO core of one kernel. */
export class Vfio {
  private readonly ida = new Ida(VFIO_DEV_MINORS);
  readonly groups: VfioGroups;
  readonly devSets = new Map<unknown, VfioDeviceSet>();
  /** Registered (and unregistering) devices by index. */
  readonly devices = new Map<number, VfioDevice>();
  readonly fops: FileOperations;

  /** The legacy container node's file operations (legacy mode). */
  private readonly containerFops = containerFops();
  readonly type1Params: Type1Params;

  constructor(readonly kcore: KernelCore, readonly iommufd: Iommufd, opts: VfioOptions = {}) {
    const vfio = this;
    this.groups = new VfioGroups(this);
    const limit = opts.dmaEntryLimit ?? 65535;
    if (!Number.isInteger(limit) || limit < 0 || limit > 0xffffffff) throw new RangeError(`dmaEntryLimit must be a u32 (got ${limit})`);
    this.type1Params = { dmaEntryLimit: limit, allowUnsafeInterrupts: opts.allowUnsafeInterrupts ?? false };
    this.fops = {
      kind: "vfio-device",
      ioctl: (file, cmd, arg, proc) => vfio.deviceIoctl(file, cmd, arg, proc),
      read: (file, buf, pos, proc) => vfio.deviceRw(file, buf, pos, proc, false),
      write: (file, buf, pos, proc) => vfio.deviceRw(file, buf, pos, proc, true),
      mmap: (file, req) => vfio.deviceMmap(file, req),
      release: (file) => vfio.deviceRelease(file),
    };
    kcore.vfs.mkdirp("/dev/vfio/devices");
    // /dev/vfio/vfio: the legacy container, or (CONFIG_IOMMUFD_VFIO_CONTAINER) an iommufd
    // whose contexts default to per-mm accounting, as VFIO type1 accounts.
    const mode = opts.vfioContainer ?? "legacy";
    if (mode !== "legacy" && mode !== "iommufd") throw new TypeError(`vfioContainer must be 'legacy' or 'iommufd' (got ${JSON.stringify(mode)})`);
    if (mode === "iommufd") {
      kcore.vfs.addChr("/dev/vfio/vfio", VFIO_CONTAINER_RDEV, 0o666,
        (proc, flags, path) => iommufd.open(proc, flags, path, "mm", VFIO_CONTAINER_RDEV));
    } else {
      kcore.vfs.addChr("/dev/vfio/vfio", VFIO_CONTAINER_RDEV, 0o666,
        (_proc, flags, path) => vfioContainerOpen(this, this.containerFops, this.type1Params, flags, path));
    }
    kcore.vfs.mkdirp("/sys/class/vfio-dev");
    kcore.stats.set("vfioDevices", () => this.devices.size);
  }

  /**
   * The access gate (DESIGN.md "The gate"): ONE atomic load of the file's gate word through
   * the core. Paired with gate_grant in BIND (device_cdev.ts) and gate_close in fput: 0 when
   * the file is bound, -EINVAL while blocked.
   */
  gate(file: File): number {
    return this.kcore.core.x.gate_check(file.gateSlot, file.gateGen);
  }

  /** Grants access to `file`: the store-release that ends every BIND. */
  grant(file: File): void {
    this.kcore.core.x.gate_grant(file.gateSlot, file.gateGen);
  }

  /**
   * Whether the file is granted (the bind path's own check, under the dev_set lock). A file in
   * release has had its gate closed already (KernelCore.fput): what it was is kept on the file.
   */
  granted(file: File): boolean {
    return file.closed ? file.wasGranted : this.gate(file) === 0;
  }

  // ---- allocation and registration ------------------------------------------------------

  /** The index the next registration gets (lowest free). */
  nextIndexHint(): number { return this.ida.peek(); }

  /**
   * vfio_alloc_device + __vfio_register_dev: allocates the index (lowest free), joins the
   * device's vfio group and set, creates /dev/vfio/devices/vfioN (char 511:N) and
   * <sysfsDir>/vfio-dev/vfioN/dev. Returns the device or -errno.
   */
  register(name: string, ops: VfioDeviceOps, iommuDev: GroupDevice, sysfsDir: string, devSetKey?: unknown): VfioDevice | number {
    // The kernel refuses to register a device whose IOMMU does not enforce cache coherency
    // (EINVAL in __vfio_register_dev), so it never gets a cdev. API.md instead promises that
    // such a device is present and that its BIND fails EINVAL (iommufd_device_bind's own
    // check): registration goes ahead here so that the BIND path can be exercised.
    const index = this.ida.alloc();
    if (index < 0) return index;
    const group = this.groups.findOrAlloc(iommuDev.group);
    const dev = new VfioDevice(this, index, name, ops, iommuDev, group, sysfsDir);
    const key = devSetKey ?? dev;
    let set = this.devSets.get(key);
    if (!set) {
      set = new VfioDeviceSet(key);
      this.devSets.set(key, set);
    }
    set.devices.add(dev);
    dev.devSet = set;
    const vfs = this.kcore.vfs;
    vfs.addChr(dev.nodePath, dev.rdev, 0o600, (proc, flags, path) => vfioDeviceFopsCdevOpen(dev, proc, flags, path));
    vfs.addLink(`/dev/char/${VFIO_DEV_MAJOR}:${index}`, `../vfio/devices/vfio${index}`);
    vfs.addAttr(`${sysfsDir}/vfio-dev/vfio${index}/dev`, () => `${VFIO_DEV_MAJOR}:${index}\n`);
    vfs.addLink(`/sys/class/vfio-dev/vfio${index}`, `../../devices${sysfsDir.slice("/sys/devices".length)}/vfio-dev/vfio${index}`);
    dev.registration = 1;
    group.devices.push(dev);
    this.devices.set(index, dev);
    this.publishDevice(dev, iommuDev);
    return dev;
  }

  /**
   * Writes the device's line of the shared device table (layout.ts DEV_*) that workers read
   * after passing a file's gate, and routes the device's domain pointer there.
   */
  private publishDevice(dev: VfioDevice, iommuDev: GroupDevice): void {
    const c = this.kcore.core;
    if (dev.index >= c.consts.DEV_SLOTS) return;
    const line = (c.consts.DEV_BASE + dev.index * c.consts.DEV_STRIDE) >>> 2;
    const st = dev.ops.sharedState?.();
    for (const [field, off] of DEV_LINE) c.u32[line + c.consts[off] / 4] = st?.[field] ?? 0;
    // Paired with the atomic load in dev_dma (assembly/dma.ts). A device that joins a group
    // already attached to a legacy container's domain is attached to it at once, as
    // __iommu_probe_device attaches a new device to group->domain.
    const domainWord = line + c.consts.DEV_DOMAIN / 4;
    iommuDev.publishDomain = (h: number) => { Atomics.store(c.u32, domainWord, h >>> 0); };
    iommuDev.publishDomain(dev.domainHandle);
  }

  /**
   * vfio_unregister_group_dev: the device leaves lookups and its node disappears at once;
   * then the driver's request hook runs (again every 10 s) until the last open file is
   * closed, when the device is released (its index becomes free) and `done` runs.
   */
  unregister(dev: VfioDevice, done: () => void): void {
    if (dev.unregistering) throw new Error(`vfio${dev.index} is already being unregistered`);
    dev.unregistering = true;
    const gi = dev.group.devices.indexOf(dev);
    if (gi >= 0) dev.group.devices.splice(gi, 1);
    const vfs = this.kcore.vfs;
    vfs.remove(dev.nodePath);
    vfs.remove(`/dev/char/${VFIO_DEV_MAJOR}:${dev.index}`);
    vfs.remove(`/sys/class/vfio-dev/vfio${dev.index}`);
    vfs.remove(`${dev.sysfsDir}/vfio-dev`);
    let timer: ReturnType<typeof setInterval> | null = null;
    dev.whenUnregistered(() => {
      if (timer !== null) clearInterval(timer);
      this.release(dev);
      done();
    });
    dev.putRegistration();
    if (dev.registration > 0) {
      let count = 0;
      dev.ops.request?.(dev, count++);
      timer = setInterval(() => {
        if (this.kcore.trace.on) this.kcore.trace.emit("vfio_unregister_wait", { dev: dev.name, index: dev.index, refs: dev.registration });
        dev.ops.request?.(dev, count++);
      }, 10_000);
      (timer as { unref?: () => void }).unref?.();
    }
  }

  /** vfio_container_from_file: the legacy container behind a file, or null. */
  containerFromFile(file: File): VfioContainer | null {
    return containerFromFile(file, this.containerFops);
  }

  /** The device's release: leaves its set and group, gives its index back. */
  private release(dev: VfioDevice): void {
    // Out of its group: its line no longer names a domain (nothing frees one here, so no
    // grace period; the domain's own free waits one out).
    dev.iommuDev.publishDomain?.(0);
    dev.devSet.devices.delete(dev);
    if (dev.devSet.devices.size === 0) this.devSets.delete(dev.devSet.key);
    this.groups.removeDevice(dev.group, dev);
    this.devices.delete(dev.index);
    this.ida.free(dev.index);
  }

  // ---- open / close (vfio_df_open, vfio_df_close) ---------------------------------------

  /** vfio_df_open: open_count rules and the first open. */
  dfOpen(df: VfioDeviceFile): number {
    const dev = df.device;
    // Only the group path may open a device more than once.
    if (dev.openCount !== 0 && !df.group) return -errno.EINVAL;
    dev.openCount++;
    if (dev.openCount === 1) {
      const rc = this.dfDeviceFirstOpen(df);
      if (rc < 0) {
        dev.openCount--;
        return rc;
      }
    }
    return 0;
  }

  /** vfio_df_close. */
  dfClose(df: VfioDeviceFile): void {
    const dev = df.device;
    if (dev.openCount === 0) throw new Error(`vfio${dev.index}: close without open`);
    if (dev.openCount === 1) this.dfDeviceLastClose(df);
    dev.openCount--;
  }

  /**
   * vfio_df_device_first_open: bind the DMA backend — the iommufd (cdev, or a group with an
   * iommufd), or the group's legacy container (vfio_device_group_use_iommu: EINVAL without a
   * container whose IOMMU is set) — then the driver's open_device; unwound on failure.
   */
  private dfDeviceFirstOpen(df: VfioDeviceFile): number {
    const dev = df.device;
    let rc: number;
    if (df.iommufd) {
      rc = this.physicalBind(dev, df.iommufd);
      if (rc < 0) return rc;
      df.devid = dev.iommufdDevice!.id;
    } else if (df.group) {
      rc = df.group.useContainer();
      if (rc < 0) return rc;
    } else {
      return -errno.EINVAL;
    }
    if (dev.ops.openDevice) {
      rc = dev.ops.openDevice(dev);
      if (rc < 0) {
        if (df.iommufd) this.physicalUnbind(dev);
        else df.group!.unuseContainer(this);
        return rc;
      }
    }
    return 0;
  }

  /** vfio_df_device_last_close: close_device, then unbind the backend. */
  private dfDeviceLastClose(df: VfioDeviceFile): void {
    const dev = df.device;
    dev.ops.closeDevice?.(dev);
    if (df.iommufd) this.physicalUnbind(dev);
    else if (df.group) df.group.unuseContainer(this);
  }

  // ---- the physical iommufd ops (drivers/vfio/iommufd.c) ----------------------------------

  /** vfio_iommufd_physical_bind. */
  physicalBind(dev: VfioDevice, ctx: IommufdCtx): number {
    const idev = iommufdDeviceBind(ctx, dev.iommuDev);
    if (typeof idev === "number") return idev;
    dev.iommufdDevice = idev;
    return 0;
  }

  /** vfio_iommufd_physical_unbind: detaches first if attached. */
  physicalUnbind(dev: VfioDevice): void {
    const idev = dev.iommufdDevice;
    if (!idev) return;
    for (const pasid of [...dev.pasids].sort((a, b) => a - b)) {
      idev.detach(pasid);
      dev.pasids.delete(pasid);
    }
    if (dev.iommufdAttached) {
      idev.detach();
      dev.iommufdAttached = false;
    }
    iommufdDeviceUnbind(idev);
    dev.iommufdDevice = null;
  }

  /** vfio_iommufd_physical_attach_ioas: attach, or replace when already attached. */
  physicalAttachIoas(dev: VfioDevice, ptId: number): number {
    const idev = dev.iommufdDevice;
    if (!idev) return -errno.EINVAL;
    const rc = dev.iommufdAttached ? idev.replace(ptId) : idev.attach(ptId);
    if (rc < 0) return rc;
    dev.iommufdAttached = true;
    return rc;
  }

  /** vfio_iommufd_physical_pasid_attach_ioas: attach the PASID, or replace when attached. */
  physicalPasidAttachIoas(dev: VfioDevice, pasid: number, ptId: number): number {
    const idev = dev.iommufdDevice;
    if (!idev) return -errno.EINVAL;
    if (dev.pasids.has(pasid)) return idev.replace(ptId, pasid);
    const rc = idev.attach(ptId, pasid);
    if (rc >= 0) dev.pasids.add(pasid);
    return rc;
  }

  /** vfio_iommufd_physical_pasid_detach_ioas: a no-op for a PASID not attached. */
  physicalPasidDetachIoas(dev: VfioDevice, pasid: number): void {
    const idev = dev.iommufdDevice;
    if (!idev || !dev.pasids.has(pasid)) return;
    idev.detach(pasid);
    dev.pasids.delete(pasid);
  }

  /** vfio_iommufd_physical_detach_ioas: a no-op when not attached. */
  physicalDetachIoas(dev: VfioDevice): void {
    const idev = dev.iommufdDevice;
    if (!idev || !dev.iommufdAttached) return;
    idev.detach();
    dev.iommufdAttached = false;
  }

  // ---- the device file's operations (vfio_device_fops) ----------------------------------

  private deviceIoctl(file: File, cmd: number, arg: number, proc: Process): number {
    const df = file.priv as VfioDeviceFile;
    if (cmd === VFIO_DEVICE_BIND_IOMMUFD) return vfioDfIoctlBindIommufd(this, df, arg, proc);
    const g = this.gate(file);
    if (g !== 0) return g;
    const dev = df.device;
    dev.ops.runtimeResume?.(dev);
    if (!df.group) {
      if (cmd === VFIO_DEVICE_ATTACH_IOMMUFD_PT) return vfioDfIoctlAttachPt(this, df, arg, proc);
      if (cmd === VFIO_DEVICE_DETACH_IOMMUFD_PT) return vfioDfIoctlDetachPt(this, df, arg, proc);
    }
    if (cmd === VFIO_DEVICE_FEATURE) return this.deviceFeature(dev, arg, proc);
    if (!dev.ops.ioctl) return -errno.EINVAL;
    return dev.ops.ioctl(dev, df, cmd, arg, proc);
  }

  /** vfio_ioctl_device_feature: the core's checks, then the core features, then the driver. */
  private deviceFeature(dev: VfioDevice, arg: number, proc: Process): number {
    const c = vfioCopyIn(proc, arg, vfio_device_feature);
    if (typeof c === "number") return c;
    const flags = getField(c.view, vfio_device_feature.fields.flags);
    const valid = VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE;
    if (flags & ~valid) return -errno.EINVAL;
    if (!(flags & VFIO_DEVICE_FEATURE_PROBE) && (flags & VFIO_DEVICE_FEATURE_SET) && (flags & VFIO_DEVICE_FEATURE_GET)) return -errno.EINVAL;
    switch (flags & VFIO_DEVICE_FEATURE_MASK) {
      // No emulated device migrates or logs DMA: the core answers ENOTTY without mig/log ops.
      case VFIO_DEVICE_FEATURE_MIGRATION:
      case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
      case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE:
      case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
      case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
      case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
        return -errno.ENOTTY;
      default:
        if (!dev.ops.deviceFeature) return -errno.EINVAL;
        return dev.ops.deviceFeature(dev, flags, arg + vfio_device_feature.size, c.argsz - vfio_device_feature.size, proc);
    }
  }

  private deviceRw(file: File, buf: Uint8Array, pos: number | null, proc: Process, write: boolean): number {
    const g = this.gate(file);
    if (g !== 0) return g;
    const df = file.priv as VfioDeviceFile;
    const dev = df.device;
    const op = write ? dev.ops.write : dev.ops.read;
    if (!op) return -errno.EINVAL;
    const at = pos ?? file.pos;
    const rc = op.call(dev.ops, dev, buf, at, proc);
    if (pos === null && rc > 0) file.pos += rc;
    return rc;
  }

  private deviceMmap(file: File, req: MmapRequest): FileMapping | number {
    const g = this.gate(file);
    if (g !== 0) return g;
    const dev = (file.priv as VfioDeviceFile).device;
    if (!dev.ops.mmap) return -errno.EINVAL;
    return dev.ops.mmap(dev, req);
  }

  /** vfio_device_fops_release. */
  private deviceRelease(file: File): void {
    const df = file.priv as VfioDeviceFile;
    if (df.group) vfioDfGroupClose(this, df);
    else vfioDfUnbindIommufd(this, df);
    df.device.putRegistration();
  }

  /** A new device file for `dev` (vfio_allocate_device_file + the file itself). */
  newDeviceFile(dev: VfioDevice, flags: number, path: string): File | number {
    const df = new VfioDeviceFile(dev);
    const file = this.kcore.newFile(this.fops, flags, df, path, { mode: S_IFCHR | 0o600, rdev: dev.rdev, size: 0 });
    if (typeof file === "number") return file;
    df.file = file;
    // Which device a worker reaches through this file's gate slot; written before any grant.
    const c = this.kcore.core;
    c.u32[(c.consts.FILE_DEV_BASE >>> 2) + file.gateSlot] = dev.index + 1;
    return file;
  }
}
