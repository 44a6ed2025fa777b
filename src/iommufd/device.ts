// iommufd_device and iommufd_group (drivers/iommu/iommufd/device.c): binding a device to an
// iommufd context (with its DMA-ownership claim), and attaching, replacing and detaching it.
// All devices of one iommu_group in a context share an iommufd_group, which is attached to at
// most one HWPT: the first device attaches the group, the others join it.

import { errno } from "../uapi/errno.js";
import { IOMMU_PGFAULT_FLAGS_PASID_VALID } from "../uapi/iommufd.js";
import type { IommuDevice } from "../iommu/device.js";
import { synchronizeDma } from "../kernel/grace.js";
import type { IopfFault } from "./eventq.js";
import { HwptNested, HwptPaging, hwptPagingAlloc, type Hwpt } from "./hw_pagetable.js";
import { Ioas } from "./ioas.js";
import { IommufdObject } from "./object.js";
import type { IommufdCtx } from "./iommufd_private.js";
import { noteMockAttach, type Vdevice } from "./viommu.js";

/**
 * struct iommufd_attach_handle: one attachment of the group's RID (or a PASID) to a HWPT,
 * made by `idev`. IO page faults carry the handle they came through, so that the attachment
 * going away can answer them.
 */
export class AttachHandle {
  constructor(readonly idev: IommufdDevice, readonly hwpt: Hwpt, readonly pasid: number) {}
}

/** struct iommufd_attach of a PASID: the HWPT, the devices attached at it, its handle. */
export interface PasidAttach { hwpt: Hwpt; readonly devices: IommufdDevice[]; handle: AttachHandle }

/** struct iommufd_group: one per (context, iommu_group) with bound devices. */
export class IommufdGroup {
  /** PASID attachments (pasid_attach without the RID, which is `hwpt`/`devices`/`handle`). */
  readonly pasids = new Map<number, PasidAttach>();
  /** The HWPT the group is attached to; null = the blocking domain. */
  hwpt: Hwpt | null = null;
  /** The RID attachment's handle (null while blocked). */
  handle: AttachHandle | null = null;
  /** Attached devices. */
  readonly devices: IommufdDevice[] = [];
  /** Bound devices (the group lives while one is bound). */
  bound = 0;
  constructor(readonly id: number) {}
}

export class IommufdDevice extends IommufdObject {
  readonly type = "device" as const;
  private unbound = false;
  /** Its vDEVICE (idev->vdev), holding a user of this object. */
  vdev: Vdevice | null = null;

  constructor(readonly ctx: IommufdCtx, readonly dev: IommuDevice, readonly igroup: IommufdGroup) {
    super();
  }

  /** Attached to its group's HWPT. */
  get attached(): boolean { return this.igroup.devices.includes(this); }

  /** The wasm domain device DMA is translated through now; 0 = blocked. */
  get domainHandle(): number {
    const h = this.igroup.hwpt;
    return h && this.igroup.devices.length > 0 ? h.domain.handle : 0;
  }

  /** The HWPT id the device is attached to, or 0. */
  get ptId(): number { return this.attached ? this.igroup.hwpt!.id : 0; }

  /** iommufd_device_attach of the RID (pasid 0) or a PASID: the resulting HWPT id, or -errno. */
  attach(ptId: number, pasid = 0): number {
    if (pasid !== 0) return this.changePt(ptId, false, pasid);
    if (this.attached) return -errno.EBUSY;
    return this.changePt(ptId, false);
  }

  /** iommufd_device_replace: moves the whole group's RID (or PASID) to another HWPT or IOAS. */
  replace(ptId: number, pasid = 0): number {
    if (pasid !== 0) return this.changePt(ptId, true, pasid);
    if (!this.attached) return -errno.EINVAL;
    return this.changePt(ptId, true);
  }

  /** The HWPT the device is attached to at `pasid` (0: the RID), or null. */
  hwptAt(pasid: number): Hwpt | null {
    if (pasid === 0) return this.attached ? this.igroup.hwpt : null;
    const at = this.igroup.pasids.get(pasid);
    return at && at.devices.includes(this) ? at.hwpt : null;
  }

  /** The handle of the group's attachment at `pasid` (iommu_attach_handle_get), or null. */
  handleAt(pasid: number): AttachHandle | null {
    return pasid === 0 ? this.igroup.handle : this.igroup.pasids.get(pasid)?.handle ?? null;
  }

  /** iommufd_device_detach: back to the blocking domain (a no-op when not attached). */
  detach(pasid = 0): void {
    if (pasid !== 0) { this.detachPasid(pasid); return; }
    if (!this.attached) return;
    const g = this.igroup;
    const hwpt = g.hwpt!;
    g.devices.splice(g.devices.indexOf(this), 1);
    // Blocked from now on: no DMA of this device reaches the domain after detach returns.
    this.dev.publishDomain?.(0);
    synchronizeDma(this.ctx.kcore, "detach");
    hwpt.ioas.iopt.removeReserved(this);
    if (g.devices.length === 0) {
      // The blocking domain: the device leaves its iopf queue, then the faults that came
      // through this attachment are answered (iommufd_hwpt_detach_device).
      this.dev.iopfAttach?.(false, hwpt.fault !== null);
      noteMockAttach(this, null);
      hwpt.fault?.autoRespond(g.handle!);
      g.hwpt = null;
      g.handle = null;
    }
    this.users--;
    hwpt.put();
  }

  private changePt(ptId: number, replace: boolean, pasid = 0): number {
    const obj = this.ctx.getObject(ptId);
    if (typeof obj === "number") return obj;
    if (obj instanceof HwptPaging || obj instanceof HwptNested) {
      const rc = this.doAttach(obj, replace, pasid);
      return rc < 0 ? rc : obj.id;
    }
    if (obj instanceof Ioas) return this.autoDomain(obj, replace, pasid);
    return -errno.EINVAL;
  }

  /** iommufd_hw_pagetable_attach at `pasid` (0: the RID), for an immediate-attach HWPT. */
  attachHwptAt(hwpt: Hwpt, pasid: number): number { return this.doAttach(hwpt, false, pasid); }

  private doAttach(hwpt: Hwpt, replace: boolean, pasid: number): number {
    if (pasid !== 0) return replace ? this.replacePasidHwpt(hwpt, pasid) : this.attachPasidHwpt(hwpt, pasid);
    return replace ? this.replaceHwpt(hwpt) : this.attachHwpt(hwpt);
  }

  /**
   * iommufd_hwpt_pasid_compat for a PASID: the HWPT must have been made with
   * IOMMU_HWPT_ALLOC_PASID, and so must the RID's if it is attached (EINVAL).
   */
  private pasidCompat(hwpt: Hwpt): number {
    if (!hwpt.pasidCompat) return -errno.EINVAL;
    const rid = this.igroup.devices.length > 0 ? this.igroup.hwpt : null;
    return rid && !rid.pasidCompat ? -errno.EINVAL : 0;
  }

  /**
   * The IOMMU core's part of a PASID attach or replace (iommu_attach_device_pasid,
   * iommu_replace_device_pasid): the domain of the device's IOMMU (EINVAL), a PASID below the
   * device's max_pasids, then the driver's set_dev_pasid. A device without PASID support
   * (max_pasids 0) is skipped, as the core skips such group members.
   */
  private setDevPasid(hwpt: Hwpt | null, old: Hwpt | null, pasid: number, attach: boolean): number {
    if (hwpt && hwpt.domain.format !== this.dev.caps.format) return -errno.EINVAL;
    const max = this.dev.maxPasids ?? 0;
    if (max === 0) return 0;
    if (attach && pasid >= max) return -errno.EINVAL;
    return this.dev.setDevPasid?.(pasid, hwpt ? hwpt.fault !== null : null, old ? old.fault !== null : false) ?? 0;
  }

  /** iommufd_hw_pagetable_attach at a PASID: no reserved regions, the group attaches once. */
  private attachPasidHwpt(hwpt: Hwpt, pasid: number): number {
    const g = this.igroup;
    let at = g.pasids.get(pasid);
    if (at?.devices.includes(this)) return -errno.EBUSY;
    if (at && at.hwpt !== hwpt) return -errno.EINVAL;
    if (!at) {
      // (the iommufd_attach and the handle are allocated around the compatibility check)
      if (this.ctx.shouldFail()) return -errno.ENOMEM;
      let rc = this.pasidCompat(hwpt);
      if (rc < 0) return rc;
      if (this.ctx.shouldFail()) return -errno.ENOMEM;
      rc = this.setDevPasid(hwpt, null, pasid, true);
      if (rc < 0) return rc;
      at = { hwpt, devices: [], handle: new AttachHandle(this, hwpt, pasid) };
      g.pasids.set(pasid, at);
    }
    at.devices.push(this);
    hwpt.users++;
    this.users++;
    return 0;
  }

  /** iommufd_device_do_replace at a PASID: it must be attached (EINVAL); failing changes nothing. */
  private replacePasidHwpt(hwpt: Hwpt, pasid: number): number {
    const at = this.igroup.pasids.get(pasid);
    if (!at || !at.devices.includes(this)) return -errno.EINVAL;
    const old = at.hwpt;
    if (old === hwpt) return 0;
    let rc = this.pasidCompat(hwpt);
    if (rc < 0) return rc;
    if (this.ctx.shouldFail()) return -errno.ENOMEM;
    rc = this.setDevPasid(hwpt, old, pasid, false);
    if (rc < 0) return rc;
    const oldHandle = at.handle;
    at.hwpt = hwpt;
    at.handle = new AttachHandle(this, hwpt, pasid);
    // The old attachment's faults, from the old HWPT's queue (see replaceHwpt).
    old.fault?.autoRespond(oldHandle);
    hwpt.users += at.devices.length;
    old.users -= at.devices.length - 1;
    old.put();
    return 0;
  }

  /** iommufd_hw_pagetable_detach at a PASID: the last device blocks it, its faults are answered. */
  private detachPasid(pasid: number): void {
    const g = this.igroup;
    const at = g.pasids.get(pasid);
    if (!at || !at.devices.includes(this)) return;
    at.devices.splice(at.devices.indexOf(this), 1);
    if (at.devices.length === 0) {
      this.setDevPasid(null, at.hwpt, pasid, false);
      at.hwpt.fault?.autoRespond(at.handle);
      g.pasids.delete(pasid);
    }
    this.users--;
    at.hwpt.put();
  }

  /**
   * Attaching to an IOAS: an existing automatic HWPT of it that suits the device (one that
   * answers EINVAL is incompatible and skipped), else a new automatic HWPT.
   */
  private autoDomain(ioas: Ioas, replace: boolean, pasid = 0): number {
    for (const h of [...ioas.hwpts]) {
      if (!h.autoDomain) continue;
      const rc = this.doAttach(h, replace, pasid);
      if (rc === -errno.EINVAL) continue;
      return rc < 0 ? rc : h.id;
    }
    if (!replace) {
      const h = hwptPagingAlloc(this.ctx, ioas, this, 0, true, true, pasid);
      return typeof h === "number" ? h : h.id;
    }
    // A replace fills the new domain first, then moves the group onto it.
    const h = hwptPagingAlloc(this.ctx, ioas, this, 0, false, true);
    if (typeof h === "number") return h;
    const rc = this.doAttach(h, true, pasid);
    if (rc < 0) { this.ctx.objects.remove(h.id); return rc; }
    return h.id;
  }

  /**
   * find_fault_handler: the handle a page request of this device came through. One with a
   * PASID goes to that PASID's attachment, or (the mock IOMMU keeps its PASID table in user
   * space) to a nested domain on the RID; one without goes to the RID's.
   */
  faultHandle(f: IopfFault): AttachHandle | null {
    const h = this.igroup.handle;
    if (!(f.flags & IOMMU_PGFAULT_FLAGS_PASID_VALID)) return h;
    return this.igroup.pasids.get(f.pasid)?.handle ?? (h && h.hwpt instanceof HwptNested ? h : null);
  }

  /** Whether `hwpt`'s domain can translate for this device (same IOMMU, dirty support). */
  compatible(hwpt: Hwpt): number {
    if (hwpt.domain.format !== this.dev.caps.format) return -errno.EINVAL;
    if (hwpt.dirtyTracking && !this.dev.caps.dirtyTracking) return -errno.EINVAL;
    // mock_domain_nop_attach: a nested domain of a vIOMMU needs the device's vDEVICE there.
    if (hwpt instanceof HwptNested && hwpt.viommu) {
      const rc = hwpt.viommu.getVdevId(this, { vdevId: 0n });
      if (rc < 0) return rc;
    }
    return 0;
  }

  /** Inserts the device's reserved regions into `ioas` (EADDRINUSE), all or nothing. */
  enforceReserved(ioasTarget: Ioas): number {
    for (const r of this.dev.reservedRegions) {
      if (r.type === "direct-relaxable") continue;
      const rc = ioasTarget.iopt.reserveIova(r.start, r.last, this);
      if (rc < 0) { ioasTarget.iopt.removeReserved(this); return rc; }
    }
    return 0;
  }

  /**
   * iommufd_hw_pagetable_attach. A nested HWPT's reserved regions go to its parent's IOAS, and
   * its `domain` is the parent's (see HwptNested).
   */
  attachHwpt(hwpt: Hwpt): number {
    const g = this.igroup;
    if (g.hwpt && g.hwpt !== hwpt) return -errno.EINVAL;
    let rc = this.compatible(hwpt);
    if (rc < 0) return rc;
    rc = this.enforceReserved(hwpt.ioas);
    if (rc < 0) return rc;
    // iommufd_hwpt_pasid_compat for the RID: with a PASID attached, only a PASID-compatible HWPT.
    if (g.devices.length === 0 && !hwpt.pasidCompat && g.pasids.size > 0) {
      hwpt.ioas.iopt.removeReserved(this);
      return -errno.EINVAL;
    }
    // (the attach handle's allocation)
    if (g.devices.length === 0 && this.ctx.shouldFail()) {
      hwpt.ioas.iopt.removeReserved(this);
      return -errno.ENOMEM;
    }
    if (g.devices.length === 0) {
      // The first device attaches the group (iommufd_hwpt_attach_device).
      this.dev.iopfAttach?.(hwpt.fault !== null, false);
      noteMockAttach(this, hwpt);
      g.handle = new AttachHandle(this, hwpt, 0);
    }
    g.hwpt = hwpt;
    g.devices.push(this);
    hwpt.users++;
    this.users++;
    this.dev.publishDomain?.(hwpt.domain.handle);
    return 0;
  }

  /** iommufd_device_do_replace: the whole group moves; the old HWPT loses its users. */
  replaceHwpt(hwpt: Hwpt): number {
    const g = this.igroup;
    const old = g.hwpt!;
    if (old === hwpt) return 0;
    for (const d of g.devices) {
      const rc = d.compatible(hwpt);
      if (rc < 0) return rc;
    }
    const moveResv = old.ioas !== hwpt.ioas;
    if (moveResv) {
      const done: IommufdDevice[] = [];
      for (const d of g.devices) {
        const rc = d.enforceReserved(hwpt.ioas);
        if (rc < 0) { for (const u of done) hwpt.ioas.iopt.removeReserved(u); return rc; }
        done.push(d);
      }
    }
    // (the pasid check, then the new handle's allocation)
    const rc = !hwpt.pasidCompat && g.pasids.size > 0 ? -errno.EINVAL : this.ctx.shouldFail() ? -errno.ENOMEM : 0;
    if (rc < 0) {
      if (moveResv) for (const d of g.devices) hwpt.ioas.iopt.removeReserved(d);
      return rc;
    }
    if (moveResv) for (const d of g.devices) old.ioas.iopt.removeReserved(d);
    g.hwpt = hwpt;
    for (const d of g.devices) {
      d.dev.iopfAttach?.(hwpt.fault !== null, old.fault !== null);
      noteMockAttach(d, hwpt);
      d.dev.publishDomain?.(hwpt.domain.handle);
    }
    // The old attachment's faults are answered from the old HWPT's queue (where they were
    // queued; mainline's iommufd_hwpt_replace_device looks in the new one, a regression a
    // fix for stable corrects, since the old handle is freed right after).
    const oldHandle = g.handle!;
    g.handle = new AttachHandle(this, hwpt, 0);
    old.fault?.autoRespond(oldHandle);
    // Nothing translates through the old domain once replace returns.
    synchronizeDma(this.ctx.kcore, "replace");
    hwpt.users += g.devices.length;
    old.users -= g.devices.length - 1;
    old.put();
    return 0;
  }

  /** Unbind: detach, give back the claim and the context reference. */
  unbind(): void {
    if (this.unbound) return;
    this.unbound = true;
    // iommufd_device_pre_destroy: the vDEVICE goes first, its id tombstoned.
    this.vdev?.tombstone();
    // (vfio detaches its PASIDs before unbinding; a selftest device may still have some)
    for (const [pasid, at] of [...this.igroup.pasids]) if (at.devices.includes(this)) this.detachPasid(pasid);
    this.detach();
    // The driver's reference; the object then leaves the table like a DESTROY would.
    this.users--;
    this.ctx.objects.remove(this.id);
  }

  destroy(): void {
    const g = this.igroup;
    if (--g.bound === 0) this.ctx.groups.delete(g.id);
    this.dev.releaseDmaOwner();
    if (!this.dev.selftest) this.ctx.kcore.fput(this.ctx.file);
  }
}

/**
 * iommufd_device_bind: cache coherency (EINVAL), an iommu group (ENODEV), isolated MSI unless
 * unsafe interrupts are allowed (EPERM), then the device-level DMA claim with the context as
 * owner (EPERM / EBUSY). The DEVICE object's id is what userspace sees as devid.
 */
export function iommufdDeviceBind(ctx: IommufdCtx, dev: IommuDevice): IommufdDevice | number {
  if (!dev.caps.coherent) return -errno.EINVAL;
  if (dev.groupId === null) return -errno.ENODEV;
  if (!dev.caps.msiIsolated && !ctx.driver.allowUnsafeInterrupts) return -errno.EPERM;
  let rc = dev.claimDmaOwner(ctx);
  if (rc < 0) return rc;
  let g = ctx.groups.get(dev.groupId);
  const fresh = !g;
  if (!g) g = new IommufdGroup(dev.groupId);
  const idev = new IommufdDevice(ctx, dev, g);
  rc = ctx.objectAlloc(idev);
  if (rc < 0) {
    dev.releaseDmaOwner();
    return rc;
  }
  if (fresh) ctx.groups.set(g.id, g);
  g.bound++;
  // The driver holds the device until unbind; the device holds the context's file.
  idev.users++;
  if (!dev.selftest) ctx.file.refs++;
  return idev;
}

export function iommufdDeviceUnbind(idev: IommufdDevice): void {
  idev.unbind();
}
