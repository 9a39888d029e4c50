"""Weight versions of one bundle: stage / commit / rollback, `version`, `infer(with_version=True)`.

The model is test_hoist's LoRA + BatchNorm layer: two derive functions of
`ge-hoist-weight-only` compute weight-only values, so a staged version must include them.
"""

from __future__ import annotations

import time
import weakref
from collections import defaultdict

import numpy as np
import pytest
from readers import race
from test_hoist import REFRESHABLE, X, build, reference, spy_runs, weights

from wrc.abi import UPDATE_GRAPH
from wrc.errors import InputError, RuntimeStateError, VersionError
from wrc.model_buffer import ModelBuffer
from wrc.runtime import Bundle, load_bundle


@pytest.fixture(scope="module")
def model() -> ModelBuffer:
    return build()


def _close(y: np.ndarray, seed: int) -> None:
    np.testing.assert_allclose(y, reference(X, weights(seed)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "interp"])
def test_stage_leaves_infer_alone_and_commit_switches(model: ModelBuffer, backend: str) -> None:
    b = load_bundle(model, backend)
    assert b.version == 0
    b.init()
    assert b.version == 1
    y0 = b.infer({"x": X})[0]
    _close(y0, 0)
    calls = spy_runs(b)
    v = b.stage(weights(1))
    assert v == 2 and b.version == 1
    assert calls[0] == UPDATE_GRAPH and len(calls) == 3, calls  # the update graph, both derives
    y, served = b.infer({"x": X}, with_version=True)
    assert served == 1 and np.array_equal(y[0], y0)
    calls.clear()
    b.commit(v)
    assert calls == [] and b.version == v  # a switch: nothing is computed
    y, served = b.infer({"x": X}, with_version=True)
    assert served == v
    _close(y[0], 1)
    b.commit(v)  # the live version again: nothing to do
    assert b.version == v
    with pytest.raises(InputError, match="output must be one of"):
        b.infer({"x": X}, output="host", with_version=True)


def test_rollback_is_bit_identical_and_copies_nothing(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.update(weights(1))
    v1, y1, w1 = b.version, b.infer({"x": X})[0], b.weights()
    held = {k: id(a) for k, a in w1.items()}
    del w1
    v2 = b.stage(weights(2))
    b.commit(v2)
    _close(b.infer({"x": X})[0], 2)
    calls = spy_runs(b)
    assert b.rollback() == v1 and b.version == v1
    assert calls == []
    y, served = b.infer({"x": X}, with_version=True)
    assert served == v1 and np.array_equal(y[0], y1)
    back = b.weights()
    assert {k: id(a) for k, a in back.items()} == held  # the retained arrays themselves
    for k in REFRESHABLE:
        assert np.array_equal(back[k], weights(1)[k])
    with pytest.raises(VersionError, match=r"rollback\(\): no previous version is retained"):
        b.rollback()


def test_update_is_stage_and_commit(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.init()
    staged = b.stage(weights(1))
    b.update(weights(2))  # a writer between stage and commit: the staged version is gone
    assert b.version == staged + 1
    _close(b.infer({"x": X})[0], 2)
    with pytest.raises(VersionError, match=rf"commit\({staged}\): version {staged} is no longer staged"):
        b.commit(staged)
    assert b.rollback() == 1  # update retained the version it replaced
    _close(b.infer({"x": X})[0], 0)


def test_commit_of_an_unknown_or_stale_version(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.init()
    with pytest.raises(VersionError, match=r"commit\(99\): no such version \(live: version 1; nothing is staged\)"):
        b.commit(99)
    with pytest.raises(VersionError, match="takes a version number from stage"):
        b.commit("2")  # type: ignore[arg-type]
    first = b.stage(weights(1))
    second = b.stage(weights(2))
    with pytest.raises(VersionError, match=rf"no longer staged \(live: version 1; staged: version {second}\)"):
        b.commit(first)
    assert isinstance(VersionError("x"), RuntimeStateError)
    b.commit(second)
    _close(b.infer({"x": X})[0], 2)
    with pytest.raises(VersionError, match="no longer staged"):
        b.commit(first)
    b.rollback()
    with pytest.raises(VersionError, match="no longer staged"):
        b.commit(second)  # rolled back from: not retained


def _state(b: Bundle) -> tuple[int, np.ndarray, dict[str, np.ndarray]]:
    return b.version, b.infer({"x": X})[0], {k: a.copy() for k, a in b.weights().items()}


def _same(a: tuple[int, np.ndarray, dict[str, np.ndarray]], b: tuple[int, np.ndarray, dict[str, np.ndarray]]) -> None:
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    assert a[2].keys() == b[2].keys() and all(np.array_equal(a[2][k], b[2][k]) for k in a[2])


def test_a_stage_that_fails_its_checks_changes_nothing(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.update(weights(1))
    b.update(weights(2))
    staged = b.stage(weights(3))
    before = _state(b)
    bad_shape = {**weights(4), "w": np.zeros((2, 2), np.float32)}
    bad_dtype = {**weights(4), "gamma": weights(4)["gamma"].astype(np.float64)}
    for bad, message in [({"nope": np.zeros(1, np.float32)}, "unknown weight 'nope'"),
                         (bad_shape, "'w'.*shape"), (bad_dtype, "'gamma'.*dtype"), ([1], "takes a mapping")]:
        with pytest.raises(InputError, match=message):
            b.stage(bad)  # type: ignore[arg-type]
        _same(_state(b), before)
    b.commit(staged)  # still staged
    _close(b.infer({"x": X})[0], 3)


def test_an_exception_while_staging_changes_nothing_served(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.update(weights(1))
    before = _state(b)
    compiled = b._compiled  # noqa: SLF001 - a derive function that fails
    real = compiled.run

    def run(name: str, *args: object) -> list[np.ndarray]:
        if name.startswith("wrc.derive."):
            raise MemoryError("injected")
        return real(name, *args)

    compiled.run = run  # type: ignore[method-assign]
    with pytest.raises(MemoryError, match="injected"):
        b.stage(weights(2))
    with pytest.raises(MemoryError, match="injected"):
        b.update(weights(2))
    _same(_state(b), before)
    with pytest.raises(VersionError, match="no such version|no longer staged"):
        b.commit(before[0] + 1)
    compiled.run = real  # type: ignore[method-assign]
    b.commit(b.stage(weights(2)))
    _close(b.infer({"x": X})[0], 2)


def test_never_more_than_two_weight_sets(model: ModelBuffer) -> None:
    """Stage reuses the arrays of the version it gives up: per variable (derived ones
    included) two arrays in all, however many versions come and go."""
    b = load_bundle(model)
    b.update(weights(0))
    arrays: dict[str, list[weakref.ref[np.ndarray]]] = defaultdict(list)

    def note() -> None:
        snap = b._snapshot  # noqa: SLF001 - the arrays of the live version
        for var, arr in snap.items():
            if not any(r() is arr for r in arrays[var]):
                arrays[var].append(weakref.ref(arr))
        del snap

    note()
    for i in range(1, 9):
        v = b.stage(weights(i))
        if i % 3 == 0:  # give a staged version up without committing it
            v = b.stage(weights(i + 100))
        b.commit(v)
        b.infer({"x": X})
        note()
        if i % 4 == 0:
            b.rollback()
            note()
    assert len(arrays) == len(REFRESHABLE) + 2  # the weights and the two derived variables
    for var, refs in arrays.items():
        assert len(refs) == 2 and all(r() is not None for r in refs), var


def test_concurrent_readers_never_see_a_mixed_version(model: ModelBuffer) -> None:
    """Readers check each result bit for bit against the one of the version it reports,
    while a writer stages, commits and rolls back."""
    seeds = list(range(100, 112))
    single = load_bundle(model)
    expected_by_seed = {}
    for s in seeds:
        single.update(weights(s))
        y = single.infer({"x": X})[0]
        _close(y, s)
        expected_by_seed[s] = y
    assert len({y.tobytes() for y in expected_by_seed.values()}) == len(seeds)

    b = load_bundle(model)
    b.update(weights(seeds[0]))
    seed_of = {b.version: seeds[0]}  # version → the weights it holds
    failures: list[str] = []
    seen: set[int] = set()
    served_again: set[int] = set()  # versions rolled back to

    def served(v: int) -> None:  # a reader sees each version before the next
        deadline = time.monotonic() + 10
        while v not in seen and time.monotonic() < deadline and not failures:
            time.sleep(0.0005)

    def write() -> None:
        for rounds in range(60):
            s = seeds[rounds % len(seeds)]
            v = b.stage(weights(s))
            seed_of[v] = s  # before any reader can see it
            b.commit(v)
            served(v)
            if rounds % 5 == 4:
                back = b.rollback()
                served_again.add(back)
                seen.discard(back)
                served(back)

    def read() -> str | None:
        (y,), v = b.infer({"x": X}, with_version=True)
        if not np.array_equal(y, expected_by_seed[seed_of[v]]):
            return f"version {v}: a result of other weights"
        seen.add(v)
        return None

    race(write, read, failures=failures)
    assert not failures, failures[:3]
    assert set(range(2, 62)) <= seen and served_again <= seen, (sorted(seen), served_again - seen)


@pytest.mark.parametrize("backend", ["numpy", "interp"])
def test_stage_without_copy_adopts_the_arrays(model: ModelBuffer, backend: str) -> None:
    """copy=False: the version's weights are read-only views of the arrays given (no update
    graph run), its derived values computed as with a copy; the caller's arrays unchanged."""
    b = load_bundle(model, backend)
    b.update(weights(1))
    y1 = b.infer({"x": X})[0]
    src = weights(2)
    kept = {k: a.copy() for k, a in src.items()}
    calls = spy_runs(b)
    v = b.stage(src, copy=False)
    assert sorted(calls) == ["wrc.derive.0", "wrc.derive.1"], calls  # derives only: no copies
    y, served = b.infer({"x": X}, with_version=True)
    assert served == v - 1 and np.array_equal(y[0], y1)
    b.commit(v)
    y2 = b.infer({"x": X})[0]
    _close(y2, 2)
    live = b.weights()
    for k, a in src.items():
        assert np.shares_memory(live[k], a) and not live[k].flags.writeable, k
        assert a.flags.writeable and np.array_equal(a, kept[k]), k  # never written, flags kept
    del live
    assert b.rollback() == v - 1 and np.array_equal(b.infer({"x": X})[0], y1)
    b.update(src, copy=False)  # update adopts too
    assert np.array_equal(b.infer({"x": X})[0], y2)


def test_arrays_that_cannot_be_adopted_change_nothing(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.update(weights(1))
    staged = b.stage(weights(2))
    before = _state(b)
    w = weights(3)
    raw = bytearray(w["gamma"].nbytes + 1)
    misaligned = np.frombuffer(raw, np.float32, len(w["gamma"]), offset=1)
    misaligned[...] = w["gamma"]
    for bad, message in [({**w, "w": np.asfortranarray(w["w"])}, r"'w': copy=False needs a C-contiguous array"),
                         ({**w, "gamma": misaligned}, "'gamma': copy=False needs an array aligned for float32"),
                         ({**w, "lora_a": w["lora_a"][::2]}, r"'lora_a'.*shape"),
                         ({**w, "nope": w["w"]}, "unknown weight 'nope'")]:
        with pytest.raises(InputError, match=message):
            b.stage(bad, copy=False)
        with pytest.raises(InputError, match=message):
            b.update(bad, copy=False)
        _same(_state(b), before)
    b.commit(staged)  # still staged
    _close(b.infer({"x": X})[0], 2)
    assert b.rollback() == before[0]
    b.update({**w, "gamma": misaligned})  # a copy takes it
    _close(b.infer({"x": X})[0], 3)


def test_a_bundle_whose_update_graph_computes_cannot_adopt() -> None:
    """copy=False stands for running the update graph only when that graph copies each given
    weight whole: here const_2 is written even when not given (no `scf.if`), so it is refused."""
    from test_runtime import W1, W2, level3
    from xdsl.parser import Parser

    from wrc.context import make_context

    guarded = """    scf.if %p1 {
      %v2 = memref.get_global @const_2_var : memref<f32>
      "memref.copy"(%d1, %v2) : (memref<f32>, memref<f32>) -> ()
    }"""
    text = level3(True)
    assert guarded in text
    text = text.replace(guarded, """    %v2 = memref.get_global @const_2_var : memref<f32>
    "memref.copy"(%d1, %v2) : (memref<f32>, memref<f32>) -> ()""")
    b = load_bundle(ModelBuffer(Parser(make_context(), text).parse_module(),
                                ("var_infer_graph", "var_init_graph", "var_update_graph"), {"const_1": W1, "const_2": W2}))
    b.init()
    version, values = b.version, {k: a.copy() for k, a in b.weights().items()}
    for method in (b.stage, b.update):
        with pytest.raises(InputError, match=rf"^{method.__name__}\(copy=False\): this bundle cannot adopt weight "
                                             r"arrays: its 'var_update_graph' computes more than copies of the "
                                             r"weights; use copy=True$"):
            method({"const_1": W1 * 2, "const_2": np.array(2, np.float32)}, copy=False)
    assert b.version == version and all(np.array_equal(a, values[k]) for k, a in b.weights().items())


def test_adopted_arrays_live_as_long_as_a_version_holds_them(model: ModelBuffer) -> None:
    """The caller's arrays stay alive while the live, staged or previous version holds
    them, and are let go when it is retired; the bundle keeps no weight arrays of its own."""
    b = load_bundle(model)
    b.update(weights(1))
    owned = {k: weakref.ref(a) for k, a in b.weights().items()}  # the bundle's own copies
    src = weights(2)
    adopted = [weakref.ref(a) for a in src.values()]
    b.commit(b.stage(src, copy=False))
    del src
    assert all(r() is not None for r in adopted)
    b.release()  # gives up the previous version, the bundle's own arrays: freed, not kept
    assert all(r() is None for r in owned.values())
    with pytest.raises(VersionError, match="no previous version is retained"):
        b.rollback()
    b.commit(b.stage(weights(3), copy=False))
    assert all(r() is not None for r in adopted)  # the previous version
    b.stage(weights(4), copy=False)  # gives it up
    assert all(r() is None for r in adopted)
    _close(b.infer({"x": X})[0], 3)
