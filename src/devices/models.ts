// The emulated device models and their PCI identities. A model's behaviour (regions, DMA
// engine) lives in its own module; this table is what the bus and sysfs need.

import type { MsiModel, MsixModel } from "./msix.js";
import type { PciIds } from "./pci.js";

export const models: Record<string, PciIds> = {
  // A memcpy DMA engine. Red Hat's vendor id, which QEMU uses for its emulated test devices;
  // the device id is vfio-emu's own.
  memcpy: { vendor: 0x1b36, device: 0x10ec, classCode: 0x088000 },
  // The Intel I/OAT (CBDMA v3.2) DMA engine of Skylake-SP, the device the kernel's vfio
  // selftest driver "ioat" drives (src/devices/ioat.ts): class "other system peripheral".
  ioat: { vendor: 0x8086, device: 0x2021, classCode: 0x088000 },
};

/** Models whose BAR0 is a DMA engine's register file (src/devices/ioat.ts), not plain memory. */
export const modelEngine: Record<string, "ioat"> = {
  ioat: "ioat",
};

export function modelIds(model: string): PciIds {
  const ids = models[model];
  if (!ids) throw new TypeError(`unknown device model ${JSON.stringify(model)} (known: ${Object.keys(models).join(", ")})`);
  return ids;
}

/** BAR0 (the register window) of each model, in bytes. */
export const modelBar0Size: Record<string, number> = {
  memcpy: 4096,
  ioat: 4096,
};

/** Each model's capabilities: PCI Express (with power management), MSI, MSI-X (table and PBA in BAR0). */
export const modelIrqs: Record<string, { pcie?: boolean; msi?: MsiModel; msix?: MsixModel }> = {
  memcpy: { pcie: true, msi: { vectors: 8 }, msix: { vectors: 16, tableOffset: 0x800, pbaOffset: 0xc00 } },
  // One channel, one MSI-X vector (the channel's), above the register window.
  ioat: { pcie: true, msix: { vectors: 1, tableOffset: 0x800, pbaOffset: 0xc00 } },
};
