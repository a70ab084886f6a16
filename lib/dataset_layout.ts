/**
 * The Imori layout of a dataset folder, given as the list of its files'
 * paths: which photo goes with which mask, and the one-line refusals when one
 * is missing. Platform-neutral (no file API): `dataset.ts` takes its messages
 * from here, and the training page pairs the files of a folder the user drops
 * (or of the dataset `deno task serve --data` serves) with it, so that both
 * refuse the same folder in the same words.
 *
 * ```
 * <dir>/{train,test}/images/<class>/<name>.jpg      photos (JPEG, PNG or WebP)
 * <dir>/{train,test}/seg_images/<class>/<name>.png  masks, same name and size
 * ```
 *
 * @module
 */
import { UserError } from "./errors.ts";
import { isPhotoName, PHOTO_FORMATS } from "./photo_formats.ts";

/** One photo and its mask, as paths inside the listed folder. */
export interface LayoutPair {
  /** File stem, e.g. "madara_0003". */
  name: string;
  /** The class folder, e.g. "madara". */
  folder: string;
  /** The photo's path, e.g. "imori/train/images/madara/madara_0003.jpg". */
  image: string;
  /** The mask's path, e.g. "imori/train/seg_images/madara/madara_0003.png". */
  mask: string;
}

/**
 * The refusal of a split with no photos, as the dataset reader words it.
 *
 * @param imagesDir The split's photo folder, e.g. `data/imori/train/images`.
 * @param split `train` or `test`.
 * @returns The one-line message.
 *
 * @example
 * ```ts
 * import { noImagesMessage } from "./dataset_layout.ts";
 * import { assert } from "./assert.ts";
 * assert(noImagesMessage("d/train/images", "train").startsWith("No images in d/train/images/<class>/"));
 * ```
 */
export function noImagesMessage(imagesDir: string, split: "train" | "test"): string {
  return `No images in ${imagesDir}/<class>/; expected ${PHOTO_FORMATS} photos there ` +
    `(the Imori layout: ${split}/images/akahara/akahara_0001.jpg)`;
}

/**
 * The refusal of a photo with no mask, as the dataset reader words it.
 *
 * @param image The photo's path.
 * @param mask The mask's path that does not exist.
 * @param namesake A file of the mask's name with another extension, e.g. a `.jpg` mask.
 * @returns The one-line message.
 *
 * @example
 * ```ts
 * import { missingMaskMessage } from "./dataset_layout.ts";
 * import { assert } from "./assert.ts";
 * assert(missingMaskMessage("i/a.jpg", "m/a.png", "m/a.jpg").includes("save it as m/a.png"));
 * ```
 */
export function missingMaskMessage(image: string, mask: string, namesake?: string): string {
  return namesake === undefined
    ? `Image ${image} has no mask: ${mask} does not exist; add the mask or remove the image`
    : `Image ${image} has no mask: ${mask} does not exist, but ${namesake} does; masks are read ` +
      `as PNG only (lossless, so class colours stay exact): save it as ${mask}`;
}

/**
 * Pairs the photos of one split with their masks, from the paths of every
 * file in a dataset folder, with the dataset reader's rules: photos
 * (`JPEG, PNG or WebP`) under `<split>/images/<class>/`, each with the PNG of
 * the same name under `<split>/seg_images/<class>/` (the extension in any
 * case), hidden files and folders skipped, sorted by class folder and name.
 *
 * @param root The folder's path, prefixed to every path named, e.g. `imori`.
 * @param paths Every file in it, relative and `/`-separated, e.g.
 *   `train/images/akahara/akahara_0001.jpg`.
 * @param split `train` or `test`.
 * @returns The pairs, with `root/`-prefixed paths.
 * @throws {UserError} When the split holds no photo, or a photo has no mask (naming a file of
 *   the mask's name with another extension when there is one).
 *
 * @example
 * ```ts
 * import { pairLayout } from "./dataset_layout.ts";
 * import { assertEquals, assertThrows } from "./assert.ts";
 * const paths = ["train/images/madara/m_1.jpg", "train/seg_images/madara/m_1.PNG"];
 * assertEquals(pairLayout("d", paths, "train"), [{
 *   name: "m_1", folder: "madara", image: "d/train/images/madara/m_1.jpg",
 *   mask: "d/train/seg_images/madara/m_1.PNG",
 * }]);
 * assertThrows(() => pairLayout("d", paths.slice(0, 1), "train"), /m_1.jpg has no mask/);
 * ```
 */
export function pairLayout(
  root: string,
  paths: readonly string[],
  split: "train" | "test",
): LayoutPair[] {
  const byOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const photos: { folder: string; file: string }[] = [];
  const masks = new Map<string, string[]>(); // class folder -> mask file names
  for (const path of paths) {
    const parts = path.split("/");
    if (parts.length !== 4 || parts[0] !== split || parts.some((part) => part.startsWith("."))) {
      continue;
    }
    const [, kind, folder, file] = parts as [string, string, string, string];
    if (kind === "images" && isPhotoName(file)) photos.push({ folder, file });
    if (kind === "seg_images") masks.set(folder, [...(masks.get(folder) ?? []), file]);
  }
  const imagesDir = `${root}/${split}/images`;
  if (photos.length === 0) throw new UserError(noImagesMessage(imagesDir, split));
  photos.sort((a, b) => byOrder(a.folder, b.folder) || byOrder(a.file, b.file));
  return photos.map(({ folder, file }) => {
    const name = file.slice(0, file.lastIndexOf("."));
    const found = masks.get(folder) ?? [];
    const wanted = `${name}.png`;
    const maskDir = `${root}/${split}/seg_images/${folder}`;
    const image = `${imagesDir}/${folder}/${file}`;
    const mask = found.find((other) => other === wanted) ??
      found.find((other) => other.toLowerCase() === wanted.toLowerCase());
    if (mask === undefined) {
      const namesake = found.find((other) => other.slice(0, other.lastIndexOf(".")) === name);
      throw new UserError(
        missingMaskMessage(
          image,
          `${maskDir}/${wanted}`,
          namesake === undefined ? undefined : `${maskDir}/${namesake}`,
        ),
      );
    }
    return { name, folder, image, mask: `${maskDir}/${mask}` };
  });
}
