import "@tensorflow/tfjs-backend-cpu";
import * as tf from "@tensorflow/tfjs-core";
import sharp from "sharp";
import { assert, assertEquals, assertNotEquals, assertRejects } from "../lib/assert.ts";
import { resolveDataDir } from "../lib/data_dir.ts";
import { loadDataset } from "../lib/dataset.ts";
import { imoriFiles } from "../lib/download.ts";
import { join } from "../lib/path.ts";
import { createRng } from "../lib/rng.ts";
import { writeSyntheticDataset } from "../lib/synthetic_files.ts";
import { renderNewtPhoto } from "../lib/synthetic_newts.ts";
import { CLASSES } from "../exercises/semaseg_dataset.ts";

Deno.test("createRng() is repeatable and spreads over [0, 1)", () => {
  const random = createRng(42);
  const values = Array.from({ length: 10000 }, random);
  assert(values.every((value) => value >= 0 && value < 1));
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  assert(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`);
  assertEquals(createRng(42)(), values[0]);
  assertNotEquals(createRng(43)(), values[0]);
});

Deno.test("renderNewtPhoto() is deterministic per seed and differs between seeds", () => {
  const a = renderNewtPhoto({ kind: "akahara", seed: 5 });
  const b = renderNewtPhoto({ kind: "akahara", seed: 5 });
  const c = renderNewtPhoto({ kind: "akahara", seed: 6 });
  assertEquals(a.image.data, b.image.data);
  assertEquals(a.mask.data, b.mask.data);
  assertNotEquals(a.image.data, c.image.data);
  assertEquals(a.image.width, 256);
  assert([144, 455].includes(a.image.height), `height ${a.image.height}`);
});

Deno.test("renderNewtPhoto() masks hold only exact class colours and a newt", () => {
  for (const [kind, color] of [["akahara", [128, 0, 0]], ["madara", [0, 128, 0]]] as const) {
    for (let seed = 0; seed < 6; seed++) {
      const { mask } = renderNewtPhoto({ kind, seed, width: 96, height: 64 });
      let newt = 0;
      for (let pixel = 0; pixel < 96 * 64; pixel++) {
        const rgb = Array.from(mask.data.subarray(3 * pixel, 3 * pixel + 3));
        if (rgb.some((value) => value > 0)) {
          assertEquals(rgb, [...color]);
          newt++;
        }
      }
      const share = newt / (96 * 64);
      assert(share > 0.005 && share < 0.8, `${kind} seed ${seed}: newt share ${share}`);
    }
  }
});

Deno.test("writeSyntheticDataset() writes 16 + 6 photos in the Imori layout, quickly", async () => {
  const dir = join(await Deno.makeTempDir(), "synthetic");
  const started = performance.now();
  await writeSyntheticDataset(dir);
  const seconds = (performance.now() - started) / 1000;
  console.log(`drew 22 photos in ${seconds.toFixed(2)} s`);
  assert(seconds < 30, `took ${seconds} s`);
  for (const [split, numbers] of [["train", [1, 8]], ["test", [9, 11]]] as const) {
    for (const kind of ["akahara", "madara"]) {
      const names = [...Deno.readDirSync(join(dir, split, "images", kind))].map((entry) =>
        entry.name
      ).sort();
      assertEquals(names.length, numbers[1] - numbers[0] + 1);
      assertEquals(names[0], `${kind}_${String(numbers[0]).padStart(4, "0")}.png`);
      const photo = await sharp(join(dir, split, "images", kind, names[0]!)).metadata();
      const mask = await sharp(join(dir, split, "seg_images", kind, names[0]!)).metadata();
      assertEquals([photo.format, mask.format], ["png", "png"]); // lossless: the drawn pixels
      assertEquals([mask.width, mask.height], [photo.width, photo.height]);
    }
  }
  const train = await loadDataset(dir, { split: "train", size: 64, mode: CLASSES });
  assertEquals(train.images.shape, [16, 64, 64, 3]);
  const classes = new Set(train.masks.dataSync());
  assertEquals([...classes].sort(), [0, 1, 2]);
  tf.dispose([train.images, train.masks]);
  await Deno.remove(join(dir, ".."), { recursive: true });
});

Deno.test("resolveDataDir() draws the synthetic set once, reuses it, and prefers a full data/imori", async () => {
  const root = await Deno.makeTempDir();
  const lines: string[] = [];
  const log = console.log;
  console.log = (line: string) => lines.push(line);
  try {
    await Deno.mkdir(join(root, "data", "synthetic.tmp-interrupted", "synthetic"), {
      recursive: true,
    });
    const first = await resolveDataDir(undefined, { root });
    assertEquals(first, join(root, "data", "synthetic"));
    assertEquals(lines.length, 1);
    assert(lines[0]!.startsWith("Drew the built-in synthetic newt dataset into"), lines[0]!);
    const marker = await Deno.stat(join(first, "synthetic.json"));
    const second = await resolveDataDir(undefined, { root });
    assertEquals(second, first);
    assertEquals(lines.length, 2);
    assert(lines[1]!.startsWith("Using the built-in synthetic newt dataset in"), lines[1]!);
    assertEquals((await Deno.stat(join(first, "synthetic.json"))).mtime, marker.mtime);
    const leftovers = [...Deno.readDirSync(join(root, "data"))].map((entry) => entry.name).sort();
    assertEquals(leftovers, ["synthetic", "synthetic.tmp-interrupted"]);
    await resolveDataDir(undefined, { root, quiet: true });
    assertEquals(lines.length, 2, "quiet prints nothing");
  } finally {
    console.log = log;
  }
  const imori = join(root, "data", "imori");
  const files = imoriFiles();
  for (const file of files.slice(0, -1)) {
    await Deno.mkdir(join(imori, file, ".."), { recursive: true });
    await Deno.writeFile(join(imori, file), new Uint8Array([1]));
  }
  await assertRejects(
    resolveDataDir(undefined, { root }),
    /imori is incomplete \(1 of 44 files missing, e\.g\. test\/seg_images\/madara\/madara_0011\.png\); run `deno task download` again/,
  );
  await Deno.writeFile(join(imori, files.at(-1)!), new Uint8Array([1]));
  assertEquals(await resolveDataDir(undefined, { root }), imori);
  await assertRejects(
    resolveDataDir(join(root, "nothing")),
    /^UserError: Data folder .*nothing does not exist; pass --data/,
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("the synthetic files the Deno scripts read hold exactly the pixels the page draws", async () => {
  // The Deno scripts read data/synthetic through the dataset reader; the training page draws
  // the same set in memory (web/training.ts). Both must train on the same tensors, to the bit.
  const { lessonSplits, syntheticData } = await import("../web/training.ts");
  const { lessonNamed } = await import("../web/lessons.ts");
  const { loadSplit } = await import("../lib/dataset.ts");
  const dir = join(await Deno.makeTempDir(), "synthetic");
  const synthetic = { trainPerClass: 2, testPerClass: 1 };
  await writeSyntheticDataset(dir, synthetic);
  const lesson = lessonNamed("nearest");
  const page = lessonSplits(lesson, 32, syntheticData(synthetic));
  const log = console.log;
  console.log = () => {};
  try {
    for (const split of ["train", "test"] as const) {
      const deno = await loadSplit(dir, split, { mode: lesson.mode, size: 32 });
      assertEquals(deno.names, page[split].names);
      assertEquals(deno.images.shape, page[split].images.shape);
      assertEquals(deno.images.dataSync(), page[split].images.dataSync(), `${split} photos`);
      assertEquals(deno.masks.dataSync(), page[split].masks.dataSync(), `${split} masks`);
      tf.dispose([deno.images, deno.masks, page[split].images, page[split].masks]);
    }
  } finally {
    console.log = log;
    await Deno.remove(join(dir, ".."), { recursive: true });
  }
});
