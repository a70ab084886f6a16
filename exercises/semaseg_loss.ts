/**
 * Exercise 5, semaseg_loss: the network of bin_loss with a three-channel
 * softmax head learns background, akahara and madara with softmax
 * cross-entropy over all pixels (probabilities reshaped to
 * [batch * height * width, 3]). Trains with the tutorial's protocol and saves
 * the checkpoint that `deno task semaseg_test` loads.
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
  exercise: "semaseg_loss",
  trainer: "semaseg_loss",
  model: "semaseg",
  mode: "classes",
  next: { command: "deno task semaseg_test", why: "test it on the test photos" },
};

/**
 * Trains the three-class segmentation network and saves it.
 *
 * @param args Command-line arguments.
 * @returns The trained run (model, losses, checkpoint path).
 */
export async function run(args: string[]): Promise<TrainedRun> {
  // Settings
  const flags = parseFlags(args, EXERCISE_FLAGS, {
    usage: "deno task semaseg_loss [flags]",
    summary:
      "Train the segmentation network (6 x conv-ReLU-BN, softmax over 3 classes, cross-entropy).",
  });
  const context = await prepareRun(flags);
  // Data: each training photo four times (as is and flipped), masks of class indices.
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
