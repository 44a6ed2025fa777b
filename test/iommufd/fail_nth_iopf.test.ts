// A fail_nth sweep (in the style of iommufd_fail_nth.c) over fault queues, IO page faults and
// PASID attachments: the body succeeds on its own; then for n = 1, 2, ... the nth internal
// allocation or lookup fails. Every run must fail cleanly at one step: after closing the fault
// fd and the iommufd no object and no pin is left, and every page request the device made was
// answered exactly once (by the program or by the kernel).

import { describe, it, expect } from "vitest";
import { createKernel, O_RDWR, type Kernel } from "../../src/index.js";
import { enableTestCmd, failNth, failNthRemaining, takeMockPageResponses } from "../../src/testing.js";
import {
  errno, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_IOAS_ALLOC, IOMMU_TEST_CMD, Cmd, io, ioasAllocCmd,
  mockDomainFlagsCmd, mockDomainReplaceCmd, mmapAnon, PG, IOMMU_TEST_IOTLB_DEFAULT, type Fixture,
} from "./util.js";
import {
  IOMMU_HWPT_FAULT_ID_VALID, IOMMUFD_PAGE_RESP_SUCCESS, PGFAULT, faultAlloc, hwptAllocIopf, parsePgfault,
  responseBytes, triggerIopf,
} from "./iopf_util.js";
import { IOMMU_HWPT_ALLOC_PASID, MOCK_FLAGS_DEVICE_PASID, pasidAttach, pasidDetach, pasidReplace } from "./pasid_util.js";
import { hwptAlloc } from "../toolkit/iommufd.js";

const LIMIT = 300;
const INJECTED = [-errno.ENOMEM, -errno.EFAULT, -errno.ENOENT];
/** HWPT_ALLOC turns a failed pt_id lookup into EINVAL (iommufd_hwpt_alloc). */
const HWPT_STEPS = new Set(["parent_alloc", "iopf_alloc", "s2_alloc"]);

interface Run { ok: boolean; step: string; rc: number; remaining: number; triggered: number; answered: number }

function run(kernel: Kernel, arm: () => void): Run {
  const proc = kernel.createProcess();
  const fd = proc.open("/dev/iommu", O_RDWR);
  expect(fd).toBeGreaterThanOrEqual(0);
  const fx: Fixture = { kernel, proc, fd };
  const data = mmapAnon(proc, PG);
  expect(proc.writeMemory(data, new Cmd(8).u32(0, IOMMU_TEST_IOTLB_DEFAULT).buf)).toBe(0);
  proc.ioctlBuf(-1, IOMMU_IOAS_ALLOC, new Uint8Array(72)); // maps the ioctlBuf scratch page (EBADF)
  const rec = new Uint8Array(PGFAULT);
  let faultFd = -1;
  let triggered = 0;
  let step = "";
  let rc = 0;
  const go = (name: string, r: number): boolean => { step = name; rc = r; return r >= 0; };
  arm();
  (() => {
    const a = ioasAllocCmd();
    if (!go("ioas_alloc", io(fx, IOMMU_IOAS_ALLOC, a))) return;
    const ioas = a.g32(8);
    const md = mockDomainFlagsCmd(ioas, MOCK_FLAGS_DEVICE_PASID);
    if (!go("mock_domain", io(fx, IOMMU_TEST_CMD, md))) return;
    const [stdev, devId] = [md.g32(16), md.g32(24)];
    const f = faultAlloc(fx);
    if (!go("fault_alloc", f.rc)) return;
    faultFd = f.fd;
    const parent = hwptAlloc(fx, devId, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_PASID);
    if (!go("parent_alloc", parent.rc)) return;
    const iopf = hwptAllocIopf(fx, devId, parent.id, f.id, IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID, data);
    if (!go("iopf_alloc", iopf.rc)) return;
    const s2 = hwptAlloc(fx, devId, ioas, IOMMU_HWPT_ALLOC_PASID);
    if (!go("s2_alloc", s2.rc)) return;
    if (!go("rid_replace_s2", io(fx, IOMMU_TEST_CMD, mockDomainReplaceCmd(stdev, s2.id)))) return;
    if (!go("pasid_attach", pasidAttach(fx, stdev, 2048, iopf.id).rc)) return;
    const fault = (pasid: number, grpid: number): boolean => {
      if (!go(`trigger_${grpid}`, triggerIopf(fx, devId, pasid, grpid))) return false;
      triggered++;
      const n = proc.read(faultFd, rec);
      if (!go(`read_${grpid}`, n)) return false;
      if (n === 0) return go(`queued_${grpid}`, -errno.ENOMEM); // the group's allocation failed
      return go(`respond_${grpid}`, proc.write(faultFd, responseBytes([parsePgfault(rec).cookie, IOMMUFD_PAGE_RESP_SUCCESS])));
    };
    if (!fault(2048, 1)) return;
    // left pending across the replace: answered by the kernel
    if (!go("trigger_2", triggerIopf(fx, devId, 2048, 2))) return;
    triggered++;
    if (!go("pasid_replace", pasidReplace(fx, stdev, 2048, s2.id).rc)) return;
    if (!go("pasid_detach", pasidDetach(fx, stdev, 2048))) return;
    if (!go("rid_replace_iopf", io(fx, IOMMU_TEST_CMD, mockDomainReplaceCmd(stdev, iopf.id)))) return;
    if (!fault(0, 3)) return;
    // left pending at the end: the close answers it
    if (!go("trigger_4", triggerIopf(fx, devId, 0, 4))) return;
    triggered++;
  })();
  const remaining = failNthRemaining(kernel);
  failNth(kernel, 0);
  if (faultFd >= 0) expect(proc.close(faultFd)).toBe(0);
  expect(proc.close(fd), "close(iommufd)").toBe(0);
  const s = kernel.stats();
  expect(s.iommufdObjects, `${step}: objects left`).toBe(0);
  expect(s.iommufdContexts, `${step}: contexts left`).toBe(0);
  expect(s.pinnedPages, `${step}: pins left`).toBe(0);
  const answered = takeMockPageResponses(kernel).length;
  proc.kill();
  return { ok: rc >= 0, step, rc, remaining, triggered, answered };
}

describe("fail_nth sweep: fault queues, IO page faults, PASIDs", () => {
  it("every injected failure fails one step cleanly; every page request is answered once", async () => {
    const kernel = await createKernel({ memoryBytes: 64 * 1024 * 1024 });
    enableTestCmd(kernel);
    const first = run(kernel, () => {});
    expect(first).toMatchObject({ ok: true, triggered: 4, answered: 4 });
    let n = 1, injected = 0;
    const steps = new Set<string>();
    for (; n < LIMIT; n++) {
      const r = run(kernel, () => failNth(kernel, n));
      expect(r.answered, `n=${n} (${r.step}): every request answered once`).toBe(r.triggered);
      if (r.remaining > 0) {
        expect(r.ok, `n=${n}: un-injected run failed at ${r.step} (${r.rc})`).toBe(true);
        break;
      }
      injected++;
      if (!r.ok) {
        expect(HWPT_STEPS.has(r.step) ? [...INJECTED, -errno.EINVAL] : INJECTED, `n=${n}: ${r.step}`).toContain(r.rc);
        steps.add(r.step);
      }
    }
    expect(n).toBeLessThan(LIMIT);
    // the new injection points are on the path: handles, PASID attachments, groups, cookies
    for (const s of ["pasid_attach", "pasid_replace", "rid_replace_s2", "read_1", "queued_1", "fault_alloc", "iopf_alloc"]) {
      expect([...steps], s).toContain(s);
    }
    expect(injected).toBeGreaterThan(10);
    await kernel.close();
  });
});
