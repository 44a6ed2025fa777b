// The address space through the raw syscall layer: mmap placement, the flag checks in the
// kernel's order, MAP_FIXED / NOREPLACE, hugetlb, the commit charge, partial munmap,
// demand-zero, copy_{from,to}_user semantics of readMemory/writeMemory, and leak checks.
import { describe, it, expect } from "vitest";
import { createKernel, type Kernel } from "../src/index.js";
import type { Process } from "../src/kernel/process.js";
import { errno } from "../src/uapi/errno.js";
import {
  MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_HUGE_1GB, MAP_HUGE_2MB, MAP_HUGE_SHIFT,
  MAP_HUGETLB, MAP_NORESERVE, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE, MAP_SYNC,
  PROT_NONE, PROT_READ, PROT_WRITE,
} from "../src/uapi/posix.js";
import { fill, read } from "./toolkit/memory.js";

const PAGE = 4096;
const MiB = 1024 * 1024;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

async function setup(memoryBytes = 64 * MiB): Promise<{ kernel: Kernel; proc: Process }> {
  const kernel = await createKernel({ memoryBytes });
  return { kernel, proc: kernel.createProcess() };
}


describe("mmap placement", () => {
  it("places mmap(0, ...) top-down from just below 0x7ffff7000000", async () => {
    const { proc } = await setup();
    expect(proc.mmap(0, PAGE, RW, ANON, -1, 0)).toBe(0x7ffff6fff000);
    expect(proc.mmap(0, PAGE, RW, ANON, -1, 0)).toBe(0x7ffff6ffe000);
    expect(proc.mmap(0, 3 * PAGE, RW, ANON, -1, 0)).toBe(0x7ffff6ffb000);
    // A hole left by munmap is reused: the highest gap that fits wins.
    expect(proc.munmap(0x7ffff6ffe000, PAGE)).toBe(0);
    expect(proc.mmap(0, PAGE, RW, ANON, -1, 0)).toBe(0x7ffff6ffe000);
    // Too big for the hole: below everything.
    expect(proc.munmap(0x7ffff6ffe000, PAGE)).toBe(0);
    expect(proc.mmap(0, 2 * PAGE, RW, ANON, -1, 0)).toBe(0x7ffff6ff9000);
  });

  it("aligns mappings of 2 MiB or more to 2 MiB", async () => {
    const { proc } = await setup();
    expect(proc.mmap(0, PAGE, RW, ANON | MAP_NORESERVE, -1, 0)).toBe(0x7ffff6fff000);
    const a = proc.mmap(0, 2 * MiB, RW, ANON | MAP_NORESERVE, -1, 0);
    expect(a).toBe(0x7ffff6c00000);
    const b = proc.mmap(0, 3 * MiB, RW, ANON | MAP_NORESERVE, -1, 0);
    expect(b % (2 * MiB)).toBe(0);
    expect(b).toBe(0x7ffff6800000);
    // Just under 2 MiB is placed at page granularity: it fills the gap between the first
    // page and a exactly.
    const c = proc.mmap(0, 2 * MiB - PAGE, RW, ANON | MAP_NORESERVE, -1, 0);
    expect(c).toBe(0x7ffff6e00000);
  });

  it("never picks an address below 0x10000000 for mmap(0, ...)", async () => {
    const { proc } = await setup();
    const floor = 0x10000000;
    const top = 0x7ffff7000000;
    // Fill [floor + 64 KiB, top) so that only a 64 KiB gap is left above the floor.
    const big = proc.mmap(floor + 0x10000, top - floor - 0x10000, PROT_NONE, ANON | MAP_FIXED | MAP_NORESERVE, -1, 0);
    expect(big).toBe(floor + 0x10000);
    // Fits the gap: the top of it.
    expect(proc.mmap(0, 0x8000, RW, ANON, -1, 0)).toBe(floor + 0x8000);
    // Does not fit what is left above the floor: not below the floor either (bottom-up
    // fallback above the mapped area), although [0x10000, floor) is free.
    const r = proc.mmap(0, 0x10000, RW, ANON, -1, 0);
    expect(r).toBeGreaterThanOrEqual(floor);
    expect(r).toBe(top);
    // A hint below the floor is still honoured.
    expect(proc.mmap(0x20000, PAGE, RW, ANON, -1, 0)).toBe(0x20000);
    expect(proc.munmap(big, top - floor - 0x10000)).toBe(0);
  });

  it("honours a free hint, rounds it down to the page, and ignores a busy one", async () => {
    const { proc } = await setup();
    expect(proc.mmap(0x200000000, PAGE, RW, ANON, -1, 0)).toBe(0x200000000);
    // Busy: placed top-down instead.
    expect(proc.mmap(0x200000000, PAGE, RW, ANON, -1, 0)).toBe(0x7ffff6fff000);
    // Unaligned hint: x86-64 masks it down to the page.
    expect(proc.mmap(0x300000123, PAGE, RW, ANON, -1, 0)).toBe(0x300000000);
    // A hint below mmap_min_addr is raised to it.
    expect(proc.mmap(0x1000, PAGE, RW, ANON, -1, 0)).toBe(0x10000);
  });
});

describe("commit charge (accountable_mapping, shmem_acct_size)", () => {
  it("private writable and shared anonymous memory are charged; read-only and PROT_NONE private reservations are not", async () => {
    const { kernel, proc } = await setup();
    const c0 = kernel.stats().committedPages;
    const limit = kernel.stats().commitLimitPages;
    // An address-space reservation far past the commit limit, as mmap_reserve makes one.
    const huge = (limit + 1024) * PAGE;
    const r = proc.mmap(0, huge, 0, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(r).toBeGreaterThan(0);
    expect(proc.mmap(0, 8 * PAGE, 1, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)).toBeGreaterThan(0);
    expect(kernel.stats().committedPages).toBe(c0);
    // The same size writable is refused; shared anonymous memory is charged even read-only.
    expect(proc.mmap(0, huge, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)).toBe(-errno.ENOMEM);
    expect(proc.mmap(0, 8 * PAGE, 1, MAP_SHARED | MAP_ANONYMOUS, -1, 0)).toBeGreaterThan(0);
    expect(kernel.stats().committedPages).toBe(c0 + 8);
    expect(proc.munmap(r, huge)).toBe(0);
    expect(kernel.stats().committedPages).toBe(c0 + 8);
  });
});

describe("MAP_FIXED", () => {
  it("replaces what was mapped, keeping the rest and the commit charge right", async () => {
    const { kernel, proc } = await setup();
    const a = proc.mmap(0, 4 * PAGE, RW, ANON, -1, 0);
    expect(proc.writeMemory(a, fill(4 * PAGE, 0x5a))).toBe(0);
    expect(kernel.stats().committedPages).toBe(4);
    expect(proc.mmap(a + PAGE, 2 * PAGE, RW, ANON | MAP_FIXED, -1, 0)).toBe(a + PAGE);
    expect(kernel.stats().committedPages).toBe(4);
    const all = read(proc, a, 4 * PAGE);
    expect(all.subarray(0, PAGE).every((b) => b === 0x5a)).toBe(true);
    expect(all.subarray(PAGE, 3 * PAGE).every((b) => b === 0)).toBe(true);
    expect(all.subarray(3 * PAGE).every((b) => b === 0x5a)).toBe(true);
  });

  it("MAP_FIXED_NOREPLACE fails with EEXIST on any overlap and maps a free range", async () => {
    const { kernel, proc } = await setup();
    const a = proc.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
    expect(proc.writeMemory(a, fill(8, 7))).toBe(0);
    expect(proc.mmap(a + PAGE, 2 * PAGE, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0)).toBe(-errno.EEXIST);
    expect(proc.mmap(a - PAGE, 2 * PAGE, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0)).toBe(-errno.EEXIST);
    expect(kernel.stats().committedPages).toBe(2);
    expect(read(proc, a, 8)).toEqual(fill(8, 7));
    expect(proc.mmap(a - PAGE, PAGE, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0)).toBe(a - PAGE);
  });

  it("checks the fixed address: EPERM below mmap_min_addr, EINVAL unaligned, ENOMEM past TASK_SIZE", async () => {
    const { kernel, proc } = await setup();
    expect(proc.mmap(0x1000, PAGE, RW, ANON | MAP_FIXED, -1, 0)).toBe(-errno.EPERM);
    expect(proc.mmap(0xf000, PAGE, RW, ANON | MAP_FIXED, -1, 0)).toBe(-errno.EPERM);
    expect(proc.mmap(0x10000, PAGE, RW, ANON | MAP_FIXED, -1, 0)).toBe(0x10000);
    expect(proc.mmap(0x20000100, PAGE, RW, ANON | MAP_FIXED, -1, 0)).toBe(-errno.EINVAL);
    expect(proc.mmap(0x7ffffffff000, PAGE, RW, ANON | MAP_FIXED, -1, 0)).toBe(-errno.ENOMEM);
    expect(proc.mmap(0x7fffffffe000, PAGE, RW, ANON | MAP_FIXED, -1, 0)).toBe(0x7fffffffe000);
    expect(kernel.stats().committedPages).toBe(2);
  });
});

describe("mmap flag and argument checks", () => {
  it("needs MAP_SHARED or MAP_PRIVATE", async () => {
    const { proc } = await setup();
    expect(proc.mmap(0, PAGE, RW, MAP_ANONYMOUS, -1, 0)).toBe(-errno.EINVAL);
    const fd = proc.memfd_create("m");
    expect(proc.ftruncate(fd, PAGE)).toBe(0);
    expect(proc.mmap(0, PAGE, RW, 0, fd, 0)).toBe(-errno.EINVAL);
    expect(proc.mmap(0, PAGE, RW, 0x04, fd, 0)).toBe(-errno.EINVAL);
    expect(proc.mmap(0, PAGE, RW, MAP_SHARED, fd, 0)).toBeGreaterThan(0);
  });

  it("MAP_SHARED_VALIDATE rejects flags outside the legacy mask on a file with EOPNOTSUPP", async () => {
    const { proc } = await setup();
    const fd = proc.memfd_create("m");
    expect(proc.ftruncate(fd, PAGE)).toBe(0);
    expect(proc.mmap(0, PAGE, RW, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0)).toBe(-errno.EOPNOTSUPP);
    expect(proc.mmap(0, PAGE, RW, MAP_SHARED_VALIDATE | 0x200, fd, 0)).toBe(-errno.EOPNOTSUPP);
    // Plain MAP_SHARED drops unknown bits silently.
    expect(proc.mmap(0, PAGE, RW, MAP_SHARED | 0x200, fd, 0)).toBeGreaterThan(0);
    expect(proc.mmap(0, PAGE, RW, MAP_SHARED_VALIDATE | MAP_POPULATE, fd, 0)).toBeGreaterThan(0);
  });

  it("refuses a zero length and an unaligned offset with EINVAL", async () => {
    const { proc } = await setup();
    expect(proc.mmap(0, 0, RW, ANON, -1, 0)).toBe(-errno.EINVAL);
    expect(proc.mmap(0, PAGE, RW, ANON, -1, 100)).toBe(-errno.EINVAL);
    const fd = proc.memfd_create("m");
    expect(proc.ftruncate(fd, 4 * PAGE)).toBe(0);
    expect(proc.mmap(0, 0, RW, MAP_SHARED, fd, 0)).toBe(-errno.EINVAL);
    expect(proc.mmap(0, PAGE, RW, MAP_SHARED, fd, 2048)).toBe(-errno.EINVAL);
    expect(proc.mmap(0, PAGE, RW, MAP_SHARED, fd, PAGE)).toBeGreaterThan(0);
  });

  it("a file mapping needs a valid fd (EBADF)", async () => {
    const { proc } = await setup();
    expect(proc.mmap(0, PAGE, RW, MAP_SHARED, 7, 0)).toBe(-errno.EBADF);
    expect(proc.mmap(0, PAGE, RW, MAP_SHARED, -1, 0)).toBe(-errno.EBADF);
  });

  it("munmap checks its arguments", async () => {
    const { proc } = await setup();
    expect(proc.munmap(0x20000100, PAGE)).toBe(-errno.EINVAL);
    expect(proc.munmap(0x20000000, 0)).toBe(-errno.EINVAL);
    // Nothing mapped there: still 0, as on Linux.
    expect(proc.munmap(0x20000000, PAGE)).toBe(0);
  });
});

describe("MAP_HUGETLB", () => {
  it("maps 2 MiB pages 2 MiB-aligned and rounds the length up", async () => {
    const { kernel, proc } = await setup();
    const free0 = kernel.stats().framesFree;
    const a = proc.mmap(0, PAGE, RW, ANON | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
    expect(a).toBeGreaterThan(0);
    expect(a % (2 * MiB)).toBe(0);
    // The frames are taken at mmap (a whole huge page), not on touch.
    expect(free0 - kernel.stats().framesFree).toBeGreaterThanOrEqual(512);
    expect(kernel.stats().committedPages).toBe(512);
    // The whole 2 MiB is mapped.
    expect(proc.writeMemory(a + 2 * MiB - 4, fill(4, 9))).toBe(0);
    expect(proc.readMemory(a + 2 * MiB, new Uint8Array(1))).toBe(-errno.EFAULT);
    // Default huge size (no MAP_HUGE_*) is 2 MiB too.
    const b = proc.mmap(0, 2 * MiB, RW, ANON | MAP_HUGETLB, -1, 0);
    expect(b % (2 * MiB)).toBe(0);
    expect(b).toBe(a - 2 * MiB);
  });

  it("needs a huge-page-aligned fixed address", async () => {
    const { proc } = await setup();
    expect(proc.mmap(0x40100000, 2 * MiB, RW, ANON | MAP_FIXED | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0)).toBe(-errno.EINVAL);
    expect(proc.mmap(0x40200000, 2 * MiB, RW, ANON | MAP_FIXED | MAP_HUGETLB | MAP_HUGE_1GB, -1, 0)).toBe(-errno.EINVAL);
    expect(proc.mmap(0x40200000, 2 * MiB, RW, ANON | MAP_FIXED | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0)).toBe(0x40200000);
  });

  it("refuses an unsupported huge page size with EINVAL", async () => {
    const { proc } = await setup();
    expect(proc.mmap(0, 2 * MiB, RW, ANON | MAP_HUGETLB | (22 << MAP_HUGE_SHIFT), -1, 0)).toBe(-errno.EINVAL);
    expect(proc.mmap(0, 2 * MiB, RW, ANON | MAP_HUGETLB | (12 << MAP_HUGE_SHIFT), -1, 0)).toBe(-errno.EINVAL);
  });

  it("munmap of a hugetlb mapping must not cut a huge page (EINVAL)", async () => {
    const { kernel, proc } = await setup();
    const a = proc.mmap(0, 4 * MiB, RW, ANON | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
    expect(a % (2 * MiB)).toBe(0);
    expect(proc.writeMemory(a, fill(8, 1))).toBe(0);
    expect(proc.munmap(a + PAGE, PAGE)).toBe(-errno.EINVAL);
    expect(proc.munmap(a, PAGE)).toBe(-errno.EINVAL);
    expect(proc.munmap(a + 2 * MiB - PAGE, 2 * PAGE)).toBe(-errno.EINVAL);
    // Still all there.
    expect(read(proc, a, 8)).toEqual(fill(8, 1));
    expect(kernel.stats().committedPages).toBe(1024);
    const free = kernel.stats().framesFree;
    expect(proc.munmap(a + 2 * MiB, 2 * MiB)).toBe(0);
    expect(kernel.stats().framesFree).toBe(free + 512);
    expect(kernel.stats().committedPages).toBe(512);
    expect(read(proc, a, 8)).toEqual(fill(8, 1));
  });
});

describe("commit charge", () => {
  it("refuses an anonymous mapping past the commit limit; MAP_NORESERVE is exempt", async () => {
    const { kernel, proc } = await setup();
    const limit = kernel.stats().commitLimitPages;
    expect(limit).toBeGreaterThan(0);
    expect(limit).toBeLessThan(kernel.stats().framesTotal);
    expect(proc.mmap(0, (limit + 1) * PAGE, RW, ANON, -1, 0)).toBe(-errno.ENOMEM);
    expect(kernel.stats().committedPages).toBe(0);
    const a = proc.mmap(0, (limit + 1) * PAGE, RW, ANON | MAP_NORESERVE, -1, 0);
    expect(a).toBeGreaterThan(0);
    expect(kernel.stats().committedPages).toBe(0);
    // Exactly the limit is fine; one more page is not.
    const b = proc.mmap(0, limit * PAGE, RW, ANON, -1, 0);
    expect(b).toBeGreaterThan(0);
    expect(kernel.stats().committedPages).toBe(limit);
    expect(proc.mmap(0, PAGE, RW, ANON, -1, 0)).toBe(-errno.ENOMEM);
    expect(proc.munmap(b, limit * PAGE)).toBe(0);
    expect(kernel.stats().committedPages).toBe(0);
  });

  it("munmap returns the charge, also of a part", async () => {
    const { kernel, proc } = await setup();
    const a = proc.mmap(0, 100 * PAGE, RW, ANON, -1, 0);
    expect(kernel.stats().committedPages).toBe(100);
    expect(proc.munmap(a + 10 * PAGE, 5 * PAGE)).toBe(0);
    expect(kernel.stats().committedPages).toBe(95);
    // A range covering the hole and more counts only the pages mapped.
    expect(proc.munmap(a, 20 * PAGE)).toBe(0);
    expect(kernel.stats().committedPages).toBe(80);
    expect(proc.munmap(a, 100 * PAGE)).toBe(0);
    expect(kernel.stats().committedPages).toBe(0);
  });
});

describe("munmap of part of a mapping", () => {
  it("leaves a hole that faults while the rest keeps its data", async () => {
    const { proc } = await setup();
    const a = proc.mmap(0, 3 * PAGE, RW, ANON, -1, 0);
    expect(proc.writeMemory(a, fill(PAGE, 1))).toBe(0);
    expect(proc.writeMemory(a + PAGE, fill(PAGE, 2))).toBe(0);
    expect(proc.writeMemory(a + 2 * PAGE, fill(PAGE, 3))).toBe(0);
    expect(proc.munmap(a + PAGE, PAGE)).toBe(0);
    expect(proc.readMemory(a + PAGE, new Uint8Array(1))).toBe(-errno.EFAULT);
    expect(proc.readMemory(a + 2 * PAGE - 1, new Uint8Array(1))).toBe(-errno.EFAULT);
    expect(proc.writeMemory(a + PAGE, fill(1, 9))).toBe(-errno.EFAULT);
    expect(read(proc, a, PAGE)).toEqual(fill(PAGE, 1));
    expect(read(proc, a + 2 * PAGE, PAGE)).toEqual(fill(PAGE, 3));
    // The hole can be mapped again and is fresh memory.
    expect(proc.mmap(a + PAGE, PAGE, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0)).toBe(a + PAGE);
    expect(read(proc, a + PAGE, PAGE)).toEqual(fill(PAGE, 0));
  });
});

describe("demand paging", () => {
  it("maps zeroes and takes frames only when touched", async () => {
    const { kernel, proc } = await setup();
    const free0 = kernel.stats().framesFree;
    const a = proc.mmap(0, 16 * PAGE, RW, ANON, -1, 0);
    expect(kernel.stats().framesFree).toBe(free0);
    expect(proc.writeMemory(a, fill(1, 1))).toBe(0);
    const free1 = kernel.stats().framesFree;
    expect(free1).toBeLessThan(free0);
    // A second page in the same page table takes exactly one frame.
    expect(proc.writeMemory(a + 5 * PAGE, fill(1, 1))).toBe(0);
    expect(kernel.stats().framesFree).toBe(free1 - 1);
    // Touching the same page again takes nothing.
    expect(proc.writeMemory(a + 5 * PAGE + 100, fill(1, 1))).toBe(0);
    expect(kernel.stats().framesFree).toBe(free1 - 1);
    const out = read(proc, a + 8 * PAGE, 8 * PAGE);
    expect(out.every((b) => b === 0)).toBe(true);
  });

  it("MAP_POPULATE takes the frames at once", async () => {
    const { kernel, proc } = await setup();
    // The first mapping brings the page tables in.
    const a = proc.mmap(0, 16 * PAGE, RW, ANON | MAP_POPULATE, -1, 0);
    expect(a).toBe(0x7ffff6ff0000);
    const free1 = kernel.stats().framesFree;
    const b = proc.mmap(0, 16 * PAGE, RW, ANON | MAP_POPULATE, -1, 0);
    expect(b).toBe(a - 16 * PAGE);
    expect(kernel.stats().framesFree).toBe(free1 - 16);
    // Populated pages read as zeroes and take nothing more on touch.
    expect(read(proc, b, 16 * PAGE).every((x) => x === 0)).toBe(true);
    expect(proc.writeMemory(b, fill(16 * PAGE, 4))).toBe(0);
    expect(kernel.stats().framesFree).toBe(free1 - 16);
  });
});

describe("readMemory / writeMemory", () => {
  it("are all-or-nothing across an unmapped page", async () => {
    const { proc } = await setup();
    const a = proc.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
    expect(proc.munmap(a + PAGE, PAGE)).toBe(0);
    expect(proc.writeMemory(a + PAGE - 4, fill(8, 0xee))).toBe(-errno.EFAULT);
    // Nothing was copied into the mapped part.
    expect(read(proc, a + PAGE - 4, 4)).toEqual(fill(4, 0));
    expect(proc.writeMemory(a + PAGE - 4, fill(4, 0x11))).toBe(0);
    const out = fill(8, 0xaa);
    expect(proc.readMemory(a + PAGE - 4, out)).toBe(-errno.EFAULT);
    expect(out).toEqual(fill(8, 0xaa));
    // And an unmapped page in front.
    const b = proc.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
    expect(proc.munmap(b, PAGE)).toBe(0);
    expect(proc.writeMemory(b + PAGE - 1, fill(2, 0xee))).toBe(-errno.EFAULT);
    expect(read(proc, b + PAGE, 1)).toEqual(fill(1, 0));
  });

  it("fault on addresses outside the user range and accept empty buffers", async () => {
    const { proc } = await setup();
    expect(proc.readMemory(0, new Uint8Array(1))).toBe(-errno.EFAULT);
    expect(proc.readMemory(0x7ffffffff000, new Uint8Array(1))).toBe(-errno.EFAULT);
    expect(proc.writeMemory(2 ** 47, new Uint8Array(1))).toBe(-errno.EFAULT);
    expect(proc.readMemory(0x1234, new Uint8Array(0))).toBe(0);
  });

  it("honour the protection: read-only pages refuse writes, PROT_NONE refuses both", async () => {
    const { proc } = await setup();
    const ro = proc.mmap(0, PAGE, PROT_READ, ANON, -1, 0);
    expect(proc.writeMemory(ro, fill(1, 1))).toBe(-errno.EFAULT);
    expect(read(proc, ro, 4)).toEqual(fill(4, 0));
    const none = proc.mmap(0, PAGE, PROT_NONE, ANON, -1, 0);
    expect(proc.readMemory(none, new Uint8Array(1))).toBe(-errno.EFAULT);
    expect(proc.writeMemory(none, fill(1, 1))).toBe(-errno.EFAULT);
    // x86: write implies read.
    const wo = proc.mmap(0, PAGE, PROT_WRITE, ANON, -1, 0);
    expect(proc.writeMemory(wo, fill(4, 3))).toBe(0);
    expect(read(proc, wo, 4)).toEqual(fill(4, 3));
    // A write that spans a writable and a read-only page copies nothing.
    const two = proc.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
    expect(proc.mmap(two + PAGE, PAGE, PROT_READ, ANON | MAP_FIXED, -1, 0)).toBe(two + PAGE);
    expect(proc.writeMemory(two + PAGE - 2, fill(4, 5))).toBe(-errno.EFAULT);
    expect(read(proc, two + PAGE - 2, 2)).toEqual(fill(2, 0));
  });
});

describe("address-space teardown", () => {
  it("kill() gives back every frame and the whole commit charge", async () => {
    const kernel = await createKernel({ memoryBytes: 64 * MiB });
    const free0 = kernel.stats().framesFree;
    const proc = kernel.createProcess();
    const a = proc.mmap(0, 64 * PAGE, RW, ANON | MAP_POPULATE, -1, 0);
    expect(proc.writeMemory(a, fill(64 * PAGE, 1))).toBe(0);
    const h = proc.mmap(0, 2 * MiB, RW, ANON | MAP_HUGETLB, -1, 0);
    expect(proc.writeMemory(h, fill(PAGE, 2))).toBe(0);
    proc.mmap(0x100000000, 8 * PAGE, RW, ANON | MAP_FIXED, -1, 0);
    expect(proc.writeMemory(0x100000000, fill(8 * PAGE, 3))).toBe(0);
    const fd = proc.memfd_create("leak");
    expect(proc.ftruncate(fd, 4 * PAGE)).toBe(0);
    const m = proc.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd, 0);
    expect(proc.writeMemory(m, fill(4 * PAGE, 4))).toBe(0);
    const p = proc.mmap(0, 4 * PAGE, RW, MAP_PRIVATE, fd, 0);
    expect(proc.writeMemory(p, fill(PAGE, 5))).toBe(0);
    expect(proc.ioctlBuf(fd, 0x3b64, new Uint8Array(16))).toBe(-errno.ENOTTY);
    const e = proc.eventfd(0, 0);
    expect(e).toBeGreaterThanOrEqual(0);
    // 64 anon + 512 hugetlb (same pool) + 8 fixed + 4 private file copies + 4 memfd pages
    expect(kernel.stats().committedPages).toBe(64 + 512 + 8 + 4 + 4);
    expect(kernel.stats().framesFree).toBeLessThan(free0);
    proc.kill();
    expect(kernel.stats().framesFree).toBe(free0);
    expect(kernel.stats().committedPages).toBe(0);
    expect(kernel.stats().openFiles).toBe(0);
    expect(kernel.stats().processes).toBe(0);
  });

  it("a huge MAP_NORESERVE reservation maps and unmaps without walking every page", async () => {
    const kernel = await createKernel({ memoryBytes: 64 * MiB });
    const free0 = kernel.stats().framesFree;
    const proc = kernel.createProcess();
    const TiB = 2 ** 40;
    const t0 = Date.now();
    const a = proc.mmap(0, TiB, PROT_NONE, ANON | MAP_NORESERVE, -1, 0);
    expect(a).toBeGreaterThan(0);
    expect(a % (2 * MiB)).toBe(0);
    const b = proc.mmap(0, TiB, RW, ANON | MAP_NORESERVE, -1, 0);
    expect(proc.writeMemory(b + TiB / 2, fill(4, 1))).toBe(0);
    expect(proc.munmap(a, TiB)).toBe(0);
    expect(proc.munmap(b + PAGE, TiB / 4)).toBe(0);
    proc.kill();
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(kernel.stats().framesFree).toBe(free0);
  });
});

describe("file mmap checks in the kernel's order", () => {
  it("the generic checks run before the file's, and the driver's mmap runs last", async () => {
    const { kernel, proc } = await setup();
    const kc = (kernel as unknown as { kcore: import("../src/kernel/kernel.js").KernelCore }).kcore;
    const calls: number[] = [];
    const ops: import("../src/kernel/file.js").FileOperations = {
      kind: "test",
      mmap(_f, req) {
        calls.push(req.length);
        return req.pgoff === 7 ? -errno.ENXIO : { frameAt: () => -errno.EFAULT };
      },
    };
    kc.vfs.addChr("/dev/emu-mmap", 0, 0o666, (_p, flags, path) => kc.newFile(ops, flags, null, path, { mode: 0o20666, rdev: 0, size: 0 }));
    kc.vfs.addChr("/dev/emu-nommap", 0, 0o666, (_p, flags, path) => kc.newFile({ kind: "x" }, flags, null, path, { mode: 0o20666, rdev: 0, size: 0 }));
    const rw = proc.open("/dev/emu-mmap", 2);
    const ro = proc.open("/dev/emu-mmap", 0);
    const wo = proc.open("/dev/emu-mmap", 1);
    const nm = proc.open("/dev/emu-nommap", 2);
    const a = proc.mmap(0, 2 * PAGE, RW, ANON, -1, 0);
    // EBADF first, then EINVAL for the length, then the address checks, then EEXIST...
    expect(proc.mmap(0, PAGE, RW, MAP_SHARED, 99, 0)).toBe(-errno.EBADF);
    expect(proc.mmap(0, 0, RW, MAP_SHARED, wo, 0)).toBe(-errno.EINVAL);
    expect(proc.mmap(0x1000, PAGE, RW, MAP_SHARED | MAP_FIXED, nm, 0)).toBe(-errno.EPERM);
    expect(proc.mmap(a, PAGE, RW, MAP_SHARED | MAP_FIXED_NOREPLACE, nm, 0)).toBe(-errno.EEXIST);
    // ...then the type, then the file's access mode and mmap support.
    expect(proc.mmap(0, PAGE, RW, 0, wo, 0)).toBe(-errno.EINVAL);
    expect(proc.mmap(0, PAGE, RW, MAP_SHARED, ro, 0)).toBe(-errno.EACCES);
    expect(proc.mmap(0, PAGE, PROT_READ, MAP_SHARED, ro, 0)).toBeGreaterThan(0);
    expect(proc.mmap(0, PAGE, RW, MAP_PRIVATE, ro, 0)).toBeGreaterThan(0);
    expect(proc.mmap(0, PAGE, PROT_READ, MAP_PRIVATE, wo, 0)).toBe(-errno.EACCES);
    expect(proc.mmap(0, PAGE, PROT_READ, MAP_SHARED, nm, 0)).toBe(-errno.ENODEV);
    // The driver saw only the two mappings that passed, with page-aligned lengths.
    expect(calls).toEqual([PAGE, PAGE]);
    // A driver's refusal leaves no charge and no mapping, and a MAP_FIXED target intact.
    expect(proc.writeMemory(a, fill(4, 8))).toBe(0);
    const committed = kernel.stats().committedPages;
    expect(proc.mmap(a, 100, RW, MAP_PRIVATE | MAP_FIXED, rw, 7 * PAGE)).toBe(-errno.ENXIO);
    expect(calls).toEqual([PAGE, PAGE, PAGE]);
    expect(kernel.stats().committedPages).toBe(committed);
    expect(read(proc, a, 4)).toEqual(fill(4, 8));
  });
});

// User copies resolve a page once and repeat the answer (Mm's one-entry TLB): every change of
// the mappings or the page table must make the next copy see the new state.
describe("user copies after the address space changes", () => {
  it("an unmapped or replaced page is never read or written through the old translation", async () => {
    const { proc } = await setup();
    const a = proc.mmap(0, PAGE, RW, ANON, -1, 0);
    expect(proc.writeMemory(a, fill(40, 0x5a))).toBe(0);
    expect(read(proc, a, 40)).toEqual(fill(40, 0x5a));
    expect(proc.munmap(a, PAGE)).toBe(0);
    expect(proc.readMemory(a, new Uint8Array(40))).toBe(-errno.EFAULT);
    expect(proc.writeMemory(a, fill(40, 1))).toBe(-errno.EFAULT);
    // A new mapping at the same address: demand-zero, not the old frame.
    expect(proc.mmap(a, PAGE, RW, ANON | MAP_FIXED, -1, 0)).toBe(a);
    expect(read(proc, a, 40)).toEqual(fill(40, 0));
    // Replaced read-only while a write was the last access: the next write faults.
    expect(proc.writeMemory(a, fill(40, 7))).toBe(0);
    expect(proc.mmap(a, PAGE, PROT_READ, ANON | MAP_FIXED, -1, 0)).toBe(a);
    expect(proc.writeMemory(a, fill(40, 8))).toBe(-errno.EFAULT);
    expect(read(proc, a, 40)).toEqual(fill(40, 0));
  });

  it("a read of a read-only page does not let a write through", async () => {
    const { proc } = await setup();
    const ro = proc.mmap(0, PAGE, PROT_READ, ANON | MAP_POPULATE, -1, 0);
    expect(read(proc, ro, 40)).toEqual(fill(40, 0));
    expect(proc.writeMemory(ro, fill(40, 1))).toBe(-errno.EFAULT);
    expect(read(proc, ro, 40)).toEqual(fill(40, 0));
  });

  it("a private file page read from the page cache gets its own copy on the first write", async () => {
    const { proc } = await setup();
    const fd = proc.memfd_create("cow");
    expect(proc.ftruncate(fd, PAGE)).toBe(0);
    expect(proc.pwrite(fd, fill(40, 0x33), 0)).toBe(40);
    const priv = proc.mmap(0, PAGE, RW, MAP_PRIVATE, fd, 0);
    expect(read(proc, priv, 40)).toEqual(fill(40, 0x33));
    expect(proc.writeMemory(priv, fill(40, 0x44))).toBe(0);
    expect(read(proc, priv, 40)).toEqual(fill(40, 0x44));
    // The file keeps its bytes.
    const back = new Uint8Array(40);
    expect(proc.pread(fd, back, 0)).toBe(40);
    expect(back).toEqual(fill(40, 0x33));
  });

  it("a shared file page truncated away faults on the next copy", async () => {
    const { proc } = await setup();
    const fd = proc.memfd_create("trunc");
    expect(proc.ftruncate(fd, 2 * PAGE)).toBe(0);
    const sh = proc.mmap(0, 2 * PAGE, RW, MAP_SHARED, fd, 0);
    expect(proc.writeMemory(sh + PAGE, fill(40, 0x21))).toBe(0);
    expect(read(proc, sh + PAGE, 40)).toEqual(fill(40, 0x21));
    expect(proc.ftruncate(fd, PAGE)).toBe(0);
    expect(proc.readMemory(sh + PAGE, new Uint8Array(40))).toBe(-errno.EFAULT);
    expect(proc.writeMemory(sh + PAGE, fill(40, 1))).toBe(-errno.EFAULT);
  });

  it("a process that exited faults, even on the page it read last", async () => {
    const { kernel, proc } = await setup();
    const a = proc.mmap(0, PAGE, RW, ANON, -1, 0);
    expect(read(proc, a, 40)).toEqual(fill(40, 0));
    proc.mm.destroy();
    expect(proc.readMemory(a, new Uint8Array(40))).toBe(-errno.EFAULT);
    expect(proc.writeMemory(a, fill(40, 1))).toBe(-errno.EFAULT);
    await kernel.close();
  });
});
