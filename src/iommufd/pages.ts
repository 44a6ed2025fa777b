// iopt_pages (drivers/iommu/iommufd/pages.c): the memory behind one or more areas — a range of
// a process's address space or of a memfd — shared by every area COPY makes from it, with the
// accounting mode chosen when it was created. Pinning comes with the users that need pages
// (domains and accesses); until then nothing is read, so a bad user VA is not noticed.

import { errno } from "../uapi/errno.js";
import type { Core } from "../wasm/core.js";
import type { MemAccounting } from "../kernel/accounting.js";
import type { Mm } from "../kernel/mm.js";
import type { MemFd } from "../kernel/memfd.js";
import type { Process } from "../kernel/process.js";
import type { File } from "../kernel/file.js";
import type { DmabufAttachment } from "./dmabuf.js";
import { PAGE, PAGE_MASK, PAGE_SIZE, u64Number } from "./iova.js";
import { unpinFrames, type PinLedger } from "../kernel/gup.js";

/** enum iopt_pages_account_mode. */
export type AccountMode = "none" | "user" | "mm";

export type PagesSource =
  | {
    kind: "user"; mm: Mm; /** page-aligned start */ uptr: bigint;
    /**
     * uptr as a number, for the mm: exact for every address a process maps (below TASK_SIZE);
     * one past 2^53 is rounded, and faults all the same.
     */
    addr: number;
  }
  | { kind: "file"; file: File; /** null: not shmem, never pinnable */ memfd: MemFd | null; /** page-aligned file offset */ start: bigint }
  | { kind: "dmabuf"; attach: DmabufAttachment; /** page-aligned offset into the buffer */ start: bigint };

/** A user-memory source from page-aligned `uptr`. */
export function userSource(mm: Mm, uptr: bigint): PagesSource {
  return { kind: "user", mm, uptr, addr: u64Number(uptr) };
}

/** What pinning needs from the kernel (its KernelCore): the core, the accounting, the pin ledger. */
export interface PinContext {
  readonly core: Core;
  readonly acct: MemAccounting;
  /** Long-term pins per frame, recorded as they are taken and dropped. */
  readonly pins: PinLedger;
  /** An injection point: true when this allocation must fail. */
  shouldFail(): boolean;
}

/** -PAGE_SIZE: a length past MAX_PAGES_LENGTH (ULONG_MAX - PAGE_SIZE) is at least this as an s64. */
const MINUS_PAGE = -PAGE;

/** Pages per chunk of the pin bookkeeping: dense within 256 KiB, sparse across an area. */
const CHUNK_SHIFT = 6;
const CHUNK = 1 << CHUNK_SHIFT;

/**
 * The pin state of CHUNK consecutive pages in one array: frame + 1 of each (0: not pinned) at
 * [0, CHUNK), its users at [CHUNK, 2 CHUNK).
 */
interface PinChunk { s: Int32Array; pinned: number }

/**
 * How many entries of a chunk's frames from j0 to e (each frame + 1) are base + j: a run's
 * test one chunk per call (see pinChunk for why the loops are cut so).
 */
function contigIn(s: Int32Array, j0: number, e: number, base: number): number {
  let j = j0;
  while (j <= e && s[j] === base + j) j++;
  return j - j0;
}

/**
 * Chunks given back when their last pin went: all zeros again by then (pinned 0 too), so they
 * are reused as they are (a typed-array allocation per map is most of a small map's cost).
 */
const chunkPool: PinChunk[] = [];
const CHUNK_POOL_MAX = 4096;

/**
 * The frames a pin or unpin takes or gives back, gathered before they are recorded: one
 * buffer for every call (the control plane runs one at a time), grown as needed.
 */
let scratch = new Int32Array(CHUNK);
function scratchFor(n: number): Int32Array {
  if (scratch.length < n) scratch = new Int32Array(Math.max(n, 2 * scratch.length));
  return scratch;
}

export class IoptPages {
  /** One per area and per in-flight COPY list entry that uses these pages (the kref). */
  refs = 1;
  accountMode: AccountMode;
  /** The task charged for pins (source_task / source_user); CHANGE_PROCESS moves it. */
  owner: Process;
  /** Pin state by chunk of pages (sparse: an area may span terabytes of lazily mapped VA). */
  private chunks: Map<number, PinChunk> | null = null;
  /**
   * The first chunk in use lives outside the map (`oneKey` -1: none), which is made only for
   * a second: most pages (every small map) need one chunk, and a Map costs more than the pin.
   */
  private one: PinChunk | null = null;
  private oneKey = -1;
  /** Pages pinned now, and charged to the owner under accountMode. */
  npinned = 0;
  /**
   * type1's vaddr_get_pfns: a page GUP refuses because it lies in a VM_PFNMAP mapping is
   * taken by its pfn (follow_fault_pfn) instead. Such a pfn is reserved (device memory):
   * neither pinned nor charged, and not in npinned. iommufd never does this (EFAULT).
   */
  followPfnmap = false;
  /** Indices holding a reserved pfn (followPfnmap), and how many; null until the first. */
  private rsvd: Set<number> | null = null;
  nreserved = 0;
  /** Whether the last pinOne took a reserved pfn. */
  private lastRsvd = false;

  constructor(
    readonly source: PagesSource,
    /** Pages spanned, counted from the page-aligned start. */
    readonly npages: number,
    readonly writable: boolean,
    owner: Process,
    private readonly pin: PinContext,
    private readonly onRelease: () => void,
  ) {
    this.owner = owner;
    // dmabuf pages are the exporter's, never pinned nor charged.
    this.accountMode = owner.capIpcLock || source.kind === "dmabuf" ? "none" : "user";
  }

  private chunk(index: number, create: boolean): PinChunk | undefined {
    const k = Math.floor(index / CHUNK); // not >>>: an index may pass 2^32 (a 16 TiB area)
    if (k === this.oneKey) return this.one!;
    let c = this.chunks?.get(k);
    if (!c && create) {
      c = chunkPool.pop() ?? { s: new Int32Array(2 * CHUNK), pinned: 0 };
      if (this.oneKey < 0) { this.one = c; this.oneKey = k; } else (this.chunks ??= new Map()).set(k, c);
    }
    return c;
  }

  private dropChunk(k: number): void {
    if (k === this.oneKey) { this.one = null; this.oneKey = -1; } else this.chunks!.delete(k);
  }

  /** The frame of pinned page `index`, or -1. */
  frameAt(index: number): number { return (this.chunk(index, false)?.s[index & (CHUNK - 1)] ?? 0) - 1; }

  /**
   * How many pages from `index` on (at most `max`) are pinned to consecutive frames: the run
   * one domain map call can take.
   */
  contigFrames(index: number, max: number): number {
    if (max <= 0) return 0;
    // frame + 1 of the first page (0: not pinned); page index + n must hold that plus n.
    const first = this.frameAt(index) + 1;
    let n = 1;
    while (n < max) {
      const i = index + n;
      const j0 = i & (CHUNK - 1);
      const e = Math.min(CHUNK - 1, j0 + (max - n - 1));
      const c = this.chunk(i, false);
      const got = c ? contigIn(c.s, j0, e, first + n - j0) : 0;
      n += got;
      if (got < e - j0 + 1) break;
    }
    return n;
  }

  /** The first page in [i, last] that some user pins already, or last + 1. */
  private unpinnedEnd(i: number, last: number): number {
    while (i <= last) {
      const k = Math.floor(i / CHUNK);
      const c = this.chunk(i, false);
      const chunkEnd = Math.min((k + 1) * CHUNK, last + 1);
      if (!c) { i = chunkEnd; continue; }
      for (; i < chunkEnd; i++) if (c.s[CHUNK + (i & (CHUNK - 1))] > 0) return i;
    }
    return last + 1;
  }

  /** Pins taken by users on page `index`. */
  usersAt(index: number): number { return this.chunk(index, false)?.s[CHUNK + (index & (CHUNK - 1))] ?? 0; }

  /**
   * Makes pages [first, last] pinned for one more user: pages nobody pinned yet are faulted in
   * (for write when the pages are writable) and charged to the owner. EFAULT for memory that
   * is not there or cannot be pinned (a VM_PFNMAP mmap; followPfnmap takes it by pfn), EINVAL for a file range past its end or a file that cannot be pinned, ENOMEM
   * over RLIMIT_MEMLOCK or on an injected allocation failure. On failure nothing changes.
   */
  pinRange(first: number, last: number): number {
    if (first < 0 || last >= this.npages || first > last) return -errno.EINVAL;
    if (this.pin.shouldFail()) return -errno.ENOMEM;
    // Pass 1: take a frame reference on every page nobody pins yet (nothing recorded yet).
    const fresh = scratchFor(last - first + 1);
    let n = 0;
    // A reserved pfn (followPfnmap) is kept in `fresh` as -(frame + 2): not charged, not a pin.
    let nr = 0;
    let rc = 0;
    const src = this.source;
    const fast = src.kind === "user";
    for (let i = first; i <= last;) {
      const end = this.unpinnedEnd(i, last);
      if (end === i) { i++; continue; }
      // [i, end) is pinned by nobody yet: gup_fast takes what it can without a fault, in
      // batches, and every page it stops at goes through pinOne (the fault path) alone.
      while (i < end) {
        if (fast) {
          const got = src.mm.gupFast(src.addr + i * PAGE_SIZE, end - i, fresh, n);
          n += got;
          i += got;
          if (i === end) break;
        }
        const f = this.pinOne(i);
        if (f < 0) { rc = f; break; }
        if (this.lastRsvd) { fresh[n++] = -f - 2; nr++; } else fresh[n++] = f;
        i++;
      }
      if (rc < 0) break;
    }
    if (rc === 0) rc = this.charge(n - nr);
    if (rc < 0) {
      // Every reference taken goes back through the pin batch, reserved pfns decoded first.
      for (let k = 0; k < n; k++) if (fresh[k] < 0) fresh[k] = -fresh[k] - 2;
      unpinFrames(this.pin.core, fresh, n);
      return rc;
    }
    // Pass 2: record them, and one more user on every page of the range, chunk by chunk.
    let k = 0;
    for (let i = first; i <= last;) {
      const j0 = i & (CHUNK - 1);
      const e = Math.min(CHUNK - 1, j0 + (last - i));
      k = this.pinChunk(this.chunk(i, true)!, i - j0, j0, e, fresh, k);
      i += e - j0 + 1;
    }
    if (nr > 0) {
      // Only the pinned pages go to the ledger: the reserved ones leave the list.
      let w = 0;
      for (let r = 0; r < n; r++) if (fresh[r] >= 0) fresh[w++] = fresh[r];
      this.nreserved += nr;
    }
    this.npinned += n - nr;
    this.pin.pins.notePinned(fresh, 1, n - nr);
    return 0;
  }

  /** Drops one user's pin of pages [first, last]; pages no user needs any more are released. */
  unpinRange(first: number, last: number): void {
    const gone = scratchFor(last - first + 1);
    let n = 0;
    for (let i = first; i <= last;) {
      const j0 = i & (CHUNK - 1);
      const e = Math.min(CHUNK - 1, j0 + (last - i));
      const c = this.chunk(i, false);
      if (!c) throw new Error(`iopt_pages: unpin of page ${i} that is not pinned`);
      n = this.unpinChunk(c, i - j0, j0, e, gone, n);
      if (c.pinned === 0) {
        this.dropChunk(Math.floor(i / CHUNK));
        if (chunkPool.length < CHUNK_POOL_MAX) chunkPool.push(c);
      }
      i += e - j0 + 1;
    }
    unpinFrames(this.pin.core, gone, n);
    this.uncharge(n);
    this.npinned -= n;
    this.pin.pins.notePinned(gone, -1, n);
  }

  // The per-page loops of a pin and an unpin, one chunk per call: a function this small is
  // optimised once and stays so, where a loop over a whole area inside pinRange or unpinRange
  // runs each call until on-stack replacement, and is thrown back to the interpreter when the
  // code after it meets a path the first run never took.

  /**
   * One more user on pages [j0, e] of chunk `c` (page `base + j`): a page nobody pinned takes
   * the next frame of `fresh` from `k` (a reserved pfn encoded as in pinRange). The next k.
   */
  private pinChunk(c: PinChunk, base: number, j0: number, e: number, fresh: Int32Array, k: number): number {
    const s = c.s;
    let added = 0;
    for (let j = j0; j <= e; j++) {
      if (s[CHUNK + j]++ !== 0) continue;
      let f = fresh[k++];
      if (f < 0) { f = -f - 2; (this.rsvd ??= new Set()).add(base + j); }
      s[j] = f + 1;
      added++;
    }
    c.pinned += added;
    return k;
  }

  /**
   * One user fewer on pages [j0, e] of chunk `c` (page `base + j`): the frames of pages no user
   * needs any more go to `gone` from `n` (a reserved pfn drops its reference here). The next n.
   */
  private unpinChunk(c: PinChunk, base: number, j0: number, e: number, gone: Int32Array, n: number): number {
    const s = c.s;
    for (let j = j0; j <= e; j++) {
      if (s[CHUNK + j] === 0) throw new Error(`iopt_pages: unpin of page ${base + j} that is not pinned`);
      if (--s[CHUNK + j] > 0) continue;
      if (this.rsvd?.delete(base + j)) {
        // A reserved pfn: only the emulator's frame reference goes (nothing was pinned).
        this.pin.core.x.frame_put(s[j] - 1);
        this.nreserved--;
      } else gone[n++] = s[j] - 1;
      s[j] = 0;
      c.pinned--;
    }
    return n;
  }

  /**
   * The frame behind page `i` for a CPU access through the IOAS (iopt_pages_rw_access): the
   * pinned frame, or the source's page faulted in (for write when writing). No reference.
   */
  sourceFrame(i: number, write: boolean): number {
    const pinned = this.frameAt(i);
    if (pinned >= 0) return pinned;
    const src = this.source;
    if (src.kind === "user") {
      const leaf = src.mm.faultIn(src.addr + i * PAGE_SIZE, write);
      return leaf < 0 ? -errno.EFAULT : Math.floor(leaf / PAGE_SIZE);
    }
    // iopt_pages_rw_access: no CPU access to dmabuf pages.
    if (src.kind === "dmabuf" || !src.memfd) return -errno.EINVAL;
    const f = src.memfd.frameAt(Number(src.start / PAGE) + i);
    return f < 0 ? -errno.EFAULT : f;
  }

  /** Takes one frame reference on the page behind index `i`; the frame or -errno. */
  private pinOne(i: number): number {
    const src = this.source;
    this.lastRsvd = false;
    if (src.kind === "user") {
      // A long-term pin: faulted in for write when writable, private file pages unshared;
      // EFAULT for device memory (VM_PFNMAP), which GUP cannot pin.
      const at = src.addr + i * PAGE_SIZE;
      let leaf = src.mm.gupLeaf(at, this.writable);
      if (leaf < 0 && this.followPfnmap) {
        // vaddr_get_pfns: GUP failed, so a VM_PFNMAP mapping there is walked for its pfn.
        leaf = src.mm.followPfn(at, this.writable);
        this.lastRsvd = leaf >= 0;
      }
      if (leaf < 0) return leaf;
      const f = Math.floor(leaf / PAGE_SIZE);
      // A reserved pfn keeps a frame reference too, so that a device's BAR frame stays
      // allocated while an IOMMU maps it, whatever happens to the device.
      this.pin.core.x.frame_get(f);
      return f;
    }
    // dmabuf pages are mapped from the exporter (io_pagetable), never pinned for an access.
    if (src.kind === "dmabuf" || !src.memfd) return -errno.EINVAL;
    const f = src.memfd.frameAt(Number(src.start / PAGE) + i);
    if (f < 0) return -errno.EINVAL;
    this.pin.core.x.frame_get(f);
    return f;
  }

  /** Charges `n` newly pinned pages to the owner (check-and-add in one step). */
  private charge(n: number): number {
    if (n === 0) return 0;
    const o = this.owner;
    if (this.accountMode === "user") {
      if (!this.pin.acct.tryLockUser(o.uid, n, o.memlockPages)) return -errno.ENOMEM;
    } else if (this.accountMode === "mm") {
      if (o.mm.lockedVm + n > o.memlockPages) return -errno.ENOMEM;
      o.mm.lockedVm += n;
    }
    return 0;
  }

  private uncharge(n: number): void {
    if (n === 0) return;
    if (this.accountMode === "user") this.pin.acct.unlockUser(this.owner.uid, n);
    else if (this.accountMode === "mm") this.owner.mm.lockedVm -= n;
  }

  /**
   * IOMMU_IOAS_CHANGE_PROCESS for these pages: charges the pinned pages to `to` (ENOMEM if it
   * cannot take them, nothing changed), then gives the old owner's charge back.
   */
  moveCharge(to: Process): number {
    const from = this.owner;
    this.owner = to;
    const rc = this.charge(this.npinned);
    if (rc < 0) { this.owner = from; return rc; }
    this.owner = from;
    this.uncharge(this.npinned);
    this.owner = to;
    return 0;
  }

  get isFile(): boolean { return this.source.kind === "file"; }

  /** Address of byte 0 of page 0 in its source (user VA or file offset). */
  get base(): bigint {
    return this.source.kind === "user" ? this.source.uptr : this.source.start;
  }

  get(): void { this.refs++; }

  put(): void {
    if (--this.refs > 0) return;
    // Every user unpins before it lets go of the pages; a pin left here would leak a frame.
    if (this.npinned !== 0 || this.nreserved !== 0) {
      throw new Error(`iopt_pages released with ${this.npinned + this.nreserved} pages still pinned`);
    }
    this.onRelease();
  }
}

/**
 * iopt_alloc_pages' checks: 0 or -EINVAL. `startByte` is the offset of the first byte in its
 * page; the length is limited so that the page count cannot overflow.
 */
export function checkPagesLength(length: bigint): number {
  // Past MAX_PAGES_LENGTH, a u64 is one of the last PAGE_SIZE below 2^64: a negative s64 there.
  const s = BigInt.asIntN(64, length);
  if (length === 0n || (s < 0n && s >= MINUS_PAGE)) return -errno.EINVAL;
  return 0;
}

/** Pages spanned by `length` bytes from `startByte` (below 2^52 for any u64s: exact as a number). */
export function pageCount(startByte: bigint, length: bigint): number {
  return u64Number((startByte + length + PAGE_MASK) / PAGE);
}
