// Device DMA through IOMMU domains (assembly/dma.ts, iotlb.ts, fault.ts), driven directly
// through the core: exact bytes, exact fault records, no stale IOTLB translation.
import { describe, it, expect } from "vitest";
import { readFileSync, existsSync } from "node:fs";
import { Core, WASM_PAGE, type CoreConstants } from "../src/wasm/core.js";
import {
  MiB, GiB, NONE, EFAULT, READ, WRITE, lo, hi, Model, faultsSince,
} from "./iommu_util.js";
import { prng } from "./toolkit/prng.js";

const UNMAPPED = 1, PERM = 2, BLOCKED = 3, RANGE = 4;

interface Env {
  c: Core;
  x: Core["x"];
  dom: number;
  ps: number; // IO page size
  physBase: number; // physical address of the test block
  block: number; // its size
  host: number; // host address of the block's first byte
  src: number; // host scratch buffers, 1 MiB each
  dst: number;
}

async function env(fmt: "x86" | "mock" | "mock-huge", bytes = 256 * MiB, blockOrder = 13): Promise<Env> {
  const c = await Core.boot(bytes);
  const x = c.x;
  const f = x.frame_alloc(blockOrder) >>> 0;
  const s = x.frame_alloc(8) >>> 0, d = x.frame_alloc(8) >>> 0;
  expect([f, s, d]).not.toContain(NONE);
  const dom = x.domain_alloc((fmt === "x86" ? c.consts.IOPT_X86 : c.consts.IOPT_MOCK), fmt === "mock-huge" ? c.consts.DOMAIN_F_HUGE : 0) >>> 0;
  return {
    c, x, dom, ps: fmt === "x86" ? 4096 : 2048, physBase: f * 4096, block: 4096 << blockOrder,
    host: c.poolBase + f * 4096, src: c.poolBase + s * 4096, dst: c.poolBase + d * 4096,
  };
}

/** Maps `n` IO pages at `iova` onto block offset `off` (bytes). */
function map(e: Env, iova: number, off: number, n: number, prot: number, huge = false): number {
  return e.x.domain_map(e.dom, lo(iova), hi(iova), (e.physBase + off) / e.ps, n, prot, huge ? 1 : 0);
}

describe("dma through a domain", () => {
  it("reads and writes exact bytes across leaves; a fault stops after the earlier bytes, with one record", async () => {
    const e = await env("x86");
    const { c, x, dom } = e;
    const A = 0x100000000;
    expect(map(e, A, 0x3000, 2, READ | WRITE)).toBe(0); // two 4 KiB leaves, physically apart
    expect(map(e, A + 0x2000, 0x10000, 1, READ)).toBe(0);
    for (let i = 0; i < 0x3000; i++) c.u8[e.src + i] = (i * 7 + 1) & 0xff;
    // 0x2000 bytes at A + 0x800 reach into the read-only page: the write stops at A + 0x2000.
    const head = x.fault_head();
    expect(x.dma_write(dom, lo(A + 0x800), hi(A), e.src, 0x2000)).toBe(EFAULT);
    expect(faultsSince(c, head)).toEqual([{ iova: A + 0x2000, write: true, reason: PERM, dom, serial: x.domain_serial(dom), slot: 0 }]);
    for (let i = 0; i < 0x1800; i++) expect(c.u8[e.host + 0x3800 + i]).toBe((i * 7 + 1) & 0xff);
    expect(c.u8[e.host + 0x10000]).toBe(0);
    // Read back across the same leaves, then past the last one: unmapped at A + 0x3000.
    c.u8.fill(0xee, e.dst, e.dst + 0x4000);
    expect(x.dma_read(dom, lo(A + 0x800), hi(A), e.dst, 0x1800)).toBe(0);
    expect([...c.u8.subarray(e.dst, e.dst + 0x1800)]).toEqual([...c.u8.subarray(e.src, e.src + 0x1800)]);
    c.u8.fill(0xee, e.dst, e.dst + 0x4000);
    expect(x.dma_read(dom, lo(A + 0x2ff0), hi(A), e.dst, 0x20)).toBe(EFAULT);
    expect(faultsSince(c, head + 1)).toMatchObject([{ iova: A + 0x3000, write: false, reason: UNMAPPED }]);
    expect(c.u8[e.dst + 0x0f]).toBe(0);
    expect(c.u8[e.dst + 0x10]).toBe(0xee);
    // Writing nothing touches nothing, even on a fault-y address.
    expect(x.dma_write(dom, 0, 0, e.src, 0)).toBe(0);
  });

  it("the blocking domain (0), a freed domain and an IOVA outside the aperture fault", async () => {
    const e = await env("mock");
    const { c, x, dom } = e;
    const head = x.fault_head();
    expect(x.dma_read(0, 0x1000000, 0, e.dst, 16)).toBe(EFAULT);
    expect(x.dma_write(dom, 0x800000, 0, e.src, 16)).toBe(EFAULT);
    expect(map(e, 0x1000000, 0, 4, READ | WRITE)).toBe(0);
    expect(x.dma_write(dom, 0x1000000, 0, e.src, 16)).toBe(0);
    const serial = x.domain_serial(dom);
    expect(x.domain_free(dom)).toBe(0);
    expect(x.dma_write(dom, 0x1000000, 0, e.src, 16)).toBe(EFAULT); // the IOTLB must not serve it
    expect(faultsSince(c, head)).toEqual([
      { iova: 0x1000000, write: false, reason: BLOCKED, dom: 0, serial: 0, slot: 0 },
      { iova: 0x800000, write: true, reason: RANGE, dom, serial, slot: 0 },
      { iova: 0x1000000, write: true, reason: BLOCKED, dom, serial: 0, slot: 0 },
    ]);
  });

  it("the IOTLB never serves a translation after unmap, remap or another thread's unmap", async () => {
    const e = await env("x86");
    const { c, x, dom } = e;
    const A = 0x7f0000000000;
    c.u8.fill(0x11, e.host, e.host + 4096);
    c.u8.fill(0x22, e.host + 4096, e.host + 8192);
    // A second instance on the same memory stands for a worker thread in slot 1.
    const w = await Core.attach(c.init());
    expect(w.x.iotlb_attach(1)).toBe(0);
    expect(map(e, A, 0, 1, READ)).toBe(0);
    for (const k of [c, w]) {
      expect(k.x.dma_read(dom, lo(A), hi(A), e.dst, 4)).toBe(0);
      expect(c.u8[e.dst]).toBe(0x11);
      expect(k.x.dma_read(dom, lo(A + 8), hi(A), e.dst, 4)).toBe(0); // last-translation hit
    }
    expect(x.domain_unmap(dom, lo(A), hi(A), 1)).toBe(1);
    const head = x.fault_head();
    expect(w.x.dma_read(dom, lo(A), hi(A), e.dst, 4)).toBe(EFAULT);
    expect(x.dma_read(dom, lo(A), hi(A), e.dst, 4)).toBe(EFAULT);
    expect(faultsSince(c, head).map((f) => [f.slot, f.reason])).toEqual([[1, UNMAPPED], [0, UNMAPPED]]);
    expect(map(e, A, 4096, 1, READ)).toBe(0);
    for (const k of [w, c]) {
      expect(k.x.dma_read(dom, lo(A), hi(A), e.dst, 4)).toBe(0);
      expect(c.u8[e.dst]).toBe(0x22);
    }
    // A huge leaf replaced by small ones: the 2 MiB IOTLB entry must not survive.
    const B = 0x7f0000200000;
    expect(map(e, B, 2 * MiB, 512, READ, true)).toBe(0);
    expect(w.x.iotlb_translate(dom, lo(B + 0x5000), hi(B), 0)).toBe(0);
    expect(w.x.iotlb_avail()).toBe(2 * MiB - 0x5000);
    expect(x.domain_unmap(dom, lo(B), hi(B), 512)).toBe(512);
    expect(map(e, B + 0x5000, 0, 1, READ)).toBe(0);
    expect(w.x.iotlb_translate(dom, lo(B + 0x5000), hi(B), 0)).toBe(0);
    expect([w.x.iotlb_host() >>> 0, w.x.iotlb_avail()]).toEqual([e.host, 4096]);
    expect(w.x.iotlb_translate(dom, lo(B + 0x4000), hi(B), 0)).toBe(UNMAPPED);
    // Permission is checked on IOTLB hits too.
    expect(w.x.iotlb_translate(dom, lo(B + 0x5000), hi(B), 1)).toBe(PERM);
  });

  it("uses 1 GiB leaves: one translation covers the leaf, and transfers cross into the next leaf", async () => {
    const c = await Core.boot(1536 * MiB);
    const x = c.x;
    const g = x.frame_alloc(18) >>> 0, p = x.frame_alloc(0) >>> 0, s = x.frame_alloc(0) >>> 0;
    expect([g, p, s]).not.toContain(NONE);
    const dom = x.domain_alloc(c.consts.IOPT_X86, 0) >>> 0;
    const A = 0x40000000 * 5;
    expect(x.domain_map(dom, lo(A), hi(A), g, 262144, READ | WRITE, 1)).toBe(0);
    expect(x.domain_map(dom, lo(A + GiB), hi(A + GiB), p, 1, READ | WRITE, 1)).toBe(0);
    expect((x.domain_lookup(dom, lo(A + 12345), hi(A)) >>> 4) & 31).toBe(30);
    expect(x.iotlb_translate(dom, lo(A + 0x1234), hi(A), 1)).toBe(0);
    expect([x.iotlb_host() >>> 0, x.iotlb_avail()]).toEqual([c.poolBase + g * 4096 + 0x1234, GiB - 0x1234]);
    const src = c.poolBase + s * 4096;
    for (let i = 0; i < 300; i++) c.u8[src + i] = i & 0xff;
    const at = A + GiB - 100;
    expect(x.dma_write(dom, lo(at), hi(at), src, 300)).toBe(0);
    const gEnd = c.poolBase + g * 4096 + GiB;
    for (let i = 0; i < 100; i++) expect(c.u8[gEnd - 100 + i]).toBe(i);
    for (let i = 100; i < 300; i++) expect(c.u8[c.poolBase + p * 4096 + i - 100]).toBe(i & 0xff);
    // Past the small leaf: a fault at exactly A + 1 GiB + 4 KiB, the bytes before it moved.
    const head = x.fault_head();
    expect(x.dma_copy(dom, lo(at), hi(at), lo(A + GiB + 4096 - 50), hi(A), 300)).toBe(EFAULT);
    expect(faultsSince(c, head)).toMatchObject([{ iova: A + GiB + 4096, write: true, reason: UNMAPPED }]);
    for (let i = 0; i < 50; i++) expect(c.u8[c.poolBase + p * 4096 + 4096 - 50 + i]).toBe(i);
  });

  it("dirty tracking: DMA writes set dirty bits (x86 leaves, mock 1 MiB pages), read-and-clear reports and re-arms", async () => {
    for (const fmt of ["x86", "mock-huge"] as const) {
      const e = await env(fmt);
      const { c, x, dom, ps } = e;
      const A = fmt === "x86" ? 0x80000000 : 0x2000000;
      const hugeBytes = fmt === "x86" ? 2 * MiB : MiB;
      expect(map(e, A, 0, hugeBytes / ps + 4, READ | WRITE, true)).toBe(0); // one huge leaf + 4 small
      const bm = e.dst, bits = hugeBytes / 4096 + 8;
      const read = (noClear = 0) => {
        c.u8.fill(0, bm, bm + 4096);
        const n = x.domain_read_and_clear_dirty(dom, lo(A), hi(A), hugeBytes / ps + 4, bm, 12, noClear);
        const set: number[] = [];
        for (let i = 0; i < bits; i++) if (c.u8[bm + (i >> 3)] & (1 << (i & 7))) set.push(i);
        return { n, set };
      };
      // Tracking off: writes leave no trace.
      expect(x.dma_write(dom, lo(A + 5), hi(A), e.src, 1)).toBe(0);
      expect(read()).toEqual({ n: 0, set: [] });
      expect(x.domain_set_dirty_tracking(dom, 1)).toBe(0);
      expect(x.dma_write(dom, lo(A + 5), hi(A), e.src, 1)).toBe(0);
      expect(x.dma_write(dom, lo(A + hugeBytes + ps), hi(A), e.src, 1)).toBe(0);
      const all = Array.from({ length: hugeBytes / 4096 }, (_, i) => i);
      const small = fmt === "x86" ? [hugeBytes / 4096 + 1] : [hugeBytes / 4096]; // 4 KiB bitmap units
      expect(read(1)).toEqual({ n: 2, set: [...all, ...small] });
      expect(read()).toEqual({ n: 2, set: [...all, ...small] });
      expect(read()).toEqual({ n: 0, set: [] });
      // Cleared bits are set again by the next write, IOTLB or not.
      expect(x.dma_write(dom, lo(A + 7), hi(A), e.src, 1)).toBe(0);
      expect(read()).toEqual({ n: 1, set: all });
      // Reads never dirty.
      expect(x.dma_read(dom, lo(A), hi(A), e.dst + 2048, 64)).toBe(0);
      expect(read()).toEqual({ n: 0, set: [] });
      // The selftest's DIRTY op.
      expect(x.domain_mark_dirty(dom, lo(A + hugeBytes), hi(A), 1)).toBe(1);
      expect(read().set).toEqual([hugeBytes / 4096]);
    }
  });

  it("the fault ring keeps the newest FAULT_SLOTS records; lapped ones read as lost", async () => {
    const e = await env("x86");
    const { c, x } = e;
    const slots = c.consts.FAULT_SLOTS, head = x.fault_head();
    for (let i = 0; i < slots + 5; i++) expect(x.dma_read(0, i * 4096, 0, e.dst, 1)).toBe(EFAULT);
    expect(x.fault_head()).toBe(head + slots + 5);
    for (let i = 0; i < 5; i++) expect(x.fault_rec(head + i)).toBe(0);
    expect(faultsSince(c, head + 5).map((f) => f.iova)).toEqual(Array.from({ length: slots }, (_, i) => (i + 5) * 4096));
    expect(x.iotlb_attach(c.consts.WORKER_SLOTS)).toBe(-22);
  });

  it("dma_batch runs every descriptor in one call and writes each status", async () => {
    const e = await env("x86");
    const { c, x, dom } = e;
    const A = 0x10000000;
    expect(map(e, A, 0, 4, READ | WRITE)).toBe(0);
    expect(map(e, A + 0x4000, 0x4000, 1, READ)).toBe(0);
    for (let i = 0; i < 64; i++) c.u8[e.src + i] = 100 + i;
    const D = c.consts.DMA_DESC_SIZE, desc = e.dst + 0x10000;
    const put = (i: number, op: number, d: number, s: number, sHi: number, t: number, tHi: number, len: number) => {
      const w = (desc + i * D) >>> 2;
      c.u32.set([op, d, s, sHi, t, tHi, len, 0x7777], w);
    };
    const [RD, WR, CP] = [c.consts.DMA_OP_READ, c.consts.DMA_OP_WRITE, c.consts.DMA_OP_COPY];
    put(0, WR, dom, e.src, 0, A + 10, 0, 64);
    put(1, CP, dom, A + 10, 0, A + 0x3000, 0, 64);
    put(2, RD, dom, A + 0x3000, 0, e.dst, 0, 64);
    put(3, WR, dom, e.src, 0, A + 0x4000, 0, 8); // read-only: -EFAULT
    put(4, 99, dom, 0, 0, 0, 0, 8); // unknown op: -EINVAL
    put(5, RD, 0, A, 0, e.dst + 100, 0, 8); // blocking domain
    const head = x.fault_head();
    expect(x.dma_batch(desc, 6)).toBe(3);
    expect([0, 1, 2, 3, 4, 5].map((i) => c.i32[(desc + i * D + 28) >>> 2])).toEqual([0, 0, 0, EFAULT, -22, EFAULT]);
    expect([...c.u8.subarray(e.dst, e.dst + 64)]).toEqual([...c.u8.subarray(e.src, e.src + 64)]);
    expect(faultsSince(c, head).map((f) => [f.iova, f.write, f.reason])).toEqual([[A + 0x4000, true, PERM], [A, false, BLOCKED]]);
  });

  it("grace period: a DMA call is a read section unless its caller holds one", async () => {
    const e = await env("x86");
    const { c, x, dom } = e;
    const slot0 = c.consts.WORKER_BASE >>> 2;
    expect(c.u32[c.consts.HDR_GLOBAL_EPOCH >>> 2]).toBe(1);
    expect(map(e, 0, 0, 32, READ | WRITE)).toBe(0);
    expect(x.dma_write(dom, 0, 0, e.src, 200000)).toBe(EFAULT); // ends past the 32 pages
    expect(c.u32[slot0]).toBe(0);
    x.epoch_enter();
    const ep = x.epoch_advance() >>> 0;
    expect(x.epoch_quiescent(ep)).toBe(0); // slot 0 still at the old epoch
    expect(x.dma_write(dom, 0, 0, e.src, 200000)).toBe(EFAULT); // > 64 KiB: refreshes on the way
    expect(c.u32[slot0]).toBe(ep);
    expect(x.epoch_quiescent(ep)).toBe(-1);
    x.epoch_exit();
    expect(c.u32[slot0]).toBe(0);
  });

  it("a thread's last translations see an invalidation at its next stretch (an epoch refresh, or its next section), a reallocated handle at once", async () => {
    const e = await env("x86");
    const { c, x, dom } = e;
    const A = 0x40000000;
    expect(map(e, A, 0, 1, READ | WRITE)).toBe(0);
    expect(map(e, A + 0x1000, 0x1000, 1, READ | WRITE)).toBe(0);
    for (let i = 0; i < 64; i++) c.u8[e.host + i] = i + 1;
    x.epoch_enter();
    expect(x.dma_copy(dom, lo(A), hi(A), lo(A + 0x1000), hi(A), 64)).toBe(0);
    // The raw unmap clears the leaf and bumps the counter; its caller's grace period would
    // now wait for this stretch, in which the thread may still use what it loaded.
    expect(x.domain_unmap(dom, lo(A), hi(A), 1)).toBe(1);
    expect(x.epoch_quiescent(x.epoch_advance() >>> 0)).toBe(0);
    expect(x.dma_copy(dom, lo(A), hi(A), lo(A + 0x1000), hi(A), 64)).toBe(0);
    // A refresh ends the stretch: the next transfer translates afresh and faults.
    x.epoch_enter();
    let head = x.fault_head();
    expect(x.dma_copy(dom, lo(A), hi(A), lo(A + 0x1000), hi(A), 64)).toBe(EFAULT);
    expect(faultsSince(c, head)).toEqual([{ iova: A, write: false, reason: UNMAPPED, dom, serial: x.domain_serial(dom), slot: 0 }]);
    x.epoch_exit();
    // Outside a section every call is its own: a remap serves the next one, an unmap stops it.
    expect(map(e, A, 0x2000, 1, READ)).toBe(0);
    c.u8[e.host + 0x2000] = 0x5a;
    expect(x.dma_copy(dom, lo(A), hi(A), lo(A + 0x1000), hi(A), 1)).toBe(0);
    expect(c.u8[e.host + 0x1000]).toBe(0x5a);
    expect(x.domain_unmap(dom, lo(A), hi(A), 1)).toBe(1);
    head = x.fault_head();
    expect(x.dma_copy(dom, lo(A), hi(A), lo(A + 0x1000), hi(A), 1)).toBe(EFAULT);
    expect(faultsSince(c, head).map((f) => [f.iova, f.reason])).toEqual([[A, UNMAPPED]]);
    // A handle freed and allocated again names the new domain.
    const serial = x.domain_serial(dom);
    expect(x.domain_free(dom)).toBe(0);
    // A dead handle is blocked, and not remembered: allocated again (which waits for no one),
    // it serves the next transfer of the same stretch.
    x.epoch_enter();
    head = x.fault_head();
    expect(x.dma_copy(dom, lo(A), hi(A), lo(A + 0x1000), hi(A), 1)).toBe(EFAULT);
    expect(faultsSince(c, head).map((f) => [f.iova, f.reason])).toEqual([[A, BLOCKED]]);
    c.u32[c.consts.HDR_DOMAIN_HINT >>> 2] = (dom - c.consts.DOMAIN_BASE) / c.consts.DOMAIN_STRIDE; // reuse at once
    expect(x.domain_alloc(c.consts.IOPT_X86, 0) >>> 0).toBe(dom);
    expect(x.domain_serial(dom)).toBe(serial + 1);
    expect(map(e, A, 0x3000, 1, READ)).toBe(0);
    expect(map(e, A + 0x1000, 0x1000, 1, READ | WRITE)).toBe(0);
    c.u8[e.host + 0x3000] = 0xa5;
    expect(x.dma_copy(dom, lo(A), hi(A), lo(A + 0x1000), hi(A), 1)).toBe(0);
    x.epoch_exit();
    expect(c.u8[e.host + 0x1000]).toBe(0xa5);
  });

  it("grace period: the kernel waits for a thread in any attached slot, the highest too", async () => {
    const e = await env("x86");
    const { c, x } = e;
    const high = () => c.u32[c.consts.HDR_WORKER_HIGH >>> 2];
    // Nothing attached yet: only slot 0 can be busy.
    expect(high()).toBe(0);
    const last = c.consts.WORKER_SLOTS - 1;
    const w = await Core.attach(c.init());
    expect(w.x.iotlb_attach(last)).toBe(0);
    expect(high()).toBe(last + 1);
    // A later attach to a lower slot keeps the mark where it is.
    const v = await Core.attach(c.init());
    expect(v.x.iotlb_attach(3)).toBe(0);
    expect(high()).toBe(last + 1);
    w.x.epoch_enter();
    const ep = x.epoch_advance() >>> 0;
    expect(x.epoch_quiescent(ep)).toBe(last);
    w.x.epoch_exit();
    v.x.epoch_enter();
    const ep2 = x.epoch_advance() >>> 0;
    expect(x.epoch_quiescent(ep2)).toBe(3);
    v.x.epoch_exit();
    expect(x.epoch_quiescent(ep2)).toBe(-1);
  });
});

describe("runs: one translation and one copy over contiguous leaves", () => {
  const slot0 = (c: Core) => c.u32[c.consts.WORKER_BASE >>> 2];
  for (const fmt of ["x86", "mock"] as const) {
    it(`${fmt}: a transfer that meets a page unmapped in the middle of a cached run faults at exactly that page, in every thread`, async () => {
      const e = await env(fmt);
      const { c, x, dom, ps } = e;
      const A = fmt === "x86" ? 0x10000000 : 0x2000000;
      const n = 32, len = n * ps;
      expect(map(e, A, 0, n, READ | WRITE)).toBe(0); // physically contiguous: one run
      const w = await Core.attach(c.init());
      expect(w.x.iotlb_attach(1)).toBe(0);
      // Both threads cache the whole run, for reads and for writes.
      for (const k of [c, w]) {
        expect(k.x.dma_read(dom, lo(A), hi(A), e.dst, len)).toBe(0);
        expect(k.x.dma_write(dom, lo(A), hi(A), e.dst, len)).toBe(0);
      }
      expect(x.iotlb_translate(dom, lo(A + ps), hi(A), 1)).toBe(0);
      expect(x.iotlb_avail()).toBe(len - ps); // the cached entry covers the run, not one leaf
      const hole = 13;
      const un = fmt === "x86" ? x.domain_unmap(dom, lo(A + hole * ps), hi(A), 1) : 0;
      if (fmt === "mock") {
        // The mock unmaps only whole map calls: remap as three calls, contiguous as before.
        expect(x.domain_unmap(dom, lo(A), hi(A), n)).toBe(n);
        expect(map(e, A, 0, hole, READ | WRITE)).toBe(0);
        expect(map(e, A + (hole + 1) * ps, (hole + 1) * ps, n - hole - 1, READ | WRITE)).toBe(0);
      } else {
        expect(un).toBe(1);
      }
      for (const [k, slot] of [[w, 1], [c, 0]] as const) {
        c.u8.fill(0x5a, e.src, e.src + len);
        c.u8.fill(0, e.host, e.host + len);
        const head = x.fault_head();
        expect(k.x.dma_write(dom, lo(A), hi(A), e.src, len)).toBe(EFAULT);
        expect(faultsSince(c, head)).toEqual([{ iova: A + hole * ps, write: true, reason: UNMAPPED, dom, serial: x.domain_serial(dom), slot }]);
        // Exactly the bytes before the hole moved.
        expect(c.u8.subarray(e.host, e.host + hole * ps).every((b) => b === 0x5a)).toBe(true);
        expect(c.u8.subarray(e.host + hole * ps, e.host + len).every((b) => b === 0)).toBe(true);
        // A copy whose source run holds the hole: the source faults there, the bytes before moved.
        c.u8.fill(0xee, e.host, e.host + len);
        const B = A + 64 * ps;
        if (slot === 1) expect(map(e, B, 64 * ps, n, READ | WRITE)).toBe(0);
        c.u8.fill(0, e.host + 64 * ps, e.host + 64 * ps + len);
        const h2 = x.fault_head();
        expect(k.x.dma_copy(dom, lo(A), hi(A), lo(B), hi(B), len)).toBe(EFAULT);
        expect(faultsSince(c, h2)).toMatchObject([{ iova: A + hole * ps, write: false, reason: UNMAPPED, slot }]);
        expect(c.u8.subarray(e.host + 64 * ps, e.host + 64 * ps + hole * ps).every((b) => b === 0xee)).toBe(true);
        expect(c.u8.subarray(e.host + 64 * ps + hole * ps, e.host + 64 * ps + len).every((b) => b === 0)).toBe(true);
      }
    });
  }

  it("a run never crosses into leaves with other permissions, other physical pages or a hole", async () => {
    const e = await env("x86");
    const { c, x, dom } = e;
    const A = 0x20000000;
    expect(map(e, A, 0, 4, READ | WRITE)).toBe(0);
    expect(map(e, A + 0x4000, 0x4000, 4, READ)).toBe(0); // physically contiguous, read-only
    expect(map(e, A + 0x8000, 0x20000, 4, READ | WRITE)).toBe(0); // physically elsewhere
    // Reads go through all 12 leaves, but as three runs.
    for (let i = 0; i < 12 * 4096; i++) c.u8[e.host + (i < 0x8000 ? i : 0x20000 + i - 0x8000)] = (i * 13) & 0xff;
    expect(x.dma_read(dom, lo(A), hi(A), e.dst, 12 * 4096)).toBe(0);
    for (let i = 0; i < 12 * 4096; i += 997) expect(c.u8[e.dst + i]).toBe((i * 13) & 0xff);
    for (const [at, avail] of [[A, 0x4000], [A + 0x4000, 0x4000], [A + 0x8000, 0x4000]]) {
      expect(x.iotlb_translate(dom, lo(at), hi(at), 0)).toBe(0);
      expect(x.iotlb_avail()).toBe(avail);
    }
    // A write stops at the first read-only leaf, after exactly the bytes of the writable run.
    c.u8.fill(0x77, e.src, e.src + 0x8000);
    const head = x.fault_head();
    expect(x.dma_write(dom, lo(A + 0x100), hi(A), e.src, 0x7000)).toBe(EFAULT);
    expect(faultsSince(c, head)).toMatchObject([{ iova: A + 0x4000, write: true, reason: PERM }]);
    expect(c.u8[e.host + 0xff]).toBe((0xff * 13) & 0xff);
    expect(c.u8.subarray(e.host + 0x100, e.host + 0x4000).every((b) => b === 0x77)).toBe(true);
    expect(c.u8[e.host + 0x4000]).toBe((0x4000 * 13) & 0xff);
    // Past the last leaf: unmapped, exactly at its end.
    const h2 = x.fault_head();
    expect(x.dma_read(dom, lo(A + 0x8000), hi(A), e.dst, 0x8000)).toBe(EFAULT);
    expect(faultsSince(c, h2)).toMatchObject([{ iova: A + 0xc000, write: false, reason: UNMAPPED }]);
  });

  it("dirty tracking: a run sets the dirty bit of every leaf it writes, and only those", async () => {
    for (const fmt of ["x86", "mock"] as const) {
      const e = await env(fmt);
      const { c, x, dom, ps } = e;
      const A = fmt === "x86" ? 0x40000000 : 0x3000000;
      const n = 16;
      expect(map(e, A, 0, n, READ | WRITE)).toBe(0);
      expect(x.dma_read(dom, lo(A), hi(A), e.dst, n * ps)).toBe(0); // caches a run (not tracking)
      expect(x.domain_set_dirty_tracking(dom, 1)).toBe(0);
      const bm = e.dst + 0x80000;
      const read = () => {
        c.u8.fill(0, bm, bm + 64);
        x.domain_read_and_clear_dirty(dom, lo(A), hi(A), n, bm, Math.log2(ps), 0);
        const set: number[] = [];
        for (let i = 0; i < n; i++) if (c.u8[bm + (i >> 3)] & (1 << (i & 7))) set.push(i);
        return set;
      };
      expect(x.dma_write(dom, lo(A + 2 * ps + 5), hi(A), e.src, 3 * ps)).toBe(0); // leaves 2..5
      expect(read()).toEqual([2, 3, 4, 5]);
      // All leaves dirty: a write may use one run; after read-and-clear it must set bits again.
      expect(x.domain_mark_dirty(dom, lo(A), hi(A), n)).toBe(n);
      expect(x.dma_write(dom, lo(A), hi(A), e.src, n * ps)).toBe(0);
      expect(read()).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(x.dma_write(dom, lo(A + 9 * ps), hi(A), e.src, 2 * ps)).toBe(0);
      expect(read()).toEqual([9, 10]);
      // A copy: only the destination's leaves.
      expect(x.dma_copy(dom, lo(A), hi(A), lo(A + 12 * ps), hi(A), ps + 1)).toBe(0);
      expect(read()).toEqual([12, 13]);
      expect(read()).toEqual([]);
    }
  });

  it("a transfer over one long run still refreshes the grace-period epoch every 64 KiB", async () => {
    const e = await env("x86");
    const { c, x, dom } = e;
    expect(map(e, 0, 0, 256, READ | WRITE)).toBe(0); // 1 MiB, one run
    expect(x.dma_read(dom, 0, 0, e.dst, 4096)).toBe(0);
    x.epoch_enter();
    const ep = x.epoch_advance() >>> 0;
    expect(x.epoch_quiescent(ep)).toBe(0);
    for (let i = 0; i < 0x70000; i += 4) c.u32[(e.host + i) >>> 2] = i * 2654435761;
    expect(x.dma_copy(dom, 0, 0, lo(0x80000), 0, 0x70000)).toBe(0); // > 64 KiB, no fault
    expect(slot0(c)).toBe(ep);
    expect(Buffer.compare(Buffer.from(c.u8.buffer, e.host, 0x70000), Buffer.from(c.u8.buffer, e.host + 0x80000, 0x70000))).toBe(0);
    expect(x.epoch_quiescent(ep)).toBe(-1);
    x.epoch_exit();
  });
});

/**
 * Random map / unmap / DMA read, write, copy against the model: a Map of runs for the
 * translation and a shadow of the physical block for the bytes.
 */
function property(fmt: "x86" | "mock" | "mock-huge", seed: number, ops: number) {
  it(`${fmt}: ${ops} random operations move exactly the bytes the model predicts (seed ${seed})`, async () => {
    const e = await env(fmt);
    const { c, x, dom, ps } = e;
    const rnd = prng(seed);
    const model = new Model();
    const shadow = new Uint8Array(e.block);
    const x86 = fmt === "x86";
    const big = 512; // a huge leaf in IO pages: 2 MiB (x86) or 1 MiB (mock)
    const winStart = x86 ? 0x1000000000 / ps : 0x1000000 / ps;
    const winPages = (64 * MiB) / ps;
    const blockPages = e.block / ps;
    const physPage0 = e.physBase / ps;
    const stats = { map: 0, hugeMaps: 0, unmap: 0, write: 0, read: 0, copy: 0, faults: 0, bytes: 0, skipped: 0 };

    type Seg = { off: number; phys: number; n: number }; // phys: byte offset in the block
    const plan = (iova: number, len: number, write: boolean) => {
      const segs: Seg[] = [];
      let off = 0;
      while (off < len) {
        const a = iova + off;
        if (!x86 && (a < 0x1000000 || a > 0x7fffffff)) return { segs, f: off, reason: RANGE };
        const t = model.translate(Math.floor(a / ps));
        if (!t) return { segs, f: off, reason: UNMAPPED };
        if (!(t.prot & (write ? WRITE : READ))) return { segs, f: off, reason: PERM };
        const n = Math.min(ps - (a % ps), len - off);
        segs.push({ off, phys: (t.phys - physPage0) * ps + (a % ps), n });
        off += n;
      }
      return { segs, f: len, reason: 0 };
    };
    const pickIova = (len: number) => {
      if (model.runs.length && rnd.next() < 0.85) {
        const r = rnd.pick(model.runs);
        return r.start * ps + rnd.int(r.n * ps) - (rnd.next() < 0.1 ? rnd.int(64) : 0);
      }
      return winStart * ps + rnd.int(winPages * ps - len) - (!x86 && rnd.next() < 0.05 ? 4096 : 0);
    };
    const pickLen = () => {
      const k = rnd.next();
      return k < 0.7 ? 1 + rnd.int(3 * ps) : k < 0.95 ? 1 + rnd.int(64 * 1024) : 1 + rnd.int(600 * 1024);
    };
    const fillSrc = (len: number) => {
      const w = new Uint32Array(c.u8.buffer, e.src, Math.ceil(len / 4));
      for (let i = 0; i < w.length; i++) w[i] = (rnd.next() * 2 ** 32) >>> 0;
    };
    const expectFault = (head: number, f: number, len: number, iova: number, write: boolean, reason: number) => {
      const got = faultsSince(c, head);
      if (f === len) { expect(got).toEqual([]); return; }
      stats.faults++;
      expect(got).toMatchObject([{ iova: iova + f, write, reason }]);
    };
    const same = (physOff: number, n: number) => {
      const a = Buffer.from(c.u8.buffer, e.host + physOff, n);
      expect(Buffer.compare(a, Buffer.from(shadow.buffer, physOff, n)), `phys +0x${physOff.toString(16)}`).toBe(0);
    };

    for (let op = 0; op < ops; op++) {
      const k = rnd.next();
      if (k < 0.25) {
        let start: number, n: number, phys: number;
        const huge = rnd.next() < 0.6;
        if (rnd.next() < 0.35) {
          start = winStart + big * rnd.int(winPages / big - 4);
          n = big * (1 + rnd.int(2)) + rnd.int(3);
          phys = physPage0 + big * rnd.int(blockPages / big - 4);
        } else {
          start = winStart + rnd.int(winPages - 64);
          n = 1 + rnd.int(32);
          phys = physPage0 + rnd.int(blockPages - 64);
        }
        const prot = rnd.pick([READ, WRITE, READ | WRITE, READ | WRITE, READ | WRITE]);
        const rc = x.domain_map(dom, lo(start * ps), hi(start * ps), phys, n, prot, huge ? 1 : 0);
        if (model.overlaps(start, n)) expect(rc).toBe(-17);
        else {
          expect(rc).toBe(0);
          model.add({ start, n, phys, prot, huge });
          stats.map++;
          if (2 ** ((x.domain_lookup(dom, lo(start * ps), hi(start * ps)) >>> 4) & 31) > ps) stats.hugeMaps++;
        }
      } else if (k < 0.35 && model.runs.length) {
        // whole runs only: valid for every format
        const i = rnd.int(model.runs.length);
        const j = Math.min(model.runs.length - 1, i + rnd.int(3));
        const start = model.runs[i].start, n = model.runs[j].start + model.runs[j].n - start;
        expect(x.domain_unmap(dom, lo(start * ps), hi(start * ps), n)).toBe(model.remove(start, n));
        stats.unmap++;
      } else if (k < 0.6) {
        const len = pickLen(), iova = pickIova(len);
        fillSrc(len);
        const p = plan(iova, len, true);
        const head = x.fault_head();
        expect(x.dma_write(dom, lo(iova), hi(iova), e.src, len)).toBe(p.f === len ? 0 : EFAULT);
        expectFault(head, p.f, len, iova, true, p.reason);
        for (const s of p.segs) shadow.set(c.u8.subarray(e.src + s.off, e.src + s.off + s.n), s.phys);
        for (const s of p.segs) same(s.phys, s.n);
        stats.write++; stats.bytes += p.f;
      } else if (k < 0.8) {
        const len = pickLen(), iova = pickIova(len);
        c.u8.fill(0xee, e.dst, e.dst + len + 16);
        const p = plan(iova, len, false);
        const head = x.fault_head();
        expect(x.dma_read(dom, lo(iova), hi(iova), e.dst, len)).toBe(p.f === len ? 0 : EFAULT);
        expectFault(head, p.f, len, iova, false, p.reason);
        const want = new Uint8Array(len + 16).fill(0xee);
        for (const s of p.segs) want.set(shadow.subarray(s.phys, s.phys + s.n), s.off);
        expect(Buffer.compare(Buffer.from(c.u8.buffer, e.dst, len + 16), Buffer.from(want.buffer))).toBe(0);
        stats.read++; stats.bytes += p.f;
      } else {
        const len = pickLen(), from = pickIova(len), to = pickIova(len);
        const ps_ = plan(from, len, false), pd = plan(to, len, true);
        const f = Math.min(ps_.f, pd.f);
        // Overlapping physical ranges would make chunk order matter: leave those out.
        const spans = (p: { segs: Seg[] }) => p.segs.filter((s) => s.off < f).map((s) => [s.phys, s.phys + Math.min(s.n, f - s.off)]);
        const a = spans(ps_), b = spans(pd);
        if (a.some(([a0, a1]) => b.some(([b0, b1]) => a0 < b1 && b0 < a1))) { stats.skipped++; continue; }
        const head = x.fault_head();
        expect(x.dma_copy(dom, lo(from), hi(from), lo(to), hi(to), len)).toBe(f === len ? 0 : EFAULT);
        if (f < len) {
          const srcFirst = ps_.f === f;
          expectFault(head, f, len, srcFirst ? from : to, !srcFirst, srcFirst ? ps_.reason : pd.reason);
        } else {
          expectFault(head, len, len, 0, false, 0);
        }
        const bytes = new Uint8Array(f);
        for (const s of ps_.segs) if (s.off < f) bytes.set(shadow.subarray(s.phys, s.phys + Math.min(s.n, f - s.off)), s.off);
        for (const s of pd.segs) if (s.off < f) shadow.set(bytes.subarray(s.off, Math.min(s.off + s.n, f)), s.phys);
        for (const s of pd.segs) if (s.off < f) same(s.phys, Math.min(s.n, f - s.off));
        stats.copy++; stats.bytes += f;
      }
      expect(x.domain_mapped_pages(dom)).toBe(model.pages());
      if (op % 500 === 499) same(0, e.block);
    }
    same(0, e.block);
    if (process.env.DBG) console.log(fmt, JSON.stringify(stats));
    expect(stats.faults).toBeGreaterThan(ops / 20);
    if (fmt !== "mock") expect(stats.hugeMaps).toBeGreaterThan(10); // tables left by earlier 4 KiB maps stay, so not more
    expect(stats.bytes).toBeGreaterThan(ops * 1000);
    const free0 = c.freeFrames + x.domain_tables(dom);
    expect(x.domain_free(dom)).toBe(0);
    expect(c.freeFrames).toBe(free0);
  });
}

describe("property: DMA through a domain against a reference model", () => {
  property("x86", 11, 3000);
  property("mock", 12, 3000);
  property("mock-huge", 13, 3000);
});

describe("statistics build (build/core-stats.wasm)", () => {
  const path = new URL("../build/core-stats.wasm", import.meta.url);
  it.runIf(existsSync(path))("counts last-translation hits, IOTLB hits, misses, walks and faults", async () => {
    const pages = (64 * MiB) / WASM_PAGE;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const c = await Core.attach({ module: await WebAssembly.compile(readFileSync(path)), memory }, false);
    expect(c.x.frames_init(pages)).toBe(0);
    const x = c.x;
    expect(c.consts.STATS_ENABLED).toBe(1);
    const f = x.frame_alloc(4) >>> 0;
    const dom = x.domain_alloc(c.consts.IOPT_X86, 0) >>> 0;
    expect(x.domain_map(dom, 0, 1, f, 16, READ, 0)).toBe(0); // one run of 16 contiguous leaves
    expect(x.domain_map(dom, 0x100000, 1, f, 1, READ, 0)).toBe(0); // an alias elsewhere
    const buf = c.poolBase + f * 4096;
    expect(x.dma_read(dom, 0, 1, buf, 3 * 4096)).toBe(0); // 1 miss + walk: the run covers all 3 leaves
    expect(x.dma_read(dom, 0x2000, 1, buf, 8)).toBe(0); // last-translation hit (same run)
    expect(x.dma_read(dom, 0x100000, 1, buf, 8)).toBe(0); // miss + walk
    expect(x.dma_read(dom, 0x0000, 1, buf, 8)).toBe(0); // IOTLB hit
    expect(x.dma_read(dom, 0x10000, 1, buf, 8)).toBe(EFAULT); // past the run: miss + walk + fault
    const s = (n: keyof CoreConstants) => x.stat_read(c.consts[n]);
    const counts = () => [s("STAT_IOTLB_LAST_HITS"), s("STAT_IOTLB_HITS"), s("STAT_IOTLB_MISSES"), s("STAT_IOTLB_WALKS"), s("STAT_DMA_FAULTS")];
    expect(counts()).toEqual([1, 1, 3, 3, 1]);
    // A copy: the source hits the last read translation, the destination misses (one hit
    // counted, not one per try); the same copy again hits on both ends.
    expect(x.domain_map(dom, 0x200000, 1, f + 4, 1, READ | WRITE, 0)).toBe(0);
    expect(x.dma_copy(dom, 0, 1, 0x200000, 1, 8)).toBe(0);
    expect(counts()).toEqual([2, 1, 4, 4, 1]);
    expect(x.dma_copy(dom, 0, 1, 0x200000, 1, 8)).toBe(0);
    expect(counts()).toEqual([4, 1, 4, 4, 1]);
  });
  it("the default build has statistics compiled out", async () => {
    const c = await Core.boot(32 * MiB);
    expect(c.consts.STATS_ENABLED).toBe(0);
  });
});
