// Concurrency (DESIGN.md "Where the planes meet"): the lock-free gate seen from worker threads,
// and the grace period on every removal path — while workers keep reading files and DMAing,
// nothing they do gets through a gate that is not granted or a mapping, domain or device that
// the kernel thread has removed and reported removed.

import { describe, it, expect } from "vitest";
import { Worker } from "node:worker_threads";
import {
  createKernel, IommuFd, VfioContainer, VfioDeviceFile, VfioGroup, VFIO_TYPE1v2_IOMMU, MAP_ANONYMOUS, MAP_POPULATE, MAP_SHARED, PROT_READ, PROT_WRITE, type Kernel,
} from "../src/index.js";
import type { Process } from "../src/kernel/process.js";
import { IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, mapCmd as mapImage, unmapCmd as unmapImage, RW, FIXED } from "./iommufd/util.js";

const PG = 4096;
const CONFIG_OFFSET = 7 * 2 ** 40;
const IOVA = 0x100000;
const BUF = 4 * PG;

interface Run { worker: Worker; done: Promise<unknown> }

function spawn(script: string, data: Record<string, unknown>): Run {
  const worker = new Worker(new URL(`./workers/${script}`, import.meta.url), { workerData: data });
  const done = new Promise((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  return { worker, done };
}

/** Waits (without blocking the workers) until `n` workers said they are ready. */
async function ready(ctl: Int32Array, n: number): Promise<void> {
  while (Atomics.load(ctl, 1) < n) await new Promise((r) => setTimeout(r, 2));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Busy-waits `us` microseconds on the kernel thread, giving the workers time to race. */
function spin(us: number): void {
  const end = performance.now() + us / 1000;
  while (performance.now() < end) { /* the workers run meanwhile */ }
}

/** IOMMU_IOAS_MAP (FIXED_IOVA | WRITEABLE | READABLE) and IOMMU_IOAS_UNMAP argument images. */
const mapCmd = (ioas: number, va: number, len: number, iova: number) =>
  mapImage({ flags: FIXED | RW, ioasId: ioas, userVa: va, length: len, iova }).buf;
const unmapCmd = (ioas: number, iova: number, len: number) => unmapImage(ioas, iova, len).buf;

interface Setup { kernel: Kernel; proc: Process; iommufd: IommuFd; dev: VfioDeviceFile; ioas: number; buf: number; index: number }

async function setup(): Promise<Setup> {
  const kernel = await createKernel({ memoryBytes: 128 << 20, devices: [{ bdf: "0000:00:04.0", model: "memcpy" }] });
  const proc = kernel.createProcess({ capIpcLock: true });
  const iommufd = IommuFd.open(proc);
  const ioas = iommufd.allocIoas();
  const handle = kernel.device("0000:00:04.0")!;
  const dev = VfioDeviceFile.open(proc, handle);
  dev.bind(iommufd);
  dev.attach(ioas.id);
  const buf = proc.mmap(0, BUF, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  return { kernel, proc, iommufd, dev, ioas: ioas.id, buf, index: handle.index };
}

/** The kernel writes a canary into the buffer; true while it is intact. */
function canary(s: Setup, value: number): () => boolean {
  const pattern = new Uint8Array(BUF).fill(value);
  expect(s.proc.writeMemory(s.buf, pattern)).toBe(0);
  return () => {
    const now = new Uint8Array(BUF);
    s.proc.readMemory(s.buf, now);
    return now.every((b) => b === value);
  };
}

function hammer(s: Setup, ctl: Int32Array, n: number): Run[] {
  return Array.from({ length: n }, (_, i) => spawn("dma-hammer.mjs", {
    init: s.kernel.workerInit(), control: ctl.buffer, dev: s.index, iova: IOVA, len: BUF, pattern: 0xa0 + i, slot: i,
  }));
}

/** setup(), the buffer mapped at IOVA, and `n` dma-hammer workers running. */
async function hammering(n = 2): Promise<{ s: Setup; ctl: Int32Array; runs: Run[] }> {
  const s = await setup();
  expect(s.proc.ioctlBuf(s.iommufd.fd, IOMMU_IOAS_MAP, mapCmd(s.ioas, s.buf, BUF, IOVA))).toBe(0);
  // [0] stop, [1] ready count, then per worker [2 + 2i] successes and [3 + 2i] faults so far
  const ctl = new Int32Array(new SharedArrayBuffer(4 * (2 + 2 * n)));
  const runs = hammer(s, ctl, n);
  await ready(ctl, n);
  return { s, ctl, runs };
}

/**
 * Waits (without blocking the workers) until each of `n` hammer workers has counted one more
 * success (`what` 0) or fault (1) than in `since` (taken with progress()); gives up after 10 s.
 */
async function progressed(ctl: Int32Array, n: number, what: 0 | 1, since = progress(ctl, n, what)): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (progress(ctl, n, what).some((v, i) => v <= since[i]) && performance.now() < deadline) await sleep(1);
}

function progress(ctl: Int32Array, n: number, what: 0 | 1): number[] {
  return Array.from({ length: n }, (_, i) => Atomics.load(ctl, 2 + 2 * i + what));
}

/**
 * Stops the hammer workers. Each must have seen only successes and faults, and both: the
 * device got through while it could and faulted while it could not.
 */
async function stop(ctl: Int32Array, runs: Run[]): Promise<void> {
  Atomics.store(ctl, 0, 1);
  const out = (await Promise.all(runs.map((r) => r.done))) as { ok: number; faults: number; other: number[] }[];
  await Promise.all(runs.map((r) => r.worker.terminate()));
  expect(out).toHaveLength(runs.length);
  for (const r of out) {
    expect(r.other).toEqual([]);
    expect(r.ok, "DMA got through while mapped").toBeGreaterThan(0);
    expect(r.faults, "DMA faulted while unmapped").toBeGreaterThan(0);
  }
}

describe("the gate across threads", () => {
  it("workers get EINVAL before the bind, full device state after it, and EBADF after the close even when the slot is reused", async () => {
    const kernel = await createKernel({ memoryBytes: 64 << 20, devices: [{ bdf: "0000:00:04.0", model: "memcpy" }] });
    const proc = kernel.createProcess();
    const iommufd = IommuFd.open(proc);
    const handle = kernel.device("0000:00:04.0")!;
    const dev = VfioDeviceFile.open(proc, handle);
    const ref = proc.fileRef(dev.fd);
    if (typeof ref === "number") throw new Error("no file ref");
    const ctl = new Int32Array(new SharedArrayBuffer(4 * 8));
    const runs = [0, 1].map((id) => spawn("gate-reader.mjs", {
      init: kernel.workerInit(), ref, control: ctl.buffer, configOffset: CONFIG_OFFSET, vendor: 0x1b36, device: 0x10ec, id,
    }));
    // Each phase lasts until every reader has seen it (what counts is the order, not time).
    const seen = async (kind: 0 | 1 | 2) => {
      while (Atomics.load(ctl, 2 + kind) === 0 || Atomics.load(ctl, 5 + kind) === 0) await sleep(1);
    };
    await ready(ctl, 2);
    await seen(0);
    dev.bind(iommufd);
    await seen(1);
    dev.close();
    // A new file takes the lowest free gate slot: the closed one. Its generation differs.
    const again = VfioDeviceFile.open(proc, handle);
    const ref2 = proc.fileRef(again.fd);
    expect(typeof ref2 === "number" ? -1 : ref2.slot).toBe(ref.slot);
    again.bind(iommufd);
    await seen(2);
    await sleep(5);
    Atomics.store(ctl, 0, 1);
    const results = (await Promise.all(runs.map((r) => r.done))) as { einval: number; ok: number; ebadf: number; violations: string[] }[];
    await Promise.all(runs.map((r) => r.worker.terminate()));
    for (const r of results) {
      expect(r.violations).toEqual([]);
      expect(r.einval).toBeGreaterThan(0);
      expect(r.ok).toBeGreaterThan(0);
      expect(r.ebadf).toBeGreaterThan(0);
    }
    again.close();
    iommufd.close();
    await kernel.close();
  }, 20_000);
});

describe("the grace period", () => {
  it("no device DMA reaches a mapping once IOMMU_IOAS_UNMAP has returned, over thousands of unmaps", async () => {
    const { s, ctl, runs } = await hammering();
    const deadline = performance.now() + 2500;
    let cycles = 0;
    let broken = 0;
    while (cycles < 3000 && performance.now() < deadline) {
      expect(s.proc.ioctlBuf(s.iommufd.fd, IOMMU_IOAS_UNMAP, unmapCmd(s.ioas, IOVA, BUF))).toBe(0);
      // From here on no worker may write the buffer: the canary must survive.
      const intact = canary(s, 0x5c ^ (cycles & 0xf));
      spin(30);
      if (!intact()) broken++;
      expect(s.proc.ioctlBuf(s.iommufd.fd, IOMMU_IOAS_MAP, mapCmd(s.ioas, s.buf, BUF, IOVA))).toBe(0);
      spin(30);
      cycles++;
    }
    await stop(ctl, runs);
    expect(broken).toBe(0);
    expect(cycles).toBeGreaterThan(200);
    await s.kernel.close();
  }, 30_000);

  it("no device DMA goes through a domain once DETACH has returned, nor once ATTACH moved the device away", async () => {
    const { s, ctl, runs } = await hammering();
    const other = s.iommufd.allocIoas(); // an IOAS with nothing mapped: DMA through it faults
    let broken = 0;
    let cycles = 0;
    const deadline = performance.now() + 2000;
    while (cycles < 1000 && performance.now() < deadline) {
      s.dev.detach();
      let intact = canary(s, 0x3c);
      spin(30);
      if (!intact()) broken++;
      s.dev.attach(s.ioas);
      spin(30);
      // Replace: the device moves to the empty IOAS's domain; the old one is out of reach.
      s.dev.attach(other.id);
      intact = canary(s, 0x4c);
      spin(30);
      if (!intact()) broken++;
      s.dev.attach(s.ioas);
      spin(30);
      cycles++;
    }
    await stop(ctl, runs);
    expect(broken).toBe(0);
    expect(cycles).toBeGreaterThan(50);
    await s.kernel.close();
  }, 30_000);

  it("no device DMA gets through once the device file is closed", async () => {
    const { s, ctl, runs } = await hammering();
    await progressed(ctl, runs.length, 0); // every worker got through while attached
    s.dev.close(); // unbind: the device falls back to blocked DMA
    const intact = canary(s, 0x6c);
    await sleep(30);
    await progressed(ctl, runs.length, 1); // and every worker faulted since (not only had the time to)
    await stop(ctl, runs);
    expect(intact()).toBe(true);
    await s.kernel.close();
  }, 30_000);

  it("a worker that died inside a transfer is reported after a second and reclaimed after a bounded wait", async () => {
    const s = await setup();
    expect(s.proc.ioctlBuf(s.iommufd.fd, IOMMU_IOAS_MAP, mapCmd(s.ioas, s.buf, BUF, IOVA))).toBe(0);
    const lines: string[] = [];
    s.kernel.trace("dma_grace_*", (l) => lines.push(l));
    const w = new Worker(new URL("./workers/die-in-section.mjs", import.meta.url), { workerData: { init: s.kernel.workerInit() } });
    const { slot } = await new Promise<{ slot: number }>((resolve, reject) => { w.once("message", resolve); w.once("error", reject); });
    await new Promise((r) => w.once("exit", r));
    const t0 = performance.now();
    expect(s.proc.ioctlBuf(s.iommufd.fd, IOMMU_IOAS_UNMAP, unmapCmd(s.ioas, IOVA, BUF))).toBe(0);
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThan(1000);
    expect(waited).toBeLessThan(4000);
    expect(lines[0]).toMatch(new RegExp(`^dma_grace_wait why=unmap slot=${slot} waited_ms=\\d+$`));
    expect(lines[1]).toBe(`dma_grace_reclaim why=unmap slot=${slot}`);
    // The slot is free again: the next grace period does not wait.
    const t1 = performance.now();
    expect(s.proc.ioctlBuf(s.iommufd.fd, IOMMU_IOAS_MAP, mapCmd(s.ioas, s.buf, BUF, IOVA))).toBe(0);
    expect(s.proc.ioctlBuf(s.iommufd.fd, IOMMU_IOAS_UNMAP, unmapCmd(s.ioas, IOVA, BUF))).toBe(0);
    expect(performance.now() - t1).toBeLessThan(500);
    await s.kernel.close();
  }, 30_000);
});


describe("the legacy container across threads", () => {
  it("a worker's device DMA goes through the group's type1 domain, and not once UNMAP_DMA or leaving the container returned", async () => {
    const kernel = await createKernel({ memoryBytes: 128 << 20, devices: [{ bdf: "0000:00:04.0", model: "memcpy", iommuGroup: 5 }] });
    const proc = kernel.createProcess({ capIpcLock: true });
    const index = kernel.device("0000:00:04.0")!.index;
    const group = VfioGroup.open(proc, 5);
    const container = VfioContainer.open(proc);
    group.setContainer(container);
    container.setIommu(VFIO_TYPE1v2_IOMMU);
    const dev = group.getDeviceFd("0000:00:04.0");
    const buf = proc.mmap(0, BUF, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    container.mapDma({ vaddr: buf, iova: IOVA, size: BUF });
    const ctl = new Int32Array(new SharedArrayBuffer(4 * 6));
    const s = { kernel, proc, buf } as unknown as Setup;
    const runs = hammer({ ...s, index }, ctl, 2);
    await ready(ctl, 2);
    await progressed(ctl, 2, 0); // through the container's domain
    let intact = canary(s, 0x7c);
    // Tested against the canary: the hammer writes 0xa0/0xa1 while it gets through.
    expect(container.unmapDma(IOVA, BUF)).toBe(BigInt(BUF));
    intact = canary(s, 0x7d);
    await progressed(ctl, 2, 1);
    expect(intact()).toBe(true);
    container.mapDma({ vaddr: buf, iova: IOVA, size: BUF });
    await progressed(ctl, 2, 0);
    dev.close();
    group.unsetContainer(); // the group leaves: its devices fall back to blocked DMA
    intact = canary(s, 0x7e);
    await progressed(ctl, 2, 1);
    await stop(ctl, runs);
    expect(intact()).toBe(true);
    group.close();
    container.close();
    await kernel.close();
  }, 30_000);
});
