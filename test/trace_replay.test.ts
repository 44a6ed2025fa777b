// `vfio-emu trace --record FILE -- node app.js` and `--replay FILE`: a recording of the demo (and
// of a program with two kernels, a fork and raw ioctls) replays identically on a fresh kernel
// (exit 0); a recording changed by hand is reported at the call that was changed, with what
// differs (exit 1); bad arguments and files are exit status 2.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { spawnSync } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, ["dist/cli.js", ...args], { cwd: root, encoding: "utf8", timeout: 30_000 });
  return { rc: r.status, out: r.stdout, err: r.stderr };
};
let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), "vfio-emu-trace-")); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const lines = (file: string) => readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
const save = (file: string, ls: unknown[]) => writeFileSync(file, ls.map((l) => JSON.stringify(l)).join("\n") + "\n");

describe("trace --record", () => {
  it("runs the command with its output and exit status, and writes the recording", () => {
    const file = join(dir, "demo.jsonl");
    const plain = cli("demo");
    const r = cli("trace", "--record", file, "--", process.execPath, "dist/cli.js", "demo");
    expect(r.rc).toBe(0);
    expect(r.out).toBe(plain.out);
    const ls = lines(file);
    expect(ls[0]).toEqual({ format: "vfio-emu-trace", version: 1, kernels: 1, calls: ls.length - 1, argv: [join(root, "dist/cli.js"), "demo"] });
    expect(r.err).toBe(`vfio-emu: trace: recorded ${ls.length - 1} calls of 1 kernel to ${file}\n`);
    expect(ls[1]).toEqual({ k: 0, call: "boot", config: { memoryBytes: 64 * 1024 * 1024 } });
    expect(ls[2]).toEqual({ k: 0, call: "addDevice", args: [{ bdf: "0000:00:04.0", model: "memcpy", iommuGroup: 7 }], ret: { bdf: "0000:00:04.0", index: 0, iommuGroup: 7 } });
    expect(ls[3]).toEqual({ k: 0, call: "createProcess", args: [{ uid: 1000 }], ret: { $proc: 1 } });
    // IOMMU_IOAS_ALLOC through ioctlBuf: the argument in and out, and the kernel's accesses:
    // ioctlBuf's copy in, get_user of size, the struct, the response, ioctlBuf's copy back.
    const alloc = ls.find((l) => l.call === "ioctlBuf" && l.args[1] === 0x3b81);
    expect(alloc.args[2]).toEqual({ $hex: "0c0000000000000000000000" });
    expect(alloc.out[2]).toEqual({ $hex: "0c0000000000000001000000" });
    expect(alloc.ret).toBe(0);
    expect(alloc.mem.map((m: any) => `${m.op} 0x${m.addr.toString(16)} ${m.hex}`)).toEqual([
      "w 0x7ffff7f00000 0c0000000000000000000000",
      "r 0x7ffff7f00000 0c000000",
      "r 0x7ffff7f00000 0c0000000000000000000000",
      "w 0x7ffff7f00000 0c0000000000000001000000",
      "r 0x7ffff7f00000 0c0000000000000001000000",
    ]);
    // Nested calls belong to the outer one: kill's closes are not events of their own.
    const kill = ls.findIndex((l) => l.call === "kill");
    expect(ls.slice(kill).map((l) => l.call)).toEqual(["kill", "close"]);
    expect(ls.at(-1)).toEqual({ k: 0, call: "close", ret: {} });
  });

  it("passes the command's exit status through; a program that boots no kernel records none", () => {
    const file = join(dir, "none.jsonl");
    const r = cli("trace", "--record", file, "--", process.execPath, "-e", "process.exit(3)");
    expect(r.rc).toBe(3);
    expect(lines(file)).toEqual([{ format: "vfio-emu-trace", version: 1, kernels: 0, calls: 0, argv: [] }]);
    expect(r.err).toBe(`vfio-emu: trace: recorded 0 calls of 0 kernels to ${file}\n`);
  });
});

describe("trace --replay", () => {
  it("the demo, cdev and legacy, replays identically: exit 0", () => {
    for (const [name, args] of [["cdev", ["demo"]], ["legacy", ["demo", "--legacy"]]] as const) {
      const file = join(dir, `${name}.jsonl`);
      expect(cli("trace", "--record", file, "--", process.execPath, "dist/cli.js", ...args).rc).toBe(0);
      const n = lines(file).length - 1;
      const r = cli("trace", "--replay", file);
      expect(r.err).toBe("");
      expect(r.out).toBe(`${file}: ${n} calls replayed on 1 fresh kernel: identical\n`);
      expect(r.rc).toBe(0);
    }
  });

  it("two kernels, a fork, raw ioctls on structs in user memory, pread and poll replay identically", () => {
    const app = join(dir, "app.mjs");
    const index = pathToFileURL(join(root, "dist/index.js")).href;
    writeFileSync(app, `
      import { createKernel, IOMMU_IOAS_ALLOC, MAP_ANONYMOUS, MAP_PRIVATE, POLLIN } from ${JSON.stringify(index)};
      for (const mem of [32 << 20, 64 << 20]) {
        const k = await createKernel({ memoryBytes: mem, devices: [{ bdf: "0000:00:05.0", model: "memcpy" }] });
        const p = k.createProcess({ memlockBytes: 1 << 20 });
        const a = p.mmap(0, 4096, 3, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p.writeMemory(a, Uint8Array.of(12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
        const fd = p.open("/dev/iommu");
        p.ioctl(fd, IOMMU_IOAS_ALLOC, a);
        p.ioctl(fd, IOMMU_IOAS_ALLOC, a + 4093); // crosses into an unmapped page: -EFAULT
        const child = p.fork();
        child.ioctl(fd, IOMMU_IOAS_ALLOC, a);
        const efd = child.eventfd(2, 0);
        child.poll([{ fd: efd, events: POLLIN }], 0);
        const m = p.memfd_create("m");
        p.pwrite(m, Uint8Array.of(1, 2, 3), 5);
        p.pread(m, new Uint8Array(8), 2);
        child.kill();
        await k.close();
      }`);
    const file = join(dir, "app.jsonl");
    expect(cli("trace", "--record", file, "--", process.execPath, app).rc).toBe(0);
    const ls = lines(file);
    expect(ls[0].kernels).toBe(2);
    expect(ls.filter((l) => l.call === "boot").map((l) => l.k)).toEqual([0, 1]);
    expect(ls.filter((l) => l.call === "fork").map((l) => l.ret)).toEqual([{ $proc: 2 }, { $proc: 2 }]);
    // The child's ioctl on the inherited fd: the second IOAS of that context, written back.
    const childAlloc = ls.find((l) => l.call === "ioctl" && l.pid === 2);
    expect(childAlloc.mem.find((m: any) => m.op === "w").hex).toBe("0c0000000000000002000000");
    const r = cli("trace", "--replay", file);
    expect(r.out).toBe(`${file}: ${ls.length - 1} calls replayed on 2 fresh kernels: identical\n`);
    expect(r.rc).toBe(0);
  });

  it("a changed return value is reported at its call: exit 1", () => {
    const file = join(dir, "cdev.jsonl");
    const ls = lines(file);
    // The second IOMMU_IOAS_MAP (fixed IOVA 0x100000000) succeeded; claim it gave EEXIST.
    const maps = ls.map((l, i) => [l, i] as const).filter(([l]) => l.call === "ioctlBuf" && l.args[1] === 0x3b85);
    const [ev, at] = maps[1];
    expect(ev.ret).toBe(0);
    ev.ret = -17;
    const bad = join(dir, "bad-ret.jsonl");
    save(bad, ls);
    const r = cli("trace", "--replay", bad);
    expect(r.rc).toBe(1);
    expect(r.out).toBe([
      `${bad}: divergence at call ${at} of ${ls.length - 1} (line ${at + 1})`,
      "  kernel 0, pid 1: ioctlBuf(fd=2, IOMMU_IOAS_MAP, 40 bytes)",
      "  return value: recorded -EEXIST (-17), replayed 0",
      `  (the ${at - 1} calls before it replayed identically)`,
      "",
    ].join("\n"));
  });

  it("changed written-back bytes are reported at their call, write and byte: exit 1", () => {
    const file = join(dir, "cdev.jsonl");
    const ls = lines(file);
    const at = ls.findIndex((l) => l.call === "ioctlBuf" && l.args[1] === 0x3b81);
    // The kernel's response (the second write): out_ioas_id, at byte 8, was 1.
    const resp = ls[at].mem.filter((m: any) => m.op === "w")[1];
    expect(resp.hex).toBe("0c0000000000000001000000");
    resp.hex = "0c0000000000000002000000";
    const bad = join(dir, "bad-bytes.jsonl");
    save(bad, ls);
    const r = cli("trace", "--replay", bad);
    expect(r.rc).toBe(1);
    expect(r.out).toBe([
      `${bad}: divergence at call ${at} of ${ls.length - 1} (line ${at + 1})`,
      "  kernel 0, pid 1: ioctlBuf(fd=2, IOMMU_IOAS_ALLOC, 12 bytes)",
      "  written-back bytes, write 2 (pid 1 at 0x7ffff7f00000 (12 bytes)): first difference at byte +8: recorded 02, replayed 01" +
        " (recorded ... 00 00 00 00 02 00 00 00; replayed ... 00 00 00 00 01 00 00 00)",
      `  (the ${at - 1} calls before it replayed identically)`,
      "",
    ].join("\n"));
  });

  it("a changed buffer of a pread is reported as the argument it is", () => {
    const file = join(dir, "cdev.jsonl");
    const ls = lines(file);
    const at = ls.findIndex((l) => l.call === "pread" && l.ret === 4);
    expect(ls[at].out[1]).toEqual({ $hex: "361bec10" }); // vendor:device 1b36:10ec
    ls[at].out[1] = { $hex: "361bed10" };
    const bad = join(dir, "bad-pread.jsonl");
    save(bad, ls);
    const r = cli("trace", "--replay", bad);
    expect(r.rc).toBe(1);
    expect(r.out.split("\n").slice(1, 3)).toEqual([
      "  kernel 0, pid 1: pread(2, <4 bytes>, 7696581394432)",
      "  argument 2 (buffer) after the call: first difference at byte +2: recorded ed, replayed ec (recorded ... 36 1b ed 10; replayed ... 36 1b ec 10)",
    ]);
  });
});

describe("trace arguments", () => {
  it("a bad argument or file is exit status 2 with a clear error", () => {
    const notJson = join(dir, "not.jsonl");
    writeFileSync(notJson, '{"format":"something-else"}\n');
    const cases: [string[], string][] = [
      [["trace"], "vfio-emu: trace: give exactly one of --record FILE and --replay FILE"],
      [["trace", "--record", "a", "--replay", "b"], "vfio-emu: trace: give exactly one of --record FILE and --replay FILE"],
      [["trace", "--record", join(dir, "x")], "vfio-emu: trace: --record FILE needs a command after --, e.g. -- node app.js"],
      [["trace", "--replay", notJson, "--", "node"], "vfio-emu: trace: --replay takes no command (got 'node')"],
      [["trace", "--replay"], "vfio-emu: trace: Option '--replay <value>' argument missing"],
      [["trace", "--replay", join(dir, "missing.jsonl")], `vfio-emu: trace: cannot read ${join(dir, "missing.jsonl")}: ENOENT`],
      [["trace", "--replay", notJson], `vfio-emu: trace: ${notJson}: line 1: not a vfio-emu trace recording (format "something-else")`],
    ];
    for (const [args, first] of cases) {
      const r = cli(...args);
      expect(r.rc, args.join(" ")).toBe(2);
      expect(r.out).toBe("");
      expect(r.err.split("\n")[0].startsWith(first), r.err).toBe(true);
    }
    const h = cli("trace", "--help");
    expect(h.rc).toBe(0);
    expect(h.out.split("\n").slice(0, 2)).toEqual(["usage: vfio-emu trace --record FILE -- COMMAND [ARGS...]", "       vfio-emu trace --replay FILE"]);
  });
});
