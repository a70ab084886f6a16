/**
 * Photos and masks decoded in the browser as the dataset reader decodes them
 * with sharp (`lib/image_io.ts`): EXIF orientation applied, a colour profile
 * converted to sRGB, 8-bit RGB out; a photo's alpha dropped with the colour
 * under it kept, a mask's transparent pixels flattened on black. The pixels
 * are read through a WebGL texture, since a 2D canvas premultiplies alpha and
 * loses the colour under transparent pixels (the segmentation page does the
 * same). Runs in the training worker; errors are the reader's one-line ones.
 *
 * One difference is refused rather than read differently: a 16-bit grey PNG
 * mask, which the reader takes as class indices when its values are below
 * 256, and which a browser brings to 8 bits (every index to 0).
 *
 * @module
 */
import { UserError } from "../lib/errors.ts";
import type { RasterImage } from "../lib/raster.ts";
import { texturePixels } from "./texture_pixels.js";

/** What {@linkcode decodeFile} decodes for. */
export interface DecodeFileOptions {
  /** Word used in errors: "image" or "mask". */
  what: "image" | "mask";
  /** The file's path, named in errors. */
  path: string;
}

/**
 * The PNG header's bit depth and colour type, or `undefined` for another format.
 *
 * @param bytes The file's first bytes (26 are enough).
 * @returns Bit depth (1 to 16) and colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA).
 *
 * @example
 * ```ts
 * import { pngHeader } from "./decode.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const bytes = new Uint8Array(26);
 * bytes.set([137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82]);
 * bytes.set([16, 0], 24);
 * assertEquals(pngHeader(bytes), { depth: 16, colourType: 0 });
 * assertEquals(pngHeader(new Uint8Array(26)), undefined);
 * ```
 */
export function pngHeader(bytes: Uint8Array): { depth: number; colourType: number } | undefined {
  const signature = [137, 80, 78, 71, 13, 10, 26, 10];
  if (bytes.length < 26 || signature.some((value, index) => bytes[index] !== value)) {
    return undefined;
  }
  return { depth: bytes[24]!, colourType: bytes[25]! };
}

/** The little of a canvas this module calls (tests compile without the DOM). */
interface Canvas2d {
  drawImage(image: ImageBitmap, x: number, y: number): void;
  getImageData(x: number, y: number, width: number, height: number): { data: Uint8ClampedArray };
}
type Canvas = { getContext(kind: string, options?: object): Canvas2d | null };

function newCanvas(width: number, height: number): Canvas {
  const OffscreenCanvas = (globalThis as unknown as {
    OffscreenCanvas: new (width: number, height: number) => Canvas;
  }).OffscreenCanvas;
  return new OffscreenCanvas(width, height);
}

/** The RGBA bytes through a 2D canvas (alpha premultiplied, then divided out again). */
function canvasPixels(bitmap: ImageBitmap): Uint8ClampedArray {
  const context = newCanvas(bitmap.width, bitmap.height).getContext("2d", {
    willReadFrequently: true,
  }) as Canvas2d;
  context.drawImage(bitmap, 0, 0);
  return context.getImageData(0, 0, bitmap.width, bitmap.height).data;
}

/**
 * Decodes a photo or a mask file to 8-bit RGB, upright, as `decodeImage`
 * (`lib/image_io.ts`) does in Deno.
 *
 * @param file The file's bytes (a `File` from a dropped folder, or a fetched `Blob`).
 * @param options What it is and its path, for errors.
 * @returns The RGB pixels: a photo's alpha dropped, a mask's transparent pixels black.
 * @throws {UserError} For an empty file, one that is no image, or a 16-bit grey PNG mask.
 */
export async function decodeFile(file: Blob, options: DecodeFileOptions): Promise<RasterImage> {
  const { what, path } = options;
  if (file.size === 0) {
    throw new UserError(`Cannot read ${what} ${path}: file is empty; copy or download it again`);
  }
  const header = pngHeader(new Uint8Array(await file.slice(0, 26).arrayBuffer()));
  if (what === "mask" && header?.depth === 16 && (header.colourType & 2) === 0) {
    throw new UserError(
      `Cannot read mask ${path} in the page: it is a 16-bit grey PNG, which a browser reads ` +
        `scaled to 8 bits (class indices 1 and 2 would become 0); save it as an 8-bit PNG, or ` +
        `train with the Deno scripts, which read it as class indices`,
    );
  }
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file, {
      imageOrientation: "from-image",
      colorSpaceConversion: "default",
      premultiplyAlpha: "none",
    });
  } catch {
    throw new UserError(
      `Cannot read ${what} ${path}: file is damaged or not an image; replace it with a ` +
        `JPEG, PNG or WebP`,
    );
  }
  try {
    const { width, height } = bitmap;
    const rgba = texturePixels(bitmap) ?? canvasPixels(bitmap);
    const rgb = new Uint8Array(width * height * 3);
    for (let pixel = 0; pixel < width * height; pixel++) {
      const alpha = rgba[4 * pixel + 3]!;
      for (let channel = 0; channel < 3; channel++) {
        const value = rgba[4 * pixel + channel]!;
        // A mask over black, as sharp's flatten; a photo's colour kept, as sharp's removeAlpha
        rgb[3 * pixel + channel] = what === "mask" ? Math.round((value * alpha) / 255) : value;
      }
    }
    return { data: rgb, width, height, channels: 3 };
  } finally {
    bitmap.close();
  }
}
