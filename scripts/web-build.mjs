// web/ -> build/web: the browser page (index.html, main.js + main.css, device-worker.js),
// bundled by esbuild from the TypeScript sources (the package's src/ included).
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

export async function buildWeb(root) {
  const out = join(root, "build/web");
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: { main: join(root, "web/main.ts"), "device-worker": join(root, "web/device-worker.ts") },
    bundle: true, format: "esm", platform: "browser", target: ["chrome120", "firefox120", "safari17"],
    outdir: out, entryNames: "[name]", minify: true, legalComments: "linked", logLevel: "warning",
  });
  copyFileSync(join(root, "web/index.html"), join(out, "index.html"));
}
