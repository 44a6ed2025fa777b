// The per-file access gate (DESIGN.md "The gate"): one u32 per open file description.
//   byte 0      the kernel's u8 access_granted (0 until BIND / group open, then 1 until close)
//   bits 8..31  generation, bumped by every close, so a FileRef to a closed, reused slot fails
// Written only by the kernel thread; read lock-free by any thread.

import { GATE_BASE } from "./layout";
import { epoch_enter } from "./epoch";

@inline function gateAt(slot: u32): u32 { return GATE_BASE + (slot << 2); }

/** The generation a newly opened file in `slot` carries (its granted byte is 0). */
export function gate_generation(slot: u32): u32 {
  return atomic.load<u32>(gateAt(slot)) >>> 8;
}

/**
 * Publishes access_granted = 1 for the file (slot, gen). Seq-cst store: release. Paired with
 * the loads in gate_check() and gate_word(): a reader that sees the byte set also sees every
 * store the bind made before this one (device state, domain pointer, config shadow).
 */
export function gate_grant(slot: u32, gen: u32): void {
  atomic.store<u32>(gateAt(slot), (gen << 8) | 1);
}

/** Closes the file in `slot`: zeroes the byte and bumps the generation in one store. */
export function gate_close(slot: u32): void {
  const gen = (atomic.load<u32>(gateAt(slot)) >>> 8) + 1;
  atomic.store<u32>(gateAt(slot), (gen & 0xffffff) << 8);
}

/**
 * The check at the top of every gated file operation: one atomic load (acquire, paired with
 * gate_grant / gate_close). 0 when (slot, gen) is open and granted, -22 (EINVAL) when open but
 * not granted, -9 (EBADF) when the file was closed (generation moved on).
 */
export function gate_check(slot: u32, gen: u32): i32 {
  const w = atomic.load<u32>(gateAt(slot));
  if ((w >>> 8) != (gen & 0xffffff)) return -9;
  return (w & 0xff) != 0 ? 0 : -22;
}

/**
 * A worker-side gated file operation's first step, in one call from JS: enters this thread's
 * grace-period read section (epoch_enter), then makes the gate check (gate_check's one atomic
 * load, paired with gate_grant / gate_close). The load comes after the section's store so a
 * close that bumps the generation either is seen here or waits for this section before it
 * frees what the file reaches. Returns as gate_check; the section is entered whatever the
 * result, and the caller leaves it with epoch_exit. One wasm call instead of two: the check
 * adds a load and a compare to the section entry the operation pays anyway (T16).
 */
export function gate_enter(slot: u32, gen: u32): i32 {
  epoch_enter();
  return gate_check(slot, gen);
}

/** The raw word, for tests and tracing. */
export function gate_word(slot: u32): u32 {
  return atomic.load<u32>(gateAt(slot));
}
