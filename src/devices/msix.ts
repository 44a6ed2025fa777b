// Message-signalled interrupts of an emulated PCI function: the MSI and MSI-X capabilities in
// its config space, the MSI-X vector table and Pending Bit Array in its BAR memory, and what
// the host's PCI MSI core does to them when VFIO enables a mode and binds eventfds
// (pci_alloc_irq_vectors masks every vector and sets the enable bit; request_irq unmasks a
// vector, free_irq masks it again). The state lives in shared memory, so a device model raises
// a vector from any thread: msixRaise / msiRaise (assembly/msi.ts does the work).

import type { Core } from "../wasm/core.js";
import { ALL, type PciCapability, type PciConfigSpace } from "./pci_config.js";

export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_MSIX = 0x11;

// MSI capability (include/uapi/linux/pci_regs.h).
export const PCI_MSI_FLAGS = 2;
export const PCI_MSI_FLAGS_ENABLE = 0x1;
export const PCI_MSI_FLAGS_QMASK = 0x0e;
export const PCI_MSI_FLAGS_QSIZE = 0x70;
export const PCI_MSI_FLAGS_64BIT = 0x80;
export const PCI_MSI_FLAGS_MASKBIT = 0x100;
export const PCI_MSI_ADDRESS_LO = 4;
export const PCI_MSI_ADDRESS_HI = 8;
export const PCI_MSI_DATA_64 = 12;
export const PCI_MSI_MASK_64 = 16;
export const PCI_MSI_PENDING_64 = 20;
/** A 64-bit MSI capability with per-vector masking. */
export const PCI_MSI_64_MASK_SIZEOF = 24;

// MSI-X capability and table.
export const PCI_MSIX_FLAGS = 2;
export const PCI_MSIX_FLAGS_QSIZE = 0x07ff;
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
export const PCI_MSIX_TABLE = 4;
export const PCI_MSIX_PBA = 8;
export const PCI_MSIX_TABLE_BIR = 0x7;
export const PCI_CAP_MSIX_SIZEOF = 12;
export const PCI_MSIX_ENTRY_SIZE = 16;
export const PCI_MSIX_ENTRY_VECTOR_CTRL = 12;
export const PCI_MSIX_ENTRY_CTRL_MASKBIT = 0x1;

// VFIO's irq indexes of the two modes (what assembly/msi.ts takes).
const MSI_INDEX = 1;
const MSIX_INDEX = 2;

/** irq_raise results (assembly/msi.ts IRQ_*): the message went out. */
export const IRQ_SENT = 0;
/** The vector or the function is masked: its pending bit is set, sent when unmasked. */
export const IRQ_PENDING = 1;
/** Nothing sent: the mode is disabled, bus mastering is off, or no eventfd is bound. */
export const IRQ_OFF = 2;

/** A model's MSI: 1, 2, 4, 8, 16 or 32 vectors (64-bit addresses, per-vector masking). */
export interface MsiModel { readonly vectors: number }
/** A model's MSI-X: table size, and where the table and PBA sit in BAR0. */
export interface MsixModel { readonly vectors: number; readonly tableOffset: number; readonly pbaOffset: number }

/** The MSI capability's power-on registers. */
export function msiCapability(offset: number, m: MsiModel): PciCapability {
  const log2 = Math.log2(m.vectors);
  if (!Number.isInteger(log2) || log2 < 0 || log2 > 5) throw new RangeError(`MSI vectors must be a power of two up to 32 (got ${m.vectors})`);
  return {
    id: PCI_CAP_ID_MSI,
    offset,
    init(v, at) {
      v.setUint16(at + PCI_MSI_FLAGS, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (log2 << 1), true);
    },
    // vfio_pci_config.c init_pci_cap_msi_perm: the flags' low byte, address and data are
    // virtual (vfio-pci mirrors enable and queue size to the hardware); the mask and pending
    // bits pass through (the hardware's pending bits are read-only, mask bits past the
    // capable count reserved).
    perms(set) {
      set(PCI_MSI_FLAGS, 1, ALL, ALL);
      set(PCI_MSI_ADDRESS_LO, 4, ALL, ALL);
      set(PCI_MSI_ADDRESS_HI, 4, ALL, ALL);
      set(PCI_MSI_DATA_64, 2, ALL, ALL);
      set(PCI_MSI_MASK_64, 4, 0, ALL, m.vectors === 32 ? ALL : (1 << m.vectors) - 1);
      set(PCI_MSI_PENDING_64, 4, 0, ALL, 0);
    },
  };
}

/** The MSI-X capability's registers: table size, table and PBA in BAR0. */
export function msixCapability(offset: number, m: MsixModel): PciCapability {
  if (!Number.isInteger(m.vectors) || m.vectors < 1 || m.vectors > 2048) throw new RangeError(`MSI-X vectors must be 1..2048 (got ${m.vectors})`);
  if (m.tableOffset & PCI_MSIX_TABLE_BIR || m.pbaOffset & PCI_MSIX_TABLE_BIR) throw new RangeError("MSI-X table and PBA offsets must be 8-byte aligned");
  return {
    id: PCI_CAP_ID_MSIX,
    offset,
    init(v, at) {
      v.setUint16(at + PCI_MSIX_FLAGS, m.vectors - 1, true);
      v.setUint32(at + PCI_MSIX_TABLE, m.tableOffset, true); // BIR 0
      v.setUint32(at + PCI_MSIX_PBA, m.pbaOffset, true);
    },
  };
}

/** Bytes of the MSI-X table and of its PBA. */
export const msixTableBytes = (vectors: number) => vectors * PCI_MSIX_ENTRY_SIZE;
export const msixPbaBytes = (vectors: number) => Math.ceil(vectors / 64) * 8;

/**
 * The function's interrupt hardware as the host's PCI MSI core drives it, over shared memory:
 * the capabilities in `cfg`, the table and PBA at `table` / `pba` (host addresses in BAR
 * memory), and the trigger words at `ctx` (one u32 per vector: eventfd slot + 1).
 */
export class PciMsiHardware {
  constructor(
    private readonly core: Core,
    private readonly cfg: PciConfigSpace,
    readonly msiCap: number,
    readonly msixCap: number,
    readonly msixVectors: number,
    private readonly table: () => number,
    private readonly pba: () => number,
    private readonly ctx: number,
  ) {}

  /** Power-on state of the BAR side: every vector masked, nothing pending. */
  resetTable(): void {
    if (!this.msixCap) return;
    const mem = this.core.u8;
    const t = this.table();
    mem.fill(0, t, t + msixTableBytes(this.msixVectors));
    for (let v = 0; v < this.msixVectors; v++) {
      Atomics.store(this.core.u32, (t + v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL) >>> 2, PCI_MSIX_ENTRY_CTRL_MASKBIT);
    }
    const p = this.pba();
    mem.fill(0, p, p + msixPbaBytes(this.msixVectors));
  }

  /** The vector count the capability offers (vfio_pci_get_irq_count). */
  count(msix: boolean): number {
    if (msix) return this.msixCap ? (this.cfg.get16(this.msixCap + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_QSIZE) + 1 : 0;
    return this.msiCap ? 1 << ((this.cfg.get16(this.msiCap + PCI_MSI_FLAGS) & PCI_MSI_FLAGS_QMASK) >> 1) : 0;
  }

  /**
   * pci_alloc_irq_vectors for `nvec` vectors: every vector masked, then the mode enabled
   * (MSI: Multiple Message Enable = log2 of nvec rounded up to a power of two).
   */
  enable(msix: boolean, nvec: number): void {
    if (msix) {
      const f = this.msixCap + PCI_MSIX_FLAGS;
      for (let v = 0; v < this.msixVectors; v++) this.core.x.irq_mask(this.dev, MSIX_INDEX, v);
      this.cfg.set16(f, (this.cfg.get16(f) & ~PCI_MSIX_FLAGS_MASKALL) | PCI_MSIX_FLAGS_ENABLE);
    } else {
      const f = this.msiCap + PCI_MSI_FLAGS;
      const mme = Math.ceil(Math.log2(nvec));
      this.cfg.set32(this.msiCap + PCI_MSI_MASK_64, (this.count(false) === 32 ? 0xffffffff : (1 << this.count(false)) - 1) >>> 0);
      this.cfg.set16(f, (this.cfg.get16(f) & ~PCI_MSI_FLAGS_QSIZE) | (mme << 4) | PCI_MSI_FLAGS_ENABLE);
    }
  }

  /** The Multiple Message Capable field of the user's view (vconfig) of the MSI flags. */
  showQmax(q: number): void {
    if (!this.msiCap) return;
    const f = this.msiCap + PCI_MSI_FLAGS;
    this.cfg.vset16(f, (this.cfg.vget16(f) & ~PCI_MSI_FLAGS_QMASK) | (q << 1));
  }

  /** pci_free_irq_vectors: the mode's enable bit cleared (vectors stay masked). */
  disable(msix: boolean): void {
    if (msix) {
      const f = this.msixCap + PCI_MSIX_FLAGS;
      this.cfg.set16(f, this.cfg.get16(f) & ~PCI_MSIX_FLAGS_ENABLE);
    } else {
      const f = this.msiCap + PCI_MSI_FLAGS;
      this.cfg.set16(f, this.cfg.get16(f) & ~(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE));
    }
  }

  /** The vfio device index whose line holds these addresses (set when the device registers). */
  dev = -1;

  /** request_irq: the trigger word is set, then the vector unmasked (a held message goes out). */
  bind(msix: boolean, v: number, eventfdSlot: number): void {
    // Paired with the load in assembly/msi.ts send(), inside the sender's grace-period section.
    Atomics.store(this.core.u32, (this.ctx >>> 2) + v, eventfdSlot + 1);
    this.core.x.irq_unmask(this.dev, msix ? MSIX_INDEX : MSI_INDEX, v);
  }

  /**
   * free_irq: the vector masked, then its trigger word cleared. The caller lets a grace
   * period pass (synchronizeDma) before it releases the eventfd, so no sender still holds it.
   */
  unbind(msix: boolean, v: number): void {
    this.core.x.irq_mask(this.dev, msix ? MSIX_INDEX : MSI_INDEX, v);
    Atomics.store(this.core.u32, (this.ctx >>> 2) + v, 0);
  }

  /** After a user write to the MSI mask register: held messages of unmasked vectors go out. */
  flushMsi(): void {
    if (this.msiCap && this.dev >= 0) this.core.x.irq_flush(this.dev, MSI_INDEX);
  }
}

/**
 * Device `dev` (its vfio device index) raises MSI-X vector `vector`, from any thread that has
 * the core (the kernel's, or a device worker's WorkerContext.core): IRQ_SENT, IRQ_PENDING
 * (masked: sent when unmasked), IRQ_OFF, or -EINVAL for a vector past the table.
 */
export function msixRaise(core: Core, dev: number, vector: number): number {
  return core.x.irq_raise(dev, MSIX_INDEX, vector);
}

/** As msixRaise, for MSI vector `vector` (below the capable count; sent only below the enabled one). */
export function msiRaise(core: Core, dev: number, vector: number): number {
  return core.x.irq_raise(dev, MSI_INDEX, vector);
}
