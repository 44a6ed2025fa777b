// The build's rules for a data-plane module (DESIGN.md "Memory"): no data section (every
// instantiation would re-apply it over shared state) and no import but env.memory.
export function wasmSections(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (u8[0] !== 0 || u8[1] !== 0x61 || u8[2] !== 0x73 || u8[3] !== 0x6d) throw new Error("not a wasm module");
  const ids = [];
  let p = 8;
  while (p < u8.length) {
    const id = u8[p++];
    let size = 0, shift = 0, b;
    do { b = u8[p++]; size |= (b & 0x7f) << shift; shift += 7; } while (b & 0x80);
    ids.push(id);
    p += size;
  }
  return ids;
}

export function checkWasm(bytes, name) {
  const problems = [];
  const ids = wasmSections(bytes);
  if (ids.includes(11)) problems.push("it has a data section (id 11)");
  const imports = WebAssembly.Module.imports(new WebAssembly.Module(bytes));
  for (const imp of imports) {
    if (!(imp.module === "env" && imp.name === "memory" && imp.kind === "memory")) {
      problems.push(`it imports ${imp.module}.${imp.name} (${imp.kind})`);
    }
  }
  if (!imports.some((i) => i.module === "env" && i.name === "memory")) problems.push("it does not import env.memory");
  if (problems.length) throw new Error(`${name} breaks the data-plane rules: ${problems.join("; ")}`);
  return ids;
}
