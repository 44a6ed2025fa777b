// The demo scenario behind `vfio-emu demo`: what a userspace driver does, step by step,
// against an emulated kernel, with every syscall traced. It grows as the kernel does.

import { createKernel, errnoName, IommuFd, VfioContainer, VfioDeviceFile, VfioError, VfioGroup } from "./index.js";
import {
  EFD_NONBLOCK, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, POLLIN, PROT_READ, PROT_WRITE,
} from "./uapi/posix.js";
import { VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_OFFSET_SHIFT, VFIO_TYPE1v2_IOMMU } from "./uapi/vfio.js";

/** The file offset of vfio-pci's config-space region. */
const CONFIG_REGION = VFIO_PCI_CONFIG_REGION_INDEX * 2 ** VFIO_PCI_OFFSET_SHIFT;

export async function runDemo(out: (line: string) => void, glob = "*"): Promise<number> {
  const kernel = await createKernel({
    memoryBytes: 64 * 1024 * 1024,
    devices: [{ bdf: "0000:00:04.0", model: "memcpy", iommuGroup: 7 }],
  });
  const unsubscribe = kernel.trace(glob, (line) => out(`  ${line}`));
  const say = (s: string) => out(s);
  const show = (rc: number) => (rc < 0 ? `-${errnoName(rc)}` : `0x${rc.toString(16)}`);
  try {
    // What the devices themselves hold (config space, BAR memory) stays; the rest must come back.
    const framesAtBoot = kernel.stats().framesFree;
    const proc = kernel.createProcess({ uid: 1000 });
    let dmaIommufd: IommuFd | null = null;
    const iommufd2 = () => (dmaIommufd = IommuFd.open(proc));

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

    say("# the device's cdev, found through sysfs as libvfn and the kernel selftests do");
    const vfioDev = proc.readdir(`/sys/bus/pci/devices/${bdf}/vfio-dev`);
    say(`vfio-dev: ${String(vfioDev)}`);
    const dev = VfioDeviceFile.open(proc, `/dev/vfio/devices/${(vfioDev as string[])[0]}`);
    const cfg = new Uint8Array(4);
    say(`config read before BIND: ${show(proc.pread(dev.fd, cfg, CONFIG_REGION))} (the file starts blocked)`);
    const devid = dev.bind(iommufd2());
    say(`bound: devid ${devid}`);
    proc.pread(dev.fd, cfg, CONFIG_REGION);
    say(`config vendor:device ${(cfg[0] | cfg[1] << 8).toString(16)}:${(cfg[2] | cfg[3] << 8).toString(16)}`);
    const handle = kernel.device(bdf)!;
    const out = new Uint8Array(10);
    say(`device DMA before ATTACH: ${show(handle.dmaRead(0x10000, out))} (${handle.faults().at(-1)?.reason})`);
    const ioas2 = dmaIommufd!.allocIoas();
    const pt = dev.attach(ioas2.id);
    say(`attached to IOAS ${ioas2.id} through HWPT ${pt}`);
    ioas2.map({ userVa: buf, length: 1 << 20, iova: 0x10000n });
    say(`device reads IOVA 0x10000: ${show(handle.dmaRead(0x10000, out))} "${new TextDecoder().decode(out)}"`);
    say(`device writes IOVA 0x10000: ${show(handle.dmaWrite(0x10000, new TextEncoder().encode("HELLO")))}`);
    proc.readMemory(buf, back);
    say(`the process sees "${new TextDecoder().decode(back)}"`);
    ioas2.unmap(0x10000n, 1 << 20);
    const faulted = handle.dmaRead(0x10000, out);
    const fault = handle.faults().at(-1)!;
    say(`after unmap: ${show(faulted)} (fault at 0x${fault.iova.toString(16)}, ${fault.reason})`);
    dev.close();
    dmaIommufd!.close();
    say(`# ${kernel.stats().iommufdObjects} iommufd objects, ${kernel.stats().pinnedPages} pinned pages left after close`);
    proc.kill();
    const s = kernel.stats();
    say(`# after exit: ${s.framesFree} frames free (${framesAtBoot} at boot), ${s.committedPages} pages committed, ${s.openFiles} files open`);
    return s.framesFree === framesAtBoot && s.openFiles === 0 && s.iommufdObjects === 0 ? 0 : 1;
  } finally {
    unsubscribe();
    await kernel.close();
  }
}

/**
 * The legacy sequence behind `vfio-emu demo --legacy`, as QEMU's and DPDK's older paths do it:
 * the group file, a type1 container, the device fd from the group, DMA mappings through the
 * container, device DMA, unmap and the fault that follows.
 */
export async function runLegacyDemo(out: (line: string) => void, glob = "*"): Promise<number> {
  const kernel = await createKernel({
    memoryBytes: 64 * 1024 * 1024,
    devices: [{ bdf: "0000:00:04.0", model: "memcpy", iommuGroup: 7 }],
  });
  const unsubscribe = kernel.trace(glob, (line) => out(`  ${line}`));
  const say = (s: string) => out(s);
  const show = (rc: number) => (rc < 0 ? `-${errnoName(rc)}` : `0x${rc.toString(16)}`);
  try {
    const framesAtBoot = kernel.stats().framesFree;
    const proc = kernel.createProcess({ uid: 1000 });
    const bdf = "0000:00:04.0";
    const buf = proc.mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    proc.writeMemory(buf, new TextEncoder().encode("hello, DMA"));

    say("# the group: /dev/vfio/7, viable while every member is bound to vfio-pci");
    const group = VfioGroup.open(proc, 7);
    say(`group flags before a container: 0x${group.status().flags.toString(16)}`);
    say("# a type1 container: the group joins it, then the IOMMU model is chosen");
    const container = VfioContainer.open(proc);
    say(`VFIO_GET_API_VERSION: ${container.apiVersion()}`);
    say(`VFIO_CHECK_EXTENSION(TYPE1v2): ${container.checkExtension(VFIO_TYPE1v2_IOMMU)}`);
    group.setContainer(container);
    container.setIommu(VFIO_TYPE1v2_IOMMU);
    say(`group flags after SET_CONTAINER: 0x${group.status().flags.toString(16)}`);
    const dev = group.getDeviceFd(bdf);
    say(`device fd ${dev.fd} from VFIO_GROUP_GET_DEVICE_FD (already open for I/O: no BIND here)`);
    say("# map the buffer at IOVA 0x10000 through the container");
    container.mapDma({ vaddr: buf, iova: 0x10000, size: 1 << 20 });
    const handle = kernel.device(bdf)!;
    const seen = new Uint8Array(10);
    say(`device reads IOVA 0x10000: ${show(handle.dmaRead(0x10000, seen))} "${new TextDecoder().decode(seen)}"`);
    say(`device writes IOVA 0x10000: ${show(handle.dmaWrite(0x10000, new TextEncoder().encode("HELLO")))}`);
    proc.readMemory(buf, seen);
    say(`the process sees "${new TextDecoder().decode(seen)}"`);
    say(`unmapped ${container.unmapDma(0x10000, 1 << 20)} bytes`);
    const faulted = handle.dmaRead(0x10000, seen);
    const fault = handle.faults().at(-1)!;
    say(`after unmap: ${show(faulted)} (fault at 0x${fault.iova.toString(16)}, ${fault.reason})`);
    dev.close();
    group.close();
    container.close();
    proc.kill();
    const s = kernel.stats();
    say(`# after exit: ${s.framesFree} frames free (${framesAtBoot} at boot), ${s.openFiles} files open`);
    return s.framesFree === framesAtBoot && s.openFiles === 0 ? 0 : 1;
  } finally {
    unsubscribe();
    await kernel.close();
  }
}
