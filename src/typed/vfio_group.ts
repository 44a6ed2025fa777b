// The typed layer over the legacy VFIO path (API.md §2): VfioContainer (/dev/vfio/vfio, or
// an iommufd used as a container) and VfioGroup (/dev/vfio/<group>). Synchronous, throwing
// VfioError with the object model's words on failure.

import { check } from "../errors.js";
import { errno } from "../uapi/errno.js";
import {
  VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
} from "../uapi/ioctl.js";
import { O_RDWR } from "../uapi/posix.js";
import {
  VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, vfio_group_status, vfio_info_cap_header, vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap, vfio_iommu_type1_info, vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration, vfio_iommu_type1_info_dma_avail, vfio_iova_range,
} from "../uapi/vfio.js";
import type { Process } from "../kernel/process.js";
import type { IommuFd } from "./iommufd.js";
import { argszBuf, VfioDeviceFile } from "./vfio.js";

const NAMES: Record<number, string> = {
  [VFIO_GET_API_VERSION]: "VFIO_GET_API_VERSION",
  [VFIO_CHECK_EXTENSION]: "VFIO_CHECK_EXTENSION",
  [VFIO_SET_IOMMU]: "VFIO_SET_IOMMU",
  [VFIO_IOMMU_GET_INFO]: "VFIO_IOMMU_GET_INFO",
  [VFIO_IOMMU_MAP_DMA]: "VFIO_IOMMU_MAP_DMA",
  [VFIO_IOMMU_UNMAP_DMA]: "VFIO_IOMMU_UNMAP_DMA",
  [VFIO_GROUP_GET_STATUS]: "VFIO_GROUP_GET_STATUS",
  [VFIO_GROUP_SET_CONTAINER]: "VFIO_GROUP_SET_CONTAINER",
  [VFIO_GROUP_UNSET_CONTAINER]: "VFIO_GROUP_UNSET_CONTAINER",
  [VFIO_GROUP_GET_DEVICE_FD]: "VFIO_GROUP_GET_DEVICE_FD",
};

const u64 = (x: number | bigint, what: string): bigint => {
  const v = BigInt(x);
  if (v < 0n || v >= 1n << 64n) throw new RangeError(`${what} ${x} is not a u64`);
  return v;
};

export interface DmaMapOptions {
  vaddr: number | bigint;
  iova: number | bigint;
  size: number | bigint;
  /** Device reads (default true). */
  readable?: boolean;
  /** Device writes (default true). */
  writeable?: boolean;
}

export interface Type1Info {
  flags: number;
  iovaPgsizes: bigint;
  /** The valid IOVA ranges (inclusive), from the IOVA_RANGE capability. */
  iovaRanges: { start: bigint; last: bigint }[];
  /** DMA_AVAIL: mappings that may still be created (null if not reported). */
  dmaAvail: number | null;
  migration: { pgsizeBitmap: bigint; maxDirtyBitmapSize: bigint } | null;
}

/** /dev/vfio/vfio (or an iommufd used as a container: VfioContainer.fromIommufd). */
export class VfioContainer {
  private closed = false;

  private constructor(readonly proc: Process, readonly fd: number, readonly path: string, private readonly owned: boolean) {}

  /** Opens /dev/vfio/vfio. */
  static open(proc: Process, path = "/dev/vfio/vfio"): VfioContainer {
    const fd = proc.open(path, O_RDWR);
    check(fd, "open", () => `cannot open ${path}`);
    return new VfioContainer(proc, fd, path, true);
  }

  /** Uses an open iommufd as a container (its VFIO compat layer); close() leaves it open. */
  static fromIommufd(iommufd: IommuFd): VfioContainer {
    return new VfioContainer(iommufd.proc, iommufd.fd, `iommufd fd ${iommufd.fd}`, false);
  }

  private ioctl(cmd: number, arg: number | Uint8Array, why: (rc: number) => string): number {
    if (this.closed) throw new Error(`${this.path}: the container is closed`);
    const rc = typeof arg === "number" ? this.proc.ioctl(this.fd, cmd, arg) : this.proc.ioctlBuf(this.fd, cmd, arg);
    return check(rc, "ioctl", () => why(rc), NAMES[cmd]);
  }

  apiVersion(): number {
    return this.ioctl(VFIO_GET_API_VERSION, 0, () => `${this.path}: no API version`);
  }

  /** VFIO_CHECK_EXTENSION: 1 when supported, 0 when not. */
  checkExtension(ext: number): number {
    return this.ioctl(VFIO_CHECK_EXTENSION, ext, () => `${this.path}: extension ${ext}`);
  }

  /** VFIO_SET_IOMMU (TYPE1 = 1, TYPE1v2 = 3). */
  setIommu(type: number): void {
    this.ioctl(VFIO_SET_IOMMU, type, (rc) => -rc === errno.EINVAL
      ? `${this.path}: SET_IOMMU needs a group in the container and no IOMMU set yet (type ${type})`
      : -rc === errno.ENODEV ? `${this.path}: no IOMMU backend supports type ${type}` : `${this.path}: SET_IOMMU ${type} failed`);
  }

  /** VFIO_IOMMU_MAP_DMA. */
  mapDma(o: DmaMapOptions): void {
    const L = vfio_iommu_type1_dma_map;
    const { b, v } = argszBuf(L.size);
    v.setUint32(L.fields.flags.off, (o.readable ?? true ? VFIO_DMA_MAP_FLAG_READ : 0) | (o.writeable ?? true ? VFIO_DMA_MAP_FLAG_WRITE : 0), true);
    v.setBigUint64(L.fields.vaddr.off, u64(o.vaddr, "vaddr"), true);
    v.setBigUint64(L.fields.iova.off, u64(o.iova, "iova"), true);
    v.setBigUint64(L.fields.size.off, u64(o.size, "size"), true);
    this.ioctl(VFIO_IOMMU_MAP_DMA, b, (rc) => {
      const r = `[0x${BigInt(o.iova).toString(16)}, +0x${BigInt(o.size).toString(16)})`;
      switch (-rc) {
        case errno.EEXIST: return `${r} overlaps an existing mapping`;
        case errno.ENOSPC: return `the container's mapping limit (dma_entry_limit) is reached`;
        case errno.ENOMEM: return `pinning ${r} exceeds RLIMIT_MEMLOCK`;
        case errno.EFAULT: return `the user memory behind ${r} is not mapped`;
        case errno.EOVERFLOW: return `${r} wraps around the 64-bit space`;
        case errno.EINVAL: return `${r}: not page aligned, outside the valid IOVA ranges, or no IOMMU set`;
        default: return `mapping ${r} failed`;
      }
    });
  }

  /** VFIO_IOMMU_UNMAP_DMA of [iova, iova+size): the bytes unmapped. */
  unmapDma(iova: number | bigint, size: number | bigint, flags = 0): bigint {
    const L = vfio_iommu_type1_dma_unmap;
    const { b, v } = argszBuf(L.size);
    v.setUint32(L.fields.flags.off, flags, true);
    v.setBigUint64(L.fields.iova.off, u64(iova, "iova"), true);
    v.setBigUint64(L.fields.size.off, u64(size, "size"), true);
    this.ioctl(VFIO_IOMMU_UNMAP_DMA, b, (rc) => -rc === errno.EINVAL
      ? `[0x${BigInt(iova).toString(16)}, +0x${BigInt(size).toString(16)}) is unaligned or bisects a mapping (type1v2)`
      : `unmapping failed`);
    return v.getBigUint64(L.fields.size.off, true);
  }

  /** UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_ALL: the bytes unmapped. */
  unmapAll(): bigint {
    return this.unmapDma(0, 0, VFIO_DMA_UNMAP_FLAG_ALL);
  }

  /** VFIO_IOMMU_GET_INFO with the argsz-grow protocol, its capability chain parsed. */
  info(): Type1Info {
    const L = vfio_iommu_type1_info;
    let { b, v } = argszBuf(L.size);
    this.ioctl(VFIO_IOMMU_GET_INFO, b, () => `${this.path}: no IOMMU set`);
    const need = v.getUint32(L.fields.argsz.off, true);
    if (need > L.size) {
      ({ b, v } = argszBuf(need));
      this.ioctl(VFIO_IOMMU_GET_INFO, b, () => `${this.path}: no IOMMU set`);
    }
    const out: Type1Info = {
      flags: v.getUint32(L.fields.flags.off, true), iovaPgsizes: v.getBigUint64(L.fields.iova_pgsizes.off, true),
      iovaRanges: [], dmaAvail: null, migration: null,
    };
    const H = vfio_info_cap_header;
    const IOV = vfio_iommu_type1_info_cap_iova_range;
    const R = vfio_iova_range;
    const MIG = vfio_iommu_type1_info_cap_migration.fields;
    const seen = new Set<number>();
    for (let off = b.length >= L.size ? v.getUint32(L.fields.cap_offset.off, true) : 0; off && off + H.size <= b.length && !seen.has(off);) {
      seen.add(off);
      const id = v.getUint16(off + H.fields.id.off, true);
      if (id === VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
        const n = v.getUint32(off + IOV.fields.nr_iovas.off, true);
        for (let i = 0; i < n; i++) {
          const at = off + IOV.size + R.size * i;
          out.iovaRanges.push({ start: v.getBigUint64(at + R.fields.start.off, true), last: v.getBigUint64(at + R.fields.end.off, true) });
        }
      } else if (id === VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
        out.dmaAvail = v.getUint32(off + vfio_iommu_type1_info_dma_avail.fields.avail.off, true);
      } else if (id === VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) {
        out.migration = { pgsizeBitmap: v.getBigUint64(off + MIG.pgsize_bitmap.off, true), maxDirtyBitmapSize: v.getBigUint64(off + MIG.max_dirty_bitmap_size.off, true) };
      }
      off = v.getUint32(off + H.fields.next.off, true);
    }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.owned) check(this.proc.close(this.fd), "close", () => `closing ${this.path}`);
  }
}

export interface VfioGroupStatus { flags: number; viable: boolean; containerSet: boolean }

/** /dev/vfio/<group>. */
export class VfioGroup {
  private closed = false;

  private constructor(readonly proc: Process, readonly fd: number, readonly id: number) {}

  /** Opens the group node, by number or by a device handle (its iommuGroup). */
  static open(proc: Process, group: number | { readonly iommuGroup: number }): VfioGroup {
    const id = typeof group === "number" ? group : group.iommuGroup;
    if (!Number.isInteger(id) || id < 0) throw new TypeError(`VfioGroup.open: bad group ${id}`);
    const path = `/dev/vfio/${id}`;
    const fd = proc.open(path, O_RDWR);
    check(fd, "open", () => fd === -errno.EBUSY
      ? `${path} is already open, or a device of the group is bound through its cdev`
      : fd === -errno.ENOENT ? `${path} does not exist (no vfio-pci device in IOMMU group ${id})` : `cannot open ${path}`);
    return new VfioGroup(proc, fd, id);
  }

  private ioctl(cmd: number, arg: number | Uint8Array, why: (rc: number) => string): number {
    if (this.closed) throw new Error(`/dev/vfio/${this.id}: the group file is closed`);
    const rc = typeof arg === "number" ? this.proc.ioctl(this.fd, cmd, arg) : this.proc.ioctlBuf(this.fd, cmd, arg);
    return check(rc, "ioctl", () => why(rc), NAMES[cmd]);
  }

  /** VFIO_GROUP_GET_STATUS. */
  status(): VfioGroupStatus {
    const { b, v } = argszBuf(vfio_group_status.size);
    this.ioctl(VFIO_GROUP_GET_STATUS, b, () => `group ${this.id} is gone`);
    const flags = v.getUint32(vfio_group_status.fields.flags.off, true);
    return { flags, viable: (flags & VFIO_GROUP_FLAGS_VIABLE) !== 0, containerSet: (flags & VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0 };
  }

  /** VFIO_GROUP_SET_CONTAINER with a container, an iommufd, or a raw fd. */
  setContainer(container: VfioContainer | IommuFd | number): void {
    const cfd = typeof container === "number" ? container : container.fd;
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, cfd, true);
    this.ioctl(VFIO_GROUP_SET_CONTAINER, b, (rc) => {
      switch (-rc) {
        case errno.EINVAL: return `group ${this.id} already has a container or iommufd`;
        case errno.EPERM: return `group ${this.id} is in use for DMA (a kernel driver or a cdev-bound device), or its interrupts are not isolated`;
        case errno.EBADF: return `fd ${cfd} is not open`;
        case errno.EBADFD: return `fd ${cfd} is neither a VFIO container nor an iommufd`;
        default: return `group ${this.id}: SET_CONTAINER ${cfd} failed`;
      }
    });
  }

  /** VFIO_GROUP_UNSET_CONTAINER. */
  unsetContainer(): void {
    this.ioctl(VFIO_GROUP_UNSET_CONTAINER, 0, (rc) => -rc === errno.EBUSY
      ? `group ${this.id}: device files obtained from it still use the container`
      : `group ${this.id} has no container`);
  }

  /** VFIO_GROUP_GET_DEVICE_FD(name): a device file, usable at once (no BIND). */
  getDeviceFd(name: string): VfioDeviceFile {
    const b = new TextEncoder().encode(`${name}\0`);
    if (b.length > 4096) throw new RangeError("GET_DEVICE_FD: the name is longer than a page");
    const fd = this.ioctl(VFIO_GROUP_GET_DEVICE_FD, b, (rc) => {
      switch (-rc) {
        case errno.ENODEV: return `no device ${JSON.stringify(name)} in group ${this.id}`;
        case errno.EINVAL: return `group ${this.id} has no container with an IOMMU set (SET_CONTAINER, then SET_IOMMU), or the name's options are malformed`;
        case errno.EPERM: return `DMA ownership conflict in group ${this.id}`;
        default: return `opening ${name} through group ${this.id} failed`;
      }
    });
    return VfioDeviceFile.fromGroupFd(this.proc, fd, name);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    check(this.proc.close(this.fd), "close", () => `closing /dev/vfio/${this.id}`);
  }
}
