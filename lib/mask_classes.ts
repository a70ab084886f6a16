/**
 * The rule that turns a mask colour into a class index.
 *
 * Imori masks are painted background (0, 0, 0), akahara (128, 0, 0) and
 * madara (0, 128, 0); the tutorial's text says 127, and masks saved by other
 * tools may be slightly off. So a colour is matched by class, not by value:
 *
 * - **background**: every channel below {@linkcode BLACK_BELOW} (48);
 * - **akahara**: red is the largest channel and green and blue are each at
 *   most half of red;
 * - **madara**: green is the largest channel and red and blue are each at
 *   most half of green;
 * - anything else (blue, white, grey, yellow, ...) is no class: an error that
 *   names the file, the pixel and its colour.
 *
 * @module
 */
import { UserError } from "./errors.ts";

/** A channel value below this counts as black: all three below it is background. */
export const BLACK_BELOW = 48;

/** Class indices of the three-class task. */
export const CLASS_INDEX = { background: 0, akahara: 1, madara: 2 } as const;

/**
 * Classifies one mask colour.
 *
 * @param red Red channel, 0 to 255.
 * @param green Green channel, 0 to 255.
 * @param blue Blue channel, 0 to 255.
 * @returns 0 background, 1 akahara, 2 madara, or -1 for a colour that is no class.
 *
 * @example
 * ```ts
 * import { colorToClass } from "./mask_classes.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(colorToClass(0, 0, 0), 0);
 * assertEquals(colorToClass(128, 0, 0), 1);
 * assertEquals(colorToClass(0, 127, 0), 2);
 * assertEquals(colorToClass(0, 0, 255), -1);
 * ```
 */
export function colorToClass(red: number, green: number, blue: number): number {
  if (red < BLACK_BELOW && green < BLACK_BELOW && blue < BLACK_BELOW) return 0;
  if (red >= green && red >= blue && 2 * green <= red && 2 * blue <= red) return 1;
  if (green >= red && green >= blue && 2 * red <= green && 2 * blue <= green) return 2;
  return -1;
}

/** What {@linkcode maskToClasses} needs besides the pixels. */
export interface MaskToClassesOptions {
  /** Width of the mask in pixels. */
  width: number;
  /** Height of the mask in pixels. */
  height: number;
  /** `classes`: 0, 1, 2; `binary`: 0 background, 1 any newt. @default "classes" */
  mode?: "binary" | "classes";
  /** File named in the error for a colour that is no class. @default "mask" */
  file?: string;
}

/**
 * Maps an RGB mask to class indices with the rule of this module.
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
 * import { maskToClasses } from "./mask_classes.ts";
 * import { assertEquals } from "./assert.ts";
 * const rgb = new Uint8Array([0, 0, 0, 128, 0, 0, 0, 128, 0]);
 * assertEquals(Array.from(maskToClasses(rgb, { width: 3, height: 1 })), [0, 1, 2]);
 * assertEquals(Array.from(maskToClasses(rgb, { width: 3, height: 1, mode: "binary" })), [0, 1, 1]);
 * const indices = new Uint8Array([0, 0, 0, 1, 1, 1, 2, 2, 2]); // looks black
 * assertEquals(Array.from(maskToClasses(indices, { width: 3, height: 1 })), [0, 1, 2]);
 * ```
 */
export function maskToClasses(rgb: Uint8Array, options: MaskToClassesOptions): Int32Array {
  const { width, height, mode = "classes", file = "mask" } = options;
  const classes = new Int32Array(width * height);
  const indices = classIndicesOfDarkMask(rgb, classes.length, file);
  if (indices) {
    for (let pixel = 0; pixel < classes.length; pixel++) {
      classes[pixel] = mode === "binary" && indices[pixel]! > 0 ? 1 : indices[pixel]!;
    }
    return classes;
  }
  for (let pixel = 0; pixel < classes.length; pixel++) {
    const red = rgb[3 * pixel]!, green = rgb[3 * pixel + 1]!, blue = rgb[3 * pixel + 2]!;
    const index = colorToClass(red, green, blue);
    if (index < 0 && isWhite(red, green, blue)) {
      // White is "newt" in a black-and-white binarization mask (`deno task segment` writes
      // them for a one-channel model): a class in binary mode, a clear refusal otherwise.
      if (mode === "binary") {
        classes[pixel] = 1;
        continue;
      }
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
    classes[pixel] = mode === "binary" && index > 0 ? 1 : index;
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
