// The I/OAT engine's own thread (src/devices/ioat.ts spawns it): it claims a worker slot of
// the data plane, then sleeps on the engine's doorbell word and, each time it is rung, runs
// the channel in wasm (assembly/ioat.ts ioat_run) until the channel has nothing left to do.
// After work it spins briefly before it sleeps again, so a driver that submits right after a
// completion is served without the wake-up cost.

import { attachWorker } from "../worker.js";
import { msixRaise } from "./msix.js";
import type { IoatWorkerData } from "./ioat.js";

/** Descriptors per pass: between passes the worker looks at its stop word. */
const BUDGET = 4096;
/** Doorbell polls after the last work before sleeping. */
const SPIN = 20000;

async function run(data: IoatWorkerData): Promise<void> {
  const ctx = await attachWorker(data.init as Parameters<typeof attachWorker>[0]);
  const core = ctx.core;
  const x = core.x;
  const i32 = core.i32;
  const doorbell = (data.eng + core.consts.ENG_DOORBELL) >>> 2;
  const stop = (data.eng + core.consts.ENG_STOP) >>> 2;
  const MORE = core.consts.IOAT_RUN_MORE;
  const STALLED = core.consts.IOAT_RUN_STALLED;
  const IRQ = core.consts.IOAT_RUN_IRQ;
  let seen = Atomics.load(i32, doorbell);
  for (;;) {
    if (Atomics.load(i32, stop)) break;
    const r = x.ioat_run(data.bar, data.eng, BUDGET);
    // The channel's interrupt is its MSI-X vector 0 (masked: held pending by the PBA).
    if (r & IRQ) msixRaise(core, data.dev, 0);
    if (r & MORE) continue;
    if (r & STALLED) {
      // Bus mastering is off: look again shortly (nobody rings when it comes back on).
      Atomics.wait(i32, doorbell, seen, 1);
      seen = Atomics.load(i32, doorbell);
      continue;
    }
    let spun = 0;
    while (Atomics.load(i32, doorbell) === seen && spun < SPIN) spun++;
    // Paired with IoatRegisters.ring's add and notify.
    if (Atomics.load(i32, doorbell) === seen) Atomics.wait(i32, doorbell, seen);
    seen = Atomics.load(i32, doorbell);
  }
  ctx.detach();
}

const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
if (proc?.versions?.node) {
  const spec = ["node", "worker_threads"].join(":");
  const wt = await import(spec) as typeof import("node:worker_threads");
  await run(wt.workerData as IoatWorkerData);
} else {
  const self = globalThis as unknown as { onmessage: ((e: { data: IoatWorkerData }) => void) | null; close(): void };
  self.onmessage = (e) => {
    self.onmessage = null;
    void run(e.data).then(() => self.close());
  };
}
