"""wrc/pages.py: weight buffers whose pages are mapped in one call (MADV_POPULATE_WRITE),
as base pages, and what happens where the kernel cannot (other OS, kernels before 5.14):
plain `np.empty` arrays, the same values. No test needs any page feature of the kernel to pass;
the ones about what the kernel did check it only where `populate` says it was done."""

from __future__ import annotations

import ctypes
import errno
import mmap
import sys

import numpy as np
import pytest
from test_runtime import W1, W2, X, check, model

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


def test_update_buffers_come_from_populated(tmp_path, monkeypatch) -> None:
    made = []
    real = wrc.runtime.populated
    monkeypatch.setattr(wrc.runtime, "populated", lambda *a, **k: made.append(a[0]) or real(*a, **k))
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_resident_counts_the_pages_a_process_touches() -> None:
    before = pages.resident()
    a = np.ones(64 << 20, np.uint8)  # 64 MiB written: resident
    grown = pages.resident() - before
    assert 60 << 20 <= grown < 80 << 20
    del a


def test_resident_is_none_where_proc_cannot_be_read(monkeypatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("no /proc here")

    monkeypatch.setattr("builtins.open", refuse)
    assert pages.resident() is None
