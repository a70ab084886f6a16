/**
 * Batch normalization with given statistics on oneDNN over the wasm backend's
 * heap (the forward `FusedBatchNorm` kernel when oneDNN is installed):
 * `y = (x - mean) / sqrt(variance + epsilon) * scale + offset` per channel,
 * on every core, channels last, with one compiled primitive per shape.
 *
 * @module
 */
import { DNNL, type Dnnl, type Handle } from "../dnnl.ts";
import { heapPointer, type WasmBackend } from "./wasm_heap.ts";

/** Byte offsets in the heap of one batch normalization's tensors (`null`: absent). */
export interface BatchNormOffsets {
  /** The input, `[rows, channels]` channels last. */
  x: number;
  /** Per-channel mean. */
  mean: number;
  /** Per-channel variance. */
  variance: number;
  /** Per-channel scale, or `null` for 1. */
  scale: number | null;
  /** Per-channel offset, or `null` for 0. */
  offset: number | null;
  /** The output, shaped as `x`. */
  y: number;
}

interface Entry {
  primitive: Handle;
  args: Uint8Array;
  memories: Record<string, Handle>;
  desc: Handle;
}

/** Shapes kept before the cache starts over. */
const MAX_ENTRIES = 256;

/**
 * oneDNN batch normalization on the wasm heap, cached per shape.
 *
 * @example
 * ```ts
 * import { openDnnl } from "../dnnl.ts";
 * import { DnnlBatchNorm } from "./norm_dnnl.ts";
 * import { assert } from "../assert.ts";
 * const dnnl = openDnnl();
 * if (typeof dnnl !== "string") {
 *   assert(new DnnlBatchNorm(dnnl).size === 0);
 *   dnnl.close();
 * }
 * ```
 */
export class DnnlBatchNorm {
  readonly #dnnl: Dnnl;
  readonly #entries = new Map<string, Entry | null>();

  /**
   * @param dnnl The oneDNN library.
   */
  constructor(dnnl: Dnnl) {
    this.#dnnl = dnnl;
  }

  /** Shapes compiled so far. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Normalizes `rows` rows of `channels` values with given statistics.
   *
   * @param wasm The wasm backend.
   * @param rows Rows (every axis but the last, multiplied).
   * @param channels Channels (the last axis).
   * @param offsets Where the tensors are.
   * @param epsilon Added to the variance.
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  inference(
    wasm: WasmBackend,
    rows: number,
    channels: number,
    offsets: BatchNormOffsets,
    epsilon: number,
  ): boolean {
    const scale = offsets.scale !== null;
    const shift = offsets.offset !== null;
    const key = `${rows},${channels},${epsilon},${scale},${shift}`;
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      if (this.#entries.size >= MAX_ENTRIES) this.clear();
      try {
        entry = this.#build(rows, channels, epsilon, scale, shift);
      } catch {
        entry = null;
      }
      this.#entries.set(key, entry);
    }
    if (entry === null) return false;
    const dnnl = this.#dnnl;
    for (const [role, memory] of Object.entries(entry.memories)) {
      const offset = offsets[role as keyof BatchNormOffsets];
      if (offset !== null) dnnl.setHandle(memory, heapPointer(wasm, offset));
    }
    dnnl.execute(entry.primitive, entry.args);
    return true;
  }

  /** The shapes oneDNN turned down (they ran on the fallback kernel), by cache key. */
  get declined(): string[] {
    return [...this.#entries].filter(([, entry]) => entry === null).map(([key]) => key);
  }

  /** Destroys every cached primitive. */
  clear(): void {
    for (const entry of this.#entries.values()) {
      if (entry === null) continue;
      this.#dnnl.destroy({
        primitives: [entry.primitive],
        descs: [entry.desc],
        memories: Object.values(entry.memories),
      });
    }
    this.#entries.clear();
  }

  #build(
    rows: number,
    channels: number,
    epsilon: number,
    scale: boolean,
    shift: boolean,
  ): Entry | null {
    const dnnl = this.#dnnl;
    // [rows, channels] channels last, as oneDNN's NCHW dims with 1x1 images.
    const data = dnnl.memoryDesc([rows, channels, 1, 1], DNNL.nhwc);
    const flags = DNNL.useGlobalStats | (scale ? DNNL.useScale : 0) | (shift ? DNNL.useShift : 0);
    const op = dnnl.batchNormDesc("inference", data, epsilon, flags);
    const desc = dnnl.primitiveDesc(op, null, null);
    if (desc === null) return null;
    if (dnnl.implName(desc).startsWith("ref")) {
      dnnl.destroy({ descs: [desc] });
      return null;
    }
    const vector = dnnl.memoryDesc([channels], DNNL.a);
    const memories: Record<string, Handle> = {
      x: dnnl.memory(data, false),
      y: dnnl.memory(data, false),
      mean: dnnl.memory(vector, false),
      variance: dnnl.memory(vector, false),
    };
    if (scale) memories.scale = dnnl.memory(vector, false);
    if (shift) memories.offset = dnnl.memory(vector, false);
    const ids: Record<string, number> = {
      x: DNNL.argSrc,
      y: DNNL.argDst,
      mean: DNNL.argMean,
      variance: DNNL.argVariance,
      scale: DNNL.argScale,
      offset: DNNL.argShift,
    };
    const args = dnnl.execArgs(
      Object.entries(memories).map(([role, memory]) => [ids[role]!, memory] as const),
    );
    return { primitive: dnnl.primitive(desc), args, memories, desc };
  }
}
