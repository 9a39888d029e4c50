"""The importer on what exporters and older tools emit (issue 11): models at opsets 7-12
(upgraded with `onnx.version_converter`; onnx's own `light` CNNs), Dropout's mask output,
`If`, NumPy folds where `onnx.reference` is wrong, which constants `weight_names` picks, and
forms that produce empty tensors. Each model against onnxruntime before and after an update."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_onnx import F, Y, check_model, make, node, rand

import wrc
from wrc.bundle_format import bundle_bytes
from wrc.onnx import OnnxImportError, UnsupportedOpError, import_onnx, weight_names
from wrc.workflow import compile_graph

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def light_model(name: str, rng: np.random.Generator) -> onnx.ModelProto:
    """onnx's `light_<name>.onnx` with real weights: these files ship their weights as
    `ConstantOfShape(shape initializer)` fills (to stay small); each becomes a random
    initializer of that name (IR 3: listed among the graph inputs too)."""
    model = onnx.load(str(LIGHT / f"light_{name}.onnx"))
    shapes = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    kept = []
    for n in model.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in shapes:
            shape = [int(d) for d in shapes[n.input[0]]]
            w = (rng.standard_normal(shape) * 0.1).astype(np.float32)
            model.graph.initializer.append(numpy_helper.from_array(w, n.output[0]))
            model.graph.input.append(helper.make_tensor_value_info(n.output[0], F, shape))
        else:
            kept.append(n)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    dropped = set(shapes) - {i for n in kept for i in n.input}
    for seq in (model.graph.initializer, model.graph.input):
        for item in [i for i in seq if i.name in dropped]:
            seq.remove(item)
    return model


@pytest.mark.parametrize("name", ["squeezenet"])
def test_light_cnn_at_opset_9_matches_onnxruntime(name):
    """SqueezeNet: opset 9, Dropout (its mask output appears with the upgrade), Concat, pooling."""
    rng = np.random.default_rng(4)
    model = light_model(name, rng)
    assert model.opset_import[0].version == 9
    data = model.graph.input[[i.name for i in model.graph.input].index("data_0")]
    shape = [d.dim_value for d in data.type.tensor_type.shape.dim]
    graph = check_model(model, {"data_0": rng.standard_normal(shape).astype(np.float32)}, tol=1e-3,
                        rng=np.random.default_rng(6))
    # the weights keep their ONNX names; the int64 shape initializers are gone
    assert set(weight_names(graph)) == {i.name for i in model.graph.initializer}


def old_opset_model() -> onnx.ModelProto:
    """Opset-10 forms the upgrade rewrites: attributes that became inputs (Clip min/max,
    Unsqueeze/Squeeze/ReduceSum axes, Split sizes, Pad pads), Softmax's old coerce-to-2-D
    semantics, Dropout's ratio attribute."""
    nodes = [
        node("Add", ["x", "w"], ["a"]),
        node("Clip", ["a"], ["c"], min=-0.5, max=0.8),
        node("Unsqueeze", ["c"], ["u"], axes=[0]), node("Squeeze", ["u"], ["s"], axes=[0]),
        node("ReduceSum", ["s"], ["y0"], axes=[1], keepdims=0),
        node("Split", ["x"], ["p0", "p1"], axis=2, split=[1, 3]), node("Mul", ["p1", "w3"], ["y1"]),
        node("Pad", ["x"], ["y2"], pads=[0, 1, 0, 0, 0, 2], value=0.5),
        node("Softmax", ["a"], ["y3"], axis=1),
        node("Dropout", ["a"], ["y4"], ratio=0.3),
    ]
    return make(nodes, [("x", F, [2, 3, 4])], [(f"y{i}", F, None) for i in range(5)],
                {"w": rand(3, 4), "w3": rand(3)}, opset=10)


def test_old_opset_forms_are_upgraded():
    m = old_opset_model()
    g = check_model(m, {"x": rand(2, 3, 4)})
    assert weight_names(g) == ["w", "w3"]


def large_old_opset_model() -> onnx.ModelProto:
    """Opset 10, a weight of 2 x 1024 elements (passed to the converter as a stub) and a Clip
    whose attributes become small initializers (made by the converter itself)."""
    nodes = [node("Add", ["x", "w"], ["a"]), node("Clip", ["a"], ["y"], min=-0.5, max=0.8)]
    return make(nodes, [("x", F, [2, 1024])], [Y], {"w": rand(2, 1024)}, opset=10)


def test_upgrade_gives_the_converter_no_weight_bytes(monkeypatch):
    from onnx import version_converter

    m = large_old_opset_model()
    seen = []
    real = version_converter.convert_version
    monkeypatch.setattr(version_converter, "convert_version",
                        lambda model, opset: seen.append(model.ByteSize()) or real(model, opset))
    g = check_model(m, {"x": rand(2, 1024)})
    assert len(seen) == 1 and seen[0] < 1024 and m.ByteSize() > 8192  # the 8 KiB weight left out
    assert g.weights["w"].tobytes() == numpy_helper.to_array(m.graph.initializer[0]).tobytes()


@pytest.mark.parametrize("how", ["fails", "changes the stub"])
def test_upgrade_converts_the_whole_model_when_stubs_do_not_do(monkeypatch, how):
    from onnx import version_converter

    m = large_old_opset_model()
    seen = []
    real = version_converter.convert_version

    def convert(model, opset):
        seen.append(model.ByteSize())
        if len(seen) == 1 and how == "fails":
            raise RuntimeError("an adapter that reads a weight")
        out = real(model, opset)
        if len(seen) == 1:  # an adapter that rewrote the stubbed weight
            out.graph.initializer[0].float_data.extend(np.zeros(2048, np.float32))
        return out

    monkeypatch.setattr(version_converter, "convert_version", convert)
    g = check_model(m, {"x": rand(2, 1024)})
    assert len(seen) == 2 and seen[1] == m.ByteSize()  # then the whole model
    assert g.weights["w"].tobytes() == numpy_helper.to_array(m.graph.initializer[0]).tobytes()


def test_import_holds_one_copy_of_each_initializer():
    """The importer's array of an initializer (its own, read from the model) becomes the graph's
    weight itself: the Python-side peak of an import is about one copy of the weights."""
    import tracemalloc

    w = rand(512, 1024)  # 2 MiB
    m = make([node("MatMul", ["x", "w"])], [("x", F, [1, 512])], [Y], {"w": w})
    tracemalloc.start()
    try:
        g = import_onnx(m)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert g.weights["w"].tobytes() == w.tobytes()
    assert w.nbytes <= peak < 1.5 * w.nbytes, peak


def test_opset_errors_name_the_node():
    nodes = [node("Relu", ["x"], ["h"]), helper.make_node("BatchNormalization", ["h", "s", "b", "m", "v"], ["y"],
                                                         name="bn1", spatial=0)]
    inits = {k: rand(2) for k in "sbmv"}
    m = make(nodes, [("x", F, [1, 2, 3, 3])], [Y], inits, opset=8)
    with pytest.raises(OnnxImportError, match=r"cannot upgrade this opset-8 model.*BatchNormalization \(node 'bn1'\).*spatial"):
        import_onnx(m)
    with pytest.raises(OnnxImportError, match="opset 6 is not supported.*7 to 12 are upgraded"):
        import_onnx(make([node("Relu", ["x"])], [("x", F, [2])], [Y], opset=6))


def test_dropout_mask_is_all_true():
    nodes = [node("Add", ["x", "w"], ["a"]), node("Dropout", ["a"], ["y0", "mask"]),
             node("Cast", ["mask"], ["y1"], to=TensorProto.FLOAT)]
    m = make(nodes, [("x", F, [2, 3])], [(f"y{i}", F, None) for i in range(2)], {"w": rand(3)})
    check_model(m, {"x": rand(2, 3)})
    # unread and of dynamic shape: dropped
    m = make([node("Relu", ["x"], ["a"]), node("Dropout", ["a"], ["y", "mask"])], [("x", F, ["n", 3])], [Y])
    assert import_onnx(m).inputs[0][1] == (None, 3)
    # read but of dynamic shape: unsupported, saying why
    m = make([node("Dropout", ["x"], ["y", "mask"])], [("x", F, ["n", 3])], [("mask", TensorProto.BOOL, None)])
    with pytest.raises(UnsupportedOpError, match="mask output of Dropout on a tensor of dynamic shape"):
        import_onnx(m)


def branch(name: str, nodes, outputs) -> onnx.GraphProto:
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(o, F, None) for o in outputs])


def if_model(cond_node, extra_inputs=()) -> onnx.ModelProto:
    then = branch("then", [node("MatMul", ["x", "w"], ["t0"]), node("Relu", ["t0"], ["t1"])], ["t1"])
    other = branch("else", [node("Mul", ["x", "v"], ["e0"]), node("Add", ["e0", "x"], ["e1"])], ["e1"])
    nodes = [*cond_node, helper.make_node("If", ["cond"], ["y"], name="if1", then_branch=then, else_branch=other)]
    return make(nodes, [("x", F, [2, 3]), *extra_inputs], [Y], {"w": rand(3, 3), "v": rand(3)})


@pytest.mark.parametrize("taken", [True, False])
def test_if_with_a_constant_condition_inlines_the_taken_branch(taken):
    const = helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(taken)))
    g = check_model(if_model([const]), {"x": rand(2, 3)})
    ir = g.to_mlir()
    assert ("ge.matmul" in ir) == taken and ("ge.where" not in ir)
    assert weight_names(g) == (["w"] if taken else ["v"])


def test_if_with_a_runtime_condition_selects_on_both_backends():
    m = if_model([node("Cast", ["c"], ["cond"], to=TensorProto.BOOL)], [("c", F, [1])])
    for c in (0.0, 2.0):
        check_model(m, {"x": rand(2, 3), "c": np.array([c], np.float32)}, backends=("numpy", "interp"))


def test_if_with_a_runtime_condition_and_different_shapes_is_unsupported():
    then = branch("then", [node("MatMul", ["x", "w"], ["t0"])], ["t0"])
    other = branch("else", [node("Transpose", ["x"], ["e0"])], ["e0"])
    nodes = [node("Cast", ["c"], ["cond"], to=TensorProto.BOOL),
             helper.make_node("If", ["cond"], ["y"], name="if1", then_branch=then, else_branch=other)]
    m = make(nodes, [("x", F, [2, 3]), ("c", F, [1])], [Y], {"w": rand(3, 4)})
    with pytest.raises(UnsupportedOpError, match=r"If \(node 'if1'\): a run-time condition with output 0 of "
                                                  r"float32\[2, 4\] in then_branch but float32\[3, 2\]"):
        import_onnx(m)


def test_gather_elements_over_constants_is_folded_with_numpy():
    """onnx.reference's GatherElements fails when the indices are smaller than the data on the
    other axes ("cannot reshape array of size 1 into shape (1,32)")."""
    data = np.arange(2 * 64, dtype=np.int64).reshape(2, 64)
    idx = np.random.default_rng(0).integers(-64, 64, (1, 32))
    nodes = [node("GatherElements", ["d", "i"], ["g"], axis=1), node("Cast", ["g"], ["gf"], to=F),
             node("Mul", ["x", "gf"], ["t"]), node("Add", ["t", "b"], ["y"])]
    m = make(nodes, [("x", F, [1, 32])], [Y], {"d": data, "i": idx, "b": rand(32)})
    g = check_model(m, {"x": rand(1, 32)})
    assert "gather" not in g.to_mlir()


def test_weight_names_are_the_weights():
    """Float initializers with more than one element: not index tensors, scalar exponents,
    epsilons or scales, nor mask fills (|x| >= 1e30), nor values folded at import. Any of them
    can still be made refreshable by name."""
    mask = np.where(np.tril(np.ones((3, 3), bool)), 0.0, -3.4e38).astype(np.float32)
    nodes = [
        node("MatMul", ["x", "w"], ["h"]), node("Pow", ["h", "three"], ["p"]), node("Add", ["p", "eps"], ["q"]),
        node("Div", ["q", "scale"], ["r"]), node("Gather", ["r", "idx"], ["s"], axis=1),
        node("Add", ["s", "mask"], ["t"]),
        helper.make_node("ConstantOfShape", ["shape"], ["fill"], value=numpy_helper.from_array(np.array([0.5], np.float32))),
        node("Mul", ["t", "fill"], ["y"]),
    ]
    inits = {"w": rand(3, 3), "three": np.array(3.0, np.float32), "eps": np.array([1e-5], np.float32),
             "scale": np.array(8.0, np.float32), "idx": np.array([2, 0, 1], np.int64), "mask": mask,
             "shape": np.array([3, 3], np.int64)}
    m = make(nodes, [("x", F, [3, 3])], [Y], inits)
    g = check_model(m, {"x": rand(3, 3)})
    assert weight_names(g) == ["w"]
    assert {"three", "eps", "scale", "idx", "mask", "fill"} <= set(g.constants)
    ir = g.to_mlir()
    assert 'ge.const "three" = dense<3.0' in ir  # inline: passes see the exponent
    # named explicitly, any of them is refreshable
    feeds = {"x": rand(3, 3)}
    b = wrc.load_bundle(bundle_bytes(compile_graph(g, ["w", "three", "fill"])))
    b.init()
    before = b.infer(feeds)[0]
    b.update({"three": np.array(1.0, np.float32), "fill": np.ones((3, 3), np.float32)})
    h = feeds["x"] @ g.weights["w"]
    want = ((h + 1e-5) / 8.0)[:, [2, 0, 1]] + mask
    np.testing.assert_allclose(b.infer(feeds)[0], want, rtol=1e-5)
    assert not np.allclose(before, want)


def test_non_finite_constants_stay_exact():
    """A -inf fill (a scalar, so not a weight) is kept out of the IR text, which cannot carry it."""
    nodes = [node("Add", ["x", "w"], ["a"]), node("Max", ["a", "ninf"], ["m"]), node("Min", ["m", "inf2"], ["y"])]
    m = make(nodes, [("x", F, [2, 3])], [Y], {"w": rand(3), "ninf": np.array(-np.inf, np.float32),
                                              "inf2": np.array([np.inf, 1.0, np.inf], np.float32)})
    g = check_model(m, {"x": rand(2, 3)}, backends=("numpy", "interp"))
    assert weight_names(g) == ["w"] and {"ninf", "inf2"} <= set(g.weights)


def test_empty_results_and_bool_reductions():
    # a Slice whose start is past the end makes an empty tensor: unsupported, saying so
    m = make([node("Add", ["x", "w"], ["a"]), node("Slice", ["a", "st", "en"])], [("x", F, [4, 3])], [Y],
             {"w": rand(3), "st": np.array([10], np.int64), "en": np.array([20], np.int64)})
    with pytest.raises(UnsupportedOpError, match=r"Slice .*empty tensor \(shape \[0, 3\]\)"):
        import_onnx(m)
    # ReduceMax of bools ("any")
    nodes = [node("Add", ["x", "w"], ["a"]), node("Relu", ["a"], ["r"]), node("Cast", ["r"], ["b"], to=TensorProto.BOOL),
             node("ReduceMax", ["b", "ax"], ["m"], keepdims=0), node("Cast", ["m"], ["y"], to=F)]
    m = make(nodes, [("x", F, [4, 3])], [Y], {"w": rand(3), "ax": np.array([1], np.int64)}, opset=20)
    x = rand(4, 3)
    x[0] = -10
    check_model(m, {"x": x}, backends=("numpy", "interp"))


if __name__ == "__main__":  # all nine light CNNs (minutes): python tests/test_onnx_import.py [name ...]
    import sys
    import time

    for name in sys.argv[1:] or sorted(p.stem[len("light_"):] for p in LIGHT.glob("light_*.onnx")):
        rng = np.random.default_rng(4)
        model = light_model(name, rng)
        inits = {i.name for i in model.graph.initializer}
        data = next(i for i in model.graph.input if i.name not in inits)
        start = time.monotonic()
        check_model(model, {data.name: rng.standard_normal([d.dim_value for d in data.type.tensor_type.shape.dim])
                            .astype(np.float32)}, tol=1e-3, rng=np.random.default_rng(6))
        print(f"{name}: matches onnxruntime before and after an update ({time.monotonic() - start:.0f} s)")
