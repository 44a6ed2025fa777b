// IOMMU groups (drivers/iommu/iommu.c): the smallest sets of devices the IOMMU can isolate
// from each other. Each has a number (its /sys/kernel/iommu_groups/<n> directory and, for
// VFIO, /dev/vfio/<n>), members, and the DMA-ownership state that decides who may program the
// group's translation (SPEC.md §5.2):
//
//   ownerCnt  kernel DMA-API drivers using the default domain, or user owners (a VFIO group
//             claim counts 1, every device claimed for an iommufd counts 1)
//   owner     the user owner's cookie (a vfio group, an iommufd context), null for kernel use
//   domain    what the group is attached to: its default (kernel DMA) domain, the blocking
//             domain that a fresh user claim installs, or a domain a user owner attached
//
// Control plane only: one thread, no locks (the kernel's group->mutex is implicit).

import { errno } from "../uapi/errno.js";
import type { Vfs } from "../kernel/vfs.js";
import type { IommuCaps, IommuDevice, ResvRegion } from "./device.js";

export interface GroupMember { readonly bdf: string; readonly sysfsDir: string }

/** Which domain the group's translation currently uses. */
export type GroupDomain = "default" | "blocking" | "user";

/** The x86 interrupt-remapping window every device reserves (IOMMU_RESV_MSI). */
export const X86_MSI_WINDOW: ResvRegion = Object.freeze({ start: 0xfee00000n, last: 0xfeefffffn, type: "msi" });

export class IommuGroup {
  readonly members: GroupMember[] = [];
  /** group->owner_cnt: kernel DMA-API users plus user claims. */
  ownerCnt = 0;
  /** group->owner: the user owner's cookie; null while unowned or used by kernel drivers. */
  owner: object | null = null;
  domain: GroupDomain = "default";

  constructor(readonly id: number) {}

  /**
   * iommu_device_use_default_domain: a kernel driver binding to a member (driver probe).
   * -EBUSY when a user owns the group or it is not on its default domain.
   */
  useDefaultDomain(): number {
    if (this.ownerCnt > 0 && (this.domain !== "default" || this.owner !== null)) return -errno.EBUSY;
    this.ownerCnt++;
    return 0;
  }

  /** iommu_device_unuse_default_domain: the kernel driver unbinds. */
  unuseDefaultDomain(): void {
    if (this.ownerCnt === 0 || this.owner !== null) throw new Error(`iommu group ${this.id}: unbalanced unuse of the default domain`);
    this.ownerCnt--;
  }

  /** __iommu_take_dma_ownership: EBUSY off the default domain; installs the blocking domain. */
  private takeOwnership(owner: object): number {
    if (this.domain !== "default") return -errno.EBUSY;
    this.domain = "blocking";
    this.owner = owner;
    this.ownerCnt++;
    return 0;
  }

  /** __iommu_release_dma_ownership: back to the default domain (kernel DMA). */
  private releaseOwnership(): void {
    if (this.ownerCnt === 0 || this.owner === null) throw new Error(`iommu group ${this.id}: release of an unowned group`);
    this.ownerCnt = 0;
    this.owner = null;
    this.domain = "default";
  }

  /**
   * iommu_group_claim_dma_owner (the legacy container path, owner = the vfio group):
   * -EPERM if anyone uses the group at all, -EBUSY off the default domain.
   */
  claimGroupDmaOwner(owner: object): number {
    if (this.ownerCnt > 0) return -errno.EPERM;
    return this.takeOwnership(owner);
  }

  /** iommu_group_release_dma_owner. */
  releaseGroupDmaOwner(): void {
    this.releaseOwnership();
  }

  /**
   * iommu_device_claim_dma_owner (the iommufd path, owner = the iommufd context): a group
   * already in use must be owned by the same cookie (-EPERM otherwise: another context, a
   * vfio group, or a kernel DMA-API driver); a fresh claim is a group claim.
   */
  claimDeviceDmaOwner(owner: object): number {
    if (this.ownerCnt > 0) {
      if (this.owner !== owner) return -errno.EPERM;
      this.ownerCnt++;
      return 0;
    }
    return this.takeOwnership(owner);
  }

  /** iommu_device_release_dma_owner: the last release returns the group to kernel DMA. */
  releaseDeviceDmaOwner(): void {
    if (this.ownerCnt > 1) this.ownerCnt--;
    else this.releaseOwnership();
  }

  /** iommu_group_dma_owner_claimed: anyone (kernel driver or user) uses the group. */
  dmaOwnerClaimed(): boolean {
    return this.ownerCnt !== 0;
  }

  /**
   * The domain a user owner attached (iommufd attaching the group to an HWPT) or detached
   * (back to blocking). Only meaningful while the group is owned.
   */
  setUserDomain(attached: boolean): void {
    if (this.owner === null) throw new Error(`iommu group ${this.id}: domain change without an owner`);
    this.domain = attached ? "user" : "blocking";
  }
}

/** DeviceConfig.iommu with API.md's defaults applied. */
export function iommuCaps(cfg?: Partial<IommuCaps>): IommuCaps {
  return Object.freeze({
    format: cfg?.format ?? "x86",
    dirtyTracking: cfg?.dirtyTracking ?? true,
    coherent: cfg?.coherent ?? true,
    msiIsolated: cfg?.msiIsolated ?? true,
  });
}

/** What the IOMMU core knows of one member device: the IommuDevice iommufd binds. */
export class GroupDevice implements IommuDevice {
  readonly reservedRegions: readonly ResvRegion[];
  /** Set by the VFIO core when the device is registered (its line of the device table). */
  publishDomain?: (handle: number) => void;
  /** Device-level claims this device holds (0 or 1). */
  private claimed = false;

  constructor(readonly name: string, readonly group: IommuGroup, readonly caps: IommuCaps) {
    this.reservedRegions = Object.freeze(caps.format === "x86" ? [X86_MSI_WINDOW] : []);
  }

  get groupId(): number | null { return this.group.id; }

  claimDmaOwner(owner: object): number {
    if (this.claimed) throw new Error(`${this.name}: DMA ownership claimed twice`);
    const rc = this.group.claimDeviceDmaOwner(owner);
    if (rc === 0) this.claimed = true;
    return rc;
  }

  releaseDmaOwner(): void {
    if (!this.claimed) throw new Error(`${this.name}: DMA ownership released without a claim`);
    this.claimed = false;
    this.group.releaseDeviceDmaOwner();
  }

  get dmaOwnerClaimed(): boolean { return this.claimed; }
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
