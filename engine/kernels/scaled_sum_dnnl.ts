/**
 * `out = sa * a + sb * b` over float32 arrays of the wasm heap, on oneDNN's
 * `sum` primitive (oneDNN docs, "Sum": `dst = sum(scales[i] * src_i)`,
 * `dnnl_sum_primitive_desc_create`), multi-threaded. SGD with momentum on
 * large variables is two of these (`momentum.ts`): one pass over memory
 * each, where TensorFlow.js's kernels take four.
 *
 * Rounding: oneDNN 2.6.3's implementation for dense f32 (`simple:any`)
 * writes `sa * a` rounded to float32, then adds `sb * b` rounded to float32
 * and rounds the sum, as TensorFlow.js's `Multiply` then `Add` do when one
 * factor is 1: on Debian's `libdnnl2` the results were equal to the bit
 * (`kernels_test.ts` checks them against the cpu backend). oneDNN's
 * reference code (`ref:`) is turned down.
 *
 * @module
 */
import { DNNL, type Dnnl, type Handle } from "../dnnl.ts";
import { DnnlKernel } from "./primitive_cache.ts";
import { heapPointer, type WasmBackend } from "./wasm_heap.ts";

interface Entry {
  desc: Handle;
  primitive: Handle;
  args: Uint8Array;
  /** `[a, b, out]`. */
  memories: [Handle, Handle, Handle];
}

/**
 * Lengths and scales kept before the cache starts over. A learning-rate
 * schedule gives new scales every step: the cache then fills and is
 * rebuilt (a sum's primitive takes 10-40 us to build).
 */
const MAX_ENTRIES = 256;

/**
 * oneDNN sums `out = sa * a + sb * b` on the wasm heap, one primitive per
 * length, pair of scales and thread count.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { openDnnl } from "../dnnl.ts";
 * import { DnnlScaledSum } from "./scaled_sum_dnnl.ts";
 * import { disposeInfo, heapOffset, heapView, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * const dnnl = openDnnl();
 * if (typeof dnnl !== "string") {
 *   await tf.setBackend("wasm");
 *   const wasm = tf.backend() as WasmBackend;
 *   const [a, b] = [tf.tensor1d([1, 2, 3]), tf.tensor1d([10, 20, 30])];
 *   const out = wasm.makeOutput([3], "float32");
 *   const sums = new DnnlScaledSum(dnnl);
 *   const offsets = { a: heapOffset(wasm, a), b: heapOffset(wasm, b), out: heapOffset(wasm, out) };
 *   assertEquals(sums.run(wasm, 3, [-0.5, 1], offsets), true);
 *   assertEquals([...heapView(wasm, offsets.out, 3)], [9.5, 19, 28.5]);
 *   assertEquals([sums.size, sums.runs], [1, 1]);
 *   sums.clear();
 *   dnnl.close();
 *   disposeInfo(wasm, out);
 *   tf.dispose([a, b]);
 * }
 * ```
 */
export class DnnlScaledSum extends DnnlKernel<Entry> {
  #runs = 0;

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

  /** Sums run on oneDNN so far (tests check that the path is taken). */
  get runs(): number {
    return this.#runs;
  }

  /**
   * Whether {@linkcode DnnlScaledSum.run} runs this length and pair of
   * scales on oneDNN (building its primitive now if needed).
   *
   * @param length Floats in each array.
   * @param scales `[sa, sb]`.
   * @returns `false` when oneDNN declines it.
   */
  accepts(length: number, scales: readonly [number, number]): boolean {
    return this.#entry(length, scales) !== null;
  }

  /**
   * `out[i] = sa * a[i] + sb * b[i]` for `i < length`. `out` may be `a`
   * (oneDNN allows its first source in place), not `b`.
   *
   * @param wasm The wasm backend.
   * @param length Floats in each array.
   * @param scales `[sa, sb]`, the factors of `a` and `b` (used as float32s).
   * @param offsets Byte offsets in the heap of `a`, `b` and `out`, each `length` floats.
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  run(
    wasm: WasmBackend,
    length: number,
    scales: readonly [number, number],
    offsets: { a: number; b: number; out: number },
  ): boolean {
    // Threads: the cores other processes leave free (Dnnl.threads).
    const entry = this.#entry(length, scales);
    if (entry === null) return false;
    const dnnl = this.dnnl;
    // Pointers taken now: the caller allocated `out` before this call, nothing here allocates.
    dnnl.setHandle(entry.memories[0], heapPointer(wasm, offsets.a));
    dnnl.setHandle(entry.memories[1], heapPointer(wasm, offsets.b));
    dnnl.setHandle(entry.memories[2], heapPointer(wasm, offsets.out));
    dnnl.execute(entry.primitive, entry.args);
    this.#runs++;
    return true;
  }

  #entry(length: number, scales: readonly [number, number]): Entry | null {
    const [sa, sb] = [Math.fround(scales[0]), Math.fround(scales[1])];
    return this.cache.get(`${length} ${sa} ${sb}`, () => this.#build(length, [sa, sb]));
  }

  #build(length: number, scales: [number, number]): Entry | null {
    const dnnl = this.dnnl;
    // Two dims, as the other oneDNN kernels here give dense data.
    const data = dnnl.plainDesc([1, length], DNNL.f32);
    const desc = dnnl.sumDesc(data, scales, [data, data]);
    if (desc === null) return null;
    if (dnnl.implName(desc).startsWith("ref")) {
      // oneDNN's reference sum is a chain of reorders: slower, and its rounding is not checked.
      dnnl.destroy({ descs: [desc] });
      return null;
    }
    const memories: [Handle, Handle, Handle] = [
      dnnl.memory(data, false),
      dnnl.memory(data, false),
      dnnl.memory(data, false),
    ];
    const args = dnnl.execArgs([
      [DNNL.argMultipleSrc, memories[0]],
      [DNNL.argMultipleSrc + 1, memories[1]],
      [DNNL.argDst, memories[2]],
    ]);
    return { desc, primitive: dnnl.primitive(desc), args, memories };
  }
}
