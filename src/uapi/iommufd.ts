// IOMMUFD uapi: struct layouts and constants of include/uapi/linux/iommufd.h (x86_64), plus the
// test-only interface of drivers/iommu/iommufd/iommufd_test.h, by kernel name.
//
// For every ioctl struct, `.size` is the kernel's sizeof (the zero-extension / E2BIG boundary of
// the iommufd "size" model) and `.minSize` the min_size of the kernel's ioctl table
// (offsetofend of the last mandatory field): size < minSize -> EINVAL.
// Nested structs, arrays and union members are flattened with their C access path as the field
// name ("check_map.iova", "__reserved[0]"); anonymous-union members share an offset.

import { defineStruct } from "./struct.js";

// ---------------------------------------------------------------------------------------------
// Object lifetime and IOAS

export const iommu_destroy = defineStruct("iommu_destroy", 8, {
  size: [0, 4],
  id: [4, 4],
}, "id");

export const iommu_ioas_alloc = defineStruct("iommu_ioas_alloc", 12, {
  size: [0, 4],
  flags: [4, 4],
  out_ioas_id: [8, 4],
}, "out_ioas_id");

/** Inclusive range: last is the last IOVA of the range. */
export const iommu_iova_range = defineStruct("iommu_iova_range", 16, {
  start: [0, 8],
  last: [8, 8],
});

export const iommu_ioas_iova_ranges = defineStruct("iommu_ioas_iova_ranges", 32, {
  size: [0, 4],
  ioas_id: [4, 4],
  num_iovas: [8, 4],
  __reserved: [12, 4],
  allowed_iovas: [16, 8],
  out_iova_alignment: [24, 8],
}, "out_iova_alignment");

export const iommu_ioas_allow_iovas = defineStruct("iommu_ioas_allow_iovas", 24, {
  size: [0, 4],
  ioas_id: [4, 4],
  num_iovas: [8, 4],
  __reserved: [12, 4],
  allowed_iovas: [16, 8],
}, "allowed_iovas");

// enum iommufd_ioas_map_flags (MAP, MAP_FILE and COPY)
export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;

export const iommu_ioas_map = defineStruct("iommu_ioas_map", 40, {
  size: [0, 4],
  flags: [4, 4],
  ioas_id: [8, 4],
  __reserved: [12, 4],
  user_va: [16, 8],
  length: [24, 8],
  iova: [32, 8],
}, "iova");

export const iommu_ioas_map_file = defineStruct("iommu_ioas_map_file", 40, {
  size: [0, 4],
  flags: [4, 4],
  ioas_id: [8, 4],
  fd: [12, 4, "s"],
  start: [16, 8],
  length: [24, 8],
  iova: [32, 8],
}, "iova");

export const iommu_ioas_copy = defineStruct("iommu_ioas_copy", 40, {
  size: [0, 4],
  flags: [4, 4],
  dst_ioas_id: [8, 4],
  src_ioas_id: [12, 4],
  length: [16, 8],
  dst_iova: [24, 8],
  src_iova: [32, 8],
}, "src_iova");

export const iommu_ioas_unmap = defineStruct("iommu_ioas_unmap", 24, {
  size: [0, 4],
  ioas_id: [4, 4],
  iova: [8, 8],
  length: [16, 8],
}, "length");

// enum iommufd_option / iommufd_option_ops
export const IOMMU_OPTION_RLIMIT_MODE = 0;
export const IOMMU_OPTION_HUGE_PAGES = 1;
export const IOMMU_OPTION_OP_SET = 0;
export const IOMMU_OPTION_OP_GET = 1;

export const iommu_option = defineStruct("iommu_option", 24, {
  size: [0, 4],
  option_id: [4, 4],
  op: [8, 2],
  __reserved: [10, 2],
  object_id: [12, 4],
  val64: [16, 8],
}, "val64");

// enum iommufd_vfio_ioas_op
export const IOMMU_VFIO_IOAS_GET = 0;
export const IOMMU_VFIO_IOAS_SET = 1;
export const IOMMU_VFIO_IOAS_CLEAR = 2;

export const iommu_vfio_ioas = defineStruct("iommu_vfio_ioas", 12, {
  size: [0, 4],
  ioas_id: [4, 4],
  op: [8, 2],
  __reserved: [10, 2],
}, "__reserved");

export const iommu_ioas_change_process = defineStruct("iommu_ioas_change_process", 8, {
  size: [0, 4],
  __reserved: [4, 4],
}, "__reserved");

// ---------------------------------------------------------------------------------------------
// HW page tables

// enum iommufd_hwpt_alloc_flags
export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0;
export const IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;
/** Kernel name (no _ALLOC_). */
export const IOMMU_HWPT_FAULT_ID_VALID = 1 << 2;
/** Alias of IOMMU_HWPT_FAULT_ID_VALID in the style of its siblings (not a kernel name). */
export const IOMMU_HWPT_ALLOC_FAULT_ID_VALID = IOMMU_HWPT_FAULT_ID_VALID;
export const IOMMU_HWPT_ALLOC_PASID = 1 << 3;

// enum iommu_hwpt_data_type
export const IOMMU_HWPT_DATA_NONE = 0;
export const IOMMU_HWPT_DATA_VTD_S1 = 1;
export const IOMMU_HWPT_DATA_ARM_SMMUV3 = 2;

/** sizeof 48, min_size 24 (offsetofend __reserved). */
export const iommu_hwpt_alloc = defineStruct("iommu_hwpt_alloc", 48, {
  size: [0, 4],
  flags: [4, 4],
  dev_id: [8, 4],
  pt_id: [12, 4],
  out_hwpt_id: [16, 4],
  __reserved: [20, 4],
  data_type: [24, 4],
  data_len: [28, 4],
  data_uptr: [32, 8],
  fault_id: [40, 4],
  __reserved2: [44, 4],
}, "__reserved");

// enum iommu_hwpt_vtd_s1_flags
export const IOMMU_VTD_S1_SRE = 1 << 0;
export const IOMMU_VTD_S1_EAFE = 1 << 1;
export const IOMMU_VTD_S1_WPE = 1 << 2;

/** IOMMU_HWPT_DATA_VTD_S1 payload. */
export const iommu_hwpt_vtd_s1 = defineStruct("iommu_hwpt_vtd_s1", 24, {
  flags: [0, 8],
  pgtbl_addr: [8, 8],
  addr_width: [16, 4],
  __reserved: [20, 4],
});

/** IOMMU_HWPT_DATA_ARM_SMMUV3 payload (two little-endian STE words). */
export const iommu_hwpt_arm_smmuv3 = defineStruct("iommu_hwpt_arm_smmuv3", 16, {
  "ste[0]": [0, 8],
  "ste[1]": [8, 8],
});

export const iommu_hwpt_set_dirty_tracking = defineStruct("iommu_hwpt_set_dirty_tracking", 16, {
  size: [0, 4],
  flags: [4, 4],
  hwpt_id: [8, 4],
  __reserved: [12, 4],
}, "__reserved");
export const IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1;

export const iommu_hwpt_get_dirty_bitmap = defineStruct("iommu_hwpt_get_dirty_bitmap", 48, {
  size: [0, 4],
  hwpt_id: [4, 4],
  flags: [8, 4],
  __reserved: [12, 4],
  iova: [16, 8],
  length: [24, 8],
  page_size: [32, 8],
  data: [40, 8],
}, "data");
export const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1;

// enum iommu_hwpt_invalidate_data_type
export const IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0;
export const IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 = 1;

// enum iommu_hwpt_vtd_s1_invalidate_flags
export const IOMMU_VTD_INV_FLAGS_LEAF = 1 << 0;

export const iommu_hwpt_vtd_s1_invalidate = defineStruct("iommu_hwpt_vtd_s1_invalidate", 24, {
  addr: [0, 8],
  npages: [8, 8],
  flags: [16, 4],
  __reserved: [20, 4],
});

export const iommu_hwpt_invalidate = defineStruct("iommu_hwpt_invalidate", 32, {
  size: [0, 4],
  hwpt_id: [4, 4],
  data_uptr: [8, 8],
  data_type: [16, 4],
  entry_len: [20, 4],
  entry_num: [24, 4],
  __reserved: [28, 4],
}, "__reserved");

// ---------------------------------------------------------------------------------------------
// HW info

// enum iommu_hw_info_vtd_flags
export const IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = 1 << 0;

export const iommu_hw_info_vtd = defineStruct("iommu_hw_info_vtd", 24, {
  flags: [0, 4],
  __reserved: [4, 4],
  cap_reg: [8, 8],
  ecap_reg: [16, 8],
});

export const iommu_hw_info_arm_smmuv3 = defineStruct("iommu_hw_info_arm_smmuv3", 40, {
  flags: [0, 4],
  __reserved: [4, 4],
  "idr[0]": [8, 4],
  "idr[1]": [12, 4],
  "idr[2]": [16, 4],
  "idr[3]": [20, 4],
  "idr[4]": [24, 4],
  "idr[5]": [28, 4],
  iidr: [32, 4],
  aidr: [36, 4],
});

// enum iommu_hw_info_type
export const IOMMU_HW_INFO_TYPE_NONE = 0;
export const IOMMU_HW_INFO_TYPE_DEFAULT = 0;
export const IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;
export const IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2;
export const IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV = 3;

// enum iommufd_hw_capabilities
export const IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0;
export const IOMMU_HW_CAP_PCI_PASID_EXEC = 1 << 1;
export const IOMMU_HW_CAP_PCI_PASID_PRIV = 1 << 2;

// enum iommufd_hw_info_flags
export const IOMMU_HW_INFO_FLAG_INPUT_TYPE = 1 << 0;

/** sizeof 40, min_size 32 (offsetofend __reserved[3]); in/out_data_type share offset 24. */
export const iommu_hw_info = defineStruct("iommu_hw_info", 40, {
  size: [0, 4],
  flags: [4, 4],
  dev_id: [8, 4],
  data_len: [12, 4],
  data_uptr: [16, 8],
  in_data_type: [24, 4],
  out_data_type: [24, 4],
  out_max_pasid_log2: [28, 1],
  "__reserved[0]": [29, 1],
  "__reserved[1]": [30, 1],
  "__reserved[2]": [31, 1],
  out_capabilities: [32, 8],
}, "__reserved[2]");

// ---------------------------------------------------------------------------------------------
// Fault queues

// enum iommu_hwpt_pgfault_flags / iommu_hwpt_pgfault_perm
export const IOMMU_PGFAULT_FLAGS_PASID_VALID = 1 << 0;
export const IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1 << 1;
export const IOMMU_PGFAULT_PERM_READ = 1 << 0;
export const IOMMU_PGFAULT_PERM_WRITE = 1 << 1;
export const IOMMU_PGFAULT_PERM_EXEC = 1 << 2;
export const IOMMU_PGFAULT_PERM_PRIV = 1 << 3;

/** A fault record read from the fault fd. */
export const iommu_hwpt_pgfault = defineStruct("iommu_hwpt_pgfault", 40, {
  flags: [0, 4],
  dev_id: [4, 4],
  pasid: [8, 4],
  grpid: [12, 4],
  perm: [16, 4],
  __reserved: [20, 4],
  addr: [24, 8],
  length: [32, 4],
  cookie: [36, 4],
});

// enum iommufd_page_response_code
export const IOMMUFD_PAGE_RESP_SUCCESS = 0;
export const IOMMUFD_PAGE_RESP_INVALID = 1;

/** A response written to the fault fd. */
export const iommu_hwpt_page_response = defineStruct("iommu_hwpt_page_response", 8, {
  cookie: [0, 4],
  code: [4, 4],
});

export const iommu_fault_alloc = defineStruct("iommu_fault_alloc", 16, {
  size: [0, 4],
  flags: [4, 4],
  out_fault_id: [8, 4],
  out_fault_fd: [12, 4],
}, "out_fault_fd");

// ---------------------------------------------------------------------------------------------
// vIOMMU, vDEVICE, vEVENTQ, HW queues

// enum iommu_viommu_type
export const IOMMU_VIOMMU_TYPE_DEFAULT = 0;
export const IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = 1;
export const IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV = 2;

/** sizeof 40, min_size 24 (offsetofend out_viommu_id). */
export const iommu_viommu_alloc = defineStruct("iommu_viommu_alloc", 40, {
  size: [0, 4],
  flags: [4, 4],
  type: [8, 4],
  dev_id: [12, 4],
  hwpt_id: [16, 4],
  out_viommu_id: [20, 4],
  data_len: [24, 4],
  __reserved: [28, 4],
  data_uptr: [32, 8],
}, "out_viommu_id");

export const iommu_vdevice_alloc = defineStruct("iommu_vdevice_alloc", 24, {
  size: [0, 4],
  viommu_id: [4, 4],
  dev_id: [8, 4],
  out_vdevice_id: [12, 4],
  virt_id: [16, 8],
}, "virt_id");

// enum iommu_veventq_flag
export const IOMMU_VEVENTQ_FLAG_LOST_EVENTS = 1 << 0;

export const iommufd_vevent_header = defineStruct("iommufd_vevent_header", 8, {
  flags: [0, 4],
  sequence: [4, 4],
});

// enum iommu_veventq_type
export const IOMMU_VEVENTQ_TYPE_DEFAULT = 0;
export const IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 = 1;
export const IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV = 2;

/** sizeof 32, min_size 28 (offsetofend out_veventq_fd). */
export const iommu_veventq_alloc = defineStruct("iommu_veventq_alloc", 32, {
  size: [0, 4],
  flags: [4, 4],
  viommu_id: [8, 4],
  type: [12, 4],
  veventq_depth: [16, 4],
  out_veventq_id: [20, 4],
  out_veventq_fd: [24, 4],
  __reserved: [28, 4],
}, "out_veventq_fd");

// enum iommu_hw_queue_type
export const IOMMU_HW_QUEUE_TYPE_DEFAULT = 0;
export const IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV = 1;

/** sizeof 40, min_size 40 (offsetofend length). */
export const iommu_hw_queue_alloc = defineStruct("iommu_hw_queue_alloc", 40, {
  size: [0, 4],
  flags: [4, 4],
  viommu_id: [8, 4],
  type: [12, 4],
  index: [16, 4],
  out_hw_queue_id: [20, 4],
  nesting_parent_iova: [24, 8],
  length: [32, 8],
}, "length");

// ---------------------------------------------------------------------------------------------
// IOMMU_TEST_CMD (drivers/iommu/iommufd/iommufd_test.h; CONFORMANCE.md §4b)

export const IOMMU_TEST_OP_ADD_RESERVED = 1;
export const IOMMU_TEST_OP_MOCK_DOMAIN = 2;
export const IOMMU_TEST_OP_MD_CHECK_MAP = 3;
export const IOMMU_TEST_OP_MD_CHECK_REFS = 4;
export const IOMMU_TEST_OP_CREATE_ACCESS = 5;
export const IOMMU_TEST_OP_DESTROY_ACCESS_PAGES = 6;
export const IOMMU_TEST_OP_ACCESS_PAGES = 7;
export const IOMMU_TEST_OP_ACCESS_RW = 8;
export const IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT = 9;
export const IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE = 10;
export const IOMMU_TEST_OP_ACCESS_REPLACE_IOAS = 11;
export const IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS = 12;
export const IOMMU_TEST_OP_DIRTY = 13;
export const IOMMU_TEST_OP_MD_CHECK_IOTLB = 14;
export const IOMMU_TEST_OP_TRIGGER_IOPF = 15;
export const IOMMU_TEST_OP_DEV_CHECK_CACHE = 16;
export const IOMMU_TEST_OP_TRIGGER_VEVENT = 17;
export const IOMMU_TEST_OP_PASID_ATTACH = 18;
export const IOMMU_TEST_OP_PASID_REPLACE = 19;
export const IOMMU_TEST_OP_PASID_DETACH = 20;
export const IOMMU_TEST_OP_PASID_CHECK_HWPT = 21;
// late 2025 (dma-buf mapping support)
export const IOMMU_TEST_OP_DMABUF_GET = 22;
export const IOMMU_TEST_OP_DMABUF_REVOKE = 23;
export const IOMMU_TEST_OP_MD_CHECK_DMABUF = 24;

// mock page-table formats (iommu_hwpt_selftest.pagetable_type)
export const MOCK_IOMMUPT_DEFAULT = 0;
export const MOCK_IOMMUPT_HUGE = 1;

// true for MOCK_IOMMUPT_DEFAULT
export const MOCK_APERTURE_START = 0x1000000; // 1 << 24
export const MOCK_APERTURE_LAST = 0x7fffffff; // (1 << 31) - 1
/** The mock IO page: PAGE_SIZE / 2 on the 4 KiB x86 host. */
export const MOCK_PAGE_SIZE = 2048;
export const MOCK_HUGE_PAGE_SIZE = 512 * MOCK_PAGE_SIZE;

export const MOCK_FLAGS_ACCESS_WRITE = 1 << 0;
export const MOCK_FLAGS_ACCESS_SYZ = 1 << 16;
export const MOCK_ACCESS_RW_WRITE = 1 << 0;
export const MOCK_ACCESS_RW_SLOW_PATH = 1 << 2;
export const MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES = 1 << 0;
export const MOCK_FLAGS_DEVICE_NO_DIRTY = 1 << 0;
/** Dropped by the iommupt conversion of the mock (huge pages are now per HWPT). */
export const MOCK_FLAGS_DEVICE_HUGE_IOVA = 1 << 1;
export const MOCK_FLAGS_DEVICE_PASID = 1 << 2;
export const MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = 3;
export const MOCK_NESTED_DOMAIN_IOTLB_NUM = 4;
export const MOCK_DEV_CACHE_ID_MAX = 3;
export const MOCK_DEV_CACHE_NUM = 4;
export const IOMMU_TEST_PASID_RESERVED = 1024;
export const MOCK_PASID_WIDTH = 20;

export const IOMMU_HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
export const IOMMU_HW_INFO_SELFTEST_REGVAL = 0xdeadbeef;
export const IOMMU_HWPT_DATA_SELFTEST = 0xdead;
export const IOMMU_TEST_IOTLB_DEFAULT = 0xbadbeef;
export const IOMMU_TEST_DEV_CACHE_DEFAULT = 0xbaddad;
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
export const IOMMU_TEST_INVALIDATE_FLAG_ALL = 1 << 0;
export const IOMMU_VIOMMU_TYPE_SELFTEST = 0xdeadbeef;
export const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
export const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
export const IOMMU_VEVENTQ_TYPE_SELFTEST = 0xbeefbeef;
export const IOMMU_HW_QUEUE_TYPE_SELFTEST = 0xdeadbeef;
export const IOMMU_TEST_HW_QUEUE_MAX = 2;

/** GET_HW_INFO payload of the mock IOMMU (type IOMMU_HW_INFO_TYPE_SELFTEST). */
export const iommu_test_hw_info = defineStruct("iommu_test_hw_info", 8, {
  flags: [0, 4],
  test_reg: [4, 4],
});

/** IOMMU_HWPT_DATA_SELFTEST payload; the kernel requires data through iotlb (min 4). */
export const iommu_hwpt_selftest = defineStruct("iommu_hwpt_selftest", 8, {
  iotlb: [0, 4],
  pagetable_type: [4, 4],
}, "iotlb");

export const iommu_hwpt_invalidate_selftest = defineStruct("iommu_hwpt_invalidate_selftest", 8, {
  flags: [0, 4],
  iotlb_id: [4, 4],
});

export const iommu_viommu_selftest = defineStruct("iommu_viommu_selftest", 24, {
  in_data: [0, 4],
  out_data: [4, 4],
  out_mmap_offset: [8, 8],
  out_mmap_length: [16, 8],
});

export const iommu_viommu_invalidate_selftest = defineStruct("iommu_viommu_invalidate_selftest", 12, {
  flags: [0, 4],
  vdev_id: [4, 4],
  cache_id: [8, 4],
});

export const iommu_viommu_event_selftest = defineStruct("iommu_viommu_event_selftest", 4, {
  virt_id: [0, 4],
});

/**
 * struct iommu_test_cmd: { size, op, id, __reserved, union (48 bytes @16), last @64 }.
 * sizeof 72, min_size 68 (offsetofend last).
 */
export const iommu_test_cmd = defineStruct("iommu_test_cmd", 72, {
  size: [0, 4],
  op: [4, 4],
  id: [8, 4],
  __reserved: [12, 4],
  "add_reserved.start": [16, 8],
  "add_reserved.length": [24, 8],
  "mock_domain.out_stdev_id": [16, 4],
  "mock_domain.out_hwpt_id": [20, 4],
  "mock_domain.out_idev_id": [24, 4],
  "mock_domain_flags.out_stdev_id": [16, 4],
  "mock_domain_flags.out_hwpt_id": [20, 4],
  "mock_domain_flags.out_idev_id": [24, 4],
  "mock_domain_flags.dev_flags": [28, 4],
  "mock_domain_replace.pt_id": [16, 4],
  "check_map.iova": [16, 8],
  "check_map.length": [24, 8],
  "check_map.uptr": [32, 8],
  "check_refs.length": [16, 8],
  "check_refs.uptr": [24, 8],
  "check_refs.refs": [32, 4],
  "create_access.out_access_fd": [16, 4],
  "create_access.flags": [20, 4],
  "destroy_access_pages.access_pages_id": [16, 4],
  "access_pages.flags": [16, 4],
  "access_pages.out_access_pages_id": [20, 4],
  "access_pages.iova": [24, 8],
  "access_pages.length": [32, 8],
  "access_pages.uptr": [40, 8],
  "access_rw.iova": [16, 8],
  "access_rw.length": [24, 8],
  "access_rw.uptr": [32, 8],
  "access_rw.flags": [40, 4],
  "memory_limit.limit": [16, 4],
  "access_replace_ioas.ioas_id": [16, 4],
  "dirty.flags": [16, 4],
  "dirty.iova": [24, 8],
  "dirty.length": [32, 8],
  "dirty.page_size": [40, 8],
  "dirty.uptr": [48, 8],
  "dirty.out_nr_dirty": [56, 8],
  "check_iotlb.id": [16, 4],
  "check_iotlb.iotlb": [20, 4],
  "trigger_iopf.dev_id": [16, 4],
  "trigger_iopf.pasid": [20, 4],
  "trigger_iopf.grpid": [24, 4],
  "trigger_iopf.perm": [28, 4],
  "trigger_iopf.addr": [32, 8],
  "check_dev_cache.id": [16, 4],
  "check_dev_cache.cache": [20, 4],
  "trigger_vevent.dev_id": [16, 4],
  "pasid_attach.pasid": [16, 4],
  "pasid_attach.pt_id": [20, 4],
  "pasid_replace.pasid": [16, 4],
  "pasid_replace.pt_id": [20, 4],
  "pasid_detach.pasid": [16, 4],
  "pasid_check.pasid": [16, 4],
  "pasid_check.hwpt_id": [20, 4],
  "dmabuf_get.length": [16, 4],
  "dmabuf_get.open_flags": [20, 4],
  "dmabuf_revoke.dmabuf_fd": [16, 4, "s"],
  "dmabuf_revoke.revoked": [20, 4],
  "check_dmabuf.dmabuf_fd": [16, 4, "s"],
  "check_dmabuf.iova": [24, 8],
  "check_dmabuf.length": [32, 8],
  "check_dmabuf.offset": [40, 8],
  last: [64, 4],
}, "last");
