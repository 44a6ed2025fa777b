// vfio-emu/worker (API.md §3): what a thread other than the kernel's needs to reach the data
// plane. attachCore instantiates the core over the kernel's shared memory.

import { Core, type CoreInit } from "./wasm/core.js";

export { Core };
export type { CoreInit };

/** Instantiates the data-plane core in this thread over the memory of `init`. */
export function attachCore(init: CoreInit): Promise<Core> {
  return Core.attach(init);
}
