/**
 * The shared flow of a train/test exercise, so that each script in
 * `exercises/` reads as a short narrative: settings, data, model, train,
 * test, next command. Every step prints what it did and where it wrote.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../engine/mod.ts";
import { checkpointDir, loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { resolveDataDir } from "./data_dir.ts";
import { UserError } from "./errors.ts";
import { type Dataset, loadDataset, type MaskMode } from "./dataset.ts";
import { evaluateModel, formatMetricsLine, type Metrics } from "./evaluate.ts";
import { writeFigure } from "./figure.ts";
import { DATA_FLAGS, type FlagDefs, type FlagValues, TRAIN_FLAGS } from "./flags.ts";
import { writeLineChart } from "./line_chart.ts";
import { buildModel, type ModelName, modelSummary, outputSize, rebuildAtSize } from "./models.ts";
import { paintClasses } from "./palette.ts";
import { join } from "./path.ts";
import { BATCH_NORM_STATS, recomputeBatchNormStats } from "./batch_norm_stats.ts";
import { formatDuration } from "./progress.ts";
import { LOSSES, type LossName } from "./losses.ts";
import { type ScheduleName, SCHEDULES } from "./schedule.ts";
import { type Augment, type OptimizerName, OPTIMIZERS, trainModel } from "./train.ts";

/** Flags of every exercise that trains: the data and training flags, and a few more. */
export const EXERCISE_FLAGS = {
  ...DATA_FLAGS,
  ...TRAIN_FLAGS,
  optimizer: {
    type: "string",
    default: "sgd",
    choices: OPTIMIZERS,
    help: "Optimizer: sgd (with momentum 0.9, the tutorial's) or adam",
  },
  schedule: {
    type: "string",
    default: "constant",
    choices: SCHEDULES,
    help: "Learning-rate schedule over the run",
  },
  loss: {
    type: "string",
    default: "ce",
    choices: LOSSES,
    help: "Training loss: ce (cross-entropy, the tutorial's) or ce+dice (plus the soft Dice " +
      "loss, which weighs each class the same)",
  },
  resume: {
    type: "boolean",
    default: false,
    help: "Continue training from the checkpoint (weights, optimizer state, iteration)",
  },
  saveEvery: {
    type: "int",
    default: 100,
    min: 0,
    help: "Save the checkpoint every this many iterations (0: only at the end)",
  },
  bnStats: {
    type: "string",
    default: "recompute",
    choices: BATCH_NORM_STATS,
    help: "Batch-norm statistics for testing: recompute them over the training set after " +
      "training, or keep the moving averages (the tutorial's answers)",
  },
} as const satisfies FlagDefs;

/** Flags of an exercise that trains and then tests in one run. */
export const TRAIN_TEST_FLAGS = {
  ...EXERCISE_FLAGS,
  train: {
    type: "boolean",
    default: true,
    help: "Train first; --no-train tests the saved checkpoint",
  },
  test: {
    type: "boolean",
    default: true,
    help: "Test after training; --no-test only trains",
  },
  flipAverage: {
    type: "boolean",
    default: false,
    help: "Test on the mean prediction over the 8 flips and quarter-turns of each photo",
  },
  testSize: {
    type: "int",
    default: 0,
    min: 0,
    help: "Input size for testing, the same weights at another size (0: --size)",
  },
} as const satisfies FlagDefs;

/** What a train-then-test exercise returns. */
export interface TrainTestRun {
  /** The model trained or loaded; the caller disposes it. */
  model?: tf.LayersModel;
  /** The training run, unless `--no-train`. */
  trained?: TrainedRun;
  /** The test, unless `--no-test`. */
  tested?: TestedRun;
}

/** Flags of a testing exercise: the binarization threshold. */
export const TEST_FLAGS = {
  threshold: {
    type: "number",
    default: 0.5,
    min: 0,
    max: 1,
    help: "Probability at or above which a pixel is a newt (one-channel models)",
  },
  flipAverage: TRAIN_TEST_FLAGS.flipAverage,
  testSize: TRAIN_TEST_FLAGS.testSize,
} as const satisfies FlagDefs;

/** Parsed values of {@linkcode EXERCISE_FLAGS}. */
export type ExerciseFlags = FlagValues<typeof EXERCISE_FLAGS>;

/** Which exercise this is, and what it trains. */
export interface ExerciseSpec {
  /** The exercise name, e.g. `bin_test`: names the figures. */
  exercise: string;
  /** The exercise whose task trains the checkpoint, e.g. `bin_loss`. */
  trainer: string;
  /** The network. */
  model: ModelName;
  /** Binarization or three classes. */
  mode: MaskMode;
  /** What to run next and why, printed at the end (before the metrics line). */
  next: { command: string; why: string };
}

/** The data folder and backend a run uses. */
export interface RunContext {
  /** The dataset folder. */
  dataDir: string;
  /** The backend in use. */
  backend: string;
}

/**
 * Picks the backend and the data folder, each announced in one line.
 *
 * @param flags The parsed flags (`backend`, `data`).
 * @returns The backend in use and the data folder.
 *
 * @example
 * ```ts
 * import { prepareRun } from "./exercise.ts";
 * import { assertEquals } from "./assert.ts";
 * const dir = await Deno.makeTempDir();
 * assertEquals(await prepareRun({ backend: "cpu", data: dir }), { backend: "cpu", dataDir: dir });
 * await Deno.remove(dir);
 * ```
 */
export async function prepareRun(
  flags: { backend: string; data?: string | undefined },
): Promise<RunContext> {
  const backend = await setupBackend(flags.backend as Parameters<typeof setupBackend>[0]);
  const dataDir = await resolveDataDir(flags.data);
  return { backend, dataDir };
}

/**
 * Loads one split at the model size, printing how many images it holds.
 *
 * @param context The data folder.
 * @param split `train` (with the four flips of the original answers) or `test`.
 * @param mode Binarization or classes.
 * @param size Model input size.
 * @returns The dataset; the caller disposes its tensors.
 *
 * @example
 * ```ts ignore
 * import { loadSplit } from "./exercise.ts";
 * const test = await loadSplit({ dataDir: "../shared/imori", backend: "wasm" }, "test", "classes", 64);
 * // data: 6 test images from ../shared/imori at 64x64, classes background, akahara, madara
 * ```
 */
export async function loadSplit(
  context: RunContext,
  split: "train" | "test",
  mode: MaskMode,
  size: number,
): Promise<Dataset> {
  const flips = split === "train";
  const data = await loadDataset(context.dataDir, { split, size, mode, flips });
  const photos = flips ? data.names.length / 4 : data.names.length;
  console.log(
    `data: ${data.names.length} ${split} images` +
      (flips ? ` (${photos} photos x 4 flips)` : "") +
      ` from ${context.dataDir} at ${size}x${size}, classes ${data.classNames.join(", ")}`,
  );
  return data;
}

/**
 * Builds an exercise's network and prints its summary.
 *
 * @param name The network.
 * @param flags Input size and seed.
 * @returns The model.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { buildAndShow } from "./exercise.ts";
 * import { assertEquals } from "./assert.ts";
 * await tf.setBackend("cpu");
 * const model = buildAndShow("semaseg", { size: 8, seed: 0 });
 * assertEquals(model.outputs[0]!.shape, [null, 8, 8, 3]);
 * model.dispose();
 * ```
 */
export function buildAndShow(
  name: ModelName,
  flags: { size: number; seed: number; testSize?: number },
): tf.LayersModel {
  // A test size that cannot work is refused now, not after training.
  if (flags.testSize) outputSize(name, flags.testSize, "--test-size");
  const model = buildModel(name, { size: flags.size, seed: flags.seed });
  console.log(`model: ${name}\n${modelSummary(model)}`);
  return model;
}

/**
 * Recomputes the batch-norm statistics over the training images, brought to
 * the model's input size when they were loaded larger (a recipe's random
 * crops), and says so in one line.
 */
function finishBatchNormStats(model: tf.LayersModel, images: tf.Tensor4D, batchSize: number) {
  const [height, width] = (model.inputs[0]!.shape as number[]).slice(1, 3) as [number, number];
  const atSize = images.shape[1] === height && images.shape[2] === width
    ? images
    : tf.image.resizeBilinear(images, [height, width]);
  try {
    const layers = recomputeBatchNormStats(model, atSize, batchSize);
    if (layers > 0) {
      console.log(
        `batch norm: statistics of ${layers} layers recomputed over ${images.shape[0]} training ` +
          `images (--bn-stats moving keeps the moving averages)`,
      );
    }
  } finally {
    if (atSize !== images) atSize.dispose();
  }
}

/** What {@linkcode trainAndSave} returns. */
export interface TrainedRun {
  /** The trained model. */
  model: tf.LayersModel;
  /** Loss of each iteration of this run. */
  losses: number[];
  /** Mean ms per iteration, warm-up left out. */
  msPerIter: number;
  /** The checkpoint folder. */
  checkpoint: string;
  /** The loss-curve figure (not written when no iteration ran). */
  lossFigure: string;
}

/** Options of {@linkcode trainAndSave} beyond the flags. */
export interface TrainAndSaveOptions {
  /** Random augmentation of every minibatch (a tuned recipe); none when absent. */
  augment?: Augment;
  /** The recipe's name, recorded in the checkpoint and the loss figure's title. */
  recipe?: string;
}

/**
 * Trains a network on the training split with the flags' protocol (resuming
 * from the checkpoint with `--resume`), saves the checkpoint now and then and
 * at the end, and writes the loss curve.
 *
 * @param spec The exercise.
 * @param model A freshly built model (ignored with `--resume`, which loads the checkpoint's).
 * @param data The training split.
 * @param flags The parsed flags.
 * @param options Augmentation and recipe name of a tuned recipe.
 * @returns The trained model, its losses and where the files are.
 *
 * @example
 * ```ts ignore
 * // In exercises/bin_loss.ts: prints progress, the loss curve and the checkpoint paths.
 * const trained = await trainAndSave(SPEC, buildAndShow("bin", flags), train, flags);
 * ```
 */
export async function trainAndSave(
  spec: ExerciseSpec,
  model: tf.LayersModel,
  data: Pick<Dataset, "images" | "masks">,
  flags: ExerciseFlags,
  options: TrainAndSaveOptions = {},
): Promise<TrainedRun> {
  const dir = checkpointDir(spec.trainer, flags.checkpoint);
  const command = `deno task ${spec.trainer}`;
  let startIteration = 0;
  let optimizerState;
  if (flags.resume) {
    const loaded = await loadCheckpoint(dir, { model: spec.model, size: flags.size, command });
    if (loaded.state.optimizer !== flags.optimizer) {
      throw new UserError(
        `Checkpoint ${dir} was trained with --optimizer ${loaded.state.optimizer}: ` +
          `resume with --optimizer ${loaded.state.optimizer}`,
      );
    }
    model.dispose();
    model = loaded.model;
    startIteration = loaded.state.iteration;
    optimizerState = loaded.optimizerState;
    console.log(`resume: from ${loaded.path} at iteration ${startIteration}`);
  }
  if (startIteration >= flags.iters) {
    console.log(`train: already at iteration ${startIteration}; raise --iters to train on`);
  }
  const state = (iteration: number) => ({
    iteration,
    model: spec.model,
    size: flags.size,
    classes: model.outputs[0]!.shape[3] ?? 1,
    optimizer: flags.optimizer,
    settings: {
      ...(options.recipe ? { recipe: options.recipe } : {}),
      lr: flags.lr,
      batchSize: flags.batchSize,
      seed: flags.seed,
      schedule: flags.schedule,
      loss: flags.loss,
      iters: flags.iters,
    },
  });
  console.log(
    `train: ${
      flags.iters - Math.min(startIteration, flags.iters)
    } iterations, batch ${flags.batchSize}, ` +
      `${flags.optimizer} lr ${flags.lr} (${flags.schedule}), seed ${flags.seed}` +
      (flags.loss === "ce" ? "" : `, loss ${flags.loss}`) +
      (options.augment ? ", random augmentation" : ""),
  );
  const result = await trainModel(model, data, {
    iters: flags.iters,
    batchSize: flags.batchSize,
    lr: flags.lr,
    seed: flags.seed,
    optimizer: flags.optimizer as OptimizerName,
    schedule: flags.schedule as ScheduleName,
    loss: flags.loss as LossName,
    startIteration,
    optimizerState,
    augment: options.augment,
    onIteration: async (iteration, _loss, optimizer) => {
      if (flags.saveEvery > 0 && iteration % flags.saveEvery === 0 && iteration < flags.iters) {
        await saveCheckpoint(dir, model, state(iteration), optimizer);
      }
    },
  });
  tf.dispose(optimizerState?.map((weight) => weight.tensor) ?? []);
  if (flags.bnStats === "recompute" && result.losses.length > 0) {
    finishBatchNormStats(model, data.images, flags.batchSize);
  }
  await saveCheckpoint(dir, model, state(result.iteration), result.optimizer);
  result.optimizer.dispose();
  const speed = result.msPerIter > 0 ? `, ${result.msPerIter.toFixed(0)} ms per iteration` : "";
  const last = result.losses.length ? `, last loss ${result.losses.at(-1)!.toFixed(4)}` : "";
  console.log(`train: done in ${formatDuration(result.seconds)}${speed}${last}`);
  const lossFigure = join(flags.out, `${spec.exercise}_loss.png`);
  if (result.losses.length > 0) {
    await writeLineChart(lossFigure, {
      title: `${spec.exercise}: training loss` +
        (options.recipe ? ` (${options.recipe} recipe)` : ""),
      xLabel: "iteration",
      yLabel: "loss",
      series: [{ label: spec.model, values: result.losses }],
    });
    console.log(`loss curve: ${lossFigure}`);
  }
  console.log(`checkpoint: ${dir}`);
  return {
    model,
    losses: result.losses,
    msPerIter: result.msPerIter,
    checkpoint: dir,
    lossFigure,
  };
}

/**
 * Loads the checkpoint an exercise tests, refusing one of another network or size.
 *
 * @param spec The exercise.
 * @param flags Checkpoint folder and input size.
 * @returns The model.
 * @throws {UserError} When the checkpoint is missing or of another network or size.
 *
 * @example
 * ```ts
 * import { loadTrained } from "./exercise.ts";
 * import { assertRejects } from "./assert.ts";
 * const spec = {
 *   exercise: "bin_test", trainer: "bin_loss", model: "bin", mode: "binary",
 *   next: { command: "deno task semaseg_loss", why: "three classes" },
 * } as const;
 * await assertRejects(loadTrained(spec, { checkpoint: "no/such", size: 64 }), /run `deno task bin_loss`/);
 * ```
 */
export async function loadTrained(
  spec: ExerciseSpec,
  flags: { checkpoint?: string | undefined; size: number },
): Promise<tf.LayersModel> {
  const dir = checkpointDir(spec.trainer, flags.checkpoint);
  const loaded = await loadCheckpoint(dir, {
    model: spec.model,
    size: flags.size,
    command: `deno task ${spec.trainer}`,
  });
  tf.dispose(loaded.optimizerState?.map((weight) => weight.tensor) ?? []);
  console.log(
    `model: ${spec.model} from ${loaded.path}, trained ${loaded.state.iteration} iterations`,
  );
  return loaded.model;
}

/** What {@linkcode testAndShow} returns. */
export interface TestedRun {
  /** The metrics. */
  metrics: Metrics;
  /** The metrics line printed last. */
  line: string;
  /** The figure written per test image. */
  figures: string[];
}

/**
 * Predicts every test image, writes a figure per image
 * (`<out>/<exercise>_<image>.png`), and prints the metrics line last.
 *
 * A one-channel model's figure has `input`, `predicted` (probability, grey),
 * `after binarization` and `ground truth`; a softmax model's has `input`,
 * `prediction` (painted classes) and `ground truth`. The next command comes
 * before the metrics line, so that the metrics line is the last one.
 *
 * Loads the test split itself (at `flags.size`, in the exercise's mask mode)
 * and frees it when done.
 *
 * @param spec The exercise.
 * @param model The trained model.
 * @param context The data folder, from {@linkcode prepareRun}.
 * @param flags Input size, output folder and threshold.
 * @returns The metrics and the figure paths.
 *
 * @example
 * ```ts ignore
 * // In exercises/semaseg_test.ts: writes answers/semaseg_test_<image>.png and ends with
 * // test mIoU 0.712 (background 0.80, akahara 0.70, madara 0.64) pixel accuracy 0.861
 * const tested = await testAndShow(SPEC, model, context, flags);
 * ```
 */
export async function testAndShow(
  spec: ExerciseSpec,
  model: tf.LayersModel,
  context: RunContext,
  flags: {
    size: number;
    out: string;
    threshold?: number;
    flipAverage?: boolean;
    testSize?: number;
  },
): Promise<TestedRun> {
  const size = flags.testSize || flags.size;
  let atSize = model;
  if (size !== flags.size) {
    // A fully convolutional network takes other sizes with the same weights.
    outputSize(spec.model, size, "--test-size");
    atSize = rebuildAtSize(model, spec.model, size);
    console.log(`test: the trained weights at input size ${size}x${size}`);
  }
  const test = await loadSplit(context, "test", spec.mode, size);
  try {
    return await showTest(spec, atSize, test, flags);
  } finally {
    test.images.dispose();
    test.masks.dispose();
    if (atSize !== model) atSize.dispose();
  }
}

async function showTest(
  spec: ExerciseSpec,
  model: tf.LayersModel,
  data: Dataset,
  flags: { out: string; threshold?: number; flipAverage?: boolean },
): Promise<TestedRun> {
  const threshold = flags.threshold ?? 0.5;
  if (flags.flipAverage) {
    console.log("test: mean prediction over the 8 flips and quarter-turns of each photo");
  }
  const evaluation = await evaluateModel(model, data.images, data.masks, {
    classNames: data.classNames,
    threshold,
    flipAverage: flags.flipAverage,
  });
  const figures: string[] = [];
  try {
    for (let index = 0; index < data.names.length; index++) {
      const path = join(flags.out, `${spec.exercise}_${data.names[index]}.png`);
      const panels = tf.tidy(() => {
        const pick = <T extends tf.Tensor>(tensor: T) =>
          tf.squeeze(tf.slice(tensor, index, 1), [0]) as tf.Tensor; // drop the batch axis
        const classMap = pick(evaluation.classMap) as tf.Tensor2D; // [out, out]
        const truth = pick(evaluation.truth) as tf.Tensor2D; // [out, out]
        // A smaller output (UNet) covers the centre of the photo: show that region,
        // cropped by the same rule as the masks.
        const [outHeight, outWidth] = classMap.shape;
        const [, height, width] = data.images.shape;
        const cropped = outHeight < height || outWidth < width;
        const input = {
          title: cropped ? `input (centre ${outHeight}x${outWidth})` : "input",
          image: tf.slice(pick(data.images), [
            Math.floor((height - outHeight) / 2),
            Math.floor((width - outWidth) / 2),
            0,
          ], [outHeight, outWidth, 3]) as tf.Tensor3D, // [out, out, 3]
        };
        if (evaluation.probabilities.shape[3] === 1) {
          const grey = (map: tf.Tensor2D) =>
            tf.expandDims(tf.cast(map, "float32"), 2) as tf.Tensor3D; // [out, out, 1]
          return [
            input,
            { title: "predicted", image: pick(evaluation.probabilities) as tf.Tensor3D },
            { title: "after binarization", image: grey(classMap) },
            { title: "ground truth", image: grey(truth) },
          ];
        }
        return [
          input,
          { title: "prediction", image: paintClasses(classMap) },
          { title: "ground truth", image: paintClasses(truth) },
        ];
      });
      try {
        await writeFigure(path, panels, { title: `${spec.exercise}: ${data.names[index]}` });
      } finally {
        tf.dispose(panels.map((panel) => panel.image));
      }
      figures.push(path);
      console.log(`figure: ${path}`);
    }
  } finally {
    tf.dispose([evaluation.probabilities, evaluation.classMap, evaluation.truth]);
  }
  const line = formatMetricsLine(evaluation.metrics);
  nextStep(spec);
  console.log(line);
  return { metrics: evaluation.metrics, line, figures };
}

/**
 * Prints the command to run next.
 *
 * @param spec The exercise, whose `next` says what comes after it.
 *
 * @example
 * ```ts
 * import { nextStep } from "./exercise.ts";
 * nextStep({
 *   exercise: "bin_loss", trainer: "bin_loss", model: "bin", mode: "binary",
 *   next: { command: "deno task bin_test", why: "test it" },
 * }); // next: deno task bin_test  (test it)
 * ```
 */
export function nextStep(spec: ExerciseSpec): void {
  console.log(`next: ${spec.next.command}  (${spec.next.why})`);
}
