// A BAR's mmap is VM_IO | VM_PFNMAP (vfio_pci_core_mmap): device memory with no page behind it.
// iommufd pins through GUP, which refuses such a VMA (check_vma_flags: EFAULT) whenever pages
// are needed: at IOAS_MAP when a domain is attached, at the attach that fills a new domain
// otherwise. Legacy type1 falls back to the VMA's pfn (vaddr_get_pfns / follow_fault_pfn): a
// reserved pfn, mapped into the IOMMU (the IOVA reaches the BAR: peer-to-peer) but neither
// pinned nor charged to RLIMIT_MEMLOCK.

import { describe, expect, it } from "vitest";
import {
  MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, O_RDWR, PROT_READ, PROT_WRITE, type Kernel, type Process,
} from "../../src/index.js";
import { attach, bind, boot, errno, ioasAlloc, ioasMapArg, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, groupOf, openIommufd, struct } from "./util.js";
import { legacyOpen, mapDma, MAP_READ, unmapDma, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU } from "./legacy_util.js";

const BDF = "0000:00:04.0";
const PG = 4096;
const BAR = 0x4000; // BAR0: 4 pages
const IOVA = 0x100000;

async function bootBar(): Promise<Kernel> {
  return boot([{ bdf: BDF, model: "memcpy", bar0Size: BAR }]);
}

/** The BAR device opened through its cdev and bound to a fresh iommufd with one IOAS (not attached). */
async function boundBar(): Promise<{ k: Kernel; p: Process; i: number; ioas: number; d: number }> {
  const k = await bootBar();
  const p = k.createProcess();
  const i = openIommufd(p);
  const ioas = ioasAlloc(p, i);
  const d = p.open("/dev/vfio/devices/vfio0", O_RDWR);
  expect(bind(p, d, i)).toBeGreaterThan(0);
  return { k, p, i, ioas, d };
}


/** The BAR mmap'd (region 0 at offset 0), at `at` when given. */
function mapBar(p: Process, d: number, len = BAR, prot = PROT_READ | PROT_WRITE, at = 0): number {
  const v = p.mmap(at, len, prot, MAP_SHARED | (at ? MAP_FIXED : 0), d, 0);
  expect(v).toBeGreaterThan(0);
  return v;
}

/** One anonymous page right below a BAR mmap: a user range that is half memory, half BAR. */
function anonThenBar(p: Process, d: number): number {
  const r = p.mmap(0, PG + BAR, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(r).toBeGreaterThan(0);
  expect(p.writeMemory(r, new Uint8Array([1]))).toBe(0);
  mapBar(p, d, BAR, PROT_READ | PROT_WRITE, r + PG);
  return r;
}

const ioasUnmap = (p: Process, i: number, ioas: number, iova: number, len: number) =>
  p.ioctlBuf(i, IOMMU_IOAS_UNMAP, struct(24, [[0, 4, 24], [4, 4, ioas], [8, 8, iova], [16, 8, len]]));

describe("BAR mmaps are not pinnable (iommufd)", () => {
  it("IOAS_MAP with a domain attached: EFAULT for a BAR range and for one half anonymous, half BAR; nothing pinned, the IOVA stays free", async () => {
    const { k, p, i, ioas, d } = await boundBar();
    expect(attach(p, d, ioas)).toBeGreaterThan(0);
    const bar = mapBar(p, d);
    expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, bar, BAR, IOVA))).toBe(-errno.EFAULT);
    expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, bar + PG, PG, IOVA))).toBe(-errno.EFAULT);
    const mixed = anonThenBar(p, d);
    expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, mixed, PG + BAR, IOVA))).toBe(-errno.EFAULT);
    // The anonymous page pinned before the BAR was reached went back with the failure.
    expect(k.stats().pinnedPages).toBe(0);
    expect(ioasUnmap(p, i, ioas, IOVA, PG + BAR)).toBe(-errno.ENOENT);
    // The anonymous part alone maps (and pins) at the same IOVA.
    expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, mixed, PG, IOVA))).toBe(0);
    expect(k.stats().pinnedPages).toBe(1);
    // A CPU access through the mmap is fine: only pinning is refused.
    expect(p.writeMemory(bar, new Uint8Array([0x5a]))).toBe(0);
    const b = new Uint8Array(1);
    expect(p.pread(d, b, 0)).toBe(1);
    expect(b[0]).toBe(0x5a);
    await k.close();
  });

  it("IOAS_MAP with no domain defers pinning: the map succeeds, the attach that would pin gets EFAULT, and succeeds once the area is gone", async () => {
    const { k, p, i, ioas, d } = await boundBar();
    const bar = mapBar(p, d);
    expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, bar, BAR, IOVA))).toBe(0);
    expect(k.stats().pinnedPages).toBe(0);
    const objects = k.stats().iommufdObjects;
    expect(attach(p, d, ioas)).toBe(-errno.EFAULT);
    // The automatic domain was not kept.
    expect(k.stats().iommufdObjects).toBe(objects);
    expect(k.stats().pinnedPages).toBe(0);
    expect(ioasUnmap(p, i, ioas, IOVA, BAR)).toBe(0);
    expect(attach(p, d, ioas)).toBeGreaterThan(0);
    await k.close();
  });
});

describe("BAR mmaps under legacy type1", () => {
  for (const [name, type] of [["type1", VFIO_TYPE1_IOMMU], ["type1v2", VFIO_TYPE1v2_IOMMU]] as const) {
    it(`${name}, RLIMIT_MEMLOCK=0: MAP_DMA of a BAR mmap succeeds unpinned and uncharged; anonymous memory gets ENOMEM`, async () => {
      const k = await bootBar();
      const free0 = k.stats().framesFree;
      const p = k.createProcess({ memlockBytes: 0 });
      const { c, g, d } = legacyOpen(p, "/dev/vfio/vfio", groupOf(p, BDF), BDF, type);
      const bar = mapBar(p, d);
      expect(mapDma(p, c, bar, IOVA, BAR)).toBe(0);
      expect(k.stats().pinnedPages).toBe(0);
      // Part of the BAR again, at another IOVA: still nothing charged.
      expect(mapDma(p, c, bar + PG, IOVA + 0x10000, PG)).toBe(0);
      const anon = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      expect(mapDma(p, c, anon, IOVA + 0x20000, PG)).toBe(-errno.ENOMEM);
      // Half anonymous, half BAR: the anonymous page needs the charge the limit refuses.
      const mixed = anonThenBar(p, d);
      expect(mapDma(p, c, mixed, IOVA + 0x40000, PG + BAR)).toBe(-errno.ENOMEM);
      expect(k.stats().pinnedPages).toBe(0);
      expect(unmapDma(p, c, IOVA, BAR)).toEqual({ rc: 0, size: BigInt(BAR) });
      expect(unmapDma(p, c, IOVA + 0x10000, PG)).toEqual({ rc: 0, size: BigInt(PG) });
      p.close(d); p.close(g); p.close(c);
      p.kill();
      // Every frame is back: the BAR's frames were referenced while mapped, never leaked.
      expect(k.stats().framesFree).toBe(free0);
      await k.close();
    });
  }

  it("a MAP_DMA refused after it took BAR pfns (EFAULT at a hole past the BAR) gives back every frame reference it took, the BAR's included", async () => {
    const k = await bootBar();
    const core = (k as unknown as { kcore: { core: { poolFrames: number; x: { frame_refcount(f: number): number } } } }).kcore.core;
    const refs = () => Array.from({ length: core.poolFrames }, (_, f) => core.x.frame_refcount(f) >>> 0);
    const p = k.createProcess();
    const { c, d } = legacyOpen(p, "/dev/vfio/vfio", groupOf(p, BDF), BDF, VFIO_TYPE1v2_IOMMU);
    // One anonymous page, the BAR, then a page with nothing mapped.
    const r = p.mmap(0, PG + BAR + PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.writeMemory(r, new Uint8Array([1]))).toBe(0);
    mapBar(p, d, BAR, PROT_READ | PROT_WRITE, r + PG);
    expect(p.munmap(r + PG + BAR, PG)).toBe(0);
    // A map and unmap of the first two pieces first: the page faults and what the first map
    // sets up (the mm's references, IOMMU tables) are not the pin's.
    expect(mapDma(p, c, r, IOVA, PG + BAR)).toBe(0);
    expect(unmapDma(p, c, IOVA, PG + BAR)).toEqual({ rc: 0, size: BigInt(PG + BAR) });
    const before = refs();
    // The anonymous page is taken by GUP, the BAR pages by pfn, then the hole faults.
    expect(mapDma(p, c, r, IOVA, PG + BAR + PG)).toBe(-errno.EFAULT);
    expect(refs()).toEqual(before);
    expect(k.stats().pinnedPages).toBe(0);
    await k.close();
  });

  it("a range half anonymous, half BAR charges only the anonymous page", async () => {
    const k = await bootBar();
    const p = k.createProcess({ memlockBytes: PG });
    const { c, d } = legacyOpen(p, "/dev/vfio/vfio", groupOf(p, BDF), BDF, VFIO_TYPE1v2_IOMMU);
    const mixed = anonThenBar(p, d);
    expect(mapDma(p, c, mixed, IOVA, PG + BAR)).toBe(0);
    expect(k.stats().pinnedPages).toBe(1);
    // The one page of the limit is used up by the anonymous page.
    const anon = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(mapDma(p, c, anon, IOVA + 0x10000, PG)).toBe(-errno.ENOMEM);
    expect(unmapDma(p, c, IOVA, PG + BAR)).toEqual({ rc: 0, size: BigInt(PG + BAR) });
    expect(k.stats().pinnedPages).toBe(0);
    expect(mapDma(p, c, anon, IOVA + 0x10000, PG)).toBe(0);
    await k.close();
  });

  it("device DMA through the mapping reaches the BAR (peer-to-peer), and still does after the BAR is munmap'd", async () => {
    const k = await bootBar();
    const p = k.createProcess({ memlockBytes: 0 });
    const { c, d } = legacyOpen(p, "/dev/vfio/vfio", groupOf(p, BDF), BDF, VFIO_TYPE1v2_IOMMU);
    const h = k.device(BDF)!;
    const bar = mapBar(p, d);
    const pattern = Uint8Array.from({ length: 64 }, (_, j) => j * 7 + 3);
    expect(p.pwrite(d, pattern, 0x2000)).toBe(64);
    expect(mapDma(p, c, bar, IOVA, BAR)).toBe(0);
    const got = new Uint8Array(64);
    expect(h.dmaRead(IOVA + 0x2000, got)).toBe(0);
    expect(got).toEqual(pattern);
    // A device write lands in the BAR: the user's mmap and pread see it.
    expect(h.dmaWrite(IOVA + 0x3000, Uint8Array.of(0xde, 0xad))).toBe(0);
    const b = new Uint8Array(2);
    expect(p.readMemory(bar + 0x3000, b)).toBe(0);
    expect(b).toEqual(Uint8Array.of(0xde, 0xad));
    expect(p.pread(d, b, 0x3000)).toBe(2);
    expect(b).toEqual(Uint8Array.of(0xde, 0xad));
    // type1 holds the pfn, not the VMA: the munmap leaves the IOMMU mapping as it is.
    expect(p.munmap(bar, BAR)).toBe(0);
    expect(h.dmaRead(IOVA + 0x2000, got.fill(0))).toBe(0);
    expect(got).toEqual(pattern);
    expect(unmapDma(p, c, IOVA, BAR)).toEqual({ rc: 0, size: BigInt(BAR) });
    expect(h.dmaRead(IOVA + 0x2000, got)).toBe(-errno.EFAULT);
    await k.close();
  });

  it("follow_fault_pfn needs a writable mapping for a writable MAP_DMA: EFAULT on a read-only BAR mmap, which maps read-only", async () => {
    const k = await bootBar();
    const p = k.createProcess({ memlockBytes: 0 });
    const { c, d } = legacyOpen(p, "/dev/vfio/vfio", groupOf(p, BDF), BDF, VFIO_TYPE1v2_IOMMU);
    const ro = mapBar(p, d, BAR, PROT_READ);
    expect(mapDma(p, c, ro, IOVA, BAR)).toBe(-errno.EFAULT);
    expect(mapDma(p, c, ro, IOVA, BAR, MAP_READ)).toBe(0);
    expect(k.device(BDF)!.dmaWrite(IOVA, Uint8Array.of(1))).toBe(-errno.EFAULT);
    expect(k.stats().pinnedPages).toBe(0);
    await k.close();
  });
});

describe("BAR mmaps while memory decoding is off", () => {
  const CFG = 7 * 2 ** 40;
  const setCommand = (p: Process, d: number, cmd: number) => expect(p.pwrite(d, Uint8Array.of(cmd & 0xff, cmd >> 8), CFG + 4)).toBe(2);

  it("clearing COMMAND.MEMORY zaps the mmap: loads, stores and type1's pfn walk fault (SIGBUS: EFAULT) until it is set again", async () => {
    const k = await bootBar();
    const p = k.createProcess({ memlockBytes: 0 });
    const { c, d } = legacyOpen(p, "/dev/vfio/vfio", groupOf(p, BDF), BDF, VFIO_TYPE1v2_IOMMU);
    const bar = mapBar(p, d);
    expect(p.writeMemory(bar + PG, Uint8Array.of(0x77))).toBe(0);
    const b = new Uint8Array(1);
    setCommand(p, d, 0x04); // bus master only
    expect(p.readMemory(bar + PG, b)).toBe(-errno.EFAULT);
    expect(p.writeMemory(bar, Uint8Array.of(1))).toBe(-errno.EFAULT);
    expect(mapDma(p, c, bar, IOVA, BAR)).toBe(-errno.EFAULT);
    expect(k.stats().pinnedPages).toBe(0);
    setCommand(p, d, 0x06);
    expect(p.readMemory(bar + PG, b)).toBe(0);
    expect(b[0]).toBe(0x77);
    expect(mapDma(p, c, bar, IOVA, BAR)).toBe(0);
    await k.close();
  });

  it("the ioat model's register stores through the mmap fault too", async () => {
    const k = await boot([{ bdf: BDF, model: "ioat" }]);
    const p = k.createProcess();
    const { d } = legacyOpen(p, "/dev/vfio/vfio", groupOf(p, BDF), BDF, VFIO_TYPE1v2_IOMMU);
    const bar = mapBar(p, d, PG);
    setCommand(p, d, 0x04);
    expect(p.writeMemory(bar + 0x80, Uint8Array.of(0, 0))).toBe(-errno.EFAULT);
    setCommand(p, d, 0x06);
    expect(p.writeMemory(bar + 0x80, Uint8Array.of(0, 0))).toBe(0);
    await k.close();
  });
});
