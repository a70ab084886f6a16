/**
 * Runs the PyTorch reference (`tools/pytorch_reference.py`) on exactly the
 * data and minibatch order a TypeScript run used, so the benchmark and the
 * parity check can put both side by side from one run on one machine; with
 * `initWeights` PyTorch starts from the project's own initial weights
 * ({@linkcode pytorchLayers} converts them). PyTorch is optional: it is
 * looked for only when asked, and its absence is a one-line error with the fix.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type BatchNormStats, statsOrder } from "../lib/batch_norm_stats.ts";
import { UserError } from "../lib/errors.ts";
import { join } from "../lib/path.ts";
import { minibatchIndices } from "../lib/train.ts";

/** The interpreters tried, in order, when none is named. */
export const PYTHON_CANDIDATES = ["python3", "/usr/bin/python3", "python"];

/** Kinds of layers with weights, as both sides name them. */
export type LayerKind = "conv" | "convT" | "bn";

/**
 * One layer's tensors in PyTorch's layout and order: conv `[weight OIHW, bias]`,
 * transposed conv `[weight [in, out, h, w], bias]`, batch norm
 * `[weight, bias, running_mean, running_var]`.
 */
export interface PyTorchLayer {
  /** The project's layer name, e.g. `enc1_conv1`. */
  name: string;
  /** What it is. */
  kind: LayerKind;
  /** Its tensors' shapes, in PyTorch's layout. */
  shapes: number[][];
  /** Its tensors' values, in PyTorch's layout. */
  values: Float32Array[];
}

const KINDS: Record<string, LayerKind> = {
  Conv2D: "conv",
  Conv2DTranspose: "convT",
  BatchNormalization: "bn",
};

/** The names of the tensors of a layer kind, in exchange order. */
export const TENSOR_NAMES: Readonly<Record<LayerKind, readonly string[]>> = {
  conv: ["weight", "bias"],
  convT: ["weight", "bias"],
  bn: ["weight", "bias", "running_mean", "running_var"],
};

/**
 * A model's layers with weights, in the order they run, converted to
 * PyTorch's layout. Conv kernels go from tfjs's HWIO `[h, w, in, out]` to
 * OIHW; a tfjs transposed-conv kernel is `[h, w, out, in]` and PyTorch's
 * ConvTranspose2d weight `[in, out, h, w]`: the same permutation, no flip
 * (both are the adjoint of a cross-correlation; the parity check's first
 * loss verifies it). Batch norm's gamma, beta, moving mean and variance
 * are PyTorch's weight, bias, running mean and variance.
 *
 * @param model The project's model.
 * @returns One entry per conv, transposed conv and batch-norm layer.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { pytorchLayers } from "./pytorch.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const input = tf.input({ shape: [4, 4, 2] });
 * const conv = tf.layers.conv2d({ filters: 3, kernelSize: 1 });
 * const model = tf.model({ inputs: input, outputs: conv.apply(input) as tf.SymbolicTensor });
 * conv.setWeights([tf.tensor4d([1, 2, 3, 4, 5, 6], [1, 1, 2, 3]), tf.zeros([3])]);
 * const [layer] = pytorchLayers(model);
 * assertEquals(layer!.shapes, [[3, 2, 1, 1], [3]]);
 * assertEquals(Array.from(layer!.values[0]!), [1, 4, 2, 5, 3, 6]); // out-major
 * ```
 */
export function pytorchLayers(model: tf.LayersModel): PyTorchLayer[] {
  const layers: PyTorchLayer[] = [];
  for (const layer of model.layers) {
    const kind = KINDS[layer.getClassName()];
    if (!kind) continue;
    const tensors = tf.tidy(() =>
      layer.getWeights().map((tensor) =>
        tensor.rank === 4 ? tf.transpose(tensor, [3, 2, 0, 1]) : tensor.clone()
      )
    );
    layers.push({
      name: layer.name,
      kind,
      shapes: tensors.map((tensor) => tensor.shape),
      values: tensors.map((tensor) => (tensor.dataSync() as Float32Array).slice()),
    });
    tf.dispose(tensors);
  }
  return layers;
}

/** What one PyTorch run gives back. */
export interface PyTorchRun {
  /** Mean ms per iteration, the first 5 left out. */
  msPerIter: number;
  /** Milliseconds of each iteration. */
  iterMs: number[];
  /** Peak resident set of the Python process in MiB. */
  peakRssMb: number;
  /** The layers in PyTorch's layout after each iteration of `dumpAt`, by iteration. */
  weightsAt: Map<number, PyTorchLayer[]>;
  /** Training wall-clock seconds. */
  trainSeconds: number;
  /** Threads PyTorch used. */
  threads: number;
  /** PyTorch's version. */
  version: string;
  /** Loss of each iteration. */
  losses: number[];
  /** Trainable parameters of PyTorch's network, to check it mirrors the project's. */
  params: number;
  /** Predicted class per test pixel, shape [test images, outHeight, outWidth]; with test images. */
  prediction?: tf.Tensor3D;
}

/** Settings of {@linkcode runPyTorch}. */
export interface PyTorchOptions {
  /** Network name, as tools/networks.ts lists it. */
  model: string;
  /** Output channels: 1 for binarization, else classes. */
  classes: number;
  /** Input size. */
  size: number;
  /** Training images [n, size, size, 3] and masks [n, size, size]. */
  train: { images: tf.Tensor4D; masks: tf.Tensor3D };
  /** Test images [m, size, size, 3]; without them there is no test. */
  testImages?: tf.Tensor4D;
  /** Iterations, minibatch size, learning rate, momentum and seed of the protocol. */
  iters: number;
  batchSize: number;
  lr: number;
  momentum: number;
  seed: number;
  /** Threads for PyTorch; 0 leaves its default. */
  threads: number;
  /** Batch-norm statistics for the test, as `--bn-stats`. */
  bnStats: BatchNormStats;
  /** Initial weights, from {@linkcode pytorchLayers}; default PyTorch's own initialisation. */
  initWeights?: PyTorchLayer[];
  /** Train in float64, as the exact reference of the parity check. @default false */
  float64?: boolean;
  /** Iterations (1-based) after which to give back the weights, as `weightsAt`. @default [] */
  dumpAt?: number[];
  /** An interpreter with torch (from {@linkcode findPyTorch}); found when absent. */
  python?: string;
}

async function commandOutput(
  command: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const result = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
      .output();
    const decoder = new TextDecoder();
    return {
      code: result.code,
      stdout: decoder.decode(result.stdout),
      stderr: decoder.decode(result.stderr),
    };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { code: 127, stdout: "", stderr: "" };
    throw error;
  }
}

/**
 * Finds a Python interpreter that can import torch.
 *
 * @param python An interpreter to use; when given, only it is tried.
 * @returns The interpreter and PyTorch's version.
 * @throws {UserError} When none can import torch, naming what to install.
 */
export async function findPyTorch(python?: string): Promise<{ python: string; version: string }> {
  const candidates = python ? [python] : PYTHON_CANDIDATES;
  for (const candidate of candidates) {
    const { code, stdout } = await commandOutput(candidate, [
      "-c",
      "import torch; print(torch.__version__)",
    ]);
    if (code === 0) return { python: candidate, version: stdout.trim() };
  }
  throw new UserError(
    `No Python with PyTorch found (tried ${candidates.join(", ")}); install it ` +
      `(Debian: apt-get install python3-torch) or name one with --python`,
  );
}

/**
 * Trains and tests the network in PyTorch on the same data and minibatch
 * order ({@linkcode minibatchIndices} with the same seed) as the TypeScript run.
 *
 * @param options Data, network and protocol.
 * @returns Timing, losses and the test prediction (the caller disposes it).
 * @throws {UserError} When PyTorch is missing or the reference fails.
 */
export async function runPyTorch(options: PyTorchOptions): Promise<PyTorchRun> {
  const python = options.python ?? (await findPyTorch()).python;
  const folder = await Deno.makeTempDir({ prefix: "segment-pytorch-" });
  try {
    const batches = minibatchIndices(
      options.train.images.shape[0],
      options.batchSize,
      options.seed,
    );
    const meta = {
      model: options.model,
      classes: options.classes,
      size: options.size,
      lr: options.lr,
      momentum: options.momentum,
      seed: options.seed,
      threads: options.threads,
      bn_stats: options.bnStats,
      bn_order: statsOrder(options.train.images.shape[0]),
      batches: Array.from({ length: options.iters }, (_, iteration) => batches(iteration)),
      init_weights: Boolean(options.initWeights),
      layers: options.initWeights?.map(({ name, kind, shapes }) => ({ name, kind, shapes })),
      dump_at: options.dumpAt ?? [],
      float64: Boolean(options.float64),
    };
    await Deno.writeTextFile(join(folder, "meta.json"), JSON.stringify(meta));
    if (options.initWeights) {
      const all = options.initWeights.flatMap((layer) => layer.values);
      const flat = new Float32Array(all.reduce((sum, values) => sum + values.length, 0));
      let offset = 0;
      for (const values of all) {
        flat.set(values, offset);
        offset += values.length;
      }
      await Deno.writeFile(join(folder, "init_weights.f32"), new Uint8Array(flat.buffer));
    }
    const bytes = async (tensor: tf.Tensor) => {
      const data = await tensor.data();
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    };
    const masks = tf.cast(options.train.masks, "int32");
    await Deno.writeFile(join(folder, "train_images.f32"), await bytes(options.train.images));
    await Deno.writeFile(join(folder, "train_masks.i32"), await bytes(masks));
    masks.dispose();
    if (options.testImages) {
      await Deno.writeFile(join(folder, "test_images.f32"), await bytes(options.testImages));
    }
    const script = new URL("./pytorch_reference.py", import.meta.url).pathname;
    const child = new Deno.Command(python, { args: [script, folder], stdout: "inherit" }).spawn();
    const status = await child.status;
    if (!status.success) {
      throw new UserError(
        `The PyTorch reference failed for ${options.model} (exit ${status.code}); ` +
          `its error is printed above`,
      );
    }
    const result = JSON.parse(await Deno.readTextFile(join(folder, "result.json")));
    const [height, width] = result.out_size as [number, number];
    let prediction: tf.Tensor3D | undefined;
    if (options.testImages) {
      const raw = await Deno.readFile(join(folder, "test_pred.i32"));
      prediction = tf.tensor3d(
        new Int32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4),
        [options.testImages.shape[0], height, width],
        "int32",
      );
    }
    const weightsAt = new Map<number, PyTorchLayer[]>();
    const described = result.layers as { kind: LayerKind; shapes: number[][] }[];
    for (const iteration of options.dumpAt ?? []) {
      const raw = await Deno.readFile(join(folder, `weights_${iteration}.f32`));
      const flat = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
      let offset = 0;
      weightsAt.set(
        iteration,
        described.map(({ kind, shapes }, index) => ({
          name: options.initWeights?.[index]?.name ?? `layer${index}`,
          kind,
          shapes,
          values: shapes.map((shape) => {
            const count = shape.reduce((product, size) => product * size, 1);
            offset += count;
            return flat.slice(offset - count, offset);
          }),
        })),
      );
    }
    return {
      msPerIter: result.ms_per_iter,
      iterMs: result.iter_ms,
      peakRssMb: result.peak_rss_mb,
      weightsAt,
      trainSeconds: result.train_s,
      threads: result.threads,
      version: result.torch,
      losses: result.losses,
      params: result.params,
      prediction,
    };
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
}
