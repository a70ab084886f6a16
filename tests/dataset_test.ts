import "@tensorflow/tfjs-backend-cpu";
import * as tf from "@tensorflow/tfjs-core";
import sharp from "sharp";
import { assert, assertAlmostEquals, assertEquals, assertRejects } from "../lib/assert.ts";
import { loadDataset } from "../lib/dataset.ts";
import { encodeImage, resizeBilinear, resizeNearest } from "../lib/image_io.ts";
import { colorToClass } from "../exercises/semaseg_dataset.ts";
import { join } from "../lib/path.ts";
import { renderNewtPhoto } from "../lib/synthetic_newts.ts";
import { IMORI, requireImori } from "./imori.ts";
import { CLASSES } from "../exercises/semaseg_dataset.ts";
import { BINARY } from "../exercises/bin_dataset.ts";

await requireImori();

/** A tiny dataset in the Imori layout: two photos per species, 40x30. */
async function makeDataset(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "dataset_test_" });
  for (const [index, kind] of (["akahara", "madara"] as const).entries()) {
    for (const number of [1, 2]) {
      const photo = renderNewtPhoto({ kind, seed: 10 * index + number, width: 40, height: 30 });
      const name = `${kind}_000${number}`;
      await Deno.mkdir(join(dir, "train", "images", kind), { recursive: true });
      await Deno.mkdir(join(dir, "train", "seg_images", kind), { recursive: true });
      await Deno.writeFile(
        join(dir, "train", "images", kind, `${name}.jpg`),
        await encodeImage(photo.image, { format: "jpeg" }),
      );
      await Deno.writeFile(
        join(dir, "train", "seg_images", kind, `${name}.png`),
        await encodeImage(photo.mask),
      );
    }
  }
  return dir;
}

const OPTIONS = { split: "train", size: 16, mode: CLASSES } as const;

Deno.test("colorToClass() matches by class, accepting 127 and 128", () => {
  assertEquals(
    [[0, 0, 0], [47, 47, 47], [128, 0, 0], [127, 0, 0], [0, 128, 0], [255, 10, 5], [0, 127, 0]]
      .map(([red, green, blue]) => colorToClass(red!, green!, blue!)),
    [0, 0, 1, 1, 2, 1, 2],
  );
  for (const color of [[0, 0, 128], [255, 255, 255], [128, 128, 0], [128, 80, 0], [60, 60, 60]]) {
    assertEquals(colorToClass(color[0]!, color[1]!, color[2]!), -1, `colour ${color}`);
  }
});

Deno.test("resizeBilinear() matches tf.image.resizeBilinear with half-pixel centres", () => {
  const width = 37, height = 23;
  const data = new Uint8Array(width * height * 3).map((_, index) => (index * 7919) % 256);
  for (const [toWidth, toHeight] of [[16, 16], [64, 64], [50, 9]] as const) {
    const ours = resizeBilinear({ data, width, height, channels: 3 }, toWidth, toHeight);
    const reference = tf.tidy(() =>
      tf.image.resizeBilinear(
        tf.div(tf.tensor3d(Float32Array.from(data), [height, width, 3]), 255) as tf.Tensor3D,
        [toHeight, toWidth],
        false,
        true,
      ).dataSync()
    );
    ours.forEach((value, index) => assertAlmostEquals(value, reference[index]!, 1e-5));
  }
});

Deno.test("resizeNearest() matches tf.image.resizeNearestNeighbor and copies values", () => {
  const width = 29, height = 41;
  const data = new Int32Array(width * height).map((_, index) => index % 3);
  const ours = resizeNearest(data, { width, height, toWidth: 64, toHeight: 16 });
  const reference = tf.tidy(() =>
    tf.image.resizeNearestNeighbor(tf.tensor3d(Array.from(data), [height, width, 1]), [16, 64])
      .dataSync()
  );
  assertEquals(Array.from(ours), Array.from(reference));
});

Deno.test({
  name: "loadDataset() reads the Imori training set with classes by folder",
  fn: async () => {
    const before = tf.memory().numTensors;
    const dataset = await loadDataset(IMORI, { split: "train", size: 64, mode: CLASSES });
    assertEquals(tf.memory().numTensors, before + 2);
    assertEquals(dataset.images.shape, [16, 64, 64, 3]);
    assertEquals(dataset.masks.shape, [16, 64, 64]);
    assertEquals(dataset.masks.dtype, "int32");
    assertEquals(dataset.names[0], "akahara_0001");
    assertEquals(dataset.names[15], "madara_0008");
    assertEquals(dataset.classNames, ["background", "akahara", "madara"]);
    const pixels = dataset.images.dataSync();
    assert(pixels.every((value) => value >= 0 && value <= 1));
    const masks = dataset.masks.dataSync();
    for (const [index, name] of dataset.names.entries()) {
      const classes = new Set(masks.subarray(index * 4096, (index + 1) * 4096));
      const expected = name.startsWith("akahara") ? [0, 1] : [0, 2];
      assertEquals([...classes].sort(), expected, name);
    }
    tf.dispose([dataset.images, dataset.masks]);
  },
});

Deno.test({
  name: "loadDataset() binary mode is the class map with every newt class as 1",
  fn: async () => {
    const options = { split: "test", size: 32 } as const;
    const classes = await loadDataset(IMORI, { ...options, mode: CLASSES });
    const binary = await loadDataset(IMORI, { ...options, mode: BINARY });
    assertEquals(binary.classNames, ["background", "newt"]);
    assertEquals(binary.masks.shape, [6, 32, 32]);
    assertEquals(
      Array.from(binary.masks.dataSync()),
      Array.from(classes.masks.dataSync()).map((index) => (index > 0 ? 1 : 0)),
    );
    tf.dispose([classes.images, classes.masks, binary.images, binary.masks]);
  },
});

Deno.test("loadDataset() adds the three flips after each photo", async () => {
  const dir = await makeDataset();
  const plain = await loadDataset(dir, OPTIONS);
  const flipped = await loadDataset(dir, { ...OPTIONS, flips: true });
  assertEquals(flipped.names.slice(0, 5), [
    "akahara_0001",
    "akahara_0001_lr",
    "akahara_0001_ud",
    "akahara_0001_lrud",
    "akahara_0002",
  ]);
  assertEquals(flipped.images.shape, [16, 16, 16, 3]);
  const expected = tf.tidy(() => {
    const image = tf.slice(plain.images, 0, 1);
    const mask = tf.slice(plain.masks, 0, 1);
    return [
      tf.reverse(image, 2),
      tf.reverse(image, 1),
      tf.reverse(image, [1, 2]),
      tf.reverse(mask, 2),
      tf.reverse(mask, 1),
      tf.reverse(mask, [1, 2]),
    ];
  });
  for (const flip of [0, 1, 2]) {
    assertEquals(
      Array.from(tf.tidy(() => tf.slice(flipped.images, flip + 1, 1).dataSync())),
      Array.from(expected[flip]!.dataSync()),
    );
    assertEquals(
      Array.from(tf.tidy(() => tf.slice(flipped.masks, flip + 1, 1).dataSync())),
      Array.from(expected[flip + 3]!.dataSync()),
    );
  }
  tf.dispose([...expected, plain.images, plain.masks, flipped.images, flipped.masks]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadDataset() loads grayscale, RGBA and 16-bit PNG photos", async () => {
  const dir = await makeDataset();
  const photo = join(dir, "train", "images", "madara", "madara_0001.jpg");
  const reference = await loadDataset(dir, OPTIONS);
  const referencePixels = reference.images.dataSync();
  tf.dispose([reference.images, reference.masks]);
  const original = await Deno.readFile(photo);
  await Deno.remove(photo);
  const conversions = {
    grayscale: (image: sharp.Sharp) => image.toColourspace("b-w"),
    rgba: (image: sharp.Sharp) => image.ensureAlpha(0.5),
    "16-bit": (image: sharp.Sharp) => image.toColourspace("rgb16"),
  };
  const start = 2 * 16 * 16 * 3; // madara_0001 is the third photo
  for (const [kind, convert] of Object.entries(conversions)) {
    const bytes = await convert(sharp(original)).png().toBuffer();
    if (kind === "16-bit") assertEquals((await sharp(bytes).metadata()).depth, "ushort");
    await Deno.writeFile(photo.replace(".jpg", ".png"), bytes);
    const dataset = await loadDataset(dir, OPTIONS);
    assertEquals(dataset.images.shape, [4, 16, 16, 3], kind);
    const pixels = dataset.images.dataSync();
    for (let offset = 0; offset < 16 * 16 * 3; offset += 3) {
      const at = start + offset;
      if (kind === "grayscale") {
        assertEquals(pixels[at], pixels[at + 1], "grey photo has R = G");
        assertEquals(pixels[at], pixels[at + 2], "grey photo has R = B");
      } else {
        for (let channel = 0; channel < 3; channel++) {
          assertAlmostEquals(pixels[at + channel]!, referencePixels[at + channel]!, 1e-6, kind);
        }
      }
    }
    tf.dispose([dataset.images, dataset.masks]);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadDataset() loads RGBA (transparent background) and 16-bit PNG masks", async () => {
  const dir = await makeDataset();
  const mask = join(dir, "train", "seg_images", "madara", "madara_0001.png");
  const reference = await loadDataset(dir, OPTIONS);
  const referenceMasks = Array.from(reference.masks.dataSync());
  tf.dispose([reference.images, reference.masks]);
  const { data, info } = await sharp(await Deno.readFile(mask)).raw().toBuffer({
    resolveWithObject: true,
  });
  const rgba = new Uint8Array(info.width * info.height * 4);
  for (let pixel = 0; pixel < info.width * info.height; pixel++) {
    const newt = data[3 * pixel + 1]! > 0;
    rgba.set(newt ? [0, 128, 0, 255] : [255, 255, 255, 0], 4 * pixel);
  }
  const variants = {
    rgba: await encodeImage({ data: rgba, width: info.width, height: info.height, channels: 4 }),
    "16-bit": await sharp(await Deno.readFile(mask)).toColourspace("rgb16").png().toBuffer(),
  };
  for (const [kind, bytes] of Object.entries(variants)) {
    await Deno.writeFile(mask, bytes);
    const dataset = await loadDataset(dir, OPTIONS);
    assertEquals(Array.from(dataset.masks.dataSync()), referenceMasks, kind);
    tf.dispose([dataset.images, dataset.masks]);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadDataset() names the missing data folder and the fix", async () => {
  await assertRejects(
    loadDataset("no/such/imori", OPTIONS),
    /^UserError: Data folder no\/such\/imori does not exist; pass --data .*deno task download/,
  );
});

Deno.test("loadDataset() says when a split has no images", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(join(dir, "train", "images", "akahara"), { recursive: true });
  await assertRejects(
    loadDataset(dir, OPTIONS),
    new RegExp(`No images in ${dir}/train/images/<class>/; expected JPEG, PNG or WebP photos`),
  );
  await Deno.remove(dir, { recursive: true });
});

/** Breaks one file of a fresh tiny dataset and checks the error's text. */
async function assertBrokenDataset(
  breakIt: (dir: string) => Promise<void>,
  message: RegExp,
): Promise<void> {
  const dir = await makeDataset();
  await breakIt(dir);
  const before = tf.memory().numTensors;
  await assertRejects(loadDataset(dir, OPTIONS), (error: Error) => {
    assertEquals(error.name, "UserError");
    assert(message.test(error.message), `"${error.message}" should match ${message}`);
    assert(!error.message.includes("\n"), "one line");
    return true;
  });
  assertEquals(tf.memory().numTensors, before, "no tensors left behind");
  await Deno.remove(dir, { recursive: true });
}

const MASK = "train/seg_images/madara/madara_0002.png";
const PHOTO = "train/images/madara/madara_0002.jpg";

Deno.test("loadDataset() names an image without its mask", async () => {
  await assertBrokenDataset(
    (dir) => Deno.remove(join(dir, MASK)),
    /^Image .*madara_0002\.jpg has no mask: .*seg_images\/madara\/madara_0002\.png does not exist; add the mask/,
  );
});

Deno.test("loadDataset() names a mask of another size than its image", async () => {
  await assertBrokenDataset(
    async (dir) =>
      await Deno.writeFile(
        join(dir, MASK),
        await encodeImage({
          data: new Uint8Array(20 * 15 * 3),
          width: 20,
          height: 15,
          channels: 3,
        }),
      ),
    /^Mask .*madara_0002\.png is 20x15 but its image .*madara_0002\.jpg is 40x30; make the mask the same size/,
  );
});

Deno.test("loadDataset() names the pixel and colour of a mask colour that is no class", async () => {
  await assertBrokenDataset(
    async (dir) => {
      const data = new Uint8Array(40 * 30 * 3);
      data.set([0, 0, 255], 3 * (2 * 40 + 3)); // blue at x 3, y 2
      await Deno.writeFile(
        join(dir, MASK),
        await encodeImage({ data, width: 40, height: 30, channels: 3 }),
      );
    },
    /^Cannot read mask .*madara_0002\.png: pixel \(x 3, y 2\) has colour \(0, 0, 255\), which is no class; paint background black/,
  );
});

Deno.test("loadDataset() names a file that is not an image", async () => {
  await assertBrokenDataset(
    (dir) => Deno.writeTextFile(join(dir, PHOTO), "<html>not found</html>"),
    /^Cannot read image .*madara_0002\.jpg: file is not an image \(JPEG, PNG or WebP expected\); replace it/,
  );
});

Deno.test("loadDataset() names an empty file", async () => {
  await assertBrokenDataset(
    (dir) => Deno.writeFile(join(dir, MASK), new Uint8Array()),
    /^Cannot read mask .*madara_0002\.png: file is empty; copy or download it again/,
  );
});

Deno.test("loadDataset() names a truncated (damaged) photo", async () => {
  await assertBrokenDataset(
    async (dir) => {
      const bytes = await Deno.readFile(join(dir, PHOTO));
      await Deno.writeFile(join(dir, PHOTO), bytes.subarray(0, 20));
    },
    /^Cannot read image .*madara_0002\.jpg: file is (damaged or )?not an image/,
  );
});

for (const script of ["semaseg_dataset", "bin_dataset"]) {
  Deno.test(`${script} exits 1 with a one-line error for a bad dataset`, async () => {
    const dir = await makeDataset();
    await Deno.remove(join(dir, MASK));
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL(`../exercises/${script}.ts`, import.meta.url).pathname,
        "--data",
        dir,
        "--out",
        join(dir, "out"),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr).trim();
    assertEquals(output.code, 1);
    assertEquals(stderr.split("\n").length, 1, stderr);
    assert(/^error: Image .*madara_0002\.jpg has no mask/.test(stderr), stderr);
    await Deno.remove(dir, { recursive: true });
  });
}

Deno.test("semaseg_dataset writes one figure per training photo and a class summary", async () => {
  const dir = await makeDataset();
  const out = join(dir, "out");
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../exercises/semaseg_dataset.ts", import.meta.url).pathname,
      "--data",
      dir,
      "--out",
      out,
      "--size",
      "32",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
  // Each figure in its photo's class folder: photos of one name in two folders keep theirs.
  const written = ["akahara", "madara"].flatMap((folder) =>
    [...Deno.readDirSync(join(out, folder))].map((entry) => join(folder, entry.name)).sort()
  );
  assertEquals(written, [
    "akahara/semaseg_dataset_akahara_0001.png",
    "akahara/semaseg_dataset_akahara_0002.png",
    "madara/semaseg_dataset_madara_0001.png",
    "madara/semaseg_dataset_madara_0002.png",
  ]);
  assert(stdout.includes(`Wrote ${join(out, "akahara", "semaseg_dataset_akahara_0001.png")}`));
  assert(/akahara: in 2 of 4 photos, \d+\.\d% of pixels/.test(stdout), stdout);
  const figure = await sharp(join(out, written[0]!)).metadata();
  assert(figure.width! > 2 * 256 && figure.height! > 256, "panels are upscaled to >= 256 px");
  await Deno.remove(dir, { recursive: true });
});
