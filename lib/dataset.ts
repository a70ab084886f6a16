/**
 * Loads a dataset in the tutorial's (Imori) layout into tensors:
 *
 * ```
 * <dir>/{train,test}/images/<class>/<name>.jpg      photos (JPEG, PNG or WebP)
 * <dir>/{train,test}/seg_images/<class>/<name>.png  masks, same name and size
 * ```
 *
 * Photos are resized bilinearly and scaled to [0, 1]; masks are mapped to
 * class indices at full size by the colour rule of `mask_classes.ts`, then
 * resized with nearest-neighbour. Tensors are NHWC.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { isDirectory } from "./data_dir.ts";
import { UserError } from "./errors.ts";
import { missingMaskMessage, noImagesMessage } from "./dataset_layout.ts";
import { type Dataset, DatasetAssembler } from "./dataset_pixels.ts";
import { decodeImage } from "./image_io.ts";
import type { MaskMode } from "./mask_classes.ts";
import { isProjectFile, noteInputs } from "./output_files.ts";
import { basename, dirname, extname, join } from "./path.ts";
import { isPhotoName, PHOTO_FORMATS } from "./photo_formats.ts";
import type { RecipeSettings } from "./recipes.ts";

export type { MaskMode } from "./mask_classes.ts";
export type { Dataset } from "./dataset_pixels.ts";

/** Which part of the dataset to load, and how. */
export interface LoadDatasetOptions {
  /** The training or the test photos. */
  split: "train" | "test";
  /** Images and masks are resized to size x size. @default 64 */
  size: number;
  /** The exercise's rule from mask colour to class: `BINARY` of bin_dataset, `CLASSES` of semaseg_dataset. */
  mode: MaskMode;
  /** Add the flips of the original answers (left-right, up-down, both) after each photo. @default false */
  flips?: boolean;
  /** Called with a warning, such as a class with no pixel in the split.
   * @default {prints `warning: <message>` on stderr} */
  onWarning?: (message: string) => void;
}

/** One photo and its mask found on disk. */
export interface DatasetFile {
  /** File stem, e.g. "madara_0003". */
  name: string;
  /** The class folder it is in, e.g. "madara". */
  folder: string;
  /** The photo's path. */
  image: string;
  /** The mask's path. */
  mask: string;
}

/**
 * Lists the photos of one split and their masks, sorted by class folder and
 * name. Files and class folders reached through symbolic links are followed;
 * hidden files and folders (names starting with ".") are skipped, whatever
 * their extension; a mask is found whatever the case of its extension
 * (`.png`, `.PNG`). Every file is accounted for: a mask with no photo, and a
 * file in a photo folder that is no photo this project reads, are named in a
 * warning (they are not used).
 *
 * @param dir The dataset folder.
 * @param split "train" or "test".
 * @param onWarning Called with each warning. @default prints `warning: <message>` on stderr
 * @returns The photos with their mask paths.
 * @throws {UserError} When the folder is missing, holds no photos, a photo
 * has no mask (naming a file of the same name with another extension when
 * there is one), or a link leads nowhere.
 *
 * @example
 * ```ts
 * import { listDataset } from "./dataset.ts";
 * import { assertRejects } from "./assert.ts";
 * await assertRejects(listDataset("no/such/folder", "train"), /does not exist/);
 * ```
 */
export async function listDataset(
  dir: string,
  split: "train" | "test",
  onWarning: (message: string) => void = (message) => console.warn(`warning: ${message}`),
): Promise<DatasetFile[]> {
  if (!(await isDirectory(dir))) {
    throw new UserError(
      `Data folder ${dir} does not exist; pass --data <folder in the Imori layout>, ` +
        `or run \`deno task download\` for the real dataset`,
    );
  }
  const imagesDir = join(dir, split, "images");
  const files: DatasetFile[] = [];
  const skipped: string[] = [];
  const masksByFolder = new Map<string, string[]>();
  let ours = 0;
  if (await isDirectory(imagesDir)) {
    for (const classEntry of await visibleEntries(imagesDir)) {
      const classDir = join(imagesDir, classEntry.name);
      if ((await entryKind(classDir, classEntry, "Class folder")) !== "directory") continue;
      const maskDir = join(dir, split, "seg_images", classEntry.name);
      const masks = (await isDirectory(maskDir))
        ? (await visibleEntries(maskDir)).map((entry) => entry.name)
        : [];
      masksByFolder.set(maskDir, masks);
      for (const entry of await visibleEntries(classDir)) {
        const extension = extname(entry.name);
        const image = join(classDir, entry.name);
        if ((await entryKind(image, entry, "Image")) !== "file") continue;
        if (!isPhotoName(entry.name)) {
          skipped.push(image);
          continue;
        }
        if (await isProjectFile(image)) {
          ours++; // a figure or mask this project wrote (segment --out into the folder), no photo
          continue;
        }
        const name = entry.name.slice(0, -extension.length);
        const mask = masks.find((file) => file === `${name}.png`) ??
          masks.find((file) => file.toLowerCase() === `${name}.png`.toLowerCase()) ??
          `${name}.png`;
        files.push({ name, folder: classEntry.name, image, mask: join(maskDir, mask) });
      }
    }
  }
  warnUnused(join(dir, split), files, skipped, onWarning);
  if (ours > 0) {
    onWarning(
      `${join(dir, split, "images")}: left out ${ours} figures and masks this project wrote ` +
        "(not photos)",
    );
  }
  if (files.length === 0) {
    throw new UserError(noImagesMessage(imagesDir, split));
  }
  for (const file of files) {
    if (await isFile(file.mask)) continue;
    const target = await Deno.readLink(file.mask).catch(() => undefined);
    if (target !== undefined) {
      throw new UserError(
        `Image ${file.image} has no mask: ${file.mask} is a symbolic link to ${target}, which ` +
          `does not exist; fix the link or remove the image`,
      );
    }
    const maskDir = dirname(file.mask);
    const namesake = masksByFolder.get(maskDir)?.find((other) =>
      other.slice(0, other.length - extname(other).length) === file.name
    );
    throw new UserError(
      missingMaskMessage(
        file.image,
        file.mask,
        namesake === undefined ? undefined : join(maskDir, namesake),
      ),
    );
  }
  noteInputs(files.flatMap((file) => [file.image, file.mask])); // no output may replace them
  return files;
}

/**
 * Warns of the files of a split that are not used: masks with no photo (a
 * photo missing, or in a format not read), files in a photo folder that are
 * no photo this project reads.
 */
function warnUnused(
  splitDir: string,
  files: DatasetFile[],
  skipped: string[],
  onWarning: (message: string) => void,
): void {
  const used = new Set(files.map((file) => file.mask.toLowerCase()));
  const masksDir = join(splitDir, "seg_images");
  const orphans: string[] = [];
  const walk = (folder: string, depth: number) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(folder)].filter((entry) => !entry.name.startsWith("."));
    } catch {
      return;
    }
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(folder, entry.name);
      if (depth === 0) walk(path, 1);
      else if (!used.has(path.toLowerCase())) orphans.push(path);
    }
  };
  walk(masksDir, 0);
  const list = (paths: string[]) =>
    paths.slice(0, 3).map((path) => basename(dirname(path)) + "/" + basename(path)).join(", ") +
    (paths.length > 3 ? `, and ${paths.length - 3} more` : "");
  if (orphans.length > 0) {
    onWarning(
      `${orphans.length} mask${orphans.length > 1 ? "s" : ""} in ${masksDir} ` +
        `${orphans.length > 1 ? "have" : "has"} no photo of the same name in ` +
        `${join(splitDir, "images")} and ${orphans.length > 1 ? "are" : "is"} not used ` +
        `(${list(orphans)}); add the photos (${PHOTO_FORMATS}) or remove the masks`,
    );
  }
  if (skipped.length > 0) {
    onWarning(
      `${skipped.length} file${skipped.length > 1 ? "s" : ""} in ${join(splitDir, "images")} ` +
        `${skipped.length > 1 ? "are" : "is"} no ${PHOTO_FORMATS} photo and not used ` +
        `(${list(skipped)}); convert or remove ${skipped.length > 1 ? "them" : "it"}`,
    );
  }
}

/**
 * Loads one split of a dataset in the Imori layout.
 *
 * Photos and masks are read upright (EXIF orientation applied). A class
 * with no pixel in any mask of the split is reported in one warning line;
 * a training split whose masks are all background is refused, since there
 * is nothing to learn.
 *
 * @param dir The dataset folder.
 * @param options Split, size, mask mode, flips and where warnings go.
 * @returns Photos [n, size, size, 3] in [0, 1], masks [n, size, size] int32, names, class names.
 * @throws {UserError} On a missing folder, no photos, a missing, empty or
 * undecodable file, a mask of another size than its photo, a mask colour
 * that is no class, or a training split with no pixel of any newt class.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import { loadDataset } from "./dataset.ts";
 * import { assertRejects } from "./assert.ts";
 * // The mask rule is an exercise's lesson (CLASSES of exercises/semaseg_dataset.ts); a short one:
 * const mode = {
 *   classNames: ["background", "akahara", "madara"],
 *   ofColour: (red: number, green: number) => red > 64 ? 1 : green > 64 ? 2 : 0,
 *   ofIndex: (index: number) => index,
 * };
 * await assertRejects(
 *   loadDataset("no/such/folder", { split: "train", size: 64, mode }),
 *   /Data folder no\/such\/folder does not exist/,
 * );
 * ```
 */
export async function loadDataset(dir: string, options: LoadDatasetOptions): Promise<Dataset> {
  const { split, size = 64, mode, flips = false } = options;
  const onWarning = options.onWarning ?? ((message) => console.warn(`warning: ${message}`));
  const files = await listDataset(dir, split, onWarning);
  // The pixel work is platform-neutral (dataset_pixels.ts): the page's worker runs it too.
  const assembler = new DatasetAssembler({
    split,
    size,
    mode,
    flips,
    count: files.length,
    masksDir: join(dir, split, "seg_images"),
    onWarning,
  });
  for (const file of files) {
    const [image, mask] = await Promise.all([
      decodeImage(file.image, { what: "image" }),
      decodeImage(file.mask, { what: "mask", flattenOnBlack: true }),
    ]);
    assembler.add({
      name: file.name,
      image,
      mask,
      imageFile: file.image,
      maskFile: file.mask,
      folder: file.folder,
    });
  }
  return assembler.finish();
}

/** The entries of a folder, sorted by name, hidden ones (".DS_Store", "._x.jpg") left out. */
async function visibleEntries(dir: string): Promise<Deno.DirEntry[]> {
  const entries: Deno.DirEntry[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.startsWith(".")) entries.push(entry);
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * What an entry is, following a symbolic link; a link that leads nowhere is
 * an error naming it (it was meant to be read).
 */
async function entryKind(
  path: string,
  entry: Deno.DirEntry,
  what: string,
): Promise<"file" | "directory" | "other"> {
  let info: { isFile: boolean; isDirectory: boolean } = entry;
  if (entry.isSymlink) {
    try {
      info = await Deno.stat(path);
    } catch {
      const target = await Deno.readLink(path).catch(() => "?");
      throw new UserError(
        `${what} ${path} is a symbolic link to ${target}, which does not exist; ` +
          `fix the link or remove it`,
      );
    }
  }
  return info.isFile ? "file" : info.isDirectory ? "directory" : "other";
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** How often one class occurs in a dataset. */
export interface ClassCount {
  /** The class name. */
  name: string;
  /** Number of images with at least one pixel of the class. */
  images: number;
  /** Fraction of all pixels that are of the class, 0 to 1. */
  share: number;
}

/**
 * Counts, per class, the images containing it and its share of all pixels.
 *
 * @param masks Class index per pixel, shape [n, height, width].
 * @param classNames Class names by index.
 * @returns One count per class, in index order.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { countClasses } from "./dataset.ts";
 * import { assertEquals } from "./assert.ts";
 * const masks = tf.tensor3d([0, 0, 0, 1, 0, 0, 0, 0], [2, 2, 2], "int32");
 * assertEquals(countClasses(masks, ["background", "newt"]), [
 *   { name: "background", images: 2, share: 7 / 8 },
 *   { name: "newt", images: 1, share: 1 / 8 },
 * ]);
 * masks.dispose();
 * ```
 */
export function countClasses(masks: tf.Tensor3D, classNames: readonly string[]): ClassCount[] {
  const [count, height, width] = masks.shape;
  const values = masks.dataSync();
  const pixels = new Array(classNames.length).fill(0);
  const images = new Array(classNames.length).fill(0);
  for (let image = 0; image < count; image++) {
    const seen = new Array(classNames.length).fill(false);
    for (let pixel = image * height * width; pixel < (image + 1) * height * width; pixel++) {
      const index = values[pixel]!;
      pixels[index]++;
      seen[index] = true;
    }
    seen.forEach((present, index) => present && images[index]++);
  }
  return classNames.map((name, index) => ({
    name,
    images: images[index],
    share: pixels[index] / (count * height * width),
  }));
}

/** Options of {@linkcode loadSplit}. */
export interface LoadSplitOptions {
  /** Binarization (1 where newt) or the three classes. */
  mode: MaskMode;
  /** Model input height and width in pixels. */
  size: number;
  /** Each photo four times, as the tutorial's answers train. @default true for `train` */
  flips?: boolean;
  /**
   * The test split is read after training (`--test`): check it too, before the training split
   * is loaded, so that a missing or empty test split is refused before training starts.
   * @default false
   */
  testAfter?: boolean;
}

/**
 * Loads one split at the model size and says in one line what it holds:
 * the training split with the four flips of the tutorial's answers (as is,
 * left-right, up-down, both), the test split as it is.
 *
 * @param dir The dataset folder (Imori layout).
 * @param split `train` or `test`.
 * @param options Mask mode, input size, flips.
 * @returns The split; the caller disposes its tensors.
 * @throws {UserError} As {@linkcode loadDataset}; with `testAfter`, also when the test split
 * has no photos or a photo without its mask.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import { loadSplit } from "./dataset.ts";
 * import { writeSyntheticDataset } from "./synthetic_files.ts";
 * import { assertEquals } from "./assert.ts";
 * const dir = (await Deno.makeTempDir()) + "/data";
 * await writeSyntheticDataset(dir, { trainPerClass: 1, testPerClass: 1 });
 * // The mask rule is an exercise's lesson (CLASSES of exercises/semaseg_dataset.ts); a short one:
 * const mode = {
 *   classNames: ["background", "akahara", "madara"],
 *   ofColour: (red: number, green: number) => red > 64 ? 1 : green > 64 ? 2 : 0,
 *   ofIndex: (index: number) => index,
 * };
 * const train = await loadSplit(dir, "train", { mode, size: 16 });
 * assertEquals(train.images.shape, [8, 16, 16, 3]); // 2 photos x 4 flips
 * train.images.dispose();
 * train.masks.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadSplit(
  dir: string,
  split: "train" | "test",
  options: LoadSplitOptions,
): Promise<Dataset> {
  const { mode, size, flips = split === "train" } = options;
  // Its warnings come when it is loaded for the test.
  if (options.testAfter && split === "train") await listDataset(dir, "test", () => {});
  const data = await loadDataset(dir, { split, size, mode, flips });
  const photos = flips ? data.names.length / 4 : data.names.length;
  console.log(
    `data: ${data.names.length} ${split} images` +
      (flips ? ` (${photos} photos x 4 flips)` : "") +
      ` from ${dir} at ${size}x${size}, classes ${data.classNames.join(", ")}`,
  );
  return data;
}

/**
 * Loads the training photos for a recipe: with the four flips at the model
 * size for a recipe without augmentation, else once each at the larger
 * `trainSize` that the random crops are cut from; prints one line.
 *
 * @param dataDir The dataset folder.
 * @param mode Binarization or classes.
 * @param settings Settings from {@linkcode applyRecipe}.
 * @returns The training split; the caller disposes its tensors.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs"; // registers the cpu backend
 * import { loadRecipeTrainSplit } from "./dataset.ts";
 * import { recipe } from "./recipes.ts";
 * import { writeSyntheticDataset } from "./synthetic_files.ts";
 * import { assertEquals } from "./assert.ts";
 * const dir = (await Deno.makeTempDir()) + "/data";
 * await writeSyntheticDataset(dir, { trainPerClass: 1, testPerClass: 0 });
 * // The mask rule is an exercise's lesson (CLASSES of exercises/semaseg_dataset.ts); a short one:
 * const mode = {
 *   classNames: ["background", "akahara", "madara"],
 *   ofColour: (red: number, green: number) => red > 64 ? 1 : green > 64 ? 2 : 0,
 *   ofIndex: (index: number) => index,
 * };
 * const data = await loadRecipeTrainSplit(dir, mode, { ...recipe("tuned"), trainSize: 32 });
 * assertEquals(data.images.shape, [2, 32, 32, 3]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadRecipeTrainSplit(
  dataDir: string,
  mode: MaskMode,
  settings: RecipeSettings,
): Promise<Dataset> {
  const data = await loadDataset(dataDir, {
    split: "train",
    size: settings.trainSize,
    mode,
    flips: settings.flips,
  });
  const photos = settings.flips ? data.names.length / 4 : data.names.length;
  console.log(
    `data: ${photos} train photos from ${dataDir} at ${settings.trainSize}x${settings.trainSize}` +
      (settings.flips ? " (x 4 flips)" : "") +
      (settings.augment ? `, random crops resized to ${settings.size}x${settings.size}` : ""),
  );
  return data;
}
