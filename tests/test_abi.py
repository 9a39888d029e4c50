"""The bundle contract (`wrc/abi.py`): the plan of a built model, the weight signature's one
check, and the readers that use it (`wrc inspect`, `wrc update`, `aclgrphBundleBuildModel`)
without compiling or serialising anything."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    FunctionType,
    MemRefType,
    StringAttr,
    UnitAttr,
    f32,
)

import wrc
import wrc.backends
import wrc.ge as ge
from wrc import abi
from wrc import bundle_format as bf
from wrc.bundle_info import describe
from wrc.errors import BundleFormatError, InputError
from wrc.model_buffer import ModelBuffer
from wrc.weight_files import bake_weights, write_weights

F32 = np.float32
W = np.arange(12, dtype=F32).reshape(4, 3) / 8
B = np.array([1, -2, 3], F32)


def build() -> ModelBuffer:
    """y = relu(x @ w + b) with the weights w (refreshable, stored) and b (refreshable)."""
    g = wrc.Graph("g")
    x = g.data("x", (2, 4))
    g.output(g.relu(g.add(g.matmul(x, g.const("w", W)), g.const("b", B))))
    with wrc.BuildSession({"wrc.hoist_weight_only": "false"}):
        graphs = wrc.convert_to_weight_refreshable_graphs(g, ["w", "b"])
        return wrc.bundle_build_model([graphs.infer_graph, graphs.var_update_graph, graphs.var_init_graph])


def test_plan_of_a_built_model() -> None:
    model = build()
    p = abi.plan(model.module, model.graphs)
    assert list(p.graphs) == [abi.INFER_GRAPH, abi.UPDATE_GRAPH, abi.INIT_GRAPH] == list(model.graphs)
    assert p.variables == ("w_var", "b_var") and p.derives == () and dict(p.derived) == {}
    assert p.specs["w_var"] == ((4, 3), np.dtype(F32)) and p.specs["b"] == ((3,), np.dtype(F32))

    infer, update, init = (p.graphs[g] for g in (abi.INFER_GRAPH, abi.UPDATE_GRAPH, abi.INIT_GRAPH))
    assert [(x.name, x.shape, x.optional, x.argument) for x in infer.inputs] == [("x", (2, 4), False, 0)]
    assert infer.reads == {"w_var", "b_var"} and infer.writes == ()
    # Update inputs are optional, each followed by its flag (arguments 1 and 3).
    assert [(x.name, x.optional, x.argument) for x in update.inputs] == [("w_var_data", True, 0),
                                                                        ("b_var_data", True, 2)]
    roles = abi.arguments(abi.module_funcs(model.module)[abi.UPDATE_GRAPH])
    assert [(r.name, r.optional, r.flag, r.flag_of) for r in roles] == [
        ("w_var_data", True, 1, None), (None, False, None, 0), ("b_var_data", True, 3, None), (None, False, None, 2)]
    assert {(w.var, w.full, w.guards) for w in update.writes} == {("w_var", True, ((0, True),)),
                                                                  ("b_var", True, ((1, True),))}
    assert dict(update.targets) == {0: "w_var", 1: "b_var"} and update.reads == frozenset()
    assert {(w.var, w.source) for w in init.writes} == {("w_var", "w"), ("b_var", "b")}
    assert dict(p.initial) == {"w_var": "w", "b_var": "b"}

    sig = p.weights
    assert [(w.name, w.variable, w.shape, w.dtype, w.index, w.initial) for w in sig] == [
        ("w", "w_var", (4, 3), np.dtype(F32), 0, "w"), ("b", "b_var", (3,), np.dtype(F32), 1, "b")]
    assert abi.stored_weight_names(model.module) == ["w", "b"] == list(model.weights)


def test_weight_signature_check_lists_every_problem() -> None:
    model = build()
    sig = abi.plan(model.module, model.graphs).weights
    new_w = W + 1
    applied = sig.check({"w": new_w, "b": np.empty(0, F32)})  # empty = keep: left out
    assert [(w.name, a is new_w) for w, a in applied] == [("w", True)]
    assert [w.name for w, _ in sig.check({"b": np.float32(2) + B})] == ["b"]
    with pytest.raises(InputError) as e:
        sig.check({"w": W.astype(np.float64), "b": B[:2], "c": B, "x": [1.0], 3: B})
    assert str(e.value) == (
        "update() changed nothing: weight 'w': expected dtype float32, got float64; "
        "weight 'b': expected shape [3], got [2]; unknown weights 'c', 'x', 3 (weights: w, b)")
    with pytest.raises(InputError, match="weight 'w' must be a numpy array, got list"):
        sig.check({"w": [[0.0] * 3] * 4})


def test_passes_write_the_contract_names_and_keys() -> None:
    module = build().module
    globals_ = abi.module_globals(module)
    assert abi.VARIABLE_ATTR in globals_["w_var"].attributes and abi.CONSTANT_ATTR in globals_["w"].attributes
    fn = abi.module_funcs(module)[abi.UPDATE_GRAPH]
    attrs = fn.arg_attrs.data[0].data
    assert attrs[abi.NAME_ATTR].data == abi.variable_name("w") + abi.UPDATE_INPUT_SUFFIX
    assert abi.OPTIONAL_ATTR in attrs and abi.weight_name("w_var") == "w"


def test_inspect_rejects_an_optional_input_without_its_flag_like_load(tmp_path) -> None:
    model = build()
    module = model.module.clone()
    fn = abi.module_funcs(module)[abi.UPDATE_GRAPH]
    # One more optional input, last: no i1 flag follows it (the IR itself stays valid).
    fn.body.block.insert_arg(MemRefType(f32, [3]), len(fn.body.block.args))
    fn.function_type = FunctionType.from_lists([a.type for a in fn.body.block.args], [])
    extra = DictionaryAttr({abi.NAME_ATTR: StringAttr("extra"), abi.OPTIONAL_ATTR: UnitAttr()})
    fn.arg_attrs = ArrayAttr([*fn.arg_attrs.data, extra])
    path = tmp_path / "bad.wrcb"
    bf.write_bundle(path, ModelBuffer(module, model.graphs, model.weights))
    for read in (describe, wrc.load_bundle):
        with pytest.raises(BundleFormatError, match="graph 'var_update_graph': optional input 'extra' "
                                                    "is not followed by its i1 flag"):
            read(path)
    assert describe_ok(tmp_path, model)


def describe_ok(tmp_path, model: ModelBuffer) -> bool:
    path = tmp_path / "good.wrcb"
    bf.write_bundle(path, model)
    upd = next(g for g in describe(path)["graphs"] if g["name"] == abi.UPDATE_GRAPH)
    return [(x["name"], x["optional"]) for x in upd["inputs"]] == [("w_var_data", True), ("b_var_data", True)]


def test_wrc_update_checks_and_edits_without_compiling(tmp_path, monkeypatch) -> None:
    model = build()
    path = tmp_path / "new.npz"
    new_w = -W
    write_weights(path, {"w": new_w})

    def no_backend() -> None:
        raise AssertionError("bake_weights compiled the model")

    for name in list(wrc.backends.BACKENDS):
        monkeypatch.setitem(wrc.backends.BACKENDS, name, no_backend)
    baked = bake_weights(model, path)
    np.testing.assert_array_equal(baked.weights["w"], new_w)
    assert baked.weights["b"] is model.weights["b"] and baked.module is model.module
    write_weights(path, {"w": W[:2]})
    with pytest.raises(InputError, match=r"new.npz: update\(\) changed nothing: weight 'w': expected shape"):
        bake_weights(model, path)
    monkeypatch.undo()

    b = wrc.load_bundle(baked)
    b.init()
    x = np.ones((2, 4), F32)
    np.testing.assert_allclose(b.infer({"x": x})[0], np.maximum(x @ new_w + B, 0), rtol=1e-6)


def test_build_model_length_is_the_file_size_without_serialising(monkeypatch) -> None:
    g = wrc.Graph("g")
    x = g.data("x", (2, 4))
    g.output(g.add(g.matmul(x, g.const("w", W)), g.const("b", B)))
    assert ge.aclgrphBuildInitialize() == ge.GRAPH_SUCCESS
    try:
        graphs = ge.WeightRefreshableGraphs()
        assert ge.aclgrphConvertToWeightRefreshableGraphs(g, ["w"], graphs) == ge.GRAPH_SUCCESS

        def no_write(*_: object) -> None:
            raise AssertionError("aclgrphBundleBuildModel serialised the model")

        monkeypatch.setattr(bf, "_write_plan", no_write)
        monkeypatch.setattr(bf.hashlib, "sha256", no_write)  # no weight is hashed either
        out = ge.ModelBufferData()
        pairs = [ge.GraphWithOptions(graphs.infer_graph), ge.GraphWithOptions(graphs.var_init_graph),
                 ge.GraphWithOptions(graphs.var_update_graph)]
        assert ge.aclgrphBundleBuildModel(pairs, out) == ge.GRAPH_SUCCESS
        monkeypatch.undo()
        assert out.length == len(bf.bundle_bytes(out.data)) > 0
    finally:
        assert ge.aclgrphBuildFinalize() == ge.GRAPH_SUCCESS
