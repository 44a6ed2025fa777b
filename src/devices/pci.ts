// The PCI bus as sysfs shows it: /sys/devices/pci<dom>:<bus>/<bdf>/ with vendor, device and
// class, the bus's device links, the driver binding link and the iommu_group link (the group
// layer adds that one). Every device sits directly below its root bus, so the relative links
// read exactly as API.md gives them (`../../../kernel/iommu_groups/<n>`).

import type { Vfs } from "../kernel/vfs.js";

const BDF = /^([0-9a-f]{4}):([0-9a-f]{2}):([01][0-9a-f])\.([0-7])$/;

export interface PciIds { vendor: number; device: number; classCode: number }

/** The sysfs directory of a device, or throws a TypeError for a malformed PCI address. */
export function pciSysfsDir(bdf: string): string {
  const m = BDF.exec(bdf);
  if (!m) throw new TypeError(`bad PCI address ${JSON.stringify(bdf)}: expected dddd:bb:dd.f in lower-case hex`);
  return `/sys/devices/pci${m[1]}:${m[2]}/${bdf}`;
}

const hex4 = (v: number) => `0x${v.toString(16).padStart(4, "0")}\n`;

export class PciBus {
  constructor(private readonly vfs: Vfs) {
    vfs.mkdirp("/sys/bus/pci/devices");
    vfs.mkdirp("/sys/bus/pci/drivers");
  }

  /** Adds the device's sysfs entries; `driver` is the bound driver's name, or null. */
  add(bdf: string, ids: PciIds, driver: string | null): string {
    const dir = pciSysfsDir(bdf);
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

  remove(bdf: string, driver: string | null): void {
    const dir = pciSysfsDir(bdf);
    if (driver) this.vfs.remove(`/sys/bus/pci/drivers/${driver}/${bdf}`);
    this.vfs.remove(`/sys/bus/pci/devices/${bdf}`);
    this.vfs.remove(dir);
  }
}
