// IOMMU_TEST_CMD (drivers/iommu/iommufd/selftest.c): the test-only ioctl the kernel's selftests
// drive, available once `enableTestCmd` is called (a kernel built with CONFIG_IOMMUFD_TEST).
// The operations that need no mock device live here; the mock device and domain come with the
// domains work.

import { errno } from "../uapi/errno.js";
import { IOMMU_TEST_CMD } from "../uapi/ioctl.js";
import {
  IOMMU_TEST_OP_ADD_RESERVED, IOMMU_TEST_OP_MD_CHECK_REFS, IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
  iommu_test_cmd,
} from "../uapi/iommufd.js";
import type { UCmd } from "../kernel/ioctl.js";
import { fields } from "./ioas.js";
import { PAGE_SIZE } from "./iova.js";
import type { Iommufd, IommufdCtx } from "./main.js";

/** Smallest page-batch limit the kernel accepts, and its default. */
const MIN_MEMORY_LIMIT = 12;
export const DEFAULT_MEMORY_LIMIT = 65536;

function testCmd(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = fields(ucmd, iommu_test_cmd);
  switch (c.u("op")) {
    case IOMMU_TEST_OP_ADD_RESERVED: {
      const ioas = ctx.getIoas(c.u("id"));
      if (typeof ioas === "number") return ioas;
      const start = c.u64("add_reserved.start");
      return ioas.iopt.reserveIova(start, BigInt.asUintN(64, start + c.u64("add_reserved.length") - 1n), null);
    }
    case IOMMU_TEST_OP_MD_CHECK_REFS: {
      // Every CPU page of the range must be pinned exactly `refs` times.
      let uptr = Number(c.u64("check_refs.uptr"));
      let length = Number(c.u64("check_refs.length"));
      const refs = c.u("check_refs.refs");
      if (length % PAGE_SIZE || uptr % PAGE_SIZE) return -errno.EINVAL;
      for (; length > 0; length -= PAGE_SIZE, uptr += PAGE_SIZE) {
        const frame = ucmd.proc.mm.frameOf(uptr);
        if (frame < 0) return frame;
        if (ctx.driver.pinCount(frame) !== refs) return -errno.EIO;
      }
      return 0;
    }
    case IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: {
      const limit = c.u("memory_limit.limit");
      if (limit < MIN_MEMORY_LIMIT) return -errno.EINVAL;
      ctx.driver.memoryLimit = limit;
      return 0;
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
    handler: (ucmd) => testCmd(ucmd.file.priv as IommufdCtx, ucmd),
  });
}
