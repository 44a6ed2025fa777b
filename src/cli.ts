#!/usr/bin/env node
// The vfio-emu command line. Arguments are parsed with node:util's parseArgs (strict: an
// unknown option or a stray positional is an error), every verb answers --help, and a bad
// argument prints a clear error with the verb's usage to stderr and exits 2.

import { parseArgs, type ParseArgsConfig } from "node:util";
import { runDemo, runLegacyDemo } from "./demo.js";

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
};

const USAGE = `usage: vfio-emu <command> [options]

commands:
  demo      run the cdev (or, --legacy, the group) sequence against an emulated kernel, traced
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
  return verb.run(values);
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
  process.stderr.write(`vfio-emu: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
