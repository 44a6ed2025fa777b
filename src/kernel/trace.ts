// Tracing in the style of QEMU trace events: one line per event, `name key=value ...`, hex
// addresses, the result last. Off by default and free when off (one boolean test); enabled by
// a glob over event names (`VFIO_EMU_TRACE=iommufd_*,sys_ioctl` in Node) or by subscribing.

export type TraceValue = string | number | bigint | boolean;
export type TraceSink = (line: string, name: string) => void;

interface Subscription { match: (name: string) => boolean; sink: TraceSink }

/**
 * Compiles "a*,b?c,-d" style globs (comma or space separated) into one predicate. As in
 * QEMU's -trace, a pattern with a leading "-" disables what it matches, and the last pattern
 * that matches a name decides ("sys_*,-sys_read*" is every sys_ event but the reads).
 */
export function compileGlob(glob: string): (name: string) => boolean {
  const parts = glob.split(/[\s,]+/).filter(Boolean);
  const res = parts.map((p) => {
    const neg = p.startsWith("-");
    const body = neg ? p.slice(1) : p;
    const re = new RegExp("^" + body.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
    return { neg, re };
  });
  return (name) => {
    let on = false;
    for (const { neg, re } of res) if (re.test(name)) on = !neg;
    return on;
  };
}

export function hex(v: number | bigint): string {
  if (typeof v === "bigint") return (v < 0n ? "-0x" + (-v).toString(16) : "0x" + v.toString(16));
  return v < 0 ? "-0x" + (-v).toString(16) : "0x" + v.toString(16);
}

export class Tracer {
  /** True while anyone listens: callers test it before building an event. */
  on = false;
  private subs: Subscription[] = [];
  private cache = new Map<string, TraceSink[]>();

  /** Subscribes `sink` to every event whose name matches `glob`; returns the unsubscribe. */
  subscribe(glob: string, sink: TraceSink): () => void {
    const s: Subscription = { match: compileGlob(glob), sink };
    this.subs.push(s);
    this.changed();
    return () => {
      this.subs = this.subs.filter((x) => x !== s);
      this.changed();
    };
  }

  private changed(): void {
    this.cache.clear();
    this.on = this.subs.length > 0;
  }

  enabled(name: string): boolean {
    return this.on && this.sinks(name).length > 0;
  }

  private sinks(name: string): TraceSink[] {
    let s = this.cache.get(name);
    if (!s) {
      s = this.subs.filter((x) => x.match(name)).map((x) => x.sink);
      this.cache.set(name, s);
    }
    return s;
  }

  /** Emits `name k=v ...`; fields are written in insertion order, so put the result last. */
  emit(name: string, fields: Record<string, TraceValue>): void {
    if (!this.on) return;
    const sinks = this.sinks(name);
    if (sinks.length === 0) return;
    let line = name;
    for (const [k, v] of Object.entries(fields)) line += ` ${k}=${typeof v === "bigint" ? hex(v) : String(v)}`;
    for (const sink of sinks) sink(line, name);
  }
}
