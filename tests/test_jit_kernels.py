"""The NumPy JIT's window kernels (pools and depthwise convolutions as one ufunc per window
point over shifted views) against NumPy formulas and, on tiny shapes, the interpreter."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from conv_refs import depthwise_ref
from numpy.lib.stride_tricks import sliding_window_view

from wrc import pipeline
from wrc.backends import get_backend
from wrc.graph import Graph, Tensor

RNG = np.random.default_rng(12)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def run(build: Callable[[Graph, Tensor], Tensor], x: np.ndarray, backends: tuple[str, ...]) -> list[np.ndarray]:
    """`build(g, x)` lowered to level 3 and run on each backend."""
    g = Graph("main")
    g.output(build(g, g.data("x", x.shape)))
    module = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
    return [get_backend(b).compile(module).run("main", dict(g.weights), [x])[0] for b in backends]


def windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], pads: tuple[int, int, int, int],
            value: float) -> np.ndarray:
    """(N, C, OH, OW, KH, KW) windows of the padded input."""
    t, left, b, r = pads
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)), constant_values=value)
    return sliding_window_view(xp, kernel, axis=(2, 3))[:, :, ::strides[0], ::strides[1]]


def max_pool_ref(x, kernel, strides, pads):
    return windows(x, kernel, strides, pads, -np.inf).max(axis=(4, 5))


def avg_pool_ref(x, kernel, strides, pads, include_pad):
    sums = windows(x.astype(np.float64), kernel, strides, pads, 0).sum(axis=(4, 5))
    ones = np.ones((1, 1, *x.shape[2:]))
    counts = kernel[0] * kernel[1] if include_pad else windows(ones, kernel, strides, pads, 0).sum(axis=(4, 5))
    return sums / counts


# 2-d windows (separable: over rows, then columns) of strides 2 and 1; 1-d windows (point by
# point, and over padded rows when the stride is 1).
POOLS = [((3, 3), (2, 2), (1, 1, 1, 1)), ((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 2), (1, 2), (0, 1, 2, 0)),
         ((3, 3), (1, 1), (1, 1, 1, 1)), ((2, 3), (1, 1), (0, 2, 1, 0)), ((1, 3), (1, 2), (0, 1, 0, 1)),
         ((3, 1), (1, 1), (1, 0, 1, 0))]


@pytest.mark.parametrize("kernel, strides, pads", POOLS)
def test_max_pool_matches_numpy_and_interpreter(kernel, strides, pads) -> None:
    x = rand(1, 2, 5, 6)
    got, ref = run(lambda g, t: g.max_pool2d(t, kernel, strides, pads), x, ("numpy", "interp"))
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got, max_pool_ref(x, kernel, strides, pads))


@pytest.mark.parametrize("include_pad", [False, True])
@pytest.mark.parametrize("kernel, strides, pads", POOLS)
def test_avg_pool_matches_numpy_and_interpreter(kernel, strides, pads, include_pad) -> None:
    x = rand(1, 2, 5, 6)
    got, ref = run(lambda g, t: g.avg_pool2d(t, kernel, strides, pads, include_pad), x, ("numpy", "interp"))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, avg_pool_ref(x, kernel, strides, pads, include_pad), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("strides, pads, dilations", [((1, 1), (1, 1, 1, 1), (1, 1)), ((2, 2), (0, 1, 1, 0), (1, 1)),
                                                      ((1, 1), (2, 2, 2, 2), (2, 2))])
def test_depthwise_conv_matches_numpy_and_interpreter(strides, pads, dilations) -> None:
    x, w, bias = rand(1, 3, 5, 5), rand(3, 1, 3, 3), rand(3, 1, 1)

    def build(g: Graph, t: Tensor) -> Tensor:  # + bias, relu: the chain runs in the conv's buffer
        y = g.conv2d(t, g.const("w", w), strides, pads, dilations, groups=3)
        return g.relu(g.add(y, g.const("b", bias)))

    got, ref = run(build, x, ("numpy", "interp"))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, np.maximum(depthwise_ref(x, w, strides, pads, dilations) + bias, 0),
                               rtol=1e-4, atol=1e-5)


def test_window_kernels_on_larger_shapes_match_numpy() -> None:
    """Shapes of a real network (SqueezeNet's first pool, a MobileNet depthwise layer)."""
    x = rand(2, 16, 55, 55)
    (got,) = run(lambda g, t: g.max_pool2d(t, (3, 3), (2, 2)), x, ("numpy",))
    np.testing.assert_array_equal(got, max_pool_ref(x, (3, 3), (2, 2), (0, 0, 0, 0)))
    (got,) = run(lambda g, t: g.avg_pool2d(t, (3, 3), (1, 1), (1, 1, 1, 1)), x, ("numpy",))
    np.testing.assert_allclose(got, avg_pool_ref(x, (3, 3), (1, 1), (1, 1, 1, 1), False), rtol=1e-5, atol=1e-5)
    w = rand(16, 1, 5, 5)
    (got,) = run(lambda g, t: g.conv2d(t, g.const("w", w), (2, 2), (2, 2, 2, 2), groups=16), x, ("numpy",))
    np.testing.assert_allclose(got, depthwise_ref(x, w, (2, 2), (2, 2, 2, 2)), rtol=1e-4, atol=1e-4)
    w = rand(16, 1, 3, 3)
    (got,) = run(lambda g, t: g.conv2d(t, g.const("w", w), (1, 1), (1, 1, 1, 1), groups=16), x, ("numpy",))
    np.testing.assert_allclose(got, depthwise_ref(x, w, (1, 1), (1, 1, 1, 1)), rtol=1e-4, atol=1e-4)


def test_a_depthwise_conv_with_a_channel_multiplier_stays_a_gemm_and_is_right() -> None:
    """groups = C with 2 filters per channel: not a matrix-vector product, so the GEMM."""
    x, w = rand(1, 2, 6, 6), rand(4, 1, 3, 3)
    got, ref = run(lambda g, t: g.conv2d(t, g.const("w", w), pads=(1, 1, 1, 1), groups=2), x, ("numpy", "interp"))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    expected = np.concatenate([depthwise_ref(x, w[c::2], (1, 1), (1, 1, 1, 1)) for c in range(2)], axis=1)
    np.testing.assert_allclose(got, expected[:, [0, 2, 1, 3]], rtol=1e-4, atol=1e-5)


def conv_ref(x, w, pads):
    t, left, b, r = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (t, b), (left, r)))
    win = sliding_window_view(xp, w.shape[2:], axis=(2, 3))
    return np.einsum("nchwij,fcij->nfhw", win, w.astype(np.float64))


@pytest.mark.parametrize("n, c, f", [(2, 16, 4), (1, 12, 2)])
def test_few_filter_conv_as_shifted_gemms_matches_numpy(n, c, f) -> None:
    """A stride-1 convolution with C >= 4 F on a large image (kernels.ShiftedGemm: one GEMM
    per window point over wide rows), + bias and ReLU in its buffer, against NumPy."""
    x, w, bias = rand(n, c, 46, 47), rand(f, c, 3, 3), rand(f, 1, 1)

    def build(g: Graph, t: Tensor) -> Tensor:
        return g.relu(g.add(g.conv2d(t, g.const("w", w), (1, 1), (1, 1, 1, 1)), g.const("b", bias)))

    (got,) = run(build, x, ("numpy",))
    np.testing.assert_allclose(got, np.maximum(conv_ref(x, w, (1, 1, 1, 1)) + bias, 0), rtol=1e-4, atol=1e-4)
