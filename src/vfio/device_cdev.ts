// The VFIO device character device (drivers/vfio/device_cdev.c): /dev/vfio/devices/vfioN,
// whose files open blocked and become usable only through VFIO_DEVICE_BIND_IOMMUFD, and the
// cdev-only ATTACH/DETACH_IOMMUFD_PT ioctls (SPEC.md §2.1, §3.2.1–§3.2.3).

import { errno } from "../uapi/errno.js";
import {
  VFIO_DEVICE_ATTACH_PASID, VFIO_DEVICE_BIND_FLAG_TOKEN, VFIO_DEVICE_DETACH_PASID,
  vfio_device_attach_iommufd_pt, vfio_device_bind_iommufd, vfio_device_detach_iommufd_pt,
} from "../uapi/vfio.js";
import type { StructLayout } from "../uapi/struct.js";
import type { File } from "../kernel/file.js";
import { copyStructFromUser, getUser32, vfioCopyIn } from "../kernel/ioctl.js";
import type { Process } from "../kernel/process.js";
import type { Vfio, VfioDevice, VfioDeviceFile } from "./vfio_main.js";

/**
 * vfio_device_fops_cdev_open: no ownership checks, any number of opens; only a device that
 * is still registered can be opened (-ENODEV once unregistering has dropped its reference).
 */
export function vfioDeviceFopsCdevOpen(dev: VfioDevice, _proc: Process, flags: number, path: string): File | number {
  if (!dev.tryGetRegistration()) return -errno.ENODEV;
  const file = dev.vfio.newDeviceFile(dev, flags, path);
  if (typeof file === "number") dev.putRegistration();
  return file;
}

const BIND = vfio_device_bind_iommufd.fields;

/**
 * VFIO_DEVICE_BIND_IOMMUFD, in the kernel's order (late-2025 baseline): argsz (EFAULT,
 * EINVAL < 16), the struct with a zero tail past 24 bytes (E2BIG), iommufd < 0 or unknown
 * flags (EINVAL), group-obtained file (EINVAL), block the group (EBUSY), already bound
 * (EINVAL), token (EINVAL/EFAULT/EACCES), the iommufd (EBADF / EBADFD), vfio_df_open
 * (EINVAL when open elsewhere; iommufd bind errors), out_devid (EFAULT). Every failure after
 * the group block undoes everything; success ends with the gate's store-release.
 */
export function vfioDfIoctlBindIommufd(vfio: Vfio, df: VfioDeviceFile, arg: number, proc: Process): number {
  const dev = df.device;
  const argsz = getUser32(proc, arg);
  if (argsz < 0) return argsz;
  if (argsz < vfio_device_bind_iommufd.minSize) return -errno.EINVAL;
  const image = copyStructFromUser(proc, arg, vfio_device_bind_iommufd.size, argsz);
  if (typeof image === "number") return image;
  const view = new DataView(image.buffer);
  const flags = view.getUint32(BIND.flags.off, true);
  const iommufd = view.getInt32(BIND.iommufd.off, true);
  if (iommufd < 0 || (flags & ~VFIO_DEVICE_BIND_FLAG_TOKEN)) return -errno.EINVAL;
  // BIND is for cdev files only.
  if (df.group) return -errno.EINVAL;

  let rc = dev.group.blockGroup();
  if (rc < 0) return rc;
  // From here on (the dev_set lock), every failure unblocks the group.
  rc = bindLocked(vfio, df, view, flags, iommufd, arg, proc);
  if (rc < 0) dev.group.unblockGroup();
  return rc;
}

function bindLocked(vfio: Vfio, df: VfioDeviceFile, view: DataView, flags: number, fd: number, arg: number, proc: Process): number {
  const dev = df.device;
  // One device file cannot be bound twice (checked before the iommufd is looked at).
  if (vfio.granted(df.file)) return -errno.EINVAL;

  // vfio_df_check_token. (The first 2025 version returned here without unlocking and
  // unblocking, a bug fixed since; this follows the fix.)
  let rc = checkToken(dev, view, flags, proc);
  if (rc < 0) return rc;

  // iommufd_ctx_from_fd: a file reference stands for the context reference.
  const ifile = proc.fget(fd);
  if (!ifile) return -errno.EBADF;
  const ctx = vfio.iommufd.ctxFromFile(ifile);
  if (!ctx) {
    vfio.kcore.fput(ifile);
    return -errno.EBADFD;
  }
  df.iommufd = ctx;
  df.iommufdFile = ifile;

  rc = vfio.dfOpen(df);
  if (rc < 0) {
    dropCtx(vfio, df);
    return rc;
  }

  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, df.devid, true);
  if (proc.mm.copyToUser(arg + BIND.out_devid.off, out) < 0) {
    vfio.dfClose(df);
    dropCtx(vfio, df);
    return -errno.EFAULT;
  }

  dev.cdevOpened = true;
  // Paired with gate_check() at the top of ioctl/read/write/mmap (vfio_main.ts) and in
  // workers: every side effect above is published before the file reads as bound.
  vfio.grant(df.file);
  return 0;
}

function checkToken(dev: VfioDevice, view: DataView, flags: number, proc: Process): number {
  if (!dev.ops.matchTokenUuid) return flags & VFIO_DEVICE_BIND_FLAG_TOKEN ? -errno.EINVAL : 0;
  if (!(flags & VFIO_DEVICE_BIND_FLAG_TOKEN)) return dev.ops.matchTokenUuid(dev, null);
  const ptr = view.getBigUint64(BIND.token_uuid_ptr.off, true);
  if (ptr > BigInt(Number.MAX_SAFE_INTEGER)) return -errno.EFAULT;
  const uuid = proc.mm.copyFromUser(Number(ptr), 16);
  if (typeof uuid === "number") return -errno.EFAULT;
  return dev.ops.matchTokenUuid(dev, uuid);
}

function dropCtx(vfio: Vfio, df: VfioDeviceFile): void {
  const f = df.iommufdFile;
  df.iommufd = null;
  df.iommufdFile = null;
  if (f) vfio.kcore.fput(f);
}

/**
 * vfio_df_unbind_iommufd, at release: a granted file closes the device (detach, unbind, DMA
 * ownership released), drops its context reference and unblocks the group.
 */
export function vfioDfUnbindIommufd(vfio: Vfio, df: VfioDeviceFile): void {
  // At release nobody races the flag: a plain read is enough in the kernel; here the gate
  // word is still the file's until fput retires it after this returns.
  if (!vfio.granted(df.file)) return;
  const dev = df.device;
  vfio.dfClose(df);
  dropCtx(vfio, df);
  dev.cdevOpened = false;
  dev.group.unblockGroup();
}

/**
 * The argument handling ATTACH and DETACH_IOMMUFD_PT share: argsz >= minsz (EINVAL), flags 0
 * or PASID (EINVAL); a PASID request needs argsz to cover the pasid (EINVAL) and a readable
 * pasid. Returns the struct and the PASID (null without the flag).
 */
function ptArg(proc: Process, arg: number, layout: StructLayout<"flags" | "pasid">, pasidFlag: number): { view: DataView; pasid: number | null } | number {
  const c = vfioCopyIn(proc, arg, layout);
  if (typeof c === "number") return c;
  const flags = c.view.getUint32(layout.fields.flags.off, true);
  if (flags & ~pasidFlag) return -errno.EINVAL;
  if (!(flags & pasidFlag)) return { view: c.view, pasid: null };
  if (c.argsz < layout.size) return -errno.EINVAL;
  const p = proc.mm.copyFromUser(arg + layout.fields.pasid.off, 4);
  if (typeof p === "number") return p;
  return { view: c.view, pasid: new DataView(p.buffer, p.byteOffset, 4).getUint32(0, true) };
}

const ATT = vfio_device_attach_iommufd_pt.fields;

/**
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT: argsz >= 12, flags 0 or PASID (argsz >= 16 then); attach,
 * or replace when attached, the RID or the PASID (vfio-pci has the PASID ops); pt_id is
 * written back (the auto HWPT id for an IOAS), and if that copy faults the RID or PASID is
 * detached.
 */
export function vfioDfIoctlAttachPt(vfio: Vfio, df: VfioDeviceFile, arg: number, proc: Process): number {
  const dev = df.device;
  const v = ptArg(proc, arg, vfio_device_attach_iommufd_pt, VFIO_DEVICE_ATTACH_PASID);
  if (typeof v === "number") return v;
  const ptId = v.view.getUint32(ATT.pt_id.off, true);
  const rc = v.pasid === null ? vfio.physicalAttachIoas(dev, ptId) : vfio.physicalPasidAttachIoas(dev, v.pasid, ptId);
  if (rc < 0) return rc;
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, rc, true);
  if (proc.mm.copyToUser(arg + ATT.pt_id.off, out) < 0) {
    if (v.pasid === null) vfio.physicalDetachIoas(dev);
    else vfio.physicalPasidDetachIoas(dev, v.pasid);
    return -errno.EFAULT;
  }
  return 0;
}

/** VFIO_DEVICE_DETACH_IOMMUFD_PT: argsz >= 8, flags 0 or PASID (argsz >= 12); 0 otherwise. */
export function vfioDfIoctlDetachPt(vfio: Vfio, df: VfioDeviceFile, arg: number, proc: Process): number {
  const v = ptArg(proc, arg, vfio_device_detach_iommufd_pt, VFIO_DEVICE_DETACH_PASID);
  if (typeof v === "number") return v;
  if (v.pasid === null) vfio.physicalDetachIoas(df.device);
  else vfio.physicalPasidDetachIoas(df.device, v.pasid);
  return 0;
}
