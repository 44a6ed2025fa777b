// Hot reset on vfio-pci (drivers/vfio/pci/vfio_pci_core.c vfio_pci_ioctl_get_pci_hot_reset_info,
// vfio_pci_ioctl_pci_hot_reset): the header checks, the rule that a cdev-opened device passes a
// zero-length fd array and a group-opened one its group fds, then the reset probe. The emulated
// functions sit directly on a root bus (no bridge above them, no hotplug slot), where
// pci_probe_reset_slot and pci_probe_reset_bus both fail: ENODEV, as on such hardware.

import { describe, expect, it } from "vitest";
import { O_CLOEXEC, O_RDWR } from "../../src/index.js";
import { bind, boot, errno, openDev, openIommufd, struct, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, VFIO_DEVICE_PCI_HOT_RESET } from "./util.js";
import { getDeviceFd, setContainer } from "./legacy_util.js";

const info = (argsz: number) => struct(16, [[0, 4, argsz]]);
const reset = (argsz: number, flags: number, fds: number[]) =>
  struct(12 + 4 * fds.length, [[0, 4, argsz], [4, 4, flags], [8, 4, fds.length], ...fds.map((f, j) => [12 + 4 * j, 4, f] as [number, 4, number])]);

describe("vfio-pci hot reset", () => {
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
});
