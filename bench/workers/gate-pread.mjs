// The worker of T16 (bench/figures/gate.mjs): a worker-side pread of one config dword through
// ctx.file(ref) (gated: one atomic load of the file's gate word first, gate_check) against the
// identical code path minus gate_check, written here as a replica of src/worker.ts's
// Context.fileRw reading the same shared-memory device state (FILE_DEV_BASE, DEV_* fields, the
// config-space shadow). Same object shapes (a context class, file(ref) closures), same epoch
// section, same copy. Each request { ops, slices } alternates slices of `ops` reads of each
// (the order flips every slice) and answers the ns of every slice of each side.
import { workerData, parentPort } from "node:worker_threads";
import { attachWorker } from "../../dist/worker.js";

const EINVAL = 22;
const EFAULT = 14;
const REGION_SHIFT = 2 ** 40;
const CONFIG_REGION = 7;
const NUM_REGIONS = 9;

const toOffset = (o) => {
  const v = typeof o === "bigint" ? Number(o) : o;
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`offset must be a non-negative integer (got ${o})`);
  return v;
};

/** src/worker.ts Context, file side, without the gate: the baseline. */
class Ungated {
  constructor(core, x, slot) {
    this.core = core;
    this.x = x;
    this.slot = slot;
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
      const c = this.core;
      const dev = c.u32[(c.c("FILE_DEV_BASE") >>> 2) + ref.slot] - 1;
      if (dev < 0) return -EINVAL;
      if (buf.length === 0) return 0;
      const line = (c.c("DEV_BASE") + dev * c.c("DEV_STRIDE")) >>> 2;
      const field = (name) => c.u32[line + c.c(name) / 4];
      const index = Math.floor(pos / REGION_SHIFT);
      const off = pos % REGION_SHIFT;
      if (index >= NUM_REGIONS) return -EINVAL;
      const mem = c.u8;
      if (index === CONFIG_REGION) {
        const size = field("DEV_CONFIG_SIZE");
        if (off >= size || off + buf.length > size) return -EFAULT;
        const at = field("DEV_CONFIG") + off;
        if (!write) { buf.set(mem.subarray(at, at + buf.length)); return buf.length; }
        const mask = field("DEV_CONFIG_MASK") + off;
        for (let i = 0; i < buf.length; i++) mem[at + i] = (mem[at + i] & ~mem[mask + i]) | (buf[i] & mem[mask + i]);
        return buf.length;
      }
      if (index !== 0) return -EINVAL;
      const size = field("DEV_BAR0_SIZE");
      if (off >= size) return -EINVAL;
      const n = Math.min(buf.length, size - off);
      const at = field("DEV_BAR0") + off;
      if (write) mem.set(buf.subarray(0, n), at);
      else buf.set(mem.subarray(at, at + n));
      return n;
    } finally {
      x.epoch_exit();
    }
  }
}

const { init, ref, configOffset, expect } = workerData;
const ctx = await attachWorker(init);
const gated = ctx.file(ref);
const ungated = new Ungated(ctx.core, ctx.core.x, ctx.slot).file(ref);
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
