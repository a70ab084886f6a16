/**
 * Test-time flip averaging: a prediction averaged over the 8 flips and
 * quarter-turns of each image (the symmetries of a square), each mapped back
 * before averaging. For a network trained with flips and turns (the tuned
 * recipe) each view is as likely as the original, and their mean is steadier
 * than any one of them.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** One symmetry of the square: flips of rows and/or columns, then maybe a transpose. */
interface View {
  flipRows: boolean;
  flipColumns: boolean;
  transpose: boolean;
}

/** The 8 symmetries of a square (the identity first). */
export const SQUARE_VIEWS: readonly View[] = [false, true].flatMap((transpose) =>
  [false, true].flatMap((flipRows) =>
    [false, true].map((flipColumns) => ({ flipRows, flipColumns, transpose }))
  )
);

function flip(x: tf.Tensor4D, view: View): tf.Tensor4D {
  const axes = [...(view.flipRows ? [1] : []), ...(view.flipColumns ? [2] : [])];
  return axes.length ? tf.reverse(x, axes) : x;
}

function transpose(x: tf.Tensor4D, view: View): tf.Tensor4D {
  return view.transpose ? tf.transpose(x, [0, 2, 1, 3]) : x;
}

/**
 * Applies a view to NHWC images: flips, then the transpose.
 *
 * @param x Shape [n, h, w, c]; square when the view transposes.
 * @param view The symmetry.
 * @returns The transformed tensor.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { applyView, invertView, SQUARE_VIEWS } from "./flip_average.ts";
 * import { assertEquals } from "./assert.ts";
 * const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
 * for (const view of SQUARE_VIEWS) {
 *   assertEquals(invertView(applyView(x, view), view).dataSync(), x.dataSync());
 * }
 * ```
 */
export function applyView(x: tf.Tensor4D, view: View): tf.Tensor4D {
  return transpose(flip(x, view), view);
}

/**
 * Undoes {@linkcode applyView}: the transpose, then the flips.
 *
 * @param y Shape [n, h, w, c], in the view's frame.
 * @param view The symmetry that was applied.
 * @returns The tensor in the original frame.
 */
export function invertView(y: tf.Tensor4D, view: View): tf.Tensor4D {
  return flip(transpose(y, view), view);
}

/**
 * Predicts a batch in all 8 views (inference mode) and averages the
 * probabilities mapped back to the original frame; pass it to `predictBatches`
 * to run a whole set in batches.
 *
 * @param model A segmentation model with a square input.
 * @param batch Shape [n, size, size, 3].
 * @returns Shape [n, outHeight, outWidth, classes], mean probabilities.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { predictViewsAveraged } from "./flip_average.ts";
 * import { assertEquals } from "./assert.ts";
 * const input = tf.input({ shape: [4, 4, 3] });
 * const output = tf.layers.conv2d({ filters: 2, kernelSize: 1, activation: "softmax" }).apply(input);
 * const model = tf.model({ inputs: input, outputs: output as tf.SymbolicTensor });
 * assertEquals(predictViewsAveraged(model, tf.zeros([3, 4, 4, 3])).shape, [3, 4, 4, 2]);
 * ```
 */
export function predictViewsAveraged(model: tf.LayersModel, batch: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const views = SQUARE_VIEWS.map((view) =>
      invertView(model.predict(applyView(batch, view)) as tf.Tensor4D, view)
    );
    return tf.div(tf.addN(views), views.length);
  });
}
