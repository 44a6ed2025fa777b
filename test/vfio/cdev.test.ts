// SPEC.md §2.1 (the cdev device file's state machine), §5.1 (cdev and device-claim rows),
// §7 and Appendix A.1–A.2, with exact errnos; lifecycle: unplug while open, index reuse,
// close in any order.

import { describe, expect, it } from "vitest";
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, VfioDeviceFile, VfioError, IommuFd } from "../../src/index.js";
import {
  attach, attachArg, bind, bindArg, boot, cdevFixture, destroy, detach, detachArg, errno, gateWord, getInfo, ioasAlloc,
  ioasMapArg, openDev, openIommufd, struct, thrown, u32, u64, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP,
  MAP_FIXED_IOVA, MAP_READABLE,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT, VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_PCI_HOT_RESET, VFIO_DEVICE_RESET, VFIO_DEVICE_SET_IRQS,
} from "./util.js";
import { failNth, failNthRemaining } from "../../src/testing.js";

const CFG_OFF = 7 * 2 ** 40;

describe("cdev state table (SPEC §2.1)", () => {
  it("open succeeds any number of times, with no ownership checks", async () => {
    const k = await boot();
    const p = k.createProcess();
    const fds = [openDev(p), openDev(p), openDev(p)];
    for (const fd of fds) expect(fd).toBeGreaterThanOrEqual(0);
    const st = p.fstat(fds[0]) as { rdev: number };
    expect(st.rdev).toBe((p.stat("/dev/vfio/devices/vfio0") as { rdev: number }).rdev);
    await k.close();
  });

  it("BLOCKED: every ioctl but BIND, and read/write/mmap, give EINVAL", async () => {
    const { k, p, d } = await cdevFixture();
    const arg = struct(64, [[0, 4, 64]]);
    for (const cmd of [
      VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_SET_IRQS,
      VFIO_DEVICE_RESET, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, VFIO_DEVICE_PCI_HOT_RESET, VFIO_DEVICE_FEATURE,
      VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_DETACH_IOMMUFD_PT, 0x3b64, 0x3b80, 0x1234, 0,
    ]) {
      expect(p.ioctlBuf(d, cmd, arg), `cmd ${cmd.toString(16)}`).toBe(-errno.EINVAL);
    }
    // Even a bad pointer: the gate comes before any copy.
    expect(p.ioctl(d, VFIO_DEVICE_GET_INFO, 8)).toBe(-errno.EINVAL);
    expect(p.pread(d, new Uint8Array(4), CFG_OFF)).toBe(-errno.EINVAL);
    expect(p.pwrite(d, new Uint8Array(4), CFG_OFF)).toBe(-errno.EINVAL);
    expect(p.read(d, new Uint8Array(4))).toBe(-errno.EINVAL);
    expect(p.write(d, new Uint8Array(4))).toBe(-errno.EINVAL);
    expect(p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0)).toBe(-errno.EINVAL);
    // The gate word itself: granted byte 0.
    expect(gateWord(k, p, d) & 0xff).toBe(0);
    await k.close();
  });

  it("BLOCKED -> BOUND: BIND writes only out_devid and grants the file", async () => {
    const { k, p, d, i } = await cdevFixture();
    const a = bindArg(i);
    a.fill(0xaa, 16, 24); // token_uuid_ptr is ignored without FLAG_TOKEN
    expect(p.ioctlBuf(d, VFIO_DEVICE_BIND_IOMMUFD, a)).toBe(0);
    expect(u32(a, 12)).toBe(1);
    expect(u64(a, 16)).toBe(0xaaaaaaaaaaaaaaaan);
    expect(u32(a, 0)).toBe(24);
    expect(gateWord(k, p, d) & 0xff).toBe(1);
    expect(getInfo(p, d)).toBe(0);
    await k.close();
  });

  it("BIND argument checks in order: argsz, zero tail, iommufd/flags, then state", async () => {
    const { k, p, d, i } = await cdevFixture();
    expect(p.ioctlBuf(d, VFIO_DEVICE_BIND_IOMMUFD, bindArg(i, 15))).toBe(-errno.EINVAL);
    expect(p.ioctl(d, VFIO_DEVICE_BIND_IOMMUFD, 16)).toBe(-errno.EFAULT);
    // argsz 16 (the pre-token size) works; bytes past 24 must be zero.
    const long = new Uint8Array(32);
    long.set(bindArg(i, 32));
    long[30] = 1;
    expect(p.ioctlBuf(d, VFIO_DEVICE_BIND_IOMMUFD, long)).toBe(-errno.E2BIG);
    expect(p.ioctlBuf(d, VFIO_DEVICE_BIND_IOMMUFD, bindArg(i, 24, 2))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(d, VFIO_DEVICE_BIND_IOMMUFD, bindArg(-1, 24))).toBe(-errno.EINVAL);
    // FLAG_TOKEN on a device that is neither PF nor VF: EINVAL; an unreadable token: EFAULT.
    const tok = struct(24, [[0, 4, 24], [4, 4, 1], [8, 4, i], [16, 8, 0x10]]);
    expect(p.ioctlBuf(d, VFIO_DEVICE_BIND_IOMMUFD, tok)).toBe(-errno.EFAULT);
    const at = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const tok2 = struct(24, [[0, 4, 24], [4, 4, 1], [8, 4, i], [16, 8, at]]);
    expect(p.ioctlBuf(d, VFIO_DEVICE_BIND_IOMMUFD, tok2)).toBe(-errno.EINVAL);
    const a16 = bindArg(i, 16);
    expect(p.ioctlBuf(d, VFIO_DEVICE_BIND_IOMMUFD, a16)).toBe(0);
    expect(u32(a16, 12)).toBe(1);
    // Re-bind is EINVAL even with a bogus fd (the state check precedes the fd lookup).
    expect(p.ioctlBuf(d, VFIO_DEVICE_BIND_IOMMUFD, bindArg(999))).toBe(-errno.EINVAL);
    await k.close();
  });

  it("BOUND: DETACH is a no-op; ATTACH -> ATTACHED; re-ATTACH replaces; DETACH -> BOUND", async () => {
    const { k, p, d, i } = await cdevFixture({ bound: true });
    expect(detach(p, d)).toBe(0);
    const ioas1 = ioasAlloc(p, i);
    const ioas2 = ioasAlloc(p, i);
    expect([ioas1, ioas2]).toEqual([2, 3]);
    expect(attach(p, d, ioas1)).toBe(4);
    expect(attach(p, d, ioas1)).toBe(4); // same pt: no-op success
    expect(attach(p, d, ioas2)).toBe(5); // replace (not EBUSY)
    // The first auto HWPT went with the replace: ioas1 can be destroyed.
    expect(destroy(p, i, ioas1)).toBe(0);
    expect(attach(p, d, 4242)).toBe(-errno.ENOENT); // a failed replace keeps the attachment
    expect(destroy(p, i, ioas2)).toBe(-errno.EBUSY);
    expect(detach(p, d)).toBe(0);
    expect(detach(p, d)).toBe(0);
    expect(destroy(p, i, ioas2)).toBe(0);
    // PASID: argsz must cover the pasid (EINVAL); detaching a PASID never attached is a no-op.
    expect(p.ioctlBuf(d, VFIO_DEVICE_ATTACH_IOMMUFD_PT, attachArg(2, 12, 1))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(d, VFIO_DEVICE_DETACH_IOMMUFD_PT, detachArg(8, 1))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(d, VFIO_DEVICE_DETACH_IOMMUFD_PT, detachArg(12, 1))).toBe(0);
    await k.close();
  });

  it("close of a bound, attached file unbinds: the context sweeps, the device binds again", async () => {
    const { k, p, d, i } = await cdevFixture({ bound: true });
    const ioas = ioasAlloc(p, i);
    expect(attach(p, d, ioas)).toBe(3);
    expect(destroy(p, i, 1)).toBe(-errno.EBUSY); // the bound device
    expect(p.close(d)).toBe(0);
    expect(destroy(p, i, 1)).toBe(-errno.ENOENT); // unbound with the close
    expect(destroy(p, i, ioas)).toBe(0); // the auto HWPT went with the detach
    const d2 = openDev(p);
    expect(bind(p, d2, i)).toBe(1);
    await k.close();
  });
});

describe("close in any order", () => {
  it("iommufd first: nothing is destroyed until the device file closes (SPEC §7.31)", async () => {
    const { k, p, d, i } = await cdevFixture({ bound: true });
    expect(attach(p, d, ioasAlloc(p, i))).toBe(3);
    const before = k.stats().iommufdContexts;
    expect(p.close(i)).toBe(0);
    expect(k.stats().iommufdContexts).toBe(before); // the df holds the context's file
    expect(k.stats().iommufdObjects).toBe(3);
    expect(getInfo(p, d)).toBe(0); // still bound
    expect(detach(p, d)).toBe(0);
    expect(p.close(d)).toBe(0);
    expect(k.stats().iommufdContexts).toBe(before - 1);
    expect(k.stats().iommufdObjects).toBe(0);
    expect(k.stats().openFiles).toBe(0);
    await k.close();
  });

  it("device first, then iommufd", async () => {
    const { k, p, d, i } = await cdevFixture({ bound: true });
    expect(attach(p, d, ioasAlloc(p, i))).toBe(3);
    expect(p.close(d)).toBe(0);
    expect(p.close(i)).toBe(0);
    expect(k.stats().iommufdObjects).toBe(0);
    expect(k.stats().openFiles).toBe(0);
    await k.close();
  });

  it("process exit closes both in fd order", async () => {
    const k = await boot();
    const p = k.createProcess();
    const i = openIommufd(p);
    const d = openDev(p);
    expect(bind(p, d, i)).toBe(1);
    expect(attach(p, d, ioasAlloc(p, i))).toBe(3);
    p.kill();
    expect(k.stats().openFiles).toBe(0);
    expect(k.stats().iommufdContexts).toBe(0);
    // The device's DMA claim was released: a new context can bind it.
    const q = k.createProcess();
    expect(bind(q, openDev(q), openIommufd(q))).toBe(1);
    await k.close();
  });
});

describe("Appendix A.1 cdev happy path", () => {
  it("A.1 steps 1-16", async () => {
    const { k, p, d, i } = await cdevFixture({ devices: [{ bdf: "0000:00:05.0", model: "memcpy", iommuGroup: 7 }] });
    expect(getInfo(p, d)).toBe(-errno.EINVAL);
    expect(bind(p, d, i)).toBe(1);
    expect(ioasAlloc(p, i)).toBe(2);
    const r = struct(32, [[0, 4, 32], [4, 4, 2], [8, 4, 0]]);
    expect(p.ioctlBuf(i, IOMMU_IOAS_IOVA_RANGES, r)).toBe(-errno.EMSGSIZE);
    expect(u32(r, 8)).toBe(1);
    expect(u64(r, 24)).toBe(1n);
    expect(attach(p, d, 2)).toBe(3);
    const r2 = struct(32, [[0, 4, 32], [4, 4, 2], [8, 4, 0]]);
    expect(p.ioctlBuf(i, IOMMU_IOAS_IOVA_RANGES, r2)).toBe(-errno.EMSGSIZE);
    expect(u32(r2, 8)).toBe(2); // [0, 0xfedfffff] and [0xfef00000, 2^48-1]
    expect(u64(r2, 24)).toBe(4096n);
    const buf = p.mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const map = (len: number) => ioasMapArg(2, buf, len, 0);
    expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, map(1 << 20))).toBe(0);
    expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, map(1 << 20))).toBe(-errno.EEXIST);
    expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, map(0x1800))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(i, IOMMU_IOAS_UNMAP, struct(24, [[0, 4, 24], [4, 4, 2], [8, 8, 0], [16, 8, 0x1000]]))).toBe(-errno.ENOENT);
    expect(p.ioctlBuf(i, IOMMU_IOAS_UNMAP, struct(24, [[0, 4, 24], [4, 4, 2]]))).toBe(-errno.EINVAL);
    const all = struct(24, [[0, 4, 24], [4, 4, 2], [8, 8, 0], [16, 8, (1n << 64n) - 1n]]);
    expect(p.ioctlBuf(i, IOMMU_IOAS_UNMAP, all)).toBe(0);
    expect(u64(all, 16)).toBe(0x100000n);
    expect(destroy(p, i, 1)).toBe(-errno.EBUSY);
    expect(destroy(p, i, 2)).toBe(-errno.EBUSY);
    expect(detach(p, d)).toBe(0);
    expect(detach(p, d)).toBe(0);
    expect(destroy(p, i, 2)).toBe(0);
    expect(ioasAlloc(p, i)).toBe(2);
    expect(p.close(d)).toBe(0);
    expect(p.close(i)).toBe(0);
    await k.close();
  });
});

describe("Appendix A.2 exclusion and SPEC §5.1 (cdev, device claims)", () => {
  const groupOf = (k: unknown, id: number) =>
    (k as { vfio: { groups: { get(id: number): { openedFile: object | null; canOpen(): number } } } }).vfio.groups.get(id)!;

  it("the group file open blocks BIND (EBUSY); closing it lets BIND through", async () => {
    const { k, p, d, i } = await cdevFixture({ devices: [{ bdf: "0000:00:05.0", model: "memcpy", iommuGroup: 7 }] });
    const g = groupOf(k, 7);
    g.openedFile = {}; // /dev/vfio/7 open (the group node comes with the legacy path)
    expect(bind(p, d, i)).toBe(-errno.EBUSY);
    g.openedFile = null;
    expect(bind(p, d, i)).toBe(1);
    // ... and a bound cdev blocks the group's open.
    expect(g.canOpen()).toBe(-errno.EBUSY);
    expect(p.close(d)).toBe(0);
    expect(g.canOpen()).toBe(0);
    await k.close();
  });

  it("two cdev files: first BIND 0, second EINVAL; re-BIND of the first EINVAL", async () => {
    const k = await boot();
    const p = k.createProcess();
    const d1 = openDev(p);
    const d2 = openDev(p);
    const i = openIommufd(p);
    expect(bind(p, d1, i)).toBe(1);
    expect(bind(p, d2, i)).toBe(-errno.EINVAL);
    expect(getInfo(p, d2)).toBe(-errno.EINVAL); // still blocked
    expect(bind(p, d1, i)).toBe(-errno.EINVAL);
    // The failed second BIND left the group count balanced: closing d1 unblocks fully.
    expect(p.close(d1)).toBe(0);
    expect(groupOf(k, 0).canOpen()).toBe(0);
    expect(bind(p, d2, i)).toBe(1);
    await k.close();
  });

  it("siblings: different iommufd EPERM, same iommufd 0, different IOAS EINVAL", async () => {
    const k = await boot([
      { bdf: "0000:00:05.0", model: "memcpy", iommuGroup: 7 },
      { bdf: "0000:00:05.1", model: "memcpy", iommuGroup: 7 },
    ]);
    const p = k.createProcess();
    const d0 = openDev(p, 0);
    const d1 = openDev(p, 1);
    const i1 = openIommufd(p);
    const i2 = openIommufd(p);
    expect(bind(p, d0, i1)).toBe(1);
    expect(bind(p, d1, i2)).toBe(-errno.EPERM);
    expect(bind(p, d1, i1)).toBe(2);
    const a = ioasAlloc(p, i1);
    const b = ioasAlloc(p, i1);
    expect(attach(p, d0, a)).toBe(5); // the auto HWPT of IOAS a
    expect(attach(p, d1, b)).toBe(-errno.EINVAL);
    expect(attach(p, d1, a)).toBe(5); // the sibling shares it
    await k.close();
  });

  it("a sibling bound to a kernel DMA-API driver: BIND EPERM", async () => {
    const k = await boot([
      { bdf: "0000:00:05.0", model: "memcpy", iommuGroup: 7 },
      { bdf: "0000:00:05.1", model: "memcpy", iommuGroup: 7, driver: "kernel" },
    ]);
    const p = k.createProcess();
    expect(k.devices.map((d) => d.index)).toEqual([0, -1]);
    expect(p.readdir("/dev/vfio/devices")).toEqual(["vfio0"]);
    expect(bind(p, openDev(p), openIommufd(p))).toBe(-errno.EPERM);
    await k.close();
  });

  it("driver 'none' gets no cdev and blocks nothing", async () => {
    const k = await boot([
      { bdf: "0000:00:05.0", model: "memcpy", iommuGroup: 7 },
      { bdf: "0000:00:05.1", model: "memcpy", iommuGroup: 7, driver: "none" },
    ]);
    const p = k.createProcess();
    expect(p.readdir("/dev/vfio/devices")).toEqual(["vfio0"]);
    expect(p.readdir("/sys/bus/pci/devices/0000:00:05.1/vfio-dev")).toBe(-errno.ENOENT);
    expect(bind(p, openDev(p), openIommufd(p))).toBe(1);
    await k.close();
  });

  it("a kernel driver probing into a cdev-owned group fails (no driver link)", async () => {
    const k = await boot([{ bdf: "0000:00:05.0", model: "memcpy", iommuGroup: 7 }]);
    const p = k.createProcess();
    expect(bind(p, openDev(p), openIommufd(p))).toBe(1);
    k.addDevice({ bdf: "0000:00:05.1", model: "memcpy", iommuGroup: 7, driver: "kernel" });
    expect(p.readlink("/sys/bus/pci/devices/0000:00:05.1/driver")).toBe(-errno.ENOENT);
    await k.close();
  });

  it("IOMMU caps: non-coherent BIND EINVAL; unisolated MSI EPERM unless allowUnsafeInterrupts", async () => {
    const cfgs = [
      { bdf: "0000:00:05.0", model: "memcpy", iommu: { coherent: false } },
      { bdf: "0000:00:06.0", model: "memcpy", iommu: { msiIsolated: false } },
    ];
    let k = await boot(cfgs);
    let p = k.createProcess();
    const i = openIommufd(p);
    expect(bind(p, openDev(p, 0), i)).toBe(-errno.EINVAL);
    expect(bind(p, openDev(p, 1), i)).toBe(-errno.EPERM);
    await k.close();
    k = await boot(cfgs, { allowUnsafeInterrupts: true });
    p = k.createProcess();
    expect(bind(p, openDev(p, 1), openIommufd(p))).toBe(1);
    await k.close();
  });
});

describe("registration, sysfs, unplug", () => {
  it("vfio-dev sysfs and the node agree (API.md paths)", async () => {
    const k = await boot();
    const p = k.createProcess();
    const bdf = k.devices[0].bdf;
    expect(p.readFile(`/sys/bus/pci/devices/${bdf}/vfio-dev/vfio0/dev`)).toBe("511:0\n");
    const st = p.stat("/dev/vfio/devices/vfio0") as { mode: number; rdev: number };
    expect(st.mode & 0o170000).toBe(0o020000);
    expect(st.rdev).toBe((511 << 8) | 0);
    expect(p.readlink(`/sys/bus/pci/devices/${bdf}/driver`)).toMatch(/vfio-pci$/);
    expect(k.devices[0].index).toBe(0);
    await k.close();
  });

  it("indexes are lowest-free and reused after unplug", async () => {
    const k = await boot([
      { bdf: "0000:00:04.0", model: "memcpy" },
      { bdf: "0000:00:05.0", model: "memcpy" },
      { bdf: "0000:00:06.0", model: "memcpy" },
    ]);
    expect(k.devices.map((d) => d.index)).toEqual([0, 1, 2]);
    await k.devices[1].unplug();
    expect(k.devices.map((d) => d.bdf)).toEqual(["0000:00:04.0", "0000:00:06.0"]);
    const h = k.addDevice({ bdf: "0000:00:07.0", model: "memcpy" });
    expect(h.index).toBe(1);
    const p = k.createProcess();
    expect(p.readFile("/sys/bus/pci/devices/0000:00:07.0/vfio-dev/vfio1/dev")).toBe("511:1\n");
    expect(k.addDevice({ bdf: "0000:00:08.0", model: "memcpy" }).index).toBe(3);
    await k.close();
  });

  it("unplug while open: node gone at once, open files keep working, resolves after the last close", async () => {
    const k = await boot();
    const p = k.createProcess();
    const h = k.devices[0];
    const d = openDev(p);
    const blocked = openDev(p);
    const i = openIommufd(p);
    expect(bind(p, d, i)).toBe(1);
    const efd = p.eventfd(0, 0);
    // Arm the REQ interrupt (index 4) with the eventfd.
    expect(p.ioctlBuf(d, VFIO_DEVICE_SET_IRQS, struct(24, [[0, 4, 24], [4, 4, (1 << 2) | (1 << 5)], [8, 4, 4], [12, 4, 0], [16, 4, 1], [20, 4, efd]]))).toBe(0);
    let done = false;
    const gone = h.unplug().then(() => { done = true; });
    expect(k.devices).toEqual([]);
    expect(openDev(p)).toBe(-errno.ENOENT);
    expect(p.readdir(`/sys/bus/pci/devices/${h.bdf}/vfio-dev`)).toBe(-errno.ENOENT);
    const cnt = new Uint8Array(8);
    expect(p.read(efd, cnt)).toBe(8);
    expect(cnt[0]).toBe(1); // the request event
    expect(getInfo(p, d)).toBe(0); // granted files still reach the driver
    await Promise.resolve();
    expect(done).toBe(false);
    expect(p.close(d)).toBe(0);
    await Promise.resolve();
    expect(done).toBe(false);
    expect(p.close(blocked)).toBe(0);
    await gone;
    expect(done).toBe(true);
    expect(p.stat(`/sys/bus/pci/devices/${h.bdf}`)).toBe(-errno.ENOENT);
    expect(k.addDevice({ bdf: "0000:00:09.0", model: "memcpy" }).index).toBe(0);
    await k.close();
  });

  it("unplug with nothing open resolves at once", async () => {
    const k = await boot();
    await k.devices[0].unplug();
    expect(k.devices).toEqual([]);
    await k.close();
  });

  it("a BAR mmap holds the device file (vm_file): after close the mapping works, the unplug waits for the munmap", async () => {
    const k = await boot([{ bdf: "0000:00:04.0", model: "memcpy" }]);
    const p = k.createProcess();
    const d = openDev(p);
    const i = openIommufd(p);
    expect(bind(p, d, i)).toBe(1);
    const a = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
    expect(a).toBeGreaterThan(0);
    expect(p.writeMemory(a + 16, new Uint8Array([1, 2, 3, 4]))).toBe(0);
    const child = p.fork();
    if (typeof child === "number") throw new Error(`fork: ${child}`);
    expect(p.close(d)).toBe(0);
    child.kill();
    let done = false;
    const gone = k.devices[0].unplug().then(() => { done = true; });
    await new Promise((r) => setTimeout(r, 5));
    expect(done).toBe(false);
    expect(k.stats().openFiles).toBe(2); // the device file (held by the VMA) and the iommufd
    const back = new Uint8Array(4);
    expect(p.readMemory(a + 16, back)).toBe(0);
    expect([...back]).toEqual([1, 2, 3, 4]);
    expect(p.munmap(a, 4096)).toBe(0);
    await gone;
    expect(done).toBe(true);
    expect(k.stats().openFiles).toBe(1);
    await k.close();
  });

  it("unplug gives back every frame of the function (config space, BAR0, the order-1 MSI block, the engine's state)", async () => {
    // A machine without the device is the reference: after unplug the free count must match it.
    const ref = await boot([]);
    const free0 = ref.stats().framesFree;
    await ref.close();
    for (const model of ["memcpy", "ioat"] as const) {
      const k = await boot([{ bdf: "0000:00:04.0", model }]);
      expect(k.stats().framesFree).toBeLessThan(free0);
      await k.devices[0].unplug();
      expect(k.stats().framesFree, model).toBe(free0);
      await k.close();
    }
  });

  it.each([
    ["memcpy", {}],
    ["memcpy", { bar0Size: 65536 }],
    ["ioat", {}],
  ] as [string, Record<string, unknown>][])("plug/unplug cycles of a %s device %j: every frame put exactly once (back to the device-less count, no refcount wrapped)", async (model, opts) => {
    const k = await boot([]);
    const deviceless = k.stats().framesFree;
    const core = (k as unknown as { kcore: { core: { poolFrames: number; x: { frame_refcount(f: number): number } } } }).kcore.core;
    for (let n = 0; n < 3; n++) {
      const h = k.addDevice({ bdf: "0000:00:04.0", model, ...opts });
      expect(k.stats().framesFree).toBeLessThan(deviceless);
      await h.unplug();
      expect(k.stats().framesFree, `after unplug ${n}`).toBe(deviceless);
      // a frame put once too often wraps its refcount below zero (a BAR0 block of 16 frames did)
      let wrapped = 0;
      for (let f = 0; f < core.poolFrames; f++) if (core.x.frame_refcount(f) >>> 0 >= 0x80000000) wrapped++;
      expect(wrapped, `frames put too often after unplug ${n}`).toBe(0);
    }
    await k.close();
  });
});

describe("device DMA (DeviceHandle)", () => {
  it("blocked while bound but not attached; through the IOAS once attached", async () => {
    const { k, p, d, i } = await cdevFixture();
    const h = k.devices[0];
    const out = new Uint8Array(16);
    expect(h.dmaRead(0x1000, out)).toBe(-errno.EFAULT);
    expect(bind(p, d, i)).toBe(1);
    expect(h.dmaRead(0x1000, out)).toBe(-errno.EFAULT);
    const ioas = ioasAlloc(p, i);
    expect(attach(p, d, ioas)).toBe(3);
    const buf = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.writeMemory(buf, new TextEncoder().encode("hello, device!!!"))).toBe(0);
    expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, buf, 4096, 0x1000))).toBe(0);
    expect(h.dmaRead(0x1000, out)).toBe(0);
    expect(new TextDecoder().decode(out)).toBe("hello, device!!!");
    expect(h.dmaWrite(0x1004, new Uint8Array([0x58]))).toBe(0);
    const back = new Uint8Array(16);
    expect(p.readMemory(buf, back)).toBe(0);
    expect(new TextDecoder().decode(back)).toBe("hellX, device!!!");
    expect(detach(p, d)).toBe(0);
    expect(h.dmaRead(0x1000, out)).toBe(-errno.EFAULT);
    const f = h.faults();
    expect(f[0]).toEqual({ iova: 0x1000n, write: false, reason: "blocked" });
    expect(f[f.length - 1].reason).toBe("blocked");
    await k.close();
  });
});

describe("device DMA allocates nothing", () => {
  it("from the kernel's thread an armed fail_nth is neither consumed nor returned: no ENOMEM from a device", async () => {
    const { k, p, d, i } = await cdevFixture({ bound: true });
    const ioas = ioasAlloc(p, i);
    expect(attach(p, d, ioas)).toBeGreaterThan(0);
    const len = 64 * 1024;
    const buf = p.mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(p.writeMemory(buf, new Uint8Array(len))).toBe(0);
    expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, buf, len, 0x10000))).toBe(0);
    const h = k.devices[0];
    failNth(k, 1);
    const data = Uint8Array.from({ length: len }, (_, j) => j * 13);
    expect(h.dmaWrite(0x10000, data)).toBe(0);
    const back = new Uint8Array(len);
    expect(h.dmaRead(0x10000, back)).toBe(0);
    expect(back).toEqual(data);
    expect(h.dmaRead(0x10000 + len, new Uint8Array(8)), "a fault is still EFAULT").toBe(-errno.EFAULT);
    expect(failNthRemaining(k)).toBe(1);
    failNth(k, 0);
    await k.close();
  });
});

describe("device DMA faults", () => {
  it("a read-only mapping refuses device writes (perm); an unmapped IOVA stops a transfer after the bytes before it", async () => {
    const { k, p, d, i } = await cdevFixture({ bound: true });
    const h = k.devices[0];
    const ioas = ioasAlloc(p, i);
    expect(attach(p, d, ioas)).toBe(3);
    const buf = p.mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.writeMemory(buf, new Uint8Array(8192).fill(0x11))).toBe(0);
    // Page 0x20000: readable only; page 0x21000: nothing mapped.
    expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, buf, 4096, 0x20000, MAP_FIXED_IOVA | MAP_READABLE))).toBe(0);
    expect(h.dmaWrite(0x20010, new Uint8Array([1, 2, 3]))).toBe(-errno.EFAULT);
    expect(h.faults().at(-1)).toEqual({ iova: 0x20010n, write: true, reason: "perm" });
    const page = new Uint8Array(4096);
    expect(p.readMemory(buf, page)).toBe(0);
    expect(page.every((b) => b === 0x11)).toBe(true); // nothing was written
    // A read that runs off the end of the mapping: the first 16 bytes arrive, then the fault.
    const out = new Uint8Array(32).fill(0xee);
    expect(h.dmaRead(0x20ff0, out)).toBe(-errno.EFAULT);
    expect(h.faults().at(-1)).toEqual({ iova: 0x21000n, write: false, reason: "unmapped" });
    expect([...out.subarray(0, 16)].every((b) => b === 0x11)).toBe(true);
    await k.close();
  });
});

describe("typed layer: VfioDeviceFile", () => {
  it("open, bind, attach, detach, close; errors say why", async () => {
    const k = await boot();
    const p = k.createProcess();
    const dev = VfioDeviceFile.open(p, k.devices[0]);
    const ifd = IommuFd.open(p);
    expect(() => dev.info()).toThrowError(VfioError);
    const unbound = thrown(() => dev.attach(2));
    expect(unbound.code).toBe("EINVAL");
    expect(unbound.ioctl).toBe("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
    expect(unbound.message).toMatch(/BIND it first/);
    expect(dev.bind(ifd)).toBe(1);
    expect(() => dev.bind(ifd)).toThrowError(/already bound/);
    const ioas = ifd.allocIoas();
    expect(dev.attach(ioas.id)).toBe(3);
    expect(() => dev.attach(77)).toThrowError(/no object 77/);
    dev.detach();
    const second = VfioDeviceFile.open(p, "/dev/vfio/devices/vfio0");
    const err = thrown(() => second.bind(ifd));
    expect(err.errno).toBe(errno.EINVAL);
    expect(err.message).toMatch(/already open through another file/);
    expect(() => VfioDeviceFile.open(p, "/dev/vfio/devices/vfio9")).toThrowError(/does not exist/);
    second.close();
    dev.close();
    ifd.close();
    await k.close();
  });
});
