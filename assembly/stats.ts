// Data-plane statistics: u32 counters kept per worker slot, in the slot's own cache line
// (layout.ts WORKER_STATS), so a thread counts with plain loads and stores that no other
// thread writes; stat_read sums the slots. Compiled in only when the build defines
// IOMMU_STATS (asc --use IOMMU_STATS=1, the "stats" target, build/core-stats.wasm); otherwise
// stat_inc is empty and the hot paths pay nothing. STATS_ENABLED tells TypeScript which build
// it runs.

import { WORKER_BASE, WORKER_SLOTS, WORKER_STRIDE, WORKER_STATS, WORKER_STATS_COUNT } from "./layout";
import { epochWordAddr } from "./epoch";

// @ts-ignore: compile-time builtin; IOMMU_STATS exists only in the stats build
export const STATS_ENABLED: bool = isDefined(IOMMU_STATS);

export const STAT_IOTLB_LAST_HITS: u32 = 0; // "last translation" hits
export const STAT_IOTLB_HITS: u32 = 1; // IOTLB array hits
export const STAT_IOTLB_MISSES: u32 = 2; // misses of both (each is followed by a walk)
export const STAT_IOTLB_WALKS: u32 = 3; // page-table walks on the DMA path
export const STAT_DMA_FAULTS: u32 = 4; // fault records written

/** Counts on this thread's slot: only this thread writes it, so no atomic is needed. */
@inline export function stat_inc(i: u32): void {
  if (STATS_ENABLED) {
    const at = epochWordAddr() + WORKER_STATS + (i << 2);
    store<u32>(at, load<u32>(at) + 1);
  }
}

/** The total of counter i over every slot (atomic loads: the slots' threads may be counting). */
export function stat_read(i: u32): u32 {
  if (i >= WORKER_STATS_COUNT) return 0;
  let n: u32 = 0;
  for (let s: u32 = 0; s < WORKER_SLOTS; s++) n += atomic.load<u32>(WORKER_BASE + s * WORKER_STRIDE + WORKER_STATS + (i << 2));
  return n;
}
