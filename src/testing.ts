// vfio-emu/testing (API.md §4): hooks for tests, never reachable from the main entry.

import type { Kernel } from "./index.js";
import type { Iommufd } from "./iommufd/main.js";
import type { Core } from "./wasm/core.js";
import { enableSelftest, mockPageResponses, type MockPageResponse } from "./iommufd/selftest.js";

export type { MockPageResponse };

interface HasCore { kcore: { core: Pick<Core, "i32" | "consts"> } }

/**
 * Fault injection: the nth internal allocation or copy from now on fails (n >= 1); 0 turns
 * injection off. Counts every frame allocation in the data plane and every allocation point
 * of the control plane that consults the same counter.
 */
export function failNth(kernel: Kernel, n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError("failNth: n must be a whole number >= 0");
  const core = (kernel as unknown as HasCore).kcore.core;
  Atomics.store(core.i32, core.consts.HDR_FAIL_NTH >>> 2, n);
}

/**
 * What is left of the countdown set by failNth: 0 once the injected failure fired (or when
 * injection is off). A fail-nth sweep stops at the first n whose run leaves it above 0.
 */
export function failNthRemaining(kernel: Kernel): number {
  const core = (kernel as unknown as HasCore).kcore.core;
  return Math.max(0, Atomics.load(core.i32, core.consts.HDR_FAIL_NTH >>> 2));
}

/**
 * Makes IOMMU_TEST_CMD available on every /dev/iommu file of `kernel` (a kernel built with
 * CONFIG_IOMMUFD_TEST). Until then that number gives -ENOTTY.
 */
export function enableTestCmd(kernel: Kernel): void {
  enableSelftest((kernel as unknown as { iommufd: Iommufd }).iommufd);
}

/**
 * The page responses the selftest's mock IOMMU passed to its devices since the last call
 * (user answers written to a fault fd, and the kernel's own INVALID answers when a fault has
 * no handler or its attachment goes away), oldest first; the log is emptied.
 */
export function takeMockPageResponses(kernel: Kernel): MockPageResponse[] {
  const log = mockPageResponses.get((kernel as unknown as { iommufd: Iommufd }).iommufd);
  return log ? log.splice(0) : [];
}
