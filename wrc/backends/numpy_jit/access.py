"""Access analysis of a `linalg.generic`: each operand as a strided view over the loop space.

An indexing-map result `Σ dim·coef + const` gives the operand a stride per loop dim and a
base offset; dims it does not use get stride 0 (NumPy broadcasts them). Loop extents come
from map results that are a bare dim, as linalg's shapes-to-loops map does.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.dialects.builtin import MemRefType
from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import BlockArgument, Operation, SSAValue

from wrc.backends.numpy_jit.ir import buffer, c_strides, fail, linear, scalar_dtype
from wrc.backends.numpy_jit.scalar import combiner
from wrc.ir_read import inputs, outputs


@dataclass(frozen=True)
class Access:
    """An operand of a generic: element strides per loop dim and base offset."""

    value: SSAValue
    shape: tuple[int, ...] | None  # buffer shape; None for a scalar operand
    dtype: np.dtype[Any]
    strides: tuple[int, ...]  # per loop dim, elements (0: the dim is not used)
    offset: int

    def uses(self, k: int) -> bool:
        return self.strides[k] != 0


@dataclass(frozen=True)
class Generic:
    """A generic as loops over strided views.

    `kind`: "parallel" (no reduction dim of extent > 1) or "reduce" (`yield comb(out, expr)`);
    `mac`: for an additive reduction of a product of two inputs (a multiply-accumulate),
    the indices of those inputs (a GEMM candidate); `windowed`: a reduction over sliding
    windows (an input index is a sum of a parallel and a reduction dim, as `oh * s + kh` in
    a pool or a convolution).
    """

    op: linalg.GenericOp
    extents: tuple[int, ...]
    reduction: tuple[int, ...]  # reduction loop dims with extent > 1
    accesses: tuple[Access, ...]
    kind: str
    combiner: str | None = None  # ufunc name of the reduction combiner
    expr: SSAValue | None = None  # reduce: the value combined into the output
    mac: tuple[int, int] | None = None
    windowed: bool = False

    @functools.cached_property
    def n_in(self) -> int:  # (cached: xDSL's variadic operand accessors are slow, and read often)
        return len(inputs(self.op))

    @property
    def out(self) -> Access:
        return self.accesses[self.n_in]

    def full_cover(self, j: int = 0) -> bool:
        """Output j's map touches every element of its buffer exactly once."""
        acc = self.accesses[self.n_in + j]
        assert acc.shape is not None
        dims = [k for k in range(len(self.extents)) if acc.uses(k) and self.extents[k] > 1]
        return (
            acc.offset == 0
            and math.prod(self.extents[k] for k in dims) == math.prod(acc.shape)
            and injective([acc.strides[k] for k in dims], [self.extents[k] for k in dims])
        )

    @property
    def fill_ok(self) -> bool:
        """A fill of the output right before may be skipped (its value permitting): the
        generic writes every element without reading the old one, or reduces into it."""
        if not self.reduction:
            out_args = self.op.body.block.args[self.n_in:]
            return len(out_args) == 1 and not out_args[0].uses and self.full_cover()
        return self.full_cover()


def injective(strides: Sequence[int], extents: Sequence[int]) -> bool:
    """Sufficient test that distinct loop points address distinct elements."""
    reach = 0
    for s, e in sorted(zip(map(abs, strides), extents, strict=True)):
        if s <= reach:
            return False
        reach += s * (e - 1)
    return True


@dataclass(frozen=True)
class _Loops:
    """What `analyze` derives from a generic's maps, iterators and operand types alone."""

    extents: tuple[int, ...]
    reduction: tuple[int, ...]
    accesses: tuple[tuple[tuple[int, ...] | None, np.dtype[Any], tuple[int, ...], int], ...]  # Access less its value
    windowed: bool


_LOOPS: dict[tuple[Any, ...], _Loops] = {}  # by (maps, iterators, operand types, inputs)
_LOOPS_MAX = 4096  # signatures kept (a model has a few dozen; cleared when full)


def analyze(op: linalg.GenericOp) -> Generic:
    """The generic's loop extents and operand views; a `LoweringError` for what the JIT
    cannot run (tensor results, non-affine-linear maps, out-of-bounds or aliased writes,
    a reduction not of the form `yield comb(out, expr)`).

    The loops and views depend only on the maps, iterators and operand types: derived once
    per such signature (a model repeats a few dozen of them thousands of times)."""
    if op.res:
        raise fail(op, "tensor results (level 3 needs memref operands)")
    ins = inputs(op)
    operands = [*ins, *outputs(op)]
    n_in = len(ins)
    key = (op.indexing_maps, op.iterator_types, tuple(v.type for v in operands), n_in)
    try:
        loops = _LOOPS.get(key)
    except TypeError:  # an unhashable type: not kept
        loops = key = None
    if loops is None:
        loops = _loops(op, operands, n_in)
        if key is not None:
            if len(_LOOPS) >= _LOOPS_MAX:
                _LOOPS.clear()
            _LOOPS[key] = loops
    accesses = tuple(Access(v, *a) for v, a in zip(operands, loops.accesses, strict=True))
    ext, reduction = loops.extents, loops.reduction
    if not reduction:
        return Generic(op, ext, reduction, accesses, "parallel")

    # A reduction: `yield comb(out, expr)` where `out` is read only there.
    block = op.body.block
    out_args = block.args[n_in:]
    yield_op = block.last_op
    assert yield_op is not None
    comb = yield_op.operands[0].owner if len(yield_op.operands) == 1 else None
    ufunc = combiner(comb) if isinstance(comb, Operation) else None
    if (
        len(out_args) != 1
        or not isinstance(comb, Operation)
        or ufunc is None
        or comb.results[0].uses.get_length() != 1
        or out_args[0].uses.get_length() != 1
        or out_args[0] not in comb.operands
    ):
        raise fail(op, "a reduction must yield `combiner(out, expr)` with out read only there")
    expr = comb.operands[1] if comb.operands[0] is out_args[0] else comb.operands[0]
    if expr is out_args[0]:
        raise fail(op, "a reduction must yield `combiner(out, expr)` with out read only there")
    e = expr.owner
    mac = None
    if (
        ufunc == "add"
        and isinstance(e, Operation)
        and e.name in ("arith.mulf", "arith.muli")
        and e.results[0].uses.get_length() == 1
        and all(isinstance(a, BlockArgument) and a.owner is block and a.index < n_in for a in e.operands)
    ):
        x, y = (a.index for a in e.operands if isinstance(a, BlockArgument))
        mac = (x, y)
    return Generic(op, ext, reduction, accesses, "reduce", ufunc, expr, mac, loops.windowed)


def _loops(op: linalg.GenericOp, operands: Sequence[SSAValue], n_in: int) -> _Loops:
    """`analyze`'s signature part: reads only `op`'s maps, iterators and operand types."""
    maps = [m.data for m in op.indexing_maps]
    iters = [str(it.data) for it in op.iterator_types]
    n = len(iters)
    if len(maps) != len(operands) or any(m.num_dims != n or m.num_symbols for m in maps):
        raise fail(op, "indexing maps do not match the operands and iterators")
    if any(it not in ("parallel", "reduction") for it in iters):
        raise fail(op, f"unsupported iterator types {iters}")

    extents: list[int | None] = [None] * n
    lin_maps: list[list[tuple[list[int], int]]] = []
    for v, m in zip(operands, maps, strict=True):
        shape = buffer(op, v.type)[0] if isinstance(v.type, MemRefType) else ()
        if len(m.results) != len(shape):
            raise fail(op, f"indexing map {m} does not match operand type {v.type}")
        lin = [linear(op, e, n) for e in m.results]
        lin_maps.append(lin)
        for (coefs, const), size in zip(lin, shape, strict=True):
            if const == 0 and sorted(coefs) == [0] * (n - 1) + [1]:
                k = coefs.index(1)
                if extents[k] is not None and extents[k] != size:
                    raise fail(op, f"loop d{k} has extents {extents[k]} and {size}")
                extents[k] = size
    if any(e is None for e in extents):
        raise fail(op, "a loop dimension's extent cannot be inferred from the operands")
    ext = tuple(e for e in extents if e is not None)

    accesses: list[tuple[tuple[int, ...] | None, np.dtype[Any], tuple[int, ...], int]] = []
    for v, lin in zip(operands, lin_maps, strict=True):
        if not isinstance(v.type, MemRefType):
            accesses.append((None, scalar_dtype(op, v.type), (0,) * n, 0))
            continue
        shape, dtype = buffer(op, v.type)
        bstrides = c_strides(shape)
        strides, offset = [0] * n, 0
        for (coefs, const), size, bs in zip(lin, shape, bstrides, strict=True):
            lo = const + sum(min(0, c * (e - 1)) for c, e in zip(coefs, ext, strict=True))
            hi = const + sum(max(0, c * (e - 1)) for c, e in zip(coefs, ext, strict=True))
            if math.prod(ext) and not 0 <= lo <= hi < size:
                raise fail(op, f"indexing map reaches [{lo}, {hi}] of a dimension of size {size}")
            offset += const * bs
            for k, c in enumerate(coefs):
                strides[k] += c * bs if ext[k] > 1 else 0
        accesses.append((shape, dtype, tuple(strides), offset))

    reduction = tuple(k for k in range(n) if iters[k] == "reduction" and ext[k] > 1)
    for out_shape, _, out_strides, _ in accesses[n_in:]:
        if out_shape is None:
            raise fail(op, "a scalar output")
        for k in range(n):
            if ext[k] > 1 and (out_strides[k] != 0) != (k not in reduction):
                raise fail(op, "an output map must use exactly the parallel loop dims")
        dims = [k for k in range(n) if out_strides[k] != 0]
        if not injective([out_strides[k] for k in dims], [ext[k] for k in dims]):
            raise fail(op, "an output map writes some element twice")
    windowed = bool(reduction) and any(
        any(coefs[k] for k in reduction) and any(coefs[k] and ext[k] > 1 and k not in reduction for k in range(n))
        for lin in lin_maps[:n_in] for coefs, _ in lin)
    return _Loops(ext, reduction, tuple(accesses), windowed)
