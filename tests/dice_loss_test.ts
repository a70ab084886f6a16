import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import { assert, assertAlmostEquals } from "../lib/assert.ts";
import { DICE_SMOOTHING, softDiceLossFromLogits } from "../lib/dice_loss.ts";
import { semasegLoss } from "../exercises/semaseg_loss.ts";
import { chooseLoss } from "../lib/losses.ts";
import { createRng } from "../lib/rng.ts";

await tf.setBackend("cpu");

/** The soft Dice loss written out in plain numbers, from probabilities [pixel][class]. */
function diceReference(probabilities: number[][], labels: number[], classes: number): number {
  let sum = 0;
  for (let c = 0; c < classes; c++) {
    let intersection = 0;
    let total = 0;
    probabilities.forEach((p, pixel) => {
      const y = labels[pixel] === c ? 1 : 0;
      intersection += p[c]! * y;
      total += p[c]! + y;
    });
    sum += (2 * intersection + DICE_SMOOTHING) / (total + DICE_SMOOTHING);
  }
  return 1 - sum / classes;
}

function softmaxRows(values: number[], classes: number): number[][] {
  const rows: number[][] = [];
  for (let i = 0; i < values.length; i += classes) {
    const row = values.slice(i, i + classes);
    const top = Math.max(...row);
    const exps = row.map((v) => Math.exp(v - top));
    const total = exps.reduce((a, b) => a + b, 0);
    rows.push(exps.map((e) => e / total));
  }
  return rows;
}

function randomCase(seed: number, shape: [number, number, number, number]) {
  const rng = createRng(seed);
  const [batch, height, width, channels] = shape;
  const classes = Math.max(channels, 2);
  const logits = Array.from({ length: batch * height * width * channels }, () => 4 * rng() - 2);
  const labels = Array.from({ length: batch * height * width }, () => Math.floor(rng() * classes));
  return { logits, labels, classes };
}

Deno.test("softDiceLossFromLogits() matches the formula written out, softmax and sigmoid", () => {
  for (const [seed, shape] of [[1, [2, 3, 4, 3]], [2, [1, 5, 2, 2]], [3, [2, 3, 3, 1]]] as const) {
    const { logits, labels, classes } = randomCase(seed, [...shape]);
    const probabilities = shape[3] === 1
      ? logits.map((z) => [1 / (1 + Math.exp(z)), 1 / (1 + Math.exp(-z))])
      : softmaxRows(logits, classes);
    const got = tf.tidy(() =>
      softDiceLossFromLogits(
        tf.tensor4d(logits, [...shape]),
        tf.tensor3d(labels, [shape[0], shape[1], shape[2]], "int32"),
      ).dataSync()[0]!
    );
    assertAlmostEquals(got, diceReference(probabilities, labels, classes), 1e-5);
  }
});

Deno.test("softDiceLossFromLogits() gradient matches central finite differences", () => {
  const shape: [number, number, number, number] = [2, 2, 3, 3];
  const { logits, labels } = randomCase(7, shape);
  const masks = tf.tensor3d(labels, [2, 2, 3], "int32");
  const lossAt = (values: number[]) =>
    tf.tidy(() => softDiceLossFromLogits(tf.tensor4d(values, shape), masks).dataSync()[0]!);
  const gradient = tf.tidy(() =>
    Array.from(
      tf.grad((x: tf.Tensor) => softDiceLossFromLogits(x as tf.Tensor4D, masks))(
        tf.tensor4d(logits, shape),
      ).dataSync(),
    )
  );
  const step = 1e-2;
  let largest = 0;
  for (let i = 0; i < logits.length; i++) {
    const up = logits.slice();
    const down = logits.slice();
    up[i]! += step;
    down[i]! -= step;
    const numeric = (lossAt(up) - lossAt(down)) / (2 * step);
    assertAlmostEquals(gradient[i]!, numeric, 2e-4, `logit ${i}`);
    largest = Math.max(largest, Math.abs(numeric));
  }
  assert(largest > 1e-3, "the check must see a gradient");
  masks.dispose();
});

Deno.test("ce+dice adds the Dice loss to the cross-entropy; a small class weighs more", () => {
  // Nine background pixels predicted right, one class-1 pixel predicted wrong.
  const logits = tf.tensor4d(
    [...Array(9).fill([6, 0]).flat(), 6, 0],
    [1, 1, 10, 2],
  );
  const masks = tf.tensor3d([[[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]]], undefined, "int32");
  const ce = semasegLoss(logits, masks).dataSync()[0]!;
  const both = chooseLoss(semasegLoss, "ce+dice")(logits, masks).dataSync()[0]!;
  const dice = softDiceLossFromLogits(logits, masks).dataSync()[0]!;
  assertAlmostEquals(both, ce + dice, 1e-6);
  assertAlmostEquals(chooseLoss(semasegLoss, "ce")(logits, masks).dataSync()[0]!, ce, 1e-6);
  // Class 1, one pixel of ten and all wrong, is half of the Dice loss: with
  // that pixel right instead, the loss falls from about 0.28 (0.5 but for the smoothing) to near 0.
  const right = tf.tensor4d([...Array(9).fill([6, 0]).flat(), 0, 6], [1, 1, 10, 2]);
  const diceRight = softDiceLossFromLogits(right, masks).dataSync()[0]!;
  assert(dice > 0.25 && diceRight < 0.01, `dice ${dice} wrong, ${diceRight} right`);
  tf.dispose([logits, masks, right]);
});
