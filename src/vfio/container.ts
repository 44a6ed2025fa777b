// The legacy VFIO container (drivers/vfio/container.c): /dev/vfio/vfio, misc 10:196, mode
// 0666. A container collects groups (SET_CONTAINER), and once it has one, SET_IOMMU picks an
// IOMMU backend (type1 here) that every group of the container is attached to. Removing the
// last group releases the backend and with it every mapping (SPEC.md §1.5, §2.3, §3.4).
//
// With KernelConfig.vfioContainer = 'iommufd' (CONFIG_IOMMUFD_VFIO_CONTAINER) the node opens
// an iommufd context with mm accounting instead; see Vfio's constructor.
//
// Control plane only; the container's group_lock is implicit.

import { errno } from "../uapi/errno.js";
import { VFIO_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_SET_IOMMU } from "../uapi/ioctl.js";
import { VFIO_TYPE1v2_IOMMU } from "../uapi/vfio.js";
import { MISC_MAJOR, S_IFCHR, makedev } from "../uapi/posix.js";
import type { File, FileOperations } from "../kernel/file.js";
import type { Process } from "../kernel/process.js";
import { VfioIommuType1, type Type1Params } from "./vfio_iommu_type1.js";
import type { Vfio } from "./vfio_main.js";
import type { VfioGroup } from "./group.js";

/** VFIO_MINOR */
export const VFIO_MINOR = 196;
export const VFIO_CONTAINER_RDEV = makedev(MISC_MAJOR, VFIO_MINOR);

/** struct vfio_container. */
export class VfioContainer {
  /** group_list: the groups attached (each holds a reference on the container). */
  readonly groups: VfioGroup[] = [];
  /** iommu_driver + iommu_data: null until SET_IOMMU, and again once the last group leaves. */
  iommu: VfioIommuType1 | null = null;
  /** The kref: the container file, plus one per attached group. */
  refs = 1;

  constructor(readonly vfio: Vfio, private readonly params: Type1Params) {}

  /** vfio_container_ioctl_check_extension: without a backend, what type1 would answer. */
  checkExtension(ext: number): number {
    return VfioIommuType1.checkExtension(this.iommu, ext);
  }

  /**
   * vfio_ioctl_set_iommu: only with groups and no backend yet (EINVAL); a type no backend
   * accepts is ENODEV; then every group is attached to the new backend, all or nothing
   * (the attach error otherwise).
   */
  setIommu(type: number): number {
    if (this.groups.length === 0 || this.iommu) return -errno.EINVAL;
    if (!VfioIommuType1.typeSupported(type)) return -errno.ENODEV;
    const iommu = new VfioIommuType1(this.vfio.kcore, type === VFIO_TYPE1v2_IOMMU, this.params);
    const done: VfioGroup[] = [];
    // group_list is kept newest-first, as the kernel's list_add makes it.
    for (const g of this.groups) {
      const rc = iommu.attachGroup(g);
      if (rc < 0) {
        for (const d of done.reverse()) iommu.detachGroup(d);
        iommu.release();
        return rc;
      }
      done.push(g);
    }
    this.iommu = iommu;
    return 0;
  }

  /**
   * vfio_container_attach_group (SET_CONTAINER): the group-level DMA claim with the group as
   * owner (EPERM when anyone uses the group, EBUSY off its default domain), then the attach to
   * the backend if one is set (the claim is dropped again if that fails).
   */
  attachGroup(group: VfioGroup): number {
    let rc = group.iommuGroup.claimGroupDmaOwner(group);
    if (rc < 0) return rc;
    if (this.iommu) {
      rc = this.iommu.attachGroup(group);
      if (rc < 0) {
        group.iommuGroup.releaseGroupDmaOwner();
        return rc;
      }
    }
    group.container = this;
    group.containerUsers = 1;
    this.groups.unshift(group);
    this.refs++;
    return 0;
  }

  /**
   * vfio_group_detach_container: out of the backend, the DMA claim released; the last group
   * leaving deprivileges the container (the backend and all its mappings go).
   */
  detachGroup(group: VfioGroup): void {
    if (group.containerUsers !== 1) throw new Error(`vfio group ${group.id}: detach with ${group.containerUsers} container users`);
    this.iommu?.detachGroup(group);
    group.iommuGroup.releaseGroupDmaOwner();
    group.container = null;
    group.containerUsers = 0;
    const i = this.groups.indexOf(group);
    if (i >= 0) this.groups.splice(i, 1);
    if (this.iommu && this.groups.length === 0) {
      this.iommu.release();
      this.iommu = null;
    }
    this.refs--;
  }

  /** vfio_fops_unl_ioctl. */
  ioctl(proc: Process, cmd: number, arg: number): number {
    switch (cmd) {
      case VFIO_GET_API_VERSION: return VFIO_API_VERSION;
      case VFIO_CHECK_EXTENSION: return this.checkExtension(arg);
      case VFIO_SET_IOMMU: return this.setIommu(arg);
      default:
        // Everything else goes to the backend; without one it is EINVAL.
        return this.iommu ? this.iommu.ioctl(proc, cmd, arg) : -errno.EINVAL;
    }
  }
}

/** The file operations of /dev/vfio/vfio in legacy mode. */
export function containerFops(): FileOperations {
  return {
    kind: "vfio-container",
    ioctl: (file, cmd, arg, proc) => (file.priv as VfioContainer).ioctl(proc, cmd, arg),
    // vfio_fops_release: the file's reference goes; attached groups keep the container.
    release: (file) => { (file.priv as VfioContainer).refs--; },
  };
}

/** vfio_fops_open: a fresh, empty container. */
export function vfioContainerOpen(vfio: Vfio, fops: FileOperations, params: Type1Params, flags: number, path: string): File | number {
  if (vfio.kcore.shouldFail()) return -errno.ENOMEM;
  const c = new VfioContainer(vfio, params);
  return vfio.kcore.newFile(fops, flags, c, path, { mode: S_IFCHR | 0o666, rdev: VFIO_CONTAINER_RDEV, size: 0 });
}

/** vfio_container_from_file. */
export function containerFromFile(file: File, fops: FileOperations): VfioContainer | null {
  return file.ops === fops ? (file.priv as VfioContainer) : null;
}
