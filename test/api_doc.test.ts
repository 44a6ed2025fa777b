// docs/API.md, the API reference that ships in the package, cannot go stale: every export of
// every entry point (runtime values and declared types) has a heading, every public member of
// each exported class and interface is named in its section, and the generated part (constants
// and struct layouts) is what scripts/api-doc.mjs makes of the built dist/uapi modules.
import { describe, it, expect } from "vitest";
import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = fileURLToPath(new URL("..", import.meta.url));
const doc = readFileSync(join(root, "docs/API.md"), "utf8");
const ENTRIES: Record<string, string> = { "vfio-emu": "dist/index", "vfio-emu/worker": "dist/worker", "vfio-emu/testing": "dist/testing" };

/** Names an entry's .d.ts exports (following export * and re-exports), with the file declaring each. */
function declared(dts: string, out = new Map<string, string>()): Map<string, string> {
  const text = readFileSync(dts, "utf8");
  const from = (spec: string) => join(dirname(dts), spec.replace(/\.js$/, ".d.ts"));
  for (const m of text.matchAll(/^export \* from "([^"]+)";/gm)) declared(from(m[1]), out);
  for (const m of text.matchAll(/^export (?:type )?\{([^}]*)\}(?: from "([^"]+)")?;/gm)) {
    for (const n of m[1].split(",").map((s) => s.trim().replace(/^type /, "")).filter(Boolean)) {
      if (!out.has(n)) out.set(n, m[2] ? from(m[2]) : dts);
    }
  }
  for (const m of text.matchAll(/^export (?:declare )?(?:class|interface|function|const|type) (\w+)/gm)) if (!out.has(m[1])) out.set(m[1], dts);
  return out;
}

/** The public members of `export (declare class|interface) name` in `dts`. */
function members(dts: string, name: string): string[] {
  const text = readFileSync(dts, "utf8");
  const start = text.search(new RegExp(`^export (?:declare class|interface) ${name}\\b`, "m"));
  if (start < 0) return [];
  const body = text.slice(start, text.indexOf("\n}", start));
  const out = new Set<string>();
  for (const m of body.matchAll(/^ {4}(?!private |constructor|\[|\/|\*)(?:readonly |static |get |set )*(\w+)[?(:<]/gm)) out.add(m[1]);
  return [...out];
}

/** The text from `### ...name...` to the next heading; "" when there is none. */
function section(entry: string, name: string): string {
  const part = doc.slice(doc.indexOf(`## \`${entry}\``));
  const lines = part.split("\n");
  const at = lines.findIndex((l, i) => i > 0 && l.startsWith("### ") && l.includes(`\`${name}\``));
  if (at < 0) return "";
  const end = lines.findIndex((l, i) => i > at && l.startsWith("#"));
  return lines.slice(at, end < 0 ? undefined : end).join("\n");
}

const generatedSection = () => {
  const a = doc.indexOf("<!-- generated:"), b = doc.indexOf("<!-- end of generated -->");
  return doc.slice(a, b + "<!-- end of generated -->".length);
};

describe("docs/API.md", () => {
  it("ships in the package and is named in the README", () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
    expect(pkg.files).toContain("docs");
    expect(readFileSync(join(root, "README.md"), "utf8")).toContain("docs/API.md");
  });

  it("its constants and struct layouts are what the built uapi modules hold", async () => {
    // @ts-ignore: a plain .mjs script
    const { generated } = await import("../scripts/api-doc.mjs");
    expect(generatedSection()).toBe(await generated());
  });

  for (const [entry, base] of Object.entries(ENTRIES)) {
    it(`${entry}: every export has a heading, every public member is named`, async () => {
      const runtime = await import(join(root, `${base}.js`));
      const gen = generatedSection();
      const missing: string[] = [];
      const names = new Set([...Object.keys(runtime), ...declared(join(root, `${base}.d.ts`)).keys()]);
      expect(names.size).toBeGreaterThan(2);
      const decl = declared(join(root, `${base}.d.ts`));
      for (const name of names) {
        // Constants and struct layouts are in the generated part (DEFAULT_MEMORY_BYTES is not uapi).
        if (name !== "errno" && gen.includes(`\`${name}\` = `)) continue;
        if (name !== "errno" && gen.includes(`| \`${name}\` |`)) continue;
        const s = section(entry, name);
        if (!s) { missing.push(`${name}: no heading`); continue; }
        const file = decl.get(name);
        if (!file || !existsSync(file)) continue;
        for (const m of members(file, name)) {
          if (!new RegExp("`[^`]*\\b" + m + "\\b").test(s)) missing.push(`${name}.${m}`);
        }
      }
      expect(missing).toEqual([]);
    });
  }
});
