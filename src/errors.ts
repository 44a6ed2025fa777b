// VfioError: what the typed layer throws (API.md §2). The raw layer never throws for a kernel
// error; the typed layer turns its -errno into one of these, with the object model's words.

import { errnoName } from "./uapi/errno.js";

export class VfioError extends Error {
  /** 'EBUSY' */
  readonly code: string;
  /** 16 (positive) */
  readonly errno: number;
  /**
   * What failed, as Node's errors name it: the ioctl's name for an ioctl
   * ('IOMMU_IOAS_MAP', 'VFIO_DEVICE_BIND_IOMMUFD'), else the syscall ('open', 'close', ...).
   */
  readonly syscall: string;
  /** The ioctl's name too, when the syscall was an ioctl (same as syscall). */
  readonly ioctl?: string;

  constructor(err: number, syscall: string, why: string, ioctl?: string) {
    const e = Math.abs(err);
    const code = errnoName(e);
    super(`${ioctl ?? syscall}: ${code}: ${why}`);
    this.name = "VfioError";
    this.code = code;
    this.errno = e;
    this.syscall = ioctl ?? syscall;
    if (ioctl !== undefined) this.ioctl = ioctl;
  }
}

/** Returns rc when it is not an error; otherwise throws a VfioError saying why. */
export function check(rc: number, syscall: string, why: () => string, ioctl?: string): number {
  if (rc < 0) throw new VfioError(rc, syscall, why(), ioctl);
  return rc;
}
