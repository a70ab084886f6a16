/**
 * Access to the wasm backend's heap for this project's kernels: where a
 * tensor's floats live, scratch buffers, and calls into the backend's own
 * kernels.
 *
 * The heap can grow on any allocation, which replaces its `ArrayBuffer`, so a
 * view taken before an allocation must not be used after it: take views with
 * {@linkcode heapView} right before use.
 *
 * @module
 */
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";
import type { BackendWasm } from "@tensorflow/tfjs-backend-wasm";
import { BACKEND_ROUTE, isBackendKernel, noteRoute, routeClock } from "../routes.ts";

/** The wasm backend as this project's kernels see it. */
export type WasmBackend = BackendWasm;

/** The parts of the Emscripten module this project uses (missing from its types). */
interface EmscriptenHeap {
  HEAPF32: Float32Array;
  _malloc(bytes: number): number;
  _free(byteOffset: number): void;
}

function heapModule(backend: WasmBackend): EmscriptenHeap {
  return backend.wasm as unknown as EmscriptenHeap;
}

/** A kernel function with the original kernel it replaces, if any. */
export interface KernelOverride extends KernelConfig {
  /** The kernel registered before this one, called for cases this one does not handle. */
  original?: KernelConfig;
}

/**
 * The byte offset of a tensor's data in the wasm heap.
 *
 * @param backend The wasm backend.
 * @param info The tensor.
 * @returns Its byte offset.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { heapFloats, heapOffset, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const x = tf.tensor1d([5, 6]);
 * const backend = tf.backend() as WasmBackend;
 * assertEquals(heapFloats(backend)[heapOffset(backend, x) / 4 + 1], 6);
 * x.dispose();
 * ```
 */
export function heapOffset(backend: WasmBackend, info: TensorInfo): number {
  const data = backend.dataIdMap.get(info.dataId);
  if (data === undefined) throw new Error("Tensor data is not on the wasm backend");
  return data.memoryOffset;
}

/** The backend's own fields {@linkcode markWritten} renews (tfjs-backend-wasm 4.22). */
interface TensorRegistry {
  dataIdNextNumber: number;
  wasm: { tfjs: { registerTensor(id: number, size: number, offset: number): void } } & {
    tfjs: { disposeData(id: number): void };
  };
}

/**
 * Tells the wasm backend that a tensor's memory was written outside a kernel
 * call (an update in place), so that nothing it derived from the old values
 * is used again: the tensor gets a new id in the backend's C++ registry, and
 * the old id is released, which runs the disposal callbacks registered on it.
 *
 * Without this, tfjs-backend-wasm's XNNPACK kernels (`Conv2D`,
 * `FusedConv2D`, `MatMul`, `_FusedMatMul`, ...) keep using the filter they
 * packed when they first saw that id, since its operator cache is keyed by
 * tensor id (`tfjs-backend-wasm/src/cc/kernels/conv2d_impl.cc`, freed by
 * `dispose_data` in `backend.cc`): a weight updated in place then trains a
 * network whose forward pass never changes, and the weight runs off to
 * infinity.
 *
 * @param backend The wasm backend.
 * @param info The tensor whose memory was written (its memory stays where it is).
 * @throws {Error} If the tensor is not on the wasm backend.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { markWritten, type WasmBackend } from "./wasm_heap.ts";
 * import { assert } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const x = tf.tensor1d([5, 6]);
 * const backend = tf.backend() as WasmBackend;
 * const before = backend.dataIdMap.get(x.dataId)!.id;
 * markWritten(backend, x);
 * assert(backend.dataIdMap.get(x.dataId)!.id !== before);
 * x.dispose();
 * ```
 */
export function markWritten(backend: WasmBackend, info: TensorInfo): void {
  const data = backend.dataIdMap.get(info.dataId);
  if (data === undefined) throw new Error("Tensor data is not on the wasm backend");
  const registry = backend as unknown as TensorRegistry;
  const size = info.shape.reduce((a, b) => a * b, 1);
  registry.wasm.tfjs.disposeData(data.id);
  data.id = registry.dataIdNextNumber++;
  registry.wasm.tfjs.registerTensor(data.id, size, data.memoryOffset);
}

/**
 * A float view of `length` floats at byte offset `byteOffset` of the heap.
 * Valid until the next allocation on the heap.
 *
 * @param backend The wasm backend.
 * @param byteOffset Where the view starts, in bytes (a multiple of 4).
 * @param length Number of floats.
 * @returns The view.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { heapOffset, heapView, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const x = tf.tensor1d([5, 6]);
 * const backend = tf.backend() as WasmBackend;
 * assertEquals([...heapView(backend, heapOffset(backend, x), 2)], [5, 6]);
 * x.dispose();
 * ```
 */
export function heapView(backend: WasmBackend, byteOffset: number, length: number): Float32Array {
  return new Float32Array(heapModule(backend).HEAPF32.buffer, byteOffset, length);
}

/**
 * The whole heap as floats. Valid until the next allocation on the heap.
 *
 * @param backend The wasm backend.
 * @returns The view; index = byte offset / 4.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { heapFloats, type WasmBackend } from "./wasm_heap.ts";
 * import { assert } from "../assert.ts";
 * await tf.setBackend("wasm");
 * assert(heapFloats(tf.backend() as WasmBackend).length > 0);
 * ```
 */
export function heapFloats(backend: WasmBackend): Float32Array {
  return heapModule(backend).HEAPF32;
}

/**
 * Allocates a scratch buffer of `length` floats on the heap.
 *
 * @param backend The wasm backend.
 * @param length Number of floats.
 * @returns Its byte offset; release it with {@linkcode heapFree}.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { heapAlloc, heapFree, heapView, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const backend = tf.backend() as WasmBackend;
 * const scratch = heapAlloc(backend, 3);
 * heapView(backend, scratch, 3).set([1, 2, 3]);
 * assertEquals(heapView(backend, scratch, 3)[2], 3);
 * heapFree(backend, scratch);
 * ```
 */
export function heapAlloc(backend: WasmBackend, length: number): number {
  // Padding of 16 floats lets a product read a few floats past a block.
  return heapModule(backend)._malloc((length + 16) * 4) >>> 0;
}

/**
 * Releases a scratch buffer of {@linkcode heapAlloc}.
 *
 * @param backend The wasm backend.
 * @param byteOffset The buffer's byte offset.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { heapAlloc, heapFree, type WasmBackend } from "./wasm_heap.ts";
 * import { assert } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const backend = tf.backend() as WasmBackend;
 * const scratch = heapAlloc(backend, 4);
 * assert(scratch % 4 === 0);
 * heapFree(backend, scratch);
 * ```
 */
export function heapFree(backend: WasmBackend, byteOffset: number): void {
  heapModule(backend)._free(byteOffset);
}

/**
 * Calls a kernel function with the wasm backend.
 *
 * @param kernel The kernel to call (a registered config or an original one).
 * @param backend The wasm backend.
 * @param inputs Named input tensors.
 * @param attrs Named attributes.
 * @returns The kernel's single output.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { callKernel, disposeInfo, heapOffset, heapView, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const backend = tf.backend() as WasmBackend;
 * const x = tf.tensor2d([[1, 2], [3, 4]]);
 * const transposed = callKernel(tf.getKernel("Transpose", "wasm")!, backend, { x }, { perm: [1, 0] });
 * assertEquals([...heapView(backend, heapOffset(backend, transposed), 4)], [1, 3, 2, 4]);
 * disposeInfo(backend, transposed);
 * x.dispose();
 * ```
 */
export function callKernel(
  kernel: KernelConfig,
  backend: WasmBackend,
  inputs: Record<string, TensorInfo>,
  attrs: NamedAttrMap,
): TensorInfo {
  const result = callKernelOutputs(kernel, backend, inputs, attrs);
  if (Array.isArray(result)) {
    throw new Error(`Kernel ${kernel.kernelName} returned several outputs`);
  }
  return result;
}

/**
 * Calls a kernel function with the wasm backend, as {@linkcode callKernel},
 * for a kernel that may return several outputs (`SplitV`). Reports the
 * backend's own kernels to a profiler (`../routes.ts`).
 *
 * @param kernel The kernel to call (a registered config or an original one).
 * @param backend The wasm backend.
 * @param inputs Named input tensors.
 * @param attrs Named attributes.
 * @returns The kernel's output or outputs.
 */
export function callKernelOutputs(
  kernel: KernelConfig,
  backend: WasmBackend,
  inputs: Record<string, TensorInfo>,
  attrs: NamedAttrMap,
): TensorInfo | TensorInfo[] {
  const since = routeClock();
  const result = (kernel.kernelFunc as KernelFunc)({ inputs, backend, attrs });
  if (since >= 0 && isBackendKernel(kernel)) noteRoute(BACKEND_ROUTE, since);
  return result;
}

/**
 * Releases an intermediate tensor made inside a kernel.
 *
 * @param backend The wasm backend.
 * @param info The tensor.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { disposeInfo, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const backend = tf.backend() as WasmBackend;
 * const before = backend.numDataIds();
 * disposeInfo(backend, backend.makeOutput([2], "float32"));
 * assertEquals(backend.numDataIds(), before);
 * ```
 */
export function disposeInfo(backend: WasmBackend, info: TensorInfo): void {
  backend.disposeData(info.dataId);
}

/**
 * A native pointer to byte offset `byteOffset` of the heap, for a library
 * called through FFI. Valid until the next allocation on the heap.
 *
 * @param backend The wasm backend.
 * @param byteOffset The byte offset.
 * @returns The pointer.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { heapOffset, heapPointer, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * const x = tf.tensor1d([5, 6]);
 * const backend = tf.backend() as WasmBackend;
 * const view = new Deno.UnsafePointerView(heapPointer(backend, heapOffset(backend, x)));
 * assertEquals(view.getFloat32(4), 6);
 * x.dispose();
 * ```
 */
export function heapPointer(backend: WasmBackend, byteOffset: number): Deno.PointerObject {
  const base = Deno.UnsafePointer.of(heapModule(backend).HEAPF32);
  if (base === null) throw new Error("The wasm heap has no address");
  const pointer = Deno.UnsafePointer.offset(base, byteOffset);
  if (pointer === null) throw new Error("The wasm heap has no address");
  return pointer;
}

/** Marks a backend whose allocations are guarded. */
const GUARDED = Symbol("segment heap guard");

/** Bytes as gigabytes, one decimal. */
function gigabytes(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GB`;
}

/**
 * Turns the wasm backend's failures to allocate into a `BackendError` that
 * says what to do. WebAssembly's 32-bit memory holds at most 4 GB; past it,
 * the backend's allocator fails inside the wasm module ("memory access out
 * of bounds") or returns offset 0, and the kernels would write over the heap's
 * first bytes. Every tensor the backend allocates goes through its `write`,
 * which this wraps on the instance; calling it again does nothing.
 *
 * @param backend The wasm backend.
 * @param error Builds the error to throw from a message (the engine's `BackendError`).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { guardHeap, type WasmBackend } from "./wasm_heap.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("wasm");
 * guardHeap(tf.backend() as WasmBackend, (message) => new Error(message));
 * assertEquals([...tf.tensor1d([1, 2]).dataSync()], [1, 2]);
 * ```
 */
export function guardHeap(backend: WasmBackend, error: (message: string) => Error): void {
  const guarded = backend as WasmBackend & { [GUARDED]?: true };
  if (guarded[GUARDED]) return;
  guarded[GUARDED] = true;
  const write = backend.write.bind(backend);
  const fail = (shape: number[], dtype: string) => {
    const count = shape.reduce((a, b) => a * b, 1);
    const bytes = count * (dtype === "complex64" ? 8 : dtype === "bool" ? 1 : 4);
    const heap = heapModule(backend).HEAPF32.buffer.byteLength;
    return error(
      `Out of memory: a tensor of ${gigabytes(bytes)} [${shape}] did not fit in the wasm ` +
        `backend's heap (${gigabytes(heap)} in use; WebAssembly allows 4 GB). Train with a ` +
        `smaller --batch-size or --size.`,
    );
  };
  backend.write = (values, shape, dtype) => {
    let dataId: ReturnType<typeof write>;
    try {
      dataId = write(values, shape, dtype);
    } catch (cause) {
      if (cause instanceof WebAssembly.RuntimeError || cause instanceof RangeError) {
        throw fail(shape, dtype);
      }
      throw cause;
    }
    const data = backend.dataIdMap.get(dataId);
    if (data !== undefined && data.memoryOffset === 0 && shape.reduce((a, b) => a * b, 1) > 0) {
      backend.dataIdMap.delete(dataId);
      throw fail(shape, dtype);
    }
    return dataId;
  };
}
