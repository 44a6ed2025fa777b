// IOVA arithmetic in 64 bits (the kernel's unsigned long on x86_64). IOVAs and lengths are
// bigints so that values near 2^64 keep their exact meaning.

import { PAGE_SIZE } from "../kernel/mm.js";

export { PAGE_SIZE, pageOff } from "../kernel/mm.js";
export const ULONG_MAX = (1n << 64n) - 1n;
/** PAGE_SIZE as a bigint, for IOVA and length arithmetic. */
export const PAGE = BigInt(PAGE_SIZE);
/** PAGE - 1: the mask of an offset in its page. */
export const PAGE_MASK = PAGE - 1n;
/** HPAGE_SIZE with transparent huge pages: the cap on automatic IOVA alignment. */
export const HPAGE_SIZE = 2n * 1024n * 1024n;

const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);

// Number(v) of a u64 is a call into V8's runtime; its two halves through a 64-bit cell and one
// sum give the same correctly rounded double without it.
const cell = new BigUint64Array(1);
const halves = new Uint32Array(cell.buffer);
/** Number(v) for 0 <= v < 2^64 (exact below 2^53). */
export function u64Number(v: bigint): number {
  cell[0] = v;
  return halves[0] + halves[1] * 0x100000000;
}

/** roundup_pow_of_two for 0 < v < 2^63. */
export function pow2ceil(v: bigint): bigint {
  let p = 1n;
  while (p < v) p <<= 1n;
  return p;
}

/** 1 << __ffs64(v), v != 0: the lowest set bit. */
export const lowestBit = (v: bigint): bigint => v & -v;

/** ALIGN(v, a) with the kernel's 64-bit wrap-around. */
export const alignUp = (v: bigint, a: bigint): bigint => u64((v + a - 1n) & ~(a - 1n));

// The tests against 2^64 - 1 are written as 64-bit wrap-arounds (asUintN, asIntN): V8
// compiles those to machine compares, where a comparison with a bigint past 2^63 such as
// ULONG_MAX is a call into its runtime (about 10 ns, several per IOAS_MAP).

/** check_add_overflow(a, b) for u64s a and b: the sum, or null when it does not fit in 64 bits. */
export function addOverflow(a: bigint, b: bigint): bigint | null {
  const s = BigInt.asUintN(64, a + b);
  return s < a ? null : s;
}

const MINUS_ONE = -1n; // a literal -1n is a negation at every evaluation
/** v == ULONG_MAX for a u64 v. */
export const isUlongMax = (v: bigint): boolean => BigInt.asIntN(64, v) === MINUS_ONE;

export interface Interval { start: bigint; last: bigint }

export const intersects = (a: Interval, start: bigint, last: bigint): boolean =>
  a.start <= last && start <= a.last;

/**
 * The holes of a sorted list of (possibly overlapping) intervals within [start, last]
 * (interval_tree_for_each_span, holes only).
 */
export function holes(used: readonly Interval[], start: bigint, last: bigint): Interval[] {
  const out: Interval[] = [];
  let cur = start;
  for (const u of used) {
    if (u.last < cur) continue;
    if (u.start > last) break;
    if (u.start > cur) out.push({ start: cur, last: u.start - 1n });
    if (u.last >= last) return out;
    cur = u.last + 1n;
  }
  if (cur <= last) out.push({ start: cur, last });
  return out;
}

/**
 * The used spans (overlapping intervals merged) of a sorted list within [start, last], clipped.
 */
export function usedSpans(used: readonly Interval[], start: bigint, last: bigint): Interval[] {
  const out: Interval[] = [];
  for (const u of used) {
    if (u.last < start || u.start > last) continue;
    const s = u.start < start ? start : u.start;
    const l = u.last > last ? last : u.last;
    const prev = out[out.length - 1];
    if (prev && s <= prev.last + 1n) { if (l > prev.last) prev.last = l; } else out.push({ start: s, last: l });
  }
  return out;
}
