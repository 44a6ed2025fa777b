// The ABI layer, one source of truth: errno values, struct layouts, ioctl numbers, VFIO and
// iommufd constants, and the POSIX constants of the raw syscall layer. Imports nothing of ours.

export * from "./errno.js";
export * from "./struct.js";
export * from "./ioctl.js";
export * from "./vfio.js";
export * from "./iommufd.js";
export * from "./posix.js";
