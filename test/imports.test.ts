// The layering of src/ (DESIGN.md "Layout", issue 15): imports run one way, as in the kernel.
// Every import counts, type-only ones included: a type import is still a dependency of the module.
//
// Reading of issue 15's "no import from src/iommu/ into src/iommufd/ or src/vfio/, and none from
// src/kernel/ into a driver": "from A into B" is a module of A importing a module of B (the issue's
// first item names the violation this way: domain.ts importing io_pagetable.ts is "the IOMMU core
// depends on iommufd"). So:
//   - src/iommu/ (the IOMMU core) imports nothing of src/iommufd/ or src/vfio/;
//   - src/kernel/ (processes, files, dispatch) knows no driver: it imports only src/kernel/,
//     src/uapi/ and src/wasm/ — not src/iommu/, src/iommufd/, src/vfio/, src/devices/,
//     src/drivers/, nor the public face built on top of it.
// And from DESIGN.md, the rules that hold as well: iommufd never uses vfio; uapi imports nothing of
// ours; the wasm loader knows no kernel object.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, posix, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));

/** One import edge: `from` and `to` are paths relative to src/, in posix form. */
interface Edge { from: string; to: string }

interface Rule {
  /** The importing layer: a folder of src/ ("iommu/"). */
  layer: string;
  /** Folders (or files) of src/ it must not import; or, with `only`, the ones it may. */
  forbidden?: string[];
  only?: string[];
  why: string;
}

const RULES: Rule[] = [
  { layer: "iommu/", forbidden: ["iommufd/", "vfio/"], why: "the IOMMU core depends on no user of it (issue 15)" },
  { layer: "kernel/", only: ["kernel/", "uapi/", "wasm/"], why: "the kernel knows no driver (issue 15, DESIGN.md)" },
  { layer: "iommufd/", forbidden: ["vfio/"], why: "iommufd never uses vfio (DESIGN.md)" },
  { layer: "uapi/", only: ["uapi/"], why: "uapi imports nothing of ours (DESIGN.md)" },
  { layer: "wasm/", only: ["wasm/"], why: "the wasm loader knows no kernel object (DESIGN.md)" },
];

/** The edges that break a rule, each as "from -> to (why)". */
function violations(edges: Edge[], rules: Rule[] = RULES): string[] {
  const out: string[] = [];
  for (const e of edges) {
    for (const r of rules) {
      if (!e.from.startsWith(r.layer)) continue;
      const bad = r.only ? !r.only.some((p) => e.to.startsWith(p)) : r.forbidden!.some((p) => e.to.startsWith(p));
      if (bad) out.push(`${e.from} -> ${e.to} (${r.why})`);
    }
  }
  return out;
}

/** The source with comments blanked out (strings and template literals kept as they are). */
function stripComments(s: string): string {
  let out = "";
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === "/" && s[i + 1] === "/") {
      while (i < s.length && s[i] !== "\n") i++;
    } else if (c === "/" && s[i + 1] === "*") {
      const end = s.indexOf("*/", i + 2);
      i = end < 0 ? s.length : end + 2;
      out += " ";
    } else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < s.length && s[j] !== c) j += s[j] === "\\" ? 2 : 1;
      out += s.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/**
 * The module specifiers a TypeScript source imports: `import ... from`, `import type ... from`,
 * `export ... from`, side-effect `import "x"`, and `import("x")` (dynamic or in a type).
 */
function specifiers(source: string): string[] {
  const s = stripComments(source);
  const out: string[] = [];
  // A declaration's clause is names, braces, commas, `*`, `type` and `as`: it cannot reach into
  // another statement.
  const decl = /^\s*(?:import|export)\s+[\w$\s,{}*]*?\bfrom\s*(["'])([^"']+)\1/gm;
  const bare = /^\s*import\s*(["'])([^"']+)\1/gm;
  const call = /\bimport\s*\(\s*(["'])([^"']+)\1\s*\)/g;
  for (const re of [decl, bare, call]) for (const m of s.matchAll(re)) out.push(m[2]);
  return out;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    return d.isDirectory() ? tsFiles(p) : d.name.endsWith(".ts") ? [p] : [];
  });
}

const toSrc = (abs: string): string => relative(SRC, abs).split(sep).join(posix.sep);

/** Every relative import edge between modules of src/ (package and node: imports are not ours). */
function srcEdges(): Edge[] {
  return tsFiles(SRC).flatMap((f) => specifiers(readFileSync(f, "utf8"))
    .filter((spec) => spec.startsWith("."))
    .map((spec) => ({ from: toSrc(f), to: toSrc(join(dirname(f), spec)) })));
}

describe("import rules", () => {
  it("the parser sees every form of import, and none in a comment", () => {
    const src = [
      'import { a } from "./a.js";',
      'import type { B,',
      '  C } from "../b/b.js";',
      "import * as d from '../d.js';",
      'import "./side.js";',
      'export { e } from "./e.js";',
      'export type { F } from "./f.js";',
      'export * from "./g.js";',
      'type H = typeof import("../h.js");',
      'const i = await import("./i.js");',
      '// import { x } from "./commented.js";',
      '/* import { y } from "./block.js"; */',
      '/** @see import("./jsdoc.js") */',
      'const s = "import { z } from \'./in-string.js\'";',
      "export { local };",
      "export function f() { return 1; }",
    ].join("\n");
    expect(specifiers(src).sort()).toEqual(
      ["./a.js", "../b/b.js", "../d.js", "./side.js", "./e.js", "./f.js", "./g.js", "../h.js", "./i.js"].sort());
  });

  it("a planted violation of each rule is caught, and the allowed directions are not", () => {
    const planted: Edge[] = [
      { from: "iommu/domain.ts", to: "iommufd/io_pagetable.js" },
      { from: "iommu/dma.ts", to: "vfio/vfio_main.js" },
      { from: "kernel/ioctl.ts", to: "iommufd/main.js" },
      { from: "kernel/process.ts", to: "devices/machine.js" },
      { from: "kernel/mm.ts", to: "index.js" },
      { from: "iommufd/device.ts", to: "vfio/vfio_main.js" },
      { from: "uapi/vfio.ts", to: "kernel/mm.js" },
      { from: "wasm/core.ts", to: "kernel/kernel.js" },
    ];
    expect(violations(planted)).toHaveLength(planted.length);
    const allowed: Edge[] = [
      { from: "iommufd/io_pagetable.ts", to: "iommu/domain.js" },
      { from: "vfio/vfio_iommu_type1.ts", to: "iommu/domain.js" },
      { from: "vfio/vfio_main.ts", to: "iommufd/main.js" },
      { from: "iommu/domain.ts", to: "kernel/grace.js" },
      { from: "kernel/kernel.ts", to: "wasm/core.js" },
      { from: "kernel/process.ts", to: "uapi/errno.js" },
      { from: "devices/machine.ts", to: "kernel/kernel.js" },
    ];
    expect(violations(allowed)).toEqual([]);
  });

  it("src/ keeps them", () => {
    const edges = srcEdges();
    // The walk found the tree, type-only imports included.
    expect(edges.length).toBeGreaterThan(300);
    expect(edges).toContainEqual({ from: "iommufd/io_pagetable.ts", to: "iommu/domain.js" });
    expect(violations(edges)).toEqual([]);
  });
});
