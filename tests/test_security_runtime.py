"""The runtime's promises under attack or failure (docs/SECURITY.md): hostile names, atomic
updates with failures injected mid-copy, updates while serving, crash-safe saves under
SIGKILL, and input validation before any large allocation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from readers import race

import wrc
from wrc import bundle_format as bf
from wrc.errors import InputError
from wrc.tools import wrc_fuzz

F32 = np.float32
BACKENDS = ["numpy", "interp"]

HOSTILE = [
    'q"uote',
    "new\nline\r\ttab",
    '"}) -> ()\n  func.func @evil() {\n',
    "__import__('os').system('touch /tmp/wrc-pwned')",
    "'; import os #",
    "{{x}} %s {0} $HOME `id`",
    "@sym %v0 ^bb0 #map !type",
    "dense<1.0> : tensor<99999999999xf32>",
    "back\\slash\\0A\\",
    "é漢字🙂\u202e\u0000nul",
    "a b.c-d/e:f",
    "L" * 3000,
]


def hostile_graph(name: str) -> tuple[wrc.Graph, str, str, str]:
    """y = x @ w + c, with every user-given name derived from `name`."""
    g = wrc.Graph("g")
    x_name, w_name, c_name = "in:" + name, "w:" + name, "c:" + name
    x = g.data(x_name, (2, 3))
    w = g.const(w_name, np.arange(6, dtype=F32).reshape(3, 2))
    g.output(g.add(g.matmul(x, w), g.const(c_name, np.array([1, 2], F32))))
    return g, x_name, w_name, c_name


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_names_through_build_save_load_run(name: str, tmp_path: Path) -> None:
    """Names full of quotes, newlines, Python/MLIR syntax, unicode or 3000 characters go
    through conversion, bundle build, save, load and run on both backends as plain data."""
    g, x_name, w_name, c_name = hostile_graph(name)
    path = tmp_path / "m.wrcb"
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(g, [w_name])
        model = wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_init_graph, {}),
                                        (graphs.var_update_graph, {})])
        wrc.bundle_save_model(path, model)
    x = np.arange(6, dtype=F32).reshape(2, 3)
    w2 = np.full((3, 2), -1, F32)
    for backend in BACKENDS:
        b = wrc.load_bundle(path, backend=backend)
        assert w_name + "_var" in b.variables
        b.init()
        np.testing.assert_allclose(b.infer({x_name: x})[0], x @ np.arange(6).reshape(3, 2) + [1, 2])
        b.update({w_name: w2})
        np.testing.assert_allclose(b.infer([x])[0], x @ w2 + [1, 2])
        if backend == "numpy":  # generated code names nothing from the file
            for graph in b.graphs:
                source = b.source(graph)
                assert all(n not in source for n in (x_name, w_name, c_name)), source
    assert not os.path.exists("/tmp/wrc-pwned")


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_onnx_names(name: str) -> None:
    """The same names as ONNX input, initializer, node and output names, through import."""
    onnx = pytest.importorskip("onnx")  # an optional package; wrc.onnx must then import
    from onnx import TensorProto, helper, numpy_helper

    from wrc.onnx import import_onnx

    x_name, w_name, y_name = "in:" + name, "w:" + name, "out:" + name
    w = np.arange(6, dtype=F32).reshape(3, 2)
    graph = helper.make_graph(
        [helper.make_node("MatMul", [x_name, w_name], [y_name], name="node:" + name)], "g:" + name,
        [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info(y_name, TensorProto.FLOAT, [2, 2])],
        [numpy_helper.from_array(w, w_name)])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(proto)
    g = import_onnx(proto)
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(g, [w_name])
        model = wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_init_graph, {}),
                                        (graphs.var_update_graph, {})])
    b = wrc.load_bundle(bf.bundle_bytes(model))
    b.init()
    x = np.ones((2, 3), F32)
    np.testing.assert_allclose(b.infer({x_name: x})[0], x @ w)
    b.update({w_name: -w})
    np.testing.assert_allclose(b.infer([x])[0], -(x @ w))


def test_no_code_from_data_in_the_reader() -> None:
    """The loading path uses no pickle/eval/exec (the numpy JIT's exec runs generated code
    only: identifiers it makes up, values passed as data)."""
    import inspect

    for module in (bf, wrc.runtime, wrc.model_buffer, wrc.abi, wrc.ir_text, wrc.ir_binary):
        text = inspect.getsource(module)
        for banned in ("pickle", "eval(", "exec(", "marshal", "allow_pickle=True"):
            assert banned not in text, (module.__name__, banned)


# --------------------------------------------------------------------------- atomic updates


def mlp(hidden: int = 64) -> wrc.ModelBuffer:
    rng = np.random.default_rng(1)
    g = wrc.Graph("mlp")
    x = g.data("x", (4, 32))
    h = g.relu(g.add(g.matmul(x, g.const("w1", rng.standard_normal((32, hidden)).astype(F32))),
                     g.const("b1", rng.standard_normal(hidden).astype(F32))))
    g.output(g.matmul(h, g.const("w2", rng.standard_normal((hidden, 10)).astype(F32))))
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(g, ["w1", "b1", "w2"])
        return wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_init_graph, {}),
                                       (graphs.var_update_graph, {})])


def weight_sets(model: wrc.ModelBuffer, scale: float) -> dict[str, np.ndarray]:
    return {n: (model.weights[n] * scale).astype(F32) for n in ("w1", "b1", "w2")}


X = np.random.default_rng(2).standard_normal((4, 32)).astype(F32)


def snapshot(b: wrc.Bundle) -> dict[str, bytes]:
    """Every variable's bytes, read through the public API (infer) and the store."""
    return {n: b._snapshot[n].tobytes() for n in b.variables if n in b._snapshot}


@pytest.mark.parametrize("backend", BACKENDS)
def test_update_failing_after_the_copies_changes_nothing(backend: str) -> None:
    model = mlp(8)
    b = wrc.load_bundle(model, backend=backend)
    b.init()
    before, y = snapshot(b), b.infer({"x": X})[0]
    real = b._compiled.run

    def run_then_fail(graph, globals_, args):  # every variable copied, then a crash
        real(graph, globals_, args)
        raise MemoryError("injected after the copies")

    b._compiled.run = run_then_fail  # type: ignore[method-assign]
    with pytest.raises(MemoryError):
        b.update(weight_sets(model, -1))
    b._compiled.run = real  # type: ignore[method-assign]
    assert snapshot(b) == before
    np.testing.assert_array_equal(b.infer({"x": X})[0], y)


def test_update_failing_in_the_middle_of_copying_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numpy backend's generated code copies each weight with `np.copyto`; the 2nd copy
    raises: the 1st variable was already written (into a fresh array), yet nothing changed."""
    model = mlp()
    b = wrc.load_bundle(model)
    b.init()
    before, y = snapshot(b), b.infer({"x": X})[0]
    real, calls = np.copyto, []

    def copyto(dst, src, *args, **kwargs):
        calls.append(dst.shape)
        if len(calls) == 2:
            raise OSError("injected while copying")
        return real(dst, src, *args, **kwargs)

    monkeypatch.setattr(np, "copyto", copyto)
    with pytest.raises(OSError, match="injected"):
        b.update(weight_sets(model, 2))
    monkeypatch.undo()
    assert len(calls) == 2
    assert snapshot(b) == before
    np.testing.assert_array_equal(b.infer({"x": X})[0], y)
    b.update(weight_sets(model, 2))  # and the bundle still works
    assert snapshot(b) != before


def test_update_validates_every_entry_before_copying(monkeypatch: pytest.MonkeyPatch) -> None:
    model = mlp(8)
    b = wrc.load_bundle(model)
    b.init()
    before = snapshot(b)
    ran = []
    real = b._compiled.run
    b._compiled.run = lambda *a: ran.append(a) or real(*a)  # type: ignore[method-assign]
    good = weight_sets(model, 3)
    for bad in ({**good, "w2": good["w2"].T}, {**good, "b1": good["b1"].astype(np.float64)},
                {**good, "nope": good["b1"]}, {**good, "w1": good["w1"].tolist()}):
        with pytest.raises(InputError, match="changed nothing"):
            b.update(bad)
    assert ran == [] and snapshot(b) == before


# --------------------------------------------------------------------------- update while serving


def test_update_while_serving() -> None:
    """One thread alternates two full weight sets; three threads infer: each result is
    exactly the all-old or the all-new one (never a mix), and nothing deadlocks."""
    model = mlp(256)
    b = wrc.load_bundle(model)
    sets = [weight_sets(model, 1), weight_sets(model, -0.5)]
    expected = []
    for s in sets:
        b.update(s)
        expected.append(b.infer({"x": X})[0])
    mixed = {**sets[0], "w2": sets[1]["w2"]}
    b.update(mixed)
    assert not any(np.allclose(b.infer({"x": X})[0], e, rtol=1e-2, atol=1e-2) for e in expected)
    b.update(sets[0])  # readers may run before the writer's first update: start from a full set

    counts = [0, 0]
    deadline = time.monotonic() + 3.0

    def write() -> None:
        i = 0
        while time.monotonic() < deadline:
            b.update(sets[i % 2])
            i += 1

    def read() -> str | None:
        y = b.infer({"x": X})[0]
        hits = [k for k, e in enumerate(expected) if np.array_equal(y, e)]
        if not hits:
            return "a result from mixed weights"
        counts[hits[0]] += 1
        return None

    failures = race(write, read, timeout=60)
    assert not failures, failures[:3]
    assert counts[0] and counts[1], counts


# --------------------------------------------------------------------------- resource bounds


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_inputs_are_rejected_before_any_large_allocation(backend: str) -> None:
    """Zero-stride views claim terabytes but occupy bytes: a copy or conversion of one would
    be a huge allocation. Wrong shapes/dtypes must be rejected without one."""
    b = wrc.load_bundle(mlp(8), backend=backend)
    b.init()
    huge = np.broadcast_to(np.zeros((), F32), (1 << 20, 1 << 20))  # 4 TiB if materialized
    cases = [
        (lambda: b.infer({"x": huge}), "expected shape [4, 32]"),
        (lambda: b.infer([np.broadcast_to(np.zeros((), np.float16), (4, 32))]), "expected dtype float32"),
        (lambda: b.infer({"x": np.broadcast_to(np.zeros((), np.float64), (4, 32))}), "dtype"),
        (lambda: b.update({"w1": huge}), "expected shape [32, 8]"),
        (lambda: b.update({"w1": np.broadcast_to(np.zeros((), np.int64), (32, 8)), "w2": huge}),
         "changed nothing"),
        (lambda: b.run("var_update_graph", {"w1_var_data": huge}), "expected shape"),
        (lambda: b.update({"w1": [[0.0] * 8] * 32}), "must be a numpy array"),
    ]
    tracemalloc.start()
    try:
        for call, message in cases:
            with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
                call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak  # < 1 MiB for all of them


# --------------------------------------------------------------------------- crash-safe save


def test_sigkill_during_save_leaves_old_or_new_bundle(tmp_path: Path) -> None:
    """A process saving two versions of a 32 MB bundle over one target is SIGKILLed at random
    moments: the target is always byte-identical to one of them, and the next save removes
    the dead writers' temporary files."""
    report = wrc_fuzz.kill_during_saves(tmp_path, kills=3, megabytes=32, seed=7)
    print(report)
    assert not report.findings, report.findings
    assert report.cases == 3


def test_next_save_removes_only_dead_writers_temp_files(tmp_path: Path) -> None:
    model = wrc_fuzz.seed_model()
    target = tmp_path / "m.wrcb"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".m.wrcb.{dead}.abc123{bf.TEMP_SUFFIX}"
    live = tmp_path / f".m.wrcb.{os.getpid()}.def456{bf.TEMP_SUFFIX}"  # a save in progress
    other = tmp_path / f".other.wrcb.{dead}.abc123{bf.TEMP_SUFFIX}"  # another target's
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    bf.write_bundle(target, model)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, live.name, other.name])
    assert bf.read_bundle(target).graphs == model.graphs


def test_security_md_cites_existing_tests() -> None:
    """Every test docs/SECURITY.md cites as proof exists."""
    import re

    root = Path(__file__).resolve().parents[1]
    cited = set(re.findall(r"`(?:[\w/]+\.py::)?(test_\w+)`", (root / "docs/SECURITY.md").read_text()))
    defined = set()
    for path in (root / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), re.M))
    assert len(cited) > 20 and cited <= defined, sorted(cited - defined)


def test_a_well_formed_file_the_backend_cannot_run_is_a_format_error() -> None:
    """A tampered but self-consistent file (here: a body op no backend implements) fails at load
    with BundleFormatError, like any other bad file, not with a backend's own error."""
    from wrc.context import make_context
    from wrc.ir_text import parse_module
    from wrc.model_buffer import ModelBuffer

    model = mlp()
    text = str(model.module)
    assert "arith.maximumf" in text
    tampered = parse_module(make_context(), text.replace("arith.maximumf", "math.atan2", 1))
    data = bf.bundle_bytes(ModelBuffer(tampered, model.graphs, model.weights))
    for backend in BACKENDS:
        with pytest.raises(wrc.BundleFormatError, match="cannot be run on backend") as info:
            wrc.load_bundle(data, backend=backend)
        assert isinstance(info.value, wrc.UnrunnableBundleError)
        assert isinstance(info.value, wrc.LoweringError)  # still says what the backend lacks
    with pytest.raises(wrc.WrcError, match="unknown backend"):  # still the caller's mistake
        wrc.load_bundle(data, backend="tpu")
