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
  flags = 0, dataUptr: number | bigint = 0, dataLen = 0): { rc: number; id: number } {
  const c = cmd(40).u32(4, flags).u32(8, type).u32(12, devId).u32(16, hwptId).u32(24, dataLen).u64(32, dataUptr);
  return { rc: io(fx, IOMMU_VIOMMU_ALLOC, c), id: c.g32(20) };
}

// struct iommu_vdevice_alloc { size, viommu_id, dev_id, out_vdevice_id, virt_id u64 } (24)
export function vdeviceAlloc(fx: Fixture, viommuId: number, devId: number, virtId: number | bigint): { rc: number; id: number } {
  const c = cmd(24).u32(4, viommuId).u32(8, devId).u64(16, virtId);
  return { rc: io(fx, IOMMU_VDEVICE_ALLOC, c), id: c.g32(12) };
}

export const IOMMU_VEVENTQ_ALLOC = 0x3b93;
export const IOMMU_VEVENTQ_TYPE_SELFTEST = 0xbeefbeef;
export const IOMMU_VEVENTQ_FLAG_LOST_EVENTS = 1 << 0;
export const IOMMU_TEST_OP_TRIGGER_VEVENT = 17;
/** sizeof(struct iommufd_vevent_header) and of struct iommu_viommu_event_selftest. */
export const VEVENT_HDR = 8, VEVENT_SELFTEST = 4;

// struct iommu_veventq_alloc { size, flags, viommu_id, type, veventq_depth, out_veventq_id,
//   out_veventq_fd, __reserved } (32)
export function veventqAlloc(fx: Fixture, viommuId: number, type = IOMMU_VEVENTQ_TYPE_SELFTEST, depth = 2,
  flags = 0, reserved = 0): { rc: number; id: number; fd: number } {
  const c = cmd(32).u32(4, flags).u32(8, viommuId).u32(12, type).u32(16, depth).u32(28, reserved);
  return { rc: io(fx, IOMMU_VEVENTQ_ALLOC, c), id: c.g32(20), fd: c.g32(24) };
}

/** _test_cmd_trigger_vevents: TRIGGER_VEVENT(dev_id) n times; the first error. */
export function triggerVevents(fx: Fixture, devId: number, n: number): number {
  for (let i = 0; i < n; i++) {
    const rc = io(fx, IOMMU_TEST_CMD_NR, cmd(72).u32(4, IOMMU_TEST_OP_TRIGGER_VEVENT).u32(16, devId));
    if (rc) return rc;
  }
  return 0;
}
const IOMMU_TEST_CMD_NR = 0x3ba0;

/**
 * _test_cmd_read_vevents: poll, read n selftest events' worth, then per record: a lost-events
 * flag or a sequence gap is EOVERFLOW (prev updated), a wrong virt_id EINVAL. Returns 0 or
 * -errno; prev.seq carries the last sequence seen.
 */
export function readVevents(fx: Fixture, fd: number, n: number, virtId: number, prev: { seq: number }): number {
  const pfd = [{ fd, events: 0x1 /* POLLIN */ }];
  if (fx.proc.poll(pfd, 1000) < 0) return -1;
  const rec = VEVENT_HDR + VEVENT_SELFTEST;
  const data = new Uint8Array(n * rec);
  const bytes = fx.proc.read(fd, data);
  if (bytes <= 0) return -14; // EFAULT
  const dv = new DataView(data.buffer);
  for (let i = 0; i < n; i++) {
    const flags = dv.getUint32(i * rec, true);
    const seq = dv.getUint32(i * rec + 4, true);
    if (flags & IOMMU_VEVENTQ_FLAG_LOST_EVENTS || seq - prev.seq > 1) { prev.seq = seq; return -75; } // EOVERFLOW
    prev.seq = seq;
    // (the C helper reads the first record's event each time)
    if (dv.getUint32(VEVENT_HDR, true) !== virtId) return -22; // EINVAL
  }
  return 0;
}

export const IOMMU_HW_QUEUE_ALLOC = 0x3b94;
export const IOMMU_HW_QUEUE_TYPE_DEFAULT = 0;
export const IOMMU_HW_QUEUE_TYPE_SELFTEST = 0xdeadbeef;
export const IOMMU_TEST_HW_QUEUE_MAX = 2;

// struct iommu_hw_queue_alloc { size, flags, viommu_id, type, index, out_hw_queue_id,
//   nesting_parent_iova u64, length u64 } (40)
export function hwQueueAlloc(fx: Fixture, viommuId: number, type: number, index: number, iova: number | bigint,
  length: number | bigint, flags = 0): { rc: number; id: number } {
  const c = cmd(40).u32(4, flags).u32(8, viommuId).u32(12, type).u32(16, index).u64(24, iova).u64(32, length);
  return { rc: io(fx, IOMMU_HW_QUEUE_ALLOC, c), id: c.g32(20) };
}
