// The IOMMU's state as the tests look at it, through the kernel's core.
import type { Kernel } from "../../src/index.js";
import type { Core, CoreConstants } from "../../src/wasm/core.js";

/** The newest record of the IOMMU's fault ring (assembly/fault.ts), whichever thread wrote it. */
export function lastFault(k: Kernel): { iova: bigint; write: boolean; reason: number } {
  const c = (k as unknown as { kcore: { core: Core } }).kcore.core;
  const rec = c.x.fault_rec((c.x.fault_head() >>> 0) - 1) >>> 0;
  const word = (f: keyof CoreConstants) => c.u32[(rec + c.consts[f]) >>> 2];
  const flags = word("FAULT_FLAGS");
  return { iova: (BigInt(word("FAULT_IOVA_HI")) << 32n) | BigInt(word("FAULT_IOVA_LO")), write: (flags & c.consts.FAULT_F_WRITE) !== 0, reason: flags >>> 8 };
}
