/**
 * Every network of the tutorial by name, built from the shared blocks
 * (tf.layers functional API, NHWC): `bin` and `semaseg` (6 CRB convs),
 * `nearest`, `transposeconv` and `concat` (one pooling, one upsampling),
 * `unet` (the paper's, unpadded), `unetlike` (padded, a quarter of the
 * filters) and `segnet` (index unpooling).
 *
 * A model's output is probabilities `[batch, out, out, classes]`: sigmoid for
 * one class, softmax over the classes otherwise.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  convBlock,
  decoderBlock,
  maxPool,
  SeedSequence,
  segmentationHead,
  upsampleNearest,
  upsampleTransposed,
} from "./blocks.ts";
import { UserError } from "./errors.ts";
import { buildSegNet } from "./segnet.ts";
import { buildUNet, unetOutputSize } from "./unet.ts";

/** Names of the networks, as the exercises and the benchmark call them. */
export type ModelName =
  | "bin"
  | "semaseg"
  | "nearest"
  | "transposeconv"
  | "concat"
  | "unet"
  | "unetlike"
  | "segnet";

/** Every network name, in the tutorial's order. */
export const MODEL_NAMES: readonly ModelName[] = [
  "bin",
  "semaseg",
  "nearest",
  "transposeconv",
  "concat",
  "unet",
  "unetlike",
  "segnet",
];

/** Filters per level of the paper's UNet. */
export const UNET_FILTERS = [64, 128, 256, 512, 1024] as const;
/** Filters per level of the UNet-like model: a quarter of UNet's. */
export const UNETLIKE_FILTERS = [16, 32, 64, 128, 256] as const;

/** Options of {@linkcode buildModel}. */
export interface ModelOptions {
  /** Input height and width. @default 64 */
  size?: number;
  /** Output channels. @default 1 for `bin`, 3 otherwise */
  classes?: number;
  /** Seed of the weight initialisation. @default 0 */
  seed?: number;
}

/**
 * The output size of a network for an input size, or `undefined` when the
 * size cannot work.
 */
function tryOutputSize(name: ModelName, size: number): number | undefined {
  if (!Number.isInteger(size) || size < 1) return undefined;
  switch (name) {
    case "bin":
    case "semaseg":
      return size;
    case "nearest":
    case "transposeconv":
    case "concat":
      return size % 2 === 0 ? size : undefined;
    case "unet":
      return unetOutputSize(size, "valid", UNET_FILTERS.length);
    case "unetlike":
      return unetOutputSize(size, "same", UNETLIKE_FILTERS.length);
    case "segnet":
      return size % 32 === 0 ? size : undefined;
  }
}

/**
 * The output height and width of a network for an input size.
 *
 * @param name The network.
 * @param size Input height and width.
 * @param flag The flag the size came from, for the error.
 * @returns The output size (`size` itself for every network but `unet`).
 * @throws {UserError} When the size cannot work, naming the nearest sizes that do.
 *
 * @example
 * ```ts
 * import { outputSize } from "./models.ts";
 * import { assertEquals, assertThrows } from "./assert.ts";
 * assertEquals(outputSize("semaseg", 64), 64);
 * assertEquals(outputSize("unet", 572), 388);
 * assertThrows(() => outputSize("unet", 64), /nearest sizes that work: 188/);
 * ```
 */
export function outputSize(name: ModelName, size: number, flag = "--size"): number {
  const out = tryOutputSize(name, size);
  if (out !== undefined) return out;
  const nearest = nearestSizes(name, size);
  const listed = nearest.map((valid) => `${valid} (output ${tryOutputSize(name, valid)})`);
  throw new UserError(
    `Input size ${size} does not work for ${name}; nearest sizes that work: ` +
      `${listed.join(", ")}; pass one with ${flag}`,
  );
}

/** The closest working size below and above `size` (only above when none is below). */
function nearestSizes(name: ModelName, size: number): number[] {
  const limit = 8192;
  const found: number[] = [];
  for (let below = Math.min(Math.floor(size), limit); below >= 1; below--) {
    if (tryOutputSize(name, below) !== undefined) {
      found.push(below);
      break;
    }
  }
  for (let above = Math.max(Math.ceil(size), 1); above <= limit; above++) {
    if (tryOutputSize(name, above) !== undefined) {
      found.push(above);
      break;
    }
  }
  return [...new Set(found)];
}

/**
 * Builds a network by name: input `[batch, size, size, 3]` in [0, 1], output
 * probabilities `[batch, out, out, classes]`, `out = outputSize(name, size)`.
 *
 * @param name The network.
 * @param options Input size, classes and seed.
 * @returns The model (not compiled).
 * @throws {UserError} For an input size the network cannot take.
 *
 * @example
 * ```ts
 * import { buildModel } from "./models.ts";
 * import { assertEquals } from "./assert.ts";
 * const model = buildModel("bin", { size: 8 });
 * assertEquals(model.outputs[0]!.shape, [null, 8, 8, 1]);
 * ```
 */
export function buildModel(name: ModelName, options: ModelOptions = {}): tf.LayersModel {
  const { size = 64, seed = 0 } = options;
  const classes = options.classes ?? (name === "bin" ? 1 : 3);
  if (!Number.isInteger(classes) || classes < 1) {
    throw new UserError(`Number of classes must be a positive integer, got ${classes}`);
  }
  outputSize(name, size); // refuses a size that cannot work
  switch (name) {
    case "unet":
      return buildUNet({ size, classes, filters: UNET_FILTERS, padding: "valid", seed, name });
    case "unetlike":
      return buildUNet({ size, classes, filters: UNETLIKE_FILTERS, padding: "same", seed, name });
    case "segnet":
      return buildSegNet({ size, classes, seed });
    default:
      return buildSmallModel(name, size, classes, seed);
  }
}

/** The networks of exercises 2-9: 32 filters everywhere, CRB order. */
function buildSmallModel(
  name: ModelName,
  size: number,
  classes: number,
  seed: number,
): tf.LayersModel {
  const seeds = new SeedSequence(seed);
  const input = tf.input({ shape: [size, size, 3], name: "image" });
  const crb = { order: "CRB", seeds } as const;
  let x: tf.SymbolicTensor;
  if (name === "bin" || name === "semaseg") {
    x = convBlock(input, 32, { ...crb, name: "conv", convs: 6 });
  } else {
    const encoder = convBlock(input, 32, { ...crb, name: "enc1" });
    x = maxPool(encoder, "pool1"); // [batch, size/2, size/2, 32]
    x = convBlock(x, 32, { ...crb, name: "enc2" });
    if (name === "nearest") {
      x = upsampleNearest(x, "up"); // [batch, size, size, 32]
      x = convBlock(x, 32, { ...crb, name: "dec1" });
    } else if (name === "transposeconv") {
      x = upsampleTransposed(x, 32, { ...crb, name: "dec1" }); // [batch, size, size, 32]
      x = convBlock(x, 32, { ...crb, name: "dec1" });
    } else {
      x = decoderBlock(x, encoder, 32, { ...crb, name: "dec1", fuse: true });
    }
  }
  const output = segmentationHead(x, classes, classes === 1 ? "sigmoid" : "softmax", { seeds });
  return tf.model({ inputs: input, outputs: output, name });
}

/**
 * The same network with the same weights (batch-norm statistics included) at
 * another input size. Every network here is fully convolutional, so its
 * weights do not depend on the input size; only the graph does.
 *
 * @param model A model built by {@linkcode buildModel} as `name`.
 * @param name The network.
 * @param size The new input height and width.
 * @returns A new model the caller disposes (the given one is kept).
 * @throws {UserError} When the network cannot take that size.
 *
 * @example
 * ```ts
 * import { buildModel, rebuildAtSize } from "./models.ts";
 * import { assertEquals } from "./assert.ts";
 * const model = buildModel("nearest", { size: 8, seed: 3 });
 * const larger = rebuildAtSize(model, "nearest", 16);
 * assertEquals(larger.outputs[0]!.shape, [null, 16, 16, 3]);
 * assertEquals(larger.getWeights()[0]!.dataSync(), model.getWeights()[0]!.dataSync());
 * ```
 */
export function rebuildAtSize(
  model: tf.LayersModel,
  name: ModelName,
  size: number,
): tf.LayersModel {
  const classes = model.outputs[0]!.shape[3] ?? 1;
  const rebuilt = buildModel(name, { size, classes });
  rebuilt.setWeights(model.getWeights());
  return rebuilt;
}

function formatShape(shape: tf.Shape | tf.Shape[]): string {
  if (Array.isArray(shape[0])) return (shape as tf.Shape[]).map(formatShape).join(" ");
  return `[${(shape as tf.Shape).map((size) => size ?? "batch").join(", ")}]`;
}

/**
 * A table of every layer (name, type, output shape, parameters) and the
 * parameter totals, in the order the layers run.
 *
 * @param model The model.
 * @returns The summary text, one layer per line.
 *
 * @example
 * ```ts
 * import { buildModel, modelSummary } from "./models.ts";
 * import { assert } from "./assert.ts";
 * const text = modelSummary(buildModel("semaseg", { size: 8 }));
 * assert(text.includes("head_softmax"));
 * assert(text.includes("[batch, 8, 8, 3]"));
 * ```
 */
export function modelSummary(model: tf.LayersModel): string {
  const rows = model.layers.map((layer) => [
    `${layer.name} (${layer.getClassName()})`,
    formatShape(layer.outputShape),
    String(layer.countParams()),
  ]);
  const header = ["Layer (type)", "Output shape", "Params"];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]!.length))
  );
  const line = (row: string[]) =>
    row.map((cell, column) =>
      column === 2 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)
    ).join("  ");
  const count = (weights: tf.LayerVariable[]) =>
    weights.reduce(
      (sum: number, weight) =>
        sum + weight.shape.reduce((product: number, size) => product * (size ?? 1), 1),
      0,
    );
  const trainable = count(model.trainableWeights);
  const total = trainable + count(model.nonTrainableWeights);
  const rule = "-".repeat(line(header).length);
  return [
    `Model ${model.name}`,
    line(header),
    rule,
    ...rows.map(line),
    rule,
    `Total params: ${total} (trainable ${trainable}, non-trainable ${total - trainable})`,
  ].join("\n");
}
