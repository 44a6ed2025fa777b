// The browser page in a real browser: `vfio-emu web --port 0` serves it, Debian's Chromium
// (installed by .ci/run, never by this test) loads it headless through playwright-core, and
// both sequences are walked. Asserted: no console error, the page is cross-origin isolated,
// the blocked file's exact EINVAL, DMA bytes read back and compared (by the page and here),
// the fault after the unmap; the embedding example's output. One screenshot is saved to
// artifacts/browser.png.
import { describe, it, expect, beforeAll, beforeEach, afterAll } from "vitest";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";

const root = fileURLToPath(new URL("..", import.meta.url));
const CHROMIUM = "/usr/bin/chromium";

let server: ChildProcess;
let url = "";

/** Starts `vfio-emu web --port 0` from `cli`; resolves with the server and the URL it printed. */
function serve(cli: string, cwd: string): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [cli, "web", "--port", "0"], { cwd, stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (d) => {
      out += String(d);
      const m = /serving (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) resolve({ proc, url: m[1] });
    });
    proc.once("exit", (code) => reject(new Error(`vfio-emu web exited with ${code}: ${out}`)));
  });
}
let context: BrowserContext;
let userDataDir = "";
const problems: string[] = [];

type Facts = Record<string, Record<string, unknown>>;
interface PageApi {
  ready: Promise<void>;
  facts: Facts;
  done: number;
  total: number;
  failed: string | null;
  step(): Promise<void>;
  runAll(): Promise<void>;
  select(seq: string): Promise<void>;
  readBuffer(offset: number, length: number): number[] | string;
}
declare const vfioEmu: PageApi;

async function open(path: string): Promise<Page> {
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") problems.push(`${path}: console.${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`${path}: uncaught ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`${path}: request failed ${r.url()}`));
  await page.goto(url + path);
  return page;
}

const MISSING = `${CHROMIUM} is missing: the browser test needs Debian's chromium (.ci/run installs it: apt-get install -y chromium)`;

// Without the browser every test fails with MISSING (never a skip: CI installs it).
beforeEach(() => {
  if (!existsSync(CHROMIUM)) throw new Error(MISSING);
});

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) return;
  ({ proc: server, url } = await serve("dist/cli.js", root));
  userDataDir = mkdtempSync(join(tmpdir(), "vfio-emu-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1440, height: 1250 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}, 60_000);

afterAll(async () => {
  await context?.close();
  server?.kill("SIGTERM");
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

describe("the browser page", () => {
  it("serves it cross-origin isolated, with the package's bundle and examples", async () => {
    for (const path of ["", "main.js", "main.css", "device-worker.js", "build/browser/vfio-emu.js", "examples/browser.html"]) {
      const r = await fetch(url + path);
      expect(r.status, path).toBe(200);
      expect(r.headers.get("cross-origin-opener-policy")).toBe("same-origin");
      expect(r.headers.get("cross-origin-embedder-policy")).toBe("require-corp");
    }
    expect((await fetch(url + "..%2fpackage.json")).status).toBe(404);
    expect((await fetch(url + "nothing-here.js")).status).toBe(404);
  });

  it("walks the cdev sequence: blocked read, bind, attach, map, DMA both ways, unmap, fault", async () => {
    const page = await open("");
    await page.waitForFunction(() => typeof vfioEmu === "object");
    await page.evaluate(() => vfioEmu.ready);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    expect(await page.evaluate(() => vfioEmu.total)).toBe(8);

    // Step by step up to the DMA: the gate is visible in the files table.
    for (let i = 0; i < 2; i++) await page.evaluate(() => vfioEmu.step());
    await expect.poll(() => page.locator('tr[data-kind="vfio-device"]').getAttribute("data-granted")).toBe("false");
    const blocked = (await page.evaluate(() => vfioEmu.facts)).blocked;
    expect(blocked).toEqual({ rc: -22, workerRc: -22 });
    await page.evaluate(() => vfioEmu.step());
    await expect.poll(() => page.locator('tr[data-kind="vfio-device"]').getAttribute("data-granted")).toBe("true");

    await page.evaluate(() => vfioEmu.runAll());
    const f = await page.evaluate(() => vfioEmu.facts);
    expect(await page.evaluate(() => vfioEmu.failed)).toBe(null);
    expect(await page.evaluate(() => vfioEmu.done)).toBe(8);
    expect(f.bind).toEqual({ devid: 1, rc: 4, workerRc: 4, ids: "1b36:10ec" });
    expect(f.attach).toEqual({ ioas: 2, hwpt: 3 });
    expect(f.dma).toMatchObject({ writeRc: 0, readRc: 0, writeOk: true, readOk: true, first16: "vfio-emu d0:0000" });
    expect(f.unmap).toEqual({ unmapped: 4 << 20 });
    expect(f.fault).toMatchObject({ rc: -14, reason: "unmapped", iova: 0x40000000, permRc: -14, permReason: "perm" });

    // The bytes themselves, compared here: the engines streamed the process's second half into
    // the first, 64 KiB per transfer, until the unmap stopped them.
    const first = await page.evaluate(() => vfioEmu.readBuffer(0, 16));
    expect(String.fromCharCode(...(first as number[]))).toBe("vfio-emu c0:0000");
    for (const at of [0, 0x1f0000]) {
      const dst = await page.evaluate((o) => vfioEmu.readBuffer(o, 0x10000), at);
      const src = await page.evaluate((o) => vfioEmu.readBuffer(o, 0x10000), at + 0x200000);
      expect(dst).toEqual(src);
    }
    // The page shows the fault, the IOTLB and the throughput it measured.
    await expect.poll(() => page.locator("#faults").textContent()).toContain("fault: IOVA 0x10000 write — perm");
    expect(Number(await page.locator("#iotlb-ratio").getAttribute("data-lookups"))).toBeGreaterThan(1000);
    expect(await page.locator(".steps li.done").count()).toBe(8);
    mkdirSync(join(root, "artifacts"), { recursive: true });
    await page.screenshot({ path: join(root, "artifacts/browser.png"), fullPage: true });

    // The buttons a person uses: Reset boots a fresh kernel, the tab switches the sequence,
    // Step walks it.
    await page.click("#reset");
    await expect.poll(() => page.evaluate(() => vfioEmu.done)).toBe(0);
    await expect.poll(() => page.locator("#files .empty").count()).toBe(1);
    await page.click("#tab-legacy");
    await expect.poll(() => page.evaluate(() => vfioEmu.facts.sequence as unknown)).toBe("legacy");
    await page.click("#step");
    await expect.poll(() => page.evaluate(() => vfioEmu.done)).toBe(1);
    await expect.poll(() => page.locator('tr[data-kind="vfio-group"]').count()).toBe(1);
    await page.close();
  }, 60_000);

  it("walks the legacy group sequence: group, EINVAL without an IOMMU, container, device fd, MAP_DMA, DMA, unmap, fault", async () => {
    const page = await open("?seq=legacy");
    await page.waitForFunction(() => typeof vfioEmu === "object");
    await page.evaluate(() => vfioEmu.ready);
    await page.evaluate(() => vfioEmu.runAll());
    expect(await page.evaluate(() => vfioEmu.failed)).toBe(null);
    const f = await page.evaluate(() => vfioEmu.facts);
    expect(f.sequence).toBe("legacy");
    expect(f.group).toEqual({ flags: 1 });
    expect(f.blocked).toEqual({ error: "EINVAL" });
    expect(f.container).toEqual({ flags: 3 });
    expect(f.device).toMatchObject({ rc: 4 });
    expect(f.dma).toMatchObject({ writeRc: 0, readRc: 0, writeOk: true, readOk: true });
    expect(f.unmap).toEqual({ unmapped: 4 << 20 });
    expect(f.fault).toMatchObject({ rc: -14, reason: "unmapped", iova: 0x40000000 });
    await page.close();
  }, 60_000);

  it("runs the embedding example (examples/browser.html)", async () => {
    const page = await open("examples/browser.html");
    await page.waitForFunction(() => document.body.dataset.done === "1", null, { timeout: 20_000 });
    expect(await page.locator("#out").textContent()).toBe([
      "booted: 1 device, 0000:00:04.0 as /dev/vfio/devices/vfio0",
      "bound: devid 2",
      "attached: hwpt 3",
      "a Web Worker's device wrote 1048576 bytes; the process reads 5a 5a 5a 5a",
      "after unmap the device faults: -14 (unmapped)",
      "",
    ].join("\n"));
    await page.close();
  }, 30_000);

  it("serves the page from the packed package, as `npx vfio-emu web` does for a user", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vfio-emu-web-pack-"));
    let packed: ChildProcess | undefined;
    try {
      const { stdout } = await promisify(execFile)("npm", ["pack", "--json", "--pack-destination", dir], { cwd: root, maxBuffer: 1 << 24, timeout: 60_000 });
      const [info] = JSON.parse(stdout);
      const files: string[] = info.files.map((f: { path: string }) => f.path);
      for (const f of ["dist/web.js", "build/web/index.html", "build/web/main.js", "build/web/main.css", "build/web/device-worker.js",
        "build/browser/vfio-emu.js", "build/browser/worker.js", "examples/browser.html", "examples/browser.mjs", "examples/browser-device.mjs"]) {
        expect(files).toContain(f);
      }
      const pkg = join(dir, "node_modules", "vfio-emu");
      mkdirSync(pkg, { recursive: true });
      await promisify(execFile)("tar", ["xzf", join(dir, info.filename), "-C", pkg, "--strip-components=1"]);
      const s = await serve(join(pkg, "dist/cli.js"), dir);
      packed = s.proc;
      const page = await context.newPage();
      page.on("pageerror", (e) => problems.push(`packed: uncaught ${e.message}`));
      page.on("console", (m) => { if (m.type() === "error") problems.push(`packed: console.error: ${m.text()}`); });
      await page.goto(s.url);
      await page.waitForFunction(() => typeof vfioEmu === "object");
      await page.evaluate(() => vfioEmu.ready);
      await page.evaluate(() => vfioEmu.step());
      expect((await page.evaluate(() => vfioEmu.facts)).open).toEqual({ iommufd: 0, dev: 1 });
      await page.close();
    } finally {
      packed?.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it("logged no console error or warning and no failed request", () => {
    expect(problems).toEqual([]);
  });
});
