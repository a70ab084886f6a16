/**
 * `ResizeNearestNeighbor` and `ResizeNearestNeighborGrad` on oneDNN over the
 * wasm backend's heap, for upsampling by whole factors
 * (`tf.layers.upSampling2d`): the wasm backend's own resize took 0.9 ms and
 * `resize_nearest_neighbor_grad.ts` 0.7 ms for the `nearest` exercise's
 * `[4, 32, 32, 32] -> [4, 64, 64, 32]`.
 *
 * Without `alignCorners` and `halfPixelCenters`, tfjs copies output row `y`
 * from input row `floor(y * in / out)` (columns alike); when `out = k * in`
 * for a whole `k`, that is `floor(y / k)` (checked for every `k` up to 8 and
 * output sizes up to 160000, in double and single precision), so the output
 * is the input with each pixel repeated over a `k x k` block:
 *
 * - the forward pass is one oneDNN reorder from the input seen as
 *   `[batch, h, kh, w, kw, channels]` with strides of 0 along `kh` and `kw`
 *   into the dense output. (oneDNN's resampling primitive computes the same,
 *   but its forward kernel writes large outputs with non-temporal stores,
 *   which need a 64-byte-aligned destination; the wasm heap aligns tensors to
 *   8 bytes, and the process crashed.)
 * - the gradient is oneDNN's nearest resampling backward, which sums each
 *   block of `dy` (its source rule, `round((y + 0.5) * in / out - 0.5)`, is
 *   also `floor(y / k)` for whole factors).
 *
 * Every other case (downsampling, fractional factors, either flag) runs on
 * the fallback kernels.
 *
 * @module
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { DNNL, type Dnnl, type Handle } from "../dnnl.ts";
import { DnnlKernel } from "./primitive_cache.ts";
import {
  callKernel,
  heapOffset,
  heapPointer,
  type KernelOverride,
  type WasmBackend,
} from "./wasm_heap.ts";

/** An upsampling by whole factors of NHWC images, as oneDNN takes it. */
export interface DnnlUpsampling {
  /** Images in the batch. */
  batch: number;
  /** Channels. */
  channels: number;
  /** Input `[height, width]`. */
  input: readonly [number, number];
  /** Output `[height, width]`, a whole multiple of the input's on each axis. */
  output: readonly [number, number];
}

/**
 * The upsampling a nearest-neighbour resize is, if oneDNN computes exactly
 * what tfjs does, else `null`: float NHWC, neither `alignCorners` nor
 * `halfPixelCenters`, and each output side a whole multiple (1 included) of
 * the input's.
 *
 * @param inShape The resize's input shape, `[batch, height, width, channels]`.
 * @param outShape Its output shape.
 * @param flags The resize's attributes.
 * @returns The upsampling, or `null`.
 *
 * @example
 * ```ts
 * import { dnnlUpsamplingOf } from "./resize_dnnl.ts";
 * import { assertEquals } from "../assert.ts";
 * const flags = { alignCorners: false, halfPixelCenters: false };
 * assertEquals(dnnlUpsamplingOf([2, 4, 3, 8], [2, 8, 9, 8], flags)?.output, [8, 9]);
 * assertEquals(dnnlUpsamplingOf([2, 4, 3, 8], [2, 6, 6, 8], flags), null);
 * assertEquals(dnnlUpsamplingOf([2, 4, 3, 8], [2, 8, 6, 8], { ...flags, alignCorners: true }), null);
 * ```
 */
export function dnnlUpsamplingOf(
  inShape: readonly number[],
  outShape: readonly number[],
  flags: { alignCorners?: boolean; halfPixelCenters?: boolean },
): DnnlUpsampling | null {
  if (inShape.length !== 4 || outShape.length !== 4) return null;
  if (flags.alignCorners === true || flags.halfPixelCenters === true) return null;
  const [batch, inHeight, inWidth, channels] = inShape as [number, number, number, number];
  const [outBatch, outHeight, outWidth, outChannels] = outShape as [
    number,
    number,
    number,
    number,
  ];
  if (outBatch !== batch || outChannels !== channels) return null;
  if (Math.min(batch, channels, inHeight, inWidth) <= 0) return null;
  if (outHeight % inHeight !== 0 || outWidth % inWidth !== 0) return null;
  if (outHeight < inHeight || outWidth < inWidth) return null;
  return { batch, channels, input: [inHeight, inWidth], output: [outHeight, outWidth] };
}

/** One compiled direction of one shape. */
interface Entry {
  primitive: Handle;
  args: Uint8Array;
  /** The source (or its gradient) and the destination (or its gradient), pointed at the heap. */
  memories: [Handle, Handle];
  owned: { primitives: Handle[]; descs: Handle[]; memories: Handle[] };
}

/** Shapes kept before the cache starts over. */
const MAX_ENTRIES = 128;

/**
 * Nearest-neighbour upsampling and its gradient on oneDNN, cached per shape.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { openDnnl } from "../dnnl.ts";
 * import { DnnlResize, dnnlUpsamplingOf } from "./resize_dnnl.ts";
 * import { disposeInfo, heapOffset, heapView, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * const dnnl = openDnnl();
 * if (typeof dnnl !== "string") {
 *   await tf.setBackend("wasm");
 *   const wasm = tf.backend() as WasmBackend;
 *   const resize = new DnnlResize(dnnl);
 *   const shape = dnnlUpsamplingOf([1, 1, 2, 1], [1, 1, 4, 1], {})!;
 *   const x = tf.tensor4d([1, 2], [1, 1, 2, 1]);
 *   const y = wasm.makeOutput([1, 1, 4, 1], "float32");
 *   assertEquals(resize.forward(wasm, shape, { x: heapOffset(wasm, x), y: heapOffset(wasm, y) }), true);
 *   assertEquals([...heapView(wasm, heapOffset(wasm, y), 4)], [1, 1, 2, 2]);
 *   const dy = tf.tensor4d([1, 2, 3, 4], [1, 1, 4, 1]);
 *   const dx = wasm.makeOutput([1, 1, 2, 1], "float32");
 *   resize.backward(wasm, shape, { dy: heapOffset(wasm, dy), dx: heapOffset(wasm, dx) });
 *   assertEquals([...heapView(wasm, heapOffset(wasm, dx), 2)], [3, 7]);
 *   resize.clear();
 *   dnnl.close();
 *   disposeInfo(wasm, y);
 *   disposeInfo(wasm, dx);
 *   tf.dispose([x, dy]);
 * }
 * ```
 */
export class DnnlResize extends DnnlKernel<Entry> {
  /**
   * @param dnnl The oneDNN library.
   */
  constructor(dnnl: Dnnl) {
    super(dnnl, {
      release: (entry) => dnnl.destroy(entry.owned),
      maxEntries: MAX_ENTRIES,
    });
  }

  /**
   * Upsamples: each input pixel copied to its block of the output.
   *
   * @param wasm The wasm backend.
   * @param shape The upsampling.
   * @param offsets Byte offsets in the heap of the input and of the output (NHWC).
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  forward(wasm: WasmBackend, shape: DnnlUpsampling, offsets: { x: number; y: number }): boolean {
    return this.#run(wasm, "forward", shape, offsets.x, offsets.y);
  }

  /**
   * The gradient of the upsampling: each input pixel gets the sum of its block of `dy`.
   *
   * @param wasm The wasm backend.
   * @param shape The upsampling.
   * @param offsets Byte offsets in the heap of `dy` and of the output `dx` (NHWC).
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  backward(wasm: WasmBackend, shape: DnnlUpsampling, offsets: { dy: number; dx: number }): boolean {
    return this.#run(wasm, "backward", shape, offsets.dx, offsets.dy);
  }

  #run(
    wasm: WasmBackend,
    kind: "forward" | "backward",
    shape: DnnlUpsampling,
    source: number,
    destination: number,
  ): boolean {
    // Threads: the cores other processes leave free (Dnnl.threads). On 2 cores other
    // processes also used, the gradient of [4, 32, 32, 32] -> [4, 64, 64, 32] took
    // 0.11 ms on one thread, 0.13-0.16 ms on two.
    const key = `${kind} ${
      [shape.batch, shape.channels, ...shape.input, ...shape.output].join(",")
    }`;
    const entry = this.cache.get(key, () => this.#build(kind, shape));
    if (entry === null) return false;
    const dnnl = this.dnnl;
    dnnl.setHandle(entry.memories[0], heapPointer(wasm, source));
    dnnl.setHandle(entry.memories[1], heapPointer(wasm, destination));
    dnnl.execute(entry.primitive, entry.args);
    return true;
  }

  #build(kind: "forward" | "backward", shape: DnnlUpsampling): Entry | null {
    return kind === "forward" ? this.#buildForward(shape) : this.#buildBackward(shape);
  }

  /** A reorder from the input, broadcast over each block, into the dense output. */
  #buildForward(shape: DnnlUpsampling): Entry | null {
    const dnnl = this.dnnl;
    const { batch, channels } = shape;
    const [height, width] = shape.input;
    const [blockHeight, blockWidth] = [shape.output[0] / height, shape.output[1] / width];
    const blocks = [batch, height, blockHeight, width, blockWidth, channels];
    const from = dnnl.stridedDesc(blocks, [
      height * width * channels,
      width * channels,
      0,
      channels,
      0,
      1,
    ]);
    const to = dnnl.plainDesc(blocks, DNNL.f32);
    const desc = dnnl.reorderDesc(from, to);
    const owned: Entry["owned"] = { primitives: [], descs: [desc], memories: [] };
    if (dnnl.implName(desc).startsWith("ref")) {
      dnnl.destroy(owned);
      return null;
    }
    const memories: [Handle, Handle] = [dnnl.memory(from, false), dnnl.memory(to, false)];
    owned.memories.push(...memories);
    const primitive = dnnl.primitive(desc);
    owned.primitives.push(primitive);
    const args = dnnl.execArgs([[DNNL.argSrc, memories[0]], [DNNL.argDst, memories[1]]]);
    return { primitive, args, memories, owned };
  }

  /** Nearest resampling backward, with the forward primitive descriptor as its hint. */
  #buildBackward(shape: DnnlUpsampling): Entry | null {
    const dnnl = this.dnnl;
    const src = dnnl.memoryDesc([shape.batch, shape.channels, ...shape.input], DNNL.nhwc);
    const dst = dnnl.memoryDesc([shape.batch, shape.channels, ...shape.output], DNNL.nhwc);
    const factors = [
      shape.output[0] / shape.input[0],
      shape.output[1] / shape.input[1],
    ] as const;
    const forwardOp = dnnl.resamplingDesc("forward", DNNL.resamplingNearest, src, dst, factors);
    const hint = dnnl.primitiveDesc(forwardOp, null, null);
    if (hint === null) return null;
    const owned: Entry["owned"] = { primitives: [], descs: [hint], memories: [] };
    const op = dnnl.resamplingDesc("backward", DNNL.resamplingNearest, src, dst, factors);
    const desc = dnnl.primitiveDesc(op, null, hint);
    if (desc === null) {
      dnnl.destroy(owned);
      return null;
    }
    owned.descs.push(desc);
    // oneDNN's reference code is slower than the wasm kernel.
    if (dnnl.implName(desc).startsWith("ref")) {
      dnnl.destroy(owned);
      return null;
    }
    const memories: [Handle, Handle] = [dnnl.memory(src, false), dnnl.memory(dst, false)];
    owned.memories.push(...memories);
    const primitive = dnnl.primitive(desc);
    owned.primitives.push(primitive);
    const args = dnnl.execArgs([[DNNL.argDiffSrc, memories[0]], [DNNL.argDiffDst, memories[1]]]);
    return { primitive, args, memories, owned };
  }
}

/** The resize's flags from a kernel's attributes. */
function flagsOf(attrs: unknown): { alignCorners?: boolean; halfPixelCenters?: boolean } {
  return (attrs ?? {}) as { alignCorners?: boolean; halfPixelCenters?: boolean };
}

/**
 * The `ResizeNearestNeighbor` kernel of the wasm backend on oneDNN, for the
 * float upsamplings {@linkcode dnnlUpsamplingOf} accepts; everything else
 * goes to `fallback`.
 *
 * @param resize oneDNN's resampling.
 * @param fallback The `ResizeNearestNeighbor` registered before.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { resizeNearestNeighborDnnlConfig } from "./resize_dnnl.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(
 *   resizeNearestNeighborDnnlConfig({} as never, {} as never).kernelName,
 *   "ResizeNearestNeighbor",
 * );
 * ```
 */
export function resizeNearestNeighborDnnlConfig(
  resize: DnnlResize,
  fallback: KernelConfig,
): KernelOverride {
  return {
    kernelName: "ResizeNearestNeighbor",
    backendName: "wasm",
    original: (fallback as KernelOverride).original ?? fallback,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { images } = inputs as { images: TensorInfo };
      const { size } = attrs as unknown as { size: [number, number] };
      if (images.dtype === "float32" && images.shape.length === 4) {
        const [batch, , , channels] = images.shape as number[];
        const outShape = [batch!, size[0], size[1], channels!];
        const shape = dnnlUpsamplingOf(images.shape, outShape, flagsOf(attrs));
        if (shape !== null) {
          const y = wasm.makeOutput(outShape, "float32");
          if (
            resize.forward(wasm, shape, { x: heapOffset(wasm, images), y: heapOffset(wasm, y) })
          ) {
            return y;
          }
          wasm.disposeData(y.dataId);
        }
      }
      return callKernel(fallback, wasm, inputs as Record<string, TensorInfo>, attrs ?? {});
    },
  };
}

/**
 * The `ResizeNearestNeighborGrad` kernel of the wasm backend on oneDNN, for
 * the float upsamplings {@linkcode dnnlUpsamplingOf} accepts; everything else
 * goes to `fallback`.
 *
 * @param resize oneDNN's resampling.
 * @param fallback The `ResizeNearestNeighborGrad` to use otherwise
 *   (`resize_nearest_neighbor_grad.ts`).
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { resizeNearestNeighborGradDnnlConfig } from "./resize_dnnl.ts";
 * import { resizeNearestNeighborGradWasmConfig } from "./resize_nearest_neighbor_grad.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(
 *   resizeNearestNeighborGradDnnlConfig({} as never, resizeNearestNeighborGradWasmConfig).kernelName,
 *   "ResizeNearestNeighborGrad",
 * );
 * ```
 */
export function resizeNearestNeighborGradDnnlConfig(
  resize: DnnlResize,
  fallback: KernelConfig,
): KernelOverride {
  return {
    kernelName: "ResizeNearestNeighborGrad",
    backendName: "wasm",
    original: Object.hasOwn(fallback, "original")
      ? (fallback as KernelOverride).original
      : fallback,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { images, dy } = inputs as { images: TensorInfo; dy: TensorInfo };
      if (dy.dtype === "float32") {
        const shape = dnnlUpsamplingOf(images.shape, dy.shape, flagsOf(attrs));
        if (shape !== null) {
          const dx = wasm.makeOutput(images.shape, "float32");
          if (
            resize.backward(wasm, shape, { dy: heapOffset(wasm, dy), dx: heapOffset(wasm, dx) })
          ) {
            return dx;
          }
          wasm.disposeData(dx.dataId);
        }
      }
      return callKernel(fallback, wasm, inputs as Record<string, TensorInfo>, attrs ?? {});
    },
  };
}
