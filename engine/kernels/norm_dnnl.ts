/**
 * Batch normalization on oneDNN over the wasm backend's heap, channels last,
 * on one thread (see {@linkcode Dnnl.singleThreaded}: its barriers spin),
 * with one compiled primitive per shape:
 *
 * - `inference`: with given statistics (the forward `FusedBatchNorm` kernel),
 *   `y = (x - mean) / sqrt(variance + epsilon) * scale + offset`;
 * - `training`: the batch's own mean and (biased) variance, computed and
 *   returned with `y` in one call (the training batch norm of `batch_norm_training.ts`);
 * - `backward`: the gradient of `training` with respect to `x` (through the
 *   statistics), `scale` and `offset`.
 *
 * @module
 */
import { DNNL, type Dnnl, type Handle } from "../dnnl.ts";
import { heapPointer, type WasmBackend } from "./wasm_heap.ts";

/** Byte offsets in the heap of a batch normalization's tensors (`null`: absent). */
export interface BatchNormOffsets {
  /** The input, `[rows, channels]` channels last. */
  x: number;
  /** Per-channel mean (an output of `training`). */
  mean: number;
  /** Per-channel variance (an output of `training`). */
  variance: number;
  /** Per-channel scale, or `null` for 1. */
  scale: number | null;
  /** Per-channel offset, or `null` for 0. */
  offset: number | null;
  /** The output, shaped as `x`. */
  y: number;
}

/** Byte offsets in the heap of the tensors of a batch normalization's gradient. */
export interface BatchNormGradOffsets {
  /** The gradient of the output. */
  dy: number;
  /** The forward input. */
  x: number;
  /** The batch's mean, as `training` returned it. */
  mean: number;
  /** The batch's variance, as `training` returned it. */
  variance: number;
  /** Per-channel scale. */
  scale: number;
  /** Per-channel offset (oneDNN asks for it; the gradient does not depend on it). */
  offset: number;
  /** Receives the gradient of `x`. */
  dx: number;
  /** Receives the gradient of `scale`. */
  dscale: number;
  /** Receives the gradient of `offset`. */
  doffset: number;
}

type Mode = "inference" | "training" | "backward";

interface Entry {
  primitive: Handle;
  args: Uint8Array;
  memories: Record<string, Handle>;
  descs: Handle[];
}

/** Shapes kept before the cache starts over. */
const MAX_ENTRIES = 256;

/** oneDNN's argument for each role of a tensor. */
const ARGUMENTS: Record<string, number> = {
  x: DNNL.argSrc,
  y: DNNL.argDst,
  mean: DNNL.argMean,
  variance: DNNL.argVariance,
  scale: DNNL.argScale,
  offset: DNNL.argShift,
  dy: DNNL.argDiffDst,
  dx: DNNL.argDiffSrc,
  dscale: DNNL.argDiffScale,
  doffset: DNNL.argDiffShift,
};

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

  /** Shapes seen so far (including those oneDNN turned down). */
  get size(): number {
    return this.#entries.size;
  }

  /** The shapes oneDNN turned down (they ran on the fallback kernel), by cache key. */
  get declined(): string[] {
    return [...this.#entries].filter(([, entry]) => entry === null).map(([key]) => key);
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
    const roles = { x: offsets.x, y: offsets.y, mean: offsets.mean, variance: offsets.variance };
    return this.#run(wasm, "inference", rows, channels, epsilon, {
      ...roles,
      ...(offsets.scale === null ? {} : { scale: offsets.scale }),
      ...(offsets.offset === null ? {} : { offset: offsets.offset }),
    });
  }

  /**
   * Normalizes `rows` rows of `channels` values with the rows' own mean and
   * biased variance, and writes those too.
   *
   * @param wasm The wasm backend.
   * @param rows Rows (every axis but the last, multiplied).
   * @param channels Channels (the last axis).
   * @param offsets Where the tensors are; `mean` and `variance` receive the statistics.
   * @param epsilon Added to the variance.
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  training(
    wasm: WasmBackend,
    rows: number,
    channels: number,
    offsets: BatchNormOffsets & { scale: number; offset: number },
    epsilon: number,
  ): boolean {
    return this.#run(wasm, "training", rows, channels, epsilon, { ...offsets });
  }

  /**
   * The gradient of {@linkcode DnnlBatchNorm.training}.
   *
   * @param wasm The wasm backend.
   * @param rows Rows (every axis but the last, multiplied).
   * @param channels Channels (the last axis).
   * @param offsets Where the tensors are.
   * @param epsilon Added to the variance.
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  backward(
    wasm: WasmBackend,
    rows: number,
    channels: number,
    offsets: BatchNormGradOffsets,
    epsilon: number,
  ): boolean {
    return this.#run(wasm, "backward", rows, channels, epsilon, { ...offsets });
  }

  /** Destroys every cached primitive. */
  clear(): void {
    for (const entry of this.#entries.values()) {
      if (entry === null) continue;
      this.#dnnl.destroy({
        primitives: [entry.primitive],
        descs: entry.descs,
        memories: Object.values(entry.memories),
      });
    }
    this.#entries.clear();
  }

  #run(
    wasm: WasmBackend,
    mode: Mode,
    rows: number,
    channels: number,
    epsilon: number,
    offsets: Record<string, number>,
  ): boolean {
    return this.#dnnl.singleThreaded(() =>
      this.#runNow(wasm, mode, rows, channels, epsilon, offsets)
    );
  }

  #runNow(
    wasm: WasmBackend,
    mode: Mode,
    rows: number,
    channels: number,
    epsilon: number,
    offsets: Record<string, number>,
  ): boolean {
    const roles = Object.keys(offsets).sort();
    const key = `${mode} ${rows},${channels},${epsilon} ${roles}`;
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      if (this.#entries.size >= MAX_ENTRIES) this.clear();
      try {
        entry = this.#build(mode, rows, channels, epsilon, roles);
      } catch {
        entry = null;
      }
      this.#entries.set(key, entry);
    }
    if (entry === null) return false;
    const dnnl = this.#dnnl;
    for (const [role, memory] of Object.entries(entry.memories)) {
      dnnl.setHandle(memory, heapPointer(wasm, offsets[role]!));
    }
    dnnl.execute(entry.primitive, entry.args);
    return true;
  }

  #build(
    mode: Mode,
    rows: number,
    channels: number,
    epsilon: number,
    roles: string[],
  ): Entry | null {
    const dnnl = this.#dnnl;
    // [rows, channels] channels last, as oneDNN's NCHW dims with 1x1 images.
    const data = dnnl.memoryDesc([rows, channels, 1, 1], DNNL.nhwc);
    const scaled = roles.includes("scale");
    const shifted = roles.includes("offset") || roles.includes("doffset");
    const flags = (mode === "inference" ? DNNL.useGlobalStats : 0) |
      (scaled ? DNNL.useScale : 0) | (shifted ? DNNL.useShift : 0);
    const descs: Handle[] = [];
    let desc: Handle | null;
    if (mode === "backward") {
      const hint = dnnl.primitiveDesc(
        dnnl.batchNormDesc("forward", data, epsilon, flags),
        null,
        null,
      );
      if (hint === null) return null;
      descs.push(hint);
      desc = dnnl.primitiveDesc(dnnl.batchNormDesc("backward", data, epsilon, flags), null, hint);
    } else {
      const op = dnnl.batchNormDesc(
        mode === "training" ? "forward" : "inference",
        data,
        epsilon,
        flags,
      );
      desc = dnnl.primitiveDesc(op, null, null);
    }
    if (desc !== null) descs.push(desc);
    // For `inference` the previous kernel is faster than oneDNN's reference code; the
    // training kernels have no other implementation, so they take it (correct, slower).
    if (desc === null || (mode === "inference" && dnnl.implName(desc).startsWith("ref"))) {
      dnnl.destroy({ descs });
      return null;
    }
    const vector = dnnl.memoryDesc([channels], DNNL.a);
    const memories: Record<string, Handle> = {};
    for (const role of roles) {
      const isData = role === "x" || role === "y" || role === "dx" || role === "dy";
      memories[role] = dnnl.memory(isData ? data : vector, false);
    }
    const args = dnnl.execArgs(
      roles.map((role) => [ARGUMENTS[role]!, memories[role]!] as const),
    );
    return { primitive: dnnl.primitive(desc), args, memories, descs };
  }
}
