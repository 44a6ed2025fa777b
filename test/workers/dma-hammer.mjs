// A worker that makes the device write and read at one IOVA as fast as it can until told to
// stop (test/concurrency.test.ts): a device that keeps DMAing while the kernel removes its
// mappings and domains under it.
import { workerData, parentPort } from "node:worker_threads";
import { attachWorker } from "../../dist/worker.js";

const { init, control, dev, iova, len, pattern, slot } = workerData;
const ctl = new Int32Array(control);
const ctx = await attachWorker(init);
const d = ctx.device(dev);
const data = new Uint8Array(len).fill(pattern);
const back = new Uint8Array(len);
let ok = 0, faults = 0;
const other = [];
Atomics.add(ctl, 1, 1); // ready
while (Atomics.load(ctl, 0) === 0) {
  const w = d.dmaWrite(iova, data);
  const r = d.dmaRead(iova, back);
  for (const rc of [w, r]) {
    if (rc === 0) ok++;
    else if (rc === -14) faults++;
    else other.push(rc);
  }
  // progress for the test to wait on: ctl[2 + 2 slot] = ok, ctl[3 + 2 slot] = faults
  Atomics.store(ctl, 2 + 2 * slot, ok);
  Atomics.store(ctl, 3 + 2 * slot, faults);
}
ctx.detach();
parentPort.postMessage({ ok, faults, other });
