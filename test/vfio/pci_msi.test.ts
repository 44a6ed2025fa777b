// MSI and MSI-X through VFIO_DEVICE_SET_IRQS (drivers/vfio/pci/vfio_pci_intrs.c,
// vfio_pci_core.c's GET_IRQ_INFO / SET_IRQS, vfio_main.c's vfio_set_irqs_validate_and_prepare)
// and the function's side (the capabilities, the MSI-X table and PBA, masking and pending
// bits): the memcpy model has MSI with 8 vectors and MSI-X with 16 (table at BAR0 0x800, PBA
// at 0xc00). Exact errnos, exact config and table bytes.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Worker } from "node:worker_threads";
import { MAP_SHARED, PROT_READ, PROT_WRITE, type Kernel, type Process } from "../../src/index.js";
import { IRQ_OFF, IRQ_PENDING, IRQ_SENT, msiRaise, msixRaise } from "../../src/worker.js";
import type { Core } from "../../src/wasm/core.js";
import { bind, boot, errno, openDev, openIommufd, struct, u32, VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_RESET, VFIO_DEVICE_SET_IRQS } from "./util.js";

const CFG = 7 * 2 ** 40;
const NONE = 1 << 0, BOOL = 1 << 1, EVENTFD = 1 << 2, MASK = 1 << 3, UNMASK = 1 << 4, TRIGGER = 1 << 5;
const INTX = 0, MSI = 1, MSIX = 2;
const EFD_NONBLOCK = 0x800;

describe("vfio-pci MSI / MSI-X (memcpy model)", () => {
  let k: Kernel;
  let p: Process;
  let d: number;
  let core: Core;
  let bar: number;

  const setIrqs = (flags: number, index: number, start: number, count: number, data: number[] = [], argsz?: number, elem = 4) => {
    const a = struct(20 + data.length * elem, [[0, 4, argsz ?? 20 + data.length * elem], [4, 4, flags], [8, 4, index], [12, 4, start],
      [16, 4, count], ...data.map((v, j) => [20 + elem * j, elem as 1 | 4, elem === 4 ? v >>> 0 : v] as [number, 1 | 4, number])]);
    return p.ioctlBuf(d, VFIO_DEVICE_SET_IRQS, a);
  };
  const irqInfo = (index: number) => {
    const a = struct(16, [[0, 4, 16], [8, 4, index]]);
    const rc = p.ioctlBuf(d, VFIO_DEVICE_GET_IRQ_INFO, a);
    return rc < 0 ? rc : [u32(a, 4), u32(a, 12)];
  };
  const cfgRead = (off: number, n: 1 | 2 | 4) => {
    const b = new Uint8Array(n);
    expect(p.pread(d, b, CFG + off)).toBe(n);
    return n === 1 ? b[0] : n === 2 ? b[0] | (b[1] << 8) : u32(b, 0);
  };
  const cfgWrite = (off: number, v: number, n: 1 | 2 | 4) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = (v >>> (8 * i)) & 0xff;
    expect(p.pwrite(d, b, CFG + off)).toBe(n);
  };
  const busMaster = (on: boolean) => cfgWrite(4, on ? cfgRead(4, 2) | 4 : cfgRead(4, 2) & ~4, 2);
  const mem32 = (addr: number) => {
    const b = new Uint8Array(4);
    expect(p.readMemory(addr, b)).toBe(0);
    return u32(b, 0);
  };
  const vectorCtrl = (v: number) => mem32(bar + 0x800 + v * 16 + 12);
  const pba = () => mem32(bar + 0xc00);
  const efds = (n: number) => Array.from({ length: n }, () => p.eventfd(0, EFD_NONBLOCK));
  /** The eventfd's count (read clears it), or 0 when it reads EAGAIN. */
  const take = (fd: number) => {
    const b = new Uint8Array(8);
    const rc = p.read(fd, b);
    if (rc === -errno.EAGAIN) return 0;
    expect(rc).toBe(8);
    return Number(new DataView(b.buffer).getBigUint64(0, true));
  };

  beforeEach(async () => {
    k = await boot();
    p = k.createProcess();
    d = openDev(p);
    expect(bind(p, d, openIommufd(p))).toBe(1);
    core = (k as unknown as { kcore: { core: Core } }).kcore.core;
    bar = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
    expect(bar).toBeGreaterThan(0);
  });
  afterEach(async () => { await k.close(); });

  it("GET_IRQ_INFO: MSI count from Multiple Message Capable, MSI-X from the table size, both NORESIZE", () => {
    expect(irqInfo(MSI)).toEqual([1 | 8, 8]);
    expect(irqInfo(MSIX)).toEqual([1 | 8, 16]);
  });

  it("config space: the MSI capability at 0x50 and MSI-X at 0x70; MSI-X read-only to the user", () => {
    expect([cfgRead(0x50, 1), cfgRead(0x51, 1), cfgRead(0x52, 2)]).toEqual([0x05, 0x70, 0x186]); // 64-bit, per-vector mask, 8 vectors
    expect([cfgRead(0x70, 1), cfgRead(0x71, 1), cfgRead(0x72, 2), cfgRead(0x74, 4), cfgRead(0x78, 4)]).toEqual([0x11, 0x80, 15, 0x800, 0xc00]);
    // The MSI-X capability drops writes (vfio-pci gives it no write permission).
    cfgWrite(0x72, 0xc000, 2);
    cfgWrite(0x74, 0, 4);
    expect([cfgRead(0x72, 2), cfgRead(0x74, 4)]).toEqual([15, 0x800]);
    // The vector table starts masked, nothing pending.
    for (let v = 0; v < 16; v++) expect(vectorCtrl(v)).toBe(1);
    expect(pba()).toBe(0);
  });

  it("MSI-X: eventfds enable the mode; software trigger; raise; masked -> pending, sent on bind; disable", () => {
    const fds = efds(6);
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 4, fds.slice(0, 4))).toBe(0);
    expect(cfgRead(0x72, 2)).toBe(0x8000 | 15); // enable, no function mask
    expect([0, 1, 2, 3, 4, 15].map(vectorCtrl)).toEqual([0, 0, 0, 0, 1, 1]);
    for (let v = 0; v < 4; v++) {
      expect(take(fds[v])).toBe(0);
      expect(setIrqs(TRIGGER | NONE, MSIX, v, 1)).toBe(0);
      expect(take(fds[v])).toBe(1);
    }
    // DATA_BOOL fires the vectors whose byte is set.
    expect(setIrqs(TRIGGER | BOOL, MSIX, 1, 3, [1, 0, 1], undefined, 1)).toBe(0);
    expect(fds.slice(0, 4).map(take)).toEqual([0, 1, 0, 1]);
    // A vector past the enabled ones is skipped by the loopback trigger.
    expect(setIrqs(TRIGGER | NONE, MSIX, 0, 16)).toBe(0);
    expect(fds.slice(0, 4).map(take)).toEqual([1, 1, 1, 1]);

    // The device raises: nothing goes out without bus mastering.
    expect(msixRaise(core, 0, 2)).toBe(IRQ_OFF);
    busMaster(true);
    expect(msixRaise(core, 0, 2)).toBe(IRQ_SENT);
    expect(msixRaise(core, 0, 2)).toBe(IRQ_SENT);
    expect(take(fds[2])).toBe(2);
    expect(msixRaise(core, 0, 16)).toBe(-errno.EINVAL);
    // Vector 5 was not allocated: masked, so its pending bit is set.
    expect(msixRaise(core, 0, 5)).toBe(IRQ_PENDING);
    expect(pba()).toBe(1 << 5);
    // Binding it needs the mode re-enabled for 6 vectors (no dynamic MSI-X: EINVAL).
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 5, 1, [fds[5]])).toBe(-errno.EINVAL);
    expect(setIrqs(TRIGGER | NONE, MSIX, 0, 0)).toBe(0); // disable
    expect(cfgRead(0x72, 2)).toBe(15);
    expect(vectorCtrl(0)).toBe(1);
    expect(msixRaise(core, 0, 0)).toBe(IRQ_OFF);
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 6, fds)).toBe(0);
    // Unmasked at bind, vector 5's held message went out.
    expect(pba()).toBe(0);
    expect(fds.map(take)).toEqual([0, 0, 0, 0, 0, 1]);

    // eventfd -1 unbinds one vector: masked again, the loopback skips it, a raise is held.
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 1, 1, [-1])).toBe(0);
    expect([vectorCtrl(0), vectorCtrl(1), vectorCtrl(2)]).toEqual([0, 1, 0]);
    expect(setIrqs(TRIGGER | NONE, MSIX, 0, 3)).toBe(0);
    expect(fds.slice(0, 3).map(take)).toEqual([1, 0, 1]);
    expect(msixRaise(core, 0, 1)).toBe(IRQ_PENDING);
    expect(pba()).toBe(1 << 1);
    // Rebinding (the mode stays enabled: no re-enable) delivers it.
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 1, 1, [fds[1]])).toBe(0);
    expect([pba(), take(fds[1])]).toEqual([0, 1]);
    // Replacing a vector's eventfd: the new one is signalled.
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 3, 1, [fds[0]])).toBe(0);
    expect(msixRaise(core, 0, 3)).toBe(IRQ_SENT);
    expect([take(fds[0]), take(fds[3])]).toEqual([1, 0]);

    // A user who masks through the mmap'd table gets the hardware's behaviour too.
    expect(p.writeMemory(bar + 0x800 + 2 * 16 + 12, new Uint8Array([1]))).toBe(0);
    expect(msixRaise(core, 0, 2)).toBe(IRQ_PENDING);
    expect(pba()).toBe(1 << 2);
    expect(take(fds[2])).toBe(0);
  });

  it("MSI: Multiple Message Enable from the count; per-vector mask through config space; pending sent on unmask", () => {
    const fds = efds(3);
    expect(setIrqs(TRIGGER | EVENTFD, MSI, 0, 3, fds)).toBe(0);
    // 3 vectors: the hardware has MME = 2 (4 allocated) and is enabled; the user's (virtual)
    // flags now offer 4 (msi_qmax) and read disabled until the user writes enable.
    expect(cfgRead(0x52, 2)).toBe(0x184);
    expect(cfgRead(0x60, 4)).toBe(0xf8); // vectors 0-2 unmasked by their binds
    busMaster(true);
    expect([0, 1, 2].map((v) => msiRaise(core, 0, v))).toEqual([IRQ_SENT, IRQ_SENT, IRQ_SENT]);
    expect(fds.map(take)).toEqual([1, 1, 1]);
    expect(msiRaise(core, 0, 3)).toBe(IRQ_PENDING); // allocated, not bound: masked
    expect(msiRaise(core, 0, 4)).toBe(IRQ_OFF); // past the enabled count
    expect(msiRaise(core, 0, 8)).toBe(-errno.EINVAL); // past the capable count
    // The mask bits pass through to the hardware: mask vector 1, raise, unmask.
    cfgWrite(0x60, 0xfa, 4);
    expect(msiRaise(core, 0, 1)).toBe(IRQ_PENDING);
    expect(cfgRead(0x64, 4)).toBe((1 << 1) | (1 << 3));
    expect(take(fds[1])).toBe(0);
    cfgWrite(0x60, 0xf8, 4);
    expect(take(fds[1])).toBe(1);
    expect(cfgRead(0x64, 4)).toBe(1 << 3);
    // The mask register's bits past 8 vectors are reserved; pending bits are read-only.
    cfgWrite(0x60, 0xffffffff, 4);
    cfgWrite(0x64, 0, 4);
    expect([cfgRead(0x60, 4), cfgRead(0x64, 4)]).toEqual([0xff, 1 << 3]);
    cfgWrite(0x60, 0xf8, 4);
    // The user's flags: enable and a queue size up to msi_qmax, mirrored to the hardware.
    cfgWrite(0x52, 0x00b5, 2); // enable, 8 vectors asked: 4 given
    expect(cfgRead(0x52, 2)).toBe(0x1a5);
    expect(msiRaise(core, 0, 0)).toBe(IRQ_SENT);
    cfgWrite(0x52, 0x0084, 2); // enable cleared: the hardware stops sending
    expect(cfgRead(0x52, 2)).toBe(0x184);
    expect(msiRaise(core, 0, 0)).toBe(IRQ_OFF);
    cfgWrite(0x52, 0x00a5, 2);
    expect(msiRaise(core, 0, 0)).toBe(IRQ_SENT);
    expect(take(fds[0])).toBe(2);
    expect(setIrqs(TRIGGER | NONE, MSI, 0, 0)).toBe(0);
    // MSI off through SET_IRQS: a user write cannot set enable.
    cfgWrite(0x52, 0x00a5, 2);
    expect(cfgRead(0x52, 2)).toBe(0x1a4);
    expect(msiRaise(core, 0, 0)).toBe(IRQ_OFF);
  });

  it("SET_IRQS validation: bad index, count, flags, data type, actions, modes in use; nothing changes", () => {
    const [a, b] = efds(2);
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 17, Array(17).fill(a))).toBe(-errno.EINVAL); // start + count > 16
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 16, 0)).toBe(-errno.EINVAL); // start >= 16
    expect(setIrqs(TRIGGER | EVENTFD, MSI, 0, 9, Array(9).fill(a))).toBe(-errno.EINVAL);
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0xffffffff, 1, [a])).toBe(-errno.EINVAL); // count >= U32_MAX - start
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 2, [a, b], 27)).toBe(-errno.EINVAL); // data shorter than count
    expect(setIrqs(TRIGGER | EVENTFD | BOOL, MSIX, 0, 1, [a])).toBe(-errno.EINVAL); // two data types
    expect(setIrqs(TRIGGER | 1 << 6, MSIX, 0, 1)).toBe(-errno.EINVAL); // unknown flag
    expect(setIrqs(TRIGGER | NONE, MSIX, 0, 1)).toBe(-errno.EINVAL); // loopback before enable
    expect(setIrqs(MASK | NONE, MSIX, 0, 1)).toBe(-errno.ENOTTY); // no masking support in vfio-pci
    expect(setIrqs(UNMASK | NONE, MSI, 0, 1)).toBe(-errno.ENOTTY);
    expect(setIrqs(TRIGGER | MASK | NONE, MSIX, 0, 1)).toBe(-errno.ENOTTY); // two actions
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 0)).toBe(-errno.ERANGE); // enable with no vectors
    // A bad fd on a fresh enable: the error, and the mode is off again.
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 2, [a, 999])).toBe(-errno.EBADF);
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 1, [d])).toBe(-errno.EINVAL); // not an eventfd
    expect(cfgRead(0x72, 2)).toBe(15);
    expect(setIrqs(TRIGGER | NONE, MSIX, 0, 1)).toBe(-errno.EINVAL);
    // One mode at a time: MSI-X on, then MSI and INTx refused, and the other way round.
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 1, [a])).toBe(0);
    expect(setIrqs(TRIGGER | EVENTFD, MSI, 0, 1, [b])).toBe(-errno.EINVAL);
    expect(setIrqs(TRIGGER | EVENTFD, INTX, 0, 1, [b])).toBe(-errno.EINVAL);
    expect(setIrqs(TRIGGER | NONE, MSI, 0, 0)).toBe(-errno.EINVAL); // disabling a mode that is off
    expect(setIrqs(TRIGGER | NONE, MSIX, 0, 0)).toBe(0);
    expect(setIrqs(TRIGGER | EVENTFD, INTX, 0, 1, [b])).toBe(0);
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 1, [a])).toBe(-errno.EINVAL);
    expect(cfgRead(0x72, 2)).toBe(15);
  });

  it("a failing block unbinds the vectors from start up to the failing one (vfio_msi_set_block)", () => {
    const fds = efds(4);
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 4, fds)).toBe(0);
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 1, 2, [fds[1], 999])).toBe(-errno.EBADF);
    expect([0, 1, 2, 3].map(vectorCtrl)).toEqual([0, 1, 1, 0]);
    expect(setIrqs(TRIGGER | NONE, MSIX, 0, 4)).toBe(0);
    expect(fds.map(take)).toEqual([1, 0, 0, 1]);
  });

  it("RESET keeps the enabled mode (the host restores it); close disables it and drops the eventfds", () => {
    const fds = efds(2);
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 2, fds)).toBe(0);
    busMaster(true);
    expect(msixRaise(core, 0, 3)).toBe(IRQ_PENDING);
    expect(p.ioctl(d, VFIO_DEVICE_RESET, 0)).toBe(0);
    expect([vectorCtrl(0), vectorCtrl(1), vectorCtrl(2), pba()]).toEqual([0, 0, 1, 0]);
    expect(msixRaise(core, 0, 1)).toBe(IRQ_SENT);
    expect(take(fds[1])).toBe(1);
    expect(p.munmap(bar, 4096)).toBe(0);
    expect(p.close(d)).toBe(0);
    // The device file is gone: the raise finds the mode off.
    expect(msixRaise(core, 0, 1)).toBe(IRQ_OFF);
    // The eventfds were released by the device; closing them is the last reference.
    for (const fd of fds) expect(p.close(fd)).toBe(0);
  });

  it("a device worker raises vectors through msixRaise / msiRaise", async () => {
    const fds = efds(2);
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 2, fds)).toBe(0);
    busMaster(true);
    const results = await new Promise((resolve, reject) => {
      const w = new Worker(new URL("../workers/msix-raise.mjs", import.meta.url), {
        workerData: { init: k.workerInit(), dev: 0, raises: [["msix", 0], ["msix", 1], ["msix", 1], ["msix", 7], ["msix", 99], ["msi", 0]] },
      });
      w.once("message", resolve);
      w.once("error", reject);
    });
    expect(results).toEqual([IRQ_SENT, IRQ_SENT, IRQ_SENT, IRQ_PENDING, -errno.EINVAL, IRQ_OFF]);
    expect(fds.map(take)).toEqual([1, 2]);
    expect(pba()).toBe(1 << 7);
  });

  it("unbinding while a worker raises: once SET_IRQS returns, the old eventfd gets nothing (its slot is reused clean)", async () => {
    busMaster(true);
    const control = new SharedArrayBuffer(8);
    const ctl = new Int32Array(control);
    const w = new Worker(new URL("../workers/msix-hammer.mjs", import.meta.url), { workerData: { init: k.workerInit(), dev: 0, control } });
    const done = new Promise<{ sent: number; calls: number }>((resolve, reject) => { w.once("message", resolve); w.once("error", reject); });
    while (Atomics.load(ctl, 1) === 0) await new Promise((r) => setTimeout(r, 2));
    const first = p.eventfd(0, EFD_NONBLOCK);
    expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 1, [first])).toBe(0);
    let signalled = 0;
    for (let n = 0; n < 200; n++) {
      const e = p.eventfd(0, EFD_NONBLOCK);
      expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 1, [e])).toBe(0);
      for (const end = performance.now() + 0.2; performance.now() < end;) { /* the worker raises meanwhile */ }
      expect(setIrqs(TRIGGER | EVENTFD, MSIX, 0, 1, [-1])).toBe(0);
      // Unbound and past its grace period: nothing more reaches it.
      const seen = take(e);
      expect(take(e)).toBe(0);
      signalled += seen;
      expect(p.close(e)).toBe(0);
      // A new eventfd takes the freed counter slot: it starts at 0.
      const fresh = p.eventfd(0, EFD_NONBLOCK);
      expect(take(fresh)).toBe(0);
      expect(p.close(fresh)).toBe(0);
    }
    Atomics.store(ctl, 0, 1);
    const r = await done;
    expect(r.calls).toBeGreaterThan(0);
    // Each signal is a raise the worker sent, or one held pending while unbound and sent by the
    // next bind's unmask (at most one per bind).
    expect(signalled).toBeLessThanOrEqual(r.sent + 200);
    expect(signalled).toBeGreaterThan(0);
    expect(p.close(first)).toBe(0);
  });

  it("the result codes are the core's", () => {
    expect([IRQ_SENT, IRQ_PENDING, IRQ_OFF]).toEqual([core.consts.IRQ_SENT, core.consts.IRQ_PENDING, core.consts.IRQ_OFF]);
  });
});
