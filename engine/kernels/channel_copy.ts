/**
 * `Concat` and `SplitV` along the last axis (channels, NHWC) over the wasm
 * backend's heap, on oneDNN or, on the pure wasm path, on the engine's wasm
 * SIMD kernels. UNet's skip connections concatenate channels and their
 * gradient splits them again; the wasm backend copies such a tensor a row of
 * a few channels at a time (2.7 ms to concatenate two `[4, 64, 64, 16]`
 * tensors, 10 ms to split their gradient). Here each input (or output) is
 * one strided copy between a dense `[rows, channels]` block and its columns
 * of the whole: a oneDNN reorder, or `strided_copy` in `simd/kernels.c`.
 *
 * @module
 */
import { backend_util, type KernelConfig, type TensorInfo } from "@tensorflow/tfjs-core";
import { DNNL, type Dnnl, type Handle } from "../dnnl.ts";
import { DnnlKernel } from "./primitive_cache.ts";
import type { SimdKernels } from "./simd.ts";
import {
  callKernel,
  callKernelOutputs,
  heapOffset,
  heapPointer,
  type KernelOverride,
  type WasmBackend,
} from "./wasm_heap.ts";

/** Elements below which the wasm kernels are faster than FFI calls. */
const MIN_ELEMENTS = 16384;

interface Entry {
  primitive: Handle;
  args: Uint8Array;
  memories: [Handle, Handle];
  desc: Handle;
}

/** Where a block of floats lies: the byte offset of its first float in the heap, its row stride in floats. */
export type BlockAt = { offset: number; stride: number };

/** A strided copy of a `[rows, columns]` block of floats (the kernels' one need). */
export interface StridedCopy {
  /**
   * Copies a `rows x columns` block of floats between two row strides.
   *
   * @param wasm The wasm backend.
   * @param rows Rows of the block.
   * @param columns Columns of the block.
   * @param from Byte offset of the block's first float in the heap, and its row stride in floats.
   * @param to The same for the destination.
   * @returns `false` when it cannot run it (nothing is written).
   */
  copy(
    wasm: WasmBackend,
    rows: number,
    columns: number,
    from: BlockAt,
    to: BlockAt,
  ): boolean;
}

/**
 * Strided copies on the engine's wasm SIMD kernels (`strided_copy` in
 * `simd/kernels.c`): the pure wasm path's `Concat` and `SplitV` along
 * channels, which tfjs-backend-wasm runs as a slice per output (unetlike's
 * four `SplitV`s took 17 ms of a 147 ms step there).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { SimdStridedCopy } from "./channel_copy.ts";
 * import { loadSimdModule, simdKernels } from "./simd.ts";
 * import { heapOffset, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const backend = tf.backend() as WasmBackend;
 * const copies = new SimdStridedCopy(simdKernels(backend, await loadSimdModule() as WebAssembly.Module));
 * const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
 * const y = tf.zeros([2, 2]);
 * const at = heapOffset(backend, x) + 4; // columns 1 and 2
 * copies.copy(backend, 2, 2, { offset: at, stride: 3 }, { offset: heapOffset(backend, y), stride: 2 });
 * assertEquals([...y.dataSync()], [2, 3, 5, 6]);
 * tf.dispose([x, y]);
 * ```
 */
export class SimdStridedCopy implements StridedCopy {
  readonly #simd: SimdKernels;

  /** @param simd The SIMD kernels on the backend's heap. */
  constructor(simd: SimdKernels) {
    this.#simd = simd;
  }

  /** As {@linkcode StridedCopy.copy}; always runs. */
  copy(
    _wasm: WasmBackend,
    rows: number,
    columns: number,
    from: BlockAt,
    to: BlockAt,
  ): boolean {
    this.#simd.exports.strided_copy(from.offset, from.stride, to.offset, to.stride, rows, columns);
    return true;
  }
}

/**
 * Strided copies of `[rows, columns]` blocks on oneDNN, cached per shape.
 *
 * @example
 * ```ts
 * import { openDnnl } from "../dnnl.ts";
 * import { DnnlStridedCopy } from "./channel_copy.ts";
 * import { assert } from "../assert.ts";
 * const dnnl = openDnnl();
 * if (typeof dnnl !== "string") {
 *   assert(new DnnlStridedCopy(dnnl).size === 0);
 *   dnnl.close();
 * }
 * ```
 */
export class DnnlStridedCopy extends DnnlKernel<Entry> implements StridedCopy {
  /**
   * @param dnnl The oneDNN library.
   */
  constructor(dnnl: Dnnl) {
    super(dnnl, {
      release: (entry) =>
        dnnl.destroy({
          primitives: [entry.primitive],
          descs: [entry.desc],
          memories: entry.memories,
        }),
    });
  }

  /**
   * Copies a `rows x columns` block of floats between two row strides.
   *
   * @param wasm The wasm backend.
   * @param rows Rows of the block.
   * @param columns Columns of the block.
   * @param from Byte offset of the block's first float in the heap, and its row stride in floats.
   * @param to The same for the destination.
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  copy(
    wasm: WasmBackend,
    rows: number,
    columns: number,
    from: BlockAt,
    to: BlockAt,
  ): boolean {
    const key = `${rows},${columns},${from.stride},${to.stride}`;
    const entry = this.cache.get(key, () => this.#build(rows, columns, from.stride, to.stride));
    if (entry === null) return false;
    const dnnl = this.dnnl;
    dnnl.setHandle(entry.memories[0], heapPointer(wasm, from.offset));
    dnnl.setHandle(entry.memories[1], heapPointer(wasm, to.offset));
    dnnl.execute(entry.primitive, entry.args);
    return true;
  }

  #build(rows: number, columns: number, fromStride: number, toStride: number): Entry | null {
    const dnnl = this.dnnl;
    const from = dnnl.stridedDesc([rows, columns], [fromStride, 1]);
    const to = dnnl.stridedDesc([rows, columns], [toStride, 1]);
    const desc = dnnl.reorderDesc(from, to);
    if (dnnl.implName(desc).startsWith("ref")) {
      dnnl.destroy({ descs: [desc] });
      return null;
    }
    const memories: [Handle, Handle] = [dnnl.memory(from, false), dnnl.memory(to, false)];
    const args = dnnl.execArgs([[DNNL.argSrc, memories[0]], [DNNL.argDst, memories[1]]]);
    return { primitive: dnnl.primitive(desc), args, memories, desc };
  }
}

/** The last axis, if `axis` names it for a tensor of rank `rank`. */
function isLastAxis(axis: number | number[], rank: number): boolean {
  const value = Array.isArray(axis) ? axis[0] : axis;
  return Array.isArray(axis) && axis.length !== 1 ? false : value === rank - 1 || value === -1;
}

/**
 * The `Concat` kernel of the wasm backend on strided copies (oneDNN's, or
 * the engine's wasm SIMD kernel), for float tensors joined along their last
 * axis; everything else goes to `fallback`.
 *
 * @param copies The strided copies.
 * @param fallback The `Concat` registered before.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { concatChannelsConfig } from "./channel_copy.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(concatChannelsConfig({} as never, {} as never).kernelName, "Concat");
 * ```
 */
export function concatChannelsConfig(
  copies: StridedCopy,
  fallback: KernelConfig,
): KernelOverride {
  return {
    kernelName: "Concat",
    backendName: "wasm",
    original: (fallback as KernelOverride).original ?? fallback,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const parts = (Array.isArray(inputs) ? inputs : Object.values(inputs)) as TensorInfo[];
      const { axis } = attrs as { axis: number | number[] };
      const first = parts[0];
      const rank = first?.shape.length ?? 0;
      const rows = first === undefined ? 0 : first.shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const suitable = first !== undefined && parts.length > 1 && rank >= 2 &&
        isLastAxis(axis, rank) &&
        parts.every((part) =>
          part.dtype === "float32" && part.shape.length === rank &&
          part.shape.slice(0, -1).every((size, index) => size === first.shape[index]) &&
          part.shape[rank - 1]! > 0
        );
      if (suitable) {
        const columns = parts.reduce((sum, part) => sum + part.shape[rank - 1]!, 0);
        if (rows * columns >= MIN_ELEMENTS) {
          const out = wasm.makeOutput([...first.shape.slice(0, -1), columns], "float32");
          const outOffset = heapOffset(wasm, out);
          let column = 0;
          let ran = true;
          for (const part of parts) {
            const width = part.shape[rank - 1]!;
            ran &&= copies.copy(wasm, rows, width, {
              offset: heapOffset(wasm, part),
              stride: width,
            }, { offset: outOffset + 4 * column, stride: columns });
            column += width;
          }
          if (ran) return out;
          wasm.disposeData(out.dataId);
        }
      }
      return callKernel(fallback, wasm, inputs as Record<string, TensorInfo>, attrs ?? {});
    },
  };
}

/**
 * The `SplitV` kernel of the wasm backend on strided copies (oneDNN's, or
 * the engine's wasm SIMD kernel), for a float tensor split along its last
 * axis; everything else goes to `fallback`.
 *
 * @param copies The strided copies.
 * @param fallback The `SplitV` registered before.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { splitVChannelsConfig } from "./channel_copy.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(splitVChannelsConfig({} as never, {} as never).kernelName, "SplitV");
 * ```
 */
export function splitVChannelsConfig(
  copies: StridedCopy,
  fallback: KernelConfig,
): KernelOverride {
  return {
    kernelName: "SplitV",
    backendName: "wasm",
    original: (fallback as KernelOverride).original ?? fallback,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x } = inputs as { x: TensorInfo };
      const { numOrSizeSplits, axis } = attrs as {
        numOrSizeSplits: number | number[];
        axis: number;
      };
      const rank = x.shape.length;
      const size = x.shape.reduce((a, b) => a * b, 1);
      if (x.dtype === "float32" && rank >= 2 && isLastAxis(axis, rank) && size >= MIN_ELEMENTS) {
        const columns = x.shape[rank - 1]!;
        const rows = size / columns;
        const widths = backend_util.prepareSplitSize(
          x as unknown as Parameters<typeof backend_util.prepareSplitSize>[0],
          numOrSizeSplits,
          rank - 1,
        );
        if (widths.every((width) => width > 0)) {
          const outs = widths.map((width) =>
            wasm.makeOutput([...x.shape.slice(0, -1), width], "float32")
          );
          const xOffset = heapOffset(wasm, x);
          let column = 0;
          let ran = true;
          for (const [index, out] of outs.entries()) {
            const width = widths[index]!;
            ran &&= copies.copy(wasm, rows, width, {
              offset: xOffset + 4 * column,
              stride: columns,
            }, { offset: heapOffset(wasm, out), stride: width });
            column += width;
          }
          if (ran) return outs;
          for (const out of outs) wasm.disposeData(out.dataId);
        }
      }
      return callKernelOutputs(fallback, wasm, inputs as Record<string, TensorInfo>, attrs ?? {});
    },
  };
}
