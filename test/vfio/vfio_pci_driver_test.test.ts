// Port of tools/testing/selftests/vfio/vfio_pci_driver_test.c: the selftest driver (here
// vfio-emu/drivers IoatDriver, on the raw layer) drives the ioat model in every IOMMU mode
// (FIXTURE_VARIANT_ADD_ALL_IOMMU_MODES). Regions as the fixture sets them up (MAP_SHARED |
// MAP_ANONYMOUS, IOVA = the user address); the memcpy region is 8 MiB instead of 1 GiB (the
// copy size is the device's maximum, 64 KiB, either way).

import { afterEach, describe, expect, it } from "vitest";
import { F_SETFL, MAP_ANONYMOUS, MAP_SHARED, O_NONBLOCK, O_RDWR, PROT_READ, PROT_WRITE, type Kernel, type Process } from "../../src/index.js";
import { IoatDriver } from "../../src/drivers/index.js";
import { attach, bind, boot, errno, getInfo, ioasAlloc, ioasMapArg, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, openIommufd, struct } from "./util.js";
import { legacyOpen, mapDma, unmapDma, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU } from "./legacy_util.js";

const BDF = "0000:00:04.0";
const MODES = ["vfio_type1_iommu", "vfio_type1v2_iommu", "iommufd_compat_type1", "iommufd_compat_type1v2", "iommufd"] as const;
type Mode = typeof MODES[number];
const SZ_2M = 2 << 20;
const MEMCPY_REGION = 8 << 20;
const SZ_1G = 1 << 30;

interface Region { vaddr: number; iova: bigint; size: number }
interface Fixture {
  k: Kernel; p: Process; driver: IoatDriver; msiFd: number;
  memcpyRegion: Region; driverRegion: Region;
  size: number; src: number; dst: number; srcIova: bigint; dstIova: bigint; unmappedIova: bigint;
  teardown(): void;
}

let fx: Fixture | null = null;
afterEach(async () => {
  if (fx) { fx.teardown(); await fx.k.close(); }
  fx = null;
});

/** vfio_pci_device_init(bdf, mode): the device file, and map / unmap in the mode's IOMMU. */
function deviceInit(p: Process, mode: Mode) {
  if (mode === "iommufd") {
    const i = openIommufd(p);
    const ioas = ioasAlloc(p, i);
    const d = p.open("/dev/vfio/devices/vfio0", O_RDWR);
    expect(bind(p, d, i)).toBeGreaterThan(0);
    expect(attach(p, d, ioas)).toBeGreaterThan(0);
    return {
      d,
      map: (r: Region) => expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, r.vaddr, r.size, r.iova))).toBe(0),
      unmap: (r: Region) => expect(p.ioctlBuf(i, IOMMU_IOAS_UNMAP, struct(24, [[0, 4, 24], [4, 4, ioas], [8, 8, r.iova], [16, 8, r.size]]))).toBe(0),
      cleanup: () => { p.close(d); p.close(i); },
    };
  }
  const compat = mode.startsWith("iommufd_compat");
  const group = Number((p.readlink(`/sys/bus/pci/devices/${BDF}/iommu_group`) as string).split("/").pop());
  const { c, g, d } = legacyOpen(p, compat ? "/dev/iommu" : "/dev/vfio/vfio", group, BDF, mode.endsWith("v2") ? VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU);
  expect(getInfo(p, d)).toBe(0);
  return {
    d,
    map: (r: Region) => expect(mapDma(p, c, r.vaddr, r.iova, r.size)).toBe(0),
    unmap: (r: Region) => expect(unmapDma(p, c, r.iova, r.size).rc).toBe(0),
    cleanup: () => { p.close(d); p.close(g); p.close(c); },
  };
}

/** FIXTURE_SETUP(vfio_pci_driver_test). */
async function setup(mode: Mode): Promise<Fixture> {
  const k = await boot([{ bdf: BDF, model: "ioat" }], { memoryBytes: 128 << 20 });
  const p = k.createProcess({ memlockBytes: Infinity });
  const dev = deviceInit(p, mode);
  const regionSetup = (size: number): Region => {
    const vaddr = p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    expect(vaddr).toBeGreaterThan(0);
    const r = { vaddr, iova: BigInt(vaddr), size };
    dev.map(r);
    return r;
  };
  const memcpyRegion = regionSetup(MEMCPY_REGION);
  const driverRegion = regionSetup(SZ_2M);
  const d = IoatDriver.probe(p, dev.d, driverRegion);
  if (typeof d === "number") throw new Error(`probe: ${d}`);
  d.init();
  const size = Math.min(d.maxMemcpySize, memcpyRegion.size / 2);
  const src = memcpyRegion.vaddr, dst = src + size;
  const f: Fixture = {
    k, p, driver: d, msiFd: d.msiEventfds[d.msi], memcpyRegion, driverRegion,
    size, src, dst, srcIova: BigInt(src), dstIova: BigInt(dst), unmappedIova: 8n * BigInt(SZ_1G),
    teardown() {
      // FIXTURE_TEARDOWN: remove, the regions unmapped and munmapped, the device cleaned up.
      d.remove();
      d.close();
      for (const r of [memcpyRegion, driverRegion]) {
        dev.unmap(r);
        expect(p.munmap(r.vaddr, r.size)).toBe(0);
      }
      dev.cleanup();
    },
  };
  fx = f;
  return f;
}

const fill = (f: Fixture, at: number, byte: string) => expect(f.p.writeMemory(at, new Uint8Array(f.size).fill(byte.charCodeAt(0)))).toBe(0);
function same(f: Fixture): boolean {
  const a = new Uint8Array(f.size), b = new Uint8Array(f.size);
  expect(f.p.readMemory(f.src, a)).toBe(0);
  expect(f.p.readMemory(f.dst, b)).toBe(0);
  return a.every((v, i) => v === b[i]);
}
const setNonblock = (f: Fixture) => expect(f.p.fcntl(f.msiFd, F_SETFL, O_NONBLOCK)).toBe(0);
/** ASSERT_NO_MSI: a non-blocking read of the eventfd finds nothing (EAGAIN). */
const assertNoMsi = (f: Fixture) => expect(f.p.read(f.msiFd, new Uint8Array(8))).toBe(-errno.EAGAIN);
function readMsi(f: Fixture): bigint {
  const v = new Uint8Array(8);
  expect(f.p.read(f.msiFd, v)).toBe(8);
  return new DataView(v.buffer).getBigUint64(0, true);
}

for (const mode of MODES) {
  describe(`vfio_pci_driver_test.${mode}`, () => {
    it(`vfio_pci_driver_test.${mode}.init_remove`, async () => {
      const f = await setup(mode);
      for (let i = 0; i < 10; i++) {
        f.driver.remove();
        f.driver.init();
      }
      f.msiFd = f.driver.msiEventfds[f.driver.msi];
    });

    it(`vfio_pci_driver_test.${mode}.memcpy_success`, async () => {
      const f = await setup(mode);
      setNonblock(f);
      fill(f, f.src, "x");
      fill(f, f.dst, "y");
      expect(f.driver.memcpy(f.srcIova, f.dstIova, f.size)).toBe(0);
      expect(same(f)).toBe(true);
      assertNoMsi(f);
    });

    it(`vfio_pci_driver_test.${mode}.memcpy_from_unmapped_iova`, async () => {
      const f = await setup(mode);
      setNonblock(f);
      // The kernel test ignores the result (not every device reports it); this one does.
      expect(f.driver.memcpy(f.unmappedIova, f.dstIova, f.size)).toBe(-1);
      assertNoMsi(f);
    });

    it(`vfio_pci_driver_test.${mode}.memcpy_to_unmapped_iova`, async () => {
      const f = await setup(mode);
      setNonblock(f);
      expect(f.driver.memcpy(f.srcIova, f.unmappedIova, f.size)).toBe(-1);
      assertNoMsi(f);
    });

    it(`vfio_pci_driver_test.${mode}.send_msi`, async () => {
      const f = await setup(mode);
      f.driver.sendMsi();
      expect(readMsi(f)).toBe(1n);
    });

    it(`vfio_pci_driver_test.${mode}.mix_and_match`, async () => {
      const f = await setup(mode);
      for (let i = 0; i < 10; i++) {
        fill(f, f.src, "x");
        fill(f, f.dst, "y");
        expect(f.driver.memcpy(f.srcIova, f.dstIova, f.size)).toBe(0);
        expect(same(f)).toBe(true);
        f.driver.memcpy(f.unmappedIova, f.dstIova, f.size);
        f.driver.sendMsi();
        expect(readMsi(f)).toBe(1n);
      }
    });

    it(`vfio_pci_driver_test.${mode}.memcpy_storm`, async () => {
      const f = await setup(mode);
      setNonblock(f);
      // Up to 250 GiB across the memcpys, at most DMACOUNT's range of them.
      const count = Math.min(Math.floor((250 * SZ_1G) / f.size), f.driver.maxMemcpyCount);
      expect(count).toBe(65535);
      fill(f, f.src, "s");
      f.driver.memcpyStart(f.srcIova, f.dstIova, f.size, count);
      expect(f.driver.memcpyWait()).toBe(0);
      expect(same(f)).toBe(true);
      assertNoMsi(f);
    }, 60_000);
  });
}
