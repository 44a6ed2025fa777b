// The script of browser.html: what a page needs to drive an emulated device.
import {
  createKernel, IommuFd, VfioDeviceFile, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE,
} from "vfio-emu";

const out = document.getElementById("out");
const say = (line) => { out.textContent += line + "\n"; };

const kernel = await createKernel({
  memoryBytes: 64 << 20,
  devices: [{ bdf: "0000:00:04.0", model: "memcpy" }],
});
const device = kernel.device("0000:00:04.0");
say(`booted: ${kernel.devices.length} device, ${device.bdf} as /dev/vfio/devices/vfio${device.index}`);

const proc = kernel.createProcess({ memlockBytes: 16 << 20 });
const buf = proc.mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
const iommufd = IommuFd.open(proc);
const ioas = iommufd.allocIoas();
const dev = VfioDeviceFile.open(proc, `/dev/vfio/devices/vfio${device.index}`);
say(`bound: devid ${dev.bind(iommufd)}`);
say(`attached: hwpt ${dev.attach(ioas.id)}`);
ioas.map({ userVa: buf, length: 1 << 20, iova: 0x40000n });

// The device engine: a module worker joins the data plane with kernel.workerInit().
const worker = new Worker(new URL("./browser-device.mjs", import.meta.url), { type: "module" });
worker.postMessage({ init: kernel.workerInit(), index: device.index, iova: 0x40000 });
const moved = await new Promise((resolve, reject) => {
  worker.onmessage = (e) => resolve(e.data);
  worker.onerror = (e) => reject(new Error(e.message));
});
const tail = new Uint8Array(4);
proc.readMemory(buf + (1 << 20) - 4, tail);
say(`a Web Worker's device wrote ${moved} bytes; the process reads ${[...tail].map((b) => b.toString(16)).join(" ")}`);

// Once IOMMU_IOAS_UNMAP returns, no DMA reaches the pages: the device faults.
ioas.unmap(0x40000n, 1 << 20);
const rc = device.dmaRead(0x40000, tail);
say(`after unmap the device faults: ${rc} (${device.faults().at(-1).reason})`);

worker.terminate();
dev.close();
iommufd.close();
await kernel.close();
document.body.dataset.done = "1";
