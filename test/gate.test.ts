// The per-file gate (assembly/gate.ts, DESIGN.md "The gate") as a worker's file operation
// meets it: gate_enter enters the thread's grace-period read section and makes the one atomic
// load of the gate word in a single call; WorkerFiles (src/worker.ts, behind ctx.file(ref))
// starts every pread/pwrite with it and leaves the section whatever the outcome.
import { describe, it, expect } from "vitest";
import { Core } from "../src/wasm/core.js";
import { createKernel, errno } from "../src/index.js";
import { attachWorker, WorkerFiles } from "../src/worker.js";
import { bind, openDev, openIommufd } from "./vfio/util.js";

/** vfio-pci's config region: index 7 << VFIO_PCI_OFFSET_SHIFT (40). */
const CONFIG_OFFSET = 7 * 2 ** 40;

describe("gate_enter: the section entry and the gate check in one call", () => {
  it("answers as gate_check (EINVAL before the grant, 0 while granted, EBADF once closed) and is inside the section every time", async () => {
    const c = await Core.boot(32 << 20);
    const x = c.x;
    const epochWord = c.consts.WORKER_BASE >>> 2; // slot 0: this instance's
    const epoch = () => c.u32[c.consts.HDR_GLOBAL_EPOCH >>> 2];
    const slot = 7;
    const gen = x.gate_generation(slot) >>> 0;
    const enter = (g: number): number => {
      expect(c.u32[epochWord], "idle before").toBe(0);
      const rc = x.gate_enter(slot, g);
      expect(c.u32[epochWord], "the section is entered whatever the gate says").toBe(epoch());
      expect(rc).toBe(x.gate_check(slot, g));
      x.epoch_exit();
      return rc;
    };
    expect(enter(gen)).toBe(-errno.EINVAL);
    x.gate_grant(slot, gen);
    expect(enter(gen)).toBe(0);
    expect(enter(gen + 1)).toBe(-errno.EBADF);
    x.gate_close(slot);
    expect(enter(gen)).toBe(-errno.EBADF);
    const next = x.gate_generation(slot) >>> 0;
    expect(next).toBe(gen + 1);
    expect(enter(next)).toBe(-errno.EINVAL);
    x.gate_grant(slot, next);
    expect(enter(next)).toBe(0);
    expect(enter(gen), "the closed file's generation never passes again").toBe(-errno.EBADF);
  });
});

describe("WorkerFiles: a worker's file operations", () => {
  it("enter through gate_enter, and leave the section after every outcome; detach stops them", async () => {
    const kernel = await createKernel({ memoryBytes: 64 << 20, devices: [{ bdf: "0000:00:04.0", model: "memcpy" }] });
    const ctx = await attachWorker(kernel.workerInit());
    const c = ctx.core;
    const epochWord = (c.consts.WORKER_BASE + ctx.slot * c.consts.WORKER_STRIDE) >>> 2;
    // A WorkerFiles as ctx.file builds it, its entry call observed: what it is handed, and
    // that the section is what it sees next.
    const calls: number[][] = [];
    const files = new WorkerFiles(c, (slot, gen) => {
      const rc = c.x.gate_enter(slot, gen);
      calls.push([slot, gen, rc, c.u32[epochWord]]);
      return rc;
    });
    const p = kernel.createProcess();
    const ifd = openIommufd(p);
    const dfd = openDev(p);
    const ref = p.fileRef(dfd);
    if (typeof ref === "number") throw new Error("fileRef");
    const id = new Uint8Array(4);
    for (const f of [ctx.file(ref), files.file(ref)]) expect(f.pread(id, CONFIG_OFFSET)).toBe(-errno.EINVAL);
    expect(c.u32[epochWord], "left after EINVAL").toBe(0);
    expect(bind(p, dfd, ifd)).toBe(1);
    for (const f of [ctx.file(ref), files.file(ref)]) {
      id.fill(0);
      expect(f.pread(id, CONFIG_OFFSET)).toBe(4);
      expect(new DataView(id.buffer).getUint32(0, true)).toBe(0x10ec1b36);
    }
    expect(c.u32[epochWord], "left after a read").toBe(0);
    expect(p.close(dfd)).toBe(0);
    for (const f of [ctx.file(ref), files.file(ref)]) expect(f.pread(id, CONFIG_OFFSET)).toBe(-errno.EBADF);
    expect(c.u32[epochWord], "left after EBADF").toBe(0);
    expect(calls.map((k) => k.slice(0, 3))).toEqual([
      [ref.slot, ref.gen, -errno.EINVAL], [ref.slot, ref.gen, 0], [ref.slot, ref.gen, -errno.EBADF],
    ]);
    for (const k of calls) expect(k[3], "inside the section when the check answers").not.toBe(0);
    const file = ctx.file(ref);
    ctx.detach();
    expect(() => file.pread(id, CONFIG_OFFSET)).toThrow(/detached/);
    expect(p.close(ifd)).toBe(0);
    await kernel.close();
  });
});
