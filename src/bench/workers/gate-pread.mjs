// The worker of T16 (src/bench/figures/gate.mjs): a worker-side pread of one config dword through
// ctx.file(ref) (gated: its one wasm call gate_enter enters the grace-period section and makes
// the check, one atomic load of the file's gate word) against the identical operation minus
// the check: a second WorkerFiles (src/worker.ts, the class behind ctx.file) whose entry call
// is bench_file_enter (assembly/bench.ts: gate_enter without its check). Both sides run the
// same JS functions through the same call sites, so the JIT compiles one code for both: two
// copies of the path (a baseline class of its own) came out up to 20 % apart either way,
// whichever was compiled first being the slower, which swamped the ~1 ns being measured.
// Each request { ops, slices } alternates slices of `ops` reads of each (the order flips every
// slice) and answers the ns of every slice of each side.
import { workerData, parentPort } from "node:worker_threads";
import { attachWorker, WorkerFiles } from "../../worker.js";

const { init, ref, configOffset, expect } = workerData;
const ctx = await attachWorker(init);
const gated = ctx.file(ref);
// Without it WorkerFiles would fall back to gate_enter and T16 would compare gated with gated.
if (typeof ctx.core.x.bench_file_enter !== "function") throw new Error("T16: the worker's core lacks bench_file_enter (build/core-bench.wasm)");
const ungated = new WorkerFiles(ctx.core, ctx.core.x.bench_file_enter).file(ref);
const buf = new Uint8Array(4);

// Both must read the same dword, the device's vendor and device ids.
for (const [name, f] of [["gated", gated], ["ungated", ungated]]) {
  const rc = f.pread(buf, configOffset);
  const got = (buf[0] | (buf[1] << 8) | (buf[2] << 16) | (buf[3] << 24)) >>> 0;
  if (rc !== 4 || got !== expect) throw new Error(`T16 ${name} pread: rc ${rc}, dword 0x${got.toString(16)} (expected 0x${expect.toString(16)})`);
}

function loop(f, ops) {
  let sum = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) sum += f.pread(buf, configOffset);
  const ns = Number(process.hrtime.bigint() - t0);
  if (sum !== 4 * ops) throw new Error(`T16: a pread failed (${sum} bytes of ${4 * ops})`);
  return ns;
}

parentPort.on("message", (m) => {
  if (m.quit) {
    ctx.detach();
    parentPort.close();
    return;
  }
  const gated_ = [], ungated_ = [];
  for (let s = 0; s < m.slices; s++) {
    if (s % 2 === 0) { gated_.push(loop(gated, m.ops)); ungated_.push(loop(ungated, m.ops)); }
    else { ungated_.push(loop(ungated, m.ops)); gated_.push(loop(gated, m.ops)); }
  }
  parentPort.postMessage({ gated: gated_, ungated: ungated_ });
});
parentPort.postMessage({ slot: ctx.slot });
