// A device engine of the page, on its own thread (a module Web Worker): it joins the kernel's
// data plane over the shared memory (vfio-emu/worker) and does what the page asks of the
// device: a gated pread of a device file, one DMA transfer, or a stream of transfers that
// runs until the page stops it or the IOMMU faults it. Bytes moved are added to a shared
// counter the page samples for its throughput chart (no message per transfer).

import { attachWorker, type FileRef, type WorkerContext } from "../src/worker.js";
import type { WorkerInit } from "../src/index.js";

export type DeviceCommand =
  | { op: "pread"; ref: FileRef; offset: number; length: number }
  | { op: "dma"; write: boolean; iova: number; data?: Uint8Array; length: number }
  | { op: "stream"; src: number; dst: number; length: number; chunk: number };

export interface DeviceReply {
  op: string;
  rc: number;
  bytes?: Uint8Array;
  /** stream: bytes moved, and where the fault stopped it (-1 when stopped by the page). */
  moved?: number;
  faultIova?: number;
  faultWrite?: boolean;
}

interface Setup { init: WorkerInit; index: number; control: SharedArrayBuffer; slot: number }

/** control: Int32 [0] = stream generation (the page bumps it to stop); BigInt64 [1 + slot] = bytes moved. */
let ctx: WorkerContext;
let setup: Setup;
let ctl: Int32Array;
let moved: BigInt64Array;

const reply = (r: DeviceReply, transfer: Transferable[] = []) => postMessage(r, { transfer });

function stream(c: Extract<DeviceCommand, { op: "stream" }>): void {
  const dev = ctx.device(setup.index);
  const gen = Atomics.load(ctl, 0);
  const buf = new Uint8Array(c.chunk);
  let total = 0;
  // The device copies [src, src+length) to [dst, dst+length), chunk by chunk, round and round:
  // a read and a write through the IOMMU per chunk, as a memcpy engine does.
  for (let off = 0; Atomics.load(ctl, 0) === gen; off = (off + c.chunk) % c.length) {
    let rc = dev.dmaRead(c.src + off, buf);
    if (rc < 0) return reply({ op: "stream", rc, moved: total, faultIova: c.src + off, faultWrite: false });
    rc = dev.dmaWrite(c.dst + off, buf);
    if (rc < 0) return reply({ op: "stream", rc, moved: total, faultIova: c.dst + off, faultWrite: true });
    total += 2 * c.chunk;
    Atomics.add(moved, 1 + setup.slot, BigInt(2 * c.chunk));
  }
  reply({ op: "stream", rc: 0, moved: total, faultIova: -1 });
}

onmessage = async (ev: MessageEvent) => {
  const m = ev.data as Setup | DeviceCommand;
  if ("init" in m) {
    setup = m;
    ctl = new Int32Array(m.control, 0, 2);
    moved = new BigInt64Array(m.control);
    ctx = await attachWorker(m.init);
    reply({ op: "ready", rc: ctx.slot });
    return;
  }
  if (m.op === "pread") {
    const bytes = new Uint8Array(m.length);
    const rc = ctx.file(m.ref).pread(bytes, m.offset);
    reply({ op: "pread", rc, bytes }, [bytes.buffer]);
  } else if (m.op === "dma") {
    const dev = ctx.device(setup.index);
    const bytes = m.data ?? new Uint8Array(m.length);
    const rc = m.write ? dev.dmaWrite(m.iova, bytes) : dev.dmaRead(m.iova, bytes);
    if (rc === 0) Atomics.add(moved, 1 + setup.slot, BigInt(bytes.length));
    reply({ op: "dma", rc, bytes }, [bytes.buffer]);
  } else if (m.op === "stream") {
    stream(m);
  }
};
