// A PCI function's configuration space: the hardware registers, and the view vfio-pci gives
// the user over them (drivers/vfio/pci/vfio_pci_config.c). The kernel keeps a virtual copy
// (vconfig) and per-capability permission tables: a bit is read from the hardware unless it
// is virtualized, a user write reaches the hardware only where it is writable and not
// virtualized (and where the hardware's register accepts it), and lands in vconfig where it
// is writable and virtualized. The planes live in shared memory, each `size` bytes, in order:
//
//   hw        the function's registers (what the device and the host's PCI core see)
//   hwWrite   bits a user write changes in hw (vfio write & ~virt & the register's RW bits)
//   virt      bits read from vconfig instead of hw
//   vconfig   the virtual registers
//   vWrite    bits a user write changes in vconfig (vfio write & virt)
//
// so the kernel thread and device workers run the same read and write (configRw). Registers
// with side effects (power state, MSI flags, PCIe FLR) are handled after the write by
// vfio-pci (src/vfio/pci_core.ts). vfio_bar_fixup's sizing rule is folded into the BARs' vWrite
// masks: only the address bits above the BAR's size take a write, the flag bits stay.

import type { PciIds } from "./pci.js";

export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BIST = 0x0f;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_STD_HEADER_SIZEOF = 64;
export const PCI_STATUS_CAP_LIST = 0x10;
/** A capability's header: its id, then the offset of the next one (0 ends the chain). */
export const PCI_CAP_LIST_ID = 0;
export const PCI_CAP_LIST_NEXT = 1;

export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_PARITY = 0x40;
export const PCI_COMMAND_SERR = 0x100;
export const PCI_COMMAND_INTX_DISABLE = 0x400;
/** The COMMAND bits this function implements (no I/O space). */
const COMMAND_RW = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;

/** Conventional PCI: 256 bytes; PCI Express functions have 4096. */
export const PCI_CFG_SPACE_SIZE = 256;
export const PCI_CFG_SPACE_EXP_SIZE = 4096;

/** vfio's NO_VIRT / ALL_VIRT, NO_WRITE / ALL_WRITE. */
export const ALL = 0xffffffff;

export interface PciBar {
  /** Size in bytes, a power of two >= 16; 0 = unimplemented. */
  size: number;
  /** The address firmware assigned (what the BAR reads after reset). */
  address: number;
}

/**
 * Sets the permissions of the `size` bytes at `off` (relative to the capability): `virt` and
 * `write` as vfio's perm_bits, `rw` the bits the hardware register itself accepts.
 */
export type PermSetter = (off: number, size: 1 | 2 | 4, virt: number, write: number, rw?: number) => void;

/** A capability in the standard chain, at a dword-aligned offset past the 64-byte header. */
export interface PciCapability {
  readonly id: number;
  readonly offset: number;
  /** Writes the registers after the two header bytes to their power-on values. */
  init(view: DataView, at: number): void;
  /** vfio's permission table for the capability (default: read from hw, writes dropped). */
  perms?(set: PermSetter): void;
}

/** Bytes of shared memory a config space of `size` bytes takes (its five planes). */
export const configStorageBytes = (size: number) => 5 * size;

/**
 * A user read or write of config space [off, off + buf.length) over the planes at `base` in
 * `mem` (the caller checked the range): vfio_default_config_read / _write byte by byte.
 */
export function configRw(mem: Uint8Array, base: number, size: number, off: number, buf: Uint8Array, write: boolean): void {
  const hw = base + off, hwWrite = hw + size, virt = hw + 2 * size, vcfg = hw + 3 * size, vWrite = hw + 4 * size;
  if (!write) {
    for (let i = 0; i < buf.length; i++) buf[i] = (mem[hw + i] & ~mem[virt + i]) | (mem[vcfg + i] & mem[virt + i]);
    return;
  }
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i], wh = mem[hwWrite + i], wv = mem[vWrite + i];
    if (wh) mem[hw + i] = (mem[hw + i] & ~wh) | (b & wh);
    if (wv) mem[vcfg + i] = (mem[vcfg + i] & ~wv) | (b & wv);
  }
}

export class PciConfigSpace {
  /** The planes (see the top of this file). */
  readonly bytes: Uint8Array;
  private readonly hwWrite: Uint8Array;
  private readonly virt: Uint8Array;
  readonly vconfig: Uint8Array;
  private readonly vWrite: Uint8Array;
  private readonly storage: Uint8Array;
  private readonly view: DataView;
  private readonly vview: DataView;

  /** `storage`: configStorageBytes(size) bytes, in shared memory for the device's workers. */
  constructor(readonly ids: PciIds, readonly bars: readonly PciBar[], readonly size = PCI_CFG_SPACE_SIZE,
    storage?: Uint8Array, readonly caps: readonly PciCapability[] = []) {
    this.storage = storage ? storage.subarray(0, configStorageBytes(size)) : new Uint8Array(configStorageBytes(size));
    const plane = (i: number) => this.storage.subarray(i * size, (i + 1) * size);
    this.bytes = plane(0);
    this.hwWrite = plane(1);
    this.virt = plane(2);
    this.vconfig = plane(3);
    this.vWrite = plane(4);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, size);
    this.vview = new DataView(this.vconfig.buffer, this.vconfig.byteOffset, size);
    this.initPerms();
  }

  /** The permission planes: vfio's basic-header table, then each capability's. */
  private initPerms(): void {
    this.hwWrite.fill(0);
    this.virt.fill(0);
    this.vWrite.fill(0);
    const at = (base: number): PermSetter => (off, n, virt, write, rw = 0) => {
      for (let b = 0; b < n; b++) {
        const sh = 8 * b;
        const v = (virt >>> sh) & 0xff, w = (write >>> sh) & 0xff, r = (rw >>> sh) & 0xff;
        this.virt[base + off + b] = v;
        this.vWrite[base + off + b] = w & v;
        this.hwWrite[base + off + b] = w & ~v & r;
      }
    };
    const set = at(0);
    set(PCI_VENDOR_ID, 2, ALL, 0);
    set(PCI_DEVICE_ID, 2, ALL, 0);
    // INTx disable is virtualized (the host drives the real bit); the rest reaches the hardware.
    set(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE, ALL, COMMAND_RW);
    set(PCI_STATUS, 2, PCI_STATUS_CAP_LIST, 0);
    set(PCI_CACHE_LINE_SIZE, 1, 0, ALL, 0xff);
    set(PCI_LATENCY_TIMER, 1, 0, ALL); // read-only zero on PCI Express
    set(PCI_BIST, 1, 0, ALL);
    for (let i = 0; i < 6; i++) {
      const bar = this.bars[i];
      // Virtual BARs; a sizing write reads back the size mask (the flag nibble stays).
      set(PCI_BASE_ADDRESS_0 + 4 * i, 4, ALL, bar?.size ? (~(bar.size - 1) & 0xfffffff0) >>> 0 : 0);
    }
    set(PCI_ROM_ADDRESS, 4, ALL, 0); // no ROM: reads 0
    set(PCI_CAPABILITY_LIST, 1, ALL, 0);
    set(PCI_INTERRUPT_LINE, 1, ALL, ALL);
    set(PCI_INTERRUPT_PIN, 1, ALL, 0);
    for (const cap of this.caps) {
      const cs = at(cap.offset);
      // The chain itself is virtual (vfio may hide capabilities).
      cs(PCI_CAP_LIST_ID, 1, ALL, 0);
      cs(PCI_CAP_LIST_NEXT, 1, ALL, 0);
      cap.perms?.(cs);
    }
  }

  /**
   * Forgets the contents (the kernel frees vconfig at close_device and builds it anew at the
   * next open): reads through a stale view see zeros, never a half-built space.
   */
  clear(): void {
    this.bytes.fill(0);
    this.vconfig.fill(0);
  }

  /** The function's power-on registers; vconfig starts as their copy (vfio_config_init). */
  reset(): void {
    const v = this.view;
    this.bytes.fill(0);
    v.setUint16(PCI_VENDOR_ID, this.ids.vendor, true);
    v.setUint16(PCI_DEVICE_ID, this.ids.device, true);
    v.setUint8(PCI_REVISION_ID, 1);
    v.setUint8(PCI_CLASS_PROG, this.ids.classCode & 0xff);
    v.setUint16(PCI_CLASS_PROG + 1, (this.ids.classCode >> 8) & 0xffff, true);
    v.setUint8(PCI_HEADER_TYPE, 0);
    for (let i = 0; i < 6; i++) {
      const bar = this.bars[i];
      if (bar?.size) v.setUint32(PCI_BASE_ADDRESS_0 + i * 4, bar.address >>> 0, true);
    }
    v.setUint16(PCI_SUBSYSTEM_VENDOR_ID, this.ids.vendor, true);
    v.setUint16(PCI_SUBSYSTEM_ID, 0x1100, true);
    v.setUint8(PCI_INTERRUPT_PIN, 1);
    // The capability chain, in the order given.
    if (this.caps.length) {
      v.setUint16(PCI_STATUS, v.getUint16(PCI_STATUS, true) | PCI_STATUS_CAP_LIST, true);
      v.setUint8(PCI_CAPABILITY_LIST, this.caps[0].offset);
    }
    this.caps.forEach((cap, i) => {
      v.setUint8(cap.offset + PCI_CAP_LIST_ID, cap.id);
      v.setUint8(cap.offset + PCI_CAP_LIST_NEXT, this.caps[i + 1]?.offset ?? 0);
      cap.init(v, cap.offset);
    });
    this.vconfig.set(this.bytes);
  }

  /** The offset of the capability `id`, or 0 (pci_find_capability). */
  findCapability(id: number): number {
    return this.caps.find((c) => c.id === id)?.offset ?? 0;
  }

  /** Hardware register access, for the device and the host's PCI core (no permissions). */
  get16(off: number): number { return this.view.getUint16(off, true); }
  set16(off: number, v: number): void { this.view.setUint16(off, v & 0xffff, true); }
  get32(off: number): number { return this.view.getUint32(off, true); }
  set32(off: number, v: number): void { this.view.setUint32(off, v >>> 0, true); }
  /** vconfig access, for vfio-pci's virtualization. */
  vget16(off: number): number { return this.vview.getUint16(off, true); }
  vset16(off: number, v: number): void { this.vview.setUint16(off, v & 0xffff, true); }

  get command(): number { return this.get16(PCI_COMMAND); }
  get busMaster(): boolean { return (this.command & PCI_COMMAND_MASTER) !== 0; }
  /** The pin the user sees (virtualized). */
  get interruptPin(): number { return this.vconfig[PCI_INTERRUPT_PIN]; }

  /** A user read of [off, off + out.length); the caller checks the range. */
  read(off: number, out: Uint8Array): void {
    configRw(this.storage, 0, this.size, off, out, false);
  }

  /** A user write through the permissions; the caller checks the range and runs the side effects. */
  write(off: number, data: Uint8Array): void {
    configRw(this.storage, 0, this.size, off, data, true);
  }
}
