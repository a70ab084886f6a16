/**
 * The colours of the classes, as in the Imori masks and the tutorial's
 * figures: background black, akahara (128, 0, 0), madara (0, 128, 0).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { CLASS_COLORS as PIXEL_CLASS_COLORS } from "./classes.js";

/**
 * RGB colour per class index: background, akahara, madara. One definition,
 * in `classes.js`, which the browser page loads too.
 */
export const CLASS_COLORS = PIXEL_CLASS_COLORS as readonly [number, number, number][];

/**
 * Paints a class map in the class colours. Indices outside the palette are
 * painted white, so that they stand out.
 *
 * @param classMap Class index per pixel, shape [height, width], int32.
 * @returns Colours, shape [height, width, 3], float32 in [0, 1].
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { paintClasses } from "./palette.ts";
 * import { assertEquals } from "./assert.ts";
 * const classMap = tf.tensor2d([[0, 1, 2]], [1, 3], "int32");
 * const painted = paintClasses(classMap);
 * assertEquals(painted.shape, [1, 3, 3]);
 * assertEquals(Array.from(painted.dataSync()).map((v) => Math.round(v * 255)),
 *   [0, 0, 0, 128, 0, 0, 0, 128, 0]);
 * tf.dispose([classMap, painted]);
 * ```
 */
export function paintClasses(classMap: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => {
    const colors = [...CLASS_COLORS, [255, 255, 255]];
    const palette = tf.div(tf.tensor2d(colors.flat(), [colors.length, 3], "float32"), 255);
    const indices = tf.cast(tf.clipByValue(classMap, 0, CLASS_COLORS.length), "int32");
    // An index below 0 is clipped to background; one beyond the palette to white.
    return tf.gather(palette, indices) as tf.Tensor3D; // [height, width, 3]
  });
}
