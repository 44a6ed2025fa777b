// T13, T14: the ioat DMA engine (src/devices/ioat.ts, its own worker thread) driven from the
// bench's thread by a userspace driver on the raw syscall layer: a real kernel (createKernel)
// with one ioat device bound through its cdev and attached to an IOAS, the package's
// IoatDriver for the bring-up (probe, init: bus mastering, channel reset, MSI-X on an
// eventfd), then the driver's own descriptor ring in its DMA-mapped memory: 8192 descriptors
// of 64-byte copies (over 1024 source / destination slots), linked in a circle, CHANCMP
// pointing at a completion word. The ring is deep (half of it in flight) so that a machine
// whose other processes take one of the two threads away for a scheduler slice does not turn
// the pipeline into a lock-step of slices. Every
// descriptor store is a writeMemory of the process, every doorbell an MMIO store (DMACOUNT)
// through the BAR0 mapping, every completion check a load of the completion word.
//
// T13: descriptor submission, batched: 32 fresh descriptors written per batch (one store of
//      2 KiB into the ring), one DMACOUNT doorbell per batch, the batch's last descriptor with
//      the completion write-back; up to half the ring in flight, the driver waiting for
//      completions only when it is full. ns per descriptor, from the first store to the last
//      completion seen. Baseline DP: the same number of 64-byte copies run by the wasm data
//      plane on the bench's thread through a translating domain (bench_dma_batch), no engine,
//      no driver, no doorbell: what the engine costs over the copies themselves.
// T14: one descriptor, submit -> completion seen (polled): a descriptor written, DMACOUNT
//      rung, the completion word loaded until it names the descriptor; back to back. ns per
//      descriptor. Baseline RT: a bare round trip to a thread with the engine worker's
//      wake-up policy (workers/pingpong.mjs). Noted beside it: the same with the completion
//      seen through the MSI-X eventfd (poll + read), and polled after the engine went idle.
import { Worker } from "node:worker_threads";
import { loadavg, availableParallelism, cpus } from "node:os";
import { timeNs, sizeFor, median } from "../lib/harness.mjs";
import { makeDescs, writeDescs, KiB, MiB } from "./common.mjs";
import { createKernel, IommuFd, VfioDeviceFile, MAP_ANONYMOUS, MAP_POPULATE, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../index.js";
import { IoatDriver } from "../../drivers/index.js";

const BDF = "0000:00:04.0";
const IOVA = 0x100000; // the driver's one mapping
// Its layout: driver state (IoatDriver's), the completion word, the ring, sources, destinations.
const CMP = 2048, SRC = 64 * KiB, DST = 128 * KiB, RING = 192 * KiB, BYTES = 1 * MiB;
const R = 8192; // ring entries (512 KiB of descriptors)
const COPIES = 1024; // distinct source / destination slots: ring slot i copies slot i % COPIES
const B = 32; // descriptors per doorbell (T13)
const WINDOW = R / 2; // most descriptors in flight (T13)
const LEN = 64; // bytes per copy
// drivers/dma/ioat/registers.h, hw.h
const CH = 0x80, CHANCTRL = CH + 0x00, DMACOUNT = CH + 0x06, CHAINADDR = CH + 0x10, CHANCMP = CH + 0x18;
const CHANCTRL_INT_REARM = 0x1, CHANCTRL_ANY_ERR_ABORT_EN = 0x8, CHANCTRL_ERR_INT_EN = 0x10;
const CHANSTS_HALTED = 3;
const DESC_INT_EN = 1 << 0, DESC_COMPL_WRITE = 1 << 3;
const POLLIN = 0x1;

/**
 * Both figures need two threads running at once (the driver's and the engine's): the machine's
 * load is printed beside them, since another busy process on a 2-core machine takes a thread
 * away from them for whole scheduler slices.
 */
const load = () => `load average ${loadavg()[0].toFixed(2)} on ${availableParallelism?.() ?? cpus().length} cpus`;

const napWord = new Int32Array(new SharedArrayBuffer(4));
const nap = (ms) => Atomics.wait(napWord, 0, 0, ms);

/** The engine, its kernel and the driver's ring: shared by T13 and T14 (booted by the first). */
const eng = { users: 0 };

function le64(v, at, x) {
  v.setUint32(at, x % 0x1_0000_0000, true);
  v.setUint32(at + 4, Math.floor(x / 0x1_0000_0000), true);
}

/** The descriptor image of ring slot i (struct ioat_dma_descriptor): a 64-byte copy, next = i + 1. */
function descImage(i, ctl) {
  const b = new Uint8Array(64);
  const v = new DataView(b.buffer);
  v.setUint32(0, LEN, true);
  v.setUint32(4, ctl, true);
  le64(v, 8, IOVA + SRC + (i % COPIES) * LEN);
  le64(v, 16, IOVA + DST + (i % COPIES) * LEN);
  le64(v, 24, IOVA + RING + ((i + 1) % R) * 64);
  return b;
}

async function bootEngine() {
  if (eng.users++ > 0) return;
  const kernel = await createKernel({ memoryBytes: 64 * MiB, devices: [{ bdf: BDF, model: "ioat" }] });
  eng.kernel = kernel;
  const p = kernel.createProcess({ capIpcLock: true });
  const iommufd = IommuFd.open(p);
  const ioas = iommufd.allocIoas();
  const dev = VfioDeviceFile.open(p, kernel.device(BDF));
  dev.bind(iommufd);
  dev.attach(ioas.id);
  const va = p.mmap(0, BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (va < 0) throw new Error(`T13/T14: mmap: ${va}`);
  ioas.map({ userVa: va, length: BYTES, iova: IOVA });
  const d = IoatDriver.probe(p, dev.fd, { vaddr: va, iova: BigInt(IOVA), size: CMP });
  if (typeof d === "number") throw new Error(`T13/T14: IoatDriver.probe: ${d}`);
  d.init();
  Object.assign(eng, { p, va, d, bar0: d.bar0, efd: d.msiEventfds[d.msi] });
  // Sources a pattern, destinations zero; the ring's images (plain, with the completion
  // write-back, with it and the interrupt).
  const src = new Uint8Array(COPIES * LEN).map((_, i) => (i * 13 + 7) & 0xff);
  if (p.writeMemory(va + SRC, src) !== 0) throw new Error("T13/T14: writeMemory");
  eng.src = src;
  eng.plain = [], eng.cmpw = [], eng.irq = [];
  for (let i = 0; i < R; i++) {
    eng.plain.push(descImage(i, 0));
    eng.cmpw.push(descImage(i, DESC_COMPL_WRITE));
    eng.irq.push(descImage(i, DESC_COMPL_WRITE | DESC_INT_EN));
  }
  // T13's batches: slots k*B .. k*B+B-1, the last with the completion write-back.
  eng.batch = [];
  for (let k = 0; k < R / B; k++) {
    const b = new Uint8Array(B * 64);
    for (let j = 0; j < B; j++) b.set(j === B - 1 ? eng.cmpw[k * B + j] : eng.plain[k * B + j], j * 64);
    eng.batch.push(b);
  }
  eng.u16 = new Uint8Array(2);
  eng.u16v = new DataView(eng.u16.buffer);
  eng.c8 = new Uint8Array(8);
  eng.c8v = new DataView(eng.c8.buffer);
  // The channel starts at slot 0 (its reset left it halted); "slot R-1 completed" in the
  // completion word, so `issued` 0 reads as all done.
  eng.issued = 0;
  writeCmp(IOVA + RING + (R - 1) * 64);
  const c = new Uint8Array(8);
  new DataView(c.buffer).setUint32(0, IOVA + CMP, true);
  store(eng.bar0 + CHANCMP, c);
  const a = new Uint8Array(8);
  new DataView(a.buffer).setUint32(0, IOVA + RING, true);
  store(eng.bar0 + CHAINADDR, a);
  ctrl(CHANCTRL_ANY_ERR_ABORT_EN);
}

function store(addr, bytes) {
  const rc = eng.p.writeMemory(addr, bytes);
  if (rc !== 0) throw new Error(`T13/T14: store at ${addr}: ${rc}`);
}

/** A 16-bit MMIO store through the BAR0 mapping. */
function mmio(off, v) {
  eng.u16v.setUint16(0, v & 0xffff, true);
  store(eng.bar0 + off, eng.u16);
}
const ctrl = (v) => mmio(CHANCTRL, v);
const ring = () => mmio(DMACOUNT, eng.issued);

function writeCmp(addr) {
  const c = new Uint8Array(8);
  new DataView(c.buffer).setUint32(0, addr, true);
  store(eng.va + CMP, c);
}

/** Descriptors completed so far, from the completion word (at most R - 1 in flight). */
function completed() {
  if (eng.p.readMemory(eng.va + CMP, eng.c8) !== 0) throw new Error("T13/T14: readMemory");
  const lo = eng.c8v.getUint32(0, true);
  if ((lo & 7) === CHANSTS_HALTED) throw new Error("T13/T14: the channel halted");
  const next = (((lo & ~63) - (IOVA + RING)) / 64 + 1) % R; // slot after the last completed
  return eng.issued - ((eng.issued - next + R * 64) % R);
}

/** A poll loop that has gone on too long (checked every 64 Ki polls: keeps the clock off the loop). */
let pollStart = 0;
function stuck(spins, what = "the engine did not complete") {
  if (spins === 0x10000) pollStart = performance.now();
  else if (performance.now() - pollStart > 10_000) throw new Error(`T13/T14: ${what} in 10 s`);
}

function waitAll() {
  const end = performance.now() + 10_000;
  while (completed() !== eng.issued) if (performance.now() > end) throw new Error("T13/T14: the engine did not complete in 10 s");
}

/** T13: `batches` batches of B, pipelined; ns for all of them. */
function submitBatches(batches) {
  waitAll();
  return timeNs(() => {
    for (let k = 0; k < batches; k++) {
      // Ring full: wait for the engine.
      for (let spins = 1; eng.issued + B - completed() > WINDOW; spins++) if ((spins & 0xffff) === 0) stuck(spins);
      const slot = eng.issued % R;
      store(eng.va + RING + slot * 64, eng.batch[slot / B]);
      eng.issued += B;
      ring();
    }
    waitAll();
  });
}

/** T14: `n` single descriptors, each waited for by polling; ns for all of them. */
function singles(n) {
  waitAll();
  return timeNs(() => {
    for (let k = 0; k < n; k++) {
      store(eng.va + RING + (eng.issued % R) * 64, eng.cmpw[eng.issued % R]);
      eng.issued++;
      ring();
      for (let spins = 1; completed() !== eng.issued; spins++) if ((spins & 0xffff) === 0) stuck(spins);
    }
  });
}

/** One descriptor with the interrupt, seen through the eventfd (poll, then read): ns. */
function singleIrq() {
  waitAll();
  const fds = [{ fd: eng.efd, events: POLLIN }];
  const t0 = process.hrtime.bigint();
  ctrl(CHANCTRL_INT_REARM | CHANCTRL_ANY_ERR_ABORT_EN | CHANCTRL_ERR_INT_EN);
  store(eng.va + RING + (eng.issued % R) * 64, eng.irq[eng.issued % R]);
  eng.issued++;
  ring();
  if (eng.p.poll(fds, 5000) !== 1) throw new Error("T14: no interrupt in 5 s");
  if (eng.p.read(eng.efd, eng.c8) !== 8) throw new Error("T14: eventfd read");
  const ns = Number(process.hrtime.bigint() - t0);
  waitAll();
  ctrl(CHANCTRL_ANY_ERR_ABORT_EN);
  return ns;
}

/** The destinations hold the sources (after a whole lap of the ring). */
function checkCopies(id) {
  const out = new Uint8Array(COPIES * LEN);
  eng.p.readMemory(eng.va + DST, out);
  if (!Buffer.from(out).equals(Buffer.from(eng.src))) throw new Error(`${id}: the engine's copies do not reproduce the sources`);
}

async function closeEngine() {
  if (--eng.users > 0) return;
  if (eng.d) { eng.d.remove(); eng.d.close(); }
  if (eng.kernel) await eng.kernel.close();
  for (const k of Object.keys(eng)) if (k !== "users") delete eng[k];
}

const t13st = {};
const t13 = {
  id: "T13", title: "ioat: descriptor submission, 32 per doorbell, 64 B copies (raw syscall driver)", unit: "ns", kind: "abs",
  bars: [{ abs: "ns", max: 100 }], goals: [{ abs: "ns", max: 30 }],
  async setup(ctx) {
    await bootEngine();
    submitBatches(R / B);
    checkCopies("T13");
    // 64 Ki descriptors before any timing: the engine worker's wasm is optimised by then.
    submitBatches(65536 / B);
    // DP: the same count of 64-byte copies, one descriptor per ring slot, through the hot domain.
    const env = ctx.env;
    const descs = makeDescs(COPIES * LEN, [LEN]);
    t13st.dp = writeDescs(env, descs, env.region.hot, env.domHot).t;
  },
  calibrate(ctx) {
    submitBatches(R / B);
    t13st.batches = sizeFor(ctx, submitBatches(R / B), R / B, 2 * WINDOW / B);
    const x = ctx.env.x;
    t13st.reps = sizeFor(ctx, timeNs(() => x.bench_dma_batch(t13st.dp, COPIES, 1)));
  },
  subject: () => submitBatches(t13st.batches) / (t13st.batches * B),
  baselines: {
    DP: (ctx) => {
      let ok = 0;
      const ns = timeNs(() => { ok = ctx.env.x.bench_dma_batch(t13st.dp, COPIES, t13st.reps); });
      if (ok !== COPIES * t13st.reps) throw new Error("T13: DP copies failed");
      return ns / (COPIES * t13st.reps);
    },
  },
  note() { return `${B} descriptors per doorbell, up to ${WINDOW} in flight, ${t13st.batches * B} per trial; DP: the same 64 B copies by the data plane alone; ${load()}`; },
  async teardown() { await closeEngine(); },
};

const t14st = { irq: [], idle: [] };
const t14 = {
  id: "T14", title: "ioat: one descriptor, submit -> completion seen (polled)", unit: "ns", kind: "abs",
  bars: [{ abs: "ns", max: 50_000 }], goals: [{ abs: "ns", max: 20_000 }],
  async setup(ctx) {
    t14st.irq = [];
    t14st.idle = [];
    await bootEngine();
    singles(COPIES);
    checkCopies("T14");
    t14st.ctl = new Int32Array(new SharedArrayBuffer(8));
    t14st.worker = new Worker(new URL("../workers/pingpong.mjs", import.meta.url), { workerData: { control: t14st.ctl.buffer } });
    t14st.exited = new Promise((resolve) => t14st.worker.once("exit", resolve));
    t14st.worker.once("error", (e) => { t14st.error = e; });
    t14st.ping = 0;
    pingpong(1); // the thread is up
    t14st.extra = ctx.quick ? 3 : 10;
  },
  calibrate(ctx) {
    singles(100);
    t14st.n = sizeFor(ctx, singles(100), 100, 100);
    pingpong(100);
    t14st.rt = sizeFor(ctx, pingpong(100), 100, 100);
  },
  subject() {
    const ns = singles(t14st.n) / t14st.n;
    // The noted variants, a few per trial: by eventfd, and polled after the engine slept.
    for (let i = 0; i < t14st.extra; i++) t14st.irq.push(singleIrq());
    for (let i = 0; i < t14st.extra; i++) { nap(2); t14st.idle.push(singles(1)); }
    return ns;
  },
  baselines: { RT: () => pingpong(t14st.rt) / t14st.rt },
  note() {
    const us = (ns) => (ns / 1000).toFixed(1);
    return `back to back, polled; by the MSI-X eventfd (poll + read) median ${us(median(t14st.irq))} us,` +
      ` polled after 2 ms idle (the engine asleep) median ${us(median(t14st.idle))} us; RT: a bare thread round trip with the engine worker's wake-up policy; ${load()}`;
  },
  async teardown() {
    if (t14st.ctl) {
      Atomics.store(t14st.ctl, 0, -1);
      Atomics.notify(t14st.ctl, 0);
      await t14st.exited;
      t14st.ctl = null;
    }
    await closeEngine();
  },
};

/** `n` round trips to the ping-pong thread; ns for all of them. */
function pingpong(n) {
  const ctl = t14st.ctl;
  return timeNs(() => {
    for (let i = 0; i < n; i++) {
      const v = ++t14st.ping;
      Atomics.store(ctl, 0, v);
      Atomics.notify(ctl, 0);
      for (let spins = 1; Atomics.load(ctl, 1) !== v; spins++) {
        if ((spins & 0xffff) === 0) stuck(spins, `the ping-pong thread did not answer${t14st.error ? ` (${t14st.error})` : ""}`);
      }
    }
  });
}

export default [t13, t14];
