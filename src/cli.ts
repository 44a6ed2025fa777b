#!/usr/bin/env node
// The vfio-emu command line: `vfio-emu demo` runs a real scenario against an emulated kernel
// and prints its trace; `vfio-emu help` lists the commands.

import { runDemo } from "./demo.js";

const USAGE = `usage: vfio-emu <command> [options]

commands:
  demo [--trace GLOB]   boot an emulated kernel with one memcpy DMA device, drive it as a
                        userspace driver would, and print the trace (default GLOB: *)
  help                  this text

environment:
  VFIO_EMU_TRACE=GLOB   trace events whose names match GLOB (e.g. 'sys_*,iommufd_*') to stderr
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "demo": {
      let glob = "*";
      for (let i = 0; i < rest.length; i++) {
        if (rest[i] === "--trace" && i + 1 < rest.length) glob = rest[++i];
        else {
          process.stderr.write(`vfio-emu demo: unknown option ${rest[i]}\n${USAGE}`);
          return 2;
        }
      }
      return runDemo((line) => process.stdout.write(line + "\n"), glob);
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`vfio-emu: unknown command ${cmd}\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
  process.stderr.write(`vfio-emu: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
