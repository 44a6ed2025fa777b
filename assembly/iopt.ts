// What every IO page-table format shares: format ids, the prot bits of a map call, and the
// "leaf word" a walk returns, so that the IOTLB and DMA code never look inside a format's PTEs.
//
// Leaf word (u32): leaf physical base (aligned to at least 2 KiB) | LEAF_P | LEAF_R | LEAF_W |
// LEAF_D | leaf shift << LEAF_SHIFT_POS. 0 means "nothing mapped". Physical addresses are
// below 4 GiB (the pool lives in a 32-bit wasm memory), so one u32 carries them.

export const IOPT_X86: u32 = 1; // x86-64 second-stage-like 4-level radix (iopt_x86.ts)
export const IOPT_MOCK: u32 = 2; // the kernel selftest's mock format (iopt_mock.ts)

// prot of domain_map, as the kernel's IOMMU_READ / IOMMU_WRITE.
export const IOMMU_READ: u32 = 1;
export const IOMMU_WRITE: u32 = 2;

export const LEAF_P: u32 = 0x1;
export const LEAF_R: u32 = 0x2;
export const LEAF_W: u32 = 0x4;
export const LEAF_D: u32 = 0x8;
export const LEAF_SHIFT_POS: u32 = 4;
export const LEAF_FLAGS: u32 = 0x7ff; // below the smallest leaf alignment (2 KiB)

// errno values the data plane returns (negated).
export const EINVAL: i32 = 22;
export const EEXIST: i32 = 17;
export const ENOMEM: i32 = 12;
export const EFAULT: i32 = 14;
export const ENOSPC: i32 = 28;

/** The u64 IOVA of an exported function's (lo, hi) u32 pair (no i64 crosses to JS). */
@inline export function iova64(lo: u32, hi: u32): u64 { return (<u64>hi << 32) | <u64>lo; }

// Side result of the last walk in this thread: host address of the leaf's PTE (the one that
// carries the dirty bit). A wasm global, so per instance, i.e. per thread.
export let walkPte: u32 = 0;
@inline export function setWalkPte(at: u32): void { walkPte = at; }

/**
 * Sets the bits of a dirty bitmap (bit i = IO page base + i << shift, little-endian bit order as
 * the kernel's u64 bitmaps) for every page that [lo, hi) touches. Kernel thread only.
 */
export function bitmapSetRange(bitmap: u32, base: u64, shift: u32, lo: u64, hi: u64): void {
  let first = <u32>((lo - base) >> shift);
  const last = <u32>((hi - 1 - base) >> shift);
  while (first <= last && (first & 7) != 0) { bitSet(bitmap, first); first++; }
  const bytes = (last + 1 - first) >> 3;
  if (first <= last && bytes > 0) {
    memory.fill(<usize>(bitmap + (first >> 3)), 0xff, <usize>bytes);
    first += bytes << 3;
  }
  while (first <= last) { bitSet(bitmap, first); first++; }
}

@inline function bitSet(bitmap: u32, i: u32): void {
  const at = bitmap + (i >> 3);
  store<u8>(at, load<u8>(at) | <u8>(<u32>1 << (i & 7)));
}
