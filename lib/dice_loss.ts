/**
 * The soft Dice loss (Milletari et al., V-Net, 2016), an overlap loss that
 * the tuned recipes may add to the cross-entropy: per class, twice the soft
 * intersection of the predicted probabilities with the one-hot mask over the
 * sum of both, over the whole minibatch; the loss is one minus its mean over
 * the classes. Every class counts the same however few pixels it has, as in
 * the test's mean IoU, where the cross-entropy weighs every pixel the same
 * and so lets the large background class dominate.
 *
 * Built from differentiable tfjs ops, so its gradient is autodiff's; the
 * tests check it against finite differences.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** Added to the numerator and denominator, so an absent class scores 1, not 0/0. */
export const DICE_SMOOTHING = 1;

/**
 * Soft Dice loss from the logits: softmax over the classes, or for one
 * channel the sigmoid as the probability of class 1 beside `1 - p` for
 * class 0.
 *
 * `1 - mean_c (2 sum(p_c y_c) + s) / (sum(p_c) + sum(y_c) + s)`, sums over
 * every pixel of every image of the minibatch, `s` = {@linkcode DICE_SMOOTHING}.
 *
 * @param logits Shape [batch, height, width, classes], before the activation.
 * @param masks Shape [batch, height, width], class indices, at the logits' size.
 * @returns Scalar loss in [0, 1): near 0 when every pixel is confidently right.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { softDiceLossFromLogits } from "./dice_loss.ts";
 * import { assertAlmostEquals } from "./assert.ts";
 * // Two pixels, confidently right: class 0 then class 1.
 * const logits = tf.tensor4d([50, -50, -50, 50], [1, 1, 2, 2]);
 * const masks = tf.tensor3d([[[0, 1]]], undefined, "int32");
 * assertAlmostEquals(softDiceLossFromLogits(logits, masks).dataSync()[0]!, 0, 1e-6);
 * ```
 */
export function softDiceLossFromLogits(logits: tf.Tensor4D, masks: tf.Tensor3D): tf.Scalar {
  return tf.tidy(() => {
    const channels = logits.shape[3];
    const probabilities = channels === 1
      ? tf.concat([tf.sigmoid(tf.neg(logits)), tf.sigmoid(logits)], 3) // [1 - p, p]
      : tf.softmax(logits);
    const classes = Math.max(channels, 2);
    const flat = tf.reshape(probabilities, [-1, classes]); // [pixels, classes]
    const target = tf.oneHot(tf.reshape(masks, [-1]), classes); // [pixels, classes]
    const intersection = tf.sum(tf.mul(flat, target), 0); // [classes]
    const total = tf.add(tf.sum(flat, 0), tf.sum(target, 0)); // [classes]
    const dice = tf.div(
      tf.add(tf.mul(intersection, 2), DICE_SMOOTHING),
      tf.add(total, DICE_SMOOTHING),
    );
    return tf.sub(1, tf.mean(dice)) as tf.Scalar;
  });
}
