// Trace events: golden lines of the syscall layer, subscription, glob matching, and nothing
// at all while nobody listens.
import { describe, it, expect } from "vitest";
import { createKernel, type Kernel } from "../src/index.js";
import type { KernelCore } from "../src/kernel/kernel.js";
import type { FileOperations } from "../src/kernel/file.js";
import { compileGlob, hex } from "../src/kernel/trace.js";
import { MAP_ANONYMOUS, MAP_PRIVATE, O_RDONLY, S_IFCHR, makedev } from "../src/uapi/posix.js";

const testOps: FileOperations = {
  kind: "test",
  ioctl(_f, cmd, arg) { return cmd === 0x1234 ? arg + 1 : -515; },
};

async function setup(): Promise<{ kernel: Kernel; kc: KernelCore }> {
  const kernel = await createKernel({ memoryBytes: 64 * 1024 * 1024 });
  const kc = (kernel as unknown as { kcore: KernelCore }).kcore;
  kc.vfs.addChr("/dev/emu-test", makedev(240, 0), 0o666, (_p, flags, path) =>
    kc.newFile(testOps, flags, null, path, { mode: S_IFCHR | 0o666, rdev: makedev(240, 0), size: 0 }));
  return { kernel, kc };
}

describe("syscall trace lines", () => {
  it("open / ioctl / mmap / munmap / close, results last, errors by name", async () => {
    const { kernel } = await setup();
    const lines: string[] = [];
    const names: string[] = [];
    kernel.trace("sys_*", (line, name) => { lines.push(line); names.push(name); });
    const p = kernel.createProcess();
    const fd = p.open("/dev/emu-test");
    p.ioctl(fd, 0x1234, 41);
    p.ioctl(fd, 0x3b64, 0);
    p.ioctl(fd, 0x3b80, 0x1000000000000000n);
    p.mmap(0, 4096, 3, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p.mmap(0, 0, 3, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p.munmap(0x7ffff6fff000, 4096);
    p.close(fd);
    p.close(fd);
    p.open("/dev/nope", O_RDONLY);
    p.read(p.eventfd(3), new Uint8Array(8));
    expect(lines).toEqual([
      "sys_open pid=1 path=/dev/emu-test flags=0x2 ret=0",
      "sys_ioctl pid=1 fd=0 cmd=0x1234 arg=0x29 ret=42",
      "sys_ioctl pid=1 fd=0 cmd=VFIO_GET_API_VERSION arg=0x0 ret=-ENOTTY",
      "sys_ioctl pid=1 fd=0 cmd=IOMMU_DESTROY arg=0x1000000000000000 ret=-ENOTTY",
      "sys_mmap pid=1 addr=0x0 len=0x1000 prot=0x3 flags=0x22 fd=-1 off=0x0 ret=0x7ffff6fff000",
      "sys_mmap pid=1 addr=0x0 len=0x0 prot=0x3 flags=0x22 fd=-1 off=0x0 ret=-EINVAL",
      "sys_munmap pid=1 addr=0x7ffff6fff000 len=0x1000 ret=0",
      "sys_close pid=1 fd=0 ret=0",
      "sys_close pid=1 fd=0 ret=-EBADF",
      "sys_open pid=1 path=/dev/nope flags=0x0 ret=-ENOENT",
      "sys_eventfd2 pid=1 initval=3 flags=0x0 ret=0",
      "sys_read pid=1 fd=0 len=0x8 ret=8",
    ]);
    expect(names).toEqual(lines.map((l) => l.split(" ")[0]));
  });

  it("names the process and traces pread/pwrite with their offsets", async () => {
    const { kernel } = await setup();
    const lines: string[] = [];
    kernel.createProcess();
    const p = kernel.createProcess();
    kernel.trace("sys_p*", (l) => lines.push(l));
    const m = p.memfd_create("m");
    p.pwrite(m, new Uint8Array(16), 0x2000);
    p.pread(m, new Uint8Array(4), 0x2004);
    p.pread(m, new Uint8Array(4), -1);
    expect(lines).toEqual([
      "sys_pwrite pid=2 fd=0 len=0x10 off=0x2000 ret=16",
      "sys_pread pid=2 fd=0 len=0x4 off=0x2004 ret=4",
      "sys_pread pid=2 fd=0 len=0x4 off=-0x1 ret=-EINVAL",
    ]);
  });
});

describe("subscription", () => {
  it("emits nothing, and builds nothing, without a subscriber", async () => {
    const { kernel, kc } = await setup();
    let emits = 0;
    const real = kc.trace.emit.bind(kc.trace);
    kc.trace.emit = (name, fields) => { emits++; real(name, fields); };
    const p = kernel.createProcess();
    const run = () => {
      const fd = p.open("/dev/emu-test");
      p.ioctl(fd, 0x1234, 1);
      const a = p.mmap(0, 4096, 3, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      p.munmap(a, 4096);
      p.read(fd, new Uint8Array(1));
      p.close(fd);
    };
    expect(kc.trace.on).toBe(false);
    run();
    expect(emits).toBe(0);
    const lines: string[] = [];
    const off = kernel.trace("*", (l) => lines.push(l));
    expect(kc.trace.on).toBe(true);
    run();
    expect(lines.length).toBe(6);
    expect(emits).toBe(6);
    off();
    expect(kc.trace.on).toBe(false);
    run();
    expect(lines.length).toBe(6);
    expect(emits).toBe(6);
  });

  it("delivers each event to every matching subscriber only", async () => {
    const { kernel } = await setup();
    const a: string[] = [], b: string[] = [], c: string[] = [];
    kernel.trace("sys_open", (l) => a.push(l));
    const offB = kernel.trace("sys_?lose sys_open", (l) => b.push(l));
    kernel.trace("sys_*,-sys_close", (l) => c.push(l));
    const p = kernel.createProcess();
    p.close(p.open("/dev/emu-test"));
    expect(a).toEqual(["sys_open pid=1 path=/dev/emu-test flags=0x2 ret=0"]);
    expect(b).toEqual(["sys_open pid=1 path=/dev/emu-test flags=0x2 ret=0", "sys_close pid=1 fd=0 ret=0"]);
    expect(c).toEqual(["sys_open pid=1 path=/dev/emu-test flags=0x2 ret=0"]);
    offB();
    p.close(p.open("/dev/emu-test"));
    expect(b.length).toBe(2);
    expect(a.length).toBe(2);
  });
});

describe("compileGlob", () => {
  it("matches whole names with * and ?, lists, and '-' exclusions (the last match decides)", () => {
    const g = compileGlob("sys_*");
    expect(g("sys_open")).toBe(true);
    expect(g("sys_")).toBe(true);
    expect(g("xsys_open")).toBe(false);
    expect(g("iommufd_map")).toBe(false);
    const q = compileGlob("sys_?lose");
    expect(q("sys_close")).toBe(true);
    expect(q("sys_clse")).toBe(false);
    const l = compileGlob("iommufd_*, sys_open");
    expect(l("iommufd_ioas_map")).toBe(true);
    expect(l("sys_open")).toBe(true);
    expect(l("sys_openat")).toBe(false);
    // Regex metacharacters are literal.
    expect(compileGlob("a.b")("axb")).toBe(false);
    expect(compileGlob("a.b")("a.b")).toBe(true);
    expect(compileGlob("a+")("aa")).toBe(false);
    const ex = compileGlob("sys_*,-sys_read*");
    expect(ex("sys_open")).toBe(true);
    expect(ex("sys_read")).toBe(false);
    const back = compileGlob("-sys_read,sys_*");
    expect(back("sys_read")).toBe(true);
    expect(compileGlob("")("sys_open")).toBe(false);
  });

  it("hex formats numbers and bigints, negatives with a sign", () => {
    expect(hex(0)).toBe("0x0");
    expect(hex(0x7ffff6fff000)).toBe("0x7ffff6fff000");
    expect(hex(-22)).toBe("-0x16");
    expect(hex(0xffffffffffffffffn)).toBe("0xffffffffffffffff");
  });
});
