/**
 * Images in memory and their resizing, as the dataset reader does it (like
 * `cv2.resize`: bilinear with half-pixel centres for photos, nearest for
 * masks). Platform-neutral: no file, sharp or Deno API, so the page's
 * training worker resizes its photos with the same arithmetic as Deno; the
 * decoding and encoding stay in `image_io.ts`.
 *
 * @module
 */
import { resizeBilinear as resizeBilinearPixels } from "./segment_pixels.js";

/** An 8-bit image held in memory, row-major, `channels` bytes per pixel. */
export interface RasterImage {
  /** Pixels, row-major. */
  data: Uint8Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** Bytes per pixel: 3 for RGB. */
  channels: number;
}

/**
 * Resizes an 8-bit image with bilinear interpolation as `cv2.resize` with
 * `INTER_LINEAR` does (half-pixel centres, edges clamped), scaling values to
 * [0, 1].
 *
 * @param image The source pixels.
 * @param width Target width.
 * @param height Target height.
 * @returns Row-major floats in [0, 1], `image.channels` per pixel.
 *
 * @example
 * ```ts
 * import { resizeBilinear } from "./raster.ts";
 * import { assertEquals } from "./assert.ts";
 * const image = { data: new Uint8Array([0, 255]), width: 2, height: 1, channels: 1 };
 * assertEquals(Array.from(resizeBilinear(image, 1, 1)), [0.5]);
 * ```
 */
export function resizeBilinear(image: RasterImage, width: number, height: number): Float32Array {
  // One implementation, in segment_pixels.js, which the browser page runs too.
  return resizeBilinearPixels(image, width, height);
}

/** Source and target sizes for {@linkcode resizeNearest}. */
export interface ResizeNearestOptions {
  /** Source width. */
  width: number;
  /** Source height. */
  height: number;
  /** Target width. */
  toWidth: number;
  /** Target height. */
  toHeight: number;
  /** Values per pixel. @default 1 */
  channels?: number;
}

/**
 * Resizes with nearest-neighbour sampling as `cv2.resize` with
 * `INTER_NEAREST` does (source index = floor(target index x scale)); values
 * are copied, never mixed, so class maps stay class maps.
 *
 * @param data Source values, row-major.
 * @param options Source and target sizes.
 * @returns The resized values, same array type.
 *
 * @example
 * ```ts
 * import { resizeNearest } from "./raster.ts";
 * import { assertEquals } from "./assert.ts";
 * const out = resizeNearest(new Int32Array([1, 2]), { width: 2, height: 1, toWidth: 4, toHeight: 1 });
 * assertEquals(Array.from(out), [1, 1, 2, 2]);
 * ```
 */
export function resizeNearest<T extends Int32Array | Uint8Array | Float32Array>(
  data: T,
  options: ResizeNearestOptions,
): T {
  const { width, height, toWidth, toHeight, channels = 1 } = options;
  const out = new (data.constructor as { new (length: number): T })(toWidth * toHeight * channels);
  for (let y = 0; y < toHeight; y++) {
    const sourceY = Math.min(Math.floor(y * height / toHeight), height - 1);
    for (let x = 0; x < toWidth; x++) {
      const sourceX = Math.min(Math.floor(x * width / toWidth), width - 1);
      const from = (sourceY * width + sourceX) * channels, to = (y * toWidth + x) * channels;
      for (let channel = 0; channel < channels; channel++) {
        out[to + channel] = data[from + channel]!;
      }
    }
  }
  return out;
}
