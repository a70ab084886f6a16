/**
 * Step-by-step parity with PyTorch: each network starts in both frameworks
 * from the SAME initial weights (the project's, converted by
 * {@linkcode pytorchLayers}), trains on the same minibatches for a few
 * iterations, and the check compares the loss at every iteration, then every
 * weight and batch-norm statistic at the end, layer by layer, so that a
 * divergence shows at its layer.
 *
 * ```
 * deno task parity                          # every network, its exercise's protocol, 20 iterations
 * deno task parity --models unetlike --iters 1000 --test --seeds 0,1,2
 * ```
 *
 * The exact answer is PyTorch in float64 from the same weights; ours and
 * PyTorch in float32 are both compared with it, and ours may be off by a few
 * times PyTorch float32's own error ({@linkcode TOLERANCES}). Why not a fixed
 * tolerance against PyTorch float32: two float32 runs cannot agree to more
 * than rounding, and these networks (batch norm over minibatches of 4, lr
 * 0.01, momentum 0.9) amplify rounding about twofold per iteration; PyTorch
 * float32 against itself on 1 and 2 threads differs by 2e-3 in the loss and
 * 1e-2 in the first layer's weights after 20 iterations, as much as ours
 * differs from it. Against float64 both float32 runs show the same error,
 * which is what the check asks. PyTorch float32's own error is itself
 * noisy (after 3 iterations, 1e-4 of the step on nearest, 2e-2 on bin), so
 * each measure also has a floor, the largest error PyTorch float32 showed on
 * any network at the full protocol, rounded up. The strict part is the
 * start: the first loss (a forward pass) to 1e-5 and the losses of
 * iterations 2-3 to 3e-4 (see the oneDNN note). The weights after 3 iterations may be off by 20%
 * of PyTorch's step: under batch norm a conv's gradient is a sum over 4096 to
 * 16384 pixels that nearly cancels, so float32 gets it to a few percent only
 * (PyTorch float32: up to 5% on unetlike; ours, whose batch-norm backward is
 * a chain of small float32 ops rather than one fused kernel, up to 12%); a
 * wrong momentum is off by 50-90% of the step at iteration 2. Batch-norm
 * statistics after 3 iterations to 2e-3 (OpenBLAS path: up to 2.6e-4; a running_var
 * without Bessel's correction is off by 4e-3 at unetlike's 4x4 level).
 * After 20 iterations rounding has grown to the size of the steps (PyTorch
 * float32: losses 7e-3, weights 0.8 of their change, statistics 5e-2), and
 * the floors (2e-2, 1, 0.1) only catch a drift, not rounding.
 * The engine's oneDNN path (wasm+onednn) is further from float64 than its
 * OpenBLAS path: unetlike at 32x32 after 3 iterations, loss 1.05e-4 and
 * statistics 8.6e-4 on oneDNN against 1.3e-6 and 5.9e-5 on OpenBLAS (the
 * same minibatches and weights). One step's gradients of every layer are as
 * close to the cpu backend's on both paths (relative 1e-2 or better); the
 * difference is rounding in other summation orders, which the biases of the
 * convs before batch norm (whose true gradient is 0) and unetlike's 2x2
 * bottleneck amplify. So the early floors are 3e-4 (loss) and 2e-3
 * (statistics), still far below what a wrong momentum or a flipped kernel
 * gives (tested); narrowing the oneDNN path is left open.
 * Long sums: SegNet at its protocol (batch 16, 65,536 values per batch-norm
 * channel at 64x64) had a first loss 3.9e-5 from float64 on wasm+onednn and
 * 1.9e-5 on wasm+openblas (PyTorch float32: 3.5e-8; our cpu backend, which
 * sums in float64: 6.7e-8), from float32 running sums over 65,536 values:
 * oneDNN's batch-norm statistics (3.6e-5; with float64 statistics the
 * logits' exact loss was 4e-8 from the cpu backend's) and the loss's mean on
 * the wasm backend's own kernel (1.9e-6 to 3.7e-6). The engine now finishes
 * those sums in float64 (engine/README.md): 1e-6 on wasm+onednn, 3.5e-8 on
 * wasm+openblas. The same float32 statistics over the small networks' 16,384
 * rows were why transposeconv's and unetlike's weights after 3 iterations
 * were 0.201 and 0.23 of PyTorch's step from float64 on wasm+onednn (the
 * tfjs path, whose statistics go through those sums, 5e-4 and 0.13): with
 * the statistics of parts of 2048 rows joined in float64, 0.013 and 0.11,
 * and every network passes at `--iters 3` on the Imori photos. SegNet's
 * first loss is fragile in one more way: a difference in the last digits
 * can flip which of two near-equal values wins a max-pooling window, whose
 * index its unpooling then uses, and that moves the loss by about 2e-5
 * (seen with parts of 1024 rows, not with 2048 or 4096).
 * Threads: ours runs oneDNN on every core, fixed (as PyTorch runs on two
 * threads), so that the check does not depend on what else the machine
 * does. UNet at 188 is that sensitive to the order of sums: on one thread
 * (`SEGMENT_THREADS=1`) its loss after one step is 7.8e-4 from float64
 * (1.4e-5 on two) and its statistics after 3 iterations 1.84e-2 against the
 * 1.63e-2 allowed, while every kernel matches the cpu backend on one thread
 * as on two (the kernel and network tests pass with `SEGMENT_THREADS=1`).
 * One framework difference is exact and accounted for rather
 * than tolerated: PyTorch updates
 * `running_var` with the unbiased batch variance (n / (n - 1) times the
 * biased one, n = batch x height x width), tfjs's batch norm with the biased
 * one ({@linkcode besselRunningVar}).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../engine/mod.ts";
import { BN_MOMENTUM } from "../lib/blocks.ts";
import { resolveDataDir } from "../lib/data_dir.ts";
import { type Dataset, loadDataset } from "../lib/dataset.ts";
import { runMain, UserError } from "../lib/errors.ts";
import { confusionMatrix, evaluateModel, metricsFromConfusion } from "../lib/evaluate.ts";
import { type FlagDefs, parseFlags, TRAIN_FLAGS } from "../lib/flags.ts";
import { recomputeBatchNormStats } from "../lib/batch_norm_stats.ts";
import { dirname } from "../lib/path.ts";
import { trainModel } from "../lib/train.ts";
import { lessonsOf, MODEL_NAMES, type ModelName, NETWORKS, outputSize } from "./networks.ts";
import {
  findPyTorch,
  type PyTorchLayer,
  pytorchLayers,
  type PyTorchRun,
  runPyTorch,
  TENSOR_NAMES,
} from "./pytorch.ts";

/** The iteration of the strict check: forward, backward, two momentum steps, BN updates. */
export const EARLY_ITERATION = 3;

/**
 * What the check measures, each the largest relative difference from the
 * float64 reference in its group. Losses: |x - ref| / |ref| (iteration 1,
 * iterations 2 to {@linkcode EARLY_ITERATION}, later ones). Weights: max
 * |x - ref| over a tensor / the largest change the reference made to it
 * (at least 1e-3 of its largest magnitude), after {@linkcode EARLY_ITERATION}
 * iterations and at the end. Batch-norm statistics: max |x - ref| / max |ref|.
 */
export type Measure =
  | "firstLoss"
  | "earlyLoss"
  | "earlyWeights"
  | "earlyStats"
  | "loss"
  | "weights"
  | "stats";

/** Every measure, in report order. */
export const MEASURES: readonly Measure[] = [
  "firstLoss",
  "earlyLoss",
  "earlyWeights",
  "earlyStats",
  "loss",
  "weights",
  "stats",
];

/** A value per measure. */
export type Errors = Record<Measure, number>;

/**
 * The tolerances. The exact answer is PyTorch in float64 from the shared
 * weights; float32 cannot match it exactly, and after a few SGD steps its
 * rounding is amplified (about 2x per iteration here). So the yardstick is
 * PyTorch's own float32 error in the same run: ours may be at most `factor`
 * times it, or `floor`, whichever is larger.
 */
export interface ParityTolerances {
  /** Allowed error whatever PyTorch's own. */
  floor: Errors;
  /** Multiple of PyTorch float32's error allowed up to {@linkcode EARLY_ITERATION}. */
  earlyFactor: number;
  /** Multiple of PyTorch float32's error allowed later. */
  lateFactor: number;
}

/** The tolerances `deno task parity` and its test check (the module doc says why). */
export const TOLERANCES: Readonly<ParityTolerances> = {
  floor: {
    firstLoss: 1e-5,
    earlyLoss: 3e-4,
    earlyWeights: 0.2,
    earlyStats: 2e-3,
    loss: 2e-2,
    weights: 1,
    stats: 0.1,
  },
  earlyFactor: 4,
  lateFactor: 10,
};

/** One tensor's difference at the end. */
export interface TensorDiff {
  /** The project's layer name. */
  layer: string;
  /** PyTorch's tensor name: weight, bias, running_mean or running_var. */
  tensor: string;
  /** Largest absolute difference. */
  maxAbs: number;
  /** `maxAbs` relative to PyTorch's change of the tensor (weights) or its magnitude (statistics). */
  relative: number;
}

/** The tensors compared after some iterations. */
export interface ParityCheck {
  /** Iterations done. */
  iteration: number;
  /** Ours against PyTorch float64, every tensor in the order the layers run. */
  ours: TensorDiff[];
  /** PyTorch float32 against PyTorch float64: the yardstick. */
  pytorch32: TensorDiff[];
}

/** One network's parity run. */
export interface ParityResult {
  /** The network. */
  model: ModelName;
  /** Input size, minibatch size, iterations, learning rate and seed. */
  size: number;
  batch: number;
  iters: number;
  lr: number;
  seed: number;
  /** Loss of each iteration: ours, PyTorch float32 and PyTorch float64. */
  losses: { ours: number[]; pytorch32: number[]; pytorch64: number[] };
  /** The tensors after {@linkcode EARLY_ITERATION} iterations (or fewer) and at the end. */
  checks: ParityCheck[];
  /** Each measure: ours and PyTorch float32 against float64, and what ours may reach. */
  errors: { ours: Errors; pytorch32: Errors; allowed: Errors };
  /** Test mIoU after training (batch-norm statistics recomputed), with a test set. */
  miou?: { ours: number; pytorch32: number; pytorch64: number };
  /** What exceeded its tolerance, one line each; empty when the check passes. */
  failures: string[];
}

/**
 * PyTorch's `running_var` from tfjs's moving variance after `iters` updates
 * with the same batches: both are exponential averages starting at
 * `initial`, PyTorch's of `n / (n - 1)` times the batch variance tfjs
 * averages, so `torch = keep^k initial + n / (n - 1) (ours - keep^k initial)`.
 *
 * @param ours The moving variance after training.
 * @param initial The moving variance before training.
 * @param n Values per channel in a batch: batch x height x width of the layer's input.
 * @param iters Updates done.
 * @param keep Keras momentum (the share of the old value kept).
 * @returns What PyTorch's running variance should be.
 *
 * @example
 * ```ts
 * import { besselRunningVar } from "./parity.ts";
 * import { assertAlmostEquals } from "../lib/assert.ts";
 * // one update with batch variance 2 over n = 2 values: tfjs 0.9 + 0.2, PyTorch 0.9 + 0.4
 * const [torch] = besselRunningVar(new Float32Array([1.1]), new Float32Array([1]), 2, 1, 0.9);
 * assertAlmostEquals(torch!, 1.3, 1e-6);
 * ```
 */
export function besselRunningVar(
  ours: Float32Array,
  initial: Float32Array,
  n: number,
  iters: number,
  keep = BN_MOMENTUM,
): Float32Array {
  const decay = Math.pow(keep, iters);
  const factor = n / (n - 1);
  return ours.map((value, index) => {
    const start = decay * initial[index]!;
    return start + factor * (value - start);
  });
}

/**
 * The largest absolute difference of two tensors, relative: to the largest
 * change the reference made from `initial` (floored at 1e-3 of its largest
 * magnitude, so a tensor that barely moves is not judged on rounding alone),
 * or without `initial` to the reference's largest magnitude.
 *
 * @param ours The project's values.
 * @param reference PyTorch's values, the same length.
 * @param initial The shared values before training, for a weight.
 * @returns `maxAbs` and `relative` (`maxAbs` itself when the scale is 0).
 *
 * @example
 * ```ts
 * import { relativeDifference } from "./parity.ts";
 * import { assertAlmostEquals } from "../lib/assert.ts";
 * const diff = relativeDifference(new Float32Array([1, 2.002]), new Float32Array([-1, 2]));
 * assertAlmostEquals(diff.maxAbs, 2, 1e-6);
 * assertAlmostEquals(diff.relative, 1, 1e-6);
 * const step = relativeDifference(new Float32Array([1.011]), new Float32Array([1.01]), new Float32Array([1]));
 * assertAlmostEquals(step.relative, 0.1, 1e-3); // a tenth of PyTorch's step
 * ```
 */
export function relativeDifference(
  ours: Float32Array,
  reference: Float32Array,
  initial?: Float32Array,
): { maxAbs: number; relative: number } {
  if (ours.length !== reference.length || (initial && initial.length !== reference.length)) {
    throw new Error(`Cannot compare ${ours.length} values with ${reference.length}`);
  }
  let maxAbs = 0;
  let magnitude = 0;
  let change = 0;
  for (let index = 0; index < ours.length; index++) {
    maxAbs = Math.max(maxAbs, Math.abs(ours[index]! - reference[index]!));
    magnitude = Math.max(magnitude, Math.abs(reference[index]!));
    if (initial) change = Math.max(change, Math.abs(reference[index]! - initial[index]!));
  }
  const scale = initial ? Math.max(change, 1e-3 * magnitude) : magnitude;
  return { maxAbs, relative: scale > 0 ? maxAbs / scale : maxAbs };
}

/** Options of {@linkcode checkParity}. */
export interface ParityOptions {
  /** Input size. @default the exercise's protocol (unet: 188) */
  size?: number;
  /** Minibatch size. @default the exercise's protocol */
  batchSize?: number;
  /** Iterations. @default 20 */
  iters?: number;
  /** Learning rate. @default the exercise's protocol */
  lr?: number;
  /** Seed of the initial weights and minibatch order. @default 0 */
  seed?: number;
  /** Threads for PyTorch; 0 leaves its default. @default 0 */
  threads?: number;
  /** An interpreter with torch; found when absent. */
  python?: string;
  /** Test images and masks: with them both networks are tested after training. */
  test?: Dataset;
  /** Tolerances. @default {@linkcode TOLERANCES} */
  tolerances?: ParityTolerances;
  /** Print a line every this many iterations (0: quiet). @default 0 */
  every?: number;
  /**
   * PyTorch's runs from {@linkcode pytorchReference} for the same network,
   * data and protocol, to compare several backends with one reference; made
   * here when absent.
   */
  reference?: ParityReference;
}

/**
 * PyTorch's float64 and float32 runs of one network from this project's
 * initial weights: what {@linkcode checkParity} compares against.
 */
export interface ParityReference {
  /** The network, size, minibatch, iterations, learning rate and seed it was run with. */
  protocol: string;
  /** The initial weights, in PyTorch's layout. */
  initial: PyTorchLayer[];
  /** PyTorch in float64: the reference. */
  exact: PyTorchRun;
  /** PyTorch in float32: the error allowed is measured on it. */
  torch32: PyTorchRun;
}

/**
 * Runs PyTorch once for {@linkcode checkParity}: the network built from the
 * seed, trained in float64 and in float32 on the same minibatches. Pass it as
 * `reference` to check several backends against the same runs.
 *
 * @param name The network.
 * @param train Training images and masks at the input size (bin: binary masks).
 * @param options The protocol, as given to {@linkcode checkParity}.
 * @returns The two runs and the initial weights.
 * @throws {UserError} When PyTorch is missing or its run fails.
 */
export async function pytorchReference(
  name: ModelName,
  train: Dataset,
  options: ParityOptions = {},
): Promise<ParityReference> {
  const run = parityProtocol(name, train, options);
  const model = NETWORKS[name].build(run.size, { classes: run.classes, seed: run.seed });
  try {
    const initial = pytorchLayers(model);
    const pytorch = (float64: boolean) =>
      runPyTorch({
        model: name,
        classes: run.classes,
        size: run.size,
        train,
        testImages: options.test?.images,
        iters: run.iters,
        batchSize: run.batchSize,
        lr: run.lr,
        momentum: 0.9,
        seed: run.seed,
        threads: options.threads ?? 0,
        bnStats: "recompute",
        python: options.python,
        initWeights: initial,
        dumpAt: run.dumpAt,
        float64,
      });
    const exact = await pytorch(true);
    const torch32 = await pytorch(false);
    return { protocol: run.key, initial, exact, torch32 };
  } finally {
    model.dispose();
  }
}

/** The protocol of a parity run, with its defaults filled in and checked. */
function parityProtocol(name: ModelName, train: Dataset, options: ParityOptions) {
  const protocol = NETWORKS[name].protocol;
  const size = options.size ?? (name === "unet" ? UNET_PARITY_SIZE : protocol.size);
  const { batchSize = protocol.batchSize, iters = 20, lr = protocol.lr, seed = 0 } = options;
  outputSize(name, size);
  if (train.images.shape[1] !== size) {
    throw new Error(`Training images are ${train.images.shape[1]} pixels, expected ${size}`);
  }
  const classes = name === "bin" ? 1 : 3;
  const dumpAt = [...new Set([Math.min(EARLY_ITERATION, iters), iters])];
  const key = JSON.stringify({
    name,
    size,
    batchSize,
    iters,
    lr,
    seed,
    count: train.images.shape[0],
  });
  return { size, batchSize, iters, lr, seed, classes, dumpAt, key };
}

/** The smallest input size unet takes (output 4), for a parity run that stays short. */
export const UNET_PARITY_SIZE = 188;

/**
 * Trains one network in both frameworks from the same initial weights on the
 * same minibatches and compares them step by step.
 *
 * @param name The network.
 * @param train Training images and masks at the input size (bin: binary masks).
 * @param options Protocol overrides, PyTorch's interpreter and threads, test data.
 * @returns Losses side by side, every tensor's difference and the failures.
 * @throws {UserError} When PyTorch is missing or its run fails.
 */
export async function checkParity(
  name: ModelName,
  train: Dataset,
  options: ParityOptions = {},
): Promise<ParityResult> {
  const { size, batchSize, iters, lr, seed, classes, dumpAt, key } = parityProtocol(
    name,
    train,
    options,
  );
  const tolerances = options.tolerances ?? TOLERANCES;
  const model = NETWORKS[name].build(size, { classes, seed });
  const predictions: tf.Tensor[] = [];
  try {
    const initial = pytorchLayers(model);
    const reference = options.reference ?? await pytorchReference(name, train, options);
    if (reference.protocol !== key || !sameLayers(reference.initial, initial)) {
      throw new Error(`The PyTorch reference was run for ${reference.protocol}, not ${key}`);
    }
    const { exact, torch32 } = reference;
    if (options.reference === undefined) {
      predictions.push(...[exact.prediction, torch32.prediction].filter((x) => x !== undefined));
    }
    const ours = new Map<number, PyTorchLayer[]>();
    const trained = await trainModel(model, train, {
      loss: lessonsOf(name).loss,
      iters,
      batchSize,
      lr,
      seed,
      progress: options.every ? { every: options.every } : { quiet: true },
      onIteration: (iteration) => {
        if (dumpAt.includes(iteration)) ours.set(iteration, pytorchLayers(model));
      },
    });
    trained.optimizer.dispose();
    const inputs = model.layers.filter((layer) => layer.getClassName() === "BatchNormalization")
      .map((layer) => (layer.input as tf.SymbolicTensor).shape);
    const checks = dumpAt.map((iteration) => {
      const reference = exact.weightsAt.get(iteration)!;
      const run = { inputs, batchSize, iters: iteration };
      return {
        iteration,
        ours: compareLayers(ours.get(iteration)!, reference, initial, run),
        pytorch32: compareLayers(torch32.weightsAt.get(iteration)!, reference, initial, {
          ...run,
          inputs: [],
        }),
      };
    });
    const relative = (losses: number[]) =>
      losses.map((loss, index) => {
        const reference = exact.losses[index]!;
        return Math.abs(loss - reference) / Math.max(Math.abs(reference), 1e-12);
      });
    const errors = {
      ours: errorSummary(relative(trained.losses), checks.map((c) => [c.iteration, c.ours])),
      pytorch32: errorSummary(
        relative(torch32.losses),
        checks.map((c) => [c.iteration, c.pytorch32]),
      ),
    };
    const allowed = allowedErrors(errors.pytorch32, tolerances);
    const result: ParityResult = {
      model: name,
      size,
      batch: batchSize,
      iters,
      lr,
      seed,
      losses: { ours: trained.losses, pytorch32: torch32.losses, pytorch64: exact.losses },
      checks,
      errors: { ...errors, allowed },
      failures: parityFailures(errors.ours, allowed, checks),
    };
    if (options.test && exact.prediction && torch32.prediction) {
      const test = options.test;
      recomputeBatchNormStats(model, train.images, batchSize);
      const evaluation = await evaluateModel(model, test.images, test.masks, {
        classify: lessonsOf(name).classify,
        classNames: test.classNames,
      });
      tf.dispose([evaluation.probabilities, evaluation.classMap, evaluation.truth]);
      const miou = async (prediction: tf.Tensor3D) =>
        metricsFromConfusion(
          await confusionMatrix(prediction, test.masks, test.classNames.length),
          test.classNames,
        ).miou;
      result.miou = {
        ours: evaluation.metrics.miou,
        pytorch32: await miou(torch32.prediction),
        pytorch64: await miou(exact.prediction),
      };
    }
    return result;
  } finally {
    tf.dispose(predictions);
    model.dispose();
  }
}

/** Whether two lists of layers hold the same names, shapes and values. */
function sameLayers(a: PyTorchLayer[], b: PyTorchLayer[]): boolean {
  return a.length === b.length && a.every((layer, i) => {
    const other = b[i]!;
    return layer.name === other.name &&
      JSON.stringify(layer.shapes) === JSON.stringify(other.shapes) &&
      layer.values.every((values, j) =>
        values.length === other.values[j]!.length &&
        values.every((v, k) => Object.is(v, other.values[j]![k]))
      );
  });
}

/**
 * The largest relative error of each measure: losses by iteration, tensors
 * by the iteration they were compared at (up to {@linkcode EARLY_ITERATION}:
 * early). A measure with nothing to measure is 0.
 *
 * @param lossRelative Relative loss error per iteration.
 * @param checks Iteration and tensor errors after it.
 * @returns The error of each measure.
 *
 * @example
 * ```ts
 * import { errorSummary } from "./parity.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const weight = { layer: "head_conv", tensor: "weight", maxAbs: 1, relative: 0.5 };
 * const errors = errorSummary([1e-6, 2e-6, 3e-6, 4e-3], [[3, [weight]]]);
 * assertEquals([errors.firstLoss, errors.earlyLoss, errors.loss], [1e-6, 3e-6, 4e-3]);
 * assertEquals([errors.earlyWeights, errors.weights, errors.stats], [0.5, 0, 0]);
 * ```
 */
export function errorSummary(
  lossRelative: number[],
  checks: [number, TensorDiff[]][],
): Errors {
  const errors: Errors = Object.fromEntries(MEASURES.map((m) => [m, 0])) as Errors;
  const raise = (measure: Measure, value: number) => {
    errors[measure] = Number.isNaN(value) ? NaN : Math.max(errors[measure], value);
  };
  lossRelative.forEach((value, index) =>
    raise(index === 0 ? "firstLoss" : index < EARLY_ITERATION ? "earlyLoss" : "loss", value)
  );
  for (const [iteration, tensors] of checks) {
    const early = iteration <= EARLY_ITERATION;
    for (const diff of tensors) {
      const stat = diff.tensor.startsWith("running_");
      raise(
        stat ? (early ? "earlyStats" : "stats") : (early ? "earlyWeights" : "weights"),
        diff.relative,
      );
    }
  }
  return errors;
}

/**
 * What ours may reach per measure: the floor, or the factor times PyTorch
 * float32's own error, whichever is larger.
 *
 * @param pytorch32 PyTorch float32's errors against float64.
 * @param tolerances The tolerances.
 * @returns The allowed error of each measure.
 *
 * @example
 * ```ts
 * import { allowedErrors, errorSummary, TOLERANCES } from "./parity.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const allowed = allowedErrors(errorSummary([1e-7, 1e-7, 1e-7, 1e-2], []), TOLERANCES);
 * assertEquals([allowed.firstLoss, allowed.loss], [1e-5, 0.1]);
 * ```
 */
export function allowedErrors(pytorch32: Errors, tolerances: ParityTolerances): Errors {
  return Object.fromEntries(MEASURES.map((measure) => {
    const factor = measure === "loss" || measure === "weights" || measure === "stats"
      ? tolerances.lateFactor
      : tolerances.earlyFactor;
    return [measure, Math.max(tolerances.floor[measure], factor * pytorch32[measure])];
  })) as Errors;
}

/**
 * Compares trained layers tensor by tensor, PyTorch's `running_var` against
 * {@linkcode besselRunningVar} of ours.
 *
 * @param ours The project's trained layers ({@linkcode pytorchLayers}).
 * @param theirs PyTorch's trained layers, the same order.
 * @param initial The shared initial layers.
 * @param run Each batch-norm layer's input shape, the minibatch size and iterations.
 * @returns One entry per tensor.
 * @throws {Error} When the layers do not pair up.
 *
 * @example
 * ```ts
 * import { compareLayers } from "./parity.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const layer = (bias: number) => ({ name: "head_conv", kind: "conv" as const, shapes: [[1], [1]],
 *   values: [new Float32Array([2]), new Float32Array([bias])] });
 * const diffs = compareLayers([layer(1)], [layer(1.5)], [layer(1)], { inputs: [], batchSize: 4, iters: 1 });
 * assertEquals(diffs.map((diff) => [diff.tensor, diff.maxAbs, diff.relative]), [["weight", 0, 0], ["bias", 0.5, 1]]);
 * ```
 */
export function compareLayers(
  ours: PyTorchLayer[],
  theirs: PyTorchLayer[],
  initial: PyTorchLayer[],
  run: { inputs: tf.Shape[]; batchSize: number; iters: number },
): TensorDiff[] {
  if (ours.length !== theirs.length) {
    throw new Error(`Cannot compare ${ours.length} layers with PyTorch's ${theirs.length}`);
  }
  const diffs: TensorDiff[] = [];
  let norms = 0;
  ours.forEach((layer, index) => {
    const other = theirs[index]!;
    if (other.kind !== layer.kind) {
      throw new Error(`Layer ${index} (${layer.name}) is ${layer.kind}, PyTorch's ${other.kind}`);
    }
    const input = layer.kind === "bn" ? run.inputs[norms++] : undefined;
    layer.values.forEach((values, tensor) => {
      const tensorName = TENSOR_NAMES[layer.kind][tensor]!;
      let mine = values;
      if (tensorName === "running_var" && input) {
        const n = run.batchSize * (input[1] ?? 1) * (input[2] ?? 1);
        mine = besselRunningVar(values, initial[index]!.values[tensor]!, n, run.iters);
      }
      const stat = tensorName.startsWith("running_");
      const start = stat ? undefined : initial[index]!.values[tensor];
      diffs.push({
        layer: layer.name,
        tensor: tensorName,
        ...relativeDifference(mine, other.values[tensor]!, start),
      });
    });
  });
  return diffs;
}

/**
 * What exceeded its tolerance, one line each, naming the worst tensor.
 *
 * @param ours Our errors against float64.
 * @param allowed What each may reach ({@linkcode allowedErrors}).
 * @param checks The tensor comparisons, to name the worst tensor of a failed measure.
 * @returns The failures; empty when everything is within tolerance.
 *
 * @example
 * ```ts
 * import { allowedErrors, errorSummary, parityFailures, TOLERANCES } from "./parity.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const stat = { layer: "enc1_bn1", tensor: "running_var", maxAbs: 0.1, relative: 0.05 };
 * const ours = errorSummary([0, 0, 0], [[3, [stat]]]);
 * const allowed = allowedErrors(errorSummary([], []), TOLERANCES);
 * assertEquals(parityFailures(ours, allowed, [{ iteration: 3, ours: [stat], pytorch32: [] }]),
 *   ["earlyStats: 5.0e-2 > 2.0e-3 (enc1_bn1 running_var after 3 iterations)"]);
 * ```
 */
export function parityFailures(
  ours: Errors,
  allowed: Errors,
  checks: ParityCheck[],
): string[] {
  const exp = (value: number) => value.toExponential(1);
  return MEASURES.filter((measure) => !(ours[measure] <= allowed[measure])).map((measure) => {
    const where = checks.flatMap((check) =>
      check.ours.filter((diff) =>
        diff.relative === ours[measure]
      )
        .map((diff) => ` (${diff.layer} ${diff.tensor} after ${check.iteration} iterations)`)
    )[0] ?? "";
    return `${measure}: ${exp(ours[measure])} > ${exp(allowed[measure])}${where}`;
  });
}

/**
 * One network's parity as text: the losses side by side (every iteration up
 * to 20, else 20 spread over the run), each measure's error (ours, PyTorch
 * float32's, allowed) with the worst tensor, pass or fail.
 *
 * @param result A parity run.
 * @returns The report text.
 *
 * @example
 * ```ts
 * import { allowedErrors, errorSummary, formatParity, TOLERANCES } from "./parity.ts";
 * import { assert } from "../lib/assert.ts";
 * const weight = { layer: "head_conv", tensor: "weight", maxAbs: 1e-7, relative: 1e-6 };
 * const ours = errorSummary([0], [[1, [weight]]]);
 * const none = errorSummary([0], []);
 * const text = formatParity({ model: "bin", size: 64, batch: 4, iters: 1, lr: 0.01, seed: 0,
 *   losses: { ours: [0.7], pytorch32: [0.7], pytorch64: [0.7] }, failures: [],
 *   errors: { ours, pytorch32: none, allowed: allowedErrors(none, TOLERANCES) },
 *   checks: [{ iteration: 1, pytorch32: [], ours: [weight] }] });
 * assert(text.includes("bin: pass"));
 * assert(text.includes("head_conv weight"));
 * ```
 */
export function formatParity(result: ParityResult): string {
  const { losses, errors } = result;
  const count = losses.ours.length;
  const shown = count <= 20
    ? losses.ours.map((_, index) => index)
    : [...new Set(Array.from({ length: 20 }, (_, k) => Math.round(k * (count - 1) / 19)))];
  const exp = (value: number) => value.toExponential(2);
  const lines = [
    `${result.model}: ${result.failures.length ? "FAIL" : "pass"} (size ${result.size}, ` +
    `batch ${result.batch}, ${result.iters} iterations, lr ${result.lr}, seed ${result.seed})`,
    "   iter  loss ours   PyTorch f32  PyTorch f64  ours rel diff  f32 rel diff",
    ...shown.map((index) => {
      const reference = losses.pytorch64[index]!;
      const rel = (value: number) => exp(Math.abs(value - reference) / Math.abs(reference));
      return `   ${String(index + 1).padStart(4)}  ${losses.ours[index]!.toFixed(6)}  ` +
        `${losses.pytorch32[index]!.toFixed(6).padStart(11)}  ${
          reference.toFixed(6).padStart(11)
        }` +
        `  ${rel(losses.ours[index]!).padStart(13)}  ${rel(losses.pytorch32[index]!).padStart(12)}`;
    }),
    "   measure (relative to PyTorch f64)  ours      PyTorch f32  allowed   worst tensor (ours)",
  ];
  for (const measure of MEASURES) {
    const tensors = result.checks.flatMap((check) =>
      check.ours.map((diff) => ({ ...diff, iteration: check.iteration }))
    );
    // The later measures need more than EARLY_ITERATION iterations: without them, "n/a".
    const measured = measure === "firstLoss" || measure.startsWith("early") ||
      losses.ours.length > EARLY_ITERATION;
    if (!measured) {
      lines.push(
        `   ${measure.padEnd(34)} n/a      n/a          (more than ${EARLY_ITERATION} iterations)`,
      );
      continue;
    }
    const worstTensor = errors.ours[measure] > 0
      ? tensors.find((diff) => diff.relative === errors.ours[measure])
      : undefined;
    lines.push(
      `   ${measure.padEnd(34)} ${exp(errors.ours[measure])}  ${
        exp(errors.pytorch32[measure]).padEnd(11)
      }  ${exp(errors.allowed[measure])}  ` +
        (worstTensor && !measure.toLowerCase().endsWith("loss")
          ? `${worstTensor.layer} ${worstTensor.tensor} (iteration ${worstTensor.iteration})`
          : ""),
    );
  }
  if (result.miou) {
    lines.push(
      `   test mIoU: ours ${result.miou.ours.toFixed(3)}, PyTorch f32 ` +
        `${result.miou.pytorch32.toFixed(3)}, PyTorch f64 ${result.miou.pytorch64.toFixed(3)}`,
    );
  }
  lines.push(...result.failures.map((failure) => `   over tolerance: ${failure}`));
  return lines.join("\n");
}

const FLAGS = {
  models: {
    type: "string",
    default: MODEL_NAMES.join(","),
    help: `Comma-separated networks, of ${MODEL_NAMES.join(", ")}`,
  },
  iters: { type: "int", default: 20, min: 1, help: "Training iterations of the check" },
  size: {
    type: "int",
    min: 8,
    max: 1024,
    help: `Input size; default each exercise's protocol (unet: ${UNET_PARITY_SIZE})`,
  },
  batchSize: { type: "int", min: 1, help: "Minibatch size; default each exercise's protocol" },
  lr: { type: "number", min: 0, help: "Learning rate; default each exercise's protocol" },
  seeds: { type: "string", default: "0", help: "Comma-separated seeds, one check per seed" },
  data: {
    type: "string",
    help: "Dataset folder in the Imori layout; default data/imori, else the built-in synthetic set",
  },
  backend: TRAIN_FLAGS.backend,
  test: {
    type: "boolean",
    default: false,
    help: "Also test both trained networks (batch-norm statistics recomputed) and show the mIoU",
  },
  python: { type: "string", help: "Python interpreter with torch; default the first that has it" },
  torchThreads: { type: "int", default: 0, min: 0, help: "Threads for PyTorch; 0: one per core" },
  json: { type: "string", help: "Write the results to this JSON file" },
} as const satisfies FlagDefs;

/**
 * Runs the parity check of each named network and prints it.
 *
 * @param args Command-line arguments.
 * @returns The results; the process exit code is 1 when one failed.
 */
export async function run(args: string[]): Promise<ParityResult[]> {
  const flags = parseFlags(args, FLAGS, {
    usage: "deno task parity [flags]",
    summary: "Train each network in the project and in PyTorch from the same initial weights " +
      "on the same minibatches, and compare losses, weights and batch-norm statistics.",
  });
  const names = flags.models.split(",").map((name) => name.trim()).filter((name) => name);
  for (const name of names) {
    if (!MODEL_NAMES.includes(name as ModelName)) {
      throw new UserError(`Unknown model "${name}" in --models: use ${MODEL_NAMES.join(", ")}`);
    }
  }
  const seeds = flags.seeds.split(",").map((part) => Number(part.trim()));
  if (seeds.some((seed) => !Number.isInteger(seed) || seed < 0)) {
    throw new UserError(
      `Bad value for --seeds: ${flags.seeds}; give non-negative integers separated by commas`,
    );
  }
  const python = await findPyTorch(flags.python);
  // oneDNN on every core, fixed (SEGMENT_THREADS overrides): by default its threads follow the
  // cores other processes leave free, and the PyTorch runs between networks would change them.
  const threads = Deno.env.get("SEGMENT_THREADS") ? undefined : navigator.hardwareConcurrency;
  const detail = await setupBackend(flags.backend, { threads });
  const dataDir = await resolveDataDir(flags.data);
  console.log(`parity: backend ${detail}, PyTorch ${python.version}, data ${dataDir}`);
  const results: ParityResult[] = [];
  for (const name of names as ModelName[]) {
    const size = flags.size ?? (name === "unet" ? UNET_PARITY_SIZE : NETWORKS[name].protocol.size);
    outputSize(name, size);
    const { mode } = lessonsOf(name);
    const train = await loadDataset(dataDir, { split: "train", size, mode, flips: true });
    const test = flags.test ? await loadDataset(dataDir, { split: "test", size, mode }) : undefined;
    try {
      for (const seed of seeds) {
        const result = await checkParity(name, train, {
          size,
          batchSize: flags.batchSize,
          iters: flags.iters,
          lr: flags.lr,
          seed,
          threads: flags.torchThreads || navigator.hardwareConcurrency,
          python: python.python,
          test,
          every: flags.iters >= 100 ? 100 : 0,
        });
        console.log(formatParity(result));
        results.push(result);
      }
    } finally {
      tf.dispose([train.images, train.masks]);
      if (test) tf.dispose([test.images, test.masks]);
    }
  }
  const failed = results.filter((result) => result.failures.length);
  console.log(
    failed.length
      ? `parity: ${failed.length} of ${results.length} failed: ${failed.map((r) => r.model)}`
      : `parity: all ${results.length} passed`,
  );
  if (flags.json) {
    await Deno.mkdir(dirname(flags.json), { recursive: true });
    await Deno.writeTextFile(flags.json, JSON.stringify(results, null, 2) + "\n");
    console.log(`json: ${flags.json}`);
  }
  if (failed.length && import.meta.main) Deno.exitCode = 1;
  return results;
}

if (import.meta.main) await runMain(async () => void await run(Deno.args));
