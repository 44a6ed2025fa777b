// IOMMU_IOAS_MAP_FILE of a dma-buf: ports of the kernel's iommufd_ioas dmabuf_* selftests (all
// iommufd_ioas variants) and the emulator's own tests of the import and revoke rules (pages.c
// IOPT_ADDRESS_DMABUF, selftest.c iommufd_test_dmabuf_*). Paraphrased; titles are kernel ids.

import { describe, it, expect } from "vitest";
import { createKernel, O_RDWR, type Kernel } from "../../src/index.js";
import { enableTestCmd, failNth, failNthRemaining } from "../../src/testing.js";
import {
  errno, PG, BUFFER_SIZE, IOMMU_TEST_CMD, IOMMU_HWPT_ALLOC, IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_COPY, IOMMU_IOAS_ALLOC, FIXED, RW, DEFAULT_MEMORY_LIMIT, ioasAllocCmd,
  Cmd, io, ioasAlloc, destroy, unmap, hugeAlignedBuffer, mapFileCmd, copyCmd, hwptAllocCmd, mockDomainCmd,
  checkRefsCmd, memoryLimitCmd, createAccessCmd, accessRwCmd, mmapAnon, type Fixture,
} from "./util.js";

const MiB = 1024 * 1024;
const O_CLOEXEC = 0o2000000;

// iommu_test_cmd ops of the dma-buf series (iommufd_test.h)
const IOMMU_TEST_OP_DMABUF_GET = 22;
const IOMMU_TEST_OP_DMABUF_REVOKE = 23;
const IOMMU_TEST_OP_MD_CHECK_DMABUF = 24;

//   dmabuf_get { length @16, open_flags @20 }; the new fd is the ioctl's return value
const dmabufGetCmd = (length: number, openFlags = O_CLOEXEC): Cmd =>
  new Cmd(72).u32(0, 72).u32(4, IOMMU_TEST_OP_DMABUF_GET).u32(16, length).u32(20, openFlags);
//   dmabuf_revoke { dmabuf_fd s32 @16, revoked @20 }
const dmabufRevokeCmd = (fd: number, revoked: boolean): Cmd =>
  new Cmd(72).u32(0, 72).u32(4, IOMMU_TEST_OP_DMABUF_REVOKE).u32(16, fd).u32(20, revoked ? 1 : 0);
//   check_dmabuf { dmabuf_fd s32 @16, iova u64 @24, length u64 @32, offset u64 @40 }
const checkDmabufCmd = (hwptId: number, fd: number, iova: number | bigint, length: number, offset: number): Cmd =>
  new Cmd(72).u32(0, 72).u32(4, IOMMU_TEST_OP_MD_CHECK_DMABUF).u32(8, hwptId).u32(16, fd)
    .u64(24, iova).u64(32, length).u64(40, offset);

interface IoasVariant { name: string; mockDomains: number; memoryLimit: number }
const VARIANTS: IoasVariant[] = [
  { name: "no_domain", mockDomains: 0, memoryLimit: 0 },
  { name: "mock_domain", mockDomains: 1, memoryLimit: 0 },
  { name: "two_mock_domain", mockDomains: 2, memoryLimit: 0 },
  { name: "mock_domain_limit", mockDomains: 1, memoryLimit: 16 },
];

interface Fx extends Fixture {
  kernel: Kernel; free0: number; ioasId: number; hwptId: number; deviceId: number; buffer: number; hwptIds: number[];
}

async function fixture(v: IoasVariant): Promise<Fx> {
  const kernel = await createKernel({ memoryBytes: 64 * MiB });
  enableTestCmd(kernel);
  const free0 = kernel.stats().framesFree;
  const proc = kernel.createProcess();
  const fd = proc.open("/dev/iommu", O_RDWR);
  expect(fd).toBeGreaterThanOrEqual(0);
  const fx: Fx = { kernel, free0, proc, fd, ioasId: 0, hwptId: 0, deviceId: 0, buffer: 0, hwptIds: [] } as Fx;
  fx.buffer = hugeAlignedBuffer(proc);
  fx.ioasId = ioasAlloc(fx);
  expect(io(fx, IOMMU_TEST_CMD, memoryLimitCmd(v.memoryLimit || DEFAULT_MEMORY_LIMIT))).toBe(0);
  for (let i = 0; i < v.mockDomains; i++) {
    const c = mockDomainCmd(fx.ioasId);
    expect(io(fx, IOMMU_TEST_CMD, c), "MOCK_DOMAIN").toBe(0);
    fx.hwptId = c.g32(20);
    fx.deviceId = c.g32(24);
    fx.hwptIds.push(fx.hwptId);
  }
  return fx;
}

/** teardown_iommufd, and nothing of the buffers or the context may be left. */
async function teardown(fx: Fx): Promise<void> {
  expect(io(fx, IOMMU_TEST_CMD, memoryLimitCmd(DEFAULT_MEMORY_LIMIT))).toBe(0);
  expect(fx.proc.close(fx.fd), "close(iommufd)").toBe(0);
  const fd = fx.proc.open("/dev/iommu", O_RDWR);
  expect(io({ proc: fx.proc, fd }, IOMMU_TEST_CMD, checkRefsCmd(fx.buffer, BUFFER_SIZE, 0))).toBe(0);
  expect(fx.proc.close(fd)).toBe(0);
  const s = fx.kernel.stats();
  expect(s.iommufdObjects).toBe(0);
  expect(s.pinnedPages).toBe(0);
  fx.proc.kill();
  // every dma-buf fd is closed by now: their pages are free again, as is all else
  expect(fx.kernel.stats().framesFree, "framesFree after teardown").toBe(fx.free0);
  await fx.kernel.close();
}

/** test_cmd_get_dmabuf: must succeed; the fd. */
function getDmabuf(fx: Fixture, length: number): number {
  const rc = io(fx, IOMMU_TEST_CMD, dmabufGetCmd(length));
  expect(rc, `DMABUF_GET(${length})`).toBeGreaterThan(0);
  return rc;
}

function revoke(fx: Fixture, dfd: number, revoked: boolean): number {
  return io(fx, IOMMU_TEST_CMD, dmabufRevokeCmd(dfd, revoked));
}

/** _test_ioctl_ioas_map_file (READABLE|WRITEABLE, automatic or fixed IOVA): rc and iova. */
function mapFile(fx: Fx, dfd: number, start: number, length: number, fixed?: bigint, ioasId = fx.ioasId): { rc: number; iova: bigint } {
  const c = mapFileCmd({ flags: RW | (fixed !== undefined ? FIXED : 0), ioasId, fd: dfd, start, length, iova: fixed ?? 0 });
  const rc = io(fx, IOMMU_IOAS_MAP_FILE, c);
  return { rc, iova: c.g64(32) };
}

function mapFileOk(fx: Fx, dfd: number, start: number, length: number): bigint {
  const r = mapFile(fx, dfd, start, length);
  expect(r.rc, `MAP_FILE(${start}, ${length})`).toBe(0);
  return r.iova;
}

function checkDmabuf(fx: Fixture, hwptId: number, dfd: number, iova: number | bigint, length: number, offset: number): number {
  return io(fx, IOMMU_TEST_CMD, checkDmabufCmd(hwptId, dfd, iova, length, offset));
}

describe.each(VARIANTS)("FIXTURE iommufd_ioas ($name)", (variant) => {
  const t = (title: string, body: (fx: Fx) => void) =>
    it(title, async () => {
      const fx = await fixture(variant);
      body(fx);
      await teardown(fx);
    });

  t("ioas.dmabuf_simple", (fx) => {
    const size = PG * 4;
    const dfd = getDmabuf(fx, size);
    expect(mapFile(fx, dfd, 0, 0).rc).toBe(-errno.EINVAL);
    expect(mapFile(fx, dfd, size, size).rc).toBe(-errno.EINVAL);
    expect(mapFile(fx, dfd, 0, size + 1).rc).toBe(-errno.EINVAL);
    const iova = mapFileOk(fx, dfd, 0, size);
    if (variant.mockDomains) expect(checkDmabuf(fx, fx.hwptId, dfd, iova, size, 0)).toBe(0);
    expect(fx.proc.close(dfd)).toBe(0);
  });

  t("ioas.dmabuf_multi_page", (fx) => {
    const check = (dfd: number, iova: bigint, length: number, offset: number) => {
      if (variant.mockDomains) expect(checkDmabuf(fx, fx.hwptId, dfd, iova, length, offset), `check ${length}@${offset}`).toBe(0);
    };
    // a single page
    let dfd = getDmabuf(fx, PG);
    check(dfd, mapFileOk(fx, dfd, 0, PG), PG, 0);
    expect(fx.proc.close(dfd)).toBe(0);
    // many pages
    dfd = getDmabuf(fx, PG * 64);
    check(dfd, mapFileOk(fx, dfd, 0, PG * 64), PG * 64, 0);
    expect(fx.proc.close(dfd)).toBe(0);
    // a sub-range from the middle
    dfd = getDmabuf(fx, PG * 16);
    check(dfd, mapFileOk(fx, dfd, PG * 4, PG * 8), PG * 8, PG * 4);
    expect(fx.proc.close(dfd)).toBe(0);
    // several sub-ranges of one buffer
    dfd = getDmabuf(fx, PG * 16);
    check(dfd, mapFileOk(fx, dfd, 0, PG * 4), PG * 4, 0);
    check(dfd, mapFileOk(fx, dfd, PG * 8, PG * 4), PG * 4, PG * 8);
    expect(fx.proc.close(dfd)).toBe(0);
  });

  t("ioas.dmabuf_revoke", (fx) => {
    const size = PG * 4;
    const dfd = getDmabuf(fx, size);
    const iova = mapFileOk(fx, dfd, 0, size);
    expect(revoke(fx, dfd, true)).toBe(0);
    if (variant.mockDomains) {
      // a new domain over the IOAS with a revoked area in it
      expect(io(fx, IOMMU_HWPT_ALLOC, hwptAllocCmd({ devId: fx.deviceId, ptId: fx.ioasId }))).toBe(0);
    }
    expect(mapFile(fx, dfd, 0, size).rc).toBe(-errno.ENODEV);
    expect(revoke(fx, dfd, false)).toBe(0);
    mapFileOk(fx, dfd, 0, size);
    // the revoked area's IOVA back again
    expect(unmap(fx, fx.ioasId, iova, size).rc).toBe(0);
    expect(mapFile(fx, dfd, 0, size, iova).rc).toBe(0);
    expect(fx.proc.close(dfd)).toBe(0);
  });

  // ---- the emulator's own tests -------------------------------------------------------------

  t("dmabuf: a revoke takes the pages out of every domain for good; a new map sees them again", (fx) => {
    const size = PG * 8;
    const dfd = getDmabuf(fx, size);
    const iova = mapFileOk(fx, dfd, 0, size);
    // COPY makes a second area over the same pages
    const dst = ioasAlloc(fx);
    const cp = copyCmd({ flags: RW, dstIoasId: dst, srcIoasId: fx.ioasId, length: size, srcIova: iova });
    expect(io(fx, IOMMU_IOAS_COPY, cp)).toBe(0);
    for (const h of fx.hwptIds) expect(checkDmabuf(fx, h, dfd, iova, size, 0)).toBe(0);
    expect(revoke(fx, dfd, true)).toBe(0);
    // no translation is left in any domain: the device's DMA there faults
    for (const h of fx.hwptIds) expect(checkDmabuf(fx, h, dfd, iova, PG, 0)).toBe(-errno.EINVAL);
    expect(revoke(fx, dfd, false)).toBe(0);
    for (const h of fx.hwptIds) expect(checkDmabuf(fx, h, dfd, iova, PG, 0), "stays revoked").toBe(-errno.EINVAL);
    const again = mapFileOk(fx, dfd, PG, PG * 2);
    for (const h of fx.hwptIds) expect(checkDmabuf(fx, h, dfd, again, PG * 2, PG)).toBe(0);
    // unmapping revoked areas is plain
    expect(unmap(fx, fx.ioasId, iova, size).rc).toBe(0);
    expect(destroy(fx, dst)).toBe(0);
    expect(fx.proc.close(dfd)).toBe(0);
  });

  t("dmabuf: the mapping holds the buffer after its fd is closed; CPU reads and writes through an access are EINVAL (iopt_pages_rw_access)", (fx) => {
    const before = fx.kernel.stats().framesFree;
    const dfd = getDmabuf(fx, PG * 2);
    const iova = mapFileOk(fx, dfd, 0, PG * 2);
    expect(fx.proc.close(dfd)).toBe(0);
    expect(fx.kernel.stats().framesFree, "pages kept by the attachment").toBeLessThanOrEqual(before - 2);
    const ac = createAccessCmd(fx.ioasId, 0);
    expect(io(fx, IOMMU_TEST_CMD, ac)).toBe(0);
    const afd = ac.g32(16);
    const tmp = mmapAnon(fx.proc, PG);
    expect(io(fx, IOMMU_TEST_CMD, accessRwCmd(afd, iova, 16, tmp))).toBe(-errno.EINVAL);
    expect(fx.proc.close(afd)).toBe(0);
    expect(unmap(fx, fx.ioasId, iova, PG * 2).rc).toBe(0);
  });

  t("dmabuf: DMABUF_GET, DMABUF_REVOKE and MD_CHECK_DMABUF argument rules", (fx) => {
    for (const len of [0, PG - 1, PG + 1, 513 * PG]) expect(io(fx, IOMMU_TEST_CMD, dmabufGetCmd(len)), `len ${len}`).toBe(-errno.EINVAL);
    const dfd = getDmabuf(fx, 512 * PG);
    expect(revoke(fx, 999, true)).toBe(-errno.EBADF);
    const mfd = fx.proc.memfd_create("not-a-dmabuf");
    expect(revoke(fx, mfd, true)).toBe(-errno.EINVAL);
    // the fd is O_RDONLY (open_flags O_CLOEXEC): a dma-buf has no FMODE_WRITE check
    const iova = mapFileOk(fx, dfd, 0, PG);
    if (variant.mockDomains) {
      expect(checkDmabuf(fx, fx.hwptId, mfd, iova, PG, 0)).toBe(-errno.EINVAL);
      expect(checkDmabuf(fx, fx.hwptId, 999, iova, PG, 0)).toBe(-errno.EBADF);
      expect(checkDmabuf(fx, fx.hwptId, dfd, iova + 1n, PG, 0)).toBe(-errno.EINVAL);
      expect(checkDmabuf(fx, fx.hwptId, dfd, iova, PG, 1)).toBe(-errno.EINVAL);
      expect(checkDmabuf(fx, fx.hwptId, dfd, iova, PG * 2, 511 * PG)).toBe(-errno.EINVAL);
      // the right range at the wrong offset
      expect(checkDmabuf(fx, fx.hwptId, dfd, iova, PG, PG)).toBe(-errno.EINVAL);
      expect(checkDmabuf(fx, fx.ioasId, dfd, iova, PG, 0)).toBe(-errno.ENOENT);
    }
    expect(fx.proc.close(mfd)).toBe(0);
    expect(fx.proc.close(dfd)).toBe(0);
  });
});

// ---- fault injection: nothing of a dma-buf import is left after any failure -------------------

describe("dmabuf: fail_nth sweep", () => {
  it("DMABUF_GET, MAP_FILE into two domains, COPY, revoke, unmap: every injected failure leaves no object, pin or frame", async () => {
    const kernel = await createKernel({ memoryBytes: 64 * MiB });
    enableTestCmd(kernel);
    /** One run; the failing step's name and rc, or "done". */
    const run = (arm: () => void): { step: string; rc: number; remaining: number } => {
      const proc = kernel.createProcess({ capIpcLock: true });
      const fd = proc.open("/dev/iommu", O_RDWR);
      expect(fd).toBeGreaterThanOrEqual(0);
      const fx = { kernel, proc, fd };
      let step = "done";
      let rc = 0;
      const s = (name: string, r: number): boolean => {
        if (r < 0 && step === "done") { step = name; rc = r; }
        return r >= 0;
      };
      const ioas = ioasAllocCmd();
      const domains: Cmd[] = [mockDomainCmd(0), mockDomainCmd(0)];
      if (s("IOAS_ALLOC", io(fx, IOMMU_IOAS_ALLOC, ioas))) {
        const ioasId = ioas.g32(8);
        const dst = ioasAllocCmd();
        arm();
        let ok = s("IOAS_ALLOC dst", io(fx, IOMMU_IOAS_ALLOC, dst));
        for (const d of domains) ok = ok && s("MOCK_DOMAIN", io(fx, IOMMU_TEST_CMD, d.u32(8, ioasId)));
        const dfd = ok ? io(fx, IOMMU_TEST_CMD, dmabufGetCmd(PG * 8)) : -1;
        ok = ok && s("DMABUF_GET", dfd);
        const m = mapFileCmd({ flags: RW, ioasId, fd: dfd, start: PG, length: PG * 4 });
        ok = ok && s("MAP_FILE", io(fx, IOMMU_IOAS_MAP_FILE, m));
        const cp = copyCmd({ flags: RW, dstIoasId: dst.g32(8), srcIoasId: ioasId, length: PG * 4, srcIova: m.g64(32) });
        ok = ok && s("COPY", io(fx, IOMMU_IOAS_COPY, cp));
        ok = ok && s("REVOKE", io(fx, IOMMU_TEST_CMD, dmabufRevokeCmd(dfd, true)));
        ok = ok && s("UNMAP", unmap(fx, ioasId, m.g64(32), PG * 4).rc);
        if (dfd > 0) expect(proc.close(dfd)).toBe(0);
      }
      const remaining = failNthRemaining(kernel);
      failNth(kernel, 0);
      expect(proc.close(fd), `close(iommufd) after ${step}`).toBe(0);
      const st = kernel.stats();
      expect(st.iommufdObjects, `objects left after ${step}`).toBe(0);
      expect(st.pinnedPages, `pins left after ${step}`).toBe(0);
      proc.kill();
      return { step, rc, remaining };
    };
    run(() => {}); // warm-up
    const baseline = kernel.stats().framesFree;
    expect(run(() => {}).step).toBe("done");
    expect(kernel.stats().framesFree).toBe(baseline);
    let n = 1;
    const failed = new Set<string>();
    for (; n < 400; n++) {
      const r = run(() => failNth(kernel, n));
      expect(kernel.stats().framesFree, `n=${n}: frames after kill`).toBe(baseline);
      if (r.remaining > 0) { expect(r.step, `n=${n}: un-injected run`).toBe("done"); break; }
      if (r.step !== "done") {
        // an allocation (ENOMEM), a user copy (EFAULT) or an object lookup (ENOENT) failed
        expect([-errno.ENOMEM, -errno.EFAULT, -errno.ENOENT], `n=${n}: ${r.step}`).toContain(r.rc);
        failed.add(r.step);
      }
    }
    expect(n).toBeLessThan(400);
    // the dma-buf's own pages and the import itself are among the failure points
    expect(failed.has("DMABUF_GET")).toBe(true);
    expect(failed.has("MAP_FILE")).toBe(true);
    await kernel.close();
  });
});
