/**
 * `Sum` and `Mean` for the wasm backend when the reduced axes lead (`[0, 1, 2]`
 * of an NHWC tensor: the per-channel sums of every bias and batch-norm
 * gradient, and batch norm's statistics). The backend's own kernels reduce
 * only innermost axes, so they transpose the whole tensor first; these add
 * rows in one pass (OpenBLAS `sgemv` when present). Other reductions go to
 * the backend's own kernels.
 *
 * @module
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import type { Blas } from "../blas.ts";
import {
  callKernel,
  heapAlloc,
  heapFloats,
  heapFree,
  heapOffset,
  heapView,
  type KernelOverride,
  type WasmBackend,
} from "./wasm_heap.ts";

/**
 * The number of leading axes `axis` reduces, or `-1` if it is not a leading
 * run of axes.
 *
 * @param axis The reduction's `axis` attribute (negative counts from the end).
 * @param rank The input's rank.
 * @returns How many leading axes are reduced, or -1.
 *
 * @example
 * ```ts
 * import { leadingAxes } from "./sum.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(leadingAxes([0, 1, 2], 4), 3);
 * assertEquals(leadingAxes([2, 1, 0], 4), 3);
 * assertEquals(leadingAxes([1, 2], 4), -1);
 * assertEquals(leadingAxes(-1, 1), 1);
 * ```
 */
export function leadingAxes(axis: number | number[] | undefined, rank: number): number {
  if (axis === undefined) return rank;
  const axes = (Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a));
  const unique = [...new Set(axes)].sort((a, b) => a - b);
  return unique.every((a, index) => a === index) ? unique.length : -1;
}

/**
 * Sums `rows` consecutive rows of `cols` floats into `out`.
 *
 * @param source The rows, flat.
 * @param cols Floats per row.
 * @param out Receives the `cols` sums.
 * @param scale Multiplies each sum (1 for a sum, 1 / rows for a mean).
 *
 * @example
 * ```ts
 * import { sumRows } from "./sum.ts";
 * import { assertEquals } from "../assert.ts";
 * const out = new Float32Array(2);
 * sumRows(new Float32Array([1, 2, 3, 4, 5, 6]), 2, out, 1);
 * assertEquals([...out], [9, 12]);
 * ```
 */
export function sumRows(
  source: Float32Array,
  cols: number,
  out: Float32Array,
  scale: number,
): void {
  const sums = new Float64Array(cols);
  const length = source.length;
  for (let start = 0; start < length; start += cols) {
    for (let col = 0; col < cols; col++) sums[col]! += source[start + col]!;
  }
  for (let col = 0; col < cols; col++) out[col] = sums[col]! * scale;
}

/**
 * A leading-axes reduction kernel (`Sum` or `Mean`) for the wasm backend.
 *
 * @param kernelName `"Sum"` or `"Mean"`.
 * @param original The backend's own kernel, for other reductions.
 * @param blas OpenBLAS for the sums, or `null` for a JavaScript loop.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { leadingReductionConfig } from "./sum.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(leadingReductionConfig("Sum", {} as never, null).kernelName, "Sum");
 * ```
 */
export function leadingReductionConfig(
  kernelName: "Sum" | "Mean",
  original: KernelConfig,
  blas: Blas | null,
): KernelOverride {
  return {
    kernelName,
    backendName: "wasm",
    original,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x } = inputs as { x: TensorInfo };
      const { axis, keepDims } = attrs as { axis?: number | number[]; keepDims?: boolean };
      const rank = x.shape.length;
      const leading = leadingAxes(axis, rank);
      if (x.dtype !== "float32" || leading <= 0 || rank === 0) {
        return callKernel(original, wasm, { x }, attrs ?? {});
      }
      const kept = x.shape.slice(leading);
      const outShape = keepDims ? [...x.shape.slice(0, leading).map(() => 1), ...kept] : kept;
      const cols = kept.reduce((a, b) => a * b, 1);
      const size = x.shape.reduce((a, b) => a * b, 1);
      const out = wasm.makeOutput(outShape, "float32");
      const rows = cols === 0 ? 0 : size / cols;
      const scale = kernelName === "Mean" ? 1 / rows : 1;
      if (blas !== null && rows > 64) {
        const ones = heapAlloc(wasm, rows);
        const heap = heapFloats(wasm);
        heap.fill(1, ones / 4, ones / 4 + rows);
        blas.columnSums(
          heapView(wasm, heapOffset(wasm, x), size),
          rows,
          cols,
          heapView(wasm, ones, rows),
          heapView(wasm, heapOffset(wasm, out), cols),
          scale,
        );
        heapFree(wasm, ones);
        return out;
      }
      const heap = heapFloats(wasm);
      const start = heapOffset(wasm, x) / 4;
      const outStart = heapOffset(wasm, out) / 4;
      sumRows(
        heap.subarray(start, start + size),
        cols,
        heap.subarray(outStart, outStart + cols),
        scale,
      );
      return out;
    },
  };
}
