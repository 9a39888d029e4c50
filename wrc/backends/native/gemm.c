/* Small float32 GEMMs of the NumPy JIT (`emit.py` `matmul_into`): out[M, N] = a[M, K] @ b[K, N],
 * three C-contiguous 2-d arrays. The 64x64 CNN exports of the zoo run GEMMs of a few
 * thousand to a few hundred thousand products ([4, 16] @ [16, 225], a fire module's squeeze),
 * where `np.matmul`'s own call (~1.5-2 us: the ufunc's argument parsing, its loop set-up and
 * OpenBLAS's dispatch) costs more than the products; this call costs ~0.2 us. The JIT takes
 * it only below `kernels.SMALL_GEMM` products, where it measured faster
 * (docs/performance.md "CNN inference (session 7)"); larger ones stay BLAS's.
 *
 * Blocks of 4 rows x 16 columns of `out` are summed in 8 vector registers over k (each b row
 * read once a block, each a element broadcast), so the loop is bound by the FMA units, not by
 * loads and stores; the last rows take blocks of 3, 2 or 1, the last columns (fewer than 16)
 * a copy of b's columns into a zero-padded k x 16 panel. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast") /* a * b + c as one FMA (`-std=c11` turns it off) */
#endif
#include "native.h"

#include <stdint.h>

#define NR 16
#define MR 6 /* 12 accumulators, 2 rows of b, a broadcast: 15 of the 16 vector registers */
#define NOGIL_PRODUCTS 65536 /* below this the GIL's release costs more than it frees */

typedef float v8 __attribute__((vector_size(32), aligned(4)));

/* out[0:mr, 0:16] = a[0:mr, :] @ b[:, 0:16] (rows of a `lda` apart, of b and out `ldb`, `ldo`) */
static inline __attribute__((always_inline)) void block(int mr, Py_ssize_t k, const float *a, Py_ssize_t lda,
                                                        const float *b, Py_ssize_t ldb, float *o, Py_ssize_t ldo) {
  v8 acc[MR][2] = {{{0}}};
  for (Py_ssize_t p = 0; p < k; p++) {
    v8 b0 = *(const v8 *)(b + p * ldb), b1 = *(const v8 *)(b + p * ldb + 8);
    __asm__("" : "+x"(b0), "+x"(b1)); /* in registers: one load each, not one per row's FMA */
    for (int r = 0; r < mr; r++) {
      float x = a[r * lda + p];
      acc[r][0] += x * b0;
      acc[r][1] += x * b1;
    }
  }
  for (int r = 0; r < mr; r++) {
    *(v8 *)(o + r * ldo) = acc[r][0];
    *(v8 *)(o + r * ldo + 8) = acc[r][1];
  }
}

/* One column panel of 16: every row of out, in blocks of MR rows (then fewer). */
static void panel(Py_ssize_t m, Py_ssize_t k, const float *a, const float *b, Py_ssize_t ldb, float *o,
                  Py_ssize_t ldo) {
  Py_ssize_t i = 0;
  for (; i + MR <= m; i += MR) block(MR, k, a + i * k, k, b, ldb, o + i * ldo, ldo);
  switch (m - i) {
    case 5: block(5, k, a + i * k, k, b, ldb, o + i * ldo, ldo); break;
    case 4: block(4, k, a + i * k, k, b, ldb, o + i * ldo, ldo); break;
    case 3: block(3, k, a + i * k, k, b, ldb, o + i * ldo, ldo); break;
    case 2: block(2, k, a + i * k, k, b, ldb, o + i * ldo, ldo); break;
    case 1: block(1, k, a + i * k, k, b, ldb, o + i * ldo, ldo); break;
    default: break;
  }
}

/* out = a @ b; `tail` holds k x 16 + m x 16 floats when n is not a multiple of 16. */
static void gemm(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const float *a, const float *b, float *o, float *tail) {
  Py_ssize_t j = 0;
  for (; j + NR <= n; j += NR) panel(m, k, a, b + j, n, o + j, n);
  Py_ssize_t w = n - j;
  if (w == 0) return;
  float *pb = tail, *po = tail + k * NR;
  for (Py_ssize_t p = 0; p < k; p++) {
    memcpy(pb + p * NR, b + p * n + j, (size_t)w * sizeof(float));
    memset(pb + p * NR + w, 0, (size_t)(NR - w) * sizeof(float));
  }
  panel(m, k, a, pb, NR, po, NR);
  for (Py_ssize_t i = 0; i < m; i++) memcpy(o + i * n + j, po + i * NR, (size_t)w * sizeof(float));
}

/* out[i, j] = a[i, :] . bt[j, :] (bt: b transposed, C-contiguous [n, k]): matrix-vector
 * products and b's that are a C-contiguous matrix transposed (a squeeze-excite layer's
 * weight, a global average pool's column of ones), as dot products in 4 x 8 lanes. */
static void dots(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const float *a, const float *bt, float *o) {
  for (Py_ssize_t i = 0; i < m; i++)
    for (Py_ssize_t j = 0; j < n; j++) {
      const float *x = a + i * k, *y = bt + j * k;
      v8 s[4] = {{0}};
      Py_ssize_t p = 0;
      for (; p + 32 <= k; p += 32)
        for (int q = 0; q < 4; q++) s[q] += *(const v8 *)(x + p + 8 * q) * *(const v8 *)(y + p + 8 * q);
      for (; p + 8 <= k; p += 8) s[0] += *(const v8 *)(x + p) * *(const v8 *)(y + p);
      v8 t = (s[0] + s[1]) + (s[2] + s[3]);
      float sum = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
      for (; p < k; p++) sum += x[p] * y[p];
      o[i * n + j] = sum;
    }
}

/* A float32 array as a matrix: its last dim the columns, the others (C-contiguous) the rows;
 * `transposed`: b, also taken as a C-contiguous [cols, rows] matrix transposed (2-d). */
static int matrix(PyObject *obj, Py_buffer *view, int writable, const char *what, Py_ssize_t *rows,
                  Py_ssize_t *cols, int *transposed) {
  PyArrayObject *arr = (PyArrayObject *)obj;
  if (!PyArray_Check(obj) || PyArray_NDIM(arr) < 2 || (transposed && PyArray_NDIM(arr) != 2)) {
    PyErr_Format(PyExc_ValueError, "%s: expected a %s array", what, transposed ? "2-d" : "2-d or more");
    return -1;
  }
  *cols = PyArray_DIM(arr, PyArray_NDIM(arr) - 1);
  *rows = *cols ? PyArray_SIZE(arr) / *cols : 0;
  if (transposed && (*transposed = !PyArray_IS_C_CONTIGUOUS(arr) && PyArray_IS_F_CONTIGUOUS(arr))) {
    if (PyArray_TYPE(arr) != NPY_FLOAT32 || !PyArray_ISNOTSWAPPED(arr)) {
      PyErr_Format(PyExc_ValueError, "%s: expected items of format f", what);
      return -1;
    }
    memset(view, 0, sizeof(*view));
    view->buf = PyArray_DATA(arr);
    view->len = PyArray_NBYTES(arr);
    return 0;
  }
  return wrc_buffer(obj, view, "f", 4, writable, what);
}

static int overlap(const Py_buffer *x, const Py_buffer *y) {
  const char *a = x->buf, *b = y->buf;
  return x->len > 0 && y->len > 0 && a < b + y->len && b < a + x->len;
}

static void product(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, const float *a, const float *b, int transposed,
                    float *o, float *tail) {
  if (transposed) {
    dots(m, k, n, a, b, o);
  } else if (n < 8) { /* b's columns as rows of a scratch: dot products */
    for (Py_ssize_t p = 0; p < k; p++)
      for (Py_ssize_t j = 0; j < n; j++) tail[j * k + p] = b[p * n + j];
    dots(m, k, n, a, tail, o);
  } else {
    gemm(m, k, n, a, b, o, tail);
  }
}

static PyObject *matmul(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  (void)self;
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "matmul(a, b, out)");
    return NULL;
  }
  Py_buffer ba, bb, bo;
  Py_ssize_t m, k, k2, n, m2, n2;
  int transposed = 0;
  if (matrix(args[0], &ba, 0, "a", &m, &k, NULL) < 0) return NULL;
  if (matrix(args[1], &bb, 0, "b", &k2, &n, &transposed) < 0) { PyBuffer_Release(&ba); return NULL; }
  if (matrix(args[2], &bo, 1, "out", &m2, &n2, NULL) < 0) { PyBuffer_Release(&ba); PyBuffer_Release(&bb); return NULL; }
  PyObject *result = NULL;
  float *tail = NULL, *into = bo.buf;
  int nd = PyArray_NDIM((PyArrayObject *)args[0]);
  if (k2 != k || m2 != m || n2 != n || nd != PyArray_NDIM((PyArrayObject *)args[2]) ||
      !PyArray_CompareLists(PyArray_DIMS((PyArrayObject *)args[0]), PyArray_DIMS((PyArrayObject *)args[2]), nd - 1)) {
    PyErr_Format(PyExc_ValueError, "matmul: shapes [%zd, %zd] @ [%zd, %zd] into [%zd, %zd]", m, k, k2, n, m2, n2);
    goto done;
  }
  int copy = overlap(&bo, &ba) || overlap(&bo, &bb); /* (as np.matmul: a result written over its operand) */
  size_t tails = transposed ? 0 : n < 8 ? (size_t)(k * n) : n % NR ? (size_t)(k + m) * NR : 0;
  size_t extra = copy ? (size_t)(m * n) : 0;
  if (tails + extra > 0) {
    tail = PyMem_RawMalloc((tails + extra) * sizeof(float));
    if (!tail) { PyErr_NoMemory(); goto done; }
    if (copy) into = tail + tails;
  }
  if (m > 0 && n > 0) {
    if (m * k * n >= NOGIL_PRODUCTS) {
      Py_BEGIN_ALLOW_THREADS
      product(m, k, n, ba.buf, bb.buf, transposed, into, tail);
      Py_END_ALLOW_THREADS
    } else {
      product(m, k, n, ba.buf, bb.buf, transposed, into, tail);
    }
    if (copy) memcpy(bo.buf, into, (size_t)(m * n) * sizeof(float));
  }
  result = Py_NewRef(Py_None);
done:
  PyMem_RawFree(tail);
  PyBuffer_Release(&ba); PyBuffer_Release(&bb); PyBuffer_Release(&bo);
  return result;
}

static PyMethodDef methods[] = {
    {"matmul", (PyCFunction)(void (*)(void))matmul, METH_FASTCALL,
     "matmul(a, b, out): out = a @ b for float32 arrays: a and out C-contiguous [..., m, k] and "
     "[..., m, n], b a C-contiguous [k, n] or the transpose of one (small GEMMs)"},
    {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_wrc_gemm", NULL, -1, methods, NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit__wrc_gemm(void) { return wrc_import_numpy() < 0 ? NULL : PyModule_Create(&def); }
