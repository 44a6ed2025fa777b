// A process: credentials and limits, an fd table, an address space, and the raw syscall
// surface of API.md §1. Every call returns >= 0 or -errno and throws only for a caller's JS
// mistake (a TypeError/RangeError), never for an error the kernel would return.

import { errno, errnoName, ENOIOCTLCMD } from "../uapi/errno.js";
import {
  F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_GETFL, F_SETFD, F_SETFL, FD_CLOEXEC, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE,
  MFD_ALLOW_SEALING, MFD_CLOEXEC, MFD_HUGETLB, O_ACCMODE, O_APPEND,
  O_CLOEXEC, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, PROT_READ, PROT_WRITE,
  S_IFREG, O_DIRECTORY, EFD_CLOEXEC,
} from "../uapi/posix.js";
import { ioctlName } from "../uapi/ioctl.js";
import { EFD_VALID_FLAGS, EventFd, eventfdFileFlags, eventfdFops } from "./eventfd.js";
import { File, type FileOperations, type StatResult } from "./file.js";
import type { KernelCore } from "./kernel.js";
import { MemFd, memfdFops } from "./memfd.js";
import { Mm, PAGE_SIZE } from "./mm.js";
import { hex } from "./trace.js";

export const NR_OPEN = 1024;
/** The ioctlBuf scratch area: mapped once, charged to nothing. */
export const SCRATCH_BASE = 0x7ffff7f00000;
export const SCRATCH_BYTES = 0x100000;

export interface ProcessOptions {
  uid?: number;
  memlockBytes?: number;
  capIpcLock?: boolean;
  capSysRawio?: boolean;
  capSysResource?: boolean;
}

export interface FileRef { slot: number; gen: number }

export interface PollFd { fd: number; events: number; revents?: number }

const u64Input = (v: number | bigint, what: string): number => {
  if (typeof v === "bigint") {
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) return -1;
    return Number(v);
  }
  if (!Number.isInteger(v)) throw new TypeError(`${what} must be an integer`);
  return v;
};

function checkBuf(buf: unknown, what: string): asserts buf is Uint8Array {
  if (!(buf instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
}

const dirOps: FileOperations = { kind: "dir" };

export class Process {
  readonly pid: number;
  readonly uid: number;
  readonly memlockBytes: number;
  readonly capIpcLock: boolean;
  readonly capSysRawio: boolean;
  readonly capSysResource: boolean;
  private readonly fds: (File | undefined)[] = [];
  private readonly cloexec = new Set<number>();
  private scratchMapped = false;
  /** Bytes of the scratch area that may be non-zero (from the start). */
  private scratchDirty = 0;
  alive = true;

  constructor(readonly kernel: KernelCore, pid: number, opts: ProcessOptions, readonly mm: Mm) {
    this.pid = pid;
    this.uid = opts.uid ?? 1000;
    this.memlockBytes = opts.memlockBytes ?? 8 * 1024 * 1024;
    this.capIpcLock = opts.capIpcLock ?? false;
    this.capSysRawio = opts.capSysRawio ?? false;
    this.capSysResource = opts.capSysResource ?? false;
  }

  /** RLIMIT_MEMLOCK in pages (Infinity allowed). */
  get memlockPages(): number {
    return this.memlockBytes === Infinity ? Infinity : Math.floor(this.memlockBytes / PAGE_SIZE);
  }

  private trace(name: string, fields: Record<string, string | number | bigint>, ret: number | string): void {
    if (!this.kernel.trace.on) return;
    const r = typeof ret === "number" && ret < 0 ? `-${errnoName(ret)}` : typeof ret === "number" ? String(ret) : ret;
    this.kernel.trace.emit(name, { pid: this.pid, ...fields, ret: r });
  }

  // ---- the fd table ---------------------------------------------------------------------

  /** The file behind `fd`, or undefined. */
  file(fd: number): File | undefined {
    return Number.isInteger(fd) && fd >= 0 ? this.fds[fd] : undefined;
  }

  /** The lowest free fd, or -EMFILE. */
  private lowestFreeFd(from = 0): number {
    for (let fd = from; fd < NR_OPEN; fd++) if (!this.fds[fd]) return fd;
    return -errno.EMFILE;
  }

  /** Installs a new file at the lowest free fd (the kernel's fd_install); -EMFILE when full. */
  installFile(file: File, cloexec = false): number {
    const fd = this.lowestFreeFd();
    if (fd < 0) return fd;
    this.fds[fd] = file;
    if (cloexec) this.cloexec.add(fd);
    return fd;
  }

  /** Takes a new file reference for an in-kernel holder (the kernel's fget). */
  fget(fd: number): File | undefined {
    const f = this.file(fd);
    if (f) f.refs++;
    return f;
  }

  open(path: string, flags = O_RDWR): number {
    if (typeof path !== "string") throw new TypeError("path must be a string");
    const rc = this.doOpen(path, flags);
    if (this.kernel.trace.on) this.trace("sys_open", { path, flags: hex(flags) }, rc);
    return rc;
  }

  private doOpen(path: string, flags: number): number {
    const fd = this.lowestFreeFd();
    if (fd < 0) return fd;
    const r = this.kernel.vfs.resolve(path);
    if (typeof r === "number") return r;
    let file: File | number;
    const node = r.node;
    if ((flags & O_DIRECTORY) && node.kind !== "dir") return -errno.ENOTDIR;
    switch (node.kind) {
      case "chr":
        file = node.open(this, flags, r.path);
        break;
      case "dir":
        if ((flags & O_ACCMODE) !== O_RDONLY) return -errno.EISDIR;
        file = this.kernel.newFile(dirOps, flags, null, r.path, this.kernel.vfs.stat(node));
        break;
      case "attr": {
        if ((flags & O_ACCMODE) !== O_RDONLY) return -errno.EACCES;
        const text = new TextEncoder().encode(node.read());
        file = this.kernel.newFile(attrOps(text), flags, null, r.path, this.kernel.vfs.stat(node));
        break;
      }
      default:
        return -errno.ENOENT;
    }
    if (typeof file === "number") return file;
    this.fds[fd] = file;
    if (flags & O_CLOEXEC) this.cloexec.add(fd);
    return fd;
  }

  close(fd: number): number {
    const f = this.file(fd);
    let rc = 0;
    if (!f) rc = -errno.EBADF;
    else {
      this.fds[fd] = undefined;
      this.cloexec.delete(fd);
      this.kernel.fput(f);
    }
    this.trace("sys_close", { fd }, rc);
    return rc;
  }

  ioctl(fd: number, request: number, arg: number | bigint = 0): number {
    const cmd = request >>> 0;
    if (typeof arg === "number" && !Number.isInteger(arg)) throw new TypeError("arg must be an integer");
    // The kernel passes arg through as an unsigned long and leaves it to the driver: a value
    // past 2^53 reaches it rounded (still far outside the user range, so it faults as a
    // pointer, and equals no small value), instead of failing before the driver is asked.
    const a = typeof arg === "bigint" || arg < 0 ? Number(BigInt.asUintN(64, BigInt(arg))) : arg;
    const f = this.file(fd);
    let rc: number;
    if (!f) rc = -errno.EBADF;
    else if (!f.ops.ioctl) rc = -errno.ENOTTY;
    else {
      rc = f.ops.ioctl(f, cmd, a, this);
      if (rc === -ENOIOCTLCMD) rc = -errno.ENOTTY;
    }
    if (this.kernel.trace.on) this.trace("sys_ioctl", { fd, cmd: ioctlName(cmd, f?.ops.kind), arg: hex(BigInt.asUintN(64, BigInt(arg))) }, rc);
    return rc;
  }

  /** Copies `arg` into the scratch area, calls ioctl with its address, and copies it back. */
  ioctlBuf(fd: number, request: number, arg: Uint8Array): number {
    checkBuf(arg, "arg");
    if (arg.length > SCRATCH_BYTES) throw new RangeError(`ioctlBuf: argument larger than ${SCRATCH_BYTES} bytes`);
    if (!this.scratchMapped) {
      const at = this.mm.mmap(SCRATCH_BASE, SCRATCH_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, null, 0, true);
      // Out of memory for the area (fault injection counts it too): the call fails as a copy
      // of the argument would, with nothing done.
      if (at < 0) return at;
      if (at !== SCRATCH_BASE) throw new Error("vfio-emu: cannot map the ioctlBuf scratch area");
      this.scratchMapped = true;
    }
    // Bytes past `arg` read as zeroes, whatever an earlier call left there (the handler may
    // have written back more, or the earlier argument was longer): results never depend on
    // the history of the scratch area.
    if (this.scratchDirty > arg.length) {
      const rc = this.mm.copyToUser(SCRATCH_BASE + arg.length, new Uint8Array(this.scratchDirty - arg.length));
      if (rc < 0) return rc;
    }
    // Populating the area's pages can fail like any page fault (no frame left, or an injected
    // failure): the ioctl is not issued and the caller gets the copy's errno.
    const crc = this.mm.copyToUser(SCRATCH_BASE, arg);
    if (crc < 0) return crc;
    const rc = this.ioctl(fd, request, SCRATCH_BASE);
    // A handler writes back at most what the argument's own size field claims, which may be
    // more than arg.length: assume the worst up to that size (bounded by the area).
    const claimed = arg.length >= 4 ? new DataView(arg.buffer, arg.byteOffset, 4).getUint32(0, true) : 0;
    this.scratchDirty = Math.min(SCRATCH_BYTES, Math.max(arg.length, claimed));
    const back = this.mm.copyFromUser(SCRATCH_BASE, arg.length);
    if (typeof back !== "number") arg.set(back);
    return rc;
  }

  private rw(name: string, fd: number, buf: Uint8Array, pos: number | null, write: boolean): number {
    checkBuf(buf, "buf");
    const f = this.file(fd);
    let rc: number;
    const acc = f ? f.flags & O_ACCMODE : 0;
    if (!f || (write ? acc === O_RDONLY : acc === O_WRONLY)) rc = -errno.EBADF;
    else if (f.ops.kind === "dir") rc = -errno.EISDIR;
    else if (pos !== null && pos < 0) rc = -errno.EINVAL;
    else {
      const op = write ? f.ops.write : f.ops.read;
      rc = op ? op(f, buf, pos, this) : -errno.EINVAL;
    }
    if (this.kernel.trace.on) {
      const fields: Record<string, number | string> = { fd, len: hex(buf.length) };
      if (pos !== null) fields.off = hex(pos);
      this.trace(name, fields, rc);
    }
    return rc;
  }

  read(fd: number, buf: Uint8Array): number { return this.rw("sys_read", fd, buf, null, false); }
  write(fd: number, buf: Uint8Array): number { return this.rw("sys_write", fd, buf, null, true); }
  pread(fd: number, buf: Uint8Array, offset: number | bigint): number {
    const o = u64Input(offset, "offset");
    return this.rw("sys_pread", fd, buf, o, false);
  }
  pwrite(fd: number, buf: Uint8Array, offset: number | bigint): number {
    const o = u64Input(offset, "offset");
    return this.rw("sys_pwrite", fd, buf, o, true);
  }

  mmap(addr: number, length: number, prot: number, flags: number, fd: number, offset: number | bigint): number {
    const off = u64Input(offset, "offset");
    const rc = this.doMmap(addr, length, prot, flags, fd, off);
    if (this.kernel.trace.on) this.trace("sys_mmap", { addr: hex(addr), len: hex(length), prot: hex(prot), flags: hex(flags), fd, off: hex(BigInt.asUintN(64, BigInt(offset))) },
      rc < 0 ? rc : hex(rc));
    return rc;
  }

  private doMmap(addr: number, length: number, prot: number, flags: number, fd: number, off: number): number {
    if (off < 0 || off % PAGE_SIZE !== 0) return -errno.EINVAL;
    if (flags & MAP_ANONYMOUS) return this.mm.mmap(addr, length, prot, flags, null, 0);
    const f = this.file(fd);
    if (!f) return -errno.EBADF;
    const acc = f.flags & O_ACCMODE;
    return this.mm.mmap(addr, length, prot, flags, {
      // do_mmap's file checks: a shared writable mapping needs a writable file, every mapping a
      // readable one, and the file must support mmap.
      check: (shared) => {
        if (shared && (prot & PROT_WRITE) && acc !== O_RDWR) return -errno.EACCES;
        if (acc === O_WRONLY) return -errno.EACCES;
        return f.ops.mmap ? 0 : -errno.ENODEV;
      },
      map: (len, shared) => f.ops.mmap!(f, { length: len, pgoff: off / PAGE_SIZE, prot, shared }, this),
      file: { get: () => { f.refs++; }, put: () => this.kernel.fput(f) },
    }, off);
  }

  munmap(addr: number, length: number): number {
    const rc = this.mm.munmap(addr, length);
    if (this.kernel.trace.on) this.trace("sys_munmap", { addr: hex(addr), len: hex(length) }, rc);
    return rc;
  }

  readMemory(addr: number, out: Uint8Array): number {
    checkBuf(out, "out");
    return this.mm.copyFromUserInto(addr, out, out.length);
  }

  writeMemory(addr: number, data: Uint8Array): number {
    checkBuf(data, "data");
    return this.mm.copyToUser(addr, data);
  }

  memfd_create(name: string, flags = 0): number {
    let rc: number;
    if (flags & ~(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB) || new TextEncoder().encode(name).length > 249) rc = -errno.EINVAL;
    else if (flags & MFD_HUGETLB) rc = -errno.EINVAL; // no hugetlbfs pool for files here
    else {
      const m = new MemFd(this.kernel.core, this.kernel.acct, name);
      const file = this.kernel.newFile(memfdFops, O_RDWR, m, `/memfd:${name} (deleted)`, { mode: S_IFREG | 0o777, rdev: 0, size: 0 });
      rc = typeof file === "number" ? file : this.installFile(file, (flags & MFD_CLOEXEC) !== 0);
      if (rc < 0 && typeof file !== "number") this.kernel.fput(file);
    }
    this.trace("sys_memfd_create", { name, flags: hex(flags) }, rc);
    return rc;
  }

  ftruncate(fd: number, length: number | bigint): number {
    const len = typeof length === "bigint" ? (length < 0n ? -1 : Number(length)) : length;
    const f = this.file(fd);
    let rc: number;
    if (len < 0) rc = -errno.EINVAL;
    else if (!f) rc = -errno.EBADF;
    else if (!f.ops.ftruncate || (f.flags & O_ACCMODE) === O_RDONLY) rc = -errno.EINVAL;
    else rc = f.ops.ftruncate(f, len);
    if (this.kernel.trace.on) this.trace("sys_ftruncate", { fd, len: hex(Math.max(len, 0)) }, rc);
    return rc;
  }

  eventfd(initval = 0, flags = 0): number {
    let rc: number;
    if (flags & ~EFD_VALID_FLAGS || !Number.isInteger(initval) || initval < 0 || initval > 0xffffffff) rc = -errno.EINVAL;
    else {
      const slot = this.kernel.eventfdSlots.alloc();
      if (slot < 0) rc = -errno.ENFILE;
      else {
        const e = new EventFd(this.kernel.core, slot, (flags & 1) !== 0, this.kernel.eventfdSlots);
        Atomics.store(this.kernel.core.u64, e.index, BigInt(initval));
        const file = this.kernel.newFile(eventfdFops, eventfdFileFlags(flags), e, "anon_inode:[eventfd]", { mode: 0o600, rdev: 0, size: 0 });
        if (typeof file === "number") {
          e.release();
          rc = file;
        } else {
          rc = this.installFile(file, (flags & EFD_CLOEXEC) !== 0);
          if (rc < 0) this.kernel.fput(file);
        }
      }
    }
    this.trace("sys_eventfd2", { initval, flags: hex(flags) }, rc);
    return rc;
  }

  fcntl(fd: number, cmd: number, arg = 0): number {
    const f = this.file(fd);
    if (!f) return -errno.EBADF;
    switch (cmd) {
      case F_GETFL: return f.flags;
      case F_SETFL: {
        const settable = O_APPEND | O_NONBLOCK;
        f.flags = (f.flags & ~settable) | (arg & settable);
        return 0;
      }
      case F_GETFD: return this.cloexec.has(fd) ? FD_CLOEXEC : 0;
      case F_SETFD:
        if (arg & FD_CLOEXEC) this.cloexec.add(fd); else this.cloexec.delete(fd);
        return 0;
      case F_DUPFD:
      case F_DUPFD_CLOEXEC: {
        if (arg < 0 || arg >= NR_OPEN) return -errno.EINVAL;
        const nfd = this.lowestFreeFd(arg);
        if (nfd < 0) return nfd;
        f.refs++;
        this.fds[nfd] = f;
        if (cmd === F_DUPFD_CLOEXEC) this.cloexec.add(nfd);
        return nfd;
      }
      default: return -errno.EINVAL;
    }
  }

  poll(fds: PollFd[], timeoutMs: number): number {
    const core = this.kernel.core;
    const deadline = timeoutMs < 0 ? Infinity : Date.now() + timeoutMs;
    for (;;) {
      const seq = core.pollSeq();
      let ready = 0;
      for (const p of fds) {
        if (p.fd < 0) { p.revents = 0; continue; }
        const f = this.file(p.fd);
        let mask: number;
        if (!f) mask = POLLNVAL;
        else mask = (f.ops.poll ? f.ops.poll(f) : POLLIN | POLLOUT) & (p.events | POLLERR | POLLHUP);
        p.revents = mask;
        if (mask) ready++;
      }
      const left = deadline - Date.now();
      if (ready > 0 || left <= 0) return ready;
      if (!core.pollWait(seq, left === Infinity ? -1 : left)) return ready;
    }
  }

  private statOf(path: string, follow: boolean): StatResult | number {
    const r = this.kernel.vfs.resolve(path, follow);
    return typeof r === "number" ? r : this.kernel.vfs.stat(r.node);
  }

  stat(path: string): StatResult | number { return this.statOf(path, true); }

  fstat(fd: number): StatResult | number {
    const f = this.file(fd);
    if (!f) return -errno.EBADF;
    return f.ops.stat ? f.ops.stat(f) : { ...f.statInfo };
  }

  realpath(path: string): string | number {
    const r = this.kernel.vfs.resolve(path);
    return typeof r === "number" ? r : r.path;
  }

  readdir(path: string): string[] | number {
    const r = this.kernel.vfs.resolve(path);
    if (typeof r === "number") return r;
    if (r.node.kind !== "dir") return -errno.ENOTDIR;
    return [...r.node.children.keys()].sort();
  }

  readlink(path: string): string | number {
    const r = this.kernel.vfs.resolve(path, false);
    if (typeof r === "number") return r;
    return r.node.kind === "link" ? r.node.target : -errno.EINVAL;
  }

  readFile(path: string): string | number {
    const r = this.kernel.vfs.resolve(path);
    if (typeof r === "number") return r;
    if (r.node.kind === "dir") return -errno.EISDIR;
    if (r.node.kind !== "attr") return -errno.EINVAL;
    return r.node.read();
  }

  fileRef(fd: number): FileRef | number {
    const f = this.file(fd);
    if (!f) return -errno.EBADF;
    return { slot: f.gateSlot, gen: f.gateGen };
  }

  /**
   * fork(2): a child process with the same credentials, limits and capabilities, a copy of the
   * fd table (each open file gains a reference, FD_CLOEXEC flags included: they matter only at
   * exec) and a copy of the address space (Mm.forkInto: shared mappings share their pages,
   * private ones are copied at once rather than copy-on-write). The ioctlBuf scratch area is not
   * copied: the child maps its own the first time it needs one. Returns the child, or -ENOMEM
   * (nothing is left of the child then).
   */
  fork(): Process | number {
    let rc: Process | number;
    if (!this.alive) rc = -errno.ESRCH;
    else {
      // copy_process: no frame for the child's page table (mm_alloc) is ENOMEM, nothing created.
      const child = this.kernel.allocProcess({
        uid: this.uid, memlockBytes: this.memlockBytes, capIpcLock: this.capIpcLock,
        capSysRawio: this.capSysRawio, capSysResource: this.capSysResource,
      });
      const mrc = typeof child === "number" ? child : this.kernel.shouldFail() ? -errno.ENOMEM : this.mm.forkInto(child.mm);
      if (mrc < 0) {
        if (typeof child !== "number") child.kill();
        rc = mrc;
      } else {
        const c = child as Process;
        for (let fd = 0; fd < this.fds.length; fd++) {
          const f = this.fds[fd];
          if (!f) continue;
          f.refs++;
          c.fds[fd] = f;
          if (this.cloexec.has(fd)) c.cloexec.add(fd);
        }
        rc = c;
      }
    }
    if (this.kernel.trace.on) this.trace("sys_fork", {}, typeof rc === "number" ? rc : rc.pid);
    return rc;
  }

  /** Closes every fd and tears the address space down. */
  kill(): void {
    if (!this.alive) return;
    for (let fd = 0; fd < this.fds.length; fd++) if (this.fds[fd]) this.close(fd);
    this.mm.destroy();
    this.alive = false;
    this.kernel.processExited(this);
  }
}

function attrOps(text: Uint8Array): FileOperations {
  return {
    kind: "sysfs",
    read(file: File, buf: Uint8Array, pos: number | null): number {
      const at = pos ?? file.pos;
      const n = Math.max(0, Math.min(buf.length, text.length - at));
      buf.set(text.subarray(at, at + n));
      if (pos === null) file.pos += n;
      return n;
    },
  };
}
