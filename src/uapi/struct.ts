// Byte-exact struct layouts of the kernel's uapi headers (x86_64, little-endian), written once
// and used by the ioctl dispatcher (sizes), the handlers (field access), tracing (field names)
// and the typed layer. A layout names every field with its offset and size exactly as in
// include/uapi/linux/{vfio,iommufd}.h; nothing is derived by padding rules, so a mistake shows
// up as a failing literal in test/uapi.test.ts rather than a silent shift.

export interface Field {
  readonly off: number;
  readonly size: 1 | 2 | 4 | 8;
  readonly signed?: boolean;
}

export interface StructLayout<F extends string = string> {
  readonly name: string;
  /** sizeof(struct) in the baseline kernel. */
  readonly size: number;
  /** offsetofend of the last mandatory field: the iommufd min_size / the VFIO minsz. */
  readonly minSize: number;
  readonly fields: { readonly [K in F]: Field };
}

type FieldSpec = readonly [off: number, size: 1 | 2 | 4 | 8, signed?: "s"];

/**
 * Declares a layout. `last` names the last mandatory field (minSize = its offsetofend);
 * it defaults to the last field declared.
 */
export function defineStruct<F extends string>(
  name: string, size: number, spec: { readonly [K in F]: FieldSpec }, last?: NoInfer<F>,
): StructLayout<F> {
  const fields = {} as { [K in F]: Field };
  let end = 0;
  for (const [k, [off, sz, s]] of Object.entries(spec) as [F, FieldSpec][]) {
    if (off % sz !== 0) throw new Error(`${name}.${k}: offset ${off} not aligned to ${sz}`);
    if (off + sz > size) throw new Error(`${name}.${k}: past sizeof ${size}`);
    fields[k] = Object.freeze(s ? { off, size: sz, signed: true } : { off, size: sz });
    end = Math.max(end, off + sz);
  }
  const minSize = last !== undefined ? spec[last][0] + spec[last][1] : end;
  return Object.freeze({ name, size, minSize, fields: Object.freeze(fields) });
}

/** Reads a field as a number (u64 values above 2^53 lose precision: use getU64 for those). */
export function getField(view: DataView, f: Field): number {
  switch (f.size) {
    case 1: return f.signed ? view.getInt8(f.off) : view.getUint8(f.off);
    case 2: return f.signed ? view.getInt16(f.off, true) : view.getUint16(f.off, true);
    case 4: return f.signed ? view.getInt32(f.off, true) : view.getUint32(f.off, true);
    case 8: return Number(f.signed ? view.getBigInt64(f.off, true) : view.getBigUint64(f.off, true));
  }
}

export function getU64(view: DataView, f: Field): bigint {
  return view.getBigUint64(f.off, true);
}

const U64_END = 1n << 64n;

/** Writes `v` truncated to the field's width (two's complement for negative values). */
export function setField(view: DataView, f: Field, v: number | bigint): void {
  switch (f.size) {
    case 1: view.setUint8(f.off, Number(v) & 0xff); break;
    case 2: view.setUint16(f.off, Number(v) & 0xffff, true); break;
    case 4:
      // A u32 already (ids, flags, sizes): no bigint round trip.
      if (typeof v === "number" && v >= 0 && v <= 0xffffffff && Number.isInteger(v)) view.setUint32(f.off, v, true);
      else view.setUint32(f.off, Number(BigInt.asUintN(32, BigInt(v))), true);
      break;
    case 8:
      if (typeof v === "bigint" && v >= 0n && v < U64_END) view.setBigUint64(f.off, v, true);
      else view.setBigUint64(f.off, BigInt.asUintN(64, BigInt(v)), true);
      break;
  }
}
