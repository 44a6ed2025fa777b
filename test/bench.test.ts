// The benchmark harness (`vfio-emu bench`, src/bench/main.mjs, PERF.md "How the numbers come out"):
// a quick run prints one JSON document in PERF.md's schema with every single-thread figure
// T1-T8, the thread and gate figures T11, T12, T15, T16, T17 and the ioat engine's T13, T14, and a machine without a C
// compiler gets null C baselines with a reason instead of a crash. The harness ships in the
// package: an unpacked tarball runs it.
import { describe, it, expect } from "vitest";
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";

const root = fileURLToPath(new URL("..", import.meta.url));
const FIGURES = ["T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12", "T13", "T14", "T15", "T16", "T17"];
// PERF.md's four, and the engine figures' own: DP (T13: the same copies by the data plane
// alone, no engine) and RT (T14: a bare thread round trip with the engine worker's wake-up).
const BASELINES = ["W", "C", "Ct", "TS", "DP", "RT"];
const RATIOS = ["W", "C", "Ct", "DP", "RT"];
const twoCpus = () => (availableParallelism?.() ?? cpus().length) >= 2;

async function quickJson(args: string[] = [], env: Record<string, string> = {}): Promise<any> {
  const { stdout } = await promisify(execFile)(process.execPath, ["dist/cli.js", "bench", "--quick", "--json", ...args], {
    cwd: root, env: { ...process.env, ...env }, maxBuffer: 1 << 24, timeout: 60_000,
  });
  return JSON.parse(stdout);
}

// One default quick run, shared by the tests that read it, exactly as a user pipes it: through
// npm (whose build step must log to stderr only) into a JSON parser, which prints it back.
let defaultRun: Promise<any> | undefined;
const PIPE = `npm run -s bench -- --json --quick | node -e 'process.stdout.write(JSON.stringify(JSON.parse(require("fs").readFileSync(0))))'`;
const quickDefault = () => (defaultRun ??= (async () => {
  const { stdout, stderr } = await promisify(execFile)("bash", ["-o", "pipefail", "-c", PIPE], {
    cwd: root, maxBuffer: 1 << 24, timeout: 60_000,
  });
  expect(stderr).toContain("build: ");
  return JSON.parse(stdout);
})());

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
      expect(RATIOS).toContain(k);
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

describe("vfio-emu bench --quick --json", () => {
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

  it("measures the ioat engine's T13 (batched submission, vs DP) and T14 (submit -> completion, vs RT) in ns with their bars", async () => {
    const doc = await quickDefault();
    const byId = Object.fromEntries(doc.figures.map((f: any) => [f.id, f]));
    const t13 = byId.T13, t14 = byId.T14;
    for (const f of [t13, t14]) {
      expect(f.unit).toBe("ns");
      expect(f.subject.median).toBeGreaterThan(0);
      expect(f.holds).toBeNull();
    }
    expect(t13.bars).toEqual([{ abs: "ns", max: 100 }]);
    expect(Object.keys(t13.baselines)).toEqual(["DP"]);
    expectSummary(t13.baselines.DP);
    expect(t13.ratios.DP).toBeGreaterThan(0);
    expect(t13.reason).toMatch(/32 descriptors per doorbell, up to \d+ in flight, \d+ per trial/);
    expect(t14.bars).toEqual([{ abs: "ns", max: 50_000 }]);
    expect(Object.keys(t14.baselines)).toEqual(["RT"]);
    expectSummary(t14.baselines.RT);
    expect(t14.ratios.RT).toBeGreaterThan(0);
    expect(t14.reason).toMatch(/by the MSI-X eventfd \(poll \+ read\) median [\d.]+ us, polled after 2 ms idle \(the engine asleep\) median [\d.]+ us/);
  }, 60_000);

  it("T11 is not judged (null, with the reason) where C itself scales below 1.8x on the same copies", async () => {
    // @ts-ignore: plain .mjs modules of the harness
    const { runFigure } = await import("../dist/bench/lib/harness.mjs");
    // @ts-ignore
    const { default: threads } = await import("../dist/bench/figures/threads.mjs");
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

describe("bench options, exit status, progress and summary", () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, ["dist/cli.js", "bench", ...args], { cwd: root, encoding: "utf8", timeout: 60_000 });

  it("--only takes ids and ranges; a bad one is exit status 2 with the figures that exist", async () => {
    const doc = await quickJson(["--only", "T7,T5-T6"]);
    expect(doc.figures.map((f: any) => f.id)).toEqual(["T5", "T6", "T7"]);
    for (const [only, msg] of [
      ["T99", "vfio-emu: bench: --only: no figure T99 (there are T1, T2, T3, T4, T5, "],
      ["x1", "vfio-emu: bench: --only: 'x1' is not a figure id (T1, T5, or a range T1-T4)"],
      ["T5-T2", "vfio-emu: bench: --only: 'T5-T2' is an empty range"],
      [",", "vfio-emu: bench: --only: no figure named"],
    ]) {
      const r = cli("--quick", "--only", only);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr.split("\n")[0].startsWith(msg)).toBe(true);
      expect(r.stderr).toContain("usage: vfio-emu bench [--json] [--quick] [--only IDS]");
    }
    expect(cli("--frob").status).toBe(2);
  }, 60_000);

  it("without --json: the table and the summary on stdout, the progress on stderr", () => {
    const r = cli("--quick", "--only", "T7");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^machine: node /);
    expect(r.stdout).toContain("summary against PERF.md's bars (must hold) and goals (aims):\n");
    expect(r.stdout).toMatch(/^T7 {2}[\d.]+ ns +<= 30 ns +null +<= 15 ns +-$/m);
    expect(r.stdout).toContain("quick run: nothing judged (1 figures measured, indicative only)\n");
    // stderr is not a terminal here: plain lines, no bar.
    expect(r.stderr).toContain("[bench] T7: page-table map+unmap, one 4 KiB page\n");
    expect(r.stderr).not.toContain("\r");
  });

  it("exit status: 1 when a full run has a failing bar, 0 when the rest hold or cannot be judged", async () => {
    // @ts-ignore: plain .mjs modules of the harness
    const { exitStatus } = await import("../dist/bench/main.mjs");
    const doc = (...holds: (boolean | null)[]) => ({ figures: holds.map((h, i) => ({ id: `T${i + 1}`, holds: h })) });
    expect(exitStatus(doc(true, null, true), false)).toBe(0);
    expect(exitStatus(doc(true, false, null), false)).toBe(1);
    expect(exitStatus(doc(true, false), true)).toBe(0); // --quick judges nothing
  });

  it("the summary puts each figure beside its bar and goal and counts them", async () => {
    // @ts-ignore: plain .mjs modules of the harness
    const { verdicts, goalsMet } = await import("../dist/bench/lib/harness.mjs");
    const fig = (id: string, unit: string, median: number, ratios: any, bars: any, goals: any, holds: boolean | null) => {
      const f: any = { id, unit, subject: { median, min: median, max: median, n: 7 }, baselines: {}, ratios, bars, goals, holds };
      f.goalMet = goalsMet(f, goals, false);
      return f;
    };
    const doc = { machine: {}, figures: [
      fig("T1", "GB/s", 30, { W: 0.97, C: 0.88 }, [{ vs: "W", min: 0.9 }, { vs: "C", min: 0.85 }], [{ vs: "W", min: 0.95 }, { vs: "C", min: 0.9 }], true),
      fig("T5", "ns", 6, { Ct: 1.2 }, [{ abs: "ns", max: 5 }, { vs: "Ct", max: 4 }], [{ abs: "ns", max: 3 }], false),
      fig("T7", "ns", 12, { Ct: 0.3 }, [{ abs: "ns", max: 30 }], [{ abs: "ns", max: 15 }], true),
      fig("T11", "x", 1.5, { C: 1.1 }, [{ abs: "x", min: 1.8 }], [{ abs: "x", min: 1.95 }], null),
    ] };
    expect(doc.figures.map((f: any) => f.goalMet)).toEqual([false, false, true, null]);
    expect(verdicts(doc, false).split("\n")).toEqual([
      "summary against PERF.md's bars (must hold) and goals (aims):",
      "id   measured           bar (must)          holds  goal (aim)          met",
      "---  -----------------  ------------------  -----  ------------------  ---",
      "T1   97.0% W, 88.0% C   >= 90% W, >= 85% C  yes    >= 95% W, >= 90% C  NO",
      "T5   6.00 ns, 1.20x Ct  <= 5 ns, <= 4x Ct   NO     <= 3 ns             NO",
      "T7   12.0 ns            <= 30 ns            yes    <= 15 ns            yes",
      "T11  1.50 x             >= 1.8 x            null   >= 1.95 x           -",
      "bars: 2 hold, 1 fail (T5), 1 not judged (T11); goals: 1 of 3 judged met",
    ]);
  });

  it("progress: a bar redrawn in place on a terminal, plain lines elsewhere", async () => {
    // @ts-ignore: plain .mjs modules of the harness
    const { Progress } = await import("../dist/bench/lib/progress.mjs");
    const sink = () => { const s = { text: "", write(t: string) { s.text += t; return true; } }; return s; };
    const tty = sink();
    const p = new Progress(tty, 4, { tty: true });
    p.figure("T1", "copy");
    p.trial("T1 run 1/1 trial 1/4", "T1 30 GB/s");
    p.line("a note");
    p.trial("T1 run 1/1 trial 2/4", "T1 31 GB/s");
    p.end();
    const frames = tty.text.split("\r").filter(Boolean);
    expect(frames[0]).toMatch(/^\[-{28}\]   0% T1 \d+s\x1b\[K$/);
    expect(frames[1]).toMatch(/^\[#{7}-{21}\]  25% T1 run 1\/1 trial 1\/4 \d+s\x1b\[K$/);
    expect(frames[2]).toBe("\x1b[K[bench] a note\n");
    expect(frames.at(-1)).toBe("\x1b[K"); // end() leaves the line empty
    expect(tty.text).toMatch(/\[#{14}-{14}\]  50% T1 run 1\/1 trial 2\/4/);
    expect(tty.text).not.toContain("30 GB/s");
    const log = sink();
    const q = new Progress(log, 4, { tty: false });
    q.figure("T1", "copy");
    q.trial("T1 run 1/1 trial 1/4", "T1 30 GB/s");
    q.trial("T1 run 1/1 trial 2/4", null);
    q.end();
    expect(log.text).toBe("[bench] T1: copy\n[bench] T1 run 1/1 trial 1/4: T1 30 GB/s\n");
  });
});

// The package a user installs holds the harness: `npm pack`, unpacked, runs `vfio-emu bench`
// with nothing else of the repository around it.
describe("bench from the packed package", () => {
  it("npm pack ships the harness, and the unpacked package runs vfio-emu bench --quick --json", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vfio-emu-pack-"));
    try {
      const { stdout } = await promisify(execFile)("npm", ["pack", "--json", "--pack-destination", dir], { cwd: root, maxBuffer: 1 << 24, timeout: 60_000 });
      const [info] = JSON.parse(stdout);
      const files = info.files.map((f: any) => f.path);
      for (const f of ["dist/cli.js", "dist/bench/main.mjs", "dist/bench/lib/harness.mjs", "dist/bench/figures/index.mjs",
        "dist/bench/workers/dma-batch.mjs", "dist/bench/native/bench.c", "build/core.wasm", "build/core-stats.wasm",
        "build/core-bench.wasm"]) expect(files).toContain(f);
      const pkg = join(dir, "node_modules", "vfio-emu");
      await promisify(execFile)("mkdir", ["-p", pkg]);
      await promisify(execFile)("tar", ["xzf", join(dir, info.filename), "-C", pkg, "--strip-components=1"]);
      const r = await promisify(execFile)(process.execPath, [join(pkg, "dist/cli.js"), "bench", "--quick", "--json", "--only", "T1,T7,T17"], {
        cwd: dir, maxBuffer: 1 << 24, timeout: 60_000,
      });
      expect(JSON.parse(r.stdout).figures.map((f: any) => f.id)).toEqual(["T1", "T7", "T17"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
