// The typed layer over /dev/iommu (API.md §2, v0): IommuFd / Ioas, errors as VfioError.
// Cross-checked against the raw layer where the typed layer exposes nothing.

import { describe, it, expect } from "vitest";
import { createKernel, IommuFd, errno } from "../../src/index.js";
import { PG, U64_MAX, hugeAlignedBuffer } from "./util.js";
import { thrown } from "../vfio/util.js";

async function setup() {
  const kernel = await createKernel();
  const proc = kernel.createProcess();
  const buffer = hugeAlignedBuffer(proc);
  return { kernel, proc, buffer };
}

describe("typed layer: IommuFd / Ioas", () => {
  it("open, allocIoas, map fixed and automatic, unmap, close", async () => {
    const { kernel, proc, buffer } = await setup();
    const iommufd = IommuFd.open(proc);
    const ioas = iommufd.allocIoas();

    const fixed = ioas.map({ userVa: buffer, length: 4 * PG, iova: 0x100000 });
    expect(fixed).toBe(0x100000n);
    const auto = ioas.map({ userVa: buffer, length: PG });
    expect(typeof auto).toBe("bigint");
    expect(auto).toBe(0x1000n); // iopt_alloc_iova: first fit from PAGE_SIZE, never 0
    expect(auto % BigInt(PG)).toBe(0n);
    // bigint inputs are accepted for u64s
    const big = ioas.map({ userVa: BigInt(buffer + PG), length: BigInt(PG), iova: 0x200000n });
    expect(big).toBe(0x200000n);

    expect(ioas.unmap(0x100000, 4 * PG)).toBe(BigInt(4 * PG));
    expect(ioas.unmap(auto, PG)).toBe(BigInt(PG));
    // unmap-all reports what it removed
    expect(ioas.unmap(0, U64_MAX)).toBe(BigInt(PG));
    expect(kernel.stats().iommufdObjects).toBe(1);

    iommufd.close();
    expect(kernel.stats().iommufdObjects).toBe(0);
    expect(kernel.stats().pinnedPages).toBe(0);
    await kernel.close();
  });

  it("each allocIoas is a distinct IOAS", async () => {
    const { kernel, proc, buffer } = await setup();
    const iommufd = IommuFd.open(proc);
    const a = iommufd.allocIoas();
    const b = iommufd.allocIoas();
    expect(a.map({ userVa: buffer, length: PG, iova: 0x100000 })).toBe(0x100000n);
    // the same IOVA is free in the other IOAS
    expect(b.map({ userVa: buffer, length: PG, iova: 0x100000 })).toBe(0x100000n);
    expect(kernel.stats().iommufdObjects).toBe(2);
    iommufd.close();
    expect(kernel.stats().iommufdObjects).toBe(0);
    await kernel.close();
  });

  it("unmap of nothing throws VfioError ENOENT naming the ioctl", async () => {
    const { kernel, proc } = await setup();
    const iommufd = IommuFd.open(proc);
    const ioas = iommufd.allocIoas();
    const e = thrown(() => ioas.unmap(0x100000, PG));
    expect(e.code).toBe("ENOENT");
    expect(e.errno).toBe(errno.ENOENT);
    expect(e.errno).toBe(2);
    expect(e.syscall).toBe("IOMMU_IOAS_UNMAP");
    expect(e.ioctl).toBe("IOMMU_IOAS_UNMAP");
    expect(e.message).toBe("IOMMU_IOAS_UNMAP: ENOENT: unmapping [0x100000, +0x1000) in IOAS 1: no such object, or no mapping covers the range exactly");
    iommufd.close();
    await kernel.close();
  });

  it("overlapping fixed map throws EEXIST from IOMMU_IOAS_MAP", async () => {
    const { kernel, proc, buffer } = await setup();
    const iommufd = IommuFd.open(proc);
    const ioas = iommufd.allocIoas();
    ioas.map({ userVa: buffer, length: 2 * PG, iova: 0x100000 });
    const e = thrown(() => ioas.map({ userVa: buffer, length: PG, iova: 0x101000 }));
    expect(e.code).toBe("EEXIST");
    expect(e.errno).toBe(17);
    expect(e.ioctl).toBe("IOMMU_IOAS_MAP");
    // splitting is refused too
    const s = thrown(() => ioas.unmap(0x100000, PG));
    expect(s.code).toBe("ENOENT");
    iommufd.close();
    await kernel.close();
  });

  it("a map that is neither readable nor writeable throws EINVAL; length 0 throws EINVAL", async () => {
    const { kernel, proc, buffer } = await setup();
    const iommufd = IommuFd.open(proc);
    const ioas = iommufd.allocIoas();
    const e = thrown(() => ioas.map({ userVa: buffer, length: PG, readable: false, writeable: false }));
    expect(e.code).toBe("EINVAL");
    expect(e.errno).toBe(22);
    const z = thrown(() => ioas.map({ userVa: buffer, length: 0 }));
    expect(z.code).toBe("EINVAL");
    // readable-only works
    expect(ioas.map({ userVa: buffer, length: PG, iova: 0x100000, writeable: false })).toBe(0x100000n);
    iommufd.close();
    await kernel.close();
  });

  it("closing the iommufd frees IOASes that still have areas", async () => {
    const { kernel, proc, buffer } = await setup();
    const iommufd = IommuFd.open(proc);
    const ioas = iommufd.allocIoas();
    for (let i = 0; i < 10; i++) ioas.map({ userVa: buffer, length: PG, iova: i * PG });
    iommufd.close();
    expect(kernel.stats().iommufdObjects).toBe(0);
    expect(kernel.stats().pinnedPages).toBe(0);
    await kernel.close();
  });
});
