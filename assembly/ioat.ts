// The Intel I/OAT (CBDMA v3.2) channel engine's hot loop: it fetches the chained 64-byte
// descriptors through the IOMMU, copies each one's bytes through the device's domain, writes
// the channel status back to the completion address, and reports which interrupt the channel
// owes. The register file lives in BAR0 (the register model is src/devices/ioat.ts, which
// also owns the register offsets; they are repeated here only as the constants the loop
// reads). Runs in the device's own worker; allocates nothing managed.
//
// Registers the engine writes while users may write the same words from other threads are
// changed with atomic read-modify-writes of the containing u32 (CHANSTS, CHANERR, CHANCTRL's
// re-arm bit, CHANCMD's bits), paired with the register model's atomic stores.

import { DEV_BASE, DEV_STRIDE, DEV_DOMAIN, DEV_CONFIG } from "./layout";
import { copy, copyFaultedOnWrite, xfer, dmaSectionBegin, dmaSectionEnd } from "./dma";

// ---- BAR0 offsets (drivers/dma/ioat/registers.h) -----------------------------------------------
export const IOAT_XFERCAP_OFFSET: u32 = 0x01;
export const IOAT_INTRCTRL_OFFSET: u32 = 0x03;
export const IOAT_ATTNSTATUS_OFFSET: u32 = 0x04;
export const IOAT_CHAN0: u32 = 0x80; // the first channel's registers (IOAT_CHANNEL_MMIO_SIZE)
const CHANCTRL: u32 = IOAT_CHAN0 + 0x00; // u16 (u32 word with DMA_COMP)
const CHANCMD: u32 = IOAT_CHAN0 + 0x04; // u8 (u32 word with DMACOUNT at +2)
const DMACOUNT: u32 = IOAT_CHAN0 + 0x06; // u16
const CHANSTS: u32 = IOAT_CHAN0 + 0x08; // u64
const CHAINADDR: u32 = IOAT_CHAN0 + 0x10; // u64
const CHANCMP: u32 = IOAT_CHAN0 + 0x18; // u64
const CDAR: u32 = IOAT_CHAN0 + 0x20; // u64
const CHANERR: u32 = IOAT_CHAN0 + 0x28; // u32

const INTRCTRL_MASTER_INT_EN: u32 = 0x01;
const INTRCTRL_INT_STATUS: u32 = 0x02;
const INTRCTRL_MSIX_VECTOR_CONTROL: u32 = 0x08;

const CHANCTRL_INT_REARM: u32 = 0x0001;
const CHANCTRL_ERR_COMPLETION_EN: u32 = 0x0004;
const CHANCTRL_ERR_INT_EN: u32 = 0x0010;

export const IOAT_CHANCMD_RESET: u32 = 0x20;
export const IOAT_CHANCMD_RESUME: u32 = 0x10;
export const IOAT_CHANCMD_ABORT: u32 = 0x08;
export const IOAT_CHANCMD_SUSPEND: u32 = 0x04;
export const IOAT_CHANCMD_APPEND: u32 = 0x02;
export const IOAT_CHANCMD_START: u32 = 0x01;

export const IOAT_CHANSTS_ACTIVE: u32 = 0x0;
export const IOAT_CHANSTS_DONE: u32 = 0x1;
export const IOAT_CHANSTS_SUSPENDED: u32 = 0x2;
export const IOAT_CHANSTS_HALTED: u32 = 0x3;
const CHANSTS_STATUS: u32 = 0x7;
const CHANSTS_ADDR_LO: u32 = 0xffffffc0;

export const IOAT_CHANERR_SRC_ADDR_ERR: u32 = 0x0001;
export const IOAT_CHANERR_DEST_ADDR_ERR: u32 = 0x0002;
export const IOAT_CHANERR_NEXT_ADDR_ERR: u32 = 0x0004;
export const IOAT_CHANERR_NEXT_DESC_ALIGN_ERR: u32 = 0x0008;
export const IOAT_CHANERR_CHAIN_ADDR_VALUE_ERR: u32 = 0x0010;
export const IOAT_CHANERR_CONTROL_ERR: u32 = 0x0400;
export const IOAT_CHANERR_LENGTH_ERR: u32 = 0x0800;
export const IOAT_CHANERR_COMPLETION_ADDR_ERR: u32 = 0x1000;

// ---- the descriptor (struct ioat_dma_descriptor, 64 bytes) ---------------------------------
export const IOAT_DESC_SIZE: u32 = 64;
const DESC_LEN: u32 = 0; // u32 size
const DESC_CTL: u32 = 4; // u32 ctl
const DESC_SRC: u32 = 8; // u64
const DESC_DST: u32 = 16; // u64
const DESC_NEXT: u32 = 24; // u64
const CTL_INT_EN: u32 = 1 << 0;
const CTL_COMPL_WRITE: u32 = 1 << 3;
const CTL_NULL: u32 = 1 << 5;
const CTL_OP_SHIFT: u32 = 24;
const IOAT_OP_COPY: u32 = 0x00;

/** The engine's transfer cap: log2 of the largest descriptor size (XFERCAP reads this). */
export const IOAT_XFERCAP_LOG2: u32 = 16;

// ---- the engine's own state: one page per device, outside anything a user maps -----------
//   @0 doorbell sequence (i32: bumped and notified by every DMACOUNT or CHANCMD write; the
//   worker waits on it)  @4 commands posted by CHANCMD writes, not yet carried out (OR-ed in)
//   @8 chain reload: CHAINADDR was written since the engine last started  @12 descriptors
//   completed since the chain started (mod 2^16, compared with DMACOUNT)  @16 next descriptor
//   IOVA (u64)  @24 vfio device index (its domain and config space)  @28 stop request (the
//   worker exits)  @32 1 while the next fetch is the chain's first (CHAINADDR)  @36 IOVA of the
//   last completed descriptor, lo/hi  @64 descriptor fetch buffer (64 bytes)  @128
//   completion write-back buffer (8 bytes)
export const ENG_DOORBELL: u32 = 0;
export const ENG_CMD: u32 = 4;
export const ENG_RELOAD: u32 = 8;
/** ENG_RELOAD bits: CHAINADDR written (the store clears ARMED), then a DMACOUNT write. */
export const RELOAD_CHAIN: u32 = 1;
export const RELOAD_ARMED: u32 = 2;
export const ENG_COUNT: u32 = 12;
export const ENG_NEXT: u32 = 16;
export const ENG_DEV: u32 = 24;
export const ENG_STOP: u32 = 28;
export const ENG_FIRST: u32 = 32;
export const ENG_LAST: u32 = 36;
export const ENG_DESC: u32 = 64;
export const ENG_COMPL: u32 = 128;

// ioat_run results: what the worker does next.
/** Raise the channel's vector (MSI-X vector 0): a descriptor with int_en completed, or an error. */
export const IOAT_RUN_IRQ: u32 = 1;
/** Work is left (the budget ran out, or a command arrived): call again without waiting. */
export const IOAT_RUN_MORE: u32 = 2;
/** Stalled: bus mastering is off; wait with a timeout and try again. */
export const IOAT_RUN_STALLED: u32 = 4;

const PCI_COMMAND: u32 = 4;
const PCI_COMMAND_MASTER: u32 = 0x4;

@inline function status(bar: u32): u32 {
  return atomic.load<u32>(bar + CHANSTS) & CHANSTS_STATUS;
}

@inline function setStatus(bar: u32, addr: u64, st: u32): void {
  // High word first: a reader that sees the new status word sees the address's high half.
  atomic.store<u32>(bar + CHANSTS + 4, <u32>(addr >> 32));
  atomic.store<u32>(bar + CHANSTS, (<u32>addr & CHANSTS_ADDR_LO) | st);
}

@inline function lastAddr(eng: u32): u64 {
  return (<u64>load<u32>(eng + ENG_LAST + 4) << 32) | <u64>load<u32>(eng + ENG_LAST);
}

/** The channel comes out of reset: halted, nothing issued, nothing chained. */
function resetChannel(bar: u32, eng: u32): void {
  atomic.and<u32>(bar + CHANCTRL, 0xffff0000);
  atomic.store<u32>(bar + CHANCMD, 0); // CHANCMD and DMACOUNT read 0
  store<u64>(bar + CHAINADDR, 0);
  store<u64>(bar + CDAR, 0);
  store<u32>(eng + ENG_COUNT, 0);
  store<u64>(eng + ENG_NEXT, 0);
  store<u64>(eng + ENG_LAST, 0);
  atomic.store<u32>(eng + ENG_RELOAD, 0);
  setStatus(bar, 0, IOAT_CHANSTS_HALTED);
}

/** Writes the channel status (u64) to CHANCMP through the IOMMU; false on a fault. */
function writeCompletion(dom: u32, bar: u32, eng: u32): bool {
  const at = load<u64>(bar + CHANCMP);
  store<u32>(eng + ENG_COMPL, atomic.load<u32>(bar + CHANSTS));
  store<u32>(eng + ENG_COMPL + 4, atomic.load<u32>(bar + CHANSTS + 4));
  return xfer(dom, at, eng + ENG_COMPL, 8, true) == 0;
}

/**
 * The channel hits an error: the CHANERR bit, HALTED with the last completed descriptor's
 * address, the completion written if CHANCTRL asks for it, and the error interrupt if enabled.
 */
function halt(dom: u32, bar: u32, eng: u32, err: u32): u32 {
  atomic.or<u32>(bar + CHANERR, err);
  setStatus(bar, lastAddr(eng), IOAT_CHANSTS_HALTED);
  const ctrl = atomic.load<u32>(bar + CHANCTRL);
  if (ctrl & CHANCTRL_ERR_COMPLETION_EN) {
    if (!writeCompletion(dom, bar, eng)) atomic.or<u32>(bar + CHANERR, IOAT_CHANERR_COMPLETION_ADDR_ERR);
  }
  return ctrl & CHANCTRL_ERR_INT_EN ? interrupt(bar, false) : 0;
}

/**
 * The channel's interrupt: MSI-X vector 0 when INTRCTRL allows it; a completion interrupt
 * also needs CHANCTRL's re-arm bit, which it consumes (the driver re-arms by writing CHANCTRL).
 */
function interrupt(bar: u32, completion: bool): u32 {
  const intr = atomic.load<u8>(bar + IOAT_INTRCTRL_OFFSET);
  if (completion) {
    const old = atomic.and<u32>(bar + CHANCTRL, ~CHANCTRL_INT_REARM);
    if (!(old & CHANCTRL_INT_REARM)) return 0;
  }
  atomic.or<u32>(bar + IOAT_ATTNSTATUS_OFFSET, 1);
  if (!(intr & (INTRCTRL_MSIX_VECTOR_CONTROL | INTRCTRL_MASTER_INT_EN))) return 0;
  atomic.or<u32>(bar, INTRCTRL_INT_STATUS << 24);
  return IOAT_RUN_IRQ;
}

/**
 * One pass of channel 0 of the device whose BAR0 is at `bar` and engine state at `eng`: the
 * commands posted since the last pass, then up to `budget` descriptors, from the chain's
 * next descriptor until the completed count reaches DMACOUNT. IOAT_RUN_* flags.
 */
export function ioat_run(bar: u32, eng: u32, budget: u32): u32 {
  let ret: u32 = 0;
  // Paired with the register model's atomic OR of each CHANCMD write.
  const cmd = atomic.xchg<u32>(eng + ENG_CMD, 0);
  if (cmd & IOAT_CHANCMD_RESET) {
    resetChannel(bar, eng);
    // The RESET bit reads back 0 once the reset is done (ioat_reset polls for it).
    atomic.and<u32>(bar + CHANCMD, ~0xff);
    return 0;
  }
  let st = status(bar);
  if (cmd & IOAT_CHANCMD_ABORT) {
    setStatus(bar, lastAddr(eng), IOAT_CHANSTS_HALTED);
    st = IOAT_CHANSTS_HALTED;
  }
  if (cmd & IOAT_CHANCMD_SUSPEND && (st == IOAT_CHANSTS_ACTIVE || st == IOAT_CHANSTS_DONE)) {
    setStatus(bar, lastAddr(eng), IOAT_CHANSTS_SUSPENDED);
    st = IOAT_CHANSTS_SUSPENDED;
  }
  if (cmd & IOAT_CHANCMD_RESUME && st == IOAT_CHANSTS_SUSPENDED) {
    setStatus(bar, lastAddr(eng), IOAT_CHANSTS_DONE);
    st = IOAT_CHANSTS_DONE;
  }
  if (cmd) atomic.and<u32>(bar + CHANCMD, ~0xff);

  // A CHAINADDR write, once a DMACOUNT write arms it, restarts the chain there, from a
  // suspended channel or a halted one whose errors were cleared; otherwise only an ACTIVE or
  // DONE channel takes new work.
  if (atomic.load<u32>(eng + ENG_RELOAD) == (RELOAD_CHAIN | RELOAD_ARMED) && (st != IOAT_CHANSTS_HALTED || atomic.load<u32>(bar + CHANERR) == 0)) {
    atomic.store<u32>(eng + ENG_RELOAD, 0);
    store<u64>(eng + ENG_NEXT, load<u64>(bar + CHAINADDR));
    store<u32>(eng + ENG_COUNT, 0);
    store<u32>(eng + ENG_FIRST, 1);
    // Work to do stays ACTIVE (the doorbell's write already showed it): a DONE here would let
    // a driver polling CHANSTS take the chain for finished before its first descriptor.
    st = (atomic.load<u32>(bar + CHANCMD) >>> 16) != 0 ? IOAT_CHANSTS_ACTIVE : IOAT_CHANSTS_DONE;
    setStatus(bar, lastAddr(eng), st);
  } else if (st == IOAT_CHANSTS_HALTED || st == IOAT_CHANSTS_SUSPENDED) {
    return 0;
  }

  const cfg = load<u32>(DEV_BASE + load<u32>(eng + ENG_DEV) * DEV_STRIDE + DEV_CONFIG);
  const own = dmaSectionBegin();
  // Paired with the atomic stores of attach / detach / replace (publishDomain), each made
  // before its grace period: loaded inside this read section.
  const dom = atomic.load<u32>(DEV_BASE + load<u32>(eng + ENG_DEV) * DEV_STRIDE + DEV_DOMAIN);
  let count = load<u32>(eng + ENG_COUNT);
  let n: u32 = 0;
  while (count != (atomic.load<u32>(bar + CHANCMD) >>> 16)) {
    if (n == budget || atomic.load<u32>(eng + ENG_CMD) != 0) { ret |= IOAT_RUN_MORE; break; }
    if (st != IOAT_CHANSTS_ACTIVE) { st = IOAT_CHANSTS_ACTIVE; setStatus(bar, lastAddr(eng), st); }
    // Bus mastering off: the function issues no memory requests at all (it stays ACTIVE).
    if (cfg == 0 || !(atomic.load<u16>(cfg + PCI_COMMAND) & PCI_COMMAND_MASTER)) { ret |= IOAT_RUN_STALLED; break; }
    const at = load<u64>(eng + ENG_NEXT);
    const first = load<u32>(eng + ENG_FIRST) != 0;
    store<u64>(bar + CDAR, at);
    if (at & <u64>(IOAT_DESC_SIZE - 1)) { ret |= halt(dom, bar, eng, first ? IOAT_CHANERR_CHAIN_ADDR_VALUE_ERR : IOAT_CHANERR_NEXT_DESC_ALIGN_ERR); st = IOAT_CHANSTS_HALTED; break; }
    const d = eng + ENG_DESC;
    if (xfer(dom, at, d, IOAT_DESC_SIZE, false) != 0) {
      ret |= halt(dom, bar, eng, first ? IOAT_CHANERR_CHAIN_ADDR_VALUE_ERR : IOAT_CHANERR_NEXT_ADDR_ERR);
      st = IOAT_CHANSTS_HALTED;
      break;
    }
    const ctl = load<u32>(d + DESC_CTL);
    const len = load<u32>(d + DESC_LEN);
    if ((ctl >>> CTL_OP_SHIFT) != IOAT_OP_COPY) { ret |= halt(dom, bar, eng, IOAT_CHANERR_CONTROL_ERR); st = IOAT_CHANSTS_HALTED; break; }
    if (!(ctl & CTL_NULL)) {
      if (len > (<u32>1 << IOAT_XFERCAP_LOG2)) { ret |= halt(dom, bar, eng, IOAT_CHANERR_LENGTH_ERR); st = IOAT_CHANSTS_HALTED; break; }
      if (copy(dom, load<u64>(d + DESC_SRC), load<u64>(d + DESC_DST), len) != 0) {
        ret |= halt(dom, bar, eng, copyFaultedOnWrite() ? IOAT_CHANERR_DEST_ADDR_ERR : IOAT_CHANERR_SRC_ADDR_ERR);
        st = IOAT_CHANSTS_HALTED;
        break;
      }
    }
    count = (count + 1) & 0xffff;
    store<u32>(eng + ENG_COUNT, count);
    store<u32>(eng + ENG_FIRST, 0);
    store<u64>(eng + ENG_LAST, at);
    store<u64>(eng + ENG_NEXT, load<u64>(d + DESC_NEXT));
    n++;
    if (count == (atomic.load<u32>(bar + CHANCMD) >>> 16)) st = IOAT_CHANSTS_DONE;
    setStatus(bar, at, st);
    if (ctl & CTL_COMPL_WRITE && !writeCompletion(dom, bar, eng)) {
      ret |= halt(dom, bar, eng, IOAT_CHANERR_COMPLETION_ADDR_ERR);
      st = IOAT_CHANSTS_HALTED;
      break;
    }
    if (ctl & CTL_INT_EN) ret |= interrupt(bar, true);
  }
  if (st == IOAT_CHANSTS_ACTIVE && !(ret & (IOAT_RUN_MORE | IOAT_RUN_STALLED))) setStatus(bar, lastAddr(eng), IOAT_CHANSTS_DONE);
  dmaSectionEnd(own);
  return ret;
}
