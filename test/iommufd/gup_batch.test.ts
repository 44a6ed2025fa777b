// The batched pin path (assembly/gup.ts gup_fast_pin, driven by iopt_pages.pinRange): runs of
// present, writable, ordinary leaves are pinned in wasm in batches of GUP_BATCH_PAGES; every
// other page goes through the fault path alone (mm.ts gupLeaf) and the batch resumes after it.
// The observable state: exact frame reference counts, the pin ledger, the user's locked pages,
// and which frame a page was pinned to.

import { describe, it, expect } from "vitest";
import {
  createKernel, errno, MAP_ANONYMOUS, MAP_FIXED, MAP_HUGE_2MB, MAP_HUGETLB, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED,
  O_RDWR, PROT_READ, PROT_WRITE, type Kernel,
} from "../../src/index.js";
import type { Process } from "../../src/kernel/process.js";
import type { IommufdCtx, Iommufd } from "../../src/iommufd/main.js";
import { userSource, type IoptPages } from "../../src/iommufd/pages.js";
import type { Core } from "../../src/wasm/core.js";
import { attach, bind, boot, ioasAlloc, ioasMapArg, IOMMU_IOAS_MAP, openIommufd } from "../vfio/util.js";

const PG = 4096;
const MiB = 1 << 20;
const RW = PROT_READ | PROT_WRITE;

interface Fx { kernel: Kernel; proc: Process; ctx: IommufdCtx; core: Core }

function contextOf(kernel: Kernel, proc: Process): Fx {
  const driver = (kernel as unknown as { iommufd: Iommufd }).iommufd;
  const ctx = [...driver.contexts][0];
  const core = (kernel as unknown as { kcore: { core: Core } }).kcore.core;
  return { kernel, proc, ctx, core };
}

async function fixture(memoryBytes = 64 * MiB): Promise<Fx> {
  const kernel = await createKernel({ memoryBytes });
  // RLIMIT_MEMLOCK of 32 MiB: room for runs of a few batches.
  const proc = kernel.createProcess({ memlockBytes: 32 * MiB });
  expect(proc.open("/dev/iommu", O_RDWR)).toBe(0);
  return contextOf(kernel, proc);
}

function userPages(fx: Fx, va: number, npages: number, writable = true): IoptPages {
  return fx.ctx.newPages(userSource(fx.proc.mm, BigInt(va)), npages, writable, fx.proc);
}

const locked = (k: Kernel, uid: number) => (k as unknown as { kcore: { acct: { lockedOf(u: number): number } } }).kcore.acct.lockedOf(uid);
const refs = (fx: Fx, frames: number[]) => frames.map((f) => fx.core.x.frame_refcount(f));
const touch = (p: Process, va: number) => expect(p.writeMemory(va, new Uint8Array([0xa5]))).toBe(0);

describe("gup_fast_pin batches (iopt_pages.pinRange)", () => {
  it("pins a run longer than one batch across page-table boundaries: one reference per page, exactly, and the frames the process maps", async () => {
    const fx = await fixture();
    const batch = fx.core.consts.GUP_BATCH_PAGES;
    const n = 2 * batch + 37;
    // Starting 5 pages into a table, so that runs cross level-1 tables and batches alike.
    const base = fx.proc.mmap(0, (n + 520) * PG, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    const va = Math.ceil(base / (512 * PG)) * 512 * PG + 5 * PG;
    const frames = Array.from({ length: n }, (_, i) => fx.proc.mm.frameOf(va + i * PG));
    expect(refs(fx, frames).every((r) => r === 1)).toBe(true);
    const pages = userPages(fx, va, n);
    expect(pages.pinRange(0, n - 1)).toBe(0);
    for (let i = 0; i < n; i++) expect(pages.frameAt(i)).toBe(frames[i]);
    expect(refs(fx, frames).every((r) => r === 2)).toBe(true);
    expect(fx.kernel.stats().pinnedPages).toBe(n);
    expect(locked(fx.kernel, 1000)).toBe(n);
    // A second user of a middle part takes nothing more.
    expect(pages.pinRange(batch - 3, batch + 3)).toBe(0);
    expect(refs(fx, frames).every((r) => r === 2)).toBe(true);
    pages.unpinRange(batch - 3, batch + 3);
    pages.unpinRange(0, n - 1);
    expect(refs(fx, frames).every((r) => r === 1)).toBe(true);
    expect(fx.kernel.stats().pinnedPages).toBe(0);
    expect(locked(fx.kernel, 1000)).toBe(0);
    pages.put();
  });

  it("pins inside a 2 MiB hugetlb leaf frame by frame, from an offset into it", async () => {
    const fx = await fixture();
    const va = fx.proc.mmap(0, 4 * MiB, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
    expect(va).toBeGreaterThan(0);
    const from = va + MiB; // the second half of the first huge page, then into the second
    const n = 2 * MiB / PG;
    const frames = Array.from({ length: n }, (_, i) => fx.proc.mm.frameOf(from + i * PG));
    const before = refs(fx, frames);
    const pages = userPages(fx, from, n);
    expect(pages.pinRange(0, n - 1)).toBe(0);
    for (let i = 0; i < n; i++) expect(pages.frameAt(i)).toBe(frames[i]);
    expect(refs(fx, frames)).toEqual(before.map((r) => r + 1));
    pages.unpinRange(0, n - 1);
    expect(refs(fx, frames)).toEqual(before);
    pages.put();
  });

  it("a page not faulted in yet in the middle of a run is faulted in and pinned, and the batch resumes after it", async () => {
    const fx = await fixture();
    const n = 300;
    const va = fx.proc.mmap(0, n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (let i = 0; i < n; i++) if (i !== 150 && i !== 151) touch(fx.proc, va + i * PG);
    const pages = userPages(fx, va, n);
    expect(pages.pinRange(0, n - 1)).toBe(0);
    // Faulted in by the pin: now mapped, and pinned to the page the process sees.
    const frames = Array.from({ length: n }, (_, i) => fx.proc.mm.frameOf(va + i * PG));
    for (let i = 0; i < n; i++) expect(pages.frameAt(i)).toBe(frames[i]);
    expect(refs(fx, frames).every((r) => r === 2)).toBe(true);
    expect(fx.kernel.stats().pinnedPages).toBe(n);
    pages.unpinRange(0, n - 1);
    expect(refs(fx, frames).every((r) => r === 1)).toBe(true);
    pages.put();
  });

  it("a hole in the middle of a run: EFAULT, and every reference the batch took before it goes back", async () => {
    const fx = await fixture();
    const n = 300;
    const va = fx.proc.mmap(0, n * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    expect(fx.proc.munmap(va + 200 * PG, PG)).toBe(0);
    const frames = Array.from({ length: n }, (_, i) => (i === 200 ? -1 : fx.proc.mm.frameOf(va + i * PG))).filter((f) => f >= 0);
    const pages = userPages(fx, va, n);
    expect(pages.pinRange(0, n - 1)).toBe(-errno.EFAULT);
    expect(refs(fx, frames).every((r) => r === 1)).toBe(true);
    expect(fx.kernel.stats().pinnedPages).toBe(0);
    expect(locked(fx.kernel, 1000)).toBe(0);
    expect(pages.frameAt(0)).toBe(-1);
    pages.put();
  });

  it("a page of a read-only mapping wanted for write: EFAULT from the slow path, though its leaf is present; a read-only pin takes it", async () => {
    const fx = await fixture();
    const n = 64;
    const va = fx.proc.mmap(0, n * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    const frames = Array.from({ length: n }, (_, i) => fx.proc.mm.frameOf(va + i * PG));
    const w = userPages(fx, va, n, true);
    expect(w.pinRange(0, n - 1)).toBe(-errno.EFAULT);
    expect(refs(fx, frames).every((r) => r === 1)).toBe(true);
    expect(fx.kernel.stats().pinnedPages).toBe(0);
    w.put();
    const r = userPages(fx, va, n, false);
    expect(r.pinRange(0, n - 1)).toBe(0);
    expect(refs(fx, frames).every((c) => c === 2)).toBe(true);
    r.unpinRange(0, n - 1);
    r.put();
  });

  it("a private file page still shared with the page cache is unshared for the pin, not pinned as the cache's page", async () => {
    const fx = await fixture();
    const mfd = fx.proc.memfd_create("buf");
    expect(fx.proc.ftruncate(mfd, 4 * PG)).toBe(0);
    const shared = fx.proc.mmap(0, 4 * PG, RW, MAP_SHARED, mfd, 0);
    for (let i = 0; i < 4; i++) touch(fx.proc, shared + i * PG);
    const cache = Array.from({ length: 4 }, (_, i) => fx.proc.mm.frameOf(shared + i * PG));
    const priv = fx.proc.mmap(0, 4 * PG, RW, MAP_PRIVATE, mfd, 0);
    // Read: the private mapping maps the cache pages, read-only. Page 2 gets its own copy.
    for (let i = 0; i < 4; i++) expect(fx.proc.mm.frameOf(priv + i * PG)).toBe(cache[i]);
    touch(fx.proc, priv + 2 * PG);
    const cacheRefs = refs(fx, cache);
    const pages = userPages(fx, priv, 4);
    expect(pages.pinRange(0, 3)).toBe(0);
    for (let i = 0; i < 4; i++) {
      const f = fx.proc.mm.frameOf(priv + i * PG);
      expect(f).not.toBe(cache[i]);
      expect(pages.frameAt(i)).toBe(f);
      expect(fx.core.x.frame_refcount(f)).toBe(2);
    }
    // The cache pages lost the private mapping's references (pages 0, 1, 3), and no pin is on them.
    expect(refs(fx, cache)).toEqual(cacheRefs.map((r, i) => (i === 2 ? r : r - 1)));
    pages.unpinRange(0, 3);
    pages.put();
  });
});

describe("gup_fast_pin and device memory", () => {
  it("a BAR page already mapped (present, writable) in the middle of a run is refused with EFAULT, nothing pinned (iommufd, domain attached)", async () => {
    const BAR = 0x4000;
    const k = await boot([{ bdf: "0000:00:04.0", model: "memcpy", bar0Size: BAR }]);
    const p = k.createProcess();
    const i = openIommufd(p);
    const ioas = ioasAlloc(p, i);
    const d = p.open("/dev/vfio/devices/vfio0", O_RDWR);
    expect(bind(p, d, i)).toBeGreaterThan(0);
    expect(attach(p, d, ioas)).toBeGreaterThan(0);
    const fx = contextOf(k, p);
    // Two anonymous pages, the BAR's first page, then anonymous memory again.
    const r = p.mmap(0, 4 * PG, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    expect(p.mmap(r + 2 * PG, PG, RW, MAP_SHARED | MAP_FIXED, d, 0)).toBe(r + 2 * PG);
    touch(p, r + 2 * PG); // the BAR page is mapped now: a present, writable leaf
    const anon = [0, 1, 3].map((j) => p.mm.frameOf(r + j * PG));
    const bar = p.mm.frameOf(r + 2 * PG);
    const barRefs = fx.core.x.frame_refcount(bar);
    expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, r, 4 * PG, 0x100000))).toBe(-errno.EFAULT);
    expect(k.stats().pinnedPages).toBe(0);
    expect(refs(fx, anon)).toEqual([1, 1, 1]);
    expect(fx.core.x.frame_refcount(bar)).toBe(barRefs);
    // Without the BAR page the same memory maps and pins.
    expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, r, 2 * PG, 0x100000))).toBe(0);
    expect(k.stats().pinnedPages).toBe(2);
    await k.close();
  });
});
