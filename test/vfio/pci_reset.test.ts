// Hot reset on vfio-pci (drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_get_pci_hot_reset_info,
// vfio_pci_ioctl_pci_hot_reset, vfio_pci_ioctl_pci_hot_reset_groups, vfio_pci_dev_set_hot_reset;
// drivers/vfio/iommufd.c vfio_iommufd_get_dev_id): the header checks, the rule that a
// cdev-opened device passes a zero-length fd array and a group-opened one its group fds, then
// the reset probe. A function on bus 0 sits directly on the root bus (no bridge above it, no
// hotplug slot): ENODEV, as on such hardware. A function on any other bus sits behind a root
// port whose secondary bus can be reset: every function on that bus is affected, listed by
// GET_PCI_HOT_RESET_INFO and reset by PCI_HOT_RESET once the caller owns them all.

import { describe, expect, it } from "vitest";
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, O_CLOEXEC, O_RDWR, PROT_READ, PROT_WRITE, type DeviceConfig, type Kernel, type Process } from "../../src/index.js";
import { bind, boot, errno, openDev, openIommufd, struct, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, VFIO_DEVICE_PCI_HOT_RESET } from "./util.js";
import { getDeviceFd, setContainer, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU } from "./legacy_util.js";

const info = (argsz: number, flags = 0) => struct(Math.max(16, argsz), [[0, 4, argsz], [4, 4, flags]]);
const reset = (argsz: number, flags: number, fds: number[]) =>
  struct(12 + 4 * fds.length, [[0, 4, argsz], [4, 4, flags], [8, 4, fds.length], ...fds.map((f, j) => [12 + 4 * j, 4, f] as [number, 4, number])]);
/** The iommufd form: count 0, no array. */
const resetCdev = () => reset(12, 0, []);
/** The group form: argsz covering the array. */
const resetGroups = (fds: number[]) => reset(12 + 4 * fds.length, 0, fds);

/** struct vfio_pci_hot_reset_info then struct vfio_pci_dependent_device { u32 id, u16 segment, u8 bus, u8 devfn }[]. */
const infoBytes = (argsz: number, flags: number, count: number, devs: [number, number, number, number][]) =>
  struct(argsz, [[0, 4, argsz], [4, 4, flags], [8, 4, count],
    ...devs.flatMap(([id, seg, bus, devfn], j): [number, 1 | 2 | 4, number][] => [[12 + 8 * j, 4, id], [16 + 8 * j, 2, seg], [18 + 8 * j, 1, bus], [19 + 8 * j, 1, devfn]])]);

const DEV_ID = 1;
const DEV_ID_OWNED = 2;
const NOT_OWNED = 0xffffffff;
const F0 = "0000:01:00.0";
const F1 = "0000:01:00.1";
const CFG = 7 * 2 ** 40;

/** Two functions of one device behind a root port (bus 1), in groups 5 and `g1`. */
const bus1 = (g1 = 6, more: DeviceConfig[] = []): DeviceConfig[] =>
  [{ bdf: F0, model: "memcpy", iommuGroup: 5 }, { bdf: F1, model: "memcpy", iommuGroup: g1 }, ...more];

const PATTERN = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);

/** Writes PATTERN at BAR0 offset 0x100 of the device file. */
function dirty(p: Process, d: number): void {
  expect(p.pwrite(d, PATTERN, 0x100)).toBe(PATTERN.length);
}

/** BAR0 bytes at 0x100 (PATTERN.length of them). */
function bar0(p: Process, d: number): number[] {
  const b = new Uint8Array(PATTERN.length);
  expect(p.pread(d, b, 0x100)).toBe(b.length);
  return [...b];
}

function openBound(p: Process, index: number, ifd: number, devid: number): number {
  const d = openDev(p, index);
  expect(d).toBeGreaterThanOrEqual(0);
  expect(bind(p, d, ifd)).toBe(devid);
  return d;
}

function openFiles(k: Kernel): number {
  return k.stats().openFiles;
}

describe("vfio-pci hot reset: a function on the root bus", () => {
  it("cdev-opened: argsz and flags checked, fds refused, the zero-length form probes: ENODEV", async () => {
    const k = await boot();
    const p = k.createProcess();
    const d = openDev(p);
    expect(bind(p, d, openIommufd(p))).toBe(1);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info(11))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info(16))).toBe(-errno.ENODEV);
    expect(p.ioctl(d, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, 0x10)).toBe(-errno.EFAULT);
    expect(p.ioctlBuf(d, VFIO_DEVICE_PCI_HOT_RESET, reset(11, 0, []))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(d, VFIO_DEVICE_PCI_HOT_RESET, reset(12, 1, []))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(d, VFIO_DEVICE_PCI_HOT_RESET, reset(16, 0, [d]))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(d, VFIO_DEVICE_PCI_HOT_RESET, reset(12, 0, []))).toBe(-errno.ENODEV);
    expect(p.ioctl(d, VFIO_DEVICE_PCI_HOT_RESET, 0x10)).toBe(-errno.EFAULT);
    await k.close();
  });

  it("group-opened: the zero-length form is refused, the group-fd form probes: ENODEV", async () => {
    const k = await boot();
    const p = k.createProcess();
    const bdf = k.devices[0].bdf;
    const g = p.open(`/dev/vfio/${k.devices[0].iommuGroup}`, O_RDWR | O_CLOEXEC);
    const c = p.open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
    expect(setContainer(p, g, c)).toBe(0);
    expect(p.ioctl(c, 0x3b66 /* VFIO_SET_IOMMU */, 1)).toBe(0);
    const d = getDeviceFd(p, g, bdf);
    expect(d).toBeGreaterThanOrEqual(0);
    expect(p.ioctlBuf(d, VFIO_DEVICE_PCI_HOT_RESET, reset(12, 0, []))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(d, VFIO_DEVICE_PCI_HOT_RESET, reset(16, 0, [g]))).toBe(-errno.ENODEV);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info(16))).toBe(-errno.ENODEV);
    await k.close();
  });

  it("a root-bus function stays alone even next to a resettable bus", async () => {
    const k = await boot([{ bdf: "0000:00:04.0", model: "memcpy" }, ...bus1()]);
    const p = k.createProcess();
    const i = openIommufd(p);
    const d = openBound(p, 0, i, 1);
    openBound(p, 1, i, 2);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info(28))).toBe(-errno.ENODEV);
    expect(p.ioctlBuf(d, VFIO_DEVICE_PCI_HOT_RESET, resetCdev())).toBe(-errno.ENODEV);
    await k.close();
  });
});

describe("vfio-pci hot reset: functions behind a root port, the iommufd (cdev) form", () => {
  it("INFO: ENOSPC with the count when the array does not fit; the devid array exactly", async () => {
    const k = await boot(bus1());
    const p = k.createProcess();
    const i = openIommufd(p);
    const d0 = openBound(p, 0, i, 1);
    // Too small: only the header is written, count = the functions affected, flags 0.
    for (const argsz of [12, 19, 20, 27]) {
      const a = info(argsz, 0xff);
      expect(p.ioctlBuf(d0, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, a)).toBe(-errno.ENOSPC);
      expect([...a]).toEqual([...struct(a.length, [[0, 4, argsz], [4, 4, 0], [8, 4, 2]])]);
    }
    // 00.1 is not bound and its group 6 is not this context's: NOT_OWNED, OWNED cleared.
    let a = info(28);
    expect(p.ioctlBuf(d0, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, a)).toBe(0);
    expect([...a]).toEqual([...infoBytes(28, DEV_ID, 2, [[1, 0, 1, 0], [NOT_OWNED, 0, 1, 1]])]);
    // Bound to the same context: its devid, and the set is owned.
    const d1 = openBound(p, 1, i, 2);
    for (const d of [d0, d1]) {
      a = info(36);
      expect(p.ioctlBuf(d, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, a)).toBe(0);
      expect([...a]).toEqual([...infoBytes(36, DEV_ID | DEV_ID_OWNED, 2, [[1, 0, 1, 0], [2, 0, 1, 1]])]);
    }
    await k.close();
  });

  it("INFO: DEVID_OWNED (0) for an unbound function whose group this context owns; the reset is allowed", async () => {
    const k = await boot(bus1(5));
    const p = k.createProcess();
    const i = openIommufd(p);
    const d0 = openBound(p, 0, i, 1);
    const a = info(28);
    expect(p.ioctlBuf(d0, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, a)).toBe(0);
    expect([...a]).toEqual([...infoBytes(28, DEV_ID | DEV_ID_OWNED, 2, [[1, 0, 1, 0], [0, 0, 1, 1]])]);
    dirty(p, d0);
    expect(p.ioctlBuf(d0, VFIO_DEVICE_PCI_HOT_RESET, resetCdev())).toBe(0);
    expect(bar0(p, d0)).toEqual(new Array(PATTERN.length).fill(0));
    await k.close();
  });

  it("not owned: the other function bound by another process, then by another iommufd: EINVAL, nothing reset", async () => {
    const k = await boot(bus1());
    const p = k.createProcess();
    const q = k.createProcess();
    const i = openIommufd(p);
    const d0 = openBound(p, 0, i, 1);
    const qd = openBound(q, 1, openIommufd(q), 1);
    dirty(p, d0);
    dirty(q, qd);
    let a = info(28);
    expect(p.ioctlBuf(d0, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, a)).toBe(0);
    expect([...a]).toEqual([...infoBytes(28, DEV_ID, 2, [[1, 0, 1, 0], [NOT_OWNED, 0, 1, 1]])]);
    // q sees the mirror image: its own devid 1, p's function not owned.
    a = info(28);
    expect(q.ioctlBuf(qd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, a)).toBe(0);
    expect([...a]).toEqual([...infoBytes(28, DEV_ID, 2, [[NOT_OWNED, 0, 1, 0], [1, 0, 1, 1]])]);
    expect(p.ioctlBuf(d0, VFIO_DEVICE_PCI_HOT_RESET, resetCdev())).toBe(-errno.EINVAL);
    expect(q.ioctlBuf(qd, VFIO_DEVICE_PCI_HOT_RESET, resetCdev())).toBe(-errno.EINVAL);
    expect(bar0(p, d0)).toEqual([...PATTERN]);
    expect(bar0(q, qd)).toEqual([...PATTERN]);
    // q lets go; p binds it through a second iommufd of its own: still another context.
    expect(q.close(qd)).toBe(0);
    expect(p.ioctlBuf(d0, VFIO_DEVICE_PCI_HOT_RESET, resetCdev())).toBe(-errno.EINVAL);
    const d1 = openBound(p, 1, openIommufd(p), 1);
    dirty(p, d1);
    a = info(28);
    expect(p.ioctlBuf(d0, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, a)).toBe(0);
    expect([...a]).toEqual([...infoBytes(28, DEV_ID, 2, [[1, 0, 1, 0], [NOT_OWNED, 0, 1, 1]])]);
    expect(p.ioctlBuf(d0, VFIO_DEVICE_PCI_HOT_RESET, resetCdev())).toBe(-errno.EINVAL);
    expect(bar0(p, d0)).toEqual([...PATTERN]);
    expect(bar0(p, d1)).toEqual([...PATTERN]);
    // Rebound into the first context, the set is owned: both functions reset.
    expect(p.close(d1)).toBe(0);
    const d1b = openBound(p, 1, i, 2);
    dirty(p, d1b);
    expect(p.ioctlBuf(d0, VFIO_DEVICE_PCI_HOT_RESET, resetCdev())).toBe(0);
    expect(bar0(p, d0)).toEqual(new Array(PATTERN.length).fill(0));
    expect(bar0(p, d1b)).toEqual(new Array(PATTERN.length).fill(0));
    await k.close();
  });

  it("a successful reset: every function's BAR0 back to power-on, through its mmap too; config state kept", async () => {
    const k = await boot(bus1());
    const p = k.createProcess();
    const i = openIommufd(p);
    const d0 = openBound(p, 0, i, 1);
    const d1 = openBound(p, 1, i, 2);
    dirty(p, d0);
    dirty(p, d1);
    const map = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d0, 0);
    expect(map).toBeGreaterThan(0);
    const seen = new Uint8Array(PATTERN.length);
    expect(p.readMemory(map + 0x100, seen)).toBe(0);
    expect([...seen]).toEqual([...PATTERN]);
    const cmd = (d: number) => { const b = new Uint8Array(4); expect(p.pread(d, b, CFG + 4)).toBe(4); return [...b]; };
    const before = [cmd(d0), cmd(d1)];
    expect(p.ioctlBuf(d1, VFIO_DEVICE_PCI_HOT_RESET, resetCdev())).toBe(0);
    expect(bar0(p, d0)).toEqual(new Array(PATTERN.length).fill(0));
    expect(bar0(p, d1)).toEqual(new Array(PATTERN.length).fill(0));
    expect(p.readMemory(map + 0x100, seen)).toBe(0);
    expect([...seen]).toEqual(new Array(PATTERN.length).fill(0));
    expect([cmd(d0), cmd(d1)]).toEqual(before);
    // The mapping still works (refaulted after the zap).
    expect(p.writeMemory(map + 0x100, PATTERN)).toBe(0);
    expect(bar0(p, d0)).toEqual([...PATTERN]);
    await k.close();
  });

  it("a function on the bus not bound to vfio-pci: listed NOT_OWNED, the reset EINVAL", async () => {
    const k = await boot(bus1(6, [{ bdf: "0000:01:00.2", model: "memcpy", iommuGroup: 7, driver: "none" }]));
    const p = k.createProcess();
    const i = openIommufd(p);
    const d0 = openBound(p, 0, i, 1);
    openBound(p, 1, i, 2);
    dirty(p, d0);
    const a = info(36);
    expect(p.ioctlBuf(d0, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, a)).toBe(0);
    expect([...a]).toEqual([...infoBytes(36, DEV_ID, 3, [[1, 0, 1, 0], [2, 0, 1, 1], [NOT_OWNED, 0, 1, 2]])]);
    expect(p.ioctlBuf(d0, VFIO_DEVICE_PCI_HOT_RESET, resetCdev())).toBe(-errno.EINVAL);
    expect(bar0(p, d0)).toEqual([...PATTERN]);
    await k.close();
  });

  it("INFO: the array's copy-out faults (header unchanged); the header's copy-in faults", async () => {
    const k = await boot(bus1());
    const p = k.createProcess();
    const d0 = openBound(p, 0, openIommufd(p), 1);
    const page = p.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(page).toBeGreaterThan(0);
    expect(p.munmap(page + 4096, 4096)).toBe(0);
    const at = page + 4096 - 12;
    const hdr = struct(12, [[0, 4, 28], [4, 4, 0x55], [8, 4, 0x66]]);
    expect(p.writeMemory(at, hdr)).toBe(0);
    expect(p.ioctl(d0, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, at)).toBe(-errno.EFAULT);
    const back = new Uint8Array(12);
    expect(p.readMemory(at, back)).toBe(0);
    expect([...back]).toEqual([...hdr]);
    // Too small for the array: the header alone is written, the missing page never touched.
    expect(p.writeMemory(at, struct(12, [[0, 4, 12]]))).toBe(0);
    expect(p.ioctl(d0, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, at)).toBe(-errno.ENOSPC);
    expect(p.readMemory(at, back)).toBe(0);
    expect([...back]).toEqual([...struct(12, [[0, 4, 12], [4, 4, 0], [8, 4, 2]])]);
    expect(p.ioctl(d0, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, page + 4096 - 8)).toBe(-errno.EFAULT);
    await k.close();
  });
});

describe("vfio-pci hot reset: functions behind a root port, the group form", () => {
  /** Both groups in one type1 container; the device fds of 00.0 and 00.1. */
  async function groups(): Promise<{ k: Kernel; p: Process; g5: number; g6: number; d0: number; d1: number }> {
    const k = await boot(bus1());
    const p = k.createProcess();
    const c = p.open("/dev/vfio/vfio", O_RDWR);
    const g5 = p.open("/dev/vfio/5", O_RDWR);
    const g6 = p.open("/dev/vfio/6", O_RDWR);
    expect(setContainer(p, g5, c)).toBe(0);
    expect(setContainer(p, g6, c)).toBe(0);
    expect(p.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    const d0 = getDeviceFd(p, g5, F0);
    const d1 = getDeviceFd(p, g6, F1);
    expect(d0).toBeGreaterThanOrEqual(0);
    expect(d1).toBeGreaterThanOrEqual(0);
    return { k, p, g5, g6, d0, d1 };
  }

  it("INFO: group ids, no flags; ENOSPC with the count", async () => {
    const { k, p, d0, d1 } = await groups();
    let a = info(20);
    expect(p.ioctlBuf(d0, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, a)).toBe(-errno.ENOSPC);
    expect([...a]).toEqual([...struct(a.length, [[0, 4, 20], [4, 4, 0], [8, 4, 2]])]);
    for (const d of [d0, d1]) {
      a = info(28);
      expect(p.ioctlBuf(d, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, a)).toBe(0);
      expect([...a]).toEqual([...infoBytes(28, 0, 2, [[5, 0, 1, 0], [6, 0, 1, 1]])]);
    }
    await k.close();
  });

  it("bad fd arrays: too many, a closed fd (EBADF), a non-group fd, a group missing (EINVAL); nothing reset, no file reference kept", async () => {
    const { k, p, g5, g6, d0, d1 } = await groups();
    dirty(p, d0);
    dirty(p, d1);
    const closed = p.open("/dev/iommu", O_RDWR);
    expect(p.close(closed)).toBe(0);
    const files = openFiles(k);
    const cases: [number[], number][] = [
      [[g5, g6, g5], -errno.EINVAL], // more fds than affected functions
      [[g5], -errno.EINVAL], // 00.1's group not given
      [[g6, g6], -errno.EINVAL],
      [[g5, closed], -errno.EBADF],
      [[closed, d1], -errno.EBADF], // the first bad fd decides
      [[d1, closed], -errno.EINVAL],
      [[g5, d1], -errno.EINVAL], // a device fd is not a group fd
      [[-1, g6], -errno.EBADF],
    ];
    for (const [fds, rc] of cases) {
      expect({ fds, rc: p.ioctlBuf(d0, VFIO_DEVICE_PCI_HOT_RESET, resetGroups(fds)) }).toEqual({ fds, rc });
    }
    expect(openFiles(k)).toBe(files);
    expect(bar0(p, d0)).toEqual([...PATTERN]);
    expect(bar0(p, d1)).toEqual([...PATTERN]);
    // The array is read from user memory: unmapped past the header, EFAULT.
    const page = p.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p.munmap(page + 4096, 4096)).toBe(0);
    expect(p.writeMemory(page + 4096 - 12, struct(12, [[0, 4, 20], [4, 4, 0], [8, 4, 2]]))).toBe(0);
    expect(p.ioctl(d0, VFIO_DEVICE_PCI_HOT_RESET, page + 4096 - 12)).toBe(-errno.EFAULT);
    expect(bar0(p, d0)).toEqual([...PATTERN]);
    await k.close();
  });

  it("every group given (any order, from either function): 0, both functions reset", async () => {
    const { k, p, g5, g6, d0, d1 } = await groups();
    const files = openFiles(k);
    for (const [d, fds] of [[d0, [g5, g6]], [d1, [g6, g5]]] as [number, number[]][]) {
      dirty(p, d0);
      dirty(p, d1);
      expect(p.ioctlBuf(d, VFIO_DEVICE_PCI_HOT_RESET, resetGroups(fds))).toBe(0);
      expect(bar0(p, d0)).toEqual(new Array(PATTERN.length).fill(0));
      expect(bar0(p, d1)).toEqual(new Array(PATTERN.length).fill(0));
    }
    expect(openFiles(k)).toBe(files);
    await k.close();
  });
});
