/**
 * The engine's own WebAssembly SIMD kernels (`engine/simd/kernels.c`, built
 * into `engine/simd/kernels.wasm` by `deno task build_simd`), instantiated on
 * the wasm backend's own memory: the module imports tfjs-backend-wasm's
 * `WebAssembly.Memory` (`backend.wasm.asm.memory`), so its kernels read and
 * write tensors where they lie on the heap, with no copies.
 *
 * Loading is the only step that differs between Deno and a browser page, and
 * it happens once, at the edge: {@linkcode loadSimdModule} fetches the bytes
 * beside this file (`fetch` reads `file:` URLs in Deno with `--allow-read`,
 * and a page serves them) or takes bytes read by the caller. The kernels
 * themselves use WebAssembly and typed arrays only.
 *
 * @module
 */
import { noteRoute, routeClock } from "../routes.ts";
import { type SimdThreads, startSimdThreads } from "./simd_threads.ts";
import type { WasmBackend } from "./wasm_heap.ts";

/** The exports of `kernels.wasm`: pointers are byte offsets into the backend's heap. */
export interface SimdExports {
  /** Output rows `[rowBegin, rowEnd)` of `act(conv(x, w) + bias)`; `bias` 0 for none, `act` 1 for ReLU. */
  conv_forward(
    geometry: number,
    x: number,
    w: number,
    bias: number,
    y: number,
    act: number,
    rowBegin: number,
    rowEnd: number,
  ): void;
  /** A filter's taps transposed, `[taps][cin][cout]` to `[taps][cout][cin]`. */
  transpose_taps(geometry: number, w: number, wt: number): void;
  /** Images `[imageBegin, imageEnd)` of the input gradient, from `dy` and the transposed taps. */
  conv_backward_input(
    geometry: number,
    dy: number,
    wt: number,
    dx: number,
    imageBegin: number,
    imageEnd: number,
  ): void;
  /**
   * Adds output rows `[rowBegin, rowEnd)`'s share of the filter gradient to `dw`, for the
   * taps `[tapBegin, tapEnd)` (`tap = ky * filterWidth + kx`).
   */
  conv_backward_filter(
    geometry: number,
    x: number,
    dy: number,
    dw: number,
    rowBegin: number,
    rowEnd: number,
    tapBegin: number,
    tapEnd: number,
  ): void;
  /**
   * Winograd F(2x2, 3x3): the filter's transform `[16][cin][cout]`; with `flip`, that of the
   * input gradient (the forward filter turned by 180 degrees, its channels swapped).
   */
  winograd_filter(geometry: number, w: number, u: number, flip: number): void;
  /**
   * Winograd F(2x2, 3x3): the 2x2 tiles (image after image, row after row) of
   * `act(conv(x, w) + bias)` from the filter's transform, in blocks of 64 tiles claimed from
   * the geometry block's counter (two threads share them); `v` and `m` are scratch.
   */
  winograd_conv(
    geometry: number,
    x: number,
    u: number,
    bias: number,
    y: number,
    act: number,
    v: number,
    m: number,
  ): void;
  /**
   * Winograd F(2x2, 3x3) filter gradient: the tiles cut into `parts` runs of whole blocks,
   * claimed from the geometry block's counter, part `p` summed into `mg + p * 16 * cin * cout`
   * floats (`[16][cin][cout]` each, zeroed first); `v` and `z` are scratch.
   */
  winograd_filter_grad(
    geometry: number,
    x: number,
    dy: number,
    mg: number,
    v: number,
    z: number,
    parts: number,
  ): void;
  /** Copies a `rows x columns` block of floats between row strides (in floats). */
  strided_copy(
    from: number,
    fromStride: number,
    to: number,
    toStride: number,
    rows: number,
    columns: number,
  ): void;
  /** Winograd F(2x2, 3x3) filter gradient: `dw` from the `parts` sums in `mg`, added in order. */
  winograd_filter_grad_finish(geometry: number, mg: number, parts: number, dw: number): void;
  /** A training batch norm: the rows' mean and biased variance, and the normalized output. */
  batch_norm_training(
    x: number,
    rows: number,
    channels: number,
    scale: number,
    offset: number,
    epsilon: number,
    y: number,
    mean: number,
    variance: number,
    wide: number,
    zero: number,
  ): void;
  /** The gradient of `batch_norm_training`: dx, dscale and doffset. */
  batch_norm_backward(
    dy: number,
    x: number,
    rows: number,
    channels: number,
    mean: number,
    variance: number,
    scale: number,
    epsilon: number,
    dx: number,
    dscale: number,
    doffset: number,
    wide: number,
    work: number,
  ): void;
  /** ReLU's gradient: `dx = x > 0 ? dy : 0` over `count` floats. */
  relu_grad(dy: number, x: number, dx: number, count: number): void;
  /** Column sums of `rows x cols` floats times `scale`; `wide` is `cols` doubles of scratch. */
  column_sums(
    x: number,
    rows: number,
    cols: number,
    out: number,
    scale: number,
    wide: number,
  ): void;
}

/** The compiled modules (unshared and shared flavour), or why they are not there. */
const compiled = new Map<boolean, Promise<WebAssembly.Module | string>>();

/** Options of {@linkcode loadSimdModule}. */
export interface LoadSimdOptions {
  /**
   * The flavour for a shared heap (`kernels_shared.wasm`), which two threads
   * can run on; a heap's memory takes only its own flavour.
   * @default false
   */
  shared?: boolean;
}

/**
 * Compiles `kernels.wasm` (or `kernels_shared.wasm`) once per process: from
 * `bytes` when given, else fetched from beside this module.
 *
 * @param bytes The module's bytes, read by the caller (e.g. a page that bundles them).
 * @param options Which flavour.
 * @returns The compiled module, or the reason it cannot be loaded (no read permission, no
 *   WebAssembly SIMD in this runtime).
 *
 * @example
 * ```ts
 * import { loadSimdModule } from "./simd.ts";
 * import { assert } from "../assert.ts";
 * assert((await loadSimdModule()) instanceof WebAssembly.Module);
 * ```
 */
export function loadSimdModule(
  bytes?: BufferSource,
  options: LoadSimdOptions = {},
): Promise<WebAssembly.Module | string> {
  const shared = options.shared ?? false;
  const file = shared ? "kernels_shared.wasm" : "kernels.wasm";
  if (bytes !== undefined) {
    const module = WebAssembly.compile(bytes).catch((error) => describe(error, file));
    compiled.set(shared, module);
    return module;
  }
  let module = compiled.get(shared);
  if (module === undefined) {
    module = (async () => {
      try {
        const response = await fetch(new URL(`../simd/${file}`, import.meta.url));
        if (!response.ok) return `${file} not found (${response.status})`;
        return await WebAssembly.compile(await response.arrayBuffer());
      } catch (error) {
        return describe(error, file);
      }
    })();
    compiled.set(shared, module);
  }
  return module;
}

function describe(error: unknown, file: string): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/read access|NotCapable|PermissionDenied/i.test(message)) {
    return `--allow-read not granted for engine/simd/${file}`;
  }
  return `cannot load engine/simd/${file}: ${message.split("\n")[0]}`;
}

/** The module's instance on a backend's memory, with its scratch block for geometries. */
export interface SimdKernels {
  /** The raw exports. */
  exports: SimdExports;
  /** The memory they work on (the backend's heap). */
  memory: WebAssembly.Memory;
  /** Byte offset of 32 int32s of scratch on the heap, for geometry blocks. */
  geometry: number;
  /** The helper thread on a shared heap, or `null` (one thread). */
  threads: SimdThreads | null;
}

/**
 * Whether a backend's heap is a shared memory, which takes `kernels_shared.wasm`
 * (`loadSimdModule(undefined, { shared: true })`) and can run two threads.
 *
 * @param backend The wasm backend.
 * @returns `true` for a shared heap.
 */
export function sharedHeap(backend: WasmBackend): boolean {
  const memory = (backend.wasm as unknown as EmscriptenModule).asm?.memory;
  return typeof SharedArrayBuffer !== "undefined" && memory instanceof WebAssembly.Memory &&
    memory.buffer instanceof SharedArrayBuffer;
}

/**
 * The exports, each function reporting its route (`../routes.ts`) as it is called.
 *
 * @param exports The instance's exports.
 * @returns Functions of the same names and signatures.
 */
function reporting(exports: SimdExports): SimdExports {
  const wrapped: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(exports)) {
    wrapped[name] = typeof value !== "function" ? value : (...args: number[]) => {
      const since = routeClock();
      const result = value(...args);
      noteRoute("wasm SIMD", since);
      return result;
    };
  }
  return wrapped as unknown as SimdExports;
}

/** Instances by backend memory: the backend's memory object stays the same when it grows. */
const instances = new WeakMap<WebAssembly.Memory, SimdKernels>();

/** The parts of the Emscripten module the instance needs (missing from its types). */
interface EmscriptenModule {
  asm: { memory: WebAssembly.Memory };
  _malloc(bytes: number): number;
}

/**
 * The SIMD kernels on a wasm backend's heap: the module compiled by
 * {@linkcode loadSimdModule}, instantiated once per backend memory.
 *
 * @param backend The wasm backend.
 * @param module The compiled module, of the heap's flavour ({@linkcode sharedHeap}).
 * @param threads Threads to run on where the heap is shared: 2 starts a helper
 *   thread ({@linkcode startSimdThreads}); read when the heap's instance is made.
 * @param pinned Use both threads whatever other processes do; else two only while
 *   two cores are free.
 * @returns The kernels.
 * @throws {Error} When the backend exposes no memory to import.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { loadSimdModule, simdKernels } from "./simd.ts";
 * import { heapOffset, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const backend = tf.backend() as WasmBackend;
 * const module = await loadSimdModule();
 * if (typeof module === "string") throw new Error(module);
 * const simd = simdKernels(backend, module);
 * const x = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
 * const out = tf.zeros([2]);
 * const wide = backend.makeOutput([4], "float32");
 * simd.exports.column_sums(heapOffset(backend, x), 3, 2, heapOffset(backend, out), 1, heapOffset(backend, wide));
 * assertEquals([...out.dataSync()], [9, 12]);
 * backend.disposeData(wide.dataId);
 * tf.dispose([x, out]);
 * ```
 */
export function simdKernels(
  backend: WasmBackend,
  module: WebAssembly.Module,
  threads = 1,
  pinned = false,
): SimdKernels {
  const emscripten = backend.wasm as unknown as EmscriptenModule;
  const memory = emscripten.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) {
    throw new Error("The wasm backend exposes no WebAssembly.Memory (tfjs-backend-wasm 4.22)");
  }
  let kernels = instances.get(memory);
  if (kernels === undefined) {
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    const exports = instance.exports as unknown as SimdExports;
    const helper = startSimdThreads(memory, module, exports, emscripten, threads, pinned);
    kernels = {
      exports: reporting(exports),
      memory,
      geometry: emscripten._malloc(32 * 4) >>> 0,
      threads: typeof helper === "string" ? null : helper,
    };
    instances.set(memory, kernels);
  }
  return kernels;
}
