// Exact errnos of SPEC.md §3.5 / §4 that the kernel's own selftests do not pin down, settled
// against drivers/iommu/iommufd/{main.c, ioas.c, io_pagetable.c, pages.c}. No device, no domain.

import { describe, it, expect } from "vitest";
import {
  errno, PG, U64_MAX,
  IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_IOAS_CHANGE_PROCESS,
  IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET,
  FIXED, READ, WRITE, RW,
  cmd, io, openFixture, teardown, ioasAlloc, destroy, mapFixed, mapAuto, unmap, addReserved,
  mmapAnon, allowIovas, readRanges, writeRanges,
  destroyCmd, ioasAllocCmd, mapCmd, mapFileCmd, copyCmd, unmapCmd, iovaRangesCmd, allowIovasCmd,
  optionCmd, changeProcessCmd,
} from "./util.js";
import { addOverflow, isUlongMax, u64Number, ULONG_MAX } from "../../src/iommufd/iova.js";
import { checkPagesLength } from "../../src/iommufd/pages.js";
import { prng } from "../toolkit/prng.js";
import { ioasFixture } from "../toolkit/iommufd.js";

const BAD_ID = 0x7777;


// ---------------------------------------------------------------------------------------------

describe("dispatch and objects", () => {
  it("an iommufd number with direction/size bits -> ENOTTY", async () => {
    const fx = await openFixture();
    // _IOWR(';', 0x80, 8) is not IOMMU_DESTROY
    expect(io(fx, 0xc0083b80, destroyCmd(0))).toBe(-errno.ENOTTY);
    expect(io(fx, 0x40083b81, ioasAllocCmd())).toBe(-errno.ENOTTY);
    // IOMMU_TEST_CMD without enableTestCmd is an unknown number
    expect(io(fx, 0x3ba0, cmd(72))).toBe(-errno.ENOTTY);
    teardown(fx);
  });

  it("IOMMU_IOAS_ALLOC: flags != 0 -> EOPNOTSUPP", async () => {
    const fx = await openFixture();
    expect(io(fx, IOMMU_IOAS_ALLOC, ioasAllocCmd(1))).toBe(-errno.EOPNOTSUPP);
    expect(io(fx, IOMMU_IOAS_ALLOC, ioasAllocCmd(0x80000000))).toBe(-errno.EOPNOTSUPP);
    expect(fx.kernel.stats().iommufdObjects).toBe(0);
    teardown(fx);
  });

  it("ids start at 1, are allocated lowest-free and reused after destroy", async () => {
    const fx = await openFixture();
    expect([ioasAlloc(fx), ioasAlloc(fx), ioasAlloc(fx)]).toEqual([1, 2, 3]);
    expect(destroy(fx, 2)).toBe(0);
    expect(ioasAlloc(fx)).toBe(2);
    expect(ioasAlloc(fx)).toBe(4);
    expect(destroy(fx, BAD_ID)).toBe(-errno.ENOENT);
    teardown(fx);
  });

});

describe("IOMMU_IOAS_MAP check order", () => {
  it("unknown flags or __reserved -> EOPNOTSUPP, before anything else", async () => {
    const fx = await ioasFixture();
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ flags: RW | (1 << 3), ioasId: fx.ioasId, userVa: fx.buffer, length: PG }))).toBe(-errno.EOPNOTSUPP);
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ ioasId: fx.ioasId, reserved: 1, userVa: fx.buffer, length: PG }))).toBe(-errno.EOPNOTSUPP);
    // even with a bad IOAS, no READ/WRITE and an overflowing length
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ flags: 1 << 31, ioasId: BAD_ID, userVa: 0, length: U64_MAX }))).toBe(-errno.EOPNOTSUPP);
    teardown(fx);
  });

  it("iova or length = 2^64-1 -> EOVERFLOW, before the READ/WRITE and IOAS checks", async () => {
    const fx = await ioasFixture();
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ flags: RW | FIXED, ioasId: fx.ioasId, userVa: fx.buffer, length: PG, iova: U64_MAX }))).toBe(-errno.EOVERFLOW);
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ ioasId: fx.ioasId, userVa: fx.buffer, length: U64_MAX }))).toBe(-errno.EOVERFLOW);
    // the iova is checked even when FIXED_IOVA is clear
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ ioasId: fx.ioasId, userVa: fx.buffer, length: PG, iova: U64_MAX }))).toBe(-errno.EOVERFLOW);
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ flags: 0, ioasId: BAD_ID, userVa: fx.buffer, length: U64_MAX }))).toBe(-errno.EOVERFLOW);
    teardown(fx);
  });

  it("neither READABLE nor WRITEABLE -> EINVAL, before the IOAS lookup", async () => {
    const fx = await ioasFixture();
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ flags: 0, ioasId: fx.ioasId, userVa: fx.buffer, length: PG }))).toBe(-errno.EINVAL);
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ flags: FIXED, ioasId: BAD_ID, userVa: fx.buffer, length: PG }))).toBe(-errno.EINVAL);
    // READABLE alone and WRITEABLE alone are both fine
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 0x100000, READ)).toBe(0);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 0x200000, WRITE)).toBe(0);
    teardown(fx);
  });

  it("bad ioas -> ENOENT, before the length checks", async () => {
    const fx = await ioasFixture();
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ ioasId: BAD_ID, userVa: fx.buffer, length: PG }))).toBe(-errno.ENOENT);
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ ioasId: BAD_ID, userVa: fx.buffer, length: 0 }))).toBe(-errno.ENOENT);
    // an id of the right number space but wrong object kind is also ENOENT: nothing but IOASes here,
    // so use a destroyed one
    const gone = ioasAlloc(fx);
    expect(destroy(fx, gone)).toBe(0);
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ ioasId: gone, userVa: fx.buffer, length: PG }))).toBe(-errno.ENOENT);
    teardown(fx);
  });

  it("length 0 -> EINVAL; length > SIZE_MAX - PAGE_SIZE -> EINVAL", async () => {
    const fx = await ioasFixture();
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ ioasId: fx.ioasId, userVa: fx.buffer, length: 0 }))).toBe(-errno.EINVAL);
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ flags: RW | FIXED, ioasId: fx.ioasId, userVa: fx.buffer, length: 0, iova: PG }))).toBe(-errno.EINVAL);
    // user_va 0 cannot wrap; the length is too big for the page array
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ ioasId: fx.ioasId, userVa: 0, length: U64_MAX - 1n }))).toBe(-errno.EINVAL);
    teardown(fx);
  });

  it("user_va + length wraps -> EOVERFLOW (checked before the length bound)", async () => {
    const fx = await ioasFixture();
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ ioasId: fx.ioasId, userVa: U64_MAX - BigInt(PG) + 1n, length: 2 * PG }))).toBe(-errno.EOVERFLOW);
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ flags: RW | FIXED, ioasId: fx.ioasId, userVa: 2n ** 63n, length: 2n ** 63n, iova: 0 }))).toBe(-errno.EOVERFLOW);
    // pages.c checks the wrap first: a huge length with a non-zero VA is EOVERFLOW, not EINVAL
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ ioasId: fx.ioasId, userVa: fx.buffer, length: U64_MAX - 1n }))).toBe(-errno.EOVERFLOW);
    teardown(fx);
  });

  it("FIXED: iova + length - 1 wraps -> EOVERFLOW", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 2 * PG, U64_MAX - BigInt(PG) + 1n)).toBe(-errno.EOVERFLOW);
    // the last page of the space is fine
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, U64_MAX - BigInt(PG) + 1n)).toBe(0);
    teardown(fx);
  });

  it("FIXED into a reserved range -> EINVAL; overlap with an area -> EEXIST", async () => {
    const fx = await ioasFixture({ testCmd: true });
    expect(addReserved(fx, fx.ioasId, 16 * PG, PG)).toBe(0);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 16 * PG)).toBe(-errno.EINVAL);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 2 * PG, 15 * PG)).toBe(-errno.EINVAL);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 3 * PG, 15 * PG)).toBe(-errno.EINVAL);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 15 * PG)).toBe(0);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 17 * PG)).toBe(0);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 17 * PG)).toBe(-errno.EEXIST);
    teardown(fx);
  });

  it("FIXED ignores the allowed list", async () => {
    const fx = await ioasFixture();
    expect(allowIovas(fx, fx.ioasId, fx.scratch, [[0x100000, 0x1fffff]])).toBe(0);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 0x10000000)).toBe(0);
    teardown(fx);
  });
});

describe("automatic IOVA placement", () => {
  it("never returns 0: the first map of an empty IOAS lands at PAGE_SIZE", async () => {
    const fx = await ioasFixture();
    const m = mapAuto(fx, fx.ioasId, fx.buffer, PG);
    expect(m).toEqual({ rc: 0, iova: BigInt(PG) });
    teardown(fx);
  });

  it("never returns 0 even when the allowed range starts at 0", async () => {
    const fx = await ioasFixture();
    expect(allowIovas(fx, fx.ioasId, fx.scratch, [[0, 2 * PG - 1]])).toBe(0);
    expect(mapAuto(fx, fx.ioasId, fx.buffer, PG)).toEqual({ rc: 0, iova: BigInt(PG) });
    // [0, PAGE_SIZE) is never handed out, so the range is now full
    expect(mapAuto(fx, fx.ioasId, fx.buffer, PG).rc).toBe(-errno.ENOSPC);
    teardown(fx);
  });

  it("keeps the VA's sub-page offset", async () => {
    const fx = await ioasFixture();
    const m = mapAuto(fx, fx.ioasId, fx.buffer + 0x123, 0x100);
    expect(m.rc).toBe(0);
    expect(m.iova % BigInt(PG)).toBe(0x123n);
    expect(m.iova).toBe(BigInt(PG + 0x123));
    const m2 = mapAuto(fx, fx.ioasId, fx.buffer + 0xf00, 3 * PG);
    expect(m2.rc).toBe(0);
    expect(m2.iova % BigInt(PG)).toBe(0xf00n);
    expect(unmap(fx, fx.ioasId, m.iova, 0x100)).toEqual({ rc: 0, length: 0x100n });
    teardown(fx);
  });

  it("aligns to min(pow2ceil(length), lowest set bit of the VA), capped at 2 MiB", async () => {
    const fx = await ioasFixture();
    // a 2 MiB-aligned VA and a 4 MiB length: alignment capped at 2 MiB
    const big = mmapAnon(fx.proc, 8 * 1024 * 1024);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 0x1000)).toBe(0); // occupy [4K, 8K)
    const m = mapAuto(fx, fx.ioasId, big, 4 * 1024 * 1024);
    expect(m.rc).toBe(0);
    expect(m.iova).toBe(0x200000n);
    // a VA aligned only to 8 KiB: 8 KiB alignment even for a 64 KiB length
    const m2 = mapAuto(fx, fx.ioasId, fx.buffer + 0x2000, 0x10000);
    expect(m2.rc).toBe(0);
    expect(m2.iova % 0x2000n).toBe(0n);
    expect(m2.iova).toBe(0x2000n);
    teardown(fx);
  });

  it("ENOSPC when no hole of the allowed list fits", async () => {
    const fx = await ioasFixture();
    expect(allowIovas(fx, fx.ioasId, fx.scratch, [[0x100000, 0x100fff]])).toBe(0);
    expect(mapAuto(fx, fx.ioasId, fx.buffer, 2 * PG).rc).toBe(-errno.ENOSPC);
    expect(mapAuto(fx, fx.ioasId, fx.buffer, PG)).toEqual({ rc: 0, iova: 0x100000n });
    expect(mapAuto(fx, fx.ioasId, fx.buffer, PG).rc).toBe(-errno.ENOSPC);
    expect(mapAuto(fx, fx.ioasId, fx.buffer, 1).rc).toBe(-errno.ENOSPC);
    teardown(fx);
  });

  it("length >= ULONG_MAX / 2 -> EOVERFLOW (auto only)", async () => {
    const fx = await ioasFixture();
    expect(io(fx, IOMMU_IOAS_MAP, mapCmd({ ioasId: fx.ioasId, userVa: 0, length: 2n ** 63n }))).toBe(-errno.EOVERFLOW);
    teardown(fx);
  });

  it("skips reserved ranges and existing areas", async () => {
    const fx = await ioasFixture({ testCmd: true });
    expect(addReserved(fx, fx.ioasId, PG, 3 * PG)).toBe(0);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 4 * PG)).toBe(0);
    expect(mapAuto(fx, fx.ioasId, fx.buffer, PG)).toEqual({ rc: 0, iova: BigInt(5 * PG) });
    teardown(fx);
  });
});

describe("IOMMU_IOAS_UNMAP", () => {
  it("iova = 0, length = 0 -> EINVAL (not unmap-all)", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 0)).toBe(0);
    expect(unmap(fx, fx.ioasId, 0, 0).rc).toBe(-errno.EINVAL);
    expect(unmap(fx, fx.ioasId, PG, 0).rc).toBe(-errno.EINVAL);
    expect(unmap(fx, fx.ioasId, 0, PG)).toEqual({ rc: 0, length: BigInt(PG) });
    teardown(fx);
  });

  it("unmap-all on an empty IOAS -> 0 with length 0", async () => {
    const fx = await ioasFixture();
    const c = unmapCmd(fx.ioasId, 0, U64_MAX);
    expect(io(fx, IOMMU_IOAS_UNMAP, c)).toBe(0);
    expect(c.g64(16)).toBe(0n);
    teardown(fx);
  });

  it("bad ioas -> ENOENT, also for unmap-all", async () => {
    const fx = await ioasFixture();
    expect(unmap(fx, BAD_ID, 0, U64_MAX).rc).toBe(-errno.ENOENT);
    expect(unmap(fx, BAD_ID, 0, 0).rc).toBe(-errno.ENOENT);
    teardown(fx);
  });

  it("2^64-1 values and wrapping ranges -> EOVERFLOW", async () => {
    const fx = await ioasFixture();
    expect(unmap(fx, fx.ioasId, U64_MAX, PG).rc).toBe(-errno.EOVERFLOW);
    expect(unmap(fx, fx.ioasId, PG, U64_MAX).rc).toBe(-errno.EOVERFLOW);
    expect(unmap(fx, fx.ioasId, U64_MAX - BigInt(PG) + 1n, 2 * PG).rc).toBe(-errno.EOVERFLOW);
    teardown(fx);
  });

  it("a range that touches nothing -> ENOENT; length not written back", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 0x100000)).toBe(0);
    const r = unmap(fx, fx.ioasId, 0x200000, PG);
    expect(r).toEqual({ rc: -errno.ENOENT, length: BigInt(PG) });
    teardown(fx);
  });

  it("partial progress: the first area is gone, the second (not covered) fails ENOENT", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 2 * PG, 16 * PG)).toBe(0);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 4 * PG, 20 * PG)).toBe(0);
    const r = unmap(fx, fx.ioasId, 16 * PG, 6 * PG);
    expect(r.rc).toBe(-errno.ENOENT);
    expect(r.length, "length is not written back on failure").toBe(BigInt(6 * PG));
    // the first area was already removed
    expect(unmap(fx, fx.ioasId, 16 * PG, 2 * PG).rc).toBe(-errno.ENOENT);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 2 * PG, 16 * PG)).toBe(0);
    // the second is intact
    expect(unmap(fx, fx.ioasId, 20 * PG, 4 * PG)).toEqual({ rc: 0, length: BigInt(4 * PG) });
    teardown(fx);
  });

  it("a superset range removes every area inside it and sums their lengths", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 0x123, 0x10000)).toBe(0);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 3 * PG, 0x20000)).toBe(0);
    expect(unmap(fx, fx.ioasId, 0x8000, 0x30000)).toEqual({ rc: 0, length: BigInt(0x123 + 3 * PG) });
    teardown(fx);
  });
});

describe("IOMMU_IOAS_ALLOW_IOVAS", () => {
  it("start >= last -> EINVAL", async () => {
    const fx = await ioasFixture();
    expect(allowIovas(fx, fx.ioasId, fx.scratch, [[PG, PG]])).toBe(-errno.EINVAL);
    expect(allowIovas(fx, fx.ioasId, fx.scratch, [[2 * PG, PG]])).toBe(-errno.EINVAL);
    expect(allowIovas(fx, fx.ioasId, fx.scratch, [[0, 1]])).toBe(0);
    teardown(fx);
  });

  it("overlapping ranges -> EINVAL, and the old list is kept", async () => {
    const fx = await ioasFixture();
    expect(allowIovas(fx, fx.ioasId, fx.scratch, [[0x100000, 0x1fffff]])).toBe(0);
    expect(allowIovas(fx, fx.ioasId, fx.scratch, [[PG, 3 * PG], [2 * PG, 4 * PG]])).toBe(-errno.EINVAL);
    expect(allowIovas(fx, fx.ioasId, fx.scratch, [[PG, 3 * PG], [PG, 3 * PG]])).toBe(-errno.EINVAL);
    expect(allowIovas(fx, fx.ioasId, fx.scratch, [[PG, 3 * PG], [3 * PG, 4 * PG]])).toBe(-errno.EINVAL);
    const m = mapAuto(fx, fx.ioasId, fx.buffer, PG);
    expect(m).toEqual({ rc: 0, iova: 0x100000n });
    // touching but not overlapping is fine
    expect(allowIovas(fx, fx.ioasId, fx.scratch, [[PG, 3 * PG - 1], [3 * PG, 4 * PG]])).toBe(0);
    teardown(fx);
  });

  it("__reserved -> EOPNOTSUPP; bad id -> ENOENT; unreadable array -> EFAULT", async () => {
    const fx = await ioasFixture();
    writeRanges(fx.proc, fx.scratch, [[PG, 2 * PG]]);
    expect(io(fx, IOMMU_IOAS_ALLOW_IOVAS, allowIovasCmd(fx.ioasId, 1, fx.scratch, 1))).toBe(-errno.EOPNOTSUPP);
    expect(io(fx, IOMMU_IOAS_ALLOW_IOVAS, allowIovasCmd(BAD_ID, 1, fx.scratch))).toBe(-errno.ENOENT);
    expect(io(fx, IOMMU_IOAS_ALLOW_IOVAS, allowIovasCmd(fx.ioasId, 1, 0x1000))).toBe(-errno.EFAULT);
    teardown(fx);
  });

  it("IOVA_RANGES does not intersect the allowed list", async () => {
    const fx = await ioasFixture();
    expect(allowIovas(fx, fx.ioasId, fx.scratch, [[0x100000, 0x1fffff]])).toBe(0);
    const c = iovaRangesCmd(fx.ioasId, 4, fx.scratch);
    expect(io(fx, IOMMU_IOAS_IOVA_RANGES, c)).toBe(0);
    expect(c.g32(8)).toBe(1);
    expect(readRanges(fx.proc, fx.scratch, 1)).toEqual([[0n, U64_MAX]]);
    teardown(fx);
  });
});

describe("IOMMU_IOAS_IOVA_RANGES", () => {
  it("bad id -> ENOENT; __reserved -> EOPNOTSUPP", async () => {
    const fx = await ioasFixture();
    expect(io(fx, IOMMU_IOAS_IOVA_RANGES, iovaRangesCmd(BAD_ID, 4, fx.scratch))).toBe(-errno.ENOENT);
    expect(io(fx, IOMMU_IOAS_IOVA_RANGES, iovaRangesCmd(fx.ioasId, 4, fx.scratch, 1))).toBe(-errno.EOPNOTSUPP);
    teardown(fx);
  });

  it("EMSGSIZE writes num_iovas and out_iova_alignment back", async () => {
    const fx = await ioasFixture();
    const c = iovaRangesCmd(fx.ioasId, 0, 0);
    c.u64(24, 0xdeadn);
    expect(io(fx, IOMMU_IOAS_IOVA_RANGES, c)).toBe(-errno.EMSGSIZE);
    expect(c.g32(8)).toBe(1);
    expect(c.g64(24)).toBe(1n);
    // with room, the same call succeeds
    c.u32(8, 1).u64(16, fx.scratch);
    expect(io(fx, IOMMU_IOAS_IOVA_RANGES, c)).toBe(0);
    expect(readRanges(fx.proc, fx.scratch, 1)).toEqual([[0n, U64_MAX]]);
    teardown(fx);
  });

  it("an unwritable array -> EFAULT", async () => {
    const fx = await ioasFixture();
    expect(io(fx, IOMMU_IOAS_IOVA_RANGES, iovaRangesCmd(fx.ioasId, 1, 0x1000))).toBe(-errno.EFAULT);
    teardown(fx);
  });
});

describe("IOMMU_IOAS_COPY", () => {
  it("flag, overflow and READ/WRITE checks come first", async () => {
    const fx = await ioasFixture();
    const base = { dstIoasId: fx.ioasId, srcIoasId: fx.ioasId, length: PG, srcIova: 0 };
    expect(io(fx, IOMMU_IOAS_COPY, copyCmd({ ...base, flags: RW | (1 << 3) }))).toBe(-errno.EOPNOTSUPP);
    expect(io(fx, IOMMU_IOAS_COPY, copyCmd({ ...base, flags: RW, length: U64_MAX }))).toBe(-errno.EOVERFLOW);
    expect(io(fx, IOMMU_IOAS_COPY, copyCmd({ ...base, flags: RW, srcIova: U64_MAX }))).toBe(-errno.EOVERFLOW);
    expect(io(fx, IOMMU_IOAS_COPY, copyCmd({ ...base, flags: RW, dstIova: U64_MAX }))).toBe(-errno.EOVERFLOW);
    expect(io(fx, IOMMU_IOAS_COPY, copyCmd({ ...base, flags: FIXED }))).toBe(-errno.EINVAL);
    expect(io(fx, IOMMU_IOAS_COPY, copyCmd({ ...base, flags: 0, srcIoasId: BAD_ID }))).toBe(-errno.EINVAL);
    teardown(fx);
  });

  it("src ENOENT, length 0 EINVAL, wrap EOVERFLOW, dst ENOENT", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 4 * PG, 0x100000)).toBe(0);
    expect(io(fx, IOMMU_IOAS_COPY, copyCmd({ flags: RW, dstIoasId: fx.ioasId, srcIoasId: BAD_ID, length: PG, srcIova: 0x100000 }))).toBe(-errno.ENOENT);
    expect(io(fx, IOMMU_IOAS_COPY, copyCmd({ flags: RW, dstIoasId: fx.ioasId, srcIoasId: fx.ioasId, length: 0, srcIova: 0x100000 }))).toBe(-errno.EINVAL);
    expect(io(fx, IOMMU_IOAS_COPY, copyCmd({ flags: RW, dstIoasId: fx.ioasId, srcIoasId: fx.ioasId, length: 2 * PG, srcIova: U64_MAX - BigInt(PG) }))).toBe(-errno.EOVERFLOW);
    expect(io(fx, IOMMU_IOAS_COPY, copyCmd({ flags: RW, dstIoasId: BAD_ID, srcIoasId: fx.ioasId, length: PG, srcIova: 0x100000 }))).toBe(-errno.ENOENT);
    // the source range is resolved before the destination IOAS is looked up
    expect(io(fx, IOMMU_IOAS_COPY, copyCmd({ flags: RW, dstIoasId: BAD_ID, srcIoasId: fx.ioasId, length: 0, srcIova: 0x100000 }))).toBe(-errno.EINVAL);
    expect(fx.kernel.stats().iommufdObjects).toBe(1);
    teardown(fx);
  });

  it("source not covered by contiguous areas -> ENOENT; adjacent areas are contiguous", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 2 * PG, 0x100000)).toBe(0);
    expect(mapFixed(fx, fx.ioasId, fx.buffer + 4 * PG, 2 * PG, 0x103000)).toBe(0); // one-page gap
    const dst = ioasAlloc(fx);
    const copy = (srcIova: number, length: number) =>
      io(fx, IOMMU_IOAS_COPY, copyCmd({ flags: RW | FIXED, dstIoasId: dst, srcIoasId: fx.ioasId, length, srcIova, dstIova: 0x400000 }));
    expect(copy(0x100000, 5 * PG)).toBe(-errno.ENOENT);     // across the gap
    expect(copy(0x0ff000, 2 * PG)).toBe(-errno.ENOENT);     // starts before the area
    expect(copy(0x101000, 2 * PG)).toBe(-errno.ENOENT);     // runs into the gap
    expect(copy(0x101000, PG)).toBe(0);                     // a sub-range of one area
    expect(unmap(fx, dst, 0x400000, PG)).toEqual({ rc: 0, length: BigInt(PG) });
    expect(mapFixed(fx, fx.ioasId, fx.buffer + 2 * PG, PG, 0x102000)).toBe(0); // fill the gap
    expect(copy(0x100800, 4 * PG)).toBe(0);                 // spans three areas
    expect(unmap(fx, dst, 0, U64_MAX)).toEqual({ rc: 0, length: BigInt(4 * PG) });
    teardown(fx);
  });

  it("WRITEABLE copy of a read-only source -> EPERM; READABLE copy is fine", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 0x100000, READ)).toBe(0);
    const c = (flags: number, dstIova: number) =>
      io(fx, IOMMU_IOAS_COPY, copyCmd({ flags, dstIoasId: fx.ioasId, srcIoasId: fx.ioasId, length: PG, srcIova: 0x100000, dstIova }));
    expect(c(FIXED | WRITE, 0x200000)).toBe(-errno.EPERM);
    expect(c(FIXED | RW, 0x200000)).toBe(-errno.EPERM);
    expect(c(FIXED | READ, 0x200000)).toBe(0);
    // the failed copies left nothing behind at the destination
    expect(unmap(fx, fx.ioasId, 0x200000, PG)).toEqual({ rc: 0, length: BigInt(PG) });
    teardown(fx);
  });

  it("automatic destination: dst_iova written back; FIXED overlap -> EEXIST", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 2 * PG, 0x100000)).toBe(0);
    const c = copyCmd({ flags: RW, dstIoasId: fx.ioasId, srcIoasId: fx.ioasId, length: 2 * PG, srcIova: 0x100000 });
    expect(io(fx, IOMMU_IOAS_COPY, c)).toBe(0);
    const dstIova = c.g64(24);
    // iopt_alloc_iova: first fit from PAGE_SIZE (never 0), aligned to min(roundup_pow_of_two(length),
    // the source uptr's alignment) = 8 KiB
    expect(dstIova).toBe(0x2000n);
    expect(unmap(fx, fx.ioasId, dstIova, 2 * PG)).toEqual({ rc: 0, length: BigInt(2 * PG) });
    const f = copyCmd({ flags: RW | FIXED, dstIoasId: fx.ioasId, srcIoasId: fx.ioasId, length: PG, srcIova: 0x100000, dstIova: 0x101000 });
    expect(io(fx, IOMMU_IOAS_COPY, f)).toBe(-errno.EEXIST);
    teardown(fx);
  });
});

describe("IOMMU_IOAS_MAP_FILE", () => {
  async function memfdFixture(pages = 4) {
    const fx = await ioasFixture();
    const mfd = fx.proc.memfd_create("iommufd-test");
    expect(mfd).toBeGreaterThanOrEqual(0);
    expect(fx.proc.ftruncate(mfd, pages * PG)).toBe(0);
    return { ...fx, mfd };
  }

  it("maps a memfd range, fixed and automatic", async () => {
    const fx = await memfdFixture();
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ flags: RW | FIXED, ioasId: fx.ioasId, fd: fx.mfd, start: 0, length: 4 * PG, iova: 0x100000 }))).toBe(0);
    const c = mapFileCmd({ ioasId: fx.ioasId, fd: fx.mfd, start: PG, length: 2 * PG });
    expect(io(fx, IOMMU_IOAS_MAP_FILE, c)).toBe(0);
    expect(c.g64(32) % BigInt(PG)).toBe(0n);
    expect(c.g64(32)).toBe(0x1000n); // first fit from PAGE_SIZE, aligned to the file offset (4 KiB)
    expect(unmap(fx, fx.ioasId, 0x100000, 4 * PG)).toEqual({ rc: 0, length: BigInt(4 * PG) });
    expect(unmap(fx, fx.ioasId, c.g64(32), 2 * PG)).toEqual({ rc: 0, length: BigInt(2 * PG) });
    teardown(fx);
  });

  it("flags, overflow, READ/WRITE and IOAS checks as MAP", async () => {
    const fx = await memfdFixture();
    const base = { ioasId: fx.ioasId, fd: fx.mfd, start: 0, length: PG };
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ ...base, flags: RW | (1 << 3) }))).toBe(-errno.EOPNOTSUPP);
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ ...base, length: U64_MAX }))).toBe(-errno.EOVERFLOW);
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ ...base, flags: RW | FIXED, iova: U64_MAX }))).toBe(-errno.EOVERFLOW);
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ ...base, flags: FIXED }))).toBe(-errno.EINVAL);
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ ...base, ioasId: BAD_ID }))).toBe(-errno.ENOENT);
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ ...base, length: 0 }))).toBe(-errno.EINVAL);
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ ...base, start: U64_MAX - BigInt(PG) + 1n, length: 2 * PG }))).toBe(-errno.EOVERFLOW);
    teardown(fx);
  });

  it("bad fd -> EBADF", async () => {
    const fx = await memfdFixture();
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ ioasId: fx.ioasId, fd: 999, start: 0, length: PG }))).toBe(-errno.EBADF);
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ ioasId: fx.ioasId, fd: -1, start: 0, length: PG }))).toBe(-errno.EBADF);
    expect(fx.proc.close(fx.mfd)).toBe(0);
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ ioasId: fx.ioasId, fd: fx.mfd, start: 0, length: PG }))).toBe(-errno.EBADF);
    teardown(fx);
  });

  // With no domain and no access nothing is pinned at MAP_FILE time, so the kernel does not look
  // at the file's kind or size yet (io_pagetable.c iopt_map_file_pages / pages.c
  // iopt_alloc_file_pages take any file). memfd_pin_folios() rejects non-memfd files and ranges
  // past EOF (EINVAL) only when a domain or access pins the pages.
  it("no domain: a non-memfd fd or a range past EOF is accepted lazily", async () => {
    const fx = await memfdFixture(2);
    const efd = fx.proc.eventfd(0);
    expect(efd).toBeGreaterThanOrEqual(0);
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ flags: READ | FIXED, ioasId: fx.ioasId, fd: efd, start: 0, length: PG, iova: 0x100000 }))).toBe(0);
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ flags: RW | FIXED, ioasId: fx.ioasId, fd: fx.mfd, start: 0, length: 8 * PG, iova: 0x200000 }))).toBe(0);
    expect(fx.kernel.stats().pinnedPages).toBe(0);
    // the file stays referenced by the area after the fd is closed
    expect(fx.proc.close(fx.mfd)).toBe(0);
    expect(fx.proc.close(efd)).toBe(0);
    expect(unmap(fx, fx.ioasId, 0, U64_MAX)).toEqual({ rc: 0, length: BigInt(9 * PG) });
    teardown(fx);
  });
});

describe("IOMMU_OPTION", () => {
  const rlimit = (op: number, val64 = 0, objectId = 0) => optionCmd({ optionId: IOMMU_OPTION_RLIMIT_MODE, op, val64, objectId });

  it("RLIMIT_MODE SET without CAP_SYS_RESOURCE -> EPERM; GET needs nothing", async () => {
    const fx = await openFixture();
    expect(io(fx, IOMMU_OPTION, rlimit(IOMMU_OPTION_OP_SET, 1))).toBe(-errno.EPERM);
    expect(io(fx, IOMMU_OPTION, rlimit(IOMMU_OPTION_OP_SET, 0))).toBe(-errno.EPERM);
    const c = rlimit(IOMMU_OPTION_OP_GET, 5);
    expect(io(fx, IOMMU_OPTION, c)).toBe(0);
    expect(c.g64(16)).toBe(0n);
    // EPERM is checked before EBUSY
    ioasAlloc(fx);
    expect(io(fx, IOMMU_OPTION, rlimit(IOMMU_OPTION_OP_SET, 1))).toBe(-errno.EPERM);
    teardown(fx);
  });

  it("RLIMIT_MODE SET with objects present -> EBUSY (before the value check)", async () => {
    const fx = await openFixture({ capSysResource: true });
    const id = ioasAlloc(fx);
    expect(io(fx, IOMMU_OPTION, rlimit(IOMMU_OPTION_OP_SET, 1))).toBe(-errno.EBUSY);
    expect(io(fx, IOMMU_OPTION, rlimit(IOMMU_OPTION_OP_SET, 2))).toBe(-errno.EBUSY);
    expect(destroy(fx, id)).toBe(0);
    expect(io(fx, IOMMU_OPTION, rlimit(IOMMU_OPTION_OP_SET, 1))).toBe(0);
    const c = rlimit(IOMMU_OPTION_OP_GET);
    expect(io(fx, IOMMU_OPTION, c)).toBe(0);
    expect(c.g64(16)).toBe(1n);
    teardown(fx);
  });

  it("RLIMIT_MODE object_id != 0 -> EOPNOTSUPP; bad op -> EOPNOTSUPP", async () => {
    const fx = await openFixture({ capSysResource: true });
    expect(io(fx, IOMMU_OPTION, rlimit(IOMMU_OPTION_OP_GET, 0, 1))).toBe(-errno.EOPNOTSUPP);
    expect(io(fx, IOMMU_OPTION, rlimit(IOMMU_OPTION_OP_SET, 0, 1))).toBe(-errno.EOPNOTSUPP);
    expect(io(fx, IOMMU_OPTION, rlimit(2))).toBe(-errno.EOPNOTSUPP);
    expect(io(fx, IOMMU_OPTION, rlimit(0xffff))).toBe(-errno.EOPNOTSUPP);
    teardown(fx);
  });

  it("unknown option or __reserved -> EOPNOTSUPP", async () => {
    const fx = await ioasFixture();
    expect(io(fx, IOMMU_OPTION, optionCmd({ optionId: 2, op: IOMMU_OPTION_OP_GET, objectId: fx.ioasId }))).toBe(-errno.EOPNOTSUPP);
    expect(io(fx, IOMMU_OPTION, optionCmd({ optionId: 0xffffffff, op: IOMMU_OPTION_OP_GET }))).toBe(-errno.EOPNOTSUPP);
    expect(io(fx, IOMMU_OPTION, optionCmd({ optionId: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, objectId: fx.ioasId, reserved: 1 }))).toBe(-errno.EOPNOTSUPP);
    expect(io(fx, IOMMU_OPTION, optionCmd({ optionId: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, reserved: 1 }))).toBe(-errno.EOPNOTSUPP);
    teardown(fx);
  });

  it("HUGE_PAGES: bad object -> ENOENT, bad op -> EOPNOTSUPP, val64 untouched on failure", async () => {
    const fx = await ioasFixture();
    expect(io(fx, IOMMU_OPTION, optionCmd({ optionId: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, objectId: BAD_ID }))).toBe(-errno.ENOENT);
    const c = optionCmd({ optionId: IOMMU_OPTION_HUGE_PAGES, op: 2, objectId: fx.ioasId, val64: 9 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(-errno.EOPNOTSUPP);
    expect(c.g64(16)).toBe(9n);
    teardown(fx);
  });
});

describe("IOMMU_IOAS_CHANGE_PROCESS", () => {
  it("__reserved -> EOPNOTSUPP; no areas -> 0", async () => {
    const fx = await ioasFixture();
    expect(io(fx, IOMMU_IOAS_CHANGE_PROCESS, changeProcessCmd(1))).toBe(-errno.EOPNOTSUPP);
    expect(io(fx, IOMMU_IOAS_CHANGE_PROCESS, changeProcessCmd())).toBe(0);
    teardown(fx);
  });

  it("a user-VA area in any IOAS -> EINVAL; file areas only -> 0", async () => {
    const fx = await ioasFixture();
    const mfd = fx.proc.memfd_create("cp");
    expect(fx.proc.ftruncate(mfd, 4 * PG)).toBe(0);
    expect(io(fx, IOMMU_IOAS_MAP_FILE, mapFileCmd({ flags: RW | FIXED, ioasId: fx.ioasId, fd: mfd, start: 0, length: 4 * PG, iova: 0x100000 }))).toBe(0);
    expect(io(fx, IOMMU_IOAS_CHANGE_PROCESS, changeProcessCmd())).toBe(0);
    const other = ioasAlloc(fx);
    expect(mapFixed(fx, other, fx.buffer, PG, 0x100000)).toBe(0);
    expect(io(fx, IOMMU_IOAS_CHANGE_PROCESS, changeProcessCmd())).toBe(-errno.EINVAL);
    expect(unmap(fx, other, 0x100000, PG).rc).toBe(0);
    expect(io(fx, IOMMU_IOAS_CHANGE_PROCESS, changeProcessCmd())).toBe(0);
    teardown(fx);
  });
});

describe("lazy pinning (no domain)", () => {
  it("MAP pins nothing", async () => {
    const fx = await ioasFixture();
    // a populated buffer: its pages exist, yet nothing is pinned
    expect(fx.proc.writeMemory(fx.buffer, new Uint8Array(16 * PG).fill(7))).toBe(0);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 16 * PG, 0x100000)).toBe(0);
    expect(mapAuto(fx, fx.ioasId, fx.buffer, 16 * PG).rc).toBe(0);
    expect(fx.kernel.stats().pinnedPages).toBe(0);
    teardown(fx);
  });

  it("MAP of a user_va that is not mapped succeeds", async () => {
    const fx = await ioasFixture();
    const unmappedVa = 0x100000000; // 4 GiB: nothing is mapped there
    expect(fx.proc.readMemory(unmappedVa, new Uint8Array(1))).toBe(-errno.EFAULT);
    expect(mapFixed(fx, fx.ioasId, unmappedVa, 64 * PG, 0x100000)).toBe(0);
    expect(mapAuto(fx, fx.ioasId, unmappedVa, PG).rc).toBe(0);
    expect(fx.kernel.stats().pinnedPages).toBe(0);
    teardown(fx);
  });
});

describe("u64Number (iova.ts)", () => {
  it("is Number(v) for every u64: edge values and random ones, rounding past 2^53 included", () => {
    const edges = [0n, 1n, 0xffffffffn, 0x100000000n, (1n << 53n) - 1n, 1n << 53n, (1n << 53n) + 1n, (1n << 53n) + 3n,
      (1n << 63n) + 1025n, (1n << 64n) - 1n, (1n << 64n) - 2049n, (1n << 64n) - 2048n];
    const r = prng(15);
    const word = () => BigInt(r.int(0x10000)) << 16n | BigInt(r.int(0x10000));
    const random = Array.from({ length: 10000 }, () => (word() << 32n | word()) >> BigInt(r.int(64)));
    for (const v of [...edges, ...random]) expect(u64Number(v), v.toString(16)).toBe(Number(v));
  });
});

describe("64-bit wrap-around tests (iova.ts, pages.ts)", () => {
  it("addOverflow, isUlongMax and checkPagesLength agree with plain bigint arithmetic on edge and random u64s", () => {
    const edges = [0n, 1n, 4095n, 4096n, 4097n, (1n << 53n) - 1n, (1n << 53n) + 1n, (1n << 63n) - 1n, 1n << 63n,
      (1n << 63n) + 1n, ULONG_MAX - 4097n, ULONG_MAX - 4096n, ULONG_MAX - 4095n, ULONG_MAX - 1n, ULONG_MAX];
    const r = prng(16);
    const word = () => BigInt(r.int(0x10000)) << 16n | BigInt(r.int(0x10000));
    const random = Array.from({ length: 2000 }, () => (word() << 32n | word()) >> BigInt(r.int(64)));
    const all = [...edges, ...random];
    for (const a of all) {
      expect(isUlongMax(a), a.toString(16)).toBe(a === ULONG_MAX);
      // iopt_alloc_pages: zero, or past ULONG_MAX - PAGE_SIZE (the page count would overflow).
      expect(checkPagesLength(a), a.toString(16)).toBe(a === 0n || a > ULONG_MAX - 4096n ? -errno.EINVAL : 0);
    }
    for (let i = 0; i < all.length; i++) {
      for (const b of [all[(i * 7) % all.length], all[(i * 13 + 5) % all.length], edges[i % edges.length]]) {
        const a = all[i];
        expect(addOverflow(a, b), `${a.toString(16)} + ${b.toString(16)}`).toBe(a + b > ULONG_MAX ? null : a + b);
      }
    }
  });
});
