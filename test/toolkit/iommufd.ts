// /dev/iommu helpers that several suites share.
import { iommu_hwpt_alloc } from "../../src/uapi/iommufd.js";
import { enableTestCmd } from "../../src/testing.js";
import {
  IOMMU_HWPT_ALLOC, PG, hugeAlignedBuffer, hwptAllocCmd, io, ioasAlloc, mmapAnon, openFixture, type Fixture,
} from "../iommufd/util.js";

/** FIXTURE iommufd_ioas without a domain: an IOAS, the selftest's huge-aligned `buffer`, a scratch page. */
export interface IoasFx extends Fixture { ioasId: number; buffer: number; scratch: number }

/** The fixture, with CAP_SYS_RESOURCE for the process and the test commands on if asked. */
export async function ioasFixture(opts: { capSysResource?: boolean; testCmd?: boolean } = {}): Promise<IoasFx> {
  const fx = await openFixture(opts.capSysResource ? { capSysResource: true } : undefined);
  if (opts.testCmd) enableTestCmd(fx.kernel);
  const ioasId = ioasAlloc(fx);
  const buffer = hugeAlignedBuffer(fx.proc);
  const scratch = mmapAnon(fx.proc, PG);
  return { ...fx, ioasId, buffer, scratch };
}

/** IOMMU_HWPT_ALLOC, paging (no data) or nested (with driver data): rc and out_hwpt_id. */
export function hwptAlloc(fx: Pick<Fixture, "proc" | "fd">, devId: number, ptId: number, flags: number, dataType = 0, dataUptr = 0, dataLen = 0): { rc: number; id: number } {
  const c = hwptAllocCmd({ devId, ptId, flags, dataType, dataUptr, dataLen });
  const rc = io(fx, IOMMU_HWPT_ALLOC, c);
  return { rc, id: c.g32(iommu_hwpt_alloc.fields.out_hwpt_id.off) };
}
