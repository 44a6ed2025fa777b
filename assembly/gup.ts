// gup_fast for long-term pins (the kernel's gup_fast_pgd_range): walks a process's page table
// (radix.ts) over a run of pages and takes a frame reference on each page whose leaf needs no
// decision that only the VMA can make, without a call from JS per page. It stops at the first
// page that does need one; the caller takes that page through the slow path (the fault
// handler and its VMA checks, src/kernel/mm.ts gupLeaf) and resumes after it.
//
// A leaf is taken when it is present, writable and not PTE_SPECIAL. Writable because a
// long-term pin of a read-only leaf may have to unshare it first (a private file mapping's
// page-cache page, gup_must_unshare), or fail (a write pin of a read-only mapping); not
// special because device memory (VM_PFNMAP) has no page to pin. A writable leaf is always in a
// writable VMA and is never a shared cache page (mm.ts installs those read-only).
//
// Owned by the kernel thread: the results go to GUP_BATCH, which only it uses; gup_unpin takes
// a batch of frames back the same way.

import { GUP_BATCH, GUP_BATCH_PAGES, PAGE_SHIFT } from "./layout";
import { frame_get, frame_put } from "./frames";
import { PTE_P, PTE_W, PTE_PS, PTE_SPECIAL, PTE_ADDR, entryAddr, indexAt } from "./radix";

const PINNABLE: u32 = PTE_P | PTE_W | PTE_SPECIAL;

/**
 * Pins up to `npages` (at most GUP_BATCH_PAGES) consecutive 4 KiB pages from the page-aligned
 * user address `vaF` in the address space rooted at `root`: one frame reference each (released
 * with frame_put), the frame numbers stored in order as u32 at GUP_BATCH. Returns how many
 * pages it pinned; page number <return value> needs the slow path (or is past npages).
 */
export function gup_fast_pin(root: u32, vaF: f64, npages: u32): u32 {
  if (npages > GUP_BATCH_PAGES) npages = GUP_BATCH_PAGES;
  let va = <u64>vaF;
  let n: u32 = 0;
  while (n < npages) {
    // Down to the leaf covering va.
    let table = root;
    let level: u32 = 4;
    let at: u32 = 0;
    let e: u32 = 0;
    for (;;) {
      at = entryAddr(table, va, level);
      e = <u32>load<u64>(at);
      if ((e & PTE_P) == 0) return n;
      if (level == 1 || (e & PTE_PS) != 0) break;
      table = (e & PTE_ADDR) >> PAGE_SHIFT;
      level--;
    }
    if ((e & PINNABLE) != (PTE_P | PTE_W)) return n;
    if (level == 1) {
      // The following entries of the same table, while they stay pinnable.
      let idx = indexAt(va, 1);
      for (;;) {
        const f = (e & PTE_ADDR) >> PAGE_SHIFT;
        frame_get(f);
        store<u32>(GUP_BATCH + (n << 2), f);
        n++;
        idx++;
        va += 1 << PAGE_SHIFT;
        if (n == npages || idx == 512) break;
        at += 8;
        e = <u32>load<u64>(at);
        if ((e & PINNABLE) != (PTE_P | PTE_W)) return n;
      }
    } else {
      // A huge leaf: its 4 KiB frames from the one containing va.
      const span: u32 = 1 << (9 * (level - 1));
      const base = (e & PTE_ADDR) >> PAGE_SHIFT;
      let within = <u32>(va >> PAGE_SHIFT) & (span - 1);
      while (within < span && n < npages) {
        frame_get(base + within);
        store<u32>(GUP_BATCH + (n << 2), base + within);
        n++;
        within++;
        va += 1 << PAGE_SHIFT;
      }
    }
  }
  return n;
}

/**
 * unpin_user_pages: drops the frame reference of each of the first `npages` (at most
 * GUP_BATCH_PAGES) frames the caller stored as u32 at GUP_BATCH, in one call rather than one
 * frame_put from JS per page. Returns how many it dropped.
 */
export function gup_unpin(npages: u32): u32 {
  if (npages > GUP_BATCH_PAGES) npages = GUP_BATCH_PAGES;
  for (let i: u32 = 0; i < npages; i++) frame_put(load<u32>(GUP_BATCH + (i << 2)));
  return npages;
}
