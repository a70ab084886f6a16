/**
 * `MaxPoolGrad` for the wasm backend. The backend's own kernel (tfjs 4.22)
 * drops the gradient of every window whose values are all negative, which is
 * most windows after a batch norm, so the pooling networks would not train.
 *
 * Each window's gradient goes to its first maximum in row-major order, as on
 * the cpu backend and in PyTorch; padding cells never win.
 *
 * @module
 */
import { backend_util, type MaxPoolGradAttrs, type TensorInfo } from "@tensorflow/tfjs-core";
import { heapFloats, heapOffset, type KernelOverride, type WasmBackend } from "./wasm_heap.ts";

/** Options of {@linkcode maxPoolBackprop}. */
export interface MaxPoolBackpropOptions {
  /** The pooling's geometry. */
  info: backend_util.Conv2DInfo;
  /** The pooled input, `[batch, height, width, channels]`, flat. */
  x: Float32Array;
  /** The gradient of the pooled output, flat. */
  dy: Float32Array;
  /** The result, flat, the input's size; must be zero on entry. */
  dx: Float32Array;
}

/**
 * Adds each window's gradient to the first maximum of the window.
 *
 * @param options Geometry, input, output gradient and result.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { maxPoolBackprop } from "./max_pool_grad.ts";
 * import { assertEquals } from "../assert.ts";
 * const info = tf.backend_util.computePool2DInfo([1, 2, 2, 1], 2, 2, 1, "valid");
 * const dx = new Float32Array(4);
 * maxPoolBackprop({ info, x: new Float32Array([-3, -1, -1, -2]), dy: new Float32Array([5]), dx });
 * assertEquals([...dx], [0, 5, 0, 0]);
 * ```
 */
export function maxPoolBackprop(options: MaxPoolBackpropOptions): void {
  const { info, x, dy, dx } = options;
  if (
    info.filterHeight === 2 && info.filterWidth === 2 && info.strideHeight === 2 &&
    info.strideWidth === 2 && info.dilationHeight === 1 && info.dilationWidth === 1 &&
    info.padInfo.top === 0 && info.padInfo.left === 0 &&
    info.outHeight * 2 <= info.inHeight && info.outWidth * 2 <= info.inWidth
  ) {
    backprop2x2(info, x, dy, dx);
    return;
  }
  const channels = info.inChannels;
  const best = new Float32Array(channels);
  const where = new Int32Array(channels);
  let dyIndex = 0;
  for (let image = 0; image < info.batchSize; image++) {
    for (let outRow = 0; outRow < info.outHeight; outRow++) {
      for (let outCol = 0; outCol < info.outWidth; outCol++) {
        best.fill(-Infinity);
        where.fill(-1);
        for (let ky = 0; ky < info.effectiveFilterHeight; ky += info.dilationHeight) {
          const row = outRow * info.strideHeight - info.padInfo.top + ky;
          if (row < 0 || row >= info.inHeight) continue;
          for (let kx = 0; kx < info.effectiveFilterWidth; kx += info.dilationWidth) {
            const col = outCol * info.strideWidth - info.padInfo.left + kx;
            if (col < 0 || col >= info.inWidth) continue;
            const base = ((image * info.inHeight + row) * info.inWidth + col) * channels;
            for (let channel = 0; channel < channels; channel++) {
              const value = x[base + channel]!;
              if (value > best[channel]! || where[channel] === -1) {
                best[channel] = value;
                where[channel] = base + channel;
              }
            }
          }
        }
        for (let channel = 0; channel < channels; channel++) {
          const target = where[channel]!;
          if (target >= 0) dx[target] = dx[target]! + dy[dyIndex]!;
          dyIndex++;
        }
      }
    }
  }
}

/** The 2x2 stride-2 case of the networks, as straight-line code. */
function backprop2x2(
  info: backend_util.Conv2DInfo,
  x: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
): void {
  const channels = info.inChannels;
  const rowStride = info.inWidth * channels;
  let dyIndex = 0;
  for (let image = 0; image < info.batchSize; image++) {
    for (let outRow = 0; outRow < info.outHeight; outRow++) {
      const rowBase = (image * info.inHeight + 2 * outRow) * rowStride;
      for (let outCol = 0; outCol < info.outWidth; outCol++) {
        const base = rowBase + 2 * outCol * channels;
        for (let channel = 0; channel < channels; channel++) {
          const topLeft = base + channel;
          const topRight = topLeft + channels;
          const bottomLeft = topLeft + rowStride;
          const bottomRight = bottomLeft + channels;
          // The first maximum in row-major order wins a tie.
          let where = topLeft;
          let best = x[topLeft]!;
          if (x[topRight]! > best) {
            where = topRight;
            best = x[topRight]!;
          }
          if (x[bottomLeft]! > best) {
            where = bottomLeft;
            best = x[bottomLeft]!;
          }
          if (x[bottomRight]! > best) where = bottomRight;
          dx[where] = dx[where]! + dy[dyIndex++]!;
        }
      }
    }
  }
}

/**
 * The `MaxPoolGrad` kernel config to register for the wasm backend.
 *
 * @example
 * ```ts
 * import { maxPoolGradWasmConfig } from "./max_pool_grad.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(maxPoolGradWasmConfig.kernelName, "MaxPoolGrad");
 * ```
 */
export const maxPoolGradWasmConfig: KernelOverride = {
  kernelName: "MaxPoolGrad",
  backendName: "wasm",
  original: undefined,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const wasm = backend as WasmBackend;
    const { dy, input } = inputs as { dy: TensorInfo; input: TensorInfo };
    const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as MaxPoolGradAttrs;
    const info = backend_util.computePool2DInfo(
      input.shape as [number, number, number, number],
      filterSize,
      strides,
      1,
      pad,
      dimRoundingMode,
    );
    const dx = wasm.makeOutput(input.shape, "float32");
    const size = input.shape.reduce((a, b) => a * b, 1);
    const heap = heapFloats(wasm);
    const dxStart = heapOffset(wasm, dx) / 4;
    const xStart = heapOffset(wasm, input) / 4;
    const dyStart = heapOffset(wasm, dy) / 4;
    const dxView = heap.subarray(dxStart, dxStart + size);
    dxView.fill(0);
    maxPoolBackprop({
      info,
      x: heap.subarray(xStart, xStart + size),
      dy: heap.subarray(dyStart, dyStart + dy.shape.reduce((a, b) => a * b, 1)),
      dx: dxView,
    });
    return dx;
  },
};
