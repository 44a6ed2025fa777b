// ioctl numbers of the VFIO and iommufd families (SPEC.md §0.2, §3.1), x86_64 encoding.
//
// Both families use _IO(type, nr): no direction and no size bits, so the value is simply
// (type << 8) | nr with type ';' (0x3b). The kernel learns the argument size from the first u32
// of the argument (`argsz` / `size`), never from the number. VFIO numbers are overloaded: the
// same value means different things on a device fd and on a container fd (see vfioIoctlName).

// ---------------------------------------------------------------------------------------------
// x86_64 _IOC encoding (asm-generic/ioctl.h): nr 8 bits @0, type 8 bits @8, size 14 bits @16,
// dir 2 bits @30.

export const _IOC_NRBITS = 8, _IOC_TYPEBITS = 8, _IOC_SIZEBITS = 14, _IOC_DIRBITS = 2;
export const _IOC_NRSHIFT = 0, _IOC_TYPESHIFT = 8, _IOC_SIZESHIFT = 16, _IOC_DIRSHIFT = 30;
export const _IOC_NONE = 0, _IOC_WRITE = 1, _IOC_READ = 2;

/** The full 32-bit command value (unsigned). */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  return (((dir & 0x3) << _IOC_DIRSHIFT) | ((size & 0x3fff) << _IOC_SIZESHIFT) |
    ((type & 0xff) << _IOC_TYPESHIFT) | ((nr & 0xff) << _IOC_NRSHIFT)) >>> 0;
}
export function _IO(type: number, nr: number): number { return _IOC(_IOC_NONE, type, nr, 0); }
export function _IOR(type: number, nr: number, size: number): number { return _IOC(_IOC_READ, type, nr, size); }
export function _IOW(type: number, nr: number, size: number): number { return _IOC(_IOC_WRITE, type, nr, size); }
export function _IOWR(type: number, nr: number, size: number): number {
  return _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);
}
export function _IOC_NR(cmd: number): number { return (cmd >>> _IOC_NRSHIFT) & 0xff; }
export function _IOC_TYPE(cmd: number): number { return (cmd >>> _IOC_TYPESHIFT) & 0xff; }
export function _IOC_SIZE(cmd: number): number { return (cmd >>> _IOC_SIZESHIFT) & 0x3fff; }
export function _IOC_DIR(cmd: number): number { return (cmd >>> _IOC_DIRSHIFT) & 0x3; }

// ---------------------------------------------------------------------------------------------
// VFIO (include/uapi/linux/vfio.h)

/** ';' */
export const VFIO_TYPE = 0x3b;
export const VFIO_BASE = 100;
export const VFIO_API_VERSION = 0;

// container (/dev/vfio/vfio, or an iommufd fd through its VFIO compat layer)
export const VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0);
export const VFIO_CHECK_EXTENSION = _IO(VFIO_TYPE, VFIO_BASE + 1);
export const VFIO_SET_IOMMU = _IO(VFIO_TYPE, VFIO_BASE + 2);
// group (/dev/vfio/<n>)
export const VFIO_GROUP_GET_STATUS = _IO(VFIO_TYPE, VFIO_BASE + 3);
export const VFIO_GROUP_SET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 4);
export const VFIO_GROUP_UNSET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 5);
export const VFIO_GROUP_GET_DEVICE_FD = _IO(VFIO_TYPE, VFIO_BASE + 6);
// device
export const VFIO_DEVICE_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 7);
export const VFIO_DEVICE_GET_REGION_INFO = _IO(VFIO_TYPE, VFIO_BASE + 8);
export const VFIO_DEVICE_GET_IRQ_INFO = _IO(VFIO_TYPE, VFIO_BASE + 9);
export const VFIO_DEVICE_SET_IRQS = _IO(VFIO_TYPE, VFIO_BASE + 10);
export const VFIO_DEVICE_RESET = _IO(VFIO_TYPE, VFIO_BASE + 11);
// overloaded: device meaning / container meaning
export const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12);
export const VFIO_IOMMU_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12);
export const VFIO_DEVICE_PCI_HOT_RESET = _IO(VFIO_TYPE, VFIO_BASE + 13);
export const VFIO_IOMMU_MAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 13);
export const VFIO_DEVICE_QUERY_GFX_PLANE = _IO(VFIO_TYPE, VFIO_BASE + 14);
export const VFIO_IOMMU_UNMAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 14);
export const VFIO_DEVICE_GET_GFX_DMABUF = _IO(VFIO_TYPE, VFIO_BASE + 15);
export const VFIO_IOMMU_ENABLE = _IO(VFIO_TYPE, VFIO_BASE + 15);
export const VFIO_DEVICE_IOEVENTFD = _IO(VFIO_TYPE, VFIO_BASE + 16);
export const VFIO_IOMMU_DISABLE = _IO(VFIO_TYPE, VFIO_BASE + 16);
export const VFIO_DEVICE_FEATURE = _IO(VFIO_TYPE, VFIO_BASE + 17);
export const VFIO_IOMMU_DIRTY_PAGES = _IO(VFIO_TYPE, VFIO_BASE + 17);
// device, cdev files only
export const VFIO_DEVICE_BIND_IOMMUFD = _IO(VFIO_TYPE, VFIO_BASE + 18);
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 19);
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 20);
// container (SPAPR)
export const VFIO_EEH_PE_OP = _IO(VFIO_TYPE, VFIO_BASE + 21);
/** Same number as VFIO_EEH_PE_OP; issued on a migration data fd, not a device fd. */
export const VFIO_MIG_GET_PRECOPY_INFO = _IO(VFIO_TYPE, VFIO_BASE + 21);

// ---------------------------------------------------------------------------------------------
// IOMMUFD (include/uapi/linux/iommufd.h)

/** ';' */
export const IOMMUFD_TYPE = 0x3b;
export const IOMMUFD_CMD_BASE = 0x80;

export const IOMMU_DESTROY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 0);
export const IOMMU_IOAS_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 1);
export const IOMMU_IOAS_ALLOW_IOVAS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 2);
export const IOMMU_IOAS_COPY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 3);
export const IOMMU_IOAS_IOVA_RANGES = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 4);
export const IOMMU_IOAS_MAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 5);
export const IOMMU_IOAS_UNMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 6);
export const IOMMU_OPTION = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 7);
export const IOMMU_VFIO_IOAS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 8);
export const IOMMU_HWPT_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 9);
export const IOMMU_GET_HW_INFO = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 10);
export const IOMMU_HWPT_SET_DIRTY_TRACKING = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 11);
export const IOMMU_HWPT_GET_DIRTY_BITMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 12);
export const IOMMU_HWPT_INVALIDATE = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 13);
export const IOMMU_FAULT_QUEUE_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 14);
export const IOMMU_IOAS_MAP_FILE = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 15);
export const IOMMU_VIOMMU_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 16);
export const IOMMU_VDEVICE_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 17);
export const IOMMU_IOAS_CHANGE_PROCESS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 18);
export const IOMMU_VEVENTQ_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 19);
export const IOMMU_HW_QUEUE_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 20);
/** Test-only (drivers/iommu/iommufd/iommufd_test.h, CONFIG_IOMMUFD_TEST). */
export const IOMMU_TEST_CMD = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 32);

// ---------------------------------------------------------------------------------------------
// Names, for tracing

export type VfioFdKind = "device" | "container" | "group";

const nameTable = (entries: [string, number][]): ReadonlyMap<number, string> =>
  new Map(entries.map(([name, cmd]) => [cmd, name]));

const VFIO_DEVICE_NAMES = nameTable([
  ["VFIO_DEVICE_GET_INFO", VFIO_DEVICE_GET_INFO],
  ["VFIO_DEVICE_GET_REGION_INFO", VFIO_DEVICE_GET_REGION_INFO],
  ["VFIO_DEVICE_GET_IRQ_INFO", VFIO_DEVICE_GET_IRQ_INFO],
  ["VFIO_DEVICE_SET_IRQS", VFIO_DEVICE_SET_IRQS],
  ["VFIO_DEVICE_RESET", VFIO_DEVICE_RESET],
  ["VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", VFIO_DEVICE_GET_PCI_HOT_RESET_INFO],
  ["VFIO_DEVICE_PCI_HOT_RESET", VFIO_DEVICE_PCI_HOT_RESET],
  ["VFIO_DEVICE_QUERY_GFX_PLANE", VFIO_DEVICE_QUERY_GFX_PLANE],
  ["VFIO_DEVICE_GET_GFX_DMABUF", VFIO_DEVICE_GET_GFX_DMABUF],
  ["VFIO_DEVICE_IOEVENTFD", VFIO_DEVICE_IOEVENTFD],
  ["VFIO_DEVICE_FEATURE", VFIO_DEVICE_FEATURE],
  ["VFIO_DEVICE_BIND_IOMMUFD", VFIO_DEVICE_BIND_IOMMUFD],
  ["VFIO_DEVICE_ATTACH_IOMMUFD_PT", VFIO_DEVICE_ATTACH_IOMMUFD_PT],
  ["VFIO_DEVICE_DETACH_IOMMUFD_PT", VFIO_DEVICE_DETACH_IOMMUFD_PT],
]);

const VFIO_CONTAINER_NAMES = nameTable([
  ["VFIO_GET_API_VERSION", VFIO_GET_API_VERSION],
  ["VFIO_CHECK_EXTENSION", VFIO_CHECK_EXTENSION],
  ["VFIO_SET_IOMMU", VFIO_SET_IOMMU],
  ["VFIO_IOMMU_GET_INFO", VFIO_IOMMU_GET_INFO],
  ["VFIO_IOMMU_MAP_DMA", VFIO_IOMMU_MAP_DMA],
  ["VFIO_IOMMU_UNMAP_DMA", VFIO_IOMMU_UNMAP_DMA],
  ["VFIO_IOMMU_ENABLE", VFIO_IOMMU_ENABLE],
  ["VFIO_IOMMU_DISABLE", VFIO_IOMMU_DISABLE],
  ["VFIO_IOMMU_DIRTY_PAGES", VFIO_IOMMU_DIRTY_PAGES],
  ["VFIO_EEH_PE_OP", VFIO_EEH_PE_OP],
]);

const VFIO_GROUP_NAMES = nameTable([
  ["VFIO_GROUP_GET_STATUS", VFIO_GROUP_GET_STATUS],
  ["VFIO_GROUP_SET_CONTAINER", VFIO_GROUP_SET_CONTAINER],
  ["VFIO_GROUP_UNSET_CONTAINER", VFIO_GROUP_UNSET_CONTAINER],
  ["VFIO_GROUP_GET_DEVICE_FD", VFIO_GROUP_GET_DEVICE_FD],
]);

const IOMMUFD_NAMES = nameTable([
  ["IOMMU_DESTROY", IOMMU_DESTROY],
  ["IOMMU_IOAS_ALLOC", IOMMU_IOAS_ALLOC],
  ["IOMMU_IOAS_ALLOW_IOVAS", IOMMU_IOAS_ALLOW_IOVAS],
  ["IOMMU_IOAS_COPY", IOMMU_IOAS_COPY],
  ["IOMMU_IOAS_IOVA_RANGES", IOMMU_IOAS_IOVA_RANGES],
  ["IOMMU_IOAS_MAP", IOMMU_IOAS_MAP],
  ["IOMMU_IOAS_UNMAP", IOMMU_IOAS_UNMAP],
  ["IOMMU_OPTION", IOMMU_OPTION],
  ["IOMMU_VFIO_IOAS", IOMMU_VFIO_IOAS],
  ["IOMMU_HWPT_ALLOC", IOMMU_HWPT_ALLOC],
  ["IOMMU_GET_HW_INFO", IOMMU_GET_HW_INFO],
  ["IOMMU_HWPT_SET_DIRTY_TRACKING", IOMMU_HWPT_SET_DIRTY_TRACKING],
  ["IOMMU_HWPT_GET_DIRTY_BITMAP", IOMMU_HWPT_GET_DIRTY_BITMAP],
  ["IOMMU_HWPT_INVALIDATE", IOMMU_HWPT_INVALIDATE],
  ["IOMMU_FAULT_QUEUE_ALLOC", IOMMU_FAULT_QUEUE_ALLOC],
  ["IOMMU_IOAS_MAP_FILE", IOMMU_IOAS_MAP_FILE],
  ["IOMMU_VIOMMU_ALLOC", IOMMU_VIOMMU_ALLOC],
  ["IOMMU_VDEVICE_ALLOC", IOMMU_VDEVICE_ALLOC],
  ["IOMMU_IOAS_CHANGE_PROCESS", IOMMU_IOAS_CHANGE_PROCESS],
  ["IOMMU_VEVENTQ_ALLOC", IOMMU_VEVENTQ_ALLOC],
  ["IOMMU_HW_QUEUE_ALLOC", IOMMU_HW_QUEUE_ALLOC],
  ["IOMMU_TEST_CMD", IOMMU_TEST_CMD],
]);

/** The kernel name of a VFIO ioctl as the given kind of fd understands it, or undefined. */
export function vfioIoctlName(cmd: number, fdKind: VfioFdKind): string | undefined {
  const c = cmd >>> 0;
  switch (fdKind) {
    case "device": return VFIO_DEVICE_NAMES.get(c);
    case "container": return VFIO_CONTAINER_NAMES.get(c);
    case "group": return VFIO_GROUP_NAMES.get(c);
  }
}

/** The kernel name of an iommufd ioctl (IOMMU_*), or undefined. */
export function iommufdIoctlName(cmd: number): string | undefined {
  return IOMMUFD_NAMES.get(cmd >>> 0);
}

/**
 * The name of `cmd` as the file it went to understands it (VFIO numbers are overloaded: the
 * container's MAP_DMA is the device's PCI_HOT_RESET), else any known name, else hex ("0x3b7f").
 * `fileKind` is the FileOperations kind ("vfio-device", "vfio-container", "vfio-group", "iommufd").
 */
export function ioctlName(cmd: number, fileKind?: string): string {
  const c = cmd >>> 0;
  const byKind = fileKind === "vfio-device" ? VFIO_DEVICE_NAMES.get(c)
    : fileKind === "vfio-container" ? VFIO_CONTAINER_NAMES.get(c)
    : fileKind === "vfio-group" ? VFIO_GROUP_NAMES.get(c)
    : fileKind === "iommufd" ? IOMMUFD_NAMES.get(c) : undefined;
  return byKind ?? VFIO_DEVICE_NAMES.get(c) ?? VFIO_GROUP_NAMES.get(c) ?? VFIO_CONTAINER_NAMES.get(c) ??
    IOMMUFD_NAMES.get(c) ?? `0x${c.toString(16)}`;
}
