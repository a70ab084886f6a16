/**
 * Runs the PyTorch reference (`tools/pytorch_reference.py`) on exactly the
 * data and minibatch order a TypeScript run used, so the benchmark can put
 * both side by side from one run on one machine. PyTorch is optional: it is
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

/** What one PyTorch run gives back. */
export interface PyTorchRun {
  /** Mean ms per iteration, the first 5 left out. */
  msPerIter: number;
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
  /** Predicted class per test pixel, shape [test images, outHeight, outWidth]. */
  prediction: tf.Tensor3D;
}

/** Settings of {@linkcode runPyTorch}. */
export interface PyTorchOptions {
  /** Network name, one of the reference's (all but `unet`). */
  model: string;
  /** Output channels: 1 for binarization, else classes. */
  classes: number;
  /** Input size. */
  size: number;
  /** Training images [n, size, size, 3] and masks [n, size, size]. */
  train: { images: tf.Tensor4D; masks: tf.Tensor3D };
  /** Test images [m, size, size, 3]. */
  testImages: tf.Tensor4D;
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
    };
    await Deno.writeTextFile(join(folder, "meta.json"), JSON.stringify(meta));
    const bytes = async (tensor: tf.Tensor) => {
      const data = await tensor.data();
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    };
    const masks = tf.cast(options.train.masks, "int32");
    await Deno.writeFile(join(folder, "train_images.f32"), await bytes(options.train.images));
    await Deno.writeFile(join(folder, "train_masks.i32"), await bytes(masks));
    masks.dispose();
    await Deno.writeFile(join(folder, "test_images.f32"), await bytes(options.testImages));
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
    const raw = await Deno.readFile(join(folder, "test_pred.i32"));
    const [height, width] = result.out_size as [number, number];
    const prediction = tf.tensor3d(
      new Int32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4),
      [options.testImages.shape[0], height, width],
      "int32",
    );
    return {
      msPerIter: result.ms_per_iter,
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
