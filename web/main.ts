// The page: draws the lab (lab.ts) and what the kernel holds (src/inspect.ts), a few times a
// second: the steps, each open file's gate, the IOVA space, the IO page table, the IOTLB, the
// DMA throughput chart (uPlot) and the trace. window.vfioEmu is the handle the browser test
// (and a curious person's console) drives it by.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { Lab, rcText, STREAM_MS, type SequenceName, type StepOutcome } from "./lab.js";
import { inspectKernel, type KernelView, type PageTableView } from "../src/inspect.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
const hex = (v: number | bigint) => `0x${v.toString(16)}`;
const size = (n: number | bigint) => {
  const v = Number(n);
  for (const [u, s] of [[2 ** 30, "GiB"], [2 ** 20, "MiB"], [2 ** 10, "KiB"]] as const) if (v >= u && v % u === 0) return `${v / u} ${s}`;
  return `${v} B`;
};
/** Errnos and "all bytes match" stand out in step outcomes. */
const decorate = (line: string) => esc(line)
  .replace(/-E[A-Z0-9]+\b/g, (m) => `<span class="errno">${m}</span>`)
  .replace(/\b(E[A-Z]{3,})\b(?= \(errno)/g, (m) => `<span class="errno">${m}</span>`)
  .replace(/all \d+ bytes match/g, (m) => `<span class="match">✓ ${m}</span>`);

const lab = new Lab();
const outcomes: (StepOutcome | null)[] = [];
let busy = false;
let failed: string | null = null;

// ---- the chart ---------------------------------------------------------------------------

const COLORS = ["#5eb1ff", "#4fd18b"];
let chart: uPlot | null = null;
let samples: number[][] = [[], [], [], []];
let t0 = performance.now();
let last: { t: number; moved: number[] } | null = null;
/** Moments worth a line on the chart: the streams start, the unmap cuts them. */
let marks: { t: number; label: string; color: string }[] = [];
const MARKS: Record<string, [string, string]> = { dma: ["DMA", "#4fd18b"], unmap: ["UNMAP", "#ff6b6b"] };

/** A uPlot draw hook: a dashed line and a label at each mark. */
function drawMarks(u: uPlot): void {
  const ctx = u.ctx;
  const dpr = devicePixelRatio;
  for (const m of marks) {
    const x = u.valToPos(m.t, "x", true);
    if (!(x >= u.bbox.left && x <= u.bbox.left + u.bbox.width)) continue;
    ctx.save();
    ctx.strokeStyle = m.color;
    ctx.fillStyle = m.color;
    ctx.lineWidth = dpr;
    ctx.setLineDash([4 * dpr, 4 * dpr]);
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
    ctx.font = `600 ${11 * dpr}px system-ui, sans-serif`;
    ctx.fillText(m.label, x + 4 * dpr, u.bbox.top + 12 * dpr);
    ctx.restore();
  }
}

function makeChart(): void {
  const el = $("chart");
  el.innerHTML = "";
  samples = [[], [], [], []];
  marks = [];
  t0 = performance.now();
  last = null;
  chart = new uPlot({
    width: Math.max(320, el.clientWidth), height: 210,
    scales: { x: { time: false }, y: { range: (_u, _min, max) => [0, Math.max(100, max * 1.15)] } },
    axes: [
      { stroke: "#8390ab", grid: { stroke: "#232c42" }, ticks: { stroke: "#232c42" }, values: (_u, v) => v.map((x) => `${x.toFixed(1)} s`) },
      { stroke: "#8390ab", grid: { stroke: "#232c42" }, ticks: { stroke: "#232c42" }, size: 84, values: (_u, v) => v.map((x) => `${x >= 1000 ? (x / 1000).toFixed(1) + " GB" : x.toFixed(0) + " MB"}/s`) },
    ],
    series: [
      { label: "time", value: (_u, v) => (v == null ? "–" : `${v.toFixed(1)} s`) },
      ...COLORS.map((c, n) => ({
        label: `engine ${n}`, stroke: c, width: 2, fill: c + "22", points: { show: false },
        value: (_u: uPlot, v: number | null) => (v == null ? "–" : `${v.toFixed(0)} MB/s`),
      })),
      { label: "total", stroke: "#ffb74d", width: 1.5, dash: [5, 4], points: { show: false }, value: (_u: uPlot, v: number | null) => (v == null ? "–" : `${v.toFixed(0)} MB/s`) },
    ],
    legend: { live: true },
    hooks: { draw: [drawMarks] },
  }, samples as uPlot.AlignedData, el);
}

function sampleChart(): void {
  if (!chart || !lab.booted) return;
  const t = performance.now();
  const moved = lab.movedBytes();
  if (last) {
    const dt = (t - last.t) / 1000;
    const rates = moved.map((m, i) => (m - last!.moved[i]) / dt / 1e6);
    samples[0].push((t - t0) / 1000);
    rates.forEach((r, i) => samples[1 + i].push(r));
    samples[3].push(rates.reduce((a, b) => a + b, 0));
    if (samples[0].length > 240) for (const s of samples) s.shift();
    chart.setData(samples as uPlot.AlignedData);
    // Unless the pointer is over the chart, the legend reads the latest sample.
    if ((chart.cursor.left ?? -1) < 0) chart.setLegend({ idx: samples[0].length - 1 });
  }
  last = { t, moved };
}

// ---- drawing ---------------------------------------------------------------------------------

function drawSteps(): void {
  const ol = $("steps");
  ol.innerHTML = lab.steps.map((s, i) => {
    const cls = i < lab.done ? (outcomes[i]?.facts.error ? "done" : "done") : i === lab.done ? (failed ? "failed" : "next") : "";
    const out = outcomes[i]?.lines.map((l) => `<li>${decorate(l)}</li>`).join("") ?? "";
    return `<li class="${cls}" data-step="${s.id}"><div class="title">${esc(s.title)}</div><div class="what">${esc(s.what)}</div>${out ? `<ul class="out">${out}</ul>` : ""}</li>`;
  }).join("");
  const stepBtn = $<HTMLButtonElement>("step");
  stepBtn.disabled = busy || lab.finished || !!failed;
  $<HTMLButtonElement>("run").disabled = busy || lab.finished || !!failed;
  $<HTMLButtonElement>("reset").disabled = busy;
  for (const t of document.querySelectorAll<HTMLButtonElement>(".tab")) {
    t.classList.toggle("active", t.dataset.seq === lab.sequence);
    t.disabled = busy;
  }
}

function gateWord(w: number, gated: boolean): string {
  const bytes = [(w >>> 24) & 0xff, (w >>> 16) & 0xff, (w >>> 8) & 0xff, w & 0xff];
  return `<span class="gate" title="generation ${w >>> 8}, access_granted ${w & 0xff}">${bytes.map((b, i) =>
    `<span class="${i === 3 && gated ? (b ? "g1" : "g0") : ""}">${b.toString(16).padStart(2, "0")}</span>`).join("")}</span>`;
}

function drawFiles(v: KernelView): void {
  if (!v.files.length) { $("files").innerHTML = `<div class="empty">no open files yet — press Step</div>`; return; }
  const gated = (k: string) => k === "vfio-device";
  $("files").innerHTML = `<table><tr><th>fd</th><th>path</th><th>kind</th><th>gate word</th><th></th><th>state</th></tr>${v.files.map((f) => `
    <tr data-fd="${f.fd}" data-kind="${f.kind}" data-granted="${f.granted}"><td class="mono">${f.fd}</td><td class="mono">${esc(f.path)}</td><td>${f.kind}</td>
    <td>${gateWord(f.gateWord, gated(f.kind))}</td>
    <td>${gated(f.kind) ? `<span class="pill ${f.granted ? "granted" : "blocked"}">${f.granted ? "granted" : "blocked"}</span>` : `<span class="pill plain">${f.granted ? "granted" : "not gated"}</span>`}</td>
    <td>${esc(f.state)}</td></tr>`).join("")}</table>`;
}

function drawIotlb(v: KernelView): void {
  const s = v.stats;
  const hits = (s.iotlbHits ?? 0) + (s.iotlbLastHits ?? 0);
  const lookups = hits + (s.iotlbMisses ?? 0);
  const pct = lookups ? (100 * hits) / lookups : 0;
  const faults = lab.booted ? lab.device.faults() : [];
  $("iotlb").innerHTML = `<div class="counters">
      <div class="counter"><div class="v" id="iotlb-hits">${(s.iotlbHits ?? 0).toLocaleString("en")}</div><div class="k">hits</div></div>
      <div class="counter"><div class="v">${(s.iotlbLastHits ?? 0).toLocaleString("en")}</div><div class="k">last-translation hits</div></div>
      <div class="counter"><div class="v" id="iotlb-misses">${(s.iotlbMisses ?? 0).toLocaleString("en")}</div><div class="k">misses</div></div>
      <div class="counter"><div class="v">${(s.iotlbWalks ?? 0).toLocaleString("en")}</div><div class="k">page-table walks</div></div>
    </div>
    <div class="ratio"><div style="width:${pct.toFixed(1)}%"></div></div>
    <div class="ratio-label" id="iotlb-ratio" data-lookups="${lookups}">${lookups ? `${pct.toFixed(2)}% of ${lookups.toLocaleString("en")} translations hit` : "no translation yet"}
      · ${s.pinnedPages ?? 0} pages pinned · ${s.framesFree ?? 0} of ${s.framesTotal ?? 0} frames free</div>
    <div class="faults" id="faults">${s.dmaFaults ? `<div class="f">⚠ ${s.dmaFaults} DMA fault${s.dmaFaults === 1 ? "" : "s"} in the IOMMU's ring</div>` : ""}${faults.slice(-3).map((f) =>
      `<div class="f">fault: IOVA ${hex(f.iova)} ${f.write ? "write" : "read"} — ${f.reason}</div>`).join("")}</div>`;
}

function drawSpace(v: KernelView): void {
  type Seg = { start: bigint; last: bigint; write: boolean; label: string };
  let segs: Seg[] = [];
  let what = "IOAS areas";
  if (v.ioas.length) {
    const io = v.ioas[0];
    what = `IOAS ${io.id} areas (${io.ctxFd}) · HWPT ${io.hwpts.join(", ") || "none"}`;
    segs = io.areas.map((a) => ({ start: a.start, last: a.last, write: a.write, label: a.pinnedBy }));
  } else if (v.containers.length) {
    const c = v.containers[0];
    what = `type1 container mappings (${c.fd}) · ${c.type}`;
    segs = c.dmas.map((d) => ({ start: d.iova, last: d.iova + d.size - 1n, write: d.write, label: `vaddr ${hex(d.vaddr)}` }));
  }
  $("space-what").textContent = what;
  if (!segs.length) { $("space").innerHTML = `<div class="empty">nothing mapped</div>`; return; }
  // A log-ish scale: each area gets a fair share of the bar, gaps drawn in proportion to their order.
  const lo = 0, hi = 2 ** 31;
  const pos = (x: bigint) => (Math.log2(1 + Number(x) / 4096) / Math.log2(1 + hi / 4096)) * 100;
  $("space").innerHTML = `
    <div class="iova-bar">${segs.map((s) => `<div class="seg ${s.write ? "rw" : "ro"}" style="left:${pos(s.start)}%;width:${Math.max(1.2, pos(s.last + 1n) - pos(s.start))}%" title="${hex(s.start)}–${hex(s.last)}"></div>`).join("")}</div>
    <div class="iova-scale"><span>${hex(lo)}</span><span>64 KiB</span><span>16 MiB</span><span>1 GiB</span><span>${hex(hi)} (log scale)</span></div>
    <table><tr><th>IOVA</th><th>last</th><th>length</th><th>prot</th><th>backed by</th></tr>${segs.map((s) => `
      <tr class="area"><td class="mono">${hex(s.start)}</td><td class="mono">${hex(s.last)}</td><td>${size(s.last - s.start + 1n)}</td>
      <td class="perm"><span class="on">R</span>${s.write ? `<span class="on">W</span>` : `<span class="off">-</span>`}</td><td>${esc(s.label)}</td></tr>`).join("")}</table>
    <div class="legend"><span><i style="background:#3d8bdf"></i>read-write</span><span><i style="background:#9b74e6"></i>read-only</span></div>`;
}

function drawPageTable(v: KernelView): void {
  const tables: PageTableView[] = [...v.ioas.flatMap((i) => i.domains), ...v.containers.flatMap((c) => c.domains)];
  if (!tables.length) { $("pagetable").innerHTML = `<div class="empty">no IOMMU domain yet (the device sits in the blocking domain)</div>`; return; }
  const t = tables[0];
  const lv = t.levels.map((l) => `<div class="level"><b>${l.entries}</b>${l.name}<span class="n"> · ${l.tables} table${l.tables === 1 ? "" : "s"}</span></div>`).join(`<span class="arrow">→</span>`);
  const runs = t.runs.length ? `<table class="runs"><tr><th>IOVA</th><th>→ phys</th><th>leaves</th><th>bits</th></tr>${t.runs.slice(0, 12).map((r) => `
      <tr class="run"><td class="mono">${hex(r.iova)}</td><td class="mono">${hex(r.phys)}</td><td class="size">${r.count} × ${size(r.size)}</td>
      <td class="perm"><span class="${r.read ? "on" : "off"}">R</span><span class="${r.write ? "on" : "off"}">W</span> <span class="${r.accessed ? "on" : "off"}">A</span><span class="${r.dirty ? "d" : "off"}">D</span></td></tr>`).join("")}</table>`
    : `<div class="empty">no leaf: every IOVA faults</div>`;
  $("pagetable").innerHTML = `<div class="mono" style="color:var(--dim);margin-bottom:6px">domain ${hex(t.handle)} · ${t.format} 4-level · ${t.tables} table frames · ${t.mappedPages} pages mapped</div>
    <div class="levels">${lv}</div>${runs}`;
}

let traceSeen = -1;
function drawTrace(): void {
  if (traceSeen === lab.traceSeq) return;
  traceSeen = lab.traceSeq;
  const el = $("trace");
  const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
  el.innerHTML = lab.trace.map((l) => {
    const sp = l.indexOf(" ");
    const name = sp < 0 ? l : l.slice(0, sp);
    const rest = sp < 0 ? "" : esc(l.slice(sp)).replace(/ret=(-[0-9a-fx]+|-E[A-Z]+)/g, `ret=<span class="neg">$1</span>`);
    return `<div class="ln"><b>${esc(name)}</b>${rest}</div>`;
  }).join("");
  if (atEnd) el.scrollTop = el.scrollHeight;
}

function draw(): void {
  drawSteps();
  if (!lab.booted) return;
  const v = inspectKernel(lab.kernel, [lab.proc]);
  drawFiles(v);
  drawIotlb(v);
  drawSpace(v);
  drawPageTable(v);
  drawTrace();
  const st = $("status");
  if (failed) { st.textContent = `error: ${failed}`; st.className = "status bad"; }
  else {
    st.textContent = `kernel up · ${crossOriginIsolated ? "cross-origin isolated" : "NOT isolated"} · ${lab.engines.length} device engines (worker slots ${lab.engines.map((e) => e.slot).join(", ")}) · ${lab.done}/${lab.steps.length} steps`;
    st.className = "status ok";
  }
}

// ---- actions -----------------------------------------------------------------------------------

async function act(fn: () => Promise<void>): Promise<void> {
  if (busy) return;
  busy = true;
  drawSteps();
  try {
    await fn();
  } catch (e) {
    failed = e instanceof Error ? e.message : String(e);
    console.error(e);
  } finally {
    busy = false;
    draw();
  }
}

async function boot(seq: SequenceName): Promise<void> {
  await lab.shutdown();
  outcomes.length = 0;
  failed = null;
  await lab.boot(seq);
  makeChart();
}

const api = {
  lab,
  get facts() { return lab.facts; },
  get done() { return lab.done; },
  get total() { return lab.steps.length; },
  get failed() { return failed; },
  ready: Promise.resolve() as Promise<void>,
  step: () => act(async () => { outcomes[lab.done] = await lab.step(); }),
  runAll: () => act(async () => {
    while (!lab.finished) {
      const i = lab.done;
      const s = lab.steps[i];
      lab.streamMs = s.id === "dma" ? STREAM_MS : 0;
      outcomes[i] = await lab.step();
      draw();
    }
    lab.streamMs = 0;
  }),
  reset: () => act(() => boot(lab.sequence)),
  select: (seq: SequenceName) => act(() => boot(seq)),
  /** Device-side: what the process's buffer holds now (for the test's own comparison). */
  readBuffer: (offset: number, length: number) => {
    const out = new Uint8Array(length);
    const rc = lab.proc.readMemory(lab.buf + offset, out);
    return rc < 0 ? rcText(rc) : Array.from(out);
  },
};
(window as unknown as { vfioEmu: typeof api }).vfioEmu = api;

$("step").onclick = () => void api.step();
$("run").onclick = () => void api.runAll();
$("reset").onclick = () => void api.reset();
for (const t of document.querySelectorAll<HTMLButtonElement>(".tab")) t.onclick = () => void api.select(t.dataset.seq as SequenceName);
lab.onStep = (id) => {
  const m = MARKS[id];
  if (m) marks.push({ t: (performance.now() - t0) / 1000, label: m[0], color: m[1] });
};
lab.onError = (e) => { failed = e.message; console.error(e); draw(); };

api.ready = act(() => boot(new URLSearchParams(location.search).get("seq") === "legacy" ? "legacy" : "cdev"));
setInterval(() => { sampleChart(); draw(); }, 250);
window.addEventListener("resize", () => { if (chart) chart.setSize({ width: Math.max(320, $("chart").clientWidth), height: 210 }); });
