/**
 * `FusedConv2D` (convolution + bias + activation) for the wasm backend, on
 * oneDNN (bias and activation fused into the convolution), on OpenBLAS (the
 * convolution is {@linkcode convForward}; bias and activation are applied as
 * its rows are written) or on the engine's WebAssembly SIMD kernels (bias and
 * ReLU applied as each output row is finished). Unsupported cases (PReLU,
 * other activations on SIMD, and on OpenBLAS dilation and other strides) go
 * to the backend's own kernel.
 *
 * @module
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import type { FusedConv2DAttrs } from "@tensorflow/tfjs-core";
import type { Blas } from "../blas.ts";
import { convForward, geometryOf } from "./conv_blas.ts";
import { type DnnlConvolutions, dnnlGeometryOf } from "./conv_dnnl.ts";
import { forwardConvInfo } from "./conv2d.ts";
import { simdConvForward, simdRuns } from "./conv_simd.ts";
import type { SimdKernels } from "./simd.ts";
import {
  callKernel,
  disposeInfo,
  heapOffset,
  type KernelOverride,
  type WasmBackend,
} from "./wasm_heap.ts";

const ACTIVATIONS = ["linear", "relu", "relu6", "sigmoid", "leakyrelu", "elu"];

/**
 * The `FusedConv2D` kernel of the wasm backend, computed with BLAS.
 *
 * @param blas OpenBLAS.
 * @param original The backend's own `FusedConv2D`, used for the cases BLAS does not handle.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { fusedConv2dBlasConfig } from "./fused_conv2d.ts";
 * import { assertEquals } from "../assert.ts";
 * import type { KernelConfig } from "@tensorflow/tfjs-core";
 * const original = { kernelName: "FusedConv2D", backendName: "wasm", kernelFunc: () => [] };
 * const config = fusedConv2dBlasConfig({} as never, original as unknown as KernelConfig);
 * assertEquals(config.kernelName, "FusedConv2D");
 * ```
 */
export function fusedConv2dBlasConfig(blas: Blas, original: KernelConfig): KernelOverride {
  return {
    kernelName: "FusedConv2D",
    backendName: "wasm",
    // The root kernel, when the fallback is itself an override (the SIMD one).
    original: (original as KernelOverride).original ?? original,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x, filter, bias, preluActivationWeights } = inputs as Record<
        string,
        TensorInfo | undefined
      >;
      const fusedAttrs = attrs as unknown as FusedConv2DAttrs;
      const { activation } = fusedAttrs;
      const info = forwardConvInfo(x!, filter!, fusedAttrs);
      const geometry = geometryOf(info);
      const biasOk = bias == null ||
        (bias.shape.length === 1 && bias.shape[0] === info.outChannels);
      if (
        geometry === null || x!.dtype !== "float32" || preluActivationWeights != null ||
        !ACTIVATIONS.includes(activation) || !biasOk
      ) {
        return callKernel(original, wasm, inputs as Record<string, TensorInfo>, attrs ?? {});
      }
      const out = wasm.makeOutput(info.outShape, "float32");
      convForward(
        wasm,
        blas,
        geometry,
        heapOffset(wasm, x!),
        heapOffset(wasm, filter!),
        heapOffset(wasm, out),
        {
          biasOffset: bias == null ? null : heapOffset(wasm, bias),
          activation,
          alpha: fusedAttrs.leakyreluAlpha ?? 0,
        },
      );
      return out;
    },
  };
}

/**
 * The `FusedConv2D` kernel of the wasm backend on oneDNN: bias and activation
 * are applied by the convolution as it writes its output.
 *
 * @param convs oneDNN's convolutions.
 * @param fallback The kernel for what oneDNN does not run (PReLU, a broadcast bias, other types).
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { fusedConv2dDnnlConfig } from "./fused_conv2d.ts";
 * import { assertEquals } from "../assert.ts";
 * import type { KernelConfig } from "@tensorflow/tfjs-core";
 * const fallback = { kernelName: "FusedConv2D", backendName: "wasm", kernelFunc: () => [] };
 * const config = fusedConv2dDnnlConfig({} as never, fallback as unknown as KernelConfig);
 * assertEquals(config.kernelName, "FusedConv2D");
 * ```
 */
export function fusedConv2dDnnlConfig(
  convs: DnnlConvolutions,
  fallback: KernelConfig,
): KernelOverride {
  return {
    kernelName: "FusedConv2D",
    backendName: "wasm",
    original: (fallback as KernelOverride).original ?? fallback,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x, filter, bias, preluActivationWeights } = inputs as Record<
        string,
        TensorInfo | undefined
      >;
      const fusedAttrs = attrs as unknown as FusedConv2DAttrs;
      const { activation } = fusedAttrs;
      const info = forwardConvInfo(x!, filter!, fusedAttrs);
      const geometry = dnnlGeometryOf(info);
      const biasOk = bias == null ||
        (bias.shape.length === 1 && bias.shape[0] === info.outChannels &&
          bias.dtype === "float32");
      if (
        geometry !== null && x!.dtype === "float32" && preluActivationWeights == null && biasOk
      ) {
        const out = wasm.makeOutput(info.outShape, "float32");
        const ran = convs.forward(wasm, geometry, {
          x: heapOffset(wasm, x!),
          filter: heapOffset(wasm, filter!),
          bias: bias == null ? null : heapOffset(wasm, bias),
          y: heapOffset(wasm, out),
        }, { name: activation, alpha: fusedAttrs.leakyreluAlpha ?? 0 });
        if (ran) return out;
        disposeInfo(wasm, out);
      }
      return callKernel(fallback, wasm, inputs as Record<string, TensorInfo>, attrs ?? {});
    },
  };
}

/**
 * The `FusedConv2D` kernel of the wasm backend on the engine's WebAssembly
 * SIMD kernels ({@linkcode simdConvForward}): NHWC float convolutions with no
 * activation or a ReLU, and a bias per output channel or none.
 *
 * @param simd The SIMD kernels on the backend's heap.
 * @param fallback The kernel for the rest (other activations, PReLU, a broadcast bias).
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { fusedConv2dSimdConfig } from "./fused_conv2d.ts";
 * import { assertEquals } from "../assert.ts";
 * import type { KernelConfig } from "@tensorflow/tfjs-core";
 * const fallback = { kernelName: "FusedConv2D", backendName: "wasm", kernelFunc: () => [] };
 * const config = fusedConv2dSimdConfig({} as never, fallback as unknown as KernelConfig);
 * assertEquals(config.kernelName, "FusedConv2D");
 * ```
 */
export function fusedConv2dSimdConfig(simd: SimdKernels, fallback: KernelConfig): KernelOverride {
  return {
    kernelName: "FusedConv2D",
    backendName: "wasm",
    original: (fallback as KernelOverride).original ?? fallback,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x, filter, bias, preluActivationWeights } = inputs as Record<
        string,
        TensorInfo | undefined
      >;
      const fusedAttrs = attrs as unknown as FusedConv2DAttrs;
      const { activation } = fusedAttrs;
      const info = forwardConvInfo(x!, filter!, fusedAttrs);
      const biasOk = bias == null ||
        (bias.shape.length === 1 && bias.shape[0] === info.outChannels &&
          bias.dtype === "float32");
      if (
        !simdRuns(info) || x!.dtype !== "float32" || preluActivationWeights != null || !biasOk ||
        (activation !== "linear" && activation !== "relu")
      ) {
        return callKernel(fallback, wasm, inputs as Record<string, TensorInfo>, attrs ?? {});
      }
      const out = wasm.makeOutput(info.outShape, "float32");
      simdConvForward(
        wasm,
        simd,
        info,
        { x: heapOffset(wasm, x!), w: heapOffset(wasm, filter!), y: heapOffset(wasm, out) },
        bias == null ? null : heapOffset(wasm, bias),
        activation === "relu",
      );
      return out;
    },
  };
}
