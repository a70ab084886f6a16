/**
 * Every network of the exercises, by name, for the tools and tests that need
 * them all (the benchmark, the profiler, the PyTorch mirror, the shape
 * tests). Each network is defined in its exercise (`nearestNet` in
 * `exercises/nearest.ts`, ...); this file only lists them.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { binNet } from "../exercises/bin_loss.ts";
import { concatNet, outputSize as concatOutputSize } from "../exercises/concat.ts";
import { nearestNet, outputSize as nearestOutputSize } from "../exercises/nearest.ts";
import { outputSize as segnetOutputSize, segnetNet } from "../exercises/segnet.ts";
import { semasegNet } from "../exercises/semaseg_loss.ts";
import {
  outputSize as transposeconvOutputSize,
  transposeconvNet,
} from "../exercises/transposeconv.ts";
import { outputSize as unetOutputSize, unetNet } from "../exercises/unet.ts";
import { outputSize as unetlikeOutputSize, unetlikeNet } from "../exercises/unetlike.ts";
import { checkSize, type NetOptions, type OutputSizeOf } from "../lib/network.ts";

/** Names of the networks, as the benchmark and the tests call them. */
export type ModelName =
  | "bin"
  | "semaseg"
  | "nearest"
  | "transposeconv"
  | "concat"
  | "unet"
  | "unetlike"
  | "segnet";

/** A network: its builder and its output size for an input size. */
export interface Network {
  /** Builds it: `[batch, size, size, 3]` in [0, 1] to probabilities `[batch, out, out, classes]`. */
  build: (size: number, options?: NetOptions) => tf.LayersModel;
  /** Its output size for an input size, `undefined` when the size cannot work. */
  outputSize: OutputSizeOf;
}

/** Every network, in the tutorial's order. */
export const NETWORKS: Readonly<Record<ModelName, Network>> = {
  bin: { build: binNet, outputSize: (size) => size },
  semaseg: { build: semasegNet, outputSize: (size) => size },
  nearest: { build: nearestNet, outputSize: nearestOutputSize },
  transposeconv: { build: transposeconvNet, outputSize: transposeconvOutputSize },
  concat: { build: concatNet, outputSize: concatOutputSize },
  unet: { build: unetNet, outputSize: unetOutputSize },
  unetlike: { build: unetlikeNet, outputSize: unetlikeOutputSize },
  segnet: { build: segnetNet, outputSize: segnetOutputSize },
};

/** Every network name, in the tutorial's order. */
export const MODEL_NAMES = Object.keys(NETWORKS) as readonly ModelName[];

/** Options of {@linkcode buildModel}. */
export interface ModelOptions extends NetOptions {
  /** Input height and width. @default 64 */
  size?: number;
}

/**
 * Builds a network by name.
 *
 * @param name The network.
 * @param options Input size, classes and seed.
 * @returns The model (not compiled).
 * @throws {UserError} For an input size the network cannot take.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { buildModel } from "./networks.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * assertEquals(buildModel("bin", { size: 8 }).outputs[0]!.shape, [null, 8, 8, 1]);
 * ```
 */
export function buildModel(name: ModelName, options: ModelOptions = {}): tf.LayersModel {
  const { size = 64, ...rest } = options;
  return NETWORKS[name].build(size, rest);
}

/**
 * The output height and width of a network for an input size.
 *
 * @param name The network.
 * @param size Input height and width.
 * @param flag The flag the size came from, for the error.
 * @returns The output size.
 * @throws {UserError} When the size cannot work, naming the nearest sizes that do.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { outputSize } from "./networks.ts";
 * import { assertEquals, assertThrows } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * assertEquals(outputSize("unet", 572), 388);
 * assertThrows(() => outputSize("unet", 64), /nearest sizes that work: 188/);
 * ```
 */
export function outputSize(name: ModelName, size: number, flag = "--size"): number {
  return checkSize(name, size, NETWORKS[name].outputSize, flag);
}
