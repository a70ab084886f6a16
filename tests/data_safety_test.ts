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
import { claimCheckpoint } from "../lib/output_files.ts";
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
    /was trained for network nearest, not bin: pass --checkpoint <folder of a bin run>, or train one into a new folder with `deno task bin_loss --data \S+ --checkpoint <new folder>`$/,
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
  // The command's line of the next step (its note is on the line after it)
  const next = trained.lines.find((line) => line.startsWith("next: "))!.split("\n")[0]!;
  assert(
    next.includes(`--checkpoint ${join(root, "checkpoints", "bin")}`) &&
      next.includes("--size 16"),
    next,
  );
  const args = next.replace(/^next: deno task bin_test /, "").split(" ");
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
    /^--batch-size 100000000 needs about .* to train one minibatch .*; pass --batch-size \d+ or lower$/,
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
    // A fresh run on the other photos into the same folder is refused, naming what it holds,
    // what this run trains on, and a folder that keeps both.
    await assertOneLine(
      () => binLoss(onOther(flags("bin"))),
      /already holds a checkpoint of 2 iterations trained on .*data, and this run trains on .*other; pass --checkpoint .*_other to keep both, --overwrite to replace it, or --resume/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** The names in a folder and its subfolders, sorted: to show that a refusal removed nothing. */
async function tree(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    names.push(entry.name);
    if (entry.isDirectory) {
      names.push(...(await tree(join(dir, entry.name))).map((name) => `${entry.name}/${name}`));
    }
  }
  return names.sort();
}

Deno.test("--overwrite and --resume never remove files that are not a checkpoint's", async () => {
  const { root, flags } = await tinySetup();
  try {
    // A checkpoint folder the user also keeps a thesis and photos in.
    const dir = join(root, "checkpoints", "sb");
    (await quietly(() => nearest([...flags("sb"), "--no-test"]))).value.model?.dispose();
    await Deno.writeTextFile(join(dir, "thesis.txt"), "mine");
    await Deno.mkdir(join(dir, "photos"));
    await Deno.writeTextFile(join(dir, "photos", "akahara_0009.jpg"), "a photo");
    const before = await tree(dir);
    for (const flag of ["--overwrite", "--resume"]) {
      await assertOneLine(
        () => nearest([...flags("sb"), "--no-test", flag, "--iters", "3"]),
        /^--checkpoint .*sb holds files that are not a checkpoint's \((thesis.txt|photos\/)\); .*pass --checkpoint .*sb_checkpoint or another new folder$/,
      );
      assertEquals(await tree(dir), before, `${flag}: nothing removed`);
    }
    // A model.json of the user's own, not a TensorFlow.js model, with notes beside it.
    const mine = join(root, "checkpoints", "mine");
    await Deno.mkdir(join(mine, "sub"), { recursive: true });
    await Deno.writeTextFile(join(mine, "model.json"), '{"my":"config"}');
    await Deno.writeTextFile(join(mine, "notes.txt"), "notes");
    await Deno.writeTextFile(join(mine, "sub", "f"), "f");
    await assertOneLine(
      () => nearest([...flags("mine"), "--no-test", "--overwrite"]),
      /holds files that are not a checkpoint's/,
    );
    assertEquals(await tree(mine), ["model.json", "notes.txt", "sub", "sub/f"]);
    // Alone, such a model.json is no checkpoint either.
    await Deno.remove(join(mine, "sub"), { recursive: true });
    await Deno.remove(join(mine, "notes.txt"));
    await assertOneLine(
      () => nearest([...flags("mine"), "--no-test", "--overwrite"]),
      /\(model.json, which is not a TensorFlow.js model\)/,
    );
    assertEquals(await Deno.readTextFile(join(mine, "model.json")), '{"my":"config"}');
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the fix named for a damaged checkpoint is a command that works", async () => {
  const { root, flags, testFlags } = await tinySetup();
  const dir = join(root, "checkpoints", "ck");
  try {
    for (const file of ["model.json", "weights.bin"]) {
      (await quietly(() => nearest([...flags("ck"), "--no-test", "--overwrite"]))).value.model
        ?.dispose();
      const bytes = await Deno.readFile(join(dir, file));
      await Deno.writeFile(join(dir, file), bytes.subarray(0, bytes.length >> 1));
      const message = await quietly(() => nearest([...testFlags("ck"), "--no-train"])).then(
        () => "",
        (error: Error) => error.message,
      );
      const command = message.match(/; run `deno task nearest (.*)` to train a new one/)?.[1];
      assert(command !== undefined && message.includes(file), message);
      assertEquals(
        command,
        `--checkpoint ${dir} --data ${join(root, "data")} --out ${
          join(root, "answers")
        } --overwrite`,
      );
      // Run as printed (with this test's data and size): it trains a new checkpoint there.
      const rerun = [...flags("x").filter((arg) => !arg.includes("checkpoints")), "--no-test"];
      const args = [...rerun.filter((arg) => arg !== "--checkpoint"), ...command.split(" ")];
      (await quietly(() => nearest(args))).value.model?.dispose();
      const tested = await quietly(() => nearest([...testFlags("ck"), "--no-train"]));
      tested.value.model?.dispose();
      assertEquals(tested.value.tested?.figures.length, 2, `${file}: the new one tests`);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("segment names the network of a damaged checkpoint, and its fix once", async () => {
  const { root } = await tinySetup();
  const dir = join(root, "ckw");
  await nearestCheckpoint(dir);
  await Deno.writeFile(join(dir, "weights.bin"), new Uint8Array(100));
  const photo = join(root, "data", "test", "images", "madara", "madara_0003.png");
  await assertOneLine(
    () => segment(["--checkpoint", dir, "--out", join(root, "s"), photo]),
    new RegExp(
      `^Checkpoint file ${dir}/weights.bin has 100 bytes but its model.json needs \\d+ \\(cut ` +
        `short\\); run \`deno task nearest --checkpoint ${dir} --overwrite\` to train a new one ` +
        "in its place$",
    ),
  );
  // Trained on photos it records: the fix trains on the same ones (not the synthetic default)
  const data = join(root, "data");
  const state = JSON.parse(await Deno.readTextFile(join(dir, "training_state.json")));
  state.settings = { ...state.settings, data };
  await Deno.writeTextFile(join(dir, "training_state.json"), JSON.stringify(state));
  await assertOneLine(
    () => segment(["--checkpoint", dir, "--out", join(root, "s"), photo]),
    new RegExp(`; run \`deno task nearest --data ${data} --checkpoint ${dir} --overwrite\` `),
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("a checkpoint whose optimizer state is cut is tested and segmented, not resumed", async () => {
  const { root, flags, testFlags } = await tinySetup();
  const dir = join(root, "checkpoints", "cko");
  try {
    (await quietly(() => nearest([...flags("cko"), "--no-test"]))).value.model?.dispose();
    const bytes = await Deno.readFile(join(dir, "optimizer.bin"));
    await Deno.writeFile(join(dir, "optimizer.bin"), bytes.subarray(0, bytes.length >> 1));
    const warned = (lines: string[]) =>
      lines.filter((line) => line.startsWith("warning: ") && line.includes("optimizer.bin"));
    const tested = await quietly(() => nearest([...testFlags("cko"), "--no-train"]));
    tested.value.model?.dispose();
    assertEquals(tested.value.tested?.figures.length, 2);
    assertEquals(warned(tested.lines).length, 1, tested.lines.join("\n"));
    const photo = join(root, "data", "test", "images", "madara", "madara_0003.png");
    const segmented = await quietly(() =>
      segment(["--checkpoint", dir, "--out", join(root, "s"), "--backend", "cpu", photo])
    );
    assertEquals(segmented.value.length, 1);
    assertEquals(warned(segmented.lines).length, 1, segmented.lines.join("\n"));
    await assertOneLine(
      () => nearest([...flags("cko"), "--no-test", "--resume", "--iters", "4"]),
      /optimizer.bin has \d+ bytes but its optimizer.json needs \d+ \(cut short\); run `.*--overwrite`/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("--checkpoint naming a file suggests a new folder, not the file's own folder", async () => {
  const { root, flags } = await tinySetup();
  const file = join(root, "notes.txt");
  await Deno.writeTextFile(file, "mine");
  const message = await quietly(() => nearest([...flags("a").slice(0, -1), file, "--no-test"]))
    .then(() => "", (error: Error) => error.message);
  const suggested = message.match(/pass --checkpoint (\S+)$/)?.[1];
  assertEquals(suggested, join(root, "notes_checkpoint"), message);
  await assertRejects(() => Deno.stat(suggested!), Deno.errors.NotFound);
  assertEquals(await Deno.readTextFile(file), "mine");
  await Deno.remove(root, { recursive: true });
});

/**
 * Makes a folder one this process cannot write, and returns how to undo it: no write
 * permission for a user; for root, who writes anywhere, a read-only bind mount when this
 * machine allows one; else `undefined`.
 */
async function lockFolder(dir: string): Promise<(() => Promise<unknown>) | undefined> {
  if (Deno.uid() !== 0) {
    await Deno.chmod(dir, 0o555);
    return () => Deno.chmod(dir, 0o755);
  }
  const mount = (args: string[]) =>
    new Deno.Command(args[0]!, { args: args.slice(1), stdout: "null", stderr: "null" })
      .output().then((output) => output.success, () => false);
  if (!(await mount(["mount", "--bind", "-o", "ro", dir, dir]))) return undefined;
  return () => mount(["umount", dir]);
}

Deno.test("a --checkpoint that cannot be written is refused before training, with advice that fits", async () => {
  const { root, flags } = await tinySetup();
  const folder = join(root, "ro");
  await Deno.mkdir(folder);
  await nearestCheckpoint(join(folder, "old"));
  // Claimed while the folder could be written (as a run claims it before training).
  await claimCheckpoint(join(folder, "new"), { start: true });
  await claimCheckpoint(join(folder, "old"), { start: true, replace: true });
  const unlock = await lockFolder(folder);
  try {
    if (unlock === undefined) return; // no folder this process cannot write
    const denied = "(permission denied|the file system is read-only)";
    const dir = join(folder, "ck");
    const args = [...flags("a").slice(0, -1), dir, "--no-test"];
    const { lines } = await quietly(() => nearest(args).catch((error) => error));
    assert(!lines.some((line) => line.startsWith("train: ")), lines.join("\n"));
    await assertOneLine(
      () => nearest(args),
      new RegExp(`^Cannot write ${dir}: ${denied}; pass --checkpoint <a folder you can write>$`),
    );
    // Turned unwritable during training: no "free some space"; "kept" only when one is there.
    const model = nearestNet(16);
    const state = { iteration: 2, model: "nearest", size: 16, classes: 3, optimizer: "sgd" };
    try {
      await assertOneLine(
        () => saveCheckpoint(join(folder, "new"), model, state),
        new RegExp(`: ${denied}; pass --checkpoint <a folder you can write>$`),
      );
      await assertOneLine(
        () => saveCheckpoint(join(folder, "old"), model, state, undefined, { replace: true }),
        new RegExp(
          `: ${denied}; pass --checkpoint <a folder you can write>; the checkpoint there now ` +
            "is kept$",
        ),
      );
    } finally {
      model.dispose();
    }
  } finally {
    await unlock?.();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a file in the way of a figure is refused before training, and no checkpoint is written", async () => {
  const { root, flags } = await tinySetup();
  try {
    for (const figure of ["nearest_loss.png", join("madara", "nearest_madara_0003.png")]) {
      // A fresh --out each time: this process remembers the paths it claimed as its own.
      const out = join(root, figure.includes("loss") ? "answers" : "answers2");
      await Deno.mkdir(join(out, "madara"), { recursive: true });
      await Deno.writeTextFile(join(out, figure), "mine");
      await assertOneLine(
        () => nearest([...flags("nearest"), "--out", out]),
        new RegExp(
          `^Cannot write ${join(out, figure)}: a file this project did not write is there`,
        ),
      );
      assertEquals(await Deno.readTextFile(join(out, figure)), "mine");
      await assertRejects(() => Deno.stat(join(root, "checkpoints")), Deno.errors.NotFound);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("--resume on other photos warns naming both, and the checkpoint lists both", async () => {
  const { root, flags, testFlags } = await tinySetup();
  const other = join(root, "other");
  await writeSyntheticDataset(other, { trainPerClass: 2, testPerClass: 1, seed: 5 });
  const onOther = (args: string[]) => args.map((arg, i) => args[i - 1] === "--data" ? other : arg);
  const dir = join(root, "checkpoints", "nearest");
  try {
    (await quietly(() => nearest([...flags("nearest"), "--no-test"]))).value.model?.dispose();
    await assertOneLine(
      () => nearest([...flags("nearest"), "--no-test", "--resume", "--overwrite"]),
      /^--resume continues the checkpoint in .*nearest and --overwrite replaces it; pass one of them$/,
    );
    const resumed = await quietly(() =>
      nearest([...onOther(flags("nearest")), "--no-test", "--resume", "--iters", "3"])
    );
    resumed.value.model?.dispose();
    const warnings = resumed.lines.filter((line) => line.startsWith("warning: "));
    assertEquals(warnings.length, 1, resumed.lines.join("\n"));
    assert(/ was trained on \S*data and now goes on on \S*other;/.test(warnings[0]!), warnings[0]!);
    const state = JSON.parse(await Deno.readTextFile(join(dir, "training_state.json")));
    assertEquals(state.iteration, 3);
    assertEquals(state.settings.data, [join(root, "data"), other]);
    // Tested on either: it learnt from both, so no warning.
    for (const args of [testFlags("nearest"), onOther(testFlags("nearest"))]) {
      const tested = await quietly(() => nearest([...args, "--no-train"]));
      tested.value.model?.dispose();
      assert(!tested.lines.some((line) => line.startsWith("warning: ")), tested.lines.join("\n"));
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a checkpoint from the training page (synthetic newts drawn in memory) tests on a synthetic set without a warning, and names no --data elsewhere", async () => {
  const { root, flags, testFlags } = await tinySetup();
  try {
    (await quietly(() => nearest([...flags("page"), "--no-test"]))).value.model?.dispose();
    // As the page records it: what it drew, not a folder
    const file = join(root, "checkpoints", "page", "training_state.json");
    const state = JSON.parse(await Deno.readTextFile(file));
    state.settings.data = "synthetic (drawn in memory)";
    await Deno.writeTextFile(file, JSON.stringify(state));
    const same = await quietly(() => nearest([...testFlags("page"), "--no-train"]));
    same.value.model?.dispose();
    assert(!same.lines.some((line) => line.startsWith("warning: ")), same.lines.join("\n"));
    // On photos (not a synthetic set): the warning, with no --data to pass
    const photos = join(root, "photos");
    await Deno.mkdir(photos);
    await Deno.rename(join(root, "data", "train"), join(photos, "train"));
    await Deno.rename(join(root, "data", "test"), join(photos, "test"));
    const onPhotos = testFlags("page").map((arg, i, all) => all[i - 1] === "--data" ? photos : arg);
    const other = await quietly(() => nearest([...onPhotos, "--no-train"]));
    other.value.model?.dispose();
    const warning = other.lines.find((line) => line.startsWith("warning: "));
    assert(
      warning !== undefined && warning.includes("was trained on synthetic (drawn in memory)"),
      other.lines.join("\n"),
    );
    assert(!warning.includes("--data"), warning);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
