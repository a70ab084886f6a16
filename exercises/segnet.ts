/**
 * Exercise 12, segnet: a VGG16-style encoder, (2, 2, 3, 3, 3) CBR convs at
 * (64, 128, 256, 512, 512) filters, each level ending in a 2x2 max-pooling
 * that keeps where each maximum was; the decoder mirrors it, each level
 * starting with a max-unpooling that puts the values back at those positions
 * (zeros elsewhere), then (3, 3, 3, 2, 2) CBR convs at (512, 256, 128, 64, 64)
 * filters; a 1x1 conv to three classes with softmax. The input size must be a
 * multiple of 32 (five poolings).
 *
 * Trains, then tests, in one run: `--no-train` tests the saved checkpoint,
 * `--no-test` only trains. `--recipe tuned` trains with the UNet-like
 * network's tuned recipe instead of the tutorial's protocol.
 *
 * @module
 */
import { runMain, UserError } from "../lib/errors.ts";
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
import { type FlagDefs, parseFlags } from "../lib/flags.ts";
import { outputSize } from "../lib/models.ts";
import {
  applyRecipe,
  loadRecipeTrainSplit,
  RECIPE_NAMES,
  type RecipeName,
  trainWithRecipe,
} from "../lib/recipes.ts";

const FLAGS = {
  ...TRAIN_TEST_FLAGS,
  recipe: {
    type: "string",
    default: "default",
    choices: RECIPE_NAMES,
    help: "Training recipe: default (the tutorial's) or tuned (see the README); " +
      "flags you type override it",
  },
} as const satisfies FlagDefs;

/**
 * Trains SegNet, then tests it on the test photos.
 *
 * @param args Command-line arguments.
 * @returns The model (the caller disposes it), the training run and the test metrics.
 */
export async function run(args: string[]): Promise<TrainTestRun> {
  // Settings: the recipe, with the flags typed on the command line
  const parsed = parseFlags(args, FLAGS, {
    usage: "deno task segnet [flags]",
    summary: "Train and test SegNet (VGG16 encoder, unpooling with the max-pool positions).",
  });
  const recipeName = parsed.recipe as RecipeName;
  const settings = applyRecipe(recipeName, parsed, args);
  const tuned = recipeName !== "default";
  const flags = {
    ...parsed,
    ...settings,
    checkpoint: parsed.checkpoint ?? (tuned ? "checkpoints/segnet_tuned" : undefined),
  };
  if (tuned && flags.resume) {
    throw new UserError(
      "--resume works with --recipe default only; train the tuned recipe again without --resume",
    );
  }
  outputSize("segnet", flags.size); // a size that is no multiple of 32 is refused here
  const spec: ExerciseSpec = {
    exercise: tuned ? `segnet_${recipeName}` : "segnet",
    trainer: "segnet",
    model: "segnet",
    mode: "classes",
    next: { command: "deno task unet", why: "the paper's UNet: unpadded convs and crops" },
  };
  console.log(`recipe: ${recipeName}, ${settings.summary}`);
  const context = await prepareRun(flags);
  const result: TrainTestRun = {};
  if (flags.train) {
    // Data: the four flips of the original answers, or photos for random crops
    const train = tuned
      ? await loadRecipeTrainSplit(context.dataDir, spec.mode, settings)
      : await loadSplit(context, "train", spec.mode, flags.size);
    // Model
    const model = buildAndShow(spec.model, flags);
    // Train, save the checkpoint and the loss curve
    try {
      if (tuned) {
        const trained = await trainWithRecipe(model, train, {
          exercise: spec.exercise,
          model: spec.model,
          recipe: recipeName,
          settings,
          seed: flags.seed,
          checkpoint: flags.checkpoint,
          out: flags.out,
          saveEvery: flags.saveEvery,
        });
        result.trained = { model, ...trained };
      } else {
        result.trained = await trainAndSave(spec, model, train, flags);
      }
      result.model = result.trained.model;
    } finally {
      train.images.dispose();
      train.masks.dispose();
    }
  }
  if (!flags.test) {
    nextStep(spec);
    return result;
  }
  // Test: the trained model, or the checkpoint with --no-train
  result.model ??= await loadTrained(spec, flags);
  const test = await loadSplit(context, "test", spec.mode, flags.size);
  try {
    result.tested = await testAndShow(spec, result.model, test, flags);
  } finally {
    test.images.dispose();
    test.masks.dispose();
  }
  return result;
}

if (import.meta.main) await runMain(async () => void (await run(Deno.args)).model?.dispose());
