"""Packed weight sets (wrc/weight_pack.py): one buffer and a manifest, staged by a bundle with
one copy (`copy=True`) or adopted (`copy=False`), bit-identical to the same weights as a dict.

The model is test_hoist's LoRA + BatchNorm layer (derived values recomputed on staging).
"""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
from test_hoist import X, build, reference, weights

from wrc.errors import InputError, VersionError
from wrc.model_buffer import ModelBuffer
from wrc.runtime import Bundle, load_bundle
from wrc.weight_pack import ALIGN, WeightPack, pack_weights, packable


@pytest.fixture(scope="module")
def model() -> ModelBuffer:
    return build()


def _state(b: Bundle) -> tuple[int, np.ndarray, dict[str, np.ndarray]]:
    return b.version, b.infer({"x": X})[0], {k: a.copy() for k, a in b.weights().items()}


def _same(a: tuple[int, np.ndarray, dict[str, np.ndarray]], b: tuple[int, np.ndarray, dict[str, np.ndarray]]) -> None:
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    assert a[2].keys() == b[2].keys() and all(np.array_equal(a[2][k], b[2][k]) for k in a[2])


def test_a_pack_holds_every_array_bit_for_bit_and_pickles_as_one_buffer() -> None:
    values = {"a": np.arange(7, dtype=np.float32), "b": np.array(2.5), "c": np.ones((3, 5), np.int8),
              "d": np.array([True, False]), "e": np.zeros((0,), np.float16), "f": np.arange(6, dtype=">i4")}
    pack = pack_weights(values)
    assert list(pack) == list(values) and len(pack) == len(values)
    for k, a in values.items():
        got = pack[k]
        assert got.dtype == a.dtype and got.shape == a.shape and np.array_equal(got, a), k
        assert np.shares_memory(got, pack.buffer) or a.size == 0, k
    assert all(offset % ALIGN == 0 for *_, offset in pack.entries)
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(pack, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 1 and len(data) < 1000  # the bytes travel out of band, as one buffer
    again = pickle.loads(data, buffers=buffers)
    assert all(np.array_equal(again[k], a) and again[k].dtype == a.dtype for k, a in values.items())
    out = np.zeros(4096, np.uint8)  # reused: the pack is written into it
    assert np.shares_memory(pack_weights(values, out=out).buffer, out)


def test_what_cannot_be_packed_is_refused_naming_it() -> None:
    fortran = np.asfortranarray(np.ones((3, 4), np.float32))
    for bad in ({"ok": np.ones(2), "w": fortran}, {"w": [1.0, 2.0]}, {"w": np.array([None])}):
        assert not packable(bad)
        with pytest.raises(InputError, match=r"^pack_weights: weight 'w' must be a C-contiguous NumPy array"):
            pack_weights(bad)  # type: ignore[arg-type]
    buffer = np.zeros(256, np.uint8)
    for entries, what in [((("w", "<f4", (100,), 0),), "outside"), ((("w", "<f4", (2,), 4),), "offset 4"),
                          ((("w", "<f4", (2,), 0), ("w", "<f4", (2,), 64)), "twice")]:
        with pytest.raises(InputError, match=rf"^WeightPack: weight 'w' .*{what}"):
            WeightPack(buffer, entries)
    with pytest.raises(InputError, match="1-D C-contiguous uint8"):
        WeightPack(np.zeros(4, np.float32), ())


@pytest.mark.parametrize("copy", [True, False])
def test_a_packed_stage_is_bit_identical_to_a_dict(model: ModelBuffer, copy: bool) -> None:
    by_dict, by_pack = load_bundle(model), load_bundle(model)
    for b in (by_dict, by_pack):
        b.update(weights(1))
    for seed in (2, 3, 4):
        w = weights(seed)
        pack = pack_weights(w)
        by_dict.commit(by_dict.stage(w, copy=copy))
        by_pack.commit(by_pack.stage(pack, copy=copy))
        _same(_state(by_pack), _state(by_dict))
        np.testing.assert_allclose(by_pack.infer({"x": X})[0], reference(X, w), rtol=1e-5, atol=1e-5)
        live = by_pack.weights()
        for k, a in live.items():
            assert not a.flags.writeable, k
            # copy=True: the bundle's own copy of the buffer; copy=False: views of the pack's
            assert np.shares_memory(a, pack.buffer) is not copy, k
        del live
    v = by_pack.version
    assert by_pack.rollback() == v - 1
    np.testing.assert_allclose(by_pack.infer({"x": X})[0], reference(X, weights(3)), rtol=1e-5, atol=1e-5)
    by_pack.update(pack_weights(weights(5)), copy=copy)  # update takes a pack the same way
    np.testing.assert_allclose(by_pack.infer({"x": X})[0], reference(X, weights(5)), rtol=1e-5, atol=1e-5)


def test_a_copied_pack_does_not_follow_its_buffer_and_slabs_are_reused(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.update(weights(1))
    pack = pack_weights(weights(2))
    b.commit(b.stage(pack))
    y2 = b.infer({"x": X})[0]
    pack.buffer[:] = 0  # the caller's buffer changes: the version is the bundle's own copy
    assert np.array_equal(b.infer({"x": X})[0], y2)
    slabs = []
    for seed in range(3, 9):  # two slabs in turn: the live version's and the one it replaced
        b.commit(b.stage(pack_weights(weights(seed))))
        slabs.append(id(b.weights()["w"].base))
        assert len(b._slabs) <= 2  # noqa: SLF001
    assert len(set(slabs[1:])) == 2, slabs
    held = b.weights()  # a caller still holds the live arrays: the next copy goes elsewhere
    b.commit(b.stage(pack_weights(weights(20))))
    b.commit(b.stage(pack_weights(weights(21))))
    assert all(np.array_equal(a, weights(8)[k]) for k, a in held.items())
    np.testing.assert_allclose(b.infer({"x": X})[0], reference(X, weights(21)), rtol=1e-5, atol=1e-5)
    base = next(iter(held.values())).base
    del held
    assert sys.getrefcount(base) == 2  # only `base`, the argument: nothing of the bundle holds it


@pytest.mark.parametrize("copy", [True, False])
def test_a_bad_tensor_in_a_pack_changes_nothing(model: ModelBuffer, copy: bool) -> None:
    b = load_bundle(model)
    b.update(weights(1))
    b.update(weights(2))
    staged = b.stage(weights(3))
    before = _state(b)
    w = weights(4)
    for bad, message in [({**w, "w": np.zeros((2, 2), np.float32)}, r"weight 'w': expected shape"),
                         ({**w, "gamma": w["gamma"].astype(np.float64)}, r"weight 'gamma': expected dtype"),
                         ({**w, "nope": w["w"]}, "unknown weight 'nope'")]:
        for method in (b.stage, b.update):
            with pytest.raises(InputError, match=message):
                method(pack_weights(bad), copy=copy)
            _same(_state(b), before)
    b.commit(staged)  # still staged
    np.testing.assert_allclose(b.infer({"x": X})[0], reference(X, weights(3)), rtol=1e-5, atol=1e-5)
    assert b.rollback() == before[0]
    with pytest.raises(VersionError):
        b.rollback()
