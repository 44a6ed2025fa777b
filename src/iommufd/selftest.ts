// IOMMU_TEST_CMD (drivers/iommu/iommufd/selftest.c): the test-only ioctl the kernel's selftests
// drive, available once `enableTestCmd` is called (a kernel built with CONFIG_IOMMUFD_TEST).
// Mock devices, their domains (paging and nested) and the checks the selftests make on them.

import { errno } from "../uapi/errno.js";
import { IOMMU_TEST_CMD } from "../uapi/ioctl.js";
import {
  IOMMU_TEST_OP_DMABUF_GET, IOMMU_TEST_OP_DMABUF_REVOKE, IOMMU_TEST_OP_MD_CHECK_DMABUF,
  IOMMU_TEST_OP_ADD_RESERVED, IOMMU_TEST_OP_MD_CHECK_MAP, IOMMU_TEST_OP_MD_CHECK_REFS,
  IOMMU_TEST_OP_MOCK_DOMAIN, IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
  IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, MOCK_FLAGS_DEVICE_HUGE_IOVA, MOCK_FLAGS_DEVICE_NO_DIRTY,
  IOMMU_TEST_OP_CREATE_ACCESS, IOMMU_TEST_OP_ACCESS_PAGES, IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
  IOMMU_TEST_OP_ACCESS_RW, IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
  MOCK_FLAGS_ACCESS_WRITE, MOCK_FLAGS_ACCESS_SYZ, MOCK_ACCESS_RW_WRITE, MOCK_ACCESS_RW_SLOW_PATH,
  IOMMU_TEST_OP_DIRTY, IOMMU_TEST_OP_MD_CHECK_IOTLB, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX, MOCK_PAGE_SIZE,
  IOMMU_TEST_OP_TRIGGER_IOPF, IOMMU_PGFAULT_FLAGS_LAST_PAGE, IOMMU_PGFAULT_FLAGS_PASID_VALID,
  IOMMUFD_PAGE_RESP_INVALID, MOCK_FLAGS_DEVICE_PASID, MOCK_PASID_WIDTH, IOMMU_TEST_PASID_RESERVED,
  IOMMU_TEST_OP_PASID_ATTACH, IOMMU_TEST_OP_PASID_REPLACE, IOMMU_TEST_OP_PASID_DETACH,
  IOMMU_TEST_OP_PASID_CHECK_HWPT, iommu_test_cmd, IOMMU_TEST_OP_DEV_CHECK_CACHE, IOMMU_TEST_DEV_CACHE_DEFAULT,
  MOCK_DEV_CACHE_NUM, IOMMU_TEST_OP_TRIGGER_VEVENT,
} from "../uapi/iommufd.js";
import { O_RDWR } from "../uapi/posix.js";
import type { File, FileOperations } from "../kernel/file.js";
import type { Process } from "../kernel/process.js";
import { accessCreate, accessDestroy, type IommufdAccess } from "./access.js";
import type { IommufdCtx, UCmd } from "./iommufd_private.js";
import type { IommuCaps, IommuDevice } from "../iommu/device.js";
import { iommufdDeviceBind, type IommufdDevice } from "./device.js";
import { reportDeviceFault, type IopfDevice, type IopfFault, type IopfGroup } from "./eventq.js";
import { HwptPaging, type HwptNested } from "./hw_pagetable.js";
import { lowestBit, PAGE, PAGE_SIZE } from "./iova.js";
import { testDmabufGet, testDmabufRevoke, testMdCheckDmabuf } from "./dmabuf.js";
import { IommufdObject } from "./object.js";
import { devCheckCache, triggerVevent, type Viommu } from "./viommu.js";
import type { Iommufd } from "./main.js";

/** The first mock group number (own namespace). */
const MOCK_GROUP_BASE = 0x40000000;
const MOCK_DEV_FLAGS = MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_HUGE_IOVA | MOCK_FLAGS_DEVICE_PASID;

/** A page response the mock IOMMU passed to its device (mock_domain_page_response). */
export interface MockPageResponse { device: string; pasid: number; grpid: number; code: number }

/** Each driver's log of mock page responses, oldest first (read by vfio-emu/testing). */
export const mockPageResponses = new WeakMap<Iommufd, MockPageResponse[]>();

/** A device on the selftest's mock bus: its own iommu group, the mock IOMMU. */
class MockDevice implements IommuDevice, IopfDevice {
  readonly groupId: number;
  readonly caps: IommuCaps;
  readonly reservedRegions = [];
  readonly selftest = true;
  private owner: object | null = null;
  /** mock_dev.iopf_refcount: attached fault-capable domains (RID and PASIDs). */
  private iopfRefcount = 0;
  readonly iopfPending = new Set<IopfGroup>();
  /** MOCK_FLAGS_DEVICE_PASID: 2^MOCK_PASID_WIDTH PASIDs, else none. */
  readonly maxPasids: number;
  /** mock_dev.cache: what a vIOMMU's cache invalidation clears (DEV_CHECK_CACHE reads it). */
  readonly devCache = new Uint32Array(MOCK_DEV_CACHE_NUM).fill(IOMMU_TEST_DEV_CACHE_DEFAULT);
  /** mock_dev.viommu / vdev_id: set by attaching to a vIOMMU's nested HWPT (TRIGGER_VEVENT). */
  viommu: Viommu | null = null;
  vdevId = 0n;
  /** mock_dev.pasid_1024_fake_error: armed by a set_dev_pasid at the reserved PASID. */
  private pasidFakeError = false;

  constructor(readonly id: number, flags: number, private readonly responses: MockPageResponse[]) {
    this.maxPasids = flags & MOCK_FLAGS_DEVICE_PASID ? 1 << MOCK_PASID_WIDTH : 0;
    this.groupId = MOCK_GROUP_BASE + id;
    this.caps = {
      format: "mock",
      dirtyTracking: (flags & MOCK_FLAGS_DEVICE_NO_DIRTY) === 0,
      coherent: true,
      msiIsolated: true,
      hugeIova: (flags & MOCK_FLAGS_DEVICE_HUGE_IOVA) !== 0,
    };
  }

  get name(): string { return `iommufd_mock${this.id}`; }

  claimDmaOwner(owner: object): number {
    if (this.owner && this.owner !== owner) return -errno.EPERM;
    this.owner = owner;
    return 0;
  }

  releaseDmaOwner(): void { this.owner = null; }

  get iopfEnabled(): boolean { return this.iopfRefcount > 0; }

  /** mock_dev_enable_iopf / mock_dev_disable_iopf around an attach. */
  iopfAttach(enable: boolean, disable: boolean): void {
    if (enable) this.iopfRefcount++;
    if (!disable || --this.iopfRefcount > 0) return;
    // iopf_queue_remove_device: every page request still waiting is answered INVALID.
    for (const g of [...this.iopfPending]) g.respond(IOMMUFD_PAGE_RESP_INVALID);
  }

  /**
   * mock_domain_set_dev_pasid_nop. At IOMMU_TEST_PASID_RESERVED every other non-blocking call
   * fails ENOMEM (the first arms it, the next fails and disarms, detaching disarms), so a
   * replace there fails and the core must keep the old domain.
   */
  setDevPasid(pasid: number, iopf: boolean | null, oldIopf: boolean): number {
    if (pasid === IOMMU_TEST_PASID_RESERVED) {
      const fail = iopf !== null && this.pasidFakeError;
      this.pasidFakeError = iopf !== null && !this.pasidFakeError;
      if (fail) return -errno.ENOMEM;
    }
    this.iopfAttach(iopf === true, oldIopf);
    return 0;
  }

  pageResponse(last: IopfFault, code: number): void {
    this.responses.push({ device: this.name, pasid: last.pasid, grpid: last.grpid, code });
  }
}

/** IOMMUFD_OBJ_SELFTEST: a mock device bound to the context; destroying it unbinds it. */
class SelftestObject extends IommufdObject {
  readonly type = "selftest" as const;
  idev: IommufdDevice | null = null;
  constructor(readonly mock: MockDevice, private readonly release: () => void) { super(); }
  destroy(): void {
    this.idev?.unbind();
    this.idev = null;
    this.release();
  }
}

function mockDomain(ctx: IommufdCtx, ucmd: UCmd, devFlags: number): number {
  const c = ucmd.fields(iommu_test_cmd);
  if (devFlags & ~MOCK_DEV_FLAGS) return -errno.EINVAL;
  const driver = ctx.driver;
  const mockId = driver.mockIds.alloc();
  let log = mockPageResponses.get(driver);
  if (!log) mockPageResponses.set(driver, log = []);
  const sobj = new SelftestObject(new MockDevice(mockId, devFlags, log), () => driver.mockIds.free(mockId));
  const rc = ctx.objectAlloc(sobj, false);
  if (rc < 0) { driver.mockIds.free(mockId); return rc; }
  const idev = iommufdDeviceBind(ctx, sobj.mock);
  if (typeof idev === "number") { ctx.objectAbort(sobj); return idev; }
  sobj.idev = idev;
  const pt = idev.attach(c.u(c.f.id));
  if (pt < 0) { ctx.objectAbort(sobj); return pt; }
  c.set(c.f["mock_domain.out_hwpt_id"], pt);
  c.set(c.f["mock_domain.out_stdev_id"], sobj.id);
  c.set(c.f["mock_domain.out_idev_id"], idev.id);
  return ctx.respondFinalize(ucmd, sobj);
}

/** Largest ACCESS_PAGES / ACCESS_RW the selftest takes (it allocates a buffer that big). */
const ACCESS_MAX = 16 * 1024 * 1024;

/** The selftest's emulated device: an access behind an fd, with the pins it holds. */
class SelftestAccess {
  access: IommufdAccess | null = null;
  readonly items = new Map<number, { iova: bigint; length: bigint }>();
  nextId = 0;

  /** Its unmap op: drop every pin that meets [iova, iova+length). */
  unmap(iova: bigint, length: bigint): void {
    const last = iova + length - 1n;
    for (const [id, it] of [...this.items]) {
      if (it.iova > last || it.iova + it.length - 1n < iova) continue;
      this.access!.unpinPages(it.iova, it.length);
      this.items.delete(id);
    }
  }
}

const staccessFops: FileOperations = {
  kind: "iommufd-selftest-access",
  release(file: File) {
    const st = file.priv as SelftestAccess;
    if (!st.access) return;
    if (st.access.ops.needsPinPages) st.unmap(0n, 1n << 64n);
    accessDestroy(st.access);
    st.access = null;
  },
};

/** iommufd_access_get for the selftest: the access behind fd `fd`, or -EBADFD. */
function staccessGet(proc: Process, fd: number): SelftestAccess | number {
  const f = proc.file(fd);
  if (!f || f.ops !== staccessFops) return -errno.EBADFD;
  return f.priv as SelftestAccess;
}

function createAccess(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_test_cmd);
  const flags = c.u(c.f["create_access.flags"]);
  if (flags & ~MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) return -errno.EOPNOTSUPP;
  const st = new SelftestAccess();
  const stat = { mode: 0, rdev: 0, size: 0 };
  const file = ctx.kcore.newFile(staccessFops, O_RDWR, st, "anon_inode:[iommufd_test_staccess]", stat);
  if (typeof file === "number") return file;
  const needsPin = (flags & MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) !== 0;
  const access = accessCreate(ctx, { needsPinPages: needsPin, unmap: (iova, len) => st.unmap(iova, len) }, c.u(c.f.id));
  if (typeof access === "number") { ctx.kcore.fput(file); return access; }
  st.access = access;
  const fd = ucmd.proc.installFile(file, true);
  if (fd < 0) { ctx.kcore.fput(file); return fd; }
  c.set(c.f["create_access.out_access_fd"], fd);
  const rc = ucmd.respond();
  if (rc < 0) { ucmd.proc.close(fd); return rc; }
  return 0;
}

function accessPages(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_test_cmd);
  const length = c.u64(c.f["access_pages.length"]);
  if (length > BigInt(ACCESS_MAX)) return -errno.ENOMEM;
  const flags = c.u(c.f["access_pages.flags"]);
  if (flags & ~(MOCK_FLAGS_ACCESS_WRITE | MOCK_FLAGS_ACCESS_SYZ)) return -errno.EOPNOTSUPP;
  const st = staccessGet(ucmd.proc, c.u(c.f.id));
  if (typeof st === "number") return st;
  const access = st.access!;
  if (!access.ops.needsPinPages) return -errno.EOPNOTSUPP;
  const iova = c.u64(c.f["access_pages.iova"]);
  const frames = access.pinPages(iova, length, (flags & MOCK_FLAGS_ACCESS_WRITE) !== 0);
  if (typeof frames === "number") return frames;
  // The pinned pages must be the very pages the caller's memory has at uptr.
  const uptr = Number(c.u64(c.f["access_pages.uptr"]));
  if (uptr) {
    const base = uptr - Number(iova % PAGE);
    for (let i = 0; i < frames.length; i++) {
      const f = ucmd.proc.mm.frameOf(base + i * PAGE_SIZE);
      if (f !== frames[i]) { access.unpinPages(iova, length); return f < 0 ? f : -errno.EBADE; }
    }
  }
  const id = st.nextId++;
  st.items.set(id, { iova, length });
  c.set(c.f["access_pages.out_access_pages_id"], id);
  const rc = ucmd.respond();
  if (rc < 0) { st.items.delete(id); access.unpinPages(iova, length); return rc; }
  return 0;
}

function destroyAccessPages(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_test_cmd);
  const st = staccessGet(ucmd.proc, c.u(c.f.id));
  if (typeof st === "number") return st;
  const id = c.u(c.f["destroy_access_pages.access_pages_id"]);
  const it = st.items.get(id);
  if (!it) return -errno.ENOENT;
  st.access!.unpinPages(it.iova, it.length);
  st.items.delete(id);
  return 0;
}

function accessRw(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_test_cmd);
  const length = Number(c.u64(c.f["access_rw.length"]));
  if (length > ACCESS_MAX) return -errno.ENOMEM;
  const flags = c.u(c.f["access_rw.flags"]);
  if (flags & ~(MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH | MOCK_FLAGS_ACCESS_SYZ)) return -errno.EOPNOTSUPP;
  const st = staccessGet(ucmd.proc, c.u(c.f.id));
  if (typeof st === "number") return st;
  if (ctx.shouldFail()) return -errno.ENOMEM;
  const uptr = Number(c.u64(c.f["access_rw.uptr"]));
  const write = (flags & MOCK_ACCESS_RW_WRITE) !== 0;
  let buf: Uint8Array = new Uint8Array(length);
  if (write) {
    const b = ucmd.copyFromUser(uptr, length);
    if (typeof b === "number") return -errno.EFAULT;
    buf = b;
  }
  const rc = st.access!.rw(c.u64(c.f["access_rw.iova"]), buf, write);
  if (rc < 0) return rc;
  if (!write && ucmd.copyToUser(uptr, buf) < 0) return -errno.EFAULT;
  return 0;
}

function accessReplaceIoas(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_test_cmd);
  const st = staccessGet(ucmd.proc, c.u(c.f.id));
  if (typeof st === "number") return st;
  if (!st.access!.ioas) return -errno.ENOENT;
  return st.access!.changeIoas(c.u(c.f["access_replace_ioas.ioas_id"]));
}

/** The mock paging HWPT `id` (get_md_pagetable): ENOENT, or EINVAL for another format. */
function mockHwpt(ctx: IommufdCtx, id: number): HwptPaging | number {
  const hwpt = ctx.getObject(id, "hwpt_paging") as HwptPaging | number;
  if (typeof hwpt === "number") return hwpt;
  return hwpt.domain.format === "mock" ? hwpt : -errno.EINVAL;
}

/** DIRTY: marks the IO pages of every set bit of the user's bitmap dirty; out_nr_dirty. */
function dirty(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_test_cmd);
  const iova = c.u64(c.f["dirty.iova"]);
  const length = c.u64(c.f["dirty.length"]);
  const pageSize = c.u64(c.f["dirty.page_size"]);
  const uptr = Number(c.u64(c.f["dirty.uptr"]));
  if (!pageSize || !length || iova % pageSize || length % pageSize || !uptr) return -errno.EINVAL;
  const hwpt = mockHwpt(ctx, c.u(c.f.id));
  if (typeof hwpt === "number") return hwpt;
  if (!hwpt.domain.dirtyEnabled) return -errno.EINVAL;
  const nbits = Number(length / pageSize);
  if (ctx.shouldFail()) return -errno.ENOMEM;
  const bits = ucmd.copyFromUser(uptr, Math.ceil(nbits / 8));
  if (typeof bits === "number") return -errno.EFAULT;
  let count = 0;
  for (let i = 0; i < nbits; i++) {
    if (!(bits[i >> 3] & (1 << (i & 7)))) continue;
    if (hwpt.domain.markDirty(iova + BigInt(i) * pageSize, pageSize) > 0) count++;
  }
  c.set(c.f["dirty.out_nr_dirty"], count);
  return ucmd.respond();
}

function mockDomainReplace(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_test_cmd);
  const sobj = ctx.getObject(c.u(c.f.id), "selftest") as SelftestObject | number;
  if (typeof sobj === "number") return sobj;
  const idev = sobj.idev!;
  const pt = idev.attached ? idev.replace(c.u(c.f["mock_domain_replace.pt_id"])) : idev.attach(c.u(c.f["mock_domain_replace.pt_id"]));
  if (pt < 0) return pt;
  c.set(c.f["mock_domain_replace.pt_id"], pt);
  return ucmd.respond();
}

/**
 * MD_CHECK_MAP: every 2 KiB unit of [iova, iova+length) must translate, in the mock HWPT's
 * domain, to the physical address behind the same offset of `uptr`.
 */
function mdCheckMap(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_test_cmd);
  const iova = c.u64(c.f["check_map.iova"]);
  const length = Number(c.u64(c.f["check_map.length"]));
  const uptr = Number(c.u64(c.f["check_map.uptr"]));
  if (iova % BigInt(MOCK_PAGE_SIZE) || length % MOCK_PAGE_SIZE || uptr % MOCK_PAGE_SIZE) return -errno.EINVAL;
  const hwpt = mockHwpt(ctx, c.u(c.f.id));
  if (typeof hwpt === "number") return hwpt;
  for (let off = 0; off < length; off += MOCK_PAGE_SIZE) {
    const frame = ucmd.proc.mm.frameOf(uptr + off);
    if (frame < 0) return frame;
    const want = frame * PAGE_SIZE + ((uptr + off) % PAGE_SIZE);
    if (hwpt.domain.iovaToPhys(iova + BigInt(off)) !== want) return -errno.EINVAL;
  }
  return 0;
}

/**
 * MD_CHECK_IOTLB (get_md_pagetable_nested): `id` must be a nested HWPT (ENOENT) of the mock
 * (EINVAL; the only kind there is); slot `check_iotlb.id` past the last, or holding another
 * value than `check_iotlb.iotlb`, is EINVAL.
 */
function mdCheckIotlb(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_test_cmd);
  const hwpt = ctx.getObject(c.u(c.f.id), "hwpt_nested") as HwptNested | number;
  if (typeof hwpt === "number") return hwpt;
  if (hwpt.domain.format !== "mock") return -errno.EINVAL;
  const slot = c.u(c.f["check_iotlb.id"]);
  if (slot > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX || hwpt.iotlb[slot] !== c.u(c.f["check_iotlb.iotlb"])) return -errno.EINVAL;
  return 0;
}

/**
 * TRIGGER_IOPF: device `dev_id` (ENOENT) reports a page request, the last of its group, with
 * a valid PASID unless it is 0; 0 whatever becomes of it (iommu_report_device_fault).
 */
function triggerIopf(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_test_cmd);
  const idev = ctx.getObject(c.u(c.f["trigger_iopf.dev_id"]), "device") as IommufdDevice | number;
  if (typeof idev === "number") return idev;
  const pasid = c.u(c.f["trigger_iopf.pasid"]);
  const fault: IopfFault = {
    flags: IOMMU_PGFAULT_FLAGS_LAST_PAGE | (pasid !== 0 ? IOMMU_PGFAULT_FLAGS_PASID_VALID : 0),
    pasid, grpid: c.u(c.f["trigger_iopf.grpid"]), perm: c.u(c.f["trigger_iopf.perm"]), addr: c.u64(c.f["trigger_iopf.addr"]),
  };
  // Another IOMMU's device has no fault handler here: its driver answers it, unseen.
  if (idev.dev instanceof MockDevice) reportDeviceFault(idev, fault, idev.dev);
  return 0;
}

/** iommufd_test_get_selftest_obj: the mock device behind stdev `id` (ENOENT). */
function selftestIdev(ctx: IommufdCtx, id: number): IommufdDevice | number {
  const sobj = ctx.getObject(id, "selftest") as SelftestObject | number;
  return typeof sobj === "number" ? sobj : sobj.idev!;
}

/**
 * PASID_ATTACH / PASID_REPLACE (id = stdev): iommufd_device_attach / _replace at the PASID,
 * pt_id written back; an attach whose answer cannot be written is detached again.
 */
function pasidAttach(ctx: IommufdCtx, ucmd: UCmd, replace: boolean): number {
  const c = ucmd.fields(iommu_test_cmd);
  const idev = selftestIdev(ctx, c.u(c.f.id));
  if (typeof idev === "number") return idev;
  const pasid = c.u(c.f["pasid_attach.pasid"]);
  const pt = replace ? idev.replace(c.u(c.f["pasid_attach.pt_id"]), pasid) : idev.attach(c.u(c.f["pasid_attach.pt_id"]), pasid);
  if (pt < 0) return pt;
  c.set(c.f["pasid_attach.pt_id"], pt);
  const rc = ucmd.respond();
  if (rc < 0 && !replace) idev.detach(pasid);
  return rc;
}

/**
 * PASID_CHECK_HWPT: the PASID's attachment (0: the RID) must be to HWPT `hwpt_id`, or to none
 * for hwpt_id 0 (EINVAL otherwise); hwpt_id must name a HWPT (ENOENT, EINVAL).
 */
function pasidCheckHwpt(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_test_cmd);
  const idev = selftestIdev(ctx, c.u(c.f.id));
  if (typeof idev === "number") return idev;
  const attached = idev.handleAt(c.u(c.f["pasid_check.pasid"]))?.hwpt ?? null;
  const want = c.u(c.f["pasid_check.hwpt_id"]);
  if (!want) return attached ? -errno.EINVAL : 0;
  const hwpt = ctx.getObject(want);
  if (typeof hwpt === "number") return hwpt;
  if (!(hwpt instanceof HwptPaging) && hwpt.type !== "hwpt_nested") return -errno.EINVAL;
  // (the domains compared in the kernel are one per HWPT; here a nested HWPT shares its
  // parent's, so the HWPTs themselves are compared)
  return attached === hwpt ? 0 : -errno.EINVAL;
}

/** Smallest page-batch limit the kernel accepts, and its default. */
const MIN_MEMORY_LIMIT = 12;
export const DEFAULT_MEMORY_LIMIT = 65536;

function testCmd(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_test_cmd);
  switch (c.u(c.f.op)) {
    case IOMMU_TEST_OP_ADD_RESERVED: {
      const ioas = ctx.getIoas(c.u(c.f.id));
      if (typeof ioas === "number") return ioas;
      const start = c.u64(c.f["add_reserved.start"]);
      return ioas.iopt.reserveIova(start, BigInt.asUintN(64, start + c.u64(c.f["add_reserved.length"]) - 1n), null);
    }
    case IOMMU_TEST_OP_MD_CHECK_REFS: {
      // Every CPU page of the range must be pinned exactly `refs` times.
      let uptr = Number(c.u64(c.f["check_refs.uptr"]));
      let length = Number(c.u64(c.f["check_refs.length"]));
      const refs = c.u(c.f["check_refs.refs"]);
      if (length % PAGE_SIZE || uptr % PAGE_SIZE) return -errno.EINVAL;
      for (; length > 0; length -= PAGE_SIZE, uptr += PAGE_SIZE) {
        const frame = ucmd.proc.mm.frameOf(uptr);
        if (frame < 0) return frame;
        if (ctx.kcore.pins.pinCount(frame) !== refs) return -errno.EIO;
      }
      return 0;
    }
    case IOMMU_TEST_OP_MOCK_DOMAIN:
      return mockDomain(ctx, ucmd, 0);
    case IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS:
      return mockDomain(ctx, ucmd, c.u(c.f["mock_domain_flags.dev_flags"]));
    case IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE:
      return mockDomainReplace(ctx, ucmd);
    case IOMMU_TEST_OP_MD_CHECK_MAP:
      return mdCheckMap(ctx, ucmd);
    case IOMMU_TEST_OP_DIRTY:
      return dirty(ctx, ucmd);
    case IOMMU_TEST_OP_MD_CHECK_IOTLB:
      return mdCheckIotlb(ctx, ucmd);
    case IOMMU_TEST_OP_TRIGGER_IOPF:
      return triggerIopf(ctx, ucmd);
    case IOMMU_TEST_OP_PASID_ATTACH:
      return pasidAttach(ctx, ucmd, false);
    case IOMMU_TEST_OP_PASID_REPLACE:
      return pasidAttach(ctx, ucmd, true);
    case IOMMU_TEST_OP_PASID_DETACH: {
      const idev = selftestIdev(ctx, c.u(c.f.id));
      if (typeof idev === "number") return idev;
      idev.detach(c.u(c.f["pasid_detach.pasid"]));
      return 0;
    }
    case IOMMU_TEST_OP_PASID_CHECK_HWPT:
      return pasidCheckHwpt(ctx, ucmd);
    case IOMMU_TEST_OP_TRIGGER_VEVENT:
      return triggerVevent(ctx, c.u(c.f["trigger_vevent.dev_id"]));
    case IOMMU_TEST_OP_DEV_CHECK_CACHE:
      return devCheckCache(ctx, c.u(c.f.id), c.u(c.f["check_dev_cache.id"]), c.u(c.f["check_dev_cache.cache"]));
    case IOMMU_TEST_OP_CREATE_ACCESS:
      return createAccess(ctx, ucmd);
    case IOMMU_TEST_OP_ACCESS_PAGES:
      return accessPages(ctx, ucmd);
    case IOMMU_TEST_OP_DESTROY_ACCESS_PAGES:
      return destroyAccessPages(ctx, ucmd);
    case IOMMU_TEST_OP_ACCESS_RW:
      return accessRw(ctx, ucmd);
    case IOMMU_TEST_OP_ACCESS_REPLACE_IOAS:
      return accessReplaceIoas(ctx, ucmd);
    case IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: {
      const limit = c.u(c.f["memory_limit.limit"]);
      if (limit < MIN_MEMORY_LIMIT) return -errno.EINVAL;
      ctx.driver.memoryLimit = limit;
      return 0;
    }
    case IOMMU_TEST_OP_DMABUF_GET:
      return testDmabufGet(ctx.kcore, ucmd.proc, c.u(c.f["dmabuf_get.length"]), c.u(c.f["dmabuf_get.open_flags"]));
    case IOMMU_TEST_OP_DMABUF_REVOKE:
      return testDmabufRevoke(ucmd.proc, c.u(c.f["dmabuf_revoke.dmabuf_fd"]), c.u(c.f["dmabuf_revoke.revoked"]) !== 0);
    case IOMMU_TEST_OP_MD_CHECK_DMABUF: {
      const hwpt = mockHwpt(ctx, c.u(c.f.id));
      if (typeof hwpt === "number") return hwpt;
      return testMdCheckDmabuf(hwpt.domain, Number(lowestBit(hwpt.domain.pgsizeBitmap)), ucmd.proc,
        c.u(c.f["check_dmabuf.dmabuf_fd"]), c.u64(c.f["check_dmabuf.iova"]), c.u64(c.f["check_dmabuf.length"]), c.u64(c.f["check_dmabuf.offset"]));
    }
    default:
      return -errno.EOPNOTSUPP;
  }
}

/** Adds IOMMU_TEST_CMD to the driver's ioctl table (idempotent). */
export function enableSelftest(driver: Iommufd): void {
  if (driver.table.op(IOMMU_TEST_CMD)) return;
  driver.addOp({
    cmd: IOMMU_TEST_CMD, name: "IOMMU_TEST_CMD", layout: iommu_test_cmd,
    handler: testCmd,
  });
}
