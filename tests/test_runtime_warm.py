"""init() shares the stored constants instead of copying them, and a bundle warms its infer
graph once when its weights are first set (wrc/runtime.py; docs/performance.md, first calls
and memory). Uses the hand-written bundle of test_runtime.py."""

from __future__ import annotations

import numpy as np
import pytest
from test_hoist import spy_runs
from test_runtime import W1, W2, X, backend, check, model  # noqa: F401 - backend: a fixture

from wrc.abi import constant_copies, module_funcs, module_globals
from wrc.bundle_format import write_bundle
from wrc.runtime import Bundle, load_bundle

F32 = np.float32


def test_constant_copies_recognizes_only_pure_init_graphs() -> None:
    module = model().module
    funcs, globals_ = module_funcs(module), module_globals(module)
    assert constant_copies(funcs["var_init_graph"], globals_) == {"const_1_var": "const_1", "const_2_var": "const_2"}
    assert constant_copies(funcs["var_update_graph"], globals_) is None  # arguments, scf.if
    assert constant_copies(funcs["var_infer_graph"], globals_) is None  # computes


def test_init_shares_the_constants_and_updates_never_write_them(backend: str) -> None:  # noqa: F811
    mb = model()
    original = W1.copy()
    b = Bundle(mb, backend=backend)
    b.init()
    assert np.shares_memory(b.weights()["const_1"], mb.weights["const_1"])  # no copy made
    check(b.infer({"x": X}), W1, W2)
    for k in range(4):  # more updates than buffers per variable: the spare ones rotate
        w = W1 * (k + 2)
        b.update({"const_1": w})
        check(b.infer({"x": X}), w, W2)
    np.testing.assert_array_equal(W1, original)
    b.init()
    check(b.infer({"x": X}), W1, W2)
    b.update({"const_2": np.array(-1.0, F32)})  # a partial update copies the shared old value
    check(b.infer({"x": X}), W1, np.array(-1.0, F32))


def test_init_after_updates_restores_a_bundle_file(backend: str, tmp_path) -> None:  # noqa: F811
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    b = load_bundle(path, backend=backend)
    b.init()
    for k in range(3):
        b.update({"const_1": -W1 * k, "const_2": np.array(k, F32)})
    b.init()
    check(b.infer({"x": X}), W1, W2)
    assert not b.weights()["const_1"].flags.writeable


@pytest.mark.parametrize("name, warms", [("numpy", True), ("interp", False)])
def test_init_warms_the_infer_graph_once(name: str, warms: bool) -> None:
    b = Bundle(model(), backend=name)
    calls = spy_runs(b)
    b.init()
    assert calls == (["var_infer_graph"] if warms else [])  # the init graph itself is not run
    b.update({"const_1": -W1})
    b.init()
    check(b.infer({"x": X}), W1, W2)
    assert calls.count("var_infer_graph") == (2 if warms else 1)


def test_weight_stripped_bundle_warms_at_its_first_complete_update() -> None:
    b = Bundle(model(init=False), backend="numpy")
    calls = spy_runs(b)
    b.update({"const_1": W1})  # const_2 still unset: infer cannot run yet
    assert "var_infer_graph" not in calls
    b.update({"const_2": W2})
    assert calls.count("var_infer_graph") == 1
    b.update({"const_2": W2})
    check(b.infer({"x": X}), W1, W2)
    assert calls.count("var_infer_graph") == 2


def test_init_prepares_the_update_graph_so_the_first_update_does_not_make_it(tmp_path) -> None:
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    for _ in range(2):  # a cold load (generated now), then a load cache hit (decoded when made)
        b = load_bundle(path, backend="numpy")
        made = b._compiled._fns  # the functions made so far, by name
        assert "var_update_graph" not in made
        b.init()
        assert "var_update_graph" in made and "var_infer_graph" in made
        b.update({"const_1": -W1})
        check(b.infer({"x": X}), -W1, W2)


def test_the_warm_up_makes_the_arena_the_first_infer_uses() -> None:
    b = Bundle(model(), backend="numpy")
    fns = b._compiled._fns  # the generated functions, looked up at each call
    made = fns["var_infer_graph"]
    arenas = []
    fns["var_infer_graph"] = made._replace(scratch=lambda: arenas.append(made.scratch()) or arenas[-1])
    b.init()
    assert len(arenas) == 1  # the warm-up's, kept in the infer graph's pool
    for _ in range(3):
        check(b.infer({"x": X}), W1, W2)
    assert len(arenas) == 1  # no call made another (nor paged in new temporaries)
