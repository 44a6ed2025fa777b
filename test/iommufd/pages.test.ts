// Pinning and accounting of iopt_pages (SPEC.md §4.3): what domains and accesses will use.
// Driven directly on a context's pages, with the kernel's counters and frame reference counts
// as the observable state.

import { describe, it, expect } from "vitest";
import { createKernel, errno, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, O_RDWR, PROT_READ, PROT_WRITE, type Kernel } from "../../src/index.js";
import type { Process } from "../../src/kernel/process.js";
import type { IommufdCtx, Iommufd } from "../../src/iommufd/main.js";
import { userSource, type IoptPages } from "../../src/iommufd/pages.js";
import { failNth } from "../../src/testing.js";

const PG = 4096;

interface Fx { kernel: Kernel; proc: Process; ctx: IommufdCtx; core: { x: { frame_refcount(f: number): number } } }

async function fixture(opts: Parameters<Kernel["createProcess"]>[0] = {}): Promise<Fx> {
  const kernel = await createKernel({ memoryBytes: 64 << 20 });
  const proc = kernel.createProcess(opts);
  expect(proc.open("/dev/iommu", O_RDWR)).toBe(0);
  const driver = (kernel as unknown as { iommufd: Iommufd }).iommufd;
  const ctx = [...driver.contexts][0];
  const core = (kernel as unknown as { kcore: { core: Fx["core"] } }).kcore.core;
  return { kernel, proc, ctx, core };
}

function userPages(fx: Fx, va: number, npages: number, writable = true, proc = fx.proc): IoptPages {
  return fx.ctx.newPages(userSource(proc.mm, BigInt(va)), npages, writable, proc);
}

const locked = (k: Kernel, uid: number) => (k as unknown as { kcore: { acct: { lockedOf(u: number): number } } }).kcore.acct.lockedOf(uid);

describe("iopt_pages pinning", () => {
  it("pins each page once for any number of users and charges the owner's user once", async () => {
    const fx = await fixture();
    const va = fx.proc.mmap(0, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    const pages = userPages(fx, va, 4);
    expect(pages.pinRange(0, 3)).toBe(0);
    const f0 = pages.frameAt(0);
    // one reference for the mapping, one for the pin
    expect(fx.core.x.frame_refcount(f0)).toBe(2);
    expect(fx.kernel.stats().pinnedPages).toBe(4);
    expect(locked(fx.kernel, 1000)).toBe(4);
    expect(pages.pinRange(1, 2)).toBe(0); // a second user of two pages: no new pin, no charge
    expect(fx.kernel.stats().pinnedPages).toBe(4);
    expect(locked(fx.kernel, 1000)).toBe(4);
    pages.unpinRange(0, 3);
    expect(fx.kernel.stats().pinnedPages).toBe(2);
    expect(pages.frameAt(0)).toBe(-1);
    expect(fx.core.x.frame_refcount(f0)).toBe(1);
    pages.unpinRange(1, 2);
    expect(fx.kernel.stats().pinnedPages).toBe(0);
    expect(locked(fx.kernel, 1000)).toBe(0);
    pages.put();
  });

  it("contigFrames counts the run of consecutive frames from any page, across chunks and up to its cap", async () => {
    const fx = await fixture();
    const n = 300;
    const va = fx.proc.mmap(0, n * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    // Faulted in as [0, 100), [200, 300), [100, 200): frame runs break at pages 100 and 200.
    for (const [a, b] of [[0, 100], [200, 300], [100, 200]]) {
      for (let i = a; i < b; i++) expect(fx.proc.writeMemory(va + i * PG, new Uint8Array([1]))).toBe(0);
    }
    const pages = userPages(fx, va, n);
    expect(pages.pinRange(0, n - 1)).toBe(0);
    const model = (i: number, max: number) => {
      let k = 1;
      while (k < max && pages.frameAt(i + k) === pages.frameAt(i) + k) k++;
      return k;
    };
    let breaks = 0;
    for (let i = 1; i < n; i++) if (pages.frameAt(i) !== pages.frameAt(i - 1) + 1) breaks++;
    expect(breaks).toBeGreaterThanOrEqual(2);
    for (const i of [0, 1, 63, 64, 99, 100, 127, 150, 199, 200, 255, 299]) {
      for (const max of [1, 2, 37, 64, 65, 130, n - i]) {
        if (i + max > n) continue;
        expect(pages.contigFrames(i, max), `${i} ${max}`).toBe(model(i, max));
      }
    }
    pages.unpinRange(0, n - 1);
    pages.put();
  });

  it("pins the same frames the process sees, and keeps them after munmap", async () => {
    const fx = await fixture();
    const va = fx.proc.mmap(0, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(fx.proc.writeMemory(va, new Uint8Array([7, 7, 7]))).toBe(0);
    const pages = userPages(fx, va, 2);
    expect(pages.pinRange(0, 1)).toBe(0);
    expect(pages.frameAt(0)).toBe(fx.proc.mm.frameOf(va));
    const free = fx.kernel.stats().framesFree;
    expect(fx.proc.munmap(va, 2 * PG)).toBe(0);
    expect(fx.kernel.stats().framesFree).toBe(free); // the pins hold both frames
    pages.unpinRange(0, 1);
    expect(fx.kernel.stats().framesFree).toBe(free + 2);
    pages.put();
  });

  it("fails with ENOMEM over RLIMIT_MEMLOCK and changes nothing", async () => {
    const fx = await fixture({ memlockBytes: 2 * PG });
    const va = fx.proc.mmap(0, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    const pages = userPages(fx, va, 3);
    expect(pages.pinRange(0, 2)).toBe(-errno.ENOMEM);
    expect(fx.kernel.stats().pinnedPages).toBe(0);
    expect(locked(fx.kernel, 1000)).toBe(0);
    expect(pages.frameAt(0)).toBe(-1);
    expect(pages.pinRange(0, 1)).toBe(0); // exactly the limit is allowed
    expect(locked(fx.kernel, 1000)).toBe(2);
    pages.unpinRange(0, 1);
    expect(locked(fx.kernel, 1000)).toBe(0);
    pages.put();
  });

  it("does not charge a process with CAP_IPC_LOCK", async () => {
    const fx = await fixture({ memlockBytes: 0, capIpcLock: true });
    const va = fx.proc.mmap(0, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    const pages = userPages(fx, va, 2);
    expect(pages.accountMode).toBe("none");
    expect(pages.pinRange(0, 1)).toBe(0);
    expect(locked(fx.kernel, 1000)).toBe(0);
    pages.unpinRange(0, 1);
    pages.put();
  });

  it("charges the mm's locked_vm in mm mode", async () => {
    const fx = await fixture({ memlockBytes: 1 * PG });
    const va = fx.proc.mmap(0, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    const pages = userPages(fx, va, 2);
    pages.accountMode = "mm";
    expect(pages.pinRange(0, 1)).toBe(-errno.ENOMEM);
    expect(pages.pinRange(0, 0)).toBe(0);
    expect(fx.proc.mm.lockedVm).toBe(1);
    expect(locked(fx.kernel, 1000)).toBe(0);
    pages.unpinRange(0, 0);
    expect(fx.proc.mm.lockedVm).toBe(0);
    pages.put();
  });

  it("gives EFAULT for memory that is not mapped, or read-only memory pinned for write", async () => {
    const fx = await fixture();
    const va = fx.proc.mmap(0, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(fx.proc.munmap(va + PG, PG)).toBe(0);
    const holey = userPages(fx, va, 2);
    expect(holey.pinRange(0, 1)).toBe(-errno.EFAULT);
    expect(fx.kernel.stats().pinnedPages).toBe(0);
    expect(fx.core.x.frame_refcount(fx.proc.mm.frameOf(va))).toBe(1); // the first page's pin was dropped
    holey.put();
    const ro = fx.proc.mmap(0, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const rw = userPages(fx, ro, 1, true);
    expect(rw.pinRange(0, 0)).toBe(-errno.EFAULT);
    rw.put();
    const r = userPages(fx, ro, 1, false);
    expect(r.pinRange(0, 0)).toBe(0);
    r.unpinRange(0, 0);
    r.put();
  });

  it("pins memfd pages from the page cache, and EINVAL past the end of the file", async () => {
    const fx = await fixture();
    const mfd = fx.proc.memfd_create("buf");
    expect(fx.proc.ftruncate(mfd, 2 * PG)).toBe(0);
    const file = fx.proc.file(mfd)!;
    file.refs++;
    const memfd = file.priv as never;
    const pages = fx.ctx.newPages({ kind: "file", file, memfd, start: 0n }, 3, true, fx.proc);
    expect(pages.pinRange(0, 2)).toBe(-errno.EINVAL);
    expect(pages.pinRange(0, 1)).toBe(0);
    expect(fx.proc.pwrite(mfd, new Uint8Array([9]), PG)).toBe(1);
    const view = (fx.kernel as unknown as { kcore: { core: { u8: Uint8Array; poolBase: number } } }).kcore.core;
    expect(view.u8[view.poolBase + pages.frameAt(1) * PG]).toBe(9);
    pages.unpinRange(0, 1);
    pages.put();
    expect(fx.proc.close(mfd)).toBe(0);
  });

  it("fails with ENOMEM on an injected allocation failure", async () => {
    const fx = await fixture();
    const va = fx.proc.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    const pages = userPages(fx, va, 1);
    failNth(fx.kernel, 1);
    expect(pages.pinRange(0, 0)).toBe(-errno.ENOMEM);
    failNth(fx.kernel, 0);
    expect(fx.kernel.stats().pinnedPages).toBe(0);
    pages.put();
  });

  it("moves the charge to another process's user all or nothing (CHANGE_PROCESS)", async () => {
    const fx = await fixture();
    const other = fx.kernel.createProcess({ uid: 2000, memlockBytes: PG });
    const va = fx.proc.mmap(0, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    const pages = userPages(fx, va, 2);
    expect(pages.pinRange(0, 1)).toBe(0);
    expect(pages.moveCharge(other)).toBe(-errno.ENOMEM); // uid 2000 may lock only one page
    expect(pages.owner).toBe(fx.proc);
    expect(locked(fx.kernel, 1000)).toBe(2);
    const roomy = fx.kernel.createProcess({ uid: 3000, memlockBytes: 4 * PG });
    expect(pages.moveCharge(roomy)).toBe(0);
    expect(locked(fx.kernel, 1000)).toBe(0);
    expect(locked(fx.kernel, 3000)).toBe(2);
    pages.unpinRange(0, 1);
    expect(locked(fx.kernel, 3000)).toBe(0);
    pages.put();
  });

  it("refuses to release pages that are still pinned", async () => {
    const fx = await fixture();
    const va = fx.proc.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    const pages = userPages(fx, va, 1);
    expect(pages.pinRange(0, 0)).toBe(0);
    expect(() => pages.put()).toThrow(/still pinned/);
    pages.refs = 1;
    pages.unpinRange(0, 0);
    pages.put();
  });
});
