// /dev/iommu helpers that several suites share.
import { iommu_hwpt_alloc } from "../../src/uapi/iommufd.js";
import { IOMMU_HWPT_ALLOC, hwptAllocCmd, io, type Fixture } from "../iommufd/util.js";

/** IOMMU_HWPT_ALLOC, paging (no data) or nested (with driver data): rc and out_hwpt_id. */
export function hwptAlloc(fx: Pick<Fixture, "proc" | "fd">, devId: number, ptId: number, flags: number, dataType = 0, dataUptr = 0, dataLen = 0): { rc: number; id: number } {
  const c = hwptAllocCmd({ devId, ptId, flags, dataType, dataUptr, dataLen });
  const rc = io(fx, IOMMU_HWPT_ALLOC, c);
  return { rc, id: c.g32(iommu_hwpt_alloc.fields.out_hwpt_id.off) };
}
