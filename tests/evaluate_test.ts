import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import { assert, assertAlmostEquals, assertEquals, assertRejects } from "../lib/assert.ts";
import {
  confusionMatrix,
  evaluateModel,
  formatMetricsLine,
  metricsFromConfusion,
  predictBatches,
} from "../lib/evaluate.ts";
import { predictViewsAveraged, SQUARE_VIEWS } from "../lib/flip_average.ts";
import { classify } from "./lessons.ts";

await tf.setBackend("cpu");

const CLASSES = ["background", "akahara", "madara"];

Deno.test("confusionMatrix() counts truth by row and prediction by column", async () => {
  const truth = tf.tensor3d([[[0, 0, 1], [1, 2, 2]]], undefined, "int32");
  const predicted = tf.tensor3d([[[0, 1, 1], [2, 2, 0]]], undefined, "int32");
  assertEquals(await confusionMatrix(predicted, truth, 3), [[1, 1, 0], [0, 1, 1], [1, 0, 1]]);
  await assertRejects(() =>
    confusionMatrix(predicted, tf.zeros([1, 3, 2], "int32") as tf.Tensor3D, 3)
  );
});

Deno.test("metricsFromConfusion() matches a hand-computed three-class case", () => {
  // truth rows: background 50 px, akahara 30, madara 20.
  const confusion = [[40, 6, 4], [5, 20, 5], [2, 3, 15]];
  const metrics = metricsFromConfusion(confusion, CLASSES);
  // IoU = TP / (row + column - TP)
  const background = 40 / (50 + 47 - 40);
  const akahara = 20 / (30 + 29 - 20);
  const madara = 15 / (20 + 24 - 15);
  assertAlmostEquals(metrics.iou[0]!, background, 1e-12);
  assertAlmostEquals(metrics.iou[1]!, akahara, 1e-12);
  assertAlmostEquals(metrics.iou[2]!, madara, 1e-12);
  assertAlmostEquals(metrics.miou, (background + akahara + madara) / 3, 1e-12);
  assertAlmostEquals(metrics.pixelAccuracy, 75 / 100, 1e-12);
});

Deno.test("metricsFromConfusion() skips a class absent from prediction and truth", () => {
  const metrics = metricsFromConfusion([[8, 2, 0], [1, 4, 0], [0, 0, 0]], CLASSES);
  assertEquals(metrics.iou[2], null);
  assertAlmostEquals(metrics.miou, (8 / 11 + 4 / 7) / 2, 1e-12);
  // Present only in the prediction: IoU 0, counted.
  const wrong = metricsFromConfusion([[8, 0, 2], [0, 5, 0], [0, 0, 0]], CLASSES);
  assertEquals(wrong.iou[2], 0);
  assertAlmostEquals(wrong.miou, (0.8 + 1 + 0) / 3, 1e-12);
});

Deno.test("formatMetricsLine() has the exact form other tools read", () => {
  const line = formatMetricsLine({
    miou: 0.71249,
    iou: [0.8, 0.7, 0.6449],
    pixelAccuracy: 0.8606,
    classNames: CLASSES,
  });
  assertEquals(
    line,
    "test mIoU 0.712 (background 0.80, akahara 0.70, madara 0.64) pixel accuracy 0.861",
  );
  assert(/^test mIoU \d\.\d{3} \(.*\) pixel accuracy \d\.\d{3}$/.test(line));
});

Deno.test("predictBatches() and evaluateModel() leak no tensors", async () => {
  const input = tf.input({ shape: [4, 4, 3] });
  const output = tf.layers.conv2d({ filters: 3, kernelSize: 1, activation: "softmax" }).apply(
    input,
  );
  const model = tf.model({ inputs: input, outputs: output as tf.SymbolicTensor });
  const images = tf.randomUniform([5, 4, 4, 3], 0, 1, "float32", 1) as tf.Tensor4D;
  const masks = tf.zeros([5, 4, 4], "int32") as tf.Tensor3D;
  const before = tf.memory().numTensors;
  const whole = predictBatches(model, images, 5);
  const batched = predictBatches(model, images, 2);
  assertAlmostEquals(tf.max(tf.abs(tf.sub(whole, batched))).dataSync()[0]!, 0, 1e-6);
  tf.dispose([whole, batched]);
  const tidyBefore = tf.memory().numTensors;
  const result = await evaluateModel(model, images, masks, { classify, batchSize: 2 });
  tf.dispose([result.probabilities, result.classMap, result.truth]);
  assertEquals(tf.memory().numTensors, tidyBefore);
  assert(tidyBefore >= before);
  assertEquals(result.metrics.classNames, CLASSES);
  model.dispose();
});

Deno.test("evaluateModel() crops the masks to a smaller output", async () => {
  const input = tf.input({ shape: [4, 4, 3] });
  const output = tf.layers.conv2d({
    filters: 1,
    kernelSize: 3,
    padding: "valid",
    activation: "sigmoid",
    kernelInitializer: "zeros",
    biasInitializer: "ones",
  }).apply(input);
  const model = tf.model({ inputs: input, outputs: output as tf.SymbolicTensor });
  // Border background, centre 2x2 newt: the all-newt prediction is right on the centre.
  const masks = tf.tensor3d(
    [[[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]],
    undefined,
    "int32",
  );
  const result = await evaluateModel(model, tf.zeros([1, 4, 4, 3]), masks, { classify });
  assertEquals(result.truth.shape, [1, 2, 2]);
  assertEquals(result.metrics.pixelAccuracy, 1);
  assertEquals(result.metrics.iou, [null, 1]);
  assertEquals(
    formatMetricsLine(result.metrics),
    "test mIoU 1.000 (background n/a, newt 1.00) pixel accuracy 1.000",
  );
  tf.dispose([result.probabilities, result.classMap, result.truth]);
});

Deno.test("predictViewsAveraged() in predictBatches averages the 8 views mapped back to the photo's frame", () => {
  const input = tf.input({ shape: [6, 6, 3] });
  const output = tf.layers.conv2d({
    filters: 3,
    kernelSize: 3,
    padding: "same",
    activation: "softmax",
    kernelInitializer: tf.initializers.randomNormal({ seed: 4 }),
  }).apply(input) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: output });
  const images = tf.randomUniform([3, 6, 6, 3], 0, 1, "float32", 8) as tf.Tensor4D;
  const averaged = predictBatches(model, images, 2, (batch) => predictViewsAveraged(model, batch));
  // By hand, with tfjs's own image ops: flip left-right, rotate by transposes and reverses.
  const turn = (x: tf.Tensor4D) => tf.reverse(tf.transpose(x, [0, 2, 1, 3]), 2) as tf.Tensor4D; // 90 degrees
  const unturn = (x: tf.Tensor4D) => tf.transpose(tf.reverse(x, 2), [0, 2, 1, 3]) as tf.Tensor4D;
  const views: tf.Tensor4D[] = [];
  for (const mirrored of [false, true]) {
    let x = mirrored ? tf.reverse(images, 2) as tf.Tensor4D : images;
    for (let turns = 0; turns < 4; turns++) {
      let y = model.predict(x) as tf.Tensor4D;
      for (let back = 0; back < turns; back++) y = unturn(y);
      views.push(mirrored ? tf.reverse(y, 2) as tf.Tensor4D : y);
      x = turn(x);
    }
  }
  const expected = tf.div(tf.addN(views), 8);
  assert(tf.max(tf.abs(tf.sub(averaged, expected))).dataSync()[0]! < 1e-6);
  // The views differ for this network, so the average is not just the plain prediction.
  const plain = predictBatches(model, images);
  assert(tf.max(tf.abs(tf.sub(averaged, plain))).dataSync()[0]! > 1e-3);
  assertEquals(SQUARE_VIEWS.length, 8);
});
