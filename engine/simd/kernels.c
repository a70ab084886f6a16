// Training kernels for tfjs-backend-wasm with 128-bit WebAssembly SIMD: the three directions of
// a 2-D convolution (NHWC activations, HWIO filters, any stride, padding and dilation) and sums
// of rows. Built by `deno task build_simd` (engine/simd/build.ts) into kernels.wasm, which
// imports the wasm backend's own memory: every pointer here is a byte offset into the backend's
// heap, so tensors are read and written where they lie, with no copies.
//
// The module must not touch memory the backend has not given it: no static data, no globals,
// no C stack (build.ts rejects a build with a data section or a stack pointer).
//
// Every direction is a sequence of one small matrix product, gemm():
//   C[i][n] += sum_k A[i * a_row + k * a_col] * B[k * ldb + n]
// computed in tiles of 4 rows x 8 columns held in eight 4-float registers, over the whole k.
//   forward        per output row and filter tap: C = the output pixels whose tap lies inside
//                  the input, A = the input pixels they read, B = the tap's [cin, cout] weights;
//   input grad     the same with dy as A, the tap's transposed weights [cout, cin] as B, and C
//                  the input-gradient pixels (stride apart) the tap sends dy back to;
//   filter grad    per output row and tap: C = the tap's [cin, cout] gradient, A = the input
//                  pixels read by the row (transposed: a_row = 1, a_col = pixel stride), B = dy.
#include <wasm_simd128.h>

typedef float f32;

// The geometry block the JavaScript side writes (int32 values, in this order).
enum {
  G_BATCH, G_IN_H, G_IN_W, G_IN_C, G_OUT_H, G_OUT_W, G_OUT_C,
  G_FILTER_H, G_FILTER_W, G_STRIDE_H, G_STRIDE_W, G_DILATION_H, G_DILATION_W,
  G_PAD_TOP, G_PAD_LEFT,
  // Not geometry: the next unit of work (a block, a part) for whichever thread asks first. The
  // JavaScript side writes 0 with the geometry; each kernel that shares its work takes units
  // with claim(). On the shared build two threads take them as they come free, so a thread
  // slowed by another process, or on a slower core, takes fewer.
  G_NEXT = 16,
};

// The next unit of work from the counter g[G_NEXT] (atomic on the shared build; the single-
// threaded build's lowering makes it a plain add).
static inline int claim(const int *g) {
  return __atomic_fetch_add((int *)g + G_NEXT, 1, __ATOMIC_RELAXED);
}

#define LOAD(p) wasm_v128_load(p)
#define STORE(p, v) wasm_v128_store((p), (v))
#define SPLAT(p) wasm_v128_load32_splat(p)
#define MADD(c, a, b) c = wasm_f32x4_add(c, wasm_f32x4_mul(a, b))

// 4 rows x 8 columns.
static inline void tile_4x8(int k_count, const f32 *a, int a_row, int a_col, const f32 *b,
                            int ldb, f32 *c, int ldc) {
  f32 *c1 = c + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
  v128_t c00 = LOAD(c), c01 = LOAD(c + 4), c10 = LOAD(c1), c11 = LOAD(c1 + 4);
  v128_t c20 = LOAD(c2), c21 = LOAD(c2 + 4), c30 = LOAD(c3), c31 = LOAD(c3 + 4);
  const f32 *a0 = a, *a1 = a + a_row, *a2 = a1 + a_row, *a3 = a2 + a_row;
  for (int k = 0; k < k_count; k++) {
    v128_t b0 = LOAD(b), b1 = LOAD(b + 4);
    v128_t x = SPLAT(a0);
    MADD(c00, x, b0);
    MADD(c01, x, b1);
    x = SPLAT(a1);
    MADD(c10, x, b0);
    MADD(c11, x, b1);
    x = SPLAT(a2);
    MADD(c20, x, b0);
    MADD(c21, x, b1);
    x = SPLAT(a3);
    MADD(c30, x, b0);
    MADD(c31, x, b1);
    a0 += a_col;
    a1 += a_col;
    a2 += a_col;
    a3 += a_col;
    b += ldb;
  }
  STORE(c, c00);
  STORE(c + 4, c01);
  STORE(c1, c10);
  STORE(c1 + 4, c11);
  STORE(c2, c20);
  STORE(c2 + 4, c21);
  STORE(c3, c30);
  STORE(c3 + 4, c31);
}

// 4 rows x 4 columns.
static inline void tile_4x4(int k_count, const f32 *a, int a_row, int a_col, const f32 *b,
                            int ldb, f32 *c, int ldc) {
  f32 *c1 = c + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
  v128_t c0 = LOAD(c), c1v = LOAD(c1), c2v = LOAD(c2), c3v = LOAD(c3);
  const f32 *a0 = a, *a1 = a + a_row, *a2 = a1 + a_row, *a3 = a2 + a_row;
  for (int k = 0; k < k_count; k++) {
    v128_t b0 = LOAD(b);
    MADD(c0, SPLAT(a0), b0);
    MADD(c1v, SPLAT(a1), b0);
    MADD(c2v, SPLAT(a2), b0);
    MADD(c3v, SPLAT(a3), b0);
    a0 += a_col;
    a1 += a_col;
    a2 += a_col;
    a3 += a_col;
    b += ldb;
  }
  STORE(c, c0);
  STORE(c1, c1v);
  STORE(c2, c2v);
  STORE(c3, c3v);
}

// 1 row x 8 columns.
static inline void tile_1x8(int k_count, const f32 *a, int a_col, const f32 *b, int ldb,
                            f32 *c) {
  v128_t c0 = LOAD(c), c1 = LOAD(c + 4), d0 = wasm_f32x4_splat(0), d1 = d0;
  int k = 0;
  for (; k + 2 <= k_count; k += 2) {
    v128_t x = SPLAT(a), y = SPLAT(a + a_col);
    MADD(c0, x, LOAD(b));
    MADD(c1, x, LOAD(b + 4));
    MADD(d0, y, LOAD(b + ldb));
    MADD(d1, y, LOAD(b + ldb + 4));
    a += 2 * a_col;
    b += 2 * ldb;
  }
  if (k < k_count) {
    v128_t x = SPLAT(a);
    MADD(c0, x, LOAD(b));
    MADD(c1, x, LOAD(b + 4));
  }
  STORE(c, wasm_f32x4_add(c0, d0));
  STORE(c + 4, wasm_f32x4_add(c1, d1));
}

// 1 row x 4 columns.
static inline void tile_1x4(int k_count, const f32 *a, int a_col, const f32 *b, int ldb,
                            f32 *c) {
  v128_t c0 = LOAD(c);
  for (int k = 0; k < k_count; k++) {
    MADD(c0, SPLAT(a), LOAD(b));
    a += a_col;
    b += ldb;
  }
  STORE(c, c0);
}

// 1 row x 1 column.
static inline void tile_1x1(int k_count, const f32 *a, int a_col, const f32 *b, int ldb,
                            f32 *c) {
  f32 sum = *c;
  for (int k = 0; k < k_count; k++) {
    sum += *a * *b;
    a += a_col;
    b += ldb;
  }
  *c = sum;
}

// C[i][n] += sum_k A[i * a_row + k * a_col] * B[k * ldb + n], i < m, n < n_count, k < k_count.
static void gemm(int m, int n_count, int k_count, const f32 *a, int a_row, int a_col,
                 const f32 *b, int ldb, f32 *c, int ldc) {
  if (m <= 0 || k_count <= 0) return;
  const int full_rows = m & ~3;
  // Column panels outside, rows inside: a panel of B (k x 8) stays in the first-level cache
  // while every row of A passes it, however large B is.
  int n = 0;
  for (; n + 8 <= n_count; n += 8) {
    for (int i = 0; i < full_rows; i += 4) {
      tile_4x8(k_count, a + i * a_row, a_row, a_col, b + n, ldb, c + i * ldc + n, ldc);
    }
    for (int i = full_rows; i < m; i++) {
      tile_1x8(k_count, a + i * a_row, a_col, b + n, ldb, c + i * ldc + n);
    }
  }
  for (; n + 4 <= n_count; n += 4) {
    for (int i = 0; i < full_rows; i += 4) {
      tile_4x4(k_count, a + i * a_row, a_row, a_col, b + n, ldb, c + i * ldc + n, ldc);
    }
    for (int i = full_rows; i < m; i++) {
      tile_1x4(k_count, a + i * a_row, a_col, b + n, ldb, c + i * ldc + n);
    }
  }
  for (; n < n_count; n++) {
    for (int i = 0; i < m; i++) tile_1x1(k_count, a + i * a_row, a_col, b + n, ldb, c + i * ldc + n);
  }
}

static void fill(f32 *p, int count, f32 value) {
  v128_t v = wasm_f32x4_splat(value);
  int i = 0;
  for (; i + 4 <= count; i += 4) STORE(p + i, v);
  for (; i < count; i++) p[i] = value;
}

// The first output column `out` whose input column `out * stride - pad + tap` is >= 0, and one
// past the last whose input column is < size; `*first >= *end` when none.
static void valid_range(int size, int out_size, int stride, int pad, int tap, int *first,
                        int *end) {
  int shift = pad - tap;  // input column = out * stride - shift
  int lo = shift > 0 ? (shift + stride - 1) / stride : 0;
  int top = size - 1 + shift;  // out * stride <= top
  int hi = top < 0 ? 0 : top / stride + 1;
  if (hi > out_size) hi = out_size;
  *first = lo;
  *end = hi;
}

// Output rows [row_begin, row_end) of y = act(conv(x, w) + bias), over all images' rows counted
// together (row = image * out_h + out_row). `bias` may be 0 (none); act: 0 none, 1 ReLU.
__attribute__((export_name("conv_forward"))) void conv_forward(const int *g, const f32 *x,
                                                                const f32 *w, const f32 *bias,
                                                                f32 *y, int act, int row_begin,
                                                                int row_end) {
  const int in_h = g[G_IN_H], in_w = g[G_IN_W], cin = g[G_IN_C];
  const int out_h = g[G_OUT_H], out_w = g[G_OUT_W], cout = g[G_OUT_C];
  const int fh = g[G_FILTER_H], fw = g[G_FILTER_W], sh = g[G_STRIDE_H], sw = g[G_STRIDE_W];
  const int dh = g[G_DILATION_H], dw = g[G_DILATION_W], pt = g[G_PAD_TOP], pl = g[G_PAD_LEFT];
  for (int row = row_begin; row < row_end; row++) {
    const int image = row / out_h, oy = row % out_h;
    f32 *y_row = y + (long)row * out_w * cout;
    if (bias) {
      for (int ox = 0; ox < out_w; ox++) {
        int n = 0;
        for (; n + 4 <= cout; n += 4) STORE(y_row + ox * cout + n, LOAD(bias + n));
        for (; n < cout; n++) y_row[ox * cout + n] = bias[n];
      }
    } else {
      fill(y_row, out_w * cout, 0);
    }
    for (int ky = 0; ky < fh; ky++) {
      const int iy = oy * sh - pt + ky * dh;
      if (iy < 0 || iy >= in_h) continue;
      const f32 *x_row = x + ((long)image * in_h + iy) * in_w * cin;
      for (int kx = 0; kx < fw; kx++) {
        int first, end;
        valid_range(in_w, out_w, sw, pl, kx * dw, &first, &end);
        if (first >= end) continue;
        const int ix = first * sw - pl + kx * dw;
        gemm(end - first, cout, cin, x_row + ix * cin, sw * cin, 1,
             w + (ky * fw + kx) * cin * cout, cout, y_row + first * cout, cout);
      }
    }
    if (act == 1) {
      const v128_t zero = wasm_f32x4_splat(0);
      const int count = out_w * cout;
      int i = 0;
      for (; i + 4 <= count; i += 4) STORE(y_row + i, wasm_f32x4_pmax(LOAD(y_row + i), zero));
      for (; i < count; i++) y_row[i] = y_row[i] > 0 ? y_row[i] : 0;
    }
  }
}

// The filter's taps transposed, [fh * fw][cin][cout] -> [fh * fw][cout][cin], for the input
// gradient's products.
__attribute__((export_name("transpose_taps"))) void transpose_taps(const int *g, const f32 *w,
                                                                    f32 *wt) {
  const int taps = g[G_FILTER_H] * g[G_FILTER_W], cin = g[G_IN_C], cout = g[G_OUT_C];
  for (int tap = 0; tap < taps; tap++) {
    const f32 *src = w + tap * cin * cout;
    f32 *dst = wt + tap * cin * cout;
    for (int ci = 0; ci < cin; ci++) {
      for (int co = 0; co < cout; co++) dst[co * cin + ci] = src[ci * cout + co];
    }
  }
}

// Images [image_begin, image_end) of dx = the gradient of a convolution's input, from dy and the
// transposed taps of transpose_taps(). Each image's dx is zeroed first, then every output pixel
// sends dy through each tap back to the input pixel that tap read.
__attribute__((export_name("conv_backward_input"))) void conv_backward_input(
    const int *g, const f32 *dy, const f32 *wt, f32 *dx, int image_begin, int image_end) {
  const int in_h = g[G_IN_H], in_w = g[G_IN_W], cin = g[G_IN_C];
  const int out_h = g[G_OUT_H], out_w = g[G_OUT_W], cout = g[G_OUT_C];
  const int fh = g[G_FILTER_H], fw = g[G_FILTER_W], sh = g[G_STRIDE_H], sw = g[G_STRIDE_W];
  const int dh = g[G_DILATION_H], dw = g[G_DILATION_W], pt = g[G_PAD_TOP], pl = g[G_PAD_LEFT];
  for (int image = image_begin; image < image_end; image++) {
    f32 *dx_image = dx + (long)image * in_h * in_w * cin;
    fill(dx_image, in_h * in_w * cin, 0);
    for (int oy = 0; oy < out_h; oy++) {
      const f32 *dy_row = dy + ((long)image * out_h + oy) * out_w * cout;
      for (int ky = 0; ky < fh; ky++) {
        const int iy = oy * sh - pt + ky * dh;
        if (iy < 0 || iy >= in_h) continue;
        f32 *dx_row = dx_image + (long)iy * in_w * cin;
        for (int kx = 0; kx < fw; kx++) {
          int first, end;
          valid_range(in_w, out_w, sw, pl, kx * dw, &first, &end);
          if (first >= end) continue;
          const int ix = first * sw - pl + kx * dw;
          gemm(end - first, cin, cout, dy_row + first * cout, cout, 1,
               wt + (ky * fw + kx) * cin * cout, cin, dx_row + ix * cin, sw * cin);
        }
      }
    }
  }
}

// dw += the gradient of a convolution's filter over output rows [row_begin, row_end) of all
// images counted together (row = image * out_h + out_row), for the taps [tap_begin, tap_end)
// (tap = ky * fw + kx) only. dw must hold zeros, or the sum of other rows, before the first
// call. Each tap's sum is its own, so two threads that take different taps write disjoint parts
// of dw and give the same floats as one thread that takes them all.
__attribute__((export_name("conv_backward_filter"))) void conv_backward_filter(
    const int *g, const f32 *x, const f32 *dy, f32 *dw_out, int row_begin, int row_end,
    int tap_begin, int tap_end) {
  const int in_h = g[G_IN_H], in_w = g[G_IN_W], cin = g[G_IN_C];
  const int out_h = g[G_OUT_H], out_w = g[G_OUT_W], cout = g[G_OUT_C];
  const int fh = g[G_FILTER_H], fw = g[G_FILTER_W], sh = g[G_STRIDE_H], sw = g[G_STRIDE_W];
  const int dh = g[G_DILATION_H], dw = g[G_DILATION_W], pt = g[G_PAD_TOP], pl = g[G_PAD_LEFT];
  for (int row = row_begin; row < row_end; row++) {
    const int image = row / out_h, oy = row % out_h;
    const f32 *dy_row = dy + (long)row * out_w * cout;
    for (int ky = 0; ky < fh; ky++) {
      const int iy = oy * sh - pt + ky * dh;
      if (iy < 0 || iy >= in_h) continue;
      const f32 *x_row = x + ((long)image * in_h + iy) * in_w * cin;
      for (int kx = 0; kx < fw; kx++) {
        const int tap = ky * fw + kx;
        if (tap < tap_begin || tap >= tap_end) continue;
        int first, end;
        valid_range(in_w, out_w, sw, pl, kx * dw, &first, &end);
        if (first >= end) continue;
        const int ix = first * sw - pl + kx * dw;
        gemm(cin, cout, end - first, x_row + ix * cin, 1, sw * cin, dy_row + first * cout, cout,
             dw_out + (ky * fw + kx) * cin * cout, cout);
      }
    }
  }
}

// Copies a rows x columns block of floats from rows `from_stride` floats apart to rows
// `to_stride` apart (a tensor's channel range to a dense block, or back): Concat and SplitV
// along channels.
__attribute__((export_name("strided_copy"))) void strided_copy(const f32 *from, int from_stride,
                                                                f32 *to, int to_stride, int rows,
                                                                int columns) {
  for (int r = 0; r < rows; r++) {
    const f32 *src = from + (long)r * from_stride;
    f32 *dst = to + (long)r * to_stride;
    int c = 0;
    for (; c + 4 <= columns; c += 4) STORE(dst + c, LOAD(src + c));
    for (; c < columns; c++) dst[c] = src[c];
  }
}

// Column sums of `rows` rows of `cols` floats, times `scale`, into out[cols]: blocks of 64 rows
// are added in float32 (four running sums per column), the blocks' sums in float64 (`wide`,
// cols doubles of scratch), so that a long sum does not drift as a float32 running sum does.
__attribute__((export_name("column_sums"))) void column_sums(const f32 *x, int rows, int cols,
                                                              f32 *out, double scale,
                                                              double *wide) {
  for (int col = 0; col < cols; col++) wide[col] = 0;
  for (int first = 0; first < rows; first += 64) {
    const int count = rows - first < 64 ? rows - first : 64;
    const f32 *block = x + (long)first * cols;
    int col = 0;
    for (; col + 4 <= cols; col += 4) {
      v128_t s0 = wasm_f32x4_splat(0), s1 = s0, s2 = s0, s3 = s0;
      const f32 *p = block + col;
      int r = 0;
      for (; r + 4 <= count; r += 4) {
        s0 = wasm_f32x4_add(s0, LOAD(p));
        s1 = wasm_f32x4_add(s1, LOAD(p + cols));
        s2 = wasm_f32x4_add(s2, LOAD(p + 2 * cols));
        s3 = wasm_f32x4_add(s3, LOAD(p + 3 * cols));
        p += 4 * cols;
      }
      for (; r < count; r++) {
        s0 = wasm_f32x4_add(s0, LOAD(p));
        p += cols;
      }
      const v128_t s = wasm_f32x4_add(wasm_f32x4_add(s0, s1), wasm_f32x4_add(s2, s3));
      STORE(wide + col, wasm_f64x2_add(LOAD(wide + col), wasm_f64x2_promote_low_f32x4(s)));
      STORE(wide + col + 2,
            wasm_f64x2_add(LOAD(wide + col + 2),
                           wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(s, s, 2, 3, 0, 1))));
    }
    for (; col < cols; col++) {
      f32 sum = 0;
      const f32 *p = block + col;
      for (int r = 0; r < count; r++) sum += p[(long)r * cols];
      wide[col] += sum;
    }
  }
  for (int col = 0; col < cols; col++) out[col] = (f32)(wide[col] * scale);
}

// Winograd's F(2x2, 3x3) for 3x3 convolutions of stride 1: each 2x2 block of output pixels is
// A^T [(G g G^T) . (B^T d B)] A for the 4x4 input patch d around it, so 16 products of
// [tiles, cin] x [cin, cout] give it where direct convolution takes 36 multiply-adds per 16
// (2.25 times fewer). Channels go four at a time through the transforms: cin and cout must be
// multiples of 4.

// U = G g G^T of every filter [cin][cout] pair, stored [16][cin][cout]. With `flip`, the
// filter is that of the input gradient: g'[ky][kx][ci][co] = w[2 - ky][2 - kx][co][ci], w being
// the forward filter [3][3][cout'][cin'] (cin and cout of the geometry are the gradient's).
__attribute__((export_name("winograd_filter"))) void winograd_filter(const int *g, const f32 *w,
                                                                      f32 *u, int flip) {
  const int cin = g[G_IN_C], cout = g[G_OUT_C], plane = cin * cout;
  for (int ci = 0; ci < cin; ci++) {
    for (int co = 0; co < cout; co++) {
      f32 k[3][3];
      for (int ky = 0; ky < 3; ky++) {
        for (int kx = 0; kx < 3; kx++) {
          k[ky][kx] = flip ? w[((2 - ky) * 3 + (2 - kx)) * plane + co * cin + ci]
                           : w[(ky * 3 + kx) * plane + ci * cout + co];
        }
      }
      f32 s[4][3];
      for (int j = 0; j < 3; j++) {
        s[0][j] = k[0][j];
        s[1][j] = 0.5f * (k[0][j] + k[1][j] + k[2][j]);
        s[2][j] = 0.5f * (k[0][j] - k[1][j] + k[2][j]);
        s[3][j] = k[2][j];
      }
      for (int i = 0; i < 4; i++) {
        f32 *row = u + (i * 4) * plane + ci * cout + co;
        row[0] = s[i][0];
        row[plane] = 0.5f * (s[i][0] + s[i][1] + s[i][2]);
        row[2 * plane] = 0.5f * (s[i][0] - s[i][1] + s[i][2]);
        row[3 * plane] = s[i][2];
      }
    }
  }
}

// The tile of flat index `tile` (image after image, row after row, 2x2 output pixels each):
// its image and the output row and column of its top-left pixel.
static inline void tile_at(int tile, int tile_rows, int tile_cols, int *image, int *oy, int *ox) {
  const int per_image = tile_rows * tile_cols;
  *image = tile / per_image;
  const int in_image = tile % per_image;
  *oy = (in_image / tile_cols) * 2;
  *ox = (in_image % tile_cols) * 2;
}

// V = B^T d B of the 4x4 input patches of tiles [first, first + tiles) (pixels outside the
// image read as zeros), stored [16][tiles][cin].
static void input_transform(const int *g, const f32 *x, int first, int tiles, f32 *v) {
  const int in_h = g[G_IN_H], in_w = g[G_IN_W], cin = g[G_IN_C];
  const int tile_rows = (g[G_OUT_H] + 1) / 2, tile_cols = (g[G_OUT_W] + 1) / 2;
  const v128_t zero = wasm_f32x4_splat(0);
  for (int t = 0; t < tiles; t++) {
    int image, oy, ox;
    tile_at(first + t, tile_rows, tile_cols, &image, &oy, &ox);
    const int iy0 = oy - g[G_PAD_TOP], ix0 = ox - g[G_PAD_LEFT];
    const f32 *x_image = x + (long)image * in_h * in_w * cin;
    for (int ci = 0; ci < cin; ci += 4) {
      v128_t d[4][4];
      for (int i = 0; i < 4; i++) {
        const int iy = iy0 + i;
        for (int j = 0; j < 4; j++) {
          const int ix = ix0 + j;
          d[i][j] = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w
                        ? LOAD(x_image + ((long)iy * in_w + ix) * cin + ci)
                        : zero;
        }
      }
      v128_t s[4][4];
      for (int j = 0; j < 4; j++) {
        s[0][j] = wasm_f32x4_sub(d[0][j], d[2][j]);
        s[1][j] = wasm_f32x4_add(d[1][j], d[2][j]);
        s[2][j] = wasm_f32x4_sub(d[2][j], d[1][j]);
        s[3][j] = wasm_f32x4_sub(d[1][j], d[3][j]);
      }
      f32 *out = v + t * cin + ci;
      const int step = tiles * cin;
      for (int i = 0; i < 4; i++) {
        STORE(out + (i * 4 + 0) * step, wasm_f32x4_sub(s[i][0], s[i][2]));
        STORE(out + (i * 4 + 1) * step, wasm_f32x4_add(s[i][1], s[i][2]));
        STORE(out + (i * 4 + 2) * step, wasm_f32x4_sub(s[i][2], s[i][1]));
        STORE(out + (i * 4 + 3) * step, wasm_f32x4_sub(s[i][1], s[i][3]));
      }
    }
  }
}

#define WINOGRAD_BLOCK 64

// All tiles (flat: image after image, row after row; 2x2 output pixels each) of
// act(conv(x, w) + bias), U from winograd_filter(), in blocks of WINOGRAD_BLOCK tiles that run
// across rows and images, so that deep layers of few pixels still make products of many rows.
// Blocks are claimed one at a time (claim()): two threads calling it with their own scratch
// share the blocks, and each block's floats are the same whichever thread computes it. Scratch:
// v holds 16 * WINOGRAD_BLOCK * cin floats, m 16 * WINOGRAD_BLOCK * cout.
__attribute__((export_name("winograd_conv"))) void winograd_conv(const int *g, const f32 *x,
                                                                  const f32 *u, const f32 *bias,
                                                                  f32 *y, int act, f32 *v, f32 *m) {
  const int cin = g[G_IN_C];
  const int out_h = g[G_OUT_H], out_w = g[G_OUT_W], cout = g[G_OUT_C];
  const int tile_rows = (out_h + 1) / 2, tile_cols = (out_w + 1) / 2;
  const int tile_end = g[G_BATCH] * tile_rows * tile_cols;
  const v128_t zero = wasm_f32x4_splat(0);
  for (int first; (first = claim(g) * WINOGRAD_BLOCK) < tile_end;) {
    const int tiles = tile_end - first < WINOGRAD_BLOCK ? tile_end - first : WINOGRAD_BLOCK;
    input_transform(g, x, first, tiles, v);
    // M[e] = V[e] U[e], e < 16.
    fill(m, 16 * tiles * cout, 0);
    for (int e = 0; e < 16; e++) {
      gemm(tiles, cout, cin, v + e * tiles * cin, cin, 1, u + e * cin * cout, cout,
           m + e * tiles * cout, cout);
    }
    // Y = A^T M A, plus bias, then the activation, into the pixels inside the output.
    for (int t = 0; t < tiles; t++) {
      int image, oy, ox;
      tile_at(first + t, tile_rows, tile_cols, &image, &oy, &ox);
      f32 *y_image = y + (long)image * out_h * out_w * cout;
      for (int co = 0; co < cout; co += 4) {
        const f32 *in = m + t * cout + co;
        const int step = tiles * cout;
        v128_t r[2][4];
        for (int j = 0; j < 4; j++) {
          const v128_t m0 = LOAD(in + (0 + j) * step), m1 = LOAD(in + (4 + j) * step);
          const v128_t m2 = LOAD(in + (8 + j) * step), m3 = LOAD(in + (12 + j) * step);
          r[0][j] = wasm_f32x4_add(wasm_f32x4_add(m0, m1), m2);
          r[1][j] = wasm_f32x4_sub(wasm_f32x4_sub(m1, m2), m3);
        }
        const v128_t b = bias ? LOAD(bias + co) : zero;
        for (int i = 0; i < 2; i++) {
          if (oy + i >= out_h) break;
          v128_t p0 = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_add(r[i][0], r[i][1]), r[i][2]), b);
          v128_t p1 = wasm_f32x4_add(wasm_f32x4_sub(wasm_f32x4_sub(r[i][1], r[i][2]), r[i][3]), b);
          if (act == 1) {
            p0 = wasm_f32x4_pmax(p0, zero);
            p1 = wasm_f32x4_pmax(p1, zero);
          }
          f32 *row = y_image + ((long)(oy + i) * out_w + ox) * cout + co;
          STORE(row, p0);
          if (ox + 1 < out_w) STORE(row + cout, p1);
        }
      }
    }
  }
}

// Adds one block of `tiles` tiles from `first` of the filter gradient's V . Z to sums
// [16][cin][cout] (see winograd_filter_grad()).
static inline __attribute__((always_inline)) void filter_grad_block(const int *g, const f32 *x,
                                                                    const f32 *dy, f32 *sums,
                                                                    f32 *v, f32 *z, int first,
                                                                    int tiles) {
  const int cin = g[G_IN_C];
  const int out_h = g[G_OUT_H], out_w = g[G_OUT_W], cout = g[G_OUT_C];
  const int tile_rows = (out_h + 1) / 2, tile_cols = (out_w + 1) / 2;
  const v128_t zero = wasm_f32x4_splat(0);
  input_transform(g, x, first, tiles, v);
  // Z = A dy A^T of each tile's 2x2 output gradient (zeros outside the output).
  for (int t = 0; t < tiles; t++) {
    int image, oy, ox;
    tile_at(first + t, tile_rows, tile_cols, &image, &oy, &ox);
    const f32 *dy_image = dy + (long)image * out_h * out_w * cout;
    for (int co = 0; co < cout; co += 4) {
      v128_t d[2][2];
      for (int a = 0; a < 2; a++) {
        for (int b = 0; b < 2; b++) {
          d[a][b] = oy + a < out_h && ox + b < out_w
                        ? LOAD(dy_image + ((long)(oy + a) * out_w + ox + b) * cout + co)
                        : zero;
        }
      }
      v128_t r[4][2];
      for (int b = 0; b < 2; b++) {
        r[0][b] = d[0][b];
        r[1][b] = wasm_f32x4_add(d[0][b], d[1][b]);
        r[2][b] = wasm_f32x4_sub(d[0][b], d[1][b]);
        r[3][b] = wasm_f32x4_neg(d[1][b]);
      }
      f32 *out = z + t * cout + co;
      const int step = tiles * cout;
      for (int i = 0; i < 4; i++) {
        STORE(out + (i * 4 + 0) * step, r[i][0]);
        STORE(out + (i * 4 + 1) * step, wasm_f32x4_add(r[i][0], r[i][1]));
        STORE(out + (i * 4 + 2) * step, wasm_f32x4_sub(r[i][0], r[i][1]));
        STORE(out + (i * 4 + 3) * step, wasm_f32x4_neg(r[i][1]));
      }
    }
  }
  // sums[e] += V[e]^T Z[e], e < 16.
  for (int e = 0; e < 16; e++) {
    gemm(cin, cout, tiles, v + e * tiles * cin, 1, cin, z + e * tiles * cout, cout,
         sums + e * cin * cout, cout);
  }
}

// The filter gradient as Winograd's F(2x2, 3x3): dw = sum over tiles of G^T [V . Z] G, with
// V = B^T d B of the input patch and Z = A dy A^T of the tile's 2x2 output gradient. The
// tiles (flat, as winograd_conv's) are cut into `parts` runs of whole blocks, fixed by the
// shape; part p adds its sums of V . Z to its own mg + p * 16 * cin * cout ([16][cin][cout],
// zeroed by the caller). Parts are claimed one at a time (claim()), so two threads share them,
// and winograd_filter_grad_finish() adds the parts in order: the floats are the same on one
// thread or two. Scratch: v holds 16 * WINOGRAD_BLOCK * cin floats, z 16 * WINOGRAD_BLOCK * cout.
__attribute__((export_name("winograd_filter_grad"))) void winograd_filter_grad(
    const int *g, const f32 *x, const f32 *dy, f32 *mg, f32 *v, f32 *z, int parts) {
  const int all = g[G_BATCH] * ((g[G_OUT_H] + 1) / 2) * ((g[G_OUT_W] + 1) / 2);
  const int blocks = (all + WINOGRAD_BLOCK - 1) / WINOGRAD_BLOCK;
  for (int part; (part = claim(g)) < parts;) {
    f32 *sums = mg + (long)part * 16 * g[G_IN_C] * g[G_OUT_C];
    const int tile_begin = (int)((long)blocks * part / parts) * WINOGRAD_BLOCK;
    const int block_end = (int)((long)blocks * (part + 1) / parts) * WINOGRAD_BLOCK;
    const int tile_end = block_end < all ? block_end : all;
    for (int first = tile_begin; first < tile_end; first += WINOGRAD_BLOCK) {
      const int tiles = tile_end - first < WINOGRAD_BLOCK ? tile_end - first : WINOGRAD_BLOCK;
      filter_grad_block(g, x, dy, sums, v, z, first, tiles);
    }
  }
}

// dw [3][3][cin][cout] = G^T M G for every channel pair, M the sum of the `parts` sums from
// winograd_filter_grad(), added in order into the first.
__attribute__((export_name("winograd_filter_grad_finish"))) void winograd_filter_grad_finish(
    const int *g, f32 *mg, int parts, f32 *dw) {
  const int plane = g[G_IN_C] * g[G_OUT_C];
  for (int part = 1; part < parts; part++) {
    const f32 *other = mg + (long)part * 16 * plane;
    for (int i = 0; i < 16 * plane; i += 4) {
      STORE(mg + i, wasm_f32x4_add(LOAD(mg + i), LOAD(other + i)));
    }
  }
  for (int p = 0; p < plane; p += 4) {
    v128_t m[4][4];
    for (int e = 0; e < 16; e++) m[e / 4][e % 4] = LOAD(mg + e * plane + p);
    const v128_t half = wasm_f32x4_splat(0.5f);
    v128_t s[3][4];
    for (int j = 0; j < 4; j++) {
      const v128_t mid = wasm_f32x4_mul(half, wasm_f32x4_add(m[1][j], m[2][j]));
      s[0][j] = wasm_f32x4_add(m[0][j], mid);
      s[1][j] = wasm_f32x4_mul(half, wasm_f32x4_sub(m[1][j], m[2][j]));
      s[2][j] = wasm_f32x4_add(mid, m[3][j]);
    }
    for (int ky = 0; ky < 3; ky++) {
      const v128_t mid = wasm_f32x4_mul(half, wasm_f32x4_add(s[ky][1], s[ky][2]));
      f32 *row = dw + ky * 3 * plane + p;
      STORE(row, wasm_f32x4_add(s[ky][0], mid));
      STORE(row + plane, wasm_f32x4_mul(half, wasm_f32x4_sub(s[ky][1], s[ky][2])));
      STORE(row + 2 * plane, wasm_f32x4_add(mid, s[ky][3]));
    }
  }
}

// Adds, for every channel, sum over rows of (a[r][c] - a_shift[c]) * (b[r][c] - b_shift[c]) to
// wide[c] (float64): blocks of 64 rows in float32, their sums in float64. With `b` 0 it adds
// the values (a - a_shift) themselves.
static void channel_sums(const f32 *a, const f32 *a_shift, const f32 *b, const f32 *b_shift,
                         int rows, int channels, double *wide) {
  const int vector_channels = channels & ~3;
  for (int first = 0; first < rows; first += 64) {
    const int count = rows - first < 64 ? rows - first : 64;
    for (int c = vector_channels; c < channels; c++) {
      f32 sum = 0;
      for (int r = first; r < first + count; r++) {
        const f32 value = a[(long)r * channels + c] - a_shift[c];
        sum += b ? value * (b[(long)r * channels + c] - b_shift[c]) : value;
      }
      wide[c] += sum;
    }
    for (int c = 0; c < vector_channels; c += 4) {
      const v128_t sa = LOAD(a_shift + c);
      const v128_t sb = b ? LOAD(b_shift + c) : sa;
      v128_t s0 = wasm_f32x4_splat(0), s1 = s0;
      const f32 *pa = a + (long)first * channels + c;
      const f32 *pb = b ? b + (long)first * channels + c : pa;
      int r = 0;
      if (b) {
        for (; r + 2 <= count; r += 2) {
          s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(wasm_f32x4_sub(LOAD(pa), sa),
                                                 wasm_f32x4_sub(LOAD(pb), sb)));
          s1 = wasm_f32x4_add(s1, wasm_f32x4_mul(wasm_f32x4_sub(LOAD(pa + channels), sa),
                                                 wasm_f32x4_sub(LOAD(pb + channels), sb)));
          pa += 2 * channels;
          pb += 2 * channels;
        }
        for (; r < count; r++) {
          s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(wasm_f32x4_sub(LOAD(pa), sa),
                                                 wasm_f32x4_sub(LOAD(pb), sb)));
          pa += channels;
          pb += channels;
        }
      } else {
        for (; r + 2 <= count; r += 2) {
          s0 = wasm_f32x4_add(s0, wasm_f32x4_sub(LOAD(pa), sa));
          s1 = wasm_f32x4_add(s1, wasm_f32x4_sub(LOAD(pa + channels), sa));
          pa += 2 * channels;
        }
        for (; r < count; r++) {
          s0 = wasm_f32x4_add(s0, wasm_f32x4_sub(LOAD(pa), sa));
          pa += channels;
        }
      }
      const v128_t s = wasm_f32x4_add(s0, s1);
      STORE(wide + c, wasm_f64x2_add(LOAD(wide + c), wasm_f64x2_promote_low_f32x4(s)));
      STORE(wide + c + 2,
            wasm_f64x2_add(LOAD(wide + c + 2),
                           wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(s, s, 2, 3, 0, 1))));
    }
  }
}

// A training batch norm of rows x channels: the rows' mean and
// biased variance (sums in float64, the variance about the mean in a second pass), and
// y = (x - mean) * scale / sqrt(variance + epsilon) + offset. Scratch: wide, 2 * channels
// doubles; zero, channels floats of 0.
__attribute__((export_name("batch_norm_training"))) void batch_norm_training(
    const f32 *x, int rows, int channels, const f32 *scale, const f32 *offset, f32 epsilon,
    f32 *y, f32 *mean, f32 *variance, double *wide, f32 *zero) {
  for (int c = 0; c < channels; c++) {
    wide[c] = 0;
    zero[c] = 0;
  }
  channel_sums(x, zero, 0, 0, rows, channels, wide);
  for (int c = 0; c < channels; c++) {
    mean[c] = (f32)(wide[c] / rows);
    wide[c] = 0;
  }
  // About the float32 mean: sum (x - m)^2 / n, less (mean - m)^2 for the rounding of m.
  channel_sums(x, mean, x, mean, rows, channels, wide);
  for (int c = 0; c < channels; c++) wide[channels + c] = 0;
  channel_sums(x, mean, 0, 0, rows, channels, wide + channels);
  for (int c = 0; c < channels; c++) {
    const double shift = wide[channels + c] / rows;
    const double v = wide[c] / rows - shift * shift;
    variance[c] = (f32)(v > 0 ? v : 0);
  }
  // y = (x - mean) * a + offset, a = scale / sqrt(variance + epsilon) (kept in `zero`).
  for (int c = 0; c < channels; c++) {
    zero[c] = scale[c] / __builtin_sqrtf(variance[c] + epsilon);
  }
  const int vector_channels = channels & ~3;
  for (int r = 0; r < rows; r++) {
    const f32 *px = x + (long)r * channels;
    f32 *py = y + (long)r * channels;
    for (int c = 0; c < vector_channels; c += 4) {
      const v128_t t = wasm_f32x4_mul(wasm_f32x4_sub(LOAD(px + c), LOAD(mean + c)), LOAD(zero + c));
      STORE(py + c, wasm_f32x4_add(t, LOAD(offset + c)));
    }
    for (int c = vector_channels; c < channels; c++) py[c] = (px[c] - mean[c]) * zero[c] + offset[c];
  }
}

// The gradient of batch_norm_training(): doffset = sum dy, dscale = sum dy * xhat with
// xhat = (x - mean) / sqrt(variance + epsilon), and
// dx = scale / sqrt(variance + epsilon) * (dy - doffset / rows - xhat * dscale / rows).
// Scratch: wide, channels doubles; work, 3 * channels floats.
__attribute__((export_name("batch_norm_backward"))) void batch_norm_backward(
    const f32 *dy, const f32 *x, int rows, int channels, const f32 *mean, const f32 *variance,
    const f32 *scale, f32 epsilon, f32 *dx, f32 *dscale, f32 *doffset, double *wide, f32 *work) {
  f32 *zero = work, *k1 = work + channels, *k2 = work + 2 * channels;
  for (int c = 0; c < channels; c++) {
    wide[c] = 0;
    zero[c] = 0;
  }
  channel_sums(dy, zero, 0, 0, rows, channels, wide);
  for (int c = 0; c < channels; c++) {
    doffset[c] = (f32)wide[c];
    wide[c] = 0;
  }
  channel_sums(dy, zero, x, mean, rows, channels, wide);
  for (int c = 0; c < channels; c++) {
    const f32 rstd = 1 / __builtin_sqrtf(variance[c] + epsilon);
    dscale[c] = (f32)(wide[c] * rstd);
    // dx = a * dy - k1 - (x - mean) * k2, per channel.
    k1[c] = scale[c] * rstd * doffset[c] / rows;
    k2[c] = (f32)(scale[c] * rstd * rstd * rstd * wide[c] / rows);
    zero[c] = scale[c] * rstd;
  }
  const int vector_channels = channels & ~3;
  for (int r = 0; r < rows; r++) {
    const f32 *pdy = dy + (long)r * channels, *px = x + (long)r * channels;
    f32 *pdx = dx + (long)r * channels;
    for (int c = 0; c < vector_channels; c += 4) {
      const v128_t t = wasm_f32x4_sub(wasm_f32x4_mul(LOAD(zero + c), LOAD(pdy + c)), LOAD(k1 + c));
      const v128_t centred = wasm_f32x4_sub(LOAD(px + c), LOAD(mean + c));
      STORE(pdx + c, wasm_f32x4_sub(t, wasm_f32x4_mul(centred, LOAD(k2 + c))));
    }
    for (int c = vector_channels; c < channels; c++) {
      pdx[c] = zero[c] * pdy[c] - k1[c] - (px[c] - mean[c]) * k2[c];
    }
  }
}

// ReLU's gradient: dx = dy where x > 0, else 0, over `count` floats.
__attribute__((export_name("relu_grad"))) void relu_grad(const f32 *dy, const f32 *x, f32 *dx,
                                                          int count) {
  const v128_t zero = wasm_f32x4_splat(0);
  int i = 0;
  for (; i + 4 <= count; i += 4) {
    STORE(dx + i, wasm_v128_and(LOAD(dy + i), wasm_f32x4_gt(LOAD(x + i), zero)));
  }
  for (; i < count; i++) dx[i] = x[i] > 0 ? dy[i] : 0;
}
