// Port of tools/testing/selftests/vfio/vfio_pci_device_test.c (fixtures vfio_pci_device_test
// and vfio_pci_irq_test with its msi and msix variants), in every IOMMU mode the selftest
// library opens a device with (lib/iommu.c): legacy type1 / type1v2, iommufd's compat
// container with either type, and native iommufd (cdev). The selftest's SKIPs do not apply:
// the memcpy model has MSI (8), MSI-X (16) and a reset. The kernel test asserts success only;
// these assert the exact results too.

import { describe, expect, it } from "vitest";
import { MAP_SHARED, O_NONBLOCK, O_RDWR, PROT_READ, PROT_WRITE, type Kernel, type Process } from "../../src/index.js";
import {
  attach, bind, boot, errno, ioasAlloc, openIommufd, struct, u32, u64, VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_RESET, VFIO_DEVICE_SET_IRQS,
} from "./util.js";
import { legacyOpen, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU } from "./legacy_util.js";

const BDF = "0000:00:04.0";
const MODES = ["vfio_type1_iommu", "vfio_type1v2_iommu", "iommufd_compat_type1", "iommufd_compat_type1v2", "iommufd"] as const;
type Mode = (typeof MODES)[number];
const CFG = 7 * 2 ** 40;
const PCI_COMMAND = 0x04, PCI_COMMAND_MASTER = 0x4;
const MSI = 1, MSIX = 2;
const MAX_TEST_MSI = 16;
const F_GETFL = 3, F_SETFL = 4;

interface Device { k: Kernel; p: Process; d: number; flags: number }

/** vfio_pci_device_init(bdf, mode): the mode's open sequence, then GET_INFO. */
async function init(mode: Mode): Promise<Device> {
  const k = await boot([{ bdf: BDF, model: "memcpy" }]);
  const p = k.createProcess();
  let d: number;
  if (mode === "iommufd") {
    const i = openIommufd(p);
    const entries = p.readdir(`/sys/bus/pci/devices/${BDF}/vfio-dev`) as string[];
    d = p.open(`/dev/vfio/devices/${entries[0]}`, O_RDWR);
    const ioas = ioasAlloc(p, i);
    expect(bind(p, d, i)).toBe(2);
    expect(attach(p, d, ioas)).toBe(3);
  } else {
    const group = Number((p.readlink(`/sys/bus/pci/devices/${BDF}/iommu_group`) as string).split("/").pop());
    const type = mode.endsWith("v2") ? VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU;
    d = legacyOpen(p, mode.startsWith("iommufd_compat") ? "/dev/iommu" : "/dev/vfio/vfio", group, BDF, type).d;
  }
  const info = struct(24, [[0, 4, 24]]);
  expect(p.ioctlBuf(d, VFIO_DEVICE_GET_INFO, info)).toBe(0);
  return { k, p, d, flags: u32(info, 4) };
}

const readw = (x: Device, off: number) => {
  const b = new Uint8Array(2);
  expect(x.p.pread(x.d, b, CFG + off)).toBe(2);
  return b[0] | (b[1] << 8);
};
const writew = (x: Device, off: number, v: number) => expect(x.p.pwrite(x.d, new Uint8Array([v & 0xff, v >> 8]), CFG + off)).toBe(2);
const sysfsId = (x: Device, file: string) => Number.parseInt(x.p.readFile(`/sys/bus/pci/devices/${BDF}/${file}`) as string, 16);

const setIrqs = (x: Device, flags: number, index: number, start: number, count: number, fds: number[] = []) =>
  x.p.ioctlBuf(x.d, VFIO_DEVICE_SET_IRQS, struct(20 + 4 * fds.length, [[0, 4, 20 + 4 * fds.length], [4, 4, flags], [8, 4, index],
    [12, 4, start], [16, 4, count], ...fds.map((f, j) => [20 + 4 * j, 4, f] as [number, 4, number])]));

for (const mode of MODES) {
  describe(`vfio_pci_device_test (${mode})`, () => {
    it(`vfio_pci_device_test.config_space_read_write (${mode})`, async () => {
      const x = await init(mode);
      const vendor = sysfsId(x, "vendor"), device = sysfsId(x, "device");
      expect([readw(x, 0), readw(x, 2)]).toEqual([vendor, device]);
      let command = readw(x, PCI_COMMAND);
      expect(command & PCI_COMMAND_MASTER).toBe(0);
      writew(x, PCI_COMMAND, command | PCI_COMMAND_MASTER);
      command = readw(x, PCI_COMMAND);
      expect(command & PCI_COMMAND_MASTER).toBe(PCI_COMMAND_MASTER);
      writew(x, PCI_COMMAND, command & ~PCI_COMMAND_MASTER);
      command = readw(x, PCI_COMMAND);
      expect(command & PCI_COMMAND_MASTER).toBe(0);
      expect(command).toBe(0x0002); // memory decoding, as pci_enable_device left it
      await x.k.close();
    });

    it(`vfio_pci_device_test.validate_bars (${mode})`, async () => {
      const x = await init(mode);
      const mapped: number[] = [];
      for (let i = 0; i < 6; i++) {
        const r = struct(32, [[0, 4, 32], [8, 4, i]]);
        expect(x.p.ioctlBuf(x.d, VFIO_DEVICE_GET_REGION_INFO, r)).toBe(0);
        const flags = u32(r, 4), size = Number(u64(r, 16));
        // vfio_pci_device_init maps every BAR that supports mmap.
        if (!(flags & 4)) { expect([flags, size]).toEqual([0, 0]); continue; }
        const prot = (flags & 1 ? PROT_READ : 0) | (flags & 2 ? PROT_WRITE : 0);
        const va = x.p.mmap(0, size, prot, MAP_SHARED, x.d, Number(u64(r, 24)));
        expect(va).toBeGreaterThan(0);
        expect(size).not.toBe(0);
        mapped.push(i);
      }
      expect(mapped).toEqual([0]);
      await x.k.close();
    });

    for (const [variant, index] of [["msi", MSI], ["msix", MSIX]] as const) {
      it(`vfio_pci_irq_test.enable_trigger_disable (${variant}, ${mode})`, async () => {
        const x = await init(mode);
        const info = struct(16, [[0, 4, 16], [8, 4, index]]);
        expect(x.p.ioctlBuf(x.d, VFIO_DEVICE_GET_IRQ_INFO, info)).toBe(0);
        const count = Math.min(u32(info, 12), MAX_TEST_MSI);
        expect(count).toBe(index === MSI ? 8 : 16);
        // vfio_pci_irq_enable: an eventfd per vector, one SET_IRQS for the block.
        const fds = Array.from({ length: count }, () => x.p.eventfd(0, 0));
        expect(setIrqs(x, (1 << 5) | (1 << 2), index, 0, count, fds)).toBe(0);
        const value = new Uint8Array(8);
        for (let i = 0; i < count; i++) {
          expect(x.p.fcntl(fds[i], F_SETFL, x.p.fcntl(fds[i], F_GETFL) | O_NONBLOCK)).toBe(0);
          expect(x.p.read(fds[i], value)).toBe(-errno.EAGAIN);
          // vfio_pci_irq_trigger: DATA_NONE | ACTION_TRIGGER on vector i.
          expect(setIrqs(x, (1 << 5) | 1, index, i, 1)).toBe(0);
          expect(x.p.read(fds[i], value)).toBe(8);
          expect(new DataView(value.buffer).getBigUint64(0, true)).toBe(1n);
        }
        // vfio_pci_irq_disable.
        expect(setIrqs(x, (1 << 5) | 1, index, 0, 0)).toBe(0);
        expect(setIrqs(x, (1 << 5) | 1, index, 0, 1)).toBe(-errno.EINVAL); // nothing left to trigger
        await x.k.close();
      });
    }

    it(`vfio_pci_device_test.reset (${mode})`, async () => {
      const x = await init(mode);
      expect(x.flags & 1).toBe(1); // VFIO_DEVICE_FLAGS_RESET
      expect(x.p.ioctl(x.d, VFIO_DEVICE_RESET, 0)).toBe(0);
      await x.k.close();
    });
  });
}
