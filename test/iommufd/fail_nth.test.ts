// fail_nth.basic of tools/testing/selftests/iommu/iommufd_fail_nth.c (CONFORMANCE.md §3b), swept
// to exhaustion: the body succeeds on its own; then for n = 1, 2, 3, ... the nth internal
// allocation or copy fails. Every run must fail cleanly: after closing the iommufd no object and
// no pin is left, and killing the process gives back every frame and every committed page. The
// sweep ends at the first n whose failure was never consumed (that run must have succeeded).

import { describe, it, expect } from "vitest";
import { createKernel, O_RDWR, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_ANONYMOUS, type Kernel } from "../../src/index.js";
import { failNth, failNthRemaining } from "../../src/testing.js";
import {
  PG, IOMMU_IOAS_ALLOC, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_MAP, IOMMU_IOAS_COPY,
  IOMMU_IOAS_UNMAP, RW, Cmd, ioasAllocCmd, iovaRangesCmd, allowIovasCmd, mapCmd, copyCmd, unmapCmd,
} from "./util.js";

const BUFFER_SIZE = 2 * 1024 * 1024;
const LIMIT = 400;

/** Frames and commit charge: what must come back after the process dies. */
function memoryCounters(kernel: Kernel): { framesFree: number; committedPages: number } {
  const s = kernel.stats();
  return { framesFree: s.framesFree, committedPages: s.committedPages };
}

interface RunResult { ok: boolean; step: string; rc: number; remaining: number }

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
  if (proc.writeMemory(rangesAt, r.buf) < 0) return finish(done(false, "write ranges", -14));
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

    // warm-up: anything the kernel allocates once, on first use, is allocated here
    runBasic(kernel, () => {});
    const baseline = memoryCounters(kernel);

    // iteration 0: no injection, the body must succeed
    const first = runBasic(kernel, () => {});
    expect(first.ok, `unarmed run failed at ${first.step} (${first.rc})`).toBe(true);
    expect(memoryCounters(kernel)).toEqual(baseline);

    let n = 1;
    let injected = 0;
    const failedSteps = new Set<string>();
    for (; n < LIMIT; n++) {
      const res = runBasic(kernel, () => failNth(kernel, n));
      expect(memoryCounters(kernel), `n=${n}: frames/commit after kill`).toEqual(baseline);
      if (res.remaining > 0) {
        // the nth failure never fired: the sweep is complete and this run must have passed
        expect(res.ok, `n=${n}: un-injected run failed at ${res.step} (${res.rc})`).toBe(true);
        break;
      }
      injected++;
      if (!res.ok) {
        expect(res.rc, `n=${n}: ${res.step} must fail with an errno`).toBeLessThan(0);
        failedSteps.add(res.step);
      }
    }
    if (process.env.FAIL_NTH_VERBOSE) console.log(`fail_nth.basic: n=${n}, injected=${injected}, failed steps: ${[...failedSteps].join(", ")}`);
    expect(n, "sweep must finish within the iteration limit").toBeLessThan(LIMIT);
    expect(injected, "at least a few injection points on this path").toBeGreaterThan(3);
    // the failures must have reached past open(): the ioctls have injection points too
    expect([...failedSteps].some((s) => s !== "open")).toBe(true);
    await kernel.close();
  });
});
