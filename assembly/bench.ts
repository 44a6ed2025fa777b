// Benchmark-only entry points for bench/run.mjs (PERF.md T1-T8): the "W" baseline and timing
// loops that run entirely inside wasm, so that no JS<->wasm crossing is measured.
//
// W is the identity path: dma.ts's own batch and copy loops (descriptor loads, epoch section
// per batch and refresh every 64 KiB, memmove per chunk, atomic status store), instantiated
// with translation switched off (batchWith(true, ...)): an IOVA is the host address itself (an
// identity domain over the 32-bit memory), so the only "walk" left is the range check.
// Comparing dma_batch with bench_identity_batch over the same descriptors isolates the cost of
// translation.
//
// Nothing here allocates; the map/unmap loops work on a domain's table directly (x86_map /
// x86_unmap: the page-table operation alone, without invalidation or domain bookkeeping).

import { IOMMU_READ, IOMMU_WRITE, iova64 } from "./iopt";
import { dma_batch, batchWith } from "./dma";
import { DOM_ROOT } from "./domain";
import { x86_map, x86_unmap } from "./iopt_x86";
import { epoch_enter } from "./epoch";

/** dma_batch over the identity domain (descriptors' IOVAs are host addresses), `reps` times. */
export function bench_identity_batch(desc: u32, count: u32, reps: u32): i32 {
  let ok: i32 = 0;
  for (let r: u32 = 0; r < reps; r++) ok += batchWith(true, desc, count);
  return ok;
}

/** dma_batch itself, `reps` times, so that the subject crosses from JS once too. */
export function bench_dma_batch(desc: u32, count: u32, reps: u32): i32 {
  let ok: i32 = 0;
  for (let r: u32 = 0; r < reps; r++) ok += dma_batch(desc, count);
  return ok;
}

/**
 * T7: `count` map + unmap pairs of one 4 KiB page on domain `dom` (x86 format), cycling over
 * 256 pages from IOVA (iova_hi:iova_lo) so the same leaf table is reused. Failures (0 expected).
 */
export function bench_map_unmap(dom: u32, iova_lo: u32, iova_hi: u32, phys_page: u32, count: u32): i32 {
  const root = load<u32>(dom + DOM_ROOT);
  const base = iova64(iova_lo, iova_hi);
  const prot = IOMMU_READ | IOMMU_WRITE;
  let fails: i32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    const va = base + (<u64>(i & 255) << 12);
    if (x86_map(root, va, phys_page + (i & 255), 1, prot, false) != 0) fails++;
    if (x86_unmap(root, va, 1) != 1) fails++;
  }
  return fails;
}

/**
 * T8: `calls` bulk maps of `npages` contiguous 4 KiB pages each (one x86_map call per range),
 * ranges laid end to end from IOVA (iova_hi:iova_lo), all onto physical page `phys_page`
 * onwards. Failures (0 expected).
 */
export function bench_map_range(dom: u32, iova_lo: u32, iova_hi: u32, phys_page: u32, npages: u32, calls: u32): i32 {
  const root = load<u32>(dom + DOM_ROOT);
  const base = iova64(iova_lo, iova_hi);
  const prot = IOMMU_READ | IOMMU_WRITE;
  let fails: i32 = 0;
  for (let i: u32 = 0; i < calls; i++) {
    if (x86_map(root, base + (<u64>(i * npages) << 12), phys_page, npages, prot, false) != 0) fails++;
  }
  return fails;
}

/** Undoes bench_map_range: the 4 KiB pages unmapped (or a negative errno). */
export function bench_unmap_range(dom: u32, iova_lo: u32, iova_hi: u32, npages: u32, calls: u32): i32 {
  const root = load<u32>(dom + DOM_ROOT);
  const base = iova64(iova_lo, iova_hi);
  let total: i32 = 0;
  for (let i: u32 = 0; i < calls; i++) {
    const n = x86_unmap(root, base + (<u64>(i * npages) << 12), npages);
    if (n < 0) return <i32>n;
    total += <i32>n;
  }
  return total;
}

/**
 * T16's ungated twin of gate_enter (gate.ts): the same call, the same section entered, minus
 * the gate check (the one atomic load and its compare). Always 0.
 */
export function bench_file_enter(slot: u32, gen: u32): i32 {
  epoch_enter();
  return 0;
}
