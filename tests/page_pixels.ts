/**
 * The comparison of a class map drawn in a page's canvas (RGBA) with the
 * mask `deno task segment` wrote (RGB): the check that both pages' tests
 * (tests/browser_test.ts, tests/train_page_test.ts) make.
 */
import type { RasterImage } from "../lib/image_io.ts";

/** A canvas's pixels, as the page's `getImageData` gives them. */
export interface CanvasPixels {
  /** RGBA bytes, row by row. */
  rgba: number[];
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/**
 * Counts the pixels whose colour in the page differs from the written mask.
 *
 * @param shown The canvas, RGBA.
 * @param written The mask, RGB, of the same size.
 * @returns The pixels compared, those that differ, and the colours the page drew (`"r,g,b"`).
 */
export function compareWithMask(
  shown: CanvasPixels,
  written: RasterImage,
): { pixels: number; differing: number; colours: Set<string> } {
  const pixels = written.width * written.height;
  let differing = 0;
  const colours = new Set<string>();
  for (let pixel = 0; pixel < pixels; pixel++) {
    const inPage = shown.rgba.slice(4 * pixel, 4 * pixel + 3).join(",");
    colours.add(inPage);
    if (inPage !== Array.from(written.data.subarray(3 * pixel, 3 * pixel + 3)).join(",")) {
      differing++;
    }
  }
  return { pixels, differing, colours };
}
