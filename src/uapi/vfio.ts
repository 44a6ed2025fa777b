// VFIO uapi: struct layouts and constants of include/uapi/linux/vfio.h (x86_64), by kernel name.
//
// Layouts are byte-exact. `minSize` is the minsz the kernel handler uses (offsetofend of the last
// mandatory field); where the kernel has no handler minsz it is the end of the last field.
// Flexible array members (`data[]`, `areas[]`, `devices[]`, ...) are not fields: they start at
// `.size`, which for every struct here equals the array's offset.
// Nested structs and union members are flattened with their C access path as the field name
// ("header.id"); anonymous-union members share an offset under their own names.

import { defineStruct } from "./struct.js";

// ---------------------------------------------------------------------------------------------
// Extensions (VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU values)

export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_SPAPR_TCE_IOMMU = 2;
export const VFIO_TYPE1v2_IOMMU = 3;
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_EEH = 5;
/** Renamed __VFIO_RESERVED_TYPE1_NESTING_IOMMU in current headers (nesting was never merged). */
export const VFIO_TYPE1_NESTING_IOMMU = 6;
export const __VFIO_RESERVED_TYPE1_NESTING_IOMMU = 6;
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
export const VFIO_NOIOMMU_IOMMU = 8;
export const VFIO_UNMAP_ALL = 9;
export const VFIO_UPDATE_VADDR = 10;

// ---------------------------------------------------------------------------------------------
// Capability chains

export const vfio_info_cap_header = defineStruct("vfio_info_cap_header", 8, {
  id: [0, 2],
  version: [2, 2],
  next: [4, 4],
});

// ---------------------------------------------------------------------------------------------
// Group fd

export const vfio_group_status = defineStruct("vfio_group_status", 8, {
  argsz: [0, 4],
  flags: [4, 4],
});
export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

// ---------------------------------------------------------------------------------------------
// Device fd: info, regions, irqs

/** minsz 16 (vfio-pci: offsetofend num_irqs); cap_offset/pad are output-only. */
export const vfio_device_info = defineStruct("vfio_device_info", 24, {
  argsz: [0, 4],
  flags: [4, 4],
  num_regions: [8, 4],
  num_irqs: [12, 4],
  cap_offset: [16, 4],
  pad: [20, 4],
}, "num_irqs");
export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
export const VFIO_DEVICE_FLAGS_PLATFORM = 1 << 2;
export const VFIO_DEVICE_FLAGS_AMBA = 1 << 3;
export const VFIO_DEVICE_FLAGS_CCW = 1 << 4;
export const VFIO_DEVICE_FLAGS_AP = 1 << 5;
export const VFIO_DEVICE_FLAGS_FSL_MC = 1 << 6;
export const VFIO_DEVICE_FLAGS_CAPS = 1 << 7;
export const VFIO_DEVICE_FLAGS_CDX = 1 << 8;

export const VFIO_DEVICE_API_PCI_STRING = "vfio-pci";

// device-info capability ids
export const VFIO_DEVICE_INFO_CAP_ZPCI_BASE = 1;
export const VFIO_DEVICE_INFO_CAP_ZPCI_GROUP = 2;
export const VFIO_DEVICE_INFO_CAP_ZPCI_UTIL = 3;
export const VFIO_DEVICE_INFO_CAP_ZPCI_PFIP = 4;
export const VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP = 5;

export const vfio_device_info_cap_pci_atomic_comp = defineStruct("vfio_device_info_cap_pci_atomic_comp", 16, {
  "header.id": [0, 2],
  "header.version": [2, 2],
  "header.next": [4, 4],
  flags: [8, 4],
  reserved: [12, 4],
});
export const VFIO_PCI_ATOMIC_COMP32 = 1 << 0;
export const VFIO_PCI_ATOMIC_COMP64 = 1 << 1;
export const VFIO_PCI_ATOMIC_COMP128 = 1 << 2;

/** minsz 32 (vfio-pci: offsetofend offset). */
export const vfio_region_info = defineStruct("vfio_region_info", 32, {
  argsz: [0, 4],
  flags: [4, 4],
  index: [8, 4],
  cap_offset: [12, 4],
  size: [16, 8],
  offset: [24, 8],
});
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;

// region-info capability ids
export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
export const VFIO_REGION_INFO_CAP_TYPE = 2;
export const VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;
export const VFIO_REGION_INFO_CAP_NVLINK2_SSATGT = 4;
export const VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD = 5;

/** Followed by nr_areas × vfio_region_sparse_mmap_area at offset 16. */
export const vfio_region_info_cap_sparse_mmap = defineStruct("vfio_region_info_cap_sparse_mmap", 16, {
  "header.id": [0, 2],
  "header.version": [2, 2],
  "header.next": [4, 4],
  nr_areas: [8, 4],
  reserved: [12, 4],
});
export const vfio_region_sparse_mmap_area = defineStruct("vfio_region_sparse_mmap_area", 16, {
  offset: [0, 8],
  size: [8, 8],
});

export const vfio_region_info_cap_type = defineStruct("vfio_region_info_cap_type", 16, {
  "header.id": [0, 2],
  "header.version": [2, 2],
  "header.next": [4, 4],
  type: [8, 4],
  subtype: [12, 4],
});
export const VFIO_REGION_TYPE_PCI_VENDOR_TYPE = 0x80000000; // 1 << 31, unsigned
export const VFIO_REGION_TYPE_PCI_VENDOR_MASK = 0xffff;
export const VFIO_REGION_TYPE_GFX = 1;
export const VFIO_REGION_TYPE_CCW = 2;
export const VFIO_REGION_TYPE_MIGRATION_DEPRECATED = 3;

export const vfio_irq_info = defineStruct("vfio_irq_info", 16, {
  argsz: [0, 4],
  flags: [4, 4],
  index: [8, 4],
  count: [12, 4],
});
export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
export const VFIO_IRQ_INFO_MASKABLE = 1 << 1;
export const VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;

/** minsz 20; data[] (u8 bools or s32 eventfds) follows at offset 20. */
export const vfio_irq_set = defineStruct("vfio_irq_set", 20, {
  argsz: [0, 4],
  flags: [4, 4],
  index: [8, 4],
  start: [12, 4],
  count: [16, 4],
});
export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
export const VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;
export const VFIO_IRQ_SET_DATA_TYPE_MASK =
  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD;
export const VFIO_IRQ_SET_ACTION_TYPE_MASK =
  VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER;

// vfio-pci fixed region indexes
export const VFIO_PCI_BAR0_REGION_INDEX = 0;
export const VFIO_PCI_BAR1_REGION_INDEX = 1;
export const VFIO_PCI_BAR2_REGION_INDEX = 2;
export const VFIO_PCI_BAR3_REGION_INDEX = 3;
export const VFIO_PCI_BAR4_REGION_INDEX = 4;
export const VFIO_PCI_BAR5_REGION_INDEX = 5;
export const VFIO_PCI_ROM_REGION_INDEX = 6;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
export const VFIO_PCI_VGA_REGION_INDEX = 8;
export const VFIO_PCI_NUM_REGIONS = 9;

// vfio-pci irq indexes
export const VFIO_PCI_INTX_IRQ_INDEX = 0;
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;
export const VFIO_PCI_ERR_IRQ_INDEX = 3;
export const VFIO_PCI_REQ_IRQ_INDEX = 4;
export const VFIO_PCI_NUM_IRQS = 5;

// vfio-pci device-fd offsets (drivers/vfio/pci/vfio_pci_priv.h): region index in bits 40..63.
export const VFIO_PCI_OFFSET_SHIFT = 40;
/** The same shift under a driver-neutral name. */
export const VFIO_REGION_OFFSET_SHIFT = VFIO_PCI_OFFSET_SHIFT;
export const VFIO_PCI_OFFSET_MASK = 0xffffffffff; // (1 << 40) - 1
/** Region index of a device-fd offset. */
export function VFIO_PCI_OFFSET_TO_INDEX(off: number | bigint): number {
  return Number(BigInt.asUintN(64, BigInt(off)) >> 40n);
}
/** Device-fd offset of the start of a region. */
export function VFIO_PCI_INDEX_TO_OFFSET(index: number): bigint {
  return BigInt.asUintN(64, BigInt(index) << 40n);
}

// ---------------------------------------------------------------------------------------------
// Hot reset

/** Anonymous union: group_id (group files) / devid (cdev files) share offset 0. */
export const vfio_pci_dependent_device = defineStruct("vfio_pci_dependent_device", 8, {
  group_id: [0, 4],
  devid: [0, 4],
  segment: [4, 2],
  bus: [6, 1],
  devfn: [7, 1],
});
export const VFIO_PCI_DEVID_OWNED = 0;
/** -1 as the kernel defines it; the u32 devid field reads back as 0xffffffff. */
export const VFIO_PCI_DEVID_NOT_OWNED = -1;

/** minsz 12; devices[] (vfio_pci_dependent_device) follows at offset 12. */
export const vfio_pci_hot_reset_info = defineStruct("vfio_pci_hot_reset_info", 12, {
  argsz: [0, 4],
  flags: [4, 4],
  count: [8, 4],
});
export const VFIO_PCI_HOT_RESET_FLAG_DEV_ID = 1 << 0;
export const VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED = 1 << 1;

/** minsz 12; group_fds[] (s32) follows at offset 12. */
export const vfio_pci_hot_reset = defineStruct("vfio_pci_hot_reset", 12, {
  argsz: [0, 4],
  flags: [4, 4],
  count: [8, 4],
});

// ---------------------------------------------------------------------------------------------
// IOEVENTFD

export const vfio_device_ioeventfd = defineStruct("vfio_device_ioeventfd", 32, {
  argsz: [0, 4],
  flags: [4, 4],
  offset: [8, 8],
  data: [16, 8],
  fd: [24, 4, "s"],
  reserved: [28, 4],
}, "fd");
export const VFIO_DEVICE_IOEVENTFD_8 = 1 << 0;
export const VFIO_DEVICE_IOEVENTFD_16 = 1 << 1;
export const VFIO_DEVICE_IOEVENTFD_32 = 1 << 2;
export const VFIO_DEVICE_IOEVENTFD_64 = 1 << 3;
export const VFIO_DEVICE_IOEVENTFD_SIZE_MASK = 0xf;

// ---------------------------------------------------------------------------------------------
// DEVICE_FEATURE

/** minsz 8; the feature payload data[] follows at offset 8. */
export const vfio_device_feature = defineStruct("vfio_device_feature", 8, {
  argsz: [0, 4],
  flags: [4, 4],
});
export const VFIO_DEVICE_FEATURE_MASK = 0xffff;
export const VFIO_DEVICE_FEATURE_GET = 1 << 16;
export const VFIO_DEVICE_FEATURE_SET = 1 << 17;
export const VFIO_DEVICE_FEATURE_PROBE = 1 << 18;

// feature indexes
export const VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0;
export const VFIO_DEVICE_FEATURE_MIGRATION = 1;
export const VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE = 2;
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY = 3;
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP = 4;
export const VFIO_DEVICE_FEATURE_LOW_POWER_EXIT = 5;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_START = 6;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP = 7;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = 8;
export const VFIO_DEVICE_FEATURE_MIG_DATA_SIZE = 9;
export const VFIO_DEVICE_FEATURE_BUS_MASTER = 10;
export const VFIO_DEVICE_FEATURE_DMA_BUF = 11;

// feature payloads
export const vfio_device_feature_migration = defineStruct("vfio_device_feature_migration", 8, {
  flags: [0, 8],
});
export const VFIO_MIGRATION_STOP_COPY = 1 << 0;
export const VFIO_MIGRATION_P2P = 1 << 1;
export const VFIO_MIGRATION_PRE_COPY = 1 << 2;

export const vfio_device_feature_mig_state = defineStruct("vfio_device_feature_mig_state", 8, {
  device_state: [0, 4],
  data_fd: [4, 4, "s"],
});
export const VFIO_DEVICE_STATE_ERROR = 0;
export const VFIO_DEVICE_STATE_STOP = 1;
export const VFIO_DEVICE_STATE_RUNNING = 2;
export const VFIO_DEVICE_STATE_STOP_COPY = 3;
export const VFIO_DEVICE_STATE_RESUMING = 4;
export const VFIO_DEVICE_STATE_RUNNING_P2P = 5;
export const VFIO_DEVICE_STATE_PRE_COPY = 6;
export const VFIO_DEVICE_STATE_PRE_COPY_P2P = 7;

export const vfio_device_low_power_entry_with_wakeup = defineStruct("vfio_device_low_power_entry_with_wakeup", 8, {
  wakeup_eventfd: [0, 4, "s"],
  reserved: [4, 4],
});

export const vfio_device_feature_dma_logging_control = defineStruct("vfio_device_feature_dma_logging_control", 24, {
  page_size: [0, 8],
  num_ranges: [8, 4],
  __reserved: [12, 4],
  ranges: [16, 8],
});
export const vfio_device_feature_dma_logging_range = defineStruct("vfio_device_feature_dma_logging_range", 16, {
  iova: [0, 8],
  length: [8, 8],
});
export const vfio_device_feature_dma_logging_report = defineStruct("vfio_device_feature_dma_logging_report", 32, {
  iova: [0, 8],
  length: [8, 8],
  page_size: [16, 8],
  bitmap: [24, 8],
});

export const vfio_device_feature_mig_data_size = defineStruct("vfio_device_feature_mig_data_size", 8, {
  stop_copy_length: [0, 8],
});

export const vfio_device_feature_bus_master = defineStruct("vfio_device_feature_bus_master", 4, {
  op: [0, 4],
});
export const VFIO_DEVICE_FEATURE_CLEAR_MASTER = 0;
export const VFIO_DEVICE_FEATURE_SET_MASTER = 1;

// ---------------------------------------------------------------------------------------------
// cdev: BIND / ATTACH / DETACH

/** sizeof 24, minsz 16 (offsetofend out_devid); token_uuid_ptr is read only with FLAG_TOKEN. */
export const vfio_device_bind_iommufd = defineStruct("vfio_device_bind_iommufd", 24, {
  argsz: [0, 4],
  flags: [4, 4],
  iommufd: [8, 4, "s"],
  out_devid: [12, 4],
  token_uuid_ptr: [16, 8],
}, "out_devid");
export const VFIO_DEVICE_BIND_FLAG_TOKEN = 1 << 0;

/** sizeof 16, minsz 12 (offsetofend pt_id); pasid is read only with VFIO_DEVICE_ATTACH_PASID. */
export const vfio_device_attach_iommufd_pt = defineStruct("vfio_device_attach_iommufd_pt", 16, {
  argsz: [0, 4],
  flags: [4, 4],
  pt_id: [8, 4],
  pasid: [12, 4],
}, "pt_id");
export const VFIO_DEVICE_ATTACH_PASID = 1 << 0;

/** sizeof 12, minsz 8 (offsetofend flags); pasid is read only with VFIO_DEVICE_DETACH_PASID. */
export const vfio_device_detach_iommufd_pt = defineStruct("vfio_device_detach_iommufd_pt", 12, {
  argsz: [0, 4],
  flags: [4, 4],
  pasid: [8, 4],
}, "flags");
export const VFIO_DEVICE_DETACH_PASID = 1 << 0;

// ---------------------------------------------------------------------------------------------
// Type1 IOMMU (container fd)

/** minsz 16 (offsetofend iova_pgsizes); the cap chain starts after the struct. */
export const vfio_iommu_type1_info = defineStruct("vfio_iommu_type1_info", 24, {
  argsz: [0, 4],
  flags: [4, 4],
  iova_pgsizes: [8, 8],
  cap_offset: [16, 4],
  pad: [20, 4],
}, "iova_pgsizes");
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;

// type1 info capability ids
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
/** The kernel's name (no _CAP_). */
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;
/** Alias with _CAP_, for symmetry with the other two ids (not a kernel name). */
export const VFIO_IOMMU_TYPE1_INFO_CAP_DMA_AVAIL = VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL;

/** Followed by nr_iovas × vfio_iova_range at offset 16. */
export const vfio_iommu_type1_info_cap_iova_range = defineStruct("vfio_iommu_type1_info_cap_iova_range", 16, {
  "header.id": [0, 2],
  "header.version": [2, 2],
  "header.next": [4, 4],
  nr_iovas: [8, 4],
  reserved: [12, 4],
});
/** Inclusive range: end is the last valid IOVA. */
export const vfio_iova_range = defineStruct("vfio_iova_range", 16, {
  start: [0, 8],
  end: [8, 8],
});

export const vfio_iommu_type1_info_cap_migration = defineStruct("vfio_iommu_type1_info_cap_migration", 32, {
  "header.id": [0, 2],
  "header.version": [2, 2],
  "header.next": [4, 4],
  flags: [8, 4],
  pgsize_bitmap: [16, 8],
  max_dirty_bitmap_size: [24, 8],
});

export const vfio_iommu_type1_info_dma_avail = defineStruct("vfio_iommu_type1_info_dma_avail", 12, {
  "header.id": [0, 2],
  "header.version": [2, 2],
  "header.next": [4, 4],
  avail: [8, 4],
});

export const vfio_iommu_type1_dma_map = defineStruct("vfio_iommu_type1_dma_map", 32, {
  argsz: [0, 4],
  flags: [4, 4],
  vaddr: [8, 8],
  iova: [16, 8],
  size: [24, 8],
});
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;

export const vfio_bitmap = defineStruct("vfio_bitmap", 24, {
  pgsize: [0, 8],
  size: [8, 8],
  data: [16, 8],
});

/** minsz 24; with GET_DIRTY_BITMAP a vfio_bitmap follows in data[] at offset 24. */
export const vfio_iommu_type1_dma_unmap = defineStruct("vfio_iommu_type1_dma_unmap", 24, {
  argsz: [0, 4],
  flags: [4, 4],
  iova: [8, 8],
  size: [16, 8],
});
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;

/** VFIO_IOMMU_DIRTY_PAGES; minsz 8, a vfio_iommu_type1_dirty_bitmap_get follows for GET_BITMAP. */
export const vfio_iommu_type1_dirty_bitmap = defineStruct("vfio_iommu_type1_dirty_bitmap", 8, {
  argsz: [0, 4],
  flags: [4, 4],
});
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1 << 0;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1 << 1;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 1 << 2;

export const vfio_iommu_type1_dirty_bitmap_get = defineStruct("vfio_iommu_type1_dirty_bitmap_get", 40, {
  iova: [0, 8],
  size: [8, 8],
  "bitmap.pgsize": [16, 8],
  "bitmap.size": [24, 8],
  "bitmap.data": [32, 8],
});
