// The benchmark build's second entry (build/core-bench.wasm, asconfig target "bench"): compiled
// together with assembly/index.ts, it adds the timing loops of bench.ts and iotlb.ts to the
// core's exports. The shipped cores (core.wasm, core-stats.wasm) are built without it.

export * from "./bench";
export { iotlb_bench } from "./iotlb";
