"""wrc/pages.py: weight buffers whose pages are mapped in one call (MADV_POPULATE_WRITE),
as base pages, or by helper threads while an update copies into them (`Ahead`), and what
happens where the kernel cannot (other OS, kernels before 5.14): plain `np.empty` arrays, the
same values. No test needs any page feature of the kernel to pass;
the ones about what the kernel did check it only where `populate` says it was done."""

from __future__ import annotations

import ctypes
import errno
import mmap
import sys
import threading
import time

import numpy as np
import pytest
from test_runtime import W1, W2, X, check, model

import wrc
import wrc.pages as pages
import wrc.runtime
from wrc.bundle_format import write_bundle
from wrc.runtime import load_bundle

F32 = np.float32


def _resident() -> int:
    """This process's resident bytes now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * mmap.PAGESIZE


def _vm_flags(a: np.ndarray) -> list[str]:
    """The VmFlags of the mapping holding `a`'s first whole page (/proc/self/smaps)."""
    address = pages._whole_pages(a)[0]
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and head == "VmFlags:":
                return line.split()[1:]
    raise AssertionError("no mapping holds the array")


@pytest.fixture
def no_madvise(monkeypatch):
    """As on a system without madvise (another OS, no C library found)."""
    monkeypatch.setattr(pages, "_madvise", False)


@pytest.mark.parametrize("shape", [(0,), (3,), (1000, 7), (300, 1024, 3)])
@pytest.mark.parametrize("dtype", [F32, np.float64, np.int8])
def test_populated_arrays_are_plain_writable_owned_arrays(shape, dtype) -> None:
    a = pages.populated(shape, np.dtype(dtype))
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    assert a.base is None and a.flags.owndata  # its memory lives and goes with it, as np.empty's
    assert a.ctypes.data % 16 == 0  # NumPy's alignment
    ref = np.arange(a.size, dtype=dtype).reshape(shape)
    a[...] = ref
    assert np.array_equal(a, ref)


def test_without_madvise_populated_is_np_empty_and_touch_writes_zeros(no_madvise) -> None:
    assert pages.populate(np.empty(1 << 20, np.uint8)) is False
    a = pages.populated((4096, 64), np.dtype(F32), touch=True)
    assert not a.any() and a.flags.writeable
    b = pages.populated((10,), np.dtype(F32))  # untouched: only its shape and type are promised
    b[:] = 1
    assert b.sum() == 10


def test_a_kernel_without_populate_write_is_not_asked_again(monkeypatch) -> None:
    calls = []

    def refusing(address: int, length: int, advice: int) -> int:  # a kernel before 5.14
        calls.append(advice)
        ctypes.set_errno(errno.EINVAL if advice == pages.MADV_POPULATE_WRITE else 0)
        return -1 if advice == pages.MADV_POPULATE_WRITE else 0

    monkeypatch.setattr(pages, "_madvise", refusing)
    a = pages.populated((1 << 16,), np.dtype(F32), touch=True)
    assert not a.any() and calls == [pages.MADV_NOHUGEPAGE, pages.MADV_POPULATE_WRITE]
    assert pages._madvise is False
    pages.populated((1 << 16,), np.dtype(F32))
    assert len(calls) == 2  # refused once: not asked again


def test_huge_pages_allowed_leaves_numpys_advice(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(pages, "_madvise", lambda address, length, advice: calls.append(advice) or 0)
    monkeypatch.setattr(pages, "HUGE_PAGES", True)
    assert pages.populate(np.empty(1 << 20, np.uint8))
    assert calls == [pages.MADV_POPULATE_WRITE]


def test_only_whole_pages_inside_the_array_are_advised(monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(pages, "_madvise", lambda address, length, advice: seen.append((address, length)) or 0)
    raw = np.empty(5 * mmap.PAGESIZE, np.uint8)
    start = -raw.ctypes.data % mmap.PAGESIZE
    a = raw[start + 100:start + 3 * mmap.PAGESIZE + 50]  # 100 bytes into a page, 50 into the 4th
    pages.populate(a)
    assert seen[-1] == (raw.ctypes.data + start + mmap.PAGESIZE, 2 * mmap.PAGESIZE)
    seen.clear()
    assert pages.populate(raw[start + 1:start + 100]) and not seen  # no whole page: nothing to do


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_populated_pages_are_resident_base_pages_where_the_kernel_maps_them() -> None:
    n = 64 << 20
    before = _resident()
    a = np.empty(n, np.uint8)
    done = pages.populate(a)
    grown = _resident() - before
    if not done:  # no MADV_POPULATE_WRITE here: nothing mapped ahead, nothing promised
        assert grown < n // 2
        return
    assert grown > 0.95 * n  # mapped without a write
    assert "nh" in _vm_flags(a)  # base pages: no transparent huge pages for it


def _bundle(tmp_path):
    path = tmp_path / "m.wrcb"
    write_bundle(path, model())
    b = load_bundle(path)
    b.init()
    return b


def test_update_buffers_come_from_ahead(tmp_path, monkeypatch) -> None:
    made = []
    real = pages.Ahead.empty
    monkeypatch.setattr(pages.Ahead, "empty", lambda self, *a: made.append(a[0]) or real(self, *a))
    monkeypatch.setattr(wrc.runtime, "PREFAULT_BYTES", 0)  # nothing mapped ahead: the update makes them
    b = _bundle(tmp_path)
    assert not b._spare and not made
    b.update({"const_1": W1 * 2, "const_2": np.array(5, F32)})
    assert sorted(made) == sorted([W1.shape, ()])
    check(b.infer({"x": X}), W1 * 2, np.array(5, F32))


@pytest.mark.parametrize("madvise", ["kernel", "none"])
def test_updates_stage_and_rollback_are_bit_identical_with_or_without_madvise(tmp_path, monkeypatch, madvise) -> None:
    if madvise == "none":
        monkeypatch.setattr(pages, "_madvise", False)
    b = _bundle(tmp_path)
    first = b.infer({"x": X})[0]
    b.update({"const_1": W1 * 3})
    v = b.stage({"const_1": W1 * 5, "const_2": np.array(7, F32)})
    check(b.infer({"x": X}), W1 * 3, W2)  # staged: not live
    b.commit(v)
    check(b.infer({"x": X}), W1 * 5, np.array(7, F32))
    b.rollback()
    assert b.weights()["const_1"].tobytes() == (W1 * 3).tobytes()
    b.init()
    assert b.infer({"x": X})[0].tobytes() == first.tobytes()


# --------------------------------------------------------------------------- Ahead


def _helpers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "wrc-pages"]


@pytest.fixture
def recorded(monkeypatch):
    """madvise replaced by a recorder of (thread name, address, length, advice), succeeding."""
    calls: list[tuple[str, int, int, int]] = []

    def record(address: int, length: int, advice: int) -> int:
        calls.append((threading.current_thread().name, address, length, advice))
        return 0

    monkeypatch.setattr(pages, "_madvise", record)
    return calls


@pytest.mark.parametrize("threads", [1, 2])
def test_ahead_helpers_map_each_chunk_once_last_first(monkeypatch, recorded, threads) -> None:
    monkeypatch.setattr(pages, "AHEAD_THREADS", threads)
    ahead = pages.Ahead()
    a = ahead.empty((5 * pages.AHEAD_CHUNK + 3 * mmap.PAGESIZE + 8,), np.dtype(np.uint8))
    b = ahead.empty((pages.AHEAD_CHUNK // 4 + 2048,), np.dtype(F32))  # one chunk and a bit
    small = ahead.empty((1 << 14,), np.dtype(F32))  # under a chunk: mapped now, in this thread
    assert {c[0] for c in recorded} == {threading.current_thread().name}
    assert [c[3] for c in recorded] == [pages.MADV_NOHUGEPAGE] * 3 + [pages.MADV_POPULATE_WRITE]
    assert recorded[0][1:3] == pages._whole_pages(a) and recorded[-1][1:3] == pages._whole_pages(small)
    queued = [(address, length) for _, address, length in ahead._chunks]
    for arr in (a, b):  # each array's whole pages, chunk by chunk
        start, length = pages._whole_pages(arr)
        mine = sorted(c for c in queued if start <= c[0] < start + length)
        assert [c[0] for c in mine] == list(range(start, start + length, pages.AHEAD_CHUNK))
        assert sum(c[1] for c in mine) == length and all(c[1] <= pages.AHEAD_CHUNK for c in mine)
    assert len(queued) == sum(-(-pages._whole_pages(arr)[1] // pages.AHEAD_CHUNK) for arr in (a, b))
    recorded.clear()
    with ahead:
        assert 1 <= len(ahead._threads) <= threads
        while ahead._chunks:  # (left to run until every chunk is taken: nothing stops them early)
            time.sleep(0.001)
    assert not _helpers()
    assert {c[0] for c in recorded} == {"wrc-pages"} and {c[3] for c in recorded} == {pages.MADV_POPULATE_WRITE}
    done = [(address, length) for _, address, length, _ in recorded]
    assert sorted(done) == sorted(queued)  # each chunk once
    if threads == 1:  # one helper: the last chunk queued first
        assert done == queued[::-1]


def test_ahead_exit_stops_the_helpers_on_an_error_and_nothing_is_mapped_after(monkeypatch) -> None:
    monkeypatch.setattr(pages, "AHEAD_THREADS", 2)
    seen, gate = [], threading.Event()

    def slow(address: int, length: int, advice: int) -> int:
        seen.append(advice)
        if advice == pages.MADV_POPULATE_WRITE:
            gate.wait(5)  # each helper holds its first chunk until the block has raised
        return 0

    monkeypatch.setattr(pages, "_madvise", slow)
    ahead = pages.Ahead()
    a = ahead.empty((40 * pages.AHEAD_CHUNK // 4,), np.dtype(F32))
    with pytest.raises(KeyError), ahead:
        threading.Timer(0.05, gate.set).start()
        raise KeyError("the update failed")
    assert not _helpers() and not ahead._chunks
    done = seen.count(pages.MADV_POPULATE_WRITE)
    assert 1 <= done <= 2  # the chunks taken before the stop, none after
    time.sleep(0.05)
    assert seen.count(pages.MADV_POPULATE_WRITE) == done
    a[:] = 2  # an ordinary array either way
    assert a.sum() == 2 * a.size


@pytest.mark.parametrize("case", ["no madvise", "no helpers"])
def test_ahead_without_madvise_or_helpers_is_populated(monkeypatch, recorded, case) -> None:
    if case == "no madvise":
        monkeypatch.setattr(pages, "_madvise", False)
    else:
        monkeypatch.setattr(pages, "AHEAD_THREADS", 0)
    with pages.Ahead() as ahead:
        pass
    ahead = pages.Ahead()
    a = ahead.empty((3 * pages.AHEAD_CHUNK,), np.dtype(np.uint8))
    if case == "no helpers":  # mapped now, in this thread, as `populated` does
        assert [c[3] for c in recorded] == [pages.MADV_NOHUGEPAGE, pages.MADV_POPULATE_WRITE]
    with ahead:
        assert not _helpers()
    assert {c[0] for c in recorded} <= {threading.current_thread().name}
    a[:] = 7
    assert a.base is None and a.flags.owndata and int(a.sum()) == 7 * a.size


def test_a_kernel_refusing_the_helpers_is_not_asked_again(monkeypatch) -> None:
    calls = []

    def refusing(address: int, length: int, advice: int) -> int:  # a kernel before 5.14
        calls.append(advice)
        ctypes.set_errno(errno.EINVAL if advice == pages.MADV_POPULATE_WRITE else 0)
        return -1 if advice == pages.MADV_POPULATE_WRITE else 0

    monkeypatch.setattr(pages, "_madvise", refusing)
    monkeypatch.setattr(pages, "AHEAD_THREADS", 1)
    ahead = pages.Ahead()
    a = ahead.empty((8 * pages.AHEAD_CHUNK,), np.dtype(np.uint8))
    with ahead:
        a[:] = 3  # written meanwhile: mapped by the writes
    assert calls == [pages.MADV_NOHUGEPAGE, pages.MADV_POPULATE_WRITE] and pages._madvise is False
    assert int(a.sum()) == 3 * a.size


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ahead_maps_the_pages_where_the_kernel_does() -> None:
    n = 16 * pages.AHEAD_CHUNK
    before = _resident()
    ahead = pages.Ahead()
    a = ahead.empty((n,), np.dtype(np.uint8))
    with ahead:
        while ahead._chunks:
            time.sleep(0.001)
    if pages._madvise is False or pages.AHEAD_THREADS == 0:
        return  # no MADV_POPULATE_WRITE here: nothing mapped ahead, nothing promised
    assert _resident() - before > 0.95 * n  # mapped without a write
    assert "nh" in _vm_flags(a)


# A model whose weights span many chunks (`AHEAD_CHUNK` made small): y = x @ P + x @ Q.
N = 256
P0, Q0 = np.full((N, N), 1, F32), np.full((N, N), 2, F32)


@pytest.fixture(scope="module")
def two_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("ahead") / "two.wrcb"
    g = wrc.Graph("two")
    x = g.data("x", (1, N))
    g.output(g.add(g.matmul(x, g.const("p", P0)), g.matmul(x, g.const("q", Q0))))
    with wrc.BuildSession():
        gs = wrc.convert_to_weight_refreshable_graphs(g, ["p", "q"])
        wrc.bundle_save_model(str(path), wrc.bundle_build_model([gs.infer_graph, gs.var_update_graph, gs.var_init_graph]))
    return path


@pytest.mark.parametrize("helpers", [0, 1, 2])
@pytest.mark.parametrize("madvise", ["kernel", "none"])
def test_updates_with_helpers_stage_and_rollback_are_bit_identical(two_weights, monkeypatch, helpers, madvise) -> None:
    monkeypatch.setattr(pages, "AHEAD_THREADS", helpers)
    monkeypatch.setattr(pages, "AHEAD_CHUNK", 4 * mmap.PAGESIZE)
    monkeypatch.setattr(wrc.runtime, "PREFAULT_BYTES", 0)  # every buffer of the first update fresh
    if madvise == "none":
        monkeypatch.setattr(pages, "_madvise", False)
    rng = np.random.default_rng(helpers)
    x = rng.standard_normal((1, N)).astype(F32)
    sets = [{"p": rng.standard_normal((N, N)).astype(F32), "q": rng.standard_normal((N, N)).astype(F32)}
            for _ in range(3)]
    b = load_bundle(two_weights)
    b.init()
    first = b.infer({"x": x})[0]
    assert first.tobytes() == b.infer({"x": x})[0].tobytes()
    np.testing.assert_allclose(first, x @ P0 + x @ Q0, rtol=1e-5)
    for i, new in enumerate(sets[:2]):
        b.update(new)
        assert all(b.weights()[k].tobytes() == new[k].tobytes() for k in new), i
        np.testing.assert_allclose(b.infer({"x": x})[0], x @ new["p"] + x @ new["q"], rtol=1e-4, atol=1e-3)
    v = b.stage(sets[2])
    assert b.weights()["p"].tobytes() == sets[1]["p"].tobytes()  # staged: not live
    b.commit(v)
    assert b.weights()["q"].tobytes() == sets[2]["q"].tobytes()
    b.rollback()
    assert all(b.weights()[k].tobytes() == sets[1][k].tobytes() for k in "pq")
    b.update({"p": sets[0]["p"]})  # a partial update: q kept
    assert b.weights()["q"].tobytes() == sets[1]["q"].tobytes()
    b.init()
    assert b.infer({"x": x})[0].tobytes() == first.tobytes()
    assert not _helpers()


def test_a_failure_while_helpers_map_changes_nothing(two_weights, monkeypatch) -> None:
    monkeypatch.setattr(pages, "AHEAD_THREADS", 2)
    monkeypatch.setattr(pages, "AHEAD_CHUNK", 4 * mmap.PAGESIZE)
    monkeypatch.setattr(wrc.runtime, "PREFAULT_BYTES", 0)
    b = load_bundle(two_weights)
    b.init()
    version, new = b.version, {"p": P0 * 3, "q": Q0 * 3}
    real = b._compiled.run

    def failing(name, *args):
        out = real(name, *args)  # the copies made, then a failure
        if name == "var_update_graph":
            raise MemoryError("no memory")
        return out

    monkeypatch.setattr(b._compiled, "run", failing)
    with pytest.raises(MemoryError):
        b.stage(new)
    assert not _helpers() and b.version == version
    assert b.weights()["p"].tobytes() == P0.tobytes()
    monkeypatch.setattr(b._compiled, "run", real)
    b.update(new)
    assert b.weights()["q"].tobytes() == (Q0 * 3).tobytes()
