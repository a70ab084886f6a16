/**
 * Helpers around a network that every exercise uses: its summary (one line
 * per layer), the check that an input size works (with the closest sizes
 * that do), and the same weights at another input size.
 *
 * The networks themselves are defined in their exercises
 * (`exercises/nearest.ts` exports `nearestNet`, ...); `tools/networks.ts`
 * lists them all for the benchmark and the tests.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "./errors.ts";

/** Options of every network builder. */
export interface NetOptions {
  /** Output channels: 1 gives a sigmoid head, more a softmax head. @default 3 (bin: 1) */
  classes?: number;
  /** Seed of the weight initialisation. @default 0 */
  seed?: number;
}

/** A network's output height and width for an input size, `undefined` when it cannot work. */
export type OutputSizeOf = (size: number) => number | undefined;

/**
 * Checks that a network takes an input size, and returns its output size.
 *
 * @param network The network's name, for the message.
 * @param size Input height and width in pixels.
 * @param outputOf The network's output size for an input size.
 * @param flag The flag the size came from, for the message.
 * @returns The output height and width.
 * @throws {UserError} When the size cannot work, naming the closest sizes that do.
 *
 * @example
 * ```ts
 * import { checkSize } from "./network.ts";
 * import { assertEquals, assertThrows } from "./assert.ts";
 * const even = (size: number) => (size % 2 === 0 ? size : undefined);
 * assertEquals(checkSize("nearest", 64, even), 64);
 * assertThrows(() => checkSize("nearest", 63, even), /closest sizes that work: 62 \(output 62\), 64/);
 * ```
 */
export function checkSize(
  network: string,
  size: number,
  outputOf: OutputSizeOf,
  flag = "--size",
): number {
  const out = Number.isInteger(size) && size >= 1 ? outputOf(size) : undefined;
  if (out !== undefined) return out;
  const listed = nearestSizes(size, outputOf).map((valid) =>
    `${valid} (output ${outputOf(valid)})`
  );
  throw new UserError(
    `Input size ${size} does not work for ${network}; closest sizes that work: ` +
      `${listed.join(", ")}; pass one with ${flag}`,
  );
}

/** The closest working size below and above `size` (only above when none is below). */
function nearestSizes(size: number, outputOf: OutputSizeOf): number[] {
  const limit = 8192;
  const found: number[] = [];
  for (let below = Math.min(Math.floor(size), limit); below >= 1; below--) {
    if (outputOf(below) !== undefined) {
      found.push(below);
      break;
    }
  }
  for (let above = Math.max(Math.ceil(size), 1); above <= limit; above++) {
    if (outputOf(above) !== undefined) {
      found.push(above);
      break;
    }
  }
  return [...new Set(found)];
}

/**
 * The same network with the same weights (batch-norm statistics included) at
 * another input size. Every network here is fully convolutional, so its
 * weights do not depend on the input size; only the graph does.
 *
 * @param model A trained model.
 * @param build The network's builder, e.g. `(size) => nearestNet(size)`.
 * @param size The new input height and width.
 * @returns `model` itself when it already takes `size`, else a new model the caller disposes.
 * @throws {UserError} When the network cannot take that size (from the builder).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { rebuildAtSize } from "./network.ts";
 * import { assertEquals } from "./assert.ts";
 * const build = (size: number) => {
 *   const input = tf.input({ shape: [size, size, 3] });
 *   const output = tf.layers.conv2d({ filters: 2, kernelSize: 1 }).apply(input) as tf.SymbolicTensor;
 *   return tf.model({ inputs: input, outputs: output });
 * };
 * const model = build(8);
 * const larger = rebuildAtSize(model, build, 16);
 * assertEquals(larger.outputs[0]!.shape, [null, 16, 16, 2]);
 * assertEquals(larger.getWeights()[0]!.dataSync(), model.getWeights()[0]!.dataSync());
 * ```
 */
export function rebuildAtSize(
  model: tf.LayersModel,
  build: (size: number) => tf.LayersModel,
  size: number,
): tf.LayersModel {
  if (inputSize(model) === size) return model;
  const rebuilt = build(size);
  rebuilt.setWeights(model.getWeights());
  return rebuilt;
}

/**
 * The input height of a square-input model.
 *
 * @param model The model.
 * @returns Its input height in pixels.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { inputSize } from "./network.ts";
 * import { assertEquals } from "./assert.ts";
 * const input = tf.input({ shape: [24, 24, 3] });
 * assertEquals(inputSize(tf.model({ inputs: input, outputs: input })), 24);
 * ```
 */
export function inputSize(model: tf.LayersModel): number {
  return model.inputs[0]!.shape[1] as number;
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
 * import * as tf from "@tensorflow/tfjs";
 * import { modelSummary } from "./network.ts";
 * import { assert } from "./assert.ts";
 * const input = tf.input({ shape: [8, 8, 3], name: "image" });
 * const head = tf.layers.conv2d({ filters: 3, kernelSize: 1, name: "head_conv" });
 * const text = modelSummary(tf.model({ inputs: input, outputs: head.apply(input) as tf.SymbolicTensor }));
 * assert(text.includes("head_conv (Conv2D)"));
 * assert(text.includes("[batch, 8, 8, 3]"));
 * assert(text.includes("Total params: 12"));
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

/**
 * Prints a network's summary under a `model:` line and returns the network,
 * so that a script can build and show it in one statement.
 *
 * @param model The freshly built network.
 * @returns The same model.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { showModel } from "./network.ts";
 * const input = tf.input({ shape: [4, 4, 3] });
 * showModel(tf.model({ inputs: input, outputs: input, name: "identity" })); // prints the table
 * ```
 */
export function showModel(model: tf.LayersModel): tf.LayersModel {
  console.log(modelSummary(model)); // its first line names the model
  return model;
}
