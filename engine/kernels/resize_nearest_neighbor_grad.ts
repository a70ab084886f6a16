/**
 * `ResizeNearestNeighborGrad` for the cpu backend, whose own kernel (tfjs
 * 4.22) reads `dy` at the input's batch offset and so returns wrong gradients
 * for every image after the first of a batch (the `nearest` exercise trained
 * on cpu with batch 4 would learn from garbage), and for the wasm backend,
 * whose own kernel is correct but slow.
 *
 * Each `dy` pixel is added to the input pixel the forward pass copied it from,
 * with the forward kernel's own source-index rule.
 *
 * @module
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { heapFloats, heapOffset, type KernelOverride, type WasmBackend } from "./wasm_heap.ts";

/** Options of {@linkcode nearestSource}. */
export interface NearestSourceOptions {
  /** Input size along the axis. */
  inSize: number;
  /** Output size along the axis. */
  outSize: number;
  /** The resize's `alignCorners`. @default false */
  alignCorners?: boolean;
  /** The resize's `halfPixelCenters`. @default false */
  halfPixelCenters?: boolean;
}

/**
 * The input index the nearest-neighbour resize copies output index `index` from.
 *
 * @param index Output index along one axis.
 * @param options Sizes and the resize's flags.
 * @returns The input index.
 *
 * @example
 * ```ts
 * import { nearestSource } from "./resize_nearest_neighbor_grad.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals([0, 1, 2, 3].map((i) => nearestSource(i, { inSize: 2, outSize: 4 })), [0, 0, 1, 1]);
 * ```
 */
export function nearestSource(index: number, options: NearestSourceOptions): number {
  const { inSize, outSize } = options;
  const alignCorners = options.alignCorners ?? false;
  const halfPixelCenters = options.halfPixelCenters ?? false;
  const effectiveIn = alignCorners && outSize > 1 ? inSize - 1 : inSize;
  const effectiveOut = alignCorners && outSize > 1 ? outSize - 1 : outSize;
  const ratio = effectiveIn / effectiveOut;
  const fraction = halfPixelCenters ? ratio * (index + 0.5) : ratio * index;
  const nearest = Math.min(inSize - 1, alignCorners ? Math.round(fraction) : Math.floor(fraction));
  return halfPixelCenters ? Math.max(0, nearest) : nearest;
}

interface CpuBackendLike {
  data: { get(dataId: object): { values: Float32Array } | undefined };
  makeTensorInfo(shape: number[], dtype: "float32", values: Float32Array): TensorInfo;
}

/** Options of {@linkcode nearestGradient}. */
export interface NearestGradientOptions {
  /** The resize's input shape, `[batch, inHeight, inWidth, channels]`. */
  inShape: readonly number[];
  /** The resize's output shape, `[batch, outHeight, outWidth, channels]`. */
  outShape: readonly number[];
  /** The gradient of the output, flat. */
  dy: ArrayLike<number>;
  /** Receives the gradient of the input, flat; must be zero on entry. */
  dx: Float32Array;
  /** The resize's `alignCorners`. @default false */
  alignCorners?: boolean;
  /** The resize's `halfPixelCenters`. @default false */
  halfPixelCenters?: boolean;
}

/**
 * Adds each output pixel's gradient to the input pixel it was copied from.
 *
 * @param options Shapes, gradients and the resize's flags.
 *
 * @example
 * ```ts
 * import { nearestGradient } from "./resize_nearest_neighbor_grad.ts";
 * import { assertEquals } from "../assert.ts";
 * const dx = new Float32Array(2);
 * nearestGradient({ inShape: [2, 1, 1, 1], outShape: [2, 1, 2, 1], dy: [1, 2, 3, 4], dx });
 * assertEquals([...dx], [3, 7]);
 * ```
 */
export function nearestGradient(options: NearestGradientOptions): void {
  const { inShape, outShape, dy, dx } = options;
  const [batch, inHeight, inWidth, depth] = inShape as [number, number, number, number];
  const [, outHeight, outWidth] = outShape as [number, number, number, number];
  const flags = { alignCorners: options.alignCorners, halfPixelCenters: options.halfPixelCenters };
  const rows = Array.from(
    { length: outHeight },
    (_, row) => nearestSource(row, { inSize: inHeight, outSize: outHeight, ...flags }),
  );
  const cols = Array.from(
    { length: outWidth },
    (_, col) => nearestSource(col, { inSize: inWidth, outSize: outWidth, ...flags }),
  );
  let source = 0;
  for (let image = 0; image < batch; image++) {
    for (let row = 0; row < outHeight; row++) {
      const rowBase = (image * inHeight + rows[row]!) * inWidth;
      for (let col = 0; col < outWidth; col++) {
        const target = (rowBase + cols[col]!) * depth;
        for (let channel = 0; channel < depth; channel++) {
          dx[target + channel] = dx[target + channel]! + dy[source++]!;
        }
      }
    }
  }
}

/**
 * The kernel config to register for the cpu backend.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { resizeNearestNeighborGradCpuConfig } from "./resize_nearest_neighbor_grad.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("cpu");
 * tf.unregisterKernel("ResizeNearestNeighborGrad", "cpu");
 * tf.registerKernel(resizeNearestNeighborGradCpuConfig);
 * const grad = tf.grad((x: tf.Tensor) =>
 *   tf.sum(tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [2, 2]))
 * );
 * assertEquals(Array.from(grad(tf.zeros([2, 1, 1, 1])).dataSync()), [4, 4]);
 * ```
 */
export const resizeNearestNeighborGradCpuConfig: KernelConfig = {
  kernelName: "ResizeNearestNeighborGrad",
  backendName: "cpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { images, dy } = inputs as { images: TensorInfo; dy: TensorInfo };
    const cpu = backend as unknown as CpuBackendLike;
    const dx = new Float32Array(images.shape.reduce((a, b) => a * b, 1));
    nearestGradient({
      inShape: images.shape,
      outShape: dy.shape,
      dy: cpu.data.get(dy.dataId)!.values,
      dx,
      ...(attrs as { alignCorners?: boolean; halfPixelCenters?: boolean }),
    });
    return cpu.makeTensorInfo(images.shape, "float32", dx);
  },
};

/**
 * The same kernel for the wasm backend, whose own takes about 5 ms for the
 * `nearest` exercise's `[4, 64, 64, 32]` gradient; this one about 1 ms.
 *
 * @example
 * ```ts
 * import { resizeNearestNeighborGradWasmConfig } from "./resize_nearest_neighbor_grad.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(resizeNearestNeighborGradWasmConfig.backendName, "wasm");
 * ```
 */
export const resizeNearestNeighborGradWasmConfig: KernelOverride = {
  kernelName: "ResizeNearestNeighborGrad",
  backendName: "wasm",
  original: undefined,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const wasm = backend as WasmBackend;
    const { images, dy } = inputs as { images: TensorInfo; dy: TensorInfo };
    const size = images.shape.reduce((a, b) => a * b, 1);
    const dx = wasm.makeOutput(images.shape, "float32");
    const heap = heapFloats(wasm);
    const dxView = heap.subarray(heapOffset(wasm, dx) / 4, heapOffset(wasm, dx) / 4 + size);
    dxView.fill(0);
    const dyStart = heapOffset(wasm, dy) / 4;
    nearestGradient({
      inShape: images.shape,
      outShape: dy.shape,
      dy: heap.subarray(dyStart, dyStart + dy.shape.reduce((a, b) => a * b, 1)),
      dx: dxView,
      ...(attrs as { alignCorners?: boolean; halfPixelCenters?: boolean }),
    });
    return dx;
  },
};
