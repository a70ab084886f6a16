/**
 * `deno task serve`: serves the page in `web/` and the checkpoints folder, so
 * that a browser segments photos with the same checkpoints as
 * `deno task segment`. Everything the page needs comes from this server
 * (TensorFlow.js from `node_modules`), so it works with no network.
 *
 * Read-only and closed: GET and HEAD only; a path is served only when it
 * names a file inside `web/` or the checkpoints folder, after decoding and
 * after following symbolic links, or one of a few named files (TensorFlow.js
 * and its wasm backend, the engine's SIMD kernels, `lib/custom_layers.js`, `lib/classes.js`,
 * `lib/segment_pixels.js`, `lib/checkpoint_check.js`), and with `--data`
 * the files of a dataset folder in the Imori layout under `/data/`, which
 * `/data/` lists as JSON for the training page.
 * `..`, encoded or not, hidden names and links that lead outside get 404 or
 * 403. `/checkpoints/` lists the checkpoints as JSON for the page.
 *
 * Written on `Deno.serve` rather than a static-file library: the rules above
 * (real paths checked against the folder, a fixed list of extra files, the
 * listing) are most of the work, and the file serving itself is a few lines.
 *
 * @module
 */
import tfjsPackage from "@tensorflow/tfjs/package.json" with { type: "json" };
import "@tensorflow/tfjs-backend-wasm/package.json" with { type: "json" };
import { fileURLToPath } from "node:url";
import { runMain, UserError } from "../lib/errors.ts";
import { type FlagDefs, parseFlags } from "../lib/flags.ts";
import { basename, extname, join, resolve } from "../lib/path.ts";

const FLAGS = {
  port: { type: "int", default: 8000, min: 0, max: 65535, help: "Port (0: any free port)" },
  host: {
    type: "string",
    default: "127.0.0.1",
    help: "Interface to listen on; 0.0.0.0 lets every machine that reaches this one in " +
      "(needs --allow-net for it)",
  },
  checkpoints: { type: "string", default: "checkpoints", help: "Checkpoints folder to serve" },
  data: {
    type: "string",
    default: "data/imori",
    help: "Dataset folder in the Imori layout the training page may train on, served read-only " +
      "at /data/ when it exists",
  },
} as const satisfies FlagDefs;

const WEB_DIR = fileURLToPath(new URL("../web/", import.meta.url));

/** Files served by name besides the two folders: URL path to file. */
function namedFiles(): Map<string, string> {
  const npm = (specifier: string) => fileURLToPath(import.meta.resolve(specifier));
  const wasmDist = "@tensorflow/tfjs-backend-wasm/dist/";
  return new Map([
    ["/vendor/tf.min.js", npm("@tensorflow/tfjs/dist/tf.min.js")],
    ["/vendor/tf-backend-wasm.min.js", npm(`${wasmDist}tf-backend-wasm.min.js`)],
    ...["", "-simd", "-threaded-simd"].map((variant): [string, string] => [
      `/vendor/tfjs-backend-wasm${variant}.wasm`,
      npm(`${wasmDist}tfjs-backend-wasm${variant}.wasm`),
    ]),
    // The engine's WebAssembly SIMD kernels, which the training page's worker registers
    [
      "/vendor/engine-simd.wasm",
      fileURLToPath(new URL("../engine/simd/kernels.wasm", import.meta.url)),
    ],
    ["/lib/custom_layers.js", fileURLToPath(new URL("../lib/custom_layers.js", import.meta.url))],
    ["/lib/classes.js", fileURLToPath(new URL("../lib/classes.js", import.meta.url))],
    ["/lib/segment_pixels.js", fileURLToPath(new URL("../lib/segment_pixels.js", import.meta.url))],
    [
      "/lib/checkpoint_check.js",
      fileURLToPath(new URL("../lib/checkpoint_check.js", import.meta.url)),
    ],
  ]);
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".bin": "application/octet-stream",
  ".wasm": "application/wasm",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".webp": "image/webp",
  ".svg": "image/svg+xml",
};

/** The folders and files a server answers from. */
export interface ServeRoots {
  /** The page's folder. @default web/ beside tools/ */
  web?: string;
  /** The checkpoints folder. @default "checkpoints" */
  checkpoints?: string;
  /** A dataset folder in the Imori layout, served at `/data/` (its files listed there as JSON);
   * none when absent or missing. @default {none} */
  data?: string;
}

/** One checkpoint in the `/checkpoints/` listing. */
export interface CheckpointEntry {
  /** Folder name, the path under `/checkpoints/`. */
  name: string;
  /** Network, from `training_state.json` when there is one. */
  model?: string;
  /** Input size it was trained at. */
  size?: number;
  /** Iterations trained. */
  iteration?: number;
}

function plain(status: number, text: string, headers: HeadersInit = {}): Response {
  return new Response(`${text}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
}

/** True when `path` is `root` or inside it; both are real (link-free) paths. */
function isInside(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith("/") ? root : `${root}/`);
}

/**
 * The decoded segments of a URL path, or `undefined` when one is empty, `.`,
 * `..`, hidden, or holds a slash, backslash or NUL once decoded.
 */
function segments(pathname: string): string[] | undefined {
  const parts: string[] = [];
  for (const raw of pathname.split("/").slice(1)) {
    let part: string;
    try {
      part = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (part === "" || part.startsWith(".") || /[/\\\0]/.test(part)) return undefined;
    parts.push(part);
  }
  return parts;
}

async function listCheckpoints(root: string): Promise<CheckpointEntry[]> {
  const found: CheckpointEntry[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(root));
  } catch {
    return found; // no folder yet: no checkpoints
  }
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.name.startsWith(".") || /\.(previous|partial-\w+)$/.test(entry.name)) continue;
    const real = await Deno.realPath(join(root, entry.name)).catch(() => "");
    if (!isInside(real, root)) continue;
    const hasModel = await Deno.stat(join(real, "model.json")).then(
      (info) => info.isFile,
      () => false,
    );
    if (!hasModel) continue;
    let state: Record<string, unknown> = {};
    try {
      state = JSON.parse(await Deno.readTextFile(join(real, "training_state.json")));
    } catch {
      // no state or a damaged one: the page reads the sizes from model.json
    }
    found.push({
      name: entry.name,
      ...(typeof state.model === "string" ? { model: state.model } : {}),
      ...(typeof state.size === "number" ? { size: state.size } : {}),
      ...(typeof state.iteration === "number" ? { iteration: state.iteration } : {}),
    });
  }
  return found;
}

/**
 * The files of a dataset folder in the Imori layout, as `/data/` lists them:
 * `{train,test}/{images,seg_images}/<class>/<file>`, hidden names and links
 * that lead outside the folder left out.
 */
async function listDataFiles(root: string): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: string, parts: string[]) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch {
      return;
    }
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.name.startsWith(".")) continue;
      const real = await Deno.realPath(join(dir, entry.name)).catch(() => "");
      if (!isInside(real, root)) continue;
      const info = await Deno.stat(real);
      const path = [...parts, entry.name];
      if (parts.length < 3 && info.isDirectory) await walk(real, path);
      else if (parts.length === 3 && info.isFile) files.push(path.join("/"));
    }
  };
  for (const split of ["train", "test"]) {
    for (const kind of ["images", "seg_images"]) await walk(join(root, split, kind), [split, kind]);
  }
  return files;
}

async function serveFile(path: string, root: string | undefined, head: boolean): Promise<Response> {
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch {
    return plain(404, "Not found");
  }
  if (root !== undefined && !isInside(real, root)) return plain(403, "Forbidden");
  let file: Deno.FsFile;
  try {
    file = await Deno.open(real, { read: true });
  } catch {
    return plain(404, "Not found");
  }
  const info = await file.stat();
  if (!info.isFile) {
    file.close();
    return plain(404, "Not found");
  }
  const headers = {
    "content-type": CONTENT_TYPES[extname(real).toLowerCase()] ?? "application/octet-stream",
    "content-length": String(info.size),
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
  };
  if (head) {
    file.close();
    return new Response(null, { headers });
  }
  return new Response(file.readable, { headers });
}

/**
 * The request handler of the server: GET and HEAD of the page, the
 * checkpoints and the named files, nothing else.
 *
 * @param roots The page's folder and the checkpoints folder.
 * @returns A handler for `Deno.serve`.
 *
 * @example
 * ```ts
 * import { createHandler } from "./serve.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const handler = await createHandler({ checkpoints: "no/such/folder" });
 * assertEquals((await handler(new Request("http://x/index.html"))).status, 200);
 * assertEquals((await handler(new Request("http://x/%2e%2e/deno.json"))).status, 404);
 * assertEquals((await handler(new Request("http://x/", { method: "POST" }))).status, 405);
 * ```
 */
export async function createHandler(
  roots: ServeRoots = {},
): Promise<(request: Request) => Promise<Response>> {
  const real = (dir: string) => Deno.realPath(dir).catch(() => resolve(dir));
  const web = await real(roots.web ?? WEB_DIR);
  const checkpoints = await real(roots.checkpoints ?? "checkpoints");
  const data = roots.data === undefined
    ? undefined
    : await Deno.realPath(roots.data).catch(() => undefined);
  const named = namedFiles();
  return async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return plain(405, "Method not allowed: this server is read-only", { allow: "GET, HEAD" });
    }
    const head = request.method === "HEAD";
    const { pathname } = new URL(request.url);
    const file = named.get(pathname);
    if (file !== undefined) return serveFile(file, undefined, head);
    if (pathname === "/") return serveFile(join(web, "index.html"), web, head);
    if (pathname === "/checkpoints/") {
      const body = JSON.stringify(await listCheckpoints(checkpoints));
      return new Response(head ? null : body, {
        headers: { "content-type": "application/json", "cache-control": "no-cache" },
      });
    }
    if (pathname === "/data/") {
      // Always an answer (no 404 for the page's console): a null name when none is served
      const body = JSON.stringify(
        data === undefined
          ? { name: null, files: [] }
          : { name: basename(data), files: await listDataFiles(data) },
      );
      return new Response(head ? null : body, {
        headers: { "content-type": "application/json", "cache-control": "no-cache" },
      });
    }
    const parts = segments(pathname);
    if (parts === undefined || parts.length === 0) return plain(404, "Not found");
    if (parts[0] === "data") {
      if (data === undefined) return plain(404, "Not found");
      return serveFile(join(data, ...parts.slice(1)), data, head);
    }
    if (parts[0] === "checkpoints") {
      return serveFile(join(checkpoints, ...parts.slice(1)), checkpoints, head);
    }
    return serveFile(join(web, ...parts), web, head);
  };
}

/** Where and what {@linkcode startServer} serves. */
export interface ServeOptions extends ServeRoots {
  /** Interface to listen on. @default "127.0.0.1" */
  hostname?: string;
  /** Port; 0 picks a free one. @default 8000 */
  port?: number;
}

/** A running server. */
export interface RunningServer {
  /** The page's address, e.g. `http://127.0.0.1:8000/`. */
  url: string;
  /** Stops the server. */
  close(): Promise<void>;
}

/**
 * Starts the server.
 *
 * @param options Interface, port and folders.
 * @returns Its address and a way to stop it.
 * @throws {UserError} When the port is taken or listening there is not allowed.
 *
 * @example
 * ```ts
 * import { startServer } from "./serve.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const server = await startServer({ port: 0, checkpoints: "no/such/folder" });
 * const response = await fetch(new URL("checkpoints/", server.url));
 * assertEquals(await response.json(), []);
 * await server.close();
 * ```
 */
export async function startServer(options: ServeOptions = {}): Promise<RunningServer> {
  const { hostname = "127.0.0.1", port = 8000 } = options;
  const handler = await createHandler(options);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ hostname, port, onListen: () => {} }, handler);
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new UserError(
        `Port ${port} on ${hostname} is in use: pass another --port, or stop the other server`,
      );
    }
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw new UserError(
        `Not allowed to listen on ${hostname}: \`deno task serve\` may only use 127.0.0.1; ` +
          `for another interface run \`deno run --allow-read --allow-net tools/serve.ts ` +
          `--host ${hostname}\``,
      );
    }
    throw error;
  }
  const address = server.addr;
  const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  return { url: `http://${host}:${address.port}/`, close: () => server.shutdown() };
}

/**
 * Serves the page and the checkpoints until stopped, printing the address.
 *
 * @param args Command-line arguments.
 * @returns A promise that resolves once the server listens.
 */
export async function run(args: string[]): Promise<RunningServer> {
  const flags = parseFlags(args, FLAGS, {
    usage: "deno task serve [flags]",
    summary: "Serves the segmentation page (web/) and the checkpoints folder, read-only, on " +
      "127.0.0.1; open the address it prints and drop a photo on the page.",
  });
  const server = await startServer({
    hostname: flags.host,
    port: flags.port,
    checkpoints: flags.checkpoints,
    data: flags.data,
  });
  const served = await Deno.realPath(flags.data).then(() => true, () => false);
  const checkpoints = await listCheckpoints(await Deno.realPath(flags.checkpoints).catch(() => ""));
  console.log(
    `serve: web/ and ${flags.checkpoints}/ (${checkpoints.length} checkpoints: ` +
      `${checkpoints.map((entry) => entry.name).join(", ") || "none yet"}), ` +
      `TensorFlow.js ${tfjsPackage.version} from node_modules, read-only`,
  );
  if (checkpoints.length === 0) {
    console.log("serve: train one first, e.g. `deno task unetlike`; the page lists it on reload");
  }
  if (flags.host !== "127.0.0.1" && flags.host !== "localhost") {
    console.log(`serve: listening on ${flags.host}: other machines can fetch the checkpoints`);
  }
  console.log(
    served
      ? `serve: ${flags.data}/ at /data/, read-only: the training page can train on its photos`
      : `serve: no dataset folder ${flags.data} (\`deno task download\` fetches Imori's), so the ` +
        `training page offers the synthetic newts and your own folder`,
  );
  console.log(`open ${server.url}  (Ctrl-C stops); ${server.url}train.html trains an exercise`);
  return server;
}

if (import.meta.main) await runMain(async () => void (await run(Deno.args)));
