/**
 * Element-wise kernels on oneDNN over the wasm backend's heap: `Relu` and
 * `Exp` forward, and ReLU's backward (for `relu_grad.ts`), for float32
 * tensors of at least {@linkcode MIN_DNNL_ELTWISE_ELEMENTS} values; smaller
 * ones stay on the wasm kernels, where a call costs less than the FFI round
 * trip.
 *
 * Why: the wasm backend's are scalar code. Measured on 2 cores: `Relu` of
 * bin's 4x64x64x32 activations 0.14 ms on wasm, 0.1 ms here; `Exp` of the
 * softmax's 16384x3 logits 0.09 ms on wasm, 0.05 ms here.
 * oneDNN's exp is its own vectorized approximation, within a few units in
 * the last place of float32 (the kernel test holds it to 2e-5 of cpu).
 *
 * @module
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { DNNL, type Dnnl, type Handle } from "../dnnl.ts";
import { DnnlKernel } from "./primitive_cache.ts";
import {
  callKernelOutputs,
  heapOffset,
  heapPointer,
  type KernelOverride,
  type WasmBackend,
} from "./wasm_heap.ts";

/** Elements below which the wasm kernels are faster than an FFI call into oneDNN. */
export const MIN_DNNL_ELTWISE_ELEMENTS = 16384;

/** The forward kernels run on oneDNN: tfjs's name and oneDNN's algorithm. */
export const DNNL_ELTWISE_KERNELS = [
  { name: "Relu", algorithm: DNNL.eltwiseRelu },
  { name: "Exp", algorithm: DNNL.eltwiseExp },
] as const;

interface Entry {
  desc: Handle;
  primitive: Handle;
  args: Uint8Array;
  /** Forward: `[x, y]`; backward: `[dy, x, dx]`. */
  memories: Handle[];
}

/** Sizes kept before the cache starts over. */
const MAX_ENTRIES = 256;

/**
 * oneDNN's element-wise primitives on the wasm heap, one per algorithm,
 * direction and element count. Tensors are taken as one dense row.
 *
 * @example
 * ```ts
 * import { openDnnl } from "../dnnl.ts";
 * import { DnnlEltwise } from "./eltwise_dnnl.ts";
 * import { assert } from "../assert.ts";
 * const dnnl = openDnnl();
 * if (typeof dnnl !== "string") {
 *   assert(new DnnlEltwise(dnnl).size === 0);
 *   dnnl.close();
 * }
 * ```
 */
export class DnnlEltwise extends DnnlKernel<Entry> {
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
   * `y = f(x)` over `length` floats.
   *
   * @param wasm The wasm backend.
   * @param algorithm `DNNL.eltwiseRelu`, `DNNL.eltwiseExp`, ...
   * @param length Elements of each tensor.
   * @param offsets Byte offsets in the heap of `x` and `y`.
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  forward(
    wasm: WasmBackend,
    algorithm: number,
    length: number,
    offsets: { x: number; y: number },
  ): boolean {
    const entry = this.cache.get(
      `f ${algorithm} ${length}`,
      () => this.#build(algorithm, length, true),
    );
    if (entry === null) return false;
    this.#run(wasm, entry, [offsets.x, offsets.y]);
    return true;
  }

  /**
   * `dx = f'(x) * dy` over `length` floats (for ReLU: `x > 0 ? dy : 0`).
   *
   * @param wasm The wasm backend.
   * @param algorithm `DNNL.eltwiseRelu`, ...
   * @param length Elements of each tensor.
   * @param offsets Byte offsets in the heap of `dy`, `x` and `dx`.
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  backward(
    wasm: WasmBackend,
    algorithm: number,
    length: number,
    offsets: { dy: number; x: number; dx: number },
  ): boolean {
    const entry = this.cache.get(
      `b ${algorithm} ${length}`,
      () => this.#build(algorithm, length, false),
    );
    if (entry === null) return false;
    this.#run(wasm, entry, [offsets.dy, offsets.x, offsets.dx]);
    return true;
  }

  #run(wasm: WasmBackend, entry: Entry, offsets: number[]): void {
    const dnnl = this.dnnl;
    offsets.forEach((offset, i) => dnnl.setHandle(entry.memories[i]!, heapPointer(wasm, offset)));
    dnnl.execute(entry.primitive, entry.args);
  }

  #build(algorithm: number, length: number, forward: boolean): Entry | null {
    const dnnl = this.dnnl;
    // Two dims: oneDNN's vectorized element-wise code takes them as one dense block.
    const data = dnnl.plainDesc([1, length], DNNL.f32);
    const op = forward
      ? dnnl.eltwiseForwardDesc(algorithm, data, 0, 0)
      : dnnl.eltwiseBackwardDesc(algorithm, data, data, 0, 0);
    const desc = dnnl.primitiveDesc(op, null, null);
    if (desc === null) return null;
    if (dnnl.implName(desc).startsWith("ref")) {
      dnnl.destroy({ descs: [desc] });
      return null;
    }
    const memories = (forward ? [0, 1] : [0, 1, 2]).map(() => dnnl.memory(data, false));
    const args = dnnl.execArgs(
      forward
        ? [[DNNL.argSrc, memories[0]!], [DNNL.argDst, memories[1]!]]
        : [[DNNL.argDiffDst, memories[0]!], [DNNL.argSrc, memories[1]!], [
          DNNL.argDiffSrc,
          memories[2]!,
        ]],
    );
    return { desc, primitive: dnnl.primitive(desc), args, memories };
  }
}

/**
 * A unary float kernel of the wasm backend on oneDNN from
 * {@linkcode MIN_DNNL_ELTWISE_ELEMENTS} values; everything else goes to
 * `fallback`.
 *
 * @param kernel Which kernel, from {@linkcode DNNL_ELTWISE_KERNELS}.
 * @param eltwise oneDNN's element-wise primitives.
 * @param fallback The kernel registered before.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { DNNL_ELTWISE_KERNELS, eltwiseDnnlConfig } from "./eltwise_dnnl.ts";
 * import { assertEquals } from "../assert.ts";
 * const config = eltwiseDnnlConfig(DNNL_ELTWISE_KERNELS[0], {} as never, {} as never);
 * assertEquals(config.kernelName, "Relu");
 * ```
 */
export function eltwiseDnnlConfig(
  kernel: (typeof DNNL_ELTWISE_KERNELS)[number],
  eltwise: DnnlEltwise,
  fallback: KernelConfig,
): KernelOverride {
  return {
    kernelName: kernel.name,
    backendName: "wasm",
    original: (fallback as KernelOverride).original ?? fallback,
    kernelFunc: (args) => {
      const wasm = args.backend as WasmBackend;
      const { x } = args.inputs as { x: TensorInfo };
      const length = x.shape.reduce((a, b) => a * b, 1);
      if (x.dtype === "float32" && length >= MIN_DNNL_ELTWISE_ELEMENTS) {
        const y = wasm.makeOutput(x.shape, "float32");
        const ran = eltwise.forward(wasm, kernel.algorithm, length, {
          x: heapOffset(wasm, x),
          y: heapOffset(wasm, y),
        });
        if (ran) return y;
        wasm.disposeData(y.dataId);
      }
      return callKernelOutputs(
        fallback,
        wasm,
        args.inputs as Record<string, TensorInfo>,
        args.attrs ?? {},
      );
    },
  };
}
