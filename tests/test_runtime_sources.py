"""Sources that only derive functions read, dropped once derived from (wrc/runtime.py `_InFile`;
docs/performance.md "Issue 12: memory (session 6)"): a bundle loaded from a file holds its
derived values, not the stored initial values they came from, and reads those again from the
file, checked against the digests seen at load, when an update, a rollback or `weights()`
needs them. Uses test_hoist.py's model: W' = (W.T + A @ B * s) * k from {w, lora_a, lora_b,
gamma, var} and a shift from {gamma, var}: every refreshable weight is such a source."""

from __future__ import annotations

import numpy as np
import pytest
from test_hoist import REFRESHABLE, X, build, graph, reference, weights

import wrc
import wrc.runtime
from wrc.bundle_format import Container, StoredWeights, bundle_bytes, read_bundle, write_bundle
from wrc.errors import RuntimeStateError
from wrc.runtime import Bundle, _InFile, load_bundle, prefault_budget


def fresh_output(w: dict[str, np.ndarray], backend: str = "numpy") -> bytes:
    """The infer output of a bundle built with `w` as its initial weights (no update)."""
    with wrc.BuildSession():
        gs = wrc.convert_to_weight_refreshable_graphs(graph(w), REFRESHABLE)
        model = wrc.bundle_build_model([gs.infer_graph, gs.var_update_graph, gs.var_init_graph])
    b = Bundle(model, backend)
    b.init()
    return b.infer({"x": X})[0].tobytes()


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "m.wrcb"
    write_bundle(p, build())
    return p


def spy_reads(monkeypatch) -> list[list[str]]:
    """The names of each read of stored weights from now on (one list per read)."""
    reads: list[list[str]] = []
    real = Container.read_weights
    monkeypatch.setattr(Container, "read_weights", lambda self, names=None: reads.append(sorted(names or ()))
                        or real(self, names))
    return reads


def loaded(path, backend: str = "numpy") -> Bundle:
    b = load_bundle(path, backend)
    b.init()
    return b


def test_sources_are_dropped_after_init_and_read_back_bit_for_bit(path) -> None:
    b = loaded(path)
    snap = b._snapshot
    assert sorted(v for v, a in snap.items() if type(a) is _InFile) == sorted(f"{n}_var" for n in REFRESHABLE)
    assert not set(b.model.weights) & {a.const for a in snap.values() if type(a) is _InFile}  # memory let go
    assert b.infer({"x": X})[0].tobytes() == fresh_output(weights(0))
    w = b.weights()
    assert {k: a.tobytes() for k, a in w.items()} == {k: a.tobytes() for k, a in weights(0).items()}
    assert not any(a.flags.writeable for a in w.values())
    assert all(v.initialized for v in b.variables.values())


@pytest.mark.parametrize("subset", [["gamma"], ["var"], ["lora_a"], ["w", "gamma"], REFRESHABLE])
def test_partial_updates_after_dropping_equal_a_fresh_build(path, subset) -> None:
    b = loaded(path)
    new = weights(1)
    b.update({k: new[k] for k in subset})
    expected = {**weights(0), **{k: new[k] for k in subset}}
    assert b.infer({"x": X})[0].tobytes() == fresh_output(expected)
    np.testing.assert_allclose(b.infer({"x": X})[0], reference(X, expected), rtol=1e-5, atol=1e-5)
    assert {k: a.tobytes() for k, a in b.weights().items()} == {k: a.tobytes() for k, a in expected.items()}


def test_interp_and_numpy_agree_after_a_partial_update(path) -> None:
    outs = []
    for backend in ("numpy", "interp"):
        b = loaded(path, backend)
        b.update({"gamma": weights(2)["gamma"]})
        outs.append(b.infer({"x": X})[0])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6, atol=1e-6)


def test_each_derive_reads_only_its_own_sources_from_the_file(path, monkeypatch) -> None:
    b = loaded(path)
    reads = spy_reads(monkeypatch)
    opened = []
    real = StoredWeights.reader
    monkeypatch.setattr(StoredWeights, "reader", lambda self: opened.append(1) or real(self))
    b.update({"lora_b": weights(3)["lora_b"]})  # only W' reads lora_b: w, lora_a, gamma, var from the file
    assert reads == [sorted(b._in_file[f"{n}_var"].const for n in ("w", "lora_a", "gamma", "var"))]
    reads.clear()
    b.update({"var": weights(3)["var"]})  # both derive functions: one read each, never all at once
    assert len(reads) == 2 and all(len(r) < len(REFRESHABLE) for r in reads), reads
    assert len(opened) == 2  # the file opened (and its header checked) once per update


def test_rollback_and_init_after_partial_updates_are_bit_identical(path) -> None:
    b = loaded(path)
    y0, w0 = b.infer({"x": X})[0].tobytes(), {k: a.tobytes() for k, a in b.weights().items()}
    b.update({"gamma": weights(4)["gamma"]})
    y1 = b.infer({"x": X})[0].tobytes()
    assert y1 != y0
    b.rollback()
    assert b.infer({"x": X})[0].tobytes() == y0
    assert {k: a.tobytes() for k, a in b.weights().items()} == w0
    b.update(weights(5))
    b.update({"w": weights(6)["w"]})
    b.init()
    assert b.infer({"x": X})[0].tobytes() == y0
    assert all(type(b._snapshot[f"{n}_var"]) is _InFile for n in REFRESHABLE)  # dropped again


def test_a_file_changed_after_load_is_refused_and_nothing_changes(path) -> None:
    b = loaded(path)
    y, version = b.infer({"x": X})[0].tobytes(), b.version
    data = bytearray(path.read_bytes())
    at = bytes(data).index(weights(0)["w"].tobytes())
    data[at + 3] ^= 1  # one byte of w flipped, the header (and its digest) intact
    path.write_bytes(bytes(data))
    with pytest.raises(RuntimeStateError, match=r"(?s)w_var.*dropped from memory.*sha256 mismatch.*Load the bundle"):
        b.update({"gamma": weights(7)["gamma"]})
    with pytest.raises(RuntimeStateError, match="weights\\(\\).*sha256 mismatch"):
        b.weights()
    assert b.infer({"x": X})[0].tobytes() == y and b.version == version
    b.update(weights(8))  # a full update reads nothing from the file
    assert b.infer({"x": X})[0].tobytes() == fresh_output(weights(8))
    other = build()
    write_bundle(path, type(other)(other.module, other.graphs, {**other.weights, "w": -other.weights["w"]}))  # a new digest
    b.rollback()
    with pytest.raises(RuntimeStateError, match="changed since it was loaded"):
        b.update({"lora_a": weights(9)["lora_a"]})
    assert b.infer({"x": X})[0].tobytes() == y
    path.unlink()
    with pytest.raises(RuntimeStateError, match="cannot open"):
        b.weights()


def test_bundles_from_bytes_keep_their_sources(path) -> None:
    b = load_bundle(bundle_bytes(build()))
    b.init()
    assert not b._in_file and not any(type(a) is _InFile for a in b._snapshot.values())


def test_prefault_budget_leaves_the_memory_target_its_reserve() -> None:
    ratio, slack = wrc.runtime.MEMORY_TARGET
    mb = 1_000_000
    assert prefault_budget(0, 0) == slack - wrc.runtime.PREFAULT_RESERVE  # 40 MB: under the cap
    assert prefault_budget(1000 * mb, 0) == wrc.runtime.PREFAULT_BYTES  # the cap
    w = 100 * mb  # ResNet-50's size: held = 1.9 x the weights (sources and folded copies)
    assert prefault_budget(w, 190 * mb) == 0
    assert prefault_budget(w, 120 * mb) == int(ratio * w) + slack - wrc.runtime.PREFAULT_RESERVE - 120 * mb  # 50 MB
    # Measured growth since the load began replaces what is held and the reserve:
    assert prefault_budget(w, 190 * mb, grown=150 * mb) == int(ratio * w) + slack - 150 * mb - wrc.runtime.PREFAULT_MARGIN
    assert prefault_budget(w, 0, grown=300 * mb) == 0
    assert prefault_budget(1000 * mb, 0, grown=0) == wrc.runtime.PREFAULT_BYTES


def test_init_maps_ahead_no_more_than_the_budget_of_what_it_holds(path, monkeypatch) -> None:
    held = []
    real = wrc.runtime.prefault_budget
    monkeypatch.setattr(wrc.runtime, "prefault_budget", lambda w, h, g: held.append((w, h, g)) or real(w, h, g))
    b = loaded(path)
    (w, h, g), = held
    assert w == sum(a.nbytes for a in weights(0).values()) + sum(  # every stored weight
        a.nbytes for k, a in build().weights.items() if k not in weights(0))
    assert h == b._held_bytes() - sum(a.nbytes for a in b._spare.values())  # derived values, not the sources
    assert isinstance(g, int)  # loaded from a file on Linux: the process's growth is measured
    held.clear()
    b = Bundle(read_bundle(path))  # not through load_bundle: nothing measured, the reserve kept
    b.init()
    assert held[0][2] is None
    monkeypatch.setattr(wrc.runtime, "MEMORY_TARGET", (0.0, wrc.runtime.PREFAULT_RESERVE + h + 1))  # 1 byte
    b = Bundle(read_bundle(path))
    b.init()
    assert not b._spare


def test_init_maps_ahead_what_the_target_leaves_after_the_loads_growth(path, monkeypatch) -> None:
    sizes = []
    real = wrc.runtime.prefault_budget
    monkeypatch.setattr(wrc.runtime, "prefault_budget", lambda w, h, g: sizes.append(real(w, h, g)) or sizes[-1])
    readings = iter([1000, 1000 + 5_000])  # resident bytes when the load began, then after the warm-up
    monkeypatch.setattr(wrc.runtime, "resident", lambda: next(readings))
    b = loaded(path)
    ratio, slack = wrc.runtime.MEMORY_TARGET
    out = sum(a.nbytes for a in b.infer({"x": X}))  # an infer's outputs, made anew at each call
    assert b._output_bytes == out > 0
    assert sizes == [min(wrc.runtime.PREFAULT_BYTES,
                         int(ratio * b._weight_bytes) + slack - 5_000 - out - wrc.runtime.PREFAULT_MARGIN)]
    assert b._spare  # room under the target: the first update's buffers mapped
    readings = iter([1000, 1000 + int(ratio * b._weight_bytes) + slack])  # the load took all of it
    b = loaded(path)
    assert sizes[-1] == 0 and not b._spare


def test_a_second_init_reads_nothing_from_the_file(path, monkeypatch) -> None:
    b = loaded(path)
    y = b.infer({"x": X})[0].tobytes()
    reads = spy_reads(monkeypatch)
    b.init()  # the sources are the same `_InFile` values: their derived values stay as they are
    assert reads == [] and b.infer({"x": X})[0].tobytes() == y


def test_sources_can_be_kept(path, monkeypatch) -> None:
    monkeypatch.setattr(wrc.runtime, "DROP_SOURCES", False)
    b = loaded(path)
    assert not any(type(a) is _InFile for a in b._snapshot.values())
    reads = spy_reads(monkeypatch)
    b.update({"gamma": weights(1)["gamma"]})
    assert b.infer({"x": X})[0].tobytes() == fresh_output({**weights(0), "gamma": weights(1)["gamma"]})
    assert reads == []  # nothing read from the file
