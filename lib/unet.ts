/**
 * UNet (arXiv 1505.04597) and the tutorial's UNet-like variant, from the
 * shared blocks: five encoder levels of two CBR convs with 2x2 max-pooling
 * between them, four decoder levels of transposed-conv upsampling, centre
 * crop of the encoder map, concat and two CBR convs, then a 1x1 head.
 *
 * With unpadded (`valid`) convs each conv loses 2 pixels, so only some input
 * sizes work and the output is smaller than the input (572 -> 388,
 * 236 -> 52); with padding `same` the output has the input's size, which must
 * be a multiple of 16.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { convBlock, decoderBlock, maxPool, SeedSequence, segmentationHead } from "./blocks.ts";

/** Options of {@linkcode buildUNet}. */
export interface UNetOptions {
  /** Input height and width (check it first with {@linkcode unetOutputSize}). */
  size: number;
  /** Output channels; 1 gives a sigmoid head, more a softmax head. */
  classes: number;
  /** Filters of the five levels, e.g. `[64, 128, 256, 512, 1024]`. */
  filters: readonly number[];
  /** `valid` (the paper) or `same` (UNet-like). */
  padding: "same" | "valid";
  /** Seed of the weight initialisation. @default 0 */
  seed?: number;
  /** Model name. @default "unet" */
  name?: string;
}

/** Pixels lost by two unpadded 3x3 convs. */
const VALID_LOSS = 4;

/**
 * The output height of a UNet with `levels` levels for an input `size`, or
 * `undefined` when that size cannot work (an odd size before a pooling, or a
 * map that shrinks to nothing).
 *
 * @param size Input height and width.
 * @param padding `valid` (2 pixels lost per conv) or `same`.
 * @param levels Encoder levels, pools between them. @default 5
 * @returns The output size, or `undefined`.
 *
 * @example
 * ```ts
 * import { unetOutputSize } from "./unet.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(unetOutputSize(572, "valid"), 388);
 * assertEquals(unetOutputSize(236, "valid"), 52);
 * assertEquals(unetOutputSize(240, "valid"), undefined);
 * assertEquals(unetOutputSize(64, "same"), 64);
 * ```
 */
export function unetOutputSize(
  size: number,
  padding: "same" | "valid",
  levels = 5,
): number | undefined {
  const loss = padding === "valid" ? VALID_LOSS : 0;
  let current = size;
  for (let level = 1; level < levels; level++) {
    current -= loss;
    if (current < 2 || current % 2 !== 0) return undefined;
    current /= 2;
  }
  current -= loss; // bottom level
  for (let level = 1; level < levels; level++) {
    if (current < 1) return undefined;
    current = current * 2 - loss;
  }
  return current >= 1 ? current : undefined;
}

/**
 * Builds a UNet: input `[batch, size, size, 3]`, output probabilities
 * `[batch, out, out, classes]` with `out = unetOutputSize(size, padding)`.
 *
 * @param options Size, classes, filters per level, padding and seed.
 * @returns The model (not compiled).
 *
 * @example
 * ```ts
 * import { buildUNet } from "./unet.ts";
 * import { assertEquals } from "./assert.ts";
 * const model = buildUNet({ size: 16, classes: 3, filters: [2, 2, 2, 2, 2], padding: "same" });
 * assertEquals(model.outputs[0]!.shape, [null, 16, 16, 3]);
 * ```
 */
export function buildUNet(options: UNetOptions): tf.LayersModel {
  const { size, classes, filters, padding, seed = 0, name = "unet" } = options;
  if (unetOutputSize(size, padding, filters.length) === undefined) {
    throw new Error(`UNet cannot take input size ${size} with padding ${padding}`);
  }
  const seeds = new SeedSequence(seed);
  const input = tf.input({ shape: [size, size, 3], name: "image" });
  const skips: tf.SymbolicTensor[] = [];
  let x = input;
  filters.forEach((levelFilters, index) => {
    const level = index + 1;
    if (index > 0) x = maxPool(x, `pool${index}`); // [batch, h/2, w/2, c]
    x = convBlock(x, levelFilters, { order: "CBR", padding, seeds, name: `enc${level}` });
    skips.push(x);
  });
  for (let index = filters.length - 2; index >= 0; index--) {
    x = decoderBlock(x, skips[index]!, filters[index]!, {
      order: "CBR",
      padding,
      seeds,
      name: `dec${index + 1}`,
    });
  }
  const output = segmentationHead(x, classes, classes === 1 ? "sigmoid" : "softmax", { seeds });
  return tf.model({ inputs: input, outputs: output, name });
}
