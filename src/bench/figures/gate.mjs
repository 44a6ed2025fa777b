// T16: the gate's cost on a worker-side file operation. A real kernel (createKernel) with one
// memcpy device, its cdev opened and bound to an iommufd; a worker thread
// (src/bench/workers/gate-pread.mjs) attached through the worker API reads one config dword (the
// vendor and device ids) with ctx.file(ref).pread, whose first step is the gate check (one
// atomic load of the file's gate word, made by gate_enter as it enters the grace-period
// section), and with the identical code path minus the check (the same WorkerFiles from
// dist/worker.js, entering through bench_file_enter: gate_enter without the check). The two
// alternate in slices inside each trial (the order flips every slice); a trial's value is the
// median over its slice pairs of the gated read's overhead over the ungated one, in % (a
// median, so a slice that another process preempted does not decide it).
import { Worker } from "node:worker_threads";
import { readFileSync } from "node:fs";
import { MiB, DEV_BDF as BDF } from "./common.mjs";
import { median, sizeFor } from "../lib/harness.mjs";
import { createKernel, IommuFd, VfioDeviceFile } from "../../index.js";

const CONFIG_OFFSET = 7 * 2 ** 40; // vfio-pci's config region: index 7 << 40
const IDS = (0x10ec * 0x10000 + 0x1b36) >>> 0; // memcpy model: device 0x10ec, vendor 0x1b36
const SLICES = 20;

const st = {};

const benchModule = () => WebAssembly.compile(readFileSync(new URL("../../../build/core-bench.wasm", import.meta.url)));

function ask(msg) {
  return new Promise((resolve, reject) => {
    const onErr = (e) => reject(e);
    st.worker.once("error", onErr);
    st.worker.once("message", (m) => { st.worker.off("error", onErr); resolve(m); });
    st.worker.postMessage(msg);
  });
}

const t16 = {
  id: "T16", title: "worker pread of a config dword, gated vs ungated (overhead)", unit: "%", kind: "ratio",
  bars: [{ abs: "%", max: 5 }], goals: [{ abs: "%", max: 1 }],
  async setup() {
    const kernel = st.kernel = await createKernel({ memoryBytes: 32 * MiB, devices: [{ bdf: BDF, model: "memcpy" }] });
    const proc = kernel.createProcess();
    const iommufd = IommuFd.open(proc);
    const dev = VfioDeviceFile.open(proc, kernel.device(BDF));
    dev.bind(iommufd);
    const ref = proc.fileRef(dev.fd);
    if (typeof ref === "number") throw new Error(`T16: fileRef: ${ref}`);
    st.worker = new Worker(new URL("../workers/gate-pread.mjs", import.meta.url), {
      // The worker joins with the benchmark's build of the core (core.wasm plus the timing
      // entry points, bench_file_enter among them), over the kernel's memory: both sides then
      // run one module's code.
      workerData: { init: { ...kernel.workerInit(), module: await benchModule() }, ref, configOffset: CONFIG_OFFSET, expect: IDS },
    });
    st.exited = new Promise((resolve) => st.worker.once("exit", resolve));
    await new Promise((resolve, reject) => { st.worker.once("message", resolve); st.worker.once("error", reject); });
  },
  async calibrate(ctx) {
    await ask({ ops: 20000, slices: 2 }); // warm both paths up
    const m = await ask({ ops: 20000, slices: 2 });
    const perOp = [...m.gated, ...m.ungated].reduce((a, b) => a + b, 0) / 80000;
    st.ops = sizeFor(ctx, perOp * SLICES, 1, 1000);
  },
  async subject() {
    const m = await ask({ ops: st.ops, slices: SLICES });
    (st.g ??= []).push(median(m.gated) / st.ops);
    (st.u ??= []).push(median(m.ungated) / st.ops);
    return median(m.gated.map((g, i) => (g / m.ungated[i] - 1) * 100));
  },
  note() {
    return `per pread (median slice, median trial): gated ${median(st.g).toFixed(1)} ns, ungated ${median(st.u).toFixed(1)} ns; ${st.ops} reads x ${SLICES} slices per side per trial`;
  },
  async teardown() {
    if (st.worker) {
      st.worker.postMessage({ quit: true });
      await st.exited;
    }
    if (st.kernel) await st.kernel.close();
    st.worker = st.kernel = null;
  },
};

export default [t16];
