// Shared helpers of the IOMMU data-plane tests (iommu_formats, dma): IOVA halves and a
// reference model of a domain's mappings in plain TypeScript (the seeded PRNG is toolkit/prng.ts).
import type { Core, CoreConstants } from "../src/wasm/core.js";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const NONE = 0xffffffff;
export const EINVAL = -22, EEXIST = -17, ENOMEM = -12, EFAULT = -14;
export const READ = 1, WRITE = 2;

export const lo = (iova: number) => iova >>> 0;
export const hi = (iova: number) => Math.floor(iova / 2 ** 32);

export interface Run {
  start: number; // first IO page
  n: number; // IO pages
  phys: number; // physical IO page of `start`
  prot: number;
  huge: boolean; // mapped with allow_huge
}

/**
 * The reference: runs of IO pages, sorted and disjoint. A Map from IO page to phys + prot in
 * spirit, kept as runs so that 1 GiB mappings stay cheap.
 */
export class Model {
  runs: Run[] = [];

  find(page: number): Run | undefined {
    for (const r of this.runs) if (page >= r.start && page < r.start + r.n) return r;
    return undefined;
  }

  overlaps(start: number, n: number): boolean {
    return this.runs.some((r) => r.start < start + n && start < r.start + r.n);
  }

  add(run: Run): void {
    this.runs.push(run);
    this.runs.sort((a, b) => a.start - b.start);
  }

  /** Removes [start, start + n): the pages removed. */
  remove(start: number, n: number): number {
    const end = start + n;
    const out: Run[] = [];
    let removed = 0;
    for (const r of this.runs) {
      const rEnd = r.start + r.n;
      if (rEnd <= start || r.start >= end) { out.push(r); continue; }
      removed += Math.min(rEnd, end) - Math.max(r.start, start);
      if (r.start < start) out.push({ ...r, n: start - r.start });
      if (rEnd > end) out.push({ ...r, start: end, n: rEnd - end, phys: r.phys + (end - r.start) });
    }
    this.runs = out.sort((a, b) => a.start - b.start);
    return removed;
  }

  pages(): number {
    return this.runs.reduce((s, r) => s + r.n, 0);
  }

  /** phys IO page and prot of `page`, or undefined. */
  translate(page: number): { phys: number; prot: number } | undefined {
    const r = this.find(page);
    return r && { phys: r.phys + (page - r.start), prot: r.prot };
  }
}

/** The fault records written since `from` (the ring head before the operation). */
export function faultsSince(c: Core, from: number): { iova: number; write: boolean; reason: number; dom: number; serial: number; slot: number }[] {
  const out = [];
  const head = c.x.fault_head() >>> 0;
  for (let i = from; i < head; i++) {
    const r = c.x.fault_rec(i) >>> 0;
    if (!r) throw new Error(`fault record ${i} lost`);
    const w = (o: keyof CoreConstants) => c.u32[(r + c.consts[o]) >>> 2];
    const flags = w("FAULT_FLAGS");
    out.push({
      iova: w("FAULT_IOVA_HI") * 2 ** 32 + w("FAULT_IOVA_LO"), write: (flags & 1) !== 0, reason: flags >>> 8,
      dom: w("FAULT_DOM"), serial: w("FAULT_SERIAL"), slot: w("FAULT_SLOT"),
    });
  }
  return out;
}

export function setFailNth(c: Core, n: number): void {
  Atomics.store(c.i32, c.consts.HDR_FAIL_NTH >>> 2, n);
}
