// A PCI function's message-signalled interrupts, as the hardware sends them: the device
// raises a vector, the function checks its enable and mask bits (MSI: the capability's flags
// and per-vector mask register in config space; MSI-X: the capability's flags, the vector
// table's Vector Control words and the Pending Bit Array in BAR memory), and an unmasked
// vector's message reaches the host, whose handler signals the eventfd VFIO bound to it.
// A masked vector sets its pending bit instead; unmasking sends what was held.
//
// Runs in any thread (a device worker, or the kernel's for software-driven models); all the
// addresses come from the device's line (layout.ts DEV_*), written before the first grant.

import {
  DEV_BASE, DEV_SLOTS, DEV_STRIDE, DEV_CONFIG, DEV_IRQ_CTX, DEV_MSI_CAP, DEV_MSIX_CAP, DEV_MSIX_TABLE,
  DEV_MSIX_PBA, DEV_MSIX_SIZE,
} from "./layout";
import { efd_signal } from "./eventfd";
import { epoch_enter, epoch_exit, epochActive } from "./epoch";

/** irq_raise results: the message went out (and its eventfd, if one is bound, was signalled). */
export const IRQ_SENT: i32 = 0;
/** The vector (or the whole function) is masked: its pending bit is set. */
export const IRQ_PENDING: i32 = 1;
/** Nothing can be sent: the mode is disabled, bus mastering is off, or no handler is bound. */
export const IRQ_OFF: i32 = 2;

// VFIO's irq indexes for the two modes.
const MSI: u32 = 1;
const MSIX: u32 = 2;
const EINVAL: i32 = -22;

const PCI_COMMAND: u32 = 4;
const PCI_COMMAND_MASTER: u32 = 0x4;
const MSI_FLAGS_ENABLE: u32 = 0x1;
const MSI_FLAGS_64BIT: u32 = 0x80;
const MSI_FLAGS_MASKBIT: u32 = 0x100;
const MSIX_FLAGS_MASKALL: u32 = 0x4000;
const MSIX_FLAGS_ENABLE: u32 = 0x8000;
const MSIX_ENTRY_SIZE: u32 = 16;
const MSIX_ENTRY_VECTOR_CTRL: u32 = 12;

// The vector being handled, resolved by where() (module globals are per instance, so per
// thread: plain scratch).
let capAt: u32 = 0; // the capability (its flags are the upper half of its first word)
let maskAt: u32 = 0; // MSI: the mask register; MSI-X: the entry's Vector Control; 0: no mask
let maskBit: u32 = 0;
let pendAt: u32 = 0; // the word holding the vector's pending bit (0: none)
let pendBit: u32 = 0;

@inline function devLine(dev: u32): u32 { return DEV_BASE + dev * DEV_STRIDE; }

/** The capability's 16-bit flags (Message Control). */
@inline function capFlags(): u32 { return atomic.load<u32>(capAt) >>> 16; }

/** Resolves vector v of mode `index`: 0, or -EINVAL when the function has no such vector. */
function where(dev: u32, index: u32, v: u32): i32 {
  if (dev >= DEV_SLOTS) return EINVAL;
  const line = devLine(dev);
  if (index == MSIX) {
    capAt = load<u32>(line + DEV_MSIX_CAP);
    if (capAt == 0 || v >= load<u32>(line + DEV_MSIX_SIZE)) return EINVAL;
    maskAt = load<u32>(line + DEV_MSIX_TABLE) + v * MSIX_ENTRY_SIZE + MSIX_ENTRY_VECTOR_CTRL;
    maskBit = 1;
    pendAt = load<u32>(line + DEV_MSIX_PBA) + (v >> 5) * 4;
    pendBit = <u32>1 << (v & 31);
    return 0;
  }
  if (index != MSI) return EINVAL;
  capAt = load<u32>(line + DEV_MSI_CAP);
  if (capAt == 0) return EINVAL;
  const flags = capFlags();
  // Multiple Message Capable: 2^field vectors.
  if (v >= (<u32>1 << ((flags >> 1) & 7))) return EINVAL;
  maskBit = <u32>1 << v;
  pendBit = maskBit;
  if (flags & MSI_FLAGS_MASKBIT) {
    maskAt = capAt + (flags & MSI_FLAGS_64BIT ? 16 : 12);
    pendAt = maskAt + 4;
  } else {
    maskAt = 0;
    pendAt = 0;
  }
  return 0;
}

/** The resolved vector can send: the mode enabled (MSI: within the enabled count), bus master on. */
function live(dev: u32, index: u32, v: u32): bool {
  const cfg = load<u32>(devLine(dev) + DEV_CONFIG);
  if (cfg == 0) return false; // released: the config space reads as zeros
  // A message is a memory write: bus mastering off stops it.
  if ((atomic.load<u16>(cfg + PCI_COMMAND) & PCI_COMMAND_MASTER) == 0) return false;
  const flags = capFlags();
  if (index == MSIX) return (flags & MSIX_FLAGS_ENABLE) != 0;
  // Multiple Message Enable: the host allocated 2^field vectors.
  return (flags & MSI_FLAGS_ENABLE) != 0 && v < (<u32>1 << ((flags >> 4) & 7));
}

function masked(index: u32): bool {
  if (index == MSIX && (capFlags() & MSIX_FLAGS_MASKALL) != 0) return true;
  return maskAt != 0 && (atomic.load<u32>(maskAt) & maskBit) != 0;
}

/**
 * Sends vector v's message: the host's handler signals the bound eventfd. The trigger word is
 * read inside a grace-period section, paired with the unbind in src/devices/msix.ts (the word
 * is cleared, a grace period passes, and only then is the eventfd released).
 */
function send(dev: u32, v: u32): i32 {
  const own = !epochActive();
  if (own) epoch_enter();
  const slot = atomic.load<u32>(load<u32>(devLine(dev) + DEV_IRQ_CTX) + v * 4);
  if (slot != 0) efd_signal(slot - 1);
  if (own) epoch_exit();
  return slot != 0 ? IRQ_SENT : IRQ_OFF;
}

/**
 * The device raises vector v of mode `index` (1 MSI, 2 MSI-X): IRQ_SENT, IRQ_PENDING, IRQ_OFF,
 * or -EINVAL for a vector the function does not have.
 */
export function irq_raise(dev: u32, index: u32, v: u32): i32 {
  const r = where(dev, index, v);
  if (r < 0) return r;
  if (!live(dev, index, v)) return IRQ_OFF;
  if (masked(index)) {
    if (pendAt == 0) return IRQ_PENDING;
    // Set the pending bit, then look at the mask again. Paired with irq_unmask, which clears
    // the mask and then takes the bit: with seq-cst atomics one of the two sees both stores,
    // and the one whose fetch-and-clear finds the bit sends the message, exactly once.
    atomic.or<u32>(pendAt, pendBit);
    if (masked(index)) return IRQ_PENDING;
    if ((atomic.and<u32>(pendAt, ~pendBit) & pendBit) == 0) return IRQ_SENT;
  }
  return send(dev, v);
}

/** Sends vector v's held message if it is pending and may now go: 1 if one was sent. */
function flushOne(dev: u32, index: u32, v: u32): i32 {
  if (pendAt == 0 || masked(index) || !live(dev, index, v)) return 0;
  if ((atomic.and<u32>(pendAt, ~pendBit) & pendBit) == 0) return 0;
  send(dev, v);
  return 1;
}

/**
 * Clears vector v's mask bit (what the host's irq startup does when VFIO binds a trigger),
 * then sends the message it held: 1 if one was sent, 0 if none, -EINVAL for no such vector.
 */
export function irq_unmask(dev: u32, index: u32, v: u32): i32 {
  const r = where(dev, index, v);
  if (r < 0) return r;
  if (maskAt != 0) atomic.and<u32>(maskAt, ~maskBit);
  return flushOne(dev, index, v);
}

/** Sets vector v's mask bit (the host's irq shutdown when VFIO unbinds a trigger). */
export function irq_mask(dev: u32, index: u32, v: u32): i32 {
  const r = where(dev, index, v);
  if (r < 0) return r;
  if (maskAt != 0) atomic.or<u32>(maskAt, maskBit);
  return 0;
}

/**
 * After a write that may have unmasked vectors (the MSI mask register through config space,
 * the MSI-X function mask): sends every pending message that may now go; returns how many.
 */
export function irq_flush(dev: u32, index: u32): i32 {
  if (dev >= DEV_SLOTS) return EINVAL;
  const n: u32 = index == MSIX ? load<u32>(devLine(dev) + DEV_MSIX_SIZE) : 32;
  let sent = 0;
  for (let v: u32 = 0; v < n; v++) {
    if (where(dev, index, v) < 0) break;
    sent += flushOne(dev, index, v);
  }
  return sent;
}
