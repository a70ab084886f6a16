/**
 * Whether a minibatch fits in memory, checked before training starts: a
 * numeric flag far beyond memory (`--batch-size 100000000`) is refused in
 * one line naming the flag and the largest value that fits, instead of a
 * wasm "memory access out of bounds" after the data has been gathered.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "./errors.ts";

/** The most a wasm32 backend can address: 4 GiB. */
const WASM_BYTES = 4 * 1024 ** 3;

/**
 * Training's memory over the activations: they are kept for the backward
 * pass, and at its widest point the gradients of the layers being
 * differentiated stand beside them. Measured with UNet at 572 on wasm: 1.8 GiB
 * of activations per image; batch 2 (3.5 GiB of activations) ran out of the
 * 4 GiB heap, batch 1 trained.
 */
const TRAINING_FACTOR = 1.5;

/**
 * Bytes of the activations one image leaves in a forward pass (every
 * layer's output, float32): what training holds for the backward pass.
 *
 * @param model The model.
 * @returns Bytes per image.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { activationBytes } from "./memory_budget.ts";
 * import { assertEquals } from "./assert.ts";
 * const input = tf.input({ shape: [4, 4, 3] });
 * const output = tf.layers.conv2d({ filters: 2, kernelSize: 1 }).apply(input) as tf.SymbolicTensor;
 * assertEquals(activationBytes(tf.model({ inputs: input, outputs: output })), (48 + 32) * 4);
 * ```
 */
export function activationBytes(model: tf.LayersModel): number {
  let values = 0;
  for (const layer of model.layers) {
    const shapes =
      (Array.isArray(layer.outputShape[0]) ? layer.outputShape : [layer.outputShape]) as (
        | number
        | null
      )[][];
    for (const shape of shapes) {
      values += shape.slice(1).reduce<number>((product, length) => product * (length ?? 1), 1);
    }
  }
  return values * 4;
}

/**
 * The memory the current backend can use: 4 GiB for wasm, else the
 * machine's memory when the script may read it, else `undefined`.
 *
 * @returns Bytes, or `undefined` when unknown.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { backendMemory } from "./memory_budget.ts";
 * import { assertEquals } from "./assert.ts";
 * await tf.setBackend("cpu");
 * const bytes = backendMemory();
 * assertEquals(bytes === undefined || bytes > 0, true);
 * ```
 */
export function backendMemory(): number | undefined {
  if (tf.getBackend() === "wasm") return WASM_BYTES;
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return undefined; // no --allow-sys=systemMemoryInfo
  }
}

/** Options of {@linkcode checkBatchFits}. */
export interface BatchFitsOptions {
  /** The flag the batch size came from. @default "--batch-size" */
  flag?: string;
  /** Memory available, in bytes. @default {@linkcode backendMemory}(), or 4 GiB when unknown */
  memory?: number;
}

/**
 * Refuses a minibatch whose training cannot fit in memory: 1.5 times its
 * activations (they, and the gradients beside them at the backward's widest).
 *
 * @param model The model to train.
 * @param batchSize Images per minibatch.
 * @param options The flag, and the memory to assume.
 * @throws {UserError} Naming the flag, the memory needed and the largest batch that fits.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { checkBatchFits } from "./memory_budget.ts";
 * import { assertThrows } from "./assert.ts";
 * const input = tf.input({ shape: [64, 64, 3] });
 * const model = tf.model({ inputs: input, outputs: input });
 * checkBatchFits(model, 16, { memory: 2 ** 30 });
 * assertThrows(() => checkBatchFits(model, 1e8, { memory: 2 ** 30 }), Error, "pass --batch-size 14563 or lower");
 * ```
 */
export function checkBatchFits(
  model: tf.LayersModel,
  batchSize: number,
  options: BatchFitsOptions = {},
): void {
  const { flag = "--batch-size" } = options;
  const memory = options.memory ?? backendMemory() ?? WASM_BYTES;
  const perImage = activationBytes(model) * TRAINING_FACTOR;
  if (perImage * batchSize <= memory) return;
  const largest = Math.floor(memory / perImage);
  throw new UserError(
    `${flag} ${batchSize} needs about ${formatBytes(perImage * batchSize)} to train one ` +
      `minibatch (${formatBytes(perImage)} per image for ${model.name}), more than the ` +
      `${formatBytes(memory)} this backend can use; ` +
      (largest >= 1
        ? `pass ${flag} ${largest} or lower`
        : "pass a smaller --size (one image does not fit)"),
  );
}

function formatBytes(bytes: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let unit = 0;
  while (bytes >= 1024 && unit < units.length - 1) {
    bytes /= 1024;
    unit++;
  }
  return `${unit === 0 ? bytes : bytes.toFixed(1)} ${units[unit]}`;
}
