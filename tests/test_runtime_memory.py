"""How many arrays a bundle holds per weight (wrc/runtime.py; docs/performance.md, issue 12):
a bundle read from a file drops a stored initial value once an update replaced it, recycles
its memory as the next update's buffer, and reads it again from the file on `init()`; `init()`
maps the first update's buffers ahead. Uses the hand-written bundle of test_runtime.py."""

from __future__ import annotations

import re

import numpy as np
import pytest
from readers import race
from test_runtime import W1, W2, X, backend, check, model  # noqa: F401 - backend: a fixture

import wrc
import wrc.runtime
from wrc.bundle_format import _Source, write_bundle
from wrc.errors import RuntimeStateError
from wrc.runtime import load_bundle

F32 = np.float32


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_init_after_updates_restores_the_file_values_bit_for_bit(backend, tmp_path) -> None:  # noqa: F811
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    b = load_bundle(path, backend=backend)
    b.init()
    first = b.infer({"x": X})[0]
    for k in range(3):
        b.update({"const_1": W1 * (k + 2), "const_2": np.array(k + 2, F32)})
    check(b.infer({"x": X}), W1 * 4, np.array(4, F32))
    b.init()
    w = b.weights()
    assert w["const_1"].tobytes() == W1.tobytes() and w["const_2"].tobytes() == W2.tobytes()
    assert b.infer({"x": X})[0].tobytes() == first.tobytes()
    assert b.model.weights["const_1"].tobytes() == W1.tobytes()  # read again into the model too
    assert not w["const_1"].flags.writeable


def test_updates_alternate_between_two_arrays_per_weight_the_initial_one_recycled(tmp_path) -> None:
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    b = load_bundle(path)
    b.init()
    initial = address(b.weights()["const_1"])
    seen = []
    for k in range(6):
        b.update({"const_1": W1 * (k + 2)})
        seen.append(address(b.weights()["const_1"]))
    assert len(set(seen)) == 2 and initial in seen  # A, then the initial array's memory, A, ...
    assert seen[0] != seen[1] and seen[::2] == seen[:1] * 3
    assert "const_1" not in b.model.weights and "const_2" in b.model.weights  # const_2 never updated
    check(b.infer({"x": X}), W1 * 7, W2)


def test_a_weight_held_by_the_caller_is_never_recycled(tmp_path) -> None:
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    b = load_bundle(path)
    b.init()
    held = b.weights()["const_1"]  # the initial value, still read by the caller
    for k in range(3):
        b.update({"const_1": W1 * (k + 2)})
        assert address(b.weights()["const_1"]) != address(held)
    assert held.tobytes() == W1.tobytes()


def test_init_needs_the_unchanged_file_only_after_an_update(tmp_path) -> None:
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    b = load_bundle(path)
    b.init()
    other = model()
    write_bundle(path, type(other)(other.module, other.graphs, {"const_1": -W1, "const_2": W2}))
    b.init()  # nothing released yet: the values are in memory
    check(b.infer({"x": X}), W1, W2)
    b.update({"const_1": W1 * 2})
    with pytest.raises(RuntimeStateError, match="const_1_var.*changed since it was loaded.*Load the bundle again"):
        b.init()
    check(b.infer({"x": X}), W1 * 2, W2)  # nothing changed
    path.unlink()
    with pytest.raises(RuntimeStateError, match="cannot open"):
        b.init()


def test_init_refuses_a_weight_tampered_with_after_load(tmp_path) -> None:
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    b = load_bundle(path)
    b.init()
    b.update({"const_1": W1 * 2})
    data = bytearray(path.read_bytes())
    at = bytes(data).index(W1.tobytes())
    data[at + 5] ^= 1  # the header (and its sha256) unchanged, one weight byte flipped
    path.write_bytes(bytes(data))
    with pytest.raises(RuntimeStateError, match="const_1_var.*sha256 mismatch"):
        b.init()
    check(b.infer({"x": X}), W1 * 2, W2)


def _updated_once(tmp_path) -> wrc.Bundle:
    """The bundle of `model()` loaded from a file, initialized, and const_1 updated to W1 * 2."""
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    b = load_bundle(path)
    b.init()
    b.update({"const_1": W1 * 2})
    return b


def test_init_after_an_update_reads_the_released_weights_not_the_ir(tmp_path, monkeypatch) -> None:
    b = _updated_once(tmp_path)
    sections = []
    for name in ("read", "read_array"):
        real = getattr(_Source, name)

        def spy(self, offset, nbytes, what, real=real):
            sections.append(what)
            return real(self, offset, nbytes, what)

        monkeypatch.setattr(_Source, name, spy)
    b.init()
    check(b.infer({"x": X}), W1, W2)
    assert "header" in sections and any("const_1" in s for s in sections), sections
    assert not [s for s in sections if "IR" in s], sections  # the header's digest covers the weights


def test_bundles_from_bytes_keep_their_initial_values(tmp_path) -> None:
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    b = load_bundle(path.read_bytes())
    b.init()
    for k in range(3):
        b.update({"const_1": W1 * (k + 2)})
    assert "const_1" in b.model.weights
    b.init()
    check(b.infer({"x": X}), W1, W2)


def test_init_maps_the_first_updates_buffers_within_its_budget(tmp_path, monkeypatch) -> None:
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    b = load_bundle(path)
    b.init()
    spare = {v: address(a) for v, a in b._spare.items()}
    assert set(spare) == {"const_1_var", "const_2_var"}
    b.update({"const_1": W1 * 2, "const_2": np.array(5, F32)})
    assert address(b.weights()["const_1"]) == spare["const_1_var"]  # written into the mapped one
    monkeypatch.setattr(wrc.runtime, "PREFAULT_BYTES", W1.nbytes - 1)  # room for const_2 only
    b = load_bundle(path)
    b.init()
    assert set(b._spare) == {"const_2_var"}


def test_init_map_ahead_chooses_how_much_of_the_first_update_is_mapped(tmp_path, monkeypatch) -> None:
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    monkeypatch.setattr(wrc.runtime, "PREFAULT_BYTES", 0)  # the memory target leaves no room
    for map_ahead, mapped in [("target", set()), ("all", {"const_1_var", "const_2_var"}), (0, set()),
                              (W1.nbytes - 1, {"const_2_var"}), (W1.nbytes + 4, {"const_1_var", "const_2_var"})]:
        b = load_bundle(path)
        b.init(map_ahead=map_ahead)
        assert set(b._spare) == mapped, map_ahead
        b.update({"const_1": W1 * 3})
        check(b.infer({"x": X}), W1 * 3, W2)


@pytest.mark.parametrize("bad", ["some", -1, 1.5, True, None])
def test_init_rejects_a_bad_map_ahead_before_it_changes_anything(tmp_path, bad) -> None:
    b = _updated_once(tmp_path)
    with pytest.raises(wrc.InputError, match=rf"^init\(map_ahead=\.\.\.\) takes 'target' or 'all' or a number "
                                             rf"of bytes >= 0, got {re.escape(repr(bad))}$"):
        b.init(map_ahead=bad)
    check(b.infer({"x": X}), W1 * 2, W2)  # not reset to the initial values


def _two_weights(path, n: int = 512) -> None:
    """y = x @ P + x @ Q, P and Q n x n, stored as all ones."""
    g = wrc.Graph("two")
    x = g.data("x", (1, n))
    g.output(g.add(g.matmul(x, g.const("p", np.ones((n, n), F32))), g.matmul(x, g.const("q", np.ones((n, n), F32)))))
    with wrc.BuildSession():
        gs = wrc.convert_to_weight_refreshable_graphs(g, ["p", "q"])
        wrc.bundle_save_model(str(path), wrc.bundle_build_model([gs.infer_graph, gs.var_update_graph, gs.var_init_graph]))


def test_readers_never_see_torn_values_while_buffers_are_recycled(tmp_path) -> None:
    """Version k: P = Q = k everywhere (the file's: k = 1). A reader's weights must all be one
    version, and its outputs those of one version, while a writer updates and inits in a loop
    (1 MB weights: NumPy copies and compares them without holding the GIL)."""
    n = 512
    _two_weights(tmp_path / "m.wrcb", n)
    b = load_bundle(tmp_path / "m.wrcb")
    b.init()
    x = np.ones((1, n), F32)
    reads = [0]

    def read() -> str | None:
        w = b.weights()
        values = {float(a.min()) for a in w.values()} | {float(a.max()) for a in w.values()}
        y = b.infer({"x": x})[0]
        reads[0] += 1
        if len(values) != 1 or not (y.min() == y.max() and y.min() / (2 * n) in (1, 2, 3)):
            return f"weights {values}, outputs {float(y.min())}..{float(y.max())}"
        return None

    def write() -> None:
        for i in range(200):
            if i % 5 == 4:
                b.init()
            else:
                k = F32(2 + i % 2)
                b.update({"p": np.full((n, n), k), "q": np.full((n, n), k)})

    failures = race(write, read, readers=2)
    assert not failures, failures[:3]
    assert reads[0] > 20
