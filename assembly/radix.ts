// A 4-level radix page table in the x86-64 layout: 512 eight-byte entries per 4 KiB table,
// 48-bit addresses, leaves at level 1 (4 KiB), 2 (2 MiB) or 3 (1 GiB). Tables are frames from
// frames.ts. Used for every process's address space (the "CPU" page table); the IOMMU formats
// of the domains reuse its entry layout.
//
// Entry: physical address (bits 12..47) | flags. A returned "leaf word" packs the 4 KiB page
// that contains the address, the flags and the leaf level into one u32:
//   bits 12..31 physical page number | PTE_P | PTE_W | level << 9
// Physical addresses are below 4 GiB (the pool lives inside a 32-bit wasm memory), so the u64
// entries always have a zero high word.
//
// Owned by the kernel thread (mmap, munmap, page faults, pinning).

import { PAGE_SHIFT, FRAME_NONE } from "./layout";
import { frame_alloc, frame_addr, frame_put } from "./frames";

export const PTE_P: u32 = 0x1;
export const PTE_W: u32 = 0x2;
export const PTE_U: u32 = 0x4;
export const PTE_PS: u32 = 0x80; // leaf above level 1
// Software bit 9, as x86's _PAGE_SPECIAL: the leaf maps device memory (a VM_PFNMAP mapping),
// which has no page to pin. It lets gup_fast_pin (gup.ts) refuse it without the VMA.
export const PTE_SPECIAL: u32 = 0x200;
export const PTE_ADDR: u32 = 0xfffff000;
const LEVEL_SHIFT: u32 = 9;

// The index of `va`'s entry in a table at `level`, and that entry's address (also for gup.ts's
// walk; assembly/index.ts names this module's wasm exports, so these stay internal).
@inline export function indexAt(va: u64, level: u32): u32 {
  return <u32>(va >> (<u64>(PAGE_SHIFT + 9 * (level - 1)))) & 511;
}

@inline export function entryAddr(table: u32, va: u64, level: u32): u32 {
  return frame_addr(table) + (indexAt(va, level) << 3);
}

/** A zeroed table frame for a new root; FRAME_NONE when memory is exhausted. */
export function radix_alloc_root(): u32 {
  return frame_alloc(0);
}

/**
 * Looks up `va`: the leaf word (see above) of the 4 KiB page containing it, or 0 when nothing
 * is mapped there.
 */
export function radix_lookup(root: u32, vaF: f64): u32 {
  const va = <u64>vaF;
  let table = root;
  for (let level: u32 = 4; level >= 1; level--) {
    const e = <u32>load<u64>(entryAddr(table, va, level));
    if ((e & PTE_P) == 0) return 0;
    if (level == 1 || (e & PTE_PS) != 0) {
      // Offset of the 4 KiB page inside a huge leaf.
      const within = <u32>(va >> PAGE_SHIFT) & ((1 << (9 * (level - 1))) - 1);
      return ((e & PTE_ADDR) + (within << PAGE_SHIFT)) | (e & (PTE_P | PTE_W)) | (level << LEVEL_SHIFT);
    }
    table = (e & PTE_ADDR) >> PAGE_SHIFT;
  }
  return 0;
}

/**
 * Installs a leaf for `va` at `level` pointing at physical address `phys` with `flags`
 * (PTE_W, PTE_SPECIAL; PTE_P is implied). Missing tables are allocated. Returns 0, -12 (ENOMEM) when a table
 * frame cannot be had, or -17 (EEXIST) when the slot or a covering huge leaf is occupied.
 */
export function radix_install(root: u32, vaF: f64, phys: u32, flags: u32, level: u32): i32 {
  const va = <u64>vaF;
  let table = root;
  for (let l: u32 = 4; l > level; l--) {
    const at = entryAddr(table, va, l);
    const e = <u32>load<u64>(at);
    if ((e & PTE_P) == 0) {
      const t = frame_alloc(0);
      if (t == FRAME_NONE) return -12;
      store<u64>(at, <u64>((t << PAGE_SHIFT) | PTE_P | PTE_W | PTE_U));
      table = t;
    } else {
      if ((e & PTE_PS) != 0) return -17;
      table = (e & PTE_ADDR) >> PAGE_SHIFT;
    }
  }
  const at = entryAddr(table, va, level);
  if ((<u32>load<u64>(at) & PTE_P) != 0) return -17;
  const ps: u32 = level > 1 ? PTE_PS : 0;
  store<u64>(at, <u64>((phys & PTE_ADDR) | PTE_P | PTE_U | ps | (flags & (PTE_W | PTE_SPECIAL))));
  return 0;
}

/** Removes the leaf for `va` at `level`; returns its old leaf word (0 if there was none). */
export function radix_remove(root: u32, vaF: f64, level: u32): u32 {
  const va = <u64>vaF;
  let table = root;
  for (let l: u32 = 4; l > level; l--) {
    const e = <u32>load<u64>(entryAddr(table, va, l));
    if ((e & PTE_P) == 0 || (e & PTE_PS) != 0) return 0;
    table = (e & PTE_ADDR) >> PAGE_SHIFT;
  }
  const at = entryAddr(table, va, level);
  const e = <u32>load<u64>(at);
  if ((e & PTE_P) == 0) return 0;
  store<u64>(at, 0);
  return (e & (PTE_ADDR | PTE_P | PTE_W)) | (level << LEVEL_SHIFT);
}

/** Changes the write permission of the leaf covering `va`. 0, or -14 (EFAULT) if none. */
export function radix_protect(root: u32, vaF: f64, writable: bool): i32 {
  const va = <u64>vaF;
  let table = root;
  for (let level: u32 = 4; level >= 1; level--) {
    const at = entryAddr(table, va, level);
    const e = <u32>load<u64>(at);
    if ((e & PTE_P) == 0) return -14;
    if (level == 1 || (e & PTE_PS) != 0) {
      store<u64>(at, <u64>(writable ? e | PTE_W : e & ~PTE_W));
      return 0;
    }
    table = (e & PTE_ADDR) >> PAGE_SHIFT;
  }
  return -14;
}

function destroyLevel(table: u32, level: u32): void {
  if (level > 1) {
    const base = frame_addr(table);
    for (let i: u32 = 0; i < 512; i++) {
      const e = <u32>load<u64>(base + (i << 3));
      if ((e & PTE_P) != 0 && (e & PTE_PS) == 0) destroyLevel((e & PTE_ADDR) >> PAGE_SHIFT, level - 1);
    }
  }
  frame_put(table);
}

/** Frees every table frame of the tree (not the leaves' frames: their owners drop those). */
export function radix_destroy(root: u32): void {
  destroyLevel(root, 4);
}
