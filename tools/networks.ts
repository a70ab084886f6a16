/**
 * Every network of the exercises, by name, for the tools and tests that need
 * them all (the benchmark, the profiler, the PyTorch mirror, the shape
 * tests). Each network is defined in its exercise (`Mynet` in
 * `exercises/nearest.ts`, ...), as are the lessons that train and test it
 * (the loss, the mask and prediction rules); this file only lists them.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { Mynet as binNet, PROTOCOL as binProtocol } from "../exercises/bin_loss.ts";
import {
  Mynet as concatNet,
  outputSize as concatOutputSize,
  PROTOCOL as concatProtocol,
} from "../exercises/concat.ts";
import {
  Mynet as nearestNet,
  outputSize as nearestOutputSize,
  PROTOCOL as nearestProtocol,
} from "../exercises/nearest.ts";
import {
  Mynet as segnetNet,
  outputSize as segnetOutputSize,
  PROTOCOL as segnetProtocol,
} from "../exercises/segnet.ts";
import { Mynet as semasegNet, PROTOCOL as semasegProtocol } from "../exercises/semaseg_loss.ts";
import {
  Mynet as transposeconvNet,
  outputSize as transposeconvOutputSize,
  PROTOCOL as transposeconvProtocol,
} from "../exercises/transposeconv.ts";
import {
  Mynet as unetNet,
  outputSize as unetOutputSize,
  PROTOCOL as unetProtocol,
} from "../exercises/unet.ts";
import {
  Mynet as unetlikeNet,
  outputSize as unetlikeOutputSize,
  PROTOCOL as unetlikeProtocol,
} from "../exercises/unetlike.ts";
import { checkSize, type NetOptions, type OutputSizeOf } from "../lib/network.ts";
import type { MaskMode } from "../lib/dataset.ts";
import type { Classify } from "../lib/evaluate.ts";
import type { LogitsLoss } from "../lib/losses.ts";
import { binLoss } from "../exercises/bin_loss.ts";
import { BINARY } from "../exercises/bin_dataset.ts";
import { threshold } from "../exercises/bin_test.ts";
import { CLASSES } from "../exercises/semaseg_dataset.ts";
import { semasegLoss } from "../exercises/semaseg_loss.ts";
import { argmaxClasses } from "../exercises/semaseg_test.ts";

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

/** An exercise's training protocol: the tutorial answer's defaults of its flags. */
export interface Protocol {
  /** Input height and width in pixels. */
  size: number;
  /** Minibatch size. */
  batchSize: number;
  /** Training iterations. */
  iters: number;
  /** Learning rate of SGD with momentum 0.9. */
  lr: number;
}

/** A network: its builder, its output size for an input size, and its exercise's protocol. */
export interface Network {
  /** Builds it: `[batch, size, size, 3]` in [0, 1] to probabilities `[batch, out, out, classes]`. */
  build: (size: number, options?: NetOptions) => tf.LayersModel;
  /** Its output size for an input size, `undefined` when the size cannot work. */
  outputSize: OutputSizeOf;
  /** The protocol its exercise trains with by default (unet: that of `--full`). */
  protocol: Protocol;
}

/** The lessons of a one-channel network (bin) and of a three-class one (all others). */
export interface Lessons {
  /** The loss on the logits: `binLoss` or `semasegLoss`. */
  loss: LogitsLoss;
  /** How masks are read: `BINARY` or `CLASSES`. */
  mode: MaskMode;
  /** Probabilities to classes: `threshold` or `argmaxClasses`. */
  classify: Classify;
}

/**
 * The lessons a network trains and tests with.
 *
 * @param name The network.
 * @returns Its loss, mask rule and prediction rule.
 *
 * @example
 * ```ts
 * import { lessonsOf } from "./networks.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * assertEquals(lessonsOf("bin").mode.classNames, ["background", "newt"]);
 * ```
 */
export function lessonsOf(name: ModelName): Lessons {
  return name === "bin"
    ? { loss: binLoss, mode: BINARY, classify: (probabilities) => threshold(probabilities) }
    : { loss: semasegLoss, mode: CLASSES, classify: argmaxClasses };
}

/** Every network, in the tutorial's order. */
export const NETWORKS: Readonly<Record<ModelName, Network>> = {
  bin: { build: binNet, outputSize: (size) => size, protocol: binProtocol },
  semaseg: { build: semasegNet, outputSize: (size) => size, protocol: semasegProtocol },
  nearest: { build: nearestNet, outputSize: nearestOutputSize, protocol: nearestProtocol },
  transposeconv: {
    build: transposeconvNet,
    outputSize: transposeconvOutputSize,
    protocol: transposeconvProtocol,
  },
  concat: { build: concatNet, outputSize: concatOutputSize, protocol: concatProtocol },
  unet: { build: unetNet, outputSize: unetOutputSize, protocol: unetProtocol },
  unetlike: { build: unetlikeNet, outputSize: unetlikeOutputSize, protocol: unetlikeProtocol },
  segnet: { build: segnetNet, outputSize: segnetOutputSize, protocol: segnetProtocol },
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
 * @throws {UserError} When the size cannot work, naming the closest sizes that do.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { outputSize } from "./networks.ts";
 * import { assertEquals, assertThrows } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * assertEquals(outputSize("unet", 572), 388);
 * assertThrows(() => outputSize("unet", 64), /closest sizes that work: 188/);
 * ```
 */
export function outputSize(name: ModelName, size: number, flag = "--size"): number {
  return checkSize(name, size, NETWORKS[name].outputSize, flag);
}
