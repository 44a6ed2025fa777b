// The 4-level radix page table (assembly/radix.ts) that backs every process's address space.
import { describe, it, expect } from "vitest";
import { Core } from "../src/wasm/core.js";

const PTE_W = 2;
const NONE = 0xffffffff;

describe("radix page table", () => {
  it("installs, looks up and removes 4 KiB, 2 MiB and 1 GiB leaves", async () => {
    const c = await Core.boot(1536 * 1024 * 1024);
    const x = c.x;
    const root = x.radix_alloc_root() >>> 0;
    const free0 = c.freeFrames;
    const f4k = x.frame_alloc(0) >>> 0;
    const f2m = x.frame_alloc(9) >>> 0;
    const f1g = x.frame_alloc(18) >>> 0;
    expect([f4k, f2m, f1g]).not.toContain(NONE);

    const va4k = 0x7f0000001000, va2m = 0x7f0000200000, va1g = 0x7e0000000000 + 0x40000000;
    expect(x.radix_install(root, va4k, f4k * 4096, PTE_W, 1)).toBe(0);
    expect(x.radix_install(root, va2m, f2m * 4096, 0, 2)).toBe(0);
    expect(x.radix_install(root, va1g, f1g * 4096, PTE_W, 3)).toBe(0);

    // leaf word: physical 4 KiB page | P | W | level << 9
    expect(x.radix_lookup(root, va4k + 123) >>> 0).toBe(f4k * 4096 | 1 | 2 | 1 << 9);
    expect(x.radix_lookup(root, va2m + 5 * 4096 + 7) >>> 0).toBe((f2m + 5) * 4096 | 1 | 2 << 9);
    expect(x.radix_lookup(root, va1g + 0x12345678) >>> 0).toBe(((f1g * 4096 + 0x12345000) | 1 | 2 | 3 << 9) >>> 0);
    expect(x.radix_lookup(root, va4k + 4096)).toBe(0);
    expect(x.radix_lookup(root, 0x1000)).toBe(0);

    // Occupied slot or a huge leaf in the way: EEXIST.
    expect(x.radix_install(root, va4k, f4k * 4096, 0, 1)).toBe(-17);
    expect(x.radix_install(root, va2m + 4096, f4k * 4096, 0, 1)).toBe(-17);

    expect(x.radix_protect(root, va4k, 0)).toBe(0);
    expect(x.radix_lookup(root, va4k) & PTE_W).toBe(0);
    expect(x.radix_protect(root, 0x5000, 1)).toBe(-14);

    expect(x.radix_remove(root, va4k, 1) >>> 0).toBe(f4k * 4096 | 1 | 1 << 9);
    expect(x.radix_remove(root, va4k, 1)).toBe(0);
    expect(x.radix_lookup(root, va4k)).toBe(0);

    // Tearing down frees the table frames (the leaves belong to their owners).
    x.radix_remove(root, va2m, 2);
    x.radix_remove(root, va1g, 3);
    for (const [f, n] of [[f4k, 1], [f2m, 512], [f1g, 262144]]) for (let i = 0; i < n; i++) x.frame_put(f + i);
    x.radix_destroy(root);
    expect(c.freeFrames).toBe(free0 + 1);
  });

  it("reports ENOMEM when a table frame cannot be had", async () => {
    const c = await Core.boot(32 * 1024 * 1024);
    const x = c.x;
    const root = x.radix_alloc_root() >>> 0;
    Atomics.store(c.i32, c.consts.HDR_FAIL_NTH >>> 2, 1);
    expect(x.radix_install(root, 0x400000000, 0, 0, 1)).toBe(-12);
    expect(x.radix_install(root, 0x400000000, 0, 0, 1)).toBe(0);
  });
});
