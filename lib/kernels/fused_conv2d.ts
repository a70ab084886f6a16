/**
 * `FusedConv2D` (convolution + bias + activation) for the wasm backend on
 * OpenBLAS. The convolution is {@linkcode convForward}; bias and activation
 * are one pass over the output. Unsupported cases (PReLU, dilation, other
 * strides) go to the backend's own kernel.
 *
 * @module
 */
import { backend_util, type KernelConfig, type TensorInfo } from "@tensorflow/tfjs-core";
import type { FusedConv2DAttrs } from "@tensorflow/tfjs-core";
import type { Blas } from "../blas.ts";
import { convForward, geometryOf } from "./conv_blas.ts";
import {
  callKernel,
  heapFloats,
  heapOffset,
  type KernelOverride,
  type WasmBackend,
} from "./wasm_heap.ts";

const ACTIVATIONS = ["linear", "relu", "relu6", "sigmoid", "leakyrelu", "elu"];

/**
 * Adds a bias per channel and applies an activation, in place.
 *
 * @param data The output, channels last.
 * @param bias One value per channel, or `null`.
 * @param activation A name from tfjs's fusable activations (not `prelu`).
 * @param alpha Slope of `leakyrelu`.
 *
 * @example
 * ```ts
 * import { biasActivation } from "./fused_conv2d.ts";
 * import { assertEquals } from "../assert.ts";
 * const data = new Float32Array([-1, 1, -3, 3]);
 * biasActivation(data, new Float32Array([0, 1]), "relu", 0);
 * assertEquals([...data], [0, 2, 0, 4]);
 * ```
 */
export function biasActivation(
  data: Float32Array,
  bias: Float32Array | null,
  activation: string,
  alpha: number,
): void {
  const channels = bias === null ? 1 : bias.length;
  const length = data.length;
  if (bias !== null) {
    for (let start = 0; start < length; start += channels) {
      for (let channel = 0; channel < channels; channel++) {
        data[start + channel] = data[start + channel]! + bias[channel]!;
      }
    }
  }
  switch (activation) {
    case "relu":
      for (let i = 0; i < length; i++) if (!(data[i]! > 0)) data[i] = 0;
      break;
    case "relu6":
      for (let i = 0; i < length; i++) data[i] = Math.min(Math.max(data[i]!, 0), 6);
      break;
    case "sigmoid":
      for (let i = 0; i < length; i++) data[i] = 1 / (1 + Math.exp(-data[i]!));
      break;
    case "leakyrelu":
      for (let i = 0; i < length; i++) if (data[i]! < 0) data[i] = data[i]! * alpha;
      break;
    case "elu":
      for (let i = 0; i < length; i++) if (data[i]! < 0) data[i] = Math.exp(data[i]!) - 1;
      break;
  }
}

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
    original,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x, filter, bias, preluActivationWeights } = inputs as Record<
        string,
        TensorInfo | undefined
      >;
      const fusedAttrs = attrs as unknown as FusedConv2DAttrs;
      const { strides, pad, dataFormat, dilations, dimRoundingMode, activation } = fusedAttrs;
      const info = backend_util.computeConv2DInfo(
        x!.shape as [number, number, number, number],
        filter!.shape as [number, number, number, number],
        strides,
        dilations,
        pad,
        dimRoundingMode,
        false,
        backend_util.convertConv2DDataFormat(dataFormat),
      );
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
      const outOffset = heapOffset(wasm, out);
      convForward(wasm, blas, geometry, heapOffset(wasm, x!), heapOffset(wasm, filter!), outOffset);
      const heap = heapFloats(wasm);
      const size = info.outShape.reduce((a, b) => a * b, 1);
      const biasView = bias == null
        ? null
        : heap.subarray(heapOffset(wasm, bias) / 4, heapOffset(wasm, bias) / 4 + info.outChannels);
      biasActivation(
        heap.subarray(outOffset / 4, outOffset / 4 + size),
        biasView,
        activation,
        fusedAttrs.leakyreluAlpha ?? 0,
      );
      return out;
    },
  };
}
