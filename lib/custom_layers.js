// @ts-check
/**
 * The project's custom layers, for any program that loads a checkpoint:
 * SegNet's `MaxPoolWithMask` (2x2 max-pooling that also returns where each
 * maximum was) and `MaxUnpool` (puts values back there). Every other layer of
 * every network is a standard TensorFlow.js layer, so with this module a
 * checkpoint loads with plain `@tensorflow/tfjs`:
 *
 * ```js ignore
 * import * as tf from "@tensorflow/tfjs"; // or the global `tf` of tf.min.js in a page
 * import { registerCustomLayers } from "./custom_layers.js";
 * registerCustomLayers(tf);
 * const model = await tf.loadLayersModel("checkpoints/segnet/model.json");
 * ```
 *
 * Plain JavaScript with JSDoc types and no imports, so that Deno, Node and a
 * browser page load the same file with no build step. It takes the `tf` to
 * register with as an argument instead of importing it: a layer class must
 * extend the very `tf.layers.Layer` and be registered in the very registry
 * that `tf.loadLayersModel` reads, and a program may hold its own copy of
 * tfjs (the page's `tf.min.js`, `@tensorflow/tfjs-node`).
 *
 * How the layers work: PyTorch returns argmax indices and scatters with them;
 * tfjs has no gradient for max-pool-with-argmax and its wasm backend has no
 * scatter. So the indices are kept as a **one-hot mask** of the input's shape
 * (1 at the first maximum of each 2x2 window in row-major order, 0 elsewhere),
 * and both operations are standard kernels:
 *
 * - pooling: `tf.maxPool`, whose own gradient reaches `x` only at each
 *   window's first maximum (the backends' `MaxPoolGrad`), which is where the
 *   mask has its 1;
 * - unpooling: `resizeNearestNeighbor(x) * mask` (each value copied to its
 *   2x2 window, kept where the mask is 1), and its gradient, the incoming
 *   gradient times the mask summed over each window, i.e. exactly the
 *   gradient at the recorded position. The mask is a constant there: it
 *   carries no gradient.
 *
 * The mask comes from the backend's `SegmentMaxPoolMask` kernel where it has
 * one (the project's engine registers it on the wasm backend with oneDNN:
 * `engine/kernels/max_pool_mask.ts`), else from about ten standard
 * operations (see `maxPoolMask`). All tensors are NHWC. `lib/max_unpool.ts`
 * is the typed face of this module for the project's TypeScript.
 *
 * @module
 */

/** @typedef {typeof import("@tensorflow/tfjs")} Tfjs */
/** @typedef {import("@tensorflow/tfjs").Tensor} Tensor */
/** @typedef {import("@tensorflow/tfjs").Tensor4D} Tensor4D */
/** @typedef {import("@tensorflow/tfjs").Shape} Shape */

/** Window priority: the first position in row-major order wins a tie. */
const PRIORITY = [4, 3, 2, 1];

/**
 * A backend kernel that computes `maxPoolMask` in one call: input `x`, output
 * the mask (see `engine/kernels/max_pool_mask.ts`).
 */
const MAX_POOL_MASK_KERNEL = "SegmentMaxPoolMask";

/**
 * Definitions made for each tfjs instance, so that registering twice gives
 * the same classes (and `instanceof` keeps working).
 *
 * @type {WeakMap<object, ReturnType<typeof defineCustomLayers>>}
 */
const DEFINED = new WeakMap();

/**
 * Defines the operations and layer classes on one tfjs instance.
 *
 * @param {Tfjs} tf The TensorFlow.js namespace.
 */
function defineCustomLayers(tf) {
  /**
   * Each window's value copied to its four pixels, by a broadcast multiply
   * (no Tile, no resize kernel).
   *
   * @param {Tensor4D} pooled Shape [batch, height, width, channels].
   * @param {Tensor} ones Shape [1, 1, 2, 1, 2, 1].
   * @returns {Tensor4D} Shape [batch, 2 * height, 2 * width, channels].
   */
  function spread(pooled, ones) {
    const [batch, height, width, channels] = pooled.shape;
    const values = tf.reshape(pooled, [batch, height, 1, width, 1, channels]);
    return tf.reshape(tf.mul(values, ones), [batch, 2 * height, 2 * width, channels]); // [b, 2h, 2w, c]
  }

  /**
   * @param {number} height
   * @param {number} width
   */
  function checkEven(height, width) {
    if (height % 2 !== 0 || width % 2 !== 0) {
      throw new Error(
        `2x2 max-pooling with a mask needs an even height and width, got ${height}x${width}`,
      );
    }
  }

  /**
   * The one-hot mask of the first maximum in each 2x2 window: one call of
   * the backend's `SegmentMaxPoolMask` kernel where it has one, else computed
   * with same-shape comparisons only (the wasm backend's broadcasting
   * comparison is slow): the window maximum by max-pooling, spread back to
   * the window; `x >= max` marks every maximum; multiplying by the window
   * priority (4, 3, 2, 1 in row-major order) and keeping the largest picks
   * the first.
   *
   * @param {Tensor4D} x Shape [batch, height, width, channels]; height and width even.
   * @returns {Tensor4D} Float mask of the same shape: 1 at one maximum per window, 0 elsewhere.
   */
  function maxPoolMask(x) {
    const [batch, height, width, channels] = x.shape;
    checkEven(height, width);
    if (tf.getKernel(MAX_POOL_MASK_KERNEL, tf.getBackend()) !== undefined) {
      return /** @type {Tensor4D} */ (tf.engine().runKernel(MAX_POOL_MASK_KERNEL, { x }, {}));
    }
    const noGradient = tf.customGrad((...args) => {
      const input = /** @type {Tensor4D} */ (args[0]);
      const value = tf.tidy(() => {
        const ones = tf.ones([1, 1, 2, 1, 2, 1]);
        const priority = tf.tensor(PRIORITY, [1, 1, 2, 1, 2, 1]);
        const windowMax = spread(tf.maxPool(input, 2, 2, "valid"), ones);
        const isMax = tf.cast(tf.greaterEqual(input, windowMax), "float32");
        const shape6 = [batch, height / 2, 2, width / 2, 2, channels];
        const ranked = /** @type {Tensor4D} */ (tf.reshape(
          tf.mul(tf.reshape(isMax, shape6), priority),
          x.shape,
        ));
        const best = spread(tf.maxPool(ranked, 2, 2, "valid"), ones);
        return tf.cast(tf.greaterEqual(ranked, best), "float32"); // priorities differ: one per window
      });
      // zerosLike: a kernel that fills on the backend, not a typed array uploaded from JavaScript.
      return { value, gradFunc: () => tf.zerosLike(input) };
    });
    return /** @type {Tensor4D} */ (noGradient(x));
  }

  /**
   * Max-unpooling: each value goes back to the position its mask marks in the
   * 2x2 window, zeros elsewhere: `resizeNearestNeighbor(x) * mask`. The mask
   * is a constant: the gradient reaches `x` only, as the incoming gradient
   * times the mask summed over each window (the value at the marked
   * position).
   *
   * @param {Tensor4D} x Shape [batch, height, width, channels].
   * @param {Tensor4D} mask Shape [batch, 2*height, 2*width, channels], one 1 per 2x2 window.
   * @returns {Tensor4D} Shape [batch, 2*height, 2*width, channels].
   */
  function maxUnpool(x, mask) {
    const [batch, height, width, channels] = x.shape;
    /** @type {[number, number, number, number]} */
    const expected = [batch, height * 2, width * 2, channels];
    if (mask.shape.some((size, axis) => size !== expected[axis])) {
      throw new Error(
        `maxUnpool: mask shape [${mask.shape}] does not match values [${x.shape}]; ` +
          `expected [${expected}]`,
      );
    }
    // The mask is saved for the gradient, not passed as an input: it stays off the gradient's
    // path (no zeros computed for it and added up the pooling).
    const unpool = tf.customGrad((...args) => {
      const values = /** @type {Tensor4D} */ (args[0]);
      const save = /** @type {import("@tensorflow/tfjs").GradSaveFunc} */ (args[1]);
      save([mask]);
      return {
        value: tf.mul(tf.image.resizeNearestNeighbor(values, [2 * height, 2 * width]), mask),
        gradFunc: (/** @type {Tensor | Tensor[]} */ dy, /** @type {Tensor[]} */ saved) => {
          const masked = tf.mul(/** @type {Tensor} */ (dy), /** @type {Tensor} */ (saved[0]));
          const windows = tf.reshape(masked, [batch, height, 2, width, 2, channels]);
          return tf.sum(windows, [2, 4]); // [batch, height, width, channels]
        },
      };
    });
    return /** @type {Tensor4D} */ (unpool(x));
  }

  /**
   * 2x2 max-pooling with stride 2 that also returns where each maximum was.
   * The gradient of `pooled` is `tf.maxPool`'s: it reaches `x` only at each
   * window's first maximum, the mask's position.
   *
   * @param {Tensor4D} x Shape [batch, height, width, channels]; height and width even.
   * @returns {[Tensor4D, Tensor4D]} `[pooled, mask]`: pooled has shape
   * [batch, height/2, width/2, channels]; mask is `maxPoolMask(x)`.
   */
  function maxPoolWithMask(x) {
    const mask = maxPoolMask(x);
    return [tf.maxPool(x, 2, 2, "valid"), mask];
  }

  /**
   * Layer form of `maxPoolWithMask`: one input, two outputs `[pooled, mask]`.
   * Serialized as `MaxPoolWithMask`.
   */
  class MaxPoolWithMask extends tf.layers.Layer {
    /** Name under which the layer is serialized. */
    static className = "MaxPoolWithMask";

    /** @param {ConstructorParameters<typeof tf.layers.Layer>[0]} [args] Standard layer arguments (name, ...). */
    constructor(args) {
      super(args ?? {});
      /**
       * The last call's input and outputs (see `call`).
       *
       * @type {{ input: Tensor, outputs: Tensor4D[] } | undefined}
       */
      this.lastCall = undefined;
    }

    /**
     * @param {Shape | Shape[]} inputShape [batch, height, width, channels].
     * @returns {Shape[]} The pooled shape and the mask shape.
     * @override
     */
    computeOutputShape(inputShape) {
      const shape =
        /** @type {Shape} */ (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape);
      const [batch, height, width, channels] = shape;
      if (height == null || width == null || height % 2 !== 0 || width % 2 !== 0) {
        throw new Error(
          `Layer ${this.name} needs an even height and width, got ${height}x${width}`,
        );
      }
      return [[batch ?? null, height / 2, width / 2, channels ?? null], [...shape]];
    }

    /**
     * @param {Tensor | Tensor[]} inputs Shape [batch, height, width, channels].
     * @returns {Tensor[]} `[pooled, mask]`.
     * @override
     */
    call(inputs) {
      const x = /** @type {Tensor4D} */ (Array.isArray(inputs) ? inputs[0] : inputs);
      // tfjs-layers' executor (model.apply, predict) applies a layer once per output it
      // needs, so this layer twice on the same tensor: the second call returns the first
      // call's outputs while they live, instead of pooling again.
      const last = this.lastCall;
      if (last !== undefined && last.input === x && !last.outputs.some((t) => t.isDisposed)) {
        return last.outputs;
      }
      const outputs = maxPoolWithMask(x);
      this.lastCall = { input: x, outputs };
      return outputs;
    }
  }

  /**
   * Layer form of `maxUnpool`: inputs `[x, mask]`, output the unpooled map of
   * the mask's shape. Serialized as `MaxUnpool`.
   */
  class MaxUnpool extends tf.layers.Layer {
    /** Name under which the layer is serialized. */
    static className = "MaxUnpool";

    /** @param {ConstructorParameters<typeof tf.layers.Layer>[0]} [args] Standard layer arguments (name, ...). */
    constructor(args) {
      super(args ?? {});
    }

    /**
     * @param {Shape | Shape[]} inputShape `[valuesShape, maskShape]`.
     * @returns {Shape} The mask's shape.
     * @override
     */
    computeOutputShape(inputShape) {
      if (!Array.isArray(inputShape[0]) || inputShape.length !== 2) {
        throw new Error(`Layer ${this.name} takes two inputs: [values, mask]`);
      }
      const [values, mask] = /** @type {[Shape, Shape]} */ (inputShape);
      const [, height, width, channels] = values;
      if (
        channels !== mask[3] || height == null || width == null ||
        height * 2 !== mask[1] || width * 2 !== mask[2]
      ) {
        throw new Error(
          `Layer ${this.name}: mask shape [${mask}] is not twice the values shape [${values}]`,
        );
      }
      return [...mask];
    }

    /**
     * @param {Tensor | Tensor[]} inputs `[x, mask]`.
     * @returns {Tensor} The unpooled map.
     * @override
     */
    call(inputs) {
      if (!Array.isArray(inputs) || inputs.length !== 2) {
        throw new Error(`Layer ${this.name} takes two inputs: [values, mask]`);
      }
      return maxUnpool(/** @type {Tensor4D} */ (inputs[0]), /** @type {Tensor4D} */ (inputs[1]));
    }
  }

  return { maxPoolMask, maxPoolWithMask, maxUnpool, MaxPoolWithMask, MaxUnpool };
}

/**
 * Registers the project's custom layers with a TensorFlow.js instance, so that
 * `tf.loadLayersModel` reads every checkpoint of the project. Calling it again
 * with the same `tf` registers nothing new and returns the same classes.
 *
 * @param {Tfjs} tf The TensorFlow.js namespace to register with: the
 * `@tensorflow/tfjs` module, or the global `tf` of `tf.min.js` in a page.
 * @returns The layer classes `MaxPoolWithMask` and `MaxUnpool`, and the
 * operations behind them: `maxPoolMask(x)`, `maxPoolWithMask(x)` (returns
 * `[pooled, mask]`) and `maxUnpool(x, mask)`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { registerCustomLayers } from "./custom_layers.js";
 * import { assertEquals } from "./assert.ts";
 * const { MaxPoolWithMask, MaxUnpool } = registerCustomLayers(tf);
 * const input = tf.input({ shape: [4, 4, 1] });
 * const [pooled, mask] = new MaxPoolWithMask().apply(input) as tf.SymbolicTensor[];
 * const output = new MaxUnpool().apply([pooled!, mask!]) as tf.SymbolicTensor;
 * const model = tf.model({ inputs: input, outputs: output });
 * // Through JSON and back, as tf.loadLayersModel does with a checkpoint.
 * const copy = await tf.models.modelFromJSON(JSON.parse(JSON.stringify(model.toJSON(null, false))));
 * assertEquals(copy.layers[1]!.getClassName(), "MaxPoolWithMask");
 * const x = tf.tensor4d([1, 5, 0, 0, 2, 3, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0], [1, 4, 4, 1]);
 * assertEquals(Array.from((copy.predict(x) as tf.Tensor).dataSync()),
 *   [0, 5, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0]);
 * ```
 */
export function registerCustomLayers(tf) {
  const known = DEFINED.get(tf);
  if (known) return known;
  const defined = defineCustomLayers(tf);
  tf.serialization.registerClass(defined.MaxPoolWithMask);
  tf.serialization.registerClass(defined.MaxUnpool);
  DEFINED.set(tf, defined);
  return defined;
}
