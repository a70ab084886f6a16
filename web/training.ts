/**
 * One training run of an exercise held in memory, as the page's worker runs
 * it and as Deno runs it for comparison: the synthetic newts drawn from their
 * seed (`lib/synthetic_newts.ts`) and read by the dataset reader's pixel code
 * (`lib/dataset_pixels.ts`: the four flips of each training photo, the
 * exercise's colour rule), the exercise's `Mynet` trained by `trainModel` on
 * its loss with the seed's minibatches, the batch-norm statistics recomputed
 * over the training images (the scripts' `--bn-stats recompute`), then the
 * test photos scored (`evaluateModel`) and the checkpoint's files made in the
 * format of `checkpoints/<name>/`. Platform-neutral: no file, sharp, FFI or
 * DOM API.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { recomputeBatchNormStats } from "../lib/batch_norm_stats.ts";
import { assembleDataset, type Dataset, type PhotoPair } from "../lib/dataset_pixels.ts";
import { evaluateModel, formatMetricsLine, type Metrics } from "../lib/evaluate.ts";
import { checkSize, modelSummary } from "../lib/network.ts";
import { syntheticPairs } from "../lib/synthetic_newts.ts";
import { trainModel } from "../lib/train.ts";
import type { PageLesson, Protocol } from "./lessons.ts";

/** What one iteration reports. */
export interface IterationReport {
  /** The iteration just done, from 1. */
  iteration: number;
  /** Its loss. */
  loss: number;
  /** Milliseconds since the previous report (the first: since training started). */
  ms: number;
  /** `tf.memory().numTensors` after the iteration. */
  numTensors: number;
}

/** The test photos' predictions at one point of training, as RGBA pictures. */
export interface PredictionPictures {
  /** Iterations done when predicted. */
  iteration: number;
  /** Side of each picture in pixels (the network's output size). */
  size: number;
  /** Per test photo: its name, the photo, the painted truth and the painted prediction. */
  photos: {
    name: string;
    photo: Uint8ClampedArray;
    truth: Uint8ClampedArray;
    predicted: Uint8ClampedArray;
  }[];
}

/** Photos and masks a run trains and tests on, decoded, in the dataset reader's order. */
export interface LessonData {
  /** Where they come from, as `training_state.json` records it (`settings.data`). */
  name: string;
  /** The training photos (each is trained on with its three flips). */
  train: readonly PhotoPair[];
  /** The test photos. */
  test: readonly PhotoPair[];
}

/** Settings of {@linkcode trainLesson}: the protocol and what to report. */
export interface TrainLessonOptions extends Protocol {
  /** Seed of the weights and of the minibatch order. @default {0} */
  seed?: number;
  /** Seed and counts of the synthetic set. @default {the data folder's: seed 1, 8 + 3 per species} */
  synthetic?: { seed?: number; trainPerClass?: number; testPerClass?: number };
  /** Other photos to train and test on (the Imori photos, a dropped folder); `synthetic` is
   * then unused. @default {the synthetic newts} */
  data?: LessonData;
  /** Predict the test photos every this many iterations (0: never). @default {0} */
  every?: number;
  /** Stops training after the current iteration. @default {never} */
  signal?: AbortSignal;
  /** Called with each iteration's report; training waits for it. @default {nothing} */
  onIteration?: (report: IterationReport) => Promise<void> | void;
  /** Called with the test photos' predictions before training and every `every` iterations.
   * @default {nothing} */
  onPredictions?: (pictures: PredictionPictures) => void;
}

/** A checkpoint's files, as `checkpoints/<name>/` holds them. */
export interface CheckpointFiles {
  /** `model.json`: topology and weights manifest (`weights.bin`). */
  modelJson: string;
  /** `weights.bin`. */
  weights: Uint8Array;
  /** `training_state.json`. */
  trainingState: string;
}

/** What {@linkcode trainLesson} returns; the caller disposes the model. */
export interface TrainedLesson {
  /** The trained network. */
  model: tf.LayersModel;
  /** The network's layer table with output shapes, as the Deno scripts print it. */
  summary: string;
  /** Loss of each iteration. */
  losses: number[];
  /** Iterations done (fewer than asked when stopped). */
  iteration: number;
  /** Mean milliseconds per iteration, the first 5 left out. */
  msPerIter: number;
  /** The test metrics. */
  metrics: Metrics;
  /** The test line, as the Deno scripts print it. */
  line: string;
  /** The checkpoint's files. */
  checkpoint: CheckpointFiles;
}

/**
 * The training and test splits at a size, as the dataset reader makes them
 * from files (the training photos with their flips).
 *
 * @param lesson The exercise: its colour rule.
 * @param size Input height and width.
 * @param data The photos; the synthetic newts of the data folder's seed when absent.
 * @returns Both splits; the caller disposes their tensors.
 * @throws {UserError} For a mask of another size than its photo or with a colour that is no
 *   class, or a training split with no newt pixel, naming the file.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { lessonSplits, syntheticData } from "./training.ts";
 * import { lessonNamed } from "./lessons.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * const data = syntheticData({ trainPerClass: 1, testPerClass: 1 });
 * const { train, test } = lessonSplits(lessonNamed("nearest"), 8, data);
 * assertEquals([train.images.shape, test.names], [[8, 8, 8, 3], ["akahara_0002", "madara_0002"]]);
 * tf.dispose([train.images, train.masks, test.images, test.masks]);
 * ```
 */
export function lessonSplits(
  lesson: PageLesson,
  size: number,
  data: LessonData = syntheticData(),
): { train: Dataset; test: Dataset } {
  const masksDir = (pairs: readonly PhotoPair[], split: string) => {
    const file = pairs[0]?.maskFile;
    // The split's masks folder, e.g. "synthetic/train/seg_images", as the reader names it
    const at = file?.lastIndexOf(`${split}/seg_images/`) ?? -1;
    return at >= 0 ? file!.slice(0, at + split.length + 11) : `the ${split} masks`;
  };
  const read = (split: "train" | "test") =>
    assembleDataset(data[split], {
      split,
      size,
      mode: lesson.mode,
      flips: split === "train",
      masksDir: masksDir(data[split], split),
    });
  const train = read("train");
  try {
    return { train, test: read("test") };
  } catch (error) {
    tf.dispose([train.images, train.masks]);
    throw error;
  }
}

/**
 * The synthetic newts drawn in memory, as {@linkcode trainLesson} trains on them by default.
 *
 * @param synthetic Seed and counts of the set. @default {the data folder's: seed 1, 8 + 3 per species}
 * @returns The drawn photos and masks of both splits.
 *
 * @example
 * ```ts
 * import { syntheticData } from "./training.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const data = syntheticData({ trainPerClass: 1, testPerClass: 1 });
 * assertEquals([data.train.length, data.test[0]!.name], [2, "akahara_0002"]);
 * ```
 */
export function syntheticData(synthetic: TrainLessonOptions["synthetic"] = {}): LessonData {
  return {
    name: "synthetic (drawn in memory)",
    train: syntheticPairs("train", synthetic),
    test: syntheticPairs("test", synthetic),
  };
}

/**
 * Trains an exercise on photos held in memory (the synthetic newts unless
 * `options.data` gives others) and tests it.
 *
 * @param lesson The exercise (`lessons.ts`).
 * @param options Protocol, seed and reports.
 * @returns The model, the losses, the test metrics and the checkpoint's files.
 * @throws {UserError} For a size the network cannot take, or a run that diverges.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { trainLesson } from "./training.ts";
 * import { lessonNamed } from "./lessons.ts";
 * import { assert, assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * const synthetic = { trainPerClass: 1, testPerClass: 1 };
 * const options = { size: 8, batchSize: 2, iters: 2, lr: 0.01, synthetic };
 * const run = await trainLesson(lessonNamed("nearest"), options);
 * assertEquals(run.losses.length, 2);
 * assert(run.line.startsWith("test mIoU "));
 * assert(JSON.parse(run.checkpoint.trainingState).model === "nearest");
 * run.model.dispose();
 * ```
 */
export async function trainLesson(
  lesson: PageLesson,
  options: TrainLessonOptions,
): Promise<TrainedLesson> {
  const { size, batchSize, iters, lr, seed = 0, every = 0 } = options;
  checkSize(lesson.name, size, lesson.outputSize);
  const data = options.data ?? syntheticData(options.synthetic);
  const { train, test } = lessonSplits(lesson, size, data);
  const model = lesson.build(size, { seed });
  try {
    const summary = modelSummary(model);
    const truth = tf.tidy(() =>
      tf.unstack(test.masks).map((mask) => lesson.paint(mask as tf.Tensor2D))
    );
    const predict = async (iteration: number) => {
      if (options.onPredictions) {
        options.onPredictions(await picturesOf(model, test, truth, lesson, iteration));
      }
    };
    try {
      await predict(0);
      let last = performance.now();
      const result = await trainModel(model, train, {
        iters,
        batchSize,
        lr,
        seed,
        loss: lesson.loss,
        signal: options.signal,
        progress: { total: iters, quiet: true },
        onIteration: async (iteration, loss) => {
          const now = performance.now();
          const numTensors = tf.memory().numTensors;
          await options.onIteration?.({ iteration, loss, ms: now - last, numTensors });
          last = performance.now();
          if (every > 0 && iteration % every === 0 && iteration < iters) await predict(iteration);
        },
      });
      result.optimizer.dispose();
      if (result.losses.length > 0) recomputeBatchNormStats(model, train.images, batchSize);
      await predict(result.iteration);
      const evaluation = await evaluateModel(model, test.images, test.masks, {
        classify: lesson.classify,
        classNames: test.classNames,
      });
      tf.dispose([evaluation.probabilities, evaluation.classMap, evaluation.truth]);
      const state = {
        iteration: result.iteration,
        model: lesson.network,
        size,
        classes: model.outputs[0]!.shape[3] ?? 1,
        optimizer: "sgd",
        settings: {
          lr,
          batchSize,
          seed,
          schedule: "constant",
          loss: "ce",
          iters,
          data: data.name,
        },
      };
      return {
        model,
        summary,
        losses: result.losses,
        iteration: result.iteration,
        msPerIter: result.msPerIter,
        metrics: evaluation.metrics,
        line: formatMetricsLine(evaluation.metrics),
        checkpoint: { ...(await checkpointFiles(model)), trainingState: jsonLine(state) },
      };
    } finally {
      tf.dispose(truth);
    }
  } catch (error) {
    model.dispose();
    throw error;
  } finally {
    tf.dispose([train.images, train.masks, test.images, test.masks]);
  }
}

function jsonLine(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

/** `model.json` and `weights.bin` as `saveCheckpoint` (lib/checkpoint.ts) writes them. */
async function checkpointFiles(
  model: tf.LayersModel,
): Promise<Omit<CheckpointFiles, "trainingState">> {
  let files: Omit<CheckpointFiles, "trainingState"> | undefined;
  await model.save(tf.io.withSaveHandler((artifacts) => {
    const data = artifacts.weightData;
    const buffers = data === undefined ? [] : Array.isArray(data) ? data : [data];
    const weights = new Uint8Array(buffers.reduce((sum, buffer) => sum + buffer.byteLength, 0));
    let offset = 0;
    for (const buffer of buffers) {
      weights.set(new Uint8Array(buffer), offset);
      offset += buffer.byteLength;
    }
    const modelJson = {
      modelTopology: artifacts.modelTopology,
      format: artifacts.format ?? "layers-model",
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
      weightsManifest: [{ paths: ["weights.bin"], weights: artifacts.weightSpecs ?? [] }],
    };
    files = { modelJson: JSON.stringify(modelJson), weights };
    return Promise.resolve({ modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) });
  }));
  return files!;
}

/** The photos, their painted truth and the painted prediction, as RGBA bytes. */
async function picturesOf(
  model: tf.LayersModel,
  test: Dataset,
  truth: tf.Tensor3D[],
  lesson: PageLesson,
  iteration: number,
): Promise<PredictionPictures> {
  const [photos, painted, size] = tf.tidy(() => {
    const probabilities = model.predict(test.images) as tf.Tensor4D;
    const classMap = lesson.classify(probabilities); // [n, out, out]
    const out = classMap.shape[1];
    const pictures = tf.unstack(classMap).map((map) => lesson.paint(map as tf.Tensor2D));
    // The photos at the output size (the same size for every network in the page)
    const photos = tf.image.resizeBilinear(test.images, [out, out]);
    return [tf.unstack(photos) as tf.Tensor3D[], pictures, out] as const;
  });
  // RGB, or grey (one channel: bin_loss paints newts white), to RGBA bytes
  const rgba = async (picture: tf.Tensor3D) => {
    const values = await picture.data(); // not dataSync: webgpu reads asynchronously
    const channels = picture.shape[2];
    const pixels = values.length / channels;
    const bytes = new Uint8ClampedArray(pixels * 4);
    for (let pixel = 0; pixel < pixels; pixel++) {
      for (let channel = 0; channel < 3; channel++) {
        const value = values[channels * pixel + (channels === 1 ? 0 : channel)]!;
        bytes[4 * pixel + channel] = Math.round(value * 255);
      }
      bytes[4 * pixel + 3] = 255;
    }
    return bytes;
  };
  try {
    return {
      iteration,
      size,
      photos: await Promise.all(test.names.map(async (name, index) => ({
        name,
        photo: await rgba(photos[index]!),
        truth: await rgba(truth[index]!),
        predicted: await rgba(painted[index]!),
      }))),
    };
  } finally {
    tf.dispose([...photos, ...painted]);
  }
}
