// What the IOMMU core knows of a device (the kernel's struct device as iommu.c sees it): its
// group, what its IOMMU can do, its reserved IOVA regions, and the DMA-ownership claim that
// iommufd takes at bind. The PCI/VFIO side creates these; iommufd consumes them.

/** The IOMMU hardware behind a device (API.md DeviceConfig.iommu). */
export interface IommuCaps {
  /** 'x86': 4-level table, 4K|2M|1G pages, aperture [0, 2^48-1]; 'mock': the kernel selftest's. */
  readonly format: "x86" | "mock";
  readonly dirtyTracking: boolean;
  /** IOMMU_CAP_CACHE_COHERENCY (false: iommufd bind fails EINVAL). */
  readonly coherent: boolean;
  /** MSI isolation (false: bind fails EPERM unless allow_unsafe_interrupts). */
  readonly msiIsolated: boolean;
  /** The mock IOMMU's 1 MiB huge IO pages (the selftest's MOCK_FLAGS_DEVICE_HUGE_IOVA). */
  readonly hugeIova?: boolean;
}

/** enum iommu_resv_type, the kinds iommufd reserves on attach. */
export type ResvType = "direct" | "direct-relaxable" | "reserved" | "msi" | "sw-msi";

export interface ResvRegion { readonly start: bigint; readonly last: bigint; readonly type: ResvType }

export interface IommuDevice {
  /** Its name (the PCI address). */
  readonly name: string;
  /**
   * A device of the iommufd selftest's mock bus: it does not hold the context's file (it lives
   * inside the context, and would otherwise keep it open forever).
   */
  readonly selftest?: boolean;
  /** The iommu_group number; null for a device without an IOMMU. */
  readonly groupId: number | null;
  readonly caps: IommuCaps;
  readonly reservedRegions: readonly ResvRegion[];
  /**
   * iommu_device_claim_dma_owner(dev, owner): 0, -EPERM (the group has another owner or a
   * kernel DMA-API user), -EBUSY (the group is not on its default domain).
   */
  claimDmaOwner(owner: object): number;
  /** iommu_device_release_dma_owner. */
  releaseDmaOwner(): void;
  /**
   * Publishes the domain the device's DMA is translated through (0: blocked) where other
   * threads read it; the caller then waits out the grace period before freeing the old one.
   */
  publishDomain?(handle: number): void;
  /**
   * The IOMMU driver's part of attaching a domain: one with an IO page fault handler puts the
   * device on its iopf queue (`enable`), and the domain it replaces having had one takes it
   * off again (`disable`), counted over the RID and PASIDs. Only the selftest's mock has it.
   */
  iopfAttach?(enable: boolean, disable: boolean): void;
  /** dev->iommu->max_pasids: the PASIDs the device can issue; 0 (or absent) = no PASID support. */
  readonly maxPasids?: number;
  /**
   * The driver's set_dev_pasid for a device with PASIDs: `iopf` says whether the new domain
   * has an IO page fault handler, null for the blocking domain (detach); `oldIopf` whether
   * the domain it replaces had one. 0 or -errno (nothing changed then).
   */
  setDevPasid?(pasid: number, iopf: boolean | null, oldIopf: boolean): number;
}
