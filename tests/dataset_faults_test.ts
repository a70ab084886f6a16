/**
 * Photos, masks and folders as people really have them (issue 11, items 1-3):
 * photos stored turned with an EXIF orientation tag, masks stored as class
 * indices, symbolic links, hidden files and upper-case extensions.
 */
import "@tensorflow/tfjs-backend-cpu";
import * as tf from "@tensorflow/tfjs-core";
import sharp from "sharp";
import { assert, assertEquals, assertRejects } from "../lib/assert.ts";
import {
  countClasses,
  type Dataset,
  listDataset,
  loadDataset,
  type LoadDatasetOptions,
} from "../lib/dataset.ts";
import { decodeImage, encodeImage } from "../lib/image_io.ts";
import { resolveDataDir } from "../lib/data_dir.ts";
import { markPng } from "../lib/output_files.ts";
import { join, shownPath } from "../lib/path.ts";
import { renderNewtPhoto } from "../lib/synthetic_newts.ts";
import { IMORI, requireImori } from "./imori.ts";
import { CLASSES } from "../exercises/semaseg_dataset.ts";
import { BINARY } from "../exercises/bin_dataset.ts";

await requireImori();

const OPTIONS: LoadDatasetOptions = { split: "train", size: 16, mode: CLASSES };
const MASK = "train/seg_images/madara/madara_0002.png";
const PHOTO = "train/images/madara/madara_0002.jpg";

/** A tiny dataset in the Imori layout: two photos per species, 40x30. */
async function makeDataset(split: "train" | "test" = "train"): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "dataset_faults_test_" });
  for (const [index, kind] of (["akahara", "madara"] as const).entries()) {
    for (const number of [1, 2]) {
      const photo = renderNewtPhoto({ kind, seed: 10 * index + number, width: 40, height: 30 });
      const name = `${kind}_000${number}`;
      await Deno.mkdir(join(dir, split, "images", kind), { recursive: true });
      await Deno.mkdir(join(dir, split, "seg_images", kind), { recursive: true });
      await Deno.writeFile(
        join(dir, split, "images", kind, `${name}.jpg`),
        await encodeImage(photo.image, { format: "jpeg" }),
      );
      await Deno.writeFile(
        join(dir, split, "seg_images", kind, `${name}.png`),
        await encodeImage(photo.mask),
      );
    }
  }
  return dir;
}

/** Loads a split with its warnings collected, and frees the tensors. */
async function load(
  dir: string,
  options: Partial<LoadDatasetOptions> = {},
): Promise<
  { masks: number[]; images: Float32Array; names: string[]; counts: number[]; warnings: string[] }
> {
  const warnings: string[] = [];
  const data: Dataset = await loadDataset(dir, {
    ...OPTIONS,
    ...options,
    onWarning: (line) => warnings.push(line),
  });
  const counts = countClasses(data.masks, data.classNames).map((count) =>
    Math.round(count.share * data.masks.size)
  );
  const result = {
    masks: Array.from(data.masks.dataSync()),
    images: data.images.dataSync() as Float32Array,
    names: data.names,
    counts,
    warnings,
  };
  tf.dispose([data.images, data.masks]);
  return result;
}

/** Checks a rejection: a UserError of exactly one line equal to `message`. */
async function assertOneLine(promise: Promise<unknown>, message: string): Promise<void> {
  await assertRejects(() => promise, (error: Error) => {
    assertEquals(error.name, "UserError");
    assertEquals(error.message, message);
    assert(!error.message.includes("\n"), "one line");
    return true;
  });
}

function meanDifference(first: Float32Array, second: Float32Array): number {
  let sum = 0;
  for (let index = 0; index < first.length; index++) {
    sum += Math.abs(first[index]! - second[index]!);
  }
  return sum / first.length;
}

// ---------------------------------------------------------------- 1. orientation

/**
 * How to store an upright picture so that a viewer applying EXIF `tag` shows
 * it upright again (sharp flips before it rotates).
 */
const STORED_TURNED: Record<number, (image: sharp.Sharp) => sharp.Sharp> = {
  2: (image) => image.flop(),
  3: (image) => image.rotate(180),
  4: (image) => image.flip(),
  5: (image) => image.rotate(90).flip(),
  6: (image) => image.rotate(-90),
  7: (image) => image.rotate(90).flop(),
  8: (image) => image.rotate(90),
};

/**
 * Imori training photos, upright, as JPEG quality 100, with their masks: a
 * non-square one (akahara_0001, 256x455) and a square crop (madara_0001,
 * 256x256).
 */
async function uprightPair(): Promise<
  { kind: string; name: string; photo: Buffer; mask: Buffer }[]
> {
  const square = { left: 0, top: 54, width: 256, height: 256 };
  const pairs = [];
  for (
    const [kind, name, crop] of [["akahara", "akahara_0001", undefined], [
      "madara",
      "madara_0001",
      square,
    ]] as const
  ) {
    const photo = sharp(join(IMORI, "train", "images", kind, `${name}.jpg`));
    const mask = sharp(join(IMORI, "train", "seg_images", kind, `${name}.png`));
    pairs.push({
      kind,
      name,
      photo: await (crop ? photo.extract(crop) : photo).jpeg({ quality: 100 }).toBuffer(),
      mask: await (crop ? mask.extract(crop) : mask).png().toBuffer(),
    });
  }
  return pairs;
}

async function writePairs(
  pairs: { kind: string; name: string; photo: Uint8Array; mask: Uint8Array }[],
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "orientation_test_" });
  for (const { kind, name, photo, mask } of pairs) {
    await Deno.mkdir(join(dir, "train", "images", kind), { recursive: true });
    await Deno.mkdir(join(dir, "train", "seg_images", kind), { recursive: true });
    await Deno.writeFile(join(dir, "train", "images", kind, `${name}.jpg`), photo);
    await Deno.writeFile(join(dir, "train", "seg_images", kind, `${name}.png`), mask);
  }
  return dir;
}

Deno.test("loadDataset() reads photos stored turned with an EXIF orientation tag upright", async () => {
  const pairs = await uprightPair();
  const uprightDir = await writePairs(pairs);
  const upright = await load(uprightDir, { size: 32 });
  assertEquals(upright.names, ["akahara_0001", "madara_0001"]);
  assert(upright.counts[1]! > 50 && upright.counts[2]! > 50, `${upright.counts}`);
  for (const [tag, turn] of Object.entries(STORED_TURNED)) {
    const turned = await Promise.all(pairs.map(async (pair) => ({
      ...pair,
      photo: await turn(sharp(pair.photo)).jpeg({ quality: 100 })
        .withMetadata({ orientation: Number(tag) }).toBuffer(),
    })));
    const stored = await sharp(turned[0]!.photo).metadata();
    assertEquals(stored.orientation, Number(tag));
    if (Number(tag) >= 5) assertEquals([stored.width, stored.height], [455, 256], "stored turned");
    const dir = await writePairs(turned);
    const loaded = await load(dir, { size: 32 });
    assertEquals(loaded.masks, upright.masks, `tag ${tag}: masks`);
    const difference = meanDifference(loaded.images, upright.images);
    assert(difference < 0.01, `tag ${tag}: photos differ by ${difference} on average`);
    await Deno.remove(dir, { recursive: true });
  }
  // The check can fail: a photo turned without its tag is far from upright.
  const untagged = await Promise.all(pairs.map(async (pair) => ({
    ...pair,
    photo: await sharp(pair.photo).rotate(180).jpeg({ quality: 100 }).toBuffer(),
  })));
  const dir = await writePairs(untagged);
  assert(meanDifference((await load(dir, { size: 32 })).images, upright.images) > 0.05);
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(uprightDir, { recursive: true });
});

Deno.test("loadDataset() reads a mask stored turned with an EXIF orientation tag upright", async () => {
  const pairs = await uprightPair();
  const uprightDir = await writePairs(pairs);
  const upright = await load(uprightDir, { size: 32 });
  for (const [tag, turn] of Object.entries(STORED_TURNED)) {
    const turned = await Promise.all(pairs.map(async (pair) => ({
      ...pair,
      mask: await turn(sharp(pair.mask)).png().withMetadata({ orientation: Number(tag) })
        .toBuffer(),
    })));
    assertEquals((await sharp(turned[1]!.mask).metadata()).orientation, Number(tag));
    const dir = await writePairs(turned);
    assertEquals((await load(dir, { size: 32 })).masks, upright.masks, `tag ${tag}`);
    await Deno.remove(dir, { recursive: true });
  }
  await Deno.remove(uprightDir, { recursive: true });
});

Deno.test("decodeImage() applies the EXIF orientation: a 256x455 photo stored 455x256 with tag 6", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "turned.jpg");
  await Deno.writeFile(
    path,
    await sharp(join(IMORI, "train", "images", "akahara", "akahara_0001.jpg")).rotate(-90)
      .jpeg().withMetadata({ orientation: 6 }).toBuffer(),
  );
  const image = await decodeImage(path);
  assertEquals([image.width, image.height, image.channels], [256, 455, 3]);
  await Deno.remove(dir, { recursive: true });
});

// ---------------------------------------------------------------- 2. class-index masks

/** Rewrites every colour mask of `dir` as one channel of class indices (8 or 16 bits). */
async function rewriteAsIndices(dir: string, depth: 8 | 16): Promise<string> {
  const copy = await Deno.makeTempDir({ prefix: "indices_" });
  await new Deno.Command("cp", { args: ["-r", join(dir, "train"), copy] }).output();
  for (const kind of ["akahara", "madara"]) {
    for (const number of [1, 2]) {
      const path = join("train", "seg_images", kind, `${kind}_000${number}.png`);
      const { data, info } = await sharp(await Deno.readFile(join(dir, path))).raw()
        .toBuffer({ resolveWithObject: true });
      const indices = new Uint8Array(info.width * info.height);
      for (let pixel = 0; pixel < indices.length; pixel++) {
        indices[pixel] = data[3 * pixel]! > 64 ? 1 : data[3 * pixel + 1]! > 64 ? 2 : 0;
      }
      const raw = { width: info.width, height: info.height, channels: 1 } as const;
      const bytes = depth === 8
        ? await sharp(indices, { raw }).toColourspace("b-w").png().toBuffer()
        : await sharp(Uint16Array.from(indices), { raw }).toColourspace("grey16").png().toBuffer();
      const meta = await sharp(bytes).metadata();
      assertEquals([meta.channels, meta.depth], [1, depth === 8 ? "uchar" : "ushort"]);
      if (depth === 16) { // the values themselves are stored, not scaled to 0, 257, 514
        const stored = await sharp(bytes).toColourspace("grey16").raw({ depth: "ushort" })
          .toBuffer();
        const values = new Uint16Array(stored.buffer, stored.byteOffset, stored.length / 2);
        assertEquals(Array.from(values), Array.from(indices));
      }
      await Deno.writeFile(join(copy, path), bytes);
    }
  }
  return copy;
}

Deno.test("loadDataset() reads one-channel masks of class indices 0, 1, 2 (8 and 16 bits)", async () => {
  const dir = await makeDataset();
  const reference = await load(dir);
  assertEquals(reference.counts, [817, 105, 102], "background, akahara, madara pixels at 16x16");
  for (const depth of [8, 16] as const) {
    const copy = await rewriteAsIndices(dir, depth);
    const indexed = await load(copy);
    assertEquals(indexed.counts, reference.counts, `${depth}-bit`);
    assertEquals(indexed.masks, reference.masks, `${depth}-bit`);
    assertEquals(indexed.warnings, []);
    const binary = await load(copy, { mode: BINARY });
    assertEquals(binary.counts, [817, 207], `${depth}-bit binary`);
    await Deno.remove(copy, { recursive: true });
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadDataset() refuses a mask that looks black but holds no class indices, naming its values", async () => {
  const dir = await makeDataset();
  const path = join(dir, MASK);
  const values = new Uint8Array(40 * 30);
  values.fill(1, 0, 100);
  values.fill(5, 100, 200);
  await Deno.writeFile(
    path,
    await sharp(values, { raw: { width: 40, height: 30, channels: 1 } }).toColourspace("b-w")
      .png().toBuffer(),
  );
  const fix = "which are neither class colours nor only the class indices 0 (background), " +
    "1 (akahara) and 2 (madara); store each pixel's class index 0, 1 or 2 in one channel, " +
    "or paint background black (0, 0, 0), akahara red (128, 0, 0) and madara green (0, 128, 0)";
  await assertOneLine(
    loadDataset(dir, OPTIONS),
    `Cannot read mask ${path}: it looks black but holds the values 0, 1, 5, ${fix}`,
  );
  const rgb = new Uint8Array(40 * 30 * 3);
  rgb.set([3, 0, 0], 0);
  await Deno.writeFile(path, await encodeImage({ data: rgb, width: 40, height: 30, channels: 3 }));
  await assertOneLine(
    loadDataset(dir, OPTIONS),
    `Cannot read mask ${path}: it looks black but holds the colours (0, 0, 0), (3, 0, 0), ${fix}`,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadDataset() warns in one line about a class with no pixel in the split", async () => {
  const dir = await makeDataset("test");
  await Deno.remove(join(dir, "test", "images", "madara"), { recursive: true });
  const loaded = await load(dir, { split: "test" });
  assertEquals(loaded.counts, [407, 105, 0]);
  assertEquals(loaded.warnings, [
    // The masks whose photos were removed are named too: every file is accounted for.
    `2 masks in ${join(dir, "test", "seg_images")} have no photo of the same name in ` +
    `${join(dir, "test", "images")} and are not used (madara/madara_0001.png, ` +
    "madara/madara_0002.png); add the photos (JPEG, PNG or WebP) or remove the masks",
    `no pixel of class madara in the 2 test masks in ${join(dir, "test", "seg_images")}; ` +
    "nothing can test it there, check those masks",
  ]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadDataset() refuses a training split whose masks are all background", async () => {
  const dir = await makeDataset();
  for (const kind of ["akahara", "madara"]) {
    for (const number of [1, 2]) {
      await Deno.writeFile(
        join(dir, "train", "seg_images", kind, `${kind}_000${number}.png`),
        await encodeImage({
          data: new Uint8Array(40 * 30 * 3),
          width: 40,
          height: 30,
          channels: 3,
        }),
      );
    }
  }
  const before = tf.memory().numTensors;
  const masks = join(dir, "train", "seg_images");
  await assertOneLine(
    loadDataset(dir, OPTIONS),
    `Every mask in ${masks} is all background (4 masks, no akahara or madara pixel), so there ` +
      "is nothing to learn; paint the newts akahara red (128, 0, 0) or madara green (0, 128, 0), " +
      "or store class indices 0, 1, 2",
  );
  await assertOneLine(
    loadDataset(dir, { ...OPTIONS, mode: BINARY }),
    `Every mask in ${masks} is all background (4 masks, no newt pixel), so there ` +
      "is nothing to learn; paint the newts akahara red (128, 0, 0) or madara green (0, 128, 0), " +
      "or store class indices 0, 1, 2",
  );
  assertEquals(tf.memory().numTensors, before);
  await Deno.remove(dir, { recursive: true });
});

// ---------------------------------------------------------------- 3. folders

Deno.test("listDataset() follows linked photos and linked class folders", async () => {
  const dir = await makeDataset();
  const reference = await load(dir);
  // Move files and folders elsewhere and link them back: a linked class folder of photos,
  // a linked mask.
  const elsewhere = await Deno.makeTempDir({ prefix: "elsewhere_" });
  await Deno.rename(join(dir, "train", "images", "madara"), join(elsewhere, "madara_photos"));
  await Deno.symlink(join(elsewhere, "madara_photos"), join(dir, "train", "images", "madara"));
  await Deno.rename(join(dir, MASK), join(elsewhere, "madara_0002.png"));
  await Deno.symlink(join(elsewhere, "madara_0002.png"), join(dir, MASK));
  // A linked class folder of masks.
  await Deno.rename(join(dir, "train", "seg_images", "akahara"), join(elsewhere, "akahara_masks"));
  await Deno.symlink(join(elsewhere, "akahara_masks"), join(dir, "train", "seg_images", "akahara"));
  // And one photo linked as a file.
  const photo = join(dir, "train", "images", "akahara", "akahara_0001.jpg");
  await Deno.rename(photo, join(elsewhere, "akahara_0001.jpg"));
  await Deno.symlink(join(elsewhere, "akahara_0001.jpg"), photo);
  const linked = await load(dir);
  assertEquals(linked.names, ["akahara_0001", "akahara_0002", "madara_0001", "madara_0002"]);
  assertEquals(linked.counts, reference.counts);
  assertEquals(linked.masks, reference.masks);
  assertEquals(linked.images, reference.images);
  // A link that leads nowhere is named, not skipped.
  await Deno.remove(join(elsewhere, "akahara_0001.jpg"));
  await assertOneLine(
    loadDataset(dir, OPTIONS),
    `Image ${photo} is a symbolic link to ${join(elsewhere, "akahara_0001.jpg")}, which does ` +
      "not exist; fix the link or remove it",
  );
  await Deno.remove(elsewhere, { recursive: true });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("listDataset() skips hidden files and folders whatever their extension", async () => {
  const dir = await makeDataset();
  const reference = await listDataset(dir, "train");
  const akahara = join(dir, "train", "images", "akahara");
  await Deno.writeTextFile(join(akahara, "._akahara_0001.jpg"), "macOS resource fork");
  await Deno.writeTextFile(join(akahara, ".DS_Store"), "Finder");
  await Deno.writeTextFile(join(akahara, ".hidden.png"), "not a photo");
  await Deno.mkdir(join(dir, "train", "images", ".ipynb_checkpoints"));
  await Deno.copyFile(
    join(dir, PHOTO),
    join(dir, "train", "images", ".ipynb_checkpoints", "x.jpg"),
  );
  assertEquals(await listDataset(dir, "train"), reference);
  assertEquals((await load(dir)).names.length, 4);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("listDataset() finds a mask whatever the case of its extension", async () => {
  const dir = await makeDataset();
  const reference = await load(dir);
  await Deno.rename(join(dir, MASK), join(dir, MASK.replace(".png", ".PNG")));
  await Deno.rename(join(dir, PHOTO), join(dir, PHOTO.replace(".jpg", ".JPG")));
  const files = await listDataset(dir, "train");
  assertEquals(files[3]!.mask, join(dir, MASK.replace(".png", ".PNG")));
  assertEquals(files[3]!.image, join(dir, PHOTO.replace(".jpg", ".JPG")));
  assertEquals((await load(dir)).masks, reference.masks);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("listDataset() names a mask of the same name with another extension", async () => {
  const dir = await makeDataset();
  const jpeg = join(dir, MASK.replace(".png", ".jpg"));
  await Deno.writeFile(jpeg, await sharp(join(dir, MASK)).jpeg().toBuffer());
  await Deno.remove(join(dir, MASK));
  await assertOneLine(
    listDataset(dir, "train"),
    `Image ${join(dir, PHOTO)} has no mask: ${join(dir, MASK)} does not exist, but ${jpeg} ` +
      `does; masks are read as PNG only (lossless, so class colours stay exact): save it as ` +
      join(dir, MASK),
  );
  await Deno.remove(jpeg);
  await assertOneLine(
    listDataset(dir, "train"),
    `Image ${join(dir, PHOTO)} has no mask: ${join(dir, MASK)} does not exist; add the mask ` +
      "or remove the image",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("listDataset() leaves out the figures and masks this project wrote into a photo folder", async () => {
  const dir = await makeDataset();
  try {
    const photo = await decodeImage(join(dir, PHOTO));
    const figure = markPng(await encodeImage(photo)); // as segment --out writes into the folder
    await Deno.writeFile(join(dir, "train/images/madara/madara_0002_figure.png"), figure);
    const warnings: string[] = [];
    const files = await listDataset(dir, "train", (message) => warnings.push(message));
    assertEquals(files.length, 4);
    assert(
      warnings.some((line) => line.includes("left out 1 figures and masks")),
      warnings.join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveDataDir() names the dataset above a train/ folder, a file, and an --out inside the data", async () => {
  const dir = await makeDataset();
  try {
    await assertRejects(
      () => resolveDataDir(join(dir, "train")),
      (error: Error) =>
        error.message.endsWith(
          `is a part of the dataset in ${shownPath(dir)}; pass --data ${shownPath(dir)} instead`,
        ),
    );
    await assertRejects(() => resolveDataDir(join(dir, PHOTO)), /is a file, not a folder/);
    const empty = await Deno.makeTempDir();
    await assertRejects(() => resolveDataDir(empty), /has no train\/ or test\/ folder/);
    await Deno.remove(empty);
    for (const out of [join(dir, "train"), join(dir, "train", "images", "madara")]) {
      await assertRejects(
        () => resolveDataDir(dir, { outputs: { "--out": out } }),
        /--out .* is inside .*train, which holds the dataset's photos and masks: .*; pass --out <a folder outside it>/,
      );
    }
    // Beside train/ and test/ nothing is read: figures may go there
    assertEquals(await resolveDataDir(dir, { outputs: { "--out": join(dir, "figures") } }), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
