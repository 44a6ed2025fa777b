// Linux errno values (x86_64 / asm-generic numbering). Positive, as in the kernel headers; the
// raw syscall layer returns them negated.

export const errno = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9,
  ECHILD: 10, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, ENOTBLK: 15, EBUSY: 16, EEXIST: 17,
  EXDEV: 18, ENODEV: 19, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24,
  ENOTTY: 25, ETXTBSY: 26, EFBIG: 27, ENOSPC: 28, ESPIPE: 29, EROFS: 30, EMLINK: 31, EPIPE: 32,
  EDOM: 33, ERANGE: 34, EDEADLK: 35, ENAMETOOLONG: 36, ENOLCK: 37, ENOSYS: 38, ENOTEMPTY: 39,
  ELOOP: 40, EBADE: 52, EOVERFLOW: 75, EBADFD: 77, EMSGSIZE: 90, EOPNOTSUPP: 95, EADDRINUSE: 98,
  ETIMEDOUT: 110,
} as const;

export type ErrnoName = keyof typeof errno;

const names = new Map<number, ErrnoName>();
for (const [k, v] of Object.entries(errno) as [ErrnoName, number][]) names.set(v, k);

/** The kernel name of a positive or negated errno value ("EINVAL"), or "E<n>" if unknown. */
export function errnoName(e: number): string {
  return names.get(Math.abs(e)) ?? `E${Math.abs(e)}`;
}

/** Kernel-internal: the VFS turns it into ENOTTY before userspace sees it. */
export const ENOIOCTLCMD = 515;
