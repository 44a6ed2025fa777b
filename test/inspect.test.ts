// src/inspect.ts, the read-only view the browser page draws: the files with their gate words,
// the iommufd objects, IOAS areas, type1 mappings, and the x86 IO page table walked in shared
// memory (leaf runs of 4 KiB and 2 MiB with their bits), exactly.
import { describe, it, expect } from "vitest";
import {
  createKernel, IommuFd, VfioContainer, VfioDeviceFile, VfioGroup, VFIO_TYPE1v2_IOMMU,
  MAP_ANONYMOUS, MAP_HUGETLB, MAP_HUGE_2MB, MAP_SHARED, PROT_READ, PROT_WRITE,
} from "../src/index.js";
import { inspectKernel } from "../src/inspect.js";

const BDF = "0000:00:04.0";
const boot = () => createKernel({ memoryBytes: 64 << 20, devices: [{ bdf: BDF, model: "memcpy", iommuGroup: 7 }] });

describe("inspectKernel", () => {
  it("shows the cdev's gate closed, then granted, and the IOAS's areas and page table", async () => {
    const kernel = await boot();
    const proc = kernel.createProcess({ memlockBytes: 16 << 20 });
    const iommufd = IommuFd.open(proc);
    const dev = VfioDeviceFile.open(proc, "/dev/vfio/devices/vfio0");
    let v = inspectKernel(kernel);
    expect(v.files.map((f) => [f.fd, f.path, f.kind, f.granted, f.state])).toEqual([
      [0, "/dev/iommu", "iommufd", false, "0 objects"],
      [1, "/dev/vfio/devices/vfio0", "vfio-device", false, "blocked: no BIND yet (every op but BIND is -EINVAL)"],
    ]);
    const closedWord = v.files[1].gateWord;
    expect(closedWord & 0xff).toBe(0);

    const devid = dev.bind(iommufd);
    const ioas = iommufd.allocIoas();
    const hwpt = dev.attach(ioas.id);
    const buf = proc.mmap(0, 4 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
    ioas.map({ userVa: buf, length: 4 << 20, iova: 0x40000000n });
    ioas.map({ userVa: buf, length: 0x3000, iova: 0x10000n, writeable: false });
    v = inspectKernel(kernel);
    // Granted: byte 0 set, the generation kept.
    expect(v.files[1].gateWord).toBe(closedWord | 1);
    expect(v.files[1].state).toBe(`bound: devid ${devid}, attached to HWPT ${hwpt}`);
    expect(v.objects).toHaveLength(1);
    expect(v.objects[0].list.map((o) => [o.id, o.type])).toEqual([[devid, "device"], [ioas.id, "ioas"], [hwpt, "hwpt_paging"]]);
    expect(v.ioas).toHaveLength(1);
    const io = v.ioas[0];
    expect(io.areas).toEqual([
      { start: 0x10000n, last: 0x12fffn, read: true, write: false, pinnedBy: "3 pages" },
      { start: 0x40000000n, last: 0x403fffffn, read: true, write: true, pinnedBy: "1024 pages" },
    ]);
    expect(io.hwpts).toEqual([hwpt]);
    const pt = io.domains[0];
    expect(pt.format).toBe("x86");
    expect(pt.mappedPages).toBe(1024 + 3);
    // One PML4 and one PDPT entry each; two PD entries under 0x40000000 (2 MiB leaves) and one
    // under 0 (a table of three 4 KiB leaves).
    expect(pt.levels).toEqual([
      { name: "PML4", tables: 1, entries: 1 },
      { name: "PDPT", tables: 1, entries: 2 },
      { name: "PD", tables: 2, entries: 3 },
      { name: "PT", tables: 1, entries: 3 },
    ]);
    const phys = pt.runs[0].phys;
    expect(phys % (2 << 20)).toBe(0);
    expect(pt.runs).toEqual([
      { iova: 0x10000n, phys, size: 4096, count: 3, read: true, write: false, dirty: false, accessed: false },
      { iova: 0x40000000n, phys, size: 2 << 20, count: 2, read: true, write: true, dirty: false, accessed: false },
    ]);
    dev.close();
    iommufd.close();
    expect(inspectKernel(kernel).files).toEqual([]);
    await kernel.close();
  });

  it("shows the legacy container's type1 mappings and its domain", async () => {
    const kernel = await boot();
    const proc = kernel.createProcess({ memlockBytes: 16 << 20 });
    const group = VfioGroup.open(proc, 7);
    const container = VfioContainer.open(proc);
    expect(inspectKernel(kernel).containers).toEqual([{ fd: "pid 1 fd 1", type: "none", groups: [], dmas: [], domains: [] }]);
    group.setContainer(container);
    container.setIommu(VFIO_TYPE1v2_IOMMU);
    const dev = group.getDeviceFd(BDF);
    const buf = proc.mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    container.mapDma({ vaddr: buf, iova: 0x100000, size: 0x2000 });
    const v = inspectKernel(kernel);
    expect(v.files.map((f) => [f.kind, f.granted, f.state])).toEqual([
      ["vfio-group", false, "in a container with a type1 IOMMU"],
      ["vfio-container", false, "type1 IOMMU set"],
      ["vfio-device", true, "open through group 7, DMA through its container"],
    ]);
    const c = v.containers[0];
    expect(c.type).toBe("VFIO_TYPE1v2_IOMMU");
    expect(c.groups).toEqual([7]);
    expect(c.dmas).toEqual([{ iova: 0x100000n, size: 0x2000n, vaddr: BigInt(buf), read: true, write: true }]);
    expect(c.domains).toHaveLength(1);
    expect(c.domains[0].mappedPages).toBe(2);
    expect(c.domains[0].runs.reduce((n, r) => n + r.count, 0)).toBe(2);
    expect(c.domains[0].runs.every((r) => r.size === 4096 && r.read && r.write)).toBe(true);
    dev.close();
    group.close();
    container.close();
    await kernel.close();
  });
});
