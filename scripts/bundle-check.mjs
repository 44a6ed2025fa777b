// The build's browser rule: a browser bundle of the package must reach no host-only module.
// esbuild refuses to resolve node: imports for the browser platform; those refusals (and any
// import left external) are returned as "file -> import" edges. Other build errors throw.
import { build } from "esbuild";

export async function browserBundle(entryPoints, outdir) {
  let result;
  try {
    result = await build({
      entryPoints, bundle: true, format: "esm", platform: "browser",
      target: ["chrome120", "firefox120", "safari17"],
      // Without an outdir nothing is written (esbuild still wants one for several entries).
      outdir: outdir ?? "/nonexistent-bundle-out", write: outdir !== undefined,
      entryNames: "[name]", metafile: true, logLevel: "silent",
    });
  } catch (err) {
    const unresolved = (err.errors ?? []).map((e) => /^Could not resolve "(node:[^"]+)"/.exec(e.text));
    if (unresolved.length === 0 || unresolved.some((m) => !m)) throw err;
    return err.errors.map((e, i) => `${e.location?.file ?? "?"} -> ${unresolved[i][1]}`);
  }
  const hostImports = [];
  for (const [file, input] of Object.entries(result.metafile.inputs)) {
    for (const imp of input.imports) {
      if (imp.path.startsWith("node:") || imp.external) hostImports.push(`${file} -> ${imp.path}`);
    }
  }
  return hostImports;
}
