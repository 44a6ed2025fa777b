// The VFIO type1 container ioctls on an iommufd file (drivers/iommu/iommufd/vfio_compat.c):
// they act on the context's compat IOAS, chosen by IOMMU_VFIO_IOAS or created when a group
// joins; without one they give ENODEV.

import { errno, ENOIOCTLCMD } from "../uapi/errno.js";
import {
  VFIO_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
} from "../uapi/ioctl.js";
import {
  IOMMU_VFIO_IOAS_CLEAR, IOMMU_VFIO_IOAS_GET, IOMMU_VFIO_IOAS_SET, iommu_vfio_ioas,
} from "../uapi/iommufd.js";
import {
  VFIO_DMA_CC_IOMMU, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL, VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU, VFIO_UNMAP_ALL, vfio_info_cap_header, vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap, vfio_iommu_type1_info, vfio_iommu_type1_info_cap_iova_range,
  vfio_iova_range,
} from "../uapi/vfio.js";
import type { StructLayout } from "../uapi/struct.js";
import type { Process } from "../kernel/process.js";
import { mapUserPages } from "./io_pagetable.js";
import { PAGE, PAGE_SIZE, ULONG_MAX } from "./iova.js";
import type { Ioas } from "./ioas.js";
import type { IommufdCtx, UCmd } from "./iommufd_private.js";
import { capDmaAvail, capIovaRange, capPaddedSize } from "../uapi/vfio_type1_caps.js";


/** get_compat_ioas: the compat IOAS or -ENODEV. */
function compatIoas(ctx: IommufdCtx): Ioas | number {
  return ctx.vfioIoas ?? -errno.ENODEV;
}

export function vfioIoasIoctl(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_vfio_ioas);
  if (c.u(c.f.__reserved)) return -errno.EOPNOTSUPP;
  switch (c.u(c.f.op)) {
    case IOMMU_VFIO_IOAS_GET: {
      const ioas = compatIoas(ctx);
      if (typeof ioas === "number") return ioas;
      c.set(c.f.ioas_id, ioas.id);
      return ucmd.respond();
    }
    case IOMMU_VFIO_IOAS_SET: {
      const ioas = ctx.getIoas(c.u(c.f.ioas_id));
      if (typeof ioas === "number") return ioas;
      ctx.vfioIoas = ioas;
      return 0;
    }
    case IOMMU_VFIO_IOAS_CLEAR:
      ctx.vfioIoas = null;
      return 0;
    default:
      return -errno.EOPNOTSUPP;
  }
}

/**
 * Reads the mandatory part of a type1 argument (the copy is an injection point): its view, or
 * -EFAULT, or -EINVAL when argsz is below it.
 */
function readArg(ctx: IommufdCtx, proc: Process, arg: number, L: StructLayout<"argsz">): DataView | number {
  if (ctx.shouldFail()) return -errno.EFAULT;
  const b = proc.mm.copyFromUser(arg, L.minSize);
  if (typeof b === "number") return b;
  const v = new DataView(b.buffer);
  return v.getUint32(L.fields.argsz.off, true) < L.minSize ? -errno.EINVAL : v;
}

/** copy_to_user for the type1 handlers (an injection point): 0 or -EFAULT. */
function writeUser(ctx: IommufdCtx, proc: Process, addr: number, bytes: Uint8Array): number {
  if (ctx.shouldFail()) return -errno.EFAULT;
  return proc.mm.copyToUser(addr, bytes);
}

function mapDma(ctx: IommufdCtx, proc: Process, arg: number): number {
  const L = vfio_iommu_type1_dma_map;
  const v = readArg(ctx, proc, arg, L);
  if (typeof v === "number") return v;
  const flags = v.getUint32(L.fields.flags.off, true);
  if (flags & ~(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)) return -errno.EINVAL;
  const ioas = compatIoas(ctx);
  if (typeof ioas === "number") return ioas;
  // Maps made through the legacy interface always use the VFIO (per-mm) accounting.
  const rc = mapUserPages(ctx, ioas.iopt, proc, v.getBigUint64(L.fields.vaddr.off, true),
    v.getBigUint64(L.fields.size.off, true), v.getBigUint64(L.fields.iova.off, true),
    { read: (flags & VFIO_DMA_MAP_FLAG_READ) !== 0, write: (flags & VFIO_DMA_MAP_FLAG_WRITE) !== 0 }, { iova: 0n }, true);
  return rc < 0 ? rc : 0;
}

function unmapDma(ctx: IommufdCtx, proc: Process, arg: number): number {
  const L = vfio_iommu_type1_dma_unmap;
  const v = readArg(ctx, proc, arg, L);
  if (typeof v === "number") return v;
  const flags = v.getUint32(L.fields.flags.off, true);
  if (flags & ~VFIO_DMA_UNMAP_FLAG_ALL) return -errno.EINVAL;
  const ioas = compatIoas(ctx);
  if (typeof ioas === "number") return ioas;
  const iova = v.getBigUint64(L.fields.iova.off, true);
  const size = v.getBigUint64(L.fields.size.off, true);
  const out = { unmapped: 0n };
  let rc: number;
  if (flags & VFIO_DMA_UNMAP_FLAG_ALL) {
    if (iova !== 0n || size !== 0n) return -errno.EINVAL;
    rc = ioas.iopt.unmapAll(out);
  } else {
    if (ioas.iopt.disableLargePages) {
      // type1 v1: cut the areas at both ends of the range so that a sub-range can go.
      const last = BigInt.asUintN(64, iova + size - 1n);
      const cuts = iova !== 0n ? [last, iova - 1n] : [last];
      const rc = ioas.iopt.cutIova(cuts);
      if (rc < 0) return rc;
    }
    // A range that meets no mapping at all unmaps nothing and succeeds, as type1 does.
    rc = ioas.iopt.unmapIova(iova, size, out, 0);
  }
  // The struct goes back as it came, with size set to the bytes unmapped.
  v.setBigUint64(L.fields.size.off, out.unmapped, true);
  if (writeUser(ctx, proc, arg, new Uint8Array(v.buffer)) < 0) return -errno.EFAULT;
  return rc;
}

function setIommu(ctx: IommufdCtx, type: number): number {
  if (type !== VFIO_TYPE1_IOMMU && type !== VFIO_TYPE1v2_IOMMU) return -errno.EINVAL;
  const ioas = compatIoas(ctx);
  if (typeof ioas === "number") return ioas;
  // TYPE1 lets userspace unmap inside a mapping: emulated by never using large IOPTEs.
  return type === VFIO_TYPE1_IOMMU ? ioas.iopt.disableLarge() : 0;
}

function checkExtension(ctx: IommufdCtx, ext: number): number {
  switch (ext) {
    case VFIO_TYPE1_IOMMU:
    case VFIO_TYPE1v2_IOMMU:
    case VFIO_UNMAP_ALL:
      return 1;
    case VFIO_DMA_CC_IOMMU: {
      const ioas = compatIoas(ctx);
      if (typeof ioas === "number") return ioas;
      return ctx.enforcesCoherency(ioas) ? 1 : 0;
    }
    default:
      return 0;
  }
}

/** The page sizes type1 would report: the AND of the domains', sub-page bits folded. */
function pageSizes(ctx: IommufdCtx, ioas: Ioas): bigint {
  let bitmap = ULONG_MAX;
  for (const d of ioas.iopt.domains) bitmap &= d.pgsizeBitmap;
  if (bitmap & (PAGE - 1n)) bitmap = (bitmap & ~(PAGE - 1n)) | PAGE;
  return bitmap > ioas.iopt.iovaAlignment ? bitmap : ioas.iopt.iovaAlignment;
}

function getInfo(ctx: IommufdCtx, proc: Process, arg: number): number {
  const L = vfio_iommu_type1_info;
  const v = readArg(ctx, proc, arg, L);
  if (typeof v === "number") return v;
  const argsz = v.getUint32(L.fields.argsz.off, true);
  const ioas = compatIoas(ctx);
  if (typeof ioas === "number") return ioas;

  // The chain: DMA_AVAIL (U32_MAX: iommufd has no mapping-count limit), then IOVA_RANGE; each
  // cap is written only where it fits in argsz.
  const ranges = ioas.iopt.validRanges();
  const IR = vfio_iommu_type1_info_cap_iova_range;
  const R = vfio_iova_range;
  const dma = capDmaAvail(0xffffffff);
  const iov = capIovaRange(ranges);
  const caps = [dma, iov];

  let total = L.size;
  let lastCap = -1;
  for (const cap of caps) {
    const avail = argsz > total ? argsz - total : 0;
    if (cap === iov) {
      // The iova-range cap writes each range that fits, then its header if the whole fits.
      for (let i = 0; i < ranges.length; i++) {
        const at = IR.size + R.size * i;
        if (avail >= at + R.size && writeUser(ctx, proc, arg + total + at, cap.subarray(at, at + R.size)) < 0) return -errno.EFAULT;
      }
      if (avail >= cap.length && writeUser(ctx, proc, arg + total, cap.subarray(0, IR.size)) < 0) return -errno.EFAULT;
    } else if (avail >= cap.length && writeUser(ctx, proc, arg + total, cap) < 0) {
      return -errno.EFAULT;
    }
    if (lastCap >= 0 && argsz >= total) {
      const next = new Uint8Array(4);
      new DataView(next.buffer).setUint32(0, total, true);
      if (writeUser(ctx, proc, arg + lastCap + vfio_info_cap_header.fields.next.off, next) < 0) return -errno.EFAULT;
    }
    lastCap = total;
    total += capPaddedSize(cap);
  }
  const info = new Uint8Array(L.size);
  const iv = new DataView(info.buffer);
  iv.setUint32(L.fields.argsz.off, total, true);
  iv.setUint32(L.fields.flags.off, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS, true);
  iv.setBigUint64(L.fields.iova_pgsizes.off, pageSizes(ctx, ioas), true);
  iv.setUint32(L.fields.cap_offset.off, argsz >= total ? L.size : 0, true);
  if (writeUser(ctx, proc, arg, info.subarray(0, Math.min(argsz, L.size))) < 0) return -errno.EFAULT;
  return 0;
}

/** iommufd_vfio_ioctl: the numbers outside the iommufd table. */
export function vfioCompatIoctl(ctx: IommufdCtx, proc: Process, cmd: number, arg: number): number {
  switch (cmd) {
    case VFIO_GET_API_VERSION: return VFIO_API_VERSION;
    case VFIO_SET_IOMMU: return setIommu(ctx, arg);
    case VFIO_CHECK_EXTENSION: return checkExtension(ctx, arg);
    case VFIO_IOMMU_GET_INFO: return getInfo(ctx, proc, arg);
    case VFIO_IOMMU_MAP_DMA: return mapDma(ctx, proc, arg);
    case VFIO_IOMMU_UNMAP_DMA: return unmapDma(ctx, proc, arg);
    default: return -ENOIOCTLCMD;
  }
}
