"""Packed weight sets (wrc/weight_pack.py): one buffer and a manifest, staged by a bundle with
one copy (`copy=True`) or adopted (`copy=False`), bit-identical to the same weights as a dict;
and a dict whose arrays lie back to back in one buffer (`span`, Ray's layout of one put)
staged with one copy as a pack is; a parcel (`parcel`: the small arrays packed, the others
in pieces as they are) arriving as a pack over the memory Ray lays its pieces out in.

The model is test_hoist's LoRA + BatchNorm layer (derived values recomputed on staging).
"""

from __future__ import annotations

import gc
import pickle
import sys
import weakref

import numpy as np
import pytest
from test_hoist import X, build, reference, weights

from wrc.errors import InputError, VersionError
from wrc.model_buffer import ModelBuffer
from wrc.runtime import Bundle, load_bundle
from wrc.weight_pack import (
    ALIGN,
    PIECE,
    SMALL,
    WeightPack,
    WeightParcel,
    aligned_empty,
    pack_weights,
    packable,
    parcel,
    span,
)


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


def _back_to_back(values: dict[str, np.ndarray], skew: int, gap: int = 8) -> dict[str, np.ndarray]:
    """The arrays copied into one buffer, in order, `gap` bytes apart (rounded up to 8), the
    first `skew` bytes past a multiple of ALIGN: as Ray lays out the arrays of one put."""
    offsets, end = [], skew
    for a in values.values():
        offsets.append(end)
        end = -(-(end + a.nbytes + gap) // 8) * 8
    buffer = aligned_empty(end)
    out = {}
    for (k, a), offset in zip(values.items(), offsets, strict=True):
        out[k] = np.ndarray(a.shape, a.dtype, buffer=buffer, offset=offset)
        out[k][...] = a
    return out


def _owners(arrays: dict[str, np.ndarray]) -> set[int]:
    """The arrays owning the memory of these (each its own, or the one whose views they are)."""
    return {id(a if a.base is None else a.base) for a in arrays.values()}


def test_span_finds_arrays_that_lie_back_to_back_and_nothing_else() -> None:
    values = {"a": np.arange(7, dtype=np.float32), "b": np.array(2.5), "c": np.ones((3, 5), np.int8)}
    packed = pack_weights(values)
    found = span(list(packed.values()))
    assert found is not None
    view, offsets = found
    assert offsets == [e[3] for e in packed.entries] and not view.flags.writeable
    assert view.size == offsets[-1] + values["c"].nbytes and np.shares_memory(view, packed.buffer)
    assert np.array_equal(view, packed.buffer[:view.size])
    laid = _back_to_back(values, skew=8)
    view, offsets = span(list(laid.values()))  # type: ignore[misc]
    for (k, a), offset in zip(laid.items(), offsets, strict=True):
        assert np.array_equal(np.ndarray(a.shape, a.dtype, buffer=view, offset=offset), values[k]), k
    views = list(packed.values())
    far = _back_to_back(values, skew=0, gap=ALIGN)
    for arrays in [views[::-1],  # out of order
                   [views[0], views[0]],  # the same array twice (overlapping)
                   list(far.values()),  # ALIGN bytes or more apart
                   [views[0], np.zeros((0,), np.float32)],  # an empty array
                   [views[0], np.ones((4, 4), np.float32).T],  # not C-contiguous
                   [views[0], [1.0, 2.0]],  # not an array
                   []]:
        assert span(arrays) is None


@pytest.mark.parametrize("skew", [0, 8, 40])
def test_a_dict_in_one_span_is_staged_with_one_copy_bit_identical_to_weight_by_weight(
        model: ModelBuffer, skew: int) -> None:
    by_dict, by_span = load_bundle(model), load_bundle(model)
    for b in (by_dict, by_span):
        b.update(weights(1))
    for seed in (2, 3, 4):
        w = weights(seed)
        laid = _back_to_back(w, skew)
        by_dict.commit(by_dict.stage(dict(w)))
        by_span.commit(by_span.stage(laid))
        _same(_state(by_span), _state(by_dict))
        live = by_span.weights()
        assert len(_owners(live)) == 1  # one slab of the bundle's own
        assert not any(np.shares_memory(a, laid["w"].base) for a in live.values())
        assert all(a.flags.aligned and not a.flags.writeable for a in live.values())
        del live
        laid["w"][...] = 0  # the caller's buffer changes: the version is the bundle's own copy
        _same(_state(by_span), _state(by_dict))
    assert not any(np.shares_memory(a, b) for a in by_dict.weights().values() for b in by_span.weights().values())
    assert by_span.rollback() == by_dict.rollback()
    _same(_state(by_span), _state(by_dict))
    by_span.update(_back_to_back(weights(5), skew))  # update takes a span the same way
    np.testing.assert_allclose(by_span.infer({"x": X})[0], reference(X, weights(5)), rtol=1e-5, atol=1e-5)


def test_a_dict_not_in_one_span_or_failing_a_check_is_staged_weight_by_weight(model: ModelBuffer) -> None:
    b = load_bundle(model)
    b.update(weights(1))
    pack = pack_weights(weights(2))
    b.commit(b.stage({k: pack[k] for k in reversed(list(pack))}))  # one buffer, out of order: per variable
    assert len(_owners(b.weights())) == len(pack)
    np.testing.assert_allclose(b.infer({"x": X})[0], reference(X, weights(2)), rtol=1e-5, atol=1e-5)
    part = _back_to_back({k: weights(6)[k] for k in ("w", "lora_a")}, skew=0)  # a span, not every weight
    buffers = {k: id(a.base) for k, a in b.weights().items()}
    b.update(part)  # into the weights' own buffers (spares), not a slab
    assert len(_owners(b.weights())) == len(pack)
    assert {k: id(a.base) for k, a in b.weights().items() if k not in part} == \
        {k: v for k, v in buffers.items() if k not in part}
    np.testing.assert_allclose(b.infer({"x": X})[0], reference(X, {**weights(2), **part}), rtol=1e-5, atol=1e-5)
    w = weights(3)
    before = _state(b)
    bad = _back_to_back({**w, "gamma": w["gamma"].astype(np.float64)}, skew=0)
    with pytest.raises(InputError, match=r"weight 'gamma': expected dtype float32"):
        b.stage(bad)
    _same(_state(b), before)


def _as_ray_lays_out(sent: WeightParcel, gap_before: int = -1) -> tuple[WeightPack, np.ndarray]:
    """`sent` pickled as Ray pickles it (protocol 5, its pieces out of band), the pieces copied
    into one buffer as Ray's store lays out one object (each at the next multiple of ALIGN
    after the one before, of 8 below 2 KiB), and unpickled from there; and that buffer.
    `gap_before`: the piece of that index (and those after it) laid out ALIGN bytes later."""
    pieces: list[pickle.PickleBuffer] = []
    data = pickle.dumps(sent, protocol=5, buffer_callback=pieces.append)
    at, end = [], 0
    for i, p in enumerate(pieces):
        end += ALIGN if i == gap_before else 0
        end = -(-end // (ALIGN if p.raw().nbytes >= 2048 else 8)) * (ALIGN if p.raw().nbytes >= 2048 else 8)
        at.append(end)
        end += p.raw().nbytes
    store = aligned_empty(end)
    for p, offset in zip(pieces, at, strict=True):
        store[offset:offset + p.raw().nbytes] = np.frombuffer(p.raw(), np.uint8)
    views = [store[offset:offset + p.raw().nbytes] for p, offset in zip(pieces, at, strict=True)]
    for v in views:
        v.flags.writeable = False  # (as Ray's are)
    return pickle.loads(data, buffers=views), store


def test_a_parcel_copies_only_small_arrays_and_arrives_as_a_pack_over_rays_layout() -> None:
    values = {"a": np.arange(7, dtype=np.float32), "b": np.array(2.5), "empty": np.zeros((0,), np.float16),
              "mid": np.arange(10000, dtype=">i4"), "big": np.arange(2 * PIECE // 8 + 12, dtype=np.float64),
              "c": np.ones((3, 5), np.int8), "huge": np.ones((3, PIECE // 2 + 5), np.int16)}
    sent = parcel(values, small=64 << 10)
    assert sent.packed is not None  # a, b, empty, c and mid (under 64 KiB) copied into one pack
    for k, a in values.items():  # the others sent as they are: pieces of the caller's arrays
        assert any(np.shares_memory(p, a) for p in sent.pieces) is (a.nbytes >= 64 << 10), k
    assert all(SMALL <= p.nbytes <= PIECE for p in sent.pieces)  # (big's tail moved to its last piece)
    assert len(sent.pieces) == 1 + 3 + 4
    got, store = _as_ray_lays_out(sent)
    assert isinstance(got, WeightPack) and list(got) == [k for k in values if values[k].nbytes < 64 << 10] + \
        ["big", "huge"]
    assert np.shares_memory(got.buffer, store) and not got.buffer.flags.writeable  # no copy of it
    assert all(offset % ALIGN == 0 for *_, offset in got.entries)
    for k, a in values.items():
        assert got[k].dtype == a.dtype and got[k].shape == a.shape and np.array_equal(got[k], a), k
    held = weakref.ref(store.base)  # (the array owning the memory)
    del store
    gc.collect()
    assert held() is not None and np.array_equal(got["huge"], values["huge"])  # the pack keeps its memory
    del got
    gc.collect()
    assert held() is None
    again = pickle.loads(pickle.dumps(sent))  # pieces laid out otherwise (in band): copied into one
    assert all(np.array_equal(again[k], a) and again[k].dtype == a.dtype for k, a in values.items())
    assert all(offset % ALIGN == 0 for *_, offset in again.entries)
    everything = parcel(values, small=1 << 62)  # all copied, as pack_weights would
    assert not any(np.shares_memory(p, a) for p in everything.pieces for a in values.values())
    assert all(np.array_equal(_as_ray_lays_out(everything)[0][k], a) for k, a in values.items())
    pack = pack_weights(values)
    whole = parcel(pack)  # a pack: its buffer as it is, in pieces, its manifest unchanged
    assert whole.packed is None and all(np.shares_memory(p, pack.buffer) for p in whole.pieces)
    assert _as_ray_lays_out(whole)[0].entries == pack.entries
    out = np.zeros(4096, np.uint8)  # reused for the small arrays when large enough
    assert parcel({"a": values["a"]}, out=out).packed is out
    with pytest.raises(InputError, match=r"^parcel: weight 'w' must be a C-contiguous NumPy array"):
        parcel({"w": np.asfortranarray(np.ones((3, 4), np.float32))})
    with pytest.raises(InputError, match=r"^parcel: weight 'o' must be a C-contiguous NumPy array of a plain dtype"):
        parcel({"o": np.array([None, 1], object)})


def test_a_parcels_pieces_travel_as_raw_buffers_and_empty_or_in_band_it_still_arrives() -> None:
    """Protocol 5 (Ray): each piece goes out of band as a raw buffer, nothing in band rebuilds
    an array of it (NumPy's `_frombuffer` per piece cost Ray ~4 µs each); the manifest stays
    the only per-tensor data in band. In band (any protocol) and empty, the pack is the same."""
    values = {f"t{i}": np.full(SMALL // 4 + i, i, np.float32) for i in range(50)}
    sent = parcel(values)
    pieces: list[pickle.PickleBuffer] = []
    data = pickle.dumps(sent, protocol=5, buffer_callback=pieces.append)
    assert len(pieces) == len(sent.pieces) == 50
    assert b"frombuffer" not in data and b"reconstruct" not in data and b"numpy" not in data
    got, _ = _as_ray_lays_out(sent)
    assert all(np.array_equal(got[k], a) and got[k].dtype == a.dtype for k, a in values.items())
    for protocol in (4, 5):  # in band: the pieces are bytes or arrays, copied into one buffer
        again = pickle.loads(pickle.dumps(sent, protocol=protocol))
        assert again.entries == got.entries and all(np.array_equal(again[k], a) for k, a in values.items())
    empty = _as_ray_lays_out(parcel({}))[0]
    assert isinstance(empty, WeightPack) and len(empty) == 0


def test_a_parcels_layout_is_decoded_once_and_its_pieces_checked_each_time() -> None:
    """A parcel's plan and manifest travel as one bytes object: the next equal one (a trainer
    sends the same each publish) arrives as the very manifest tuple decoded before, with the
    new values; another manifest is decoded anew. Pieces not where the plan says (one laid
    out later) are still found and copied into a buffer of its own, values bit for bit."""
    values = {f"t{i}": np.full(SMALL // 4 + i, i, np.float32) for i in range(20)}
    from wrc import weight_pack

    first, _ = _as_ray_lays_out(parcel(values))
    decoded = weight_pack._arrived  # noqa: SLF001 - (bytes, plan, manifest) decoded last
    again, store = _as_ray_lays_out(parcel({k: a + 1 for k, a in values.items()}))
    assert weight_pack._arrived is decoded  # noqa: SLF001 - not decoded again
    assert again.entries is first.entries and np.shares_memory(again.buffer, store)
    assert all(np.array_equal(again[k], a + 1) for k, a in values.items())
    other = {**values, "t3": np.arange(SMALL, dtype=np.float32)}  # one shape changed
    got, _ = _as_ray_lays_out(parcel(other))
    assert weight_pack._arrived is not decoded  # noqa: SLF001
    assert got.entries is not first.entries and got.entries != first.entries
    assert all(np.array_equal(got[k], a) and got[k].shape == a.shape for k, a in other.items())
    for gap in (1, 10, 19):  # misplaced pieces: a copy, laid out as planned
        moved, store = _as_ray_lays_out(parcel(values), gap_before=gap)
        assert not np.shares_memory(moved.buffer, store) and moved.entries == first.entries
        assert all(np.array_equal(moved[k], a) and moved[k].dtype == a.dtype for k, a in values.items())


def test_pieces_are_located_in_one_compiled_call_as_through_ctypes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica reads where each of a parcel's pieces lies (thousands per publish): in one call
    of the compiled `buffers.extents`, the same addresses and sizes as the buffer protocol
    through ctypes gives, for arrays, bytes, memoryviews and views of one buffer; an array that
    is not contiguous refused by both with NumPy's error; and a parcel arrives the same through either."""
    from wrc import weight_pack
    from wrc.backends import native

    compiled = native.load("buffers")
    used = weight_pack._extents_fn()  # noqa: SLF001 - (the module object may be another build's: tests reset caches)
    assert compiled is not None and (used.__module__, used.__name__) == (native.PREFIX + "buffers", "extents")
    store = aligned_empty(3 * ALIGN)
    pieces = [np.arange(5, dtype=np.float64), b"abc", memoryview(bytearray(7)), store[ALIGN:2 * ALIGN],
              store[:0], np.ones((2, 3), np.int16)]
    addresses, sizes = compiled.extents(pieces)
    by_ctypes = weight_pack._extents_by_ctypes(pieces)  # noqa: SLF001
    assert addresses.dtype == sizes.dtype == np.int64
    assert np.array_equal(addresses, by_ctypes[0]) and np.array_equal(sizes, by_ctypes[1])
    assert sizes.tolist() == [40, 3, 7, ALIGN, 0, 12]
    assert addresses[3] == store.ctypes.data + ALIGN and addresses[0] == pieces[0].ctypes.data
    assert [a.size for a in compiled.extents([])] == [0, 0]
    strided = np.ones((4, 4), np.float32)[:, ::2]
    for extents in (compiled.extents, weight_pack._extents_by_ctypes):  # noqa: SLF001
        with pytest.raises(ValueError, match="not C-contiguous"):  # (NumPy's error as the exporter)
            extents([pieces[0], strided])
    with pytest.raises(TypeError):
        compiled.extents([object()])
    values = {f"t{i}": np.full(SMALL // 4 + i, i, np.float32) for i in range(20)}
    natively, _ = _as_ray_lays_out(parcel(values))
    monkeypatch.setattr(weight_pack, "_extents_fn", lambda: weight_pack._extents_by_ctypes)  # noqa: SLF001
    for gap in (-1, 7):  # laid out as planned (no copy), and not (copied)
        got, store = _as_ray_lays_out(parcel(values), gap_before=gap)
        assert np.shares_memory(got.buffer, store) is (gap < 0) and got.entries == natively.entries
        assert all(np.array_equal(got[k], a) and got[k].dtype == a.dtype for k, a in values.items())


@pytest.mark.parametrize("copy", [True, False])
def test_a_parcel_is_staged_as_its_pack_bit_identical_to_a_dict(model: ModelBuffer, copy: bool) -> None:
    by_dict, by_parcel = load_bundle(model), load_bundle(model)
    for b in (by_dict, by_parcel):
        b.update(weights(1))
    for seed in (2, 3):
        got, store = _as_ray_lays_out(parcel(weights(seed)))
        by_dict.commit(by_dict.stage(weights(seed), copy=copy))
        by_parcel.commit(by_parcel.stage(got, copy=copy))
        _same(_state(by_parcel), _state(by_dict))
        # copy=True: the bundle's own copy (one slab); copy=False: views of the store's memory
        assert all(np.shares_memory(a, store) is not copy for a in by_parcel.weights().values())
        assert len(_owners(by_parcel.weights())) == 1


RUN_NAMES = [*(f"w{i}" for i in range(8)), "m", "w8", "w9"]  # "m": another shape, which ends a run


def _run_model() -> ModelBuffer:
    """x + w0 + ... + w9 + m: many weights of one shape (a run in a pack), one of another."""
    import wrc

    g = wrc.Graph("runs")
    y = g.data("x", (2, 4))
    for name in RUN_NAMES:
        y = g.add(y, g.const(name, np.zeros((2, 4) if name == "m" else (4,), np.float32)))
    g.output(y)
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(g, RUN_NAMES)
        return wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_init_graph, {}),
                                       (graphs.var_update_graph, {})])


@pytest.mark.parametrize("copy", [True, False])
def test_a_packs_runs_of_one_shape_are_viewed_at_once_and_its_manifest_checked_once(copy: bool) -> None:
    """A bundle views each run of same-shaped arrays of a pack as the rows of one strided
    array (`_runs`), values bit-identical, read-only and contiguous; the checks and runs of a
    manifest are kept for the next pack with an equal one; another is checked again."""
    from wrc.runtime import _runs

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    b = load_bundle(_run_model())
    b.init()
    first = None
    for _ in range(3):
        w = {n: rng.standard_normal((2, 4) if n == "m" else (4,)).astype(np.float32) for n in RUN_NAMES}
        pack = pack_weights(w)
        b.commit(b.stage(pack, copy=copy))
        want = x
        for n in RUN_NAMES:
            want = want + w[n]
        np.testing.assert_allclose(b.infer({"x": x})[0], want, rtol=1e-6, atol=1e-6)
        live = b.weights()
        for n, a in w.items():
            got = live[n]
            assert np.array_equal(got, a) and got.shape == a.shape and got.flags.c_contiguous, n
            assert not got.flags.writeable and np.shares_memory(got, pack.buffer) is not copy, n
        del live, got
        manifest = b._last_manifest  # noqa: SLF001
        assert manifest is not None and manifest[0] == pack.entries
        if first is None:
            first = manifest
        assert manifest is first  # an equal manifest: its checks and runs were kept
        runs = manifest[1][1]
        assert [names for names, *_ in runs] == [[f"{n}_var" for n in run] for run in (RUN_NAMES[:8], ["m"], ["w8", "w9"])]
        assert all(stride == ALIGN for names, *_, stride in runs if len(names) > 1)
    bad = pack_weights({**w, "w3": np.zeros(5, np.float32)})  # another manifest: checked again
    with pytest.raises(InputError, match=r"'w3'"):
        b.stage(bad, copy=copy)
    assert b._last_manifest is first  # noqa: SLF001
    # runs break at another dtype, shape, stride, a 0-d array, and keep the order given
    f4, f8 = np.dtype(np.float32), np.dtype(np.float64)
    placed = {"a": (f4, (2,), 0), "b": (f4, (2,), 64), "c": (f4, (2,), 128), "d": (f4, (2,), 256),
              "e": (f8, (2,), 320), "f": (f8, (2,), 384), "g": (f8, (), 448), "h": (f8, (), 512), "i": (f8, (3,), 576)}
    assert [names for names, *_ in _runs(placed)] == [["a", "b", "c"], ["d"], ["e", "f"], ["g"], ["h"], ["i"]]


def test_a_manifest_checked_once_is_still_checked_against_its_buffer() -> None:
    values = {f"w{i}": np.full(3, i, np.float32) for i in range(5)}
    pack = pack_weights(values)
    again = WeightPack(pack.buffer.copy(), tuple(list(e) and e for e in pack.entries))  # the same manifest
    assert list(again) == list(values) and len(again) == 5 and again.offset("w4") == pack.offset("w4")
    assert all(np.array_equal(again[k], a) for k, a in values.items())
    with pytest.raises(InputError, match=r"^WeightPack: weight 'w4' .*outside"):
        WeightPack(pack.buffer[:pack.offset("w4") + 4].copy(), pack.entries)  # too small for it now
