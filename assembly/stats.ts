// Data-plane statistics: u32 counters in the STATS region (layout.ts), one index each.
// Compiled in only when the build defines IOMMU_STATS (asc --use IOMMU_STATS=1, the "stats"
// target, build/core-stats.wasm); otherwise stat_inc is empty and the hot paths pay nothing.
// STATS_ENABLED tells TypeScript which build it runs.

import { STATS_BASE } from "./layout";

// @ts-ignore: compile-time builtin; IOMMU_STATS exists only in the stats build
export const STATS_ENABLED: bool = isDefined(IOMMU_STATS);

export const STAT_IOTLB_LAST_HITS: u32 = 0; // "last translation" hits
export const STAT_IOTLB_HITS: u32 = 1; // IOTLB array hits
export const STAT_IOTLB_MISSES: u32 = 2; // misses of both (each is followed by a walk)
export const STAT_IOTLB_WALKS: u32 = 3; // page-table walks on the DMA path
export const STAT_DMA_FAULTS: u32 = 4; // fault records written

/** Counters are shared by every thread: atomic add (contended, so only in the stats build). */
@inline export function stat_inc(i: u32): void {
  if (STATS_ENABLED) atomic.add<u32>(STATS_BASE + (i << 2), 1);
}

export function stat_read(i: u32): u32 { return atomic.load<u32>(STATS_BASE + (i << 2)); }
