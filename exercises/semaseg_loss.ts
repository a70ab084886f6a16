/**
 * Exercise 5, semaseg_loss: from "newt or not" to three classes. The same
 * network as bin_loss (6 x CRB(32)) with a 3-channel 1x1 head and a softmax
 * over the channels: each pixel gets a probability for background, akahara
 * and madara. The loss reshapes the output to [batch x height x width, 3],
 * one row per pixel, and takes the cross-entropy of each row against the
 * pixel's class, as the tutorial teaches. Trains and saves the checkpoint
 * that `deno task semaseg_test` loads.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { convBlock, SeedSequence, segmentationHead } from "../lib/blocks.ts";
import { runTrainTest } from "../lib/commands.ts";
import { runMain } from "../lib/errors.ts";
import { checkSize, type NetOptions } from "../lib/network.ts";
import type { TrainTestRun } from "../lib/test_figures.ts";
import { CLASSES, paintClasses } from "./semaseg_dataset.ts";

// Settings: the protocol of the tutorial's answer (SGD with momentum 0.9), every value a flag.
export const PROTOCOL = { size: 64, batchSize: 4, iters: 500, lr: 0.01 };

/**
 * The segmentation network: 6 x CRB(32), then a 1x1 conv to one channel per
 * class and a softmax over the channels.
 *
 * @param size Input height and width in pixels.
 * @param options Classes (3: background, akahara, madara) and the seed of the initial weights.
 * @returns The model: `[batch, size, size, 3]` in [0, 1] to class probabilities
 *   `[batch, size, size, classes]`, each pixel summing to 1.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { Mynet } from "./semaseg_loss.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * assertEquals(Mynet(8).outputs[0]!.shape, [null, 8, 8, 3]);
 * ```
 */
export function Mynet(size = 64, { classes = 3, seed = 0 }: NetOptions = {}): tf.LayersModel {
  checkSize("semaseg", size, (size) => size);
  const seeds = new SeedSequence(seed);
  const input = tf.input({ shape: [size, size, 3], name: "image" }); // [batch, 64, 64, 3]
  // Conv 3x3 -> ReLU -> BatchNorm, six times
  const x = convBlock(input, 32, { order: "CRB", seeds, name: "conv", convs: 6 }); // [batch, 64, 64, 32]
  const probabilities = segmentationHead(x, classes, "softmax", { seeds }); // [batch, 64, 64, 3]
  return tf.model({ inputs: input, outputs: probabilities, name: "semaseg" });
}

/**
 * The loss: one row per pixel, and the softmax cross-entropy of each row
 * against the pixel's class, averaged over every pixel. It is computed from
 * the logits (the values before the softmax) as PyTorch's `CrossEntropyLoss`
 * does, so that a pixel the network is sure of and wrong about keeps its
 * gradient.
 *
 * @param logits Shape `[batch, height, width, classes]`.
 * @param masks Shape `[batch, height, width]`, class indices.
 * @returns The mean loss over every pixel, a scalar.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { semasegLoss } from "./semaseg_loss.ts";
 * import { assertAlmostEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * const loss = semasegLoss(tf.zeros([1, 2, 2, 3]), tf.tensor3d([[[0, 1], [2, 0]]], undefined, "int32"));
 * assertAlmostEquals(loss.dataSync()[0]!, Math.log(3), 1e-6); // 1/3 for every class
 * ```
 */
export function semasegLoss(logits: tf.Tensor4D, masks: tf.Tensor3D): tf.Scalar {
  return tf.tidy(() => {
    const classes = logits.shape[3];
    const rows = tf.reshape(logits, [-1, classes]); // [batch x height x width, 3]
    const target = tf.oneHot(tf.reshape(masks, [-1]), classes); // [batch x height x width, 3]
    return tf.losses.softmaxCrossEntropy(target, rows) as tf.Scalar;
  });
}

/** Trains Mynet and saves it: `deno task semaseg_loss --help` lists the flags. */
export const run = (args: string[]): Promise<TrainTestRun> =>
  runTrainTest(args, {
    name: "semaseg_loss",
    network: "semaseg",
    summary: "Train the segmentation network (6 x conv-ReLU-BN, softmax over 3 classes).",
    protocol: PROTOCOL, // data: each training photo four times (as is and flipped)
    trainsOnly: true,
    build: Mynet,
    outputSize: (size) => size,
    mode: CLASSES, // masks as class indices
    // semasegLoss (or --loss ce+dice) is taken on the logits: training runs Mynet without its
    // final softmax (logitsModel in lib/train.ts)
    loss: semasegLoss,
    paint: paintClasses, // the progress figure's picture of a prediction
    next: "deno task semaseg_test  (test it on the test photos)",
  });

if (import.meta.main) await runMain(async () => void (await run(Deno.args)).model?.dispose());
