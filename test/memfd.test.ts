// memfd_create(2): the shmem page cache, shared and private mappings, pread/pwrite,
// truncation, and the lifetime of pages mapped after the fd is closed.
import { describe, it, expect } from "vitest";
import { createKernel, type Kernel } from "../src/index.js";
import type { Process } from "../src/kernel/process.js";
import { errno } from "../src/uapi/errno.js";
import {
  MAP_FIXED, MAP_PRIVATE, MAP_SHARED, MFD_CLOEXEC, MFD_HUGETLB, F_GETFD, FD_CLOEXEC, PROT_READ, PROT_WRITE,
  S_IFMT, S_IFREG,
} from "../src/uapi/posix.js";
import { fill, read } from "./toolkit/memory.js";

const PAGE = 4096;
const MiB = 1024 * 1024;
const RW = PROT_READ | PROT_WRITE;

async function setup(): Promise<{ kernel: Kernel; proc: Process; free0: number }> {
  const kernel = await createKernel({ memoryBytes: 64 * MiB });
  const free0 = kernel.stats().framesFree;
  return { kernel, proc: kernel.createProcess(), free0 };
}


function memfd(proc: Process, size: number): number {
  const fd = proc.memfd_create("t");
  expect(fd).toBeGreaterThanOrEqual(0);
  expect(proc.ftruncate(fd, size)).toBe(0);
  return fd;
}

describe("memfd_create / ftruncate", () => {
  it("creates an empty regular file and sizes it", async () => {
    const { proc } = await setup();
    const fd = proc.memfd_create("buf");
    expect(fd).toBe(0);
    const st = proc.fstat(fd);
    expect(typeof st).toBe("object");
    if (typeof st === "number") return;
    expect(st.mode & S_IFMT).toBe(S_IFREG);
    expect(st.size).toBe(0);
    expect(proc.ftruncate(fd, 3 * PAGE + 5)).toBe(0);
    expect((proc.fstat(fd) as { size: number }).size).toBe(3 * PAGE + 5);
    expect(proc.ftruncate(fd, 10n)).toBe(0);
    expect((proc.fstat(fd) as { size: number }).size).toBe(10);
    expect(proc.ftruncate(fd, -1)).toBe(-errno.EINVAL);
    expect(proc.ftruncate(99, 0)).toBe(-errno.EBADF);
  });

  it("checks its flags and the name length", async () => {
    const { proc } = await setup();
    expect(proc.memfd_create("x", 0x100)).toBe(-errno.EINVAL);
    expect(proc.memfd_create("x".repeat(250))).toBe(-errno.EINVAL);
    const fd = proc.memfd_create("x".repeat(249), MFD_CLOEXEC);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(proc.fcntl(fd, F_GETFD)).toBe(FD_CLOEXEC);
    // No hugetlbfs pool for files here.
    expect(proc.memfd_create("h", MFD_HUGETLB)).toBe(-errno.EINVAL);
  });
});

describe("pread / pwrite", () => {
  it("reads back what was written, holes as zeroes, nothing past EOF", async () => {
    const { proc } = await setup();
    const fd = memfd(proc, 2 * PAGE);
    const data = new Uint8Array(100).map((_, i) => i + 1);
    expect(proc.pwrite(fd, data, PAGE - 50)).toBe(100);
    const out = fill(200, 0xcc);
    expect(proc.pread(fd, out, PAGE - 100)).toBe(200);
    expect(out.subarray(0, 50)).toEqual(fill(50, 0));
    expect(out.subarray(50, 150)).toEqual(data);
    expect(out.subarray(150)).toEqual(fill(50, 0));
    // At and past EOF: 0 bytes; a read across EOF is short.
    expect(proc.pread(fd, new Uint8Array(10), 2 * PAGE)).toBe(0);
    expect(proc.pread(fd, new Uint8Array(10), 5 * PAGE)).toBe(0);
    expect(proc.pread(fd, new Uint8Array(10), 2 * PAGE - 4)).toBe(4);
    expect(proc.pread(fd, new Uint8Array(1), -1)).toBe(-errno.EINVAL);
  });

  it("pwrite past EOF extends the file", async () => {
    const { proc } = await setup();
    const fd = memfd(proc, 0);
    expect(proc.pwrite(fd, fill(10, 7), 3 * PAGE)).toBe(10);
    expect((proc.fstat(fd) as { size: number }).size).toBe(3 * PAGE + 10);
    const out = fill(10, 0);
    expect(proc.pread(fd, out, 3 * PAGE)).toBe(10);
    expect(out).toEqual(fill(10, 7));
  });

  it("read/write use and advance the file position", async () => {
    const { proc } = await setup();
    const fd = memfd(proc, 0);
    expect(proc.write(fd, fill(4, 1))).toBe(4);
    expect(proc.write(fd, fill(4, 2))).toBe(4);
    const out = new Uint8Array(8);
    expect(proc.pread(fd, out, 0)).toBe(8);
    expect(out).toEqual(new Uint8Array([1, 1, 1, 1, 2, 2, 2, 2]));
    // The position is at EOF now.
    expect(proc.read(fd, out)).toBe(0);
  });
});

describe("mappings", () => {
  it("two MAP_SHARED mappings see each other's writes and the file's", async () => {
    const { proc } = await setup();
    const fd = memfd(proc, 4 * PAGE);
    const a = proc.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd, 0);
    const b = proc.mmap(0, 2 * PAGE, RW, MAP_SHARED, fd, 2 * PAGE);
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
    expect(proc.writeMemory(a + 2 * PAGE + 8, fill(4, 0x41))).toBe(0);
    expect(read(proc, b + 8, 4)).toEqual(fill(4, 0x41));
    expect(proc.writeMemory(b + PAGE, fill(4, 0x42))).toBe(0);
    expect(read(proc, a + 3 * PAGE, 4)).toEqual(fill(4, 0x42));
    // And the file itself.
    const out = new Uint8Array(4);
    expect(proc.pread(fd, out, 3 * PAGE)).toBe(4);
    expect(out).toEqual(fill(4, 0x42));
    expect(proc.pwrite(fd, fill(4, 0x43), 0)).toBe(4);
    expect(read(proc, a, 4)).toEqual(fill(4, 0x43));
  });

  it("another process mapping the same file (by a shared description) sees the writes", async () => {
    const { kernel, proc } = await setup();
    const fd = memfd(proc, PAGE);
    const a = proc.mmap(0, PAGE, RW, MAP_SHARED, fd, 0);
    const other = kernel.createProcess();
    // Reach the same description the way fork would: through the kernel's file.
    const f = proc.fget(fd)!;
    const ofd = other.installFile(f);
    const b = other.mmap(0, PAGE, RW, MAP_SHARED, ofd, 0);
    expect(other.writeMemory(b + 1, fill(2, 0x99))).toBe(0);
    expect(read(proc, a + 1, 2)).toEqual(fill(2, 0x99));
  });

  it("a mapping past EOF faults there (SIGBUS: EFAULT) and not before", async () => {
    const { proc } = await setup();
    const fd = memfd(proc, PAGE + 100);
    const a = proc.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd, 0);
    expect(a).toBeGreaterThan(0);
    // The page holding EOF is whole.
    expect(proc.writeMemory(a + 2 * PAGE - 4, fill(4, 1))).toBe(0);
    expect(proc.readMemory(a + 2 * PAGE, new Uint8Array(1))).toBe(-errno.EFAULT);
    expect(proc.writeMemory(a + 3 * PAGE, fill(1, 1))).toBe(-errno.EFAULT);
    // All-or-nothing across EOF.
    expect(proc.writeMemory(a + 2 * PAGE - 2, fill(4, 5))).toBe(-errno.EFAULT);
    expect(read(proc, a + 2 * PAGE - 2, 2)).toEqual(fill(2, 1));
    // Growing the file makes the page reachable.
    expect(proc.ftruncate(fd, 3 * PAGE)).toBe(0);
    expect(read(proc, a + 2 * PAGE, 4)).toEqual(fill(4, 0));
    expect(proc.readMemory(a + 3 * PAGE, new Uint8Array(1))).toBe(-errno.EFAULT);
    // An empty file maps but faults everywhere.
    const e = memfd(proc, 0);
    const m = proc.mmap(0, PAGE, RW, MAP_SHARED, e, 0);
    expect(m).toBeGreaterThan(0);
    expect(proc.readMemory(m, new Uint8Array(1))).toBe(-errno.EFAULT);
  });

  it("truncate frees the pages, zaps them from mappings, and zeroes a partial tail", async () => {
    const { kernel, proc } = await setup();
    const fd = memfd(proc, 8 * PAGE);
    const a = proc.mmap(0, 8 * PAGE, RW, MAP_SHARED, fd, 0);
    expect(proc.writeMemory(a, fill(8 * PAGE, 0x77))).toBe(0);
    const committed = kernel.stats().committedPages;
    expect(committed).toBe(8);
    const free1 = kernel.stats().framesFree;
    expect(proc.ftruncate(fd, 2 * PAGE + 10)).toBe(0);
    expect(kernel.stats().framesFree).toBe(free1 + 5);
    expect(kernel.stats().committedPages).toBe(3);
    expect(proc.readMemory(a + 3 * PAGE, new Uint8Array(1))).toBe(-errno.EFAULT);
    expect(read(proc, a + 2 * PAGE, 10)).toEqual(fill(10, 0x77));
    // Extended again: the pages come back zeroed, and the old tail of the EOF page too.
    expect(proc.ftruncate(fd, 8 * PAGE)).toBe(0);
    expect(read(proc, a + 2 * PAGE + 10, 10)).toEqual(fill(10, 0));
    expect(read(proc, a + 5 * PAGE, 10)).toEqual(fill(10, 0));
    expect(proc.ftruncate(fd, 0)).toBe(0);
    expect(kernel.stats().committedPages).toBe(0);
  });

  it("truncate reaches every mapping of the file, also after another mapping went away", async () => {
    const { proc } = await setup();
    const fd = memfd(proc, 4 * PAGE);
    const a = proc.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd, 0);
    const b = proc.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd, 0);
    expect(proc.writeMemory(a, fill(4 * PAGE, 0x33))).toBe(0);
    expect(read(proc, b + 3 * PAGE, 1)).toEqual(fill(1, 0x33));
    // Unmap the other mapping, and a middle page of this one (splitting it).
    expect(proc.munmap(b, 4 * PAGE)).toBe(0);
    expect(proc.munmap(a + PAGE, PAGE)).toBe(0);
    expect(proc.ftruncate(fd, 0)).toBe(0);
    // The remaining pieces must not keep showing the truncated pages.
    expect(proc.readMemory(a, new Uint8Array(1))).toBe(-errno.EFAULT);
    expect(proc.readMemory(a + 3 * PAGE, new Uint8Array(1))).toBe(-errno.EFAULT);
    expect(proc.ftruncate(fd, 4 * PAGE)).toBe(0);
    expect(read(proc, a + 3 * PAGE, 4)).toEqual(fill(4, 0));
  });

  it("MAP_PRIVATE sees the file until it writes; its writes never reach the file", async () => {
    const { kernel, proc } = await setup();
    const fd = memfd(proc, 2 * PAGE);
    expect(proc.pwrite(fd, fill(8, 1), 0)).toBe(8);
    const p = proc.mmap(0, 2 * PAGE, RW, MAP_PRIVATE, fd, 0);
    expect(p).toBeGreaterThan(0);
    // A private writable mapping is charged (its copies), on top of the file's pages.
    expect(kernel.stats().committedPages).toBe(1 + 2);
    expect(read(proc, p, 8)).toEqual(fill(8, 1));
    // A later change to the file shows through while the page is not written.
    expect(proc.pwrite(fd, fill(8, 2), 0)).toBe(8);
    expect(read(proc, p, 8)).toEqual(fill(8, 2));
    // Write: the mapping gets its own copy.
    expect(proc.writeMemory(p + 4, fill(4, 9))).toBe(0);
    expect(read(proc, p, 8)).toEqual(new Uint8Array([2, 2, 2, 2, 9, 9, 9, 9]));
    const out = new Uint8Array(8);
    expect(proc.pread(fd, out, 0)).toBe(8);
    expect(out).toEqual(fill(8, 2));
    // ...and no longer follows the file.
    expect(proc.pwrite(fd, fill(8, 3), 0)).toBe(8);
    expect(read(proc, p, 8)).toEqual(new Uint8Array([2, 2, 2, 2, 9, 9, 9, 9]));
    // The other page still follows the file; a shared mapping never sees the private copy.
    const s = proc.mmap(0, 2 * PAGE, RW, MAP_SHARED, fd, 0);
    expect(read(proc, s, 8)).toEqual(fill(8, 3));
    expect(proc.writeMemory(s + PAGE, fill(4, 6))).toBe(0);
    expect(read(proc, p + PAGE, 4)).toEqual(fill(4, 6));
  });

  it("a read-only private mapping cannot be written", async () => {
    const { proc } = await setup();
    const fd = memfd(proc, PAGE);
    const p = proc.mmap(0, PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    expect(proc.writeMemory(p, fill(1, 1))).toBe(-errno.EFAULT);
    expect(read(proc, p, 1)).toEqual(fill(1, 0));
  });

  it("closing the memfd keeps its pages while mapped; the last munmap frees them", async () => {
    const { kernel, proc, free0 } = await setup();
    const fd = memfd(proc, 4 * PAGE);
    const a = proc.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd, 0);
    const b = proc.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd, 0);
    expect(proc.writeMemory(a, fill(4 * PAGE, 0x5e))).toBe(0);
    expect(proc.close(fd)).toBe(0);
    // Each VMA holds the file (vm_file): the open file description outlives the fd.
    expect(kernel.stats().openFiles).toBe(1);
    expect(read(proc, a + 3 * PAGE, 4)).toEqual(fill(4, 0x5e));
    expect(read(proc, b, 4)).toEqual(fill(4, 0x5e));
    expect(proc.writeMemory(b + PAGE, fill(4, 0x11))).toBe(0);
    expect(read(proc, a + PAGE, 4)).toEqual(fill(4, 0x11));
    expect(kernel.stats().committedPages).toBe(4);
    // One mapping gone (in two steps): the other still holds the file.
    expect(proc.munmap(a, 2 * PAGE)).toBe(0);
    expect(proc.munmap(a + 2 * PAGE, 2 * PAGE)).toBe(0);
    expect(read(proc, b + 3 * PAGE, 4)).toEqual(fill(4, 0x5e));
    expect(kernel.stats().committedPages).toBe(4);
    expect(kernel.stats().openFiles).toBe(1);
    expect(proc.munmap(b, 4 * PAGE)).toBe(0);
    expect(kernel.stats().committedPages).toBe(0);
    expect(kernel.stats().openFiles).toBe(0);
    proc.kill();
    expect(kernel.stats().framesFree).toBe(free0);
  });

  it("MAP_FIXED over the last mapping of a closed memfd frees its pages", async () => {
    const { kernel, proc, free0 } = await setup();
    const fd = memfd(proc, 2 * PAGE);
    const a = proc.mmap(0, 2 * PAGE, RW, MAP_SHARED, fd, 0);
    expect(proc.writeMemory(a, fill(2 * PAGE, 1))).toBe(0);
    expect(proc.close(fd)).toBe(0);
    expect(kernel.stats().committedPages).toBe(2);
    expect(proc.mmap(a, 2 * PAGE, RW, MAP_PRIVATE | 0x20 | MAP_FIXED, -1, 0)).toBe(a);
    expect(kernel.stats().committedPages).toBe(2); // the anonymous replacement's charge
    expect(read(proc, a, 2)).toEqual(fill(2, 0));
    proc.kill();
    expect(kernel.stats().committedPages).toBe(0);
    expect(kernel.stats().framesFree).toBe(free0);
  });

  it("kill frees a memfd that is still mapped", async () => {
    const { kernel, proc, free0 } = await setup();
    const fd = memfd(proc, 4 * PAGE);
    const a = proc.mmap(0, 4 * PAGE, RW, MAP_SHARED, fd, 0);
    expect(proc.writeMemory(a, fill(4 * PAGE, 1))).toBe(0);
    proc.kill();
    expect(kernel.stats().committedPages).toBe(0);
    expect(kernel.stats().framesFree).toBe(free0);
    expect(kernel.stats().openFiles).toBe(0);
  });
});
