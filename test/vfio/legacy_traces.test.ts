// TRACES.md replays of the legacy path: QEMU legacy type1v2 (§1b, fixtures 1 and 2), DPDK
// type1 (§2, fixtures 6 and 7) and rust-vmm's container path (§5a), with the outcomes the
// traces state. Guest RAM and hugepages are scaled down to fit the emulated memory.

import { describe, expect, it } from "vitest";
import {
  EFD_CLOEXEC, EFD_NONBLOCK, MAP_ANONYMOUS, MAP_HUGE_2MB, MAP_HUGETLB, MAP_PRIVATE, MAP_SHARED, O_CLOEXEC, O_RDWR,
  PROT_READ, PROT_WRITE, type Process,
} from "../../src/index.js";
import {
  boot, errno, groupOf, regionInfo, struct, u32, VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_RESET, VFIO_DEVICE_SET_IRQS,
} from "./util.js";
import {
  CONTAINER_SET, getDeviceFd, groupStatus, iommuInfo, MAP_READ, MAP_WRITE, mapDma, setContainer, unmapDma, VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION, VFIO_GROUP_UNSET_CONTAINER, VFIO_SET_IOMMU, VIABLE, type Type1Info,
} from "./legacy_util.js";

const MIB = 1024 * 1024;



function deviceInfo(p: Process, d: number): { flags: number; regions: number; irqs: number } {
  const a = struct(24, [[0, 4, 24]]);
  expect(p.ioctlBuf(d, VFIO_DEVICE_GET_INFO, a)).toBe(0);
  return { flags: u32(a, 4), regions: u32(a, 8), irqs: u32(a, 12) };
}

describe("TRACES §1b: QEMU legacy (type1v2)", () => {
  it("qemu-legacy-type1v2-coldplug: realize, map RAM sections, teardown leaves nothing mapped", async () => {
    const bdf = "0000:01:00.0";
    const k = await boot([{ bdf, model: "memcpy", iommuGroup: 12 }], { memoryBytes: 128 * MIB });
    const p = k.createProcess({ memlockBytes: 64 * MIB });
    const pinned0 = k.stats().pinnedPages;
    expect(typeof p.stat(`/sys/bus/pci/devices/${bdf}`)).toBe("object");
    expect(p.realpath(`/sys/bus/pci/devices/${bdf}/subsystem`)).toBe("/sys/bus/pci");
    const gid = groupOf(p, bdf);
    expect(gid).toBe(12);
    const g = p.open(`/dev/vfio/${gid}`, O_RDWR | O_CLOEXEC);
    expect(groupStatus(p, g) & VIABLE).toBe(VIABLE);
    const c = p.open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
    expect(p.ioctl(c, VFIO_GET_API_VERSION)).toBe(0);
    expect(p.ioctl(c, VFIO_CHECK_EXTENSION, 3)).toBe(1);
    expect(setContainer(p, g, c)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, 3)).toBe(0);
    // GET_INFO: the first call returns argsz > 24 with CAPS, the second gets the chain.
    const first = iommuInfo(p, c, 24) as Type1Info;
    expect(first.argsz).toBeGreaterThan(24);
    expect(first.flags).toBe(1 | 2);
    const info = iommuInfo(p, c, first.argsz) as Type1Info;
    expect([...info.caps.keys()].sort()).toEqual([1, 2, 3]);
    expect(info.caps.get(3)!.getUint32(8, true)).toBe(65535);
    expect(p.ioctl(c, VFIO_CHECK_EXTENSION, 9)).toBe(1);
    // Guest RAM (16 MiB here): [0, 0xa0000) RW, the ROM section read-only, then the rest.
    const ram = p.mmap(0, 16 * MIB, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_SHARED, -1, 0);
    const sections: [number, number, number][] = [[0, 0xa0000, MAP_READ | MAP_WRITE], [0xc0000, 0x20000, MAP_READ], [0x100000, 16 * MIB - 0x100000, MAP_READ | MAP_WRITE]];
    for (const [iova, size, flags] of sections) expect(mapDma(p, c, ram + iova, iova, size, flags)).toBe(0);
    const d = getDeviceFd(p, g, bdf);
    expect(d).toBeGreaterThanOrEqual(0);
    const di = deviceInfo(p, d);
    expect(di.flags & 3).toBe(3); // PCI | RESET
    expect(di.regions).toBeGreaterThanOrEqual(8);
    expect(di.irqs).toBeGreaterThanOrEqual(3);
    for (let i = 0; i <= 5; i++) expect(regionInfo(p, d, i).rc).toBe(0);
    const cfg = regionInfo(p, d, 7);
    expect(cfg.rc).toBe(0);
    const cfgSize = Number(cfg.size);
    const buf = new Uint8Array(Math.min(4096, cfgSize));
    expect(p.pread(d, buf, cfg.offset)).toBe(buf.length);
    const irqErr = struct(16, [[0, 4, 16], [8, 4, 3]]);
    p.ioctlBuf(d, VFIO_DEVICE_GET_IRQ_INFO, irqErr); // failure tolerated (old kernel)
    const req = struct(16, [[0, 4, 16], [8, 4, 4]]);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_IRQ_INFO, req)).toBe(0);
    expect(u32(req, 12)).toBe(1);
    const efd = p.eventfd(0, EFD_CLOEXEC);
    expect(p.ioctlBuf(d, VFIO_DEVICE_SET_IRQS, struct(24, [[0, 4, 24], [4, 4, (1 << 2) | (1 << 5)], [8, 4, 4], [16, 4, 1], [20, 4, efd]]))).toBe(0);
    // The device's DMA reaches guest RAM through the container's domain.
    p.writeMemory(ram + 0x200000, new Uint8Array([0xca, 0xfe]));
    const got = new Uint8Array(2);
    expect(k.device(bdf)!.dmaRead(0x200000, got)).toBe(0);
    expect([...got]).toEqual([0xca, 0xfe]);
    expect(k.device(bdf)!.dmaWrite(0xc0000, got)).toBe(-errno.EFAULT); // the ROM section is read-only
    // Teardown.
    expect(p.ioctlBuf(d, VFIO_DEVICE_SET_IRQS, struct(24, [[0, 4, 24], [4, 4, (1 << 2) | (1 << 5)], [8, 4, 4], [16, 4, 1], [20, 4, -1 >>> 0]]))).toBe(0);
    expect(p.close(d)).toBe(0);
    for (const [iova, size] of sections) expect(unmapDma(p, c, iova, size)).toEqual({ rc: 0, size: BigInt(size) });
    expect(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER, 0)).toBe(0);
    expect(p.close(c)).toBe(0);
    expect(p.close(g)).toBe(0);
    expect(k.stats().pinnedPages).toBe(pinned0);
    await k.close();
  });

  it("qemu-legacy-two-groups-shared-container: group 13 joins the existing container; its unplug leaves the mappings", async () => {
    const k = await boot([{ bdf: "0000:01:00.0", model: "memcpy", iommuGroup: 12 }, { bdf: "0000:02:00.0", model: "memcpy", iommuGroup: 13 }]);
    const p = k.createProcess();
    const g12 = p.open("/dev/vfio/12", O_RDWR | O_CLOEXEC);
    const c = p.open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
    expect(setContainer(p, g12, c)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, 3)).toBe(0);
    const ram = p.mmap(0, MIB, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_SHARED, -1, 0);
    expect(mapDma(p, c, ram, 0, MIB)).toBe(0);
    const d12 = getDeviceFd(p, g12, "0000:01:00.0");
    // The second group: SET_CONTAINER(existing fd) succeeds, no second container, no SET_IOMMU.
    const g13 = p.open("/dev/vfio/13", O_RDWR | O_CLOEXEC);
    expect(groupStatus(p, g13)).toBe(VIABLE);
    expect(setContainer(p, g13, c)).toBe(0);
    const d13 = getDeviceFd(p, g13, "0000:02:00.0");
    expect(d13).toBeGreaterThanOrEqual(0);
    p.writeMemory(ram + 0x1000, new Uint8Array([0x13]));
    const got = new Uint8Array(1);
    expect(k.device("0000:02:00.0")!.dmaRead(0x1000, got)).toBe(0);
    expect(got[0]).toBe(0x13);
    // Unplug 13: only its UNSET_CONTAINER; the container keeps its mappings for group 12.
    expect(p.close(d13)).toBe(0);
    expect(p.ioctl(g13, VFIO_GROUP_UNSET_CONTAINER, 0)).toBe(0);
    expect(p.close(g13)).toBe(0);
    expect(k.device("0000:01:00.0")!.dmaRead(0x1000, got)).toBe(0);
    expect(got[0]).toBe(0x13);
    expect(d12).toBeGreaterThanOrEqual(0);
    await k.close();
  });
});

describe("TRACES §2: DPDK (type1 v1)", () => {
  it("dpdk-type1-iova-va: probe, EEXIST treated as success, remove by close, re-probe re-maps", async () => {
    const bdf = "0000:03:00.0";
    const k = await boot([{ bdf, model: "memcpy", iommuGroup: 7 }], { memoryBytes: 64 * MIB });
    const p = k.createProcess({ memlockBytes: 32 * MIB });
    expect(p.open("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", 0)).toBe(-errno.ENOENT);
    const c = p.open("/dev/vfio/vfio", O_RDWR);
    expect(c).toBeGreaterThanOrEqual(0);
    expect(p.ioctl(c, VFIO_GET_API_VERSION)).toBe(0);
    expect(p.ioctl(c, VFIO_CHECK_EXTENSION, 1)).toBe(1);
    expect(p.ioctl(c, VFIO_CHECK_EXTENSION, 7)).toBe(0);
    expect(p.ioctl(c, VFIO_CHECK_EXTENSION, 8)).toBe(0);
    const gid = groupOf(p, bdf);
    // One 2 MiB hugepage segment stands in for the 1 GiB one; iova = va.
    const seg = p.mmap(0, 2 * MIB, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
    expect(seg).toBeGreaterThan(0);
    const probe = (): { g: number; d: number } => {
      const g = p.open(`/dev/vfio/${gid}`, O_RDWR);
      expect(g).toBeGreaterThanOrEqual(0);
      const st = groupStatus(p, g);
      expect(st & VIABLE).toBe(VIABLE);
      expect(st & CONTAINER_SET).toBe(0);
      expect(setContainer(p, g, c)).toBe(0);
      expect(p.ioctl(c, VFIO_SET_IOMMU, 1)).toBe(0);
      expect(mapDma(p, c, seg, seg, 2 * MIB)).toBe(0);
      // A user map over the same range: EEXIST, which DPDK treats as success.
      expect(mapDma(p, c, seg, seg, 2 * MIB)).toBe(-errno.EEXIST);
      const d = getDeviceFd(p, g, bdf);
      expect(d).toBeGreaterThanOrEqual(0);
      const di = deviceInfo(p, d);
      expect(di).toEqual({ flags: 3, regions: 9, irqs: 5 });
      // The region-info loop ends: argsz is left alone when the buffer is big enough.
      const cfg = regionInfo(p, d, 7);
      expect(cfg.rc).toBe(0);
      expect(cfg.argsz).toBe(32);
      expect(cfg.offset).toBe(0x70000000000n);
      const cmd = new Uint8Array(2);
      expect(p.pread(d, cmd, cfg.offset + 4n)).toBe(2);
      cmd[0] |= 0x6; // MEMORY | MASTER
      expect(p.pwrite(d, cmd, cfg.offset + 4n)).toBe(2);
      // DPDK tolerates EINVAL here; the device has VFIO_DEVICE_FLAGS_RESET, so the reset is done.
      expect(p.ioctl(d, VFIO_DEVICE_RESET)).toBe(0);
      const efd = p.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      expect(p.ioctlBuf(d, VFIO_DEVICE_SET_IRQS, struct(24, [[0, 4, 24], [4, 4, (1 << 2) | (1 << 5)], [8, 4, 4], [16, 4, 1], [20, 4, efd]]))).toBe(0);
      return { g, d };
    };
    const first = probe();
    expect(p.writeMemory(seg + 64, new Uint8Array([0x77]))).toBe(0);
    const got = new Uint8Array(1);
    expect(k.device(bdf)!.dmaRead(BigInt(seg + 64), got)).toBe(0);
    expect(got[0]).toBe(0x77);
    // rte_dev_remove: SET_IRQS REQ off, close devfd, close groupfd; no UNSET_CONTAINER.
    expect(p.ioctlBuf(first.d, VFIO_DEVICE_SET_IRQS, struct(20, [[0, 4, 20], [4, 4, (1 << 0) | (1 << 5)], [8, 4, 4]]))).toBe(0);
    expect(p.close(first.d)).toBe(0);
    expect(p.close(first.g)).toBe(0);
    // The group was detached and the container's IOMMU cleared with its mappings.
    expect(k.device(bdf)!.dmaRead(BigInt(seg + 64), got)).toBe(-errno.EFAULT);
    expect(mapDma(p, c, seg, seg, 2 * MIB)).toBe(-errno.EINVAL);
    // Hotplug again: SET_CONTAINER + SET_IOMMU + full re-map succeed.
    const again = probe();
    expect(k.device(bdf)!.dmaRead(BigInt(seg + 64), got)).toBe(0);
    expect(p.close(again.d)).toBe(0);
    expect(p.close(again.g)).toBe(0);
    await k.close();
  });

  it("dpdk-user-map-eexist-and-v1-unmap: an unmap inside a bigger v1 mapping reports the larger size", async () => {
    const bdf = "0000:03:00.0";
    const k = await boot([{ bdf, model: "memcpy", iommuGroup: 7 }]);
    const p = k.createProcess();
    const c = p.open("/dev/vfio/vfio", O_RDWR);
    const g = p.open("/dev/vfio/7", O_RDWR);
    expect(setContainer(p, g, c)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, 1)).toBe(0);
    const va = p.mmap(0, 64 * 1024, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    expect(mapDma(p, c, va, va, 64 * 1024)).toBe(0);
    expect(mapDma(p, c, va, va, 4096)).toBe(-errno.EEXIST);
    // DPDK unmaps one page at the start of the mapping and compares the size: it gets 64 KiB.
    const r = unmapDma(p, c, va, 4096);
    expect(r).toEqual({ rc: 0, size: 64n * 1024n });
    expect(r.size === 4096n).toBe(false); // => DPDK reports an error (EIO)
    await k.close();
  });
});

describe("TRACES §5a: rust-vmm vfio-ioctls container path (Cloud Hypervisor)", () => {
  it("strict checks (CHECK_EXTENSION == 1, GET_STATUS == VIABLE), regions 0..8, map, exact unmap size, drop order", async () => {
    const bdf = "0000:01:00.0";
    const k = await boot([{ bdf, model: "memcpy", iommuGroup: 15 }], { memoryBytes: 128 * MIB });
    const p = k.createProcess({ memlockBytes: Infinity });
    const pinned0 = k.stats().pinnedPages;
    const c = p.open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
    expect(p.ioctl(c, VFIO_GET_API_VERSION)).toBe(0);
    expect(p.ioctl(c, VFIO_CHECK_EXTENSION, 3)).toBe(1);
    const gid = groupOf(p, bdf);
    const g = p.open(`/dev/vfio/${gid}`, O_RDWR | O_CLOEXEC);
    expect(groupStatus(p, g)).toBe(VIABLE); // exactly
    expect(setContainer(p, g, c)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, 3)).toBe(0);
    const d = getDeviceFd(p, g, bdf);
    expect(d).toBeGreaterThanOrEqual(0);
    const di = deviceInfo(p, d);
    expect(di).toEqual({ flags: 3, regions: 9, irqs: 5 });
    for (let i = 0; i < di.regions; i++) {
      const r = regionInfo(p, d, i);
      if (i === 8) expect(r.rc).toBe(-errno.EINVAL); // VGA: skipped
      else expect(r.rc).toBe(0);
    }
    // Every index answers on a PCI Express function (ERR (3) included).
    for (let i = 0; i < di.irqs; i++) {
      expect(p.ioctlBuf(d, VFIO_DEVICE_GET_IRQ_INFO, struct(16, [[0, 4, 16], [8, 4, i]])), `irq ${i}`).toBe(0);
    }
    expect(p.ioctl(d, VFIO_DEVICE_RESET)).toBe(0); // (the library ignores the result)
    // Guest memory at GPA 0 (16 MiB here).
    const ram = p.mmap(0, 16 * MIB, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_SHARED, -1, 0);
    expect(mapDma(p, c, ram, 0, 16 * MIB)).toBe(0);
    expect(k.device(bdf)!.dmaWrite(0x123000, new Uint8Array([1]))).toBe(0);
    const r = unmapDma(p, c, 0, 16 * MIB);
    expect(r).toEqual({ rc: 0, size: BigInt(16 * MIB) }); // must equal the request
    // Drop: device first (else EBUSY putting the group), then UNSET, close group, close container.
    expect(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER, 0)).toBe(-errno.EBUSY);
    expect(p.close(d)).toBe(0);
    expect(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER, 0)).toBe(0);
    expect(p.close(g)).toBe(0);
    expect(p.close(c)).toBe(0);
    expect(k.stats().pinnedPages).toBe(pinned0);
    await k.close();
  });

  it("a second group of a running container: GET_STATUS != VIABLE exactly once CONTAINER_SET (GroupViable)", async () => {
    const k = await boot([{ bdf: "0000:01:00.0", model: "memcpy", iommuGroup: 15 }]);
    const p = k.createProcess();
    const c = p.open("/dev/vfio/vfio", O_RDWR);
    const g = p.open("/dev/vfio/15", O_RDWR);
    expect(setContainer(p, g, c)).toBe(0);
    expect(groupStatus(p, g)).toBe(VIABLE | CONTAINER_SET);
    await k.close();
  });
});
