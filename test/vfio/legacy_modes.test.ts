// CONFORMANCE §1b (the selftest library's open sequence) in all five IOMMU modes, and
// §1c tools/testing/selftests/vfio/vfio_dma_mapping_test.c's scenarios in each, with the
// device's own DMA through the mapping.

import { describe, expect, it } from "vitest";
import { MAP_ANONYMOUS, MAP_HUGE_2MB, MAP_HUGETLB, MAP_PRIVATE, O_RDWR, PROT_READ, PROT_WRITE, type Kernel, type Process } from "../../src/index.js";
import {
  attach, bind, boot, errno, getInfo, ioasAlloc, ioasMapArg, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP,
  openIommufd, struct, u32, u64,
} from "./util.js";
import { iovaRangesType1, legacyOpen, mapDma, PG, UNMAP_ALL, unmapDma, U64_MAX, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU } from "./legacy_util.js";

const BDF = "0000:00:04.0";
type Mode = "vfio_type1_iommu" | "vfio_type1v2_iommu" | "iommufd_compat_type1" | "iommufd_compat_type1v2" | "iommufd";
const MODES: Mode[] = ["vfio_type1_iommu", "vfio_type1v2_iommu", "iommufd_compat_type1", "iommufd_compat_type1v2", "iommufd"];

interface Iommu {
  k: Kernel;
  p: Process;
  ranges(): { start: bigint; last: bigint }[];
  map(vaddr: number, iova: bigint, size: bigint): number;
  unmap(iova: bigint, size: bigint): { rc: number; unmapped: bigint };
  unmapAll(): { rc: number; unmapped: bigint };
}

/** lib/iommu.c + lib/vfio_pci_device.c: the mode's open sequence. */
async function setup(mode: Mode): Promise<Iommu> {
  const k = await boot([{ bdf: BDF, model: "memcpy" }], { memoryBytes: 128 * 1024 * 1024 });
  const p = k.createProcess({ memlockBytes: Infinity });
  if (mode === "iommufd") {
    // (The selftest asserts fd > 0 because its stdin is fd 0; this process has no stdin.)
    const i = openIommufd(p);
    expect(i).toBeGreaterThanOrEqual(0);
    const ioas = ioasAlloc(p, i);
    const entries = p.readdir(`/sys/bus/pci/devices/${BDF}/vfio-dev`) as string[];
    const d = p.open(`/dev/vfio/devices/${entries[0]}`, O_RDWR);
    expect(ioas).toBe(1);
    expect(bind(p, d, i)).toBe(2);
    expect(attach(p, d, ioas)).toBe(3); // the auto HWPT
    expect(getInfo(p, d)).toBe(0);
    const unmap = (iova: bigint, size: bigint) => {
      const a = struct(24, [[0, 4, 24], [4, 4, ioas], [8, 8, iova], [16, 8, size]]);
      const rc = p.ioctlBuf(i, IOMMU_IOAS_UNMAP, a);
      return { rc, unmapped: u64(a, 16) };
    };
    return {
      k, p,
      ranges() {
        const a = struct(32, [[0, 4, 32], [4, 4, ioas]]);
        expect(p.ioctlBuf(i, IOMMU_IOAS_IOVA_RANGES, a)).toBe(-errno.EMSGSIZE);
        const n = u32(a, 8);
        expect(n).toBe(2); // [0, 0xfedfffff] and [0xfef00000, 2^48-1] once the device is attached
        const arr = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        const b = struct(32, [[0, 4, 32], [4, 4, ioas], [8, 4, n], [16, 8, arr]]);
        expect(p.ioctlBuf(i, IOMMU_IOAS_IOVA_RANGES, b)).toBe(0);
        const raw = new Uint8Array(16 * n);
        expect(p.readMemory(arr, raw)).toBe(0);
        return Array.from({ length: n }, (_, j) => ({ start: u64(raw, 16 * j), last: u64(raw, 16 * j + 8) }));
      },
      map: (vaddr, iova, size) => p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, vaddr, size, iova)),
      unmap,
      unmapAll: () => unmap(0n, U64_MAX),
    };
  }
  const compat = mode.startsWith("iommufd_compat");
  const type = mode.endsWith("v2") ? VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU;
  const group = Number((p.readlink(`/sys/bus/pci/devices/${BDF}/iommu_group`) as string).split("/").pop());
  const { c, d } = legacyOpen(p, compat ? "/dev/iommu" : "/dev/vfio/vfio", group, BDF, type);
  expect(getInfo(p, d)).toBe(0);
  return {
    k, p,
    ranges: () => iovaRangesType1(p, c),
    map: (vaddr, iova, size) => mapDma(p, c, vaddr, iova, size),
    unmap(iova, size) { const r = unmapDma(p, c, iova, size); return { rc: r.rc, unmapped: r.size }; },
    unmapAll() { const r = unmapDma(p, c, 0, 0, UNMAP_ALL); return { rc: r.rc, unmapped: r.size }; },
  };
}

/** The map_limit fixture: one page mapped at the top of the last usable IOVA range. */
async function mapLimit(mode: Mode): Promise<{ io: Iommu; k: Kernel; iova: bigint }> {
  const io = await setup(mode);
  const va = io.p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  expect(va).toBeGreaterThan(0);
  const iova = io.ranges().at(-1)!.last + 1n - BigInt(PG);
  expect(io.map(va, iova, BigInt(PG))).toBe(0);
  return { io, k: io.k, iova };
}

const BACKINGS = [
  { name: "anonymous", size: PG, flags: MAP_ANONYMOUS | MAP_PRIVATE },
  { name: "anonymous_hugetlb_2mb", size: 2 * 1024 * 1024, flags: MAP_ANONYMOUS | MAP_PRIVATE | MAP_HUGETLB | MAP_HUGE_2MB },
];

for (const mode of MODES) {
  describe(`CONFORMANCE §1b/§1c in mode ${mode}`, () => {
    for (const backing of BACKINGS) {
      it(`vfio_dma_mapping_test dma_map_unmap (${mode}, ${backing.name})`, async () => {
        const io = await setup(mode);
        const { k, p } = io;
        const va = p.mmap(0, backing.size, PROT_READ | PROT_WRITE, backing.flags, -1, 0);
        expect(va).toBeGreaterThan(0);
        const ranges = io.ranges();
        for (let j = 1; j < ranges.length; j++) expect(ranges[j].start).toBeGreaterThan(ranges[j - 1].last);
        // The test's allocator: naturally aligned, from the first range.
        const size = BigInt(backing.size);
        const iova = ((ranges[0].start + size - 1n) / size) * size || size;
        expect(io.map(va, iova, size)).toBe(0);
        // The device reads what the CPU wrote and writes what the CPU then reads.
        const h = k.device(BDF)!;
        expect(p.writeMemory(va + backing.size - 4, new Uint8Array([1, 2, 3, 4]))).toBe(0);
        const got = new Uint8Array(4);
        expect(h.dmaRead(iova + size - 4n, got)).toBe(0);
        expect([...got]).toEqual([1, 2, 3, 4]);
        expect(h.dmaWrite(iova, new Uint8Array([0xde, 0xad]))).toBe(0);
        const back = new Uint8Array(2);
        expect(p.readMemory(va, back)).toBe(0);
        expect([...back]).toEqual([0xde, 0xad]);
        const r = io.unmap(iova, size);
        expect(r.rc).toBe(0);
        expect(r.unmapped).toBe(size);
        // Lookups afterwards fail: the IOMMU no longer translates the IOVA.
        expect(h.dmaRead(iova, got)).toBe(-errno.EFAULT);
        expect(h.faults().at(-1)!.reason).toBe("unmapped");
        await k.close();
      });
    }

    it(`vfio_dma_mapping_test map_limit.unmap_range (${mode})`, async () => {
      const { io, k, iova } = await mapLimit(mode);
      expect(k.device(BDF)!.dmaWrite(iova + 0xff0n, new Uint8Array(16).fill(7))).toBe(0);
      const r = io.unmap(iova, BigInt(PG));
      expect(r).toEqual({ rc: 0, unmapped: BigInt(PG) });
      await k.close();
    });

    it(`vfio_dma_mapping_test map_limit.unmap_all (${mode})`, async () => {
      const { io, k, iova } = await mapLimit(mode);
      expect(io.unmapAll()).toEqual({ rc: 0, unmapped: BigInt(PG) });
      expect(k.device(BDF)!.dmaRead(iova, new Uint8Array(1))).toBe(-errno.EFAULT);
      await k.close();
    });

    it(`vfio_dma_mapping_test map_limit.overflow (${mode})`, async () => {
      const io = await setup(mode);
      const { k, p } = io;
      const va = p.mmap(0, 2 * PG, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
      const iova = U64_MAX & ~BigInt(PG - 1);
      expect(io.map(va, iova, BigInt(2 * PG))).toBe(-errno.EOVERFLOW);
      expect(io.unmap(iova, BigInt(2 * PG)).rc).toBe(-errno.EOVERFLOW);
      await k.close();
    });
  });
}
