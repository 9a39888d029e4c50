"""The GE workflow API end to end, docs/spec.md §1–§3 point by point, on both backends."""

from __future__ import annotations

import numpy as np
import pytest

import wrc
from wrc.bundle_format import bundle_bytes

RNG = np.random.default_rng(42)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def mlp_graph(batch: int = 3, sizes=(5, 4, 3)) -> tuple[wrc.Graph, dict[str, np.ndarray]]:
    """x @ const_1 + bias -> relu -> @ const_2 -> softmax; `bias` stays a constant."""
    w = {"const_1": rand(sizes[0], sizes[1]), "bias": rand(sizes[1]), "const_2": rand(sizes[1], sizes[2])}
    g = wrc.Graph("mlp")
    x = g.data("x", (batch, sizes[0]))
    h = g.relu(g.add(g.matmul(x, g.const("const_1", w["const_1"])), g.const("bias", w["bias"])))
    g.output(g.softmax(g.matmul(h, g.const("const_2", w["const_2"])), axis=-1))
    return g, w


def mlp_ref(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    logits = np.maximum(x @ w["const_1"] + w["bias"], 0) @ w["const_2"]
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def session():
    wrc.build_initialize()
    yield
    wrc.build_finalize()


def build(graph, names, *, init=True, path=None):
    graphs = wrc.convert_to_weight_refreshable_graphs(graph, names)
    parts = [(graphs.infer_graph, {}), (graphs.var_update_graph, {})]
    if init:
        parts.insert(1, (graphs.var_init_graph, {}))
    model = wrc.bundle_build_model(parts)
    if path is not None:
        wrc.bundle_save_model(path, model)
    return model


# ---------------------------------------------------------------- §1 workflow


def test_build_apis_need_a_session():
    g, _ = mlp_graph()
    with pytest.raises(wrc.BuildError, match="no build session is active"):
        wrc.convert_to_weight_refreshable_graphs(g, ["const_1"])
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(g, ["const_1"])
    with pytest.raises(wrc.BuildError, match="bundle_build_model: no build session"):
        wrc.bundle_build_model([graphs.infer_graph, graphs.var_update_graph])
    with pytest.raises(wrc.BuildError, match="no build session is active"):
        wrc.build_finalize()


def test_initialize_twice_and_bad_options():
    with wrc.BuildSession():
        with pytest.raises(wrc.BuildError, match="already active"):
            wrc.build_initialize()
    with pytest.raises(wrc.BuildError, match="unknown option 'ge.exec.deviceId'"):
        wrc.build_initialize({"ge.exec.deviceId": "0"})
    with pytest.raises(wrc.BuildError, match="keys and values must be str"):
        wrc.build_initialize({"a": 1})
    wrc.build_initialize()  # the failed calls left no session behind
    wrc.build_finalize()


@pytest.mark.parametrize("backend", ["numpy", "interp"])
def test_end_to_end_init_infer_update(session, tmp_path, backend):
    g, w = mlp_graph()
    build(g, ["const_1", "const_2"], path=tmp_path / "m.wrcb")
    b = wrc.load_bundle(tmp_path / "m.wrcb", backend=backend)
    assert list(b.graphs) == ["var_infer_graph", "var_init_graph", "var_update_graph"]
    assert set(b.variables) == {"const_1_var", "const_2_var"}
    assert not b.variables["const_1_var"].initialized
    x = rand(3, 5)
    b.init()
    assert b.variables["const_2_var"].initialized
    assert b.variables["const_1_var"].shape == (5, 4)
    np.testing.assert_allclose(b.infer({"x": x})[0], mlp_ref(x, w), rtol=1e-5, atol=1e-6)
    new = {"const_1": rand(5, 4), "const_2": rand(4, 3)}
    b.update(new)
    np.testing.assert_allclose(b.infer([x])[0], mlp_ref(x, {**w, **new}), rtol=1e-5, atol=1e-6)
    # partial update by a missing key, and by an empty array
    newer = rand(4, 3)
    b.update({"const_2": newer})
    np.testing.assert_allclose(b.infer({"x": x})[0], mlp_ref(x, {**w, **new, "const_2": newer}), rtol=1e-5, atol=1e-6)
    b.update({"const_1": np.zeros((0,), np.float32), "const_2": w["const_2"]})
    np.testing.assert_allclose(b.infer({"x": x})[0], mlp_ref(x, {**w, "const_1": new["const_1"]}), rtol=1e-5, atol=1e-6)


def test_several_models_in_one_span_and_independent_bundles(session, tmp_path):
    g1, w1 = mlp_graph()
    g2, w2 = mlp_graph()
    build(g1, ["const_1", "const_2"], path=tmp_path / "a.wrcb")
    build(g2, ["const_2"], path=tmp_path / "b.wrcb")
    a, a2, b = (wrc.load_bundle(tmp_path / n) for n in ("a.wrcb", "a.wrcb", "b.wrcb"))
    for bundle in (a, a2, b):
        bundle.init()
    assert set(b.variables) == {"const_2_var"}
    x = rand(3, 5)
    a.update({"const_2": rand(4, 3)})  # must not leak into a2, loaded from the same file
    np.testing.assert_allclose(a2.infer({"x": x})[0], mlp_ref(x, w1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.infer({"x": x})[0], mlp_ref(x, w2), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- §2 conversion


@pytest.mark.parametrize(
    "names, message",
    [
        ([], "no constant names given"),
        (["const_1", ""], "a constant name is empty"),
        (["const_1", "const_1"], 'constant name "const_1" is given twice'),
        (["nope"], '"nope" is not a ge.const of the graph @mlp'),
        (["x"], '"x" is not a ge.const of the graph @mlp'),  # a data input, not a constant
    ],
)
def test_conversion_errors_leave_graph_unchanged(session, names, message):
    g, _ = mlp_graph()
    before = g.to_mlir()
    with pytest.raises(wrc.ConversionError) as info:
        wrc.convert_to_weight_refreshable_graphs(g, names)
    assert message in str(info.value)
    assert isinstance(info.value, wrc.WrcError)
    assert g.to_mlir() == before


def test_conversion_rejects_a_bare_string(session):
    g, _ = mlp_graph()
    with pytest.raises(wrc.BuildError, match="list of str"):
        wrc.convert_to_weight_refreshable_graphs(g, "const_1")


def test_converted_graphs_follow_ge(session):
    g, _ = mlp_graph()
    graphs = wrc.convert_to_weight_refreshable_graphs(g, ["const_2", "const_1"])
    infer = graphs.infer_graph.to_mlir()
    assert "ge.read_variable @const_1_var : tensor<5x4xf32>" in infer
    assert "ge.read_variable @const_2_var : tensor<4x3xf32>" in infer
    assert 'ge.const "bias"' in infer and 'ge.const "const_1"' not in infer
    init = graphs.var_init_graph.to_mlir()
    assert '{name = "const_2_assign"}' in init and '{name = "const_1_assign"}' in init
    update = graphs.var_update_graph
    assert [(n, s) for n, s, _ in update.inputs] == [("const_2_var_data", None), ("const_1_var_data", None)]
    assert graphs.var_infer_graph is graphs.infer_graph
    assert g.to_mlir().count("ge.read_variable") == 0  # the original is untouched


def test_scalar_weight_updated_to_zero_is_updated(session, tmp_path):
    """GE's If would skip a scalar 0 (truthiness); wrc tests emptiness."""
    g = wrc.Graph("scale")
    x = g.data("x", (4,))
    g.output(g.mul(x, g.const("k", np.float32(3.0))))
    build(g, ["k"], path=tmp_path / "s.wrcb")
    b = wrc.load_bundle(tmp_path / "s.wrcb")
    b.init()
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(b.infer({"x": x})[0], 3 * x)
    b.update({"k": np.float32(0.0)})
    np.testing.assert_array_equal(b.infer({"x": x})[0], 0 * x)
    b.update({"k": np.zeros((0,), np.float32)})  # empty: unchanged
    np.testing.assert_array_equal(b.infer({"x": x})[0], 0 * x)


def test_bundle_build_errors(session):
    g, _ = mlp_graph()
    graphs = wrc.convert_to_weight_refreshable_graphs(g, ["const_1"])
    with pytest.raises(wrc.BuildError, match="at least 2 graphs, got 1"):
        wrc.bundle_build_model([(graphs.infer_graph, {})])
    with pytest.raises(wrc.BuildError, match="several graphs are named 'var_infer_graph'"):
        wrc.bundle_build_model([graphs.infer_graph, graphs.infer_graph])
    with pytest.raises(wrc.BuildError, match="unknown option 'precision'"):
        wrc.bundle_build_model([(graphs.infer_graph, {"precision": "fp16"}), graphs.var_update_graph])
    # the same variable name with another shape in another graph
    other = wrc.Graph("other")
    x = other.data("x", (3, 6))
    other.output(other.matmul(x, other.const("const_1", rand(6, 4))))
    other_graphs = wrc.convert_to_weight_refreshable_graphs(other, ["const_1"])
    renamed = other_graphs.infer_graph.copy()
    renamed.func.sym_name = type(renamed.func.sym_name)("other_infer")
    with pytest.raises(wrc.BuildError) as info:
        wrc.bundle_build_model([graphs.infer_graph, renamed])
    text = str(info.value)
    assert "'const_1_var'" in text and "'var_infer_graph'" in text and "'other_infer'" in text
    assert "tensor<5x4xf32>" in text and "tensor<6x4xf32>" in text


# ---------------------------------------------------------------- §3 runtime contract


def test_weight_stripped_bundle(session, tmp_path):
    g, w = mlp_graph(sizes=(50, 40, 30))
    build(g, ["const_1", "const_2"], path=tmp_path / "full.wrcb")
    build(g, ["const_1", "const_2"], init=False, path=tmp_path / "lean.wrcb")
    full, lean = (tmp_path / "full.wrcb").stat().st_size, (tmp_path / "lean.wrcb").stat().st_size
    assert lean < full - (50 * 40 + 40 * 30) * 4 * 0.9
    b = wrc.load_bundle(tmp_path / "lean.wrcb")
    assert "var_init_graph" not in b.graphs
    x = rand(3, 50)
    with pytest.raises(wrc.RuntimeStateError) as info:
        b.infer({"x": x})
    assert "const_1_var" in str(info.value) and "const_2_var" in str(info.value)
    with pytest.raises(wrc.RuntimeStateError, match="weight-stripped"):
        b.init()
    b.update({"const_1": w["const_1"]})
    with pytest.raises(wrc.RuntimeStateError) as info:
        b.infer({"x": x})
    assert "const_2_var" in str(info.value) and "const_1_var" not in str(info.value)
    b.update({"const_2": w["const_2"]})
    np.testing.assert_allclose(b.infer({"x": x})[0], mlp_ref(x, w), rtol=1e-5, atol=1e-6)


def test_update_is_atomic(session, tmp_path):
    g, w = mlp_graph()
    build(g, ["const_1", "const_2"], path=tmp_path / "m.wrcb")
    b = wrc.load_bundle(tmp_path / "m.wrcb")
    b.init()
    x = rand(3, 5)
    before = b.infer({"x": x})[0]
    bad_entries = [
        {"const_1": rand(5, 4), "nope": rand(1)},
        {"const_1": rand(5, 4), "const_2": rand(3, 4)},
        {"const_1": rand(5, 4), "const_2": rand(4, 3).astype(np.float64)},
        {"const_1": rand(5, 4), "const_2": [[1.0]]},
    ]
    for entries in bad_entries:
        with pytest.raises(wrc.InputError):
            b.update(entries)
        np.testing.assert_array_equal(b.infer({"x": x})[0], before)


def test_infer_input_errors(session, tmp_path):
    g, _ = mlp_graph()
    build(g, ["const_1"], path=tmp_path / "m.wrcb")
    b = wrc.load_bundle(tmp_path / "m.wrcb")
    b.init()
    with pytest.raises(wrc.InputError, match="'x'"):
        b.infer({})
    with pytest.raises(wrc.InputError, match="'y'"):
        b.infer({"x": rand(3, 5), "y": rand(1)})
    with pytest.raises(wrc.InputError, match="'x'"):
        b.infer({"x": rand(4, 5)})
    with pytest.raises(wrc.InputError, match="'x'"):
        b.infer({"x": rand(3, 5).astype(np.float64)})


def test_unknown_backend(session, tmp_path):
    g, _ = mlp_graph()
    build(g, ["const_1"], path=tmp_path / "m.wrcb")
    with pytest.raises(wrc.WrcError, match="numpy"):
        wrc.load_bundle(tmp_path / "m.wrcb", backend="tpu")


def test_load_from_bytes_equals_file(session, tmp_path):
    g, w = mlp_graph()
    model = build(g, ["const_1", "const_2"], path=tmp_path / "m.wrcb")
    b = wrc.load_bundle((tmp_path / "m.wrcb").read_bytes())
    b2 = wrc.load_bundle(bundle_bytes(model))
    x = rand(3, 5)
    for bundle in (b, b2):
        bundle.init()
        np.testing.assert_allclose(bundle.infer({"x": x})[0], mlp_ref(x, w), rtol=1e-5, atol=1e-6)


def test_compile_graph_is_the_whole_build_in_one_call():
    g, w = mlp_graph()
    assert not wrc.BuildSession.is_open()
    # bias has more than one element: a weight by default, like const_1 and const_2
    assert g.weight_names() == ["const_1", "bias", "const_2"]
    lean = wrc.compile_graph(g, init=False)  # opens (and closes) a span for the call
    assert not wrc.BuildSession.is_open()
    assert sorted(lean.graphs) == ["var_infer_graph", "var_update_graph"]
    with wrc.BuildSession({"wrc.hoist_weight_only": "false"}):
        assert wrc.BuildSession.is_open()
        model = wrc.compile_graph(g, ["const_1", "const_2"])  # the open span's options
    assert sorted(model.graphs) == ["var_infer_graph", "var_init_graph", "var_update_graph"]
    b = wrc.load_bundle(bundle_bytes(model))
    b.init()
    x = rand(3, 5)
    np.testing.assert_allclose(b.infer({"x": x})[0], mlp_ref(x, w), rtol=1e-5, atol=1e-6)
    assert set(b.variables) == {"const_1_var", "const_2_var"}  # bias stayed a constant

    empty = wrc.Graph("no_weights")
    empty.output(empty.relu(empty.data("x", (2,))))
    with pytest.raises(wrc.BuildError, match="graph 'no_weights' has no weights to make refreshable"):
        wrc.compile_graph(empty)
    assert not wrc.BuildSession.is_open()
