/**
 * SegNet's pooling that remembers where each maximum was, and the unpooling
 * that puts values back there.
 *
 * PyTorch returns argmax indices and scatters with them; tfjs has no gradient
 * for max-pool-with-argmax and the wasm backend has no scatter or
 * `UnsortedSegmentSum`. So the indices are kept as a **one-hot mask** of the
 * input's shape (1 at the first maximum of each 2x2 window in row-major order,
 * 0 elsewhere), and both operations are reshapes and broadcast multiplies:
 *
 * - pooling: the max-pool value, with a gradient that reaches `x` only at
 *   the recorded position (the unpooling of the incoming gradient);
 * - unpooling: `[n, h, 1, w, 1, c] * [n, h, 2, w, 2, c]`, so each value lands
 *   at the recorded position (zeros elsewhere) and its gradient is the sum of
 *   the incoming gradient over the window times the mask, i.e. exactly the
 *   gradient at the recorded position.
 *
 * The mask itself carries no gradient. All tensors are NHWC.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** Window priority: the first position in row-major order wins a tie. */
const PRIORITY = [4, 3, 2, 1];

/**
 * Each window's value copied to its four pixels, by a broadcast multiply
 * (no Tile, no resize kernel).
 */
function spread(pooled: tf.Tensor4D, ones: tf.Tensor): tf.Tensor4D {
  const [batch, height, width, channels] = pooled.shape;
  const values = tf.reshape(pooled, [batch, height, 1, width, 1, channels]);
  return tf.reshape(tf.mul(values, ones), [batch, 2 * height, 2 * width, channels]); // [b, 2h, 2w, c]
}

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
export function maxPoolMask(x: tf.Tensor4D): tf.Tensor4D {
  const [batch, height, width, channels] = x.shape;
  checkEven(height, width);
  const noGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor4D;
    const value = tf.tidy(() => {
      const ones = tf.ones([1, 1, 2, 1, 2, 1]);
      const priority = tf.tensor(PRIORITY, [1, 1, 2, 1, 2, 1]);
      const windowMax = spread(tf.maxPool(input, 2, 2, "valid"), ones);
      const isMax = tf.cast(tf.greaterEqual(input, windowMax), "float32");
      const shape6 = [batch, height / 2, 2, width / 2, 2, channels];
      const ranked = tf.reshape(
        tf.mul(tf.reshape(isMax, shape6), priority),
        x.shape,
      ) as tf.Tensor4D;
      const best = spread(tf.maxPool(ranked, 2, 2, "valid"), ones);
      return tf.cast(tf.greaterEqual(ranked, best), "float32"); // priorities differ: one per window
    });
    return { value, gradFunc: () => tf.zeros(input.shape) };
  });
  return noGradient(x) as tf.Tensor4D;
}

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
export function maxPoolWithMask(x: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
  const mask = maxPoolMask(x);
  const pool = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, windows, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([windows]);
    return {
      value: tf.maxPool(input, 2, 2, "valid"),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const kept = saved[0] as tf.Tensor4D;
        return [maxUnpool(dy as tf.Tensor4D, kept), tf.zeros(kept.shape)];
      },
    };
  });
  return [pool(x, mask) as tf.Tensor4D, mask];
}

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
export function maxUnpool(x: tf.Tensor4D, mask: tf.Tensor4D): tf.Tensor4D {
  const [batch, height, width, channels] = x.shape;
  const expected: [number, number, number, number] = [batch, height * 2, width * 2, channels];
  if (mask.shape.some((size, axis) => size !== expected[axis])) {
    throw new Error(
      `maxUnpool: mask shape [${mask.shape}] does not match values [${x.shape}]; ` +
        `expected [${expected}]`,
    );
  }
  return tf.tidy(() => {
    const values = tf.reshape(x, [batch, height, 1, width, 1, channels]);
    const windows = tf.reshape(mask, [batch, height, 2, width, 2, channels]);
    return tf.reshape(tf.mul(values, windows), expected) as tf.Tensor4D; // [batch, 2h, 2w, c]
  });
}

function checkEven(height: number, width: number): void {
  if (height % 2 !== 0 || width % 2 !== 0) {
    throw new Error(
      `2x2 max-pooling with a mask needs an even height and width, got ${height}x${width}`,
    );
  }
}

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
export class MaxPoolWithMask extends tf.layers.Layer {
  /** Name under which the layer is serialized. */
  static className = "MaxPoolWithMask";

  /** @param args Standard layer arguments (name, ...). */
  constructor(args: ConstructorParameters<typeof tf.layers.Layer>[0]) {
    super(args ?? {});
  }

  /**
   * @param inputShape [batch, height, width, channels].
   * @returns The pooled shape and the mask shape.
   */
  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape[] {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const [batch, height, width, channels] = shape;
    if (height == null || width == null || height % 2 !== 0 || width % 2 !== 0) {
      throw new Error(
        `Layer ${this.name} needs an even height and width, got ${height}x${width}`,
      );
    }
    return [[batch ?? null, height / 2, width / 2, channels ?? null], [...shape]];
  }

  /**
   * @param inputs Shape [batch, height, width, channels].
   * @returns `[pooled, mask]`.
   */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
    return maxPoolWithMask(x);
  }
}

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
export class MaxUnpool extends tf.layers.Layer {
  /** Name under which the layer is serialized. */
  static className = "MaxUnpool";

  /** @param args Standard layer arguments (name, ...). */
  constructor(args: ConstructorParameters<typeof tf.layers.Layer>[0]) {
    super(args ?? {});
  }

  /**
   * @param inputShape `[valuesShape, maskShape]`.
   * @returns The mask's shape.
   */
  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    if (!Array.isArray(inputShape[0]) || inputShape.length !== 2) {
      throw new Error(`Layer ${this.name} takes two inputs: [values, mask]`);
    }
    const [values, mask] = inputShape as tf.Shape[];
    if (values![3] !== mask![3] || (values![1]! * 2 !== mask![1]) || values![2]! * 2 !== mask![2]) {
      throw new Error(
        `Layer ${this.name}: mask shape [${mask}] is not twice the values shape [${values}]`,
      );
    }
    return [...mask!];
  }

  /**
   * @param inputs `[x, mask]`.
   * @returns The unpooled map.
   */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    if (!Array.isArray(inputs) || inputs.length !== 2) {
      throw new Error(`Layer ${this.name} takes two inputs: [values, mask]`);
    }
    return maxUnpool(inputs[0] as tf.Tensor4D, inputs[1] as tf.Tensor4D);
  }
}

tf.serialization.registerClass(MaxPoolWithMask);
tf.serialization.registerClass(MaxUnpool);
