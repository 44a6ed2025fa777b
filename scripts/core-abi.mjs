// The wasm boundary's types, taken from the AssemblyScript build itself: asc writes a
// declaration file next to each module (build/core.d.ts, asconfig "bindings": "raw"), with every
// export's AssemblyScript type in its JSDoc. readAbi parses it into { functions, constants };
// renderAbi writes src/wasm/core_abi.ts from that, for src/wasm/core.ts to type its exports.
//
// asc's .d.ts describes its adapting loader (build/core.js: u32 lifted with >>> 0, bool to
// boolean), but Core uses the raw instance exports, so the TS types here are wasm's own: every
// 32-bit integer and bool is a number (a u32 result at or above 2^31 arrives negative), 64-bit
// integers are bigints. asc does not copy doc comments, so each export's is taken from its
// assembly/ source.
import { readFileSync } from "node:fs";
import { join } from "node:path";

const NUMBER = new Set(["i8", "i16", "i32", "u8", "u16", "u32", "bool", "isize", "usize", "f32", "f64"]);
const BIGINT = new Set(["i64", "u64"]);

function tsType(asType, what) {
  if (NUMBER.has(asType)) return "number";
  if (BIGINT.has(asType)) return "bigint";
  throw new Error(`core ABI: ${what} has type ${asType}, which does not cross the raw wasm boundary`);
}

const FUNCTION = /^ {2}\/\*\*\n {3}\* (assembly\/[\w/]+)\n((?: {3}\* @\w+ .*\n)*) {3}\*\/\n {2}export function (\w+)\(/gm;
const CONSTANT = /^ {2}\/\*\* (assembly\/[\w/]+) \*\/\n {2}export const (\w+): \{\n {4}\/\*\* @type `(\w+)` \*\/\n {4}get value\(\): \w+\n {2}\};/gm;
const TAG = / {3}\* @(param|returns) (?:(\w+) )?`([^`]+)`/g;

/**
 * The exports declared by an asc .d.ts: functions (name, source, params [{ name, type }],
 * result type) and constants (name, source, type), in declaration order. Throws on any export it
 * does not understand, so a change of asc's format fails the build instead of dropping exports.
 */
export function readAbi(dts, file = "core.d.ts") {
  const functions = [], constants = [];
  for (const m of dts.matchAll(FUNCTION)) {
    const params = [];
    let result = "void";
    for (const t of m[2].matchAll(TAG)) {
      if (t[1] === "param") params.push({ name: t[2], type: t[3] });
      else result = t[3];
    }
    functions.push({ name: m[3], source: m[1], params, result });
  }
  for (const m of dts.matchAll(CONSTANT)) constants.push({ name: m[2], source: m[1], type: m[3] });
  const declared = [...dts.matchAll(/^ {2}export (?:const|function) (\w+)/gm)].map((m) => m[1]).filter((n) => n !== "memory");
  const read = new Set([...functions, ...constants].map((e) => e.name));
  const missed = declared.filter((n) => !read.has(n));
  if (missed.length || read.size !== declared.length) throw new Error(`core ABI: ${file} declares exports this parser does not read: ${missed.join(", ")}`);
  for (const f of functions) {
    for (const p of f.params) tsType(p.type, `${f.name}'s parameter ${p.name}`);
    if (f.result !== "void") tsType(f.result, `${f.name}'s result`);
  }
  for (const c of constants) tsType(c.type, c.name);
  return { functions, constants };
}

/** The ABI as text, one line per export, to compare two builds. */
export function abiLines(abi) {
  return [
    ...abi.functions.map((f) => `function ${f.name}(${f.params.map((p) => `${p.name}: ${p.type}`).join(", ")}): ${f.result}`),
    ...abi.constants.map((c) => `const ${c.name}: ${c.type}`),
  ];
}

/** The benchmark build's own entry points (assembly/bench_index.ts), and only those. */
export function isBenchExport(name) {
  return name.startsWith("bench_") || name === "iotlb_bench";
}

/**
 * How `b`'s exports differ from `a`'s: lines of `a` that `b` lacks or declares otherwise
 * (missing), and lines of `b` that `a` lacks (added), leaving out added exports `extra` accepts.
 */
export function abiDiff(a, b, extra = () => false) {
  const left = abiLines(a), right = abiLines(b);
  const nameOf = (l) => l.split(/[ (:]/)[1];
  return {
    missing: left.filter((l) => !right.includes(l)),
    added: right.filter((l) => !left.includes(l) && !extra(nameOf(l))),
  };
}

/** Checks a module's real export section against its declarations: the same names and kinds. */
export function checkAbiAgainstWasm(abi, wasm, file) {
  const actual = WebAssembly.Module.exports(new WebAssembly.Module(wasm))
    .filter((e) => e.name !== "memory").map((e) => `${e.kind} ${e.name}`).sort();
  const declared = [...abi.functions.map((f) => `function ${f.name}`), ...abi.constants.map((c) => `global ${c.name}`)].sort();
  if (actual.join("\n") !== declared.join("\n")) {
    const a = new Set(actual), d = new Set(declared);
    throw new Error(`core ABI: ${file}'s exports differ from its declarations: ` +
      `undeclared [${actual.filter((e) => !d.has(e)).join(", ")}], not exported [${declared.filter((e) => !a.has(e)).join(", ")}]`);
  }
}

/** The doc comment right above `export function|const name` in assembly/<file>.ts, or "". */
function sourceDoc(root, source, name) {
  const file = source.slice(0, source.lastIndexOf("/"));
  const text = readFileSync(join(root, `${file}.ts`), "utf8");
  const at = text.search(new RegExp(`^export (?:function|const) ${name}\\b`, "m"));
  if (at < 0) return "";
  const before = text.slice(0, at).trimEnd();
  if (!before.endsWith("*/")) return "";
  const start = before.lastIndexOf("/**");
  if (start < 0 || before.lastIndexOf("*/", before.length - 3) > start) return "";
  return before.slice(start + 3, -2).split("\n").map((l) => l.replace(/^\s*\* ?/, "").trimEnd()).join("\n").trim();
}

function docBlock(indent, lines) {
  const body = lines.flatMap((l) => l.split("\n"));
  if (body.length === 1) return `${indent}/** ${body[0]} */\n`;
  return `${indent}/**\n${body.map((l) => `${indent} *${l ? ` ${l}` : ""}`).join("\n")}\n${indent} */\n`;
}

/** src/wasm/core_abi.ts for `abi` (read from `from`); `root` finds the assembly/ sources' doc comments. */
export function renderAbi(abi, root, from) {
  const out = [
    `// Generated by scripts/build.mjs (scripts/core-abi.mjs) from ${from}, asc's declarations of`,
    "// assembly/index.ts's exports. Do not edit: change the assembly/ source.",
    "// Raw wasm types: a u32 result at or above 2^31 arrives negative (>>> 0 it), a bool as 0 or 1.",
    "",
    "/** The core's exported functions, as the instance hands them to JS. */",
    "export interface CoreFunctions {",
  ];
  for (const f of abi.functions) {
    const sig = `${f.source}(${f.params.map((p) => `${p.name}: ${p.type}`).join(", ")}): ${f.result}`;
    const doc = sourceDoc(root, f.source, f.name);
    out.push(docBlock("  ", doc ? [sig, "", doc] : [sig]).trimEnd());
    const params = f.params.map((p) => `${p.name}: ${tsType(p.type, p.name)}`).join(", ");
    out.push(`  ${f.name}(${params}): ${f.result === "void" ? "void" : tsType(f.result, f.name)};`);
  }
  out.push("}", "",
    "/** The core's exported constants (immutable globals): assembly/layout.ts's memory map and the codes TS shares with the core. */",
    "export interface CoreConstants {");
  for (const c of abi.constants) {
    const doc = sourceDoc(root, c.source, c.name);
    out.push(docBlock("  ", doc ? [`${c.source}: ${c.type}`, "", doc] : [`${c.source}: ${c.type}`]).trimEnd());
    out.push(`  readonly ${c.name}: ${tsType(c.type, c.name)};`);
  }
  out.push("}", "",
    "/** Every constant's name and AssemblyScript type, in export order (Core reads them from the instance). */",
    "export const CORE_CONSTANTS: readonly (readonly [keyof CoreConstants, string])[] = [");
  for (const c of abi.constants) out.push(`  [${JSON.stringify(c.name)}, ${JSON.stringify(c.type)}],`);
  out.push("];", "");
  return out.join("\n");
}
