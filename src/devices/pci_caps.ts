// The power-management and PCI Express capabilities of an emulated function, with vfio-pci's
// permissions over them (vfio_pci_config.c init_pci_cap_pm_perm, init_pci_cap_exp_perm).

import type { PciCapability } from "./pci_config.js";

export const PCI_CAP_ID_PM = 0x01;
export const PCI_CAP_ID_EXP = 0x10;

// Power management (include/uapi/linux/pci_regs.h).
export const PCI_PM_PMC = 2;
export const PCI_PM_CTRL = 4;
export const PCI_PM_CTRL_STATE_MASK = 0x3;
export const PCI_PM_CTRL_NO_SOFT_RESET = 0x8;
export const PCI_PM_SIZEOF = 8;
/** PMC: version 3, D0 and D3hot only, no PME. */
const PMC = 0x0003;

// PCI Express.
export const PCI_EXP_FLAGS = 2;
export const PCI_EXP_DEVCAP = 4;
export const PCI_EXP_DEVCAP_FLR = 0x10000000;
export const PCI_EXP_DEVCTL = 8;
export const PCI_EXP_DEVCTL_PAYLOAD = 0x00e0;
export const PCI_EXP_DEVCTL_PHANTOM = 0x0200;
export const PCI_EXP_DEVCTL_READRQ = 0x7000;
export const PCI_EXP_DEVCTL_BCR_FLR = 0x8000;
export const PCI_EXP_DEVSTA = 10;
export const PCI_EXP_LNKCAP = 12;
export const PCI_EXP_LNKSTA = 18;
export const PCI_EXP_DEVCAP2 = 36;
export const PCI_EXP_DEVCTL2 = 40;
export const PCI_EXP_DEVCTL2_ARI = 0x0020;
/** A v2 endpoint's capability ends here (PCI_CAP_EXP_ENDPOINT_SIZEOF_V2). */
export const PCI_CAP_EXP_ENDPOINT_SIZEOF_V2 = 52;
/** DEVCTL bits the function implements as read-write: error reporting enables, relaxed ordering, extended tags, aux power, no-snoop. */
const DEVCTL_RW = 0x0d1f;
/** DEVCTL2: completion timeout value and disable. */
const DEVCTL2_RW = 0x001f;

/** Power management: D0 and D3hot; the power state is changed by vfio-pci, not by the write. */
export function pmCapability(offset: number): PciCapability {
  return {
    id: PCI_CAP_ID_PM,
    offset,
    init(v, at) {
      v.setUint16(at + PCI_PM_PMC, PMC, true);
      v.setUint16(at + PCI_PM_CTRL, PCI_PM_CTRL_NO_SOFT_RESET, true);
    },
    perms(set) {
      set(PCI_PM_CTRL, 4, 0, ~PCI_PM_CTRL_STATE_MASK >>> 0, 0);
    },
  };
}

/** A PCI Express v2 endpoint with function-level reset, a x1 2.5 GT/s link. */
export function expCapability(offset: number): PciCapability {
  return {
    id: PCI_CAP_ID_EXP,
    offset,
    init(v, at) {
      v.setUint16(at + PCI_EXP_FLAGS, 0x0002, true); // version 2, type endpoint
      v.setUint32(at + PCI_EXP_DEVCAP, PCI_EXP_DEVCAP_FLR, true); // 128-byte payloads, FLR
      v.setUint16(at + PCI_EXP_DEVCTL, 0x2810, true); // relaxed ordering, no-snoop, 512-byte reads
      v.setUint32(at + PCI_EXP_LNKCAP, 0x00000011, true);
      v.setUint16(at + PCI_EXP_LNKSTA, 0x0011, true);
    },
    perms(set) {
      // FLR, MPS and MRRS are virtualized (FLR and MRRS acted on by vfio-pci); phantom
      // functions are never writable; ARI in DEVCTL2 neither.
      set(PCI_EXP_DEVCTL, 2, PCI_EXP_DEVCTL_BCR_FLR | PCI_EXP_DEVCTL_PAYLOAD | PCI_EXP_DEVCTL_READRQ, ~PCI_EXP_DEVCTL_PHANTOM & 0xffff, DEVCTL_RW);
      set(PCI_EXP_DEVCTL2, 2, 0, ~PCI_EXP_DEVCTL2_ARI & 0xffff, DEVCTL2_RW);
    },
  };
}

