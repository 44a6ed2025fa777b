// Fault injection over the syscall paths fail_nth.test.ts (the ported iommufd_fail_nth.c sweeps)
// does not reach (issue 14): the legacy group/container path with type1 and type1v2 over both
// container backends, the device cdev path (BIND, ATTACH, DMA, BAR0 mmap, MSI/MSI-X eventfds,
// RESET, hot reset, DETACH), fork with pinned mappings, memfd with MAP_FILE, eventfd and
// populated mmaps, and device unplug. Each is swept to exhaustion: for n = 1, 2, ... the nth
// internal allocation or copy from the arm point on fails, until a run leaves the countdown
// unconsumed (that run must then have succeeded). After every run each call has returned >= 0 or
// a valid -errno (none threw), and once every process is killed no iommufd object or context,
// no pin and no open file is left, and the frame allocator's free count and the commit charge
// are back at their values of the freshly booted kernel.

import { describe, it, expect } from "vitest";
import {
  createKernel, errno, O_RDWR, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, MAP_POPULATE,
  F_DUPFD, POLLIN, type DeviceConfig, type DeviceHandle, type Kernel, type KernelConfig, type Process,
} from "../src/index.js";
import { enableTestCmd, failNth, failNthRemaining } from "../src/testing.js";
import { SCRATCH_BYTES } from "../src/kernel/process.js";
import {
  PG, RW, FIXED, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP_FILE,
  IOMMU_TEST_CMD, IOMMU_DESTROY, MOCK_APERTURE_START, ioasAllocCmd, mapCmd, unmapCmd, iovaRangesCmd, mapFileCmd,
  mockDomainCmd, checkMapCmd, createAccessCmd, accessRwCmd, destroyCmd,
  VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_DIRTY_PAGES, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU,
} from "./iommufd/util.js";
import {
  struct, u32, u64, bindArg, attachArg, detachArg, infoArg, ioasMapArg, VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_DETACH_IOMMUFD_PT, VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_SET_IRQS, VFIO_DEVICE_RESET, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, VFIO_DEVICE_PCI_HOT_RESET,
} from "./vfio/util.js";
import { VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER, VFIO_GROUP_GET_DEVICE_FD, mapArg } from "./vfio/legacy_util.js";

const LIMIT = 2000;
const BUF = 16 * PG;
const IOVA = 0x100000;
const BDF = "0000:00:04.0";
const GROUP = 5;
const DEV: DeviceConfig = { bdf: BDF, model: "memcpy", iommuGroup: GROUP };
const ERRNOS = new Set<number>(Object.values(errno));
/** What an injected failure surfaces as. */
const INJECTED = [-errno.ENOMEM, -errno.EFAULT, -errno.ENOENT];

/** Thrown by `step` to end a body early at a failed call. */
class Stop { constructor(readonly step: string, readonly rc: number) {} }

interface Env {
  readonly kernel: Kernel;
  /** A process the run kills at its end. */
  proc(opts?: Parameters<Kernel["createProcess"]>[0]): Process;
  /** Adopts a process made by the body (a fork child). */
  adopt(p: Process): Process;
  /** Injection starts here: everything before is the body's unarmed setup. */
  arm(): void;
  /** A call's result: >= 0 goes on (and is returned), a valid -errno ends the body. */
  step(name: string, rc: number): number;
  /** A call that must give `want` when nothing is injected (a -errno the path itself returns). */
  expect(name: string, rc: number, want: number): void;
}

interface RunResult { ok: boolean; step: string; rc: number; remaining: number }

interface Baseline { framesFree: number; committedPages: number }

const baselineOf = (k: Kernel): Baseline => { const s = k.stats(); return { framesFree: s.framesFree, committedPages: s.committedPages }; };

type Body = (e: Env) => void | Promise<void>;

async function runOnce(kernel: Kernel, body: Body, n: number, after: Baseline | (() => Promise<Baseline>)): Promise<RunResult> {
  const procs: Process[] = [];
  let armed = false;
  const env: Env = {
    kernel,
    proc(opts) { const p = kernel.createProcess(opts); procs.push(p); return p; },
    adopt(p) { procs.push(p); return p; },
    arm() { armed = true; failNth(kernel, n); },
    step(name, rc) {
      if (!Number.isInteger(rc)) throw new Error(`${name}: returned ${rc}, not an integer`);
      if (rc < 0) {
        if (!ERRNOS.has(-rc)) throw new Error(`${name}: returned ${rc}, not a -errno`);
        throw new Stop(name, rc);
      }
      return rc;
    },
    expect(name, rc, want) {
      if (rc === want) return;
      if (rc >= 0) throw new Error(`${name}: returned ${rc}, expected ${want}`);
      env.step(name, rc);
    },
  };
  let res: RunResult;
  try {
    await body(env);
    res = { ok: true, step: "done", rc: 0, remaining: 0 };
  } catch (e) {
    if (!(e instanceof Stop)) {
      failNth(kernel, 0);
      throw Object.assign(e as Error, { message: `n=${n}: ${(e as Error).message}` });
    }
    res = { ok: false, step: e.step, rc: e.rc, remaining: 0 };
  }
  expect(armed, "the body arms").toBe(true);
  const remaining = failNthRemaining(kernel);
  failNth(kernel, 0);
  for (const p of procs) p.kill();
  const s = kernel.stats();
  const where = `n=${n}, after ${res.step} (${res.rc})`;
  expect(s.iommufdObjects, `${where}: iommufd objects`).toBe(0);
  expect(s.iommufdContexts, `${where}: iommufd contexts`).toBe(0);
  expect(s.pinnedPages, `${where}: pinned pages`).toBe(0);
  expect(s.openFiles, `${where}: open files`).toBe(0);
  expect(s.processes, `${where}: processes`).toBe(0);
  const base = typeof after === "function" ? await after() : after;
  expect(baselineOf(kernel), `${where}: frames and commit charge`).toEqual(base);
  return { ...res, remaining };
}

interface SweepResult { n: number; injected: number; failed: Map<string, number> }

/**
 * The unarmed run must succeed; then n = 1, 2, ... until the nth failure never fires. Every run
 * ends with the kernel as freshly booted (`baseline`).
 */
async function sweep(kernel: Kernel, body: Body, baseline: Baseline | (() => Promise<Baseline>)): Promise<SweepResult> {
  const first = await runOnce(kernel, body, 0, baseline);
  expect(first.ok, `unarmed run failed at ${first.step} (${first.rc})`).toBe(true);
  const failed = new Map<string, number>();
  let injected = 0;
  let n = 1;
  for (; n < LIMIT; n++) {
    const r = await runOnce(kernel, body, n, baseline);
    if (r.remaining > 0) {
      expect(r.ok, `n=${n}: the failure never fired, yet ${r.step} failed (${r.rc})`).toBe(true);
      break;
    }
    injected++;
    if (!r.ok) {
      // an allocation (ENOMEM), a user copy (EFAULT) or an iommufd object lookup (ENOENT)
      expect(INJECTED, `n=${n}: ${r.step} failed with ${r.rc}`).toContain(r.rc);
      const key = `${r.step}:${r.rc}`;
      failed.set(key, (failed.get(key) ?? 0) + 1);
    }
  }
  expect(n, "the sweep ends within the limit").toBeLessThan(LIMIT);
  return { n, injected, failed };
}

async function bootWith(config: KernelConfig = {}): Promise<Kernel> {
  const k = await createKernel({ memoryBytes: 64 << 20, ...config });
  enableTestCmd(k);
  return k;
}

// ---- helpers for bodies ---------------------------------------------------------------------

/** A process's unarmed setup: a populated buffer, a populated page for arguments, the ioctlBuf scratch page. */
function setupProc(e: Env, opts?: Parameters<Kernel["createProcess"]>[0]): { p: Process; buf: number; page: number } {
  const p = e.proc(opts);
  const buf = p.mmap(0, BUF, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  expect(buf).toBeGreaterThan(0);
  expect(p.writeMemory(buf, Uint8Array.from({ length: BUF }, (_, i) => i & 0xff))).toBe(0);
  const page = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(p.writeMemory(page, new Uint8Array(PG))).toBe(0);
  // Maps and faults in the whole ioctlBuf scratch area (EBADF): an argument whose first u32 is
  // large (a device name) makes the next call zero that much of it, and the sweeps are of the
  // kernel's paths, not of the scratch area's page faults.
  p.ioctlBuf(-1, 0, new Uint8Array(SCRATCH_BYTES));
  return { p, buf, page };
}

/** An ioctl whose argument is written at `at` in the process's own (already present) memory. */
function ioctlAt(p: Process, fd: number, req: number, at: number, arg: Uint8Array): number {
  const w = p.writeMemory(at, arg);
  if (w < 0) return w;
  const rc = p.ioctl(fd, req, at);
  const back = new Uint8Array(arg.length);
  if (p.readMemory(at, back) === 0) arg.set(back);
  return rc;
}

const dmaUnmapArg = (iova: number, size: number, flags = 0, argsz = 24) => struct(argsz, [[0, 4, argsz], [4, 4, flags], [8, 8, iova], [16, 8, size]]);
const NONE = 1 << 0, EVENTFD = 1 << 2, TRIGGER = 1 << 5;
const MSI = 1, MSIX = 2;
const setIrqsArg = (flags: number, index: number, fds: number[], count = fds.length) =>
  struct(20 + 4 * fds.length, [[0, 4, 20 + 4 * fds.length], [4, 4, flags], [8, 4, index], [12, 4, 0], [16, 4, count],
    ...fds.map((f, j) => [20 + 4 * j, 4, f] as [number, 4, number])]);

/** Device DMA both ways at IOVA: what was written reads back. */
function dmaRoundTrip(e: Env, seed: number, dev: DeviceHandle = e.kernel.device(BDF)!): void {
  const data = new Uint8Array(PG).fill(seed);
  e.step("dmaWrite", dev.dmaWrite(IOVA + PG, data));
  const back = new Uint8Array(PG);
  e.step("dmaRead", dev.dmaRead(IOVA + PG, back));
  expect(back).toEqual(data);
}

// ---- the paths --------------------------------------------------------------------------------

/** The legacy open sequence, type1 DMA, dirty tracking (legacy v2), teardown by close. */
function legacyBody(type: number, dirty: boolean): Body {
  return (e) => {
    const { p, buf, page } = setupProc(e);
    e.arm();
    const c = e.step("open(/dev/vfio/vfio)", p.open("/dev/vfio/vfio", O_RDWR));
    e.expect("GET_API_VERSION", p.ioctl(c, VFIO_GET_API_VERSION), 0);
    const g = e.step("open(group)", p.open(`/dev/vfio/${GROUP}`, O_RDWR));
    e.step("GROUP_GET_STATUS", p.ioctlBuf(g, VFIO_GROUP_GET_STATUS, struct(8, [[0, 4, 8]])));
    e.step("SET_CONTAINER", p.ioctlBuf(g, VFIO_GROUP_SET_CONTAINER, struct(4, [[0, 4, c]])));
    e.expect("CHECK_EXTENSION", p.ioctl(c, VFIO_CHECK_EXTENSION, type), 1);
    e.step("SET_IOMMU", p.ioctl(c, VFIO_SET_IOMMU, type));
    const info = struct(24, [[0, 4, 24]]);
    e.step("IOMMU_GET_INFO", p.ioctlBuf(c, VFIO_IOMMU_GET_INFO, info));
    const full = u32(info, 0);
    e.step("IOMMU_GET_INFO caps", p.ioctlBuf(c, VFIO_IOMMU_GET_INFO, struct(full, [[0, 4, full]])));
    const d = e.step("GET_DEVICE_FD", p.ioctlBuf(g, VFIO_GROUP_GET_DEVICE_FD, new TextEncoder().encode(`${BDF}\0`)));
    e.step("DEVICE_GET_INFO", p.ioctlBuf(d, VFIO_DEVICE_GET_INFO, infoArg()));
    e.step("MAP_DMA", p.ioctlBuf(c, VFIO_IOMMU_MAP_DMA, mapArg(buf, IOVA, BUF)));
    dmaRoundTrip(e, 0x3c);
    if (dirty) {
      e.step("DIRTY_PAGES START", p.ioctlBuf(c, VFIO_IOMMU_DIRTY_PAGES, struct(8, [[0, 4, 8], [4, 4, 1]])));
      const get = struct(48, [[0, 4, 48], [4, 4, 4], [8, 8, IOVA], [16, 8, BUF], [24, 8, PG], [32, 8, 8], [40, 8, page]]);
      e.step("DIRTY_PAGES GET_BITMAP", p.ioctlBuf(c, VFIO_IOMMU_DIRTY_PAGES, get));
      // UNMAP_DMA with GET_DIRTY_BITMAP of a whole second mapping (v2 unmaps whole mappings):
      // struct vfio_bitmap { pgsize @24, size @32, data @40 }
      e.step("MAP_DMA second", p.ioctlBuf(c, VFIO_IOMMU_MAP_DMA, mapArg(buf, IOVA + BUF, BUF)));
      const um = struct(48, [[0, 4, 48], [4, 4, 1], [8, 8, IOVA + BUF], [16, 8, BUF], [24, 8, PG], [32, 8, 8], [40, 8, page]]);
      e.step("UNMAP_DMA dirty bitmap", p.ioctlBuf(c, VFIO_IOMMU_UNMAP_DMA, um));
      e.step("DIRTY_PAGES STOP", p.ioctlBuf(c, VFIO_IOMMU_DIRTY_PAGES, struct(8, [[0, 4, 8], [4, 4, 2]])));
    }
    const um = dmaUnmapArg(0, 2 ** 52);
    e.step("UNMAP_DMA", p.ioctlBuf(c, VFIO_IOMMU_UNMAP_DMA, um));
    expect(u64(um, 16)).toBe(BigInt(BUF));
    e.step("MAP_DMA again", p.ioctlBuf(c, VFIO_IOMMU_MAP_DMA, mapArg(buf, IOVA, BUF)));
    e.step("close(device)", p.close(d));
    e.step("UNSET_CONTAINER", p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER));
    e.step("close(group)", p.close(g));
    e.step("close(container)", p.close(c));
  };
}

/** The cdev sequence: BIND, ATTACH, MAP, DMA, BAR0 mmap, MSI-X and MSI eventfds, resets, DETACH. */
const cdevBody: Body = (e) => {
  const { p, buf } = setupProc(e);
  e.arm();
  const d = e.step("open(vfio0)", p.open("/dev/vfio/devices/vfio0", O_RDWR));
  const i = e.step("open(/dev/iommu)", p.open("/dev/iommu", O_RDWR));
  e.step("BIND", p.ioctlBuf(d, VFIO_DEVICE_BIND_IOMMUFD, bindArg(i)));
  const a = ioasAllocCmd();
  e.step("IOAS_ALLOC", p.ioctlBuf(i, IOMMU_IOAS_ALLOC, a.buf));
  const ioas = a.g32(8);
  e.step("ATTACH", p.ioctlBuf(d, VFIO_DEVICE_ATTACH_IOMMUFD_PT, attachArg(ioas)));
  e.step("IOAS_MAP", p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, buf, BUF, IOVA)));
  dmaRoundTrip(e, 0x5a);
  e.step("DEVICE_GET_INFO", p.ioctlBuf(d, VFIO_DEVICE_GET_INFO, infoArg()));
  e.step("GET_REGION_INFO(BAR0)", p.ioctlBuf(d, VFIO_DEVICE_GET_REGION_INFO, struct(32, [[0, 4, 32], [8, 4, 0]])));
  const bar = e.step("mmap(BAR0)", p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0));
  e.step("BAR0 load", p.readMemory(bar, new Uint8Array(4)));
  const efds = [0, 1, 2, 3].map((j) => e.step(`eventfd ${j}`, p.eventfd(0, 0x800)));
  e.step("SET_IRQS MSI-X eventfds", p.ioctlBuf(d, VFIO_DEVICE_SET_IRQS, setIrqsArg(TRIGGER | EVENTFD, MSIX, efds)));
  e.step("SET_IRQS MSI-X trigger", p.ioctlBuf(d, VFIO_DEVICE_SET_IRQS, setIrqsArg(TRIGGER | NONE, MSIX, [], 4)));
  const cnt = new Uint8Array(8);
  e.expect("read(eventfd)", p.read(efds[0], cnt), 8);
  e.step("SET_IRQS MSI-X off", p.ioctlBuf(d, VFIO_DEVICE_SET_IRQS, setIrqsArg(TRIGGER | NONE, MSIX, [], 0)));
  e.step("SET_IRQS MSI eventfd", p.ioctlBuf(d, VFIO_DEVICE_SET_IRQS, setIrqsArg(TRIGGER | EVENTFD, MSI, [efds[1]])));
  e.step("SET_IRQS MSI off", p.ioctlBuf(d, VFIO_DEVICE_SET_IRQS, setIrqsArg(TRIGGER | NONE, MSI, [], 0)));
  e.step("SET_IRQS MSI-X again", p.ioctlBuf(d, VFIO_DEVICE_SET_IRQS, setIrqsArg(TRIGGER | EVENTFD, MSIX, efds.slice(0, 2))));
  e.step("RESET", p.ioctl(d, VFIO_DEVICE_RESET));
  e.expect("GET_PCI_HOT_RESET_INFO", p.ioctlBuf(d, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, struct(16, [[0, 4, 16]])), -errno.ENODEV);
  e.expect("PCI_HOT_RESET", p.ioctlBuf(d, VFIO_DEVICE_PCI_HOT_RESET, struct(12, [[0, 4, 12]])), -errno.ENODEV);
  e.step("munmap(BAR0)", p.munmap(bar, PG));
  e.step("DETACH", p.ioctlBuf(d, VFIO_DEVICE_DETACH_IOMMUFD_PT, detachArg()));
  e.expect("dmaRead detached", e.kernel.device(BDF)!.dmaRead(IOVA, new Uint8Array(8)), -errno.EFAULT);
  e.step("ATTACH again", p.ioctlBuf(d, VFIO_DEVICE_ATTACH_IOMMUFD_PT, attachArg(ioas)));
  const u = unmapCmd(ioas, IOVA, BUF);
  e.step("IOAS_UNMAP", p.ioctlBuf(i, IOMMU_IOAS_UNMAP, u.buf));
  e.step("IOAS_MAP again", p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, buf, BUF, IOVA)));
  // close with the device attached, the IOAS mapped and MSI-X on
  e.step("close(vfio0)", p.close(d));
  e.step("close(iommufd)", p.close(i));
};

/** fork of a process with pinned shared and private mappings; the children use the inherited ctx. */
const forkBody: Body = (e) => {
  const { p, buf, page } = setupProc(e, { capIpcLock: true });
  const priv = p.mmap(0, BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expect(p.writeMemory(priv, new Uint8Array(BUF).fill(0x42))).toBe(0);
  const i = p.open("/dev/iommu", O_RDWR);
  const a = ioasAllocCmd();
  expect(p.ioctlBuf(i, IOMMU_IOAS_ALLOC, a.buf)).toBe(0);
  const ioas = a.g32(8);
  const md = mockDomainCmd(ioas);
  expect(p.ioctlBuf(i, IOMMU_TEST_CMD, md.buf)).toBe(0);
  const hwpt = md.g32(20);
  expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, mapCmd({ flags: RW | FIXED, ioasId: ioas, userVa: buf, length: BUF, iova: MOCK_APERTURE_START }).buf)).toBe(0);
  expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, mapCmd({ flags: RW | FIXED, ioasId: ioas, userVa: priv, length: BUF, iova: MOCK_APERTURE_START + BUF }).buf)).toBe(0);
  e.arm();
  for (let round = 0; round < 2; round++) {
    const forked = p.fork();
    if (typeof forked === "number") e.step(`fork ${round}`, forked);
    const c = e.adopt(forked as Process);
    // the child's arguments live in its copy of `page` (present: copied at fork)
    e.expect("child IOVA_RANGES", ioctlAt(c, i, IOMMU_IOAS_IOVA_RANGES, page, iovaRangesCmd(ioas, 0, 0).buf), -errno.EMSGSIZE);
    // the child pins its own copy of the private buffer
    e.step("child IOAS_MAP", ioctlAt(c, i, IOMMU_IOAS_MAP, page, mapCmd({ flags: RW | FIXED, ioasId: ioas, userVa: priv, length: BUF, iova: MOCK_APERTURE_START + 4 * BUF }).buf));
    e.step("child MD_CHECK_MAP", ioctlAt(c, i, IOMMU_TEST_CMD, page, checkMapCmd(hwpt, MOCK_APERTURE_START + 4 * BUF, BUF, priv).buf));
    e.step("child write", c.writeMemory(priv, new Uint8Array(PG).fill(round)));
    const m = e.step("child mmap populate", c.mmap(0, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
    e.step("child munmap", c.munmap(m, 4 * PG));
    const u = unmapCmd(ioas, MOCK_APERTURE_START + 4 * BUF, BUF);
    e.step("child IOAS_UNMAP", ioctlAt(c, i, IOMMU_IOAS_UNMAP, page, u.buf));
    expect(u.g64(16)).toBe(BigInt(BUF));
    if (round === 0) c.kill();
  }
  e.step("parent MD_CHECK_MAP", p.ioctlBuf(i, IOMMU_TEST_CMD, checkMapCmd(hwpt, MOCK_APERTURE_START + BUF, BUF, priv).buf));
  e.step("parent IOAS_UNMAP", p.ioctlBuf(i, IOMMU_IOAS_UNMAP, unmapCmd(ioas, 0, 2n ** 64n - 1n).buf));
};

/** memfd pages mapped by MAP_FILE and by mmap; an access reads them through the IOAS. */
const memfdBody: Body = (e) => {
  const { p, page } = setupProc(e, { capIpcLock: true });
  e.arm();
  const mfd = e.step("memfd_create", p.memfd_create("paths"));
  e.step("ftruncate", p.ftruncate(mfd, BUF));
  const m = e.step("mmap(memfd)", p.mmap(0, BUF, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0));
  e.step("write memfd pages", p.writeMemory(m, new Uint8Array(BUF).fill(0x99)));
  const i = e.step("open(/dev/iommu)", p.open("/dev/iommu", O_RDWR));
  const a = ioasAllocCmd();
  e.step("IOAS_ALLOC", p.ioctlBuf(i, IOMMU_IOAS_ALLOC, a.buf));
  const ioas = a.g32(8);
  const md = mockDomainCmd(ioas);
  e.step("MOCK_DOMAIN", p.ioctlBuf(i, IOMMU_TEST_CMD, md.buf));
  e.step("IOAS_MAP_FILE", p.ioctlBuf(i, IOMMU_IOAS_MAP_FILE, mapFileCmd({ flags: RW | FIXED, ioasId: ioas, fd: mfd, start: 0, length: BUF, iova: MOCK_APERTURE_START }).buf));
  e.step("MD_CHECK_MAP", p.ioctlBuf(i, IOMMU_TEST_CMD, checkMapCmd(md.g32(20), MOCK_APERTURE_START, BUF, m).buf));
  const acc = createAccessCmd(ioas, 0);
  e.step("CREATE_ACCESS", p.ioctlBuf(i, IOMMU_TEST_CMD, acc.buf));
  e.step("ACCESS_RW", p.ioctlBuf(i, IOMMU_TEST_CMD, accessRwCmd(acc.g32(16), MOCK_APERTURE_START + 8, 64, page).buf));
  e.step("private mmap(memfd)", p.mmap(0, BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0));
  e.step("munmap(memfd)", p.munmap(m, BUF));
  e.step("IOAS_UNMAP", p.ioctlBuf(i, IOMMU_IOAS_UNMAP, unmapCmd(ioas, MOCK_APERTURE_START, BUF).buf));
  e.step("DESTROY(stdev)", p.ioctlBuf(i, IOMMU_DESTROY, destroyCmd(md.g32(16)).buf));
  e.step("close(memfd)", p.close(mfd));
};

/** eventfds (dup, poll, read, write) and populated anonymous and memfd mappings, split by munmap. */
const filesBody: Body = (e) => {
  const { p } = setupProc(e);
  e.arm();
  const efd = e.step("eventfd", p.eventfd(3, 0x800));
  const dup = e.step("F_DUPFD", p.fcntl(efd, F_DUPFD, 10));
  e.step("write(eventfd)", p.write(dup, new Uint8Array(8).fill(1, 0, 1)));
  e.step("poll", p.poll([{ fd: efd, events: POLLIN }], 0));
  e.expect("read(eventfd)", p.read(efd, new Uint8Array(8)), 8);
  e.step("close(dup)", p.close(dup));
  for (const flags of [MAP_SHARED, MAP_PRIVATE]) {
    const m = e.step("mmap populate", p.mmap(0, BUF, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
    e.step("write", p.writeMemory(m + 3 * PG, new Uint8Array(PG).fill(7)));
    e.step("munmap middle", p.munmap(m + 4 * PG, 4 * PG));
    e.step("read tail", p.readMemory(m + 8 * PG, new Uint8Array(PG)));
    e.step("munmap rest", p.munmap(m, BUF));
  }
  const mfd = e.step("memfd_create", p.memfd_create("pop"));
  e.step("ftruncate", p.ftruncate(mfd, BUF));
  const fm = e.step("mmap(memfd) populate", p.mmap(0, BUF, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, mfd, 0));
  e.step("pwrite(memfd)", p.pwrite(mfd, new Uint8Array(PG).fill(5), PG));
  const back = new Uint8Array(PG);
  e.step("read memfd page", p.readMemory(fm + PG, back));
  expect(back).toEqual(new Uint8Array(PG).fill(5));
  e.step("close(eventfd)", p.close(efd));
};

/** The device's unplug of the current run; it completes once the run's kill closed its files. */
let unplugging: Promise<void> = Promise.resolve();

/** The cdev bound, attached and mapped, its REQ eventfd armed, when the device is unplugged. */
const unplugBody: Body = (e) => {
  const dev = e.kernel.addDevice(DEV);
  const { p, buf } = setupProc(e);
  e.arm();
  try {
    const d = e.step("open(vfio0)", p.open("/dev/vfio/devices/vfio0", O_RDWR));
    const i = e.step("open(/dev/iommu)", p.open("/dev/iommu", O_RDWR));
    e.step("BIND", p.ioctlBuf(d, VFIO_DEVICE_BIND_IOMMUFD, bindArg(i)));
    const a = ioasAllocCmd();
    e.step("IOAS_ALLOC", p.ioctlBuf(i, IOMMU_IOAS_ALLOC, a.buf));
    e.step("ATTACH", p.ioctlBuf(d, VFIO_DEVICE_ATTACH_IOMMUFD_PT, attachArg(a.g32(8))));
    e.step("IOAS_MAP", p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(a.g32(8), buf, BUF, IOVA)));
    const req = e.step("eventfd", p.eventfd(0, 0x800));
    // VFIO_PCI_REQ_IRQ_INDEX (4): the unplug request is signalled there
    e.step("SET_IRQS REQ", p.ioctlBuf(d, VFIO_DEVICE_SET_IRQS, setIrqsArg(TRIGGER | EVENTFD, 4, [req])));
    unplugging = dev.unplug();
    e.expect("read(REQ eventfd)", p.read(req, new Uint8Array(8)), 8);
    e.expect("open(vfio0) after unplug", p.open("/dev/vfio/devices/vfio0", O_RDWR), -errno.ENOENT);
    dmaRoundTrip(e, 0x21, dev); // the device is still attached until its file closes
  } finally {
    // every run unplugs the device it added
    if (e.kernel.device(BDF)) unplugging = dev.unplug();
  }
};

// ---- the sweeps ---------------------------------------------------------------------------------

function report(name: string, r: SweepResult): void {
  if (process.env.FAIL_NTH_VERBOSE) console.log(`${name}: exhausted at n=${r.n}, ${r.injected} injected, failed steps: ${[...r.failed.keys()].join(", ")}`);
}

const WITH_DEVICE: [string, KernelConfig, Body][] = [
  ["legacy container, type1", {}, legacyBody(VFIO_TYPE1_IOMMU, false)],
  ["legacy container, type1v2 with dirty tracking", {}, legacyBody(VFIO_TYPE1v2_IOMMU, true)],
  ["iommufd compat container, type1", { vfioContainer: "iommufd" }, legacyBody(VFIO_TYPE1_IOMMU, false)],
  ["iommufd compat container, type1v2", { vfioContainer: "iommufd" }, legacyBody(VFIO_TYPE1v2_IOMMU, false)],
  ["device cdev: BIND, ATTACH, DMA, BAR0 mmap, MSI/MSI-X, RESET, hot reset, DETACH", {}, cdevBody],
];

const WITHOUT_DEVICE: [string, Body][] = [
  ["fork with pinned shared and private mappings", forkBody],
  ["memfd with IOAS_MAP_FILE and mmap", memfdBody],
  ["eventfd and populated mmaps", filesBody],
];

describe("fail_nth over every path (issue 14)", () => {
  it.each(WITH_DEVICE)("%s", async (name, config, body) => {
    const kernel = await bootWith({ devices: [DEV], ...config });
    const r = await sweep(kernel, body, baselineOf(kernel));
    report(name, r);
    expect(r.injected, "injection points on the path").toBeGreaterThan(3);
    await kernel.close();
  }, 120_000);

  it.each(WITHOUT_DEVICE)("%s", async (name, body) => {
    const kernel = await bootWith();
    const r = await sweep(kernel, body, baselineOf(kernel));
    report(name, r);
    expect(r.injected, "injection points on the path").toBeGreaterThan(3);
    await kernel.close();
  }, 120_000);

  it("device unplug with the device bound, attached, mapped and its REQ eventfd armed: after it, the frames of a device-less kernel", async () => {
    const kernel = await bootWith();
    const deviceless = baselineOf(kernel);
    const r = await sweep(kernel, unplugBody, async () => {
      await unplugging;
      return deviceless;
    });
    report("unplug", r);
    expect(r.injected).toBeGreaterThan(3);
    await kernel.close();
  }, 120_000);
});

