/**
 * `Conv2DBackpropInput` for the wasm backend: the gradient of a
 * convolution's input, which is also the transposed convolution.
 *
 * With OpenBLAS it is {@linkcode convInputGrad}; else, on the engine's
 * WebAssembly SIMD kernels, {@linkcode simdConvInputGrad}. Without either, a stride-1
 * gradient is the wasm backend's own (fast) `Conv2D` of `dy` with the
 * flipped, in/out-swapped filter and padding `kernel - 1 - pad`; other
 * strides use the backend's own `Conv2DBackpropInput`.
 *
 * @module
 */
import {
  backend_util,
  type Conv2DBackpropInputAttrs,
  type KernelConfig,
  type TensorInfo,
} from "@tensorflow/tfjs-core";
import type { Blas } from "../blas.ts";
import { convInputGrad, geometryOf } from "./conv_blas.ts";
import type { WasmConvParts } from "./conv2d_backprop_filter.ts";
import { type DnnlConvolutions, dnnlGeometryOf } from "./conv_dnnl.ts";
import { simdConvInputGrad, simdRuns } from "./conv_simd.ts";
import type { SimdKernels } from "./simd.ts";
import {
  callKernel,
  disposeInfo,
  heapOffset,
  type KernelOverride,
  type WasmBackend,
} from "./wasm_heap.ts";

/**
 * The `Conv2DBackpropInput` kernel of the wasm backend.
 *
 * @param blas OpenBLAS, or `null` for the pure wasm path.
 * @param parts The backend's own kernels this one is built from.
 * @param original The backend's own `Conv2DBackpropInput`, for strides above 1 without BLAS.
 * @param simd The engine's SIMD kernels, or `null` (then what OpenBLAS declines runs on `parts`).
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { conv2dBackpropInputConfig } from "./conv2d_backprop_input.ts";
 * import { assertEquals } from "../assert.ts";
 * const config = conv2dBackpropInputConfig(null, {} as never, {} as never);
 * assertEquals(config.kernelName, "Conv2DBackpropInput");
 * ```
 */
export function conv2dBackpropInputConfig(
  blas: Blas | null,
  parts: WasmConvParts,
  original: KernelConfig,
  simd: SimdKernels | null = null,
): KernelOverride {
  return {
    kernelName: "Conv2DBackpropInput",
    backendName: "wasm",
    original,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
      const { strides, pad, dataFormat, dimRoundingMode, inputShape } =
        attrs as unknown as Conv2DBackpropInputAttrs;
      const info = backend_util.computeConv2DInfo(
        inputShape,
        filter.shape as [number, number, number, number],
        strides,
        1,
        pad,
        dimRoundingMode,
        false,
        backend_util.convertConv2DDataFormat(dataFormat),
      );
      const geometry = geometryOf(info);
      if (blas !== null && geometry !== null && dy.dtype === "float32") {
        const dx = wasm.makeOutput(inputShape, "float32");
        convInputGrad(
          wasm,
          blas,
          geometry,
          heapOffset(wasm, dy),
          heapOffset(wasm, filter),
          heapOffset(wasm, dx),
        );
        return dx;
      }
      if (simd !== null && simdRuns(info) && dy.dtype === "float32") {
        const dx = wasm.makeOutput(inputShape, "float32");
        simdConvInputGrad(wasm, simd, info, {
          x: heapOffset(wasm, dx),
          y: heapOffset(wasm, dy),
          w: heapOffset(wasm, filter),
        });
        return dx;
      }
      if (geometry !== null && geometry.stride === 1) {
        return inputGradByConv(wasm, parts, dy, filter, info);
      }
      return callKernel(original, wasm, { dy, filter }, attrs ?? {});
    },
  };
}

function inputGradByConv(
  wasm: WasmBackend,
  parts: WasmConvParts,
  dy: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo {
  const { top, bottom, left, right } = info.padInfo;
  const flipped = callKernel(parts.reverse, wasm, { x: filter }, { dims: [0, 1] });
  const swapped = callKernel(parts.transpose, wasm, { x: flipped }, { perm: [0, 1, 3, 2] });
  // [fh, fw, cout, cin]
  disposeInfo(wasm, flipped);
  const fh = info.filterHeight - 1;
  const fw = info.filterWidth - 1;
  const dx = callKernel(parts.conv2d, wasm, { x: dy, filter: swapped }, {
    strides: [1, 1],
    dilations: [1, 1],
    pad: [[0, 0], [fh - top, fh - bottom], [fw - left, fw - right], [0, 0]],
    dataFormat: "NHWC",
  });
  // [batch, h, w, cin]
  disposeInfo(wasm, swapped);
  return dx;
}

/**
 * The `Conv2DBackpropInput` kernel of the wasm backend on oneDNN
 * ({@linkcode DnnlConvolutions.backwardData}).
 *
 * @param convs oneDNN's convolutions.
 * @param fallback The kernel for what oneDNN does not run.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { conv2dBackpropInputDnnlConfig } from "./conv2d_backprop_input.ts";
 * import { assertEquals } from "../assert.ts";
 * const config = conv2dBackpropInputDnnlConfig({} as never, {} as never);
 * assertEquals(config.kernelName, "Conv2DBackpropInput");
 * ```
 */
export function conv2dBackpropInputDnnlConfig(
  convs: DnnlConvolutions,
  fallback: KernelConfig,
): KernelOverride {
  return {
    kernelName: "Conv2DBackpropInput",
    backendName: "wasm",
    original: (fallback as KernelOverride).original ?? fallback,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
      const { strides, pad, dataFormat, dimRoundingMode, inputShape } =
        attrs as unknown as Conv2DBackpropInputAttrs;
      const info = backend_util.computeConv2DInfo(
        inputShape,
        filter.shape as [number, number, number, number],
        strides,
        1,
        pad,
        dimRoundingMode,
        false,
        backend_util.convertConv2DDataFormat(dataFormat),
      );
      const geometry = dnnlGeometryOf(info);
      if (geometry !== null && dy.dtype === "float32") {
        const dx = wasm.makeOutput(inputShape, "float32");
        const ran = convs.backwardData(wasm, geometry, {
          dy: heapOffset(wasm, dy),
          filter: heapOffset(wasm, filter),
          dx: heapOffset(wasm, dx),
        });
        if (ran) return dx;
        disposeInfo(wasm, dx);
      }
      return callKernel(fallback, wasm, { dy, filter }, attrs ?? {});
    },
  };
}
