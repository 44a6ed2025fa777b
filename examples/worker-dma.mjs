// Device DMA from another thread: the kernel's thread maps a buffer; a worker_threads worker
// attaches to the data plane (vfio-emu/worker) and has the device write through the IOMMU.
import { Worker } from "node:worker_threads";
import {
  createKernel, IommuFd, VfioDeviceFile, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE,
} from "vfio-emu";

const kernel = await createKernel({
  memoryBytes: 64 << 20,
  devices: [{ bdf: "0000:00:04.0", model: "memcpy" }],
});
const proc = kernel.createProcess({ memlockBytes: 16 << 20 });
const buf = proc.mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
const iommufd = IommuFd.open(proc);
const ioas = iommufd.allocIoas();
const dev = VfioDeviceFile.open(proc, "/dev/vfio/devices/vfio0");
dev.bind(iommufd);
dev.attach(ioas.id);
ioas.map({ userVa: buf, length: 1 << 20, iova: 0x40000n });

const worker = new Worker(new URL("./worker-dma-device.mjs", import.meta.url), {
  workerData: { init: kernel.workerInit(), index: kernel.device("0000:00:04.0").index, iova: 0x40000 },
});
const moved = await new Promise((resolve, reject) => { worker.once("message", resolve); worker.once("error", reject); });
const tail = new Uint8Array(4);
proc.readMemory(buf + (1 << 20) - 4, tail);
console.log(`the worker's device moved ${moved} bytes; the last ones read ${[...tail].map((b) => b.toString(16)).join(" ")}`);
dev.close();
iommufd.close();
await kernel.close();
