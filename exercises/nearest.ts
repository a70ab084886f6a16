/**
 * Exercise 7, nearest: down and up again. Real networks pool to see more of
 * the photo at once, then must come back to the input size to label every
 * pixel. Two CRB convs, a 2x2 max-pooling that halves the size, two more,
 * nearest-neighbour upsampling that doubles it again (each pixel copied into
 * a 2x2 block), two more, then a 1x1 conv to three classes and a softmax.
 * Trains, then tests, in one run: `--no-train` tests the saved checkpoint,
 * `--no-test` only trains.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../engine/mod.ts";
import {
  convBlock,
  maxPool,
  SeedSequence,
  segmentationHead,
  upsampleNearest,
} from "../lib/blocks.ts";
import { resolveDataDir } from "../lib/data_dir.ts";
import { loadSplit } from "../lib/dataset.ts";
import { runMain } from "../lib/errors.ts";
import { nextStep, TRAIN_TEST_FLAGS, withDefaults } from "../lib/exercise_flags.ts";
import { parseFlags } from "../lib/flags.ts";
import { checkSize, type NetOptions, showModel } from "../lib/network.ts";
import { testAndShow, type TrainTestRun } from "../lib/test_figures.ts";
import { loadTrained, trainAndSave, trainCommand } from "../lib/train_and_save.ts";

const EXERCISE = "nearest";
// Settings: the protocol of the tutorial's answer (SGD with momentum 0.9), every value a flag.
export const PROTOCOL = { size: 64, batchSize: 4, iters: 500, lr: 0.01 };
const NEXT = "deno task transposeconv  (learn the upsampling instead)";

/**
 * The output size of the network for an input size: one 2x2 pooling needs an even size.
 *
 * @param size Input height and width in pixels.
 * @returns The output size (the input size), or `undefined` for an odd size.
 */
export function outputSize(size: number): number | undefined {
  return size % 2 === 0 ? size : undefined;
}

/**
 * The network: CRB(32) x2, max-pool 2x2, CRB(32) x2, nearest-neighbour
 * upsampling x2, CRB(32) x2, 1x1 conv and softmax.
 *
 * @param size Input height and width in pixels, even.
 * @param options Classes (3) and the seed of the initial weights.
 * @returns The model: `[batch, size, size, 3]` in [0, 1] to class probabilities
 *   `[batch, size, size, classes]`.
 * @throws {UserError} For an odd size, naming the nearest sizes that work.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { nearestNet } from "./nearest.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * assertEquals(nearestNet(8).outputs[0]!.shape, [null, 8, 8, 3]);
 * ```
 */
export function nearestNet(size = 64, { classes = 3, seed = 0 }: NetOptions = {}): tf.LayersModel {
  checkSize(EXERCISE, size, outputSize);
  const seeds = new SeedSequence(seed);
  const crb = (x: tf.SymbolicTensor, name: string) =>
    convBlock(x, 32, { order: "CRB", seeds, name }); // (Conv 3x3 -> ReLU -> BatchNorm) x2
  const input = tf.input({ shape: [size, size, 3], name: "image" }); // [batch, 64, 64, 3]
  let x = crb(input, "enc1"); // [batch, 64, 64, 32]
  x = maxPool(x, "pool1"); // [batch, 32, 32, 32]
  x = crb(x, "enc2"); // [batch, 32, 32, 32]
  x = upsampleNearest(x, "up"); // [batch, 64, 64, 32]: each pixel copied into a 2x2 block
  x = crb(x, "dec1"); // [batch, 64, 64, 32]
  const probabilities = segmentationHead(x, classes, "softmax", { seeds }); // [batch, 64, 64, 3]
  return tf.model({ inputs: input, outputs: probabilities, name: EXERCISE });
}

/**
 * Trains the network, then tests it on the test photos.
 *
 * @param args Command-line arguments.
 * @returns The model (the caller disposes it), the training run and the test metrics.
 */
export async function run(args: string[]): Promise<TrainTestRun> {
  const flags = parseFlags(args, withDefaults(TRAIN_TEST_FLAGS, PROTOCOL), {
    usage: `deno task ${EXERCISE} [flags]`,
    summary: "Train and test an encoder-decoder that upsamples by nearest neighbour.",
  });
  checkSize(EXERCISE, flags.size, outputSize); // before any data is loaded
  if (flags.testSize) checkSize(EXERCISE, flags.testSize, outputSize, "--test-size");
  await setupBackend(flags.backend);
  const dataDir = await resolveDataDir(flags.data);
  const checkpoint = flags.checkpoint ?? `checkpoints/${EXERCISE}`;
  const command = trainCommand(EXERCISE, flags.checkpoint); // named in messages
  const result: TrainTestRun = {};
  if (flags.train) {
    // Data: each training photo four times (as is and flipped), masks as class indices
    const train = await loadSplit(dataDir, "train", {
      mode: "classes",
      size: flags.size,
      testAfter: flags.test, // an empty test split is refused before training
    });
    // Network
    const model = showModel(nearestNet(flags.size, { seed: flags.seed }));
    // Train on the softmax cross-entropy of every pixel (--loss), save checkpoint and loss curve
    try {
      result.trained = await trainAndSave(model, train, {
        ...flags,
        name: EXERCISE,
        checkpoint,
        command,
      });
      result.model = result.trained.model;
    } finally {
      tf.dispose([train.images, train.masks]);
    }
  }
  if (!flags.test) {
    console.log(`next: ${nextStep(NEXT, flags.data)}`);
    return result;
  }
  // Test: the trained network, or the checkpoint with --no-train
  result.model ??= await loadTrained(checkpoint, {
    network: EXERCISE,
    size: flags.size,
    command,
  });
  result.tested = await testAndShow(result.model, dataDir, {
    ...flags,
    name: EXERCISE,
    mode: "classes",
    build: (size) => nearestNet(size),
    next: nextStep(NEXT, flags.data),
  });
  return result;
}

if (import.meta.main) await runMain(async () => void (await run(Deno.args)).model?.dispose());
