"""`pipeline.paused_gc`: compiles run with the cyclic GC paused (linear compile time, see
docs/performance.md), and the collector's state is always given back."""

import gc
import threading
import weakref

from wrc import pipeline
from wrc.bundle_format import bundle_bytes


def test_paused_gc_nests_and_restores():
    assert gc.isenabled()
    with pipeline.paused_gc():
        assert not gc.isenabled()
        with pipeline.paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_paused_gc_keeps_a_disabled_collector_disabled():
    gc.disable()
    try:
        with pipeline.paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_paused_gc_restores_on_error():
    try:
        with pipeline.paused_gc():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()


def test_paused_gc_overlapping_threads():
    inside, release = threading.Barrier(3), threading.Event()

    def work():
        with pipeline.paused_gc():
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    assert not gc.isenabled()
    release.set()
    for t in threads:
        t.join()
    assert gc.isenabled()


class _Node:
    """A reference cycle, as xDSL IR is made of."""

    def __init__(self) -> None:
        self.me = self


def _in_generation(obj: object, generation: int) -> bool:
    return any(o is obj for o in gc.get_objects(generation))


def test_a_pause_hands_its_survivors_to_the_oldest_generation():
    with pipeline.paused_gc():
        kept = _Node()
        dropped = weakref.ref(_Node())  # garbage made in the pause
    assert _in_generation(kept, 2) and not _in_generation(kept, 0)
    assert dropped() is not None  # its cycle waits for a full collection...
    gc.collect()
    assert dropped() is None  # ...which frees it
    assert _in_generation(kept, 2)


def test_promoting_past_the_limit_runs_a_full_collection(monkeypatch):
    monkeypatch.setattr(pipeline, "PROMOTED_LIMIT", 0)
    full = gc.get_stats()[-1]["collections"]
    with pipeline.paused_gc():
        dropped = weakref.ref(_Node())
    assert dropped() is None
    assert gc.get_stats()[-1]["collections"] > full


def test_a_frozen_heap_stays_frozen():
    frozen = _Node()
    gc.freeze()  # as a server does before forking
    try:
        count = gc.get_freeze_count()
        with pipeline.paused_gc():
            young = _Node()
        assert gc.get_freeze_count() == count and not _in_generation(young, 2)
        assert not any(_in_generation(frozen, g) for g in range(3))
    finally:
        gc.unfreeze()


def test_build_and_load_pause_the_collector_and_give_it_back(monkeypatch):
    import numpy as np

    import wrc

    seen: list[bool] = []
    real = pipeline.paused_gc

    def spy():
        seen.append(gc.isenabled())
        return real()

    monkeypatch.setattr(pipeline, "paused_gc", spy)
    g = wrc.Graph("g")
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    g.output(g.relu(g.matmul(g.data("x", (1, 2)), g.const("w", w))))
    with wrc.BuildSession():
        gs = wrc.convert_to_weight_refreshable_graphs(g, ["w"])
        model = wrc.bundle_build_model([gs.infer_graph, gs.var_init_graph, gs.var_update_graph])
    bundle = wrc.load_bundle(bundle_bytes(model))
    bundle.init()
    out = bundle.infer([np.ones((1, 2), np.float32)])[0]
    np.testing.assert_array_equal(out, np.maximum(np.ones((1, 2), np.float32) @ w, 0))
    assert seen and gc.isenabled()  # convert, build and load each paused it


def test_builds_do_not_keep_modules_alive():
    """`ge.lookup_variable`'s per-module cache must not keep its modules alive (a leak that
    made every later compile in the process slower)."""
    import numpy as np

    import wrc
    from wrc.dialects import ge

    def build_once() -> None:
        g = wrc.Graph("g")
        g.output(g.relu(g.matmul(g.data("x", (1, 2)), g.const("w", np.ones((2, 3), np.float32)))))
        with wrc.BuildSession():
            gs = wrc.convert_to_weight_refreshable_graphs(g, ["w"])
            wrc.bundle_build_model([gs.infer_graph, gs.var_init_graph, gs.var_update_graph])

    build_once()
    gc.collect()
    before = len(ge._VARIABLES)
    build_once()
    build_once()
    gc.collect()
    assert len(ge._VARIABLES) <= before
