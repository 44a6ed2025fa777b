// PASID helpers for the iommufd suites (iommufd_utils.h: _test_cmd_pasid_attach, _replace,
// _detach, test_cmd_pasid_check_hwpt, test_cmd_get_hw_info_pasid). Literals from
// include/uapi/linux/iommufd.h and drivers/iommu/iommufd/iommufd_test.h, x86_64.

import { expect } from "vitest";
import { enableTestCmd } from "../../src/testing.js";
import {
  PG, IOMMU_HWPT_DATA_SELFTEST, IOMMU_TEST_IOTLB_DEFAULT, Cmd, cmd, io,
  hwInfoCmd, IOMMU_GET_HW_INFO, IOMMU_TEST_CMD, openFixture, ioasAlloc,
  mockDomainFlagsCmd, mockDomainReplaceCmd, mmapAnon, type Fixture,
} from "./util.js";
import { hwptAlloc } from "../toolkit/iommufd.js";

export const IOMMU_HWPT_ALLOC_PASID = 1 << 3;
export const MOCK_FLAGS_DEVICE_PASID = 1 << 2;
export const MOCK_PASID_WIDTH = 20;
export const IOMMU_TEST_PASID_RESERVED = 1024;
export const IOMMU_TEST_OP_PASID_ATTACH = 18;
export const IOMMU_TEST_OP_PASID_REPLACE = 19;
export const IOMMU_TEST_OP_PASID_DETACH = 20;
export const IOMMU_TEST_OP_PASID_CHECK_HWPT = 21;

// iommu_test_cmd: id @8; pasid_attach / pasid_replace { pasid @16, pt_id @20 (in/out) },
// pasid_detach { pasid @16 }, pasid_check { pasid @16, hwpt_id @20 }
export function pasidAttach(fx: Fixture, stdevId: number, pasid: number, ptId: number): { rc: number; ptId: number } {
  const c = cmd(72).u32(4, IOMMU_TEST_OP_PASID_ATTACH).u32(8, stdevId).u32(16, pasid).u32(20, ptId);
  return { rc: io(fx, IOMMU_TEST_CMD, c), ptId: c.g32(20) };
}

export function pasidReplace(fx: Fixture, stdevId: number, pasid: number, ptId: number): { rc: number; ptId: number } {
  const c = cmd(72).u32(4, IOMMU_TEST_OP_PASID_REPLACE).u32(8, stdevId).u32(16, pasid).u32(20, ptId);
  return { rc: io(fx, IOMMU_TEST_CMD, c), ptId: c.g32(20) };
}

export function pasidDetach(fx: Fixture, stdevId: number, pasid: number): number {
  return io(fx, IOMMU_TEST_CMD, cmd(72).u32(4, IOMMU_TEST_OP_PASID_DETACH).u32(8, stdevId).u32(16, pasid));
}

/** test_cmd_pasid_check_hwpt: 0 when `pasid` of the device is attached to `hwptId` (0: to nothing). */
export function pasidCheckHwpt(fx: Fixture, stdevId: number, pasid: number, hwptId: number): number {
  return io(fx, IOMMU_TEST_CMD, cmd(72).u32(4, IOMMU_TEST_OP_PASID_CHECK_HWPT).u32(8, stdevId).u32(16, pasid).u32(20, hwptId));
}

/** test_cmd_get_hw_info_pasid: out_max_pasid_log2 (u8 @28) of GET_HW_INFO with no data buffer. */
export function hwInfoMaxPasid(fx: Fixture, devId: number): { rc: number; maxPasid: number } {
  const c = hwInfoCmd(devId, 0, 0);
  return { rc: io(fx, IOMMU_GET_HW_INFO, c), maxPasid: c.g8(28) };
}

export interface Dev { stdevId: number; hwptId: number; deviceId: number }

export function mockDomainFlags(fx: Fixture, ptId: number, devFlags: number): Dev {
  const c = mockDomainFlagsCmd(ptId, devFlags);
  expect(io(fx, IOMMU_TEST_CMD, c), `MOCK_DOMAIN_FLAGS(${devFlags})`).toBe(0);
  return { stdevId: c.g32(16), hwptId: c.g32(20), deviceId: c.g32(24) };
}

export function replace(fx: Fixture, stdevId: number, ptId: number): number {
  return io(fx, IOMMU_TEST_CMD, mockDomainReplaceCmd(stdevId, ptId));
}

/** HWPT_ALLOC that must succeed; with `data`, a nested HWPT of struct iommu_hwpt_selftest there. */
export function hwptOk(fx: Fixture, devId: number, ptId: number, flags: number, data = 0): number {
  const h = data ? hwptAlloc(fx, devId, ptId, flags, IOMMU_HWPT_DATA_SELFTEST, data, 8) : hwptAlloc(fx, devId, ptId, flags);
  expect(h.rc, `HWPT_ALLOC(pt ${ptId}, flags ${flags})`).toBe(0);
  return h.id;
}

/** struct iommu_hwpt_selftest { iotlb = IOMMU_TEST_IOTLB_DEFAULT } in user memory. */
export function selftestData(fx: Fixture): number {
  const data = mmapAnon(fx.proc, PG);
  expect(fx.proc.writeMemory(data, new Cmd(8).u32(0, IOMMU_TEST_IOTLB_DEFAULT).buf)).toBe(0);
  return data;
}

export const attachOk = (fx: Fixture, stdev: number, pasid: number, pt: number): void =>
  expect(pasidAttach(fx, stdev, pasid, pt).rc, `PASID_ATTACH(${pasid}, ${pt})`).toBe(0);
export const check = (fx: Fixture, stdev: number, pasid: number, hwpt: number): void =>
  expect(pasidCheckHwpt(fx, stdev, pasid, hwpt), `pasid ${pasid} on ${hwpt}`).toBe(0);

// FIXTURE iommufd_device_pasid: a PASID-capable mock device on an IOAS, and (no_pasid) a
// second device without PASID support.

export interface PasidFx extends Fixture {
  ioasId: number; hwptId: number; stdevId: number; deviceId: number; noPasidStdevId: number; noPasidDeviceId: number;
}

export async function pasidFixture(pasidCapable: boolean): Promise<PasidFx> {
  const fx = await openFixture() as PasidFx;
  enableTestCmd(fx.kernel);
  fx.ioasId = ioasAlloc(fx);
  const d = mockDomainFlags(fx, fx.ioasId, MOCK_FLAGS_DEVICE_PASID);
  [fx.stdevId, fx.hwptId, fx.deviceId] = [d.stdevId, d.hwptId, d.deviceId];
  fx.noPasidStdevId = fx.noPasidDeviceId = 0;
  if (!pasidCapable) {
    const n = mockDomainFlags(fx, fx.ioasId, 0);
    [fx.noPasidStdevId, fx.noPasidDeviceId] = [n.stdevId, n.deviceId];
  }
  return fx;
}

