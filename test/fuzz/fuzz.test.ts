// The fuzzer in CI (issue 14): >= 10^5 operations over several seeds with zero invariant
// violations, and checks that the fuzzer itself can fail: a planted leak is caught and
// minimised to the one operation that planted it. Longer runs: npm run fuzz -- --seeds 1,2,3 --ops 100000.

import { describe, expect, it } from "vitest";
import { O_RDWR, type Kernel, type Process } from "../../src/index.js";
import { generate, minimise, modeOf, run, signature, validReturn, type Op } from "./fuzzer.js";

const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
const OPS = 10_000;

describe("fuzz: the raw layer under random operations", () => {
  const calls = new Map<string, number>();
  let total = 0;
  for (const seed of SEEDS) {
    it(`seed ${seed} (${modeOf(seed)}): ${OPS} operations, no invariant violated`, async () => {
      const r = await run(generate(seed, OPS), { vfioContainer: modeOf(seed) });
      const v = r.violations[0];
      // A failure names the seed, the operation and a minimised list to replay.
      if (v) {
        const min = await minimise(generate(seed, OPS), signature(v), 150, { vfioContainer: modeOf(seed) });
        expect.fail(`seed ${seed}: ${v.detail} at op ${v.index} ${JSON.stringify(v.op)}${v.stack ? ` (${v.stack})` : ""}\nminimised: ${JSON.stringify(min)}`);
      }
      expect(r.ops).toBe(OPS);
      total += r.ops;
      for (const [name, c] of r.calls) calls.set(name, (calls.get(name) ?? 0) + c.ok);
    }, 120_000);
  }

  it("the seeds together reach deep states: these calls succeeded at least once", () => {
    expect(total).toBeGreaterThanOrEqual(100_000);
    for (const name of [
      "IOMMU_IOAS_ALLOC", "IOMMU_IOAS_MAP", "IOMMU_IOAS_UNMAP", "IOMMU_FAULT_QUEUE_ALLOC", "IOMMU_DESTROY", "setup:BIND",
      "VFIO_DEVICE_ATTACH_IOMMUFD_PT", "VFIO_DEVICE_DETACH_IOMMUFD_PT", "VFIO_GROUP_SET_CONTAINER", "IOMMU_IOAS_MAP_FILE",
      "setup:ATTACH", "setup:IOAS_MAP", "setup:MAP_DMA", "setup:MOCK_DOMAIN", "VFIO_DEVICE_SET_IRQS", "VFIO_DEVICE_GET_REGION_INFO",
      "VFIO_IOMMU_UNMAP_DMA", "mmap", "mmap:file", "fork", "kill", "unplug", "replug", "mmio", "ioat:done", "dma:read",
    ]) expect(calls.get(name) ?? 0, name).toBeGreaterThan(0);
  });
});

describe("fuzz: the fuzzer can fail", () => {
  it("validReturn: >= 0 or a known errno, whole numbers only", () => {
    for (const ok of [0, 1, 4096, -22, -9, -14, -95]) expect(validReturn(ok), String(ok)).toBe(true);
    for (const bad of [-515, -4096, -1000, 1.5, NaN, Infinity, "0", undefined, null, 0n]) expect(validReturn(bad), String(bad)).toBe(false);
  });

  it("the same seed gives the same list; different seeds differ", () => {
    expect(generate(7, 500)).toEqual(generate(7, 500));
    expect(generate(7, 500)).not.toEqual(generate(8, 500));
  });

  it("a planted leak (an open /dev/iommu in a process the fuzzer does not know) is caught at teardown and minimised to its op", async () => {
    const ops = generate(3, 120);
    const planted = 60;
    const MAGIC = 0x5eed;
    ops[planted] = { k: "poll", s: MAGIC };
    const hidden: Process[] = [];
    const onOp = (_i: number, op: Op, kernel: Kernel) => {
      if (op.s === MAGIC) {
        const p = kernel.createProcess();
        p.open("/dev/iommu", O_RDWR);
        hidden.push(p);
      }
    };
    const r = await run(ops, { onOp, vfioContainer: "legacy" });
    expect(r.violations).toHaveLength(1);
    const v = r.violations[0];
    expect(v.kind).toBe("teardown");
    // The hidden process holds its context, its file, itself and its page table's root frame.
    const m = /^teardown left iommufdContexts 1 \(want 0\), openFiles 1 \(want 0\), processes 1 \(want 0\), framesFree (\d+) \(want (\d+)\)$/.exec(v.detail);
    expect(m, v.detail).not.toBeNull();
    expect(Number(m![2]) - Number(m![1])).toBe(1);
    const min = await minimise(ops, signature(v), 200, { onOp, vfioContainer: "legacy" });
    expect(min).toEqual([{ k: "poll", s: MAGIC }]);
  }, 120_000);
});
