/**
 * `Conv2D` for the wasm backend: on oneDNN (any NHWC convolution), else on
 * OpenBLAS (stride 1 with any padding, and kernel-equals-stride convolutions,
 * as matrix products on both cores), else on the engine's WebAssembly SIMD
 * kernels (any NHWC float convolution); the rest goes to the backend's own
 * kernel.
 *
 * @module
 */
import { backend_util, type KernelConfig, type TensorInfo } from "@tensorflow/tfjs-core";
import type { Conv2DAttrs } from "@tensorflow/tfjs-core";
import type { Blas } from "../blas.ts";
import { convForward, geometryOf } from "./conv_blas.ts";
import { type DnnlConvolutions, dnnlGeometryOf } from "./conv_dnnl.ts";
import { simdConvForward, simdRuns } from "./conv_simd.ts";
import type { SimdKernels } from "./simd.ts";
import {
  callKernel,
  disposeInfo,
  heapOffset,
  type KernelOverride,
  type WasmBackend,
} from "./wasm_heap.ts";

/**
 * The geometry of a forward convolution of `x` by `filter`, as tfjs-core
 * computes it for its own kernels (`backend_util.computeConv2DInfo`).
 *
 * @param x Shape `[batch, height, width, inChannels]` (or NCHW per `dataFormat`).
 * @param filter Shape `[filterHeight, filterWidth, inChannels, outChannels]`.
 * @param attrs The kernel's strides, padding, data format, dilations and rounding.
 * @returns The convolution info: output shape, padding, strides, sizes.
 *
 * @example
 * ```ts
 * import { forwardConvInfo } from "./conv2d.ts";
 * import { assertEquals } from "../assert.ts";
 * const x = { shape: [1, 5, 5, 2] }, filter = { shape: [3, 3, 2, 4] };
 * const attrs = { strides: 2, pad: "same", dataFormat: "NHWC", dilations: 1 } as const;
 * assertEquals(forwardConvInfo(x as never, filter as never, attrs).outShape, [1, 3, 3, 4]);
 * ```
 */
export function forwardConvInfo(
  x: TensorInfo,
  filter: TensorInfo,
  attrs: Pick<Conv2DAttrs, "strides" | "pad" | "dataFormat" | "dilations" | "dimRoundingMode">,
): backend_util.Conv2DInfo {
  return backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    attrs.strides,
    attrs.dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    backend_util.convertConv2DDataFormat(attrs.dataFormat),
  );
}

/**
 * The `Conv2D` kernel of the wasm backend, computed with BLAS.
 *
 * @param blas OpenBLAS.
 * @param original The backend's own `Conv2D`, used for the cases BLAS does not handle.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { conv2dBlasConfig } from "./conv2d.ts";
 * import { assertEquals } from "../assert.ts";
 * import type { KernelConfig } from "@tensorflow/tfjs-core";
 * const original = { kernelName: "Conv2D", backendName: "wasm", kernelFunc: () => [] };
 * const config = conv2dBlasConfig({} as never, original as unknown as KernelConfig);
 * assertEquals(config.kernelName, "Conv2D");
 * ```
 */
export function conv2dBlasConfig(blas: Blas, original: KernelConfig): KernelOverride {
  return {
    kernelName: "Conv2D",
    backendName: "wasm",
    // The root kernel, when the fallback is itself an override (the SIMD one).
    original: (original as KernelOverride).original ?? original,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
      const info = forwardConvInfo(x, filter, attrs as unknown as Conv2DAttrs);
      const geometry = geometryOf(info);
      if (geometry === null || x.dtype !== "float32") {
        return callKernel(original, wasm, { x, filter }, attrs ?? {});
      }
      const out = wasm.makeOutput(info.outShape, "float32");
      convForward(
        wasm,
        blas,
        geometry,
        heapOffset(wasm, x),
        heapOffset(wasm, filter),
        heapOffset(wasm, out),
      );
      return out;
    },
  };
}

/**
 * The `Conv2D` kernel of the wasm backend on oneDNN ({@linkcode DnnlConvolutions.forward}).
 *
 * @param convs oneDNN's convolutions.
 * @param fallback The kernel for what oneDNN does not run (the OpenBLAS one, or the backend's own).
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { conv2dDnnlConfig } from "./conv2d.ts";
 * import { assertEquals } from "../assert.ts";
 * import type { KernelConfig } from "@tensorflow/tfjs-core";
 * const fallback = { kernelName: "Conv2D", backendName: "wasm", kernelFunc: () => [] };
 * const config = conv2dDnnlConfig({} as never, fallback as unknown as KernelConfig);
 * assertEquals(config.kernelName, "Conv2D");
 * ```
 */
export function conv2dDnnlConfig(
  convs: DnnlConvolutions,
  fallback: KernelConfig,
): KernelOverride {
  return {
    kernelName: "Conv2D",
    backendName: "wasm",
    original: (fallback as KernelOverride).original ?? fallback,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
      const info = forwardConvInfo(x, filter, attrs as unknown as Conv2DAttrs);
      const geometry = dnnlGeometryOf(info);
      if (geometry !== null && x.dtype === "float32") {
        const out = wasm.makeOutput(info.outShape, "float32");
        const ran = convs.forward(wasm, geometry, {
          x: heapOffset(wasm, x),
          filter: heapOffset(wasm, filter),
          bias: null,
          y: heapOffset(wasm, out),
        }, { name: "linear", alpha: 0 });
        if (ran) return out;
        disposeInfo(wasm, out);
      }
      return callKernel(fallback, wasm, { x, filter }, attrs ?? {});
    },
  };
}

/**
 * The `Conv2D` kernel of the wasm backend on the engine's WebAssembly SIMD
 * kernels ({@linkcode simdConvForward}): any NHWC float convolution.
 *
 * @param simd The SIMD kernels on the backend's heap.
 * @param original The backend's own `Conv2D`, for other layouts and types.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { conv2dSimdConfig } from "./conv2d.ts";
 * import { assertEquals } from "../assert.ts";
 * import type { KernelConfig } from "@tensorflow/tfjs-core";
 * const original = { kernelName: "Conv2D", backendName: "wasm", kernelFunc: () => [] };
 * const config = conv2dSimdConfig({} as never, original as unknown as KernelConfig);
 * assertEquals(config.kernelName, "Conv2D");
 * ```
 */
export function conv2dSimdConfig(simd: SimdKernels, original: KernelConfig): KernelOverride {
  return {
    kernelName: "Conv2D",
    backendName: "wasm",
    original,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x, filter } = inputs as { x: TensorInfo; filter: TensorInfo };
      const info = forwardConvInfo(x, filter, attrs as unknown as Conv2DAttrs);
      if (!simdRuns(info) || x.dtype !== "float32") {
        return callKernel(original, wasm, { x, filter }, attrs ?? {});
      }
      const out = wasm.makeOutput(info.outShape, "float32");
      simdConvForward(
        wasm,
        simd,
        info,
        {
          x: heapOffset(wasm, x),
          w: heapOffset(wasm, filter),
          y: heapOffset(wasm, out),
        },
        null,
        false,
      );
      return out;
    },
  };
}
