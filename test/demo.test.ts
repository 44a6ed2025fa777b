// `vfio-emu demo` (npm run demo): the end-to-end scenario a newcomer runs first. It must run
// clean (exit code 0: no frame, file or object left behind) and show the cdev open sequence of
// CONFORMANCE §1b with its trace.
import { describe, it, expect } from "vitest";
import { runDemo, runLegacyDemo } from "../src/demo.js";

describe("vfio-emu demo", () => {
  it("runs the cdev open sequence end to end, traced, and leaves nothing behind", async () => {
    const lines: string[] = [];
    const rc = await runDemo((l) => lines.push(l));
    expect(rc).toBe(0);
    const text = lines.join("\n");
    for (const want of [
      "vfio-dev: vfio0",
      "  sys_open pid=1 path=/dev/vfio/devices/vfio0 flags=0x2 ret=2",
      "  sys_pread pid=1 fd=2 len=0x4 off=0x70000000000 ret=-EINVAL",
      "config read before BIND: -EINVAL (the file starts blocked)",
      "  sys_ioctl pid=1 fd=2 cmd=VFIO_DEVICE_BIND_IOMMUFD arg=0x7ffff7f00000 ret=0",
      "config vendor:device 1b36:10ec",
      "device DMA before ATTACH: -EFAULT (blocked)",
      "  sys_ioctl pid=1 fd=2 cmd=VFIO_DEVICE_ATTACH_IOMMUFD_PT arg=0x7ffff7f00000 ret=0",
      'device reads IOVA 0x10000: 0x0 "hello, DMA"',
      'the process sees "HELLO, DMA"',
      "after unmap: -EFAULT (fault at 0x10000, unmapped)",
      "# 0 iommufd objects, 0 pinned pages left after close",
    ]) expect(lines).toContain(want);
    // Calls appear in the order the driver made them.
    expect(text.indexOf("VFIO_DEVICE_BIND_IOMMUFD")).toBeLessThan(text.indexOf("VFIO_DEVICE_ATTACH_IOMMUFD_PT"));
  });
});

describe("vfio-emu demo --legacy", () => {
  it("runs the group sequence end to end, traced, and leaves nothing behind", async () => {
    const lines: string[] = [];
    const rc = await runLegacyDemo((l) => lines.push(l));
    expect(rc).toBe(0);
    for (const want of [
      "  sys_open pid=1 path=/dev/vfio/7 flags=0x2 ret=0",
      "group flags before a container: 0x1",
      "VFIO_GET_API_VERSION: 0",
      "VFIO_CHECK_EXTENSION(TYPE1v2): 1",
      "  sys_ioctl pid=1 fd=1 cmd=VFIO_SET_IOMMU arg=0x3 ret=0",
      "group flags after SET_CONTAINER: 0x3",
      "  sys_ioctl pid=1 fd=0 cmd=VFIO_GROUP_GET_DEVICE_FD arg=0x7ffff7f00000 ret=2",
      // The container's MAP/UNMAP numbers are the device's hot-reset ones: named by the file.
      "  sys_ioctl pid=1 fd=1 cmd=VFIO_IOMMU_MAP_DMA arg=0x7ffff7f00000 ret=0",
      "  sys_ioctl pid=1 fd=1 cmd=VFIO_IOMMU_UNMAP_DMA arg=0x7ffff7f00000 ret=0",
      'device reads IOVA 0x10000: 0x0 "hello, DMA"',
      'the process sees "HELLO, DMA"',
      "unmapped 1048576 bytes",
      "after unmap: -EFAULT (fault at 0x10000, unmapped)",
    ]) expect(lines).toContain(want);
  });
});
