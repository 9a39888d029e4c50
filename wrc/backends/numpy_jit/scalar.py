"""Scalar (arith/math) ops as NumPy expressions: the op tables and `scalar_expr`.

The same expression serves a body op of a `linalg.generic` (on whole strided views) and a
function-level scalar op. New ops are new table rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, FloatAttr, IntegerAttr
from xdsl.ir import Operation

from wrc.backends.arrays import ArrayModule
from wrc.backends.numpy_jit.ir import fail, scalar_dtype
from wrc.backends.numpy_jit.source import Source

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
"""Body ops computed by a function of the `ArrayModule` over whole arrays (no ufunc exists);
each takes `out=` (which may overlap its input) as a ufunc does."""

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
               "arith.maxnumf", "arith.minnumf", "arith.maxsi", "arith.minsi", "arith.ori")
}
"""Reduction combiners `out = comb(out, expr)` and the ufunc whose `.reduce` they are."""


def is_ufunc(op: Operation) -> bool:
    """`op` is one ufunc call, which can write its result with `out=` (the `_FUNCS`, which
    take `out=` as ufuncs do, and comparisons that are one ufunc included)."""
    return op.name in _UFUNCS or op.name in _FUNCS or _one_ufunc_compare(op) is not None


_SELF_CMPF: dict[int, str] = {14: "np.isnan({a})"}
"""cmpf predicates of a value with itself that are simpler than the table's two-operand form
(`x != x`, an IsNaN: `uno(x, x)`)."""


def _cmpf_entry(op: Operation, pred: int) -> str | None:
    if op.operands[0] is op.operands[1] and pred in _SELF_CMPF:
        return _SELF_CMPF[pred]
    return _CMPF.get(pred)


def _one_ufunc_compare(op: Operation) -> str | None:
    """The table entry of a comparison that is a single ufunc call, such as `np.less(a, b)`."""
    table = _CMPF if op.name == "arith.cmpf" else _CMPI if op.name == "arith.cmpi" else None
    pred = op.properties.get("predicate") if table is not None else None
    if table is None or not isinstance(pred, IntegerAttr):
        return None
    expr = _cmpf_entry(op, pred.value.data) if table is _CMPF else table.get(pred.value.data)
    return expr if expr is not None and expr.count("(") == 1 else None


def combiner(op: Operation) -> str | None:
    """The ufunc whose `.reduce` a reduction `out = op(out, expr)` is, if any."""
    return _COMBINERS.get(op.name)


def identity(ufunc: str, dtype: np.dtype[Any]) -> float | int:
    """The value `v` with `comb(v, x) == x`: a fill with it needs not be done."""
    if ufunc in ("add", "bitwise_or"):
        return 0
    if ufunc == "multiply":
        return 1
    big: float | int = math.inf if dtype.kind == "f" else int(np.iinfo(dtype).max)
    small: float | int = -math.inf if dtype.kind == "f" else int(np.iinfo(dtype).min)
    return small if ufunc in ("maximum", "fmax") else big


def scalar_expr(op: Operation, args: list[str], out: str | None, src: Source, arrays: ArrayModule) -> str:
    """The NumPy expression of one arith/math op (elementwise on arrays or scalars);
    `out`: the array a ufunc writes into."""
    name = op.name
    tail = f", out={out}" if out else ""
    if name == "arith.constant":
        attr = op.properties.get("value")
        t = op.results[0].type
        if isinstance(attr, FloatAttr | IntegerAttr):
            value = scalar_dtype(op, t).type(attr.value.data)
            if not arrays.host:  # (a device module takes NumPy scalars, not host arrays)
                return src.const(value)
            # A 0-d array: NumPy takes it as cheaply as an array operand, a NumPy scalar
            # costs a ufunc call ~0.3 µs more (its conversion).
            arr = np.array(value)
            arr.flags.writeable = False
            return src.const(arr)
        if isinstance(attr, DenseIntOrFPElementsAttr):
            shape = tuple(attr.get_shape() or ())
            arr = np.array(attr.get_values(), scalar_dtype(op, attr.get_element_type())).reshape(shape)
            arr.flags.writeable = False
            return src.const(arr)
        raise fail(op, f"unsupported constant {attr}")
    if name in _UFUNCS:
        return f"np.{_UFUNCS[name]}({', '.join(args)}{tail})"
    if name in _INT_DIV:
        return _INT_DIV[name].format(a=args[0], b=args[1])
    if name in _FUNCS:
        return f"{src.const(getattr(arrays, _FUNCS[name]))}({args[0]}{tail})"
    if name == "arith.select":
        return f"np.where({args[0]}, {args[1]}, {args[2]})"
    if name in ("arith.cmpf", "arith.cmpi"):
        pred = op.properties["predicate"]
        assert isinstance(pred, IntegerAttr)
        entry = _cmpf_entry(op, pred.value.data) if name == "arith.cmpf" else _CMPI.get(pred.value.data)
        if entry is None:
            raise fail(op, f"unsupported predicate {pred.value.data}")
        expr = entry.format(a=args[0], b=args[1])
        return expr[:-1] + tail + ")" if tail and _one_ufunc_compare(op) else expr
    if name in _CASTS:
        return f"np.asarray({args[0]}).astype({src.const(scalar_dtype(op, op.results[0].type))})"
    raise fail(op, "unsupported operation")
