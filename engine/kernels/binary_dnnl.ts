/**
 * Element-wise binary kernels of float tensors on oneDNN over the wasm
 * backend's heap. Only `GreaterEqual` (SegNet's pooling masks compare
 * tensors of megabytes) is worth it: the wasm backend's comparison took
 * 3.0-3.5 ms on 1M floats, oneDNN 0.15 ms. `Add`, `Sub` and `Multiply`
 * measured no faster on oneDNN than on the wasm kernels (0.15-0.6 ms for
 * 1-2.4M floats either way: memory-bound), so they stay there.
 *
 * One operand may broadcast (the second, or either for a commutative
 * operation). Adjacent axes that broadcast alike are merged first, so a
 * per-channel operand becomes `[rows, channels]` against `[1, channels]`,
 * the patterns oneDNN's vectorized code takes. Small tensors stay on the
 * wasm kernels, where a call costs less than the FFI round trip.
 *
 * @module
 */
import { backend_util, type KernelConfig, type TensorInfo } from "@tensorflow/tfjs-core";
import { DNNL, type Dnnl, type Handle } from "../dnnl.ts";
import { DnnlKernel } from "./primitive_cache.ts";
import {
  callKernel,
  heapOffset,
  heapPointer,
  type KernelOverride,
  type WasmBackend,
} from "./wasm_heap.ts";

/** Output elements below which the wasm kernel is faster than an FFI call. */
export const MIN_DNNL_ELEMENTS = 16384;

/** The binary kernels run on oneDNN: name, algorithm, commutative, output type. */
export const DNNL_BINARY_KERNELS = [
  { name: "GreaterEqual", algorithm: DNNL.binaryGe, commutative: false, dtype: "bool" },
] as const;

/**
 * The dims of `dst = a op b` with `b` broadcast, with adjacent axes merged
 * where `b` broadcasts alike, or `null` when `a` itself would broadcast.
 *
 * @param a The first operand's shape.
 * @param b The second operand's shape.
 * @returns `[aDims, bDims]` of equal length, or `null`.
 *
 * @example
 * ```ts
 * import { mergedDims } from "./binary_dnnl.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(mergedDims([4, 8, 8, 32], [32]), [[256, 32], [1, 32]]);
 * assertEquals(mergedDims([4, 8], [4, 8]), [[1, 32], [1, 32]]);
 * assertEquals(mergedDims([3, 3], []), [[1, 9], [1, 1]]);
 * assertEquals(mergedDims([1, 8], [4, 8]), null);
 * ```
 */
export function mergedDims(
  a: readonly number[],
  b: readonly number[],
): [number[], number[]] | null {
  if (b.length > a.length) {
    if (b.slice(0, b.length - a.length).some((size) => size !== 1)) return null;
    b = b.slice(b.length - a.length);
  }
  const padded = [...new Array<number>(a.length - b.length).fill(1), ...b];
  const aDims: number[] = [];
  const bDims: number[] = [];
  let previous: boolean | null = null;
  for (let axis = 0; axis < a.length; axis++) {
    const size = a[axis]!;
    const other = padded[axis]!;
    if (other !== size && other !== 1) return null;
    if (size === 1) continue; // an axis of 1 merges with anything
    const full = other === size;
    if (previous === full) {
      aDims[aDims.length - 1]! *= size;
      bDims[bDims.length - 1]! *= full ? size : 1;
    } else {
      aDims.push(size);
      bDims.push(full ? size : 1);
      previous = full;
    }
  }
  // oneDNN's vectorized code wants at least two dims (one is its reference code).
  if (aDims.length < 2) return [[1, aDims[0] ?? 1], [1, bDims[0] ?? 1]];
  return [aDims, bDims];
}

interface Entry {
  primitive: Handle;
  args: Uint8Array;
  memories: [Handle, Handle, Handle];
  desc: Handle;
}

/** Shapes kept before the cache starts over. */
const MAX_ENTRIES = 512;

/**
 * oneDNN binary operations on the wasm heap, cached per shape.
 *
 * @example
 * ```ts
 * import { openDnnl } from "../dnnl.ts";
 * import { DnnlBinary } from "./binary_dnnl.ts";
 * import { assert } from "../assert.ts";
 * const dnnl = openDnnl();
 * if (typeof dnnl !== "string") {
 *   assert(new DnnlBinary(dnnl).size === 0);
 *   dnnl.close();
 * }
 * ```
 */
export class DnnlBinary extends DnnlKernel<Entry> {
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
      maxEntries: MAX_ENTRIES,
    });
  }

  /**
   * `out = a op b`, `b` broadcast to `a`'s shape.
   *
   * @param wasm The wasm backend.
   * @param algorithm `DNNL.binaryAdd`, ...
   * @param dims Merged dims of `a` and `b` ({@linkcode mergedDims}).
   * @param offsets Byte offsets in the heap of `a`, `b` and `out`.
   * @param boolOut Whether `out` is a bool tensor (one byte each) rather than float.
   * @returns `false` when oneDNN cannot run it fast (nothing is written).
   */
  run(
    wasm: WasmBackend,
    algorithm: number,
    dims: [number[], number[]],
    offsets: { a: number; b: number; out: number },
    boolOut: boolean,
  ): boolean {
    const key = `${algorithm} ${dims[0]} ${dims[1]} ${boolOut}`;
    const entry = this.cache.get(key, () => this.#build(algorithm, dims, boolOut));
    if (entry === null) return false;
    const dnnl = this.dnnl;
    dnnl.setHandle(entry.memories[0], heapPointer(wasm, offsets.a));
    dnnl.setHandle(entry.memories[1], heapPointer(wasm, offsets.b));
    dnnl.setHandle(entry.memories[2], heapPointer(wasm, offsets.out));
    dnnl.execute(entry.primitive, entry.args);
    return true;
  }

  #build(algorithm: number, dims: [number[], number[]], boolOut: boolean): Entry | null {
    const dnnl = this.dnnl;
    const a = dnnl.plainDesc(dims[0], DNNL.f32);
    const b = dnnl.plainDesc(dims[1], DNNL.f32);
    const out = dnnl.plainDesc(dims[0], boolOut ? DNNL.u8 : DNNL.f32);
    const desc = dnnl.primitiveDesc(dnnl.binaryDesc(algorithm, a, b, out), null, null);
    if (desc === null) return null;
    if (dnnl.implName(desc).startsWith("ref")) {
      // oneDNN's reference code computes every index: slower than the wasm kernel.
      dnnl.destroy({ descs: [desc] });
      return null;
    }
    const memories: [Handle, Handle, Handle] = [
      dnnl.memory(a, false),
      dnnl.memory(b, false),
      dnnl.memory(out, false),
    ];
    const args = dnnl.execArgs([
      [DNNL.argSrc, memories[0]],
      [DNNL.argSrc1, memories[1]],
      [DNNL.argDst, memories[2]],
    ]);
    return { primitive: dnnl.primitive(desc), args, memories, desc };
  }
}

/**
 * A binary kernel of the wasm backend on oneDNN for float tensors of at
 * least {@linkcode MIN_DNNL_ELEMENTS} elements; everything else goes to
 * `fallback`.
 *
 * @param kernel Which kernel, from {@linkcode DNNL_BINARY_KERNELS}.
 * @param binary oneDNN's binary operations.
 * @param fallback The kernel registered before.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { binaryDnnlConfig, DNNL_BINARY_KERNELS } from "./binary_dnnl.ts";
 * import { assertEquals } from "../assert.ts";
 * const config = binaryDnnlConfig(DNNL_BINARY_KERNELS[0], {} as never, {} as never);
 * assertEquals(config.kernelName, "GreaterEqual");
 * ```
 */
export function binaryDnnlConfig(
  kernel: (typeof DNNL_BINARY_KERNELS)[number],
  binary: DnnlBinary,
  fallback: KernelConfig,
): KernelOverride {
  return {
    kernelName: kernel.name,
    backendName: "wasm",
    original: (fallback as KernelOverride).original ?? fallback,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
      if (a.dtype === "float32" && b.dtype === "float32") {
        const size = (shape: readonly number[]) => shape.reduce((x, y) => x * y, 1);
        let [first, second] = [a, b];
        let dims = mergedDims(a.shape, b.shape);
        if (dims === null && kernel.commutative) {
          [first, second] = [b, a];
          dims = mergedDims(b.shape, a.shape);
        }
        if (dims !== null && size(first.shape) >= MIN_DNNL_ELEMENTS) {
          const shape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
          const out = wasm.makeOutput(shape, kernel.dtype);
          const ran = binary.run(wasm, kernel.algorithm, dims, {
            a: heapOffset(wasm, first),
            b: heapOffset(wasm, second),
            out: heapOffset(wasm, out),
          }, kernel.dtype === "bool");
          if (ran) return out;
          wasm.disposeData(out.dataId);
        }
      }
      return callKernel(fallback, wasm, inputs as Record<string, TensorInfo>, attrs ?? {});
    },
  };
}
