// The README ships in the npm package and is all a user of it has: it may name only what the
// package holds ("files" in package.json), never the repository's own folders or ../shared.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const files: string[] = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).files;

describe("README", () => {
  it("names no folder outside the package", () => {
    for (const outside of ["../", "assembly/", "src/", "test/", "bench/", "scripts/", ".ci/"]) {
      expect(readme.includes(outside), `README mentions ${outside}`).toBe(false);
    }
  });

  it("every path it lists under 'What the package holds' is in package.json files", () => {
    const section = readme.slice(readme.indexOf("## What the package holds"));
    const listed = [...section.matchAll(/^ {4}(\S+)/gm)].map((m) => m[1]);
    expect(listed.length).toBeGreaterThan(5);
    for (const p of listed) expect(files.some((f) => p === f || p.startsWith(`${f}/`)), p).toBe(true);
  });
});
