// A worker that enters a grace-period read section (as a DMA does) and then dies without
// leaving it or detaching (test/concurrency.test.ts).
import { workerData, parentPort } from "node:worker_threads";
import { attachWorker } from "../../dist/worker.js";

const ctx = await attachWorker(workerData.init);
ctx.core.x.epoch_enter();
parentPort.postMessage({ slot: ctx.slot });
process.exit(0);
