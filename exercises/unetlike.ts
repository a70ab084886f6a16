/**
 * Exercise 11, unetlike: UNet made practical. The paper's UNet with padding
 * `same` (so input and output are both 64x64 and no crop is needed) and a
 * quarter of its filters (16, 32, 64, 128, 256), in CBR blocks: five levels
 * down with max-pooling, four levels up with transposed convs, each joined to
 * the encoder map of its level by concatenation.
 *
 * The tutorial asks the user to tune the learning rate and iterations until
 * the segmentation is clean: `--recipe default` is the answer's protocol,
 * `--recipe tuned` the recipe found by the search in docs/results.md (Adam
 * with a one-cycle schedule, random crops, flips, turns and colour jitter,
 * cross-entropy plus Dice, a larger input). Flags typed on the command line
 * override the recipe's values. Trains, then tests, in one run: `--no-train`
 * tests the saved checkpoint, `--no-test` only trains.
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

const EXERCISE = "unetlike";
// Settings: the protocol of the tutorial's answer (SGD with momentum 0.9), every value a flag.
export const PROTOCOL = { size: 64, batchSize: 4, iters: 1000, lr: 0.01 };

/** Filters of the five levels: a quarter of UNet's. */
export const FILTERS = [16, 32, 64, 128, 256] as const;

/**
 * The output size for an input size: four poolings need a multiple of 16.
 *
 * @param size Input height and width in pixels.
 * @returns The output size (the input size), or `undefined` when the size cannot work.
 */
export function outputSize(size: number): number | undefined {
  return size % 16 === 0 ? size : undefined;
}

/**
 * The UNet-like network. The shape comments are for the default input, 64.
 *
 * @param size Input height and width in pixels, a multiple of 16.
 * @param options Classes (3) and the seed of the initial weights.
 * @returns The model: `[batch, size, size, 3]` in [0, 1] to class probabilities
 *   `[batch, size, size, classes]`.
 * @throws {UserError} For a size that cannot work, naming the closest sizes that do.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { Mynet } from "./unetlike.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * assertEquals(Mynet(32).outputs[0]!.shape, [null, 32, 32, 3]);
 * ```
 */
export function Mynet(size = 64, { classes = 3, seed = 0 }: NetOptions = {}): tf.LayersModel {
  checkSize(EXERCISE, size, outputSize);
  const seeds = new SeedSequence(seed);
  // (Conv 3x3, padding same -> BatchNorm -> ReLU) x2
  const cbr = (x: tf.SymbolicTensor, filters: number, name: string) =>
    convBlock(x, filters, { order: "CBR", seeds, name });
  // Up one level: upsample, concat with the encoder map of the same size, two convs
  const up = (x: tf.SymbolicTensor, skip: tf.SymbolicTensor, filters: number, name: string) => {
    x = upsampleTransposed(x, filters, { order: "CBR", seeds, name }); // [batch, 2h, 2w, filters]
    x = tf.layers.concatenate({ axis: -1, name: `${name}_concat` })
      .apply([x, skip]) as tf.SymbolicTensor; // [batch, 2h, 2w, 2 x filters]
    return cbr(x, filters, name); // [batch, 2h, 2w, filters]
  };
  const input = tf.input({ shape: [size, size, 3], name: "image" }); // [batch, 64, 64, 3]
  const enc1 = cbr(input, FILTERS[0], "enc1"); // [batch, 64, 64, 16]
  const enc2 = cbr(maxPool(enc1, "pool1"), FILTERS[1], "enc2"); // [batch, 32, 32, 32]
  const enc3 = cbr(maxPool(enc2, "pool2"), FILTERS[2], "enc3"); // [batch, 16, 16, 64]
  const enc4 = cbr(maxPool(enc3, "pool3"), FILTERS[3], "enc4"); // [batch, 8, 8, 128]
  let x = cbr(maxPool(enc4, "pool4"), FILTERS[4], "enc5"); // [batch, 4, 4, 256]
  x = up(x, enc4, FILTERS[3], "dec4"); // [batch, 8, 8, 128]
  x = up(x, enc3, FILTERS[2], "dec3"); // [batch, 16, 16, 64]
  x = up(x, enc2, FILTERS[1], "dec2"); // [batch, 32, 32, 32]
  x = up(x, enc1, FILTERS[0], "dec1"); // [batch, 64, 64, 16]
  const probabilities = segmentationHead(x, classes, "softmax", { seeds }); // [batch, 64, 64, 3]
  return tf.model({ inputs: input, outputs: probabilities, name: EXERCISE });
}

/** Trains Mynet, then tests it (`--help` lists the flags). */
export const run = (args: string[]): Promise<TrainTestRun> =>
  runTrainTest(args, {
    name: EXERCISE,
    summary: "Train and test the UNet-like network (padding same, 16 to 256 filters).",
    protocol: PROTOCOL, // data: the four flips of the answers, or the recipe's random crops
    build: Mynet,
    outputSize,
    mode: CLASSES, // masks as class indices
    // semasegLoss, the softmax cross-entropy of every pixel, is taken on the logits:
    // training runs Mynet without its final softmax (logitsModel in lib/train.ts)
    loss: semasegLoss,
    classify: argmaxClasses, // test: the argmax class of each pixel, painted, and the mIoU
    paint: paintClasses,
    next: "deno task segnet  (SegNet: unpooling with the max-pool indices; the longest run here, " +
      "1000 iterations at batch 16: --iters 100 for a first look)",
    recipes: true, // --recipe tuned: see docs/results.md
  });

if (import.meta.main) await runMain(async () => void (await run(Deno.args)).model?.dispose());
