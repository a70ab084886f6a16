/**
 * Reading, resizing and writing images: sharp decodes and encodes, the
 * resizing is done here so that it matches the tutorial's `cv2.resize`
 * exactly (bilinear with half-pixel centres for photos, nearest for masks).
 *
 * @module
 */
import sharp from "sharp";
import { UserError } from "./errors.ts";
import { claimOutputFile, guardWrite, markPng } from "./output_files.ts";
import { basename, dirname, join } from "./path.ts";
import type { RasterImage } from "./raster.ts";

// The in-memory image and its resizing are platform-neutral (lib/raster.ts); re-exported for
// the callers that read and resize in one go.
export { type RasterImage, resizeBilinear, resizeNearest } from "./raster.ts";

/** The most pixels sharp decodes by default (its `limitInputPixels`, 0x3FFF x 0x3FFF). */
const PIXEL_LIMIT = 268_402_689;

/** What {@linkcode decodeImage} decodes for. */
export interface DecodeImageOptions {
  /** Word used in errors: "image" or "mask". @default "image" */
  what?: string;
  /** A mask's transparent pixels become black (background). @default false */
  flattenOnBlack?: boolean;
}

/**
 * Decodes a JPEG or PNG file to 8-bit RGB, upright: an EXIF orientation tag
 * (a phone photo stored turned) is applied, as every image viewer and
 * `cv2.imread` apply it. Grayscale, RGBA and 16-bit files are converted
 * (alpha is dropped, or flattened on black for masks). A 16-bit
 * single-channel mask whose values are all below 256 (class indices, for
 * example) keeps its values instead of being scaled down to 0.
 *
 * @param path The file.
 * @param options What the file is, for errors.
 * @returns The RGB pixels, upright.
 * @throws {UserError} When the file is missing, empty or not an image, or
 * has more pixels than the decoder takes (named with its size).
 *
 * @example
 * ```ts
 * import { decodeImage } from "./image_io.ts";
 * import { assertRejects } from "./assert.ts";
 * await assertRejects(decodeImage("no/such/file.png"), /does not exist/);
 * ```
 */
export async function decodeImage(
  path: string,
  options: DecodeImageOptions = {},
): Promise<RasterImage> {
  const { what = "image", flattenOnBlack = false } = options;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UserError(`Cannot read ${what} ${path}: file does not exist`);
    }
    throw new UserError(`Cannot read ${what} ${path}: ${firstLine(error)}`);
  }
  if (bytes.length === 0) {
    throw new UserError(
      `Cannot read ${what} ${path}: file is empty; copy or download it again`,
    );
  }
  try {
    if (flattenOnBlack) {
      const small = await decodeSmallSixteenBitGrey(bytes);
      if (small) return small;
    }
    let pipeline = sharp(bytes).autoOrient();
    pipeline = flattenOnBlack
      ? pipeline.flatten({ background: "#000000" })
      : pipeline.removeAlpha();
    const { data, info } = await pipeline.toColourspace("srgb").raw().toBuffer({
      resolveWithObject: true,
    });
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width: info.width,
      height: info.height,
      channels: info.channels,
    };
  } catch (error) {
    if (/exceeds pixel limit/i.test(firstLine(error))) {
      // A valid image, only too large for the decoder's guard against decompression bombs.
      const meta = await sharp(bytes, { limitInputPixels: false }).metadata().catch(() =>
        undefined
      );
      const size = meta?.width && meta?.height
        ? `${meta.width}x${meta.height} (${Math.round(meta.width * meta.height / 1e6)} megapixels)`
        : "larger than the decoder takes";
      throw new UserError(
        `Cannot read ${what} ${path}: it is ${size}, above the ${
          Math.round(PIXEL_LIMIT / 1e6)
        }-megapixel ` +
          `limit of the image decoder; scale it down (the network sees it at its input size anyway)`,
      );
    }
    const reason = /unsupported image format/i.test(firstLine(error))
      ? "file is not an image (JPEG, PNG or WebP expected)"
      : `file is damaged or not an image (${firstLine(error)})`;
    throw new UserError(
      `Cannot read ${what} ${path}: ${reason}; replace it with a JPEG, PNG or WebP`,
    );
  }
}

/**
 * A 16-bit one-channel file (with or without alpha) whose values are all
 * below 256, as RGB with those values unscaled (transparent pixels black);
 * `undefined` for any other file. Class-index masks are saved this way, and
 * the usual conversion to 8 bits would divide them by 257, to 0.
 */
async function decodeSmallSixteenBitGrey(bytes: Uint8Array): Promise<RasterImage | undefined> {
  const meta = await sharp(bytes).metadata();
  const bands = (meta.channels ?? 0) - (meta.hasAlpha ? 1 : 0);
  if (meta.depth !== "ushort" || bands !== 1 || meta.isPalette) return undefined;
  const { data, info } = await sharp(bytes).autoOrient().toColourspace("grey16")
    .raw({ depth: "ushort" }).toBuffer({ resolveWithObject: true }); // grey (+ alpha), unscaled
  const values = new Uint16Array(data.buffer, data.byteOffset, data.length / 2);
  const stride = info.channels, alpha = stride === 2 ? 1 : -1;
  const pixels = info.width * info.height;
  const rgb = new Uint8Array(pixels * 3);
  for (let pixel = 0; pixel < pixels; pixel++) {
    const value = values[pixel * stride]!;
    if (value > 255) return undefined;
    const opaque = alpha < 0 || values[pixel * stride + alpha]! > 0;
    rgb.fill(opaque ? value : 0, 3 * pixel, 3 * pixel + 3);
  }
  return { data: rgb, width: info.width, height: info.height, channels: 3 };
}

/**
 * Writes bytes atomically: to a temporary file beside the target, then a
 * rename, so a reader never sees a half-written file. The write follows the
 * output policy of `output_files.ts`: never over an input of this run or a
 * file this project did not write (a PNG gets the project's mark), and an
 * operating-system error (out of space, permission) is one line.
 *
 * @param path The target file; its folder is created if missing.
 * @param bytes The content.
 * @param flag The flag that chose the folder, named in errors. @default "--out"
 * @returns A promise that resolves when the file is in place.
 * @throws {UserError} When the policy refuses the path, or the write fails.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./image_io.ts";
 * import { assertEquals } from "./assert.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/a/b.txt`, new TextEncoder().encode("hi"));
 * assertEquals(await Deno.readTextFile(`${dir}/a/b.txt`), "hi");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(
  path: string,
  bytes: Uint8Array,
  flag = "--out",
): Promise<void> {
  await claimOutputFile(path, flag);
  const temporary = join(
    dirname(path),
    `.${basename(path)}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`,
  );
  await guardWrite(path, `pass ${flag} <another folder>`, async () => {
    await Deno.mkdir(dirname(path), { recursive: true });
    try {
      await Deno.writeFile(temporary, markPng(bytes));
      await Deno.rename(temporary, path);
    } catch (error) {
      await Deno.remove(temporary).catch(() => {});
      throw error;
    }
  });
}

/** Encoding settings of {@linkcode encodeImage}. */
export interface EncodeImageOptions {
  /** `png` (lossless) or `jpeg`. @default "png" */
  format?: "png" | "jpeg";
  /** JPEG quality, 1 to 100. @default 90 */
  quality?: number;
}

/**
 * Encodes 8-bit pixels as PNG or JPEG.
 *
 * @param image The pixels (1, 3 or 4 channels).
 * @param options Format and quality.
 * @returns The encoded file's bytes.
 *
 * @example
 * ```ts
 * import { encodeImage } from "./image_io.ts";
 * import { assertEquals } from "./assert.ts";
 * const png = await encodeImage({ data: new Uint8Array(12), width: 2, height: 2, channels: 3 });
 * assertEquals(Array.from(png.subarray(1, 4)), [80, 78, 71]); // "PNG"
 * ```
 */
export async function encodeImage(
  image: RasterImage,
  options: EncodeImageOptions = {},
): Promise<Uint8Array> {
  const { format = "png", quality = 90 } = options;
  const pipeline = sharp(image.data, {
    raw: {
      width: image.width,
      height: image.height,
      channels: image.channels as 1 | 2 | 3 | 4,
    },
  });
  const buffer = format === "png"
    ? await pipeline.png().toBuffer()
    : await pipeline.jpeg({ quality }).toBuffer();
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0] ?? "";
}
