// The device engine of dma-bench.mjs: times copies through the IOMMU (the subject) and the same
// copies between plain buffers (the baseline), interleaved, and reports the medians in ns.
import { workerData, parentPort } from "node:worker_threads";
import { attachWorker } from "vfio-emu/worker";

const { init, index, src, dst, bytes } = workerData;
const ctx = await attachWorker(init);
const device = ctx.device(index);
const DESC = 64 << 10;
const bounce = new Uint8Array(DESC);
const plainSrc = new Uint8Array(bytes).fill(1), plainDst = new Uint8Array(bytes);
let faults = 0;

const dma = () => {
  const t0 = process.hrtime.bigint();
  for (let off = 0; off < bytes; off += DESC) {
    if (device.dmaRead(src + off, bounce) !== 0 || device.dmaWrite(dst + off, bounce) !== 0) faults++;
  }
  return Number(process.hrtime.bigint() - t0);
};
const plain = () => {
  const t0 = process.hrtime.bigint();
  for (let off = 0; off < bytes; off += DESC) {
    bounce.set(plainSrc.subarray(off, off + DESC));
    plainDst.set(bounce, off);
  }
  return Number(process.hrtime.bigint() - t0);
};
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const TRIALS = 7;
dma(); plain(); // warm-up
const a = [], b = [];
for (let t = 0; t < TRIALS; t++) {
  if (t % 2) { b.push(plain()); a.push(dma()); } else { a.push(dma()); b.push(plain()); }
}
ctx.detach();
parentPort.postMessage({ bytes, trials: TRIALS, dma: median(a), plain: median(b), faults });
