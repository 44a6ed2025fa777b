// The worker of T16 (src/bench/figures/gate.mjs): a worker-side pread of one config dword through
// ctx.file(ref) (gated: one atomic load of the file's gate word first, gate_check) against the
// identical code path minus the check: src/worker.ts's Context.fileRw without its gate_check
// line, around the very DeviceFileIo.rw that Context.fileRw calls (exported by dist/worker.js
// as this baseline). Same object shapes (a context class, file(ref) closures), same epoch
// section, same copy. Each request { ops, slices } alternates slices of `ops` reads of each
// (the order flips every slice) and answers the ns of every slice of each side.
import { workerData, parentPort } from "node:worker_threads";
import { attachWorker, DeviceFileIo } from "../../worker.js";

const toOffset = (o) => {
  const v = typeof o === "bigint" ? Number(o) : o;
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`offset must be a non-negative integer (got ${o})`);
  return v;
};

/** src/worker.ts Context, file side, without the gate: the baseline. */
class Ungated {
  constructor(core, x) {
    this.x = x;
    this.io = new DeviceFileIo(core);
    this.detached = false;
  }

  live() {
    if (this.detached) throw new Error("the worker context is detached");
  }

  file(ref) {
    return {
      pread: (buf, offset) => this.fileRw(ref, buf, toOffset(offset), false),
      pwrite: (buf, offset) => this.fileRw(ref, buf, toOffset(offset), true),
    };
  }

  fileRw(ref, buf, pos, write) {
    this.live();
    const x = this.x;
    x.epoch_enter();
    try {
      // (no gate_check here: the only difference from Context.fileRw)
      return this.io.rw(ref.slot, buf, pos, write);
    } finally {
      x.epoch_exit();
    }
  }
}

const { init, ref, configOffset, expect } = workerData;
const ctx = await attachWorker(init);
const gated = ctx.file(ref);
const ungated = new Ungated(ctx.core, ctx.core.x).file(ref);
const buf = new Uint8Array(4);

// Both must read the same dword, the device's vendor and device ids.
for (const [name, f] of [["gated", gated], ["ungated", ungated]]) {
  const rc = f.pread(buf, configOffset);
  const got = (buf[0] | (buf[1] << 8) | (buf[2] << 16) | (buf[3] << 24)) >>> 0;
  if (rc !== 4 || got !== expect) throw new Error(`T16 ${name} pread: rc ${rc}, dword 0x${got.toString(16)} (expected 0x${expect.toString(16)})`);
}

function loop(f, ops) {
  let sum = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) sum += f.pread(buf, configOffset);
  const ns = Number(process.hrtime.bigint() - t0);
  if (sum !== 4 * ops) throw new Error(`T16: a pread failed (${sum} bytes of ${4 * ops})`);
  return ns;
}

parentPort.on("message", (m) => {
  if (m.quit) {
    ctx.detach();
    parentPort.close();
    return;
  }
  const gated_ = [], ungated_ = [];
  for (let s = 0; s < m.slices; s++) {
    if (s % 2 === 0) { gated_.push(loop(gated, m.ops)); ungated_.push(loop(ungated, m.ops)); }
    else { ungated_.push(loop(ungated, m.ops)); gated_.push(loop(gated, m.ops)); }
  }
  parentPort.postMessage({ gated: gated_, ungated: ungated_ });
});
parentPort.postMessage({ slot: ctx.slot });
