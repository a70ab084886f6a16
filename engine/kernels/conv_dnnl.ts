/**
 * Convolutions on oneDNN over the wasm backend's heap: the shared engine of
 * this project's `Conv2D`, `FusedConv2D`, `Conv2DBackpropInput` and
 * `Conv2DBackpropFilter` kernels when oneDNN is installed.
 *
 * Activations stay NHWC where tfjs keeps them (oneDNN reads and writes the
 * heap directly; no activation is copied). Weights arrive as tfjs's HWIO and
 * are reordered into the blocked layout oneDNN picks for each direction
 * ("any"): forcing HWIO would make oneDNN fall back to a gemm path 2-4x slower,
 * and OHWI to its reference code. The weight gradient is computed in oneDNN's
 * layout and reordered back into HWIO.
 *
 * Each convolution shape gets its primitives, reorders and weight buffers
 * once, the first time it runs (compiling a primitive takes milliseconds;
 * touching fresh memory costs page faults every time); later steps only point
 * them at the tensors of the step.
 *
 * @module
 */
import { DNNL, type Dnnl, type Handle } from "../dnnl.ts";
import { DnnlKernel } from "./primitive_cache.ts";
import { heapPointer, type WasmBackend } from "./wasm_heap.ts";

/** A 2-D convolution, NHWC data and HWIO filter, as tfjs describes it. */
export interface DnnlConvGeometry {
  /** Images in the batch. */
  batch: number;
  /** Input height. */
  inHeight: number;
  /** Input width. */
  inWidth: number;
  /** Input channels. */
  inChannels: number;
  /** Output height. */
  outHeight: number;
  /** Output width. */
  outWidth: number;
  /** Output channels. */
  outChannels: number;
  /** Filter height. */
  filterHeight: number;
  /** Filter width. */
  filterWidth: number;
  /** Vertical stride. */
  strideHeight: number;
  /** Horizontal stride. */
  strideWidth: number;
  /** Vertical dilation (1: none). */
  dilationHeight: number;
  /** Horizontal dilation (1: none). */
  dilationWidth: number;
  /** Zero rows above the input. */
  padTop: number;
  /** Zero rows below the input (may be less than the last window needs). */
  padBottom: number;
  /** Zero columns left of the input. */
  padLeft: number;
  /** Zero columns right of the input. */
  padRight: number;
}

/** A tfjs `Conv2DInfo`, reduced to the fields {@linkcode dnnlGeometryOf} reads. */
export interface DnnlConvInfoLike {
  batchSize: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  outChannels: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  dataFormat: string;
  padInfo: { top: number; bottom: number; left: number; right: number };
}

/**
 * The geometry of a convolution if oneDNN's kernels handle it, else `null`:
 * any NHWC convolution whose output size follows from its padding.
 *
 * @param info The convolution as tfjs describes it.
 * @returns Its geometry, or `null`.
 *
 * @example
 * ```ts
 * import { dnnlGeometryOf } from "./conv_dnnl.ts";
 * import { assertEquals } from "../assert.ts";
 * const info = {
 *   batchSize: 1, inHeight: 5, inWidth: 5, inChannels: 2, outChannels: 3,
 *   filterHeight: 3, filterWidth: 3, strideHeight: 2, strideWidth: 2,
 *   dilationHeight: 1, dilationWidth: 1, outHeight: 3, outWidth: 3,
 *   dataFormat: "channelsLast", padInfo: { top: 1, bottom: 1, left: 1, right: 1 },
 * };
 * assertEquals(dnnlGeometryOf(info)?.padTop, 1);
 * assertEquals(dnnlGeometryOf({ ...info, dataFormat: "channelsFirst" }), null);
 * ```
 */
export function dnnlGeometryOf(info: DnnlConvInfoLike): DnnlConvGeometry | null {
  if (info.dataFormat !== "channelsLast") return null;
  const { top, bottom, left, right } = info.padInfo;
  if (Math.min(top, bottom, left, right) < 0) return null;
  const geometry: DnnlConvGeometry = {
    batch: info.batchSize,
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    inChannels: info.inChannels,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    outChannels: info.outChannels,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    dilationHeight: info.dilationHeight,
    dilationWidth: info.dilationWidth,
    padTop: top,
    padBottom: bottom,
    padLeft: left,
    padRight: right,
  };
  const span = (size: number, pads: number, filter: number, dilation: number, stride: number) =>
    Math.floor((size + pads - ((filter - 1) * dilation + 1)) / stride) + 1;
  const fits = span(
        info.inHeight,
        top + bottom,
        info.filterHeight,
        info.dilationHeight,
        info.strideHeight,
      ) === info.outHeight &&
    span(info.inWidth, left + right, info.filterWidth, info.dilationWidth, info.strideWidth) ===
      info.outWidth;
  const empty = Math.min(
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outChannels,
  ) === 0;
  return fits && !empty ? geometry : null;
}

/** An activation oneDNN applies as a convolution writes its output. */
export interface DnnlActivation {
  /** tfjs's name: `linear`, `relu`, `relu6`, `sigmoid`, `leakyrelu` or `elu`. */
  name: string;
  /** Slope of `leakyrelu` below 0. */
  alpha: number;
}

/** oneDNN's post-op for a tfjs activation, `null` for none, `undefined` when it has none. */
function postOp(activation: DnnlActivation): [number, number, number] | null | undefined {
  switch (activation.name) {
    case "linear":
      return null;
    case "relu":
      return [DNNL.eltwiseRelu, 0, 0];
    case "leakyrelu":
      return [DNNL.eltwiseRelu, activation.alpha, 0];
    case "relu6":
      return [DNNL.eltwiseClip, 0, 6];
    case "sigmoid":
      return [DNNL.eltwiseLogistic, 0, 0];
    case "elu":
      return [DNNL.eltwiseElu, 1, 0];
    default:
      return undefined;
  }
}

/**
 * Weights as tfjs holds them (HWIO, in the heap) and as one primitive wants
 * them: a memory pointed at the tensor, and, when the layouts differ, a
 * reorder into a buffer oneDNN owns.
 */
interface Weights {
  /** HWIO memory; pointed at the tensor before each use. */
  user: Handle;
  /** The memory the primitive reads or writes (`user` when no reorder is needed). */
  inner: Handle;
  /** The reorder between `user` and `inner`, or `null`. */
  reorder: Handle | null;
  /** Its arguments. */
  reorderArgs: Uint8Array | null;
}

/** A compiled primitive, its memories and arguments, for one shape. */
interface Entry {
  /** The primitive descriptor (names the implementation oneDNN chose). */
  desc: Handle;
  primitive: Handle;
  args: Uint8Array;
  /** Memories pointed at tensors in the heap before each run, by role. */
  data: Record<string, Handle>;
  weights: Weights;
  /** Everything to destroy with the entry. */
  owned: { primitives: Handle[]; descs: Handle[]; memories: Handle[] };
}

/** Shapes kept before the cache starts over (each network uses a few dozen). */
const MAX_ENTRIES = 512;

/**
 * oneDNN convolutions on the wasm heap, with their primitives cached per shape.
 *
 * @example
 * ```ts
 * import { openDnnl } from "../dnnl.ts";
 * import { DnnlConvolutions } from "./conv_dnnl.ts";
 * import { assert } from "../assert.ts";
 * const dnnl = openDnnl();
 * if (typeof dnnl !== "string") {
 *   assert(new DnnlConvolutions(dnnl).size === 0);
 *   dnnl.close();
 * }
 * ```
 */
export class DnnlConvolutions extends DnnlKernel<Entry> {
  /**
   * @param dnnl The oneDNN library.
   */
  constructor(dnnl: Dnnl) {
    super(dnnl, {
      release: (entry) => dnnl.destroy(entry.owned),
      maxEntries: MAX_ENTRIES,
    });
  }

  /**
   * `y = activation(conv(x, filter) + bias)`.
   *
   * @param wasm The wasm backend.
   * @param geometry The convolution.
   * @param offsets Byte offsets in the heap of `x` (NHWC), `filter` (HWIO), `bias` (or `null`) and the output `y` (NHWC).
   * @param activation The activation applied as `y` is written.
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  forward(
    wasm: WasmBackend,
    geometry: DnnlConvGeometry,
    offsets: { x: number; filter: number; bias: number | null; y: number },
    activation: DnnlActivation,
  ): boolean {
    const post = postOp(activation);
    if (post === undefined) return false;
    const key = `f ${shapeKey(geometry)} ${offsets.bias === null ? "" : "b"} ${post ?? ""}`;
    const entry = this.#entry(key, () => this.#buildForward(geometry, offsets.bias !== null, post));
    if (entry === null) return false;
    const pointers: Record<string, number> = { x: offsets.x, y: offsets.y };
    if (offsets.bias !== null) pointers.bias = offsets.bias;
    this.#run(wasm, entry, pointers, offsets.filter, "in");
    return true;
  }

  /**
   * The gradient of a convolution's input, `dx` (also the transposed convolution).
   *
   * @param wasm The wasm backend.
   * @param geometry The convolution whose input gradient this is.
   * @param offsets Byte offsets in the heap of `dy` (NHWC), `filter` (HWIO) and the output `dx` (NHWC).
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  backwardData(
    wasm: WasmBackend,
    geometry: DnnlConvGeometry,
    offsets: { dy: number; filter: number; dx: number },
  ): boolean {
    const entry = this.#entry(`d ${shapeKey(geometry)}`, () => this.#buildBackwardData(geometry));
    if (entry === null) return false;
    this.#run(wasm, entry, { dy: offsets.dy, dx: offsets.dx }, offsets.filter, "in");
    return true;
  }

  /**
   * The gradient of a convolution's filter, `dw` (HWIO).
   *
   * @param wasm The wasm backend.
   * @param geometry The convolution.
   * @param offsets Byte offsets in the heap of `x` (NHWC), `dy` (NHWC) and the output `dw` (HWIO).
   * @returns `false` when oneDNN cannot run it (nothing is written).
   */
  backwardWeights(
    wasm: WasmBackend,
    geometry: DnnlConvGeometry,
    offsets: { x: number; dy: number; dw: number },
  ): boolean {
    // Threads: the cores other processes leave free (Dnnl.threads). On idle cores bin's
    // layer (1.5e8 multiply-adds) takes 0.84 ms on two threads against 1.35 on one; on
    // cores that other processes also use, two threads reducing their partial sums at
    // spinning barriers took 3.8-4.0 ms against 1.2 on one.
    const entry = this.#entry(
      `w ${shapeKey(geometry)}`,
      () => this.#buildBackwardWeights(geometry),
    );
    if (entry === null) return false;
    this.#run(wasm, entry, { x: offsets.x, dy: offsets.dy }, offsets.dw, "out");
    return true;
  }

  #entry(key: string, build: () => Entry | null): Entry | null {
    return this.cache.get(key, () => {
      // A throw: oneDNN turned the shape down (e.g. an inconsistent padding), the caller falls back.
      const entry = build();
      if (entry !== null && this.dnnl.implName(entry.desc).startsWith("ref")) {
        // oneDNN's reference code is hundreds of times slower than the fallbacks.
        this.dnnl.destroy(entry.owned);
        return null;
      }
      return entry;
    });
  }

  /** Points the entry's memories at the heap and runs it, with the weights' reorder before or after. */
  #run(
    wasm: WasmBackend,
    entry: Entry,
    pointers: Record<string, number>,
    weightsOffset: number,
    weightsDirection: "in" | "out",
  ): void {
    const dnnl = this.dnnl;
    // Outputs are allocated before this call and nothing here allocates on the heap,
    // so the heap's address holds for the whole call.
    for (const [role, offset] of Object.entries(pointers)) {
      dnnl.setHandle(entry.data[role]!, heapPointer(wasm, offset));
    }
    const weights = entry.weights;
    dnnl.setHandle(weights.user, heapPointer(wasm, weightsOffset));
    if (weightsDirection === "in" && weights.reorder !== null) {
      dnnl.execute(weights.reorder, weights.reorderArgs!);
    }
    dnnl.execute(entry.primitive, entry.args);
    if (weightsDirection === "out" && weights.reorder !== null) {
      dnnl.execute(weights.reorder, weights.reorderArgs!);
    }
  }

  /** The descriptors every direction shares: NHWC data, HWIO and `any` weights. */
  #descs(geometry: DnnlConvGeometry) {
    const dnnl = this.dnnl;
    const g = geometry;
    const weightDims = [g.outChannels, g.inChannels, g.filterHeight, g.filterWidth];
    return {
      src: dnnl.memoryDesc([g.batch, g.inChannels, g.inHeight, g.inWidth], DNNL.nhwc),
      dst: dnnl.memoryDesc([g.batch, g.outChannels, g.outHeight, g.outWidth], DNNL.nhwc),
      weightsAny: dnnl.memoryDesc(weightDims, DNNL.formatAny),
      weightsUser: dnnl.memoryDesc(weightDims, DNNL.hwio),
      shape: {
        strides: [g.strideHeight, g.strideWidth],
        dilates: [g.dilationHeight - 1, g.dilationWidth - 1],
        padBefore: [g.padTop, g.padLeft],
        padAfter: [g.padBottom, g.padRight],
      } as const,
    };
  }

  /** The forward primitive descriptor (also the hint every backward one needs). */
  #forwardDesc(
    geometry: DnnlConvGeometry,
    bias: boolean,
    post: [number, number, number] | null,
  ): Handle | null {
    const dnnl = this.dnnl;
    const d = this.#descs(geometry);
    const op = dnnl.convolutionDesc("forward", {
      src: d.src,
      weights: d.weightsAny,
      bias: bias ? dnnl.memoryDesc([geometry.outChannels], DNNL.a) : null,
      dst: d.dst,
    }, d.shape);
    const attr = post === null ? null : dnnl.eltwiseAttr(...post);
    try {
      return dnnl.primitiveDesc(op, attr, null);
    } finally {
      dnnl.destroyAttr(attr);
    }
  }

  /**
   * Weights memories for a primitive that wants them as `inner`: a reorder
   * from (`in`) or to (`out`) tfjs's HWIO when the layouts differ.
   */
  #weights(
    inner: Handle,
    user: Uint8Array,
    direction: "in" | "out",
    owned: Entry["owned"],
  ): Weights {
    const dnnl = this.dnnl;
    const userMemory = dnnl.memory(user, false);
    owned.memories.push(userMemory);
    if (dnnl.descEqual(inner, user)) {
      return { user: userMemory, inner: userMemory, reorder: null, reorderArgs: null };
    }
    const innerMemory = dnnl.memory(inner, true);
    owned.memories.push(innerMemory);
    const [from, to] = direction === "in" ? [user, inner] : [inner, user];
    const [fromMemory, toMemory] = direction === "in"
      ? [userMemory, innerMemory]
      : [innerMemory, userMemory];
    const reorderDesc = dnnl.reorderDesc(from, to);
    owned.descs.push(reorderDesc);
    const reorder = dnnl.primitive(reorderDesc);
    owned.primitives.push(reorder);
    return {
      user: userMemory,
      inner: innerMemory,
      reorder,
      reorderArgs: dnnl.execArgs([[DNNL.argSrc, fromMemory], [DNNL.argDst, toMemory]]),
    };
  }

  #buildForward(
    geometry: DnnlConvGeometry,
    bias: boolean,
    post: [number, number, number] | null,
  ): Entry | null {
    const dnnl = this.dnnl;
    const pd = this.#forwardDesc(geometry, bias, post);
    if (pd === null) return null;
    const owned: Entry["owned"] = { primitives: [], descs: [pd], memories: [] };
    const d = this.#descs(geometry);
    const data: Record<string, Handle> = {
      x: dnnl.memory(d.src, false),
      y: dnnl.memory(d.dst, false),
    };
    if (bias) data.bias = dnnl.memory(dnnl.memoryDesc([geometry.outChannels], DNNL.a), false);
    owned.memories.push(...Object.values(data));
    const weights = this.#weights(
      dnnl.queryDesc(pd, DNNL.queryWeightsMd),
      d.weightsUser,
      "in",
      owned,
    );
    const primitive = dnnl.primitive(pd);
    owned.primitives.push(primitive);
    const args = dnnl.execArgs([
      [DNNL.argSrc, data.x!],
      [DNNL.argWeights, weights.inner],
      [DNNL.argDst, data.y!],
      ...(bias ? [[DNNL.argBias, data.bias!] as const] : []),
    ]);
    return { desc: pd, primitive, args, data, weights, owned };
  }

  /**
   * The primitive descriptor of a backward direction, with the forward one as
   * its hint (oneDNN's rule), and what it owns so far; `null` where oneDNN
   * declines the shape.
   */
  #backwardDesc(geometry: DnnlConvGeometry, kind: "backwardData" | "backwardWeights") {
    const dnnl = this.dnnl;
    const hint = this.#forwardDesc(geometry, false, null);
    if (hint === null) return null;
    const owned: Entry["owned"] = { primitives: [], descs: [hint], memories: [] };
    const d = this.#descs(geometry);
    const op = dnnl.convolutionDesc(kind, {
      src: d.src,
      weights: d.weightsAny,
      bias: null,
      dst: d.dst,
    }, d.shape);
    const pd = dnnl.primitiveDesc(op, null, hint);
    if (pd === null) {
      dnnl.destroy(owned);
      return null;
    }
    owned.descs.push(pd);
    return { pd, owned, d };
  }

  #buildBackwardData(geometry: DnnlConvGeometry): Entry | null {
    const dnnl = this.dnnl;
    const built = this.#backwardDesc(geometry, "backwardData");
    if (built === null) return null;
    const { pd, owned, d } = built;
    const data = { dy: dnnl.memory(d.dst, false), dx: dnnl.memory(d.src, false) };
    owned.memories.push(data.dy, data.dx);
    const weights = this.#weights(
      dnnl.queryDesc(pd, DNNL.queryWeightsMd),
      d.weightsUser,
      "in",
      owned,
    );
    const primitive = dnnl.primitive(pd);
    owned.primitives.push(primitive);
    const args = dnnl.execArgs([
      [DNNL.argDiffDst, data.dy],
      [DNNL.argWeights, weights.inner],
      [DNNL.argDiffSrc, data.dx],
    ]);
    return { desc: pd, primitive, args, data, weights, owned };
  }

  #buildBackwardWeights(geometry: DnnlConvGeometry): Entry | null {
    const dnnl = this.dnnl;
    const built = this.#backwardDesc(geometry, "backwardWeights");
    if (built === null) return null;
    const { pd, owned, d } = built;
    const data = { x: dnnl.memory(d.src, false), dy: dnnl.memory(d.dst, false) };
    owned.memories.push(data.x, data.dy);
    const weights = this.#weights(
      dnnl.queryDesc(pd, DNNL.queryDiffWeightsMd),
      d.weightsUser,
      "out",
      owned,
    );
    const primitive = dnnl.primitive(pd);
    owned.primitives.push(primitive);
    const args = dnnl.execArgs([
      [DNNL.argSrc, data.x],
      [DNNL.argDiffDst, data.dy],
      [DNNL.argDiffWeights, weights.inner],
    ]);
    return { desc: pd, primitive, args, data, weights, owned };
  }
}

function shapeKey(g: DnnlConvGeometry): string {
  return [
    g.batch,
    g.inHeight,
    g.inWidth,
    g.inChannels,
    g.outHeight,
    g.outWidth,
    g.outChannels,
    g.filterHeight,
    g.filterWidth,
    g.strideHeight,
    g.strideWidth,
    g.dilationHeight,
    g.dilationWidth,
    g.padTop,
    g.padBottom,
    g.padLeft,
    g.padRight,
  ].join(",");
}
