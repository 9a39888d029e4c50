"""Reference convolutions in float64 (NumPy formulas), shared by the JIT's kernel tests:
one windowing of the padded, dilated input instead of a copy in each test module."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def dilated_windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int],
                    pads: tuple[int, int, int, int], dilations: tuple[int, int] = (1, 1)) -> np.ndarray:
    """(N, C, OH, OW, KH, KW) windows of `x` in float64, zero-padded by `pads` (top, left,
    bottom, right), their points `dilations` apart."""
    kh, kw = kernel
    t, left, b, r = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (t, b), (left, r)))
    span = ((kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1)
    return sliding_window_view(xp, span, axis=(2, 3))[:, :, ::strides[0], ::strides[1], ::dilations[0], ::dilations[1]]


def conv_ref(x, w, strides, pads, dilations=(1, 1)):
    """NCHW convolution, one group; w: (F, C, KH, KW)."""
    win = dilated_windows(x, w.shape[2:], strides, pads, dilations)
    return np.einsum("nchwij,fcij->nfhw", win, w.astype(np.float64))


def depthwise_ref(x, w, strides, pads, dilations=(1, 1)):
    """w: (C, 1, KH, KW); one filter per channel."""
    win = dilated_windows(x, w.shape[2:], strides, pads, dilations)
    return np.einsum("nchwij,cij->nchw", win, w[:, 0].astype(np.float64))
