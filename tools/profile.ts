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
 * @module
 */
import * as tf from "@tensorflow/tfjs";
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
  const originals = tf.getKernelsForBackend(backendName);
  for (const config of originals) {
    const inner = config.kernelFunc;
    // Only the wasm backend has the engine's layers; the others run their own kernels.
    const unreported = backendName === "wasm"
      ? unreportedRoute(config)
      : `tfjs-backend-${backendName}`;
    tf.unregisterKernel(config.kernelName, backendName);
    tf.registerKernel({
      ...config,
      kernelFunc: (args) => {
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
      },
    });
  }
  try {
    await f();
  } finally {
    for (const config of originals) {
      tf.unregisterKernel(config.kernelName, backendName);
      tf.registerKernel(config);
    }
  }
  return calls;
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

if (import.meta.main) await runMain(() => run(Deno.args));
