#!/usr/bin/env node
// The vfio-emu command line. Arguments are parsed with node:util's parseArgs (strict: an
// unknown option or a stray positional is an error), every verb answers --help, and a bad
// argument prints a clear error with the verb's usage to stderr and exits 2.

import { parseArgs, type ParseArgsConfig } from "node:util";
import { runDemo, runLegacyDemo } from "./demo.js";
import { startWebServer } from "./web.js";

interface Verb {
  usage: string;
  options: NonNullable<ParseArgsConfig["options"]>;
  run(values: Record<string, string | boolean | undefined>): Promise<number>;
}

const VERBS: Record<string, Verb> = {
  demo: {
    usage: `usage: vfio-emu demo [--legacy] [--trace GLOB]

Boots an emulated kernel with one memcpy DMA device, drives it as a userspace driver would
(sysfs discovery, the blocked cdev, BIND, ATTACH, MAP, device DMA, UNMAP and the fault that
follows) and prints each step with its trace. With --legacy: the group sequence instead
(group, type1 container, device fd, MAP_DMA, device DMA, UNMAP_DMA, the fault). Exit status 0
when nothing is left behind.

options:
  --legacy       the legacy group/container sequence
  --trace GLOB   trace events whose names match GLOB (default '*'; e.g. 'sys_ioctl,iommufd_*')
  -h, --help     this text
`,
    options: { legacy: { type: "boolean" }, trace: { type: "string", default: "*" } },
    run: (v) => (v.legacy ? runLegacyDemo : runDemo)((line) => process.stdout.write(line + "\n"), v.trace as string),
  },
  bench: {
    usage: `usage: vfio-emu bench [--json] [--quick] [--only IDS]

Measures vfio-emu's performance figures (T1...), each against baselines run in the same
process: W (the same wasm with translation off), C and Ct (native memcpy and a C reference
translator, built with the machine's cc; null, with the reason, when there is none) and TS (a
naive TypeScript translator). Trials are interleaved, medians of at least 7 after a warm-up.
Prints a table, then a summary of each figure against its bar (must hold) and its goal (aim).
Progress goes to stderr: a bar on a terminal, plain lines otherwise.

options:
  --json         stdout holds exactly one JSON document ({ machine, figures: [...] }); the
                 table and the summary go to stderr
  --quick        a reduced run (3 short trials, smaller working sets) in a few seconds; it
                 judges no bar (holds null): for smoke checks on noisy machines
  --only IDS     only these figures: a comma-separated list of ids and ranges (T1,T5-T8)
  -h, --help     this text

exit status:
  0  every judged bar holds (a figure that cannot be judged on this machine does not fail)
     -- always 0 with --quick
  1  at least one bar fails (the table and the JSON are still complete)
  2  a bad argument
  3  the bench could not run (the error on stderr)
`,
    options: { json: { type: "boolean" }, quick: { type: "boolean" }, only: { type: "string" } },
    async run(v) {
      // The harness is plain ESM (dist/bench/, copied from src/bench/ by the build), loaded only here.
      const failed = (err: unknown): number => {
        process.stderr.write(`vfio-emu: bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
        return 3;
      };
      let harness: BenchHarness;
      try {
        harness = (await import(new URL("./bench/main.mjs", import.meta.url).href)) as BenchHarness;
      } catch (err) {
        return failed(err);
      }
      let only: Set<string> | null = null;
      if (v.only !== undefined) {
        try {
          only = harness.selectFigures(v.only as string);
        } catch (err) {
          throw new UsageError(`bench: ${(err as Error).message}`);
        }
      }
      try {
        const [status] = await harness.runBench({ json: v.json === true, quick: v.quick === true, only });
        return status;
      } catch (err) {
        return failed(err);
      }
    },
  },
  web: {
    usage: `usage: vfio-emu web [--port N]

Serves the browser page on http://127.0.0.1:N/ (cross-origin isolated: COOP same-origin, COEP
require-corp, so the page may share the kernel's memory with its device workers). The page
boots a kernel with device workers and steps through the cdev and the legacy group sequence,
showing each file's gate, the IOAS areas and the IO page table, the IOTLB, DMA throughput and
the trace. Also served: /examples/browser.html (embedding the package in a page). Runs until
interrupted (Ctrl-C).

options:
  --port N       TCP port on 127.0.0.1 (default 8080; 0 picks a free one)
  -h, --help     this text
`,
    options: { port: { type: "string", default: "8080" } },
    run: async (v) => {
      const text = v.port as string;
      const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
      if (!(port >= 0 && port <= 65535)) return bad(`web: --port must be a TCP port 0..65535 (got '${text}')`, VERBS.web.usage);
      let server;
      try {
        server = await startWebServer({ port });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
        process.stderr.write(`vfio-emu web: 127.0.0.1:${port} is already in use (another port: --port N, any free one: --port 0)\n`);
        return 1;
      }
      process.stdout.write(`vfio-emu web: serving ${server.url} (Ctrl-C to stop)\n`);
      await new Promise<void>((resolve) => {
        const stop = () => { process.off("SIGINT", stop); process.off("SIGTERM", stop); resolve(); };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
      await server.close();
      return 0;
    },
  },
};

interface BenchHarness {
  selectFigures(only: string): Set<string>;
  runBench(opts: { json: boolean; quick: boolean; only: Set<string> | null }): Promise<[number, unknown]>;
}

/** A bad argument found after parsing (exit status 2, with the verb's usage). */
class UsageError extends Error {}

const USAGE = `usage: vfio-emu <command> [options]

commands:
  demo      run the cdev (or, --legacy, the group) sequence against an emulated kernel, traced
  bench     measure the performance figures against their baselines, bars and goals
  web       serve the browser page (a kernel in the page, both sequences, live views)
  help      this text (also: vfio-emu <command> --help)

environment:
  VFIO_EMU_TRACE=GLOB   trace events whose names match GLOB (e.g. 'sys_*,iommufd_*') to stderr
`;

/** A usage error: the message, the usage to read, exit status 2. */
function bad(message: string, usage: string): number {
  process.stderr.write(`vfio-emu: ${message}\n\n${usage}`);
  return 2;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) return bad("no command given", USAGE);
  if (cmd === "help" || cmd === "--help" || cmd === "-h") {
    const topic = rest[0] !== undefined ? VERBS[rest[0]] : undefined;
    if (rest[0] !== undefined && !topic) return bad(`unknown command '${rest[0]}'`, USAGE);
    process.stdout.write(topic ? topic.usage : USAGE);
    return 0;
  }
  const verb = VERBS[cmd];
  if (!verb) return bad(`unknown command '${cmd}'`, USAGE);
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest, strict: true, allowPositionals: false,
      options: { ...verb.options, help: { type: "boolean", short: "h" } },
    }) as { values: Record<string, string | boolean | undefined> });
  } catch (err) {
    return bad(`${cmd}: ${(err as Error).message}`, verb.usage);
  }
  if (values.help) {
    process.stdout.write(verb.usage);
    return 0;
  }
  try {
    return await verb.run(values);
  } catch (err) {
    if (err instanceof UsageError) return bad(err.message, verb.usage);
    throw err;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
  process.stderr.write(`vfio-emu: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
