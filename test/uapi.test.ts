// The ABI layer against literals typed from SPEC.md §3 and the kernel uapi headers
// (include/uapi/linux/{vfio,iommufd}.h, drivers/iommu/iommufd/iommufd_test.h), x86_64.
// Nothing here is computed from the module under test: every number is written out.

import { describe, it, expect } from "vitest";
import * as uapi from "../src/uapi/index.js";
import type { StructLayout } from "../src/uapi/struct.js";
import {
  ioctlName, iommufdIoctlName, vfioIoctlName, makedev, major, minor,
  VFIO_PCI_INDEX_TO_OFFSET, VFIO_PCI_OFFSET_TO_INDEX,
  _IOC, _IOC_NR, _IOC_TYPE, _IOC_SIZE, _IOC_DIR,
} from "../src/uapi/index.js";

const U = uapi as unknown as Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// ioctl numbers (SPEC.md §3.1; IOMMU_TEST_CMD from iommufd_test.h)

const IOCTLS: [string, number][] = [
  ["VFIO_GET_API_VERSION", 0x3b64],
  ["VFIO_CHECK_EXTENSION", 0x3b65],
  ["VFIO_SET_IOMMU", 0x3b66],
  ["VFIO_GROUP_GET_STATUS", 0x3b67],
  ["VFIO_GROUP_SET_CONTAINER", 0x3b68],
  ["VFIO_GROUP_UNSET_CONTAINER", 0x3b69],
  ["VFIO_GROUP_GET_DEVICE_FD", 0x3b6a],
  ["VFIO_DEVICE_GET_INFO", 0x3b6b],
  ["VFIO_DEVICE_GET_REGION_INFO", 0x3b6c],
  ["VFIO_DEVICE_GET_IRQ_INFO", 0x3b6d],
  ["VFIO_DEVICE_SET_IRQS", 0x3b6e],
  ["VFIO_DEVICE_RESET", 0x3b6f],
  ["VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", 0x3b70],
  ["VFIO_IOMMU_GET_INFO", 0x3b70],
  ["VFIO_DEVICE_PCI_HOT_RESET", 0x3b71],
  ["VFIO_IOMMU_MAP_DMA", 0x3b71],
  ["VFIO_DEVICE_QUERY_GFX_PLANE", 0x3b72],
  ["VFIO_IOMMU_UNMAP_DMA", 0x3b72],
  ["VFIO_DEVICE_GET_GFX_DMABUF", 0x3b73],
  ["VFIO_IOMMU_ENABLE", 0x3b73],
  ["VFIO_DEVICE_IOEVENTFD", 0x3b74],
  ["VFIO_IOMMU_DISABLE", 0x3b74],
  ["VFIO_DEVICE_FEATURE", 0x3b75],
  ["VFIO_IOMMU_DIRTY_PAGES", 0x3b75],
  ["VFIO_DEVICE_BIND_IOMMUFD", 0x3b76],
  ["VFIO_DEVICE_ATTACH_IOMMUFD_PT", 0x3b77],
  ["VFIO_DEVICE_DETACH_IOMMUFD_PT", 0x3b78],
  ["VFIO_EEH_PE_OP", 0x3b79],
  ["VFIO_MIG_GET_PRECOPY_INFO", 0x3b79],
  ["IOMMU_DESTROY", 0x3b80],
  ["IOMMU_IOAS_ALLOC", 0x3b81],
  ["IOMMU_IOAS_ALLOW_IOVAS", 0x3b82],
  ["IOMMU_IOAS_COPY", 0x3b83],
  ["IOMMU_IOAS_IOVA_RANGES", 0x3b84],
  ["IOMMU_IOAS_MAP", 0x3b85],
  ["IOMMU_IOAS_UNMAP", 0x3b86],
  ["IOMMU_OPTION", 0x3b87],
  ["IOMMU_VFIO_IOAS", 0x3b88],
  ["IOMMU_HWPT_ALLOC", 0x3b89],
  ["IOMMU_GET_HW_INFO", 0x3b8a],
  ["IOMMU_HWPT_SET_DIRTY_TRACKING", 0x3b8b],
  ["IOMMU_HWPT_GET_DIRTY_BITMAP", 0x3b8c],
  ["IOMMU_HWPT_INVALIDATE", 0x3b8d],
  ["IOMMU_FAULT_QUEUE_ALLOC", 0x3b8e],
  ["IOMMU_IOAS_MAP_FILE", 0x3b8f],
  ["IOMMU_VIOMMU_ALLOC", 0x3b90],
  ["IOMMU_VDEVICE_ALLOC", 0x3b91],
  ["IOMMU_IOAS_CHANGE_PROCESS", 0x3b92],
  ["IOMMU_VEVENTQ_ALLOC", 0x3b93],
  ["IOMMU_HW_QUEUE_ALLOC", 0x3b94],
  ["IOMMU_TEST_CMD", 0x3ba0],
];

// fd kind -> [number, name] as vfioIoctlName must report it
const VFIO_BY_KIND: Record<"device" | "container" | "group", [number, string][]> = {
  device: [
    [0x3b6b, "VFIO_DEVICE_GET_INFO"], [0x3b6c, "VFIO_DEVICE_GET_REGION_INFO"],
    [0x3b6d, "VFIO_DEVICE_GET_IRQ_INFO"], [0x3b6e, "VFIO_DEVICE_SET_IRQS"], [0x3b6f, "VFIO_DEVICE_RESET"],
    [0x3b70, "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO"], [0x3b71, "VFIO_DEVICE_PCI_HOT_RESET"],
    [0x3b72, "VFIO_DEVICE_QUERY_GFX_PLANE"], [0x3b73, "VFIO_DEVICE_GET_GFX_DMABUF"],
    [0x3b74, "VFIO_DEVICE_IOEVENTFD"], [0x3b75, "VFIO_DEVICE_FEATURE"], [0x3b76, "VFIO_DEVICE_BIND_IOMMUFD"],
    [0x3b77, "VFIO_DEVICE_ATTACH_IOMMUFD_PT"], [0x3b78, "VFIO_DEVICE_DETACH_IOMMUFD_PT"],
  ],
  container: [
    [0x3b64, "VFIO_GET_API_VERSION"], [0x3b65, "VFIO_CHECK_EXTENSION"], [0x3b66, "VFIO_SET_IOMMU"],
    [0x3b70, "VFIO_IOMMU_GET_INFO"], [0x3b71, "VFIO_IOMMU_MAP_DMA"], [0x3b72, "VFIO_IOMMU_UNMAP_DMA"],
    [0x3b73, "VFIO_IOMMU_ENABLE"], [0x3b74, "VFIO_IOMMU_DISABLE"], [0x3b75, "VFIO_IOMMU_DIRTY_PAGES"],
    [0x3b79, "VFIO_EEH_PE_OP"],
  ],
  group: [
    [0x3b67, "VFIO_GROUP_GET_STATUS"], [0x3b68, "VFIO_GROUP_SET_CONTAINER"],
    [0x3b69, "VFIO_GROUP_UNSET_CONTAINER"], [0x3b6a, "VFIO_GROUP_GET_DEVICE_FD"],
  ],
};

describe("ioctl numbers", () => {
  it.each(IOCTLS)("%s = %i", (name, value) => {
    expect(U[name]).toBe(value);
  });

  it("bases and API version", () => {
    expect(uapi.VFIO_TYPE).toBe(0x3b);
    expect(uapi.VFIO_BASE).toBe(100);
    expect(uapi.IOMMUFD_TYPE).toBe(0x3b);
    expect(uapi.IOMMUFD_CMD_BASE).toBe(0x80);
    expect(uapi.VFIO_API_VERSION).toBe(0);
  });

  it("_IOC encoding (x86_64)", () => {
    expect(uapi._IO(0x3b, 0x80)).toBe(0x3b80);
    expect(uapi._IOR(0x3b, 0x80, 8)).toBe(0x80083b80);
    expect(uapi._IOW(0x3b, 0x80, 8)).toBe(0x40083b80);
    expect(uapi._IOWR(0x3b, 0x80, 8)).toBe(0xc0083b80);
    expect(_IOC(3, 0x3b, 0x85, 40)).toBe(0xc0283b85);
    expect(_IOC_NR(0xc0283b85)).toBe(0x85);
    expect(_IOC_TYPE(0xc0283b85)).toBe(0x3b);
    expect(_IOC_SIZE(0xc0283b85)).toBe(40);
    expect(_IOC_DIR(0xc0283b85)).toBe(3);
  });

  it("vfioIoctlName by fd kind", () => {
    for (const kind of ["device", "container", "group"] as const) {
      const table = VFIO_BY_KIND[kind];
      for (const [cmd, name] of table) expect(vfioIoctlName(cmd, kind)).toBe(name);
      for (let cmd = 0x3b60; cmd < 0x3bb0; cmd++) {
        if (!table.some(([c]) => c === cmd)) expect(vfioIoctlName(cmd, kind)).toBeUndefined();
      }
    }
  });

  it("iommufdIoctlName", () => {
    const iommu = IOCTLS.filter(([n]) => n.startsWith("IOMMU_"));
    for (const [name, cmd] of iommu) expect(iommufdIoctlName(cmd)).toBe(name);
    expect(iommufdIoctlName(0x3b7f)).toBeUndefined();
    expect(iommufdIoctlName(0x3b95)).toBeUndefined();
    expect(iommufdIoctlName(0x3b64)).toBeUndefined();
    expect(iommufdIoctlName(0xc0083b80)).toBeUndefined(); // right nr, dir/size bits set
  });

  it("ioctlName: device meaning first, else hex", () => {
    expect(ioctlName(0x3b70)).toBe("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO");
    expect(ioctlName(0x3b71)).toBe("VFIO_DEVICE_PCI_HOT_RESET");
    expect(ioctlName(0x3b75)).toBe("VFIO_DEVICE_FEATURE");
    expect(ioctlName(0x3b64)).toBe("VFIO_GET_API_VERSION");
    expect(ioctlName(0x3b67)).toBe("VFIO_GROUP_GET_STATUS");
    expect(ioctlName(0x3b79)).toBe("VFIO_EEH_PE_OP");
    expect(ioctlName(0x3b85)).toBe("IOMMU_IOAS_MAP");
    expect(ioctlName(0x3ba0)).toBe("IOMMU_TEST_CMD");
    expect(ioctlName(0x3b7f)).toBe("0x3b7f");
    expect(ioctlName(0xc0083b80)).toBe("0xc0083b80");
  });

  it("ioctlName: the file's kind picks the meaning of an overloaded number", () => {
    expect(ioctlName(0x3b71, "vfio-container")).toBe("VFIO_IOMMU_MAP_DMA");
    expect(ioctlName(0x3b72, "vfio-container")).toBe("VFIO_IOMMU_UNMAP_DMA");
    expect(ioctlName(0x3b71, "vfio-device")).toBe("VFIO_DEVICE_PCI_HOT_RESET");
    expect(ioctlName(0x3b85, "iommufd")).toBe("IOMMU_IOAS_MAP");
    expect(ioctlName(0x3b67, "eventfd")).toBe("VFIO_GROUP_GET_STATUS");
  });
});

// ---------------------------------------------------------------------------------------------
// Struct layouts: [sizeof, minSize, { field: [offset, size, signed?] }]

type F = readonly [number, 1 | 2 | 4 | 8, "s"?];
type S = readonly [size: number, min: number, fields: Record<string, F>];

const HDR = { "header.id": [0, 2], "header.version": [2, 2], "header.next": [4, 4] } as const;

const VFIO_STRUCTS: Record<string, S> = {
  vfio_info_cap_header: [8, 8, { id: [0, 2], version: [2, 2], next: [4, 4] }],
  vfio_group_status: [8, 8, { argsz: [0, 4], flags: [4, 4] }],
  vfio_device_info: [24, 16, {
    argsz: [0, 4], flags: [4, 4], num_regions: [8, 4], num_irqs: [12, 4], cap_offset: [16, 4], pad: [20, 4],
  }],
  vfio_device_info_cap_pci_atomic_comp: [16, 16, { ...HDR, flags: [8, 4], reserved: [12, 4] }],
  vfio_region_info: [32, 32, {
    argsz: [0, 4], flags: [4, 4], index: [8, 4], cap_offset: [12, 4], size: [16, 8], offset: [24, 8],
  }],
  vfio_region_info_cap_sparse_mmap: [16, 16, { ...HDR, nr_areas: [8, 4], reserved: [12, 4] }],
  vfio_region_sparse_mmap_area: [16, 16, { offset: [0, 8], size: [8, 8] }],
  vfio_region_info_cap_type: [16, 16, { ...HDR, type: [8, 4], subtype: [12, 4] }],
  vfio_irq_info: [16, 16, { argsz: [0, 4], flags: [4, 4], index: [8, 4], count: [12, 4] }],
  vfio_irq_set: [20, 20, { argsz: [0, 4], flags: [4, 4], index: [8, 4], start: [12, 4], count: [16, 4] }],
  vfio_pci_dependent_device: [8, 8, { group_id: [0, 4], devid: [0, 4], segment: [4, 2], bus: [6, 1], devfn: [7, 1] }],
  vfio_pci_hot_reset_info: [12, 12, { argsz: [0, 4], flags: [4, 4], count: [8, 4] }],
  vfio_pci_hot_reset: [12, 12, { argsz: [0, 4], flags: [4, 4], count: [8, 4] }],
  vfio_device_ioeventfd: [32, 28, {
    argsz: [0, 4], flags: [4, 4], offset: [8, 8], data: [16, 8], fd: [24, 4, "s"], reserved: [28, 4],
  }],
  vfio_device_feature: [8, 8, { argsz: [0, 4], flags: [4, 4] }],
  vfio_device_feature_migration: [8, 8, { flags: [0, 8] }],
  vfio_device_feature_mig_state: [8, 8, { device_state: [0, 4], data_fd: [4, 4, "s"] }],
  vfio_device_low_power_entry_with_wakeup: [8, 8, { wakeup_eventfd: [0, 4, "s"], reserved: [4, 4] }],
  vfio_device_feature_dma_logging_control: [24, 24, {
    page_size: [0, 8], num_ranges: [8, 4], __reserved: [12, 4], ranges: [16, 8],
  }],
  vfio_device_feature_dma_logging_range: [16, 16, { iova: [0, 8], length: [8, 8] }],
  vfio_device_feature_dma_logging_report: [32, 32, { iova: [0, 8], length: [8, 8], page_size: [16, 8], bitmap: [24, 8] }],
  vfio_device_feature_mig_data_size: [8, 8, { stop_copy_length: [0, 8] }],
  vfio_device_feature_bus_master: [4, 4, { op: [0, 4] }],
  vfio_device_bind_iommufd: [24, 16, {
    argsz: [0, 4], flags: [4, 4], iommufd: [8, 4, "s"], out_devid: [12, 4], token_uuid_ptr: [16, 8],
  }],
  vfio_device_attach_iommufd_pt: [16, 12, { argsz: [0, 4], flags: [4, 4], pt_id: [8, 4], pasid: [12, 4] }],
  vfio_device_detach_iommufd_pt: [12, 8, { argsz: [0, 4], flags: [4, 4], pasid: [8, 4] }],
  vfio_iommu_type1_info: [24, 16, {
    argsz: [0, 4], flags: [4, 4], iova_pgsizes: [8, 8], cap_offset: [16, 4], pad: [20, 4],
  }],
  vfio_iommu_type1_info_cap_iova_range: [16, 16, { ...HDR, nr_iovas: [8, 4], reserved: [12, 4] }],
  vfio_iova_range: [16, 16, { start: [0, 8], end: [8, 8] }],
  vfio_iommu_type1_info_cap_migration: [32, 32, {
    ...HDR, flags: [8, 4], pgsize_bitmap: [16, 8], max_dirty_bitmap_size: [24, 8],
  }],
  vfio_iommu_type1_info_dma_avail: [12, 12, { ...HDR, avail: [8, 4] }],
  vfio_iommu_type1_dma_map: [32, 32, { argsz: [0, 4], flags: [4, 4], vaddr: [8, 8], iova: [16, 8], size: [24, 8] }],
  vfio_bitmap: [24, 24, { pgsize: [0, 8], size: [8, 8], data: [16, 8] }],
  vfio_iommu_type1_dma_unmap: [24, 24, { argsz: [0, 4], flags: [4, 4], iova: [8, 8], size: [16, 8] }],
  vfio_iommu_type1_dirty_bitmap: [8, 8, { argsz: [0, 4], flags: [4, 4] }],
  vfio_iommu_type1_dirty_bitmap_get: [40, 40, {
    iova: [0, 8], size: [8, 8], "bitmap.pgsize": [16, 8], "bitmap.size": [24, 8], "bitmap.data": [32, 8],
  }],
};

const IOMMUFD_STRUCTS: Record<string, S> = {
  iommu_destroy: [8, 8, { size: [0, 4], id: [4, 4] }],
  iommu_ioas_alloc: [12, 12, { size: [0, 4], flags: [4, 4], out_ioas_id: [8, 4] }],
  iommu_iova_range: [16, 16, { start: [0, 8], last: [8, 8] }],
  iommu_ioas_iova_ranges: [32, 32, {
    size: [0, 4], ioas_id: [4, 4], num_iovas: [8, 4], __reserved: [12, 4], allowed_iovas: [16, 8],
    out_iova_alignment: [24, 8],
  }],
  iommu_ioas_allow_iovas: [24, 24, {
    size: [0, 4], ioas_id: [4, 4], num_iovas: [8, 4], __reserved: [12, 4], allowed_iovas: [16, 8],
  }],
  iommu_ioas_map: [40, 40, {
    size: [0, 4], flags: [4, 4], ioas_id: [8, 4], __reserved: [12, 4], user_va: [16, 8], length: [24, 8], iova: [32, 8],
  }],
  iommu_ioas_map_file: [40, 40, {
    size: [0, 4], flags: [4, 4], ioas_id: [8, 4], fd: [12, 4, "s"], start: [16, 8], length: [24, 8], iova: [32, 8],
  }],
  iommu_ioas_copy: [40, 40, {
    size: [0, 4], flags: [4, 4], dst_ioas_id: [8, 4], src_ioas_id: [12, 4], length: [16, 8], dst_iova: [24, 8],
    src_iova: [32, 8],
  }],
  iommu_ioas_unmap: [24, 24, { size: [0, 4], ioas_id: [4, 4], iova: [8, 8], length: [16, 8] }],
  iommu_option: [24, 24, {
    size: [0, 4], option_id: [4, 4], op: [8, 2], __reserved: [10, 2], object_id: [12, 4], val64: [16, 8],
  }],
  iommu_vfio_ioas: [12, 12, { size: [0, 4], ioas_id: [4, 4], op: [8, 2], __reserved: [10, 2] }],
  iommu_ioas_change_process: [8, 8, { size: [0, 4], __reserved: [4, 4] }],
  iommu_hwpt_alloc: [48, 24, {
    size: [0, 4], flags: [4, 4], dev_id: [8, 4], pt_id: [12, 4], out_hwpt_id: [16, 4], __reserved: [20, 4],
    data_type: [24, 4], data_len: [28, 4], data_uptr: [32, 8], fault_id: [40, 4], __reserved2: [44, 4],
  }],
  iommu_hwpt_vtd_s1: [24, 24, { flags: [0, 8], pgtbl_addr: [8, 8], addr_width: [16, 4], __reserved: [20, 4] }],
  iommu_hwpt_arm_smmuv3: [16, 16, { "ste[0]": [0, 8], "ste[1]": [8, 8] }],
  iommu_hwpt_set_dirty_tracking: [16, 16, { size: [0, 4], flags: [4, 4], hwpt_id: [8, 4], __reserved: [12, 4] }],
  iommu_hwpt_get_dirty_bitmap: [48, 48, {
    size: [0, 4], hwpt_id: [4, 4], flags: [8, 4], __reserved: [12, 4], iova: [16, 8], length: [24, 8],
    page_size: [32, 8], data: [40, 8],
  }],
  iommu_hwpt_vtd_s1_invalidate: [24, 24, { addr: [0, 8], npages: [8, 8], flags: [16, 4], __reserved: [20, 4] }],
  iommu_hwpt_invalidate: [32, 32, {
    size: [0, 4], hwpt_id: [4, 4], data_uptr: [8, 8], data_type: [16, 4], entry_len: [20, 4], entry_num: [24, 4],
    __reserved: [28, 4],
  }],
  iommu_hw_info_vtd: [24, 24, { flags: [0, 4], __reserved: [4, 4], cap_reg: [8, 8], ecap_reg: [16, 8] }],
  iommu_hw_info_arm_smmuv3: [40, 40, {
    flags: [0, 4], __reserved: [4, 4], "idr[0]": [8, 4], "idr[1]": [12, 4], "idr[2]": [16, 4], "idr[3]": [20, 4],
    "idr[4]": [24, 4], "idr[5]": [28, 4], iidr: [32, 4], aidr: [36, 4],
  }],
  iommu_hw_info: [40, 32, {
    size: [0, 4], flags: [4, 4], dev_id: [8, 4], data_len: [12, 4], data_uptr: [16, 8], in_data_type: [24, 4],
    out_data_type: [24, 4], out_max_pasid_log2: [28, 1], "__reserved[0]": [29, 1], "__reserved[1]": [30, 1],
    "__reserved[2]": [31, 1], out_capabilities: [32, 8],
  }],
  iommu_hwpt_pgfault: [40, 40, {
    flags: [0, 4], dev_id: [4, 4], pasid: [8, 4], grpid: [12, 4], perm: [16, 4], __reserved: [20, 4], addr: [24, 8],
    length: [32, 4], cookie: [36, 4],
  }],
  iommu_hwpt_page_response: [8, 8, { cookie: [0, 4], code: [4, 4] }],
  iommu_fault_alloc: [16, 16, { size: [0, 4], flags: [4, 4], out_fault_id: [8, 4], out_fault_fd: [12, 4] }],
  iommu_viommu_alloc: [40, 24, {
    size: [0, 4], flags: [4, 4], type: [8, 4], dev_id: [12, 4], hwpt_id: [16, 4], out_viommu_id: [20, 4],
    data_len: [24, 4], __reserved: [28, 4], data_uptr: [32, 8],
  }],
  iommu_vdevice_alloc: [24, 24, { size: [0, 4], viommu_id: [4, 4], dev_id: [8, 4], out_vdevice_id: [12, 4], virt_id: [16, 8] }],
  iommufd_vevent_header: [8, 8, { flags: [0, 4], sequence: [4, 4] }],
  iommu_veventq_alloc: [32, 28, {
    size: [0, 4], flags: [4, 4], viommu_id: [8, 4], type: [12, 4], veventq_depth: [16, 4], out_veventq_id: [20, 4],
    out_veventq_fd: [24, 4], __reserved: [28, 4],
  }],
  iommu_hw_queue_alloc: [40, 40, {
    size: [0, 4], flags: [4, 4], viommu_id: [8, 4], type: [12, 4], index: [16, 4], out_hw_queue_id: [20, 4],
    nesting_parent_iova: [24, 8], length: [32, 8],
  }],
  iommu_test_hw_info: [8, 8, { flags: [0, 4], test_reg: [4, 4] }],
  iommu_hwpt_selftest: [8, 4, { iotlb: [0, 4], pagetable_type: [4, 4] }],
  iommu_hwpt_invalidate_selftest: [8, 8, { flags: [0, 4], iotlb_id: [4, 4] }],
  iommu_viommu_selftest: [24, 24, { in_data: [0, 4], out_data: [4, 4], out_mmap_offset: [8, 8], out_mmap_length: [16, 8] }],
  iommu_viommu_invalidate_selftest: [12, 12, { flags: [0, 4], vdev_id: [4, 4], cache_id: [8, 4] }],
  iommu_viommu_event_selftest: [4, 4, { virt_id: [0, 4] }],
  iommu_test_cmd: [72, 68, {
    size: [0, 4], op: [4, 4], id: [8, 4], __reserved: [12, 4],
    "add_reserved.start": [16, 8], "add_reserved.length": [24, 8],
    "mock_domain.out_stdev_id": [16, 4], "mock_domain.out_hwpt_id": [20, 4], "mock_domain.out_idev_id": [24, 4],
    "mock_domain_flags.out_stdev_id": [16, 4], "mock_domain_flags.out_hwpt_id": [20, 4],
    "mock_domain_flags.out_idev_id": [24, 4], "mock_domain_flags.dev_flags": [28, 4],
    "mock_domain_replace.pt_id": [16, 4],
    "check_map.iova": [16, 8], "check_map.length": [24, 8], "check_map.uptr": [32, 8],
    "check_refs.length": [16, 8], "check_refs.uptr": [24, 8], "check_refs.refs": [32, 4],
    "create_access.out_access_fd": [16, 4], "create_access.flags": [20, 4],
    "destroy_access_pages.access_pages_id": [16, 4],
    "access_pages.flags": [16, 4], "access_pages.out_access_pages_id": [20, 4], "access_pages.iova": [24, 8],
    "access_pages.length": [32, 8], "access_pages.uptr": [40, 8],
    "access_rw.iova": [16, 8], "access_rw.length": [24, 8], "access_rw.uptr": [32, 8], "access_rw.flags": [40, 4],
    "memory_limit.limit": [16, 4],
    "access_replace_ioas.ioas_id": [16, 4],
    "dirty.flags": [16, 4], "dirty.iova": [24, 8], "dirty.length": [32, 8], "dirty.page_size": [40, 8],
    "dirty.uptr": [48, 8], "dirty.out_nr_dirty": [56, 8],
    "check_iotlb.id": [16, 4], "check_iotlb.iotlb": [20, 4],
    "trigger_iopf.dev_id": [16, 4], "trigger_iopf.pasid": [20, 4], "trigger_iopf.grpid": [24, 4],
    "trigger_iopf.perm": [28, 4], "trigger_iopf.addr": [32, 8],
    "check_dev_cache.id": [16, 4], "check_dev_cache.cache": [20, 4],
    "trigger_vevent.dev_id": [16, 4],
    "pasid_attach.pasid": [16, 4], "pasid_attach.pt_id": [20, 4],
    "pasid_replace.pasid": [16, 4], "pasid_replace.pt_id": [20, 4],
    "pasid_detach.pasid": [16, 4],
    "pasid_check.pasid": [16, 4], "pasid_check.hwpt_id": [20, 4],
    "dmabuf_get.length": [16, 4], "dmabuf_get.open_flags": [20, 4],
    "dmabuf_revoke.dmabuf_fd": [16, 4, "s"], "dmabuf_revoke.revoked": [20, 4],
    "check_dmabuf.dmabuf_fd": [16, 4, "s"], "check_dmabuf.iova": [24, 8], "check_dmabuf.length": [32, 8],
    "check_dmabuf.offset": [40, 8],
    last: [64, 4],
  }],
};

function checkStruct(name: string, [size, min, fields]: S): void {
  const layout = U[name] as StructLayout | undefined;
  expect(layout, `export ${name}`).toBeDefined();
  expect(layout!.name).toBe(name);
  expect(layout!.size, `sizeof ${name}`).toBe(size);
  expect(layout!.minSize, `min size ${name}`).toBe(min);
  expect(Object.keys(layout!.fields).sort()).toEqual(Object.keys(fields).sort());
  for (const [f, [off, sz, s]] of Object.entries(fields)) {
    const got = layout!.fields[f]!;
    expect([got.off, got.size, got.signed ? "s" : undefined], `${name}.${f}`).toEqual([off, sz, s]);
  }
}

describe("VFIO struct layouts", () => {
  it.each(Object.entries(VFIO_STRUCTS))("%s", (name, spec) => checkStruct(name, spec));
});

describe("iommufd struct layouts", () => {
  it.each(Object.entries(IOMMUFD_STRUCTS))("%s", (name, spec) => checkStruct(name, spec));

  // The min_size / sizeof columns of SPEC.md §3.1, per ioctl.
  const IOCTL_STRUCTS: [string, string, number, number][] = [
    ["IOMMU_DESTROY", "iommu_destroy", 8, 8],
    ["IOMMU_IOAS_ALLOC", "iommu_ioas_alloc", 12, 12],
    ["IOMMU_IOAS_ALLOW_IOVAS", "iommu_ioas_allow_iovas", 24, 24],
    ["IOMMU_IOAS_COPY", "iommu_ioas_copy", 40, 40],
    ["IOMMU_IOAS_IOVA_RANGES", "iommu_ioas_iova_ranges", 32, 32],
    ["IOMMU_IOAS_MAP", "iommu_ioas_map", 40, 40],
    ["IOMMU_IOAS_UNMAP", "iommu_ioas_unmap", 24, 24],
    ["IOMMU_OPTION", "iommu_option", 24, 24],
    ["IOMMU_VFIO_IOAS", "iommu_vfio_ioas", 12, 12],
    ["IOMMU_HWPT_ALLOC", "iommu_hwpt_alloc", 24, 48],
    ["IOMMU_GET_HW_INFO", "iommu_hw_info", 32, 40],
    ["IOMMU_HWPT_SET_DIRTY_TRACKING", "iommu_hwpt_set_dirty_tracking", 16, 16],
    ["IOMMU_HWPT_GET_DIRTY_BITMAP", "iommu_hwpt_get_dirty_bitmap", 48, 48],
    ["IOMMU_HWPT_INVALIDATE", "iommu_hwpt_invalidate", 32, 32],
    ["IOMMU_FAULT_QUEUE_ALLOC", "iommu_fault_alloc", 16, 16],
    ["IOMMU_IOAS_MAP_FILE", "iommu_ioas_map_file", 40, 40],
    ["IOMMU_VIOMMU_ALLOC", "iommu_viommu_alloc", 24, 40],
    ["IOMMU_VDEVICE_ALLOC", "iommu_vdevice_alloc", 24, 24],
    ["IOMMU_IOAS_CHANGE_PROCESS", "iommu_ioas_change_process", 8, 8],
    ["IOMMU_VEVENTQ_ALLOC", "iommu_veventq_alloc", 28, 32],
    ["IOMMU_HW_QUEUE_ALLOC", "iommu_hw_queue_alloc", 40, 40],
    ["IOMMU_TEST_CMD", "iommu_test_cmd", 68, 72],
  ];
  it.each(IOCTL_STRUCTS)("%s: %s min %i sizeof %i", (_ioctl, name, min, size) => {
    const l = U[name] as StructLayout;
    expect([l.minSize, l.size]).toEqual([min, size]);
  });
});

// ---------------------------------------------------------------------------------------------
// Flags and constants

const VFIO_CONSTS: [string, number][] = [
  ["VFIO_TYPE1_IOMMU", 1], ["VFIO_SPAPR_TCE_IOMMU", 2], ["VFIO_TYPE1v2_IOMMU", 3], ["VFIO_DMA_CC_IOMMU", 4],
  ["VFIO_EEH", 5], ["VFIO_TYPE1_NESTING_IOMMU", 6], ["__VFIO_RESERVED_TYPE1_NESTING_IOMMU", 6],
  ["VFIO_SPAPR_TCE_v2_IOMMU", 7], ["VFIO_NOIOMMU_IOMMU", 8], ["VFIO_UNMAP_ALL", 9], ["VFIO_UPDATE_VADDR", 10],
  ["VFIO_GROUP_FLAGS_VIABLE", 0x1], ["VFIO_GROUP_FLAGS_CONTAINER_SET", 0x2],
  ["VFIO_DEVICE_FLAGS_RESET", 0x1], ["VFIO_DEVICE_FLAGS_PCI", 0x2], ["VFIO_DEVICE_FLAGS_PLATFORM", 0x4],
  ["VFIO_DEVICE_FLAGS_AMBA", 0x8], ["VFIO_DEVICE_FLAGS_CCW", 0x10], ["VFIO_DEVICE_FLAGS_AP", 0x20],
  ["VFIO_DEVICE_FLAGS_FSL_MC", 0x40], ["VFIO_DEVICE_FLAGS_CAPS", 0x80], ["VFIO_DEVICE_FLAGS_CDX", 0x100],
  ["VFIO_DEVICE_INFO_CAP_ZPCI_BASE", 1], ["VFIO_DEVICE_INFO_CAP_ZPCI_GROUP", 2],
  ["VFIO_DEVICE_INFO_CAP_ZPCI_UTIL", 3], ["VFIO_DEVICE_INFO_CAP_ZPCI_PFIP", 4],
  ["VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP", 5],
  ["VFIO_PCI_ATOMIC_COMP32", 1], ["VFIO_PCI_ATOMIC_COMP64", 2], ["VFIO_PCI_ATOMIC_COMP128", 4],
  ["VFIO_REGION_INFO_FLAG_READ", 0x1], ["VFIO_REGION_INFO_FLAG_WRITE", 0x2], ["VFIO_REGION_INFO_FLAG_MMAP", 0x4],
  ["VFIO_REGION_INFO_FLAG_CAPS", 0x8],
  ["VFIO_REGION_INFO_CAP_SPARSE_MMAP", 1], ["VFIO_REGION_INFO_CAP_TYPE", 2],
  ["VFIO_REGION_INFO_CAP_MSIX_MAPPABLE", 3], ["VFIO_REGION_INFO_CAP_NVLINK2_SSATGT", 4],
  ["VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD", 5],
  ["VFIO_REGION_TYPE_PCI_VENDOR_TYPE", 0x80000000], ["VFIO_REGION_TYPE_PCI_VENDOR_MASK", 0xffff],
  ["VFIO_REGION_TYPE_GFX", 1], ["VFIO_REGION_TYPE_CCW", 2], ["VFIO_REGION_TYPE_MIGRATION_DEPRECATED", 3],
  ["VFIO_IRQ_INFO_EVENTFD", 0x1], ["VFIO_IRQ_INFO_MASKABLE", 0x2], ["VFIO_IRQ_INFO_AUTOMASKED", 0x4],
  ["VFIO_IRQ_INFO_NORESIZE", 0x8],
  ["VFIO_IRQ_SET_DATA_NONE", 0x1], ["VFIO_IRQ_SET_DATA_BOOL", 0x2], ["VFIO_IRQ_SET_DATA_EVENTFD", 0x4],
  ["VFIO_IRQ_SET_ACTION_MASK", 0x8], ["VFIO_IRQ_SET_ACTION_UNMASK", 0x10], ["VFIO_IRQ_SET_ACTION_TRIGGER", 0x20],
  ["VFIO_IRQ_SET_DATA_TYPE_MASK", 0x7], ["VFIO_IRQ_SET_ACTION_TYPE_MASK", 0x38],
  ["VFIO_PCI_BAR0_REGION_INDEX", 0], ["VFIO_PCI_BAR1_REGION_INDEX", 1], ["VFIO_PCI_BAR2_REGION_INDEX", 2],
  ["VFIO_PCI_BAR3_REGION_INDEX", 3], ["VFIO_PCI_BAR4_REGION_INDEX", 4], ["VFIO_PCI_BAR5_REGION_INDEX", 5],
  ["VFIO_PCI_ROM_REGION_INDEX", 6], ["VFIO_PCI_CONFIG_REGION_INDEX", 7], ["VFIO_PCI_VGA_REGION_INDEX", 8],
  ["VFIO_PCI_NUM_REGIONS", 9],
  ["VFIO_PCI_INTX_IRQ_INDEX", 0], ["VFIO_PCI_MSI_IRQ_INDEX", 1], ["VFIO_PCI_MSIX_IRQ_INDEX", 2],
  ["VFIO_PCI_ERR_IRQ_INDEX", 3], ["VFIO_PCI_REQ_IRQ_INDEX", 4], ["VFIO_PCI_NUM_IRQS", 5],
  ["VFIO_PCI_OFFSET_SHIFT", 40], ["VFIO_REGION_OFFSET_SHIFT", 40], ["VFIO_PCI_OFFSET_MASK", 0xffffffffff],
  ["VFIO_PCI_DEVID_OWNED", 0], ["VFIO_PCI_DEVID_NOT_OWNED", -1],
  ["VFIO_PCI_HOT_RESET_FLAG_DEV_ID", 0x1], ["VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED", 0x2],
  ["VFIO_DEVICE_IOEVENTFD_8", 0x1], ["VFIO_DEVICE_IOEVENTFD_16", 0x2], ["VFIO_DEVICE_IOEVENTFD_32", 0x4],
  ["VFIO_DEVICE_IOEVENTFD_64", 0x8], ["VFIO_DEVICE_IOEVENTFD_SIZE_MASK", 0xf],
  ["VFIO_DEVICE_FEATURE_MASK", 0xffff], ["VFIO_DEVICE_FEATURE_GET", 0x10000], ["VFIO_DEVICE_FEATURE_SET", 0x20000],
  ["VFIO_DEVICE_FEATURE_PROBE", 0x40000],
  ["VFIO_DEVICE_FEATURE_PCI_VF_TOKEN", 0], ["VFIO_DEVICE_FEATURE_MIGRATION", 1],
  ["VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE", 2], ["VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY", 3],
  ["VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP", 4], ["VFIO_DEVICE_FEATURE_LOW_POWER_EXIT", 5],
  ["VFIO_DEVICE_FEATURE_DMA_LOGGING_START", 6], ["VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP", 7],
  ["VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT", 8], ["VFIO_DEVICE_FEATURE_MIG_DATA_SIZE", 9],
  ["VFIO_DEVICE_FEATURE_BUS_MASTER", 10], ["VFIO_DEVICE_FEATURE_DMA_BUF", 11],
  ["VFIO_MIGRATION_STOP_COPY", 1], ["VFIO_MIGRATION_P2P", 2], ["VFIO_MIGRATION_PRE_COPY", 4],
  ["VFIO_DEVICE_STATE_ERROR", 0], ["VFIO_DEVICE_STATE_STOP", 1], ["VFIO_DEVICE_STATE_RUNNING", 2],
  ["VFIO_DEVICE_STATE_STOP_COPY", 3], ["VFIO_DEVICE_STATE_RESUMING", 4], ["VFIO_DEVICE_STATE_RUNNING_P2P", 5],
  ["VFIO_DEVICE_STATE_PRE_COPY", 6], ["VFIO_DEVICE_STATE_PRE_COPY_P2P", 7],
  ["VFIO_DEVICE_FEATURE_CLEAR_MASTER", 0], ["VFIO_DEVICE_FEATURE_SET_MASTER", 1],
  ["VFIO_DEVICE_BIND_FLAG_TOKEN", 0x1], ["VFIO_DEVICE_ATTACH_PASID", 0x1], ["VFIO_DEVICE_DETACH_PASID", 0x1],
  ["VFIO_IOMMU_INFO_PGSIZES", 0x1], ["VFIO_IOMMU_INFO_CAPS", 0x2],
  ["VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE", 1], ["VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION", 2],
  ["VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL", 3], ["VFIO_IOMMU_TYPE1_INFO_CAP_DMA_AVAIL", 3],
  ["VFIO_DMA_MAP_FLAG_READ", 0x1], ["VFIO_DMA_MAP_FLAG_WRITE", 0x2], ["VFIO_DMA_MAP_FLAG_VADDR", 0x4],
  ["VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP", 0x1], ["VFIO_DMA_UNMAP_FLAG_ALL", 0x2], ["VFIO_DMA_UNMAP_FLAG_VADDR", 0x4],
  ["VFIO_IOMMU_DIRTY_PAGES_FLAG_START", 0x1], ["VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP", 0x2],
  ["VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP", 0x4],
];

const IOMMUFD_CONSTS: [string, number][] = [
  ["IOMMU_IOAS_MAP_FIXED_IOVA", 0x1], ["IOMMU_IOAS_MAP_WRITEABLE", 0x2], ["IOMMU_IOAS_MAP_READABLE", 0x4],
  ["IOMMU_OPTION_RLIMIT_MODE", 0], ["IOMMU_OPTION_HUGE_PAGES", 1], ["IOMMU_OPTION_OP_SET", 0],
  ["IOMMU_OPTION_OP_GET", 1],
  ["IOMMU_VFIO_IOAS_GET", 0], ["IOMMU_VFIO_IOAS_SET", 1], ["IOMMU_VFIO_IOAS_CLEAR", 2],
  ["IOMMU_HWPT_ALLOC_NEST_PARENT", 0x1], ["IOMMU_HWPT_ALLOC_DIRTY_TRACKING", 0x2],
  ["IOMMU_HWPT_FAULT_ID_VALID", 0x4], ["IOMMU_HWPT_ALLOC_FAULT_ID_VALID", 0x4], ["IOMMU_HWPT_ALLOC_PASID", 0x8],
  ["IOMMU_HWPT_DATA_NONE", 0], ["IOMMU_HWPT_DATA_VTD_S1", 1], ["IOMMU_HWPT_DATA_ARM_SMMUV3", 2],
  ["IOMMU_VTD_S1_SRE", 0x1], ["IOMMU_VTD_S1_EAFE", 0x2], ["IOMMU_VTD_S1_WPE", 0x4],
  ["IOMMU_HWPT_DIRTY_TRACKING_ENABLE", 1], ["IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR", 1],
  ["IOMMU_HWPT_INVALIDATE_DATA_VTD_S1", 0], ["IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3", 1],
  ["IOMMU_VTD_INV_FLAGS_LEAF", 1],
  ["IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17", 1],
  ["IOMMU_HW_INFO_TYPE_NONE", 0], ["IOMMU_HW_INFO_TYPE_DEFAULT", 0], ["IOMMU_HW_INFO_TYPE_INTEL_VTD", 1],
  ["IOMMU_HW_INFO_TYPE_ARM_SMMUV3", 2], ["IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV", 3],
  ["IOMMU_HW_CAP_DIRTY_TRACKING", 0x1], ["IOMMU_HW_CAP_PCI_PASID_EXEC", 0x2], ["IOMMU_HW_CAP_PCI_PASID_PRIV", 0x4],
  ["IOMMU_HW_INFO_FLAG_INPUT_TYPE", 0x1],
  ["IOMMU_PGFAULT_FLAGS_PASID_VALID", 0x1], ["IOMMU_PGFAULT_FLAGS_LAST_PAGE", 0x2],
  ["IOMMU_PGFAULT_PERM_READ", 0x1], ["IOMMU_PGFAULT_PERM_WRITE", 0x2], ["IOMMU_PGFAULT_PERM_EXEC", 0x4],
  ["IOMMU_PGFAULT_PERM_PRIV", 0x8],
  ["IOMMUFD_PAGE_RESP_SUCCESS", 0], ["IOMMUFD_PAGE_RESP_INVALID", 1],
  ["IOMMU_VIOMMU_TYPE_DEFAULT", 0], ["IOMMU_VIOMMU_TYPE_ARM_SMMUV3", 1], ["IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV", 2],
  ["IOMMU_VEVENTQ_FLAG_LOST_EVENTS", 1],
  ["IOMMU_VEVENTQ_TYPE_DEFAULT", 0], ["IOMMU_VEVENTQ_TYPE_ARM_SMMUV3", 1], ["IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV", 2],
  ["IOMMU_HW_QUEUE_TYPE_DEFAULT", 0], ["IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV", 1],
  // iommufd_test.h
  ["IOMMU_TEST_OP_ADD_RESERVED", 1], ["IOMMU_TEST_OP_MOCK_DOMAIN", 2], ["IOMMU_TEST_OP_MD_CHECK_MAP", 3],
  ["IOMMU_TEST_OP_MD_CHECK_REFS", 4], ["IOMMU_TEST_OP_CREATE_ACCESS", 5], ["IOMMU_TEST_OP_DESTROY_ACCESS_PAGES", 6],
  ["IOMMU_TEST_OP_ACCESS_PAGES", 7], ["IOMMU_TEST_OP_ACCESS_RW", 8], ["IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT", 9],
  ["IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE", 10], ["IOMMU_TEST_OP_ACCESS_REPLACE_IOAS", 11],
  ["IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS", 12], ["IOMMU_TEST_OP_DIRTY", 13], ["IOMMU_TEST_OP_MD_CHECK_IOTLB", 14],
  ["IOMMU_TEST_OP_TRIGGER_IOPF", 15], ["IOMMU_TEST_OP_DEV_CHECK_CACHE", 16], ["IOMMU_TEST_OP_TRIGGER_VEVENT", 17],
  ["IOMMU_TEST_OP_PASID_ATTACH", 18], ["IOMMU_TEST_OP_PASID_REPLACE", 19], ["IOMMU_TEST_OP_PASID_DETACH", 20],
  ["IOMMU_TEST_OP_PASID_CHECK_HWPT", 21], ["IOMMU_TEST_OP_DMABUF_GET", 22], ["IOMMU_TEST_OP_DMABUF_REVOKE", 23],
  ["IOMMU_TEST_OP_MD_CHECK_DMABUF", 24],
  ["MOCK_IOMMUPT_DEFAULT", 0], ["MOCK_IOMMUPT_HUGE", 1],
  ["MOCK_APERTURE_START", 0x1000000], ["MOCK_APERTURE_LAST", 0x7fffffff],
  ["MOCK_PAGE_SIZE", 2048], ["MOCK_HUGE_PAGE_SIZE", 0x100000],
  ["MOCK_FLAGS_ACCESS_WRITE", 0x1], ["MOCK_FLAGS_ACCESS_SYZ", 0x10000],
  ["MOCK_ACCESS_RW_WRITE", 0x1], ["MOCK_ACCESS_RW_SLOW_PATH", 0x4],
  ["MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES", 0x1],
  ["MOCK_FLAGS_DEVICE_NO_DIRTY", 0x1], ["MOCK_FLAGS_DEVICE_HUGE_IOVA", 0x2], ["MOCK_FLAGS_DEVICE_PASID", 0x4],
  ["MOCK_NESTED_DOMAIN_IOTLB_ID_MAX", 3], ["MOCK_NESTED_DOMAIN_IOTLB_NUM", 4],
  ["MOCK_DEV_CACHE_ID_MAX", 3], ["MOCK_DEV_CACHE_NUM", 4],
  ["IOMMU_TEST_PASID_RESERVED", 1024], ["MOCK_PASID_WIDTH", 20],
  ["IOMMU_HW_INFO_TYPE_SELFTEST", 0xfeedbeef], ["IOMMU_HW_INFO_SELFTEST_REGVAL", 0xdeadbeef],
  ["IOMMU_HWPT_DATA_SELFTEST", 0xdead], ["IOMMU_TEST_IOTLB_DEFAULT", 0xbadbeef],
  ["IOMMU_TEST_DEV_CACHE_DEFAULT", 0xbaddad],
  ["IOMMU_HWPT_INVALIDATE_DATA_SELFTEST", 0xdeadbeef], ["IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID", 0xdadbeef],
  ["IOMMU_TEST_INVALIDATE_FLAG_ALL", 0x1],
  ["IOMMU_VIOMMU_TYPE_SELFTEST", 0xdeadbeef], ["IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST", 0xdeadbeef],
  ["IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID", 0xdadbeef],
  ["IOMMU_VEVENTQ_TYPE_SELFTEST", 0xbeefbeef], ["IOMMU_HW_QUEUE_TYPE_SELFTEST", 0xdeadbeef],
  ["IOMMU_TEST_HW_QUEUE_MAX", 2],
];

const POSIX_CONSTS: [string, number][] = [
  ["O_RDONLY", 0], ["O_WRONLY", 1], ["O_RDWR", 2], ["O_ACCMODE", 3],
  ["O_CREAT", 0o100], ["O_EXCL", 0o200], ["O_NOCTTY", 0o400], ["O_TRUNC", 0o1000], ["O_APPEND", 0o2000],
  ["O_NONBLOCK", 0o4000], ["O_DSYNC", 0o10000], ["O_DIRECT", 0o40000], ["O_DIRECTORY", 0o200000],
  ["O_NOFOLLOW", 0o400000], ["O_NOATIME", 0o1000000], ["O_CLOEXEC", 0o2000000], ["O_PATH", 0o10000000],
  ["PROT_NONE", 0], ["PROT_READ", 1], ["PROT_WRITE", 2], ["PROT_EXEC", 4],
  ["MAP_SHARED", 1], ["MAP_PRIVATE", 2], ["MAP_SHARED_VALIDATE", 3], ["MAP_TYPE", 0xf], ["MAP_FIXED", 0x10],
  ["MAP_ANONYMOUS", 0x20], ["MAP_32BIT", 0x40], ["MAP_GROWSDOWN", 0x100], ["MAP_DENYWRITE", 0x800],
  ["MAP_EXECUTABLE", 0x1000], ["MAP_LOCKED", 0x2000], ["MAP_NORESERVE", 0x4000], ["MAP_POPULATE", 0x8000],
  ["MAP_NONBLOCK", 0x10000], ["MAP_STACK", 0x20000], ["MAP_HUGETLB", 0x40000], ["MAP_SYNC", 0x80000],
  ["MAP_FIXED_NOREPLACE", 0x100000], ["MAP_HUGE_SHIFT", 26], ["MAP_HUGE_MASK", 0x3f],
  ["MAP_HUGE_2MB", 0x54000000], ["MAP_HUGE_1GB", 0x78000000],
  ["EFD_SEMAPHORE", 1], ["EFD_CLOEXEC", 0o2000000], ["EFD_NONBLOCK", 0o4000],
  ["MFD_CLOEXEC", 1], ["MFD_ALLOW_SEALING", 2], ["MFD_HUGETLB", 4], ["MFD_HUGE_SHIFT", 26],
  ["MFD_HUGE_2MB", 0x54000000], ["MFD_HUGE_1GB", 0x78000000],
  ["F_DUPFD", 0], ["F_GETFD", 1], ["F_SETFD", 2], ["F_GETFL", 3], ["F_SETFL", 4], ["F_DUPFD_CLOEXEC", 1030],
  ["F_ADD_SEALS", 1033], ["F_GET_SEALS", 1034], ["F_SEAL_SEAL", 1], ["F_SEAL_SHRINK", 2], ["F_SEAL_GROW", 4],
  ["F_SEAL_WRITE", 8], ["F_SEAL_FUTURE_WRITE", 0x10], ["FD_CLOEXEC", 1],
  ["POLLIN", 1], ["POLLPRI", 2], ["POLLOUT", 4], ["POLLERR", 8], ["POLLHUP", 0x10], ["POLLNVAL", 0x20],
  ["POLLRDNORM", 0x40], ["POLLRDBAND", 0x80], ["POLLWRNORM", 0x100], ["POLLWRBAND", 0x200],
  ["S_IFMT", 0o170000], ["S_IFSOCK", 0o140000], ["S_IFLNK", 0o120000], ["S_IFREG", 0o100000],
  ["S_IFBLK", 0o060000], ["S_IFDIR", 0o040000], ["S_IFCHR", 0o020000], ["S_IFIFO", 0o010000],
];

describe("constants", () => {
  it.each(VFIO_CONSTS)("vfio %s = %i", (name, v) => expect(U[name]).toBe(v));
  it.each(IOMMUFD_CONSTS)("iommufd %s = %i", (name, v) => expect(U[name]).toBe(v));
  it.each(POSIX_CONSTS)("posix %s = %i", (name, v) => expect(U[name]).toBe(v));

  it("errno and struct helpers are re-exported", () => {
    expect(uapi.errno.EINVAL).toBe(22);
    expect(uapi.errnoName(-25)).toBe("ENOTTY");
    expect(uapi.ENOIOCTLCMD).toBe(515);
    expect(typeof uapi.defineStruct).toBe("function");
  });

  it("vfio-pci region offsets", () => {
    expect(VFIO_PCI_INDEX_TO_OFFSET(7)).toBe(0x70000000000n);
    expect(VFIO_PCI_INDEX_TO_OFFSET(0)).toBe(0n);
    expect(VFIO_PCI_OFFSET_TO_INDEX(0x70000000004n)).toBe(7);
    expect(VFIO_PCI_OFFSET_TO_INDEX(0x10000000000)).toBe(1);
    expect(VFIO_PCI_OFFSET_TO_INDEX(0xffffffffff)).toBe(0);
  });

  it("S_IS* helpers", () => {
    expect(uapi.S_ISCHR(0o020660)).toBe(true);
    expect(uapi.S_ISDIR(0o040755)).toBe(true);
    expect(uapi.S_ISREG(0o100644)).toBe(true);
    expect(uapi.S_ISLNK(0o120777)).toBe(true);
    expect(uapi.S_ISCHR(0o100644)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// dev_t (glibc encoding)

describe("makedev / major / minor", () => {
  const CASES: [number, number, number][] = [
    [511, 0, 0x1ff00],
    [10, 196, 0xac4],
    [511, 300, 0x11ff2c],
    [1, 3, 0x103],
    [0, 0, 0],
    [4095, 0xfffff, 0xffffffff],
    [4096, 0, 0x100000000000],
    [0, 0x100000, 0x100000000],
  ];
  it.each(CASES)("makedev(%i, %i) = %i", (ma, mi, dev) => {
    expect(makedev(ma, mi)).toBe(dev);
    expect(major(dev)).toBe(ma);
    expect(minor(dev)).toBe(mi);
  });
});
