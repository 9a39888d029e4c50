"""`convert-ge-to-linalg`: lower the `ge` compute ops to tensor-level linalg (docs/internals.md, level 2).

Each compute op becomes `tensor.empty` + optional `linalg.fill` + `linalg.generic`s whose bodies
use `arith`/`math` only (NumPy/ONNX semantics); reshapes become `tensor.collapse_shape` /
`tensor.expand_shape`. Graph structure ops (`ge.data`, `ge.const`, `ge.variable`,
`ge.read_variable`, `ge.assign`, `ge.assign_if_nonempty`) are left untouched for
`ge-bufferize`. Dynamic dimensions are rejected up front with a `LoweringError` naming the op.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import UnionType
from typing import Union, get_args, get_origin

from xdsl.context import Context
from xdsl.dialects import arith, math
from xdsl.dialects.builtin import (
    AnyFloat,
    DenseArrayBase,
    IntegerAttr,
    IntegerType,
    ModuleOp,
    StringAttr,
    TensorType,
    i1,
    i64,
)
from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.ir.affine import AffineMap
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint

from wrc.abi import GATHER_AXIS, GATHER_CALL
from wrc.dialects import ge
from wrc.errors import LoweringError
from wrc.ir_read import walk
from wrc.passes import _linalg_builders as B
from wrc.passes._linalg_builders import PARALLEL, REDUCTION, amap, dim, identity
from wrc.passes._rewriter import OnePassRewriter
from wrc.passes._weight_only import is_matmul_transpose

NEG_INF = float("-inf")


def _result(op: Operation) -> TensorType:
    out = op.results[0].type
    assert isinstance(out, TensorType)
    return out


def _is_float(t: Attribute) -> bool:
    return isinstance(t, AnyFloat)


def _ints(attr: DenseArrayBase) -> list[int]:
    return [int(v) for v in attr.get_values()]


# Scalar arithmetic for generic bodies, picking the float or integer arith op by type. These
# run while `B.generic` builds a body (an implicit builder is open), so the ops constructed
# here are inserted into that body.


def _add(a: SSAValue, b: SSAValue) -> SSAValue:
    return B.binary(arith.AddfOp if _is_float(a.type) else arith.AddiOp, a, b)


def _mul(a: SSAValue, b: SSAValue) -> SSAValue:
    return B.binary(arith.MulfOp if _is_float(a.type) else arith.MuliOp, a, b)


def _max(a: SSAValue, b: SSAValue) -> SSAValue:
    return B.binary(arith.MaximumfOp, a, b)


def _mac(args: Sequence[SSAValue]) -> list[SSAValue]:
    """Body of a multiply-accumulate generic: ins (x, w), out acc."""
    return [_add(args[2], _mul(args[0], args[1]))]


def _floor_mod(a: SSAValue, b: SSAValue) -> Operation:
    """`remsi(a, b)`, plus `b` where it is non-zero and its sign differs from `b`'s."""
    r = arith.RemSIOp(a, b).result
    zero = B.scalar(0, a.type)
    flip = arith.XOrIOp(arith.CmpiOp(r, zero, "slt").result, arith.CmpiOp(b, zero, "slt").result).result
    fix = arith.AndIOp(arith.CmpiOp(r, zero, "ne").result, flip).result
    return arith.SelectOp(fix, arith.AddiOp(r, b).result, r)


_BINARY: dict[type[Operation], tuple[Callable[..., Operation], Callable[..., Operation]]] = {
    ge.AddOp: (arith.AddfOp, arith.AddiOp),
    ge.SubOp: (arith.SubfOp, arith.SubiOp),
    ge.MulOp: (arith.MulfOp, arith.MuliOp),
    ge.DivOp: (arith.DivfOp, arith.DivSIOp),  # integer division truncates (ONNX Div)
    ge.PowOp: (math.PowFOp, math.PowFOp),  # float only (verifier)
    ge.MaximumOp: (arith.MaximumfOp, arith.MaxSIOp),
    ge.MinimumOp: (arith.MinimumfOp, arith.MinSIOp),
    ge.LogicalAndOp: (arith.AndIOp, arith.AndIOp),  # i1 only (verifier)
    ge.LogicalOrOp: (arith.OrIOp, arith.OrIOp),
    ge.LogicalXorOp: (arith.XOrIOp, arith.XOrIOp),
    ge.FModOp: (arith.RemSIOp, arith.RemSIOp),  # integers only (verifier)
    ge.FloorModOp: (_floor_mod, _floor_mod),
}


class LowerElementwiseBinary(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.ElementwiseBinaryOp, rewriter: PatternRewriter) -> None:
        if isinstance(op, ge.CompareOp):
            return  # LowerCompare
        out = _result(op)
        float_op, int_op = _BINARY[type(op)]
        kind = float_op if _is_float(out.element_type) else int_op
        y = B.elementwise(
            rewriter, [op.lhs, op.rhs], out.get_shape(), out.element_type,
            lambda a: [B.binary(kind, a[0], a[1])],
        )
        rewriter.replace(op, [], [y])


def _cube(x: SSAValue) -> SSAValue:
    return arith.MulfOp(arith.MulfOp(x, x).result, x).result


def _fourth(x: SSAValue) -> SSAValue:
    square = arith.MulfOp(x, x).result
    return arith.MulfOp(square, square).result


_SMALL_POWERS: dict[float, Callable[[SSAValue], SSAValue]] = {
    1.0: lambda x: x,
    2.0: lambda x: arith.MulfOp(x, x).result,
    3.0: _cube,
    4.0: _fourth,
    0.5: lambda x: math.SqrtOp(x).result,
    -1.0: lambda x: arith.DivfOp(B.scalar(1.0, x.type), x).result,
}
"""`x ** c` for the exponents models use, as a body without `math.powf`: a general power
(`np.power`) costs ~25x `x * x * x` (within 1-2 ulp of pow; sqrt and 1/x are exact)."""


def _inline_values(v: SSAValue) -> Sequence[int | float] | None:
    """The values of `v` when it is an inline constant (`ge.const ... = dense<...>`), else None
    (a weight-table constant's bytes are not in the IR)."""
    const = v.owner
    return const.value.get_values() if isinstance(const, ge.ConstOp) and const.value is not None else None


def _splat_exponent(v: SSAValue) -> float | None:
    """The exponent when `v` is an inline constant with one value everywhere, else None."""
    values = _inline_values(v)
    splat = set() if values is None else {float(x) for x in values}
    return splat.pop() if len(splat) == 1 else None


class LowerSmallConstantPow(RewritePattern):
    """`ge.pow` by an inline constant in `_SMALL_POWERS`: multiplications, sqrt or 1/x."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.PowOp, rewriter: PatternRewriter) -> None:
        c = _splat_exponent(op.rhs)
        power = None if c is None else _SMALL_POWERS.get(c)
        if power is None:
            return  # LowerElementwiseBinary: math.powf
        out = _result(op)
        y = B.elementwise(rewriter, [op.lhs], out.get_shape(), out.element_type, lambda a: [power(a[0])])
        rewriter.replace(op, [], [y])


def _relu(x: SSAValue) -> SSAValue:
    return B.binary(arith.MaximumfOp, x, B.scalar(0.0, x.type))


def _sigmoid(x: SSAValue) -> SSAValue:
    one = B.scalar(1.0, x.type)
    e = math.ExpOp(arith.NegfOp(x).result).result
    return arith.DivfOp(one, arith.AddfOp(one, e).result).result


def _sign(x: SSAValue) -> SSAValue:
    """`x > 0 ? 1 : (x < 0 ? -1 : x)`: 0 stays 0 and NaN stays NaN."""
    zero = B.scalar(0, x.type)
    if _is_float(x.type):
        pos, neg = arith.CmpfOp(x, zero, "ogt").result, arith.CmpfOp(x, zero, "olt").result
    else:
        pos, neg = arith.CmpiOp(x, zero, "sgt").result, arith.CmpiOp(x, zero, "slt").result
    inner = arith.SelectOp(neg, B.scalar(-1, x.type), x).result
    return arith.SelectOp(pos, B.scalar(1, x.type), inner).result


_UNARY: dict[type[Operation], Callable[[SSAValue], SSAValue]] = {
    ge.ReluOp: _relu,
    ge.SigmoidOp: _sigmoid,
    ge.TanhOp: lambda x: math.TanhOp(x).result,
    ge.ExpOp: lambda x: math.ExpOp(x).result,
    ge.SqrtOp: lambda x: math.SqrtOp(x).result,
    ge.LogOp: lambda x: math.LogOp(x).result,
    ge.NegOp: lambda x: arith.NegfOp(x).result,
    ge.AbsOp: lambda x: math.AbsFOp(x).result,
    ge.ErfOp: lambda x: math.ErfOp(x).result,
    ge.LogicalNotOp: lambda x: arith.XOrIOp(x, B.scalar(1, i1)).result,
    ge.SignOp: _sign,
}


class LowerElementwiseUnary(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.ElementwiseUnaryOp, rewriter: PatternRewriter) -> None:
        out = _result(op)
        fn = _UNARY[type(op)]
        y = B.elementwise(rewriter, [op.input], out.get_shape(), out.element_type, lambda a: [fn(a[0])])
        rewriter.replace(op, [], [y])


class LowerSoftmax(RewritePattern):
    """Numerically stable: `e = exp(x - max(x))`, `y = e / sum(e)` along the axis."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.SoftmaxOp, rewriter: PatternRewriter) -> None:
        out = _result(op)
        shape, elt = out.get_shape(), out.element_type
        rank = len(shape)
        axis = op.axis.value.data % rank
        maps = [identity(rank), B.drop_dims_map(rank, [axis])]
        m = B.reduce(rewriter, op.input, [axis], False, NEG_INF, _max)
        e = B.elementwise(
            rewriter, [op.input, m], shape, elt,
            lambda a: [math.ExpOp(arith.SubfOp(a[0], a[1]).result).result], maps,
        )
        s = B.reduce(rewriter, e, [axis], False, 0.0, _add)
        y = B.elementwise(rewriter, [e, s], shape, elt, lambda a: [arith.DivfOp(a[0], a[1]).result], maps)
        rewriter.replace(op, [], [y])


class LowerMatMul(RewritePattern):
    """Loops (batch..., m, n, k); `acc += lhs[b, m, k] * rhs[b, k, n]` into a zero-filled buffer.

    An operand that is a transpose of the last two dims used only by matmuls
    (`is_matmul_transpose`) is read through a swapped map instead: no copy is made.
    """

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.MatMulOp, rewriter: PatternRewriter) -> None:
        out = _result(op)
        rank = out.get_num_dims()
        nb = rank - 2
        batch = [dim(i) for i in range(nb)]
        m, n, k = dim(nb), dim(nb + 1), dim(nb + 2)
        operands, maps, folded = [], [], []
        for value, rows, cols in ((op.lhs, m, k), (op.rhs, k, n)):
            if is_matmul_transpose(value.owner):
                folded.append(value.owner)
                value, rows, cols = value.owner.input, cols, rows
            operands.append(value)
            maps.append(amap(rank + 1, [*batch, rows, cols]))
        init = B.filled(rewriter, out.get_shape(), out.element_type, 0)
        y = B.generic(
            rewriter, operands, init, [*maps, amap(rank + 1, [*batch, m, n])], [PARALLEL] * rank + [REDUCTION], _mac,
        )
        rewriter.replace(op, [], [y])
        for t in folded:
            if not t.output.uses:  # its last matmul is lowered
                rewriter.erase(t)


class LowerReshape(RewritePattern):
    """`collapse_shape` to rank 1, then `expand_shape`; identity steps are skipped.

    A rank-0 source is broadcast by a copy generic instead (xDSL's `expand_shape` verifier
    rejects expanding a 0-d tensor).
    """

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.ReshapeOp, rewriter: PatternRewriter) -> None:
        src, dst = B.shape_of(op.input), _result(op).get_shape()
        x: SSAValue = op.input
        if src == dst:
            pass
        elif not src:
            x = B.elementwise(rewriter, [x], dst, B.element_type_of(x), lambda a: [a[0]])
        elif not dst:
            x = B.collapse(rewriter, x, [], dst)
        else:
            total = 1
            for d in src:
                total *= d
            if len(src) != 1:
                x = B.collapse(rewriter, x, [list(range(len(src)))], [total])
            if len(dst) != 1:
                x = B.expand(rewriter, x, [list(range(len(dst)))], dst)
        rewriter.replace(op, [], [x])


class LowerTranspose(RewritePattern):
    """Loops over the output; output dim i reads input dim perm[i]."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.TransposeOp, rewriter: PatternRewriter) -> None:
        if is_matmul_transpose(op):
            return  # folded into its matmuls (LowerMatMul)
        out = _result(op)
        perm = _ints(op.perm)
        rank = len(perm)
        in_map = amap(rank, [dim(perm.index(j)) for j in range(rank)])
        y = B.elementwise(rewriter, [op.input], out.get_shape(), out.element_type, lambda a: [a[0]], [in_map])
        rewriter.replace(op, [], [y])


class LowerConv2D(RewritePattern):
    """NCHW x FCHW convolution as one multiply-accumulate generic over a padded input.

    Loops (n, g, fg, oh, ow, c, kh, kw); the input is read at
    `(n, g, c, oh * sh + kh * dh, ow * sw + kw * dw)`. With groups > 1 the channel dims are
    split by `expand_shape` ((N, G, C/G, H, W), (G, F/G, C/G, KH, KW)) so that every loop
    is a plain dimension of some operand, which is how linalg finds the loop ranges; the
    (N, G, F/G, OH, OW) result is collapsed back. With groups = 1 the g loop is left out.
    """

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.Conv2DOp, rewriter: PatternRewriter) -> None:
        out = _result(op)
        elt = out.element_type
        n_, f_, oh_, ow_ = out.get_shape()
        _, cg, kh_, kw_ = B.shape_of(op.filter)
        groups = op.groups.value.data
        (sh, sw), (dh, dw) = _ints(op.strides), _ints(op.dilations)
        pt, pl, pb, pr = _ints(op.pads)
        x, shift = B.pad(rewriter, op.input, [0, 0, pt, pl], [0, 0, pb, pr], 0)
        w: SSAValue = op.filter
        _, _, hp, wp = B.shape_of(x)
        fg = f_ // groups
        if groups > 1:
            x = B.expand(rewriter, x, [[0], [1, 2], [3], [4]], [n_, groups, cg, hp, wp])
            w = B.expand(rewriter, w, [[0, 1], [2], [3], [4]], [groups, fg, cg, kh_, kw_])
            out_shape = [n_, groups, fg, oh_, ow_]
        else:
            out_shape = [n_, f_, oh_, ow_]
        # loop dims: n, [g,] f|fg, oh, ow, c, kh, kw
        g = [dim(1)] if groups > 1 else []
        o = len(g)
        n, f, oh, ow, c, kh, kw = (dim(0), dim(1 + o), dim(2 + o), dim(3 + o), dim(4 + o), dim(5 + o), dim(6 + o))
        loops = 7 + o
        init = B.filled(rewriter, out_shape, elt, 0)
        y = B.generic(
            rewriter, [x, w], init,
            [
                amap(loops, [n, *g, c, oh * sh + kh * dh + shift[2], ow * sw + kw * dw + shift[3]]),
                amap(loops, [*g, f, c, kh, kw]),
                amap(loops, [n, *g, f, oh, ow]),
            ],
            [PARALLEL] * (4 + o) + [REDUCTION] * 3, _mac,
        )
        if groups > 1:
            y = B.collapse(rewriter, y, [[0], [1, 2], [3], [4]], out.get_shape())
        rewriter.replace(op, [], [y])


def _window(
    b: PatternRewriter, padded: tuple[SSAValue, list[int]], kernel: list[int], strides: list[int],
    out_hw: tuple[int, int], init_value: float, combine: Callable[[SSAValue, SSAValue], SSAValue],
) -> SSAValue:
    """Reduce every (kh, kw) window of a (..., H, W) tensor padded by `B.pad`.

    Loops (lead..., oh, ow, kh, kw). The kh/kw loops get their range from an extra input of
    the kernel's shape (`tensor.empty`, never read: its block argument is unused), the way
    MLIR's pooling ops take a window operand.
    """
    x, shift = padded
    shape = B.shape_of(x)
    lead = len(shape) - 2
    loops = lead + 4
    ds = [dim(i) for i in range(lead)]
    oh, ow, kh, kw = dim(lead), dim(lead + 1), dim(lead + 2), dim(lead + 3)
    out_shape = [*shape[:lead], *out_hw]
    window = B.empty(b, kernel, B.element_type_of(x))
    init = B.filled(b, out_shape, B.element_type_of(x), init_value)
    return B.generic(
        b, [x, window], init,
        [
            amap(loops, [*ds, oh * strides[0] + kh + shift[-2], ow * strides[1] + kw + shift[-1]]),
            amap(loops, [kh, kw]),
            amap(loops, [*ds, oh, ow]),
        ],
        [PARALLEL] * (lead + 2) + [REDUCTION] * 2,
        lambda a: [combine(a[2], a[0])],
    )


class LowerMaxPool2D(RewritePattern):
    """Pad with -inf, then a maximumf window reduction into a -inf-filled buffer."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.MaxPool2DOp, rewriter: PatternRewriter) -> None:
        out = _result(op)
        pt, pl, pb, pr = _ints(op.pads)
        x = B.pad(rewriter, op.input, [0, 0, pt, pl], [0, 0, pb, pr], NEG_INF)
        hw = (out.get_shape()[2], out.get_shape()[3])
        y = _window(rewriter, x, _ints(op.kernel), _ints(op.strides), hw, NEG_INF, _max)
        rewriter.replace(op, [], [y])


class LowerAvgPool2D(RewritePattern):
    """Window sums of the zero-padded input divided by the window cell count.

    The count is the kernel size when nothing is padded or `count_include_pad`; otherwise it
    varies by position and is computed the same way, as window sums of a zero-padded tensor
    of ones (OH x OW, broadcast over N and C).
    """

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.AvgPool2DOp, rewriter: PatternRewriter) -> None:
        out = _result(op)
        shape, elt = out.get_shape(), out.element_type
        kernel, strides, pads = _ints(op.kernel), _ints(op.strides), _ints(op.pads)
        low, high = [0, 0, pads[0], pads[1]], [0, 0, pads[2], pads[3]]
        hw = (shape[2], shape[3])
        x = B.pad(rewriter, op.input, low, high, 0)
        sums = _window(rewriter, x, kernel, strides, hw, 0, _add)
        if op.count_include_pad.value.data or not any(pads):
            count = float(kernel[0] * kernel[1])
            y = B.elementwise(
                rewriter, [sums], shape, elt, lambda a: [arith.DivfOp(a[0], B.scalar(count, elt)).result]
            )
        else:
            ones = B.filled(rewriter, B.shape_of(op.input)[2:], elt, 1)
            counts = _window(rewriter, B.pad(rewriter, ones, low[2:], high[2:], 0), kernel, strides, hw, 0, _add)
            y = B.elementwise(rewriter, [sums, counts], shape, elt, lambda a: [arith.DivfOp(a[0], a[1]).result])
        rewriter.replace(op, [], [y])


def _mean(b: PatternRewriter, sums: SSAValue, count: int) -> SSAValue:
    elt = B.element_type_of(sums)
    return B.elementwise(
        b, [sums], B.shape_of(sums), elt, lambda a: [arith.DivfOp(a[0], B.scalar(float(count), elt)).result]
    )


class LowerGlobalAvgPool(RewritePattern):
    """Sum over the spatial dims (kept as size-1 dims), divided by their product."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.GlobalAvgPoolOp, rewriter: PatternRewriter) -> None:
        shape = B.shape_of(op.input)
        axes = list(range(2, len(shape)))
        count = 1
        for a in axes:
            count *= shape[a]
        sums = B.reduce(rewriter, op.input, axes, True, 0, _add)
        rewriter.replace(op, [], [_mean(rewriter, sums, count)])


class LowerReduce(RewritePattern):
    """`reduce_sum`: a reduction generic (keepdims via constant-0 output indices); `reduce_mean` divides."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.ReduceOp, rewriter: PatternRewriter) -> None:
        if isinstance(op, ge.ReduceMaxOp):
            return  # LowerReduceMax
        axes = op.reduced_axes()
        shape = B.shape_of(op.input)
        is_mean = isinstance(op, ge.ReduceMeanOp)
        y = B.reduce(rewriter, op.input, axes, bool(op.keepdims.value.data), 0, _add)
        if is_mean:
            count = 1
            for a in axes:
                count *= shape[a]
            y = _mean(rewriter, y, count)
        rewriter.replace(op, [], [y])


# --------------------------------------------------------------------------- ops for ONNX models


class LowerReduceMax(RewritePattern):
    """A `maximumf` (integers: `maxsi`) reduction into a buffer filled with the type's lowest value;
    bools: `ori` into false (as signed i1, true is -1: `maxsi` would prefer false)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.ReduceMaxOp, rewriter: PatternRewriter) -> None:
        elt = B.element_type_of(op.input)
        if _is_float(elt):
            low, comb = NEG_INF, _max
        elif elt == i1:
            low, comb = 0, lambda a, b: arith.OrIOp(a, b).result
        else:
            assert isinstance(elt, IntegerType)
            low, comb = -(1 << (elt.width.data - 1)), lambda a, b: arith.MaxSIOp(a, b).result
        y = B.reduce(rewriter, op.input, op.reduced_axes(), bool(op.keepdims.value.data), low, comb)
        rewriter.replace(op, [], [y])


def _cast(x: SSAValue, to: Attribute) -> SSAValue:
    """Scalar ONNX Cast: floats widen/narrow, float -> int truncates, bool is `x != 0` / `b ? 1 : 0`."""
    src = x.type
    if src == to:
        return x
    if to == i1:
        zero = B.scalar(0, src)
        if _is_float(src):
            return arith.CmpfOp(x, zero, "une").result
        return arith.CmpiOp(x, zero, "ne").result
    if src == i1:
        return arith.SelectOp(x, B.scalar(1, to), B.scalar(0, to)).result
    assert isinstance(src, AnyFloat | IntegerType) and isinstance(to, AnyFloat | IntegerType)
    if _is_float(src) and _is_float(to):
        wider = to.bitwidth > src.bitwidth  # type: ignore[union-attr]
        return (arith.ExtFOp(x, to) if wider else arith.TruncFOp(x, to)).result
    if _is_float(src):
        return arith.FPToSIOp(x, to).result
    if _is_float(to):
        return arith.SIToFPOp(x, to).result
    assert isinstance(src, IntegerType) and isinstance(to, IntegerType)
    return (arith.ExtSIOp(x, to) if to.width.data > src.width.data else arith.TruncIOp(x, to)).result


class LowerCast(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.CastOp, rewriter: PatternRewriter) -> None:
        out = _result(op)
        y = B.elementwise(rewriter, [op.input], out.get_shape(), out.element_type, lambda a: [_cast(a[0], out.element_type)])
        rewriter.replace(op, [], [y])


class LowerWhere(RewritePattern):
    """One broadcasting generic with body `select(c, a, b)`."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.WhereOp, rewriter: PatternRewriter) -> None:
        out = _result(op)
        y = B.elementwise(
            rewriter, [op.condition, op.lhs, op.rhs], out.get_shape(), out.element_type,
            lambda a: [arith.SelectOp(a[0], a[1], a[2]).result],
        )
        rewriter.replace(op, [], [y])


_COMPARE: dict[type[Operation], tuple[str, str]] = {
    ge.EqualOp: ("oeq", "eq"),  # ordered float predicates: false when an operand is NaN (ONNX)
    ge.LessOp: ("olt", "slt"),
    ge.LessEqualOp: ("ole", "sle"),
    ge.GreaterOp: ("ogt", "sgt"),
    ge.GreaterEqualOp: ("oge", "sge"),
}


class LowerCompare(RewritePattern):
    """One broadcasting generic with body `cmpf <ordered>` (floats) or `cmpi <signed>` (integers, i1)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.CompareOp, rewriter: PatternRewriter) -> None:
        out = _result(op)
        fpred, ipred = _COMPARE[type(op)]
        is_float = _is_float(B.element_type_of(op.lhs))

        def body(a: Sequence[SSAValue]) -> list[SSAValue]:
            cmp = arith.CmpfOp(a[0], a[1], fpred) if is_float else arith.CmpiOp(a[0], a[1], ipred)
            return [cmp.result]

        y = B.elementwise(rewriter, [op.lhs, op.rhs], out.get_shape(), i1, body)
        rewriter.replace(op, [], [y])


_FLOAT_TESTS: dict[type[Operation], Callable[[SSAValue], SSAValue]] = {
    ge.IsNanOp: lambda x: arith.CmpfOp(x, x, "uno").result,
    ge.IsInfOp: lambda x: arith.CmpfOp(math.AbsFOp(x).result, B.scalar(float("inf"), x.type), "oeq").result,
}


class LowerFloatTest(RewritePattern):
    """is_nan: `cmpf uno x, x`; is_inf: `cmpf oeq |x|, inf`."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.FloatTestOp, rewriter: PatternRewriter) -> None:
        fn = _FLOAT_TESTS[type(op)]
        y = B.elementwise(rewriter, [op.input], _result(op).get_shape(), i1, lambda a: [fn(a[0])])
        rewriter.replace(op, [], [y])


class LowerConcat(RewritePattern):
    """One copy generic per input into a buffer, at an offset along the axis, then one copy out.

    Loops range over the input (identity map); the output map is `d_axis + offset`, the form
    `pad` uses. The buffer has one extra low cell along the axis so that every offset is
    positive (a bare `d_axis` would tell linalg the buffer is as large as that input); a
    final copy generic reads it at `d_axis + 1`.
    """

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.ConcatOp, rewriter: PatternRewriter) -> None:
        out = _result(op)
        shape, rank = out.get_shape(), out.get_num_dims()
        axis = op.axis.value.data % rank

        def shifted(offset: int) -> AffineMap:
            return amap(rank, [dim(i) + B.const_expr(offset) if i == axis else dim(i) for i in range(rank)])

        buf = B.empty(rewriter, [d + 1 if i == axis else d for i, d in enumerate(shape)], out.element_type)
        offset = 1
        for x in op.inputs:
            size = B.shape_of(x)[axis]
            if size:
                buf = B.generic(rewriter, [x], buf, [identity(rank), shifted(offset)], [PARALLEL] * rank, lambda a: [a[0]])
            offset += size
        y = B.elementwise(rewriter, [buf], shape, out.element_type, lambda a: [a[0]], [shifted(1)])
        rewriter.replace(op, [], [y])


class LowerSlice(RewritePattern):
    """A copy generic over the result reading `x[d * step + start]`.

    A dim read from 0 with step 1 but shorter than the input would be a bare `d` in the input
    map (linalg would take the input's size as the loop range), so such dims are first
    padded with one low cell (`B.pad`) and read at `d + 1`.
    """

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.SliceOp, rewriter: PatternRewriter) -> None:
        out = _result(op)
        shape, rank = out.get_shape(), out.get_num_dims()
        starts, steps = _ints(op.starts), _ints(op.steps)
        low = [int((st, sp) == (0, 1) and n != d) for st, sp, n, d in zip(starts, steps, shape, B.shape_of(op.input))]
        x, _ = B.pad(rewriter, op.input, low, [0] * rank, 0)
        starts = [st + lo for st, lo in zip(starts, low)]
        in_map = amap(rank, [dim(i) * steps[i] + B.const_expr(starts[i]) for i in range(rank)])
        y = B.elementwise(rewriter, [x], shape, out.element_type, lambda a: [a[0]], [in_map])
        rewriter.replace(op, [], [y])


def _constant_rows(indices: SSAValue, size: int) -> tuple[int, int] | None:
    """`(start, step)` when `indices` is an inline constant, one index or a vector of them, each
    in [-size, size), that reads `start + step * i` (negative ones counted from the end; step
    0 or more, and not a bare `i` over fewer than `size` rows: linalg would take the data's size
    as that loop's range); else None."""
    values = _inline_values(indices)
    if values is None or len(B.shape_of(indices)) > 1:
        return None
    rows = [int(v) for v in values]
    if not rows or not all(-size <= r < size for r in rows):
        return None
    rows = [r % size for r in rows]
    step = rows[1] - rows[0] if len(rows) > 1 else 0
    if step < 0 or any(b - a != step for a, b in zip(rows, rows[1:])) \
            or ((rows[0], step) == (0, 1) and len(rows) != size):
        return None
    return rows[0], step


class LowerGather(RewritePattern):
    """A one-hot reduction: `y[pre, i, post] = sum_k (idx[i] == k ? data[pre, k, post] : 0)`.

    Affine maps cannot read at a data-dependent index, so the gathered axis becomes a
    reduction loop `k` compared (via `linalg.index`) with the index; negative indices are
    shifted by the axis size first. Loops: (pre..., i..., post..., k).

    Indices that are a constant row or rows `start + step * i` in range (`_constant_rows`: a
    ViT's class token `x[:, 0]`, torchvision's `proj[0]`, a weight's row read by every
    request) are a copy generic reading `data[pre, start + step * i, post]` instead, as a slice
    is: a strided view for the backends, fused with what reads it, hoisted with the weight.
    """

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.GatherOp, rewriter: PatternRewriter) -> None:
        out = _result(op)
        dshape, ishape = B.shape_of(op.data), B.shape_of(op.indices)
        axis = op.axis.value.data % len(dshape)
        n_idx, rank = len(ishape), out.get_num_dims()
        rows = _constant_rows(op.indices, dshape[axis])
        if rows is not None:
            start, step = rows
            read = (dim(axis) * step if n_idx else B.const_expr(0)) + B.const_expr(start)
            data_map = amap(rank, [read if j == axis else dim(j if j < axis else j + n_idx - 1)
                                   for j in range(len(dshape))])
            y = B.elementwise(rewriter, [op.data], out.get_shape(), out.element_type, lambda a: [a[0]], [data_map])
            rewriter.replace(op, [], [y])
            return
        k = dim(rank)
        data_map = amap(rank + 1, [k if j == axis else dim(j if j < axis else j + n_idx - 1) for j in range(len(dshape))])
        idx_map = amap(rank + 1, [dim(axis + j) for j in range(n_idx)])
        init = B.filled(rewriter, out.get_shape(), out.element_type, 0)
        size, elt = dshape[axis], out.element_type

        def body(a: Sequence[SSAValue]) -> list[SSAValue]:
            data, idx, acc = a
            ity = idx.type
            pos = arith.IndexCastOp(linalg.IndexOp(rank).result, ity).result
            neg = arith.CmpiOp(idx, B.scalar(0, ity), "slt").result
            norm = arith.SelectOp(neg, arith.AddiOp(idx, B.scalar(size, ity)).result, idx).result
            hit = arith.CmpiOp(norm, pos, "eq").result
            return [_add(acc, arith.SelectOp(hit, data, B.scalar(0, elt)).result)]

        y = B.generic(rewriter, [op.data, op.indices], init, [data_map, idx_map, amap(rank + 1, [dim(i) for i in range(rank)])],
                      [PARALLEL] * rank + [REDUCTION], body)
        # MLIR's hint that a library routine computes the op: the NumPy JIT then takes the
        # rows (`np.take`, O(1) per element) instead of running the O(size) reduction.
        generic = y.owner
        assert isinstance(generic, Operation)
        generic.properties["library_call"] = StringAttr(GATHER_CALL)
        generic.attributes[GATHER_AXIS] = IntegerAttr(axis, i64)
        rewriter.replace(op, [], [y])


class LowerExpand(RewritePattern):
    """A copy generic with the broadcast input map."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.ExpandOp, rewriter: PatternRewriter) -> None:
        out = _result(op)
        y = B.elementwise(rewriter, [op.input], out.get_shape(), out.element_type, lambda a: [a[0]])
        rewriter.replace(op, [], [y])


PATTERNS: tuple[RewritePattern, ...] = (
    LowerSmallConstantPow(),  # before LowerElementwiseBinary, which takes every pow
    LowerElementwiseBinary(), LowerElementwiseUnary(), LowerSoftmax(), LowerMatMul(),
    LowerReshape(), LowerTranspose(), LowerConv2D(), LowerMaxPool2D(), LowerAvgPool2D(),
    LowerGlobalAvgPool(), LowerReduce(),
    LowerReduceMax(), LowerCast(), LowerWhere(), LowerConcat(), LowerSlice(), LowerGather(),
    LowerExpand(), LowerCompare(), LowerFloatTest(),
)


def check_lowerable(ops: Iterable[Operation]) -> None:
    """Reject what the patterns cannot lower before rewriting anything (clean diagnostics);
    `ops`: the module's, walked."""
    for op in ops:
        if not isinstance(op, ge.ComputeOp):
            continue
        for value in (*op.operands, *op.results):
            t = value.type
            if not isinstance(t, TensorType):
                raise LoweringError(f"{op.name}: operand type {t} is not a ranked tensor type")
            if ge.DYNAMIC in t.get_shape():
                raise LoweringError(
                    f"{op.name}: dynamic dimension in {t} not supported; give the graph inputs static shapes"
                )
        if isinstance(op, ge.ReduceMeanOp) and not _is_float(B.element_type_of(op.input)):
            raise LoweringError(f"{op.name}: integer element type {B.element_type_of(op.input)} is not supported")


@dataclass(frozen=True)
class ConvertGeToLinalgPass(ModulePass):
    """Lower `ge` compute ops to `linalg.generic`/`linalg.fill` on tensors (level 2)."""

    name = "convert-ge-to-linalg"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        ops = walk(op)  # walked once, for the checks and the rewrite
        check_lowerable(ops)
        # No DCE: an unused op is lowered too (a later `dce` may drop it), so that what runs is
        # what the graph said. Each op once, in program order, through the first pattern of
        # its type that rewrites it: what xDSL's one-pass `PatternRewriteWalker` with a
        # `GreedyRewritePatternApplier` does (the ops the patterns create match none), without
        # its worklist and without trying all patterns on every op (a third of the pass on
        # large graphs). A transpose folded into its matmuls is erased by the last one, after
        # it was visited.
        rewriter = OnePassRewriter(InsertPoint.at_end(op.body.block))
        for inner in ops:
            patterns = _patterns_for(type(inner))
            if not patterns:
                continue
            rewriter.start(inner)
            try:
                for pattern in patterns:
                    pattern.match_and_rewrite(inner, rewriter)
                    if rewriter.has_done_action:
                        break
            except Exception as err:  # as the walker reports a failing pattern
                inner.emit_error(f"Error while applying pattern: {err}", underlying_error=err)


def _matched_type(pattern: RewritePattern) -> type[Operation] | tuple[type[Operation], ...]:
    """The op type(s) an `op_type_rewrite_pattern` matches (from its wrapper's closure)."""
    fn = type(pattern).match_and_rewrite
    cells = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__ or ()), strict=True))
    expected = cells["expected_type"]
    return get_args(expected) if get_origin(expected) in (Union, UnionType) else expected


_MATCHED = [(_matched_type(p), p) for p in PATTERNS]


@functools.cache
def _patterns_for(cls: type[Operation]) -> tuple[RewritePattern, ...]:
    """The patterns that match ops of class `cls`, in `PATTERNS` order."""
    return tuple(p for t, p in _MATCHED if issubclass(cls, t))
