// `vfio-emu web`: serves the browser page (build/web) and the package's browser bundle and
// examples on the loopback address. The page posts the kernel's shared WebAssembly.Memory to
// its device workers, which a browser allows only to a cross-origin isolated page: every
// response carries COOP same-origin and COEP require-corp (and CORP same-origin, so the page's
// own subresources pass its COEP).

import { createServer, type Server } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** The package root: dist/web.js sits one level below it. */
const PACKAGE_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** URL prefix -> folder of the package. "/" is the page itself. */
const MOUNTS: [string, string][] = [
  ["/build/browser/", "build/browser"],
  ["/examples/", "examples"],
  ["/", "build/web"],
];

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".ico": "image/x-icon",
  ".map": "application/json",
};

/** The headers that make the page cross-origin isolated (crossOriginIsolated === true). */
export const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
} as const;

export interface WebServerOptions {
  /** TCP port on 127.0.0.1; 0 picks a free one. */
  port: number;
  /** Where the package's files are (default: this package). */
  root?: string;
}

export interface WebServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Maps a request path to a file of the package, or null (outside every mount, or "..") . */
function resolvePath(root: string, urlPath: string): string | null {
  let path: string;
  try {
    path = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (path.includes("\0")) return null;
  for (const [prefix, dir] of MOUNTS) {
    if (!path.startsWith(prefix)) continue;
    let rest = path.slice(prefix.length);
    if (rest === "" || rest.endsWith("/")) rest += "index.html";
    const base = join(root, dir);
    const file = normalize(join(base, rest));
    return file.startsWith(base + sep) ? file : null;
  }
  return null;
}

/** Starts the server; resolves once it listens. */
export function startWebServer(opts: WebServerOptions): Promise<WebServer> {
  const root = opts.root ?? PACKAGE_ROOT;
  const server: Server = createServer(async (req, res) => {
    const send = (status: number, body: string | Buffer, type = "text/plain; charset=utf-8") => {
      res.writeHead(status, { ...ISOLATION_HEADERS, "Content-Type": type, "Cache-Control": "no-cache" });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, "only GET and HEAD\n");
    const file = resolvePath(root, new URL(req.url ?? "/", "http://localhost").pathname);
    if (!file) return send(404, "not found\n");
    try {
      const st = await stat(file);
      if (!st.isFile()) return send(404, "not found\n");
      send(200, await readFile(file), TYPES[extname(file)] ?? "application/octet-stream");
    } catch {
      send(404, "not found\n");
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, "127.0.0.1", () => {
      const addr = server.address();
      const port = typeof addr === "object" && addr ? addr.port : opts.port;
      resolve({
        url: `http://127.0.0.1:${port}/`,
        port,
        close: () => new Promise<void>((done) => {
          server.closeAllConnections();
          server.close(() => done());
        }),
      });
    });
  });
}
