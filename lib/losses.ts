/**
 * What the training machinery knows of losses. The losses themselves are
 * lessons and live in their exercises: `binLoss` (binary cross-entropy) in
 * `exercises/bin_loss.ts`, `semasegLoss` (softmax cross-entropy per pixel) in
 * `exercises/semaseg_loss.ts`; an exercise hands its loss to the training
 * step. Here: the type of such a loss, the `--loss` choice that adds the soft
 * Dice loss to it, and the one rule that brings masks to the output size when
 * a network's output is smaller than its input (the paper's UNet).
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

/**
 * A loss on the logits, as an exercise writes it: logits `[batch, h, w, classes]`
 * (before the sigmoid or softmax) and masks `[batch, h, w]` of class indices,
 * already cropped to the logits' size, to a scalar.
 */
export type LogitsLoss = (logits: tf.Tensor4D, masks: tf.Tensor3D) => tf.Scalar;

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
 * The training loss `--loss` names, made from an exercise's cross-entropy:
 * `ce` is that loss as it is, `ce+dice` adds the soft Dice loss of
 * {@linkcode softDiceLossFromLogits}, which weighs each class the same.
 *
 * @param crossEntropy The exercise's loss on the logits, e.g. `semasegLoss`.
 * @param name Which loss.
 * @returns The loss to train on.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { chooseLoss } from "./losses.ts";
 * import { assertAlmostEquals } from "./assert.ts";
 * const crossEntropy = (logits: tf.Tensor4D) => tf.mean(logits) as tf.Scalar;
 * const masks = tf.tensor3d([[[0, 1]]], undefined, "int32");
 * const logits = tf.tensor4d([0, 0, 0, 0], [1, 1, 2, 2]);
 * assertAlmostEquals(chooseLoss(crossEntropy, "ce")(logits, masks).dataSync()[0]!, 0);
 * assertAlmostEquals(chooseLoss(crossEntropy, "ce+dice")(logits, masks).dataSync()[0]!, 1 / 3, 1e-4); // Dice 1 - 2/3
 * ```
 */
export function chooseLoss(crossEntropy: LogitsLoss, name: LossName): LogitsLoss {
  if (name === "ce") return crossEntropy;
  return (logits, masks) =>
    tf.tidy(() =>
      tf.add(crossEntropy(logits, masks), softDiceLossFromLogits(logits, masks)) as tf.Scalar
    );
}
