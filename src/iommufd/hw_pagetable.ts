// HWPT and hardware-info ioctls (drivers/iommu/iommufd/hw_pagetable.c, device.c): their
// argument checks, in the kernel's order, up to the object lookups. Until devices and domains
// exist in a context these lookups find nothing, exactly as on a kernel with no bound device.

import { errno } from "../uapi/errno.js";
import {
  IOMMU_HW_INFO_FLAG_INPUT_TYPE, IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, iommu_hw_info, iommu_hwpt_alloc,
  iommu_hwpt_get_dirty_bitmap, iommu_hwpt_invalidate, iommu_hwpt_set_dirty_tracking,
} from "../uapi/iommufd.js";
import type { UCmd } from "../kernel/ioctl.js";
import { fields } from "./ioas.js";
import type { IommufdCtx } from "./main.js";

export function hwptAlloc(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = fields(ucmd, iommu_hwpt_alloc);
  if (c.u("__reserved")) return -errno.EOPNOTSUPP;
  const noData = c.u("data_type") === IOMMU_HWPT_DATA_NONE;
  if (noData !== (c.u("data_len") === 0)) return -errno.EINVAL;
  const idev = ctx.getObject(c.u("dev_id"), "device");
  if (typeof idev === "number") return idev;
  return -errno.EINVAL;
}

export function getHwInfo(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = fields(ucmd, iommu_hw_info);
  if ((c.u("flags") & ~IOMMU_HW_INFO_FLAG_INPUT_TYPE) || c.u("__reserved[0]") || c.u("__reserved[1]") || c.u("__reserved[2]")) {
    return -errno.EOPNOTSUPP;
  }
  const idev = ctx.getObject(c.u("dev_id"), "device");
  if (typeof idev === "number") return idev;
  return -errno.EINVAL;
}

export function hwptSetDirtyTracking(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = fields(ucmd, iommu_hwpt_set_dirty_tracking);
  if ((c.u("flags") & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE) || c.u("__reserved")) return -errno.EOPNOTSUPP;
  const hwpt = ctx.getObject(c.u("hwpt_id"), "hwpt_paging");
  if (typeof hwpt === "number") return hwpt;
  return -errno.EOPNOTSUPP;
}

export function hwptGetDirtyBitmap(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = fields(ucmd, iommu_hwpt_get_dirty_bitmap);
  if ((c.u("flags") & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) || c.u("__reserved")) return -errno.EOPNOTSUPP;
  const hwpt = ctx.getObject(c.u("hwpt_id"), "hwpt_paging");
  if (typeof hwpt === "number") return hwpt;
  return -errno.EOPNOTSUPP;
}

/**
 * HWPT_INVALIDATE reports how many entries it handled even when it fails: entry_num is
 * written back on every path after the reserved-field check.
 */
export function hwptInvalidate(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = fields(ucmd, iommu_hwpt_invalidate);
  if (c.u("__reserved")) return -errno.EOPNOTSUPP;
  let rc: number;
  if (c.u("entry_num") && (!c.u64("data_uptr") || !c.u("entry_len"))) {
    rc = -errno.EINVAL;
  } else {
    const obj = ctx.getObject(c.u("hwpt_id"));
    // Only nested HWPTs and vIOMMUs take user invalidations.
    rc = typeof obj === "number" ? obj : -errno.EINVAL;
  }
  c.set("entry_num", 0);
  if (ucmd.respond() < 0) return -errno.EFAULT;
  return rc;
}
