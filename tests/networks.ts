/**
 * The one place where the tests of custom layers, `deno task segment` and the
 * page build a network by name (`buildModel` moves with the networks; change
 * this import only) and save it as a checkpoint, trained a little or not.
 */
import * as tf from "@tensorflow/tfjs";
import { saveCheckpoint } from "../lib/checkpoint.ts";
import { loadDataset } from "../lib/dataset.ts";
import { buildModel, MODEL_NAMES, type ModelName } from "../tools/networks.ts";
import { trainModel } from "../lib/train.ts";
import { crossEntropy } from "./lessons.ts";
import { BINARY } from "../exercises/bin_dataset.ts";
import { CLASSES } from "../exercises/semaseg_dataset.ts";

export { MODEL_NAMES, type ModelName };

/** What {@linkcode saveNetwork} builds and how long it trains. */
export interface SaveNetworkOptions {
  /** The network. */
  name: ModelName;
  /** Input height and width. */
  size: number;
  /** Dataset in the Imori layout to train on; untrained without one. */
  data?: string;
  /** Training iterations (with `data`). @default 0 */
  iters?: number;
  /** Learning rate (with `data`). @default 0.01 */
  lr?: number;
}

/**
 * Builds a network, trains it a little when given data, and saves it as the
 * exercises do (`model.json`, `weights.bin`, `training_state.json`).
 *
 * @param dir The checkpoint folder to write.
 * @param options Network, size and training.
 * @returns The model, still in memory; the caller disposes it.
 */
export async function saveNetwork(
  dir: string,
  options: SaveNetworkOptions,
): Promise<tf.LayersModel> {
  const { name, size, data, iters = 0, lr = 0.01 } = options;
  const model = buildModel(name, { size, seed: 1 });
  if (data && iters > 0) {
    const mode = name === "bin" ? BINARY : CLASSES;
    const train = await loadDataset(data, { split: "train", size, mode, flips: true });
    const result = await trainModel(model, train, {
      loss: crossEntropy,
      iters,
      lr,
      batchSize: 4,
      optimizer: "adam",
      progress: { quiet: true },
    });
    result.optimizer.dispose();
    tf.dispose([train.images, train.masks]);
  }
  await saveCheckpoint(dir, model, {
    iteration: iters,
    model: name,
    size,
    classes: model.outputs[0]!.shape[3] ?? 1,
    optimizer: "adam",
  });
  return model;
}
