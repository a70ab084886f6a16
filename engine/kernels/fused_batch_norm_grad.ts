/**
 * A replacement for tfjs-core's gradient of `FusedBatchNorm` that broadcasts
 * per-channel factors instead of tiling them to the input's full shape (the
 * core gradient's `tile` was the slowest kernel of a training step on wasm),
 * and reduces each full-size product once.
 *
 * With `y = (x - mean) * invStd * scale + offset`, `invStd = 1 / sqrt(var + eps)`
 * and sums over all axes but the channel axis:
 * - `dx = dy * scale * invStd`
 * - `dmean = -sum(dy) * scale * invStd`
 * - `dvar = -0.5 * scale * invStd^3 * sum(dy * (x - mean))`
 * - `dscale = invStd * sum(dy * (x - mean))`, `doffset = sum(dy)`
 *
 * where `sum(dy * (x - mean)) = sum(dy * x) - mean * sum(dy)`. Per-channel
 * statistics of rank 1 (what `tf.layers.batchNormalization` passes) take this
 * path; other shapes are handled by broadcasting and reducing to each input's
 * shape.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { GradConfig, NamedAttrMap, Tensor } from "@tensorflow/tfjs-core";

/**
 * Sums `t` over the axes along which `shape` was broadcast to `t.shape`.
 *
 * @param t A tensor of the broadcast shape.
 * @param shape The shape to reduce to.
 * @returns `t` reduced and reshaped to `shape`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { reduceToShape } from "./fused_batch_norm_grad.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("cpu");
 * const reduced = reduceToShape(tf.ones([2, 3]), [3]);
 * assertEquals(Array.from(reduced.dataSync()), [2, 2, 2]);
 * ```
 */
export function reduceToShape(t: Tensor, shape: readonly number[]): Tensor {
  const axes: number[] = [];
  const offset = t.rank - shape.length;
  for (let axis = 0; axis < t.rank; axis++) {
    const target = axis < offset ? 1 : shape[axis - offset]!;
    if (target === 1 && t.shape[axis] !== 1) axes.push(axis);
  }
  const reduced = axes.length > 0 ? tf.sum(t, axes) : t;
  return tf.reshape(reduced, [...shape]);
}

/**
 * The gradient config to register with `tf.registerGradient`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { fusedBatchNormGradConfig } from "./fused_batch_norm_grad.ts";
 * import { assertAlmostEquals } from "../assert.ts";
 * await tf.setBackend("cpu");
 * tf.registerGradient(fusedBatchNormGradConfig);
 * const x = tf.tensor2d([[1, 2], [3, 5]]);
 * const grad = tf.grad((x: tf.Tensor) =>
 *   tf.sum(tf.batchNorm(x, tf.tensor1d([2, 3]), tf.tensor1d([1, 4]), tf.zeros([2]), tf.ones([2])))
 * );
 * // The statistics are constants here, so the gradient is 1 / sqrt(variance + 0.001).
 * assertAlmostEquals(grad(x).dataSync()[1]!, 1 / Math.sqrt(4 + 0.001), 1e-6);
 * ```
 */
export const fusedBatchNormGradConfig: GradConfig = {
  kernelName: "FusedBatchNorm",
  inputsToSave: ["x", "mean", "variance", "scale"],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const grad = dy as Tensor;
    const [x, mean, variance, scale] = saved as [Tensor, Tensor, Tensor, Tensor | undefined];
    const epsilon = (attrs as { varianceEpsilon: number }).varianceEpsilon;
    const scaleValue = scale ?? tf.scalar(1);
    const invStd = tf.rsqrt(tf.add(variance, tf.scalar(epsilon)));
    const channelFactor = tf.mul(invStd, scaleValue);
    const perChannel = mean.rank === 1 && variance.rank === 1 &&
      (scale === undefined || scale.rank === 1);
    if (perChannel) {
      const axes = Array.from({ length: x.rank - 1 }, (_, axis) => axis);
      const sumDy = tf.sum(grad, axes);
      const sumDyCentered = tf.sub(tf.sum(tf.mul(grad, x), axes), tf.mul(mean, sumDy));
      return {
        x: () => tf.mul(grad, channelFactor),
        mean: () => tf.reshape(tf.neg(tf.mul(sumDy, channelFactor)), mean.shape),
        variance: () =>
          tf.reshape(
            tf.mul(sumDyCentered, tf.mul(tf.mul(channelFactor, tf.square(invStd)), -0.5)),
            variance.shape,
          ),
        scale: () => tf.reshape(tf.mul(sumDyCentered, invStd), scale?.shape ?? [1]),
        offset: () => tf.reshape(sumDy, mean.shape),
      };
    }
    const centered = tf.sub(x, mean);
    return {
      x: () => reduceToShape(tf.mul(grad, channelFactor), x.shape),
      mean: () => reduceToShape(tf.neg(tf.mul(grad, channelFactor)), mean.shape),
      variance: () =>
        reduceToShape(
          tf.mul(tf.mul(grad, centered), tf.mul(tf.mul(channelFactor, tf.square(invStd)), -0.5)),
          variance.shape,
        ),
      scale: () => reduceToShape(tf.mul(tf.mul(grad, centered), invStd), scale?.shape ?? [1]),
      offset: () => reduceToShape(grad, mean.shape),
    };
  },
};
