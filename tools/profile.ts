/**
 * `deno task profile`: times one training step of a network kernel by kernel
 * (tf.profile) and prints a table of milliseconds per kernel, slowest first,
 * to show where a step's time goes on the chosen backend.
 *
 * The step is the exercises' own: `model.apply(x, {training: true})`, the
 * segmentation loss, and SGD with momentum through `optimizer.minimize`, on
 * random images and masks. Warm-up steps run first, unprofiled.
 *
 * On the synchronous backends (wasm, cpu) each kernel is timed by a wrapper
 * around its function ({@linkcode timeKernels}): `tf.profile` reads every
 * output of every kernel back (`dataSync`) when the backend has no timer,
 * which on wasm copies it out of the heap inside the timing and evicts the
 * caches, so memory-bound kernels came out 2-3 times slower than they run
 * (bin's batch norm: 3.2 ms per step in `tf.profile`, 1.1 ms timed here).
 * Other backends take `tf.profile`.
 *
 * On those backends it then times every convolution call by shape, in the
 * step and repeated alone on its own inputs ({@linkcode timeConvolutions}),
 * beside the peak of `tools/floor.ts`: how close each shape comes to the
 * machine's limit, and how much the step around the convolutions costs them.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import {
  BACKEND_NAMES,
  type BackendName,
  callRoute,
  declinedByDnnl,
  listenRoutes,
  setupBackend,
  unreportedRoute,
} from "../engine/mod.ts";
import { runMain } from "../lib/errors.ts";
import { parseFlags } from "../lib/flags.ts";
import { trainingLoss } from "../lib/train.ts";
import { measurePeakGflops } from "./floor.ts";
import { buildModel, lessonsOf, MODEL_NAMES, type ModelName, outputSize } from "./networks.ts";

const FLAGS = {
  model: { type: "string", default: "bin", choices: MODEL_NAMES, help: "Network to profile" },
  backend: {
    type: "string",
    default: "auto",
    choices: BACKEND_NAMES,
    help: "TensorFlow.js backend; auto picks the fastest that works here",
  },
  batchSize: { type: "int", default: 4, min: 1, help: "Minibatch size" },
  size: { type: "int", default: 64, min: 8, max: 1024, help: "Input height and width" },
  warmup: {
    type: "int",
    default: 5,
    min: 0,
    help: "Unprofiled steps before the timed ones (the first steps build oneDNN's primitives: " +
      "with 2, bin's mean came out 150 ms, with 5 about 20)",
  },
  steps: {
    type: "int",
    default: 10,
    min: 1,
    help: "Profiled steps (the tables are their mean; with 3, totals moved 2x between runs)",
  },
  top: { type: "int", default: 25, min: 1, help: "Kernels shown in the table" },
  repeats: {
    type: "int",
    default: 10,
    min: 0,
    help: "Repeats of each convolution on its own inputs for the table of convolutions by " +
      "shape (its best is the library's limit for that shape here); 0 leaves the table out",
  },
} as const;

/** The time label of the JavaScript around a kernel's library calls (argument checks, views, caches). */
export const GLUE_ROUTE = "JavaScript around library calls";

/** One row of the profile table. */
export interface KernelTime {
  /** Kernel name, e.g. `Conv2DBackpropFilter`. */
  name: string;
  /** Calls per step. */
  calls: number;
  /** Milliseconds per step, all calls together. */
  ms: number;
  /** What the calls ran on (`oneDNN jit:avx2`, `wasm SIMD`, ...), with calls per step of each. */
  routes: Map<string, number>;
}

/** One kernel call, as {@linkcode timeKernels} or `tf.profile` gives it. */
export interface KernelCall {
  /** Kernel name. */
  name: string;
  /** Milliseconds (a number when the backend timed it). */
  kernelTimeMs: unknown;
  /** What it ran on ({@linkcode callRoute}); absent from `tf.profile`. */
  route?: string;
  /**
   * Milliseconds by implementation: each library's reported time, the rest
   * of the call under the kernel's own (JavaScript or the backend's); absent
   * from `tf.profile`.
   */
  times?: Map<string, number>;
}

/**
 * Sums kernel times by kernel name, slowest first.
 *
 * @param kernels The kernel calls of {@linkcode timeKernels} or `tf.profile`, over `steps` steps.
 * @param steps Steps profiled; times and calls are divided by it.
 * @param route What a call without a route ran on (the backend's name).
 * @returns One row per kernel name.
 *
 * @example
 * ```ts
 * import { kernelTable } from "./profile.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const table = kernelTable([
 *   { name: "Add", kernelTimeMs: 1, route: "JavaScript" },
 *   { name: "Conv2D", kernelTimeMs: 4, route: "wasm SIMD" },
 *   { name: "Add", kernelTimeMs: 2, route: "oneDNN jit:avx2" },
 * ], 1, "wasm");
 * assertEquals(table[0], {
 *   name: "Conv2D", calls: 1, ms: 4, routes: new Map([["wasm SIMD", 1]]),
 * });
 * assertEquals(table[1]!.ms, 3);
 * assertEquals(table[1]!.routes, new Map([["JavaScript", 1], ["oneDNN jit:avx2", 1]]));
 * ```
 */
export function kernelTable(
  kernels: readonly KernelCall[],
  steps: number,
  route: string,
): KernelTime[] {
  const rows = new Map<string, KernelTime>();
  for (const kernel of kernels) {
    // Wrappers of custom gradients (`fusedConv2d__op`) time their inner kernels again.
    if (kernel.name.endsWith("__op")) continue;
    const row = rows.get(kernel.name) ??
      { name: kernel.name, calls: 0, ms: 0, routes: new Map<string, number>() };
    row.calls += 1 / steps;
    row.ms += (typeof kernel.kernelTimeMs === "number" ? kernel.kernelTimeMs : 0) / steps;
    const ranOn = kernel.route ?? route;
    row.routes.set(ranOn, (row.routes.get(ranOn) ?? 0) + 1 / steps);
    rows.set(kernel.name, row);
  }
  return [...rows.values()].sort((a, b) => b.ms - a.ms);
}

/** A kernel call as {@linkcode timeKernels} records it: every field present. */
export type TimedCall = Required<KernelCall> & { kernelTimeMs: number };

/**
 * Milliseconds per step by implementation over every kernel call, slowest
 * first: where a step's time goes whatever the kernels are called.
 *
 * @param kernels The kernel calls, over `steps` steps.
 * @param steps Steps profiled.
 * @param route What a call without times ran on (the backend's name).
 * @returns `[implementation, ms per step]` pairs.
 *
 * @example
 * ```ts
 * import { implementationTable } from "./profile.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const table = implementationTable([
 *   { name: "Conv2D", kernelTimeMs: 5, times: new Map([["wasm SIMD", 4], ["JavaScript", 1]]) },
 *   { name: "Add", kernelTimeMs: 2 },
 * ], 1, "wasm");
 * assertEquals(table, [["wasm SIMD", 4], ["wasm", 2], ["JavaScript", 1]]);
 * ```
 */
export function implementationTable(
  kernels: readonly KernelCall[],
  steps: number,
  route: string,
): [string, number][] {
  const totals = new Map<string, number>();
  const add = (name: string, ms: number) => totals.set(name, (totals.get(name) ?? 0) + ms / steps);
  for (const kernel of kernels) {
    if (kernel.name.endsWith("__op")) continue;
    if (kernel.times === undefined) {
      add(kernel.route ?? route, typeof kernel.kernelTimeMs === "number" ? kernel.kernelTimeMs : 0);
    } else {
      for (const [name, ms] of kernel.times) add(name, ms);
    }
  }
  return [...totals].sort((a, b) => b[1] - a[1]);
}

/**
 * A row's routes as text: the most frequent first, each with its calls per
 * step (a mean over the profiled steps) when the kernel ran on more than one,
 * separated by semicolons.
 *
 * @param routes Calls per step by route ({@linkcode KernelTime.routes}).
 * @returns e.g. `oneDNN brg:avx512_core (8), wasm SIMD (2)`.
 *
 * @example
 * ```ts
 * import { routesText } from "./profile.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * assertEquals(routesText(new Map([["wasm SIMD", 2], ["oneDNN jit:avx2", 8]])),
 *   "oneDNN jit:avx2 (8); wasm SIMD (2)");
 * assertEquals(routesText(new Map([["wasm SIMD", 6.7], ["wasm SIMD on 2 threads", 0.3]])),
 *   "wasm SIMD (6.7); wasm SIMD on 2 threads (0.3)");
 * assertEquals(routesText(new Map([["OpenBLAS", 3]])), "OpenBLAS");
 * ```
 */
export function routesText(routes: ReadonlyMap<string, number>): string {
  const sorted = [...routes].sort((a, b) => b[1] - a[1]);
  if (sorted.length === 1) return sorted[0]![0];
  const count = (calls: number) =>
    Math.abs(calls - Math.round(calls)) < 1e-9 ? calls.toFixed(0) : calls.toFixed(1);
  return sorted.map(([route, calls]) => `${route} (${count(calls)})`).join("; ");
}

/** The four convolution kernels {@linkcode convolutionOf} describes. */
export const CONVOLUTION_KERNELS = [
  "Conv2D",
  "FusedConv2D",
  "Conv2DBackpropInput",
  "Conv2DBackpropFilter",
] as const;

/** One convolution kernel call, as {@linkcode convolutionOf} describes it. */
export interface Convolution {
  /** The forward convolution it belongs to: `batch x height x width x in-channels, filter -> out-channels, stride`. */
  shape: string;
  /** Multiply-adds times 2 (the forward's count; each backward direction does as many). */
  flops: number;
}

/** The parts of a kernel call {@linkcode convolutionOf} reads. */
export interface KernelArgs {
  inputs: Record<string, { shape: number[] } | undefined>;
  attrs?: Record<string, unknown>;
}

/**
 * What a convolution kernel call computes: the shape of the forward
 * convolution it belongs to, and its floating-point operations, 2 per
 * multiply-add (each of the three directions of a convolution does as many
 * as the forward pass: `2 * batch * outHeight * outWidth * outChannels *
 * filterHeight * filterWidth * inChannels`). `null` for any other kernel.
 *
 * @param name The kernel's name.
 * @param args Its inputs and attributes, as the kernel function gets them (NHWC, HWIO filters).
 * @param output The shape of its output (the forward's `y`; unused by the backward kernels).
 * @returns The convolution, or `null`.
 *
 * @example
 * ```ts
 * import { convolutionOf } from "./profile.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const forward = convolutionOf("Conv2D", {
 *   inputs: { x: { shape: [4, 64, 64, 3] }, filter: { shape: [3, 3, 3, 16] } },
 *   attrs: { strides: [1, 1] },
 * }, [4, 64, 64, 16]);
 * assertEquals(forward, { shape: "4x64x64x3, 3x3 -> 16, stride 1", flops: 2 * 4 * 64 * 64 * 16 * 27 });
 * const weights = convolutionOf("Conv2DBackpropFilter", {
 *   inputs: { x: { shape: [4, 64, 64, 3] }, dy: { shape: [4, 64, 64, 16] } },
 *   attrs: { strides: 1, filterShape: [3, 3, 3, 16] },
 * }, [3, 3, 3, 16]);
 * assertEquals(weights, forward);
 * assertEquals(convolutionOf("Relu", { inputs: {} }, [1]), null);
 * ```
 */
export function convolutionOf(
  name: string,
  args: KernelArgs,
  output: readonly number[],
): Convolution | null {
  const attrs = args.attrs ?? {};
  let x: readonly number[] | undefined;
  let filter: readonly number[] | undefined;
  let y: readonly number[] | undefined;
  if (name === "Conv2D" || name === "FusedConv2D") {
    [x, filter, y] = [args.inputs.x?.shape, args.inputs.filter?.shape, output];
  } else if (name === "Conv2DBackpropInput") {
    [x, filter, y] = [
      attrs.inputShape as number[],
      args.inputs.filter?.shape,
      args.inputs.dy?.shape,
    ];
  } else if (name === "Conv2DBackpropFilter") {
    [x, filter, y] = [args.inputs.x?.shape, attrs.filterShape as number[], args.inputs.dy?.shape];
  } else {
    return null;
  }
  if (x?.length !== 4 || filter?.length !== 4 || y?.length !== 4) return null;
  const [filterHeight, filterWidth, inChannels, outChannels] = filter as number[];
  const strides = attrs.strides;
  const stride = Array.isArray(strides)
    ? (strides[0] === strides[1] ? strides[0] : strides.join("x"))
    : strides;
  return {
    shape: `${x.join("x")}, ${filterHeight}x${filterWidth} -> ${outChannels}, stride ${stride}`,
    flops: 2 * y[0]! * y[1]! * y[2]! * y[3]! * filterHeight! * filterWidth! * inChannels!,
  };
}

/**
 * Runs `f` with some of the active backend's kernels replaced by `wrap` of
 * their function, then registers the originals again, whatever `f` does.
 *
 * @param configs The kernels to wrap (registered on the active backend).
 * @param wrap The function to run in place of one kernel's, given its config.
 * @param f The work to run; awaited.
 * @returns A promise that resolves when `f` has and the kernels are restored.
 */
async function withWrappedKernels(
  configs: readonly KernelConfig[],
  wrap: (config: KernelConfig) => KernelConfig["kernelFunc"],
  f: () => void | Promise<void>,
): Promise<void> {
  for (const config of configs) {
    tf.unregisterKernel(config.kernelName, config.backendName);
    tf.registerKernel({ ...config, kernelFunc: wrap(config) });
  }
  try {
    await f();
  } finally {
    for (const config of configs) {
      tf.unregisterKernel(config.kernelName, config.backendName);
      tf.registerKernel(config);
    }
  }
}

/**
 * Times every kernel of the active backend while `f` runs, by wrapping each
 * registered kernel function with a clock, then restores the kernels. For
 * synchronous backends only (wasm, cpu): an asynchronous backend's kernels
 * return before their work is done. Each call also records what it ran on
 * (`engine/routes.ts`): on wasm the libraries the engine's layers reached
 * (oneDNN with its implementation and ISA, OpenBLAS, the engine's wasm SIMD),
 * else the backend's own kernel or the engine's JavaScript.
 *
 * @param f The work to time; awaited.
 * @returns One record per kernel call, in call order: kernel name, milliseconds, route,
 *   and milliseconds by implementation.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { timeKernels } from "./profile.ts";
 * import { assert } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * const x = tf.ones([8, 8]);
 * const calls = await timeKernels(() => void tf.matMul(x, x).dispose());
 * assert(calls.some((call) => call.name === "BatchMatMul" && call.kernelTimeMs >= 0));
 * assert(calls.every((call) => call.route === "tfjs-backend-cpu"));
 * x.dispose();
 * ```
 */
export async function timeKernels(
  f: () => void | Promise<void>,
): Promise<TimedCall[]> {
  const backendName = tf.getBackend();
  const calls: TimedCall[] = [];
  await withWrappedKernels(tf.getKernelsForBackend(backendName), (config) => {
    const inner = config.kernelFunc;
    // Only the wasm backend has the engine's layers; the others run their own kernels.
    const unreported = backendName === "wasm"
      ? unreportedRoute(config)
      : `tfjs-backend-${backendName}`;
    return (args) => {
      const started = performance.now();
      const { result, routes, times } = listenRoutes(() => inner(args));
      const kernelTimeMs = performance.now() - started;
      // What no library reported is the kernel's own: glue around the libraries, or all of it.
      const reported = [...times.values()].reduce((sum, ms) => sum + ms, 0);
      // Where libraries ran, the rest is the JavaScript around them, named apart from kernels
      // that are JavaScript (or the backend's own) through and through.
      const rest = routes.length === 0 ? unreported : GLUE_ROUTE;
      times.set(rest, (times.get(rest) ?? 0) + Math.max(0, kernelTimeMs - reported));
      calls.push({
        name: config.kernelName,
        kernelTimeMs,
        route: callRoute(routes, unreported),
        times,
      });
      return result;
    };
  }, f);
  return calls;
}

/** A convolution kernel call timed in the step and alone ({@linkcode timeConvolutions}). */
export interface ConvolutionCall extends Convolution {
  /** The kernel's name. */
  name: string;
  /** Milliseconds of the call in the step. */
  stepMs: number;
  /** The least milliseconds of the same call repeated on its own inputs right after it. */
  aloneMs: number;
}

/**
 * Times each convolution kernel call while `f` runs, once as the step makes
 * it and then `repeats` more times on the same inputs, right after it, each
 * repeat's output disposed: the least of those is what the library does for
 * that shape with its inputs in cache and nothing else running (the
 * convolutions' own limit on this machine, small layers included), the
 * first what it did inside the step. Synchronous backends only, as
 * {@linkcode timeKernels}.
 *
 * @param f The work to time; awaited.
 * @param repeats Repeats of each call.
 * @returns One record per convolution call, in call order.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { timeConvolutions } from "./profile.ts";
 * import { assertEquals, assert } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * const x = tf.ones([1, 4, 4, 2]);
 * const w = tf.ones([3, 3, 2, 5]);
 * const before = tf.memory().numTensors;
 * const calls = await timeConvolutions(() => void tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, "same").dispose(), 3);
 * assertEquals(calls.map((call) => [call.name, call.shape]), [["Conv2D", "1x4x4x2, 3x3 -> 5, stride 1"]]);
 * assert(calls[0]!.aloneMs >= 0 && calls[0]!.flops === 2 * 16 * 5 * 18);
 * assertEquals(tf.memory().numTensors, before);
 * ```
 */
export async function timeConvolutions(
  f: () => void | Promise<void>,
  repeats: number,
): Promise<ConvolutionCall[]> {
  const backendName = tf.getBackend();
  const backend = tf.backend();
  const calls: ConvolutionCall[] = [];
  const convolutions = tf.getKernelsForBackend(backendName)
    .filter((config) => (CONVOLUTION_KERNELS as readonly string[]).includes(config.kernelName));
  await withWrappedKernels(convolutions, (config) => {
    const inner = config.kernelFunc;
    return (args) => {
      const started = performance.now();
      const result = inner(args);
      const stepMs = performance.now() - started;
      const output = (Array.isArray(result) ? result[0] : result) as TensorInfo;
      const convolution = convolutionOf(config.kernelName, args as KernelArgs, output.shape);
      if (convolution === null) return result;
      let aloneMs = Infinity;
      for (let i = 0; i < repeats; i++) {
        const again = performance.now();
        const repeated = inner(args);
        aloneMs = Math.min(aloneMs, performance.now() - again);
        for (const info of Array.isArray(repeated) ? repeated : [repeated]) {
          backend.disposeData((info as TensorInfo).dataId);
        }
      }
      calls.push({ name: config.kernelName, ...convolution, stepMs, aloneMs });
      return result;
    };
  }, f);
  return calls;
}

/** One row of {@linkcode convolutionTable}: a kernel at one shape, per step. */
export interface ConvolutionRow extends Convolution {
  name: string;
  calls: number;
  stepMs: number;
  aloneMs: number;
}

/**
 * Sums convolution calls by kernel and shape, per step, in the order the
 * step first ran them.
 *
 * @param calls The calls of {@linkcode timeConvolutions}, over `steps` steps.
 * @param steps Steps timed.
 * @returns One row per kernel and shape; `flops` is per step.
 *
 * @example
 * ```ts
 * import { convolutionTable } from "./profile.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const call = { name: "Conv2D", shape: "1x4x4x2, 3x3 -> 5, stride 1", flops: 10, stepMs: 2, aloneMs: 1 };
 * assertEquals(convolutionTable([call, call], 2), [{ ...call, calls: 1, flops: 10, stepMs: 2, aloneMs: 1 }]);
 * ```
 */
export function convolutionTable(
  calls: readonly ConvolutionCall[],
  steps: number,
): ConvolutionRow[] {
  const rows = new Map<string, ConvolutionRow>();
  for (const call of calls) {
    const key = `${call.name} ${call.shape}`;
    const row = rows.get(key) ??
      { name: call.name, shape: call.shape, calls: 0, flops: 0, stepMs: 0, aloneMs: 0 };
    row.calls += 1 / steps;
    row.flops += call.flops / steps;
    row.stepMs += call.stepMs / steps;
    row.aloneMs += call.aloneMs / steps;
    rows.set(key, row);
  }
  return [...rows.values()];
}

/**
 * Profiles training steps and prints the per-kernel table.
 *
 * @param args Command-line arguments.
 * @returns A promise that resolves when the table is printed.
 */
export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, FLAGS, {
    usage: "deno task profile [flags]",
    summary: "Times one training step of a network kernel by kernel and prints where the " +
      "time goes, per kernel and per implementation (oneDNN, OpenBLAS, the engine's wasm SIMD " +
      "kernels, JavaScript). SEGMENT_NO_DNNL=1 SEGMENT_NO_BLAS=1 profiles the pure wasm path " +
      "most machines run.",
  });
  const backend = await setupBackend(flags.backend as BackendName);
  const name = flags.model as ModelName;
  const size = flags.size;
  const out = outputSize(name, size);
  const model = buildModel(name, { size });
  const classes = model.outputs[0]!.shape[3] as number;
  const images = tf.randomUniform([flags.batchSize, size, size, 3]) as tf.Tensor4D;
  const masks = tf.randomUniform(
    [flags.batchSize, size, size],
    0,
    classes === 1 ? 2 : classes,
    "int32",
  ) as tf.Tensor3D;
  const optimizer = tf.train.momentum(0.01, 0.9);
  // Reads with data(), not dataSync(): webgpu cannot read synchronously under Deno.
  const lossOf = trainingLoss(model, lessonsOf(name).loss);
  const step = async () => {
    const loss = optimizer.minimize(() => lossOf(images, masks), true) as tf.Scalar;
    await loss.data();
    loss.dispose();
  };
  for (let i = 0; i < flags.warmup; i++) await step();
  const started = performance.now();
  for (let i = 0; i < flags.steps; i++) await step();
  const stepMs = (performance.now() - started) / flags.steps;
  const steps = async () => {
    for (let i = 0; i < flags.steps; i++) await step();
  };
  const synchronous = backend.startsWith("wasm") || backend === "cpu";
  const timedStarted = performance.now();
  const kernels = synchronous ? await timeKernels(steps) : (await tf.profile(steps)).kernels;
  const timedMs = (performance.now() - timedStarted) / flags.steps;
  const table = kernelTable(kernels, flags.steps, tf.getBackend());
  const kernelMs = table.reduce((sum, row) => sum + row.ms, 0);
  console.log(
    `${name}, batch ${flags.batchSize}, ${size}x${size} -> ${out}x${out}, on ${backend}: ` +
      `${stepMs.toFixed(1)} ms per training step (mean of ${flags.steps}, unprofiled)`,
  );
  // As wide as the longest kernel name shown (the engine's run to 30 characters).
  const width = Math.max(28, ...table.slice(0, flags.top).map((row) => row.name.length));
  console.log(
    `${"kernel".padEnd(width)} ${"calls".padStart(6)} ${"ms".padStart(8)} ${
      "share".padStart(6)
    }  ran on (calls per step)`,
  );
  for (const row of table.slice(0, flags.top)) {
    console.log(
      `${row.name.padEnd(width)} ${row.calls.toFixed(0).padStart(6)} ${
        row.ms.toFixed(1).padStart(8)
      } ${(100 * row.ms / kernelMs).toFixed(0).padStart(5)}%  ${routesText(row.routes)}`,
    );
  }
  const rest = table.slice(flags.top).reduce((sum, row) => sum + row.ms, 0);
  if (rest > 0) {
    console.log(`${"(others)".padEnd(width)} ${"".padStart(6)} ${rest.toFixed(1).padStart(8)}`);
  }
  console.log(
    `${"all kernels".padEnd(width)} ${"".padStart(6)} ${kernelMs.toFixed(1).padStart(8)} ` +
      (synchronous
        ? `of ${timedMs.toFixed(1)} ms per timed step; the rest is TensorFlow.js's bookkeeping ` +
          `(tape, scopes, dispatch) and JavaScript outside kernels`
        : `(tf.profile; the rest of the step is JavaScript outside kernels)`),
  );
  if (synchronous) {
    console.log("time by implementation (ms per step, all kernels together):");
    const shown = implementationTable(kernels, flags.steps, tf.getBackend())
      .filter(([, ms]) => ms >= 0.05);
    const labelWidth = Math.max(width, ...shown.map(([name]) => name.length));
    for (const [name, ms] of shown) {
      console.log(`  ${name.padEnd(labelWidth)} ${ms.toFixed(1).padStart(8)}`);
    }
  }
  if (synchronous && flags.repeats > 0) {
    const convolutions = convolutionTable(
      await timeConvolutions(steps, flags.repeats),
      flags.steps,
    );
    printConvolutions(convolutions, await measurePeakGflops(), flags.repeats);
  }
  if (backend === "wasm+onednn") {
    const declined = declinedByDnnl();
    console.log(
      declined.length === 0
        ? "oneDNN declined no shape (every kernel above that could run on it did)"
        : "oneDNN declined these shapes (they ran on the routes above):",
    );
    for (const { kernel, keys } of declined) console.log(`  ${kernel}: ${keys.join("; ")}`);
  }
  tf.dispose([images, masks]);
  model.dispose();
}

/** Prints {@linkcode convolutionTable}'s rows, their totals and the peak's time for the same work. */
function printConvolutions(rows: readonly ConvolutionRow[], peak: number, repeats: number): void {
  console.log(
    `convolutions by shape, per step: in the step, and alone (the best of ${repeats} repeats ` +
      `of each call on its own inputs); GFLOP/s against the peak of ${peak.toFixed(0)} measured ` +
      `on a large convolution`,
  );
  const width = Math.max(20, ...rows.map((row) => row.name.length));
  const shapeWidth = Math.max(5, ...rows.map((row) => row.shape.length));
  const rate = (ms: number, flops: number) => (ms > 0 ? flops / ms / 1e6 : 0).toFixed(0);
  console.log(
    `  ${"kernel".padEnd(width)} ${"shape".padEnd(shapeWidth)} ${"calls".padStart(5)} ` +
      `${"step ms".padStart(8)} ${"GFLOP/s".padStart(7)} ${"alone ms".padStart(8)} ` +
      `${"GFLOP/s".padStart(7)}`,
  );
  for (const row of rows) {
    console.log(
      `  ${row.name.padEnd(width)} ${row.shape.padEnd(shapeWidth)} ` +
        `${row.calls.toFixed(0).padStart(5)} ${row.stepMs.toFixed(2).padStart(8)} ` +
        `${rate(row.stepMs, row.flops).padStart(7)} ${row.aloneMs.toFixed(2).padStart(8)} ` +
        `${rate(row.aloneMs, row.flops).padStart(7)}`,
    );
  }
  const flops = rows.reduce((sum, row) => sum + row.flops, 0);
  const stepMs = rows.reduce((sum, row) => sum + row.stepMs, 0);
  const aloneMs = rows.reduce((sum, row) => sum + row.aloneMs, 0);
  console.log(
    `  all convolutions: ${(flops / 1e9).toFixed(2)} GFLOP, ${stepMs.toFixed(1)} ms in the step ` +
      `(${rate(stepMs, flops)} GFLOP/s), ${aloneMs.toFixed(1)} ms alone (${
        rate(aloneMs, flops)
      }), ` +
      `${(flops / peak / 1e6).toFixed(1)} ms at the peak`,
  );
}

if (import.meta.main) await runMain(() => run(Deno.args));
