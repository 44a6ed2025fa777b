// Two worker threads instantiate the core over the same shared memory and see each other's
// atomic writes (DESIGN.md "Two planes").
import { describe, it, expect } from "vitest";
import { Worker } from "node:worker_threads";
import { Core, FRAME_NONE } from "../src/wasm/core.js";

describe("the core in two threads", () => {
  it("both instances see each other's atomic writes", async () => {
    const core = await Core.boot(32 * 1024 * 1024);
    // Two scratch words in a frame of the pool that this test owns (frame_put gives it back).
    const frame = core.x.frame_alloc(0) >>> 0;
    expect(frame).not.toBe(FRAME_NONE);
    const word = core.x.frame_addr(frame) >>> 0;
    const rounds = 2000;
    const url = new URL("./workers/atomic-peer.mjs", import.meta.url);
    const run = (me: number) => new Promise<{ seen: number; counter: number; gate: number }>((resolve, reject) => {
      const w = new Worker(url, { workerData: { init: core.init(), me, other: 1 - me, rounds, word } });
      w.once("message", (m) => { resolve(m); void w.terminate(); });
      w.once("error", reject);
    });
    const [a, b] = await Promise.all([run(0), run(1)]);
    expect(a.seen).toBe(rounds);
    expect(b.seen).toBe(rounds);
    expect(Atomics.load(core.i32, (word >>> 2) + 1)).toBe(2 * rounds);
    expect(Atomics.load(core.i32, word >>> 2)).toBe(2 * rounds);
    // The grant stored by thread 0 is what thread 1 and this thread load.
    expect(b.gate).toBe(1);
    expect(core.x.gate_check(5, 0)).toBe(0);
    expect(core.x.frame_put(frame)).toBe(1);
  });

  it("a worker refuses a memory that holds no initialised memory map", async () => {
    const memory = new WebAssembly.Memory({ initial: 256, maximum: 256, shared: true });
    const module = (await Core.boot(16 * 1024 * 1024)).module;
    await expect(Core.attach({ module, memory })).rejects.toThrow(/no initialised vfio-emu memory map/);
  });
});
