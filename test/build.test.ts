// The build's rules: the data-plane module imports only env.memory and has no data section;
// a browser bundle of the package reaches no node: module; the package resolves by its name.
import { describe, it, expect } from "vitest";
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
// @ts-expect-error plain JS build helpers
import { checkWasm, wasmSections } from "../scripts/wasm-check.mjs";
// @ts-expect-error plain JS build helpers
import { browserBundle } from "../scripts/bundle-check.mjs";

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
