// Regions of vfio-pci (drivers/vfio/pci/vfio_pci_core.c GET_REGION_INFO, vfio_pci_rdwr.c): the
// MSI-X-mappable capability on the BAR that holds the MSI-X table (no sparse mmap: vfio-pci
// lets the whole BAR be mapped since that capability exists), the table excluded from
// pread/pwrite (0xff, writes dropped), EIO while memory decoding is off (kernel and worker
// paths), and offsets past a region's end.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MAP_SHARED, PROT_READ, PROT_WRITE, type Kernel, type Process } from "../../src/index.js";
import { DeviceFileIo } from "../../src/worker.js";
import type { Core } from "../../src/wasm/core.js";
import { bind, boot, errno, openDev, openIommufd, struct, u32, VFIO_DEVICE_GET_REGION_INFO } from "./util.js";

const CFG = 7 * 2 ** 40;

describe("vfio-pci regions (memcpy model)", () => {
  let k: Kernel;
  let p: Process;
  let d: number;

  beforeEach(async () => {
    k = await boot();
    p = k.createProcess();
    d = openDev(p);
    expect(bind(p, d, openIommufd(p))).toBe(1);
  });
  afterEach(async () => { await k.close(); });

  it("BAR0 carries VFIO_REGION_INFO_CAP_MSIX_MAPPABLE; a short argsz gets the size it needs", () => {
    const small = struct(32, [[0, 4, 32], [8, 4, 0], [12, 4, 0x5a5a5a5a]]);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, small)).toBe(0);
    expect([u32(small, 0), u32(small, 4), u32(small, 12)]).toEqual([40, 15, 0]);
    const full = new Uint8Array(48).fill(0x77);
    full.set(struct(32, [[0, 4, 48], [8, 4, 0]]));
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, full)).toBe(0);
    expect([u32(full, 0), u32(full, 4), u32(full, 12)]).toEqual([48, 15, 32]);
    expect([...full.subarray(32, 48)]).toEqual([3, 0, 1, 0, 0, 0, 0, 0, ...Array(8).fill(0x77)]);
    // Other regions have no capabilities.
    const cfg = struct(40, [[0, 4, 40], [8, 4, 7], [12, 4, 0x5a5a5a5a]]);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, cfg)).toBe(0);
    expect([u32(cfg, 0), u32(cfg, 4), u32(cfg, 12)]).toEqual([40, 3, 0x5a5a5a5a]);
  });

  it("pread/pwrite: the MSI-X table reads 0xff and drops writes; the PBA and the rest are plain; mmap sees the table", () => {
    const bar = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
    expect(p.pwrite(d, new Uint8Array([1, 2, 3, 4]), 0x7fe)).toBe(4); // straddles the table's start
    const r = new Uint8Array(6);
    expect(p.pread(d, r, 0x7fc)).toBe(6);
    expect([...r]).toEqual([0, 0, 1, 2, 0xff, 0xff]);
    expect(p.pwrite(d, new Uint8Array(16), 0x800)).toBe(16);
    const m = new Uint8Array(16);
    expect(p.readMemory(bar + 0x800, m)).toBe(0);
    expect(u32(m, 12)).toBe(1); // vector 0 still masked: the write was dropped
    const t = new Uint8Array(4);
    expect(p.pread(d, t, 0x8fe)).toBe(4); // the table's end (16 vectors: 0x900)
    expect([...t]).toEqual([0xff, 0xff, 0, 0]);
    expect(p.pwrite(d, new Uint8Array([9]), 0xc00)).toBe(1); // the PBA is not excluded
    expect(p.readMemory(bar + 0xc00, t)).toBe(0);
    expect(t[0]).toBe(9);
  });

  it("memory decoding off in COMMAND: BAR access gets EIO, from the kernel's thread and a worker's", () => {
    const core = (k as unknown as { kcore: { core: Core } }).kcore.core;
    const io = new DeviceFileIo(core);
    const slot = (p.fileRef(d) as { slot: number }).slot;
    const b = new Uint8Array(4);
    expect(p.pwrite(d, new Uint8Array([0x04, 0]), CFG + 4)).toBe(2); // bus master only
    expect(p.pread(d, b, 0)).toBe(-errno.EIO);
    expect(p.pwrite(d, b, 0)).toBe(-errno.EIO);
    expect(io.rw(slot, b, 0, false)).toBe(-errno.EIO);
    expect(p.pread(d, b, 4096)).toBe(-errno.EINVAL); // past the end first
    expect(p.pwrite(d, new Uint8Array([0x06, 0]), CFG + 4)).toBe(2);
    expect(p.pread(d, b, 0)).toBe(4);
    expect(io.rw(slot, b, 0x800, false)).toBe(4);
    expect([...b]).toEqual([0xff, 0xff, 0xff, 0xff]);
  });

  it("offsets past a region's end: BAR EINVAL, config EFAULT, beyond the regions EINVAL, mmap EINVAL", () => {
    const b = new Uint8Array(4);
    expect(p.pread(d, b, 4096)).toBe(-errno.EINVAL);
    expect(p.pread(d, b, 4094)).toBe(2); // clipped
    expect(p.pread(d, b, CFG + 4096)).toBe(-errno.EFAULT);
    expect(p.pwrite(d, b, CFG + 4093)).toBe(-errno.EFAULT);
    expect(p.pread(d, b, 2 ** 40 - 4)).toBe(-errno.EINVAL); // BAR0 offset far past its end
    expect(p.pread(d, b, 9 * 2 ** 40)).toBe(-errno.EINVAL);
    expect(p.mmap(0, 4096, PROT_READ, MAP_SHARED, d, 4096)).toBe(-errno.EINVAL);
    const r = struct(32, [[0, 4, 32], [8, 4, 9]]);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, r)).toBe(-errno.EINVAL);
  });
});
