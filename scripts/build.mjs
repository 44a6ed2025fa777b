// npm run build: assembly/ -> build/*.wasm (checked), the wasm embedded for every host,
// src/ -> dist/ (JS + .d.ts), a browser bundle that must hold no node: import, and the browser
// page (web/ -> build/web), a stage of its own so that a change to the page rebuilds only it.
// Every log line goes to stderr, so `npm run -s bench -- --json` keeps stdout for the JSON.
// A build whose outputs are all newer than every input does nothing (`--force` rebuilds).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync, statSync, readdirSync, existsSync, cpSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { browserBundle } from "./bundle-check.mjs";
import { checkWasm } from "./wasm-check.mjs";
import { readAbi, abiDiff, checkAbiAgainstWasm, renderAbi, isBenchExport } from "./core-abi.mjs";
import { buildWeb } from "./web-build.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
// Children's stdout joins our stderr: stdout belongs to whoever runs the build.
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: ["ignore", 2, 2] });
const step = (what) => process.stderr.write(`build: ${what}\n`);

const GENERATED = [join(root, "src/wasm/core_bytes.ts"), join(root, "src/wasm/core_abi.ts")];
const INPUTS = ["assembly", "src", "scripts", "asconfig.json", "tsconfig.json", "package.json", "package-lock.json"];
const OUTPUTS = ["build/core.wasm", "build/core-stats.wasm", "build/core-bench.wasm", "src/wasm/core_bytes.ts", "src/wasm/core_abi.ts", "dist/index.js", "dist/cli.js", "dist/bench/main.mjs",
  "build/browser/vfio-emu.js", "build/browser/worker.js"];

function newest(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return GENERATED.includes(path) ? 0 : st.mtimeMs;
  let m = 0;
  for (const e of readdirSync(path)) m = Math.max(m, newest(join(path, e)));
  return m;
}

// The page (web/ -> build/web) is its own stage: a change to it alone rebuilds only the page.
const WEB_INPUTS = ["web", "src", "package-lock.json"];
const WEB_OUTPUTS = ["build/web/index.html", "build/web/main.js", "build/web/main.css", "build/web/device-worker.js"];

function upToDate(inputs, outputs) {
  if (!outputs.every((o) => existsSync(join(root, o)))) return false;
  const oldestOut = Math.min(...outputs.map((o) => statSync(join(root, o)).mtimeMs));
  const newestIn = Math.max(...inputs.filter((i) => existsSync(join(root, i))).map((i) => newest(join(root, i))));
  return newestIn < oldestOut;
}

const force = process.argv.includes("--force");
const coreFresh = !force && upToDate(INPUTS, OUTPUTS);
if (coreFresh && upToDate(WEB_INPUTS, WEB_OUTPUTS)) {
  step("up to date");
  process.exit(0);
}
if (!coreFresh) await buildCore();
step("web/ -> build/web (the browser page, type-checked with src/)");
run(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "web/tsconfig.json"]);
await buildWeb(root);
step("done");

/** One asc target: its wasm, checked against the data-plane rules and its own declarations. */
function asc(target, file, entries = []) {
  run(process.execPath, ["node_modules/assemblyscript/bin/asc.js", ...entries, "--config", "asconfig.json", "--target", target]);
  const wasm = readFileSync(`${root}/build/${file}.wasm`);
  checkWasm(wasm, `build/${file}.wasm`);
  const abi = readAbi(readFileSync(`${root}/build/${file}.d.ts`, "utf8"), `build/${file}.d.ts`);
  checkAbiAgainstWasm(abi, wasm, `build/${file}.wasm`);
  return { wasm, abi };
}

/** Fails the build unless `b`'s exports are `a`'s plus those `extra` accepts (by name). */
function sameAbi(a, b, what, extra) {
  const { missing, added } = abiDiff(a.abi, b.abi, extra);
  if (missing.length || added.length) {
    process.stderr.write(`build: ${what}:\n  only in the release core: ${missing.join("; ") || "-"}\n  only in the other: ${added.join("; ") || "-"}\n`);
    process.exit(1);
  }
}

async function buildCore() {
  step("assembly/ -> build/core.wasm");
  const release = asc("release", "core");
  const benchInRelease = release.abi.functions.map((f) => f.name).filter(isBenchExport);
  if (benchInRelease.length) {
    process.stderr.write(`build: build/core.wasm exports benchmark entry points (they belong to assembly/bench_index.ts): ${benchInRelease.join(", ")}\n`);
    process.exit(1);
  }
  const wasm = release.wasm;

  step("assembly/ -> build/core-stats.wasm (IOMMU_STATS counters compiled in)");
  sameAbi(release, asc("stats", "core-stats"), "build/core-stats.wasm's exports differ from build/core.wasm's");

  step("assembly/ -> build/core-bench.wasm (the release core plus the benchmark's loops, for src/bench/)");
  sameAbi(release, asc("bench", "core-bench", ["assembly/bench_index.ts"]),
    "build/core-bench.wasm must export build/core.wasm's functions and constants plus bench_* and iotlb_bench", isBenchExport);

  step("src/wasm/core_abi.ts (the boundary's types, from build/core.d.ts)");
  writeFileSync(GENERATED[1], renderAbi(release.abi, root, "build/core.d.ts"));

  step("embedding both cores in src/wasm/core_bytes.ts");
  writeFileSync(GENERATED[0],
    "// Generated by scripts/build.mjs from build/core.wasm and build/core-stats.wasm. Do not edit.\n" +
    `export const CORE_WASM_BASE64 = "${wasm.toString("base64")}";\n` +
    `export const CORE_STATS_WASM_BASE64 = "${readFileSync(`${root}/build/core-stats.wasm`).toString("base64")}";\n`);

  step("src/ -> dist/ (tsc)");
  run(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"]);

  step("src/bench/ -> dist/bench/ (the benchmark harness, plain ESM and the C baselines' source, as they are)");
  rmSync(`${root}/dist/bench`, { recursive: true, force: true });
  cpSync(`${root}/src/bench`, `${root}/dist/bench`, { recursive: true });

  step("browser bundle (must contain no node: import)");
  mkdirSync(`${root}/build/browser`, { recursive: true });
  const hostImports = await browserBundle(
    { "vfio-emu": `${root}/src/index.ts`, worker: `${root}/src/worker.ts`, ioat_worker: `${root}/src/devices/ioat_worker.ts` }, `${root}/build/browser`);
  if (hostImports.length) {
    process.stderr.write(`build: the browser bundle reaches host-only modules:\n  ${hostImports.join("\n  ")}\n`);
    process.exit(1);
  }
}
