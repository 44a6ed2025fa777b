// The user-copy helpers of both ioctl argument models of SPEC.md §3.0:
//
// iommufd ("size" model): copy_struct_from_user and check_zeroed_user; the table that drives
// them is iommufd's own (src/iommufd/main.ts, as in drivers/iommu/iommufd/main.c).
//
// VFIO ("argsz" model): the handler copies minsz bytes, argsz < minsz -> EINVAL, trailing bytes
// are never looked at.
//
// Handlers return 0 / a positive result / -errno; -ENOIOCTLCMD becomes ENOTTY at the syscall.

import { errno } from "../uapi/errno.js";
import { getField, type StructLayout } from "../uapi/struct.js";
import type { Process } from "./process.js";

const ZERO_CHECK_CHUNK = 4096;

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
 * or -E2BIG / -EFAULT. `into`: a buffer of ksize bytes to fill instead of a new one, whatever
 * it held: the bytes past the user's are zeroed (`intoWords`: a Uint32Array over its bytes,
 * for a word-by-word copy).
 */
export function copyStructFromUser(proc: Process, addr: number, ksize: number, usize: number, into?: Uint8Array,
  intoWords?: Uint32Array): Uint8Array | number {
  const out = into ?? new Uint8Array(ksize);
  if (usize > ksize) {
    const z = checkZeroedUser(proc, addr + ksize, usize - ksize);
    if (z <= 0) return z < 0 ? z : -errno.E2BIG;
  }
  const n = Math.min(ksize, usize);
  const rc = proc.mm.copyFromUserInto(addr, out, n, intoWords);
  if (rc < 0) return rc;
  if (into && n < ksize) out.fill(0, n);
  return out;
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
  const argsz = getField(view, layout.fields.argsz); // every VFIO struct starts with argsz
  if (argsz < layout.minSize) return -errno.EINVAL;
  return { view, bytes, argsz };
}
