import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import { assert, assertEquals } from "../lib/assert.ts";
import { recomputeBatchNormStats } from "../lib/batch_norm_stats.ts";
import { createRng, shuffled } from "../lib/rng.ts";

await tf.setBackend("cpu");

/** conv -> BN -> conv -> BN, with momentum 0.9 and random weights. */
function network() {
  const input = tf.input({ shape: [5, 5, 2] });
  const conv1 = tf.layers.conv2d({
    filters: 3,
    kernelSize: 3,
    padding: "same",
    kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
  });
  const bn1 = tf.layers.batchNormalization({ momentum: 0.9 });
  const conv2 = tf.layers.conv2d({
    filters: 2,
    kernelSize: 1,
    kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
  });
  const bn2 = tf.layers.batchNormalization({ momentum: 0.9 });
  const x = bn2.apply(conv2.apply(bn1.apply(conv1.apply(input)))) as tf.SymbolicTensor;
  return { model: tf.model({ inputs: input, outputs: x }), conv1, bn1, conv2, bn2 };
}

function close(
  actual: Float32Array | Int32Array | Uint8Array,
  expected: Float32Array | Int32Array | Uint8Array,
  tolerance = 1e-4,
) {
  assertEquals(actual.length, expected.length);
  actual.forEach((value, index) => {
    assert(
      Math.abs(value - expected[index]!) < tolerance,
      `${index}: ${value} vs ${expected[index]}`,
    );
  });
}

Deno.test("recomputeBatchNormStats() gives each layer the mean of its chunk statistics", () => {
  const { model, conv1, bn1, conv2, bn2 } = network();
  const images = tf.randomNormal([6, 5, 5, 2], 0.5, 2, "float32", 7) as tf.Tensor4D;
  assertEquals(recomputeBatchNormStats(model, images, 2, 5), 2);
  // By hand: chunks of 2 in the seeded shuffled order, in training mode, the second layer fed
  // by the first's batch norm.
  const order = shuffled([0, 1, 2, 3, 4, 5], createRng(5));
  const means1: tf.Tensor[] = [],
    vars1: tf.Tensor[] = [],
    means2: tf.Tensor[] = [],
    vars2: tf.Tensor[] = [];
  for (let chunk = 0; chunk < 3; chunk++) {
    const picked = tf.tensor1d(order.slice(2 * chunk, 2 * chunk + 2), "int32");
    const x = conv1.apply(tf.gather(images, picked)) as tf.Tensor4D;
    const m1 = tf.moments(x, [0, 1, 2]);
    means1.push(m1.mean);
    vars1.push(m1.variance);
    const [gamma, beta] = bn1.getWeights();
    const normed = tf.batchNorm(x, m1.mean, m1.variance, beta, gamma, 1e-3);
    const y = conv2.apply(normed) as tf.Tensor4D;
    const m2 = tf.moments(y, [0, 1, 2]);
    means2.push(m2.mean);
    vars2.push(m2.variance);
  }
  const mean = (list: tf.Tensor[]) => tf.div(tf.addN(list), list.length).dataSync() as Float32Array;
  close(bn1.getWeights()[2]!.dataSync() as Float32Array, mean(means1));
  close(bn1.getWeights()[3]!.dataSync() as Float32Array, mean(vars1));
  close(bn2.getWeights()[2]!.dataSync() as Float32Array, mean(means2));
  close(bn2.getWeights()[3]!.dataSync() as Float32Array, mean(vars2));
  // Momentum is restored and the trainable weights are untouched.
  assertEquals((bn1 as unknown as { momentum: number }).momentum, 0.9);
  assertEquals(bn1.getWeights()[0]!.dataSync()[0], 1);
});

Deno.test("recomputeBatchNormStats() mixes photos in a chunk, skips a partial one, leaks nothing", () => {
  const { model, bn1 } = network();
  // Two photos, each as 2 copies in a row (as the four flips of one photo come in a row): in
  // chunks taken in order, each chunk would see one photo and miss the variance between them.
  const a = tf.fill([1, 5, 5, 2], -1), b = tf.fill([1, 5, 5, 2], 1);
  const images = tf.concat([a, a, b, b]) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  recomputeBatchNormStats(model, images, 2, 1);
  assertEquals(tf.memory().numTensors, before);
  // Seed 1 draws the chunks (b, a) and (a, b): each has the variance of all four images.
  const all = tf.moments(model.layers[1]!.apply(images) as tf.Tensor4D, [0, 1, 2]);
  close(bn1.getWeights()[3]!.dataSync() as Float32Array, all.variance.dataSync() as Float32Array);
  // A fifth image (a partial last chunk of 2) is left out: the same statistics as without it.
  const five = tf.concat([images, a]) as tf.Tensor4D;
  const mean = bn1.getWeights()[2]!.dataSync() as Float32Array;
  recomputeBatchNormStats(model, images, 4, 1); // one chunk of all four
  const whole = bn1.getWeights()[2]!.dataSync() as Float32Array;
  close(mean, whole, 1e-3);
  recomputeBatchNormStats(model, five, 4, 1);
  assert(bn1.getWeights()[2]!.dataSync().length === whole.length);
  // Fewer images than a chunk: one chunk of all of them.
  recomputeBatchNormStats(model, tf.slice(images, [0], [1]) as tf.Tensor4D, 2);
  const conv = model.layers[1]!.apply(tf.slice(images, [0], [1])) as tf.Tensor4D;
  close(
    bn1.getWeights()[2]!.dataSync() as Float32Array,
    tf.moments(conv, [0, 1, 2]).mean.dataSync() as Float32Array,
  );
});
