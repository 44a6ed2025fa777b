// The demo scenario behind `vfio-emu demo`: what a userspace driver does, step by step,
// against an emulated kernel, with every syscall traced. It grows as the kernel does.

import { createKernel, errnoName, IommuFd, VfioError } from "./index.js";
import {
  EFD_NONBLOCK, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, O_RDWR, POLLIN, PROT_READ, PROT_WRITE,
} from "./uapi/posix.js";

export async function runDemo(out: (line: string) => void, glob = "*"): Promise<number> {
  const kernel = await createKernel({
    memoryBytes: 64 * 1024 * 1024,
    devices: [{ bdf: "0000:00:04.0", model: "memcpy", iommuGroup: 7 }],
  });
  const unsubscribe = kernel.trace(glob, (line) => out(`  ${line}`));
  const say = (s: string) => out(s);
  const show = (rc: number) => (rc < 0 ? `-${errnoName(rc)}` : `0x${rc.toString(16)}`);
  try {
    const proc = kernel.createProcess({ uid: 1000 });

    say("# discover the device through sysfs, as QEMU, DPDK and libvfn do");
    const bdf = "0000:00:04.0";
    const group = proc.readlink(`/sys/bus/pci/devices/${bdf}/iommu_group`);
    say(`iommu_group -> ${String(group)}`);
    say(`vendor ${String(proc.readFile(`/sys/bus/pci/devices/${bdf}/vendor`)).trim()}, device ${String(proc.readFile(`/sys/bus/pci/devices/${bdf}/device`)).trim()}`);
    say(`driver -> ${String(proc.readlink(`/sys/bus/pci/devices/${bdf}/driver`))}`);

    say("# a DMA buffer: 2 MiB of anonymous memory, populated on first touch");
    const buf = proc.mmap(0, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    say(`buffer at ${show(buf)}`);
    proc.writeMemory(buf, new TextEncoder().encode("hello, DMA"));
    const back = new Uint8Array(10);
    proc.readMemory(buf, back);
    say(`read back "${new TextDecoder().decode(back)}"`);

    say("# a memfd-backed region shared between two mappings");
    const mfd = proc.memfd_create("guest-ram");
    proc.ftruncate(mfd, 1 << 20);
    const a = proc.mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    const b = proc.mmap(0, 1 << 20, PROT_READ, MAP_SHARED, mfd, 0);
    proc.writeMemory(a + 4096, Uint8Array.of(0xde, 0xad, 0xbe, 0xef));
    const seen = new Uint8Array(4);
    proc.readMemory(b + 4096, seen);
    say(`second mapping sees ${[...seen].map((x) => x.toString(16)).join(" ")}`);

    say("# an eventfd, as VFIO_DEVICE_SET_IRQS will take for interrupts");
    const efd = proc.eventfd(0, EFD_NONBLOCK);
    const pfd = [{ fd: efd, events: POLLIN, revents: 0 }];
    say(`poll before signal: ${proc.poll(pfd, 0)} ready`);
    proc.write(efd, new Uint8Array(new BigUint64Array([1n]).buffer));
    say(`poll after signal: ${proc.poll(pfd, 0)} ready (revents ${pfd[0].revents})`);

    say("# /dev/iommu: an IOAS, the buffer mapped into it at an automatic and a fixed IOVA");
    const iommufd = IommuFd.open(proc);
    const ioas = iommufd.allocIoas();
    const iova = ioas.map({ userVa: buf, length: 2 << 20 });
    say(`IOAS ${ioas.id}: 2 MiB mapped at IOVA 0x${iova.toString(16)} (2 MiB aligned, as the VA is)`);
    ioas.map({ userVa: buf, length: 4096, iova: 0x100000000n });
    const { ranges, alignment } = ioas.iovaRanges();
    say(`usable IOVA: ${ranges.map((r) => `[0x${r.start.toString(16)}, 0x${r.last.toString(16)}]`).join(" ")}, alignment ${alignment}`);
    try {
      ioas.map({ userVa: buf, length: 4096, iova: 0x100000000n });
    } catch (e) {
      if (!(e instanceof VfioError)) throw e;
      say(`mapping over it again: ${e.message}`);
    }
    say(`unmap all: ${ioas.unmapAll()} bytes`);
    iommufd.close();
    say(`# ${kernel.stats().iommufdObjects} iommufd objects left after close`);
    say(`open /dev/vfio/vfio: ${show(proc.open("/dev/vfio/vfio", O_RDWR))} (the VFIO nodes arrive with their driver)`);

    proc.kill();
    const s = kernel.stats();
    say(`# after exit: ${s.framesFree} of ${s.framesTotal} frames free, ${s.committedPages} pages committed, ${s.openFiles} files open`);
    return s.framesFree === s.framesTotal && s.openFiles === 0 ? 0 : 1;
  } finally {
    unsubscribe();
    await kernel.close();
  }
}
