"""Opening files wrc reads (bundles, weight files, `.npy` inputs): regular files only.

A FIFO, a terminal or a device would block the reader forever or never end; opening
non-blocking first means even opening a FIFO with no writer cannot hang.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import IO


def open_regular(path: str | os.PathLike[str], buffering: int = -1) -> IO[bytes]:
    """`path` opened for reading in binary mode; an `OSError` whose `strerror` says why if
    it cannot be opened or is not a regular file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise
