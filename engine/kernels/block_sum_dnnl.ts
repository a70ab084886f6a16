/**
 * `Sum` over axes 2 and 4 of a `[batch, h, kh, w, kw, channels]` tensor on
 * oneDNN: the sum of each `kh x kw` block of the NHWC image
 * `[batch, h*kh, w*kw, channels]` that this tensor is in memory. It is the
 * gradient of a broadcast multiply `[b, h, 1, w, 1, c] * [b, h, kh, w, kw, c]`
 * (SegNet's unpooling), which the wasm backend sums in a slow generic loop
 * (14-18 ms for 4M floats). oneDNN's average pooling with a window equal to
 * its stride, times the window's size, does it on every core.
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

/** Input elements below which the wasm kernel is faster than an FFI call. */
const MIN_ELEMENTS = 16384;

interface Entry {
  primitive: Handle;
  args: Uint8Array;
  memories: [Handle, Handle];
  desc: Handle;
}

/**
 * Block sums on oneDNN, cached per shape.
 *
 * @example
 * ```ts
 * import { openDnnl } from "../dnnl.ts";
 * import { DnnlBlockSum } from "./block_sum_dnnl.ts";
 * import { assert } from "../assert.ts";
 * const dnnl = openDnnl();
 * if (typeof dnnl !== "string") {
 *   assert(new DnnlBlockSum(dnnl).size === 0);
 *   dnnl.close();
 * }
 * ```
 */
export class DnnlBlockSum extends DnnlKernel<Entry> {
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
   * Sums each `kh x kw` block of a `[batch, h*kh, w*kw, channels]` NHWC image.
   *
   * @param wasm The wasm backend.
   * @param shape `[batch, h, kh, w, kw, channels]`.
   * @param offsets Byte offsets in the heap of the input and of the `[batch, h, w, channels]` output.
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  run(
    wasm: WasmBackend,
    shape: readonly number[],
    offsets: { x: number; out: number },
  ): boolean {
    const key = shape.join(",");
    const entry = this.cache.get(key, () => this.#build(shape));
    if (entry === null) return false;
    const dnnl = this.dnnl;
    dnnl.setHandle(entry.memories[0], heapPointer(wasm, offsets.x));
    dnnl.setHandle(entry.memories[1], heapPointer(wasm, offsets.out));
    dnnl.execute(entry.primitive, entry.args);
    return true;
  }

  #build(shape: readonly number[]): Entry | null {
    const dnnl = this.dnnl;
    const [batch, height, blockHeight, width, blockWidth, channels] = shape as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const src = dnnl.memoryDesc(
      [batch, channels, height * blockHeight, width * blockWidth],
      DNNL.nhwc,
    );
    const dst = dnnl.memoryDesc([batch, channels, height, width], DNNL.nhwc);
    const op = dnnl.poolingDesc(DNNL.poolingAvg, src, dst, [blockHeight, blockWidth]);
    // The mean times the block's size: exact, as both are powers of two for 2x2 blocks.
    const attr = dnnl.eltwiseAttr(DNNL.eltwiseLinear, blockHeight * blockWidth, 0);
    let desc;
    try {
      desc = dnnl.primitiveDesc(op, attr, null);
    } finally {
      dnnl.destroyAttr(attr);
    }
    if (desc === null) return null;
    if (dnnl.implName(desc).startsWith("ref")) {
      dnnl.destroy({ descs: [desc] });
      return null;
    }
    const memories: [Handle, Handle] = [dnnl.memory(src, false), dnnl.memory(dst, false)];
    const args = dnnl.execArgs([[DNNL.argSrc, memories[0]], [DNNL.argDst, memories[1]]]);
    return { primitive: dnnl.primitive(desc), args, memories, desc };
  }
}

/**
 * The `Sum` kernel of the wasm backend with block sums on oneDNN: a float
 * 6-D input summed over axes 2 and 4 (without kept dims) runs on it;
 * everything else goes to `fallback`.
 *
 * @param blocks oneDNN's block sums.
 * @param fallback The `Sum` registered before.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { blockSumDnnlConfig } from "./block_sum_dnnl.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(blockSumDnnlConfig({} as never, {} as never).kernelName, "Sum");
 * ```
 */
export function blockSumDnnlConfig(blocks: DnnlBlockSum, fallback: KernelConfig): KernelOverride {
  return {
    kernelName: "Sum",
    backendName: "wasm",
    original: (fallback as KernelOverride).original ?? fallback,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x } = inputs as { x: TensorInfo };
      const { axis, keepDims } = attrs as { axis: number | number[]; keepDims: boolean };
      const axes = (Array.isArray(axis) ? axis : [axis]).map((a) => a < 0 ? a + x.shape.length : a)
        .sort();
      const size = x.shape.reduce((a, b) => a * b, 1);
      if (
        x.dtype === "float32" && x.shape.length === 6 && !keepDims && axes.length === 2 &&
        axes[0] === 2 && axes[1] === 4 && size >= MIN_ELEMENTS
      ) {
        const [batch, height, , width, , channels] = x.shape as number[];
        const out = wasm.makeOutput([batch!, height!, width!, channels!], "float32");
        const ran = blocks.run(wasm, x.shape, {
          x: heapOffset(wasm, x),
          out: heapOffset(wasm, out),
        });
        if (ran) return out;
        wasm.disposeData(out.dataId);
      }
      return callKernel(fallback, wasm, inputs as Record<string, TensorInfo>, attrs ?? {});
    },
  };
}
