// The benchmark harness (bench/run.mjs, PERF.md "How the numbers come out"): a quick run prints
// one JSON document in PERF.md's schema with every single-thread figure T1-T8 and the thread
// and gate figures T11, T12, T15, T16, T17, and a machine without a C compiler gets null C
// baselines with a reason instead of a crash.
import { describe, it, expect } from "vitest";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { availableParallelism, cpus } from "node:os";

const root = fileURLToPath(new URL("..", import.meta.url));
const FIGURES = ["T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12", "T15", "T16", "T17"];
const BASELINES = ["W", "C", "Ct", "TS"];
const twoCpus = () => (availableParallelism?.() ?? cpus().length) >= 2;

async function quickJson(args: string[] = [], env: Record<string, string> = {}): Promise<any> {
  const { stdout } = await promisify(execFile)(process.execPath, ["bench/run.mjs", "--quick", "--json", ...args], {
    cwd: root, env: { ...process.env, ...env }, maxBuffer: 1 << 24, timeout: 60_000,
  });
  return JSON.parse(stdout);
}

// One default quick run, shared by the tests that read it.
let defaultRun: Promise<any> | undefined;
const quickDefault = () => (defaultRun ??= quickJson());

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
  for (const f of doc.figures) expect(f.id).toMatch(/^T\d+$/);
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
      if ("abs" in b) expect(Number.isFinite(b.max ?? b.min)).toBe(true);
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
    const doc = await quickDefault();
    expectSchema(doc);
    expect(doc.figures.map((f: any) => f.id)).toEqual(expect.arrayContaining(FIGURES));
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

  it("measures the thread and gate figures T11, T12, T15, T16, T17 with finite medians", async () => {
    const doc = await quickDefault();
    const byId = Object.fromEntries(doc.figures.map((f: any) => [f.id, f]));
    for (const id of ["T11", "T12", "T15", "T16", "T17"]) {
      expect(byId[id]).toBeDefined();
      expectSummary(byId[id].subject);
      expect(byId[id].holds).toBeNull(); // --quick: not judged, with the reason
      expect(typeof byId[id].reason).toBe("string");
    }
    // Scaling: two workers over one (x), against C's two threads over one on the same copies.
    for (const id of ["T11", "T12"]) {
      expect(byId[id].unit).toBe("x");
      expect(byId[id].subject.median).toBeGreaterThan(0);
      if (doc.machine.cMemcpyGBs !== null) {
        expectSummary(byId[id].baselines.C);
        expect(byId[id].ratios.C).toBeGreaterThan(0);
      }
    }
    expect(byId.T11.bars).toEqual([{ abs: "x", min: 1.8 }]);
    expect(byId.T12.bars).toEqual([{ vs: "C", min: 0.9 }]);
    // T15: unmap latency in ns; the bar is the measured descriptor time + 100 us.
    expect(byId.T15.unit).toBe("ns");
    expect(byId.T15.subject.median).toBeGreaterThan(0);
    expect(byId.T15.bars).toHaveLength(1);
    expect(byId.T15.bars[0].abs).toBe("ns");
    expect(byId.T15.bars[0].max).toBeGreaterThan(100_000);
    expect(byId.T15.reason).toMatch(/descriptor: copy of \d+ KiB/);
    // T16, T17: overheads in %, judged against absolute bars.
    expect(byId.T16.unit).toBe("%");
    expect(byId.T16.bars).toEqual([{ abs: "%", max: 5 }]);
    expect(byId.T16.reason).toMatch(/gated [\d.]+ ns, ungated [\d.]+ ns/);
    expect(byId.T17.unit).toBe("%");
    expect(byId.T17.bars).toEqual([{ abs: "%", max: 1 }]);
    // "0 % when off" is a fact about build/core.wasm, checked and reported, not measured.
    expect(byId.T17.reason).toMatch(/build\/core\.wasm has STATS_ENABLED = 0/);
  }, 60_000);

  it("T11 is not judged (null, with the reason) where C itself scales below 1.8x on the same copies", async () => {
    // @ts-ignore: plain .mjs modules of the harness
    const { runFigure } = await import("../bench/lib/harness.mjs");
    // @ts-ignore
    const { default: threads } = await import("../bench/figures/threads.mjs");
    const t11 = threads.find((f: any) => f.id === "T11");
    const fake = (ours: number, c: number) => ({
      id: "T11", title: "T11 with fixed trials", unit: "x", kind: "ratio", bars: t11.bars, unjudged: t11.unjudged,
      subject: () => ours, baselines: { C: () => c },
    });
    const ctx = { native: { ok: true }, quick: false, trials: 3, warmup: 0, targetMs: 1, machine: { cTwoThreadScaling: 1.1 } };
    const slowC = await runFigure(fake(1.5, 1.6), ctx);
    expect(slowC.holds).toBeNull();
    expect(slowC.reason).toMatch(/C itself scales 1\.60x < 1\.8x/);
    const fastC = await runFigure(fake(1.5, 1.95), ctx);
    const good = await runFigure(fake(1.9, 1.95), ctx);
    if (twoCpus()) {
      expect(fastC.holds).toBe(false);
      expect(fastC.reason).toMatch(/median 1\.50 x < 1\.8 x/);
      expect(good.holds).toBe(true);
    } else {
      expect(fastC.holds).toBeNull(); // one cpu: two workers cannot run at once
    }
  });

  it("without a C compiler, C and Ct are null with a reason", async () => {
    const doc = await quickJson([], { BENCH_CC: "/nonexistent/cc" });
    expectSchema(doc);
    expect(doc.figures.map((f: any) => f.id)).toEqual(expect.arrayContaining(FIGURES));
    expect(doc.machine.cMemcpyGBs).toBeNull();
    expect(doc.machine.cTwoThreadScaling).toBeNull();
    for (const f of doc.figures) {
      const native = ["C", "Ct"].filter((k) => k in f.baselines);
      for (const k of native) {
        expect(f.baselines[k]).toBeNull();
        expect(f.ratios[k]).toBeNull();
      }
      // Figures with a native baseline say why it is missing (T15-T17 have none).
      if (native.length) expect(f.reason).toMatch(/C baselines unavailable/);
    }
  }, 60_000);
});

// Machine-readable output through npm, as a user pipes it: `npm run -s bench -- --json` must
// leave exactly one JSON document on stdout (the build's log lines go to stderr; the build that
// `npm test` just ran is up to date, so it only checks).
describe("bench --json through npm", () => {
  it("npm run -s bench -- --json --quick prints one JSON document on stdout", async () => {
    const { stdout, stderr } = await promisify(execFile)("npm", ["run", "-s", "bench", "--", "--json", "--quick", "--only", "T7"], {
      cwd: root, maxBuffer: 1 << 24, timeout: 60_000,
    });
    const doc = JSON.parse(stdout);
    expect(doc.figures.map((f: any) => f.id)).toEqual(["T7"]);
    expect(stderr).toContain("build: ");
    expect(stdout.trimStart().startsWith("{")).toBe(true);
  });
});
