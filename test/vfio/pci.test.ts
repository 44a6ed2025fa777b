// The vfio-pci face of the memcpy model (SPEC.md §3.2.4–§3.2.11, CONFORMANCE §1b/§1e):
// exact bytes written back, the argsz model (argsz < minsz EINVAL, tails ignored), config
// space with the sysfs ids and a bus-master bit, BAR0 by pread/pwrite and mmap.

import { beforeEach, afterEach, describe, expect, it } from "vitest";
import { MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, type Kernel, type Process } from "../../src/index.js";
import {
  bind, boot, errno, openDev, openIommufd, struct, u32, u64,
  VFIO_DEVICE_FEATURE, VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_RESET, VFIO_DEVICE_SET_IRQS,
} from "./util.js";

const CFG = 7 * 2 ** 40;
const regionArg = (index: number, argsz = 32) => struct(32, [[0, 4, argsz], [8, 4, index], [12, 4, 0x5a5a5a5a]]);

describe("vfio-pci face (memcpy model)", () => {
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

  it("GET_INFO: flags PCI|RESET, 9 regions, 5 irqs; writes min(argsz, 24) bytes", () => {
    const a = new Uint8Array(32).fill(0xee);
    new DataView(a.buffer).setUint32(0, 32, true);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_INFO, a)).toBe(0);
    expect([u32(a, 0), u32(a, 4), u32(a, 8), u32(a, 12), u32(a, 16), u32(a, 20)]).toEqual([32, 3, 9, 5, 0, 0]);
    expect([...a.subarray(24)]).toEqual(Array(8).fill(0xee)); // past sizeof: untouched
    const b = new Uint8Array(24).fill(0xee);
    new DataView(b.buffer).setUint32(0, 16, true);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_INFO, b)).toBe(0);
    expect(u32(b, 4)).toBe(3);
    expect([...b.subarray(16)]).toEqual(Array(8).fill(0xee)); // argsz 16: only 16 written
    const c = new Uint8Array(24);
    new DataView(c.buffer).setUint32(0, 15, true);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_INFO, c)).toBe(-errno.EINVAL);
    expect(p.ioctl(d, VFIO_DEVICE_GET_INFO, 0x10)).toBe(-errno.EFAULT);
  });

  it("GET_REGION_INFO: config (no MMAP), BAR0 mmap-able, empty BARs and ROM, no VGA", () => {
    const cfg = regionArg(7);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, cfg)).toBe(0);
    expect(u32(cfg, 4)).toBe(3); // READ|WRITE, no MMAP
    expect(u64(cfg, 16)).toBe(4096n); // a PCI Express function
    expect(u64(cfg, 24)).toBe(7n << 40n);
    const bar0 = regionArg(0);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, bar0)).toBe(0);
    expect(u32(bar0, 4)).toBe(15); // READ|WRITE|MMAP|CAPS: the MSI-X table's BAR (see pci_regions)
    expect(u64(bar0, 16)).toBe(4096n);
    expect(u64(bar0, 24)).toBe(0n);
    for (const idx of [1, 2, 3, 4, 5, 6]) {
      const r = regionArg(idx);
      expect(p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, r)).toBe(0);
      expect([u32(r, 4), u64(r, 16), u64(r, 24)]).toEqual([0, 0n, BigInt(idx) << 40n]);
    }
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, regionArg(8))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, regionArg(9))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, regionArg(0, 31))).toBe(-errno.EINVAL);
    // A larger argsz is fine; nothing past minsz is looked at or written (a region without caps).
    const big = new Uint8Array(40).fill(0x77);
    big.set(regionArg(7, 40));
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, big)).toBe(0);
    expect([...big.subarray(32)]).toEqual(Array(8).fill(0x77));
  });

  it("config space: ids match sysfs; COMMAND bus master sets and clears; bounds", () => {
    const bdf = k.devices[0].bdf;
    const ids = new Uint8Array(4);
    expect(p.pread(d, ids, CFG)).toBe(4);
    const vendor = ids[0] | (ids[1] << 8);
    const device = ids[2] | (ids[3] << 8);
    expect(`0x${vendor.toString(16).padStart(4, "0")}\n`).toBe(p.readFile(`/sys/bus/pci/devices/${bdf}/vendor`));
    expect(`0x${device.toString(16).padStart(4, "0")}\n`).toBe(p.readFile(`/sys/bus/pci/devices/${bdf}/device`));
    const cmd = new Uint8Array(2);
    expect(p.pread(d, cmd, CFG + 4)).toBe(2);
    expect(cmd[0] & 4).toBe(0);
    expect(p.pwrite(d, new Uint8Array([cmd[0] | 4, cmd[1]]), CFG + 4)).toBe(2);
    expect(p.pread(d, cmd, CFG + 4)).toBe(2);
    expect(cmd[0] & 4).toBe(4);
    expect(p.pwrite(d, new Uint8Array([cmd[0] & ~4, cmd[1]]), CFG + 4)).toBe(2);
    expect(p.pread(d, cmd, CFG + 4)).toBe(2);
    expect(cmd[0] & 4).toBe(0);
    // Read-only ids.
    expect(p.pwrite(d, new Uint8Array([0, 0]), CFG)).toBe(2);
    expect(p.pread(d, ids, CFG)).toBe(4);
    expect(ids[0] | (ids[1] << 8)).toBe(vendor);
    // The whole config space reads; past it is EFAULT; count 0 is 0.
    expect(p.pread(d, new Uint8Array(4096), CFG)).toBe(4096);
    expect(p.pread(d, new Uint8Array(8), CFG + 4092)).toBe(-errno.EFAULT);
    expect(p.pread(d, new Uint8Array(0), CFG + 4096)).toBe(0);
    // Regions that do not exist, VGA, ROM.
    expect(p.pread(d, new Uint8Array(4), 9 * 2 ** 40)).toBe(-errno.EINVAL);
    expect(p.pread(d, new Uint8Array(4), 8 * 2 ** 40)).toBe(-errno.EINVAL);
    expect(p.pwrite(d, new Uint8Array(4), 6 * 2 ** 40)).toBe(-errno.EINVAL);
    expect(p.pread(d, new Uint8Array(4), 1 * 2 ** 40)).toBe(-errno.EINVAL);
    // A BAR sizing write reads back the size mask (4 KiB BAR).
    expect(p.pwrite(d, new Uint8Array([0xff, 0xff, 0xff, 0xff]), CFG + 0x10)).toBe(4);
    const bar = new Uint8Array(4);
    expect(p.pread(d, bar, CFG + 0x10)).toBe(4);
    expect(u32(bar, 0)).toBe(0xfffff000);
  });

  it("BAR0: pread/pwrite clipped at its end, and an mmap sees the same bytes", () => {
    expect(p.pwrite(d, new Uint8Array([1, 2, 3, 4]), 0x10)).toBe(4);
    const r = new Uint8Array(8);
    expect(p.pread(d, r, 4092)).toBe(4);
    expect(p.pread(d, r, 4096)).toBe(-errno.EINVAL);
    const at = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
    expect(at).toBeGreaterThan(0);
    const m = new Uint8Array(4);
    expect(p.readMemory(at + 0x10, m)).toBe(0);
    expect([...m]).toEqual([1, 2, 3, 4]);
    expect(p.writeMemory(at + 0x20, new Uint8Array([9]))).toBe(0);
    const one = new Uint8Array(1);
    expect(p.pread(d, one, 0x20)).toBe(1);
    expect(one[0]).toBe(9);
    expect(p.mmap(0, 8192, PROT_READ, MAP_SHARED, d, 0)).toBe(-errno.EINVAL);
    expect(p.mmap(0, 4096, PROT_READ, MAP_PRIVATE, d, 0)).toBe(-errno.EINVAL);
    expect(p.mmap(0, 4096, PROT_READ, MAP_SHARED, d, 7 * 2 ** 40)).toBe(-errno.EINVAL);
    // RESET clears the device's own state (its register window).
    expect(p.ioctl(d, VFIO_DEVICE_RESET, 0)).toBe(0);
    expect(p.pread(d, one, 0x20)).toBe(1);
    expect(one[0]).toBe(0);
  });

  it("GET_IRQ_INFO: INTx maskable, MSI 8 and MSI-X 16 (NORESIZE), ERR one (PCIe), REQ one", () => {
    const q = (index: number, argsz = 16) => {
      const a = struct(16, [[0, 4, argsz], [8, 4, index]]);
      const rc = p.ioctlBuf(d, VFIO_DEVICE_GET_IRQ_INFO, a);
      return rc < 0 ? rc : [u32(a, 4), u32(a, 12)];
    };
    expect(q(0)).toEqual([1 | 2 | 4, 1]);
    expect(q(1)).toEqual([1 | 8, 8]);
    expect(q(2)).toEqual([1 | 8, 16]);
    expect(q(3)).toEqual([1 | 8, 1]); // PCI Express: the error interrupt
    expect(q(4)).toEqual([1 | 8, 1]);
    expect(q(5)).toBe(-errno.EINVAL);
    expect(q(0, 15)).toBe(-errno.EINVAL);
  });

  it("SET_IRQS: INTx eventfd trigger, software trigger, disable; validation", () => {
    const efd = p.eventfd(0, 0x800);
    const set = (flags: number, index: number, start: number, count: number, data: number[] = [], argsz?: number) => {
      const a = struct(20 + data.length * 4, [[0, 4, argsz ?? 20 + data.length * 4], [4, 4, flags], [8, 4, index], [12, 4, start], [16, 4, count],
        ...data.map((v, j) => [20 + 4 * j, 4, v >>> 0] as [number, 4, number])]);
      return p.ioctlBuf(d, VFIO_DEVICE_SET_IRQS, a);
    };
    const TRIGGER = 1 << 5, EVENTFD = 1 << 2, NONE = 1;
    expect(set(TRIGGER | EVENTFD, 0, 0, 1, [efd])).toBe(0);
    const cnt = new Uint8Array(8);
    expect(p.read(efd, cnt)).toBe(-errno.EAGAIN);
    expect(set(TRIGGER | NONE, 0, 0, 1)).toBe(0);
    expect(p.read(efd, cnt)).toBe(8);
    expect(cnt[0]).toBe(1);
    expect(set(TRIGGER | NONE, 0, 0, 0)).toBe(0); // disable
    expect(set(TRIGGER | EVENTFD, 0, 0, 1, [efd], 23)).toBe(-errno.EINVAL); // data too short
    expect(set(TRIGGER | EVENTFD | NONE, 0, 0, 1, [efd])).toBe(-errno.EINVAL);
    expect(set(TRIGGER | NONE, 1, 0, 1)).toBe(-errno.EINVAL); // MSI not enabled
    expect(set(TRIGGER | NONE, 5, 0, 1)).toBe(-errno.EINVAL);
    expect(set(1 << 6 | NONE, 0, 0, 1)).toBe(-errno.EINVAL);
    expect(set(TRIGGER | EVENTFD, 4, 0, 1, [999])).toBe(-errno.EBADF);
    expect(set(TRIGGER | EVENTFD, 4, 0, 1, [d])).toBe(-errno.EINVAL);
  });

  it("DEVICE_FEATURE core checks; unknown ioctls ENOTTY", () => {
    const f = (flags: number, argsz = 8) => p.ioctlBuf(d, VFIO_DEVICE_FEATURE, struct(16, [[0, 4, argsz], [4, 4, flags]]));
    expect(f(0, 7)).toBe(-errno.EINVAL);
    expect(f(1 << 19)).toBe(-errno.EINVAL);
    expect(f((1 << 16) | (1 << 17) | 1)).toBe(-errno.EINVAL);
    expect(f((1 << 16) | 1)).toBe(-errno.ENOTTY); // MIGRATION without mig ops
    expect(f((1 << 16) | 0)).toBe(-errno.ENOTTY); // PCI_VF_TOKEN: not a PF
    expect(f((1 << 17) | 11)).toBe(-errno.ENOTTY); // DMA_BUF: no export modelled
    expect(p.ioctl(d, 0x3b79, 0)).toBe(-errno.ENOTTY);
  });

  it("DEVICE_FEATURE LOW_POWER_*: vfio_check_feature's rules, one entry at a time, BAR mmaps fault while engaged, a wake-up eventfd ends it on the next ioctl or region access", () => {
    const GET = 1 << 16, SET = 1 << 17, PROBE = 1 << 18;
    const ENTRY = 3, WAKEUP = 4, EXIT = 5;
    const f = (flags: number, payload: number[] = [], argsz = 8 + 4 * payload.length) =>
      p.ioctlBuf(d, VFIO_DEVICE_FEATURE, struct(8 + 4 * Math.max(payload.length, 2),
        [[0, 4, argsz], [4, 4, flags], ...payload.map((v, i) => [8 + 4 * i, 4, v >>> 0] as [number, 4, number])]));
    for (const feat of [ENTRY, WAKEUP, EXIT]) {
      expect(f(PROBE | feat), `probe ${feat}`).toBe(0);
      expect(f(PROBE | SET | feat)).toBe(0);
      expect(f(PROBE | GET | feat)).toBe(-errno.EINVAL); // SET only
      expect(f(GET | feat)).toBe(-errno.EINVAL);
      expect(f(feat)).toBe(-errno.EINVAL); // neither GET nor SET
    }
    // WITH_WAKEUP: an 8-byte payload, a non-negative eventfd.
    expect(f(SET | WAKEUP, [0], 12)).toBe(-errno.EINVAL);
    expect(f(SET | WAKEUP, [-1, 0])).toBe(-errno.EINVAL);
    expect(f(SET | WAKEUP, [999, 0])).toBe(-errno.EBADF);
    expect(f(SET | WAKEUP, [d, 0])).toBe(-errno.EINVAL); // not an eventfd
    // Plain entry: the BAR mmap faults until exit; a second entry is EINVAL.
    const bar = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
    expect(bar).toBeGreaterThan(0);
    const b = new Uint8Array(4);
    expect(p.readMemory(bar, b)).toBe(0);
    expect(f(SET | ENTRY)).toBe(0);
    expect(p.readMemory(bar, b)).toBe(-errno.EFAULT);
    expect(f(SET | ENTRY)).toBe(-errno.EINVAL);
    expect(p.pread(d, b, CFG)).toBe(4); // a region read wakes it for the call only
    expect(p.readMemory(bar, b)).toBe(-errno.EFAULT);
    expect(f(SET | EXIT)).toBe(0);
    expect(p.readMemory(bar, b)).toBe(0);
    expect(f(SET | EXIT)).toBe(0); // not engaged: nothing to do
    // With a wake-up eventfd: the next ioctl signals it once and ends low power.
    const efd = p.eventfd(0, 0);
    expect(f(SET | WAKEUP, [efd, 0])).toBe(0);
    expect(p.readMemory(bar, b)).toBe(-errno.EFAULT);
    expect(f(SET | WAKEUP, [efd, 0])).toBe(0); // the call's own resume ended the first entry
    const cnt = new Uint8Array(8);
    expect(p.read(efd, cnt)).toBe(8);
    expect(new DataView(cnt.buffer).getBigUint64(0, true)).toBe(1n);
    expect(p.pwrite(d, new Uint8Array(2), CFG + 0x40)).toBe(2); // a region access resumes too
    expect(p.read(efd, cnt)).toBe(8);
    expect(p.readMemory(bar, b)).toBe(0);
    expect(k.stats().openFiles).toBe(3);
    expect(p.close(efd)).toBe(0);
    expect(k.stats().openFiles).toBe(2); // the entry's reference went with the exit
    expect(p.munmap(bar, 4096)).toBe(0);
  });
});
