// HWPT and hardware-info ioctls (drivers/iommu/iommufd/hw_pagetable.c, device.c): paging HWPTs
// over an IOAS, nested HWPTs over a NEST_PARENT paging HWPT (the selftest's mock IOMMU only),
// user cache invalidation of nested HWPTs, dirty tracking and GET_HW_INFO, with the argument
// checks in the kernel's order.

import { errno } from "../uapi/errno.js";
import {
  IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HW_INFO_FLAG_INPUT_TYPE, IOMMU_HW_INFO_SELFTEST_REGVAL,
  IOMMU_HW_INFO_TYPE_DEFAULT, IOMMU_HW_INFO_TYPE_SELFTEST, IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID, IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, IOMMU_TEST_INVALIDATE_FLAG_ALL, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
  MOCK_NESTED_DOMAIN_IOTLB_NUM, iommu_hw_info, iommu_hwpt_alloc, iommu_hwpt_get_dirty_bitmap,
  iommu_hwpt_invalidate, iommu_hwpt_invalidate_selftest, iommu_hwpt_selftest,
  iommu_hwpt_set_dirty_tracking, iommu_test_hw_info,
} from "../uapi/iommufd.js";
import { copyUserData, type IommufdCtx, type UCmd } from "./iommufd_private.js";
import { setField } from "../uapi/struct.js";
import type { IommuDomain } from "../iommu/domain.js";
import type { IommufdDevice } from "./device.js";
import type { IommufdFault } from "./eventq.js";
import { Ioas } from "./ioas.js";
import { IommufdObject } from "./object.js";
import { Viommu, viommuCacheInvalidate } from "./viommu.js";

/** struct iommufd_hwpt_paging: a domain over an IOAS. */
export class HwptPaging extends IommufdObject {
  readonly type = "hwpt_paging" as const;
  /** Created by attaching a device to an IOAS: destroyed when its last device leaves. */
  autoDomain = false;
  nestParent = false;
  enforceCacheCoherency = true;
  dirtyTracking = false;
  /** The FAULT object its IO page faults go to (IOMMU_HWPT_FAULT_ID_VALID), holding a user. */
  fault: IommufdFault | null = null;
  /** Made with IOMMU_HWPT_ALLOC_PASID: may be attached to PASIDs, and beside them. */
  pasidCompat = false;
  /** Filled into the IOAS (iopt_table_add_domain done). */
  private inIoas = false;

  constructor(readonly ctx: IommufdCtx, readonly ioas: Ioas, readonly domain: IommuDomain) {
    super();
  }

  /** iopt_table_add_domain and the IOAS's hwpt list. */
  addToIoas(): number {
    const rc = this.ioas.iopt.addDomain(this.domain);
    if (rc < 0) return rc;
    this.inIoas = true;
    this.ioas.hwpts.push(this);
    return 0;
  }

  /**
   * Drops a device's reference (iommufd_hw_pagetable_put): an automatic HWPT goes away with
   * its last device.
   */
  put(): void {
    this.users--;
    if (this.autoDomain && this.users === 1) this.ctx.objects.remove(this.id);
  }

  destroy(): void {
    if (this.inIoas) {
      this.ioas.iopt.removeDomain(this.domain);
      this.ioas.hwpts.splice(this.ioas.hwpts.indexOf(this), 1);
      this.inIoas = false;
    }
    this.ioas.users--;
    if (this.fault) this.fault.users--;
    this.domain.free();
  }
}

/**
 * iommufd_hwpt_paging_alloc: a new domain for `idev`'s IOMMU over `ioas`, filled with every
 * area. With `immediateAttach` (an automatic HWPT for an attach) the device's group is attached
 * first, at `pasid` (0: the RID). Published on success. The flags: NEST_PARENT, DIRTY_TRACKING
 * (on a dirty-capable IOMMU), PASID, and FAULT_ID_VALID except on a nest parent (EOPNOTSUPP).
 */
export function hwptPagingAlloc(ctx: IommufdCtx, ioas: Ioas, idev: IommufdDevice, flags: number,
  immediateAttach: boolean, auto = immediateAttach, pasid = 0): HwptPaging | number {
  const valid = IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID;
  if (flags & ~valid) return -errno.EOPNOTSUPP;
  const dirty = (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0;
  if (dirty && !idev.dev.caps.dirtyTracking) return -errno.EOPNOTSUPP;
  if ((flags & IOMMU_HWPT_FAULT_ID_VALID) && (flags & IOMMU_HWPT_ALLOC_NEST_PARENT)) return -errno.EOPNOTSUPP;
  const domain = ctx.driver.domainAlloc(idev.dev.caps, { dirtyTracking: dirty, hugeIova: idev.dev.caps.hugeIova ?? false });
  if (typeof domain === "number") return domain;
  const hwpt = new HwptPaging(ctx, ioas, domain);
  hwpt.nestParent = (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0;
  hwpt.pasidCompat = (flags & IOMMU_HWPT_ALLOC_PASID) !== 0;
  hwpt.dirtyTracking = dirty;
  hwpt.enforceCacheCoherency = idev.dev.caps.coherent;
  let rc = ctx.objectAlloc(hwpt, false);
  if (rc < 0) { domain.free(); return rc; }
  ioas.users++;
  if (immediateAttach) {
    rc = idev.attachHwptAt(hwpt, pasid);
    if (rc < 0) { ctx.objectAbort(hwpt); return rc; }
  }
  rc = hwpt.addToIoas();
  if (rc < 0) {
    // Undo the attach; the put must not try to destroy an unpublished object.
    if (immediateAttach) idev.detach(pasid);
    ctx.objectAbort(hwpt);
    return rc;
  }
  hwpt.autoDomain = auto;
  ctx.objectFinalize(hwpt);
  return hwpt;
}

/**
 * struct iommufd_hwpt_nested over a paging parent (IOMMU_DOMAIN_NESTED). Only the selftest's
 * mock IOMMU can make one: its nested domain is nothing but a 4-slot "IOTLB" the user
 * invalidates; it has no page table of its own. A device attached to it therefore translates
 * its DMA through the parent's domain (the stage-2 a real nested domain would sit on, with the
 * stage-1 being identity), which is what `domain` gives the attach code.
 */
export class HwptNested extends IommufdObject {
  readonly type = "hwpt_nested" as const;
  readonly autoDomain = false;
  /** mock_iommu_domain_nested.iotlb. */
  readonly iotlb = new Uint32Array(MOCK_NESTED_DOMAIN_IOTLB_NUM);
  /** The FAULT object its IO page faults go to (IOMMU_HWPT_FAULT_ID_VALID), holding a user. */
  fault: IommufdFault | null = null;
  /** Made with IOMMU_HWPT_ALLOC_PASID. */
  pasidCompat = false;

  /** `viommu`: made on a vIOMMU (holding it instead of the parent, which is the vIOMMU's). */
  constructor(readonly ctx: IommufdCtx, readonly parent: HwptPaging, readonly viommu: Viommu | null = null) {
    super();
  }

  get ioas(): Ioas { return this.parent.ioas; }
  /** What DMA of an attached device goes through: the parent's domain (see above). */
  get domain(): IommuDomain { return this.parent.domain; }
  get dirtyTracking(): boolean { return false; }

  /** A device's reference goes; a nested HWPT is never automatic, so it stays. */
  put(): void { this.users--; }

  destroy(): void {
    // Drops the references on the parent (or vIOMMU) and the fault queue taken at allocation.
    if (this.viommu) this.viommu.users--;
    else this.parent.users--;
    if (this.fault) this.fault.users--;
  }
}

/** Either kind of HWPT a device can be attached to. */
export type Hwpt = HwptPaging | HwptNested;

/**
 * iommufd_hwpt_nested_alloc + the mock driver's domain_alloc_nested, in the kernel's order:
 * flags (only FAULT_ID_VALID passes the core), user data present and a nesting-capable IOMMU
 * (else EOPNOTSUPP); a manual NEST_PARENT parent of the same IOMMU (else EINVAL); then the
 * driver: flags 0, a mock paging parent (EINVAL), data type SELFTEST (EOPNOTSUPP), the copy.
 */
function hwptNestedAlloc(ctx: IommufdCtx, ucmd: UCmd, parent: HwptPaging, idev: IommufdDevice,
  flags: number, dataType: number, dataLen: number, dataUptr: number): HwptNested | number {
  const mock = idev.dev.caps.format === "mock";
  if ((flags & ~(IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID)) || dataLen === 0 || !mock) return -errno.EOPNOTSUPP;
  if (parent.autoDomain || !parent.nestParent || parent.domain.format !== idev.dev.caps.format) return -errno.EINVAL;
  const nested = new HwptNested(ctx, parent);
  nested.pasidCompat = (flags & IOMMU_HWPT_ALLOC_PASID) !== 0;
  const rc = ctx.objectAlloc(nested, false);
  if (rc < 0) return rc;
  parent.users++;
  const fail = (e: number): number => { ctx.objectAbort(nested); return e; };
  // The driver (its own flags check is the core's, FAULT_ID_VALID being masked off for it).
  if (parent.domain.format !== "mock") return fail(-errno.EINVAL);
  if (dataType !== IOMMU_HWPT_DATA_SELFTEST) return fail(-errno.EOPNOTSUPP);
  const data = copyUserData(ucmd, dataType, dataUptr, dataLen, IOMMU_HWPT_DATA_SELFTEST, iommu_hwpt_selftest);
  if (typeof data === "number") return fail(data);
  if (ctx.shouldFail()) return fail(-errno.ENOMEM);
  nested.iotlb.fill(new DataView(data.buffer).getUint32(iommu_hwpt_selftest.fields.iotlb.off, true));
  return nested;
}

/**
 * iommufd_viommu_alloc_hwpt_nested + mock_viommu_alloc_domain_nested: flags (FAULT_ID_VALID
 * and PASID), user data present, a vIOMMU with nested-domain support (EOPNOTSUPP); the object
 * (ENOMEM) holding the vIOMMU; then the mock's nested domain over the vIOMMU's parent: data
 * type SELFTEST (EOPNOTSUPP), the copy, the allocation.
 */
function viommuHwptNestedAlloc(ctx: IommufdCtx, ucmd: UCmd, viommu: Viommu, flags: number, dataType: number,
  dataLen: number, dataUptr: number): HwptNested | number {
  if ((flags & ~(IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID)) || dataLen === 0) return -errno.EOPNOTSUPP;
  const nested = new HwptNested(ctx, viommu.hwpt, viommu);
  nested.pasidCompat = (flags & IOMMU_HWPT_ALLOC_PASID) !== 0;
  const rc = ctx.objectAlloc(nested, false);
  if (rc < 0) return rc;
  viommu.users++;
  const fail = (e: number): number => { ctx.objectAbort(nested); return e; };
  if (dataType !== IOMMU_HWPT_DATA_SELFTEST) return fail(-errno.EOPNOTSUPP);
  const data = copyUserData(ucmd, dataType, dataUptr, dataLen, IOMMU_HWPT_DATA_SELFTEST, iommu_hwpt_selftest);
  if (typeof data === "number") return fail(data);
  if (ctx.shouldFail()) return fail(-errno.ENOMEM);
  nested.iotlb.fill(new DataView(data.buffer).getUint32(iommu_hwpt_selftest.fields.iotlb.off, true));
  return nested;
}

export function hwptAlloc(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_hwpt_alloc);
  if (c.u(c.f.__reserved)) return -errno.EOPNOTSUPP;
  const noData = c.u(c.f.data_type) === IOMMU_HWPT_DATA_NONE;
  if (noData !== (c.u(c.f.data_len) === 0)) return -errno.EINVAL;
  const idev = ctx.getObject(c.u(c.f.dev_id), "device") as IommufdDevice | number;
  if (typeof idev === "number") return idev;
  // A missing pt_id is EINVAL here, not ENOENT.
  const pt = ctx.getObject(c.u(c.f.pt_id));
  if (typeof pt === "number") return -errno.EINVAL;
  let hwpt: Hwpt | number;
  const wantFault = (c.u(c.f.flags) & IOMMU_HWPT_FAULT_ID_VALID) !== 0;
  // The FAULT object, looked up once the HWPT exists (ENOENT then undoes it).
  const fault = (): IommufdFault | number => ctx.getObject(c.u(c.f.fault_id), "fault") as IommufdFault | number;
  if (pt instanceof Ioas) {
    if (!noData) return -errno.EOPNOTSUPP;
    hwpt = hwptPagingAlloc(ctx, pt, idev, c.u(c.f.flags), false);
    if (typeof hwpt !== "number" && wantFault) {
      const f = fault();
      // (published by hwptPagingAlloc already: nothing else ran in between, so it goes as
      // if it had been aborted)
      if (typeof f === "number") { ctx.objects.remove(hwpt.id); return f; }
      hwpt.fault = f;
      f.users++;
    }
  } else if (pt instanceof HwptPaging || pt instanceof Viommu) {
    const args = [c.u(c.f.flags), c.u(c.f.data_type), c.u(c.f.data_len), Number(c.u64(c.f.data_uptr))] as const;
    // A vIOMMU serves the devices of its own IOMMU instance only.
    if (pt instanceof Viommu && pt.iommuFormat !== idev.dev.caps.format) return -errno.EINVAL;
    hwpt = pt instanceof Viommu ? viommuHwptNestedAlloc(ctx, ucmd, pt, ...args) : hwptNestedAlloc(ctx, ucmd, pt, idev, ...args);
    if (typeof hwpt !== "number") {
      if (wantFault) {
        const f = fault();
        if (typeof f === "number") { ctx.objectAbort(hwpt); return f; }
        hwpt.fault = f;
        f.users++;
      }
      ctx.objectFinalize(hwpt);
    }
  } else {
    return -errno.EINVAL;
  }
  if (typeof hwpt === "number") return hwpt;
  c.set(c.f.out_hwpt_id, hwpt.id);
  const rc = ucmd.respond();
  if (rc < 0) { ctx.objects.remove(hwpt.id); return rc; }
  return 0;
}

export function getHwInfo(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_hw_info);
  const flags = c.u(c.f.flags);
  if ((flags & ~IOMMU_HW_INFO_FLAG_INPUT_TYPE) || c.u(c.f["__reserved[0]"]) || c.u(c.f["__reserved[1]"]) || c.u(c.f["__reserved[2]"])) {
    return -errno.EOPNOTSUPP;
  }
  const idev = ctx.getObject(c.u(c.f.dev_id), "device") as IommufdDevice | number;
  if (typeof idev === "number") return idev;
  // The mock IOMMU reports the selftest's registers; the x86 model has no driver-specific data.
  const mock = idev.dev.caps.format === "mock";
  const type = mock ? IOMMU_HW_INFO_TYPE_SELFTEST : IOMMU_HW_INFO_TYPE_DEFAULT;
  const inType = c.u(c.f.in_data_type);
  if ((flags & IOMMU_HW_INFO_FLAG_INPUT_TYPE) && inType !== type && inType !== IOMMU_HW_INFO_TYPE_DEFAULT) return -errno.EOPNOTSUPP;
  const data = new Uint8Array(mock ? iommu_test_hw_info.size : 0);
  if (mock) setField(new DataView(data.buffer), iommu_test_hw_info.fields.test_reg, IOMMU_HW_INFO_SELFTEST_REGVAL);
  const userLen = c.u(c.f.data_len);
  if (userLen > 0) {
    // Copy what fits; zero the rest of the user's buffer.
    const out = new Uint8Array(userLen);
    out.set(data.subarray(0, Math.min(userLen, data.length)));
    const rc = ucmd.copyToUser(Number(c.u64(c.f.data_uptr)), out);
    if (rc < 0) return rc;
  }
  c.set(c.f.data_len, data.length);
  c.set(c.f.out_data_type, type);
  // ilog2(max_pasids) for a device with PASIDs (no emulated PCI device has the capability, so
  // the PCI PASID EXEC/PRIV capability bits never show).
  const maxPasids = idev.dev.maxPasids ?? 0;
  c.set(c.f.out_max_pasid_log2, maxPasids ? 31 - Math.clz32(maxPasids) : 0);
  c.set(c.f.out_capabilities, idev.dev.caps.dirtyTracking ? IOMMU_HW_CAP_DIRTY_TRACKING : 0);
  return ucmd.respond();
}

/**
 * The checks the two dirty-tracking ioctls share, in the kernel's order: unknown flags or a
 * reserved field (EOPNOTSUPP), the paging HWPT (ENOENT), one allocated without dirty tracking
 * (EOPNOTSUPP).
 */
function dirtyHwpt(ctx: IommufdCtx, flags: number, knownFlags: number, reserved: number, hwptId: number): HwptPaging | number {
  if ((flags & ~knownFlags) || reserved) return -errno.EOPNOTSUPP;
  const hwpt = ctx.getObject(hwptId, "hwpt_paging") as HwptPaging | number;
  if (typeof hwpt === "number") return hwpt;
  return hwpt.dirtyTracking ? hwpt : -errno.EOPNOTSUPP;
}

export function hwptSetDirtyTracking(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_hwpt_set_dirty_tracking);
  const flags = c.u(c.f.flags);
  const hwpt = dirtyHwpt(ctx, flags, IOMMU_HWPT_DIRTY_TRACKING_ENABLE, c.u(c.f.__reserved), c.u(c.f.hwpt_id));
  if (typeof hwpt === "number") return hwpt;
  return hwpt.domain.setDirtyTracking((flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0);
}

export function hwptGetDirtyBitmap(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_hwpt_get_dirty_bitmap);
  const flags = c.u(c.f.flags);
  const hwpt = dirtyHwpt(ctx, flags, IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, c.u(c.f.__reserved), c.u(c.f.hwpt_id));
  if (typeof hwpt === "number") return hwpt;
  const iova = c.u64(c.f.iova);
  const length = c.u64(c.f.length);
  const pageSize = c.u64(c.f.page_size);
  const last = iova + length - 1n;
  if (length === 0n || last >= 1n << 64n) return -errno.EOVERFLOW;
  const align = hwpt.ioas.iopt.iovaAlignment;
  if (pageSize === 0n || (iova & (align - 1n)) || ((last + 1n) & (align - 1n)) ||
    (iova & (pageSize - 1n)) || ((last + 1n) & (pageSize - 1n))) return -errno.EINVAL;
  const nbits = Number(length / pageSize);
  const bitmap = new Uint8Array(Math.ceil(nbits / 64) * 8);
  const rc = hwpt.domain.readAndClearDirty(iova, length, pageSize, (flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) !== 0,
    (i) => { bitmap[i >> 3] |= 1 << (i & 7); });
  if (rc < 0) return rc;
  // Only the bits of the range are ours to set: OR them into what the user has.
  const at = Number(c.u64(c.f.data));
  const cur = ucmd.copyFromUser(at, bitmap.length);
  if (typeof cur === "number") return cur;
  for (let i = 0; i < bitmap.length; i++) cur[i] |= bitmap[i];
  return ucmd.copyToUser(at, cur);
}

/**
 * HWPT_INVALIDATE reports how many entries it handled even when it fails: entry_num is
 * written back on every path after the reserved-field check.
 */
export function hwptInvalidate(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_hwpt_invalidate);
  if (c.u(c.f.__reserved)) return -errno.EOPNOTSUPP;
  let rc: number;
  let done = 0;
  if (c.u(c.f.entry_num) && (!c.u64(c.f.data_uptr) || !c.u(c.f.entry_len))) {
    rc = -errno.EINVAL;
  } else {
    const obj = ctx.getObject(c.u(c.f.hwpt_id));
    if (typeof obj === "number") rc = obj;
    else if (obj instanceof HwptNested) {
      const r = mockCacheInvalidateUser(ucmd, obj, c.u(c.f.data_type), Number(c.u64(c.f.data_uptr)), c.u(c.f.entry_len), c.u(c.f.entry_num));
      rc = r.rc;
      done = r.done;
    } else if (obj instanceof Viommu) {
      const r = viommuCacheInvalidate(ucmd, obj, c.u(c.f.data_type), Number(c.u64(c.f.data_uptr)), c.u(c.f.entry_len), c.u(c.f.entry_num));
      rc = r.rc;
      done = r.done;
    } else {
      // Only nested HWPTs and vIOMMUs take user invalidations.
      rc = -errno.EINVAL;
    }
  }
  c.set(c.f.entry_num, done);
  if (ucmd.respond() < 0) return -errno.EFAULT;
  return rc;
}

/**
 * mock_domain_cache_invalidate_user: the array type must be the selftest's (EINVAL, checked
 * even for an empty array); each entry is read with iommu_copy_struct_from_user_array
 * semantics (entry_len exactly the struct, as its minimum is its whole size), unknown flags
 * are EOPNOTSUPP, an iotlb_id past the last slot EINVAL. Entries are handled in order up to the
 * first bad one; `done` counts the handled ones.
 */
function mockCacheInvalidateUser(ucmd: UCmd, hwpt: HwptNested, type: number, uptr: number, entryLen: number,
  entryNum: number): { rc: number; done: number } {
  if (type !== IOMMU_HWPT_INVALIDATE_DATA_SELFTEST) return { rc: -errno.EINVAL, done: 0 };
  const L = iommu_hwpt_invalidate_selftest;
  let done = 0;
  for (let i = 0; i < entryNum; i++) {
    const e = copyUserData(ucmd, type, uptr + entryLen * i, entryLen, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, L);
    if (typeof e === "number") return { rc: e, done };
    const v = new DataView(e.buffer);
    const flags = v.getUint32(L.fields.flags.off, true);
    const id = v.getUint32(L.fields.iotlb_id.off, true);
    if (flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) return { rc: -errno.EOPNOTSUPP, done };
    if (id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX) return { rc: -errno.EINVAL, done };
    if (flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) hwpt.iotlb.fill(0);
    else hwpt.iotlb[id] = 0;
    done++;
  }
  return { rc: 0, done };
}
