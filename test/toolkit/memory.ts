// User memory as the tests look at it.
import { expect } from "vitest";
import type { Process } from "../../src/index.js";

/** `n` bytes of value `v`. */
export const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

/** `n` bytes of the process's memory at `addr` (the read must succeed). */
export function read(proc: Process, addr: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  expect(proc.readMemory(addr, out)).toBe(0);
  return out;
}
