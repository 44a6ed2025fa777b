// A userspace driver for the I/OAT DMA engine with the operations of the kernel's vfio
// selftest driver (tools/testing/selftests/vfio/lib/drivers/ioat/ioat.c): probe, init,
// remove, memcpy_start, memcpy_wait, send_msi. Written against the raw syscall layer only:
// config space by pread/pwrite, BAR0 through an mmap of the device file, MSI-X through
// VFIO_DEVICE_SET_IRQS with eventfds, descriptors in the caller's DMA-mapped memory.

import { errno } from "../uapi/errno.js";
import { VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_SET_IRQS } from "../uapi/ioctl.js";
import { EFD_CLOEXEC, MAP_SHARED, PROT_READ, PROT_WRITE } from "../uapi/posix.js";
import {
  VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_INDEX_TO_OFFSET, VFIO_PCI_MSIX_IRQ_INDEX,
} from "../uapi/vfio.js";

/** The raw calls the driver makes: a `Process` has them all. */
export interface DriverSyscalls {
  ioctlBuf(fd: number, request: number, arg: Uint8Array): number;
  pread(fd: number, buf: Uint8Array, offset: number | bigint): number;
  pwrite(fd: number, buf: Uint8Array, offset: number | bigint): number;
  mmap(addr: number, length: number, prot: number, flags: number, fd: number, offset: number | bigint): number;
  munmap(addr: number, length: number): number;
  readMemory(addr: number, out: Uint8Array): number;
  writeMemory(addr: number, data: Uint8Array): number;
  eventfd(initval?: number, flags?: number): number;
  close(fd: number): number;
}

/** Memory the driver owns for its descriptors: `size` bytes at `vaddr`, mapped for DMA at `iova`. */
export interface DmaRegion { vaddr: number; iova: bigint; size: number }

// Config space and BAR0 offsets (drivers/dma/ioat/registers.h).
const PCI_VENDOR_ID = 0x00;
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MEMORY = 0x2;
const PCI_COMMAND_MASTER = 0x4;
const PCI_COMMAND_INTX_DISABLE = 0x400;
const IOAT_PCI_DMAUNCERRSTS_OFFSET = 0x148;
const IOAT_PCI_CHANERR_INT_OFFSET = 0x180;
const IOAT_XFERCAP_OFFSET = 0x01;
const IOAT_INTRCTRL_OFFSET = 0x03;
const IOAT_INTRCTRL_MSIX_VECTOR_CONTROL = 0x08;
const IOAT_VER_OFFSET = 0x08;
const IOAT_VER_3_2 = 0x32;
const IOAT_VER_3_3 = 0x33;
const CHAN = 0x80; // IOAT_CHANNEL_MMIO_SIZE: channel 0's registers
const IOAT_CHANCTRL_OFFSET = CHAN + 0x00;
const IOAT2_CHANCMD_OFFSET = CHAN + 0x04;
const IOAT_CHAN_DMACOUNT_OFFSET = CHAN + 0x06;
const IOAT_CHANSTS_OFFSET = CHAN + 0x08;
const IOAT2_CHAINADDR_OFFSET = CHAN + 0x10;
const IOAT_CHANERR_OFFSET = CHAN + 0x28;
const IOAT_CHANCTRL_INT_REARM = 0x0001;
const IOAT_CHANCTRL_ANY_ERR_ABORT_EN = 0x0008;
const IOAT_CHANCMD_RESET = 0x20;
const IOAT_CHANCMD_SUSPEND = 0x04;
const IOAT_CHANSTS_DONE = 0x1;
const IOAT_CHANSTS_SUSPENDED = 0x2;
const IOAT_CHANSTS_HALTED = 0x3;
const IOAT_DESC_INT_EN = 1;
const PCI_VENDOR_ID_INTEL = 0x8086;
const PCI_DEVICE_ID_INTEL_IOAT_SKX = 0x2021;
/** DMACOUNT is 16 bits wide. */
const IOAT_DMACOUNT_MAX = 0xffff;
const BAR0_MAP = 4096;

/** The driver's state in its region: one descriptor, then send_msi's 8-byte source and destination. */
const STATE_DESC = 0;
const STATE_MSI_SRC = 64;
const STATE_MSI_DST = 72;
const STATE_BYTES = 80;

const le = (size: number, v: number | bigint): Uint8Array => {
  const b = new Uint8Array(size);
  const d = new DataView(b.buffer);
  if (size === 8) d.setBigUint64(0, BigInt(v), true);
  else if (size === 4) d.setUint32(0, Number(v), true);
  else if (size === 2) d.setUint16(0, Number(v), true);
  else d.setUint8(0, Number(v));
  return b;
};

/** A failed raw call: the driver's operations throw it, with the call and the errno. */
class DriverError extends Error {
  constructor(what: string, readonly errno: number) {
    super(`ioat: ${what} failed (errno ${errno})`);
  }
}

const check = (what: string, rc: number): number => {
  if (rc < 0) throw new DriverError(what, -rc);
  return rc;
};

/**
 * The I/OAT channel 0 of one device file, driven from this thread. `probe` first (it maps
 * BAR0), then `init`; `memcpy` / `memcpyStart` + `memcpyWait` move bytes between IOVAs,
 * `sendMsi` has the device raise its MSI-X vector, `remove` undoes `init`, `close` unmaps BAR0.
 */
export class IoatDriver {
  /** Largest size of one memcpy (1 << XFERCAP) and count of one memcpyStart (DMACOUNT's range). */
  maxMemcpySize = 0;
  readonly maxMemcpyCount = IOAT_DMACOUNT_MAX;
  /** The MSI-X vector the driver's interrupts use, and the eventfd bound to each vector. */
  readonly msi = 0;
  msiEventfds: number[] = [];

  private constructor(private readonly sys: DriverSyscalls, readonly fd: number, readonly region: DmaRegion,
    /** User address of the BAR0 mapping. */
    readonly bar0: number) {}

  /**
   * ioat_probe: the device's ids are Intel's I/OAT (Skylake-SP) and CBVER is 3.2 or 3.3; maps
   * BAR0. The driver, or -EINVAL for another device (-errno when a call fails).
   */
  static probe(sys: DriverSyscalls, fd: number, region: DmaRegion): IoatDriver | number {
    if (region.size < STATE_BYTES) return -errno.EINVAL;
    const ids = new Uint8Array(4);
    const cfg = Number(VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX));
    const rc = sys.pread(fd, ids, cfg + PCI_VENDOR_ID);
    if (rc < 0) return rc;
    const v = new DataView(ids.buffer);
    if (v.getUint16(0, true) !== PCI_VENDOR_ID_INTEL || v.getUint16(2, true) !== PCI_DEVICE_ID_INTEL_IOAT_SKX) return -errno.EINVAL;
    // struct vfio_region_info { argsz, flags, index, cap_offset, size u64 @16, offset u64 @24 }
    const info = new Uint8Array(32);
    const iv = new DataView(info.buffer);
    iv.setUint32(0, 32, true);
    iv.setUint32(8, VFIO_PCI_BAR0_REGION_INDEX, true);
    const r = sys.ioctlBuf(fd, VFIO_DEVICE_GET_REGION_INFO, info);
    if (r < 0) return r;
    const bar0 = sys.mmap(0, BAR0_MAP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, iv.getBigUint64(24, true));
    if (bar0 < 0) return bar0;
    const d = new IoatDriver(sys, fd, region, bar0);
    const ver = d.read(IOAT_VER_OFFSET, 1);
    if (ver !== IOAT_VER_3_2 && ver !== IOAT_VER_3_3) {
      sys.munmap(bar0, BAR0_MAP);
      return -errno.EINVAL;
    }
    return d;
  }

  // ---- register access: MMIO loads and stores through the BAR0 mapping ---------------------

  private read(off: number, size: 1 | 2 | 4 | 8): number | bigint {
    const b = new Uint8Array(size);
    check("BAR0 load", this.sys.readMemory(this.bar0 + off, b));
    const v = new DataView(b.buffer);
    return size === 8 ? v.getBigUint64(0, true) : size === 4 ? v.getUint32(0, true) : size === 2 ? v.getUint16(0, true) : b[0];
  }

  private write(off: number, size: 1 | 2 | 4 | 8, value: number | bigint): void {
    check("BAR0 store", this.sys.writeMemory(this.bar0 + off, le(size, value)));
  }

  private configRead(off: number): number {
    const b = new Uint8Array(4);
    check("config read", this.sys.pread(this.fd, b, Number(VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX)) + off));
    return new DataView(b.buffer).getUint32(0, true);
  }

  private configWrite(off: number, size: 2 | 4, value: number): void {
    check("config write", this.sys.pwrite(this.fd, le(size, value), Number(VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX)) + off));
  }

  private status(): number {
    return Number((this.read(IOAT_CHANSTS_OFFSET, 8) as bigint) & 7n);
  }

  private toIova(offset: number): bigint {
    return this.region.iova + BigInt(offset);
  }

  /** ioat_clear_errors: the error registers in config space and CHANERR, written back to clear. */
  private clearErrors(): void {
    this.configWrite(IOAT_PCI_CHANERR_INT_OFFSET, 4, this.configRead(IOAT_PCI_CHANERR_INT_OFFSET));
    this.configWrite(IOAT_PCI_CHANERR_INT_OFFSET, 4, this.configRead(IOAT_PCI_DMAUNCERRSTS_OFFSET));
    this.write(IOAT_CHANERR_OFFSET, 4, this.read(IOAT_CHANERR_OFFSET, 4));
  }

  /** ioat_reset: errors cleared, CHANCMD RESET until it reads back clear; the channel halts. */
  private reset(): void {
    this.clearErrors();
    this.write(IOAT2_CHANCMD_OFFSET, 1, IOAT_CHANCMD_RESET);
    const end = Date.now() + 5000;
    while (Number(this.read(IOAT2_CHANCMD_OFFSET, 1)) & IOAT_CHANCMD_RESET) {
      if (Date.now() > end) throw new DriverError("channel reset (CHANCMD.RESET never cleared)", errno.ETIMEDOUT);
    }
    if (this.status() !== IOAT_CHANSTS_HALTED) throw new DriverError("channel reset (not HALTED after it)", errno.EIO);
  }

  /** MSI-X with one eventfd per vector (VFIO_DEVICE_SET_IRQS, DATA_EVENTFD | ACTION_TRIGGER). */
  private msixEnable(): void {
    // struct vfio_irq_info { argsz, flags, index, count }
    const info = new Uint8Array(16);
    const iv = new DataView(info.buffer);
    iv.setUint32(0, 16, true);
    iv.setUint32(8, VFIO_PCI_MSIX_IRQ_INDEX, true);
    check("VFIO_DEVICE_GET_IRQ_INFO", this.sys.ioctlBuf(this.fd, VFIO_DEVICE_GET_IRQ_INFO, info));
    const count = iv.getUint32(12, true);
    if (count === 0) throw new DriverError("MSI-X (the device has no vectors)", errno.EINVAL);
    const fds: number[] = [];
    for (let i = 0; i < count; i++) fds.push(check("eventfd", this.sys.eventfd(0, EFD_CLOEXEC)));
    const set = new Uint8Array(20 + 4 * count);
    const sv = new DataView(set.buffer);
    sv.setUint32(0, set.length, true);
    sv.setUint32(4, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, true);
    sv.setUint32(8, VFIO_PCI_MSIX_IRQ_INDEX, true);
    sv.setUint32(16, count, true);
    fds.forEach((f, i) => sv.setInt32(20 + 4 * i, f, true));
    const rc = this.sys.ioctlBuf(this.fd, VFIO_DEVICE_SET_IRQS, set);
    if (rc < 0) {
      for (const f of fds) this.sys.close(f);
      throw new DriverError("VFIO_DEVICE_SET_IRQS (MSI-X enable)", -rc);
    }
    this.msiEventfds = fds;
  }

  private msixDisable(): void {
    const set = new Uint8Array(20);
    const sv = new DataView(set.buffer);
    sv.setUint32(0, 20, true);
    sv.setUint32(4, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, true);
    sv.setUint32(8, VFIO_PCI_MSIX_IRQ_INDEX, true);
    check("VFIO_DEVICE_SET_IRQS (MSI-X disable)", this.sys.ioctlBuf(this.fd, VFIO_DEVICE_SET_IRQS, set));
    for (const f of this.msiEventfds) this.sys.close(f);
    this.msiEventfds = [];
  }

  // ---- the selftest driver's operations ----------------------------------------------------

  /** ioat_init: memory decode and bus mastering on, the channel reset, MSI-X vectors enabled. */
  init(): void {
    this.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
    this.reset();
    this.write(IOAT_INTRCTRL_OFFSET, 1, IOAT_INTRCTRL_MSIX_VECTOR_CONTROL);
    this.msixEnable();
    this.maxMemcpySize = 2 ** Number(this.read(IOAT_XFERCAP_OFFSET, 1));
  }

  /** ioat_remove: the channel reset, MSI-X disabled (its eventfds closed). */
  remove(): void {
    this.reset();
    this.msixDisable();
  }

  /** Unmaps BAR0 (after remove); the device file stays the caller's. */
  close(): void {
    this.sys.munmap(this.bar0, BAR0_MAP);
  }

  private start(src: bigint, dst: bigint, size: number, count: number, interrupt: boolean): void {
    const descIova = this.toIova(STATE_DESC);
    // struct ioat_dma_descriptor: size, ctl (op COPY, int_en), src, dst, next (itself), the rest 0.
    const d = new Uint8Array(64);
    const v = new DataView(d.buffer);
    v.setUint32(0, size, true);
    v.setUint32(4, interrupt ? IOAT_DESC_INT_EN : 0, true);
    v.setBigUint64(8, src, true);
    v.setBigUint64(16, dst, true);
    v.setBigUint64(24, descIova, true);
    check("descriptor store", this.sys.writeMemory(this.region.vaddr + STATE_DESC, d));
    this.write(IOAT2_CHAINADDR_OFFSET, 8, descIova);
    this.write(IOAT_CHANCTRL_OFFSET, 2, IOAT_CHANCTRL_INT_REARM | IOAT_CHANCTRL_ANY_ERR_ABORT_EN);
    this.write(IOAT_CHAN_DMACOUNT_OFFSET, 2, count);
  }

  /** ioat_memcpy_start: `count` copies of `size` bytes from `src` to `dst` (IOVAs), one doorbell. */
  memcpyStart(src: bigint, dst: bigint, size: number, count: number): void {
    if (!(size >= 0 && size <= this.maxMemcpySize) || !(count >= 1 && count <= this.maxMemcpyCount)) {
      throw new RangeError(`ioat: size must be at most ${this.maxMemcpySize} and count 1..${this.maxMemcpyCount}`);
    }
    this.start(src, dst, size, count, false);
  }

  /**
   * ioat_memcpy_wait: polls CHANSTS until DONE (0) or HALTED (-1: an error, the channel is
   * reset), then suspends the channel.
   */
  memcpyWait(): number {
    for (;;) {
      const s = this.status();
      if (s === IOAT_CHANSTS_DONE) break;
      if (s === IOAT_CHANSTS_HALTED) {
        this.reset();
        return -1;
      }
    }
    this.write(IOAT2_CHANCMD_OFFSET, 1, IOAT_CHANCMD_SUSPEND);
    while (this.status() !== IOAT_CHANSTS_SUSPENDED) { /* the engine parks the channel */ }
    return 0;
  }

  /** vfio_pci_driver_memcpy: one copy, started and waited for. */
  memcpy(src: bigint, dst: bigint, size: number): number {
    this.memcpyStart(src, dst, size, 1);
    return this.memcpyWait();
  }

  /** ioat_send_msi: an 8-byte copy inside the driver's region whose descriptor has int_en. */
  sendMsi(): void {
    this.start(this.toIova(STATE_MSI_SRC), this.toIova(STATE_MSI_DST), 8, 1, true);
    if (this.memcpyWait() !== 0) throw new DriverError("send_msi (the copy failed)", errno.EIO);
  }
}

