// The bar0Size model option: BAR0 of any power-of-two size from one page to the device's
// 64 KiB slot, backed by a block of frames, every page of it its own.

import { describe, expect, it } from "vitest";
import { MAP_SHARED, O_RDWR, PROT_READ, PROT_WRITE } from "../../src/index.js";
import { bind, boot, errno, openIommufd, struct, u64, VFIO_DEVICE_GET_REGION_INFO } from "./util.js";

const BDF = "0000:00:04.0";
const PG = 4096;
const BAR = 0x4000;

describe("the bar0Size model option", () => {
  it("sizes BAR0: region info, the config BAR's sizing mask, an mmap of all of it (EINVAL past it), each page its own", async () => {
    const k = await boot([{ bdf: BDF, model: "memcpy", bar0Size: BAR }]);
    const p = k.createProcess();
    const d = p.open("/dev/vfio/devices/vfio0", O_RDWR);
    const i = openIommufd(p);
    expect(bind(p, d, i)).toBeGreaterThan(0);
    const info = struct(32, [[0, 4, 32], [8, 4, 0]]);
    expect(p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, info)).toBe(0);
    expect(u64(info, 16)).toBe(BigInt(BAR));
    const CFG = 7 * 2 ** 40;
    expect(p.pwrite(d, Uint8Array.of(0xff, 0xff, 0xff, 0xff), CFG + 0x10)).toBe(4);
    const m = new Uint8Array(4);
    expect(p.pread(d, m, CFG + 0x10)).toBe(4);
    expect(new DataView(m.buffer).getUint32(0, true)).toBe(0xffffc000);
    expect(p.mmap(0, BAR + PG, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0)).toBe(-errno.EINVAL);
    const bar = p.mmap(0, BAR, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
    expect(bar).toBeGreaterThan(0);
    for (let j = 0; j < BAR / PG; j++) expect(p.writeMemory(bar + j * PG, Uint8Array.of(0x10 + j))).toBe(0);
    const b = new Uint8Array(1);
    for (let j = 0; j < BAR / PG; j++) {
      expect(p.pread(d, b, j * PG)).toBe(1);
      expect(b[0]).toBe(0x10 + j);
    }
    await k.close();
  });

  it("takes a power of two from 4096 to 65536", async () => {
    for (const bad of [2048, 0x3000, 0x20000, "4096"]) {
      await expect(boot([{ bdf: BDF, model: "memcpy", bar0Size: bad }])).rejects.toThrow(RangeError);
    }
  });
});
