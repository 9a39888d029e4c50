"""IR facts the JIT reads: buffer types, affine indexing as linear forms, constants, roots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from xdsl.dialects import func, memref
from xdsl.dialects.builtin import (
    AffineMapAttr,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    MemRefType,
    NoneAttr,
)
from xdsl.ir import Block, BlockArgument, Operation, SSAValue
from xdsl.ir.affine import (
    AffineBinaryOpExpr,
    AffineBinaryOpKind,
    AffineConstantExpr,
    AffineDimExpr,
    AffineExpr,
)
from xdsl.traits import SymbolTable

from wrc.abi import global_spec
from wrc.analysis import constant_value
from wrc.dtypes import UnsupportedDtypeError, to_numpy_dtype
from wrc.errors import LoweringError


def fail(op: Operation, why: str) -> LoweringError:
    return LoweringError(f"numpy backend: {op.name}: {why}")


_BUFFERS: dict[int, tuple[Any, tuple[tuple[int, ...], np.dtype[Any]]]] = {}  # id → (type, buffer)


def buffer(op: Operation, t: Any) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """(shape, dtype) of a static, identity-layout memref type used by `op`: derived once per
    type object (a module shares few among many values; kept while the type is, by id)."""
    known = _BUFFERS.get(id(t))
    if known is not None and known[0] is t:
        return known[1]
    spec = _buffer(op, t)
    if len(_BUFFERS) >= 4096:
        _BUFFERS.clear()
    _BUFFERS[id(t)] = (t, spec)
    return spec


def _buffer(op: Operation, t: Any) -> tuple[tuple[int, ...], np.dtype[Any]]:
    if not isinstance(t, MemRefType):
        raise fail(op, f"expected a memref, got {t}")
    shape = tuple(t.get_shape())
    if any(d < 0 for d in shape):
        raise fail(op, f"dynamic shape in {t}")
    layout = t.layout
    if not isinstance(layout, NoneAttr) and not (
        isinstance(layout, AffineMapAttr) and layout.data.is_identity()
    ):
        raise fail(op, f"non-identity layout in {t}")
    try:
        return shape, to_numpy_dtype(t.get_element_type())
    except UnsupportedDtypeError as e:
        raise fail(op, str(e)) from None


def scalar_dtype(op: Operation, t: Any) -> np.dtype[Any]:
    try:
        return to_numpy_dtype(t)
    except UnsupportedDtypeError as e:
        raise fail(op, str(e)) from None


def c_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Element strides of a C-contiguous array."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def walks_c_order(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether element `strides` walk an array of `shape` C-contiguously (dims of 1 aside)."""
    return all(d == 1 or s == c for d, s, c in zip(shape, strides, c_strides(shape), strict=True))


def linear(op: Operation, e: AffineExpr, n: int) -> tuple[list[int], int]:
    """`e` as (coefficient per dim, constant); only sums of `dim * const + const`."""
    if isinstance(e, AffineDimExpr):
        coefs = [0] * n
        coefs[e.position] = 1
        return coefs, 0
    if isinstance(e, AffineConstantExpr):
        return [0] * n, e.value
    if isinstance(e, AffineBinaryOpExpr) and e.kind in (AffineBinaryOpKind.Add, AffineBinaryOpKind.Mul):
        (ca, ka), (cb, kb) = linear(op, e.lhs, n), linear(op, e.rhs, n)
        if e.kind == AffineBinaryOpKind.Add:
            return [x + y for x, y in zip(ca, cb, strict=True)], ka + kb
        if not any(cb):
            return [x * kb for x in ca], ka * kb
        if not any(ca):
            return [y * ka for y in cb], ka * kb
    raise fail(op, f"unsupported indexing expression {e}")


def const_value(v: SSAValue) -> float | int | None:
    """The scalar value of an `arith.constant`, else None."""
    owner = v.owner
    if isinstance(owner, Operation) and owner.name == "arith.constant":
        attr = owner.properties.get("value")
        if isinstance(attr, FloatAttr | IntegerAttr):
            return attr.value.data
    return None


def inline_constant(v: SSAValue) -> np.ndarray | None:
    """The value `v` holds when it is a constant global with its value inline in the IR
    (`dense<...>`, read through reshapes): known when the code is generated, the same at
    every call (no update writes a constant). Else None."""
    while isinstance(v.owner, memref.CollapseShapeOp | memref.ExpandShapeOp):
        v = v.owner.src
    owner = v.owner
    if not isinstance(owner, memref.GetGlobalOp):
        return None
    g = SymbolTable.lookup_symbol(owner, owner.name_)
    if not isinstance(g, memref.GlobalOp) or g.constant is None \
            or not isinstance(g.initial_value, DenseIntOrFPElementsAttr) or (spec := global_spec(g)) is None:
        return None
    return constant_value(g, spec)


def root(v: SSAValue) -> object | None:
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
