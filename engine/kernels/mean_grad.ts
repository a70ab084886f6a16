/**
 * A replacement for tfjs-core's gradient of `Mean`, which multiplies the
 * incoming gradient by a freshly made tensor of ones of the input's full
 * shape and then divides it (three full-size passes, and the ones are made in
 * JavaScript and copied in). This one divides the small gradient first and
 * tiles it: one full-size pass. Batch norm in training mode takes two means
 * per layer (`tf.moments`), so every training step runs this twice per layer.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { GradConfig, NamedAttrMap, Tensor } from "@tensorflow/tfjs-core";

/**
 * The gradient config to register with `tf.registerGradient`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { meanGradConfig } from "./mean_grad.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("cpu");
 * tf.registerGradient(meanGradConfig);
 * const grad = tf.grad((x: tf.Tensor) => tf.mean(x, 0));
 * assertEquals(Array.from(grad(tf.ones([4, 2])).dataSync()), [0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25]);
 * ```
 */
export const meanGradConfig: GradConfig = {
  kernelName: "Mean",
  inputsToSave: ["x"],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x] = saved as [Tensor];
    const { axis } = attrs as { axis: number | number[] };
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const expanded = x.shape.map((size, index) => (axes.includes(index) ? 1 : size));
    const reps = x.shape.map((size, index) => (axes.includes(index) ? size : 1));
    const count = axes.reduce((product, index) => product * x.shape[index]!, 1);
    return {
      x: () => tf.tile(tf.div(tf.reshape(dy as Tensor, expanded), count), reps),
    };
  },
};
