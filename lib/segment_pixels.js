// @ts-check
/**
 * The pixel work around a segmentation network, shared by the page and
 * `deno task segment` so that both turn a photo into the same mask:
 *
 * - before the network: {@linkcode resizeBilinear}, the same arithmetic as
 *   `lib/image_io.ts` (the dataset reader's, like `cv2.resize`), RGB in [0, 1];
 * - after it: {@linkcode classMapToPhoto} brings the class map back to the
 *   photo's size with nearest-neighbour sampling (`cv2.INTER_NEAREST`), never
 *   interpolating; {@linkcode paintMask} paints it in the dataset's colours,
 *   {@linkcode paintOverlay} over the photo, and {@linkcode classShares}
 *   counts it.
 *
 * Plain JavaScript, so that a browser loads it as it is; the classes' names
 * and colours are `lib/classes.js`.
 * Pixels are row-major, RGB, one byte per channel unless said otherwise.
 *
 * @module
 */

/**
 * Drops the alpha channel of RGBA pixels (as a canvas gives them), keeping
 * the colour values as they are, as the dataset reader does with a photo.
 *
 * @param {Uint8Array | Uint8ClampedArray} rgba Four bytes per pixel.
 * @returns {Uint8Array} Three bytes per pixel.
 *
 * @example
 * ```ts
 * import { rgbaToRgb } from "./segment_pixels.js";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(Array.from(rgbaToRgb(new Uint8Array([1, 2, 3, 255, 4, 5, 6, 0]))), [1, 2, 3, 4, 5, 6]);
 * ```
 */
export function rgbaToRgb(rgba) {
  const rgb = new Uint8Array((rgba.length / 4) * 3);
  for (let pixel = 0, to = 0; pixel < rgba.length; pixel += 4, to += 3) {
    rgb[to] = rgba[pixel] ?? 0;
    rgb[to + 1] = rgba[pixel + 1] ?? 0;
    rgb[to + 2] = rgba[pixel + 2] ?? 0;
  }
  return rgb;
}

/**
 * Resizes 8-bit pixels bilinearly as `cv2.resize` with `INTER_LINEAR` does
 * (half-pixel centres, edges clamped) and scales them to [0, 1]: the same
 * operations in the same order as `resizeBilinear` of `lib/image_io.ts`, so
 * the results are equal to the bit (a test holds that).
 *
 * @param {{ data: ArrayLike<number>, width: number, height: number, channels: number }} image
 * The source pixels.
 * @param {number} width Target width.
 * @param {number} height Target height.
 * @returns {Float32Array} Row-major floats in [0, 1], `image.channels` per pixel.
 *
 * @example
 * ```ts
 * import { resizeBilinear } from "./segment_pixels.js";
 * import { assertEquals } from "./assert.ts";
 * const image = { data: new Uint8Array([0, 255]), width: 2, height: 1, channels: 1 };
 * assertEquals(Array.from(resizeBilinear(image, 1, 1)), [0.5]);
 * ```
 */
export function resizeBilinear(image, width, height) {
  const { data, channels } = image;
  const out = new Float32Array(width * height * channels);
  const scaleX = image.width / width, scaleY = image.height / height;
  const column0 = new Int32Array(width), column1 = new Int32Array(width);
  const weightX = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const source = Math.min(Math.max((x + 0.5) * scaleX - 0.5, 0), image.width - 1);
    const left = Math.floor(source);
    column0[x] = left;
    column1[x] = Math.min(left + 1, image.width - 1);
    weightX[x] = source - left;
  }
  for (let y = 0; y < height; y++) {
    const source = Math.min(Math.max((y + 0.5) * scaleY - 0.5, 0), image.height - 1);
    const row0 = Math.floor(source), row1 = Math.min(row0 + 1, image.height - 1);
    const weightY = source - row0;
    for (let x = 0; x < width; x++) {
      const wx = /** @type {number} */ (weightX[x]);
      const left = /** @type {number} */ (column0[x]), right = /** @type {number} */ (column1[x]);
      const a = (row0 * image.width + left) * channels;
      const b = (row0 * image.width + right) * channels;
      const c = (row1 * image.width + left) * channels;
      const d = (row1 * image.width + right) * channels;
      for (let channel = 0; channel < channels; channel++) {
        const top = /** @type {number} */ (data[a + channel]) * (1 - wx) +
          /** @type {number} */ (data[b + channel]) * wx;
        const bottom = /** @type {number} */ (data[c + channel]) * (1 - wx) +
          /** @type {number} */ (data[d + channel]) * wx;
        out[(y * width + x) * channels + channel] = (top * (1 - weightY) + bottom * weightY) / 255;
      }
    }
  }
  return out;
}

/**
 * Sizes for {@linkcode classMapToPhoto}.
 *
 * @typedef {object} ClassMapToPhotoOptions
 * @property {number} outputSize The class map's height and width (the network's output).
 * @property {number} inputSize The network's input height and width.
 * @property {number} width The photo's width.
 * @property {number} height The photo's height.
 */

/**
 * Brings a network's square class map back to the photo's size. The map
 * covers the centre of the network's input (all of it, except for UNet's
 * unpadded convolutions, whose smaller output covers the centre, cropped as
 * the training masks are); pixels outside it are background. Then it is
 * resized to the photo with nearest-neighbour sampling as `cv2.resize` with
 * `INTER_NEAREST` does (source index = floor(target index x scale)), the rule
 * of `resizeNearest` in `lib/image_io.ts`.
 *
 * @param {ArrayLike<number>} classMap Class index per pixel, outputSize x outputSize.
 * @param {ClassMapToPhotoOptions} options Map, input and photo sizes.
 * @returns {Uint8Array} Class index per photo pixel, width x height.
 *
 * @example
 * ```ts
 * import { classMapToPhoto } from "./segment_pixels.js";
 * import { assertEquals } from "./assert.ts";
 * const classes = classMapToPhoto([0, 1, 2, 1], { outputSize: 2, inputSize: 2, width: 4, height: 1 });
 * assertEquals(Array.from(classes), [0, 0, 1, 1]);
 * ```
 */
export function classMapToPhoto(classMap, options) {
  const { outputSize, inputSize, width, height } = options;
  const offset = Math.floor((inputSize - outputSize) / 2);
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const inputY = Math.min(Math.floor(y * inputSize / height), inputSize - 1) - offset;
    if (inputY < 0 || inputY >= outputSize) continue;
    for (let x = 0; x < width; x++) {
      const inputX = Math.min(Math.floor(x * inputSize / width), inputSize - 1) - offset;
      if (inputX < 0 || inputX >= outputSize) continue;
      out[y * width + x] = /** @type {number} */ (classMap[inputY * outputSize + inputX]);
    }
  }
  return out;
}

/**
 * Paints classes in mask colours, so that the result can be saved and used
 * as a training mask.
 *
 * @param {ArrayLike<number>} classes Class index per pixel.
 * @param {readonly (readonly number[])[]} colors Colour per class index
 * (`classesOf` in `classes.js`); an index without a colour is painted white.
 * @param {number} [channels] 3 for RGB, 4 for RGBA (opaque), as a canvas takes it.
 * @returns {Uint8ClampedArray} The colours, `channels` bytes per pixel.
 *
 * @example
 * ```ts
 * import { CLASS_COLORS } from "./classes.js";
 * import { paintMask } from "./segment_pixels.js";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(Array.from(paintMask([2, 0], CLASS_COLORS)), [0, 128, 0, 0, 0, 0]);
 * ```
 */
export function paintMask(classes, colors, channels = 3) {
  const out = new Uint8ClampedArray(classes.length * channels);
  for (let pixel = 0; pixel < classes.length; pixel++) {
    const color = colors[/** @type {number} */ (classes[pixel])] ?? [255, 255, 255];
    out.set(color.slice(0, 3), pixel * channels);
    if (channels === 4) out[pixel * channels + 3] = 255;
  }
  return out;
}

/**
 * The photo with each newt pixel tinted by its class: half the photo, half
 * the class colour brightened to full strength (akahara red, madara green, a
 * binarization model's newt white); background pixels are the photo as is.
 *
 * @param {ArrayLike<number>} photo The photo, `channels` bytes per pixel.
 * @param {ArrayLike<number>} classes Class index per pixel.
 * @param {readonly (readonly number[])[]} colors Mask colour per class index.
 * @param {number} [channels] 3 for RGB, 4 for RGBA (the alpha is set opaque).
 * @returns {Uint8ClampedArray} The overlay, `channels` bytes per pixel.
 *
 * @example
 * ```ts
 * import { CLASS_COLORS } from "./classes.js";
 * import { paintOverlay } from "./segment_pixels.js";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(Array.from(paintOverlay([100, 100, 100, 9, 9, 9], [1, 0], CLASS_COLORS)),
 *   [178, 50, 50, 9, 9, 9]);
 * ```
 */
export function paintOverlay(photo, classes, colors, channels = 3) {
  const out = new Uint8ClampedArray(classes.length * channels);
  for (let pixel = 0; pixel < classes.length; pixel++) {
    const index = /** @type {number} */ (classes[pixel]);
    const color = colors[index] ?? [255, 255, 255];
    const brightest = Math.max(...color.slice(0, 3), 1);
    for (let channel = 0; channel < 3; channel++) {
      const value = /** @type {number} */ (photo[pixel * channels + channel]);
      const tint = Math.round((/** @type {number} */ (color[channel]) * 255) / brightest);
      out[pixel * channels + channel] = index === 0 ? value : Math.round((value + tint) / 2);
    }
    if (channels === 4) out[pixel * channels + 3] = 255;
  }
  return out;
}

/**
 * The share of each class among the pixels.
 *
 * @param {ArrayLike<number>} classes Class index per pixel.
 * @param {number} count Number of classes.
 * @returns {number[]} One fraction per class, 0 to 1, summing to 1.
 *
 * @example
 * ```ts
 * import { classShares } from "./segment_pixels.js";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(classShares([0, 0, 2, 0], 3), [0.75, 0, 0.25]);
 * ```
 */
export function classShares(classes, count) {
  const pixels = new Array(count).fill(0);
  for (let pixel = 0; pixel < classes.length; pixel++) {
    pixels[/** @type {number} */ (classes[pixel])]++;
  }
  return pixels.map((n) => n / Math.max(classes.length, 1));
}

/**
 * One line with the share of each class, as `deno task segment` prints it and
 * the page shows it.
 *
 * @param {number[]} shares Fractions by class index.
 * @param {string[]} names Class names by index.
 * @returns {string} E.g. `background 81.2%, akahara 18.8%, madara 0.0%`.
 *
 * @example
 * ```ts
 * import { formatShares } from "./segment_pixels.js";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(formatShares([0.8125, 0.1875], ["background", "newt"]), "background 81.3%, newt 18.8%");
 * ```
 */
export function formatShares(shares, names) {
  return shares.map((share, index) => `${names[index]} ${(share * 100).toFixed(1)}%`).join(", ");
}
