// One device-DMA path (issue 11 part 4): a device's DMA from the kernel's thread
// (DeviceHandle.dmaRead/dmaWrite) and from a worker (vfio-emu/worker's WorkerDevice) is one
// mechanism, so the same transfer gives the same result on every container type and in every
// state: the return value, the bytes that reach the caller's buffer or memory (on a fault
// mid-buffer: exactly the bytes before the faulting IOVA), and the one fault record written
// (IOVA, direction, reason, domain and its serial; only the worker slot differs).

import { afterEach, describe, expect, it } from "vitest";
import type { CoreConstants } from "../src/wasm/core.js";
import { Worker } from "node:worker_threads";
import { MAP_ANONYMOUS, MAP_POPULATE, MAP_SHARED, O_RDWR, PROT_READ, PROT_WRITE, type DeviceHandle, type Kernel, type Process } from "../src/index.js";
import { attachCore, type Core } from "../src/worker.js";
import {
  attach, bind, boot, detach, errno, ioasAlloc, ioasMapArg, IOMMU_IOAS_MAP, IOMMU_IOAS_UNMAP, MAP_FIXED_IOVA, MAP_READABLE,
  openIommufd, struct,
} from "./vfio/util.js";
import {
  getDeviceFd, mapDma, MAP_READ, MAP_WRITE, setContainer, unmapDma, VFIO_GROUP_UNSET_CONTAINER, VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU,
} from "./vfio/legacy_util.js";
import { firstDiff } from "./toolkit/memory.js";

const PG = 4096;
const BDF = "0000:00:04.0";
const BDF2 = "0000:00:05.0";
const GROUP = 7;
const IOVA = 0x100000;
const BUF = 8 * PG;
/** IOVA + [0, RW) read/write, [RW, RW + RO) read-only, the rest of the buffer unmapped. */
const RW = 4 * PG;
const RO = 2 * PG;
const FAULT_REASON = { unmapped: 1, perm: 2, blocked: 3 } as const;

const MODES = ["iommufd", "iommufd_compat_type1", "iommufd_compat_type1v2", "vfio_type1_iommu", "vfio_type1v2_iommu"] as const;
type Mode = (typeof MODES)[number];

/** What memory holds before each transfer, what a device write sends, what a read's buffer starts as. */
const MEM = Uint8Array.from({ length: BUF }, (_, i) => (i * 7 + 3) & 0xff);
const DATA = Uint8Array.from({ length: BUF }, (_, i) => (i * 13 + 5) & 0xff);
const FILL = 0xee;

interface Op { name: string; write: boolean; off: number; len: number }
const OPS: Op[] = [
  // Each is longer than one bounce buffer (16 KiB), so a fault can land in a later one.
  { name: "read faulting mid-buffer", write: false, off: 0x800, len: 0x7000 },
  { name: "write faulting mid-buffer", write: true, off: 0x800, len: 0x7000 },
  { name: "read within the mappings", write: false, off: 0x100, len: 0x5000 },
  { name: "write within the writable mapping", write: true, off: 0x10, len: 0x3000 },
];

interface Rec { iova: bigint; flags: number; dom: number; serial: number; slot: number }
interface Seen { rc: number; out: Uint8Array | null; mem: Uint8Array; recs: number; rec: Rec | null }

/** Fault record number `seq` of the shared ring, field by field. */
function record(core: Core, seq: number): Rec {
  const r = core.x.fault_rec(seq) >>> 0;
  expect(r).not.toBe(0);
  const w = (f: keyof CoreConstants) => core.u32[(r + core.consts[f]) >>> 2];
  return {
    iova: (BigInt(w("FAULT_IOVA_HI")) << 32n) | BigInt(w("FAULT_IOVA_LO")),
    flags: w("FAULT_FLAGS"), dom: w("FAULT_DOM"), serial: w("FAULT_SERIAL"), slot: w("FAULT_SLOT"),
  };
}

class Rpc {
  readonly w: Worker;
  slot = -1;
  private next: ((m: { rc: number; out: Uint8Array | null; slot?: number }) => void) | null = null;
  readonly ready: Promise<void>;

  constructor(init: unknown) {
    this.w = new Worker(new URL("./workers/dma-rpc.mjs", import.meta.url), { workerData: { init } });
    this.w.on("message", (m) => this.next?.(m));
    this.ready = new Promise((resolve, reject) => {
      this.next = (m) => { this.slot = m.slot!; resolve(); };
      this.w.once("error", reject);
    });
  }

  call(msg: Record<string, unknown>): Promise<{ rc: number; out: Uint8Array | null }> {
    return new Promise((resolve) => { this.next = resolve; this.w.postMessage(msg); });
  }

  async close(): Promise<void> {
    await this.call({ op: "exit" });
    await this.w.terminate();
  }
}

interface Fx {
  k: Kernel; p: Process; core: Core; rpc: Rpc; buf: number;
  /** Steps of the mode's life: each leaves the device in the state it names. */
  blocked(): void; attached(): void; mapped(): void; unmapped(): void; detached(): void;
}

let fx: Fx | null = null;
afterEach(async () => {
  if (fx) { await fx.rpc.close(); await fx.k.close(); }
  fx = null;
});

async function setup(mode: Mode): Promise<Fx> {
  const k = await boot([{ bdf: BDF, model: "memcpy", iommuGroup: GROUP }]);
  const p = k.createProcess({ memlockBytes: Infinity });
  const buf = p.mmap(0, BUF, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  expect(buf).toBeGreaterThan(0);
  const core = await attachCore(k.workerInit());
  const rpc = new Rpc(k.workerInit());
  await rpc.ready;
  if (mode === "iommufd") {
    let i = -1, d = -1, ioas = -1;
    const unmap = (iova: number, len: number) =>
      p.ioctlBuf(i, IOMMU_IOAS_UNMAP, struct(24, [[0, 4, 24], [4, 4, ioas], [8, 8, iova], [16, 8, len]]));
    return {
      k, p, core, rpc, buf,
      blocked() {
        i = openIommufd(p);
        d = p.open("/dev/vfio/devices/vfio0", O_RDWR);
        expect(bind(p, d, i)).toBeGreaterThan(0);
      },
      attached() {
        ioas = ioasAlloc(p, i);
        expect(attach(p, d, ioas)).toBeGreaterThan(0);
      },
      mapped() {
        expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, buf, RW, IOVA))).toBe(0);
        expect(p.ioctlBuf(i, IOMMU_IOAS_MAP, ioasMapArg(ioas, buf + RW, RO, IOVA + RW, MAP_FIXED_IOVA | MAP_READABLE))).toBe(0);
      },
      unmapped() {
        expect(unmap(IOVA, RW)).toBe(0);
        expect(unmap(IOVA + RW, RO)).toBe(0);
      },
      detached() { expect(detach(p, d)).toBe(0); },
    };
  }
  const compat = mode.startsWith("iommufd_compat");
  const type = mode.endsWith("v2") ? VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU;
  let c = -1, g = -1, d = -1;
  return {
    k, p, core, rpc, buf,
    blocked() {
      c = p.open(compat ? "/dev/iommu" : "/dev/vfio/vfio", O_RDWR);
      g = p.open(`/dev/vfio/${GROUP}`, O_RDWR);
      expect(setContainer(p, g, c)).toBe(0);
    },
    attached() {
      expect(p.ioctl(c, VFIO_SET_IOMMU, type)).toBe(0);
      d = getDeviceFd(p, g, BDF);
      expect(d).toBeGreaterThanOrEqual(0);
    },
    mapped() {
      expect(mapDma(p, c, buf, IOVA, RW, MAP_READ | MAP_WRITE)).toBe(0);
      expect(mapDma(p, c, buf + RW, IOVA + RW, RO, MAP_READ)).toBe(0);
    },
    unmapped() {
      expect(unmapDma(p, c, IOVA, RW)).toEqual({ rc: 0, size: BigInt(RW) });
      expect(unmapDma(p, c, IOVA + RW, RO)).toEqual({ rc: 0, size: BigInt(RO) });
    },
    detached() {
      expect(p.close(d)).toBe(0);
      expect(p.ioctl(g, VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    },
  };
}

/** The same transfer by `h` from the kernel's thread, then from the worker, memory reset before each. */
async function both(f: Fx, h: DeviceHandle, op: Op): Promise<{ main: Seen; worker: Seen }> {
  const iova = IOVA + op.off;
  const run = async (from: "main" | "worker"): Promise<Seen> => {
    expect(f.p.writeMemory(f.buf, MEM)).toBe(0);
    const head = f.core.x.fault_head() >>> 0;
    let rc: number;
    let out: Uint8Array | null = null;
    if (from === "main") {
      if (op.write) rc = h.dmaWrite(iova, DATA.slice(0, op.len));
      else rc = h.dmaRead(iova, out = new Uint8Array(op.len).fill(FILL));
    } else {
      const r = await f.rpc.call({ dev: h.index, iova, len: op.len, write: op.write, data: DATA.slice(0, op.len), fill: FILL });
      rc = r.rc;
      out = r.out;
    }
    const mem = new Uint8Array(BUF);
    expect(f.p.readMemory(f.buf, mem)).toBe(0);
    const recs = (f.core.x.fault_head() >>> 0) - head;
    return { rc, out, mem, recs, rec: recs > 0 ? record(f.core, head + recs - 1) : null };
  };
  const main = await run("main");
  if (main.rc < 0) {
    const log = h.faults().at(-1)!;
    const reason = (main.rec!.flags >>> 8) === FAULT_REASON.perm ? "perm" : (main.rec!.flags >>> 8) === FAULT_REASON.blocked ? "blocked" : "unmapped";
    expect(log).toEqual({ iova: main.rec!.iova, write: (main.rec!.flags & 1) === 1, reason });
  }
  const worker = await run("worker");
  expect(main.rec?.slot ?? 0).toBe(0);
  if (worker.rec) expect(worker.rec.slot).toBe(f.rpc.slot);
  expect({ rc: worker.rc, recs: worker.recs, rec: worker.rec && { ...worker.rec, slot: 0 } }, op.name)
    .toEqual({ rc: main.rc, recs: main.recs, rec: main.rec });
  expect(firstDiff(worker.out, main.out), `${op.name}: first byte of the buffer that differs`).toBe(-1);
  expect(firstDiff(worker.mem, main.mem), `${op.name}: first byte of memory that differs`).toBe(-1);
  return { main, worker };
}


/** What the transfer must give: `fault` is where it stops (offset into the buffer) and why. */
function expected(op: Op, fault: { at: number; reason: keyof typeof FAULT_REASON } | null): { rc: number; out: Uint8Array | null; mem: Uint8Array; at: bigint | null; flags: number } {
  const end = fault ? Math.min(fault.at, op.off + op.len) : op.off + op.len;
  const moved = Math.max(0, end - op.off);
  const mem = MEM.slice();
  let out: Uint8Array | null = null;
  if (op.write) mem.set(DATA.subarray(0, moved), op.off);
  else {
    out = new Uint8Array(op.len).fill(FILL);
    out.set(MEM.subarray(op.off, op.off + moved));
  }
  return {
    rc: fault ? -errno.EFAULT : 0, out, mem,
    at: fault ? BigInt(IOVA + Math.max(fault.at, op.off)) : null,
    flags: fault ? (op.write ? 1 : 0) | (FAULT_REASON[fault.reason] << 8) : 0,
  };
}

/** Runs every op from both sides; `fault(op)` says where each must stop; `dom` the domain expected (null: any non-zero). */
async function check(f: Fx, h: DeviceHandle, fault: (op: Op) => { at: number; reason: keyof typeof FAULT_REASON } | null, blocked: boolean): Promise<number[]> {
  const doms: number[] = [];
  for (const op of OPS) {
    const { main } = await both(f, h, op);
    const want = expected(op, fault(op));
    expect({ op: op.name, rc: main.rc }).toEqual({ op: op.name, rc: want.rc });
    expect(firstDiff(main.out, want.out), `${op.name}: first byte of the buffer that differs`).toBe(-1);
    expect(firstDiff(main.mem, want.mem), `${op.name}: first byte of memory that differs`).toBe(-1);
    expect(main.recs, op.name).toBe(want.rc < 0 ? 1 : 0);
    if (main.rec) {
      expect({ op: op.name, iova: main.rec.iova, flags: main.rec.flags }).toEqual({ op: op.name, iova: want.at, flags: want.flags });
      if (blocked) expect(main.rec.dom).toBe(0);
      else expect(main.rec.dom).not.toBe(0);
      doms.push(main.rec.dom);
    }
  }
  return doms;
}

const everywhere = (reason: keyof typeof FAULT_REASON) => () => ({ at: 0, reason });
/** With the mappings in place: reads stop where nothing is mapped, writes where the read-only part starts. */
const mappedFault = (op: Op) => (op.write ? { at: RW, reason: "perm" as const } : { at: RW + RO, reason: "unmapped" as const });
const inside = (op: Op, at: number) => op.off + op.len <= at;
const mappedRule = (op: Op) => (inside(op, mappedFault(op).at) ? null : mappedFault(op));

describe("one device-DMA path: the kernel's thread and a worker", () => {
  for (const mode of MODES) {
    it(`the same DMA gives the same bytes and fault record in every state (${mode})`, async () => {
      const f = fx = await setup(mode);
      const h = f.k.device(BDF)!;
      // Nothing opened, then a group in a container without an IOMMU / a bound cdev: blocked.
      await check(f, h, everywhere("blocked"), true);
      f.blocked();
      await check(f, h, everywhere("blocked"), true);
      f.attached();
      const [dom] = await check(f, h, everywhere("unmapped"), false);
      f.mapped();
      for (const d of await check(f, h, mappedRule, false)) expect(d).toBe(dom);
      f.unmapped();
      for (const d of await check(f, h, everywhere("unmapped"), false)) expect(d).toBe(dom);
      f.mapped();
      await check(f, h, mappedRule, false);
      f.detached();
      await check(f, h, everywhere("blocked"), true);
    });
  }

  for (const mode of ["vfio_type1_iommu", "vfio_type1v2_iommu"] as const) {
    it(`a device that joins a group attached to a type1 container DMAs through its domain from both sides (${mode})`, async () => {
      const f = fx = await setup(mode);
      f.blocked();
      f.attached();
      f.mapped();
      // __iommu_probe_device attaches a device joining the group to group->domain.
      const h2 = f.k.addDevice({ bdf: BDF2, model: "memcpy", iommuGroup: GROUP });
      await check(f, h2, mappedRule, false);
      f.unmapped();
      await check(f, h2, everywhere("unmapped"), false);
      f.detached();
      await check(f, h2, everywhere("blocked"), true);
    });
  }
});
