/**
 * The training batch norm of `batch_norm_training.ts` on the engine's
 * WebAssembly SIMD kernels (`batch_norm_training` and `batch_norm_backward`
 * in `simd/kernels.c`), for the pure wasm path: one call forward (the rows'
 * mean and biased variance, summed in float64, and the normalized output) and
 * one backward, instead of tfjs's ~20 passes over the activations.
 *
 * @module
 */
import type { BatchNormGradOffsets, BatchNormOffsets } from "./norm_dnnl.ts";
import type { SimdKernels } from "./simd.ts";
import { heapAlloc, heapFree, type WasmBackend } from "./wasm_heap.ts";

/**
 * Batch normalization in training on the SIMD kernels (four channels at a
 * time, the rest one by one).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { SimdBatchNorm } from "./norm_simd.ts";
 * import { loadSimdModule, simdKernels } from "./simd.ts";
 * import { heapOffset, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const backend = tf.backend() as WasmBackend;
 * const norm = new SimdBatchNorm(simdKernels(backend, await loadSimdModule() as WebAssembly.Module));
 * const x = tf.tensor2d([[1, 2, 3, 4], [3, 6, 9, 12]]);
 * const [scale, offset, y, mean, variance] = [tf.ones([4]), tf.zeros([4]), tf.zeros([2, 4]), tf.zeros([4]), tf.zeros([4])];
 * const at = (t: tf.Tensor) => heapOffset(backend, t);
 * norm.training(backend, 2, 4, { x: at(x), scale: at(scale), offset: at(offset), y: at(y), mean: at(mean), variance: at(variance) }, 0);
 * assertEquals([...mean.dataSync()], [2, 4, 6, 8]);
 * assertEquals([...variance.dataSync()], [1, 4, 9, 16]);
 * assertEquals([...y.dataSync()], [-1, -1, -1, -1, 1, 1, 1, 1]);
 * tf.dispose([x, scale, offset, y, mean, variance]);
 * ```
 */
export class SimdBatchNorm {
  readonly #simd: SimdKernels;

  /** @param simd The SIMD kernels on the wasm backend's heap. */
  constructor(simd: SimdKernels) {
    this.#simd = simd;
  }

  /**
   * Normalizes `rows` rows of `channels` values with the rows' own mean and
   * biased variance, and writes those too.
   *
   * @param wasm The wasm backend.
   * @param rows Rows (every axis but the last, multiplied).
   * @param channels Channels (the last axis).
   * @param offsets Where the tensors are; `mean` and `variance` receive the statistics.
   * @param epsilon Added to the variance.
   * @returns `false` when asked for a fused ReLU's workspace, which it does not offer.
   */
  training(
    wasm: WasmBackend,
    rows: number,
    channels: number,
    offsets: BatchNormOffsets & { scale: number; offset: number; workspace?: number },
    epsilon: number,
  ): boolean {
    if (offsets.workspace !== undefined) return false;
    const wide = heapAlloc(wasm, 2 * 2 * channels);
    const zero = heapAlloc(wasm, channels);
    this.#simd.exports.batch_norm_training(
      offsets.x,
      rows,
      channels,
      offsets.scale,
      offsets.offset,
      epsilon,
      offsets.y,
      offsets.mean,
      offsets.variance,
      wide,
      zero,
    );
    heapFree(wasm, zero);
    heapFree(wasm, wide);
    return true;
  }

  /**
   * A fused ReLU is not offered: `null`, so layers followed by a ReLU keep it apart.
   *
   * @returns `null`.
   */
  reluWorkspaceBytes(): number | null {
    return null;
  }

  /**
   * The gradient of {@linkcode SimdBatchNorm.training}.
   *
   * @param wasm The wasm backend.
   * @param rows Rows (every axis but the last, multiplied).
   * @param channels Channels (the last axis).
   * @param offsets Where the tensors are.
   * @param epsilon Added to the variance.
   * @returns `false` when given a fused ReLU's workspace, which it does not offer.
   */
  backward(
    wasm: WasmBackend,
    rows: number,
    channels: number,
    offsets: BatchNormGradOffsets & { workspace?: number },
    epsilon: number,
  ): boolean {
    if (offsets.workspace !== undefined) return false;
    const wide = heapAlloc(wasm, 2 * channels);
    const work = heapAlloc(wasm, 3 * channels);
    this.#simd.exports.batch_norm_backward(
      offsets.dy,
      offsets.x,
      rows,
      channels,
      offsets.mean,
      offsets.variance,
      offsets.scale,
      epsilon,
      offsets.dx,
      offsets.dscale,
      offsets.doffset,
      wide,
      work,
    );
    heapFree(wasm, work);
    heapFree(wasm, wide);
    return true;
  }
}
