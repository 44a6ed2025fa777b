// vfio-emu/drivers: userspace drivers for the emulated devices, written against the raw
// syscall layer alone (what a C program would call), with the kernel vfio selftests' driver
// operations. A `Process` is a DriverSyscalls.

export { IoatDriver } from "./ioat.js";
export type { DmaRegion, DriverSyscalls } from "./ioat.js";
