// Helpers for the VFIO device-cdev suites. Ioctl numbers, struct sizes and offsets are
// literals from SPEC.md §3 and include/uapi/linux/vfio.h (x86_64); iommu_ioas_map, which the
// iommufd suites build too, goes through the one builder of ../iommufd/util.ts (mapCmd).

import { expect } from "vitest";
import { createKernel, errno, O_RDWR, VfioError, type DeviceConfig, type Kernel, type KernelConfig, type Process } from "../../src/index.js";
import {
  IOMMU_DESTROY, IOMMU_IOAS_ALLOC, FIXED as MAP_FIXED_IOVA, READ as MAP_READABLE, WRITE as MAP_WRITEABLE, mapCmd,
} from "../iommufd/util.js";

export { errno };

export const VFIO_DEVICE_GET_INFO = 0x3b6b;
export const VFIO_DEVICE_GET_REGION_INFO = 0x3b6c;
export const VFIO_DEVICE_GET_IRQ_INFO = 0x3b6d;
export const VFIO_DEVICE_SET_IRQS = 0x3b6e;
export const VFIO_DEVICE_RESET = 0x3b6f;
export const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = 0x3b70;
export const VFIO_DEVICE_PCI_HOT_RESET = 0x3b71;
export const VFIO_DEVICE_FEATURE = 0x3b75;
export const VFIO_DEVICE_BIND_IOMMUFD = 0x3b76;
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = 0x3b77;
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = 0x3b78;

// The /dev/iommu side: the literals of ../iommufd/util.ts (one copy), the map flags under
// their enum iommufd_ioas_map_flags names.
export { IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP } from "../iommufd/util.js";
export { MAP_FIXED_IOVA, MAP_READABLE, MAP_WRITEABLE };

/** A little-endian struct image: `fields` are [offset, size, value]. */
export function struct(size: number, fields: [number, 1 | 2 | 4 | 8, number | bigint][]): Uint8Array {
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  for (const [off, sz, val] of fields) {
    if (sz === 8) v.setBigUint64(off, BigInt.asUintN(64, BigInt(val)), true);
    else if (sz === 4) v.setUint32(off, Number(BigInt.asUintN(32, BigInt(val))), true);
    else if (sz === 2) v.setUint16(off, Number(val), true);
    else v.setUint8(off, Number(val));
  }
  return b;
}

export const u32 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off, true);
export const u64 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getBigUint64(off, true);

export const bindArg = (iommufd: number, argsz = 24, flags = 0) => struct(24, [[0, 4, argsz], [4, 4, flags], [8, 4, iommufd >>> 0]]);
export const attachArg = (ptId: number, argsz = 16, flags = 0) => struct(16, [[0, 4, argsz], [4, 4, flags], [8, 4, ptId >>> 0]]);
export const detachArg = (argsz = 12, flags = 0) => struct(12, [[0, 4, argsz], [4, 4, flags]]);
export const infoArg = (argsz = 24) => struct(24, [[0, 4, argsz]]);

export function bind(p: Process, dev: number, iommufd: number): number {
  const a = bindArg(iommufd);
  const rc = p.ioctlBuf(dev, VFIO_DEVICE_BIND_IOMMUFD, a);
  return rc < 0 ? rc : u32(a, 12);
}

export function attach(p: Process, dev: number, ptId: number): number {
  const a = attachArg(ptId);
  const rc = p.ioctlBuf(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, a);
  return rc < 0 ? rc : u32(a, 8);
}

export function detach(p: Process, dev: number): number {
  return p.ioctlBuf(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, detachArg());
}

export function ioasAlloc(p: Process, ifd: number): number {
  const a = struct(12, [[0, 4, 12]]);
  const rc = p.ioctlBuf(ifd, IOMMU_IOAS_ALLOC, a);
  return rc < 0 ? rc : u32(a, 8);
}

export function destroy(p: Process, ifd: number, id: number): number {
  return p.ioctlBuf(ifd, IOMMU_DESTROY, struct(8, [[0, 4, 8], [4, 4, id]]));
}

export function getInfo(p: Process, dev: number): number {
  return p.ioctlBuf(dev, VFIO_DEVICE_GET_INFO, infoArg());
}

/** The VfioError `fn` throws; fails the test when it throws nothing or something else. */
export function thrown(fn: () => unknown): VfioError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VfioError);
    return e as VfioError;
  }
  throw new Error("expected a VfioError, nothing was thrown");
}

export const dev0: DeviceConfig = { bdf: "0000:00:04.0", model: "memcpy" };

/** A kernel with the given devices (default: one memcpy device, vfio0 in group 0). */
export async function boot(devices: DeviceConfig[] = [dev0], more: KernelConfig = {}): Promise<Kernel> {
  return createKernel({ memoryBytes: 64 * 1024 * 1024, devices, ...more });
}

export function openDev(p: Process, index = 0): number {
  return p.open(`/dev/vfio/devices/vfio${index}`, O_RDWR);
}

export function openIommufd(p: Process): number {
  return p.open("/dev/iommu", O_RDWR);
}

/** struct iommu_ioas_map's image (../iommufd/util.ts mapCmd); a fixed-IOVA read/write map by default. */
export const ioasMapArg = (ioas: number, userVa: number | bigint, length: number | bigint, iova: number | bigint,
  flags = MAP_FIXED_IOVA | MAP_READABLE | MAP_WRITEABLE): Uint8Array =>
  mapCmd({ flags, ioasId: ioas, userVa, length, iova }).buf;

export interface CdevFixture { k: Kernel; p: Process; d: number; i: number }

/**
 * boot(devices), one process, the device file vfio0 (`d`) then /dev/iommu (`i`) opened;
 * with `bound`, BIND done too (out_devid 1, the context's first object).
 */
export async function cdevFixture(opts: { devices?: DeviceConfig[]; bound?: boolean } = {}): Promise<CdevFixture> {
  const k = await boot(opts.devices);
  const p = k.createProcess();
  const d = openDev(p);
  const i = openIommufd(p);
  expect(d, "open(vfio0)").toBeGreaterThanOrEqual(0);
  expect(i, "open(/dev/iommu)").toBeGreaterThanOrEqual(0);
  if (opts.bound) expect(bind(p, d, i), "BIND").toBe(1);
  return { k, p, d, i };
}

/** The access-gate word of an open file's slot (its byte 0 is the granted flag). */
export function gateWord(k: Kernel, p: Process, fd: number): number {
  const ref = p.fileRef(fd) as { slot: number; gen: number };
  return (k as unknown as { kcore: { core: { x: { gate_word(s: number): number } } } }).kcore.core.x.gate_word(ref.slot);
}

/** The iommu group number of `bdf`, from its sysfs iommu_group link (checked for the kernel's form). */
export function groupOf(p: Process, bdf: string): number {
  const link = p.readlink(`/sys/bus/pci/devices/${bdf}/iommu_group`) as string;
  expect(link).toMatch(/^(\.\.\/)+kernel\/iommu_groups\/\d+$/);
  return Number(link.split("/").pop());
}

/** VFIO_DEVICE_GET_REGION_INFO (32 bytes: argsz, flags, index, cap_offset, size, offset): the rc and what came back. */
export function regionInfo(p: Process, d: number, index: number): { rc: number; argsz: number; flags: number; size: bigint; offset: bigint } {
  const a = struct(32, [[0, 4, 32], [8, 4, index]]);
  const rc = p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, a);
  return { rc, argsz: u32(a, 0), flags: u32(a, 4), size: u64(a, 16), offset: u64(a, 24) };
}
