// Runs registered figures (src/bench/figures/index.mjs): interleaved trials (subject, then each
// baseline, A B A B ...), after a warm-up; summaries, ratios, bars and the table.
//
// Method (PERF.md "How the numbers come out"):
// - every trial runs the subject and then each baseline back to back, so slow phases of a noisy
//   machine hit all of them; at least 7 trials in a full run, after a warm-up;
// - a ratio is the median of the per-trial ratios subject / baseline (paired trials), and ratio
//   bars are judged on it, in this one run;
// - figures with absolute bars (kind "abs") are measured in three independent runs (each with
//   its own calibration, warm-up and trials); the subject's median is the median of the three
//   run medians, min / max / n span all trials;
// - --quick: fewer trials, shorter trials, one run, nothing judged (holds: null).
// - optional figure hooks: teardown(ctx) after the runs (workers, kernels; also on failure),
//   unjudged(rec, ctx) -> a reason the figure cannot be judged on this machine (holds null),
//   note(rec, ctx) -> a fact to print with the figure (appended to its reason).

import { Progress } from "./progress.mjs";

export const NATIVE = new Set(["C", "Ct"]);

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

export function summary(xs, med = median(xs)) {
  return { median: med, min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

/**
 * Calibration: how many units (operations, repetitions, cycles) fill a trial of ctx.targetMs,
 * given that `per` of them took `ns`; at least `min`.
 */
export function sizeFor(ctx, ns, per = 1, min = 1) {
  return Math.max(min, Math.round(((ctx.targetMs * 1e6) / ns) * per));
}

/** ns elapsed while fn() runs (synchronous wasm / JS work). */
export function timeNs(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0);
}

/** Independent runs of a figure: three for absolute bars in a full run, else one. */
const runsOf = (fig, ctx) => (fig.kind === "abs" && !ctx.quick ? 3 : 1);

/** The trials a figure takes (warm-ups not counted): what the progress bar counts. */
export function plannedTrials(fig, ctx) {
  return runsOf(fig, ctx) * ctx.trials;
}

/**
 * Measures one figure. ctx: { native, quick, trials, warmup, targetMs, ... } plus whatever the
 * figure's setup() stores. Returns the figure's JSON record.
 */
export async function runFigure(fig, ctx) {
  const t0 = Date.now();
  ctx.progress ??= new Progress(process.stderr, plannedTrials(fig, ctx), { tty: false });
  const end = ctx.progress.done + plannedTrials(fig, ctx);
  ctx.progress.figure(fig.id, fig.title);
  try {
    return await measure(fig, ctx, t0);
  } finally {
    ctx.progress.advanceTo(end);
    if (fig.teardown) await fig.teardown(ctx);
  }
}

async function measure(fig, ctx, t0) {
  if (fig.setup) await fig.setup(ctx);
  const fns = { subject: fig.subject };
  const nulls = {};
  for (const [k, fn] of Object.entries(fig.baselines ?? {})) {
    if (NATIVE.has(k) && !ctx.native.ok) nulls[k] = ctx.native.reason;
    else fns[k] = fn;
  }
  const names = Object.keys(fns);
  const runs = runsOf(fig, ctx);
  const all = Object.fromEntries(names.map((n) => [n, []]));
  const runMedians = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < runs; r++) {
    if (fig.calibrate) await fig.calibrate(ctx);
    for (let w = 0; w < ctx.warmup; w++) for (const n of names) await fns[n](ctx);
    const local = Object.fromEntries(names.map((n) => [n, []]));
    for (let t = 0; t < ctx.trials; t++) {
      // Rotate who goes first, so no one always runs right after the same neighbour (a JS
      // baseline's garbage, a native run's cache footprint).
      const order = names.map((_, i) => names[(i + t) % names.length]);
      for (const n of order) {
        const v = await fns[n](ctx);
        if (!Number.isFinite(v)) throw new Error(`${fig.id} ${n}: trial gave ${v}`);
        local[n].push(v);
        all[n].push(v);
      }
      ctx.progress.trial(`${fig.id} run ${r + 1}/${runs} trial ${t + 1}/${ctx.trials}`, ctx.quick ? null :
        names.map((n) => `${n === "subject" ? fig.id : n} ${fmt(local[n].at(-1))}`).join(", ") + ` ${fig.unit}`);
    }
    for (const n of names) runMedians[n].push(median(local[n]));
  }
  const sum = (n) => summary(all[n], runs > 1 ? median(runMedians[n]) : median(all[n]));
  const baselines = {};
  const ratios = {};
  for (const k of [...Object.keys(fig.baselines ?? {})]) {
    if (k in nulls) { baselines[k] = null; if (k !== "TS") ratios[k] = null; continue; }
    baselines[k] = sum(k);
    if (k === "TS") continue; // TS is shown, not judged (PERF.md ratios: W, C, Ct)
    const paired = all.subject.map((s, i) => s / all[k][i]);
    ratios[k] = median(paired);
  }
  const rec = { id: fig.id, unit: fig.unit, subject: sum("subject"), baselines, ratios, bars: fig.bars, holds: null };
  judge(rec, ctx, Object.values(nulls)[0]);
  const why = !ctx.quick && fig.unjudged ? fig.unjudged(rec, ctx) : null;
  if (why) {
    rec.holds = null;
    rec.reason = rec.reason ? `${why}; ${rec.reason}` : why;
  }
  const note = fig.note ? fig.note(rec, ctx) : null;
  if (note) rec.reason = rec.reason ? `${rec.reason}; ${note}` : note;
  // Kept for the table and the summary, stripped from the JSON (src/bench/main.mjs).
  rec.title = fig.title;
  rec.goals = fig.goals ?? [];
  rec.goalMet = goalsMet(rec, rec.goals, ctx.quick);
  rec.seconds = (Date.now() - t0) / 1000;
  return rec;
}

/** Sets holds (and reason) from the bars. */
export function judge(rec, ctx, nullReason) {
  if (ctx.quick) {
    rec.holds = null;
    rec.reason = "quick run: indicative only, bars are not judged";
    if (nullReason) rec.reason += `; ${nullReason}`;
    return;
  }
  const { failed, unjudged } = check(rec, rec.bars, nullReason);
  if (failed.length) {
    rec.holds = false;
    rec.reason = failed.concat(unjudged).join("; ");
  } else if (unjudged.length) {
    rec.holds = null;
    rec.reason = unjudged.join("; ");
  } else {
    rec.holds = true;
  }
  // Say why C / Ct are null even where no bar needed them.
  if (nullReason && !(rec.reason ?? "").includes(nullReason)) rec.reason = rec.reason ? `${rec.reason}; ${nullReason}` : nullReason;
}

/**
 * Which of `limits` (bars or goals: [{ vs, min?, max? } | { abs, min?, max? }]) the record
 * misses: { failed: [why...], unjudged: [why...] } (a ratio whose baseline is missing).
 */
export function check(rec, limits, nullReason) {
  const failed = [];
  const unjudged = [];
  for (const b of limits) {
    if ("abs" in b) {
      const v = rec.subject.median;
      if (b.max != null && !(v <= b.max)) failed.push(`median ${fmt(v)} ${b.abs} > ${b.max} ${b.abs}`);
      if (b.min != null && !(v >= b.min)) failed.push(`median ${fmt(v)} ${b.abs} < ${b.min} ${b.abs}`);
      continue;
    }
    const r = rec.ratios[b.vs];
    if (r == null) { unjudged.push(`vs ${b.vs}: ${nullReason ?? "baseline unavailable"}`); continue; }
    if (b.min != null && !(r >= b.min)) failed.push(`${fmtRatio(r)} of ${b.vs} < ${b.min}`);
    if (b.max != null && !(r <= b.max)) failed.push(`${fmtRatio(r)}x ${b.vs} > ${b.max}x`);
  }
  return { failed, unjudged };
}

/**
 * Whether a record meets its figure's goals (PERF.md "goal (aim)"): true, false, or null when
 * it cannot say (a quick run, no goal, a baseline missing, or the figure itself not judged).
 */
export function goalsMet(rec, goals, quick) {
  if (quick || !goals || goals.length === 0 || rec.holds === null) return null;
  const { failed, unjudged } = check(rec, goals);
  return failed.length ? false : unjudged.length ? null : true;
}

export function fmt(v) {
  if (v == null || !Number.isFinite(v)) return "-";
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
}
const fmtRatio = (r) => (r == null ? "-" : r.toFixed(3));

export function barText(b) {
  if ("abs" in b) return b.max != null ? `<= ${b.max} ${b.abs}` : `>= ${b.min} ${b.abs}`;
  return b.min != null ? `>= ${Math.round(b.min * 100)}% ${b.vs}` : `<= ${b.max}x ${b.vs}`;
}

/** The table for people. */
export function table(doc) {
  const rows = [["id", "figure", "unit", "subject median [min-max] n", "W", "C", "Ct", "TS", "ratios", "bars", "holds"]];
  for (const f of doc.figures) {
    const b = (k) => (f.baselines[k] === undefined ? "" : f.baselines[k] === null ? "null" : fmt(f.baselines[k].median));
    const ratios = Object.entries(f.ratios).map(([k, r]) => {
      if (r == null) return `${k} null`;
      return f.unit === "ns" ? `${r.toFixed(2)}x ${k}` : `${(r * 100).toFixed(1)}% ${k}`;
    }).join(", ");
    rows.push([
      f.id, f.title ?? "", f.unit,
      `${fmt(f.subject.median)} [${fmt(f.subject.min)}-${fmt(f.subject.max)}] ${f.subject.n}`,
      b("W"), b("C"), b("Ct"), b("TS"), ratios, f.bars.map(barText).join(", "),
      f.holds === null ? "null" : f.holds ? "yes" : "NO",
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const out = [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)];
  for (const f of doc.figures) if (f.reason) out.push(`${f.id}: ${f.reason}`);
  const m = doc.machine;
  out.unshift(`machine: node ${m.node}, ${m.cpus} cpus, C memcpy ${fmt(m.cMemcpyGBs)} GB/s (64 MiB), C 2-thread scaling ${m.cTwoThreadScaling == null ? "null" : m.cTwoThreadScaling.toFixed(2) + "x"}`, "");
  return out.join("\n");
}

/** One figure's value as its bars read it: the median for absolute bars, the ratio for the others. */
function measured(f) {
  const keys = [];
  for (const b of [...f.bars, ...(f.goals ?? [])]) {
    const k = "abs" in b ? "abs" : b.vs;
    if (!keys.includes(k)) keys.push(k);
  }
  return keys.map((k) => {
    if (k === "abs") return `${fmt(f.subject.median)} ${f.unit}`;
    const r = f.ratios[k];
    if (r == null) return `${k} null`;
    return f.unit === "ns" ? `${r.toFixed(2)}x ${k}` : `${(r * 100).toFixed(1)}% ${k}`;
  }).join(", ");
}

const yesNo = (v) => (v === null || v === undefined ? "-" : v ? "yes" : "NO");

/**
 * The summary against PERF.md: each figure's measured value beside its bar (must hold) and its
 * goal (the aim), then the count. A quick run judges nothing and says so.
 */
export function verdicts(doc, quick) {
  const rows = [["id", "measured", "bar (must)", "holds", "goal (aim)", "met"]];
  for (const f of doc.figures) {
    rows.push([f.id, measured(f), f.bars.map(barText).join(", "), f.holds === null ? "null" : yesNo(f.holds),
      (f.goals ?? []).map(barText).join(", ") || "-", yesNo(f.goalMet)]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const held = doc.figures.filter((f) => f.holds === true).map((f) => f.id);
  const failed = doc.figures.filter((f) => f.holds === false).map((f) => f.id);
  const open = doc.figures.filter((f) => f.holds === null).map((f) => f.id);
  const withGoal = doc.figures.filter((f) => f.goalMet !== null);
  const met = withGoal.filter((f) => f.goalMet).length;
  const tally = quick
    ? `quick run: nothing judged (${doc.figures.length} figures measured, indicative only)`
    : `bars: ${held.length} hold, ${failed.length} fail${failed.length ? ` (${failed.join(", ")})` : ""}, ` +
      `${open.length} not judged${open.length ? ` (${open.join(", ")})` : ""}; goals: ${met} of ${withGoal.length} judged met`;
  return ["summary against PERF.md's bars (must hold) and goals (aims):", line(rows[0]),
    widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line), tally].join("\n");
}
