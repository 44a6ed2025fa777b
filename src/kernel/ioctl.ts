// The table-driven ioctl dispatcher, with both argument models of SPEC.md §3.0:
//
// iommufd ("size" model, drivers/iommu/iommufd/main.c): the first u32 of the argument is its
// size; size < min_size -> EINVAL; bytes past the kernel's struct must be zero (E2BIG); a
// shorter struct is zero-extended; the response copies min(size, sizeof) bytes back.
//
// VFIO ("argsz" model): the handler copies minsz bytes, argsz < minsz -> EINVAL, trailing bytes
// are never looked at.
//
// Handlers return 0 / a positive result / -errno; -ENOIOCTLCMD becomes ENOTTY at the syscall.

import { errno } from "../uapi/errno.js";
import type { StructLayout } from "../uapi/struct.js";
import type { File } from "./file.js";
import type { Process } from "./process.js";

const ZERO_CHECK_CHUNK = 4096;

/** An iommufd command in flight (the kernel's struct iommufd_ucmd). */
export class UCmd {
  readonly view: DataView;

  constructor(
    readonly proc: Process,
    readonly file: File,
    /** User address of the argument. */
    readonly ubuffer: number,
    /** The caller's `size`. */
    readonly userSize: number,
    /** The kernel's image of the struct: sizeof bytes, zero-extended. */
    readonly cmd: Uint8Array,
    view?: DataView,
  ) {
    this.view = view ?? new DataView(cmd.buffer, cmd.byteOffset, cmd.byteLength);
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

  /** copy_to_user for a handler (an injection point): 0 or -EFAULT. */
  copyToUser(addr: number, data: Uint8Array): number {
    if (this.shouldFail()) return -errno.EFAULT;
    return this.proc.mm.copyToUser(addr, data);
  }

  /** Copies the (updated) struct back: min(size, sizeof) bytes. 0 or -EFAULT. */
  respond(): number {
    return this.copyToUser(this.ubuffer, this.cmd.subarray(0, Math.min(this.userSize, this.cmd.length)));
  }
}

export interface IommufdIoctlOp {
  readonly cmd: number;
  readonly name: string;
  readonly layout: StructLayout;
  readonly handler: (ucmd: UCmd) => number;
}

/**
 * Reads a u32 from user memory; -EFAULT if unreadable.
 */
export function getUser32(proc: Process, addr: number): number {
  return proc.mm.readU32(addr);
}

/** check_zeroed_user: 1 if every byte of [addr, addr+len) is zero, 0 if not, -EFAULT. */
export function checkZeroedUser(proc: Process, addr: number, len: number): number {
  for (let done = 0; done < len;) {
    // Chunks end at page boundaries so that a fault is found where the kernel finds it.
    const n = Math.min(len - done, ZERO_CHECK_CHUNK - ((addr + done) % ZERO_CHECK_CHUNK));
    const b = proc.mm.copyFromUser(addr + done, n);
    if (typeof b === "number") return b;
    if (b.some((x) => x !== 0)) return 0;
    done += n;
  }
  return 1;
}

/**
 * copy_struct_from_user: the kernel's `ksize`-byte image of a user struct of `usize` bytes,
 * or -E2BIG / -EFAULT. `into`: a zeroed buffer of ksize bytes to fill instead of a new one.
 */
export function copyStructFromUser(proc: Process, addr: number, ksize: number, usize: number, into?: Uint8Array): Uint8Array | number {
  const out = into ?? new Uint8Array(ksize);
  if (usize > ksize) {
    const z = checkZeroedUser(proc, addr + ksize, usize - ksize);
    if (z <= 0) return z < 0 ? z : -errno.E2BIG;
  }
  const n = Math.min(ksize, usize);
  const b = proc.mm.copyFromUser(addr, n);
  if (typeof b === "number") return b;
  out.set(b);
  return out;
}

/** An iommufd-model table: ops indexed by nr; numbers below/above it go to `fallback`. */
export class IommufdIoctlTable {
  private readonly byNr = new Map<number, IommufdIoctlOp>();
  /** One struct image per op, reused by every call (the control plane runs one ioctl at a time). */
  private readonly images = new Map<number, { bytes: Uint8Array; view: DataView }>();
  private readonly minNr: number;
  private maxNr: number;

  constructor(base: number, ops: IommufdIoctlOp[]) {
    this.minNr = base;
    this.maxNr = base - 1;
    for (const op of ops) this.add(op);
  }

  add(op: IommufdIoctlOp): void {
    const nr = op.cmd & 0xff;
    this.byNr.set(nr, op);
    this.maxNr = Math.max(this.maxNr, nr);
  }

  op(cmd: number): IommufdIoctlOp | undefined {
    const op = this.byNr.get(cmd & 0xff);
    return op && op.cmd === cmd ? op : undefined;
  }

  dispatch(proc: Process, file: File, cmd: number, arg: number,
    fallback: (cmd: number, arg: number) => number): number {
    const nr = cmd & 0xff;
    if (nr < this.minNr || nr > this.maxNr) return fallback(cmd, arg);
    // The size is read before the command is matched: a bad pointer is EFAULT even then.
    const size = getUser32(proc, arg);
    if (size < 0) return size;
    const op = this.byNr.get(nr);
    // The whole 32-bit value must match: stray direction or size bits are a different command.
    if (!op || op.cmd !== cmd) return -errno.ENOTTY;
    if (size < op.layout.minSize) return -errno.EINVAL;
    if (proc.kernel.shouldFail()) return -errno.EFAULT;
    let img = this.images.get(nr);
    if (!img) {
      const bytes = new Uint8Array(op.layout.size);
      img = { bytes, view: new DataView(bytes.buffer) };
      this.images.set(nr, img);
    }
    img.bytes.fill(0);
    const image = copyStructFromUser(proc, arg, op.layout.size, size, img.bytes);
    if (typeof image === "number") return image;
    return op.handler(new UCmd(proc, file, arg, size, image, img.view));
  }
}

/**
 * VFIO-model copy-in: `layout.minSize` bytes from `arg` and the argsz check. Returns the
 * image (a DataView over minSize bytes, room for sizeof) and argsz, or -EFAULT / -EINVAL.
 */
export function vfioCopyIn(proc: Process, arg: number, layout: StructLayout): { view: DataView; bytes: Uint8Array; argsz: number } | number {
  const b = proc.mm.copyFromUser(arg, layout.minSize);
  if (typeof b === "number") return b;
  const bytes = new Uint8Array(layout.size);
  bytes.set(b);
  const view = new DataView(bytes.buffer);
  const argsz = view.getUint32(0, true);
  if (argsz < layout.minSize) return -errno.EINVAL;
  return { view, bytes, argsz };
}
