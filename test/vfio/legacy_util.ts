// Helpers for the legacy VFIO suites (groups, the type1 container, iommufd compat). Numbers,
// struct sizes and offsets are literals from SPEC.md §3 and include/uapi/linux/vfio.h
// (x86_64), not read from src/uapi.

import { expect } from "vitest";
import { O_RDWR, type Process } from "../../src/index.js";
import { struct, u32, u64 } from "./util.js";
import { dmaMapCmd } from "../iommufd/util.js";
import {
  VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA,
} from "../iommufd/util.js";

// The container ioctls, the IOMMU types and the page size are the literals the iommufd compat
// suite types (../iommufd/util.ts): one copy of them, shared.
export {
  VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_DIRTY_PAGES, IOMMU_VFIO_IOAS, VFIO_TYPE1_IOMMU, VFIO_SPAPR_TCE_IOMMU,
  VFIO_TYPE1v2_IOMMU, VFIO_DMA_CC_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU, VFIO_NOIOMMU_IOMMU, VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR, PG, U64_MAX,
} from "../iommufd/util.js";

export const VFIO_GROUP_GET_STATUS = 0x3b67;
export const VFIO_GROUP_SET_CONTAINER = 0x3b68;
export const VFIO_GROUP_UNSET_CONTAINER = 0x3b69;
export const VFIO_GROUP_GET_DEVICE_FD = 0x3b6a;

export const VIABLE = 1;
export const CONTAINER_SET = 2;
export const MAP_READ = 1;
export const MAP_WRITE = 2;
export const MAP_VADDR = 4;
export const UNMAP_DIRTY_BITMAP = 1;
export const UNMAP_ALL = 2;
export const UNMAP_VADDR = 4;

export function groupStatus(p: Process, g: number): number {
  const a = struct(8, [[0, 4, 8]]);
  const rc = p.ioctlBuf(g, VFIO_GROUP_GET_STATUS, a);
  return rc < 0 ? rc : u32(a, 4);
}

export function setContainer(p: Process, g: number, cfd: number): number {
  return p.ioctlBuf(g, VFIO_GROUP_SET_CONTAINER, struct(4, [[0, 4, cfd >>> 0]]));
}

export function getDeviceFd(p: Process, g: number, name: string): number {
  return p.ioctlBuf(g, VFIO_GROUP_GET_DEVICE_FD, new TextEncoder().encode(`${name}\0`));
}

/** struct vfio_iommu_type1_dma_map's image (../iommufd/util.ts dmaMapCmd). */
export const mapArg = (vaddr: number | bigint, iova: number | bigint, size: number | bigint, flags = MAP_READ | MAP_WRITE, argsz = 32): Uint8Array =>
  dmaMapCmd(flags, vaddr, iova, size, argsz).buf;

export function mapDma(p: Process, c: number, vaddr: number | bigint, iova: number | bigint, size: number | bigint, flags = MAP_READ | MAP_WRITE): number {
  return p.ioctlBuf(c, VFIO_IOMMU_MAP_DMA, mapArg(vaddr, iova, size, flags));
}

/** UNMAP_DMA: { rc, size written back }. */
export function unmapDma(p: Process, c: number, iova: number | bigint, size: number | bigint, flags = 0): { rc: number; size: bigint } {
  const a = struct(24, [[0, 4, 24], [4, 4, flags], [8, 8, iova], [16, 8, size]]);
  const rc = p.ioctlBuf(c, VFIO_IOMMU_UNMAP_DMA, a);
  return { rc, size: u64(a, 16) };
}

export interface Type1Info { argsz: number; flags: number; pgsizes: bigint; capOffset: number; caps: Map<number, DataView>; raw: Uint8Array }

/** VFIO_IOMMU_GET_INFO with `argsz`, its chain parsed (cycle-checked, offsets within argsz). */
export function iommuInfo(p: Process, c: number, argsz: number): Type1Info | number {
  const a = struct(Math.max(argsz, 24), [[0, 4, argsz]]);
  const rc = p.ioctlBuf(c, VFIO_IOMMU_GET_INFO, a);
  if (rc < 0) return rc;
  const v = new DataView(a.buffer);
  const caps = new Map<number, DataView>();
  let off = u32(a, 16);
  const seen = new Set<number>();
  while (off && argsz >= 24) {
    expect(off).toBeGreaterThanOrEqual(24);
    expect(off).toBeLessThan(a.length);
    expect(seen.has(off)).toBe(false);
    seen.add(off);
    caps.set(v.getUint16(off, true), new DataView(a.buffer, off));
    off = v.getUint32(off + 4, true);
  }
  return { argsz: u32(a, 0), flags: u32(a, 4), pgsizes: u64(a, 8), capOffset: u32(a, 16), caps, raw: a };
}

/** The selftest library's GET_INFO: sizeof first, then grown to the returned argsz. */
export function iovaRangesType1(p: Process, c: number): { start: bigint; last: bigint }[] {
  const first = iommuInfo(p, c, 24) as Type1Info;
  expect(typeof first).toBe("object");
  expect(first.flags & 2).toBe(2);
  const info = iommuInfo(p, c, first.argsz) as Type1Info;
  const cap = info.caps.get(1)!;
  expect(cap).toBeDefined();
  const n = cap.getUint32(8, true);
  expect(n).toBeGreaterThan(0);
  const out = [];
  for (let i = 0; i < n; i++) out.push({ start: cap.getBigUint64(16 + 16 * i, true), last: cap.getBigUint64(24 + 16 * i, true) });
  return out;
}

/** The legacy open sequence of CONFORMANCE §1b for one device; returns the fds. */
export function legacyOpen(p: Process, containerPath: string, group: number, bdf: string, type: number): { c: number; g: number; d: number } {
  const c = p.open(containerPath, O_RDWR);
  expect(c).toBeGreaterThanOrEqual(0);
  expect(p.ioctl(c, VFIO_GET_API_VERSION)).toBe(0);
  const g = p.open(`/dev/vfio/${group}`, O_RDWR);
  expect(g).toBeGreaterThanOrEqual(0);
  expect(groupStatus(p, g)).toBe(VIABLE); // not yet CONTAINER_SET
  expect(setContainer(p, g, c)).toBe(0);
  expect(p.ioctl(c, VFIO_CHECK_EXTENSION, type)).toBe(1);
  expect(p.ioctl(c, VFIO_SET_IOMMU, type)).toBe(0);
  const d = getDeviceFd(p, g, bdf);
  expect(d).toBeGreaterThanOrEqual(0);
  return { c, g, d };
}
