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
  /** The verb takes operands (after `--`); the others take none. */
  positionals?: boolean;
  run(values: Record<string, string | boolean | undefined>, positionals: string[]): Promise<number>;
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
  trace: {
    usage: `usage: vfio-emu trace --record FILE -- COMMAND [ARGS...]
       vfio-emu trace --replay FILE

--record runs COMMAND (a Node program: \`-- node app.js\`) with every kernel it boots recorded:
each call of the raw syscall layer (open, ioctl, ioctlBuf, mmap, pread, ..., readMemory and
writeMemory) and of the kernel and its devices (createProcess, addDevice, DeviceHandle DMA on the
kernel's thread, close), in order, with its arguments, its result, and the user memory the
kernel read and wrote during it.
FILE gets one JSON object per line (the header first) when COMMAND exits; the exit status is
COMMAND's.

--replay boots fresh kernels with the recorded configurations and makes the same calls, putting
back the bytes the kernel read before each one, and compares the return value, the buffers
after the call and the bytes written back to user memory. Exit status 0 when every call gives
what it gave when recorded, 1 at the first divergence, with a report of the call and of what
differs. Not replayed: DMA that device workers do on other threads (what the kernel read of it
is put back, and so is what the program read with readMemory, whose result alone is compared).

options:
  --record FILE  run COMMAND, recording to FILE
  --replay FILE  replay FILE against a fresh kernel
  -h, --help     this text
`,
    options: { record: { type: "string" }, replay: { type: "string" } },
    positionals: true,
    async run(v, cmd) {
      if ((v.record === undefined) === (v.replay === undefined)) throw new UsageError("trace: give exactly one of --record FILE and --replay FILE");
      if (v.replay !== undefined) {
        if (cmd.length) throw new UsageError(`trace: --replay takes no command (got '${cmd[0]}')`);
        return replayFile(v.replay as string);
      }
      if (!cmd.length) throw new UsageError("trace: --record FILE needs a command after --, e.g. -- node app.js");
      return recordCommand(v.record as string, cmd);
    },
  },
};

async function replayFile(file: string): Promise<number> {
  const { readFileSync } = await import("node:fs");
  const { parseRecording, replay, report } = await import("./trace/replay.js");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    process.stderr.write(`vfio-emu: trace: cannot read ${file}: ${(err as Error).message}\n`);
    return 2;
  }
  let events;
  try {
    events = parseRecording(text);
  } catch (err) {
    process.stderr.write(`vfio-emu: trace: ${file}: ${(err as Error).message}\n`);
    return 2;
  }
  const r = await replay(events);
  process.stdout.write(report(file, r, events.length));
  return r.divergence ? 1 : 0;
}

async function recordCommand(file: string, cmd: string[]): Promise<number> {
  const { spawn } = await import("node:child_process");
  const { resolve } = await import("node:path");
  const { existsSync, readFileSync } = await import("node:fs");
  const { constants } = await import("node:os");
  const out = resolve(file);
  const preload = new URL("./trace/preload.js", import.meta.url).href;
  const env = {
    ...process.env,
    VFIO_EMU_RECORD: out,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import=${preload}`.trim(),
  };
  const child = spawn(cmd[0], cmd.slice(1), { stdio: "inherit", env });
  const status = await new Promise<number>((done) => {
    child.once("error", (err) => {
      process.stderr.write(`vfio-emu: trace: cannot run ${cmd[0]}: ${err.message}\n`);
      done(127);
    });
    child.once("exit", (code, sig) => done(code ?? 128 + ((sig && constants.signals[sig]) || 0)));
  });
  if (status === 127 && !existsSync(out)) return status;
  if (!existsSync(out)) {
    process.stderr.write(`vfio-emu: trace: ${cmd[0]} wrote no recording to ${file} (not a Node program, or it replaced NODE_OPTIONS)\n`);
    return status === 0 ? 1 : status;
  }
  const header = JSON.parse(readFileSync(out, "utf8").split("\n")[0]) as { kernels: number; calls: number };
  process.stderr.write(`vfio-emu: trace: recorded ${header.calls} calls of ${header.kernels} kernel${header.kernels === 1 ? "" : "s"} to ${file}\n`);
  return status;
}

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
  trace     record a program's syscalls to a file (--record FILE -- node app.js), or replay a
            recording against a fresh kernel and report the first divergence (--replay FILE)
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
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest, strict: true, allowPositionals: verb.positionals === true,
      options: { ...verb.options, help: { type: "boolean", short: "h" } },
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] });
  } catch (err) {
    return bad(`${cmd}: ${(err as Error).message}`, verb.usage);
  }
  if (values.help) {
    process.stdout.write(verb.usage);
    return 0;
  }
  try {
    return await verb.run(values, positionals);
  } catch (err) {
    if (err instanceof UsageError) return bad(err.message, verb.usage);
    throw err;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
  process.stderr.write(`vfio-emu: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
