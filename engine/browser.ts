/**
 * The engine in a browser: the kernels and training forms that need no Deno
 * API (no FFI, no environment), registered for the backend a page chose. The
 * page's training worker (`web/train_worker.ts`) calls it; with wasm it
 * registers the pure-wasm kernels (`registerWasmKernels(null, null, simd)`: no
 * OpenBLAS, no oneDNN), without which tfjs-backend-wasm cannot train a conv
 * net (it has no `Conv2DBackpropFilter`), and with them the engine's
 * WebAssembly SIMD kernels (`simd/kernels.wasm`) when the page hands their
 * bytes: the kernels Deno's pure wasm path runs by default, so that the page
 * computes what `deno task <exercise>` computes without native libraries.
 * Kernels the engine adds later that need no Deno API belong here too.
 *
 * @module
 */
import type { WasmBackend } from "./kernels/wasm_heap.ts";
import { loadSimdModule, simdKernels } from "./kernels/simd.ts";
import * as tf from "@tensorflow/tfjs";
import { registerTrainingGraph, registerWasmKernels } from "./backend.ts";

/** What {@linkcode registerBrowserKernels} may use besides the backend. */
export interface BrowserKernelsOptions {
  /** The bytes of `engine/simd/kernels.wasm` (fetched by the page); the convolutions and sums
   * of the plain wasm kernels when absent. @default {none} */
  simd?: BufferSource;
}

/**
 * Registers the engine's platform-neutral kernels for a backend already set.
 *
 * @param backend The backend in use (`tf.getBackend()`).
 * @param options The SIMD kernels' bytes, for wasm.
 * @returns What runs, for the page to say: e.g. "the engine's wasm kernels with SIMD", or
 *   why not SIMD; an empty string for a backend other than wasm.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { registerBrowserKernels } from "./browser.ts";
 * import { assert } from "./assert.ts";
 * await tf.setBackend("cpu");
 * await registerBrowserKernels("cpu");
 * assert(tf.getGradient("FusedBatchNorm") !== undefined);
 * ```
 */
export async function registerBrowserKernels(
  backend: string,
  options: BrowserKernelsOptions = {},
): Promise<string> {
  registerTrainingGraph();
  if (backend !== "wasm") return "";
  const module = options.simd === undefined
    ? "no kernels.wasm given"
    : await loadSimdModule(options.simd);
  registerWasmKernels(
    null,
    null,
    typeof module === "string" ? null : simdKernels(tf.backend() as WasmBackend, module),
  );
  return typeof module === "string"
    ? `the engine's wasm kernels, without SIMD (${module})`
    : "the engine's wasm kernels with SIMD, as Deno's pure wasm path";
}
