// Config space as vfio-pci virtualizes it (drivers/vfio/pci/vfio_pci_config.c): the capability
// chain (PM 0x40, MSI 0x50, MSI-X 0x70, PCI Express 0x80), the basic header's permission table
// (virtual ids, BARs with sizing, INTx disable, capability pointer, interrupt line and pin;
// COMMAND, cache line size through to the hardware), the PM power state, PCIe DEVCTL (virtual
// FLR / payload / read request size, phantom functions never), DEVCTL2 without ARI, and the
// same permissions for a worker's pwrite. Exact bytes, in the user's view and the hardware's.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MAP_SHARED, PROT_READ, PROT_WRITE, type Kernel, type Process } from "../../src/index.js";
import { DeviceFileIo } from "../../src/worker.js";
import type { Core } from "../../src/wasm/core.js";
import { bind, boot, openDev, openIommufd, u32 } from "./util.js";

const CFG = 7 * 2 ** 40;

describe("vfio-pci config space (memcpy model, PCI Express)", () => {
  let k: Kernel;
  let p: Process;
  let d: number;
  /** The hardware registers (what the device sees). */
  let hw: { get16(off: number): number; get32(off: number): number };

  const rd = (off: number, n: 1 | 2 | 4) => {
    const b = new Uint8Array(n);
    expect(p.pread(d, b, CFG + off)).toBe(n);
    return n === 1 ? b[0] : n === 2 ? b[0] | (b[1] << 8) : u32(b, 0);
  };
  const wr = (off: number, v: number, n: 1 | 2 | 4) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = (v >>> (8 * i)) & 0xff;
    expect(p.pwrite(d, b, CFG + off)).toBe(n);
  };

  beforeEach(async () => {
    k = await boot();
    p = k.createProcess();
    d = openDev(p);
    expect(bind(p, d, openIommufd(p))).toBe(1);
    hw = (k.devices[0] as unknown as { pciCore: { cfg: typeof hw } }).pciCore.cfg;
  });
  afterEach(async () => { await k.close(); });

  it("the capability chain: PM -> MSI -> MSI-X -> PCI Express; headers read-only; nothing past 0x100", () => {
    expect(rd(0x06, 2)).toBe(0x0010); // STATUS: capability list
    expect(rd(0x34, 1)).toBe(0x40);
    const chain: number[][] = [];
    for (let at = rd(0x34, 1); at; at = rd(at + 1, 1)) chain.push([at, rd(at, 1)]);
    expect(chain).toEqual([[0x40, 0x01], [0x50, 0x05], [0x70, 0x11], [0x80, 0x10]]);
    expect([rd(0x42, 2), rd(0x44, 2)]).toEqual([0x0003, 0x0008]); // PMC v3 (D0, D3hot); PMCSR no-soft-reset
    expect([rd(0x82, 2), rd(0x84, 4), rd(0x88, 2), rd(0x8c, 4), rd(0x92, 2)]).toEqual([0x0002, 0x10000000, 0x2810, 0x11, 0x11]);
    wr(0x40, 0x0000, 2);
    wr(0x50, 0x1234, 2);
    expect([rd(0x40, 2), rd(0x50, 2)]).toEqual([0x5001, 0x7005]);
    expect(rd(0x100, 4)).toBe(0); // no extended capabilities
    wr(0x100, 0xffffffff, 4);
    expect(rd(0x100, 4)).toBe(0);
    expect(rd(0xffc, 4)).toBe(0);
  });

  it("basic header: virtual ids, pin and capability pointer; interrupt line virtual and writable; the rest as the hardware takes it", () => {
    const ids = rd(0, 4);
    wr(0, 0, 4);
    wr(0x08, 0, 4); // revision and class
    wr(0x2c, 0, 4); // subsystem
    wr(0x34, 0, 1);
    wr(0x3d, 0, 1);
    wr(0x06, 0xffff, 2);
    expect([rd(0, 4), rd(0x08, 4), rd(0x2c, 4), rd(0x34, 1), rd(0x3d, 1), rd(0x06, 2)]).toEqual([ids, 0x08800001, 0x11001b36, 0x40, 1, 0x10]);
    wr(0x3c, 0x0b, 1);
    expect(rd(0x3c, 1)).toBe(0x0b);
    expect(hw.get16(0x3c) & 0xff).toBe(0); // the line is virtual
    wr(0x0c, 0xffffffff, 4); // cache line size takes it; latency timer and BIST are read-only zero here
    expect(rd(0x0c, 4)).toBe(0x000000ff);
  });

  it("COMMAND: memory, bus master, parity, SERR reach the hardware; INTx disable is virtual; no I/O space", () => {
    expect(rd(0x04, 2)).toBe(0x0002); // pci_enable_device turned memory decoding on
    wr(0x04, 0xffff, 2);
    expect(rd(0x04, 2)).toBe(0x0546);
    expect(hw.get16(0x04)).toBe(0x0146);
    wr(0x04, 0x0400, 2);
    expect([rd(0x04, 2), hw.get16(0x04)]).toEqual([0x0400, 0]);
  });

  it("BARs: sizing reads back the size mask; unimplemented BARs and the ROM read 0", () => {
    const bar0 = rd(0x10, 4);
    expect(bar0 & 0xfff).toBe(0); // 32-bit memory, not prefetchable
    wr(0x10, 0xffffffff, 4);
    expect(rd(0x10, 4)).toBe(0xfffff000);
    expect(hw.get32(0x10)).toBe(bar0); // the real BAR is never touched
    wr(0x10, bar0 | 0xabc, 4);
    expect(rd(0x10, 4)).toBe(bar0);
    for (const off of [0x14, 0x18, 0x1c, 0x20, 0x24, 0x30]) {
      wr(off, 0xffffffff, 4);
      expect(rd(off, 4)).toBe(0);
    }
  });

  it("PM: the power state goes D0 <-> D3hot through the write handler; D1 and D2 are not supported", () => {
    wr(0x44, 0x0003, 2);
    expect(rd(0x44, 2)).toBe(0x000b);
    wr(0x44, 0x0001, 2);
    expect(rd(0x44, 2)).toBe(0x000b);
    wr(0x44, 0x0000, 2);
    expect(rd(0x44, 2)).toBe(0x0008);
    wr(0x44, 0xffff, 2); // PME, data select: not implemented; no-soft-reset read-only
    expect(rd(0x44, 2)).toBe(0x000b);
  });

  it("PCIe DEVCTL: payload virtual, read request size to the hardware, phantom never; FLR resets the function and reads 0", () => {
    wr(0x88, 0x2810 | 0x0200, 2);
    expect(rd(0x88, 2)).toBe(0x2810);
    wr(0x88, 0x2810 | 0x0020, 2); // max payload 256: the user's view only
    expect([rd(0x88, 2), hw.get16(0x88)]).toEqual([0x2830, 0x2810]);
    wr(0x88, 0x5810, 2); // max read request 4096: set on the hardware too
    expect([rd(0x88, 2), hw.get16(0x88)]).toEqual([0x5810, 0x5810]);
    wr(0x88, 0x000f, 2); // error reporting enables reach the hardware
    expect([rd(0x88, 2), hw.get16(0x88)]).toEqual([0x000f, 0x000f]);
    // FLR: BAR0's register state is gone, the bit reads 0, config state survives.
    const bar = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
    expect(p.writeMemory(bar + 0x10, new Uint8Array([7, 7]))).toBe(0);
    wr(0x04, 0x0006, 2);
    wr(0x88, 0x8000 | 0x000f, 2);
    expect(rd(0x88, 2)).toBe(0x000f);
    const m = new Uint8Array(2);
    expect(p.readMemory(bar + 0x10, m)).toBe(0);
    expect([...m]).toEqual([0, 0]);
    expect(rd(0x04, 2)).toBe(0x0006);
    // DEVCTL2: completion timeout writable, ARI never.
    wr(0xa8, 0xffff, 2);
    expect(rd(0xa8, 2)).toBe(0x001f);
  });

  it("a worker's pwrite goes through the same permissions", () => {
    const core = (k as unknown as { kcore: { core: Core } }).kcore.core;
    const io = new DeviceFileIo(core);
    const slot = (p.fileRef(d) as { slot: number }).slot;
    expect(io.rw(slot, new Uint8Array([0xff, 0xff]), CFG + 4, true)).toBe(2);
    expect(io.rw(slot, new Uint8Array([0xff, 0xff, 0xff, 0xff]), CFG + 0x10, true)).toBe(4);
    expect([rd(0x04, 2), hw.get16(0x04), rd(0x10, 4)]).toEqual([0x0546, 0x0146, 0xfffff000]);
    const b = new Uint8Array(2);
    expect(io.rw(slot, b, CFG + 0x50, false)).toBe(2);
    expect([...b]).toEqual([0x05, 0x70]);
  });
});
