// The typed layer: objects named after the kernel's, throwing VfioError on failure. The cdev
// sequence: open (blocked) -> BIND -> ATTACH -> MAP -> device DMA -> UNMAP -> the fault.
import {
  createKernel, IommuFd, VfioDeviceFile, VfioError, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE,
} from "vfio-emu";

const kernel = await createKernel({
  memoryBytes: 64 << 20,
  devices: [{ bdf: "0000:00:04.0", model: "memcpy", iommuGroup: 7 }],
});
const proc = kernel.createProcess({ memlockBytes: 16 << 20 });
const buf = proc.mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

const iommufd = IommuFd.open(proc);
const ioas = iommufd.allocIoas();
const dev = VfioDeviceFile.open(proc, "/dev/vfio/devices/vfio0");
console.log(`bound: devid ${dev.bind(iommufd)}`);
console.log(`attached: hwpt ${dev.attach(ioas.id)}`);
ioas.map({ userVa: buf, length: 1 << 20, iova: 0x10000n });

const device = kernel.device("0000:00:04.0");
console.log(`device writes: ${device.dmaWrite(0x10000, new TextEncoder().encode("hello"))}`);
const seen = new Uint8Array(5);
proc.readMemory(buf, seen);
console.log(`the process sees "${new TextDecoder().decode(seen)}"`);

ioas.unmap(0x10000n, 1 << 20);
console.log(`device reads after unmap: ${device.dmaRead(0x10000, seen)} (${device.faults().at(-1).reason})`);
try {
  ioas.unmap(0x10000n, 1 << 20);
} catch (e) {
  if (!(e instanceof VfioError)) throw e;
  console.log(`${e.syscall} ${e.code} (errno ${e.errno})`);
}
dev.close();
iommufd.close();
await kernel.close();
