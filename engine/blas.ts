/**
 * OpenBLAS through Deno's FFI: the matrix products and strided copies that
 * the fast convolution kernels of the wasm backend run on both CPU cores.
 *
 * OpenBLAS is optional. {@linkcode openBlas} returns `null` when the library
 * is not installed (Debian/Ubuntu: `apt-get install libopenblas0-pthread`,
 * Fedora: `dnf install openblas-threads`, macOS: `brew install openblas`),
 * when FFI is not permitted (run Deno with `--allow-ffi`), or when the
 * environment variable `SEGMENT_NO_BLAS=1` switches it off.
 *
 * All matrices are row-major `Float32Array` views; a view may lie in the wasm
 * backend's heap, so the kernels pass tensors without copying them.
 *
 * @module
 */
import { noteRoute, routeClock } from "./routes.ts";

/** The library file names tried, in order. */
export const OPENBLAS_PATHS: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
  "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib64/libopenblasp.so.0",
  "/usr/lib64/libopenblas.so.0",
  "/usr/lib/libopenblas.so.0",
  "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
  "/usr/local/opt/openblas/lib/libopenblas.dylib",
  "libopenblas.so.0",
];

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32", // order
      "i32", // transA
      "i32", // transB
      "i32", // m
      "i32", // n
      "i32", // k
      "f32", // alpha
      "buffer", // a
      "i32", // lda
      "buffer", // b
      "i32", // ldb
      "f32", // beta
      "buffer", // c
      "i32", // ldc
    ],
    result: "void",
  },
  cblas_somatcopy: {
    parameters: [
      "i32", // order
      "i32", // trans
      "i32", // rows
      "i32", // cols
      "f32", // alpha
      "buffer", // a
      "i32", // lda
      "buffer", // b
      "i32", // ldb
    ],
    result: "void",
  },
  cblas_sgemv: {
    parameters: [
      "i32", // order
      "i32", // trans
      "i32", // m
      "i32", // n
      "f32", // alpha
      "buffer", // a
      "i32", // lda
      "buffer", // x
      "i32", // incx
      "f32", // beta
      "buffer", // y
      "i32", // incy
    ],
    result: "void",
  },
  openblas_get_num_threads: { parameters: [], result: "i32" },
  openblas_set_num_threads: { parameters: ["i32"], result: "void" },
} as const;

const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;

/** Options of {@linkcode Blas.gemm}: `c = alpha * op(a) @ op(b) + beta * c`. */
export interface GemmOptions {
  /** Rows of `op(a)` and `c`. */
  m: number;
  /** Columns of `op(b)` and `c`. */
  n: number;
  /** Columns of `op(a)`, rows of `op(b)`. */
  k: number;
  /** Row-major `a`, `[m, k]` (or `[k, m]` when `transA`). */
  a: Float32Array;
  /** Row-major `b`, `[k, n]` (or `[n, k]` when `transB`). */
  b: Float32Array;
  /** Row-major `c`, `[m, n]`, overwritten (or accumulated into, see `beta`). */
  c: Float32Array;
  /** Row stride of `a`. @default k, or m when transA */
  lda?: number;
  /** Row stride of `b`. @default n, or k when transB */
  ldb?: number;
  /** Row stride of `c`. @default n */
  ldc?: number;
  /** Use `a` transposed. @default false */
  transA?: boolean;
  /** Use `b` transposed. @default false */
  transB?: boolean;
  /** Scale of the product. @default 1 */
  alpha?: number;
  /** Scale of the old `c` added to the product (0: `c` is overwritten). @default 0 */
  beta?: number;
}

/** Options of {@linkcode Blas.copy}: a strided copy of a `rows x cols` block. */
export interface CopyOptions {
  /** Rows of the block. */
  rows: number;
  /** Columns of the block (contiguous floats per row). */
  cols: number;
  /** Source, row-major with row stride `lda`. */
  a: Float32Array;
  /** Row stride of the source. */
  lda: number;
  /** Destination, row-major with row stride `ldb`. */
  b: Float32Array;
  /** Row stride of the destination. */
  ldb: number;
  /** Write the block transposed (`cols x rows` in the destination). @default false */
  transpose?: boolean;
}

/** The OpenBLAS functions the kernels use. */
export interface Blas {
  /** Where the library was loaded from. */
  readonly path: string;
  /**
   * Threads OpenBLAS may run a large product on (set with
   * {@linkcode Blas.setThreads}); see {@linkcode productThreads} for which
   * products get them.
   */
  threads: number;
  /**
   * Sets the threads OpenBLAS may run a large product on.
   *
   * @param count Threads, at least 1.
   */
  setThreads(count: number): void;
  /**
   * Matrix product `c = alpha * op(a) @ op(b) + beta * c` (cblas_sgemm).
   *
   * @param options The matrices and their shapes.
   */
  gemm(options: GemmOptions): void;
  /**
   * Column sums of a row-major `rows x cols` matrix, times `scale`
   * (cblas_sgemv with a vector of ones).
   *
   * @param a The matrix.
   * @param rows Its rows.
   * @param cols Its columns.
   * @param ones At least `rows` ones.
   * @param out Receives the `cols` sums.
   * @param scale Multiplies the sums.
   */
  columnSums(
    a: Float32Array,
    rows: number,
    cols: number,
    ones: Float32Array,
    out: Float32Array,
    scale: number,
  ): void;
  /**
   * Strided copy of a `rows x cols` block (cblas_somatcopy).
   *
   * @param options The block, source and destination.
   */
  copy(options: CopyOptions): void;
  /** Closes the library; the object must not be used afterwards. */
  close(): void;
}

/**
 * Whether the environment switches OpenBLAS off (`SEGMENT_NO_BLAS=1`).
 *
 * @returns `true` when `SEGMENT_NO_BLAS` is set to anything but `""` or `"0"`.
 *
 * @example
 * ```ts
 * import { blasDisabledByEnv } from "./blas.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(typeof blasDisabledByEnv(), "boolean");
 * ```
 */
export function blasDisabledByEnv(): boolean {
  try {
    const value = Deno.env.get("SEGMENT_NO_BLAS");
    return value !== undefined && value !== "" && value !== "0";
  } catch {
    return false;
  }
}

/**
 * The threads to give OpenBLAS for large products: `SEGMENT_BLAS_THREADS`,
 * else every core. Small products always run on one thread
 * ({@linkcode productThreads}). The count never follows the machine's load,
 * so a seeded run repeats.
 *
 * @param env The value of `SEGMENT_BLAS_THREADS`, if set.
 * @param cores The machine's cores.
 * @returns Threads, at least 1.
 *
 * @example
 * ```ts
 * import { blasThreads } from "./blas.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(blasThreads(undefined, 2), 2);
 * assertEquals(blasThreads("1", 2), 1);
 * assertEquals(blasThreads("x", 4), 4);
 * ```
 */
export function blasThreads(env: string | undefined, cores: number): number {
  const asked = Number(env);
  if (env !== undefined && env !== "" && Number.isInteger(asked) && asked > 0) return asked;
  return Math.max(1, Math.floor(cores) || 1);
}

/**
 * The threads one product `m x k` times `k x n` runs on: all of `threads`
 * when every side is at least 64 and it is at least 2^22 multiply-adds, else
 * one. Measured on 2 idle cores, ms per training iteration with every
 * product on one thread / every product on two / this rule: bin (32
 * channels) 89 / 207 / 84, unetlike 125 / 126 / 103-109, SegNet 913 / 721 /
 * 670-685. Small products cost more to split than to do. OpenBLAS splits a
 * product by rows and columns, not along `k`, so each output sums in the
 * same order on any thread count (a seed gives the same mIoU on both).
 *
 * @param m Rows of the product.
 * @param n Columns of the product.
 * @param k Inner size.
 * @param threads Threads available for large products.
 * @returns Threads for this product.
 *
 * @example
 * ```ts
 * import { productThreads } from "./blas.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(productThreads(16384, 32, 32, 2), 1);
 * assertEquals(productThreads(768, 64, 64, 2), 1);
 * assertEquals(productThreads(256, 512, 4608, 2), 2);
 * ```
 */
export function productThreads(m: number, n: number, k: number, threads: number): number {
  return Math.min(m, n, k) >= 64 && m * n * k >= 2 ** 22 ? threads : 1;
}

/**
 * Loads OpenBLAS, or says why it cannot.
 *
 * @returns The library's functions, or the reason it is unavailable
 *   (`"SEGMENT_NO_BLAS is set"`, `"not installed"`, `"--allow-ffi not granted"`).
 *
 * @example
 * ```ts
 * import { openBlas } from "./blas.ts";
 * import { assertEquals } from "./assert.ts";
 * const blas = openBlas();
 * if (typeof blas !== "string") {
 *   const c = new Float32Array(1);
 *   blas.gemm({ m: 1, n: 1, k: 2, a: new Float32Array([1, 2]), b: new Float32Array([3, 4]), c });
 *   assertEquals(c[0], 11);
 *   blas.close();
 * }
 * ```
 */
export function openBlas(): Blas | string {
  if (blasDisabledByEnv()) return "SEGMENT_NO_BLAS is set";
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return "--allow-ffi not granted";
  }
  for (const path of OPENBLAS_PATHS) {
    let library;
    try {
      library = Deno.dlopen(path, SYMBOLS);
    } catch {
      continue;
    }
    return wrap(library, path);
  }
  return "not installed";
}

function wrap(library: Deno.DynamicLibrary<typeof SYMBOLS>, path: string): Blas {
  const symbols = library.symbols;
  let active = symbols.openblas_get_num_threads();
  const use = (count: number) => {
    if (count === active) return;
    symbols.openblas_set_num_threads(count);
    active = symbols.openblas_get_num_threads();
  };
  return {
    path,
    threads: active,
    setThreads(count) {
      use(Math.max(1, Math.floor(count)));
      this.threads = active;
    },
    gemm(options) {
      const transA = options.transA ?? false;
      const transB = options.transB ?? false;
      const { m, n, k } = options;
      if (m === 0 || n === 0) return;
      const since = routeClock();
      use(productThreads(m, n, k, this.threads));
      symbols.cblas_sgemm(
        ROW_MAJOR,
        transA ? TRANS : NO_TRANS,
        transB ? TRANS : NO_TRANS,
        m,
        n,
        k,
        options.alpha ?? 1,
        options.a,
        options.lda ?? (transA ? m : k),
        options.b,
        options.ldb ?? (transB ? k : n),
        options.beta ?? 0,
        options.c,
        options.ldc ?? n,
      );
      noteRoute("OpenBLAS", since);
    },
    columnSums(a, rows, cols, ones, out, scale) {
      if (cols === 0) return;
      if (rows === 0) {
        out.fill(0);
        return;
      }
      const since = routeClock();
      symbols.cblas_sgemv(ROW_MAJOR, TRANS, rows, cols, scale, a, cols, ones, 1, 0, out, 1);
      noteRoute("OpenBLAS", since);
    },
    copy(options) {
      if (options.rows === 0 || options.cols === 0) return;
      const since = routeClock();
      symbols.cblas_somatcopy(
        ROW_MAJOR,
        options.transpose ? TRANS : NO_TRANS,
        options.rows,
        options.cols,
        1,
        options.a,
        options.lda,
        options.b,
        options.ldb,
      );
      noteRoute("OpenBLAS", since);
    },
    close() {
      library.close();
    },
  };
}
