// Ports of the kernel's iommufd selftests (tools/testing/selftests/iommu/iommufd.c), the [plain]
// scenarios of CONFORMANCE.md §2a and the no_domain variant of §2b, run against the raw syscall
// layer of /dev/iommu. Paraphrased; titles are the kernel's FIXTURE.test ids.
// base_iova is 0 (no_domain). Tests that need an IOMMU_TEST_CMD op call enableTestCmd first.
// ioas.alloc_hwpt_nested, ioas.fork_gone and ioas.fork_present run in every variant, no_domain
// included, in mock_domain.test.ts.

import { describe, it, expect } from "vitest";
import { IOMMU_HW_QUEUE_ALLOC, IOMMU_VDEVICE_ALLOC, IOMMU_VEVENTQ_ALLOC, IOMMU_VIOMMU_ALLOC } from "./viommu_util.js";
import {
  errno, PG, MOCK_PAGE_SIZE, MOCK_APERTURE_START, BUFFER_SIZE, U64_MAX,
  IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_VFIO_IOAS,
  IOMMU_HWPT_ALLOC, IOMMU_GET_HW_INFO, IOMMU_HWPT_INVALIDATE, IOMMU_IOAS_CHANGE_PROCESS, IOMMU_TEST_CMD,
  IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET,
  FIXED, WRITE,
  Cmd, cmd, io, openFixture, teardown, expectNoLeaks, ioasAlloc, destroy, mapFixed, mapAuto, unmap,
  addReserved, allowIovas, lowBit, mmapAnon, copySweep, iovaRanges,
  destroyCmd, optionCmd, copyCmd, hwInfoCmd, mockDomainCmd,
} from "./util.js";
import { ioasFixture } from "../toolkit/iommufd.js";

// ---------------------------------------------------------------------------------------------
// FIXTURE iommufd

describe("FIXTURE iommufd", () => {
  it("iommufd.simple_close", async () => {
    const fx = await openFixture();
    teardown(fx);
  });

  it("iommufd.cmd_fail", async () => {
    const fx = await openFixture();
    // object id 0 never exists
    expect(io(fx, IOMMU_DESTROY, destroyCmd(0))).toBe(-errno.ENOENT);
    // a NULL argument: the size word cannot be read
    expect(fx.proc.ioctl(fx.fd, IOMMU_DESTROY, 0)).toBe(-errno.EFAULT);
    // _IO(';', IOMMUFD_CMD_BASE - 1) is nobody's command
    expect(io(fx, 0x3b7f, destroyCmd(0))).toBe(-errno.ENOTTY);
    teardown(fx);
  });

  // [name, ioctl, sizeof, offsetofend(last mandatory field), the result with every field zero]
  // The zero-field results: DESTROY id 0 -> ENOENT; GET_HW_INFO dev_id 0 -> ENOENT (flags and
  // __reserved are checked first, then the device lookup); HWPT_ALLOC: __reserved, then the
  // data_type/data_len pairing (NONE/0 is fine), then dev_id lookup -> ENOENT (before pt_id);
  // HWPT_INVALIDATE: __reserved, entry_num 0 skips the array checks, hwpt_id 0 -> ENOENT;
  // IOAS_ALLOC -> 0 (a new IOAS each time); IOVA_RANGES / ALLOW_IOVAS / UNMAP: ioas 0 -> ENOENT;
  // MAP / MAP_FILE / COPY: neither READABLE nor WRITEABLE -> EINVAL; OPTION: option 0 is
  // RLIMIT_MODE, op 0 is SET, which an unprivileged caller may not do -> EPERM; VFIO_IOAS op 0
  // is GET with no compat IOAS -> ENODEV; CHANGE_PROCESS with no areas -> 0.
  const STRUCTS: [string, number, number, number, number][] = [
    ["iommu_destroy", IOMMU_DESTROY, 8, 8, -errno.ENOENT],
    ["iommu_hw_info", IOMMU_GET_HW_INFO, 40, 32, -errno.ENOENT],
    ["iommu_hwpt_alloc", IOMMU_HWPT_ALLOC, 48, 24, -errno.ENOENT],
    ["iommu_hwpt_invalidate", IOMMU_HWPT_INVALIDATE, 32, 32, -errno.ENOENT],
    ["iommu_ioas_alloc", IOMMU_IOAS_ALLOC, 12, 12, 0],
    ["iommu_ioas_iova_ranges", IOMMU_IOAS_IOVA_RANGES, 32, 32, -errno.ENOENT],
    ["iommu_ioas_allow_iovas", IOMMU_IOAS_ALLOW_IOVAS, 24, 24, -errno.ENOENT],
    ["iommu_ioas_map", IOMMU_IOAS_MAP, 40, 40, -errno.EINVAL],
    ["iommu_ioas_copy", IOMMU_IOAS_COPY, 40, 40, -errno.EINVAL],
    ["iommu_ioas_unmap", IOMMU_IOAS_UNMAP, 24, 24, -errno.ENOENT],
    ["iommu_option", IOMMU_OPTION, 24, 24, -errno.EPERM],
    ["iommu_vfio_ioas", IOMMU_VFIO_IOAS, 12, 12, -errno.ENODEV],
    ["iommu_ioas_map_file", IOMMU_IOAS_MAP_FILE, 40, 40, -errno.EINVAL],
    // (zeroed: the DEFAULT vIOMMU type is refused; vIOMMU id 0 is no object)
    ["iommu_viommu_alloc", IOMMU_VIOMMU_ALLOC, 40, 24, -errno.EOPNOTSUPP],
    ["iommu_vdevice_alloc", IOMMU_VDEVICE_ALLOC, 24, 24, -errno.ENOENT],
    ["iommu_veventq_alloc", IOMMU_VEVENTQ_ALLOC, 32, 28, -errno.EOPNOTSUPP],
    // (not a row of mainline's table; zeroed, the DEFAULT HW queue type is refused first)
    ["iommu_hw_queue_alloc", IOMMU_HW_QUEUE_ALLOC, 40, 40, -errno.EOPNOTSUPP],
    ["iommu_ioas_change_process", IOMMU_IOAS_CHANGE_PROCESS, 8, 8, 0],
  ];

  it("iommufd.cmd_length", async () => {
    const fx = await openFixture();
    for (const [name, req, sizeofStruct, minSize, atSizeof] of STRUCTS) {
      // the struct followed by one extra byte
      const c = new Cmd(sizeofStruct + 1);
      c.u8(sizeofStruct, 0xff);
      c.size(minSize - 1);
      expect(io(fx, req, c), `${name}: size = min - 1`).toBe(-errno.EINVAL);
      c.size(sizeofStruct + 1);
      expect(io(fx, req, c), `${name}: size = sizeof + 1, tail 0xff`).toBe(-errno.E2BIG);
      c.size(sizeofStruct);
      expect(io(fx, req, c), `${name}: size = sizeof`).toBe(atSizeof);
      c.buf.fill(0);
      c.size(sizeofStruct + 1);
      expect(io(fx, req, c), `${name}: size = sizeof + 1, tail 0`).toBe(atSizeof);
    }
    teardown(fx);
  });

  it("iommufd.cmd_ex_fail", async () => {
    const fx = await openFixture();
    // struct iommu_destroy followed by a u64 "future" field
    const c = cmd(16).u32(4, 0);
    expect(io(fx, IOMMU_DESTROY, c)).toBe(-errno.ENOENT);
    c.u64(8, 1);
    expect(io(fx, IOMMU_DESTROY, c)).toBe(-errno.E2BIG);
    c.size(8);
    expect(io(fx, IOMMU_DESTROY, c)).toBe(-errno.ENOENT);
    c.size(7);
    expect(io(fx, IOMMU_DESTROY, c)).toBe(-errno.EINVAL);
    teardown(fx);
  });

  it("iommufd.global_options", async () => {
    // the kernel test runs as root: SET of RLIMIT_MODE needs CAP_SYS_RESOURCE
    const fx = await openFixture({ capSysResource: true });
    let c = optionCmd({ optionId: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, val64: 1 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(0);
    expect(c.g64(16)).toBe(0n);

    c = optionCmd({ optionId: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 1 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(0);
    c = optionCmd({ optionId: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 2 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(-errno.EINVAL);

    c = optionCmd({ optionId: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, val64: 2 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(0);
    expect(c.g64(16)).toBe(1n);

    c = optionCmd({ optionId: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 0 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(0);
    c = optionCmd({ optionId: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, val64: 7 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(0);
    expect(c.g64(16)).toBe(0n);

    // HUGE_PAGES is per IOAS: object_id 0 is no IOAS
    c = optionCmd({ optionId: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, val64: 0 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(-errno.ENOENT);
    c = optionCmd({ optionId: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, val64: 0 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(-errno.ENOENT);
    teardown(fx);
  });
});

// ---------------------------------------------------------------------------------------------
// FIXTURE iommufd_ioas, variant no_domain (base_iova = 0)


describe("FIXTURE iommufd_ioas (no_domain)", () => {
  it("ioas.ioas_auto_destroy", async () => {
    const fx = await ioasFixture();
    expect(fx.kernel.stats().iommufdObjects).toBe(1);
    teardown(fx);
  });

  it("ioas.ioas_destroy", async () => {
    const fx = await ioasFixture();
    expect(destroy(fx, fx.ioasId)).toBe(0);
    expect(destroy(fx, fx.ioasId)).toBe(-errno.ENOENT);
    teardown(fx);
  });

  it("ioas.ioas_area_destroy", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 0)).toBe(0);
    // areas do not hold the IOAS
    expect(destroy(fx, fx.ioasId)).toBe(0);
    teardown(fx);
  });

  it("ioas.ioas_area_auto_destroy", async () => {
    const fx = await ioasFixture();
    for (let i = 0; i < 10; i++) expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, i * PG)).toBe(0);
    teardown(fx);
  });

  it("ioas.hwpt_attach", async () => {
    // no_domain: there is no hwpt, so attaching a new mock device to hwpt id 0 fails on lookup
    const fx = await ioasFixture({ testCmd: true });
    expect(io(fx, IOMMU_TEST_CMD, mockDomainCmd(0))).toBe(-errno.ENOENT);
    teardown(fx);
  });

  it("ioas.get_hw_info", async () => {
    // no device: dev_id 0 is looked up and missing, whatever the buffer size
    const fx = await ioasFixture();
    const scratch = mmapAnon(fx.proc, PG);
    expect(io(fx, IOMMU_GET_HW_INFO, hwInfoCmd(0, 8, scratch))).toBe(-errno.ENOENT);
    expect(io(fx, IOMMU_GET_HW_INFO, hwInfoCmd(0, 16, scratch))).toBe(-errno.ENOENT);
    teardown(fx);
  });

  it("ioas.area (a)", async () => {
    const fx = await ioasFixture();
    for (let i = 0; i < 10; i++) expect(unmap(fx, fx.ioasId, i * PG, PG).rc).toBe(-errno.ENOENT);
    teardown(fx);
  });

  it("ioas.area (b)", async () => {
    const fx = await ioasFixture();
    for (let i = 0; i < 10; i++) expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, i * PG)).toBe(0);
    for (let i = 0; i < 10; i++) {
      const r = unmap(fx, fx.ioasId, i * PG, PG);
      expect(r.rc).toBe(0);
      expect(r.length).toBe(BigInt(PG));
    }
    teardown(fx);
  });

  it("ioas.area split", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 2 * PG, 16 * PG)).toBe(0);
    expect(unmap(fx, fx.ioasId, 16 * PG, PG).rc).toBe(-errno.ENOENT);
    expect(unmap(fx, fx.ioasId, 17 * PG, PG).rc).toBe(-errno.ENOENT);
    // the area is intact
    expect(unmap(fx, fx.ioasId, 16 * PG, 2 * PG)).toEqual({ rc: 0, length: BigInt(2 * PG) });
    teardown(fx);
  });

  it("ioas.area overmap", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 2 * PG, 16 * PG)).toBe(0);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 2 * PG, 16 * PG)).toBe(-errno.EEXIST);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 16 * PG)).toBe(-errno.EEXIST);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 17 * PG)).toBe(-errno.EEXIST);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 2 * PG, 15 * PG)).toBe(-errno.EEXIST);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 3 * PG, 15 * PG)).toBe(-errno.EEXIST);
    teardown(fx);
  });

  it("ioas.area (e)", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 2 * PG, 16 * PG)).toBe(0);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 40 * PG)).toBe(0);
    expect(unmap(fx, fx.ioasId, 0, U64_MAX)).toEqual({ rc: 0, length: BigInt(3 * PG) });
    // unmap-all of an empty IOAS succeeds and reports 0 bytes
    expect(unmap(fx, fx.ioasId, 0, U64_MAX)).toEqual({ rc: 0, length: 0n });
    teardown(fx);
  });

  it("ioas.unmap_fully_contained_areas", async () => {
    const fx = await ioasFixture();
    const base = 4 * PG;
    for (let i = 0; i < 4; i++) expect(mapFixed(fx, fx.ioasId, fx.buffer, 8 * PG, base + i * 16 * PG)).toBe(0);
    expect(unmap(fx, fx.ioasId, base - 4 * PG, 8 * PG).rc).toBe(-errno.ENOENT);
    expect(unmap(fx, fx.ioasId, base + 3 * 16 * PG + 8 * PG - 4 * PG, 8 * PG).rc).toBe(-errno.ENOENT);
    const r = unmap(fx, fx.ioasId, base - 4 * PG, 3 * 16 * PG + 8 * PG + 4 * PG);
    expect(r.rc).toBe(0);
    expect(r.length).toBe(BigInt(32 * PG));
    teardown(fx);
  });

  it("ioas.area_auto_iova (a)", async () => {
    const fx = await ioasFixture();
    const iovas: bigint[] = [];
    for (let i = 0; i < 10; i++) {
      const m = mapAuto(fx, fx.ioasId, fx.buffer, PG);
      expect(m.rc).toBe(0);
      iovas.push(m.iova);
    }
    expect(new Set(iovas).size).toBe(10);
    for (const iova of iovas) expect(unmap(fx, fx.ioasId, iova, PG).rc).toBe(0);
    teardown(fx);
  });

  it("ioas.area_auto_iova (b)", async () => {
    const fx = await ioasFixture();
    const iovas: bigint[] = [];
    for (let i = 0; i < 10; i++) {
      const length = PG * (i + 1);
      // an arbitrary VA the process never mapped: nothing is pinned without a domain
      const m = mapAuto(fx, fx.ioasId, 2 ** 31, length);
      expect(m.rc).toBe(0);
      expect(m.iova % BigInt(lowBit(length)), `length ${length}`).toBe(0n);
      iovas.push(m.iova);
    }
    for (let i = 0; i < 10; i++) expect(unmap(fx, fx.ioasId, iovas[i], PG * (i + 1)).rc).toBe(0);
    teardown(fx);
  });

  it("ioas.area_auto_iova (c)", async () => {
    const fx = await ioasFixture({ testCmd: true });
    const start = 4 * PG, len = 100 * PG;
    expect(addReserved(fx, fx.ioasId, start, len)).toBe(0);
    const iovas: bigint[] = [];
    for (let i = 0; i < 10; i++) {
      const length = PG * (i + 1);
      const m = mapAuto(fx, fx.ioasId, fx.buffer, length);
      expect(m.rc).toBe(0);
      expect(m.iova % BigInt(lowBit(length))).toBe(0n);
      const it0 = Number(m.iova);
      expect(it0 > start && it0 < start + len, `iova ${it0} inside the reserved range`).toBe(false);
      // and no byte of it may touch the reserved range
      expect(it0 + length <= start || it0 >= start + len).toBe(true);
      iovas.push(m.iova);
    }
    for (let i = 0; i < 10; i++) expect(unmap(fx, fx.ioasId, iovas[i], PG * (i + 1)).rc).toBe(0);
    teardown(fx);
  });

  it("ioas.area_auto_iova (d)", async () => {
    const fx = await ioasFixture({ testCmd: true });
    const scratch = mmapAnon(fx.proc, PG);
    expect(addReserved(fx, fx.ioasId, 4 * PG, 100 * PG)).toBe(0);
    // an allowed range may not intersect a reserved one
    expect(allowIovas(fx, fx.ioasId, scratch, [[PG, 600 * PG]])).toBe(-errno.EADDRINUSE);
    teardown(fx);
  });

  it("ioas.area_auto_iova (e)", async () => {
    const fx = await ioasFixture();
    const scratch = mmapAnon(fx.proc, PG);
    const first = 200 * PG, last = 600 * PG - 1;
    expect(allowIovas(fx, fx.ioasId, scratch, [[first, last]])).toBe(0);
    const iovas: bigint[] = [];
    for (let i = 0; i < 10; i++) {
      const length = PG * (i + 1);
      const m = mapAuto(fx, fx.ioasId, fx.buffer, length);
      expect(m.rc).toBe(0);
      const iova = Number(m.iova);
      expect(iova % lowBit(length)).toBe(0);
      expect(iova).toBeGreaterThanOrEqual(first);
      expect(iova).toBeLessThanOrEqual(last);
      expect(iova + length).toBeGreaterThan(first);
      expect(iova + length).toBeLessThanOrEqual(last + 1);
      iovas.push(m.iova);
    }
    for (let i = 0; i < 10; i++) expect(unmap(fx, fx.ioasId, iovas[i], PG * (i + 1)).rc).toBe(0);
    teardown(fx);
  });

  it("ioas.reserved_overflow", async () => {
    const fx = await ioasFixture({ testCmd: true });
    expect(addReserved(fx, fx.ioasId, 6, 0xffffffffffff8001n)).toBe(0);
    expect(mapAuto(fx, fx.ioasId, fx.buffer, 0x5000).rc).toBe(-errno.ENOSPC);
    expect(unmap(fx, fx.ioasId, 0, U64_MAX)).toEqual({ rc: 0, length: 0n });
    teardown(fx);
  });

  it("ioas.area_allowed", async () => {
    const fx = await ioasFixture({ testCmd: true });
    const scratch = mmapAnon(fx.proc, PG);
    // a reserved range may not intersect an allowed one
    expect(allowIovas(fx, fx.ioasId, scratch, [[0, 600 * PG]])).toBe(0);
    expect(addReserved(fx, fx.ioasId, PG, PG)).toBe(-errno.EADDRINUSE);
    // clearing the allowed list lets it in
    expect(allowIovas(fx, fx.ioasId, scratch, [])).toBe(0);
    expect(addReserved(fx, fx.ioasId, PG, PG)).toBe(0);
    // and now the allowed range may not intersect the reserved one
    expect(allowIovas(fx, fx.ioasId, scratch, [[0, 600 * PG]])).toBe(-errno.EADDRINUSE);
    teardown(fx);
  });

  it("ioas.copy_area", async () => {
    const fx = await ioasFixture();
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, 0)).toBe(0);
    // inside one IOAS
    let c = copyCmd({ flags: FIXED | WRITE, dstIoasId: fx.ioasId, srcIoasId: fx.ioasId, length: PG, srcIova: 0, dstIova: PG });
    expect(io(fx, IOMMU_IOAS_COPY, c)).toBe(0);
    // between IOASes
    const dst = ioasAlloc(fx);
    c = copyCmd({ flags: FIXED | WRITE, dstIoasId: dst, srcIoasId: fx.ioasId, length: PG, srcIova: 0, dstIova: 0 });
    expect(io(fx, IOMMU_IOAS_COPY, c)).toBe(0);
    expect(unmap(fx, dst, 0, PG)).toEqual({ rc: 0, length: BigInt(PG) });
    expect(unmap(fx, fx.ioasId, PG, PG)).toEqual({ rc: 0, length: BigInt(PG) });
    teardown(fx);
  });

  it("ioas.iova_ranges", async () => {
    const fx = await ioasFixture({ testCmd: true });
    const ranges = fx.buffer; // the selftest reads the ranges into `buffer`
    const cap = BUFFER_SIZE / 16;
    expect(iovaRanges(fx, fx.ioasId, ranges, cap, 1)).toMatchObject({ rc: 0, num: 1, alignment: 1n, ranges: [[0n, U64_MAX]] });

    // too small: EMSGSIZE, the count written back, the array untouched
    expect(fx.proc.writeMemory(ranges, new Uint8Array(BUFFER_SIZE))).toBe(0);
    expect(iovaRanges(fx, fx.ioasId, ranges, 0, 1)).toMatchObject({ rc: -errno.EMSGSIZE, num: 1, ranges: [[0n, 0n]] });

    // a reserved page splits the space in two
    expect(addReserved(fx, fx.ioasId, PG, PG)).toBe(0);
    expect(iovaRanges(fx, fx.ioasId, ranges, cap, 2)).toMatchObject({ rc: 0, num: 2, ranges: [[0n, BigInt(PG - 1)], [BigInt(2 * PG), U64_MAX]] });

    // room for one of two: the first is filled in, the second is not written
    expect(fx.proc.writeMemory(ranges, new Uint8Array(BUFFER_SIZE))).toBe(0);
    expect(iovaRanges(fx, fx.ioasId, ranges, 1, 2)).toMatchObject({ rc: -errno.EMSGSIZE, num: 2, ranges: [[0n, BigInt(PG - 1)], [0n, 0n]] });
    teardown(fx);
  });

  it("ioas.ioas_option_huge_pages", async () => {
    const fx = await ioasFixture();
    let c = optionCmd({ optionId: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, objectId: fx.ioasId, val64: 3 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(0);
    expect(c.g64(16)).toBe(1n);
    c = optionCmd({ optionId: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, objectId: fx.ioasId, val64: 0 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(0);
    c = optionCmd({ optionId: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, objectId: fx.ioasId, val64: 3 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(0);
    expect(c.g64(16)).toBe(0n);
    c = optionCmd({ optionId: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, objectId: fx.ioasId, val64: 2 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(-errno.EINVAL);
    c = optionCmd({ optionId: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, objectId: fx.ioasId, val64: 1 });
    expect(io(fx, IOMMU_OPTION, c)).toBe(0);
    teardown(fx);
  });

  it("ioas.ioas_iova_alloc", async () => {
    // no domain: alignment 1, every length (even sub-page) can be placed
    const fx = await ioasFixture();
    for (let length = 1; length !== PG * 2; length++) {
      const m = mapAuto(fx, fx.ioasId, fx.buffer, length);
      if (m.rc !== 0) expect(m.rc, `map length ${length}`).toBe(0);
      const u = unmap(fx, fx.ioasId, m.iova, length);
      if (u.rc !== 0) expect(u.rc, `unmap length ${length}`).toBe(0);
    }
    teardown(fx);
  });

  it("ioas.ioas_align_change", async () => {
    const fx = await ioasFixture();
    const set = (v: number) =>
      io(fx, IOMMU_OPTION, optionCmd({ optionId: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, objectId: fx.ioasId, val64: v }));
    // PAGE_SIZE alignment can be required while everything is page aligned
    expect(mapFixed(fx, fx.ioasId, fx.buffer, PG, MOCK_APERTURE_START)).toBe(0);
    expect(set(0)).toBe(0);
    // then a VA with a sub-page offset is refused at map time
    expect(mapFixed(fx, fx.ioasId, fx.buffer + MOCK_PAGE_SIZE, PG, MOCK_APERTURE_START + PG)).toBe(-errno.EINVAL);
    expect(set(0)).toBe(0);
    // back to byte alignment
    expect(set(1)).toBe(0);
    expect(mapFixed(fx, fx.ioasId, fx.buffer + MOCK_PAGE_SIZE, PG, MOCK_APERTURE_START + PG)).toBe(0);
    // raising the alignment now fails: an area is not page aligned
    expect(set(0)).toBe(-errno.EADDRINUSE);
    expect(unmap(fx, fx.ioasId, MOCK_APERTURE_START + PG, PG).rc).toBe(0);
    expect(unmap(fx, fx.ioasId, MOCK_APERTURE_START, PG).rc).toBe(0);
    teardown(fx);
  });

  it("ioas.copy_sweep", async () => {
    const fx = await ioasFixture();
    const lastIova = MOCK_APERTURE_START + BUFFER_SIZE - 2; // no_domain maps BUFFER_SIZE - 1 bytes
    expect(mapFixed(fx, fx.ioasId, fx.buffer, lastIova - MOCK_APERTURE_START + 1, MOCK_APERTURE_START)).toBe(0);
    // Source IOVAs START - PG + 511k: k = 9..132 lie inside the mapping.
    expect(copySweep(fx, fx.ioasId, lastIova)).toBe(124);
    teardown(fx);
  });
});

// A cheap cross-check that the fixtures above leave nothing behind even without teardown().
describe("leak check", () => {
  it("closing the iommufd with areas in two IOASes frees every object", async () => {
    const fx = await ioasFixture();
    const other = ioasAlloc(fx);
    expect(mapFixed(fx, fx.ioasId, fx.buffer, 4 * PG, 0)).toBe(0);
    expect(mapAuto(fx, other, fx.buffer, 4 * PG).rc).toBe(0);
    expect(fx.kernel.stats().iommufdObjects).toBe(2);
    fx.proc.kill();
    expectNoLeaks(fx.kernel);
  });
});
