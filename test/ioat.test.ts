// The ioat model (Intel I/OAT CBDMA v3.2; drivers/dma/ioat/registers.h, hw.h): its register
// file through pread/pwrite and through an mmap of BAR0, and its engine on the device's own
// worker running chained descriptors through the IOMMU, with completion write-back, CHANERR
// on an IOMMU fault, reset, suspend, and bus mastering.

import { afterEach, describe, expect, it } from "vitest";
import { MAP_ANONYMOUS, MAP_SHARED, O_RDWR, PROT_READ, PROT_WRITE, type Kernel, type Process } from "../src/index.js";
import { attach, bind, boot, errno, ioasAlloc, ioasMapArg, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, openIommufd, struct } from "./vfio/util.js";
import { lastFault } from "./toolkit/iommu.js";
import { until } from "./toolkit/wait.js";

const CFG = 7 * 2 ** 40;
const CH = 0x80;
const CHANCTRL = CH + 0x00, CHANCMD = CH + 0x04, DMACOUNT = CH + 0x06, CHANSTS = CH + 0x08;
const CHAINADDR = CH + 0x10, CHANCMP = CH + 0x18, CHANERR = CH + 0x28;
const RESET = 0x20, SUSPEND = 0x04;
const DONE = 1, SUSPENDED = 2, HALTED = 3;
const INT_REARM = 1, ANY_ERR_ABORT_EN = 8;
const COMPL_WRITE = 1 << 3, NULL_DESC = 1 << 5;
const SRC_ADDR_ERR = 0x1, DEST_ADDR_ERR = 0x2, NEXT_ADDR_ERR = 0x4, NEXT_DESC_ALIGN_ERR = 0x8, LENGTH_ERR = 0x800;
const PCI_COMMAND_MEMORY = 2, PCI_COMMAND_MASTER = 4;

interface Rig { k: Kernel; p: Process; d: number; i: number; ioas: number; bar: number; mem: number; iova: bigint }
let rig: Rig | null = null;
afterEach(async () => { await rig?.k.close(); rig = null; });

const MEM = 1 << 20;
const IOVA = 0x100000n;

async function setup(): Promise<Rig> {
  const k = await boot([{ bdf: "0000:00:04.0", model: "ioat" }]);
  const p = k.createProcess({ memlockBytes: Infinity });
  const d = p.open("/dev/vfio/devices/vfio0", O_RDWR);
  const i = openIommufd(p);
  expect(bind(p, d, i)).toBe(1);
  const ioas = ioasAlloc(p, i);
  expect(attach(p, d, ioas)).toBeGreaterThan(0);
  const mem = p.mmap(0, MEM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, mem, MEM, IOVA))).toBe(0);
  const bar = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
  expect(bar).toBeGreaterThan(0);
  cfgW16(p, d, 4, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  rig = { k, p, d, i, ioas, bar, mem, iova: IOVA };
  return rig;
}

function cfgW16(p: Process, d: number, off: number, v: number) {
  expect(p.pwrite(d, struct(2, [[0, 2, v]]), CFG + off)).toBe(2);
}

const w = (r: Rig, off: number, size: 1 | 2 | 4 | 8, v: number | bigint) =>
  expect(r.p.writeMemory(r.bar + off, struct(size, [[0, size, v]]))).toBe(0);
function rd(r: Rig, off: number, size: 1 | 2 | 4 | 8): bigint {
  const b = new Uint8Array(size);
  expect(r.p.readMemory(r.bar + off, b)).toBe(0);
  let v = 0n;
  for (let j = size - 1; j >= 0; j--) v = (v << 8n) | BigInt(b[j]);
  return v;
}
const status = (r: Rig) => Number(rd(r, CHANSTS, 8) & 7n);



async function reset(r: Rig) {
  w(r, CHANCMD, 1, RESET);
  await until(() => (rd(r, CHANCMD, 1) & BigInt(RESET)) === 0n, "CHANCMD.RESET to clear");
  expect(status(r)).toBe(HALTED);
}

/** A descriptor at user offset `at` of the buffer (its IOVA is IOVA + at). */
function desc(r: Rig, at: number, d: { size: number; ctl?: number; src: bigint; dst: bigint; next: bigint }) {
  const b = struct(64, [[0, 4, d.size], [4, 4, d.ctl ?? 0], [8, 8, d.src], [16, 8, d.dst], [24, 8, d.next]]);
  expect(r.p.writeMemory(r.mem + at, b)).toBe(0);
}

describe("ioat register file", () => {
  it("identity: Intel 8086:2021 (PCI_DEVICE_ID_INTEL_IOAT_SKX), CBVER 3.2, one channel, XFERCAP 16", async () => {
    const r = await setup();
    const id = new Uint8Array(4);
    expect(r.p.pread(r.d, id, CFG)).toBe(4);
    expect([...id]).toEqual([0x86, 0x80, 0x21, 0x20]);
    expect(r.p.readFile("/sys/bus/pci/devices/0000:00:04.0/device")).toBe("0x2021\n");
    expect(rd(r, 0x00, 1)).toBe(1n);
    expect(rd(r, 0x01, 1)).toBe(16n);
    expect(rd(r, 0x08, 1)).toBe(0x32n);
    expect(status(r)).toBe(HALTED);
  });

  it("read-only registers ignore stores; CHANERR is write-1-to-clear; pread sees mmap stores", async () => {
    const r = await setup();
    w(r, 0x00, 4, 0xffffffff);
    expect(rd(r, 0x00, 1)).toBe(1n);
    expect(rd(r, 0x01, 1)).toBe(16n);
    expect(rd(r, 0x03, 1)).toBe(0x09n); // INTRCTRL: only MASTER_INT_EN and MSIX_VECTOR_CONTROL stick
    w(r, CHANSTS, 8, 0n);
    expect(status(r)).toBe(HALTED);
    w(r, CHAINADDR, 8, 0x123456789abcdef0n);
    const b = new Uint8Array(8);
    expect(r.p.pread(r.d, b, CHAINADDR)).toBe(8);
    expect(new DataView(b.buffer).getBigUint64(0, true)).toBe(0x123456789abcdef0n);
    // An error from an unmapped chain address, then cleared bit by bit.
    await reset(r);
    w(r, CHAINADDR, 8, 0x40000000n);
    w(r, DMACOUNT, 2, 1);
    await until(() => status(r) === HALTED && rd(r, CHANERR, 4) !== 0n, "the fetch to fault");
    expect(rd(r, CHANERR, 4)).toBe(0x10n); // CHAIN_ADDR_VALUE_ERR: the chain's first fetch
    expect(r.p.pwrite(r.d, struct(4, [[0, 4, 0x1]]), CHANERR)).toBe(4);
    expect(rd(r, CHANERR, 4)).toBe(0x10n);
    w(r, CHANERR, 4, 0x10);
    expect(rd(r, CHANERR, 4)).toBe(0n);
  });
});

describe("ioat engine (device worker, through the IOMMU)", () => {
  it("a chain of 32 descriptors, one doorbell: every copy done, CHANSTS DONE at the last, completion written back", async () => {
    const r = await setup();
    await reset(r);
    const N = 32, SZ = 4096;
    const src = 0x40000, dst = 0x80000, ring = 0x1000, cmp = 0x800;
    const data = new Uint8Array(N * SZ).map((_, j) => (j * 7 + 3) & 0xff);
    expect(r.p.writeMemory(r.mem + src, data)).toBe(0);
    for (let j = 0; j < N; j++) {
      desc(r, ring + 64 * j, {
        size: SZ, ctl: j === N - 1 ? COMPL_WRITE : 0,
        src: r.iova + BigInt(src + j * SZ), dst: r.iova + BigInt(dst + j * SZ),
        next: r.iova + BigInt(ring + 64 * ((j + 1) % N)),
      });
    }
    w(r, CHANCMP, 8, r.iova + BigInt(cmp));
    w(r, CHAINADDR, 8, r.iova + BigInt(ring));
    w(r, CHANCTRL, 2, INT_REARM | ANY_ERR_ABORT_EN);
    w(r, DMACOUNT, 2, N);
    const last = r.iova + BigInt(ring + 64 * (N - 1));
    // The doorbell is an MMIO store the engine's worker notices on its own: wait for the last
    // descriptor's address, not only DONE (which the channel may still show from before).
    await until(() => rd(r, CHANSTS, 8) === (last | BigInt(DONE)), "DONE");
    expect(rd(r, CHANSTS, 8)).toBe(last | BigInt(DONE));
    const out = new Uint8Array(N * SZ);
    expect(r.p.readMemory(r.mem + dst, out)).toBe(0);
    expect(out).toEqual(data);
    const c = new Uint8Array(8);
    expect(r.p.readMemory(r.mem + cmp, c)).toBe(0);
    expect(new DataView(c.buffer).getBigUint64(0, true)).toBe(last | BigInt(DONE));
    expect(rd(r, CHANERR, 4)).toBe(0n);
    // The channel continues from the chain when DMACOUNT grows (the kernel driver's way).
    expect(r.p.writeMemory(r.mem + dst, new Uint8Array(SZ))).toBe(0);
    w(r, DMACOUNT, 2, N + 1);
    await until(() => rd(r, CHANSTS, 8) === ((r.iova + BigInt(ring)) | BigInt(DONE)), "the 33rd descriptor");
    const one = new Uint8Array(SZ);
    expect(r.p.readMemory(r.mem + dst, one)).toBe(0);
    expect(one).toEqual(data.subarray(0, SZ));
  });

  it("an IOMMU unmap during the run: later descriptors fault with DEST_ADDR_ERR, the channel halts, the fault is recorded", async () => {
    const r = await setup();
    await reset(r);
    const SZ = 4096, ring = 0x1000;
    // Destinations in a second mapping that goes away after the first batch.
    const other = r.p.mmap(0, 64 * SZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    const OTHER = 0x4000000n;
    expect(r.p.ioctlBuf(r.i, IOMMU_IOAS_MAP, ioasMapArg(r.ioas, other, 64 * SZ, OTHER))).toBe(0);
    for (let j = 0; j < 64; j++) {
      desc(r, ring + 64 * j, { size: SZ, src: r.iova + 0x40000n, dst: OTHER + BigInt(j * SZ), next: r.iova + BigInt(ring + 64 * (j + 1)) });
    }
    w(r, CHAINADDR, 8, r.iova + BigInt(ring));
    w(r, CHANCTRL, 2, INT_REARM | ANY_ERR_ABORT_EN);
    w(r, DMACOUNT, 2, 32);
    await until(() => rd(r, CHANSTS, 8) === ((r.iova + BigInt(ring + 64 * 31)) | BigInt(DONE)), "the first 32");
    const unmap = struct(24, [[0, 4, 24], [4, 4, r.ioas], [8, 8, OTHER], [16, 8, 64 * SZ]]);
    expect(r.p.ioctlBuf(r.i, IOMMU_IOAS_UNMAP, unmap)).toBe(0);
    w(r, DMACOUNT, 2, 64);
    await until(() => status(r) === HALTED, "HALTED");
    expect(rd(r, CHANERR, 4)).toBe(BigInt(DEST_ADDR_ERR));
    // CHANSTS holds the last descriptor that completed: the 32nd.
    expect(rd(r, CHANSTS, 8)).toBe((r.iova + BigInt(ring + 64 * 31)) | BigInt(HALTED));
    expect(lastFault(r.k)).toEqual({ iova: OTHER + 32n * BigInt(SZ), write: true, reason: 1 /* FAULT_REASON_UNMAPPED */ });
    // A halted channel with errors pending ignores the doorbell until reset.
    w(r, DMACOUNT, 2, 65);
    await new Promise((res) => setTimeout(res, 20));
    expect(status(r)).toBe(HALTED);
    await reset(r);
  });

  it("CHANERR bits: source fault SRC_ADDR_ERR, bad next NEXT_ADDR_ERR, misaligned next NEXT_DESC_ALIGN_ERR, size over XFERCAP LENGTH_ERR", async () => {
    const r = await setup();
    const cases: [Partial<{ size: number; src: bigint; dst: bigint; next: bigint }>, number, number][] = [
      [{ src: 0x7000000n }, SRC_ADDR_ERR, 1],
      [{ next: 0x7000000n }, NEXT_ADDR_ERR, 2],
      [{ next: r.iova + 0x1020n }, NEXT_DESC_ALIGN_ERR, 2],
      [{ size: (1 << 16) + 1 }, LENGTH_ERR, 1],
    ];
    for (const [d, bit, count] of cases) {
      await reset(r);
      w(r, CHANERR, 4, 0x7ffff);
      desc(r, 0x1000, { size: 64, src: r.iova + 0x40000n, dst: r.iova + 0x80000n, next: r.iova + 0x1000n, ...d });
      w(r, CHAINADDR, 8, r.iova + 0x1000n);
      w(r, DMACOUNT, 2, count);
      await until(() => status(r) === HALTED && rd(r, CHANERR, 4) !== 0n, `CHANERR ${bit}`);
      expect(rd(r, CHANERR, 4)).toBe(BigInt(bit));
    }
    w(r, CHANERR, 4, 0x7ffff);
    await reset(r);
  });

  it("null descriptors move nothing; SUSPEND parks the channel; a new chain restarts it", async () => {
    const r = await setup();
    await reset(r);
    desc(r, 0x1000, { size: 4096, ctl: NULL_DESC, src: 0x7000000n, dst: 0x7000000n, next: r.iova + 0x1000n });
    w(r, CHAINADDR, 8, r.iova + 0x1000n);
    w(r, DMACOUNT, 2, 100);
    await until(() => status(r) === DONE, "DONE");
    expect(rd(r, CHANERR, 4)).toBe(0n);
    w(r, CHANCMD, 1, SUSPEND);
    await until(() => status(r) === SUSPENDED, "SUSPENDED");
    expect(rd(r, CHANCMD, 1)).toBe(0n);
    // A doorbell alone does not wake a suspended channel; CHAINADDR and DMACOUNT do.
    w(r, DMACOUNT, 2, 3);
    await new Promise((res) => setTimeout(res, 20));
    expect(status(r)).toBe(SUSPENDED);
    w(r, CHAINADDR, 8, r.iova + 0x1000n);
    w(r, DMACOUNT, 2, 3);
    await until(() => status(r) === DONE, "DONE again");
  });

  it("bus mastering off: no DMA (the channel stalls), back on: it finishes", async () => {
    const r = await setup();
    await reset(r);
    cfgW16(r.p, r.d, 4, PCI_COMMAND_MEMORY);
    const data = new Uint8Array(256).fill(0xab);
    expect(r.p.writeMemory(r.mem + 0x40000, data)).toBe(0);
    desc(r, 0x1000, { size: 256, src: r.iova + 0x40000n, dst: r.iova + 0x80000n, next: r.iova + 0x1000n });
    w(r, CHAINADDR, 8, r.iova + 0x1000n);
    w(r, DMACOUNT, 2, 1);
    await new Promise((res) => setTimeout(res, 30));
    const out = new Uint8Array(256);
    expect(r.p.readMemory(r.mem + 0x80000, out)).toBe(0);
    expect(out).toEqual(new Uint8Array(256));
    expect(status(r)).not.toBe(DONE);
    cfgW16(r.p, r.d, 4, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    await until(() => status(r) === DONE, "DONE");
    expect(r.p.readMemory(r.mem + 0x80000, out)).toBe(0);
    expect(out).toEqual(data);
  });

  it("a store through a read-only mapping of BAR0 faults (EFAULT) and changes nothing", async () => {
    const r = await setup();
    const ro = r.p.mmap(0, 4096, PROT_READ, MAP_SHARED, r.d, 0);
    expect(r.p.writeMemory(ro + CHAINADDR, struct(8, [[0, 8, 0x1000n]]))).toBe(-errno.EFAULT);
    expect(rd(r, CHAINADDR, 8)).toBe(0n);
  });
});
