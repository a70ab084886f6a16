// @ts-check
/**
 * The dataset's classes: their names and mask colours by class index, for a
 * three-class (softmax) model and a one-channel (binarization) model. The one
 * home of these: the dataset reader, the figures, `deno task segment` and the
 * page all import this file, plain JavaScript with no imports, so that a
 * browser loads it as it is.
 *
 * @module
 */

/**
 * Mask colour per class index, as in the Imori masks:
 * background black, akahara (128, 0, 0), madara (0, 128, 0).
 *
 * @type {readonly (readonly [number, number, number])[]}
 */
export const CLASS_COLORS = [[0, 0, 0], [128, 0, 0], [0, 128, 0]];

/** Mask colours of a one-channel (binarization) model: background black, newt white. */
export const BINARY_COLORS = /** @type {const} */ ([[0, 0, 0], [255, 255, 255]]);

/** Class names of a three-class model, by index. */
export const CLASS_NAMES = ["background", "akahara", "madara"];

/** Class names of a binarization model, by index. */
export const BINARY_NAMES = ["background", "newt"];

/**
 * How a network's output channels read: a one-channel (sigmoid) model is
 * background/newt, a three-channel (softmax) model is the dataset's classes.
 *
 * @param {number} channels The model's output channels.
 * @returns {{ names: string[], colors: readonly (readonly [number, number, number])[] }}
 * Class names and mask colours by class index.
 * @throws {Error} For another number of channels.
 *
 * @example
 * ```ts
 * import { classesOf } from "./classes.js";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(classesOf(1).names, ["background", "newt"]);
 * assertEquals(classesOf(3).colors[1], [128, 0, 0]);
 * ```
 */
export function classesOf(channels) {
  if (channels === 1) return { names: BINARY_NAMES, colors: BINARY_COLORS };
  if (channels === 3) return { names: CLASS_NAMES, colors: CLASS_COLORS };
  throw new Error(
    `The model has ${channels} output channels; expected 1 (binarization) or 3 ` +
      `(background, akahara, madara)`,
  );
}
