// iommufd objects and the per-file object table (drivers/iommu/iommufd/main.c): one id space
// for every kind, ids lowest-free from 1, two-phase creation (the id is reserved by a
// placeholder that lookups do not see, then published), and removal only when nobody but the
// table holds the object.

import { errno } from "../uapi/errno.js";

/** enum iommufd_object_type, by the names the kernel's messages use. */
export type ObjType =
  | "ioas" | "hwpt_paging" | "hwpt_nested" | "device" | "access" | "fault"
  | "viommu" | "vdevice" | "veventq" | "hw_queue" | "selftest";

/** Ids live in 31 bits (xa_limit_31b). */
const ID_LIMIT = 0x7fffffff;

export abstract class IommufdObject {
  id = 0;
  /** The table holds 1; every holder of a long-term reference (HWPT on its IOAS, ...) adds 1. */
  users = 1;
  abstract readonly type: ObjType;
  /** Frees everything the object owns; called once, when it leaves the table. */
  abstract destroy(): void;
  /** Undoes a creation that was never published (defaults to destroy). */
  abort(): void { this.destroy(); }
  /** Who holds it, for error messages. */
  describe(): string { return `${this.type} ${this.id}`; }
}

export class ObjectTable {
  /**
   * By id (0 is never one): the object, null while the id is reserved by a creation in
   * progress, undefined when free. Ids are taken lowest-free, so the array stays dense, and a
   * lookup is one indexed load where a Map would hash.
   */
  private readonly slots: (IommufdObject | null | undefined)[] = [undefined];
  /** Ids reserved or published. */
  private count = 0;
  /** Ids of objects destroyed by the kernel itself whose ids stay taken (XA_ZERO_ENTRY). */
  private readonly tombstones = new Set<number>();

  get size(): number { return this.count; }

  /** Reserves the lowest free id for `obj` (xa_alloc with XA_FLAGS_ALLOC1). */
  reserve(obj: IommufdObject): number {
    let id = 1;
    while ((id < this.slots.length && this.slots[id] !== undefined) || this.tombstones.has(id)) id++;
    if (id > ID_LIMIT) return -errno.ENOSPC;
    obj.id = id;
    this.slots[id] = null;
    this.count++;
    return 0;
  }

  /** Publishes a reserved object: from now on lookups find it. */
  finalize(obj: IommufdObject): void {
    this.slots[obj.id] = obj;
  }

  /** Gives back the id of an object that was never published. */
  unreserve(obj: IommufdObject): void {
    if (this.slots[obj.id] === null) this.free(obj.id);
  }

  private free(id: number): void {
    this.slots[id] = undefined;
    this.count--;
  }

  /** The published object `id` of `type` (any type when undefined), or undefined. */
  lookup(id: number, type?: ObjType): IommufdObject | undefined {
    // Any u32 may come from userspace: only ids inside the array are looked at.
    const o = id < this.slots.length ? this.slots[id] : undefined;
    if (!o || (type !== undefined && o.type !== type)) return undefined;
    return o;
  }

  /** Removes `id` if only the table references it: 0, -ENOENT or -EBUSY. */
  remove(id: number): number {
    const o = this.lookup(id);
    if (!o) return -errno.ENOENT;
    if (o.users !== 1) return -errno.EBUSY;
    this.free(id);
    o.users = 0;
    o.destroy();
    return 0;
  }

  /**
   * iommufd_object_tombstone_user: destroys `obj` (only the table holds it) and keeps its id
   * taken; lookups and DESTROY see nothing there (ENOENT) until the context is released.
   */
  tombstone(obj: IommufdObject): void {
    if (this.lookup(obj.id) !== obj) return;
    this.free(obj.id);
    this.tombstones.add(obj.id);
    obj.users = 0;
    obj.destroy();
  }

  /** Every published object, in id order. */
  all(): IommufdObject[] {
    const out: IommufdObject[] = [];
    for (const o of this.slots) if (o) out.push(o);
    return out;
  }

  /**
   * The release sweep: destroys the objects only the table holds, again and again, until none
   * are left (leaves first, so interior objects lose their users on the way).
   */
  sweep(): void {
    this.tombstones.clear();
    while (this.count > 0) {
      let destroyed = 0;
      for (const o of this.all()) {
        if (o.users !== 1) continue;
        this.free(o.id);
        o.users = 0;
        o.destroy();
        destroyed++;
      }
      if (destroyed === 0) throw new Error(`iommufd: release cannot make progress: ${this.all().map((o) => `${o.describe()} users=${o.users}`).join(", ")}`);
    }
  }
}
