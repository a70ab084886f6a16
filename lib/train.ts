/**
 * The training loop: the tutorial's protocol by default (SGD with momentum
 * 0.9, learning rate 0.01, minibatch 4, 500 iterations over a seeded stream
 * of shuffled epochs), every value an option, batch norm in training mode,
 * no leaked tensors.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Augment } from "./augment.ts";
import { UserError } from "./errors.ts";
import { firstNonFiniteWeight, type OptimizerWeight } from "./weights.ts";
import { cropMasks, type LogitsLoss } from "./losses.ts";
import { Progress, type ProgressOptions } from "./progress.ts";
import { createRng, shuffled } from "./rng.ts";
import { learningRateAt, type ScheduleName } from "./schedule.ts";

/**
 * What to try after a divergence: a tenth of the learning rate, or the
 * tutorial's 0.01 for a rate far above it, where a tenth would diverge again.
 */
function lowerLr(lr: number): string {
  return lr > 0.1
    ? "try --lr 0.01, the tutorial's"
    : `try --lr ${Number((lr / 10).toPrecision(3))}`;
}

/** Names of the optimizers {@linkcode trainModel} can use. */
export type OptimizerName = "sgd" | "adam";

/** The optimizer names, for a flag's choices. */
export const OPTIMIZERS: readonly OptimizerName[] = ["sgd", "adam"];

/** Images and masks to train on. */
export interface TrainingData {
  /** Shape [n, height, width, 3], values in [0, 1]. */
  images: tf.Tensor4D;
  /** Shape [n, height, width], int32 class indices. */
  masks: tf.Tensor3D;
}

/** Settings of {@linkcode trainModel}. */
export interface TrainOptions {
  /** The last iteration: training runs until the optimizer has done this many steps.
   * @default {500} */
  iters?: number;
  /** Images per minibatch.
   * @default {4} */
  batchSize?: number;
  /** Base learning rate.
   * @default {0.01} */
  lr?: number;
  /** Momentum of SGD (0 for plain SGD).
   * @default {0.9} */
  momentum?: number;
  /** Optimizer.
   * @default {"sgd"} */
  optimizer?: OptimizerName;
  /** The loss on the logits: the exercise's (`binLoss`, `semasegLoss`), maybe with
   * `chooseLoss`'s Dice term (`losses.ts`). Required: the losses are the exercises' lessons. */
  loss: LogitsLoss;
  /** Learning-rate schedule over the whole run.
   * @default {"constant"} */
  schedule?: ScheduleName;
  /** Seed of the minibatch order and of the augmentation.
   * @default {0} */
  seed?: number;
  /** Augmentation of each minibatch.
   * @default {none} */
  augment?: Augment;
  /** Iterations already done (resume); the stream of minibatches continues where it was.
   * @default {0} */
  startIteration?: number;
  /** Optimizer state to continue from, as saved from `optimizer.getWeights()`.
   * @default {fresh state} */
  optimizerState?: OptimizerWeight[];
  /** Iterations left out of `msPerIter` (the first ones compile kernels).
   * @default {5} */
  warmup?: number;
  /** How progress is reported.
   * @default {a line on the terminal, or every 50 iterations} */
  progress?: ProgressOptions;
  /** Called after each iteration, e.g. to save a checkpoint now and then.
   * @default {nothing} */
  onIteration?: (iteration: number, loss: number, optimizer: tf.Optimizer) => Promise<void> | void;
  /** Stops training after the iteration during which it is aborted (the page's Stop button);
   * the result then holds the iterations done.
   * @default {never stops early} */
  signal?: AbortSignal;
}

/** What {@linkcode trainModel} returns. */
export interface TrainResult {
  /** Loss of each iteration of this run. */
  losses: number[];
  /** The last iteration done (equals `iters` unless `signal` stopped training early). */
  iteration: number;
  /** Wall-clock seconds of the loop. */
  seconds: number;
  /** Mean milliseconds per iteration, the warm-up iterations left out (0 if none left). */
  msPerIter: number;
  /** The optimizer with its state, for a checkpoint; the caller disposes it. */
  optimizer: tf.Optimizer;
}

/**
 * Creates the optimizer of a run.
 *
 * @param name `sgd` (with momentum, the tutorial's) or `adam`.
 * @param lr Learning rate.
 * @param momentum Momentum of SGD; 0 gives plain SGD.
 * @returns A new optimizer the caller disposes; disposing it frees all its tensors.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { createOptimizer } from "./train.ts";
 * import { assertEquals } from "./assert.ts";
 * const before = tf.memory().numTensors;
 * const optimizer = createOptimizer("sgd", 0.01, 0.9);
 * assertEquals(optimizer.getClassName(), "Momentum");
 * optimizer.dispose();
 * assertEquals(tf.memory().numTensors, before); // no tensor left behind
 * ```
 */
export function createOptimizer(name: OptimizerName, lr: number, momentum = 0.9): tf.Optimizer {
  if (name === "adam") return tf.train.adam(lr);
  if (momentum === 0) return tf.train.sgd(lr);
  const optimizer = tf.train.momentum(lr, momentum);
  // tfjs 4.22's MomentumOptimizer.dispose() frees its momentum and accumulators but not the
  // learning-rate scalar its SGD base holds (`c`): one tensor left per run, each Train in the page.
  const dispose = optimizer.dispose.bind(optimizer);
  optimizer.dispose = () => {
    dispose();
    (optimizer as unknown as { c?: tf.Tensor }).c?.dispose();
  };
  return optimizer;
}

/**
 * Sets an optimizer's learning rate (tfjs has a setter only for SGD).
 *
 * @param optimizer An optimizer from {@linkcode createOptimizer}.
 * @param lr The new learning rate.
 *
 * @example
 * ```ts
 * import { createOptimizer, setLearningRate } from "./train.ts";
 * import { assertEquals } from "./assert.ts";
 * const optimizer = createOptimizer("adam", 0.01);
 * setLearningRate(optimizer, 0.5);
 * assertEquals(optimizer.getConfig().learningRate, 0.5);
 * optimizer.dispose();
 * ```
 */
export function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  // tfjs's `instanceof` is true for every optimizer, so test for the method.
  if ("setLearningRate" in optimizer && typeof optimizer.setLearningRate === "function") {
    (optimizer as tf.SGDOptimizer).setLearningRate(lr);
  } else {
    (optimizer as unknown as { learningRate: number }).learningRate = lr;
  }
}

/**
 * The training-set indices of one minibatch: epochs are shuffled with the
 * seed and joined into one stream, and minibatch `iteration` takes the next
 * `batchSize` indices of it (a minibatch may span two epochs, as in the
 * tutorial's answers).
 *
 * @param count Number of training images.
 * @param batchSize Images per minibatch.
 * @param seed Seed of the shuffles.
 * @returns A function from iteration (0-based) to indices; it is fastest when
 * called with increasing iterations.
 *
 * @example
 * ```ts
 * import { minibatchIndices } from "./train.ts";
 * import { assertEquals } from "./assert.ts";
 * const batches = minibatchIndices(4, 2, 0);
 * const epoch = [...batches(0), ...batches(1)];
 * assertEquals([...epoch].sort(), [0, 1, 2, 3]);
 * ```
 */
export function minibatchIndices(
  count: number,
  batchSize: number,
  seed: number,
): (iteration: number) => number[] {
  const rng = createRng(seed);
  const base = Array.from({ length: count }, (_, index) => index);
  const stream: number[] = [];
  let streamStart = 0;
  return (iteration) => {
    const start = iteration * batchSize;
    if (start < streamStart) {
      return minibatchIndices(count, batchSize, seed)(iteration);
    }
    while (streamStart + stream.length < start + batchSize) {
      stream.push(...shuffled(base, rng));
    }
    const dropped = start - streamStart;
    stream.splice(0, dropped);
    streamStart = start;
    return stream.slice(0, batchSize);
  };
}

/**
 * The same network without its last layer when that layer is the head's
 * sigmoid or softmax: it shares every layer and weight with `model` and
 * outputs the logits, so the loss can be computed from them exactly.
 *
 * @param model A segmentation model.
 * @returns The logits model, or `undefined` when the last layer is not a
 * sigmoid or softmax activation (the loss then uses the probabilities).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { logitsModel } from "./train.ts";
 * import { assertEquals } from "./assert.ts";
 * const input = tf.input({ shape: [4, 4, 3] });
 * const logits = tf.layers.conv2d({ filters: 3, kernelSize: 1 }).apply(input) as tf.SymbolicTensor;
 * const output = tf.layers.activation({ activation: "softmax" }).apply(logits) as tf.SymbolicTensor;
 * const model = tf.model({ inputs: input, outputs: output });
 * assertEquals(logitsModel(model)?.outputs[0]?.shape, [null, 4, 4, 3]);
 * ```
 */
export function logitsModel(model: tf.LayersModel): tf.LayersModel | undefined {
  const last = model.layers.at(-1);
  if (!last || last.getClassName() !== "Activation") return undefined;
  const activation = last.getConfig().activation;
  if (activation !== "sigmoid" && activation !== "softmax") return undefined;
  return tf.model({ inputs: model.inputs, outputs: last.input as tf.SymbolicTensor });
}

/**
 * The training loss of a model as one function: the network in training mode
 * (batch norm on batch statistics, updating its moving averages) without its
 * final sigmoid or softmax ({@linkcode logitsModel}), and the loss on those
 * logits, the masks centre-cropped to the output size. The exercises' networks
 * end in that activation so that they predict probabilities; their losses take
 * the logits, as PyTorch's `BCEWithLogitsLoss` and `CrossEntropyLoss` do, so
 * that a pixel the network is sure of and wrong about keeps its gradient.
 *
 * @param model A segmentation model ending in a sigmoid or softmax layer.
 * @param loss The loss on the logits, e.g. `semasegLoss` of `exercises/semaseg_loss.ts`.
 * @returns A function from a minibatch to its scalar loss.
 * @throws {Error} For a model that does not end in a sigmoid or softmax layer.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { trainingLoss } from "./train.ts";
 * import { assertAlmostEquals } from "./assert.ts";
 * const input = tf.input({ shape: [2, 2, 3] });
 * const logits = tf.layers.conv2d({ filters: 1, kernelSize: 1, kernelInitializer: "zeros" }).apply(input) as tf.SymbolicTensor;
 * const output = tf.layers.activation({ activation: "sigmoid" }).apply(logits) as tf.SymbolicTensor;
 * const meanLogit = (z: tf.Tensor4D) => tf.mean(z) as tf.Scalar;
 * const loss = trainingLoss(tf.model({ inputs: input, outputs: output }), meanLogit);
 * const masks = tf.tensor3d([[[1, 0], [1, 0]]], undefined, "int32");
 * assertAlmostEquals(loss(tf.ones([1, 2, 2, 3]), masks).dataSync()[0]!, 0);
 * ```
 */
export function trainingLoss(
  model: tf.LayersModel,
  loss: LogitsLoss,
): (images: tf.Tensor4D, masks: tf.Tensor3D) => tf.Scalar {
  const logits = logitsModel(model);
  if (!logits) {
    throw new Error(
      `${model.name} has no sigmoid or softmax layer at its end to train its loss on`,
    );
  }
  return (images, masks) =>
    tf.tidy(() => {
      const output = logits.apply(images, { training: true }) as tf.Tensor4D;
      return loss(output, cropMasks(masks, output.shape[1], output.shape[2]));
    });
}

/**
 * Trains a segmentation model: each iteration draws a minibatch, applies the
 * augmentation, runs the model in training mode (batch norm uses batch
 * statistics and updates its moving averages) and takes an optimizer step on
 * {@linkcode trainingLoss}.
 *
 * It refuses what would train silently wrong, each in one line that says the
 * fix: masks that are all background (nothing to learn), a batch-norm layer
 * that would see one value per channel (see
 * {@linkcode assertBatchNormCanTrain}), and divergence: a loss that is not a
 * finite number stops training at that iteration, before `onIteration` is
 * called with it, so a checkpoint saved there stays the last good one, and so
 * does a weight that is not finite, checked every
 * {@linkcode WEIGHT_CHECK_EVERY} iterations and at the end.
 *
 * @param model A model whose output is probabilities, shape [n, h, w, classes], its last layer
 *   the sigmoid or softmax.
 * @param data Training images and masks (already flipped if wanted).
 * @param options The loss, and the protocol; the defaults are the tutorial's.
 * @returns Loss history, timing and the optimizer (the caller disposes it).
 * @throws {UserError} On all-background masks, a degenerate batch norm, or divergence.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { trainModel } from "./train.ts";
 * import { assert } from "./assert.ts";
 * const input = tf.input({ shape: [4, 4, 3] });
 * const logits = tf.layers.conv2d({ filters: 1, kernelSize: 1 }).apply(input) as tf.SymbolicTensor;
 * const output = tf.layers.activation({ activation: "sigmoid" }).apply(logits) as tf.SymbolicTensor;
 * const model = tf.model({ inputs: input, outputs: output });
 * const images = tf.randomUniform([2, 4, 4, 3], 0, 1, "float32", 1) as tf.Tensor4D;
 * const masks = tf.tensor3d(Array(32).fill(1), [2, 4, 4], "int32");
 * const loss = (logits: tf.Tensor4D, masks: tf.Tensor3D) => // binLoss of exercises/bin_loss.ts
 *   tf.losses.sigmoidCrossEntropy(tf.expandDims(tf.cast(masks, "float32"), 3), logits) as tf.Scalar;
 * const options = { loss, iters: 20, lr: 0.1, progress: { quiet: true } };
 * const result = await trainModel(model, { images, masks }, options);
 * assert(result.losses[19]! < result.losses[0]!);
 * result.optimizer.dispose();
 * ```
 */
export async function trainModel(
  model: tf.LayersModel,
  data: TrainingData,
  options: TrainOptions,
): Promise<TrainResult> {
  const {
    iters = 500,
    batchSize = 4,
    lr = 0.01,
    momentum = 0.9,
    optimizer: optimizerName = "sgd",
    schedule = "constant",
    loss,
    seed = 0,
    augment,
    startIteration = 0,
    optimizerState,
    warmup = 5,
  } = options;
  const count = data.images.shape[0];
  if (count === 0) {
    throw new Error("Cannot train on an empty training set");
  }
  const largest = tf.max(data.masks); // data(), not dataSync(): webgpu reads only asynchronously
  const [largestClass] = await largest.data();
  largest.dispose();
  if (largestClass! <= 0) {
    throw new UserError(
      `Cannot train: every pixel of the ${count} training masks is background (class 0), so ` +
        "there is nothing to learn; check the masks (a newt is painted akahara red " +
        "(128, 0, 0) or madara green (0, 128, 0), or stored as class index 1 or 2)",
    );
  }
  assertBatchNormCanTrain(model, batchSize);
  const optimizer = createOptimizer(optimizerName, lr, momentum);
  if (optimizerState) {
    await optimizer.setWeights(optimizerState);
  }
  const variables = model.trainableWeights.map((weight) => weight.read() as tf.Variable);
  const batches = minibatchIndices(count, batchSize, seed);
  const lossOf = trainingLoss(model, loss);
  const progress = new Progress({ total: iters, start: startIteration, ...options.progress });
  /** Throws when a weight is not finite, naming it, with `when` ("at iteration 10"). */
  const refuseBrokenWeights = async (when: string) => {
    const broken = await firstNonFiniteWeight(model);
    if (broken === undefined) return;
    optimizer.dispose();
    throw new UserError(
      `Training diverged ${when}: weight ${broken} is not finite; lower the learning rate ` +
        `(--lr ${lr} now, ${lowerLr(lr)}); any checkpoint saved before it is kept`,
    );
  };
  const loopStart = performance.now();
  let timedStart = loopStart;
  let last = startIteration;
  for (let iteration = startIteration + 1; iteration <= iters; iteration++) {
    if (options.signal?.aborted) break;
    if (schedule !== "constant") {
      setLearningRate(optimizer, learningRateAt(iteration - 1, { schedule, lr, total: iters }));
    }
    const indices = batches(iteration - 1);
    const cost = tf.tidy(() => {
      const picked = tf.tensor1d(indices, "int32");
      let images = tf.gather(data.images, picked) as tf.Tensor4D; // [batch, height, width, 3]
      let masks = tf.gather(data.masks, picked) as tf.Tensor3D; // [batch, height, width]
      if (augment) {
        ({ images, masks } = augment(images, masks, createRng(seed * 1000003 + iteration)));
      }
      return optimizer.minimize(
        () => lossOf(images, masks),
        true,
        variables,
      )!;
    });
    const loss = (await cost.data())[0]!;
    cost.dispose();
    if (!Number.isFinite(loss)) {
      optimizer.dispose();
      throw new UserError(
        `Training diverged at iteration ${iteration}: the loss is ${loss}; lower the learning ` +
          `rate (--lr ${lr} now, ${lowerLr(lr)}); any checkpoint saved before it is kept`,
      );
    }
    if (iteration === startIteration + warmup) {
      timedStart = performance.now();
    }
    // A weight can turn non-finite while the loss still looks fine (a kernel that reads stale
    // weights did): check them every few iterations, before anything is saved, and at the end.
    if (iteration % WEIGHT_CHECK_EVERY === 0 || iteration === iters) {
      await refuseBrokenWeights(`at iteration ${iteration}`);
    }
    progress.update(iteration, loss);
    last = iteration;
    await options.onIteration?.(iteration, loss, optimizer);
  }
  const end = performance.now();
  if (last !== iters) await refuseBrokenWeights(`by iteration ${last}`); // stopped before its last check
  const done = last - startIteration;
  const timed = done - warmup;
  return {
    losses: progress.finish(),
    iteration: Math.max(last, startIteration),
    seconds: (end - loopStart) / 1000,
    msPerIter: timed > 0 ? (end - timedStart) / timed : 0,
    optimizer,
  };
}

/** Iterations between two checks that every weight is finite, in {@linkcode trainModel}. */
export const WEIGHT_CHECK_EVERY = 10;

/**
 * Refuses a training setting in which a batch-norm layer would see one value
 * per channel: its batch statistics are then that value and a variance of 0,
 * so in training it outputs a constant (its offset) and saves a variance of 0
 * (PyTorch refuses this too: "Expected more than 1 value per channel when
 * training"). A layer sees batch size x the product of its input's other
 * axes (height x width for a conv map) values per channel.
 *
 * @param model The model to train; every BatchNormalization layer in it (and
 * in models nested in it) is checked.
 * @param batchSize Images per minibatch.
 * @throws {UserError} Naming the layer, its input and the flags that fix it.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { assertBatchNormCanTrain } from "./train.ts";
 * import { assertThrows } from "./assert.ts";
 * const input = tf.input({ shape: [2, 2, 3] });
 * const pooled = tf.layers.maxPooling2d({ poolSize: 2 }).apply(input) as tf.SymbolicTensor; // [batch, 1, 1, 3]
 * const norm = tf.layers.batchNormalization({ name: "bn" }).apply(pooled) as tf.SymbolicTensor;
 * const model = tf.model({ inputs: input, outputs: norm });
 * assertBatchNormCanTrain(model, 2);
 * assertThrows(() => assertBatchNormCanTrain(model, 1), /batch-norm layer bn/);
 * ```
 */
export function assertBatchNormCanTrain(model: tf.LayersModel, batchSize: number): void {
  for (const layer of allLayers(model)) {
    if (layer.getClassName() !== "BatchNormalization") continue;
    let shape: (number | null)[];
    try {
      shape = (layer.input as tf.SymbolicTensor).shape;
    } catch {
      continue; // a layer used at several places: its input has no one shape
    }
    const rank = shape.length;
    const configured = layer.getConfig().axis;
    const axes = (Array.isArray(configured) ? configured : [configured ?? -1])
      .map((axis) => ((axis as number) + rank) % rank);
    const others = shape.filter((_, axis) => axis > 0 && !axes.includes(axis));
    if (others.some((size) => size === null)) continue;
    const perChannel = batchSize * others.reduce<number>((product, size) => product * size!, 1);
    if (perChannel > 1) continue;
    const inputSize = (model.inputs[0]?.shape ?? []).slice(1, -1).join("x");
    throw new UserError(
      `Cannot train at --batch-size ${batchSize}: batch-norm layer ${layer.name} would see one ` +
        `value per channel (its input is ${others.join("x") || "1"} per image` +
        (inputSize ? ` at input size ${inputSize}` : "") +
        "), so in training it would output a constant and save a variance of 0; use " +
        "--batch-size 2 or more, or a larger --size",
    );
  }
}

function allLayers(model: tf.LayersModel): tf.layers.Layer[] {
  return model.layers.flatMap((layer) =>
    "layers" in layer ? [layer, ...allLayers(layer as unknown as tf.LayersModel)] : [layer]
  );
}
