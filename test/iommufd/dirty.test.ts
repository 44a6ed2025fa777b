// Ports of the kernel's FIXTURE iommufd_dirty_tracking selftests (tools/testing/selftests/iommu/
// iommufd.c, CONFORMANCE.md §2d) over the buffer-size variants, against the mock IOMMU's dirty
// tracking. Paraphrased; titles are the kernel's test ids, variants are the describe blocks.
// All nine mainline variants run (the 64M/128M ones take well under a second each). The
// selftest runs as root: the process has CAP_IPC_LOCK, so pinning 128 MiB is not held to
// RLIMIT_MEMLOCK.

import { describe, it, expect } from "vitest";
import {
  createKernel, O_RDWR, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_ANONYMOUS, MAP_HUGETLB, MAP_POPULATE,
  type Kernel, type Process,
} from "../../src/index.js";
import { enableTestCmd } from "../../src/testing.js";
import {
  errno, PG, MOCK_PAGE_SIZE, MOCK_HUGE_PAGE_SIZE, MOCK_APERTURE_START, HUGEPAGE_SIZE,
  IOMMU_TEST_CMD, IOMMU_GET_HW_INFO, IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_FLAGS_DEVICE_HUGE_IOVA,
  io, ioasAlloc, destroy, mapFixed, mockDomainCmd, mockDomainFlagsCmd, hwInfoCmd,
  setDirtyTrackingCmd, getDirtyBitmapCmd, testDirtyCmd, checkRefsCmd,
  type Fixture,
} from "./util.js";
import { hwptAlloc } from "../toolkit/iommufd.js";

const MiB = 1024 * 1024;

interface DirtyVariant { name: string; bufferSize: number; hugepages: boolean; memoryBytes: number }

// Mainline's set since ffa3c799 ("Fix tests to use MOCK_PAGE_SIZE based buffer sizes", v6.10):
// the bitmap edges (half a u8, one u8, one u32, one u64, two u64 and a tail, 4K, 8K) at
// MOCK_PAGE_SIZE bits, where the older set (256k, 640k, 256M) counted PAGE_SIZE bits.
const VARIANTS: DirtyVariant[] = [
  { name: "domain_dirty8k", bufferSize: 8 * 1024, hugepages: false, memoryBytes: 64 * MiB },
  { name: "domain_dirty16k", bufferSize: 16 * 1024, hugepages: false, memoryBytes: 64 * MiB },
  { name: "domain_dirty64k", bufferSize: 64 * 1024, hugepages: false, memoryBytes: 64 * MiB },
  { name: "domain_dirty128k", bufferSize: 128 * 1024, hugepages: false, memoryBytes: 64 * MiB },
  { name: "domain_dirty320k", bufferSize: 320 * 1024, hugepages: false, memoryBytes: 64 * MiB },
  { name: "domain_dirty64M", bufferSize: 64 * MiB, hugepages: false, memoryBytes: 160 * MiB },
  { name: "domain_dirty64M_huge", bufferSize: 64 * MiB, hugepages: true, memoryBytes: 160 * MiB },
  { name: "domain_dirty128M", bufferSize: 128 * MiB, hugepages: false, memoryBytes: 256 * MiB },
  { name: "domain_dirty128M_huge", bufferSize: 128 * MiB, hugepages: true, memoryBytes: 256 * MiB },
];

interface DirtyFx extends Fixture {
  ioasId: number; hwptId: number; stdevId: number; idevId: number;
  pageSize: number; nbits: number; bitmap: number; buffer: number;
}

async function dirtyFixture(v: DirtyVariant): Promise<DirtyFx> {
  const kernel: Kernel = await createKernel({ memoryBytes: v.memoryBytes });
  enableTestCmd(kernel);
  const proc: Process = kernel.createProcess({ capIpcLock: true });
  const fd = proc.open("/dev/iommu", O_RDWR);
  expect(fd).toBeGreaterThanOrEqual(0);
  const fx = { kernel, proc, fd } as DirtyFx;
  // buffer: HUGEPAGE_SIZE aligned, shared anonymous (hugetlb + populate for *_huge)
  let flags = MAP_SHARED | MAP_ANONYMOUS;
  if (v.hugepages) flags |= MAP_HUGETLB | MAP_POPULATE;
  const span = Math.max(v.bufferSize, HUGEPAGE_SIZE);
  fx.buffer = proc.mmap(0, span, PROT_READ | PROT_WRITE, flags, -1, 0);
  expect(fx.buffer).toBeGreaterThan(0);
  expect(fx.buffer % HUGEPAGE_SIZE).toBe(0);
  fx.pageSize = MOCK_PAGE_SIZE;
  fx.nbits = v.bufferSize / fx.pageSize;
  // bitmap: page aligned, one extra page for the unaligned cases
  const size = Math.ceil(fx.nbits / 8);
  fx.bitmap = proc.mmap(0, size + PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  expect(fx.bitmap % PG).toBe(0);
  fx.ioasId = ioasAlloc(fx);
  const c = v.hugepages ? mockDomainFlagsCmd(fx.ioasId, MOCK_FLAGS_DEVICE_HUGE_IOVA) : mockDomainCmd(fx.ioasId);
  expect(io(fx, IOMMU_TEST_CMD, c), "MOCK_DOMAIN").toBe(0);
  fx.stdevId = c.g32(16);
  fx.hwptId = c.g32(20);
  fx.idevId = c.g32(24);
  return fx;
}

async function dirtyTeardown(fx: DirtyFx): Promise<void> {
  expect(fx.proc.close(fx.fd), "close(iommufd)").toBe(0);
  const fd = fx.proc.open("/dev/iommu", O_RDWR);
  expect(io({ proc: fx.proc, fd }, IOMMU_TEST_CMD, checkRefsCmd(fx.buffer, HUGEPAGE_SIZE, 0))).toBe(0);
  expect(fx.proc.close(fd)).toBe(0);
  const s = fx.kernel.stats();
  expect(s.iommufdObjects, "stats().iommufdObjects after close").toBe(0);
  expect(s.pinnedPages, "stats().pinnedPages after close").toBe(0);
  fx.proc.kill();
  await fx.kernel.close();
}


function mockDomainFlags(fx: DirtyFx, ptId: number, devFlags: number): { rc: number; stdevId: number; hwptId: number; idevId: number } {
  const c = devFlags ? mockDomainFlagsCmd(ptId, devFlags) : mockDomainCmd(ptId);
  const rc = io(fx, IOMMU_TEST_CMD, c);
  return { rc, stdevId: c.g32(16), hwptId: c.g32(20), idevId: c.g32(24) };
}

function setDirty(fx: DirtyFx, hwptId: number, on: boolean): number {
  return io(fx, IOMMU_HWPT_SET_DIRTY_TRACKING, setDirtyTrackingCmd(hwptId, on));
}

function testBit(b: Uint8Array, n: number): boolean { return (b[n >> 3] & (1 << (n & 7))) !== 0; }

/**
 * test_mock_dirty_bitmaps: mark every (2*npte)-th bit dirty through the test op, then
 * GET_DIRTY_BITMAP must report each whole IO page (npte bits) of those and nothing else; a
 * second read sees nothing unless NO_CLEAR.
 */
function testMockDirtyBitmaps(fx: DirtyFx, hwptId: number, length: number, iova: number, pageSize: number,
  ptePageSize: number, bitmap: number, nbits: number, flags: number): void {
  const npte = ptePageSize / pageSize, pteset = 2 * npte;
  const nr = Math.floor(nbits / pteset) || 1;
  const bytes = Math.ceil(nbits / 8);
  const img = new Uint8Array(bytes);
  for (let i = 0; i < nbits; i += pteset) img[i >> 3] |= 1 << (i & 7);
  expect(fx.proc.writeMemory(bitmap, img)).toBe(0);
  const d = testDirtyCmd(hwptId, iova, length, pageSize, bitmap);
  expect(io(fx, IOMMU_TEST_CMD, d), "IOMMU_TEST_OP_DIRTY").toBe(0);
  expect(Number(d.g64(56)), "out_nr_dirty").toBe(nr);

  const readBack = (): Uint8Array => {
    expect(fx.proc.writeMemory(bitmap, new Uint8Array(bytes))).toBe(0);
    expect(io(fx, IOMMU_HWPT_GET_DIRTY_BITMAP, getDirtyBitmapCmd(hwptId, iova, length, pageSize, bitmap, flags)), "GET_DIRTY_BITMAP").toBe(0);
    const b = new Uint8Array(bytes);
    expect(fx.proc.readMemory(bitmap, b)).toBe(0);
    return b;
  };
  let b = readBack();
  for (let i = 0; i < nbits; i += pteset) {
    for (let j = 0; j < pteset; j++) {
      if (testBit(b, i + j) !== j < npte) expect(testBit(b, i + j), `first read, bit ${i + j}`).toBe(j < npte);
    }
  }
  // read again: cleared, unless NO_CLEAR
  b = readBack();
  const noClear = (flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) !== 0;
  for (let i = 0; i < nbits; i += pteset) {
    for (let j = 0; j < pteset; j++) {
      const want = j < npte && noClear;
      if (testBit(b, i + j) !== want) expect(testBit(b, i + j), `second read, bit ${i + j}`).toBe(want);
    }
  }
}

describe.each(VARIANTS)("FIXTURE iommufd_dirty_tracking ($name)", (variant) => {
  const t = (title: string, body: (fx: DirtyFx) => void) =>
    it(title, async () => {
      const fx = await dirtyFixture(variant);
      body(fx);
      await dirtyTeardown(fx);
    });

  t("dirty.enforce_dirty", (fx) => {
    // regular case: a dirty-tracking HWPT takes a normal device, not a NO_DIRTY one
    const h = hwptAlloc(fx, fx.idevId, fx.ioasId, IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    expect(h.rc).toBe(0);
    const d = mockDomainFlags(fx, h.id, 0);
    expect(d.rc).toBe(0);
    expect(mockDomainFlags(fx, h.id, MOCK_FLAGS_DEVICE_NO_DIRTY).rc).toBe(-errno.EINVAL);
    expect(destroy(fx, d.stdevId)).toBe(0);
    expect(destroy(fx, h.id)).toBe(0);
    // a device whose IOMMU cannot track dirty pages cannot get such an HWPT
    const ioasId = ioasAlloc(fx);
    const nd = mockDomainFlags(fx, ioasId, MOCK_FLAGS_DEVICE_NO_DIRTY);
    expect(nd.rc).toBe(0);
    expect(hwptAlloc(fx, nd.idevId, ioasId, IOMMU_HWPT_ALLOC_DIRTY_TRACKING).rc).toBe(-errno.EOPNOTSUPP);
    expect(destroy(fx, nd.stdevId)).toBe(0);
  });

  t("dirty.set_dirty_tracking", (fx) => {
    const h = hwptAlloc(fx, fx.idevId, fx.ioasId, IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    expect(h.rc).toBe(0);
    const d = mockDomainFlags(fx, h.id, 0);
    expect(d.rc).toBe(0);
    expect(setDirty(fx, h.id, true)).toBe(0);
    expect(setDirty(fx, h.id, false)).toBe(0);
    expect(destroy(fx, d.stdevId)).toBe(0);
    expect(destroy(fx, h.id)).toBe(0);
  });

  t("dirty.device_dirty_capability", (fx) => {
    const h = hwptAlloc(fx, fx.idevId, fx.ioasId, 0);
    expect(h.rc).toBe(0);
    const d = mockDomainFlags(fx, h.id, 0);
    expect(d.rc).toBe(0);
    const c = hwInfoCmd(fx.idevId, 0, 0);
    expect(io(fx, IOMMU_GET_HW_INFO, c)).toBe(0);
    expect(c.g64(32) & BigInt(IOMMU_HW_CAP_DIRTY_TRACKING)).toBe(BigInt(IOMMU_HW_CAP_DIRTY_TRACKING));
    expect(destroy(fx, d.stdevId)).toBe(0);
    expect(destroy(fx, h.id)).toBe(0);
  });

  for (const [title, flags] of [["dirty.get_dirty_bitmap", 0], ["dirty.get_dirty_bitmap_no_clear", IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR]] as const) {
    t(title, (fx) => {
      const pteSize = variant.hugepages ? MOCK_HUGE_PAGE_SIZE : MOCK_PAGE_SIZE;
      const ioasId = ioasAlloc(fx);
      expect(mapFixed(fx, ioasId, fx.buffer, variant.bufferSize, MOCK_APERTURE_START)).toBe(0);
      const h = hwptAlloc(fx, fx.idevId, ioasId, IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
      expect(h.rc).toBe(0);
      expect(setDirty(fx, h.id, true)).toBe(0);
      // page aligned bitmap, PAGE_SIZE unaligned (+MOCK_PAGE_SIZE), u64 unaligned (+0xff1)
      for (const off of [0, MOCK_PAGE_SIZE, 0xff1]) {
        testMockDirtyBitmaps(fx, h.id, variant.bufferSize, MOCK_APERTURE_START, fx.pageSize, pteSize,
          fx.bitmap + off, fx.nbits, flags);
      }
      expect(destroy(fx, h.id)).toBe(0);
    });
  }
});
