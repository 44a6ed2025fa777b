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
export const HDR_DOMAIN_SERIAL: u32 = HDR + 32; // u32: last domain serial handed out (domain.ts)
export const HDR_DOMAIN_HINT: u32 = HDR + 36; // u32: next descriptor slot to try (round robin delays reuse)
export const HDR_WORKER_HIGH: u32 = HDR + 40; // u32: worker slots [0, high) were ever attached (epoch.ts): the grace period scans only those
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

// ---- worker slots: one 64-byte cache line each --------------------------------------------
//   @0 epoch word (epoch.ts)  @4 owner: 0 free, else a claim token (worker.ts claims with a CAS;
//   slot 0 is the kernel thread's)  @16 the slot's statistics counters (stats.ts), u32 each,
//   written only by the slot's thread
export const WORKER_BASE: u32 = EVENTFD_END;
export const WORKER_SLOTS: u32 = 64;
export const WORKER_STRIDE: u32 = 64;
export const WORKER_OWNER: u32 = 4;
export const WORKER_STATS: u32 = 16;
export const WORKER_STATS_COUNT: u32 = 12;
export const WORKER_END: u32 = WORKER_BASE + WORKER_SLOTS * WORKER_STRIDE;

// Everything up to FIXED_END is laid out statically; later regions (IOTLBs, device state)
// are carved from [DOMAIN_BASE, FIXED_END). Frame metadata starts at FIXED_END.
export const FIXED_END: u32 = 0x400000;

// ---- IOMMU domain descriptors (domain.ts): one 64-byte line each -----------------------------
// A domain handle is the offset of its descriptor; 0 is the blocking domain.
//   @0 format  @4 flags  @8 root frame  @12 page-size bitmap  @16 serial (never reused)
//   @20 invalidation counter  @24 table frames  @28 mapped IO pages  @32 IOTLB probe list (leaf
//   shifts in use, one per byte, ascending)
export const DOMAIN_BASE: u32 = WORKER_END;
export const DOMAIN_SLOTS: u32 = 4096;
export const DOMAIN_STRIDE: u32 = 64;
export const DOMAIN_END: u32 = DOMAIN_BASE + DOMAIN_SLOTS * DOMAIN_STRIDE;

// ---- DMA fault ring (fault.ts) ----------------------------------------------------------------
// @0 head: records ever produced (u32, own line); records from FAULT_RECS, FAULT_REC_SIZE each:
//   @0 seq (index + 1, stored last)  @4 iova lo  @8 iova hi  @12 write | reason << 8
//   @16 domain handle  @20 domain serial  @24 worker slot
export const FAULT_BASE: u32 = DOMAIN_END;
export const FAULT_HEAD: u32 = FAULT_BASE;
export const FAULT_RECS: u32 = FAULT_BASE + 64;
export const FAULT_SLOTS: u32 = 1024; // power of two
export const FAULT_REC_SIZE: u32 = 32;
export const FAULT_END: u32 = FAULT_RECS + FAULT_SLOTS * FAULT_REC_SIZE;

// ---- IOTLBs (iotlb.ts): one direct-mapped array per worker slot ------------------------------
// Entry: @0 domain serial (0 = empty)  @4 invalidation count at fill  @8 u64 tag (leaf base |
//   leaf shift)  @16 leaf word  @20 host address of the leaf PTE  @24 dirty bit still to set
//   @28 length of the run of contiguous leaves this entry stands for (bytes from the leaf base)
export const IOTLB_BASE: u32 = FAULT_END;
export const IOTLB_ENTRIES: u32 = 256; // per slot, power of two
export const IOTLB_ENTRY_SIZE: u32 = 32;
export const IOTLB_SLOT_BYTES: u32 = IOTLB_ENTRIES * IOTLB_ENTRY_SIZE;
export const IOTLB_END: u32 = IOTLB_BASE + WORKER_SLOTS * IOTLB_SLOT_BYTES;

// ---- the file → device table: one u32 per gate slot ------------------------------------------
// The vfio device index + 1 of the device file in that gate slot (0: not a device file),
// written before the file's gate grant (paired with the grant: a worker that passed the gate
// reads it with a plain load).
export const FILE_DEV_BASE: u32 = IOTLB_END;
export const FILE_DEV_END: u32 = FILE_DEV_BASE + GATE_SLOTS * 4;

// ---- device state that workers read: one 64-byte line per vfio device index ------------------
//   @0 domain handle DMA is translated through (0 = blocked; atomic: written by attach, detach
//   and replace before their grace period)  @4 config space host address  @8 config size
//   @12 config write-mask host address  @16 BAR0 host address  @20 BAR0 size
//   Interrupts (msi.ts; 0 where the function has none): @24 vector triggers (u32[MSI_MAX_VECTORS],
//   an order-1 frame: eventfd slot + 1 per vector, 0 = none)  @28 MSI capability host address
//   @32 MSI-X capability host address  @36 MSI-X table host address (in BAR memory)  @40 PBA
//   host address  @44 MSI-X table size. Written before the first grant, like the fields above.
//   @48 the DMA engine's state page host address (ioat.ts ENG_*; 0: BAR0 is plain memory, a
//   store there is just a store), so a worker's BAR0 pwrite reaches the register model.
export const DEV_BASE: u32 = FILE_DEV_END;
export const DEV_SLOTS: u32 = 1024;
export const DEV_STRIDE: u32 = 64;
export const DEV_DOMAIN: u32 = 0;
export const DEV_CONFIG: u32 = 4;
export const DEV_CONFIG_SIZE: u32 = 8;
export const DEV_CONFIG_MASK: u32 = 12;
export const DEV_BAR0: u32 = 16;
export const DEV_BAR0_SIZE: u32 = 20;
export const DEV_IRQ_CTX: u32 = 24;
export const DEV_MSI_CAP: u32 = 28;
export const DEV_MSIX_CAP: u32 = 32;
export const DEV_MSIX_TABLE: u32 = 36;
export const DEV_MSIX_PBA: u32 = 40;
export const DEV_MSIX_SIZE: u32 = 44;
export const DEV_ENGINE: u32 = 48;
/** The MSI-X maximum (table size field + 1): the trigger array is 8 KiB. */
export const MSI_MAX_VECTORS: u32 = 2048;
export const DEV_END: u32 = DEV_BASE + DEV_SLOTS * DEV_STRIDE;
/** dev_dma's device number for a function with no line here (no vfio index): blocked. */
export const DEV_NONE: u32 = 0xffffffff;

// ---- per-worker-slot bounce buffers for DMA to and from memory outside the pool ------------
export const BOUNCE_BASE: u32 = DEV_END;
export const BOUNCE_BYTES: u32 = 16384;
export const BOUNCE_END: u32 = BOUNCE_BASE + WORKER_SLOTS * BOUNCE_BYTES;

// ---- the kernel thread's GUP batch (gup.ts): the frame numbers gup_fast_pin hands back, u32
// each, read by the pinning code (src/kernel/mm.ts gupFast) right after the call ----------------
export const GUP_BATCH: u32 = BOUNCE_END;
export const GUP_BATCH_PAGES: u32 = 1024;
export const GUP_BATCH_END: u32 = GUP_BATCH + GUP_BATCH_PAGES * 4;

// Start of what is still free in [DOMAIN_BASE, FIXED_END); frames_init zeroes [DOMAIN_BASE, CARVED_END).
export const CARVED_END: u32 = GUP_BATCH_END;

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
