/* The register machine's loop (elementwise.c), included once per element type with
 *   T: the element type, RUN: the function's name, EXP, TANH, ERF, SIGMOID, LOG, SQRT, ABS, FMAX,
 *   FMIN, POW: its math functions.
 *
 * The loop space is walked in blocks: per row (an index of every dim but the innermost),
 * blocks of up to BLOCK elements of the row; or, where rows are short (at most BLOCK / 2),
 * several consecutive rows of the second innermost dim as one block (a CNN's per-channel
 * tail over a 4x4 plane: 16 rows a block instead of one; a transformer's softmax over rows
 * of 17: 15 rows a block). A row's sum or maximum is then, in a block of several rows, a
 * register holding each row's value along that row.
 * Per block, the instructions of a pass run in order over registers of a block's values.
 *
 * A register is **uniform** when it holds one value for the whole block (in element 0): a
 * constant, an operand read at a stride of 0 along the block (a bias along a row, a scalar),
 * a row's sum or maximum, and whatever is computed from uniform registers only. An op reads a
 * uniform operand as a scalar (`x[j] + b`, a loop the compiler vectorizes), and an op on
 * uniform operands only runs once a block: no per-element gather of a broadcast operand.
 * In a block of several rows, a register is **per row** when it holds one value for each row
 * (element b: row b's): an operand read at a stride of 0 along the rows only (a per-channel
 * bias or gate over short planes), a row's sum or maximum, and what is computed from per-row
 * and uniform registers only (LayerNorm's `sqrt(var / n + eps)` over rows of 16: 16 values,
 * not 256). An op with a full operand spreads a per-row one along its rows first. */

/* r = x * y + z over a block's len elements, each operand its elements or, where u* is set,
 * its element 0: the product rounded before the sum (NumPy's multiply, then add: the same
 * bits), never contracted to a fused multiply-add as the file's fp-contract=fast would (the
 * function's own option; clang contracts only within an expression). A call per block. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=off")))
#endif
static void MULADD(T *r, const T *x, int ux, const T *y, int uy, const T *z, int uz, int len) {
  if (!ux && uy && uz) { /* a per-channel scale and shift: a convolution's BatchNorm */
    T a = y[0], b = z[0];
    for (int j = 0; j < len; j++) {
      T p = x[j] * a;
      r[j] = p + b;
    }
  } else if (!ux && uy && !uz) {
    T a = y[0];
    for (int j = 0; j < len; j++) {
      T p = x[j] * a;
      r[j] = p + z[j];
    }
  } else {
    for (int j = 0; j < len; j++) {
      T p = x[ux ? 0 : j] * y[uy ? 0 : j];
      r[j] = p + z[uz ? 0 : j];
    }
  }
}

static void RUN(const prog_t *p) {
  typedef T elem;
  elem scratch[MAX_REGS][BLOCK];
  elem wide[3][BLOCK]; /* uniform operands of a select or a reduction, spread over a block */
  elem acc[MAX_REGS];
  const elem *reg[MAX_REGS];
  unsigned char uni[MAX_REGS] = {0};
  int n = p->ndim;
  Py_ssize_t inner = p->ext[n - 1], idx[MAX_DIMS] = {0}, outer = 1;
  for (int k = 0; k < n - 1; k++) outer *= p->ext[k];
  for (int i = 0; i < p->ninstrs; i++) {
    if (p->code[i].op == OP_CONST) { /* constants once */
      double v;
      memcpy(&v, &p->code[i].a, sizeof v);
      scratch[p->code[i].d][0] = (elem)v;
      reg[p->code[i].d] = scratch[p->code[i].d];
      uni[p->code[i].d] = 1;
    }
  }
  /* rows a block: one, or as many short rows of dim n - 2 as fill a block */
  Py_ssize_t rows = n >= 2 && inner > 0 && inner <= BLOCK / 2 ? BLOCK / inner : 1;
  for (Py_ssize_t o = 0; o < outer;) {
    Py_ssize_t k = rows > 1 ? p->ext[n - 2] - idx[n - 2] : 1;
    if (k > rows) k = rows;
    elem *at[MAX_OPERANDS];
    for (int q = 0; q < p->nops; q++) {
      Py_ssize_t off = p->offset[q];
      for (int d = 0; d < n - 1; d++) off += idx[d] * p->stride[q][d];
      at[q] = (elem *)p->base[q] + off;
    }
    Py_ssize_t span = k * inner; /* elements of the rows this block's loop covers */
    for (int s0 = 0; s0 < p->ninstrs;) {
      int s1 = s0;
      while (s1 < p->ninstrs && p->code[s1].op != OP_PASS) s1++;
      for (int i = s0; i < s1; i++) {
        if (p->code[i].op == OP_SUM) acc[p->code[i].d] = 0;
        if (p->code[i].op == OP_MAX_OF) acc[p->code[i].d] = -INFINITY;
      }
      for (Py_ssize_t j0 = 0; j0 < span; j0 += BLOCK) {
        int len = (int)(span - j0 < BLOCK ? span - j0 : BLOCK);
        int w = k > 1 ? (int)inner : len; /* elements a row of the block */
        for (int i = s0; i < s1; i++) {
          const instr_t *in = &p->code[i];
          int op = (int)in->op, d = (int)in->d;
          elem *r = scratch[d];
          if (op == OP_CONST) continue;
          if (op == OP_LOAD || op == OP_STORE) {
            int q = op == OP_LOAD ? (int)in->a : d;
            Py_ssize_t s = p->stride[q][n - 1], s2 = n >= 2 ? p->stride[q][n - 2] : 0;
            elem *mem = at[q] + j0 * s;
            int flat = s == 1 && (k == 1 || s2 == inner); /* the block is contiguous there */
            if (op == OP_LOAD) {
              if (s == 0 && (k == 1 || s2 == 0)) {
                reg[d] = mem;
                uni[d] = 1;
              } else if (flat) {
                reg[d] = mem;
                uni[d] = 0;
              } else if (s == 0) { /* several rows, one value each */
                for (Py_ssize_t b = 0; b < k; b++) r[b] = mem[b * s2];
                reg[d] = r;
                uni[d] = PER_ROW;
              } else {
                for (Py_ssize_t b = 0; b < k; b++) {
                  const elem *src = mem + b * s2;
                  elem *dst = r + b * w;
                  for (int j = 0; j < w; j++) dst[j] = src[j * s];
                }
                reg[d] = r;
                uni[d] = 0;
              }
              continue;
            }
            const elem *v = reg[in->a];
            int u = uni[in->a];
            if (flat && u == UNIFORM) {
              elem c = v[0];
              for (int j = 0; j < len; j++) mem[j] = c;
            } else if (flat && u == FULL) {
              if (mem != v) memmove(mem, v, (size_t)len * sizeof(elem));
            } else {
              for (Py_ssize_t b = 0; b < k; b++)
                for (int j = 0; j < w; j++) mem[b * s2 + j * s] = u == UNIFORM ? v[0] : (u == PER_ROW ? v[b] : v[b * w + j]);
            }
            continue;
          }
          const elem *x = reg[in->a];
          int ux = uni[in->a];
          /* a uniform or per-row register v spread over the block's elements into dst */
#define SPREAD(dst, v, u)                                                                      \
  do {                                                                                         \
    if ((u) == UNIFORM) {                                                                      \
      elem c_ = (v)[0];                                                                        \
      for (int j_ = 0; j_ < len; j_++) (dst)[j_] = c_;                                         \
    } else {                                                                                   \
      for (Py_ssize_t b_ = 0; b_ < k; b_++) {                                                  \
        elem c_ = (v)[b_];                                                                     \
        for (int j_ = 0; j_ < w; j_++) (dst)[b_ * w + j_] = c_;                                \
      }                                                                                        \
    }                                                                                          \
  } while (0)
          if (op == OP_SUM || op == OP_MAX_OF) {
            if (ux) { /* a uniform value summed as its block of copies (the same rounding) */
              SPREAD(wide[0], x, ux);
              x = wide[0];
            }
            if (k > 1) { /* short rows, one block: each row's value, per row */
              for (Py_ssize_t b = 0; b < k; b++) {
                const elem *xb = x + b * w;
                elem t = op == OP_SUM ? 0 : -INFINITY;
                if (op == OP_SUM) {
                  elem part[8] = {0};
                  int j = 0;
                  for (; j + 8 <= w; j += 8)
                    for (int l = 0; l < 8; l++) part[l] += xb[j + l];
                  for (; j < w; j++) t += xb[j];
                  for (int l = 0; l < 8; l++) t += part[l];
                } else {
                  for (int j = 0; j < w; j++) t = (xb[j] > t || xb[j] != xb[j]) ? xb[j] : t;
                }
                r[b] = t; /* (row b's elements are read: b <= b * w) */
              }
              reg[d] = r;
              uni[d] = PER_ROW;
              continue;
            }
            if (op == OP_SUM) { /* eight partial sums: the loop vectorizes */
              elem part[8] = {0}, t = 0;
              int j = 0;
              for (; j + 8 <= len; j += 8)
                for (int l = 0; l < 8; l++) part[l] += x[j + l];
              for (; j < len; j++) t += x[j];
              for (int l = 0; l < 8; l++) t += part[l];
              acc[d] += t;
            } else { /* NaN-propagating, as np.maximum.reduce */
              elem t = acc[d];
              for (int j = 0; j < len; j++) t = (x[j] > t || x[j] != x[j]) ? x[j] : t;
              acc[d] = t != t ? t : (acc[d] != acc[d] ? acc[d] : t);
            }
            continue;
          }
          /* element j of x, y: X, Y; the op's value E over them, uniform if they all are */
#define MAP1(E)                                                                                \
  do {                                                                                         \
    if (ux == UNIFORM) {                                                                       \
      elem X = x[0];                                                                           \
      r[0] = (E);                                                                              \
    } else {                                                                                   \
      int m = ux == PER_ROW ? (int)k : len;                                                    \
      for (int j = 0; j < m; j++) {                                                            \
        elem X = x[j];                                                                         \
        r[j] = (E);                                                                            \
      }                                                                                        \
    }                                                                                          \
    uni[d] = (unsigned char)ux;                                                                \
  } while (0)
#define MAP2(E)                                                                                \
  do {                                                                                         \
    const elem *y = reg[in->b];                                                                \
    int uy = uni[in->b];                                                                       \
    if (ux != FULL && uy != FULL && (ux == PER_ROW || uy == PER_ROW)) { /* per row */          \
      for (Py_ssize_t j = 0; j < k; j++) {                                                     \
        elem X = x[ux == PER_ROW ? j : 0], Y = y[uy == PER_ROW ? j : 0];                       \
        r[j] = (E);                                                                            \
      }                                                                                        \
      uni[d] = PER_ROW;                                                                        \
      break;                                                                                   \
    }                                                                                          \
    if (ux == PER_ROW) {                                                                       \
      SPREAD(wide[0], x, ux);                                                                  \
      x = wide[0];                                                                             \
      ux = FULL;                                                                               \
    }                                                                                          \
    if (uy == PER_ROW) {                                                                       \
      SPREAD(wide[1], y, uy);                                                                  \
      y = wide[1];                                                                             \
      uy = FULL;                                                                               \
    }                                                                                          \
    if (ux && uy) {                                                                            \
      elem X = x[0], Y = y[0];                                                                 \
      r[0] = (E);                                                                              \
    } else if (uy) {                                                                           \
      elem Y = y[0];                                                                           \
      for (int j = 0; j < len; j++) {                                                          \
        elem X = x[j];                                                                         \
        r[j] = (E);                                                                            \
      }                                                                                        \
    } else if (ux) {                                                                           \
      elem X = x[0];                                                                           \
      for (int j = 0; j < len; j++) {                                                          \
        elem Y = y[j];                                                                         \
        r[j] = (E);                                                                            \
      }                                                                                        \
    } else {                                                                                   \
      for (int j = 0; j < len; j++) {                                                          \
        elem X = x[j], Y = y[j];                                                               \
        r[j] = (E);                                                                            \
      }                                                                                        \
    }                                                                                          \
    uni[d] = (unsigned char)(ux && uy);                                                        \
  } while (0)
          switch (op) {
            case OP_NEG: MAP1(-X); break;
            case OP_EXP: MAP1(EXP(X)); break;
            case OP_LOG: MAP1(LOG(X)); break;
            case OP_SQRT: MAP1(SQRT(X)); break;
            case OP_TANH: MAP1(TANH(X)); break;
            case OP_ERF: MAP1(ERF(X)); break;
            case OP_ABS: MAP1(ABS(X)); break;
            case OP_SIGMOID: MAP1(SIGMOID(X)); break;
            case OP_ADD: MAP2(X + Y); break;
            case OP_SUB: MAP2(X - Y); break;
            case OP_MUL: MAP2(X * Y); break;
            case OP_DIV: MAP2(X / Y); break;
            case OP_MAX: MAP2((X > Y || X != X) ? X : Y); break; /* NaN-propagating, as np.maximum */
            case OP_MIN: MAP2((X < Y || X != X) ? X : Y); break;
            case OP_FMAX: MAP2(FMAX(X, Y)); break;
            case OP_FMIN: MAP2(FMIN(X, Y)); break;
            case OP_POW: MAP2(POW(X, Y)); break;
            case OP_CMP: {
              int pred = (int)in->c;
              MAP2((elem)cmp(X, Y, pred));
              break;
            }
            case OP_MULADD: {
              const elem *src[3] = {x, reg[in->b], reg[in->c]};
              int u[3] = {ux, uni[in->b], uni[in->c]};
              if (u[0] != FULL && u[1] != FULL && u[2] != FULL) { /* uniform, or per row */
                int per_row = u[0] == PER_ROW || u[1] == PER_ROW || u[2] == PER_ROW;
                MULADD(r, src[0], u[0] == UNIFORM, src[1], u[1] == UNIFORM, src[2], u[2] == UNIFORM,
                       per_row ? (int)k : 1);
                uni[d] = per_row ? PER_ROW : UNIFORM;
              } else {
                if (u[0] != FULL && u[1] == FULL) { /* x * y commutes: the full one first */
                  const elem *s_ = src[0];
                  int u_ = u[0];
                  src[0] = src[1], src[1] = s_;
                  u[0] = FULL, u[1] = u_;
                }
                if (u[0] == FULL && u[1] != FULL && u[2] != FULL && (u[1] == PER_ROW || u[2] == PER_ROW)) {
                  /* a per-channel scale and shift over short planes: row by row, not spread;
                   * the last row first, as r may be a per-row source's register (row b's
                   * value is read before its elements are written, rows before it are not) */
                  for (Py_ssize_t b_ = k - 1; b_ >= 0; b_--)
                    MULADD(r + b_ * w, src[0] + b_ * w, 0, src[1] + (u[1] == PER_ROW ? b_ : 0), 1,
                           src[2] + (u[2] == PER_ROW ? b_ : 0), 1, w);
                } else {
                  for (int t = 0; t < 3; t++)
                    if (u[t] == PER_ROW) {
                      SPREAD(wide[t], src[t], u[t]);
                      src[t] = wide[t];
                      u[t] = FULL;
                    }
                  MULADD(r, src[0], u[0], src[1], u[1], src[2], u[2], len);
                }
                uni[d] = FULL;
              }
              break;
            }
            case OP_SELECT: {
              const elem *y = reg[in->b], *z = reg[in->c];
              int uy = uni[in->b], uz = uni[in->c];
              if (ux == UNIFORM && uy == UNIFORM && uz == UNIFORM) {
                r[0] = x[0] != 0 ? y[0] : z[0];
                uni[d] = UNIFORM;
              } else if (ux != FULL && uy != FULL && uz != FULL) { /* per row */
                for (Py_ssize_t j = 0; j < k; j++)
                  r[j] = x[ux == PER_ROW ? j : 0] != 0 ? y[uy == PER_ROW ? j : 0] : z[uz == PER_ROW ? j : 0];
                uni[d] = PER_ROW;
              } else {
                const elem *src[3] = {x, y, z};
                int u[3] = {ux, uy, uz};
                for (int t = 0; t < 3; t++)
                  if (u[t]) {
                    SPREAD(wide[t], src[t], u[t]);
                    src[t] = wide[t];
                  }
                for (int j = 0; j < len; j++) r[j] = src[0][j] != 0 ? src[1][j] : src[2][j];
                uni[d] = FULL;
              }
              break;
            }
          }
#undef MAP1
#undef MAP2
#undef SPREAD
          reg[d] = r;
        }
      }
      for (int i = s0; i < s1 && k == 1; i++) /* the row's sums and maxima: uniform registers */
        if (p->code[i].op == OP_SUM || p->code[i].op == OP_MAX_OF) {
          int d = (int)p->code[i].d;
          scratch[d][0] = acc[d];
          reg[d] = scratch[d];
          uni[d] = 1;
        }
      s0 = s1 + 1;
    }
    o += k;
    idx[n - 2 >= 0 ? n - 2 : 0] += n >= 2 ? k : 0;
    for (int d = n - 2; d >= 0; d--) { /* carry into the outer indices */
      if (idx[d] < p->ext[d]) break;
      idx[d] = 0;
      if (d > 0) idx[d - 1]++;
    }
  }
}
