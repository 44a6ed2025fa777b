// The build's rules: the data-plane module imports only env.memory and has no data section;
// a browser bundle of the package reaches no node: module; the package resolves by its name.
import { describe, it, expect } from "vitest";
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
// @ts-expect-error plain JS build helpers
import { checkWasm, wasmSections } from "../scripts/wasm-check.mjs";
// @ts-expect-error plain JS build helpers
import { browserBundle } from "../scripts/bundle-check.mjs";
// @ts-expect-error plain JS build helpers
import { readAbi, abiDiff } from "../scripts/core-abi.mjs";
import { Core } from "../src/wasm/core.js";
import { CORE_CONSTANTS } from "../src/wasm/core_abi.js";

const root = fileURLToPath(new URL("..", import.meta.url));

/** A module built by hand: a vector of sections, each [id, bytes]. */
function wasmModule(sections: [number, number[]][]): Uint8Array {
  const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  for (const [id, body] of sections) out.push(id, body.length, ...body); // bodies < 128 bytes
  return Uint8Array.from(out);
}
const name = (s: string) => [s.length, ...[...s].map((c) => c.charCodeAt(0))];
const memImport = [...name("env"), ...name("memory"), 0x02, 0x00, 0x01];

describe("build checks", () => {
  it("build/core.wasm imports only env.memory and has no data section", () => {
    const bytes = readFileSync(join(root, "build/core.wasm"));
    const ids: number[] = checkWasm(bytes, "core.wasm");
    expect(ids).not.toContain(11);
    const imports = WebAssembly.Module.imports(new WebAssembly.Module(bytes));
    expect(imports).toEqual([{ module: "env", name: "memory", kind: "memory" }]);
    // Declared bounds: a small minimum, a 4 GiB maximum, shared.
    const wat = readFileSync(join(root, "build/core.wat"), "utf8");
    expect(wat).toMatch(/\(import "env" "memory" \(memory \$0 1 65536 shared\)\)/);
  });

  it("rejects a module with a data section", () => {
    const m = wasmModule([[2, [1, ...memImport]], [11, [1, 0x00, 0x41, 0x00, 0x0b, 1, 0x2a]]]);
    expect(wasmSections(m)).toEqual([2, 11]);
    expect(() => checkWasm(m, "bad.wasm")).toThrow("bad.wasm breaks the data-plane rules: it has a data section (id 11)");
  });

  it("rejects a module that imports anything but env.memory", () => {
    const m = wasmModule([
      [1, [1, 0x60, 0x00, 0x00]],
      [2, [2, ...memImport, ...name("env"), ...name("abort"), 0x00, 0x00]],
    ]);
    expect(() => checkWasm(m, "bad.wasm")).toThrow("it imports env.abort (function)");
  });

  it("a browser bundle of the package reaches no node: import; one that does is caught", async () => {
    expect(await browserBundle({ main: join(root, "src/index.ts"), worker: join(root, "src/worker.ts") })).toEqual([]);
    const dir = mkdtempSync(join(tmpdir(), "vfio-emu-bundle-"));
    writeFileSync(join(dir, "entry.ts"), 'import { readFileSync } from "node:fs";\nexport const f = readFileSync;\n');
    const bad: string[] = await browserBundle({ entry: join(dir, "entry.ts") });
    expect(bad).toHaveLength(1);
    expect(bad[0]).toMatch(/entry\.ts -> node:fs$/);
  });

  it("`import { createKernel } from 'vfio-emu'` works from the package root", () => {
    const out = execFileSync(process.execPath, ["--input-type=module", "-e",
      "import { createKernel, VFIO_DEVICE_BIND_IOMMUFD } from 'vfio-emu';" +
      "import { attachCore } from 'vfio-emu/worker';" +
      "import { failNth } from 'vfio-emu/testing';" +
      "const k = await createKernel({ memoryBytes: 16 * 1024 * 1024 });" +
      "console.log(typeof attachCore, typeof failNth, VFIO_DEVICE_BIND_IOMMUFD.toString(16), k.stats().framesTotal > 0);" +
      "await k.close();"], { cwd: root, encoding: "utf8" });
    expect(out.trim()).toBe("function function 3b76 true");
  });
});

// The wasm boundary's types come from the build (scripts/core-abi.mjs -> src/wasm/core_abi.ts),
// and the benchmark's loops live in a build of their own (build/core-bench.wasm).
describe("the core's ABI", () => {
  const exportsOf = (f: string) => WebAssembly.Module.exports(new WebAssembly.Module(readFileSync(join(root, f))))
    .map((e) => `${e.kind} ${e.name}`).sort();

  it("build/core.wasm ships no benchmark entry point; core-bench.wasm is core.wasm plus bench_* and iotlb_bench; core-stats.wasm exports what core.wasm does", () => {
    const core = exportsOf("build/core.wasm"), bench = exportsOf("build/core-bench.wasm");
    expect(core.filter((e) => /^function (bench_|iotlb_bench$)/.test(e))).toEqual([]);
    expect(core.filter((e) => !bench.includes(e))).toEqual([]);
    expect(bench.filter((e) => !core.includes(e))).toEqual([
      "function bench_dma_batch", "function bench_file_enter", "function bench_identity_batch", "function bench_map_range",
      "function bench_map_unmap", "function bench_unmap_range", "function iotlb_bench"]);
    expect(exportsOf("build/core-stats.wasm")).toEqual(core);
  });

  it("Core reads every exported global of core.wasm once, by the generated names, u32s unsigned", async () => {
    const globals = exportsOf("build/core.wasm").filter((e) => e.startsWith("global ")).map((e) => e.slice(7));
    expect(CORE_CONSTANTS.map(([n]) => n).sort()).toEqual(globals);
    const core = await Core.boot(16 * 1024 * 1024);
    expect(Object.keys(core.consts).sort()).toEqual(globals);
    expect(Object.isFrozen(core.consts)).toBe(true);
    expect(core.consts.FRAME_NONE).toBe(0xffffffff);
    expect(core.consts.IRQ_OFF).toBe(2);
  });

  it("a misspelt constant or function of the core is a type error", () => {
    const dir = mkdtempSync(join(tmpdir(), "vfio-emu-abi-"));
    const file = join(dir, "misspelt.ts");
    writeFileSync(file, `import type { Core } from ${JSON.stringify(join(root, "src/wasm/core.js"))};\n` +
      "export const ok = (c: Core): number => c.consts.DEV_BASE + c.x.frames_free();\n" +
      "export const constant = (c: Core): number => c.consts.DEV_BASEE;\n" +
      "export const fn = (c: Core): number => c.x.frames_fre();\n");
    let out = "";
    try {
      execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "--ignoreConfig", "--noEmit", "--strict", "--skipLibCheck",
        "--target", "ES2022", "--module", "NodeNext", "--moduleResolution", "NodeNext", "--lib", "ES2022,DOM", "--types", "node", file],
      { cwd: root, encoding: "utf8" });
    } catch (e) {
      out = (e as { stdout: string }).stdout;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const errors = out.split("\n").filter((l) => l.includes("error TS")).map((l) => l.replace(/^.*misspelt\.ts/, ""));
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/^\(3,\d+\): error TS2551: Property 'DEV_BASEE' does not exist on type 'CoreConstants'/);
    expect(errors[1]).toMatch(/^\(4,\d+\): error TS2551: Property 'frames_fre' does not exist on type 'CoreFunctions'/);
  });

  it("readAbi reads asc's declarations and refuses what it cannot read or what cannot cross the raw boundary", () => {
    const dts = (body: string) => `declare namespace __AdaptedExports {\n  /** Exported memory */\n  export const memory: WebAssembly.Memory;\n${body}}\n`;
    const fn = (name: string, ret: string, ...params: [string, string][]) =>
      `  /**\n   * assembly/x/${name}\n${params.map(([n, t]) => `   * @param ${n} \`${t}\`\n`).join("")}   * @returns \`${ret}\`\n   */\n` +
      `  export function ${name}(${params.map(([n]) => `${n}: number`).join(", ")}): number;\n`;
    const konst = (name: string, t: string) => `  /** assembly/x/${name} */\n  export const ${name}: {\n    /** @type \`${t}\` */\n    get value(): number\n  };\n`;
    const a = readAbi(dts(fn("f", "i32", ["a", "u32"], ["b", "bool"]) + konst("K", "u32")));
    expect(a).toEqual({
      functions: [{ name: "f", source: "assembly/x/f", params: [{ name: "a", type: "u32" }, { name: "b", type: "bool" }], result: "i32" }],
      constants: [{ name: "K", source: "assembly/x/K", type: "u32" }],
    });
    // The stats and bench builds are compared with the release build this way.
    const b = readAbi(dts(fn("f", "i32", ["a", "u32"], ["b", "u32"]) + konst("K", "u32") + fn("bench_g", "i32")));
    expect(abiDiff(a, b, (n: string) => n.startsWith("bench_"))).toEqual({
      missing: ["function f(a: u32, b: bool): i32"], added: ["function f(a: u32, b: u32): i32"],
    });
    expect(abiDiff(a, b).added).toEqual(["function f(a: u32, b: u32): i32", "function bench_g(): i32"]);
    expect(() => readAbi(dts("  export function g(): void;\n"))).toThrow("declares exports this parser does not read: g");
    expect(() => readAbi(dts(fn("h", "~lib/string/String")))).toThrow("h's result has type ~lib/string/String, which does not cross the raw wasm boundary");
    expect(() => readAbi(dts(konst("S", "externref")))).toThrow("S has type externref, which does not cross the raw wasm boundary");
  });
});
