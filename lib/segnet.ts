/**
 * SegNet (arXiv 1511.00561): a VGG16-style encoder whose 2x2 max-poolings keep
 * where each maximum was, and a mirrored decoder that unpools with those
 * positions before each block of CBR convs.
 *
 * Encoder blocks: (2, 2, 3, 3, 3) convs at (64, 128, 256, 512, 512) filters,
 * each followed by a pooling with mask. Decoder blocks, from the bottom:
 * unpool then (3, 3, 3, 2, 2) convs at (512, 256, 128, 64, 64) filters, as the
 * tutorial's answer does; then a 1x1 conv and softmax. Five poolings: the
 * input size must be a multiple of 32.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { convBlock, SeedSequence, segmentationHead } from "./blocks.ts";
import { MaxPoolWithMask, MaxUnpool } from "./max_unpool.ts";

/** Convs per encoder level, top to bottom. */
export const SEGNET_ENCODER_CONVS = [2, 2, 3, 3, 3] as const;
/** Filters per encoder level, top to bottom. */
export const SEGNET_ENCODER_FILTERS = [64, 128, 256, 512, 512] as const;
/** Convs per decoder level, bottom to top. */
export const SEGNET_DECODER_CONVS = [3, 3, 3, 2, 2] as const;
/** Filters per decoder level, bottom to top. */
export const SEGNET_DECODER_FILTERS = [512, 256, 128, 64, 64] as const;

/** Options of {@linkcode buildSegNet}. */
export interface SegNetOptions {
  /** Input height and width, a multiple of 32. */
  size: number;
  /** Output channels; 1 gives a sigmoid head, more a softmax head. @default 3 */
  classes?: number;
  /** Seed of the weight initialisation. @default 0 */
  seed?: number;
}

/**
 * Builds SegNet: input `[batch, size, size, 3]`, output probabilities
 * `[batch, size, size, classes]`.
 *
 * @param options Size, classes and seed.
 * @returns The model (not compiled); it saves and loads as model.json because
 * its pooling and unpooling layers are registered classes.
 *
 * @example
 * ```ts
 * import { buildSegNet } from "./segnet.ts";
 * import { assertEquals } from "./assert.ts";
 * const model = buildSegNet({ size: 32 });
 * assertEquals(model.outputs[0]!.shape, [null, 32, 32, 3]);
 * ```
 */
export function buildSegNet(options: SegNetOptions): tf.LayersModel {
  const { size, classes = 3, seed = 0 } = options;
  if (size % 32 !== 0) {
    throw new Error(`SegNet needs an input size that is a multiple of 32, got ${size}`);
  }
  const seeds = new SeedSequence(seed);
  const input = tf.input({ shape: [size, size, 3], name: "image" });
  const masks: tf.SymbolicTensor[] = [];
  let x = input;
  SEGNET_ENCODER_FILTERS.forEach((filters, index) => {
    const level = index + 1;
    x = convBlock(x, filters, {
      order: "CBR",
      seeds,
      name: `enc${level}`,
      convs: SEGNET_ENCODER_CONVS[index],
    });
    const [pooled, mask] = new MaxPoolWithMask({ name: `pool${level}` })
      .apply(x) as tf.SymbolicTensor[]; // [batch, h/2, w/2, filters], [batch, h, w, filters]
    x = pooled!;
    masks.push(mask!);
  });
  SEGNET_DECODER_FILTERS.forEach((filters, index) => {
    const level = SEGNET_DECODER_FILTERS.length - index;
    x = new MaxUnpool({ name: `unpool${level}` })
      .apply([x, masks[level - 1]!]) as tf.SymbolicTensor; // [batch, 2h, 2w, c]
    x = convBlock(x, filters, {
      order: "CBR",
      seeds,
      name: `dec${level}`,
      convs: SEGNET_DECODER_CONVS[index],
    });
  });
  const output = segmentationHead(x, classes, classes === 1 ? "sigmoid" : "softmax", { seeds });
  return tf.model({ inputs: input, outputs: output, name: "segnet" });
}
