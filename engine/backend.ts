/**
 * Choosing and setting up the TensorFlow.js backend every exercise runs on.
 *
 * `auto` takes the fastest backend that works on this machine, in this order:
 * 1. `tensorflow`: the native TensorFlow library of `@tensorflow/tfjs-node-gpu`,
 *    then `@tensorflow/tfjs-node`, when the project's import map has one;
 * 2. `webgpu` on a real GPU (a software adapter such as llvmpipe is skipped);
 * 3. `wasm`, with this project's training kernels: convolutions on oneDNN
 *    when it is installed (`wasm+onednn`), the rest on OpenBLAS when it is
 *    (`wasm+openblas` without oneDNN);
 * 4. `cpu`, plain JavaScript (slow; for checking results).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import type { KernelConfig } from "@tensorflow/tfjs-core";
import { type Blas, blasThreads, openBlas } from "./blas.ts";
import { BackendError } from "./errors.ts";
import { markBackendKernel, markEngineKernel } from "./routes.ts";
import { type Dnnl, findUnusableDnnl, openDnnl } from "./dnnl.ts";
import { detectSystem, nativeLibraryHint } from "./native_hint.ts";
import { conv2dBlasConfig, conv2dDnnlConfig, conv2dSimdConfig } from "./kernels/conv2d.ts";
import {
  conv2dBackpropFilterConfig,
  conv2dBackpropFilterDnnlConfig,
  type WasmConvParts,
} from "./kernels/conv2d_backprop_filter.ts";
import { conv2dBackpropFilterCpuConfig } from "./kernels/conv2d_backprop_filter_cpu.ts";
import {
  conv2dBackpropInputConfig,
  conv2dBackpropInputDnnlConfig,
} from "./kernels/conv2d_backprop_input.ts";
import { DnnlConvolutions } from "./kernels/conv_dnnl.ts";
import { fusedBatchNormGradConfig } from "./kernels/fused_batch_norm_grad.ts";
import {
  fusedConv2dBlasConfig,
  fusedConv2dDnnlConfig,
  fusedConv2dSimdConfig,
} from "./kernels/fused_conv2d.ts";
import { fusedBatchNormConfig, fusedBatchNormDnnlConfig } from "./kernels/fused_batch_norm.ts";
import { DnnlBatchNorm } from "./kernels/norm_dnnl.ts";
import { SimdBatchNorm } from "./kernels/norm_simd.ts";
import {
  BATCH_NORM_TRAINING,
  BATCH_NORM_TRAINING_GRAD,
  batchNormTrainingConfig,
  batchNormTrainingGrad,
  batchNormTrainingGradConfig,
  MOVING_AVERAGES,
  movingAveragesWasmConfig,
  useFusedTrainingBatchNorm,
} from "./kernels/batch_norm_training.ts";
import { binaryDnnlConfig, DNNL_BINARY_KERNELS, DnnlBinary } from "./kernels/binary_dnnl.ts";
import { blockSumDnnlConfig, DnnlBlockSum } from "./kernels/block_sum_dnnl.ts";
import {
  concatChannelsConfig,
  DnnlStridedCopy,
  SimdStridedCopy,
  splitVChannelsConfig,
} from "./kernels/channel_copy.ts";
import { identityConfig } from "./kernels/identity.ts";
import { castConfig } from "./kernels/cast.ts";
import { meanGradConfig } from "./kernels/mean_grad.ts";
import { tileConfig } from "./kernels/tile.ts";
import { leadingReductionConfig } from "./kernels/sum.ts";
import { maxPoolGradWasmConfig } from "./kernels/max_pool_grad.ts";
import { fusedConv2dGrad, useDirectConvLayers } from "./kernels/conv_layer_training.ts";
import { MOMENTUM_UPDATE, momentumUpdateWasmConfig, useFusedMomentum } from "./kernels/momentum.ts";
import { RELU_GRAD, reluGrad, reluGradWasmConfig } from "./kernels/relu_grad.ts";
import { DNNL_ELTWISE_KERNELS, DnnlEltwise, eltwiseDnnlConfig } from "./kernels/eltwise_dnnl.ts";
import { DnnlMaxPoolGrad, maxPoolGradDnnlConfig } from "./kernels/pool_dnnl.ts";
import { MAX_POOL_MASK, maxPoolMaskDnnlConfig, maxPoolMaskGrad } from "./kernels/max_pool_mask.ts";
import { useReluFusion } from "./kernels/relu_fusion.ts";
import { useLightSavedTensors } from "./kernels/saved_tensors.ts";
import {
  CROSS_ENTROPY_KERNELS,
  crossEntropyGrads,
  crossEntropyWasmConfigs,
  useFusedCrossEntropy,
} from "./kernels/cross_entropy.ts";
import { DnnlScaledSum } from "./kernels/scaled_sum_dnnl.ts";
import {
  DnnlResize,
  resizeNearestNeighborDnnlConfig,
  resizeNearestNeighborGradDnnlConfig,
} from "./kernels/resize_dnnl.ts";
import {
  resizeNearestNeighborGradCpuConfig,
  resizeNearestNeighborGradWasmConfig,
} from "./kernels/resize_nearest_neighbor_grad.ts";
import { guardHeap, type KernelOverride, type WasmBackend } from "./kernels/wasm_heap.ts";
import { loadSimdModule, sharedHeap, type SimdKernels, simdKernels } from "./kernels/simd.ts";
import { startSharedHeap } from "./kernels/simd_threads.ts";

/** A value of the `--backend` flag. */
export type BackendName = "auto" | "tensorflow" | "webgpu" | "wasm" | "cpu";

/** Every value of the `--backend` flag, `auto` first. */
export const BACKEND_NAMES: readonly BackendName[] = [
  "auto",
  "tensorflow",
  "webgpu",
  "wasm",
  "cpu",
];

function isBackendName(name: string): name is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(name);
}

/** Options of {@linkcode setupBackend}. */
export interface SetupBackendOptions {
  /** Print nothing. @default false */
  quiet?: boolean;
  /**
   * Use OpenBLAS for the wasm backend's convolutions when it is installed.
   * `SEGMENT_NO_BLAS=1` in the environment also switches it off.
   * @default true
   */
  blas?: boolean;
  /**
   * Run the wasm backend's convolutions on oneDNN when it is installed.
   * `SEGMENT_NO_DNNL=1` in the environment also switches it off.
   * @default the value of `blas`
   */
  dnnl?: boolean;
  /**
   * Run the pure wasm path's convolutions and sums on this engine's
   * WebAssembly SIMD kernels (`simd/kernels.c`), which also take what oneDNN
   * and OpenBLAS decline. `SEGMENT_NO_SIMD=1` in the environment also switches
   * them off (the backend's own XNNPACK kernels and JavaScript loops run).
   * @default true
   */
  simd?: boolean;
  /**
   * oneDNN's threads, fixed: for runs that repeat to the bit whatever else
   * the machine does (the thread count sets the order of oneDNN's sums).
   * On the pure wasm path, the SIMD kernels' threads: 2 starts the backend on
   * a shared heap with a helper thread that always joins (their splits give
   * the same floats on any count), 1 keeps one thread on an unshared heap; by
   * default two where the machine has two cores or more, the helper joining
   * while two cores are free.
   * `SEGMENT_THREADS=N` in the environment does the same.
   * @default as many as other processes leave cores free (engine/free_cores.ts)
   */
  threads?: number;
  /**
   * Accept a software WebGPU adapter (llvmpipe, SwiftShader) for `webgpu`.
   * `auto` never picks one.
   * @default true when `webgpu` is asked for by name
   */
  softwareGpu?: boolean;
}

/** What trying one backend gave: its name as printed, or why it cannot run. */
type Attempt = { ok: true; label: string; note?: string } | {
  ok: false;
  reason: string;
  fix: string;
};

/** Packages tried for `tensorflow`, fastest first. */
const TENSORFLOW_PACKAGES = ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"] as const;

/**
 * Sets up and activates a backend, registers this project's kernels and
 * gradients for it, and prints one line saying which backend runs and why
 * the faster ones were skipped.
 *
 * @param name A value of `--backend`; `auto` picks the fastest that works.
 * @param options Printing, OpenBLAS and software-GPU choices.
 * @returns The active backend as printed, e.g. `"wasm+openblas"`, `"wasm"` or `"cpu"`.
 * @throws {BackendError} When a backend asked for by name cannot run, saying why and what to install.
 *
 * @example
 * ```ts
 * import { setupBackend } from "./backend.ts";
 * import { assertEquals } from "./assert.ts";
 * import * as tf from "@tensorflow/tfjs";
 * assertEquals(await setupBackend("cpu", { quiet: true }), "cpu");
 * assertEquals(tf.getBackend(), "cpu");
 * ```
 */
export async function setupBackend(
  name: BackendName | string,
  options: SetupBackendOptions = {},
): Promise<string> {
  if (!isBackendName(name)) {
    throw new BackendError(
      `Unknown backend "${name}": use one of ${BACKEND_NAMES.join(", ")}`,
    );
  }
  const threads = options.threads ?? threadsFromEnv();
  registerTrainingGraph();
  quietCpuBanner();
  const order: BackendName[] = name === "auto" ? ["tensorflow", "webgpu", "wasm", "cpu"] : [name];
  const skipped: string[] = [];
  for (const candidate of order) {
    const attempt = await tryBackend(candidate, name === "auto", { ...options, threads });
    if (attempt.ok) {
      if (!options.quiet) {
        const why = name === "auto"
          ? (skipped.length > 0 ? `; skipped ${skipped.join(", ")}` : "")
          : " (asked for with --backend)";
        const note = attempt.note ? ` ${attempt.note}` : "";
        console.log(`backend: ${attempt.label}${note}${why}`);
      }
      return attempt.label;
    }
    if (name !== "auto") {
      throw new BackendError(
        `Cannot use backend ${candidate}: ${attempt.reason}; ${attempt.fix}`,
      );
    }
    skipped.push(`${candidate} (${attempt.reason})`);
  }
  throw new BackendError(`No backend works: ${skipped.join(", ")}`);
}

/**
 * Registers what every backend trains with: this project's gradients and the
 * training forms of the layers (one batch-norm kernel, fused ReLU, lighter
 * saved tensors, the fused cross-entropy and momentum, direct conv layers).
 * Needs no Deno API: the page's training worker calls it through
 * `browser.ts`.
 *
 * @example
 * ```ts
 * import { registerTrainingGraph } from "./backend.ts";
 * import * as tf from "@tensorflow/tfjs";
 * import { assert } from "./assert.ts";
 * registerTrainingGraph();
 * assert(tf.getGradient("FusedBatchNorm") !== undefined);
 * ```
 */
export function registerTrainingGraph(): void {
  tf.registerGradient(fusedBatchNormGradConfig);
  tf.registerGradient(meanGradConfig);
  tf.registerGradient(batchNormTrainingGrad);
  tf.registerGradient(reluGrad);
  tf.registerGradient(maxPoolMaskGrad);
  for (const grad of crossEntropyGrads) tf.registerGradient(grad);
  useFusedTrainingBatchNorm();
  useReluFusion();
  useLightSavedTensors();
  useFusedCrossEntropy();
  useFusedMomentum();
  tf.registerGradient(fusedConv2dGrad);
  useDirectConvLayers();
}

/**
 * The cpu backend prints "Hi, looks like you are running TensorFlow.js in
 * Node.js ..." on its first use under Deno; this project's own line says which
 * backend runs and how to get the native one.
 */
function quietCpuBanner(): void {
  const cpu = tf.findBackend("cpu") as { firstUse?: boolean } | null;
  if (cpu !== null && cpu.firstUse === true) cpu.firstUse = false;
}

function tryBackend(
  name: BackendName,
  auto: boolean,
  options: SetupBackendOptions,
): Promise<Attempt> {
  switch (name) {
    case "tensorflow":
      return tryTensorflow();
    case "webgpu":
      return tryWebgpu(options.softwareGpu ?? !auto);
    case "wasm":
      return tryWasm(
        options.blas ?? true,
        options.dnnl ?? options.blas ?? true,
        options.simd ?? true,
        options.threads,
      );
    default:
      return tryCpu();
  }
}

async function tryCpu(): Promise<Attempt> {
  if (!(await tf.setBackend("cpu"))) {
    return { ok: false, reason: "failed to start", fix: "reinstall @tensorflow/tfjs" };
  }
  // tfjs 4.22's own kernels: wrong for batches of more than one image, and very slow.
  for (const config of [resizeNearestNeighborGradCpuConfig, conv2dBackpropFilterCpuConfig]) {
    tf.unregisterKernel(config.kernelName, "cpu");
    tf.registerKernel(config);
  }
  return { ok: true, label: "cpu", note: "(plain JavaScript, slow)" };
}

/**
 * Adds `util.isNullOrUndefined`, which tfjs-node 4.22 calls and Deno's
 * `node:util` (like Node 23+) no longer has.
 */
async function polyfillNodeUtil(): Promise<void> {
  const util = await import("node:util");
  const target = (util as unknown as { default?: Record<string, unknown> }).default ??
    (util as unknown as Record<string, unknown>);
  if (typeof target.isNullOrUndefined !== "function") {
    try {
      target.isNullOrUndefined = (value: unknown) => value === null || value === undefined;
    } catch {
      // A frozen module object: tfjs-node then fails to load and says why.
    }
  }
}

async function tryTensorflow(): Promise<Attempt> {
  const reasons: string[] = [];
  for (const pkg of TENSORFLOW_PACKAGES) {
    try {
      import.meta.resolve(pkg);
    } catch {
      reasons.push(`${pkg} not installed`);
      continue;
    }
    try {
      await polyfillNodeUtil();
      // A variable specifier keeps the package out of the static module graph.
      const specifier: string = pkg;
      await import(specifier);
      if (await tf.setBackend("tensorflow")) {
        return { ok: true, label: "tensorflow", note: `(${pkg})` };
      }
      reasons.push(`${pkg} did not start`);
    } catch (error) {
      const message = error instanceof Error ? error.message.split("\n")[0] : String(error);
      reasons.push(`${pkg} failed to load: ${message}`);
    }
  }
  return {
    ok: false,
    reason: reasons.length > 0 && reasons.every((reason) => reason.endsWith("not installed"))
      ? "not installed"
      : reasons.join("; "),
    fix: 'add "@tensorflow/tfjs-node": "npm:@tensorflow/tfjs-node@4.22.0" (or tfjs-node-gpu) to ' +
      "the imports of deno.json and run `deno install --allow-scripts=npm:@tensorflow/tfjs-node`",
  };
}

/** A minimal view of the WebGPU types, which Deno's default lib leaves out. */
interface GpuAdapterLike {
  info?: { description?: string; vendor?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
}

/**
 * Whether a WebGPU adapter is a CPU emulation (llvmpipe, lavapipe, SwiftShader).
 *
 * @param adapter The adapter, as `navigator.gpu.requestAdapter()` returns it.
 * @returns `true` for a software adapter.
 *
 * @example
 * ```ts
 * import { isSoftwareAdapter } from "./backend.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(isSoftwareAdapter({ info: { description: "llvmpipe (LLVM 15.0.6, 256 bits)" } }), true);
 * assertEquals(isSoftwareAdapter({ info: { description: "NVIDIA GeForce RTX 4090" } }), false);
 * ```
 */
export function isSoftwareAdapter(adapter: GpuAdapterLike): boolean {
  if (adapter.isFallbackAdapter === true || adapter.info?.isFallbackAdapter === true) return true;
  const text = `${adapter.info?.description ?? ""} ${adapter.info?.vendor ?? ""}`;
  return /llvmpipe|lavapipe|swiftshader|software/i.test(text);
}

/**
 * Asks WebGPU for an adapter, or says why there is none.
 *
 * @returns The adapter and a short description, or the reason there is none.
 *
 * @example
 * ```ts
 * import { findGpuAdapter } from "./backend.ts";
 * import { assert } from "./assert.ts";
 * const found = await findGpuAdapter();
 * assert("reason" in found || "adapter" in found);
 * ```
 */
export async function findGpuAdapter(): Promise<
  { adapter: GpuAdapterLike; description: string } | { reason: string }
> {
  const gpu = (navigator as unknown as {
    gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> };
  }).gpu;
  if (gpu === undefined) return { reason: "this Deno has no WebGPU" };
  quietVulkanLoader();
  let adapter: GpuAdapterLike | null;
  try {
    adapter = await gpu.requestAdapter();
  } catch (error) {
    return { reason: `no GPU adapter (${error instanceof Error ? error.message : error})` };
  }
  if (adapter === null) return { reason: "no GPU adapter" };
  const description = adapter.info?.description || adapter.info?.vendor || "unnamed adapter";
  return { adapter, description };
}

/** Mesa's Vulkan loader prints an error when XDG_RUNTIME_DIR is unset; give it one. */
function quietVulkanLoader(): void {
  try {
    if (Deno.env.get("XDG_RUNTIME_DIR") !== undefined) return;
    let directory = "/tmp";
    try {
      directory = Deno.makeTempDirSync({ prefix: "segment-xdg-" });
    } catch {
      // No write permission: /tmp also keeps the loader quiet.
    }
    Deno.env.set("XDG_RUNTIME_DIR", directory);
  } catch {
    // No --allow-env: the loader only prints a warning.
  }
}

async function tryWebgpu(acceptSoftware: boolean): Promise<Attempt> {
  const fix = "install a GPU driver with Vulkan support (on Debian/Ubuntu without a GPU, " +
    "`apt-get install mesa-vulkan-drivers` gives a slow software adapter) or use --backend wasm";
  const found = await findGpuAdapter();
  if ("reason" in found) return { ok: false, reason: found.reason, fix };
  const software = isSoftwareAdapter(found.adapter);
  if (software && !acceptSoftware) {
    return { ok: false, reason: `software adapter only: ${found.description}`, fix };
  }
  try {
    await import("@tensorflow/tfjs-backend-webgpu");
    if (!(await tf.setBackend("webgpu"))) {
      return { ok: false, reason: `failed to start on ${found.description}`, fix };
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { ok: false, reason: `failed to start: ${message}`, fix };
  }
  return {
    ok: true,
    label: "webgpu",
    note: `(${found.description}${software ? ", a software adapter: slow" : ""})`,
  };
}

async function tryWasm(
  useBlas: boolean,
  useDnnl: boolean,
  useSimd: boolean,
  threads: number | undefined,
): Promise<Attempt> {
  const blas = useBlas ? openBlas() : "switched off";
  const dnnl = useDnnl ? sharedDnnl() : "switched off";
  const noSimd = envValue("SEGMENT_NO_SIMD");
  const simdOff = !useSimd
    ? "switched off"
    : noSimd !== undefined && noSimd !== "" && noSimd !== "0"
    ? "SEGMENT_NO_SIMD is set"
    : null;
  const pinned = threads ?? null;
  // On a machine of two cores or more the pure wasm path runs its SIMD kernels on two threads,
  // which needs the backend's heap shared: it is made so as the backend starts (the first time
  // only; it keeps its heap). The helper joins only while two cores are free, unless asked for
  // (SEGMENT_THREADS=2); SEGMENT_THREADS=1 keeps one thread on an unshared heap. The threads
  // claim blocks of work as they come free, so a slower core takes fewer: bin at 75-89 ms per
  // step on two threads against 107-112 on one, on this 2-core machine (engine/README.md).
  const simdThreads = simdOff === null && typeof blas === "string" && typeof dnnl === "string"
    ? Math.min(2, pinned ?? navigator.hardwareConcurrency)
    : 1;
  const started = simdThreads >= 2
    ? (await startSharedHeap(() => tf.setBackend("wasm"))).result
    : await tf.setBackend("wasm");
  if (!started) {
    return { ok: false, reason: "failed to start", fix: "reinstall @tensorflow/tfjs-backend-wasm" };
  }
  const backend = tf.backend() as WasmBackend;
  // Past 4 GB, one line that says what to do instead of a trap inside the wasm module.
  guardHeap(backend, (message) => new BackendError(message));
  if (typeof dnnl !== "string") dnnl.library.pinThreads(pinned);
  const simdModule = simdOff ?? await loadSimdModule(undefined, { shared: sharedHeap(backend) });
  const simd = typeof simdModule === "string"
    ? null
    : simdKernels(backend, simdModule, simdThreads, pinned !== null);
  registerWasmKernels(
    typeof blas === "string" ? null : blas,
    typeof dnnl === "string" ? null : dnnl,
    simd,
  );
  if (typeof blas !== "string") {
    const asked = envValue("SEGMENT_BLAS_THREADS");
    // With oneDNN, OpenBLAS keeps only reductions and fallbacks, on one thread unless asked:
    // its idle threads busy-wait, and beside oneDNN's OpenMP threads on 2 cores a bin step
    // took 188 ms (250 ms of CPU) instead of 61-68 ms (55 ms of CPU).
    const threads = typeof dnnl !== "string" && asked === undefined
      ? 1
      : blasThreads(asked, navigator.hardwareConcurrency);
    blas.setThreads(threads);
  }
  const blasNote = typeof blas === "string"
    ? `without OpenBLAS: ${blas}${
      blas === "--allow-ffi not granted" ? "; run with --allow-ffi to use it" : ""
    }`
    : `OpenBLAS on ${
      blas.threads === 1 ? "1 thread" : `${blas.threads} threads for large products`
    }`;
  if (typeof dnnl !== "string") {
    const most = dnnl.library.maxThreads;
    const fixed = Math.min(pinned ?? most, most);
    const threadsNote = most === 0
      ? ""
      : pinned !== null
      ? ` on ${fixed} thread${fixed === 1 ? "" : "s"} (SEGMENT_THREADS=${pinned})`
      : most > 1
      ? ` on up to ${most} threads, as many as other processes leave cores free`
      : " on 1 thread";
    return {
      ok: true,
      label: "wasm+onednn",
      note: `(oneDNN ${dnnl.library.version} for convolutions and batch norm${threadsNote}; ` +
        `${blasNote})`,
    };
  }
  // Advice only where a library is missing, not where the user switched it off.
  const missing = dnnl === "not installed" || dnnl.endsWith("2.x needed") ||
    blas === "not installed";
  const hint = missing
    ? nativeLibraryHint({
      blas: typeof blas !== "string",
      dnnl: false,
      unusableDnnl: findUnusableDnnl(),
      system: detectSystem(),
    })
    : "";
  const simdNote = typeof simdModule === "string"
    ? `; without the SIMD kernels: ${simdModule}`
    : typeof blas === "string"
    ? `; convolutions and sums on the engine's wasm SIMD kernels, ${
      !simd?.threads
        ? "1 thread"
        : pinned === null
        ? "2 threads (the second while a core is free)"
        : `2 threads (SEGMENT_THREADS=${pinned}${pinned > 2 ? "; they use at most 2" : ""})`
    }`
    : "";
  return {
    ok: true,
    label: typeof blas === "string" ? "wasm" : "wasm+openblas",
    note: `(without oneDNN: ${dnnl}; ${blasNote}${simdNote}${hint ? `; ${hint}` : ""})`,
  };
}

/** oneDNN and its compiled primitives, kept for the process once opened. */
let openedDnnl: DnnlKernels | null = null;

/** oneDNN and the primitive caches of the kernels on it. */
export interface DnnlKernels {
  /** The library. */
  library: Dnnl;
  /** Convolutions, per shape. */
  convolutions: DnnlConvolutions;
  /** Batch normalization, per shape. */
  batchNorm: DnnlBatchNorm;
  /** Element-wise binary operations, per shape. */
  binary: DnnlBinary;
  /** Sums of blocks (the gradient of SegNet's unpooling), per shape. */
  blockSum: DnnlBlockSum;
  /** Strided copies (concatenation and split along channels), per shape. */
  copies: DnnlStridedCopy;
  /** Element-wise operations (ReLU, its gradient, exp), per size. */
  eltwise: DnnlEltwise;
  /** Max-pooling gradients, per shape. */
  maxPoolGrad: DnnlMaxPoolGrad;
  /** Nearest-neighbour upsampling and its gradient, per shape. */
  resize: DnnlResize;
  /** `scale * a + b` (SGD with momentum on large variables), per length and scale. */
  sums: DnnlScaledSum;
}

/**
 * oneDNN with its convolutions, opened on first use and then shared by every
 * setup (compiling its primitives for each shape takes milliseconds), or the
 * reason it cannot be used.
 */
function sharedDnnl(): DnnlKernels | string {
  const dnnl = openDnnl();
  if (typeof dnnl === "string") return dnnl;
  if (openedDnnl === null) {
    openedDnnl = {
      library: dnnl,
      convolutions: new DnnlConvolutions(dnnl),
      batchNorm: new DnnlBatchNorm(dnnl),
      binary: new DnnlBinary(dnnl),
      blockSum: new DnnlBlockSum(dnnl),
      copies: new DnnlStridedCopy(dnnl),
      eltwise: new DnnlEltwise(dnnl),
      maxPoolGrad: new DnnlMaxPoolGrad(dnnl),
      resize: new DnnlResize(dnnl),
      sums: new DnnlScaledSum(dnnl),
    };
  } else {
    dnnl.close();
  }
  return openedDnnl;
}

/**
 * The shapes oneDNN turned down in this process (they ran on the kernels
 * below it: OpenBLAS, the engine's wasm SIMD, the backend's own), per
 * oneDNN kernel of the engine; empty without oneDNN. A primitive oneDNN
 * would only run with its slow reference implementation counts as declined.
 *
 * @returns One entry per kernel with declined shapes: its name (`convolutions`,
 *   `batchNorm`, ...) and the cache keys (shape and thread count).
 *
 * @example
 * ```ts
 * import { declinedByDnnl } from "./backend.ts";
 * import { assert } from "./assert.ts";
 * assert(declinedByDnnl().every((entry) => entry.keys.length > 0));
 * ```
 */
export function declinedByDnnl(): { kernel: string; keys: string[] }[] {
  if (openedDnnl === null) return [];
  const { library: _, ...kernels } = openedDnnl;
  return Object.entries(kernels)
    .map(([kernel, cache]) => ({ kernel, keys: cache.declined }))
    .filter((entry) => entry.keys.length > 0);
}

/**
 * The thread count `SEGMENT_THREADS` fixes, or `undefined` when it is unset
 * or empty (the engine chooses).
 *
 * @returns A whole number of threads, 1 or more.
 * @throws {BackendError} For any other value, saying what to write instead.
 */
function threadsFromEnv(): number | undefined {
  const value = envValue("SEGMENT_THREADS")?.trim();
  if (value === undefined || value === "") return undefined;
  const threads = Number(value);
  if (!/^[0-9]+$/.test(value) || threads < 1) {
    throw new BackendError(
      `SEGMENT_THREADS=${value} is not a thread count: set a whole number of 1 or more ` +
        `(1 repeats a run to the bit and leaves a core free), or unset it to let the engine choose`,
    );
  }
  return threads;
}

/** An environment variable, or `undefined` when unset or not permitted. */
function envValue(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** The kernel registered under `name` for wasm, before any override of this project. */
function baseKernel(name: string): KernelConfig | undefined {
  const current = tf.getKernel(name, "wasm") as KernelOverride | undefined;
  if (current !== undefined && Object.hasOwn(current, "original")) return current.original;
  return current;
}

function replaceKernel(name: string, config: KernelConfig | undefined): void {
  if (tf.getKernel(name, "wasm") !== undefined) tf.unregisterKernel(name, "wasm");
  if (config !== undefined) registerEngineKernel(config);
}

/** Registers a kernel of the engine's, marked as such for a profiler (`routes.ts`). */
function registerEngineKernel(config: KernelConfig): void {
  tf.registerKernel(markEngineKernel(config));
}

function requireKernel(name: string): KernelConfig {
  const kernel = baseKernel(name);
  if (kernel === undefined) throw new Error(`The wasm backend has no ${name} kernel`);
  return markBackendKernel(kernel);
}

/**
 * Registers this project's wasm kernels (each in `kernels/`): the missing
 * `Conv2DBackpropFilter`; a faster `Conv2DBackpropInput`; a correct
 * `MaxPoolGrad` (the backend's own drops the gradient of all-negative
 * windows); a faster `ResizeNearestNeighborGrad`; one-pass `Sum` and `Mean`
 * over leading axes; `Identity` and
 * same-type `Cast` that share memory; per-channel `FusedBatchNorm`; a
 * block-repeating `Tile`; and with OpenBLAS also `Conv2D` and `FusedConv2D`.
 * With oneDNN, the four convolution kernels, `FusedBatchNorm`, large
 * `GreaterEqual`s, block sums (`Sum` over axes 2 and 4 of 6-D tensors), and
 * `Concat` and `SplitV` along channels, `MaxPoolGrad`, SegNet's pooling mask
 * (`SegmentMaxPoolMask`), nearest-neighbour upsampling by whole factors and
 * its gradient, and SGD with momentum on large variables run on it, and a batch-norm layer in
 * training becomes one kernel on it with one gradient; each kernel falls
 * back to the others for what oneDNN does not run. Registering again
 * replaces them (so a test can switch OpenBLAS and oneDNN off and on).
 *
 * @param blas OpenBLAS, or `null` for the pure wasm kernels.
 * @param dnnl oneDNN's kernels, or `null` for none.
 * @param simd The engine's WebAssembly SIMD kernels on the backend's heap
 *   (`kernels/simd.ts`), or `null`: the convolutions and the sums of the pure
 *   wasm path, and what oneDNN and OpenBLAS decline.
 *
 * @example
 * ```ts
 * import { registerWasmKernels } from "./backend.ts";
 * import * as tf from "@tensorflow/tfjs";
 * import { assert } from "./assert.ts";
 * registerWasmKernels(null);
 * assert(tf.getKernel("Conv2DBackpropFilter", "wasm") !== undefined);
 * ```
 */
export function registerWasmKernels(
  blas: Blas | null,
  dnnl: Omit<DnnlKernels, "library"> | null = null,
  simd: SimdKernels | null = null,
): void {
  const parts: WasmConvParts = {
    conv2d: requireKernel("Conv2D"),
    transpose: requireKernel("Transpose"),
    slice: requireKernel("Slice"),
    reverse: requireKernel("Reverse"),
  };
  const conv2d = parts.conv2d;
  const fusedConv2d = requireKernel("FusedConv2D");
  const backpropInput = requireKernel("Conv2DBackpropInput");
  const filterGrad = conv2dBackpropFilterConfig(blas, parts, simd);
  replaceKernel(
    "Conv2DBackpropFilter",
    dnnl === null ? filterGrad : conv2dBackpropFilterDnnlConfig(dnnl.convolutions, filterGrad),
  );
  const resize = requireKernel("ResizeNearestNeighbor");
  if (dnnl === null) {
    replaceKernel("MaxPoolGrad", maxPoolGradWasmConfig);
    replaceKernel("ResizeNearestNeighbor", resize);
    replaceKernel("ResizeNearestNeighborGrad", resizeNearestNeighborGradWasmConfig);
  } else {
    replaceKernel("MaxPoolGrad", maxPoolGradDnnlConfig(dnnl.maxPoolGrad, maxPoolGradWasmConfig));
    replaceKernel("ResizeNearestNeighbor", resizeNearestNeighborDnnlConfig(dnnl.resize, resize));
    replaceKernel(
      "ResizeNearestNeighborGrad",
      resizeNearestNeighborGradDnnlConfig(dnnl.resize, resizeNearestNeighborGradWasmConfig),
    );
  }
  const sum = leadingReductionConfig("Sum", requireKernel("Sum"), blas, simd);
  replaceKernel("Sum", dnnl === null ? sum : blockSumDnnlConfig(dnnl.blockSum, sum));
  replaceKernel("Mean", leadingReductionConfig("Mean", requireKernel("Mean"), blas, simd));
  replaceKernel("Identity", identityConfig(requireKernel("Identity")));
  replaceKernel("Cast", castConfig(requireKernel("Cast")));
  replaceKernel("Tile", tileConfig(requireKernel("Tile")));
  const batchNorm = fusedBatchNormConfig(requireKernel("FusedBatchNorm"), blas);
  replaceKernel(
    "FusedBatchNorm",
    dnnl === null ? batchNorm : fusedBatchNormDnnlConfig(dnnl.batchNorm, batchNorm),
  );
  const inputGrad = conv2dBackpropInputConfig(blas, parts, backpropInput, simd);
  const simdForward = simd === null ? conv2d : conv2dSimdConfig(simd, conv2d);
  const simdFused = simd === null ? fusedConv2d : fusedConv2dSimdConfig(simd, fusedConv2d);
  const forward = blas === null ? simdForward : conv2dBlasConfig(blas, simdForward);
  const fusedForward = blas === null ? simdFused : fusedConv2dBlasConfig(blas, simdFused);
  if (dnnl === null) {
    replaceKernel("Conv2DBackpropInput", inputGrad);
    replaceKernel("Conv2D", forward);
    replaceKernel("FusedConv2D", fusedForward);
  } else {
    const convolutions = dnnl.convolutions;
    replaceKernel("Conv2DBackpropInput", conv2dBackpropInputDnnlConfig(convolutions, inputGrad));
    replaceKernel("Conv2D", conv2dDnnlConfig(convolutions, forward));
    replaceKernel("FusedConv2D", fusedConv2dDnnlConfig(convolutions, fusedForward));
  }
  const own = [
    BATCH_NORM_TRAINING,
    BATCH_NORM_TRAINING_GRAD,
    RELU_GRAD,
    MOVING_AVERAGES,
    MAX_POOL_MASK,
    ...CROSS_ENTROPY_KERNELS,
  ];
  for (const name of [...own, MOMENTUM_UPDATE]) {
    if (tf.getKernel(name, "wasm") !== undefined) tf.unregisterKernel(name, "wasm");
  }
  // Optimizer steps and batch-norm moving averages take these, with or without oneDNN.
  registerEngineKernel(movingAveragesWasmConfig());
  // With oneDNN, variables above MAX_FUSED_MOMENTUM_SIZE run on its sums (kernels/momentum.ts).
  registerEngineKernel(momentumUpdateWasmConfig(dnnl?.sums ?? null));
  if (dnnl === null && simd !== null) {
    // Training batch-norm layers take these (kernels/norm_simd.ts), ReLU's gradient this.
    const norm = new SimdBatchNorm(simd);
    registerEngineKernel(batchNormTrainingConfig(norm));
    registerEngineKernel(batchNormTrainingGradConfig(norm));
    registerEngineKernel(reluGradWasmConfig(null, simd));
  }
  if (dnnl !== null) {
    // Training batch-norm layers take these (kernels/batch_norm_training.ts).
    registerEngineKernel(batchNormTrainingConfig(dnnl.batchNorm));
    registerEngineKernel(batchNormTrainingGradConfig(dnnl.batchNorm));
    // ReLU's gradient takes it (kernels/relu_grad.ts).
    registerEngineKernel(reluGradWasmConfig(dnnl.eltwise, simd));
    // SegNet's pooling masks take it (kernels/max_pool_mask.ts, lib/custom_layers.js).
    registerEngineKernel(maxPoolMaskDnnlConfig(dnnl.maxPoolGrad));
    // tf.losses.sigmoidCrossEntropy takes them (kernels/cross_entropy.ts).
    for (const config of crossEntropyWasmConfigs(dnnl.eltwise)) registerEngineKernel(config);
  }
  const concat = requireKernel("Concat");
  const splitV = requireKernel("SplitV");
  // Along channels on oneDNN's copies, else on the SIMD kernels' (kernels/channel_copy.ts).
  const copies = dnnl?.copies ?? (simd === null ? null : new SimdStridedCopy(simd));
  replaceKernel("Concat", copies === null ? concat : concatChannelsConfig(copies, concat));
  replaceKernel("SplitV", copies === null ? splitV : splitVChannelsConfig(copies, splitV));
  for (const kernel of DNNL_ELTWISE_KERNELS) {
    const own = requireKernel(kernel.name);
    replaceKernel(kernel.name, dnnl === null ? own : eltwiseDnnlConfig(kernel, dnnl.eltwise, own));
  }
  for (const kernel of DNNL_BINARY_KERNELS) {
    const own = requireKernel(kernel.name);
    replaceKernel(kernel.name, dnnl === null ? own : binaryDnnlConfig(kernel, dnnl.binary, own));
  }
}
