// IOMMU groups: the smallest sets of devices the IOMMU can isolate from each other. Each has
// a number (its /sys/kernel/iommu_groups/<n> directory and, later, /dev/vfio/<n>) and members.

import type { Vfs } from "../kernel/vfs.js";

export interface GroupMember { readonly bdf: string; readonly sysfsDir: string }

export class IommuGroup {
  readonly members: GroupMember[] = [];
  constructor(readonly id: number) {}
}

export class IommuGroups {
  private readonly groups = new Map<number, IommuGroup>();

  constructor(private readonly vfs: Vfs) {}

  get(id: number): IommuGroup | undefined {
    return this.groups.get(id);
  }

  /** The lowest group number not in use (a device without an explicit group gets a fresh one). */
  freshId(): number {
    let id = 0;
    while (this.groups.has(id)) id++;
    return id;
  }

  /** Adds a device (by its sysfs directory) to group `id`, creating the group as needed. */
  add(id: number, member: GroupMember): IommuGroup {
    let g = this.groups.get(id);
    if (!g) {
      g = new IommuGroup(id);
      this.groups.set(id, g);
      this.vfs.mkdirp(`/sys/kernel/iommu_groups/${id}/devices`);
    }
    g.members.push(member);
    // The member link, as on Linux: /sys/kernel/iommu_groups/<n>/devices/<bdf> -> the device.
    // Relative to .../devices/, four levels up is /sys itself.
    this.vfs.addLink(`/sys/kernel/iommu_groups/${id}/devices/${member.bdf}`, `../../../..${member.sysfsDir.slice("/sys".length)}`);
    this.vfs.addLink(`${member.sysfsDir}/iommu_group`, `../../../kernel/iommu_groups/${id}`);
    return g;
  }

  remove(id: number, bdf: string): void {
    const g = this.groups.get(id);
    if (!g) return;
    const i = g.members.findIndex((m) => m.bdf === bdf);
    if (i < 0) return;
    const [m] = g.members.splice(i, 1);
    this.vfs.remove(`/sys/kernel/iommu_groups/${id}/devices/${bdf}`);
    this.vfs.remove(`${m.sysfsDir}/iommu_group`);
    if (g.members.length === 0) {
      this.groups.delete(id);
      this.vfs.remove(`/sys/kernel/iommu_groups/${id}`);
    }
  }
}
