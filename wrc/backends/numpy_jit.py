"""The `numpy` backend: each level-3 function becomes Python source that calls NumPy.

A function is compiled once into a Python function (readable with
`compiled.source(graph)`) that does no per-element Python work:

* `memref.alloc` → `np.empty` (per call: no buffer is shared between calls or threads), or
  the array of a temporary that is dead by the new buffer's first use (same type), so
  `matmul → +bias → relu` runs in one buffer, in place;
  `memref.get_global` → a lookup in the caller's `globals_`; `memref.copy` → `np.copyto`;
  `collapse_shape`/`expand_shape` → `reshape` views; `scf.if` → `if`.
* `linalg.generic`: every operand becomes a strided view over the loop space, built from its
  affine map (a result `Σ dim·coef + const` gives the view a stride per loop dim and a base
  offset; dims the operand does not use get extent 1, so NumPy broadcasts them). Then
  - a multiply-accumulate (`yield addf(out, mulf(a, b))`) is one batched GEMM (`np.matmul`
    on views regrouped as [batch, M, K] x [batch, K, N]; BLAS does the work; a row or
    column dim may become a batch dim with the other operand broadcast, so a convolution
    writes [N, F, OH*OW] straight into its output),
  - another reduction `yield comb(out, expr)` is `expr` over the views then `comb.reduce`,
  - an all-parallel body is a few ufunc calls, the last one writing into the output (`out=`).
  A `linalg.fill` whose buffer is next fully overwritten (or reduced into with the fill
  value as the combiner's identity) is skipped and the generic writes with `out=`.

`np` in the generated code is the `ArrayModule.xp` the module was compiled for
(`wrc/backends/arrays.py`): NumPy here, CuPy for a GPU backend; views come from
`ArrayModule.strided` and constants that are arrays are put where that module's arrays live.

Identifiers in the generated code are generated (`a0`, `v1`, `k2`, ...). Every name, shape,
dtype, stride and value comes from a constants namespace, never from IR text spliced in.
Anything unsupported raises a `LoweringError` naming the op when the module is compiled.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.dialects import func, memref, scf
from xdsl.dialects.builtin import (
    AffineMapAttr,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    MemRefType,
    ModuleOp,
    NoneAttr,
)
from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import Block, BlockArgument, Operation, SSAValue
from xdsl.ir.affine import (
    AffineBinaryOpExpr,
    AffineBinaryOpKind,
    AffineConstantExpr,
    AffineDimExpr,
    AffineExpr,
)

from wrc.backends import check_call
from wrc.backends.arrays import NUMPY, ArrayModule
from wrc.dtypes import UnsupportedDtypeError, to_numpy_dtype
from wrc.errors import InputError, LoweringError
from wrc.model_buffer import GATHER_AXIS, GATHER_CALL

REUSE_BUFFERS = True
"""Let an alloc take the array of a temporary that is dead by then (off: for benchmarks)."""

# ---------------------------------------------------------------------------- op tables

_UFUNCS: dict[str, str] = {
    "arith.addf": "add",
    "arith.addi": "add",
    "arith.subf": "subtract",
    "arith.subi": "subtract",
    "arith.mulf": "multiply",
    "arith.muli": "multiply",
    "arith.divf": "divide",
    "arith.maximumf": "maximum",
    "arith.minimumf": "minimum",
    "arith.maxnumf": "fmax",
    "arith.minnumf": "fmin",
    "arith.maxsi": "maximum",
    "arith.minsi": "minimum",
    "arith.andi": "bitwise_and",
    "arith.ori": "bitwise_or",
    "arith.xori": "bitwise_xor",
    "arith.negf": "negative",
    "math.exp": "exp",
    "math.tanh": "tanh",
    "math.log": "log",
    "math.sqrt": "sqrt",
    "math.absf": "absolute",
    "math.powf": "power",
}
"""Body ops that are exactly one NumPy ufunc (NaN-propagating max/min included)."""

_CASTS = {"arith.extf", "arith.truncf", "arith.sitofp", "arith.fptosi", "arith.extsi", "arith.trunci",
          "arith.index_cast"}


_FUNCS: dict[str, str] = {"math.erf": "erf"}
"""Body ops computed by a function of the `ArrayModule` over whole arrays (no ufunc exists)."""

# arith.cmpf predicates by number: ordered ones are NumPy's comparisons (false on NaN);
# unordered ones are the negation of the opposite ordered comparison (true on NaN).
_CMPF: dict[int, str] = {
    0: "np.logical_and(np.less({a}, {b}), np.greater_equal({a}, {b}))",  # false, broadcast
    1: "np.equal({a}, {b})",
    2: "np.greater({a}, {b})",
    3: "np.greater_equal({a}, {b})",
    4: "np.less({a}, {b})",
    5: "np.less_equal({a}, {b})",
    6: "np.logical_or(np.less({a}, {b}), np.greater({a}, {b}))",
    7: "np.logical_not(np.logical_or(np.isnan({a}), np.isnan({b})))",
    8: "np.logical_not(np.logical_or(np.less({a}, {b}), np.greater({a}, {b})))",
    9: "np.logical_not(np.less_equal({a}, {b}))",
    10: "np.logical_not(np.less({a}, {b}))",
    11: "np.logical_not(np.greater_equal({a}, {b}))",
    12: "np.logical_not(np.greater({a}, {b}))",
    13: "np.not_equal({a}, {b})",
    14: "np.logical_or(np.isnan({a}), np.isnan({b}))",
    15: "np.logical_not(np.logical_and(np.less({a}, {b}), np.greater_equal({a}, {b})))",  # true
}
# C-style (truncating) integer division and remainder; NumPy's // rounds toward -inf.
_INT_DIV: dict[str, str] = {
    "arith.divsi": "np.add(np.floor_divide({a}, {b}), np.logical_and(np.remainder({a}, {b}), "
                   "np.not_equal(np.sign({a}), np.sign({b}))))",
    "arith.remsi": "np.fmod({a}, {b})",
}
_CMPI: dict[int, str] = {
    0: "np.equal({a}, {b})",
    1: "np.not_equal({a}, {b})",
    2: "np.less({a}, {b})",
    3: "np.less_equal({a}, {b})",
    4: "np.greater({a}, {b})",
    5: "np.greater_equal({a}, {b})",
}

_COMBINERS: dict[str, str] = {
    op: _UFUNCS[op]
    for op in ("arith.addf", "arith.addi", "arith.mulf", "arith.muli", "arith.maximumf", "arith.minimumf",
               "arith.maxnumf", "arith.minnumf", "arith.maxsi", "arith.minsi")
}
"""Reduction combiners `out = comb(out, expr)` and the ufunc whose `.reduce` they are."""


def _identity(ufunc: str, dtype: np.dtype[Any]) -> float | int:
    """The value `v` with `comb(v, x) == x`: a fill with it needs not be done."""
    if ufunc == "add":
        return 0
    if ufunc == "multiply":
        return 1
    big: float | int = math.inf if dtype.kind == "f" else int(np.iinfo(dtype).max)
    small: float | int = -math.inf if dtype.kind == "f" else int(np.iinfo(dtype).min)
    return small if ufunc in ("maximum", "fmax") else big


# ---------------------------------------------------------------------------- IR helpers


def _fail(op: Operation, why: str) -> LoweringError:
    return LoweringError(f"numpy backend: {op.name}: {why}")


def _buffer(op: Operation, t: Any) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """(shape, dtype) of a static, identity-layout memref type used by `op`."""
    if not isinstance(t, MemRefType):
        raise _fail(op, f"expected a memref, got {t}")
    shape = tuple(t.get_shape())
    if any(d < 0 for d in shape):
        raise _fail(op, f"dynamic shape in {t}")
    layout = t.layout
    if not isinstance(layout, NoneAttr) and not (
        isinstance(layout, AffineMapAttr) and layout.data.is_identity()
    ):
        raise _fail(op, f"non-identity layout in {t}")
    try:
        return shape, to_numpy_dtype(t.get_element_type())
    except UnsupportedDtypeError as e:
        raise _fail(op, str(e)) from None


def _scalar_dtype(op: Operation, t: Any) -> np.dtype[Any]:
    try:
        return to_numpy_dtype(t)
    except UnsupportedDtypeError as e:
        raise _fail(op, str(e)) from None


def _c_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Element strides of a C-contiguous array."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def _linear(op: Operation, e: AffineExpr, n: int) -> tuple[list[int], int]:
    """`e` as (coefficient per dim, constant); only sums of `dim * const + const`."""
    if isinstance(e, AffineDimExpr):
        coefs = [0] * n
        coefs[e.position] = 1
        return coefs, 0
    if isinstance(e, AffineConstantExpr):
        return [0] * n, e.value
    if isinstance(e, AffineBinaryOpExpr) and e.kind in (AffineBinaryOpKind.Add, AffineBinaryOpKind.Mul):
        (ca, ka), (cb, kb) = _linear(op, e.lhs, n), _linear(op, e.rhs, n)
        if e.kind == AffineBinaryOpKind.Add:
            return [x + y for x, y in zip(ca, cb, strict=True)], ka + kb
        if not any(cb):
            return [x * kb for x in ca], ka * kb
        if not any(ca):
            return [y * ka for y in cb], ka * kb
    raise _fail(op, f"unsupported indexing expression {e}")


def _const_value(v: SSAValue) -> float | int | None:
    """The scalar value of an `arith.constant`, else None."""
    owner = v.owner
    if isinstance(owner, Operation) and owner.name == "arith.constant":
        attr = owner.properties.get("value")
        if isinstance(attr, FloatAttr | IntegerAttr):
            return attr.value.data
    return None


def _root(v: SSAValue) -> object | None:
    """What memory `v` lives in (through reshape views); None when unknown."""
    while True:
        owner = v.owner
        if isinstance(v, BlockArgument):
            parent = owner.parent_op() if isinstance(owner, Block) else None
            return ("arg", v.index) if isinstance(parent, func.FuncOp) else None
        if isinstance(owner, memref.AllocOp):
            return v
        if isinstance(owner, memref.GetGlobalOp):
            return ("global", owner.name_.string_value())
        if isinstance(owner, memref.CollapseShapeOp | memref.ExpandShapeOp):
            v = owner.src
            continue
        return None


# ---------------------------------------------------------------------------- generic analysis


@dataclass
class _Access:
    """An operand of a generic: element strides per loop dim and base offset."""

    value: SSAValue
    shape: tuple[int, ...] | None  # buffer shape; None for a scalar operand
    dtype: np.dtype[Any]
    strides: tuple[int, ...]  # per loop dim, elements (0: the dim is not used)
    offset: int

    def uses(self, k: int) -> bool:
        return self.strides[k] != 0


@dataclass
class _Generic:
    op: linalg.GenericOp
    extents: tuple[int, ...]
    reduction: tuple[int, ...]  # reduction loop dims with extent > 1
    accesses: list[_Access]
    kind: str  # "parallel" | "reduce" | "contract"
    combiner: str | None = None  # ufunc name of the reduction combiner
    expr: SSAValue | None = None  # reduce: the value combined into the output
    fill_ok: bool = False  # a preceding fill of the output may be skipped (value permitting)
    gemm: _Gemm | None = None  # contract: how the loop dims map to a batched matmul

    @property
    def n_in(self) -> int:
        return len(self.op.inputs)

    def full_cover(self, j: int) -> bool:
        """Output j's map touches every element of its buffer exactly once."""
        acc = self.accesses[self.n_in + j]
        assert acc.shape is not None
        dims = [k for k in range(len(self.extents)) if acc.uses(k) and self.extents[k] > 1]
        return (
            acc.offset == 0
            and math.prod(self.extents[k] for k in dims) == math.prod(acc.shape)
            and _injective([acc.strides[k] for k in dims], [self.extents[k] for k in dims])
        )


def _injective(strides: Sequence[int], extents: Sequence[int]) -> bool:
    """Sufficient test that distinct loop points address distinct elements."""
    reach = 0
    for s, e in sorted(zip(map(abs, strides), extents, strict=True)):
        if s <= reach:
            return False
        reach += s * (e - 1)
    return True


def _analyze(op: linalg.GenericOp) -> _Generic:
    maps = [m.data for m in op.indexing_maps]
    iters = [str(it.data) for it in op.iterator_types]
    n = len(iters)
    operands = list(op.inputs) + list(op.outputs)
    if op.res:
        raise _fail(op, "tensor results (level 3 needs memref operands)")
    if op.library_call is not None and op.library_call.data != GATHER_CALL:
        raise _fail(op, f"library_call {op.library_call.data!r} is not supported (only {GATHER_CALL!r})")
    if len(maps) != len(operands) or any(m.num_dims != n or m.num_symbols for m in maps):
        raise _fail(op, "indexing maps do not match the operands and iterators")
    if any(it not in ("parallel", "reduction") for it in iters):
        raise _fail(op, f"unsupported iterator types {iters}")

    # Loop extents from results that are a bare dim (as linalg's shapes-to-loops map does).
    extents: list[int | None] = [None] * n
    linear: list[list[tuple[list[int], int]]] = []
    for v, m in zip(operands, maps, strict=True):
        shape = _buffer(op, v.type)[0] if isinstance(v.type, MemRefType) else ()
        if len(m.results) != len(shape):
            raise _fail(op, f"indexing map {m} does not match operand type {v.type}")
        lin = [_linear(op, e, n) for e in m.results]
        linear.append(lin)
        for (coefs, const), size in zip(lin, shape, strict=True):
            if const == 0 and sorted(coefs) == [0] * (n - 1) + [1]:
                k = coefs.index(1)
                if extents[k] is not None and extents[k] != size:
                    raise _fail(op, f"loop d{k} has extents {extents[k]} and {size}")
                extents[k] = size
    if any(e is None for e in extents):
        raise _fail(op, "a loop dimension's extent cannot be inferred from the operands")
    ext = tuple(e for e in extents if e is not None)

    accesses: list[_Access] = []
    for v, lin in zip(operands, linear, strict=True):
        if not isinstance(v.type, MemRefType):
            accesses.append(_Access(v, None, _scalar_dtype(op, v.type), (0,) * n, 0))
            continue
        shape, dtype = _buffer(op, v.type)
        bstrides = _c_strides(shape)
        strides, offset = [0] * n, 0
        for (coefs, const), size, bs in zip(lin, shape, bstrides, strict=True):
            lo = const + sum(min(0, c * (e - 1)) for c, e in zip(coefs, ext, strict=True))
            hi = const + sum(max(0, c * (e - 1)) for c, e in zip(coefs, ext, strict=True))
            if math.prod(ext) and not 0 <= lo <= hi < size:
                raise _fail(op, f"indexing map reaches [{lo}, {hi}] of a dimension of size {size}")
            offset += const * bs
            for k, c in enumerate(coefs):
                strides[k] += c * bs if ext[k] > 1 else 0
        accesses.append(_Access(v, shape, dtype, tuple(strides), offset))

    reduction = tuple(k for k in range(n) if iters[k] == "reduction" and ext[k] > 1)
    g = _Generic(op, ext, reduction, accesses, "parallel")
    n_in = g.n_in
    for j in range(len(op.outputs)):
        acc = accesses[n_in + j]
        if acc.shape is None:
            raise _fail(op, "a scalar output")
        for k in range(n):
            if ext[k] > 1 and acc.uses(k) != (k not in reduction):
                raise _fail(op, "an output map must use exactly the parallel loop dims")
        dims = [k for k in range(n) if acc.uses(k)]
        if not _injective([acc.strides[k] for k in dims], [ext[k] for k in dims]):
            raise _fail(op, "an output map writes some element twice")

    block = op.body.block
    out_args = block.args[n_in:]
    yield_op = block.last_op
    assert yield_op is not None
    if not reduction:
        g.fill_ok = len(out_args) == 1 and not out_args[0].uses and g.full_cover(0)
        return g

    # A reduction: `yield comb(out, expr)` where `out` is read only there.
    comb = yield_op.operands[0].owner if len(yield_op.operands) == 1 else None
    if (
        len(out_args) != 1
        or not isinstance(comb, Operation)
        or comb.name not in _COMBINERS
        or comb.results[0].uses.get_length() != 1
        or out_args[0].uses.get_length() != 1
        or out_args[0] not in comb.operands
    ):
        raise _fail(op, "a reduction must yield `combiner(out, expr)` with out read only there")
    g.combiner = _COMBINERS[comb.name]
    g.expr = comb.operands[1] if comb.operands[0] is out_args[0] else comb.operands[0]
    if g.expr is out_args[0]:
        raise _fail(op, "a reduction must yield `combiner(out, expr)` with out read only there")
    g.kind = "reduce"
    e = g.expr.owner
    if (
        g.combiner == "add"
        and isinstance(e, Operation)
        and e.name in ("arith.mulf", "arith.muli")
        and e.results[0].uses.get_length() == 1
        and all(isinstance(a, BlockArgument) and a.owner is block and a.index < n_in for a in e.operands)
    ):
        g.kind = "contract"
        g.gemm = _plan_gemm(g)
        if g.gemm is None:  # e.g. a dim summed in one operand only: multiply, then reduce
            g.kind = "reduce"
    g.fill_ok = g.full_cover(0)
    return g


# ---------------------------------------------------------------------------- GEMM planning


def _merge(dims: Sequence[int], strides: Sequence[int], ext: Sequence[int]) -> tuple[int, int] | None:
    """(extent, stride) of the loop dims `dims` (outer first) seen as one dim, if possible."""
    if not dims:
        return 1, 0
    for a, b in itertools.pairwise(dims):
        if strides[a] != strides[b] * ext[b]:
            return None
    return math.prod(ext[k] for k in dims), strides[dims[-1]]


def _matrix(groups: Sequence[Sequence[int]], strides: Sequence[int], ext: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The operand as a [batch,] rows x cols matrix view that BLAS takes without a copy."""
    merged = [_merge(g, strides, ext) for g in groups]
    if any(m is None for m in merged):
        return None
    shape = [m[0] for m in merged if m is not None]
    st = [m[1] for m in merged if m is not None]
    (p, q), (sp, sq) = shape[-2:], st[-2:]
    # An extent-1 dim may take any stride: pick the one that keeps the matrix BLAS-able.
    if p == 1:
        sp = q if sq == 1 else 1
    if q == 1:
        sq = p if sp == 1 else 1
    st[-2:] = [sp, sq]
    if not ((sq == 1 and sp >= q) or (sp == 1 and sq >= p)) or any(s < 0 for s in st):
        return None
    return tuple(shape), tuple(st)


@dataclass
class _Gemm:
    """out[batch, M, N] (+)= a[batch, M, K] @ b[batch, K, N], each group in a fixed dim order.

    `a` is the multiply's first operand, or its second when `swap` (out^T = y^T @ x^T):
    which one is the row side decides the layout of the copies BLAS may need.
    """

    swap: bool
    batch: list[int]
    m: list[int]
    n: list[int]
    k: list[int]
    cost: float


def _copy_cost(acc: _Access, groups: Sequence[Sequence[int]], ext: Sequence[int]) -> float:
    """0 if the operand is a BLAS-able [batch,] matrix view as it is, else a copy estimate.

    NumPy copies strided views fast only when the innermost run is long, so short
    innermost dims (a 3-wide kernel row of an im2col) are charged extra.
    """
    if _matrix(groups, acc.strides, ext) is not None:
        return 0.0
    dims = [d for g in groups for d in g]
    inner = dims[-1]
    return math.prod(ext[d] for d in dims) * (1 + 16 / ext[inner]) * (1 if abs(acc.strides[inner]) == 1 else 1.5)


def _plan_gemm(g: _Generic) -> _Gemm | None:
    """Group loop dims as batch/M/N/K, pick the orientation and dim orders that copy least."""
    assert g.expr is not None and isinstance(g.expr.owner, Operation)
    xa, ya = (g.accesses[a.index] for a in g.expr.owner.operands if isinstance(a, BlockArgument))
    oa = g.accesses[g.n_in]
    ext = g.extents

    def order(ds: list[int], acc: _Access) -> list[int]:
        return sorted(ds, key=lambda d: -abs(acc.strides[d]))

    best: _Gemm | None = None
    for swap in (False, True):
        a, b = (ya, xa) if swap else (xa, ya)
        groups: dict[tuple[bool, bool, bool], list[int]] = {}
        for d in range(len(ext)):
            if ext[d] > 1:
                groups.setdefault((a.uses(d), b.uses(d), oa.uses(d)), []).append(d)
        batch, m = groups.pop((True, True, True), []), groups.pop((True, False, True), [])
        n, k = groups.pop((False, True, True), []), groups.pop((True, True, False), [])
        if groups or not k:
            return None  # a dim summed in only one operand, or no contraction: not a GEMM
        # A row or column dim may also go to the batch, the other operand broadcast along it
        # (stride 0): a convolution's image dim then writes its output in place, one GEMM
        # per image, instead of a [F, N*OH*OW] result transposed into [N, F, OH, OW].
        for extra in [None, *m, *n]:
            if best is not None and best.cost == 0:
                return best  # no copy at all: nothing to improve
            bb = batch + ([] if extra is None else [extra])
            mm, nn = [d for d in m if d != extra], [d for d in n if d != extra]
            for ob, om, on, ok in itertools.product((oa, a), (oa, a), (oa, b), (a, b)):
                b_, m_, n_, k_ = order(bb, ob), order(mm, om), order(nn, on), order(k, ok)
                grp = [b_] if b_ else []
                cost = (_copy_cost(a, grp + [m_, k_], ext) + _copy_cost(b, grp + [k_, n_], ext)
                        + _copy_cost(oa, grp + [m_, n_], ext))
                if best is None or cost < best.cost:
                    best = _Gemm(swap, b_, m_, n_, k_, cost)
    return best


# ---------------------------------------------------------------------------- code generation


def _bad_arg(index: int, value: np.ndarray, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    raise InputError(f"argument {index} is {value.dtype}{list(value.shape)}, the graph takes {dtype}{list(shape)}")


class _Source:
    """Generated lines plus the namespace of constants they refer to (k0, k1, ...)."""

    def __init__(self, arrays: ArrayModule) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {"np": arrays.xp, "_nd": arrays.strided, "_bad_arg": _bad_arg}
        self._keys: dict[tuple[str, str], str] = {}
        self._n = itertools.count()

    def const(self, value: Any) -> str:
        """A generated name bound to `value` in the namespace (simple values are shared)."""
        key = None
        if isinstance(value, int | str | tuple | np.dtype) and not isinstance(value, bool):
            key = (type(value).__name__, repr(value))
            if key in self._keys:
                return self._keys[key]
        name = f"k{len(self.namespace) - 3}"
        self.namespace[name] = value
        if key is not None:
            self._keys[key] = name
        return name

    def var(self, prefix: str = "v") -> str:
        return f"{prefix}{next(self._n)}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


class _FuncCompiler:
    """Compiles one `func.func` into the source of `def graph(G, a0, a1, ...)`."""

    def __init__(self, fn: func.FuncOp, arrays: ArrayModule) -> None:
        self.fn = fn
        self.arrays = arrays
        self.src = _Source(arrays)
        self.names: dict[SSAValue, str] = {}
        self.generics: dict[Operation, _Generic] = {}
        self.skip: set[Operation] = set()  # fills made useless (by the next generic, or np.zeros)
        self.fresh: set[Operation] = set()  # generics whose output needs no initial value
        # Buffer reuse (top-level allocs only): use span of each alloc, and which alloc
        # occupies each array variable the generated code allocated so far.
        self.span: dict[SSAValue, tuple[int, int, Operation]] = {}  # alloc → (first, last use, first user)
        self.top: list[Operation] = []  # the function's top-level ops, by the indices of `span`
        self.occupant: dict[str, SSAValue] = {}

    # -- entry

    def compile(self) -> str:
        block = self.fn.body.block
        params = []
        for arg in block.args:
            name = self.src.var("a")
            params.append(name)
            self.names[arg] = name
        self.src.emit(0, f"def graph(G{''.join(', ' + p for p in params)}):")
        c = self.src.const
        attrs = list(self.fn.arg_attrs.data) if self.fn.arg_attrs is not None else []
        for arg in block.args:
            if isinstance(arg.type, MemRefType):
                shape, dtype = _buffer(self.fn, arg.type)
                a, ind = self.names[arg], 1
                # An optional update input is read only when its i1 flag (the next argument)
                # is set: check it only then, so a partial update costs nothing per weight
                # that was left out.
                nxt = block.args[arg.index + 1] if arg.index + 1 < len(block.args) else None
                if (arg.index < len(attrs) and "ge.optional" in attrs[arg.index].data
                        and nxt is not None and nxt.type == IntegerType(1)):
                    self.src.emit(1, f"if {self.names[nxt]}:")
                    ind = 2
                # Views are built on the argument's buffer, which must be contiguous; a wrong
                # shape or dtype would be misread, not just slow: checked (~0.2 µs).
                self.src.emit(ind, f"{a} = np.asarray({a}, order={c('C')})")
                self.src.emit(ind, f"if {a}.shape != {c(shape)} or {a}.dtype != {c(dtype)}:")
                self.src.emit(ind + 1, f"_bad_arg({c(arg.index)}, {a}, {c(shape)}, {c(dtype)})")
        self.spans(block)
        self.block(block, 1)
        return "\n".join(self.src.lines) + "\n"

    def block(self, block: Block, indent: int) -> None:
        start = len(self.src.lines)
        for op in block.ops:
            self.op(op, indent)
        if len(self.src.lines) == start:
            self.src.emit(indent, "pass")

    def name(self, v: SSAValue) -> str:
        if v not in self.names:
            raise LoweringError(f"numpy backend: a value used before its definition: {v}")
        return self.names[v]

    def define(self, v: SSAValue) -> str:
        self.names[v] = self.src.var()
        return self.names[v]

    # -- function-level ops

    def op(self, op: Operation, ind: int) -> None:
        emit, src = self.src.emit, self.src
        if op in self.skip:
            return
        if isinstance(op, memref.AllocOp):
            if op.dynamic_sizes or op.symbol_operands:
                raise _fail(op, "dynamic sizes")
            shape, dtype = _buffer(op, op.memref.type)
            sink = self.global_sink(op)
            if sink is not None:  # computed straight into the global it is finally copied to
                copy, name = sink
                emit(ind, f"{self.define(op.memref)} = G[{src.const(name)}]")
                self.skip.add(copy)
                return
            reuse = self.dead_buffer(op.memref) if REUSE_BUFFERS else None
            if reuse is not None:  # a dead temporary's array: no allocation, no page faults
                emit(ind, f"{self.define(op.memref)} = {reuse}")
                self.occupant[reuse] = op.memref
                return
            # Zero-filled right away: calloc'd pages come zeroed, cheaper than empty + fill.
            fill = self.first_user(op, op.memref)
            zero = (isinstance(fill, linalg.FillOp) and fill.outputs[0] is op.memref
                    and _const_value(fill.inputs[0]) == 0 and self.overwriter(fill) is None)
            emit(ind, f"{self.define(op.memref)} = np.{'zeros' if zero else 'empty'}({src.const(shape)}, {src.const(dtype)})")
            if op.memref in self.span:
                self.occupant[self.names[op.memref]] = op.memref
            if zero:
                assert fill is not None
                self.skip.add(fill)
        elif isinstance(op, memref.DeallocOp):
            pass
        elif isinstance(op, memref.GetGlobalOp):
            _buffer(op, op.memref.type)
            emit(ind, f"{self.define(op.memref)} = G[{src.const(op.name_.string_value())}]")
        elif isinstance(op, memref.CopyOp):
            if _buffer(op, op.source.type) != _buffer(op, op.destination.type):
                raise _fail(op, "source and destination types differ")
            emit(ind, f"np.copyto({self.name(op.destination)}, {self.name(op.source)})")
        elif isinstance(op, memref.CollapseShapeOp | memref.ExpandShapeOp):
            shape, dtype = _buffer(op, op.result.type)
            if (math.prod(shape), dtype) != (math.prod(_buffer(op, op.src.type)[0]), _buffer(op, op.src.type)[1]):
                raise _fail(op, "source and result sizes differ")
            emit(ind, f"{self.define(op.result)} = {self.name(op.src)}.reshape({src.const(shape)})")
        elif isinstance(op, linalg.FillOp):
            self.fill(op, ind)
        elif isinstance(op, linalg.GenericOp):
            self.generic(op, ind)
        elif isinstance(op, scf.IfOp):
            results = [self.define(r) for r in op.results]
            emit(ind, f"if {self.name(op.cond)}:")
            self.region_block(op.true_region.block, ind + 1, results)
            if op.false_region.blocks:
                emit(ind, "else:")
                self.region_block(op.false_region.block, ind + 1, results)
            elif results:
                raise _fail(op, "results without an else region")
        elif isinstance(op, func.ReturnOp):
            self.ret(op, ind)
        else:
            expr = self.scalar_expr(op, [self.name(v) for v in op.operands], None)
            for r in op.results:
                self.names[r] = self.src.var()
            emit(ind, f"{', '.join(self.names[r] for r in op.results)} = {expr}")

    # -- buffer reuse

    def spans(self, block: Block) -> None:
        """First and last use (top-level op index, views included) of each top-level alloc."""
        self.top = list(block.ops)
        index = {op: i for i, op in enumerate(self.top)}
        uses: dict[SSAValue, list[tuple[int, Operation]]] = {}
        for op in self.fn.walk():
            top: Operation | None = op
            while top is not None and top not in index:
                top = top.parent_op()
            if top is None or isinstance(op, memref.AllocOp):
                continue
            for v in op.operands:
                root = _root(v) if isinstance(v.type, MemRefType) else None
                if isinstance(root, SSAValue) and isinstance(root.owner, memref.AllocOp):
                    uses.setdefault(root, []).append((index[top], top))
        for root, us in uses.items():
            if root.owner in index:
                first = min(us, key=lambda u: u[0])
                self.span[root] = (first[0], max(i for i, _ in us), first[1])

    def global_sink(self, alloc: memref.AllocOp) -> tuple[memref.CopyOp, str] | None:
        """(copy, global) when `alloc`'s buffer ends, unconditionally, in a whole-buffer copy
        into a global that the function touches nowhere else (a derived variable of
        `ge-hoist-weight-only`, a computed `ge.assign`): the buffer may then be that global's
        array, and the copy is dropped. The runtime gives such a write a buffer of its own."""
        buf = alloc.memref
        if buf not in self.span:
            return None
        copy = self.top[self.span[buf][1]]
        if not isinstance(copy, memref.CopyOp) or copy.source is not buf:
            return None
        dst = copy.destination.owner
        if not isinstance(dst, memref.GetGlobalOp) or copy.destination.type != buf.type:
            return None
        name = dst.name_.string_value()
        for other in self.fn.walk():
            if isinstance(other, memref.GetGlobalOp) and other.name_.string_value() == name and any(
                    use.operation is not copy or use.index != 1 for use in other.memref.uses):
                return None
        return copy, name

    def dead_buffer(self, new: SSAValue) -> str | None:
        """An array variable whose occupant is dead when `new` is first used, same type.

        Dead means last used before `new`'s first use, or by that very op when it is an
        elementwise generic reading the old buffer exactly as it writes `new` (in place:
        each element is read before it is written, as in `np.add(x, b, out=x)`).
        """
        if new not in self.span:
            return None
        first, _, user = self.span[new]
        for name, occ in self.occupant.items():
            if occ.type != new.type:
                continue
            last = self.span[occ][1]
            if last < first or (last == first and self.in_place(user, occ, new)):
                return name
        return None

    def in_place(self, op: Operation, old: SSAValue, new: SSAValue) -> bool:
        if not isinstance(op, linalg.GenericOp) or len(op.outputs) != 1 or op.outputs[0] is not new:
            return False
        g = self.analyze(op)
        out = g.accesses[g.n_in]
        reads = [a for a in g.accesses[:g.n_in] if a.shape is not None and _root(a.value) == old]
        return g.kind == "parallel" and all(
            a.value is old and (a.strides, a.offset) == (out.strides, out.offset) for a in reads)

    def region_block(self, block: Block, ind: int, results: list[str]) -> None:
        start = len(self.src.lines)
        for op in block.ops:
            if isinstance(op, scf.YieldOp):
                for r, v in zip(results, op.operands, strict=True):
                    self.src.emit(ind, f"{r} = {self.name(v)}")
            else:
                self.op(op, ind)
        if len(self.src.lines) == start:
            self.src.emit(ind, "pass")

    def ret(self, op: func.ReturnOp, ind: int) -> None:
        outs, seen = [], set()
        for v in op.operands:
            if isinstance(v.type, MemRefType):
                root = _root(v)
                # Results must be fresh arrays: copy what is not a buffer allocated here.
                fresh = root is not None and isinstance(root, SSAValue) and root not in seen
                seen.add(root)
                outs.append(self.name(v) + ("" if fresh else ".copy()"))
            else:
                outs.append(f"np.array({self.name(v)}, {self.src.const(_scalar_dtype(op, v.type))})")
        self.src.emit(ind, f"return [{', '.join(outs)}]")

    def scalar_expr(self, op: Operation, args: list[str], out: str | None) -> str:
        """The NumPy expression of one arith/math op (elementwise on arrays or scalars)."""
        name = op.name
        tail = f", out={out}" if out else ""
        if name == "arith.constant":
            attr = op.properties.get("value")
            t = op.results[0].type
            if isinstance(attr, FloatAttr | IntegerAttr):
                return self.src.const(_scalar_dtype(op, t).type(attr.value.data))
            if isinstance(attr, DenseIntOrFPElementsAttr):
                shape = tuple(attr.get_shape() or ())
                arr = np.array(attr.get_values(), _scalar_dtype(op, attr.get_element_type())).reshape(shape)
                arr.flags.writeable = False
                return self.src.const(arr)
            raise _fail(op, f"unsupported constant {attr}")
        if name in _UFUNCS:
            return f"np.{_UFUNCS[name]}({', '.join(args)}{tail})"
        if name in _INT_DIV:
            return _INT_DIV[name].format(a=args[0], b=args[1])
        if name in _FUNCS:
            return f"{self.src.const(getattr(self.arrays, _FUNCS[name]))}({args[0]})"
        if name == "arith.select":
            return f"np.where({args[0]}, {args[1]}, {args[2]})"
        if name in ("arith.cmpf", "arith.cmpi"):
            pred = op.properties["predicate"]
            assert isinstance(pred, IntegerAttr)
            table = _CMPF if name == "arith.cmpf" else _CMPI
            if pred.value.data not in table:
                raise _fail(op, f"unsupported predicate {pred.value.data}")
            return table[pred.value.data].format(a=args[0], b=args[1])
        if name in _CASTS:
            return f"np.asarray({args[0]}).astype({self.src.const(_scalar_dtype(op, op.results[0].type))})"
        raise _fail(op, "unsupported operation")

    # -- linalg

    def analyze(self, op: linalg.GenericOp) -> _Generic:
        if op not in self.generics:
            self.generics[op] = _analyze(op)
        return self.generics[op]

    def fill(self, op: linalg.FillOp, ind: int) -> None:
        if len(op.inputs) != 1 or len(op.outputs) != 1 or op.res:
            raise _fail(op, "expected one scalar input and one memref output")
        _buffer(op, op.outputs[0].type)
        nxt = self.overwriter(op)
        if nxt is not None:
            self.fresh.add(nxt)
            return
        self.src.emit(ind, f"{self.name(op.outputs[0])}.fill({self.name(op.inputs[0])})")

    def overwriter(self, fill: linalg.FillOp) -> linalg.GenericOp | None:
        """The generic right after `fill` that makes it useless, if any: it overwrites the
        whole buffer, or reduces into it with the fill value as the combiner's identity."""
        out = fill.outputs[0]
        nxt = self.next_writer(fill, out)
        value = _const_value(fill.inputs[0])
        if not isinstance(nxt, linalg.GenericOp) or value is None:
            return None
        g = self.analyze(nxt)
        ok = g.fill_ok and not any(_root(a) == _root(out) for a in nxt.inputs)
        if g.kind != "parallel" and g.combiner is not None:
            ok = ok and value == _identity(g.combiner, g.accesses[g.n_in].dtype)
        return nxt if ok else None

    def next_writer(self, fill: Operation, out: SSAValue) -> Operation | None:
        """The next op of the block that touches `out`'s memory, if it writes exactly `out`."""
        root = _root(out)
        if root is None:
            return None
        op = fill.next_op
        while op is not None:
            views = isinstance(op, memref.CollapseShapeOp | memref.ExpandShapeOp)
            mem = [_root(v) for v in op.operands if isinstance(v.type, MemRefType)]
            if isinstance(op, func.ReturnOp | scf.IfOp) or (
                op.regions and not isinstance(op, linalg.GenericOp | linalg.FillOp)
            ):
                return None
            if views or (not mem and not op.regions):
                op = op.next_op
                continue
            if None in mem:
                return None
            if root not in mem:
                op = op.next_op
                continue
            if isinstance(op, linalg.GenericOp) and len(op.outputs) == 1 and op.outputs[0] is out:
                return op
            return None
        return None

    def first_user(self, first: Operation, buf: SSAValue) -> Operation | None:
        """The first op after `first` in its block that uses `buf` (None past a region op)."""
        op = first.next_op
        while op is not None:
            if buf in op.operands:
                return op
            if op.regions and not isinstance(op, linalg.GenericOp | linalg.FillOp):
                return None
            op = op.next_op
        return None

    def view(self, acc: _Access, ext: Sequence[int], ind: int, dims: Sequence[int] | None = None,
             shape: Sequence[int] | None = None, strides: Sequence[int] | None = None,
             bare_ok: bool = False) -> str:
        """A strided view of an operand: loop-space by default, else given dims/shape/strides.

        `bare_ok`: the operand is only read by ufuncs, so the buffer itself may stand for a
        view that only adds leading broadcast dims.
        """
        buf = self.name(acc.value)
        if acc.shape is None:
            return buf
        if shape is None or strides is None:
            if dims is None:  # loop space: unused dims get extent 1 and broadcast
                shape = tuple(e if acc.uses(k) else 1 for k, e in enumerate(ext))
                strides = acc.strides
            else:
                shape = tuple(ext[k] for k in dims)
                strides = tuple(acc.strides[k] for k in dims)
        shape, strides = tuple(shape), tuple(strides)
        c = self.src.const
        # Cheaper than a strided view: the buffer as it is, or reshaped to insert 1-dims.
        big = [(d, s) for d, s in zip(shape, strides, strict=True) if d != 1]
        own = [(d, s) for d, s in zip(acc.shape, _c_strides(acc.shape), strict=True) if d != 1]
        if acc.offset == 0 and big == own:
            lead = len(shape) - len(acc.shape)
            if shape == acc.shape or (bare_ok and lead >= 0 and shape[lead:] == acc.shape):
                return buf
            v = self.src.var()
            self.src.emit(ind, f"{v} = {buf}.reshape({c(shape)})")
            return v
        isz = acc.dtype.itemsize
        v = self.src.var()
        self.src.emit(ind, f"{v} = _nd({c(shape)}, {c(acc.dtype)}, {buf}, {c(acc.offset * isz)}, "
                           f"{c(tuple(s * isz for s in strides))})")
        return v

    def generic(self, op: linalg.GenericOp, ind: int) -> None:
        if op.library_call is not None and op.library_call.data == GATHER_CALL:
            self.gather(op, ind)
            return
        g = self.analyze(op)
        if g.kind == "contract":
            self.contract(g, ind)
            return
        block = op.body.block
        env: dict[SSAValue, str] = {}
        shapes: dict[SSAValue, tuple[int, ...]] = {}
        n = len(g.extents)
        for arg, acc in zip(block.args, g.accesses, strict=True):
            if arg.uses or arg.index >= g.n_in:
                inp = g.kind == "parallel" and arg.index < g.n_in
                env[arg] = self.view(acc, g.extents, ind, bare_ok=inp)
                shapes[arg] = tuple(g.extents[k] if acc.uses(k) else 1 for k in range(n))
        outs = [env[a] for a in block.args[g.n_in:]]
        yield_op = block.last_op
        assert isinstance(yield_op, linalg.YieldOp)

        # The value written by the last ufunc may go straight into the (single) output.
        # (Not if a later body op still reads the output's old value.)
        final: Operation | None = None
        if g.kind == "parallel" and len(outs) == 1:
            owner = yield_op.operands[0].owner
            if (isinstance(owner, Operation) and owner.parent_block() is block
                    and owner.name in _UFUNCS and owner.results[0].uses.get_length() == 1):
                ops = list(block.ops)
                later = ops[ops.index(owner) + 1:]
                if not any(u.operation in later for u in block.args[g.n_in].uses):
                    final = owner

        comb_op = yield_op.operands[0].owner if g.kind == "reduce" else None
        for body_op in block.ops:
            if body_op is yield_op or body_op is comb_op:
                continue
            args = []
            for v in body_op.operands:
                if v in env:
                    args.append(env[v])
                else:
                    args.append(self.name(v))
                    shapes[v] = (1,) * n
            if body_op.name == "linalg.index":
                d = body_op.properties["dim"]
                assert isinstance(d, IntegerAttr)
                k = d.value.data
                shape = tuple(g.extents[k] if i == k else 1 for i in range(n))
                env[body_op.results[0]] = self.src.const(self.arrays.to_device(np.arange(g.extents[k]).reshape(shape)))
                shapes[body_op.results[0]] = shape
                continue
            expr = self.scalar_expr(body_op, args, outs[0] if body_op is final else None)
            res = body_op.results[0]
            shapes[res] = tuple(max(s) for s in zip(*(shapes[v] for v in body_op.operands), strict=True)) if body_op.operands else (1,) * n
            if body_op is final:
                self.src.emit(ind, expr)
                env[res] = outs[0]
            elif body_op.name == "arith.constant":
                env[res] = expr
            else:
                env[res] = self.src.var("t")
                self.src.emit(ind, f"{env[res]} = {expr}")

        if g.kind == "parallel":
            for j, v in enumerate(yield_op.operands):
                if env.get(v) != outs[j]:
                    self.src.emit(ind, f"np.copyto({outs[j]}, {env.get(v) or self.name(v)})")
            return

        # reduce: comb.reduce(expr over the full reduction extents) into the output view.
        assert g.expr is not None and g.combiner is not None
        expr_v = env.get(g.expr) or self.name(g.expr)
        oacc = g.accesses[g.n_in]
        target = tuple(g.extents[k] if (k in g.reduction or oacc.uses(k)) else 1 for k in range(n))
        if shapes.get(g.expr, (1,) * n) != target:
            expr_v = f"np.broadcast_to({expr_v}, {self.src.const(target)})"
        axes = self.src.const(g.reduction)
        red = f"np.{g.combiner}.reduce({expr_v}, axis={axes}, keepdims=True"
        if op in self.fresh:
            self.src.emit(ind, f"{red}, out={outs[0]})")
        else:
            self.src.emit(ind, f"np.{g.combiner}({outs[0]}, {red}), out={outs[0]})")

    def gather(self, op: linalg.GenericOp, ind: int) -> None:
        """`library_call = "wrc_gather"` (a lowered `ge.gather`): `np.take` of the rows, with
        the one-hot body's semantics (a negative index counts from the end; one still out
        of range gives zeros). Checked against the operand shapes, not trusted."""
        axis_attr = op.attributes.get(GATHER_AXIS)
        if len(op.inputs) != 2 or len(op.outputs) != 1 or not isinstance(axis_attr, IntegerAttr):
            raise _fail(op, f"{GATHER_CALL} takes data and indices, one output and an integer {GATHER_AXIS}")
        data, idx, out = op.inputs[0], op.inputs[1], op.outputs[0]
        (dshape, ddt), (ishape, idt), (oshape, odt) = (_buffer(op, v.type) for v in (data, idx, out))
        axis = axis_attr.value.data
        if not 0 <= axis < len(dshape) or oshape != dshape[:axis] + ishape + dshape[axis + 1:] \
                or idt.kind not in "iu" or ddt != odt:
            raise _fail(op, f"{GATHER_CALL}: data {ddt}{list(dshape)}, indices {idt}{list(ishape)} and output "
                            f"{odt}{list(oshape)} along axis {axis} are not a gather")
        c, e = self.src.const, self.src.emit
        d, i, o = self.name(data), self.name(idx), self.name(out)
        t, ok = self.src.var(), self.src.var()
        size = c(dshape[axis])
        mask_shape = (1,) * axis + ishape + (1,) * (len(dshape) - axis - 1)
        e(ind, f"{t} = np.where({i} < 0, {i} + {size}, {i})")
        e(ind, f"{ok} = np.logical_and({t} >= 0, {t} < {size})")
        # All indices in range (a check over the indices only): take straight into the output,
        # unbuffered (mode "clip" cannot clip anything here); else mask the out-of-range ones.
        e(ind, f"if {ok}.all():")
        e(ind + 1, f"np.take({d}, {t}, axis={c(axis)}, out={o}, mode='clip')")
        e(ind, "else:")
        e(ind + 1, f"np.copyto({o}, np.where({ok}.reshape({c(mask_shape)}), np.take({d}, np.where({ok}, {t}, 0), "
                   f"axis={c(axis)}), {c(np.zeros((), ddt))}))")

    def contract(self, g: _Generic, ind: int) -> None:
        """`out (+)= Σ x*y` as one (batched) matmul over regrouped views."""
        assert g.expr is not None and isinstance(g.expr.owner, Operation)
        plan = g.gemm
        assert plan is not None
        xi, yi = (a.index for a in g.expr.owner.operands if isinstance(a, BlockArgument))
        if plan.swap:
            xi, yi = yi, xi
        ext, c = g.extents, self.src.const
        grp = [plan.batch] if plan.batch else []

        def operand(acc: _Access, groups: list[list[int]]) -> str:
            mat = _matrix(groups, acc.strides, ext)
            if mat is not None:
                return self.view(acc, ext, ind, shape=mat[0], strides=mat[1])
            full = [d for gr in groups for d in gr]
            v = self.view(acc, ext, ind, dims=full)
            return f"np.ascontiguousarray({v}).reshape({c(tuple(math.prod(ext[d] for d in gr) for gr in groups))})"

        a = operand(g.accesses[xi], grp + [plan.m, plan.k])
        b = operand(g.accesses[yi], grp + [plan.k, plan.n])
        oacc = g.accesses[g.n_in]
        omat = _matrix(grp + [plan.m, plan.n], oacc.strides, ext)
        if g.op in self.fresh and omat is not None:
            o = self.view(oacc, ext, ind, shape=omat[0], strides=omat[1])
            self.src.emit(ind, f"np.matmul({a}, {b}, out={o})")
            return
        dims = plan.batch + plan.m + plan.n
        o = self.view(oacc, ext, ind, dims=dims)
        res = f"np.matmul({a}, {b}).reshape({c(tuple(ext[d] for d in dims))})"
        if g.op in self.fresh:
            self.src.emit(ind, f"np.copyto({o}, {res})")
        else:
            self.src.emit(ind, f"np.add({o}, {res}, out={o})")


# ---------------------------------------------------------------------------- backend


_Fn = Callable[..., list[np.ndarray]]


class NumpyCompiledModule:
    """The module's functions as compiled Python functions (see `source`)."""

    def __init__(self, module: ModuleOp, arrays: ArrayModule = NUMPY) -> None:
        self.arrays = arrays
        self._fns: dict[str, tuple[_Fn, int]] = {}
        self._sources: dict[str, str] = {}
        for op in module.ops:
            if not isinstance(op, func.FuncOp):
                continue
            name = op.sym_name.data
            if not op.body.blocks:
                raise LoweringError(f"numpy backend: function {name!r} has no body")
            compiler = _FuncCompiler(op, arrays)
            source = compiler.compile()
            namespace = dict(compiler.src.namespace)
            exec(compile(source, "<wrc numpy jit>", "exec"), namespace)
            self._fns[name] = (namespace["graph"], len(op.body.block.args))
            self._sources[name] = source

    @property
    def graphs(self) -> tuple[str, ...]:
        return tuple(self._fns)

    def source(self, graph_name: str) -> str:
        """The generated Python source of one function."""
        if graph_name not in self._sources:
            raise InputError(f"the module has no graph {graph_name!r}")
        return self._sources[graph_name]

    def run(self, graph_name: str, globals_: Mapping[str, np.ndarray],
            args: Sequence[np.ndarray | bool]) -> list[np.ndarray]:
        fn, n = self._fns.get(graph_name, (None, None))
        check_call(graph_name, n, args)
        assert fn is not None
        with self.arrays.errstate():
            try:
                return fn(globals_, *args)
            except KeyError as e:
                raise InputError(f"graph {graph_name!r} needs global {e.args[0]!r}") from None


class NumpyBackend:
    """The default backend: level-3 IR → Python/NumPy source, compiled once."""

    name = "numpy"

    def compile(self, module: ModuleOp) -> NumpyCompiledModule:
        return NumpyCompiledModule(module)
