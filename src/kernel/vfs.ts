// The file-system namespace: /dev (character devices registered by drivers) and /sys
// (attributes and links registered by buses and drivers) in one tree. Paths are absolute;
// links resolve as on Linux, relative to the directory that holds them.

import { errno } from "../uapi/errno.js";
import { S_IFCHR, S_IFDIR, S_IFREG } from "../uapi/posix.js";
import type { File, StatResult } from "./file.js";
import type { Process } from "./process.js";

export type Opener = (proc: Process, flags: number, path: string) => File | number;

export type VNode =
  | { kind: "dir"; children: Map<string, VNode> }
  | { kind: "attr"; read: () => string }
  | { kind: "link"; target: string }
  | { kind: "chr"; rdev: number; perm: number; open: Opener };

const MAX_LINKS = 40;

function split(path: string): string[] {
  return path.split("/").filter((p) => p.length > 0 && p !== ".");
}

export class Vfs {
  readonly root: VNode = { kind: "dir", children: new Map() };

  /** Creates the directories of `path` as needed and returns the last one. */
  mkdirp(path: string): VNode & { kind: "dir" } {
    let d = this.root as VNode & { kind: "dir" };
    for (const part of split(path)) {
      let n = d.children.get(part);
      if (!n) {
        n = { kind: "dir", children: new Map() };
        d.children.set(part, n);
      }
      if (n.kind !== "dir") throw new Error(`vfs: ${path}: ${part} is not a directory`);
      d = n;
    }
    return d;
  }

  private add(path: string, node: VNode): void {
    const parts = split(path);
    const name = parts.pop();
    if (!name) throw new Error(`vfs: bad path ${path}`);
    const dir = this.mkdirp("/" + parts.join("/"));
    if (dir.children.has(name)) throw new Error(`vfs: ${path} exists`);
    dir.children.set(name, node);
  }

  addChr(path: string, rdev: number, perm: number, open: Opener): void { this.add(path, { kind: "chr", rdev, perm, open }); }
  addAttr(path: string, read: () => string): void { this.add(path, { kind: "attr", read }); }
  addLink(path: string, target: string): void { this.add(path, { kind: "link", target }); }

  /** Removes the node at `path` (and everything below it); empty parents are kept. */
  remove(path: string): void {
    const parts = split(path);
    const name = parts.pop()!;
    const dir = this.walk(parts, false);
    if (typeof dir !== "number" && dir.node.kind === "dir") dir.node.children.delete(name);
  }

  /**
   * Resolves `path` to its node and canonical path. `followLast` follows a final link.
   * Returns -ENOENT, -ENOTDIR or -ELOOP.
   */
  resolve(path: string, followLast = true): { node: VNode; path: string } | number {
    if (!path.startsWith("/")) return -errno.ENOENT;
    return this.walk(split(path), followLast);
  }

  private walk(parts: string[], followLast: boolean): { node: VNode; path: string } | number {
    let links = 0;
    const todo = [...parts];
    const stack: { node: VNode; name: string }[] = [];
    let cur: VNode = this.root;
    while (todo.length > 0) {
      const part = todo.shift()!;
      if (part === "..") {
        const up = stack.pop();
        cur = stack.length > 0 ? stack[stack.length - 1].node : this.root;
        if (!up) cur = this.root;
        continue;
      }
      if (cur.kind !== "dir") return -errno.ENOTDIR;
      const next = cur.children.get(part);
      if (!next) return -errno.ENOENT;
      if (next.kind === "link" && (todo.length > 0 || followLast)) {
        if (++links > MAX_LINKS) return -errno.ELOOP;
        const t = next.target;
        if (t.startsWith("/")) {
          stack.length = 0;
          cur = this.root;
        }
        todo.unshift(...split(t));
        continue;
      }
      stack.push({ node: next, name: part });
      cur = next;
    }
    return { node: cur, path: "/" + stack.map((s) => s.name).join("/") };
  }

  stat(node: VNode): StatResult {
    switch (node.kind) {
      case "dir": return { mode: S_IFDIR | 0o755, rdev: 0, size: 0 };
      case "attr": return { mode: S_IFREG | 0o444, rdev: 0, size: 4096 };
      case "link": return { mode: 0o120777, rdev: 0, size: node.target.length };
      case "chr": return { mode: S_IFCHR | node.perm, rdev: node.rdev, size: 0 };
    }
  }
}
