// The one memory map of vfio-emu's shared WebAssembly.Memory.
//
// Every offset that both planes (the TypeScript control plane and the wasm data plane, in any
// thread) use is defined here and nowhere else; TypeScript reads these constants from the
// module's exports (src/wasm/core.ts). Nothing below 64 KiB is used: AssemblyScript would put
// statics there, and the build forbids data segments anyway.
//
// Regions whose size depends on the memory size (frame metadata, the frame pool) are placed by
// frames_init() and recorded in the header, so every instance in every thread finds them there.

export const PAGE_SHIFT: u32 = 12;
export const PAGE_SIZE: u32 = 4096;

// ---- header: one page of kernel-wide words ------------------------------------------------
export const HDR: u32 = 0x10000;
export const HDR_MAGIC: u32 = HDR + 0; // u32: LAYOUT_MAGIC once frames_init ran
export const HDR_MEM_PAGES: u32 = HDR + 4; // u32: memory size in 64 KiB wasm pages
export const HDR_META_BASE: u32 = HDR + 8; // u32: start of the per-frame metadata arrays
export const HDR_POOL_BASE: u32 = HDR + 12; // u32: address of physical address 0
export const HDR_POOL_FRAMES: u32 = HDR + 16; // u32: number of 4 KiB frames in the pool
export const HDR_WATERMARK: u32 = HDR + 20; // u32: frames [watermark, pool end) were handed to the buddy lists
export const HDR_FREE_FRAMES: u32 = HDR + 24; // u32: frames currently free (carved or not)
export const HDR_FAIL_NTH: u32 = HDR + 28; // i32: fault injection countdown (0 = off), see frames.ts
// Own cache line: workers load it on every epoch refresh (grace period, DESIGN.md).
export const HDR_GLOBAL_EPOCH: u32 = HDR + 64; // u32
// Own cache line: bumped (and notified) by every eventfd signal so poll() can sleep on it.
export const HDR_POLL_SEQ: u32 = HDR + 128; // i32
// Buddy free-list heads, one u32 frame index per order (FRAME_NONE when empty).
export const HDR_FREE_HEADS: u32 = HDR + 192; // u32[MAX_ORDER + 1]
export const HDR_END: u32 = HDR + PAGE_SIZE;

export const LAYOUT_MAGIC: u32 = 0x56464945; // "EIFV"

// ---- the gate table: one u32 per open file description ------------------------------------
// byte 0: the kernel's u8 access_granted; bits 8..31: generation (bumped at every close).
export const GATE_BASE: u32 = HDR_END;
export const GATE_SLOTS: u32 = 65536;
export const GATE_END: u32 = GATE_BASE + GATE_SLOTS * 4;

// ---- eventfd counters: 16 bytes each (u64 count @0, u32 flags @8, u32 spare @12) -----------
export const EVENTFD_BASE: u32 = GATE_END;
export const EVENTFD_SLOTS: u32 = 4096;
export const EVENTFD_STRIDE: u32 = 16;
export const EVENTFD_END: u32 = EVENTFD_BASE + EVENTFD_SLOTS * EVENTFD_STRIDE;

// ---- worker slots: one 64-byte cache line each (epoch word @0) ------------------------------
export const WORKER_BASE: u32 = EVENTFD_END;
export const WORKER_SLOTS: u32 = 64;
export const WORKER_STRIDE: u32 = 64;
export const WORKER_END: u32 = WORKER_BASE + WORKER_SLOTS * WORKER_STRIDE;

// ---- statistics counters (u32 each, see stats.ts) -------------------------------------------
export const STATS_BASE: u32 = WORKER_END;
export const STATS_SLOTS: u32 = 256;
export const STATS_END: u32 = STATS_BASE + STATS_SLOTS * 4;

// Everything up to FIXED_END is laid out statically; later regions (IOTLBs, device state)
// are carved from [STATS_END, FIXED_END). Frame metadata starts at FIXED_END.
export const FIXED_END: u32 = 0x400000;

// ---- frame metadata (placed at HDR_META_BASE by frames_init) ---------------------------------
// Four arrays indexed by frame number, in this order:
//   refcount u32[n] | link u32[n] | prev u32[n] | order u8[n]
// See frames.ts for what link/prev/order mean for free and for allocated blocks.
export const META_BYTES_PER_FRAME: u32 = 13;

// The pool is aligned to 2 MiB so that the host addresses of 2 MiB frames are aligned too.
export const POOL_ALIGN: u32 = 0x200000;

export const MAX_ORDER: u32 = 18; // 4 KiB << 18 = 1 GiB
export const FRAME_NONE: u32 = 0xffffffff;

// Smallest memory the layout accepts: the fixed area, metadata and a few MiB of pool.
export const MIN_MEMORY_PAGES: u32 = 256; // 16 MiB
