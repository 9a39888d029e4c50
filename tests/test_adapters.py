"""Adapters (issue 16): `var_delta_graph` and `Bundle.apply_adapter` / `remove_adapter` / `adapter`.

The model: x @ w (w stored [in, out], lora:2) @ vᵀ (v stored [out, in], lora:3) + relu(c)
(c dense; relu(c) is a derived value of `ge-hoist-weight-only`), then @ exp(u) (u refreshable,
not adapted; exp(u) derived). Every number is compared with NumPy's W0 + s·B@A.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from readers import race
from safetensors.numpy import save_file
from test_hoist import spy_runs

import wrc
from wrc.abi import DELTA_GRAPH, INFER_GRAPH, INIT_GRAPH, UPDATE_GRAPH, derive_funcs
from wrc.bundle_format import bundle_bytes
from wrc.errors import BuildError, ConversionError, InputError, RuntimeStateError
from wrc.model_buffer import ModelBuffer
from wrc.runtime import load_bundle
from wrc.weight_files import write_weights

IN, MID, OUT, BATCH = 8, 6, 4, 2
DELTAS = {"w": "lora:2", "v": "lora:3", "c": "dense"}
rng = np.random.default_rng(16)
X = rng.standard_normal((BATCH, IN)).astype(np.float32)


def base(seed: int = 0) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    shapes = {"w": (IN, MID), "v": (MID, MID), "c": (MID,), "u": (MID, OUT)}
    return {k: (r.standard_normal(s) * 0.3).astype(np.float32) for k, s in shapes.items()}


def adapter(seed: int, names: tuple[str, ...] = ("w", "v", "c")) -> dict[str, dict[str, np.ndarray]]:
    """Factors in PEFT's layout: A [r, in], B [out, r] (w is stored [in, out]: in = IN)."""
    r = np.random.default_rng(1000 + seed)

    def f(*shape: int) -> np.ndarray:
        return r.standard_normal(shape).astype(np.float32)

    full = {"w": {"A": f(2, IN), "B": f(MID, 2), "scale": 0.5},
            "v": {"A": f(3, MID), "B": f(MID, 3), "scale": np.float64(2.0)},  # any number
            "c": {"delta": f(MID)}}
    return {k: full[k] for k in names}


def adapted(weights: dict[str, np.ndarray], factors: dict[str, dict]) -> dict[str, np.ndarray]:
    """NumPy's W0 + s·B@A (transposed for w, stored [in, out]) and W0 + ΔW."""
    out = dict(weights)
    for k, f in factors.items():
        if "delta" in f:
            out[k] = weights[k] + f["delta"]
        else:
            d = np.float32(f.get("scale", 1.0)) * (f["B"] @ f["A"])
            out[k] = weights[k] + (d.T if k == "w" else d)
    return out


def forward(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    return (x @ w["w"] @ w["v"].T + np.maximum(w["c"], 0)) @ np.exp(w["u"])


def graph(values: dict[str, np.ndarray]) -> wrc.Graph:
    g = wrc.Graph("adapted")
    x = g.data("x", (BATCH, IN))
    h = g.matmul(g.matmul(x, g.const("w", values["w"])), g.transpose(g.const("v", values["v"]), [1, 0]))
    h = g.add(h, g.relu(g.const("c", values["c"])))
    g.output(g.matmul(h, g.exp(g.const("u", values["u"]))))
    return g


@pytest.fixture(scope="module")
def model() -> ModelBuffer:
    return wrc.compile_graph(graph(base()), deltas=DELTAS)


def _weights(b: wrc.Bundle) -> dict[str, np.ndarray]:
    return {k: a.copy() for k, a in b.weights().items()}


def _equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)


# ----------------------------------------------------------------------------- conversion


def test_the_three_ge_graphs_are_unchanged_and_the_delta_graph_is_added() -> None:
    g = graph(base())
    with wrc.BuildSession():
        plain = wrc.convert_to_weight_refreshable_graphs(g, ["w", "v", "c", "u"])
        with_deltas = wrc.convert_to_weight_refreshable_graphs(g, ["w", "v", "c", "u"], deltas=DELTAS)
    assert plain.var_delta_graph is None
    for part in ("var_init_graph", "var_update_graph", "infer_graph"):
        assert str(getattr(plain, part).module) == str(getattr(with_deltas, part).module)
    assert with_deltas.var_delta_graph is not None
    assert with_deltas.var_delta_graph.func.sym_name.data == DELTA_GRAPH
    # The session option does the same; the keyword wins over it.
    with wrc.BuildSession({"wrc.deltas": "w=lora:2,v=lora:3,c=dense"}):
        from_option = wrc.convert_to_weight_refreshable_graphs(g, ["w", "v", "c", "u"])
        overridden = wrc.convert_to_weight_refreshable_graphs(g, ["w", "v", "c", "u"], deltas={"c": "dense"})
    assert str(from_option.var_delta_graph.module) == str(with_deltas.var_delta_graph.module)
    assert [n for n, _, _ in load_bundle(wrc.compile_graph(g, deltas={"c": "dense"})).inputs(DELTA_GRAPH)] \
        == ["c_var_base", "c_var_delta"]
    assert overridden.var_delta_graph is not None


def test_bad_deltas_are_errors_naming_the_weight() -> None:
    g = graph(base())
    for deltas, message in [({"nope": "dense"}, "'nope' is not a refreshable weight"),
                            ({"w": "lora:7"}, "weight 'w' has shape \\[8, 6\\]: rank 7 is above"),
                            ({"c": "lora:1"}, "weight 'c' has shape \\[6\\]: a low-rank delta needs a 2-D"),
                            ({"w": "low:2"}, "kind 'low:2' is not dense"),
                            (["w"], "'w' is not NAME=KIND")]:
        with pytest.raises(ConversionError, match=message):
            wrc.compile_graph(g, deltas=deltas)
    with pytest.raises(ConversionError, match="'u' is not a refreshable weight"):
        wrc.compile_graph(g, ["w"], deltas={"u": "dense"})  # only refreshable weights adapt
    with pytest.raises(BuildError, match="deltas must be"):
        wrc.compile_graph(g, deltas=3)  # type: ignore[arg-type]
    with pytest.raises(BuildError, match="option 'wrc.nope'"):
        wrc.build_initialize({"wrc.nope": "x"})


# ----------------------------------------------------------------------------- applying


@pytest.mark.parametrize("backend", ["numpy", "interp"])
def test_adapter_matches_numpy_and_backends_agree(model: ModelBuffer, backend: str) -> None:
    b = load_bundle(model, backend)
    b.init()
    assert b.adapted_weights == DELTAS and b.adapter is None
    v = b.apply_adapter(adapter(1), "X")
    assert v == b.version == 2 and b.adapter == "X"
    expected = adapted(base(), adapter(1))
    got = b.weights()
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(b.infer({"x": X})[0], forward(X, expected), rtol=1e-5, atol=1e-5)
    if backend == "numpy":  # both backends agree: the numpy bundle against an interp one
        other = load_bundle(model, "interp")
        other.init()
        other.apply_adapter(adapter(1))
        for k, a in other.weights().items():
            np.testing.assert_allclose(got[k], a, rtol=1e-6, atol=1e-6)


def test_x_y_x_and_remove_are_bit_identical(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.init()
    b0, y0 = _weights(b), b.infer({"x": X})[0]
    live = b.weights()
    b.apply_adapter(adapter(1), "X")
    x1, yx = _weights(b), b.infer({"x": X})[0]
    b.apply_adapter(adapter(2, ("v",)), "Y")  # Y covers only v: w and c are their bases again
    y_w = b.weights()
    assert b.adapter == "Y" and _equal({k: y_w[k] for k in "wcu"}, {k: b0[k] for k in "wcu"})
    assert not np.array_equal(y_w["v"], b0["v"])
    b.apply_adapter(adapter(1), "X")
    assert _equal(_weights(b), x1) and b.infer({"x": X})[0].tobytes() == yx.tobytes()
    b.remove_adapter()
    assert b.adapter is None and _equal(_weights(b), b0) and b.infer({"x": X})[0].tobytes() == y0.tobytes()
    assert all(b.weights()[k] is live[k] for k in live)  # the base arrays themselves, no copy


def test_update_and_init_while_an_adapter_is_live_set_the_base(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.init()
    b.apply_adapter(adapter(1), "X")
    new = base(5)
    b.update({"w": new["w"], "u": new["u"]})  # the adapter stays live, on the new base of w
    assert b.adapter == "X"
    want = adapted({**base(), "w": new["w"], "u": new["u"]}, adapter(1))
    got = b.weights()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6)
    b.remove_adapter()
    assert _equal(_weights(b), {**base(), "w": new["w"], "u": new["u"]})
    b.apply_adapter(adapter(2), "Y")
    b.init()  # the original values are the bases again; Y is applied to them
    assert b.adapter == "Y"
    y_on_init = _weights(b)
    b.remove_adapter()
    assert _equal(_weights(b), base())
    b.apply_adapter(adapter(2), "Y")
    assert _equal(_weights(b), y_on_init)


def test_an_adopting_update_under_a_live_adapter_sets_the_base_as_a_copy_does(model: ModelBuffer) -> None:
    copied, adopting = load_bundle(model), load_bundle(model)
    new = base(6)
    for b, copy in ((copied, True), (adopting, False)):
        b.init()
        b.apply_adapter(adapter(1), "X")
        b.update({"w": new["w"], "c": new["c"]}, copy=copy)  # w and c: adapted weights
        assert b.adapter == "X"
    assert _equal(_weights(adopting), _weights(copied))
    assert adopting.infer({"x": X})[0].tobytes() == copied.infer({"x": X})[0].tobytes()
    adopting.remove_adapter()  # the adopted arrays are the bases, published as they are
    assert adopting.weights()["w"] is new["w"] or np.shares_memory(adopting.weights()["w"], new["w"])
    assert _equal(_weights(adopting), {**base(), "w": new["w"], "c": new["c"]})


def test_adapter_switches_are_versions(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.init()
    b.apply_adapter(adapter(1), "X")
    x1 = _weights(b)
    staged = b.apply_adapter(adapter(2), "Y", stage=True)
    assert b.adapter == "X" and _equal(_weights(b), x1)  # staging changes nothing served
    b.commit(staged)
    assert b.adapter == "Y" and b.version == staged
    assert b.rollback() == staged - 1 and b.adapter == "X" and _equal(_weights(b), x1)
    removal = b.remove_adapter(stage=True)
    assert b.adapter == "X"
    b.commit(removal)
    assert b.adapter is None and _equal(_weights(b), base())
    b.rollback()
    assert b.adapter == "X" and _equal(_weights(b), x1)


def test_only_the_derived_values_of_touched_weights_are_recomputed(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.init()
    reads = {f.sym_name.data: f for f in derive_funcs(model.module, model.graphs)}
    assert len(reads) == 2  # relu(c) and exp(u)
    c_derive = next(n for n, f in reads.items() if "c_var" in str(f))
    calls = spy_runs(b)
    b.apply_adapter(adapter(1, ("w", "v")))
    assert calls == [DELTA_GRAPH]  # w and v feed no derived value
    calls.clear()
    b.apply_adapter(adapter(1, ("c",)))
    assert calls == [DELTA_GRAPH, c_derive]  # relu(c) again; exp(u) not
    calls.clear()
    b.remove_adapter()
    assert calls == [c_derive]  # c back to its base: relu(c) again; nothing else runs
    calls.clear()
    b.apply_adapter(adapter(1, ("w",)))
    b.update({"u": base(3)["u"]})  # not adapted: no delta graph
    assert calls == [DELTA_GRAPH, UPDATE_GRAPH, next(n for n in reads if n != c_derive)]


def test_concurrent_infer_never_sees_a_mixed_adapter(model: ModelBuffer) -> None:
    """Readers check each result bit for bit against the one of the version it reports,
    while a writer switches adapters (apply, stage + commit, remove, rollback)."""
    b = load_bundle(model)
    b.init()
    choices = [adapter(1), adapter(2), adapter(3, ("v", "c")), None]
    expected = []
    for f in choices:
        if f is None:
            b.remove_adapter()
        else:
            b.apply_adapter(f)
        expected.append(b.infer({"x": X})[0])
    assert len({y.tobytes() for y in expected}) == len(choices)
    b.remove_adapter()
    which = {b.version: 3}
    failures: list[str] = []
    seen: set[int] = set()

    def write() -> None:
        for i in range(40):
            k = i % len(choices)
            f = choices[k]
            # staged first: the version is numbered (and recorded) before it is live
            v = b.remove_adapter(stage=True) if f is None else b.apply_adapter(f, stage=True)
            which[v] = k
            b.commit(v)
            if i % 7 == 6:
                b.rollback()
            deadline = time.monotonic() + 5
            while b.version not in seen and time.monotonic() < deadline and not failures:
                time.sleep(0.0005)

    def read() -> str | None:
        (y,), v = b.infer({"x": X}, with_version=True)
        if y.tobytes() != expected[which[v]].tobytes():
            return f"version {v}: a result of other weights"
        seen.add(v)
        return None

    race(write, read, readers=2, failures=failures)
    assert not failures, failures[:3]
    assert len(seen) > 20


# ----------------------------------------------------------------------------- inputs and errors


def test_bad_adapters_change_nothing(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.init()
    b.apply_adapter(adapter(1), "X")
    before = (b.version, b.adapter, _weights(b))
    good = adapter(2)
    for bad, message in [({"u": {"delta": np.zeros((MID, OUT), np.float32)}},
                          r"^apply_adapter\(\) changed nothing: unknown adapted weight 'u' \(adapted weights: w, v, c\)$"),
                         ({**good, "model.w": good["w"], 7: {}},
                          r"^apply_adapter\(\) changed nothing: unknown adapted weights 'model.w', 7 \(did you mean "
                          r"'w' for 'model.w'\? adapted weights: w, v, c\)$"),
                         ({"c": {"delta": good["c"]["delta"].astype(np.float64)}, "u": {}},
                          r"^apply_adapter\(\) changed nothing: unknown adapted weight 'u' \(adapted weights: w, v, c\); "
                          r"weight 'c': delta: expected dtype float32"),
                         ({**good, "w": {**good["w"], "A": np.zeros((2, MID), np.float32)}},
                          r"weight 'w': A: expected shape \[2, 8\], got \[2, 6\] \(rank 2"),
                         ({**good, "v": {"A": good["v"]["A"]}}, "weight 'v' \\(lora rank 3\\) takes"),
                         ({**good, "c": {"delta": good["c"]["delta"].astype(np.float64)}}, "weight 'c': delta: expected dtype float32"),
                         ({"c": {"delta": [1.0] * MID}}, "must be a numpy array"),
                         ({**good, "w": {**good["w"], "scale": np.array(0.5)}},
                          "weight 'w': scale: expected dtype float32, got float64"),
                         ([("w", {})], "takes a mapping")]:
        with pytest.raises(InputError, match=message):
            b.apply_adapter(bad)  # type: ignore[arg-type]
        assert (b.version, b.adapter) == before[:2] and _equal(_weights(b), before[2])
    with pytest.raises(InputError, match="name must be a non-empty str"):
        b.apply_adapter(good, "")
    plain = load_bundle(wrc.compile_graph(graph(base())))
    with pytest.raises(RuntimeStateError, match="has no 'var_delta_graph': compile it with deltas"):
        plain.apply_adapter(good)
    assert plain.adapter is None and plain.adapted_weights == {}


def test_weight_stripped_bundle_needs_its_bases_first() -> None:
    stripped = wrc.compile_graph(graph(base()), init=False, deltas=DELTAS)
    assert INIT_GRAPH not in stripped.graphs and not stripped.weights
    b = load_bundle(bundle_bytes(stripped))  # through the file format too
    with pytest.raises(RuntimeStateError, match="weight\\(s\\) w, v, c have no base value yet"):
        b.apply_adapter(adapter(1))
    assert b.version == 0 and b.adapter is None
    b.update({"w": base()["w"]})
    b.apply_adapter(adapter(1, ("w",)))  # w has its base: enough for an adapter of w
    b.update(base(7))
    assert b.adapter is not None
    want = adapted(base(7), adapter(1, ("w",)))
    np.testing.assert_allclose(b.infer({"x": X})[0], forward(X, want), rtol=1e-5, atol=1e-5)


def test_peft_safetensors_file(model: ModelBuffer, tmp_path) -> None:
    b = load_bundle(model)
    b.init()
    f = adapter(4, ("w", "v"))
    write_weights(tmp_path / "adapter_model.safetensors", {
        "base_model.model.w.lora_A.weight": f["w"]["A"], "base_model.model.w.lora_B.weight": f["w"]["B"],
        "base_model.model.v.lora_A.weight": f["v"]["A"], "base_model.model.v.lora_B.weight": f["v"]["B"]})
    with pytest.raises(InputError, match="the LoRA scale is unknown"):
        b.apply_adapter_file(tmp_path / "adapter_model.safetensors")
    assert b.adapter is None
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 2, "lora_alpha": 12}))
    b.apply_adapter_file(tmp_path / "adapter_model.safetensors")  # scale = lora_alpha / r, per weight
    assert b.adapter == "adapter_model"
    scaled = {"w": {**f["w"], "scale": 6.0}, "v": {**f["v"], "scale": 4.0}}  # w: rank 2, v: rank 3
    want = adapted(base(), scaled)
    for k, a in b.weights().items():
        np.testing.assert_allclose(a, want[k], rtol=1e-6, atol=1e-6)
    # An explicit mapping from module names, and an explicit scale.
    write_weights(tmp_path / "other.safetensors", {"layer.q.lora_A.weight": f["w"]["A"],
                                                   "layer.q.lora_B.weight": f["w"]["B"]})
    b.apply_adapter_file(tmp_path / "other.safetensors", "q", weights={"layer.q": "w"}, scale=0.25)
    want = adapted(base(), {"w": {**f["w"], "scale": 0.25}})
    assert b.adapter == "q" and _equal({"v": b.weights()["v"]}, {"v": base()["v"]})
    np.testing.assert_allclose(b.weights()["w"], want["w"], rtol=1e-6, atol=1e-6)
    with pytest.raises(InputError, match="module 'layer.q' is no adapted weight"):
        b.apply_adapter_file(tmp_path / "other.safetensors", scale=1.0)
    write_weights(tmp_path / "half.safetensors", {"w.lora_A.weight": f["w"]["A"], "junk": f["w"]["B"]})
    with pytest.raises(InputError, match="'junk' is not a LoRA factor.*module 'w' has lora_A but not lora_B"):
        b.apply_adapter_file(tmp_path / "half.safetensors", scale=1.0)
    assert b.adapter == "q"


def test_peft_files_and_configs_that_cannot_be_used_change_nothing(model: ModelBuffer, tmp_path) -> None:
    b = load_bundle(model)
    b.init()
    b.apply_adapter(adapter(1), "X")
    before = _weights(b)
    f = adapter(4, ("w",))
    path = tmp_path / "adapter_model.safetensors"
    write_weights(tmp_path / "empty.safetensors", {"junk": f["w"]["A"]})
    with pytest.raises(InputError, match=r"empty.safetensors: 'junk' is not a LoRA factor \(<module>\.lora_A\.weight"):
        b.apply_adapter_file(tmp_path / "empty.safetensors", scale=1.0)
    save_file({}, str(tmp_path / "none.safetensors"))  # a file with no tensors at all
    with pytest.raises(InputError, match=r"none.safetensors: no LoRA factors \(<module>\.lora_A\.weight / "):
        b.apply_adapter_file(tmp_path / "none.safetensors", scale=1.0)
    write_weights(path, {"w.lora_A.weight": f["w"]["A"], "w.lora_B.weight": f["w"]["B"]})
    config = tmp_path / "adapter_config.json"
    for text, message in (("{not json", r"adapter_config.json: cannot read it: "),
                          (json.dumps({"r": 2}), r"adapter_config.json: no numeric lora_alpha$"),
                          (json.dumps({"r": 2, "lora_alpha": True}), r"adapter_config.json: no numeric lora_alpha$"),
                          (json.dumps({"r": 2, "lora_alpha": 4, "rank_pattern": {"w": 4}}),
                           r"adapter_config.json: per-module alpha_pattern / rank_pattern are not supported; give scale=$")):
        config.write_text(text)
        with pytest.raises(InputError, match=message):
            b.apply_adapter_file(path)
    assert b.adapter == "X" and _equal(_weights(b), before)


def test_the_bundle_file_keeps_the_delta_graph(model: ModelBuffer) -> None:
    data = bundle_bytes(model)
    for version in (1, 2):
        b = load_bundle(bundle_bytes(model, version=version) if version == 1 else data)
        assert b.graphs == (INFER_GRAPH, UPDATE_GRAPH, INIT_GRAPH, DELTA_GRAPH)
        b.init()
        b.apply_adapter(adapter(1))
        np.testing.assert_allclose(b.infer({"x": X})[0], forward(X, adapted(base(), adapter(1))),
                                   rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- command line


def test_command_line_compile_inspect_graph_and_run(tmp_path, capsys) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from wrc.cli import main

    w = base()["w"]  # ONNX MatMul: x @ W, W stored [in, out]
    onnx.save(helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, MID])],
        [numpy_helper.from_array(w, "W")]), opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "mm.onnx")
    out = tmp_path / "mm.wrcb"
    assert main(["compile", str(tmp_path / "mm.onnx"), "-o", str(out), "-q", "--delta", "*=lora:2"]) == 0
    assert "1 refreshable weight(s), 1 adapted" in capsys.readouterr().out
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "var_delta_graph(W_var_base: float32[8, 6], W_var_lora_a: float32[2, 8]" in text
    assert "adapted weights (1, through var_delta_graph): W lora:2" in text
    assert main(["inspect", "--json", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["adapted_weights"] == {"W": "lora:2"}
    assert main(["graph", str(out)]) == 0 and "var_delta_graph" in capsys.readouterr().out

    f = adapter(1, ("w",))["w"]
    write_weights(tmp_path / "lora.safetensors", {"W.lora_A.weight": f["A"], "W.lora_B.weight": f["B"]})
    np.save(tmp_path / "x.npy", X)
    assert main(["run", str(out), "--input", f"x={tmp_path / 'x.npy'}", "--adapter",
                 str(tmp_path / "lora.safetensors"), "--adapter-scale", "0.5",
                 "--output", str(tmp_path / "y.npz")]) == 0
    y = np.load(tmp_path / "y.npz")["output_0"]
    np.testing.assert_allclose(y, X @ (w + np.float32(0.5) * (f["B"] @ f["A"]).T), rtol=1e-5, atol=1e-5)
    capsys.readouterr()
    assert main(["compile", str(tmp_path / "mm.onnx"), "-o", str(out), "-q", "--delta", "W=lora:9"]) == 1
    assert "weight 'W' has shape [8, 6]: rank 9 is above min(out, in) = 6" in capsys.readouterr().err

    (tmp_path / "g.mlir").write_text(graph(base()).to_mlir())
    assert main(["graph", str(tmp_path / "g.mlir"), "--convert", "w,c", "--delta", "w=lora:2"]) == 0
    assert "var_delta_graph" in capsys.readouterr().out
    assert main(["graph", str(tmp_path / "g.mlir"), "--delta", "w=lora:2"]) == 1
    assert "--delta needs --convert" in capsys.readouterr().err


def test_a_delta_graph_breaking_its_contract_is_a_format_error(model: ModelBuffer) -> None:
    """A tampered var_delta_graph (an input renamed, so a weight's inputs are incomplete) is
    refused at load as a BundleFormatError naming the graph, from bytes and in memory."""
    from xdsl.dialects.builtin import DictionaryAttr, StringAttr

    from wrc.abi import module_funcs

    module = model.module.clone()
    fn = module_funcs(module)[DELTA_GRAPH]
    attrs = list(fn.arg_attrs.data)
    last = dict(attrs[-1].data)
    assert last["ge.name"] == StringAttr("c_var_delta")
    last["ge.name"] = StringAttr("c_var_junk")
    attrs[-1] = DictionaryAttr(last)
    fn.arg_attrs = type(fn.arg_attrs)(attrs)
    tampered = ModelBuffer(module=module, graphs=model.graphs, weights=dict(model.weights))
    for source in (tampered, bundle_bytes(tampered)):
        with pytest.raises(wrc.BundleFormatError, match="graph 'var_delta_graph'"):
            load_bundle(source)


def test_an_adapted_weight_holds_at_most_three_arrays(model: ModelBuffer) -> None:
    """Its base, its live value and the one retained for rollback (or spare), however many
    adapters come and go; four (two versions, each with its base) right after an update
    under a live adapter; the other variables keep versions' two."""
    import gc
    import weakref

    b = load_bundle(model)
    b.init()
    b.update(base(9))  # (the stored initial values the init published stay the model's)
    refs: dict[str, list] = {}
    adapted_vars = {f"{w}_var" for w in DELTAS}

    def note(limit: int = 3) -> None:
        snap = b._snapshot  # noqa: SLF001 - the arrays of the live version and its bases
        held = list(snap.items()) + (list(snap.adapter.bases.items()) if snap.adapter else [])
        for var, arr in held:
            if not any(r() is arr for r in refs.setdefault(var, [])):
                refs[var].append(weakref.ref(arr))
        del snap, held
        gc.collect()
        for var, rs in refs.items():
            alive = sum(r() is not None for r in rs)
            assert alive <= (limit if var in adapted_vars else 2), (var, alive)

    note()
    for i in range(12):
        if i % 4 == 3:
            b.remove_adapter()
        else:
            b.apply_adapter(adapter(i % 3 + 1))
        b.infer({"x": X})
        note()
        if i % 5 == 4:
            b.rollback()
            note()
        if i % 6 == 5:
            b.update({"w": base(i)["w"], "u": base(i)["u"]})
            note(4)  # the previous version keeps its base for rollback + remove_adapter
            b.apply_adapter(adapter(2))
            note()


def test_a_bundle_loaded_from_a_file_keeps_its_bases(model: ModelBuffer, tmp_path) -> None:
    """Loaded from a path, a bundle drops the stored initial values updates replaced and reads
    them again at init(); a base still held by the live adapter is never dropped or reused."""
    from wrc.bundle_format import write_bundle

    write_bundle(tmp_path / "m.wrcb", model)
    b = load_bundle(tmp_path / "m.wrcb")
    b.init()
    b.apply_adapter(adapter(1), "X")  # the bases are the stored initial values themselves
    x1 = _weights(b)
    b.update({"u": base(4)["u"]})  # u is not adapted: its stored initial value is dropped
    for _ in range(3):
        b.apply_adapter(adapter(2), "Y")
        b.apply_adapter(adapter(1), "X")
    assert _equal(_weights(b), {**x1, "u": base(4)["u"]})
    b.remove_adapter()
    assert _equal(_weights(b), {**base(), "u": base(4)["u"]})
    b.apply_adapter(adapter(1), "X")
    b.update({"w": base(5)["w"]})
    b.init()  # reads the dropped values again from the file; X applied to them
    assert b.adapter == "X" and _equal(_weights(b), x1)
    b.remove_adapter()
    assert _equal(_weights(b), base())
