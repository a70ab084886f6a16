/**
 * The training page (web/train.html) in Debian's Chromium, headless, driven by
 * playwright-core as tests/browser_test.ts does: nearest trained at 32 px for
 * 30 iterations on wasm in the page's worker, from the same seed and
 * minibatches as the same run in Deno (web/training.ts on the engine's pure
 * wasm kernels, the ones the page registers): the per-iteration losses agree,
 * the worker's tensor count stays flat, the main thread has no long task over
 * 100 ms while training, and the downloaded checkpoint loads in `deno task
 * segment`. Screenshots mid-training and at the end go to answers/.
 */
import { chromium, type Page } from "playwright-core";
import { setupBackend } from "../engine/mod.ts";
import { assert, assertEquals } from "../lib/assert.ts";
import { join } from "../lib/path.ts";
import { writeSyntheticDataset } from "../lib/synthetic_files.ts";
import { startServer } from "../tools/serve.ts";
import { lessonNamed } from "../web/lessons.ts";
import { trainLesson } from "../web/training.ts";

const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
const SEGMENT = new URL("../tools/segment.ts", import.meta.url).pathname;
const ANSWERS = new URL("../answers/", import.meta.url).pathname;
const PROTOCOL = { size: 32, batchSize: 4, iters: 30, lr: 0.01, seed: 0 };
/**
 * Largest difference allowed between a loss of the page and of Deno at the
 * same iteration on wasm. Both run tfjs-backend-wasm's module with the
 * engine's pure-wasm kernels and its SIMD kernels (`engine/simd/kernels.wasm`,
 * which the page fetches from the server), as `deno task nearest` runs
 * without native libraries, on the same data and minibatches: the losses are
 * equal to the bit here; the margin allows a last-bit difference another V8
 * might make, grown over 30 steps of SGD with momentum.
 */
const WASM_TOLERANCE = 1e-5;
/**
 * The same on WebGL (SwiftShader here): float32 shaders that sum in another
 * order than wasm; nearest at 32 px drifted by 6.4e-4 over 25 iterations,
 * and the 8 iterations at 16 px this test runs stay well within 1e-3.
 */
const WEBGL_TOLERANCE = 1e-3;
/** The WebGL run: SwiftShader takes about a second per iteration at 16 px. */
const WEBGL_PROTOCOL = { ...PROTOCOL, size: 16, iters: 8 };
/** The longest main-thread task allowed while training, in ms. */
const LONG_TASK_MS = 100;

/** The page's run, as `web/train.js` records it in `trainLog`. */
interface TrainLog {
  losses: number[];
  numTensors: number[];
  ms: number[];
  msPerIter: number;
  line: string;
  backend: string;
  kernels: string;
}

/** The page's globals the test reads (tests compile without the DOM library). */
interface PageGlobals {
  trainLog: TrainLog;
  longTasks: number[];
  document: { getElementById(id: string): { dataset: Record<string, string | undefined> } };
}

/** Records every main-thread long task's duration, from the page's first script on. */
function observeLongTasks(): void {
  const page = globalThis as unknown as PageGlobals & {
    PerformanceObserver: new (
      callback: (list: { getEntries(): { duration: number }[] }) => void,
    ) => {
      observe(options: { type: string; buffered: boolean }): void;
    };
  };
  page.longTasks = [];
  new page.PerformanceObserver((list) => {
    for (const entry of list.getEntries()) page.longTasks.push(entry.duration);
  }).observe({ type: "longtask", buffered: true });
}

async function statusState(page: Page): Promise<string | null> {
  return await page.getAttribute("#status", "data-state");
}

/**
 * Opens the page on a backend, sets the protocol, trains, and returns the
 * page's log and the main thread's long tasks from the click on Train to the
 * end; `midway` runs once half of the iterations are done.
 */
async function trainInPage(
  page: Page,
  url: string,
  backend: string,
  protocol: typeof PROTOCOL,
  midway: () => Promise<void> = () => Promise.resolve(),
): Promise<{ run: TrainLog; longTasks: number[] }> {
  await page.goto(`${url}train.html?backend=${backend}&exercise=nearest`);
  await page.waitForFunction(
    () =>
      (globalThis as unknown as PageGlobals).document.getElementById("status").dataset.state !==
        "loading",
    undefined,
    { timeout: 60_000 },
  );
  assertEquals(await statusState(page), "ready", await page.textContent("#status") ?? "");
  assert((await page.textContent("#layers"))?.includes("up (UpSampling2D)"));
  await page.fill("#size", String(protocol.size));
  await page.dispatchEvent("#size", "change");
  await page.waitForFunction(() =>
    (globalThis as unknown as PageGlobals).document.getElementById("status").dataset.state ===
      "ready"
  );
  await page.fill("#iters", String(protocol.iters));
  await page.fill("#every", "10");
  const before = await page.evaluate(() => (globalThis as unknown as PageGlobals).longTasks.length);
  await page.click("#train");
  await page.waitForFunction(
    (half) => (globalThis as unknown as PageGlobals).trainLog.losses.length >= half,
    Math.ceil(protocol.iters / 2),
    { timeout: 120_000 },
  );
  await midway();
  await page.waitForFunction(
    () =>
      ["done", "error", "stopped"].includes(
        (globalThis as unknown as PageGlobals).document.getElementById("status").dataset.state ??
          "",
      ),
    undefined,
    { timeout: 120_000 },
  );
  const run = await page.evaluate(() => (globalThis as unknown as PageGlobals).trainLog);
  const longTasks = await page.evaluate(
    (from) => (globalThis as unknown as PageGlobals).longTasks.slice(from),
    before,
  );
  return { run, longTasks };
}

Deno.test({
  name: "the training page trains nearest in a worker as Deno does, in headless Chromium",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const found = await Deno.stat(CHROMIUM).then(() => true, () => false);
    assert(found, `No Chromium at ${CHROMIUM}: install it (apt-get install chromium)`);
    // Deno: the same run on the engine's pure wasm kernels with SIMD, as the page registers them
    await setupBackend("wasm", { quiet: true, blas: false, dnnl: false });
    const reference = await trainLesson(lessonNamed("nearest"), PROTOCOL);
    reference.model.dispose();
    // Deno's own speed on this machine's best wasm path (oneDNN or OpenBLAS when installed)
    const fastest = await setupBackend("wasm", { quiet: true });
    const fast = await trainLesson(lessonNamed("nearest"), PROTOCOL);
    fast.model.dispose();

    const dir = await Deno.makeTempDir();
    const server = await startServer({ port: 0, checkpoints: join(dir, "checkpoints") });
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      const problems: string[] = [];
      page.on("pageerror", (error) => problems.push(error.message));
      page.on("console", (message) => message.type() === "error" && problems.push(message.text()));
      const outside: string[] = [];
      await page.route((url) => !url.href.startsWith(server.url), (route) => {
        outside.push(route.request().url());
        return route.abort();
      });
      await page.addInitScript(observeLongTasks);
      const mid = join(ANSWERS, "train_page_mid.png");
      const { run, longTasks } = await trainInPage(page, server.url, "wasm", PROTOCOL, async () => {
        await page.screenshot({ path: mid, fullPage: true });
      });
      assertEquals(await statusState(page), "done", problems.join("; "));
      const end = join(ANSWERS, "train_page_end.png");
      await page.screenshot({ path: end, fullPage: true });

      assertEquals(run.backend, "wasm");
      assert(run.kernels.includes("with SIMD"), run.kernels);
      assertEquals(run.losses.length, PROTOCOL.iters);
      const differences = run.losses.map((loss, index) =>
        Math.abs(loss - reference.losses[index]!)
      );
      const worst = Math.max(...differences);
      console.log(
        `losses: page ${run.losses.slice(0, 3).map((loss) => loss.toFixed(5)).join(", ")} ... ` +
          `${run.losses.at(-1)!.toFixed(5)}; Deno ${
            reference.losses.slice(0, 3).map((loss) => loss.toFixed(5)).join(", ")
          } ... ${reference.losses.at(-1)!.toFixed(5)}; largest difference ${
            worst.toExponential(2)
          } (iteration ${differences.indexOf(worst) + 1})`,
      );
      assert(worst <= WASM_TOLERANCE, `losses differ by ${worst} > ${WASM_TOLERANCE}`);
      const tensors = run.numTensors;
      console.log(
        `tensors in the worker: ${tensors[9]} after iteration 10, ${tensors.at(-1)} ` +
          `after iteration ${tensors.length}`,
      );
      assertEquals(tensors.at(-1), tensors[9]);
      const longest = Math.max(0, ...longTasks);
      console.log(
        `main thread while training: ${longTasks.length} long tasks, the longest ` +
          `${longest.toFixed(0)} ms`,
      );
      assert(longest <= LONG_TASK_MS, `a main-thread task took ${longest} ms`);
      console.log(
        `ms/iteration, nearest ${PROTOCOL.size} px batch ${PROTOCOL.batchSize}: page wasm ` +
          `${run.msPerIter.toFixed(1)}; Deno pure wasm ${reference.msPerIter.toFixed(1)}, ` +
          `Deno ${fastest} ${fast.msPerIter.toFixed(1)}`,
      );
      console.log(`page: ${run.line}\nDeno: ${reference.line}`);
      console.log(`screenshots: ${mid}, ${end}`);

      // The checkpoint, downloaded as the page offers it, loads in `deno task segment`
      const checkpoint = join(dir, "checkpoints", "nearest");
      await Deno.mkdir(checkpoint, { recursive: true });
      const saved: Promise<string>[] = [];
      page.on("download", (download) => {
        const name = download.suggestedFilename();
        saved.push(download.saveAs(join(checkpoint, name)).then(() => name));
      });
      await page.click("#download");
      for (let wait = 0; saved.length < 3 && wait < 100; wait++) await page.waitForTimeout(100);
      const downloads = await Promise.all(saved);
      assertEquals(downloads.sort(), ["model.json", "training_state.json", "weights.bin"]);
      const data = join(dir, "data");
      await writeSyntheticDataset(data, { trainPerClass: 1, testPerClass: 1 });
      const photo = join(data, "test", "images", "madara", "madara_0002.png");
      const segmented = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", SEGMENT, "--checkpoint", checkpoint, "--out", join(dir, "out"), photo],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert(segmented.success, new TextDecoder().decode(segmented.stderr));
      assert((await Deno.stat(join(dir, "out", "madara_0002_mask.png"))).isFile);
      assertEquals(problems, []);
      assertEquals(outside, [], "the page fetched from outside the server");
    } finally {
      await browser.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the training page trains nearest on WebGL (SwiftShader) within a looser tolerance",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await setupBackend("wasm", { quiet: true, blas: false, dnnl: false, simd: false });
    const reference = await trainLesson(lessonNamed("nearest"), WEBGL_PROTOCOL);
    reference.model.dispose();
    const server = await startServer({ port: 0, checkpoints: "no/such/folder" });
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
    });
    try {
      const page = await browser.newPage();
      await page.addInitScript(observeLongTasks);
      const { run, longTasks } = await trainInPage(page, server.url, "webgl", WEBGL_PROTOCOL);
      assertEquals(await statusState(page), "done", await page.textContent("#status") ?? "");
      assertEquals(run.backend, "webgl");
      const worst = Math.max(
        ...run.losses.map((loss, index) => Math.abs(loss - reference.losses[index]!)),
      );
      console.log(
        `webgl: ${run.msPerIter.toFixed(0)} ms/iteration at ${WEBGL_PROTOCOL.size} px ` +
          `(Deno pure wasm ${reference.msPerIter.toFixed(1)}); largest loss difference from ` +
          `Deno ${worst.toExponential(2)}; tensors ${run.numTensors.join(",")}; longest ` +
          `main-thread task ${Math.max(0, ...longTasks).toFixed(0)} ms`,
      );
      assertEquals(run.losses.length, WEBGL_PROTOCOL.iters);
      assert(worst <= WEBGL_TOLERANCE, `losses differ by ${worst} > ${WEBGL_TOLERANCE}`);
      assert(Math.max(0, ...longTasks) <= LONG_TASK_MS);
    } finally {
      await browser.close();
      await server.close();
    }
  },
});
