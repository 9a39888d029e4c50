/* Window kernels of the NumPy JIT (`kernels.NativeWindow`): a depthwise convolution, one
 * filter per channel, as one pass over the output with the window's products in registers
 * (NumPy makes one pass over the input per window point, or copies every window), and max
 * and sum pools; and (`kernels.PackedGemm`, `pack` below) the im2col of every other
 * convolution, whose GEMM BLAS then runs.
 *
 *   out[i0, i1, i2, i3, j] (+)= comb over r, p, q of
 *       x[i0, i1, i2, i3, j, r, p, q] (* w[i0, i1, i2, i3, j, r, p, q])
 *
 * over strided views of C-contiguous float32 buffers (float64 keeps the NumPy forms: its
 * loops would double the one-time build): each operand is an element offset and a stride
 * per loop dim (0 where it does not use the dim), as the JIT's access analysis gives them; i0..i3 are the outer loop dims (batch, channel, output row), j the output column,
 * p, q the window's rows and columns, r a third window dim (channels per group). Every
 * element the views reach is checked to lie inside its buffer before anything is read.
 *
 * Padded images: instead of a zero- (or -inf-) padded copy of the image, x may be the
 * unpadded image, C-contiguous planes of `rows` x `cols`; its view is then a plane offset
 * and plane strides per loop dim plus a row and a column step per loop dim, and a tap
 * outside the image reads the combiner's identity (0, or -inf for a max pool).
 *
 * Windows of K x K points (K = 3, 5, 7) over a column stride of 1 or 2, with unit window
 * columns and a contiguous output row, run a loop specialised per (K, stride): the K*K
 * weights of a plane in a local array, the window's products summed in vector registers
 * (`line`; narrow planes as one wide row); a padded image is copied plane by plane into a
 * scratch plane with the padding around it (small, cache-resident, its border written once
 * per call). Pools with unit window columns run separably per output row (the window's rows
 * combined into a row buffer, then its columns), reading a padded image in place. Anything
 * else takes the generic loop, which reads the same views with runtime extents and strides
 * and checks each tap against the image. The GIL is released around the loops. (Measured
 * forms: bench/depthwise.py, docs/performance.md "compiled window kernels" and "window
 * kernels, padding and pools".) */
#include "native.h"
#include <math.h>

enum { NDIM = 8 }; /* i0, i1, i2, i3, j, r, p, q */
enum { J = 4, R = 5, P = 6, Q = 7 };
enum { CONV, MAX, SUM };

typedef struct {
  int op;
  int accumulate;              /* combine into the output instead of overwriting it */
  Py_ssize_t ext[NDIM];
  Py_ssize_t offset[3];        /* x, w, out */
  Py_ssize_t stride[3][NDIM];  /* x, w, out (out: 0 along r, p, q) */
  int padded;                  /* x is the unpadded image (offset[0], stride[0]: its planes) */
  Py_ssize_t rows, cols;       /* the image's plane */
  Py_ssize_t row0, col0;       /* the first output's window origin (negative: in the padding) */
  Py_ssize_t rstep[NDIM], cstep[NDIM];
} conv_t;

/* Where the loops of one plane (i0, i1, i2) read x: a pointer and strides along i3, j, p, q. */
typedef struct {
  Py_ssize_t s3, sj, sp, sq;
  Py_ssize_t ylo, xlo, h, w;   /* padded: the scratch plane's rows/columns of the image */
} view_t;

#ifdef __FMA__
#define MADD_float(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define MADD_float(a, b, c) ((a) * (b) + (c))
#endif
/* NaN-propagating, as np.maximum and arith.maximumf (`|`, not `||`: a select, no branch) */
#define MAX_OF(a, b) (((a) > (b)) | ((a) != (a)) ? (a) : (b))

static inline float combine(int op, float acc, float v) {
  return op == MAX ? MAX_OF(acc, v) : acc + v;
}

/* The generic loop: any extents and strides; a padded image's taps checked one by one. */
static void generic(const conv_t *c, const float *x, const float *w, float *o) {
  const Py_ssize_t *e = c->ext, *xs = c->stride[0], *ws = c->stride[1], *os = c->stride[2];
  const float ident = c->op == MAX ? -INFINITY : 0.0f;
  Py_ssize_t i[NDIM];
  for (i[0] = 0; i[0] < e[0]; i[0]++)
    for (i[1] = 0; i[1] < e[1]; i[1]++)
      for (i[2] = 0; i[2] < e[2]; i[2]++)
        for (i[3] = 0; i[3] < e[3]; i[3]++)
          for (i[J] = 0; i[J] < e[J]; i[J]++) {
            Py_ssize_t xo = c->offset[0], wo = c->offset[1], oo = c->offset[2], y0 = c->row0,
                       x0 = c->col0;
            for (int k = 0; k <= J; k++) {
              xo += i[k] * xs[k]; wo += i[k] * ws[k]; oo += i[k] * os[k];
              y0 += i[k] * c->rstep[k]; x0 += i[k] * c->cstep[k];
            }
            float acc = ident;
            for (i[R] = 0; i[R] < e[R]; i[R]++)
              for (i[P] = 0; i[P] < e[P]; i[P]++)
                for (i[Q] = 0; i[Q] < e[Q]; i[Q]++) {
                  Py_ssize_t xt = xo, wt = wo, y = y0, xc = x0;
                  for (int k = R; k < NDIM; k++) {
                    xt += i[k] * xs[k]; wt += i[k] * ws[k];
                    y += i[k] * c->rstep[k]; xc += i[k] * c->cstep[k];
                  }
                  float v;
                  if (!c->padded) v = x[xt];
                  else if (y < 0 || y >= c->rows || xc < 0 || xc >= c->cols) v = ident;
                  else v = x[xt + y * c->cols + xc];
                  acc = c->op == CONV ? MADD_float(v, w[wt], acc) : combine(c->op, acc, v);
                }
            o[oo] = c->accumulate ? (c->op == CONV ? o[oo] + acc : combine(c->op, o[oo], acc)) : acc;
          }
}

/* K x K windows, column stride S, unit window columns (x stride 1 along q), one weight per
 * (i0..i3) (w stride 0 along j, r absent), a contiguous output row (out stride 1 along j).
 *
 * `line` sums the windows of `n` outputs whose window origins are S apart from `xb` (rows
 * `xp` apart) into `dst`: with stride 1, blocks of BLOCK outputs, each window point's weight
 * read once per block and its products added to BLOCK sums held in vector registers (one
 * load per product instead of two); then (stride 2: all) outputs one by one, vectorised
 * across outputs (stride-2 blocks measured 3-4x slower: the loads do not vectorise). */
enum { BLOCK = 64 };

#define LINE(K, S)                                                                           \
  static inline void line_##K##_##S(const float *restrict xb, Py_ssize_t xp,                \
                                    const float *restrict wk, float *restrict dst,          \
                                    Py_ssize_t n) {                                          \
    Py_ssize_t t = 0;                                                                        \
    for (; S == 1 && t + BLOCK <= n; t += BLOCK) {                                           \
      float acc[BLOCK];                                                                      \
      for (int u = 0; u < BLOCK; u++) acc[u] = 0;                                            \
      for (int p = 0; p < K; p++)                                                            \
        _Pragma("GCC unroll 8") for (int q = 0; q < K; q++) {                                \
          const float wv = wk[p * K + q], *xr = xb + t * S + p * xp + q;                     \
          for (int u = 0; u < BLOCK; u++) acc[u] = MADD_float(xr[u * S], wv, acc[u]);        \
        }                                                                                    \
      for (int u = 0; u < BLOCK; u++) dst[t + u] = acc[u];                                   \
    }                                                                                        \
    for (; t < n; t++) {                                                                     \
      const float *xj = xb + t * S;                                                          \
      float acc = 0;                                                                         \
      _Pragma("GCC unroll 8") for (int p = 0; p < K; p++)                                    \
        _Pragma("GCC unroll 8") for (int q = 0; q < K; q++)                                  \
          acc = MADD_float(xj[p * xp + q], wk[p * K + q], acc);                              \
      dst[t] = acc;                                                                          \
    }                                                                                        \
  }

/* Rows of fewer than WIDE_COLS outputs are too short for `line`'s blocks: with stride 1, when
 * the row dim i3 steps one image row of `xp` elements, output (i, j) reads from i * xp + j,
 * so the plane runs as one wide row of (rows - 1) * xp + cols outputs (at most WIDE_SPAN;
 * the K - 1 columns between rows are computed and dropped), whose kept columns are copied
 * out. (With stride 2 every other column would be dropped: measured slower.) */
enum { WIDE_COLS = 32, WIDE_SPAN = 4096 };

#define SQUARE(K, S)                                                                         \
  LINE(K, S)                                                                                 \
  static void square_##K##_##S(const conv_t *c, const view_t *v, const float *restrict xb,  \
                               const float *restrict wb, float *restrict ob) {              \
    const Py_ssize_t *e = c->ext, *ws = c->stride[1], *os = c->stride[2];                    \
    const Py_ssize_t xp = v->sp, n = e[J];                                                   \
    const int wide = S == 1 && n < WIDE_COLS && v->s3 == S * xp && xp >= n &&                \
                     (e[3] - 1) * xp + n <= WIDE_SPAN;                                       \
    float tmp[WIDE_SPAN];                                                                    \
    float wk[K * K];                                                                         \
    for (int p = 0; p < K; p++)                                                              \
      for (int q = 0; q < K; q++) wk[p * K + q] = wb[p * ws[P] + q * ws[Q]];                 \
    if (wide) {                                                                              \
      line_##K##_##S(xb, xp, wk, tmp, (e[3] - 1) * xp + n);                                  \
      for (Py_ssize_t i = 0; i < e[3]; i++)                                                  \
        for (Py_ssize_t j = 0; j < n; j++)                                                   \
          ob[i * os[3] + j] = c->accumulate ? ob[i * os[3] + j] + tmp[i * xp + j]            \
                                            : tmp[i * xp + j];                               \
      return;                                                                                \
    }                                                                                        \
    for (Py_ssize_t i3 = 0; i3 < e[3]; i3++) {                                               \
      if (!c->accumulate) {                                                                  \
        line_##K##_##S(xb + i3 * v->s3, xp, wk, ob + i3 * os[3], n);                         \
        continue;                                                                            \
      }                                                                                      \
      for (Py_ssize_t j0 = 0; j0 < n; j0 += WIDE_SPAN) {                                     \
        Py_ssize_t m = n - j0 < WIDE_SPAN ? n - j0 : WIDE_SPAN;                              \
        line_##K##_##S(xb + i3 * v->s3 + j0 * S, xp, wk, tmp, m);                            \
        for (Py_ssize_t j = 0; j < m; j++) ob[i3 * os[3] + j0 + j] += tmp[j];                \
      }                                                                                      \
    }                                                                                        \
  }

SQUARE(3, 1) SQUARE(3, 2) SQUARE(5, 1) SQUARE(5, 2) SQUARE(7, 1) SQUARE(7, 2)

typedef void (*square_fn)(const conv_t *, const view_t *, const float *, const float *, float *);

static square_fn square_for(Py_ssize_t k, Py_ssize_t s) {
  if (s != 1 && s != 2) return NULL;
  switch (k) {
    case 3: return s == 1 ? square_3_1 : square_3_2;
    case 5: return s == 1 ? square_5_1 : square_5_2;
    case 7: return s == 1 ? square_7_1 : square_7_2;
    default: return NULL;
  }
}

/* A pool's plane, separably: per output row, the window's rows combined into `tmp` (every
 * column the row's windows read, contiguous), then the window's columns into `acc` (both
 * passes vectorised along the row). A padded image is read in place: rows outside it are
 * skipped, columns outside it left at the identity `ID`. `OP` is the plain combiner (for
 * the max `a > b ? a : b`, one instruction, which may drop a NaN); a row whose inputs hold
 * a NaN (`NANS`: the max) is done again with `EXACT` (NaN-propagating, ~1.7x slower). */
#define POOL(NAME, OP, EXACT, ID, NANS)                                                      \
  static void pool_##NAME(const conv_t *c, const view_t *v, const float *restrict xb,       \
                          float *restrict ob, float *restrict tmp) {                         \
    const Py_ssize_t *e = c->ext, *os = c->stride[2];                                        \
    const Py_ssize_t n = e[J], kh = e[P], kw = e[Q], sj = v->sj, span = (n - 1) * sj + kw;   \
    float *restrict acc = tmp + span;                                                        \
    Py_ssize_t x0 = 0, t0 = 0, t1 = span;                                                    \
    if (c->padded) {                                                                         \
      x0 = c->col0;                                                                          \
      t0 = x0 < 0 ? (-x0 < span ? -x0 : span) : 0;                                           \
      t1 = c->cols - x0 < span ? c->cols - x0 : span;                                        \
      if (t1 < t0) t1 = t0;                                                                  \
    }                                                                                        \
    for (Py_ssize_t i3 = 0; i3 < e[3]; i3++) {                                               \
      int first = 1, nan = 0;                                                                \
      float *od = ob + i3 * os[3];                                                           \
      const float *r0 = NULL, *r1 = NULL, *r2 = NULL; /* three rows inside: one pass */      \
      if (kh == 3) {                                                                         \
        if (!c->padded) {                                                                    \
          r0 = xb + i3 * v->s3; r1 = r0 + v->sp; r2 = r1 + v->sp;                            \
        } else {                                                                             \
          Py_ssize_t y = c->row0 + i3 * c->rstep[3], dy = c->rstep[P];                       \
          if (y >= 0 && y + 2 * dy < c->rows) {                                              \
            r0 = xb + y * c->cols + x0; r1 = r0 + dy * c->cols; r2 = r1 + dy * c->cols;      \
          }                                                                                  \
        }                                                                                    \
      }                                                                                      \
      if (r0) {                                                                              \
        for (Py_ssize_t t = 0; t < t0; t++) tmp[t] = ID;                                     \
        for (Py_ssize_t t = t0; t < t1; t++) {                                               \
          tmp[t] = OP(OP(r0[t], r1[t]), r2[t]);                                              \
          if (NANS) nan |= (r0[t] != r0[t]) | (r1[t] != r1[t]) | (r2[t] != r2[t]);           \
        }                                                                                    \
        for (Py_ssize_t t = t1; t < span; t++) tmp[t] = ID;                                  \
        first = 0;                                                                           \
      }                                                                                      \
      for (int exact = r0 ? 1 : 0; exact <= nan; exact++) {                                  \
        first = 1;                                                                           \
        for (Py_ssize_t p = 0; p < kh; p++) {                                                \
          const float *restrict rp;                                                          \
          if (c->padded) {                                                                   \
            Py_ssize_t y = c->row0 + i3 * c->rstep[3] + p * c->rstep[P];                     \
            if (y < 0 || y >= c->rows) continue;                                             \
            rp = xb + y * c->cols;                                                           \
          } else {                                                                           \
            rp = xb + i3 * v->s3 + p * v->sp;                                                \
          }                                                                                  \
          if (first) {                                                                       \
            for (Py_ssize_t t = 0; t < t0; t++) tmp[t] = ID;                                 \
            for (Py_ssize_t t = t0; t < t1; t++) {                                           \
              tmp[t] = rp[x0 + t];                                                           \
              if (NANS) nan |= rp[x0 + t] != rp[x0 + t];                                     \
            }                                                                                \
            for (Py_ssize_t t = t1; t < span; t++) tmp[t] = ID;                              \
            first = 0;                                                                       \
          } else if (!exact) {                                                               \
            for (Py_ssize_t t = t0; t < t1; t++) {                                           \
              tmp[t] = OP(tmp[t], rp[x0 + t]);                                               \
              if (NANS) nan |= rp[x0 + t] != rp[x0 + t];                                     \
            }                                                                                \
          } else {                                                                           \
            for (Py_ssize_t t = t0; t < t1; t++) tmp[t] = EXACT(tmp[t], rp[x0 + t]);         \
          }                                                                                  \
        }                                                                                    \
        if (!nan || exact) break;                                                            \
      }                                                                                      \
      if (first)                                                                             \
        for (Py_ssize_t t = 0; t < span; t++) tmp[t] = ID;                                   \
      /* (after the rows, a NaN of the inputs is in tmp: EXACT keeps it from here on) */     \
      if (nan) {                                                                             \
        for (Py_ssize_t j = 0; j < n; j++) acc[j] = tmp[j * sj];                             \
        for (Py_ssize_t q = 1; q < kw; q++)                                                  \
          for (Py_ssize_t j = 0; j < n; j++) acc[j] = EXACT(acc[j], tmp[j * sj + q]);        \
      } else if (sj == 2 && kw == 3) { /* (grouped loads: even/odd columns, vectorised) */   \
        float *restrict to = !c->accumulate && os[J] == 1 ? od : acc;                        \
        for (Py_ssize_t j = 0; j < n; j++)                                                   \
          to[j] = OP(OP(tmp[2 * j], tmp[2 * j + 1]), tmp[2 * j + 2]);                        \
        if (to == od) continue;                                                              \
      } else if (sj == 2 && kw == 2) {                                                       \
        for (Py_ssize_t j = 0; j < n; j++) acc[j] = OP(tmp[2 * j], tmp[2 * j + 1]);          \
      } else {                                                                               \
        for (Py_ssize_t j = 0; j < n; j++) acc[j] = tmp[j * sj];                             \
        for (Py_ssize_t q = 1; q < kw; q++)                                                  \
          for (Py_ssize_t j = 0; j < n; j++) acc[j] = OP(acc[j], tmp[j * sj + q]);           \
      }                                                                                      \
      if (c->accumulate)                                                                     \
        for (Py_ssize_t j = 0; j < n; j++) od[j * os[J]] = EXACT(od[j * os[J]], acc[j]);     \
      else if (os[J] == 1)                                                                   \
        memcpy(od, acc, (size_t)n * sizeof(float));                                          \
      else                                                                                   \
        for (Py_ssize_t j = 0; j < n; j++) od[j * os[J]] = acc[j];                           \
    }                                                                                        \
  }
#define ADD_OF(a, b) ((a) + (b))
#define GREATER_OF(a, b) ((a) > (b) ? (a) : (b))
POOL(max, GREATER_OF, MAX_OF, -INFINITY, 1)
POOL(sum, ADD_OF, ADD_OF, 0.0f, 0)

/* Whether the plane loops can run, with the view of one plane they read: x moves along
 * i3, j, p, q within a plane only (rows along i3 and p, columns along j and q), r is
 * absent, and the window's columns are adjacent. */
static int plane_view(const conv_t *c, view_t *v) {
  const Py_ssize_t *e = c->ext, *xs = c->stride[0];
  if (e[R] != 1) return 0;
  if (!c->padded) {
    *v = (view_t){xs[3], xs[J], xs[P], xs[Q], 0, 0, 0, 0};
  } else {
    const Py_ssize_t *rs = c->rstep, *cs = c->cstep;
    for (int k = 0; k < 3; k++)
      if (rs[k] || cs[k]) return 0;
    if (xs[3] || xs[J] || xs[P] || xs[Q] || cs[3] || cs[P] || rs[J] || rs[Q] || rs[3] < 0 ||
        rs[P] < 0 || cs[J] < 0 || cs[Q] < 0)
      return 0;
    Py_ssize_t h = (e[3] - 1) * rs[3] + (e[P] - 1) * rs[P] + 1;
    Py_ssize_t w = (e[J] - 1) * cs[J] + (e[Q] - 1) * cs[Q] + 1, hw;
    if (__builtin_mul_overflow(h, w, &hw) || hw > (Py_ssize_t)1 << 26) return 0;
    *v = (view_t){rs[3] * w, cs[J], rs[P] * w, cs[Q], c->row0, c->col0, h, w};
  }
  return v->sq == 1 && v->sj > 0 && v->sp > 0 && v->s3 >= 0;
}

/* Copies the image's part of plane `xb` into the scratch plane (the padding around it
 * written by the caller, once). */
static void fill_plane(const conv_t *c, const view_t *v, const float *xb, float *scratch) {
  Py_ssize_t y1 = v->ylo < 0 ? 0 : v->ylo, y2 = v->ylo + v->h < c->rows ? v->ylo + v->h : c->rows;
  Py_ssize_t x1 = v->xlo < 0 ? 0 : v->xlo, x2 = v->xlo + v->w < c->cols ? v->xlo + v->w : c->cols;
  if (x2 <= x1) return;
  for (Py_ssize_t y = y1; y < y2; y++)
    memcpy(scratch + (y - v->ylo) * v->w + (x1 - v->xlo), xb + y * c->cols + x1,
           (size_t)(x2 - x1) * sizeof(float));
}

/* The scratch the plane loops need (floats): a padded plane and a pool's row buffer. */
static Py_ssize_t scratch_size(const conv_t *c, const view_t *v) {
  if (c->op != CONV) return (c->ext[J] - 1) * v->sj + c->ext[Q] + c->ext[J];
  return c->padded ? v->h * v->w : 0;
}

static void run(const conv_t *c, const view_t *v, square_fn square, const float *x,
                const float *w, float *o, float *scratch) {
  const Py_ssize_t *e = c->ext, *xs = c->stride[0], *ws = c->stride[1], *os = c->stride[2];
  const int unpad = c->padded && c->op == CONV; /* pools read a padded image in place */
  if (unpad)
    for (Py_ssize_t t = 0; t < v->h * v->w; t++) scratch[t] = 0.0f;
  for (Py_ssize_t i0 = 0; i0 < e[0]; i0++)
    for (Py_ssize_t i1 = 0; i1 < e[1]; i1++)
      for (Py_ssize_t i2 = 0; i2 < e[2]; i2++) {
        const float *xb = x + c->offset[0] + i0 * xs[0] + i1 * xs[1] + i2 * xs[2];
        float *ob = o + c->offset[2] + i0 * os[0] + i1 * os[1] + i2 * os[2];
        if (unpad) {
          fill_plane(c, v, xb, scratch);
          xb = scratch;
        }
        if (c->op == CONV)
          square(c, v, xb, w + c->offset[1] + i0 * ws[0] + i1 * ws[1] + i2 * ws[2], ob);
        else if (c->op == MAX)
          pool_max(c, v, xb, ob, scratch);
        else
          pool_sum(c, v, xb, ob, scratch);
      }
}

/* The params tuple: accumulate, the 8 extents, then per operand (x, w, out) its element
 * offset and its 8 strides; for a padded image then rows, cols, row0, col0 and the 8 row
 * and 8 column steps. */
enum { NPARAMS = 1 + NDIM + 3 * (1 + NDIM), NPAD = 4 + 2 * NDIM };

static int parse(PyObject *params, conv_t *c) {
  Py_ssize_t size = PyTuple_Check(params) ? PyTuple_GET_SIZE(params) : -1;
  if (size != NPARAMS && size != NPARAMS + NPAD) {
    PyErr_Format(PyExc_ValueError, "params: expected a tuple of %d or %d ints", (int)NPARAMS,
                 (int)(NPARAMS + NPAD));
    return -1;
  }
  Py_ssize_t v[NPARAMS + NPAD] = {0};
  for (Py_ssize_t i = 0; i < size; i++) {
    v[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(params, i));
    if (v[i] == -1 && PyErr_Occurred()) return -1;
  }
  c->accumulate = v[0] != 0;
  for (int k = 0; k < NDIM; k++) {
    c->ext[k] = v[1 + k];
    if (c->ext[k] < 1) {
      PyErr_SetString(PyExc_ValueError, "params: extents must be positive");
      return -1;
    }
  }
  for (int a = 0; a < 3; a++) {
    c->offset[a] = v[1 + NDIM + a * (1 + NDIM)];
    for (int k = 0; k < NDIM; k++) c->stride[a][k] = v[2 + NDIM + a * (1 + NDIM) + k];
  }
  const Py_ssize_t *pad = v + NPARAMS;
  c->padded = size > NPARAMS;
  c->rows = pad[0]; c->cols = pad[1]; c->row0 = pad[2]; c->col0 = pad[3];
  for (int k = 0; k < NDIM; k++) {
    c->rstep[k] = pad[4 + k];
    c->cstep[k] = pad[4 + NDIM + k];
  }
  if (c->padded && (c->rows < 1 || c->cols < 1)) {
    PyErr_SetString(PyExc_ValueError, "params: the image must have rows and columns");
    return -1;
  }
  return 0;
}

/* Whether every element operand `a`'s view reaches lies in a buffer of `len` items (a
 * padded image: every element of every plane it reaches). */
static int inside(const conv_t *c, int a, Py_ssize_t len, const char *what) {
  Py_ssize_t lo = c->offset[a], hi = c->offset[a], d, plane = 1;
  int ok = !(a == 0 && c->padded && __builtin_mul_overflow(c->rows, c->cols, &plane));
  for (int k = 0; ok && k < NDIM; k++) {
    if (__builtin_mul_overflow(c->stride[a][k], c->ext[k] - 1, &d) ||
        __builtin_add_overflow(d >= 0 ? hi : lo, d, d >= 0 ? &hi : &lo))
      ok = 0;
  }
  if (ok && a == 0 && c->padded && __builtin_add_overflow(hi, plane - 1, &hi)) ok = 0;
  if (ok && lo >= 0 && hi < len) return 0;
  PyErr_Format(PyExc_ValueError, "%s: the view reaches outside the buffer", what);
  return -1;
}

/* Checks, runs and releases: the kernels' common part (`w` NULL for a pool). */
static PyObject *call(conv_t *c, PyObject *x, PyObject *w, PyObject *out) {
  for (int k = R; k < NDIM; k++)
    if (c->stride[2][k] != 0) {
      PyErr_SetString(PyExc_ValueError, "out: a window dim must not move the output");
      return NULL;
    }
  Py_buffer bx, bw = {0}, bo;
  if (wrc_buffer(x, &bx, "f", 4, 0, "x") < 0) return NULL;
  if (w && wrc_buffer(w, &bw, "f", 4, 0, "w") < 0) { PyBuffer_Release(&bx); return NULL; }
  if (wrc_buffer(out, &bo, "f", 4, 1, "out") < 0) {
    PyBuffer_Release(&bx); if (w) PyBuffer_Release(&bw); return NULL;
  }
  PyObject *result = NULL;
  float *scratch = NULL;
  if (inside(c, 0, bx.len / 4, "x") < 0 || (w && inside(c, 1, bw.len / 4, "w") < 0) ||
      inside(c, 2, bo.len / 4, "out") < 0)
    goto done;
  view_t v;
  square_fn square = NULL;
  int planes = plane_view(c, &v);
  if (planes && c->op == CONV) {
    const Py_ssize_t *ws = c->stride[1], *os = c->stride[2];
    square = c->ext[P] == c->ext[Q] && ws[J] == 0 && ws[3] == 0 && os[J] == 1
                 ? square_for(c->ext[P], v.sj) : NULL;
    planes = square != NULL;
  }
  if (planes && scratch_size(c, &v) > 0) {
    scratch = PyMem_RawMalloc((size_t)scratch_size(c, &v) * sizeof(float));
    if (!scratch) { PyErr_NoMemory(); goto done; }
  }
  Py_BEGIN_ALLOW_THREADS
  if (planes) run(c, &v, square, bx.buf, bw.buf, bo.buf, scratch);
  else generic(c, bx.buf, bw.buf, bo.buf);
  Py_END_ALLOW_THREADS
  result = Py_NewRef(Py_None);
done:
  PyMem_RawFree(scratch);
  PyBuffer_Release(&bx); if (w) PyBuffer_Release(&bw); PyBuffer_Release(&bo);
  return result;
}

static PyObject *conv(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *x, *w, *out, *params;
  if (!PyArg_ParseTuple(args, "OOOO", &x, &w, &out, &params)) return NULL;
  conv_t c;
  if (parse(params, &c) < 0) return NULL;
  c.op = CONV;
  return call(&c, x, w, out);
}

static PyObject *pool(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *x, *out, *params;
  const char *op;
  if (!PyArg_ParseTuple(args, "OOsO", &x, &out, &op, &params)) return NULL;
  conv_t c;
  if (parse(params, &c) < 0) return NULL;
  if (strcmp(op, "max") != 0 && strcmp(op, "sum") != 0) {
    PyErr_SetString(PyExc_ValueError, "op: expected 'max' or 'sum'");
    return NULL;
  }
  c.op = op[0] == 'm' ? MAX : SUM;
  for (int k = 0; k < NDIM; k++) c.stride[1][k] = 0;
  c.offset[1] = 0;
  return call(&c, x, NULL, out);
}

/* im2col (`kernels.PackedGemm`): `out` = the view `x` over the 8 loop slots, C-contiguous in
 * slot order (the last slot innermost): a convolution's image as the [batch,] K x N (or
 * N x K) matrix of its GEMM, which BLAS then takes as it is. A padded image is read as
 * above (taps outside it read 0), so neither the padded copy nor a strided NumPy copy is
 * made. Items of 4 bytes (float32) or 8 (float64): a copy moves bits, the padding is +0.
 * The two innermost slots are a block of rows (an output plane of one window point and
 * channel): the columns inside the image are found once per block (no division per row:
 * they measured 16 ns a row), then each row is zeros, a copy (memcpy for unit steps) and
 * zeros. The outer slots advance like an odometer. */

/* [*lo, *hi): the taps t < n of a row whose column xc + t * step lies in [0, cols). */
static inline void cols_inside(Py_ssize_t xc, Py_ssize_t step, Py_ssize_t n, Py_ssize_t cols,
                               Py_ssize_t *lo, Py_ssize_t *hi) {
  Py_ssize_t l = 0, h = n, before = xc < 0 ? -xc : 0, upto = cols - xc; /* upto: columns left */
  if (step == 0) {
    if (before || upto <= 0) h = 0;
  } else if (step == 1) {
    l = before;
    if (upto < h) h = upto;
  } else if (step == 2) {
    l = (before + 1) >> 1;
    if (upto <= 0) h = 0;
    else if ((upto + 1) >> 1 < h) h = (upto + 1) >> 1;
  } else {
    l = (before + step - 1) / step;
    if (upto <= 0) h = 0;
    else if ((upto + step - 1) / step < h) h = (upto + step - 1) / step;
  }
  if (h < 0) h = 0;
  *lo = l < h ? l : h;
  *hi = h;
}

/* n items from r to o; the common row lengths as fixed-size copies (inlined vector moves:
 * a library call per short row measured 5-8 ns). */
#define COPY_RUN(T)                                                                          \
  static inline void run_##T(T *restrict o, const T *restrict r, Py_ssize_t n) {            \
    switch (n) {                                                                             \
      case 2: memcpy(o, r, 2 * sizeof(T)); break;                                            \
      case 4: memcpy(o, r, 4 * sizeof(T)); break;                                            \
      case 7: memcpy(o, r, 7 * sizeof(T)); break;                                            \
      case 8: memcpy(o, r, 8 * sizeof(T)); break;                                            \
      case 14: memcpy(o, r, 14 * sizeof(T)); break;                                          \
      case 16: memcpy(o, r, 16 * sizeof(T)); break;                                          \
      case 28: memcpy(o, r, 28 * sizeof(T)); break;                                          \
      case 32: memcpy(o, r, 32 * sizeof(T)); break;                                          \
      default: memcpy(o, r, (size_t)n * sizeof(T));                                          \
    }                                                                                        \
  }

#define PACK(T)                                                                              \
  COPY_RUN(T)                                                                                \
  static void pack_##T(const conv_t *c, const T *restrict x, Py_ssize_t len, T *restrict o) { \
    const Py_ssize_t *e = c->ext, *xs = c->stride[0], *rs = c->rstep, *cs = c->cstep;        \
    const Py_ssize_t m = e[P], n = e[Q], rows = c->rows, cols = c->cols;                     \
    const Py_ssize_t sxp = xs[P], sxq = xs[Q], rp = rs[P], cq = cs[Q];                       \
    /* a padded block of rows: rows along P only, columns along Q only, planes along neither */ \
    const int block = c->padded && sxp == 0 && sxq == 0 && rs[Q] == 0 && cs[P] == 0;         \
    Py_ssize_t idx[P] = {0}, xo = c->offset[0], y = c->row0, xc = c->col0;                  \
    for (;;) {                                                                               \
      if (!c->padded) {                                                                      \
        for (Py_ssize_t i = 0; i < m; i++, o += n) {                                         \
          const T *r = x + xo + i * sxp;                                                     \
          if (sxq == 1) run_##T(o, r, n);                                                    \
          else if (sxq == 2) for (Py_ssize_t t = 0; t < n; t++) o[t] = r[2 * t];             \
          else for (Py_ssize_t t = 0; t < n; t++) o[t] = r[t * sxq];                         \
        }                                                                                    \
      } else if (block) {                                                                    \
        Py_ssize_t lo, hi;                                                                   \
        cols_inside(xc, cq, n, cols, &lo, &hi);                                              \
        /* rows as wide as the image, stride 1 (a "same" convolution): the block is one     \
         * flat run of the image's rows (each output row's ends then read the neighbouring \
         * rows: zeroed after), rows outside the image zeroed */                           \
        Py_ssize_t ia = y < 0 ? -y : 0, ib = rows - y < m ? rows - y : m;                    \
        if (ib < ia) ib = ia;                                                                \
        const Py_ssize_t at = xo + (y + ia) * cols + xc;                                     \
        if (cq == 1 && rp == 1 && n == cols && hi > 0 && at >= 0 && at + (ib - ia) * n <= len) { \
          for (Py_ssize_t t = 0; t < ia * n; t++) o[t] = 0;                                  \
          if ((ib - ia) * n <= 32) run_##T(o + ia * n, x + at, (ib - ia) * n);               \
          else memcpy(o + ia * n, x + at, (size_t)((ib - ia) * n) * sizeof(T));             \
          for (Py_ssize_t t = ib * n; t < m * n; t++) o[t] = 0;                              \
          if (lo > 0 || hi < n)                                                              \
            for (Py_ssize_t i = ia; i < ib; i++) {                                           \
              for (Py_ssize_t t = 0; t < lo; t++) o[i * n + t] = 0;                          \
              for (Py_ssize_t t = hi; t < n; t++) o[i * n + t] = 0;                          \
            }                                                                                \
          o += m * n;                                                                        \
        } else                                                                               \
        for (Py_ssize_t i = 0; i < m; i++, o += n) {                                         \
          const Py_ssize_t yy = y + i * rp, at = xo + yy * cols + xc;                        \
          if (yy < 0 || yy >= rows || hi == 0) {                                             \
            memset(o, 0, (size_t)n * sizeof(T));                                             \
            continue;                                                                        \
          }                                                                                  \
          if (cq == 1 && at >= 0 && at + n <= len) {                                         \
            /* the whole run (its ends may read the neighbouring row: zeroed after) */      \
            run_##T(o, x + at, n);                                                           \
            for (Py_ssize_t t = 0; t < lo; t++) o[t] = 0;                                    \
            for (Py_ssize_t t = hi; t < n; t++) o[t] = 0;                                    \
            continue;                                                                        \
          }                                                                                  \
          const T *r = x + xo + yy * cols + xc;                                              \
          for (Py_ssize_t t = 0; t < lo; t++) o[t] = 0;                                      \
          if (cq == 2) /* (a constant step: even lanes, vectorised) */                       \
            for (Py_ssize_t t = lo; t < hi; t++) o[t] = r[2 * t];                            \
          else                                                                               \
            for (Py_ssize_t t = lo; t < hi; t++) o[t] = r[t * cq];                           \
          for (Py_ssize_t t = hi; t < n; t++) o[t] = 0;                                      \
        }                                                                                    \
      } else { /* (any other padded view: tap by tap) */                                     \
        for (Py_ssize_t i = 0; i < m; i++)                                                   \
          for (Py_ssize_t t = 0; t < n; t++, o++) {                                          \
            Py_ssize_t yy = y + i * rp + t * rs[Q], xx = xc + i * cs[P] + t * cq;            \
            *o = yy < 0 || yy >= rows || xx < 0 || xx >= cols                                \
                     ? (T)0 : x[xo + i * sxp + t * sxq + yy * cols + xx];                    \
          }                                                                                  \
      }                                                                                      \
      int k = P - 1;                                                                         \
      for (; k >= 0; k--) {                                                                  \
        xo += xs[k]; y += rs[k]; xc += cs[k];                                                \
        if (++idx[k] < e[k]) break;                                                          \
        xo -= e[k] * xs[k]; y -= e[k] * rs[k]; xc -= e[k] * cs[k];                           \
        idx[k] = 0;                                                                          \
      }                                                                                      \
      if (k < 0) return;                                                                     \
    }                                                                                        \
  }
PACK(float)
PACK(double)

static PyObject *pack(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *x, *out, *params;
  if (!PyArg_ParseTuple(args, "OOO", &x, &out, &params)) return NULL;
  conv_t c;
  if (parse(params, &c) < 0) return NULL;
  c.op = CONV;
  /* out: C-contiguous in slot order from its offset; no weights */
  Py_ssize_t step = 1;
  int ok = !c.accumulate && c.offset[1] == 0;
  for (int k = NDIM - 1; k >= 0; k--) {
    ok = ok && c.stride[1][k] == 0 && (c.ext[k] == 1 || c.stride[2][k] == step);
    step *= c.ext[k];
  }
  if (!ok) {
    PyErr_SetString(PyExc_ValueError, "params: pack writes a fresh C-contiguous out, with no weights");
    return NULL;
  }
  Py_buffer bx, bo;
  int dbl = 0;
  if (wrc_buffer(x, &bx, "f", 4, 0, "x") < 0) {
    PyErr_Clear();
    if (wrc_buffer(x, &bx, "d", 8, 0, "x") < 0) return NULL;
    dbl = 1;
  }
  if (wrc_buffer(out, &bo, dbl ? "d" : "f", dbl ? 8 : 4, 1, "out") < 0) {
    PyBuffer_Release(&bx);
    return NULL;
  }
  PyObject *result = NULL;
  Py_ssize_t item = dbl ? 8 : 4;
  if (inside(&c, 0, bx.len / item, "x") == 0 && inside(&c, 2, bo.len / item, "out") == 0) {
    Py_BEGIN_ALLOW_THREADS
    if (dbl) pack_double(&c, (const double *)bx.buf, bx.len / 8, (double *)bo.buf + c.offset[2]);
    else pack_float(&c, (const float *)bx.buf, bx.len / 4, (float *)bo.buf + c.offset[2]);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
  }
  PyBuffer_Release(&bx); PyBuffer_Release(&bo);
  return result;
}

static PyMethodDef methods[] = {
    {"conv", conv, METH_VARARGS,
     "conv(x, w, out, params): a depthwise convolution over strided views of float32 buffers"},
    {"pool", pool, METH_VARARGS,
     "pool(x, out, op, params): a max ('max') or sum ('sum') pool over strided views of float32 "
     "buffers"},
    {"pack", pack, METH_VARARGS,
     "pack(x, out, params): the view of x over the loop slots (a convolution's im2col) into "
     "the C-contiguous out"},
    {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_wrc_window", NULL, -1, methods, NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit__wrc_window(void) { return wrc_import_numpy() < 0 ? NULL : PyModule_Create(&def); }
