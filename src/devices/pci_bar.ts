// A BAR's memory as vfio-pci's read/write reaches it (drivers/vfio/pci/vfio_pci_rdwr.c
// vfio_pci_bar_rw / do_io_rw), one implementation for the kernel's thread and device workers:
// the transfer is clipped at the BAR's end, refused with EIO while the user's view of COMMAND
// has memory decoding off, and the MSI-X vector table inside it is an excluded range (reads
// fill 0xff, writes are dropped: only the host programs the table; an mmap reaches it).

import { errno } from "../uapi/errno.js";
import { PCI_COMMAND, PCI_COMMAND_MEMORY } from "./pci_config.js";

/** __vfio_pci_memory_enabled: the virtual COMMAND's memory bit (vconfig is plane 3 of config). */
export function memoryEnabled(mem: Uint8Array, config: number, configSize: number): boolean {
  return (mem[config + 3 * configSize + PCI_COMMAND] & PCI_COMMAND_MEMORY) !== 0;
}

/**
 * Reads or writes `buf` at `off` in the BAR of `size` bytes at host address `base`, with
 * [xStart, xEnd) excluded. Bytes moved, -EINVAL at or past the end. `sink`, when given, takes
 * the writes instead of memory (a register file with side effects).
 */
export function barRw(mem: Uint8Array, base: number, size: number, off: number, buf: Uint8Array, write: boolean,
  xStart: number, xEnd: number, sink?: (off: number, data: Uint8Array) => void): number {
  if (off >= size) return -errno.EINVAL;
  const n = Math.min(buf.length, size - off);
  for (let done = 0; done < n;) {
    const at = off + done;
    let len: number;
    if (at < xStart || at >= xEnd) {
      len = Math.min(n - done, at < xStart ? xStart - at : n - done);
      if (write && sink) sink(at, buf.subarray(done, done + len));
      else if (write) mem.set(buf.subarray(done, done + len), base + at);
      else buf.set(mem.subarray(base + at, base + at + len), done);
    } else {
      len = Math.min(n - done, xEnd - at);
      if (!write) buf.fill(0xff, done, done + len);
    }
    done += len;
  }
  return n;
}
