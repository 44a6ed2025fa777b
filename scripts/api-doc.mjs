// The generated part of docs/API.md: every constant (by the uapi module that defines it, with
// its value), the errno table and every struct layout (size, minimum size, fields with offsets),
// read from the built dist/uapi/ modules. The prose around it is written by hand; test/api_doc
// checks that both cover every export.
//
//   node scripts/api-doc.mjs          prints the section
//   node scripts/api-doc.mjs --write  replaces it in docs/API.md (between the markers)
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
export const BEGIN = "<!-- generated: constants and structs (node scripts/api-doc.mjs --write) -->";
export const END = "<!-- end of generated -->";

const MODULES = [
  ["errno", "the kernel-internal errno (never seen by a program: ENOTTY instead)"],
  ["ioctl", "ioctl numbers' encoding (`_IOC` and friends are functions, above)"],
  ["vfio", "VFIO (`include/uapi/linux/vfio.h`)"],
  ["iommufd", "iommufd (`include/uapi/linux/iommufd.h`)"],
  ["posix", "POSIX and Linux (`O_*`, `PROT_*`, `MAP_*`, `EFD_*`, `F_*`, `POLL*`, `S_IF*`, `MFD_*`)"],
];

const isStruct = (v) => v !== null && typeof v === "object" && "fields" in v && "size" in v;
const value = (v) => (typeof v === "string" ? JSON.stringify(v) : v < 0 || v < 256 ? String(v) : `0x${v.toString(16)}`);

export async function generated() {
  const out = [BEGIN, ""];
  for (const [mod, title] of MODULES) {
    const m = await import(`${root}dist/uapi/${mod}.js`);
    // Sorted by name, as a module namespace lists them (whoever loads the module).
    const entries = Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const consts = entries.filter(([, v]) => typeof v === "number" || typeof v === "string");
    const structs = entries.filter(([, v]) => isStruct(v));
    out.push(`### Constants: ${title}`, "");
    if (consts.length) out.push(consts.map(([k, v]) => `\`${k}\` = ${value(v)}`).join(" ·\n"), "");
    if (structs.length) {
      out.push(`Struct layouts (x86_64, byte-exact; \`size\` = sizeof, \`minSize\` = the kernel's minimum):`, "",
        "| layout | size | minSize | fields (offset:size) |", "|---|---|---|---|");
      for (const [k, s] of structs) {
        const fields = Object.entries(s.fields).map(([f, d]) => `${f} ${d.off}:${d.size}${d.signed ? "s" : ""}`).join(", ");
        out.push(`| \`${k}\` | ${s.size} | ${s.minSize} | ${fields} |`);
      }
      out.push("");
    }
  }
  const { errno } = await import(`${root}dist/uapi/errno.js`);
  out.push("### Constants: `errno`", "", "`errno` maps each name to its positive number (results are `-errno.NAME`):", "",
    Object.entries(errno).sort(([, a], [, b]) => a - b).map(([k, v]) => `\`${k}\` = ${v}`).join(" ·\n"), "", END);
  return out.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const text = await generated();
  if (process.argv.includes("--write")) {
    const file = `${root}docs/API.md`;
    const doc = readFileSync(file, "utf8");
    const a = doc.indexOf(BEGIN), b = doc.indexOf(END);
    if (a < 0 || b < 0) throw new Error("docs/API.md: the generated section's markers are missing");
    writeFileSync(file, doc.slice(0, a) + text + doc.slice(b + END.length));
  } else {
    process.stdout.write(text + "\n");
  }
}
