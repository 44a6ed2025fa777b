// The typed layer over a VFIO device cdev (API.md §2): open /dev/vfio/devices/vfioN, bind it
// to an iommufd, attach it to an IOAS or HWPT, detach, close; VfioError says why on failure.

import { check } from "../errors.js";
import { errno } from "../uapi/errno.js";
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_REGION_INFO,
} from "../uapi/ioctl.js";
import { O_RDWR } from "../uapi/posix.js";
import {
  VFIO_DEVICE_ATTACH_PASID, VFIO_DEVICE_DETACH_PASID, vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd, vfio_device_detach_iommufd_pt, vfio_device_info, vfio_region_info,
} from "../uapi/vfio.js";
import type { Process } from "../kernel/process.js";
import type { IommuFd } from "./iommufd.js";

/** What VfioDeviceFile.open accepts for the device: a handle (its index) or a path. */
export interface VfioDeviceRef { readonly index: number; readonly bdf?: string }

export interface VfioDeviceInfo { flags: number; numRegions: number; numIrqs: number }
export interface VfioRegionInfo { index: number; flags: number; size: bigint; offset: bigint }

const NAMES: Record<number, string> = {
  [VFIO_DEVICE_BIND_IOMMUFD]: "VFIO_DEVICE_BIND_IOMMUFD",
  [VFIO_DEVICE_ATTACH_IOMMUFD_PT]: "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
  [VFIO_DEVICE_DETACH_IOMMUFD_PT]: "VFIO_DEVICE_DETACH_IOMMUFD_PT",
  [VFIO_DEVICE_GET_INFO]: "VFIO_DEVICE_GET_INFO",
  [VFIO_DEVICE_GET_REGION_INFO]: "VFIO_DEVICE_GET_REGION_INFO",
};

/** A zeroed VFIO "argsz" argument of `size` bytes, argsz set to `size`, and a view of it. */
export function argszBuf(size: number): { b: Uint8Array; v: DataView } {
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  v.setUint32(0, size, true);
  return { b, v };
}

export class VfioDeviceFile {
  private closed = false;
  /** The iommufd DEVICE object id once bound. */
  devid: number | null = null;
  /** The page table the device is attached to (an HWPT id), or null. */
  ptId: number | null = null;

  /** Obtained through a group (VFIO_GROUP_GET_DEVICE_FD): usable at once, never bound. */
  groupObtained = false;

  private constructor(readonly proc: Process, readonly fd: number, readonly path: string) {}

  /**
   * Wraps a device fd that VFIO_GROUP_GET_DEVICE_FD returned (VfioGroup.getDeviceFd): it is
   * granted already; BIND on it fails EINVAL and ATTACH/DETACH reach the driver (ENOTTY).
   */
  static fromGroupFd(proc: Process, fd: number, name: string): VfioDeviceFile {
    const f = new VfioDeviceFile(proc, fd, `${name} (fd ${fd}, from its group)`);
    f.groupObtained = true;
    return f;
  }

  /** Opens a device's cdev, by handle (its vfio index) or by path. The file starts blocked. */
  static open(proc: Process, device: VfioDeviceRef | string): VfioDeviceFile {
    let path: string;
    if (typeof device === "string") path = device;
    else {
      if (!device || !Number.isInteger(device.index)) throw new TypeError("VfioDeviceFile.open: a device handle or a path");
      if (device.index < 0) {
        throw new TypeError(`VfioDeviceFile.open: ${device.bdf ?? "the device"} is not bound to vfio-pci: it has no /dev/vfio/devices node`);
      }
      path = `/dev/vfio/devices/vfio${device.index}`;
    }
    const fd = proc.open(path, O_RDWR);
    check(fd, "open", () => fd === -errno.ENOENT
      ? `${path} does not exist (no such device, or it was unplugged)`
      : fd === -errno.ENODEV ? `${path}: the device is being unregistered` : `cannot open ${path}`);
    return new VfioDeviceFile(proc, fd, path);
  }

  private ioctl(cmd: number, arg: Uint8Array, why: (rc: number) => string): number {
    if (this.closed) throw new Error(`${this.path}: the device file is closed`);
    const rc = this.proc.ioctlBuf(this.fd, cmd, arg);
    return check(rc, "ioctl", () => why(rc), NAMES[cmd]);
  }

  private state(): string {
    if (this.groupObtained) return "obtained through its group (no BIND, ATTACH or DETACH on this path)";
    return this.devid === null ? "blocked (not bound)" : this.ptId === null ? `bound as device ${this.devid}, not attached` : `attached to ${this.ptId}`;
  }

  /** VFIO_DEVICE_BIND_IOMMUFD: returns the devid (the iommufd DEVICE object id). */
  bind(iommufd: IommuFd | number): number {
    const ifd = typeof iommufd === "number" ? iommufd : iommufd.fd;
    const { b, v } = argszBuf(vfio_device_bind_iommufd.size);
    v.setInt32(vfio_device_bind_iommufd.fields.iommufd.off, ifd, true);
    this.ioctl(VFIO_DEVICE_BIND_IOMMUFD, b, (rc) => {
      switch (-rc) {
        case errno.EINVAL: return this.groupObtained
          ? `${this.path} was obtained through its VFIO group: group device files are never bound to an iommufd`
          : this.devid !== null
          ? `${this.path} is already bound (device ${this.devid}); a device file binds once`
          : `${this.path} cannot be bound: the device is already open through another file, or the iommufd ${ifd} is negative, or its IOMMU does not enforce cache coherency`;
        case errno.EBADF: return `fd ${ifd} is not open`;
        case errno.EBADFD: return `fd ${ifd} is not an iommufd (/dev/iommu)`;
        case errno.EBUSY: return `the device's VFIO group is open (/dev/vfio/<group>), which blocks cdev binds`;
        case errno.EPERM: return `DMA ownership conflict: another iommufd or a kernel driver uses the device's IOMMU group, or interrupts are not isolated`;
        case errno.ENODEV: return `the device has no IOMMU group`;
        default: return `binding ${this.path} to iommufd ${ifd} failed`;
      }
    });
    this.devid = v.getUint32(vfio_device_bind_iommufd.fields.out_devid.off, true);
    return this.devid;
  }

  /** VFIO_DEVICE_ATTACH_IOMMUFD_PT: returns the resulting pt id (an auto HWPT for an IOAS). */
  attach(ptId: number | { id: number }): number {
    const id = typeof ptId === "number" ? ptId : ptId.id;
    const { b, v } = argszBuf(vfio_device_attach_iommufd_pt.minSize);
    v.setUint32(vfio_device_attach_iommufd_pt.fields.pt_id.off, id, true);
    this.ioctl(VFIO_DEVICE_ATTACH_IOMMUFD_PT, b, (rc) => {
      switch (-rc) {
        case errno.EINVAL: return this.devid === null
          ? `${this.path} is ${this.state()}: BIND it first`
          : `object ${id} is not an IOAS or HWPT, or another device of the IOMMU group is attached to a different page table`;
        case errno.ENOENT: return `no object ${id} in the bound iommufd`;
        case errno.EADDRINUSE: return `the device's reserved regions collide with mappings or allowed ranges of ${id}`;
        default: return `attaching ${this.path} (${this.state()}) to ${id} failed`;
      }
    });
    this.ptId = v.getUint32(vfio_device_attach_iommufd_pt.fields.pt_id.off, true);
    return this.ptId;
  }

  /** VFIO_DEVICE_DETACH_IOMMUFD_PT (a no-op when not attached). */
  detach(): void {
    this.ioctl(VFIO_DEVICE_DETACH_IOMMUFD_PT, argszBuf(vfio_device_detach_iommufd_pt.minSize).b, () => `${this.path} is ${this.state()}: BIND it first`);
    this.ptId = null;
  }

  /**
   * VFIO_DEVICE_ATTACH_IOMMUFD_PT with VFIO_DEVICE_ATTACH_PASID: attaches (or, when attached,
   * replaces) PASID `pasid` to a HWPT made with IOMMU_HWPT_ALLOC_PASID; returns the pt id.
   */
  attachPasid(pasid: number, ptId: number | { id: number }): number {
    const id = typeof ptId === "number" ? ptId : ptId.id;
    const A = vfio_device_attach_iommufd_pt.fields;
    const { b, v } = argszBuf(vfio_device_attach_iommufd_pt.size);
    v.setUint32(A.flags.off, VFIO_DEVICE_ATTACH_PASID, true);
    v.setUint32(A.pt_id.off, id, true);
    v.setUint32(A.pasid.off, pasid, true);
    this.ioctl(VFIO_DEVICE_ATTACH_IOMMUFD_PT, b, (rc) => {
      switch (-rc) {
        case errno.EINVAL: return this.devid === null
          ? `${this.path} is ${this.state()}: BIND it first`
          : `object ${id} is not a PASID-compatible HWPT (IOMMU_HWPT_ALLOC_PASID; an IOAS never is), or the device's RID is attached to a HWPT that is not`;
        case errno.EBUSY: return `PASID ${pasid} is attached through another device of the IOMMU group`;
        case errno.ENOENT: return `no object ${id} in the bound iommufd`;
        default: return `attaching PASID ${pasid} of ${this.path} to ${id} failed`;
      }
    });
    return v.getUint32(A.pt_id.off, true);
  }

  /** VFIO_DEVICE_DETACH_IOMMUFD_PT with VFIO_DEVICE_DETACH_PASID (a no-op when not attached). */
  detachPasid(pasid: number): void {
    const { b, v } = argszBuf(vfio_device_detach_iommufd_pt.size);
    v.setUint32(vfio_device_detach_iommufd_pt.fields.flags.off, VFIO_DEVICE_DETACH_PASID, true);
    v.setUint32(vfio_device_detach_iommufd_pt.fields.pasid.off, pasid, true);
    this.ioctl(VFIO_DEVICE_DETACH_IOMMUFD_PT, b, () => `${this.path} is ${this.state()}: BIND it first`);
  }

  /** VFIO_DEVICE_GET_INFO. */
  info(): VfioDeviceInfo {
    const { b, v } = argszBuf(vfio_device_info.size);
    this.ioctl(VFIO_DEVICE_GET_INFO, b, () => `${this.path} is ${this.state()}`);
    const f = vfio_device_info.fields;
    return { flags: v.getUint32(f.flags.off, true), numRegions: v.getUint32(f.num_regions.off, true), numIrqs: v.getUint32(f.num_irqs.off, true) };
  }

  /** VFIO_DEVICE_GET_REGION_INFO. */
  regionInfo(index: number): VfioRegionInfo {
    const { b, v } = argszBuf(vfio_region_info.size);
    const f = vfio_region_info.fields;
    v.setUint32(f.index.off, index, true);
    this.ioctl(VFIO_DEVICE_GET_REGION_INFO, b, (rc) => rc === -errno.EINVAL && this.devid !== null
      ? `region ${index} does not exist on this device` : `${this.path} is ${this.state()}`);
    return { index, flags: v.getUint32(f.flags.off, true), size: v.getBigUint64(f.size.off, true), offset: v.getBigUint64(f.offset.off, true) };
  }

  /** Closes the file: an attached device is detached and unbound, its DMA claim released. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    check(this.proc.close(this.fd), "close", () => `closing ${this.path}`);
  }
}
