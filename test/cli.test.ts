// The command line (dist/cli.js, the package's `vfio-emu` bin): --help on every verb, a clear
// error and exit status 2 on a bad argument, and the demo verb running clean.
import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, ["dist/cli.js", ...args], { cwd: root, encoding: "utf8", timeout: 20_000 });
  return { rc: r.status, out: r.stdout, err: r.stderr };
};

describe("vfio-emu cli", () => {
  it("--help lists the verbs on stdout and exits 0", () => {
    const r = cli("--help");
    expect(r.rc).toBe(0);
    expect(r.out.split("\n")[0]).toBe("usage: vfio-emu <command> [options]");
    expect(r.out).toMatch(/^  demo {6}/m);
    expect(r.out).toMatch(/^  bench {5}/m);
    expect(r.out).toMatch(/^  trace {5}/m);
    expect(r.out).toMatch(/^  help {6}/m);
    expect(r.out).toMatch(/^  web {7}serve the browser page/m);
    expect(r.err).toBe("");
  });

  it("every verb answers --help and help VERB with its own usage", () => {
    for (const args of [["web", "--help"], ["help", "web"]]) {
      const r = cli(...args);
      expect(r.rc).toBe(0);
      expect(r.out.split("\n")[0]).toBe("usage: vfio-emu web [--port N]");
    }
    for (const args of [["demo", "--help"], ["demo", "-h"], ["help", "demo"]]) {
      const r = cli(...args);
      expect(r.rc).toBe(0);
      expect(r.out.split("\n")[0]).toBe("usage: vfio-emu demo [--legacy] [--trace GLOB]");
    }
    for (const args of [["bench", "--help"], ["help", "bench"]]) {
      const r = cli(...args);
      expect(r.rc).toBe(0);
      expect(r.out.split("\n")[0]).toBe("usage: vfio-emu bench [--json] [--quick] [--only IDS]");
      expect(r.out).toContain("  1  at least one bar fails (the table and the JSON are still complete)\n");
    }
  });

  it("a bad argument is a clear error on stderr with exit status 2", () => {
    const cases: [string[], string][] = [
      [[], "vfio-emu: no command given"],
      [["frob"], "vfio-emu: unknown command 'frob'"],
      [["help", "frob"], "vfio-emu: unknown command 'frob'"],
      [["demo", "--bogus"], "vfio-emu: demo: Unknown option '--bogus'"],
      [["demo", "--trace"], "vfio-emu: demo: Option '--trace <value>' argument missing"],
      [["web", "--port", "http"], "vfio-emu: web: --port must be a TCP port 0..65535 (got 'http')"],
      [["web", "--port", "65536"], "vfio-emu: web: --port must be a TCP port 0..65535 (got '65536')"],
      [["web", "extra"], "vfio-emu: web: Unexpected argument 'extra'"],
    ];
    for (const [args, first] of cases) {
      const r = cli(...args);
      expect(r.rc).toBe(2);
      expect(r.out).toBe("");
      expect(r.err.split("\n")[0]).toMatch(new RegExp("^" + first.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
      expect(r.err).toContain("usage: vfio-emu");
    }
  });

  it("demo --trace GLOB runs clean and prints only the matching events", () => {
    const r = cli("demo", "--trace", "sys_ioctl");
    expect(r.rc).toBe(0);
    expect(r.out).toContain("  sys_ioctl pid=1 fd=2 cmd=VFIO_DEVICE_BIND_IOMMUFD arg=0x7ffff7f00000 ret=0\n");
    expect(r.out).not.toContain("  sys_open ");
    expect(r.out).toContain("after unmap: -EFAULT (fault at 0x10000, unmapped)\n");
  });
});
