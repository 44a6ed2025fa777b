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
// Last, no circle of value imports anywhere in src/ (issue 15: the iommufd modules' circle
// dissolves into type imports); for this one only, type-only imports and import() do not count.
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

/** One import of a source: a static one of values, a type-only one, or an `import("x")`. */
interface Import { spec: string; kind: "value" | "type" | "call" }

/** A declaration's clause imports only types: `import type`, `export type`, or `{ type A, type B }`. */
function typeOnly(clause: string): boolean {
  const c = clause.trim();
  if (/^type\s/.test(c)) return true;
  const m = /^\{([^}]*)\}$/.exec(c);
  if (!m) return false;
  const names = m[1].split(",").map((n) => n.trim()).filter(Boolean);
  return names.length > 0 && names.every((n) => /^type\s/.test(n));
}

/**
 * The imports of a TypeScript source: `import ... from`, `import type ... from`, `export ... from`,
 * side-effect `import "x"`, and `import("x")` (dynamic or in a type).
 */
function imports(source: string): Import[] {
  const s = stripComments(source);
  const out: Import[] = [];
  // A declaration's clause is names, braces, commas, `*`, `type` and `as`: it cannot reach into
  // another statement.
  const decl = /^\s*(?:import|export)\s+([\w$\s,{}*]*?)\bfrom\s*(["'])([^"']+)\2/gm;
  for (const m of s.matchAll(decl)) out.push({ spec: m[3], kind: typeOnly(m[1]) ? "type" : "value" });
  for (const m of s.matchAll(/^\s*import\s*(["'])([^"']+)\1/gm)) out.push({ spec: m[2], kind: "value" });
  for (const m of s.matchAll(/\bimport\s*\(\s*(["'])([^"']+)\1\s*\)/g)) out.push({ spec: m[2], kind: "call" });
  return out;
}

const specifiers = (source: string): string[] => imports(source).map((i) => i.spec);

/**
 * The circles of static value imports (Tarjan's strongly connected components of more than one
 * module, or a module importing itself). Type-only imports vanish at compile time and
 * `import()` loads lazily: neither ties the order in which modules initialise.
 */
function valueCircles(edges: (Edge & { kind: Import["kind"] })[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) {
    if (e.kind !== "value") continue;
    const to = e.to.replace(/\.js$/, ".ts");
    next.set(e.from, [...(next.get(e.from) ?? []), to]);
    if (!next.has(to)) next.set(to, []);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v)!) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do { w = stack.pop()!; onStack.delete(w); scc.push(w); } while (w !== v);
    if (scc.length > 1 || next.get(v)!.includes(v)) out.push(scc.sort());
  };
  for (const v of next.keys()) if (!index.has(v)) visit(v);
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
function srcEdges(): (Edge & { kind: Import["kind"] })[] {
  return tsFiles(SRC).flatMap((f) => imports(readFileSync(f, "utf8"))
    .filter((i) => i.spec.startsWith("."))
    .map((i) => ({ from: toSrc(f), to: toSrc(join(dirname(f), i.spec)), kind: i.kind })));
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
    expect(edges).toContainEqual({ from: "iommufd/io_pagetable.ts", to: "iommu/domain.js", kind: "type" });
    expect(violations(edges)).toEqual([]);
  });

  it("tells type-only imports from value imports, and finds a circle of value imports", () => {
    const kinds = imports([
      'import type { A } from "./a.js";',
      'import { type B, type C } from "./b.js";',
      'import { type D, e } from "./d.js";',
      'import f, { type G } from "./f.js";',
      'export type { H } from "./h.js";',
      'export { i } from "./i.js";',
      'type J = import("./j.js").J;',
    ].join("\n")).map((i) => `${i.spec}:${i.kind}`);
    expect(kinds.sort()).toEqual(["./a.js:type", "./b.js:type", "./d.js:value", "./f.js:value",
      "./h.js:type", "./i.js:value", "./j.js:call"].sort());
    const v = (from: string, to: string, kind: Import["kind"] = "value") => ({ from, to, kind });
    expect(valueCircles([v("iommufd/a.ts", "b.js"), v("b.ts", "c.js"), v("c.ts", "iommufd/a.js")]))
      .toEqual([["b.ts", "c.ts", "iommufd/a.ts"]]);
    expect(valueCircles([v("a.ts", "a.js")])).toEqual([["a.ts"]]);
    // A circle closed by a type import, or by import(), is none.
    expect(valueCircles([v("a.ts", "b.js"), v("b.ts", "a.js", "type")])).toEqual([]);
    expect(valueCircles([v("a.ts", "b.js"), v("b.ts", "a.js", "call")])).toEqual([]);
  });

  it("src/ has no circle of value imports (the iommufd modules meet in iommufd_private.ts as types)", () => {
    expect(valueCircles(srcEdges())).toEqual([]);
  });
});
