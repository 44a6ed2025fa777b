// A device worker that raises MSI-X vector 0 in a loop until told to stop (control[0] != 0) and
// reports how many raises were sent (test/vfio/pci_msi.test.ts).
import { workerData, parentPort } from "node:worker_threads";
import { attachWorker, msixRaise, IRQ_SENT } from "../../dist/worker.js";

const { init, dev, control } = workerData;
const ctl = new Int32Array(control);
const ctx = await attachWorker(init);
let sent = 0, calls = 0;
Atomics.store(ctl, 1, 1); // ready
while (Atomics.load(ctl, 0) === 0) {
  if (msixRaise(ctx.core, dev, 0) === IRQ_SENT) sent++;
  calls++;
}
ctx.detach();
parentPort.postMessage({ sent, calls });
