// The sysfs view of PCI devices and IOMMU groups (API.md "Paths"): exact attribute strings,
// link targets, realpaths and listings.
import { describe, it, expect } from "vitest";
import { createKernel, type Kernel } from "../src/index.js";
import type { Process } from "../src/kernel/process.js";
import { Vfs } from "../src/kernel/vfs.js";
import { PciBus, pciSysfsDir } from "../src/devices/pci.js";
import { IommuGroups } from "../src/iommu/iommu_group.js";
import { errno } from "../src/uapi/errno.js";

const MiB = 1024 * 1024;
const DEV = "/sys/bus/pci/devices";

async function setup(): Promise<{ kernel: Kernel; p: Process }> {
  const kernel = await createKernel({
    memoryBytes: 64 * MiB,
    devices: [
      { bdf: "0000:00:04.0", model: "memcpy" },
      { bdf: "0000:00:05.0", model: "memcpy", iommuGroup: 7 },
      { bdf: "0000:00:06.0", model: "memcpy", iommuGroup: 7, driver: "kernel" },
      { bdf: "0000:00:07.0", model: "memcpy", driver: "none" },
      { bdf: "0000:01:00.0", model: "memcpy" },
    ],
  });
  return { kernel, p: kernel.createProcess() };
}

describe("PCI device attributes", () => {
  it("vendor, device and class read as the kernel prints them", async () => {
    const { p } = await setup();
    expect(p.readFile(`${DEV}/0000:00:04.0/vendor`)).toBe("0x1b36\n");
    expect(p.readFile(`${DEV}/0000:00:04.0/device`)).toBe("0x10ec\n");
    expect(p.readFile(`${DEV}/0000:00:04.0/class`)).toBe("0x088000\n");
    expect(p.readFile(`${DEV}/0000:01:00.0/vendor`)).toBe("0x1b36\n");
  });

  it("the bus's device entries are links into /sys/devices", async () => {
    const { p } = await setup();
    expect(p.readdir(DEV)).toEqual(["0000:00:04.0", "0000:00:05.0", "0000:00:06.0", "0000:00:07.0", "0000:01:00.0"]);
    expect(p.readlink(`${DEV}/0000:00:04.0`)).toBe("../../../devices/pci0000:00/0000:00:04.0");
    expect(p.realpath(`${DEV}/0000:01:00.0`)).toBe("/sys/devices/pci0000:01/0000:01:00.0");
  });

  it("subsystem resolves to /sys/bus/pci", async () => {
    const { p } = await setup();
    for (const bdf of ["0000:00:04.0", "0000:01:00.0"]) {
      expect(p.realpath(`${DEV}/${bdf}/subsystem`)).toBe("/sys/bus/pci");
      expect(p.readlink(`${DEV}/${bdf}/subsystem`)).toBe("../../../bus/pci");
    }
    expect(p.readdir(`${DEV}/0000:00:04.0/subsystem`)).toEqual(["devices", "drivers"]);
  });
});

describe("iommu_group", () => {
  it("is a link reading ../../../kernel/iommu_groups/<n>", async () => {
    const { p } = await setup();
    expect(p.readlink(`${DEV}/0000:00:04.0/iommu_group`)).toBe("../../../kernel/iommu_groups/0");
    expect(p.readlink(`${DEV}/0000:00:05.0/iommu_group`)).toBe("../../../kernel/iommu_groups/7");
    expect(p.readlink(`${DEV}/0000:00:06.0/iommu_group`)).toBe("../../../kernel/iommu_groups/7");
    expect(p.readlink(`${DEV}/0000:00:07.0/iommu_group`)).toBe("../../../kernel/iommu_groups/1");
    expect(p.readlink(`${DEV}/0000:01:00.0/iommu_group`)).toBe("../../../kernel/iommu_groups/2");
    expect(p.realpath(`${DEV}/0000:00:05.0/iommu_group`)).toBe("/sys/kernel/iommu_groups/7");
  });

  it("fresh groups are numbered from 0 up, skipping numbers in use", async () => {
    const { kernel } = await setup();
    expect(kernel.devices.map((d) => d.iommuGroup)).toEqual([0, 7, 7, 1, 2]);
    expect(kernel.addDevice({ bdf: "0000:00:08.0", model: "memcpy", iommuGroup: 3 }).iommuGroup).toBe(3);
    expect(kernel.addDevice({ bdf: "0000:00:09.0", model: "memcpy" }).iommuGroup).toBe(4);
  });

  it("/sys/kernel/iommu_groups/<n>/devices lists the members, as links to them", async () => {
    const { p } = await setup();
    expect(p.readdir("/sys/kernel/iommu_groups")).toEqual(["0", "1", "2", "7"]);
    expect(p.readdir("/sys/kernel/iommu_groups/7/devices")).toEqual(["0000:00:05.0", "0000:00:06.0"]);
    expect(p.readdir("/sys/kernel/iommu_groups/0/devices")).toEqual(["0000:00:04.0"]);
    expect(p.readlink("/sys/kernel/iommu_groups/7/devices/0000:00:05.0"))
      .toBe("../../../../devices/pci0000:00/0000:00:05.0");
    expect(p.realpath("/sys/kernel/iommu_groups/7/devices/0000:00:06.0")).toBe("/sys/devices/pci0000:00/0000:00:06.0");
    expect(p.realpath("/sys/kernel/iommu_groups/2/devices/0000:01:00.0")).toBe("/sys/devices/pci0000:01/0000:01:00.0");
    expect(p.readFile("/sys/kernel/iommu_groups/7/devices/0000:00:06.0/device")).toBe("0x10ec\n");
    // Round trip: a member's group link leads back to the group.
    expect(p.realpath("/sys/kernel/iommu_groups/7/devices/0000:00:06.0/iommu_group")).toBe("/sys/kernel/iommu_groups/7");
  });
});

describe("driver", () => {
  it("is a link whose last element is the bound driver's name", async () => {
    const { p } = await setup();
    const link = p.readlink(`${DEV}/0000:00:04.0/driver`);
    expect(link).toBe("../../../bus/pci/drivers/vfio-pci");
    expect((link as string).split("/").pop()).toBe("vfio-pci");
    expect(p.realpath(`${DEV}/0000:00:04.0/driver`)).toBe("/sys/bus/pci/drivers/vfio-pci");
    // The driver's directory links back to its devices.
    expect(p.readdir("/sys/bus/pci/drivers/vfio-pci")).toEqual(["0000:00:04.0", "0000:00:05.0", "0000:01:00.0"]);
    expect(p.realpath("/sys/bus/pci/drivers/vfio-pci/0000:00:05.0")).toBe("/sys/devices/pci0000:00/0000:00:05.0");
  });

  it("'kernel' binds an ordinary kernel driver, 'none' leaves no driver link", async () => {
    const { p } = await setup();
    const k = p.readlink(`${DEV}/0000:00:06.0/driver`);
    expect(typeof k).toBe("string");
    const name = (k as string).split("/").pop();
    expect(name).not.toBe("vfio-pci");
    expect(name).toBe("pci-stub-dma");
    expect(p.realpath(`${DEV}/0000:00:06.0/driver/0000:00:06.0`)).toBe("/sys/devices/pci0000:00/0000:00:06.0");
    expect(p.readlink(`${DEV}/0000:00:07.0/driver`)).toBe(-errno.ENOENT);
    expect(p.readdir(`${DEV}/0000:00:07.0`)).toEqual(["class", "device", "iommu_group", "subsystem", "vendor"]);
  });
});

describe("missing paths", () => {
  it("give ENOENT", async () => {
    const { p } = await setup();
    expect(p.readFile(`${DEV}/0000:00:0a.0/vendor`)).toBe(-errno.ENOENT);
    expect(p.readFile(`${DEV}/0000:00:04.0/nope`)).toBe(-errno.ENOENT);
    expect(p.readlink(`${DEV}/0000:00:04.0/nope`)).toBe(-errno.ENOENT);
    expect(p.realpath("/sys/kernel/iommu_groups/3")).toBe(-errno.ENOENT);
    expect(p.readdir("/sys/kernel/iommu_groups/3/devices")).toBe(-errno.ENOENT);
    // Only vfio-pci devices have a vfio-dev directory (the device cdev issue).
    expect(p.stat(`${DEV}/0000:00:06.0/vfio-dev`)).toBe(-errno.ENOENT);
    expect(p.stat(`${DEV}/0000:00:07.0/vfio-dev`)).toBe(-errno.ENOENT);
    expect(p.open(`${DEV}/0000:00:04.0/vendor/x`, 0)).toBe(-errno.ENOTDIR);
  });
});

describe("PciBus and IommuGroups removal", () => {
  it("removing a device takes its entries away; the last member takes its group", () => {
    const vfs = new Vfs();
    const bus = new PciBus(vfs);
    const groups = new IommuGroups(vfs);
    const ids = { vendor: 0x1b36, device: 0x10ec, classCode: 0x088000 };
    const a = bus.add("0000:00:04.0", ids, "vfio-pci");
    const b = bus.add("0000:00:05.0", ids, "vfio-pci");
    groups.add(0, { bdf: "0000:00:04.0", sysfsDir: a });
    groups.add(0, { bdf: "0000:00:05.0", sysfsDir: b });
    expect(groups.freshId()).toBe(1);
    groups.remove(0, "0000:00:04.0");
    bus.remove("0000:00:04.0", "vfio-pci");
    expect(vfs.resolve("/sys/bus/pci/devices/0000:00:04.0")).toBe(-errno.ENOENT);
    expect(vfs.resolve("/sys/bus/pci/drivers/vfio-pci/0000:00:04.0")).toBe(-errno.ENOENT);
    expect(vfs.resolve("/sys/devices/pci0000:00/0000:00:04.0")).toBe(-errno.ENOENT);
    expect(vfs.resolve("/sys/kernel/iommu_groups/0/devices/0000:00:04.0", false)).toBe(-errno.ENOENT);
    expect(groups.get(0)!.members.map((m) => m.bdf)).toEqual(["0000:00:05.0"]);
    groups.remove(0, "0000:00:05.0");
    expect(groups.get(0)).toBeUndefined();
    expect(vfs.resolve("/sys/kernel/iommu_groups/0")).toBe(-errno.ENOENT);
    expect(groups.freshId()).toBe(0);
    // The device is still there without its group link.
    expect(vfs.resolve(`${b}/iommu_group`, false)).toBe(-errno.ENOENT);
    expect(typeof vfs.resolve(`${b}/vendor`)).toBe("object");
  });

  it("rejects malformed PCI addresses", () => {
    expect(() => pciSysfsDir("0000:00:04.0")).not.toThrow();
    for (const bad of ["00:04.0", "0000:00:04", "0000:00:20.0", "0000:00:04.8", "0000:00:0A.0"]) {
      expect(() => pciSysfsDir(bad)).toThrow(TypeError);
    }
  });
});
