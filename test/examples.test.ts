// The runnable examples/ (named in the README): each runs as a user would run it, importing the
// package by its name, and prints exactly what it says it does.
import { describe, it, expect } from "vitest";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const run = async (file: string) =>
  (await promisify(execFile)(process.execPath, [`examples/${file}`], { cwd: root, timeout: 20_000 })).stdout;

describe("examples", () => {
  it("raw.mjs: struct bytes by hand, >= 0 or -errno", async () => {
    expect(await run("raw.mjs")).toBe([
      "IOMMU_IOAS_ALLOC -> 0",
      "out_ioas_id = 1",
      "IOMMU_IOAS_MAP at 0x100000 -> 0",
      "IOMMU_IOAS_MAP over it again -> -17 (-EEXIST)",
      "close -> 0",
      "",
    ].join("\n"));
  });

  it("typed.mjs: the cdev sequence with the typed layer, ending in a fault and a VfioError", async () => {
    expect(await run("typed.mjs")).toBe([
      "bound: devid 2",
      "attached: hwpt 3",
      "device writes: 0",
      'the process sees "hello"',
      "device reads after unmap: -14 (unmapped)",
      "IOMMU_IOAS_UNMAP ENOENT (errno 2)",
      "",
    ].join("\n"));
  });

  it("dma-bench.mjs: DMA through the IOMMU from a worker against plain copies, medians, the copy checked", async () => {
    const out = await run("dma-bench.mjs");
    const lines = out.split("\n");
    expect(lines[0]).toBe("copied 4 MiB through the IOMMU in 64 KiB descriptors, 7 trials each; destination matches source: yes");
    const dma = /^device DMA \(dmaRead \+ dmaWrite, translated\): (\d+\.\d\d) GB\/s median$/.exec(lines[1]);
    const plain = /^baseline \(the same copies, plain memory\): {3}(\d+\.\d\d) GB\/s median$/.exec(lines[2]);
    const ratio = /^ratio: (\d+\.\d{3}) of the baseline$/.exec(lines[3]);
    expect(dma && plain && ratio, out).toBeTruthy();
    for (const m of [dma!, plain!, ratio!]) expect(Number(m[1])).toBeGreaterThan(0);
    // The ratio is of the unrounded medians; the GB/s lines round them.
    expect(Math.abs(Number(ratio![1]) - Number(dma![1]) / Number(plain![1]))).toBeLessThan(0.02 + 0.01 / Number(plain![1]));
    expect(lines.slice(4)).toEqual([""]);
  });

  it("worker-dma.mjs: a worker thread's device DMA lands in the process's buffer", async () => {
    expect(await run("worker-dma.mjs")).toBe("the worker's device moved 1048576 bytes; the last ones read 5a 5a 5a 5a\n");
  });
});
