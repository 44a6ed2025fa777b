// iommufd_access (drivers/iommu/iommufd/device.c): an in-kernel user of an IOAS with no IOMMU
// behind it — an emulated device such as an mdev. It pins pages by IOVA, or reads and writes
// through the IOAS with the CPU, and it must give pins back when userspace unmaps them (its
// unmap callback). An internal access (iommufd_access_create_internal, the HW queue's) has no
// driver ops and holds no context reference; its pins lock their areas against IOAS_UNMAP
// (area num_locks) instead of being given back.

import { errno } from "../uapi/errno.js";
import type { IoptArea } from "./io_pagetable.js";
import { addOverflow, PAGE, PAGE_SIZE } from "./iova.js";
import type { Ioas } from "./ioas.js";
import { IommufdObject } from "./object.js";
import type { IommufdCtx } from "./iommufd_private.js";


export interface AccessOps {
  /** Pins are taken only by users that can give them back when an unmap asks. */
  readonly needsPinPages: boolean;
  /** Called for [iova, iova+length) being unmapped: drop every pin inside it. */
  unmap(iova: bigint, length: bigint): void;
}

/** One contiguous run of areas covering [start, last], with the pages range of each. */
interface Piece { area: IoptArea; first: number; last: number; startByte: bigint; bytes: bigint }

export class IommufdAccess extends IommufdObject {
  readonly type = "access" as const;
  ioas: Ioas | null = null;
  /** PAGE_SIZE for pinning users (their pins are whole pages), else 1. */
  readonly iovaAlignment: bigint;

  constructor(readonly ctx: IommufdCtx, readonly ops: AccessOps, readonly internal = false) {
    super();
    this.iovaAlignment = ops.needsPinPages ? PAGE : 1n;
  }

  /** iommufd_access_attach / replace: moves to `ioasId` (ENOENT, EADDRINUSE on alignment). */
  changeIoas(ioasId: number): number {
    const ioas = this.ctx.getIoas(ioasId);
    if (typeof ioas === "number") return ioas;
    return this.moveTo(ioas);
  }

  /** iommufd_access_change_ioas to a known IOAS (EADDRINUSE on alignment). */
  moveTo(ioas: Ioas): number {
    if (ioas === this.ioas) return 0;
    ioas.iopt.accessAlignments.push(this.iovaAlignment);
    const rc = ioas.iopt.recalcAlignment();
    if (rc < 0) {
      ioas.iopt.accessAlignments.splice(ioas.iopt.accessAlignments.indexOf(this.iovaAlignment), 1);
      return rc;
    }
    ioas.accesses.push(this);
    ioas.users++;
    this.detachIoas();
    this.ioas = ioas;
    return 0;
  }

  /** iommufd_access_detach. */
  detachIoas(): void {
    const old = this.ioas;
    if (!old) return;
    // Everything pinned through the old IOAS goes first (an internal user unpinned already).
    if (!this.internal) this.ops.unmap(0n, 1n << 64n);
    old.accesses.splice(old.accesses.indexOf(this), 1);
    old.iopt.accessAlignments.splice(old.iopt.accessAlignments.indexOf(this.iovaAlignment), 1);
    old.iopt.recalcAlignment();
    old.users--;
    this.ioas = null;
  }

  /**
   * The areas covering [iova, iova+length) contiguously (iopt_for_each_contig_area), or
   * -errno: EINVAL for a zero length, EOVERFLOW, ENOENT for a hole or no IOAS.
   */
  private pieces(iova: bigint, length: bigint, write: boolean): Piece[] | number {
    if (length === 0n) return -errno.EINVAL;
    const lastIova = addOverflow(iova, length - 1n);
    if (lastIova === null) return -errno.EOVERFLOW;
    if (!this.ioas) return -errno.ENOENT;
    const out: Piece[] = [];
    const rc = this.ioas.iopt.forEachContigArea(iova, lastIova, (area, cur, last) => {
      // check_area_prot: a write needs IOMMU_WRITE, anything else IOMMU_READ
      if (write ? !area.prot.write : !area.prot.read) return -errno.EPERM;
      const startByte = area.startByteOf(cur);
      out.push({
        area, startByte, bytes: last - cur + 1n,
        first: Number(startByte / PAGE), last: Number(area.startByteOf(last) / PAGE),
      });
      return 0;
    });
    return rc < 0 ? rc : out;
  }

  /** iommufd_access_pin_pages: pins [iova, iova+length); returns the frames, page by page. */
  pinPages(iova: bigint, length: bigint, write: boolean): number[] | number {
    if (!this.ops.needsPinPages) return -errno.EINVAL;
    const pieces = this.pieces(iova, length, write);
    if (typeof pieces === "number") return pieces;
    const done: Piece[] = [];
    const frames: number[] = [];
    for (const p of pieces) {
      // A pin of whole pages needs every area after the first to start on a page.
      if (p !== pieces[0] && p.area.pageOffset !== 0) return this.unpinPieces(done, -errno.EINVAL);
      const rc = p.area.pages!.pinRange(p.first, p.last);
      if (rc < 0) return this.unpinPieces(done, rc);
      p.area.numAccesses++;
      if (this.internal) p.area.numLocks++;
      done.push(p);
      for (let i = p.first; i <= p.last; i++) frames.push(p.area.pages!.frameAt(i));
    }
    return frames;
  }

  private unpinPieces(pieces: Piece[], rc: number): number {
    for (const p of pieces) {
      p.area.pages!.unpinRange(p.first, p.last);
      p.area.numAccesses--;
      if (this.internal) p.area.numLocks--;
    }
    return rc;
  }

  /** iommufd_access_unpin_pages: gives back a pin taken by pinPages with the same range. */
  unpinPages(iova: bigint, length: bigint): void {
    const pieces = this.pieces(iova, length, false);
    if (typeof pieces === "number") throw new Error(`iommufd_access: unpin of [0x${iova.toString(16)}, +0x${length.toString(16)}) that is not mapped`);
    this.unpinPieces(pieces, 0);
  }

  /**
   * iommufd_access_rw: copies between `buf` and the memory behind [iova, iova+length), through
   * pinned frames where there are some and the source memory otherwise. 0 or -errno.
   */
  rw(iova: bigint, buf: Uint8Array, write: boolean): number {
    const pieces = this.pieces(iova, BigInt(buf.length), write);
    if (typeof pieces === "number") return pieces;
    const core = this.ctx.kcore.core;
    let done = 0;
    for (const p of pieces) {
      let off = p.startByte;
      let left = Number(p.bytes);
      while (left > 0) {
        const idx = Number(off / PAGE);
        const inPage = Number(off % PAGE);
        const n = Math.min(PAGE_SIZE - inPage, left);
        const frame = p.area.pages!.sourceFrame(idx, write);
        if (frame < 0) return frame;
        const host = core.poolBase + frame * PAGE_SIZE + inPage;
        if (write) core.u8.set(buf.subarray(done, done + n), host);
        else buf.set(core.u8.subarray(host, host + n), done);
        done += n;
        off += BigInt(n);
        left -= n;
      }
    }
    return 0;
  }

  destroy(): void {
    this.detachIoas();
    if (!this.internal) this.ctx.kcore.fput(this.ctx.file);
  }
}

/** iommufd_access_create + attach: a published ACCESS object holding the context's file. */
export function accessCreate(ctx: IommufdCtx, ops: AccessOps, ioasId: number): IommufdAccess | number {
  const access = new IommufdAccess(ctx, ops);
  let rc = ctx.objectAlloc(access, false);
  if (rc < 0) return rc;
  rc = access.changeIoas(ioasId);
  if (rc < 0) {
    ctx.objects.unreserve(access);
    return rc;
  }
  ctx.file.refs++;
  // The driver's reference, dropped by accessDestroy.
  access.users++;
  ctx.objectFinalize(access);
  return access;
}

/**
 * iommufd_access_create_internal: a published ACCESS object (it takes an id) with the
 * creator's reference, page alignment, no ops and no context reference. ENOMEM.
 */
export function accessCreateInternal(ctx: IommufdCtx): IommufdAccess | number {
  const access = new IommufdAccess(ctx, { needsPinPages: true, unmap: () => {} }, true);
  const rc = ctx.objectAlloc(access, false);
  if (rc < 0) return rc;
  access.users++;
  ctx.objectFinalize(access);
  return access;
}

/** iommufd_access_destroy (and iommufd_access_destroy_internal). */
export function accessDestroy(access: IommufdAccess): void {
  access.users--;
  access.ctx.objects.remove(access.id);
}
