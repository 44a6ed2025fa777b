// vfio-pci (drivers/vfio/pci/vfio_pci_core.c, vfio_pci_rdwr.c, vfio_pci_config.c,
// vfio_pci_intrs.c), the face an emulated PCI function shows through its device file:
// GET_INFO, GET_REGION_INFO, GET_IRQ_INFO, SET_IRQS (INTx, ERR, REQ), RESET, config space
// and BAR access by pread/pwrite at (region index << 40 | offset), BAR mmap, and the
// unplug request signalled on the REQ eventfd. VFIO "argsz" model throughout: minsz bytes
// are copied, argsz < minsz is EINVAL, trailing bytes are never looked at (SPEC.md §3.0).

import { errno } from "../uapi/errno.js";
import { getField, setField } from "../uapi/struct.js";
import { FRAME_NONE } from "../wasm/core.js";
import {
  VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, VFIO_DEVICE_PCI_HOT_RESET,
} from "../uapi/ioctl.js";
import {
  VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET, VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE, VFIO_IRQ_INFO_NORESIZE, VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_TYPE_MASK, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_TYPE_MASK, VFIO_PCI_BAR5_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_ERR_IRQ_INDEX, VFIO_PCI_INDEX_TO_OFFSET, VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS, VFIO_PCI_OFFSET_SHIFT, VFIO_PCI_REQ_IRQ_INDEX, VFIO_PCI_ROM_REGION_INDEX,
  vfio_info_cap_header, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE, vfio_device_info, vfio_irq_info, vfio_irq_set, vfio_region_info,
  VFIO_PCI_DEVID_NOT_OWNED, VFIO_PCI_DEVID_OWNED, VFIO_PCI_HOT_RESET_FLAG_DEV_ID, VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED,
  vfio_pci_dependent_device, vfio_pci_hot_reset, vfio_pci_hot_reset_info,
  VFIO_DEVICE_FEATURE_MASK, VFIO_DEVICE_FEATURE_SET, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
  vfio_device_low_power_entry_with_wakeup,
} from "../uapi/vfio.js";
import { EventFd, eventfdFops } from "../kernel/eventfd.js";
import { Mappers, type File, type FileMapping, type MmapRequest } from "../kernel/file.js";
import { vfioCopyIn } from "../kernel/ioctl.js";
import type { KernelCore } from "../kernel/kernel.js";
import { PAGE_SIZE, type Mm } from "../kernel/mm.js";
import type { Process } from "../kernel/process.js";
import {
  configStorageBytes, PCI_CFG_SPACE_EXP_SIZE, PCI_CFG_SPACE_SIZE, PCI_COMMAND, PCI_COMMAND_IO, PCI_COMMAND_MEMORY,
  PciConfigSpace, type PciBar, type PciCapability,
} from "../devices/pci_config.js";
import {
  expCapability, PCI_CAP_ID_EXP, PCI_EXP_DEVCAP, PCI_EXP_DEVCAP_FLR, PCI_EXP_DEVCTL, PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_DEVCTL_READRQ, pmCapability, PCI_PM_CTRL, PCI_PM_CTRL_STATE_MASK,
} from "../devices/pci_caps.js";
import {
  msiCapability, msixCapability, msixPbaBytes, msixTableBytes, PciMsiHardware, PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_QSIZE, PCI_MSI_MASK_64,
  type MsiModel, type MsixModel,
} from "../devices/msix.js";
import { VfioPciMsi } from "./pci_intrs.js";
import { memoryEnabled } from "../devices/pci_bar.js";
import { pciRw, type PciRwState } from "../devices/pci_rw.js";
import { synchronizeDma } from "../kernel/grace.js";
import type { PciFunction, PciIds } from "../devices/pci.js";
import type { IommufdCtx } from "../iommufd/main.js";
import { IoatEngine } from "../devices/ioat.js";
import { vfioCheckFeature, type DeviceSharedState, type VfioDevice, type VfioDeviceFile, type VfioDeviceOps } from "./vfio_main.js";

/** A region's file offset: index * REGION_SPAN + offset (index << 40). */
const REGION_SPAN = 2 ** VFIO_PCI_OFFSET_SHIFT;
const PAGES_PER_REGION = REGION_SPAN / PAGE_SIZE;

/** What a model gives the vfio-pci face: its ids and BAR0 (a small MMIO window). */
export interface PciFunctionModel {
  readonly ids: PciIds;
  /** BAR0 size in bytes (a power of two from 4 KiB to 64 KiB: one block of frames backs it). */
  readonly bar0Size: number;
  /** The address firmware assigned to BAR0. */
  readonly bar0Address: number;
  /** MSI and MSI-X capabilities, if the function has them (the MSI-X table and PBA in BAR0). */
  readonly msi?: MsiModel;
  readonly msix?: MsixModel;
  /** A PCI Express function (power management and PCI Express capabilities, 4 KiB config space). */
  readonly pcie?: boolean;
  /** BAR0 is a DMA engine's register file (src/devices/ioat.ts), run by its own worker. */
  readonly engine?: "ioat";
}

/** Where the capabilities sit in config space. */
const PM_CAP_OFFSET = 0x40;
const MSI_CAP_OFFSET = 0x50;
const MSIX_CAP_OFFSET = 0x70;
const EXP_CAP_OFFSET = 0x80;

/**
 * struct vfio_pci_core_device for one emulated function: config space, BAR0 memory (one
 * frame in the shared pool, so that an mmap maps it directly), and interrupt triggers.
 */
export class VfioPciCoreDevice implements VfioDeviceOps {
  readonly name = "vfio-pci";
  readonly cfg: PciConfigSpace;
  /** The frame behind BAR0 (and its mmaps). */
  private bar0Frame: number;
  readonly bars: PciBar[];
  /** vdev->reset_works: a function reset is available. */
  readonly resetWorks = true;
  /** The INTx trigger, the error and request eventfds (each holds a file reference). */
  private intxTrigger: File | null = null;
  private intxMasked = false;
  private errTrigger: File | null = null;
  private reqTrigger: File | null = null;

  /** The frame holding config space and its write masks, in shared memory. */
  private cfgFrame: number;
  /** The order-1 block of MSI/MSI-X trigger words (one per vector), or -1 without MSI. */
  private irqFrame = -1;
  /** MSI and MSI-X: the function's hardware and vfio-pci's state over it. */
  readonly msi: VfioPciMsi | null = null;
  /** Every live mmap of a BAR, with the address spaces mapping it (zapped with memory off). */
  private readonly barMaps = new Set<{ mapping: FileMapping; mappers: Mappers<Mm> }>();
  /** The DMA engine behind BAR0 and the frame of its state (null: BAR0 is plain memory). */
  private engine: IoatEngine | null = null;
  private engineFrame = -1;

  constructor(readonly kcore: KernelCore, readonly model: PciFunctionModel) {
    this.bars = [{ size: model.bar0Size, address: model.bar0Address }];
    const cfgSize = model.pcie ? PCI_CFG_SPACE_EXP_SIZE : PCI_CFG_SPACE_SIZE;
    const cfgBytes = configStorageBytes(cfgSize);
    const cf = kcore.core.x.frame_alloc(Math.ceil(Math.log2(Math.ceil(cfgBytes / PAGE_SIZE)))) >>> 0;
    if (cf === FRAME_NONE) throw new Error("vfio-pci: no frame left for config space");
    this.cfgFrame = cf;
    const at = kcore.core.x.frame_addr(cf) >>> 0;
    const caps: PciCapability[] = [];
    if (model.pcie) caps.push(pmCapability(PM_CAP_OFFSET));
    if (model.msi) caps.push(msiCapability(MSI_CAP_OFFSET, model.msi));
    if (model.msix) {
      const m = model.msix;
      if (m.tableOffset + msixTableBytes(m.vectors) > model.bar0Size || m.pbaOffset + msixPbaBytes(m.vectors) > model.bar0Size) {
        throw new RangeError("vfio-pci: the MSI-X table and PBA must lie inside BAR0");
      }
      caps.push(msixCapability(MSIX_CAP_OFFSET, m));
    }
    if (model.pcie) caps.push(expCapability(EXP_CAP_OFFSET));
    this.cfg = new PciConfigSpace(model.ids, this.bars, cfgSize, kcore.core.u8.subarray(at, at + cfgBytes), caps);
    const f = kcore.core.x.frame_alloc(Math.log2(this.bar0Pages)) >>> 0;
    if (f === FRAME_NONE) throw new Error("vfio-pci: no frame left for BAR0");
    this.bar0Frame = f;
    if (caps.length) {
      const irq = kcore.core.x.frame_alloc(1) >>> 0;
      if (irq === FRAME_NONE) throw new Error("vfio-pci: no frame left for the MSI trigger words");
      this.irqFrame = irq;
      const ctx = kcore.core.x.frame_addr(irq) >>> 0;
      kcore.core.u8.fill(0, ctx, ctx + 2 * PAGE_SIZE);
      this.msi = new VfioPciMsi(kcore, new PciMsiHardware(kcore.core, this.cfg, model.msi ? MSI_CAP_OFFSET : 0,
        model.msix ? MSIX_CAP_OFFSET : 0, model.msix?.vectors ?? 0,
        () => this.bar0Base + (model.msix?.tableOffset ?? 0), () => this.bar0Base + (model.msix?.pbaOffset ?? 0), ctx));
    }
    // BAR0 starts as a zeroed frame; its power-on state (MSI-X vectors masked) is set by the
    // function reset of every first open (openDevice), before anything can reach the BAR.
    if (model.engine === "ioat") {
      const e = kcore.core.x.frame_alloc(0) >>> 0;
      if (e === FRAME_NONE) throw new Error("vfio-pci: no frame left for the DMA engine");
      this.engineFrame = e;
      this.engine = new IoatEngine(kcore.core, () => kcore.core.init(), this.bar0Base, kcore.core.x.frame_addr(e) >>> 0);
    }
  }

  /** Stops the engine's worker (the kernel closes); the function keeps its state. */
  stopEngine(): void {
    this.engine?.stop();
  }

  /** Where worker threads find this function's state (src/vfio/vfio_main.ts publishes it). */
  sharedState(): DeviceSharedState {
    const cfg = this.kcore.core.x.frame_addr(this.cfgFrame) >>> 0;
    const st: DeviceSharedState = {
      config: cfg, configSize: this.cfg.size, configMask: cfg + this.cfg.size, bar0: this.bar0Base, bar0Size: this.bars[0].size,
      ...(this.engine ? { engine: this.engine.eng } : {}),
    };
    const hw = this.msi?.hw;
    if (!hw) return st;
    const m = this.model.msix;
    return {
      ...st,
      irqCtx: this.kcore.core.x.frame_addr(this.irqFrame) >>> 0,
      msiCap: hw.msiCap ? cfg + hw.msiCap : 0,
      msixCap: hw.msixCap ? cfg + hw.msixCap : 0,
      msixTable: m ? this.bar0Base + m.tableOffset : 0,
      msixPba: m ? this.bar0Base + m.pbaOffset : 0,
      msixSize: m?.vectors ?? 0,
    };
  }

  private get bar0Base(): number { return this.kcore.core.x.frame_addr(this.bar0Frame) >>> 0; }

  /** Frames behind BAR0 (a sub-page BAR still takes a whole one). */
  private get bar0Pages(): number { return Math.max(1, this.model.bar0Size / PAGE_SIZE); }

  /** BAR0 at power-on: zeros, the MSI-X vectors masked. */
  private clearBar0(): void {
    this.kcore.core.u8.fill(0, this.bar0Base, this.bar0Base + this.bar0Pages * PAGE_SIZE);
    this.msi?.hw.resetTable();
    // A function reset: the engine halts and its registers read their power-on values.
    this.engine?.regs.reset();
  }

  /** The driver unbinds (device release): the BAR frame goes back (mappings keep theirs). */
  free(): void {
    if (this.bar0Frame < 0) return;
    // Worker file operations read these frames inside grace-period sections.
    synchronizeDma(this.kcore, "device_release");
    const x = this.kcore.core.x;
    // Every frame of a block holds one reference (BAR0 and the config space may be larger than a
    // page, the MSI trigger words are an order-1 block): each is put once, or the block never
    // frees. The list is of each block's first frame, expanded to the whole block.
    const frames = [this.bar0Frame, this.cfgFrame, this.irqFrame, this.engineFrame].filter((f) => f >= 0)
      .flatMap((f) => Array.from({ length: 1 << x.frame_order(f) }, (_, i) => f + i));
    this.bar0Frame = -1;
    this.cfgFrame = -1;
    this.irqFrame = -1;
    this.engineFrame = -1;
    const put = () => { for (const f of frames) x.frame_put(f); };
    // The engine's worker reads these frames: they go back once that thread is gone.
    if (this.engine) this.engine.stop(put);
    else put();
    this.engine = null;
  }

  // ---- open / close ---------------------------------------------------------------------

  /** vfio_pci_core_enable: reset the function and start from its power-on config. */
  openDevice(dev: VfioDevice): number {
    if (this.msi) this.msi.hw.dev = dev.index;
    this.cfg.reset();
    // pci_enable_device turns memory decoding on (before vfio reads the space into vconfig).
    this.cfg.set16(PCI_COMMAND, this.cfg.get16(PCI_COMMAND) | PCI_COMMAND_MEMORY);
    this.cfg.vset16(PCI_COMMAND, this.cfg.vget16(PCI_COMMAND) | PCI_COMMAND_MEMORY);
    const hw = this.msi?.hw;
    if (hw?.msiCap) this.msi?.setQmax(Math.log2(hw.count(false)));
    this.clearBar0();
    this.engine?.start(dev.index);
    this.intxMasked = false;
    return 0;
  }

  /** vfio_pci_core_disable: interrupts torn down, bus mastering off, function reset. */
  closeDevice(_dev: VfioDevice): void {
    this.runtimePmExit();
    this.msi?.disable();
    this.msi?.flushPuts();
    this.intxTrigger = this.putTrigger(this.intxTrigger);
    this.errTrigger = this.putTrigger(this.errTrigger);
    this.reqTrigger = this.putTrigger(this.reqTrigger);
    this.cfg.clear();
    this.clearBar0();
  }

  private putTrigger(f: File | null): null {
    if (f) this.kcore.fput(f);
    return null;
  }

  /** vfio_pci_core_request: signal the REQ eventfd if the user registered one. */
  request(_dev: VfioDevice, count: number): void {
    if (this.reqTrigger) (this.reqTrigger.priv as EventFd).add(1n);
    else if (count === 0 && this.kcore.trace.on) {
      this.kcore.trace.emit("vfio_pci_request", { dev: _dev.name, note: "no device request channel registered, blocked until released by user" });
    }
  }

  /** vfio_pci_core_match_token_uuid: neither PF nor VF, so a token is an error. */
  matchTokenUuid(_dev: VfioDevice, uuid: Uint8Array | null): number {
    return uuid ? -errno.EINVAL : 0;
  }

  /**
   * vfio_pci_core_ioctl_feature: the low-power features (runtime PM); PCI_VF_TOKEN is ENOTTY
   * (not an SR-IOV PF: no vf_token), and so is every other index (no DMA-buf export modelled).
   */
  deviceFeature(_dev: VfioDevice, flags: number, arg: number, argsz: number, proc: Process): number {
    switch (flags & VFIO_DEVICE_FEATURE_MASK) {
      case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY: {
        const rc = vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0);
        return rc !== 1 ? rc : this.runtimePmEntry(null);
      }
      case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: {
        const W = vfio_device_low_power_entry_with_wakeup;
        const rc = vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, W.size);
        if (rc !== 1) return rc;
        const b = proc.mm.copyFromUser(arg, W.size);
        if (typeof b === "number") return -errno.EFAULT;
        const fd = getField(new DataView(b.buffer, b.byteOffset, b.length), W.fields.wakeup_eventfd);
        if (fd < 0) return -errno.EINVAL;
        const e = this.eventfdGet(fd, proc);
        if (typeof e === "number") return e;
        const r = this.runtimePmEntry(e);
        if (r) this.putTrigger(e);
        return r;
      }
      case VFIO_DEVICE_FEATURE_LOW_POWER_EXIT: {
        const rc = vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0);
        if (rc !== 1) return rc;
        // The ioctl's own resume already ended a low-power entry with a wake-up eventfd.
        this.runtimePmExit();
        return 0;
      }
      default: return -errno.ENOTTY;
    }
  }

  /** pm_runtime_engaged: the user put the function in low power (BAR mmaps fault meanwhile). */
  private pmEngaged = false;
  /** pm_wake_eventfd_ctx: signalled when a resume ends the low-power state. */
  private pmWake: File | null = null;

  /** vfio_pci_runtime_pm_entry: BAR mmaps zapped; a second entry is EINVAL. */
  private runtimePmEntry(wake: File | null): number {
    this.zapBars();
    if (this.pmEngaged) return -errno.EINVAL;
    this.pmEngaged = true;
    this.pmWake = wake;
    return 0;
  }

  /** __vfio_pci_runtime_pm_exit. */
  private runtimePmExit(): void {
    if (!this.pmEngaged) return;
    this.pmEngaged = false;
    this.pmWake = this.putTrigger(this.pmWake);
  }

  /**
   * vfio_pci_core_runtime_resume (an ioctl or a region read/write wakes the function): with a
   * wake-up eventfd the eventfd is signalled and low power ends; without one the function
   * suspends again once the call is done, so the entry stands.
   */
  runtimeResume(_dev: VfioDevice): void {
    if (!this.pmWake) return;
    (this.pmWake.priv as EventFd).add(1n);
    this.runtimePmExit();
  }

  // ---- ioctls ---------------------------------------------------------------------------

  ioctl(dev: VfioDevice, _df: VfioDeviceFile, cmd: number, arg: number, proc: Process): number {
    switch (cmd) {
      case VFIO_DEVICE_GET_INFO: return this.getInfo(arg, proc);
      case VFIO_DEVICE_GET_REGION_INFO: return this.getRegionInfo(arg, proc);
      case VFIO_DEVICE_GET_IRQ_INFO: return this.getIrqInfo(arg, proc);
      case VFIO_DEVICE_SET_IRQS: return this.setIrqs(arg, proc);
      case VFIO_DEVICE_RESET: return this.reset(dev);
      case VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: return this.hotResetInfo(dev, arg, proc);
      case VFIO_DEVICE_PCI_HOT_RESET: return this.hotReset(dev, arg, proc);
      default: return -errno.ENOTTY;
    }
  }

  /** Writes back `n` bytes of `bytes` (min(argsz, sizeof) or minsz, per handler). */
  private copyOut(proc: Process, arg: number, bytes: Uint8Array, n: number): number {
    return proc.mm.copyToUser(arg, bytes.subarray(0, n)) < 0 ? -errno.EFAULT : 0;
  }

  private getInfo(arg: number, proc: Process): number {
    const c = vfioCopyIn(proc, arg, vfio_device_info);
    if (typeof c === "number") return c;
    const f = vfio_device_info.fields;
    c.view.setUint32(f.flags.off, VFIO_DEVICE_FLAGS_PCI | (this.resetWorks ? VFIO_DEVICE_FLAGS_RESET : 0), true);
    c.view.setUint32(f.num_regions.off, VFIO_PCI_NUM_REGIONS, true);
    c.view.setUint32(f.num_irqs.off, VFIO_PCI_NUM_IRQS, true);
    // No capabilities (no zPCI, no atomic completer): cap_offset and pad read 0.
    return this.copyOut(proc, arg, c.bytes, Math.min(c.argsz, vfio_device_info.size));
  }

  private getRegionInfo(arg: number, proc: Process): number {
    const c = vfioCopyIn(proc, arg, vfio_region_info);
    if (typeof c === "number") return c;
    const f = vfio_region_info.fields;
    const index = c.view.getUint32(f.index.off, true);
    let flags = 0;
    let size = 0;
    if (index === VFIO_PCI_CONFIG_REGION_INDEX) {
      size = this.cfg.size;
      flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    } else if (index <= VFIO_PCI_BAR5_REGION_INDEX) {
      size = this.bars[index]?.size ?? 0;
      if (size) flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
    } else if (index === VFIO_PCI_ROM_REGION_INDEX) {
      // No option ROM: size 0, no flags.
    } else {
      // VGA (no VGA device) and anything past the fixed regions (no device-specific ones).
      return -errno.EINVAL;
    }
    // msix_mmappable_cap: the BAR holding the MSI-X table may be mmap'd whole.
    if (index === 0 && this.model.msix && flags & VFIO_REGION_INFO_FLAG_MMAP) {
      const cap = new Uint8Array(8);
      const hdr = new DataView(cap.buffer); // next 0: the chain's only capability
      setField(hdr, vfio_info_cap_header.fields.id, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
      setField(hdr, vfio_info_cap_header.fields.version, 1);
      flags |= VFIO_REGION_INFO_FLAG_CAPS;
      if (c.argsz < vfio_region_info.size + cap.length) {
        // Too small for the chain: the size it needs, and no chain.
        c.view.setUint32(f.argsz.off, vfio_region_info.size + cap.length, true);
        c.view.setUint32(f.cap_offset.off, 0, true);
      } else {
        if (proc.mm.copyToUser(arg + vfio_region_info.size, cap) < 0) return -errno.EFAULT;
        c.view.setUint32(f.cap_offset.off, vfio_region_info.size, true);
      }
    }
    c.view.setUint32(f.flags.off, flags, true);
    c.view.setBigUint64(f.offset.off, VFIO_PCI_INDEX_TO_OFFSET(index), true);
    c.view.setBigUint64(f.size.off, BigInt(size), true);
    return this.copyOut(proc, arg, c.bytes, vfio_region_info.minSize);
  }

  /** vfio_pci_get_irq_count. */
  irqCount(index: number): number {
    switch (index) {
      case VFIO_PCI_INTX_IRQ_INDEX: return this.cfg.interruptPin ? 1 : 0;
      case VFIO_PCI_MSI_IRQ_INDEX: return this.msi?.hw.count(false) ?? 0;
      case VFIO_PCI_MSIX_IRQ_INDEX: return this.msi?.hw.count(true) ?? 0;
      case VFIO_PCI_REQ_IRQ_INDEX: return 1;
      case VFIO_PCI_ERR_IRQ_INDEX: return this.isPcie ? 1 : 0;
      default: return 0;
    }
  }

  private getIrqInfo(arg: number, proc: Process): number {
    const c = vfioCopyIn(proc, arg, vfio_irq_info);
    if (typeof c === "number") return c;
    const f = vfio_irq_info.fields;
    const index = c.view.getUint32(f.index.off, true);
    if (index >= VFIO_PCI_NUM_IRQS) return -errno.EINVAL;
    // The error interrupt exists for PCI Express functions only.
    if (index === VFIO_PCI_ERR_IRQ_INDEX && !this.isPcie) return -errno.EINVAL;
    let flags = VFIO_IRQ_INFO_EVENTFD;
    if (index === VFIO_PCI_INTX_IRQ_INDEX) flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
    else flags |= VFIO_IRQ_INFO_NORESIZE; // MSI-X too: no dynamic MSI-X allocation
    c.view.setUint32(f.flags.off, flags, true);
    c.view.setUint32(f.count.off, this.irqCount(index), true);
    return this.copyOut(proc, arg, c.bytes, vfio_irq_info.minSize);
  }

  /** vfio_set_irqs_validate_and_prepare + vfio_pci_set_irqs_ioctl. */
  private setIrqs(arg: number, proc: Process): number {
    const c = vfioCopyIn(proc, arg, vfio_irq_set);
    if (typeof c === "number") return c;
    const f = vfio_irq_set.fields;
    const flags = c.view.getUint32(f.flags.off, true);
    const index = c.view.getUint32(f.index.off, true);
    const start = c.view.getUint32(f.start.off, true);
    const count = c.view.getUint32(f.count.off, true);
    if (index >= VFIO_PCI_NUM_IRQS) return -errno.EINVAL;
    if (count >= 0xffffffff - start) return -errno.EINVAL;
    if (flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) return -errno.EINVAL;
    const max = this.irqCount(index);
    if (start >= max || start + count > max) return -errno.EINVAL;
    let elem: number;
    switch (flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
      case VFIO_IRQ_SET_DATA_NONE: elem = 0; break;
      case VFIO_IRQ_SET_DATA_BOOL: elem = 1; break;
      case VFIO_IRQ_SET_DATA_EVENTFD: elem = 4; break;
      default: return -errno.EINVAL;
    }
    let data: Uint8Array = new Uint8Array(0);
    if (elem) {
      if (c.argsz - vfio_irq_set.minSize < count * elem) return -errno.EINVAL;
      const d = proc.mm.copyFromUser(arg + vfio_irq_set.minSize, count * elem);
      if (typeof d === "number") return -errno.EFAULT;
      data = d;
    }
    const action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    if (index === VFIO_PCI_MSI_IRQ_INDEX || index === VFIO_PCI_MSIX_IRQ_INDEX) {
      // MASK and UNMASK have no handler for MSI/MSI-X in vfio-pci: ENOTTY below.
      if (action !== VFIO_IRQ_SET_ACTION_TRIGGER || !this.msi) return -errno.ENOTTY;
      const fds = flags & VFIO_IRQ_SET_DATA_EVENTFD ? new Int32Array(data.slice().buffer) : null;
      const bools = flags & VFIO_IRQ_SET_DATA_BOOL ? data : null;
      try {
        return this.msi.setTrigger(index, start, count, flags, this.intxTrigger === null, fds, bools, (fd) => this.eventfdGet(fd, proc));
      } finally {
        this.msi.flushPuts();
      }
    }
    if (index === VFIO_PCI_INTX_IRQ_INDEX) {
      if (action === VFIO_IRQ_SET_ACTION_MASK || action === VFIO_IRQ_SET_ACTION_UNMASK) {
        // Level-triggered INTx masking: recorded; an emulated device asserts nothing yet.
        if (this.intxTrigger && count) this.intxMasked = action === VFIO_IRQ_SET_ACTION_MASK;
        return 0;
      }
      if (action === VFIO_IRQ_SET_ACTION_TRIGGER) return this.setIntxTrigger(flags, start, count, data, proc);
      return -errno.ENOTTY;
    }
    if (index === VFIO_PCI_ERR_IRQ_INDEX && action === VFIO_IRQ_SET_ACTION_TRIGGER && this.isPcie) {
      if (start !== 0 || count > 1) return -errno.EINVAL;
      const r = this.setTriggerSingle(this.errTrigger, flags, count, data, proc);
      if (typeof r === "number") return r;
      this.errTrigger = r.ctx;
      return 0;
    }
    if (index === VFIO_PCI_REQ_IRQ_INDEX && action === VFIO_IRQ_SET_ACTION_TRIGGER) {
      if (start !== 0 || count > 1) return -errno.EINVAL;
      const r = this.setTriggerSingle(this.reqTrigger, flags, count, data, proc);
      if (typeof r === "number") return r;
      this.reqTrigger = r.ctx;
      return 0;
    }
    return -errno.ENOTTY;
  }

  /** eventfd_ctx_fdget: a reference on an eventfd file, -EBADF, or -EINVAL for another file. */
  private eventfdGet(fd: number, proc: Process): File | number {
    const file = proc.fget(fd);
    if (!file) return -errno.EBADF;
    if (file.ops !== eventfdFops) {
      this.kcore.fput(file);
      return -errno.EINVAL;
    }
    return file;
  }

  /** vfio_pci_set_ctx_trigger_single (ERR and REQ). */
  private setTriggerSingle(ctx: File | null, flags: number, count: number, data: Uint8Array, proc: Process): { ctx: File | null } | number {
    if (flags & VFIO_IRQ_SET_DATA_NONE) {
      if (ctx) {
        if (count) (ctx.priv as EventFd).add(1n);
        else return { ctx: this.putTrigger(ctx) };
        return { ctx };
      }
      return -errno.EINVAL;
    }
    if (flags & VFIO_IRQ_SET_DATA_BOOL) {
      if (!count) return -errno.EINVAL;
      if (data[0] && ctx) (ctx.priv as EventFd).add(1n);
      return { ctx };
    }
    if (!count) return -errno.EINVAL;
    const fd = new DataView(data.buffer, data.byteOffset, 4).getInt32(0, true);
    if (fd === -1) return { ctx: this.putTrigger(ctx) };
    if (fd >= 0) {
      const e = this.eventfdGet(fd, proc);
      if (typeof e === "number") return e;
      this.putTrigger(ctx);
      return { ctx: e };
    }
    return { ctx };
  }

  /** vfio_pci_set_intx_trigger. */
  private setIntxTrigger(flags: number, start: number, count: number, data: Uint8Array, proc: Process): number {
    if (this.intxTrigger && !count && (flags & VFIO_IRQ_SET_DATA_NONE)) {
      this.intxTrigger = this.putTrigger(this.intxTrigger);
      return 0;
    }
    if (this.msi?.enabled || start !== 0 || count !== 1) return -errno.EINVAL;
    if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
      const fd = new DataView(data.buffer, data.byteOffset, 4).getInt32(0, true);
      if (fd >= 0) {
        const e = this.eventfdGet(fd, proc);
        if (typeof e === "number") return e;
        this.putTrigger(this.intxTrigger);
        this.intxTrigger = e;
        this.intxMasked = false;
      } else {
        this.intxTrigger = this.putTrigger(this.intxTrigger);
      }
      return 0;
    }
    if (!this.intxTrigger) return -errno.EINVAL;
    if ((flags & VFIO_IRQ_SET_DATA_NONE) || data[0]) this.signalIntx();
    return 0;
  }

  /** Asserts INTx: signal the trigger and auto-mask (level-triggered). */
  signalIntx(): void {
    if (!this.intxTrigger || this.intxMasked) return;
    (this.intxTrigger.priv as EventFd).add(1n);
    this.intxMasked = true;
  }

  /**
   * vfio_pci_ioctl_get_pci_hot_reset_info: struct vfio_pci_hot_reset_info { argsz, flags,
   * count, devices[] } (minsz 12). A root-bus function has neither a slot nor a bus reset:
   * ENODEV. Otherwise every function on its bus is affected: too small an array gives ENOSPC
   * with the header's count; else one vfio_pci_dependent_device each, by group id for a
   * group-opened device, by devid in the caller's iommufd for a cdev-opened one.
   */
  private hotResetInfo(dev: VfioDevice, arg: number, proc: Process): number {
    const h = proc.mm.copyFromUser(arg, vfio_pci_hot_reset_info.size);
    if (typeof h === "number") return -errno.EFAULT;
    const hv = new DataView(h.buffer, h.byteOffset, h.length);
    const HF = vfio_pci_hot_reset_info.fields;
    const argsz = hv.getUint32(HF.argsz.off, true);
    if (argsz < vfio_pci_hot_reset_info.size) return -errno.EINVAL;
    hv.setUint32(HF.flags.off, 0, true);
    const fns = this.resetBus?.() ?? null;
    if (!fns) return -errno.ENODEV;
    const E = vfio_pci_dependent_device;
    if (fns.length > Math.floor((argsz - vfio_pci_hot_reset_info.size) / E.size)) {
      hv.setUint32(HF.count.off, fns.length, true);
      return this.copyOut(proc, arg, h, h.length) < 0 ? -errno.EFAULT : -errno.ENOSPC;
    }
    let flags = dev.cdevOpened ? VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED : 0;
    const ictx = dev.iommufdDevice?.ctx ?? null;
    const out = new Uint8Array(fns.length * E.size);
    const ov = new DataView(out.buffer);
    for (let i = 0; i < fns.length; i++) {
      const f = fns[i];
      const at = i * E.size;
      ov.setUint16(at + E.fields.segment.off, f.segment, true);
      ov.setUint8(at + E.fields.bus.off, f.bus);
      ov.setUint8(at + E.fields.devfn.off, f.devfn);
      if (flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID) {
        // Only functions represented in the dev_set can be owned.
        const other = devSetMember(dev, f.bdf);
        const id = other ? hotResetDevId(other, ictx) : -errno.ENODEV;
        const devid = id > 0 ? id : id === -errno.ENOENT ? VFIO_PCI_DEVID_OWNED : VFIO_PCI_DEVID_NOT_OWNED;
        ov.setUint32(at + E.fields.devid.off, devid >>> 0, true);
        if (devid === VFIO_PCI_DEVID_NOT_OWNED) flags &= ~VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
      } else {
        // A function outside any IOMMU group is not isolated: it cannot be reset by a user.
        if (f.iommuGroup === null) return -errno.EPERM;
        ov.setUint32(at + E.fields.group_id.off, f.iommuGroup, true);
      }
    }
    // The array goes first; the header only when it got there.
    if (proc.mm.copyToUser(arg + vfio_pci_hot_reset_info.size, out) < 0) return -errno.EFAULT;
    hv.setUint32(HF.count.off, fns.length, true);
    hv.setUint32(HF.flags.off, flags, true);
    return this.copyOut(proc, arg, h, h.length);
  }

  /**
   * vfio_pci_ioctl_pci_hot_reset: struct vfio_pci_hot_reset { argsz, flags, count, group_fds[] }.
   * Flags must be 0; a cdev-opened device passes count 0 (the iommufd form), a group-opened one
   * its group fds (at most one per affected function); a root-bus function: ENODEV. Then
   * vfio_pci_dev_set_hot_reset.
   */
  private hotReset(dev: VfioDevice, arg: number, proc: Process): number {
    const h = proc.mm.copyFromUser(arg, vfio_pci_hot_reset.size);
    if (typeof h === "number") return -errno.EFAULT;
    const v = new DataView(h.buffer, h.byteOffset, h.length);
    const F = vfio_pci_hot_reset.fields;
    if (v.getUint32(F.argsz.off, true) < vfio_pci_hot_reset.size || v.getUint32(F.flags.off, true)) return -errno.EINVAL;
    const count = v.getUint32(F.count.off, true);
    if ((count !== 0) === dev.cdevOpened) return -errno.EINVAL;
    const fns = this.resetBus?.() ?? null;
    if (!fns) return -errno.ENODEV;
    if (count === 0) {
      // The iommufd form: each device bound to the caller's context, or its group owned there.
      const ictx = dev.iommufdDevice?.ctx ?? null;
      return hotResetDevSet(dev, fns, (d) => {
        const id = hotResetDevId(d, ictx);
        return id > 0 || id === -errno.ENOENT;
      });
    }
    // vfio_pci_ioctl_pci_hot_reset_groups: no more fds than affected functions.
    if (count > fns.length) return -errno.EINVAL;
    const raw = proc.mm.copyFromUser(arg + vfio_pci_hot_reset.size, count * 4);
    if (typeof raw === "number") return -errno.EFAULT;
    const rv = new DataView(raw.buffer, raw.byteOffset, raw.length);
    const files: File[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const file = proc.fget(rv.getInt32(i * 4, true));
        if (!file) return -errno.EBADF;
        // vfio_file_is_group.
        if (file.ops !== dev.vfio.groups.fops) {
          this.kcore.fput(file);
          return -errno.EINVAL;
        }
        files.push(file);
      }
      // vfio_dev_in_groups: vfio_file_has_dev on each file.
      return hotResetDevSet(dev, fns, (d) => files.some((f) => f.priv === d.group));
    } finally {
      for (const f of files) this.kcore.fput(f);
    }
  }

  /** pci_probe_reset_bus + the functions on the bus (set by the machine; null: the root bus). */
  resetBus: (() => readonly PciFunction[] | null) | null = null;

  /**
   * One function's part of pci_reset_bus: its BAR mmaps zapped first (vfio_pci_zap_bars, under
   * the memory lock the kernel holds across the reset; they refault afterwards), then the
   * reset with its config state saved and restored around it.
   */
  busReset(): void {
    this.zapBars();
    this.functionReset();
  }

  /** pci_is_pcie. */
  get isPcie(): boolean { return this.cfg.findCapability(PCI_CAP_ID_EXP) !== 0; }

  /** VFIO_DEVICE_RESET: a function reset (the device's own state), config space restored. */
  private reset(_dev: VfioDevice): number {
    if (!this.resetWorks) return -errno.EINVAL;
    this.functionReset();
    return 0;
  }

  /**
   * pci_try_reset_function: the function's own state (BAR memory, the MSI-X table) goes back
   * to power-on; the config state saved around the reset, MSI/MSI-X included, is restored.
   */
  private functionReset(): void {
    this.clearBar0();
    this.msi?.restore();
  }

  /**
   * What vfio_pci_config.c's write handlers do after the permissions let a user write through
   * (only here, on the kernel's thread): the power state, the MSI flags mirrored to the
   * hardware, the MSI mask bits, PCIe function-level reset and the read request size.
   */
  private configWritten(off: number, len: number, data: Uint8Array, devctlBefore: number): void {
    const cfg = this.cfg;
    const hit = (cap: number, reg: number, n: number) => cap !== 0 && off < cap + reg + n && off + len > cap + reg;
    // vfio_basic_config_write: a write starting at COMMAND records memory and I/O enable in
    // vconfig (what BAR access checks), whatever the hardware took.
    if (off === PCI_COMMAND) {
      const cmd = data[0] | (len > 1 ? data[1] << 8 : 0);
      const m = PCI_COMMAND_MEMORY | PCI_COMMAND_IO;
      cfg.vset16(PCI_COMMAND, (cfg.vget16(PCI_COMMAND) & ~m) | (cmd & m));
      // vfio_pci_zap_bars: with memory decoding off, no BAR mmap keeps a page; faults fail.
      if (!(cmd & PCI_COMMAND_MEMORY)) this.zapBars();
    }
    const pm = cfg.findCapability(1);
    // vfio_pm_config_write: a write starting at PMCSR sets the power state (D0 and D3hot here).
    if (pm && off === pm + PCI_PM_CTRL) {
      const state = data[0] & PCI_PM_CTRL_STATE_MASK;
      if (state === 0 || state === 3) cfg.set16(pm + PCI_PM_CTRL, (cfg.get16(pm + PCI_PM_CTRL) & ~PCI_PM_CTRL_STATE_MASK) | state);
    }
    const hw = this.msi?.hw;
    if (hw?.msiCap && this.msi) {
      const cap = hw.msiCap;
      // vfio_msi_config_write: a write reaching the flags fixes up enable (only while MSI is
      // on through SET_IRQS) and the queue size (at most msi_qmax), and mirrors both to hw.
      if (off - cap <= PCI_MSI_FLAGS && off + len - cap >= PCI_MSI_FLAGS && off < cap + 24) {
        let flags = cfg.vget16(cap + PCI_MSI_FLAGS);
        if (this.msi.type !== VFIO_PCI_MSI_IRQ_INDEX) flags &= ~PCI_MSI_FLAGS_ENABLE;
        if ((flags & PCI_MSI_FLAGS_QSIZE) >> 4 > this.msi.qmax) flags = (flags & ~PCI_MSI_FLAGS_QSIZE) | (this.msi.qmax << 4);
        cfg.vset16(cap + PCI_MSI_FLAGS, flags);
        // vfio_msi_config_read shows msi_qmax in the capable field, whatever was written there.
        this.msi.setQmax(this.msi.qmax);
        const rw = PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE;
        cfg.set16(cap + PCI_MSI_FLAGS, (cfg.get16(cap + PCI_MSI_FLAGS) & ~rw) | (flags & rw));
        hw.flushMsi();
      }
      // The mask bits reach the hardware: held messages of now unmasked vectors go.
      if (hit(cap, PCI_MSI_MASK_64, 4)) hw.flushMsi();
    }
    const exp = cfg.findCapability(PCI_CAP_ID_EXP);
    if (exp && off < exp + 52 && off + len > exp) {
      // vfio_exp_config_write: the FLR bit always reads 0; set, it resets the function.
      const ctl = cfg.vget16(exp + PCI_EXP_DEVCTL);
      if (ctl & PCI_EXP_DEVCTL_BCR_FLR) {
        cfg.vset16(exp + PCI_EXP_DEVCTL, ctl & ~PCI_EXP_DEVCTL_BCR_FLR);
        if (cfg.get32(exp + PCI_EXP_DEVCAP) & PCI_EXP_DEVCAP_FLR) this.functionReset();
      }
      // A new max read request size is set on the hardware (pcie_set_readrq).
      const rq = cfg.vget16(exp + PCI_EXP_DEVCTL) & PCI_EXP_DEVCTL_READRQ;
      if (rq !== devctlBefore) cfg.set16(exp + PCI_EXP_DEVCTL, (cfg.get16(exp + PCI_EXP_DEVCTL) & ~PCI_EXP_DEVCTL_READRQ) | rq);
    }
  }

  // ---- read / write / mmap --------------------------------------------------------------

  read(dev: VfioDevice, buf: Uint8Array, pos: number): number {
    // vfio_pci_rw resumes the function for any region it knows (pm_runtime_resume_and_get).
    if (Math.floor(pos / REGION_SPAN) < VFIO_PCI_NUM_REGIONS) this.runtimeResume(dev);
    return this.rw(buf, pos, false);
  }

  write(dev: VfioDevice, buf: Uint8Array, pos: number): number {
    if (Math.floor(pos / REGION_SPAN) < VFIO_PCI_NUM_REGIONS) this.runtimeResume(dev);
    return this.rw(buf, pos, true);
  }

  /** vfio_pci_rw: the one implementation workers run too (devices/pci_rw.ts), plus the side effects. */
  private rw(buf: Uint8Array, pos: number, write: boolean): number {
    // One state object and its closures, made once and refilled per call (as the worker's
    // DeviceFileIo): the frames' addresses are read afresh, the engine may be gone.
    const s = this.rwState ??= this.newRwState();
    s.mem = this.kcore.core.u8;
    s.config = this.kcore.core.x.frame_addr(this.cfgFrame) >>> 0;
    s.configSize = this.cfg.size;
    s.bar0 = this.bar0Base;
    s.bar0Size = this.bars[0].size;
    // An engine's register file takes its writes through its own handler.
    s.barSink = this.engine ? this.engineSink : undefined;
    return pciRw(s, buf, pos, write);
  }

  private rwState: PciRwState | null = null;
  private readonly engineSink = (at: number, data: Uint8Array): void => { this.engine?.regs.write(at, data); };

  /** The rw state with every field from the start (one shape), the MSI-X table's range fixed. */
  private newRwState(): PciRwState {
    const m = this.model.msix;
    const x = m ? m.tableOffset : 0;
    return {
      mem: this.kcore.core.u8, config: 0, configSize: 0, bar0: 0, bar0Size: 0,
      msixStart: x, msixEnd: m ? x + msixTableBytes(m.vectors) : 0, barSink: undefined,
      configWrite: (off, data) => {
        const exp = this.cfg.findCapability(PCI_CAP_ID_EXP);
        const rq = exp ? this.cfg.vget16(exp + PCI_EXP_DEVCTL) & PCI_EXP_DEVCTL_READRQ : 0;
        this.cfg.write(off, data);
        this.configWritten(off, data.length, data, rq);
      },
    };
  }

  /** vfio_pci_core_mmap: shared mappings of mmap-able BARs, inside the BAR. */
  mmap(_dev: VfioDevice, req: MmapRequest): FileMapping | number {
    const index = Math.floor(req.pgoff / PAGES_PER_REGION);
    if (index >= VFIO_PCI_NUM_REGIONS) return -errno.EINVAL;
    if (!req.shared) return -errno.EINVAL;
    if (index >= VFIO_PCI_ROM_REGION_INDEX) return -errno.EINVAL;
    const bar = this.bars[index];
    if (!bar?.size) return -errno.EINVAL;
    const physLen = Math.ceil(bar.size / PAGE_SIZE) * PAGE_SIZE;
    const start = (req.pgoff % PAGES_PER_REGION) * PAGE_SIZE;
    if (start + req.length > physLen) return -errno.EINVAL;
    const frame = this.bar0Frame;
    const pages = this.bar0Pages;
    const base = index * PAGES_PER_REGION;
    const engine = this.engine;
    const mappers = new Mappers<Mm>();
    const mapping: FileMapping = {
      // vfio_pci_core_mmap marks the VMA VM_IO | VM_PFNMAP: BAR pages are not pinnable memory.
      pfnmap: true,
      // vfio_pci_mmap_huge_fault: SIGBUS (EFAULT here) while memory decoding is off.
      frameAt: (pgoff: number) => (pgoff - base >= 0 && pgoff - base < pages && frame >= 0 && this.memoryOn && !this.pmEngaged
        ? frame + pgoff - base : -errno.EFAULT),
      // Stores through the mapping reach the engine's registers (MMIO).
      ...(engine ? { mmioWrite: (off: number, data: Uint8Array) => engine.regs.write(off - base * PAGE_SIZE, data) } : {}),
      attach: (mm: object) => { mappers.add(mm as Mm); this.barMaps.add(entry); },
      detach: (mm: object) => { if (mappers.remove(mm as Mm)) this.barMaps.delete(entry); },
    };
    const entry = { mapping, mappers };
    return mapping;
  }

  /** __vfio_pci_memory_enabled, false once the function is gone. */
  private get memoryOn(): boolean {
    if (this.cfgFrame < 0) return false;
    return memoryEnabled(this.kcore.core.u8, this.kcore.core.x.frame_addr(this.cfgFrame) >>> 0, this.cfg.size);
  }

  /** vfio_pci_zap_bars: every page of every BAR mmap leaves its page tables (refaulted later). */
  private zapBars(): void {
    for (const { mapping, mappers } of this.barMaps) for (const mm of mappers.keys()) mm.zapFilePages(mapping, 0);
  }
}

/** vfio_find_device_in_devset: the vfio device of the function at `bdf` in `dev`'s set. */
function devSetMember(dev: VfioDevice, bdf: string): VfioDevice | undefined {
  for (const d of dev.devSet.devices) if (d.name === bdf) return d;
  return undefined;
}

/**
 * vfio_iommufd_get_dev_id: the device's id when it is bound to `ictx`; -ENOENT when it is not
 * but its IOMMU group is (iommufd_ctx_has_group: a device of the group is bound there, so no
 * other context can own this one); -ENODEV otherwise.
 */
function hotResetDevId(d: VfioDevice, ictx: IommufdCtx | null): number {
  const own = d.iommufdDevice?.ctx ?? null;
  if (own === ictx) return d.iommufdDevice ? d.iommufdDevice.id : -errno.EINVAL;
  const g = d.iommuDev.groupId;
  if (g === null || !ictx) return -errno.ENODEV;
  return (ictx.groups.get(g)?.bound ?? 0) > 0 ? -errno.ENOENT : -errno.ENODEV;
}

/**
 * vfio_pci_dev_set_hot_reset: every function on the bus must be in the dev_set (bound to
 * vfio-pci; vfio_pci_dev_set_resettable) and every device of the set owned by the caller
 * (`owned`), else EINVAL with nothing touched; then pci_reset_bus resets every function.
 */
function hotResetDevSet(dev: VfioDevice, fns: readonly PciFunction[], owned: (d: VfioDevice) => boolean): number {
  const set = dev.devSet;
  if (!fns.every((f) => devSetMember(dev, f.bdf))) return -errno.EINVAL;
  for (const d of set.devices) if (!owned(d)) return -errno.EINVAL;
  for (const d of set.devices) (d.ops as VfioPciCoreDevice).busReset();
  return 0;
}
