/**
 * Which input sizes a trained network can take so that its output still
 * covers the photo: the output must keep the margin it had at the size it
 * was trained at (none for a network with padding, UNet's border for one
 * without). A size where pooling drops a row (nearest at 33 pools to 16 and
 * returns 32) does not, and is refused with {@linkcode checkSize}, naming
 * the closest sizes that work.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import type { OutputSizeOf } from "./network.ts";

/**
 * The output size a trained model gives at each input size, `undefined`
 * where that output would not cover the input as it did at the trained size.
 * Shapes are computed through the layers, without building a model.
 *
 * @param model The trained model (square input).
 * @returns The model's output size for an input size, for `checkSize`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { coveringOutputSize } from "./input_size.ts";
 * import { checkSize } from "./network.ts";
 * import { assertEquals, assertThrows } from "./assert.ts";
 * const input = tf.input({ shape: [8, 8, 3] });
 * const pooled = tf.layers.maxPooling2d({ poolSize: 2 }).apply(input) as tf.SymbolicTensor;
 * const up = tf.layers.upSampling2d({ size: [2, 2] }).apply(pooled) as tf.SymbolicTensor;
 * const outputOf = coveringOutputSize(tf.model({ inputs: input, outputs: up }));
 * assertEquals(outputOf(32), 32);
 * assertEquals(outputOf(33), undefined); // pools to 16, returns 32
 * assertThrows(() => checkSize("net", 33, outputOf), Error, "closest sizes that work: 32 (output 32), 34");
 * ```
 */
export function coveringOutputSize(model: tf.LayersModel): OutputSizeOf {
  const outputAt = (size: number): number | undefined => {
    try {
      const shape = model.computeOutputShape([1, size, size, 3]) as number[];
      return shape[1] === shape[2] ? shape[1] : undefined;
    } catch {
      return undefined; // a layer that refuses the size (SegNet's pooling of an odd size)
    }
  };
  const trained = model.inputs[0]!.shape[1] as number;
  const margin = trained - (model.outputs[0]!.shape[1] as number);
  return (size) => {
    const output = outputAt(size);
    return output !== undefined && output >= 1 && size - output === margin ? output : undefined;
  };
}
