// A worker thread that instantiates the core over the kernel's memory (through the built
// package) and plays one side of the shared-memory handshake in test/threads.test.ts.
import { parentPort, workerData } from "node:worker_threads";
import { attachCore } from "../../dist/worker.js";

const { init, me, other, rounds, word } = workerData;
const core = await attachCore(init);
const i32 = core.i32;
const at = word >>> 2;
// Ping-pong through one word: each side waits for its own turn number and then hands the
// turn to the other with an atomic store and a notify; every round proves the other side's
// write became visible. Plus a shared counter both sides add to, and a gate grant from the
// core that the other side must observe.
let seen = 0;
for (let r = 0; r < rounds; r++) {
  while (Atomics.load(i32, at) % 2 !== me) Atomics.wait(i32, at, Atomics.load(i32, at), 1000);
  seen++;
  Atomics.add(i32, at + 1, 1);
  Atomics.add(i32, at, 1);
  Atomics.notify(i32, at);
}
if (me === 0) core.x.gate_grant(5, 0);
else while (core.x.gate_check(5, 0) !== 0) Atomics.wait(i32, at, Atomics.load(i32, at), 1);
parentPort.postMessage({ me, other, seen, counter: Atomics.load(i32, at + 1), gate: core.x.gate_word(5) >>> 0 });
