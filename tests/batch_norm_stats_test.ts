import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import { assert, assertEquals } from "../lib/assert.ts";
import { recomputeBatchNormStats } from "../lib/batch_norm_stats.ts";

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
  assertEquals(recomputeBatchNormStats(model, images, 2), 2);
  // By hand: each chunk of 2 in training mode, the second layer fed by the first's batch norm.
  const means1: tf.Tensor[] = [],
    vars1: tf.Tensor[] = [],
    means2: tf.Tensor[] = [],
    vars2: tf.Tensor[] = [];
  for (let chunk = 0; chunk < 3; chunk++) {
    const x = conv1.apply(tf.slice(images, [2 * chunk], [2])) as tf.Tensor4D;
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

Deno.test("recomputeBatchNormStats() leaves out a last partial chunk and leaks nothing", () => {
  const { model, bn1 } = network();
  const images = tf.randomNormal([5, 5, 5, 2], 0, 1, "float32", 3) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  recomputeBatchNormStats(model, images, 2);
  assertEquals(tf.memory().numTensors, before);
  const partial = bn1.getWeights()[2]!.dataSync() as Float32Array;
  recomputeBatchNormStats(model, tf.slice(images, [0], [4]) as tf.Tensor4D, 2);
  close(bn1.getWeights()[2]!.dataSync() as Float32Array, partial, 1e-6);
  // Fewer images than a chunk: one chunk of all of them.
  recomputeBatchNormStats(model, tf.slice(images, [0], [1]) as tf.Tensor4D, 2);
  const conv = model.layers[1]!.apply(tf.slice(images, [0], [1])) as tf.Tensor4D;
  close(
    bn1.getWeights()[2]!.dataSync() as Float32Array,
    tf.moments(conv, [0, 1, 2]).mean.dataSync() as Float32Array,
  );
});
