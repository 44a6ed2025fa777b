// A process's address space (the kernel's mm_struct): VMAs kept here, page tables in shared
// memory (assembly/radix.ts), frames from the buddy allocator (assembly/frames.ts).
//
// Anonymous memory is charged against the kernel's commit limit at mmap (so ENOMEM is
// deterministic) and populated with zeroed frames on first touch, or at once with
// MAP_POPULATE. MAP_HUGETLB takes naturally aligned 2 MiB / 1 GiB frames at mmap. munmap drops
// the mapping's frame references; a pinned frame stays allocated until its pin is dropped, as
// on Linux. A device's BAR mapped by a driver is VM_IO | VM_PFNMAP (Vma.pfnmap): CPU accesses
// reach it, long-term pins (GUP) do not. fork() copies an address space (forkInto): MAP_SHARED
// anonymous memory then gets a shmem-like object (SharedAnon) both sides fault from; private
// memory is copied at once. A torn-down mm (its process exited) answers every fault and pin
// with EFAULT. Everything here runs on the kernel thread.

import { errno } from "../uapi/errno.js";
import {
  MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_HUGE_1GB, MAP_HUGE_2MB, MAP_HUGETLB,
  MAP_HUGE_MASK, MAP_HUGE_SHIFT, MAP_NORESERVE, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED,
  MAP_SHARED_VALIDATE, MAP_TYPE, PROT_READ, PROT_WRITE,
} from "../uapi/posix.js";
import { FRAME_NONE, type Core } from "../wasm/core.js";
import { Mappers, type FileMapping } from "./file.js";
import { copyFrames } from "./gup.js";
import type { MemAccounting } from "./accounting.js";

export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;
/**
 * a % PAGE_SIZE for a >= 0, without the modulo: user addresses pass 2^31, where `%` on the
 * double is an fmod call (~25 ns), and the user-copy path takes it several times per ioctl.
 */
export const pageOff = (a: number): number => a - Math.floor(a / PAGE_SIZE) * PAGE_SIZE;
/** Lowest address a process may map (vm.mmap_min_addr). */
export const MMAP_MIN_ADDR = 0x10000;
/** TASK_SIZE on x86-64 with 4-level paging. */
export const TASK_SIZE = 0x7ffffffff000;
/** Top-down placement starts just below here, as on x86-64 Linux. */
export const MMAP_BASE = 0x7ffff7000000;
/** mmap(0, ...) never picks an address below this. */
export const MMAP_FLOOR = 0x10000000;
const HUGE_2M = 0x200000;
const HUGE_1G = 0x40000000;
/**
 * User copies up to this many bytes (an ioctl struct) go word by word when aligned: creating
 * a typed-array view for set() costs more than such a copy, and a byte loop twice as much.
 */
const SHORT_COPY = 256;

/**
 * Copies `len` bytes from src[si] to dst[di] for a user copy: word by word when the copy is
 * short, both offsets are 4-aligned and both sides have a word view over their bytes (srcW,
 * dstW); else by set().
 */
function copyBytes(src: Uint8Array, srcW: Uint32Array | undefined, si: number,
  dst: Uint8Array, dstW: Uint32Array | undefined, di: number, len: number): void {
  if (srcW && dstW && len <= SHORT_COPY && ((si | di) & 3) === 0) {
    const w = len >>> 2;
    for (let i = 0, s = si >>> 2, d = di >>> 2; i < w; i++) dstW[d + i] = srcW[s + i];
    for (let i = w << 2; i < len; i++) dst[di + i] = src[si + i];
  } else dst.set(src.subarray(si, si + len), di);
}


export type VmaKind = "anon" | "file" | "hugetlb";

/**
 * The file side of a file mapping, asked in the kernel's order: `check` runs with do_mmap's
 * per-file checks (the access mode for a shared or private mapping, mmap support), after the
 * address and flag checks; `map` is the driver's mmap (call_mmap), run last, after the commit
 * charge, so that no driver sees a mapping the generic checks refuse.
 */
export interface FileMapSource {
  check(shared: boolean): number;
  map(len: number, shared: boolean): FileMapping | number;
  /** The open file the mapping was made from: every VMA over it holds a reference. */
  file?: VmFile;
}

/**
 * vma->vm_file: a VMA holds a reference on the file it maps (get_file at mmap, at a split and
 * at fork; fput when the VMA goes), so a closed fd whose mapping lives on keeps the file open:
 * its release (a vfio device's last close, which a hot-unplug waits for) comes with the munmap.
 */
export interface VmFile { get(): void; put(): void }

export interface Vma {
  start: number;
  end: number; // exclusive
  prot: number;
  flags: number;
  kind: VmaKind;
  /** The mapped file's backing (kind "file"). */
  mapping?: FileMapping;
  /** File page index of `start` (kind "file"). */
  pgoff: number;
  /** Leaf size: 4 KiB, or the huge page size of a hugetlb VMA. */
  pageSize: number;
  /** Pages charged to the commit limit for this VMA. */
  charged: number;
  /** Not counted anywhere (the ioctlBuf scratch area). */
  internal?: boolean;
  /** VM_IO | VM_PFNMAP: the mapping's FileMapping is device memory (FileMapping.pfnmap). */
  pfnmap?: boolean;
  /** The file this VMA holds open (vm_file), for a file mapping made from an fd. */
  vmFile?: VmFile;
}

// Flags MAP_SHARED_VALIDATE accepts on a file mapping: the kernel's LEGACY_MAP_MASK (with
// MAP_32BIT 0x40, MAP_GROWSDOWN 0x100, MAP_DENYWRITE 0x800, MAP_EXECUTABLE 0x1000, MAP_LOCKED
// 0x2000, MAP_NONBLOCK 0x10000, MAP_STACK 0x20000, MAP_UNINITIALIZED 0x4000000). Neither
// MAP_FIXED_NOREPLACE nor MAP_SYNC is in it (shmem has no FOP_MMAP_SYNC), so both get EOPNOTSUPP.
const LEGACY_MAP_MASK = MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | 0x800 | 0x1000 |
  0x4000000 | 0x100 | 0x2000 | MAP_NORESERVE | MAP_POPULATE | 0x10000 | 0x20000 | MAP_HUGETLB |
  0x40 | MAP_HUGE_2MB | MAP_HUGE_1GB;
/** Bottom-up fallback base when the top-down search fails (TASK_UNMAPPED_BASE: TASK_SIZE / 3). */
const TASK_UNMAPPED_BASE = Math.ceil(TASK_SIZE / 3 / PAGE_SIZE) * PAGE_SIZE;

const pageUp = (n: number) => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;

export class Mm {
  /** Sorted by start, non-overlapping. */
  readonly vmas: Vma[] = [];
  readonly root: number;
  /** Pages pinned under per-mm accounting (the kernel's mm->pinned_vm / locked_vm). */
  lockedVm = 0;
  private isDead = false;
  /** Some VMA maps device registers (FileMapping.mmioWrite): stores there are MMIO. */
  private hasMmio = false;
  /**
   * Addresses of the installed leaves (4 KiB pages, or the starts of huge pages), so that
   * zapping a sparse range (a MAP_NORESERVE reservation of terabytes) visits only what is there.
   */
  private readonly present = new Set<number>();
  /** assembly/radix.ts's leaf flags: PTE_W, and PTE_SPECIAL for device memory (VM_PFNMAP), which gup_fast_pin refuses. */
  private readonly pteW: number;
  private readonly pteSpecial: number;
  /**
   * A one-entry TLB of faultIn for user copies: the last 4 KiB page resolved, and the leaf a
   * read (tlbRead) and a write (tlbWrite) fault returned there, 0 for none. Every change of
   * the VMAs or the page table flushes it (flushTlb), so it only ever repeats an answer the
   * fault handler would give again: an ioctl reads its size, its struct and writes the struct
   * back through one walk instead of three.
   */
  private tlbPage = -1;
  private tlbRead = 0;
  private tlbWrite = 0;

  private constructor(private readonly core: Core, private readonly acct: MemAccounting, root: number) {
    this.root = root;
    this.pteW = core.consts.PTE_W;
    this.pteSpecial = core.consts.PTE_SPECIAL;
  }

  /** mm_alloc: a new, empty address space, or -ENOMEM when no frame is left for its page table. */
  static alloc(core: Core, acct: MemAccounting): Mm | number {
    const root = core.x.radix_alloc_root() >>> 0;
    return root === FRAME_NONE ? -errno.ENOMEM : new Mm(core, acct, root);
  }

  /** Torn down (its process exited): every access and pin of it fails with EFAULT. */
  get dead(): boolean { return this.isDead; }

  findVma(addr: number): Vma | undefined {
    // Binary search: the last VMA starting at or below addr.
    let lo = 0, hi = this.vmas.length - 1, hit: Vma | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.vmas[mid].start <= addr) { hit = this.vmas[mid]; lo = mid + 1; } else hi = mid - 1;
    }
    return hit && addr < hit.end ? hit : undefined;
  }

  private overlaps(start: number, end: number): boolean {
    return this.vmas.some((v) => v.start < end && start < v.end);
  }

  private flushTlb(): void { this.tlbPage = -1; }

  // Every change of this page table goes through these two, which flush the TLB first.
  private ptInstall(va: number, phys: number, flags: number, level: number): number {
    this.flushTlb();
    return this.core.x.radix_install(this.root, va, phys, flags, level);
  }

  private ptRemove(va: number, level: number): number {
    this.flushTlb();
    return this.core.x.radix_remove(this.root, va, level) >>> 0;
  }

  private insertVma(v: Vma): void {
    this.flushTlb();
    let i = 0;
    while (i < this.vmas.length && this.vmas[i].start < v.start) i++;
    this.vmas.splice(i, 0, v);
  }

  /** Highest `align`-aligned address in [floor, ceiling - len] not overlapping any VMA, or -1. */
  private findTopDown(len: number, align: number, floor = MMAP_FLOOR, ceiling = MMAP_BASE): number {
    let top = ceiling;
    for (let i = this.vmas.length - 1; i >= -1; i--) {
      const v = i >= 0 ? this.vmas[i] : undefined;
      if (v && v.start >= top) continue;
      const gapStart = v ? Math.max(v.end, floor) : floor;
      const candidate = Math.floor((top - len) / align) * align;
      if (candidate >= gapStart && candidate + len <= top) return candidate;
      if (v) top = Math.min(top, v.start);
      if (top <= floor) break;
    }
    return -1;
  }

  /** Lowest `align`-aligned address in [floor, TASK_SIZE - len] not overlapping any VMA, or -1. */
  private findBottomUp(len: number, align: number, floor: number): number {
    let at = Math.ceil(floor / align) * align;
    for (const v of this.vmas) {
      if (v.end <= at) continue;
      if (at + len <= v.start) break;
      at = Math.ceil(v.end / align) * align;
    }
    return at + len <= TASK_SIZE ? at : -1;
  }

  /**
   * EINVAL when unmapping [start, end) would cut a hugetlb VMA inside a huge page (the
   * kernel's hugetlb_vm_op_split); 0 otherwise.
   */
  private checkHugeSplit(start: number, end: number): number {
    for (const v of this.vmas) {
      if (v.kind !== "hugetlb" || v.end <= start || v.start >= end) continue;
      if (start > v.start && start % v.pageSize !== 0) return -errno.EINVAL;
      if (end < v.end && end % v.pageSize !== 0) return -errno.EINVAL;
    }
    return 0;
  }

  /** Commit pages charged to the VMAs in [start, end) (given back when they are unmapped). */
  private chargedIn(start: number, end: number): number {
    let n = 0;
    for (const v of this.vmas) {
      if (v.charged > 0 && v.start < end && start < v.end) n += (Math.min(v.end, end) - Math.max(v.start, start)) / PAGE_SIZE;
    }
    return n;
  }

  /**
   * mmap(2). `mapping` is the file's backing when fd >= 0 (resolved by the caller, which also
   * checked the fd's access mode). Returns the address or -errno. The checks follow the
   * kernel's order: ksys_mmap_pgoff (huge page size), do_mmap (length, address, EEXIST, then
   * the mapping type), mmap_region (splits, commit).
   */
  mmap(addr: number, length: number, prot: number, flags: number, file: FileMapSource | FileMapping | null,
    offset: number, internal = false): number {
    if (offset % PAGE_SIZE !== 0 || offset < 0) return -errno.EINVAL;
    const anon = (flags & MAP_ANONYMOUS) !== 0;
    let pageSize = PAGE_SIZE;
    if (flags & MAP_HUGETLB) {
      // Only anonymous hugetlb: no hugetlbfs files exist here.
      if (!anon) return -errno.EINVAL;
      const shift = (flags >>> MAP_HUGE_SHIFT) & MAP_HUGE_MASK;
      if (shift === 0 || shift === 21) pageSize = HUGE_2M;
      else if (shift === 30) pageSize = HUGE_1G;
      else return -errno.EINVAL;
    }
    if (length <= 0) return -errno.EINVAL;
    const len = Math.ceil(length / pageSize) * pageSize;
    if (len > TASK_SIZE) return -errno.ENOMEM;
    const fixed = (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0;
    let start: number;
    if (fixed) {
      if (pageSize > PAGE_SIZE && addr % pageSize !== 0) return -errno.EINVAL;
      if (addr + len > TASK_SIZE) return -errno.ENOMEM;
      if (addr % PAGE_SIZE !== 0) return -errno.EINVAL;
      if (addr < MMAP_MIN_ADDR) return -errno.EPERM;
      if ((flags & MAP_FIXED_NOREPLACE) && this.overlaps(addr, addr + len)) return -errno.EEXIST;
      start = addr;
    } else {
      // A hint below mmap_min_addr is raised to it (round_hint_to_min), then rounded down to
      // the page (or huge page) and taken if free; THP alignment only applies without a hint.
      let hint = addr !== 0 && addr < MMAP_MIN_ADDR ? MMAP_MIN_ADDR : addr;
      hint = Math.floor(hint / pageSize) * pageSize;
      if (hint !== 0 && hint + len <= TASK_SIZE && !this.overlaps(hint, hint + len)) {
        start = hint;
      } else {
        const align = pageSize > PAGE_SIZE ? pageSize : len >= HUGE_2M ? HUGE_2M : PAGE_SIZE;
        start = this.findTopDown(len, align);
        // As on Linux, a failed top-down search falls back to bottom-up from TASK_UNMAPPED_BASE.
        if (start < 0) start = this.findBottomUp(len, align, TASK_UNMAPPED_BASE);
        if (start < 0) return -errno.ENOMEM;
      }
    }

    // Anonymous hugetlb is a file mapping to do_mmap (hugetlb_file_setup), so it is validated
    // like one; plain anonymous memory takes only MAP_SHARED and MAP_PRIVATE.
    const type = flags & MAP_TYPE;
    if (!anon || pageSize > PAGE_SIZE) {
      if (type === MAP_SHARED_VALIDATE && (flags & ~LEGACY_MAP_MASK) !== 0) return -errno.EOPNOTSUPP;
      if (type !== MAP_SHARED && type !== MAP_PRIVATE && type !== MAP_SHARED_VALIDATE) return -errno.EINVAL;
    } else if (type !== MAP_SHARED && type !== MAP_PRIVATE) {
      return -errno.EINVAL;
    }
    const shared = type !== MAP_PRIVATE;
    const source = file && "map" in file ? file : null;
    if (source) {
      const rc = source.check(shared);
      if (rc < 0) return rc;
    }

    if (fixed) {
      const rc = this.checkHugeSplit(start, start + len);
      if (rc < 0) return rc;
    }

    // Commit charge, unless MAP_NORESERVE: private writable mappings, anonymous or of a file
    // (accountable_mapping: only their pages can become private copies), shared anonymous
    // memory (shmem_acct_size, whatever the protection) and hugetlb (which takes its frames
    // from the same pool). A read-only or PROT_NONE private mapping (an address-space
    // reservation) is not charged. Pages that MAP_FIXED replaces hand their charge over
    // (mmap_region's nr_accounted).
    const kind: VmaKind = pageSize > PAGE_SIZE ? "hugetlb" : anon ? "anon" : "file";
    const pages = len / PAGE_SIZE;
    const accountable = kind === "hugetlb" || (kind === "anon" && shared) || (!shared && (prot & PROT_WRITE) !== 0);
    const charge = internal || !accountable || (flags & MAP_NORESERVE) ? 0 : pages;
    const replaced = fixed ? this.chargedIn(start, start + len) : 0;
    if (charge > 0 && !this.acct.commit(charge, replaced)) return -errno.ENOMEM;

    let mapping: FileMapping | null = source ? null : (file as FileMapping | null);
    if (source) {
      const m = source.map(len, shared);
      if (typeof m === "number") {
        this.acct.uncommit(charge);
        return m;
      }
      mapping = m;
    }
    if (mapping?.mmioWrite) this.hasMmio = true;

    const hugeFrames: number[] = [];
    if (kind === "hugetlb") {
      const order = Math.log2(pageSize / PAGE_SIZE);
      for (let off = 0; off < len; off += pageSize) {
        const f = this.core.x.frame_alloc(order) >>> 0;
        if (f === FRAME_NONE) {
          for (const h of hugeFrames) this.putBlock(h, pageSize);
          this.acct.uncommit(charge);
          return -errno.ENOMEM;
        }
        hugeFrames.push(f);
      }
    }
    if (fixed) this.unmapRange(start, start + len);
    const vma: Vma = {
      start, end: start + len, prot, flags, kind, mapping: mapping ?? undefined,
      pgoff: offset / PAGE_SIZE, pageSize, charged: charge, internal,
      ...(mapping?.pfnmap ? { pfnmap: true } : {}),
      ...(source?.file ? { vmFile: source.file } : {}),
    };
    this.insertVma(vma);
    mapping?.attach?.(this);
    vma.vmFile?.get();
    if (kind === "hugetlb") {
      const level = pageSize === HUGE_2M ? 2 : 3;
      for (let i = 0; i < hugeFrames.length; i++) {
        const rc = this.ptInstall(start + i * pageSize, hugeFrames[i] * PAGE_SIZE, prot & PROT_WRITE ? this.pteW : 0, level);
        if (rc === 0) this.present.add(start + i * pageSize);
        if (rc < 0) {
          // Out of page-table frames: undo the whole mapping (its installed leaves included).
          for (let j = i; j < hugeFrames.length; j++) this.putBlock(hugeFrames[j], pageSize);
          this.unmapRange(start, start + len);
          return -errno.ENOMEM;
        }
      }
    } else if (flags & MAP_POPULATE) {
      // populate_vma_page_range: a private writable mapping is populated for write.
      const write = !shared && (prot & PROT_WRITE) !== 0;
      for (let a = start; a < start + len; a += PAGE_SIZE) {
        if (this.faultIn(a, write) < 0) break; // as on Linux, populate failures are not reported
      }
    }
    return start;
  }

  private putBlock(f: number, pageSize: number): void {
    for (let i = 0; i < pageSize / PAGE_SIZE; i++) this.core.x.frame_put(f + i);
  }

  /** munmap(2). */
  munmap(addr: number, length: number): number {
    if (addr % PAGE_SIZE !== 0 || length <= 0) return -errno.EINVAL;
    const len = pageUp(length);
    if (addr + len > TASK_SIZE || addr < 0) return -errno.EINVAL;
    const rc = this.checkHugeSplit(addr, addr + len);
    if (rc < 0) return rc;
    this.unmapRange(addr, addr + len);
    return 0;
  }

  /** Removes every mapping in [start, end), splitting VMAs at the edges. */
  private unmapRange(start: number, end: number): void {
    // The VMA list changes (the leaves go in zap): the TLB must not answer for what was here.
    this.flushTlb();
    const keep: Vma[] = [];
    const gone: Vma[] = [];
    for (const v of this.vmas) {
      if (v.end <= start || v.start >= end) { keep.push(v); continue; }
      const cutStart = Math.max(v.start, start);
      const cutEnd = Math.min(v.end, end);
      this.zap(v, cutStart, cutEnd);
      // A charged VMA carries one commit page per 4 KiB page; the pieces keep theirs.
      const perPage = v.charged > 0 ? 1 : 0;
      this.acct.uncommit(perPage * (cutEnd - cutStart) / PAGE_SIZE);
      const leftPages = (cutStart - v.start) / PAGE_SIZE;
      const rightPages = (v.end - cutEnd) / PAGE_SIZE;
      // Every surviving piece is a VMA of its own for the file (attach once per VMA).
      if (v.start < cutStart) {
        keep.push({ ...v, end: cutStart, charged: leftPages * perPage });
        v.mapping?.attach?.(this);
        v.vmFile?.get();
      }
      if (cutEnd < v.end) {
        keep.push({ ...v, start: cutEnd, pgoff: v.pgoff + (cutEnd - v.start) / PAGE_SIZE, charged: rightPages * perPage });
        v.mapping?.attach?.(this);
        v.vmFile?.get();
      }
      gone.push(v);
    }
    this.vmas.length = 0;
    this.vmas.push(...keep.sort((a, b) => a.start - b.start));
    // Detach last: dropping the final VMA of a closed memfd frees its pages; the file's
    // reference goes after that (its release may tear the device behind it down).
    for (const v of gone) v.mapping?.detach?.(this);
    for (const v of gone) v.vmFile?.put();
  }

  /** Drops the page-table entries (and their frame references) of [start, end) inside v. */
  private zap(v: Vma, start: number, end: number): void {
    const level = v.pageSize === PAGE_SIZE ? 1 : v.pageSize === HUGE_2M ? 2 : 3;
    const drop = (a: number) => {
      const leaf = this.ptRemove(a, level);
      this.present.delete(a);
      if (leaf === 0) return;
      const f = leaf >>> PAGE_SHIFT;
      if (level === 1) this.core.x.frame_put(f);
      else this.putBlock(f, v.pageSize);
    };
    if ((end - start) / v.pageSize <= this.present.size) {
      for (let a = start; a < end; a += v.pageSize) drop(a);
    } else {
      // Sparse: visit only the installed leaves (a snapshot: drop() edits the set).
      for (const a of [...this.present]) if (a >= start && a < end) drop(a);
    }
  }

  /** Drops file pages at or past `fromPgoff` of `mapping` from this address space (truncate). */
  zapFilePages(mapping: FileMapping, fromPgoff: number): void {
    for (const v of this.vmas) {
      if (v.mapping !== mapping) continue;
      const first = Math.max(v.start, v.start + (fromPgoff - v.pgoff) * PAGE_SIZE);
      if (first < v.end) this.zap(v, first, v.end);
    }
  }

  /**
   * Makes the page at `addr` present with the access the caller needs (the page-fault
   * handler). Returns the leaf word of radix_lookup (physical page | flags), or -EFAULT.
   *
   * A private file mapping maps the file's page-cache page read-only, so it sees later changes
   * to the file, until a write needs its own copy (copy-on-write). `unshare` asks for that copy
   * without a write: a long-term pin (FOLL_LONGTERM, gup_must_unshare) must stay coherent with
   * what the process sees.
   */
  faultIn(addr: number, write: boolean, unshare = false): number {
    const page = addr - pageOff(addr);
    if (page === this.tlbPage && !unshare) {
      const hit = write ? this.tlbWrite : this.tlbRead;
      if (hit !== 0) return hit;
    }
    const leaf = this.handleFault(addr, write, unshare);
    // An unshare (a long-term pin's fault) is never cached: it is not what a copy would ask.
    if (leaf >= 0 && !unshare) {
      if (page !== this.tlbPage) { this.tlbPage = page; this.tlbRead = 0; this.tlbWrite = 0; }
      // What a write fault returned, a read returns too; not the other way round (COW, prot).
      this.tlbRead = leaf;
      if (write) this.tlbWrite = leaf;
    }
    return leaf;
  }

  /** The page-fault handler behind faultIn (the TLB's miss path). */
  private handleFault(addr: number, write: boolean, unshare: boolean): number {
    const x = this.core.x;
    if (this.isDead) return -errno.EFAULT;
    const v = this.findVma(addr);
    if (!v) return -errno.EFAULT;
    // A long-term pin (gupLeaf) of device memory: check_vma_flags refuses VM_PFNMAP.
    if (unshare && v.pfnmap) return -errno.EFAULT;
    if (write ? !(v.prot & PROT_WRITE) : !(v.prot & (PROT_READ | PROT_WRITE))) return -errno.EFAULT;
    const page = addr - pageOff(addr);
    const cow = v.kind === "file" && (v.flags & MAP_TYPE) === MAP_PRIVATE;
    const pte = (v.prot & PROT_WRITE ? this.pteW : 0) | (v.pfnmap ? this.pteSpecial : 0);
    const leaf = x.radix_lookup(this.root, addr) >>> 0;
    if (leaf !== 0) {
      if (!cow || !(write || unshare)) return leaf;
      const src = v.mapping!.frameAt(v.pgoff + (page - v.start) / PAGE_SIZE);
      if (src !== leaf >>> PAGE_SHIFT) return leaf; // already this mapping's own copy
      const copy = this.copyFrame(src);
      if (copy < 0) return copy;
      this.ptRemove(page, 1);
      this.present.delete(page);
      x.frame_put(src);
      return this.install(page, copy, pte, addr);
    }
    let frame: number;
    let flags = pte;
    // A file's page, or the page of shared anonymous memory a fork shares (SharedAnon).
    if (v.mapping) {
      const src = v.mapping!.frameAt(v.pgoff + (page - v.start) / PAGE_SIZE);
      if (src < 0) return src;
      if (cow && (write || unshare)) {
        frame = this.copyFrame(src);
        if (frame < 0) return frame;
      } else {
        frame = src;
        x.frame_get(frame);
        if (cow) flags &= ~this.pteW; // the cache page is never written through a private mapping
      }
    } else {
      frame = x.frame_alloc(0) >>> 0;
      if (frame === FRAME_NONE) return -errno.EFAULT;
    }
    return this.install(page, frame, flags, addr);
  }

  /** A new frame holding a copy of frame `src`, or -EFAULT when memory is exhausted. */
  private copyFrame(src: number): number {
    const f = this.core.x.frame_alloc(0) >>> 0;
    if (f === FRAME_NONE) return -errno.EFAULT;
    const base = this.core.poolBase;
    this.core.u8.copyWithin(base + f * PAGE_SIZE, base + src * PAGE_SIZE, base + src * PAGE_SIZE + PAGE_SIZE);
    return f;
  }

  /**
   * The page at `addr` for a long-term pin (pin_user_pages with FOLL_LONGTERM): check_vma_flags
   * refuses a VM_IO | VM_PFNMAP mapping with EFAULT (device memory has no page to pin), before
   * anything is faulted; otherwise the page faulted in as a pin needs it (for write if `write`,
   * a private file page unshared). The leaf word, or -EFAULT; no reference is taken.
   */
  gupLeaf(addr: number, write: boolean): number {
    // faultIn's long-term (unshare) fault makes the VM_PFNMAP check on the VMA it finds.
    return this.faultIn(addr, write, true);
  }

  /**
   * gup_fast for a long-term pin (assembly/gup.ts): pins up to `npages` pages from `addr`
   * (page-aligned) whose leaves are present, writable and not device memory, one frame
   * reference each, and stores their frames in `out` from index `at`, in as many batches of
   * GUP_BATCH_PAGES as it takes. Returns how many; the page after them (when fewer than
   * `npages`) needs gupLeaf (the slow path, which faults and checks the VMA).
   */
  gupFast(addr: number, npages: number, out: Int32Array, at: number): number {
    if (this.isDead) return 0;
    const { x, u32, consts } = this.core;
    const from = consts.GUP_BATCH >>> 2;
    let done = 0;
    while (done < npages) {
      const want = Math.min(npages - done, consts.GUP_BATCH_PAGES);
      const n = x.gup_fast_pin(this.root, addr + done * PAGE_SIZE, want) >>> 0;
      copyFrames(out, at + done, u32, from, n);
      done += n;
      if (n < want) break;
    }
    return done;
  }

  /**
   * follow_fault_pfn, type1's way into a VM_PFNMAP mapping that GUP refused: the pfn mapped at
   * `addr`, faulted in first if it is not (fixup_user_fault, so a write needs a writable
   * mapping). The leaf word, or -EFAULT when `addr` is not in a pfnmap or the fault fails.
   */
  followPfn(addr: number, write: boolean): number {
    if (!this.findVma(addr)?.pfnmap) return -errno.EFAULT;
    return this.faultIn(addr, write);
  }

  /** Pages of [addr, addr + len) that lie in VM_PFNMAP mappings. */
  pfnmapPages(addr: number, len: number): number {
    let n = 0;
    for (const v of this.vmas) {
      if (v.pfnmap && v.start < addr + len && addr < v.end) n += (Math.min(v.end, addr + len) - Math.max(v.start, addr)) / PAGE_SIZE;
    }
    return n;
  }

  /** The frame behind user address `addr`, faulted in for reading (get_user_pages), or -EFAULT. */
  frameOf(addr: number): number {
    const leaf = this.faultIn(addr, false);
    return leaf < 0 ? leaf : leaf >>> PAGE_SHIFT;
  }

  /** Installs a 4 KiB leaf for `page` holding the caller's reference on `frame`. */
  private install(page: number, frame: number, flags: number, addr: number): number {
    const x = this.core.x;
    const rc = this.ptInstall(page, frame * PAGE_SIZE, flags, 1);
    if (rc < 0) {
      x.frame_put(frame);
      return -errno.EFAULT;
    }
    this.present.add(page);
    return x.radix_lookup(this.root, addr) >>> 0;
  }

  /**
   * Resolves [addr, addr+len) page by page for an access (copy_{from,to}_user), faulting pages
   * in. Calls `each(hostAddr, bytes, doneSoFar)` only after the whole range resolved, so a
   * failing range copies nothing. Returns 0 or -EFAULT.
   */
  access(addr: number, len: number, write: boolean, each: (host: number, n: number, done: number) => void): number {
    if (len === 0) return 0;
    if (!(addr >= 0) || addr + len > TASK_SIZE || !Number.isSafeInteger(addr)) return -errno.EFAULT;
    const runs: number[] = [];
    for (let a = addr; a < addr + len;) {
      const leaf = this.faultIn(a, write);
      if (leaf < 0) return -errno.EFAULT;
      const inPage = pageOff(a);
      const n = Math.min(PAGE_SIZE - inPage, addr + len - a);
      runs.push(this.core.poolBase + (leaf >>> PAGE_SHIFT) * PAGE_SIZE + inPage, n);
      a += n;
    }
    let done = 0;
    for (let i = 0; i < runs.length; i += 2) {
      each(runs[i], runs[i + 1], done);
      done += runs[i + 1];
    }
    return 0;
  }

  /**
   * The fast path of an access of [addr, addr+len) that lies inside one page (most ioctl
   * structs): the host address, faulted in, or -EFAULT; -1 for any other range (the caller
   * takes access()).
   */
  private onePage(addr: number, len: number, write: boolean): number {
    const inPage = pageOff(addr);
    if (len === 0 || inPage + len > PAGE_SIZE || !(addr >= 0) || !Number.isSafeInteger(addr) || addr + len > TASK_SIZE) return -1;
    const leaf = this.faultIn(addr, write);
    if (leaf < 0) return -errno.EFAULT;
    return this.core.poolBase + (leaf >>> PAGE_SHIFT) * PAGE_SIZE + inPage;
  }

  /** get_user of a u32 (little-endian): the value, or -EFAULT. */
  readU32(addr: number): number {
    const h = this.onePage(addr, 4, false);
    if (h >= 0) return this.core.dv.getUint32(h, true);
    if (h !== -1) return h;
    const b = this.copyFromUser(addr, 4);
    return typeof b === "number" ? b : new DataView(b.buffer).getUint32(0, true);
  }

  /**
   * copy_from_user into the first `len` bytes of `dst`: 0 or -EFAULT (`dst` untouched then).
   * Allocates nothing: the ioctl path copies its struct this way into a reused image.
   */
  copyFromUserInto(addr: number, dst: Uint8Array, len: number, dstWords?: Uint32Array): number {
    return this.copyIn(addr, dst, len, dstWords);
  }

  /** copy_from_user: the bytes, or -EFAULT. */
  copyFromUser(addr: number, len: number): Uint8Array | number {
    const out = new Uint8Array(len);
    const rc = this.copyIn(addr, out, len);
    return rc < 0 ? rc : out;
  }

  /** Both copies from user memory (private: the trace recorder wraps the public ones, once each). */
  private copyIn(addr: number, dst: Uint8Array, len: number, dstWords?: Uint32Array): number {
    const { u8, u32 } = this.core;
    const h = this.onePage(addr, len, false);
    if (h >= 0) {
      copyBytes(u8, u32, h, dst, dstWords, 0, len);
      return 0;
    }
    if (h !== -1) return h;
    return this.access(addr, len, false, (a, n, d) => dst.set(u8.subarray(a, a + n), d));
  }

  /**
   * copy_to_user of the first `len` bytes of `data`: 0 or -EFAULT (nothing written on failure).
   * `words`, a Uint32Array over `data`'s bytes, lets a short aligned copy go word by word.
   */
  copyToUser(addr: number, data: Uint8Array, len = data.length, words?: Uint32Array): number {
    if (this.hasMmio) {
      const v = this.findVma(addr);
      if (v?.mapping?.mmioWrite && len > 0) {
        // A store to a device's register page: the device sees it (MMIO), within one VMA,
        // once every page of it faults in (a BAR with memory decoding off does not).
        if (addr + len > v.end || !(v.prot & PROT_WRITE)) return -errno.EFAULT;
        for (let a = addr - pageOff(addr); a < addr + len; a += PAGE_SIZE) {
          if (this.faultIn(a, true) < 0) return -errno.EFAULT;
        }
        v.mapping.mmioWrite(v.pgoff * PAGE_SIZE + (addr - v.start), data.subarray(0, len));
        return 0;
      }
    }
    const { u8, u32 } = this.core;
    const h = this.onePage(addr, len, true);
    if (h >= 0) {
      copyBytes(data, words, 0, u8, u32, h, len);
      return 0;
    }
    if (h !== -1) return h;
    return this.access(addr, len, true, (a, n, d) => u8.set(data.subarray(d, d + n), a));
  }

  /**
   * Pins `npages` pages from `addr` (page-aligned) for DMA: faults them in (for write if
   * `write`; a long-term pin, so private file pages are unshared) and takes one frame
   * reference each. Returns the frame numbers or -EFAULT; on
   * failure nothing stays pinned.
   */
  pinPages(addr: number, npages: number, write: boolean): number[] | number {
    // The mm of an exited process has nothing left to pin (get_user_pages on a dead mm).
    if (this.isDead) return -errno.EFAULT;
    const frames: number[] = [];
    for (let i = 0; i < npages; i++) {
      const leaf = this.gupLeaf(addr + i * PAGE_SIZE, write);
      if (leaf < 0) {
        unpinFrames(this.core, frames);
        return leaf;
      }
      const f = leaf >>> PAGE_SHIFT;
      this.core.x.frame_get(f);
      frames.push(f);
    }
    return frames;
  }

  /**
   * dup_mmap: copies this address space into `child` (a fresh Mm) for fork(). Every VMA but
   * the internal scratch area is copied. Shared mappings share their pages: a file's VMA maps
   * the same file (and is attached to it), MAP_SHARED anonymous memory gets a SharedAnon object
   * (made here on its first fork, adopting the pages present) that both address spaces fault
   * from, and shared hugetlb shares its huge frames. Private mappings are copied eagerly: every
   * present page gets its own copy in the child at once, instead of copy-on-write later (the
   * contents are the same either way; only the frames are taken earlier). A private file page
   * that is still the file's cache page stays shared, read-only, as it is in the parent.
   * Private (VM_ACCOUNT) VMAs are charged again to the commit limit, as dup_mmap does; shared
   * ones are not. 0, or -ENOMEM (the caller destroys the half-made child).
   */
  forkInto(child: Mm): number {
    if (this.isDead) return -errno.EFAULT;
    const x = this.core.x;
    for (const v of this.vmas) {
      if (v.internal) continue;
      const shared = (v.flags & MAP_TYPE) !== MAP_PRIVATE;
      if (shared && v.kind === "anon" && !v.mapping) this.shareAnon(v);
      const charged = shared ? 0 : v.charged;
      if (charged > 0 && !this.acct.commit(charged)) return -errno.ENOMEM;
      const c: Vma = { ...v, charged };
      child.insertVma(c);
      c.mapping?.attach?.(child);
      c.vmFile?.get();
      if (c.mapping?.mmioWrite) child.hasMmio = true;
    }
    for (const a of [...this.present].sort((p, q) => p - q)) {
      const v = this.findVma(a);
      if (!v || v.internal) continue;
      const shared = (v.flags & MAP_TYPE) !== MAP_PRIVATE;
      const leaf = x.radix_lookup(this.root, a) >>> 0;
      if (leaf === 0) continue;
      const frame = leaf >>> PAGE_SHIFT;
      const w = leaf & this.pteW;
      if (v.kind === "hugetlb") {
        const n = v.pageSize / PAGE_SIZE;
        let f = frame;
        if (shared) {
          for (let i = 0; i < n; i++) x.frame_get(frame + i);
        } else {
          f = x.frame_alloc(Math.log2(n)) >>> 0;
          if (f === FRAME_NONE) return -errno.ENOMEM;
          const base = this.core.poolBase;
          this.core.u8.copyWithin(base + f * PAGE_SIZE, base + frame * PAGE_SIZE, base + (frame + n) * PAGE_SIZE);
        }
        const rc = child.ptInstall(a, f * PAGE_SIZE, w, v.pageSize === HUGE_2M ? 2 : 3);
        if (rc < 0) { this.putBlock(f, v.pageSize); return -errno.ENOMEM; }
        child.present.add(a);
        continue;
      }
      let f = frame;
      let share = shared;
      if (!shared && v.kind === "file") {
        // Still the file's own page (never written through this mapping): share it.
        const pgoff = v.pgoff + (a - v.start) / PAGE_SIZE;
        share = (v.mapping!.peek ? v.mapping!.peek(pgoff) : v.mapping!.frameAt(pgoff)) === frame;
      }
      if (share) x.frame_get(frame);
      else {
        f = this.copyFrame(frame);
        if (f < 0) return -errno.ENOMEM;
      }
      if (child.install(a, f, w | (v.pfnmap ? this.pteSpecial : 0), a) < 0) return -errno.ENOMEM;
    }
    return 0;
  }

  /**
   * Gives MAP_SHARED anonymous VMA `v` its shmem object (shmem_zero_setup): the pages present
   * move into it (it takes a reference of its own), and from now on faults come from it.
   */
  private shareAnon(v: Vma): void {
    const obj = new SharedAnon(this.core);
    for (const a of this.present) {
      if (a < v.start || a >= v.end) continue;
      const leaf = this.core.x.radix_lookup(this.root, a) >>> 0;
      if (leaf === 0) continue;
      const f = leaf >>> PAGE_SHIFT;
      this.core.x.frame_get(f);
      obj.pages.set(v.pgoff + (a - v.start) / PAGE_SIZE, f);
    }
    v.mapping = obj;
    this.flushTlb();
    obj.attach(this);
  }

  /** Tears the whole address space down (process exit). */
  destroy(): void {
    if (this.isDead) return;
    this.isDead = true;
    this.unmapRange(0, TASK_SIZE);
    this.core.x.radix_destroy(this.root);
  }
}

/**
 * The shmem object behind MAP_SHARED anonymous memory once a fork shares it: a page index ->
 * frame map (one reference each) that every address space mapping it faults from. Its pages
 * were charged to the commit limit with the mapping, so none are charged here; they go when
 * the last VMA mapping the object does.
 */
export class SharedAnon implements FileMapping {
  readonly pages = new Map<number, number>();
  private readonly mappers = new Mappers();

  constructor(private readonly core: Core) {}

  frameAt(pgoff: number): number {
    let f = this.pages.get(pgoff);
    if (f === undefined) {
      f = this.core.x.frame_alloc(0) >>> 0;
      if (f === FRAME_NONE) return -errno.EFAULT;
      this.pages.set(pgoff, f);
    }
    return f;
  }

  peek(pgoff: number): number { return this.pages.get(pgoff) ?? -1; }

  attach(mm: object): void { this.mappers.add(mm); }

  detach(mm: object): void {
    if (!this.mappers.remove(mm)) return;
    for (const f of this.pages.values()) this.core.x.frame_put(f);
    this.pages.clear();
  }
}

/** Drops one pin reference on each frame. */
function unpinFrames(core: Core, frames: readonly number[]): void {
  for (const f of frames) core.x.frame_put(f);
}
