import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "../lib/assert.ts";
import { colourJitter, createAugment, cropBoxes } from "../lib/augment.ts";
import { applyRecipe, recipe } from "../lib/recipes.ts";
import { createRng } from "../lib/rng.ts";

await tf.setBackend("cpu");

/** A batch whose first image channel is the mask / 2, so both can be compared after augmenting. */
function pairedBatch(count: number, size: number) {
  const masks = tf.tensor3d(
    Array.from({ length: count * size * size }, (_, index) => (index * 7 + (index >> 3)) % 3),
    [count, size, size],
    "int32",
  );
  const images = tf.tidy(() => {
    const half = tf.div(tf.cast(tf.expandDims(masks, 3), "float32"), 2); // [n, size, size, 1]
    return tf.concat([half, tf.zerosLike(half), tf.onesLike(half)], 3) as tf.Tensor4D;
  });
  return { images, masks };
}

Deno.test("createAugment() flips and turns masks exactly as it flips and turns images", () => {
  const { images, masks } = pairedBatch(3, 6);
  const augment = createAugment({ size: 6, minCrop: 1, jitter: 0 });
  const seen = new Set<string>();
  for (let seed = 0; seed < 64; seed++) {
    const out = augment(images, masks, createRng(seed));
    const fromImage = tf.tidy(() =>
      tf.round(tf.mul(tf.squeeze(tf.slice(out.images, [0, 0, 0, 0], [-1, -1, -1, 1]), [3]), 2))
    );
    assertEquals(Array.from(fromImage.dataSync()), Array.from(out.masks.dataSync()));
    assertEquals(out.masks.dtype, "int32");
    seen.add(String(tf.tidy(() => tf.slice(out.masks, 0, 1).dataSync())));
    tf.dispose([out.images, out.masks, fromImage]);
  }
  // the first image came out in all eight flips and turns of the square
  assertEquals(seen.size, 8);
  tf.dispose([images, masks]);
});

Deno.test("createAugment() crops to the output size and keeps masks as class indices", () => {
  const { images, masks } = pairedBatch(2, 16);
  const before = tf.memory().numTensors;
  const out = createAugment({ size: 8, minCrop: 0.5 })(images, masks, createRng(3));
  assertEquals(out.images.shape, [2, 8, 8, 3]);
  assertEquals(out.masks.shape, [2, 8, 8]);
  assert(Array.from(out.masks.dataSync()).every((value) => [0, 1, 2].includes(value)));
  assert(Array.from(out.images.dataSync()).every((value) => value >= 0 && value <= 1));
  tf.dispose([out.images, out.masks]);
  assertEquals(tf.memory().numTensors, before);
  tf.dispose([images, masks]);
});

Deno.test("createAugment() is repeatable for a seed", () => {
  const { images, masks } = pairedBatch(2, 8);
  const augment = createAugment({ size: 8 });
  const first = augment(images, masks, createRng(5));
  const second = augment(images, masks, createRng(5));
  assertEquals(first.images.dataSync(), second.images.dataSync());
  assertEquals(first.masks.dataSync(), second.masks.dataSync());
  tf.dispose([images, masks, first.images, first.masks, second.images, second.masks]);
});

Deno.test("cropBoxes() keeps every crop inside the photo and at least minCrop of each side", () => {
  const boxes = cropBoxes(200, { size: 8, minCrop: 0.6 }, createRng(1));
  for (const [y1, x1, y2, x2] of boxes) {
    for (const value of [y1!, x1!, y2!, x2!]) assert(value >= 0 && value <= 1);
    assert(Math.abs(y2! - y1!) >= 0.6 - 1e-9 && Math.abs(x2! - x1!) >= 0.6 - 1e-9);
  }
  // about half the boxes are flipped each way
  const flipped = boxes.filter(([y1, , y2]) => y1! > y2!).length;
  assert(flipped > 60 && flipped < 140, `${flipped} of 200 flipped`);
});

Deno.test("colourJitter() with strength 0 leaves the images as they were", () => {
  const images = tf.randomUniform([2, 4, 4, 3], 0, 1, "float32", 1) as tf.Tensor4D;
  const out = colourJitter(images, 0, createRng(1));
  const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(out, images))).dataSync()[0]!);
  assert(difference < 1e-6, `max difference ${difference}`);
  const jittered = colourJitter(images, 0.5, createRng(1));
  const changed = tf.tidy(() => tf.max(tf.abs(tf.sub(jittered, images))).dataSync()[0]!);
  assert(changed > 0.01, `max change ${changed}`);
  tf.dispose([images, out, jittered]);
});

Deno.test("applyRecipe() takes the recipe's values except the flags typed", () => {
  const flags = {
    size: 64,
    iters: 500,
    batchSize: 4,
    optimizer: "sgd",
    lr: 0.01,
    schedule: "constant",
    flipAverage: false,
    bnStats: "recompute",
  };
  const tuned = recipe("tuned");
  const plain = applyRecipe("tuned", flags, []);
  assertEquals(plain, tuned);
  const typed = applyRecipe("tuned", { ...flags, lr: 0.001, size: 48 }, [
    "--lr=0.001",
    "--size",
    "48",
  ]);
  assertEquals(typed.lr, 0.001);
  assertEquals(typed.size, 48);
  assertEquals(typed.trainSize, 48 * tuned.trainSize / tuned.size);
  assertEquals(typed.iters, tuned.iters);
  assertEquals(applyRecipe("default", flags, []).iters, 500);
  assertEquals(typed.flipAverage, tuned.flipAverage);
  assertEquals(applyRecipe("tuned", flags, ["--no-flip-average"]).flipAverage, false);
  assertEquals(applyRecipe("tuned", flags, []).bnStats, "moving");
  // The tuned recipe tests at its own size; a size typed alone is also the test size.
  assert(tuned.testSize > tuned.size);
  assertEquals(typed.testSize, 0);
  assertEquals(
    applyRecipe("tuned", { ...flags, size: 48, testSize: 64 }, ["--size=48", "--test-size=64"])
      .testSize,
    64,
  );
  assertEquals(applyRecipe("tuned", flags, ["--bn-stats", "recompute"]).bnStats, "recompute");
  assertEquals(
    applyRecipe("default", { ...flags, flipAverage: true }, ["--flip-average"]).flipAverage,
    true,
  );
});
