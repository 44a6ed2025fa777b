// A DMA worker for T15 (src/bench/figures/grace.mjs): through the worker API (attachWorker,
// ctx.device(index)), the device copies one descriptor after another, `len` bytes from IOVA
// `src` to IOVA `dst` (dmaRead into a buffer, then dmaWrite of it), until told to stop, while
// the kernel thread unmaps and remaps the IOAS under it. It times every descriptor that went
// through whole (a descriptor that met the unmap faults and is not timed).
//
// control (Int32Array): [STOP], [READY] workers running, [TRIAL] bumped by the bench when a
// trial starts (the worker forgets its timings), [ASK] bumped when the bench wants a report,
// [ANSWERED] reports written. Report of worker id in the Float64Array over `results` at 4 * id:
// median and max descriptor time (ns) since the trial started, descriptors timed, faults.
import { workerData, parentPort } from "node:worker_threads";
import { attachWorker } from "../../worker.js";
import { errno } from "../../uapi/errno.js";

const STOP = 0, READY = 1, TRIAL = 2, ASK = 3, ANSWERED = 4; // as in src/bench/figures/grace.mjs

const { init, control, results, dev, src, dst, len, id } = workerData;
const ctl = new Int32Array(control);
const res = new Float64Array(results);
const ctx = await attachWorker(init);
const d = ctx.device(dev);
const buf = new Uint8Array(len);
const times = new Float64Array(1 << 16);
let n = 0, faults = 0, trial = Atomics.load(ctl, TRIAL), asked = Atomics.load(ctl, ASK);
const other = [];
parentPort.postMessage({ slot: ctx.slot });
Atomics.add(ctl, READY, 1);
Atomics.notify(ctl, READY);
while (Atomics.load(ctl, STOP) === 0) {
  const t = Atomics.load(ctl, TRIAL);
  if (t !== trial) { trial = t; n = 0; faults = 0; }
  const a = Atomics.load(ctl, ASK);
  if (a !== asked) {
    asked = a;
    const s = times.slice(0, n).sort();
    res[4 * id] = n ? s[n >> 1] : NaN;
    res[4 * id + 1] = n ? s[n - 1] : NaN;
    res[4 * id + 2] = n;
    res[4 * id + 3] = faults;
    Atomics.add(ctl, ANSWERED, 1);
    Atomics.notify(ctl, ANSWERED);
  }
  const t0 = performance.now();
  let rc = d.dmaRead(src, buf);
  if (rc === 0) rc = d.dmaWrite(dst, buf);
  const ns = (performance.now() - t0) * 1e6;
  if (rc === 0) { if (n < times.length) times[n++] = ns; }
  else if (rc === -errno.EFAULT) faults++;
  else if (other.length < 10) other.push(rc);
}
ctx.detach();
parentPort.postMessage({ other });
