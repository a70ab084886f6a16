/**
 * `FusedBatchNorm` (the forward batch norm) for the wasm backend with
 * per-channel statistics: `y = x * a[c] + b[c]` with
 * `a = scale / sqrt(variance + epsilon)` and `b = offset - mean * a`, one pass.
 * Other shapes go to the backend's own kernel. With oneDNN installed, the
 * normalization runs on it, on every core.
 *
 * @module
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import type { Blas } from "../blas.ts";
import type { DnnlBatchNorm } from "./norm_dnnl.ts";
import { repeatBlock } from "./tile.ts";
import {
  callKernel,
  disposeInfo,
  heapAlloc,
  heapFloats,
  heapFree,
  heapOffset,
  heapView,
  type KernelOverride,
  type WasmBackend,
} from "./wasm_heap.ts";

/** Options of {@linkcode normalizeChannels}. */
export interface NormalizeChannelsOptions {
  /** The input, channels last, flat. */
  x: Float32Array;
  /** Receives the output (may be `x`). */
  out: Float32Array;
  /** Per-channel mean. */
  mean: Float32Array;
  /** Per-channel variance. */
  variance: Float32Array;
  /** Per-channel scale, or `null` for 1. */
  scale: Float32Array | null;
  /** Per-channel offset, or `null` for 0. */
  offset: Float32Array | null;
  /** Added to the variance. */
  epsilon: number;
}

/**
 * Batch-normalizes channels-last data with given statistics.
 *
 * @param options Data, statistics and epsilon.
 *
 * @example
 * ```ts
 * import { normalizeChannels } from "./fused_batch_norm.ts";
 * import { assertEquals } from "../assert.ts";
 * const out = new Float32Array(2);
 * normalizeChannels({
 *   x: new Float32Array([3, 3]), out, mean: new Float32Array([1, 5]),
 *   variance: new Float32Array([4, 1]), scale: null, offset: new Float32Array([0, 1]), epsilon: 0,
 * });
 * assertEquals([...out], [1, -1]);
 * ```
 */
export function normalizeChannels(options: NormalizeChannelsOptions): void {
  const { x, out } = options;
  const [slope, shift] = slopeAndShift(options);
  const channels = slope.length;
  const length = x.length;
  for (let start = 0; start < length; start += channels) {
    for (let channel = 0; channel < channels; channel++) {
      out[start + channel] = x[start + channel]! * slope[channel]! + shift[channel]!;
    }
  }
}

/** Per-channel `a` and `b` of `y = x * a + b`. */
function slopeAndShift(
  options: Omit<NormalizeChannelsOptions, "x" | "out">,
): [Float32Array, Float32Array] {
  const { mean, variance, scale, offset, epsilon } = options;
  const channels = mean.length;
  const slope = new Float32Array(channels);
  const shift = new Float32Array(channels);
  for (let channel = 0; channel < channels; channel++) {
    const a = (scale === null ? 1 : scale[channel]!) / Math.sqrt(variance[channel]! + epsilon);
    slope[channel] = a;
    shift[channel] = (offset === null ? 0 : offset[channel]!) - mean[channel]! * a;
  }
  return [slope, shift];
}

/**
 * The `FusedBatchNorm` kernel config for the wasm backend.
 *
 * @param original The backend's own kernel, for statistics that are not per channel.
 * @param blas OpenBLAS, or `null`: with it, up to 64 channels are normalized
 *   as `x @ diag(a)` added to rows of `b` (about 3x faster than the loop).
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { fusedBatchNormConfig } from "./fused_batch_norm.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(fusedBatchNormConfig({} as never, null).kernelName, "FusedBatchNorm");
 * ```
 */
export function fusedBatchNormConfig(original: KernelConfig, blas: Blas | null): KernelOverride {
  return {
    kernelName: "FusedBatchNorm",
    backendName: "wasm",
    original,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x, mean, variance, offset, scale } = inputs as Record<string, TensorInfo | undefined>;
      const channels = x!.shape[x!.shape.length - 1]!;
      const perChannel = (t: TensorInfo | undefined) =>
        t === undefined ||
        (t.shape.length === 1 && t.shape[0] === channels && t.dtype === "float32");
      if (
        x!.dtype !== "float32" || !perChannel(mean) || !perChannel(variance) ||
        !perChannel(offset) || !perChannel(scale) || mean === undefined || variance === undefined
      ) {
        return callKernel(original, wasm, inputs as Record<string, TensorInfo>, attrs ?? {});
      }
      const out = wasm.makeOutput(x!.shape, "float32");
      const heap = heapFloats(wasm);
      const view = (t: TensorInfo, length: number) =>
        heap.subarray(heapOffset(wasm, t) / 4, heapOffset(wasm, t) / 4 + length);
      const size = x!.shape.reduce((a, b) => a * b, 1);
      const statistics = {
        mean: view(mean, channels),
        variance: view(variance, channels),
        scale: scale === undefined ? null : view(scale, channels),
        offset: offset === undefined ? null : view(offset, channels),
        epsilon: (attrs as { varianceEpsilon: number }).varianceEpsilon,
      };
      const rows = size / channels;
      if (blas === null || channels > 64 || rows < 256) {
        normalizeChannels({ x: view(x!, size), out: view(out, size), ...statistics });
        return out;
      }
      const [slope, shift] = slopeAndShift(statistics);
      const outView = view(out, size);
      outView.set(shift);
      repeatBlock(outView, channels, rows);
      const diagonal = heapAlloc(wasm, channels * channels);
      const matrix = heapView(wasm, diagonal, channels * channels);
      matrix.fill(0);
      for (let channel = 0; channel < channels; channel++) {
        matrix[channel * (channels + 1)] = slope[channel]!;
      }
      blas.gemm({
        m: rows,
        n: channels,
        k: channels,
        a: heapView(wasm, heapOffset(wasm, x!), size),
        b: matrix,
        c: heapView(wasm, heapOffset(wasm, out), size),
        beta: 1,
      });
      heapFree(wasm, diagonal);
      return out;
    },
  };
}

/**
 * The `FusedBatchNorm` kernel config for the wasm backend on oneDNN, for
 * per-channel statistics; other shapes go to `fallback`.
 *
 * @param norm oneDNN's batch normalization.
 * @param fallback The kernel for what oneDNN does not run.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { fusedBatchNormDnnlConfig } from "./fused_batch_norm.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(fusedBatchNormDnnlConfig({} as never, {} as never).kernelName, "FusedBatchNorm");
 * ```
 */
export function fusedBatchNormDnnlConfig(
  norm: DnnlBatchNorm,
  fallback: KernelConfig,
): KernelOverride {
  return {
    kernelName: "FusedBatchNorm",
    backendName: "wasm",
    original: (fallback as KernelOverride).original ?? fallback,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x, mean, variance, offset, scale } = inputs as Record<string, TensorInfo | undefined>;
      const channels = x!.shape[x!.shape.length - 1]!;
      const perChannel = (t: TensorInfo | undefined) =>
        t === undefined ||
        (t.shape.length === 1 && t.shape[0] === channels && t.dtype === "float32");
      const size = x!.shape.reduce((a, b) => a * b, 1);
      if (
        x!.dtype === "float32" && perChannel(mean) && perChannel(variance) &&
        perChannel(offset) && perChannel(scale) && mean !== undefined && variance !== undefined &&
        size > 0
      ) {
        const out = wasm.makeOutput(x!.shape, "float32");
        const ran = norm.inference(wasm, size / channels, channels, {
          x: heapOffset(wasm, x!),
          mean: heapOffset(wasm, mean),
          variance: heapOffset(wasm, variance),
          scale: scale === undefined ? null : heapOffset(wasm, scale),
          offset: offset === undefined ? null : heapOffset(wasm, offset),
          y: heapOffset(wasm, out),
        }, (attrs as { varianceEpsilon: number }).varianceEpsilon);
        if (ran) return out;
        disposeInfo(wasm, out);
      }
      return callKernel(fallback, wasm, inputs as Record<string, TensorInfo>, attrs ?? {});
    },
  };
}
