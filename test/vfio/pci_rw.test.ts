// vfio-pci's read/write is one implementation (src/devices/pci_rw.ts) for the kernel's thread
// (pread/pwrite on the device file) and a worker (DeviceFileIo over the published device
// line): at every position the same result and the same bytes, for config space, BAR0 with
// its MSI-X table, the other regions and offsets past the ends, with memory decoding on and off.

import { afterEach, describe, expect, it } from "vitest";
import type { Kernel, Process } from "../../src/index.js";
import { DeviceFileIo } from "../../src/worker.js";
import type { Core } from "../../src/wasm/core.js";
import { bind, boot, openDev, openIommufd } from "./util.js";

const REGION = 2 ** 40;
const CFG = 7 * REGION;

let k: Kernel | null = null;
afterEach(async () => { await k?.close(); k = null; });

/** Reads (and, where `write`, writes) at `pos` from both sides; both must agree. */
function agree(p: Process, d: number, io: DeviceFileIo, slot: number, pos: number, len: number, write = false): number {
  const fill = Uint8Array.from({ length: len }, (_, i) => (i * 29 + pos) & 0xff);
  const a = write ? fill.slice() : new Uint8Array(len).fill(0x5a);
  const b = write ? fill.slice() : new Uint8Array(len).fill(0x5a);
  const ra = write ? p.pwrite(d, a, pos) : p.pread(d, a, pos);
  const rb = io.rw(slot, b, pos, write);
  expect({ pos: pos.toString(16), len, rc: rb, bytes: [...b] }).toEqual({ pos: pos.toString(16), len, rc: ra, bytes: [...a] });
  return ra;
}

for (const model of ["memcpy", "ioat"]) {
  describe(`vfio-pci rw: the kernel's thread and a worker run the same (${model})`, () => {
    it("config space, BAR0, the other regions, the ends; memory decoding on and off", async () => {
      k = await boot([{ bdf: "0000:00:04.0", model }]);
      const p = k.createProcess();
      const d = openDev(p);
      expect(bind(p, d, openIommufd(p))).toBe(1);
      const core = (k as unknown as { kcore: { core: Core } }).kcore.core;
      const io = new DeviceFileIo(core);
      const slot = (p.fileRef(d) as { slot: number }).slot;
      // Config space: every dword, and accesses straddling or past its end (PCIe: 4 KiB).
      for (let off = 0; off < 0x1000; off += 4) agree(p, d, io, slot, CFG + off, 4);
      for (const len of [1, 2, 3, 8, 64]) agree(p, d, io, slot, CFG + 0x40, len);
      expect(agree(p, d, io, slot, CFG + 0xffe, 4)).toBe(-14);
      expect(agree(p, d, io, slot, CFG + 0x1000, 1)).toBe(-14);
      // BAR0: plain memory (memcpy) or the engine's registers (ioat), the MSI-X table 0xff.
      if (model === "memcpy") for (let off = 0; off < 0x800; off += 0x100) agree(p, d, io, slot, off, 8, true);
      for (let off = 0; off < 0x1000; off += 0x40) agree(p, d, io, slot, off, 0x40);
      agree(p, d, io, slot, 0x7fc, 8);
      agree(p, d, io, slot, 0x800, 16, true); // into the table: dropped on both sides
      agree(p, d, io, slot, 0x800, 16);
      expect(agree(p, d, io, slot, 0xffc, 8)).toBe(4); // clipped at the BAR's end
      expect(agree(p, d, io, slot, 0x1000, 1)).toBe(-22);
      // No other BAR, no ROM, no VGA, nothing past the last region.
      for (const index of [1, 2, 3, 4, 5, 6, 8, 9]) expect(agree(p, d, io, slot, index * REGION, 4)).toBe(-22);
      expect(agree(p, d, io, slot, 0, 0)).toBe(0);
      // Memory decoding off (the user's COMMAND): BAR0 is EIO on both sides; config still answers.
      const cmd = new Uint8Array(2);
      expect(p.pread(d, cmd, CFG + 4)).toBe(2);
      expect(p.pwrite(d, new Uint8Array([cmd[0] & ~2, cmd[1]]), CFG + 4)).toBe(2);
      expect(agree(p, d, io, slot, 0, 4)).toBe(-5);
      expect(agree(p, d, io, slot, 0, 4, true)).toBe(-5);
      agree(p, d, io, slot, CFG + 4, 2);
    });
  });
}
