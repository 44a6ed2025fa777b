// Fault-queue helpers for the iommufd suites (iommufd_utils.h: _test_ioctl_fault_alloc,
// _test_cmd_trigger_iopf, test_cmd_hwpt_alloc_iopf). Literals from include/uapi/linux/iommufd.h
// and drivers/iommu/iommufd/iommufd_test.h, x86_64; nothing is read from src/uapi.

import { expect } from "vitest";
import { Cmd, cmd, io, hwptAllocCmd, IOMMU_HWPT_ALLOC, IOMMU_TEST_CMD, type Fixture } from "./util.js";

export const IOMMU_FAULT_QUEUE_ALLOC = 0x3b8e;
export const IOMMU_HWPT_FAULT_ID_VALID = 1 << 2;
export const IOMMU_TEST_OP_TRIGGER_IOPF = 15;
export const IOMMU_PGFAULT_FLAGS_PASID_VALID = 1 << 0;
export const IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1 << 1;
export const IOMMU_PGFAULT_PERM_READ = 1 << 0;
export const IOMMU_PGFAULT_PERM_WRITE = 1 << 1;
export const IOMMUFD_PAGE_RESP_SUCCESS = 0;
export const IOMMUFD_PAGE_RESP_INVALID = 1;
export const POLLIN = 0x1, POLLOUT = 0x4, POLLRDNORM = 0x40;
/** sizeof(struct iommu_hwpt_pgfault) and sizeof(struct iommu_hwpt_page_response). */
export const PGFAULT = 40, RESPONSE = 8;

// struct iommu_fault_alloc { size @0, flags @4, out_fault_id @8, out_fault_fd @12 } (16)
export function faultAlloc(fx: Fixture, flags = 0): { rc: number; id: number; fd: number } {
  const c = cmd(16).u32(4, flags);
  const rc = io(fx, IOMMU_FAULT_QUEUE_ALLOC, c);
  return { rc, id: c.g32(8), fd: c.g32(12) };
}

/** test_ioctl_fault_alloc: must succeed with non-zero id and fd. */
export function faultAllocOk(fx: Fixture): { id: number; fd: number } {
  const f = faultAlloc(fx);
  expect(f.rc, "IOMMU_FAULT_QUEUE_ALLOC").toBe(0);
  expect(f.id).not.toBe(0);
  expect(f.fd).not.toBe(0);
  return f;
}

/**
 * _test_cmd_hwpt_alloc with a fault id: a nested HWPT over `parentId` with selftest data at
 * `data` (8 bytes), fault_id @40.
 */
export function hwptAllocIopf(fx: Fixture, devId: number, parentId: number, faultId: number, flags: number,
  data: number, dataType = 0xdead, dataLen = 8): { rc: number; id: number } {
  const c = hwptAllocCmd({ devId, ptId: parentId, flags, dataType, dataUptr: data, dataLen });
  c.u32(40, faultId);
  return { rc: io(fx, IOMMU_HWPT_ALLOC, c), id: c.g32(16) };
}

// iommu_test_cmd op TRIGGER_IOPF: trigger_iopf { dev_id @16, pasid @20, grpid @24, perm @28, addr u64 @32 }
export const triggerIopfCmd = (devId: number, pasid: number, grpid: number, perm: number, addr: number | bigint): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_TRIGGER_IOPF).u32(16, devId).u32(20, pasid).u32(24, grpid).u32(28, perm).u64(32, addr);

export function triggerIopf(fx: Fixture, devId: number, pasid = 1, grpid = 2,
  perm = IOMMU_PGFAULT_PERM_READ | IOMMU_PGFAULT_PERM_WRITE, addr: number | bigint = 0xdeadbeaf): number {
  return io(fx, IOMMU_TEST_CMD, triggerIopfCmd(devId, pasid, grpid, perm, addr));
}

/** struct iommu_hwpt_pgfault as read from the fault fd. */
export interface Pgfault {
  flags: number; dev_id: number; pasid: number; grpid: number; perm: number; __reserved: number;
  addr: bigint; length: number; cookie: number;
}

export function parsePgfault(b: Uint8Array, at = 0): Pgfault {
  const dv = new DataView(b.buffer, b.byteOffset + at, PGFAULT);
  return {
    flags: dv.getUint32(0, true), dev_id: dv.getUint32(4, true), pasid: dv.getUint32(8, true),
    grpid: dv.getUint32(12, true), perm: dv.getUint32(16, true), __reserved: dv.getUint32(20, true),
    addr: dv.getBigUint64(24, true), length: dv.getUint32(32, true), cookie: dv.getUint32(36, true),
  };
}

// struct iommu_hwpt_page_response { cookie @0, code @4 } (8)
export const responseBytes = (...r: [cookie: number, code: number][]): Uint8Array => {
  const c = new Cmd(RESPONSE * r.length);
  r.forEach(([cookie, code], i) => c.u32(i * RESPONSE, cookie).u32(i * RESPONSE + 4, code));
  return c.buf;
};

/**
 * _test_cmd_trigger_iopf (pasid given, grpid 2, READ|WRITE at 0xdeadbeaf): trigger, read one
 * record (at least one byte, else EIO), answer its cookie with SUCCESS. 0, or the first error.
 */
export function triggerIopfAndRespond(fx: Fixture, devId: number, faultFd: number, pasid = 1): number {
  const rc = triggerIopf(fx, devId, pasid);
  if (rc) return rc;
  const rec = new Uint8Array(PGFAULT);
  const n = fx.proc.read(faultFd, rec);
  if (n <= 0) return -5; // EIO
  const w = fx.proc.write(faultFd, responseBytes([parsePgfault(rec).cookie, IOMMUFD_PAGE_RESP_SUCCESS]));
  return w <= 0 ? -5 : 0;
}
