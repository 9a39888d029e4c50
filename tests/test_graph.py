"""wrc.Graph: building IR, shape inference, errors, MLIR round trips."""

from __future__ import annotations

import numpy as np
import pytest

import wrc
from wrc.dialects import ge


def test_mlp_shapes_and_ir():
    g = wrc.Graph("mlp")
    x = g.data("x", (None, 784))
    w = g.const("w", np.zeros((784, 10), np.float32))
    y = g.softmax(g.matmul(x, w), axis=-1)
    g.output(y)
    assert y.shape == (None, 10) and y.dtype == np.float32
    text = g.to_mlir()
    assert 'ge.data "x" index 0 : tensor<?x784xf32>' in text
    assert 'ge.const "w" : tensor<784x10xf32>' in text
    assert "func.func @mlp() -> tensor<?x10xf32>" in text
    g.module.verify()
    assert g.inputs == [("x", (None, 784), np.dtype(np.float32))]


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda g, a, b: g.add(a, b), (4, 3)),
        (lambda g, a, b: g.mul(a, g.reshape(b, (3,))), (4, 3)),
        (lambda g, a, b: g.transpose(a), (3, 4)),
        (lambda g, a, b: g.reshape(a, (-1, 2)), (6, 2)),
        (lambda g, a, b: g.reshape(a, (0, 3, 1)), (4, 3, 1)),
        (lambda g, a, b: g.reduce_sum(a, 1), (4,)),
        (lambda g, a, b: g.reduce_mean(a, [0, 1], keepdims=True), (1, 1)),
    ],
)
def test_shape_inference(build, expected):
    g = wrc.Graph()
    a = g.data("a", (4, 3))
    b = g.data("b", (1, 3))
    assert build(g, a, b).shape == expected


def test_conv_and_pool_shapes():
    g = wrc.Graph()
    x = g.data("x", (2, 4, 9, 9))
    w = g.const("w", np.zeros((6, 2, 3, 3), np.float32))
    y = g.conv2d(x, w, strides=(2, 2), pads=(1, 1, 1, 1), dilations=(1, 1), groups=2)
    assert y.shape == (2, 6, 5, 5)
    assert g.max_pool2d(y, (2, 2)).shape == (2, 6, 2, 2)
    assert g.avg_pool2d(y, (3, 3), strides=(1, 1), pads=(1, 1, 1, 1)).shape == (2, 6, 5, 5)
    assert g.global_avg_pool(y).shape == (2, 6, 1, 1)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda g, a, b: g.matmul(a, b), "ge.matmul: contraction dims differ: [4, 3] x [5, 2]"),
        (lambda g, a, b: g.add(a, b), "ge.add: shapes [4, 3] and [5, 2] do not broadcast"),
        (lambda g, a, b: g.reshape(a, (5,)), "ge.reshape: cannot reshape [4, 3] (12 elements) to [5] (5 elements)"),
        (lambda g, a, b: g.transpose(a, (0, 0)), "ge.transpose: perm [0, 0] is not a permutation"),
        (lambda g, a, b: g.softmax(a, axis=2), "ge.softmax: axis 2 is out of range for rank 2"),
        (lambda g, a, b: g.reduce_sum(a, [1, -1]), "ge.reduce_sum: axes [1, -1] must be non-empty and distinct"),
    ],
)
def test_shape_errors_name_op_and_shapes(build, message):
    g = wrc.Graph("bad")
    a = g.data("a", (4, 3))
    b = g.data("b", (5, 2))
    with pytest.raises(wrc.ShapeError) as info:
        build(g, a, b)
    assert message in str(info.value)
    assert "graph 'bad'" in str(info.value)
    assert isinstance(info.value, wrc.WrcError)


def test_builder_misuse_errors():
    g = wrc.Graph("g")
    g.data("x", (2,))
    with pytest.raises(wrc.GraphError, match="already has an input named 'x'"):
        g.data("x", (2,))
    g.const("c", np.zeros(2, np.float32))
    with pytest.raises(wrc.GraphError, match="already has a constant named 'c'"):
        g.const("c", np.zeros(2, np.float32))
    with pytest.raises(wrc.GraphError, match="invalid dimension -3"):
        g.data("y", (-3,))
    other = wrc.Graph("other")
    z = other.data("z", (2,))
    with pytest.raises(wrc.GraphError, match="a Tensor of graph 'other' was used in graph 'g'"):
        g.relu(z)
    with pytest.raises(wrc.GraphError, match="at least one tensor"):
        g.output()


def test_mlir_round_trip_keeps_weights_and_inline_values():
    g = wrc.Graph("rt")
    x = g.data("x", (2, 3))
    w = g.const("w", np.arange(6, dtype=np.float32).reshape(3, 2))
    b = g.const("b", np.array([1.5, -2.0], np.float32), inline=True)
    g.output(g.add(g.matmul(x, w), b))
    text = g.to_mlir()
    assert "dense<[1.500000e+00, -2.000000e+00]>" in text
    back = wrc.Graph.from_mlir(text, weights=g.weights)
    assert back.to_mlir() == text
    np.testing.assert_array_equal(back.weight("w"), g.weights["w"])
    np.testing.assert_array_equal(back.weight("b"), [1.5, -2.0])
    assert back.weight("b").dtype == np.float32


def test_from_mlir_reports_bad_ir():
    with pytest.raises(wrc.GraphError, match="cannot parse graph IR"):
        wrc.Graph.from_mlir("func.func @f() { %x = ge.bogus }")
    bad = """
    func.func @f() -> tensor<2x3xf32> {
      %x = ge.data "x" index 0 : tensor<2x4xf32>
      %y = ge.data "y" index 1 : tensor<5x3xf32>
      %m = ge.matmul %x, %y : (tensor<2x4xf32>, tensor<5x3xf32>) -> tensor<2x3xf32>
      func.return %m : tensor<2x3xf32>
    }"""
    with pytest.raises(wrc.GraphError, match="contraction dims differ"):
        wrc.Graph.from_mlir(bad)


def test_constants_follow_the_ir_in_program_order():
    """`constants` is kept by the builder (no walk per new constant) and still matches the IR:
    program order, wrapped modules included, erased constants gone and their names free again."""
    g = wrc.Graph("g")
    x = g.data("x", (2,))
    for name in ("b", "a", "c"):
        x = g.add(x, g.const(name, np.ones(2, np.float32)))
    g.output(x)
    assert list(g.constants) == ["b", "a", "c"]
    assert list(wrc.Graph.from_mlir(g.to_mlir(), g.weights).constants) == ["b", "a", "c"]
    a = g.constants["a"]
    a.output.replace_all_uses_with(g.constants["b"].output)
    a.detach()
    a.erase()
    assert list(g.constants) == ["b", "c"]
    g.const("a", np.zeros(2, np.float32))  # the name is free again, and the new one comes last
    assert list(g.constants) == ["b", "c", "a"]
    assert list(g.constants) == [op.const_name.data for op in g.func.walk() if isinstance(op, ge.ConstOp)]


def test_python_scalars_become_float32_constants():
    g = wrc.Graph()
    c = g.const("s", 0.5)
    assert c.shape == () and c.dtype == np.float32
    assert isinstance(c.value.owner, ge.ConstOp)


def test_from_mlir_uses_the_safe_parser():
    """Hostile text cannot hang the parser (xDSL 0.74's string lexer is exponential), and
    non-ASCII names survive a round trip."""
    import time

    start = time.perf_counter()
    with pytest.raises(wrc.GraphError, match="cannot parse graph IR"):
        wrc.Graph.from_mlir('func.func @f() { %x = ge.data "' + "a" * 60 + "\n")
    assert time.perf_counter() - start < 5
    g = wrc.Graph("g")
    g.output(g.relu(g.data('é漢"x', (2,))))
    assert wrc.Graph.from_mlir(g.to_mlir()).inputs[0][0] == 'é漢"x'


def test_const_copies_unless_told_not_to():
    g = wrc.Graph("c")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    g.const("copied", a)
    g.const("kept", a, copy=False)
    g.const("converted", a, dtype=np.float64, copy=False)  # another dtype: a copy all the same
    g.const("strided", a.T, copy=False)  # not C-contiguous: a contiguous copy
    assert not np.shares_memory(g.weights["copied"], a) and g.weights["kept"] is a
    assert g.weights["converted"].dtype == np.float64 and not np.shares_memory(g.weights["converted"], a)
    assert g.weights["strided"].flags.c_contiguous and np.array_equal(g.weights["strided"], a.T)
    a[0, 0] = 7
    assert g.weights["copied"][0, 0] == 0 and g.weights["kept"][0, 0] == 7


def test_is_weight_value_refuses_fills_and_non_finite_values():
    from wrc.graph import FILL_MAGNITUDE, is_weight_value

    ok = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    assert is_weight_value(ok) and is_weight_value(ok.astype(np.float16)) and is_weight_value(ok.T)
    for bad in (FILL_MAGNITUDE, -FILL_MAGNITUDE, -np.inf, np.inf, np.nan):
        a = ok.copy()
        a[1, 2] = bad
        assert not is_weight_value(a), bad
    f16 = ok.astype(np.float16)
    f16[0, 0] = np.inf
    assert not is_weight_value(f16)
    assert not is_weight_value(np.ones(4, np.int64)) and not is_weight_value(np.ones(1, np.float32))
