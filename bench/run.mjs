#!/usr/bin/env node
// `npm run bench` in a checkout: the same as `vfio-emu bench` (bench/main.mjs), with the same
// options (--json, --quick, --only T1,T5-T8) and exit status.
process.argv.splice(2, 0, "bench");
await import("../dist/cli.js");
