"""wrc.ge: the seed's C++ sample with GE names, status codes, out-parameters and logged reasons."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import wrc
import wrc.ge as ge
from wrc.bundle_format import bundle_bytes

RNG = np.random.default_rng(3)
W1 = RNG.standard_normal((4, 3)).astype(np.float32)
W2 = RNG.standard_normal((3, 2)).astype(np.float32)


def gen_graph(graph: wrc.Graph) -> None:
    x = graph.data("x", (2, 4))
    graph.output(graph.matmul(graph.relu(graph.matmul(x, graph.const("const_1", W1))), graph.const("const_2", W2)))


def ref(x: np.ndarray, w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    return np.maximum(x @ w1, 0) @ w2


@pytest.fixture(autouse=True)
def no_session_left():
    yield
    if wrc.workflow._SESSION.active:  # a failing test must not leak its build span
        wrc.build_finalize()


def test_seed_sample_then_runtime(tmp_path) -> None:
    origin_graph = wrc.Graph("Irorigin_graph")
    gen_graph(origin_graph)
    assert ge.aclgrphBuildInitialize({}) == ge.GRAPH_SUCCESS
    graphs = ge.WeightRefreshableGraphs()
    status = ge.aclgrphConvertToWeightRefreshableGraphs(origin_graph, ["const_1", "const_2"], graphs)
    assert status == ge.GRAPH_SUCCESS and graphs.var_update_graph is not None
    options: dict[str, str] = {}
    graph_and_options = [ge.GraphWithOptions(graphs.infer_graph, options),
                         ge.GraphWithOptions(graphs.var_init_graph, options),
                         ge.GraphWithOptions(graphs.var_update_graph, options)]
    model = ge.ModelBufferData()
    assert ge.aclgrphBundleBuildModel(graph_and_options, model) == ge.GRAPH_SUCCESS
    assert model.length > 0 and isinstance(model.data, wrc.ModelBuffer)
    path = tmp_path / "bundle.wrcb"
    assert ge.aclgrphBundleSaveModel(str(path), model) == ge.GRAPH_SUCCESS
    assert ge.aclgrphBuildFinalize() == ge.GRAPH_SUCCESS

    bundle_id, ret = ge.aclmdlBundleLoadFromFile(str(path))
    assert ret == ge.ACL_SUCCESS
    num, ret = ge.aclmdlBundleGetModelNum(bundle_id)
    assert (num, ret) == (3, ge.ACL_SUCCESS)
    ids = {ge.aclmdlGetModelName(m)[0]: m for m in (ge.aclmdlBundleGetModelId(bundle_id, i)[0] for i in range(num))}
    assert list(ids) == ["var_infer_graph", "var_init_graph", "var_update_graph"]
    x = RNG.standard_normal((2, 4)).astype(np.float32)
    assert ge.aclmdlExecute(ids["var_init_graph"], [])[1] == ge.ACL_SUCCESS
    outs, ret = ge.aclmdlExecute(ids["var_infer_graph"], [x])
    assert ret == ge.ACL_SUCCESS
    np.testing.assert_allclose(outs[0], ref(x, W1, W2), rtol=1e-5, atol=1e-6)
    new2 = np.ones((3, 2), np.float32)
    empty = np.zeros((0,), np.float32)  # empty: keep const_1
    assert ge.aclmdlExecute(ids["var_update_graph"], [empty, new2])[1] == ge.ACL_SUCCESS
    np.testing.assert_allclose(ge.aclmdlExecute(ids["var_infer_graph"], {"x": x})[0][0], ref(x, W1, new2),
                               rtol=1e-5, atol=1e-6)
    # A second load has its own variables and ids.
    data = path.read_bytes()
    other, ret = ge.aclmdlBundleLoadFromMem(data, len(data))
    assert ret == ge.ACL_SUCCESS and other != bundle_id
    assert ge.aclmdlBundleUnload(bundle_id) == ge.ACL_SUCCESS
    assert ge.aclmdlExecute(ids["var_infer_graph"], [x])[1] == ge.ACL_ERROR_INVALID_MODEL_ID
    assert ge.aclmdlBundleUnload(other) == ge.ACL_SUCCESS


def test_failures_return_codes_and_log(tmp_path, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="wrc.ge")
    g = wrc.Graph("g")
    gen_graph(g)
    out = ge.WeightRefreshableGraphs()
    assert ge.aclgrphConvertToWeightRefreshableGraphs(g, ["const_1"], out) == ge.GRAPH_FAILED
    assert "no build session is active" in caplog.text
    assert ge.aclgrphBuildInitialize({"bogus": "1"}) == ge.GRAPH_FAILED
    assert "unknown option 'bogus'" in caplog.text
    assert ge.aclgrphBuildInitialize() == ge.GRAPH_SUCCESS
    caplog.clear()
    assert ge.aclgrphConvertToWeightRefreshableGraphs(g, ["nope"], out) == ge.GRAPH_PARAM_INVALID
    assert "nope" in caplog.text and out.infer_graph is None  # out untouched
    assert ge.aclgrphConvertToWeightRefreshableGraphs(g, "const_1", out) == ge.GRAPH_PARAM_INVALID
    assert ge.aclgrphConvertToWeightRefreshableGraphs(g, ["const_1"], object()) == ge.GRAPH_PARAM_INVALID
    model = ge.ModelBufferData()
    assert ge.aclgrphBundleBuildModel([ge.GraphWithOptions(out.infer_graph, {})], model) == ge.GRAPH_PARAM_INVALID
    assert ge.aclgrphConvertToWeightRefreshableGraphs(g, ["const_1"], out) == ge.GRAPH_SUCCESS
    assert ge.aclgrphBundleBuildModel([ge.GraphWithOptions(out.infer_graph, {})], model) == ge.GRAPH_FAILED
    assert "at least 2 graphs" in caplog.text and model.data is None
    assert ge.aclgrphBundleSaveModel(str(tmp_path / "x.wrcb"), model) == ge.GRAPH_PARAM_INVALID
    assert ge.aclgrphBuildFinalize() == ge.GRAPH_SUCCESS
    assert ge.aclgrphBuildFinalize() == ge.GRAPH_FAILED

    caplog.clear()
    assert ge.aclmdlBundleLoadFromFile(str(tmp_path / "missing.wrcb")) == (0, ge.ACL_ERROR_INVALID_FILE)
    (tmp_path / "bad.wrcb").write_bytes(b"not a bundle")
    assert ge.aclmdlBundleLoadFromFile(str(tmp_path / "bad.wrcb")) == (0, ge.ACL_ERROR_PARSE_MODEL)
    assert "56-byte prelude" in caplog.text
    assert ge.aclmdlBundleGetModelNum(12345) == (0, ge.ACL_ERROR_INVALID_PARAM)
    assert ge.aclmdlExecute(12345, []) == ([], ge.ACL_ERROR_INVALID_MODEL_ID)
    assert ge.aclmdlBundleUnload(12345) == ge.ACL_ERROR_INVALID_PARAM
    assert ge.aclmdlBundleLoadFromFile(None) == (0, ge.ACL_ERROR_INVALID_PARAM)
    assert "no loaded bundle has id 12345" in caplog.text


def test_execute_input_mismatch(tmp_path) -> None:
    g = wrc.Graph("g")
    gen_graph(g)
    with wrc.BuildSession():
        out = wrc.convert_to_weight_refreshable_graphs(g, ["const_1", "const_2"])
        model = wrc.bundle_build_model([(out.infer_graph, {}), (out.var_init_graph, {})])
    bundle_id, _ = ge.aclmdlBundleLoadFromMem(bundle_bytes(model))
    infer, _ = ge.aclmdlBundleGetModelId(bundle_id, 0)
    assert ge.aclmdlBundleGetModelId(bundle_id, 2) == (0, ge.ACL_ERROR_INVALID_PARAM)
    assert ge.aclmdlExecute(infer, [np.zeros((3, 4), np.float32)])[1] == ge.ACL_ERROR_MODEL_INPUT_NOT_MATCH
    init, _ = ge.aclmdlBundleGetModelId(bundle_id, 1)
    assert ge.aclmdlExecute(init, [])[1] == ge.ACL_SUCCESS
    assert ge.aclmdlBundleUnload(bundle_id) == ge.ACL_SUCCESS
