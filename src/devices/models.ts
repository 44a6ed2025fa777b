// The emulated device models and their PCI identities. A model's behaviour (regions, DMA
// engine) lives in its own module; this table is what the bus and sysfs need.

import type { MsiModel, MsixModel } from "./msix.js";
import type { PciIds } from "./pci.js";

export const models: Record<string, PciIds> = {
  // A memcpy DMA engine. Red Hat's vendor id, which QEMU uses for its emulated test devices;
  // the device id is vfio-emu's own.
  memcpy: { vendor: 0x1b36, device: 0x10ec, classCode: 0x088000 },
};

export function modelIds(model: string): PciIds {
  const ids = models[model];
  if (!ids) throw new TypeError(`unknown device model ${JSON.stringify(model)} (known: ${Object.keys(models).join(", ")})`);
  return ids;
}

/** BAR0 (the register window) of each model, in bytes. */
export const modelBar0Size: Record<string, number> = {
  memcpy: 4096,
};

/** Each model's capabilities: PCI Express (with power management), MSI, MSI-X (table and PBA in BAR0). */
export const modelIrqs: Record<string, { pcie?: boolean; msi?: MsiModel; msix?: MsixModel }> = {
  memcpy: { pcie: true, msi: { vectors: 8 }, msix: { vectors: 16, tableOffset: 0x800, pbaOffset: 0xc00 } },
};
