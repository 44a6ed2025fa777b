// The process's fd table and path calls: lowest-free fds, EBADF, EMFILE, ENOENT, stat of
// character devices, realpath/readdir/readlink/readFile, fcntl, and kill.
import { describe, it, expect } from "vitest";
import { createKernel, type Kernel } from "../src/index.js";
import type { KernelCore } from "../src/kernel/kernel.js";
import type { FileOperations } from "../src/kernel/file.js";
import type { Process } from "../src/kernel/process.js";
import { errno } from "../src/uapi/errno.js";
import {
  EFD_NONBLOCK, F_DUPFD, F_GETFD, F_GETFL, F_SETFD, F_SETFL, FD_CLOEXEC, O_APPEND, O_CLOEXEC, O_DIRECTORY,
  O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, S_IFCHR, S_IFDIR, S_IFMT, S_IFREG, makedev, major, minor,
} from "../src/uapi/posix.js";

const MiB = 1024 * 1024;

const testOps: FileOperations = {
  kind: "test",
  ioctl(_f, cmd, arg) { return cmd === 0x1234 ? arg + 1 : -515; },
};

async function setup(): Promise<{ kernel: Kernel; kc: KernelCore; proc: Process }> {
  const kernel = await createKernel({
    memoryBytes: 64 * MiB,
    devices: [
      { bdf: "0000:00:05.0", model: "memcpy" },
      { bdf: "0000:00:04.0", model: "memcpy" },
    ],
  });
  const kc = (kernel as unknown as { kcore: KernelCore }).kcore;
  kc.vfs.addChr("/dev/emu-test", makedev(240, 7), 0o666, (_p, flags, path) =>
    kc.newFile(testOps, flags, null, path, { mode: S_IFCHR | 0o666, rdev: makedev(240, 7), size: 0 }));
  return { kernel, kc, proc: kernel.createProcess() };
}

describe("fd allocation", () => {
  it("hands out the lowest free fd, starting at 0", async () => {
    const { proc } = await setup();
    expect(proc.open("/dev/emu-test")).toBe(0);
    expect(proc.eventfd()).toBe(1);
    expect(proc.memfd_create("m")).toBe(2);
    expect(proc.open("/sys", O_RDONLY)).toBe(3);
    expect(proc.close(1)).toBe(0);
    expect(proc.close(0)).toBe(0);
    expect(proc.open("/dev/emu-test")).toBe(0);
    expect(proc.open("/dev/emu-test")).toBe(1);
    expect(proc.open("/dev/emu-test")).toBe(4);
  });

  it("gives EBADF for bad, closed and negative fds", async () => {
    const { proc } = await setup();
    const fd = proc.eventfd();
    expect(proc.close(fd)).toBe(0);
    const buf = new Uint8Array(8);
    for (const bad of [fd, -1, 5, 1023, 1024, 100000, 0.5]) {
      expect(proc.close(bad)).toBe(-errno.EBADF);
      expect(proc.ioctl(bad, 0x1234, 0)).toBe(-errno.EBADF);
      expect(proc.read(bad, buf)).toBe(-errno.EBADF);
      expect(proc.write(bad, buf)).toBe(-errno.EBADF);
      expect(proc.pread(bad, buf, 0)).toBe(-errno.EBADF);
      expect(proc.fcntl(bad, F_GETFL)).toBe(-errno.EBADF);
      expect(proc.fstat(bad)).toBe(-errno.EBADF);
      expect(proc.ftruncate(bad, 0)).toBe(-errno.EBADF);
      expect(proc.fileRef(bad)).toBe(-errno.EBADF);
    }
    // Closing twice.
    const fd2 = proc.open("/dev/emu-test");
    expect(proc.close(fd2)).toBe(0);
    expect(proc.close(fd2)).toBe(-errno.EBADF);
  });

  it("checks the access mode on read and write (EBADF)", async () => {
    const { proc } = await setup();
    const ro = proc.open("/sys/bus/pci/devices/0000:00:04.0/vendor", O_RDONLY);
    expect(ro).toBeGreaterThanOrEqual(0);
    expect(proc.write(ro, new Uint8Array(1))).toBe(-errno.EBADF);
    const wo = proc.open("/dev/emu-test", O_WRONLY);
    expect(proc.read(wo, new Uint8Array(1))).toBe(-errno.EBADF);
  });

  it("stops at 1024 open fds with EMFILE, before looking the path up", async () => {
    const { kernel, proc } = await setup();
    for (let i = 0; i < 1024; i++) expect(proc.open("/sys", O_RDONLY)).toBe(i);
    expect(kernel.stats().openFiles).toBe(1024);
    expect(proc.open("/sys", O_RDONLY)).toBe(-errno.EMFILE);
    expect(proc.open("/no/such/path")).toBe(-errno.EMFILE);
    expect(proc.eventfd()).toBe(-errno.EMFILE);
    expect(proc.memfd_create("m")).toBe(-errno.EMFILE);
    expect(proc.fcntl(0, F_DUPFD, 0)).toBe(-errno.EMFILE);
    // Nothing leaked by the failed calls.
    expect(kernel.stats().openFiles).toBe(1024);
    expect(proc.close(700)).toBe(0);
    expect(proc.open("/no/such/path")).toBe(-errno.ENOENT);
    expect(proc.eventfd()).toBe(700);
    proc.kill();
    expect(kernel.stats().openFiles).toBe(0);
  });

  it("dup shares the description: it lives until the last fd closes", async () => {
    const { kernel, proc } = await setup();
    const e = proc.eventfd(5);
    const d = proc.fcntl(e, F_DUPFD, 10);
    expect(d).toBe(10);
    expect(kernel.stats().openFiles).toBe(1);
    expect(proc.close(e)).toBe(0);
    const buf = new Uint8Array(8);
    expect(proc.read(d, buf)).toBe(8);
    expect(buf[0]).toBe(5);
    expect(proc.close(d)).toBe(0);
    expect(kernel.stats().openFiles).toBe(0);
  });
});

describe("open", () => {
  it("fails with ENOENT for a missing path and leaves no file behind", async () => {
    const { kernel, proc } = await setup();
    expect(proc.open("/dev/nope")).toBe(-errno.ENOENT);
    expect(proc.open("/nope/deeper/still")).toBe(-errno.ENOENT);
    expect(proc.open("relative/path")).toBe(-errno.ENOENT);
    expect(proc.open("/sys/bus/pci/devices/0000:00:09.0/vendor", O_RDONLY)).toBe(-errno.ENOENT);
    expect(kernel.stats().openFiles).toBe(0);
    // Through a file as if it were a directory.
    expect(proc.open("/dev/emu-test/x")).toBe(-errno.ENOTDIR);
  });

  it("opens directories read-only only, and O_DIRECTORY only on directories", async () => {
    const { proc } = await setup();
    expect(proc.open("/sys/bus", O_RDWR)).toBe(-errno.EISDIR);
    const d = proc.open("/sys/bus", O_RDONLY | O_DIRECTORY);
    expect(d).toBeGreaterThanOrEqual(0);
    expect(proc.read(d, new Uint8Array(4))).toBe(-errno.EISDIR);
    expect(proc.open("/dev/emu-test", O_RDWR | O_DIRECTORY)).toBe(-errno.ENOTDIR);
    // sysfs attributes are 0444.
    expect(proc.open("/sys/bus/pci/devices/0000:00:04.0/vendor", O_RDWR)).toBe(-errno.EACCES);
  });

  it("reads a sysfs attribute through an fd", async () => {
    const { proc } = await setup();
    const fd = proc.open("/sys/bus/pci/devices/0000:00:04.0/vendor", O_RDONLY);
    const buf = new Uint8Array(64);
    expect(proc.read(fd, buf)).toBe(7);
    expect(new TextDecoder().decode(buf.subarray(0, 7))).toBe("0x1b36\n");
    expect(proc.read(fd, buf)).toBe(0);
    expect(proc.pread(fd, buf, 2)).toBe(5);
  });

  it("O_CLOEXEC sets FD_CLOEXEC; F_SETFD changes it", async () => {
    const { proc } = await setup();
    const a = proc.open("/dev/emu-test", O_RDWR | O_CLOEXEC);
    const b = proc.open("/dev/emu-test", O_RDWR);
    expect(proc.fcntl(a, F_GETFD)).toBe(FD_CLOEXEC);
    expect(proc.fcntl(b, F_GETFD)).toBe(0);
    expect(proc.fcntl(b, F_SETFD, FD_CLOEXEC)).toBe(0);
    expect(proc.fcntl(b, F_GETFD)).toBe(FD_CLOEXEC);
    // The flag belongs to the fd: it goes with close.
    expect(proc.close(a)).toBe(0);
    expect(proc.open("/dev/emu-test", O_RDWR)).toBe(a);
    expect(proc.fcntl(a, F_GETFD)).toBe(0);
  });
});

describe("ioctl", () => {
  it("reaches the driver; ENOIOCTLCMD becomes ENOTTY; files without ioctl give ENOTTY", async () => {
    const { proc } = await setup();
    const fd = proc.open("/dev/emu-test");
    expect(proc.ioctl(fd, 0x1234, 41)).toBe(42);
    expect(proc.ioctl(fd, 0x1235, 41)).toBe(-errno.ENOTTY);
    const e = proc.eventfd();
    expect(proc.ioctl(e, 0x1234, 0)).toBe(-errno.ENOTTY);
    expect(proc.ioctl(e, 0x3b64, 0)).toBe(-errno.ENOTTY);
    const m = proc.memfd_create("m");
    expect(proc.ioctl(m, 0x1234, 0)).toBe(-errno.ENOTTY);
    const d = proc.open("/sys", O_RDONLY);
    expect(proc.ioctl(d, 0x1234, 0)).toBe(-errno.ENOTTY);
  });
});

describe("fcntl", () => {
  it("F_GETFL / F_SETFL change only O_NONBLOCK and O_APPEND", async () => {
    const { proc } = await setup();
    const e = proc.eventfd();
    expect(proc.fcntl(e, F_GETFL)).toBe(O_RDWR);
    expect(proc.fcntl(e, F_SETFL, O_NONBLOCK)).toBe(0);
    expect(proc.fcntl(e, F_GETFL)).toBe(O_RDWR | O_NONBLOCK);
    // The access mode cannot be changed.
    expect(proc.fcntl(e, F_SETFL, O_WRONLY)).toBe(0);
    expect(proc.fcntl(e, F_GETFL)).toBe(O_RDWR);
    const n = proc.eventfd(0, EFD_NONBLOCK);
    expect(proc.fcntl(n, F_GETFL)).toBe(O_RDWR | O_NONBLOCK);
    // O_NONBLOCK set by fcntl takes effect on read.
    expect(proc.fcntl(e, F_SETFL, O_NONBLOCK | O_APPEND)).toBe(0);
    expect(proc.fcntl(e, F_GETFL)).toBe(O_RDWR | O_NONBLOCK | O_APPEND);
    expect(proc.read(e, new Uint8Array(8))).toBe(-errno.EAGAIN);
    expect(proc.fcntl(e, 9999)).toBe(-errno.EINVAL);
  });

  it("F_SETFL acts on the description, shared by dup'ed fds", async () => {
    const { proc } = await setup();
    const e = proc.eventfd();
    const d = proc.fcntl(e, F_DUPFD, 0);
    expect(proc.fcntl(d, F_SETFL, O_NONBLOCK)).toBe(0);
    expect(proc.fcntl(e, F_GETFL)).toBe(O_RDWR | O_NONBLOCK);
  });
});

describe("stat and paths", () => {
  it("stat/fstat of a device node give S_IFCHR and its rdev", async () => {
    const { proc } = await setup();
    const st = proc.stat("/dev/emu-test");
    expect(typeof st).toBe("object");
    if (typeof st === "number") return;
    expect(st.mode & S_IFMT).toBe(S_IFCHR);
    expect(st.mode & 0o777).toBe(0o666);
    expect(major(st.rdev)).toBe(240);
    expect(minor(st.rdev)).toBe(7);
    const fd = proc.open("/dev/emu-test");
    const fst = proc.fstat(fd);
    expect(fst).toEqual(st);
    expect(proc.stat("/dev/emu-nope")).toBe(-errno.ENOENT);
    expect((proc.stat("/dev") as { mode: number }).mode & S_IFMT).toBe(S_IFDIR);
    expect((proc.stat("/sys/bus/pci/devices/0000:00:04.0/vendor") as { mode: number }).mode & S_IFMT).toBe(S_IFREG);
    // stat follows links.
    expect((proc.stat("/sys/bus/pci/devices/0000:00:04.0") as { mode: number }).mode & S_IFMT).toBe(S_IFDIR);
  });

  it("realpath resolves links, '.' and '..'", async () => {
    const { proc } = await setup();
    expect(proc.realpath("/sys/bus/pci/devices/0000:00:04.0")).toBe("/sys/devices/pci0000:00/0000:00:04.0");
    expect(proc.realpath("/sys/bus/pci/devices/0000:00:04.0/subsystem")).toBe("/sys/bus/pci");
    expect(proc.realpath("/sys/bus/pci/devices/0000:00:04.0/iommu_group")).toBe("/sys/kernel/iommu_groups/1");
    expect(proc.realpath("/sys/bus/pci/devices/0000:00:04.0/../0000:00:05.0/./vendor"))
      .toBe("/sys/devices/pci0000:00/0000:00:05.0/vendor");
    expect(proc.realpath("/sys/bus/../bus/pci/")).toBe("/sys/bus/pci");
    expect(proc.realpath("/..")).toBe("/");
    expect(proc.realpath("/")).toBe("/");
    expect(proc.realpath("/sys/nope")).toBe(-errno.ENOENT);
    expect(proc.realpath("/sys/bus/pci/devices/0000:00:04.0/vendor/x")).toBe(-errno.ENOTDIR);
  });

  it("readdir lists sorted names without . and ..", async () => {
    const { kernel, proc } = await setup();
    kernel.addDevice({ bdf: "0000:00:01.0", model: "memcpy" });
    expect(proc.readdir("/sys/bus/pci/devices")).toEqual(["0000:00:01.0", "0000:00:04.0", "0000:00:05.0"]);
    expect(proc.readdir("/sys/bus/pci/devices/0000:00:04.0")).toEqual(
      ["class", "device", "driver", "iommu_group", "subsystem", "vendor", "vfio-dev"]);
    expect(proc.readdir("/sys/nope")).toBe(-errno.ENOENT);
    expect(proc.readdir("/sys/bus/pci/devices/0000:00:04.0/vendor")).toBe(-errno.ENOTDIR);
  });

  it("readlink gives a link's target, EINVAL for anything else", async () => {
    const { proc } = await setup();
    expect(proc.readlink("/sys/bus/pci/devices/0000:00:04.0/iommu_group")).toBe("../../../kernel/iommu_groups/1");
    expect(proc.readlink("/sys/bus/pci/devices/0000:00:04.0")).toBe("../../../devices/pci0000:00/0000:00:04.0");
    expect(proc.readlink("/sys/bus/pci/devices/0000:00:04.0/vendor")).toBe(-errno.EINVAL);
    expect(proc.readlink("/sys/bus")).toBe(-errno.EINVAL);
    expect(proc.readlink("/sys/nope")).toBe(-errno.ENOENT);
  });

  it("readFile reads attributes (through links), EISDIR for directories", async () => {
    const { proc } = await setup();
    expect(proc.readFile("/sys/bus/pci/devices/0000:00:05.0/device")).toBe("0x10ec\n");
    expect(proc.readFile("/sys/kernel/iommu_groups/0/devices/0000:00:05.0/vendor")).toBe("0x1b36\n");
    expect(proc.readFile("/sys/bus/pci")).toBe(-errno.EISDIR);
    expect(proc.readFile("/sys/nope")).toBe(-errno.ENOENT);
  });
});

describe("kill", () => {
  it("closes every fd and leaves nothing open", async () => {
    const { kernel, proc } = await setup();
    proc.open("/dev/emu-test");
    proc.eventfd(1);
    proc.memfd_create("m");
    proc.open("/sys", O_RDONLY);
    const d = proc.fcntl(1, F_DUPFD, 50);
    expect(d).toBe(50);
    expect(kernel.stats().openFiles).toBe(4);
    expect(kernel.stats().processes).toBe(1);
    proc.kill();
    expect(kernel.stats().openFiles).toBe(0);
    expect(kernel.stats().processes).toBe(0);
    // A second kill is harmless.
    proc.kill();
    expect(kernel.stats().openFiles).toBe(0);
  });

  it("kernel.close() kills every process", async () => {
    const { kernel } = await setup();
    const a = kernel.createProcess();
    a.eventfd();
    kernel.createProcess().memfd_create("x");
    await kernel.close();
    expect(kernel.stats().openFiles).toBe(0);
    expect(kernel.stats().processes).toBe(0);
    expect(() => kernel.createProcess()).toThrow(/kernel is closed/);
  });
});

describe("out of memory on the caller's side (found by the fuzzer)", () => {
  it("ioctlBuf: no frame for the scratch page gives the copy's EFAULT, issues nothing, and works again after", async () => {
    const { failNth } = await import("../src/testing.js");
    const kernel = await createKernel({ memoryBytes: 16 * 1024 * 1024 });
    const p = kernel.createProcess();
    const fd = p.open("/dev/iommu", 2);
    const alloc = new Uint8Array(12);
    new DataView(alloc.buffer).setUint32(0, 12, true);
    const objects = kernel.stats().iommufdObjects;
    failNth(kernel, 1);
    expect(p.ioctlBuf(fd, 0x3b81, alloc)).toBe(-errno.EFAULT); // IOMMU_IOAS_ALLOC
    failNth(kernel, 0);
    expect(kernel.stats().iommufdObjects).toBe(objects);
    expect(p.ioctlBuf(fd, 0x3b81, alloc)).toBe(0);
    expect(new DataView(alloc.buffer).getUint32(8, true)).toBeGreaterThan(0);
    await kernel.close();
  });

  it("fork: no frame for the child's page table gives ENOMEM and no child", async () => {
    const { failNth } = await import("../src/testing.js");
    const kernel = await createKernel({ memoryBytes: 16 * 1024 * 1024 });
    const p = kernel.createProcess();
    const before = kernel.stats();
    failNth(kernel, 1);
    expect(p.fork()).toBe(-errno.ENOMEM);
    failNth(kernel, 0);
    const after = kernel.stats();
    expect(after.processes).toBe(before.processes);
    expect(after.framesFree).toBe(before.framesFree);
    const child = p.fork();
    expect(typeof child).toBe("object");
    await kernel.close();
  });
});
