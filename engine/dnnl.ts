/**
 * oneDNN 2.x (the library PyTorch runs its CPU convolutions on) through Deno's
 * FFI: the few calls of its C API that this package's convolution kernels
 * need. The C API takes pointers and fixed-size structs, so no compiler or
 * shim is involved: descriptors are byte buffers of the sizes the 2.x headers
 * give, handles are pointers.
 *
 * oneDNN is optional. {@linkcode openDnnl} says why it cannot be used when it
 * is not installed (Debian/Ubuntu: `apt-get install libdnnl2`), when FFI is
 * not permitted (run Deno with `--allow-ffi`), when the library found is not
 * version 2 (version 3 changed the C API), or when `SEGMENT_NO_DNNL=1`
 * switches it off.
 *
 * @module
 */

import { FreeCores } from "./free_cores.ts";
import { noteRoute, routeClock } from "./routes.ts";

/** The library file names tried, in order. */
export const DNNL_PATHS: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu/libdnnl.so.2",
  "/usr/lib/aarch64-linux-gnu/libdnnl.so.2",
  "/usr/lib64/libdnnl.so.2",
  "/usr/local/lib/libdnnl.so.2",
  "/usr/lib/libdnnl.so.2",
  "libdnnl.so.2",
  "/opt/homebrew/lib/libdnnl.2.dylib",
  "/usr/local/lib/libdnnl.2.dylib",
  "libdnnl.2.dylib",
];

/**
 * Where other major versions of oneDNN are usually installed (3.x: Debian
 * 13, Homebrew, conda, Intel's oneAPI), looked at only to say that one was
 * found and cannot be used: oneDNN 3 changed the C API this module binds.
 */
export const OTHER_DNNL_PATHS: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu/libdnnl.so.3",
  "/usr/lib/aarch64-linux-gnu/libdnnl.so.3",
  "/usr/lib64/libdnnl.so.3",
  "/usr/local/lib/libdnnl.so.3",
  "/opt/intel/oneapi/dnnl/latest/lib/libdnnl.so.3",
  "/opt/homebrew/lib/libdnnl.3.dylib",
  "/usr/local/lib/libdnnl.3.dylib",
  "libdnnl.so.3",
  "libdnnl.3.dylib",
];

/** Bytes of `dnnl_memory_desc_t` in oneDNN 2.x. */
const MEMORY_DESC_BYTES = 696;
/** Bytes of the largest operation descriptor used here (`dnnl_convolution_desc_t` is 5976). */
const OP_DESC_BYTES = 8192;
/** Bytes of one `dnnl_exec_arg_t`: an int argument id, then a memory handle. */
const EXEC_ARG_BYTES = 16;
/** `DNNL_MAX_NDIMS`: the length of a `dnnl_dims_t`. */
const MAX_DIMS = 12;

/** Values of oneDNN 2.x enums used here (from its headers). */
export const DNNL = {
  f32: 3,
  u8: 6,
  binaryAdd: 131056,
  binaryMul: 131057,
  binarySub: 131061,
  binaryGe: 131062,
  reductionSum: 196596,
  argSrc1: 2,
  /** `DNNL_ARG_MULTIPLE_SRC`: the first source of a sum; the next are `+ 1`, `+ 2`, ... */
  argMultipleSrc: 1024,
  formatAny: 1,
  /** Plain layouts by letter order of the logical dims: `a` is 1-D, `abcd` is NCHW/OIHW. */
  a: 2,
  nhwc: 20,
  hwio: 30,
  forwardTraining: 64,
  forwardInference: 96,
  backwardData: 160,
  backwardWeights: 192,
  backward: 128,
  convolutionDirect: 1,
  eltwiseRelu: 31,
  eltwiseExp: 191,
  eltwiseLog: 239,
  eltwiseElu: 63,
  eltwiseLogistic: 175,
  eltwiseClip: 255,
  poolingMax: 511,
  poolingAvg: 767,
  resamplingNearest: 196592,
  eltwiseLinear: 127,
  useGlobalStats: 1,
  fuseNormRelu: 4,
  useScale: 8,
  useShift: 16,
  argSrc: 1,
  argDst: 17,
  argWeights: 33,
  argBias: 41,
  argMean: 49,
  argVariance: 50,
  argScale: 51,
  argShift: 52,
  argWorkspace: 64,
  argDiffSrc: 129,
  argDiffDst: 145,
  argDiffWeights: 161,
  argDiffBias: 169,
  argDiffScale: 255,
  argDiffShift: 256,
  queryPrimitiveKind: 2,
  queryImplInfoStr: 8,
  querySrcMd: 129,
  queryDiffSrcMd: 130,
  queryWeightsMd: 131,
  queryDiffWeightsMd: 132,
  queryDstMd: 133,
  queryDiffDstMd: 134,
  queryWorkspaceMd: 135,
} as const;

const SYMBOLS = {
  dnnl_version: { parameters: [], result: "pointer" },
  dnnl_engine_create: { parameters: ["buffer", "i32", "usize"], result: "i32" },
  dnnl_stream_create: { parameters: ["buffer", "pointer", "u32"], result: "i32" },
  dnnl_stream_wait: { parameters: ["pointer"], result: "i32" },
  dnnl_stream_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_engine_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_memory_desc_init_by_tag: {
    parameters: ["buffer", "i32", "buffer", "i32", "i32"],
    result: "i32",
  },
  dnnl_memory_desc_init_by_strides: {
    parameters: ["buffer", "i32", "buffer", "i32", "buffer"],
    result: "i32",
  },
  dnnl_binary_desc_init: {
    parameters: ["buffer", "i32", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  dnnl_eltwise_forward_desc_init: {
    parameters: ["buffer", "i32", "i32", "buffer", "f32", "f32"],
    result: "i32",
  },
  dnnl_eltwise_backward_desc_init: {
    parameters: ["buffer", "i32", "buffer", "buffer", "f32", "f32"],
    result: "i32",
  },
  dnnl_pooling_forward_desc_init: {
    parameters: [
      "buffer",
      "i32",
      "i32",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  dnnl_pooling_backward_desc_init: {
    parameters: [
      "buffer", // pool_desc
      "i32", // alg_kind
      "buffer", // diff_src_desc
      "buffer", // diff_dst_desc
      "buffer", // strides
      "buffer", // kernel
      "buffer", // padding_l
      "buffer", // padding_r
    ],
    result: "i32",
  },
  dnnl_resampling_forward_desc_init: {
    // resampling_desc, prop_kind, alg_kind, factors (float[]), src_desc, dst_desc
    parameters: ["buffer", "i32", "i32", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  dnnl_resampling_backward_desc_init: {
    // resampling_desc, alg_kind, factors (float[]), diff_src_desc, diff_dst_desc
    parameters: ["buffer", "i32", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  dnnl_reduction_desc_init: {
    parameters: ["buffer", "i32", "buffer", "buffer", "f32", "f32"],
    result: "i32",
  },
  dnnl_memory_desc_equal: { parameters: ["pointer", "pointer"], result: "i32" },
  dnnl_memory_desc_get_size: { parameters: ["pointer"], result: "usize" },
  dnnl_memory_create: { parameters: ["buffer", "pointer", "pointer", "pointer"], result: "i32" },
  dnnl_memory_set_data_handle: { parameters: ["pointer", "pointer"], result: "i32" },
  dnnl_memory_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_dilated_convolution_forward_desc_init: {
    parameters: [
      "buffer", // conv_desc
      "i32", // prop_kind
      "i32", // alg_kind
      "buffer", // src_desc
      "buffer", // weights_desc
      "buffer", // bias_desc (may be NULL)
      "buffer", // dst_desc
      "buffer", // strides
      "buffer", // dilates
      "buffer", // padding_l
      "buffer", // padding_r
    ],
    result: "i32",
  },
  dnnl_dilated_convolution_backward_data_desc_init: {
    parameters: [
      "buffer", // conv_desc
      "i32", // alg_kind
      "buffer", // diff_src_desc
      "buffer", // weights_desc
      "buffer", // diff_dst_desc
      "buffer", // strides
      "buffer", // dilates
      "buffer", // padding_l
      "buffer", // padding_r
    ],
    result: "i32",
  },
  dnnl_dilated_convolution_backward_weights_desc_init: {
    parameters: [
      "buffer", // conv_desc
      "i32", // alg_kind
      "buffer", // src_desc
      "buffer", // diff_weights_desc
      "buffer", // diff_bias_desc (may be NULL)
      "buffer", // diff_dst_desc
      "buffer", // strides
      "buffer", // dilates
      "buffer", // padding_l
      "buffer", // padding_r
    ],
    result: "i32",
  },
  dnnl_batch_normalization_forward_desc_init: {
    parameters: ["buffer", "i32", "buffer", "f32", "u32"],
    result: "i32",
  },
  dnnl_batch_normalization_backward_desc_init: {
    parameters: ["buffer", "i32", "buffer", "buffer", "f32", "u32"],
    result: "i32",
  },
  dnnl_primitive_attr_create: { parameters: ["buffer"], result: "i32" },
  dnnl_primitive_attr_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_primitive_attr_set_post_ops: { parameters: ["pointer", "pointer"], result: "i32" },
  dnnl_post_ops_create: { parameters: ["buffer"], result: "i32" },
  dnnl_post_ops_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_post_ops_append_eltwise: {
    parameters: ["pointer", "f32", "i32", "f32", "f32"],
    result: "i32",
  },
  dnnl_primitive_desc_create: {
    parameters: ["buffer", "buffer", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  dnnl_sum_primitive_desc_create: {
    // sum_primitive_desc, dst_desc, n, scales (float[n]), src_descs (dnnl_memory_desc_t[n]),
    // attr, engine
    parameters: ["buffer", "buffer", "i32", "buffer", "buffer", "pointer", "pointer"],
    result: "i32",
  },
  dnnl_reorder_primitive_desc_create: {
    parameters: ["buffer", "pointer", "pointer", "pointer", "pointer", "pointer"],
    result: "i32",
  },
  dnnl_primitive_desc_query: {
    parameters: ["pointer", "i32", "i32", "buffer"],
    result: "i32",
  },
  dnnl_primitive_desc_query_md: { parameters: ["pointer", "i32", "i32"], result: "pointer" },
  dnnl_primitive_desc_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_primitive_create: { parameters: ["buffer", "pointer"], result: "i32" },
  dnnl_primitive_destroy: { parameters: ["pointer"], result: "i32" },
  dnnl_primitive_execute: {
    parameters: ["pointer", "pointer", "i32", "buffer"],
    result: "i32",
  },
} as const;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** A pointer returned by oneDNN: a handle, or a descriptor inside a primitive descriptor. */
export type Handle = Deno.PointerObject;

/**
 * A memory descriptor built here (`dnnl_memory_desc_t` in a byte buffer), or
 * one that a primitive descriptor holds (a pointer into it).
 */
export type MemoryDesc = Uint8Array | Handle;

/** The status codes of oneDNN, by value. */
const STATUS_NAMES = [
  "success",
  "out of memory",
  "invalid arguments",
  "unimplemented",
  "iterator ends",
  "runtime error",
  "not required",
];

/** oneDNN 2.x's primitive kinds (`dnnl_primitive_kind_t`), by value, as a profile names them. */
const PRIMITIVE_KINDS: readonly string[] = [
  "undefined",
  "reorder",
  "shuffle",
  "concat",
  "sum",
  "convolution",
  "deconvolution",
  "eltwise",
  "softmax",
  "pooling",
  "lrn",
  "batch normalization",
  "layer normalization",
  "inner product",
  "rnn",
  "gemm",
  "binary",
  "logsoftmax",
  "matmul",
  "resampling",
  "pooling",
  "reduction",
  "prelu",
];

/** An argument of {@linkcode Dnnl.execute}: an argument id (`DNNL.argSrc`, ...) and a memory. */
export type ExecArg = readonly [id: number, memory: Handle];

/** The dimensions and padding of a 2-D convolution, oneDNN's way (0 dilation: none). */
export interface ConvDescShape {
  /** Strides `[height, width]`. */
  strides: readonly [number, number];
  /** Extra gaps between taps, `[height, width]` (tfjs dilation - 1). */
  dilates: readonly [number, number];
  /** Padding `[top, left]`. */
  padBefore: readonly [number, number];
  /** Padding `[bottom, right]`. */
  padAfter: readonly [number, number];
}

/** Direction, strides and padding of {@linkcode Dnnl.poolingDesc}. */
export interface PoolingOptions {
  /**
   * `inference`, `training` (the forward pass that also writes the workspace
   * a max pooling's gradient needs) or `backward` (the gradient of the input).
   * @default "inference"
   */
  kind?: "inference" | "training" | "backward";
  /** Strides `[height, width]`. @default the window */
  strides?: readonly [number, number];
  /** Padding `[top, left]`. @default [0, 0] */
  padBefore?: readonly [number, number];
  /** Padding `[bottom, right]`. @default [0, 0] */
  padAfter?: readonly [number, number];
}

/** The oneDNN calls the kernels use, on one CPU engine and stream. */
export interface Dnnl {
  /** Where the library was loaded from. */
  readonly path: string;
  /** Its version, e.g. `2.6.3`. */
  readonly version: string;
  /**
   * A plain or `any` memory descriptor of 32-bit floats.
   *
   * @param dims Logical dims: `[n, c, h, w]` for data, `[o, i, h, w]` for weights.
   * @param tag A layout tag of {@linkcode DNNL} (`nhwc`, `hwio`, `a`, `formatAny`).
   * @returns The descriptor.
   */
  memoryDesc(dims: readonly number[], tag: number): Uint8Array;
  /**
   * A row-major memory descriptor of any rank (dims of 1 broadcast in a binary operation).
   *
   * @param dims The dims, outermost first.
   * @param dataType `DNNL.f32` or `DNNL.u8`.
   * @returns The descriptor.
   */
  plainDesc(dims: readonly number[], dataType: number): Uint8Array;
  /**
   * An element-wise binary operation descriptor: `dst = src0 op src1`, with
   * `src1` broadcast along its dims of 1.
   *
   * @param algorithm `DNNL.binaryAdd`, `DNNL.binaryMul`, ...
   * @param src0 The first operand's descriptor (the output's shape).
   * @param src1 The second operand's descriptor.
   * @param dst The output's descriptor.
   * @returns The descriptor.
   */
  binaryDesc(algorithm: number, src0: Uint8Array, src1: Uint8Array, dst: Uint8Array): Uint8Array;
  /**
   * An element-wise forward operation descriptor (training), e.g. for
   * `DNNL.eltwiseRelu` `dst = src > 0 ? src : alpha * src`.
   *
   * @param algorithm `DNNL.eltwiseRelu`, `DNNL.eltwiseExp`, ...
   * @param data The descriptor of `src` and `dst`.
   * @param alpha The algorithm's alpha (ReLU: the slope below 0).
   * @param beta The algorithm's beta.
   * @returns The descriptor.
   */
  eltwiseForwardDesc(algorithm: number, data: Uint8Array, alpha: number, beta: number): Uint8Array;
  /**
   * An element-wise backward operation descriptor: `diff_src` from
   * `diff_dst` and the forward pass's input `src`, e.g. for `DNNL.eltwiseRelu`
   * `diff_src = src > 0 ? diff_dst : alpha * diff_dst`.
   *
   * @param algorithm `DNNL.eltwiseRelu`, ...
   * @param diffData The descriptor of `diff_dst` and `diff_src`.
   * @param data The descriptor of `src`.
   * @param alpha The algorithm's alpha (ReLU: the slope below 0).
   * @param beta The algorithm's beta.
   * @returns The descriptor.
   */
  eltwiseBackwardDesc(
    algorithm: number,
    diffData: Uint8Array,
    data: Uint8Array,
    alpha: number,
    beta: number,
  ): Uint8Array;
  /**
   * A memory descriptor of floats with the given strides (in elements), e.g.
   * some columns of a row-major matrix.
   *
   * @param dims The dims, outermost first.
   * @param strides The stride of each dim, in elements.
   * @returns The descriptor.
   */
  stridedDesc(dims: readonly number[], strides: readonly number[]): Uint8Array;
  /**
   * A 2-D pooling operation descriptor: by default for inference, with the
   * window as its stride and no padding.
   *
   * @param algorithm `DNNL.poolingMax` or `DNNL.poolingAvg`.
   * @param src The input's descriptor (its gradient's, for `backward`).
   * @param dst The output's descriptor (its gradient's, for `backward`).
   * @param kernel Window `[height, width]`.
   * @param options Direction, strides and padding.
   * @returns The descriptor.
   */
  poolingDesc(
    algorithm: number,
    src: Uint8Array,
    dst: Uint8Array,
    kernel: readonly [number, number],
    options?: PoolingOptions,
  ): Uint8Array;
  /**
   * A 2-D resampling operation descriptor.
   *
   * @param kind `forward` (training) or `backward` (the gradient of the source).
   * @param algorithm `DNNL.resamplingNearest`.
   * @param src The source's descriptor (its gradient's, for `backward`).
   * @param dst The destination's descriptor (its gradient's, for `backward`).
   * @param factors Destination size over source size, `[height, width]`.
   * @returns The descriptor.
   */
  resamplingDesc(
    kind: "forward" | "backward",
    algorithm: number,
    src: Uint8Array,
    dst: Uint8Array,
    factors: readonly [number, number],
  ): Uint8Array;
  /**
   * A reduction operation descriptor: `dst` sums `src` over the dims where `dst` has 1.
   *
   * @param algorithm `DNNL.reductionSum`.
   * @param src The input's descriptor.
   * @param dst The output's descriptor.
   * @returns The descriptor.
   */
  reductionDesc(algorithm: number, src: Uint8Array, dst: Uint8Array): Uint8Array;
  /**
   * Whether two memory descriptors describe the same layout.
   *
   * @param a One descriptor.
   * @param b The other.
   * @returns `true` when equal.
   */
  descEqual(a: MemoryDesc, b: MemoryDesc): boolean;
  /**
   * Bytes a memory of this descriptor takes.
   *
   * @param desc The descriptor.
   * @returns Its size in bytes.
   */
  descBytes(desc: MemoryDesc): number;
  /**
   * A convolution operation descriptor (for {@linkcode Dnnl.primitiveDesc}).
   *
   * @param kind `forward` (training), `backwardData` or `backwardWeights`.
   * @param descs Source (or its gradient), weights (or their gradient), bias
   *   (or `null`), destination (or its gradient).
   * @param shape Strides, dilation and padding.
   * @returns The descriptor.
   */
  convolutionDesc(
    kind: "forward" | "backwardData" | "backwardWeights",
    descs: { src: Uint8Array; weights: Uint8Array; bias: Uint8Array | null; dst: Uint8Array },
    shape: ConvDescShape,
  ): Uint8Array;
  /**
   * A batch normalization operation descriptor.
   *
   * @param kind `forward` (training: computes the statistics), `inference`
   *   (with `DNNL.useGlobalStats`: given statistics) or `backward` (all gradients).
   * @param data The data's descriptor (and its gradient's, for `backward`).
   * @param epsilon Added to the variance.
   * @param flags `DNNL.useScale | DNNL.useShift | ...`.
   * @returns The descriptor.
   */
  batchNormDesc(
    kind: "forward" | "inference" | "backward",
    data: Uint8Array,
    epsilon: number,
    flags: number,
  ): Uint8Array;
  /**
   * Primitive attributes with one element-wise post-op (e.g. a ReLU after a
   * convolution), or `null` for none.
   *
   * @param algorithm `DNNL.eltwiseRelu`, ...; `null` for no post-op.
   * @param alpha The algorithm's alpha.
   * @param beta The algorithm's beta.
   * @returns The attributes (destroy with {@linkcode Dnnl.destroyAttr}), or `null`.
   */
  eltwiseAttr(algorithm: number | null, alpha: number, beta: number): Handle | null;
  /**
   * Destroys attributes of {@linkcode Dnnl.eltwiseAttr}.
   *
   * @param attr The attributes, or `null`.
   */
  destroyAttr(attr: Handle | null): void;
  /**
   * The best implementation oneDNN has for an operation.
   *
   * @param op The operation descriptor.
   * @param attr Attributes, or `null`.
   * @param hint The forward primitive descriptor, for a backward one.
   * @returns The primitive descriptor, or `null` when oneDNN has no implementation.
   */
  primitiveDesc(op: Uint8Array, attr: Handle | null, hint: Handle | null): Handle | null;
  /**
   * The best implementation oneDNN has for a sum, `dst = scales[0] * srcs[0]
   * + scales[1] * srcs[1] + ...`, element by element (oneDNN docs: "Sum",
   * `dnnl_sum_primitive_desc_create`). Its sources are arguments
   * `DNNL.argMultipleSrc + i`, its destination `DNNL.argDst`.
   *
   * @param dst The destination's descriptor.
   * @param scales One factor per source.
   * @param srcs The sources' descriptors (as many as `scales`; the destination's shape).
   * @returns The primitive descriptor, or `null` when oneDNN has no implementation.
   */
  sumDesc(dst: Uint8Array, scales: readonly number[], srcs: readonly Uint8Array[]): Handle | null;
  /**
   * A reorder between two layouts of the same data.
   *
   * @param from The source descriptor.
   * @param to The destination descriptor.
   * @returns The reorder's primitive descriptor.
   */
  reorderDesc(from: MemoryDesc, to: MemoryDesc): Handle;
  /**
   * A memory descriptor that a primitive descriptor chose (`DNNL.queryWeightsMd`, ...).
   *
   * @param pd The primitive descriptor.
   * @param query What to ask for.
   * @returns A pointer into `pd`, valid while `pd` lives.
   */
  queryDesc(pd: Handle, query: number): Handle;
  /**
   * The implementation's name, e.g. `brgconv:avx512_core`.
   *
   * @param pd The primitive descriptor.
   * @returns Its name.
   */
  implName(pd: Handle): string;
  /**
   * Creates the primitive of a primitive descriptor.
   *
   * @param pd The primitive descriptor.
   * @returns The primitive.
   */
  primitive(pd: Handle): Handle;
  /**
   * A memory object: without a buffer (`owned` false; give it one with
   * {@linkcode Dnnl.setHandle} before each use) or with one that oneDNN
   * allocates and frees.
   *
   * @param desc Its descriptor.
   * @param owned Whether oneDNN allocates its buffer.
   * @returns The memory object.
   */
  memory(desc: MemoryDesc, owned: boolean): Handle;
  /**
   * Points a memory object at a buffer.
   *
   * @param memory The memory object.
   * @param pointer The buffer.
   */
  setHandle(memory: Handle, pointer: Handle): void;
  /**
   * The argument list of {@linkcode Dnnl.execute}, built once per primitive.
   *
   * @param args The arguments.
   * @returns The `dnnl_exec_arg_t` array.
   */
  execArgs(args: readonly ExecArg[]): Uint8Array;
  /**
   * Runs a primitive and waits for it.
   *
   * @param primitive The primitive.
   * @param args Its arguments from {@linkcode Dnnl.execArgs}.
   */
  execute(primitive: Handle, args: Uint8Array): void;
  /**
   * Chooses the threads for the kernel about to run and returns their count:
   * as many as other processes leave cores free ({@linkcode FreeCores},
   * measured at most every half second), every core on an idle machine, one
   * where another process keeps the others busy (oneDNN's threads wait for
   * each other at barriers, and a thread sharing its core arrives late).
   * oneDNN fixes a primitive's threads when it is built, so each kernel keys
   * its cached primitives by this count, and builds and runs them after this
   * call. Without GNU OpenMP (another oneDNN build) its own threads decide
   * and this returns 0.
   *
   * @returns The threads set, or 0.
   */
  threads(): number;
  /** The most threads {@linkcode Dnnl.threads} sets (OpenMP's count, the cores); 0 without GNU OpenMP. */
  readonly maxThreads: number;
  /**
   * Fixes oneDNN's threads at `threads` (at most the cores), or with `null`
   * lets {@linkcode Dnnl.threads} follow the free cores again.
   *
   * @param threads The count, or `null`.
   */
  pinThreads(threads: number | null): void;
  /**
   * Destroys primitives, primitive descriptors and memory objects.
   *
   * @param handles What to destroy, by kind.
   */
  destroy(handles: { primitives?: Handle[]; descs?: Handle[]; memories?: Handle[] }): void;
  /** Closes the library; the object must not be used afterwards. */
  close(): void;
}

/**
 * Whether the environment switches oneDNN off (`SEGMENT_NO_DNNL=1`).
 *
 * @returns `true` when `SEGMENT_NO_DNNL` is set to anything but `""` or `"0"`.
 *
 * @example
 * ```ts
 * import { dnnlDisabledByEnv } from "./dnnl.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(typeof dnnlDisabledByEnv(), "boolean");
 * ```
 */
export function dnnlDisabledByEnv(): boolean {
  try {
    const value = Deno.env.get("SEGMENT_NO_DNNL");
    return value !== undefined && value !== "" && value !== "0";
  } catch {
    return false;
  }
}

/**
 * Loads oneDNN 2.x, or says why it cannot.
 *
 * @returns The library's calls, or the reason it is unavailable
 *   (`"SEGMENT_NO_DNNL is set"`, `"not installed"`, `"--allow-ffi not granted"`,
 *   `"version 3.0.0 found, 2.x needed"`).
 *
 * @example
 * ```ts
 * import { DNNL, openDnnl } from "./dnnl.ts";
 * import { assert } from "./assert.ts";
 * const dnnl = openDnnl();
 * if (typeof dnnl !== "string") {
 *   const desc = dnnl.memoryDesc([1, 3, 4, 4], DNNL.nhwc);
 *   assert(dnnl.descBytes(desc) === 4 * 3 * 4 * 4);
 *   dnnl.close();
 * }
 * ```
 */
export function openDnnl(): Dnnl | string {
  if (dnnlDisabledByEnv()) return "SEGMENT_NO_DNNL is set";
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return "--allow-ffi not granted";
  }
  for (const path of DNNL_PATHS) {
    let library;
    try {
      library = withShortOpenMpSpin(() => Deno.dlopen(path, SYMBOLS));
    } catch {
      continue;
    }
    const version = readVersion(library.symbols);
    if (!version.startsWith("2.")) {
      library.close();
      return `version ${version} found, 2.x needed`;
    }
    return wrap(library, path, version);
  }
  return "not installed";
}

/**
 * A oneDNN this module cannot use (another major version, see
 * {@linkcode OTHER_DNNL_PATHS}), as `"3.6.1 at /path"`, or `null` when none
 * is found or FFI is not granted. Opens each candidate only to read its
 * version, and closes it.
 *
 * @returns The version and path found, or `null`.
 *
 * @example
 * ```ts
 * import { findUnusableDnnl } from "./dnnl.ts";
 * import { assert } from "./assert.ts";
 * const found = findUnusableDnnl();
 * assert(found === null || / at /.test(found));
 * ```
 */
export function findUnusableDnnl(): string | null {
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
  for (const path of OTHER_DNNL_PATHS) {
    let library;
    try {
      library = Deno.dlopen(path, { dnnl_version: SYMBOLS.dnnl_version });
    } catch {
      continue;
    }
    try {
      return `${readVersion(library.symbols as unknown as Symbols)} at ${path}`;
    } finally {
      library.close();
    }
  }
  return null;
}

/**
 * Spin iterations of an idle OpenMP thread before it sleeps (about 3 ms), for
 * the OpenMP runtime oneDNN brings (GNU libgomp, which reads its settings
 * once, when it is loaded). Set explicitly because libgomp otherwise throttled
 * its spinning here to almost none, so its worker slept between oneDNN's
 * calls (a training step makes a hundred, between pieces of JavaScript) and
 * was woken for each: bin's and semaseg's steps took 19-20.7 ms, against
 * 17.3-18.1 with 300000 (4 alternating runs each; PyTorch's, run with either,
 * did not change). It was 1000 when oneDNN always ran on both cores: on cores
 * shared with busy processes a spinning worker then made a convolution 5-13 ms
 * instead of 1.6-2.0; now the threads follow the free cores
 * ({@linkcode Dnnl.threads}), and with one core busy the step took 28-30 ms
 * with either count.
 */
const OPENMP_SPIN_COUNT = "300000";

/**
 * Runs `load` with `GOMP_SPINCOUNT` set to {@linkcode OPENMP_SPIN_COUNT}
 * unless the user chose an OpenMP wait policy, and restores the environment
 * afterwards, so that processes started later (PyTorch in `bench`) keep theirs.
 */
function withShortOpenMpSpin<T>(load: () => T): T {
  let set = false;
  try {
    if (
      Deno.env.get("OMP_WAIT_POLICY") === undefined && Deno.env.get("GOMP_SPINCOUNT") === undefined
    ) {
      Deno.env.set("GOMP_SPINCOUNT", OPENMP_SPIN_COUNT);
      set = true;
    }
  } catch {
    // No --allow-env: OpenMP keeps its defaults.
  }
  try {
    return load();
  } finally {
    if (set) Deno.env.delete("GOMP_SPINCOUNT");
  }
}

/** Milliseconds the process waits at exit once OpenMP has run: its spin (about 3 ms) and more. */
const OPENMP_SETTLE_MS = 20;

let settleAtExit = false;

/**
 * Makes the process wait {@linkcode OPENMP_SETTLE_MS} at exit (the `unload`
 * event), once per process. OpenMP's workers spin for a few milliseconds
 * after each oneDNN call; a process that exits inside that window tears the
 * libraries down under them, and once in about 65 profile runs here the exit
 * ended in a segfault (exit code 139, a jump into unmapped code) after all
 * output. Waiting lets the workers fall asleep first.
 */
function settleOpenMpAtExit(): void {
  if (settleAtExit) return;
  settleAtExit = true;
  globalThis.addEventListener("unload", () => {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, OPENMP_SETTLE_MS);
  });
}

/** `dnnl_version()`: three ints, major first. */
function readVersion(symbols: Symbols): string {
  const pointer = symbols.dnnl_version();
  if (pointer === null) return "unknown";
  const view = new Deno.UnsafePointerView(pointer);
  return `${view.getInt32(0)}.${view.getInt32(4)}.${view.getInt32(8)}`;
}

function check(status: number, what: string): void {
  if (status !== 0) {
    throw new Error(`oneDNN ${what} failed: ${STATUS_NAMES[status] ?? `status ${status}`}`);
  }
}

/** A `dnnl_dims_t` (12 int64) holding `values`. */
function dims(values: readonly number[]): BigInt64Array {
  const array = new BigInt64Array(MAX_DIMS);
  values.forEach((value, index) => array[index] = BigInt(value));
  return array;
}

/** Reads the handle an out-parameter received. */
function outHandle(cell: BigUint64Array, what: string): Handle {
  const pointer = Deno.UnsafePointer.create(cell[0]!);
  if (pointer === null) throw new Error(`oneDNN ${what} returned no handle`);
  return pointer;
}

function asPointer(desc: MemoryDesc): Handle {
  if (desc instanceof Uint8Array) {
    const pointer = Deno.UnsafePointer.of(desc);
    if (pointer === null) throw new Error("oneDNN: empty memory descriptor");
    return pointer;
  }
  return desc;
}

/** The GNU OpenMP runtime oneDNN was loaded with, if that is its runtime. */
function openMp(): Deno.DynamicLibrary<typeof OPENMP_SYMBOLS> | null {
  try {
    return Deno.dlopen("libgomp.so.1", OPENMP_SYMBOLS);
  } catch {
    return null;
  }
}

const OPENMP_SYMBOLS = {
  omp_set_num_threads: { parameters: ["i32"], result: "void" },
  omp_get_max_threads: { parameters: [], result: "i32" },
} as const;

function wrap(library: Deno.DynamicLibrary<typeof SYMBOLS>, path: string, version: string): Dnnl {
  const symbols = library.symbols;
  // Each primitive's route for the profiler ("oneDNN convolution brgconv:avx512_core"), by its
  // handle's address.
  const routes = new Map<number | bigint, string>();
  // The primitive kind as a word and a space ("convolution "), from oneDNN 2.x's
  // dnnl_primitive_kind_t (the 3.x enum is ordered differently; 3.x is refused at load).
  const kindName = (pd: Handle): string => {
    const out = new Int32Array(2);
    if (symbols.dnnl_primitive_desc_query(pd, DNNL.queryPrimitiveKind, 0, out) !== 0) return "";
    const name = PRIMITIVE_KINDS[out[0]!];
    return name === undefined ? "" : `${name} `;
  };
  const implName = (pd: Handle): string => {
    const out = new BigUint64Array(1);
    check(
      symbols.dnnl_primitive_desc_query(pd, DNNL.queryImplInfoStr, 0, out),
      "primitive_desc_query",
    );
    const pointer = Deno.UnsafePointer.create(out[0]!);
    return pointer === null ? "" : Deno.UnsafePointerView.getCString(pointer);
  };
  const openmp = openMp();
  if (openmp !== null) settleOpenMpAtExit();
  const maxThreads = openmp?.symbols.omp_get_max_threads() ?? 1;
  const freeCores = new FreeCores(maxThreads);
  /** Threads oneDNN is set to now, and the count asked for, if fixed. */
  let current = maxThreads;
  let pinned: number | null = null;
  const cell = new BigUint64Array(1);
  check(symbols.dnnl_engine_create(cell, 1, /* dnnl_cpu */ 0n), "engine_create");
  const engine = outHandle(cell, "engine_create");
  check(symbols.dnnl_stream_create(cell, engine, 1 /* default flags */), "stream_create");
  const stream = outHandle(cell, "stream_create");

  const dnnl: Dnnl = {
    path,
    version,
    maxThreads: openmp === null ? 0 : maxThreads,
    memoryDesc(shape, tag) {
      const desc = new Uint8Array(MEMORY_DESC_BYTES);
      check(
        symbols.dnnl_memory_desc_init_by_tag(desc, shape.length, dims(shape), DNNL.f32, tag),
        "memory_desc_init_by_tag",
      );
      return desc;
    },
    plainDesc(shape, dataType) {
      const desc = new Uint8Array(MEMORY_DESC_BYTES);
      const strides: number[] = [];
      let stride = 1;
      for (let axis = shape.length - 1; axis >= 0; axis--) {
        strides[axis] = stride;
        stride *= shape[axis]!;
      }
      check(
        symbols.dnnl_memory_desc_init_by_strides(
          desc,
          shape.length,
          dims(shape),
          dataType,
          dims(strides),
        ),
        "memory_desc_init_by_strides",
      );
      return desc;
    },
    stridedDesc(shape, strides) {
      const desc = new Uint8Array(MEMORY_DESC_BYTES);
      check(
        symbols.dnnl_memory_desc_init_by_strides(
          desc,
          shape.length,
          dims(shape),
          DNNL.f32,
          dims(strides),
        ),
        "memory_desc_init_by_strides",
      );
      return desc;
    },
    eltwiseForwardDesc(algorithm, data, alpha, beta) {
      const op = new Uint8Array(OP_DESC_BYTES);
      check(
        symbols.dnnl_eltwise_forward_desc_init(
          op,
          DNNL.forwardTraining,
          algorithm,
          data,
          alpha,
          beta,
        ),
        "eltwise_forward_desc_init",
      );
      return op;
    },
    eltwiseBackwardDesc(algorithm, diffData, data, alpha, beta) {
      const op = new Uint8Array(OP_DESC_BYTES);
      check(
        symbols.dnnl_eltwise_backward_desc_init(op, algorithm, diffData, data, alpha, beta),
        "eltwise_backward_desc_init",
      );
      return op;
    },
    binaryDesc(algorithm, src0, src1, dst) {
      const op = new Uint8Array(OP_DESC_BYTES);
      check(symbols.dnnl_binary_desc_init(op, algorithm, src0, src1, dst), "binary_desc_init");
      return op;
    },
    poolingDesc(algorithm, src, dst, kernel, options = {}) {
      const op = new Uint8Array(OP_DESC_BYTES);
      const kind = options.kind ?? "inference";
      const strides = dims(options.strides ?? kernel);
      const before = dims(options.padBefore ?? [0, 0]);
      const after = dims(options.padAfter ?? [0, 0]);
      const status = kind === "backward"
        ? symbols.dnnl_pooling_backward_desc_init(
          op,
          algorithm,
          src,
          dst,
          strides,
          dims(kernel),
          before,
          after,
        )
        : symbols.dnnl_pooling_forward_desc_init(
          op,
          kind === "training" ? DNNL.forwardTraining : DNNL.forwardInference,
          algorithm,
          src,
          dst,
          strides,
          dims(kernel),
          before,
          after,
        );
      check(status, `pooling ${kind} desc_init`);
      return op;
    },
    resamplingDesc(kind, algorithm, src, dst, factors) {
      const op = new Uint8Array(OP_DESC_BYTES);
      const scale = new Float32Array(MAX_DIMS);
      scale.set(factors);
      const status = kind === "forward"
        ? symbols.dnnl_resampling_forward_desc_init(
          op,
          DNNL.forwardTraining,
          algorithm,
          scale,
          src,
          dst,
        )
        : symbols.dnnl_resampling_backward_desc_init(op, algorithm, scale, src, dst);
      check(status, `resampling ${kind} desc_init`);
      return op;
    },
    reductionDesc(algorithm, src, dst) {
      const op = new Uint8Array(OP_DESC_BYTES);
      check(symbols.dnnl_reduction_desc_init(op, algorithm, src, dst, 0, 0), "reduction_desc_init");
      return op;
    },
    descEqual(a, b) {
      return symbols.dnnl_memory_desc_equal(asPointer(a), asPointer(b)) === 1;
    },
    descBytes(desc) {
      return Number(symbols.dnnl_memory_desc_get_size(asPointer(desc)));
    },
    convolutionDesc(kind, descs, shape) {
      const op = new Uint8Array(OP_DESC_BYTES);
      const strides = dims(shape.strides);
      const dilates = dims(shape.dilates);
      const before = dims(shape.padBefore);
      const after = dims(shape.padAfter);
      let status;
      if (kind === "forward") {
        status = symbols.dnnl_dilated_convolution_forward_desc_init(
          op,
          DNNL.forwardTraining,
          DNNL.convolutionDirect,
          descs.src,
          descs.weights,
          descs.bias,
          descs.dst,
          strides,
          dilates,
          before,
          after,
        );
      } else if (kind === "backwardData") {
        status = symbols.dnnl_dilated_convolution_backward_data_desc_init(
          op,
          DNNL.convolutionDirect,
          descs.src,
          descs.weights,
          descs.dst,
          strides,
          dilates,
          before,
          after,
        );
      } else {
        status = symbols.dnnl_dilated_convolution_backward_weights_desc_init(
          op,
          DNNL.convolutionDirect,
          descs.src,
          descs.weights,
          descs.bias,
          descs.dst,
          strides,
          dilates,
          before,
          after,
        );
      }
      check(status, `convolution ${kind} desc_init`);
      return op;
    },
    batchNormDesc(kind, data, epsilon, flags) {
      const op = new Uint8Array(OP_DESC_BYTES);
      const status = kind !== "backward"
        ? symbols.dnnl_batch_normalization_forward_desc_init(
          op,
          kind === "forward" ? DNNL.forwardTraining : DNNL.forwardInference,
          data,
          epsilon,
          flags,
        )
        : symbols.dnnl_batch_normalization_backward_desc_init(
          op,
          DNNL.backward,
          data,
          data,
          epsilon,
          flags,
        );
      check(status, `batch normalization ${kind} desc_init`);
      return op;
    },
    eltwiseAttr(algorithm, alpha, beta) {
      if (algorithm === null) return null;
      check(symbols.dnnl_primitive_attr_create(cell), "primitive_attr_create");
      const attr = outHandle(cell, "primitive_attr_create");
      check(symbols.dnnl_post_ops_create(cell), "post_ops_create");
      const postOps = outHandle(cell, "post_ops_create");
      try {
        check(
          symbols.dnnl_post_ops_append_eltwise(postOps, 1, algorithm, alpha, beta),
          "post_ops_append_eltwise",
        );
        check(symbols.dnnl_primitive_attr_set_post_ops(attr, postOps), "attr_set_post_ops");
      } finally {
        symbols.dnnl_post_ops_destroy(postOps);
      }
      return attr;
    },
    destroyAttr(attr) {
      if (attr !== null) symbols.dnnl_primitive_attr_destroy(attr);
    },
    primitiveDesc(op, attr, hint) {
      const status = symbols.dnnl_primitive_desc_create(cell, op, attr, engine, hint);
      if (status === 3 /* unimplemented */) return null;
      check(status, "primitive_desc_create");
      return outHandle(cell, "primitive_desc_create");
    },
    sumDesc(dst, scales, srcs) {
      if (srcs.length !== scales.length || srcs.length === 0) {
        throw new Error(`oneDNN sum: ${scales.length} scales for ${srcs.length} sources`);
      }
      const packed = new Uint8Array(MEMORY_DESC_BYTES * srcs.length);
      srcs.forEach((src, i) => packed.set(src, i * MEMORY_DESC_BYTES));
      const status = symbols.dnnl_sum_primitive_desc_create(
        cell,
        dst,
        srcs.length,
        new Float32Array(scales),
        packed,
        null,
        engine,
      );
      if (status === 3 /* unimplemented */) return null;
      check(status, "sum_primitive_desc_create");
      return outHandle(cell, "sum_primitive_desc_create");
    },
    reorderDesc(from, to) {
      check(
        symbols.dnnl_reorder_primitive_desc_create(
          cell,
          asPointer(from),
          engine,
          asPointer(to),
          engine,
          null,
        ),
        "reorder_primitive_desc_create",
      );
      return outHandle(cell, "reorder_primitive_desc_create");
    },
    queryDesc(pd, query) {
      const desc = symbols.dnnl_primitive_desc_query_md(pd, query, 0);
      if (desc === null) throw new Error(`oneDNN has no memory descriptor for query ${query}`);
      return desc;
    },
    implName,
    primitive(pd) {
      check(symbols.dnnl_primitive_create(cell, pd), "primitive_create");
      const primitive = outHandle(cell, "primitive_create");
      routes.set(Deno.UnsafePointer.value(primitive), `oneDNN ${kindName(pd)}${implName(pd)}`);
      return primitive;
    },
    memory(desc, owned) {
      // DNNL_MEMORY_ALLOCATE is (void *)-1, DNNL_MEMORY_NONE is NULL.
      const handle = owned ? Deno.UnsafePointer.create(0xffffffffffffffffn) : null;
      check(symbols.dnnl_memory_create(cell, asPointer(desc), engine, handle), "memory_create");
      return outHandle(cell, "memory_create");
    },
    setHandle(memory, pointer) {
      check(symbols.dnnl_memory_set_data_handle(memory, pointer), "memory_set_data_handle");
    },
    execArgs(args) {
      const bytes = new Uint8Array(args.length * EXEC_ARG_BYTES);
      const view = new DataView(bytes.buffer);
      args.forEach(([id, memory], index) => {
        view.setInt32(index * EXEC_ARG_BYTES, id, true);
        view.setBigUint64(
          index * EXEC_ARG_BYTES + 8,
          BigInt(Deno.UnsafePointer.value(memory)),
          true,
        );
      });
      return bytes;
    },
    execute(primitive, args) {
      const since = routeClock();
      check(
        symbols.dnnl_primitive_execute(primitive, stream, args.length / EXEC_ARG_BYTES, args),
        "primitive_execute",
      );
      check(symbols.dnnl_stream_wait(stream), "stream_wait");
      // Looked up only while a profiler listens: this runs a hundred times a step.
      if (since >= 0) noteRoute(routes.get(Deno.UnsafePointer.value(primitive)) ?? "oneDNN", since);
    },
    threads() {
      if (openmp === null) return 0;
      const threads = pinned ?? freeCores.threads(performance.now());
      if (threads !== current) openmp.symbols.omp_set_num_threads(current = threads);
      return threads;
    },
    pinThreads(threads) {
      pinned = threads === null ? null : Math.max(1, Math.min(maxThreads, Math.floor(threads)));
    },
    destroy({ primitives = [], descs = [], memories = [] }) {
      for (const primitive of primitives) {
        routes.delete(Deno.UnsafePointer.value(primitive));
        symbols.dnnl_primitive_destroy(primitive);
      }
      for (const desc of descs) symbols.dnnl_primitive_desc_destroy(desc);
      for (const memory of memories) symbols.dnnl_memory_destroy(memory);
    },
    close() {
      symbols.dnnl_stream_destroy(stream);
      symbols.dnnl_engine_destroy(engine);
      openmp?.close();
      library.close();
    },
  };
  return dnnl;
}
