// IOMMU_FAULT_QUEUE_ALLOC and the fault fd (drivers/iommu/iommufd/eventq.c): the object and
// its file, the read/write size rules, poll, destroy while the fd is open, and fault-capable
// nested HWPTs (IOMMU_HWPT_FAULT_ID_VALID) holding the queue. IO page fault delivery (the
// mock's TRIGGER_IOPF) is not built yet; the kernel's iommufd_fault tests wait for it.

import { describe, it, expect } from "vitest";
import { enableTestCmd } from "../../src/testing.js";
import {
  errno, PG, IOMMU_DESTROY, IOMMU_HWPT_ALLOC, IOMMU_TEST_CMD, IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_SELFTEST, IOMMU_TEST_IOTLB_DEFAULT, Cmd, cmd, io, openFixture, teardown, ioasAlloc,
  destroyCmd, hwptAllocCmd, mockDomainCmd, mmapAnon, type Fixture,
} from "./util.js";

const IOMMU_FAULT_QUEUE_ALLOC = 0x3b8e;
const IOMMU_HWPT_FAULT_ID_VALID = 1 << 2;
const POLLIN = 0x1, POLLOUT = 0x4, POLLRDNORM = 0x40;
const PGFAULT = 40; // sizeof(struct iommu_hwpt_pgfault)
const RESPONSE = 8; // sizeof(struct iommu_hwpt_page_response)

// struct iommu_fault_alloc { size @0, flags @4, out_fault_id @8, out_fault_fd @12 } (16)
function faultAlloc(fx: Fixture, flags = 0): { rc: number; id: number; fd: number } {
  const c = cmd(16).u32(4, flags);
  const rc = io(fx, IOMMU_FAULT_QUEUE_ALLOC, c);
  return { rc, id: c.g32(8), fd: c.g32(12) };
}

describe("iommufd fault queue", () => {
  it("alloc: flags, the fd, destroy busy while the fd is open", async () => {
    const fx = await openFixture();
    expect(faultAlloc(fx, 1).rc).toBe(-errno.EOPNOTSUPP);
    expect(fx.kernel.stats().iommufdObjects).toBe(0);
    const f = faultAlloc(fx);
    expect(f.rc).toBe(0);
    expect(f.id).toBe(1);
    expect(f.fd).toBe(fx.fd + 1);
    // O_CLOEXEC, like every anon-inode fd iommufd hands out
    expect(fx.proc.fcntl(f.fd, 1 /* F_GETFD */)).toBe(1);
    expect(io(fx, IOMMU_DESTROY, destroyCmd(f.id))).toBe(-errno.EBUSY);
    expect(fx.proc.close(f.fd)).toBe(0);
    expect(io(fx, IOMMU_DESTROY, destroyCmd(f.id))).toBe(0);
    expect(io(fx, IOMMU_DESTROY, destroyCmd(f.id))).toBe(-errno.ENOENT);
    teardown(fx);
  });

  it("read/write size rules, empty queue, poll", async () => {
    const fx = await openFixture();
    const f = faultAlloc(fx);
    expect(f.rc).toBe(0);
    // counts not a multiple of the record size, and positioned access: ESPIPE
    expect(fx.proc.read(f.fd, new Uint8Array(PGFAULT - 1))).toBe(-errno.ESPIPE);
    expect(fx.proc.read(f.fd, new Uint8Array(PGFAULT + 1))).toBe(-errno.ESPIPE);
    expect(fx.proc.pread(f.fd, new Uint8Array(PGFAULT), 0)).toBe(-errno.ESPIPE);
    expect(fx.proc.write(f.fd, new Uint8Array(RESPONSE + 1))).toBe(-errno.ESPIPE);
    expect(fx.proc.pwrite(f.fd, new Uint8Array(RESPONSE), 0)).toBe(-errno.ESPIPE);
    // nothing queued: a read returns 0 at once (no blocking), a zero-length write 0
    expect(fx.proc.read(f.fd, new Uint8Array(PGFAULT))).toBe(0);
    expect(fx.proc.read(f.fd, new Uint8Array(0))).toBe(0);
    expect(fx.proc.write(f.fd, new Uint8Array(0))).toBe(0);
    // a response with a bad code, or for a cookie never handed out: EINVAL
    expect(fx.proc.write(f.fd, new Cmd(RESPONSE).u32(0, 1).u32(4, 2).buf)).toBe(-errno.EINVAL);
    expect(fx.proc.write(f.fd, new Cmd(RESPONSE).u32(0, 1).u32(4, 0).buf)).toBe(-errno.EINVAL);
    expect(fx.proc.write(f.fd, new Cmd(RESPONSE).u32(0, 1).u32(4, 1).buf)).toBe(-errno.EINVAL);
    // always writable, readable only with a fault queued
    const pfd = [{ fd: f.fd, events: POLLIN | POLLRDNORM | POLLOUT }];
    expect(fx.proc.poll(pfd, 0)).toBe(1);
    expect(pfd[0].revents).toBe(POLLOUT);
    expect(fx.proc.close(f.fd)).toBe(0);
    teardown(fx);
  });

  it("the fault fd keeps the context: closing /dev/iommu first frees it with the fault fd", async () => {
    const fx = await openFixture();
    const f = faultAlloc(fx);
    expect(f.rc).toBe(0);
    expect(ioasAlloc(fx)).toBe(2);
    expect(fx.proc.close(fx.fd)).toBe(0);
    expect(fx.kernel.stats().iommufdContexts).toBe(1);
    expect(fx.kernel.stats().iommufdObjects).toBe(2);
    expect(fx.proc.close(f.fd)).toBe(0);
    expect(fx.kernel.stats().iommufdContexts).toBe(0);
    expect(fx.kernel.stats().iommufdObjects).toBe(0);
  });

  it("a fault-capable nested HWPT holds its queue", async () => {
    const fx = await openFixture();
    enableTestCmd(fx.kernel);
    const ioasId = ioasAlloc(fx);
    const md = mockDomainCmd(ioasId);
    expect(io(fx, IOMMU_TEST_CMD, md)).toBe(0);
    const deviceId = md.g32(24);
    const p = hwptAllocCmd({ devId: deviceId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
    expect(io(fx, IOMMU_HWPT_ALLOC, p)).toBe(0);
    const parentId = p.g32(16);
    const data = mmapAnon(fx.proc, PG);
    expect(fx.proc.writeMemory(data, new Cmd(8).u32(0, IOMMU_TEST_IOTLB_DEFAULT).buf)).toBe(0);
    const f = faultAlloc(fx);
    expect(f.rc).toBe(0);
    const iopf = (faultId: number, flags = IOMMU_HWPT_FAULT_ID_VALID): { rc: number; id: number } => {
      const c = hwptAllocCmd({ devId: deviceId, ptId: parentId, flags, dataType: IOMMU_HWPT_DATA_SELFTEST, dataUptr: data, dataLen: 8 });
      c.u32(40, faultId);
      return { rc: io(fx, IOMMU_HWPT_ALLOC, c), id: c.g32(16) };
    };
    const before = fx.kernel.stats().iommufdObjects;
    // test_err_hwpt_alloc_iopf: an unknown fault id, an unknown flag
    expect(iopf(0xffffffff).rc).toBe(-errno.ENOENT);
    expect(iopf(f.id, IOMMU_HWPT_FAULT_ID_VALID | (1 << 31)).rc).toBe(-errno.EOPNOTSUPP);
    // (another object's id is not a fault)
    expect(iopf(ioasId).rc).toBe(-errno.ENOENT);
    expect(fx.kernel.stats().iommufdObjects).toBe(before);
    const h = iopf(f.id);
    expect(h.rc).toBe(0);
    expect(fx.proc.close(f.fd)).toBe(0);
    // the HWPT holds the queue until it goes
    expect(io(fx, IOMMU_DESTROY, destroyCmd(f.id))).toBe(-errno.EBUSY);
    expect(io(fx, IOMMU_DESTROY, destroyCmd(h.id))).toBe(0);
    expect(io(fx, IOMMU_DESTROY, destroyCmd(f.id))).toBe(0);
    teardown(fx);
  });
});
