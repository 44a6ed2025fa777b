// vfio-pci's read/write of a device file (drivers/vfio/pci/vfio_pci_rdwr.c vfio_pci_rw), one
// implementation for the kernel's thread (src/vfio/pci_core.ts) and device workers
// (src/worker.ts DeviceFileIo): the region index and offset from the file position, config
// space through its permission planes (configRw; the whole access inside it, else EFAULT),
// BAR0 through barRw (EIO while memory decoding is off, the MSI-X table excluded), EINVAL
// for every other region (no VGA, no ROM, no other BAR). Both callers describe the device
// by the state it publishes in shared memory.

import { errno } from "../uapi/errno.js";
import { VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_NUM_REGIONS, VFIO_PCI_OFFSET_SHIFT } from "../uapi/vfio.js";
import { barRw, memoryEnabled } from "./pci_bar.js";
import { configRw } from "./pci_config.js";

/** A region's file offset: index * REGION_SPAN + offset (vfio-pci's index << 40). */
const REGION_SPAN = 2 ** VFIO_PCI_OFFSET_SHIFT;

/** What the rw reaches of a device (host addresses in `mem`). A caller may reuse one object. */
export interface PciRwState {
  mem: Uint8Array;
  /** The config planes (pci_config.ts) and the config space size. */
  config: number;
  configSize: number;
  bar0: number;
  bar0Size: number;
  /** The MSI-X table's range within BAR0 ([0, 0): none). */
  msixStart: number;
  msixEnd: number;
  /** Takes BAR0 writes instead of memory (a register file with side effects). */
  barSink?: ((off: number, data: Uint8Array) => void) | undefined;
  /**
   * Runs a config write instead of the plain permission-plane write: the kernel thread's
   * vfio-pci writes and then acts on the registers with side effects.
   */
  configWrite?: ((off: number, data: Uint8Array) => void) | undefined;
}

/** pos: region index * 2^40 + offset. Bytes transferred, or -errno. */
export function pciRw(s: PciRwState, buf: Uint8Array, pos: number, write: boolean): number {
  if (buf.length === 0) return 0;
  const index = Math.floor(pos / REGION_SPAN);
  const off = pos % REGION_SPAN;
  if (index >= VFIO_PCI_NUM_REGIONS) return -errno.EINVAL;
  if (index === VFIO_PCI_CONFIG_REGION_INDEX) {
    // vfio_config_do_rw: the whole access must lie inside config space.
    const size = s.configSize;
    if (off >= size || off + buf.length > size) return -errno.EFAULT;
    if (write && s.configWrite) s.configWrite(off, buf);
    else configRw(s.mem, s.config, size, off, buf, write);
    return buf.length;
  }
  if (index !== 0) return -errno.EINVAL;
  if (off >= s.bar0Size) return -errno.EINVAL;
  if (!memoryEnabled(s.mem, s.config, s.configSize)) return -errno.EIO;
  return barRw(s.mem, s.bar0, s.bar0Size, off, buf, write, s.msixStart, s.msixEnd, s.barSink);
}
