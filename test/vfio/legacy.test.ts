// The legacy VFIO path: SPEC.md Appendix A.3, the group rows of §5.1 and §2.2 with exact
// errnos, the container state machine of §2.3, and type1 MAP/UNMAP/GET_INFO (§3.4).

import { describe, expect, it } from "vitest";
import {
  O_CLOEXEC, O_RDWR, VfioContainer, VfioError, VfioGroup, IommuFd,
  type Kernel, type Process,
} from "../../src/index.js";
import { bind, bindArg, boot, errno, getInfo, openDev, openIommufd, struct, thrown, u32, VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT, attachArg, detachArg } from "./util.js";
import {
  CONTAINER_SET, getDeviceFd, groupStatus, iommuInfo, iovaRangesType1, legacyOpen, MAP_READ, MAP_VADDR, MAP_WRITE, mapArg,
  mapDma, PG, setContainer, UNMAP_ALL, UNMAP_VADDR, unmapDma, U64_MAX, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU,
  VFIO_GET_API_VERSION, VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_GET_STATUS, VFIO_GROUP_UNSET_CONTAINER,
  VFIO_IOMMU_DIRTY_PAGES, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_NOIOMMU_IOMMU,
  VFIO_SET_IOMMU, VFIO_SPAPR_TCE_IOMMU, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR, VIABLE,
  type Type1Info,
} from "./legacy_util.js";
import { anon } from "../toolkit/memory.js";

const BDF = "0000:00:05.0";
const dev7 = { bdf: BDF, model: "memcpy", iommuGroup: 7 };


/** A kernel with dev7, a process, and containerWithGroup(type) in it. */
async function bootContainer(type = VFIO_TYPE1v2_IOMMU): Promise<{ k: Kernel; p: Process; c: number; g: number }> {
  const k = await boot([dev7]);
  const p = k.createProcess();
  return { k, p, ...containerWithGroup(p, type) };
}

/** A container with group 7 in it and the IOMMU set; the device fd not yet obtained. */
function containerWithGroup(p: Process, type = VFIO_TYPE1v2_IOMMU): { c: number; g: number } {
  const c = p.open("/dev/vfio/vfio", O_RDWR);
  const g = p.open("/dev/vfio/7", O_RDWR);
  expect(setContainer(p, g, c)).toBe(0);
  expect(p.ioctl(c, VFIO_SET_IOMMU, type)).toBe(0);
  return { c, g };
}

describe("SPEC Appendix A.3: the legacy group path", () => {
  it("A.3 steps 1-7 with exact results", async () => {
    const k = await boot([dev7]);
    const p = k.createProcess();
    // 1.
    const c = p.open("/dev/vfio/vfio", O_RDWR);
    expect(c).toBeGreaterThanOrEqual(0);
    expect(p.ioctl(c, VFIO_GET_API_VERSION)).toBe(0);
    expect(p.ioctl(c, VFIO_CHECK_EXTENSION, 3)).toBe(1);
    // 2.
    const g = p.open("/dev/vfio/7", O_RDWR);
    expect(g).toBeGreaterThanOrEqual(0);
    expect(groupStatus(p, g)).toBe(VIABLE);
    // 3.
    expect(getDeviceFd(p, g, BDF)).toBe(-errno.EINVAL);
    // 4.
    expect(setContainer(p, g, c)).toBe(0);
    expect(groupStatus(p, g)).toBe(VIABLE | CONTAINER_SET);
    // 5.
    const buf = anon(p, PG);
    expect(mapDma(p, c, buf, 0, PG)).toBe(-errno.EINVAL);
    expect(p.ioctl(c, VFIO_SET_IOMMU, 3)).toBe(0);
    // 6.
    const d = getDeviceFd(p, g, BDF);
    expect(d).toBeGreaterThanOrEqual(0);
    expect(getInfo(p, d)).toBe(0);
    expect(p.ioctlBuf(d, VFIO_DEVICE_BIND_IOMMUFD, bindArg(openIommufd(p)))).toBe(-errno.EINVAL);
    // 7.
    expect(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER)).toBe(-errno.EBUSY);
    expect(p.close(d)).toBe(0);
    expect(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(groupStatus(p, g)).toBe(VIABLE);
    await k.close();
  });

  it("group nodes: char devices under /dev/vfio, one per IOMMU group with a vfio-pci device", async () => {
    const k = await boot([dev7, { bdf: "0000:00:06.0", model: "memcpy", iommuGroup: 9, driver: "kernel" }]);
    const p = k.createProcess();
    expect(p.readdir("/dev/vfio")).toEqual(["7", "devices", "vfio"]);
    const st = p.stat("/dev/vfio/7") as { mode: number; rdev: number };
    expect(st.mode & 0o170000).toBe(0o020000);
    const cst = p.stat("/dev/vfio/vfio") as { mode: number; rdev: number };
    expect(cst.rdev).toBe((10 << 8) | 196);
    expect(p.open("/dev/vfio/9", O_RDWR)).toBe(-errno.ENOENT);
    await k.close();
  });

  it("GET_DEVICE_FD: the new fd is granted before it exists, close-on-exec, O_RDWR", async () => {
    const { k, p, g } = await bootContainer();
    const d = getDeviceFd(p, g, BDF);
    const ref = p.fileRef(d) as { slot: number };
    const word = (k as unknown as { kcore: { core: { x: { gate_word(s: number): number } } } }).kcore.core.x.gate_word(ref.slot);
    expect(word & 0xff).toBe(1);
    expect(p.fcntl(d, 3 /* F_GETFL */) & 3).toBe(O_RDWR);
    expect(p.fcntl(d, 1 /* F_GETFD */)).toBe(1);
    // ATTACH/DETACH fall through to vfio-pci: ENOTTY. BIND: EINVAL.
    expect(p.ioctlBuf(d, VFIO_DEVICE_ATTACH_IOMMUFD_PT, attachArg(1))).toBe(-errno.ENOTTY);
    expect(p.ioctlBuf(d, VFIO_DEVICE_DETACH_IOMMUFD_PT, detachArg())).toBe(-errno.ENOTTY);
    expect(p.ioctlBuf(d, VFIO_DEVICE_BIND_IOMMUFD, bindArg(99))).toBe(-errno.EINVAL);
    // Any number of device fds for one device through the group.
    const d2 = getDeviceFd(p, g, BDF);
    expect(d2).toBeGreaterThan(d);
    expect(getInfo(p, d2)).toBe(0);
    await k.close();
  });

  it("GET_DEVICE_FD name rules: ENODEV, EFAULT, EINVAL past a page, vf_token options", async () => {
    const { k, p, g } = await bootContainer();
    expect(getDeviceFd(p, g, "0000:00:05.1")).toBe(-errno.ENODEV);
    expect(getDeviceFd(p, g, "0000:00:05")).toBe(-errno.ENODEV);
    expect(getDeviceFd(p, g, `${BDF}x`)).toBe(-errno.ENODEV);
    expect(p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, 0x10)).toBe(-errno.EFAULT);
    // 4095 characters + NUL fit a page; 4096 do not.
    expect(p.ioctlBuf(g, VFIO_GROUP_GET_DEVICE_FD, new Uint8Array(4097).fill(0x41))).toBe(-errno.EINVAL);
    const fits = new Uint8Array(4096).fill(0x41);
    fits[4095] = 0;
    expect(p.ioctlBuf(g, VFIO_GROUP_GET_DEVICE_FD, fits)).toBe(-errno.ENODEV);
    // A string that runs into unmapped memory before its NUL: EFAULT.
    const buf = anon(p, 2 * PG);
    expect(p.munmap(buf + PG, PG)).toBe(0);
    p.writeMemory(buf + PG - 3, new TextEncoder().encode("000"));
    expect(p.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, buf + PG - 3)).toBe(-errno.EFAULT);
    // vfio-pci's options: a token on a device that is neither PF nor VF, or junk: EINVAL.
    expect(getDeviceFd(p, g, `${BDF} vf_token=2ab74924-c335-45f4-9b16-8569e5b08258`)).toBe(-errno.EINVAL);
    expect(getDeviceFd(p, g, `${BDF} vf_token=zz`)).toBe(-errno.EINVAL);
    expect(getDeviceFd(p, g, `${BDF} bogus`)).toBe(-errno.EINVAL);
    expect(getDeviceFd(p, g, `${BDF}  `)).toBeGreaterThanOrEqual(0);
    await k.close();
  });

  it("GET_STATUS: argsz < 8 EINVAL, bad pointer EFAULT; other group ioctls ENOTTY", async () => {
    const k = await boot([dev7]);
    const p = k.createProcess();
    const g = p.open("/dev/vfio/7", O_RDWR);
    expect(p.ioctlBuf(g, VFIO_GROUP_GET_STATUS, struct(8, [[0, 4, 7]]))).toBe(-errno.EINVAL);
    expect(p.ioctl(g, VFIO_GROUP_GET_STATUS, 8)).toBe(-errno.EFAULT);
    const long = struct(16, [[0, 4, 16], [8, 4, 0xdeadbeef]]);
    expect(p.ioctlBuf(g, VFIO_GROUP_GET_STATUS, long)).toBe(0);
    expect(u32(long, 4)).toBe(VIABLE);
    expect(u32(long, 8)).toBe(0xdeadbeef);
    for (const cmd of [0x3b64, 0x3b65, 0x3b66, 0x3b6b, 0x3b71, 0x3b76, 0x3b80]) expect(p.ioctl(g, cmd, 0)).toBe(-errno.ENOTTY);
    await k.close();
  });
});

describe("SPEC §5.1 / §2.2: group exclusion with exact errnos", () => {
  it("second open of a group node: EBUSY; after close it opens again", async () => {
    const k = await boot([dev7]);
    const p = k.createProcess();
    const q = k.createProcess();
    const g = p.open("/dev/vfio/7", O_RDWR);
    expect(p.open("/dev/vfio/7", O_RDWR)).toBe(-errno.EBUSY);
    expect(q.open("/dev/vfio/7", O_RDWR)).toBe(-errno.EBUSY);
    expect(p.close(g)).toBe(0);
    expect(q.open("/dev/vfio/7", O_RDWR)).toBeGreaterThanOrEqual(0);
    await k.close();
  });

  it("open of the group while a member is cdev-bound: EBUSY; after close: ok", async () => {
    const k = await boot([dev7]);
    const p = k.createProcess();
    const d = openDev(p);
    const i = openIommufd(p);
    expect(bind(p, d, i)).toBe(1);
    expect(p.open("/dev/vfio/7", O_RDWR)).toBe(-errno.EBUSY);
    expect(p.close(d)).toBe(0);
    expect(p.open("/dev/vfio/7", O_RDWR)).toBeGreaterThanOrEqual(0);
    await k.close();
  });

  it("cdev BIND while the group file is open (no container, no devices): EBUSY", async () => {
    const k = await boot([dev7]);
    const p = k.createProcess();
    const g = p.open("/dev/vfio/7", O_RDWR);
    const d = openDev(p);
    const i = openIommufd(p);
    expect(bind(p, d, i)).toBe(-errno.EBUSY);
    expect(p.close(g)).toBe(0);
    expect(bind(p, d, i)).toBe(1);
    await k.close();
  });

  it("a sibling cdev-bound: the group node cannot even be opened (EBUSY)", async () => {
    const k = await boot([dev7, { bdf: "0000:00:05.1", model: "memcpy", iommuGroup: 7 }]);
    const p = k.createProcess();
    const d = openDev(p, 1);
    expect(bind(p, d, openIommufd(p))).toBe(1);
    expect(p.open("/dev/vfio/7", O_RDWR)).toBe(-errno.EBUSY);
    await k.close();
  });

  it("a sibling on a kernel driver: not viable; SET_CONTAINER(container) EPERM; with an iommufd VIABLE but GET_DEVICE_FD EPERM", async () => {
    const k = await boot([dev7, { bdf: "0000:00:05.1", model: "memcpy", iommuGroup: 7, driver: "kernel" }]);
    const p = k.createProcess();
    const g = p.open("/dev/vfio/7", O_RDWR);
    expect(groupStatus(p, g)).toBe(0);
    const c = p.open("/dev/vfio/vfio", O_RDWR);
    expect(setContainer(p, g, c)).toBe(-errno.EPERM);
    expect(groupStatus(p, g)).toBe(0);
    const i = openIommufd(p);
    expect(setContainer(p, g, i)).toBe(0);
    expect(groupStatus(p, g)).toBe(VIABLE | CONTAINER_SET);
    expect(getDeviceFd(p, g, BDF)).toBe(-errno.EPERM);
    await k.close();
  });

  it("a sibling with no driver keeps the group viable", async () => {
    const k = await boot([dev7, { bdf: "0000:00:05.1", model: "memcpy", iommuGroup: 7, driver: "none" }]);
    const p = k.createProcess();
    const g = p.open("/dev/vfio/7", O_RDWR);
    expect(groupStatus(p, g)).toBe(VIABLE);
    await k.close();
  });

  it("a kernel driver cannot bind to a member of a group a container owns (driver probe EBUSY)", async () => {
    const { k, p } = await bootContainer();
    const h = k.addDevice({ bdf: "0000:00:05.1", model: "memcpy", iommuGroup: 7, driver: "kernel" });
    expect(p.readlink(`/sys/bus/pci/devices/${h.bdf}/driver`)).toBe(-errno.ENOENT);
    await k.close();
  });

  it("SET_CONTAINER errors: EFAULT, EBADF, EBADFD, EINVAL when already set", async () => {
    const k = await boot([dev7]);
    const p = k.createProcess();
    const g = p.open("/dev/vfio/7", O_RDWR);
    const c = p.open("/dev/vfio/vfio", O_RDWR);
    expect(p.ioctl(g, 0x3b68, 0x10)).toBe(-errno.EFAULT);
    expect(setContainer(p, g, 77)).toBe(-errno.EBADF);
    expect(setContainer(p, g, -1)).toBe(-errno.EBADF);
    const ev = p.eventfd(0, 0);
    expect(setContainer(p, g, ev)).toBe(-errno.EBADFD);
    expect(setContainer(p, g, g)).toBe(-errno.EBADFD);
    expect(setContainer(p, g, c)).toBe(0);
    expect(setContainer(p, g, c)).toBe(-errno.EINVAL);
    expect(setContainer(p, g, openIommufd(p))).toBe(-errno.EINVAL);
    await k.close();
  });

  it("UNSET_CONTAINER: EINVAL when nothing is set; the iommufd case has no EBUSY check", async () => {
    const k = await boot([dev7]);
    const p = k.createProcess();
    const g = p.open("/dev/vfio/7", O_RDWR);
    expect(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER)).toBe(-errno.EINVAL);
    const i = openIommufd(p);
    expect(setContainer(p, g, i)).toBe(0);
    const d = getDeviceFd(p, g, BDF);
    expect(d).toBeGreaterThanOrEqual(0);
    expect(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    // The device stays bound to the iommufd (it holds its own reference) and usable.
    expect(getInfo(p, d)).toBe(0);
    expect(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER)).toBe(-errno.EINVAL);
    await k.close();
  });

  it("the device fd pins the group file in container mode: closing the group keeps the container", async () => {
    const { k, p, c, g } = await bootContainer();
    const d = getDeviceFd(p, g, BDF);
    const buf = anon(p, PG);
    p.writeMemory(buf, new Uint8Array([9, 8, 7]));
    expect(mapDma(p, c, buf, 0x10000, PG)).toBe(0);
    expect(p.close(g)).toBe(0);
    // The group is still open (pinned by the device fd): a new open is EBUSY.
    expect(p.open("/dev/vfio/7", O_RDWR)).toBe(-errno.EBUSY);
    const h = k.device(BDF)!;
    const out = new Uint8Array(3);
    expect(h.dmaRead(0x10000, out)).toBe(0);
    expect([...out]).toEqual([9, 8, 7]);
    expect(p.close(d)).toBe(0);
    // Now the group released: detached, the container emptied, DMA blocked.
    expect(h.dmaRead(0x10000, out)).toBe(-errno.EFAULT);
    expect(h.faults().at(-1)!.reason).toBe("blocked");
    expect(mapDma(p, c, buf, 0x20000, PG)).toBe(-errno.EINVAL);
    const g2 = p.open("/dev/vfio/7", O_RDWR);
    expect(groupStatus(p, g2)).toBe(VIABLE);
    await k.close();
  });

  it("a device fd from the group blocks a cdev BIND of that device (EBUSY from the open group, then EINVAL)", async () => {
    const k = await boot([dev7]);
    const p = k.createProcess();
    const i = openIommufd(p);
    const g = p.open("/dev/vfio/7", O_RDWR);
    expect(setContainer(p, g, i)).toBe(0);
    const d = getDeviceFd(p, g, BDF);
    const cd = openDev(p);
    expect(bind(p, cd, i)).toBe(-errno.EBUSY);
    expect(p.close(g)).toBe(0);
    // The group file went (the iommufd path does not pin it); the device is still open.
    expect(bind(p, cd, i)).toBe(-errno.EINVAL);
    expect(p.close(d)).toBe(0);
    expect(bind(p, cd, i)).toBe(2); // 1 is the compat IOAS; the group device's id 2 went with its close
    await k.close();
  });
});

describe("SPEC §2.3: the container state machine", () => {
  it("EMPTY: SET_IOMMU EINVAL, other ioctls EINVAL, CHECK_EXTENSION answers for type1", async () => {
    const k = await boot([dev7]);
    const p = k.createProcess();
    const c = p.open("/dev/vfio/vfio", O_RDWR);
    expect(p.ioctl(c, VFIO_SET_IOMMU, 3)).toBe(-errno.EINVAL);
    for (const [ext, want] of [[VFIO_TYPE1_IOMMU, 1], [VFIO_TYPE1v2_IOMMU, 1], [VFIO_UNMAP_ALL, 1], [VFIO_UPDATE_VADDR, 0],
      [VFIO_DMA_CC_IOMMU, 0], [VFIO_SPAPR_TCE_IOMMU, 0], [7, 0], [VFIO_NOIOMMU_IOMMU, 0], [6, 0], [0, 0]]) {
      expect(p.ioctl(c, VFIO_CHECK_EXTENSION, ext), `ext ${ext}`).toBe(want);
    }
    expect(p.ioctlBuf(c, VFIO_IOMMU_GET_INFO, struct(24, [[0, 4, 24]]))).toBe(-errno.EINVAL);
    expect(p.ioctl(c, 0x1234)).toBe(-errno.EINVAL);
    await k.close();
  });

  it("HAS_GROUPS: unknown type ENODEV, SET_IOMMU once; IOMMU_SET: again EINVAL, unknown ioctls ENOTTY", async () => {
    const k = await boot([dev7]);
    const p = k.createProcess();
    const c = p.open("/dev/vfio/vfio", O_RDWR);
    const g = p.open("/dev/vfio/7", O_RDWR);
    expect(setContainer(p, g, c)).toBe(0);
    expect(p.ioctl(c, 0x1234)).toBe(-errno.EINVAL);
    for (const t of [0, 2, 6, 7, 8, 99]) expect(p.ioctl(c, VFIO_SET_IOMMU, t), `type ${t}`).toBe(-errno.ENODEV);
    expect(p.ioctl(c, VFIO_SET_IOMMU, 1)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, 1)).toBe(-errno.EINVAL);
    expect(p.ioctl(c, VFIO_SET_IOMMU, 3)).toBe(-errno.EINVAL);
    expect(p.ioctl(c, 0x1234)).toBe(-errno.ENOTTY);
    expect(p.ioctl(c, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU)).toBe(1);
    expect(p.ioctl(c, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR)).toBe(1);
    await k.close();
  });

  it("the last group leaving returns the container to EMPTY and drops every mapping and pin", async () => {
    const { k, p, c, g } = await bootContainer();
    const buf = anon(p, 4 * PG);
    const pinned0 = k.stats().pinnedPages;
    expect(mapDma(p, c, buf, 0x100000, 4 * PG)).toBe(0);
    expect(k.stats().pinnedPages - pinned0).toBe(4);
    expect(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(k.stats().pinnedPages).toBe(pinned0);
    expect(mapDma(p, c, buf, 0x100000, 4 * PG)).toBe(-errno.EINVAL);
    // DPDK re-adds the group: SET_CONTAINER, SET_IOMMU again, mappings from scratch.
    expect(setContainer(p, g, c)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, 1)).toBe(0);
    expect(mapDma(p, c, buf, 0x100000, 4 * PG)).toBe(0);
    await k.close();
  });

  it("closing the container file keeps it alive for its groups; closing everything unpins", async () => {
    const { k, p, c, g } = await bootContainer();
    const d = getDeviceFd(p, g, BDF);
    const buf = anon(p, PG);
    const pinned0 = k.stats().pinnedPages;
    expect(mapDma(p, c, buf, 0, PG)).toBe(0);
    expect(p.close(c)).toBe(0);
    expect(k.device(BDF)!.dmaWrite(0, new Uint8Array([5]))).toBe(0);
    const back = new Uint8Array(1);
    p.readMemory(buf, back);
    expect(back[0]).toBe(5);
    expect(p.close(d)).toBe(0);
    expect(p.close(g)).toBe(0);
    expect(k.stats().pinnedPages).toBe(pinned0);
    await k.close();
  });

  it("two groups share one container and one domain; a second container is refused nothing", async () => {
    const k = await boot([dev7, { bdf: "0000:00:06.0", model: "memcpy", iommuGroup: 8 }]);
    const p = k.createProcess();
    const { c, g } = containerWithGroup(p);
    const buf = anon(p, PG);
    p.writeMemory(buf, new Uint8Array([0x5a]));
    expect(mapDma(p, c, buf, 0x4000, PG)).toBe(0);
    const g8 = p.open("/dev/vfio/8", O_RDWR);
    expect(setContainer(p, g8, c)).toBe(0);
    const out = new Uint8Array(1);
    expect(k.device("0000:00:06.0")!.dmaRead(0x4000, out)).toBe(0);
    expect(out[0]).toBe(0x5a);
    expect(p.ioctl(g8, VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(k.device("0000:00:06.0")!.dmaRead(0x4000, out)).toBe(-errno.EFAULT);
    expect(k.device(BDF)!.dmaRead(0x4000, out)).toBe(0);
    expect(g).toBeGreaterThanOrEqual(0);
    await k.close();
  });

  it("type1 attach checks: interrupts not isolated EPERM (unless allowUnsafeInterrupts)", async () => {
    const cfg = { ...dev7, iommu: { msiIsolated: false } };
    let k = await boot([cfg]);
    let p = k.createProcess();
    const c = p.open("/dev/vfio/vfio", O_RDWR);
    const g = p.open("/dev/vfio/7", O_RDWR);
    expect(setContainer(p, g, c)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, 3)).toBe(-errno.EPERM);
    await k.close();
    k = await boot([cfg], { allowUnsafeInterrupts: true });
    p = k.createProcess();
    containerWithGroup(p);
    await k.close();
  });
});

describe("type1 MAP_DMA / UNMAP_DMA (SPEC §3.4)", () => {
  it("MAP_DMA checks in the kernel's order", async () => {
    const k = await boot([dev7], { dmaEntryLimit: 2 });
    const p = k.createProcess();
    const { c } = containerWithGroup(p);
    const buf = anon(p, 4 * PG);
    expect(p.ioctlBuf(c, VFIO_IOMMU_MAP_DMA, mapArg(buf, 0, PG, 3, 31))).toBe(-errno.EINVAL);
    expect(p.ioctl(c, VFIO_IOMMU_MAP_DMA, 8)).toBe(-errno.EFAULT);
    expect(mapDma(p, c, buf, 0, PG, 8)).toBe(-errno.EINVAL);
    expect(mapDma(p, c, buf, 0, 0)).toBe(-errno.EINVAL);
    expect(mapDma(p, c, buf, U64_MAX & ~0xfffn, 2 * PG)).toBe(-errno.EOVERFLOW);
    expect(mapDma(p, c, U64_MAX & ~0xfffn, 0, 2 * PG)).toBe(-errno.EOVERFLOW);
    expect(mapDma(p, c, buf, 0, PG, 0)).toBe(-errno.EINVAL);
    expect(mapDma(p, c, buf, 0, PG, MAP_READ | MAP_VADDR)).toBe(-errno.EINVAL);
    expect(mapDma(p, c, buf + 1, 0, PG)).toBe(-errno.EINVAL);
    expect(mapDma(p, c, buf, 0x800, PG)).toBe(-errno.EINVAL);
    expect(mapDma(p, c, buf, 0, 0x1800)).toBe(-errno.EINVAL);
    expect(mapDma(p, c, buf, 0, 2 * PG)).toBe(0);
    expect(mapDma(p, c, buf, PG, PG)).toBe(-errno.EEXIST);
    // Read-only and write-only maps are fine.
    expect(mapDma(p, c, buf, 0x10000, PG, MAP_READ)).toBe(0);
    expect(mapDma(p, c, buf, 0x20000, PG, MAP_WRITE)).toBe(-errno.ENOSPC);
    // The x86 MSI window and the space past 48 bits are outside the valid ranges.
    const { rc } = unmapDma(p, c, 0x10000, PG);
    expect(rc).toBe(0);
    expect(mapDma(p, c, buf, 0xfee00000, PG)).toBe(-errno.EINVAL);
    expect(mapDma(p, c, buf, 1n << 48n, PG)).toBe(-errno.EINVAL);
    // Unmapped memory: EFAULT, nothing left behind.
    expect(mapDma(p, c, 0x7000_0000_0000, 0x30000, PG)).toBe(-errno.EFAULT);
    expect(mapDma(p, c, buf, 0x30000, PG)).toBe(0);
    await k.close();
  });

  it("permissions reach the IOMMU: a read-only map faults device writes", async () => {
    const { k, p, c } = await bootContainer();
    const buf = anon(p, PG);
    expect(mapDma(p, c, buf, 0x8000, PG, MAP_READ)).toBe(0);
    const h = k.device(BDF)!;
    expect(h.dmaRead(0x8000, new Uint8Array(8))).toBe(0);
    expect(h.dmaWrite(0x8000, new Uint8Array(8))).toBe(-errno.EFAULT);
    expect(h.faults().at(-1)).toEqual({ iova: 0x8000n, write: true, reason: "perm" });
    await k.close();
  });

  it("UNMAP_DMA argument checks: argsz, flags, alignment, ALL with a range, wrap (EOVERFLOW)", async () => {
    const { k, p, c } = await bootContainer();
    expect(p.ioctlBuf(c, VFIO_IOMMU_UNMAP_DMA, struct(24, [[0, 4, 23]]))).toBe(-errno.EINVAL);
    expect(unmapDma(p, c, 0, PG, 8).rc).toBe(-errno.EINVAL);
    expect(unmapDma(p, c, 0, PG, 1 | 2).rc).toBe(-errno.EINVAL);
    expect(unmapDma(p, c, 0x800, PG).rc).toBe(-errno.EINVAL);
    expect(unmapDma(p, c, 0, 0).rc).toBe(-errno.EINVAL);
    expect(unmapDma(p, c, 0, 0x800).rc).toBe(-errno.EINVAL);
    expect(unmapDma(p, c, PG, 0, UNMAP_ALL).rc).toBe(-errno.EINVAL);
    expect(unmapDma(p, c, 0, PG, UNMAP_ALL).rc).toBe(-errno.EINVAL);
    expect(unmapDma(p, c, U64_MAX & ~0xfffn, 2 * PG).rc).toBe(-errno.EOVERFLOW);
    // Dirty bitmap without tracking: EINVAL.
    expect(unmapDma(p, c, 0, PG, 1).rc).toBe(-errno.EINVAL);
    // Nothing mapped: success, size 0.
    expect(unmapDma(p, c, 0, PG)).toEqual({ rc: 0, size: 0n });
    expect(unmapDma(p, c, 0, 0, UNMAP_ALL)).toEqual({ rc: 0, size: 0n });
    await k.close();
  });

  it("v2: bisecting a mapping at either end is EINVAL with no partial effect; covering ranges may span holes", async () => {
    const { k, p, c } = await bootContainer(VFIO_TYPE1v2_IOMMU);
    const buf = anon(p, 8 * PG);
    expect(mapDma(p, c, buf, 0x10000, 2 * PG)).toBe(0);
    expect(mapDma(p, c, buf, 0x20000, 2 * PG)).toBe(0);
    expect(unmapDma(p, c, 0x10000, PG).rc).toBe(-errno.EINVAL);
    expect(unmapDma(p, c, 0x11000, PG).rc).toBe(-errno.EINVAL);
    expect(unmapDma(p, c, 0x10000, 0x11000).rc).toBe(-errno.EINVAL); // ends inside the second
    expect(unmapDma(p, c, 0x0f000, 0x2000).rc).toBe(-errno.EINVAL); // starts before, ends inside
    expect(k.device(BDF)!.dmaRead(0x10000, new Uint8Array(4))).toBe(0);
    expect(unmapDma(p, c, 0x8000, 0x20000)).toEqual({ rc: 0, size: 0x4000n });
    expect(unmapDma(p, c, 0x10000, 2 * PG)).toEqual({ rc: 0, size: 0n });
    await k.close();
  });

  it("v1: a range starting inside a mapping unmaps nothing (0 bytes); one covering a start removes the whole mapping", async () => {
    const { k, p, c } = await bootContainer(VFIO_TYPE1_IOMMU);
    const buf = anon(p, 8 * PG);
    expect(mapDma(p, c, buf, 0x10000, 4 * PG)).toBe(0);
    expect(mapDma(p, c, buf, 0x20000, 2 * PG)).toBe(0);
    expect(unmapDma(p, c, 0x11000, PG)).toEqual({ rc: 0, size: 0n });
    expect(unmapDma(p, c, 0x11000, 0x20000)).toEqual({ rc: 0, size: 0n });
    expect(k.device(BDF)!.dmaRead(0x13000, new Uint8Array(4))).toBe(0);
    // From the start, one page: the whole 4-page mapping goes and the size says so.
    expect(unmapDma(p, c, 0x10000, PG)).toEqual({ rc: 0, size: 0x4000n });
    expect(k.device(BDF)!.dmaRead(0x13000, new Uint8Array(4))).toBe(-errno.EFAULT);
    expect(unmapDma(p, c, 0x1f000, 0x2000)).toEqual({ rc: 0, size: 0x2000n });
    await k.close();
  });

  it("UNMAP_ALL removes everything and reports the sum", async () => {
    const { k, p, c } = await bootContainer();
    const buf = anon(p, 8 * PG);
    for (let i = 0; i < 5; i++) expect(mapDma(p, c, buf, 0x100000 * (i + 1), PG)).toBe(0);
    expect(unmapDma(p, c, 0, 0, UNMAP_ALL)).toEqual({ rc: 0, size: 5n * 0x1000n });
    await k.close();
  });

  it("the mapping limit: ENOSPC at dmaEntryLimit, room again after an unmap; DMA_AVAIL follows", async () => {
    const k = await boot([dev7], { dmaEntryLimit: 3 });
    const p = k.createProcess();
    const { c } = containerWithGroup(p);
    const buf = anon(p, PG);
    const avail = () => ((iommuInfo(p, c, 512) as Type1Info).caps.get(3)!).getUint32(8, true);
    expect(avail()).toBe(3);
    for (let i = 0; i < 3; i++) expect(mapDma(p, c, buf, PG * (i + 1), PG)).toBe(0);
    expect(avail()).toBe(0);
    expect(mapDma(p, c, buf, 0x10000, PG)).toBe(-errno.ENOSPC);
    expect(unmapDma(p, c, PG, PG).size).toBe(BigInt(PG));
    expect(avail()).toBe(1);
    expect(mapDma(p, c, buf, 0x10000, PG)).toBe(0);
    await k.close();
  });

  it("RLIMIT_MEMLOCK per mm: ENOMEM past the limit, uncharged on unmap; CAP_IPC_LOCK exempt", async () => {
    const k = await boot([dev7]);
    const p = k.createProcess({ memlockBytes: 4 * PG });
    const { c } = containerWithGroup(p);
    const buf = anon(p, 8 * PG);
    expect(mapDma(p, c, buf, 0x10000, 3 * PG)).toBe(0);
    expect(mapDma(p, c, buf, 0x20000, 2 * PG)).toBe(-errno.ENOMEM);
    expect(mapDma(p, c, buf, 0x20000, PG)).toBe(0);
    // The same pages mapped twice are charged twice (type1 counts per mapping).
    expect(mapDma(p, c, buf, 0x30000, PG)).toBe(-errno.ENOMEM);
    expect(unmapDma(p, c, 0x10000, 3 * PG).size).toBe(3n * 0x1000n);
    expect(mapDma(p, c, buf, 0x30000, 3 * PG)).toBe(0);
    await k.close();
    const k2 = await boot([dev7]);
    const q = k2.createProcess({ memlockBytes: PG, capIpcLock: true });
    const r = containerWithGroup(q);
    const b2 = anon(q, 8 * PG);
    expect(mapDma(q, r.c, b2, 0x10000, 8 * PG)).toBe(0);
    await k2.close();
  });

  it("VADDR: invalidate and update a mapping's user address (UPDATE_VADDR)", async () => {
    const { k, p, c } = await bootContainer();
    const a = anon(p, 2 * PG);
    const b = anon(p, 2 * PG);
    expect(mapDma(p, c, a, 0x10000, 2 * PG)).toBe(0);
    expect(mapDma(p, c, b, 0x10000, 2 * PG, MAP_VADDR)).toBe(-errno.EINVAL); // not invalidated
    expect(mapDma(p, c, b, 0x40000, 2 * PG, MAP_VADDR)).toBe(-errno.ENOENT);
    expect(unmapDma(p, c, 0x10000, 2 * PG, UNMAP_VADDR)).toEqual({ rc: 0, size: 0x2000n });
    expect(unmapDma(p, c, 0x10000, 2 * PG, UNMAP_VADDR).rc).toBe(-errno.EINVAL);
    expect(mapDma(p, c, b, 0x10000, PG, MAP_VADDR)).toBe(-errno.EINVAL);
    expect(mapDma(p, c, b, 0x10000, 2 * PG, MAP_VADDR)).toBe(0);
    // The pages stay those pinned at MAP time: DMA goes on working throughout.
    expect(k.device(BDF)!.dmaRead(0x10000, new Uint8Array(4))).toBe(0);
    await k.close();
  });
});

describe("type1 VFIO_IOMMU_GET_INFO (SPEC §3.4, TRACES §6 argsz grow-retry)", () => {
  it("argsz < 16 EINVAL; 16 writes 16 bytes; 24 reports the size the chain needs; the full size gets the chain", async () => {
    const { k, p, c } = await bootContainer();
    expect(p.ioctlBuf(c, VFIO_IOMMU_GET_INFO, struct(24, [[0, 4, 15]]))).toBe(-errno.EINVAL);
    const a16 = struct(32, [[0, 4, 16], [16, 4, 0xaaaaaaaa], [24, 4, 0xbbbbbbbb]]);
    expect(p.ioctlBuf(c, VFIO_IOMMU_GET_INFO, a16)).toBe(0);
    expect(u32(a16, 0)).toBe(120);
    expect(u32(a16, 16)).toBe(0xaaaaaaaa);
    const first = iommuInfo(p, c, 24) as Type1Info;
    expect(first.argsz).toBe(24 + 32 + 16 + 16 + 2 * 16);
    expect(first.flags).toBe(3);
    expect(first.capOffset).toBe(0);
    expect(first.pgsizes).toBe(0x40201000n);
    const full = iommuInfo(p, c, first.argsz) as Type1Info;
    expect(full.argsz).toBe(first.argsz);
    expect(full.capOffset).toBe(24);
    // migration (id 2) at 24, dma_avail (id 3) at 56, iova range (id 1) at 72.
    const mig = full.caps.get(2)!;
    expect(mig.byteOffset).toBe(24);
    expect(mig.getUint16(2, true)).toBe(1);
    expect(mig.getUint32(8, true)).toBe(0);
    expect(mig.getBigUint64(16, true)).toBe(0x1000n);
    expect(mig.getBigUint64(24, true)).toBe(0x10000000n);
    expect(full.caps.get(3)!.byteOffset).toBe(56);
    expect(full.caps.get(3)!.getUint32(8, true)).toBe(65535);
    const iov = full.caps.get(1)!;
    expect(iov.byteOffset).toBe(72);
    expect(iov.getUint32(4, true)).toBe(0);
    expect(iov.getUint32(8, true)).toBe(2);
    expect(iovaRangesType1(p, c)).toEqual([
      { start: 0n, last: 0xfedfffffn }, { start: 0xfef00000n, last: (1n << 48n) - 1n },
    ]);
    // Bigger than needed: argsz is left alone (DPDK loops while it changes).
    const big = iommuInfo(p, c, 1024) as Type1Info;
    expect(big.argsz).toBe(1024);
    await k.close();
  });

  it("every argsz from 16 up to the full size is safe and never writes past argsz", async () => {
    const { k, p, c } = await bootContainer();
    for (let argsz = 16; argsz <= 130; argsz++) {
      const a = new Uint8Array(140).fill(0xee);
      new DataView(a.buffer).setUint32(0, argsz, true);
      expect(p.ioctlBuf(c, VFIO_IOMMU_GET_INFO, a)).toBe(0);
      for (let i = Math.max(argsz, 24); i < 140; i++) if (argsz < 120 || i >= 120) expect(a[i], `argsz ${argsz} byte ${i}`).toBe(0xee);
    }
    await k.close();
  });

  it("a mock-format group: its aperture, and its 2 KiB pages folded to 4 KiB", async () => {
    const k = await boot([{ ...dev7, iommu: { format: "mock" } }]);
    const p = k.createProcess();
    const { c } = containerWithGroup(p);
    expect(iovaRangesType1(p, c)).toEqual([{ start: 0x1000000n, last: 0x7fffffffn }]);
    expect((iommuInfo(p, c, 24) as Type1Info).pgsizes).toBe(0x1000n);
    await k.close();
  });
});

describe("type1 dirty tracking (VFIO_IOMMU_DIRTY_PAGES)", () => {
  it("v1: EACCES; v2: START, GET_BITMAP reports every pinned page, STOP", async () => {
    const k = await boot([dev7]);
    let p = k.createProcess();
    let r = containerWithGroup(p, VFIO_TYPE1_IOMMU);
    expect(p.ioctlBuf(r.c, VFIO_IOMMU_DIRTY_PAGES, struct(8, [[0, 4, 8], [4, 4, 1]]))).toBe(-errno.EACCES);
    p.kill();
    p = k.createProcess();
    r = containerWithGroup(p, VFIO_TYPE1v2_IOMMU);
    const buf = anon(p, 4 * PG);
    expect(mapDma(p, r.c, buf, 0x10000, 2 * PG)).toBe(0);
    expect(p.ioctlBuf(r.c, VFIO_IOMMU_DIRTY_PAGES, struct(8, [[0, 4, 8], [4, 4, 3]]))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(r.c, VFIO_IOMMU_DIRTY_PAGES, struct(8, [[0, 4, 8], [4, 4, 1]]))).toBe(0);
    const bm = anon(p, PG);
    const get = struct(48, [[0, 4, 48], [4, 4, 4], [8, 8, 0x10000], [16, 8, 4 * PG], [24, 8, PG], [32, 8, 8], [40, 8, bm]]);
    expect(p.ioctlBuf(r.c, VFIO_IOMMU_DIRTY_PAGES, get)).toBe(0);
    const out = new Uint8Array(1);
    p.readMemory(bm, out);
    expect(out[0]).toBe(0b11);
    expect(p.ioctlBuf(r.c, VFIO_IOMMU_DIRTY_PAGES, struct(8, [[0, 4, 8], [4, 4, 2]]))).toBe(0);
    expect(p.ioctlBuf(r.c, VFIO_IOMMU_DIRTY_PAGES, get)).toBe(-errno.EINVAL);
    await k.close();
  });
});

describe("/dev/vfio/vfio as an iommufd (vfioContainer: 'iommufd')", () => {
  it("the node opens an iommufd with mm accounting; groups use it as an iommufd", async () => {
    const k = await boot([dev7], { vfioContainer: "iommufd" });
    const p = k.createProcess();
    const c = p.open("/dev/vfio/vfio", O_RDWR);
    expect((p.fstat(c) as { rdev: number }).rdev).toBe((10 << 8) | 196);
    expect(p.ioctl(c, VFIO_GET_API_VERSION)).toBe(0);
    // IOMMU_OPTION RLIMIT_MODE GET: 1 (mm).
    const opt = struct(24, [[0, 4, 24], [4, 4, 0], [8, 2, 1]]);
    expect(p.ioctlBuf(c, 0x3b87, opt)).toBe(0);
    expect(u32(opt, 16)).toBe(1);
    // Without a compat IOAS: SET_IOMMU ENODEV, CHECK_EXTENSION(DMA_CC_IOMMU) -ENODEV.
    expect(p.ioctl(c, VFIO_SET_IOMMU, 3)).toBe(-errno.ENODEV);
    expect(p.ioctl(c, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU)).toBe(-errno.ENODEV);
    const { d } = legacyOpen(p, "/dev/vfio/vfio", 7, BDF, VFIO_TYPE1v2_IOMMU);
    expect(getInfo(p, d)).toBe(0);
    await k.close();
  });

  it("SET_CONTAINER with an iommufd creates the compat IOAS (a user-visible IOAS), once", async () => {
    const k = await boot([dev7, { bdf: "0000:00:06.0", model: "memcpy", iommuGroup: 8 }]);
    const p = k.createProcess();
    const i = openIommufd(p);
    const g = p.open("/dev/vfio/7", O_RDWR);
    expect(setContainer(p, g, i)).toBe(0);
    const vi = struct(12, [[0, 4, 12], [8, 2, 0]]);
    expect(p.ioctlBuf(i, 0x3b88, vi)).toBe(0);
    expect(u32(vi, 4)).toBe(1);
    const g8 = p.open("/dev/vfio/8", O_RDWR);
    expect(setContainer(p, g8, i)).toBe(0);
    expect(p.ioctlBuf(i, 0x3b88, vi)).toBe(0);
    expect(u32(vi, 4)).toBe(1);
    // The device is bound (devid 2) and attached to the compat IOAS through an auto HWPT (3).
    const d = getDeviceFd(p, g, BDF);
    expect(d).toBeGreaterThanOrEqual(0);
    expect(p.ioctlBuf(i, 0x3b80, struct(8, [[0, 4, 8], [4, 4, 1]]))).toBe(-errno.EBUSY);
    expect(p.ioctlBuf(i, 0x3b80, struct(8, [[0, 4, 8], [4, 4, 2]]))).toBe(-errno.EBUSY);
    expect(p.ioctlBuf(i, 0x3b80, struct(8, [[0, 4, 8], [4, 4, 3]]))).toBe(-errno.EBUSY);
    await k.close();
  });
});

describe("typed layer: VfioGroup and VfioContainer", () => {
  it("the legacy open sequence, map, DMA, unmap, with VfioError on failure", async () => {
    const k: Kernel = await boot([dev7]);
    const p = k.createProcess();
    const c = VfioContainer.open(p);
    expect(c.apiVersion()).toBe(0);
    expect(c.checkExtension(VFIO_TYPE1v2_IOMMU)).toBe(1);
    const g = VfioGroup.open(p, k.device(BDF)!);
    expect(g.status()).toEqual({ flags: 1, viable: true, containerSet: false });
    expect(() => g.getDeviceFd(BDF)).toThrow(VfioError);
    const bad = thrown(() => c.setIommu(3));
    expect(bad.code).toBe("EINVAL");
    expect(bad.ioctl).toBe("VFIO_SET_IOMMU");
    g.setContainer(c);
    c.setIommu(VFIO_TYPE1v2_IOMMU);
    const info = c.info();
    expect(info.iovaRanges.length).toBe(2);
    expect(info.dmaAvail).toBe(65535);
    expect(info.migration!.pgsizeBitmap).toBe(0x1000n);
    const dev = g.getDeviceFd(BDF);
    expect(dev.info().numRegions).toBe(9);
    expect(() => dev.bind(0)).toThrow(/obtained through its VFIO group/);
    const buf = anon(p, PG);
    p.writeMemory(buf, new Uint8Array([42]));
    c.mapDma({ vaddr: buf, iova: 0x2000, size: PG });
    const err = thrown(() => c.mapDma({ vaddr: buf, iova: 0x2000, size: PG }));
    expect(err.code).toBe("EEXIST");
    expect(err.errno).toBe(17);
    const out = new Uint8Array(1);
    expect(k.device(BDF)!.dmaRead(0x2000, out)).toBe(0);
    expect(out[0]).toBe(42);
    expect(c.unmapDma(0x2000, PG)).toBe(BigInt(PG));
    expect(() => g.unsetContainer()).toThrow(/still use the container/);
    dev.close();
    g.unsetContainer();
    g.close();
    c.close();
    expect(() => VfioGroup.open(p, 12)).toThrow(/does not exist/);
    await k.close();
  });

  it("VfioContainer.fromIommufd: the compat layer through the same calls", async () => {
    const k = await boot([dev7]);
    const p = k.createProcess();
    const ifd = IommuFd.open(p);
    const c = VfioContainer.fromIommufd(ifd);
    const g = VfioGroup.open(p, 7);
    g.setContainer(ifd);
    c.setIommu(VFIO_TYPE1v2_IOMMU);
    const dev = g.getDeviceFd(BDF);
    const buf = anon(p, PG);
    c.mapDma({ vaddr: buf, iova: 0x3000, size: PG });
    expect(k.device(BDF)!.dmaRead(0x3000, new Uint8Array(1))).toBe(0);
    expect(c.unmapAll()).toBe(BigInt(PG));
    dev.close();
    await k.close();
  });
});

it("O_CLOEXEC of the group open is kept", async () => {
  const k = await boot([dev7]);
  const p = k.createProcess();
  const g = p.open("/dev/vfio/7", O_RDWR | O_CLOEXEC);
  expect(p.fcntl(g, 1)).toBe(1);
  await k.close();
});
