// The vfio_group (drivers/vfio/group.c): one per IOMMU group that has a registered vfio
// device, with its character device /dev/vfio/<n>. One open file at a time; through it the
// group joins a legacy container or an iommufd (SET_CONTAINER), and hands out device files
// (GET_DEVICE_FD) that are usable at once: the group path grants access itself, before the
// new fd is installed (SPEC.md §1.4, §2.2, §3.3, §5).
//
// The exclusion against the cdev path: while the group file is open no device of the group
// can be bound through its cdev (BIND → EBUSY), and while a device is cdev-bound (or binding)
// the group cannot be opened (open → EBUSY).
//
// Control plane only: the group_lock and the dev_set lock are implicit.

import { errno } from "../uapi/errno.js";
import { getField, setField } from "../uapi/struct.js";
import {
  VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER,
} from "../uapi/ioctl.js";
import { VFIO_GROUP_FLAGS_CONTAINER_SET, VFIO_GROUP_FLAGS_VIABLE, vfio_group_status } from "../uapi/vfio.js";
import { O_RDWR, S_IFCHR, makedev } from "../uapi/posix.js";
import type { File, FileOperations } from "../kernel/file.js";
import { PAGE_SIZE } from "../kernel/mm.js";
import type { Process } from "../kernel/process.js";
import type { IommuGroup } from "../iommu/iommu_group.js";
import type { IommufdCtx } from "../iommufd/main.js";
import { ioasAlloc } from "../iommufd/ioas.js";
import type { VfioContainer } from "./container.js";
import { Ida } from "./ida.js";
import type { Vfio, VfioDevice, VfioDeviceFile } from "./vfio_main.js";

/** The "vfio" class character region of group nodes (a dynamic major; 511 is vfio-dev's). */
export const VFIO_GROUP_MAJOR = 510;

export class VfioGroup {
  /** group->device_list: registered devices (unregister removes first). */
  readonly devices: VfioDevice[] = [];
  /** group->drivers: registered devices not yet released; the node goes when it reaches 0. */
  drivers = 0;
  /** The group's iommu_group is gone (GET_STATUS and SET_CONTAINER give ENODEV). */
  removed = false;
  /** group->opened_file: the one open /dev/vfio/<n> file, or null. */
  openedFile: File | null = null;
  /** group->cdev_device_open_cnt: devices of this group bound (or binding) via their cdev. */
  cdevDeviceOpenCnt = 0;
  /** The legacy container, and its users: 1 for the group plus 1 per device that uses it. */
  container: VfioContainer | null = null;
  containerUsers = 0;
  /** The iommufd set by SET_CONTAINER (its file reference is held while set). */
  iommufd: IommufdCtx | null = null;
  private iommufdFile: File | null = null;

  constructor(readonly iommuGroup: IommuGroup, readonly minor: number) {}

  get id(): number { return this.iommuGroup.id; }
  get nodePath(): string { return `/dev/vfio/${this.id}`; }
  get rdev(): number { return makedev(VFIO_GROUP_MAJOR, this.minor); }

  /** vfio_device_block_group: BIND refuses while the group file is open. */
  blockGroup(): number {
    if (this.openedFile !== null) return -errno.EBUSY;
    this.cdevDeviceOpenCnt++;
    return 0;
  }

  /** vfio_device_unblock_group. */
  unblockGroup(): void {
    if (this.cdevDeviceOpenCnt === 0) throw new Error(`vfio group ${this.id}: unbalanced unblock`);
    this.cdevDeviceOpenCnt--;
  }

  /** vfio_group_fops_open's checks: -EBUSY while a device is cdev-bound or the group is open. */
  canOpen(): number {
    if (this.cdevDeviceOpenCnt > 0 || this.openedFile !== null) return -errno.EBUSY;
    return 0;
  }

  /** vfio_group_has_iommu. */
  hasIommu(): boolean {
    return this.container !== null || this.iommufd !== null;
  }

  /** The iommufd SET_CONTAINER gave, with the file reference that keeps the context. */
  setIommufd(ctx: IommufdCtx | null, file: File | null): void {
    this.iommufd = ctx;
    this.iommufdFile = file;
  }

  /** Drops the iommufd reference (iommufd_ctx_put). */
  dropIommufd(vfio: Vfio): void {
    const f = this.iommufdFile;
    this.iommufd = null;
    this.iommufdFile = null;
    if (f) vfio.kcore.fput(f);
  }

  /**
   * vfio_group_use_container (first open of a device of the group in container mode): a
   * container with an IOMMU backend is needed (EINVAL); the device then pins the group file.
   */
  useContainer(): number {
    if (!this.container || !this.container.iommu || this.containerUsers === 0) return -errno.EINVAL;
    this.openedFile!.refs++;
    this.containerUsers++;
    return 0;
  }

  /** vfio_group_unuse_container. */
  unuseContainer(vfio: Vfio): void {
    if (this.containerUsers <= 1) throw new Error(`vfio group ${this.id}: unbalanced container unuse`);
    this.containerUsers--;
    vfio.kcore.fput(this.openedFile!);
  }

  /** The domain its devices' DMA translates through in container mode; 0 = blocked. */
  get containerDomainHandle(): number {
    return this.container?.iommu?.domainHandleOf(this) ?? 0;
  }
}

/** The vfio groups of one kernel, by IOMMU group number, and their nodes. */
export class VfioGroups {
  private readonly groups = new Map<number, VfioGroup>();
  /** group_ida. */
  private readonly minors = new Ida();
  readonly fops: FileOperations;

  constructor(private readonly vfio: Vfio) {
    this.fops = {
      kind: "vfio-group",
      ioctl: (file, cmd, arg, proc) => groupIoctl(vfio, file.priv as VfioGroup, cmd, arg, proc),
      release: (file) => groupRelease(vfio, file.priv as VfioGroup),
    };
  }

  get(id: number): VfioGroup | undefined { return this.groups.get(id); }

  /** vfio_group_find_or_alloc: a registering device joins (group->drivers + 1). */
  findOrAlloc(iommuGroup: IommuGroup): VfioGroup {
    let g = this.groups.get(iommuGroup.id);
    if (!g) {
      g = new VfioGroup(iommuGroup, this.minors.alloc());
      this.groups.set(iommuGroup.id, g);
      const group = g;
      this.vfio.kcore.vfs.addChr(g.nodePath, g.rdev, 0o600, (proc, flags, path) => groupOpen(this.vfio, group, proc, flags, path));
    }
    g.drivers++;
    return g;
  }

  /**
   * vfio_device_remove_group, at a device's release: the last driver gone removes the node
   * (a group file still open keeps the object, which then answers ENODEV).
   */
  removeDevice(group: VfioGroup, device: VfioDevice): void {
    const i = group.devices.indexOf(device);
    if (i >= 0) group.devices.splice(i, 1);
    if (--group.drivers > 0) return;
    group.removed = true;
    if (this.groups.get(group.id) === group) {
      this.groups.delete(group.id);
      this.vfio.kcore.vfs.remove(group.nodePath);
    }
    this.minors.free(group.minor);
  }
}

/** vfio_group_fops_open: one open file per group, none while a member is cdev-bound. */
function groupOpen(vfio: Vfio, group: VfioGroup, _proc: Process, flags: number, path: string): File | number {
  if (group.drivers === 0) return -errno.ENODEV;
  const rc = group.canOpen();
  if (rc < 0) return rc;
  const file = vfio.kcore.newFile(vfio.groups.fops, flags, group, path, { mode: S_IFCHR | 0o600, rdev: group.rdev, size: 0 });
  if (typeof file === "number") return file;
  group.openedFile = file;
  return file;
}

/**
 * vfio_group_fops_release: detach from the container (dropping the group's DMA claim, and
 * the container's backend when it was the last group) and drop the iommufd. In container
 * mode device files pin the group file, so this runs only after they are closed.
 */
function groupRelease(vfio: Vfio, group: VfioGroup): void {
  if (group.container) group.container.detachGroup(group);
  if (group.iommufd) group.dropIommufd(vfio);
  group.openedFile = null;
}

function groupIoctl(vfio: Vfio, group: VfioGroup, cmd: number, arg: number, proc: Process): number {
  switch (cmd) {
    case VFIO_GROUP_GET_DEVICE_FD: return getDeviceFd(vfio, group, arg, proc);
    case VFIO_GROUP_GET_STATUS: return getStatus(group, arg, proc);
    case VFIO_GROUP_SET_CONTAINER: return setContainer(vfio, group, arg, proc);
    case VFIO_GROUP_UNSET_CONTAINER: return unsetContainer(vfio, group);
    default: return -errno.ENOTTY;
  }
}

/**
 * VFIO_GROUP_GET_STATUS: argsz >= 8 (EINVAL); ENODEV once the group is gone. VIABLE |
 * CONTAINER_SET with a container or iommufd; otherwise VIABLE iff nobody uses the IOMMU
 * group for DMA (a kernel driver, a cdev-bound sibling). 8 bytes are written back.
 */
function getStatus(group: VfioGroup, arg: number, proc: Process): number {
  const L = vfio_group_status;
  const b = proc.mm.copyFromUser(arg, L.minSize);
  if (typeof b === "number") return b;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (getField(v, L.fields.argsz) < L.minSize) return -errno.EINVAL;
  if (group.removed) return -errno.ENODEV;
  let flags = 0;
  // With an iommufd the DMA claim waits for GET_DEVICE_FD: VIABLE can be reported and the
  // device open still fail the claim.
  if (group.hasIommu()) flags = VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE;
  else if (!group.iommuGroup.dmaOwnerClaimed()) flags = VFIO_GROUP_FLAGS_VIABLE;
  setField(v, L.fields.flags, flags);
  return proc.mm.copyToUser(arg, b) < 0 ? -errno.EFAULT : 0;
}

/**
 * VFIO_GROUP_SET_CONTAINER(&fd): the fd (EFAULT, EBADF); a container or iommufd already set
 * (EINVAL); the group gone (ENODEV); a legacy container (group DMA claim + backend attach);
 * an iommufd (its compat IOAS created if missing; no DMA claim until GET_DEVICE_FD); any
 * other file: EBADFD.
 */
function setContainer(vfio: Vfio, group: VfioGroup, arg: number, proc: Process): number {
  const b = proc.mm.copyFromUser(arg, 4);
  if (typeof b === "number") return b;
  const fd = new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true);
  const file = proc.file(fd);
  if (!file) return -errno.EBADF;
  if (group.hasIommu()) return -errno.EINVAL;
  if (group.removed) return -errno.ENODEV;
  const container = vfio.containerFromFile(file);
  if (container) return container.attachGroup(group);
  const ctx = vfio.iommufd.ctxFromFile(file);
  if (ctx) {
    const rc = compatIoasCreate(ctx);
    if (rc < 0) return rc;
    file.refs++;
    group.setIommufd(ctx, file);
    return 0;
  }
  return -errno.EBADFD;
}

/**
 * iommufd_vfio_compat_ioas_create: the context's compat IOAS, created (as an ordinary,
 * user-visible IOAS) when it has none.
 */
function compatIoasCreate(ctx: IommufdCtx): number {
  if (ctx.vfioIoas) return 0;
  const ioas = ioasAlloc(ctx);
  if (typeof ioas === "number") return ioas;
  ctx.vfioIoas = ioas;
  return 0;
}

/**
 * VFIO_GROUP_UNSET_CONTAINER: nothing set (EINVAL); a container still used by device files
 * (EBUSY); the iommufd case has no such check.
 */
function unsetContainer(vfio: Vfio, group: VfioGroup): number {
  if (!group.hasIommu()) return -errno.EINVAL;
  if (group.container) {
    if (group.containerUsers !== 1) return -errno.EBUSY;
    group.container.detachGroup(group);
  }
  if (group.iommufd) group.dropIommufd(vfio);
  return 0;
}

/**
 * strndup_user(arg, PAGE_SIZE): the NUL-terminated string at `addr`; EFAULT if a byte before
 * the NUL cannot be read, EINVAL if there is no NUL within PAGE_SIZE bytes.
 */
function strndupUser(proc: Process, addr: number): string | number {
  const bytes: number[] = [];
  let at = addr;
  while (bytes.length < PAGE_SIZE) {
    const n = Math.min(PAGE_SIZE - bytes.length, PAGE_SIZE - (at % PAGE_SIZE));
    const chunk = proc.mm.copyFromUser(at, n);
    if (typeof chunk === "number") return -errno.EFAULT;
    const z = chunk.indexOf(0);
    if (z >= 0) {
      for (let i = 0; i < z; i++) bytes.push(chunk[i]);
      return new TextDecoder("latin1").decode(new Uint8Array(bytes));
    }
    for (const c of chunk) bytes.push(c);
    at += n;
  }
  return -errno.EINVAL;
}

/** uuid_parse: "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" → 16 bytes, or null. */
function parseUuid(s: string): Uint8Array | null {
  if (!/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s)) return null;
  const hex = s.replace(/-/g, "");
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * vfio_pci_core_match: the PCI address, optionally followed by " vf_token=<uuid>" (EINVAL for
 * a malformed uuid or any other option); the token is then checked by the driver. 1 match,
 * 0 no match, -errno.
 */
function matchDevice(dev: VfioDevice, buf: string): number {
  if (!dev.ops.matchTokenUuid) return buf === dev.name ? 1 : 0;
  if (!buf.startsWith(dev.name)) return 0;
  let rest = buf.slice(dev.name.length);
  let token: Uint8Array | null = null;
  if (rest.length > 0) {
    if (rest[0] !== " ") return 0;
    while (rest.length > 0) {
      if (rest[0] === " ") { rest = rest.slice(1); continue; }
      if (!token && rest.startsWith("vf_token=")) {
        const u = parseUuid(rest.slice(9, 9 + 36));
        if (!u) return -errno.EINVAL;
        token = u;
        rest = rest.slice(9 + 36);
        continue;
      }
      return -errno.EINVAL;
    }
  }
  const rc = dev.ops.matchTokenUuid(dev, token);
  return rc < 0 ? rc : 1;
}

/**
 * VFIO_GROUP_GET_DEVICE_FD(name): the name (EFAULT, EINVAL); the device by name among the
 * group's registered devices (ENODEV; a match error stops the search); a free fd (EMFILE);
 * then the open (vfio_df_group_open): no container or iommufd (EINVAL), vfio_df_open (the
 * container must have its IOMMU set: EINVAL; iommufd: the device's bind and DMA claim, EPERM
 * etc.), the compat IOAS attach on the first open; access is granted before the new fd
 * (O_RDWR, close-on-exec) is installed.
 */
function getDeviceFd(vfio: Vfio, group: VfioGroup, arg: number, proc: Process): number {
  const name = strndupUser(proc, arg);
  if (typeof name === "number") return name;
  let device: VfioDevice | null = null;
  for (const dev of group.devices) {
    const m = matchDevice(dev, name);
    if (m < 0) return m;
    if (m > 0 && dev.tryGetRegistration()) { device = dev; break; }
  }
  if (!device) return -errno.ENODEV;
  const file = vfio.newDeviceFile(device, O_RDWR, "[vfio-device]");
  if (typeof file === "number") {
    device.putRegistration();
    return file;
  }
  const df = file.priv as VfioDeviceFile;
  df.group = group;
  const rc = dfGroupOpen(vfio, df);
  if (rc < 0) {
    // Not granted: the release only drops the registration reference.
    vfio.kcore.fput(file);
    return rc;
  }
  const fd = proc.installFile(file, true);
  if (fd < 0) vfio.kcore.fput(file);
  return fd;
}

/**
 * vfio_df_group_open: a container or iommufd is needed (EINVAL); vfio_df_open; with an
 * iommufd, the first open attaches the device to the compat IOAS (no pt_id can be returned
 * on this path); then the store-release that grants the file.
 */
function dfGroupOpen(vfio: Vfio, df: VfioDeviceFile): number {
  const group = df.group!;
  const dev = df.device;
  if (!group.hasIommu()) return -errno.EINVAL;
  df.iommufd = group.iommufd;
  let rc = vfio.dfOpen(df);
  if (rc < 0) {
    df.iommufd = null;
    return rc;
  }
  if (df.iommufd && dev.openCount === 1) {
    // vfio_iommufd_compat_attach_ioas
    const ioas = df.iommufd.vfioIoas;
    rc = ioas ? vfio.physicalAttachIoas(dev, ioas.id) : -errno.ENODEV;
    if (rc < 0) {
      vfio.dfClose(df);
      df.iommufd = null;
      return rc;
    }
  }
  // Paired with gate_check() at the top of the device file's ioctl/read/write/mmap and in
  // workers: the open's side effects (device state, binding, compat attach) are published
  // before the file reads as granted, and that before its fd exists.
  vfio.grant(df.file);
  return 0;
}

/** vfio_df_group_close, at the release of a granted group-obtained device file. */
export function vfioDfGroupClose(vfio: Vfio, df: VfioDeviceFile): void {
  if (!vfio.granted(df.file)) return;
  vfio.dfClose(df);
  df.iommufd = null;
}
