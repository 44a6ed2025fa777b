// /dev/iommu (drivers/iommu/iommufd/main.c): the misc device, one iommufd context per open
// file, the object table, IOMMU_DESTROY and IOMMU_OPTION, the ioctl table that sends
// everything else to its module (numbers outside it go to the VFIO compat layer), and mmap of
// the regions drivers register in the file's offset space (ictx->mt_mmap).

import { errno } from "../uapi/errno.js";
import {
  IOMMU_DESTROY, IOMMU_GET_HW_INFO, IOMMU_HWPT_ALLOC, IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_INVALIDATE, IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_CHANGE_PROCESS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_VFIO_IOAS, IOMMU_FAULT_QUEUE_ALLOC,
  IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC, IOMMU_VEVENTQ_ALLOC, IOMMU_HW_QUEUE_ALLOC,
} from "../uapi/ioctl.js";
import {
  IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET, IOMMU_OPTION_RLIMIT_MODE,
  iommu_destroy, iommu_hw_info, iommu_hwpt_alloc, iommu_hwpt_get_dirty_bitmap,
  iommu_hwpt_invalidate, iommu_hwpt_set_dirty_tracking, iommu_ioas_alloc, iommu_ioas_allow_iovas,
  iommu_ioas_change_process, iommu_ioas_copy, iommu_ioas_iova_ranges, iommu_ioas_map,
  iommu_ioas_map_file, iommu_ioas_unmap, iommu_option, iommu_vfio_ioas, iommu_fault_alloc,
  iommu_viommu_alloc, iommu_vdevice_alloc, iommu_veventq_alloc, iommu_hw_queue_alloc,
} from "../uapi/iommufd.js";
import { MISC_MAJOR, PROT_EXEC, S_IFCHR, makedev } from "../uapi/posix.js";
import type { StructLayout } from "../uapi/struct.js";
import type { File, FileMapping, FileOperations, MmapRequest } from "../kernel/file.js";
import { PAGE_SIZE } from "../kernel/mm.js";
import { IommufdIoctlTable, type IommufdIoctlOp, type UCmd } from "../kernel/ioctl.js";
import type { KernelCore } from "../kernel/kernel.js";
import { SlotAllocator } from "../kernel/slots.js";
import type { Process } from "../kernel/process.js";
import { faultAlloc } from "./eventq.js";
import { getHwInfo, hwptAlloc, hwptGetDirtyBitmap, hwptInvalidate, hwptSetDirtyTracking } from "./hw_pagetable.js";
import {
  fields, Ioas, ioasAllocIoctl, ioasAllowIovas, ioasChangeProcess, ioasCopy, ioasIovaRanges,
  ioasMap, ioasMapFile, ioasOption, ioasUnmap,
} from "./ioas.js";
import { IommufdObject, ObjectTable, type ObjType } from "./object.js";
import { IoptPages, type PagesSource, type PinContext } from "./pages.js";
import { DEFAULT_MEMORY_LIMIT } from "./selftest.js";
import { vfioCompatIoctl, vfioIoasIoctl } from "./vfio_compat.js";
import { hwQueueAlloc, vdeviceAlloc, veventqAlloc, viommuAlloc } from "./viommu.js";
import type { IommufdGroup } from "./device.js";
import type { IommuCaps } from "../iommu/device.js";
import { allocDomain, type DomainOptions, type IommuDomain } from "../iommu/domain.js";

/** /dev/iommu is a misc device with a dynamic minor. */
const IOMMU_MINOR = 124;
const IOMMUFD_CMD_BASE = 0x80;

type Handler = (ctx: IommufdCtx, ucmd: UCmd) => number;

/** The iommufd driver of one kernel: its device node, its ioctl table, its counters. */
export class Iommufd {
  readonly contexts = new Set<IommufdCtx>();
  /** Long-term DMA pins per frame (what the kernel counts in units of GUP_PIN_COUNTING_BIAS). */
  private pins: Int32Array | null = null;
  /** Pages pinned, summed over frames. */
  pinnedPages = 0;
  /** The page-batch limit of IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT. */
  memoryLimit = DEFAULT_MEMORY_LIMIT;
  /** The vfio/iommufd module parameter allow_unsafe_interrupts. */
  allowUnsafeInterrupts = false;
  /** Ids of the selftest's mock devices (an IDA). */
  readonly mockIds = new SlotAllocator(1 << 20);
  readonly table: IommufdIoctlTable;
  private readonly fops: FileOperations;

  constructor(readonly kcore: KernelCore) {
    const op = (cmd: number, name: string, layout: StructLayout, fn: Handler): IommufdIoctlOp =>
      ({ cmd, name, layout, handler: (ucmd) => fn(ctxOf(ucmd.file), ucmd) });
    this.table = new IommufdIoctlTable(IOMMUFD_CMD_BASE, [
      op(IOMMU_DESTROY, "IOMMU_DESTROY", iommu_destroy, destroyIoctl),
      op(IOMMU_IOAS_ALLOC, "IOMMU_IOAS_ALLOC", iommu_ioas_alloc, ioasAllocIoctl),
      op(IOMMU_IOAS_ALLOW_IOVAS, "IOMMU_IOAS_ALLOW_IOVAS", iommu_ioas_allow_iovas, ioasAllowIovas),
      op(IOMMU_IOAS_COPY, "IOMMU_IOAS_COPY", iommu_ioas_copy, ioasCopy),
      op(IOMMU_IOAS_IOVA_RANGES, "IOMMU_IOAS_IOVA_RANGES", iommu_ioas_iova_ranges, ioasIovaRanges),
      op(IOMMU_IOAS_MAP, "IOMMU_IOAS_MAP", iommu_ioas_map, ioasMap),
      op(IOMMU_IOAS_UNMAP, "IOMMU_IOAS_UNMAP", iommu_ioas_unmap, ioasUnmap),
      op(IOMMU_OPTION, "IOMMU_OPTION", iommu_option, optionIoctl),
      op(IOMMU_VFIO_IOAS, "IOMMU_VFIO_IOAS", iommu_vfio_ioas, vfioIoasIoctl),
      op(IOMMU_HWPT_ALLOC, "IOMMU_HWPT_ALLOC", iommu_hwpt_alloc, hwptAlloc),
      op(IOMMU_GET_HW_INFO, "IOMMU_GET_HW_INFO", iommu_hw_info, getHwInfo),
      op(IOMMU_HWPT_SET_DIRTY_TRACKING, "IOMMU_HWPT_SET_DIRTY_TRACKING", iommu_hwpt_set_dirty_tracking, hwptSetDirtyTracking),
      op(IOMMU_HWPT_GET_DIRTY_BITMAP, "IOMMU_HWPT_GET_DIRTY_BITMAP", iommu_hwpt_get_dirty_bitmap, hwptGetDirtyBitmap),
      op(IOMMU_HWPT_INVALIDATE, "IOMMU_HWPT_INVALIDATE", iommu_hwpt_invalidate, hwptInvalidate),
      op(IOMMU_FAULT_QUEUE_ALLOC, "IOMMU_FAULT_QUEUE_ALLOC", iommu_fault_alloc, faultAlloc),
      op(IOMMU_IOAS_MAP_FILE, "IOMMU_IOAS_MAP_FILE", iommu_ioas_map_file, ioasMapFile),
      op(IOMMU_IOAS_CHANGE_PROCESS, "IOMMU_IOAS_CHANGE_PROCESS", iommu_ioas_change_process, ioasChangeProcess),
      op(IOMMU_VIOMMU_ALLOC, "IOMMU_VIOMMU_ALLOC", iommu_viommu_alloc, viommuAlloc),
      op(IOMMU_VDEVICE_ALLOC, "IOMMU_VDEVICE_ALLOC", iommu_vdevice_alloc, vdeviceAlloc),
      op(IOMMU_VEVENTQ_ALLOC, "IOMMU_VEVENTQ_ALLOC", iommu_veventq_alloc, veventqAlloc),
      op(IOMMU_HW_QUEUE_ALLOC, "IOMMU_HW_QUEUE_ALLOC", iommu_hw_queue_alloc, hwQueueAlloc),
    ]);
    this.fops = {
      kind: "iommufd",
      ioctl: (file, cmd, arg, proc) => this.table.dispatch(proc, file, cmd, arg,
        (c, a) => vfioCompatIoctl(ctxOf(file), proc, c, a)),
      release: (file) => ctxOf(file).release(),
      mmap: (file, req) => ctxOf(file).mmap(req),
    };
    const rdev = makedev(MISC_MAJOR, IOMMU_MINOR);
    kcore.vfs.addChr("/dev/iommu", rdev, 0o660, (proc, flags, path) => this.open(proc, flags, path, "user"));
    kcore.stats.set("iommufdObjects", () => {
      let n = 0;
      for (const c of this.contexts) n += c.objects.size;
      return n;
    });
    kcore.stats.set("iommufdContexts", () => this.contexts.size);
    kcore.stats.set("pinnedPages", () => this.pinnedPages);
  }

  /** A new domain for a device's IOMMU (iommu_paging_domain_alloc), or -ENOMEM. */
  domainAlloc(caps: IommuCaps, opts: DomainOptions): IommuDomain | number {
    return allocDomain(this.kcore, caps.format, opts);
  }

  pinCount(frame: number): number { return this.pins?.[frame] ?? 0; }

  /** Records one long-term pin of each of the first n frames (taken with the frame reference). */
  notePinned(frames: ArrayLike<number>, delta: 1 | -1, n = frames.length): void {
    const pins = (this.pins ??= new Int32Array(this.kcore.core.poolFrames));
    for (let k = 0; k < n; k++) pins[frames[k]] += delta;
    this.pinnedPages += delta * n;
  }

  /** Adds an op to the table (the test command, when enabled). */
  addOp(op: IommufdIoctlOp): void { this.table.add(op); }

  /**
   * iommufd_fops_open: a fresh context; /dev/vfio/vfio opens default to per-mm accounting.
   * `rdev`: the node it was opened through (the legacy path passes /dev/vfio/vfio's 10:196,
   * so that fstat of such a file shows that node, as on Linux).
   */
  open(proc: Process, flags: number, path: string, accountMode: "user" | "mm",
    rdev = makedev(MISC_MAJOR, IOMMU_MINOR)): File | number {
    if (this.kcore.shouldFail()) return -errno.ENOMEM;
    const stat = { mode: S_IFCHR | (accountMode === "mm" ? 0o666 : 0o660), rdev, size: 0 };
    const file = this.kcore.newFile(this.fops, flags, null, path, stat);
    if (typeof file === "number") return file;
    const ctx = new IommufdCtx(this, file, accountMode);
    file.priv = ctx;
    this.contexts.add(ctx);
    return file;
  }

  /** The context behind an open file, if it is an iommufd file (iommufd_ctx_from_file). */
  ctxFromFile(file: File): IommufdCtx | undefined {
    return file.ops === this.fops ? (file.priv as IommufdCtx) : undefined;
  }
}

const ctxOf = (file: File): IommufdCtx => file.priv as IommufdCtx;

/**
 * struct iommufd_mmap: `length` bytes of physically contiguous frames from `frame`, mapped at
 * file offset `start`; each VMA over it holds a user of `owner`.
 */
export interface IommufdMmap { readonly owner: IommufdObject; readonly start: number; readonly length: number; readonly frame: number }

/** struct iommufd_ctx. */
export class IommufdCtx {
  readonly objects = new ObjectTable();
  /** ictx->mt_mmap: the registered regions, by start offset. */
  private readonly mmaps: IommufdMmap[] = [];
  /** The IOAS the VFIO compat ioctls act on (IOMMU_VFIO_IOAS). */
  vfioIoas: Ioas | null = null;
  /** iommufd_group per iommu_group number with bound devices. */
  readonly groups = new Map<number, IommufdGroup>();

  constructor(readonly driver: Iommufd, readonly file: File, public accountMode: "user" | "mm") {
    const k = driver.kcore;
    this.pinContext = { core: k.core, acct: k.acct, shouldFail: () => k.shouldFail(), notePinned: (f, d, n) => driver.notePinned(f, d, n) };
  }

  get kcore(): KernelCore { return this.driver.kcore; }

  /** What iopt_pages need to pin: the core, the accounting, the driver's pin ledger. */
  private readonly pinContext: PinContext;

  shouldFail(): boolean { return this.kcore.shouldFail(); }

  // ---- objects ------------------------------------------------------------------------------

  /**
   * _iommufd_object_alloc: reserves an id for `obj` (an injection point: ENOMEM). With
   * `publish` the object is finalized at once, for creations that cannot fail afterwards.
   */
  objectAlloc(obj: IommufdObject, publish = true): number {
    if (this.shouldFail()) return -errno.ENOMEM;
    const rc = this.objects.reserve(obj);
    if (rc < 0) return rc;
    if (publish) this.objects.finalize(obj);
    return 0;
  }

  objectFinalize(obj: IommufdObject): void { this.objects.finalize(obj); }

  /** iommufd_object_abort_and_destroy. */
  objectAbort(obj: IommufdObject): void {
    obj.abort();
    this.objects.unreserve(obj);
  }

  /** iommufd_get_object: -ENOENT for a missing, unpublished or other-typed id. */
  getObject(id: number, type?: ObjType): IommufdObject | number {
    if (this.shouldFail()) return -errno.ENOENT;
    return this.objects.lookup(id, type) ?? -errno.ENOENT;
  }

  getIoas(id: number): Ioas | number {
    return this.getObject(id, "ioas") as Ioas | number;
  }

  allIoas(): Ioas[] {
    return this.objects.all().filter((o): o is Ioas => o instanceof Ioas);
  }

  // ---- pages --------------------------------------------------------------------------------

  /** A new iopt_pages charged to `owner`; a file source keeps its file reference until freed. */
  newPages(source: PagesSource, npages: number, writable: boolean, owner: Process): IoptPages {
    return new IoptPages(source, npages, writable, owner, this.pinContext, () => {
      if (source.kind === "file") this.kcore.fput(source.file);
      // dma_buf_detach + dma_buf_put (the reference dmabufAttach took).
      else if (source.kind === "dmabuf") { source.attach.detach(); this.kcore.fput(source.attach.file); }
    });
  }

  /** VFIO_DMA_CC_IOMMU: every paging HWPT of the IOAS enforces cache coherency. */
  enforcesCoherency(ioas: Ioas): boolean {
    return ioas.hwpts.every((h) => h.enforceCacheCoherency);
  }

  /**
   * Moves the pin charges of every area's pages to `proc`: each pages object charges the new
   * owner first, then uncharges the old one; if any cannot be charged, none moves.
   */
  changeProcess(all: Ioas[], proc: Process): number {
    const pages = new Set<IoptPages>();
    for (const ioas of all) for (const a of ioas.iopt.areas) if (a.pages) pages.add(a.pages);
    const moved: { p: IoptPages; from: Process }[] = [];
    for (const p of pages) {
      if (p.owner === proc) continue;
      const from = p.owner;
      const rc = p.moveCharge(proc);
      if (rc < 0) {
        // All or nothing: give the charges already moved back to their owners.
        for (const m of moved.reverse()) m.p.moveCharge(m.from);
        return rc;
      }
      moved.push({ p, from });
    }
    return 0;
  }

  // ---- mmap regions ------------------------------------------------------------------------

  /**
   * _iommufd_alloc_mmap: registers `length` bytes from `frame` for `owner` at the lowest free
   * offset from PAGE_SIZE (offset 0 is never handed out). EINVAL for a length that is not
   * whole pages, ENOMEM (the immap, the tree node). Returns the offset.
   */
  allocMmap(owner: IommufdObject, frame: number, length: number): number {
    if (!length || length % PAGE_SIZE) return -errno.EINVAL;
    if (this.shouldFail() || this.shouldFail()) return -errno.ENOMEM;
    let at = PAGE_SIZE;
    let i = 0;
    for (; i < this.mmaps.length && this.mmaps[i].start - at < length; i++) at = this.mmaps[i].start + this.mmaps[i].length;
    this.mmaps.splice(i, 0, { owner, start: at, length, frame });
    return at;
  }

  /** _iommufd_destroy_mmap. */
  destroyMmap(owner: IommufdObject, offset: number): void {
    const i = this.mmaps.findIndex((m) => m.start === offset && m.owner === owner);
    if (i >= 0) this.mmaps.splice(i, 1);
  }

  /**
   * iommufd_fops_mmap: a shared (EINVAL), non-executable (EPERM) mapping of exactly one
   * registered region, from its start (ENXIO otherwise). Each VMA holds a user of the region's
   * owner, and the file (vm_file), until it is unmapped; it is a pfn mapping (GUP refuses it).
   */
  mmap(req: MmapRequest): FileMapping | number {
    if (!req.shared) return -errno.EINVAL;
    if (req.prot & PROT_EXEC) return -errno.EPERM;
    const off = req.pgoff * PAGE_SIZE;
    const m = this.mmaps.find((r) => off >= r.start && off - r.start < r.length);
    if (!m || m.start !== off || req.length !== m.length) return -errno.ENXIO;
    const first = req.pgoff;
    const pages = m.length / PAGE_SIZE;
    return {
      // io_remap_pfn_range: VM_IO | VM_PFNMAP, so nothing pins these pages through the mapping
      pfnmap: true,
      frameAt: (pgoff) => (pgoff >= first && pgoff - first < pages ? m.frame + (pgoff - first) : -errno.EFAULT),
      attach: () => { m.owner.users++; this.file.refs++; },
      detach: () => { m.owner.users--; this.kcore.fput(this.file); },
    };
  }

  /** iommufd_fops_release: destroy everything, leaves first. */
  release(): void {
    this.objects.sweep();
    this.vfioIoas = null;
    this.driver.contexts.delete(this);
  }
}

function destroyIoctl(ctx: IommufdCtx, ucmd: UCmd): number {
  return ctx.objects.remove(fields(ucmd, iommu_destroy).u("id"));
}

/** IOMMU_OPTION: on success only val64 is copied back. */
function optionIoctl(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = fields(ucmd, iommu_option);
  if (c.u("__reserved")) return -errno.EOPNOTSUPP;
  let r: { rc: number; val?: bigint };
  switch (c.u("option_id")) {
    case IOMMU_OPTION_RLIMIT_MODE:
      r = rlimitMode(ctx, ucmd, c.u("object_id"), c.u("op"), c.u64("val64"));
      break;
    case IOMMU_OPTION_HUGE_PAGES:
      r = ioasOption(ctx, ucmd);
      break;
    default:
      return -errno.EOPNOTSUPP;
  }
  if (r.rc < 0) return r.rc;
  const val = new Uint8Array(8);
  new DataView(val.buffer).setBigUint64(0, r.val ?? c.u64("val64"), true);
  return ucmd.copyToUser(ucmd.ubuffer + iommu_option.fields.val64.off, val) < 0 ? -errno.EFAULT : 0;
}

function rlimitMode(ctx: IommufdCtx, ucmd: UCmd, objectId: number, op: number, val: bigint): { rc: number; val?: bigint } {
  if (objectId) return { rc: -errno.EOPNOTSUPP };
  if (op === IOMMU_OPTION_OP_GET) return { rc: 0, val: ctx.accountMode === "mm" ? 1n : 0n };
  if (op === IOMMU_OPTION_OP_SET) {
    if (!ucmd.proc.capSysResource) return { rc: -errno.EPERM };
    if (ctx.objects.size > 0) return { rc: -errno.EBUSY };
    if (val === 0n) ctx.accountMode = "user";
    else if (val === 1n) ctx.accountMode = "mm";
    else return { rc: -errno.EINVAL };
    return { rc: 0 };
  }
  return { rc: -errno.EOPNOTSUPP };
}
