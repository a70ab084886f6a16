/**
 * `MaxPoolGrad` on oneDNN over the wasm backend's heap. The project's own
 * JavaScript kernel (`max_pool_grad.ts`) took 2.9 ms for the `nearest`
 * exercise's `[4, 64, 64, 32]` input; this one 0.08-0.15 ms, on one thread.
 *
 * oneDNN's backward pass reads a workspace (which cell of each window won)
 * that only its forward training pass writes, so each call runs that forward
 * pass on the input first, into a destination and a workspace that the cached
 * entry owns (allocated once per shape: fresh memory costs page faults on its
 * first writes), then the backward pass from `dy` into `dx`, both NHWC on the
 * heap.
 *
 * The tie rule is the cpu backend's and PyTorch's: oneDNN's forward pass takes
 * a cell only when it is strictly greater than the best so far, visiting the
 * window in row-major order, so the first maximum wins; padding cells are not
 * visited. (The rules part only on windows with no value above the lowest
 * float, -3.4e38, i.e. all `-Infinity` or `NaN`: the cpu backend then drops
 * the window's gradient, oneDNN gives it to the window's first cell, or drops
 * it when that cell is padding.) `kernels_test.ts` checks ties against cpu.
 *
 * @module
 */
import {
  backend_util,
  type KernelConfig,
  type MaxPoolGradAttrs,
  type TensorInfo,
} from "@tensorflow/tfjs-core";
import { DNNL, type Dnnl, type Handle } from "../dnnl.ts";
import { DnnlKernel } from "./primitive_cache.ts";
import {
  callKernel,
  heapOffset,
  heapPointer,
  type KernelOverride,
  type WasmBackend,
} from "./wasm_heap.ts";

/** The geometry of a 2-D max pooling, NHWC, as oneDNN takes it. */
export interface DnnlPoolGeometry {
  /** Images in the batch. */
  batch: number;
  /** Channels. */
  channels: number;
  /** Input `[height, width]`. */
  input: readonly [number, number];
  /** Output `[height, width]`. */
  output: readonly [number, number];
  /** Window `[height, width]`. */
  kernel: readonly [number, number];
  /** Strides `[height, width]`. */
  strides: readonly [number, number];
  /** Padding `[top, left]`. */
  padBefore: readonly [number, number];
  /** Padding `[bottom, right]`. */
  padAfter: readonly [number, number];
}

/** A tfjs `Conv2DInfo` of a pooling, reduced to the fields {@linkcode dnnlPoolGeometryOf} reads. */
export interface DnnlPoolInfoLike {
  batchSize: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  dataFormat: string;
  padInfo: { top: number; bottom: number; left: number; right: number };
}

/**
 * The geometry of a max pooling if oneDNN's kernel handles it, else `null`:
 * NHWC, no dilation, padding smaller than the window on every side, and an
 * output size that follows from the padding (`floor((in + pads - window) /
 * stride) + 1`, as oneDNN computes it).
 *
 * @param info The pooling as tfjs describes it (`backend_util.computePool2DInfo`).
 * @returns Its geometry, or `null`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { dnnlPoolGeometryOf } from "./pool_dnnl.ts";
 * import { assertEquals } from "../assert.ts";
 * const same = tf.backend_util.computePool2DInfo([1, 5, 3, 4], 2, 2, 1, "same");
 * assertEquals(dnnlPoolGeometryOf(same)?.padAfter, [1, 1]);
 * const dilated = tf.backend_util.computePool2DInfo([1, 5, 5, 4], 2, 1, 2, "valid");
 * assertEquals(dnnlPoolGeometryOf(dilated), null);
 * ```
 */
export function dnnlPoolGeometryOf(info: DnnlPoolInfoLike): DnnlPoolGeometry | null {
  if (info.dataFormat !== "channelsLast") return null;
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
  const { top, bottom, left, right } = info.padInfo;
  if (Math.min(top, bottom, left, right) < 0) return null;
  if (Math.max(top, bottom) >= info.filterHeight || Math.max(left, right) >= info.filterWidth) {
    return null;
  }
  const span = (size: number, pads: number, window: number, stride: number) =>
    Math.floor((size + pads - window) / stride) + 1;
  const fits =
    span(info.inHeight, top + bottom, info.filterHeight, info.strideHeight) === info.outHeight &&
    span(info.inWidth, left + right, info.filterWidth, info.strideWidth) === info.outWidth;
  const empty = Math.min(
    info.batchSize,
    info.inChannels,
    info.inHeight,
    info.inWidth,
    info.outHeight,
    info.outWidth,
  ) <= 0;
  if (!fits || empty) return null;
  return {
    batch: info.batchSize,
    channels: info.inChannels,
    input: [info.inHeight, info.inWidth],
    output: [info.outHeight, info.outWidth],
    kernel: [info.filterHeight, info.filterWidth],
    strides: [info.strideHeight, info.strideWidth],
    padBefore: [top, left],
    padAfter: [bottom, right],
  };
}

/** The forward training pass and the backward pass of one shape, with their memories. */
interface Entry {
  forward: Handle;
  forwardArgs: Uint8Array;
  backward: Handle;
  backwardArgs: Uint8Array;
  /** Memories pointed at the heap before each run. */
  x: Handle;
  dy: Handle;
  dx: Handle;
  /** Everything to destroy with the entry (the destination and workspace buffers among them). */
  owned: { primitives: Handle[]; descs: Handle[]; memories: Handle[] };
}

/** Shapes kept before the cache starts over. */
const MAX_ENTRIES = 128;

/**
 * Max-pooling gradients on oneDNN, cached per shape.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { openDnnl } from "../dnnl.ts";
 * import { DnnlMaxPoolGrad, dnnlPoolGeometryOf } from "./pool_dnnl.ts";
 * import { disposeInfo, heapOffset, heapView, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * const dnnl = openDnnl();
 * if (typeof dnnl !== "string") {
 *   await tf.setBackend("wasm");
 *   const wasm = tf.backend() as WasmBackend;
 *   const x = tf.tensor4d([-1, -3, -1, -1], [1, 2, 2, 1]); // three tied maxima
 *   const dy = tf.tensor4d([5], [1, 1, 1, 1]);
 *   const dx = wasm.makeOutput([1, 2, 2, 1], "float32");
 *   const pools = new DnnlMaxPoolGrad(dnnl);
 *   const info = tf.backend_util.computePool2DInfo([1, 2, 2, 1], 2, 2, 1, "valid");
 *   const offsets = { x: heapOffset(wasm, x), dy: heapOffset(wasm, dy), dx: heapOffset(wasm, dx) };
 *   assertEquals(pools.run(wasm, dnnlPoolGeometryOf(info)!, offsets), true);
 *   assertEquals([...heapView(wasm, offsets.dx, 4)], [5, 0, 0, 0]); // the first one wins
 *   assertEquals(pools.size, 1);
 *   pools.clear();
 *   dnnl.close();
 *   disposeInfo(wasm, dx);
 *   tf.dispose([x, dy]);
 * }
 * ```
 */
export class DnnlMaxPoolGrad extends DnnlKernel<Entry> {
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
   * `dx`, the gradient of a max pooling's input: each window's `dy` added to
   * the window's first maximum.
   *
   * @param wasm The wasm backend.
   * @param geometry The pooling.
   * @param offsets Byte offsets in the heap of the input `x`, of `dy` and of the output `dx` (NHWC).
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  run(
    wasm: WasmBackend,
    geometry: DnnlPoolGeometry,
    offsets: { x: number; dy: number; dx: number },
  ): boolean {
    // Threads: the cores other processes leave free (Dnnl.threads). On 2 cores other
    // processes also used, [4, 64, 64, 32] took 0.09-0.15 ms on one, 0.17-0.21 on two.
    const key = shapeKey(geometry);
    const entry = this.cache.get(key, () => this.#build(geometry));
    if (entry === null) return false;
    const dnnl = this.dnnl;
    // `dx` is allocated before this call and nothing here allocates on the heap.
    dnnl.setHandle(entry.x, heapPointer(wasm, offsets.x));
    dnnl.setHandle(entry.dy, heapPointer(wasm, offsets.dy));
    dnnl.setHandle(entry.dx, heapPointer(wasm, offsets.dx));
    dnnl.execute(entry.forward, entry.forwardArgs);
    dnnl.execute(entry.backward, entry.backwardArgs);
    return true;
  }

  #build(g: DnnlPoolGeometry): Entry | null {
    const dnnl = this.dnnl;
    const src = dnnl.memoryDesc([g.batch, g.channels, ...g.input], DNNL.nhwc);
    const dst = dnnl.memoryDesc([g.batch, g.channels, ...g.output], DNNL.nhwc);
    const shape = { strides: g.strides, padBefore: g.padBefore, padAfter: g.padAfter };
    const forwardOp = dnnl.poolingDesc(DNNL.poolingMax, src, dst, g.kernel, {
      kind: "training",
      ...shape,
    });
    const forwardDesc = dnnl.primitiveDesc(forwardOp, null, null);
    if (forwardDesc === null) return null;
    const owned: Entry["owned"] = { primitives: [], descs: [forwardDesc], memories: [] };
    const backwardOp = dnnl.poolingDesc(DNNL.poolingMax, src, dst, g.kernel, {
      kind: "backward",
      ...shape,
    });
    const backwardDesc = dnnl.primitiveDesc(backwardOp, null, forwardDesc);
    if (backwardDesc === null) {
      dnnl.destroy(owned);
      return null;
    }
    owned.descs.push(backwardDesc);
    // oneDNN's reference code is far slower than the JavaScript kernel.
    if (
      dnnl.implName(forwardDesc).startsWith("ref") || dnnl.implName(backwardDesc).startsWith("ref")
    ) {
      dnnl.destroy(owned);
      return null;
    }
    const workspaceDesc = dnnl.queryDesc(forwardDesc, DNNL.queryWorkspaceMd);
    const x = dnnl.memory(src, false);
    const y = dnnl.memory(dst, true);
    const workspace = dnnl.memory(workspaceDesc, true);
    const dy = dnnl.memory(dst, false);
    const dx = dnnl.memory(src, false);
    owned.memories.push(x, y, workspace, dy, dx);
    const forward = dnnl.primitive(forwardDesc);
    owned.primitives.push(forward);
    const backward = dnnl.primitive(backwardDesc);
    owned.primitives.push(backward);
    return {
      forward,
      forwardArgs: dnnl.execArgs([
        [DNNL.argSrc, x],
        [DNNL.argDst, y],
        [DNNL.argWorkspace, workspace],
      ]),
      backward,
      backwardArgs: dnnl.execArgs([
        [DNNL.argDiffDst, dy],
        [DNNL.argWorkspace, workspace],
        [DNNL.argDiffSrc, dx],
      ]),
      x,
      dy,
      dx,
      owned,
    };
  }
}

function shapeKey(g: DnnlPoolGeometry): string {
  return [
    g.batch,
    g.channels,
    ...g.input,
    ...g.output,
    ...g.kernel,
    ...g.strides,
    ...g.padBefore,
    ...g.padAfter,
  ].join(",");
}

/**
 * The `MaxPoolGrad` kernel of the wasm backend on oneDNN: float NHWC poolings
 * that {@linkcode dnnlPoolGeometryOf} accepts run on it; everything else, and
 * every shape oneDNN declines, goes to `fallback`.
 *
 * @param pools oneDNN's max-pooling gradients.
 * @param fallback The `MaxPoolGrad` to use otherwise (`max_pool_grad.ts`).
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { maxPoolGradDnnlConfig } from "./pool_dnnl.ts";
 * import { maxPoolGradWasmConfig } from "./max_pool_grad.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(
 *   maxPoolGradDnnlConfig({} as never, maxPoolGradWasmConfig).kernelName,
 *   "MaxPoolGrad",
 * );
 * ```
 */
export function maxPoolGradDnnlConfig(
  pools: DnnlMaxPoolGrad,
  fallback: KernelConfig,
): KernelOverride {
  return {
    kernelName: "MaxPoolGrad",
    backendName: "wasm",
    original: Object.hasOwn(fallback, "original")
      ? (fallback as KernelOverride).original
      : fallback,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { dy, input } = inputs as { dy: TensorInfo; input: TensorInfo };
      const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as MaxPoolGradAttrs;
      if (input.dtype === "float32" && dy.dtype === "float32" && input.shape.length === 4) {
        const info = backend_util.computePool2DInfo(
          input.shape as [number, number, number, number],
          filterSize,
          strides,
          1,
          pad,
          dimRoundingMode,
        );
        const geometry = dnnlPoolGeometryOf(info);
        if (
          geometry !== null && dy.shape.every((size, axis) => size === info.outShape[axis])
        ) {
          const dx = wasm.makeOutput(input.shape, "float32");
          const ran = pools.run(wasm, geometry, {
            x: heapOffset(wasm, input),
            dy: heapOffset(wasm, dy),
            dx: heapOffset(wasm, dx),
          });
          if (ran) return dx;
          wasm.disposeData(dx.dataId);
        }
      }
      return callKernel(fallback, wasm, inputs as Record<string, TensorInfo>, attrs ?? {});
    },
  };
}
