"""`ge-hoist-weight-only` end to end: derived variables computed on init/update, not in infer.

The model has weight-only work of three kinds: a transposed weight plus a LoRA product
(`W.T + (A @ B) * s`: sources W, A, B), a BatchNorm scale (`gamma / sqrt(var + eps)`: sources
gamma, var) and a product of two frozen constants (folded at load). Every result is compared
with a NumPy formula, with the same bundle built without hoisting, and across backends.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from readers import race
from xdsl.dialects import memref
from xdsl.dialects.linalg.ops import GenericOp

import wrc
from wrc import pipeline
from wrc.abi import DERIVE_ATTR, INFER_GRAPH, UPDATE_GRAPH, derive_funcs, module_funcs
from wrc.bundle_format import bundle_bytes
from wrc.bundle_info import describe
from wrc.context import make_context
from wrc.errors import BuildError, BundleFormatError, InputError, RuntimeStateError
from wrc.ir_text import parse_module
from wrc.model_buffer import ModelBuffer
from wrc.runtime import Bundle, load_bundle

F32 = np.float32
BATCH, IN, OUT, RANK, EPS = 4, 6, 5, 2, 1e-5
REFRESHABLE = ["w", "lora_a", "lora_b", "gamma", "var"]


def weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w": rng.standard_normal((OUT, IN)).astype(F32),
        "lora_a": rng.standard_normal((IN, RANK)).astype(F32),
        "lora_b": rng.standard_normal((RANK, OUT)).astype(F32),
        "gamma": rng.standard_normal(OUT).astype(F32),
        "var": rng.uniform(0.5, 2.0, OUT).astype(F32),
    }


FROZEN = {"scale": np.array(0.5, F32), "mean": np.linspace(-1, 1, OUT).astype(F32),
          "k1": np.full(OUT, 2.0, F32), "k2": np.linspace(0, 1, OUT).astype(F32)}
X = np.random.default_rng(7).standard_normal((BATCH, IN)).astype(F32)


def reference(x: np.ndarray, w: Mapping[str, np.ndarray]) -> np.ndarray:
    weff = w["w"].T + (w["lora_a"] @ w["lora_b"]) * FROZEN["scale"]
    h = x @ weff
    return (h - FROZEN["mean"]) * (w["gamma"] / np.sqrt(w["var"] + EPS)) + FROZEN["k1"] * FROZEN["k2"]


def graph(w: Mapping[str, np.ndarray]) -> wrc.Graph:
    g = wrc.Graph("lora_bn")
    x = g.data("x", (BATCH, IN))
    lora = g.mul(g.matmul(g.const("lora_a", w["lora_a"]), g.const("lora_b", w["lora_b"])),
                 g.const("scale", FROZEN["scale"]))
    weff = g.add(g.transpose(g.const("w", w["w"]), [1, 0]), lora)
    h = g.matmul(x, weff)
    bn = g.div(g.const("gamma", w["gamma"]), g.sqrt(g.add(g.const("var", w["var"]), g.const("eps", EPS))))
    folded = g.mul(g.const("k1", FROZEN["k1"]), g.const("k2", FROZEN["k2"]))
    g.output(g.add(g.mul(g.sub(h, g.const("mean", FROZEN["mean"])), bn), folded))
    return g


def build(hoist: bool = True, refreshable: list[str] = REFRESHABLE, stripped: bool = False) -> ModelBuffer:
    options = {"wrc.hoist_weight_only": "true" if hoist else "false"}
    with wrc.BuildSession(options):
        graphs = wrc.convert_to_weight_refreshable_graphs(graph(weights(0)), refreshable)
        parts = [graphs.infer_graph, graphs.var_update_graph] + ([] if stripped else [graphs.var_init_graph])
        return wrc.bundle_build_model([(p, {}) for p in parts])


@pytest.fixture(scope="module")
def model() -> ModelBuffer:
    return build()


@pytest.mark.parametrize("backend", ["numpy", "interp"])
@pytest.mark.parametrize("hoist", [True, False])
def test_results_match_numpy_with_and_without_hoisting(backend: str, hoist: bool) -> None:
    b = load_bundle(build(hoist), backend)
    b.init()
    np.testing.assert_allclose(b.infer({"x": X})[0], reference(X, weights(0)), rtol=1e-5, atol=1e-5)
    b.update(weights(1))
    np.testing.assert_allclose(b.infer({"x": X})[0], reference(X, weights(1)), rtol=1e-5, atol=1e-5)


def test_infer_reads_no_weight_only_work(model: ModelBuffer) -> None:
    funcs = module_funcs(model.module)
    infer = funcs[INFER_GRAPH]
    for op in infer.walk():
        if isinstance(op, GenericOp):
            # Each linalg op reads an input or a computed value, not globals alone.
            assert not all(isinstance(v.owner, memref.GetGlobalOp) for v in op.inputs), op
    derives = derive_funcs(model.module, model.graphs)
    # The BatchNorm scale is folded into the LoRA-merged weight (ge-fold-weight-scales), so:
    # W' = (W.T + A @ B * s) * k from {w, lora_a, lora_b, gamma, var}, and one shift
    # k1 * k2 - mean * k from {gamma, var}: one derive function each.
    assert len(derives) == 2
    assert all(DERIVE_ATTR in f.attributes for f in derives)
    plain = build(hoist=False)
    assert not derive_funcs(plain.module, plain.graphs)
    count = sum(1 for op in infer.walk() if isinstance(op, GenericOp))
    assert count < sum(1 for op in module_funcs(plain.module)[INFER_GRAPH].walk() if isinstance(op, GenericOp))


def test_inspect_marks_derived_variables(model: ModelBuffer, tmp_path) -> None:
    path = tmp_path / "m.wrcb"
    path.write_bytes(bundle_bytes(model))
    rows = {v["name"]: v for v in describe(path)["variables"]}
    assert rows["w_var"]["weight"] == "w"
    derived = [v for v in rows.values() if v["initial_value"].startswith("derived by @wrc.derive.")]
    assert len(derived) == 2 and all(v["weight"] is None for v in derived)


def test_derived_variables_are_not_weights(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.init()
    assert sorted(b.variables) == sorted(f"{n}_var" for n in REFRESHABLE)
    assert sorted(b.weights()) == sorted(REFRESHABLE)
    hidden = [f.sym_name.data for f in derive_funcs(model.module, model.graphs)]
    with pytest.raises(InputError, match="unknown weight 'w_var.hoisted0'"):
        b.update({"w_var.hoisted0": np.zeros((IN, OUT), F32)})
    with pytest.raises(InputError, match="no graph"):
        b.run(hidden[0])


def spy_runs(b: Bundle) -> list[str]:
    """The names of the functions the backend runs from now on (in order)."""
    calls: list[str] = []
    compiled = b._compiled  # noqa: SLF001 - observing which functions run
    real = compiled.run

    def run(name: str, *args: object) -> list[np.ndarray]:
        calls.append(name)
        return real(name, *args)

    compiled.run = run  # type: ignore[method-assign]
    real_reader = getattr(compiled, "reader", None)
    if real_reader is not None:  # the fast path of read-only graphs (Bundle._read)
        def reader(name: str) -> object:
            bind, call = real_reader(name)
            return bind, lambda *args: calls.append(name) or call(*args)

        compiled.reader = reader  # type: ignore[method-assign]
    return calls


def test_update_recomputes_only_what_changed(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.init()
    calls = spy_runs(b)
    w = weights(0)
    reads = {f.sym_name.data: {op.name_.root_reference.data for op in f.walk() if isinstance(op, memref.GetGlobalOp)}
             for f in derive_funcs(model.module, model.graphs)}
    weight_group = next(n for n, r in reads.items() if "lora_b_var" in r)
    assert all("gamma_var" in r for r in reads.values())

    w["lora_b"] = weights(3)["lora_b"]
    b.update({"lora_b": w["lora_b"]})
    assert calls == [UPDATE_GRAPH, weight_group]  # the shift does not depend on lora_b
    np.testing.assert_allclose(b.infer({"x": X})[0], reference(X, w), rtol=1e-5, atol=1e-5)

    calls.clear()
    w["gamma"] = weights(2)["gamma"]
    b.update({"gamma": w["gamma"]})
    assert calls[0] == UPDATE_GRAPH and sorted(calls[1:]) == sorted(reads), calls  # both, once
    np.testing.assert_allclose(b.infer({"x": X})[0], reference(X, w), rtol=1e-5, atol=1e-5)

    calls.clear()
    b.update({"gamma": np.zeros((0,), F32)})  # empty: keep, nothing to recompute
    assert calls == [UPDATE_GRAPH]
    calls.clear()
    b.update(weights(4))
    assert len(calls) == 1 + len(reads), calls  # each group once


def test_a_b_a_is_bit_identical(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.update(weights(10))
    ya = b.infer({"x": X})[0]
    b.update(weights(11))
    yb = b.infer({"x": X})[0]
    b.update(weights(10))
    assert not np.array_equal(ya, yb)
    assert np.array_equal(b.infer({"x": X})[0], ya)


def test_stripped_bundle_names_the_source_weights(tmp_path) -> None:
    b = load_bundle(bundle_bytes(build(stripped=True)))
    with pytest.raises(RuntimeStateError) as e:
        b.infer({"x": X})
    assert "gamma_var" in str(e.value) and "hoisted" not in str(e.value)
    w = weights(5)
    b.update({"gamma": w["gamma"], "w": w["w"], "lora_a": w["lora_a"], "lora_b": w["lora_b"]})
    with pytest.raises(RuntimeStateError, match=r"uninitialized variable\(s\) var_var;"):
        b.infer({"x": X})
    b.update({"var": w["var"]})  # the BatchNorm group now has both its sources
    np.testing.assert_allclose(b.infer({"x": X})[0], reference(X, w), rtol=1e-5, atol=1e-5)


def test_frozen_build_folds_constants() -> None:
    with wrc.BuildSession():
        g = graph(weights(0))
        other = wrc.Graph("other")
        other.output(other.add(other.data("y", (OUT,)), other.const("k1", FROZEN["k1"])))
        model = wrc.bundle_build_model([(g, {}), (other, {})])
    derives = derive_funcs(model.module, model.graphs)
    assert len(derives) == 1  # every weight-only value is of constants: one function, at load
    b = load_bundle(model)
    assert b.variables == {}
    np.testing.assert_allclose(b.run("lora_bn", {"x": X})[0], reference(X, weights(0)), rtol=1e-5, atol=1e-5)


def test_concurrent_updates_never_mix_sources_and_derived(model: ModelBuffer) -> None:
    b = load_bundle(model)
    wa, wb = weights(20), weights(21)
    b.update(wa)
    ya = b.infer({"x": X})[0]
    b.update(wb)
    yb = b.infer({"x": X})[0]
    def write() -> None:
        for i in range(200):
            b.update(wa if i % 2 else wb)

    def read() -> str | None:
        y = b.infer({"x": X})[0]
        return None if np.array_equal(y, ya) or np.array_equal(y, yb) else f"mixed result {y}"

    failures = race(write, read)
    assert not failures, failures[:3]


def test_hoist_option_is_checked() -> None:
    with pytest.raises(BuildError, match="wrc.hoist_weight_only.*\"true\" or \"false\""):
        wrc.build_initialize({"wrc.hoist_weight_only": "yes"})


_GLOBALS = "".join(
    f'"memref.global"() <{{sym_name = "{n}", type = memref<2xf32>, initial_value, sym_visibility = "public"}}>'
    " {ge.variable} : () -> ()\n" for n in ("w_var", "d", "e"))


def _copy(src: str, dst: str) -> str:
    return (f"%{src}{dst}0 = memref.get_global @{src} : memref<2xf32>\n"
            f"%{src}{dst}1 = memref.get_global @{dst} : memref<2xf32>\n"
            f'"memref.copy"(%{src}{dst}0, %{src}{dst}1) : (memref<2xf32>, memref<2xf32>) -> ()\n')


@pytest.mark.parametrize(("derives", "graph_body", "message"), [
    ([("", _copy("w_var", "d"))], _copy("w_var", "d"), "writes the derived variable"),
    ([('%a : memref<2xf32> {ge.name = "a"}', _copy("w_var", "d"))], "", "takes no inputs"),
    ([("", _copy("w_var", "d")), ("", _copy("d", "e"))], "", "must read weights only"),
    ([("", _copy("w_var", "d")), ("", _copy("w_var", "d"))], "", "written whole, once"),
])
def test_malformed_derive_functions_are_format_errors(
        derives: list[tuple[str, str]], graph_body: str, message: str) -> None:
    text = "builtin.module {\n" + _GLOBALS
    for i, (args, body) in enumerate(derives):
        text += f"func.func @wrc.derive.{i}({args}) attributes {{{DERIVE_ATTR}}} {{\n{body}func.return\n}}\n"
    text += f"func.func @g() {{\n{graph_body}func.return\n}}\n}}"
    with pytest.raises(BundleFormatError, match=message):
        Bundle(ModelBuffer(parse_module(make_context(), text), ("g",), {}))


def test_pipeline_exposes_the_build_stage() -> None:
    assert pipeline.BUILD == f"{pipeline.WEIGHT_ONLY},{pipeline.LOWER_TO_BUFFERS}"


def test_batchnorm_folds_into_the_convolutions_of_resnet() -> None:
    """tests/models/resnet.onnx (PyTorch export): every BatchNorm's scale goes into its conv's
    weights; results agree with the unfolded build (and, in test_onnx_models, with onnxruntime)."""
    from pathlib import Path

    from wrc.onnx import import_onnx, weight_names

    path = Path(__file__).parent / "models" / "resnet.onnx"
    graph = import_onnx(path)
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(F32)
    generics, outs = {}, {}
    for hoist in ("true", "false"):
        with wrc.BuildSession({"wrc.hoist_weight_only": hoist}):
            parts = wrc.convert_to_weight_refreshable_graphs(graph, weight_names(graph))
            mb = wrc.bundle_build_model([parts.infer_graph, parts.var_update_graph, parts.var_init_graph])
        generics[hoist] = sum(isinstance(op, GenericOp) for op in module_funcs(mb.module)[INFER_GRAPH].walk())
        b = load_bundle(mb)
        b.init()
        outs[hoist] = b.infer({"x": x})[0]
    np.testing.assert_allclose(outs["true"], outs["false"], rtol=1e-5, atol=1e-5)
    import onnx

    batchnorms = sum(n.op_type == "BatchNormalization" for n in onnx.load(str(path)).graph.node)
    assert batchnorms >= 3
    # Each BatchNorm was a multiply and an add on activations; folded, its add merges with
    # the conv's bias add: at least two ops per BatchNorm fewer.
    assert generics["true"] <= generics["false"] - 2 * batchnorms, generics
