/**
 * The engine in a browser: the kernels and training forms that need no Deno
 * API (no FFI, no environment), registered for the backend a page chose. The
 * page's training worker (`web/train_worker.ts`) calls it; with wasm it
 * registers the pure-wasm kernels (`registerWasmKernels(null, null)`: no
 * OpenBLAS, no oneDNN), without which tfjs-backend-wasm cannot train a conv
 * net (it has no `Conv2DBackpropFilter`). Kernels the engine adds later that
 * need no Deno API belong here too.
 *
 * @module
 */
import { registerTrainingGraph, registerWasmKernels } from "./backend.ts";

/**
 * Registers the engine's platform-neutral kernels for a backend already set.
 *
 * @param backend The backend in use (`tf.getBackend()`).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { registerBrowserKernels } from "./browser.ts";
 * import { assert } from "./assert.ts";
 * await tf.setBackend("cpu");
 * registerBrowserKernels("cpu");
 * assert(tf.getGradient("FusedBatchNorm") !== undefined);
 * ```
 */
export function registerBrowserKernels(backend: string): void {
  registerTrainingGraph();
  if (backend === "wasm") registerWasmKernels(null, null);
}
