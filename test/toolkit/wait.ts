// Waiting in a test for what another thread (a device's engine worker) does.

/** Polls `cond` every millisecond, yielding between polls, for up to `ms`; throws naming `what` on time-out. */
export async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 1));
  }
}
