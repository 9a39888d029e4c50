"""The compiled window kernel (`kernels.NativeWindow`, `wrc/backends/native/window.c`): depthwise
convolutions through `window.conv` against the NumPy JIT's own forms (`numpy{native=false}`),
a float64 NumPy reference and, on tiny shapes, the interpreter."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conv_refs import depthwise_ref
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
    y = depthwise_ref(x, w, strides, pads, dilations)
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
    with pytest.raises(ValueError, match="^params: expected a tuple of 36 or 56 ints$"):
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


# -- padded images read in place (unpad.py) and pools (window.pool)

def test_the_padded_copy_is_gone() -> None:
    """The kernel reads the unpadded image: no zeroed buffer, no copy into it."""
    x = RNG.standard_normal((1, 4, 9, 9)).astype(np.float32)
    w = RNG.standard_normal((4, 1, 3, 3)).astype(np.float32)
    (nat, ref), weights = compiled(x.shape, w, (1, 1), (1, 1, 1, 1))
    assert "np.zeros(" not in nat.source("main") and "copyto" not in nat.source("main")
    assert "np.zeros(" in ref.source("main")
    np.testing.assert_allclose(nat.run("main", weights, [x])[0], conv_ref(x, w, (1, 1), (1, 1, 1, 1)),
                               rtol=1e-5, atol=1e-5)


def pool_ref(x, kind, kernel, strides, pads, count_include_pad=False):
    """NCHW max or average pool in float64; `pads` (top, left, bottom, right), the padding
    not counted unless `count_include_pad`."""
    t, left, b, r = pads
    fill = -np.inf if kind == "MaxPool" else 0.0
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (t, b), (left, r)), constant_values=fill)
    win = sliding_window_view(xp, kernel, axis=(2, 3))[:, :, ::strides[0], ::strides[1]]
    if kind == "MaxPool":
        return win.max(axis=(-2, -1))
    ones = np.pad(np.ones(x.shape[2:]), ((t, b), (left, r)), constant_values=count_include_pad)
    count = sliding_window_view(ones, kernel)[::strides[0], ::strides[1]].sum(axis=(-2, -1))
    return win.sum(axis=(-2, -1)) / count


def pool_modules(kind, x_shape, backends=(NATIVE, NUMPY), **attrs):
    """A one-node ONNX model (graph `main`) imported, lowered and compiled by each backend."""
    from onnx import TensorProto, helper

    from wrc.onnx import import_onnx

    nd = helper.make_node(kind, ["x"], ["y"], **attrs)
    graph = helper.make_graph([nd], "main", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    g = import_onnx(model)
    module = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
    return [get_backend(b).compile(module) for b in backends], model


def calls_pool(mod, pool=None) -> bool:
    pool = pool or native.load("window").pool
    return any(v is pool for f in mod.functions for v in f.namespace.values())


POOLS = [  # kind, input shape, kernel, strides, pads (top, left, bottom, right), ceil_mode, count_include_pad
    ("MaxPool", (2, 3, 12, 12), (3, 3), (2, 2), (1, 1, 1, 1), 0, 0),  # ResNet
    ("MaxPool", (1, 4, 13, 13), (3, 3), (2, 2), (0, 0, 0, 0), 1, 0),  # SqueezeNet: ceil_mode
    ("MaxPool", (1, 3, 9, 10), (2, 2), (2, 2), (0, 0, 0, 0), 0, 0),  # VGG
    ("MaxPool", (1, 2, 7, 80), (3, 3), (1, 1), (1, 1, 1, 1), 0, 0),  # wide rows
    ("MaxPool", (1, 2, 8, 9), (3, 2), (2, 1), (1, 0, 2, 1), 0, 0),  # asymmetric
    ("AveragePool", (1, 3, 9, 9), (3, 3), (1, 1), (1, 1, 1, 1), 0, 0),  # Inception
    ("AveragePool", (1, 3, 9, 9), (3, 3), (1, 1), (1, 1, 1, 1), 0, 1),
    ("AveragePool", (2, 3, 11, 11), (2, 2), (2, 2), (0, 0, 0, 0), 1, 0),  # DenseNet, ceil_mode
    ("AveragePool", (1, 2, 10, 7), (5, 3), (2, 1), (2, 1, 1, 0), 0, 1),
]


@pytest.mark.parametrize("kind, shape, kernel, strides, pads, ceil, include", POOLS)
def test_pools_match_onnxruntime_and_the_numpy_form(kind, shape, kernel, strides, pads, ceil, include) -> None:
    import onnxruntime as ort

    attrs = dict(kernel_shape=kernel, strides=strides, pads=[pads[0], pads[1], pads[2], pads[3]], ceil_mode=ceil)
    if kind == "AveragePool":
        attrs["count_include_pad"] = include
    (nat, ref), model = pool_modules(kind, shape, **attrs)
    assert calls_pool(nat) and not calls_pool(ref)
    assert "np.zeros(" not in nat.source("main") and "copyto" not in nat.source("main")
    x = RNG.standard_normal(shape).astype(np.float32)
    got, want = (m.run("main", {}, [x])[0] for m in (nat, ref))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(got, sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if not ceil:
        np.testing.assert_allclose(got, pool_ref(x, kind, kernel, strides, pads, include), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (0, 0, 0, 0)])
def test_max_pool_propagates_nan_as_the_numpy_form(pads) -> None:
    # (a 3x3 window's three rows inside the image are combined in one pass, `pool_max`:
    # (3, 4) is in such rows; (0, 0) with pads in rows of the padding, without in such rows)
    (nat, ref), _ = pool_modules("MaxPool", (1, 2, 8, 8), kernel_shape=(3, 3), strides=(2, 2), pads=pads)
    x = RNG.standard_normal((1, 2, 8, 8)).astype(np.float32)
    x[0, 0, 3, 4] = x[0, 1, 0, 0] = np.nan
    got, want = (m.run("main", {}, [x])[0] for m in (nat, ref))
    assert np.isnan(got).sum() == 3  # (3, 4): two windows, (0, 0): one
    np.testing.assert_array_equal(got, want)


def test_pool_1d_and_the_native_switch(monkeypatch) -> None:
    """A 1-d pool runs natively; WRC_NATIVE=off keeps the separable NumPy form."""
    attrs = dict(kernel_shape=[3], strides=[2], pads=[1, 1])
    (nat, ref), _ = pool_modules("MaxPool", (2, 3, 15), **attrs)
    x = RNG.standard_normal((2, 3, 15)).astype(np.float32)
    assert calls_pool(nat)
    np.testing.assert_array_equal(nat.run("main", {}, [x])[0], ref.run("main", {}, [x])[0])
    pool = native.load("window").pool
    monkeypatch.setenv("WRC_NATIVE", "off")
    (off,), _ = pool_modules("MaxPool", (2, 3, 15), backends=(NATIVE,), **attrs)
    assert not calls_pool(off, pool) and "np.maximum(" in off.source("main")
    np.testing.assert_array_equal(off.run("main", {}, [x])[0], ref.run("main", {}, [x])[0])


def pad_params(c, h, w, oh, ow, k, s, pad, accumulate=0):
    """`window.conv`'s params for an unpadded (c, h, w) image, padding `pad` on every side."""
    ext = (1, 1, c, oh, ow, 1, k, k)
    xs = (0, 0, h * w, 0, 0, 0, 0, 0)
    ws = (0, 0, k * k, 0, 0, 0, k, 1)
    os_ = (0, 0, oh * ow, ow, 1, 0, 0, 0)
    rsteps, csteps = (0, 0, 0, s, 0, 0, 1, 0), (0, 0, 0, 0, s, 0, 0, 1)
    return (accumulate, *ext, 0, *xs, 0, *ws, 0, *os_, h, w, -pad, -pad, *rsteps, *csteps)


@pytest.mark.parametrize("h, w, s, pad", [(6, 6, 1, 1), (9, 70, 1, 2), (9, 70, 2, 3), (4, 4, 1, 3)])
def test_padded_image_accumulated_into(h, w, s, pad) -> None:
    """The unpadded form, called directly: an output added to (wide rows, row blocks, rows
    one by one; padding wider than the image)."""
    conv = native.load("window").conv
    oh, ow = (h + 2 * pad - 3) // s + 1, (w + 2 * pad - 3) // s + 1
    x = RNG.standard_normal((3, h, w)).astype(np.float32)
    wt = RNG.standard_normal((3, 1, 3, 3)).astype(np.float32)
    out = RNG.standard_normal((3, oh, ow)).astype(np.float32)
    want = out + conv_ref(x[None], wt, (s, s), (pad,) * 4)[0]
    conv(x, wt, out, pad_params(3, h, w, oh, ow, 3, s, pad, accumulate=1))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_bad_padded_and_pool_calls_are_refused() -> None:
    mod = native.load("window")
    x, w, out = np.zeros((3, 6, 6), np.float32), np.zeros((3, 1, 3, 3), np.float32), np.zeros((3, 6, 6), np.float32)
    good = pad_params(3, 6, 6, 6, 6, 3, 1, 1)
    mod.conv(x, w, out, good)
    with pytest.raises(ValueError, match="^x: the view reaches outside the buffer$"):
        mod.conv(x[:2], w, out, good)  # the planes reach past the image
    bigger = list(good)
    bigger[37] = 7  # image rows
    with pytest.raises(ValueError, match="^x: the view reaches outside the buffer$"):
        mod.conv(x, w, out, tuple(bigger))
    bigger[37], bigger[38] = 2**40, 2**40  # rows * cols overflows
    with pytest.raises(ValueError, match="^x: the view reaches outside the buffer$"):
        mod.conv(x, w, out, tuple(bigger))
    bigger[37] = 0
    with pytest.raises(ValueError, match="^params: the image must have rows and columns$"):
        mod.conv(x, w, out, tuple(bigger))
    with pytest.raises(ValueError, match="^op: expected 'max' or 'sum'$"):
        mod.pool(x, out, "min", good)
    with pytest.raises(ValueError, match="^out: the view reaches outside the buffer$"):
        mod.pool(x, out[:2], "max", good)
