/**
 * End to end, in a real browser: a checkpoint trained here, `deno task
 * segment` on two photos, the page served by `deno task serve` in Debian's
 * Chromium (headless, driven by playwright-core), and the class map the page
 * shows compared pixel by pixel with the mask `segment` wrote. A SegNet
 * checkpoint checks that the page loads the custom layers. Never skipped: with
 * no Chromium it fails, naming the package to install.
 */
import { chromium } from "playwright-core";
import sharp from "sharp";
import { setupBackend } from "../engine/mod.ts";
import { assert, assertEquals } from "../lib/assert.ts";
import { decodeImage } from "../lib/image_io.ts";
import { basename, join } from "../lib/path.ts";
import { writeSyntheticDataset } from "../lib/synthetic_files.ts";
import { renderNewtPhoto } from "../lib/synthetic_newts.ts";
import { startServer } from "../tools/serve.ts";
import { requireImori } from "./imori.ts";
import { saveNetwork } from "./networks.ts";
import { compareWithMask } from "./page_pixels.ts";

const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
const SEGMENT = new URL("../tools/segment.ts", import.meta.url).pathname;
const SCREENSHOT = new URL("../answers/segment_page.png", import.meta.url).pathname;
/**
 * Pixels allowed to differ between the page (TensorFlow.js wasm in Chromium)
 * and `segment` (this machine's backend, wasm with OpenBLAS here): none is
 * expected, since both run the same pixel code and the same network, but
 * another backend may sum in another order and flip a pixel whose two best
 * classes tie to the last bit.
 */
const TOLERANCE = 0.001;

/** The little of the page the test reads, typed here since tests compile without the DOM library. */
interface PageWindow {
  document: {
    getElementById(id: string): {
      dataset: Record<string, string | undefined>;
      width: number;
      height: number;
      getContext(kind: "2d"): {
        getImageData(x: number, y: number, width: number, height: number): {
          data: Uint8ClampedArray;
          width: number;
          height: number;
        };
      };
    };
  };
  segmentResult: { ms: number };
}

/** True once the page's status says it has finished what it was doing. */
function settledState(): boolean {
  const state = (globalThis as unknown as PageWindow).document.getElementById("status").dataset
    .state;
  return state === "ready" || state === "done" || state === "error";
}

/**
 * A synthetic newt as a 16-bit RGBA PNG whose every third pixel is fully
 * transparent: the dataset reader keeps the colour under it, so must the page.
 */
async function writeTransparentPng(path: string): Promise<string> {
  const { image } = renderNewtPhoto({ kind: "akahara", seed: 11, width: 120, height: 80 });
  const pixels = image.width * image.height;
  const rgba = new Uint16Array(pixels * 4);
  for (let pixel = 0; pixel < pixels; pixel++) {
    for (let channel = 0; channel < 3; channel++) {
      rgba[4 * pixel + channel] = image.data[3 * pixel + channel]! * 257 + (pixel % 200);
    }
    rgba[4 * pixel + 3] = pixel % 3 === 0 ? 0 : 65535;
  }
  // 16 bits per value (sharp takes `depth`, which its types leave out).
  const raw = { width: image.width, height: image.height, channels: 4 as const, depth: "ushort" };
  const png = await sharp(new Uint8Array(rgba.buffer), { raw }).toColourspace("rgb16").png()
    .toBuffer();
  await Deno.writeFile(path, png);
  return path;
}

/**
 * A synthetic newt, 120x80 as stored, with EXIF orientation 6: upright it is
 * 80x120, in every viewer, in the dataset reader and so in the page.
 */
async function writeTurnedJpeg(path: string): Promise<string> {
  const { image } = renderNewtPhoto({ kind: "madara", seed: 12, width: 120, height: 80 });
  const raw = { width: image.width, height: image.height, channels: 3 as const };
  await Deno.writeFile(
    path,
    await sharp(image.data, { raw }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 })
      .toBuffer(),
  );
  return path;
}

/** Runs `deno task segment` and returns its per-photo milliseconds. */
async function segment(checkpoint: string, out: string, photos: string[]): Promise<number[]> {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", SEGMENT, "--checkpoint", checkpoint, "--out", out, ...photos],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(result.stdout);
  assert(result.success, new TextDecoder().decode(result.stderr));
  return [...stdout.matchAll(/, (\d+) ms\) -> /g)].map((match) => Number(match[1]));
}

/** The mask `segment` wrote for a photo. */
function maskOf(out: string, photo: string): string {
  return join(out, `${basename(photo).replace(/\.\w+$/, "")}_mask.png`);
}

Deno.test({
  name: "the page shows the class map that `deno task segment` writes, in headless Chromium",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const found = await Deno.stat(CHROMIUM).then(() => true, () => false);
    assert(
      found,
      `No Chromium at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH`,
    );
    const dir = await Deno.makeTempDir();
    const data = join(dir, "data");
    const checkpoints = join(dir, "checkpoints");
    await writeSyntheticDataset(data, { trainPerClass: 4, testPerClass: 1 });
    await setupBackend("wasm", { quiet: true });
    const unetlike = await saveNetwork(join(checkpoints, "unetlike"), {
      name: "unetlike",
      size: 32,
      data,
      iters: 60,
    });
    unetlike.dispose();
    (await saveNetwork(join(checkpoints, "segnet"), { name: "segnet", size: 32 })).dispose();
    // A real Imori photo, a 16-bit PNG with transparent pixels, a JPEG stored turned with an
    // EXIF orientation tag, then a synthetic photo like those the network was trained on.
    const photos = [
      join(await requireImori(), "test", "images", "akahara", "akahara_0011.jpg"),
      await writeTransparentPng(join(dir, "transparent16.png")),
      await writeTurnedJpeg(join(dir, "turned.jpg")),
      join(data, "test", "images", "madara", "madara_0005.png"),
    ];
    const out = join(dir, "out");
    const denoMs = await segment(join(checkpoints, "unetlike"), out, photos);
    await segment(join(checkpoints, "segnet"), join(dir, "segnet"), photos.slice(0, 1));

    const server = await startServer({ port: 0, checkpoints });
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const problems: string[] = [];
      page.on("pageerror", (error) => problems.push(error.message));
      // Everything the page needs comes from the server: any other request is refused and noted.
      const outside: string[] = [];
      await page.route((url) => !url.href.startsWith(server.url), (route) => {
        outside.push(route.request().url());
        return route.abort();
      });
      page.on("console", (message) => message.type() === "error" && problems.push(message.text()));
      /** Marks the status stale, then waits until the page has settled again in `state`. */
      const settle = async (action: () => Promise<unknown>, state: string) => {
        await page.evaluate(() => {
          (globalThis as unknown as PageWindow).document.getElementById("status").dataset.state =
            "stale";
        });
        await action();
        await page.waitForFunction(settledState, undefined, { timeout: 120_000 });
        const shown = await page.getAttribute("#status", "data-state");
        assertEquals(shown, state, `${await page.textContent("#status")} ${problems.join("; ")}`);
      };

      /** Feeds a photo to the page's file input and compares its class map with the mask. */
      const compare = async (photo: string, mask: string) => {
        await settle(() => page.setInputFiles("#photo", photo), "done");
        const shown = await page.evaluate(() => {
          const window = globalThis as unknown as PageWindow;
          const canvas = window.document.getElementById("class-map");
          const context = canvas.getContext("2d");
          const { data, width, height } = context.getImageData(0, 0, canvas.width, canvas.height);
          const ms = window.segmentResult.ms;
          return { rgba: Array.from(data), width, height, ms };
        });
        const written = await decodeImage(mask);
        if (basename(photo) === "turned.jpg") {
          assertEquals([written.width, written.height], [80, 120]);
        }
        assertEquals([shown.width, shown.height], [written.width, written.height]);
        const { pixels, differing, colours } = compareWithMask(shown, written);
        console.log(
          `${basename(photo)}: ${pixels - differing} of ${pixels} pixels agree ` +
            `(page ${shown.ms.toFixed(0)} ms, colours ${[...colours].join(" ")})`,
        );
        assert(differing <= TOLERANCE * pixels, `${differing} of ${pixels} pixels differ`);
        return { ms: shown.ms, colours: colours.size };
      };

      await page.goto(`${server.url}?checkpoint=unetlike`);
      await page.waitForFunction(settledState, undefined, { timeout: 120_000 });
      assertEquals(await page.getAttribute("#status", "data-state"), "ready", problems.join("; "));
      const results = [];
      for (const photo of photos) results.push(await compare(photo, maskOf(out, photo)));
      assert(results[3]!.colours >= 2, "the trained network should find a newt in the photo");
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      console.log(
        `time per photo: page ${results.map((one) => one.ms.toFixed(0)).join(", ")} ms (wasm), ` +
          `deno task segment ${denoMs.join(", ")} ms; screenshot ${SCREENSHOT}`,
      );

      await settle(() => page.selectOption("#checkpoint", "segnet"), "ready");
      await compare(photos[0]!, maskOf(join(dir, "segnet"), photos[0]!));
      assertEquals(problems, []);
      assertEquals(outside, [], "the page fetched from outside the server");
    } finally {
      await browser.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
