/**
 * The exercises' lessons chosen by a model's output channels, for tests that
 * train or evaluate small models of either kind: `binLoss` and `threshold`
 * for one channel, `semasegLoss` and `argmaxClasses` for several.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { binLoss } from "../exercises/bin_loss.ts";
import { threshold } from "../exercises/bin_test.ts";
import { semasegLoss } from "../exercises/semaseg_loss.ts";
import { argmaxClasses } from "../exercises/semaseg_test.ts";

/** The cross-entropy of the exercises, by the logits' channels. */
export function crossEntropy(logits: tf.Tensor4D, masks: tf.Tensor3D): tf.Scalar {
  return logits.shape[3] === 1 ? binLoss(logits, masks) : semasegLoss(logits, masks);
}

/** Probabilities to classes as the test exercises do it, by the channels. */
export function classify(probabilities: tf.Tensor4D): tf.Tensor3D {
  return probabilities.shape[3] === 1 ? threshold(probabilities) : argmaxClasses(probabilities);
}
