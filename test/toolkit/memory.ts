// User memory as the tests look at it.
import { expect } from "vitest";
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, type Process } from "../../src/index.js";

/** `n` bytes of value `v`. */
export const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

/** `n` bytes of the process's memory at `addr` (the read must succeed). */
export function read(proc: Process, addr: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  expect(proc.readMemory(addr, out)).toBe(0);
  return out;
}

/** `len` bytes of fresh anonymous memory (private unless `flags` says MAP_SHARED); the mmap must succeed. */
export function anon(proc: Process, len: number, flags = MAP_PRIVATE): number {
  const a = proc.mmap(0, len, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
  expect(a, "mmap").toBeGreaterThan(0);
  return a;
}

/** `n` bytes that depend on `seed` (xorshift32, so MiBs fill quickly and two seeds differ). */
export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b[i] = x & 0xff; }
  return b;
}

/** The first index where two byte arrays differ: -1 when equal, 0 for a length or null mismatch (toEqual is slow on MiBs). */
export function firstDiff(a: Uint8Array | null, b: Uint8Array | null): number {
  if (a === null || b === null) return a === b ? -1 : 0;
  if (a.length !== b.length) return 0;
  return Buffer.compare(a, b) === 0 ? -1 : a.findIndex((v, i) => v !== b[i]);
}
