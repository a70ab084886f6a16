/**
 * Exercise 11, unetlike: UNet with padding `same` and a quarter of the
 * filters (16, 32, 64, 128, 256), so input and output are both 64x64. The
 * tutorial asks the user to tune the learning rate and iterations until the
 * segmentation is clean: `--recipe default` is the tutorial's protocol,
 * `--recipe tuned` the recipe found by the search in the README (Adam with a
 * one-cycle schedule, random crops, flips, turns and colour jitter, a larger
 * input). Flags typed on the command line override the recipe's values.
 *
 * Trains, then tests, in one run: `--no-train` tests the saved checkpoint,
 * `--no-test` only trains.
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
    help: "Training recipe: default (the tutorial's) or tuned (the README's search); " +
      "flags you type override it",
  },
} as const satisfies FlagDefs;

/**
 * Trains the UNet-like network with a recipe, then tests it on the test photos.
 *
 * @param args Command-line arguments.
 * @returns The model (the caller disposes it), the training run and the test metrics.
 */
export async function run(args: string[]): Promise<TrainTestRun> {
  // Settings: the recipe, with the flags typed on the command line
  const parsed = parseFlags(args, FLAGS, {
    usage: "deno task unetlike [flags]",
    summary: "Train and test the UNet-like network (padding same, 16 to 256 filters).",
  });
  const recipeName = parsed.recipe as RecipeName;
  const settings = applyRecipe(recipeName, parsed, args);
  const tuned = recipeName !== "default";
  const flags = {
    ...parsed,
    ...settings,
    checkpoint: parsed.checkpoint ?? (tuned ? "checkpoints/unetlike_tuned" : undefined),
  };
  const spec: ExerciseSpec = {
    exercise: tuned ? `unetlike_${recipeName}` : "unetlike",
    trainer: "unetlike",
    model: "unetlike",
    mode: "classes",
    next: { command: "deno task segnet", why: "SegNet: unpooling with the max-pool indices" },
  };
  if (tuned && flags.resume) {
    throw new UserError(
      "--resume works with --recipe default only; train the tuned recipe again without --resume",
    );
  }
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
