/**
 * `Sum` and `Mean` for the wasm backend when the reduced axes lead (`[0, 1, 2]`
 * of an NHWC tensor: the per-channel sums of every bias and batch-norm
 * gradient, and batch norm's statistics) or are all of them (`tf.mean(x)`:
 * the loss). The backend's own kernels reduce only innermost axes, so they
 * transpose the whole tensor first, and add in float32; these add rows in one
 * pass (OpenBLAS `sgemv` when present) and finish in float64. Other
 * reductions go to the backend's own kernels.
 *
 * Why float64: a float32 running sum of n values drifts by about sqrt(n)
 * times float32's rounding. The mean of SegNet's 65,536 per-pixel losses (16
 * images of 64x64), which went to the backend's own kernel, came out 1.9e-6
 * to 3.7e-6 from its float64 value, where the parity check allows 1e-5 on the
 * first loss and PyTorch float32 is 4e-8 off; now it is 5e-8 off. `sgemv`
 * adds blocks of {@linkcode SUM_BLOCK_ROWS} rows and the blocks' sums are
 * added in float64, as the JavaScript loop adds every row.
 *
 * @module
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import type { Blas } from "../blas.ts";
import type { SimdKernels } from "./simd.ts";
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
 * Rows `sgemv` adds in float32 before the sums go on in float64. On 131,072
 * random values (uniform, or around an offset) a float32 running sum was off
 * by 9e-7 to 6e-6, blocks of 1024 added in float64 by 2e-8; blocks of 4096
 * by up to 1.3e-7. A reduction of at most this many rows stays one `sgemv`
 * call, as before; a longer one costs one call per block: bin's bias
 * gradients (16,384 rows, 16 calls) took 7 microseconds more each; the
 * loss's mean on OpenBLAS is faster than on the backend's own kernel.
 */
export const SUM_BLOCK_ROWS = 1024;

/**
 * The number of leading axes `axis` reduces, or `-1` if it is not a leading
 * run of axes.
 *
 * @param axis The reduction's `axis` attribute (negative counts from the end;
 *   `null` or `undefined`, as `tf.sum(x)` and `tf.mean(x)` pass it: every axis).
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
 * assertEquals(leadingAxes(null, 2), 2);
 * ```
 */
export function leadingAxes(axis: number | number[] | null | undefined, rank: number): number {
  if (axis === undefined || axis === null) return rank;
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
 * @param blas OpenBLAS for the sums, or `null` for the SIMD kernel or a JavaScript loop.
 * @param simd The engine's SIMD kernels (`column_sums`: blocks of 64 rows in float32, added in
 *   float64), used without OpenBLAS; `null` for a JavaScript loop in float64.
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
  simd: SimdKernels | null = null,
): KernelOverride {
  return {
    kernelName,
    backendName: "wasm",
    original,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x } = inputs as { x: TensorInfo };
      const { axis, keepDims } = attrs as { axis?: number | number[] | null; keepDims?: boolean };
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
        blockedColumnSums(wasm, blas, {
          x: heapOffset(wasm, x),
          rows,
          cols,
          out: heapOffset(wasm, out),
          scale,
        });
        return out;
      }
      if (simd !== null) {
        const wide = heapAlloc(wasm, 2 * cols);
        simd.exports.column_sums(
          heapOffset(wasm, x),
          rows,
          cols,
          heapOffset(wasm, out),
          scale,
          wide,
        );
        heapFree(wasm, wide);
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

/** A sum of rows on the wasm heap: where the rows are, their shape, where the sums go. */
export interface ColumnSumsOptions {
  /** Byte offset of the rows, `rows x cols` floats, row after row. */
  x: number;
  /** Rows to add. */
  rows: number;
  /** Floats per row. */
  cols: number;
  /** Byte offset of the `cols` sums. */
  out: number;
  /**
   * Multiplies each sum (1 / rows for a mean).
   * @default 1
   */
  scale?: number;
}

/**
 * Adds `rows` rows of `cols` floats on the wasm heap with OpenBLAS: one
 * `sgemv` per block of at most {@linkcode SUM_BLOCK_ROWS} rows (float32,
 * fast), then the blocks' sums in float64, so that a long reduction is not
 * off by float32's running rounding. A single block is one `sgemv`, scaled.
 *
 * @param wasm The wasm backend.
 * @param blas OpenBLAS.
 * @param options Where the rows and the sums are, and the scale.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { openBlas } from "../blas.ts";
 * import { blockedColumnSums, SUM_BLOCK_ROWS } from "./sum.ts";
 * import { heapOffset, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * const blas = openBlas();
 * if (typeof blas !== "string") {
 *   await tf.setBackend("wasm");
 *   const wasm = tf.backend() as WasmBackend;
 *   const rows = 2 * SUM_BLOCK_ROWS + 3; // three blocks
 *   const x = tf.fill([rows, 2], 0.5);
 *   const out = tf.zeros([2]);
 *   blockedColumnSums(wasm, blas, { x: heapOffset(wasm, x), rows, cols: 2, out: heapOffset(wasm, out) });
 *   assertEquals([...out.dataSync()], [rows / 2, rows / 2]);
 *   tf.dispose([x, out]);
 *   blas.close();
 * }
 * ```
 */
export function blockedColumnSums(wasm: WasmBackend, blas: Blas, options: ColumnSumsOptions): void {
  const { x, rows, cols, out, scale = 1 } = options;
  const blocks = Math.ceil(rows / SUM_BLOCK_ROWS);
  const blockRows = Math.min(rows, SUM_BLOCK_ROWS);
  const ones = heapAlloc(wasm, blockRows);
  const partials = blocks > 1 ? heapAlloc(wasm, blocks * cols) : out;
  heapFloats(wasm).fill(1, ones / 4, ones / 4 + blockRows);
  for (let block = 0; block < blocks; block++) {
    const first = block * SUM_BLOCK_ROWS;
    const count = Math.min(SUM_BLOCK_ROWS, rows - first);
    blas.columnSums(
      heapView(wasm, x + first * cols * 4, count * cols),
      count,
      cols,
      heapView(wasm, ones, count),
      heapView(wasm, partials + block * cols * 4, cols),
      blocks > 1 ? 1 : scale,
    );
  }
  heapFree(wasm, ones);
  if (blocks === 1) return;
  sumRows(heapView(wasm, partials, blocks * cols), cols, heapView(wasm, out, cols), scale);
  heapFree(wasm, partials);
}
