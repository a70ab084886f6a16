/**
 * The engine in a browser: the kernels and training forms that need no Deno
 * API (no FFI, no environment), registered for the backend a page chose. The
 * page's training worker (`web/train_worker.ts`) calls it; with wasm it
 * registers the pure-wasm kernels on the engine's SIMD kernels (`simd/kernels.wasm`,
 * fetched from the page's server: `tools/serve.ts` serves it under `/vendor/`),
 * as Deno's pure wasm path runs them, without which tfjs-backend-wasm cannot
 * train a conv net (it has no `Conv2DBackpropFilter`). Where the page is
 * cross-origin isolated, tfjs-backend-wasm runs its threaded build on a shared
 * heap, and the kernels run there as `kernels_shared.wasm` on two threads.
 * Kernels the engine adds later that need no Deno API belong here too.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { registerTrainingGraph, registerWasmKernels } from "./backend.ts";
import { loadSimdModule, sharedHeap, simdKernels } from "./kernels/simd.ts";
import type { WasmBackend } from "./kernels/wasm_heap.ts";

/** Options of {@linkcode registerBrowserKernels}. */
export interface BrowserKernelsOptions {
  /**
   * Where the page's server serves `kernels.wasm` and `kernels_shared.wasm`
   * (a URL prefix), as `setWasmPaths` takes tfjs-backend-wasm's files; `null`
   * leaves the SIMD kernels out (the backend's own kernels and loops).
   * @default "/vendor/"
   */
  simdPath?: string | null;
}

/**
 * Registers the engine's platform-neutral kernels for a backend already set.
 *
 * @param backend The backend in use (`tf.getBackend()`).
 * @param options Where the SIMD kernels are served.
 * @returns Once registered. Where the SIMD kernels cannot be loaded (not served, no
 *   WebAssembly SIMD), one `console.warn` line says why, and the wasm kernels run without them.
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
): Promise<void> {
  registerTrainingGraph();
  if (backend !== "wasm") return;
  const wasm = tf.backend() as unknown as WasmBackend;
  const shared = sharedHeap(wasm);
  const path = options.simdPath === undefined ? "/vendor/" : options.simdPath;
  let module: WebAssembly.Module | string = "switched off";
  if (path !== null) {
    const file = shared ? "kernels_shared.wasm" : "kernels.wasm";
    try {
      const response = await fetch(`${path}${file}`);
      module = response.ok
        ? await loadSimdModule(await response.arrayBuffer(), { shared })
        : `${path}${file} not found (${response.status})`;
    } catch (error) {
      module = `cannot fetch ${path}${file}: ${error instanceof Error ? error.message : error}`;
    }
  }
  registerWasmKernels(
    null,
    null,
    typeof module === "string" ? null : simdKernels(wasm, module, shared ? 2 : 1),
  );
  if (typeof module === "string" && path !== null) {
    console.warn(`The engine's SIMD kernels are left out: ${module}`);
  }
}
