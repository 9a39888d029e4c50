"""ONNX `Loop` and `Scan` unrolled at import (wrc/onnx.py) against onnxruntime (`check_model`:
every initializer refreshable, before and after an update with new random weights, weights
inside the body included), and the forms wrc refuses, each named in the error."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import test_onnx
from onnx import TensorProto, helper
from test_onnx import F, make, node, rand

from wrc.onnx import UnsupportedOpError, import_onnx, weight_names

I64, BOOL = TensorProto.INT64, TensorProto.BOOL


def with_initializers(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """`model` with initializers replaced by `values`, in subgraphs too (the bodies' weights)."""
    out = copy.deepcopy(model)

    def update(graph: onnx.GraphProto) -> None:
        for init in graph.initializer:
            if init.name in values:
                init.CopyFrom(onnx.numpy_helper.from_array(values[init.name], init.name))
        for nd in graph.node:
            for a in nd.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    update(a.g)
    update(out.graph)
    return out


def check_model(model, feeds, backends=("numpy",)):
    """test_onnx.check_model, with the weights inside bodies updated for onnxruntime too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(test_onnx, "with_initializers", with_initializers)
        return test_onnx.check_model(model, feeds, backends)


def vi(name: str, elem: int = F, shape=None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def body(nodes, inputs, outputs, inits=()) -> onnx.GraphProto:
    return helper.make_graph(nodes, "body", inputs, outputs,
                             [onnx.numpy_helper.from_array(v, k) for k, v in dict(inits).items()])


def loop_body() -> onnx.GraphProto:
    """h' = tanh(h @ Wb + x[i]) (Wb an initializer of the body), a counter, and h' as scan output."""
    nodes = [node("Gather", ["x", "i"], ["xi"], axis=0), node("MatMul", ["h", "Wb"], ["hw"]),
             node("Add", ["hw", "xi"], ["s"]), node("Tanh", ["s"], ["h2"]), node("Identity", ["c_in"], ["c_out"]),
             node("Add", ["n", "one"], ["n2"]), node("Mul", ["h2", "v"], ["scan"])]
    return body(nodes, [vi("i", I64, []), vi("c_in", BOOL, []), vi("h", F, [2, 3]), vi("n", I64, [])],
                [vi("c_out", BOOL, []), vi("h2", F, [2, 3]), vi("n2", I64, []), vi("scan", F, [2, 3])],
                {"Wb": rand(3, 3), "one": np.array(1, np.int64)})


@pytest.mark.parametrize("cond", [True, None])
def test_loop_with_a_constant_trip_count_is_unrolled(cond):
    operands = ["M", "cond" if cond else "", "h0", "n0"]
    nodes = [helper.make_node("Loop", operands, ["hT", "nT", "ys"], name="loop", body=loop_body())]
    inits = {"M": np.array(4, np.int64), "h0": rand(2, 3), "n0": np.array(0, np.int64), "v": rand(3)}
    if cond:
        inits["cond"] = np.array(True)
    m = make(nodes, [("x", F, [5, 2, 3])], [("hT", F, None), ("nT", I64, None), ("ys", F, None)], inits)
    g = check_model(m, {"x": rand(5, 2, 3)}, backends=("numpy", "interp"))
    assert set(weight_names(g)) == {"Wb", "h0", "v"}  # the body's weight is one refreshable weight
    assert g.to_mlir().count("ge.tanh") == 4


def test_loop_stops_where_a_folding_condition_turns_false_and_carried_shapes_may_grow():
    """No trip count: the condition `i < 2` folds each iteration; the carried value grows by concat."""
    nodes = [node("Less", ["i", "two"], ["c"]), node("Concat", ["acc", "w"], ["acc2"], axis=0),
             node("Relu", ["acc2"], ["r"])]
    b = body(nodes, [vi("i", I64, []), vi("c_in", BOOL, []), vi("acc", F, None)],
             [vi("c", BOOL, []), vi("r", F, None)], {"two": np.array(2, np.int64)})
    loop = helper.make_node("Loop", ["", "t", "x"], ["y"], name="loop", body=b)
    m = make([loop], [("x", F, [1, 3])], [("y", F, None)], {"t": np.array(True), "w": rand(1, 3)})
    g = check_model(m, {"x": rand(1, 3)})
    assert g.to_mlir().count("ge.relu") == 3  # i = 0, 1, 2 run; the condition i < 2 is false after i = 2


def scan_body() -> onnx.GraphProto:
    nodes = [node("Mul", ["x_t", "k"], ["xk"]), node("Add", ["s", "xk"], ["s2"]), node("Sigmoid", ["s2"], ["out"])]
    return body(nodes, [vi("s", F, [3]), vi("x_t", F, [3])], [vi("s2", F, [3]), vi("out", F, [3])],
                {"k": rand(3)})


@pytest.mark.parametrize("attrs", [{}, {"scan_input_axes": [1], "scan_input_directions": [1]},
                                   {"scan_output_axes": [1], "scan_output_directions": [1]}])
def test_scan_is_unrolled_over_the_static_length(attrs):
    x_shape = [3, 4] if attrs.get("scan_input_axes") else [4, 3]
    scan = helper.make_node("Scan", ["s0", "x"], ["sT", "ys"], name="scan", num_scan_inputs=1, body=scan_body(), **attrs)
    m = make([scan], [("x", F, x_shape)], [("sT", F, None), ("ys", F, None)], {"s0": rand(3)}, opset=16)
    g = check_model(m, {"x": rand(*x_shape)}, backends=("numpy", "interp"))
    assert set(weight_names(g)) == {"k", "s0"}


def test_unsupported_loops_are_named():
    b = loop_body()
    nodes = [helper.make_node("Loop", ["M", "", "h0", "n0"], ["a", "b", "c"], name="dyn_trip", body=b),
             helper.make_node("Loop", ["M2", "cr", "h1", "n0"], ["d", "e", "f"], name="dyn_cond", body=loop_body())]
    outs = [(o, F, None) for o in "abcdef"]
    m = make(nodes, [("x", F, [5, 2, 3]), ("M", I64, []), ("cr", BOOL, [])], outs,
             {"h0": rand(2, 3), "h1": rand(2, 3), "n0": np.array(0, np.int64), "M2": np.array(2, np.int64), "v": rand(3)})
    # the two bodies define the same names: rename the second one's
    for nd in m.graph.node[1].attribute[0].g.node:
        nd.name += "_2"
    with pytest.raises(UnsupportedOpError) as e:
        import_onnx(m)
    text = str(e.value)
    assert "Loop (node 'dyn_trip'): a trip count computed at run time (M)" in text
    assert "Loop (node 'dyn_cond'): a condition computed at run time (cr)" in text
    # a body whose condition is computed from run-time values
    cb = body([node("Cast", ["h"], ["c"], to=BOOL), node("Identity", ["h"], ["h2"])],
              [vi("i", I64, []), vi("c_in", BOOL, []), vi("h", F, [1])], [vi("c", BOOL, [1]), vi("h2", F, [1])])
    m = make([helper.make_node("Loop", ["M", "", "x"], ["y"], name="l", body=cb)], [("x", F, [1])], [("y", F, None)],
             {"M": np.array(3, np.int64)})
    with pytest.raises(UnsupportedOpError, match=r"Loop \(node 'l'\): the body computes its condition at run time"):
        import_onnx(m)


def test_nested_loops_unroll_with_an_outer_weight():
    """A Loop in a Loop's body (its names renamed per outer iteration too), reading an outer weight."""
    inner = body([node("MatMul", ["a", "W"], ["a1"]), node("Tanh", ["a1"], ["a2"]), node("Identity", ["ci"], ["co"])],
                 [vi("j", I64, []), vi("ci", BOOL, []), vi("a", F, [2, 3])], [vi("co", BOOL, []), vi("a2", F, [2, 3])])
    outer = body([helper.make_node("Loop", ["two", "", "h"], ["h2"], name="inner", body=inner),
                  node("Add", ["h2", "x"], ["h3"]), node("Identity", ["c"], ["c2"])],
                 [vi("i", I64, []), vi("c", BOOL, []), vi("h", F, [2, 3])], [vi("c2", BOOL, []), vi("h3", F, [2, 3])],
                 {"two": np.array(2, np.int64)})
    m = make([helper.make_node("Loop", ["three", "", "x"], ["y"], name="outer", body=outer)], [("x", F, [2, 3])],
             [("y", F, None)], {"three": np.array(3, np.int64), "W": rand(3, 3)})
    g = check_model(m, {"x": rand(2, 3)})
    assert g.to_mlir().count("ge.tanh") == 6 and weight_names(g) == ["W"]
