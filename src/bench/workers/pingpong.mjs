// T14's baseline RT (src/bench/figures/engine.mjs): a bare thread round trip with the ioat
// engine worker's own wake-up policy (src/devices/ioat_worker.ts: poll the doorbell word up to
// SPIN times after the last work, then Atomics.wait on it) and nothing else: no syscall layer,
// no register model, no descriptor. The bench bumps PING and notifies; this thread answers by
// storing the value it saw into PONG.
//
// control (Int32Array): [PING] bumped by the bench (-1: exit), [PONG] the last PING answered.
import { workerData } from "node:worker_threads";

const PING = 0, PONG = 1;
const SPIN = 20000; // as src/devices/ioat_worker.ts

const ctl = new Int32Array(workerData.control);
let seen = 0; // PING starts at 0: a ping sent before this thread ran is still answered
for (;;) {
  let spun = 0;
  while (Atomics.load(ctl, PING) === seen && spun < SPIN) spun++;
  if (Atomics.load(ctl, PING) === seen) Atomics.wait(ctl, PING, seen);
  seen = Atomics.load(ctl, PING);
  if (seen === -1) break;
  Atomics.store(ctl, PONG, seen);
  Atomics.notify(ctl, PONG);
}
