// Isolation between processes (issue 14): one process's iommufd object ids, IOAS contents, fds
// and memory are out of reach of another. Each test tries, and asserts the errno the kernel
// gives: object ids live in the xarray of one iommufd context (struct iommufd_ctx), so an id
// from another context is unknown (ENOENT); fds index one process's table, so a number from
// another process, or a closed one, is EBADF; user pointers are resolved in the caller's own
// mm (EFAULT where it has nothing); a FileRef names a gate slot and its generation, and a
// closed file's generation never comes back.

import { describe, it, expect } from "vitest";
import {
  createKernel, errno, O_RDWR, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_ANONYMOUS, MAP_FIXED,
  type Kernel, type Process,
} from "../src/index.js";
import { attachWorker } from "../src/worker.js";
import { enableTestCmd } from "../src/testing.js";
import {
  Cmd, PG, RW, FIXED, IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, IOMMU_IOAS_IOVA_RANGES,
  IOMMU_HWPT_ALLOC, IOMMU_GET_HW_INFO, IOMMU_TEST_CMD, IOMMU_IOAS_CHANGE_PROCESS, IOMMU_IOAS_MAP_FILE,
  MOCK_APERTURE_START, destroyCmd, ioasAllocCmd, mapCmd, unmapCmd, iovaRangesCmd, hwptAllocCmd, hwInfoCmd,
  mockDomainCmd, checkMapCmd, createAccessCmd, accessPagesCmd, accessRwCmd, changeProcessCmd, mapFileCmd,
} from "./iommufd/util.js";
import { bind, attach, openDev, openIommufd, ioasMapArg, VFIO_DEVICE_BIND_IOMMUFD, bindArg } from "./vfio/util.js";
import { setContainer } from "./vfio/legacy_util.js";
import { anon, pattern } from "./toolkit/memory.js";

const BUF = 64 * 1024;
const IOVA = MOCK_APERTURE_START;
/** vfio-pci's config region: index 7 << VFIO_PCI_OFFSET_SHIFT (40). */
const CONFIG_OFFSET = 7 * 2 ** 40;

const ioctl = (p: Process, fd: number, req: number, c: Cmd): number => p.ioctlBuf(fd, req, c.buf);


function ioasAlloc(p: Process, fd: number): number {
  const c = ioasAllocCmd();
  expect(ioctl(p, fd, IOMMU_IOAS_ALLOC, c), "IOAS_ALLOC").toBe(0);
  return c.g32(8);
}

/** MOCK_DOMAIN on `ioasId`: { stdev, hwpt, idev }. */
function mockDomain(p: Process, fd: number, ioasId: number): { stdev: number; hwpt: number; idev: number } {
  const c = mockDomainCmd(ioasId);
  expect(ioctl(p, fd, IOMMU_TEST_CMD, c), "MOCK_DOMAIN").toBe(0);
  return { stdev: c.g32(16), hwpt: c.g32(20), idev: c.g32(24) };
}


/**
 * Process A: /dev/iommu, an IOAS with a mock domain, BUF bytes of a pattern mapped at IOVA, and
 * an access (IOMMU_TEST_CMD CREATE_ACCESS) on the IOAS.
 */
function processA(kernel: Kernel) {
  const p = kernel.createProcess({ capIpcLock: true });
  const fd = p.open("/dev/iommu", O_RDWR);
  expect(fd).toBeGreaterThanOrEqual(0);
  const ioas = ioasAlloc(p, fd);
  const dom = mockDomain(p, fd, ioas);
  const buf = anon(p, BUF, MAP_SHARED);
  expect(p.writeMemory(buf, pattern(BUF, 1))).toBe(0);
  expect(ioctl(p, fd, IOMMU_IOAS_MAP, mapCmd({ flags: RW | FIXED, ioasId: ioas, userVa: buf, length: BUF, iova: IOVA }))).toBe(0);
  const acc = createAccessCmd(ioas, 0);
  expect(ioctl(p, fd, IOMMU_TEST_CMD, acc)).toBe(0);
  const accessFd = acc.g32(16);
  return { p, fd, ioas, ...dom, buf, accessFd };
}

type A = ReturnType<typeof processA>;

/** A's objects are intact: its mapping is in its domain page for page, and access reads it. */
function expectAIntact(a: A): void {
  expect(ioctl(a.p, a.fd, IOMMU_TEST_CMD, checkMapCmd(a.hwpt, IOVA, BUF, a.buf)), "MD_CHECK_MAP in A").toBe(0);
  const tmp = anon(a.p, PG, MAP_SHARED);
  expect(ioctl(a.p, a.fd, IOMMU_TEST_CMD, accessRwCmd(a.accessFd, IOVA + 16, 32, tmp))).toBe(0);
  const got = new Uint8Array(32);
  expect(a.p.readMemory(tmp, got)).toBe(0);
  expect(got).toEqual(pattern(BUF, 1).subarray(16, 48));
  expect(a.p.munmap(tmp, PG)).toBe(0);
  const r = iovaRangesCmd(a.ioas, 0, 0);
  expect(ioctl(a.p, a.fd, IOMMU_IOAS_IOVA_RANGES, r), "IOVA_RANGES in A (EMSGSIZE: count only)").toBe(-errno.EMSGSIZE);
}

async function selftestKernel(): Promise<Kernel> {
  const kernel = await createKernel({ memoryBytes: 64 << 20 });
  enableTestCmd(kernel);
  return kernel;
}

function expectClean(kernel: Kernel): void {
  const s = kernel.stats();
  expect(s.iommufdObjects).toBe(0);
  expect(s.iommufdContexts).toBe(0);
  expect(s.pinnedPages).toBe(0);
  expect(s.openFiles).toBe(0);
}

describe("iommufd object ids are per context", () => {
  it("B's own /dev/iommu knows none of A's ids: DESTROY, IOAS_MAP, IOAS_UNMAP, IOVA_RANGES, HWPT_ALLOC, GET_HW_INFO give ENOENT", async () => {
    const kernel = await selftestKernel();
    const framesAtBoot = kernel.stats().framesFree;
    const a = processA(kernel);
    const b = kernel.createProcess();
    const bfd = b.open("/dev/iommu", O_RDWR);
    expect(bfd).toBeGreaterThanOrEqual(0);
    const bbuf = anon(b, BUF, MAP_SHARED);
    const ids = [a.ioas, a.stdev, a.hwpt, a.idev];
    expect(new Set(ids).size).toBe(4);
    for (const id of ids) {
      expect(ioctl(b, bfd, IOMMU_IOAS_MAP, mapCmd({ flags: RW | FIXED, ioasId: id, userVa: bbuf, length: BUF, iova: IOVA })), `MAP ${id}`).toBe(-errno.ENOENT);
      expect(ioctl(b, bfd, IOMMU_IOAS_UNMAP, unmapCmd(id, IOVA, BUF)), `UNMAP ${id}`).toBe(-errno.ENOENT);
      expect(ioctl(b, bfd, IOMMU_IOAS_IOVA_RANGES, iovaRangesCmd(id, 0, 0)), `IOVA_RANGES ${id}`).toBe(-errno.ENOENT);
      // iommufd_get_device(dev_id) first: B has no device by any number
      expect(ioctl(b, bfd, IOMMU_HWPT_ALLOC, hwptAllocCmd({ devId: id, ptId: a.ioas })), `HWPT_ALLOC dev ${id}`).toBe(-errno.ENOENT);
      expect(ioctl(b, bfd, IOMMU_GET_HW_INFO, hwInfoCmd(id, 0, 0)), `GET_HW_INFO ${id}`).toBe(-errno.ENOENT);
      expect(ioctl(b, bfd, IOMMU_DESTROY, destroyCmd(id)), `DESTROY ${id}`).toBe(-errno.ENOENT);
    }
    expect(kernel.stats().iommufdObjects, "B destroyed nothing of A's").toBeGreaterThanOrEqual(4);
    expectAIntact(a);
    // the object ids A still resolves: destroying its own IOAS is EBUSY (the domain holds it)
    expect(ioctl(a.p, a.fd, IOMMU_DESTROY, destroyCmd(a.ioas))).toBe(-errno.EBUSY);
    b.kill();
    a.p.kill();
    expectClean(kernel);
    expect(kernel.stats().framesFree).toBe(framesAtBoot);
    await kernel.close();
  });

  it("B's ids collide with A's numbers but name B's objects: B's unmap of A's IOVA is ENOENT, A's mapping stays", async () => {
    const kernel = await selftestKernel();
    const a = processA(kernel);
    const b = kernel.createProcess({ capIpcLock: true });
    const bfd = b.open("/dev/iommu", O_RDWR);
    const bIoas = ioasAlloc(b, bfd);
    expect(bIoas, "B's first IOAS gets A's number").toBe(a.ioas);
    const bDom = mockDomain(b, bfd, bIoas);
    expect([bDom.stdev, bDom.hwpt, bDom.idev]).toEqual([a.stdev, a.hwpt, a.idev]);
    // B's IOAS has nothing at IOVA: iopt_unmap_iova finds no area
    const u = unmapCmd(bIoas, IOVA, BUF);
    expect(ioctl(b, bfd, IOMMU_IOAS_UNMAP, u)).toBe(-errno.ENOENT);
    // unmap-all (0, U64_MAX) in B: unmaps nothing, and says so with 0 bytes
    const all = unmapCmd(bIoas, 0, 0xffff_ffff_ffff_ffffn);
    expect(ioctl(b, bfd, IOMMU_IOAS_UNMAP, all)).toBe(0);
    expect(all.g64(16)).toBe(0n);
    // MD_CHECK_MAP pins its uptr in the caller's mm: A's buffer address is nothing in B
    expect(ioctl(b, bfd, IOMMU_TEST_CMD, checkMapCmd(bDom.hwpt, IOVA, PG, a.buf))).toBe(-errno.EFAULT);
    // B's domain of the same hwpt number has nothing at IOVA: the check fails there
    const bbuf = anon(b, BUF, MAP_SHARED);
    expect(ioctl(b, bfd, IOMMU_TEST_CMD, checkMapCmd(bDom.hwpt, IOVA, PG, bbuf))).toBe(-errno.EINVAL);
    // B's own map at the same IOVA of its own pages lives beside A's
    expect(b.writeMemory(bbuf, pattern(BUF, 99))).toBe(0);
    expect(ioctl(b, bfd, IOMMU_IOAS_MAP, mapCmd({ flags: RW | FIXED, ioasId: bIoas, userVa: bbuf, length: BUF, iova: IOVA }))).toBe(0);
    expect(ioctl(b, bfd, IOMMU_TEST_CMD, checkMapCmd(bDom.hwpt, IOVA, BUF, bbuf))).toBe(0);
    expectAIntact(a);
    // B destroying "its" ids tears down B's objects only
    expect(ioctl(b, bfd, IOMMU_IOAS_UNMAP, unmapCmd(bIoas, IOVA, BUF))).toBe(0);
    expect(ioctl(b, bfd, IOMMU_DESTROY, destroyCmd(bDom.stdev))).toBe(0);
    expect(ioctl(b, bfd, IOMMU_DESTROY, destroyCmd(bIoas))).toBe(0);
    expectAIntact(a);
    // A's unmap takes exactly its BUF bytes back
    const ua = unmapCmd(a.ioas, IOVA, BUF);
    expect(ioctl(a.p, a.fd, IOMMU_IOAS_UNMAP, ua)).toBe(0);
    expect(ua.g64(16)).toBe(BigInt(BUF));
    b.kill();
    a.p.kill();
    expectClean(kernel);
    await kernel.close();
  });

  it("A's access fd and access pages are A's: in B the number is not a selftest access file (EBADFD)", async () => {
    const kernel = await selftestKernel();
    const a = processA(kernel);
    const b = kernel.createProcess({ capIpcLock: true });
    const tmp = anon(b, PG, MAP_SHARED);
    // no file at that number in B yet: fget fails, iommufd_access_get says EBADFD
    const bfd = b.open("/dev/iommu", O_RDWR);
    expect(bfd).toBeLessThan(a.accessFd);
    const rw = accessRwCmd(a.accessFd, IOVA, 32, tmp);
    expect(ioctl(b, bfd, IOMMU_TEST_CMD, rw)).toBe(-errno.EBADFD);
    expect(ioctl(b, bfd, IOMMU_TEST_CMD, accessPagesCmd(a.accessFd, IOVA, PG, tmp))).toBe(-errno.EBADFD);
    // B's fd of that number is its /dev/iommu, a file of another kind: EBADFD too
    const bIoas = ioasAlloc(b, bfd);
    while (b.open("/dev/iommu", O_RDWR) < a.accessFd) { /* fill B's table up to A's number */ }
    expect(b.file(a.accessFd)?.ops.kind).toBe("iommufd");
    expect(ioctl(b, bfd, IOMMU_TEST_CMD, accessRwCmd(a.accessFd, IOVA, 32, tmp))).toBe(-errno.EBADFD);
    // B's own access reaches only B's IOAS, where nothing is at IOVA (iommufd_access_rw: ENOENT)
    const acc = createAccessCmd(bIoas, 0);
    expect(ioctl(b, bfd, IOMMU_TEST_CMD, acc)).toBe(0);
    expect(ioctl(b, bfd, IOMMU_TEST_CMD, accessRwCmd(acc.g32(16), IOVA, 32, tmp))).toBe(-errno.ENOENT);
    expectAIntact(a);
    b.kill();
    a.p.kill();
    expectClean(kernel);
    await kernel.close();
  });
});

describe("fds are per process", () => {
  it("a closed fd is EBADF, in B too when A's number was never B's, and a reused number is the new file", async () => {
    const kernel = await selftestKernel();
    const a = kernel.createProcess();
    const b = kernel.createProcess();
    const afd = a.open("/dev/iommu", O_RDWR);
    const ioas = ioasAlloc(a, afd);
    // B has no fd by A's number
    expect(b.ioctlBuf(afd, IOMMU_IOAS_ALLOC, ioasAllocCmd().buf)).toBe(-errno.EBADF);
    expect(b.close(afd)).toBe(-errno.EBADF);
    expect(b.fileRef(afd)).toBe(-errno.EBADF);
    // A closes: the number is dead in A
    expect(a.close(afd)).toBe(0);
    expect(a.ioctlBuf(afd, IOMMU_IOAS_IOVA_RANGES, iovaRangesCmd(ioas, 0, 0).buf)).toBe(-errno.EBADF);
    expect(kernel.stats().iommufdContexts).toBe(0);
    // B opens its own iommufd at that number: A's number still names nothing in A
    expect(b.open("/dev/iommu", O_RDWR)).toBe(afd);
    expect(a.ioctlBuf(afd, IOMMU_IOAS_IOVA_RANGES, iovaRangesCmd(ioas, 0, 0).buf)).toBe(-errno.EBADF);
    // and B's file of that number is a fresh context: A's old IOAS id is unknown there
    expect(b.ioctlBuf(afd, IOMMU_IOAS_IOVA_RANGES, iovaRangesCmd(ioas, 0, 0).buf)).toBe(-errno.ENOENT);
    // A reuses the number for an eventfd: no ioctl there (vfs_ioctl: ENOTTY)
    expect(a.eventfd(0)).toBe(afd);
    expect(a.ioctlBuf(afd, IOMMU_IOAS_IOVA_RANGES, iovaRangesCmd(ioas, 0, 0).buf)).toBe(-errno.ENOTTY);
    a.kill();
    b.kill();
    expectClean(kernel);
    await kernel.close();
  });

  it("B's fd numbers passed as the iommufd of a BIND or the container of SET_CONTAINER are resolved in B (EBADF, EBADFD)", async () => {
    const kernel = await createKernel({ memoryBytes: 64 << 20, devices: [{ bdf: "0000:00:04.0", model: "memcpy", iommuGroup: 3 }, { bdf: "0000:00:05.0", model: "memcpy", iommuGroup: 4 }] });
    const a = kernel.createProcess();
    const b = kernel.createProcess();
    const ad = openDev(a, 0);
    const ai = openIommufd(a);
    const ac = a.open("/dev/vfio/vfio", O_RDWR);
    expect(bind(a, ad, ai)).toBeGreaterThan(0);
    const bd = openDev(b, 1);
    expect(bd).toBe(ad);
    // B has nothing at A's iommufd number: iommufd_ctx_from_fd's fget fails
    expect(b.ioctlBuf(bd, VFIO_DEVICE_BIND_IOMMUFD, bindArg(ai))).toBe(-errno.EBADF);
    // B's number is its own device file, not an iommufd: EBADFD
    expect(b.ioctlBuf(bd, VFIO_DEVICE_BIND_IOMMUFD, bindArg(bd))).toBe(-errno.EBADFD);
    const bg = b.open("/dev/vfio/4", O_RDWR);
    expect(bg).toBeGreaterThanOrEqual(0);
    expect(ac).toBeGreaterThan(bg);
    expect(setContainer(b, bg, ac)).toBe(-errno.EBADF);
    a.kill();
    b.kill();
    expect(kernel.stats().openFiles).toBe(0);
    await kernel.close();
  });

  it("a device file bound in A cannot be bound again from B (vfio_df_open: EINVAL), its group not opened (EBUSY)", async () => {
    const kernel = await createKernel({ memoryBytes: 64 << 20, devices: [{ bdf: "0000:00:04.0", model: "memcpy", iommuGroup: 3 }] });
    const a = kernel.createProcess();
    const b = kernel.createProcess();
    const ad = openDev(a);
    const ai = openIommufd(a);
    expect(bind(a, ad, ai)).toBe(1);
    const bd = openDev(b);
    const bi = openIommufd(b);
    expect(bind(b, bd, bi)).toBe(-errno.EINVAL);
    // the cdev is bound: the group cannot be used (vfio_group_fops_open, the device's open count)
    const bg = b.open("/dev/vfio/3", O_RDWR);
    expect(bg).toBe(-errno.EBUSY);
    a.kill();
    // A is gone: B may bind now
    expect(bind(b, bd, bi)).toBe(1);
    b.kill();
    expect(kernel.stats().openFiles).toBe(0);
    await kernel.close();
  });
});

describe("device DMA reaches only the binding process's memory", () => {
  it("the device attached in A reads and writes A's pages; B's page at the same virtual address is untouched", async () => {
    const kernel = await createKernel({ memoryBytes: 64 << 20, devices: [{ bdf: "0000:00:04.0", model: "memcpy" }] });
    const framesAtBoot = kernel.stats().framesFree;
    const a = kernel.createProcess();
    const b = kernel.createProcess();
    const ad = openDev(a);
    const ai = openIommufd(a);
    expect(bind(a, ad, ai)).toBe(1);
    const ioas = ioasAlloc(a, ai);
    expect(attach(a, ad, ioas), "ATTACH (out_pt_id: the auto domain)").toBeGreaterThan(ioas);
    const va = anon(a, BUF, MAP_SHARED);
    const vb = b.mmap(va, BUF, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(vb, "B maps the same virtual address").toBe(va);
    expect(a.writeMemory(va, pattern(BUF, 3))).toBe(0);
    expect(b.writeMemory(vb, pattern(BUF, 200))).toBe(0);
    expect(a.ioctlBuf(ai, IOMMU_IOAS_MAP, ioasMapArg(ioas, va, BUF, 0x100000))).toBe(0);
    const dev = kernel.device("0000:00:04.0")!;
    const got = new Uint8Array(BUF);
    expect(dev.dmaRead(0x100000, got)).toBe(0);
    expect(got).toEqual(pattern(BUF, 3));
    expect(dev.dmaWrite(0x100000 + PG, new Uint8Array(PG).fill(0xee))).toBe(0);
    const pa = new Uint8Array(PG);
    expect(a.readMemory(va + PG, pa)).toBe(0);
    expect(pa).toEqual(new Uint8Array(PG).fill(0xee));
    const pb = new Uint8Array(BUF);
    expect(b.readMemory(vb, pb)).toBe(0);
    expect(pb, "B's memory unchanged").toEqual(pattern(BUF, 200));
    // B cannot reach the device's IOVA space through B's own (empty) IOAS of the same number
    const bi = openIommufd(b);
    expect(ioasAlloc(b, bi)).toBe(1); // A's id 1 is its device
    expect(ioasAlloc(b, bi), "B's second IOAS has the number of A's").toBe(ioas);
    expect(b.ioctlBuf(bi, IOMMU_IOAS_UNMAP, unmapCmd(ioas, 0x100000, BUF).buf)).toBe(-errno.ENOENT);
    expect(dev.dmaRead(0x100000, got)).toBe(0);
    b.kill();
    a.kill();
    expectClean(kernel);
    expect(kernel.stats().framesFree).toBe(framesAtBoot);
    await kernel.close();
  });
});

describe("FileRef after close and slot reuse", () => {
  it("a worker's FileRef to A's closed device file gets EBADF, though B's new file has the same gate slot", async () => {
    const kernel = await createKernel({ memoryBytes: 64 << 20, devices: [{ bdf: "0000:00:04.0", model: "memcpy" }] });
    const ctx = await attachWorker(kernel.workerInit());
    const a = kernel.createProcess();
    const b = kernel.createProcess();
    const ai = openIommufd(a);
    const ad = openDev(a);
    expect(bind(a, ad, ai)).toBe(1);
    const ref = a.fileRef(ad);
    if (typeof ref === "number") throw new Error("fileRef");
    const id = new Uint8Array(4);
    expect(ctx.file(ref).pread(id, CONFIG_OFFSET)).toBe(4);
    expect(new DataView(id.buffer).getUint16(0, true)).toBe(0x1b36);
    expect(a.close(ad)).toBe(0);
    expect(ctx.file(ref).pread(id, CONFIG_OFFSET)).toBe(-errno.EBADF);
    // B opens the same device: its file takes the lowest free gate slot, the one A's had
    const bi = openIommufd(b);
    const bd = openDev(b);
    const ref2 = b.fileRef(bd);
    if (typeof ref2 === "number") throw new Error("fileRef");
    expect(ref2.slot).not.toBe(ref.slot); // B's iommufd took the freed slot first
    expect(b.close(bi)).toBe(0);
    expect(b.close(bd)).toBe(0);
    const bd2 = openDev(b);
    const ref3 = b.fileRef(bd2);
    if (typeof ref3 === "number") throw new Error("fileRef");
    const bi2 = openIommufd(b);
    expect(bind(b, bd2, bi2)).toBe(1);
    expect(ref3.slot, "B's device file reuses A's old slot").toBe(ref.slot);
    expect(ref3.gen).not.toBe(ref.gen);
    expect(ctx.file(ref3).pread(id, CONFIG_OFFSET)).toBe(4);
    expect(ctx.file(ref).pread(id, CONFIG_OFFSET), "A's stale ref does not reach B's file").toBe(-errno.EBADF);
    expect(ctx.file(ref).pwrite(new Uint8Array(4), CONFIG_OFFSET)).toBe(-errno.EBADF);
    // A reuses its fd number for another file: the number's old FileRef is still dead
    expect(a.eventfd(0)).toBe(ad);
    expect(ctx.file(ref).pread(id, CONFIG_OFFSET)).toBe(-errno.EBADF);
    expect(a.fileRef(ad)).not.toEqual(ref);
    ctx.detach();
    a.kill();
    b.kill();
    expect(kernel.stats().openFiles).toBe(0);
    await kernel.close();
  });
});

describe("fork: the child's fds are the parent's open files", () => {
  it("the child reaches the same iommufd context through an inherited fd; its close and exit leave the parent's intact", async () => {
    const kernel = await selftestKernel();
    const framesAtBoot = kernel.stats().framesFree;
    const a = processA(kernel);
    const child = a.p.fork();
    if (typeof child === "number") throw new Error(`fork: ${child}`);
    // same struct file, same ctx: A's ids resolve in the child (sharing the kernel way)
    expect(ioctl(child, a.fd, IOMMU_IOAS_IOVA_RANGES, iovaRangesCmd(a.ioas, 0, 0))).toBe(-errno.EMSGSIZE);
    const cIoas = ioasAlloc(child, a.fd);
    expect(ioctl(a.p, a.fd, IOMMU_DESTROY, destroyCmd(cIoas)), "the child's IOAS is in the parent's ctx").toBe(0);
    // the child's copy of the fd table: closing its fd leaves the parent's
    expect(child.close(a.fd)).toBe(0);
    expect(ioctl(child, a.fd, IOMMU_IOAS_IOVA_RANGES, iovaRangesCmd(a.ioas, 0, 0))).toBe(-errno.EBADF);
    expectAIntact(a);
    child.kill();
    expectAIntact(a);
    a.p.kill();
    expectClean(kernel);
    expect(kernel.stats().framesFree).toBe(framesAtBoot);
    await kernel.close();
  });

  it("a private mapping pinned by the parent stays the parent's: device DMA after fork is not seen by the child", async () => {
    const kernel = await createKernel({ memoryBytes: 64 << 20, devices: [{ bdf: "0000:00:04.0", model: "memcpy" }] });
    const a = kernel.createProcess();
    const ad = openDev(a);
    const ai = openIommufd(a);
    expect(bind(a, ad, ai)).toBe(1);
    const ioas = ioasAlloc(a, ai);
    expect(attach(a, ad, ioas), "ATTACH (out_pt_id: the auto domain)").toBeGreaterThan(ioas);
    const va = anon(a, BUF);
    expect(a.writeMemory(va, pattern(BUF, 5))).toBe(0);
    expect(a.ioctlBuf(ai, IOMMU_IOAS_MAP, ioasMapArg(ioas, va, BUF, 0x100000))).toBe(0);
    const child = a.fork();
    if (typeof child === "number") throw new Error(`fork: ${child}`);
    const dev = kernel.device("0000:00:04.0")!;
    expect(dev.dmaWrite(0x100000, new Uint8Array(PG).fill(0x77))).toBe(0);
    const pa = new Uint8Array(PG);
    const pc = new Uint8Array(PG);
    expect(a.readMemory(va, pa)).toBe(0);
    expect(child.readMemory(va, pc)).toBe(0);
    expect(pa).toEqual(new Uint8Array(PG).fill(0x77));
    expect(pc, "the child's private copy").toEqual(pattern(BUF, 5).subarray(0, PG));
    // the child's writes stay in its copy: DMA reads the parent's page
    expect(child.writeMemory(va + PG, new Uint8Array(PG).fill(0x11))).toBe(0);
    const got = new Uint8Array(PG);
    expect(dev.dmaRead(0x100000 + PG, got)).toBe(0);
    expect(got).toEqual(pattern(BUF, 5).subarray(PG, 2 * PG));
    child.kill();
    expect(dev.dmaRead(0x100000 + PG, got)).toBe(0);
    a.kill();
    expectClean(kernel);
    await kernel.close();
  });

  it("IOMMU_IOAS_CHANGE_PROCESS from the child: EINVAL over an anonymous-memory area; over file areas the charge moves and the child's exit leaks nothing", async () => {
    const kernel = await selftestKernel();
    const framesAtBoot = kernel.stats().framesFree;
    const a = processA(kernel);
    const child = a.p.fork();
    if (typeof child === "number") throw new Error(`fork: ${child}`);
    expect(ioctl(child, a.fd, IOMMU_IOAS_CHANGE_PROCESS, changeProcessCmd())).toBe(-errno.EINVAL);
    expectAIntact(a);
    // only file-backed areas left: A's anonymous area goes, a memfd area comes
    expect(ioctl(a.p, a.fd, IOMMU_IOAS_UNMAP, unmapCmd(a.ioas, IOVA, BUF))).toBe(0);
    const mfd = a.p.memfd_create("iso");
    expect(a.p.ftruncate(mfd, BUF)).toBe(0);
    expect(ioctl(a.p, a.fd, IOMMU_IOAS_MAP_FILE, mapFileCmd({ flags: RW | FIXED, ioasId: a.ioas, fd: mfd, start: 0, length: BUF, iova: IOVA }))).toBe(0);
    const child2 = a.p.fork();
    if (typeof child2 === "number") throw new Error(`fork: ${child2}`);
    expect(ioctl(child2, a.fd, IOMMU_IOAS_CHANGE_PROCESS, changeProcessCmd())).toBe(0);
    child2.kill();
    child.kill();
    const u = unmapCmd(a.ioas, IOVA, BUF);
    expect(ioctl(a.p, a.fd, IOMMU_IOAS_UNMAP, u)).toBe(0);
    expect(u.g64(16)).toBe(BigInt(BUF));
    a.p.kill();
    expectClean(kernel);
    expect(kernel.stats().framesFree).toBe(framesAtBoot);
    await kernel.close();
  });
});

describe("memory is per address space", () => {
  it("B cannot pin A's addresses (EFAULT with a domain), read them (EFAULT), or see A's bytes through its own mapping there", async () => {
    const kernel = await selftestKernel();
    const a = processA(kernel);
    const b = kernel.createProcess({ capIpcLock: true });
    const bfd = b.open("/dev/iommu", O_RDWR);
    const bIoas = ioasAlloc(b, bfd);
    mockDomain(b, bfd, bIoas);
    // A's buffer address is unmapped in B
    expect(b.readMemory(a.buf, new Uint8Array(16))).toBe(-errno.EFAULT);
    expect(b.writeMemory(a.buf, new Uint8Array(16))).toBe(-errno.EFAULT);
    expect(ioctl(b, bfd, IOMMU_IOAS_MAP, mapCmd({ flags: RW | FIXED, ioasId: bIoas, userVa: a.buf, length: BUF, iova: IOVA }))).toBe(-errno.EFAULT);
    // a user pointer of the ioctl is B's too: IOVA_RANGES' array at A's address faults
    expect(ioctl(b, bfd, IOMMU_IOAS_IOVA_RANGES, iovaRangesCmd(bIoas, 4, a.buf))).toBe(-errno.EFAULT);
    expect(kernel.stats().pinnedPages, "only A's pins").toBe(BUF / PG);
    // B maps its own memory at the same address: B's bytes, and B's pin of them
    expect(b.mmap(a.buf, BUF, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0)).toBe(a.buf);
    const got = new Uint8Array(BUF);
    expect(b.readMemory(a.buf, got)).toBe(0);
    expect(got).toEqual(new Uint8Array(BUF));
    expect(ioctl(b, bfd, IOMMU_IOAS_MAP, mapCmd({ flags: RW | FIXED, ioasId: bIoas, userVa: a.buf, length: BUF, iova: IOVA }))).toBe(0);
    const tmp = anon(b, PG, MAP_SHARED);
    const acc = createAccessCmd(bIoas, 0);
    expect(ioctl(b, bfd, IOMMU_TEST_CMD, acc)).toBe(0);
    expect(ioctl(b, bfd, IOMMU_TEST_CMD, accessRwCmd(acc.g32(16), IOVA, 32, tmp))).toBe(0);
    const r = new Uint8Array(32);
    expect(b.readMemory(tmp, r)).toBe(0);
    expect(r, "B's IOVA holds B's zeroes, not A's pattern").toEqual(new Uint8Array(32));
    expectAIntact(a);
    b.kill();
    a.p.kill();
    expectClean(kernel);
    await kernel.close();
  });
});
