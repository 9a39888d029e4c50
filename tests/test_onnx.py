"""`wrc.onnx.import_onnx` against onnxruntime: single operators and small hand-built models,
each compiled with its initializers as refreshable weights and checked before and after an
update with new random weights."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import wrc
from wrc.bundle_format import bundle_bytes
from wrc.onnx import OnnxImportError, UnsupportedOpError, import_onnx, weight_names
from wrc.workflow import compile_graph

RNG = np.random.default_rng(3)
F = TensorProto.FLOAT


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def make(nodes, inputs, outputs, inits=(), opset=18) -> onnx.ModelProto:
    """A model from nodes; inputs/outputs are (name, elem_type, shape); inits name -> array."""
    graph = helper.make_graph(
        nodes, "m",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        [numpy_helper.from_array(v, k) for k, v in dict(inits).items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def ort_run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def with_initializers(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    out = copy.deepcopy(model)
    for init in out.graph.initializer:
        if init.name in values:
            init.CopyFrom(numpy_helper.from_array(values[init.name], init.name))
    return out


def assert_close(got, want, tol, what):
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype, f"{what} output {i}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}"
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=f"{what} output {i}")


def check_model(model, feeds, backends=("numpy",), tol=1e-4, input_shapes=None, rng=RNG):
    """Import, compile with every weight refreshable, compare with onnxruntime before and
    after updating every float weight to new random values."""
    graph = import_onnx(model, input_shapes)
    names = weight_names(graph)
    data = bundle_bytes(compile_graph(graph, names))
    new = {n: rng.standard_normal(graph.weights[n].shape).astype(graph.weights[n].dtype)
           for n in names if graph.weights[n].dtype.kind == "f"}
    before, after = ort_run(model, feeds), ort_run(with_initializers(model, new), feeds)
    for backend in backends:
        b = wrc.load_bundle(data, backend=backend)
        b.init()
        assert_close(b.infer(feeds), before, tol, f"{backend} before update")
        b.update(new)
        assert_close(b.infer(feeds), after, tol, f"{backend} after update")
    return graph


def node(op, inputs, outputs=("y",), **attrs):
    return helper.make_node(op, list(inputs), list(outputs), name=f"{op}_{outputs[0]}", **attrs)


# ---------------------------------------------------------------- single operators

X = ("x", F, [2, 3, 4])
Y = ("y", F, None)

UNARY = ["Relu", "Sigmoid", "Tanh", "Exp", "Neg", "Erf", "Abs", "Identity"]


@pytest.mark.parametrize("op", UNARY)
def test_unary(op):
    w = rand(4)
    m = make([node("Add", ["x", "w"], ["t"]), node(op, ["t"])], [X], [Y], {"w": w})
    check_model(m, {"x": rand(2, 3, 4)})


@pytest.mark.parametrize("op", ["Sqrt", "Log"])
def test_unary_positive(op):
    m = make([node("Mul", ["x", "x"], ["t"]), node("Add", ["t", "w"], ["u"]), node(op, ["u"])], [X], [Y],
             {"w": np.full(4, 0.5, np.float32)})
    check_model(m, {"x": rand(2, 3, 4)})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean"])
def test_binary_broadcast(op):
    m = make([node(op, ["x", "w"])], [X], [Y], {"w": rand(3, 1)})
    check_model(m, {"x": rand(2, 3, 4)})


def test_pow_and_activations():
    nodes = [
        node("Abs", ["x"], ["a"]), node("Pow", ["a", "p"], ["y0"]),
        node("LeakyRelu", ["x"], ["y1"], alpha=0.3), node("PRelu", ["x", "s"], ["y2"]),
        node("Clip", ["x", "lo", "hi"], ["y3"]), node("HardSigmoid", ["x"], ["y4"], alpha=0.3, beta=0.4),
        node("Gelu", ["x"], ["y5"]), node("Gelu", ["x"], ["y6"], approximate="tanh"),
        node("Softmax", ["x"], ["y7"], axis=1), node("LogSoftmax", ["x"], ["y8"]),
    ]
    inits = {"p": np.float32(1.7).reshape(()), "s": rand(4), "lo": np.float32(-0.5).reshape(()),
             "hi": np.float32(0.7).reshape(())}
    m = make(nodes, [X], [(f"y{i}", F, None) for i in range(9)], inits, opset=20)
    check_model(m, {"x": rand(2, 3, 4)})


def test_layout_ops():
    nodes = [
        node("Transpose", ["x"], ["t"], perm=[2, 0, 1]),
        node("Reshape", ["t", "shape"], ["y0"]),
        node("Flatten", ["x"], ["y1"], axis=2),
        node("Unsqueeze", ["x", "ax0"], ["u"]), node("Squeeze", ["u", "ax0"], ["y2"]),
        node("Concat", ["x", "w"], ["y3"], axis=1),
        node("Split", ["x"], ["y4", "y5"], axis=2, num_outputs=2),
        node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y6"]),
        node("Expand", ["w1", "eshape"], ["e"]), node("Add", ["e", "x"], ["y7"]),
        node("Gather", ["x", "idx"], ["y8"], axis=2),
    ]
    inits = {
        "shape": np.array([4, 0, -1], np.int64), "ax0": np.array([0], np.int64), "w": rand(2, 2, 4),
        "starts": np.array([1, -3], np.int64), "ends": np.array([100, 4], np.int64),
        "axes": np.array([1, 2], np.int64), "steps": np.array([1, 2], np.int64),
        "w1": rand(3, 1), "eshape": np.array([2, 1, 4], np.int64), "idx": np.array([[3, -1], [0, 1]], np.int64),
    }
    m = make(nodes, [X], [(f"y{i}", F, None) for i in range(9)], inits)
    check_model(m, {"x": rand(2, 3, 4)})


def test_matmul_forms_and_gemm():
    nodes = [
        node("MatMul", ["x", "w2"], ["y0"]),          # (2,3,4) x (4,5): batch folded into rows
        node("MatMul", ["x", "w3"], ["y1"]),          # (2,3,4) x (1,4,2): broadcast batch
        node("MatMul", ["x", "v"], ["y2"]),           # (2,3,4) x (4,)
        node("Gemm", ["a", "g", "c"], ["y3"], transA=1, transB=1, alpha=0.5, beta=2.0),
    ]
    inits = {"w2": rand(4, 5), "w3": rand(1, 4, 2), "v": rand(4), "g": rand(6, 3), "c": rand(6)}
    m = make(nodes, [X, ("a", F, [3, 5])], [(f"y{i}", F, None) for i in range(4)], inits)
    check_model(m, {"x": rand(2, 3, 4), "a": rand(3, 5)})


def test_reductions_cast_where():
    nodes = [
        node("ReduceMean", ["x", "axes"], ["y0"]),
        node("ReduceSum", ["x", "axes"], ["y1"], keepdims=0),
        node("ReduceMax", ["x"], ["y2"], keepdims=0),
        node("Cast", ["x"], ["i"], to=TensorProto.INT32), node("Cast", ["i"], ["y3"], to=TensorProto.FLOAT),
        node("Cast", ["m"], ["b"], to=TensorProto.BOOL), node("Where", ["b", "x", "w"], ["y4"]),
    ]
    m = make(nodes, [X, ("m", TensorProto.INT64, [3, 1])], [(f"y{i}", F, None) for i in range(5)],
             {"axes": np.array([1, -1], np.int64), "w": rand(4)})
    check_model(m, {"x": 3 * rand(2, 3, 4), "m": np.array([[0], [2], [-1]], np.int64)})


def test_cnn_ops():
    nodes = [
        node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
        node("BatchNormalization", ["c", "s", "bb", "mu", "var"], ["n"], epsilon=1e-3),
        node("Relu", ["n"], ["r"]),
        node("MaxPool", ["r"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        node("AveragePool", ["r"], ["y1"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        node("Conv", ["p", "w2"], ["c2"], auto_pad="SAME_UPPER", strides=[2, 2], group=2),
        node("GlobalAveragePool", ["c2"], ["y0"]),
        node("GlobalMaxPool", ["c2"], ["y2"]),
    ]
    inits = {"w": rand(4, 2, 3, 3), "b": rand(4), "s": rand(4), "bb": rand(4), "mu": rand(4),
             "var": np.abs(rand(4)) + 0.5, "w2": rand(4, 2, 3, 3)}
    m = make(nodes, [("x", F, [1, 2, 7, 7])], [(f"y{i}", F, None) for i in range(3)], inits)
    g = check_model(m, {"x": rand(1, 2, 7, 7)})
    # BatchNormalization's running variance must stay positive after an update: redo with abs.
    assert set(weight_names(g)) == set(inits)


def test_conv1d_and_pool1d():
    nodes = [node("Conv", ["x", "w"], ["c"], pads=[1, 1], dilations=[2]),
             node("MaxPool", ["c"], ["y"], kernel_shape=[2])]
    m = make(nodes, [("x", F, [1, 2, 9])], [Y], {"w": rand(3, 2, 3)})
    check_model(m, {"x": rand(1, 2, 9)})


def test_layer_norm_and_small_model_on_interp():
    nodes = [node("MatMul", ["x", "w"], ["h"]), node("LayerNormalization", ["h", "g", "b"], ["n"], epsilon=1e-5),
             node("Gelu", ["n"], ["y"])]
    m = make(nodes, [("x", F, [2, 3])], [Y], {"w": rand(3, 4), "g": rand(4), "b": rand(4)}, opset=20)
    check_model(m, {"x": rand(2, 3)}, backends=("numpy", "interp"))


def test_embedding_gather_on_interp():
    nodes = [node("Gather", ["emb", "ids"], ["e"]), node("ReduceSum", ["e", "ax"], ["y"], keepdims=0)]
    m = make(nodes, [("ids", TensorProto.INT64, [2, 3])], [Y], {"emb": rand(5, 2), "ax": np.array([1], np.int64)})
    check_model(m, {"ids": np.array([[0, 4, 2], [1, -1, 3]], np.int64)}, backends=("numpy", "interp"))


# ---------------------------------------------------------------- import behaviour


def shape_chain_model() -> onnx.ModelProto:
    """What exporters emit for `x.view(x.size(0), -1)`: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    nodes = [
        node("Shape", ["x"], ["s"]),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.int64))),
        node("Gather", ["s", "zero"], ["n"]),
        node("Unsqueeze", ["n", "ax0"], ["n1"]),
        node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        node("Reshape", ["x", "shape"], ["r"]),
        node("MatMul", ["r", "w"], ["y"]),
    ]
    return make(nodes, [("x", F, ["batch", 2, 3])], [Y],
                {"ax0": np.array([0], np.int64), "minus1": np.array([-1], np.int64), "w": rand(6, 2)})


def test_shape_chain_is_folded_when_shapes_are_pinned():
    m = shape_chain_model()
    g = check_model(m, {"x": rand(4, 2, 3)}, input_shapes={"x": (4, 2, 3)})
    assert weight_names(g) == ["w"]
    ir = g.to_mlir()
    assert "ge.reshape" in ir and "ge.gather" not in ir and "ge.concat" not in ir


def test_symbolic_dims_are_dynamic_and_errors_say_how_to_pin_them():
    m = make([node("Relu", ["x"])], [("x", F, ["batch", 3])], [Y])
    g = import_onnx(m)
    assert g.inputs[0][1] == (None, 3)
    with pytest.raises(OnnxImportError, match="input_shapes"):
        import_onnx(shape_chain_model())
    with pytest.raises(OnnxImportError, match="not inputs of the model"):
        import_onnx(m, input_shapes={"nope": (1, 3)})


def test_unsupported_ops_are_all_listed():
    nodes = [node("Relu", ["x"], ["a"]), helper.make_node("Det", ["a"], ["b"], name="det1"),
             helper.make_node("Sin", ["b"], ["c"], name="sin1"), node("Relu", ["c"], ["d"]),
             helper.make_node("Cos", ["d"], ["y"], name="cos1")]
    m = make(nodes, [("x", F, [3, 3])], [Y])
    with pytest.raises(UnsupportedOpError) as e:
        import_onnx(m)
    msg = str(e.value)
    for part in ("Det (node 'det1')", "Sin (node 'sin1')", "Cos (node 'cos1')"):
        assert part in msg
    assert len(e.value.problems) == 3 and isinstance(e.value, wrc.WrcError)


def test_initializers_keep_onnx_names_and_constants_fold():
    nodes = [helper.make_node("Constant", [], ["k"], value_float=2.0), node("Mul", ["x", "k"], ["t"]),
             node("Add", ["t", "layer.0/bias:0"])]
    m = make(nodes, [("x", F, [2])], [Y], {"layer.0/bias:0": rand(2), "unused": rand(3)})
    g = check_model(m, {"x": rand(2)})
    assert weight_names(g) == ["layer.0/bias:0"]


def test_external_data_and_file_errors(tmp_path):
    w = rand(64, 32)
    m = make([node("MatMul", ["x", "w"])], [("x", F, [2, 64])], [Y], {"w": w})
    path = tmp_path / "ext.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.data", size_threshold=0)
    assert (tmp_path / "ext.data").exists()
    g = import_onnx(path)
    np.testing.assert_array_equal(g.weights["w"], w)
    with pytest.raises(OnnxImportError, match="no such file"):
        import_onnx(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(OnnxImportError, match="bad.onnx"):
        import_onnx(tmp_path / "bad.onnx")


def test_opset_and_dtype_errors():
    with pytest.raises(OnnxImportError, match="opset 6"):
        import_onnx(make([node("Relu", ["x"])], [("x", F, [2])], [Y], opset=6))
    with pytest.raises(OnnxImportError, match="input 'x'.*UINT8"):
        import_onnx(make([node("Identity", ["x"])], [("x", TensorProto.UINT8, [2])], [Y]))


def test_conv_transpose_lrn_pad():
    nodes = [
        node("ConvTranspose", ["x", "w", "b"], ["y0"], strides=[2, 2], pads=[1, 0, 0, 1], output_padding=[1, 0]),
        node("LRN", ["x"], ["y1"], size=3, alpha=0.01, beta=0.5, bias=2.0),
        node("Pad", ["x", "pads", "v"], ["y2"]),
    ]
    inits = {"w": rand(2, 3, 3, 2), "b": rand(3), "pads": np.array([0, 1, -1, 2, 0, 0, 1, 0], np.int64),
             "v": np.array(1.5, np.float32)}
    m = make(nodes, [("x", F, [1, 2, 4, 3])], [(f"y{i}", F, None) for i in range(3)], inits)
    check_model(m, {"x": rand(1, 2, 4, 3)})
