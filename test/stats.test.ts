// kernel.stats(): the control plane's counters and, with `counters: true`, the data plane's
// IOTLB counters (the build with them compiled in); DMA faults are always counted.
import { describe, it, expect } from "vitest";
import { createKernel, IommuFd, VfioDeviceFile, MAP_ANONYMOUS, MAP_POPULATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../src/index.js";

async function dmaKernel(counters: boolean) {
  const kernel = await createKernel({ memoryBytes: 64 << 20, counters, devices: [{ bdf: "0000:00:04.0", model: "memcpy" }] });
  const proc = kernel.createProcess();
  const iommufd = IommuFd.open(proc);
  const ioas = iommufd.allocIoas();
  const dev = VfioDeviceFile.open(proc, kernel.device("0000:00:04.0")!);
  dev.bind(iommufd);
  dev.attach(ioas.id);
  const buf = proc.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  ioas.map({ userVa: buf, length: 8192, iova: 0x10000 });
  const h = kernel.device("0000:00:04.0")!;
  const out = new Uint8Array(4096);
  for (let i = 0; i < 10; i++) expect(h.dmaRead(0x10000, out)).toBe(0);
  expect(h.dmaRead(0x20000, out)).toBe(-14);
  return kernel;
}

describe("kernel.stats()", () => {
  it("counts IOTLB hits, misses and walks with counters on, and faults always", async () => {
    const k = await dmaKernel(true);
    const s = k.stats();
    expect(s.iotlbMisses).toBeGreaterThan(0);
    expect(s.iotlbWalks).toBe(s.iotlbMisses);
    expect(s.iotlbHits + s.iotlbLastHits).toBeGreaterThan(0);
    expect(s.dmaFaults).toBe(1);
    await k.close();
  });

  it("has no IOTLB counters in the default build, which counts nothing", async () => {
    const k = await dmaKernel(false);
    const s = k.stats();
    expect("iotlbHits" in s).toBe(false);
    expect(s.dmaFaults).toBe(1);
    await k.close();
  });
});
