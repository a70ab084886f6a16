/**
 * A training run as an exercise makes it: train with a protocol (resuming
 * from the checkpoint when asked), save the checkpoint now and then and at
 * the end, recompute the batch-norm statistics, write the loss curve; and
 * load the trained network back for testing. The loop itself is
 * {@linkcode trainModel} in `train.ts`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type BatchNormStats, recomputeBatchNormStats } from "./batch_norm_stats.ts";
import { loadCheckpoint, saveCheckpoint, type TrainingState } from "./checkpoint.ts";
import type { Dataset } from "./dataset.ts";
import { writeLineChart } from "./line_chart.ts";
import { chooseLoss, type LogitsLoss, type LossName } from "./losses.ts";
import { checkBatchFits } from "./memory_budget.ts";
import { showModel } from "./network.ts";
import { claimCheckpoint, claimOutputFile } from "./output_files.ts";
import { isAbsolute, join, shownPath } from "./path.ts";
import { isSyntheticSet } from "./data_dir.ts";
import { Stopped } from "./errors.ts";
import { stopOnSignal } from "./interrupt.ts";
import { formatDuration } from "./progress.ts";
import { ProgressFigure, type WatchedPhoto, watchPoints } from "./progress_figure.ts";
import type { ScheduleName } from "./schedule.ts";
import type { Augment } from "./augment.ts";
import { UserError } from "./errors.ts";
import { type OptimizerName, trainModel } from "./train.ts";
import { describeFolders, includesFolder, trainedOn, withFolder } from "./trained_on.ts";

/** Options of {@linkcode trainAndSave}: the protocol, and where things go. */
export interface TrainAndSaveOptions {
  /** The exercise, e.g. `nearest`: names the loss figure. */
  name: string;
  /** The network, recorded in the checkpoint and checked on resume. @default name */
  network?: string;
  /** The checkpoint folder. */
  checkpoint: string;
  /** The command that trains it, named in messages, e.g. `deno task nearest`. */
  command: string;
  /** The dataset folder trained on, recorded in the checkpoint (`settings.data`, after the
   * folders a resumed checkpoint was trained on), so that a test on other photos can say so.
   * @default {not recorded} */
  dataDir?: string;
  /** Folder of the loss figure. */
  out: string;
  /** Input height and width, recorded in the checkpoint. */
  size: number;
  /** Training iterations (in all, counting those of a resumed run). */
  iters: number;
  /** Minibatch size. */
  batchSize: number;
  /** (Peak) learning rate. */
  lr: number;
  /** Seed of the minibatch order (the weights' seed is the builder's). */
  seed: number;
  /** Optimizer. @default "sgd" */
  optimizer?: OptimizerName;
  /** Learning-rate schedule. @default "constant" */
  schedule?: ScheduleName;
  /** The exercise's loss on the logits, e.g. `semasegLoss`: what `--loss ce` trains on. */
  crossEntropy: LogitsLoss;
  /** `--loss`: `ce`, or `ce+dice` to add the soft Dice loss. @default "ce" */
  loss?: LossName;
  /** Continue from the checkpoint. @default false */
  resume?: boolean;
  /**
   * Print the network's summary (`showModel`) once the checkpoint folder and the figures are
   * claimed, so that a refused run prints its one-line error alone. @default false
   */
  show?: boolean;
  /** Replace a checkpoint of an earlier run in `checkpoint` (else a fresh run refuses it).
   * @default false */
  overwrite?: boolean;
  /** Save every this many iterations (0: only at the end). @default 100 */
  saveEvery?: number;
  /** Batch-norm statistics for testing. @default "recompute" */
  bnStats?: BatchNormStats;
  /** Random augmentation of every minibatch (a tuned recipe); none when absent. */
  augment?: Augment;
  /** The recipe's name, recorded in the checkpoint and the loss figure's title. */
  recipe?: string;
  /** A test photo whose prediction `<out>/<name>_progress.png` shows during training. */
  watch?: WatchedPhoto;
}

/** What {@linkcode trainAndSave} returns. */
export interface TrainedRun {
  /** The trained model (the checkpoint's after `resume`); the caller disposes it. */
  model: tf.LayersModel;
  /** Loss of each iteration of this run. */
  losses: number[];
  /** Mean ms per iteration, warm-up left out. */
  msPerIter: number;
  /** The checkpoint folder. */
  checkpoint: string;
  /** The loss-curve figure (not written when no iteration ran). */
  lossFigure: string;
  /** The progress figure, when a photo was watched and an iteration ran. */
  progressFigure?: string;
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

/**
 * Trains a network on a training split with a protocol (resuming from the
 * checkpoint with `resume`), prints progress, saves the checkpoint every
 * `saveEvery` iterations and at the end (each save atomic), recomputes the
 * batch-norm statistics, and writes the loss curve `<out>/<name>_loss.png` and,
 * with `watch`, the progress figure `<out>/<name>_progress.png`.
 *
 * @param model A freshly built model (disposed and replaced by the checkpoint's with `resume`).
 * @param data The training split: images `[n, size, size, 3]` in [0, 1], masks `[n, size, size]`
 *   class indices.
 * @param options The protocol and where things go.
 * @returns The trained model, its losses and where the files are.
 * @throws {UserError} On `resume` from a checkpoint that is missing, damaged or of another
 *   network, size, loss or optimizer; before training, for a fresh run into a folder that
 *   holds a checkpoint (without `overwrite`) or other files, and for a batch too large for
 *   memory; when the loss turns non-finite (the checkpoint on disk stays the last good one);
 *   for a batch size that leaves a batch-norm layer one value.
 * @throws {Stopped} After Ctrl+C (or SIGTERM): training stops after its current iteration, which
 *   is saved with the loss figure, and the error's one line says how to continue (a second
 *   Ctrl+C quits at once, the last checkpoint saved kept).
 *
 * @example
 * ```ts ignore
 * // In exercises/nearest.ts: prints progress, the loss curve and the checkpoint paths.
 * const trained = await trainAndSave(nearestNet(64), train, {
 *   ...flags, name: "nearest", checkpoint: "checkpoints/nearest", command: "deno task nearest",
 * });
 * ```
 */
export async function trainAndSave(
  model: tf.LayersModel,
  data: Pick<Dataset, "images" | "masks">,
  options: TrainAndSaveOptions,
): Promise<TrainedRun> {
  const {
    name,
    network = name,
    checkpoint: dir,
    command,
    optimizer = "sgd",
    schedule = "constant",
    loss = "ce",
    saveEvery = 100,
    bnStats = "recompute",
  } = options;
  if (options.resume && options.overwrite) throw resumeOrOverwrite(dir);
  let startIteration = 0;
  let optimizerState;
  let history: number[] = []; // the loss of each iteration up to the last one done
  let dataFolders: string[] = [];
  if (options.resume) {
    // Refuses a checkpoint of another network, size, loss or optimizer, in one line.
    const loaded = await loadCheckpoint(dir, {
      model: network,
      size: options.size,
      command,
      resume: true,
      loss,
      optimizer,
    });
    model.dispose();
    model = loaded.model;
    startIteration = loaded.state.iteration;
    optimizerState = loaded.optimizerState;
    history = savedLosses(loaded.state);
    console.log(`resume: from ${loaded.path} at iteration ${startIteration}`);
    dataFolders = trainedOn(loaded.state.settings);
    if (
      options.dataDir && dataFolders.length > 0 && !includesFolder(dataFolders, options.dataDir)
    ) {
      console.warn(
        `warning: ${dir} was trained on ${describeFolders(dataFolders)} and now goes on on ` +
          `${shownPath(options.dataDir)}; its training_state.json will list both`,
      );
    }
  }
  if (options.dataDir) dataFolders = withFolder(dataFolders, options.dataDir);
  // Before any iteration: the folder may take this run's checkpoint, and a minibatch fits.
  await claimCheckpoint(dir, {
    replace: options.resume || options.overwrite,
    data: options.dataDir,
    start: true,
  });
  // The figures this run writes, claimed now: a file in the way is found before training.
  const lossFigure = join(options.out, `${name}_loss.png`);
  const progressPath = join(options.out, `${name}_progress.png`);
  await claimOutputFile(lossFigure);
  if (options.watch) await claimOutputFile(progressPath);
  checkBatchFits(model, options.batchSize);
  if (options.show) showModel(model);
  if (startIteration >= options.iters) {
    console.log(`train: already at iteration ${startIteration}; raise --iters to train on`);
  }
  const state = (iteration: number) => ({
    iteration,
    model: network,
    size: options.size,
    classes: model.outputs[0]!.shape[3] ?? 1,
    optimizer,
    settings: {
      ...(options.recipe ? { recipe: options.recipe } : {}),
      ...(dataFolders.length > 0 ? { data: dataFolders } : {}),
      lr: options.lr,
      batchSize: options.batchSize,
      seed: options.seed,
      schedule,
      loss,
      iters: options.iters,
    },
    losses: history,
  });
  // Ctrl+C stops training after its iteration, which is saved (see the end); twice quits at once.
  // Listening from here, a Ctrl+C while the first progress picture is drawn stops the run too.
  using stop = stopOnSignal(
    `quit at once without saving (stopped twice); ${dir} keeps the last checkpoint saved, if ` +
      `any: \`${command} --resume\` continues from it`,
  );
  console.log(
    `train: ${options.iters - Math.min(startIteration, options.iters)} iterations, ` +
      `batch ${options.batchSize}, ${optimizer === "sgd" ? "sgd momentum 0.9" : optimizer} ` +
      `lr ${options.lr} (${schedule}), ` +
      `seed ${options.seed}, loss ${loss}` +
      (options.augment ? ", random augmentation" : ""),
  );
  const watch = options.watch &&
    new ProgressFigure(options.watch, watchPoints(options.iters, startIteration));
  watch?.see(model, startIteration);
  const result = await trainModel(model, data, {
    iters: options.iters,
    batchSize: options.batchSize,
    lr: options.lr,
    seed: options.seed,
    optimizer,
    schedule,
    loss: chooseLoss(options.crossEntropy, loss),
    startIteration,
    optimizerState,
    augment: options.augment,
    signal: stop.signal,
    onIteration: async (iteration, loss, optimizer) => {
      history.push(loss);
      await stop.poll();
      if (iteration < options.iters) watch?.see(model, iteration, loss); // the last after BN stats
      if (saveEvery > 0 && iteration % saveEvery === 0 && iteration < options.iters) {
        await saveCheckpoint(dir, model, state(iteration), optimizer);
      }
    },
  });
  tf.dispose(optimizerState?.map((weight) => weight.tensor) ?? []);
  // Stopped early, the checkpoint is saved as it trains (no statistics recomputed), to resume.
  const stopped = stop.signal.aborted && result.iteration < options.iters;
  const trained = result.losses.length > 0;
  if (bnStats === "recompute" && trained && !stopped) {
    finishBatchNormStats(model, data.images, options.batchSize);
  }
  if (trained && !stopped) watch?.see(model, result.iteration, result.losses.at(-1), true);
  if (trained || !stopped) {
    await saveCheckpoint(dir, model, state(result.iteration), result.optimizer);
  }
  result.optimizer.dispose();
  const speed = result.msPerIter > 0 ? `, ${result.msPerIter.toFixed(0)} ms per iteration` : "";
  const last = result.losses.length ? `, last loss ${result.losses.at(-1)!.toFixed(4)}` : "";
  console.log(
    `train: ${stopped ? "stopped" : "done"} in ${formatDuration(result.seconds)}${speed}${last}`,
  );
  if (result.losses.length > 0) {
    await writeLineChart(lossFigure, {
      title: `${name}: training loss` + (options.recipe ? ` (${options.recipe} recipe)` : ""),
      xLabel: "iteration",
      yLabel: "loss",
      series: [
        { label: "each iteration", values: history },
        // A mean over fewer than three windows says little more than the losses themselves.
        ...(history.length >= 3 * LOSS_WINDOW
          ? [{ label: `mean of ${LOSS_WINDOW}`, values: trailingMean(history, LOSS_WINDOW) }]
          : []),
      ],
      yFromZero: true,
      xStart: result.iteration - history.length + 1,
    });
    console.log(`loss curve: ${lossFigure}`);
  }
  const progressFigure = result.losses.length > 0
    ? await watch?.write(progressPath, name)
    : undefined;
  if (progressFigure) console.log(`progress: ${progressFigure}`);
  console.log(`checkpoint: ${dir}`);
  if (stop.signal.aborted) {
    model.dispose();
    throw new Stopped(stoppedLine(result.iteration, stop.reason!, stopped, options), stop.exitCode);
  }
  const { losses, msPerIter } = result;
  return { model, losses, msPerIter, checkpoint: dir, lossFigure, progressFigure };
}

/** The line of a run stopped by `reason` (Ctrl+C) at `iteration`: where it is, what continues. */
function stoppedLine(
  iteration: number,
  reason: string,
  early: boolean,
  { checkpoint, command, recipe }: TrainAndSaveOptions,
): string {
  if (iteration === 0) return `stopped before the first iteration (${reason}); nothing was saved`;
  if (!early) {
    return `stopped after training (${reason}): checkpoint ${checkpoint} holds all ` +
      `${iteration} iterations`;
  }
  const continues = recipe === undefined || recipe === "default"
    ? `\`${command} --resume\` continues`
    : `a tuned recipe cannot resume: \`${command}\` trains it again`;
  return `stopped at iteration ${iteration} (${reason}); checkpoint ${checkpoint} holds it; ` +
    continues;
}

/** What {@linkcode loadTrained} checks the checkpoint against. */
export interface LoadTrainedOptions {
  /** The network the checkpoint must hold. */
  network: string;
  /** The input size it must take. */
  size: number;
  /** The command that trains it, named when it is missing. */
  command: string;
  /** The dataset folder it will be tested on: a checkpoint that recorded another one is
   * named in a warning (a network trained on the synthetic newts tested on Imori's, say).
   * @default {not checked} */
  dataDir?: string;
}

/**
 * Loads a trained network from its checkpoint for testing, refusing one of
 * another network or size, and says what it loaded in one line.
 *
 * @param dir The checkpoint folder.
 * @param options The network, size and training command expected.
 * @returns The model; the caller disposes it.
 * @throws {UserError} When the checkpoint is missing or of another network or size.
 *
 * @example
 * ```ts
 * import { loadTrained } from "./train_and_save.ts";
 * import { assertRejects } from "./assert.ts";
 * await assertRejects(
 *   loadTrained("no/such", { network: "bin", size: 64, command: "deno task bin_loss" }),
 *   /run `deno task bin_loss`/,
 * );
 * ```
 */
export async function loadTrained(
  dir: string,
  options: LoadTrainedOptions,
): Promise<tf.LayersModel> {
  const loaded = await loadCheckpoint(dir, {
    model: options.network,
    size: options.size,
    command: options.command,
  });
  tf.dispose(loaded.optimizerState?.map((weight) => weight.tensor) ?? []);
  console.log(
    `model: ${options.network} from ${loaded.path}, trained ${loaded.state.iteration} iterations`,
  );
  const folders = trainedOn(loaded.state.settings);
  // The training page records what it drew ("synthetic (drawn in memory)"), not a folder: the
  // same pixels as a synthetic set's files, and no --data to name.
  const drawn = folders.filter((folder) => !isAbsolute(folder));
  const samePixels = drawn.length === folders.length &&
    drawn.every((one) => one.startsWith("synthetic")) &&
    options.dataDir !== undefined && await isSyntheticSet(options.dataDir);
  if (
    options.dataDir !== undefined && folders.length > 0 && !samePixels &&
    !includesFolder(folders, options.dataDir)
  ) {
    const last = folders.at(-1)!;
    console.warn(
      `warning: ${dir} was trained on ${describeFolders(folders)} and is tested on ` +
        `${shownPath(options.dataDir)}` +
        (isAbsolute(last)
          ? `; to test on the photos it learnt from, pass --data ${shownPath(last)}`
          : ""),
    );
  }
  return loaded.model;
}

/**
 * The command that trains a checkpoint, as messages name it: the task, and
 * the `--checkpoint` folder when the user typed one.
 *
 * @param task The task and its flags, e.g. `nearest` or `unet --full`.
 * @param checkpoint The `--checkpoint` flag, if typed.
 * @returns The command, e.g. `deno task nearest --checkpoint /tmp/run1`.
 *
 * @example
 * ```ts
 * import { trainCommand } from "./train_and_save.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(trainCommand("nearest", undefined), "deno task nearest");
 * assertEquals(trainCommand("nearest", "/tmp/a"), "deno task nearest --checkpoint /tmp/a");
 * ```
 */
export function trainCommand(task: string, checkpoint: string | undefined): string {
  return `deno task ${task}` + (checkpoint === undefined ? "" : ` --checkpoint ${checkpoint}`);
}

/**
 * The loss history a checkpoint kept (`training_state.json`'s `losses`), or none when it kept
 * none or one that does not fit its iteration: the loss curve then starts at the resume point.
 */
function savedLosses(state: TrainingState): number[] {
  const losses: unknown = state.losses;
  if (!Array.isArray(losses) || losses.length > state.iteration) return [];
  return losses.every(Number.isFinite) ? losses : [];
}

/**
 * The refusal of `--resume` with `--overwrite`: one continues the checkpoint, the other
 * replaces it.
 *
 * @param dir The checkpoint folder.
 * @returns The error.
 *
 * @example
 * ```ts
 * import { resumeOrOverwrite } from "./train_and_save.ts";
 * import { assert } from "./assert.ts";
 * assert(resumeOrOverwrite("ck").message.endsWith("pass one of them"));
 * ```
 */
export function resumeOrOverwrite(dir: string): UserError {
  return new UserError(
    `--resume continues the checkpoint in ${dir} and --overwrite replaces it; pass one of them`,
  );
}

/** Iterations averaged by the loss figure's second line; drawn from three windows on. */
const LOSS_WINDOW = 20;

/**
 * The mean of each value and the ones before it, `window` in all (fewer at the start): the
 * loss figure's smooth line through the noise of single minibatches.
 *
 * @param values The series.
 * @param window How many values each mean covers, at least 1.
 * @returns One mean per value.
 *
 * @example
 * ```ts
 * import { trailingMean } from "./train_and_save.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(trailingMean([4, 2, 6, 0], 2), [4, 3, 4, 3]);
 * ```
 */
export function trailingMean(values: readonly number[], window: number): number[] {
  let sum = 0;
  return values.map((value, index) => {
    sum += value;
    if (index >= window) sum -= values[index - window]!;
    return sum / Math.min(index + 1, window);
  });
}
