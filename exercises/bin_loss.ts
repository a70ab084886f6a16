/**
 * Exercise 2, bin_loss: a network that says "newt or not" for every pixel.
 * Six 3x3 convolutions (32 filters), each followed by ReLU and batch norm
 * (CRB, the order the tutorial found to work better here), keep the 64x64
 * size; a 1x1 convolution gives one value per pixel, and a sigmoid turns it
 * into the probability of "newt". The loss is the binary cross-entropy of
 * every pixel. Trains with the tutorial's protocol and saves the checkpoint
 * that `deno task bin_test` loads.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { convBlock, SeedSequence, segmentationHead } from "../lib/blocks.ts";
import { runTrainTest } from "../lib/commands.ts";
import { runMain } from "../lib/errors.ts";
import { checkSize, type NetOptions } from "../lib/network.ts";
import type { TrainTestRun } from "../lib/test_figures.ts";
import { BINARY, paintBinary } from "./bin_dataset.ts";

// Settings: the protocol of the tutorial's answer (SGD with momentum 0.9), every value a flag.
export const PROTOCOL = { size: 64, batchSize: 4, iters: 500, lr: 0.01 };

/**
 * The binarization network: 6 x CRB(32), then a 1x1 conv to one channel and
 * a sigmoid. Every conv pads `same`, so any input size works.
 *
 * @param size Input height and width in pixels.
 * @param options Output channels (1) and the seed of the initial weights.
 * @returns The model: `[batch, size, size, 3]` in [0, 1] to the probability of "newt",
 *   `[batch, size, size, 1]` in [0, 1].
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { Mynet } from "./bin_loss.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * assertEquals(Mynet(8).outputs[0]!.shape, [null, 8, 8, 1]);
 * ```
 */
export function Mynet(size = 64, { classes = 1, seed = 0 }: NetOptions = {}): tf.LayersModel {
  checkSize("bin", size, (size) => size);
  const seeds = new SeedSequence(seed);
  const input = tf.input({ shape: [size, size, 3], name: "image" }); // [batch, 64, 64, 3]
  // Conv 3x3 -> ReLU -> BatchNorm, six times
  const x = convBlock(input, 32, { order: "CRB", seeds, name: "conv", convs: 6 }); // [batch, 64, 64, 32]
  const probability = segmentationHead(x, classes, "sigmoid", { seeds }); // [batch, 64, 64, 1]
  return tf.model({ inputs: input, outputs: probability, name: "bin" });
}

/**
 * The loss: binary cross-entropy of every pixel, averaged, computed from the
 * logits (the values before the sigmoid) as PyTorch's `BCEWithLogitsLoss`
 * does, so that a pixel the network is sure of and wrong about keeps its
 * gradient.
 *
 * @param logits Shape `[batch, height, width, 1]`.
 * @param masks Shape `[batch, height, width]`, 1 where newt, 0 elsewhere.
 * @returns The mean loss over every pixel, a scalar.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { binLoss } from "./bin_loss.ts";
 * import { assertAlmostEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * const loss = binLoss(tf.zeros([1, 2, 2, 1]), tf.tensor3d([[[1, 0], [0, 1]]], undefined, "int32"));
 * assertAlmostEquals(loss.dataSync()[0]!, Math.log(2), 1e-6); // p = 0.5 everywhere
 * ```
 */
export function binLoss(logits: tf.Tensor4D, masks: tf.Tensor3D): tf.Scalar {
  return tf.tidy(() => {
    const target = tf.expandDims(tf.cast(masks, "float32"), 3); // [batch, height, width, 1]
    return tf.losses.sigmoidCrossEntropy(target, logits) as tf.Scalar;
  });
}

/** Trains Mynet and saves it: `deno task bin_loss --help` lists the flags. */
export const run = (args: string[]): Promise<TrainTestRun> =>
  runTrainTest(args, {
    name: "bin_loss",
    network: "bin",
    summary: "Train the binarization network (6 x conv-ReLU-BN, sigmoid, binary cross-entropy).",
    protocol: PROTOCOL, // data: each training photo four times (as is and flipped)
    trainsOnly: true,
    build: Mynet,
    outputSize: (size) => size,
    mode: BINARY, // masks binarized
    // binLoss (or --loss ce+dice) is taken on the logits: training runs Mynet without its
    // final sigmoid (logitsModel in lib/train.ts)
    loss: binLoss,
    paint: paintBinary, // the progress figure's picture of a prediction
    next: "deno task bin_test  (test it on the test photos)",
  });

if (import.meta.main) await runMain(async () => void (await run(Deno.args)).model?.dispose());
