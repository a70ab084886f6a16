/**
 * `Conv2DBackpropFilter` for the wasm backend, which has none: the gradient
 * of a convolution's weights.
 *
 * With OpenBLAS it is {@linkcode convFilterGrad}; else, on the engine's
 * WebAssembly SIMD kernels, {@linkcode simdConvFilterGrad}. Without either,
 * it is the wasm backend's own `Conv2D` on transposed tensors: with `x` as `[cin, h, w,
 * batch]` (cin images of batch channels) and `dy` as the filter `[oh, ow,
 * batch, cout]` dilated by the stride,
 * `dw[ky, kx, ci, co] = sum x[n, ky + s*y - pt, kx + s*x - pl, ci] * dy[n, y, x, co]`
 * is exactly that convolution's output at `[ci, ky, kx, co]`.
 *
 * @module
 */
import {
  backend_util,
  type Conv2DBackpropFilterAttrs,
  type KernelConfig,
  type TensorInfo,
} from "@tensorflow/tfjs-core";
import type { Blas } from "../blas.ts";
import { convFilterGrad, geometryOf } from "./conv_blas.ts";
import { type DnnlConvolutions, dnnlGeometryOf } from "./conv_dnnl.ts";
import { simdConvFilterGrad, simdRuns } from "./conv_simd.ts";
import type { SimdKernels } from "./simd.ts";
import {
  callKernel,
  disposeInfo,
  heapOffset,
  type KernelOverride,
  type WasmBackend,
} from "./wasm_heap.ts";

/** The backend kernels the pure wasm path is built from. */
export interface WasmConvParts {
  /** The backend's own `Conv2D`. */
  conv2d: KernelConfig;
  /** The backend's `Transpose`. */
  transpose: KernelConfig;
  /** The backend's `Slice`. */
  slice: KernelConfig;
  /** The backend's `Reverse`. */
  reverse: KernelConfig;
}

/**
 * The `Conv2DBackpropFilter` kernel of the wasm backend.
 *
 * @param blas OpenBLAS, or `null` for the pure wasm path.
 * @param parts The backend's own kernels this one is built from.
 * @param simd The engine's SIMD kernels, or `null` (then what OpenBLAS declines runs on `parts`).
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { conv2dBackpropFilterConfig } from "./conv2d_backprop_filter.ts";
 * import { assertEquals } from "../assert.ts";
 * const config = conv2dBackpropFilterConfig(null, {} as never);
 * assertEquals(config.kernelName, "Conv2DBackpropFilter");
 * ```
 */
export function conv2dBackpropFilterConfig(
  blas: Blas | null,
  parts: WasmConvParts,
  simd: SimdKernels | null = null,
): KernelOverride {
  return {
    kernelName: "Conv2DBackpropFilter",
    backendName: "wasm",
    original: undefined,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
      const { strides, pad, dataFormat, dimRoundingMode, filterShape } =
        attrs as unknown as Conv2DBackpropFilterAttrs;
      if (dataFormat !== undefined && dataFormat !== "NHWC") {
        throw new Error(`Conv2DBackpropFilter on wasm supports NHWC only, not ${dataFormat}`);
      }
      const info = backend_util.computeConv2DInfo(
        x.shape as [number, number, number, number],
        filterShape,
        strides,
        1,
        pad,
        dimRoundingMode,
      );
      const geometry = blas === null ? null : geometryOf(info);
      if (blas !== null && geometry !== null) {
        const dw = wasm.makeOutput(filterShape, "float32");
        convFilterGrad(
          wasm,
          blas,
          geometry,
          heapOffset(wasm, x),
          heapOffset(wasm, dy),
          heapOffset(wasm, dw),
        );
        return dw;
      }
      if (simd !== null && simdRuns(info) && x.dtype === "float32") {
        const dw = wasm.makeOutput(filterShape, "float32");
        simdConvFilterGrad(wasm, simd, info, {
          x: heapOffset(wasm, x),
          y: heapOffset(wasm, dy),
          w: heapOffset(wasm, dw),
        });
        return dw;
      }
      return filterGradByConv(wasm, parts, x, dy, info);
    },
  };
}

function filterGradByConv(
  wasm: WasmBackend,
  parts: WasmConvParts,
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo {
  const { top, bottom, left, right } = info.padInfo;
  const images = callKernel(parts.transpose, wasm, { x }, { perm: [3, 1, 2, 0] });
  // [cin, h, w, batch]
  const kernel = callKernel(parts.transpose, wasm, { x: dy }, { perm: [1, 2, 0, 3] });
  // [oh, ow, batch, cout]
  const full = callKernel(parts.conv2d, wasm, { x: images, filter: kernel }, {
    strides: [1, 1],
    dilations: [info.strideHeight, info.strideWidth],
    pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
    dataFormat: "NHWC",
  });
  // [cin, >= fh, >= fw, cout]
  disposeInfo(wasm, images);
  disposeInfo(wasm, kernel);
  let cropped = full;
  if (full.shape[1] !== info.filterHeight || full.shape[2] !== info.filterWidth) {
    cropped = callKernel(parts.slice, wasm, { x: full }, {
      begin: [0, 0, 0, 0],
      size: [info.inChannels, info.filterHeight, info.filterWidth, info.outChannels],
    });
    disposeInfo(wasm, full);
  }
  const dw = callKernel(parts.transpose, wasm, { x: cropped }, { perm: [1, 2, 0, 3] });
  // [fh, fw, cin, cout]
  disposeInfo(wasm, cropped);
  return dw;
}

/**
 * The `Conv2DBackpropFilter` kernel of the wasm backend on oneDNN
 * ({@linkcode DnnlConvolutions.backwardWeights}).
 *
 * @param convs oneDNN's convolutions.
 * @param fallback The kernel for what oneDNN does not run.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { conv2dBackpropFilterDnnlConfig } from "./conv2d_backprop_filter.ts";
 * import { assertEquals } from "../assert.ts";
 * const config = conv2dBackpropFilterDnnlConfig({} as never, {} as never);
 * assertEquals(config.kernelName, "Conv2DBackpropFilter");
 * ```
 */
export function conv2dBackpropFilterDnnlConfig(
  convs: DnnlConvolutions,
  fallback: KernelConfig,
): KernelOverride {
  return {
    kernelName: "Conv2DBackpropFilter",
    backendName: "wasm",
    original: undefined,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
      const { strides, pad, dataFormat, dimRoundingMode, filterShape } =
        attrs as unknown as Conv2DBackpropFilterAttrs;
      const info = backend_util.computeConv2DInfo(
        x.shape as [number, number, number, number],
        filterShape,
        strides,
        1,
        pad,
        dimRoundingMode,
        false,
        backend_util.convertConv2DDataFormat(dataFormat ?? "NHWC"),
      );
      const geometry = dnnlGeometryOf(info);
      if (geometry !== null && x.dtype === "float32") {
        const dw = wasm.makeOutput(filterShape, "float32");
        const ran = convs.backwardWeights(wasm, geometry, {
          x: heapOffset(wasm, x),
          dy: heapOffset(wasm, dy),
          dw: heapOffset(wasm, dw),
        });
        if (ran) return dw;
        disposeInfo(wasm, dw);
      }
      return callKernel(fallback, wasm, { x, dy }, attrs ?? {});
    },
  };
}
