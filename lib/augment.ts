/**
 * Random augmentation of training minibatches, for the tuned recipes: a random
 * crop of part of each photo resized to the model input, the eight flips and
 * 90-degree turns of a square, and colour jitter (brightness, contrast,
 * saturation). Masks get the same crop, flips and turns, resized with
 * nearest-neighbour so they stay class indices; colour jitter touches only the
 * photos.
 *
 * All choices come from the `rng` the training loop passes, so a seeded run is
 * repeatable. Everything runs as tensor ops (`CropAndResize`, `Transpose`,
 * `Select`), on any backend.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "./rng.ts";

/** Settings of {@linkcode createAugment}. */
export interface AugmentOptions {
  /** Output height and width: the model input. */
  size: number;
  /** Smallest crop side as a fraction of the photo side (height and width drawn apart). @default 0.5 */
  minCrop?: number;
  /** Random left-right and up-down flips. @default true */
  flips?: boolean;
  /** Random 90-degree turns (a transpose, with the flips: all eight). @default true */
  turns?: boolean;
  /** Colour jitter strength: brightness, contrast and saturation factors in [1 - j, 1 + j]. @default 0.2 */
  jitter?: number;
}

/**
 * An augmentation as the training loop applies it to every minibatch: it
 * returns new tensors (or the ones it was given) and may use `rng` for its
 * random choices.
 */
export type Augment = (
  images: tf.Tensor4D,
  masks: tf.Tensor3D,
  rng: Rng,
) => { images: tf.Tensor4D; masks: tf.Tensor3D };

/**
 * Draws one crop box per image: height and width fractions in [minCrop, 1], a
 * random position, and with `flips` a random swap of each box's two ends
 * (`CropAndResize` then samples the crop mirrored).
 *
 * @param count Number of images.
 * @param options Smallest crop and whether to flip.
 * @param rng The random source.
 * @returns Boxes `[y1, x1, y2, x2]`, coordinates in [0, 1].
 *
 * @example
 * ```ts
 * import { cropBoxes } from "./augment.ts";
 * import { createRng } from "./rng.ts";
 * import { assertEquals } from "./assert.ts";
 * const [box] = cropBoxes(1, { size: 8, minCrop: 1, flips: false }, createRng(3));
 * assertEquals(box, [0, 0, 1, 1]);
 * ```
 */
export function cropBoxes(count: number, options: AugmentOptions, rng: Rng): number[][] {
  const { minCrop = 0.5, flips = true } = options;
  const boxes: number[][] = [];
  for (let index = 0; index < count; index++) {
    const height = minCrop + (1 - minCrop) * rng();
    const width = minCrop + (1 - minCrop) * rng();
    const top = (1 - height) * rng();
    const left = (1 - width) * rng();
    let [y1, y2] = [top, top + height];
    let [x1, x2] = [left, left + width];
    if (flips && rng() < 0.5) [y1, y2] = [y2, y1]; // up-down flip
    if (flips && rng() < 0.5) [x1, x2] = [x2, x1]; // left-right flip
    boxes.push([y1, x1, y2, x2]);
  }
  return boxes;
}

/**
 * Creates an augmentation: per image a random crop (resized to `size`),
 * random flips and 90-degree turns, and colour jitter on the photo.
 *
 * @param options Output size and what to randomize.
 * @returns A function from a minibatch (images [n, h, w, 3] in [0, 1], masks
 * [n, h, w] class indices, any h and w) to an augmented one at `size` x
 * `size`; it disposes nothing it was given.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { createAugment } from "./augment.ts";
 * import { createRng } from "./rng.ts";
 * import { assertEquals } from "./assert.ts";
 * const augment = createAugment({ size: 4 });
 * const images = tf.ones([2, 8, 8, 3]) as tf.Tensor4D;
 * const masks = tf.ones([2, 8, 8], "int32") as tf.Tensor3D;
 * const out = augment(images, masks, createRng(1));
 * assertEquals(out.images.shape, [2, 4, 4, 3]);
 * assertEquals(Array.from(out.masks.dataSync()), Array(32).fill(1));
 * ```
 */
export function createAugment(options: AugmentOptions): Augment {
  const { size, turns = true, jitter = 0.2 } = options;
  return (images, masks, rng) =>
    tf.tidy(() => {
      const count = images.shape[0];
      const boxes = tf.tensor2d(cropBoxes(count, options, rng), [count, 4]);
      const boxIndices = tf.range(0, count, 1, "int32") as tf.Tensor1D;
      let outImages = tf.image.cropAndResize(images, boxes, boxIndices, [size, size], "bilinear");
      const maskPlanes = tf.expandDims(tf.cast(masks, "float32"), 3) as tf.Tensor4D; // [n, h, w, 1]
      let outMasks = tf.image.cropAndResize(maskPlanes, boxes, boxIndices, [size, size], "nearest");
      if (turns) {
        const choices = Array.from({ length: count }, () => rng() < 0.5);
        const turned = tf.tensor4d(choices, [count, 1, 1, 1], "bool");
        outImages = tf.where(turned, tf.transpose(outImages, [0, 2, 1, 3]), outImages);
        outMasks = tf.where(turned, tf.transpose(outMasks, [0, 2, 1, 3]), outMasks);
      }
      if (jitter > 0) outImages = colourJitter(outImages, jitter, rng);
      const classes = tf.cast(tf.round(tf.squeeze(outMasks, [3])), "int32"); // [n, size, size]
      return { images: outImages as tf.Tensor4D, masks: classes as tf.Tensor3D };
    });
}

/**
 * Random brightness, contrast and saturation per image, clipped to [0, 1].
 *
 * @param images Shape [n, h, w, 3], values in [0, 1].
 * @param strength Each factor is drawn from [1 - strength, 1 + strength].
 * @param rng The random source.
 * @returns Shape [n, h, w, 3].
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { colourJitter } from "./augment.ts";
 * import { createRng } from "./rng.ts";
 * import { assert } from "./assert.ts";
 * const images = tf.randomUniform([2, 4, 4, 3]) as tf.Tensor4D;
 * const jittered = colourJitter(images, 0.5, createRng(1)).dataSync();
 * assert(jittered.every((value) => value >= 0 && value <= 1));
 * ```
 */
export function colourJitter(images: tf.Tensor4D, strength: number, rng: Rng): tf.Tensor4D {
  return tf.tidy(() => {
    const count = images.shape[0];
    const factors = (): tf.Tensor4D =>
      tf.tensor4d(
        Array.from({ length: count }, () => 1 + strength * (2 * rng() - 1)),
        [count, 1, 1, 1],
      );
    const brightness = factors();
    const contrast = factors();
    const saturation = factors();
    let x = tf.mul(images, brightness);
    const mean = tf.mean(x, [1, 2, 3], true); // [n, 1, 1, 1]
    x = tf.add(tf.mul(tf.sub(x, mean), contrast), mean);
    const grey = tf.mean(x, 3, true); // [n, h, w, 1]
    x = tf.add(tf.mul(tf.sub(x, grey), saturation), grey);
    return tf.clipByValue(x, 0, 1) as tf.Tensor4D;
  });
}
