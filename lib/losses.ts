/**
 * Per-pixel losses of the tutorial, computed on the network's probabilities:
 * binary cross-entropy for a one-channel sigmoid output, and softmax
 * cross-entropy over `[batch * height * width, classes]` for a softmax
 * output. Training computes the same two losses from the logits before the
 * sigmoid or softmax (as PyTorch's `BCEWithLogitsLoss` and `CrossEntropyLoss`
 * do), so a confidently wrong pixel still gets its gradient instead of being
 * clipped away. Also the one rule that brings masks to the output size when a
 * network's output is smaller than its input (the paper's UNet).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { softDiceLossFromLogits } from "./dice_loss.ts";

/**
 * The training losses a run can choose: the cross-entropy alone (the
 * tutorial's), or the cross-entropy plus the soft Dice loss of
 * {@linkcode softDiceLossFromLogits}.
 */
export type LossName = "ce" | "ce+dice";

/** The loss names, for a flag's choices. */
export const LOSSES: readonly LossName[] = ["ce", "ce+dice"];

/** Probabilities are clipped to [EPSILON, 1 - EPSILON] before the log. */
export const EPSILON = 1e-7;

/**
 * Centre-crops masks to a smaller height and width; masks already at that
 * size are returned as they are (a new reference the caller may dispose).
 *
 * @param masks Shape [batch, height, width], class indices.
 * @param height Output height, at most the masks' height.
 * @param width Output width, at most the masks' width.
 * @returns Shape [batch, height, width], the centre of each mask.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { cropMasks } from "./losses.ts";
 * import { assertEquals } from "./assert.ts";
 * const masks = tf.tensor3d([[[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0], [0, 0, 0, 0]]], undefined, "int32");
 * assertEquals(cropMasks(masks, 2, 2).arraySync(), [[[1, 2], [3, 4]]]);
 * ```
 */
export function cropMasks(masks: tf.Tensor3D, height: number, width: number): tf.Tensor3D {
  const [batch, maskHeight, maskWidth] = masks.shape;
  if (height > maskHeight || width > maskWidth) {
    throw new Error(
      `Cannot crop masks of ${maskHeight}x${maskWidth} to a larger ${height}x${width}`,
    );
  }
  if (height === maskHeight && width === maskWidth) {
    return masks.clone();
  }
  const top = Math.floor((maskHeight - height) / 2);
  const left = Math.floor((maskWidth - width) / 2);
  return tf.slice(masks, [0, top, left], [batch, height, width]); // [batch, height, width]
}

/**
 * Binary cross-entropy per pixel, averaged: `-mean(t log p + (1 - t) log(1 - p))`.
 *
 * @param probabilities Shape [batch, height, width, 1], sigmoid output.
 * @param masks Shape [batch, height, width], 0 or 1.
 * @returns Scalar loss.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { binaryCrossEntropy } from "./losses.ts";
 * import { assertAlmostEquals } from "./assert.ts";
 * const probabilities = tf.tensor4d([0.5, 0.5], [1, 1, 2, 1]);
 * const masks = tf.tensor3d([[[0, 1]]], undefined, "int32");
 * assertAlmostEquals(binaryCrossEntropy(probabilities, masks).dataSync()[0]!, Math.log(2), 1e-5);
 * ```
 */
export function binaryCrossEntropy(probabilities: tf.Tensor4D, masks: tf.Tensor3D): tf.Scalar {
  return tf.tidy(() => {
    const probability = tf.clipByValue(tf.squeeze(probabilities, [3]), EPSILON, 1 - EPSILON); // [batch, height, width]
    const target = tf.cast(masks, "float32");
    const positive = tf.mul(target, tf.log(probability));
    const negative = tf.mul(tf.sub(1, target), tf.log(tf.sub(1, probability)));
    return tf.neg(tf.mean(tf.add(positive, negative)));
  });
}

/**
 * Softmax cross-entropy per pixel, as the tutorial teaches it: reshape the
 * probabilities to `[batch * height * width, classes]`, clip, take the log,
 * and average `-sum(onehot * log p)` over all pixels.
 *
 * @param probabilities Shape [batch, height, width, classes], softmax output.
 * @param masks Shape [batch, height, width], class indices.
 * @returns Scalar loss.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { softmaxCrossEntropy } from "./losses.ts";
 * import { assertAlmostEquals } from "./assert.ts";
 * const probabilities = tf.tensor4d([0.25, 0.25, 0.5], [1, 1, 1, 3]);
 * const masks = tf.tensor3d([[[2]]], undefined, "int32");
 * assertAlmostEquals(softmaxCrossEntropy(probabilities, masks).dataSync()[0]!, Math.log(2), 1e-5);
 * ```
 */
export function softmaxCrossEntropy(probabilities: tf.Tensor4D, masks: tf.Tensor3D): tf.Scalar {
  return tf.tidy(() => {
    const classes = probabilities.shape[3];
    const flat = tf.reshape(probabilities, [-1, classes]); // [batch * height * width, classes]
    const logProbability = tf.log(tf.clipByValue(flat, EPSILON, 1));
    const target = tf.oneHot(tf.reshape(masks, [-1]), classes); // [batch * height * width, classes]
    return tf.neg(tf.mean(tf.sum(tf.mul(target, logProbability), 1)));
  });
}

/**
 * The loss of a segmentation network, chosen by its output channels (1:
 * binary cross-entropy, more: softmax cross-entropy), with the masks
 * centre-cropped to the output size when the output is smaller.
 *
 * @param probabilities Shape [batch, outHeight, outWidth, classes].
 * @param masks Shape [batch, height, width], class indices, height >= outHeight.
 * @returns Scalar loss.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { segmentationLoss } from "./losses.ts";
 * import { assertAlmostEquals } from "./assert.ts";
 * const probabilities = tf.tensor4d([0.5], [1, 1, 1, 1]);
 * const masks = tf.tensor3d([[[0, 0, 0], [0, 1, 0], [0, 0, 0]]], undefined, "int32");
 * assertAlmostEquals(segmentationLoss(probabilities, masks).dataSync()[0]!, Math.log(2), 1e-5);
 * ```
 */
export function segmentationLoss(probabilities: tf.Tensor4D, masks: tf.Tensor3D): tf.Scalar {
  return tf.tidy(() => {
    const [, height, width, classes] = probabilities.shape;
    const target = cropMasks(masks, height, width);
    return classes === 1
      ? binaryCrossEntropy(probabilities, target)
      : softmaxCrossEntropy(probabilities, target);
  });
}

/**
 * Binary cross-entropy computed from the logit `z` before the sigmoid, in the
 * stable form `max(z, 0) - z t + log(1 + exp(-|z|))`: the same value as
 * {@linkcode binaryCrossEntropy} on `sigmoid(z)`, with no clipping, so the
 * gradient `sigmoid(z) - t` is exact for every pixel.
 *
 * @param logits Shape [batch, height, width, 1], before the sigmoid.
 * @param masks Shape [batch, height, width], 0 or 1.
 * @returns Scalar loss.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { binaryCrossEntropyFromLogits } from "./losses.ts";
 * import { assertAlmostEquals } from "./assert.ts";
 * const logits = tf.tensor4d([0, -200], [1, 1, 2, 1]);
 * const masks = tf.tensor3d([[[0, 1]]], undefined, "int32");
 * assertAlmostEquals(binaryCrossEntropyFromLogits(logits, masks).dataSync()[0]!, (Math.log(2) + 200) / 2, 1e-3);
 * ```
 */
export function binaryCrossEntropyFromLogits(logits: tf.Tensor4D, masks: tf.Tensor3D): tf.Scalar {
  return tf.tidy(() => {
    const target = tf.expandDims(tf.cast(masks, "float32"), 3); // [batch, height, width, 1]
    // relu(z) - z * t + log1p(exp(-|z|)), averaged over every pixel.
    return tf.losses.sigmoidCrossEntropy(target, logits) as tf.Scalar;
  });
}

/**
 * Softmax cross-entropy computed from the logits before the softmax: reshape
 * to `[batch * height * width, classes]`, take the log-softmax, and average
 * `-sum(onehot * log p)`. The same value as {@linkcode softmaxCrossEntropy}
 * on `softmax(logits)`, with no clipping, so the gradient `p - onehot` is
 * exact for every pixel.
 *
 * @param logits Shape [batch, height, width, classes], before the softmax.
 * @param masks Shape [batch, height, width], class indices.
 * @returns Scalar loss.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { softmaxCrossEntropyFromLogits } from "./losses.ts";
 * import { assertAlmostEquals } from "./assert.ts";
 * const logits = tf.tensor4d([0, 0, 300], [1, 1, 1, 3]);
 * const masks = tf.tensor3d([[[0]]], undefined, "int32");
 * assertAlmostEquals(softmaxCrossEntropyFromLogits(logits, masks).dataSync()[0]!, 300, 1e-3);
 * ```
 */
export function softmaxCrossEntropyFromLogits(logits: tf.Tensor4D, masks: tf.Tensor3D): tf.Scalar {
  return tf.tidy(() => {
    const classes = logits.shape[3];
    const flat = tf.reshape(logits, [-1, classes]); // [batch * height * width, classes]
    const target = tf.oneHot(tf.reshape(masks, [-1]), classes); // [batch * height * width, classes]
    // -sum(onehot * logSoftmax(z)) per row, averaged over the rows.
    return tf.losses.softmaxCrossEntropy(tf.cast(target, "float32"), flat) as tf.Scalar;
  });
}

/**
 * {@linkcode segmentationLoss} computed from the logits before the head's
 * activation: binary cross-entropy for one channel, softmax cross-entropy for
 * more, masks centre-cropped to the output size; with `ce+dice` the soft Dice
 * loss is added.
 *
 * @param logits Shape [batch, outHeight, outWidth, classes], before the activation.
 * @param masks Shape [batch, height, width], class indices, height >= outHeight.
 * @param loss Which loss.
 * @returns Scalar loss.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { segmentationLossFromLogits } from "./losses.ts";
 * import { assertAlmostEquals } from "./assert.ts";
 * const logits = tf.tensor4d([0], [1, 1, 1, 1]);
 * const masks = tf.tensor3d([[[0, 0, 0], [0, 1, 0], [0, 0, 0]]], undefined, "int32");
 * assertAlmostEquals(segmentationLossFromLogits(logits, masks).dataSync()[0]!, Math.log(2), 1e-5);
 * ```
 */
export function segmentationLossFromLogits(
  logits: tf.Tensor4D,
  masks: tf.Tensor3D,
  loss: LossName = "ce",
): tf.Scalar {
  return tf.tidy(() => {
    const [, height, width, classes] = logits.shape;
    const target = cropMasks(masks, height, width);
    const crossEntropy = classes === 1
      ? binaryCrossEntropyFromLogits(logits, target)
      : softmaxCrossEntropyFromLogits(logits, target);
    return loss === "ce+dice"
      ? tf.add(crossEntropy, softDiceLossFromLogits(logits, target)) as tf.Scalar
      : crossEntropy;
  });
}
