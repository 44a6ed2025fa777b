// uapi struct images for the tests, built through src/uapi's layouts: test/uapi.test.ts pins
// every layout field by field against the kernel headers' offsets, so a builder here names
// fields instead of repeating those offsets.
import { getField, getU64, setField, type StructLayout } from "../../src/uapi/struct.js";

type Init<F extends string> = Partial<Record<F, number | bigint>>;

/**
 * An image of `layout` (`bytes` long, sizeof by default) with `init`'s fields set; its size
 * field (iommufd `size`, VFIO `argsz`) is sizeof unless `init` sets it.
 */
export function structOf<F extends string>(layout: StructLayout<F>, init: Init<F>, bytes = layout.size): Uint8Array {
  const b = new Uint8Array(bytes);
  const v = new DataView(b.buffer);
  const fields = layout.fields as Record<string, StructLayout["fields"][string]>;
  // The size field is the one at offset 0 (vfio_iommu_type1_dma_map has a `size` at 24 too).
  const sizeField = [fields.argsz, fields.size].find((f) => f?.off === 0);
  if (sizeField) setField(v, sizeField, layout.size);
  for (const [f, x] of Object.entries(init) as [F, number | bigint][]) setField(v, layout.fields[f], x);
  return b;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Field `f` of an image of `layout`, as a number. */
export function fieldOf<F extends string>(layout: StructLayout<F>, b: Uint8Array, f: F): number {
  return getField(view(b), layout.fields[f]);
}

/** A u64 field of an image of `layout`, exactly. */
export function u64Of<F extends string>(layout: StructLayout<F>, b: Uint8Array, f: F): bigint {
  return getU64(view(b), layout.fields[f]);
}
