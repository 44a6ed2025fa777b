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
import { MISC_MAJOR, S_IFCHR, makedev } from "../uapi/posix.js";
import type { StructLayout } from "../uapi/struct.js";
import type { File, FileOperations } from "../kernel/file.js";
import { copyStructFromUser, getUser32 } from "../kernel/ioctl.js";
import type { KernelCore } from "../kernel/kernel.js";
import { SlotAllocator } from "../kernel/slots.js";
import type { Process } from "../kernel/process.js";
import { faultAlloc } from "./eventq.js";
import { getHwInfo, hwptAlloc, hwptGetDirtyBitmap, hwptInvalidate, hwptSetDirtyTracking } from "./hw_pagetable.js";
import {
  ioasAllocIoctl, ioasAllowIovas, ioasChangeProcess, ioasCopy, ioasIovaRanges,
  ioasMap, ioasMapFile, ioasOption, ioasUnmap,
} from "./ioas.js";
import { IommufdCtx, UCmd } from "./iommufd_private.js";
import { DEFAULT_MEMORY_LIMIT } from "./selftest.js";
import { vfioCompatIoctl, vfioIoasIoctl } from "./vfio_compat.js";
import { hwQueueAlloc, vdeviceAlloc, veventqAlloc, viommuAlloc } from "./viommu.js";
import type { IommuCaps } from "../iommu/device.js";
import { allocDomain, type DomainOptions, type IommuDomain } from "../iommu/domain.js";

// The context and command types, for users outside iommufd.
export type { IommufdCtx, IommufdMmap, UCmd } from "./iommufd_private.js";

/** /dev/iommu is a misc device with a dynamic minor. */
const IOMMU_MINOR = 124;
const IOMMUFD_CMD_BASE = 0x80;

/** One entry of iommufd_ioctl_ops: the command, its struct (min_size, sizeof), its handler. */
export interface IommufdIoctlOp {
  readonly cmd: number;
  readonly name: string;
  readonly layout: StructLayout;
  readonly handler: (ctx: IommufdCtx, ucmd: UCmd) => number;
}

/**
 * iommufd_fops_ioctl over iommufd_ioctl_ops, the "size" argument model (SPEC.md §3.0): the first
 * u32 of the argument is its size; size < min_size -> EINVAL; bytes past the kernel's struct must
 * be zero (E2BIG); a shorter struct is zero-extended; the response copies min(size, sizeof)
 * bytes back. Ops are indexed by nr; numbers below or above them go to `fallback` (the VFIO
 * compat ioctls).
 */
export class IommufdIoctlTable {
  // Arrays indexed by nr (8 bits), not Maps: two lookups on every ioctl.
  private readonly byNr: (IommufdIoctlOp | undefined)[] = [];
  /**
   * One struct image per op and the command over it, reused by every call (the control plane
   * runs one ioctl at a time).
   */
  private readonly images: ({ bytes: Uint8Array; words: Uint32Array; ucmd: UCmd } | undefined)[] = [];
  private readonly minNr: number;
  private maxNr: number;

  constructor(base: number, ops: IommufdIoctlOp[],
    private readonly fallback: (ctx: IommufdCtx, proc: Process, cmd: number, arg: number) => number) {
    this.minNr = base;
    this.maxNr = base - 1;
    for (const op of ops) this.add(op);
  }

  add(op: IommufdIoctlOp): void {
    const nr = op.cmd & 0xff;
    this.byNr[nr] = op;
    this.maxNr = Math.max(this.maxNr, nr);
  }

  op(cmd: number): IommufdIoctlOp | undefined {
    const op = this.byNr[cmd & 0xff];
    return op && op.cmd === cmd ? op : undefined;
  }

  dispatch(ctx: IommufdCtx, proc: Process, file: File, cmd: number, arg: number): number {
    const nr = cmd & 0xff;
    if (nr < this.minNr || nr > this.maxNr) return this.fallback(ctx, proc, cmd, arg);
    // The size is read before the command is matched: a bad pointer is EFAULT even then.
    const size = getUser32(proc, arg);
    if (size < 0) return size;
    const op = this.byNr[nr];
    // The whole 32-bit value must match: stray direction or size bits are a different command.
    if (!op || op.cmd !== cmd) return -errno.ENOTTY;
    if (size < op.layout.minSize) return -errno.EINVAL;
    if (proc.kernel.shouldFail()) return -errno.EFAULT;
    let img = this.images[nr];
    if (!img) {
      // Whole 8-byte words behind the struct: the user copies move it word by word, and the
      // handler reads its u64 fields as such.
      const buf = new ArrayBuffer((op.layout.size + 7) & ~7);
      const bytes = new Uint8Array(buf, 0, op.layout.size);
      const words = new Uint32Array(buf);
      img = { bytes, words, ucmd: new UCmd(proc, file, arg, size, bytes, words) };
      this.images[nr] = img;
    }
    const rc = copyStructFromUser(proc, arg, op.layout.size, size, img.bytes, img.words);
    if (typeof rc === "number") return rc;
    return op.handler(ctx, img.ucmd.begin(proc, file, arg, size));
  }
}

/** The iommufd driver of one kernel: its device node, its ioctl table, its counters. */
export class Iommufd {
  readonly contexts = new Set<IommufdCtx>();
  /** The page-batch limit of IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT. */
  memoryLimit = DEFAULT_MEMORY_LIMIT;
  /** The vfio/iommufd module parameter allow_unsafe_interrupts. */
  allowUnsafeInterrupts = false;
  /** Ids of the selftest's mock devices (an IDA). */
  readonly mockIds = new SlotAllocator(1 << 20);
  readonly table: IommufdIoctlTable;
  private readonly fops: FileOperations;

  constructor(readonly kcore: KernelCore) {
    const op = (cmd: number, name: string, layout: StructLayout, handler: IommufdIoctlOp["handler"]): IommufdIoctlOp =>
      ({ cmd, name, layout, handler });
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
    ], vfioCompatIoctl);
    this.fops = {
      kind: "iommufd",
      ioctl: (file, cmd, arg, proc) => this.table.dispatch(ctxOf(file), proc, file, cmd, arg),
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
  }

  /** A new domain for a device's IOMMU (iommu_paging_domain_alloc), or -ENOMEM. */
  domainAlloc(caps: IommuCaps, opts: DomainOptions): IommuDomain | number {
    return allocDomain(this.kcore, caps.format, opts);
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

function destroyIoctl(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_destroy);
  return ctx.objects.remove(c.u(c.f.id));
}

/** IOMMU_OPTION: on success only val64 is copied back. */
function optionIoctl(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_option);
  if (c.u(c.f.__reserved)) return -errno.EOPNOTSUPP;
  let r: { rc: number; val?: bigint };
  switch (c.u(c.f.option_id)) {
    case IOMMU_OPTION_RLIMIT_MODE:
      r = rlimitMode(ctx, ucmd, c.u(c.f.object_id), c.u(c.f.op), c.u64(c.f.val64));
      break;
    case IOMMU_OPTION_HUGE_PAGES:
      r = ioasOption(ctx, ucmd);
      break;
    default:
      return -errno.EOPNOTSUPP;
  }
  if (r.rc < 0) return r.rc;
  const val = new Uint8Array(8);
  new DataView(val.buffer).setBigUint64(0, r.val ?? c.u64(c.f.val64), true);
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
