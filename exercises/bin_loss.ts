/**
 * Exercise 2, bin_loss: a 6 x CRB(32) network with a one-channel sigmoid
 * head learns newt vs background with per-pixel binary cross-entropy.
 * Trains with the tutorial's protocol and saves the checkpoint that
 * `deno task bin_test` loads.
 *
 * @module
 */
import { runMain } from "../lib/errors.ts";
import {
  buildAndShow,
  EXERCISE_FLAGS,
  type ExerciseSpec,
  loadSplit,
  nextStep,
  prepareRun,
  trainAndSave,
  type TrainedRun,
} from "../lib/exercise.ts";
import { parseFlags } from "../lib/flags.ts";

const SPEC: ExerciseSpec = {
  exercise: "bin_loss",
  trainer: "bin_loss",
  model: "bin",
  mode: "binary",
  next: { command: "deno task bin_test", why: "test it on the test photos" },
};

/**
 * Trains the binarization network and saves it.
 *
 * @param args Command-line arguments.
 * @returns The trained run (model, losses, checkpoint path).
 */
export async function run(args: string[]): Promise<TrainedRun> {
  // Settings
  const flags = parseFlags(args, EXERCISE_FLAGS, {
    usage: "deno task bin_loss [flags]",
    summary: "Train the binarization network (6 x conv-ReLU-BN, sigmoid, binary cross-entropy).",
  });
  const context = await prepareRun(flags);
  // Data: each training photo four times (as is and flipped), masks 1 where newt.
  const train = await loadSplit(context, "train", SPEC.mode, flags.size);
  // Model
  const model = buildAndShow(SPEC.model, flags);
  // Train, save the checkpoint and the loss curve
  try {
    const trained = await trainAndSave(SPEC, model, train, flags);
    nextStep(SPEC);
    return trained;
  } finally {
    train.images.dispose();
    train.masks.dispose();
  }
}

if (import.meta.main) await runMain(async () => void (await run(Deno.args)).model.dispose());
