/**
 * Exercise 9, concat: as transposeconv, with a skip connection: the
 * upsampled map is concatenated with the output of the first CRB pair on the
 * channel axis, then 1x1 conv (32) + ReLU + BN, CRB(32) x2, 1x1 conv to three
 * classes with softmax. Trains, then tests, in one run: `--no-train` tests the
 * saved checkpoint, `--no-test` only trains.
 *
 * @module
 */
import { runMain } from "../lib/errors.ts";
import {
  buildAndShow,
  type ExerciseSpec,
  loadSplit,
  loadTrained,
  nextStep,
  prepareRun,
  testAndShow,
  TRAIN_TEST_FLAGS,
  trainAndSave,
  type TrainTestRun,
} from "../lib/exercise.ts";
import { parseFlags } from "../lib/flags.ts";

const SPEC: ExerciseSpec = {
  exercise: "concat",
  trainer: "concat",
  model: "concat",
  mode: "classes",
  next: { command: "deno task unetlike", why: "the UNet-like network with more levels" },
};

/**
 * Trains the network, then tests it on the test photos.
 *
 * @param args Command-line arguments.
 * @returns The model (the caller disposes it), the training run and the test metrics.
 */
export async function run(args: string[]): Promise<TrainTestRun> {
  // Settings
  const flags = parseFlags(args, TRAIN_TEST_FLAGS, {
    usage: "deno task concat [flags]",
    summary: "Train and test an encoder-decoder with a skip connection (concatenation).",
  });
  const context = await prepareRun(flags);
  const result: TrainTestRun = {};
  if (flags.train) {
    // Data: each training photo four times (as is and flipped)
    const train = await loadSplit(context, "train", SPEC.mode, flags.size);
    // Model
    const model = buildAndShow(SPEC.model, flags);
    // Train, save the checkpoint and the loss curve
    try {
      result.trained = await trainAndSave(SPEC, model, train, flags);
      result.model = result.trained.model;
    } finally {
      train.images.dispose();
      train.masks.dispose();
    }
  }
  if (!flags.test) {
    nextStep(SPEC);
    return result;
  }
  // Test: the trained model, or the checkpoint with --no-train
  result.model ??= await loadTrained(SPEC, flags);
  result.tested = await testAndShow(SPEC, result.model, context, flags);
  return result;
}

if (import.meta.main) await runMain(async () => void (await run(Deno.args)).model?.dispose());
