/**
 * Exercise 8, transposeconv: learned upsampling. The network of nearest with
 * its nearest-neighbour upsampling replaced by a transposed convolution
 * (kernel 2, stride 2, 32 filters) + ReLU + batch norm: each input pixel
 * spreads into a 2x2 block through weights the network learns, so it can
 * learn how to fill in the doubled grid instead of copying.
 * Trains, then tests, in one run: `--no-train` tests the saved checkpoint,
 * `--no-test` only trains.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  convBlock,
  maxPool,
  SeedSequence,
  segmentationHead,
  upsampleTransposed,
} from "../lib/blocks.ts";
import { runTrainTest } from "../lib/commands.ts";
import { runMain } from "../lib/errors.ts";
import { checkSize, type NetOptions } from "../lib/network.ts";
import type { TrainTestRun } from "../lib/test_figures.ts";
import { CLASSES, paintClasses } from "./semaseg_dataset.ts";
import { semasegLoss } from "./semaseg_loss.ts";
import { argmaxClasses } from "./semaseg_test.ts";

const EXERCISE = "transposeconv";
// Settings: the protocol of the tutorial's answer (SGD with momentum 0.9), every value a flag.
export const PROTOCOL = { size: 64, batchSize: 4, iters: 500, lr: 0.01 };

/** The output size for an input size (pixels): one 2x2 pooling needs it even. */
export const outputSize = (size: number): number | undefined => size % 2 ? undefined : size;

/**
 * The network of this exercise (see the module comment), called `Mynet` in
 * every exercise as in the tutorial's answers. Shapes are for the input 64.
 *
 * @param size Input height and width in pixels, even.
 * @param options Classes (3) and the seed of the initial weights.
 * @returns The model: `[batch, size, size, 3]` in [0, 1] to class probabilities
 *   `[batch, size, size, classes]`.
 * @throws {UserError} For an odd size, naming the closest sizes that work.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { Mynet } from "./transposeconv.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * const net = Mynet(8);
 * assertEquals(net.outputs[0]!.shape, [null, 8, 8, 3]);
 * assertEquals(net.getLayer("dec1_upconv").getWeights()[0]!.shape, [2, 2, 32, 32]); // learned
 * ```
 */
export function Mynet(size = 64, { classes = 3, seed = 0 }: NetOptions = {}): tf.LayersModel {
  checkSize(EXERCISE, size, outputSize);
  const seeds = new SeedSequence(seed);
  const crb = (x: tf.SymbolicTensor, name: string) =>
    convBlock(x, 32, { order: "CRB", seeds, name }); // (Conv 3x3 -> ReLU -> BatchNorm) x2
  const input = tf.input({ shape: [size, size, 3], name: "image" }); // [batch, 64, 64, 3]
  const enc1 = crb(input, "enc1"); // [batch, 64, 64, 32]
  let x = maxPool(enc1, "pool1"); // [batch, 32, 32, 32]
  x = crb(x, "enc2"); // [batch, 32, 32, 32]
  x = upsampleTransposed(x, 32, { order: "CRB", seeds, name: "dec1" }); // [batch, 64, 64, 32]: learned 2x2 blocks
  x = crb(x, "dec1"); // [batch, 64, 64, 32]
  const probabilities = segmentationHead(x, classes, "softmax", { seeds }); // [batch, 64, 64, 3]
  return tf.model({ inputs: input, outputs: probabilities, name: EXERCISE });
}

/** Trains Mynet, then tests it (`--help` lists the flags). */
export const run = (args: string[]): Promise<TrainTestRun> =>
  runTrainTest(args, {
    name: EXERCISE,
    summary: "Train and test an encoder-decoder that upsamples by a transposed convolution.",
    protocol: PROTOCOL, // data: each training photo four times (as is and flipped)
    build: Mynet,
    outputSize,
    mode: CLASSES, // masks as class indices
    // semasegLoss, the softmax cross-entropy of every pixel, is taken on the logits:
    // training runs Mynet without its final softmax (logitsModel in lib/train.ts)
    loss: semasegLoss,
    classify: argmaxClasses, // test: the argmax class of each pixel, painted, and the mIoU
    paint: paintClasses,
    next: "deno task concat  (a skip connection from the encoder)",
  });

if (import.meta.main) await runMain(async () => void (await run(Deno.args)).model?.dispose());
