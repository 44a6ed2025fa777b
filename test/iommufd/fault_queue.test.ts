// IOMMU_FAULT_QUEUE_ALLOC and the fault fd (drivers/iommu/iommufd/eventq.c): the object and
// its file, the read/write size rules, poll, destroy while the fd is open, fault-capable nested
// HWPTs (IOMMU_HWPT_FAULT_ID_VALID) holding the queue, and IO page faults (the mock's
// TRIGGER_IOPF through io-pgfault.c): the records read, the answers written, and the kernel's
// own answers when a fault has no handler or its attachment goes (detach, replace).

import { describe, it, expect } from "vitest";
import { enableTestCmd, takeMockPageResponses } from "../../src/testing.js";
import {
  errno, PG, IOMMU_DESTROY, IOMMU_HWPT_ALLOC, IOMMU_TEST_CMD, IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_SELFTEST, IOMMU_TEST_IOTLB_DEFAULT, Cmd, cmd, io, openFixture, teardown, ioasAlloc,
  destroyCmd, hwptAllocCmd, mockDomainCmd, mockDomainReplaceCmd, mmapAnon, type Fixture,
} from "./util.js";

import {
  IOMMU_HWPT_FAULT_ID_VALID, IOMMU_PGFAULT_FLAGS_LAST_PAGE, IOMMU_PGFAULT_FLAGS_PASID_VALID,
  IOMMU_PGFAULT_PERM_READ, IOMMU_PGFAULT_PERM_WRITE, IOMMUFD_PAGE_RESP_INVALID, IOMMUFD_PAGE_RESP_SUCCESS,
  POLLIN, POLLOUT, POLLRDNORM, PGFAULT, RESPONSE, faultAlloc, faultAllocOk, hwptAllocIopf, parsePgfault,
  responseBytes, triggerIopf,
} from "./iopf_util.js";

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
    const pfd = [{ fd: f.fd, events: POLLIN | POLLRDNORM | POLLOUT, revents: 0 }];
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

// ---------------------------------------------------------------------------------------------
// IO page faults

const RW = IOMMU_PGFAULT_PERM_READ | IOMMU_PGFAULT_PERM_WRITE;

interface IopfFx extends Fixture {
  ioasId: number; stdevId: number; hwptId: number; deviceId: number; parentId: number;
  data: number; fault: { id: number; fd: number }; iopfId: number;
}

/**
 * A mock device on an IOAS, a NEST_PARENT HWPT, a fault queue and a fault-capable nested HWPT
 * over the parent; the device is moved onto the nested HWPT unless `attach` is false.
 */
async function iopfFixture(attach = true): Promise<IopfFx> {
  const fx = await openFixture() as IopfFx;
  enableTestCmd(fx.kernel);
  fx.ioasId = ioasAlloc(fx);
  const md = mockDomainCmd(fx.ioasId);
  expect(io(fx, IOMMU_TEST_CMD, md)).toBe(0);
  [fx.stdevId, fx.hwptId, fx.deviceId] = [md.g32(16), md.g32(20), md.g32(24)];
  const p = hwptAllocCmd({ devId: fx.deviceId, ptId: fx.ioasId, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
  expect(io(fx, IOMMU_HWPT_ALLOC, p)).toBe(0);
  fx.parentId = p.g32(16);
  fx.data = mmapAnon(fx.proc, PG);
  expect(fx.proc.writeMemory(fx.data, new Cmd(8).u32(0, IOMMU_TEST_IOTLB_DEFAULT).buf)).toBe(0);
  fx.fault = faultAllocOk(fx);
  const h = hwptAllocIopf(fx, fx.deviceId, fx.parentId, fx.fault.id, IOMMU_HWPT_FAULT_ID_VALID, fx.data);
  expect(h.rc).toBe(0);
  fx.iopfId = h.id;
  if (attach) expect(replace(fx, fx.stdevId, fx.iopfId)).toBe(0);
  return fx;
}

function replace(fx: IopfFx, stdevId: number, ptId: number): number {
  return io(fx, IOMMU_TEST_CMD, mockDomainReplaceCmd(stdevId, ptId));
}

/** A nested HWPT over the fixture's parent, with or without a fault queue. */
function nestedHwpt(fx: IopfFx, faultId = 0): number {
  const h = hwptAllocIopf(fx, fx.deviceId, fx.parentId, faultId, faultId ? IOMMU_HWPT_FAULT_ID_VALID : 0, fx.data);
  expect(h.rc).toBe(0);
  return h.id;
}

function readFaults(fx: IopfFx, records: number): { n: number; recs: ReturnType<typeof parsePgfault>[]; buf: Uint8Array } {
  const buf = new Uint8Array(records * PGFAULT).fill(0xa5);
  const n = fx.proc.read(fx.fault.fd, buf);
  const recs = [];
  for (let at = 0; n > 0 && at < n; at += PGFAULT) recs.push(parsePgfault(buf, at));
  return { n, recs, buf };
}

function pollMask(fx: IopfFx): number {
  const pfd = [{ fd: fx.fault.fd, events: POLLIN | POLLRDNORM | POLLOUT, revents: 0 }];
  fx.proc.poll(pfd, 0);
  return pfd[0].revents;
}

function iopfTeardown(fx: IopfFx): void {
  if (fx.proc.file(fx.fault.fd)) expect(fx.proc.close(fx.fault.fd)).toBe(0);
  teardown(fx);
}

/** The name of the first mock device of a fresh kernel. */
const device = (_fx: IopfFx): string => "iommufd_mock0";

describe("iommufd IO page faults (TRIGGER_IOPF)", () => {
  it("a fault is read as one record, then answered by its cookie", async () => {
    const fx = await iopfFixture();
    expect(pollMask(fx), "empty: writable only").toBe(POLLOUT);
    expect(triggerIopf(fx, fx.deviceId, 1, 2, RW, 0xdeadbeaf)).toBe(0);
    expect(pollMask(fx), "a fault queued: readable").toBe(POLLOUT | POLLIN | POLLRDNORM);
    // the whole record, byte for byte: a 2-record buffer gets one record and nothing past it
    const r = readFaults(fx, 2);
    expect(r.n).toBe(PGFAULT);
    const want = new Cmd(PGFAULT)
      .u32(0, IOMMU_PGFAULT_FLAGS_PASID_VALID | IOMMU_PGFAULT_FLAGS_LAST_PAGE).u32(4, fx.deviceId)
      .u32(8, 1).u32(12, 2).u32(16, RW).u32(20, 0).u64(24, 0xdeadbeaf).u32(32, 0).u32(36, 1).buf;
    expect(r.buf.subarray(0, PGFAULT)).toEqual(want);
    expect(r.buf.subarray(PGFAULT).every((b) => b === 0xa5)).toBe(true);
    expect(pollMask(fx), "read: writable only again").toBe(POLLOUT);
    expect(readFaults(fx, 1).n, "nothing more queued").toBe(0);
    // nothing went back to the device until the answer
    expect(takeMockPageResponses(fx.kernel)).toEqual([]);
    expect(fx.proc.write(fx.fault.fd, responseBytes([1, IOMMUFD_PAGE_RESP_SUCCESS]))).toBe(RESPONSE);
    expect(takeMockPageResponses(fx.kernel)).toEqual([{ device: device(fx), pasid: 1, grpid: 2, code: IOMMUFD_PAGE_RESP_SUCCESS }]);
    // the cookie is gone with its answer
    expect(fx.proc.write(fx.fault.fd, responseBytes([1, IOMMUFD_PAGE_RESP_SUCCESS]))).toBe(-errno.EINVAL);
    // without a PASID (0): no PASID_VALID flag; the RID's nested HWPT takes it all the same
    expect(triggerIopf(fx, fx.deviceId, 0, 7, IOMMU_PGFAULT_PERM_READ, 0x1234n << 32n)).toBe(0);
    const r2 = readFaults(fx, 1);
    expect(r2.recs).toEqual([{
      flags: IOMMU_PGFAULT_FLAGS_LAST_PAGE, dev_id: fx.deviceId, pasid: 0, grpid: 7, perm: IOMMU_PGFAULT_PERM_READ,
      __reserved: 0, addr: 0x1234n << 32n, length: 0, cookie: 1,
    }]);
    // INVALID is an answer too
    expect(fx.proc.write(fx.fault.fd, responseBytes([1, IOMMUFD_PAGE_RESP_INVALID]))).toBe(RESPONSE);
    expect(takeMockPageResponses(fx.kernel)).toEqual([{ device: device(fx), pasid: 0, grpid: 7, code: IOMMUFD_PAGE_RESP_INVALID }]);
    expect(replace(fx, fx.stdevId, fx.ioasId)).toBe(0);
    iopfTeardown(fx);
  });

  it("reads hand out whole records in order; cookies are the lowest free from 1", async () => {
    const fx = await iopfFixture();
    for (let g = 10; g < 13; g++) expect(triggerIopf(fx, fx.deviceId, 1, g)).toBe(0);
    // room for two: two, in order
    let r = readFaults(fx, 2);
    expect(r.n).toBe(2 * PGFAULT);
    expect(r.recs.map((x) => [x.grpid, x.cookie])).toEqual([[10, 1], [11, 2]]);
    expect(pollMask(fx), "one still queued").toBe(POLLOUT | POLLIN | POLLRDNORM);
    // answer cookie 1: the next read reuses it
    expect(fx.proc.write(fx.fault.fd, responseBytes([1, IOMMUFD_PAGE_RESP_SUCCESS]))).toBe(RESPONSE);
    r = readFaults(fx, 4);
    expect(r.recs.map((x) => [x.grpid, x.cookie])).toEqual([[12, 1]]);
    // the remaining cookies answered at once
    expect(fx.proc.write(fx.fault.fd, responseBytes([2, IOMMUFD_PAGE_RESP_SUCCESS], [1, IOMMUFD_PAGE_RESP_SUCCESS]))).toBe(2 * RESPONSE);
    expect(takeMockPageResponses(fx.kernel).map((x) => x.grpid)).toEqual([10, 11, 12]);
    // a zero-length read takes nothing
    expect(triggerIopf(fx, fx.deviceId)).toBe(0);
    expect(fx.proc.read(fx.fault.fd, new Uint8Array(0))).toBe(0);
    expect(pollMask(fx)).toBe(POLLOUT | POLLIN | POLLRDNORM);
    expect(readFaults(fx, 1).recs[0].cookie).toBe(1);
    expect(replace(fx, fx.stdevId, fx.ioasId)).toBe(0);
    iopfTeardown(fx);
  });

  it("writes stop at the first bad response and report what was answered", async () => {
    const fx = await iopfFixture();
    for (let g = 0; g < 3; g++) expect(triggerIopf(fx, fx.deviceId, 1, g)).toBe(0);
    expect(readFaults(fx, 3).recs.map((x) => x.cookie)).toEqual([1, 2, 3]);
    // an unknown cookie first: nothing answered
    expect(fx.proc.write(fx.fault.fd, responseBytes([9, IOMMUFD_PAGE_RESP_SUCCESS], [1, IOMMUFD_PAGE_RESP_SUCCESS]))).toBe(-errno.EINVAL);
    // a bad code first: nothing answered (the cookie stays)
    expect(fx.proc.write(fx.fault.fd, responseBytes([1, 2]))).toBe(-errno.EINVAL);
    expect(takeMockPageResponses(fx.kernel)).toEqual([]);
    // a good one, then an unknown cookie: the first counts
    expect(fx.proc.write(fx.fault.fd, responseBytes([1, IOMMUFD_PAGE_RESP_SUCCESS], [9, IOMMUFD_PAGE_RESP_SUCCESS]))).toBe(RESPONSE);
    // a good one, then a bad code
    expect(fx.proc.write(fx.fault.fd, responseBytes([2, IOMMUFD_PAGE_RESP_INVALID], [3, 0xffffffff]))).toBe(RESPONSE);
    expect(takeMockPageResponses(fx.kernel).map((x) => [x.grpid, x.code])).toEqual([[0, 0], [1, 1]]);
    // a response not a multiple of the struct: ESPIPE, nothing answered
    expect(fx.proc.write(fx.fault.fd, responseBytes([3, 0]).subarray(0, RESPONSE - 1))).toBe(-errno.ESPIPE);
    expect(fx.proc.write(fx.fault.fd, responseBytes([3, IOMMUFD_PAGE_RESP_SUCCESS]))).toBe(RESPONSE);
    expect(takeMockPageResponses(fx.kernel).map((x) => x.grpid)).toEqual([2]);
    expect(replace(fx, fx.stdevId, fx.ioasId)).toBe(0);
    iopfTeardown(fx);
  });

  it("faults without a handler are answered INVALID by the kernel and never queued", async () => {
    const fx = await iopfFixture(false);
    // not a device: ENOENT (the selftest object, the IOAS, a missing id)
    expect(triggerIopf(fx, fx.stdevId)).toBe(-errno.ENOENT);
    expect(triggerIopf(fx, fx.ioasId)).toBe(-errno.ENOENT);
    expect(triggerIopf(fx, 0xffff)).toBe(-errno.ENOENT);
    expect(takeMockPageResponses(fx.kernel)).toEqual([]);
    // on its paging HWPT (no fault handler), with and without a PASID
    expect(triggerIopf(fx, fx.deviceId, 1, 3)).toBe(0);
    expect(triggerIopf(fx, fx.deviceId, 0, 4)).toBe(0);
    // on a nested HWPT without a queue
    const plain = nestedHwpt(fx);
    expect(replace(fx, fx.stdevId, plain)).toBe(0);
    expect(triggerIopf(fx, fx.deviceId, 5, 5)).toBe(0);
    expect(takeMockPageResponses(fx.kernel)).toEqual([3, 4, 5].map((g) => ({
      device: device(fx), pasid: g === 3 ? 1 : g === 4 ? 0 : 5, grpid: g, code: IOMMUFD_PAGE_RESP_INVALID,
    })));
    expect(readFaults(fx, 1).n).toBe(0);
    expect(pollMask(fx)).toBe(POLLOUT);
    // detached (blocked): no handler either
    expect(io(fx, IOMMU_DESTROY, destroyCmd(fx.stdevId))).toBe(0);
    expect(io(fx, IOMMU_DESTROY, destroyCmd(plain))).toBe(0);
    iopfTeardown(fx);
  });

  it("replace answers the old attachment's faults, queued or read; its cookies are gone", async () => {
    const fx = await iopfFixture();
    expect(triggerIopf(fx, fx.deviceId, 1, 20)).toBe(0);
    expect(triggerIopf(fx, fx.deviceId, 1, 21)).toBe(0);
    expect(readFaults(fx, 1).recs.map((x) => [x.grpid, x.cookie])).toEqual([[20, 1]]);
    // onto the parent (no fault handler): both answered INVALID, the read one first (the
    // device leaves its iopf queue in the order it took the requests)
    expect(replace(fx, fx.stdevId, fx.parentId)).toBe(0);
    expect(takeMockPageResponses(fx.kernel)).toEqual([20, 21].map((grpid) => ({ device: device(fx), pasid: 1, grpid, code: IOMMUFD_PAGE_RESP_INVALID })));
    expect(readFaults(fx, 2).n, "the queued one left the queue").toBe(0);
    expect(pollMask(fx)).toBe(POLLOUT);
    expect(fx.proc.write(fx.fault.fd, responseBytes([1, IOMMUFD_PAGE_RESP_SUCCESS])), "the read one's cookie").toBe(-errno.EINVAL);
    expect(takeMockPageResponses(fx.kernel)).toEqual([]);

    // between two fault-capable HWPTs on the same queue: the old attachment's faults go, the
    // new one's arrive
    const other = nestedHwpt(fx, fx.fault.id);
    expect(replace(fx, fx.stdevId, fx.iopfId)).toBe(0);
    expect(triggerIopf(fx, fx.deviceId, 1, 30)).toBe(0);
    expect(replace(fx, fx.stdevId, other)).toBe(0);
    expect(takeMockPageResponses(fx.kernel)).toEqual([{ device: device(fx), pasid: 1, grpid: 30, code: IOMMUFD_PAGE_RESP_INVALID }]);
    expect(triggerIopf(fx, fx.deviceId, 1, 31)).toBe(0);
    const r = readFaults(fx, 2);
    expect(r.recs.map((x) => [x.grpid, x.cookie])).toEqual([[31, 1]]);
    expect(fx.proc.write(fx.fault.fd, responseBytes([1, IOMMUFD_PAGE_RESP_SUCCESS]))).toBe(RESPONSE);
    expect(takeMockPageResponses(fx.kernel)).toEqual([{ device: device(fx), pasid: 1, grpid: 31, code: IOMMUFD_PAGE_RESP_SUCCESS }]);

    // between queues: the second queue's faults are its own
    const f2 = faultAllocOk(fx);
    const third = nestedHwpt(fx, f2.id);
    expect(triggerIopf(fx, fx.deviceId, 1, 40)).toBe(0);
    expect(replace(fx, fx.stdevId, third)).toBe(0);
    expect(takeMockPageResponses(fx.kernel).map((x) => [x.grpid, x.code])).toEqual([[40, IOMMUFD_PAGE_RESP_INVALID]]);
    expect(readFaults(fx, 1).n).toBe(0);
    expect(triggerIopf(fx, fx.deviceId, 1, 41)).toBe(0);
    expect(readFaults(fx, 1).n, "not in the first queue").toBe(0);
    const rec = new Uint8Array(PGFAULT);
    expect(fx.proc.read(f2.fd, rec)).toBe(PGFAULT);
    expect(parsePgfault(rec).grpid).toBe(41);

    // unbinding the device (destroying its selftest object) detaches it: answered too
    expect(io(fx, IOMMU_DESTROY, destroyCmd(fx.stdevId))).toBe(0);
    expect(takeMockPageResponses(fx.kernel).map((x) => [x.grpid, x.code])).toEqual([[41, IOMMUFD_PAGE_RESP_INVALID]]);
    expect(fx.proc.write(f2.fd, responseBytes([1, IOMMUFD_PAGE_RESP_SUCCESS]))).toBe(-errno.EINVAL);
    expect(fx.proc.close(f2.fd)).toBe(0);
    iopfTeardown(fx);
  });

  it("with the fault fd closed, faults still queue until the attachment goes", async () => {
    const fx = await iopfFixture();
    expect(fx.proc.close(fx.fault.fd)).toBe(0);
    expect(triggerIopf(fx, fx.deviceId, 1, 50)).toBe(0);
    expect(takeMockPageResponses(fx.kernel)).toEqual([]);
    expect(replace(fx, fx.stdevId, fx.ioasId)).toBe(0);
    expect(takeMockPageResponses(fx.kernel)).toEqual([{ device: device(fx), pasid: 1, grpid: 50, code: IOMMUFD_PAGE_RESP_INVALID }]);
    expect(io(fx, IOMMU_DESTROY, destroyCmd(fx.iopfId))).toBe(0);
    expect(io(fx, IOMMU_DESTROY, destroyCmd(fx.fault.id))).toBe(0);
    teardown(fx);
  });
});
