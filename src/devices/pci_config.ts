// A PCI function's configuration space as the VFIO user sees it (vfio-pci virtualizes it:
// drivers/vfio/pci/vfio_pci_config.c): a type-0 header with the model's ids, a COMMAND
// register whose decode and bus-master bits the user may set and clear, virtualized BARs
// (sizing writes read back the size mask), and read-only everything else.

import type { PciIds } from "./pci.js";

export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_STATUS_CAP_LIST = 0x10;
/** A capability's header: its id, then the offset of the next one (0 ends the chain). */
export const PCI_CAP_LIST_ID = 0;
export const PCI_CAP_LIST_NEXT = 1;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;

export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_PARITY = 0x40;
export const PCI_COMMAND_SERR = 0x100;
export const PCI_COMMAND_INTX_DISABLE = 0x400;
/** The COMMAND bits a user may change. */
const COMMAND_WRITABLE = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |
  PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;

/** Conventional PCI: 256 bytes (PCIe functions have 4096). */
export const PCI_CFG_SPACE_SIZE = 256;

export interface PciBar {
  /** Size in bytes, a power of two >= 16; 0 = unimplemented. */
  size: number;
  /** The address firmware assigned (what the BAR reads after reset). */
  address: number;
}

/** A capability in the standard chain, at a dword-aligned offset past the 64-byte header. */
export interface PciCapability {
  readonly id: number;
  readonly offset: number;
  /** Writes the registers after the two header bytes to their power-on values. */
  init(view: DataView, at: number): void;
  /** Marks the bits a user write may change (mask bytes relative to the capability). */
  writable?(mask: Uint8Array): void;
}

export class PciConfigSpace {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  /** Per-byte masks of the bits a user write may change. */
  private readonly writable: Uint8Array;

  /**
   * `storage`: where the bytes and then the write masks live (2 × size bytes); shared memory
   * lets worker threads read the space through a granted file (DESIGN.md "The gate").
   */
  constructor(readonly ids: PciIds, readonly bars: readonly PciBar[], readonly size = PCI_CFG_SPACE_SIZE,
    storage?: Uint8Array, readonly caps: readonly PciCapability[] = []) {
    this.bytes = storage ? storage.subarray(0, size) : new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, size);
    this.writable = storage ? storage.subarray(size, 2 * size) : new Uint8Array(size);
    const w16 = (off: number, mask: number) => { this.writable[off] = mask & 0xff; this.writable[off + 1] = mask >> 8; };
    w16(PCI_COMMAND, COMMAND_WRITABLE);
    for (let i = 0; i < 6; i++) {
      const bar = bars[i];
      if (!bar || !bar.size) continue;
      // Address bits above the size are writable; the low flag nibble is not.
      const mask = (~(bar.size - 1) & 0xfffffff0) >>> 0;
      for (let b = 0; b < 4; b++) this.writable[PCI_BASE_ADDRESS_0 + i * 4 + b] = (mask >>> (b * 8)) & 0xff;
    }
    this.writable[PCI_INTERRUPT_LINE] = 0xff;
    for (const cap of caps) cap.writable?.(this.writable.subarray(cap.offset));
  }

  /**
   * Forgets the contents (the kernel frees vconfig at close_device and builds it anew at the
   * next open): reads through a stale view see zeros, never a half-built space.
   */
  clear(): void {
    this.bytes.fill(0);
  }

  /** The power-on state: ids, class, BARs at their assigned addresses, COMMAND 0. */
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
  }

  /** The offset of the capability `id`, or 0 (pci_find_capability). */
  findCapability(id: number): number {
    return this.caps.find((c) => c.id === id)?.offset ?? 0;
  }

  /** Register access for the device and the host's PCI core (no write masks). */
  get16(off: number): number { return this.view.getUint16(off, true); }
  set16(off: number, v: number): void { this.view.setUint16(off, v & 0xffff, true); }
  get32(off: number): number { return this.view.getUint32(off, true); }
  set32(off: number, v: number): void { this.view.setUint32(off, v >>> 0, true); }

  get command(): number { return this.view.getUint16(PCI_COMMAND, true); }
  set command(v: number) { this.view.setUint16(PCI_COMMAND, v & 0xffff, true); }
  get busMaster(): boolean { return (this.command & PCI_COMMAND_MASTER) !== 0; }
  get interruptPin(): number { return this.bytes[PCI_INTERRUPT_PIN]; }

  /** Reads [off, off + out.length); the caller checks the range. */
  read(off: number, out: Uint8Array): void {
    out.set(this.bytes.subarray(off, off + out.length));
  }

  /** Writes through the per-byte masks; the caller checks the range. */
  write(off: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const m = this.writable[off + i];
      this.bytes[off + i] = (this.bytes[off + i] & ~m) | (data[i] & m);
    }
  }
}
