// Native references for src/bench/main.mjs (PERF.md "Baselines"), built with the machine's `cc -O2`
// at bench time and run as one long-lived child process: it reads one command per line on
// stdin and answers each with one JSON line on stdout, so the harness can interleave its
// trials with the wasm ones (A B A B).
//
//   C  = native memcpy over the same descriptors (sizes, offsets, working set) as the wasm run.
//   Ct = a C translator written as a line-by-line replica of the wasm data plane:
//        the x86 4-level table (assembly/iopt_x86.ts: 512 x u64 per 4 KiB table, P/R/W/PS/D
//        bits, 4 KiB / 2 MiB leaves, the same map / unmap recursion), the same direct-mapped
//        256-entry IOTLB with its byte-folded index, the one-entry "last translation"
//        (assembly/iotlb.ts), and the same batch / copy loop with its 64 KiB epoch refresh
//        and atomic status store (assembly/dma.ts).
//
// Commands (all numbers decimal; answers carry "ns", the time of the measured loop only):
//   machine <bytes>                       1-thread and 2-thread memcpy of <bytes> per thread
//   copy <impl> <region> <leaf> <ws> <sizes,csv> <count> <reps>
//        impl memcpy|ct; region hot|cold; leaf 12|21 (Ct only)
//   tlb <span_log2> <count>               iotlb_bench mode 2 (random pages through the IOTLB)
//   mapunmap <count>                      T7 loop
//   bulkmap <npages> <calls>              T8: times the maps, then unmaps untimed
//   scale <ws> <sizes,csv> <count> <reps> T11/T12: memcpy of the descriptors over a private
//        region per thread (src | dst, <ws> each), one thread alone, then two at once
//   quit
//
// The layout mirrors src/bench/figures/common.mjs (IOVA bases, domain order so that serials match).

#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

typedef uint32_t u32;
typedef uint64_t u64;
typedef int32_t i32;
typedef int64_t i64;

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

// ---- the pool: "physical memory", frame f at pool + (f << 12) --------------------------------
#define MiB (1024u * 1024u)
#define POOL_BYTES (200u * MiB)
#define COLD_PHYS 0u               // 128 MiB block: cold src (64 MiB) | cold dst (64 MiB)
#define HOT_PHYS (128u * MiB)      // 512 KiB block: hot src (256 KiB) | hot dst (256 KiB)
#define TABLE_FIRST_FRAME ((130u * MiB) >> 12)
static uint8_t *pool;
static u32 next_table_frame = TABLE_FIRST_FRAME;
static u32 free_list[4096];
static u32 free_n;

#define FA(f) (pool + ((size_t)(f) << 12))

static u32 frame_alloc0(void) {
  if (free_n) {
    u32 f = free_list[--free_n];
    memset(FA(f), 0, 4096);
    return f;
  }
  if (((size_t)(next_table_frame + 1) << 12) > POOL_BYTES) return 0xffffffffu;
  return next_table_frame++; // fresh anonymous memory is zero
}
static void frame_put(u32 f) { if (free_n < 4096) free_list[free_n++] = f; }

// ---- x86 format (iopt_x86.ts) -----------------------------------------------------------------
#define X86_R 0x1u
#define X86_W 0x2u
#define X86_PS 0x80u
#define X86_D 0x200u
#define X86_P 0x800u
#define ADDR 0xfffff000u
#define TABLE_BITS (X86_P | X86_R | X86_W)
#define X86_IOVA_BITS 48
#define TOP_SHIFT 39
#define LEAF_P 0x1u
#define LEAF_R 0x2u
#define LEAF_W 0x4u
#define LEAF_D 0x8u
#define LEAF_SHIFT_POS 4
#define LEAF_FLAGS 0x7ffu
#define EEXIST 17
#define ENOMEM 12
#define EINVAL 22
#define EFAULT 14

static u32 walkPte;

static inline u32 ld32(const uint8_t *a) { return *(const u32 *)a; }
static inline void st64(uint8_t *a, u64 v) { *(u64 *)a = v; }

static inline u32 leafWord(uint8_t *at, u32 e, u32 shift) {
  walkPte = (u32)(at - pool);
  return (e & ADDR) | LEAF_P | ((e & 3) << 1) | ((e >> 6) & 0x8) | (shift << LEAF_SHIFT_POS);
}

static u32 x86_walk(u32 root, u64 iova) {
  uint8_t *at = FA(root) + ((((u32)(iova >> 39)) & 511) << 3);
  u32 e = ld32(at);
  if ((e & X86_P) == 0) return 0;
  at = FA(e >> 12) + ((((u32)(iova >> 30)) & 511) << 3);
  e = ld32(at);
  if ((e & X86_P) == 0) return 0;
  if (e & X86_PS) return leafWord(at, e, 30);
  at = FA(e >> 12) + ((((u32)(iova >> 21)) & 511) << 3);
  e = ld32(at);
  if ((e & X86_P) == 0) return 0;
  if (e & X86_PS) return leafWord(at, e, 21);
  at = FA(e >> 12) + ((((u32)(iova >> 12)) & 511) << 3);
  e = ld32(at);
  if ((e & X86_P) == 0) return 0;
  return leafWord(at, e, 12);
}

static u64 mPhys;
static u32 mBits;
static int mHuge;
static u64 mFail;
static i32 mTables;
static u32 mLeafShifts;

static i32 mapLevel(u32 table, u32 shift, u64 iova, u64 end) {
  const u64 size = (u64)1 << shift;
  uint8_t *at = FA(table) + ((((u32)(iova >> shift)) & 511) << 3);
  while (iova < end) {
    const u32 e = ld32(at);
    const u64 next = (iova | (size - 1)) + 1;
    const u64 stop = next < end ? next : end;
    const int leafHere = shift == 12 || (mHuge && shift <= 30 && (iova & (size - 1)) == 0 && stop == next
      && (mPhys & (size - 1)) == 0 && (e & X86_P) == 0);
    if (leafHere) {
      if (e & X86_P) { mFail = iova; return -EEXIST; }
      if (shift > 12) {
        st64(at, (u64)((u32)mPhys | mBits | X86_PS));
        mLeafShifts |= 1u << shift;
      } else {
        st64(at, (u64)((u32)mPhys | mBits));
      }
      mPhys += size;
    } else {
      u32 child;
      if ((e & X86_P) == 0) {
        child = frame_alloc0();
        if (child == 0xffffffffu) { mFail = iova; return -ENOMEM; }
        mTables++;
        st64(at, (u64)((child << 12) | TABLE_BITS));
      } else if (e & X86_PS) {
        mFail = iova; return -EEXIST;
      } else {
        child = e >> 12;
      }
      const i32 rc = mapLevel(child, shift - 9, iova, stop);
      if (rc != 0) return rc;
    }
    iova = stop;
    at += 8;
  }
  return 0;
}

static u64 unmapLevel(u32 table, u32 shift, u64 iova, u64 end) {
  const u64 size = (u64)1 << shift;
  uint8_t *at = FA(table) + ((((u32)(iova >> shift)) & 511) << 3);
  u64 pages = 0;
  while (iova < end) {
    const u32 e = ld32(at);
    const u64 next = (iova | (size - 1)) + 1;
    const u64 stop = next < end ? next : end;
    if (e & X86_P) {
      if (shift == 12 || (e & X86_PS)) {
        st64(at, 0);
        pages += size >> 12;
      } else {
        pages += unmapLevel(e >> 12, shift - 9, iova, stop);
      }
    }
    iova = stop;
    at += 8;
  }
  return pages;
}

static int pruneLevel(u32 table, u32 shift, u64 iova, u64 end) {
  const u64 size = (u64)1 << shift;
  uint8_t *base = FA(table);
  uint8_t *at = base + ((((u32)(iova >> shift)) & 511) << 3);
  if (shift > 12) {
    while (iova < end) {
      const u32 e = ld32(at);
      const u64 next = (iova | (size - 1)) + 1;
      const u64 stop = next < end ? next : end;
      if ((e & X86_P) && !(e & X86_PS) && pruneLevel(e >> 12, shift - 9, iova, stop)) {
        st64(at, 0);
        frame_put(e >> 12);
        mTables--;
      }
      iova = stop;
      at += 8;
    }
  }
  for (u32 i = 0; i < 512; i++) if (ld32(base + (i << 3)) != 0) return 0;
  return 1;
}

static i32 x86_map(u32 root, u64 iova, u32 phys, u32 npages, u32 prot, int huge) {
  const u64 end = iova + ((u64)npages << 12);
  mPhys = (u64)phys << 12;
  mBits = X86_P | ((prot & 1) ? X86_R : 0) | ((prot & 2) ? X86_W : 0);
  mHuge = huge;
  mTables = 0;
  mLeafShifts = 0;
  const i32 rc = mapLevel(root, TOP_SHIFT, iova, end);
  if (rc != 0) {
    if (mFail > iova) unmapLevel(root, TOP_SHIFT, iova, mFail);
    pruneLevel(root, TOP_SHIFT, iova, end);
  }
  return rc;
}

static int cutsLeaf(u32 root, u64 iova) {
  if (iova >= ((u64)1 << X86_IOVA_BITS)) return 0;
  const u32 w = x86_walk(root, iova);
  if (w == 0) return 0;
  const u64 size = (u64)1 << ((w >> LEAF_SHIFT_POS) & 31);
  return (iova & (size - 1)) != 0;
}

static i64 x86_unmap(u32 root, u64 iova, u32 npages) {
  const u64 end = iova + ((u64)npages << 12);
  if (cutsLeaf(root, iova) || cutsLeaf(root, end)) return -EINVAL;
  return (i64)unmapLevel(root, TOP_SHIFT, iova, end);
}

// ---- domains (domain.ts descriptor, as a struct) -------------------------------------------------
struct domain {
  u32 format, flags, root, pgsize;
  _Atomic u32 serial;
  _Atomic u32 inv;
  u32 tables, mapped, shifts;
};
static struct domain doms[8];
static u32 ndoms;
static u32 last_serial;

static struct domain *domain_alloc(void) {
  struct domain *d = &doms[ndoms++];
  d->format = 1;
  d->flags = 0;
  d->root = frame_alloc0();
  d->pgsize = 0x40201000u;
  d->shifts = 12;
  d->tables = 1;
  atomic_store(&d->serial, ++last_serial);
  return d;
}

static void addProbeShifts(struct domain *d, u32 used) {
  if (used == 0) return;
  u32 list = d->shifts, have = 0;
  for (u32 l = list; l != 0; l >>= 8) have |= 1u << (l & 0xff);
  if ((have | used) == have) return;
  have |= used;
  list = 0;
  u32 pos = 0;
  for (u32 s = 11; s < 32; s++) if (have & (1u << s)) { list |= s << pos; pos += 8; }
  d->shifts = list;
}

static i32 domain_map(struct domain *d, u64 iova, u32 phys_page, u32 npages, int huge) {
  const i32 rc = x86_map(d->root, iova, phys_page, npages, 3, huge);
  d->tables += mTables;
  addProbeShifts(d, mLeafShifts);
  if (rc == 0) d->mapped += npages;
  return rc;
}

// ---- epoch (epoch.ts) -------------------------------------------------------------------------
static _Atomic u32 global_epoch = 1;
static _Atomic u32 epoch_word;
static inline void epoch_enter(void) { atomic_store(&epoch_word, atomic_load(&global_epoch)); }
static inline void epoch_exit(void) { atomic_store(&epoch_word, 0); }
static inline int epochActive(void) { return atomic_load(&epoch_word) != 0; }

// ---- IOTLB (iotlb.ts) -------------------------------------------------------------------------
#define IOTLB_ENTRIES 256
struct entry { u32 serial, inv; u64 tag; u32 leaf, pte, dbit, pad; };
static struct entry tlb[IOTLB_ENTRIES] __attribute__((aligned(64)));

#define NO_DOM ((struct domain *)~(uintptr_t)0)
static struct domain *lDom = NO_DOM;
static u32 lInv;
static u64 lBase, lMask;
static u32 lLeaf, lPte, lDbit;
static struct entry *lEnt;
static uint8_t *tHost;
static u32 tAvail;
static u32 xSerial;

#define FAULT_REASON_UNMAPPED 1
#define FAULT_REASON_PERM 2
#define FAULT_REASON_BLOCKED 3
#define FAULT_REASON_RANGE 4
static u32 faults;

static inline void xlateBegin(struct domain *d) { xSerial = d ? atomic_load(&d->serial) : 0; }

static inline struct entry *entryFor(u32 serial, u64 base, u32 shift) {
  const u64 vpn = base >> shift;
  u32 f = (u32)vpn ^ (u32)(vpn >> 32) ^ (serial * 0x9e3779b1u);
  f ^= f >> 16;
  f ^= f >> 8;
  return &tlb[f & (IOTLB_ENTRIES - 1)];
}

static void setDirty(void) {
  atomic_fetch_or((_Atomic u32 *)(pool + lPte), lDbit);
  lDbit = 0;
  lEnt->dbit = 0;
}

static inline u32 finish(u64 iova, int write) {
  if ((lLeaf & (write ? LEAF_W : LEAF_R)) == 0) return FAULT_REASON_PERM;
  if (write && lDbit != 0) setDirty();
  const u32 off = (u32)(iova & lMask);
  tHost = pool + (lLeaf & ~LEAF_FLAGS) + off;
  tAvail = (u32)(lMask + 1 - (u64)off);
  return 0;
}

static inline void setLast(struct domain *d, u32 inv, u64 base, u32 shift, u32 leaf, u32 pte, u32 dbit, struct entry *e) {
  lDom = d; lInv = inv; lBase = base; lMask = ((u64)1 << shift) - 1;
  lLeaf = leaf; lPte = pte; lDbit = dbit; lEnt = e;
}

static __attribute__((noinline)) u32 xlateSlow(struct domain *d, u64 iova, int write) {
  const u32 serial = xSerial;
  if (serial == 0) return FAULT_REASON_BLOCKED;
  const u32 inv = atomic_load(&d->inv);
  u32 shifts = d->shifts;
  do {
    const u32 s = shifts & 0xff;
    const u64 base = iova & ~(((u64)1 << s) - 1);
    struct entry *e = entryFor(serial, base, s);
    if (e->tag == (base | (u64)s) && e->serial == serial && e->inv == inv) {
      setLast(d, inv, base, s, e->leaf, e->pte, e->dbit, e);
      return finish(iova, write);
    }
    shifts >>= 8;
  } while (shifts != 0);
  if (atomic_load(&d->serial) != serial) return FAULT_REASON_BLOCKED;
  if (iova >= ((u64)1 << X86_IOVA_BITS)) return FAULT_REASON_RANGE;
  const u32 w = x86_walk(d->root, iova);
  if (w == 0) return FAULT_REASON_UNMAPPED;
  const u32 s = (w >> LEAF_SHIFT_POS) & 31;
  const u64 base = iova & ~(((u64)1 << s) - 1);
  const int tracking = (d->flags & 2) != 0;
  const u32 dbit = tracking && (w & LEAF_D) == 0 ? X86_D : 0;
  const u32 pte = walkPte;
  struct entry *e = entryFor(serial, base, s);
  e->serial = serial;
  e->inv = inv;
  e->tag = base | (u64)s;
  e->leaf = w;
  e->pte = pte;
  e->dbit = dbit;
  setLast(d, inv, base, s, w, pte, dbit, e);
  return finish(iova, write);
}

static inline u32 xlate(struct domain *d, u64 iova, int write) {
  if (d == lDom && (iova & ~lMask) == lBase && atomic_load(&d->inv) == lInv) return finish(iova, write);
  return xlateSlow(d, iova, write);
}

// ---- DMA (dma.ts): the batch and copy loop ----------------------------------------------------
#define EPOCH_CHUNK 65536u
static u32 budget = EPOCH_CHUNK;
static inline void charge(u32 n) {
  budget -= n;
  if (budget == 0) { epoch_enter(); budget = EPOCH_CHUNK; }
}

struct desc { u32 op; struct domain *dom; u64 src, dst; u32 len; _Atomic i32 status; };

static __attribute__((noinline)) i32 copy(struct domain *d, u64 src, u64 dst, u32 len) {
  xlateBegin(d);
  u32 done = 0;
  while (done < len) {
    const u64 s = src + done;
    u32 r = xlate(d, s, 0);
    if (r != 0) { faults++; return -EFAULT; }
    uint8_t *from = tHost;
    u32 n = len - done;
    if (tAvail < n) n = tAvail;
    const u64 dd = dst + done;
    r = xlate(d, dd, 1);
    if (r != 0) { faults++; return -EFAULT; }
    if (tAvail < n) n = tAvail;
    if (budget < n) n = budget;
    memmove(tHost, from, n);
    done += n;
    charge(n);
  }
  return 0;
}

static i32 dma_batch(struct desc *desc, u32 count) {
  int own = 0;
  if (!epochActive()) { epoch_enter(); budget = EPOCH_CHUNK; own = 1; }
  i32 ok = 0;
  for (u32 i = 0; i < count; i++) {
    struct desc *d = &desc[i];
    i32 rc = d->op == 3 ? copy(d->dom, d->src, d->dst, d->len) : -EINVAL;
    atomic_store(&d->status, rc);
    if (rc == 0) ok++;
  }
  if (own) epoch_exit();
  return ok;
}

// ---- setup, mirroring src/bench/figures/common.mjs ---------------------------------------------------
#define HOT_IOVA 0x100000000ull      // hot src | dst, contiguous (distinct IOTLB entries)
#define COLD_IOVA 0x200000000ull     // cold src | dst (T2: 4 KiB leaves, T3: 2 MiB leaves)
#define TLB_IOVA 0x8000000000ull     // T5/T6: 1 GiB of 4 KiB leaves (aliases of the cold block)
#define MAP_IOVA 0x4000000000ull     // T7
#define BULK_IOVA 0x6000000000ull    // T8
static struct domain *domHot, *domCold4k, *domCold2m, *domTlb, *domMap;

static int setup(void) {
  void *p = mmap(NULL, POOL_BYTES + 2 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return -1;
  pool = (uint8_t *)(((uintptr_t)p + 2 * MiB - 1) & ~(uintptr_t)(2 * MiB - 1));
  // Same order as the harness, so the serials (mixed into the IOTLB index) match.
  domHot = domain_alloc();
  domCold4k = domain_alloc();
  domCold2m = domain_alloc();
  domTlb = domain_alloc();
  domMap = domain_alloc();
  if (domain_map(domHot, HOT_IOVA, HOT_PHYS >> 12, (512u * 1024u) >> 12, 0)) return -2;
  if (domain_map(domCold4k, COLD_IOVA, COLD_PHYS >> 12, (128u * MiB) >> 12, 0)) return -3;
  if (domain_map(domCold2m, COLD_IOVA, COLD_PHYS >> 12, (128u * MiB) >> 12, 1)) return -4;
  for (u32 i = 0; i < 16; i++)
    if (domain_map(domTlb, TLB_IOVA + (u64)i * 64 * MiB, COLD_PHYS >> 12, (64u * MiB) >> 12, 0)) return -5;
  for (size_t i = 0; i < 130u * MiB; i += 64) pool[i] = (uint8_t)(i >> 6); // populate data pages
  return 0;
}

// ---- commands -----------------------------------------------------------------------------------
static u32 sizes[64];
static u32 nsizes;

static void parse_sizes(const char *csv) {
  nsizes = 0;
  while (*csv && nsizes < 64) {
    sizes[nsizes++] = (u32)strtoul(csv, (char **)&csv, 10);
    if (*csv == ',') csv++;
  }
}

// The harness's descriptor generator (common.mjs makeDescs): sizes cycle, offsets advance and
// wrap to 0 when the next descriptor would pass the working set; src and dst at the same offset.
static void gen_desc(u32 i, u32 ws, u32 *cursor, u32 *off, u32 *len) {
  u32 l = sizes[i % nsizes];
  if (*cursor + l > ws) *cursor = 0;
  *off = *cursor;
  *len = l;
  *cursor += l;
}

static void cmd_copy(const char *impl, const char *region, u32 leaf, u32 ws, const char *csv, u32 count, u32 reps) {
  parse_sizes(csv);
  const int hot = strcmp(region, "hot") == 0;
  const u32 phys = hot ? HOT_PHYS : COLD_PHYS;
  const u64 iova = hot ? HOT_IOVA : COLD_IOVA;
  struct domain *d = hot ? domHot : leaf == 21 ? domCold2m : domCold4k;
  u32 cursor = 0;
  u64 bytes = 0;
  double ns;
  if (strcmp(impl, "memcpy") == 0) {
    u32 *offs = malloc(count * sizeof(u32)), *lens = malloc(count * sizeof(u32));
    for (u32 i = 0; i < count; i++) gen_desc(i, ws, &cursor, &offs[i], &lens[i]);
    uint8_t *src = pool + phys, *dst = pool + phys + ws;
    const double t0 = now_ns();
    for (u32 r = 0; r < reps; r++)
      for (u32 i = 0; i < count; i++) memcpy(dst + offs[i], src + offs[i], lens[i]);
    ns = now_ns() - t0;
    for (u32 i = 0; i < count; i++) bytes += lens[i];
    free(offs); free(lens);
  } else {
    struct desc *ds = aligned_alloc(64, ((count * sizeof(struct desc)) + 63) & ~(size_t)63);
    for (u32 i = 0; i < count; i++) {
      u32 off, len;
      gen_desc(i, ws, &cursor, &off, &len);
      ds[i].op = 3; ds[i].dom = d; ds[i].src = iova + off; ds[i].dst = iova + ws + off; ds[i].len = len;
      ds[i].status = 0;
      bytes += len;
    }
    i32 ok = 0;
    const double t0 = now_ns();
    for (u32 r = 0; r < reps; r++) ok += dma_batch(ds, count);
    ns = now_ns() - t0;
    free(ds);
    if ((u32)ok != count * reps) { printf("{\"error\":\"ct copy: %u of %u descriptors failed\"}\n", count * reps - (u32)ok, count * reps); return; }
  }
  printf("{\"ns\":%.0f,\"bytes\":%llu}\n", ns, (unsigned long long)(bytes * reps));
}

// iotlb_bench (iotlb.ts), mode 2, stride 12.
static __attribute__((noinline)) u32 tlb_bench(struct domain *d, u64 iova, u32 span_log2, u32 count) {
  const u32 mask = (1u << span_log2) - 1;
  xlateBegin(d);
  u32 x = 12345, sum = 0;
  for (u32 i = 0; i < count; i++) {
    x = x * 1664525u + 1013904223u;
    const u64 va = iova + ((u64)((x >> 8) & mask) << 12);
    sum += xlate(d, va, 0) + (u32)(uintptr_t)tHost;
  }
  return sum;
}

static void cmd_tlb(u32 span_log2, u32 count) {
  const double t0 = now_ns();
  const u32 sum = tlb_bench(domTlb, TLB_IOVA, span_log2, count);
  const double ns = now_ns() - t0;
  printf("{\"ns\":%.0f,\"ops\":%u,\"check\":%u}\n", ns, count, sum);
}

static void cmd_mapunmap(u32 count) {
  const u32 root = domMap->root;
  u32 fails = 0;
  const double t0 = now_ns();
  for (u32 i = 0; i < count; i++) {
    const u64 va = MAP_IOVA + ((u64)(i & 255) << 12);
    if (x86_map(root, va, (HOT_PHYS >> 12) + (i & 255), 1, 3, 0) != 0) fails++;
    if (x86_unmap(root, va, 1) != 1) fails++;
  }
  const double ns = now_ns() - t0;
  printf("{\"ns\":%.0f,\"ops\":%u,\"fails\":%u}\n", ns, count, fails);
}

static void cmd_bulkmap(u32 npages, u32 calls) {
  const u32 root = domMap->root;
  u32 fails = 0;
  const double t0 = now_ns();
  for (u32 i = 0; i < calls; i++)
    if (x86_map(root, BULK_IOVA + ((u64)(i * npages) << 12), COLD_PHYS >> 12, npages, 3, 0) != 0) fails++;
  const double ns = now_ns() - t0;
  i64 un = 0;
  for (u32 i = 0; i < calls; i++) un += x86_unmap(root, BULK_IOVA + ((u64)(i * npages) << 12), npages);
  if (un != (i64)npages * calls) fails++;
  printf("{\"ns\":%.0f,\"ops\":%llu,\"fails\":%u}\n", ns, (unsigned long long)npages * calls, fails);
}

struct mc { uint8_t *src, *dst; size_t bytes; int reps; double ns; };
static void *mc_run(void *arg) {
  struct mc *m = arg;
  const double t0 = now_ns();
  for (int r = 0; r < m->reps; r++) memcpy(m->dst, m->src, m->bytes);
  m->ns = now_ns() - t0;
  return NULL;
}

static int cmp_d(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

// 1-thread memcpy GB/s (median of 5) and 2-thread aggregate / 1-thread (median of 5 paired).
static void cmd_machine(size_t bytes) {
  uint8_t *buf = malloc(bytes * 4);
  if (!buf) { printf("{\"error\":\"no memory\"}\n"); return; }
  memset(buf, 1, bytes * 4);
  struct mc a = { buf, buf + bytes, bytes, 2, 0 }, b = { buf + 2 * bytes, buf + 3 * bytes, bytes, 2, 0 };
  mc_run(&a); // warm-up
  double one[5], scale[5];
  for (int t = 0; t < 5; t++) {
    mc_run(&a);
    const double g1 = (double)bytes * a.reps / a.ns;
    pthread_t th;
    const double t0 = now_ns();
    pthread_create(&th, NULL, mc_run, &b);
    mc_run(&a);
    pthread_join(th, NULL);
    const double wall = now_ns() - t0;
    const double g2 = 2.0 * (double)bytes * a.reps / wall;
    one[t] = g1;
    scale[t] = g2 / g1;
  }
  qsort(one, 5, sizeof(double), cmp_d);
  qsort(scale, 5, sizeof(double), cmp_d);
  printf("{\"cMemcpyGBs\":%.3f,\"cTwoThreadScaling\":%.3f}\n", one[2], scale[2]);
  free(buf);
}

// T11 / T12's C baseline: each thread copies the generator's descriptors within its own
// region (src | dst, ws bytes each, allocated once per size and touched before any timing),
// <reps> passes. "one": thread A alone; "two": A and B at once, wall time including B's start.
struct sc { uint8_t *buf; const u32 *offs, *lens; u32 count, reps, ws; double ns; };
static void *sc_run(void *arg) {
  struct sc *s = arg;
  const double t0 = now_ns();
  for (u32 r = 0; r < s->reps; r++)
    for (u32 i = 0; i < s->count; i++) memcpy(s->buf + s->ws + s->offs[i], s->buf + s->offs[i], s->lens[i]);
  s->ns = now_ns() - t0;
  return NULL;
}
static uint8_t *sc_buf[2];
static size_t sc_have;

static void cmd_scale(u32 ws, const char *csv, u32 count, u32 reps) {
  parse_sizes(csv);
  const size_t need = ((size_t)ws * 2 + 2 * MiB - 1) & ~(size_t)(2 * MiB - 1);
  if (need > sc_have) {
    for (int t = 0; t < 2; t++) {
      free(sc_buf[t]);
      sc_buf[t] = aligned_alloc(2 * MiB, need);
      if (!sc_buf[t]) { sc_have = 0; printf("{\"error\":\"no memory\"}\n"); return; }
      memset(sc_buf[t], 1, need);
    }
    sc_have = need;
  }
  u32 *offs = malloc(count * sizeof(u32)), *lens = malloc(count * sizeof(u32));
  u32 cursor = 0;
  u64 bytes = 0;
  for (u32 i = 0; i < count; i++) { gen_desc(i, ws, &cursor, &offs[i], &lens[i]); bytes += lens[i]; }
  struct sc a = { sc_buf[0], offs, lens, count, reps, ws, 0 }, b = { sc_buf[1], offs, lens, count, reps, ws, 0 };
  sc_run(&a);
  const double one = a.ns;
  pthread_t th;
  const double t0 = now_ns();
  if (pthread_create(&th, NULL, sc_run, &b) != 0) { free(offs); free(lens); printf("{\"error\":\"pthread_create failed\"}\n"); return; }
  sc_run(&a);
  pthread_join(th, NULL);
  const double two = now_ns() - t0;
  free(offs); free(lens);
  printf("{\"one\":%.0f,\"two\":%.0f,\"bytes\":%llu}\n", one, two, (unsigned long long)(bytes * reps));
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const int rc = setup();
  if (rc != 0) { printf("{\"error\":\"setup failed (%d)\"}\n", rc); return 1; }
  printf("{\"ready\":true}\n");
  char line[1024], a[64], b[64], c[256];
  while (fgets(line, sizeof line, stdin)) {
    unsigned x1, x2, x3, x4;
    unsigned long long big;
    if (sscanf(line, "copy %63s %63s %u %u %255s %u %u", a, b, &x1, &x2, c, &x3, &x4) == 7) cmd_copy(a, b, x1, x2, c, x3, x4);
    else if (sscanf(line, "tlb %u %u", &x1, &x2) == 2) cmd_tlb(x1, x2);
    else if (sscanf(line, "scale %u %255s %u %u", &x1, c, &x2, &x3) == 4) cmd_scale(x1, c, x2, x3);
    else if (sscanf(line, "mapunmap %u", &x1) == 1) cmd_mapunmap(x1);
    else if (sscanf(line, "bulkmap %u %u", &x1, &x2) == 2) cmd_bulkmap(x1, x2);
    else if (sscanf(line, "machine %llu", &big) == 1) cmd_machine((size_t)big);
    else if (strncmp(line, "quit", 4) == 0) break;
    else printf("{\"error\":\"unknown command\"}\n");
  }
  return 0;
}
