/**
 * Every network's training step on the engine's wasm backend (with and
 * without OpenBLAS) against the cpu backend: same loss, same gradients; and
 * the training loop's losses repeat for a seed.
 */
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../engine/mod.ts";
import { assert, assertEquals } from "../lib/assert.ts";
import { trainingLoss } from "../lib/train.ts";
import { buildModel, type ModelName } from "../tools/networks.ts";
import { crossEntropy } from "./lessons.ts";

/** Loss and the gradient of every trainable weight for one training batch. */
async function lossAndGrads(name: ModelName, size: number, batch: number): Promise<Float32Array[]> {
  const model = buildModel(name, { size, seed: 3 });
  const classes = model.outputs[0]!.shape[3] as number;
  const images = tf.randomUniform([batch, size, size, 3], 0, 1, "float32", 5);
  const masks = tf.cast(
    tf.floor(tf.randomUniform([batch, size, size], 0, classes === 1 ? 2 : classes, "float32", 6)),
    "int32",
  ) as tf.Tensor3D;
  const before = tf.memory().numTensors;
  const loss = trainingLoss(model, crossEntropy);
  const { value, grads } = tf.variableGrads(() => loss(images as tf.Tensor4D, masks));
  const names = Object.keys(grads); // creation order: layer names differ between builds
  const data = [await value.data() as Float32Array];
  for (const weight of names) data.push(await grads[weight]!.data() as Float32Array);
  tf.dispose([value, ...Object.values(grads)]);
  // The moving statistics of batch norm are replaced, not added.
  assertEquals(tf.memory().numTensors, before, "the training step leaked tensors");
  tf.dispose([images, masks]);
  model.dispose();
  return data;
}

/**
 * The L2 norm of `actual - expected` over the norm of `expected`, all arrays
 * taken as one vector. Per-element comparison is too strict for a whole
 * network: a ReLU input within float rounding of 0 can flip between backends
 * and move one channel's batch-norm gradient, while every kernel is exact.
 */
function relativeDistance(actual: Float32Array[], expected: Float32Array[]): number {
  let difference = 0;
  let norm = 0;
  for (const [index, wanted] of expected.entries()) {
    for (let i = 0; i < wanted.length; i++) {
      difference += (actual[index]![i]! - wanted[i]!) ** 2;
      norm += wanted[i]! ** 2;
    }
  }
  return Math.sqrt(difference / norm);
}

/**
 * Networks with the input size and batch they are checked at: small, as cpu is
 * the reference; unetlike's 1x1 bottleneck needs a batch of 4, as batch norm
 * over 2 values amplifies rounding differences.
 */
const NETWORKS: [ModelName, number, number][] = [
  ["bin", 8, 2],
  ["semaseg", 8, 2],
  ["nearest", 8, 2],
  ["transposeconv", 8, 2],
  ["concat", 8, 2],
  ["unetlike", 16, 4],
];

Deno.test("every network's training step on wasm (oneDNN, OpenBLAS, neither) matches the cpu backend", async (t) => {
  // Each native library where installed; the label is what setupBackend says it runs.
  const variants = [
    { blas: true, dnnl: true },
    { blas: true, dnnl: false },
    { blas: false, dnnl: false },
  ];
  for (const [name, size, batch] of NETWORKS) {
    await t.step(`${name} at ${size}x${size}, batch ${batch}`, async () => {
      await setupBackend("cpu", { quiet: true });
      const expected = await lossAndGrads(name, size, batch);
      for (const variant of variants) {
        const label = await setupBackend("wasm", { quiet: true, ...variant });
        const actual = await lossAndGrads(name, size, batch);
        assertEquals(actual.length, expected.length);
        const lossError = Math.abs(actual[0]![0]! - expected[0]![0]!) / expected[0]![0]!;
        assert(lossError < 1e-4, `${label}: loss differs from cpu by ${lossError}`);
        const gradError = relativeDistance(actual.slice(1), expected.slice(1));
        assert(gradError < 1e-2, `${label}: gradients differ from cpu by ${gradError}`);
      }
    });
  }
  await setupBackend("cpu", { quiet: true });
});

Deno.test({
  // oneDNN's threads fixed: the count sets the order of its sums, and by default it follows the
  // cores other processes leave free, which another job on the machine can change between runs.
  name: "trainModel() repeats its losses for a seed on the wasm backend with its threads fixed",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await setupBackend("wasm", { quiet: true, threads: 2 });
    const { trainModel } = await import("../lib/train.ts");
    const images = tf.randomUniform([4, 16, 16, 3], 0, 1, "float32", 5) as tf.Tensor4D;
    const masks = tf.randomUniform([4, 16, 16], 0, 2, "int32", 6) as tf.Tensor3D;
    const losses = async (seed: number) => {
      const model = buildModel("bin", { size: 16, seed });
      const result = await trainModel(model, { images, masks }, {
        loss: crossEntropy,
        iters: 4,
        seed,
        progress: { quiet: true },
      });
      result.optimizer.dispose();
      model.dispose();
      return result.losses;
    };
    const first = await losses(0);
    assertEquals(await losses(0), first);
    assert((await losses(1)).join() !== first.join());
    tf.dispose([images, masks]);
  },
});

Deno.test({
  name:
    "a network's first convolution skips the photos' gradient in training, and gives it when asked",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const inputGradient = async () => {
      const model = buildModel("bin", { size: 8, seed: 3 });
      const images = tf.randomUniform([2, 8, 8, 3], 0, 1, "float32", 5);
      const weights = tf.randomUniform([2, 8, 8, 1], -1, 1, "float32", 6);
      const loss = (x: tf.Tensor) =>
        tf.sum(tf.mul(model.apply(x, { training: true }) as tf.Tensor, weights)) as tf.Scalar;
      const dx = tf.grad(loss)(images);
      const data = await dx.data();
      tf.dispose([dx, images, weights]);
      model.dispose();
      return data;
    };
    await setupBackend("cpu", { quiet: true });
    const expected = await inputGradient();
    await setupBackend("wasm", { quiet: true });
    const actual = await inputGradient();
    let worst = 0;
    for (let i = 0; i < expected.length; i++) {
      worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
    }
    const scale = Math.max(...expected.map(Math.abs));
    assert(worst <= 1e-4 * scale, `the photos' gradient differs from cpu by ${worst}`);

    // In a training step (the weights' gradients only), 6 input gradients for bin's 7 convolutions.
    const model = buildModel("bin", { size: 16, seed: 3 });
    const images = tf.randomUniform([2, 16, 16, 3], 0, 1, "float32", 5) as tf.Tensor4D;
    const masks = tf.randomUniform([2, 16, 16], 0, 2, "int32", 6) as tf.Tensor3D;
    const loss = trainingLoss(model, crossEntropy);
    const profile = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() => loss(images, masks));
      tf.dispose([value, ...Object.values(grads)]);
    });
    const inputGradients = profile.kernels.filter((kernel) =>
      kernel.name === "Conv2DBackpropInput"
    );
    assertEquals(inputGradients.length, 6);
    tf.dispose([images, masks]);
    model.dispose();
    await setupBackend("cpu", { quiet: true });
  },
});
