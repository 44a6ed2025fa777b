// Open file descriptions and the operations a driver registers for them (the kernel's
// struct file and struct file_operations). A file may be shared by several fds; release()
// runs when the last one closes.

import type { Process } from "./process.js";

export interface StatResult { mode: number; rdev: number; size: number }

/** A request to map `length` bytes of a file at `pgoff` (in pages); see mm.ts. */
export interface MmapRequest {
  readonly length: number;
  readonly pgoff: number;
  readonly prot: number;
  readonly shared: boolean;
}

/**
 * What a file's mapping supplies to the address space: the frame backing page `pgoff`
 * (a reference is taken for the mapping by the caller), or -errno.
 */
export interface FileMapping {
  /** Frame number for file page `pgoff`, allocating it if needed; or -EFAULT past the end. */
  frameAt(pgoff: number): number;
  /** The frame of page `pgoff` if it exists, or -1, without creating it (fork asks). */
  peek?(pgoff: number): number;
  /**
   * A device register page (an MMIO BAR): a CPU store of `data` at byte `off` of the file goes
   * to the device's register model instead of plain memory (loads still read the page).
   */
  mmioWrite?(off: number, data: Uint8Array): void;
  /**
   * Device memory mapped by page frame (the kernel's VM_IO | VM_PFNMAP, as vfio-pci's BAR mmap
   * sets): no struct page behind it, so get_user_pages refuses it (EFAULT) and only a pfn
   * walk (type1's follow_fault_pfn) reaches it, as a reserved pfn that is neither pinned nor
   * charged.
   */
  readonly pfnmap?: boolean;
  /** Called once for every VMA that maps the file, and when it goes away. */
  attach?(mm: object): void;
  detach?(mm: object): void;
}

/** The address spaces that map a file, each with its number of VMAs over it (attach/detach). */
export class Mappers<M extends object = object> {
  private readonly vmas = new Map<M, number>();

  get size(): number { return this.vmas.size; }
  keys(): IterableIterator<M> { return this.vmas.keys(); }

  /** One more VMA of `mm` maps the file. */
  add(mm: M): void { this.vmas.set(mm, (this.vmas.get(mm) ?? 0) + 1); }

  /** One VMA of `mm` goes; true when no VMA of any address space maps the file any more. */
  remove(mm: M): boolean {
    const n = (this.vmas.get(mm) ?? 0) - 1;
    if (n > 0) this.vmas.set(mm, n);
    else this.vmas.delete(mm);
    return this.vmas.size === 0;
  }
}

export interface FileOperations {
  /** Short name used in traces and errors ("iommufd", "vfio-device", "eventfd", ...). */
  readonly kind: string;
  ioctl?(file: File, cmd: number, arg: number, proc: Process): number;
  /** pos is null for read()/write() (the file's own position, or a stream). */
  read?(file: File, buf: Uint8Array, pos: number | null, proc: Process): number;
  write?(file: File, buf: Uint8Array, pos: number | null, proc: Process): number;
  /** Returns the mapping that backs an mmap of this file, or -errno. */
  mmap?(file: File, req: MmapRequest, proc: Process): FileMapping | number;
  poll?(file: File): number;
  stat?(file: File): StatResult;
  ftruncate?(file: File, length: number): number;
  release?(file: File): void;
}

export class File {
  /** Reference count: one per fd (and per in-kernel holder) pointing at this description. */
  refs = 1;
  pos = 0;
  /** Gate slot and generation (assembly/gate.ts); every file has one, gated or not. */
  gateSlot = -1;
  gateGen = 0;
  closed = false;
  /** Whether its gate was granted when the last reference went (read by release). */
  wasGranted = false;

  constructor(
    readonly ops: FileOperations,
    public flags: number,
    /** Driver state (the kernel's file->private_data). */
    public priv: unknown,
    /** The path it was opened by, for traces and fstat. */
    readonly path: string,
    readonly statInfo: StatResult,
  ) {}
}
