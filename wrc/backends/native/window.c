/* Window kernels of the NumPy JIT (`kernels.NativeWindow`): a depthwise convolution, one
 * filter per channel, as one pass over the output with the window's products in registers
 * (NumPy makes one pass over the input per window point, or copies every window).
 *
 *   out[i0, i1, i2, i3, j] (+)= sum over r, p, q of
 *       x[i0, i1, i2, i3, j, r, p, q] * w[i0, i1, i2, i3, j, r, p, q]
 *
 * over strided views of three C-contiguous float32 buffers (float64 keeps the NumPy forms:
 * its loops would double the one-time build): each operand is an element offset and a stride
 * per loop dim (0 where it does not use the dim), as the JIT's access analysis gives them; i0..i3 are the outer loop dims (batch, channel, output row), j the output column,
 * p, q the window's rows and columns, r a third window dim (channels per group). Every
 * element the views reach is checked to lie inside its buffer before anything is read.
 *
 * Windows of K x K points (K = 3, 5, 7) over a column stride of 1 or 2, with unit window
 * columns and a contiguous output row, run a loop specialised per (K, stride): the K*K
 * weights of a plane in a local array, the window's products summed in vector registers
 * (`line`; narrow planes as one wide row). Anything else takes the generic loop, which reads
 * the same views with runtime extents and strides. The GIL is released around the loops.
 * (Measured forms: bench/depthwise.py, docs/performance.md "compiled window kernels".) */
#include "native.h"

enum { NDIM = 8 }; /* i0, i1, i2, i3, j, r, p, q */
enum { J = 4, R = 5, P = 6, Q = 7 };

typedef struct {
  Py_ssize_t ext[NDIM];
  Py_ssize_t offset[3];        /* x, w, out */
  Py_ssize_t stride[3][NDIM];  /* x, w, out (out: 0 along r, p, q) */
  int accumulate;              /* add into the output instead of overwriting it */
} conv_t;

#ifdef __FMA__
#define MADD_float(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define MADD_float(a, b, c) ((a) * (b) + (c))
#endif

/* The generic loop: any extents and strides. */
#define GENERIC(T)                                                                           \
  static void generic_##T(const conv_t *c, const T *x, const T *w, T *o) {                  \
    const Py_ssize_t *e = c->ext, *xs = c->stride[0], *ws = c->stride[1], *os = c->stride[2]; \
    for (Py_ssize_t i0 = 0; i0 < e[0]; i0++)                                                 \
      for (Py_ssize_t i1 = 0; i1 < e[1]; i1++)                                               \
        for (Py_ssize_t i2 = 0; i2 < e[2]; i2++)                                             \
          for (Py_ssize_t i3 = 0; i3 < e[3]; i3++)                                           \
            for (Py_ssize_t j = 0; j < e[J]; j++) {                                          \
              const T *xb = x + c->offset[0] + i0 * xs[0] + i1 * xs[1] + i2 * xs[2] +        \
                            i3 * xs[3] + j * xs[J];                                          \
              const T *wb = w + c->offset[1] + i0 * ws[0] + i1 * ws[1] + i2 * ws[2] +        \
                            i3 * ws[3] + j * ws[J];                                          \
              T *ob = o + c->offset[2] + i0 * os[0] + i1 * os[1] + i2 * os[2] + i3 * os[3] + \
                      j * os[J];                                                             \
              T acc = 0;                                                                     \
              for (Py_ssize_t r = 0; r < e[R]; r++)                                          \
                for (Py_ssize_t p = 0; p < e[P]; p++)                                        \
                  for (Py_ssize_t q = 0; q < e[Q]; q++)                                      \
                    acc = MADD_##T(xb[r * xs[R] + p * xs[P] + q * xs[Q]],                    \
                                   wb[r * ws[R] + p * ws[P] + q * ws[Q]], acc);             \
              *ob = c->accumulate ? *ob + acc : acc;                                         \
            }                                                                                \
  }

/* K x K windows, column stride S, unit window columns (x stride 1 along q), one weight per
 * (i0..i3) (w stride 0 along j, r absent), a contiguous output row (out stride 1 along j).
 *
 * `line` sums the windows of `n` outputs whose window origins are S apart from `xb` (rows
 * `xp` apart) into `dst`: with stride 1, blocks of BLOCK outputs, each window point's weight
 * read once per block and its products added to BLOCK sums held in vector registers (one
 * load per product instead of two); then (stride 2: all) outputs one by one, vectorised
 * across outputs (stride-2 blocks measured 3-4x slower: the loads do not vectorise). */
#define BLOCK_float 64

#define LINE(T, K, S)                                                                        \
  static inline void line_##T##_##K##_##S(const T *restrict xb, Py_ssize_t xp,              \
                                          const T *restrict wk, T *restrict dst,            \
                                          Py_ssize_t n) {                                    \
    enum { B = BLOCK_##T };                                                                  \
    Py_ssize_t t = 0;                                                                        \
    for (; S == 1 && t + B <= n; t += B) {                                                   \
      T acc[B];                                                                              \
      for (int u = 0; u < B; u++) acc[u] = 0;                                                \
      for (int p = 0; p < K; p++)                                                            \
        _Pragma("GCC unroll 8") for (int q = 0; q < K; q++) {                                \
          const T wv = wk[p * K + q], *xr = xb + t * S + p * xp + q;                         \
          for (int u = 0; u < B; u++) acc[u] = MADD_##T(xr[u * S], wv, acc[u]);              \
        }                                                                                    \
      for (int u = 0; u < B; u++) dst[t + u] = acc[u];                                       \
    }                                                                                        \
    for (; t < n; t++) {                                                                     \
      const T *xj = xb + t * S;                                                              \
      T acc = 0;                                                                             \
      _Pragma("GCC unroll 8") for (int p = 0; p < K; p++)                                    \
        _Pragma("GCC unroll 8") for (int q = 0; q < K; q++)                                  \
          acc = MADD_##T(xj[p * xp + q], wk[p * K + q], acc);                                \
      dst[t] = acc;                                                                          \
    }                                                                                        \
  }

/* Rows of fewer than WIDE_COLS outputs are too short for `line`'s blocks: with stride 1, when
 * the row dim i3 steps one image row of `xp` elements, output (i, j) reads from i * xp + j,
 * so the plane runs as one wide row of (rows - 1) * xp + cols outputs (at most WIDE_SPAN;
 * the K - 1 columns between rows are computed and dropped), whose kept columns are copied
 * out. (With stride 2 every other column would be dropped: measured slower.) */
enum { WIDE_COLS = 32, WIDE_SPAN = 4096 };

#define SQUARE(T, K, S)                                                                      \
  LINE(T, K, S)                                                                              \
  static void square_##T##_##K##_##S(const conv_t *c, const T *restrict x,                  \
                                     const T *restrict w, T *restrict o) {                  \
    const Py_ssize_t *e = c->ext, *xs = c->stride[0], *ws = c->stride[1], *os = c->stride[2]; \
    const Py_ssize_t xp = xs[P], n = e[J];                                                   \
    const int wide = S == 1 && n < WIDE_COLS && xs[3] == S * xp && xp >= n &&                \
                     (e[3] - 1) * xp + n <= WIDE_SPAN;                                       \
    T tmp[WIDE_SPAN];                                                                        \
    for (Py_ssize_t i0 = 0; i0 < e[0]; i0++)                                                 \
      for (Py_ssize_t i1 = 0; i1 < e[1]; i1++)                                               \
        for (Py_ssize_t i2 = 0; i2 < e[2]; i2++) {                                           \
          const T *xb = x + c->offset[0] + i0 * xs[0] + i1 * xs[1] + i2 * xs[2];             \
          const T *wb = w + c->offset[1] + i0 * ws[0] + i1 * ws[1] + i2 * ws[2];             \
          T *ob = o + c->offset[2] + i0 * os[0] + i1 * os[1] + i2 * os[2];                   \
          T wk[K * K];                                                                       \
          for (int p = 0; p < K; p++)                                                        \
            for (int q = 0; q < K; q++) wk[p * K + q] = wb[p * ws[P] + q * ws[Q]];           \
          if (wide) {                                                                        \
            line_##T##_##K##_##S(xb, xp, wk, tmp, (e[3] - 1) * xp + n);                      \
            for (Py_ssize_t i = 0; i < e[3]; i++)                                            \
              for (Py_ssize_t j = 0; j < n; j++)                                             \
                ob[i * os[3] + j] = c->accumulate ? ob[i * os[3] + j] + tmp[i * xp + j]      \
                                                  : tmp[i * xp + j];                         \
            continue;                                                                        \
          }                                                                                  \
          for (Py_ssize_t i3 = 0; i3 < e[3]; i3++) {                                         \
            if (!c->accumulate) {                                                            \
              line_##T##_##K##_##S(xb + i3 * xs[3], xp, wk, ob + i3 * os[3], n);             \
              continue;                                                                      \
            }                                                                                \
            for (Py_ssize_t j0 = 0; j0 < n; j0 += WIDE_SPAN) {                               \
              Py_ssize_t m = n - j0 < WIDE_SPAN ? n - j0 : WIDE_SPAN;                        \
              line_##T##_##K##_##S(xb + i3 * xs[3] + j0 * S, xp, wk, tmp, m);                \
              for (Py_ssize_t j = 0; j < m; j++) ob[i3 * os[3] + j0 + j] += tmp[j];          \
            }                                                                                \
          }                                                                                  \
        }                                                                                    \
  }

#define KERNELS(T)                                                                           \
  GENERIC(T)                                                                                 \
  SQUARE(T, 3, 1) SQUARE(T, 3, 2) SQUARE(T, 5, 1) SQUARE(T, 5, 2) SQUARE(T, 7, 1) SQUARE(T, 7, 2) \
  static void run_##T(const conv_t *c, const T *x, const T *w, T *o) {                       \
    const Py_ssize_t *e = c->ext, *xs = c->stride[0], *ws = c->stride[1], *os = c->stride[2]; \
    Py_ssize_t k = e[P];                                                                     \
    if (e[Q] == k && e[R] == 1 && xs[Q] == 1 && ws[J] == 0 && ws[3] == 0 && os[J] == 1 &&    \
        (xs[J] == 1 || xs[J] == 2)) {                                                        \
      int s1 = xs[J] == 1;                                                                   \
      switch (k) {                                                                           \
        case 3: (s1 ? square_##T##_3_1 : square_##T##_3_2)(c, x, w, o); return;              \
        case 5: (s1 ? square_##T##_5_1 : square_##T##_5_2)(c, x, w, o); return;              \
        case 7: (s1 ? square_##T##_7_1 : square_##T##_7_2)(c, x, w, o); return;              \
        default: break;                                                                      \
      }                                                                                      \
    }                                                                                        \
    generic_##T(c, x, w, o);                                                                 \
  }

KERNELS(float)

/* The params tuple: accumulate, the 8 extents, then per operand (x, w, out) its element
 * offset and its 8 strides. */
enum { NPARAMS = 1 + NDIM + 3 * (1 + NDIM) };

static int parse(PyObject *params, conv_t *c) {
  if (!PyTuple_Check(params) || PyTuple_GET_SIZE(params) != NPARAMS) {
    PyErr_Format(PyExc_ValueError, "params: expected a tuple of %d ints", (int)NPARAMS);
    return -1;
  }
  Py_ssize_t v[NPARAMS];
  for (Py_ssize_t i = 0; i < NPARAMS; i++) {
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
  return 0;
}

/* Whether every element operand `a`'s view reaches lies in a buffer of `len` items. */
static int inside(const conv_t *c, int a, Py_ssize_t len, const char *what) {
  Py_ssize_t lo = c->offset[a], hi = c->offset[a], d;
  for (int k = 0; k < NDIM; k++) {
    if (__builtin_mul_overflow(c->stride[a][k], c->ext[k] - 1, &d) ||
        __builtin_add_overflow(d >= 0 ? hi : lo, d, d >= 0 ? &hi : &lo)) {
      lo = -1;
      break;
    }
  }
  if (lo >= 0 && hi < len) return 0;
  PyErr_Format(PyExc_ValueError, "%s: the view reaches outside the buffer", what);
  return -1;
}

static PyObject *conv(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *x, *w, *out, *params;
  if (!PyArg_ParseTuple(args, "OOOO", &x, &w, &out, &params)) return NULL;
  conv_t c;
  if (parse(params, &c) < 0) return NULL;
  for (int k = R; k < NDIM; k++)
    if (c.stride[2][k] != 0) {
      PyErr_SetString(PyExc_ValueError, "out: a window dim must not move the output");
      return NULL;
    }
  Py_buffer bx, bw, bo;
  if (wrc_buffer(x, &bx, "f", 4, 0, "x") < 0) return NULL;
  if (wrc_buffer(w, &bw, "f", 4, 0, "w") < 0) { PyBuffer_Release(&bx); return NULL; }
  if (wrc_buffer(out, &bo, "f", 4, 1, "out") < 0) {
    PyBuffer_Release(&bx); PyBuffer_Release(&bw); return NULL;
  }
  PyObject *result = NULL;
  if (inside(&c, 0, bx.len / 4, "x") < 0 || inside(&c, 1, bw.len / 4, "w") < 0 ||
      inside(&c, 2, bo.len / 4, "out") < 0)
    goto done;
  Py_BEGIN_ALLOW_THREADS
  run_float(&c, bx.buf, bw.buf, bo.buf);
  Py_END_ALLOW_THREADS
  result = Py_NewRef(Py_None);
done:
  PyBuffer_Release(&bx); PyBuffer_Release(&bw); PyBuffer_Release(&bo);
  return result;
}

static PyMethodDef methods[] = {
    {"conv", conv, METH_VARARGS,
     "conv(x, w, out, params): a depthwise convolution over strided views of float32 buffers"},
    {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_wrc_window", NULL, -1, methods, NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit__wrc_window(void) { return PyModule_Create(&def); }
