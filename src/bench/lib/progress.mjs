// Progress of a bench run on stderr. On a terminal: one bar redrawn in place (trials done of
// the run's total, the figure and trial in hand, the time so far), cleared before any other
// line is printed. Anywhere else (a pipe, a CI log): plain lines, one per figure and, in full
// runs, one per trial, so a log shows how far a run got and what each trial measured.

const WIDTH = 28;

export class Progress {
  /** stream: where to write (process.stderr); total: trials the whole run will take. */
  constructor(stream, total, { tty = stream.isTTY === true, quiet = false } = {}) {
    this.stream = stream;
    this.total = Math.max(1, total);
    this.tty = tty;
    this.quiet = quiet;
    this.done = 0;
    this.t0 = Date.now();
    this.label = "";
    this.drawn = false;
  }

  /** A line for people (figure starts, notes); clears the bar first on a terminal. */
  line(msg) {
    this.clear();
    this.stream.write(`[bench] ${msg}\n`);
    this.draw();
  }

  /** A figure begins. */
  figure(id, title) {
    this.label = id;
    if (this.tty) this.draw();
    else this.stream.write(`[bench] ${id}: ${title}\n`);
  }

  /** One trial done; `detail` (what it measured) is printed as a line only off a terminal. */
  trial(label, detail) {
    this.done = Math.min(this.total, this.done + 1);
    this.label = label;
    if (this.tty) this.draw();
    else if (detail && !this.quiet) this.stream.write(`[bench] ${label}: ${detail}\n`);
  }

  /** Skips the trials a figure will not run (it failed, or has fewer than planned). */
  advanceTo(n) {
    this.done = Math.min(this.total, Math.max(this.done, n));
    if (this.tty) this.draw();
  }

  draw() {
    if (!this.tty) return;
    const frac = this.done / this.total;
    const fill = Math.round(frac * WIDTH);
    const secs = ((Date.now() - this.t0) / 1000).toFixed(0);
    const bar = `[${"#".repeat(fill)}${"-".repeat(WIDTH - fill)}] ${String(Math.round(frac * 100)).padStart(3)}% ${this.label} ${secs}s`;
    this.stream.write(`\r${bar}\x1b[K`);
    this.drawn = true;
  }

  clear() {
    if (this.tty && this.drawn) {
      this.stream.write("\r\x1b[K");
      this.drawn = false;
    }
  }

  /** The run is over: the bar goes away. */
  end() {
    this.clear();
  }
}
