// Syscall recording for `vfio-emu trace --record` and `--replay`: what a program asked of one
// kernel, in order, with enough to ask it again of a fresh one and compare. A Recorder wraps a
// kernel's objects in place (its processes' syscall methods, their address spaces' user-copy
// methods, its devices' DMA, addDevice / createProcess / close); each outermost call becomes one
// event: the arguments (buffers by content, before and after), the result, and every user
// memory access the kernel made during it (reads: the inputs a replay must put back first;
// writes: what it wrote back). Calls made inside another (ioctlBuf's ioctl, kill's closes,
// fork's allocProcess) belong to the outer event. The program's loads and stores of its own
// memory (readMemory, writeMemory) are events too: device DMA reads what the program stored.
//
// Not recorded: DMA that device workers do on other threads (only DMA through a DeviceHandle on
// the kernel's thread is); a replay puts back the bytes the kernel read, so what workers wrote
// and the kernel then read still reaches it.

import type { Kernel, KernelConfig } from "../index.js";
import type { KernelCore } from "../kernel/kernel.js";
import type { Mm } from "../kernel/mm.js";
import type { Process } from "../kernel/process.js";

/** The first line of a recording. */
export const TRACE_FORMAT = "vfio-emu-trace";
export const TRACE_VERSION = 1;

/** The global a recording host installs (the CLI's preload); createKernel hands it each kernel. */
export const RECORD_HOOK = Symbol.for("vfio-emu.trace.record");
export interface RecordHook { attach(kernel: Kernel, config: KernelConfig): void }

/** The surface of Process that is recorded (API.md §1, the raw layer). */
export const SYSCALLS = [
  "open", "close", "ioctl", "ioctlBuf", "read", "write", "pread", "pwrite", "mmap", "munmap",
  "memfd_create", "ftruncate", "eventfd", "fcntl", "poll", "stat", "fstat", "realpath", "readdir",
  "readlink", "readFile", "fork", "kill", "readMemory", "writeMemory",
] as const;

/** The program's own loads and stores: their user memory accesses are the call itself. */
const OWN_ACCESS = new Set(["readMemory", "writeMemory"]);

/** A JSON image of a value: bytes as {$hex}, bigints as {$big}, processes as {$proc: pid}. */
export type Encoded = null | boolean | number | string | Encoded[] | { [k: string]: Encoded };

/** One user memory access the kernel made: r(ead) or w(rite) of `hex` at `addr` in process `pid`. */
export interface MemAccess { pid: number; op: "r" | "w"; addr: number; hex: string }

export interface TraceEvent {
  /** Which kernel of the program (0 for the first it booted). */
  k: number;
  /** boot | addDevice | createProcess | close | a SYSCALLS name | dmaRead | dmaWrite | unplug */
  call: string;
  pid?: number;
  bdf?: string;
  args?: Encoded[];
  /** The mutable arguments (buffers, poll's fds) after the call, by position (null: not mutable). */
  out?: Encoded[];
  ret?: Encoded;
  threw?: string;
  mem?: MemAccess[];
  /** boot: the kernel's configuration, without its devices (addDevice events follow). */
  config?: Encoded;
}

function hexOf(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += (b[i] < 16 ? "0" : "") + b[i].toString(16);
  return s;
}
export function fromHex(s: string): Uint8Array {
  const out = new Uint8Array(s.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

const isProcess = (v: unknown): v is Process =>
  typeof v === "object" && v !== null && typeof (v as Process).pid === "number" && "mm" in v && "kernel" in v;

export function encode(v: unknown): Encoded {
  if (v === undefined) return { $undef: true };
  if (v === null || typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "number") return Number.isFinite(v) ? v : { $num: String(v) };
  if (typeof v === "bigint") return { $big: v.toString() };
  if (v instanceof Uint8Array) return { $hex: hexOf(v) };
  if (Array.isArray(v)) return v.map(encode);
  if (isProcess(v)) return { $proc: v.pid };
  if (typeof v === "object") {
    const o: { [k: string]: Encoded } = {};
    for (const [k, x] of Object.entries(v as object)) o[k] = encode(x);
    return o;
  }
  return { $unsupported: typeof v };
}

/** The value an encoded argument stands for (a fresh buffer, a bigint, a plain object). */
export function decode(e: Encoded): unknown {
  if (e === null || typeof e !== "object") return e;
  if (Array.isArray(e)) return e.map(decode);
  if ("$hex" in e) return fromHex(e.$hex as string);
  if ("$big" in e) return BigInt(e.$big as string);
  if ("$undef" in e) return undefined;
  if ("$num" in e) return Number(e.$num);
  const o: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(e)) o[k] = decode(x);
  return o;
}

/** Arguments a call may change in place: their state after the call is part of its result. */
const mutable = (v: unknown): boolean => v instanceof Uint8Array || Array.isArray(v);

interface Internals { kcore: KernelCore; addDevice: Kernel["addDevice"]; createProcess: Kernel["createProcess"]; close: Kernel["close"] }

/**
 * Records one kernel's calls: every event goes to `sink` as it completes. `k` numbers the
 * kernel among the program's kernels.
 */
export class Recorder {
  private depth = 0;
  /** The accesses of the event in flight (depth > 0). */
  private mem: MemAccess[] = [];
  private readonly wrapped = new WeakSet<object>();

  constructor(readonly kernel: Kernel, readonly k: number, private readonly sink: (e: TraceEvent) => void) {}

  /** Wraps the kernel; emits its boot event (with `config`, devices left out). */
  attach(config: KernelConfig): void {
    const kernel = this.kernel as unknown as Internals;
    const { devices: _devices, ...rest } = config;
    this.sink({ k: this.k, call: "boot", config: encode(rest) });
    const kcore = kernel.kcore;
    // Every process, however created (createProcess, and fork's child), comes from allocProcess.
    const coreAlloc = kcore.allocProcess.bind(kcore);
    kcore.allocProcess = (opts) => {
      const p = coreAlloc(opts);
      return typeof p === "number" ? p : this.wrapProcess(p);
    };
    this.wrapMethod(kernel, "createProcess", (args) => ({ call: "createProcess", args }));
    this.wrapMethod(kernel, "close", () => ({ call: "close" }));
    const add = kernel.addDevice.bind(kernel);
    kernel.addDevice = (cfg) => {
      const h = this.run({ call: "addDevice", args: [encode(cfg)] }, [cfg], () => add(cfg), (r) => ({ bdf: r.bdf, index: r.index, iommuGroup: r.iommuGroup }));
      this.wrapDevice(h);
      return h;
    };
  }

  private wrapDevice(h: ReturnType<Kernel["addDevice"]>): void {
    const bdf = h.bdf;
    this.wrapMethod(h, "dmaRead", (args) => ({ call: "dmaRead", bdf, args }));
    this.wrapMethod(h, "dmaWrite", (args) => ({ call: "dmaWrite", bdf, args }));
    const unplug = h.unplug.bind(h);
    // The promise is not part of the event: it settles when the device's last file closes.
    h.unplug = () => this.run({ call: "unplug", bdf }, [], unplug, () => null);
  }

  private wrapProcess(p: Process): Process {
    if (this.wrapped.has(p)) return p;
    this.wrapped.add(p);
    for (const name of SYSCALLS) this.wrapMethod(p, name, (args) => ({ call: name, pid: p.pid, args }));
    this.wrapMm(p.mm, p.pid);
    return p;
  }

  private wrapMm(mm: Mm, pid: number): void {
    const from = mm.copyFromUser.bind(mm);
    const to = mm.copyToUser.bind(mm);
    const u32 = mm.readU32.bind(mm);
    let inner = 0; // readU32's slow path goes through copyFromUser: one access, not two
    mm.copyFromUser = (addr, len) => {
      const r = from(addr, len);
      if (this.depth > 0 && inner === 0 && typeof r !== "number") this.mem.push({ pid, op: "r", addr, hex: hexOf(r) });
      return r;
    };
    const into = mm.copyFromUserInto.bind(mm);
    mm.copyFromUserInto = (addr, dst, len, dstWords) => {
      const r = into(addr, dst, len, dstWords);
      if (this.depth > 0 && inner === 0 && r === 0) this.mem.push({ pid, op: "r", addr, hex: hexOf(dst.subarray(0, len)) });
      return r;
    };
    mm.copyToUser = (addr, data, len = data.length, words) => {
      const r = to(addr, data, len, words);
      if (this.depth > 0 && r === 0 && len > 0) this.mem.push({ pid, op: "w", addr, hex: hexOf(data.subarray(0, len)) });
      return r;
    };
    mm.readU32 = (addr) => {
      inner++;
      let r: number;
      try { r = u32(addr); } finally { inner--; }
      if (this.depth > 0 && r >= 0) {
        const b = new Uint8Array(4);
        new DataView(b.buffer).setUint32(0, r, true);
        this.mem.push({ pid, op: "r", addr, hex: hexOf(b) });
      }
      return r;
    };
  }

  /** Replaces obj[name] by a recording wrapper; `head` gives the event's call, pid, bdf. */
  private wrapMethod<T extends object>(obj: T, name: string, head: (args: Encoded[]) => Partial<TraceEvent>): void {
    const o = obj as unknown as Record<string, (...a: unknown[]) => unknown>;
    const fn = o[name].bind(obj);
    o[name] = (...args: unknown[]) => this.run(head(args.map(encode)), args, () => fn(...args), encode);
  }

  /** Runs one call; an outermost one becomes an event (also when it throws: then `threw`). */
  private run<R>(head: Partial<TraceEvent>, args: unknown[], call: () => R, result: (r: R) => unknown): R {
    if (this.depth > 0) return call();
    this.depth++;
    this.mem = [];
    const ev: TraceEvent = { k: this.k, call: head.call!, ...head };
    try {
      const r = call();
      ev.ret = encode(result(r));
      return r;
    } catch (e) {
      ev.threw = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      throw e;
    } finally {
      this.depth--;
      if (args.some(mutable)) ev.out = args.map((a) => (mutable(a) ? encode(a) : null));
      if (this.mem.length && !OWN_ACCESS.has(ev.call)) ev.mem = this.mem;
      this.mem = [];
      this.sink(ev);
    }
  }
}
