// Physical memory: a buddy allocator over the frame pool, with a reference count per 4 KiB
// frame.
//
// Owned by the kernel thread: only the control plane allocates, frees, gets and puts frames
// (workers never change these arrays), so plain loads and stores suffice. A frame number f
// names physical address f << 12; its bytes live at pool_base + (f << 12).
//
// Metadata arrays (layout.ts):
//   refc[f]  references to frame f: one per user mapping, per pin, per page-cache entry,
//            per page-table use
//   link[f]  free block head: next head in its order's list;  allocated block head: the sum of
//            refc over the whole block (the block is freed when it reaches 0)
//   prev[f]  free block head: previous head in its list
//   ord[f]   ORD_FREE|ORD_DIRTY|order on a free block head; ORD_ALLOC|order on every frame of
//            an allocated block (so any frame finds its head); 0 elsewhere
// Lazy initialisation: only frames at or above the watermark were ever put on a free list; the
// rest is carved in maximal aligned blocks when the lists run dry, so a large pool starts at
// once. Carving runs from the top of the pool down, so small allocations use the unaligned top
// and the large naturally aligned blocks at the bottom survive for huge pages.

import {
  HDR_MAGIC, HDR_MEM_PAGES, HDR_META_BASE, HDR_POOL_BASE, HDR_POOL_FRAMES, HDR_WATERMARK,
  HDR_FREE_FRAMES, HDR_FREE_HEADS, HDR_FAIL_NTH, HDR_DOMAIN_SERIAL, HDR_DOMAIN_HINT,
  HDR_GLOBAL_EPOCH, WORKER_BASE, WORKER_END, DOMAIN_BASE, CARVED_END, FIXED_END, META_BYTES_PER_FRAME, POOL_ALIGN,
  MAX_ORDER, FRAME_NONE, LAYOUT_MAGIC, MIN_MEMORY_PAGES, PAGE_SHIFT,
} from "./layout";

const ORD_FREE: u8 = 0x80;
const ORD_DIRTY: u8 = 0x40; // free block whose bytes may be non-zero
const ORD_ALLOC: u8 = 0x20;
const ORD_MASK: u8 = 0x1f;

// Per-instance caches of header fields, refreshed by frames_attach() in every thread.
let metaBase: u32 = 0;
let poolBase: u32 = 0;
let poolFrames: u32 = 0;

@inline function refcAt(f: u32): u32 { return metaBase + (f << 2); }
@inline function linkAt(f: u32): u32 { return metaBase + (poolFrames << 2) + (f << 2); }
@inline function prevAt(f: u32): u32 { return metaBase + (poolFrames << 3) + (f << 2); }
@inline function ordAt(f: u32): u32 { return metaBase + poolFrames * 12 + f; }
@inline function headAt(o: u32): u32 { return HDR_FREE_HEADS + (o << 2); }

/** Lays out metadata and pool for a memory of `memPages` 64 KiB pages. 0, or -12 (ENOMEM). */
export function frames_init(memPages: u32): i32 {
  if (memPages < MIN_MEMORY_PAGES) return -12;
  const memBytes: u64 = <u64>memPages << 16;
  const estFrames: u64 = (memBytes - <u64>FIXED_END) >> PAGE_SHIFT;
  const meta: u64 = <u64>FIXED_END;
  const base: u64 = (meta + estFrames * <u64>META_BYTES_PER_FRAME + <u64>(POOL_ALIGN - 1)) & ~<u64>(POOL_ALIGN - 1);
  if (base >= memBytes) return -12;
  const frames: u64 = (memBytes - base) >> PAGE_SHIFT;
  store<u32>(HDR_MEM_PAGES, memPages);
  store<u32>(HDR_META_BASE, <u32>meta);
  store<u32>(HDR_POOL_BASE, <u32>base);
  store<u32>(HDR_POOL_FRAMES, <u32>frames);
  store<u32>(HDR_WATERMARK, <u32>frames);
  store<u32>(HDR_FREE_FRAMES, <u32>frames);
  store<i32>(HDR_FAIL_NTH, 0);
  store<u32>(HDR_DOMAIN_SERIAL, 0);
  store<u32>(HDR_DOMAIN_HINT, 0);
  // Epoch 0 means "idle" in a worker slot, so the global epoch starts at 1 (epoch.ts).
  store<u32>(HDR_GLOBAL_EPOCH, 1);
  memory.fill(<usize>WORKER_BASE, 0, <usize>(WORKER_END - WORKER_BASE));
  // The carved regions (domain descriptors, fault ring, IOTLBs, ...): a re-initialised memory
  // starts clean.
  memory.fill(<usize>DOMAIN_BASE, 0, <usize>(CARVED_END - DOMAIN_BASE));
  for (let o: u32 = 0; o <= MAX_ORDER; o++) store<u32>(headAt(o), FRAME_NONE);
  // Metadata of never-carved frames is only read after carving writes it, but zero it anyway
  // so that a re-initialised memory starts clean.
  memory.fill(<usize>meta, 0, <usize>(frames * <u64>META_BYTES_PER_FRAME));
  frames_attach();
  // Release pairs with the acquire in frames_ready(): a thread that sees the magic sees the
  // header fields written above.
  atomic.store<u32>(HDR_MAGIC, LAYOUT_MAGIC);
  return 0;
}

/** Loads the header into this instance's caches. Every thread calls it once after instantiation. */
export function frames_attach(): void {
  metaBase = load<u32>(HDR_META_BASE);
  poolBase = load<u32>(HDR_POOL_BASE);
  poolFrames = load<u32>(HDR_POOL_FRAMES);
}

/** Paired with the release store at the end of frames_init(). */
export function frames_ready(): bool {
  return atomic.load<u32>(HDR_MAGIC) == LAYOUT_MAGIC;
}

export function pool_base(): u32 { return poolBase; }
export function pool_frames(): u32 { return poolFrames; }
export function frames_free(): u32 { return load<u32>(HDR_FREE_FRAMES); }

function listPush(f: u32, o: u32, dirty: bool): void {
  const h = headAt(o);
  const first = load<u32>(h);
  store<u32>(linkAt(f), first);
  store<u32>(prevAt(f), FRAME_NONE);
  if (first != FRAME_NONE) store<u32>(prevAt(first), f);
  store<u32>(h, f);
  store<u8>(ordAt(f), ORD_FREE | (dirty ? ORD_DIRTY : 0) | <u8>o);
}

function listRemove(f: u32, o: u32): void {
  const next = load<u32>(linkAt(f));
  const prev = load<u32>(prevAt(f));
  if (prev == FRAME_NONE) store<u32>(headAt(o), next);
  else store<u32>(linkAt(prev), next);
  if (next != FRAME_NONE) store<u32>(prevAt(next), prev);
  store<u8>(ordAt(f), 0);
}

/** Carves never-used frames into the free lists until a block of at least `order` exists. */
function carve(order: u32): bool {
  let w = load<u32>(HDR_WATERMARK);
  while (w > 0) {
    // Largest aligned block that ends at w: its size divides w.
    let o: u32 = MAX_ORDER;
    while (o > 0 && ((w & ((<u32>1 << o) - 1)) != 0 || (<u32>1 << o) > w)) o--;
    w -= 1 << o;
    listPush(w, o, false);
    store<u32>(HDR_WATERMARK, w);
    if (o >= order) return true;
  }
  return false;
}

/** One injected failure point: counts HDR_FAIL_NTH down and fails when it reaches zero. */
export function fail_point(): bool {
  const n = load<i32>(HDR_FAIL_NTH);
  if (n <= 0) return false;
  store<i32>(HDR_FAIL_NTH, n - 1);
  return n == 1;
}

/**
 * Allocates a naturally aligned block of 2^order frames, every frame with refcount 1, its
 * bytes zeroed. Returns the first frame number, or FRAME_NONE when no block is free.
 */
export function frame_alloc(order: u32): u32 {
  if (order > MAX_ORDER) return FRAME_NONE;
  if (fail_point()) return FRAME_NONE;
  let o = order;
  while (true) {
    while (o <= MAX_ORDER && load<u32>(headAt(o)) == FRAME_NONE) o++;
    if (o <= MAX_ORDER) break;
    if (!carve(order)) return FRAME_NONE;
    o = order;
  }
  const f = load<u32>(headAt(o));
  const dirty = (load<u8>(ordAt(f)) & ORD_DIRTY) != 0;
  listRemove(f, o);
  // Split down to the requested order, returning the upper halves to their lists.
  while (o > order) {
    o--;
    listPush(f + (1 << o), o, dirty);
  }
  const n: u32 = 1 << order;
  if (dirty) memory.fill(<usize>(poolBase + (f << PAGE_SHIFT)), 0, <usize>n << PAGE_SHIFT);
  for (let i: u32 = 0; i < n; i++) {
    store<u32>(refcAt(f + i), 1);
    store<u8>(ordAt(f + i), ORD_ALLOC | <u8>order);
  }
  store<u32>(linkAt(f), n);
  store<u32>(HDR_FREE_FRAMES, load<u32>(HDR_FREE_FRAMES) - n);
  return f;
}

function blockFree(f: u32, order: u32): void {
  const n: u32 = 1 << order;
  for (let i: u32 = 0; i < n; i++) store<u8>(ordAt(f + i), 0);
  store<u32>(HDR_FREE_FRAMES, load<u32>(HDR_FREE_FRAMES) + n);
  const w = load<u32>(HDR_WATERMARK);
  let o = order;
  while (o < MAX_ORDER) {
    const b = f ^ (1 << o);
    if (b < w) break; // not carved yet
    if ((load<u8>(ordAt(b)) & (ORD_FREE | ORD_MASK)) != (ORD_FREE | <u8>o)) break;
    listRemove(b, o);
    f = min(f, b);
    o++;
  }
  listPush(f, o, true);
}

@inline function headOf(f: u32): u32 {
  const o = <u32>(load<u8>(ordAt(f)) & ORD_MASK);
  return f & ~((1 << o) - 1);
}

/** True when f lies in an allocated block. */
export function frame_valid(f: u32): bool {
  return f < poolFrames && (load<u8>(ordAt(f)) & ORD_ALLOC) != 0;
}

export function frame_refcount(f: u32): u32 {
  return load<u32>(refcAt(f));
}

/** Takes one more reference on frame f (allocated). */
export function frame_get(f: u32): void {
  store<u32>(refcAt(f), load<u32>(refcAt(f)) + 1);
  const h = headOf(f);
  store<u32>(linkAt(h), load<u32>(linkAt(h)) + 1);
}

/** Drops one reference on frame f; frees its block when the whole block reaches zero. 1 if freed. */
export function frame_put(f: u32): i32 {
  store<u32>(refcAt(f), load<u32>(refcAt(f)) - 1);
  const o = <u32>(load<u8>(ordAt(f)) & ORD_MASK);
  const h = f & ~((1 << o) - 1);
  const total = load<u32>(linkAt(h)) - 1;
  store<u32>(linkAt(h), total);
  if (total != 0) return 0;
  blockFree(h, o);
  return 1;
}

/** Order of the block frame f belongs to. */
export function frame_order(f: u32): u32 {
  return <u32>(load<u8>(ordAt(f)) & ORD_MASK);
}

/** Host address of frame f's first byte. */
@inline export function frame_addr(f: u32): u32 {
  return poolBase + (f << PAGE_SHIFT);
}
