/**
 * The dataset reader's pixel work, platform-neutral: decoded photos and masks
 * in, the tensors a network trains on out. Each mask is checked against its
 * photo's size, mapped to classes at full size by the exercise's colour rule
 * (`mask_classes.ts`), resized with nearest-neighbour; each photo resized
 * bilinearly to [0, 1]; the flips of the tutorial's answers added; a split
 * whose masks are all background refused. Every refusal is one line that
 * names the file. `dataset.ts` feeds it files read from disk, the page's
 * training worker the synthetic newts it draws or the photos a user drops.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { UserError } from "./errors.ts";
import { type MaskMode, maskToClasses } from "./mask_classes.ts";
import { type RasterImage, resizeBilinear, resizeNearest } from "./raster.ts";

/** A loaded split: photos, masks and names, in the same order. */
export interface Dataset {
  /** Photos, shape [n, size, size, 3], float32 in [0, 1]. */
  images: tf.Tensor4D;
  /** Class index per pixel, shape [n, size, size], int32. */
  masks: tf.Tensor3D;
  /** File stem per photo, e.g. "akahara_0011"; flipped copies end in "_lr", "_ud", "_lrud". */
  names: string[];
  /**
   * The class folder of each photo, e.g. "akahara", in the order of `names`: with the name,
   * what tells apart two photos of the same name in two class folders (figures are written
   * under `<out>/<class folder>/`). Absent for data that comes from no folder.
   */
  folders?: string[];
  /** Class names by index: ["background", "akahara", "madara"] or ["background", "newt"]. */
  classNames: string[];
}

/** One decoded photo and its mask, and the paths that messages name. */
export interface PhotoPair {
  /** File stem, e.g. "madara_0003". */
  name: string;
  /** The photo, RGB. */
  image: RasterImage;
  /** The mask, RGB (flattened on black where it had alpha). */
  mask: RasterImage;
  /** The photo's path, named in errors. */
  imageFile: string;
  /** The mask's path, named in errors. */
  maskFile: string;
  /** The class folder the pair was read from, e.g. "akahara", where it came from one. */
  folder?: string;
}

/** Settings of {@linkcode DatasetAssembler} and {@linkcode assembleDataset}. */
export interface AssembleOptions {
  /** The training or the test photos: a training split must hold a newt pixel. */
  split: "train" | "test";
  /** Images and masks are resized to size x size. */
  size: number;
  /** The exercise's rule from mask colour to class. */
  mode: MaskMode;
  /** How many pairs will be added. */
  count: number;
  /** Add the flips of the original answers (left-right, up-down, both) after each photo.
   * @default {false} */
  flips?: boolean;
  /** The masks' folder, named in the split's messages. @default {"the masks"} */
  masksDir?: string;
  /** Called with a warning, such as a class with no pixel in the split.
   * @default {console.warn with "warning: "} */
  onWarning?: (message: string) => void;
}

const VARIANTS = ["", "_lr", "_ud", "_lrud"];

/**
 * Builds a dataset one photo at a time, so that a reader decodes one file
 * pair after the other and the first faulty pair is the one named.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import { DatasetAssembler } from "./dataset_pixels.ts";
 * import { assertEquals } from "./assert.ts";
 * const mode = { classNames: ["background", "newt"], ofColour: (r: number) => r > 64 ? 1 : 0, ofIndex: (i: number) => i };
 * const pixels = (value: number) => ({ data: new Uint8Array(12).fill(value), width: 2, height: 2, channels: 3 });
 * const assembler = new DatasetAssembler({ split: "train", size: 1, mode, count: 1 });
 * assembler.add({ name: "a", image: pixels(255), mask: pixels(128), imageFile: "a.jpg", maskFile: "a.png" });
 * const data = assembler.finish();
 * assertEquals([data.images.shape, Array.from(data.masks.dataSync())], [[1, 1, 1, 3], [1]]);
 * ```
 */
export class DatasetAssembler {
  #options: AssembleOptions;
  #images: Float32Array;
  #masks: Int32Array;
  #names: string[] = [];
  #folders: (string | undefined)[] = [];
  #classPixels: number[];

  /** @param options Split, size, colour rule, number of pairs and flips. */
  constructor(options: AssembleOptions) {
    this.#options = options;
    const pixels = options.size * options.size;
    const count = options.count * (options.flips ? VARIANTS.length : 1);
    this.#images = new Float32Array(count * pixels * 3);
    this.#masks = new Int32Array(count * pixels);
    this.#classPixels = new Array<number>(options.mode.classNames.length).fill(0);
  }

  /**
   * Adds one photo and its mask (and its flips).
   *
   * @param pair The decoded photo and mask.
   * @throws {UserError} For a mask of another size than its photo, or a colour that is no class.
   */
  add(pair: PhotoPair): void {
    const { size, mode, flips = false } = this.#options;
    const { image: photo, mask } = pair;
    if (photo.width !== mask.width || photo.height !== mask.height) {
      throw new UserError(
        `Mask ${pair.maskFile} is ${mask.width}x${mask.height} but its image ${pair.imageFile} ` +
          `is ${photo.width}x${photo.height}; make the mask the same size as the image`,
      );
    }
    if (this.#names.length >= this.#masks.length / (size * size)) {
      throw new Error(`More pairs added than the ${this.#options.count} announced`);
    }
    const resized = resizeBilinear(photo, size, size); // [size, size, 3]
    const fullSize = maskToClasses(mask.data, {
      width: mask.width,
      height: mask.height,
      mode,
      file: pair.maskFile,
    }); // [height, width]
    for (const index of fullSize) this.#classPixels[index]!++;
    const classes = resizeNearest(fullSize, {
      width: mask.width,
      height: mask.height,
      toWidth: size,
      toHeight: size,
    }); // [size, size]
    const pixels = size * size;
    for (const variant of flips ? VARIANTS : [""]) {
      const index = this.#names.length;
      this.#names.push(pair.name + variant);
      this.#folders.push(pair.folder);
      const flipX = variant.includes("lr"), flipY = variant.includes("ud");
      for (let y = 0; y < size; y++) {
        const fromY = flipY ? size - 1 - y : y;
        for (let x = 0; x < size; x++) {
          const from = fromY * size + (flipX ? size - 1 - x : x);
          const to = index * pixels + y * size + x;
          this.#masks[to] = classes[from]!;
          this.#images[3 * to] = resized[3 * from]!;
          this.#images[3 * to + 1] = resized[3 * from + 1]!;
          this.#images[3 * to + 2] = resized[3 * from + 2]!;
        }
      }
    }
  }

  /**
   * The dataset of the pairs added, as tensors the caller disposes.
   *
   * @returns Images, masks, names and class names.
   * @throws {UserError} For a training split whose masks hold no newt pixel.
   */
  finish(): Dataset {
    const { split, size, mode, masksDir = "the masks" } = this.#options;
    const onWarning = this.#options.onWarning ??
      ((message) => console.warn(`warning: ${message}`));
    const classNames = [...mode.classNames];
    const photos = this.#options.count;
    const absent = classNames.filter((_, index) => this.#classPixels[index] === 0);
    const newts = classNames.slice(1);
    if (split === "train" && newts.every((name) => absent.includes(name))) {
      throw new UserError(
        `Every mask in ${masksDir} is all background (${photos} masks, no ` +
          `${newts.join(" or ")} pixel), so there is nothing to learn; paint the newts akahara ` +
          `red (128, 0, 0) or madara green (0, 128, 0), or store class indices 0, 1, 2`,
      );
    }
    if (absent.length > 0) {
      onWarning(
        `no pixel of class ${absent.join(" or ")} in the ${photos} ${split} masks in ` +
          `${masksDir}; ${split === "train" ? "a model cannot learn" : "nothing can test"} ` +
          `${absent.length > 1 ? "those classes" : "it"} there, check those masks`,
      );
    }
    const count = this.#names.length;
    return {
      images: tf.tensor4d(this.#images.subarray(0, count * size * size * 3), [
        count,
        size,
        size,
        3,
      ]),
      masks: tf.tensor3d(this.#masks.subarray(0, count * size * size), [count, size, size]),
      names: [...this.#names],
      ...(this.#folders.every((folder) => folder !== undefined)
        ? { folders: this.#folders as string[] }
        : {}),
      classNames,
    };
  }
}

/**
 * A dataset from decoded pairs held in memory, as the dataset reader builds
 * it from files: the page trains on what this returns.
 *
 * @param pairs The photos and masks, in order.
 * @param options Split, size, colour rule and flips (`count` is `pairs.length`).
 * @returns The tensors, which the caller disposes.
 * @throws {UserError} For a mask of another size or with a colour that is no class, or a
 *   training split with no newt pixel.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import { assembleDataset } from "./dataset_pixels.ts";
 * import { assertThrows } from "./assert.ts";
 * const mode = { classNames: ["background", "newt"], ofColour: () => 0, ofIndex: (i: number) => i };
 * const image = { data: new Uint8Array(12), width: 2, height: 2, channels: 3 };
 * const mask = { data: new Uint8Array(3), width: 1, height: 1, channels: 3 };
 * const pair = { name: "a", image, mask, imageFile: "a.jpg", maskFile: "a.png" };
 * assertThrows(() => assembleDataset([pair], { split: "test", size: 1, mode }), /Mask a.png is 1x1/);
 * ```
 */
export function assembleDataset(
  pairs: readonly PhotoPair[],
  options: Omit<AssembleOptions, "count">,
): Dataset {
  const assembler = new DatasetAssembler({ ...options, count: pairs.length });
  for (const pair of pairs) assembler.add(pair);
  return assembler.finish();
}
