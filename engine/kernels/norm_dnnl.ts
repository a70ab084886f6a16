/**
 * Batch normalization on oneDNN over the wasm backend's heap, channels last,
 * on the cores other processes leave free (see {@linkcode Dnnl.threads}),
 * with one compiled primitive per shape:
 *
 * - `inference`: with given statistics (the forward `FusedBatchNorm` kernel),
 *   `y = (x - mean) / sqrt(variance + epsilon) * scale + offset`;
 * - `training`: the batch's own mean and (biased) variance, computed and
 *   returned with `y` (the training batch norm of `batch_norm_training.ts`):
 *   one call up to {@linkcode STATS_SINGLE_PASS_ROWS} rows; above, the statistics
 *   of each block of rows, combined in float64, then `y` from them;
 * - `backward`: the gradient of `training` with respect to `x` (through the
 *   statistics), `scale` and `offset`.
 *
 * `training` and `backward` can fuse a ReLU after the normalization
 * (oneDNN's `fuse_norm_relu`): the forward pass writes `max(y, 0)` and a
 * workspace marking where `y > 0`, and the backward pass reads that workspace
 * to apply the ReLU's gradient itself, so a CBR block's ReLU costs no pass of
 * its own in either direction.
 *
 * @module
 */
import { DNNL, type Dnnl, type Handle } from "../dnnl.ts";
import { DnnlKernel } from "./primitive_cache.ts";
import { heapAlloc, heapFree, heapPointer, heapView, type WasmBackend } from "./wasm_heap.ts";

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

/**
 * `inference`: given statistics, no workspace; `training`: the batch's own
 * statistics; `normalize`: a training pass with given statistics (for the
 * workspace of a fused ReLU); `backward`: the gradient.
 */
type Mode = "inference" | "training" | "normalize" | "backward";

interface Entry {
  primitive: Handle;
  args: Uint8Array;
  memories: Record<string, Handle>;
  descs: Handle[];
  /** Bytes of the fused ReLU's workspace (0 without one). */
  workspaceBytes: number;
}

/**
 * Rows per part, at most, when a training batch norm's statistics are
 * computed part by part (see {@linkcode STATS_SINGLE_PASS_ROWS}).
 */
export const STATS_BLOCK_ROWS = 2048;

/**
 * Rows up to which a training batch norm is one oneDNN call computing its
 * own statistics. oneDNN adds a channel's values in float32, one row after
 * another, and its mean and variance drift by about sqrt(rows) times
 * float32's rounding: over SegNet's 65,536 rows per channel (16 images of
 * 64x64) its first loss came out 3.6e-5 from float64 (the parity check
 * allows 1e-5), and over the small networks' 16,384 rows (4 images) the
 * weights of transposeconv and unetlike after 3 iterations were 20-23% of
 * PyTorch's step away from float64's, against PyTorch float32's 1-2%. Above
 * this many rows the input is seen as `[rows / parts, parts * channels]`
 * ({@linkcode interleavedParts}), so that one oneDNN call gives the mean and
 * variance of every part of at most {@linkcode STATS_BLOCK_ROWS} rows,
 * {@linkcode combineMoments} joins them in float64, and one more call
 * normalizes with them: SegNet's first loss is then 1e-6 from float64, and
 * those weights 1-11% of the step. It costs one more pass over the input and
 * output: bin's six batch norms 1.4 -> 1.5 ms per step.
 */
export const STATS_SINGLE_PASS_ROWS = STATS_BLOCK_ROWS;

/**
 * The mean and biased variance of a whole from those of its parts (Chan,
 * Golub and LeVeque's pairwise formula), in float64: the mean is the parts'
 * means weighted by their counts, the variance the parts' variances plus the
 * spread of their means around it.
 *
 * @param counts Values in each part.
 * @param means Each part's mean per channel, `[parts, channels]` flat.
 * @param variances Each part's biased variance per channel, the same shape.
 * @param mean Receives the whole's mean per channel (`channels` values).
 * @param variance Receives the whole's biased variance per channel.
 *
 * @example
 * ```ts
 * import { combineMoments } from "./norm_dnnl.ts";
 * import { assertEquals } from "../assert.ts";
 * // One channel: parts [1, 3] (mean 2, variance 1) and [5] (mean 5, variance 0).
 * const mean = new Float32Array(1);
 * const variance = new Float32Array(1);
 * combineMoments([2, 1], new Float32Array([2, 5]), new Float32Array([1, 0]), mean, variance);
 * assertEquals([mean[0], variance[0]], [3, Math.fround(8 / 3)]); // of [1, 3, 5]
 * ```
 */
export function combineMoments(
  counts: readonly number[],
  means: Float32Array,
  variances: Float32Array,
  mean: Float32Array,
  variance: Float32Array,
): void {
  const channels = mean.length;
  const total = counts.reduce((a, b) => a + b, 0);
  const sums = new Float64Array(channels);
  for (const [part, count] of counts.entries()) {
    const start = part * channels;
    for (let channel = 0; channel < channels; channel++) {
      sums[channel]! += count * means[start + channel]!;
    }
  }
  for (let channel = 0; channel < channels; channel++) sums[channel]! /= total;
  const squares = new Float64Array(channels);
  for (const [part, count] of counts.entries()) {
    const start = part * channels;
    for (let channel = 0; channel < channels; channel++) {
      const shift = means[start + channel]! - sums[channel]!;
      squares[channel]! += count * (variances[start + channel]! + shift * shift);
    }
  }
  for (let channel = 0; channel < channels; channel++) {
    mean[channel] = sums[channel]!;
    variance[channel] = squares[channel]! / total;
  }
}

/**
 * How many interleaved parts of at most {@linkcode STATS_BLOCK_ROWS} rows
 * `rows` splits into evenly (the fewest), or `null` when that takes more than
 * a quarter of the rows as parts (a prime number of rows, say).
 *
 * @param rows Rows of a batch norm's input.
 * @returns Parts, each of `rows / parts` rows, or `null`.
 *
 * @example
 * ```ts
 * import { interleavedParts } from "./norm_dnnl.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(interleavedParts(16384), 8); // 8 parts of 2048 rows
 * assertEquals(interleavedParts(3 * 83 * 67), 67); // 16683 rows: 67 parts of 249
 * assertEquals(interleavedParts(16411), null); // prime
 * ```
 */
export function interleavedParts(rows: number): number | null {
  for (let parts = Math.ceil(rows / STATS_BLOCK_ROWS); parts <= rows / 4; parts++) {
    if (rows % parts === 0) return parts;
  }
  return null;
}

/** The roles of a block's statistics: no scale or offset, its output is thrown away. */
const BLOCK_ROLES = ["mean", "variance", "x", "y"];

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
  workspace: DNNL.argWorkspace,
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
export class DnnlBatchNorm extends DnnlKernel<Entry> {
  /**
   * @param dnnl The oneDNN library.
   */
  constructor(dnnl: Dnnl) {
    super(dnnl, {
      release: (entry) =>
        dnnl.destroy({
          primitives: [entry.primitive],
          descs: entry.descs,
          memories: Object.values(entry.memories),
        }),
      maxEntries: MAX_ENTRIES,
    });
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
    offsets: BatchNormOffsets & { scale: number; offset: number; workspace?: number },
    epsilon: number,
  ): boolean {
    if (rows <= STATS_SINGLE_PASS_ROWS) {
      return this.#run(wasm, "training", rows, channels, epsilon, { ...offsets });
    }
    return this.#blockedTraining(wasm, rows, channels, offsets, epsilon);
  }

  /**
   * Bytes of the workspace that `training` with a fused ReLU writes and
   * `backward` reads, or `null` when oneDNN cannot fuse the ReLU for this
   * shape.
   *
   * @param rows Rows (every axis but the last, multiplied).
   * @param channels Channels (the last axis).
   * @param epsilon Added to the variance.
   * @returns The size in bytes, or `null`.
   */
  reluWorkspaceBytes(rows: number, channels: number, epsilon: number): number | null {
    const roles = ["mean", "offset", "scale", "variance", "workspace", "x", "y"];
    const mode = rows <= STATS_SINGLE_PASS_ROWS ? "training" : "normalize";
    const forward = this.#entry(mode, rows, channels, epsilon, roles);
    const backward = this.#entry("backward", rows, channels, epsilon, [
      "doffset",
      "dscale",
      "dx",
      "dy",
      "mean",
      "offset",
      "scale",
      "variance",
      "workspace",
      "x",
    ]);
    if (forward === null || backward === null) return null;
    if (forward.workspaceBytes !== backward.workspaceBytes) return null;
    return forward.workspaceBytes;
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
    offsets: BatchNormGradOffsets & { workspace?: number },
    epsilon: number,
  ): boolean {
    return this.#run(wasm, "backward", rows, channels, epsilon, { ...offsets });
  }

  /**
   * `training` over more than {@linkcode STATS_SINGLE_PASS_ROWS} rows: the
   * statistics of interleaved parts of the rows in one call, joined in
   * float64, then the normalization with them; row counts that do not split
   * evenly take {@linkcode DnnlBatchNorm.#blockByBlock}.
   */
  #blockedTraining(
    wasm: WasmBackend,
    rows: number,
    channels: number,
    offsets: BatchNormOffsets & { scale: number; offset: number; workspace?: number },
    epsilon: number,
  ): boolean {
    const parts = interleavedParts(rows);
    if (parts === null) return this.#blockByBlock(wasm, rows, channels, offsets, epsilon);
    // [rows, channels] seen as [rows / parts, parts * channels]: row r's channel c is
    // channel (r % parts) * channels + c there, so one call gives every part's moments,
    // laid out [parts, channels] as combineMoments takes them. Its output goes to y,
    // which the normalization below overwrites.
    const count = rows / parts;
    const size = parts * channels;
    const scratch = heapAlloc(wasm, 2 * size);
    try {
      const ran = this.#run(wasm, "training", count, size, epsilon, {
        x: offsets.x,
        y: offsets.y,
        mean: scratch,
        variance: scratch + size * 4,
      });
      if (!ran) return this.#blockByBlock(wasm, rows, channels, offsets, epsilon);
      combineMoments(
        new Array<number>(parts).fill(count),
        heapView(wasm, scratch, size),
        heapView(wasm, scratch + size * 4, size),
        heapView(wasm, offsets.mean, channels),
        heapView(wasm, offsets.variance, channels),
      );
    } finally {
      heapFree(wasm, scratch);
    }
    return this.#normalize(wasm, rows, channels, epsilon, offsets);
  }

  /** The normalization with the statistics found; with a fused ReLU, a training pass for its workspace. */
  #normalize(
    wasm: WasmBackend,
    rows: number,
    channels: number,
    epsilon: number,
    offsets: BatchNormOffsets & { scale: number; offset: number; workspace?: number },
  ): boolean {
    const mode = offsets.workspace === undefined ? "inference" : "normalize";
    return this.#run(wasm, mode, rows, channels, epsilon, { ...offsets });
  }

  /**
   * The same, one call per block of contiguous rows as even as can be (at
   * most two shapes to compile): for row counts with no even split.
   */
  #blockByBlock(
    wasm: WasmBackend,
    rows: number,
    channels: number,
    offsets: BatchNormOffsets & { scale: number; offset: number; workspace?: number },
    epsilon: number,
  ): boolean {
    const blocks = Math.ceil(rows / STATS_BLOCK_ROWS);
    const counts = Array.from(
      { length: blocks },
      (_, block) => Math.floor(rows / blocks) + (block < rows % blocks ? 1 : 0),
    );
    const parts = blocks * channels;
    // The blocks' outputs (unused, overwritten block after block), means and variances.
    const scratch = heapAlloc(wasm, counts[0]! * channels + 2 * parts);
    const means = scratch + counts[0]! * channels * 4;
    const variances = means + parts * 4;
    const dnnl = this.dnnl;
    try {
      const at = (byteOffset: number) => heapPointer(wasm, byteOffset);
      let entry: Entry | null = null;
      let first = 0;
      for (const [block, count] of counts.entries()) {
        if (count !== counts[block - 1]) {
          entry = this.#entry("training", count, channels, epsilon, BLOCK_ROLES);
          if (entry === null) return false;
          dnnl.setHandle(entry.memories.y!, at(scratch));
        }
        dnnl.setHandle(entry!.memories.x!, at(offsets.x + first * channels * 4));
        dnnl.setHandle(entry!.memories.mean!, at(means + block * channels * 4));
        dnnl.setHandle(entry!.memories.variance!, at(variances + block * channels * 4));
        dnnl.execute(entry!.primitive, entry!.args);
        first += count;
      }
      combineMoments(
        counts,
        heapView(wasm, means, parts),
        heapView(wasm, variances, parts),
        heapView(wasm, offsets.mean, channels),
        heapView(wasm, offsets.variance, channels),
      );
    } finally {
      heapFree(wasm, scratch);
    }
    return this.#normalize(wasm, rows, channels, epsilon, offsets);
  }

  #run(
    wasm: WasmBackend,
    mode: Mode,
    rows: number,
    channels: number,
    epsilon: number,
    offsets: Record<string, number | undefined>,
  ): boolean {
    const roles = Object.keys(offsets).filter((role) => offsets[role] !== undefined).sort();
    const entry = this.#entry(mode, rows, channels, epsilon, roles);
    if (entry === null) return false;
    const dnnl = this.dnnl;
    for (const [role, memory] of Object.entries(entry.memories)) {
      dnnl.setHandle(memory, heapPointer(wasm, offsets[role]!));
    }
    dnnl.execute(entry.primitive, entry.args);
    return true;
  }

  /** The cached primitive of a shape and set of roles (sorted), built on first use. */
  #entry(
    mode: Mode,
    rows: number,
    channels: number,
    epsilon: number,
    roles: readonly string[],
  ): Entry | null {
    const key = `${mode} ${rows},${channels},${epsilon} ${roles}`;
    const entry = this.cache.get(key, () => this.#build(mode, rows, channels, epsilon, roles));
    return entry;
  }

  #build(
    mode: Mode,
    rows: number,
    channels: number,
    epsilon: number,
    roles: readonly string[],
  ): Entry | null {
    const dnnl = this.dnnl;
    // [rows, channels] channels last, as oneDNN's NCHW dims with 1x1 images.
    const data = dnnl.memoryDesc([rows, channels, 1, 1], DNNL.nhwc);
    const scaled = roles.includes("scale");
    const shifted = roles.includes("offset") || roles.includes("doffset");
    const relu = roles.includes("workspace");
    const flags = (scaled ? DNNL.useScale : 0) | (shifted ? DNNL.useShift : 0) |
      (relu ? DNNL.fuseNormRelu : 0);
    const globalStats = mode === "inference" || mode === "normalize" ? DNNL.useGlobalStats : 0;
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
        mode === "inference" ? "inference" : "forward",
        data,
        epsilon,
        flags | globalStats,
      );
      desc = dnnl.primitiveDesc(op, null, null);
    }
    if (desc !== null) descs.push(desc);
    // For `inference` the previous kernel is faster than oneDNN's reference code; the
    // training kernels have no other implementation, so they take it (correct, slower),
    // except with a fused ReLU, which the caller can leave to a separate ReLU.
    const reference = desc !== null && dnnl.implName(desc).startsWith("ref");
    if (desc === null || (reference && (mode === "inference" || relu))) {
      dnnl.destroy({ descs });
      return null;
    }
    const vector = dnnl.memoryDesc([channels], DNNL.a);
    const workspace = relu ? dnnl.queryDesc(desc, DNNL.queryWorkspaceMd) : null;
    const memories: Record<string, Handle> = {};
    for (const role of roles) {
      const isData = role === "x" || role === "y" || role === "dx" || role === "dy";
      memories[role] = dnnl.memory(
        role === "workspace" ? workspace! : isData ? data : vector,
        false,
      );
    }
    const args = dnnl.execArgs(
      roles.map((role) => [ARGUMENTS[role]!, memories[role]!] as const),
    );
    const workspaceBytes = workspace === null ? 0 : dnnl.descBytes(workspace);
    return { primitive: dnnl.primitive(desc), args, memories, descs, workspaceBytes };
  }
}
