// The buddy frame allocator and per-frame reference counts (assembly/frames.ts), driven
// directly through the core.
import { describe, it, expect } from "vitest";
import { Core, FRAME_NONE } from "../src/wasm/core.js";

const MiB = 1024 * 1024;
const NONE = 0xffffffff;

async function boot(bytes = 64 * MiB): Promise<Core> {
  return Core.boot(bytes);
}

describe("frames", () => {
  it("lays out a 2 MiB-aligned pool after the fixed area and metadata", async () => {
    const c = await boot();
    expect(c.poolBase % (2 * MiB)).toBe(0);
    expect(c.poolBase).toBeGreaterThanOrEqual(c.consts.FIXED_END + c.poolFrames * 13);
    expect(c.poolBase + c.poolFrames * 4096).toBeLessThanOrEqual(64 * MiB);
    expect(c.freeFrames).toBe(c.poolFrames);
  });

  it("refuses a memory too small for the map", async () => {
    await expect(Core.boot(8 * MiB)).rejects.toThrow(RangeError);
  });

  it("hands out naturally aligned blocks, zeroed, with refcount 1 per frame", async () => {
    const c = await boot();
    const x = c.x;
    const f0 = x.frame_alloc(0) >>> 0;
    const f9 = x.frame_alloc(9) >>> 0;
    expect(f0).not.toBe(NONE);
    expect(f9 % 512).toBe(0);
    for (const f of [f0, f9, f9 + 511]) expect(x.frame_refcount(f)).toBe(1);
    expect(x.frame_order(f9 + 100)).toBe(9);
    // Dirty a frame, free it, take it again: it comes back zeroed.
    const at = c.poolBase + f0 * 4096;
    c.u8.fill(0xab, at, at + 4096);
    expect(x.frame_put(f0)).toBe(1);
    const again = x.frame_alloc(0) >>> 0;
    expect(again).toBe(f0);
    expect(c.u8.subarray(at, at + 4096).every((b) => b === 0)).toBe(true);
  });

  it("frees a compound block only when every frame of it is released", async () => {
    const c = await boot();
    const x = c.x;
    const before = c.freeFrames;
    const f = x.frame_alloc(9) >>> 0;
    expect(c.freeFrames).toBe(before - 512);
    x.frame_get(f + 3); // a pin on one 4 KiB piece
    for (let i = 0; i < 512; i++) expect(x.frame_put(f + i)).toBe(0);
    expect(x.frame_refcount(f + 3)).toBe(1);
    expect(c.freeFrames).toBe(before - 512);
    expect(x.frame_put(f + 3)).toBe(1);
    expect(c.freeFrames).toBe(before);
  });

  it("merges buddies back so a large block can be had again", async () => {
    const c = await boot();
    const x = c.x;
    const small: number[] = [];
    for (let i = 0; i < 1024; i++) small.push(x.frame_alloc(0) >>> 0);
    for (const f of small) x.frame_put(f);
    // Everything merged: the whole pool is free again, and an order-10 block is available.
    expect(c.freeFrames).toBe(c.poolFrames);
    const big = x.frame_alloc(10) >>> 0;
    expect(big).not.toBe(NONE);
    expect(big % 1024).toBe(0);
  });

  it("returns FRAME_NONE when exhausted, and recovers after frees", async () => {
    const c = await boot(32 * MiB);
    const x = c.x;
    const got: number[] = [];
    for (;;) {
      const f = x.frame_alloc(4) >>> 0;
      if (f === NONE) break;
      got.push(f);
    }
    expect(c.freeFrames).toBeLessThan(16);
    expect(x.frame_alloc(18) >>> 0).toBe(NONE);
    // The host side's name for it is the core's own.
    expect(FRAME_NONE).toBe(c.consts.FRAME_NONE);
    for (const f of got) for (let i = 0; i < 16; i++) x.frame_put(f + i);
    expect(c.freeFrames).toBe(c.poolFrames);
  });

  it("takes a 1 GiB frame when the pool holds an aligned one", async () => {
    const c = await boot(1536 * MiB);
    const f = c.x.frame_alloc(18) >>> 0;
    expect(f).not.toBe(NONE);
    expect(f % 262144).toBe(0);
    expect(c.x.frame_alloc(18) >>> 0).toBe(NONE);
  });

  it("fail_point: the nth allocation fails, once", async () => {
    const c = await boot();
    Atomics.store(c.i32, c.consts.HDR_FAIL_NTH >>> 2, 3);
    expect(c.x.frame_alloc(0) >>> 0).not.toBe(NONE);
    expect(c.x.frame_alloc(0) >>> 0).not.toBe(NONE);
    expect(c.x.frame_alloc(0) >>> 0).toBe(NONE);
    expect(c.x.frame_alloc(0) >>> 0).not.toBe(NONE);
  });
});
