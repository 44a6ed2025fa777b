// The IOAS object and its ioctls (drivers/iommu/iommufd/ioas.c): ALLOC, IOVA_RANGES,
// ALLOW_IOVAS, MAP, MAP_FILE, COPY, UNMAP, the per-IOAS option HUGE_PAGES and CHANGE_PROCESS.

import { errno } from "../uapi/errno.js";
import {
  IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET, iommu_ioas_alloc, iommu_ioas_allow_iovas,
  iommu_ioas_change_process, iommu_ioas_copy, iommu_ioas_iova_ranges, iommu_ioas_map,
  iommu_ioas_map_file, iommu_ioas_unmap, iommu_option,
} from "../uapi/iommufd.js";
import type { IommufdCtx, UCmd } from "./iommufd_private.js";
import { MemFd } from "../kernel/memfd.js";
import { dmabufAttach, testDmabufFops, type TestDmaBuf } from "./dmabuf.js";
import { O_ACCMODE, O_RDONLY } from "../uapi/posix.js";
import { IoPagetable, mapNewPages, mapUserPages, type IovaOut, type PagesSlice, type UnmappedOut } from "./io_pagetable.js";
import type { IommuProt } from "../iommu/domain.js";
import { addOverflow, intersects, isUlongMax, PAGE, PAGE_SIZE, type Interval } from "./iova.js";
import { IommufdObject } from "./object.js";
import type { HwptPaging } from "./hw_pagetable.js";
import type { IommufdAccess } from "./access.js";

const MAP_FLAGS = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;

export class Ioas extends IommufdObject {
  readonly type = "ioas" as const;
  readonly iopt: IoPagetable;
  /** The paging HWPTs over this IOAS (each holds a user of it). */
  readonly hwpts: HwptPaging[] = [];
  /** The accesses attached to it (each holds a user of it). */
  readonly accesses: IommufdAccess[] = [];

  constructor(readonly ctx: IommufdCtx) {
    super();
    this.iopt = new IoPagetable(ctx.kcore);
    this.iopt.notifyAccessUnmap = (iova, length) => {
      for (const a of [...this.accesses]) a.ops.unmap(iova, length);
    };
  }

  destroy(): void {
    this.iopt.unmapAll({ unmapped: 0n });
    // Ranges reserved through the test command have no owner object to take them away.
    this.iopt.removeReserved(null);
    if (this.ctx.vfioIoas === this) this.ctx.vfioIoas = null;
  }
}

// One frozen object per combination, shared by every area (the areas never change their prot).
const PROTS: readonly IommuProt[] = [0, 1, 2, 3].map((f) => Object.freeze({
  read: (f & 1) !== 0,
  write: (f & 2) !== 0,
}));
const protOf = (flags: number): IommuProt =>
  PROTS[(flags & IOMMU_IOAS_MAP_READABLE ? 1 : 0) | (flags & IOMMU_IOAS_MAP_WRITEABLE ? 2 : 0)];

/** A new, published IOAS (iommufd_ioas_alloc + finalize), or -errno. */
export function ioasAlloc(ctx: IommufdCtx): Ioas | number {
  const ioas = new Ioas(ctx);
  const rc = ctx.objectAlloc(ioas);
  return rc < 0 ? rc : ioas;
}

export function ioasAllocIoctl(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_ioas_alloc);
  if (c.u(c.f.flags)) return -errno.EOPNOTSUPP;
  const ioas = new Ioas(ctx);
  const rc = ctx.objectAlloc(ioas, false);
  if (rc < 0) return rc;
  c.set(c.f.out_ioas_id, ioas.id);
  return ctx.respondFinalize(ucmd, ioas);
}

export function ioasIovaRanges(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_ioas_iova_ranges);
  if (c.u(c.f.__reserved)) return -errno.EOPNOTSUPP;
  const ioas = ctx.getIoas(c.u(c.f.ioas_id));
  if (typeof ioas === "number") return ioas;
  const max = c.u(c.f.num_iovas);
  const uptr = c.u64(c.f.allowed_iovas);
  const ranges = ioas.iopt.validRanges();
  for (let i = 0; i < ranges.length && i < max; i++) {
    const elm = new Uint8Array(16);
    const dv = new DataView(elm.buffer);
    dv.setBigUint64(0, ranges[i].start, true);
    dv.setBigUint64(8, ranges[i].last, true);
    const rc = ucmd.copyToUser(Number(uptr + BigInt(i * 16)), elm);
    if (rc < 0) return rc;
  }
  c.set(c.f.num_iovas, ranges.length);
  c.set(c.f.out_iova_alignment, ioas.iopt.iovaAlignment);
  const rc = ucmd.respond();
  if (rc < 0) return rc;
  return ranges.length > max ? -errno.EMSGSIZE : 0;
}

export function ioasAllowIovas(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_ioas_allow_iovas);
  if (c.u(c.f.__reserved)) return -errno.EOPNOTSUPP;
  const ioas = ctx.getIoas(c.u(c.f.ioas_id));
  if (typeof ioas === "number") return ioas;
  const uptr = c.u64(c.f.allowed_iovas);
  const list: Interval[] = [];
  for (let i = 0; i < c.u(c.f.num_iovas); i++) {
    const b = ucmd.copyFromUser(Number(uptr + BigInt(i * 16)), 16);
    if (typeof b === "number") return b;
    const dv = new DataView(b.buffer);
    const r = { start: dv.getBigUint64(0, true), last: dv.getBigUint64(8, true) };
    if (r.start >= r.last) return -errno.EINVAL;
    if (list.some((x) => intersects(x, r.start, r.last))) return -errno.EINVAL;
    if (ucmd.shouldFail()) return -errno.ENOMEM;
    list.push(r);
  }
  return ioas.iopt.setAllowIovas(list);
}

/**
 * The checks MAP and MAP_FILE share, in the kernel's order: flags (EOPNOTSUPP), 2^64-1 values
 * (EOVERFLOW), neither READABLE nor WRITEABLE (EINVAL), then the IOAS (ENOENT).
 */
function mapPrologue(ctx: IommufdCtx, flags: number, reserved: number, iova: bigint, length: bigint, ioasId: number): Ioas | number {
  if ((flags & ~MAP_FLAGS) || reserved) return -errno.EOPNOTSUPP;
  if (isUlongMax(iova) || isUlongMax(length)) return -errno.EOVERFLOW;
  if (!(flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return -errno.EINVAL;
  return ctx.getIoas(ioasId);
}

const fixedIova = (flags: number, iova: bigint): bigint | null => (flags & IOMMU_IOAS_MAP_FIXED_IOVA ? iova : null);

export function ioasMap(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_ioas_map);
  const flags = c.u(c.f.flags);
  const length = c.u64(c.f.length);
  const iova = c.u64(c.f.iova);
  const ioas = mapPrologue(ctx, flags, c.u(c.f.__reserved), iova, length, c.u(c.f.ioas_id));
  if (typeof ioas === "number") return ioas;
  const out: IovaOut = { iova: 0n };
  const rc = mapUserPages(ctx, ioas.iopt, ucmd.proc, c.u64(c.f.user_va), length, fixedIova(flags, iova), protOf(flags), out);
  if (rc < 0) return rc;
  c.set(c.f.iova, out.iova);
  return ucmd.respond();
}

export function ioasMapFile(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_ioas_map_file);
  const flags = c.u(c.f.flags);
  const length = c.u64(c.f.length);
  const ioas = mapPrologue(ctx, flags, 0, c.u64(c.f.iova), length, c.u(c.f.ioas_id));
  if (typeof ioas === "number") return ioas;
  const start = c.u64(c.f.start);
  if (length === 0n) return -errno.EINVAL;
  if (addOverflow(start, length - 1n) === null) return -errno.EOVERFLOW;
  const file = ucmd.proc.file(c.u(c.f.fd));
  if (!file) return -errno.EBADF;
  const prot = protOf(flags);
  const startByte = start % PAGE;
  // iopt_map_file_pages tries dma_buf_get first: a dmabuf needs no FMODE_WRITE.
  if (file.ops === testDmabufFops) {
    const at = fixedIova(flags, c.u64(c.f.iova));
    // iopt_alloc_dmabuf_pages: the range must lie inside the buffer (EINVAL) first.
    if (BigInt((file.priv as TestDmaBuf).length) <= start + length - 1n) return -errno.EINVAL;
    const out: IovaOut = { iova: 0n };
    const rc = mapNewPages(ctx, ioas.iopt, () => {
      const a = dmabufAttach(file);
      return typeof a === "number" ? a : { kind: "dmabuf", attach: a, start: start - startByte };
    }, startByte, length, at, prot, ucmd.proc, false, out);
    if (rc < 0) return rc;
    c.set(c.f.iova, out.iova);
    return ucmd.respond();
  }
  // A writable mapping needs a file opened for writing (FMODE_WRITE).
  if (prot.write && (file.flags & O_ACCMODE) === O_RDONLY) return -errno.EPERM;
  // Only memfd (shmem) pages can be pinned; anything else fails when pages are first needed,
  // which without a domain is never, as in the kernel.
  const memfd = file.priv instanceof MemFd ? file.priv : null;
  const out: IovaOut = { iova: 0n };
  const rc = mapNewPages(ctx, ioas.iopt, { kind: "file", file, memfd, start: start - startByte }, startByte, length,
    fixedIova(flags, c.u64(c.f.iova)), prot, ucmd.proc, ctx.accountMode === "mm", out);
  if (rc < 0) return rc;
  c.set(c.f.iova, out.iova);
  return ucmd.respond();
}

export function ioasCopy(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_ioas_copy);
  const flags = c.u(c.f.flags);
  if (flags & ~MAP_FLAGS) return -errno.EOPNOTSUPP;
  const length = c.u64(c.f.length);
  const srcIova = c.u64(c.f.src_iova);
  const dstIova = c.u64(c.f.dst_iova);
  if (isUlongMax(length) || isUlongMax(srcIova) || isUlongMax(dstIova)) return -errno.EOVERFLOW;
  if (!(flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return -errno.EINVAL;
  const src = ctx.getIoas(c.u(c.f.src_ioas_id));
  if (typeof src === "number") return src;
  const slices = src.iopt.getPages(srcIova, length);
  if (typeof slices === "number") return slices;
  const drop = (list: PagesSlice[]) => { for (const s of list) s.pages.put(); };
  const dst = ctx.getIoas(c.u(c.f.dst_ioas_id));
  if (typeof dst === "number") { drop(slices); return dst; }
  const out: IovaOut = { iova: 0n };
  const rc = dst.iopt.mapPages(slices, length, fixedIova(flags, dstIova), protOf(flags), out);
  if (rc < 0) { drop(slices); return rc; }
  c.set(c.f.dst_iova, out.iova);
  return ucmd.respond();
}

export function ioasUnmap(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_ioas_unmap);
  const ioas = ctx.getIoas(c.u(c.f.ioas_id));
  if (typeof ioas === "number") return ioas;
  const iova = c.u64(c.f.iova);
  const length = c.u64(c.f.length);
  const out: UnmappedOut = { unmapped: 0n };
  let rc: number;
  if (iova === 0n && isUlongMax(length)) {
    rc = ioas.iopt.unmapAll(out);
  } else {
    if (isUlongMax(iova) || isUlongMax(length)) return -errno.EOVERFLOW;
    rc = ioas.iopt.unmapIova(iova, length, out);
  }
  if (rc < 0) return rc;
  c.set(c.f.length, out.unmapped);
  return ucmd.respond();
}

/** IOMMU_OPTION_HUGE_PAGES on an IOAS. */
function ioasOptionHugePages(ioas: Ioas, op: number, val: bigint): { rc: number; val?: bigint } {
  if (op === IOMMU_OPTION_OP_GET) return { rc: 0, val: ioas.iopt.disableLargePages ? 0n : 1n };
  if (op === IOMMU_OPTION_OP_SET) {
    if (val === 0n) return { rc: ioas.iopt.disableLarge() };
    if (val === 1n) { ioas.iopt.enableLarge(); return { rc: 0 }; }
    return { rc: -errno.EINVAL };
  }
  return { rc: -errno.EOPNOTSUPP };
}

/**
 * IOMMU_IOAS_CHANGE_PROCESS: moves the pin charges of every (file-backed) area to the caller.
 * A user-VA area anywhere in the context makes it EINVAL with nothing changed.
 */
export function ioasChangeProcess(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_ioas_change_process);
  if (c.u(c.f.__reserved)) return -errno.EOPNOTSUPP;
  const all = ctx.allIoas();
  for (const ioas of all) {
    for (const a of ioas.iopt.areas) if (a.pages && !a.pages.isFile) return -errno.EINVAL;
  }
  return ctx.changeProcess(all, ucmd.proc);
}

/** The option ioctl's HUGE_PAGES path: the ioas lookup comes first (ENOENT for object 0). */
export function ioasOption(ctx: IommufdCtx, ucmd: UCmd): { rc: number; val?: bigint } {
  const c = ucmd.fields(iommu_option);
  const ioas = ctx.getIoas(c.u(c.f.object_id));
  if (typeof ioas === "number") return { rc: ioas };
  return ioasOptionHugePages(ioas, c.u(c.f.op), c.u64(c.f.val64));
}
