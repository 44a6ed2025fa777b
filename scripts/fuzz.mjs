// npm run fuzz: bundles the fuzzer (test/fuzz/) with esbuild against the built package in dist/
// (so the ioat engine's worker is the compiled one) and runs it with the command's arguments.
import { build } from "esbuild";
import { fileURLToPath, pathToFileURL } from "node:url";
import { join } from "node:path";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = join(root, "build/fuzz/main.mjs");
await build({
  entryPoints: [join(root, "test/fuzz/main.ts")],
  outfile: out,
  bundle: true,
  platform: "node",
  format: "esm",
  logLevel: "warning",
  plugins: [{
    name: "src-to-dist",
    setup(b) {
      // The fuzzer imports ../../src/*.js; the package's compiled modules stand in for them.
      b.onResolve({ filter: /\/src\/[a-z_]+\.js$/ }, (a) => ({
        path: join(root, "dist", a.path.replace(/^.*\/src\//, "")),
        external: true,
      }));
    },
  }],
});
const { main } = await import(pathToFileURL(out).href);
process.exitCode = await main();
