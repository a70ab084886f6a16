/**
 * Exercise 4, semaseg_dataset: load the training photos and turn each mask
 * into a class index per pixel (0 background, 1 akahara, 2 madara), then
 * show every photo beside its class map painted in the dataset's colours.
 *
 * Run: `deno task semaseg_dataset [--data DIR] [--size 64] [--out answers]`
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { CLASS_COLORS, CLASS_NAMES } from "../lib/classes.js";
import { runShowDataset } from "../lib/commands.ts";
import { runMain } from "../lib/errors.ts";
import { BLACK_BELOW, type MaskMode } from "../lib/mask_classes.ts";

/**
 * The lesson: the class of a mask colour. Imori masks paint akahara
 * (128, 0, 0) and madara (0, 128, 0) on black (the tutorial says 127, and
 * other tools save slightly off colours), so a colour is matched by class,
 * not by value: background when every channel is below 48, akahara when red
 * is the largest channel and green and blue at most half of it, madara
 * likewise for green; anything else (blue, white, grey, ...) is no class.
 *
 * @param red Red channel, 0 to 255.
 * @param green Green channel, 0 to 255.
 * @param blue Blue channel, 0 to 255.
 * @returns 0 background, 1 akahara, 2 madara, or -1 for a colour that is no class.
 *
 * @example
 * ```ts
 * import { colorToClass } from "./semaseg_dataset.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * assertEquals([colorToClass(0, 0, 0), colorToClass(128, 0, 0), colorToClass(0, 127, 0)], [0, 1, 2]);
 * assertEquals(colorToClass(0, 0, 255), -1);
 * ```
 */
export function colorToClass(red: number, green: number, blue: number): number {
  if (red < BLACK_BELOW && green < BLACK_BELOW && blue < BLACK_BELOW) return 0;
  if (red >= green && red >= blue && 2 * green <= red && 2 * blue <= red) return 1;
  if (green >= red && green >= blue && 2 * red <= green && 2 * blue <= green) return 2;
  return -1;
}

/** Masks as the segmentation exercises read them: {@linkcode colorToClass}. */
export const CLASSES: MaskMode = {
  classNames: CLASS_NAMES,
  ofColour: colorToClass,
  ofIndex: (index) => index, // a mask stored as class indices 0, 1, 2
};

/**
 * The way back: a class map painted in the class colours (background black,
 * akahara (128, 0, 0), madara (0, 128, 0)); an index outside them is white,
 * so that it stands out.
 *
 * @param classMap Class index per pixel, shape [height, width], int32.
 * @returns Colours, shape [height, width, 3], float32 in [0, 1].
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { paintClasses } from "./semaseg_dataset.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const painted = paintClasses(tf.tensor2d([[0, 1, 2]], [1, 3], "int32"));
 * assertEquals(Array.from(painted.dataSync()).map((v) => Math.round(v * 255)),
 *   [0, 0, 0, 128, 0, 0, 0, 128, 0]);
 * ```
 */
export function paintClasses(classMap: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => {
    const colors = [...CLASS_COLORS, [255, 255, 255]];
    const palette = tf.div(tf.tensor2d(colors.flat(), [colors.length, 3], "float32"), 255);
    // An index below 0 is clipped to background; one beyond the palette to white.
    const indices = tf.cast(tf.clipByValue(classMap, 0, CLASS_COLORS.length), "int32");
    return tf.gather(palette, indices) as tf.Tensor3D; // [height, width, 3]
  });
}

/** Writes a figure per training photo: `deno task semaseg_dataset --help` lists the flags. */
export const run = (args: string[]): Promise<string[]> =>
  runShowDataset(args, {
    name: "semaseg_dataset",
    summary: "Loads the training photos, maps their masks to class indices " +
      "(0 background, 1 akahara, 2 madara) and writes a figure per photo.",
    mode: CLASSES, // each mask colour mapped to its class as it is read
    title: "class map",
    paint: paintClasses,
    next: "deno task semaseg_loss  (train a network to predict these class maps)",
  });

if (import.meta.main) await runMain(() => run(Deno.args));
