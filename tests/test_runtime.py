"""The runtime contract (docs/spec.md §3): init / update / infer / run, atomicity, concurrency.

The bundles are hand-written level-3 IR (docs/internals.md): y = (x @ const_1_var) * const_2_var + b
with a 4x3 weight, a scalar weight and an inline constant `b`. Every test runs on each real
backend that is importable ("interp" cases stay tiny); a small fake backend that checks the
backend contract stands in while none is.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from readers import race
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser

import wrc.backends
from wrc.bundle_format import bundle_bytes, write_bundle
from wrc.context import make_context
from wrc.errors import InputError, RuntimeStateError, WrcError
from wrc.model_buffer import ModelBuffer
from wrc.runtime import Bundle, VariableInfo, load_bundle

F32 = np.float32
B = np.array([0.5, -1.0, 2.0], F32)


def level3(init: bool = True) -> str:
    """The test bundle's IR; without `init`, a weight-stripped bundle (no stored constants)."""
    g = [
        '"memref.global"() <{sym_name = "const_1_var", sym_visibility = "public", type = memref<4x3xf32>, initial_value}> {ge.variable} : () -> ()',
        '"memref.global"() <{sym_name = "const_2_var", sym_visibility = "public", type = memref<f32>, initial_value}> {ge.variable} : () -> ()',
    ]
    if init:
        g += [
            '"memref.global"() <{sym_name = "const_1", sym_visibility = "private", type = memref<4x3xf32>, constant, initial_value}> {ge.constant} : () -> ()',
            '"memref.global"() <{sym_name = "const_2", sym_visibility = "private", type = memref<f32>, constant, initial_value}> {ge.constant} : () -> ()',
        ]
    g.append('"memref.global"() <{sym_name = "b", sym_visibility = "private", type = memref<3xf32>, constant, initial_value = dense<[5.000000e-01, -1.000000e+00, 2.000000e+00]> : tensor<3xf32>}> {ge.constant} : () -> ()')
    infer = """func.func @var_infer_graph(%x: memref<2x4xf32> {ge.name = "x"}) -> memref<2x3xf32> {
    %w = memref.get_global @const_1_var : memref<4x3xf32>
    %s = memref.get_global @const_2_var : memref<f32>
    %b = memref.get_global @b : memref<3xf32>
    %o = memref.alloc() : memref<2x3xf32>
    %z = arith.constant 0.000000e+00 : f32
    linalg.fill ins(%z : f32) outs(%o : memref<2x3xf32>)
    linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : memref<2x4xf32>, memref<4x3xf32>) outs(%o : memref<2x3xf32>) {
    ^bb0(%a: f32, %c: f32, %acc: f32):
      %m = arith.mulf %a, %c : f32
      %r = arith.addf %acc, %m : f32
      linalg.yield %r : f32
    }
    %y = memref.alloc() : memref<2x3xf32>
    linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> ()>, affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%o, %s, %b : memref<2x3xf32>, memref<f32>, memref<3xf32>) outs(%y : memref<2x3xf32>) {
    ^bb0(%p: f32, %q: f32, %t: f32, %u: f32):
      %m2 = arith.mulf %p, %q : f32
      %r2 = arith.addf %m2, %t : f32
      linalg.yield %r2 : f32
    }
    func.return %y : memref<2x3xf32>
  }"""
    init_fn = """func.func @var_init_graph() {
    %c1 = memref.get_global @const_1 : memref<4x3xf32>
    %v1 = memref.get_global @const_1_var : memref<4x3xf32>
    "memref.copy"(%c1, %v1) : (memref<4x3xf32>, memref<4x3xf32>) -> ()
    %c2 = memref.get_global @const_2 : memref<f32>
    %v2 = memref.get_global @const_2_var : memref<f32>
    "memref.copy"(%c2, %v2) : (memref<f32>, memref<f32>) -> ()
    func.return
  }"""
    update = """func.func @var_update_graph(%d0: memref<4x3xf32> {ge.name = "const_1_var_data", ge.optional}, %p0: i1, %d1: memref<f32> {ge.name = "const_2_var_data", ge.optional}, %p1: i1) {
    scf.if %p0 {
      %v1 = memref.get_global @const_1_var : memref<4x3xf32>
      "memref.copy"(%d0, %v1) : (memref<4x3xf32>, memref<4x3xf32>) -> ()
    }
    scf.if %p1 {
      %v2 = memref.get_global @const_2_var : memref<f32>
      "memref.copy"(%d1, %v2) : (memref<f32>, memref<f32>) -> ()
    }
    func.return
  }"""
    funcs = [infer] + ([init_fn] if init else []) + [update]
    return "builtin.module {\n  " + "\n  ".join(g + funcs) + "\n}\n"


W1 = np.arange(12, dtype=F32).reshape(4, 3) / 4
W2 = np.array(3.0, F32)
X = np.array([[1, 2, 3, 4], [-1, 0.5, 0, 2]], F32)


def model(init: bool = True) -> ModelBuffer:
    module = Parser(make_context(), level3(init)).parse_module()
    graphs = ("var_infer_graph", "var_init_graph", "var_update_graph") if init else (
        "var_infer_graph", "var_update_graph")
    weights = {"const_1": W1, "const_2": W2} if init else {}
    return ModelBuffer(module=module, graphs=graphs, weights=weights)


def expected(x: np.ndarray, w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    return (x @ w1) * w2 + B


# --------------------------------------------------------------------------- backends


class _FakeCompiled:
    """Implements the test module's three graphs and asserts the backend contract."""

    def __init__(self, module: ModuleOp) -> None:
        self.specs = {op.sym_name.data: (tuple(op.type.get_shape()), np.dtype(F32))
                      for op in module.ops if op.name == "memref.global"}

    def run(self, graph: str, globals_: Mapping[str, np.ndarray], args: Sequence) -> list[np.ndarray]:
        for name, a in globals_.items():
            assert (a.shape, a.dtype) == self.specs[name] and a.flags.c_contiguous, name
        g = globals_
        if graph == "var_infer_graph":
            assert set(g) == {"const_1_var", "const_2_var", "b"}
            (x,) = args
            return [((x @ g["const_1_var"]) * g["const_2_var"] + g["b"]).astype(F32)]
        if graph == "var_init_graph":
            assert set(g) == {"const_1_var", "const_2_var", "const_1", "const_2"}
            g["const_1_var"][...] = g["const_1"]  # type: ignore[index]
            g["const_2_var"][...] = g["const_2"]  # type: ignore[index]
            return []
        assert graph == "var_update_graph"
        d0, p0, d1, p1 = args
        assert isinstance(p0, bool) and isinstance(p1, bool)
        assert d0.shape == (4, 3) and d1.shape == ()
        if p0:
            g["const_1_var"][...] = d0  # type: ignore[index]
        if p1:
            g["const_2_var"][...] = d1  # type: ignore[index]
        return []


class _FakeBackend:
    name = "fake"

    def compile(self, module: ModuleOp) -> _FakeCompiled:
        return _FakeCompiled(module)


def _real_backends() -> list[str]:
    if os.environ.get("WRC_TEST_BACKENDS"):  # e.g. "fake" to test the runtime alone
        return os.environ["WRC_TEST_BACKENDS"].split(",")
    out = []
    for name in ("numpy", "interp"):
        try:
            wrc.backends.get_backend(name)
        except Exception:
            continue
        out.append(name)
    return out


@pytest.fixture(params=_real_backends() or ["fake"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "fake":
        real = wrc.backends.get_backend
        monkeypatch.setattr(wrc.backends, "get_backend",
                            lambda name: _FakeBackend() if name == "fake" else real(name))
    return request.param


def check(y: list[np.ndarray], w1: np.ndarray, w2: np.ndarray) -> None:
    assert len(y) == 1
    np.testing.assert_allclose(y[0], expected(X, w1, w2), rtol=1e-6)


# --------------------------------------------------------------------------- tests


def test_init_then_infer(backend: str) -> None:
    b = load_bundle(bundle_bytes(model()), backend=backend)
    assert b.graphs == ("var_infer_graph", "var_init_graph", "var_update_graph")
    assert b.backend == backend
    assert b.variables == {
        "const_1_var": VariableInfo((4, 3), np.dtype(F32), False),
        "const_2_var": VariableInfo((), np.dtype(F32), False),
    }
    b.init()
    assert all(v.initialized for v in b.variables.values())
    y = b.infer({"x": X})
    check(y, W1, W2)
    assert isinstance(y[0], np.ndarray) and y[0].dtype == F32
    check(b.infer([X]), W1, W2)  # positional
    check(b.infer((X,)), W1, W2)
    check(b.run("var_infer_graph", {"x": X}), W1, W2)


def test_load_from_path_bytes_and_model(backend: str, tmp_path) -> None:
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    for source in (path, str(path), path.read_bytes(), model()):
        b = load_bundle(source, backend=backend)
        b.init()
        check(b.infer({"x": X}), W1, W2)


def test_update_full_partial_empty_and_scalar_zero(backend: str) -> None:
    b = load_bundle(model(), backend=backend)
    b.init()
    w1 = -W1
    b.update({"const_1": w1, "const_2": np.array(0.5, F32)})
    check(b.infer({"x": X}), w1, np.array(0.5, F32))
    b.update({"const_2": np.array(2.0, F32)})  # partial: const_1 keeps -W1
    check(b.infer({"x": X}), w1, np.array(2.0, F32))
    b.update({"const_1": np.empty((0,), F32)})  # empty = keep
    b.update({})
    check(b.infer({"x": X}), w1, np.array(2.0, F32))
    # A scalar weight updated to 0 IS updated (GE's If would skip it; wrc tests emptiness).
    b.update({"const_2": np.array(0.0, F32)})
    np.testing.assert_array_equal(b.infer({"x": X})[0], np.broadcast_to(B, (2, 3)))
    b.update({"const_2": F32(1.0)})  # a numpy scalar of the right dtype is fine
    check(b.infer({"x": X}), w1, np.array(1.0, F32))
    # GE style: the update graph by name, empty inputs = keep, missing optional = keep.
    b.run("var_update_graph", {"const_1_var_data": W1, "const_2_var_data": np.zeros(0, F32)})
    check(b.infer({"x": X}), W1, np.array(1.0, F32))
    b.run("var_update_graph", [np.zeros(0, F32), np.array(4.0, F32)])
    check(b.infer({"x": X}), W1, np.array(4.0, F32))


def test_update_copies_its_input(backend: str) -> None:
    b = load_bundle(model(), backend=backend)
    b.init()
    w1 = W1.copy()
    b.update({"const_1": w1})
    w1 += 100  # the caller's array is not the variable
    check(b.infer({"x": X}), W1, W2)


def test_update_is_validated_atomically(backend: str) -> None:
    b = load_bundle(model(), backend=backend)
    b.init()
    bad_cases = [
        ({"const_1": -W1, "const_2": np.array(1.0, np.float64)}, "expected dtype float32, got float64"),
        ({"const_1": -W1, "const_2": np.ones((1,), F32)}, "expected shape [], got [1]"),
        ({"const_1": -W1, "nope": W2}, "unknown weight 'nope' (weights: const_1, const_2)"),
        ({"const_1": -W1, "const_1_var": W1},
         "unknown weight 'const_1_var' (did you mean 'const_1'? weights: const_1, const_2)"),
        ({"model.const_1": W1, "model.const_2": W2, "x": W1},  # (a checkpoint's prefix)
         "unknown weights 'model.const_1', 'model.const_2', 'x' (did you mean 'const_1' for 'model.const_1', "
         "'const_2' for 'model.const_2'? weights: const_1, const_2)"),
        ({"const_1": -W1, "const_2": 1.0}, "must be a numpy array, got float"),
        ({"const_1": W1.astype(np.float64)}, "weight 'const_1': expected dtype float32"),
        ({"const_1": W1.T}, "expected shape [4, 3], got [3, 4]"),
    ]
    for weights, message in bad_cases:
        with pytest.raises(InputError, match="changed nothing") as e:
            b.update(weights)
        assert message in str(e.value)
        check(b.infer({"x": X}), W1, W2)
    with pytest.raises(InputError):
        b.update([("const_1", W1)])  # type: ignore[arg-type]


def test_infer_input_validation(backend: str) -> None:
    b = load_bundle(model(), backend=backend)
    b.init()
    cases = [
        ({}, "input 'x' is missing"),
        ({"x": X, "y": X}, "unknown input(s) ['y']"),
        ([X, X], "expected 1 input(s) ['x'], got 2"),
        ([], "expected 1 input(s)"),
        ({"x": X.astype(np.float64)}, "input 'x': expected dtype float32, got float64"),
        ({"x": X[:, :3]}, "input 'x': expected shape [2, 4], got [2, 3]"),
        ({"x": X.tolist()}, "input 'x' must be a numpy array, got list"),
        ("x", "inputs must be a dict by name or a list"),
    ]
    for inputs, message in cases:
        with pytest.raises(InputError) as e:
            b.infer(inputs)  # type: ignore[arg-type]
        assert message in str(e.value)
    check(b.infer({"x": np.asfortranarray(X)}), W1, W2)  # any layout of the right dtype
    with pytest.raises(InputError, match="no graph 'main'"):
        b.run("main")


def test_weight_stripped_bundle(backend: str, tmp_path) -> None:
    data = bundle_bytes(model(init=False))
    assert len(data) < len(bundle_bytes(model()))
    b = load_bundle(data, backend=backend)
    assert b.graphs == ("var_infer_graph", "var_update_graph")
    with pytest.raises(RuntimeStateError, match="weight-stripped.*update"):
        b.init()
    with pytest.raises(RuntimeStateError, match="const_1_var, const_2_var"):
        b.infer({"x": X})
    b.update({"const_1": W1})
    assert [v.initialized for v in b.variables.values()] == [True, False]
    with pytest.raises(RuntimeStateError) as e:
        b.infer({"x": X})
    assert "const_2_var" in str(e.value) and "const_1_var" not in str(e.value)
    b.update({"const_2": W2})
    check(b.infer({"x": X}), W1, W2)


def test_bundles_do_not_share_variables(backend: str, tmp_path) -> None:
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    a, b = load_bundle(path, backend=backend), load_bundle(path, backend=backend)
    a.init()
    assert not any(v.initialized for v in b.variables.values())
    b.init()
    a.update({"const_1": -W1})
    check(a.infer({"x": X}), -W1, W2)
    check(b.infer({"x": X}), W1, W2)


def test_bundle_api_misc(backend: str) -> None:
    b = Bundle(model(), backend=backend)
    assert b.inputs("var_infer_graph") == [("x", (2, 4), np.dtype(F32))]
    assert "var_infer_graph" in repr(b)
    if backend == "numpy":  # generates Python source calling NumPy
        text = b.source("var_infer_graph")
        assert "def " in text and "np." in text, text
    else:  # the interpreter generates no code, and says so
        with pytest.raises(WrcError, match=f"backend {backend!r} does not expose generated source"):
            b.source("var_infer_graph")
    with pytest.raises(WrcError, match="unknown backend"):
        load_bundle(model(), backend="nope")


def test_concurrent_update_and_infer(backend: str) -> None:
    """Every infer sees all-A or all-B weights while another thread alternates updates."""
    b = load_bundle(model(), backend=backend)
    wa = {"const_1": W1, "const_2": np.array(2.0, F32)}
    wb = {"const_1": -2 * W1, "const_2": np.array(-0.5, F32)}
    b.update(wa)
    ya = b.infer({"x": X})[0]
    b.update(wb)
    yb = b.infer({"x": X})[0]
    assert not np.array_equal(ya, yb)
    # Mixed weights would give one of these instead:
    mixed = [expected(X, wa["const_1"], wb["const_2"]), expected(X, wb["const_1"], wa["const_2"])]
    assert not any(np.allclose(m, ya) or np.allclose(m, yb) for m in mixed)

    rounds = 20 if backend == "interp" else 100
    seen = {"a": 0, "b": 0}
    count = threading.Lock()
    read = {"a": threading.Event(), "b": threading.Event()}

    def write() -> None:
        for i in range(rounds):
            key = "a" if i % 2 else "b"
            read[key].clear()
            b.update(wa if key == "a" else wb)
            # Let a reader see this version before the next update (else one of the two
            # sets may never be read, and the check below would prove little).
            assert read[key].wait(10), f"no reader saw weight set {key} within 10 s"

    def read_once() -> str | None:
        y = b.infer({"x": X})[0]
        key = "a" if np.array_equal(y, ya) else "b" if np.array_equal(y, yb) else None
        if key is None:
            return f"mixed result {y}"
        with count:
            seen[key] += 1
        read[key].set()
        return None

    start = time.monotonic()
    failures = race(write, read_once, readers=4)
    assert not failures, failures[:3]
    assert seen["a"] >= rounds // 2 and seen["b"] >= rounds // 2, seen  # each version was read
    assert time.monotonic() - start < 120
