/**
 * SegNet's pooling mask as one kernel: for a 2x2, stride-2 max pooling of an
 * NHWC input, the float mask of the input's shape with 1 at the first
 * maximum of each window (row-major order) and 0 elsewhere. `lib/custom_layers.js`
 * takes it where the active backend has it, and otherwise computes the same
 * mask with about ten TensorFlow.js operations (two max-poolings, spreads by
 * broadcast multiplies, comparisons and casts: about 60 ms of a SegNet step
 * at batch 16 on the wasm backend).
 *
 * On oneDNN the mask is the gradient of the max pooling for an upstream
 * gradient of ones: `MaxPoolGrad` (`pool_dnnl.ts`) runs oneDNN's forward
 * training pass, which records the winning cell of each window, then its
 * backward pass, which writes each window's upstream value (1) to that cell
 * and 0 to the others. Its tie rule (the first maximum) is PyTorch's and the
 * cpu backend's; see `pool_dnnl.ts` for the windows with no value above
 * -3.4e38, where the rules part.
 *
 * The mask is a constant of the network: its gradient is zero, and the
 * layers never put it on the gradient's path (the unpooling reads it as a
 * constant), so the registered gradient exists only for a user who
 * differentiates through the mask itself.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { GradConfig, KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { maxPoolBackprop } from "./max_pool_grad.ts";
import { type DnnlMaxPoolGrad, dnnlPoolGeometryOf } from "./pool_dnnl.ts";
import { disposeInfo, heapFloats, heapOffset, type WasmBackend } from "./wasm_heap.ts";

/**
 * The kernel: input `x` (float32 `[batch, height, width, channels]`, height
 * and width even); output the mask, float32 of `x`'s shape. The name is
 * spelled out in `lib/custom_layers.js`, which looks it up.
 */
export const MAX_POOL_MASK = "SegmentMaxPoolMask";

/**
 * {@linkcode MAX_POOL_MASK} for the wasm backend: oneDNN's max pooling
 * forward and backward passes for an upstream gradient of ones; the same
 * gradient by the engine's `MaxPoolGrad` loop (`maxPoolBackprop`) for a shape
 * oneDNN turns down.
 *
 * @param pools oneDNN's max-pooling gradients.
 * @returns The kernel config to register.
 * @throws {Error} From the kernel, for an input that is not float32 NHWC
 *   with an even height and width.
 *
 * @example
 * ```ts
 * import { maxPoolMaskDnnlConfig } from "./max_pool_mask.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(maxPoolMaskDnnlConfig({} as never).kernelName, "SegmentMaxPoolMask");
 * ```
 */
export function maxPoolMaskDnnlConfig(pools: DnnlMaxPoolGrad): KernelConfig {
  return {
    kernelName: MAX_POOL_MASK,
    backendName: "wasm",
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as WasmBackend;
      const { x } = inputs as { x: TensorInfo };
      const [batch, height, width, channels] = x.shape as number[];
      if (
        x.dtype !== "float32" || x.shape.length !== 4 || height! % 2 !== 0 || width! % 2 !== 0
      ) {
        throw new Error(
          `${MAX_POOL_MASK} takes a float32 [batch, height, width, channels] input with an even ` +
            `height and width, got ${x.dtype} [${x.shape}]`,
        );
      }
      const mask = wasm.makeOutput(x.shape, "float32");
      const pooledShape = [batch!, height! / 2, width! / 2, channels!];
      const ones = wasm.makeOutput(pooledShape, "float32");
      // Offsets after both allocations (an allocation may move the heap).
      const onesAt = heapOffset(wasm, ones) / 4;
      heapFloats(wasm).fill(1, onesAt, onesAt + batch! * (height! / 2) * (width! / 2) * channels!);
      const info = tf.backend_util.computePool2DInfo(
        x.shape as [number, number, number, number],
        2,
        2,
        1,
        "valid",
      );
      const geometry = dnnlPoolGeometryOf(info);
      const ran = geometry !== null && pools.run(wasm, geometry, {
        x: heapOffset(wasm, x),
        dy: heapOffset(wasm, ones),
        dx: heapOffset(wasm, mask),
      });
      if (!ran) {
        // The engine's own MaxPoolGrad loop (first maximum), for shapes oneDNN turns down.
        const heap = heapFloats(wasm);
        const view = (tensor: TensorInfo) => {
          const start = heapOffset(wasm, tensor) / 4;
          return heap.subarray(start, start + tensor.shape.reduce((a, b) => a * b, 1));
        };
        const dx = view(mask);
        dx.fill(0);
        maxPoolBackprop({ info, x: view(x), dy: view(ones), dx });
      }
      disposeInfo(wasm, ones);
      return mask;
    },
  };
}

/**
 * The gradient of {@linkcode MAX_POOL_MASK}: zero (the mask is piecewise
 * constant in `x`).
 */
export const maxPoolMaskGrad: GradConfig = {
  kernelName: MAX_POOL_MASK,
  inputsToSave: ["x"],
  gradFunc: (_dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
    const [x] = saved as [tf.Tensor];
    return { x: () => tf.zerosLike(x) };
  },
};
