// eventfd(2) read/write/poll semantics as in fs/eventfd.c.
import { describe, it, expect } from "vitest";
import { createKernel } from "../src/index.js";
import type { Process } from "../src/kernel/process.js";
import { errno } from "../src/uapi/errno.js";
import {
  EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, F_GETFD, FD_CLOEXEC, POLLERR, POLLIN, POLLNVAL, POLLOUT,
} from "../src/uapi/posix.js";

const MAXV = 0xfffffffffffffffen; // the largest value the counter may hold

async function proc(): Promise<Process> {
  const kernel = await createKernel({ memoryBytes: 64 * 1024 * 1024 });
  return kernel.createProcess();
}

function u64(v: bigint, len = 8): Uint8Array {
  const b = new Uint8Array(len);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
}

function readU64(p: Process, fd: number): bigint | number {
  const b = new Uint8Array(8);
  const rc = p.read(fd, b);
  return rc < 0 ? rc : new DataView(b.buffer).getBigUint64(0, true);
}

describe("eventfd creation", () => {
  it("checks flags and the initial value", async () => {
    const p = await proc();
    expect(p.eventfd(0, 0x2)).toBe(-errno.EINVAL);
    expect(p.eventfd(0, 0x100)).toBe(-errno.EINVAL);
    expect(p.eventfd(-1)).toBe(-errno.EINVAL);
    expect(p.eventfd(2 ** 32)).toBe(-errno.EINVAL);
    const fd = p.eventfd(0xffffffff, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE);
    expect(fd).toBe(0);
    expect(p.fcntl(fd, F_GETFD)).toBe(FD_CLOEXEC);
    expect(p.fcntl(p.eventfd(), F_GETFD)).toBe(0);
  });
});

describe("eventfd read", () => {
  it("returns the counter and resets it", async () => {
    const p = await proc();
    const fd = p.eventfd(7, EFD_NONBLOCK);
    expect(readU64(p, fd)).toBe(7n);
    expect(readU64(p, fd)).toBe(-errno.EAGAIN);
  });

  it("needs at least 8 bytes (EINVAL) and returns 8 from a bigger buffer", async () => {
    const p = await proc();
    const fd = p.eventfd(3, EFD_NONBLOCK);
    expect(p.read(fd, new Uint8Array(7))).toBe(-errno.EINVAL);
    expect(p.read(fd, new Uint8Array(0))).toBe(-errno.EINVAL);
    // The failed reads took nothing.
    const big = new Uint8Array(16).fill(0xff);
    expect(p.read(fd, big)).toBe(8);
    expect(new DataView(big.buffer).getBigUint64(0, true)).toBe(3n);
    expect(big.subarray(8)).toEqual(new Uint8Array(8).fill(0xff));
  });

  it("gives EAGAIN on 0 with EFD_NONBLOCK", async () => {
    const p = await proc();
    const fd = p.eventfd(0, EFD_NONBLOCK);
    expect(p.read(fd, new Uint8Array(8))).toBe(-errno.EAGAIN);
  });

  it("EFD_SEMAPHORE reads 1 at a time", async () => {
    const p = await proc();
    const fd = p.eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    expect(p.write(fd, u64(1n))).toBe(8);
    expect(readU64(p, fd)).toBe(1n);
    expect(readU64(p, fd)).toBe(1n);
    expect(readU64(p, fd)).toBe(1n);
    expect(readU64(p, fd)).toBe(-errno.EAGAIN);
  });

  it("pread/pwrite are not allowed (ESPIPE)", async () => {
    const p = await proc();
    const fd = p.eventfd(1, EFD_NONBLOCK);
    expect(p.pread(fd, new Uint8Array(8), 0)).toBe(-errno.ESPIPE);
    expect(p.pwrite(fd, u64(1n), 0)).toBe(-errno.ESPIPE);
    expect(readU64(p, fd)).toBe(1n);
  });
});

describe("eventfd write", () => {
  it("adds to the counter", async () => {
    const p = await proc();
    const fd = p.eventfd(1, EFD_NONBLOCK);
    expect(p.write(fd, u64(2n))).toBe(8);
    expect(p.write(fd, u64(0n))).toBe(8);
    expect(p.write(fd, u64(0x100000000n, 12))).toBe(8);
    expect(readU64(p, fd)).toBe(0x100000003n);
  });

  it("needs 8 bytes and refuses 0xffffffffffffffff with EINVAL", async () => {
    const p = await proc();
    const fd = p.eventfd(0, EFD_NONBLOCK);
    expect(p.write(fd, new Uint8Array(4))).toBe(-errno.EINVAL);
    expect(p.write(fd, u64(0xffffffffffffffffn))).toBe(-errno.EINVAL);
    expect(readU64(p, fd)).toBe(-errno.EAGAIN);
  });

  it("gives EAGAIN with EFD_NONBLOCK when the counter would pass 0xfffffffffffffffe", async () => {
    const p = await proc();
    const fd = p.eventfd(0, EFD_NONBLOCK);
    expect(p.write(fd, u64(MAXV))).toBe(8);
    expect(p.write(fd, u64(1n))).toBe(-errno.EAGAIN);
    expect(p.write(fd, u64(0n))).toBe(8);
    expect(readU64(p, fd)).toBe(MAXV);
    expect(p.write(fd, u64(MAXV - 5n))).toBe(8);
    expect(p.write(fd, u64(5n))).toBe(8);
    expect(p.write(fd, u64(1n))).toBe(-errno.EAGAIN);
    expect(readU64(p, fd)).toBe(MAXV);
  });
});

describe("eventfd poll", () => {
  it("reports POLLIN when the counter is non-zero and POLLOUT while a write of 1 fits", async () => {
    const p = await proc();
    const fd = p.eventfd(0, EFD_NONBLOCK);
    const fds = [{ fd, events: POLLIN | POLLOUT, revents: -1 }];
    expect(p.poll(fds, 0)).toBe(1);
    expect(fds[0].revents).toBe(POLLOUT);
    expect(p.write(fd, u64(1n))).toBe(8);
    expect(p.poll(fds, 0)).toBe(1);
    expect(fds[0].revents).toBe(POLLIN | POLLOUT);
    expect(p.write(fd, u64(MAXV - 1n))).toBe(8);
    expect(p.poll(fds, 0)).toBe(1);
    expect(fds[0].revents).toBe(POLLIN);
    // Only the events asked for (errors always).
    const onlyOut = [{ fd, events: POLLOUT }];
    expect(p.poll(onlyOut, 0)).toBe(0);
    expect((onlyOut[0] as { revents?: number }).revents).toBe(0);
  });

  it("returns 0 with nothing ready, at once for timeout 0 and after the timeout otherwise", async () => {
    const p = await proc();
    const a = p.eventfd(0, EFD_NONBLOCK);
    const b = p.eventfd(0, EFD_NONBLOCK);
    const fds = [{ fd: a, events: POLLIN, revents: -1 }, { fd: b, events: POLLIN, revents: -1 }];
    const t0 = Date.now();
    expect(p.poll(fds, 0)).toBe(0);
    expect(fds.map((f) => f.revents)).toEqual([0, 0]);
    expect(p.poll(fds, 30)).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(25);
    // One ready: counted once, the other 0.
    expect(p.write(b, u64(4n))).toBe(8);
    expect(p.poll(fds, 1000)).toBe(1);
    expect(fds.map((f) => f.revents)).toEqual([0, POLLIN]);
  });

  it("POLLNVAL for a closed fd, nothing for a negative one", async () => {
    const p = await proc();
    const fd = p.eventfd(0);
    expect(p.close(fd)).toBe(0);
    const fds = [{ fd, events: POLLIN, revents: -1 }, { fd: -1, events: POLLIN, revents: -1 }];
    expect(p.poll(fds, 0)).toBe(1);
    expect(fds[0].revents).toBe(POLLNVAL);
    expect(fds[1].revents).toBe(0);
    expect(POLLERR).toBe(8);
  });

  it("a blocking read returns at once when the counter is set", async () => {
    const p = await proc();
    const fd = p.eventfd(9);
    expect(readU64(p, fd)).toBe(9n);
  });
});
