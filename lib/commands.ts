/**
 * The command line of every exercise, in one place: an exercise's `run(args)`
 * hands in its lesson (network, loss, how it reads masks and predictions)
 * and its names, and one of these functions parses the flags and does the
 * rest. The modules that read files, parse argv or set up a backend are
 * imported when a command runs, so that the page, which imports an
 * exercise for its lesson alone, never loads them.
 *
 * - {@linkcode runTrainTest}: the training exercises (bin_loss to segnet).
 * - {@linkcode runTest}: bin_test and semaseg_test, on a saved checkpoint.
 * - {@linkcode runShowDataset}: bin_dataset and semaseg_dataset.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import type { MaskMode } from "./dataset.ts";
import type { Classify } from "./evaluate.ts";
import {
  EXERCISE_FLAGS,
  nextStep,
  TEST_FLAGS,
  TRAIN_TEST_FLAGS,
  withDefaults,
  withHelp,
} from "./exercise_flags.ts";
import { DATA_FLAGS, type FlagDefs, type FlagValues } from "./flag_defs.ts";
import { applyRecipe, RECIPE_NAMES, type RecipeSettings } from "./recipes.ts";
import type { Paint, TestedRun, TrainTestRun } from "./test_figures.ts";
import type { Lesson } from "./train_then_test.ts";

/** A training exercise: its lesson, its help text and the tutorial's protocol. */
export interface TrainingExercise extends Lesson {
  /** One line for `--help`. */
  summary: string;
  /** The answer's protocol, the defaults of its flags (size, batch size, iterations, lr). */
  protocol: Partial<RecipeSettings>;
  /** It only trains (bin_loss, semaseg_loss): no `--train`, `--test` and test flags. */
  trainsOnly?: boolean;
  /** It takes `--recipe default|tuned` (unetlike, segnet). */
  recipes?: boolean;
}

/** The `--recipe` flag of the exercises that have a tuned recipe. */
const RECIPE_FLAG = {
  recipe: {
    type: "string",
    default: "default",
    choices: RECIPE_NAMES,
    help: "Training recipe: default (the tutorial's protocol) or tuned (see docs/results.md); " +
      "flags you type override it",
  },
} as const satisfies FlagDefs;

/**
 * Runs a training exercise from its command line: flags parsed (the
 * protocol as defaults, a recipe applied), then `trainThenTest` of
 * `lib/train_then_test.ts`.
 *
 * @param args Command-line arguments.
 * @param exercise The exercise's lesson, names and protocol.
 * @returns The model (the caller disposes it), the training run and the test metrics.
 * @throws {UserError} For a bad flag, and what `trainThenTest` throws.
 *
 * @example
 * ```ts ignore
 * // In exercises/nearest.ts:
 * export const run = (args: string[]) => runTrainTest(args, { name: "nearest", protocol, ... });
 * ```
 */
export async function runTrainTest(
  args: string[],
  exercise: TrainingExercise,
): Promise<TrainTestRun> {
  const [{ parseFlags }, { trainThenTest }] = await Promise.all([
    import("./flags.ts"), // the command line: not in the page
    import("./train_then_test.ts"), // files: not in the page
  ]);
  const { protocol, summary, ...lesson } = exercise;
  const info = { usage: `deno task ${exercise.name} [flags]`, summary };
  const checkpoint = `Checkpoint folder; default checkpoints/${exercise.name}` +
    (exercise.recipes ? ` (checkpoints/${exercise.name}_tuned with --recipe tuned)` : "");
  if (exercise.trainsOnly) {
    const defs = withHelp(withDefaults(EXERCISE_FLAGS, protocol), { checkpoint });
    return await trainThenTest(parseFlags(args, defs, info), lesson);
  }
  const defs = withHelp(withDefaults(TRAIN_TEST_FLAGS, protocol), { checkpoint });
  if (!exercise.recipes) return await trainThenTest(parseFlags(args, defs, info), lesson);
  const parsed = parseFlags(args, { ...defs, ...RECIPE_FLAG }, info);
  // The recipe, with the flags typed on the command line
  const settings = applyRecipe(parsed.recipe, parsed, args, protocol);
  console.log(`recipe: ${parsed.recipe}, ${settings.summary}`);
  return await trainThenTest({ ...parsed, ...settings }, {
    ...lesson,
    recipe: { name: parsed.recipe, settings },
  });
}

/** A test exercise: the checkpoint it reads and its lesson. */
export interface TestExercise<F extends FlagDefs> {
  /** The exercise, e.g. `bin_test`: names the figures. */
  name: string;
  /** One line for `--help`. */
  summary: string;
  /** The exercise that trains the checkpoint, e.g. `bin_loss`. */
  trainer: string;
  /** The network's name in the checkpoint, e.g. `bin`. */
  network: string;
  /** Flags beyond `TEST_FLAGS`, e.g. bin_test's `--threshold`. */
  flags?: F;
  /** The network's builder at a size (for `--test-size`). */
  build: (size: number) => tf.LayersModel;
  /** How masks are read. */
  mode: MaskMode;
  /** Probabilities to classes, given the values of the exercise's own flags. */
  classify: (flags: FlagValues<F>) => Classify;
  /** Classes to a picture. */
  paint: Paint;
  /** What to run next and why. */
  next: string;
}

/**
 * Runs a test exercise from its command line: the checkpoint its trainer
 * saved, a figure per test photo, then the metrics.
 *
 * @param args Command-line arguments.
 * @param exercise The exercise's lesson and names.
 * @returns The metrics and the figure paths.
 * @throws {UserError} For a bad flag, a missing or broken checkpoint, unreadable data.
 */
export async function runTest<F extends FlagDefs>(
  args: string[],
  exercise: TestExercise<F>,
): Promise<TestedRun> {
  const [{ parseFlags }, { setupBackend }, { resolveDataDir }, { testAndShow }, train] =
    await Promise.all([
      import("./flags.ts"), // the command line: not in the page
      import("../engine/mod.ts"),
      import("./data_dir.ts"),
      import("./test_figures.ts"),
      import("./train_and_save.ts"),
    ]);
  const testFlags = withHelp(TEST_FLAGS, {
    checkpoint: `Checkpoint folder to test; default checkpoints/${exercise.trainer}`,
  });
  const parsed = parseFlags(args, { ...testFlags, ...exercise.flags }, {
    usage: `deno task ${exercise.name} [flags]`,
    summary: exercise.summary,
  });
  // One object, seen as its two sets of flags (TypeScript cannot split a generic spread)
  const flags = parsed as unknown as FlagValues<typeof TEST_FLAGS>;
  const own = parsed as unknown as FlagValues<F>;
  await setupBackend(flags.backend);
  // Named in messages ("run it first"), with this run's --data
  const command = nextStep(train.trainCommand(exercise.trainer, flags.checkpoint), flags.data);
  const dataDir = await resolveDataDir(flags.data, { outputs: { "--out": flags.out } });
  const model = await train.loadTrained(flags.checkpoint ?? `checkpoints/${exercise.trainer}`, {
    network: exercise.network,
    size: flags.size,
    command,
    dataDir,
  });
  try {
    return await testAndShow(model, dataDir, {
      ...flags,
      name: exercise.name,
      mode: exercise.mode,
      classify: exercise.classify(own),
      paint: exercise.paint,
      build: exercise.build,
      next: nextStep(exercise.next, flags.data),
    });
  } finally {
    model.dispose();
  }
}

/** A dataset exercise: how it reads masks and paints them. */
export interface DatasetExercise {
  /** The exercise, e.g. `bin_dataset`: names the figures. */
  name: string;
  /** One line for `--help`. */
  summary: string;
  /** How masks are read. */
  mode: MaskMode;
  /** The title of the mask's panel. */
  title: string;
  /** Classes to a picture. */
  paint: Paint;
  /** What to run next and why. */
  next: string;
}

/**
 * Runs a dataset exercise from its command line: reads the training photos
 * with the exercise's mask rule and writes a figure per photo.
 *
 * @param args Command-line arguments.
 * @param exercise The exercise's lesson and names.
 * @returns The figure paths.
 * @throws {UserError} For a bad flag or unreadable data.
 */
export async function runShowDataset(args: string[], exercise: DatasetExercise): Promise<string[]> {
  const [{ parseFlags }, tf, { resolveDataDir }, { loadSplit }, { showDataset }] = await Promise
    .all([
      import("./flags.ts"), // the command line: not in the page
      import("@tensorflow/tfjs"),
      import("./data_dir.ts"),
      import("./dataset.ts"),
      import("./test_figures.ts"),
    ]);
  const defs = withHelp(DATA_FLAGS, {
    size: "Height and width the photos and masks are resized to, in pixels",
  });
  const flags = parseFlags(args, defs, {
    usage: `deno task ${exercise.name} [flags]`,
    summary: exercise.summary,
  });
  tf.enableProdMode();
  const dataDir = await resolveDataDir(flags.data, { outputs: { "--out": flags.out } });
  const data = await loadSplit(dataDir, "train", {
    mode: exercise.mode,
    size: flags.size,
    flips: false,
  });
  try {
    const paths = await showDataset(data, { ...flags, ...exercise });
    console.log(`next: ${nextStep(exercise.next, flags.data)}`);
    return paths;
  } finally {
    tf.dispose([data.images, data.masks]);
  }
}
