"""Fresh host memory for weight buffers, its pages mapped in one system call.

A new array's pages are mapped by the kernel on first write, one page fault per 4 KiB page.
The first `update` writes a whole weight set into new arrays, and on a virtual machine such
faults can cost 5–20× the copy into the page (docs/performance.md, "Issue 12: first update and
memory (session 7)"). So the buffers `init()` maps ahead and those an update makes are
`populated`: `MADV_POPULATE_WRITE` (Linux 5.14+) maps their pages in one `madvise` call, as
base (4 KiB) pages unless `HUGE_PAGES`. Where that is unavailable (another OS, an older
kernel, no C library found) nothing is advised and the pages are mapped when written, as
before: the same memory and values either way, only the time differs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import sys
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


def resident() -> int | None:
    """This process's resident memory now, in bytes (`/proc/self/statm`); None where unreadable."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * mmap.PAGESIZE
    except (OSError, ValueError, IndexError):
        return None


def _whole_pages(a: np.ndarray) -> tuple[int, int]:
    """(address, length) of the whole pages inside `a`'s memory (C-contiguous)."""
    start = a.__array_interface__["data"][0]
    first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
    return first, max(0, (start + a.nbytes) // mmap.PAGESIZE * mmap.PAGESIZE - first)


def advise(a: np.ndarray, advice: int) -> bool:
    """`madvise(advice)` on the whole pages inside `a` (C-contiguous); False where that is
    unavailable or failed (then nothing changed). A kernel that does not know `advice`
    (EINVAL) is not asked again."""
    global _madvise
    f = _libc_madvise()
    if not f:
        return False
    address, length = _whole_pages(a)
    if length == 0:
        return True
    if f(address, length, advice) == 0:
        return True
    if ctypes.get_errno() == errno.EINVAL and advice == MADV_POPULATE_WRITE:  # a kernel before 5.14
        _madvise = False
    return False


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
