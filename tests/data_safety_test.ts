/**
 * Nothing the user has is lost, and no result is silently wrong (issue 19):
 * one test per kind of fault, each through the entry point a user runs
 * (an exercise's or a tool's `run`, the checkpoint loader, the dataset
 * reader). The mechanisms behind them are tested in `output_files_test.ts`.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import { assert, assertEquals, assertRejects } from "../lib/assert.ts";
import { loadCheckpoint, saveCheckpoint } from "../lib/checkpoint.ts";
import { loadDataset } from "../lib/dataset.ts";
import { decodeImage, encodeImage } from "../lib/image_io.ts";
import { join } from "../lib/path.ts";
import { writeSyntheticDataset } from "../lib/synthetic_files.ts";
import { run as binDataset } from "../exercises/bin_dataset.ts";
import { run as binLoss } from "../exercises/bin_loss.ts";
import { run as binTest } from "../exercises/bin_test.ts";
import { Mynet as nearestNet, run as nearest } from "../exercises/nearest.ts";
import { CLASSES } from "../exercises/semaseg_dataset.ts";
import { run as segment } from "../tools/segment.ts";

await tf.setBackend("cpu");

/** A tiny synthetic dataset and the flags of a fast run into its folder (a test: no --iters). */
async function tinySetup(): Promise<
  { root: string; flags: (name: string) => string[]; testFlags: (name: string) => string[] }
> {
  const root = await Deno.makeTempDir({ prefix: "data_safety_" });
  await writeSyntheticDataset(join(root, "data"), { trainPerClass: 2, testPerClass: 1 });
  const flags = (name: string) => [
    ...["--data", join(root, "data"), "--size", "16", "--iters", "2", "--backend", "cpu"],
    ...["--out", join(root, "answers"), "--checkpoint", join(root, "checkpoints", name)],
  ];
  const testFlags = (name: string) =>
    flags(name).filter((_, i, all) => all[i] !== "--iters" && all[i - 1] !== "--iters");
  return { root, flags, testFlags };
}

/** Runs `body` with console.log and console.warn captured. */
async function quietly<T>(body: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const [log, warn] = [console.log, console.warn];
  console.log = console.warn = (...parts: unknown[]) => lines.push(parts.map(String).join(" "));
  try {
    return { value: await body(), lines };
  } finally {
    [console.log, console.warn] = [log, warn];
  }
}

/** Checks a rejection: a one-line UserError whose message matches. */
async function assertOneLine(body: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  await assertRejects(() => quietly(body), (error: Error) => {
    assertEquals(error.name, "UserError", String(error.stack));
    assert(!error.message.includes("\n"), "one line");
    assert(pattern.test(error.message), `"${error.message}" should match ${pattern}`);
    return true;
  });
}

async function iterationOf(dir: string): Promise<number> {
  return JSON.parse(await Deno.readTextFile(join(dir, "training_state.json"))).iteration;
}

Deno.test("a fresh training run into a folder holding a checkpoint refuses; --resume and --overwrite say so", async () => {
  const { root, flags } = await tinySetup();
  const dir = join(root, "checkpoints", "nearest");
  (await quietly(() => nearest([...flags("nearest"), "--no-test", "--iters", "3"])))
    .value.model?.dispose();
  await assertOneLine(
    () => nearest([...flags("nearest"), "--no-test", "--iters", "1"]),
    /already holds a checkpoint of 3 iterations trained on [^;]*data; pass --resume to continue it, --checkpoint <new folder> to train another, or --overwrite to replace it$/,
  );
  assertEquals(await iterationOf(dir), 3, "the checkpoint is kept");
  (await quietly(() => nearest([...flags("nearest"), "--no-test", "--iters", "1", "--overwrite"])))
    .value.model?.dispose();
  assertEquals(await iterationOf(dir), 1, "replaced when asked");
  await Deno.remove(root, { recursive: true });
});

Deno.test("the refusal of a checkpoint of another network suggests a command that keeps it", async () => {
  const { root, flags, testFlags } = await tinySetup();
  (await quietly(() => nearest([...flags("other"), "--no-test"]))).value.model?.dispose();
  await assertOneLine(
    () => binTest(testFlags("other")),
    /was trained for network nearest, not bin: pass --checkpoint <folder of a bin run>, or train one into a new folder with `deno task bin_loss --checkpoint <new folder>`$/,
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("--checkpoint naming the checkpoint's model.json is refused, and the checkpoint kept", async () => {
  const { root, flags } = await tinySetup();
  const dir = join(root, "checkpoints", "nearest");
  (await quietly(() => nearest([...flags("nearest"), "--no-test"]))).value.model?.dispose();
  const modelJson = join(dir, "model.json");
  const before = await Deno.readFile(modelJson);
  const args = [...flags("nearest").slice(0, -1), modelJson, "--no-test"];
  await assertOneLine(
    () => nearest(args),
    new RegExp(`model.json: it is a file, not a folder; .*pass --checkpoint ${dir}$`),
  );
  assertEquals(await Deno.readFile(modelJson), before);
  await Deno.remove(root, { recursive: true });
});

/** A checkpoint of the nearest network at 16x16, untrained. */
async function nearestCheckpoint(dir: string): Promise<void> {
  const model = nearestNet(16);
  const state = { iteration: 1, model: "nearest", size: 16, classes: 3, optimizer: "sgd" };
  await saveCheckpoint(dir, model, state);
  model.dispose();
}

Deno.test("segment --out at the photos' folder never writes over the user's files", async () => {
  const { root } = await tinySetup();
  const photos = join(root, "data", "test", "images", "madara");
  const [photo] = [...Deno.readDirSync(photos)].map((entry) => entry.name);
  const truth = join(photos, photo!.replace(/\.\w+$/, "_mask.png"));
  await Deno.copyFile(join(root, "data", "test", "seg_images", "madara", "madara_0003.png"), truth);
  const before = await Deno.readFile(truth);
  const checkpoint = join(root, "checkpoints", "nearest");
  await nearestCheckpoint(checkpoint);
  await assertOneLine(
    () => segment(["--checkpoint", checkpoint, "--out", photos, photos]),
    new RegExp(`Cannot write ${truth}: it is an input of this run; pass --out <another folder>`),
  );
  assertEquals(await Deno.readFile(truth), before);
  assertEquals([...Deno.readDirSync(photos)].length, 2, "nothing written there");
  await Deno.remove(root, { recursive: true });
});

Deno.test("photos of the same name in two class folders get a figure each", async () => {
  const { root } = await tinySetup();
  const data = join(root, "data");
  for (const folder of ["images", "seg_images"]) {
    await Deno.rename(
      join(data, "train", folder, "madara", "madara_0001.png"),
      join(data, "train", folder, "madara", "akahara_0001.png"),
    );
  }
  const out = join(root, "answers");
  await quietly(() => binDataset(["--data", data, "--out", out, "--size", "16"]));
  const figures = [];
  for await (const entry of Deno.readDir(out)) {
    if (entry.isDirectory) {
      for await (const figure of Deno.readDir(join(out, entry.name))) figures.push(figure.name);
    }
  }
  assertEquals(figures.length, 4, "4 photos, 4 figures");
  await Deno.remove(root, { recursive: true });
});

Deno.test("a checkpoint with a non-finite weight is refused on loading", async () => {
  const { root } = await tinySetup();
  const dir = join(root, "checkpoints", "nearest");
  await nearestCheckpoint(dir);
  const weights = await Deno.readFile(join(dir, "weights.bin"));
  new DataView(weights.buffer).setFloat32(8, NaN, true);
  await Deno.writeFile(join(dir, "weights.bin"), weights);
  await assertOneLine(
    () => loadCheckpoint(dir, { command: "deno task nearest" }),
    /weights.bin holds a non-finite value \(NaN\) in weight enc1_conv1\/kernel, so the run that saved it went wrong/,
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("a training mask without its photo is named in a warning; a WebP photo is read", async () => {
  const { root } = await tinySetup();
  const data = join(root, "data");
  const images = join(data, "train", "images", "akahara");
  const png = join(images, "akahara_0001.png");
  const webp = new Uint8Array(
    await (await import("sharp")).default(await Deno.readFile(png)).webp({ lossless: true })
      .toBuffer(),
  );
  await Deno.writeFile(join(images, "akahara_0001.webp"), webp);
  await Deno.remove(png);
  await Deno.remove(join(data, "train", "images", "madara", "madara_0002.png"));
  const warnings: string[] = [];
  const loaded = await loadDataset(data, {
    split: "train",
    size: 16,
    mode: CLASSES,
    onWarning: (message) => warnings.push(message),
  });
  assertEquals(loaded.names, ["akahara_0001", "akahara_0002", "madara_0001"]);
  assert(
    warnings.some((warning) =>
      warning.includes("madara/madara_0002.png") && /no photo/.test(warning)
    ),
    warnings.join("\n"),
  );
  tf.dispose([loaded.images, loaded.masks]);
  await Deno.remove(root, { recursive: true });
});

Deno.test("segment --size refuses a size the network cannot map back to the photo", async () => {
  const { root } = await tinySetup();
  const checkpoint = join(root, "checkpoints", "nearest");
  await nearestCheckpoint(checkpoint);
  const photo = join(root, "data", "test", "images", "madara", "madara_0003.png");
  await assertOneLine(
    () => segment(["--checkpoint", checkpoint, "--size", "33", "--out", join(root, "s"), photo]),
    /Input size 33 does not work for network nearest of .*; closest sizes that work: 32 \(output 32\), 34 \(output 34\); pass one with --size$/,
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("bin_loss prints a next command that tests its checkpoint at its size, runnable as printed", async () => {
  const { root, flags } = await tinySetup();
  const trained = await quietly(() => binLoss(flags("bin")));
  trained.value.model!.dispose();
  const next = trained.lines.find((line) => line.startsWith("next: "))!;
  assert(
    next.includes(`--checkpoint ${join(root, "checkpoints", "bin")}`) &&
      next.includes("--size 16"),
    next,
  );
  const args = next.replace(/^next: deno task bin_test /, "").replace(/ +\(.*$/, "").split(" ");
  const tested = await quietly(() => binTest([...args, "--backend", "cpu", "--out", root]));
  assertEquals(tested.value.figures.length, 2);
  await Deno.remove(root, { recursive: true });
});

Deno.test("--out that is a file is one line before any work", async () => {
  const { root, flags } = await tinySetup();
  const file = join(root, "notes.txt");
  await Deno.writeTextFile(file, "mine");
  await assertOneLine(
    () => nearest([...flags("a"), "--out", file]),
    /^--out .*notes.txt: it is a file, not a folder; pass --out <a folder>$/,
  );
  await assertRejects(() => Deno.stat(join(root, "checkpoints")), Deno.errors.NotFound);
  assertEquals(await Deno.readTextFile(file), "mine");
  await Deno.remove(root, { recursive: true });
});

Deno.test("a batch size far beyond memory is one line before training", async () => {
  const { root, flags } = await tinySetup();
  await assertOneLine(
    () => nearest([...flags("b"), "--batch-size", "100000000"]),
    /^--batch-size 100000000 needs about .* for one minibatch's activations .*; pass --batch-size \d+ or lower$/,
  );
  await assertRejects(() => Deno.stat(join(root, "checkpoints")), Deno.errors.NotFound);
  await Deno.remove(root, { recursive: true });
});

Deno.test("a checkpoint naming a layer class this TensorFlow.js lacks is one line with --no-train", async () => {
  const { root, flags } = await tinySetup();
  const dir = join(root, "checkpoints", "nearest");
  await nearestCheckpoint(dir);
  const modelJson = join(dir, "model.json");
  const text = await Deno.readTextFile(modelJson);
  await Deno.writeTextFile(modelJson, text.replace('"UpSampling2D"', '"FancyUpsampling"'));
  await assertOneLine(
    () => nearest([...flags("nearest"), "--no-train"]),
    /model.json names layer class FancyUpsampling, which this TensorFlow.js does not have/,
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("an empty test split is refused before training starts", async () => {
  const { root, flags } = await tinySetup();
  await Deno.remove(join(root, "data", "test", "images"), { recursive: true });
  await assertOneLine(() => nearest(flags("nearest")), /^No images in .*test\/images\/<class>\//);
  await assertRejects(() => Deno.stat(join(root, "checkpoints")), Deno.errors.NotFound);
  await Deno.remove(root, { recursive: true });
});

Deno.test("a photo above the decoder's pixel limit is called too large, not damaged", async () => {
  const dir = await Deno.makeTempDir();
  const png = await encodeImage({ data: new Uint8Array(3), width: 1, height: 1, channels: 3 });
  const view = new DataView(png.buffer, png.byteOffset);
  view.setUint32(16, 20000); // IHDR width
  view.setUint32(20, 20000); // IHDR height
  view.setUint32(29, crc32(png.subarray(12, 29))); // IHDR's CRC, over its type and data
  await Deno.writeFile(join(dir, "huge.png"), png);
  await assertOneLine(
    () => decodeImage(join(dir, "huge.png"), { what: "photo" }),
    /huge.png: it is 20000x20000 \(400 megapixels\), above the 268-megapixel limit of the image decoder; scale it down/,
  );
  await Deno.remove(dir, { recursive: true });
});

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

Deno.test("a checkpoint records the photos it was trained on: tested or retrained on others, it says so", async () => {
  const { root, flags, testFlags } = await tinySetup();
  const other = join(root, "other");
  await writeSyntheticDataset(other, { trainPerClass: 2, testPerClass: 1, seed: 5 });
  const onOther = (args: string[]) => args.map((arg, i) => args[i - 1] === "--data" ? other : arg);
  try {
    (await quietly(() => binLoss(flags("bin")))).value.model?.dispose();
    // Tested on the photos it learnt from: no warning; on others: one line naming both folders.
    const same = await quietly(() => binTest(testFlags("bin")));
    assert(!same.lines.some((line) => line.startsWith("warning: ")), same.lines.join("\n"));
    const tested = await quietly(() => binTest(onOther(testFlags("bin"))));
    const warning = tested.lines.find((line) => line.includes(" was trained on "));
    assert(warning !== undefined, tested.lines.join("\n"));
    assert(warning.includes(join(root, "data")) || warning.includes("data"), warning);
    assert(warning.includes("other") && warning.includes("--data"), warning);
    // A fresh run on the other photos into the same folder is refused, naming what it holds.
    await assertOneLine(
      () => binLoss(onOther(flags("bin"))),
      /already holds a checkpoint of 2 iterations trained on .*data; pass --resume/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
