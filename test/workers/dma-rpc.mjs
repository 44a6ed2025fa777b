// A worker that does one device DMA per message and answers with what happened
// (test/dma_path.test.ts): the same transfer the kernel thread's DeviceHandle makes, from
// another thread through vfio-emu/worker.
import { workerData, parentPort } from "node:worker_threads";
import { attachWorker } from "../../dist/worker.js";

const ctx = await attachWorker(workerData.init);
parentPort.on("message", (m) => {
  if (m.op === "exit") {
    ctx.detach();
    parentPort.postMessage({ exited: true });
    return;
  }
  const d = ctx.device(m.dev);
  const buf = m.write ? new Uint8Array(m.data) : new Uint8Array(m.len).fill(m.fill);
  const rc = m.write ? d.dmaWrite(m.iova, buf) : d.dmaRead(m.iova, buf);
  parentPort.postMessage({ rc, out: m.write ? null : buf });
});
parentPort.postMessage({ ready: true, slot: ctx.slot });
