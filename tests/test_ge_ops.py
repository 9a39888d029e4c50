"""`ge` ops build themselves: a constructor given no result type infers it with the op's own
shape rule (the rule its verifier checks), as MLIR's result-inferring builders do."""

from __future__ import annotations

import pytest
from xdsl.dialects.builtin import TensorType, f32, i1, i64
from xdsl.ir import Block
from xdsl.traits import Commutative, SymbolUserOpInterface

from wrc.dialects import ge
from wrc.errors import ShapeError


def values(*types: TensorType):
    return Block(arg_types=types).args


X, Y, B, W, IDX, IMG, FILT = values(
    TensorType(f32, [4, 3]), TensorType(f32, [3]), TensorType(i1, [4, 1]), TensorType(f32, [3, 5]),
    TensorType(i64, [2, 2]), TensorType(f32, [1, 3, 8, 8]), TensorType(f32, [6, 3, 3, 3]),
)

BUILT = [
    (lambda: ge.AddOp(X, Y), [4, 3], f32),
    (lambda: ge.LessOp(X, Y), [4, 3], i1),
    (lambda: ge.LogicalAndOp(B, B), [4, 1], i1),
    (lambda: ge.MatMulOp(X, W), [4, 5], f32),
    (lambda: ge.TransposeOp(X, [1, 0]), [3, 4], f32),
    (lambda: ge.SoftmaxOp(X, -1), [4, 3], f32),
    (lambda: ge.Conv2DOp(IMG, FILT, None, (2, 2), (1, 1, 1, 1)), [1, 6, 4, 4], f32),
    (lambda: ge.MaxPool2DOp(IMG, None, (2, 2), (2, 2)), [1, 3, 4, 4], f32),
    (lambda: ge.AvgPool2DOp(IMG, None, (3, 3), (1, 1), (1, 1, 1, 1)), [1, 3, 8, 8], f32),
    (lambda: ge.GlobalAvgPoolOp(IMG), [1, 3, 1, 1], f32),
    (lambda: ge.ReduceMeanOp(X, [0], True), [1, 3], f32),
    (lambda: ge.WhereOp(B, X, Y), [4, 3], f32),
    (lambda: ge.ConcatOp([X, X], 0), [8, 3], f32),
    (lambda: ge.GatherOp(W, IDX, 1), [3, 2, 2], f32),
    (lambda: ge.IsNanOp(X), [4, 3], i1),
]


@pytest.mark.parametrize("build, shape, element", BUILT, ids=[f"{i}" for i in range(len(BUILT))])
def test_ops_infer_their_result_type(build, shape, element):
    op = build()
    out = op.results[0].type
    assert out == TensorType(element, shape)
    assert op.infer_result() == out  # what the verifier checks
    op.verify_()


@pytest.mark.parametrize("build, message", [
    (lambda: ge.AddOp(X, W), "ge.add: shapes [4, 3] and [3, 5] do not broadcast"),
    (lambda: ge.MatMulOp(X, X), "ge.matmul: contraction dims differ"),
    (lambda: ge.LogicalOrOp(X, X), "ge.logical_or: expects bool (i1) tensors"),
    (lambda: ge.ReluOp(IDX), "ge.relu: expects a floating-point tensor"),
    (lambda: ge.ConcatOp([X, W], 0), "ge.concat: shapes [4, 3] and [3, 5] differ outside axis 0"),
])
def test_an_op_that_cannot_infer_raises_shape_error(build, message):
    with pytest.raises(ShapeError) as err:
        build()
    assert str(err.value).startswith(message)


def test_explicit_result_types_are_kept_for_the_verifier():
    op = ge.AddOp(X, Y, TensorType(f32, [5, 3]))  # wrong, but the verifier's to say so
    assert op.results[0].type == TensorType(f32, [5, 3])
    with pytest.raises(ShapeError, match="does not match the inferred shape"):
        op.verify_()


def test_commutative_where_it_holds():
    commutative = {cls.name for cls in ge.GE.operations if cls.has_trait(Commutative)}
    assert commutative == {"ge.add", "ge.mul", "ge.maximum", "ge.minimum", "ge.equal",
                           "ge.logical_and", "ge.logical_or", "ge.logical_xor"}


def test_variable_references_share_one_symbol_user_trait():
    users = {cls.name for cls in ge.GE.operations if cls.has_trait(ge.VariableUser)}
    assert users == {"ge.read_variable", "ge.assign", "ge.assign_if_nonempty"}
    assert issubclass(ge.VariableUser, SymbolUserOpInterface)


def test_compute_ops_from_values_or_from_ops_are_the_same():
    """Built from values (without IRDL's argument normalisation) or from ops (IRDL's builder
    takes an op for its result): the same operands, result type and printed form."""
    t = TensorType(f32, [2, 3])
    block = Block(arg_types=[t, t])
    x, y = (ge.ReluOp(a) for a in block.args)
    for kind in (ge.AddOp, ge.MatMulOp):
        rhs = ge.TransposeOp(y.output, (1, 0)) if kind is ge.MatMulOp else y
        from_values, from_ops = kind(x.output, rhs.output), kind(x, rhs, kind(x.output, rhs.output).output.type)
        assert tuple(from_values.operands) == tuple(from_ops.operands) == (x.output, rhs.output)
        assert from_values.output.type == from_ops.output.type
        assert str(from_values) == str(from_ops)
        from_values.verify()
