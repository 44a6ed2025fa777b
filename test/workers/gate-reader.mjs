// A worker that reads a device file's config space through ctx.file(ref).pread in a tight
// loop until told to stop, and reports what it saw (test/concurrency.test.ts); its live
// counts of EINVAL, successes and EBADF are in control[2 + id*3 ..].
import { workerData, parentPort } from "node:worker_threads";
import { attachWorker } from "../../dist/worker.js";

const { init, ref, control, configOffset, vendor, device, id } = workerData;
const ctl = new Int32Array(control);
const ctx = await attachWorker(init);
const file = ctx.file(ref);
const buf = new Uint8Array(4);
let einval = 0, ok = 0, ebadf = 0, state = "blocked";
const violations = [];
Atomics.add(ctl, 1, 1); // ready
while (Atomics.load(ctl, 0) === 0) {
  const rc = file.pread(buf, configOffset);
  if (rc === -22) {
    einval++;
    Atomics.add(ctl, 2 + id * 3, 1);
    if (state !== "blocked") violations.push(`EINVAL after ${state}`);
  } else if (rc === 4) {
    ok++;
    Atomics.add(ctl, 3 + id * 3, 1);
    const v = buf[0] | (buf[1] << 8), d = buf[2] | (buf[3] << 8);
    if (v !== vendor || d !== device) violations.push(`half-initialised config: ${v.toString(16)}:${d.toString(16)}`);
    if (state === "closed") violations.push("a read passed after the file was closed");
    state = "bound";
  } else if (rc === -9) {
    ebadf++;
    Atomics.add(ctl, 4 + id * 3, 1);
    state = "closed";
  } else {
    violations.push(`unexpected ${rc}`);
  }
  if (violations.length > 10) break;
}
ctx.detach();
parentPort.postMessage({ einval, ok, ebadf, violations });
