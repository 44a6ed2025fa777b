// iopt_pages (drivers/iommu/iommufd/pages.c): the memory behind one or more areas — a range of
// a process's address space or of a memfd — shared by every area COPY makes from it, with the
// accounting mode chosen when it was created. Pinning comes with the users that need pages
// (domains and accesses); until then nothing is read, so a bad user VA is not noticed.

import { errno } from "../uapi/errno.js";
import type { Mm } from "../kernel/mm.js";
import type { MemFd } from "../kernel/memfd.js";
import type { Process } from "../kernel/process.js";
import type { File } from "../kernel/file.js";
import { PAGE_SIZE, ULONG_MAX } from "./iova.js";

/** enum iopt_pages_account_mode. */
export type AccountMode = "none" | "user" | "mm";

export type PagesSource =
  | { kind: "user"; mm: Mm; /** page-aligned start */ uptr: bigint }
  | { kind: "file"; file: File; /** null: not shmem, never pinnable */ memfd: MemFd | null; /** page-aligned file offset */ start: bigint };

export class IoptPages {
  /** One per area and per in-flight COPY list entry that uses these pages (the kref). */
  refs = 1;
  accountMode: AccountMode;
  /** The task charged for pins (source_task / source_user); CHANGE_PROCESS moves it. */
  owner: Process;

  constructor(
    readonly source: PagesSource,
    /** Pages spanned, counted from the page-aligned start. */
    readonly npages: number,
    readonly writable: boolean,
    owner: Process,
    private readonly onRelease: () => void,
  ) {
    this.owner = owner;
    this.accountMode = owner.capIpcLock ? "none" : "user";
  }

  get isFile(): boolean { return this.source.kind === "file"; }

  /** Address of byte 0 of page 0 in its source (user VA or file offset). */
  get base(): bigint {
    return this.source.kind === "user" ? this.source.uptr : this.source.start;
  }

  get(): void { this.refs++; }

  put(): void {
    if (--this.refs > 0) return;
    this.onRelease();
  }
}

/**
 * iopt_alloc_pages' checks: 0 or -EINVAL. `startByte` is the offset of the first byte in its
 * page; the length is limited so that the page count cannot overflow.
 */
export function checkPagesLength(length: bigint): number {
  if (length === 0n || length > ULONG_MAX - BigInt(PAGE_SIZE)) return -errno.EINVAL;
  return 0;
}

export function pageCount(startByte: bigint, length: bigint): number {
  return Number((startByte + length + BigInt(PAGE_SIZE) - 1n) / BigInt(PAGE_SIZE));
}
