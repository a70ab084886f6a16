/**
 * Test-set evaluation: predictions in batches (batch norm with its moving
 * statistics), class maps by the exercise's rule (`threshold` of
 * `exercises/bin_test.ts`, `argmaxClasses` of `exercises/semaseg_test.ts`,
 * handed in as {@linkcode Classify}), the confusion matrix, mIoU and pixel
 * accuracy, and the one metrics line every testing script prints.
 *
 * mIoU is the mean over classes of the IoU pooled over all test pixels at
 * the model's output resolution, skipping a class absent from both the
 * prediction and the truth. For a one-channel (sigmoid) model the classes
 * are background and newt.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { classesOf } from "./classes.js";
import { predictViewsAveraged } from "./flip_average.ts";
import { cropMasks } from "./losses.ts";

/**
 * Runs a model on images in batches with `model.predict` (inference mode).
 *
 * @param model A segmentation model.
 * @param images Shape [n, height, width, 3], values in [0, 1].
 * @param batchSize Images per call.
 * @param predict The prediction of one batch; default `model.predict`.
 * @returns Shape [n, outHeight, outWidth, classes], probabilities; the caller disposes it.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { predictBatches } from "./evaluate.ts";
 * import { assertEquals } from "./assert.ts";
 * const input = tf.input({ shape: [2, 2, 3] });
 * const output = tf.layers.conv2d({ filters: 3, kernelSize: 1, activation: "softmax" }).apply(input);
 * const model = tf.model({ inputs: input, outputs: output as tf.SymbolicTensor });
 * const probabilities = predictBatches(model, tf.zeros([5, 2, 2, 3]), 2);
 * assertEquals(probabilities.shape, [5, 2, 2, 3]);
 * ```
 */
export function predictBatches(
  model: tf.LayersModel,
  images: tf.Tensor4D,
  batchSize = 8,
  predict: (batch: tf.Tensor4D) => tf.Tensor4D = (batch) => model.predict(batch) as tf.Tensor4D,
): tf.Tensor4D {
  return tf.tidy(() => {
    const count = images.shape[0];
    const parts: tf.Tensor4D[] = [];
    for (let start = 0; start < count; start += batchSize) {
      const size = Math.min(batchSize, count - start);
      const batch = tf.slice(images, [start, 0, 0, 0], [size, -1, -1, -1]);
      parts.push(predict(batch));
    }
    return tf.concat(parts, 0); // [n, outHeight, outWidth, classes]
  });
}

/**
 * Counts pixels by true class (row) and predicted class (column).
 *
 * @param predicted Shape [n, height, width], class indices.
 * @param truth Shape [n, height, width], class indices.
 * @param classes Number of classes.
 * @returns A `classes` x `classes` matrix of pixel counts.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { confusionMatrix } from "./evaluate.ts";
 * import { assertEquals } from "./assert.ts";
 * const predicted = tf.tensor3d([[[0, 1, 1]]], undefined, "int32");
 * const truth = tf.tensor3d([[[0, 0, 1]]], undefined, "int32");
 * assertEquals(await confusionMatrix(predicted, truth, 2), [[1, 1], [0, 1]]);
 * ```
 */
export async function confusionMatrix(
  predicted: tf.Tensor3D,
  truth: tf.Tensor3D,
  classes: number,
): Promise<number[][]> {
  if (predicted.shape.join() !== truth.shape.join()) {
    throw new Error(
      `Cannot compare a prediction of shape [${predicted.shape}] with masks of shape [${truth.shape}]`,
    );
  }
  // data(), not dataSync(): webgpu cannot read synchronously under Deno.
  const [predictedValues, truthValues] = await Promise.all([predicted.data(), truth.data()]);
  const matrix = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let index = 0; index < truthValues.length; index++) {
    const row = matrix[truthValues[index]!];
    const column = predictedValues[index]!;
    if (row === undefined || column >= classes || column < 0) {
      throw new Error(
        `Class index ${truthValues[index]} or ${column} is outside 0..${classes - 1}`,
      );
    }
    row[column]! += 1;
  }
  return matrix;
}

/** Test-set metrics. */
export interface Metrics {
  /** Mean IoU over the classes present in the prediction or the truth. */
  miou: number;
  /** IoU per class; `null` for a class absent from both. */
  iou: (number | null)[];
  /** Share of pixels whose class is right. */
  pixelAccuracy: number;
  /** Name of each class, in index order. */
  classNames: string[];
}

/**
 * Computes IoU per class, mIoU and pixel accuracy from a confusion matrix.
 *
 * @param confusion Rows true class, columns predicted class.
 * @param classNames Name of each class.
 * @returns The metrics.
 *
 * @example
 * ```ts
 * import { metricsFromConfusion } from "./evaluate.ts";
 * import { assertAlmostEquals } from "./assert.ts";
 * const metrics = metricsFromConfusion([[1, 1], [0, 1]], ["background", "newt"]);
 * assertAlmostEquals(metrics.miou, 0.5);
 * assertAlmostEquals(metrics.pixelAccuracy, 2 / 3);
 * ```
 */
export function metricsFromConfusion(confusion: number[][], classNames: string[]): Metrics {
  const classes = confusion.length;
  if (classNames.length !== classes) {
    throw new Error(`Expected ${classes} class names, got ${classNames.length}`);
  }
  let correct = 0;
  let total = 0;
  const iou: (number | null)[] = [];
  for (let cls = 0; cls < classes; cls++) {
    const row = confusion[cls]!;
    const truePositive = row[cls]!;
    const inTruth = row.reduce((sum, value) => sum + value, 0);
    const inPrediction = confusion.reduce((sum, other) => sum + other[cls]!, 0);
    const union = inTruth + inPrediction - truePositive;
    iou.push(union === 0 ? null : truePositive / union);
    correct += truePositive;
    total += inTruth;
  }
  const present = iou.filter((value): value is number => value !== null);
  return {
    miou: present.length ? present.reduce((sum, value) => sum + value, 0) / present.length : 0,
    iou,
    pixelAccuracy: total ? correct / total : 0,
    classNames,
  };
}

/**
 * Formats the metrics line that every testing script prints last, e.g.
 * `test mIoU 0.712 (background 0.80, akahara 0.70, madara 0.64) pixel accuracy 0.861`.
 *
 * @param metrics Metrics from {@linkcode metricsFromConfusion}.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { formatMetricsLine } from "./evaluate.ts";
 * import { assertEquals } from "./assert.ts";
 * const line = formatMetricsLine({
 *   miou: 0.7123, iou: [0.8, null], pixelAccuracy: 0.8614, classNames: ["background", "newt"],
 * });
 * assertEquals(line, "test mIoU 0.712 (background 0.80, newt n/a) pixel accuracy 0.861");
 * ```
 */
export function formatMetricsLine(metrics: Metrics): string {
  const perClass = metrics.classNames.map((name, index) => {
    const value = metrics.iou[index];
    return `${name} ${value === null || value === undefined ? "n/a" : value.toFixed(2)}`;
  });
  return `test mIoU ${metrics.miou.toFixed(3)} (${perClass.join(", ")}) ` +
    `pixel accuracy ${metrics.pixelAccuracy.toFixed(3)}`;
}

/** An exercise's rule from probabilities `[n, h, w, classes]` to class indices `[n, h, w]`. */
export type Classify = (probabilities: tf.Tensor4D) => tf.Tensor3D;

/** Settings of {@linkcode evaluateModel}. */
export interface EvaluateOptions {
  /** Probabilities to classes: the lesson of bin_test (threshold) or semaseg_test (argmax). */
  classify: Classify;
  /** Class names in index order; two (background and newt) for a one-channel model.
   * @default {["background", "newt"] or ["background", "akahara", "madara"]} */
  classNames?: string[];
  /** Images per `model.predict` call.
   * @default {8} */
  batchSize?: number;
  /** Average the prediction over the 8 flips and quarter-turns of each image.
   * @default {false} */
  flipAverage?: boolean;
}

/** What {@linkcode evaluateModel} returns; the caller disposes the tensors. */
export interface Evaluation {
  /** The metrics. */
  metrics: Metrics;
  /** Shape [n, outHeight, outWidth, classes], the model's probabilities. */
  probabilities: tf.Tensor4D;
  /** Shape [n, outHeight, outWidth], the predicted classes. */
  classMap: tf.Tensor3D;
  /** Shape [n, outHeight, outWidth], the true classes at the output size. */
  truth: tf.Tensor3D;
}

/**
 * Predicts the test images and scores the prediction against their masks
 * (centre-cropped to the output size when the output is smaller).
 *
 * @param model A segmentation model.
 * @param images Shape [n, height, width, 3], values in [0, 1].
 * @param masks Shape [n, height, width], class indices.
 * @param options The exercise's classify rule, class names, batch size.
 * @returns Metrics and the tensors behind them (dispose them).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { evaluateModel } from "./evaluate.ts";
 * import { assertEquals } from "./assert.ts";
 * const input = tf.input({ shape: [2, 2, 3] });
 * const output = tf.layers.conv2d({ filters: 1, kernelSize: 1, activation: "sigmoid", kernelInitializer: "zeros", biasInitializer: "ones" }).apply(input);
 * const model = tf.model({ inputs: input, outputs: output as tf.SymbolicTensor });
 * const masks = tf.tensor3d([[[1, 1], [1, 0]]], undefined, "int32");
 * const threshold = (p: tf.Tensor4D) => tf.cast(tf.greaterEqual(tf.squeeze(p, [3]), 0.5), "int32") as tf.Tensor3D;
 * const result = await evaluateModel(model, tf.zeros([1, 2, 2, 3]), masks, { classify: threshold });
 * assertEquals(result.metrics.pixelAccuracy, 0.75);
 * tf.dispose([result.probabilities, result.classMap, result.truth]);
 * ```
 */
export async function evaluateModel(
  model: tf.LayersModel,
  images: tf.Tensor4D,
  masks: tf.Tensor3D,
  options: EvaluateOptions,
): Promise<Evaluation> {
  const probabilities = predictBatches(
    model,
    images,
    options.batchSize ?? 8,
    options.flipAverage ? (batch) => predictViewsAveraged(model, batch) : undefined,
  );
  const [, height, width, channels] = probabilities.shape;
  const classNames = options.classNames ?? [...classesOf(channels).names];
  const classMap = tf.tidy(() => options.classify(probabilities));
  const truth = cropMasks(masks, height, width);
  const confusion = await confusionMatrix(classMap, truth, Math.max(channels, 2));
  return {
    metrics: metricsFromConfusion(confusion, classNames),
    probabilities,
    classMap,
    truth,
  };
}
