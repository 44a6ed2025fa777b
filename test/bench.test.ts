// The benchmark harness (bench/run.mjs, PERF.md "How the numbers come out"): a quick run prints
// one JSON document in PERF.md's schema with every single-thread figure T1-T8, and a machine
// without a C compiler gets null C baselines with a reason instead of a crash.
import { describe, it, expect } from "vitest";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const FIGURES = ["T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8"];
const BASELINES = ["W", "C", "Ct", "TS"];

async function quickJson(env: Record<string, string> = {}): Promise<any> {
  const { stdout } = await promisify(execFile)(process.execPath, ["bench/run.mjs", "--quick", "--json"], {
    cwd: root, env: { ...process.env, ...env }, maxBuffer: 1 << 24, timeout: 60_000,
  });
  return JSON.parse(stdout);
}

function expectSummary(s: any): void {
  expect(Object.keys(s).sort()).toEqual(["max", "median", "min", "n"]);
  for (const k of ["median", "min", "max"]) expect(Number.isFinite(s[k])).toBe(true);
  expect(s.min).toBeLessThanOrEqual(s.median);
  expect(s.median).toBeLessThanOrEqual(s.max);
  expect(Number.isInteger(s.n) && s.n >= 1).toBe(true);
}

function expectSchema(doc: any): void {
  expect(Object.keys(doc).sort()).toEqual(["figures", "machine"]);
  expect(Object.keys(doc.machine).sort()).toEqual(["cMemcpyGBs", "cTwoThreadScaling", "cpus", "node"]);
  expect(doc.machine.node).toBe(process.version);
  expect(doc.machine.cpus).toBeGreaterThanOrEqual(1);
  for (const k of ["cMemcpyGBs", "cTwoThreadScaling"]) {
    const v = doc.machine[k];
    expect(v === null || (Number.isFinite(v) && v > 0)).toBe(true);
  }
  expect(doc.figures.map((f: any) => f.id)).toEqual(expect.arrayContaining(FIGURES));
  for (const f of doc.figures) {
    const keys = Object.keys(f);
    expect(keys).toEqual(expect.arrayContaining(["id", "unit", "subject", "baselines", "ratios", "bars", "holds"]));
    for (const k of keys) expect(["id", "unit", "subject", "baselines", "ratios", "bars", "holds", "reason"]).toContain(k);
    expect(["GB/s", "ns", "x", "%"]).toContain(f.unit);
    expectSummary(f.subject);
    for (const [k, b] of Object.entries(f.baselines)) {
      expect(BASELINES).toContain(k);
      if (b !== null) expectSummary(b);
    }
    for (const [k, r] of Object.entries(f.ratios)) {
      expect(["W", "C", "Ct"]).toContain(k);
      expect(r === null || (Number.isFinite(r as number) && (r as number) > 0)).toBe(true);
      if (r === null) expect(f.baselines[k]).toBeNull();
    }
    expect(f.bars.length).toBeGreaterThan(0);
    for (const b of f.bars) {
      if ("abs" in b) expect(Number.isFinite(b.max)).toBe(true);
      else {
        expect(["W", "C", "Ct"]).toContain(b.vs);
        expect(Number.isFinite(b.min ?? b.max)).toBe(true);
      }
    }
    // --quick enforces nothing: every figure is unjudged, with the reason.
    expect(f.holds).toBeNull();
    expect(typeof f.reason).toBe("string");
  }
}

describe("bench/run.mjs --quick --json", () => {
  it("prints PERF.md's schema with T1-T8 and finite medians", async () => {
    const doc = await quickJson();
    expectSchema(doc);
    const byId = Object.fromEntries(doc.figures.map((f: any) => [f.id, f]));
    for (const id of ["T1", "T2", "T3", "T4"]) {
      expect(byId[id].unit).toBe("GB/s");
      expectSummary(byId[id].baselines.W);
      expect(byId[id].ratios.W).toBeGreaterThan(0);
    }
    for (const id of ["T5", "T6", "T7", "T8"]) expect(byId[id].unit).toBe("ns");
    if (doc.machine.cMemcpyGBs !== null) {
      // A C compiler was found: the native baselines are there.
      expectSummary(byId.T1.baselines.C);
      for (const id of ["T5", "T6", "T7", "T8"]) {
        expectSummary(byId[id].baselines.Ct);
        expect(Number.isFinite(byId[id].ratios.Ct)).toBe(true);
      }
    }
  }, 60_000);

  it("without a C compiler, C and Ct are null with a reason", async () => {
    const doc = await quickJson({ BENCH_CC: "/nonexistent/cc" });
    expectSchema(doc);
    expect(doc.machine.cMemcpyGBs).toBeNull();
    expect(doc.machine.cTwoThreadScaling).toBeNull();
    for (const f of doc.figures.filter((f: any) => FIGURES.includes(f.id))) {
      for (const k of ["C", "Ct"]) {
        if (k in f.baselines) {
          expect(f.baselines[k]).toBeNull();
          expect(f.ratios[k]).toBeNull();
        }
      }
      expect(f.reason).toMatch(/C baselines unavailable/);
    }
  }, 60_000);
});
