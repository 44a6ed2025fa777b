// DMA-buf import for IOMMU_IOAS_MAP_FILE (pages.c IOPT_ADDRESS_DMABUF) and the exporter the
// selftest provides (selftest.c iommufd_test_dmabuf_*): a buffer of zeroed pages behind an fd.
// The importer never pins: it maps the exporter's pages while the exporter lets it, and a
// revoke (move_notify) takes them out of every domain at once; such pages stay revoked.

import { errno } from "../uapi/errno.js";
import { FRAME_NONE, type Core } from "../wasm/core.js";
import type { File, FileOperations } from "../kernel/file.js";
import type { Process } from "../kernel/process.js";
import type { KernelCore } from "../kernel/kernel.js";
import { O_CLOEXEC } from "../uapi/posix.js";
import { PAGE_SIZE, ULONG_MAX } from "./iova.js";

/** What a revoke must take out of a domain: one area's mapping in it (iopt_pages_dmabuf_track). */
export interface DmabufTrack {
  unmap(): void;
}

/**
 * One importer's attachment (dma_buf_dynamic_attach with iopt_dmabuf_attach_revoke_ops): the
 * exporter's pages as they were handed over, and where they are mapped now.
 */
export class DmabufAttachment {
  /** phys.len == 0 in the kernel: revoked, never mapped again. */
  revoked = false;
  readonly tracks = new Set<DmabufTrack>();
  constructor(readonly buf: TestDmaBuf, readonly file: File) {}

  /** The frame behind byte `off` of the buffer. */
  frameAt(off: number): number { return this.buf.frames[Math.floor(off / PAGE_SIZE)]; }

  /** iopt_revoke_notify: unmaps every tracked range from its domain; the pages stay revoked. */
  revoke(): void {
    if (this.revoked) return;
    for (const t of this.tracks) t.unmap();
    this.tracks.clear();
    this.revoked = true;
  }

  /** iopt_release_pages for dmabuf pages: dma_buf_detach. */
  detach(): void { this.buf.attachments.delete(this); }
}

/** struct iommufd_test_dma_buf: `frames` of zeroed memory; revoked while the test says so. */
export class TestDmaBuf {
  revoked = false;
  readonly attachments = new Set<DmabufAttachment>();
  constructor(private readonly core: Core, readonly frames: number[], readonly length: number) {}

  /** iommufd_test_dma_buf_release: the last file reference went (importers hold one each). */
  release(): void {
    for (const f of this.frames) this.core.x.frame_put(f);
    this.frames.length = 0;
  }

  /** dma_buf_move_notify: every importer re-reads the exporter, which revokes it. */
  moveNotify(): void {
    for (const a of this.attachments) a.revoke();
  }
}

export const testDmabufFops: FileOperations = {
  kind: "dmabuf",
  release(file: File) { (file.priv as TestDmaBuf).release(); },
};

/** dma_buf_get: EBADF for no file, EINVAL for a file that is not a dma-buf. */
function dmaBufGet(proc: Process, fd: number): File | number {
  const f = proc.file(fd);
  if (!f) return -errno.EBADF;
  // The only exporter here is the selftest's.
  if (f.ops !== testDmabufFops) return -errno.EINVAL;
  return f;
}

/**
 * iopt_map_dmabuf: ENODEV while the exporter has the buffer revoked (its map_phys says so).
 * The attachment takes a file reference of its own; detach() and an fput give it back.
 */
export function dmabufAttach(file: File): DmabufAttachment | number {
  const buf = file.priv as TestDmaBuf;
  if (buf.revoked) return -errno.ENODEV;
  const a = new DmabufAttachment(buf, file);
  buf.attachments.add(a);
  file.refs++;
  return a;
}

// ---- the selftest's exporter (IOMMU_TEST_OP_DMABUF_GET / DMABUF_REVOKE / MD_CHECK_DMABUF) ------

/** Largest buffer DMABUF_GET makes. */
const TEST_DMABUF_MAX = 512 * PAGE_SIZE;

/**
 * iommufd_test_dmabuf_get: a buffer of `length` zeroed bytes (a whole number of pages, at most
 * 512; else EINVAL) behind a new fd, which is the ioctl's return value. ENOMEM when memory runs
 * out, nothing left behind.
 */
export function testDmabufGet(kcore: KernelCore, proc: Process, length: number, openFlags: number): number {
  if (length === 0 || length % PAGE_SIZE || length > TEST_DMABUF_MAX) return -errno.EINVAL;
  const x = kcore.core.x;
  const frames: number[] = [];
  for (let i = 0; i < length / PAGE_SIZE; i++) {
    const f = x.frame_alloc(0) >>> 0;
    if (f === FRAME_NONE) {
      for (const g of frames) x.frame_put(g);
      return -errno.ENOMEM;
    }
    frames.push(f);
  }
  const buf = new TestDmaBuf(kcore.core, frames, length);
  const file = kcore.newFile(testDmabufFops, openFlags & ~O_CLOEXEC, buf, "/dmabuf:", { mode: 0, rdev: 0, size: length });
  if (typeof file === "number") { buf.release(); return file; }
  const fd = proc.installFile(file, (openFlags & O_CLOEXEC) !== 0);
  if (fd < 0) kcore.fput(file);
  return fd;
}

/** iommufd_test_dmabuf_revoke: sets the revoked state and tells every importer (move_notify). */
export function testDmabufRevoke(proc: Process, fd: number, revoked: boolean): number {
  const f = dmaBufGet(proc, fd);
  if (typeof f === "number") return f;
  const buf = f.priv as TestDmaBuf;
  buf.revoked = revoked;
  buf.moveNotify();
  return 0;
}

/**
 * iommufd_test_md_check_dmabuf: every mock page of [iova, iova+length) must translate to byte
 * `offset` on of the buffer. EINVAL for unaligned values, a range past the buffer's end, or
 * any page that translates elsewhere (or not at all, after a revoke).
 */
export function testMdCheckDmabuf(domain: { iovaToPhys(iova: bigint): number }, pageSize: number, proc: Process,
  fd: number, iova: bigint, length: bigint, offset: bigint): number {
  const f = dmaBufGet(proc, fd);
  if (typeof f === "number") return f;
  const buf = f.priv as TestDmaBuf;
  const ps = BigInt(pageSize);
  if (iova % ps || length % ps || offset % ps) return -errno.EINVAL;
  const end = offset + length;
  if (end > ULONG_MAX || end > BigInt(buf.length)) return -errno.EINVAL;
  for (let i = 0; i < Number(length); i += pageSize) {
    const off = Number(offset) + i;
    const want = buf.frames[Math.floor(off / PAGE_SIZE)] * PAGE_SIZE + (off % PAGE_SIZE);
    if (domain.iovaToPhys(iova + BigInt(i)) !== want) return -errno.EINVAL;
  }
  return 0;
}
