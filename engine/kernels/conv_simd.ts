/**
 * The three directions of a 2-D convolution on the engine's WebAssembly SIMD
 * kernels (`engine/simd/kernels.c`): the forward pass with bias and ReLU, the
 * input gradient (also the transposed convolution) and the filter gradient,
 * for NHWC activations and HWIO filters with any stride, padding and
 * dilation. They run on the wasm backend's heap, where the tensors lie.
 *
 * @module
 */
import type { backend_util } from "@tensorflow/tfjs-core";
import type { SimdKernels } from "./simd.ts";
import { heapAlloc, heapFree, type WasmBackend } from "./wasm_heap.ts";

/** Where a convolution's tensors lie on the heap (byte offsets). */
export interface SimdConvBuffers {
  /** The input, `[batch, inHeight, inWidth, inChannels]`. */
  x: number;
  /** The filter, `[filterHeight, filterWidth, inChannels, outChannels]`. */
  w: number;
  /** The output, `[batch, outHeight, outWidth, outChannels]`. */
  y: number;
}

/** The fields of a convolution `kernels.c` reads (a tfjs `Conv2DInfo` has them all). */
type ConvShape =
  & Pick<
    backend_util.Conv2DInfo,
    | "batchSize"
    | "inHeight"
    | "inWidth"
    | "inChannels"
    | "outHeight"
    | "outWidth"
    | "outChannels"
    | "filterHeight"
    | "filterWidth"
    | "strideHeight"
    | "strideWidth"
    | "dilationHeight"
    | "dilationWidth"
  >
  & { padInfo: { top: number; left: number } };

/**
 * Writes a convolution's geometry into the kernels' geometry block, in the
 * order `kernels.c` reads it.
 *
 * @param simd The SIMD kernels.
 * @param info The convolution, as tfjs describes it (NHWC).
 * @returns The block's byte offset.
 */
function writeGeometry(simd: SimdKernels, info: ConvShape): number {
  const block = new Int32Array(simd.memory.buffer, simd.geometry, 17);
  block.set([
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.outChannels,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.dilationHeight,
    info.dilationWidth,
    info.padInfo.top,
    info.padInfo.left,
    0, // unused
    0, // G_NEXT: the counter the kernels that share their work claim units from
  ]);
  return simd.geometry;
}

/** Tiles per block of the Winograd kernel (`WINOGRAD_BLOCK` in kernels.c). */
const WINOGRAD_BLOCK = 64;

/**
 * Whether a convolution runs as Winograd's F(2x2, 3x3) (`winograd_conv` in
 * kernels.c): 3x3, stride 1, no dilation, channels in multiples of 4, and
 * padding of at most 2 on the top and left.
 */
function winogradFits(info: ConvShape): boolean {
  return info.filterHeight === 3 && info.filterWidth === 3 && info.strideHeight === 1 &&
    info.strideWidth === 1 && info.dilationHeight === 1 && info.dilationWidth === 1 &&
    info.inChannels % 4 === 0 && info.outChannels % 4 === 0 && info.padInfo.top >= 0 &&
    info.padInfo.top <= 2 && info.padInfo.left >= 0 && info.padInfo.left <= 2;
}

/**
 * Runs `act(conv(x, filter) + bias)` as Winograd's F(2x2, 3x3), the filter
 * given as it is (`flip` 0) or as the forward filter of an input gradient
 * (`flip` 1: turned by 180 degrees, channels swapped).
 */
function winogradConv(
  backend: WasmBackend,
  simd: SimdKernels,
  shape: ConvShape,
  buffers: SimdConvBuffers,
  flip: boolean,
  bias: number | null,
  relu: boolean,
): void {
  const cin = shape.inChannels;
  const cout = shape.outChannels;
  const tiles = shape.batchSize * Math.ceil(shape.outHeight / 2) * Math.ceil(shape.outWidth / 2);
  // Two threads claim blocks of tiles as they come free (a block's floats are the same on
  // either), each with its own scratch.
  const two = simd.threads !== null && tiles > WINOGRAD_BLOCK;
  const u = heapAlloc(backend, 16 * cin * cout);
  const v = heapAlloc(backend, 16 * WINOGRAD_BLOCK * cin);
  const m = heapAlloc(backend, 16 * WINOGRAD_BLOCK * cout);
  const v2 = two ? heapAlloc(backend, 16 * WINOGRAD_BLOCK * cin) : 0;
  const m2 = two ? heapAlloc(backend, 16 * WINOGRAD_BLOCK * cout) : 0;
  // The allocations may grow the heap: the geometry is written after them.
  const geometry = writeGeometry(simd, shape);
  simd.exports.winograd_filter(geometry, buffers.w, u, flip ? 1 : 0);
  const args = [geometry, buffers.x, u, bias ?? 0, buffers.y, relu ? 1 : 0] as const;
  if (two) {
    simd.threads!.run("winograd_conv", [...args, v, m], [...args, v2, m2]);
    heapFree(backend, m2);
    heapFree(backend, v2);
  } else {
    simd.exports.winograd_conv(...args, v, m);
  }
  heapFree(backend, m);
  heapFree(backend, v);
  heapFree(backend, u);
}

/** The most parts a Winograd filter gradient is cut into, and their sums' bytes at most. */
const FILTER_GRAD_PARTS = 4, FILTER_GRAD_SUMS_BYTES = 32 * 2 ** 20;

/**
 * How many parts a Winograd filter gradient's tiles are cut into, each
 * summed on its own and then added in order (`winograd_filter_grad` in
 * kernels.c): fixed by the shape, so that the floats are the same on one
 * thread or two; up to 4, so that two threads claiming them as they come
 * free can balance, in whole blocks, within 32 MiB of sums.
 *
 * @param blocks Blocks of `WINOGRAD_BLOCK` tiles.
 * @param sums Floats of one part's sums (`16 * cin * cout`).
 * @returns The parts, 1 to 4.
 *
 * @example
 * ```ts
 * import { filterGradParts } from "./conv_simd.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(filterGradParts(64, 16 * 32 * 32), 4); // bin's layers
 * assertEquals(filterGradParts(1, 16 * 32 * 32), 1);
 * assertEquals(filterGradParts(8, 16 * 512 * 512), 2); // 16 MiB each
 * ```
 */
export function filterGradParts(blocks: number, sums: number): number {
  const fit = Math.floor(FILTER_GRAD_SUMS_BYTES / (4 * sums));
  return Math.max(1, Math.min(FILTER_GRAD_PARTS, blocks, fit));
}

/**
 * Whether the SIMD kernels run a convolution: NHWC, and a filter that fits
 * inside the padded input (true of every convolution tfjs builds).
 *
 * @param info The convolution, as tfjs describes it.
 * @returns `true` when {@linkcode simdConvForward} and the gradients accept it.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { simdRuns } from "./conv_simd.ts";
 * import { assert } from "../assert.ts";
 * assert(simdRuns(tf.backend_util.computeConv2DInfo([1, 5, 5, 2], [3, 3, 2, 4], 2, 1, "same")));
 * ```
 */
export function simdRuns(info: backend_util.Conv2DInfo): boolean {
  return info.dataFormat === "channelsLast" && info.outHeight > 0 && info.outWidth > 0 &&
    info.inChannels > 0 && info.outChannels > 0;
}

/**
 * `y = act(conv(x, w) + bias)`: 3x3 convolutions of stride 1 as Winograd's
 * F(2x2, 3x3) where the channels come in fours, the others directly.
 *
 * @param backend The wasm backend (for scratch).
 * @param simd The SIMD kernels on its heap.
 * @param info The convolution (NHWC; {@linkcode simdRuns} must accept it).
 * @param buffers Input, filter and output.
 * @param bias Byte offset of `outChannels` biases, or `null`.
 * @param relu Apply a ReLU as the output is written.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { simdConvForward } from "./conv_simd.ts";
 * import { loadSimdModule, simdKernels } from "./simd.ts";
 * import { heapOffset, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const backend = tf.backend() as WasmBackend;
 * const simd = simdKernels(backend, await loadSimdModule() as WebAssembly.Module);
 * const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
 * const w = tf.tensor4d([1, 10, 100, 1000], [2, 2, 1, 1]);
 * const y = tf.zeros([1, 1, 1, 1]);
 * const info = tf.backend_util.computeConv2DInfo([1, 2, 2, 1], [2, 2, 1, 1], 1, 1, "valid");
 * const at = (t: tf.Tensor) => heapOffset(backend, t);
 * simdConvForward(backend, simd, info, { x: at(x), w: at(w), y: at(y) }, null, false);
 * assertEquals([...y.dataSync()], [4321]);
 * tf.dispose([x, w, y]);
 * ```
 */
export function simdConvForward(
  backend: WasmBackend,
  simd: SimdKernels,
  info: backend_util.Conv2DInfo,
  buffers: SimdConvBuffers,
  bias: number | null,
  relu: boolean,
): void {
  if (winogradFits(info)) {
    winogradConv(backend, simd, info, buffers, false, bias, relu);
    return;
  }
  const geometry = writeGeometry(simd, info);
  const rows = info.batchSize * info.outHeight;
  const args = [geometry, buffers.x, buffers.w, bias ?? 0, buffers.y, relu ? 1 : 0];
  if (simd.threads !== null && rows >= 2) {
    // Each output row is its own product: any split gives the same floats.
    const split = Math.ceil(rows / 2);
    simd.threads.run("conv_forward", [...args, 0, split], [...args, split, rows]);
  } else {
    simd.exports.conv_forward(
      geometry,
      buffers.x,
      buffers.w,
      bias ?? 0,
      buffers.y,
      relu ? 1 : 0,
      0,
      rows,
    );
  }
}

/**
 * The gradient of a convolution's input, `dx` (written to `buffers.x`), from
 * `dy` (`buffers.y`) and the filter (`buffers.w`): also the transposed
 * convolution of `dy`. With a 3x3 filter of stride 1 and channels in fours,
 * Winograd's F(2x2, 3x3) of `dy` with the filter turned by 180 degrees.
 *
 * @param backend The wasm backend (for the transposed filter's scratch).
 * @param simd The SIMD kernels on its heap.
 * @param info The forward convolution (NHWC; {@linkcode simdRuns} must accept it).
 * @param buffers `x` receives dx; `y` holds dy; `w` the filter.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { simdConvInputGrad } from "./conv_simd.ts";
 * import { loadSimdModule, simdKernels } from "./simd.ts";
 * import { heapOffset, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const backend = tf.backend() as WasmBackend;
 * const simd = simdKernels(backend, await loadSimdModule() as WebAssembly.Module);
 * const dy = tf.tensor4d([2], [1, 1, 1, 1]);
 * const w = tf.tensor4d([1, 10, 100, 1000], [2, 2, 1, 1]);
 * const dx = tf.zeros([1, 2, 2, 1]);
 * const info = tf.backend_util.computeConv2DInfo([1, 2, 2, 1], [2, 2, 1, 1], 1, 1, "valid");
 * const at = (t: tf.Tensor) => heapOffset(backend, t);
 * simdConvInputGrad(backend, simd, info, { x: at(dx), w: at(w), y: at(dy) });
 * assertEquals([...dx.dataSync()], [2, 20, 200, 2000]);
 * tf.dispose([dy, w, dx]);
 * ```
 */
export function simdConvInputGrad(
  backend: WasmBackend,
  simd: SimdKernels,
  info: backend_util.Conv2DInfo,
  buffers: SimdConvBuffers,
): void {
  // With stride 1, dx is the forward convolution of dy with the turned filter, padded so that
  // each dy pixel reaches every input pixel its taps read: kernel - 1 - pad.
  const turned: ConvShape = {
    ...info,
    inHeight: info.outHeight,
    inWidth: info.outWidth,
    inChannels: info.outChannels,
    outHeight: info.inHeight,
    outWidth: info.inWidth,
    outChannels: info.inChannels,
    padInfo: {
      top: info.filterHeight - 1 - info.padInfo.top,
      left: info.filterWidth - 1 - info.padInfo.left,
    },
  };
  if (winogradFits(turned)) {
    winogradConv(
      backend,
      simd,
      turned,
      { x: buffers.y, w: buffers.w, y: buffers.x },
      true,
      null,
      false,
    );
    return;
  }
  const size = info.filterHeight * info.filterWidth * info.inChannels * info.outChannels;
  const transposed = heapAlloc(backend, size);
  // The allocation may grow the heap: the geometry is written after it.
  const geometry = writeGeometry(simd, info);
  simd.exports.transpose_taps(geometry, buffers.w, transposed);
  const images = info.batchSize;
  if (simd.threads !== null && images >= 2) {
    const split = Math.ceil(images / 2);
    const args = [geometry, buffers.y, transposed, buffers.x];
    simd.threads.run("conv_backward_input", [...args, 0, split], [...args, split, images]);
  } else {
    simd.exports.conv_backward_input(geometry, buffers.y, transposed, buffers.x, 0, images);
  }
  heapFree(backend, transposed);
}

/**
 * The gradient of a convolution's filter, `dw` (written to `buffers.w`), from
 * the input `x` and `dy` (`buffers.y`). With a 3x3 filter of stride 1 and
 * channels in fours, as Winograd's F(2x2, 3x3): the sum over 2x2 output tiles
 * of `G^T [(B^T d B) . (A dy A^T)] G`.
 *
 * @param backend The wasm backend (for scratch).
 * @param simd The SIMD kernels on its heap.
 * @param info The forward convolution (NHWC; {@linkcode simdRuns} must accept it).
 * @param buffers `w` receives dw; `x` holds the input; `y` holds dy.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { simdConvFilterGrad } from "./conv_simd.ts";
 * import { loadSimdModule, simdKernels } from "./simd.ts";
 * import { heapOffset, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const backend = tf.backend() as WasmBackend;
 * const simd = simdKernels(backend, await loadSimdModule() as WebAssembly.Module);
 * const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
 * const dy = tf.tensor4d([10], [1, 1, 1, 1]);
 * const dw = tf.zeros([2, 2, 1, 1]);
 * const info = tf.backend_util.computeConv2DInfo([1, 2, 2, 1], [2, 2, 1, 1], 1, 1, "valid");
 * const at = (t: tf.Tensor) => heapOffset(backend, t);
 * simdConvFilterGrad(backend, simd, info, { x: at(x), w: at(dw), y: at(dy) });
 * assertEquals([...dw.dataSync()], [10, 20, 30, 40]);
 * tf.dispose([x, dy, dw]);
 * ```
 */
export function simdConvFilterGrad(
  backend: WasmBackend,
  simd: SimdKernels,
  info: backend_util.Conv2DInfo,
  buffers: SimdConvBuffers,
): void {
  if (winogradFits(info)) {
    const cin = info.inChannels;
    const cout = info.outChannels;
    const tiles = info.batchSize * Math.ceil(info.outHeight / 2) * Math.ceil(info.outWidth / 2);
    const sums = 16 * cin * cout;
    const parts = filterGradParts(Math.ceil(tiles / WINOGRAD_BLOCK), sums);
    const two = simd.threads !== null && parts >= 2;
    const mg = heapAlloc(backend, parts * sums);
    const v = heapAlloc(backend, 16 * WINOGRAD_BLOCK * cin);
    const z = heapAlloc(backend, 16 * WINOGRAD_BLOCK * cout);
    const v2 = two ? heapAlloc(backend, 16 * WINOGRAD_BLOCK * cin) : 0;
    const z2 = two ? heapAlloc(backend, 16 * WINOGRAD_BLOCK * cout) : 0;
    // The allocations may grow the heap: views and the geometry come after them.
    new Float32Array(simd.memory.buffer, mg, parts * sums).fill(0);
    const geometry = writeGeometry(simd, info);
    const { x, y: dy } = buffers;
    if (two) {
      simd.threads!.run(
        "winograd_filter_grad",
        [geometry, x, dy, mg, v, z, parts],
        [geometry, x, dy, mg, v2, z2, parts],
      );
      heapFree(backend, z2);
      heapFree(backend, v2);
    } else {
      simd.exports.winograd_filter_grad(geometry, x, dy, mg, v, z, parts);
    }
    simd.exports.winograd_filter_grad_finish(geometry, mg, parts, buffers.w);
    heapFree(backend, z);
    heapFree(backend, v);
    heapFree(backend, mg);
    return;
  }
  const taps = info.filterHeight * info.filterWidth;
  const size = taps * info.inChannels * info.outChannels;
  new Float32Array(simd.memory.buffer, buffers.w, size).fill(0);
  const geometry = writeGeometry(simd, info);
  const rows = info.batchSize * info.outHeight;
  if (simd.threads !== null && taps >= 2) {
    // Each tap's gradient is its own sum: two threads take different taps.
    const split = Math.ceil(taps / 2);
    const args = [geometry, buffers.x, buffers.y, buffers.w, 0, rows];
    simd.threads.run("conv_backward_filter", [...args, 0, split], [...args, split, taps]);
  } else {
    simd.exports.conv_backward_filter(geometry, buffers.x, buffers.y, buffers.w, 0, rows, 0, taps);
  }
}
