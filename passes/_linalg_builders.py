"""Builders of tensor-level linalg IR shared by `convert-ge-to-linalg` (docs/internals.md, level 2).

Every helper inserts its ops through a `Builder` (a `PatternRewriter` is one) and returns
the tensor value it produced. Only `tensor.empty`, `linalg.fill`, `linalg.generic` and the
`tensor` reshapes are emitted; generic bodies hold `arith`/`math` ops only.

Indexing maps follow one rule so that `convert-linalg-to-loops` (which reads loop ranges
off operand shapes) accepts them: every loop dimension appears **alone** as a result of
some map, and other results are `dim * c + ... + offset` sums.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Sequence

from xdsl.builder import Builder
from xdsl.dialects import arith, tensor
from xdsl.dialects.builtin import (
    UNKNOWN_LOC,
    AffineMapAttr,
    AnyFloat,
    ArrayAttr,
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    TensorType,
    i32,
    i64,
)
from xdsl.dialects.linalg.attrs import IteratorType, IteratorTypeAttr
from xdsl.dialects.linalg.ops import FillOp, GenericOp, YieldOp
from xdsl.ir import Attribute, Block, BlockArgument, Operation, Region, SSAValue
from xdsl.ir.affine import AffineExpr, AffineMap

from wrc.ir_read import clone_body, new_op

Body = Callable[[Sequence[BlockArgument]], Sequence[SSAValue]]
"""Builds a generic's body from its block arguments (ins, then outs); returns the yielded values."""

PARALLEL = IteratorTypeAttr(IteratorType.PARALLEL)
REDUCTION = IteratorTypeAttr(IteratorType.REDUCTION)


def dim(i: int) -> AffineExpr:
    return AffineExpr.dimension(i)


def const_expr(c: int) -> AffineExpr:
    return AffineExpr.constant(c)


def amap(num_dims: int, results: Sequence[AffineExpr]) -> AffineMap:
    return AffineMap(num_dims, 0, tuple(results))


def identity(rank: int) -> AffineMap:
    return AffineMap.identity(rank)


def shape_of(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return value.type.get_shape()


def element_type_of(value: SSAValue) -> Attribute:
    assert isinstance(value.type, TensorType)
    return value.type.element_type


def scalar_attr(value: float, element_type: Attribute) -> FloatAttr | IntegerAttr:
    if isinstance(element_type, AnyFloat):
        return FloatAttr(value, element_type)
    assert isinstance(element_type, IntegerType)
    return IntegerAttr(int(value), element_type)


def scalar(value: float, element_type: Attribute) -> SSAValue:
    """An `arith.constant` created where the caller's implicit builder is (inside a body)."""
    attr = _scalar_attr(repr(value), value, element_type)
    return arith.ConstantOp.create(result_types=(element_type,), properties={"value": attr}, location=UNKNOWN_LOC).result


@functools.lru_cache(maxsize=1024)
def _scalar_attr(key: str, value: float, element_type: Attribute) -> FloatAttr | IntegerAttr:
    """`scalar_attr`, made once per value (attributes are immutable); keyed by `repr` so that
    -0.0 and 0.0, which compare equal, are two entries."""
    return scalar_attr(value, element_type)


@functools.cache
def _defaults_only(kind: Callable[..., Operation]) -> bool:
    """Whether `kind(a, b)` is `kind.create(operands=(a, b), result_types=(a.type,))`: arith's
    float and integer binary ops, whose builders set only properties that IRDL's
    `__post_init__` fills with the same defaults."""
    return isinstance(kind, type) and issubclass(
        kind, arith.FloatingPointLikeBinaryOperation | arith.SignlessIntegerBinaryOperation)


def binary(kind: Callable[..., Operation], a: SSAValue, b: SSAValue) -> SSAValue:
    """`kind(a, b)`'s result, created where the caller's implicit builder is; arith's binary
    ops without their IRDL builder (most of the ops a lowering creates are body ops)."""
    if _defaults_only(kind):
        assert isinstance(kind, type)
        return kind.create(operands=(a, b), result_types=(a.type,), location=UNKNOWN_LOC).results[0]
    return kind(a, b).results[0]


# The ops below are made with `new_op` (`Op.create` in one call) and the properties their
# xDSL builders would set (`tensor.EmptyOp((), t)`, `arith.ConstantOp(v)`,
# `FillOp((cst,), (init,), (t,))`, `GenericOp(...)`): the IRDL builder's argument
# normalisation was half of the pass's time on large graphs (docs/performance.md, "Issue 12:
# compile and cold load (session 3)"). The location is given: xDSL looks its default up by
# an import per op.


@functools.cache
def _segments(*sizes: int) -> DenseArrayBase:
    """The `operandSegmentSizes` property of a linalg op with these many ins and outs."""
    return DenseArrayBase.from_list(i32, sizes)


@functools.lru_cache(maxsize=4096)
def _maps_attr(maps: tuple[AffineMap, ...]) -> ArrayAttr[AffineMapAttr]:
    """A generic's `indexing_maps`, made once per tuple of maps (xDSL checks each new attribute's
    parameters: ~20 µs for a generic's maps)."""
    return ArrayAttr([AffineMapAttr(m) for m in maps])


@functools.lru_cache(maxsize=1024)
def _iterators_attr(iterators: tuple[IteratorTypeAttr, ...]) -> ArrayAttr[IteratorTypeAttr]:
    return ArrayAttr(iterators)


def _tensor(element_type: Attribute, shape: Sequence[int]) -> TensorType:
    return _tensor_type(element_type, tuple(shape))


@functools.lru_cache(maxsize=4096)
def _tensor_type(element_type: Attribute, shape: tuple[int, ...]) -> TensorType:
    return TensorType(element_type, shape)


def empty(b: Builder, shape: Sequence[int], element_type: Attribute) -> SSAValue:
    return b.insert(new_op(tensor.EmptyOp, result_types=(_tensor(element_type, shape),))).tensor


def filled(b: Builder, shape: Sequence[int], element_type: Attribute, value: float) -> SSAValue:
    """`tensor.empty` + `linalg.fill` with a scalar `arith.constant`."""
    init = empty(b, shape, element_type)
    attr = _scalar_attr(repr(value), value, element_type)
    cst = b.insert(new_op(arith.ConstantOp, result_types=(element_type,), properties={"value": attr})).result
    body = Block(arg_types=(element_type, element_type))  # FillOp's hidden region: yield the value
    body.add_op(new_op(YieldOp, operands=(body.args[0],)))
    fill = new_op(FillOp, operands=(cst, init), result_types=(init.type,),
                  properties={"operandSegmentSizes": _segments(1, 1)}, regions=(Region(body),))
    return b.insert(fill).results[0]


_BODIES: dict[tuple[object, ...], Region] = {}
"""Generic bodies built once per (body function, what it captures, block argument types),
then copied: a body built by xDSL's implicit builder (which swaps `Operation.__post_init__`
in and out around it) cost 2-3x its copy, and a model repeats a few dozen bodies thousands
of times (docs/performance.md, "Issue 12: compile and cold load (session 9)")."""
_BODIES_MAX = 1024


def _body_key(body: Body, arg_types: Sequence[Attribute]) -> tuple[object, ...] | None:
    """What `body(args)` makes depends on, for a plain function whose captured values are
    classes, functions (by identity), numbers, strings, None or attributes (by value; floats
    by `repr`: -0.0 and 0.0 are two bodies); None (not kept) for anything else."""
    code = getattr(body, "__code__", None)
    if code is None or getattr(body, "__defaults__", None) or getattr(body, "__kwdefaults__", None):
        return None
    captured: list[object] = []
    for cell in getattr(body, "__closure__", None) or ():
        try:
            c = cell.cell_contents
        except ValueError:  # an empty cell
            return None
        if isinstance(c, float):
            captured.append((float, repr(c)))
        elif c is None or type(c) in (int, bool, str):
            captured.append((type(c), c))
        elif isinstance(c, type | types.FunctionType | types.BuiltinFunctionType):
            captured.append(_Same(c))
        elif isinstance(c, Attribute) and not isinstance(c, FloatAttr):
            captured.append((type(c), c))
        else:
            return None
    key = (code, tuple(captured), tuple(arg_types))
    try:
        hash(key)
    except TypeError:  # an unhashable attribute
        return None
    return key


class _Same:
    """A captured class or function, compared by identity (a function's closure may hold
    values that equality would not see)."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def generic(
    b: Builder,
    inputs: Sequence[SSAValue],
    init: SSAValue,
    maps: Sequence[AffineMap],
    iterators: Sequence[IteratorTypeAttr],
    body: Body,
) -> SSAValue:
    """One `linalg.generic` on tensors writing `init` (maps: one per input, then the output's)."""
    arg_types = [element_type_of(v) for v in (*inputs, init)]
    key = _body_key(body, arg_types)
    template = _BODIES.get(key) if key is not None else None
    region = clone_body(template) if template is not None else None
    if region is None:
        @Builder.implicit_region(arg_types)
        def region(args: tuple[BlockArgument, ...]) -> None:
            YieldOp.create(operands=body(args), location=UNKNOWN_LOC)  # the implicit builder inserts it

        if key is not None:
            if len(_BODIES) >= _BODIES_MAX:
                _BODIES.clear()
            if (copy := clone_body(region)) is not None:  # (None: not self-contained, built each time)
                _BODIES[key] = copy
    op = new_op(
        GenericOp,
        operands=(*inputs, init), result_types=(init.type,), regions=(region,),
        properties={"indexing_maps": _maps_attr(tuple(maps)), "iterator_types": _iterators_attr(tuple(iterators)),
                    "operandSegmentSizes": _segments(len(inputs), 1)},
    )
    return b.insert(op).results[0]


def broadcast_map(in_shape: Sequence[int], out_shape: Sequence[int]) -> AffineMap:
    """The map reading an operand of `in_shape` broadcast (NumPy rules) to `out_shape`.

    Leading missing dims are dropped from the map; a size-1 dim facing a larger one is
    read at constant index 0.
    """
    lead = len(out_shape) - len(in_shape)
    return amap(
        len(out_shape),
        [
            const_expr(0) if size == 1 and out_shape[lead + i] != 1 else dim(lead + i)
            for i, size in enumerate(in_shape)
        ],
    )


def drop_dims_map(rank: int, dropped: Sequence[int]) -> AffineMap:
    """The map of a value reduced over `dropped` (e.g. softmax's max), read over `rank` loops."""
    return amap(rank, [dim(i) for i in range(rank) if i not in dropped])


def elementwise(
    b: Builder,
    inputs: Sequence[SSAValue],
    out_shape: Sequence[int],
    element_type: Attribute,
    body: Body,
    maps: Sequence[AffineMap] | None = None,
) -> SSAValue:
    """A parallel generic over `out_shape`; inputs are broadcast unless `maps` are given."""
    if maps is None:
        maps = [broadcast_map(shape_of(v), out_shape) for v in inputs]
    rank = len(out_shape)
    return generic(
        b, inputs, empty(b, out_shape, element_type), [*maps, identity(rank)],
        [PARALLEL] * rank, body,
    )


def reduce(
    b: Builder,
    x: SSAValue,
    axes: Sequence[int],
    keepdims: bool,
    init_value: float,
    combine: Callable[[SSAValue, SSAValue], SSAValue],
) -> SSAValue:
    """Reduce `x` over `axes` into a buffer filled with `init_value`: `acc = combine(acc, x)`.

    With `keepdims` the reduced dims stay as size-1 dims, written at constant index 0.
    """
    shape = shape_of(x)
    rank = len(shape)
    out_shape = [1 if i in axes else d for i, d in enumerate(shape) if keepdims or i not in axes]
    out_map = amap(
        rank,
        [const_expr(0) if i in axes else dim(i) for i in range(rank) if keepdims or i not in axes],
    )
    init = filled(b, out_shape, element_type_of(x), init_value)
    return generic(
        b, [x], init, [identity(rank), out_map],
        [REDUCTION if i in axes else PARALLEL for i in range(rank)],
        lambda a: [combine(a[1], a[0])],
    )


def pad(
    b: Builder, x: SSAValue, low: Sequence[int], high: Sequence[int], value: float
) -> tuple[SSAValue, list[int]]:
    """`x` padded with `value`: a filled buffer and a copy generic whose output map has offsets.

    Returns the padded tensor and, per dim, an extra offset readers must add to their
    indices. A dim padded only at its high end gets one more low cell (offset 1): its
    output-map result must be `d + c` with c > 0, because a bare `d` would tell linalg the
    buffer is exactly as large as the input.
    """
    shift = [1 if lo == 0 and hi > 0 else 0 for lo, hi in zip(low, high, strict=True)]
    if not any(low) and not any(high):
        return x, shift
    shape = shape_of(x)
    rank = len(shape)
    low = [lo + s for lo, s in zip(low, shift, strict=True)]
    padded = [d + lo + hi for d, lo, hi in zip(shape, low, high, strict=True)]
    init = filled(b, padded, element_type_of(x), value)
    out_map = amap(rank, [dim(i) + const_expr(lo) if lo else dim(i) for i, lo in enumerate(low)])
    y = generic(b, [x], init, [identity(rank), out_map], [PARALLEL] * rank, lambda a: [a[0]])
    return y, shift


def reassociation(groups: Sequence[Sequence[int]]) -> ArrayAttr[ArrayAttr[IntegerAttr]]:
    return ArrayAttr([ArrayAttr([IntegerAttr(i, i64) for i in g]) for g in groups])


def collapse(b: Builder, x: SSAValue, groups: Sequence[Sequence[int]], shape: Sequence[int]) -> SSAValue:
    op = tensor.CollapseShapeOp(
        operands=[x],
        result_types=[TensorType(element_type_of(x), shape)],
        properties={"reassociation": reassociation(groups)},
    )
    return b.insert(op).result


def expand(b: Builder, x: SSAValue, groups: Sequence[Sequence[int]], shape: Sequence[int]) -> SSAValue:
    op = tensor.ExpandShapeOp(x, (), reassociation(groups), shape, TensorType(element_type_of(x), shape))
    return b.insert(op).result
