// The registry of figures that src/bench/main.mjs measures, in order. To add a figure (T9-T17),
// write src/bench/figures/<name>.mjs exporting an array of figure objects and append it below.
//
// A figure object:
//   id, title             "T9", a short label for the table
//   unit                  "GB/s" | "ns" | "x" | "%"
//   kind                  "ratio": ratio bars only, judged in one run;
//                         "abs": has absolute bars, measured in three runs (median of medians)
//   bars                  [{ vs: "W" | "C" | "Ct", min?, max? } | { abs: "ns" | "us" | "ms", max }]
//                         (a ratio is subject / baseline: "min" for throughputs, "max" for times)
//   setup(ctx)?           once, before the runs; ctx.env is the booted core (common.mjs bootEnv),
//                         ctx.native the C child (lib/native.mjs; ctx.native.ok false without cc)
//   calibrate(ctx)?       before each run: size the trials to about ctx.targetMs
//   subject(ctx)          one trial: a finite number in `unit` (may be async)
//   baselines             { W?, C?, Ct?, TS? }: one trial each, same unit; C and Ct are skipped
//                         (reported null with the reason) when the native child is unavailable
//   teardown(ctx)?        after the runs, also when they fail: stop workers, close kernels
//   unjudged(rec, ctx)?   a reason the figure cannot be judged on this machine, or null
//                         (full runs only; holds becomes null, the reason is reported)
//   note(rec, ctx)?       a fact printed with the figure (appended to its reason)
//   bars may be a getter: it is read after the trials (T15's bar depends on what they measured)
import copy from "./copy.mjs";
import iotlb from "./iotlb.mjs";
import pagetable from "./pagetable.mjs";
import control from "./control.mjs";
import threads from "./threads.mjs";
import grace from "./grace.mjs";
import gate from "./gate.mjs";
import stats from "./stats.mjs";
import engine from "./engine.mjs";

export default [...copy, ...iotlb, ...pagetable, ...control, ...threads, ...engine, ...grace, ...gate, ...stats];
