// A DMA worker for T11 / T12 (src/bench/figures/threads.mjs): joins the bench's shared memory
// through the worker API (attachWorker: its own worker slot, so its own epoch word and IOTLB),
// then sleeps on the control word until the bench starts a round; in each round it runs its
// descriptor batch (bench_dma_batch: dma_batch repeated inside wasm, no JS crossing per
// descriptor) and reports. No postMessage on the data path: the rounds go through Atomics.
//
// control (Int32Array): [GO] round number (negative: exit), [DONE] workers finished this round,
// and per worker id at JOB + 4 * id: desc address, count, reps, active (1: runs this round),
// and at RES + id the number of descriptors that succeeded in its last round.
import { workerData, parentPort } from "node:worker_threads";
import { attachWorker } from "../../worker.js";

const GO = 0, DONE = 1, READY = 2, JOB = 8, RES = 24; // as in src/bench/figures/threads.mjs

const { init, control, id } = workerData;
const ctl = new Int32Array(control);
const ctx = await attachWorker(init);
const x = ctx.core.x;
parentPort.postMessage({ slot: ctx.slot });
Atomics.add(ctl, READY, 1);
Atomics.notify(ctl, READY);
let round = 0;
for (;;) {
  // Blocks (no spin) until the bench starts the next round.
  while (Atomics.load(ctl, GO) === round) Atomics.wait(ctl, GO, round);
  round = Atomics.load(ctl, GO);
  if (round < 0) break;
  const j = JOB + 4 * id;
  if (Atomics.load(ctl, j + 3) !== 1) continue;
  const ok = x.bench_dma_batch(ctl[j], ctl[j + 1], ctl[j + 2]);
  Atomics.store(ctl, RES + id, ok);
  Atomics.add(ctl, DONE, 1);
  Atomics.notify(ctl, DONE);
}
ctx.detach();
