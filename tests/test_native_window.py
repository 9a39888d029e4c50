"""The compiled window kernel (`kernels.NativeWindow`, `wrc/backends/native/window.c`): depthwise
convolutions through `window.conv` against the NumPy JIT's own forms (`numpy{native=false}`),
a float64 NumPy reference and, on tiny shapes, the interpreter."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from wrc import pipeline
from wrc.backends import get_backend, native
from wrc.backends.arrays import NUMPY as HOST
from wrc.backends.numpy_jit import NumpyCompiledModule
from wrc.graph import Graph

RNG = np.random.default_rng(7)
NATIVE, NUMPY = "numpy", "numpy{native=false}"


def conv_ref(x, w, strides, pads, dilations=(1, 1), bias=None):
    """Depthwise: w (C, 1, KH, KW), one filter per channel, in float64."""
    kh, kw = w.shape[2:]
    t, left, b, r = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (t, b), (left, r)))
    span = ((kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1)
    win = sliding_window_view(xp, span, axis=(2, 3))[:, :, ::strides[0], ::strides[1], ::dilations[0], ::dilations[1]]
    y = np.einsum("nchwij,cij->nchw", win, w[:, 0].astype(np.float64))
    return y if bias is None else y + bias.astype(np.float64)


def compiled(x_shape, w, strides, pads, dilations=(1, 1), bias=None, backends=(NATIVE, NUMPY), dtype="float32"):
    """The depthwise convolution (+ bias) of `x_shape` lowered to level 3, compiled by each
    backend; with the graph's weights."""
    g = Graph("main")
    y = g.conv2d(g.data("x", x_shape, dtype), g.const("w", w), strides, pads, dilations, groups=w.shape[0])
    if bias is not None:
        y = g.add(y, g.const("b", bias))
    g.output(y)
    module = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
    return [get_backend(b).compile(module) for b in backends], dict(g.weights)


def calls_native(mod) -> bool:
    conv = native.load("window").conv
    return any(v is conv for f in mod.functions for v in f.namespace.values())


def test_the_kernel_module_builds_here() -> None:
    """CI machines have a C compiler: the kernel is there (else every test below would only
    compare the NumPy form with itself)."""
    assert native.load("window") is not None


CASES = [  # kernel side, stride, pads, batch, bias
    (3, 1, (1, 1, 1, 1), 1, True), (3, 2, (1, 1, 1, 1), 2, False), (3, 2, (0, 1, 1, 0), 1, True),
    (5, 1, (2, 2, 2, 2), 2, True), (5, 2, (2, 2, 2, 2), 1, False), (7, 1, (3, 3, 3, 3), 1, False),
    (7, 2, (3, 2, 1, 3), 2, True), (3, 1, (0, 0, 0, 0), 1, False), (1, 1, (0, 0, 0, 0), 2, True),
    (1, 2, (1, 1, 1, 1), 1, False)]


@pytest.mark.parametrize("k, s, pads, n, with_bias", CASES)
def test_depthwise_matches_numpy_form_and_reference(k, s, pads, n, with_bias) -> None:
    x = RNG.standard_normal((n, 5, 13, 12)).astype(np.float32)
    w = RNG.standard_normal((5, 1, k, k)).astype(np.float32)
    bias = RNG.standard_normal((5, 1, 1)).astype(np.float32) if with_bias else None
    (nat, ref), weights = compiled(x.shape, w, (s, s), pads, bias=bias)
    assert calls_native(nat) == (k > 1) and not calls_native(ref)  # 1x1: elementwise
    got, want = (m.run("main", weights, [x])[0] for m in (nat, ref))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, conv_ref(x, w, (s, s), pads, bias=bias), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_wide_images_run_row_by_row(k) -> None:
    """Rows of 32 outputs or more run in blocks (stride 1) or one by one (stride 2) instead of
    as one wide row per plane: 75 columns, a block of 64 and 11 more."""
    x = RNG.standard_normal((2, 3, 6, 75)).astype(np.float32)
    w = RNG.standard_normal((3, 1, k, k)).astype(np.float32)
    pads = (k // 2,) * 4
    for s in (1, 2):
        (nat, ref), weights = compiled(x.shape, w, (s, s), pads)
        assert calls_native(nat)
        got, want = (m.run("main", weights, [x])[0] for m in (nat, ref))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got, conv_ref(x, w, (s, s), pads), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k, s, pads, dilations", [(3, 1, (1, 1, 1, 1), (1, 1)), (5, 2, (2, 1, 2, 2), (1, 1)),
                                                   (3, 1, (2, 2, 2, 2), (2, 2)), (2, 1, (0, 1, 1, 0), (1, 1))])
def test_depthwise_matches_interpreter_on_tiny_shapes(k, s, pads, dilations) -> None:
    """Specialised loops (3x3, 5x5) and the generic one (dilation, an even window)."""
    x = RNG.standard_normal((2, 2, 6, 5)).astype(np.float32)
    w = RNG.standard_normal((2, 1, k, k)).astype(np.float32)
    (nat, interp), weights = compiled(x.shape, w, (s, s), pads, dilations, backends=(NATIVE, "interp"))
    assert calls_native(nat)
    got, want = (m.run("main", weights, [x])[0] for m in (nat, interp))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, conv_ref(x, w, (s, s), pads, dilations), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel, strides", [((3, 1), (1, 1)), ((1, 5), (2, 1)), ((3, 5), (2, 1))])
def test_non_square_windows_and_strides_take_the_generic_loop(kernel, strides) -> None:
    x = RNG.standard_normal((1, 4, 11, 10)).astype(np.float32)
    w = RNG.standard_normal((4, 1, *kernel)).astype(np.float32)
    pads = (kernel[0] // 2, kernel[1] // 2) * 2
    (nat, ref), weights = compiled(x.shape, w, strides, pads)
    assert calls_native(nat)
    got, want = (m.run("main", weights, [x])[0] for m in (nat, ref))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, conv_ref(x, w, strides, pads), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float64", "int32"])
def test_other_element_types_keep_the_numpy_form(dtype) -> None:
    x = RNG.integers(-5, 5, (1, 2, 6, 6)).astype(dtype)
    w = RNG.integers(-5, 5, (2, 1, 3, 3)).astype(dtype)
    (nat,), weights = compiled(x.shape, w, (1, 1), (1, 1, 1, 1), backends=(NATIVE,), dtype=dtype)
    assert not calls_native(nat)
    np.testing.assert_array_equal(nat.run("main", weights, [x])[0], conv_ref(x, w, (1, 1), (1, 1, 1, 1)))


def test_a_channel_multiplier_is_not_depthwise() -> None:
    """Two filters per channel: a filter dim BLAS reuses the image along, so the GEMM."""
    x = RNG.standard_normal((1, 2, 6, 6)).astype(np.float32)
    w = RNG.standard_normal((4, 1, 3, 3)).astype(np.float32)
    g = Graph("main")
    g.output(g.conv2d(g.data("x", x.shape), g.const("w", w), pads=(1, 1, 1, 1), groups=2))
    module = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
    assert not calls_native(get_backend(NATIVE).compile(module))


def test_device_arrays_keep_the_numpy_form() -> None:
    """Compiled kernels read host memory: a module compiled for another ArrayModule (CuPy's)
    does not call them."""
    g = Graph("main")
    g.output(g.conv2d(g.data("x", (1, 2, 6, 6)), g.const("w", np.ones((2, 1, 3, 3), np.float32)),
                      pads=(1, 1, 1, 1), groups=2))
    module = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
    assert calls_native(NumpyCompiledModule(module, HOST))
    assert not calls_native(NumpyCompiledModule(module, dataclasses.replace(HOST, host=False)))


# -- the C function itself: params as (accumulate, 8 extents, then per operand offset + 8 strides)

def params(c, hp, oh, k, s, accumulate=0, xoff=0):
    ext = (1, 1, c, oh, oh, 1, k, k)
    xs = (0, 0, hp * hp, s * hp, s, 0, hp, 1)
    ws = (0, 0, k * k, 0, 0, 0, k, 1)
    os_ = (0, 0, oh * oh, oh, 1, 0, 0, 0)
    return (accumulate, *ext, xoff, *xs, 0, *ws, 0, *os_)


@pytest.mark.parametrize("side, s", [(7, 1), (70, 1), (70, 2)])
def test_accumulating_into_the_output(side, s) -> None:
    """An output that is not fresh: the sums are added to it (a wide row per plane, rows in
    blocks, rows one by one)."""
    conv = native.load("window").conv
    oh = (side - 3) // s + 1
    x = RNG.standard_normal((3, side, side)).astype(np.float32)
    w = RNG.standard_normal((3, 1, 3, 3)).astype(np.float32)
    out = RNG.standard_normal((3, oh, oh)).astype(np.float32)
    want = out + conv_ref(x[None], w, (s, s), (0, 0, 0, 0))[0]
    conv(x, w, out, params(3, side, oh, 3, s, accumulate=1))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_bad_calls_are_refused_before_reading() -> None:
    conv = native.load("window").conv
    x, w, out = np.zeros((3, 7, 7), np.float32), np.zeros((3, 1, 3, 3), np.float32), np.zeros((3, 5, 5), np.float32)
    with pytest.raises(ValueError, match="^x: the view reaches outside the buffer$"):
        conv(x, w, out, params(3, 7, 5, 3, 1, xoff=1))
    with pytest.raises(ValueError, match="^x: the view reaches outside the buffer$"):
        conv(x, w, out, params(3, 7, 5, 3, 1, xoff=-1))
    with pytest.raises(ValueError, match="^out: the view reaches outside the buffer$"):
        conv(x, w, out[:2], params(3, 7, 5, 3, 1))
    with pytest.raises(ValueError, match="^params: expected a tuple of 36 ints$"):
        conv(x, w, out, params(3, 7, 5, 3, 1)[:-1])
    huge = list(params(3, 7, 5, 3, 1))
    huge[12] = 2**62  # x's stride along the channels: the reach overflows
    with pytest.raises(ValueError, match="^x: the view reaches outside the buffer$"):
        conv(x, w, out, tuple(huge))
    huge[12] = 2**70
    with pytest.raises(OverflowError):
        conv(x, w, out, tuple(huge))
    with pytest.raises(ValueError, match="^w: expected items of format f, got d$"):
        conv(x, w.astype(np.float64), out, params(3, 7, 5, 3, 1))
    with pytest.raises(ValueError, match="^out: expected a C-contiguous writable array$"):
        conv(x, w, np.zeros((3, 5, 10), np.float32)[:, :, ::2], params(3, 7, 5, 3, 1))
