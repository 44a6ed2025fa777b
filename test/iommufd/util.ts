// Helpers for the /dev/iommu conformance suites. Every ioctl number, struct size and field
// offset below is a literal typed from SPEC.md §3 and the kernel's uapi headers
// (include/uapi/linux/iommufd.h, include/uapi/linux/vfio.h, drivers/iommu/iommufd/iommufd_test.h),
// x86_64, except the structs that several suites build (iommu_ioas_map, iommu_hwpt_alloc,
// vfio_iommu_type1_dma_map): those go through src/uapi's layouts (toolkit/struct.ts), which
// test/uapi.test.ts pins against the same literals, so the offsets are written once.

import { expect } from "vitest";
import {
  createKernel, errno, O_RDWR, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_ANONYMOUS,
  type Kernel, type Process, type ProcessOptions,
} from "../../src/index.js";
import { iommu_hwpt_alloc, iommu_ioas_map } from "../../src/uapi/iommufd.js";
import { vfio_iommu_type1_dma_map } from "../../src/uapi/vfio.js";
import type { StructLayout } from "../../src/uapi/struct.js";
import { structOf } from "../toolkit/struct.js";

export { errno };

// ---------------------------------------------------------------------------------------------
// Numbers

export const PG = 4096;
export const MOCK_PAGE_SIZE = PG / 2;
export const MOCK_APERTURE_START = 1 << 24;
export const U64_MAX = 0xffff_ffff_ffff_ffffn;
export const BUFFER_SIZE = 16 * PG; // the selftest's `buffer`
export const HUGEPAGE_SIZE = 2 * 1024 * 1024;

// iommufd: _IO(';', 0x80 + n)
export const IOMMU_DESTROY = 0x3b80;
export const IOMMU_IOAS_ALLOC = 0x3b81;
export const IOMMU_IOAS_ALLOW_IOVAS = 0x3b82;
export const IOMMU_IOAS_COPY = 0x3b83;
export const IOMMU_IOAS_IOVA_RANGES = 0x3b84;
export const IOMMU_IOAS_MAP = 0x3b85;
export const IOMMU_IOAS_UNMAP = 0x3b86;
export const IOMMU_OPTION = 0x3b87;
export const IOMMU_VFIO_IOAS = 0x3b88;
export const IOMMU_HWPT_ALLOC = 0x3b89;
export const IOMMU_GET_HW_INFO = 0x3b8a;
export const IOMMU_HWPT_SET_DIRTY_TRACKING = 0x3b8b;
export const IOMMU_HWPT_GET_DIRTY_BITMAP = 0x3b8c;
export const IOMMU_HWPT_INVALIDATE = 0x3b8d;
export const IOMMU_IOAS_MAP_FILE = 0x3b8f;
export const IOMMU_IOAS_CHANGE_PROCESS = 0x3b92;
export const IOMMU_TEST_CMD = 0x3ba0;

// VFIO container ioctls served by the iommufd compat layer: _IO(';', 100 + n)
export const VFIO_GET_API_VERSION = 0x3b64;
export const VFIO_CHECK_EXTENSION = 0x3b65;
export const VFIO_SET_IOMMU = 0x3b66;
export const VFIO_IOMMU_GET_INFO = 0x3b70;
export const VFIO_IOMMU_MAP_DMA = 0x3b71;
export const VFIO_IOMMU_UNMAP_DMA = 0x3b72;
export const VFIO_IOMMU_DIRTY_PAGES = 0x3b75;

// VFIO extension / IOMMU type values
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_SPAPR_TCE_IOMMU = 2;
export const VFIO_TYPE1v2_IOMMU = 3;
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_EEH = 5;
export const VFIO_TYPE1_NESTING_IOMMU = 6;
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
export const VFIO_NOIOMMU_IOMMU = 8;
export const VFIO_UNMAP_ALL = 9;
export const VFIO_UPDATE_VADDR = 10;

export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

// enum iommufd_ioas_map_flags
export const FIXED = 1 << 0;
export const WRITE = 1 << 1;
export const READ = 1 << 2;
export const RW = READ | WRITE;

// IOMMU_OPTION
export const IOMMU_OPTION_RLIMIT_MODE = 0;
export const IOMMU_OPTION_HUGE_PAGES = 1;
export const IOMMU_OPTION_OP_SET = 0;
export const IOMMU_OPTION_OP_GET = 1;

// IOMMU_VFIO_IOAS ops
export const IOMMU_VFIO_IOAS_GET = 0;
export const IOMMU_VFIO_IOAS_SET = 1;
export const IOMMU_VFIO_IOAS_CLEAR = 2;

// iommufd_test.h
export const IOMMU_TEST_OP_ADD_RESERVED = 1;
export const IOMMU_TEST_OP_MOCK_DOMAIN = 2;
export const IOMMU_TEST_OP_MD_CHECK_REFS = 4;
export const IOMMU_TEST_OP_MD_CHECK_MAP = 3;
export const IOMMU_TEST_OP_CREATE_ACCESS = 5;
export const IOMMU_TEST_OP_DESTROY_ACCESS_PAGES = 6;
export const IOMMU_TEST_OP_ACCESS_PAGES = 7;
export const IOMMU_TEST_OP_ACCESS_RW = 8;
export const IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT = 9;
export const IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE = 10;
export const IOMMU_TEST_OP_ACCESS_REPLACE_IOAS = 11;
export const IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS = 12;
export const IOMMU_TEST_OP_DIRTY = 13;
export const IOMMU_HWPT_DATA_SELFTEST = 0xdead;
export const IOMMU_HWPT_DATA_NONE = 0;
export const IOMMU_TEST_OP_MD_CHECK_IOTLB = 14;
export const IOMMU_TEST_IOTLB_DEFAULT = 0xbadbeef;
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
export const IOMMU_TEST_INVALIDATE_FLAG_ALL = 1 << 0;
export const MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = 3;
export const MOCK_NESTED_DOMAIN_IOTLB_NUM = 4;
export const MOCK_APERTURE_LAST = 0x7fff_ffff;
export const MOCK_HUGE_PAGE_SIZE = 512 * MOCK_PAGE_SIZE;
export const MOCK_FLAGS_ACCESS_WRITE = 1 << 0;
export const MOCK_ACCESS_RW_WRITE = 1 << 0;
export const MOCK_ACCESS_RW_SLOW_PATH = 1 << 2;
export const MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES = 1 << 0;
export const MOCK_FLAGS_DEVICE_NO_DIRTY = 1 << 0;
export const MOCK_FLAGS_DEVICE_HUGE_IOVA = 1 << 1;
export const IOMMU_HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
export const IOMMU_HW_INFO_FLAG_INPUT_TYPE = 1 << 0;
export const IOMMU_HW_INFO_SELFTEST_REGVAL = 0xdeadbeef;
export const DEFAULT_MEMORY_LIMIT = 65536;

// enum iommufd_hwpt_alloc_flags, iommu_hw_capabilities, dirty tracking flags
export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0;
export const IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;
export const IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0;
export const IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1 << 0;
export const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1 << 0;

// ---------------------------------------------------------------------------------------------
// A byte image of an ioctl argument with little-endian field access.

export class Cmd {
  readonly buf: Uint8Array;
  readonly dv: DataView;
  /** `bytes` zero bytes, or an image built elsewhere (Cmd.of). */
  constructor(bytes: number | Uint8Array) {
    this.buf = typeof bytes === "number" ? new Uint8Array(bytes) : bytes;
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }
  /** An image of `layout` with its size field and `init`'s fields set (toolkit structOf). */
  static of<F extends string>(layout: StructLayout<F>, init: Partial<Record<F, number | bigint>>, bytes?: number): Cmd {
    return new Cmd(structOf(layout, init, bytes));
  }
  u8(off: number, v: number): this { this.dv.setUint8(off, v); return this; }
  u16(off: number, v: number): this { this.dv.setUint16(off, v, true); return this; }
  u32(off: number, v: number): this { this.dv.setUint32(off, v >>> 0, true); return this; }
  u64(off: number, v: number | bigint): this { this.dv.setBigUint64(off, BigInt.asUintN(64, BigInt(v)), true); return this; }
  g8(off: number): number { return this.dv.getUint8(off); }
  g16(off: number): number { return this.dv.getUint16(off, true); }
  g32(off: number): number { return this.dv.getUint32(off, true); }
  g64(off: number): bigint { return this.dv.getBigUint64(off, true); }
  /** Sets the iommufd `size` field (the first u32). */
  size(n: number): this { return this.u32(0, n); }
}

/** A command image of `bytes` bytes whose first u32 (size / argsz) is `size` (default bytes). */
export function cmd(bytes: number, size = bytes): Cmd { return new Cmd(bytes).u32(0, size); }

// struct iommu_destroy { size @0, id @4 } (8)
export const destroyCmd = (id: number): Cmd => cmd(8).u32(4, id);

// struct iommu_ioas_alloc { size @0, flags @4, out_ioas_id @8 } (12)
export const ioasAllocCmd = (flags = 0): Cmd => cmd(12).u32(4, flags);

// struct iommu_ioas_iova_ranges { size @0, ioas_id @4, num_iovas @8, __reserved @12,
//   allowed_iovas u64 @16, out_iova_alignment u64 @24 } (32)
export const iovaRangesCmd = (ioasId: number, num: number, ptr: number | bigint, reserved = 0): Cmd =>
  cmd(32).u32(4, ioasId).u32(8, num).u32(12, reserved).u64(16, ptr);

// struct iommu_ioas_allow_iovas { size @0, ioas_id @4, num_iovas @8, __reserved @12, allowed_iovas u64 @16 } (24)
export const allowIovasCmd = (ioasId: number, num: number, ptr: number | bigint, reserved = 0): Cmd =>
  cmd(24).u32(4, ioasId).u32(8, num).u32(12, reserved).u64(16, ptr);

// struct iommu_ioas_map { size @0, flags @4, ioas_id @8, __reserved @12, user_va u64 @16,
//   length u64 @24, iova u64 @32 } (40)
export interface MapArgs { flags?: number; ioasId: number; reserved?: number; userVa: number | bigint; length: number | bigint; iova?: number | bigint }
export const mapCmd = (a: MapArgs): Cmd => Cmd.of(iommu_ioas_map, {
  flags: a.flags ?? RW, ioas_id: a.ioasId, __reserved: a.reserved ?? 0, user_va: a.userVa, length: a.length, iova: a.iova ?? 0,
});

// struct iommu_ioas_map_file { size @0, flags @4, ioas_id @8, fd s32 @12, start u64 @16,
//   length u64 @24, iova u64 @32 } (40)
export interface MapFileArgs { flags?: number; ioasId: number; fd: number; start: number | bigint; length: number | bigint; iova?: number | bigint }
export const mapFileCmd = (a: MapFileArgs): Cmd =>
  cmd(40).u32(4, a.flags ?? RW).u32(8, a.ioasId).u32(12, a.fd | 0)
    .u64(16, a.start).u64(24, a.length).u64(32, a.iova ?? 0);

// struct iommu_ioas_copy { size @0, flags @4, dst_ioas_id @8, src_ioas_id @12, length u64 @16,
//   dst_iova u64 @24, src_iova u64 @32 } (40)
export interface CopyArgs { flags: number; dstIoasId: number; srcIoasId: number; length: number | bigint; dstIova?: number | bigint; srcIova: number | bigint }
export const copyCmd = (a: CopyArgs): Cmd =>
  cmd(40).u32(4, a.flags).u32(8, a.dstIoasId).u32(12, a.srcIoasId)
    .u64(16, a.length).u64(24, a.dstIova ?? 0).u64(32, a.srcIova);

// struct iommu_ioas_unmap { size @0, ioas_id @4, iova u64 @8, length u64 @16 } (24)
export const unmapCmd = (ioasId: number, iova: number | bigint, length: number | bigint): Cmd =>
  cmd(24).u32(4, ioasId).u64(8, iova).u64(16, length);

// struct iommu_option { size @0, option_id @4, op u16 @8, __reserved u16 @10, object_id @12, val64 u64 @16 } (24)
export interface OptionArgs { optionId: number; op: number; objectId?: number; val64?: number | bigint; reserved?: number }
export const optionCmd = (a: OptionArgs): Cmd =>
  cmd(24).u32(4, a.optionId).u16(8, a.op).u16(10, a.reserved ?? 0).u32(12, a.objectId ?? 0).u64(16, a.val64 ?? 0);

// struct iommu_vfio_ioas { size @0, ioas_id @4, op u16 @8, __reserved u16 @10 } (12)
export const vfioIoasCmd = (op: number, ioasId = 0, reserved = 0): Cmd =>
  cmd(12).u32(4, ioasId).u16(8, op).u16(10, reserved);

// struct iommu_hwpt_alloc { size @0, flags @4, dev_id @8, pt_id @12, out_hwpt_id @16, __reserved @20,
//   data_type @24, data_len @28, data_uptr u64 @32, fault_id @40, __reserved2 @44 } (48)
export interface HwptAllocArgs { flags?: number; devId: number; ptId: number; dataType?: number; dataLen?: number; dataUptr?: number | bigint }
export const hwptAllocCmd = (a: HwptAllocArgs): Cmd => Cmd.of(iommu_hwpt_alloc, {
  flags: a.flags ?? 0, dev_id: a.devId, pt_id: a.ptId, data_type: a.dataType ?? 0, data_len: a.dataLen ?? 0, data_uptr: a.dataUptr ?? 0,
});

// struct iommu_hwpt_invalidate { size @0, hwpt_id @4, data_uptr u64 @8, data_type @16, entry_len @20,
//   entry_num @24 (in/out), __reserved @28 } (32)
export const hwptInvalidateCmd = (hwptId: number, dataUptr: number | bigint, dataType: number, entryLen: number, entryNum: number): Cmd =>
  cmd(32).u32(4, hwptId).u64(8, dataUptr).u32(16, dataType).u32(20, entryLen).u32(24, entryNum);

// struct iommu_hw_info { size @0, flags @4, dev_id @8, data_len @12, data_uptr u64 @16,
//   out_data_type @24, out_max_pasid_log2 u8 @28, __reserved u8[3] @29, out_capabilities u64 @32 } (40)
export const hwInfoCmd = (devId: number, dataLen: number, dataUptr: number | bigint): Cmd =>
  cmd(40).u32(8, devId).u32(12, dataLen).u64(16, dataUptr);

// struct iommu_ioas_change_process { size @0, __reserved @4 } (8)
export const changeProcessCmd = (reserved = 0): Cmd => cmd(8).u32(4, reserved);

// struct iommu_test_cmd (72): size @0, op @4, id @8, __reserved @12, union @16..63, last @64.
//   add_reserved { start u64 @16, length u64 @24 }
//   check_refs   { length u64 @16, uptr u64 @24, refs u32 @32 }
//   memory_limit { limit u32 @16 }
export const addReservedCmd = (ioasId: number, start: number | bigint, length: number | bigint): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_ADD_RESERVED).u32(8, ioasId).u64(16, start).u64(24, length);
export const checkRefsCmd = (uptr: number | bigint, length: number | bigint, refs: number): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_MD_CHECK_REFS).u64(16, length).u64(24, uptr).u32(32, refs);
export const mockDomainCmd = (ptId: number): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_MOCK_DOMAIN).u32(8, ptId);
//   mock_domain / mock_domain_flags { out_stdev_id @16, out_hwpt_id @20, out_idev_id @24, dev_flags @28 }
export const mockDomainFlagsCmd = (ptId: number, devFlags: number): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS).u32(8, ptId).u32(28, devFlags);
//   mock_domain_replace { pt_id @16 } (in/out)
export const mockDomainReplaceCmd = (stdevId: number, ptId: number): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE).u32(8, stdevId).u32(16, ptId);
//   check_map { iova u64 @16, length u64 @24, uptr u64 @32 }
export const checkMapCmd = (hwptId: number, iova: number | bigint, length: number | bigint, uptr: number | bigint): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_MD_CHECK_MAP).u32(8, hwptId).u64(16, iova).u64(24, length).u64(32, uptr);
//   create_access { out_access_fd @16, flags @20 }
export const createAccessCmd = (ioasId: number, flags: number): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_CREATE_ACCESS).u32(8, ioasId).u32(20, flags);
//   access_pages { flags @16, out_access_pages_id @20, iova u64 @24, length u64 @32, uptr u64 @40 }
export const accessPagesCmd = (accessFd: number, iova: number | bigint, length: number | bigint, uptr: number | bigint, flags = 0): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_ACCESS_PAGES).u32(8, accessFd).u32(16, flags).u64(24, iova).u64(32, length).u64(40, uptr);
//   destroy_access_pages { access_pages_id @16 }
export const destroyAccessPagesCmd = (accessFd: number, pagesId: number): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_DESTROY_ACCESS_PAGES).u32(8, accessFd).u32(16, pagesId);
//   access_rw { iova u64 @16, length u64 @24, uptr u64 @32, flags @40 }
export const accessRwCmd = (accessFd: number, iova: number | bigint, length: number | bigint, uptr: number | bigint, flags = 0): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_ACCESS_RW).u32(8, accessFd).u64(16, iova).u64(24, length).u64(32, uptr).u32(40, flags);
//   access_replace_ioas { ioas_id @16 }
export const accessReplaceIoasCmd = (accessFd: number, ioasId: number): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_ACCESS_REPLACE_IOAS).u32(8, accessFd).u32(16, ioasId);
//   check_iotlb { id @16, iotlb @20 }
export const checkIotlbCmd = (hwptId: number, iotlbId: number, value: number): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_MD_CHECK_IOTLB).u32(8, hwptId).u32(16, iotlbId).u32(20, value);
//   memory_limit { limit @16 }
export const memoryLimitCmd = (limit: number): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT).u32(16, limit);
//   dirty { flags @16, iova u64 @24, length u64 @32, page_size u64 @40, uptr u64 @48, out_nr_dirty u64 @56 }
export const testDirtyCmd = (hwptId: number, iova: number | bigint, length: number | bigint, pageSize: number | bigint, uptr: number | bigint): Cmd =>
  cmd(72).u32(4, IOMMU_TEST_OP_DIRTY).u32(8, hwptId).u64(24, iova).u64(32, length).u64(40, pageSize).u64(48, uptr);

// struct iommu_hwpt_set_dirty_tracking { size @0, flags @4, hwpt_id @8, __reserved @12 } (16)
export const setDirtyTrackingCmd = (hwptId: number, enable: boolean): Cmd =>
  cmd(16).u32(4, enable ? IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0).u32(8, hwptId);
// struct iommu_hwpt_get_dirty_bitmap { size @0, hwpt_id @4, flags @8, __reserved @12, iova u64 @16,
//   length u64 @24, page_size u64 @32, data u64 @40 } (48)
export const getDirtyBitmapCmd = (hwptId: number, iova: number | bigint, length: number | bigint, pageSize: number | bigint, data: number | bigint, flags = 0): Cmd =>
  cmd(48).u32(4, hwptId).u32(8, flags).u64(16, iova).u64(24, length).u64(32, pageSize).u64(40, data);

// VFIO compat structs (argsz model)
// struct vfio_iommu_type1_dma_map { argsz @0, flags @4, vaddr u64 @8, iova u64 @16, size u64 @24 } (32)
export const dmaMapCmd = (flags: number, vaddr: number | bigint, iova: number | bigint, size: number | bigint, argsz = 32): Cmd =>
  Cmd.of(vfio_iommu_type1_dma_map, { argsz, flags, vaddr, iova, size });
// struct vfio_iommu_type1_dma_unmap { argsz @0, flags @4, iova u64 @8, size u64 @16 } (24)
export const dmaUnmapCmd = (flags: number, iova: number | bigint, size: number | bigint, argsz = 24): Cmd =>
  cmd(24, argsz).u32(4, flags).u64(8, iova).u64(16, size);

// ---------------------------------------------------------------------------------------------
// A fixture: a kernel, a process, an open /dev/iommu.

export interface Fixture {
  kernel: Kernel;
  proc: Process;
  fd: number;
}

export async function openFixture(opts?: ProcessOptions): Promise<Fixture> {
  const kernel = await createKernel();
  const proc = kernel.createProcess(opts);
  const fd = proc.open("/dev/iommu", O_RDWR);
  expect(fd, "open(/dev/iommu)").toBeGreaterThanOrEqual(0);
  return { kernel, proc, fd };
}

/** teardown_iommufd: close must return 0, then nothing of the ctx may be left. */
export function teardown(fx: Fixture): void {
  expect(fx.proc.close(fx.fd)).toBe(0);
  expectNoLeaks(fx.kernel);
}

export function expectNoLeaks(kernel: Kernel): void {
  const s = kernel.stats();
  expect(s.iommufdObjects, "stats().iommufdObjects after close").toBe(0);
  expect(s.pinnedPages, "stats().pinnedPages after close").toBe(0);
}

/** Raw ioctl on an image; returns the raw result (>= 0 or -errno). */
export function io(fx: { proc: Process; fd: number }, req: number, c: Cmd): number {
  return fx.proc.ioctlBuf(fx.fd, req, c.buf);
}

export function ioasAlloc(fx: Fixture): number {
  const c = ioasAllocCmd();
  expect(io(fx, IOMMU_IOAS_ALLOC, c), "IOMMU_IOAS_ALLOC").toBe(0);
  const id = c.g32(8);
  expect(id).not.toBe(0);
  return id;
}

export function destroy(fx: Fixture, id: number): number {
  return io(fx, IOMMU_DESTROY, destroyCmd(id));
}

/** Fixed map; returns the raw rc. */
export function mapFixed(fx: Fixture, ioasId: number, userVa: number | bigint, length: number | bigint, iova: number | bigint, flags = RW): number {
  return io(fx, IOMMU_IOAS_MAP, mapCmd({ flags: flags | FIXED, ioasId, userVa, length, iova }));
}

/** Automatic-IOVA map; returns rc and the iova the kernel wrote back. */
export function mapAuto(fx: Fixture, ioasId: number, userVa: number | bigint, length: number | bigint, flags = RW): { rc: number; iova: bigint } {
  const c = mapCmd({ flags: flags & ~FIXED, ioasId, userVa, length });
  const rc = io(fx, IOMMU_IOAS_MAP, c);
  return { rc, iova: c.g64(32) };
}

export function unmap(fx: Fixture, ioasId: number, iova: number | bigint, length: number | bigint): { rc: number; length: bigint } {
  const c = unmapCmd(ioasId, iova, length);
  const rc = io(fx, IOMMU_IOAS_UNMAP, c);
  return { rc, length: c.g64(16) };
}

export function addReserved(fx: Fixture, ioasId: number, start: number | bigint, length: number | bigint): number {
  return io(fx, IOMMU_TEST_CMD, addReservedCmd(ioasId, start, length));
}

/** mmap(0, len, RW, MAP_SHARED|MAP_ANONYMOUS); mappings >= 2 MiB come back 2 MiB aligned. */
export function mmapAnon(proc: Process, length: number): number {
  const a = proc.mmap(0, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  expect(a, "mmap").toBeGreaterThan(0);
  return a;
}

/** The selftest's `buffer`: 16 pages, huge-page aligned (so IOVA alignment follows length). */
export function hugeAlignedBuffer(proc: Process): number {
  const a = mmapAnon(proc, HUGEPAGE_SIZE);
  expect(a % HUGEPAGE_SIZE, "2 MiB mmap is 2 MiB aligned").toBe(0);
  return a;
}

/** Writes an array of struct iommu_iova_range { start u64, last u64 } into user memory. */
export function writeRanges(proc: Process, at: number, ranges: [number | bigint, number | bigint][]): void {
  const c = new Cmd(Math.max(16, ranges.length * 16));
  ranges.forEach(([s, l], i) => { c.u64(i * 16, s); c.u64(i * 16 + 8, l); });
  expect(proc.writeMemory(at, c.buf)).toBe(0);
}

export function readRanges(proc: Process, at: number, n: number): [bigint, bigint][] {
  const c = new Cmd(n * 16);
  expect(proc.readMemory(at, c.buf)).toBe(0);
  const out: [bigint, bigint][] = [];
  for (let i = 0; i < n; i++) out.push([c.g64(i * 16), c.g64(i * 16 + 8)]);
  return out;
}

export function allowIovas(fx: Fixture, ioasId: number, scratch: number, ranges: [number | bigint, number | bigint][]): number {
  if (ranges.length) writeRanges(fx.proc, scratch, ranges);
  return io(fx, IOMMU_IOAS_ALLOW_IOVAS, allowIovasCmd(ioasId, ranges.length, scratch));
}

/** 1 << (ffs(x) - 1): the lowest set bit. */
export function lowBit(x: number): number { return x & -x; }

/**
 * The selftest's copy_sweep: IOMMU_IOAS_COPY of MOCK_PAGE_SIZE bytes from every 511th source
 * IOVA in [MOCK_APERTURE_START - PG, lastIova] of `srcIoasId` (mapped exactly over
 * [MOCK_APERTURE_START, lastIova]) to a fresh IOAS. A source range inside the mapping must copy
 * (and is unmapped again), one that pokes out must fail ENOENT. Returns the copies that succeeded.
 */
export function copySweep(fx: Fixture, srcIoasId: number, lastIova: number): number {
  const dst = ioasAlloc(fx);
  let n = 0;
  for (let iova = MOCK_APERTURE_START - PG; iova <= lastIova; iova += 511) {
    const c = copyCmd({ flags: FIXED | WRITE, dstIoasId: dst, srcIoasId, length: MOCK_PAGE_SIZE, srcIova: iova, dstIova: MOCK_APERTURE_START });
    const rc = io(fx, IOMMU_IOAS_COPY, c);
    if (iova < MOCK_APERTURE_START || iova + MOCK_PAGE_SIZE - 1 > lastIova) {
      if (rc !== -errno.ENOENT) expect(rc, `copy from ${iova}`).toBe(-errno.ENOENT);
    } else {
      if (rc !== 0) expect(rc, `copy from ${iova}`).toBe(0);
      expect(unmap(fx, dst, MOCK_APERTURE_START, MOCK_PAGE_SIZE).rc).toBe(0);
      n++;
    }
  }
  expect(destroy(fx, dst)).toBe(0);
  return n;
}

/**
 * IOMMU_IOAS_IOVA_RANGES with room for `num` entries at `at`: the rc, what the kernel wrote back
 * (num_iovas, out_iova_alignment) and the first `read` entries of the array (default `num`).
 */
export function iovaRanges(fx: Fixture, ioasId: number, at: number, num: number, read = num): { rc: number; num: number; alignment: bigint; ranges: [bigint, bigint][] } {
  const c = iovaRangesCmd(ioasId, num, at);
  const rc = io(fx, IOMMU_IOAS_IOVA_RANGES, c);
  return { rc, num: c.g32(8), alignment: c.g64(24), ranges: readRanges(fx.proc, at, read) };
}
