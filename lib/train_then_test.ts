/**
 * The plumbing of an exercise that trains a network and then tests it
 * (nearest to segnet), in one function, so that the exercise holds its
 * lesson (the network, the loss it trains on, how it reads masks and
 * predictions) and hands it in: sizes checked before any data is read, the
 * backend, the data, training with a checkpoint, the loss curve and the
 * progress figure, then the test figures and metrics, or the checkpoint's
 * test with `--no-train`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../engine/mod.ts";
import { createAugment } from "./augment.ts";
import { resolveDataDir } from "./data_dir.ts";
import { type Dataset, loadRecipeTrainSplit, loadSplit, type MaskMode } from "./dataset.ts";
import { UserError } from "./errors.ts";
import type { Classify } from "./evaluate.ts";
import { type EXERCISE_FLAGS, nextStep, type TRAIN_TEST_FLAGS } from "./exercise_flags.ts";
import { DATA_FLAGS, type FlagValues } from "./flags.ts";
import type { LogitsLoss } from "./losses.ts";
import { checkSize, type NetOptions, type OutputSizeOf } from "./network.ts";
import type { RecipeName, RecipeSettings } from "./recipes.ts";
import { type Paint, testAndShow, type TrainTestRun } from "./test_figures.ts";
import { loadTrained, resumeOrOverwrite, trainAndSave, trainCommand } from "./train_and_save.ts";
import { claimOutputFile, photoFigurePath } from "./output_files.ts";

/** What an exercise hands to {@linkcode trainThenTest}: its lesson and its names. */
export interface Lesson {
  /** The exercise, e.g. `nearest`: names the checkpoint, the figures and the messages. */
  name: string;
  /** The network's builder (every exercise's `Mynet`). */
  build: (size: number, options?: NetOptions) => tf.LayersModel;
  /** The output size for an input size, `undefined` for a size that cannot work. */
  outputSize: OutputSizeOf;
  /** How masks are read: `CLASSES` of semaseg_dataset. */
  mode: MaskMode;
  /** The loss on the logits: `semasegLoss` of semaseg_loss. */
  loss: LogitsLoss;
  /** Probabilities to classes: `argmaxClasses` of semaseg_test; not needed without a test. */
  classify?: Classify;
  /** Classes to a picture: `paintClasses` of semaseg_dataset. */
  paint: Paint;
  /**
   * What to run next and why, printed at the end, or a function of the checkpoint folder that
   * gives it. For an exercise that only trains, the test of its checkpoint: this run's
   * `--checkpoint` and `--size` are carried into it.
   */
  next: string | ((checkpoint: string) => string);
  /**
   * Carry `--data` and `--out` into `next`: false for a tool that takes no `--data` and whose
   * `--out` means another folder (segment). @default true
   */
  carryData?: boolean;
  /** The network's name in the checkpoint, when it is not the exercise's. @default name */
  network?: string;
  /** A training recipe and its settings (unetlike, segnet); the answer's protocol when absent. */
  recipe?: { name: RecipeName; settings: RecipeSettings };
}

/**
 * Trains an exercise's network and then tests it, as its flags say:
 * `--no-train` tests the saved checkpoint, `--no-test` only trains; an
 * exercise without those flags only trains.
 *
 * @param flags The parsed flags of `TRAIN_TEST_FLAGS` (a recipe's settings applied), or of
 *   `EXERCISE_FLAGS` for an exercise that only trains (bin_loss, semaseg_loss).
 * @param lesson The exercise's network, loss, mask and prediction rules, and names.
 * @returns The model (the caller disposes it), the training run and the test.
 * @throws {UserError} For a size the network cannot take, unreadable data, a missing
 *   checkpoint with `--no-train`, or a training run that diverges.
 *
 * @example
 * ```ts ignore
 * // In exercises/unet.ts, with --full (the other exercises reach it through runTrainTest):
 * return await trainThenTest(flags, {
 *   name: "unet", build: Mynet, outputSize, mode: CLASSES, loss: semasegLoss,
 *   classify: argmaxClasses, paint: paintClasses, next: NEXT,
 * });
 * ```
 */
export async function trainThenTest(
  flags: FlagValues<typeof EXERCISE_FLAGS> & Partial<FlagValues<typeof TRAIN_TEST_FLAGS>>,
  lesson: Lesson,
): Promise<TrainTestRun> {
  const { name, recipe, network = name } = lesson;
  const trainsOnly = !("test" in flags); // an exercise that only trains has no --train, --test
  const { train = true, test = false } = flags;
  const testAfter = test;
  checkSize(name, flags.size, lesson.outputSize); // before any data is loaded
  if (flags.testSize) checkSize(name, flags.testSize, lesson.outputSize, "--test-size");
  await setupBackend(flags.backend);
  const dataDir = await resolveDataDir(flags.data, {
    outputs: { "--out": flags.out, "--checkpoint": flags.checkpoint ?? undefined },
  });
  const tuned = recipe !== undefined && recipe.name !== "default";
  const run = tuned ? `${name}_${recipe.name}` : name; // names the figures and checkpoint
  const checkpoint = flags.checkpoint ?? `checkpoints/${run}`;
  // Named in messages (`--resume` after a Ctrl+C, `--overwrite`): with this run's --out too
  const command = nextStep(
    trainCommand(name + (tuned ? ` --recipe ${recipe.name}` : ""), flags.checkpoint),
    flags.data,
    { out: flags.out === "answers" ? undefined : flags.out },
  );
  // The next command runs as printed: the test of this run's checkpoint reads it at its size;
  // it, or the next exercise, puts its figures beside this run's.
  const out = flags.out === "answers" || lesson.carryData === false ? undefined : flags.out;
  const carry = trainsOnly
    ? {
      checkpoint: flags.checkpoint,
      size: flags.size === DATA_FLAGS.size.default ? undefined : flags.size,
      out,
    }
    : { out };
  const nextCommand = typeof lesson.next === "string" ? lesson.next : lesson.next(checkpoint);
  const next = nextStep(nextCommand, lesson.carryData === false ? undefined : flags.data, carry);
  if (flags.resume && flags.overwrite) throw resumeOrOverwrite(checkpoint);
  if (tuned && flags.resume) {
    throw new UserError(
      "--resume works with --recipe default only; train the tuned recipe again without --resume",
    );
  }
  const result: TrainTestRun = {};
  // Read once: the first photo is watched during training, and the split is tested after it.
  let testSplit: Dataset | undefined;
  try {
    if (train) {
      // The four flips of the original answers, or a recipe's photos to cut random crops from
      const train = tuned
        ? await loadRecipeTrainSplit(dataDir, lesson.mode, recipe.settings)
        : await loadSplit(dataDir, "train", {
          mode: lesson.mode,
          size: flags.size,
          testAfter: flags.test, // an empty test split is refused before training
        });
      const test = testSplit = await loadSplit(dataDir, "test", {
        mode: lesson.mode,
        size: flags.size,
      });
      if (testAfter) await claimTestFigures(test, flags.out, run);
      // The first test photo, whose prediction the progress figure shows during training
      const [image, mask] = tf.tidy(() => [
        tf.squeeze(tf.slice(test.images, 0, 1), [0]) as tf.Tensor3D, // [size, size, 3]
        tf.squeeze(tf.slice(test.masks, 0, 1), [0]) as tf.Tensor2D, // [size, size]
      ]) as [tf.Tensor3D, tf.Tensor2D];
      const model = lesson.build(flags.size, { seed: flags.seed });
      const augment = recipe?.settings.augment;
      try {
        result.trained = await trainAndSave(model, train, {
          ...flags,
          name: run,
          network,
          checkpoint,
          command,
          dataDir,
          crossEntropy: lesson.loss,
          augment: augment ? createAugment({ size: flags.size, ...augment }) : undefined,
          recipe: recipe?.name,
          watch: { ...lesson, name: test.names[0]!, image, mask },
          show: true,
        });
        result.model = result.trained.model;
      } finally {
        tf.dispose([train.images, train.masks, image, mask]);
      }
    }
    if (!test) {
      console.log(`next: ${next}`);
      return result;
    }
    result.model ??= await loadTrained(checkpoint, {
      network,
      size: flags.size,
      command,
      dataDir,
    });
    if (!lesson.classify) throw new Error(`${name} tests, so its lesson needs classify`);
    result.tested = await testAndShow(result.model, dataDir, {
      ...flags,
      name: run,
      mode: lesson.mode,
      classify: lesson.classify,
      paint: lesson.paint,
      build: (size) => lesson.build(size),
      next,
      testSplit,
    });
    return result;
  } finally {
    if (testSplit) tf.dispose([testSplit.images, testSplit.masks]);
  }
}

/**
 * Claims the test figures a run will write (`<out>/<class folder>/<run>_<photo>.png`) before
 * it trains, so that a file in the way is refused before the work, not after.
 */
async function claimTestFigures(
  test: Pick<Dataset, "names" | "folders">,
  out: string,
  run: string,
): Promise<void> {
  for (const [index, photo] of test.names.entries()) {
    await claimOutputFile(photoFigurePath(out, run, photo, test.folders?.[index]));
  }
}
