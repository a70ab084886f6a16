/**
 * ReLU layers folded into the convolution or batch norm before them
 * (`kernels/relu_fusion.ts`) on the wasm backend with oneDNN: the training
 * step's loss, gradients and moving averages against the cpu backend's, and
 * the cases where folding would change a result, which must run as written.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "./assert.ts";
import { setupBackend } from "./backend.ts";
import { openDnnl } from "./dnnl.ts";

/** Seeded initial weights, the same on every backend. */
function init(seed: number) {
  return { kernelInitializer: tf.initializers.glorotUniform({ seed }) };
}

/**
 * Conv -> ReLU -> BN (a CRB block), then conv -> BN -> ReLU (a CBR block),
 * then a 1x1 conv; and, sharing those layers, a model that ends at the CBR
 * block's batch norm (before its ReLU).
 */
function models(size: number) {
  const input = tf.input({ shape: [size, size, 3] });
  let x = tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: "same", ...init(1) })
    .apply(input) as tf.SymbolicTensor;
  x = tf.layers.reLU().apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization().apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: "same", ...init(2) })
    .apply(x) as tf.SymbolicTensor;
  const norm = tf.layers.batchNormalization().apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU().apply(norm) as tf.SymbolicTensor;
  const output = tf.layers.conv2d({ filters: 2, kernelSize: 1, ...init(3) })
    .apply(x) as tf.SymbolicTensor;
  return {
    full: tf.model({ inputs: input, outputs: output }),
    untilNorm: tf.model({ inputs: input, outputs: norm }),
  };
}

/** One training step's loss, gradients (in variable order) and moving averages. */
function step(model: tf.LayersModel, batch: number, size: number): Float32Array[] {
  return tf.tidy(() => {
    const images = tf.randomUniform([batch, size, size, 3], 0, 1, "float32", 5);
    const outputShape = model.outputs[0]!.shape.slice(1) as number[];
    const weights = tf.randomUniform([batch, ...outputShape], -1, 1, "float32", 6);
    const variables = model.trainableWeights.map((weight) => weight.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(
      () =>
        tf.sum(tf.mul(model.apply(images, { training: true }) as tf.Tensor, weights)) as tf.Scalar,
      variables,
    );
    const gradients = variables.map((variable) => grads[variable.name]!.dataSync());
    const averages = model.weights.filter((w) => w.name.includes("moving"))
      .map((w) => w.read().dataSync());
    return [value.dataSync(), ...gradients, ...averages] as Float32Array[];
  });
}

function relativeError(actual: Float32Array, expected: Float32Array): number {
  let difference = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    difference += (actual[i]! - expected[i]!) ** 2;
    norm += expected[i]! ** 2;
  }
  return Math.sqrt(difference / Math.max(norm, 1e-30));
}

// Batch 2: 2048 rows per batch norm (one oneDNN call); batch 4: 4096 (statistics by parts).
for (const batch of [2, 4]) {
  Deno.test(`ReLUs fold into the convolution and batch norm before them on wasm, batch ${batch}, with cpu's numbers`, async () => {
    const dnnl = openDnnl();
    if (typeof dnnl === "string") {
      console.log(`skipped: oneDNN ${dnnl}`);
      return;
    }
    dnnl.close();
    const size = 32;
    await setupBackend("cpu", { quiet: true });
    const reference = models(size);
    const expected = step(reference.full, batch, size);
    const expectedNorm = step(reference.untilNorm, batch, size);
    await setupBackend("wasm", { quiet: true });
    const { full, untilNorm } = models(size);
    const kernels = (await tf.profile(() => void step(full, batch, size))).kernels
      .map((kernel) => kernel.name);
    // Both ReLUs folded: no Relu kernel; one ReLU gradient, the convolution's (the
    // batch norm's is inside its gradient kernel).
    assertEquals(kernels.filter((name) => name === "Relu").length, 0, `ran ${kernels}`);
    assertEquals(kernels.filter((name) => name === "SegmentReluGrad").length, 1);
    // A second step from the same weights and averages as the cpu's first.
    const { full: fresh } = models(size);
    const actual = step(fresh, batch, size);
    assertEquals(actual.length, expected.length);
    const largest = (values: Float32Array) => values.reduce((a, b) => Math.max(a, Math.abs(b)), 0);
    const overall = Math.max(...expected.map(largest));
    for (const [i, values] of actual.entries()) {
      // Relative to the largest value; a bias before a batch norm has a gradient of ~0
      // (the normalization removes it: 1e-5 here, against 44 for its kernel's), so
      // its scale is a hundredth of the largest of all.
      const scale = Math.max(1e-2 * overall, largest(expected[i]!));
      const error = Math.max(...values.map((value, j) => Math.abs(value - expected[i]![j]!)));
      assert(error < 1e-4 * scale, `output ${i} differs from cpu by ${error} (scale ${scale})`);
    }
    // The model that ends at the batch norm gets the batch norm's output, negatives and all.
    const normOutput = step(untilNorm, batch, size);
    assert(relativeError(normOutput[0]!, expectedNorm[0]!) < 1e-4);
    const { full: aloneFull, untilNorm: alone } = models(size);
    const y = alone.apply(tf.ones([batch, size, size, 3]), { training: true }) as tf.Tensor;
    assert((await y.min().data())[0]! < 0, "the batch norm's output lost its negatives");
    y.dispose();
    // Each full model holds every layer of its model that ends at the batch norm.
    for (const model of [reference.full, full, fresh, aloneFull]) model.dispose();
    await setupBackend("cpu", { quiet: true });
  });
}

Deno.test("a layer whose output also goes elsewhere keeps its ReLU separate on wasm", async () => {
  await setupBackend("wasm", { quiet: true });
  const input = tf.input({ shape: [8, 8, 2] });
  const conv = tf.layers.conv2d({ filters: 2, kernelSize: 1, ...init(4) })
    .apply(input) as tf.SymbolicTensor;
  const relu = tf.layers.reLU().apply(conv) as tf.SymbolicTensor;
  const sum = tf.layers.add().apply([relu, conv]) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: sum });
  const x = tf.randomUniform([1, 8, 8, 2], -1, 1, "float32", 7);
  const y = model.apply(x, { training: true }) as tf.Tensor;
  const direct = model.layers[1]!.apply(x) as tf.Tensor;
  const expected = tf.add(tf.relu(direct), direct);
  assert(
    relativeError(await y.data() as Float32Array, await expected.data() as Float32Array) < 1e-6,
  );
  // A layer applied to a tensor outside any model run gives its own output, though a ReLU
  // follows it in a model.
  const { full } = models(32);
  const images = tf.randomUniform([2, 32, 32, 3], 0, 1, "float32", 8);
  for (const layer of [full.layers[1]!, full.layers[5]!]) {
    const input = layer === full.layers[1] ? images : tf.randomNormal([2, 32, 32, 16]);
    const output = layer.apply(input, { training: true }) as tf.Tensor;
    assert((await output.min().data())[0]! < 0, `${layer.getClassName()} lost its negatives`);
    tf.dispose([input, output]);
  }
  tf.dispose([x, y, direct, expected, images]);
  full.dispose();
  model.dispose();
  await setupBackend("cpu", { quiet: true });
});
