// The page's laboratory: a kernel booted in the page, one memcpy device with two device
// engines on Web Workers, and the two sequences a userspace driver walks, as steps. No DOM
// here: main.ts draws what this does. The kernel runs on the page's thread (its grace-period
// waits spin there, bounded, since a window may not Atomics.wait); the engines never touch
// the control plane, only the data plane through vfio-emu/worker.

import {
  createKernel, errnoName, IommuFd, VfioContainer, VfioDeviceFile, VfioGroup, VfioError,
  MAP_ANONYMOUS, MAP_HUGETLB, MAP_HUGE_2MB, MAP_SHARED, PROT_READ, PROT_WRITE, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_OFFSET_SHIFT,
  VFIO_TYPE1v2_IOMMU, type Kernel, type Process, type DeviceHandle, type Ioas,
} from "../src/index.js";
import type { DeviceCommand, DeviceReply } from "./device-worker.js";

export const BDF = "0000:00:04.0";
export const GROUP = 7;
/** The DMA buffer: 4 MiB, mapped at a 1 GiB IOVA (2 MiB leaves), its first 64 KiB also read-only low. */
export const BUF_BYTES = 4 << 20;
export const IOVA = 0x40000000;
export const RO_IOVA = 0x10000;
export const RO_BYTES = 64 << 10;
const CONFIG_REGION = VFIO_PCI_CONFIG_REGION_INDEX * 2 ** VFIO_PCI_OFFSET_SHIFT;
const ENGINES = 2;
/** How long "run all" lets the DMA stream run before the unmap, for the chart. */
export const STREAM_MS = 1500;

export const rcText = (rc: number) => (rc < 0 ? `-${errnoName(rc)}` : `${rc}`);
const hex = (v: number | bigint) => `0x${v.toString(16)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a step leaves for a person and for the browser test: text lines and exact facts. */
export interface StepOutcome { lines: string[]; facts: Record<string, unknown> }

export interface Step { id: string; title: string; what: string; run(): Promise<StepOutcome> }

export type SequenceName = "cdev" | "legacy";

/** A device engine on a Web Worker. */
class Engine {
  private readonly worker: Worker;
  private waiting: ((r: DeviceReply) => void)[] = [];
  streamDone: Promise<DeviceReply> | null = null;
  slot = -1;

  constructor(readonly n: number, private readonly lab: Lab) {
    this.worker = new Worker(new URL("./device-worker.js", import.meta.url), { type: "module", name: `device-engine-${n}` });
    this.worker.onmessage = (ev) => this.waiting.shift()?.(ev.data as DeviceReply);
    this.worker.onerror = (ev) => lab.onError(new Error(`device engine ${n}: ${ev.message}`));
  }

  private next(): Promise<DeviceReply> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async start(kernel: Kernel, index: number, control: SharedArrayBuffer): Promise<void> {
    const ready = this.next();
    this.worker.postMessage({ init: kernel.workerInit(), index, control, slot: this.n });
    this.slot = (await ready).rc;
  }

  send(cmd: DeviceCommand): Promise<DeviceReply> {
    const r = this.next();
    this.worker.postMessage(cmd);
    return r;
  }

  stream(src: number, dst: number, length: number): void {
    this.streamDone = this.send({ op: "stream", src, dst, length, chunk: 64 << 10 });
  }

  terminate(): void { this.worker.terminate(); }
}

/** A pattern a person can recognise in a hex dump: "vfio-emu DMA #n " repeated, n the block. */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  const enc = new TextEncoder();
  for (let i = 0; i < length; i += 16) out.set(enc.encode(`vfio-emu ${seed.toString(16).padStart(2, "0")}:${((i >> 4) & 0xffff).toString(16).padStart(4, "0")} `).subarray(0, Math.min(16, length - i)), i);
  return out;
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

export class Lab {
  kernel!: Kernel;
  proc!: Process;
  device!: DeviceHandle;
  engines: Engine[] = [];
  /** Int32 [0]: the stream generation; BigInt64 [1 + n]: bytes engine n moved. */
  control = new SharedArrayBuffer(8 * (1 + ENGINES));
  trace: string[] = [];
  traceSeq = 0;
  sequence: SequenceName = "cdev";
  steps: Step[] = [];
  done = 0;
  facts: Record<string, unknown> = {};
  buf = 0;
  onError: (e: Error) => void = (e) => console.error(e);
  /** Called as a step starts (the page marks DMA and UNMAP on its chart). */
  onStep: (id: string) => void = () => {};
  // sequence state
  private iommufd: IommuFd | null = null;
  private ioas: Ioas | null = null;
  private dev: VfioDeviceFile | null = null;
  private group: VfioGroup | null = null;
  private container: VfioContainer | null = null;

  get booted(): boolean { return this.kernel !== undefined; }

  async boot(sequence: SequenceName): Promise<void> {
    this.sequence = sequence;
    this.kernel = await createKernel({
      memoryBytes: 128 << 20, counters: true,
      devices: [{ bdf: BDF, model: "memcpy", iommuGroup: GROUP }],
    });
    this.kernel.trace("*", (line) => {
      this.trace.push(line);
      this.traceSeq++;
      if (this.trace.length > 400) this.trace.splice(0, this.trace.length - 400);
    });
    this.proc = this.kernel.createProcess({ uid: 1000, memlockBytes: 64 << 20 });
    this.device = this.kernel.device(BDF)!;
    new BigInt64Array(this.control).fill(0n);
    this.engines = Array.from({ length: ENGINES }, (_, n) => new Engine(n, this));
    await Promise.all(this.engines.map((e) => e.start(this.kernel, this.device.index, this.control)));
    this.steps = sequence === "cdev" ? this.cdevSteps() : this.legacySteps();
    this.done = 0;
    this.facts = { sequence, engineSlots: this.engines.map((e) => e.slot) };
  }

  /** Stops the engines and closes everything: the page's reset. */
  async shutdown(): Promise<void> {
    if (!this.booted) return;
    this.stopStreams();
    await Promise.all(this.engines.map((e) => e.streamDone));
    for (const e of this.engines) e.terminate();
    this.engines = [];
    await this.kernel.close();
    this.iommufd = this.ioas = this.dev = this.group = this.container = null;
    this.trace = [];
    this.traceSeq++;
  }

  /** Bytes every engine has moved since boot. */
  movedBytes(): number[] {
    const m = new BigInt64Array(this.control);
    return this.engines.map((_, n) => Number(Atomics.load(m, 1 + n)));
  }

  private stopStreams(): void {
    Atomics.add(new Int32Array(this.control, 0, 1), 0, 1);
  }

  get finished(): boolean { return this.done >= this.steps.length; }

  async step(): Promise<StepOutcome | null> {
    if (this.finished) return null;
    const s = this.steps[this.done];
    this.onStep(s.id);
    let out: StepOutcome;
    try {
      out = await s.run();
    } catch (e) {
      // A typed-layer error is an outcome a person should read, not a crash.
      if (!(e instanceof VfioError)) throw e;
      out = { lines: [`${e.ioctl ?? e.syscall}: ${e.code} — ${e.message}`], facts: { error: e.code } };
    }
    this.facts[s.id] = out.facts;
    this.done++;
    return out;
  }

  // ---- the pieces both sequences share ---------------------------------------------------

  private mapBuffer(): number {
    // Huge pages: physically contiguous 2 MiB frames, so the IO page table can use 2 MiB leaves.
    const buf = this.proc.mmap(0, BUF_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
    if (buf < 0) throw new Error(`mmap: ${rcText(buf)}`);
    // The second half holds what the process wrote for the device to read.
    this.proc.writeMemory(buf + BUF_BYTES / 2, pattern(BUF_BYTES / 2, 0xc0));
    this.buf = buf;
    return buf;
  }

  /**
   * Device DMA both ways, each checked byte for byte: engine 0 writes a pattern into the first
   * MiB (the process reads it back), engine 1 reads the process's second half. Then both
   * engines stream (copy the second half into the first, round and round) for the chart.
   */
  private async dma(streamMs: number): Promise<StepOutcome> {
    const sent = pattern(1 << 20, 0xd0);
    const w = await this.engines[0].send({ op: "dma", write: true, iova: IOVA, data: sent.slice(), length: sent.length });
    const back = new Uint8Array(sent.length);
    this.proc.readMemory(this.buf, back);
    const writeOk = w.rc === 0 && same(back, sent);
    const r = await this.engines[1].send({ op: "dma", write: false, iova: IOVA + BUF_BYTES / 2, length: 1 << 20 });
    const expect = pattern(BUF_BYTES / 2, 0xc0).subarray(0, 1 << 20);
    const readOk = r.rc === 0 && same(r.bytes!, expect);
    const half = BUF_BYTES / 2;
    this.engines[0].stream(IOVA + half, IOVA, half / 2);
    this.engines[1].stream(IOVA + half + half / 2, IOVA + half / 2, half / 2);
    if (streamMs > 0) await sleep(streamMs);
    const text = (b: Uint8Array) => new TextDecoder().decode(b.subarray(0, 16));
    return {
      lines: [
        `engine 0 dmaWrite 1 MiB at IOVA ${hex(IOVA)}: ${rcText(w.rc)}; the process reads "${text(back)}…" — ${writeOk ? "all 1048576 bytes match" : "MISMATCH"}`,
        `engine 1 dmaRead 1 MiB at IOVA ${hex(IOVA + half)}: ${rcText(r.rc)}; it got "${text(r.bytes!)}…" — ${readOk ? "all 1048576 bytes match" : "MISMATCH"}`,
        "both engines now stream: copy the second half into the first, 64 KiB per transfer",
      ],
      facts: { writeRc: w.rc, readRc: r.rc, writeOk, readOk, first16: text(back) },
    };
  }

  /** The unmap's aftermath: both streams stop at their fault. */
  private async streamsStopped(): Promise<string[]> {
    const lines: string[] = [];
    const ends = await Promise.all(this.engines.map((e) => e.streamDone ?? Promise.resolve(null)));
    ends.forEach((r, n) => {
      if (!r) return;
      lines.push(r.faultIova! >= 0
        ? `engine ${n} stopped by the IOMMU: ${rcText(r.rc)} ${r.faultWrite ? "writing" : "reading"} IOVA ${hex(r.faultIova!)} after ${(r.moved! / 2 ** 20).toFixed(0)} MiB`
        : `engine ${n} stopped after ${(r.moved! / 2 ** 20).toFixed(0)} MiB`);
    });
    return lines;
  }

  private async fault(): Promise<StepOutcome> {
    const out = new Uint8Array(16);
    const rc = this.device.dmaRead(IOVA, out);
    const f = this.device.faults().at(-1);
    const lines = [`device dmaRead at IOVA ${hex(IOVA)}: ${rcText(rc)}` + (f ? ` — fault record: IOVA ${hex(f.iova)}, ${f.write ? "write" : "read"}, ${f.reason}` : "")];
    const facts: Record<string, unknown> = { rc, reason: f?.reason, iova: f ? Number(f.iova) : null, dmaFaults: this.kernel.stats().dmaFaults };
    if (this.sequence === "cdev") {
      const prc = this.device.dmaWrite(RO_IOVA, out);
      const pf = this.device.faults().at(-1)!;
      lines.push(`device dmaWrite into the read-only area at ${hex(RO_IOVA)}: ${rcText(prc)} — ${pf.reason}`);
      facts.permRc = prc;
      facts.permReason = pf.reason;
    }
    lines.push(`${this.kernel.stats().dmaFaults} faults in the IOMMU's fault ring`);
    return { lines, facts };
  }

  // ---- the cdev sequence -------------------------------------------------------------------

  private cdevSteps(): Step[] {
    const cfg = new Uint8Array(4);
    return [
      {
        id: "open", title: "open", what: "open /dev/iommu and the device's cdev /dev/vfio/devices/vfio0",
        run: async () => {
          this.iommufd = IommuFd.open(this.proc);
          this.dev = VfioDeviceFile.open(this.proc, `/dev/vfio/devices/vfio${this.device.index}`);
          return {
            lines: [`/dev/iommu -> fd ${this.iommufd.fd}`, `/dev/vfio/devices/vfio${this.device.index} -> fd ${this.dev.fd} (its gate is closed: the file starts blocked)`],
            facts: { iommufd: this.iommufd.fd, dev: this.dev.fd },
          };
        },
      },
      {
        id: "blocked", title: "blocked read", what: "read config space before BIND, here and from a device engine's thread",
        run: async () => {
          const rc = this.proc.pread(this.dev!.fd, cfg, CONFIG_REGION);
          const ref = this.proc.fileRef(this.dev!.fd);
          if (typeof ref === "number") throw new Error(`fileRef: ${rcText(ref)}`);
          const w = await this.engines[0].send({ op: "pread", ref, offset: CONFIG_REGION, length: 4 });
          return {
            lines: [`pread(config) on the kernel's thread: ${rcText(rc)}`, `pread(config) through the gate from engine 0's thread: ${rcText(w.rc)}`],
            facts: { rc, workerRc: w.rc },
          };
        },
      },
      {
        id: "bind", title: "bind", what: "VFIO_DEVICE_BIND_IOMMUFD: the gate opens",
        run: async () => {
          const devid = this.dev!.bind(this.iommufd!);
          const rc = this.proc.pread(this.dev!.fd, cfg, CONFIG_REGION);
          const ref = this.proc.fileRef(this.dev!.fd) as { slot: number; gen: number };
          const w = await this.engines[0].send({ op: "pread", ref, offset: CONFIG_REGION, length: 4 });
          const id = (b: Uint8Array) => `${(b[0] | b[1] << 8).toString(16).padStart(4, "0")}:${(b[2] | b[3] << 8).toString(16).padStart(4, "0")}`;
          return {
            lines: [`bound: devid ${devid}`, `pread(config): ${rcText(rc)}, vendor:device ${id(cfg)}`, `the same pread from engine 0: ${rcText(w.rc)}, ${id(w.bytes!)}`],
            facts: { devid, rc, workerRc: w.rc, ids: id(cfg) },
          };
        },
      },
      {
        id: "attach", title: "attach", what: "IOMMU_IOAS_ALLOC, then VFIO_DEVICE_ATTACH_IOMMUFD_PT",
        run: async () => {
          this.ioas = this.iommufd!.allocIoas();
          const hwpt = this.dev!.attach(this.ioas.id);
          return { lines: [`IOAS ${this.ioas.id}`, `attached through HWPT ${hwpt} (an x86 paging domain, empty)`], facts: { ioas: this.ioas.id, hwpt } };
        },
      },
      {
        id: "map", title: "map", what: "IOMMU_IOAS_MAP: 4 MiB read-write, and 64 KiB of it read-only",
        run: async () => {
          const buf = this.mapBuffer();
          const a = this.ioas!.map({ userVa: buf, length: BUF_BYTES, iova: IOVA });
          const b = this.ioas!.map({ userVa: buf, length: RO_BYTES, iova: RO_IOVA, writeable: false });
          return {
            lines: [`mmap 4 MiB of 2 MiB huge pages at ${hex(buf)}`, `IOVA ${hex(a)}: 4 MiB read-write (2 MiB leaves)`, `IOVA ${hex(b)}: 64 KiB read-only (4 KiB leaves)`],
            facts: { buf, iova: Number(a), roIova: Number(b) },
          };
        },
      },
      { id: "dma", title: "DMA", what: "device engines read and write through the IOMMU", run: () => this.dma(this.streamMs) },
      {
        id: "unmap", title: "unmap", what: "IOMMU_IOAS_UNMAP of the 4 MiB while the engines stream",
        run: async () => {
          const n = this.ioas!.unmap(IOVA, BUF_BYTES);
          const lines = [`unmapped ${n} bytes; no DMA reaches them once this returned`, ...await this.streamsStopped()];
          return { lines, facts: { unmapped: Number(n) } };
        },
      },
      { id: "fault", title: "fault", what: "the device touches what is gone, and what it may not write", run: () => this.fault() },
    ];
  }

  // ---- the legacy group sequence -------------------------------------------------------------

  private legacySteps(): Step[] {
    return [
      {
        id: "group", title: "group", what: `open the group /dev/vfio/${GROUP}`,
        run: async () => {
          this.group = VfioGroup.open(this.proc, GROUP);
          const s = this.group.status();
          return { lines: [`/dev/vfio/${GROUP} -> fd ${this.group.fd}`, `VFIO_GROUP_GET_STATUS: flags ${hex(s.flags)} (${s.viable ? "viable" : "not viable"}, ${s.containerSet ? "container set" : "no container"})`], facts: { flags: s.flags } };
        },
      },
      {
        id: "blocked", title: "no device yet", what: "VFIO_GROUP_GET_DEVICE_FD before the group has an IOMMU",
        run: async () => {
          try {
            this.group!.getDeviceFd(BDF);
            return { lines: ["unexpected: a device fd"], facts: { error: null } };
          } catch (e) {
            if (!(e instanceof VfioError)) throw e;
            return { lines: [`VFIO_GROUP_GET_DEVICE_FD: ${e.code} (errno ${e.errno}) — ${e.message}`], facts: { error: e.code } };
          }
        },
      },
      {
        id: "container", title: "container", what: "a type1 container: SET_CONTAINER, SET_IOMMU(TYPE1v2)",
        run: async () => {
          this.container = VfioContainer.open(this.proc);
          const lines = [`/dev/vfio/vfio -> fd ${this.container.fd}`, `VFIO_GET_API_VERSION: ${this.container.apiVersion()}`, `VFIO_CHECK_EXTENSION(TYPE1v2): ${this.container.checkExtension(VFIO_TYPE1v2_IOMMU)}`];
          this.group!.setContainer(this.container);
          this.container.setIommu(VFIO_TYPE1v2_IOMMU);
          lines.push(`group flags now ${hex(this.group!.status().flags)}`);
          return { lines, facts: { flags: this.group!.status().flags } };
        },
      },
      {
        id: "device", title: "device fd", what: "VFIO_GROUP_GET_DEVICE_FD: open for I/O at once (no BIND)",
        run: async () => {
          this.dev = this.group!.getDeviceFd(BDF);
          const cfg = new Uint8Array(4);
          const rc = this.proc.pread(this.dev.fd, cfg, CONFIG_REGION);
          return { lines: [`device fd ${this.dev.fd} (its gate was opened before the fd was installed)`, `pread(config): ${rcText(rc)}`], facts: { fd: this.dev.fd, rc } };
        },
      },
      {
        id: "map", title: "map", what: "VFIO_IOMMU_MAP_DMA: 4 MiB at IOVA 0x40000000",
        run: async () => {
          const buf = this.mapBuffer();
          this.container!.mapDma({ vaddr: buf, iova: IOVA, size: BUF_BYTES });
          return { lines: [`mmap 4 MiB of 2 MiB huge pages at ${hex(buf)}`, `mapped at IOVA ${hex(IOVA)} through the container`], facts: { buf } };
        },
      },
      { id: "dma", title: "DMA", what: "device engines read and write through the container's domain", run: () => this.dma(this.streamMs) },
      {
        id: "unmap", title: "unmap", what: "VFIO_IOMMU_UNMAP_DMA while the engines stream",
        run: async () => {
          const n = this.container!.unmapDma(IOVA, BUF_BYTES);
          return { lines: [`unmapped ${n} bytes`, ...await this.streamsStopped()], facts: { unmapped: Number(n) } };
        },
      },
      { id: "fault", title: "fault", what: "the device touches what is gone", run: () => this.fault() },
    ];
  }

  /** How long the DMA step streams before it returns (0 when stepping: it goes on until unmap). */
  streamMs = 0;
}
