// Process.fork(): the child's fd table (a reference per open file), credentials and limits, and
// its address space (shared mappings share pages, private ones are copies), and what the
// child's exit gives back.
import { describe, it, expect } from "vitest";
import { createKernel, type Kernel, type Process } from "../src/index.js";
import { errno } from "../src/uapi/errno.js";
import {
  F_GETFD, FD_CLOEXEC, MAP_ANONYMOUS, MAP_HUGETLB, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED, O_CLOEXEC,
  O_RDWR, PROT_READ, PROT_WRITE,
} from "../src/uapi/posix.js";

const MiB = 1024 * 1024;
const PG = 4096;
const RW = PROT_READ | PROT_WRITE;

async function boot(): Promise<{ kernel: Kernel; proc: Process }> {
  const kernel = await createKernel({ memoryBytes: 64 * MiB });
  return { kernel, proc: kernel.createProcess({ uid: 1234, memlockBytes: 5 * MiB, capIpcLock: true }) };
}

const fork = (p: Process): Process => {
  const c = p.fork();
  if (typeof c === "number") throw new Error(`fork: ${c}`);
  return c;
};

const bytes = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

function peek(p: Process, addr: number, n = 4): number[] {
  const b = new Uint8Array(n);
  expect(p.readMemory(addr, b)).toBe(0);
  return [...b];
}

describe("fork: process state", () => {
  it("copies credentials, limits and capabilities; the child has its own pid", async () => {
    const { kernel, proc } = await boot();
    const child = fork(proc);
    expect(child.pid).not.toBe(proc.pid);
    expect(child.uid).toBe(1234);
    expect(child.memlockBytes).toBe(5 * MiB);
    expect(child.capIpcLock).toBe(true);
    expect(child.capSysResource).toBe(false);
    expect(kernel.stats().processes).toBe(2);
    child.kill();
    expect(kernel.stats().processes).toBe(1);
  });

  it("fails with ESRCH once the process has exited", async () => {
    const { proc } = await boot();
    proc.kill();
    expect(proc.fork()).toBe(-errno.ESRCH);
  });
});

describe("fork: fd table", () => {
  it("every open file gains a reference: it lives until both processes closed it", async () => {
    const { kernel, proc } = await boot();
    const efd = proc.eventfd(0, 0);
    const mfd = proc.memfd_create("m");
    const iofd = proc.open("/dev/iommu", O_RDWR | O_CLOEXEC);
    expect(iofd).toBeGreaterThanOrEqual(0);
    const open = kernel.stats().openFiles;
    const child = fork(proc);
    // same fd numbers, the same open files (no new ones), FD_CLOEXEC kept
    expect(kernel.stats().openFiles).toBe(open);
    expect(child.fcntl(iofd, F_GETFD)).toBe(FD_CLOEXEC);
    expect(child.fcntl(efd, F_GETFD)).toBe(0);
    // one open file description: the eventfd counter is shared
    const one = new Uint8Array(8); one[0] = 5;
    expect(child.write(efd, one)).toBe(8);
    const got = new Uint8Array(8);
    expect(proc.read(efd, got)).toBe(8);
    expect(got[0]).toBe(5);
    // and the file offset of the memfd
    expect(proc.write(mfd, bytes(10, 7))).toBe(10);
    expect(child.write(mfd, bytes(10, 8))).toBe(10);
    expect(proc.fstat(mfd)).toMatchObject({ size: 20 });
    // closing in the parent leaves the child's reference
    expect(proc.close(efd)).toBe(0);
    expect(kernel.stats().openFiles).toBe(open);
    expect(child.write(efd, one)).toBe(8);
    // the child's exit drops its references: now the eventfd is gone
    child.kill();
    expect(kernel.stats().openFiles).toBe(open - 1);
    expect(child.close(mfd)).toBe(-errno.EBADF);
    proc.kill();
    expect(kernel.stats().openFiles).toBe(0);
  });

  it("an iommufd context survives the parent's close while the child holds it", async () => {
    const { kernel, proc } = await boot();
    const fd = proc.open("/dev/iommu", O_RDWR);
    const child = fork(proc);
    expect(proc.close(fd)).toBe(0);
    expect(kernel.stats().iommufdContexts).toBe(1);
    child.kill();
    expect(kernel.stats().iommufdContexts).toBe(0);
  });
});

describe("fork: address space", () => {
  it("MAP_SHARED anonymous memory is shared, including pages first touched after the fork", async () => {
    const { proc } = await boot();
    const a = proc.mmap(0, 4 * PG, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(a).toBeGreaterThan(0);
    expect(proc.writeMemory(a, bytes(4, 1))).toBe(0); // page 0 present before fork
    const child = fork(proc);
    expect(peek(child, a)).toEqual([1, 1, 1, 1]);
    // a write either way is seen by the other
    expect(child.writeMemory(a, bytes(4, 2))).toBe(0);
    expect(peek(proc, a)).toEqual([2, 2, 2, 2]);
    // page 2 was never touched: the first to fault it in creates the shared page
    expect(proc.writeMemory(a + 2 * PG, bytes(4, 3))).toBe(0);
    expect(peek(child, a + 2 * PG)).toEqual([3, 3, 3, 3]);
    expect(child.writeMemory(a + 3 * PG, bytes(4, 4))).toBe(0);
    expect(peek(proc, a + 3 * PG)).toEqual([4, 4, 4, 4]);
    // a fork of the child shares the same memory (the object is reused)
    const grandchild = fork(child);
    expect(grandchild.writeMemory(a + PG, bytes(4, 9))).toBe(0);
    expect(peek(proc, a + PG)).toEqual([9, 9, 9, 9]);
    grandchild.kill();
    child.kill();
    // the parent's mapping still works after the others exited
    expect(peek(proc, a + 3 * PG)).toEqual([4, 4, 4, 4]);
  });

  it("MAP_PRIVATE anonymous memory is copied: writes stay in their process", async () => {
    const { proc } = await boot();
    const a = proc.mmap(0, 2 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(proc.writeMemory(a, bytes(4, 1))).toBe(0);
    const child = fork(proc);
    expect(peek(child, a)).toEqual([1, 1, 1, 1]);
    expect(child.writeMemory(a, bytes(4, 2))).toBe(0);
    expect(peek(proc, a)).toEqual([1, 1, 1, 1]);
    expect(proc.writeMemory(a, bytes(4, 3))).toBe(0);
    expect(peek(child, a)).toEqual([2, 2, 2, 2]);
    // a page untouched at fork time is zero-filled independently on each side
    expect(proc.writeMemory(a + PG, bytes(4, 5))).toBe(0);
    expect(peek(child, a + PG)).toEqual([0, 0, 0, 0]);
  });

  it("memfd mappings: MAP_SHARED shares the file, MAP_PRIVATE copies only what was written", async () => {
    const { proc } = await boot();
    const mfd = proc.memfd_create("m");
    expect(proc.ftruncate(mfd, 2 * PG)).toBe(0);
    const s = proc.mmap(0, 2 * PG, RW, MAP_SHARED, mfd, 0);
    const p = proc.mmap(0, 2 * PG, RW, MAP_PRIVATE, mfd, 0);
    expect(s).toBeGreaterThan(0);
    expect(p).toBeGreaterThan(0);
    expect(proc.writeMemory(s, bytes(4, 1))).toBe(0); // file page 0 = 1
    expect(peek(proc, p)).toEqual([1, 1, 1, 1]); // private page 0 still the file's page
    expect(proc.writeMemory(p + PG, bytes(4, 7))).toBe(0); // private copy of page 1
    const child = fork(proc);
    expect(proc.close(mfd)).toBe(0);
    // shared: the file, both ways
    expect(child.writeMemory(s, bytes(4, 2))).toBe(0);
    expect(peek(proc, s)).toEqual([2, 2, 2, 2]);
    // private page 0 was never written: it still shows the file, in both processes
    expect(peek(child, p)).toEqual([2, 2, 2, 2]);
    expect(peek(proc, p)).toEqual([2, 2, 2, 2]);
    // private page 1 is the parent's copy, copied again for the child
    expect(peek(child, p + PG)).toEqual([7, 7, 7, 7]);
    expect(child.writeMemory(p + PG, bytes(4, 8))).toBe(0);
    expect(peek(proc, p + PG)).toEqual([7, 7, 7, 7]);
    // the file lives on for the child after the parent unmapped everything
    expect(proc.munmap(s, 2 * PG)).toBe(0);
    expect(proc.munmap(p, 2 * PG)).toBe(0);
    expect(peek(child, s)).toEqual([2, 2, 2, 2]);
    child.kill();
  });

  it("hugetlb: shared huge pages are shared, private ones copied", async () => {
    const { proc } = await boot();
    const H = 2 * MiB;
    const sh = proc.mmap(0, H, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    const pr = proc.mmap(0, H, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    expect(sh).toBeGreaterThan(0);
    expect(pr).toBeGreaterThan(0);
    expect(proc.writeMemory(sh + H - PG, bytes(4, 1))).toBe(0);
    expect(proc.writeMemory(pr + H - PG, bytes(4, 1))).toBe(0);
    const child = fork(proc);
    expect(child.writeMemory(sh + H - PG, bytes(4, 2))).toBe(0);
    expect(child.writeMemory(pr + H - PG, bytes(4, 2))).toBe(0);
    expect(peek(proc, sh + H - PG)).toEqual([2, 2, 2, 2]);
    expect(peek(proc, pr + H - PG)).toEqual([1, 1, 1, 1]);
    child.kill();
    expect(peek(proc, sh + H - PG)).toEqual([2, 2, 2, 2]);
  });

  it("the child's exit gives back its frames and commit charge; the shared pages stay while mapped", async () => {
    const { kernel, proc } = await boot();
    const sh = proc.mmap(0, 8 * PG, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    const pr = proc.mmap(0, 8 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    expect(proc.writeMemory(pr, bytes(8 * PG, 3))).toBe(0);
    // the parent's ioctlBuf scratch area is not inherited
    expect(proc.ioctlBuf(0, 0, new Uint8Array(8))).toBe(-errno.EBADF);
    const before = kernel.stats();
    const child = fork(proc);
    const after = kernel.stats();
    // 8 private pages copied (plus page tables), none for the shared ones
    expect(before.framesFree - after.framesFree).toBeGreaterThanOrEqual(8);
    expect(before.framesFree - after.framesFree).toBeLessThan(8 + 8);
    // the private VMA is charged again, the shared one is not
    expect(after.committedPages - before.committedPages).toBe(8);
    expect(peek(child, pr + 5 * PG)).toEqual([3, 3, 3, 3]);
    // the child's scratch area is its own
    expect(child.ioctlBuf(0, 0, new Uint8Array(8))).toBe(-errno.EBADF);
    child.kill();
    const end = kernel.stats();
    expect(end.committedPages).toBe(before.committedPages);
    // everything but the child's scratch area and page tables is back exactly
    expect(end.framesFree).toBe(before.framesFree);
    expect(peek(proc, sh)).toEqual([0, 0, 0, 0]);
    proc.kill();
    expect(kernel.stats().committedPages).toBe(0);
  });

  it("a dead process's memory cannot be pinned or read: EFAULT", async () => {
    const { proc } = await boot();
    const a = proc.mmap(0, PG, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    const child = fork(proc);
    const mm = (child as unknown as { mm: { pinPages(a: number, n: number, w: boolean): number[] | number; dead: boolean } }).mm;
    const pinned = mm.pinPages(a, 1, true);
    expect(pinned).toEqual([expect.any(Number)]); // one frame pinned
    child.kill();
    expect(mm.dead).toBe(true);
    expect(mm.pinPages(a, 1, true)).toBe(-errno.EFAULT);
    expect(child.readMemory(a, new Uint8Array(4))).toBe(-errno.EFAULT);
    // the pin taken while alive keeps the frame; the parent still sees the shared page
    expect(proc.writeMemory(a, bytes(4, 6))).toBe(0);
    expect(peek(proc, a)).toEqual([6, 6, 6, 6]);
  });
});
