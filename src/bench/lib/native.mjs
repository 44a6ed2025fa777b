// The native baselines (C, Ct): native/bench.c, compiled with the machine's `cc -O2` at bench
// time into a directory of the user's temp dir (the package's own folder may be read-only when
// it is installed), run as one long-lived child that answers one JSON line per
// command line. When there is no compiler (or it fails), native() resolves to
// { ok: false, reason } and the figures report their C / Ct baselines as null with that reason.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const dir = fileURLToPath(new URL("../native/", import.meta.url));

/** Compiles and starts the child. BENCH_CC overrides the compiler (e.g. to test a machine without one). */
export async function startNative() {
  const cc = process.env.BENCH_CC || "cc";
  const out = join(tmpdir(), `vfio-emu-bench-${userInfo().uid}`);
  mkdirSync(out, { recursive: true });
  // Named by the source's hash: benches of different versions never run each other's binary.
  const hash = createHash("sha256").update(readFileSync(`${dir}bench.c`)).digest("hex").slice(0, 12);
  const bin = `${out}/bench-${hash}`;
  const tmp = `${out}/bench.${process.pid}.tmp`;
  const r = spawnSync(cc, ["-O2", "-o", tmp, `${dir}bench.c`, "-lpthread"], { encoding: "utf8" });
  if (r.error || r.status !== 0) {
    rmSync(tmp, { force: true });
    const why = r.error ? `${r.error.code ?? r.error.message}` : (r.stderr || "").trim().split("\n").slice(0, 3).join(" | ");
    return { ok: false, reason: `C baselines unavailable: \`${cc} -O2\` failed (${why})` };
  }
  renameSync(tmp, bin); // atomic: a concurrent bench never runs a half-written binary
  const child = spawn(bin, [], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  let dead = null;
  lines.on("line", (l) => {
    const w = waiting.shift();
    if (w) w.resolve(l);
  });
  child.on("exit", (code, sig) => {
    dead = `native bench exited (${code ?? sig})`;
    for (const w of waiting.splice(0)) w.reject(new Error(dead));
  });
  child.on("error", (e) => {
    dead = String(e);
    for (const w of waiting.splice(0)) w.reject(e);
  });
  const next = () => new Promise((resolve, reject) => (dead ? reject(new Error(dead)) : waiting.push({ resolve, reject })));
  let ready;
  try {
    ready = JSON.parse(await next());
  } catch (e) {
    return { ok: false, reason: `C baselines unavailable: ${e.message}` };
  }
  if (!ready.ready) return { ok: false, reason: `C baselines unavailable: ${ready.error ?? "setup failed"}` };
  return {
    ok: true,
    /** Sends one command; resolves to its parsed JSON answer (throws on an error answer). */
    async cmd(line) {
      const p = next();
      child.stdin.write(`${line}\n`);
      const ans = JSON.parse(await p);
      if (ans.error) throw new Error(`native: ${line}: ${ans.error}`);
      return ans;
    },
    close() {
      if (!dead) child.stdin.end("quit\n");
    },
  };
}
