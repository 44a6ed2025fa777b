// PASID attachments (drivers/iommu/iommufd/device.c with a pasid, the IOMMU core's
// iommu_attach_device_pasid / iommu_replace_device_pasid, the mock's set_dev_pasid and its
// PASID-capable device, the selftest's PASID_ATTACH/REPLACE/DETACH/CHECK_HWPT ops) and their
// VFIO side (VFIO_DEVICE_ATTACH/DETACH_IOMMUFD_PT with the PASID flags on the device cdev).

import { describe, it, expect } from "vitest";
import { takeMockPageResponses } from "../../src/testing.js";
import {
  errno, IOMMU_HWPT_ALLOC, IOMMU_TEST_CMD, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_SELFTEST, Cmd, io, teardown, destroy,
  hwptAllocCmd, mockDomainReplaceCmd, type Fixture,
} from "./util.js";
import {
  IOMMU_HWPT_FAULT_ID_VALID, IOMMUFD_PAGE_RESP_INVALID, IOMMUFD_PAGE_RESP_SUCCESS, PGFAULT,
  IOMMU_PGFAULT_FLAGS_LAST_PAGE, IOMMU_PGFAULT_FLAGS_PASID_VALID, faultAllocOk, hwptAllocIopf, parsePgfault,
  triggerIopf,
} from "./iopf_util.js";
import {
  IOMMU_HWPT_ALLOC_PASID, MOCK_PASID_WIDTH, IOMMU_TEST_PASID_RESERVED, pasidAttach, pasidReplace,
  pasidDetach, pasidCheckHwpt, hwInfoMaxPasid, pasidFixture, replace, hwptOk, selftestData,
  attachOk, check,
} from "./pasid_util.js";
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_DETACH_IOMMUFD_PT, attach as vfioAttach, boot, cdevFixture,
  destroy as vfioDestroy, ioasAlloc as vfioIoasAlloc, struct, thrown,
} from "../vfio/util.js";
import { IommuFd, VfioDeviceFile } from "../../src/index.js";
import { hwptAlloc } from "../toolkit/iommufd.js";

const VFIO_DEVICE_ATTACH_PASID = 1 << 0, VFIO_DEVICE_DETACH_PASID = 1 << 0;

// ---------------------------------------------------------------------------------------------
// The rules behind the kernel's iommufd_device_pasid tests (device_pasid.test.ts), one by one

describe("iommufd PASID attachments", () => {
  it("the attach rules: PASID range, compatibility both ways, EBUSY, the IOMMU", async () => {
    const fx = await pasidFixture(true);
    const data = selftestData(fx);
    const s2 = hwptOk(fx, fx.deviceId, fx.ioasId, IOMMU_HWPT_ALLOC_PASID);
    const plain = hwptOk(fx, fx.deviceId, fx.ioasId, 0);
    // the RID is on the IOAS's automatic HWPT (not PASID-compatible): every PASID refuses
    expect(pasidAttach(fx, fx.stdevId, 1, s2).rc).toBe(-errno.EINVAL);
    // blocked RID: PASIDs below 2^MOCK_PASID_WIDTH attach
    expect(replace(fx, fx.stdevId, s2)).toBe(0);
    expect(pasidAttach(fx, fx.stdevId, 1 << MOCK_PASID_WIDTH, s2).rc, "past max_pasids").toBe(-errno.EINVAL);
    const top = pasidAttach(fx, fx.stdevId, (1 << MOCK_PASID_WIDTH) - 1, s2);
    expect(top).toEqual({ rc: 0, ptId: s2 });
    // a missing pt_id, a missing stdev, an object that is not a selftest device
    expect(pasidAttach(fx, fx.stdevId, 5, 0xffff).rc).toBe(-errno.ENOENT);
    expect(pasidAttach(fx, 0xffff, 5, s2).rc).toBe(-errno.ENOENT);
    expect(pasidAttach(fx, fx.deviceId, 5, s2).rc).toBe(-errno.ENOENT);
    // an object that is no page table: EINVAL
    expect(pasidAttach(fx, fx.stdevId, 5, fx.stdevId).rc).toBe(-errno.EINVAL);
    // with a PASID attached, the RID moves only to PASID-compatible HWPTs
    expect(replace(fx, fx.stdevId, plain)).toBe(-errno.EINVAL);
    expect(replace(fx, fx.stdevId, fx.ioasId)).toBe(-errno.EINVAL);
    check(fx, fx.stdevId, 0, s2);
    // the HWPT is held by the PASID
    expect(replace(fx, fx.stdevId, hwptOk(fx, fx.deviceId, fx.ioasId, IOMMU_HWPT_ALLOC_PASID))).toBe(0);
    expect(destroy(fx, s2)).toBe(-errno.EBUSY);
    expect(pasidDetach(fx, fx.stdevId, (1 << MOCK_PASID_WIDTH) - 1)).toBe(0);
    expect(destroy(fx, s2)).toBe(0);
    // a nested HWPT without IOMMU_HWPT_ALLOC_PASID cannot go to a PASID; PASID is the only
    // flag a nested HWPT takes besides FAULT_ID_VALID
    const parent = hwptOk(fx, fx.deviceId, fx.ioasId, IOMMU_HWPT_ALLOC_NEST_PARENT);
    const n = hwptOk(fx, fx.deviceId, parent, 0, data);
    expect(pasidAttach(fx, fx.stdevId, 7, n).rc).toBe(-errno.EINVAL);
    expect(hwptAlloc(fx, fx.deviceId, parent, IOMMU_HWPT_ALLOC_PASID | IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_SELFTEST, data, 8).rc).toBe(-errno.EOPNOTSUPP);
    // the PASID's HWPT in PASID_CHECK_HWPT: 0 means "none"; a missing id ENOENT, an IOAS EINVAL
    expect(pasidCheckHwpt(fx, fx.stdevId, 7, parent)).toBe(-errno.EINVAL);
    expect(pasidCheckHwpt(fx, fx.stdevId, 7, 0xffff)).toBe(-errno.ENOENT);
    expect(pasidCheckHwpt(fx, fx.stdevId, 7, fx.ioasId)).toBe(-errno.EINVAL);
    expect(pasidCheckHwpt(fx, 0xffff, 7, 0)).toBe(-errno.ENOENT);
    // PASID 0 is the RID
    expect(pasidCheckHwpt(fx, fx.stdevId, 0, 0)).toBe(-errno.EINVAL);
    const back = mockDomainReplaceCmd(fx.stdevId, fx.ioasId);
    expect(io(fx, IOMMU_TEST_CMD, back)).toBe(0);
    check(fx, fx.stdevId, 0, back.g32(16));
    teardown(fx);
  });

  it("the reserved PASID's injected failure alternates; detaching disarms it", async () => {
    const fx = await pasidFixture(true);
    const s2 = hwptOk(fx, fx.deviceId, fx.ioasId, IOMMU_HWPT_ALLOC_PASID);
    const s2b = hwptOk(fx, fx.deviceId, fx.ioasId, IOMMU_HWPT_ALLOC_PASID);
    expect(replace(fx, fx.stdevId, s2)).toBe(0);
    const P = IOMMU_TEST_PASID_RESERVED;
    attachOk(fx, fx.stdevId, P, s2); // arms
    expect(pasidReplace(fx, fx.stdevId, P, s2b).rc).toBe(-errno.ENOMEM); // fails, disarms
    expect(pasidReplace(fx, fx.stdevId, P, s2b).rc).toBe(0); // arms
    check(fx, fx.stdevId, P, s2b);
    expect(pasidDetach(fx, fx.stdevId, P)).toBe(0); // disarms
    attachOk(fx, fx.stdevId, P, s2); // arms again
    expect(pasidReplace(fx, fx.stdevId, P, s2b).rc).toBe(-errno.ENOMEM);
    check(fx, fx.stdevId, P, s2);
    // replacing onto the same HWPT reaches no driver
    expect(pasidReplace(fx, fx.stdevId, P, s2).rc).toBe(0);
    // other PASIDs are not affected
    attachOk(fx, fx.stdevId, P + 1, s2);
    expect(pasidReplace(fx, fx.stdevId, P + 1, s2b).rc).toBe(0);
    // destroying the device detaches its PASIDs: nothing is left behind
    expect(destroy(fx, fx.stdevId)).toBe(0);
    expect(destroy(fx, s2)).toBe(0);
    expect(destroy(fx, s2b)).toBe(0);
    teardown(fx);
  });

  it("IO page faults at a PASID go to its attachment; detach and replace answer them", async () => {
    const fx = await pasidFixture(true);
    const data = selftestData(fx);
    const s2 = hwptOk(fx, fx.deviceId, fx.ioasId, IOMMU_HWPT_ALLOC_PASID);
    const parent = hwptOk(fx, fx.deviceId, fx.ioasId, IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_PASID);
    const fault = faultAllocOk(fx);
    const iopf = hwptAllocIopf(fx, fx.deviceId, parent, fault.id, IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID, data);
    expect(iopf.rc).toBe(0);
    // a fault-capable paging HWPT (not a nest parent) for the RID
    const rc = hwptAllocCmd({ devId: fx.deviceId, ptId: fx.ioasId, flags: IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID }).u32(40, fault.id);
    expect(io(fx, IOMMU_HWPT_ALLOC, rc)).toBe(0);
    const ridIopf = { id: rc.g32(16) };
    // an unknown fault id undoes the paging HWPT
    const before = fx.kernel.stats().iommufdObjects;
    const bad = hwptAllocCmd({ devId: fx.deviceId, ptId: fx.ioasId, flags: IOMMU_HWPT_FAULT_ID_VALID }).u32(40, 0xffff);
    expect(io(fx, IOMMU_HWPT_ALLOC, bad)).toBe(-errno.ENOENT);
    expect(fx.kernel.stats().iommufdObjects).toBe(before);
    // (the fault queue is held by it)
    expect(destroy(fx, fault.id)).toBe(-errno.EBUSY);
    expect(hwptAlloc(fx, fx.deviceId, fx.ioasId, IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_NEST_PARENT).rc).toBe(-errno.EOPNOTSUPP);
    expect(replace(fx, fx.stdevId, s2)).toBe(0);
    attachOk(fx, fx.stdevId, 9, iopf.id);
    // PASID 9: queued, record names the PASID
    expect(triggerIopf(fx, fx.deviceId, 9, 1)).toBe(0);
    const rec = new Uint8Array(PGFAULT);
    expect(fx.proc.read(fault.fd, rec)).toBe(PGFAULT);
    expect(parsePgfault(rec)).toMatchObject({
      flags: IOMMU_PGFAULT_FLAGS_PASID_VALID | IOMMU_PGFAULT_FLAGS_LAST_PAGE, dev_id: fx.deviceId, pasid: 9, grpid: 1, cookie: 1,
    });
    // PASID 8 (nothing there, the RID's HWPT is paging, not nested) and no PASID (the RID's
    // paging HWPT has no queue): unhandled
    expect(triggerIopf(fx, fx.deviceId, 8, 2)).toBe(0);
    expect(triggerIopf(fx, fx.deviceId, 0, 3)).toBe(0);
    expect(takeMockPageResponses(fx.kernel).map((r) => [r.pasid, r.grpid, r.code])).toEqual([[8, 2, 1], [0, 3, 1]]);
    // the RID on the fault-capable paging HWPT: a fault without PASID goes there, one with
    // PASID 8 still has no handler (paging, not nested)
    expect(replace(fx, fx.stdevId, ridIopf.id)).toBe(0);
    expect(triggerIopf(fx, fx.deviceId, 0, 4)).toBe(0);
    expect(triggerIopf(fx, fx.deviceId, 8, 5)).toBe(0);
    expect(takeMockPageResponses(fx.kernel).map((r) => [r.pasid, r.grpid, r.code])).toEqual([[8, 5, 1]]);
    const two = new Uint8Array(2 * PGFAULT);
    expect(fx.proc.read(fault.fd, two)).toBe(PGFAULT);
    expect(parsePgfault(two)).toMatchObject({ flags: IOMMU_PGFAULT_FLAGS_LAST_PAGE, pasid: 0, grpid: 4, cookie: 2 });
    // the RID leaves it: only the RID's fault is answered; the PASID's stays pending
    expect(replace(fx, fx.stdevId, s2)).toBe(0);
    expect(takeMockPageResponses(fx.kernel).map((r) => [r.pasid, r.grpid, r.code])).toEqual([[0, 4, IOMMUFD_PAGE_RESP_INVALID]]);
    expect(fx.proc.write(fault.fd, new Cmd(8).u32(0, 2).buf)).toBe(-errno.EINVAL);
    // the PASID's answer still goes through
    expect(fx.proc.write(fault.fd, new Cmd(8).u32(0, 1).u32(4, IOMMUFD_PAGE_RESP_SUCCESS).buf)).toBe(8);
    expect(takeMockPageResponses(fx.kernel).map((r) => [r.pasid, r.grpid, r.code])).toEqual([[9, 1, IOMMUFD_PAGE_RESP_SUCCESS]]);
    // pending at the PASID: detach answers it
    expect(triggerIopf(fx, fx.deviceId, 9, 6)).toBe(0);
    expect(pasidDetach(fx, fx.stdevId, 9)).toBe(0);
    expect(takeMockPageResponses(fx.kernel).map((r) => [r.pasid, r.grpid, r.code])).toEqual([[9, 6, IOMMUFD_PAGE_RESP_INVALID]]);
    expect(fx.proc.read(fault.fd, rec)).toBe(0);
    // and replace
    attachOk(fx, fx.stdevId, 9, iopf.id);
    expect(triggerIopf(fx, fx.deviceId, 9, 7)).toBe(0);
    expect(pasidReplace(fx, fx.stdevId, 9, s2).rc).toBe(0);
    expect(takeMockPageResponses(fx.kernel).map((r) => [r.pasid, r.grpid, r.code])).toEqual([[9, 7, IOMMUFD_PAGE_RESP_INVALID]]);
    expect(pasidDetach(fx, fx.stdevId, 9)).toBe(0);
    expect(replace(fx, fx.stdevId, fx.ioasId)).toBe(0);
    expect(fx.proc.close(fault.fd)).toBe(0);
    teardown(fx);
  });

  it("GET_HW_INFO: out_max_pasid_log2 is MOCK_PASID_WIDTH for a PASID-capable device, else 0", async () => {
    const fx = await pasidFixture(false);
    expect(hwInfoMaxPasid(fx, fx.deviceId)).toEqual({ rc: 0, maxPasid: MOCK_PASID_WIDTH });
    expect(hwInfoMaxPasid(fx, fx.noPasidDeviceId)).toEqual({ rc: 0, maxPasid: 0 });
    teardown(fx);
  });
});

// ---------------------------------------------------------------------------------------------
// VFIO: the PASID flags of ATTACH/DETACH_IOMMUFD_PT (vfio_iommufd_physical_pasid_attach_ioas)

describe("vfio cdev PASID attach", () => {
  const attachPasid = (p: Fixture["proc"], d: number, pasid: number, pt: number): { rc: number; pt: number } => {
    const a = struct(16, [[0, 4, 16], [4, 4, VFIO_DEVICE_ATTACH_PASID], [8, 4, pt], [12, 4, pasid]]);
    const rc = p.ioctlBuf(d, VFIO_DEVICE_ATTACH_IOMMUFD_PT, a);
    return { rc, pt: new DataView(a.buffer).getUint32(8, true) };
  };
  const detachPasid = (p: Fixture["proc"], d: number, pasid: number): number =>
    p.ioctlBuf(d, VFIO_DEVICE_DETACH_IOMMUFD_PT, struct(12, [[0, 4, 12], [4, 4, VFIO_DEVICE_DETACH_PASID], [8, 4, pasid]]));
  const hwpt = (p: Fixture["proc"], i: number, devId: number, pt: number, flags: number): number => {
    const c = hwptAllocCmd({ devId, ptId: pt, flags });
    expect(p.ioctlBuf(i, IOMMU_HWPT_ALLOC, c.buf)).toBe(0);
    return c.g32(16);
  };

  it("attach, replace and detach a PASID; the RID's compatibility; unbind detaches", async () => {
    const { k, p, d, i } = await cdevFixture({ bound: true });
    const ioas = vfioIoasAlloc(p, i); // 2
    const s2 = hwpt(p, i, 1, ioas, IOMMU_HWPT_ALLOC_PASID); // 3
    const s2b = hwpt(p, i, 1, ioas, IOMMU_HWPT_ALLOC_PASID); // 4
    const plain = hwpt(p, i, 1, ioas, 0); // 5
    // an IOAS: its automatic HWPT is not PASID-compatible
    expect(attachPasid(p, d, 3, ioas).rc).toBe(-errno.EINVAL);
    expect(attachPasid(p, d, 3, plain).rc).toBe(-errno.EINVAL);
    expect(attachPasid(p, d, 3, 99).rc).toBe(-errno.ENOENT);
    // the device has no PASID capability, but the IOMMU core only checks PASIDs of devices
    // that have some: the attach goes through (the device just cannot issue that PASID)
    expect(attachPasid(p, d, 3, s2)).toEqual({ rc: 0, pt: s2 });
    // a second attach of the same PASID replaces
    expect(attachPasid(p, d, 3, s2b)).toEqual({ rc: 0, pt: s2b });
    expect(vfioDestroy(p, i, s2)).toBe(0);
    expect(vfioDestroy(p, i, s2b)).toBe(-errno.EBUSY);
    // the RID cannot go to a HWPT that is not PASID-compatible while a PASID is attached
    expect(vfioAttach(p, d, plain)).toBe(-errno.EINVAL);
    expect(vfioAttach(p, d, ioas)).toBe(-errno.EINVAL);
    const s2c = hwpt(p, i, 1, ioas, IOMMU_HWPT_ALLOC_PASID);
    expect(vfioAttach(p, d, s2c)).toBe(s2c);
    // detach the PASID (twice: the second is a no-op), then the RID may go anywhere
    expect(detachPasid(p, d, 3)).toBe(0);
    expect(detachPasid(p, d, 3)).toBe(0);
    expect(vfioDestroy(p, i, s2b)).toBe(0);
    expect(vfioAttach(p, d, plain)).toBe(plain);
    // with the RID on a non-compatible HWPT, no PASID attaches
    const s2d = hwpt(p, i, 1, ioas, IOMMU_HWPT_ALLOC_PASID);
    expect(attachPasid(p, d, 4, s2d).rc).toBe(-errno.EINVAL);
    expect(vfioAttach(p, d, s2c)).toBe(s2c);
    expect(attachPasid(p, d, 4, s2d).rc).toBe(0);
    // closing the device file unbinds: its PASIDs and RID are detached first
    expect(p.close(d)).toBe(0);
    expect(vfioDestroy(p, i, s2d)).toBe(0);
    expect(vfioDestroy(p, i, s2c)).toBe(0);
    await k.close();
  });
});

describe("typed layer: VfioDeviceFile PASIDs", () => {
  it("attachPasid / detachPasid; errors say why", async () => {
    const k = await boot();
    const p = k.createProcess();
    const dev = VfioDeviceFile.open(p, k.devices[0]);
    const ifd = IommuFd.open(p);
    const unbound = thrown(() => dev.attachPasid(5, 2));
    expect([unbound.code, unbound.ioctl]).toEqual(["EINVAL", "VFIO_DEVICE_ATTACH_IOMMUFD_PT"]);
    expect(unbound.message).toMatch(/BIND it first/);
    expect(dev.bind(ifd)).toBe(1);
    const ioas = ifd.allocIoas();
    const c = hwptAllocCmd({ devId: 1, ptId: ioas.id, flags: IOMMU_HWPT_ALLOC_PASID });
    expect(p.ioctlBuf(ifd.fd, IOMMU_HWPT_ALLOC, c.buf)).toBe(0);
    const hwpt = c.g32(16);
    expect(thrown(() => dev.attachPasid(5, ioas)).message).toMatch(/not a PASID-compatible HWPT/);
    expect(() => dev.attachPasid(5, 99)).toThrowError(/no object 99/);
    expect(dev.attachPasid(5, hwpt)).toBe(hwpt);
    expect(dev.attachPasid(5, { id: hwpt })).toBe(hwpt); // a replace onto the same HWPT
    expect(vfioDestroy(p, ifd.fd, hwpt)).toBe(-errno.EBUSY);
    dev.detachPasid(5);
    dev.detachPasid(5);
    expect(vfioDestroy(p, ifd.fd, hwpt)).toBe(0);
    dev.close();
    ifd.close();
    await k.close();
  });
});
