// A device worker that raises MSI-X / MSI vectors through msixRaise / msiRaise and reports
// each result (test/vfio/pci_msi.test.ts).
import { workerData, parentPort } from "node:worker_threads";
import { attachWorker, msixRaise, msiRaise } from "../../dist/worker.js";

const { init, dev, raises } = workerData;
const ctx = await attachWorker(init);
const results = raises.map(([kind, v]) => (kind === "msix" ? msixRaise : msiRaise)(ctx.core, dev, v));
ctx.detach();
parentPort.postMessage(results);
