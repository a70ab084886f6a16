/**
 * Exercise 1, bin_dataset: load the training photos and turn each mask into
 * a binary map, 1 where a newt is and 0 elsewhere: whatever the species'
 * colour, a mask pixel that is not black is "newt". Then show every pair.
 *
 * Run: `deno task bin_dataset [--data DIR] [--size 64] [--out answers]`
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { BINARY_NAMES } from "../lib/classes.js";
import { runShowDataset } from "../lib/commands.ts";
import { runMain } from "../lib/errors.ts";
import { BLACK_BELOW, type MaskMode } from "../lib/mask_classes.ts";

/**
 * The lesson: a mask pixel is a newt (1) wherever it is not black, whatever
 * its colour; background (0) where every channel is dark. Tolerant of masks
 * saved slightly off black (every channel below 48 counts as black).
 *
 * @param red Red channel of the mask pixel, 0 to 255.
 * @param green Green channel, 0 to 255.
 * @param blue Blue channel, 0 to 255.
 * @returns 1 for a newt, 0 for background.
 *
 * @example
 * ```ts
 * import { binarize } from "./bin_dataset.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * assertEquals([binarize(0, 0, 0), binarize(128, 0, 0), binarize(0, 127, 0)], [0, 1, 1]);
 * ```
 */
export function binarize(red: number, green: number, blue: number): number {
  return red >= BLACK_BELOW || green >= BLACK_BELOW || blue >= BLACK_BELOW ? 1 : 0;
}

/** Masks as the binarization exercises read them: {@linkcode binarize}, newt or not. */
export const BINARY: MaskMode = {
  classNames: BINARY_NAMES,
  ofColour: binarize,
  ofIndex: (index) => index > 0 ? 1 : 0, // a mask stored as class indices 0, 1, 2
};

/**
 * A binary map as a grey picture: newt white, background black.
 *
 * @param classMap Shape `[height, width]`, 0 or 1.
 * @returns Shape `[height, width, 1]`, float32 in [0, 1].
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { paintBinary } from "./bin_dataset.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * assertEquals(paintBinary(tf.tensor2d([[0, 1]], undefined, "int32")).arraySync(), [[[0], [1]]]);
 * ```
 */
export function paintBinary(classMap: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => tf.expandDims(tf.cast(classMap, "float32"), 2) as tf.Tensor3D); // [h, w, 1]
}

/** Writes a figure per training photo: `deno task bin_dataset --help` lists the flags. */
export const run = (args: string[]): Promise<string[]> =>
  runShowDataset(args, {
    name: "bin_dataset",
    summary: "Loads the training photos, binarizes their masks (1 newt, 0 background) " +
      "and writes a figure per photo.",
    mode: BINARY, // each mask binarized as it is read
    title: "mask (newt = 1)",
    paint: paintBinary,
    next: "deno task bin_loss  (train a network to predict these masks)",
  });

if (import.meta.main) await runMain(() => run(Deno.args));
