/**
 * Convolutions as OpenBLAS matrix products over the wasm backend's heap:
 * the shared engine of this project's `Conv2D`, `FusedConv2D`,
 * `Conv2DBackpropInput` and `Conv2DBackpropFilter` kernels for wasm.
 *
 * Stride 1 (any kernel size, any padding up to kernel - 1): the input is
 * copied once into a zero-padded buffer `[batch, hp, wp, cin]`. On that padded
 * grid, tap `(ky, kx)` of the filter reads the same buffer shifted by
 * `ky * wp + kx` pixels, so the convolution is `kh * kw` products of the whole
 * buffer (as a `[pixels, cin]` matrix) with that tap's `[cin, cout]` weights,
 * accumulated into an output on the padded grid whose border rows are then
 * dropped. No im2col matrix is built. The filter gradient is the transposed
 * products (`x_shifted^T @ dy_on_grid`, one per tap) and the input gradient
 * is the forward convolution of `dy` with the flipped, transposed filter.
 *
 * Kernel equal to stride (the transposed convolution of the exercises,
 * kernel 2 stride 2, no padding): blocks of `s x s` pixels do not overlap,
 * so a space-to-depth copy turns each direction into one product.
 *
 * @module
 */
import type { Blas } from "../blas.ts";
import { heapAlloc, heapFloats, heapFree, heapView, type WasmBackend } from "./wasm_heap.ts";

/** The geometry of a 2-D convolution, NHWC input, HWIO filter. */
export interface ConvGeometry {
  /** Images in the batch. */
  batch: number;
  /** Input height. */
  inHeight: number;
  /** Input width. */
  inWidth: number;
  /** Input channels. */
  inChannels: number;
  /** Filter height. */
  filterHeight: number;
  /** Filter width. */
  filterWidth: number;
  /** Output channels. */
  outChannels: number;
  /** Stride, the same along both axes. */
  stride: number;
  /** Zero rows above the input. */
  padTop: number;
  /** Zero rows below the input. */
  padBottom: number;
  /** Zero columns left of the input. */
  padLeft: number;
  /** Zero columns right of the input. */
  padRight: number;
}

/** A tfjs `Conv2DInfo`, reduced to the fields {@linkcode geometryOf} reads. */
export interface ConvInfoLike {
  batchSize: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outChannels: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  outHeight: number;
  outWidth: number;
  dataFormat: string;
  padInfo: { top: number; bottom: number; left: number; right: number };
}

/**
 * The geometry of a convolution if the BLAS kernels handle it, else `null`.
 * Handled: NHWC, no dilation, and either stride 1 with padding below the
 * kernel size, or kernel equal to stride without padding on divisible sizes.
 *
 * @param info The convolution as tfjs describes it.
 * @returns Its geometry, or `null`.
 *
 * @example
 * ```ts
 * import { geometryOf } from "./conv_blas.ts";
 * import { assertEquals } from "../assert.ts";
 * const info = {
 *   batchSize: 1, inHeight: 4, inWidth: 4, inChannels: 2, outChannels: 3,
 *   filterHeight: 3, filterWidth: 3, strideHeight: 1, strideWidth: 1,
 *   dilationHeight: 1, dilationWidth: 1, outHeight: 4, outWidth: 4,
 *   dataFormat: "channelsLast", padInfo: { top: 1, bottom: 1, left: 1, right: 1 },
 * };
 * assertEquals(geometryOf(info)?.padTop, 1);
 * assertEquals(geometryOf({ ...info, dilationHeight: 2 }), null);
 * ```
 */
export function geometryOf(info: ConvInfoLike): ConvGeometry | null {
  if (info.dataFormat !== "channelsLast") return null;
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
  if (info.strideHeight !== info.strideWidth) return null;
  const { top, bottom, left, right } = info.padInfo;
  const geometry: ConvGeometry = {
    batch: info.batchSize,
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    inChannels: info.inChannels,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    outChannels: info.outChannels,
    stride: info.strideHeight,
    padTop: top,
    padBottom: bottom,
    padLeft: left,
    padRight: right,
  };
  if (geometry.stride === 1) {
    const fits = Math.max(top, bottom) < info.filterHeight &&
      Math.max(left, right) < info.filterWidth &&
      Math.min(top, bottom, left, right) >= 0 &&
      info.outHeight === info.inHeight + top + bottom - info.filterHeight + 1 &&
      info.outWidth === info.inWidth + left + right - info.filterWidth + 1;
    return fits ? geometry : null;
  }
  const blocks = info.filterHeight === geometry.stride && info.filterWidth === geometry.stride &&
    top + bottom + left + right === 0 &&
    info.inHeight % geometry.stride === 0 && info.inWidth % geometry.stride === 0;
  return blocks ? geometry : null;
}

/** Bias and activation applied to a convolution's output as it is written. */
export interface ConvEpilogue {
  /** Byte offset of the per-output-channel bias, or `null` for none. */
  biasOffset: number | null;
  /** `linear`, `relu`, `relu6`, `sigmoid`, `leakyrelu` or `elu`. */
  activation: string;
  /** Slope of `leakyrelu` below 0. */
  alpha: number;
}

/**
 * Copies `length` floats from `source` to `target` within `data` (or in
 * place), adding a bias that cycles through `channels` values and applying an
 * activation.
 *
 * @param data The floats (the heap, or any array).
 * @param source Where to read.
 * @param target Where to write; may equal `source`.
 * @param length How many floats (a multiple of `channels`).
 * @param bias One value per channel, or `null`.
 * @param epilogue The activation and its slope.
 *
 * @example
 * ```ts
 * import { epilogueCopy } from "./conv_blas.ts";
 * import { assertEquals } from "../assert.ts";
 * const data = new Float32Array([-1, 1, -3, 3, 0, 0, 0, 0]);
 * epilogueCopy(data, 0, 4, 4, new Float32Array([0, 1]), { biasOffset: null, activation: "relu", alpha: 0 });
 * assertEquals([...data.slice(4)], [0, 2, 0, 4]);
 * ```
 */
export function epilogueCopy(
  data: Float32Array,
  source: number,
  target: number,
  length: number,
  bias: Float32Array | null,
  epilogue: ConvEpilogue,
): void {
  const offsets = bias ?? new Float32Array(1);
  const channels = offsets.length;
  const shift = target - source;
  const end = source + length;
  const alpha = epilogue.alpha;
  let channel = 0;
  switch (epilogue.activation) {
    case "relu":
      for (let i = source; i < end; i++) {
        const value = data[i]! + offsets[channel]!;
        if (++channel === channels) channel = 0;
        // Branch-free max(value, 0): the branch mispredicts on half the values, 5x slower.
        data[i + shift] = (value + Math.abs(value)) * 0.5;
      }
      break;
    case "relu6":
      for (let i = source; i < end; i++) {
        const value = data[i]! + offsets[channel]!;
        if (++channel === channels) channel = 0;
        data[i + shift] = value > 6 ? 6 : value > 0 ? value : 0;
      }
      break;
    case "sigmoid":
      for (let i = source; i < end; i++) {
        const value = data[i]! + offsets[channel]!;
        if (++channel === channels) channel = 0;
        data[i + shift] = 1 / (1 + Math.exp(-value));
      }
      break;
    case "leakyrelu":
      for (let i = source; i < end; i++) {
        const value = data[i]! + offsets[channel]!;
        if (++channel === channels) channel = 0;
        const magnitude = Math.abs(value);
        data[i + shift] = (value + magnitude) * 0.5 + (value - magnitude) * 0.5 * alpha;
      }
      break;
    case "elu":
      for (let i = source; i < end; i++) {
        const value = data[i]! + offsets[channel]!;
        if (++channel === channels) channel = 0;
        data[i + shift] = value < 0 ? Math.exp(value) - 1 : value;
      }
      break;
    default:
      for (let i = source; i < end; i++) {
        data[i + shift] = data[i]! + offsets[channel]!;
        if (++channel === channels) channel = 0;
      }
  }
}

function biasView(
  backend: WasmBackend,
  epilogue: ConvEpilogue,
  channels: number,
): Float32Array | null {
  if (epilogue.biasOffset === null) return null;
  return heapView(backend, epilogue.biasOffset, channels);
}

/**
 * Rows per block of the tap products: about 192 KiB of input and output
 * rows, so that a block stays in the L2 cache while all taps read it
 * (measured on a 4x64x64x32 layer: forward 4.2 -> 3.7 ms, filter gradient
 * 5.1 -> 3.6 ms on one core).
 */
function chunkRows(inChannels: number, outChannels: number): number {
  // Filter taps larger than 64x64 are better packed once per tap, and may run
  // on several threads (productThreads in blas.ts); blocks run on one.
  if (inChannels * outChannels > 64 * 64) return Number.MAX_SAFE_INTEGER;
  const floats = 49152; // 192 KiB
  return Math.max(64, Math.floor(floats / (inChannels + outChannels)));
}

/** Output height and width of a geometry. */
function outSize(geometry: ConvGeometry): [number, number] {
  const g = geometry;
  return [
    (g.inHeight + g.padTop + g.padBottom - g.filterHeight) / g.stride + 1,
    (g.inWidth + g.padLeft + g.padRight - g.filterWidth) / g.stride + 1,
  ];
}

function isPointwise(g: ConvGeometry): boolean {
  return g.filterHeight === 1 && g.filterWidth === 1 && g.stride === 1 &&
    g.padTop + g.padBottom + g.padLeft + g.padRight === 0;
}

/** Copies `x` into a zero-padded scratch buffer; returns its byte offset. */
function padInput(backend: WasmBackend, g: ConvGeometry, xOffset: number): number {
  const hp = g.inHeight + g.padTop + g.padBottom;
  const wp = g.inWidth + g.padLeft + g.padRight;
  const c = g.inChannels;
  const padded = heapAlloc(backend, g.batch * hp * wp * c);
  placeRows(heapFloats(backend), {
    source: xOffset / 4,
    target: padded / 4,
    images: g.batch,
    rows: g.inHeight,
    rowLength: g.inWidth * c,
    targetRows: hp,
    targetRowLength: wp * c,
    before: g.padTop * wp * c + g.padLeft * c,
    total: g.batch * hp * wp * c,
  });
  return padded;
}

/** Where {@linkcode placeRows} puts rows, in floats. */
interface RowPlacement {
  /** Start of the packed rows. */
  source: number;
  /** Start of the target buffer. */
  target: number;
  /** Images; each has `rows` rows. */
  images: number;
  /** Rows per image. */
  rows: number;
  /** Floats per packed row. */
  rowLength: number;
  /** Rows per image in the target. */
  targetRows: number;
  /** Floats per target row. */
  targetRowLength: number;
  /** Floats from the start of an image in the target to its first row. */
  before: number;
  /** Floats of the target buffer, all written (zeros around the rows). */
  total: number;
}

/**
 * Copies packed rows into a larger grid, zeroing only the cells around them
 * (not the whole buffer first).
 */
function placeRows(heap: Float32Array, placement: RowPlacement): void {
  const { source, target, images, rows, rowLength, targetRows, targetRowLength, before } =
    placement;
  let written = target; // everything before this is done
  for (let image = 0; image < images; image++) {
    for (let row = 0; row < rows; row++) {
      const from = source + (image * rows + row) * rowLength;
      const to = target + image * targetRows * targetRowLength + before + row * targetRowLength;
      heap.fill(0, written, to);
      heap.copyWithin(to, from, from + rowLength);
      written = to + rowLength;
    }
  }
  heap.fill(0, written, target + placement.total);
}

/** Copies `x` `[batch, h, w, c]` into `[batch, h/s, w/s, s*s*c]` blocks. */
function spaceToDepth(
  backend: WasmBackend,
  g: ConvGeometry,
  xOffset: number,
  channels: number,
  toDepth: boolean,
  depthOffset: number,
): void {
  const s = g.stride;
  const height = g.inHeight;
  const width = g.inWidth;
  const heap = heapFloats(backend);
  const span = s * channels;
  const pixels = (height / s) * (width / s);
  for (let image = 0; image < g.batch; image++) {
    for (let pixel = 0; pixel < pixels; pixel++) {
      const blockRow = Math.floor(pixel / (width / s));
      const blockCol = pixel % (width / s);
      const depthBase = depthOffset / 4 + (image * pixels + pixel) * s * span;
      for (let dy = 0; dy < s; dy++) {
        const spaceBase = xOffset / 4 +
          ((image * height + blockRow * s + dy) * width + blockCol * s) * channels;
        if (toDepth) {
          heap.copyWithin(depthBase + dy * span, spaceBase, spaceBase + span);
        } else {
          heap.copyWithin(spaceBase, depthBase + dy * span, depthBase + dy * span + span);
        }
      }
    }
  }
}

/**
 * Forward convolution `out = conv(x, filter)` with BLAS.
 *
 * @param backend The wasm backend.
 * @param blas OpenBLAS.
 * @param geometry A geometry accepted by {@linkcode geometryOf}.
 * @param xOffset Byte offset of `x`, `[batch, inHeight, inWidth, inChannels]`.
 * @param filterOffset Byte offset of the filter, `[fh, fw, inChannels, outChannels]`.
 * @param outOffset Byte offset of the output, `[batch, outHeight, outWidth, outChannels]`.
 * @param epilogue Bias and activation to apply, if any.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { openBlas } from "../blas.ts";
 * import { convFilterGrad, convForward, convInputGrad } from "./conv_blas.ts";
 * import { heapOffset, heapView, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const blas = openBlas();
 * if (typeof blas !== "string") {
 *   const backend = tf.backend() as WasmBackend;
 *   // 1x1 input, 3x3 filter of ones, padding 1: the output is the input.
 *   const geometry = {
 *     batch: 1, inHeight: 1, inWidth: 1, inChannels: 1, filterHeight: 3, filterWidth: 3,
 *     outChannels: 1, stride: 1, padTop: 1, padBottom: 1, padLeft: 1, padRight: 1,
 *   };
 *   const [x, w, out] = [tf.tensor1d([2]), tf.ones([9]), tf.zeros([1])];
 *   const at = (t: tf.Tensor) => heapOffset(backend, t);
 *   convForward(backend, blas, geometry, at(x), at(w), at(out));
 *   assertEquals(heapView(backend, at(out), 1)[0], 2);
 *   convInputGrad(backend, blas, geometry, at(x), at(w), at(out));
 *   assertEquals(heapView(backend, at(out), 1)[0], 2);
 *   const dw = tf.zeros([9]);
 *   convFilterGrad(backend, blas, geometry, at(x), at(x), at(dw));
 *   assertEquals(heapView(backend, at(dw), 9)[4], 4); // only the centre tap sees the input
 *   tf.dispose([x, w, out, dw]);
 *   blas.close();
 * }
 * ```
 */
export function convForward(
  backend: WasmBackend,
  blas: Blas,
  geometry: ConvGeometry,
  xOffset: number,
  filterOffset: number,
  outOffset: number,
  epilogue?: ConvEpilogue,
): void {
  const g = geometry;
  const [outHeight, outWidth] = outSize(g);
  const c = g.inChannels;
  const co = g.outChannels;
  const taps = g.filterHeight * g.filterWidth;
  if (isPointwise(g)) {
    const m = g.batch * g.inHeight * g.inWidth;
    blas.gemm({
      m,
      n: co,
      k: c,
      a: heapView(backend, xOffset, m * c),
      b: heapView(backend, filterOffset, c * co),
      c: heapView(backend, outOffset, m * co),
    });
    if (epilogue) applyInPlace(backend, epilogue, outOffset, m * co, co);
    return;
  }
  if (g.stride > 1) {
    const m = g.batch * outHeight * outWidth;
    const blocks = heapAlloc(backend, m * taps * c);
    spaceToDepth(backend, g, xOffset, c, true, blocks);
    blas.gemm({
      m,
      n: co,
      k: taps * c,
      a: heapView(backend, blocks, m * taps * c),
      b: heapView(backend, filterOffset, taps * c * co),
      c: heapView(backend, outOffset, m * co),
    });
    heapFree(backend, blocks);
    if (epilogue) applyInPlace(backend, epilogue, outOffset, m * co, co);
    return;
  }
  const hp = g.inHeight + g.padTop + g.padBottom;
  const wp = g.inWidth + g.padLeft + g.padRight;
  const hasPad = hp !== g.inHeight || wp !== g.inWidth;
  const padded = hasPad ? padInput(backend, g, xOffset) : xOffset;
  const rows = g.batch * hp * wp - ((g.filterHeight - 1) * wp + g.filterWidth - 1);
  const grid = heapAlloc(backend, rows * co);
  // Blocks of rows small enough for the output block and the input rows it
  // reads to stay in cache across the taps' products.
  const block = chunkRows(c, co);
  for (let first = 0; first < rows; first += block) {
    const count = Math.min(block, rows - first);
    for (let ky = 0; ky < g.filterHeight; ky++) {
      for (let kx = 0; kx < g.filterWidth; kx++) {
        const tap = ky * g.filterWidth + kx;
        blas.gemm({
          m: count,
          n: co,
          k: c,
          a: heapView(backend, padded + (first + ky * wp + kx) * c * 4, count * c),
          b: heapView(backend, filterOffset + tap * c * co * 4, c * co),
          c: heapView(backend, grid + first * co * 4, count * co),
          beta: tap === 0 ? 0 : 1,
        });
      }
    }
  }
  const heap = heapFloats(backend);
  const bias = epilogue ? biasView(backend, epilogue, co) : null;
  const plain = !epilogue || (bias === null && epilogue.activation === "linear");
  const rowLength = outWidth * co;
  for (let image = 0; image < g.batch; image++) {
    for (let row = 0; row < outHeight; row++) {
      const source = grid / 4 + (image * hp + row) * wp * co;
      const target = outOffset / 4 + (image * outHeight + row) * rowLength;
      if (plain) heap.copyWithin(target, source, source + rowLength);
      else epilogueCopy(heap, source, target, rowLength, bias, epilogue!);
    }
  }
  heapFree(backend, grid);
  if (hasPad) heapFree(backend, padded);
}

function applyInPlace(
  backend: WasmBackend,
  epilogue: ConvEpilogue,
  offset: number,
  length: number,
  channels: number,
): void {
  const bias = biasView(backend, epilogue, channels);
  if (bias === null && epilogue.activation === "linear") return;
  epilogueCopy(heapFloats(backend), offset / 4, offset / 4, length, bias, epilogue);
}

/**
 * Filter gradient `dw = d(sum(dy * conv(x, w))) / dw` with BLAS.
 *
 * @param backend The wasm backend.
 * @param blas OpenBLAS.
 * @param geometry A geometry accepted by {@linkcode geometryOf}.
 * @param xOffset Byte offset of `x`, `[batch, inHeight, inWidth, inChannels]`.
 * @param dyOffset Byte offset of `dy`, `[batch, outHeight, outWidth, outChannels]`.
 * @param dwOffset Byte offset of the result, `[fh, fw, inChannels, outChannels]`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { openBlas } from "../blas.ts";
 * import { convFilterGrad, convForward, convInputGrad } from "./conv_blas.ts";
 * import { heapOffset, heapView, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const blas = openBlas();
 * if (typeof blas !== "string") {
 *   const backend = tf.backend() as WasmBackend;
 *   // 1x1 input, 3x3 filter of ones, padding 1: the output is the input.
 *   const geometry = {
 *     batch: 1, inHeight: 1, inWidth: 1, inChannels: 1, filterHeight: 3, filterWidth: 3,
 *     outChannels: 1, stride: 1, padTop: 1, padBottom: 1, padLeft: 1, padRight: 1,
 *   };
 *   const [x, w, out] = [tf.tensor1d([2]), tf.ones([9]), tf.zeros([1])];
 *   const at = (t: tf.Tensor) => heapOffset(backend, t);
 *   convForward(backend, blas, geometry, at(x), at(w), at(out));
 *   assertEquals(heapView(backend, at(out), 1)[0], 2);
 *   convInputGrad(backend, blas, geometry, at(x), at(w), at(out));
 *   assertEquals(heapView(backend, at(out), 1)[0], 2);
 *   const dw = tf.zeros([9]);
 *   convFilterGrad(backend, blas, geometry, at(x), at(x), at(dw));
 *   assertEquals(heapView(backend, at(dw), 9)[4], 4); // only the centre tap sees the input
 *   tf.dispose([x, w, out, dw]);
 *   blas.close();
 * }
 * ```
 */
export function convFilterGrad(
  backend: WasmBackend,
  blas: Blas,
  geometry: ConvGeometry,
  xOffset: number,
  dyOffset: number,
  dwOffset: number,
): void {
  const g = geometry;
  const [outHeight, outWidth] = outSize(g);
  const c = g.inChannels;
  const co = g.outChannels;
  const taps = g.filterHeight * g.filterWidth;
  if (isPointwise(g) || g.stride > 1) {
    const m = g.batch * outHeight * outWidth;
    const blocks = g.stride > 1 ? heapAlloc(backend, m * taps * c) : xOffset;
    if (g.stride > 1) spaceToDepth(backend, g, xOffset, c, true, blocks);
    blas.gemm({
      m: taps * c,
      n: co,
      k: m,
      a: heapView(backend, blocks, m * taps * c),
      transA: true,
      b: heapView(backend, dyOffset, m * co),
      c: heapView(backend, dwOffset, taps * c * co),
    });
    if (g.stride > 1) heapFree(backend, blocks);
    return;
  }
  const hp = g.inHeight + g.padTop + g.padBottom;
  const wp = g.inWidth + g.padLeft + g.padRight;
  const hasPad = hp !== g.inHeight || wp !== g.inWidth;
  const padded = hasPad ? padInput(backend, g, xOffset) : xOffset;
  const rows = g.batch * hp * wp - ((g.filterHeight - 1) * wp + g.filterWidth - 1);
  const grid = heapAlloc(backend, rows * co);
  placeRows(heapFloats(backend), {
    source: dyOffset / 4,
    target: grid / 4,
    images: g.batch,
    rows: outHeight,
    rowLength: outWidth * co,
    targetRows: hp,
    targetRowLength: wp * co,
    before: 0,
    total: rows * co,
  });
  const block = chunkRows(c, co);
  for (let first = 0; first < rows; first += block) {
    const count = Math.min(block, rows - first);
    for (let ky = 0; ky < g.filterHeight; ky++) {
      for (let kx = 0; kx < g.filterWidth; kx++) {
        const tap = ky * g.filterWidth + kx;
        blas.gemm({
          m: c,
          n: co,
          k: count,
          a: heapView(backend, padded + (first + ky * wp + kx) * c * 4, count * c),
          lda: c,
          transA: true,
          b: heapView(backend, grid + first * co * 4, count * co),
          c: heapView(backend, dwOffset + tap * c * co * 4, c * co),
          beta: first === 0 ? 0 : 1,
        });
      }
    }
  }
  heapFree(backend, grid);
  if (hasPad) heapFree(backend, padded);
}

/**
 * Input gradient `dx = d(sum(dy * conv(x, w))) / dx` with BLAS; for kernel 2
 * stride 2 this is also the transposed convolution.
 *
 * @param backend The wasm backend.
 * @param blas OpenBLAS.
 * @param geometry A geometry accepted by {@linkcode geometryOf}.
 * @param dyOffset Byte offset of `dy`, `[batch, outHeight, outWidth, outChannels]`.
 * @param filterOffset Byte offset of the filter, `[fh, fw, inChannels, outChannels]`.
 * @param dxOffset Byte offset of the result, `[batch, inHeight, inWidth, inChannels]`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { openBlas } from "../blas.ts";
 * import { convFilterGrad, convForward, convInputGrad } from "./conv_blas.ts";
 * import { heapOffset, heapView, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const blas = openBlas();
 * if (typeof blas !== "string") {
 *   const backend = tf.backend() as WasmBackend;
 *   // 1x1 input, 3x3 filter of ones, padding 1: the output is the input.
 *   const geometry = {
 *     batch: 1, inHeight: 1, inWidth: 1, inChannels: 1, filterHeight: 3, filterWidth: 3,
 *     outChannels: 1, stride: 1, padTop: 1, padBottom: 1, padLeft: 1, padRight: 1,
 *   };
 *   const [x, w, out] = [tf.tensor1d([2]), tf.ones([9]), tf.zeros([1])];
 *   const at = (t: tf.Tensor) => heapOffset(backend, t);
 *   convForward(backend, blas, geometry, at(x), at(w), at(out));
 *   assertEquals(heapView(backend, at(out), 1)[0], 2);
 *   convInputGrad(backend, blas, geometry, at(x), at(w), at(out));
 *   assertEquals(heapView(backend, at(out), 1)[0], 2);
 *   const dw = tf.zeros([9]);
 *   convFilterGrad(backend, blas, geometry, at(x), at(x), at(dw));
 *   assertEquals(heapView(backend, at(dw), 9)[4], 4); // only the centre tap sees the input
 *   tf.dispose([x, w, out, dw]);
 *   blas.close();
 * }
 * ```
 */
export function convInputGrad(
  backend: WasmBackend,
  blas: Blas,
  geometry: ConvGeometry,
  dyOffset: number,
  filterOffset: number,
  dxOffset: number,
): void {
  const g = geometry;
  const [outHeight, outWidth] = outSize(g);
  const c = g.inChannels;
  const co = g.outChannels;
  const taps = g.filterHeight * g.filterWidth;
  if (isPointwise(g) || g.stride > 1) {
    const m = g.batch * outHeight * outWidth;
    const blocks = g.stride > 1 ? heapAlloc(backend, m * taps * c) : dxOffset;
    blas.gemm({
      m,
      n: taps * c,
      k: co,
      a: heapView(backend, dyOffset, m * co),
      b: heapView(backend, filterOffset, taps * c * co),
      transB: true,
      c: heapView(backend, blocks, m * taps * c),
    });
    if (g.stride > 1) {
      spaceToDepth(backend, g, dxOffset, c, false, blocks);
      heapFree(backend, blocks);
    }
    return;
  }
  // dx = conv(dy, flipped filter with in/out swapped), padding kernel - 1 - pad.
  const flipped = heapAlloc(backend, taps * c * co);
  for (let tap = 0; tap < taps; tap++) {
    blas.copy({
      rows: c,
      cols: co,
      a: heapView(backend, filterOffset + (taps - 1 - tap) * c * co * 4, c * co),
      lda: co,
      b: heapView(backend, flipped + tap * c * co * 4, c * co),
      ldb: c,
      transpose: true,
    });
  }
  const transposed: ConvGeometry = {
    batch: g.batch,
    inHeight: outHeight,
    inWidth: outWidth,
    inChannels: co,
    filterHeight: g.filterHeight,
    filterWidth: g.filterWidth,
    outChannels: c,
    stride: 1,
    padTop: g.filterHeight - 1 - g.padTop,
    padBottom: g.filterHeight - 1 - g.padBottom,
    padLeft: g.filterWidth - 1 - g.padLeft,
    padRight: g.filterWidth - 1 - g.padRight,
  };
  convForward(backend, blas, transposed, dyOffset, flipped, dxOffset);
  heapFree(backend, flipped);
}
