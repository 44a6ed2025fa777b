// The capabilities VFIO_IOMMU_GET_INFO chains after struct vfio_iommu_type1_info (uapi
// vfio.h): migration, dma-avail and iova-range, each an image of its uapi layout with the
// header's next left 0 for the caller to link. The type1 backend (vfio_iommu_type1.ts) and
// iommufd's VFIO compat layer both report them.

import {
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  vfio_info_cap_header, vfio_iommu_type1_info_cap_iova_range, vfio_iommu_type1_info_cap_migration,
  vfio_iommu_type1_info_dma_avail, vfio_iova_range,
} from "./vfio.js";

const HDR = vfio_info_cap_header.fields;

/** A capability of `bytes` bytes with its header's id and version 1 filled in. */
function capImage(id: number, bytes: number): { cap: Uint8Array; view: DataView } {
  const cap = new Uint8Array(bytes);
  const view = new DataView(cap.buffer);
  view.setUint16(HDR.id.off, id, true);
  view.setUint16(HDR.version.off, 1, true);
  return { cap, view };
}

/** Each capability is padded to 8 bytes so that the next header is aligned. */
export const capPaddedSize = (cap: Uint8Array): number => (cap.length + 7) & ~7;

/** VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION (flags 0). */
export function capMigration(pgsizeBitmap: bigint, maxDirtyBitmapSize: bigint): Uint8Array {
  const L = vfio_iommu_type1_info_cap_migration;
  const { cap, view } = capImage(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, L.size);
  view.setBigUint64(L.fields.pgsize_bitmap.off, pgsizeBitmap, true);
  view.setBigUint64(L.fields.max_dirty_bitmap_size.off, maxDirtyBitmapSize, true);
  return cap;
}

/** VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: sizeof 12, unpadded. */
export function capDmaAvail(avail: number): Uint8Array {
  const L = vfio_iommu_type1_info_dma_avail;
  const { cap, view } = capImage(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, L.size);
  view.setUint32(L.fields.avail.off, avail, true);
  return cap;
}

/** VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: the header, then nr_iovas inclusive ranges. */
export function capIovaRange(ranges: readonly { start: bigint; last: bigint }[]): Uint8Array {
  const L = vfio_iommu_type1_info_cap_iova_range;
  const R = vfio_iova_range;
  const { cap, view } = capImage(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, L.size + R.size * ranges.length);
  view.setUint32(L.fields.nr_iovas.off, ranges.length, true);
  ranges.forEach((r, k) => {
    view.setBigUint64(L.size + R.size * k + R.fields.start.off, r.start, true);
    view.setBigUint64(L.size + R.size * k + R.fields.end.off, r.last, true);
  });
  return cap;
}
