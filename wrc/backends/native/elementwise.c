/* _wrc_elementwise: a chain of elementwise ops run as one call (numpy_jit/fuse.py).
 *
 * run(program, *arrays): `program` is a read-only int64 array the JIT builds once, when it
 * generates code (layout below); `arrays` are the operands, C-contiguous float32 (or
 * float64) buffers. The loop space is walked in blocks of up to BLOCK elements (of a row,
 * or of several short rows: elementwise_run.h); per block, the instructions run in order
 * over registers of a block's values, so the chain's intermediates never reach memory and NumPy's per-call cost (iterator
 * setup, broadcasting) is paid once. A register loaded from a contiguous operand points
 * into it (no copy); stores come last in the program, so a store never changes a register
 * an instruction reads afterwards.
 *
 * Program (int64):
 *   dtype (0: float32, 1: float64), ndim n, extents[n],
 *   operands m, per operand: written (0/1), offset, strides[n] (elements),
 *   registers r, instructions k, per instruction: opcode, d, a, b, c.
 * A constant's value is the bit pattern of a double in `a`. OP_PASS ends a pass: a row's
 * sums and maxima (OP_SUM, OP_MAX_OF) accumulate over the whole row in their pass and are
 * registers holding that value in the passes after it.
 * Registers < r, operands < m, and every operand's reach within its buffer are checked on
 * each call. */
#if defined(__GNUC__) && !defined(__clang__)
/* sqrt as one instruction, and conditional selects without branches: the loops vectorize */
#pragma GCC optimize("no-math-errno", "no-trapping-math", "fp-contract=fast")
#endif
#include "native.h"

#include <math.h>
#include <stdint.h>

#define BLOCK 256
#define MAX_DIMS 8
#define MAX_OPERANDS 32
#define MAX_REGS 32
#define MAX_INSTRS 256
#define NOGIL_ELEMENTS 16384 /* below this the GIL's release costs more than it frees */

enum {
  OP_LOAD, OP_STORE, OP_CONST,
  OP_NEG, OP_EXP, OP_LOG, OP_SQRT, OP_TANH, OP_ERF, OP_ABS,
  OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN, OP_FMAX, OP_FMIN, OP_POW,
  OP_CMP, OP_SELECT,
  OP_SUM, OP_MAX_OF, OP_PASS,
  OP_SIGMOID, /* 1 / (1 + exp(-x)): fuse.py recognises the chain */
  OP_MULADD,  /* a * b + c, the product rounded first (fuse.py: a product only a sum reads) */
  N_OPCODES
};

typedef struct {
  int64_t op, d, a, b, c;
} instr_t;

enum { FULL, UNIFORM, PER_ROW }; /* what a register holds (elementwise_run.h): a block's values, one, one a row */

typedef struct {
  int dtype, ndim, nops, nregs, ninstrs;
  Py_ssize_t ext[MAX_DIMS];
  int written[MAX_OPERANDS];
  Py_ssize_t offset[MAX_OPERANDS];
  Py_ssize_t stride[MAX_OPERANDS][MAX_DIMS];
  const instr_t *code;
  char *base[MAX_OPERANDS];
} prog_t;

/* float32 erf: the rational approximation of wrc/backends/erf.py (Eigen's and XLA's),
 * x * P(x^2) / Q(x^2) on x clamped to [-4, 4]; branch-free, so the loop vectorizes. */
static inline float erf32(float x) {
  float c = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
  if (x != x) c = x;
  float xx = c * c;
  float p = xx * -2.72614225801306e-10f + 2.77068142495902e-08f;
  p = p * xx + -2.10102402082508e-06f;
  p = p * xx + -5.69250639462346e-05f;
  p = p * xx + -7.34990630326855e-04f;
  p = p * xx + -2.95459980854025e-03f;
  p = p * xx + -1.60960333262415e-02f;
  float q = xx * -1.45660718464996e-05f + -2.13374055278905e-04f;
  q = q * xx + -1.68282697438203e-03f;
  q = q * xx + -7.37332916720468e-03f;
  q = q * xx + -1.42647390514189e-02f;
  return p / q * c;
}

/* float32 exp and tanh, branch-free (Cephes' expf and tanhf: within 2 ulp) so that their
 * loops vectorize: libm's are called element by element, 4-6x slower than NumPy's SIMD. */
static inline float pow2i(int n) { /* 2^n for n in [-126, 127] */
  union { int32_t i; float f; } u = {(int32_t)((n + 127) << 23)};
  return u.f;
}

/* e^c = 2^k e^r, k = round(c / ln 2) (adding 1.5 * 2^23 rounds: the sum's low bits are k),
 * e^r by Cephes' polynomial on |r| <= ln 2 / 2; for c in [-104, 89], not NaN. */
static inline float exp32_reduced(float c, int32_t *k) {
  const float magic = 12582912.0f;
  float t = c * 1.44269504088896341f + magic;
  float n = t - magic;
  union { float f; int32_t i; } bits = {t};
  *k = bits.i - 0x4B400000;
  float r = c - n * 0.693359375f + n * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  return y * r * r + r + 1.0f;
}

static inline float exp32(float x) {
  float c = x > -104.0f ? x : -104.0f; /* (NaN: -104, its result replaced below) */
  c = c < 89.0f ? c : 89.0f;
  int32_t k;
  float y = exp32_reduced(c, &k);
  int32_t k1 = k >> 1; /* 2^k as two factors: the result may be subnormal or overflow */
  y = y * pow2i(k1) * pow2i(k - k1);
  return x != x ? x : y;
}

/* e^a for a <= 0 (not NaN), subnormal results included, with no overflow to guard: y 2^k for
 * k in [-150, 0] is y 2^(k + 100) (normal: k + 100 added to y's exponent bits) times 2^-100,
 * rounded once, as by two factors. */
static inline float exp32_nonpositive(float a) {
  int32_t k;
  union { float f; int32_t i; } e = {exp32_reduced(a > -104.0f ? a : -104.0f, &k)};
  e.i += (k + 100) * (1 << 23);
  return e.f * 7.88860905e-31f; /* 2^-100 */
}

/* 1 / (1 + e^-x) from e = e^-|x| <= 1: 1 / (1 + e) for x >= 0, e / (1 + e) below, where small
 * values keep their relative accuracy (2 ulp). */
static inline float sigmoid32(float x) {
  float e = exp32_nonpositive(-fabsf(x));
  float s = (x >= 0.0f ? 1.0f : e) / (1.0f + e);
  return x != x ? x : s;
}

static inline double sigmoid64(double x) {
  double e = exp(-fabs(x));
  return (x >= 0.0 ? 1.0 : e) / (1.0 + e);
}

static inline float tanh32(float x) {
  float a = fabsf(x), z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  float small = p * z * x + x;
  float e = exp32_nonpositive(-2.0f * a); /* (1 - e) / (1 + e), e = e^-2|x| <= 0.29 here */
  float big = (1.0f - e) / (1.0f + e);
  big = x < 0 ? -big : big;
  return a < 0.625f || x != x ? small : big;
}

static int cmp(double a, double b, int pred) {
  int uno = a != a || b != b;
  switch (pred) { /* arith.cmpf predicates */
    case 0: return 0;
    case 1: return !uno && a == b;
    case 2: return !uno && a > b;
    case 3: return !uno && a >= b;
    case 4: return !uno && a < b;
    case 5: return !uno && a <= b;
    case 6: return !uno && a != b;
    case 7: return !uno;
    case 8: return uno || a == b;
    case 9: return uno || a > b;
    case 10: return uno || a >= b;
    case 11: return uno || a < b;
    case 12: return uno || a <= b;
    case 13: return uno || a != b;
    case 14: return uno;
    default: return 1;
  }
}

/* One function per element type: elementwise_run.h over T with its math functions. */
#define T float
#define RUN run_float
#define MULADD muladd_float
#define EXP exp32
#define TANH tanh32
#define ERF erf32
#define SIGMOID sigmoid32
#define LOG logf
#define SQRT sqrtf
#define ABS fabsf
#define FMAX fmaxf
#define FMIN fminf
#define POW powf
#include "elementwise_run.h"
#undef T
#undef RUN
#undef MULADD
#undef EXP
#undef TANH
#undef ERF
#undef SIGMOID
#undef LOG
#undef SQRT
#undef ABS
#undef FMAX
#undef FMIN
#undef POW
#define T double
#define RUN run_double
#define MULADD muladd_double
#define EXP exp
#define TANH tanh
#define ERF erf
#define SIGMOID sigmoid64
#define LOG log
#define SQRT sqrt
#define ABS fabs
#define FMAX fmax
#define FMIN fmin
#define POW pow
#include "elementwise_run.h"

/* Reads and checks the program's layout (not the arrays). */
static int parse(const int64_t *w, Py_ssize_t len, prog_t *p) {
  Py_ssize_t i = 0;
#define NEXT(v) do { if (i >= len) goto bad; (v) = w[i++]; } while (0)
  int64_t v;
  NEXT(v); if (v != 0 && v != 1) goto bad; p->dtype = (int)v;
  NEXT(v); if (v < 1 || v > MAX_DIMS) goto bad; p->ndim = (int)v;
  for (int k = 0; k < p->ndim; k++) { NEXT(v); if (v < 0) goto bad; p->ext[k] = (Py_ssize_t)v; }
  NEXT(v); if (v < 1 || v > MAX_OPERANDS) goto bad; p->nops = (int)v;
  for (int q = 0; q < p->nops; q++) {
    NEXT(v); p->written[q] = v != 0;
    NEXT(v); p->offset[q] = (Py_ssize_t)v;
    for (int k = 0; k < p->ndim; k++) { NEXT(v); p->stride[q][k] = (Py_ssize_t)v; }
  }
  NEXT(v); if (v < 1 || v > MAX_REGS) goto bad; p->nregs = (int)v;
  NEXT(v); if (v < 1 || v > MAX_INSTRS || len - i != 5 * v) goto bad; p->ninstrs = (int)v;
  p->code = (const instr_t *)(w + i);
  for (int k = 0; k < p->ninstrs; k++) {
    const instr_t *in = &p->code[k];
    int64_t nr = p->nregs, op = in->op;
    if (op < 0 || op >= N_OPCODES) goto bad;
    if (op == OP_PASS) continue;
    if (op == OP_STORE) {
      if (in->d < 0 || in->d >= p->nops || !p->written[in->d] || in->a < 0 || in->a >= nr) goto bad;
      continue;
    }
    if (in->d < 0 || in->d >= nr) goto bad;
    if (op == OP_LOAD && (in->a < 0 || in->a >= p->nops)) goto bad;
    if (op >= OP_NEG && (in->a < 0 || in->a >= nr)) goto bad;
    if (((op >= OP_ADD && op <= OP_SELECT) || op == OP_MULADD) && (in->b < 0 || in->b >= nr)) goto bad;
    if ((op == OP_SELECT || op == OP_MULADD) && (in->c < 0 || in->c >= nr)) goto bad;
  }
  return 0;
#undef NEXT
bad:
  PyErr_SetString(PyExc_ValueError, "program: malformed elementwise program");
  return -1;
}

static PyObject *run(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "run(program, *arrays)");
    return NULL;
  }
  Py_buffer bp, bufs[MAX_OPERANDS];
  if (wrc_buffer(args[0], &bp, "q", 8, 0, "program") < 0) {
    PyErr_SetString(PyExc_ValueError, "program: expected an int64 array");
    return NULL;
  }
  prog_t p;
  int got = 0;
  PyObject *result = NULL;
  if (parse((const int64_t *)bp.buf, bp.len / 8, &p) < 0) goto done;
  if (nargs - 1 != p.nops) {
    PyErr_Format(PyExc_TypeError, "run: the program takes %d arrays, got %zd", p.nops, nargs - 1);
    goto done;
  }
  Py_ssize_t itemsize = p.dtype ? 8 : 4, total = 1;
  for (int k = 0; k < p.ndim; k++) total *= p.ext[k];
  for (; got < p.nops; got++) {
    static const char *what[MAX_OPERANDS] = {
        "array 0", "array 1", "array 2", "array 3", "array 4", "array 5", "array 6", "array 7",
        "array 8", "array 9", "array 10", "array 11", "array 12", "array 13", "array 14", "array 15",
        "array 16", "array 17", "array 18", "array 19", "array 20", "array 21", "array 22", "array 23",
        "array 24", "array 25", "array 26", "array 27", "array 28", "array 29", "array 30", "array 31"};
    if (wrc_buffer(args[got + 1], &bufs[got], p.dtype ? "d" : "f", itemsize, p.written[got], what[got]) < 0)
      goto done;
    Py_ssize_t lo = p.offset[got], hi = p.offset[got];
    for (int k = 0; k < p.ndim; k++) {
      Py_ssize_t s = p.stride[got][k] * (p.ext[k] > 0 ? p.ext[k] - 1 : 0);
      if (s < 0) lo += s; else hi += s;
    }
    if (total > 0 && (lo < 0 || hi >= bufs[got].len / itemsize)) {
      PyErr_Format(PyExc_ValueError, "%s: the program reaches [%zd, %zd] of %zd elements", what[got], lo, hi,
                   bufs[got].len / itemsize);
      got++;
      goto done;
    }
    p.base[got] = bufs[got].buf;
  }
  if (total > 0) {
    if (total >= NOGIL_ELEMENTS) {
      Py_BEGIN_ALLOW_THREADS
      if (p.dtype) run_double(&p); else run_float(&p);
      Py_END_ALLOW_THREADS
    } else if (p.dtype) {
      run_double(&p);
    } else {
      run_float(&p);
    }
  }
  result = Py_None;
  Py_INCREF(result);
done:
  for (int q = 0; q < got; q++) PyBuffer_Release(&bufs[q]);
  PyBuffer_Release(&bp);
  return result;
}

static PyMethodDef methods[] = {
    {"run", (PyCFunction)(void (*)(void))run, METH_FASTCALL,
     "run(program, *arrays): an elementwise program over the arrays (numpy_jit/fuse.py)"},
    {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_wrc_elementwise", NULL, -1, methods};
PyMODINIT_FUNC PyInit__wrc_elementwise(void) { return wrc_import_numpy() < 0 ? NULL : PyModule_Create(&def); }
