/**
 * The training page's worker bundle: `web/build/train_worker.js` is what
 * `deno task build_web` builds from the sources now (it is committed, so a
 * fresh clone serves the page with no build), and the worker's module graph
 * holds the platform-neutral core only: no file, sharp, FFI or command-line
 * module of lib/, and no Deno API outside the engine's kernels (which call
 * Deno's FFI only on the oneDNN and OpenBLAS paths, never taken in a browser)
 * and the exercises' `if (import.meta.main)` lines, which the bundler turns
 * into `if (false)`.
 */
import denoJson from "../deno.json" with { type: "json" };
import { assert, assertEquals } from "../lib/assert.ts";
import { join } from "../lib/path.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/** Modules of lib/ that read files, the command line or native libraries: never in the page. */
const EDGES = [
  "lib/checkpoint.ts",
  "lib/data_dir.ts",
  "lib/dataset.ts",
  "lib/download.ts",
  "lib/figure.ts",
  "lib/flags.ts",
  "lib/image_io.ts",
  "lib/line_chart.ts",
  "lib/path.ts",
  "lib/synthetic_files.ts",
  "lib/test_figures.ts",
  "lib/train_and_save.ts",
  "lib/train_then_test.ts",
];

/** Runs the task's `deno bundle` with `-o` pointed elsewhere and extra arguments. */
async function bundle(output: string, extra: string[] = []): Promise<void> {
  const args = denoJson.tasks.build_web.split(" ").slice(1);
  const at = args.indexOf("-o");
  args.splice(at, 2, "-o", output, ...extra);
  const result = await new Deno.Command(Deno.execPath(), { args, cwd: ROOT, stderr: "piped" })
    .output();
  assert(result.success, new TextDecoder().decode(result.stderr));
}

Deno.test("web/build/train_worker.js is what `deno task build_web` builds now", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await bundle(join(dir, "train_worker.js"));
    const built = await Deno.readFile(join(dir, "train_worker.js"));
    const committed = await Deno.readFile(join(ROOT, "web/build/train_worker.js"));
    assert(
      built.length === committed.length && built.every((byte, index) => byte === committed[index]),
      "web/build/train_worker.js is stale: run `deno task build_web` and commit it",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the page's worker bundles the core only: no file, sharp, FFI or flag module", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const readable = join(dir, "readable.js");
    // The same build unminified: esbuild heads each module's code with a `// path` line.
    const args = denoJson.tasks.build_web.split(" ").slice(1).filter((arg) => arg !== "--minify");
    args.splice(args.indexOf("-o"), 2, "-o", readable);
    const result = await new Deno.Command(Deno.execPath(), { args, cwd: ROOT, stderr: "piped" })
      .output();
    assert(result.success, new TextDecoder().decode(result.stderr));
    const text = await Deno.readTextFile(readable);
    const modules = [...text.matchAll(/^\/\/ ((?:lib|exercises|engine|web)\/[\w/.]+)$/gm)]
      .map((match) => match[1]!);
    assert(modules.includes("lib/train.ts") && modules.includes("exercises/nearest.ts"));
    assertEquals(modules.filter((module) => EDGES.includes(module)), []);
    assert(!/node_modules\/\.deno\/sharp@/.test(text), "sharp is in the bundle");
    assert(!/^import .* from "node:/m.test(text), "a node: module is imported");
    // Every use of Deno's API lies in an engine module or an `if (false)` main guard.
    let module = "";
    const outside: string[] = [];
    for (const line of text.split("\n")) {
      module = line.match(/^\/\/ (\S+)$/)?.[1] ?? module;
      if (/\bDeno\./.test(line) && !module.startsWith("engine/") && !/^if \(false\)/.test(line)) {
        outside.push(`${module}: ${line.trim()}`);
      }
    }
    assertEquals(outside, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
