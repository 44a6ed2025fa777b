// The worker of worker-dma.mjs: a device engine on its own thread. It attaches to the kernel's
// data plane and has the device write 1 MiB through the IOMMU, 64 KiB per transfer.
import { workerData, parentPort } from "node:worker_threads";
import { attachWorker } from "vfio-emu/worker";

const ctx = await attachWorker(workerData.init);
const device = ctx.device(workerData.index);
const data = new Uint8Array(64 << 10).fill(0x5a);
let moved = 0;
for (let off = 0; off < 1 << 20; off += data.length) {
  if (device.dmaWrite(workerData.iova + off, data) === 0) moved += data.length;
}
ctx.detach();
parentPort.postMessage(moved);
