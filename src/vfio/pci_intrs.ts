// vfio-pci's MSI and MSI-X (drivers/vfio/pci/vfio_pci_intrs.c): VFIO_DEVICE_SET_IRQS
// ACTION_TRIGGER on index 1 or 2 enables the mode for start + count vectors on the first
// eventfd, binds or unbinds eventfds per vector (fd < 0 unbinds), fires bound vectors from
// software (DATA_NONE / DATA_BOOL), and disables the mode with DATA_NONE and count 0.
// There is no dynamic MSI-X allocation (so GET_IRQ_INFO says NORESIZE): a vector past the
// enabled count cannot be bound until the mode is disabled and enabled again.

import { errno } from "../uapi/errno.js";
import { VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_MSIX_IRQ_INDEX } from "../uapi/vfio.js";
import type { EventFd } from "../kernel/eventfd.js";
import type { File } from "../kernel/file.js";
import type { KernelCore } from "../kernel/kernel.js";
import { synchronizeDma } from "../kernel/grace.js";
import type { PciMsiHardware } from "../devices/msix.js";

/** No MSI/MSI-X mode enabled (the kernel's irq_type == VFIO_PCI_NUM_IRQS, as far as MSI goes). */
const NONE = -1;

/** The MSI/MSI-X half of a vfio_pci_core_device's interrupt state (vdev->irq_type, ctx). */
export class VfioPciMsi {
  /** VFIO_PCI_MSI_IRQ_INDEX or VFIO_PCI_MSIX_IRQ_INDEX while enabled, else NONE. */
  type = NONE;
  /** Vectors the host allocated at enable (pci_irq_vector is valid below this). */
  private nvec = 0;
  /** vdev->msi_qmax: log2 of the MSI vectors the user's view of the flags offers. */
  qmax = 0;
  /** The bound triggers (vdev->ctx): vector -> eventfd file reference. */
  private readonly ctx = new Map<number, File>();
  /** Triggers unbound by this call, released after one grace period (see flushPuts). */
  private readonly puts: File[] = [];

  constructor(private readonly kcore: KernelCore, readonly hw: PciMsiHardware) {}

  get enabled(): boolean { return this.type !== NONE; }

  /**
   * vfio_pci_set_msi_trigger. `intxOff`: INTx is not enabled either.
   * `fds` is the DATA_EVENTFD array, `bools` the DATA_BOOL one. The caller runs flushPuts after.
   */
  setTrigger(index: number, start: number, count: number, flags: number, intxOff: boolean,
    fds: Int32Array | null, bools: Uint8Array | null, eventfdGet: (fd: number) => File | number): number {
    const msix = index === VFIO_PCI_MSIX_IRQ_INDEX;
    if (this.type === index && !count && (flags & VFIO_IRQ_SET_DATA_NONE)) {
      this.disable();
      return 0;
    }
    if (!(this.type === index || (intxOff && this.type === NONE))) return -errno.EINVAL;
    if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
      if (this.type === index) return this.setBlock(start, count, fds, msix, eventfdGet);
      const r = this.enable(start + count, index);
      if (r) return r;
      const b = this.setBlock(start, count, fds, msix, eventfdGet);
      if (b) this.disable();
      return b;
    }
    if (this.type !== index) return -errno.EINVAL;
    // Loopback: fire bound vectors from software; unbound ones are skipped.
    for (let v = start; v < start + count; v++) {
      const t = this.ctx.get(v);
      if (!t) continue;
      if ((flags & VFIO_IRQ_SET_DATA_NONE) || (flags & VFIO_IRQ_SET_DATA_BOOL && bools?.[v - start])) {
        (t.priv as EventFd).add(1n);
      }
    }
    return 0;
  }

  /** vfio_msi_enable: pci_alloc_irq_vectors(1, nvec) fails with -ERANGE for nvec 0. */
  private enable(nvec: number, index: number): number {
    if (nvec < 1) return -errno.ERANGE;
    this.hw.enable(index === VFIO_PCI_MSIX_IRQ_INDEX, nvec);
    this.type = index;
    this.nvec = nvec;
    // The user's flags now offer what was enabled (vfio_msi_config_read's msi_qmax).
    if (index !== VFIO_PCI_MSIX_IRQ_INDEX) this.setQmax(Math.ceil(Math.log2(nvec)));
    return 0;
  }

  /** At open (vfio_msi_cap_len): the capable count; after an MSI enable: the enabled one. */
  setQmax(q: number): void {
    this.qmax = q;
    this.hw.showQmax(q);
  }

  /** vfio_msi_set_block: on a failure every vector from start up to the failing one is unbound. */
  private setBlock(start: number, count: number, fds: Int32Array | null, msix: boolean,
    eventfdGet: (fd: number) => File | number): number {
    let ret = 0;
    let j = start;
    for (let i = 0; i < count && !ret; i++, j++) ret = this.setVectorSignal(j, fds ? fds[i] : -1, msix, eventfdGet);
    if (ret) for (let v = start; v < j; v++) this.setVectorSignal(v, -1, msix, eventfdGet);
    return ret;
  }

  /** vfio_msi_set_vector_signal: the old trigger goes first, whatever happens next. */
  private setVectorSignal(v: number, fd: number, msix: boolean, eventfdGet: (fd: number) => File | number): number {
    const old = this.ctx.get(v);
    if (old) {
      this.hw.unbind(msix, v);
      this.ctx.delete(v);
      this.puts.push(old);
    }
    if (fd < 0) return 0;
    // vfio_msi_alloc_irq: no vector there, and none can be added.
    if (v >= this.nvec) return -errno.EINVAL;
    const e = eventfdGet(fd);
    if (typeof e === "number") return e;
    this.ctx.set(v, e);
    this.hw.bind(msix, v, (e.priv as EventFd).slot);
    return 0;
  }

  /** vfio_msi_disable: every trigger unbound, the vectors freed, the mode off. */
  disable(): void {
    if (this.type === NONE) return;
    const msix = this.type === VFIO_PCI_MSIX_IRQ_INDEX;
    for (const v of [...this.ctx.keys()]) this.setVectorSignal(v, -1, msix, () => -errno.EBADF);
    this.hw.disable(msix);
    this.type = NONE;
    this.nvec = 0;
  }

  /** After a function reset: the host restores the enabled mode, bound vectors unmasked. */
  restore(): void {
    this.hw.resetTable();
    if (this.type === NONE) return;
    const msix = this.type === VFIO_PCI_MSIX_IRQ_INDEX;
    this.hw.enable(msix, this.nvec);
    for (const [v, t] of this.ctx) this.hw.bind(msix, v, (t.priv as EventFd).slot);
  }

  /**
   * Releases the unbound triggers once no sender can still hold one: a sender reads a
   * trigger word inside a grace-period section (assembly/msi.ts send()), and the words were
   * cleared before this wait.
   */
  flushPuts(): void {
    if (!this.puts.length) return;
    synchronizeDma(this.kcore, "vfio_msi_unbind");
    for (const f of this.puts.splice(0)) this.kcore.fput(f);
  }
}
