/**
 * The gradient of `Relu` as one kernel, `dx = x > 0 ? dy : 0`, where the
 * active backend has it (the wasm backend with oneDNN, or on the SIMD kernels), instead of
 * TensorFlow.js's three (`Step`, `Cast`, `Multiply`: two passes over the
 * activations and a temporary the size of the layer). Every conv block of
 * every exercise has a ReLU; on bin's six 4x64x64x32 layers the three kernels
 * took 0.26 ms per layer and step, this one on oneDNN's element-wise backward
 * (two threads, AVX-512) about a third of that.
 *
 * The gradient registered for `Relu` keeps TensorFlow.js's formula on every
 * backend without the kernel, so registering it changes nothing there. Both
 * give exactly 0 at `x = 0`, as PyTorch does.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { GradConfig, KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { DNNL } from "../dnnl.ts";
import { type DnnlEltwise, MIN_DNNL_ELTWISE_ELEMENTS } from "./eltwise_dnnl.ts";
import type { SimdKernels } from "./simd.ts";
import { heapFloats, heapOffset, type WasmBackend } from "./wasm_heap.ts";

/** The kernel: inputs `dy` and `x` (the ReLU's input), output `dx`, all float32 of one shape. */
export const RELU_GRAD = "SegmentReluGrad";

/**
 * The gradient of `Relu`: {@linkcode RELU_GRAD} where the active backend has
 * it, else TensorFlow.js's own `dy * step(x)`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { reluGrad } from "./relu_grad.ts";
 * import { assertEquals } from "../assert.ts";
 * tf.registerGradient(reluGrad);
 * await tf.setBackend("cpu");
 * const dx = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.relu(x), 3)))(tf.tensor1d([-1, 0, 2]));
 * assertEquals([...dx.dataSync()], [0, 0, 3]);
 * ```
 */
export const reluGrad: GradConfig = {
  kernelName: "Relu",
  inputsToSave: ["x"],
  gradFunc: (dy, saved) => {
    const [x] = saved as [tf.Tensor];
    const gradient = dy as tf.Tensor;
    return {
      x: () =>
        x.dtype === "float32" && tf.getKernel(RELU_GRAD, tf.getBackend()) !== undefined
          ? tf.engine().runKernel(RELU_GRAD, { dy: gradient, x }) as tf.Tensor
          : tf.mul(gradient, tf.cast(tf.step(x), "float32")),
    };
  },
};

/**
 * {@linkcode RELU_GRAD} for the wasm backend: oneDNN from
 * {@linkcode MIN_DNNL_ELTWISE_ELEMENTS} elements, else the SIMD kernel
 * (`relu_grad` in simd/kernels.c), else a loop over the heap.
 *
 * @param eltwise oneDNN's element-wise primitives, or `null` (pure wasm).
 * @param simd The engine's SIMD kernels, or `null`.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { reluGradWasmConfig } from "./relu_grad.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(reluGradWasmConfig({} as never).kernelName, "SegmentReluGrad");
 * ```
 */
export function reluGradWasmConfig(
  eltwise: DnnlEltwise | null,
  simd: SimdKernels | null = null,
): KernelConfig {
  return {
    kernelName: RELU_GRAD,
    backendName: "wasm",
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as WasmBackend;
      const { dy, x } = inputs as { dy: TensorInfo; x: TensorInfo };
      const length = x.shape.reduce((a, b) => a * b, 1);
      const dx = wasm.makeOutput(x.shape, "float32");
      const offsets = {
        dy: heapOffset(wasm, dy),
        x: heapOffset(wasm, x),
        dx: heapOffset(wasm, dx),
      };
      if (
        eltwise !== null && length >= MIN_DNNL_ELTWISE_ELEMENTS &&
        eltwise.backward(wasm, DNNL.eltwiseRelu, length, offsets)
      ) return dx;
      if (simd !== null) {
        simd.exports.relu_grad(offsets.dy, offsets.x, offsets.dx, length);
        return dx;
      }
      const heap = heapFloats(wasm);
      const [dyStart, xStart, dxStart] = [offsets.dy / 4, offsets.x / 4, offsets.dx / 4];
      for (let i = 0; i < length; i++) {
        heap[dxStart + i] = heap[xStart + i]! > 0 ? heap[dyStart + i]! : 0;
      }
      return dx;
    },
  };
}
