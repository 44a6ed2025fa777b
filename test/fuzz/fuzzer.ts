// The raw-layer fuzzer (issue 14). An operation list is generated from a seed; each operation
// carries its own seed, so a run is a pure function of the list and any sub-list replays on its
// own (what minimisation needs). Operations act on whatever the run has built so far: processes,
// their fds and mappings, object ids and IOVAs harvested from earlier answers.
//
// Invariants: after every operation no exception escaped and every return was >= 0 or a known
// -errno; at teardown (every process killed, every device unplugged) no iommufd context, object,
// pin, open file or process is left, committed memory is back to zero and the frame allocator's
// free count equals a device-less machine's.

import {
  createKernel, errno, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE,
  POLLIN, POLLOUT, F_GETFL, F_DUPFD, F_SETFL,
  getField, setField, ioctlName, type DeviceConfig, type PollFd, type DeviceHandle, type Kernel, type Process, type StructLayout,
  IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP,
  IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_VFIO_IOAS, IOMMU_HWPT_ALLOC, IOMMU_GET_HW_INFO, IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_INVALIDATE, IOMMU_FAULT_QUEUE_ALLOC, IOMMU_IOAS_MAP_FILE, IOMMU_VIOMMU_ALLOC,
  IOMMU_VDEVICE_ALLOC, IOMMU_IOAS_CHANGE_PROCESS, IOMMU_VEVENTQ_ALLOC, IOMMU_HW_QUEUE_ALLOC, IOMMU_TEST_CMD,
  VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA,
  VFIO_IOMMU_ENABLE, VFIO_IOMMU_DISABLE, VFIO_IOMMU_DIRTY_PAGES, VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER, VFIO_GROUP_GET_DEVICE_FD, VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_SET_IRQS, VFIO_DEVICE_RESET, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_PCI_HOT_RESET, VFIO_DEVICE_IOEVENTFD, VFIO_DEVICE_FEATURE, VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_DETACH_IOMMUFD_PT,
  iommu_destroy, iommu_ioas_alloc, iommu_ioas_allow_iovas, iommu_ioas_copy, iommu_ioas_iova_ranges, iommu_ioas_map,
  iommu_ioas_unmap, iommu_option, iommu_vfio_ioas, iommu_hwpt_alloc, iommu_hw_info, iommu_hwpt_set_dirty_tracking,
  iommu_hwpt_get_dirty_bitmap, iommu_hwpt_invalidate, iommu_fault_alloc, iommu_ioas_map_file, iommu_viommu_alloc,
  iommu_vdevice_alloc, iommu_ioas_change_process, iommu_veventq_alloc, iommu_hw_queue_alloc, iommu_test_cmd,
  vfio_iommu_type1_info, vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap, vfio_iommu_type1_dirty_bitmap,
  vfio_group_status, vfio_device_info, vfio_region_info, vfio_irq_info, vfio_irq_set, vfio_pci_hot_reset_info,
  vfio_pci_hot_reset, vfio_device_ioeventfd, vfio_device_feature, vfio_device_bind_iommufd,
  vfio_device_attach_iommufd_pt, vfio_device_detach_iommufd_pt,
  IOMMU_TEST_OP_MOCK_DOMAIN, IOMMU_HWPT_DATA_SELFTEST, IOMMU_VIOMMU_TYPE_SELFTEST, IOMMU_VEVENTQ_TYPE_SELFTEST, VFIO_PCI_INDEX_TO_OFFSET, VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX,
} from "../../src/index.js";
import { enableTestCmd, failNth } from "../../src/testing.js";
import { prng } from "../toolkit/prng.js";
import { structOf as structImage } from "../toolkit/struct.js";

const PAGE = 4096;
const U64_MAX = (1n << 64n) - 1n;
const MAX_PROCS = 4;
/** Bytes of anonymous memory one process may hold mapped at a time (the kernel has 64 MiB). */
const MAP_BUDGET = 8 * 1024 * 1024;

// ---- operations -------------------------------------------------------------------------------

export type OpKind =
  | "open" | "close" | "dup" | "fcntl" | "ioctl" | "ioctlPtr" | "mmap" | "mmapFile" | "munmap" | "touch" | "rw" | "poll"
  | "eventfd" | "memfd" | "fork" | "kill" | "unplug" | "replug" | "dma" | "mmio" | "inject"
  | "setupIommufd" | "setupLegacy" | "setupMock";

/** One operation: what it is and the seed of every choice it makes. */
export interface Op { k: OpKind; s: number }

const WEIGHTS: [OpKind, number][] = [
  ["open", 6], ["close", 5], ["dup", 1], ["fcntl", 1], ["ioctl", 40], ["ioctlPtr", 6], ["mmap", 5], ["mmapFile", 2],
  ["munmap", 3], ["touch", 2], ["rw", 5], ["poll", 1], ["eventfd", 2], ["memfd", 2], ["fork", 1], ["kill", 1],
  ["unplug", 0.4], ["replug", 0.6], ["dma", 3], ["mmio", 4], ["inject", 3],
  ["setupIommufd", 3], ["setupLegacy", 2], ["setupMock", 2],
];
const WEIGHT_SUM = WEIGHTS.reduce((a, [, w]) => a + w, 0);

/** The container mode a seed runs with: odd seeds the iommufd compat layer, even ones legacy type1. */
export const modeOf = (seed: number): "legacy" | "iommufd" => (seed % 2 ? "iommufd" : "legacy");

/** The operation list of a seed: the same seed gives the same list. */
export function generate(seed: number, n: number): Op[] {
  const r = prng(seed);
  const ops: Op[] = [];
  for (let i = 0; i < n; i++) {
    let x = r.next() * WEIGHT_SUM;
    let k: OpKind = WEIGHTS[0][0];
    for (const [kind, w] of WEIGHTS) {
      if ((x -= w) < 0) { k = kind; break; }
    }
    ops.push({ k, s: Math.floor(r.next() * 2 ** 32) });
  }
  return ops;
}

// ---- the machine ------------------------------------------------------------------------------

/** Two memcpy functions share group 9; the ioat engine DMAs from its own worker; one device sits behind the mock IOMMU format. */
export const DEVICES: DeviceConfig[] = [
  { bdf: "0000:00:04.0", model: "memcpy" },
  { bdf: "0000:00:05.0", model: "memcpy", iommuGroup: 9 },
  { bdf: "0000:00:06.0", model: "memcpy", iommuGroup: 9 },
  { bdf: "0000:00:07.0", model: "ioat" },
  { bdf: "0000:00:08.0", model: "memcpy", iommu: { format: "mock" } },
];
const MEMORY_BYTES = 64 * 1024 * 1024;

/** What a device-less machine of the same size has free at boot (the teardown reference). */
const referenceCache = new Map<number, { framesFree: number; committedPages: number }>();
export async function reference(memoryBytes = MEMORY_BYTES): Promise<{ framesFree: number; committedPages: number }> {
  let r = referenceCache.get(memoryBytes);
  if (!r) {
    const k = await createKernel({ memoryBytes, devices: [] });
    const s = k.stats();
    r = { framesFree: s.framesFree, committedPages: s.committedPages };
    await k.close();
    referenceCache.set(memoryBytes, r);
  }
  return r;
}

const VALID_ERRNOS = new Set<number>(Object.values(errno));

/** A raw-layer answer: a whole number, >= 0 or a known errno negated. */
export function validReturn(rc: unknown): boolean {
  return typeof rc === "number" && Number.isInteger(rc) && (rc >= 0 || VALID_ERRNOS.has(-rc));
}

export interface Violation {
  index: number;
  op: Op | null;
  kind: "throw" | "return" | "teardown";
  detail: string;
  /** Where an exception came from (not part of the signature). */
  stack?: string;
}

export interface RunOptions {
  /** Legacy type1 or the iommufd compat container behind /dev/vfio/vfio (default legacy; modeOf(seed) alternates). */
  vfioContainer?: "legacy" | "iommufd";
  /** Called before each operation with the kernel (tests plant faults through it). */
  onOp?: (index: number, op: Op, kernel: Kernel) => void;
  /** After every operation, check that every page a process maps is an allocated frame (--deep: slow). */
  deep?: boolean;
  /** Every raw call and its answer, for --trace. */
  trace?: (index: number, call: string, rc: number | string) => void;
}

export interface RunResult {
  ops: number;
  ms: number;
  violations: Violation[];
  /** Per call name: answers >= 0 and errnos. */
  calls: Map<string, { ok: number; err: number }>;
}

interface DmaMap { vaddr: number; iova: bigint; len: number; devFd: number }

interface Proc {
  p: Process;
  maps: { addr: number; len: number; prot: number }[];
  /** Memory an earlier setup mapped for DMA, with the device fd attached to it. */
  dma: DmaMap[];
  maxFd: number;
  arena: number;
}

class Violated extends Error {
  constructor(readonly v: Omit<Violation, "index" | "op">) { super(v.detail); }
}

/** The choices of one operation: a PRNG seeded from the op. */
class Choice {
  private readonly r: ReturnType<typeof prng>;
  constructor(seed: number) { this.r = prng(seed); }
  next(): number { return this.r.next(); }
  int(n: number): number { return this.r.int(n); }
  chance(p: number): boolean { return this.r.next() < p; }
  pick<T>(a: readonly T[]): T { return a[this.r.int(a.length)]; }
  u32(): number { return Math.floor(this.r.next() * 2 ** 32); }
  u64(): bigint { return (BigInt(this.u32()) << 32n) | BigInt(this.u32()); }
}

const IOMMUFD_CMDS: [number, StructLayout | null][] = [
  [IOMMU_DESTROY, iommu_destroy], [IOMMU_IOAS_ALLOC, iommu_ioas_alloc], [IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas],
  [IOMMU_IOAS_COPY, iommu_ioas_copy], [IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges], [IOMMU_IOAS_MAP, iommu_ioas_map],
  [IOMMU_IOAS_UNMAP, iommu_ioas_unmap], [IOMMU_OPTION, iommu_option], [IOMMU_VFIO_IOAS, iommu_vfio_ioas],
  [IOMMU_HWPT_ALLOC, iommu_hwpt_alloc], [IOMMU_GET_HW_INFO, iommu_hw_info], [IOMMU_HWPT_SET_DIRTY_TRACKING, iommu_hwpt_set_dirty_tracking],
  [IOMMU_HWPT_GET_DIRTY_BITMAP, iommu_hwpt_get_dirty_bitmap], [IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate],
  [IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc], [IOMMU_IOAS_MAP_FILE, iommu_ioas_map_file], [IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc],
  [IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc], [IOMMU_IOAS_CHANGE_PROCESS, iommu_ioas_change_process],
  [IOMMU_VEVENTQ_ALLOC, iommu_veventq_alloc], [IOMMU_HW_QUEUE_ALLOC, iommu_hw_queue_alloc], [IOMMU_TEST_CMD, iommu_test_cmd],
];
const DEVICE_CMDS: [number, StructLayout | null][] = [
  [VFIO_DEVICE_GET_INFO, vfio_device_info], [VFIO_DEVICE_GET_REGION_INFO, vfio_region_info], [VFIO_DEVICE_GET_IRQ_INFO, vfio_irq_info],
  [VFIO_DEVICE_SET_IRQS, vfio_irq_set], [VFIO_DEVICE_RESET, null], [VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, vfio_pci_hot_reset_info],
  [VFIO_DEVICE_PCI_HOT_RESET, vfio_pci_hot_reset], [VFIO_DEVICE_IOEVENTFD, vfio_device_ioeventfd], [VFIO_DEVICE_FEATURE, vfio_device_feature],
  [VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd], [VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt],
  [VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt],
];
const CONTAINER_CMDS: [number, StructLayout | null][] = [
  [VFIO_GET_API_VERSION, null], [VFIO_CHECK_EXTENSION, null], [VFIO_SET_IOMMU, null], [VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info],
  [VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map], [VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap], [VFIO_IOMMU_ENABLE, null],
  [VFIO_IOMMU_DISABLE, null], [VFIO_IOMMU_DIRTY_PAGES, vfio_iommu_type1_dirty_bitmap],
];
const GROUP_CMDS: [number, StructLayout | null][] = [
  [VFIO_GROUP_GET_STATUS, vfio_group_status], [VFIO_GROUP_SET_CONTAINER, null], [VFIO_GROUP_UNSET_CONTAINER, null],
  [VFIO_GROUP_GET_DEVICE_FD, null],
];
const ALL_CMDS = [...IOMMUFD_CMDS, ...DEVICE_CMDS, ...CONTAINER_CMDS, ...GROUP_CMDS];
/** The kernel's name of `cmd` as a file of `kind` understands it (VFIO numbers are overloaded). */
const nameOf = (cmd: number, kind: string | undefined): string => ioctlName(cmd, kind);

/** Flags a driver would pass, per struct (everything else: 0 mostly). */
const WF_FLAGS: Record<string, number[]> = {
  iommu_ioas_map: [7, 7, 6, 3, 5], // FIXED_IOVA|WRITEABLE|READABLE and subsets
  iommu_ioas_map_file: [7, 6, 3],
  iommu_ioas_copy: [7, 6, 5],
  vfio_iommu_type1_dma_map: [3, 3, 1, 2], // READ|WRITE
  vfio_iommu_type1_dma_unmap: [0, 0, 2],
  iommu_hwpt_alloc: [0, 0, 1, 2],
  vfio_device_attach_iommufd_pt: [0, 0, 1],
};

// I/OAT channel 0 registers (the kernel's drivers/dma/ioat/registers.h) and PCI config.
const PCI_COMMAND = 0x04;
const CHAN = 0x80;
const IOAT_REGS: [number, 1 | 2 | 4 | 8][] = [
  [0x00, 1], [0x01, 1], [0x03, 1], [0x08, 1], [CHAN + 0x00, 2], [CHAN + 0x04, 1], [CHAN + 0x06, 2], [CHAN + 0x08, 8],
  [CHAN + 0x10, 8], [CHAN + 0x18, 8], [CHAN + 0x28, 4], [CHAN + 0x2c, 4], [0x800, 4], [0x80c, 4], [0xc00, 8],
];

/** One fuzzing run over `ops` on a fresh kernel. */
export async function run(ops: readonly Op[], opts: RunOptions = {}): Promise<RunResult> {
  const t0 = performance.now();
  const mode = opts.vfioContainer ?? "legacy";
  const k = await createKernel({ memoryBytes: MEMORY_BYTES, devices: DEVICES, vfioContainer: mode });
  enableTestCmd(k);
  const ref = await reference();
  const calls = new Map<string, { ok: number; err: number }>();
  const violations: Violation[] = [];
  const procs: Proc[] = [];
  const ids: number[] = [];
  const iovas: bigint[] = [];
  const unplugging: { cfg: DeviceConfig; done: boolean; promise: Promise<void> }[] = [];
  let index = -1;

  const tally = (call: string, ok: boolean) => {
    const c = calls.get(call) ?? { ok: 0, err: 0 };
    if (ok) c.ok++;
    else c.err++;
    calls.set(call, c);
  };
  /** A raw call's answer: checked (>= 0 or a known errno), counted, passed on. */
  const note = (call: string, rc: number): number => {
    opts.trace?.(index, call, rc);
    if (!validReturn(rc)) throw new Violated({ kind: "return", detail: `${call} returned ${String(rc)}` });
    tally(call, rc >= 0);
    return rc;
  };
  /** Something that happened without a raw answer (a kill, an unplug, the engine finishing). */
  const event = (name: string) => {
    opts.trace?.(index, name, "-");
    tally(name, true);
  };

  /** Ids by the open file (iommufd context) that answered with them: a driver uses its own. */
  const fileIds = new WeakMap<object, number[]>();
  let curFile: object | undefined;
  const addId = (id: number, file = curFile) => {
    if (id <= 0) return;
    if (!ids.includes(id)) { ids.push(id); if (ids.length > 48) ids.shift(); }
    if (file) {
      const l = fileIds.get(file) ?? [];
      if (!l.includes(id)) { l.push(id); if (l.length > 16) l.shift(); }
      fileIds.set(file, l);
    }
  };
  /** IOVA ranges some map call answered with success (the well-formed unmaps' targets). */
  const mapped: { iova: bigint; len: bigint }[] = [];
  const addMapped = (iova: bigint, len: bigint) => { mapped.push({ iova, len }); if (mapped.length > 48) mapped.shift(); };
  const addIova = (iova: bigint) => { if (!iovas.includes(iova)) { iovas.push(iova); if (iovas.length > 48) iovas.shift(); } };

  const newProc = (p: Process): Proc => {
    const P: Proc = { p, maps: [], dma: [], maxFd: 2, arena: 0 };
    const a = p.mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (note("mmap", a) >= 0) P.arena = a;
    procs.push(P);
    return P;
  };
  const proc = (c: Choice): Proc => {
    if (!procs.length) newProc(k.createProcess());
    return c.pick(procs);
  };
  const seeFd = (P: Proc, fd: number) => { if (fd >= 0 && fd < 1024) P.maxFd = Math.max(P.maxFd, fd); };
  const openFds = (P: Proc, kind?: string): number[] => {
    const out: number[] = [];
    for (let fd = 0; fd <= P.maxFd; fd++) {
      const f = P.p.file(fd);
      if (f && (!kind || f.ops.kind === kind)) out.push(fd);
    }
    return out;
  };
  const kindOf = (P: Proc, fd: number): string | undefined => P.p.file(fd)?.ops.kind;
  /** An fd: mostly an open one (of `kind` when asked), sometimes closed, never opened, or absurd. */
  const pickFd = (c: Choice, P: Proc, kind?: string): number => {
    const x = c.next();
    if (x < 0.8) {
      const fds = openFds(P, kind);
      if (fds.length) return c.pick(fds);
    }
    if (x < 0.92) return c.int(P.maxFd + 4);
    return c.pick([-1, 1023, 1024, 0x7fffffff, -100]);
  };
  const pickId = (c: Choice): number => {
    const x = c.next();
    if (x < 0.75 && ids.length) return c.pick(ids);
    if (x < 0.85) return 0;
    if (x < 0.95) return 1 + c.int(64);
    return c.pick([0xffffffff, 0x80000000, c.u32()]);
  };
  const pickIova = (c: Choice): bigint => {
    const x = c.next();
    if (x < 0.5 && iovas.length) {
      const v = c.pick(iovas);
      return c.chance(0.8) ? v : BigInt.asUintN(64, v + BigInt(c.pick([1, PAGE, 2 * PAGE, -PAGE])));
    }
    if (x < 0.8) return BigInt(c.int(4096)) * BigInt(PAGE);
    return c.pick([0n, U64_MAX, U64_MAX - 4095n, 1n << 48n, 1n << 63n, 0x1000n + 1n, c.u64()]);
  };
  const pickLen = (c: Choice): bigint => {
    const x = c.next();
    if (x < 0.7) return BigInt((1 + c.int(16)) * PAGE);
    if (x < 0.8) return BigInt(2 * 1024 * 1024);
    return c.pick([0n, 1n, 4095n, U64_MAX, 1n << 40n, U64_MAX - 4095n, c.u64()]);
  };
  /** A user address: a mapping of the process (maybe read-only), inside or across its end, or none. */
  const pickAddr = (c: Choice, P: Proc): bigint => {
    const x = c.next();
    if (x < 0.7 && P.maps.length) {
      const m = c.pick(P.maps);
      return BigInt(c.chance(0.8) ? m.addr : c.chance(0.5) ? m.addr + m.len - PAGE : m.addr + 1);
    }
    if (x < 0.85 && P.arena) return BigInt(P.arena + c.int(4) * PAGE);
    return c.pick([0n, 0x1000n, 0x7fff0000n, U64_MAX, 1n << 47n]);
  };

  /** A well-formed instance of `layout` with fields chosen by what they name, then mutated. */
  const fill = (c: Choice, P: Proc, layout: StructLayout, extra = 0): Uint8Array => {
    // Half the structs are what a driver sends (exact size, zero reserved fields, plausible
    // flags, whole mappings); the other half are mutated.
    const wf = c.chance(0.5);
    const rw = P.maps.filter((m) => m.prot === (PROT_READ | PROT_WRITE));
    const whole = wf && rw.length ? c.pick(rw) : null;
    let size = layout.size;
    if (!wf && c.chance(0.5)) size = c.pick([layout.minSize - 1, layout.minSize, layout.size + 8, 0, 0xffffffff, layout.size + extra]);
    const buf = new Uint8Array(Math.max(layout.size, Math.min(size, layout.size + 64)) + extra);
    const v = new DataView(buf.buffer);
    for (const [name, f] of Object.entries(layout.fields)) {
      const leaf = name.slice(name.lastIndexOf(".") + 1);
      let val: number | bigint;
      if (f.off === 0 && (leaf === "size" || leaf === "argsz")) val = size >>> 0;
      else if (leaf.startsWith("out_")) val = wf || c.chance(0.9) ? 0 : c.u32();
      else if (leaf.includes("reserved")) val = wf || c.chance(0.9) ? 0 : c.u32();
      else if (/(^|_)fd$|^iommufd$/.test(leaf)) val = pickFd(c, P);
      else if (/(^|_)id$/.test(leaf)) {
        const own = curFile ? fileIds.get(curFile) : undefined;
        val = wf && own?.length ? c.pick(own) : wf && ids.length ? c.pick(ids) : pickId(c);
      }
      else if (/uptr|user_va|vaddr|allowed_iovas|_ptr$/.test(leaf)) val = whole ? whole.addr : pickAddr(c, P);
      else if (/iova|start|base_addr|^addr$/.test(leaf)) val = wf ? (iovas.length && c.chance(0.6) ? c.pick(iovas) : BigInt(c.int(4096) * 0x10000)) : pickIova(c);
      else if (wf && /data_len|_entry_len|entry_num/.test(leaf)) val = 0; // no driver data
      else if (/length|size|len$/.test(leaf)) val = whole ? BigInt(c.chance(0.7) ? whole.len : PAGE) : wf ? c.pick([BigInt(PAGE), U64_MAX, 0n]) : pickLen(c);
      else if (leaf.includes("flags")) val = wf ? c.pick(WF_FLAGS[layout.name] ?? [0, 0, 0, 1]) : c.chance(0.7) ? c.int(32) : c.u32();
      else if (wf && /type$/.test(leaf)) val = c.pick([0, 0, 0, 1, IOMMU_HWPT_DATA_SELFTEST, IOMMU_VIOMMU_TYPE_SELFTEST, IOMMU_VEVENTQ_TYPE_SELFTEST]); // NONE/DEFAULT or the selftest's
      else if (/index|count|num|^op$|type|option|pasid|data_len|entry/.test(leaf)) val = c.chance(0.8) ? c.int(9) : c.u32();
      else val = c.chance(0.5) ? c.int(16) : c.u64();
      setField(v, f, val);
    }
    for (let i = layout.size; i < buf.length; i++) buf[i] = wf || c.chance(0.7) ? 0 : c.int(256);
    // An unmap a driver would send: a range mapped earlier, or everything (0, U64_MAX).
    const unmap = layout === iommu_ioas_unmap ? { iova: iommu_ioas_unmap.fields.iova, len: iommu_ioas_unmap.fields.length }
      : layout === vfio_iommu_type1_dma_unmap ? { iova: vfio_iommu_type1_dma_unmap.fields.iova, len: vfio_iommu_type1_dma_unmap.fields.size } : null;
    if (wf && unmap) {
      const r = mapped.length && c.chance(0.7) ? c.pick(mapped) : { iova: 0n, len: U64_MAX };
      setField(v, unmap.iova, r.iova);
      setField(v, unmap.len, r.len);
      if (layout === vfio_iommu_type1_dma_unmap && r.len === U64_MAX) {
        setField(v, vfio_iommu_type1_dma_unmap.fields.flags, 2); // VFIO_DMA_UNMAP_FLAG_ALL
        setField(v, vfio_iommu_type1_dma_unmap.fields.iova, 0);
        setField(v, vfio_iommu_type1_dma_unmap.fields.size, 0);
      }
    }
    return buf;
  };

  /** Reads the answer's out_ fields: new ids, IOVAs and fds for later operations. */
  const harvest = (P: Proc, layout: StructLayout, buf: Uint8Array) => {
    const v = new DataView(buf.buffer);
    for (const [name, f] of Object.entries(layout.fields)) {
      const leaf = name.slice(name.lastIndexOf(".") + 1);
      if (!leaf.startsWith("out_") && !(layout === iommu_ioas_map && leaf === "iova")) continue;
      const x = getField(v, f);
      if (/fd$/.test(leaf)) seeFd(P, x);
      else if (/id$/.test(leaf)) addId(x);
      else if (/iova/.test(leaf)) addIova(BigInt(x));
    }
  };

  const ioctlOf = (c: Choice, P: Proc, fd: number, cmd: number, layout: StructLayout | null, kind: string | undefined) => {
    const name = nameOf(cmd, kind);
    // A device's ids live in the iommufd it is bound to; for an iommufd, its own.
    curFile = P.p.file(fd);
    if (!layout) {
      // Integer or no argument, or a pointer to an int / a string.
      let rc: number;
      if (cmd === VFIO_GROUP_SET_CONTAINER) rc = P.p.ioctlBuf(fd, cmd, new Uint8Array(new Int32Array([pickFd(c, P, "vfio-container")]).buffer));
      else if (cmd === VFIO_GROUP_GET_DEVICE_FD) {
        const names = [...k.devices.map((d) => d.bdf), "0000:00:99.0", "", "0000:00:04.0x"];
        const s = new TextEncoder().encode(`${c.pick(names)}${c.chance(0.9) ? "\0" : ""}`);
        rc = P.p.ioctlBuf(fd, cmd, s.length ? s : new Uint8Array(1));
        seeFd(P, rc);
      } else rc = P.p.ioctl(fd, cmd, c.chance(0.8) ? c.int(12) : c.u32());
      note(name, rc);
      return;
    }
    let extra = 0;
    if (cmd === VFIO_DEVICE_SET_IRQS || cmd === VFIO_DEVICE_PCI_HOT_RESET || cmd === VFIO_DEVICE_FEATURE) extra = 4 * c.int(5);
    if (cmd === VFIO_IOMMU_DIRTY_PAGES) extra = 32;
    const buf = fill(c, P, layout, extra);
    const v = new DataView(buf.buffer);
    // A MAP_FILE of a file that holds this context (the iommufd itself, a vfio device bound to
    // it, a dma-buf of such a device) is a reference cycle the kernel has too: leave those out.
    if (cmd === IOMMU_IOAS_MAP_FILE) {
      const mk = kindOf(P, getField(v, iommu_ioas_map_file.fields.fd));
      if (mk !== undefined && mk !== "memfd" && mk !== "eventfd") return;
    }
    if (cmd === VFIO_DEVICE_SET_IRQS && c.chance(0.8)) {
      // Mostly the shapes drivers send: DATA_NONE / BOOL / EVENTFD with TRIGGER / MASK / UNMASK.
      const count = extra / 4;
      setField(v, vfio_irq_set.fields.argsz, 20 + extra);
      setField(v, vfio_irq_set.fields.flags, c.pick([1, 2, 4]) | c.pick([8, 16, 32]));
      setField(v, vfio_irq_set.fields.index, c.int(6));
      setField(v, vfio_irq_set.fields.start, c.int(3));
      setField(v, vfio_irq_set.fields.count, c.chance(0.9) ? count : c.u32());
      for (let i = 0; i < count; i++) v.setInt32(20 + 4 * i, c.chance(0.7) ? pickFd(c, P, "eventfd") : c.pick([-1, 0, 1]), true);
    }
    if (cmd === VFIO_DEVICE_FEATURE && c.chance(0.7)) {
      setField(v, vfio_device_feature.fields.argsz, 8 + extra);
      setField(v, vfio_device_feature.fields.flags, c.int(12) | c.pick([0, 1 << 16, 1 << 17, 1 << 18, 3 << 16]));
    }
    if (cmd === VFIO_DEVICE_PCI_HOT_RESET && c.chance(0.7)) {
      setField(v, vfio_pci_hot_reset.fields.argsz, 12 + extra);
      setField(v, vfio_pci_hot_reset.fields.count, extra / 4);
      for (let i = 0; i < extra / 4; i++) v.setInt32(12 + 4 * i, pickFd(c, P, c.chance(0.5) ? "vfio-group" : "iommufd"), true);
    }
    if (cmd === IOMMU_TEST_CMD && c.chance(0.5)) setField(v, iommu_test_cmd.fields.op, 1 + c.int(24));
    const rc = note(name, P.p.ioctlBuf(fd, cmd, buf));
    if (rc >= 0) {
      harvest(P, layout, buf);
      if (cmd === VFIO_DEVICE_BIND_IOMMUFD) addId(getField(v, vfio_device_bind_iommufd.fields.out_devid));
      if (cmd === VFIO_IOMMU_MAP_DMA) {
        addIova(v.getBigUint64(vfio_iommu_type1_dma_map.fields.iova.off, true));
        addMapped(v.getBigUint64(vfio_iommu_type1_dma_map.fields.iova.off, true), v.getBigUint64(vfio_iommu_type1_dma_map.fields.size.off, true));
      }
      if (cmd === IOMMU_IOAS_MAP || cmd === IOMMU_IOAS_COPY) {
        const f = cmd === IOMMU_IOAS_MAP ? iommu_ioas_map.fields : null;
        if (f) addMapped(v.getBigUint64(f.iova.off, true), v.getBigUint64(f.length.off, true));
        else addMapped(v.getBigUint64(iommu_ioas_copy.fields.dst_iova.off, true), v.getBigUint64(iommu_ioas_copy.fields.length.off, true));
      }
      if (cmd === IOMMU_FAULT_QUEUE_ALLOC || cmd === IOMMU_VEVENTQ_ALLOC || cmd === VFIO_DEVICE_FEATURE) seeFd(P, rc);
    }
  };

  const ioctlOp = (c: Choice) => {
    const P = proc(c);
    const fd = pickFd(c, P);
    const kind = kindOf(P, fd);
    const table = kind === "iommufd" ? IOMMUFD_CMDS : kind === "vfio-device" ? DEVICE_CMDS
      : kind === "vfio-container" ? CONTAINER_CMDS : kind === "vfio-group" ? GROUP_CMDS : ALL_CMDS;
    if (c.chance(0.04)) return note(`ioctl:random`, P.p.ioctl(fd, c.u32(), c.chance(0.5) ? 0 : pickAddr(c, P)));
    const [cmd, layout] = c.chance(0.9) ? c.pick(table) : c.pick(ALL_CMDS);
    ioctlOf(c, P, fd, cmd, layout, kind);
  };

  /** An ioctl whose argument pointer is itself the fuzzed part: unmapped, read-only, NULL, straddling. */
  const ioctlPtrOp = (c: Choice) => {
    const P = proc(c);
    const fd = pickFd(c, P);
    const kind = kindOf(P, fd);
    const table = kind === "iommufd" ? IOMMUFD_CMDS : kind === "vfio-device" ? DEVICE_CMDS : ALL_CMDS;
    const [cmd, layout] = c.pick(table);
    let ptr: bigint = pickAddr(c, P);
    if (layout && c.chance(0.5)) {
      // A well-formed struct whose tail lies past the end of its mapping.
      const ms = P.maps.filter((m) => m.prot & PROT_WRITE);
      if (ms.length) {
        const m = c.pick(ms);
        const at = m.addr + m.len - Math.max(1, c.int(layout.size));
        const buf = fill(c, P, layout);
        P.p.writeMemory(at, buf.subarray(0, m.addr + m.len - at));
        ptr = BigInt(at);
      }
    }
    note(`${nameOf(cmd, kind)}:ptr`, P.p.ioctl(fd, cmd, ptr));
  };

  const PATHS = () => [
    "/dev/iommu", "/dev/vfio/vfio", ...k.devices.map((d) => `/dev/vfio/devices/vfio${d.index}`),
    ...k.devices.map((d) => `/dev/vfio/${d.iommuGroup}`), "/dev/vfio/devices/vfio9", "/dev/vfio/77", "/dev/nope",
    "/sys/bus/pci/devices/0000:00:04.0/vendor", "/dev/vfio",
  ];

  const openOp = (c: Choice) => {
    const P = proc(c);
    const flags = c.pick([O_RDWR, O_RDWR, O_RDWR, O_RDONLY, O_WRONLY, O_RDWR | O_NONBLOCK]);
    const fd = note("open", P.p.open(c.pick(PATHS()), flags));
    seeFd(P, fd);
  };

  const mmapOp = (c: Choice) => {
    const P = proc(c);
    const mapped = P.maps.reduce((a, m) => a + m.len, 0);
    if (mapped > MAP_BUDGET) return munmapOp(c);
    const len = c.chance(0.9) ? (1 + c.int(16)) * PAGE : c.pick([2 * 1024 * 1024, 0, 1, PAGE + 1]);
    const prot = c.chance(0.8) ? PROT_READ | PROT_WRITE : c.pick([PROT_READ, 0, PROT_WRITE]);
    const flags = MAP_ANONYMOUS | (c.chance(0.7) ? MAP_PRIVATE : MAP_SHARED);
    const a = note("mmap", P.p.mmap(0, len, prot, flags, -1, 0));
    if (a >= 0) P.maps.push({ addr: a, len: Math.ceil(len / PAGE) * PAGE, prot });
  };

  /** mmap of a file: a device region (BAR0, config: not mmappable), a memfd, an eventfd, the iommufd. */
  const mmapFileOp = (c: Choice) => {
    const P = proc(c);
    const fd = pickFd(c, P);
    const off = kindOf(P, fd) === "vfio-device"
      ? c.pick([VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_BAR0_REGION_INDEX), VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX), BigInt(PAGE)])
      : BigInt(c.int(3) * PAGE);
    const len = c.pick([PAGE, 2 * PAGE, 16 * PAGE]);
    const prot = c.pick([PROT_READ | PROT_WRITE, PROT_READ]);
    const a = note("mmap:file", P.p.mmap(0, len, prot, c.chance(0.8) ? MAP_SHARED : MAP_PRIVATE, fd, off));
    if (a >= 0) P.maps.push({ addr: a, len, prot });
  };

  const munmapOp = (c: Choice) => {
    const P = proc(c);
    if (P.maps.length && c.chance(0.9)) {
      const i = c.int(P.maps.length);
      const m = P.maps[i];
      if (c.chance(0.8)) {
        note("munmap", P.p.munmap(m.addr, m.len));
        P.maps.splice(i, 1);
        P.dma = P.dma.filter((d) => d.vaddr < m.addr || d.vaddr >= m.addr + m.len);
      } else note("munmap:part", P.p.munmap(m.addr + PAGE * c.int(m.len / PAGE), PAGE));
      // A partial unmap leaves the rest mapped; the record stays (later uses of the hole fault).
    } else note("munmap:random", P.p.munmap(c.pick([0, 1, PAGE, 0x7fff0000, P.arena + 1]), c.pick([0, PAGE, 2 ** 40])));
  };

  const touchOp = (c: Choice) => {
    const P = proc(c);
    if (!P.maps.length) return;
    const m = c.pick(P.maps);
    const data = new Uint8Array(PAGE).fill(c.int(256));
    note("touch", P.p.writeMemory(m.addr + PAGE * c.int(m.len / PAGE), data));
  };

  /** read/write/pread/pwrite on any fd; a blocking file is used only when poll says it would not block. */
  const rwOp = (c: Choice) => {
    const P = proc(c);
    const fd = pickFd(c, P);
    const write = c.chance(0.5);
    let buf = new Uint8Array(c.pick([1, 4, 8, 64, 256, 4096]));
    if (write) for (let i = 0; i < buf.length; i++) buf[i] = c.int(256);
    const kind = kindOf(P, fd);
    const fl = P.p.fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK)) {
      const pf: PollFd[] = [{ fd, events: write ? POLLOUT : POLLIN }];
      if (P.p.poll(pf, 0) <= 0 || !(pf[0].revents! & (write ? POLLOUT : POLLIN))) return;
      // POLLOUT promises room for 1, not for any value: a blocking eventfd gets a small add.
      if (write && kind === "eventfd") buf = new Uint8Array(new BigUint64Array([BigInt(c.int(4))]).buffer);
    }
    const off = kind === "vfio-device"
      ? VFIO_PCI_INDEX_TO_OFFSET(c.int(10)) + BigInt(c.chance(0.8) ? c.int(0x100) : c.int(0x2000))
      : BigInt(c.int(8192));
    // read, write, pread, pwrite: the direction polled above.
    const how = (write ? 1 : 0) + (c.chance(0.5) ? 2 : 0);
    const rc = how === 0 ? P.p.read(fd, buf) : how === 1 ? P.p.write(fd, buf) : how === 2 ? P.p.pread(fd, buf, off) : P.p.pwrite(fd, buf, off);
    note(["read", "write", "pread", "pwrite"][how], rc);
  };

  /** The ioat engine: a driver's register writes over pwrite, sometimes a whole descriptor chain over known DMA memory. */
  const mmioOp = (c: Choice) => {
    const P = proc(c);
    const bar = VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_BAR0_REGION_INDEX);
    const cfg = VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX);
    const dmas = P.dma.filter((d) => kindOf(P, d.devFd) === "vfio-device");
    if (dmas.length && c.chance(0.6)) {
      const d = c.pick(dmas);
      const n = 1 + c.int(Math.min(8, Math.floor(d.len / 2 / 64)));
      const desc = new Uint8Array(64 * n);
      const v = new DataView(desc.buffer);
      const half = Math.floor(d.len / 2);
      for (let i = 0; i < n; i++) {
        v.setUint32(64 * i, 1 + c.int(256), true); // size
        v.setUint32(64 * i + 4, (i === n - 1 ? 0x9 : 0) | (c.chance(0.1) ? c.u32() & 0xff000000 : 0), true); // INT_EN|COMPL_WRITE
        v.setBigUint64(64 * i + 8, d.iova + BigInt(half + c.int(half - 256)), true); // src
        v.setBigUint64(64 * i + 16, d.iova + BigInt(64 * n + 8 + c.int(half - 64 * n - 264)), true); // dst
        v.setBigUint64(64 * i + 24, d.iova + BigInt(64 * (i + 1)), true); // next
      }
      if (note("mmio:desc", P.p.writeMemory(d.vaddr, desc)) < 0) return;
      const w = (off: bigint, bytes: number, val: bigint) => {
        const b = new Uint8Array(bytes);
        const bv = new DataView(b.buffer);
        if (bytes === 2) bv.setUint16(0, Number(val), true);
        else if (bytes === 8) bv.setBigUint64(0, val, true);
        else bv.setUint8(0, Number(val));
        return note("mmio", P.p.pwrite(d.devFd, b, off));
      };
      w(cfg + BigInt(PCI_COMMAND), 2, 0x6n);
      w(bar + BigInt(CHAN), 2, 0x9n); // CHANCTRL: INT_REARM | ANY_ERR_ABORT_EN
      w(bar + BigInt(CHAN + 0x18), 8, d.iova + BigInt(64 * n)); // CHANCMP
      w(bar + BigInt(CHAN + 0x10), 8, d.iova); // CHAINADDR
      w(bar + BigInt(CHAN + 0x06), 2, BigInt(n)); // DMACOUNT
      if (c.chance(0.3)) {
        // Wait (bounded) for the engine's worker to finish the chain.
        const sts = new Uint8Array(8);
        const until = performance.now() + 20;
        while (performance.now() < until) {
          if (P.p.pread(d.devFd, sts, bar + BigInt(CHAN + 0x08)) !== 8) break;
          const st = Number(new DataView(sts.buffer).getBigUint64(0, true) & 7n);
          if (st === 1 || st === 3) { event(st === 1 ? "ioat:done" : "ioat:halted"); break; }
        }
      }
      return;
    }
    const fd = pickFd(c, P, "vfio-device");
    const [off, size] = c.pick(IOAT_REGS);
    const b = new Uint8Array(size);
    for (let i = 0; i < size; i++) b[i] = c.chance(0.5) ? 0 : c.int(256);
    if (c.chance(0.2)) note("mmio:cfg", P.p.pwrite(fd, b.subarray(0, 2), cfg + BigInt(PCI_COMMAND)));
    else if (c.chance(0.5)) note("mmio", P.p.pwrite(fd, b, bar + BigInt(off)));
    else note("mmio:read", P.p.pread(fd, b, bar + BigInt(off)));
  };

  const dmaOp = (c: Choice) => {
    const devs = k.devices;
    if (!devs.length) return;
    const d: DeviceHandle = c.pick(devs);
    const buf = new Uint8Array(c.pick([1, 8, 64, PAGE, 3 * PAGE]));
    const iova = pickIova(c);
    note(c.chance(0.5) ? "dma:read" : "dma:write", c.chance(0.5) ? d.dmaRead(iova, buf) : d.dmaWrite(iova, buf));
  };

  // -- well-formed sequences, so that random operations start from deep states --------------
  /** A struct of `layout` with its size field (argsz / size at 0) set and `init`'s fields. */
  const structOf = <F extends string>(layout: StructLayout<F>, init: Partial<Record<F, number | bigint>>) => {
    const b = structImage(layout, init);
    const v = new DataView(b.buffer);
    return { b, v, get: (f: F) => getField(v, layout.fields[f]) };
  };

  /** IOMMU_IOAS_ALLOC on `ifd` (which becomes the file ids are filed under): the new id, or -errno. */
  const allocIoas = (P: Proc, ifd: number): number => {
    curFile = P.p.file(ifd);
    const a = structOf(iommu_ioas_alloc, {});
    if (note("setup:IOAS_ALLOC", P.p.ioctlBuf(ifd, IOMMU_IOAS_ALLOC, a.b)) < 0) return -1;
    const ioas = a.get("out_ioas_id");
    addId(ioas);
    return ioas;
  };

  /** 2-7 populated-on-demand pages for DMA and the IOVA they go to (one 64 KiB slot of 1024). */
  const dmaMemory = (c: Choice, P: Proc): { va: number; len: number; iova: bigint } | null => {
    const len = (2 + c.int(6)) * PAGE;
    const va = note("setup:mmap", P.p.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (va < 0) return null;
    P.maps.push({ addr: va, len, prot: PROT_READ | PROT_WRITE });
    return { va, len, iova: BigInt(1 + c.int(1024)) * 0x10000n };
  };

  const setupIommufd = (c: Choice) => {
    const P = proc(c);
    const ifd = note("setup:open iommufd", P.p.open("/dev/iommu", O_RDWR));
    if (ifd < 0) return;
    seeFd(P, ifd);
    const ioas = allocIoas(P, ifd);
    if (ioas < 0) return;
    const devs = k.devices.filter((d) => d.index >= 0);
    if (!devs.length) return;
    const dev = c.pick(devs);
    const dfd = note("setup:open cdev", P.p.open(`/dev/vfio/devices/vfio${dev.index}`, O_RDWR));
    if (dfd < 0) return;
    seeFd(P, dfd);
    const b = structOf(vfio_device_bind_iommufd, { iommufd: ifd });
    if (note("setup:BIND", P.p.ioctlBuf(dfd, VFIO_DEVICE_BIND_IOMMUFD, b.b)) < 0) return;
    addId(b.get("out_devid"));
    // What the device file may attach to: its iommufd's IOAS.
    addId(ioas, P.p.file(dfd));
    const t = structOf(vfio_device_attach_iommufd_pt, { pt_id: ioas });
    if (note("setup:ATTACH", P.p.ioctlBuf(dfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, t.b)) < 0) return;
    addId(t.get("pt_id"));
    const m = dmaMemory(c, P);
    if (!m) return;
    const map = structOf(iommu_ioas_map, { flags: 7, ioas_id: ioas, user_va: m.va, length: m.len, iova: m.iova });
    if (note("setup:IOAS_MAP", P.p.ioctlBuf(ifd, IOMMU_IOAS_MAP, map.b)) < 0) return;
    addIova(m.iova);
    addMapped(m.iova, BigInt(m.len));
    P.dma.push({ vaddr: m.va, iova: m.iova, len: m.len, devFd: dfd });
  };

  const setupLegacy = (c: Choice) => {
    const P = proc(c);
    const devs = k.devices.filter((d) => d.index >= 0);
    if (!devs.length) return;
    const dev = c.pick(devs);
    const cfd = note("setup:open container", P.p.open("/dev/vfio/vfio", O_RDWR));
    if (cfd < 0) return;
    seeFd(P, cfd);
    const gfd = note("setup:open group", P.p.open(`/dev/vfio/${dev.iommuGroup}`, O_RDWR));
    if (gfd < 0) return;
    seeFd(P, gfd);
    if (note("setup:SET_CONTAINER", P.p.ioctlBuf(gfd, VFIO_GROUP_SET_CONTAINER, new Uint8Array(new Int32Array([cfd]).buffer))) < 0) return;
    if (note("setup:SET_IOMMU", P.p.ioctl(cfd, VFIO_SET_IOMMU, c.pick([1, 3, 3]))) < 0) return;
    const dfd = note("setup:GET_DEVICE_FD", P.p.ioctlBuf(gfd, VFIO_GROUP_GET_DEVICE_FD, new TextEncoder().encode(`${dev.bdf}\0`)));
    seeFd(P, dfd);
    const m = dmaMemory(c, P);
    if (!m) return;
    const map = structOf(vfio_iommu_type1_dma_map, { flags: 3, vaddr: m.va, iova: m.iova, size: m.len });
    if (note("setup:MAP_DMA", P.p.ioctlBuf(cfd, VFIO_IOMMU_MAP_DMA, map.b)) < 0) return;
    addIova(m.iova);
    addMapped(m.iova, BigInt(m.len));
    if (dfd >= 0) P.dma.push({ vaddr: m.va, iova: m.iova, len: m.len, devFd: dfd });
  };

  const setupMock = (c: Choice) => {
    const P = proc(c);
    const ifds = openFds(P, "iommufd");
    const ifd = ifds.length && c.chance(0.7) ? c.pick(ifds) : note("setup:open iommufd", P.p.open("/dev/iommu", O_RDWR));
    if (ifd < 0) return;
    seeFd(P, ifd);
    const ioas = allocIoas(P, ifd);
    if (ioas < 0) return;
    const t = structOf(iommu_test_cmd, { op: IOMMU_TEST_OP_MOCK_DOMAIN, id: ioas });
    // The out_ fields (stdev, hwpt, idev ids) are what harvest files.
    if (note("setup:MOCK_DOMAIN", P.p.ioctlBuf(ifd, IOMMU_TEST_CMD, t.b)) >= 0) harvest(P, iommu_test_cmd, t.b);
  };

  const forkOp = (c: Choice) => {
    if (procs.length >= MAX_PROCS) return killOp(c);
    const P = proc(c);
    const child = P.p.fork();
    if (typeof child === "number") { note("fork", child); return; }
    note("fork", child.pid);
    // The child's address space is a copy: the same mappings at the same addresses.
    procs.push({ p: child, maps: P.maps.map((m) => ({ ...m })), dma: P.dma.map((d) => ({ ...d })), maxFd: P.maxFd, arena: P.arena });
  };

  const killOp = (c: Choice) => {
    if (!procs.length) return;
    const i = c.int(procs.length);
    procs[i].p.kill();
    procs.splice(i, 1);
    event("kill");
  };

  const unplugOp = (c: Choice) => {
    const devs = k.devices;
    if (devs.length <= 1) return;
    const d = c.pick(devs);
    const cfg = DEVICES.find((x) => x.bdf === d.bdf)!;
    const u = { cfg, done: false, promise: d.unplug() };
    u.promise = u.promise.then(() => { u.done = true; });
    unplugging.push(u);
    event("unplug");
  };

  const replugOp = (c: Choice) => {
    const ready = unplugging.filter((u) => u.done);
    if (!ready.length) return;
    const u = c.pick(ready);
    unplugging.splice(unplugging.indexOf(u), 1);
    k.addDevice(u.cfg);
    event("replug");
  };

  const injectOp = (c: Choice) => {
    // The nth allocation, copy or pin of the next call fails: whatever fails must leave nothing.
    // (A process to run it in comes first: spawning one is the harness's, not a syscall.)
    if (!procs.length) newProc(k.createProcess());
    failNth(k, 1 + c.int(12));
    try {
      const x = c.int(5);
      if (x === 0) setupIommufd(c);
      else if (x === 1) setupLegacy(c);
      else if (x === 2) setupMock(c);
      else if (x === 3) forkOp(c);
      else ioctlOp(c);
    } finally {
      failNth(k, 0);
    }
  };

  const exec = (op: Op) => {
    const c = new Choice(op.s);
    curFile = undefined;
    switch (op.k) {
      case "open": return openOp(c);
      case "close": { const P = proc(c); return note("close", P.p.close(pickFd(c, P))); }
      case "dup": { const P = proc(c); const fd = note("dup", P.p.fcntl(pickFd(c, P), F_DUPFD, c.int(8))); return seeFd(P, fd); }
      case "fcntl": { const P = proc(c); return note("fcntl", P.p.fcntl(pickFd(c, P), c.pick([F_GETFL, F_SETFL]), c.pick([0, O_NONBLOCK]))); }
      case "ioctl": return ioctlOp(c);
      case "ioctlPtr": return ioctlPtrOp(c);
      case "mmap": return mmapOp(c);
      case "mmapFile": return mmapFileOp(c);
      case "munmap": return munmapOp(c);
      case "touch": return touchOp(c);
      case "rw": return rwOp(c);
      case "poll": { const P = proc(c); return note("poll", P.p.poll([{ fd: pickFd(c, P), events: POLLIN | POLLOUT }], 0)); }
      case "eventfd": { const P = proc(c); const fd = note("eventfd", P.p.eventfd(c.int(3), c.pick([0, 0o4000, 1, c.u32()]))); return seeFd(P, fd); }
      case "memfd": {
        const P = proc(c);
        const fd = note("memfd_create", P.p.memfd_create("fuzz", c.pick([0, 1, 2, 4])));
        seeFd(P, fd);
        if (fd >= 0) note("ftruncate", P.p.ftruncate(fd, c.pick([0, PAGE, 4 * PAGE, 1])));
        return;
      }
      case "fork": return forkOp(c);
      case "kill": return killOp(c);
      case "unplug": return unplugOp(c);
      case "replug": return replugOp(c);
      case "dma": return dmaOp(c);
      case "mmio": return mmioOp(c);
      case "inject": return injectOp(c);
      case "setupIommufd": return setupIommufd(c);
      case "setupLegacy": return setupLegacy(c);
      case "setupMock": return setupMock(c);
    }
  };

  for (index = 0; index < ops.length; index++) {
    const op = ops[index];
    try {
      opts.onOp?.(index, op, k);
      opts.trace?.(index, `op ${op.k}`, op.s);
      exec(op);
    } catch (e) {
      failNth(k, 0);
      const v = e instanceof Violated ? e.v : { kind: "throw" as const, detail: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
      const stack = e instanceof Error && !(e instanceof Violated) ? e.stack?.split("\n").slice(1, 6).map((l) => l.trim()).join(" < ") : undefined;
      violations.push({ index, op, ...v, ...(stack ? { stack } : {}) });
      break;
    }
    if (opts.deep) {
      const bad = checkPageTables(k, procs.map((P) => P.p));
      if (bad) { violations.push({ index, op, kind: "throw", detail: bad }); break; }
    }
    // Replug completions arrive as microtasks: let them run now and then.
    if ((index & 63) === 63) await Promise.resolve();
  }

  // Teardown: every process exits, every device goes; then nothing may be left.
  try {
    for (const P of procs.splice(0)) P.p.kill();
    await Promise.all(unplugging.map((u) => u.promise));
    for (const d of [...k.devices]) await d.unplug();
    // An engine's worker gives its frames back once its thread is gone: wait for that (bounded).
    // Only worth waiting for when nothing else is left (a leak elsewhere will not go away).
    const settled = () => { const s = k.stats(); return s.openFiles === 0 && s.processes === 0 && s.iommufdObjects === 0; };
    const until = performance.now() + 3000;
    while (settled() && k.stats().framesFree !== ref.framesFree && performance.now() < until) await new Promise((r) => setTimeout(r, 5));
    const s = k.stats();
    const left: string[] = [];
    const want: [string, number][] = [
      ["iommufdContexts", 0], ["iommufdObjects", 0], ["pinnedPages", 0], ["openFiles", 0], ["processes", 0],
      ["vfioDevices", 0], ["committedPages", ref.committedPages], ["framesFree", ref.framesFree],
    ];
    for (const [name, v] of want) if (s[name] !== v) left.push(`${name} ${s[name]} (want ${v})`);
    if (left.length) violations.push({ index: ops.length, op: null, kind: "teardown", detail: `teardown left ${left.join(", ")}` });
  } catch (e) {
    violations.push({ index: ops.length, op: null, kind: "throw", detail: `teardown threw ${e instanceof Error ? e.message : String(e)}` });
  }
  try {
    await k.close();
  } catch (e) {
    violations.push({ index: ops.length, op: null, kind: "throw", detail: `kernel.close threw ${e instanceof Error ? e.message : String(e)}` });
  }
  return { ops: Math.min(ops.length, index), ms: performance.now() - t0, violations, calls };
}

/**
 * The deep check: every page present in a process's page table maps a frame the allocator has
 * allocated (a freed frame still mapped is a use-after-free waiting to corrupt memory). Reads
 * the mm's internals: a debugging aid, not an invariant of the raw surface.
 */
function checkPageTables(k: Kernel, ps: Process[]): string | null {
  const x = (k as unknown as { kcore: { core: { x: { radix_lookup(r: number, a: number): number; frame_valid(f: number): number } } } }).kcore.core.x;
  for (const p of ps) {
    const mm = p.mm as unknown as { present: Set<number>; root: number; findVma(a: number): { start: number; end: number; kind: string; flags: number } | undefined };
    for (const a of mm.present) {
      const leaf = x.radix_lookup(mm.root, a) >>> 0;
      if (leaf !== 0 && x.frame_valid(leaf >>> 12)) continue;
      const v = mm.findVma(a);
      return `pid ${p.pid}: page 0x${a.toString(16)} maps ${leaf ? `freed frame ${leaf >>> 12}` : "nothing"} (vma ${v ? `0x${v.start.toString(16)}-0x${v.end.toString(16)} ${v.kind} flags ${v.flags}` : "none"})`;
    }
  }
  return null;
}

/** What identifies a failure across runs of different lists: its kind and its text without numbers. */
export function signature(v: Violation): string {
  return `${v.kind}|${v.op?.k ?? "-"}|${v.detail.replace(/0x[0-9a-f]+|\d+/g, "#")}`;
}

/**
 * Shrinks a failing list while the same failure (signature) still shows: drops chunks, halving
 * their size down to single operations (delta debugging), within `budget` runs.
 */
export async function minimise(ops: readonly Op[], sig: string, budget = 300, opts: RunOptions = {}): Promise<Op[]> {
  const fails = async (list: readonly Op[]) => {
    const r = await run(list, opts);
    return r.violations.some((v) => signature(v) === sig);
  };
  // Operations after the failing one play no part in it (a teardown failure keeps them all).
  const first = await run(ops, opts);
  const v = first.violations.find((x) => signature(x) === sig);
  let cur = v && v.op ? ops.slice(0, v.index + 1) : ops.slice();
  let chunk = Math.max(1, Math.floor(cur.length / 2));
  while (budget > 0) {
    let i = 0;
    let removed = false;
    while (i < cur.length && budget > 0) {
      const cand = cur.slice(0, i).concat(cur.slice(i + chunk));
      budget--;
      if (cand.length && await fails(cand)) { cur = cand; removed = true; } else i += chunk;
    }
    if (chunk === 1 && !removed) break;
    chunk = Math.max(1, Math.floor(chunk / 2));
  }
  return cur;
}
