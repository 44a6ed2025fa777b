// The typed layer over /dev/iommu (API.md §2): synchronous objects named after the kernel's,
// built on the raw syscalls, throwing VfioError with the reason when the kernel says no.

import { check } from "../errors.js";
import { errno } from "../uapi/errno.js";
import {
  IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_UNMAP, IOMMU_OPTION,
  iommufdIoctlName,
} from "../uapi/ioctl.js";
import {
  IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET, iommu_destroy,
  iommu_ioas_alloc, iommu_ioas_allow_iovas, iommu_ioas_copy, iommu_ioas_iova_ranges,
  iommu_ioas_map, iommu_ioas_map_file, iommu_ioas_unmap, iommu_option,
} from "../uapi/iommufd.js";
import { MAP_ANONYMOUS, MAP_PRIVATE, O_RDWR, PROT_READ, PROT_WRITE } from "../uapi/posix.js";
import { getU64, setField, type StructLayout } from "../uapi/struct.js";
import type { Process } from "../kernel/process.js";

const U64_MAX = (1n << 64n) - 1n;

export interface MapOptions {
  userVa: number | bigint;
  length: number | bigint;
  /** A fixed IOVA; without it the kernel chooses one. */
  iova?: number | bigint;
  readable?: boolean;   // default true
  writeable?: boolean;  // default true
}

export interface MapFileOptions {
  fd: number;
  start?: number | bigint;
  length: number | bigint;
  iova?: number | bigint;
  readable?: boolean;
  writeable?: boolean;
}

export interface IovaRange { start: bigint; last: bigint }

/** Why an iommufd ioctl failed, in the object model's words. */
function why(cmd: number, rc: number, detail: string): string {
  const e = -rc;
  const hints: Record<number, string> = {
    [errno.ENOENT]: "no such object, or no mapping covers the range exactly",
    [errno.EEXIST]: "the IOVA range overlaps an existing mapping",
    [errno.EBUSY]: "the object is still referenced (a device, an HWPT or an access holds it)",
    [errno.EINVAL]: "a value is out of range or misaligned for this IOAS",
    [errno.EOVERFLOW]: "the range wraps past 2^64",
    [errno.ENOSPC]: "no free IOVA hole fits the length",
    [errno.EADDRINUSE]: "the range meets a reserved or allowed range",
    [errno.EOPNOTSUPP]: "unknown flags, option or a non-zero reserved field",
    [errno.EPERM]: "not permitted (write access to read-only pages, or a missing capability)",
    [errno.ENOMEM]: "out of memory or over RLIMIT_MEMLOCK",
    [errno.EFAULT]: "a user pointer is not mapped",
  };
  return `${detail}: ${hints[e] ?? `${iommufdIoctlName(cmd) ?? "ioctl"} failed`}`;
}

/** A struct image with its layout, for building and reading iommufd arguments. */
class Cmd<F extends string> {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  constructor(readonly layout: StructLayout<F>, init: Partial<Record<F, number | bigint>>) {
    this.bytes = new Uint8Array(layout.size);
    this.view = new DataView(this.bytes.buffer);
    this.view.setUint32(0, layout.size, true);
    for (const [k, v] of Object.entries(init) as [F, number | bigint][]) setField(this.view, layout.fields[k], v);
  }
  get(k: F): bigint { return getU64Field(this.view, this.layout, k); }
}

function getU64Field<F extends string>(view: DataView, layout: StructLayout<F>, k: F): bigint {
  const f = layout.fields[k];
  if (f.size === 8) return getU64(view, f);
  return BigInt(f.size === 4 ? view.getUint32(f.off, true) : f.size === 2 ? view.getUint16(f.off, true) : view.getUint8(f.off));
}

export class IommuFd {
  private closed = false;

  private constructor(readonly proc: Process, readonly fd: number) {}

  /** Opens /dev/iommu. */
  static open(proc: Process): IommuFd {
    const fd = check(proc.open("/dev/iommu", O_RDWR), "open", () => "/dev/iommu could not be opened");
    return new IommuFd(proc, fd);
  }

  /** Runs an iommufd ioctl on a struct image; throws a VfioError saying why on failure. */
  ioctl<F extends string>(cmd: number, c: Cmd<F>, detail: () => string): number {
    if (this.closed) throw new Error("IommuFd is closed");
    const rc = this.proc.ioctlBuf(this.fd, cmd, c.bytes);
    return check(rc, "ioctl", () => why(cmd, rc, detail()), iommufdIoctlName(cmd));
  }

  allocIoas(): Ioas {
    const c = new Cmd(iommu_ioas_alloc, {});
    this.ioctl(IOMMU_IOAS_ALLOC, c, () => "allocating an IOAS");
    return new Ioas(this, Number(c.get("out_ioas_id")));
  }

  /** IOMMU_DESTROY of any object id. */
  destroy(id: number): void {
    this.ioctl(IOMMU_DESTROY, new Cmd(iommu_destroy, { id }), () => `destroying object ${id}`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    check(this.proc.close(this.fd), "close", () => `closing iommufd ${this.fd}`);
  }
}

export class Ioas {
  constructor(readonly iommufd: IommuFd, readonly id: number) {}

  private flags(o: { readable?: boolean; writeable?: boolean; iova?: number | bigint }): number {
    return (o.readable === false ? 0 : IOMMU_IOAS_MAP_READABLE) |
      (o.writeable === false ? 0 : IOMMU_IOAS_MAP_WRITEABLE) |
      (o.iova !== undefined ? IOMMU_IOAS_MAP_FIXED_IOVA : 0);
  }

  /** IOMMU_IOAS_MAP: returns the IOVA (the chosen one when none was given). */
  map(o: MapOptions): bigint {
    const c = new Cmd(iommu_ioas_map, {
      flags: this.flags(o), ioas_id: this.id, user_va: o.userVa, length: o.length, iova: o.iova ?? 0,
    });
    this.iommufd.ioctl(IOMMU_IOAS_MAP, c, () =>
      `mapping ${BigInt(o.length)} bytes of VA 0x${BigInt(o.userVa).toString(16)}${o.iova !== undefined ? ` at IOVA 0x${BigInt(o.iova).toString(16)}` : ""} in IOAS ${this.id}`);
    return c.get("iova");
  }

  /** IOMMU_IOAS_MAP_FILE: a memfd range. */
  mapFile(o: MapFileOptions): bigint {
    const c = new Cmd(iommu_ioas_map_file, {
      flags: this.flags(o), ioas_id: this.id, fd: o.fd, start: o.start ?? 0, length: o.length, iova: o.iova ?? 0,
    });
    this.iommufd.ioctl(IOMMU_IOAS_MAP_FILE, c, () => `mapping fd ${o.fd} in IOAS ${this.id}`);
    return c.get("iova");
  }

  /** IOMMU_IOAS_UNMAP: returns the bytes unmapped. */
  unmap(iova: number | bigint, length: number | bigint): bigint {
    const c = new Cmd(iommu_ioas_unmap, { ioas_id: this.id, iova, length });
    this.iommufd.ioctl(IOMMU_IOAS_UNMAP, c, () =>
      `unmapping [0x${BigInt(iova).toString(16)}, +0x${BigInt(length).toString(16)}) in IOAS ${this.id}`);
    return c.get("length");
  }

  unmapAll(): bigint { return this.unmap(0, U64_MAX); }

  /** IOMMU_IOAS_COPY from `src` (another IOAS or this one). */
  copy(src: Ioas, srcIova: number | bigint, length: number | bigint, o: { iova?: number | bigint; readable?: boolean; writeable?: boolean } = {}): bigint {
    const c = new Cmd(iommu_ioas_copy, {
      flags: this.flags(o), dst_ioas_id: this.id, src_ioas_id: src.id, length, dst_iova: o.iova ?? 0, src_iova: srcIova,
    });
    this.iommufd.ioctl(IOMMU_IOAS_COPY, c, () => `copying IOAS ${src.id} @0x${BigInt(srcIova).toString(16)} into IOAS ${this.id}`);
    return c.get("dst_iova");
  }

  /** IOMMU_IOAS_IOVA_RANGES, growing the buffer as the kernel asks. */
  iovaRanges(): { ranges: IovaRange[]; alignment: bigint } {
    const f = this.iommufd;
    let n = 4;
    for (;;) {
      const buf = f.proc.mmap(0, Math.max(4096, n * 16), 3, 0x22, -1, 0);
      try {
        const c = new Cmd(iommu_ioas_iova_ranges, { ioas_id: this.id, num_iovas: n, allowed_iovas: buf });
        const rc = f.proc.ioctlBuf(f.fd, IOMMU_IOAS_IOVA_RANGES, c.bytes);
        const total = Number(c.get("num_iovas"));
        if (rc === -errno.EMSGSIZE) { n = total; continue; }
        check(rc, "ioctl", () => why(IOMMU_IOAS_IOVA_RANGES, rc, `IOVA ranges of IOAS ${this.id}`), "IOMMU_IOAS_IOVA_RANGES");
        const out = new Uint8Array(total * 16);
        f.proc.readMemory(buf, out);
        const dv = new DataView(out.buffer);
        const ranges = Array.from({ length: total }, (_, i) => ({ start: dv.getBigUint64(i * 16, true), last: dv.getBigUint64(i * 16 + 8, true) }));
        return { ranges, alignment: c.get("out_iova_alignment") };
      } finally {
        f.proc.munmap(buf, Math.max(4096, n * 16));
      }
    }
  }

  /** IOMMU_IOAS_ALLOW_IOVAS: replaces the allowed list. */
  allowIovas(ranges: { start: number | bigint; last: number | bigint }[]): void {
    const f = this.iommufd;
    const len = Math.max(4096, ranges.length * 16);
    const buf = f.proc.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    try {
      const bytes = new Uint8Array(ranges.length * 16);
      const dv = new DataView(bytes.buffer);
      ranges.forEach((r, i) => { dv.setBigUint64(i * 16, BigInt(r.start), true); dv.setBigUint64(i * 16 + 8, BigInt(r.last), true); });
      f.proc.writeMemory(buf, bytes);
      f.ioctl(IOMMU_IOAS_ALLOW_IOVAS, new Cmd(iommu_ioas_allow_iovas, { ioas_id: this.id, num_iovas: ranges.length, allowed_iovas: buf }),
        () => `allowing ${ranges.length} IOVA ranges in IOAS ${this.id}`);
    } finally {
      f.proc.munmap(buf, len);
    }
  }

  /** IOMMU_OPTION_HUGE_PAGES of this IOAS. */
  get hugePages(): boolean {
    const c = new Cmd(iommu_option, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: this.id });
    this.iommufd.ioctl(IOMMU_OPTION, c, () => `reading HUGE_PAGES of IOAS ${this.id}`);
    return c.get("val64") === 1n;
  }

  set hugePages(on: boolean) {
    const c = new Cmd(iommu_option, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, object_id: this.id, val64: on ? 1 : 0 });
    this.iommufd.ioctl(IOMMU_OPTION, c, () => `setting HUGE_PAGES=${on ? 1 : 0} on IOAS ${this.id}`);
  }

  destroy(): void { this.iommufd.destroy(this.id); }
}
