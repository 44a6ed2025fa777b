// POSIX / Linux x86_64 constants the raw syscall layer takes and returns (asm-generic and
// x86 values; octal where the kernel headers use octal).

// open(2) flags (asm-generic/fcntl.h; x86_64 uses the generic values)
export const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_ACCMODE = 3;
export const O_CREAT = 0o100, O_EXCL = 0o200, O_NOCTTY = 0o400, O_TRUNC = 0o1000, O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000, O_DSYNC = 0o10000, O_DIRECT = 0o40000;
export const O_DIRECTORY = 0o200000, O_NOFOLLOW = 0o400000, O_NOATIME = 0o1000000;
export const O_CLOEXEC = 0o2000000, O_PATH = 0o10000000;

// mmap(2) protections and flags (asm-generic/mman-common.h, x86 mman.h)
export const PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;

export const MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_SHARED_VALIDATE = 0x03, MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20, MAP_32BIT = 0x40;
export const MAP_GROWSDOWN = 0x100, MAP_DENYWRITE = 0x800, MAP_EXECUTABLE = 0x1000;
export const MAP_LOCKED = 0x2000, MAP_NORESERVE = 0x4000, MAP_POPULATE = 0x8000, MAP_NONBLOCK = 0x10000;
export const MAP_STACK = 0x20000, MAP_HUGETLB = 0x40000, MAP_SYNC = 0x80000, MAP_FIXED_NOREPLACE = 0x100000;
export const MAP_HUGE_SHIFT = 26, MAP_HUGE_MASK = 0x3f;
export const MAP_HUGE_2MB = 21 << MAP_HUGE_SHIFT, MAP_HUGE_1GB = 30 << MAP_HUGE_SHIFT;

// eventfd(2), memfd_create(2)
export const EFD_SEMAPHORE = 1, EFD_CLOEXEC = 0o2000000, EFD_NONBLOCK = 0o4000;
export const MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2, MFD_HUGETLB = 4;
export const MFD_HUGE_SHIFT = MAP_HUGE_SHIFT, MFD_HUGE_2MB = MAP_HUGE_2MB, MFD_HUGE_1GB = MAP_HUGE_1GB;

// fcntl(2)
export const F_DUPFD = 0, F_GETFD = 1, F_SETFD = 2, F_GETFL = 3, F_SETFL = 4, F_DUPFD_CLOEXEC = 1030;
export const F_ADD_SEALS = 1033, F_GET_SEALS = 1034;
export const F_SEAL_SEAL = 0x1, F_SEAL_SHRINK = 0x2, F_SEAL_GROW = 0x4, F_SEAL_WRITE = 0x8, F_SEAL_FUTURE_WRITE = 0x10;
export const FD_CLOEXEC = 1;

// poll(2) (asm-generic/poll.h)
export const POLLIN = 0x1, POLLPRI = 0x2, POLLOUT = 0x4, POLLERR = 0x8, POLLHUP = 0x10, POLLNVAL = 0x20;
export const POLLRDNORM = 0x40, POLLRDBAND = 0x80, POLLWRNORM = 0x100, POLLWRBAND = 0x200;

// stat(2) file types
export const S_IFMT = 0o170000, S_IFSOCK = 0o140000, S_IFLNK = 0o120000, S_IFREG = 0o100000;
export const S_IFBLK = 0o060000, S_IFDIR = 0o040000, S_IFCHR = 0o020000, S_IFIFO = 0o010000;
export const S_ISCHR = (m: number): boolean => (m & S_IFMT) === S_IFCHR;
export const S_ISDIR = (m: number): boolean => (m & S_IFMT) === S_IFDIR;
export const S_ISREG = (m: number): boolean => (m & S_IFMT) === S_IFREG;
export const S_ISLNK = (m: number): boolean => (m & S_IFMT) === S_IFLNK;

// dev_t, with the glibc encoding (sys/sysmacros.h):
//   bits 0..7 minor[0..7], 8..19 major[0..11], 20..43 minor[8..31], 44..63 major[12..31].
// Linux majors have 12 bits and minors 20, so real device numbers fit in the low 32 bits (the
// kernel's new_encode_dev); larger values are still encoded exactly up to 2^53.

const TWO32 = 0x1_0000_0000;

/** include/uapi/linux/major.h: the misc character devices (/dev/iommu, /dev/vfio/vfio). */
export const MISC_MAJOR = 10;

/** The dev_t of (major, minor). */
export function makedev(major: number, minor: number): number {
  const lo = ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xfff00) << 12)) >>> 0;
  const hi = ((major & 0xfffff000) | ((minor >>> 20) & 0xfff)) >>> 0;
  return hi * TWO32 + lo;
}

/** The major number of a dev_t. */
export function major(dev: number): number {
  const lo = dev % TWO32 >>> 0, hi = Math.floor(dev / TWO32) >>> 0;
  return (((lo >>> 8) & 0xfff) | (hi & 0xfffff000)) >>> 0;
}

/** The minor number of a dev_t. */
export function minor(dev: number): number {
  const lo = dev % TWO32 >>> 0, hi = Math.floor(dev / TWO32) >>> 0;
  return ((lo & 0xff) | ((lo >>> 12) & 0xfff00) | ((hi & 0xfff) << 20)) >>> 0;
}
