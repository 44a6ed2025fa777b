// vIOMMU and vDEVICE objects (drivers/iommu/iommufd/viommu.c) on the selftest's mock IOMMU:
// IOMMU_VIOMMU_ALLOC over a NEST_PARENT paging HWPT, IOMMU_VDEVICE_ALLOC giving a bound device
// its virtual id in a vIOMMU, and the mock's vIOMMU ops (cache invalidation of its devices'
// 4-slot caches). Lifetimes as the kernel's: the vIOMMU holds its parent HWPT, a vDEVICE holds
// its vIOMMU and its device, a nested HWPT made on a vIOMMU holds the vIOMMU; unbinding a
// device with a vDEVICE destroys the vDEVICE and tombstones its id. HW queues (IOMMU_HW_QUEUE_ALLOC)
// pin their guest queue memory through an internal access on the parent's IOAS, hold the
// vIOMMU, and (the mock's rule) queue n holds queue n-1.

import { errno } from "../uapi/errno.js";
import { FRAME_NONE } from "../wasm/core.js";
import {
  IOMMU_TEST_INVALIDATE_FLAG_ALL, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, IOMMU_VIOMMU_TYPE_DEFAULT,
  IOMMU_VIOMMU_TYPE_SELFTEST, MOCK_DEV_CACHE_ID_MAX, iommu_vdevice_alloc, iommu_viommu_alloc,
  iommu_viommu_invalidate_selftest, IOMMU_VEVENTQ_FLAG_LOST_EVENTS, IOMMU_VEVENTQ_TYPE_DEFAULT,
  IOMMU_VEVENTQ_TYPE_SELFTEST, iommu_veventq_alloc, iommu_viommu_event_selftest, iommufd_vevent_header,
  IOMMU_HW_QUEUE_TYPE_DEFAULT, IOMMU_HW_QUEUE_TYPE_SELFTEST, IOMMU_TEST_HW_QUEUE_MAX, MOCK_PAGE_SIZE,
  iommu_hw_queue_alloc, iommu_viommu_selftest,
} from "../uapi/iommufd.js";
import { O_RDWR, POLLIN, POLLRDNORM } from "../uapi/posix.js";
import type { File, FileOperations } from "../kernel/file.js";
import { copyUserData, type IommufdCtx, type UCmd } from "./iommufd_private.js";
import type { IommuDevice } from "../iommu/device.js";
import type { IommufdDevice } from "./device.js";
import { accessCreateInternal, accessDestroy, type IommufdAccess } from "./access.js";
import type { Hwpt, HwptPaging } from "./hw_pagetable.js";
import { addOverflow, alignUp, PAGE, PAGE_SIZE } from "./iova.js";
import { IommufdObject } from "./object.js";

/**
 * A mock device: the per-device cache a vIOMMU invalidates (mock_dev.cache), and the vIOMMU
 * and virtual id it is attached through (mock_dev.viommu, vdev_id).
 */
export interface DevCacheDevice extends IommuDevice {
  readonly devCache: Uint32Array;
  viommu: Viommu | null;
  vdevId: bigint;
}

const hasDevCache = (dev: IommuDevice): dev is DevCacheDevice => "devCache" in dev;

/** struct iommufd_viommu (with the mock's struct mock_viommu). */
export class Viommu extends IommufdObject {
  readonly type = "viommu" as const;
  /** virt_id -> vDEVICE (viommu->vdevs). */
  readonly vdevs = new Map<bigint, Vdevice>();
  /** Its event queues, one per type (viommu->veventqs). */
  readonly veventqs: Veventq[] = [];
  /** The mock's HW queue slots (mock_viommu.hw_queue). */
  readonly hwQueues: (HwQueue | null)[] = new Array<HwQueue | null>(IOMMU_TEST_HW_QUEUE_MAX).fill(null);

  constructor(readonly ctx: IommufdCtx, readonly hwpt: HwptPaging, readonly viommuType: number) {
    super();
  }

  /** The vIOMMU's IOMMU instance: every mock device sits behind the one mock IOMMU. */
  get iommuFormat(): string { return this.hwpt.domain.format; }

  /**
   * iommufd_viommu_get_vdev_id: 0 with the virtual id of `idev` in this vIOMMU stored in
   * out.vdevId, or -ENOENT (no vDEVICE of it here; out untouched).
   */
  getVdevId(idev: IommufdDevice, out: { vdevId: bigint }): number {
    const v = idev.vdev;
    if (!v || v.viommu !== this) return -errno.ENOENT;
    out.vdevId = v.virtId;
    return 0;
  }

  findVeventq(type: number): Veventq | undefined { return this.veventqs.find((q) => q.queueType === type); }

  /** mock_viommu: its two zeroed pages for user data and their region of the file's offsets. */
  page = -1;
  mmapOffset = 0;
  /** Set once mock_viommu_init succeeded (viommu->ops): only then does the mock's destroy run. */
  private mockInit = false;

  /**
   * mock_viommu_init: with user data (struct iommu_viommu_selftest, iommu_copy_struct_from_user:
   * at least up to out_data, at most sizeof: EINVAL; EFAULT), two zeroed pages (ENOMEM) are
   * registered for mmap (allocMmap), the first word set to in_data, and out_data = in_data,
   * out_mmap_offset and out_mmap_length (two pages) copied back over data_len bytes.
   */
  init(ucmd: UCmd, uptr: number, len: number): number {
    if (len) {
      const L = iommu_viommu_selftest;
      const data = copyUserData(ucmd, this.viommuType, uptr, len, IOMMU_VIOMMU_TYPE_SELFTEST, L,
        L.fields.out_data.off + L.fields.out_data.size);
      if (typeof data === "number") return data;
      const core = this.ctx.kcore.core;
      const page = core.x.frame_alloc(1) >>> 0;
      if (page === FRAME_NONE) return -errno.ENOMEM;
      const freePage = (): void => { core.x.frame_put(page); core.x.frame_put(page + 1); };
      const offset = this.ctx.allocMmap(this, page, 2 * PAGE_SIZE);
      if (offset < 0) { freePage(); return offset; }
      const dv = new DataView(data.buffer);
      const inData = dv.getUint32(L.fields.in_data.off, true);
      new DataView(core.u8.buffer, core.u8.byteOffset + (core.x.frame_addr(page) >>> 0), 4).setUint32(0, inData, true);
      dv.setUint32(L.fields.out_data.off, inData, true);
      dv.setBigUint64(L.fields.out_mmap_offset.off, BigInt(offset), true);
      dv.setBigUint64(L.fields.out_mmap_length.off, BigInt(2 * PAGE_SIZE), true);
      // iommu_copy_struct_to_user: data_len bytes of it (never more than sizeof, checked above)
      if (ucmd.copyToUser(uptr, data.subarray(0, len)) < 0) {
        this.ctx.destroyMmap(this, offset);
        freePage();
        return -errno.EFAULT;
      }
      this.page = page;
      this.mmapOffset = offset;
    }
    this.mockInit = true;
    return 0;
  }

  destroy(): void {
    if (this.mockInit) {
      // mock_viommu_destroy
      if (this.mmapOffset) this.ctx.destroyMmap(this, this.mmapOffset);
      if (this.page >= 0) { this.ctx.kcore.core.x.frame_put(this.page); this.ctx.kcore.core.x.frame_put(this.page + 1); }
      this.page = -1;
      this.mockInit = false;
    }
    // Drops the parent reference taken at allocation (iommufd_viommu_destroy).
    this.hwpt.users--;
  }
}

/** struct iommufd_vdevice. */
export class Vdevice extends IommufdObject {
  readonly type = "vdevice" as const;

  constructor(readonly viommu: Viommu, readonly idev: IommufdDevice, readonly virtId: bigint) {
    super();
  }

  /** iommufd_vdevice_abort: out of the vIOMMU's table, the vIOMMU and device references go. */
  override abort(): void {
    if (this.viommu.vdevs.get(this.virtId) === this) this.viommu.vdevs.delete(this.virtId);
    this.viommu.users--;
    this.idev.vdev = null;
    this.idev.users--;
  }

  destroy(): void { this.abort(); }

  /**
   * iommufd_device_pre_destroy: the device is being unbound, so its vDEVICE is destroyed now
   * and its id stays taken (a tombstone) until the context goes.
   */
  tombstone(): void {
    this.viommu.ctx.objects.tombstone(this);
  }
}

/**
 * IOMMU_VIOMMU_ALLOC, in iommufd_viommu_alloc_ioctl's order: flags or the DEFAULT type
 * (EOPNOTSUPP), the device (ENOENT), a driver with vIOMMU support and this type (EOPNOTSUPP:
 * only the mock, only IOMMU_VIOMMU_TYPE_SELFTEST), the paging HWPT (ENOENT), a nest parent
 * (EINVAL), the object (ENOMEM), then the mock's viommu_init (with data_len: its user data).
 */
export function viommuAlloc(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_viommu_alloc);
  const type = c.u(c.f.type);
  if (c.u(c.f.flags) || type === IOMMU_VIOMMU_TYPE_DEFAULT) return -errno.EOPNOTSUPP;
  const idev = ctx.getObject(c.u(c.f.dev_id), "device") as IommufdDevice | number;
  if (typeof idev === "number") return idev;
  if (idev.dev.caps.format !== "mock" || type !== IOMMU_VIOMMU_TYPE_SELFTEST) return -errno.EOPNOTSUPP;
  const hwpt = ctx.getObject(c.u(c.f.hwpt_id), "hwpt_paging") as HwptPaging | number;
  if (typeof hwpt === "number") return hwpt;
  if (!hwpt.nestParent) return -errno.EINVAL;
  const viommu = new Viommu(ctx, hwpt, type);
  let rc = ctx.objectAlloc(viommu, false);
  if (rc < 0) return rc;
  hwpt.users++;
  rc = viommu.init(ucmd, Number(c.u64(c.f.data_uptr)), c.u(c.f.data_len));
  if (rc < 0) { ctx.objectAbort(viommu); return rc; }
  c.set(c.f.out_viommu_id, viommu.id);
  return ctx.respondFinalize(ucmd, viommu);
}

/**
 * IOMMU_VDEVICE_ALLOC, in iommufd_vdevice_alloc_ioctl's order: the vIOMMU, the device
 * (ENOENT), the same IOMMU instance (EINVAL), a device without a vDEVICE yet (EEXIST), the
 * object (ENOMEM), a virt_id not taken in the vIOMMU (EEXIST). (virt_id > ULONG_MAX cannot
 * happen on a 64-bit kernel.)
 */
export function vdeviceAlloc(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_vdevice_alloc);
  const virtId = c.u64(c.f.virt_id);
  const viommu = ctx.getObject(c.u(c.f.viommu_id), "viommu") as Viommu | number;
  if (typeof viommu === "number") return viommu;
  const idev = ctx.getObject(c.u(c.f.dev_id), "device") as IommufdDevice | number;
  if (typeof idev === "number") return idev;
  if (viommu.iommuFormat !== idev.dev.caps.format) return -errno.EINVAL;
  if (idev.vdev) return -errno.EEXIST;
  const vdev = new Vdevice(viommu, idev, virtId);
  const rc = ctx.objectAlloc(vdev, false);
  if (rc < 0) return rc;
  viommu.users++;
  // The vDEVICE keeps the reference iommufd_get_device took (dropped in its destroy).
  idev.users++;
  idev.vdev = vdev;
  if (viommu.vdevs.has(virtId)) { ctx.objectAbort(vdev); return -errno.EEXIST; }
  viommu.vdevs.set(virtId, vdev);
  c.set(c.f.out_vdevice_id, vdev.id);
  return ctx.respondFinalize(ucmd, vdev);
}

/**
 * mock_viommu_cache_invalidate: an empty array of the selftest type checks only the type; else
 * the whole array is copied first (iommu_copy_struct_from_full_user_array: the type, EINVAL;
 * entries of exactly the struct's size in one copy, others one by one as copy_struct_from_user),
 * then handled in order up to the first bad entry: unknown flags EOPNOTSUPP, a cache id past
 * the last EINVAL, a virtual id with no vDEVICE EINVAL. `done` counts the handled entries.
 */
export function viommuCacheInvalidate(ucmd: UCmd, viommu: Viommu, type: number, uptr: number, entryLen: number,
  entryNum: number): { rc: number; done: number } {
  if (entryNum === 0 && type === IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST) return { rc: 0, done: 0 };
  const L = iommu_viommu_invalidate_selftest;
  // kcalloc of the array
  if (entryNum > 0 && viommu.ctx.shouldFail()) return { rc: -errno.ENOMEM, done: 0 };
  if (type !== IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST) return { rc: -errno.EINVAL, done: 0 };
  const cmds = new Uint8Array(L.size * entryNum);
  if (entryLen === L.size) {
    const b = ucmd.copyFromUser(uptr, entryLen * entryNum);
    if (typeof b === "number") return { rc: -errno.EFAULT, done: 0 };
    cmds.set(b);
  } else {
    for (let i = 0; i < entryNum; i++) {
      const b = ucmd.copyFromUser(uptr + entryLen * i, entryLen);
      if (typeof b === "number") return { rc: -errno.EFAULT, done: 0 };
      // copy_struct_from_user: a longer entry must be zero past the struct
      for (let k = L.size; k < b.length; k++) if (b[k]) return { rc: -errno.E2BIG, done: 0 };
      cmds.set(b.subarray(0, Math.min(b.length, L.size)), L.size * i);
    }
  }
  const dv = new DataView(cmds.buffer);
  let done = 0;
  for (; done < entryNum; done++) {
    const at = L.size * done;
    const flags = dv.getUint32(at + L.fields.flags.off, true);
    const cacheId = dv.getUint32(at + L.fields.cache_id.off, true);
    const vdevId = dv.getUint32(at + L.fields.vdev_id.off, true);
    if (flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) return { rc: -errno.EOPNOTSUPP, done };
    if (cacheId > MOCK_DEV_CACHE_ID_MAX) return { rc: -errno.EINVAL, done };
    const vdev = viommu.vdevs.get(BigInt(vdevId));
    if (!vdev || !hasDevCache(vdev.idev.dev)) return { rc: -errno.EINVAL, done };
    const cache = vdev.idev.dev.devCache;
    if (flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) cache.fill(0);
    else cache[cacheId] = 0;
  }
  return { rc: 0, done };
}

/** IOMMU_TEST_OP_DEV_CHECK_CACHE: slot `cacheId` of the device's cache holds `value` (else EINVAL). */
export function devCheckCache(ctx: IommufdCtx, idevId: number, cacheId: number, value: number): number {
  const idev = ctx.getObject(idevId, "device") as IommufdDevice | number;
  if (typeof idev === "number") return idev;
  const dev = idev.dev;
  if (!hasDevCache(dev) || cacheId > MOCK_DEV_CACHE_ID_MAX || dev.devCache[cacheId] !== value) return -errno.EINVAL;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// vEVENTQ (eventq.c, driver.c): one queue per type per vIOMMU behind an anon-inode file
// "[iommufd-viommu-event]". Events carry a header { flags, sequence } and the driver's data;
// sequence numbers run on over INT_MAX back to 0. A full queue (veventq_depth events) turns
// further reports into the one lost-events header, queued last with the sequence the lost
// event would have had; a later event takes its place there.

/** struct iommufd_vevent: a header and the driver's data (none for the lost-events header). */
interface Vevent { flags: number; sequence: number; data: Uint8Array }

/** struct iommufd_veventq. */
export class Veventq extends IommufdObject {
  readonly type = "veventq" as const;
  /** Events not read yet, oldest first; may end with `lostEvents`. */
  readonly deliver: Vevent[] = [];
  /** The queue's own lost-events header (lost_events_header). */
  readonly lostEvents: Vevent = { flags: IOMMU_VEVENTQ_FLAG_LOST_EVENTS, sequence: 0, data: new Uint8Array(0) };
  /** Events queued, the lost-events header not counted. */
  numEvents = 0;
  sequence = 0;
  file: File | null = null;

  constructor(readonly ctx: IommufdCtx, readonly viommu: Viommu, readonly queueType: number, readonly depth: number) {
    super();
  }

  /** iommufd_vevent_handler: the lost-events header leaves the tail for the new event. */
  private queue(ev: Vevent): void {
    if (this.deliver[this.deliver.length - 1] === this.lostEvents) this.deliver.pop();
    this.deliver.push(ev);
    ev.sequence = this.sequence;
    this.sequence = (this.sequence + 1) & 0x7fffffff;
    this.ctx.kcore.core.pollWake();
  }

  /** iommufd_viommu_report_event's part under the queue lock: 0 or -ENOMEM (then lost). */
  report(data: Uint8Array): number {
    if (this.numEvents === this.depth) { this.queue(this.lostEvents); return 0; }
    if (this.ctx.shouldFail()) { this.queue(this.lostEvents); return -errno.ENOMEM; }
    this.numEvents++;
    this.queue({ flags: 0, sequence: 0, data: data.slice() });
    return 0;
  }

  destroy(): void {
    // iommufd_veventq_abort: the queued events go, the queue leaves its vIOMMU.
    this.deliver.length = 0;
    this.numEvents = 0;
    this.viommu.veventqs.splice(this.viommu.veventqs.indexOf(this), 1);
    this.viommu.users--;
  }
}

const veventqOf = (file: File): Veventq => file.priv as Veventq;
const HDR = iommufd_vevent_header.size;

/** iommufd_veventq_fops: read-only, a stream (positioned reads are ESPIPE). */
const veventqFops: FileOperations = {
  kind: "iommufd-viommu-event",
  read(file, buf, pos) {
    if (pos !== null) return -errno.ESPIPE;
    const q = veventqOf(file);
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let done = 0;
    // Whole events only: the header must fit, and a normal event's data with it.
    while (q.deliver.length > 0) {
      const ev = q.deliver[0];
      const lost = ev === q.lostEvents;
      if (done >= buf.length || HDR > buf.length - done) break;
      if (!lost && HDR + ev.data.length > buf.length - done) break;
      q.deliver.shift();
      dv.setUint32(done + iommufd_vevent_header.fields.flags.off, ev.flags, true);
      dv.setUint32(done + iommufd_vevent_header.fields.sequence.off, ev.sequence, true);
      done += HDR;
      buf.set(ev.data, done);
      done += ev.data.length;
      if (!lost) q.numEvents--;
    }
    return done;
  },
  poll(file) {
    return veventqOf(file).deliver.length > 0 ? POLLIN | POLLRDNORM : 0;
  },
  release(file) {
    // iommufd_eventq_fops_release: the file's user of the object and its context reference.
    const q = veventqOf(file);
    q.users--;
    q.file = null;
    q.ctx.kcore.fput(q.ctx.file);
  },
};

/**
 * IOMMU_VEVENTQ_ALLOC, in iommufd_veventq_alloc's order: flags, __reserved or the DEFAULT type
 * (EOPNOTSUPP), a zero depth (EINVAL), the vIOMMU (ENOENT), a queue of that type there already
 * (EEXIST), the object (ENOMEM), the file and an fd (O_CLOEXEC), the response; the fd is
 * installed once the object is published.
 */
export function veventqAlloc(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_veventq_alloc);
  const type = c.u(c.f.type);
  if (c.u(c.f.flags) || c.u(c.f.__reserved) || type === IOMMU_VEVENTQ_TYPE_DEFAULT) return -errno.EOPNOTSUPP;
  const depth = c.u(c.f.veventq_depth);
  if (!depth) return -errno.EINVAL;
  const viommu = ctx.getObject(c.u(c.f.viommu_id), "viommu") as Viommu | number;
  if (typeof viommu === "number") return viommu;
  if (viommu.findVeventq(type)) return -errno.EEXIST;
  const q = new Veventq(ctx, viommu, type, depth);
  let rc = ctx.objectAlloc(q, false);
  if (rc < 0) return rc;
  viommu.users++;
  viommu.veventqs.push(q);
  const file = ctx.kcore.newFile(veventqFops, O_RDWR, q, "anon_inode:[iommufd-viommu-event]", { mode: 0, rdev: 0, size: 0 });
  if (typeof file === "number") { ctx.objectAbort(q); return file; }
  q.file = file;
  q.users++;
  ctx.file.refs++;
  const fd = ucmd.proc.installFile(file, true);
  if (fd < 0) { ctx.kcore.fput(file); ctx.objectAbort(q); return fd; }
  c.set(c.f.out_veventq_id, q.id);
  c.set(c.f.out_veventq_fd, fd);
  rc = ucmd.respond();
  if (rc < 0) { ucmd.proc.close(fd); ctx.objectAbort(q); return rc; }
  ctx.objectFinalize(q);
  return 0;
}

/**
 * IOMMU_TEST_OP_TRIGGER_VEVENT: the device (ENOENT), attached to a nested domain of a vIOMMU
 * with a non-zero virtual id (else ENOENT), reports struct iommu_viommu_event_selftest
 * { virt_id } to the vIOMMU's SELFTEST queue (EOPNOTSUPP without one).
 */
export function triggerVevent(ctx: IommufdCtx, devId: number): number {
  const idev = ctx.getObject(devId, "device") as IommufdDevice | number;
  if (typeof idev === "number") return idev;
  const dev = idev.dev;
  if (!hasDevCache(dev) || !dev.viommu || !dev.vdevId) return -errno.ENOENT;
  const q = dev.viommu.findVeventq(IOMMU_VEVENTQ_TYPE_SELFTEST);
  if (!q) return -errno.EOPNOTSUPP;
  const ev = new Uint8Array(iommu_viommu_event_selftest.size);
  new DataView(ev.buffer).setUint32(iommu_viommu_event_selftest.fields.virt_id.off, Number(BigInt.asUintN(32, dev.vdevId)), true);
  return q.report(ev);
}

/**
 * mock_domain_nop_attach's record of the vIOMMU a device is attached through: set when it
 * attaches to a vIOMMU's nested HWPT (with its virtual id then), cleared by any other attach.
 */
export function noteMockAttach(idev: IommufdDevice, hwpt: Hwpt | null): void {
  const dev = idev.dev;
  if (!hasDevCache(dev)) return;
  const viommu = hwpt?.type === "hwpt_nested" ? hwpt.viommu : null;
  const id = { vdevId: 0n }; // stays 0 without a vIOMMU or a vDEVICE there
  if (viommu) viommu.getVdevId(idev, id);
  dev.viommu = viommu;
  dev.vdevId = id.vdevId;
}

// ---------------------------------------------------------------------------------------------
// HW queues (viommu.c iommufd_hw_queue_*, the mock's in selftest.c): a queue in guest memory
// that the hardware reads by physical address. Its pages are pinned by an internal access on
// the parent HWPT's IOAS, so they must be physically contiguous and cannot be unmapped while
// the queue lives (IOAS_UNMAP gives EBUSY). The mock takes indexes 0..IOMMU_TEST_HW_QUEUE_MAX-1
// in order; queue n depends on queue n-1 (iommufd_hw_queue_depend), so it must go first.

/** kvcalloc refuses more than INT_MAX bytes (kvmalloc_node): the page array's limit. */
const KVMALLOC_MAX = 0x7fffffffn;

/** struct iommufd_hw_queue with the mock's struct mock_hw_queue. */
export class HwQueue extends IommufdObject {
  readonly type = "hw_queue" as const;
  /** Set once the queue's memory is pinned; the queue then holds a user of it. */
  viommu: Viommu | null = null;
  access: IommufdAccess | null = null;
  baseAddr = 0n;
  length = 0n;
  /** mock_hw_queue: its slot and the queue it depends on, once the mock's init succeeded. */
  index = -1;
  prev: HwQueue | null = null;
  private mockInit = false;

  constructor(readonly queueType: number) { super(); }

  /** mock_hw_queue_init_phys: index < MAX (EINVAL), free (EEXIST), after its predecessor (EIO), base_pa right (EFAULT). */
  initPhys(viommu: Viommu, index: number, basePa: number): number {
    if (index >= IOMMU_TEST_HW_QUEUE_MAX) return -errno.EINVAL;
    if (viommu.hwQueues[index]) return -errno.EEXIST;
    const prev = index ? viommu.hwQueues[index - 1] : null;
    if (index && !prev) return -errno.EIO;
    // The mock checks the core's translation against its own page table, which answers per
    // MOCK_PAGE_SIZE unit (mock_domain_iova_to_phys): a base inside a unit never matches.
    const unit = this.baseAddr - this.baseAddr % BigInt(MOCK_PAGE_SIZE);
    if (basePa !== viommu.hwpt.domain.iovaToPhys(unit)) return -errno.EFAULT;
    if (prev) prev.users++;
    this.prev = prev;
    this.index = index;
    viommu.hwQueues[index] = this;
    this.mockInit = true;
    return 0;
  }

  /** iommufd_hw_queue_destroy: the mock's slot and dependency, the pin and its access, the vIOMMU. */
  destroy(): void {
    if (this.mockInit) {
      this.viommu!.hwQueues[this.index] = null;
      if (this.prev) this.prev.users--;
      this.mockInit = false;
    }
    if (this.access) {
      // iommufd_hw_queue_destroy_access: the same page-aligned range the pin took
      const aligned = this.baseAddr - this.baseAddr % PAGE;
      const span = this.length + (this.baseAddr - aligned);
      this.access.unpinPages(aligned, alignUp(span, PAGE));
      this.access.detachIoas();
      accessDestroy(this.access);
      this.access = null;
    }
    if (this.viommu) this.viommu.users--;
  }
}

/**
 * iommufd_hw_queue_alloc_phys: an internal access on the vIOMMU's parent IOAS pins the pages
 * under [iova, iova+length) rounded out to pages: ERANGE when the rounding overflows, ENOMEM for
 * the page array (kvcalloc; refused past INT_MAX bytes) or the access, the pin's errors (ENOENT
 * for a hole, EPERM for an area that is not readable), EFAULT when the frames are not
 * physically contiguous. Returns the access and the physical address of `iova`.
 */
function hwQueueAllocPhys(viommu: Viommu, iova: bigint, length: bigint): { access: IommufdAccess; basePa: number } | number {
  const ctx = viommu.ctx;
  const offset = iova % PAGE;
  const aligned = iova - offset;
  const span = addOverflow(offset, length);
  if (span === null) return -errno.ERANGE;
  const rounded = addOverflow(span, PAGE - 1n);
  if (rounded === null) return -errno.ERANGE;
  const npages = rounded / PAGE;
  if (npages * 8n > KVMALLOC_MAX || ctx.shouldFail()) return -errno.ENOMEM;
  const access = accessCreateInternal(ctx);
  if (typeof access === "number") return access;
  let rc = access.moveTo(viommu.hwpt.ioas);
  if (rc < 0) { accessDestroy(access); return rc; }
  const frames = access.pinPages(aligned, npages * PAGE, false);
  if (typeof frames === "number") rc = frames;
  else {
    for (let i = 1; i < frames.length && rc === 0; i++) if (frames[i] !== frames[i - 1] + 1) rc = -errno.EFAULT;
    if (rc < 0) access.unpinPages(aligned, npages * PAGE);
  }
  if (rc < 0 || typeof frames === "number") {
    access.detachIoas();
    accessDestroy(access);
    return rc;
  }
  return { access, basePa: frames[0] * PAGE_SIZE + Number(offset) };
}

/**
 * IOMMU_HW_QUEUE_ALLOC, in iommufd_hw_queue_alloc_ioctl's order: flags or the DEFAULT type
 * (EOPNOTSUPP), a zero length (EINVAL), iova + length - 1 past 2^64 (EOVERFLOW), the vIOMMU
 * (ENOENT), a type the mock's vIOMMU has queues of (EOPNOTSUPP: IOMMU_HW_QUEUE_TYPE_SELFTEST),
 * the object (ENOMEM), the pinned memory (hwQueueAllocPhys), then the mock's init at the
 * index. Any failure after the object destroys it with what it holds.
 */
export function hwQueueAlloc(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_hw_queue_alloc);
  const type = c.u(c.f.type);
  if (c.u(c.f.flags) || type === IOMMU_HW_QUEUE_TYPE_DEFAULT) return -errno.EOPNOTSUPP;
  const length = c.u64(c.f.length);
  if (!length) return -errno.EINVAL;
  const iova = c.u64(c.f.nesting_parent_iova);
  if (addOverflow(iova, length - 1n) === null) return -errno.EOVERFLOW;
  const viommu = ctx.getObject(c.u(c.f.viommu_id), "viommu") as Viommu | number;
  if (typeof viommu === "number") return viommu;
  if (type !== IOMMU_HW_QUEUE_TYPE_SELFTEST) return -errno.EOPNOTSUPP;
  const q = new HwQueue(type);
  let rc = ctx.objectAlloc(q, false);
  if (rc < 0) return rc;
  const phys = hwQueueAllocPhys(viommu, iova, length);
  if (typeof phys === "number") { ctx.objectAbort(q); return phys; }
  q.viommu = viommu;
  viommu.users++;
  q.access = phys.access;
  q.length = length;
  q.baseAddr = iova;
  rc = q.initPhys(viommu, c.u(c.f.index), phys.basePa);
  if (rc < 0) { ctx.objectAbort(q); return rc; }
  c.set(c.f.out_hw_queue_id, q.id);
  return ctx.respondFinalize(ucmd, q);
}
