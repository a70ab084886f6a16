/**
 * The photo formats every reader of the project takes, by file extension:
 * the dataset reader, `deno task segment` and (through the browser) the
 * page. One list, so that what one of them reads, the others read too.
 *
 * @module
 */

/** Extensions of the photos read (any case): JPEG, PNG and WebP, which sharp and browsers decode. */
export const PHOTO_EXTENSIONS: readonly string[] = [".jpg", ".jpeg", ".png", ".webp"];

/** The formats as messages name them. */
export const PHOTO_FORMATS = "JPEG, PNG or WebP";

/**
 * Whether a file name has the extension of a photo the project reads.
 *
 * @param name A file name or path.
 * @returns `true` for `.jpg`, `.jpeg`, `.png` and `.webp`, in any case.
 *
 * @example
 * ```ts
 * import { isPhotoName } from "./photo_formats.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals([isPhotoName("a.WEBP"), isPhotoName("a.jpg"), isPhotoName("a.bmp")], [true, true, false]);
 * ```
 */
export function isPhotoName(name: string): boolean {
  const dot = name.lastIndexOf(".");
  return dot >= 0 && PHOTO_EXTENSIONS.includes(name.slice(dot).toLowerCase());
}
