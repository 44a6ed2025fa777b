// Event queues (drivers/iommu/iommufd/eventq.c): IOMMU_FAULT_QUEUE_ALLOC makes a FAULT object
// and its anon-inode file "[iommufd-pgfault]". The file holds one user of the object (so
// IOMMU_DESTROY gives EBUSY while it is open) and a reference on the iommufd file (so closing
// /dev/iommu first leaves the context alive until the fault fd goes).
//
// IO page faults (io-pgfault.c's iommu_report_device_fault, fed by the mock's TRIGGER_IOPF)
// find the attach handle of the RID or PASID they came through, and a HWPT holding a FAULT
// object queues them there as groups. Reads hand out whole groups, each moved to the response
// table under a cookie from 1; writes answer them by cookie. A group whose attachment goes
// away (detach, replace) is answered INVALID by the kernel and leaves the queue.

import { errno } from "../uapi/errno.js";
import { O_RDWR, POLLIN, POLLOUT, POLLRDNORM } from "../uapi/posix.js";
import {
  IOMMUFD_PAGE_RESP_INVALID, IOMMUFD_PAGE_RESP_SUCCESS, iommu_fault_alloc, iommu_hwpt_page_response,
  iommu_hwpt_pgfault,
} from "../uapi/iommufd.js";
import type { File, FileOperations } from "../kernel/file.js";
import type { IommufdCtx, UCmd } from "./iommufd_private.js";
import type { AttachHandle, IommufdDevice } from "./device.js";

/** enum iommu_page_response_code's FAILURE (the kernel's own; user answers are 0 or 1). */
const IOMMU_PAGE_RESP_FAILURE = 2;
import { IommufdObject } from "./object.js";

/** One fault record of a group (struct iopf_fault, as read back in iommu_hwpt_pgfault). */
export interface IopfFault {
  flags: number; pasid: number; grpid: number; perm: number; addr: bigint;
}

/** The device side of page requests (the IOMMU driver's fault_param and page_response). */
export interface IopfDevice {
  /** Whether a fault-capable domain is attached (the device is on an iopf queue). */
  readonly iopfEnabled: boolean;
  /** Groups the device waits an answer for (fault_param->faults). */
  readonly iopfPending: Set<IopfGroup>;
  /** ops->page_response, for the last fault of a group. */
  pageResponse(last: IopfFault, code: number): void;
}

/** struct iopf_group: the faults of one page request group, answered together. */
export class IopfGroup {
  cookie = 0;
  constructor(readonly faults: IopfFault[], readonly handle: AttachHandle, readonly dev: IopfDevice) {}

  /** iopf_group_response: answered once, only while the device still waits for it. */
  respond(code: number): void {
    if (!this.dev.iopfPending.delete(this)) return;
    this.dev.pageResponse(this.faults[this.faults.length - 1], code);
  }
}

/** struct iommufd_fault. */
export class IommufdFault extends IommufdObject {
  readonly type = "fault" as const;
  /** Groups not read yet, oldest first. */
  readonly deliver: IopfGroup[] = [];
  /** Groups read and waiting for a response, by cookie. */
  readonly response = new Map<number, IopfGroup>();
  file: File | null = null;

  constructor(readonly ctx: IommufdCtx) {
    super();
  }

  /** xa_alloc over [1, U32_MAX]: the lowest free cookie. */
  private allocCookie(): number {
    let c = 1;
    while (this.response.has(c)) c++;
    return c;
  }

  /**
   * Moves as many whole groups as fit into `count` bytes to the response table; a cookie
   * that cannot be allocated stops there (ENOMEM when nothing was taken).
   */
  take(count: number): IopfGroup[] | number {
    const out: IopfGroup[] = [];
    let done = 0;
    const size = iommu_hwpt_pgfault.size;
    while (this.deliver.length > 0) {
      const g = this.deliver[0];
      if (done >= count || g.faults.length * size > count - done) break;
      if (this.ctx.shouldFail()) return out.length ? out : -errno.ENOMEM;
      this.deliver.shift();
      g.cookie = this.allocCookie();
      this.response.set(g.cookie, g);
      out.push(g);
      done += g.faults.length * size;
    }
    return out;
  }

  /** iommufd_fault_iopf_handler: queued for reading; pollers wake. */
  enqueue(g: IopfGroup): void {
    this.deliver.push(g);
    this.ctx.kcore.core.pollWake();
  }

  /**
   * iommufd_auto_response_faults: the groups that came through `handle`, queued or read, are
   * answered INVALID and dropped (their cookies are then unknown to write).
   */
  autoRespond(handle: AttachHandle): void {
    for (let i = 0; i < this.deliver.length;) {
      const g = this.deliver[i];
      if (g.handle !== handle) { i++; continue; }
      this.deliver.splice(i, 1);
      g.respond(IOMMUFD_PAGE_RESP_INVALID);
    }
    for (const [cookie, g] of [...this.response]) {
      if (g.handle !== handle) continue;
      this.response.delete(cookie);
      g.respond(IOMMUFD_PAGE_RESP_INVALID);
    }
  }

  destroy(): void {
    // Every group still held is answered INVALID, queued ones first.
    for (const g of this.deliver.splice(0)) g.respond(IOMMUFD_PAGE_RESP_INVALID);
    for (const g of this.response.values()) g.respond(IOMMUFD_PAGE_RESP_INVALID);
    this.response.clear();
  }
}

const faultOf = (file: File): IommufdFault => file.priv as IommufdFault;

/** iommufd_fault_fops: a stream (nonseekable_open), so any positioned access is ESPIPE. */
const faultFops: FileOperations = {
  kind: "iommufd-pgfault",
  read(file, buf, pos) {
    const size = iommu_hwpt_pgfault.size;
    if (pos !== null || buf.length % size) return -errno.ESPIPE;
    const fault = faultOf(file);
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const f = iommu_hwpt_pgfault.fields;
    let done = 0;
    const groups = fault.take(buf.length);
    if (typeof groups === "number") return groups;
    for (const g of groups) {
      for (const r of g.faults) {
        dv.setUint32(done + f.flags.off, r.flags, true);
        dv.setUint32(done + f.dev_id.off, g.handle.idev.id, true);
        dv.setUint32(done + f.pasid.off, r.pasid, true);
        dv.setUint32(done + f.grpid.off, r.grpid, true);
        dv.setUint32(done + f.perm.off, r.perm, true);
        dv.setUint32(done + f.__reserved.off, 0, true);
        dv.setBigUint64(done + f.addr.off, r.addr, true);
        dv.setUint32(done + f.length.off, 0, true);
        dv.setUint32(done + f.cookie.off, g.cookie, true);
        done += size;
      }
    }
    return done;
  },
  write(file, buf, pos) {
    const size = iommu_hwpt_page_response.size;
    if (pos !== null || buf.length % size) return -errno.ESPIPE;
    const fault = faultOf(file);
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const f = iommu_hwpt_page_response.fields;
    let done = 0, rc = 0;
    while (done < buf.length) {
      const cookie = dv.getUint32(done + f.cookie.off, true);
      const code = dv.getUint32(done + f.code.off, true);
      if (code !== IOMMUFD_PAGE_RESP_SUCCESS && code !== IOMMUFD_PAGE_RESP_INVALID) { rc = -errno.EINVAL; break; }
      const g = fault.response.get(cookie);
      if (!g) { rc = -errno.EINVAL; break; }
      fault.response.delete(cookie);
      g.respond(code);
      done += size;
    }
    // A partial write reports what was answered; the error only when nothing was.
    return done === 0 ? rc : done;
  },
  poll(file) {
    return POLLOUT | (faultOf(file).deliver.length > 0 ? POLLIN | POLLRDNORM : 0);
  },
  release(file) {
    // iommufd_eventq_fops_release: the file's user of the object and its context reference.
    const fault = faultOf(file);
    fault.users--;
    fault.file = null;
    fault.ctx.kcore.fput(fault.ctx.file);
  },
};

/**
 * iommufd_fault_alloc: flags (EOPNOTSUPP), the object (ENOMEM), the file (its user and context
 * reference taken with it), an fd (O_CLOEXEC), the response; the fd is installed only after
 * the object is published.
 */
export function faultAlloc(ctx: IommufdCtx, ucmd: UCmd): number {
  const c = ucmd.fields(iommu_fault_alloc);
  if (c.u(c.f.flags)) return -errno.EOPNOTSUPP;
  const fault = new IommufdFault(ctx);
  let rc = ctx.objectAlloc(fault, false);
  if (rc < 0) return rc;
  const file = ctx.kcore.newFile(faultFops, O_RDWR, fault, "anon_inode:[iommufd-pgfault]", { mode: 0, rdev: 0, size: 0 });
  if (typeof file === "number") { ctx.objectAbort(fault); return file; }
  fault.file = file;
  fault.users++;
  ctx.file.refs++;
  const fd = ucmd.proc.installFile(file, true);
  if (fd < 0) {
    ctx.kcore.fput(file);
    ctx.objectAbort(fault);
    return fd;
  }
  c.set(c.f.out_fault_id, fault.id);
  c.set(c.f.out_fault_fd, fd);
  rc = ucmd.respond();
  if (rc < 0) {
    // put_unused_fd + fput: the fd was never visible to the process.
    ucmd.proc.close(fd);
    ctx.objectAbort(fault);
    return rc;
  }
  ctx.objectFinalize(fault);
  return 0;
}

/**
 * iommu_report_device_fault for a page request of `idev`'s device (always the last of its
 * group, as the mock reports them): the attach handle of the fault's PASID, or, the mock
 * keeping its PASID table in user space, a nested domain on the RID; without a PASID, the
 * RID's. A handle whose HWPT has no FAULT object, or none at all, is an unhandled fault: the
 * device gets INVALID at once. Otherwise the group waits on the device and in the queue.
 */
export function reportDeviceFault(idev: IommufdDevice, fault: IopfFault, dev: IopfDevice): void {
  const handle = idev.faultHandle(fault);
  const queue = handle?.hwpt.fault;
  if (!handle || !queue || !dev.iopfEnabled) {
    dev.pageResponse(fault, IOMMUFD_PAGE_RESP_INVALID);
    return;
  }
  // iopf_group_alloc failing: the request is aborted at the device (IOMMU_PAGE_RESP_FAILURE).
  if (handle.idev.ctx.shouldFail()) {
    dev.pageResponse(fault, IOMMU_PAGE_RESP_FAILURE);
    return;
  }
  const g = new IopfGroup([fault], handle, dev);
  dev.iopfPending.add(g);
  queue.enqueue(g);
}
