"""Fresh host memory for weight buffers, its pages mapped in one system call.

A new array's pages are mapped by the kernel on first write, one page fault per 4 KiB page.
The first `update` writes a whole weight set into new arrays, and on a virtual machine such
faults can cost 5–20× the copy into the page (docs/performance.md, "Issue 12: first update and
memory (session 7)"). So the buffers `init()` maps ahead and those an update makes are
`populated`: `MADV_POPULATE_WRITE` (Linux 5.14+) maps their pages in one `madvise` call, as
base (4 KiB) pages unless `HUGE_PAGES`. Where that is unavailable (another OS, an older
kernel, no C library found) nothing is advised and the pages are mapped when written, as
before: the same memory and values either way, only the time differs.

What `init()` cannot map ahead (its memory target) is fresh memory at the first update: there
`Ahead` has helper threads map the new version's buffers while the update copies into them,
so that the faults run on another CPU beside the copy instead of before it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import os
import sys
import threading
from types import TracebackType
from typing import Any

import numpy as np

MADV_NOHUGEPAGE = 15
MADV_POPULATE_WRITE = 23
"""Linux's advice values (include/uapi/asm-generic/mman-common.h), the same on every architecture."""

HUGE_PAGES = False
"""Whether weight buffers may be transparent huge pages (NumPy asks for them on arrays of
4 MiB or more). Off: on a VM whose free memory is reported to the host (virtio-balloon free
page reporting, which returns free 2 MiB blocks), a new huge page is host memory to fault in
again, and the first update took 2–3× longer with them (docs/performance.md). Inference
reads base pages as fast (measured on GEMMs of ViT-B's weights)."""

_madvise: Any = None  # libc's madvise once looked up; False where unavailable or refused


def _libc_madvise() -> Any:
    global _madvise
    if _madvise is None:
        _madvise = False
        if sys.platform.startswith("linux"):
            try:
                f = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).madvise
            except (OSError, AttributeError):
                return _madvise
            f.argtypes, f.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
            _madvise = f
    return _madvise


def _whole_pages(a: np.ndarray) -> tuple[int, int]:
    """(address, length) of the whole pages inside `a`'s memory (C-contiguous)."""
    start = a.__array_interface__["data"][0]
    first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
    return first, max(0, (start + a.nbytes) // mmap.PAGESIZE * mmap.PAGESIZE - first)


def _advise_range(address: int, length: int, advice: int) -> bool:
    """`madvise(advice)` on `length` bytes of whole pages at `address` (see `advise`)."""
    global _madvise
    f = _libc_madvise()
    if not f:
        return False
    if length == 0 or f(address, length, advice) == 0:
        return True
    if ctypes.get_errno() == errno.EINVAL and advice == MADV_POPULATE_WRITE:  # a kernel before 5.14
        _madvise = False
    return False


def advise(a: np.ndarray, advice: int) -> bool:
    """`madvise(advice)` on the whole pages inside `a` (C-contiguous); False where that is
    unavailable or failed (then nothing changed). A kernel that does not know `advice`
    (EINVAL) is not asked again."""
    return _advise_range(*_whole_pages(a), advice)


def populate(a: np.ndarray) -> bool:
    """Map the pages of a new C-contiguous array for writing now, in one call (base pages
    unless `HUGE_PAGES`); its values are unchanged. False where the kernel cannot: its
    pages are then mapped when first written."""
    if not HUGE_PAGES:
        advise(a, MADV_NOHUGEPAGE)
    return advise(a, MADV_POPULATE_WRITE)


def populated(shape: tuple[int, ...], dtype: np.dtype, touch: bool = False) -> np.ndarray:
    """`np.empty(shape, dtype)` with its pages mapped (`populate`); `touch`: written with
    zeros where they could not be, so that they are mapped either way. Its values are
    otherwise undefined, as `np.empty`'s."""
    a = np.empty(shape, dtype)
    if not populate(a) and touch:
        a.fill(0)  # (np.zeros would map untouched zero pages)
    return a


AHEAD_THREADS = max(1, min(2, (os.cpu_count() or 1) - 1))
"""How many helper threads `Ahead` runs (one CPU left to the copy); 0: none, each new buffer is
mapped when made, in the caller's thread (`populated`), as in session 7."""

AHEAD_CHUNK = 2 << 20
"""Bytes a helper maps per `madvise` call; smaller arrays are mapped when made."""


class Ahead:
    """New arrays whose pages helper threads map (`MADV_POPULATE_WRITE`) while the caller
    writes into them: entered, it starts `AHEAD_THREADS` helpers over the chunks of the arrays
    made by `empty` since; on exit (also on an error) it stops them and waits for them, so
    nothing is mapped after it. Both the `madvise` call and NumPy's copies let the GIL go.

    The helpers take the last chunk first: working back from the end of the buffers that the
    caller fills from the start, they meet it. A page the caller reaches first is mapped by its
    write, as without helpers; one mapped twice is mapped once (the advice writes no data).
    Where `madvise` is unavailable, or with no helpers, `empty` is `populated` (mapped now, or
    when written)."""

    def __init__(self) -> None:
        self._chunks: list[tuple[np.ndarray, int, int]] = []  # (array, address, length)
        self._lock = threading.Lock()
        self._stop = False
        self._threads: list[threading.Thread] = []

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """`np.empty(shape, dtype)` as `populated` makes it, whose pages the helpers map once
        entered (those of an array under `AHEAD_CHUNK`: now)."""
        a = np.empty(shape, dtype)
        address, length = _whole_pages(a)
        if AHEAD_THREADS == 0 or length < AHEAD_CHUNK or not _libc_madvise():
            populate(a)
            return a
        if not HUGE_PAGES:
            advise(a, MADV_NOHUGEPAGE)
        self._chunks += [(a, address + at, min(AHEAD_CHUNK, length - at)) for at in range(0, length, AHEAD_CHUNK)]
        return a

    def __enter__(self) -> Ahead:
        if self._chunks:
            self._threads = [threading.Thread(target=self._work, name="wrc-pages", daemon=True)
                             for _ in range(min(AHEAD_THREADS, len(self._chunks)))]
            for t in self._threads:
                t.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop = True
        for t in self._threads:
            t.join()
        self._chunks.clear()

    def _work(self) -> None:
        while not self._stop:
            with self._lock:
                if not self._chunks:
                    return
                a, address, length = self._chunks.pop()  # (`a` held: its memory stays while advised)
            if not _advise_range(address, length, MADV_POPULATE_WRITE):
                return  # unavailable or refused: the rest is mapped when written
            del a
