// Loaded into the program `vfio-emu trace --record FILE -- node app.js` runs (through
// NODE_OPTIONS=--import): every kernel the program boots is recorded (recorder.ts), and at exit
// the recording is written to FILE (VFIO_EMU_RECORD), one JSON object per line, the first one
// the header. Node only; the package's browser paths never import it.

import { writeFileSync } from "node:fs";
import { RECORD_HOOK, Recorder, TRACE_FORMAT, TRACE_VERSION, type RecordHook, type TraceEvent } from "./recorder.js";

const file = process.env.VFIO_EMU_RECORD;
// The program's own children (a test runner's workers, a shell) inherit NODE_OPTIONS but not
// the file: only this process records into it.
delete process.env.VFIO_EMU_RECORD;

if (file) {
  const events: TraceEvent[] = [];
  let kernels = 0;
  const hook: RecordHook = {
    attach(kernel, config) {
      new Recorder(kernel, kernels++, (e) => events.push(e)).attach(config);
    },
  };
  (globalThis as Record<symbol, unknown>)[RECORD_HOOK] = hook;
  process.on("exit", () => {
    const header = { format: TRACE_FORMAT, version: TRACE_VERSION, kernels, calls: events.length, argv: process.argv.slice(1) };
    writeFileSync(file, [header, ...events].map((x) => JSON.stringify(x)).join("\n") + "\n");
  });
}
