"""The fast path of read-only graphs (`Bundle._read`, wrc/runtime.py; docs/internals.md
"Runtime"): good inputs skip the checked path, anything else gets exactly its messages, and
the weights read are one version's, with the version `with_version` reports."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from readers import race
from test_runtime import W1, X, expected, model

import wrc
from wrc.errors import InputError
from wrc.runtime import load_bundle
from wrc.workflow import compile_graph

F32 = np.float32
W = np.arange(12, dtype=F32).reshape(4, 3) / 8
A = np.linspace(-1, 1, 8, dtype=F32).reshape(2, 4)
B = np.linspace(2, -2, 6, dtype=F32).reshape(2, 3)


@pytest.fixture(scope="module")
def two_inputs() -> wrc.ModelBuffer:
    """relu(a @ w + b) / w.sum(): two inputs; the division makes w = 0 divide by zero."""
    g = wrc.Graph("two")
    a, b = g.data("a", (2, 4)), g.data("b", (2, 3))
    w = g.const("w", W)
    g.output(g.div(g.relu(g.add(g.matmul(a, w), b)), g.const("s", np.array(W.sum(), F32))))
    return compile_graph(g, ["w", "s"])


def want(a: np.ndarray, b: np.ndarray, w: np.ndarray = W, s: float = float(W.sum())) -> np.ndarray:
    return np.maximum(a @ w + b, 0) / F32(s)


def spy_checked(b: wrc.Bundle, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The graphs whose inputs take the checked path (`_bind_named`) from now on."""
    seen: list[str] = []
    real = b._bind_named  # noqa: SLF001 - observing which path a call takes

    def bind(info, values):  # type: ignore[no-untyped-def]
        seen.append(info.name)
        return real(info, values)

    monkeypatch.setattr(b, "_bind_named", bind)
    return seen


@pytest.mark.parametrize("backend", ["numpy", "interp"])
def test_good_inputs_skip_the_checked_path(two_inputs: wrc.ModelBuffer, backend: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    b = load_bundle(two_inputs, backend=backend)
    b.init()
    checked = spy_checked(b, monkeypatch)
    for inputs in ({"a": A, "b": B}, {"b": B, "a": A}, [A, B], (A, B)):
        np.testing.assert_allclose(b.infer(inputs)[0], want(A, B), rtol=1e-6)
        np.testing.assert_allclose(b.run("var_infer_graph", inputs)[0], want(A, B), rtol=1e-6)
    (y,), version = b.infer({"a": A, "b": B}, with_version=True)
    assert version == b.version == 1
    np.testing.assert_allclose(y, want(A, B), rtol=1e-6)
    assert checked == []
    # Accepted by the checked path only: a strided view (copied), a dict subclass.
    class Feeds(dict):  # noqa: N801
        pass

    wide = np.zeros((2, 8), F32)
    wide[:, ::2] = A
    np.testing.assert_allclose(b.infer({"a": wide[:, ::2], "b": B})[0], want(A, B), rtol=1e-6)
    np.testing.assert_allclose(b.infer(Feeds(a=A, b=B))[0], want(A, B), rtol=1e-6)
    assert checked == ["var_infer_graph"] * 2


BAD_INPUTS = [
    ({"a": A, "c": B}, "var_infer_graph: unknown input(s) ['c'] (inputs: ['a', 'b'])"),
    ({"a": A, "b": B, "c": B}, "var_infer_graph: unknown input(s) ['c'] (inputs: ['a', 'b'])"),
    ({"a": A}, "var_infer_graph: input 'b' is missing"),
    ({}, "var_infer_graph: input 'a' is missing; var_infer_graph: input 'b' is missing"),
    (None, "var_infer_graph: input 'a' is missing; var_infer_graph: input 'b' is missing"),
    ({"a": A.astype(np.float64), "b": B}, "var_infer_graph: input 'a': expected dtype float32, got float64"),
    ({"a": A, "b": B[:1]}, "var_infer_graph: input 'b': expected shape [2, 3], got [1, 3]"),
    ({"a": A.T, "b": B.T}, "var_infer_graph: input 'a': expected shape [2, 4], got [4, 2]; "
                           "var_infer_graph: input 'b': expected shape [2, 3], got [3, 2]"),
    ({"a": A.tolist(), "b": B}, "var_infer_graph: input 'a' must be a numpy array, got list"),
    ({"a": None, "b": B}, "var_infer_graph: input 'a' must be a numpy array, got NoneType"),
    ({"a": F32(1), "b": B}, "var_infer_graph: input 'a': expected shape [2, 4], got []"),
    ([A], "var_infer_graph: expected 2 input(s) ['a', 'b'], got 1"),
    ((A, B, B), "var_infer_graph: expected 2 input(s) ['a', 'b'], got 3"),
    ([B, A], "var_infer_graph: input 'a': expected shape [2, 4], got [2, 3]; "
             "var_infer_graph: input 'b': expected shape [2, 3], got [2, 4]"),
    ("a", "var_infer_graph: inputs must be a dict by name or a list, got str"),
]


@pytest.mark.parametrize("inputs, message", BAD_INPUTS)
def test_bad_inputs_give_the_checked_paths_messages(two_inputs: wrc.ModelBuffer, inputs: object,
                                                    message: str) -> None:
    b = load_bundle(two_inputs)
    b.init()
    for _ in range(2):  # before and after a good call made the fast path
        with pytest.raises(InputError) as e:
            b.infer(inputs)  # type: ignore[arg-type]
        assert str(e.value) == message
        with pytest.raises(InputError) as e:
            b.run("var_infer_graph", inputs)  # type: ignore[arg-type]
        assert str(e.value) == message
        b.infer({"a": A, "b": B})


def test_bad_output_graph_and_uninitialized_weights(two_inputs: wrc.ModelBuffer) -> None:
    b = load_bundle(two_inputs)
    good = {"a": A, "b": B}
    with pytest.raises(wrc.RuntimeStateError) as e:
        b.infer(good)
    assert str(e.value) == "var_infer_graph: uninitialized variable(s) s_var, w_var; call init()"
    b.init()
    b.infer(good)
    with pytest.raises(InputError) as e:
        b.infer(good, output="nope")
    assert str(e.value) == "output must be one of 'numpy', 'device', got 'nope'"
    with pytest.raises(InputError) as e:
        b.run("nope", good)
    assert str(e.value) == ("no graph 'nope' in this bundle "
                            "(graphs: var_infer_graph, var_update_graph, var_init_graph)")
    with pytest.raises(InputError, match=r"no graph \['x'\]"):
        b.run(["x"], good)  # type: ignore[arg-type]
    assert b.infer(good, output="device")[0].tobytes() == b.infer(good)[0].tobytes()


def test_floating_point_errors_stay_quiet_and_errstate_is_restored(two_inputs: wrc.ModelBuffer) -> None:
    b = load_bundle(two_inputs)
    b.update({"w": W, "s": np.array(0.0, F32)})  # x / 0: inf and nan, no warning
    before = np.geterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = b.infer({"a": A, "b": B})[0]
        assert np.isinf(y).any() and np.isnan(y).any()
    assert np.geterr() == before
    snap, info, globals_, _ = b._reader_globals  # noqa: SLF001 - the generated code then misses a global,
    del globals_["w_var"]
    b._reader_globals = (snap, info, globals_, None)  # noqa: SLF001 - when it binds them again
    with pytest.raises(InputError, match="needs global 'w_var'"):
        b.infer({"a": A, "b": B})
    assert np.geterr() == before


def test_with_version_reports_the_version_whose_weights_computed_the_outputs() -> None:
    b = load_bundle(model())
    sets = {"a": {"const_1": W1, "const_2": np.array(2.0, F32)},
            "b": {"const_1": -2 * W1, "const_2": np.array(-0.5, F32)}}
    outputs = {k: expected(X, w["const_1"], w["const_2"]) for k, w in sets.items()}
    version_of: dict[int, str] = {}
    seen: dict[int, threading.Event] = {}

    def write() -> None:
        for i in range(40):
            v = b.stage(sets["ab"[i % 2]])
            version_of[v], seen[v] = "ab"[i % 2], threading.Event()  # known before it is live
            b.commit(v)
            assert seen[v].wait(10), f"no reader saw version {v} within 10 s"

    def read_once() -> str | None:
        (y,), v = b.infer({"x": X}, with_version=True)
        key = version_of[v]
        if v in seen:
            seen[v].set()
        return None if np.allclose(y, outputs[key], rtol=1e-6) else f"version {v} ({key}) computed {y}"

    b.update(sets["a"])
    version_of[b.version] = "a"
    failures = race(write, read_once, readers=3)
    assert not failures, failures[:3]
    assert len(seen) == 40 and all(e.is_set() for e in seen.values())


def test_the_weights_are_bound_once_per_version(two_inputs: wrc.ModelBuffer) -> None:
    """The fast path binds what the generated code reads of its globals (`reader`'s `bind`:
    the weights' arrays and views) once per live version: again after a commit or a
    rollback, not after a stage, and every result is the live version's."""
    b = load_bundle(two_inputs)
    binds: list[str] = []
    real = b._compiled.reader  # noqa: SLF001 - counting the binds

    def reader(name: str):  # type: ignore[no-untyped-def]
        bind, call = real(name)
        return (lambda g: binds.append(name) or bind(g)), call

    b._compiled.reader = reader  # noqa: SLF001
    b.init()
    assert binds == ["var_infer_graph"]  # init's warm-up runs as infer does: the live version bound
    for _ in range(3):
        np.testing.assert_allclose(b.infer([A, B])[0], want(A, B), rtol=1e-6)
    assert binds == ["var_infer_graph"]
    w2 = -2 * W
    v = b.stage({"w": w2, "s": np.array(w2.sum(), F32)})
    np.testing.assert_allclose(b.infer([A, B])[0], want(A, B), rtol=1e-6)  # staged: not live
    assert len(binds) == 1
    b.commit(v)
    for _ in range(2):
        np.testing.assert_allclose(b.infer([A, B])[0], want(A, B, w2, float(w2.sum())), rtol=1e-6)
    assert len(binds) == 2
    b.rollback()
    np.testing.assert_allclose(b.infer([A, B])[0], want(A, B), rtol=1e-6)
    assert len(binds) == 3
