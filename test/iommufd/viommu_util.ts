// vIOMMU helpers for the iommufd suites (iommufd_utils.h: _test_cmd_viommu_alloc,
// _test_cmd_vdevice_alloc). Literals from include/uapi/linux/iommufd.h and iommufd_test.h,
// x86_64; nothing is read from src/uapi.

import { cmd, io, type Fixture } from "./util.js";

export const IOMMU_VIOMMU_ALLOC = 0x3b90;
export const IOMMU_VDEVICE_ALLOC = 0x3b91;
export const IOMMU_VIOMMU_TYPE_SELFTEST = 0xdeadbeef;

// struct iommu_viommu_alloc { size, flags, type, dev_id, hwpt_id, out_viommu_id, data_len,
//   __reserved, data_uptr u64 } (40)
export function viommuAlloc(fx: Fixture, devId: number, hwptId: number, type = IOMMU_VIOMMU_TYPE_SELFTEST,
  flags = 0): { rc: number; id: number } {
  const c = cmd(40).u32(4, flags).u32(8, type).u32(12, devId).u32(16, hwptId);
  return { rc: io(fx, IOMMU_VIOMMU_ALLOC, c), id: c.g32(20) };
}

// struct iommu_vdevice_alloc { size, viommu_id, dev_id, out_vdevice_id, virt_id u64 } (24)
export function vdeviceAlloc(fx: Fixture, viommuId: number, devId: number, virtId: number | bigint): { rc: number; id: number } {
  const c = cmd(24).u32(4, viommuId).u32(8, devId).u64(16, virtId);
  return { rc: io(fx, IOMMU_VDEVICE_ALLOC, c), id: c.g32(12) };
}
