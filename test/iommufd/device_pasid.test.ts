// Port of the kernel's FIXTURE iommufd_device_pasid (tools/testing/selftests/iommu/iommufd.c),
// both variants: PASID attach, replace and detach through the selftest's PASID ops, with
// PASID-compatible paging, nested, vIOMMU-nested and fault-capable HWPTs. Paraphrased; the
// rules behind it are tested one by one in pasid.test.ts.

import { describe, it, expect } from "vitest";
import {
  errno, IOMMU_HWPT_ALLOC_NEST_PARENT, cmd, io, teardown, destroy,
} from "./util.js";
import { IOMMU_HWPT_FAULT_ID_VALID, faultAllocOk, hwptAllocIopf, triggerIopfAndRespond } from "./iopf_util.js";
import {
  IOMMU_HWPT_ALLOC_PASID, IOMMU_TEST_PASID_RESERVED, pasidAttach, pasidReplace, pasidDetach,
  pasidFixture, replace, hwptOk, selftestData, attachOk, check,
} from "./pasid_util.js";

const IOMMU_VIOMMU_ALLOC = 0x3b90;
const IOMMU_VIOMMU_TYPE_SELFTEST = 0xdeadbeef;

describe.each([
  { name: "no_pasid", pasidCapable: false },
  { name: "has_pasid", pasidCapable: true },
])("FIXTURE iommufd_device_pasid ($name)", (variant) => {
  it("iommufd_device_pasid.pasid_attach", async () => {
    const fx = await pasidFixture(variant.pasidCapable);
    const data = selftestData(fx);
    let pasid = 100;
    // Detaching a PASID never attached is no failure
    expect(pasidDetach(fx, fx.stdevId, pasid)).toBe(0);

    // Two PASID-compatible nested HWPTs sharing a NEST_PARENT parent (itself not PASID-compatible)
    const parent = hwptOk(fx, fx.deviceId, fx.ioasId, IOMMU_HWPT_ALLOC_NEST_PARENT);
    const nested0 = hwptOk(fx, fx.deviceId, parent, IOMMU_HWPT_ALLOC_PASID, data);
    const nested1 = hwptOk(fx, fx.deviceId, parent, IOMMU_HWPT_ALLOC_PASID, data);
    // A fault-capable one
    const fault = faultAllocOk(fx);
    const iopf = hwptAllocIopf(fx, fx.deviceId, parent, fault.id, IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID, data);
    expect(iopf.rc).toBe(0);
    // A nested HWPT on a vIOMMU over the parent
    const v = cmd(40).u32(8, IOMMU_VIOMMU_TYPE_SELFTEST).u32(12, fx.deviceId).u32(16, parent);
    expect(io(fx, IOMMU_VIOMMU_ALLOC, v), "VIOMMU_ALLOC").toBe(0);
    hwptOk(fx, fx.deviceId, v.g32(20), IOMMU_HWPT_ALLOC_PASID, data);
    // A PASID-compatible paging HWPT
    const s2 = hwptOk(fx, fx.deviceId, fx.ioasId, IOMMU_HWPT_ALLOC_PASID);

    // RID on a HWPT that is not PASID-compatible: no PASID attach
    expect(replace(fx, fx.stdevId, parent)).toBe(0);
    expect(pasidAttach(fx, fx.stdevId, pasid, s2).rc).toBe(-errno.EINVAL);
    // RID on a PASID-compatible one: the PASID attaches, and then the RID cannot go back to
    // an incompatible HWPT
    expect(replace(fx, fx.stdevId, s2)).toBe(0);
    attachOk(fx, fx.stdevId, pasid, nested0);
    expect(replace(fx, fx.stdevId, parent)).toBe(-errno.EINVAL);
    // detached: no domain at the PASID
    expect(pasidDetach(fx, fx.stdevId, pasid)).toBe(0);
    check(fx, fx.stdevId, pasid, 0);

    if (!variant.pasidCapable) {
      // A PASID-compatible HWPT serves a device without PASIDs too
      expect(replace(fx, fx.noPasidStdevId, nested0)).toBe(0);
      expect(replace(fx, fx.noPasidStdevId, fx.ioasId)).toBe(0);
      // but its PASIDs do not attach, whatever the HWPT
      expect(pasidAttach(fx, fx.noPasidStdevId, pasid, parent).rc).toBe(-errno.EINVAL);
      expect(pasidAttach(fx, fx.noPasidStdevId, pasid, s2).rc).toBe(-errno.EINVAL);
    }

    // A HWPT that is not PASID-compatible: EINVAL, nothing attached
    expect(pasidAttach(fx, fx.stdevId, pasid, parent).rc).toBe(-errno.EINVAL);
    check(fx, fx.stdevId, pasid, 0);
    // An IOAS (its automatic HWPT is not PASID-compatible): EINVAL, nothing attached
    expect(pasidAttach(fx, fx.stdevId, pasid, fx.ioasId).rc).toBe(-errno.EINVAL);
    check(fx, fx.stdevId, pasid, 0);
    // The paging one attaches
    attachOk(fx, fx.stdevId, pasid, s2);
    check(fx, fx.stdevId, pasid, s2);
    // attach does not overwrite (replace does)
    expect(pasidAttach(fx, fx.stdevId, pasid, nested0).rc).toBe(-errno.EBUSY);
    expect(pasidDetach(fx, fx.stdevId, pasid)).toBe(0);
    check(fx, fx.stdevId, pasid, 0);
    // A nested one
    attachOk(fx, fx.stdevId, pasid, nested0);
    check(fx, fx.stdevId, pasid, nested0);
    expect(pasidAttach(fx, fx.stdevId, pasid, nested0).rc, "attached already, same HWPT").toBe(-errno.EBUSY);
    expect(pasidDetach(fx, fx.stdevId, pasid)).toBe(0);

    // Replace
    pasid = 200;
    expect(pasidReplace(fx, fx.stdevId, pasid, s2).rc, "not attached").toBe(-errno.EINVAL);
    attachOk(fx, fx.stdevId, pasid, s2);
    check(fx, fx.stdevId, pasid, s2);
    expect(pasidReplace(fx, fx.stdevId, pasid, fx.ioasId).rc, "IOAS").toBe(-errno.EINVAL);
    check(fx, fx.stdevId, pasid, s2);
    expect(pasidReplace(fx, fx.stdevId, pasid, nested0).rc).toBe(0);
    check(fx, fx.stdevId, pasid, nested0);
    expect(pasidReplace(fx, fx.stdevId, pasid, nested1).rc).toBe(0);
    check(fx, fx.stdevId, pasid, nested1);
    expect(pasidDetach(fx, fx.stdevId, pasid)).toBe(0);

    // The mock fails the call after the first at the reserved PASID: a failed replace keeps
    // the old domain
    pasid = IOMMU_TEST_PASID_RESERVED;
    attachOk(fx, fx.stdevId, pasid, s2);
    check(fx, fx.stdevId, pasid, s2);
    expect(pasidReplace(fx, fx.stdevId, pasid, nested0).rc).toBe(-errno.ENOMEM);
    check(fx, fx.stdevId, pasid, s2);
    expect(pasidDetach(fx, fx.stdevId, pasid)).toBe(0);

    // A fault-capable HWPT at a PASID: the fault with that PASID is read and answered
    pasid = 2048;
    attachOk(fx, fx.stdevId, pasid, iopf.id);
    check(fx, fx.stdevId, pasid, iopf.id);
    expect(triggerIopfAndRespond(fx, fx.deviceId, fault.fd, pasid)).toBe(0);
    expect(pasidReplace(fx, fx.stdevId, pasid, s2).rc).toBe(0);
    check(fx, fx.stdevId, pasid, s2);
    expect(pasidDetach(fx, fx.stdevId, pasid)).toBe(0);
    expect(destroy(fx, iopf.id)).toBe(0);
    expect(fx.proc.close(fault.fd)).toBe(0);
    expect(destroy(fx, fault.id)).toBe(0);

    // The RID off s2
    expect(replace(fx, fx.stdevId, fx.ioasId)).toBe(0);
    teardown(fx);
  });
});

