/**
 * Reading a mask file's pixels as class indices, robust to how masks are
 * saved. The rule for a colour is a lesson and comes from the exercise that
 * teaches it, as a {@linkcode MaskMode}: `colorToClass` of
 * `exercises/semaseg_dataset.ts` (background, akahara, madara) or `binarize`
 * of `exercises/bin_dataset.ts` (newt or not). Here: a mask that looks black
 * but stores class indices (a common export) is read as those indices, one
 * that is neither is refused, and a colour that is no class is an error that
 * names the file, the pixel and its colour.
 *
 * @module
 */
import { UserError } from "./errors.ts";

/** A channel value below this counts as black: all three below it is background. */
export const BLACK_BELOW = 48;

/** Class indices of the three-class task. */
export const CLASS_INDEX = { background: 0, akahara: 1, madara: 2 } as const;

/** How a mask's pixels become the classes a network learns: an exercise's lesson, as a value. */
export interface MaskMode {
  /** Class names by index, e.g. `["background", "newt"]`. */
  classNames: readonly string[];
  /** The class of a mask colour (channels 0 to 255), or -1 for a colour that is no class. */
  ofColour: (red: number, green: number, blue: number) => number;
  /** The class of a stored class index (0 background, 1 akahara, 2 madara). */
  ofIndex: (index: number) => number;
}

/** What {@linkcode maskToClasses} needs besides the pixels. */
export interface MaskToClassesOptions {
  /** Width of the mask in pixels. */
  width: number;
  /** Height of the mask in pixels. */
  height: number;
  /** The rule of the exercise: colour and stored index to class. */
  mode: MaskMode;
  /** File named in the error for a colour that is no class. @default "mask" */
  file?: string;
}

/**
 * Maps an RGB mask to class indices with the exercise's rule.
 *
 * A mask that looks black but is not (every value below
 * {@linkcode BLACK_BELOW}, some above 0) is a common export of class indices:
 * a grey one whose values are all 0, 1 or 2 is read as those class indices;
 * any other is refused, naming its values, rather than read as all
 * background.
 *
 * @param rgb Pixels, row-major, 3 bytes per pixel.
 * @param options Size, mode and the file name for errors.
 * @returns One class index per pixel, row-major.
 * @throws {UserError} On a pixel whose colour is no class, or a dark mask
 * that holds no class indices.
 *
 * @example
 * ```ts
 * import { type MaskMode, maskToClasses } from "./mask_classes.ts";
 * import { assertEquals } from "./assert.ts";
 * // A rule as an exercise writes it: red is 1, green 2, black 0, anything else no class.
 * const mode: MaskMode = {
 *   classNames: ["background", "akahara", "madara"],
 *   ofColour: (red, green, blue) => red + green + blue === 0 ? 0 : red > 100 ? 1 : green > 100 ? 2 : -1,
 *   ofIndex: (index) => index,
 * };
 * const rgb = new Uint8Array([0, 0, 0, 128, 0, 0, 0, 128, 0]);
 * assertEquals(Array.from(maskToClasses(rgb, { width: 3, height: 1, mode })), [0, 1, 2]);
 * const indices = new Uint8Array([0, 0, 0, 1, 1, 1, 2, 2, 2]); // looks black
 * assertEquals(Array.from(maskToClasses(indices, { width: 3, height: 1, mode })), [0, 1, 2]);
 * ```
 */
export function maskToClasses(rgb: Uint8Array, options: MaskToClassesOptions): Int32Array {
  const { width, height, mode, file = "mask" } = options;
  const classes = new Int32Array(width * height);
  const indices = classIndicesOfDarkMask(rgb, classes.length, file);
  if (indices) {
    for (let pixel = 0; pixel < classes.length; pixel++) {
      classes[pixel] = mode.ofIndex(indices[pixel]!);
    }
    return classes;
  }
  for (let pixel = 0; pixel < classes.length; pixel++) {
    const red = rgb[3 * pixel]!, green = rgb[3 * pixel + 1]!, blue = rgb[3 * pixel + 2]!;
    const index = mode.ofColour(red, green, blue);
    if (index < 0 && isWhite(red, green, blue)) {
      // White is "newt" in a black-and-white binarization mask (`deno task segment` writes
      // them for a one-channel model): binarize reads it, the three classes refuse it clearly.
      const x = pixel % width, y = Math.floor(pixel / width);
      throw new UserError(
        `Cannot read mask ${file} as three classes: pixel (x ${x}, y ${y}) is white ` +
          `(${red}, ${green}, ${blue}), as in a black-and-white newt-or-not mask; use it with ` +
          `the binarization exercises, or paint akahara red (128, 0, 0) and madara green ` +
          `(0, 128, 0)`,
      );
    }
    if (index < 0) {
      const x = pixel % width, y = Math.floor(pixel / width);
      throw new UserError(
        `Cannot read mask ${file}: pixel (x ${x}, y ${y}) has colour (${red}, ${green}, ${blue}), ` +
          `which is no class; paint background black (0, 0, 0), akahara red (128, 0, 0) ` +
          `and madara green (0, 128, 0)`,
      );
    }
    classes[pixel] = index;
  }
  return classes;
}

/** White, as a binarization mask paints a newt: every channel at least 160, within 48 of each other. */
function isWhite(red: number, green: number, blue: number): boolean {
  const low = Math.min(red, green, blue), high = Math.max(red, green, blue);
  return low >= 160 && high - low <= BLACK_BELOW;
}

/** The largest class index a mask may store: 2, madara. */
const MAX_CLASS_INDEX = CLASS_INDEX.madara;

/**
 * The class indices of a mask that looks black but is not (all values below
 * BLACK_BELOW, some above 0): its grey values when they are all class
 * indices, else a UserError naming them. `undefined` for any other mask (a
 * colour mask, or one that really is all black).
 */
function classIndicesOfDarkMask(
  rgb: Uint8Array,
  pixels: number,
  file: string,
): Uint8Array | undefined {
  let largest = 0;
  for (let index = 0; index < 3 * pixels; index++) {
    if (rgb[index]! > largest) largest = rgb[index]!;
  }
  if (largest === 0 || largest >= BLACK_BELOW) return undefined;
  const seen = new Set<number>(); // distinct colours as 0xRRGGBB, the first 9
  let grey = true;
  const values = new Uint8Array(pixels);
  for (let pixel = 0; pixel < pixels; pixel++) {
    const red = rgb[3 * pixel]!, green = rgb[3 * pixel + 1]!, blue = rgb[3 * pixel + 2]!;
    if (red !== green || red !== blue) grey = false;
    values[pixel] = red;
    if (seen.size < 9) seen.add((red << 16) | (green << 8) | blue);
  }
  if (grey && largest <= MAX_CLASS_INDEX) return values;
  const colours = [...seen].sort((a, b) => a - b).slice(0, 8).map((colour) => {
    const [red, green, blue] = [colour >> 16, (colour >> 8) & 255, colour & 255];
    return grey ? `${red}` : `(${red}, ${green}, ${blue})`;
  });
  const shown = colours.join(", ") + (seen.size > 8 ? ", ..." : "");
  throw new UserError(
    `Cannot read mask ${file}: it looks black but holds the ${grey ? "values" : "colours"} ` +
      `${shown}, which are neither class colours nor only the class indices 0 (background), ` +
      `1 (akahara) and 2 (madara); store each pixel's class index 0, 1 or 2 in one channel, ` +
      `or paint background black (0, 0, 0), akahara red (128, 0, 0) and madara green (0, 128, 0)`,
  );
}
