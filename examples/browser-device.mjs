// The device engine of browser.html, on a Web Worker: it attaches to the kernel's data plane
// and has the device write 1 MiB through the IOMMU, 64 KiB per transfer. (Import maps do not
// reach workers: the bundle is named by its path; with a bundler, import "vfio-emu/worker".)
import { attachWorker } from "../build/browser/worker.js";

onmessage = async ({ data }) => {
  const ctx = await attachWorker(data.init);
  const device = ctx.device(data.index);
  const chunk = new Uint8Array(64 << 10).fill(0x5a);
  let moved = 0;
  for (let off = 0; off < 1 << 20; off += chunk.length) {
    if (device.dmaWrite(data.iova + off, chunk) === 0) moved += chunk.length;
  }
  ctx.detach();
  postMessage(moved);
};
