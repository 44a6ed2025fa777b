// The vfio_group (drivers/vfio/group.c): one per IOMMU group that has a registered vfio
// device. This issue needs only its exclusion state against the cdev path (SPEC.md §5.1): the
// group file's "opened" mark and the count of devices bound (or binding) through their cdev.
// The group's character device, container and GET_DEVICE_FD come with the legacy path.

import { errno } from "../uapi/errno.js";
import type { IommuGroup } from "../iommu/iommu_group.js";
import type { VfioDevice } from "./vfio_main.js";

export class VfioGroup {
  /** group->device_list: registered devices (unregister removes first). */
  readonly devices: VfioDevice[] = [];
  /**
   * group->opened_file: the one open /dev/vfio/<n> file, or null. Set by the group node's
   * open (legacy path); here so that BIND can refuse while it is set.
   */
  openedFile: object | null = null;
  /** group->cdev_device_open_cnt: devices of this group bound (or binding) via their cdev. */
  cdevDeviceOpenCnt = 0;

  constructor(readonly iommuGroup: IommuGroup) {}

  get id(): number { return this.iommuGroup.id; }

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

  /**
   * What the group node's open will check (vfio_group_fops_open): -EBUSY while a device of
   * the group is cdev-bound or the group is already open.
   */
  canOpen(): number {
    if (this.cdevDeviceOpenCnt > 0 || this.openedFile !== null) return -errno.EBUSY;
    return 0;
  }
}

/** The vfio groups of one kernel, by IOMMU group number. */
export class VfioGroups {
  private readonly groups = new Map<number, VfioGroup>();

  get(id: number): VfioGroup | undefined { return this.groups.get(id); }

  /** vfio_group_find_or_alloc. */
  findOrAlloc(iommuGroup: IommuGroup): VfioGroup {
    let g = this.groups.get(iommuGroup.id);
    if (!g) {
      g = new VfioGroup(iommuGroup);
      this.groups.set(iommuGroup.id, g);
    }
    return g;
  }

  /** The last device left: the group goes (group->drivers reached 0). */
  removeDevice(group: VfioGroup, device: VfioDevice): void {
    const i = group.devices.indexOf(device);
    if (i >= 0) group.devices.splice(i, 1);
    if (group.devices.length === 0 && group.openedFile === null && this.groups.get(group.id) === group) this.groups.delete(group.id);
  }
}
