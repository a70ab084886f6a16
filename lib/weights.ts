/**
 * A model's weights as training and checkpoints see them: one tensor of an
 * optimizer's state, and the check that every weight is a finite number.
 * Its own module so that the checkpoint reader need not load the training
 * loop.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** One tensor of an optimizer's state, as `optimizer.getWeights()` lists it. */
export interface OptimizerWeight {
  /** Its name, e.g. `iter` or `conv2d_1/kernel/momentum`. */
  name: string;
  /** Its value. */
  tensor: tf.Tensor;
}

/**
 * The name of the first weight of a model (trainable or not: batch-norm
 * statistics count) holding NaN or an infinity, or `undefined` when all are
 * finite.
 *
 * @param model Any model.
 * @returns A weight's name, e.g. `conv2d_1/kernel`, or `undefined`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { firstNonFiniteWeight } from "./weights.ts";
 * import { assertEquals } from "./assert.ts";
 * const input = tf.input({ shape: [2] });
 * const dense = tf.layers.dense({ units: 1, name: "dense" });
 * const model = tf.model({ inputs: input, outputs: dense.apply(input) as tf.SymbolicTensor });
 * assertEquals(await firstNonFiniteWeight(model), undefined);
 * dense.setWeights([tf.tensor2d([[NaN], [1]]), tf.zeros([1])]);
 * assertEquals(await firstNonFiniteWeight(model), "dense/kernel");
 * ```
 */
export async function firstNonFiniteWeight(model: tf.LayersModel): Promise<string | undefined> {
  // One sum over every weight first (finite when they all are), then one weight at a time.
  // Read with data(), not dataSync(): webgpu cannot read synchronously under Deno.
  if (model.weights.length === 0) return undefined;
  const total = tf.tidy(() =>
    tf.addN(model.weights.map((weight) => tf.sum(tf.abs(weight.read()))))
  );
  const [sum] = await total.data();
  total.dispose();
  if (Number.isFinite(sum)) return undefined;
  for (const weight of model.weights) {
    const allFinite = tf.tidy(() => tf.all(tf.isFinite(weight.read())));
    const [finite] = await allFinite.data();
    allFinite.dispose();
    if (!finite) return weight.originalName;
  }
  return undefined;
}
