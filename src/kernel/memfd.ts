// memfd_create(2): an anonymous shmem file with a page cache of frames. Each cached page holds
// one frame reference; mappings and pins take their own. Pages are charged to the commit
// limit when they enter the cache (shmem with VM_NORESERVE accounts per page), so touching a
// page past the limit faults (EFAULT at the syscall layer, SIGBUS on Linux).

import { errno } from "../uapi/errno.js";
import { S_IFREG } from "../uapi/posix.js";
import { FRAME_NONE, type Core } from "../wasm/core.js";
import type { MemAccounting } from "./accounting.js";
import { File, Mappers, type FileMapping, type FileOperations, type MmapRequest } from "./file.js";
import type { Mm } from "./mm.js";
import { PAGE_SIZE } from "./mm.js";

export class MemFd implements FileMapping {
  size = 0;
  readonly pages = new Map<number, number>(); // page index -> frame
  /** Address spaces mapping the file, with their number of VMAs that do. */
  private readonly mappers = new Mappers<Mm>();
  /** The last fd closed: the pages live on only while some VMA maps the file (vma->vm_file). */
  private closed = false;

  constructor(readonly core: Core, private readonly acct: MemAccounting, readonly name: string) {}

  /** Frame of page `pgoff`, entering it in the cache if needed; -EFAULT past EOF or when out of memory. */
  frameAt(pgoff: number): number {
    if (pgoff * PAGE_SIZE >= this.size) return -errno.EFAULT;
    let f = this.pages.get(pgoff);
    if (f === undefined) {
      if (!this.acct.commit(1)) return -errno.EFAULT;
      f = this.core.x.frame_alloc(0) >>> 0;
      if (f === FRAME_NONE) {
        this.acct.uncommit(1);
        return -errno.EFAULT;
      }
      this.pages.set(pgoff, f);
    }
    return f;
  }

  peek(pgoff: number): number { return this.pages.get(pgoff) ?? -1; }

  attach(mm: object): void { this.mappers.add(mm as Mm); }

  detach(mm: object): void {
    // The last VMA of a closed file was its last reference.
    if (this.mappers.remove(mm as Mm) && this.closed) this.truncate(0);
  }

  truncate(length: number): number {
    if (length < this.size) {
      const first = Math.ceil(length / PAGE_SIZE);
      for (const mm of this.mappers.keys()) mm.zapFilePages(this, first);
      for (const [i, f] of this.pages) {
        if (i >= first) {
          this.pages.delete(i);
          this.core.x.frame_put(f);
          this.acct.uncommit(1);
        }
      }
      // The tail of a partial last page reads as zeroes after a later extension.
      const tail = length % PAGE_SIZE;
      const last = this.pages.get(Math.floor(length / PAGE_SIZE));
      if (tail !== 0 && last !== undefined) {
        const at = this.core.poolBase + last * PAGE_SIZE;
        this.core.u8.fill(0, at + tail, at + PAGE_SIZE);
      }
    }
    this.size = length;
    return 0;
  }

  /** The last fd closed: the pages go now, or when the last mapping goes. */
  release(): void {
    this.closed = true;
    if (this.mappers.size === 0) this.truncate(0);
  }
}

export const memfdFops: FileOperations = {
  kind: "memfd",
  mmap(file: File, req: MmapRequest): FileMapping | number {
    void req;
    return file.priv as MemFd;
  },
  ftruncate(file: File, length: number): number {
    return (file.priv as MemFd).truncate(length);
  },
  stat(file: File) {
    return { mode: S_IFREG | 0o777, rdev: 0, size: (file.priv as MemFd).size };
  },
  read(file: File, buf: Uint8Array, pos: number | null): number {
    const m = file.priv as MemFd;
    const at = pos ?? file.pos;
    const n = Math.max(0, Math.min(buf.length, m.size - at));
    const u8 = m.core.u8;
    buf.fill(0, 0, n); // holes read as zeroes
    copyPages(m, at, n, (host, len, done) => buf.set(u8.subarray(host, host + len), done), false);
    if (pos === null) file.pos += n;
    return n;
  },
  write(file: File, buf: Uint8Array, pos: number | null): number {
    const m = file.priv as MemFd;
    const at = pos ?? file.pos;
    if (at + buf.length > m.size) m.truncate(at + buf.length);
    const u8 = m.core.u8;
    const rc = copyPages(m, at, buf.length, (host, len, done) => u8.set(buf.subarray(done, done + len), host), true);
    if (rc < 0) return rc;
    if (pos === null) file.pos += buf.length;
    return buf.length;
  },
  release(file: File): void {
    (file.priv as MemFd).release();
  },
};

/** Walks file bytes [at, at+n) page by page; holes read as zeroes unless `fill` enters them. */
function copyPages(m: MemFd, at: number, n: number, each: (host: number, len: number, done: number) => void, fill: boolean): number {
  const base = m.core.poolBase;
  let done = 0;
  while (done < n) {
    const p = Math.floor((at + done) / PAGE_SIZE);
    const inPage = (at + done) % PAGE_SIZE;
    const len = Math.min(PAGE_SIZE - inPage, n - done);
    const f = fill ? m.frameAt(p) : (m.pages.get(p) ?? -1);
    if (fill && f < 0) return f;
    if (f >= 0) each(base + f * PAGE_SIZE + inPage, len, done);
    done += len;
  }
  return 0;
}
