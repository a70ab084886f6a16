/**
 * Every kernel and gradient the exercises train with, on every backend this
 * project sets up, against the cpu backend (the reference) on small seeded
 * random tensors: forward values and gradients with respect to every input.
 *
 * Backends: wasm with oneDNN (when installed) with and without OpenBLAS,
 * wasm with OpenBLAS (when installed) on one and on two threads, wasm
 * without either, and webgpu (skipped, saying why, when no adapter exists; CI
 * installs Mesa's llvmpipe).
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "./assert.ts";
import { findGpuAdapter, registerWasmKernels, setupBackend } from "./backend.ts";
import { openBlas } from "./blas.ts";
import { openDnnl } from "./dnnl.ts";
import { DnnlConvolutions } from "./kernels/conv_dnnl.ts";
import { DnnlBatchNorm } from "./kernels/norm_dnnl.ts";
import { DnnlBinary } from "./kernels/binary_dnnl.ts";
import { DnnlBlockSum } from "./kernels/block_sum_dnnl.ts";
import { DnnlStridedCopy } from "./kernels/channel_copy.ts";
import { DnnlEltwise } from "./kernels/eltwise_dnnl.ts";
import { BATCH_NORM_TRAINING, MOVING_AVERAGES } from "./kernels/batch_norm_training.ts";
import { DnnlMaxPoolGrad } from "./kernels/pool_dnnl.ts";
import { DnnlResize } from "./kernels/resize_dnnl.ts";
import { MAX_POOL_MASK, maxPoolMaskDnnlConfig } from "./kernels/max_pool_mask.ts";
import type { WasmBackend } from "./kernels/wasm_heap.ts";
import { SIGMOID_CROSS_ENTROPY, SIGMOID_CROSS_ENTROPY_GRAD } from "./kernels/cross_entropy.ts";
import { DnnlScaledSum } from "./kernels/scaled_sum_dnnl.ts";
import { MOMENTUM_UPDATE, momentumUpdateWasmConfig } from "./kernels/momentum.ts";

/** Seeded uniform values in [-1, 1). */
function seeded(count: number, seed: number): Float32Array {
  const values = new Float32Array(count);
  let state = seed * 2654435761 % 4294967296;
  for (let i = 0; i < count; i++) {
    state = (state * 1664525 + 1013904223) % 4294967296;
    values[i] = state / 2147483648 - 1;
  }
  return values;
}

function input(shape: number[], seed: number): tf.Tensor {
  return tf.tensor(seeded(shape.reduce((a, b) => a * b, 1), seed), shape);
}

/** Values from {-2, -1.5, -1, -0.5}: most pooling windows hold tied maxima. */
function tiedNegatives(shape: number[], seed: number): tf.Tensor {
  return tf.sub(tf.mul(tf.floor(tf.mul(input(shape, seed), 2)), 0.5), 1);
}

/** A computation: its outputs (forward values and gradients), all float. */
interface Case {
  name: string;
  run: () => tf.Tensor[];
  /**
   * Its gradients depend on which of tied maxima a max pooling picks: only
   * backends that pick the first, as cpu does, must match them.
   */
  ties?: true;
}

/** Forward value and gradients of `sum(f(inputs) * weights)` for all inputs. */
function withGrads(f: (...inputs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[]): tf.Tensor[] {
  const y = f(...inputs);
  const weights = input(y.shape, 99);
  const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), weights)))(inputs);
  return [y, ...grads];
}

function convCase(
  name: string,
  xShape: number[],
  filterShape: number[],
  stride: number,
  pad: "same" | "valid",
): Case {
  return {
    name,
    run: () =>
      withGrads(
        (x, filter) => tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, stride, pad),
        [input(xShape, 1), input(filterShape, 2)],
      ),
  };
}

/**
 * Poolings and resizes that oneDNN's kernels leave to the others, since their
 * rules could differ from tfjs's (no whole upsampling factor, a flag).
 */
const FALLBACK_CASES: Case[] = [
  ...([
    ["by 1.5", [2, 4, 4, 5], [6, 6], false, false],
    ["down by 2", [2, 8, 6, 5], [4, 3], false, false],
    ["x2 with halfPixelCenters", [2, 4, 3, 5], [8, 6], false, true],
    ["x2 with alignCorners", [2, 4, 3, 5], [8, 6], true, false],
  ] as const).map(([what, shape, size, alignCorners, halfPixelCenters], index) => ({
    name: `nearest resize ${what} (falls back)`,
    run: () =>
      withGrads(
        (x) =>
          tf.image.resizeNearestNeighbor(
            x as tf.Tensor4D,
            [...size],
            alignCorners,
            halfPixelCenters,
          ),
        [input([...shape], 100 + index)],
      ),
  })),
];

const CASES: Case[] = [
  convCase("conv2d 3x3 same stride 1, 3 -> 8 channels", [2, 7, 6, 3], [3, 3, 3, 8], 1, "same"),
  convCase("conv2d 3x3 same stride 1, 32 -> 32 channels", [2, 6, 5, 32], [3, 3, 32, 32], 1, "same"),
  // 880 rows on the padded grid: OpenBLAS runs the taps in several blocks of rows.
  convCase("conv2d 3x3 same over several row blocks", [2, 20, 19, 32], [3, 3, 32, 32], 1, "same"),
  convCase("conv2d 1x1, 32 -> 3 channels", [2, 5, 5, 32], [1, 1, 32, 3], 1, "valid"),
  // Products of at least 2^22 multiply-adds with every side >= 64: several OpenBLAS threads.
  convCase(
    "conv2d 3x3 same, 64 -> 128 channels (large products)",
    [2, 16, 16, 64],
    [3, 3, 64, 128],
    1,
    "same",
  ),
  convCase("conv2d 3x3 valid (UNet), 4 -> 6 channels", [2, 8, 7, 4], [3, 3, 4, 6], 1, "valid"),
  convCase("conv2d 2x2 stride 2", [2, 6, 4, 5], [2, 2, 5, 3], 2, "valid"),
  // Odd sizes with stride 2: "same" pads one more below and right than above and left.
  convCase("conv2d 3x3 same stride 2 on odd sizes", [2, 7, 9, 5], [3, 3, 5, 6], 2, "same"),
  convCase("conv2d 5x5 valid stride 2 on odd sizes", [3, 11, 8, 3], [5, 5, 3, 4], 2, "valid"),
  convCase("conv2d 1x3 same, one image", [1, 5, 7, 6], [1, 3, 6, 5], 1, "same"),
  // Channels that fill no SIMD tile evenly (13 = 4 + 4 + 4 + 1 rows, 19 = 8 + 8 + 3 columns).
  convCase("conv2d 3x3 same, 13 -> 19 channels", [2, 9, 11, 13], [3, 3, 13, 19], 1, "same"),
  convCase("conv2d 5x3 same stride 2, 7 -> 12 channels", [3, 10, 13, 7], [5, 3, 7, 12], 2, "same"),
  // Winograd's F(2x2, 3x3) on SIMD: 2x2 output tiles cut at odd sizes, no padding (the input
  // gradient then pads 2), 105 tiles (two blocks of 64, across rows), and a deep layer of few
  // pixels whose blocks run across images.
  convCase(
    "conv2d 3x3 valid on odd sizes, 8 -> 12 channels",
    [2, 9, 7, 8],
    [3, 3, 8, 12],
    1,
    "valid",
  ),
  convCase(
    "conv2d 3x3 same, 70 pixels wide, 4 -> 4 channels",
    [1, 5, 70, 4],
    [3, 3, 4, 4],
    1,
    "same",
  ),
  convCase(
    "conv2d 3x3 same, 3 images of 3x5, 64 -> 72 channels",
    [3, 3, 5, 64],
    [3, 3, 64, 72],
    1,
    "same",
  ),
  {
    name: "conv2d 3x3 dilation 2 (forward only: tfjs has no dilated gradient)",
    run: () => [
      tf.conv2d(
        input([2, 9, 8, 3], 46) as tf.Tensor4D,
        input([3, 3, 3, 4], 47) as tf.Tensor4D,
        1,
        "same",
        "NHWC",
        2,
      ),
    ],
  },
  {
    name: "fused conv2d with leakyrelu, relu6 and elu (forward only: tfjs has no gradient)",
    run: () =>
      (["leakyrelu", "relu6", "elu"] as const).map((activation) =>
        tf.fused.conv2d({
          x: tf.mul(input([2, 6, 5, 4], 48), 4) as tf.Tensor4D,
          filter: input([3, 3, 4, 5], 49) as tf.Tensor4D,
          bias: input([5], 50),
          strides: 1,
          pad: "same",
          activation,
          leakyreluAlpha: 0.3,
        })
      ),
  },
  {
    name: "transposed conv 3x3 stride 2 same to odd sizes, 6 -> 3 channels",
    run: () =>
      withGrads(
        (x, filter) =>
          tf.conv2dTranspose(x as tf.Tensor4D, filter as tf.Tensor4D, [2, 9, 7, 3], 2, "same"),
        [input([2, 5, 4, 6], 51), input([3, 3, 3, 6], 52)],
      ),
  },
  {
    name: "fused conv2d 3x3 same + bias + relu",
    run: () =>
      withGrads(
        (x, filter, bias) =>
          tf.fused.conv2d({
            x: x as tf.Tensor4D,
            filter: filter as tf.Tensor4D,
            bias,
            strides: 1,
            pad: "same",
            activation: "relu",
          }),
        [input([2, 6, 6, 8], 3), input([3, 3, 8, 16], 4), input([16], 5)],
      ),
  },
  {
    name: "fused conv2d 3x3 valid + bias, no activation",
    run: () =>
      withGrads(
        (x, filter, bias) =>
          tf.fused.conv2d({
            x: x as tf.Tensor4D,
            filter: filter as tf.Tensor4D,
            bias,
            strides: 1,
            pad: "valid",
          }),
        [input([2, 7, 6, 5], 38), input([3, 3, 5, 4], 39), input([4], 40)],
      ),
  },
  {
    name: "fused conv2d 1x1 + bias + sigmoid",
    run: () =>
      withGrads(
        (x, filter, bias) =>
          tf.fused.conv2d({
            x: x as tf.Tensor4D,
            filter: filter as tf.Tensor4D,
            bias,
            strides: 1,
            pad: "valid",
            activation: "sigmoid",
          }),
        [input([2, 4, 4, 8], 6), input([1, 1, 8, 1], 7), input([1], 8)],
      ),
  },
  {
    name: "transposed conv kernel 2 stride 2, 8 -> 4 channels",
    run: () =>
      withGrads(
        (x, filter) =>
          tf.conv2dTranspose(x as tf.Tensor4D, filter as tf.Tensor4D, [2, 8, 6, 4], 2, "same"),
        [input([2, 4, 3, 8], 9), input([2, 2, 4, 8], 10)],
      ),
  },
  {
    name: "max pool 2x2",
    run: () =>
      withGrads((x) => tf.maxPool(x as tf.Tensor4D, 2, 2, "valid"), [input([2, 6, 4, 3], 11)]),
  },
  {
    name: "max pool 2x2 same padding on odd sizes",
    run: () =>
      withGrads((x) => tf.maxPool(x as tf.Tensor4D, 2, 2, "same"), [input([2, 5, 3, 3], 30)]),
  },
  // Ties on purpose: the gradient must go to the first maximum of each window in
  // row-major order, as on cpu (oneDNN's rule too; tfjs-wasm's own sends it to every one).
  {
    name: "max pool 2x2 with ties: windows of zeros, as after a ReLU",
    ties: true,
    run: () =>
      withGrads(
        (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, "valid"),
        [tf.relu(tf.sub(input([2, 8, 6, 16], 90), 0.5))],
      ),
  },
  {
    name: "max pool 2x2 with ties: windows of equal negative values",
    ties: true,
    run: () =>
      withGrads(
        (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, "valid"),
        [tiedNegatives([2, 6, 8, 16], 91)],
      ),
  },
  {
    name: "max pool 3x3 stride 2 same with ties (overlapping windows, padding on every side)",
    ties: true,
    run: () =>
      withGrads(
        (x) => tf.maxPool(x as tf.Tensor4D, 3, 2, "same"),
        [tiedNegatives([2, 9, 9, 5], 92)],
      ),
  },
  {
    name: "max pool 2x3 window, strides 1 and 2, with ties",
    ties: true,
    run: () =>
      withGrads(
        (x) => tf.maxPool(x as tf.Tensor4D, [2, 3], [1, 2], "valid"),
        [tiedNegatives([2, 7, 9, 4], 93)],
      ),
  },
  {
    name: "nearest upsampling x2",
    run: () =>
      withGrads(
        (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [8, 6]),
        [input([3, 4, 3, 5], 12)],
      ),
  },
  {
    name: "nearest upsampling x3",
    run: () =>
      withGrads(
        (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [12, 9]),
        [input([2, 4, 3, 5], 94)],
      ),
  },
  {
    name: "nearest upsampling x2 by x3, and x1 by x4 (non-square)",
    run: () => [
      ...withGrads(
        (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [10, 12]),
        [input([2, 5, 4, 16], 95)],
      ),
      ...withGrads(
        (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [5, 12]),
        [input([2, 5, 3, 7], 96)],
      ),
    ],
  },
  {
    name: "nearest upsampling of the nearest exercise's size, [4, 32, 32, 32] to 64x64",
    run: () =>
      withGrads(
        (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [64, 64]),
        [input([4, 32, 32, 32], 97)],
      ),
  },
  ...FALLBACK_CASES,
  {
    name: "concat on channels and centre crop (slice)",
    run: () =>
      withGrads(
        (a, b) => tf.concat([tf.slice(a!, [0, 1, 1, 0], [2, 4, 4, 3]), b!], 3),
        [input([2, 6, 6, 3], 13), input([2, 4, 4, 5], 14)],
      ),
  },
  {
    name: "batch norm in training mode (batch statistics)",
    run: () =>
      withGrads((x, scale, offset) => {
        const { mean, variance } = tf.moments(x!, [0, 1, 2]);
        return tf.batchNorm(x!, mean, variance, offset, scale, 1e-3);
      }, [tf.add(input([2, 5, 4, 6], 15), 0.5), input([6], 16), input([6], 17)]),
  },
  {
    name: "batch norm in training mode over 256 rows (OpenBLAS normalization)",
    run: () =>
      withGrads((x, scale, offset) => {
        const { mean, variance } = tf.moments(x!, [0, 1, 2]);
        return tf.batchNorm(x!, mean, variance, offset, scale, 1e-3);
      }, [input([4, 8, 8, 6], 43), input([6], 44), input([6], 45)]),
  },
  {
    name: "batch norm with moving statistics",
    run: () =>
      withGrads(
        (x, mean, variance, scale, offset) =>
          tf.batchNorm(x!, mean!, tf.add(tf.abs(variance!), 0.5), offset, scale, 1e-3),
        [input([2, 5, 4, 6], 18), input([6], 19), input([6], 20), input([6], 21), input([6], 22)],
      ),
  },
  {
    name: "batch norm with full-shape statistics",
    run: () =>
      withGrads(
        (x, mean, variance, scale, offset) =>
          tf.batchNorm(x!, mean!, tf.add(tf.abs(variance!), 0.5), offset, scale, 1e-3),
        [
          input([1, 3, 2, 4], 23),
          input([1, 3, 2, 4], 24),
          input([1, 3, 2, 4], 25),
          input([1, 3, 2, 4], 26),
          input([1, 3, 2, 4], 27),
        ],
      ),
  },
  // At least 32768 values: smaller layers keep tfjs-layers' own code. More than 16384 rows
  // (16683): oneDNN's statistics block by block (981 and 982 rows), joined in float64.
  ...[[2, 32, 32, 17], [4097, 8], [3, 83, 67, 5], [2, 35, 33, 16]].map((shape, index) => ({
    name: `batch norm layer in training mode on [${shape}]: output, gradients, moving statistics`,
    run: () => {
      const channels = shape[shape.length - 1]!;
      const seed = 60 + 10 * index;
      const layer = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-3 });
      const x = tf.add(input(shape, seed), 0.3);
      const weights = input(shape, seed + 1);
      const loss = (value: tf.Tensor) =>
        tf.sum(tf.mul(layer.apply(value, { training: true }) as tf.Tensor, weights)) as tf.Scalar;
      loss(x); // builds the layer
      layer.setWeights([
        input([channels], seed + 2),
        input([channels], seed + 3),
        input([channels], seed + 4),
        tf.add(tf.abs(input([channels], seed + 5)), 0.5),
      ]);
      const y = layer.apply(x, { training: true }) as tf.Tensor;
      const variables = layer.trainableWeights.map((weight) => weight.read() as tf.Variable);
      const { grads } = tf.variableGrads(() => loss(x), variables);
      const dx = tf.grad(loss)(x);
      // Three updates of the moving averages so far; copied before the layer is disposed.
      const moving = layer.getWeights().slice(2).map((weight) => tf.mul(weight, 1));
      const outputs = [y, dx, ...variables.map((variable) => grads[variable.name]!), ...moving];
      layer.dispose();
      return outputs;
    },
  })),
  {
    name: "sum over all axes but channels, and mean",
    run: () =>
      withGrads(
        (x) => tf.add(tf.sum(x!, [0, 1, 2]), tf.mean(x!, [0, 1, 2])),
        [input([2, 5, 3, 7], 28)],
      ),
  },
  {
    name: "sum and mean over the leading axes of 256 rows (OpenBLAS sums)",
    run: () =>
      withGrads(
        (x) => tf.add(tf.sum(x!, [0, 1, 2]), tf.mean(x!, [0, 1, 2])),
        [input([4, 8, 8, 5], 37)],
      ),
  },
  {
    name: "sum and mean with kept dimensions, over inner axes, and over all axes",
    run: () =>
      withGrads(
        (x) =>
          tf.add(
            tf.add(tf.sum(x!, [0, 1], true), tf.mean(x!, [1, 2], true)),
            tf.add(tf.mean(x!), tf.sum(x!, -1, true)),
          ),
        [input([2, 3, 4, 5], 34)],
      ),
  },
  {
    name: "tile along leading axes, along inner axes, and cast",
    run: () =>
      withGrads(
        (a, b) =>
          tf.add(
            tf.tile(tf.cast(a!, "float32"), [2, 3, 2, 1]),
            tf.tile(b!, [1, 1, 2, 3]),
          ),
        [input([1, 1, 1, 6], 35), input([2, 3, 1, 2], 36)],
      ),
  },
  {
    name: "greaterEqual of 64x64x8 tensors (oneDNN's size), with ties, cast to float",
    run: () => {
      const a = tf.round(tf.mul(input([2, 64, 64, 8], 53), 2));
      const b = tf.round(tf.mul(input([2, 64, 64, 8], 54), 2));
      return [
        tf.cast(tf.greaterEqual(a, b), "float32"),
        tf.cast(tf.greaterEqual(a, tf.scalar(0)), "float32"),
        tf.cast(tf.greaterEqual(a, input([8], 55)), "float32"),
      ];
    },
  },
  {
    name: "unpooling by a broadcast multiply [b, h, 1, w, 1, c] * [b, h, 2, w, 2, c] (block sums)",
    run: () =>
      withGrads(
        (values, windows) => tf.mul(values!, windows!),
        [input([2, 16, 1, 9, 1, 64], 56), input([2, 16, 2, 9, 2, 64], 57)],
      ),
  },
  {
    name: "concat and split along channels of 32x32 images (oneDNN's size)",
    run: () =>
      withGrads(
        (a, b) => {
          const joined = tf.concat([a!, b!], 3); // [2, 32, 32, 24]
          const [left, right] = tf.split(tf.mul(joined, joined), [5, 19], 3);
          return tf.concat([right!, tf.mul(left!, 3)], -1);
        },
        [input([2, 32, 32, 16], 80), input([2, 32, 32, 8], 81)],
      ),
  },
  {
    // Rounded to -2..2, so a fifth of the inputs are exactly 0 (gradient 0 there, as PyTorch).
    name: "relu of 2x32x32x16 (oneDNN's size) and of 2x5x5x3, with zeros",
    run: () =>
      withGrads(
        (large, small) =>
          tf.concat([tf.reshape(tf.relu(large!), [-1]), tf.reshape(tf.relu(small!), [-1])]),
        [
          tf.round(tf.mul(input([2, 32, 32, 16], 82), 2.4)),
          tf.round(tf.mul(input([2, 5, 5, 3], 83), 2.4)),
        ],
      ),
  },
  {
    name: "exp of 2x32x32x16 (oneDNN's size) and of 2x5x5x3",
    run: () =>
      withGrads(
        (large, small) =>
          tf.concat([tf.reshape(tf.exp(large!), [-1]), tf.reshape(tf.exp(small!), [-1])]),
        [tf.mul(input([2, 32, 32, 16], 84), 6), tf.mul(input([2, 5, 5, 3], 85), 6)],
      ),
  },
  {
    name: "softmax cross-entropy with clip and log",
    run: () =>
      withGrads((logits) => {
        const probabilities = tf.softmax(tf.reshape(logits!, [-1, 3]));
        const target = tf.oneHot(tf.tensor1d([0, 1, 2, 2, 1, 0, 0, 1], "int32"), 3);
        return tf.mean(tf.mul(target, tf.log(tf.clipByValue(probabilities, 1e-7, 1))));
      }, [input([2, 2, 2, 3], 29)]),
  },
];

/**
 * Runs every case on the active backend and reads the results (with `data()`:
 * the webgpu backend cannot read synchronously under Deno).
 */
async function runCases(): Promise<Float32Array[][]> {
  const results: Float32Array[][] = [];
  for (const testCase of CASES) {
    const outputs = tf.tidy(testCase.run);
    results.push(await Promise.all(outputs.map(async (t) => await t.data() as Float32Array)));
    tf.dispose(outputs);
  }
  return results;
}

/** Largest difference relative to the reference's largest magnitude. */
function relativeError(actual: Float32Array, expected: Float32Array): number {
  let scale = 1e-6;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  }
  return worst / scale;
}

async function reference(): Promise<Float32Array[][]> {
  await setupBackend("cpu", { quiet: true });
  return await runCases();
}

async function compareWith(
  t: Deno.TestContext,
  setup: () => Promise<unknown>,
  firstMaximum: boolean,
): Promise<void> {
  const expected = await reference();
  await setup();
  const before = tf.memory().numTensors;
  const actual = await runCases();
  assert(tf.memory().numTensors === before, "a kernel leaked tensors");
  for (const [index, testCase] of CASES.entries()) {
    await t.step(testCase.name, () => {
      const outputs = actual[index]!;
      const wanted = expected[index]!;
      assert(outputs.length === wanted.length);
      // Elsewhere checkMaxPoolTies checks that each window's gradient went to one maximum.
      const checked = testCase.ties && !firstMaximum ? outputs.slice(0, 1) : outputs;
      for (const [output, values] of checked.entries()) {
        assert(values.length === wanted[output]!.length, `output ${output}: length differs`);
        const error = relativeError(values, wanted[output]!);
        assert(
          error < 2e-5,
          `output ${output} (0 is the forward value, then gradients) differs from cpu by ${error}`,
        );
      }
    });
  }
}

Deno.test("oneDNN runs every convolution, batch norm and large comparison of the cases itself, with no fallback", async () => {
  const dnnl = openDnnl();
  if (typeof dnnl === "string") {
    console.log(`skipped: oneDNN ${dnnl}`);
    return;
  }
  await setupBackend("wasm", { quiet: true, blas: false, dnnl: false });
  const convolutions = new DnnlConvolutions(dnnl);
  const batchNorm = new DnnlBatchNorm(dnnl);
  const binary = new DnnlBinary(dnnl);
  const blockSum = new DnnlBlockSum(dnnl);
  const copies = new DnnlStridedCopy(dnnl);
  const eltwise = new DnnlEltwise(dnnl);
  const maxPoolGrad = new DnnlMaxPoolGrad(dnnl);
  const resize = new DnnlResize(dnnl);
  const sums = new DnnlScaledSum(dnnl);
  registerWasmKernels(null, {
    sums,
    convolutions,
    batchNorm,
    binary,
    blockSum,
    copies,
    maxPoolGrad,
    resize,
    eltwise,
  });
  try {
    await runCases();
    assert(convolutions.size > 20, `only ${convolutions.size} convolution shapes ran`);
    assertEquals(convolutions.declined, []);
    // 2 shapes with given statistics, 2 layers in training mode and their 2 gradients.
    assert(batchNorm.size >= 6, `only ${batchNorm.size} batch norm shapes ran`);
    assertEquals(batchNorm.declined, []);
    assert(binary.size >= 3, `only ${binary.size} comparison shapes ran`);
    assertEquals(binary.declined, []);
    assert(blockSum.size >= 1, "no block sum ran");
    assertEquals(blockSum.declined, []);
    assert(copies.size >= 2, "no concatenation or split along channels ran");
    assertEquals(copies.declined, []);
    assert(eltwise.size >= 3, `only ${eltwise.size} element-wise shapes ran on oneDNN`);
    assertEquals(eltwise.declined, []);
    assert(maxPoolGrad.size >= 6, `only ${maxPoolGrad.size} max-pool gradient shapes ran`);
    assertEquals(maxPoolGrad.declined, []);
    // A forward and a backward entry for each of the 5 whole upsamplings.
    assert(resize.size >= 10, `only ${resize.size} upsampling shapes and directions ran`);
    assertEquals(resize.declined, []);
  } finally {
    convolutions.clear();
    batchNorm.clear();
    binary.clear();
    blockSum.clear();
    copies.clear();
    eltwise.clear();
    maxPoolGrad.clear();
    resize.clear();
    sums.clear();
    dnnl.close();
    await setupBackend("cpu", { quiet: true });
  }
});

Deno.test("oneDNN leaves resizes without a whole upsampling factor and ceil-rounded poolings to the other kernels", async () => {
  const dnnl = openDnnl();
  if (typeof dnnl === "string") {
    console.log(`skipped: oneDNN ${dnnl}`);
    return;
  }
  await setupBackend("wasm", { quiet: true, blas: false, dnnl: false });
  const kernels = {
    convolutions: new DnnlConvolutions(dnnl),
    batchNorm: new DnnlBatchNorm(dnnl),
    binary: new DnnlBinary(dnnl),
    blockSum: new DnnlBlockSum(dnnl),
    copies: new DnnlStridedCopy(dnnl),
    maxPoolGrad: new DnnlMaxPoolGrad(dnnl),
    resize: new DnnlResize(dnnl),
    eltwise: new DnnlEltwise(dnnl),
    sums: new DnnlScaledSum(dnnl),
  };
  const { maxPoolGrad, resize } = kernels;
  registerWasmKernels(null, kernels);
  try {
    for (const testCase of FALLBACK_CASES) tf.dispose(tf.tidy(testCase.run));
    // With "ceil", the last window runs past the padding oneDNN would be given.
    const x = input([1, 4, 4, 2], 110);
    const dy = input([1, 3, 3, 2], 111);
    const dx = tf.engine().runKernel("MaxPoolGrad", { dy, input: x, output: dy }, {
      filterSize: 3,
      strides: 2,
      pad: 1,
      dimRoundingMode: "ceil",
    }) as tf.Tensor;
    assertEquals(dx.shape, [1, 4, 4, 2]);
    tf.dispose([x, dy, dx]);
    assertEquals(resize.size, 0);
    assertEquals(maxPoolGrad.size, 0);
  } finally {
    for (const cache of Object.values(kernels)) cache.clear();
    dnnl.close();
    await setupBackend("cpu", { quiet: true });
  }
});

/**
 * Checks that the max-pool gradient sends each 2x2 window's gradient to
 * exactly one position, one that holds the window's maximum. With ties,
 * backends may choose different maxima (cpu and PyTorch the first, wasm and
 * webgpu the last); each choice is a correct gradient.
 */
async function checkMaxPoolTies(): Promise<void> {
  // Values from {-1, 0, 1}: most windows hold tied maxima.
  const values = Array.from(seeded(2 * 4 * 6 * 3, 31), (value) => Math.round(value));
  const x = tf.tensor4d(values, [2, 4, 6, 3]);
  const dy = tf.add(input([2, 2, 3, 3], 32), 2);
  const grad = tf.grad((x: tf.Tensor) =>
    tf.sum(tf.mul(tf.maxPool(x as tf.Tensor4D, 2, 2, "valid"), dy))
  );
  const dx = grad(x);
  const [xData, dyData, dxData] = await Promise.all([x.data(), dy.data(), dx.data()]);
  tf.dispose([x, dy, dx]);
  let ties = 0;
  for (let image = 0; image < 2; image++) {
    for (let row = 0; row < 2; row++) {
      for (let col = 0; col < 3; col++) {
        for (let channel = 0; channel < 3; channel++) {
          const at = (r: number, c: number) => ((image * 4 + r) * 6 + c) * 3 + channel;
          const window = [
            at(2 * row, 2 * col),
            at(2 * row, 2 * col + 1),
            at(2 * row + 1, 2 * col),
            at(2 * row + 1, 2 * col + 1),
          ];
          const max = Math.max(...window.map((index) => xData[index]!));
          if (window.filter((index) => xData[index] === max).length > 1) ties++;
          const receivers = window.filter((index) => dxData[index] !== 0);
          const wanted = dyData[((image * 2 + row) * 3 + col) * 3 + channel]!;
          assert(
            receivers.length === 1,
            `window ${image},${row},${col},${channel}: ${receivers.length} positions get gradient`,
          );
          assert(
            xData[receivers[0]!] === max,
            "the gradient went to a position that is not a maximum",
          );
          assert(
            Math.abs(dxData[receivers[0]!]! - wanted) < 1e-6,
            "the gradient is not the window's dy",
          );
        }
      }
    }
  }
  assert(ties > 10, "the input should hold tied maxima");
}

/**
 * Long reductions against float64: 131,075 rows of two channels around 3,
 * where a float32 running sum drifts by more than 1e-6 (and the engine's
 * former kernels, OpenBLAS's sums and oneDNN's statistics, by 1e-6 to 2e-5).
 * Sums and means over the leading axis and over everything, `tf.moments`,
 * and where the backend has it the training batch norm's statistics and
 * output must be within 3e-7 of float64 (the output within 5e-6).
 */
async function checkLongReductions(): Promise<void> {
  const rows = 2 ** 17 + 3;
  const channels = 2;
  const values = seeded(rows * channels, 90).map((value) => 3 + value / 2);
  const sums = [0, 0];
  const running = [0, 0];
  values.forEach((value, index) => {
    sums[index % channels]! += value;
    running[index % channels] = Math.fround(running[index % channels]! + value);
  });
  const means = sums.map((sum) => sum / rows);
  const variances = [0, 0];
  values.forEach((value, index) => {
    variances[index % channels]! += (value - means[index % channels]!) ** 2 / rows;
  });
  const relative = (actual: number, expected: number) =>
    Math.abs(actual - expected) / Math.abs(expected);
  const drift = Math.max(...running.map((sum, channel) => relative(sum, sums[channel]!)));
  assert(drift > 1e-6, `a float32 running sum should drift here, not by ${drift}`);
  const x = tf.tensor2d(values, [rows, channels]);
  const moments = tf.moments(x, 0);
  const checks: [string, tf.Tensor, number[]][] = [
    ["sum over rows", tf.sum(x, 0), sums],
    ["mean over rows", tf.mean(x, 0), means],
    ["mean of everything", tf.mean(x), [(means[0]! + means[1]!) / 2]],
    ["moments' mean", moments.mean, means],
    ["moments' variance", moments.variance, variances],
  ];
  const scale = tf.ones([channels]);
  const offset = tf.zeros([channels]);
  let output: tf.Tensor | undefined;
  if (tf.getKernel(BATCH_NORM_TRAINING, tf.getBackend()) !== undefined) {
    const [y, mean, variance] = tf.engine().runKernel(
      BATCH_NORM_TRAINING,
      { x, scale, offset },
      { varianceEpsilon: 1e-3 },
    ) as tf.Tensor[];
    checks.push(["batch norm's mean", mean!, means]);
    checks.push(["batch norm's variance", variance!, variances]);
    output = y;
  }
  for (const [name, tensor, expected] of checks) {
    const actual = await tensor.data();
    for (const [index, value] of expected.entries()) {
      const error = relative(actual[index]!, value);
      assert(error < 3e-7, `${name}, channel ${index}: ${error} from float64`);
    }
  }
  if (output !== undefined) {
    const y = await output.data();
    let worst = 0;
    values.forEach((value, index) => {
      const channel = index % channels;
      const exact = (value - means[channel]!) / Math.sqrt(variances[channel]! + 1e-3);
      worst = Math.max(worst, Math.abs(y[index]! - exact));
    });
    assert(worst < 5e-6, `batch norm's output is ${worst} from float64`);
  }
  tf.dispose([x, scale, offset, ...checks.map(([, tensor]) => tensor)]);
  output?.dispose();
}

/**
 * The backends under test, each with the reason it is skipped, if it is, and
 * whether its max-pool gradient picks the first of tied maxima, as cpu does.
 */
const BACKENDS: {
  name: string;
  skip: () => Promise<string | null>;
  setup: () => Promise<void>;
  firstMaximum: boolean;
}[] = [
  ...[true, false].map((blas) => ({
    name: `wasm with oneDNN, ${blas ? "with" : "without"} OpenBLAS`,
    firstMaximum: true,
    skip: () => {
      const dnnl = openDnnl();
      if (typeof dnnl === "string") {
        return Promise.resolve(`oneDNN ${dnnl} (apt-get install libdnnl2)`);
      }
      dnnl.close();
      return Promise.resolve(null);
    },
    setup: async () => {
      const name = await setupBackend("wasm", { quiet: true, blas, dnnl: true });
      assert(name === "wasm+onednn", `expected wasm+onednn, got ${name}`);
    },
  })),
  ...[1, 2].map((threads) => ({
    // One thread runs the products in cache-sized blocks of rows, more run them whole.
    name: `wasm with OpenBLAS on ${threads} thread${threads === 1 ? "" : "s"}`,
    firstMaximum: true,
    skip: () => {
      const blas = openBlas();
      if (typeof blas === "string") {
        return Promise.resolve(`OpenBLAS ${blas} (apt-get install libopenblas0-pthread)`);
      }
      blas.close();
      return Promise.resolve(null);
    },
    setup: async () => {
      const previous = Deno.env.get("SEGMENT_BLAS_THREADS");
      Deno.env.set("SEGMENT_BLAS_THREADS", String(threads));
      try {
        const name = await setupBackend("wasm", { quiet: true, blas: true, dnnl: false });
        assert(name === "wasm+openblas", `expected wasm+openblas, got ${name}`);
      } finally {
        if (previous === undefined) Deno.env.delete("SEGMENT_BLAS_THREADS");
        else Deno.env.set("SEGMENT_BLAS_THREADS", previous);
      }
    },
  })),
  ...[true, false].map((simd) => ({
    // With SIMD: the engine's kernels (simd/kernels.c); without: the backend's XNNPACK and loops.
    name: `wasm without OpenBLAS, ${simd ? "with" : "without"} the SIMD kernels`,
    firstMaximum: true,
    skip: () => Promise.resolve(null),
    setup: async () => {
      const name = await setupBackend("wasm", { quiet: true, blas: false, simd });
      assert(name === "wasm", `expected wasm, got ${name}`);
    },
  })),
  {
    name: "webgpu",
    firstMaximum: false,
    skip: async () => {
      const found = await findGpuAdapter();
      return "reason" in found
        ? `${found.reason} (apt-get install mesa-vulkan-drivers gives llvmpipe)`
        : null;
    },
    setup: async () => {
      await setupBackend("webgpu", { quiet: true, softwareGpu: true });
    },
  },
];

for (const backend of BACKENDS) {
  Deno.test({
    name: `kernels on ${backend.name} match the cpu backend`,
    // The webgpu device keeps handles open after the test.
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async (t) => {
      const skip = await backend.skip();
      if (skip !== null) {
        console.log(`skipped: ${skip}`);
        return;
      }
      await compareWith(t, backend.setup, backend.firstMaximum);
    },
  });

  // webgpu's reductions are its own, which this engine does not change.
  if (backend.name !== "webgpu") {
    Deno.test({
      name: `long sums, means and batch-norm statistics on ${backend.name} match float64`,
      fn: async () => {
        const skip = await backend.skip();
        if (skip !== null) {
          console.log(`skipped: ${skip}`);
          return;
        }
        await backend.setup();
        await checkLongReductions();
      },
    });
  }

  Deno.test({
    name: `maxPool() gradient on ${backend.name} sends each window's gradient to one maximum`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const skip = await backend.skip();
      if (skip !== null) {
        console.log(`skipped: ${skip}`);
        return;
      }
      await backend.setup();
      await checkMaxPoolTies();
    },
  });
}

Deno.test("resizeNearestNeighbor() gradient on cpu sums each 2x2 block of every image", async () => {
  await setupBackend("cpu", { quiet: true });
  const dy = input([3, 4, 6, 2], 33);
  const grad = tf.grad((x: tf.Tensor) =>
    tf.sum(tf.mul(tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [4, 6]), dy))
  );
  const dx = grad(tf.zeros([3, 2, 3, 2]));
  const blocks = tf.sum(tf.reshape(dy, [3, 2, 2, 3, 2, 2]), [2, 4]); // [3, 2, 3, 2]
  assert(
    relativeError(await dx.data() as Float32Array, await blocks.data() as Float32Array) < 1e-6,
  );
  tf.dispose([dy, dx, blocks]);
});

for (const library of ["OpenBLAS", "oneDNN", "SIMD"] as const) {
  Deno.test(`conv2d() on ${library} stays correct when the wasm heap grows inside the kernel`, async () => {
    if (library !== "SIMD") {
      const found = library === "OpenBLAS" ? openBlas() : openDnnl();
      if (typeof found === "string") {
        console.log(`skipped: ${library} ${found}`);
        return;
      }
      found.close();
    }
    const options = library === "OpenBLAS"
      ? { blas: true, dnnl: false }
      : library === "oneDNN"
      ? { dnnl: true }
      : { blas: false, simd: true };
    await setupBackend("wasm", { quiet: true, ...options });
    const heap = () =>
      (tf.backend() as unknown as { wasm: { HEAPF32: Float32Array } }).wasm.HEAPF32;
    // An input of a third of the heap: its padded copy and the output grid (OpenBLAS), or
    // the output of four times its size (oneDNN, SIMD), cannot fit.
    const floats = Math.floor(heap().length / 3);
    const width = 64;
    const channels = 8;
    const height = Math.floor(floats / (width * channels));
    const x = tf.randomUniform([1, height, width, channels], -1, 1, "float32", 7) as tf.Tensor4D;
    const outChannels = library === "OpenBLAS" ? 4 : 32; // SIMD: on Winograd's kernel
    const filter = tf.randomUniform(
      [3, 3, channels, outChannels],
      -1,
      1,
      "float32",
      8,
    ) as tf.Tensor4D;
    const before = heap().length;
    const fast = tf.conv2d(x, filter, 1, "same");
    assert(heap().length > before, "the heap should have grown");
    const fastValues = await fast.data() as Float32Array;
    await setupBackend("wasm", { quiet: true, blas: false, simd: false });
    const reference = tf.conv2d(x, filter, 1, "same");
    assert(relativeError(fastValues, await reference.data() as Float32Array) < 1e-5);
    tf.dispose([x, filter, fast, reference]);
    await setupBackend("cpu", { quiet: true });
  });
}

Deno.test("SegmentMovingAverages on wasm equals tfjs-layers' three kernels to the bit", async () => {
  await setupBackend("wasm", { quiet: true });
  try {
    const [moving, batch] = [input([4, 37], 90), tf.abs(input([4, 37], 91))];
    for (const decay of [1 - 0.9, 1 - 0.99, 0.3]) {
      const [mean, variance] = tf.engine().runKernel(MOVING_AVERAGES, {
        movingMean: moving,
        movingVariance: batch,
        mean: batch,
        variance: moving,
      }, { decay }) as tf.Tensor[];
      const update = (current: tf.Tensor, value: tf.Tensor) =>
        tf.sub(current, tf.mul(tf.sub(current, value), decay));
      assertEquals([...mean!.dataSync()], [...update(moving, batch).dataSync()]);
      assertEquals([...variance!.dataSync()], [...update(batch, moving).dataSync()]);
    }
  } finally {
    await setupBackend("cpu", { quiet: true });
  }
});

/**
 * Asserts that two lists of arrays are equal to the bit, naming the first
 * difference (`assertEquals` diffs whole arrays: minutes for 40000 values).
 */
function assertSameValues(
  actual: ArrayLike<number>[],
  expected: ArrayLike<number>[],
  what: string,
): void {
  assertEquals(actual.length, expected.length, `${what}: arrays`);
  for (const [i, values] of actual.entries()) {
    const wanted = expected[i]!;
    assertEquals(values.length, wanted.length, `${what}: length of array ${i}`);
    for (let j = 0; j < values.length; j++) {
      if (!Object.is(values[j], wanted[j])) {
        throw new Error(`${what}: array ${i}, value ${j}: ${values[j]}, expected ${wanted[j]}`);
      }
    }
  }
}

/** Weights, then momenta, after 3 steps of SGD with momentum on a quadratic loss, on the backend set up. */
async function trainMomentum(shapes: number[][], seed: number): Promise<number[][]> {
  const weights = shapes.map((shape, i) => tf.variable(input(shape, seed + i)));
  const optimizer = tf.train.momentum(0.01, 0.9);
  for (let step = 0; step < 3; step++) {
    const targets = shapes.map((shape, i) => input(shape, seed + 3 + 3 * step + i));
    // A quadratic loss: each step's gradient depends on the weights after the last step.
    optimizer.minimize(() =>
      tf.addN(
        weights.map((weight, i) => tf.sum(tf.square(tf.sub(weight, targets[i]!)))),
      ) as tf.Scalar
    );
    tf.dispose(targets);
  }
  const state = await optimizer.getWeights();
  const values = [...weights, ...state.slice(1).map((named) => named.tensor)].map((tensor) => [
    ...tensor.dataSync(),
  ]);
  optimizer.dispose();
  tf.dispose(weights);
  return values;
}

Deno.test("SGD with momentum on wasm (one kernel per small variable) equals the cpu backend's four kernels to the bit", async () => {
  // Two variables on the loop, one above its size (oneDNN's sums, or TensorFlow.js's four kernels).
  const shapes = [[3, 3, 4, 5], [5], [3, 3, 64, 64]];
  const small = (values: number[][]) => values.filter((_, i) => i % shapes.length !== 2);
  const large = (values: number[][]) => values.filter((_, i) => i % shapes.length === 2);
  try {
    await setupBackend("cpu", { quiet: true });
    const expected = await trainMomentum(shapes, 92);
    for (const dnnl of [true, false]) {
      const name = await setupBackend("wasm", { quiet: true, dnnl });
      assert(
        tf.getKernel("SegmentMomentumUpdate", "wasm") !== undefined,
        "the kernel is not registered",
      );
      const actual = await trainMomentum(shapes, 92);
      assertSameValues(small(actual), small(expected), name);
      if (name === "wasm+onednn") {
        // oneDNN's sums measured equal to the bit too; another build may fuse the multiply-add.
        for (const [i, values] of large(actual).entries()) {
          const error = relativeError(
            new Float32Array(values),
            new Float32Array(large(expected)[i]!),
          );
          assert(error < 1e-6, `large variable ${i}: ${error} from cpu`);
        }
      } else {
        assertSameValues(large(actual), large(expected), name);
      }
    }
  } finally {
    await setupBackend("cpu", { quiet: true });
  }
});

/**
 * Trains one variable per shape with SGD and momentum for `steps` steps, the
 * last at a new learning rate; the second variable shares its memory with a
 * clone every step, so it must be updated into new tensors, the first in
 * place (on wasm). Returns the weights, then the momenta.
 */
async function trainSharedMomentum(shapes: number[][], steps: number): Promise<Float32Array[]> {
  const weights = shapes.map((shape, i) => {
    const initial = input(shape, 120 + i);
    const weight = tf.variable(initial);
    initial.dispose();
    return weight;
  });
  const optimizer = tf.train.momentum(0.01, 0.9);
  for (let step = 0; step < steps; step++) {
    // A new learning rate in the last step: new scales for oneDNN.
    if (step === steps - 1) optimizer.setLearningRate(0.005);
    const targets = shapes.map((shape, i) => input(shape, 123 + 2 * step + i));
    // The second weight shares its memory with a clone: it must be updated into new tensors.
    const clone = weights[1]!.clone();
    const before = clone.dataSync().slice();
    const dataIds = weights.map((weight) => weight.dataId);
    optimizer.minimize(() =>
      tf.addN(
        weights.map((weight, i) => tf.sum(tf.square(tf.sub(weight, targets[i]!)))),
      ) as tf.Scalar
    );
    assertSameValues([clone.dataSync()], [before], "a clone changed with its variable");
    if (tf.getBackend() === "wasm") {
      assert(weights[0]!.dataId === dataIds[0], "the first weight was not updated in place");
      assert(weights[1]!.dataId !== dataIds[1], "the shared weight was updated in place");
    }
    tf.dispose([...targets, clone]);
  }
  const state = await optimizer.getWeights();
  const values = [...weights, ...state.slice(1).map((named) => named.tensor)].map((tensor) =>
    new Float32Array(tensor.dataSync())
  );
  optimizer.dispose();
  tf.dispose(weights);
  return values;
}

Deno.test("SGD with momentum on small variables on wasm updates them in place unless their memory is shared, equal to cpu to the bit", async () => {
  const shapes = [[40], [8, 5]];
  try {
    await setupBackend("cpu", { quiet: true });
    const expected = await trainSharedMomentum(shapes, 3);
    for (const dnnl of [true, false]) {
      const name = await setupBackend("wasm", { quiet: true, dnnl });
      assertSameValues(
        (await trainSharedMomentum(shapes, 3)).map((values) => [...values]),
        expected.map((values) => [...values]),
        name,
      );
    }
  } finally {
    await setupBackend("cpu", { quiet: true });
  }
});

Deno.test("SGD with momentum on variables above 32768 values runs on oneDNN's sums, in place unless their memory is shared, within 1e-6 of cpu", async () => {
  const dnnl = openDnnl();
  if (typeof dnnl === "string") {
    console.log(`skipped: oneDNN ${dnnl}`);
    return;
  }
  const sums = new DnnlScaledSum(dnnl);
  const shapes = [[40000], [100, 401]];
  const steps = 3;
  try {
    await setupBackend("cpu", { quiet: true });
    const expected = await trainSharedMomentum(shapes, steps);
    await setupBackend("wasm", { quiet: true, dnnl: false });
    tf.unregisterKernel(MOMENTUM_UPDATE, "wasm");
    tf.registerKernel(momentumUpdateWasmConfig(sums));
    const actual = await trainSharedMomentum(shapes, steps);
    // Two sums per variable and step: no update fell back to the loop or to the four kernels.
    assertEquals(sums.runs, 2 * shapes.length * steps);
    assertEquals(sums.declined, []);
    for (const [i, values] of actual.entries()) {
      const error = relativeError(values, expected[i]!);
      assert(error < 1e-6, `output ${i} (weights, then momenta): ${error} from cpu`);
    }
  } finally {
    sums.clear();
    dnnl.close();
    await setupBackend("cpu", { quiet: true });
  }
});

Deno.test("SegmentMaxPoolMask on wasm marks each window's first maximum, on oneDNN and in its loop", async () => {
  const dnnl = openDnnl();
  if (typeof dnnl === "string") {
    console.log(`skipped: oneDNN ${dnnl}`);
    return;
  }
  dnnl.close();
  await setupBackend("wasm", { quiet: true });
  const kernel = tf.getKernel(MAX_POOL_MASK, "wasm");
  assert(kernel !== undefined, "the wasm backend with oneDNN has no SegmentMaxPoolMask");
  // The loop that runs when oneDNN turns a shape down.
  const loop = maxPoolMaskDnnlConfig({ run: () => false } as never);
  const shapes = [[1, 2, 2, 1], [2, 4, 6, 3], [3, 6, 4, 17]];
  for (const [index, shape] of shapes.entries()) {
    // Ties everywhere (four values, zeros among them), and all-negative windows.
    const values = Float32Array.from(
      seeded(shape.reduce((a, b) => a * b, 1), 60 + index),
      (value) => Math.floor(value * 2) * (index === 2 ? 1 : -1),
    );
    const [, height, width, channels] = shape as [number, number, number, number];
    const expected = new Float32Array(values.length);
    for (let window = 0; window < values.length / 4; window++) {
      const c = window % channels;
      const col = 2 * (Math.floor(window / channels) % (width / 2));
      const row = 2 * Math.floor(window / channels / (width / 2));
      const cells = [[0, 0], [0, 1], [1, 0], [1, 1]].map(([dy, dx]) =>
        ((row + dy!) * width + col + dx!) * channels + c
      );
      let best = cells[0]!;
      for (const cell of cells) if (values[cell]! > values[best]!) best = cell;
      expected[best] = 1;
    }
    assertEquals(height % 2, 0);
    const x = tf.tensor(values, shape);
    const mask = tf.engine().runKernel(MAX_POOL_MASK, { x }, {}) as tf.Tensor;
    assertEquals(mask.shape, shape);
    assertEquals([...await mask.data()], [...expected], `oneDNN, shape [${shape}]`);
    const backend = tf.backend() as unknown as WasmBackend;
    const info = loop.kernelFunc({ inputs: { x }, backend, attrs: {} } as never) as tf.TensorInfo;
    const looped = tf.engine().makeTensorFromTensorInfo(info);
    assertEquals([...await looped.data()], [...expected], `loop, shape [${shape}]`);
    // Its gradient is zero.
    const grad = tf.grad((input: tf.Tensor) =>
      tf.sum(tf.engine().runKernel(MAX_POOL_MASK, { x: input }, {}) as tf.Tensor)
    )(x);
    assertEquals(Math.max(...(await grad.data()).map(Math.abs)), 0);
    tf.dispose([x, mask, looped, grad]);
  }
  await setupBackend("cpu", { quiet: true });
});

Deno.test("tf.losses' sigmoid cross-entropy on wasm runs the engine's kernels; it and the softmax one equal cpu's, values and gradients", async () => {
  const dnnl = openDnnl();
  if (typeof dnnl === "string") {
    console.log(`skipped: oneDNN ${dnnl}`);
    return;
  }
  dnnl.close();
  // Logits with extremes (rows past exp's range go the exact way), labels one-hot,
  // soft, or class indices from tf.oneHot (int32).
  const cases = (): [string, tf.Tensor, tf.Tensor][] => {
    const big = tf.tensor2d([[100, -100, 0], [1000, 999, -5], [-200, -300, -250], [0, 0, 0]]);
    const bigLabels = tf.tensor2d([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.2, 0.3, 0.5]]);
    const z = tf.mul(input([4, 32, 32, 1], 130), 8);
    const masks = tf.cast(tf.greater(input([4, 32, 32, 1], 131), 0), "float32");
    const rows = tf.mul(input([4 * 32 * 32, 3], 132), 6);
    const classes = tf.oneHot(
      tf.cast(tf.mul(tf.add(input([4 * 32 * 32], 133), 1), 1.5), "int32"),
      3,
    );
    return [
      ["sigmoid", z, masks],
      ["sigmoid extremes", tf.tensor1d([100, -100, 0, 40, -40]), tf.tensor1d([0, 1, 1, 0.5, 0])],
      ["softmax", rows, classes],
      ["softmax extremes", big, bigLabels],
    ];
  };
  const run = () =>
    cases().map(([name, logits, labels]) =>
      tf.tidy(() => {
        const loss = (z: tf.Tensor, t: tf.Tensor) =>
          name.startsWith("sigmoid")
            ? tf.losses.sigmoidCrossEntropy(t, z)
            : tf.losses.softmaxCrossEntropy(t, z);
        const value = loss(logits, labels);
        const grad = tf.grad((z: tf.Tensor) => loss(z, labels) as tf.Scalar)(logits);
        return [name, value.dataSync()[0]!, grad.dataSync()] as const;
      })
    );
  await setupBackend("cpu", { quiet: true });
  const expected = run();
  await setupBackend("wasm", { quiet: true });
  const kernels = (await tf.profile(() => void run())).kernelNames;
  for (const name of [SIGMOID_CROSS_ENTROPY, SIGMOID_CROSS_ENTROPY_GRAD]) {
    assert(kernels.includes(name), `${name} did not run: ${kernels}`);
  }
  for (const [i, [name, value, grad]] of run().entries()) {
    const [, expectedValue, expectedGrad] = expected[i]!;
    assert(
      Math.abs(value - expectedValue) <= 1e-5 * Math.max(1, Math.abs(expectedValue)),
      `${name}: loss ${value}, cpu ${expectedValue}`,
    );
    const worst = Math.max(...grad.map((g, j) => Math.abs(g - expectedGrad[j]!)));
    const scale = Math.max(...expectedGrad.map(Math.abs));
    // tfjs's gradient at a logit of exactly 0 is -t (its relu and abs step at 0); sigmoid(0) - t here.
    const atZero = name === "sigmoid extremes" ? 0.5 / 5 : 0;
    const tolerance = 1e-5;
    assert(worst <= tolerance * scale + atZero + 1e-9, `${name}: gradient ${worst} from cpu`);
  }
  await setupBackend("cpu", { quiet: true });
});
