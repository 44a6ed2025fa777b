// CONFORMANCE.md §1a: tools/testing/selftests/vfio/vfio_iommufd_setup_test.c, the cdev
// "blocked until bound" fixture. The kernel test asserts only failure; these assert the
// kernel's errnos (drivers/vfio/device_cdev.c, vfio_main.c).

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Kernel, Process } from "../../src/index.js";
import {
  attachArg, bind, bindArg, boot, cdevFixture, detachArg, errno, getInfo, infoArg, ioasAlloc, openIommufd, u32,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_DETACH_IOMMUFD_PT, VFIO_DEVICE_GET_INFO,
} from "./util.js";

describe("vfio_iommufd_setup_test", () => {
  let k: Kernel;
  let p: Process;
  let cdev: number;
  let iommufd: number;

  beforeEach(async () => {
    k = await boot();
    p = k.createProcess();
    // The fixture finds the node through sysfs, as the selftest library does.
    const entries = p.readdir(`/sys/bus/pci/devices/${k.devices[0].bdf}/vfio-dev`);
    expect(entries).toEqual(["vfio0"]);
    cdev = p.open(`/dev/vfio/devices/${(entries as string[])[0]}`, 2);
    iommufd = openIommufd(p);
    expect(cdev).toBeGreaterThanOrEqual(0);
    expect(iommufd).toBeGreaterThan(0);
  });

  afterEach(async () => {
    expect(p.close(cdev)).toBe(0);
    expect(p.close(iommufd)).toBe(0);
    await k.close();
  });

  it("cdev.bind", () => {
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_BIND_IOMMUFD, bindArg(iommufd))).toBe(0);
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_GET_INFO, infoArg())).toBe(0);
  });

  it("cdev.get_info_without_bind_fails", () => {
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_GET_INFO, infoArg())).toBe(-errno.EINVAL);
  });

  it("cdev.bind_bad_iommufd_fails", () => {
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_BIND_IOMMUFD, bindArg(-2))).toBe(-errno.EINVAL);
    // A non-negative fd: not open -> EBADF (fget); open but not /dev/iommu -> EBADFD.
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_BIND_IOMMUFD, bindArg(999))).toBe(-errno.EBADF);
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_BIND_IOMMUFD, bindArg(cdev))).toBe(-errno.EBADFD);
    // The failed binds left the file blocked and the device unbound.
    expect(getInfo(p, cdev)).toBe(-errno.EINVAL);
    expect(bind(p, cdev, iommufd)).toBe(1);
  });

  it("cdev.repeated_bind_fails", () => {
    const a = bindArg(iommufd);
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_BIND_IOMMUFD, a)).toBe(0);
    expect(u32(a, 12)).toBe(1); // out_devid: the first object of the context
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_BIND_IOMMUFD, bindArg(iommufd))).toBe(-errno.EINVAL);
  });

  it("cdev.attach_detach_pt", () => {
    expect(bind(p, cdev, iommufd)).toBe(1);
    const ioas = ioasAlloc(p, iommufd);
    expect(ioas).toBe(2);
    const a = attachArg(ioas);
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, a)).toBe(0);
    expect(u32(a, 8)).toBe(3); // rewritten to the auto HWPT
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, detachArg())).toBe(0);
  });

  it("cdev.attach_invalid_pt_fails", () => {
    expect(bind(p, cdev, iommufd)).toBe(1);
    const a = attachArg(0xffffffff);
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, a)).toBe(-errno.ENOENT);
    expect(u32(a, 8)).toBe(0xffffffff); // nothing written back on failure
    // ATTACH/DETACH argument checks (stored device_cdev.c): argsz < minsz, unknown flags.
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, attachArg(2, 11))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, attachArg(2, 16, 2))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, detachArg(7))).toBe(-errno.EINVAL);
    expect(p.ioctlBuf(cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, detachArg(12, 2))).toBe(-errno.EINVAL);
  });
});

describe("CONFORMANCE §1b library open sequence (cdev path)", () => {
  it("open cdev, open /dev/iommu, BIND, IOAS_ALLOC, ATTACH(ioas)", async () => {
    const { k, p, d, i } = await cdevFixture();
    expect(i).toBeGreaterThan(0);
    expect(bind(p, d, i)).toBe(1);
    const ioas = ioasAlloc(p, i);
    expect(p.ioctlBuf(d, VFIO_DEVICE_ATTACH_IOMMUFD_PT, attachArg(ioas))).toBe(0);
    expect(getInfo(p, d)).toBe(0);
    await k.close();
  });
});
