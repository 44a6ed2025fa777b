// The ioctl dispatchers (src/iommufd/main.ts, src/kernel/ioctl.ts) at every edge of both argument models
// (SPEC.md §3.0), through a synthetic device node: an iommufd-model table with one op and a
// VFIO-model op reached through the table's fallback.
import { describe, it, expect, beforeEach } from "vitest";
import { createKernel } from "../src/index.js";
import type { KernelCore } from "../src/kernel/kernel.js";
import type { FileOperations } from "../src/kernel/file.js";
import type { Process } from "../src/kernel/process.js";
import { vfioCopyIn, copyStructFromUser, checkZeroedUser } from "../src/kernel/ioctl.js";
import { IommufdIoctlTable, type IommufdCtx, type UCmd } from "../src/iommufd/main.js";
import { defineStruct } from "../src/uapi/struct.js";
import { ENOIOCTLCMD, errno } from "../src/uapi/errno.js";
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE, S_IFCHR, makedev } from "../src/uapi/posix.js";

const PAGE = 4096;
const RW = PROT_READ | PROT_WRITE;

// iommufd model: sizeof 24, min_size 16 (offsetofend of `a`).
const CMD_L = defineStruct("emu_cmd", 24, { size: [0, 4], flags: [4, 4], a: [8, 8], b: [16, 8] }, "a");
const CMD_A = (0x3b << 8) | 0x90; // _IO(';', 0x90): the table holds nr 0x80..0x92
const CMD_C = (0x3b << 8) | 0x92;
// VFIO model: sizeof 16, minsz 12 (offsetofend of `index`).
const VFIO_L = defineStruct("emu_vfio", 16, { argsz: [0, 4], flags: [4, 4], index: [8, 4], count: [12, 4] }, "index");
const VFIO_CMD = (0x3b << 8) | 0x70;

interface Seen { image: Uint8Array; userSize: number }

let seen: Seen[] = [];
let vfioSeen: Uint8Array[] = [];
let fallbackCmds: number[] = [];

function handlerA(_ctx: IommufdCtx, u: UCmd): number {
  seen.push({ image: u.cmd.slice(), userSize: u.userSize });
  // Fill in the output: b = a + 1, flags |= 0x100.
  const a = u.view.getBigUint64(8, true);
  u.view.setBigUint64(16, a + 1n, true);
  u.view.setUint32(4, u.view.getUint32(4, true) | 0x100, true);
  return u.respond();
}

const table = new IommufdIoctlTable(0x80, [
  { cmd: CMD_A, name: "EMU_A", layout: CMD_L, handler: handlerA },
  { cmd: CMD_C, name: "EMU_C", layout: CMD_L, handler: () => 7 },
], (_ctx, proc, c, a) => {
  fallbackCmds.push(c);
  return c === VFIO_CMD ? vfioOp(proc, a) : -ENOIOCTLCMD;
});
// The synthetic node has no iommufd context: its handlers take none.
const NO_CTX = null as unknown as IommufdCtx;

function vfioOp(proc: Process, arg: number): number {
  const r = vfioCopyIn(proc, arg, VFIO_L);
  if (typeof r === "number") return r;
  vfioSeen.push(r.bytes.slice());
  // Output: count = 5 in the image, written back as minsz bytes only... and count separately
  // when argsz covers it (the handler's own choice, as VFIO handlers do).
  r.view.setUint32(4, 0xabcd, true);
  r.view.setUint32(12, 5, true);
  const n = r.argsz >= VFIO_L.size ? VFIO_L.size : VFIO_L.minSize;
  return proc.mm.copyToUser(arg, r.bytes.subarray(0, n));
}

const ops: FileOperations = {
  kind: "emu-dispatch",
  ioctl(file, cmd, arg, proc) {
    return table.dispatch(NO_CTX, proc, file, cmd, arg);
  },
};

async function setup(): Promise<{ p: Process; fd: number; buf: number }> {
  const kernel = await createKernel({ memoryBytes: 64 * 1024 * 1024 });
  const kc = (kernel as unknown as { kcore: KernelCore }).kcore;
  kc.vfs.addChr("/dev/emu-dispatch", makedev(241, 0), 0o666, (_p, flags, path) =>
    kc.newFile(ops, flags, null, path, { mode: S_IFCHR | 0o666, rdev: makedev(241, 0), size: 0 }));
  const p = kernel.createProcess();
  const fd = p.open("/dev/emu-dispatch");
  expect(fd).toBe(0);
  // Two pages mapped, the third not: [buf, buf + 2 pages) then a hole.
  const buf = p.mmap(0x40000000, 3 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  expect(buf).toBe(0x40000000);
  expect(p.munmap(buf + 2 * PAGE, PAGE)).toBe(0);
  return { p, fd, buf };
}

/** A struct image: size, flags, a, b, then `extra` bytes. */
function cmd(size: number, opts: { flags?: number; a?: bigint; b?: bigint; extra?: number[] } = {}): Uint8Array {
  const out = new Uint8Array(24 + (opts.extra?.length ?? 0));
  const v = new DataView(out.buffer);
  v.setUint32(0, size, true);
  v.setUint32(4, opts.flags ?? 0, true);
  v.setBigUint64(8, opts.a ?? 0n, true);
  v.setBigUint64(16, opts.b ?? 0n, true);
  out.set(opts.extra ?? [], 24);
  return out;
}

function mem(p: Process, addr: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  expect(p.readMemory(addr, out)).toBe(0);
  return out;
}

const u64At = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getBigUint64(off, true);
const u32At = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off, true);

beforeEach(() => {
  seen = [];
  vfioSeen = [];
  fallbackCmds = [];
});

describe("iommufd size model", () => {
  it("size = min_size - 1 -> EINVAL, the handler is not called", async () => {
    const { p, fd, buf } = await setup();
    expect(p.writeMemory(buf, cmd(15, { a: 1n }))).toBe(0);
    expect(p.ioctl(fd, CMD_A, buf)).toBe(-errno.EINVAL);
    expect(p.writeMemory(buf, cmd(0))).toBe(0);
    expect(p.ioctl(fd, CMD_A, buf)).toBe(-errno.EINVAL);
    expect(seen.length).toBe(0);
  });

  it("size = min_size: the tail is zero-extended and only min(size, sizeof) bytes go back", async () => {
    const { p, fd, buf } = await setup();
    // Garbage where `b` would be: the kernel must not read it.
    expect(p.writeMemory(buf, cmd(16, { flags: 1, a: 41n, b: 0x1111111111111111n, extra: [0xee] }))).toBe(0);
    expect(p.ioctl(fd, CMD_A, buf)).toBe(0);
    expect(seen.length).toBe(1);
    expect(seen[0].userSize).toBe(16);
    expect(seen[0].image.length).toBe(24);
    expect(u64At(seen[0].image, 8)).toBe(41n);
    expect(u64At(seen[0].image, 16)).toBe(0n);
    const back = mem(p, buf, 25);
    expect(u32At(back, 4)).toBe(0x101);
    // b was computed (42) but lies past size: user memory keeps its bytes.
    expect(u64At(back, 16)).toBe(0x1111111111111111n);
    expect(back[24]).toBe(0xee);
  });

  it("size = sizeof: everything is read and written back", async () => {
    const { p, fd, buf } = await setup();
    expect(p.writeMemory(buf, cmd(24, { a: 9n, b: 5n, extra: [0xee] }))).toBe(0);
    expect(p.ioctl(fd, CMD_A, buf)).toBe(0);
    expect(u64At(seen[0].image, 16)).toBe(5n);
    const back = mem(p, buf, 25);
    expect(u64At(back, 16)).toBe(10n);
    expect(back[24]).toBe(0xee);
  });

  it("size = sizeof + 1 with a zero tail is accepted; sizeof bytes go back", async () => {
    const { p, fd, buf } = await setup();
    expect(p.writeMemory(buf, cmd(25, { a: 1n, extra: [0, 0xee] }))).toBe(0);
    expect(p.ioctl(fd, CMD_A, buf)).toBe(0);
    expect(seen[0].userSize).toBe(25);
    expect(seen[0].image.length).toBe(24);
    const back = mem(p, buf, 26);
    expect(u64At(back, 16)).toBe(2n);
    expect(back[24]).toBe(0);
    expect(back[25]).toBe(0xee);
  });

  it("size = sizeof + 1 with a non-zero tail -> E2BIG, also far into the tail", async () => {
    const { p, fd, buf } = await setup();
    expect(p.writeMemory(buf, cmd(25, { a: 1n, extra: [1] }))).toBe(0);
    expect(p.ioctl(fd, CMD_A, buf)).toBe(-errno.E2BIG);
    // A long zero tail crossing a page, non-zero at its last byte.
    expect(p.writeMemory(buf, cmd(PAGE + 100, { a: 1n, extra: [0] }))).toBe(0);
    expect(p.writeMemory(buf + PAGE + 99, new Uint8Array([3]))).toBe(0);
    expect(p.ioctl(fd, CMD_A, buf)).toBe(-errno.E2BIG);
    expect(p.writeMemory(buf + PAGE + 99, new Uint8Array([0]))).toBe(0);
    expect(p.ioctl(fd, CMD_A, buf)).toBe(0);
    expect(seen.length).toBe(1);
  });

  it("a tail running into unmapped memory -> EFAULT; E2BIG when a non-zero byte comes first", async () => {
    const { p, fd, buf } = await setup();
    expect(p.writeMemory(buf, cmd(2 * PAGE + 1))).toBe(0);
    expect(p.ioctl(fd, CMD_A, buf)).toBe(-errno.EFAULT);
    expect(p.writeMemory(buf + 2 * PAGE - 1, new Uint8Array([1]))).toBe(0);
    expect(p.ioctl(fd, CMD_A, buf)).toBe(-errno.E2BIG);
    expect(seen.length).toBe(0);
  });

  it("an unreadable argument -> EFAULT (before the command is matched)", async () => {
    const { p, fd, buf } = await setup();
    expect(p.ioctl(fd, CMD_A, buf + 2 * PAGE)).toBe(-errno.EFAULT);
    expect(p.ioctl(fd, CMD_A, 0)).toBe(-errno.EFAULT);
    expect(p.ioctl(fd, CMD_A, 0x1000)).toBe(-errno.EFAULT);
    expect(p.ioctl(fd, CMD_A, 2n ** 63n)).toBe(-errno.EFAULT);
    expect(p.ioctl(fd, CMD_A, -1)).toBe(-errno.EFAULT);
    // The size readable, the struct not: the size field sits 8 bytes before the hole.
    expect(p.writeMemory(buf + 2 * PAGE - 8, new Uint8Array([24, 0, 0, 0]))).toBe(0);
    expect(p.ioctl(fd, CMD_A, buf + 2 * PAGE - 8)).toBe(-errno.EFAULT);
    // Wrong direction bits and an unreadable pointer: EFAULT comes first, as in iommufd.
    expect(p.ioctl(fd, CMD_A | 0xc0180000, buf + 2 * PAGE)).toBe(-errno.EFAULT);
    expect(seen.length).toBe(0);
  });

  it("a response that cannot be written -> EFAULT", async () => {
    const { p, fd, buf } = await setup();
    // The struct straddles a writable page (size, flags) and a read-only one (a, b: zero):
    // it can be read, but the response cannot be written.
    expect(p.mmap(buf + PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)).toBe(buf + PAGE);
    const at = buf + PAGE - 8;
    expect(p.writeMemory(at, cmd(24).subarray(0, 8))).toBe(0);
    expect(p.ioctl(fd, CMD_A, at)).toBe(-errno.EFAULT);
    // The handler ran; nothing was written back (all or nothing).
    expect(seen.length).toBe(1);
    expect(mem(p, at, 8)).toEqual(cmd(24).subarray(0, 8));
  });

  it("the same nr with direction or size bits -> ENOTTY", async () => {
    const { p, fd, buf } = await setup();
    expect(p.writeMemory(buf, cmd(24, { a: 1n }))).toBe(0);
    const IOWR = (3 << 30) >>> 0;
    expect(p.ioctl(fd, (CMD_A | IOWR | (24 << 16)) >>> 0, buf)).toBe(-errno.ENOTTY);
    expect(p.ioctl(fd, (CMD_A | (24 << 16)) >>> 0, buf)).toBe(-errno.ENOTTY);
    expect(p.ioctl(fd, (CMD_A | (1 << 30)) >>> 0, buf)).toBe(-errno.ENOTTY);
    // Another type byte with the same nr.
    expect(p.ioctl(fd, (0x3c << 8) | 0x90, buf)).toBe(-errno.ENOTTY);
    // A hole in the table.
    expect(p.ioctl(fd, (0x3b << 8) | 0x91, buf)).toBe(-errno.ENOTTY);
    expect(seen.length).toBe(0);
    expect(fallbackCmds).toEqual([]);
    expect(p.ioctl(fd, CMD_A, buf)).toBe(0);
    expect(p.ioctl(fd, CMD_C, buf)).toBe(7);
  });

  it("numbers outside the table go to the fallback", async () => {
    const { p, fd, buf } = await setup();
    expect(p.ioctl(fd, (0x3b << 8) | 0x93, buf)).toBe(-errno.ENOTTY);
    expect(p.ioctl(fd, (0x3b << 8) | 0x7f, buf)).toBe(-errno.ENOTTY);
    // Not even the pointer is read on that path.
    expect(p.ioctl(fd, (0x3b << 8) | 0x93, 0)).toBe(-errno.ENOTTY);
    expect(fallbackCmds).toEqual([0x3b93, 0x3b7f, 0x3b93]);
  });

  it("works through ioctlBuf, which copies the response back into the caller's bytes", async () => {
    const { p, fd } = await setup();
    const arg = cmd(24, { a: 99n });
    expect(p.ioctlBuf(fd, CMD_A, arg)).toBe(0);
    expect(u64At(arg, 16)).toBe(100n);
    expect(u32At(arg, 4)).toBe(0x100);
    const short = cmd(15);
    expect(p.ioctlBuf(fd, CMD_A, short)).toBe(-errno.EINVAL);
    const e2big = cmd(25, { extra: [1] });
    expect(p.ioctlBuf(fd, CMD_A, e2big)).toBe(-errno.E2BIG);
    // Bytes past the buffer read as zeroes, whatever earlier calls left in the scratch area
    // (the 1 at offset 24 above): a size past the buffer sees a zero tail...
    const past = cmd(32, { a: 5n });
    expect(p.ioctlBuf(fd, CMD_A, past)).toBe(0);
    expect(u64At(past, 16)).toBe(6n);
    // ...up to the end of the scratch area, where the zero check runs off the mapping.
    const huge = cmd(0x200000);
    expect(p.ioctlBuf(fd, CMD_A, huge)).toBe(-errno.EFAULT);
  });
});

describe("VFIO argsz model", () => {
  function vcmd(argsz: number, tail: number[] = []): Uint8Array {
    const out = new Uint8Array(16 + tail.length);
    const v = new DataView(out.buffer);
    v.setUint32(0, argsz, true);
    v.setUint32(8, 3, true); // index
    v.setUint32(12, 0x77777777, true); // count: past minsz, never read
    out.set(tail, 16);
    return out;
  }

  it("argsz < minsz -> EINVAL", async () => {
    const { p, fd, buf } = await setup();
    expect(p.writeMemory(buf, vcmd(11))).toBe(0);
    expect(p.ioctl(fd, VFIO_CMD, buf)).toBe(-errno.EINVAL);
    expect(p.writeMemory(buf, vcmd(0))).toBe(0);
    expect(p.ioctl(fd, VFIO_CMD, buf)).toBe(-errno.EINVAL);
    expect(vfioSeen.length).toBe(0);
    expect(fallbackCmds).toEqual([VFIO_CMD, VFIO_CMD]);
  });

  it("copies exactly minsz bytes: trailing bytes are ignored, never checked", async () => {
    const { p, fd, buf } = await setup();
    expect(p.writeMemory(buf, vcmd(12, [1, 2, 3]))).toBe(0);
    expect(p.ioctl(fd, VFIO_CMD, buf)).toBe(0);
    expect(vfioSeen.length).toBe(1);
    expect(u32At(vfioSeen[0], 8)).toBe(3);
    expect(u32At(vfioSeen[0], 12)).toBe(0); // not copied
    // minsz bytes written back: count stays.
    const back = mem(p, buf, 16);
    expect(u32At(back, 4)).toBe(0xabcd);
    expect(u32At(back, 12)).toBe(0x77777777);
    // Memory ending right after minsz: nothing past it is read.
    const at = buf + 2 * PAGE - 12;
    expect(p.writeMemory(at, vcmd(12).subarray(0, 12))).toBe(0);
    expect(p.ioctl(fd, VFIO_CMD, at)).toBe(0);
    // A huge argsz with garbage after the struct: never checked.
    expect(p.writeMemory(buf, vcmd(0xffffffff, [0xff, 0xff]))).toBe(0);
    expect(p.ioctl(fd, VFIO_CMD, buf)).toBe(0);
    // argsz covering sizeof: the handler writes count too.
    expect(u32At(mem(p, buf, 16), 12)).toBe(5);
  });

  it("an unreadable argument -> EFAULT", async () => {
    const { p, fd, buf } = await setup();
    expect(p.ioctl(fd, VFIO_CMD, buf + 2 * PAGE)).toBe(-errno.EFAULT);
    expect(p.ioctl(fd, VFIO_CMD, buf + 2 * PAGE - 8)).toBe(-errno.EFAULT);
    expect(p.ioctl(fd, VFIO_CMD, 0)).toBe(-errno.EFAULT);
    expect(vfioSeen.length).toBe(0);
  });
});

describe("copy helpers", () => {
  it("copyStructFromUser and checkZeroedUser follow copy_struct_from_user", async () => {
    const { p, buf } = await setup();
    expect(p.writeMemory(buf, new Uint8Array([1, 2, 3, 4, 0, 0, 0, 0, 9]))).toBe(0);
    const short = copyStructFromUser(p, buf, 8, 4);
    expect(short).toEqual(new Uint8Array([1, 2, 3, 4, 0, 0, 0, 0]));
    expect(copyStructFromUser(p, buf, 4, 8)).toEqual(new Uint8Array([1, 2, 3, 4]));
    expect(copyStructFromUser(p, buf, 4, 9)).toBe(-errno.E2BIG);
    expect(copyStructFromUser(p, buf + 2 * PAGE - 2, 4, 4)).toBe(-errno.EFAULT);
    expect(checkZeroedUser(p, buf + 4, 4)).toBe(1);
    expect(checkZeroedUser(p, buf + 4, 5)).toBe(0);
    expect(checkZeroedUser(p, buf + 100, 2 * PAGE)).toBe(-errno.EFAULT);
    expect(checkZeroedUser(p, buf + 100, 0)).toBe(1);
  });
});
