// Benchmark-only entry points for bench/run.mjs (PERF.md T1-T8): the "W" baseline and timing
// loops that run entirely inside wasm, so that no JS<->wasm crossing is measured.
//
// W is the identity path: the same batch and copy structure as dma.ts (descriptor loads, epoch
// section per batch and refresh every 64 KiB, memmove per chunk, atomic status store), with
// translation switched off: an IOVA is the host address itself (an identity domain over the
// 32-bit memory), so the only "walk" left is the range check. Comparing dma_batch with
// bench_identity_batch over the same descriptors isolates the cost of translation.
//
// Nothing here allocates; the map/unmap loops work on a domain's table directly (x86_map /
// x86_unmap: the page-table operation alone, without invalidation or domain bookkeeping).

import { EFAULT, EINVAL, IOMMU_READ, IOMMU_WRITE } from "./iopt";
import { epoch_enter, epoch_exit, epochActive } from "./epoch";
import {
  dma_batch, DMA_DESC_OP, DMA_DESC_SRC_LO, DMA_DESC_SRC_HI, DMA_DESC_DST_LO, DMA_DESC_DST_HI, DMA_DESC_LEN,
  DMA_DESC_STATUS, DMA_DESC_SIZE, DMA_OP_READ, DMA_OP_WRITE, DMA_OP_COPY,
} from "./dma";
import { DOM_ROOT } from "./domain";
import { x86_map, x86_unmap } from "./iopt_x86";

const EPOCH_CHUNK: u32 = 65536;
let budget: u32 = EPOCH_CHUNK;
const LIMIT: u64 = 0x100000000; // the identity domain's aperture: the 32-bit memory

@inline function begin(): bool {
  if (epochActive()) return false;
  epoch_enter();
  budget = EPOCH_CHUNK;
  return true;
}

@inline function end(own: bool): void {
  if (own) epoch_exit();
}

@inline function charge(n: u32): void {
  budget -= n;
  if (budget == 0) {
    epoch_enter();
    budget = EPOCH_CHUNK;
  }
}

@inline function iova64(lo: u32, hi: u32): u64 { return (<u64>hi << 32) | <u64>lo; }

/** dma.ts xfer with identity translation. */
function idXfer(iova: u64, host: u32, len: u32, write: bool): i32 {
  let done: u32 = 0;
  while (done < len) {
    const at = iova + <u64>done;
    if (at >= LIMIT) return -EFAULT;
    let n = len - done;
    const avail = LIMIT - at;
    if (avail < <u64>n) n = <u32>avail;
    if (budget < n) n = budget;
    if (write) memory.copy(<usize><u32>at, <usize>(host + done), <usize>n);
    else memory.copy(<usize>(host + done), <usize><u32>at, <usize>n);
    done += n;
    charge(n);
  }
  return 0;
}

/** dma.ts copy with identity translation. */
function idCopy(src: u64, dst: u64, len: u32): i32 {
  let done: u32 = 0;
  while (done < len) {
    const s = src + <u64>done;
    if (s >= LIMIT) return -EFAULT;
    let n = len - done;
    let avail = LIMIT - s;
    if (avail < <u64>n) n = <u32>avail;
    const d = dst + <u64>done;
    if (d >= LIMIT) return -EFAULT;
    avail = LIMIT - d;
    if (avail < <u64>n) n = <u32>avail;
    if (budget < n) n = budget;
    memory.copy(<usize><u32>d, <usize><u32>s, <usize>n);
    done += n;
    charge(n);
  }
  return 0;
}

/** dma_batch over the identity domain (descriptors' IOVAs are host addresses), `reps` times. */
export function bench_identity_batch(desc: u32, count: u32, reps: u32): i32 {
  let ok: i32 = 0;
  for (let r: u32 = 0; r < reps; r++) {
    const own = begin();
    for (let i: u32 = 0; i < count; i++) {
      const d = desc + i * DMA_DESC_SIZE;
      const op = load<u32>(d + DMA_DESC_OP);
      const len = load<u32>(d + DMA_DESC_LEN);
      let rc: i32;
      if (op == DMA_OP_READ) {
        rc = idXfer(iova64(load<u32>(d + DMA_DESC_SRC_LO), load<u32>(d + DMA_DESC_SRC_HI)), load<u32>(d + DMA_DESC_DST_LO), len, false);
      } else if (op == DMA_OP_WRITE) {
        rc = idXfer(iova64(load<u32>(d + DMA_DESC_DST_LO), load<u32>(d + DMA_DESC_DST_HI)), load<u32>(d + DMA_DESC_SRC_LO), len, true);
      } else if (op == DMA_OP_COPY) {
        rc = idCopy(iova64(load<u32>(d + DMA_DESC_SRC_LO), load<u32>(d + DMA_DESC_SRC_HI)),
          iova64(load<u32>(d + DMA_DESC_DST_LO), load<u32>(d + DMA_DESC_DST_HI)), len);
      } else {
        rc = -EINVAL;
      }
      atomic.store<i32>(d + DMA_DESC_STATUS, rc);
      if (rc == 0) ok++;
    }
    end(own);
  }
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
