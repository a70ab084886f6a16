/**
 * `Tile` for the wasm backend when it repeats a whole tensor along leading
 * axes of size 1 (a per-channel `[1, 1, 1, c]` tensor to `[n, h, w, c]`, as
 * broadcasting gradients do): the block is copied once and then doubled with
 * `copyWithin`, at memory speed. The backend's own kernel takes about 50 ms
 * for that shape. Other tilings go to the backend's own kernel.
 *
 * @module
 */
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import {
  callKernel,
  heapFloats,
  heapOffset,
  type KernelOverride,
  type WasmBackend,
} from "./wasm_heap.ts";

/**
 * How many times a tiling repeats the whole input, or 0 when it does not
 * simply repeat it (only leading axes of size 1 may have reps above 1).
 *
 * @param shape The input's shape.
 * @param reps The tiling's repetitions per axis.
 * @returns The number of whole copies, or 0.
 *
 * @example
 * ```ts
 * import { wholeRepeats } from "./tile.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(wholeRepeats([1, 1, 1, 32], [4, 64, 64, 1]), 16384);
 * assertEquals(wholeRepeats([1, 2, 3], [1, 1, 2]), 0);
 * ```
 */
export function wholeRepeats(shape: readonly number[], reps: readonly number[]): number {
  let copies = 1;
  let leading = true;
  for (const [axis, size] of shape.entries()) {
    const rep = reps[axis] ?? 1;
    if (rep === 1) {
      if (size !== 1) leading = false;
      continue;
    }
    if (!leading || size !== 1) return 0;
    copies *= rep;
  }
  return copies;
}

/**
 * Repeats `block` floats at the start of `data` to fill `copies` blocks.
 *
 * @param data Holds the block at its start; receives the copies.
 * @param block Floats per block.
 * @param copies Blocks to fill, the first included.
 *
 * @example
 * ```ts
 * import { repeatBlock } from "./tile.ts";
 * import { assertEquals } from "../assert.ts";
 * const data = new Float32Array([1, 2, 0, 0, 0, 0]);
 * repeatBlock(data, 2, 3);
 * assertEquals([...data], [1, 2, 1, 2, 1, 2]);
 * ```
 */
export function repeatBlock(data: Float32Array, block: number, copies: number): void {
  const total = block * copies;
  let filled = block;
  while (filled < total) {
    const length = Math.min(filled, total - filled);
    data.copyWithin(filled, 0, length);
    filled += length;
  }
}

/**
 * The `Tile` kernel config for the wasm backend.
 *
 * @param original The backend's own kernel, for other tilings.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { tileConfig } from "./tile.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(tileConfig({} as never).kernelName, "Tile");
 * ```
 */
export function tileConfig(original: KernelConfig): KernelOverride {
  return {
    kernelName: "Tile",
    backendName: "wasm",
    original,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x } = inputs as { x: TensorInfo };
      const { reps } = attrs as { reps: number[] };
      const copies = wholeRepeats(x.shape, reps);
      if (x.dtype !== "float32" || copies === 0) {
        return callKernel(original, wasm, { x }, attrs ?? {});
      }
      const outShape = x.shape.map((size, axis) => size * (reps[axis] ?? 1));
      const block = x.shape.reduce((a, b) => a * b, 1);
      const out = wasm.makeOutput(outShape, "float32");
      const heap = heapFloats(wasm);
      const start = heapOffset(wasm, out) / 4;
      const data = heap.subarray(start, start + block * copies);
      const source = heapOffset(wasm, x) / 4;
      data.set(heap.subarray(source, source + block));
      repeatBlock(data, block, copies);
      return out;
    },
  };
}
