/**
 * `Cast` for the wasm backend that shares the input's memory when the type
 * does not change (tfjs-core casts float tensors to float in `moments` and in
 * the gradient of `square`); the backend's own kernel copies them.
 *
 * @module
 */
import type { DataType, KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { callKernel, type KernelOverride, type WasmBackend } from "./wasm_heap.ts";

/**
 * The `Cast` kernel config for the wasm backend.
 *
 * @param original The backend's own kernel, for real conversions.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { castConfig } from "./cast.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(castConfig({} as never).kernelName, "Cast");
 * ```
 */
export function castConfig(original: KernelConfig): KernelOverride {
  return {
    kernelName: "Cast",
    backendName: "wasm",
    original,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x } = inputs as { x: TensorInfo };
      const { dtype } = attrs as { dtype: DataType };
      if (dtype !== x.dtype || x.dtype === "string") {
        return callKernel(original, wasm, { x }, attrs ?? {});
      }
      wasm.incRef(x.dataId);
      return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
    },
  };
}
