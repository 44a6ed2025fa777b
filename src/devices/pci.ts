// The PCI bus as sysfs shows it: /sys/devices/pci<dom>:<bus>/<bdf>/ with vendor, device and
// class, the bus's device links, the driver binding link and the iommu_group link (the group
// layer adds that one). Every device's directory sits directly below a pci<dom>:<bus> node, so
// the relative links read exactly as API.md gives them (`../../../kernel/iommu_groups/<n>`).
//
// The bus topology the reset paths see: functions on bus 0 sit on the root bus (no bridge above
// them, no hotplug slot: no bus or slot reset); every other bus number is the secondary bus of
// a root port without a hotplug slot, whose secondary bus reset resets every function on it.

import type { Vfs } from "../kernel/vfs.js";

const BDF = /^([0-9a-f]{4}):([0-9a-f]{2}):([01][0-9a-f])\.([0-7])$/;

export interface PciIds { vendor: number; device: number; classCode: number }

/** A PCI address taken apart: pci_domain_nr, bus->number, devfn (device << 3 | function). */
export interface PciAddress { readonly segment: number; readonly bus: number; readonly devfn: number }

/** A function present on the bus (struct pci_dev, as far as the reset paths look at it). */
export interface PciFunction extends PciAddress {
  readonly bdf: string;
  /** iommu_group_get: the function's IOMMU group number, or null. */
  iommuGroup: number | null;
}

/** Parses a PCI address (throws a TypeError for a malformed one). */
function pciAddress(bdf: string): PciAddress {
  const m = BDF.exec(bdf);
  if (!m) throw new TypeError(`bad PCI address ${JSON.stringify(bdf)}: expected dddd:bb:dd.f in lower-case hex`);
  return { segment: parseInt(m[1], 16), bus: parseInt(m[2], 16), devfn: (parseInt(m[3], 16) << 3) | parseInt(m[4], 10) };
}

/** pci_is_root_bus: bus 0 of a segment is its root bus; any other bus is behind a root port. */
export function onRootBus(a: PciAddress): boolean {
  return a.bus === 0;
}

/** The sysfs directory of a device, or throws a TypeError for a malformed PCI address. */
export function pciSysfsDir(bdf: string): string {
  const m = BDF.exec(bdf);
  if (!m) throw new TypeError(`bad PCI address ${JSON.stringify(bdf)}: expected dddd:bb:dd.f in lower-case hex`);
  return `/sys/devices/pci${m[1]}:${m[2]}/${bdf}`;
}

const hex4 = (v: number) => `0x${v.toString(16).padStart(4, "0")}\n`;

export class PciBus {
  /** Present functions in the order they were added (a bus's device list, pci_walk_bus order). */
  private readonly fns = new Map<string, PciFunction>();

  constructor(private readonly vfs: Vfs) {
    vfs.mkdirp("/sys/bus/pci/devices");
    vfs.mkdirp("/sys/bus/pci/drivers");
  }

  /** Adds the device's sysfs entries; `driver` is the bound driver's name, or null. */
  add(bdf: string, ids: PciIds, driver: string | null): string {
    const dir = pciSysfsDir(bdf);
    this.fns.set(bdf, { bdf, ...pciAddress(bdf), iommuGroup: null });
    this.vfs.mkdirp(dir);
    this.vfs.addAttr(`${dir}/vendor`, () => hex4(ids.vendor));
    this.vfs.addAttr(`${dir}/device`, () => hex4(ids.device));
    this.vfs.addAttr(`${dir}/class`, () => `0x${ids.classCode.toString(16).padStart(6, "0")}\n`);
    this.vfs.addLink(`${dir}/subsystem`, "../../../bus/pci");
    this.vfs.addLink(`/sys/bus/pci/devices/${bdf}`, `../../..${dir.slice("/sys".length)}`);
    if (driver) this.bindDriver(bdf, driver);
    return dir;
  }

  bindDriver(bdf: string, driver: string): void {
    const dir = pciSysfsDir(bdf);
    this.vfs.mkdirp(`/sys/bus/pci/drivers/${driver}`);
    this.vfs.addLink(`/sys/bus/pci/drivers/${driver}/${bdf}`, `../../../..${dir.slice("/sys".length)}`);
    this.vfs.addLink(`${dir}/driver`, `../../../bus/pci/drivers/${driver}`);
  }

  /** The function at `bdf`, while it is on the bus. */
  function(bdf: string): PciFunction | undefined {
    return this.fns.get(bdf);
  }

  /**
   * pci_probe_reset_bus + pci_walk_bus for the function at `bdf`: null when its bus cannot be
   * reset (the root bus), else every function on that bus (its own included), in bus order.
   */
  resetBusFunctions(bdf: string): PciFunction[] | null {
    const f = this.fns.get(bdf);
    if (!f || onRootBus(f)) return null;
    return [...this.fns.values()].filter((g) => g.segment === f.segment && g.bus === f.bus);
  }

  remove(bdf: string, driver: string | null): void {
    this.fns.delete(bdf);
    const dir = pciSysfsDir(bdf);
    if (driver) this.vfs.remove(`/sys/bus/pci/drivers/${driver}/${bdf}`);
    this.vfs.remove(`/sys/bus/pci/devices/${bdf}`);
    this.vfs.remove(dir);
  }
}
