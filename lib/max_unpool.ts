/**
 * SegNet's pooling that remembers where each maximum was, and the unpooling
 * that puts values back there: the typed face, for the project's TypeScript,
 * of `custom_layers.js`, which holds the one definition (plain JavaScript, so
 * that a browser page loads the same layers) and explains how they work.
 * Importing this module registers the layers with `@tensorflow/tfjs`.
 *
 * All tensors are NHWC.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { registerCustomLayers } from "./custom_layers.js";

const defined = registerCustomLayers(tf);

/**
 * The one-hot mask of the first maximum in each 2x2 window.
 *
 * Computed with same-shape comparisons only (the wasm backend's broadcasting
 * comparison is slow): the window maximum by max-pooling, spread back to the
 * window; `x >= max` marks every maximum; multiplying by the window priority
 * (4, 3, 2, 1 in row-major order) and keeping the largest picks the first.
 *
 * @param x Shape [batch, height, width, channels]; height and width even.
 * @returns Float mask of the same shape: 1 at one maximum per window, 0 elsewhere.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { maxPoolMask } from "./max_unpool.ts";
 * import { assertEquals } from "./assert.ts";
 * const x = tf.tensor4d([1, 5, 5, 2], [1, 2, 2, 1]);
 * assertEquals(Array.from(maxPoolMask(x).dataSync()), [0, 1, 0, 0]);
 * ```
 */
export const maxPoolMask: (x: tf.Tensor4D) => tf.Tensor4D = defined.maxPoolMask;

/**
 * 2x2 max-pooling with stride 2 that also returns where each maximum was. The
 * gradient of `pooled` reaches `x` only at the mask's position.
 *
 * @param x Shape [batch, height, width, channels]; height and width even.
 * @returns `[pooled, mask]`: pooled has shape [batch, height/2, width/2,
 * channels]; mask is {@linkcode maxPoolMask} of `x`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { maxPoolWithMask } from "./max_unpool.ts";
 * import { assertEquals } from "./assert.ts";
 * const [pooled, mask] = maxPoolWithMask(tf.tensor4d([1, 5, 3, 2], [1, 2, 2, 1]));
 * assertEquals(Array.from(pooled.dataSync()), [5]);
 * assertEquals(Array.from(mask.dataSync()), [0, 1, 0, 0]);
 * ```
 */
export const maxPoolWithMask: (x: tf.Tensor4D) => [tf.Tensor4D, tf.Tensor4D] =
  defined.maxPoolWithMask;

/**
 * Max-unpooling: each value goes back to the position its mask marks in the
 * 2x2 window, zeros elsewhere.
 *
 * @param x Shape [batch, height, width, channels].
 * @param mask Shape [batch, 2*height, 2*width, channels], one 1 per 2x2 window.
 * @returns Shape [batch, 2*height, 2*width, channels].
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { maxUnpool } from "./max_unpool.ts";
 * import { assertEquals } from "./assert.ts";
 * const x = tf.tensor4d([7], [1, 1, 1, 1]);
 * const mask = tf.tensor4d([0, 0, 1, 0], [1, 2, 2, 1]);
 * assertEquals(Array.from(maxUnpool(x, mask).dataSync()), [0, 0, 7, 0]);
 * ```
 */
export const maxUnpool: (x: tf.Tensor4D, mask: tf.Tensor4D) => tf.Tensor4D = defined.maxUnpool;

/**
 * Layer form of {@linkcode maxPoolWithMask}: one input, two outputs
 * `[pooled, mask]`. Registered for serialization as `MaxPoolWithMask`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { MaxPoolWithMask } from "./max_unpool.ts";
 * import { assertEquals } from "./assert.ts";
 * const input = tf.input({ shape: [4, 4, 3] });
 * const [pooled, mask] = new MaxPoolWithMask({}).apply(input) as tf.SymbolicTensor[];
 * assertEquals(pooled!.shape, [null, 2, 2, 3]);
 * assertEquals(mask!.shape, [null, 4, 4, 3]);
 * ```
 */
export const MaxPoolWithMask = defined.MaxPoolWithMask;

/**
 * Layer form of {@linkcode maxUnpool}: inputs `[x, mask]`, output the unpooled
 * map of the mask's shape. Registered for serialization as `MaxUnpool`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { MaxUnpool } from "./max_unpool.ts";
 * import { assertEquals } from "./assert.ts";
 * const x = tf.input({ shape: [2, 2, 3] });
 * const mask = tf.input({ shape: [4, 4, 3] });
 * const y = new MaxUnpool({}).apply([x, mask]) as tf.SymbolicTensor;
 * assertEquals(y.shape, [null, 4, 4, 3]);
 * ```
 */
export const MaxUnpool = defined.MaxUnpool;
