"""`ge-fold-weight-scales`: fold per-channel scales and shifts into the weights before them.

BatchNorm at inference, `Gemm` with `alpha`, LoRA scaling and friends multiply the output of
a matmul or convolution by a weight-only factor `k` and add weight-only shifts. Done as
written, that is two or three extra passes over every activation. Rewritten on the weights,
it costs nothing per inference once `ge-hoist-weight-only` (which runs next) has moved the
weight-only parts into derive functions:

* `mul(add|sub(y, c), k)` → `add|sub(mul(y, k), mul(c, k))` (either operand order), when `c`
  and `k` are weight-only and `y` is not: distributes the scale towards the producer of `y`;
* `mul(matmul(x, W), k)` → `matmul(x, mul(W, k'))` when `W` and `k` are weight-only and `k`
  scales the output columns only (`k'` = `k` as a vector); when `W = transpose(V)` (a
  transpose the matmul reads for free, `is_matmul_transpose`), `V`'s rows are scaled
  instead and the transpose stays: `matmul(x, transpose(mul(V, k'')))`;
* `mul(conv2d(x, W), k)` → `conv2d(x, mul(W, k'))` when `k` scales output channels only
  (`k'` = `k` reshaped to `[F, 1, 1, 1]`);
* `add|sub(add|sub(y, c1), c2)` → `add|sub(y, c1 ± c2)`: one shift instead of two;
* `mul(mul(y, k1), k2)` → `mul(y, k1 * k2)`: one scale instead of two (where no weight
  takes it: a BatchNorm before its ReLU and convolution, then an affine Mul).

A weight the lowering reads as it is — a `ge.read_variable` (or its transpose a matmul reads for
free) of a variable some graph other than the init graph writes (`var_update_graph`: a
refreshable weight) — with at least as many elements as the result is not scaled: its scaled
copy would be a derived value as large as the weight, held by every version beside the weight
itself (which `weights()`, partial updates and rollback need), and written by every update. The
scale then stays a multiply of the matmul's or convolution's result by a per-channel vector,
which the NumPy JIT runs as one multiply-add in the compiled call of the bias and activation
after it (`numpy_jit/fuse.py`). Where the result is larger than the weight (a CNN's early
layers, grouped convolutions) the copy is the cheaper side, in memory too, and it is made as
before. A constant weight, or a weight that is computed anyway (a LoRA-merged one, a cast),
still takes the scale.

Each rewrite needs the intermediate value (`add`, `matmul`, `conv2d` result) to have no other
use, keeps every result type, and only touches functions that write no variable (the infer
graph). Results differ from the unfolded graph by rounding only (the reassociation that
onnxruntime's BatchNorm fusions make as well). "Weight-only" = computed from
`ge.read_variable` and `ge.const` alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.dialects.func import FuncOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from wrc.abi import DERIVE_ATTR, INIT_GRAPH
from wrc.dialects import ge
from wrc.ir_read import walk
from wrc.passes._weight_only import WeightOnly, is_matmul_transpose, writes_variables


@dataclass
class _Facts:
    """Memoized per pass run: which values are weight-only, which functions may be rewritten."""

    refreshed: frozenset[str]  # variables written by a graph other than the init graph
    weights: WeightOnly = field(default_factory=WeightOnly)
    writable: dict[Operation, bool] = field(default_factory=dict)

    def is_weight(self, value: SSAValue) -> bool:
        return self.weights.is_weight(value)

    def in_scope(self, op: Operation) -> bool:
        fn = op.parent_op()
        while fn is not None and not isinstance(fn, FuncOp):
            fn = fn.parent_op()
        if fn is None:
            return False
        if fn not in self.writable:
            self.writable[fn] = not writes_variables(fn)
        return self.writable[fn]

    def scaled(self, op: ge.MulOp) -> tuple[SSAValue, SSAValue] | None:
        """(activation, weight-only factor) of a multiply this pass may rewrite, or None."""
        parts = self.split(op.lhs, op.rhs) if self.in_scope(op) else None
        return None if parts is None else parts[:2]

    def keeps_scale(self, w: SSAValue, y: SSAValue) -> bool:
        """`w` is a refreshable variable read as it is (scaling it would store a copy) with at
        least as many elements as the result `y` the scale would otherwise multiply."""
        read = w.owner
        return isinstance(read, ge.ReadVariableOp) and read.variable.string_value() in self.refreshed \
            and _elements(w) >= _elements(y)

    def split(self, a: SSAValue, b: SSAValue) -> tuple[SSAValue, SSAValue, bool] | None:
        """(activation, weight-only operand, weight was on the left) or None."""
        wa, wb = self.is_weight(a), self.is_weight(b)
        if wb and not wa:
            return a, b, False
        if wa and not wb:
            return b, a, True
        return None


def _tensor(value: SSAValue) -> TensorType:
    t = value.type
    assert isinstance(t, TensorType)
    return t


def _elements(value: SSAValue) -> int:
    """Elements of a tensor (a dynamic dim counted as 1)."""
    return math.prod(max(d, 1) for d in _tensor(value).get_shape())


def _single_use(value: SSAValue) -> bool:
    return len(list(value.uses)) == 1


def _reshaped(value: SSAValue, shape: list[int], new: list[Operation]) -> SSAValue:
    t = _tensor(value)
    if list(t.get_shape()) == shape:
        return value
    op = ge.ReshapeOp(value, TensorType(t.element_type, shape))
    new.append(op)
    return op.output


def _binary(cls: type[ge.ElementwiseBinaryOp], a: SSAValue, b: SSAValue, new: list[Operation]) -> SSAValue:
    op = cls(a, b)
    new.append(op)
    return op.output


@dataclass
class DistributeScale(RewritePattern):
    """mul(add|sub(y, c), k) → add|sub(mul(y, k), mul(c, k))."""

    facts: _Facts

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.MulOp, rewriter: PatternRewriter) -> None:
        if (parts := self.facts.scaled(op)) is None:
            return
        y, k = parts
        inner = y.owner
        if not isinstance(inner, ge.AddOp | ge.SubOp) or not _single_use(y):
            return
        if self.facts.split(inner.lhs, inner.rhs) is None:
            return
        new: list[Operation] = []
        result = _binary(type(inner), _binary(ge.MulOp, inner.lhs, k, new), _binary(ge.MulOp, inner.rhs, k, new), new)
        if result.type != op.output.type:
            return
        rewriter.replace(op, new, [result])
        rewriter.erase(inner)


@dataclass
class ScaleIntoWeights(RewritePattern):
    """mul(matmul(x, W), k) → matmul(x, W * k); mul(conv2d(x, W), k) → conv2d(x, W * k)."""

    facts: _Facts

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.MulOp, rewriter: PatternRewriter) -> None:
        if (parts := self.facts.scaled(op)) is None:
            return
        y, k = parts
        producer = y.owner
        if not _single_use(y) or op.output.type != y.type:
            return
        out = list(_tensor(y).get_shape())
        kshape = list(_tensor(k).get_shape())
        padded = [1] * (len(out) - len(kshape)) + kshape
        if len(padded) != len(out):
            return
        new: list[Operation] = []
        if isinstance(producer, ge.MatMulOp) and self.facts.is_weight(producer.rhs) \
                and not self.facts.is_weight(producer.lhs):
            if any(d != 1 for d in padded[:-1]):
                return  # not a per-column scale
            w = producer.rhs
            t = w.owner
            read_free = isinstance(t, ge.TransposeOp) and is_matmul_transpose(t)  # (W = transpose(V))
            if self.facts.keeps_scale(t.input if read_free else w, y):
                return
            if read_free and _single_use(w):
                # W = transpose(V): scale V's rows and keep the transpose, which the matmul
                # reads for free; only the elementwise product is then a derived weight.
                src = _binary(ge.MulOp, t.input, _reshaped(k, [padded[-1], 1], new), new)
                if src.type != t.input.type:
                    return
                transposed = t.clone()
                transposed.operands = [src]
                new.append(transposed)
                scaled = transposed.results[0]
            else:
                scaled = _binary(ge.MulOp, w, _reshaped(k, [padded[-1]], new), new)
                if scaled.type != w.type:
                    return
            replacement = ge.MatMulOp(producer.lhs, scaled, producer.output.type)
        elif isinstance(producer, ge.Conv2DOp) and self.facts.is_weight(producer.filter) \
                and not self.facts.is_weight(producer.input):
            if padded[0] != 1 or padded[2:] != [1, 1]:
                return  # not a per-output-channel scale
            w = producer.filter
            if self.facts.keeps_scale(w, y):
                return
            scaled = _binary(ge.MulOp, w, _reshaped(k, [padded[1], 1, 1, 1], new), new)
            if scaled.type != w.type:
                return
            replacement = producer.clone()
            replacement.operands = [producer.input, scaled]
        else:
            return
        new.append(replacement)
        rewriter.replace(op, new, [replacement.results[0]])
        old_weight = producer.operands[1].owner
        rewriter.erase(producer)
        if isinstance(old_weight, ge.TransposeOp) and not old_weight.output.uses:
            rewriter.erase(old_weight)  # replaced by the scaled transpose


@dataclass
class MergeShifts(RewritePattern):
    """add|sub(add|sub(y, c1), c2) → add|sub(y, c1 ± c2), y not weight-only."""

    facts: _Facts

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.AddOp | ge.SubOp, rewriter: PatternRewriter) -> None:
        if not isinstance(op, ge.AddOp | ge.SubOp) or not self.facts.in_scope(op):
            return
        parts = self.facts.split(op.lhs, op.rhs)
        if parts is None:
            return
        inner_value, c2, c2_left = parts
        if isinstance(op, ge.SubOp) and c2_left:
            return  # c2 - (...): the activation is negated; left alone
        inner = inner_value.owner
        if not isinstance(inner, ge.AddOp | ge.SubOp) or not _single_use(inner_value):
            return
        inner_parts = self.facts.split(inner.lhs, inner.rhs)
        if inner_parts is None:
            return
        y, c1, c1_left = inner_parts
        if isinstance(inner, ge.SubOp) and c1_left:
            return
        # y ± c1 ± c2 = y + (s1 c1 + s2 c2): one shift, its sign folded into the op.
        s1 = -1 if isinstance(inner, ge.SubOp) else 1
        s2 = -1 if isinstance(op, ge.SubOp) else 1
        new: list[Operation] = []
        if s1 == s2:
            shift, cls = _binary(ge.AddOp, c1, c2, new), (ge.AddOp if s1 > 0 else ge.SubOp)
        else:
            shift = _binary(ge.SubOp, c1, c2, new) if s1 > 0 else _binary(ge.SubOp, c2, c1, new)
            cls = ge.AddOp
        result = _binary(cls, y, shift, new)
        if result.type != op.output.type:
            return
        rewriter.replace(op, new, [result])
        rewriter.erase(inner)


@dataclass
class MergeScales(RewritePattern):
    """mul(mul(y, k1), k2) → mul(y, k1 * k2), y not weight-only (a BatchNorm whose scale
    cannot go into weights, e.g. before its ReLU and convolution, followed by an affine Mul)."""

    facts: _Facts

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.MulOp, rewriter: PatternRewriter) -> None:
        if (parts := self.facts.scaled(op)) is None:
            return
        inner_value, k2 = parts
        inner = inner_value.owner
        if not isinstance(inner, ge.MulOp) or not _single_use(inner_value):
            return
        inner_parts = self.facts.split(inner.lhs, inner.rhs)
        if inner_parts is None:
            return
        y, k1, _ = inner_parts
        new: list[Operation] = []
        result = _binary(ge.MulOp, y, _binary(ge.MulOp, k1, k2, new), new)
        if result.type != op.output.type:
            return
        rewriter.replace(op, new, [result])
        rewriter.erase(inner)


def _refreshed(module: ModuleOp) -> frozenset[str]:
    """The variables a function other than the init graph and the derive functions assigns."""
    return frozenset(a.variable.string_value() for f in module.ops
                     if isinstance(f, FuncOp) and f.sym_name.data != INIT_GRAPH and DERIVE_ATTR not in f.attributes
                     for a in walk(f) if isinstance(a, ge.AssignOp | ge.AssignIfNonEmptyOp))


@dataclass(frozen=True)
class GeFoldWeightScalesPass(ModulePass):
    """Fold weight-only scales into matmul/conv weights and merge weight-only shifts."""

    name = "ge-fold-weight-scales"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        facts = _Facts(_refreshed(op))
        PatternRewriteWalker(
            GreedyRewritePatternApplier(
                [DistributeScale(facts), ScaleIntoWeights(facts), MergeShifts(facts), MergeScales(facts)], dce_enabled=False
            ),
        ).rewrite_module(op)
