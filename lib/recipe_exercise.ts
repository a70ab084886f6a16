/**
 * The flow of an exercise that trains with a recipe (`--recipe default` or
 * `tuned`) and then tests: unetlike and segnet. The scripts state the network
 * and what to run next; the data, training and testing steps are here.
 *
 * @module
 */
import { UserError } from "./errors.ts";
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
} from "./exercise.ts";
import { type FlagDefs, type FlagValues, parseFlags } from "./flags.ts";
import { type ModelName, outputSize } from "./models.ts";
import { applyRecipe, loadRecipeTrainSplit, RECIPE_NAMES, type RecipeName } from "./recipes.ts";
import { createAugment } from "./augment.ts";

/** Flags of a recipe exercise: those of a train-and-test exercise plus `--recipe`. */
export const RECIPE_EXERCISE_FLAGS = {
  ...TRAIN_TEST_FLAGS,
  recipe: {
    type: "string",
    default: "default",
    choices: RECIPE_NAMES,
    help: "Training recipe: default (the tutorial's) or tuned (see the README); " +
      "flags you type override it",
  },
} as const satisfies FlagDefs;

/** What a recipe exercise script says about itself. */
export interface RecipeExercise {
  /** The network, which is also the exercise's name. */
  model: ModelName;
  /** How to run it, for `--help`. */
  usage: string;
  /** One sentence for `--help`. */
  summary: string;
  /** The command to suggest when the run is over. */
  next: ExerciseSpec["next"];
}

/**
 * Parses the flags, applies the recipe (flags typed on the command line win),
 * trains, saves, then tests and writes the figures and the metrics line.
 *
 * @param exercise The network and the script's help texts.
 * @param args Command-line arguments.
 * @returns The model (the caller disposes it), the training run and the test metrics.
 * @throws {UserError} On a bad flag, a size the network cannot take, or
 * `--resume` with a tuned recipe.
 */
export async function runRecipeExercise(
  exercise: RecipeExercise,
  args: string[],
): Promise<TrainTestRun> {
  const { model: name } = exercise;
  // Settings: the recipe, with the flags typed on the command line
  const parsed: FlagValues<typeof RECIPE_EXERCISE_FLAGS> = parseFlags(
    args,
    RECIPE_EXERCISE_FLAGS,
    { usage: exercise.usage, summary: exercise.summary },
  );
  const recipeName = parsed.recipe as RecipeName;
  const settings = applyRecipe(recipeName, parsed, args);
  const tuned = recipeName !== "default";
  const flags = {
    ...parsed,
    ...settings,
    checkpoint: parsed.checkpoint ?? (tuned ? `checkpoints/${name}_tuned` : undefined),
  };
  if (tuned && flags.resume) {
    throw new UserError(
      "--resume works with --recipe default only; train the tuned recipe again without --resume",
    );
  }
  outputSize(name, flags.size); // a size the network cannot take is refused here
  const spec: ExerciseSpec = {
    exercise: tuned ? `${name}_${recipeName}` : name,
    trainer: name,
    model: name,
    mode: "classes",
    next: exercise.next,
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
      result.trained = await trainAndSave(spec, model, train, flags, {
        augment: settings.augment
          ? createAugment({ size: settings.size, ...settings.augment })
          : undefined,
        recipe: recipeName,
      });
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
  result.tested = await testAndShow(spec, result.model, context, flags);
  return result;
}
