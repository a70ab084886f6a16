/**
 * `Identity` for the wasm backend that shares the input's memory (counting
 * one more reference) instead of copying it, as the cpu backend and the wasm
 * backend's own `Reshape` do. tfjs-core clones every tensor a gradient needs
 * through `Identity`, about 200 full-size copies per training step of `bin`.
 * Kernels never write into their inputs, so sharing is safe.
 *
 * @module
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { callKernel, type KernelOverride, type WasmBackend } from "./wasm_heap.ts";

/**
 * The `Identity` kernel config for the wasm backend.
 *
 * @param original The backend's own kernel, for string tensors.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { identityConfig } from "./identity.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(identityConfig({} as never).kernelName, "Identity");
 * ```
 */
export function identityConfig(original: KernelConfig): KernelOverride {
  return {
    kernelName: "Identity",
    backendName: "wasm",
    original,
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as WasmBackend;
      const { x } = inputs as { x: TensorInfo };
      if (x.dtype === "string") return callKernel(original, wasm, { x }, {});
      wasm.incRef(x.dataId);
      return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
    },
  };
}
