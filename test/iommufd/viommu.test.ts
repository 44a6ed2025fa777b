// FIXTURE(iommufd_viommu) of tools/testing/selftests/iommu/iommufd.c, both variants (no_viommu,
// mock_viommu): vIOMMU and vDEVICE objects on the mock IOMMU, nested HWPTs on a vIOMMU, the
// vIOMMU's cache invalidation (checked with IOMMU_TEST_OP_DEV_CHECK_CACHE), and the tombstone
// a vDEVICE leaves when its device is unbound first. Literals from include/uapi/linux/iommufd.h
// and iommufd_test.h (x86_64); nothing is read from src/uapi.

import { describe, it, expect } from "vitest";
import { enableTestCmd } from "../../src/testing.js";
import {
  errno, PG, IOMMU_DESTROY, IOMMU_HWPT_ALLOC, IOMMU_HWPT_INVALIDATE, IOMMU_TEST_CMD, IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_SELFTEST, IOMMU_TEST_IOTLB_DEFAULT, Cmd, cmd, io, openFixture, teardown, ioasAlloc, destroyCmd,
  hwptAllocCmd, hwptInvalidateCmd, mockDomainCmd, mockDomainReplaceCmd, mmapAnon, type Fixture,
} from "./util.js";
import { IOMMU_HWPT_FAULT_ID_VALID, faultAllocOk, hwptAllocIopf, triggerIopfAndRespond } from "./iopf_util.js";
import { IOMMU_VIOMMU_TYPE_SELFTEST, vdeviceAlloc, viommuAlloc } from "./viommu_util.js";

const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
const IOMMU_TEST_INVALIDATE_FLAG_ALL = 1 << 0;
const IOMMU_TEST_OP_DEV_CHECK_CACHE = 16;
const IOMMU_TEST_DEV_CACHE_DEFAULT = 0xbaddad;
const MOCK_DEV_CACHE_ID_MAX = 3;
/** sizeof(struct iommu_viommu_invalidate_selftest) { flags, vdev_id, cache_id }. */
const INV_REQ = 12;

// iommu_test_cmd op DEV_CHECK_CACHE: id @8 = idev, check_dev_cache { id @16, cache @20 }
const devCheckCache = (fx: Fixture, idevId: number, cacheId: number, value: number): number =>
  io(fx, IOMMU_TEST_CMD, cmd(72).u32(4, IOMMU_TEST_OP_DEV_CHECK_CACHE).u32(8, idevId).u32(16, cacheId).u32(20, value));

interface ViommuFx extends Fixture {
  ioasId: number; stdevId: number; hwptId: number; nestedHwptId: number; deviceId: number; viommuId: number;
  /** struct iommu_hwpt_selftest { iotlb = IOMMU_TEST_IOTLB_DEFAULT } in user memory. */
  data: number;
}

/** FIXTURE_SETUP(iommufd_viommu). */
async function setup(viommu: boolean): Promise<ViommuFx> {
  const fx = await openFixture() as ViommuFx;
  enableTestCmd(fx.kernel);
  fx.ioasId = ioasAlloc(fx);
  [fx.stdevId, fx.hwptId, fx.nestedHwptId, fx.deviceId, fx.viommuId] = [0, 0, 0, 0, 0];
  fx.data = mmapAnon(fx.proc, PG);
  expect(fx.proc.writeMemory(fx.data, new Cmd(8).u32(0, IOMMU_TEST_IOTLB_DEFAULT).buf)).toBe(0);
  if (!viommu) return fx;
  const md = mockDomainCmd(fx.ioasId);
  expect(io(fx, IOMMU_TEST_CMD, md)).toBe(0);
  [fx.stdevId, fx.deviceId] = [md.g32(16), md.g32(24)];
  // a nesting parent
  const p = hwptAllocCmd({ devId: fx.deviceId, ptId: fx.ioasId, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
  expect(io(fx, IOMMU_HWPT_ALLOC, p)).toBe(0);
  fx.hwptId = p.g32(16);
  // a vIOMMU taking a reference on the parent
  const v = viommuAlloc(fx, fx.deviceId, fx.hwptId);
  expect(v.rc).toBe(0);
  fx.viommuId = v.id;
  // a regular nested HWPT on the vIOMMU
  const n = nestedAlloc(fx, fx.viommuId);
  expect(n.rc).toBe(0);
  fx.nestedHwptId = n.id;
  return fx;
}

function nestedAlloc(fx: ViommuFx, ptId: number, flags = 0, dataType = IOMMU_HWPT_DATA_SELFTEST, dataLen = 8): { rc: number; id: number } {
  const c = hwptAllocCmd({ devId: fx.deviceId, ptId, flags, dataType, dataUptr: fx.data, dataLen });
  return { rc: io(fx, IOMMU_HWPT_ALLOC, c), id: c.g32(16) };
}

const destroy = (fx: Fixture, id: number): number => io(fx, IOMMU_DESTROY, destroyCmd(id));
const replace = (fx: ViommuFx, ptId: number): number => io(fx, IOMMU_TEST_CMD, mockDomainReplaceCmd(fx.stdevId, ptId));

/** _test_cmd_viommu_invalidate: reqs written at a scratch page (or a NULL uptr); entry_num in/out. */
function viommuInvalidate(fx: ViommuFx, reqs: [number, number, number][] | null, dataType: number, entryLen: number,
  num: number): { rc: number; num: number } {
  let uptr = 0;
  if (reqs) {
    uptr = mmapAnon(fx.proc, PG);
    const c = new Cmd(INV_REQ * 2);
    reqs.forEach(([flags, vdevId, cacheId], i) => c.u32(i * INV_REQ, flags).u32(i * INV_REQ + 4, vdevId).u32(i * INV_REQ + 8, cacheId));
    expect(fx.proc.writeMemory(uptr, c.buf)).toBe(0);
  }
  const c = hwptInvalidateCmd(fx.viommuId, uptr, dataType, entryLen, num);
  const rc = io(fx, IOMMU_HWPT_INVALIDATE, c);
  return { rc, num: c.g32(24) };
}

function expectCache(fx: ViommuFx, values: number[]): void {
  values.forEach((v, i) => expect(devCheckCache(fx, fx.deviceId, i, v), `cache[${i}] == ${v.toString(16)}`).toBe(0));
}

const VARIANTS = [["no_viommu", false], ["mock_viommu", true]] as const;

describe.each(VARIANTS)("FIXTURE iommufd_viommu, variant %s", (variant, hasViommu) => {
  it(`iommufd_viommu.viommu_auto_destroy (${variant})`, async () => {
    // nothing but setup and teardown: closing the fd frees the vIOMMU and what it holds
    const fx = await setup(hasViommu);
    teardown(fx);
  });

  it(`iommufd_viommu.viommu_negative_tests (${variant})`, async () => {
    const fx = await setup(hasViommu);
    if (fx.deviceId) {
      // an invalid hwpt (hwpt_id = 0)
      expect(viommuAlloc(fx, fx.deviceId, 0).rc).toBe(-errno.ENOENT);
      // not a nesting parent
      const p = hwptAllocCmd({ devId: fx.deviceId, ptId: fx.ioasId });
      expect(io(fx, IOMMU_HWPT_ALLOC, p)).toBe(0);
      const hwptId = p.g32(16);
      expect(viommuAlloc(fx, fx.deviceId, hwptId).rc).toBe(-errno.EINVAL);
      expect(destroy(fx, hwptId)).toBe(0);
      // an unsupported vIOMMU type
      expect(viommuAlloc(fx, fx.deviceId, fx.hwptId, 0xdead).rc).toBe(-errno.EOPNOTSUPP);
      expect(destroy(fx, fx.hwptId)).toBe(-errno.EBUSY);
      expect(destroy(fx, fx.viommuId)).toBe(-errno.EBUSY);
    } else {
      expect(viommuAlloc(fx, fx.deviceId, fx.hwptId).rc).toBe(-errno.ENOENT);
    }
    teardown(fx);
  });

  // (the kernel SKIPs it for no_viommu)
  if (hasViommu) it(`iommufd_viommu.viommu_alloc_nested_iopf (${variant})`, async () => {
    const fx = await setup(hasViommu);
    const fault = faultAllocOk(fx);
    const iopf = (faultId: number, flags: number) => hwptAllocIopf(fx, fx.deviceId, fx.viommuId, faultId, flags, fx.data);
    expect(iopf(0xffffffff, IOMMU_HWPT_FAULT_ID_VALID).rc).toBe(-errno.ENOENT);
    expect(iopf(fault.id, (IOMMU_HWPT_FAULT_ID_VALID | (1 << 31)) >>> 0).rc).toBe(-errno.EOPNOTSUPP);
    const h = iopf(fault.id, IOMMU_HWPT_FAULT_ID_VALID);
    expect(h.rc).toBe(0);
    // a vDEVICE must exist before attaching to a nested HWPT of the vIOMMU
    expect(replace(fx, h.id)).toBe(-errno.ENOENT);
    expect(vdeviceAlloc(fx, fx.viommuId, fx.deviceId, 0x99).rc).toBe(0);
    expect(replace(fx, h.id)).toBe(0);
    expect(destroy(fx, h.id)).toBe(-errno.EBUSY);
    expect(triggerIopfAndRespond(fx, fx.deviceId, fault.fd)).toBe(0);
    expect(replace(fx, fx.ioasId)).toBe(0);
    expect(destroy(fx, h.id)).toBe(0);
    expect(fx.proc.close(fault.fd)).toBe(0);
    expect(destroy(fx, fault.id)).toBe(0);
    teardown(fx);
  });

  // (the kernel SKIPs it for no_viommu)
  if (hasViommu) it(`iommufd_viommu.vdevice_cache (${variant})`, async () => {
    const fx = await setup(hasViommu);
    const D = IOMMU_TEST_DEV_CACHE_DEFAULT;
    const SELF = IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST;
    const v = vdeviceAlloc(fx, fx.viommuId, fx.deviceId, 0x99);
    expect(v.rc).toBe(0);
    expectCache(fx, [D, D, D, D]);
    const zero: [number, number, number][] = [[0, 0, 0], [0, 0, 0]];

    // the data type is checked by an empty array
    expect(viommuInvalidate(fx, zero, SELF, INV_REQ, 0)).toEqual({ rc: 0, num: 0 });
    // an invalid data type
    expect(viommuInvalidate(fx, zero, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID, INV_REQ, 1)).toEqual({ rc: -errno.EINVAL, num: 0 });
    // structure size sanity
    expect(viommuInvalidate(fx, zero, SELF, INV_REQ + 1, 1)).toEqual({ rc: -errno.EINVAL, num: 0 });
    expect(viommuInvalidate(fx, zero, SELF, 1, 1)).toEqual({ rc: -errno.EINVAL, num: 0 });
    // an invalid flag
    expect(viommuInvalidate(fx, [[0xffffffff, 0x99, 0], [0, 0, 0]], SELF, INV_REQ, 1)).toEqual({ rc: -errno.EOPNOTSUPP, num: 0 });
    // an invalid data_uptr when the array is not empty
    expect(viommuInvalidate(fx, null, SELF, INV_REQ, 1)).toEqual({ rc: -errno.EINVAL, num: 0 });
    // an invalid entry_len when the array is not empty
    expect(viommuInvalidate(fx, [[0, 0x99, 0], [0, 0, 0]], SELF, 0, 1)).toEqual({ rc: -errno.EINVAL, num: 0 });
    // an invalid cache_id
    expect(viommuInvalidate(fx, [[0, 0x99, MOCK_DEV_CACHE_ID_MAX + 1], [0, 0, 0]], SELF, INV_REQ, 1)).toEqual({ rc: -errno.EINVAL, num: 0 });
    // an invalid vdev_id
    expect(viommuInvalidate(fx, [[0, 0x9, 0], [0, 0, 0]], SELF, INV_REQ, 1)).toEqual({ rc: -errno.EINVAL, num: 0 });
    expectCache(fx, [D, D, D, D]);

    // the 1st entry invalidated, the 2nd fails on its flags
    expect(viommuInvalidate(fx, [[0, 0x99, 0], [0xffffffff, 0x99, 1]], SELF, INV_REQ, 2)).toEqual({ rc: -errno.EOPNOTSUPP, num: 1 });
    expectCache(fx, [0, D, D, D]);
    // the 1st entry invalidated, the 2nd fails on its cache_id
    expect(viommuInvalidate(fx, [[0, 0x99, 0], [0, 0x99, MOCK_DEV_CACHE_ID_MAX + 1]], SELF, INV_REQ, 2)).toEqual({ rc: -errno.EINVAL, num: 1 });
    expectCache(fx, [0, D, D, D]);
    // the 2nd cache entry
    expect(viommuInvalidate(fx, [[0, 0x99, 1], [0, 0, 0]], SELF, INV_REQ, 1)).toEqual({ rc: 0, num: 1 });
    expectCache(fx, [0, 0, D, D]);
    // the 3rd and 4th
    expect(viommuInvalidate(fx, [[0, 0x99, 2], [0, 0x99, 3]], SELF, INV_REQ, 2)).toEqual({ rc: 0, num: 2 });
    expectCache(fx, [0, 0, 0, 0]);
    // all of them
    expect(viommuInvalidate(fx, [[IOMMU_TEST_INVALIDATE_FLAG_ALL, 0x99, 0], [0, 0, 0]], SELF, INV_REQ, 1)).toEqual({ rc: 0, num: 1 });
    expectCache(fx, [0, 0, 0, 0]);
    // (a value that is not there)
    expect(devCheckCache(fx, fx.deviceId, 0, D)).toBe(-errno.EINVAL);
    expect(destroy(fx, v.id)).toBe(0);
    teardown(fx);
  });

  // (the kernel SKIPs it for no_viommu)
  if (hasViommu) it(`iommufd_viommu.vdevice_tombstone (${variant})`, async () => {
    const fx = await setup(hasViommu);
    const v = vdeviceAlloc(fx, fx.viommuId, fx.deviceId, 0x99);
    expect(v.rc).toBe(0);
    expect(destroy(fx, fx.stdevId)).toBe(0);
    expect(destroy(fx, v.id)).toBe(-errno.ENOENT);
    // (the id stays taken: the next object gets another)
    expect(ioasAlloc(fx)).not.toBe(v.id);
    teardown(fx);
  });
});

describe("vIOMMU object rules", () => {
  it("VDEVICE_ALLOC: one vDEVICE per device, one device per virt_id, references held", async () => {
    const fx = await setup(true);
    // the viommu, then the device
    expect(vdeviceAlloc(fx, 0, fx.deviceId, 1).rc).toBe(-errno.ENOENT);
    expect(vdeviceAlloc(fx, fx.hwptId, fx.deviceId, 1).rc).toBe(-errno.ENOENT);
    expect(vdeviceAlloc(fx, fx.viommuId, 0, 1).rc).toBe(-errno.ENOENT);
    const before = fx.kernel.stats().iommufdObjects;
    const v = vdeviceAlloc(fx, fx.viommuId, fx.deviceId, 1n << 63n);
    expect(v.rc).toBe(0);
    expect(fx.kernel.stats().iommufdObjects).toBe(before + 1);
    expect(vdeviceAlloc(fx, fx.viommuId, fx.deviceId, 2).rc).toBe(-errno.EEXIST);
    // another device of the same IOMMU at a taken virt_id
    const md = mockDomainCmd(fx.ioasId);
    expect(io(fx, IOMMU_TEST_CMD, md)).toBe(0);
    const dev2 = md.g32(24);
    expect(vdeviceAlloc(fx, fx.viommuId, dev2, 1n << 63n).rc).toBe(-errno.EEXIST);
    // (the second device shares the first one's automatic HWPT: a selftest object and a device)
    expect(fx.kernel.stats().iommufdObjects).toBe(before + 1 + 2);
    const v2 = vdeviceAlloc(fx, fx.viommuId, dev2, 0);
    expect(v2.rc).toBe(0);
    // the vIOMMU is held by its vDEVICEs and nested HWPT, the parent by the vIOMMU
    expect(destroy(fx, fx.viommuId)).toBe(-errno.EBUSY);
    expect(destroy(fx, v.id)).toBe(0);
    expect(destroy(fx, v2.id)).toBe(0);
    expect(destroy(fx, fx.viommuId)).toBe(-errno.EBUSY);
    expect(destroy(fx, fx.nestedHwptId)).toBe(0);
    expect(destroy(fx, fx.hwptId)).toBe(-errno.EBUSY);
    expect(destroy(fx, fx.viommuId)).toBe(0);
    expect(destroy(fx, fx.hwptId)).toBe(0);
    teardown(fx);
  });

  it("VIOMMU_ALLOC: flags, the default type, a non-parent id, driver data", async () => {
    const fx = await setup(true);
    const before = fx.kernel.stats().iommufdObjects;
    expect(viommuAlloc(fx, fx.deviceId, fx.hwptId, IOMMU_VIOMMU_TYPE_SELFTEST, 1).rc).toBe(-errno.EOPNOTSUPP);
    expect(viommuAlloc(fx, fx.deviceId, fx.hwptId, 0).rc).toBe(-errno.EOPNOTSUPP);
    // an IOAS is not a paging HWPT
    expect(viommuAlloc(fx, fx.deviceId, fx.ioasId).rc).toBe(-errno.ENOENT);
    expect(viommuAlloc(fx, fx.hwptId, fx.hwptId).rc).toBe(-errno.ENOENT);
    expect(fx.kernel.stats().iommufdObjects).toBe(before);
    // a second vIOMMU on the same parent is fine
    const v = viommuAlloc(fx, fx.deviceId, fx.hwptId);
    expect(v.rc).toBe(0);
    expect(v.id).toBe(before + 1);
    // nested HWPTs on a vIOMMU: flags, data, the driver's data type
    expect(nestedAlloc(fx, v.id, 1 << 0).rc).toBe(-errno.EOPNOTSUPP);
    expect(nestedAlloc(fx, v.id, 0, IOMMU_HWPT_DATA_SELFTEST, 0).rc).toBe(-errno.EINVAL);
    expect(nestedAlloc(fx, v.id, 0, 0xbeef).rc).toBe(-errno.EOPNOTSUPP);
    expect(nestedAlloc(fx, v.id, 0, IOMMU_HWPT_DATA_SELFTEST, 2).rc).toBe(-errno.EINVAL);
    expect(fx.kernel.stats().iommufdObjects).toBe(before + 1);
    teardown(fx);
  });
});
