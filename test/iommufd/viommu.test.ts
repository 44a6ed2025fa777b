// FIXTURE(iommufd_viommu) of tools/testing/selftests/iommu/iommufd.c, both variants (no_viommu,
// mock_viommu): vIOMMU and vDEVICE objects on the mock IOMMU, nested HWPTs on a vIOMMU, the
// vIOMMU's cache invalidation (checked with IOMMU_TEST_OP_DEV_CHECK_CACHE), the tombstone
// a vDEVICE leaves when its device is unbound first, and HW queues (IOMMU_HW_QUEUE_ALLOC). Literals from include/uapi/linux/iommufd.h
// and iommufd_test.h (x86_64); nothing is read from src/uapi.

import { describe, it, expect } from "vitest";
import { enableTestCmd } from "../../src/testing.js";
import { MAP_PRIVATE, MAP_SHARED, PROT_EXEC, PROT_READ, PROT_WRITE } from "../../src/index.js";
import {
  errno, PG, IOMMU_HWPT_ALLOC, IOMMU_HWPT_INVALIDATE, IOMMU_TEST_CMD, IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_SELFTEST, IOMMU_TEST_IOTLB_DEFAULT, Cmd, cmd, io, openFixture, teardown, ioasAlloc, destroy,
  hwptAllocCmd, hwptInvalidateCmd, mockDomainCmd, mockDomainReplaceCmd, mmapAnon, type Fixture,
  MOCK_APERTURE_START, expectNoLeaks, hugeAlignedBuffer, mapAuto, unmap, IOMMU_IOAS_MAP, mapCmd, RW, FIXED, WRITE,
} from "./util.js";
import { IOMMU_HWPT_FAULT_ID_VALID, faultAllocOk, hwptAllocIopf, triggerIopfAndRespond } from "./iopf_util.js";
import {
  IOMMU_VIOMMU_TYPE_SELFTEST, IOMMU_VEVENTQ_TYPE_SELFTEST, IOMMU_VEVENTQ_FLAG_LOST_EVENTS, VEVENT_HDR, VEVENT_SELFTEST,
  readVevents, triggerVevents, vdeviceAlloc, veventqAlloc, viommuAlloc,
  IOMMU_HW_QUEUE_TYPE_DEFAULT, IOMMU_HW_QUEUE_TYPE_SELFTEST, IOMMU_TEST_HW_QUEUE_MAX, hwQueueAlloc,
} from "./viommu_util.js";

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


/** The struct iommu_viommu_selftest the kernel wrote back at `at`. */
function readData(fx: Fixture, at: number): { inData: number; outData: number; mmapOffset: number; mmapLength: number } {
  const b = new Uint8Array(24);
  expect(fx.proc.readMemory(at, b)).toBe(0);
  const dv = new DataView(b.buffer);
  return {
    inData: dv.getUint32(0, true), outData: dv.getUint32(4, true),
    mmapOffset: Number(dv.getBigUint64(8, true)), mmapLength: Number(dv.getBigUint64(16, true)),
  };
}

/** mmap(NULL, length, prot, flags, iommufd, offset). */
const mmapIommufd = (fx: Fixture, length: number, offset: number, prot = PROT_READ | PROT_WRITE, flags = MAP_SHARED): number =>
  fx.proc.mmap(0, length, prot, flags, fx.fd, offset);

function readU32(fx: Fixture, at: number): number {
  const b = new Uint8Array(4);
  expect(fx.proc.readMemory(at, b)).toBe(0);
  return new DataView(b.buffer).getUint32(0, true);
}
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

  it(`iommufd_viommu.vdevice_alloc (${variant})`, async () => {
    const fx = await setup(hasViommu);
    if (fx.deviceId) {
      const prev = { seq: -1 };
      // a vDEVICE must exist before attaching to a nested HWPT of the vIOMMU
      expect(replace(fx, fx.nestedHwptId)).toBe(-errno.ENOENT);
      // a vEVENTQ of depth 2, one per type
      const q = veventqAlloc(fx, fx.viommuId);
      expect(q.rc).toBe(0);
      expect(veventqAlloc(fx, fx.viommuId).rc).toBe(-errno.EEXIST);
      // virt_id 0x99, unset, then 0x88
      let v = vdeviceAlloc(fx, fx.viommuId, fx.deviceId, 0x99);
      expect(v.rc).toBe(0);
      expect(replace(fx, fx.nestedHwptId)).toBe(0);
      expect(triggerVevents(fx, fx.deviceId, 1)).toBe(0);
      expect(readVevents(fx, q.fd, 1, 0x99, prev)).toBe(0);
      expect(vdeviceAlloc(fx, fx.viommuId, fx.deviceId, 0x99).rc).toBe(-errno.EEXIST);
      expect(replace(fx, fx.ioasId)).toBe(0);
      expect(destroy(fx, v.id)).toBe(0);

      v = vdeviceAlloc(fx, fx.viommuId, fx.deviceId, 0x88);
      expect(v.rc).toBe(0);
      expect(replace(fx, fx.nestedHwptId)).toBe(0);
      // three events overflow the queue
      expect(triggerVevents(fx, fx.deviceId, 3)).toBe(0);
      expect(readVevents(fx, q.fd, 3, 0x88, prev)).toBe(-errno.EOVERFLOW);
      // the overflow is gone after those reads
      expect(triggerVevents(fx, fx.deviceId, 1)).toBe(0);
      expect(readVevents(fx, q.fd, 1, 0x88, prev)).toBe(0);
      expect(fx.proc.close(q.fd)).toBe(0);
      expect(replace(fx, fx.ioasId)).toBe(0);
      expect(destroy(fx, v.id)).toBe(0);
      expect(destroy(fx, q.id)).toBe(0);
    } else {
      expect(vdeviceAlloc(fx, fx.viommuId, fx.deviceId, 0x99).rc).toBe(-errno.ENOENT);
    }
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

  // (the kernel SKIPs it for no_viommu)
  if (hasViommu) it(`iommufd_viommu.viommu_alloc_with_data (${variant})`, async () => {
    const fx = await setup(hasViommu);
    // struct iommu_viommu_selftest { in_data = 0xbeef }
    const data = mmapAnon(fx.proc, PG);
    expect(fx.proc.writeMemory(data, new Cmd(24).u32(0, 0xbeef).buf)).toBe(0);
    const v = viommuAlloc(fx, fx.deviceId, fx.hwptId, IOMMU_VIOMMU_TYPE_SELFTEST, 0, data, 24);
    expect(v.rc).toBe(0);
    fx.viommuId = v.id;
    const out = readData(fx, data);
    expect(out.outData).toBe(0xbeef);
    const [len, off] = [out.mmapLength, out.mmapOffset];
    // offset and length cannot be changed
    expect(mmapIommufd(fx, len, off + PG)).toBe(-errno.ENXIO);
    expect(mmapIommufd(fx, len, off + 2 * PG)).toBe(-errno.ENXIO);
    expect(mmapIommufd(fx, len / 2, off)).toBe(-errno.ENXIO);
    expect(mmapIommufd(fx, len * 2, off)).toBe(-errno.ENXIO);
    // the loopback: the page holds in_data
    const at = mmapIommufd(fx, len, off);
    expect(at).toBeGreaterThan(0);
    expect(readU32(fx, at)).toBe(0xbeef);
    // the owner of the mapped region is held by the mapping
    expect(destroy(fx, fx.viommuId)).toBe(-errno.EBUSY);
    expect(fx.proc.munmap(at, len)).toBe(0);
    teardown(fx);
  });

  // (the kernel SKIPs it for no_viommu)
  if (hasViommu) it(`iommufd_viommu.hw_queue (${variant})`, async () => {
    const fx = await setup(hasViommu);
    const buffer = hugeAlignedBuffer(fx.proc);
    const SELF = IOMMU_HW_QUEUE_TYPE_SELFTEST;
    let iova = BigInt(MOCK_APERTURE_START);
    const q = (type: number, index: number, base: bigint, length: number | bigint) => hwQueueAlloc(fx, fx.viommuId, type, index, base, length);
    // IOMMU_HW_QUEUE_TYPE_DEFAULT
    expect(q(IOMMU_HW_QUEUE_TYPE_DEFAULT, 0, iova, PG).rc).toBe(-errno.EOPNOTSUPP);
    // queue address and length
    expect(q(SELF, 0, iova, 0).rc).toBe(-errno.EINVAL);
    expect(q(SELF, 0, 0xffff_ffff_ffff_ffffn, PG).rc).toBe(-errno.EOVERFLOW);
    // nothing mapped there
    expect(q(SELF, 0, iova, PG).rc).toBe(-errno.ENOENT);

    // two pages, each its own mapping
    const m1 = mapAuto(fx, fx.ioasId, buffer, PG);
    expect(m1.rc).toBe(0);
    iova = m1.iova;
    const m2 = mapAuto(fx, fx.ioasId, buffer + PG, PG);
    expect(m2.rc).toBe(0);
    const iova2 = m2.iova;

    // index 1 and index MAX: indexes start at 0
    expect(q(SELF, 1, iova, PG).rc).toBe(-errno.EIO);
    expect(q(SELF, IOMMU_TEST_HW_QUEUE_MAX, iova, PG).rc).toBe(-errno.EINVAL);

    // index 0 owns the page at iova
    const q0 = q(SELF, 0, iova, PG);
    expect(q0.rc).toBe(0);
    // the index is taken
    expect(q(SELF, 0, iova, PG).rc).toBe(-errno.EEXIST);
    // the pinned page cannot be unmapped; the other one can
    expect(unmap(fx, fx.ioasId, iova, PG).rc).toBe(-errno.EBUSY);
    expect(unmap(fx, fx.ioasId, iova2, PG).rc).toBe(0);

    // index 1, unaligned: the second half of the page
    const q1 = q(SELF, 1, iova + BigInt(PG / 2), PG / 2);
    expect(q1.rc).toBe(0);
    // index 0 is held by index 1
    expect(destroy(fx, q0.id)).toBe(-errno.EBUSY);

    // destroyed in descending order
    expect(destroy(fx, q1.id)).toBe(0);
    expect(destroy(fx, q0.id)).toBe(0);
    // the first page can be unmapped now
    expect(unmap(fx, fx.ioasId, iova, PG).rc).toBe(0);
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

  it("VIOMMU_ALLOC: flags, the default type, ids of the wrong kind; nested HWPTs on a vIOMMU", async () => {
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

describe("vEVENTQ", () => {
  /** The fixture with a vDEVICE 0x99 attached to the nested HWPT and a queue of `depth`. */
  async function queueFx(depth: number): Promise<ViommuFx & { q: { id: number; fd: number }; vdevId: number }> {
    const fx = await setup(true) as ViommuFx & { q: { id: number; fd: number }; vdevId: number };
    const v = vdeviceAlloc(fx, fx.viommuId, fx.deviceId, 0x99);
    expect(v.rc).toBe(0);
    fx.vdevId = v.id;
    expect(replace(fx, fx.nestedHwptId)).toBe(0);
    const q = veventqAlloc(fx, fx.viommuId, IOMMU_VEVENTQ_TYPE_SELFTEST, depth);
    expect(q.rc).toBe(0);
    fx.q = q;
    return fx;
  }
  const rec = (flags: number, seq: number, virtId?: number): number[] => {
    const c = new Cmd(virtId === undefined ? VEVENT_HDR : VEVENT_HDR + VEVENT_SELFTEST).u32(0, flags).u32(4, seq);
    if (virtId !== undefined) c.u32(8, virtId);
    return [...c.buf];
  };
  const read = (fx: ViommuFx & { q: { fd: number } }, len: number): number[] | number => {
    const b = new Uint8Array(len);
    const n = fx.proc.read(fx.q.fd, b);
    return n < 0 ? n : [...b.subarray(0, n)];
  };

  it("alloc: argument checks in order, the fd, the vIOMMU held", async () => {
    const fx = await setup(true);
    const before = fx.kernel.stats().iommufdObjects;
    expect(veventqAlloc(fx, fx.viommuId, IOMMU_VEVENTQ_TYPE_SELFTEST, 2, 1).rc).toBe(-errno.EOPNOTSUPP);
    expect(veventqAlloc(fx, fx.viommuId, IOMMU_VEVENTQ_TYPE_SELFTEST, 2, 0, 1).rc).toBe(-errno.EOPNOTSUPP);
    expect(veventqAlloc(fx, fx.viommuId, 0).rc).toBe(-errno.EOPNOTSUPP);
    expect(veventqAlloc(fx, 0, IOMMU_VEVENTQ_TYPE_SELFTEST, 0).rc).toBe(-errno.EINVAL);
    expect(veventqAlloc(fx, fx.hwptId).rc).toBe(-errno.ENOENT);
    expect(fx.kernel.stats().iommufdObjects).toBe(before);
    const q = veventqAlloc(fx, fx.viommuId);
    expect(q.rc).toBe(0);
    expect(q.fd).toBe(fx.fd + 1);
    expect(fx.proc.fcntl(q.fd, 1 /* F_GETFD */)).toBe(1);
    // another type is another queue
    const q2 = veventqAlloc(fx, fx.viommuId, 1);
    expect(q2.rc).toBe(0);
    // nothing queued: a read gives 0, poll nothing; positioned reads and writes are refused
    expect(fx.proc.read(q.fd, new Uint8Array(64))).toBe(0);
    const pfd = [{ fd: q.fd, events: 0x1 | 0x4 | 0x40 }];
    expect(fx.proc.poll(pfd, 0)).toBe(0);
    expect(fx.proc.pread(q.fd, new Uint8Array(64), 0)).toBe(-errno.ESPIPE);
    expect(fx.proc.write(q.fd, new Uint8Array(8))).toBe(-errno.EINVAL);
    // the file holds the queue, the queue its vIOMMU
    expect(destroy(fx, q.id)).toBe(-errno.EBUSY);
    expect(fx.proc.close(q.fd)).toBe(0);
    expect(destroy(fx, fx.nestedHwptId)).toBe(0);
    expect(destroy(fx, fx.viommuId)).toBe(-errno.EBUSY);
    expect(destroy(fx, q.id)).toBe(0);
    expect(fx.proc.close(q2.fd)).toBe(0);
    expect(destroy(fx, q2.id)).toBe(0);
    expect(destroy(fx, fx.viommuId)).toBe(0);
    teardown(fx);
  });

  it("TRIGGER_VEVENT: needs the vIOMMU attachment, a virt_id and a SELFTEST queue", async () => {
    const fx = await setup(true);
    expect(triggerVevents(fx, 0, 1)).toBe(-errno.ENOENT);
    // not attached through the vIOMMU
    expect(triggerVevents(fx, fx.deviceId, 1)).toBe(-errno.ENOENT);
    const v = vdeviceAlloc(fx, fx.viommuId, fx.deviceId, 0);
    expect(v.rc).toBe(0);
    expect(replace(fx, fx.nestedHwptId)).toBe(0);
    // virt_id 0 does not report
    expect(triggerVevents(fx, fx.deviceId, 1)).toBe(-errno.ENOENT);
    expect(replace(fx, fx.ioasId)).toBe(0);
    expect(destroy(fx, v.id)).toBe(0);
    expect(vdeviceAlloc(fx, fx.viommuId, fx.deviceId, 7).rc).toBe(0);
    expect(replace(fx, fx.nestedHwptId)).toBe(0);
    // no queue of the selftest type
    expect(triggerVevents(fx, fx.deviceId, 1)).toBe(-errno.EOPNOTSUPP);
    teardown(fx);
  });

  it("read: whole events, sequence numbers, one lost-events header while full", async () => {
    const fx = await queueFx(2);
    expect(triggerVevents(fx, fx.deviceId, 1)).toBe(0);
    const pfd = [{ fd: fx.q.fd, events: 0x1 | 0x40, revents: 0 }];
    expect(fx.proc.poll(pfd, 0)).toBe(1);
    expect(pfd[0].revents).toBe(0x1 | 0x40);
    // too small for the header, then for the data: nothing read, nothing lost
    expect(read(fx, 7)).toEqual([]);
    expect(read(fx, 11)).toEqual([]);
    expect(read(fx, 12)).toEqual(rec(0, 0, 0x99));
    // four reports into a queue of two: two events, then the header (moved along, sequence 4)
    expect(triggerVevents(fx, fx.deviceId, 4)).toBe(0);
    expect(read(fx, 100)).toEqual([...rec(0, 1, 0x99), ...rec(0, 2, 0x99), ...rec(IOMMU_VEVENTQ_FLAG_LOST_EVENTS, 4)]);
    expect(read(fx, 100)).toEqual([]);
    // room again: the next event has the next sequence
    expect(triggerVevents(fx, fx.deviceId, 1)).toBe(0);
    expect(read(fx, 100)).toEqual(rec(0, 5, 0x99));
    // one at a time: the events, then the header alone in 8 bytes (the loss was at report time)
    expect(triggerVevents(fx, fx.deviceId, 3)).toBe(0);
    expect(read(fx, 12)).toEqual(rec(0, 6, 0x99));
    expect(read(fx, 12)).toEqual(rec(0, 7, 0x99));
    expect(read(fx, 8)).toEqual(rec(IOMMU_VEVENTQ_FLAG_LOST_EVENTS, 8));
    // an event first in line needs room for its data; the header behind it only its own size
    expect(triggerVevents(fx, fx.deviceId, 3)).toBe(0);
    expect(read(fx, 8)).toEqual([]);
    expect(read(fx, 32)).toEqual([...rec(0, 9, 0x99), ...rec(0, 10, 0x99), ...rec(IOMMU_VEVENTQ_FLAG_LOST_EVENTS, 11)]);
    expect(fx.proc.close(fx.q.fd)).toBe(0);
    teardown(fx);
  });

  it("events left in the queue go with it; the fd keeps the context", async () => {
    const fx = await queueFx(4);
    expect(triggerVevents(fx, fx.deviceId, 3)).toBe(0);
    expect(fx.proc.close(fx.fd)).toBe(0);
    expect(fx.kernel.stats().iommufdContexts).toBe(1);
    expect(fx.proc.close(fx.q.fd)).toBe(0);
    expect(fx.kernel.stats().iommufdContexts).toBe(0);
    expect(fx.kernel.stats().iommufdObjects).toBe(0);
  });
});

describe("vIOMMU user data and its mmap", () => {
  const SELF = IOMMU_VIOMMU_TYPE_SELFTEST;
  const objects = (fx: Fixture): number => fx.kernel.stats().iommufdObjects;
  /** A struct iommu_viommu_selftest { in_data } in user memory, the rest 0xff. */
  function dataAt(fx: Fixture, inData: number): number {
    const at = mmapAnon(fx.proc, PG);
    const c = new Cmd(32);
    c.buf.fill(0xff);
    c.u32(0, inData);
    expect(fx.proc.writeMemory(at, c.buf)).toBe(0);
    return at;
  }

  it("data_len: from offsetofend(out_data) to sizeof, a readable pointer; a failure leaves nothing", async () => {
    const fx = await setup(true);
    const data = dataAt(fx, 0x1234);
    const before = objects(fx);
    const frames = fx.kernel.stats().framesFree;
    expect(viommuAlloc(fx, fx.deviceId, fx.hwptId, SELF, 0, data, 7).rc).toBe(-errno.EINVAL);
    expect(viommuAlloc(fx, fx.deviceId, fx.hwptId, SELF, 0, data, 25).rc).toBe(-errno.EINVAL);
    expect(viommuAlloc(fx, fx.deviceId, fx.hwptId, SELF, 0, 0, 24).rc).toBe(-errno.EFAULT);
    // a pointer without a length is no data at all
    expect(viommuAlloc(fx, fx.deviceId, fx.hwptId, SELF, 0, 0, 0).rc).toBe(0);
    expect(objects(fx)).toBe(before + 1);
    expect(destroy(fx, before + 1)).toBe(0);
    expect(objects(fx)).toBe(before);
    expect(fx.kernel.stats().framesFree).toBe(frames);
    // 8 bytes: only in_data and out_data are written back; the region exists all the same
    const v = viommuAlloc(fx, fx.deviceId, fx.hwptId, SELF, 0, data, 8);
    expect(v.rc).toBe(0);
    const b = new Uint8Array(24);
    expect(fx.proc.readMemory(data, b)).toBe(0);
    expect([...b.subarray(0, 8)]).toEqual([0x34, 0x12, 0, 0, 0x34, 0x12, 0, 0]);
    expect(b.subarray(8).every((x) => x === 0xff)).toBe(true);
    const at = mmapIommufd(fx, 2 * PG, PG);
    expect(at).toBeGreaterThan(0);
    expect(readU32(fx, at)).toBe(0x1234);
    // (the second page is zeroed)
    expect(readU32(fx, at + PG)).toBe(0);
    expect(fx.proc.munmap(at, 2 * PG)).toBe(0);
    // the pages go with the vIOMMU
    expect(destroy(fx, v.id)).toBe(0);
    expect(fx.kernel.stats().framesFree).toBe(frames);
    teardown(fx);
  });

  it("offsets: from PAGE_SIZE up, the lowest free range; mmap must be shared and not executable", async () => {
    const fx = await setup(true);
    const d1 = dataAt(fx, 1), d2 = dataAt(fx, 2), d3 = dataAt(fx, 3);
    const v1 = viommuAlloc(fx, fx.deviceId, fx.hwptId, SELF, 0, d1, 24);
    const v2 = viommuAlloc(fx, fx.deviceId, fx.hwptId, SELF, 0, d2, 24);
    expect([v1.rc, v2.rc]).toEqual([0, 0]);
    expect(readData(fx, d1).mmapOffset).toBe(PG);
    expect(readData(fx, d2).mmapOffset).toBe(3 * PG);
    expect(destroy(fx, v1.id)).toBe(0);
    const v3 = viommuAlloc(fx, fx.deviceId, fx.hwptId, SELF, 0, d3, 24);
    expect(v3.rc).toBe(0);
    expect(readData(fx, d3).mmapOffset).toBe(PG);
    // offset 0 is nobody's; the first page after a region neither
    expect(mmapIommufd(fx, 2 * PG, 0)).toBe(-errno.ENXIO);
    expect(mmapIommufd(fx, 2 * PG, 5 * PG)).toBe(-errno.ENXIO);
    expect(mmapIommufd(fx, 2 * PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE)).toBe(-errno.EINVAL);
    expect(mmapIommufd(fx, 2 * PG, PG, PROT_READ | PROT_EXEC)).toBe(-errno.EPERM);
    const at = mmapIommufd(fx, 2 * PG, 3 * PG);
    expect(readU32(fx, at)).toBe(2);
    // a pfn mapping: IOAS_MAP of it pins nothing (the IOAS has a mock domain: EFAULT at map)
    expect(mapAuto(fx, fx.ioasId, at, PG).rc).toBe(-errno.EFAULT);
    expect(fx.proc.munmap(at, 2 * PG)).toBe(0);
    teardown(fx);
  });

  it("each VMA over the region holds its vIOMMU, and the context", async () => {
    const fx = await setup(true);
    const data = dataAt(fx, 0xbeef);
    const v = viommuAlloc(fx, fx.deviceId, fx.hwptId, SELF, 0, data, 24);
    expect(v.rc).toBe(0);
    const at = mmapIommufd(fx, 2 * PG, PG);
    expect(at).toBeGreaterThan(0);
    // split in two by unmapping the first page: the second still holds the vIOMMU
    expect(fx.proc.munmap(at, PG)).toBe(0);
    expect(destroy(fx, v.id)).toBe(-errno.EBUSY);
    // closing the fd leaves the context to the mapping
    expect(fx.proc.close(fx.fd)).toBe(0);
    expect(fx.kernel.stats().iommufdContexts).toBe(1);
    expect(fx.kernel.stats().iommufdObjects).toBeGreaterThan(0);
    expect(readU32(fx, at + PG)).toBe(0);
    expect(fx.proc.munmap(at + PG, PG)).toBe(0);
    expect(fx.kernel.stats().iommufdContexts).toBe(0);
    expectNoLeaks(fx.kernel);
  });
});

describe("HW queue rules", () => {
  const SELF = IOMMU_HW_QUEUE_TYPE_SELFTEST;
  const U64_MAX = 0xffff_ffff_ffff_ffffn;
  const objects = (fx: Fixture): number => fx.kernel.stats().iommufdObjects;

  it("HW_QUEUE_ALLOC: the order of the checks; a failure leaves nothing", async () => {
    const fx = await setup(true);
    const start = BigInt(MOCK_APERTURE_START);
    const before = objects(fx);
    // flags, then the DEFAULT type, then the length, then the range: all before the vIOMMU
    expect(hwQueueAlloc(fx, 0, SELF, 0, 0, 0, 1).rc).toBe(-errno.EOPNOTSUPP);
    expect(hwQueueAlloc(fx, 0, IOMMU_HW_QUEUE_TYPE_DEFAULT, 0, 0, 0).rc).toBe(-errno.EOPNOTSUPP);
    expect(hwQueueAlloc(fx, 0, SELF, 0, U64_MAX, 0).rc).toBe(-errno.EINVAL);
    expect(hwQueueAlloc(fx, 0, SELF, 0, U64_MAX, 2).rc).toBe(-errno.EOVERFLOW);
    // the vIOMMU: id 0, an id of another kind
    expect(hwQueueAlloc(fx, 0, SELF, 0, start, PG).rc).toBe(-errno.ENOENT);
    expect(hwQueueAlloc(fx, fx.hwptId, SELF, 0, start, PG).rc).toBe(-errno.ENOENT);
    // then a type the mock's vIOMMU has queues of (IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV is not)
    expect(hwQueueAlloc(fx, 0, 1, 0, start, PG).rc).toBe(-errno.ENOENT);
    expect(hwQueueAlloc(fx, fx.viommuId, 1, 0, start, PG).rc).toBe(-errno.EOPNOTSUPP);
    // rounding the range out to whole pages overflows
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, 0, 1, U64_MAX).rc).toBe(-errno.ERANGE);
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, 0, 0, U64_MAX).rc).toBe(-errno.ERANGE);
    // the page array: more than INT_MAX bytes of pointers cannot be had; one page less is
    // looked up (and is not mapped)
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, 0, start, 1n << 40n).rc).toBe(-errno.ENOMEM);
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, 0, start, (1n << 40n) - BigInt(PG)).rc).toBe(-errno.ENOENT);
    // the memory before the index
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, IOMMU_TEST_HW_QUEUE_MAX, start, PG).rc).toBe(-errno.ENOENT);
    const buffer = hugeAlignedBuffer(fx.proc);
    const m = mapAuto(fx, fx.ioasId, buffer, PG);
    expect(m.rc).toBe(0);
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, IOMMU_TEST_HW_QUEUE_MAX, m.iova, PG).rc).toBe(-errno.EINVAL);
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, 1, m.iova, PG).rc).toBe(-errno.EIO);
    // none of these kept an object or a lock
    expect(objects(fx)).toBe(before);
    expect(unmap(fx, fx.ioasId, m.iova, PG).rc).toBe(0);
    teardown(fx);
  });

  it("a queue holds its vIOMMU and its internal access, which takes the next id", async () => {
    const fx = await setup(true);
    const buffer = hugeAlignedBuffer(fx.proc);
    const m = mapAuto(fx, fx.ioasId, buffer, PG);
    expect(m.rc).toBe(0);
    const before = objects(fx);
    const q0 = hwQueueAlloc(fx, fx.viommuId, SELF, 0, m.iova, PG);
    expect(q0.rc).toBe(0);
    expect(objects(fx)).toBe(before + 2);
    // the access is an object userspace cannot destroy: its queue holds it
    expect(destroy(fx, q0.id + 1)).toBe(-errno.EBUSY);
    const ioas = ioasAlloc(fx);
    expect(ioas).toBe(q0.id + 2);
    expect(destroy(fx, ioas)).toBe(0);
    // the vIOMMU outlives its queues (and its nested HWPT)
    expect(destroy(fx, fx.viommuId)).toBe(-errno.EBUSY);
    expect(destroy(fx, fx.nestedHwptId)).toBe(0);
    expect(destroy(fx, fx.viommuId)).toBe(-errno.EBUSY);
    expect(destroy(fx, q0.id)).toBe(0);
    expect(objects(fx)).toBe(before - 1);
    // both ids are free again (after the nested HWPT's)
    expect(ioasAlloc(fx)).toBe(fx.nestedHwptId);
    expect(ioasAlloc(fx)).toBe(q0.id);
    expect(ioasAlloc(fx)).toBe(q0.id + 1);
    expect(destroy(fx, fx.viommuId)).toBe(0);
    teardown(fx);
  });

  it("queue memory: physically contiguous pages, readable, on a unit the mock translates", async () => {
    const fx = await setup(true);
    const buffer = hugeAlignedBuffer(fx.proc);
    const frame = (va: number): number => fx.proc.mm.frameOf(va);
    // pages 1 and 0 faulted in that order, mapped one after the other at fixed IOVAs
    expect(fx.proc.writeMemory(buffer + PG, new Uint8Array([1]))).toBe(0);
    expect(fx.proc.writeMemory(buffer, new Uint8Array([1]))).toBe(0);
    expect(frame(buffer + PG)).not.toBe(frame(buffer) + 1);
    const at = BigInt(MOCK_APERTURE_START);
    expect(mapFixedRw(fx, buffer, PG, at)).toBe(0);
    expect(mapFixedRw(fx, buffer + PG, PG, at + BigInt(PG))).toBe(0);
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, 0, at, 2 * PG).rc).toBe(-errno.EFAULT);
    // (a queue within the second half of page 0 reaching into page 1 needs both)
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, 0, at + BigInt(PG / 2), PG).rc).toBe(-errno.EFAULT);
    // pages 2 and 3 faulted in order, one mapping
    expect(fx.proc.writeMemory(buffer + 2 * PG, new Uint8Array(2 * PG))).toBe(0);
    expect(frame(buffer + 3 * PG)).toBe(frame(buffer + 2 * PG) + 1);
    const m = mapAuto(fx, fx.ioasId, buffer + 2 * PG, 2 * PG);
    expect(m.rc).toBe(0);
    // a base inside a MOCK_PAGE_SIZE unit: the mock's translation of it is the unit's start
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, 0, m.iova + 8n, 64).rc).toBe(-errno.EFAULT);
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, 0, m.iova + BigInt(PG / 2) + 8n, 64).rc).toBe(-errno.EFAULT);
    const q0 = hwQueueAlloc(fx, fx.viommuId, SELF, 0, m.iova + BigInt(PG / 2), 2 * PG - PG / 2);
    expect(q0.rc).toBe(0);
    // a write-only mapping cannot be read by the queue
    const w = mapAuto(fx, fx.ioasId, buffer + 4 * PG, PG, WRITE);
    expect(w.rc).toBe(0);
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, 1, w.iova, PG).rc).toBe(-errno.EPERM);
    expect(unmap(fx, fx.ioasId, w.iova, PG).rc).toBe(0);
    // the two pages at `at` were never locked
    expect(unmap(fx, fx.ioasId, at, 2 * PG).rc).toBe(0);
    expect(destroy(fx, q0.id)).toBe(0);
    teardown(fx);
  });

  it("IOAS_UNMAP of a locked area: EBUSY before ENOENT, the areas before it are gone", async () => {
    const fx = await setup(true);
    const buffer = hugeAlignedBuffer(fx.proc);
    const at = BigInt(MOCK_APERTURE_START);
    expect(mapFixedRw(fx, buffer, PG, at)).toBe(0);
    expect(mapFixedRw(fx, buffer + PG, 2 * PG, at + BigInt(PG))).toBe(0);
    expect(mapFixedRw(fx, buffer + 3 * PG, PG, at + BigInt(3 * PG))).toBe(0);
    const q0 = hwQueueAlloc(fx, fx.viommuId, SELF, 0, at + BigInt(PG), PG);
    expect(q0.rc).toBe(0);
    // a range that would split the locked area: the lock is seen first
    expect(unmap(fx, fx.ioasId, at + BigInt(PG), PG).rc).toBe(-errno.EBUSY);
    // unmapping everything removes the first area, then stops at the locked one
    expect(unmap(fx, fx.ioasId, 0, U64_MAX).rc).toBe(-errno.EBUSY);
    expect(unmap(fx, fx.ioasId, at, PG).rc).toBe(-errno.ENOENT);
    expect(unmap(fx, fx.ioasId, at + BigInt(3 * PG), PG).rc).toBe(0);
    // (while it lives the pin is the queue's alone: nothing else can give it back)
    expect(unmap(fx, fx.ioasId, at + BigInt(PG), 2 * PG).rc).toBe(-errno.EBUSY);
    expect(destroy(fx, q0.id)).toBe(0);
    expect(unmap(fx, fx.ioasId, 0, U64_MAX)).toEqual({ rc: 0, length: BigInt(2 * PG) });
    teardown(fx);
  });

  it("the access's page alignment: EADDRINUSE over a sub-page area, sub-page maps refused while a queue lives", async () => {
    const fx = await setup(true);
    const buffer = hugeAlignedBuffer(fx.proc);
    const at = BigInt(MOCK_APERTURE_START);
    expect(mapFixedRw(fx, buffer, PG, at)).toBe(0);
    // the mock domain maps 2 KiB units: half a page is a valid area
    expect(mapFixedRw(fx, buffer + PG + PG / 2, PG / 2, at + BigInt(PG + PG / 2))).toBe(0);
    const before = objects(fx);
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, 0, at, PG).rc).toBe(-errno.EADDRINUSE);
    expect(objects(fx)).toBe(before);
    expect(unmap(fx, fx.ioasId, at + BigInt(PG + PG / 2), PG / 2).rc).toBe(0);
    const q0 = hwQueueAlloc(fx, fx.viommuId, SELF, 0, at, PG);
    expect(q0.rc).toBe(0);
    expect(mapFixedRw(fx, buffer + PG + PG / 2, PG / 2, at + BigInt(PG + PG / 2))).toBe(-errno.EINVAL);
    expect(destroy(fx, q0.id)).toBe(0);
    expect(mapFixedRw(fx, buffer + PG + PG / 2, PG / 2, at + BigInt(PG + PG / 2))).toBe(0);
    teardown(fx);
  });

  it("closing the context frees dependent queues, their accesses and pins", async () => {
    const fx = await setup(true);
    const buffer = hugeAlignedBuffer(fx.proc);
    const m = mapAuto(fx, fx.ioasId, buffer, PG);
    expect(m.rc).toBe(0);
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, 0, m.iova, PG).rc).toBe(0);
    expect(hwQueueAlloc(fx, fx.viommuId, SELF, 1, m.iova, PG).rc).toBe(0);
    teardown(fx);
  });
});

const mapFixedRw = (fx: Fixture, va: number, length: number, iova: bigint): number =>
  io(fx, IOMMU_IOAS_MAP, mapCmd({ flags: RW | FIXED, ioasId: (fx as ViommuFx).ioasId, userVa: va, length, iova }));
