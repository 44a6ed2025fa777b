// A userspace driver for the ioat model written against the raw syscall layer alone (no
// IoatDriver): /dev/iommu and the device cdev opened, BIND, IOAS_ALLOC, ATTACH, IOAS_MAP of
// its buffers, BAR0 mmapped at the offset GET_REGION_INFO gives, MSI-X bound to an eventfd
// with VFIO_DEVICE_SET_IRQS, bus mastering set with a config-space pwrite. It queues a chain
// of descriptors, rings DMACOUNT once and waits for the completion write-back and the
// interrupt, as the kernel's ioat driver does. Then an IOAS_UNMAP of a buffer the running
// chain uses: the descriptors after it fault with the CHANERR bit of the side that faulted
// (registers.h IOAT_CHANERR_SRC_ADDR_ERR / DEST_ADDR_ERR), the channel halts, the error
// interrupt fires, and once the unmap has returned the device writes none of its pages.

import { afterEach, describe, expect, it } from "vitest";
import {
  createKernel, EFD_CLOEXEC, EFD_NONBLOCK, MAP_ANONYMOUS, MAP_SHARED, O_RDWR, POLLIN, PROT_READ, PROT_WRITE,
  type Kernel, type Process,
} from "../src/index.js";
import {
  errno, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, ioasMapArg, struct, u32, u64,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_SET_IRQS,
} from "./vfio/util.js";
import { lastFault } from "./toolkit/iommu.js";
import { firstDiff, pattern } from "./toolkit/memory.js";
import { until } from "./toolkit/wait.js";

// include/uapi/linux/vfio.h
const VFIO_PCI_BAR0_REGION_INDEX = 0, VFIO_PCI_CONFIG_REGION_INDEX = 7, VFIO_PCI_MSIX_IRQ_INDEX = 2;
const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2, VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;
// include/uapi/linux/pci_regs.h
const PCI_COMMAND = 0x04, PCI_COMMAND_MEMORY = 0x2, PCI_COMMAND_MASTER = 0x4, PCI_COMMAND_INTX_DISABLE = 0x400;
// drivers/dma/ioat/registers.h: the device block, then channel 0 at IOAT_CHANNEL_MMIO_SIZE.
const INTRCTRL = 0x03, INTRCTRL_MASTER_INT_EN = 0x01, INTRCTRL_MSIX_VECTOR_CONTROL = 0x08;
const CH = 0x80;
const CHANCTRL = CH + 0x00, CHANCMD = CH + 0x04, DMACOUNT = CH + 0x06, CHANSTS = CH + 0x08;
const CHAINADDR = CH + 0x10, CHANCMP = CH + 0x18, CDAR = CH + 0x20, CHANERR = CH + 0x28;
const CHANCTRL_INT_REARM = 0x0001, CHANCTRL_ANY_ERR_ABORT_EN = 0x0008, CHANCTRL_ERR_INT_EN = 0x0010;
const CHANCMD_RESET = 0x20;
const CHANSTS_ACTIVE = 0, CHANSTS_DONE = 1, CHANSTS_HALTED = 3;
const IOAT_CHANERR_SRC_ADDR_ERR = 0x0001, IOAT_CHANERR_DEST_ADDR_ERR = 0x0002;
// drivers/dma/ioat/hw.h: struct ioat_dma_descriptor (64 bytes) and its ctl bits.
const DESC = 64, DESC_INT_EN = 1 << 0, DESC_COMPL_WRITE = 1 << 3;

const PAGE = 4096;

interface Drv {
  k: Kernel; p: Process; dev: number; iommufd: number; ioas: number;
  bar0: number; cfg: bigint; efd: number;
}

let drv: Drv | null = null;
afterEach(async () => { await drv?.k.close(); drv = null; });

const ok = (rc: number, what: string) => { expect(rc, what).toBeGreaterThanOrEqual(0); return rc; };

/** MMIO through the BAR0 mapping. */
const mmioW = (d: Drv, off: number, size: 1 | 2 | 4 | 8, v: number | bigint) =>
  ok(d.p.writeMemory(d.bar0 + off, struct(size, [[0, size, v]])), `store BAR0+${off.toString(16)}`);
function mmioR(d: Drv, off: number, size: 4 | 8): bigint {
  const b = new Uint8Array(size);
  ok(d.p.readMemory(d.bar0 + off, b), `load BAR0+${off.toString(16)}`);
  return size === 8 ? u64(b, 0) : BigInt(u32(b, 0));
}
const mmioR8 = (d: Drv, off: number) => {
  const b = new Uint8Array(1);
  ok(d.p.readMemory(d.bar0 + off, b), "load");
  return b[0];
};

/** A buffer of the driver's: anonymous shared memory, IOAS_MAPped at a fixed IOVA. */
function dmaBuffer(d: Drv, size: number, iova: bigint): number {
  const va = d.p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ok(va, "mmap");
  const map = ioasMapArg(d.ioas, va, size, iova);
  expect(d.p.ioctlBuf(d.iommufd, IOMMU_IOAS_MAP, map)).toBe(0);
  return va;
}

function ioasUnmap(d: Drv, iova: bigint, length: number): void {
  // struct iommu_ioas_unmap { size, ioas_id, iova u64, length u64 }
  const arg = struct(24, [[0, 4, 24], [4, 4, d.ioas], [8, 8, iova], [16, 8, length]]);
  expect(d.p.ioctlBuf(d.iommufd, IOMMU_IOAS_UNMAP, arg)).toBe(0);
  expect(u64(arg, 16)).toBe(BigInt(length));
}

/** The driver's bring-up, step by step on the raw layer. */
async function bringUp(): Promise<Drv> {
  const k = await createKernel({ memoryBytes: 128 << 20, devices: [{ bdf: "0000:00:04.0", model: "ioat" }] });
  const p = k.createProcess({ memlockBytes: Infinity });
  const iommufd = ok(p.open("/dev/iommu", O_RDWR), "open /dev/iommu");
  const dev = ok(p.open("/dev/vfio/devices/vfio0", O_RDWR), "open vfio0");
  // struct vfio_device_bind_iommufd { argsz, flags, iommufd, out_devid }
  const bindArg = struct(24, [[0, 4, 24], [8, 4, iommufd]]);
  expect(p.ioctlBuf(dev, VFIO_DEVICE_BIND_IOMMUFD, bindArg)).toBe(0);
  expect(u32(bindArg, 12)).toBeGreaterThan(0);
  // struct iommu_ioas_alloc { size, flags, out_ioas_id }
  const alloc = struct(12, [[0, 4, 12]]);
  expect(p.ioctlBuf(iommufd, IOMMU_IOAS_ALLOC, alloc)).toBe(0);
  const ioas = u32(alloc, 8);
  // struct vfio_device_attach_iommufd_pt { argsz, flags, pt_id }
  expect(p.ioctlBuf(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, struct(16, [[0, 4, 16], [8, 4, ioas]]))).toBe(0);

  // struct vfio_region_info { argsz, flags, index, cap_offset, size u64, offset u64 }
  const region = (index: number) => {
    const info = struct(32, [[0, 4, 32], [8, 4, index]]);
    expect(p.ioctlBuf(dev, VFIO_DEVICE_GET_REGION_INFO, info)).toBe(0);
    return { size: u64(info, 16), offset: u64(info, 24) };
  };
  const bar = region(VFIO_PCI_BAR0_REGION_INDEX);
  expect(bar.size).toBe(4096n);
  const cfg = region(VFIO_PCI_CONFIG_REGION_INDEX).offset;
  const bar0 = ok(p.mmap(0, Number(bar.size), PROT_READ | PROT_WRITE, MAP_SHARED, dev, bar.offset), "mmap BAR0");

  // Memory decode and bus mastering on: a 2-byte pwrite of PCI_COMMAND.
  expect(p.pwrite(dev, struct(2, [[0, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE]]), cfg + BigInt(PCI_COMMAND))).toBe(2);
  const cmd = new Uint8Array(2);
  expect(p.pread(dev, cmd, cfg + BigInt(PCI_COMMAND))).toBe(2);
  expect(cmd[0] & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)).toBe(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

  // MSI-X: the vector count, then vector 0 bound to a non-blocking eventfd.
  const irq = struct(16, [[0, 4, 16], [8, 4, VFIO_PCI_MSIX_IRQ_INDEX]]);
  expect(p.ioctlBuf(dev, VFIO_DEVICE_GET_IRQ_INFO, irq)).toBe(0);
  expect(u32(irq, 12)).toBe(1);
  const efd = ok(p.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd");
  // struct vfio_irq_set { argsz, flags, index, start, count, data[] }
  const set = struct(24, [[0, 4, 24], [4, 4, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER],
    [8, 4, VFIO_PCI_MSIX_IRQ_INDEX], [12, 4, 0], [16, 4, 1], [20, 4, efd]]);
  expect(p.ioctlBuf(dev, VFIO_DEVICE_SET_IRQS, set)).toBe(0);

  const d: Drv = { k, p, dev, iommufd, ioas, bar0, cfg, efd };
  drv = d;
  // The channel reset: CHANCMD.RESET reads back 0 when done, the channel comes up HALTED.
  mmioW(d, CHANCMD, 1, CHANCMD_RESET);
  await until(() => (mmioR8(d, CHANCMD) & CHANCMD_RESET) === 0, "CHANCMD.RESET to clear");
  expect(Number(mmioR(d, CHANSTS, 8) & 7n)).toBe(CHANSTS_HALTED);
  mmioW(d, INTRCTRL, 1, INTRCTRL_MASTER_INT_EN | INTRCTRL_MSIX_VECTOR_CONTROL);
  return d;
}


/** The interrupt: poll() on the eventfd, then its count (the read resets it). */
function waitIrq(d: Drv, ms: number): bigint | number {
  const fds = [{ fd: d.efd, events: POLLIN, revents: 0 }];
  const n = d.p.poll(fds, ms);
  if (n === 0) return 0;
  const v = new Uint8Array(8);
  expect(d.p.read(d.efd, v)).toBe(8);
  return u64(v, 0);
}

function descriptor(size: number, ctl: number, src: bigint, dst: bigint, next: bigint): Uint8Array {
  return struct(DESC, [[0, 4, size], [4, 4, ctl], [8, 8, src], [16, 8, dst], [24, 8, next]]);
}



const RING_IOVA = 0x10_0000n, SRC_IOVA = 0x100_0000n, DST_IOVA = 0x200_0000n;

describe("ioat driven from the raw syscall layer", () => {
  it("a chain of 48 memcpy descriptors, one DMACOUNT doorbell: completion written back at CHANCMP, every destination byte, the MSI-X interrupt on the eventfd", async () => {
    const d = await bringUp();
    const N = 48;
    // Sizes from 64 B to 16 KiB, each copy at its own offsets.
    const sizes = Array.from({ length: N }, (_, j) => 64 << (j % 9));
    const offs: number[] = [];
    let total = 0;
    for (const s of sizes) { offs.push(total); total += s; }
    const bytes = Math.ceil(total / PAGE) * PAGE;
    const ring = dmaBuffer(d, PAGE * 2, RING_IOVA);
    const src = dmaBuffer(d, bytes, SRC_IOVA);
    const dst = dmaBuffer(d, bytes, DST_IOVA);
    const data = pattern(bytes, 0x1234);
    expect(d.p.writeMemory(src, data)).toBe(0);
    expect(d.p.writeMemory(dst, new Uint8Array(bytes).fill(0xee))).toBe(0);
    // The last descriptor asks for the completion write-back and the interrupt.
    for (let j = 0; j < N; j++) {
      const ctl = j === N - 1 ? DESC_COMPL_WRITE | DESC_INT_EN : 0;
      const next = RING_IOVA + BigInt(DESC * ((j + 1) % N));
      const at = BigInt(offs[j]);
      expect(d.p.writeMemory(ring + DESC * j, descriptor(sizes[j], ctl, SRC_IOVA + at, DST_IOVA + at, next))).toBe(0);
    }
    // The completion area: the second page of the ring buffer, poisoned.
    const cmpVa = ring + PAGE, cmpIova = RING_IOVA + BigInt(PAGE);
    expect(d.p.writeMemory(cmpVa, new Uint8Array(8).fill(0xff))).toBe(0);
    mmioW(d, CHANCMP, 8, cmpIova);
    mmioW(d, CHAINADDR, 8, RING_IOVA);
    mmioW(d, CHANCTRL, 2, CHANCTRL_INT_REARM | CHANCTRL_ANY_ERR_ABORT_EN | CHANCTRL_ERR_INT_EN);
    expect(waitIrq(d, 0)).toBe(0);
    mmioW(d, DMACOUNT, 2, N);

    // The driver watches its completion word, as the kernel's ioat driver does.
    const last = RING_IOVA + BigInt(DESC * (N - 1));
    const completion = () => {
      const c = new Uint8Array(8);
      ok(d.p.readMemory(cmpVa, c), "completion read");
      return u64(c, 0);
    };
    await until(() => completion() === (last | BigInt(CHANSTS_DONE)), "the completion write-back");
    expect(mmioR(d, CHANSTS, 8)).toBe(last | BigInt(CHANSTS_DONE));
    expect(mmioR(d, CHANERR, 4)).toBe(0n);
    expect(waitIrq(d, 5000)).toBe(1n);
    expect(waitIrq(d, 0)).toBe(0);

    const out = new Uint8Array(bytes);
    expect(d.p.readMemory(dst, out)).toBe(0);
    expect(firstDiff(out.subarray(0, total), data.subarray(0, total))).toBe(-1);
    // Past the last copy the destination is as it was.
    expect(out.subarray(total).every((b) => b === 0xee)).toBe(true);

    // The interrupt consumed CHANCTRL's re-arm: a second run completes without one until the
    // driver re-arms it.
    expect(d.p.writeMemory(cmpVa, new Uint8Array(8).fill(0xff))).toBe(0);
    mmioW(d, DMACOUNT, 2, 2 * N);
    await until(() => completion() === (last | BigInt(CHANSTS_DONE)), "the second completion");
    expect(waitIrq(d, 50)).toBe(0);
    mmioW(d, CHANCTRL, 2, CHANCTRL_INT_REARM | CHANCTRL_ANY_ERR_ABORT_EN | CHANCTRL_ERR_INT_EN);
    mmioW(d, DMACOUNT, 2, 3 * N);
    expect(waitIrq(d, 5000)).toBe(1n);
  });

  for (const side of ["destination", "source"] as const) {
    const bit = side === "destination" ? IOAT_CHANERR_DEST_ADDR_ERR : IOAT_CHANERR_SRC_ADDR_ERR;
    it(`IOAS_UNMAP of the ${side} buffer while a long chain runs: later descriptors fault with ${side === "destination" ? "DEST_ADDR_ERR" : "SRC_ADDR_ERR"}, the chain halts, the error interrupt fires, no byte is written after the unmap returns`, async () => {
      const d = await bringUp();
      // A ring of 16 descriptors of 64 KiB, run 65535 times round (4 GiB of copies: far
      // longer than the test waits before it unmaps).
      const R = 16, SZ = 64 * 1024, COUNT = 0xffff, BYTES = R * SZ;
      const ring = dmaBuffer(d, PAGE, RING_IOVA);
      const src = dmaBuffer(d, BYTES, SRC_IOVA);
      const dst = dmaBuffer(d, BYTES, DST_IOVA);
      const data = pattern(BYTES, 0xbeef);
      expect(d.p.writeMemory(src, data)).toBe(0);
      for (let j = 0; j < R; j++) {
        const at = BigInt(j * SZ);
        expect(d.p.writeMemory(ring + DESC * j, descriptor(SZ, 0, SRC_IOVA + at, DST_IOVA + at, RING_IOVA + BigInt(DESC * ((j + 1) % R))))).toBe(0);
      }
      mmioW(d, CHAINADDR, 8, RING_IOVA);
      mmioW(d, CHANCTRL, 2, CHANCTRL_INT_REARM | CHANCTRL_ANY_ERR_ABORT_EN | CHANCTRL_ERR_INT_EN);
      mmioW(d, DMACOUNT, 2, COUNT);

      // Running: the last descriptor of the ring has copied (one lap done), the channel ACTIVE.
      const lastPage = new Uint8Array(SZ);
      await until(() => {
        ok(d.p.readMemory(dst + (R - 1) * SZ, lastPage), "read");
        return lastPage.every((b, i) => b === data[(R - 1) * SZ + i]);
      }, "the first lap");
      expect(Number(mmioR(d, CHANSTS, 8) & 7n)).toBe(CHANSTS_ACTIVE);

      const [iova, va] = side === "destination" ? [DST_IOVA, dst] : [SRC_IOVA, src];
      ioasUnmap(d, iova, BYTES);
      // From here on the device may not write a byte of the destination: a marker in all of it.
      const marker = new Uint8Array(BYTES).fill(0x5a);
      expect(d.p.writeMemory(dst, marker)).toBe(0);

      await until(() => Number(mmioR(d, CHANSTS, 8) & 7n) === CHANSTS_HALTED, "HALTED");
      expect(mmioR(d, CHANERR, 4)).toBe(BigInt(bit));
      // CDAR is the descriptor that faulted; CHANSTS holds the one before it, the last that
      // completed.
      const cdar = mmioR(d, CDAR, 8);
      const j = Number(cdar - RING_IOVA) / DESC;
      expect(Number.isInteger(j) && j >= 0 && j < R).toBe(true);
      const prev = RING_IOVA + BigInt(DESC * ((j + R - 1) % R));
      expect(mmioR(d, CHANSTS, 8)).toBe(prev | BigInt(CHANSTS_HALTED));
      // The error interrupt, once.
      expect(waitIrq(d, 5000)).toBe(1n);
      expect(waitIrq(d, 0)).toBe(0);
      // The fault the IOMMU recorded is in the faulting descriptor's range on that side.
      const f = lastFault(d.k);
      expect(f.write).toBe(side === "destination");
      expect(f.iova >= iova + BigInt(j * SZ) && f.iova < iova + BigInt((j + 1) * SZ)).toBe(true);

      // The chain stays halted (the doorbell is ignored while CHANERR holds an error), and
      // nothing reached the destination after the unmap.
      mmioW(d, DMACOUNT, 2, 1);
      await new Promise((res) => setTimeout(res, 30));
      expect(mmioR(d, CHANSTS, 8)).toBe(prev | BigInt(CHANSTS_HALTED));
      const out = new Uint8Array(BYTES);
      expect(d.p.readMemory(dst, out)).toBe(0);
      expect(out.findIndex((b) => b !== 0x5a)).toBe(-1);
      // The unmapped buffer is still the process's memory, untouched by the unmap itself.
      expect(d.p.readMemory(va, out)).toBe(0);
      if (side === "source") expect(firstDiff(out, data)).toBe(-1);

      // A reset and the buffer mapped again: the channel runs once more.
      mmioW(d, CHANERR, 4, bit);
      mmioW(d, CHANCMD, 1, CHANCMD_RESET);
      await until(() => (mmioR8(d, CHANCMD) & CHANCMD_RESET) === 0, "the reset");
      const map = ioasMapArg(d.ioas, va, BYTES, iova);
      expect(d.p.ioctlBuf(d.iommufd, IOMMU_IOAS_MAP, map)).toBe(0);
      mmioW(d, CHAINADDR, 8, RING_IOVA);
      mmioW(d, DMACOUNT, 2, R);
      await until(() => mmioR(d, CHANSTS, 8) === ((RING_IOVA + BigInt(DESC * (R - 1))) | BigInt(CHANSTS_DONE)), "DONE after the remap");
      expect(d.p.readMemory(dst, out)).toBe(0);
      expect(firstDiff(out, data)).toBe(-1);
      expect(mmioR(d, CHANERR, 4)).toBe(0n);
      expect(d.p.read(d.efd, new Uint8Array(8))).toBe(-errno.EAGAIN);
    }, 30_000);
  }
});

