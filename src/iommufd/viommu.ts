// vIOMMU and vDEVICE objects (drivers/iommu/iommufd/viommu.c) on the selftest's mock IOMMU:
// IOMMU_VIOMMU_ALLOC over a NEST_PARENT paging HWPT, IOMMU_VDEVICE_ALLOC giving a bound device
// its virtual id in a vIOMMU, and the mock's vIOMMU ops (cache invalidation of its devices'
// 4-slot caches). Lifetimes as the kernel's: the vIOMMU holds its parent HWPT, a vDEVICE holds
// its vIOMMU and its device, a nested HWPT made on a vIOMMU holds the vIOMMU; unbinding a
// device with a vDEVICE destroys the vDEVICE and tombstones its id.

import { errno } from "../uapi/errno.js";
import {
  IOMMU_TEST_INVALIDATE_FLAG_ALL, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, IOMMU_VIOMMU_TYPE_DEFAULT,
  IOMMU_VIOMMU_TYPE_SELFTEST, MOCK_DEV_CACHE_ID_MAX, iommu_vdevice_alloc, iommu_viommu_alloc,
  iommu_viommu_invalidate_selftest,
} from "../uapi/iommufd.js";
import type { UCmd } from "../kernel/ioctl.js";
import type { IommuDevice } from "../iommu/device.js";
import type { IommufdDevice } from "./device.js";
import type { HwptPaging } from "./hw_pagetable.js";
import { fields } from "./ioas.js";
import { IommufdObject } from "./object.js";
import type { IommufdCtx } from "./main.js";

/** A device whose IOMMU driver keeps a per-device cache the vIOMMU invalidates (mock_dev.cache). */
export interface DevCacheDevice extends IommuDevice { readonly devCache: Uint32Array }

const hasDevCache = (dev: IommuDevice): dev is DevCacheDevice => "devCache" in dev;

/** struct iommufd_viommu (with the mock's struct mock_viommu). */
export class Viommu extends IommufdObject {
  readonly type = "viommu" as const;
  /** virt_id -> vDEVICE (viommu->vdevs). */
  readonly vdevs = new Map<bigint, Vdevice>();

  constructor(readonly ctx: IommufdCtx, readonly hwpt: HwptPaging, readonly viommuType: number) {
    super();
  }

  /** The vIOMMU's IOMMU instance: every mock device sits behind the one mock IOMMU. */
  get iommuFormat(): string { return this.hwpt.domain.format; }

  /** iommufd_viommu_get_vdev_id: the virtual id of `idev` in this vIOMMU, or -ENOENT. */
  vdevIdOf(idev: IommufdDevice): bigint | number {
    const v = idev.vdev;
    return v && v.viommu === this ? v.virtId : -errno.ENOENT;
  }

  destroy(): void {
    // Drops the parent reference taken at allocation (iommufd_viommu_destroy).
    this.hwpt.users--;
  }
}

/** struct iommufd_vdevice. */
export class Vdevice extends IommufdObject {
  readonly type = "vdevice" as const;

  constructor(readonly viommu: Viommu, readonly idev: IommufdDevice, readonly virtId: bigint) {
    super();
  }

  /** iommufd_vdevice_abort: out of the vIOMMU's table, the vIOMMU and device references go. */
  override abort(): void {
    if (this.viommu.vdevs.get(this.virtId) === this) this.viommu.vdevs.delete(this.virtId);
    this.viommu.users--;
    this.idev.vdev = null;
    this.idev.users--;
  }

  destroy(): void { this.abort(); }

  /**
   * iommufd_device_pre_destroy: the device is being unbound, so its vDEVICE is destroyed now
   * and its id stays taken (a tombstone) until the context goes.
   */
  tombstone(): void {
    this.viommu.ctx.objects.tombstone(this);
  }
}

/**
 * IOMMU_VIOMMU_ALLOC, in iommufd_viommu_alloc_ioctl's order: flags or the DEFAULT type
 * (EOPNOTSUPP), the device (ENOENT), a driver with vIOMMU support and this type (EOPNOTSUPP:
 * only the mock, only IOMMU_VIOMMU_TYPE_SELFTEST), the paging HWPT (ENOENT), a nest parent
 * (EINVAL), the object (ENOMEM), then the mock's viommu_init.
 */
export function viommuAlloc(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = fields(ucmd, iommu_viommu_alloc);
  const type = c.u("type");
  if (c.u("flags") || type === IOMMU_VIOMMU_TYPE_DEFAULT) return -errno.EOPNOTSUPP;
  const idev = ctx.getObject(c.u("dev_id"), "device") as IommufdDevice | number;
  if (typeof idev === "number") return idev;
  if (idev.dev.caps.format !== "mock" || type !== IOMMU_VIOMMU_TYPE_SELFTEST) return -errno.EOPNOTSUPP;
  const hwpt = ctx.getObject(c.u("hwpt_id"), "hwpt_paging") as HwptPaging | number;
  if (typeof hwpt === "number") return hwpt;
  if (!hwpt.nestParent) return -errno.EINVAL;
  const viommu = new Viommu(ctx, hwpt, type);
  let rc = ctx.objectAlloc(viommu, false);
  if (rc < 0) return rc;
  hwpt.users++;
  // mock_viommu_init with user data (struct iommu_viommu_selftest) also maps a page for the
  // user through the iommufd file (iommufd_viommu_alloc_mmap), which this emulator's
  // /dev/iommu does not offer: driver data is refused rather than half-handled.
  if (c.u("data_len")) { ctx.objectAbort(viommu); return -errno.EOPNOTSUPP; }
  c.set("out_viommu_id", viommu.id);
  rc = ucmd.respond();
  if (rc < 0) { ctx.objectAbort(viommu); return rc; }
  ctx.objectFinalize(viommu);
  return 0;
}

/**
 * IOMMU_VDEVICE_ALLOC, in iommufd_vdevice_alloc_ioctl's order: the vIOMMU, the device
 * (ENOENT), the same IOMMU instance (EINVAL), a device without a vDEVICE yet (EEXIST), the
 * object (ENOMEM), a virt_id not taken in the vIOMMU (EEXIST). (virt_id > ULONG_MAX cannot
 * happen on a 64-bit kernel.)
 */
export function vdeviceAlloc(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = fields(ucmd, iommu_vdevice_alloc);
  const virtId = c.u64("virt_id");
  const viommu = ctx.getObject(c.u("viommu_id"), "viommu") as Viommu | number;
  if (typeof viommu === "number") return viommu;
  const idev = ctx.getObject(c.u("dev_id"), "device") as IommufdDevice | number;
  if (typeof idev === "number") return idev;
  if (viommu.iommuFormat !== idev.dev.caps.format) return -errno.EINVAL;
  if (idev.vdev) return -errno.EEXIST;
  const vdev = new Vdevice(viommu, idev, virtId);
  let rc = ctx.objectAlloc(vdev, false);
  if (rc < 0) return rc;
  viommu.users++;
  // The vDEVICE keeps the reference iommufd_get_device took (dropped in its destroy).
  idev.users++;
  idev.vdev = vdev;
  if (viommu.vdevs.has(virtId)) { ctx.objectAbort(vdev); return -errno.EEXIST; }
  viommu.vdevs.set(virtId, vdev);
  c.set("out_vdevice_id", vdev.id);
  rc = ucmd.respond();
  if (rc < 0) { ctx.objectAbort(vdev); return rc; }
  ctx.objectFinalize(vdev);
  return 0;
}

/**
 * mock_viommu_cache_invalidate: an empty array of the selftest type checks only the type; else
 * the whole array is copied first (iommu_copy_struct_from_full_user_array: the type, EINVAL;
 * entries of exactly the struct's size in one copy, others one by one as copy_struct_from_user),
 * then handled in order up to the first bad entry: unknown flags EOPNOTSUPP, a cache id past
 * the last EINVAL, a virtual id with no vDEVICE EINVAL. `done` counts the handled entries.
 */
export function viommuCacheInvalidate(ucmd: UCmd, viommu: Viommu, type: number, uptr: number, entryLen: number,
  entryNum: number): { rc: number; done: number } {
  if (entryNum === 0 && type === IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST) return { rc: 0, done: 0 };
  const L = iommu_viommu_invalidate_selftest;
  // kcalloc of the array
  if (entryNum > 0 && viommu.ctx.shouldFail()) return { rc: -errno.ENOMEM, done: 0 };
  if (type !== IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST) return { rc: -errno.EINVAL, done: 0 };
  const cmds = new Uint8Array(L.size * entryNum);
  if (entryLen === L.size) {
    const b = ucmd.copyFromUser(uptr, entryLen * entryNum);
    if (typeof b === "number") return { rc: -errno.EFAULT, done: 0 };
    cmds.set(b);
  } else {
    for (let i = 0; i < entryNum; i++) {
      const b = ucmd.copyFromUser(uptr + entryLen * i, entryLen);
      if (typeof b === "number") return { rc: -errno.EFAULT, done: 0 };
      // copy_struct_from_user: a longer entry must be zero past the struct
      for (let k = L.size; k < b.length; k++) if (b[k]) return { rc: -errno.E2BIG, done: 0 };
      cmds.set(b.subarray(0, Math.min(b.length, L.size)), L.size * i);
    }
  }
  const dv = new DataView(cmds.buffer);
  let done = 0;
  for (; done < entryNum; done++) {
    const at = L.size * done;
    const flags = dv.getUint32(at + L.fields.flags.off, true);
    const cacheId = dv.getUint32(at + L.fields.cache_id.off, true);
    const vdevId = dv.getUint32(at + L.fields.vdev_id.off, true);
    if (flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) return { rc: -errno.EOPNOTSUPP, done };
    if (cacheId > MOCK_DEV_CACHE_ID_MAX) return { rc: -errno.EINVAL, done };
    const vdev = viommu.vdevs.get(BigInt(vdevId));
    if (!vdev || !hasDevCache(vdev.idev.dev)) return { rc: -errno.EINVAL, done };
    const cache = vdev.idev.dev.devCache;
    if (flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) cache.fill(0);
    else cache[cacheId] = 0;
  }
  return { rc: 0, done };
}

/** IOMMU_TEST_OP_DEV_CHECK_CACHE: slot `cacheId` of the device's cache holds `value` (else EINVAL). */
export function devCheckCache(ctx: IommufdCtx, idevId: number, cacheId: number, value: number): number {
  const idev = ctx.getObject(idevId, "device") as IommufdDevice | number;
  if (typeof idev === "number") return idev;
  const dev = idev.dev;
  if (!hasDevCache(dev) || cacheId > MOCK_DEV_CACHE_ID_MAX || dev.devCache[cacheId] !== value) return -errno.EINVAL;
  return 0;
}
