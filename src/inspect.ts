// A read-only view of one kernel's objects, for the browser page (web/): each process's open
// files with their gate words, the iommufd objects (IOAS areas, HWPTs, devices), the legacy
// containers' type1 mappings, and the IO page tables walked in shared memory. It changes
// nothing and is not part of the public API (no export from "."): it reads the object model
// the way a kernel debugger would, so it follows that model's internals.

import type { Kernel } from "./index.js";
import type { Process } from "./kernel/process.js";
import type { KernelCore } from "./kernel/kernel.js";
import type { File } from "./kernel/file.js";
import type { Iommufd, IommufdCtx } from "./iommufd/main.js";
import { Ioas } from "./iommufd/ioas.js";
import { HwptPaging } from "./iommufd/hw_pagetable.js";
import { IommufdDevice } from "./iommufd/device.js";
import type { IommuDomain } from "./iommu/domain.js";
import type { Vfio, VfioDeviceFile } from "./vfio/vfio_main.js";
import type { VfioGroup } from "./vfio/group.js";
import type { VfioContainer } from "./vfio/container.js";

/** One leaf run of an IO page table: consecutive leaves of one size, contiguous and alike. */
export interface LeafRun {
  iova: bigint;
  phys: number;
  /** Leaf size in bytes (4 KiB, 2 MiB, 1 GiB). */
  size: number;
  count: number;
  read: boolean;
  write: boolean;
  dirty: boolean;
  accessed: boolean;
}

export interface PageTableView {
  handle: number;
  format: "x86" | "mock";
  /** Table frames the domain holds (its root included) and 4 KiB pages mapped. */
  tables: number;
  mappedPages: number;
  /** Present entries per level of the walk, top level first (x86: PML4, PDPT, PD, PT). */
  levels: { name: string; tables: number; entries: number }[];
  runs: LeafRun[];
}

export interface AreaView { start: bigint; last: bigint; read: boolean; write: boolean; pinnedBy: string }

export interface IommufdObjectView { id: number; type: string; users: number; detail: string }

export interface FileView {
  pid: number;
  fd: number;
  path: string;
  kind: string;
  /** The gate word (byte 0 access_granted, bits 8-31 the generation) and what it means. */
  gateSlot: number;
  gateWord: number;
  granted: boolean;
  /** In the words of the object model: "blocked", "bound devid 2, attached to hwpt 3", ... */
  state: string;
}

export interface IoasView { ctxFd: string; id: number; areas: AreaView[]; hwpts: number[]; domains: PageTableView[] }

export interface ContainerView {
  fd: string;
  type: string;
  groups: number[];
  dmas: { iova: bigint; size: bigint; vaddr: bigint; read: boolean; write: boolean }[];
  domains: PageTableView[];
}

export interface KernelView {
  files: FileView[];
  objects: { ctxFd: string; list: IommufdObjectView[] }[];
  ioas: IoasView[];
  containers: ContainerView[];
  stats: Record<string, number>;
}

/** What the public Kernel hides and a view needs (the Machine's fields, src/devices/machine.ts). */
interface KernelInternals { kcore: KernelCore; iommufd: Iommufd; vfio: Vfio }

const X86_LEVELS = ["PML4", "PDPT", "PD", "PT"];

/** Walks an x86 IO page table in shared memory: present entries per level and the leaf runs. */
function walkX86(kcore: KernelCore, handle: number): PageTableView {
  const core = kcore.core;
  const x = core.x;
  const u32 = core.u32;
  const P = core.consts.X86_P, PS = core.consts.X86_PS, R = core.consts.X86_R, W = core.consts.X86_W;
  const D = core.consts.X86_D, A = core.consts.X86_A;
  const levels = X86_LEVELS.map((name) => ({ name, tables: 0, entries: 0 }));
  const runs: LeafRun[] = [];
  const leaf = (iova: bigint, e: number, size: number) => {
    const phys = (e & 0xfffff000) >>> 0;
    const r = (e & R) !== 0, w = (e & W) !== 0, d = (e & D) !== 0, a = (e & A) !== 0;
    const prev = runs.at(-1);
    if (prev && prev.size === size && prev.read === r && prev.write === w && prev.dirty === d &&
      prev.accessed === a && prev.iova + BigInt(prev.count * size) === iova && prev.phys + prev.count * size === phys) {
      prev.count++;
    } else {
      runs.push({ iova, phys, size, count: 1, read: r, write: w, dirty: d, accessed: a });
    }
  };
  const table = (frame: number, level: number, base: bigint) => {
    levels[level].tables++;
    const at = (x.frame_addr(frame) >>> 0) >>> 2;
    const shift = 39 - 9 * level;
    for (let i = 0; i < 512; i++) {
      const e = u32[at + 2 * i] >>> 0;
      if ((e & P) === 0) continue;
      levels[level].entries++;
      const iova = base + (BigInt(i) << BigInt(shift));
      if (level === 3 || (level > 0 && (e & PS) !== 0)) leaf(iova, e, 2 ** shift);
      else table(e >>> 12, level + 1, iova);
    }
  };
  const dom = handle;
  table(u32[(dom + core.consts.DOM_ROOT) >>> 2], 0, 0n);
  return {
    handle, format: "x86", tables: x.domain_tables(handle) >>> 0, mappedPages: x.domain_mapped_pages(handle) >>> 0,
    levels, runs,
  };
}

function pageTable(kcore: KernelCore, d: IommuDomain): PageTableView {
  if (d.format === "x86") return walkX86(kcore, d.handle);
  // The selftest's mock format: counted, not drawn (the page only makes x86 domains).
  const x = kcore.core.x;
  return { handle: d.handle, format: "mock", tables: x.domain_tables(d.handle) >>> 0, mappedPages: x.domain_mapped_pages(d.handle) >>> 0, levels: [], runs: [] };
}

function vfioDeviceState(vfio: Vfio, f: File): string {
  const df = f.priv as VfioDeviceFile;
  const dev = df.device;
  if (!vfio.granted(f)) return df.group ? "opening" : "blocked: no BIND yet (every op but BIND is -EINVAL)";
  if (df.group) {
    const c = df.group.container;
    return c ? `open through group ${df.group.id}, DMA through its container` : `open through group ${df.group.id}`;
  }
  const idev = dev.iommufdDevice;
  const pt = idev ? idev.ptId : 0;
  return `bound: devid ${df.devid}` + (pt ? `, attached to HWPT ${pt}` : ", not attached (blocking domain: DMA faults)");
}

function groupState(g: VfioGroup): string {
  if (g.container) return `in a container${g.container.iommu ? " with a type1 IOMMU" : " (no IOMMU set yet)"}`;
  if (g.iommufd) return "in an iommufd";
  return "viable, no container";
}

/** A view of `kernel` now: cheap enough to take a few times a second. */
export function inspectKernel(kernel: Kernel, procs?: Iterable<Process>): KernelView {
  const k = kernel as unknown as KernelInternals;
  const kcore = k.kcore;
  const x = kcore.core.x;
  const files: FileView[] = [];
  const ctxName = new Map<IommufdCtx, string>();
  const containerName = new Map<VfioContainer, string>();
  for (const p of procs ?? kcore.processes) {
    for (let fd = 0; fd < 1024; fd++) {
      const f = p.file(fd);
      if (!f) continue;
      const kind = f.ops.kind;
      let state = "open";
      if (kind === "vfio-device") state = vfioDeviceState(k.vfio, f);
      else if (kind === "iommufd") {
        const ctx = f.priv as IommufdCtx;
        if (!ctxName.has(ctx)) ctxName.set(ctx, `pid ${p.pid} fd ${fd}`);
        state = `${ctx.objects.size} object${ctx.objects.size === 1 ? "" : "s"}`;
      } else if (kind === "vfio-group") state = groupState(f.priv as VfioGroup);
      else if (kind === "vfio-container") {
        const c = f.priv as VfioContainer;
        if (!containerName.has(c)) containerName.set(c, `pid ${p.pid} fd ${fd}`);
        state = c.iommu ? "type1 IOMMU set" : c.groups.length ? "groups joined, no IOMMU yet" : "empty";
      }
      const word = x.gate_word(f.gateSlot) >>> 0;
      files.push({ pid: p.pid, fd, path: f.path, kind, gateSlot: f.gateSlot, gateWord: word, granted: (word & 0xff) === 1, state });
    }
  }

  const objects: KernelView["objects"] = [];
  const ioas: IoasView[] = [];
  for (const ctx of k.iommufd.contexts) {
    const name = ctxName.get(ctx) ?? "iommufd";
    const list: IommufdObjectView[] = [];
    for (const o of ctx.objects.all()) {
      let detail = "";
      if (o instanceof Ioas) {
        detail = `${o.iopt.areas.length} area${o.iopt.areas.length === 1 ? "" : "s"}`;
        const hwpts = ctx.objects.all().filter((h): h is HwptPaging => h instanceof HwptPaging && h.ioas === o);
        ioas.push({
          ctxFd: name, id: o.id,
          areas: o.iopt.areas.map((a) => ({
            start: a.start, last: a.last, read: a.prot.read, write: a.prot.write,
            pinnedBy: a.pages ? `${a.pages.npages} pages` : "being mapped",
          })),
          hwpts: hwpts.map((h) => h.id),
          domains: hwpts.map((h) => pageTable(kcore, h.domain)),
        });
      } else if (o instanceof HwptPaging) detail = `IOAS ${o.ioas.id}, domain 0x${o.domain.handle.toString(16)}`;
      else if (o instanceof IommufdDevice) detail = o.ptId ? `attached to HWPT ${o.ptId}` : "not attached";
      list.push({ id: o.id, type: o.type, users: o.users, detail });
    }
    objects.push({ ctxFd: name, list });
  }

  const containers: ContainerView[] = [];
  for (const [c, name] of containerName) {
    const t1 = c.iommu;
    containers.push({
      fd: name,
      type: t1 ? (t1["v2"] ? "VFIO_TYPE1v2_IOMMU" : "VFIO_TYPE1_IOMMU") : "none",
      groups: c.groups.map((g) => g.id),
      dmas: t1 ? t1["dmas"].map((d) => ({ iova: d.iova, size: d.size, vaddr: d.vaddr, read: d.read, write: d.write })) : [],
      domains: t1 ? t1.domains.map((d) => pageTable(kcore, d.domain)) : [],
    });
  }
  return { files, objects, ioas, containers, stats: kernel.stats() };
}
