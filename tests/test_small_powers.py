"""`pow` by an inline constant exponent in {1, 2, 3, 4, 0.5, -1} lowers to multiplications,
sqrt or 1/x (passes/convert_ge_to_linalg.py): same values as NumPy's power, on both backends."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from test_models import check, compile_bundles

import wrc

X = np.float32([[-2.5, -1, -0.0, 0.0, 1e-20, 0.3],
                [1.5, 7, 1e12, np.inf, -np.inf, np.nan]])
EXPONENTS = (1.0, 2.0, 3.0, 4.0, 0.5, -1.0)
GENERAL = 2.5  # math.powf (of |x|: the interpreter's powf gives NaN for (-inf) ** 2.5)


def _graph(dtype: str = "float32") -> wrc.Graph:
    g = wrc.Graph("powers")
    x = g.data("x", X.shape, dtype)
    g.output(*(g.pow(x, g.const(f"e{i}", np.array(e, dtype), inline=True)) for i, e in enumerate(EXPONENTS)),
             g.pow(g.abs(x), g.const("general", np.array(GENERAL, dtype), inline=True)),
             g.add(x, g.const("w", np.ones(X.shape[1], dtype))))  # a weight to refresh
    return g


def _ref(x: np.ndarray) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        return [np.power(x.astype(np.float64), e).astype(x.dtype) for e in EXPONENTS] + [
            np.power(np.abs(x).astype(np.float64), GENERAL).astype(x.dtype), x + 1]


def test_values_match_numpy_power_on_both_backends() -> None:
    # inf * inf, 1/±0, sqrt of a negative, 1e12 ** 3 overflowing: the IEEE results of
    # np.power (-0.0 ** 0.5: +0 from pow, -0 from sqrt, equal as numbers)
    bundles = compile_bundles(_graph(), ["w"])
    check(bundles, {"x": X}, _ref(X), tol=1e-6)


def test_float64_and_broadcast_exponent() -> None:
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    g = wrc.Graph("wide")
    a = g.data("x", x.shape, "float64")
    g.output(g.pow(a, g.const("three", np.full((2, 1, 1), 3.0), inline=True)), g.add(a, g.const("w", 1.0, "float64")))
    bundles = compile_bundles(g, ["w"])
    check(bundles, {"x": x}, [np.broadcast_to(x ** 3, (2, 3, 4)), x + 1], tol=1e-12)


def test_no_np_power_in_generated_code(monkeypatch) -> None:
    monkeypatch.setenv("WRC_NATIVE", "off")  # the NumPy forms (not one fused call: tests/test_fuse.py)
    b = compile_bundles(_graph(), ["w"])["numpy"]
    src = b.source("var_infer_graph")
    assert src.count("np.power(") == 1  # the general exponent only
    assert "np.sqrt(" in src and src.count("np.multiply(") >= 1 + 2 + 2


def _pow_plus_bias_model(exponent: np.ndarray) -> tuple[onnx.ModelProto, np.ndarray]:
    """y = x ** exponent + b, the exponent a Constant node as PyTorch exports it."""
    nodes = [helper.make_node("Constant", [], ["e"], value=numpy_helper.from_array(exponent)),
             helper.make_node("Pow", ["x", "e"], ["c"]), helper.make_node("Add", ["c", "b"], ["y"])]
    b = np.float32([1, 2, 3, 4, 5, 6])
    model = helper.make_model(
        helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 6])],
                          [numpy_helper.from_array(b, "b")]),
        opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return model, b


def test_onnx_pow_by_constant_node() -> None:
    # PyTorch exports x ** 3 as Pow(x, Constant(3.0)): the exponent is inline, no np.power
    model, b = _pow_plus_bias_model(np.float32(3.0))
    bundles = compile_bundles(wrc.onnx.import_onnx(model), ["b"])
    assert "np.power(" not in bundles["numpy"].source("var_infer_graph")
    check(bundles, {"x": X}, [(_ref(X)[2] + b).astype(np.float32)], tol=1e-6)


def test_onnx_pow_by_a_double_constant_is_cast_at_import() -> None:
    # Pow's exponent may have another type than its base (T2): a double 2 is cast to float
    # at import, so it is still an inline exponent of x's type
    model, b = _pow_plus_bias_model(np.float64(2.0))
    graph = wrc.onnx.import_onnx(model)
    assert not any(op.name == "ge.cast" for op in graph.func.walk())
    bundles = compile_bundles(graph, ["b"])
    assert "np.power(" not in bundles["numpy"].source("var_infer_graph")
    check(bundles, {"x": X}, [(_ref(X)[1] + b).astype(np.float32)], tol=1e-6)
