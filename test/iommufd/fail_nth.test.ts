// fail_nth.basic of tools/testing/selftests/iommu/iommufd_fail_nth.c (CONFORMANCE.md §3b), swept
// to exhaustion: the body succeeds on its own; then for n = 1, 2, 3, ... the nth internal
// allocation or copy fails. Every run must fail cleanly: after closing the iommufd no object and
// no pin is left, and killing the process gives back every frame and every committed page. The
// sweep ends at the first n whose failure was never consumed (that run must have succeeded).

import { describe, it, expect } from "vitest";
import { createKernel, O_RDWR, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_ANONYMOUS, type Kernel, type Process } from "../../src/index.js";
import { enableTestCmd, failNth, failNthRemaining } from "../../src/testing.js";
import {
  errno, PG, IOMMU_IOAS_ALLOC, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_MAP, IOMMU_IOAS_COPY,
  IOMMU_IOAS_UNMAP, IOMMU_IOAS_MAP_FILE, IOMMU_DESTROY, IOMMU_TEST_CMD, RW,
  MOCK_ACCESS_RW_WRITE, MOCK_ACCESS_RW_SLOW_PATH, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
  Cmd, ioasAllocCmd, iovaRangesCmd, allowIovasCmd, mapCmd, copyCmd, unmapCmd, mapFileCmd, destroyCmd,
  mockDomainCmd, memoryLimitCmd, createAccessCmd, accessPagesCmd, destroyAccessPagesCmd, accessRwCmd,
  IOMMU_GET_HW_INFO, IOMMU_HWPT_ALLOC, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_SELFTEST, IOMMU_TEST_IOTLB_DEFAULT,
  MOCK_APERTURE_START, FIXED, hwInfoCmd, hwptAllocCmd, mockDomainReplaceCmd,
} from "./util.js";
import { IOMMU_FAULT_QUEUE_ALLOC, IOMMU_HWPT_FAULT_ID_VALID } from "./iopf_util.js";
import {
  IOMMU_VDEVICE_ALLOC, IOMMU_VEVENTQ_ALLOC, IOMMU_VEVENTQ_TYPE_SELFTEST, IOMMU_VIOMMU_ALLOC, IOMMU_VIOMMU_TYPE_SELFTEST,
  IOMMU_HW_QUEUE_ALLOC, IOMMU_HW_QUEUE_TYPE_SELFTEST,
} from "./viommu_util.js";

const BUFFER_SIZE = 2 * 1024 * 1024;
const LIMIT = 400;

/** Frames and commit charge: what must come back after the process dies. */
function memoryCounters(kernel: Kernel): { framesFree: number; committedPages: number } {
  const s = kernel.stats();
  return { framesFree: s.framesFree, committedPages: s.committedPages };
}

interface RunResult { ok: boolean; step: string; rc: number; remaining: number }

/**
 * What an injected failure may surface as: an allocation (ENOMEM), a user copy (EFAULT), or an
 * object lookup (iommufd_get_object's injection point, ENOENT).
 */
const INJECTED_ERRNOS = [-errno.ENOMEM, -errno.EFAULT, -errno.ENOENT];

/**
 * The sweep: a warm-up run, an unarmed run that must succeed, then n = 1, 2, ... with the nth
 * internal allocation/copy failing, until a run never consumes its failure (that run must have
 * succeeded). After every run the frames and commit charge are back at the baseline. Returns
 * the last n, the runs whose failure fired, and the "step:rc" of each run that failed.
 */
function sweep(kernel: Kernel, run: (arm: () => void) => RunResult,
  remapped: Readonly<Record<string, number>> = {}): { n: number; injected: number; failedSteps: Set<string> } {
  run(() => {}); // warm-up: anything the kernel allocates once, on first use, is allocated here
  const baseline = memoryCounters(kernel);

  // iteration 0: no injection, the body must succeed
  const first = run(() => {});
  expect(first.ok, `unarmed run failed at ${first.step} (${first.rc})`).toBe(true);
  expect(memoryCounters(kernel)).toEqual(baseline);

  let n = 1;
  let injected = 0;
  const failedSteps = new Set<string>();
  for (; n < LIMIT; n++) {
    const res = run(() => failNth(kernel, n));
    expect(memoryCounters(kernel), `n=${n}: frames/commit after kill`).toEqual(baseline);
    if (res.remaining > 0) {
      // the nth failure never fired: the sweep is complete and this run must have passed
      expect(res.ok, `n=${n}: un-injected run failed at ${res.step} (${res.rc})`).toBe(true);
      break;
    }
    injected++;
    if (!res.ok) {
      // which step fails varies with n; what it fails with does not
      const allowed = res.step in remapped ? [...INJECTED_ERRNOS, remapped[res.step]] : INJECTED_ERRNOS;
      expect(allowed, `n=${n}: ${res.step} must fail with ENOMEM, EFAULT or ENOENT`).toContain(res.rc);
      failedSteps.add(`${res.step}:${res.rc}`);
    }
  }
  expect(n, "sweep must finish within the iteration limit").toBeLessThan(LIMIT);
  expect(injected, "at least a few injection points on this path").toBeGreaterThan(3);
  return { n, injected, failedSteps };
}

/**
 * The body of fail_nth.basic. `arm` is called right before the first step (the kernel test
 * calls fail_nth_enable() first thing). Everything the process touches before that (the 2 MiB
 * buffer mapping, the ranges array, the ioctlBuf scratch page) is set up unarmed, as the C test
 * does in its constructors and on its stack.
 */
function runBasic(kernel: Kernel, arm: () => void): RunResult {
  const proc = kernel.createProcess();
  const buffer = proc.mmap(0, BUFFER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  expect(buffer).toBeGreaterThan(0);
  const rangesAt = proc.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  expect(rangesAt).toBeGreaterThan(0);
  expect(proc.writeMemory(rangesAt, new Uint8Array(PG))).toBe(0); // fault the page in
  proc.ioctlBuf(-1, IOMMU_IOAS_ALLOC, new Uint8Array(64)); // maps and faults in the scratch page (EBADF)

  let fd = -1;
  const done = (ok: boolean, step: string, rc: number): RunResult => ({ ok, step, rc, remaining: 0 });
  arm();

  fd = proc.open("/dev/iommu", O_RDWR);
  if (fd < 0) return finish(done(false, "open", fd));

  const alloc = ioasAllocCmd();
  let rc = proc.ioctlBuf(fd, IOMMU_IOAS_ALLOC, alloc.buf);
  if (rc) return finish(done(false, "IOAS_ALLOC", rc));
  const ioasId = alloc.g32(8);

  // IOVA_RANGES into a 10-entry array
  rc = proc.ioctlBuf(fd, IOMMU_IOAS_IOVA_RANGES, iovaRangesCmd(ioasId, 10, rangesAt).buf);
  if (rc) return finish(done(false, "IOVA_RANGES", rc));

  // ALLOW_IOVAS [16 KiB, BUFFER_SIZE + 16 KiB * 600 - 1], written into ranges[0]
  const r = new Cmd(16).u64(0, 16 * 1024).u64(8, BUFFER_SIZE + 16 * 1024 * 600 - 1);
  if (proc.writeMemory(rangesAt, r.buf) < 0) return finish(done(false, "write ranges", -errno.EFAULT));
  rc = proc.ioctlBuf(fd, IOMMU_IOAS_ALLOW_IOVAS, allowIovasCmd(ioasId, 1, rangesAt).buf);
  if (rc) return finish(done(false, "ALLOW_IOVAS", rc));

  // MAP the whole buffer, automatic IOVA
  const map = mapCmd({ flags: RW, ioasId, userVa: buffer, length: BUFFER_SIZE });
  rc = proc.ioctlBuf(fd, IOMMU_IOAS_MAP, map.buf);
  if (rc) return finish(done(false, "MAP", rc));
  const iova = map.g64(32);

  // COPY sizeof(ranges) = 160 bytes from the start of that mapping, automatic destination
  rc = proc.ioctlBuf(fd, IOMMU_IOAS_COPY, copyCmd({ flags: RW, dstIoasId: ioasId, srcIoasId: ioasId, length: 160, srcIova: iova }).buf);
  if (rc) return finish(done(false, "COPY", rc));

  rc = proc.ioctlBuf(fd, IOMMU_IOAS_UNMAP, unmapCmd(ioasId, iova, BUFFER_SIZE).buf);
  if (rc) return finish(done(false, "UNMAP", rc));
  // the "nothing to unmap" error path; its result is not part of the verdict
  proc.ioctlBuf(fd, IOMMU_IOAS_UNMAP, unmapCmd(ioasId, iova, BUFFER_SIZE).buf);
  return finish(done(true, "done", 0));

  function finish(res: RunResult): RunResult {
    // what teardown does: read what is left of the countdown, switch injection off, close
    const remaining = failNthRemaining(kernel);
    failNth(kernel, 0);
    if (fd >= 0) expect(proc.close(fd), "close(iommufd)").toBe(0);
    const s = kernel.stats();
    expect(s.iommufdObjects, `objects left after ${res.step}`).toBe(0);
    expect(s.pinnedPages, `pins left after ${res.step}`).toBe(0);
    proc.kill();
    return { ...res, remaining };
  }
}

describe("FIXTURE basic_fail_nth", () => {
  it("fail_nth.basic", async () => {
    const kernel = await createKernel();

    const { n, injected, failedSteps } = sweep(kernel, (arm) => runBasic(kernel, arm));
    if (process.env.FAIL_NTH_VERBOSE) console.log(`fail_nth.basic: n=${n}, injected=${injected}, failed steps: ${[...failedSteps].join(", ")}`);
    // the failures must have reached past open(): the ioctls have injection points too
    expect([...failedSteps].some((s) => !s.startsWith("open:"))).toBe(true);
    await kernel.close();
  });
});

// ---------------------------------------------------------------------------------------------
// The [mock] sweeps of iommufd_fail_nth.c (CONFORMANCE.md §3b). Same harness: each body
// succeeds on its own, then runs with the nth internal allocation/copy failing, n = 1, 2, ...
// until a run never consumes its failure. After every run: the access fd (which holds the
// iommufd context) and the iommufd are closed (both must return 0), no object and no pin may
// be left, and after the process is killed every frame and committed page is back.

const MOCK_BUFFER_SIZE = 2 * 1024 * 1024;
const SMALL_MAP = 262144;

/** Thrown by `step` to leave a body early, as the C bodies `return -1`. */
class Stop { constructor(readonly step: string, readonly rc: number) {} }

interface MockRun {
  proc: Process;
  fd: number;
  accessFd: number;
  buffer: number;
  mfd: number;
  tmp: number;
  tmpBig: number;
  /** The ioctl's rc; a non-zero rc ends the body (with that step's name). */
  step(name: string, rc: number): void;
  ioctl(req: number, c: Cmd): number;
}

type MockBody = (r: MockRun, arm: () => void) => void;

function runMock(kernel: Kernel, body: MockBody, arm: () => void): RunResult {
  // the C test's constructors: a 2 MiB shared anonymous buffer and a 2 MiB memfd mapping,
  // plus the stack arrays of the bodies; all set up before injection starts
  const proc = kernel.createProcess({ capIpcLock: true }); // the selftest runs as root
  const buffer = proc.mmap(0, MOCK_BUFFER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  expect(buffer).toBeGreaterThan(0);
  const mfd = proc.memfd_create("buffer");
  expect(mfd).toBeGreaterThanOrEqual(0);
  expect(proc.ftruncate(mfd, MOCK_BUFFER_SIZE)).toBe(0);
  const mfdBuffer = proc.mmap(0, MOCK_BUFFER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
  expect(mfdBuffer).toBeGreaterThan(0);
  // Both buffers are faulted in before injection starts: the kernel's fail_page_alloc leaves
  // highmem (user page) allocations alone by default, so the sweep covers iommufd's own
  // allocation points, not the page faults of 512 user pages.
  expect(proc.writeMemory(buffer, new Uint8Array(MOCK_BUFFER_SIZE).fill(0x5a))).toBe(0);
  expect(proc.writeMemory(mfdBuffer, new Uint8Array(MOCK_BUFFER_SIZE).fill(0xa5))).toBe(0);
  const stack = proc.mmap(0, 64 * 1024, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  expect(stack).toBeGreaterThan(0);
  expect(proc.writeMemory(stack, new Uint8Array(64 * 1024))).toBe(0); // fault the stack in
  proc.ioctlBuf(-1, IOMMU_IOAS_ALLOC, new Uint8Array(72)); // maps and faults in the scratch page (EBADF)

  const r: MockRun = {
    proc, fd: -1, accessFd: 0, buffer, mfd, tmp: stack, tmpBig: stack + 4096,
    step(name, rc) { if (rc !== 0) throw new Stop(name, rc); },
    ioctl(req, c) { return proc.ioctlBuf(r.fd, req, c.buf); },
  };
  let res: RunResult;
  try {
    body(r, arm);
    res = { ok: true, step: "done", rc: 0, remaining: 0 };
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
    res = { ok: false, step: e.step, rc: e.rc, remaining: 0 };
  }
  // teardown: read what is left of the countdown, injection off, close the access, then the fd
  const remaining = failNthRemaining(kernel);
  failNth(kernel, 0);
  if (r.accessFd) expect(proc.close(r.accessFd), `close(access) after ${res.step}`).toBe(0);
  if (r.fd >= 0) expect(proc.close(r.fd), `close(iommufd) after ${res.step}`).toBe(0);
  const s = kernel.stats();
  expect(s.iommufdObjects, `objects left after ${res.step}`).toBe(0);
  expect(s.pinnedPages, `pins left after ${res.step}`).toBe(0);
  proc.kill();
  return { ...res, remaining };
}

// Small helpers over MockRun, each one C helper of iommufd_utils.h.
function mOpen(r: MockRun): void {
  r.fd = r.proc.open("/dev/iommu", O_RDWR);
  if (r.fd < 0) { const rc = r.fd; r.fd = -1; throw new Stop("open", rc); }
}
function mIoasAlloc(r: MockRun): number {
  const c = ioasAllocCmd();
  r.step("IOAS_ALLOC", r.ioctl(IOMMU_IOAS_ALLOC, c));
  return c.g32(8);
}
function mLimit(r: MockRun, limit: number): void {
  r.step("SET_TEMP_MEMORY_LIMIT", r.ioctl(IOMMU_TEST_CMD, memoryLimitCmd(limit)));
}
function mMockDomain(r: MockRun, ioasId: number, name = "MOCK_DOMAIN"): number {
  const c = mockDomainCmd(ioasId);
  r.step(name, r.ioctl(IOMMU_TEST_CMD, c));
  return c.g32(16);
}
function mMap(r: MockRun, ioasId: number, length: number): bigint {
  const c = mapCmd({ flags: RW, ioasId, userVa: r.buffer, length });
  r.step("MAP", r.ioctl(IOMMU_IOAS_MAP, c));
  return c.g64(32);
}
function mDestroy(r: MockRun, id: number, name: string): void {
  r.step(name, r.ioctl(IOMMU_DESTROY, destroyCmd(id)));
}
function mCreateAccess(r: MockRun, ioasId: number, flags: number): void {
  const c = createAccessCmd(ioasId, flags);
  r.step("CREATE_ACCESS", r.ioctl(IOMMU_TEST_CMD, c));
  r.accessFd = c.g32(16);
}
function mCloseAccess(r: MockRun): void {
  const rc = r.proc.close(r.accessFd);
  r.step("close(access)", rc);
  r.accessFd = 0;
}
function mAccessPinCycle(r: MockRun, iova: bigint): void {
  const c = accessPagesCmd(r.accessFd, iova, MOCK_BUFFER_SIZE, r.buffer);
  r.step("ACCESS_PAGES", r.ioctl(IOMMU_TEST_CMD, c));
  r.step("DESTROY_ACCESS_PAGES", r.ioctl(IOMMU_TEST_CMD, destroyAccessPagesCmd(r.accessFd, c.g32(20))));
}

const MOCK_SWEEPS: [string, MockBody][] = [
  // iopt_area_fill_domains() and iopt_area_fill_domain()
  ["fail_nth.map_domain", (r, arm) => {
    mOpen(r);
    const ioasId = mIoasAlloc(r);
    mLimit(r, 32);
    arm();
    let stdev = mMockDomain(r, ioasId);
    mMap(r, ioasId, SMALL_MAP);
    mDestroy(r, stdev, "DESTROY(stdev)");
    stdev = mMockDomain(r, ioasId, "MOCK_DOMAIN again");
  }],
  ["fail_nth.map_file_domain", (r, arm) => {
    mOpen(r);
    const ioasId = mIoasAlloc(r);
    mLimit(r, 32);
    arm();
    const stdev = mMockDomain(r, ioasId);
    const c = mapFileCmd({ flags: RW, ioasId, fd: r.mfd, start: 0, length: SMALL_MAP });
    r.step("MAP_FILE", r.ioctl(IOMMU_IOAS_MAP_FILE, c));
    mDestroy(r, stdev, "DESTROY(stdev)");
    mMockDomain(r, ioasId, "MOCK_DOMAIN again");
  }],
  ["fail_nth.map_two_domains", (r, arm) => {
    mOpen(r);
    const ioasId = mIoasAlloc(r);
    mLimit(r, 32);
    const stdev = mMockDomain(r, ioasId);
    arm();
    const stdev2 = mMockDomain(r, ioasId, "MOCK_DOMAIN 2");
    mMap(r, ioasId, SMALL_MAP);
    mDestroy(r, stdev, "DESTROY(stdev)");
    mDestroy(r, stdev2, "DESTROY(stdev2)");
    mMockDomain(r, ioasId, "MOCK_DOMAIN again");
    mMockDomain(r, ioasId, "MOCK_DOMAIN 2 again");
  }],
  ["fail_nth.access_rw", (r, arm) => {
    mOpen(r);
    const ioasId = mIoasAlloc(r);
    mLimit(r, 32);
    const iova = mMap(r, ioasId, SMALL_MAP);
    arm();
    mCreateAccess(r, ioasId, 0);
    // uint16_t tmp[32]: read, write, slow-path read, slow-path write
    for (const [name, flags] of [["ACCESS_RW read", 0], ["ACCESS_RW write", MOCK_ACCESS_RW_WRITE],
      ["ACCESS_RW slow read", MOCK_ACCESS_RW_SLOW_PATH], ["ACCESS_RW slow write", MOCK_ACCESS_RW_SLOW_PATH | MOCK_ACCESS_RW_WRITE]] as const) {
      r.step(name, r.ioctl(IOMMU_TEST_CMD, accessRwCmd(r.accessFd, iova, 64, r.tmp, flags)));
    }
    // uint64_t tmp_big[4096], slow path
    r.step("ACCESS_RW slow read 32K", r.ioctl(IOMMU_TEST_CMD, accessRwCmd(r.accessFd, iova, 32768, r.tmpBig, MOCK_ACCESS_RW_SLOW_PATH)));
    mCloseAccess(r);
  }],
  // pages.c access functions
  ["fail_nth.access_pin", (r, arm) => {
    mOpen(r);
    const ioasId = mIoasAlloc(r);
    mLimit(r, 32);
    const iova = mMap(r, ioasId, MOCK_BUFFER_SIZE);
    mCreateAccess(r, ioasId, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
    arm();
    mAccessPinCycle(r, iova);
    mCloseAccess(r);
  }],
  // iopt_pages_fill_xarray(): the pin is filled from the domain
  ["fail_nth.access_pin_domain", (r, arm) => {
    mOpen(r);
    const ioasId = mIoasAlloc(r);
    mLimit(r, 32);
    const stdev = mMockDomain(r, ioasId);
    const iova = mMap(r, ioasId, MOCK_BUFFER_SIZE);
    mCreateAccess(r, ioasId, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
    arm();
    mAccessPinCycle(r, iova);
    mCloseAccess(r);
    mDestroy(r, stdev, "DESTROY(stdev)");
  }],
  // device.c, hw_pagetable.c, viommu.c, eventq.c
  ["fail_nth.device", (r, arm) => {
    mOpen(r);
    const ioasId = mIoasAlloc(r);
    const ioasId2 = mIoasAlloc(r);
    for (const id of [ioasId, ioasId2]) {
      const c = mapCmd({ flags: RW | FIXED, ioasId: id, userVa: r.buffer, length: PG, iova: MOCK_APERTURE_START });
      r.step("MAP", r.ioctl(IOMMU_IOAS_MAP, c));
    }
    arm();
    const md = mockDomainCmd(ioasId);
    r.step("MOCK_DOMAIN", r.ioctl(IOMMU_TEST_CMD, md));
    const [stdevId, idevId] = [md.g32(16), md.g32(24)];
    // struct iommu_test_hw_info on the stack
    r.step("GET_HW_INFO", r.ioctl(IOMMU_GET_HW_INFO, hwInfoCmd(idevId, 8, r.tmp)));
    const h = hwptAllocCmd({ devId: idevId, ptId: ioasId });
    r.step("HWPT_ALLOC", r.ioctl(IOMMU_HWPT_ALLOC, h));
    const hwptId = h.g32(16);
    r.step("MOCK_DOMAIN_REPLACE ioas2", r.ioctl(IOMMU_TEST_CMD, mockDomainReplaceCmd(stdevId, ioasId2)));
    r.step("MOCK_DOMAIN_REPLACE hwpt", r.ioctl(IOMMU_TEST_CMD, mockDomainReplaceCmd(stdevId, hwptId)));
    const p = hwptAllocCmd({ devId: idevId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
    r.step("HWPT_ALLOC nest parent", r.ioctl(IOMMU_HWPT_ALLOC, p));
    const parentId = p.g32(16);
    const v = new Cmd(40).u32(0, 40).u32(8, IOMMU_VIOMMU_TYPE_SELFTEST).u32(12, idevId).u32(16, parentId);
    r.step("VIOMMU_ALLOC", r.ioctl(IOMMU_VIOMMU_ALLOC, v));
    const viommuId = v.g32(20);
    r.step("VDEVICE_ALLOC", r.ioctl(IOMMU_VDEVICE_ALLOC, new Cmd(24).u32(0, 24).u32(4, viommuId).u32(8, idevId)));
    // index 0 over the page mapped at MOCK_APERTURE_START in the parent's IOAS
    const hq = new Cmd(40).u32(0, 40).u32(8, viommuId).u32(12, IOMMU_HW_QUEUE_TYPE_SELFTEST).u64(24, MOCK_APERTURE_START).u64(32, PG);
    r.step("HW_QUEUE_ALLOC", r.ioctl(IOMMU_HW_QUEUE_ALLOC, hq));
    const f = new Cmd(16).u32(0, 16);
    r.step("FAULT_QUEUE_ALLOC", r.ioctl(IOMMU_FAULT_QUEUE_ALLOC, f));
    r.step("close(fault fd)", r.proc.close(f.g32(12)));
    // struct iommu_hwpt_selftest { iotlb } on the stack
    r.step("write data", r.proc.writeMemory(r.tmp, new Cmd(8).u32(0, IOMMU_TEST_IOTLB_DEFAULT).buf));
    const n = hwptAllocCmd({ devId: idevId, ptId: parentId, flags: IOMMU_HWPT_FAULT_ID_VALID, dataType: IOMMU_HWPT_DATA_SELFTEST, dataUptr: r.tmp, dataLen: 8 });
    n.u32(40, f.g32(8));
    r.step("HWPT_ALLOC nested iopf", r.ioctl(IOMMU_HWPT_ALLOC, n));
    const q = new Cmd(32).u32(0, 32).u32(8, viommuId).u32(12, IOMMU_VEVENTQ_TYPE_SELFTEST).u32(16, 2);
    r.step("VEVENTQ_ALLOC", r.ioctl(IOMMU_VEVENTQ_ALLOC, q));
    r.step("close(veventq fd)", r.proc.close(q.g32(24)));
  }],
  // (not a sweep of iommufd_fail_nth.c) a vIOMMU with user data: its pages, its mmap region
  ["vIOMMU user data and its mmap", (r, arm) => {
    mOpen(r);
    const ioasId = mIoasAlloc(r);
    const md = mockDomainCmd(ioasId);
    r.step("MOCK_DOMAIN", r.ioctl(IOMMU_TEST_CMD, md));
    const idevId = md.g32(24);
    const p = hwptAllocCmd({ devId: idevId, ptId: ioasId, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
    r.step("HWPT_ALLOC nest parent", r.ioctl(IOMMU_HWPT_ALLOC, p));
    // struct iommu_viommu_selftest { in_data } on the stack
    r.step("write data", r.proc.writeMemory(r.tmp, new Cmd(24).u32(0, 0xbeef).buf));
    arm();
    const v = new Cmd(40).u32(0, 40).u32(8, IOMMU_VIOMMU_TYPE_SELFTEST).u32(12, idevId).u32(16, p.g32(16)).u32(24, 24).u64(32, r.tmp);
    r.step("VIOMMU_ALLOC with data", r.ioctl(IOMMU_VIOMMU_ALLOC, v));
    const at = r.proc.mmap(0, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, PG);
    r.step("mmap", at < 0 ? at : 0);
    r.step("munmap", r.proc.munmap(at, 2 * PG));
    mDestroy(r, v.g32(20), "DESTROY(viommu)");
  }],
];

/**
 * Steps whose ioctl reports a failed lookup as another errno, as the kernel's does:
 * iommufd_hwpt_alloc turns any failure to get pt_id into EINVAL.
 */
const REMAPPED: Record<string, Record<string, number>> = {
  "fail_nth.device": { "HWPT_ALLOC": -errno.EINVAL, "HWPT_ALLOC nest parent": -errno.EINVAL, "HWPT_ALLOC nested iopf": -errno.EINVAL },
};

describe("FIXTURE basic_fail_nth [mock]", () => {
  it.each(MOCK_SWEEPS)("%s", async (name, body) => {
    const kernel = await createKernel({ memoryBytes: 64 * 1024 * 1024 });
    enableTestCmd(kernel);

    const { n, injected, failedSteps } = sweep(kernel, (arm) => runMock(kernel, body, arm), REMAPPED[name]);
    if (process.env.FAIL_NTH_VERBOSE) console.log(`${name}: n=${n}, injected=${injected}, failed steps: ${[...failedSteps].join(", ")}`);
    // the injected failures reach the ioctls after the arm point
    expect(failedSteps.size, "some step failed under injection").toBeGreaterThan(0);
    await kernel.close();
  });
});
