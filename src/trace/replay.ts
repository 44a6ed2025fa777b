// `vfio-emu trace --replay FILE`: asks a fresh kernel what a recording (recorder.ts) asked of
// the original, call by call, and compares: the return value (or the exception), the mutable
// arguments after the call (read buffers, poll's revents), what the kernel wrote back to user
// memory and where it read from. Before each call, the bytes the kernel read in the recording
// are put back at the same addresses (unless the same call wrote them first), so the inputs are
// the recorded ones even where something unrecorded (a device worker's DMA) had changed them.
// A readMemory is the program looking at memory that unrecorded DMA may have written: its result
// is compared, and the bytes it saw are put back instead of compared. The first difference ends
// the replay.

import { createKernel, type Kernel, type KernelConfig } from "../index.js";
import type { Process } from "../kernel/process.js";
import { errnoName } from "../uapi/errno.js";
import { ioctlName } from "../uapi/ioctl.js";
import {
  decode, fromHex, Recorder, TRACE_FORMAT, TRACE_VERSION, type Encoded, type MemAccess, type TraceEvent,
} from "./recorder.js";

export interface Divergence {
  /** 0-based index of the call among the recording's events (its line is index + 2). */
  index: number;
  /** The call, as a person reads it: `kernel 0, pid 1: ioctl(fd=4, IOMMU_IOAS_MAP, 0x7ffff7f00000)`. */
  call: string;
  /** What differs, one line each. */
  what: string[];
}

export interface ReplayResult { calls: number; kernels: number; divergence: Divergence | null }

/** Parses a recording (JSON lines, header first); throws an Error that says what is wrong. */
export function parseRecording(text: string): TraceEvent[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  if (lines.length === 0) throw new Error("the recording is empty");
  const parse = (l: string, n: number): unknown => {
    try { return JSON.parse(l); } catch (e) { throw new Error(`line ${n}: not JSON (${(e as Error).message})`); }
  };
  const header = parse(lines[0], 1) as { format?: string; version?: number };
  if (header.format !== TRACE_FORMAT) throw new Error(`line 1: not a vfio-emu trace recording (format ${JSON.stringify(header.format)})`);
  if (header.version !== TRACE_VERSION) throw new Error(`line 1: recording version ${header.version}, this vfio-emu reads version ${TRACE_VERSION}`);
  return lines.slice(1).map((l, i) => {
    const e = parse(l, i + 2) as TraceEvent;
    if (typeof e !== "object" || e === null || typeof e.call !== "string" || typeof e.k !== "number") {
      throw new Error(`line ${i + 2}: not a call (needs "k" and "call")`);
    }
    return e;
  });
}

const show = (e: Encoded | undefined): string => {
  if (e === undefined) return "nothing";
  if (typeof e === "number") return e < 0 && Number.isInteger(e) && e >= -4095 ? `-${errnoName(e)} (${e})` : String(e);
  const s = JSON.stringify(e);
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
};

const hexArg = (v: Encoded | undefined): string => {
  const d = v === undefined ? undefined : decode(v);
  return typeof d === "number" || typeof d === "bigint" ? `0x${BigInt.asUintN(64, BigInt(d)).toString(16)}` : show(v);
};

/** A call as a person reads it. */
function describe(e: TraceEvent, fileKind?: string): string {
  const who = `kernel ${e.k}${e.pid !== undefined ? `, pid ${e.pid}` : ""}${e.bdf !== undefined ? `, device ${e.bdf}` : ""}`;
  const a = e.args ?? [];
  let body: string;
  switch (e.call) {
    case "ioctl":
    case "ioctlBuf":
      body = `${e.call}(fd=${show(a[0])}, ${ioctlName(Number(decode(a[1])) >>> 0, fileKind)}, ${e.call === "ioctl" ? hexArg(a[2]) : `${(a[2] as { $hex: string }).$hex.length / 2} bytes`})`;
      break;
    case "boot":
      body = `boot ${show(e.config)}`;
      break;
    default:
      body = `${e.call}(${a.map((x) => {
        if (x && typeof x === "object" && "$hex" in x) return `<${(x.$hex as string).length / 2} bytes>`;
        return show(x);
      }).join(", ")})`;
  }
  return `${who}: ${body}`;
}

/** The first byte where two hex strings differ, as a line. */
function bytesDiff(what: string, rec: string, rep: string): string {
  let i = 0;
  while (i < rec.length && i < rep.length && rec.slice(i, i + 2) === rep.slice(i, i + 2)) i += 2;
  const at = i / 2;
  const near = (h: string) => h.slice(Math.max(0, i - 8), i + 24).replace(/(..)/g, "$1 ").trim() || "(none)";
  if (rec.length !== rep.length && i >= Math.min(rec.length, rep.length)) {
    return `${what}: recorded ${rec.length / 2} bytes, replayed ${rep.length / 2} bytes`;
  }
  return `${what}: first difference at byte +${at}: recorded ${rec.slice(i, i + 2)}, replayed ${rep.slice(i, i + 2)}` +
    ` (recorded ... ${near(rec)}; replayed ... ${near(rep)})`;
}

const hexOfEncoded = (e: Encoded | undefined): string | null =>
  e && typeof e === "object" && !Array.isArray(e) && "$hex" in e ? (e.$hex as string) : null;

/** What differs between a recorded event and its replay (empty: identical). */
export function compare(rec: TraceEvent, rep: TraceEvent): string[] {
  const what: string[] = [];
  if ((rec.threw ?? null) !== (rep.threw ?? null)) {
    what.push(`exception: recorded ${rec.threw ?? "none"}, replayed ${rep.threw ?? "none"}`);
  }
  if (JSON.stringify(rec.ret) !== JSON.stringify(rep.ret)) what.push(`return value: recorded ${show(rec.ret)}, replayed ${show(rep.ret)}`);
  // readMemory: the bytes may come from a device worker's DMA, which is not replayed (see above).
  const ro = rec.call === "readMemory" ? [] : rec.out ?? [], po = rep.call === "readMemory" ? [] : rep.out ?? [];
  for (let i = 0; i < Math.max(ro.length, po.length); i++) {
    if (JSON.stringify(ro[i] ?? null) === JSON.stringify(po[i] ?? null)) continue;
    const rh = hexOfEncoded(ro[i]), ph = hexOfEncoded(po[i]);
    if (rh !== null && ph !== null) what.push(bytesDiff(`argument ${i + 1} (buffer) after the call`, rh, ph));
    else what.push(`argument ${i + 1} after the call: recorded ${show(ro[i])}, replayed ${show(po[i])}`);
  }
  const writes = (e: TraceEvent) => (e.mem ?? []).filter((m) => m.op === "w");
  const rw = writes(rec), pw = writes(rep);
  for (let i = 0; i < Math.max(rw.length, pw.length); i++) {
    const a = rw[i], b = pw[i];
    const where = (m: MemAccess) => `pid ${m.pid} at 0x${m.addr.toString(16)} (${m.hex.length / 2} bytes)`;
    if (!a || !b) {
      what.push(`written-back bytes: recorded ${rw.length} writes, replayed ${pw.length}; ${a ? `missing: ${where(a)}` : `extra: ${where(b!)}`}`);
      break;
    }
    if (a.pid !== b.pid || a.addr !== b.addr) {
      what.push(`written-back bytes, write ${i + 1}: recorded ${where(a)}, replayed ${where(b)}`);
      break;
    }
    if (a.hex !== b.hex) {
      what.push(bytesDiff(`written-back bytes, write ${i + 1} (${where(a)})`, a.hex, b.hex));
      break;
    }
  }
  const reads = (e: TraceEvent) => (e.mem ?? []).filter((m) => m.op === "r").map((m) => `pid ${m.pid} [0x${m.addr.toString(16)}, +${m.hex.length / 2})`);
  const rr = reads(rec), pr = reads(rep);
  for (let i = 0; i < Math.max(rr.length, pr.length); i++) {
    if (rr[i] === pr[i]) continue;
    what.push(`user memory read ${i + 1}: recorded ${rr[i] ?? "none"}, replayed ${pr[i] ?? "none"}`);
    break;
  }
  return what;
}

/** Replays `events` against fresh kernels; stops at the first divergence. */
export async function replay(events: TraceEvent[]): Promise<ReplayResult> {
  const kernels = new Map<number, Kernel>();
  const procs = new Map<string, Process>();
  const closed = new Set<number>();
  let last: TraceEvent | null = null;
  const sink = (e: TraceEvent) => { last = e; };
  const key = (k: number, pid: number) => `${k}:${pid}`;
  const fail = (index: number, e: TraceEvent, what: string[], kind?: string): ReplayResult =>
    ({ calls: index, kernels: kernels.size, divergence: { index, call: describe(e, kind), what } });
  try {
    for (let i = 0; i < events.length; i++) {
      const e = events[i];
      if (e.call === "boot") {
        if (kernels.has(e.k)) return fail(i, e, [`kernel ${e.k} was already booted`]);
        const kernel = await createKernel(decode(e.config ?? {}) as KernelConfig);
        new Recorder(kernel, e.k, sink).attach({});
        kernels.set(e.k, kernel);
        continue;
      }
      const kernel = kernels.get(e.k);
      if (!kernel || closed.has(e.k)) return fail(i, e, [`kernel ${e.k} is not running in the replay`]);
      const args = (e.args ?? []).map(decode);
      let target: Record<string, (...a: unknown[]) => unknown>;
      let kind: string | undefined;
      if (e.pid !== undefined) {
        const p = procs.get(key(e.k, e.pid));
        if (!p) return fail(i, e, [`process ${e.pid} does not exist in the replay`]);
        target = p as unknown as typeof target;
        if (e.call === "ioctl" || e.call === "ioctlBuf") kind = p.file(args[0] as number)?.ops.kind;
        // The kernel's inputs as they were: each range it read, unless this call wrote it first.
        const written: [number, number][] = [];
        for (const m of e.mem ?? []) {
          const len = m.hex.length / 2;
          if (m.op === "w") { written.push([m.addr, m.addr + len]); continue; }
          if (written.some(([a, b]) => m.addr < b && a < m.addr + len)) continue;
          procs.get(key(e.k, m.pid))?.writeMemory(m.addr, fromHex(m.hex));
        }
      } else if (e.bdf !== undefined) {
        const d = kernel.device(e.bdf);
        if (!d) return fail(i, e, [`device ${e.bdf} is not present in the replay`]);
        target = d as unknown as typeof target;
      } else {
        target = kernel as unknown as typeof target;
      }
      if (typeof target[e.call] !== "function") return fail(i, e, [`unknown call '${e.call}'`]);
      last = null;
      let r: unknown;
      try {
        r = target[e.call](...args);
        if (e.call === "close" && e.pid === undefined) {
          await r;
          closed.add(e.k);
        }
      } catch {
        // recorded as the event's `threw`, compared below
      }
      const got: TraceEvent | null = last;
      if (!got) return fail(i, e, ["the call produced no event in the replay"], kind);
      const what = compare(e, got);
      if (what.length) return fail(i, e, what, kind);
      const seen = e.call === "readMemory" ? e.out?.[1] : undefined;
      if (seen && typeof seen === "object" && "$hex" in seen) {
        (target as unknown as Process).writeMemory(args[0] as number, fromHex(seen.$hex as string));
      }
      // Processes the call created (createProcess, fork), by the pid the replay gave them.
      if (r && typeof r === "object" && typeof (r as Process).pid === "number" && "mm" in (r as object)) {
        procs.set(key(e.k, (r as Process).pid), r as Process);
      }
    }
    return { calls: events.length, kernels: kernels.size, divergence: null };
  } finally {
    for (const [k, kernel] of kernels) if (!closed.has(k)) await kernel.close();
  }
}

/** The report for people. */
export function report(file: string, r: ReplayResult, total: number): string {
  if (!r.divergence) return `${file}: ${total} calls replayed on ${r.kernels} fresh kernel${r.kernels === 1 ? "" : "s"}: identical\n`;
  const d = r.divergence;
  return `${file}: divergence at call ${d.index + 1} of ${total} (line ${d.index + 2})\n  ${d.call}\n` +
    d.what.map((w) => `  ${w}\n`).join("") + `  (the ${d.index} calls before it replayed identically)\n`;
}
