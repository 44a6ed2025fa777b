// eventfd counters in shared memory, so that a device worker can signal an interrupt with an
// atomic add and a notify, never a postMessage. Reads, writes and their overflow rules run on
// the kernel thread (src/kernel/eventfd.ts) with Atomics on the same words.

import { EVENTFD_BASE, EVENTFD_STRIDE, HDR_POLL_SEQ } from "./layout";

const COUNT_MAX: u64 = 0xfffffffffffffffe;

/**
 * Adds 1 to the counter of `slot` unless it would pass 2^64-2 (a signal is then lost, as a
 * kernel eventfd_signal would saturate). Bumps the poll sequence and wakes pollers: the
 * seq-cst add pairs with the load of HDR_POLL_SEQ in the kernel's poll().
 */
export function efd_signal(slot: u32): i32 {
  const at = EVENTFD_BASE + slot * EVENTFD_STRIDE;
  let old = atomic.load<u64>(at);
  while (old < COUNT_MAX) {
    const seen = atomic.cmpxchg<u64>(at, old, old + 1);
    if (seen == old) {
      atomic.add<i32>(HDR_POLL_SEQ, 1);
      atomic.notify(HDR_POLL_SEQ, 0x7fffffff);
      atomic.notify(at, 0x7fffffff);
      return 0;
    }
    old = seen;
  }
  return -11;
}
