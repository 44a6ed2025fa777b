// The iommufd context and command (drivers/iommu/iommufd/iommufd_private.h): struct iommufd_ctx
// with its object table, pages and mmap regions, and struct iommufd_ucmd. Every iommufd module
// takes these as types; this file imports no module that uses them except as types, so the
// iommufd modules form no circle of value imports through it.

import { errno } from "../uapi/errno.js";
import { PROT_EXEC } from "../uapi/posix.js";
import type { File, FileMapping, MmapRequest } from "../kernel/file.js";
import { PAGE_SIZE } from "../kernel/mm.js";
import type { KernelCore } from "../kernel/kernel.js";
import type { Process } from "../kernel/process.js";
import { getField, getU64, setField, type Field, type StructLayout } from "../uapi/struct.js";
import type { IommufdGroup } from "./device.js";
import type { Ioas } from "./ioas.js";
import type { Iommufd } from "./main.js";
import { ObjectTable, type IommufdObject, type ObjType } from "./object.js";
import { IoptPages, type PagesSource } from "./pages.js";

/**
 * Field accessors over a command image (the ioctl path: no closures): `c.u(c.f.flags)`. The
 * field is named at the handler's own call site, where it has one shape; a name looked up
 * inside u() would be one lookup for the fields of every layout, which V8 serves through its
 * megamorphic cache. The u64 fields, which the uapi aligns to 8, go through a BigUint64Array:
 * a DataView's getBigUint64 costs twice.
 */
export class Fields<F extends string> {
  /** The layout's fields. */
  readonly f: { readonly [K in F]: Field };

  constructor(private readonly v: DataView, private readonly q: BigUint64Array, readonly layout: StructLayout<F>) {
    this.f = layout.fields;
  }

  u(f: Field): number { return getField(this.v, f); }
  u64(f: Field): bigint { return (f.off & 7) === 0 ? this.q[f.off >>> 3] : getU64(this.v, f); }
  /** A bigint into a u64 field is stored modulo 2^64, as setField does. */
  set(f: Field, x: number | bigint): void {
    if (f.size === 8 && typeof x === "bigint" && (f.off & 7) === 0) this.q[f.off >>> 3] = x;
    else setField(this.v, f, x);
  }
}

/**
 * An iommufd command in flight (the kernel's struct iommufd_ucmd). The ioctl table keeps one
 * per op beside its struct image and points it at each call in turn (begin), as it reuses the
 * image: the control plane runs one ioctl at a time, so a call allocates neither. Handlers
 * read proc, file, ubuffer and userSize; only begin sets them.
 */
export class UCmd {
  readonly view: DataView;
  private readonly q: BigUint64Array;
  /** The accessors the handler asked for last (one layout per op, so made once). */
  private accessors: Fields<string> | null = null;

  constructor(
    public proc: Process,
    public file: File,
    /** User address of the argument. */
    public ubuffer: number,
    /** The caller's `size`. */
    public userSize: number,
    /**
     * The kernel's image of the struct: sizeof bytes, zero-extended, at the start of a buffer
     * of whole 8-byte words.
     */
    readonly cmd: Uint8Array,
    /** A Uint32Array over the image's buffer, for word-wise copies. */
    private readonly words: Uint32Array,
  ) {
    this.view = new DataView(cmd.buffer, 0, cmd.byteLength);
    this.q = new BigUint64Array(cmd.buffer);
  }

  /** Points the command at the next call over the same image. */
  begin(proc: Process, file: File, ubuffer: number, userSize: number): this {
    this.proc = proc;
    this.file = file;
    this.ubuffer = ubuffer;
    this.userSize = userSize;
    return this;
  }

  /** The image's fields under `layout`. */
  fields<F extends string>(layout: StructLayout<F>): Fields<F> {
    const a = this.accessors;
    if (a !== null && a.layout === layout) return a as unknown as Fields<F>;
    const f = new Fields(this.view, this.q, layout);
    this.accessors = f as unknown as Fields<string>;
    return f;
  }

  /** A fault-injection point (failNth): true when this allocation or copy must fail. */
  shouldFail(): boolean {
    return this.proc.kernel.shouldFail();
  }

  /** copy_from_user for a handler (an injection point): the bytes or -EFAULT. */
  copyFromUser(addr: number, len: number): Uint8Array | number {
    if (this.shouldFail()) return -errno.EFAULT;
    return this.proc.mm.copyFromUser(addr, len);
  }

  /**
   * copy_to_user for a handler (an injection point) of the first `len` bytes of `data`
   * (`words`: a Uint32Array over them, see Mm.copyToUser): 0 or -EFAULT.
   */
  copyToUser(addr: number, data: Uint8Array, len = data.length, words?: Uint32Array): number {
    if (this.shouldFail()) return -errno.EFAULT;
    return this.proc.mm.copyToUser(addr, data, len, words);
  }

  /** Copies the (updated) struct back: min(size, sizeof) bytes. 0 or -EFAULT. */
  respond(): number {
    return this.copyToUser(this.ubuffer, this.cmd, Math.min(this.userSize, this.cmd.length), this.words);
  }
}

/**
 * iommu_copy_struct_from_user for a driver's user data (an HWPT's, a vIOMMU's, an invalidation
 * entry's): the type, then min <= data_len <= sizeof, then the copy.
 */
export function copyUserData(ucmd: UCmd, type: number, uptr: number, len: number, wantType: number,
  layout: StructLayout, minSize = layout.minSize): Uint8Array | number {
  if (type !== wantType) return -errno.EINVAL;
  // Shorter than the first version of the struct, or longer than this kernel's: EINVAL (unlike
  // copy_struct_from_user's E2BIG, the helper refuses any extra length).
  if (len < minSize || len > layout.size) return -errno.EINVAL;
  const b = ucmd.copyFromUser(uptr, len);
  if (typeof b === "number") return -errno.EFAULT;
  const out = new Uint8Array(layout.size);
  out.set(b);
  return out;
}

/**
 * struct iommufd_mmap: `length` bytes of physically contiguous frames from `frame`, mapped at
 * file offset `start`; each VMA over it holds a user of `owner`.
 */
export interface IommufdMmap { readonly owner: IommufdObject; readonly start: number; readonly length: number; readonly frame: number }

const releaseNothing = (): void => {};

/** struct iommufd_ctx. */
export class IommufdCtx {
  readonly objects = new ObjectTable();
  /** ictx->mt_mmap: the registered regions, by start offset. */
  private readonly mmaps: IommufdMmap[] = [];
  /** The IOAS the VFIO compat ioctls act on (IOMMU_VFIO_IOAS). */
  vfioIoas: Ioas | null = null;
  /** iommufd_group per iommu_group number with bound devices. */
  readonly groups = new Map<number, IommufdGroup>();

  constructor(readonly driver: Iommufd, readonly file: File, public accountMode: "user" | "mm") {}

  get kcore(): KernelCore { return this.driver.kcore; }

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

  /**
   * The end of an allocating ioctl (iommufd_ucmd_respond, then finalize): the struct copied
   * back, then `obj` published; a failed copy aborts it instead. 0 or -EFAULT.
   */
  respondFinalize(ucmd: UCmd, obj: IommufdObject): number {
    const rc = ucmd.respond();
    if (rc < 0) { this.objectAbort(obj); return rc; }
    this.objectFinalize(obj);
    return 0;
  }

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
    return this.objects.all().filter((o): o is Ioas => o.type === "ioas");
  }

  // ---- pages --------------------------------------------------------------------------------

  /** A new iopt_pages charged to `owner`; a file source keeps its file reference until freed. */
  newPages(source: PagesSource, npages: number, writable: boolean, owner: Process): IoptPages {
    // User memory holds nothing to give back: no closure for it (one per IOAS_MAP).
    return new IoptPages(source, npages, writable, owner, this.kcore, source.kind === "user" ? releaseNothing : () => {
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
