// Memory accounting: the commit limit (strict overcommit, vm.overcommit_memory=2: what Linux
// accounts is charged at mmap, so ENOMEM is deterministic; Mm.mmap says which mappings are) and the per-user locked_vm counters that RLIMIT_MEMLOCK
// is checked against (the kernel's user_struct->locked_vm). Per-mm counters live on Mm.

export class MemAccounting {
  committed = 0;
  /** uid -> pages locked (pinned) under per-user accounting. */
  readonly userLocked = new Map<number, number>();

  constructor(
    /** Pages that may be committed: the pool, less a reserve for page tables and the kernel. */
    readonly commitLimit: number,
  ) {}

  /**
   * Charges `pages`; `replacing` pages already charged to mappings this one replaces
   * (MAP_FIXED over them) count as given back for the check.
   */
  commit(pages: number, replacing = 0): boolean {
    if (this.committed - replacing + pages > this.commitLimit) return false;
    this.committed += pages;
    return true;
  }

  uncommit(pages: number): void {
    this.committed -= pages;
  }

  lockedOf(uid: number): number {
    return this.userLocked.get(uid) ?? 0;
  }

  /** Adds `pages` to the user's locked_vm if it stays within `limitPages`; the check-and-add is one step. */
  tryLockUser(uid: number, pages: number, limitPages: number): boolean {
    const cur = this.lockedOf(uid);
    if (cur + pages > limitPages) return false;
    this.userLocked.set(uid, cur + pages);
    return true;
  }

  unlockUser(uid: number, pages: number): void {
    const left = this.lockedOf(uid) - pages;
    if (left === 0) this.userLocked.delete(uid);
    else this.userLocked.set(uid, left);
  }
}
