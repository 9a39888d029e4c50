"""Convolutions' im2col packed by the compiled `window.pack` (`kernels.PackedGemm`): against an
independent float64 NumPy convolution, the JIT's NumPy form (`numpy{native=false}`: the
padded copy and `np.ascontiguousarray` of the window view), onnxruntime and, on a tiny shape,
the interpreter; the NumPy form where no C compiler can be had; bad calls refused."""

from __future__ import annotations

import numpy as np
import pytest
from conv_refs import conv_ref
from numpy.lib.stride_tricks import sliding_window_view

from wrc import pipeline
from wrc.backends import get_backend, native
from wrc.graph import Graph

RNG = np.random.default_rng(12)
NATIVE, NUMPY = "numpy", "numpy{native=false}"


def compiled(x_shape, w, strides, pads, dilations=(1, 1), backends=(NATIVE, NUMPY), dtype="float32"):
    """The convolution of `x_shape` lowered to level 3 and compiled by each backend; with
    the graph's weights."""
    g = Graph("main")
    g.output(g.conv2d(g.data("x", x_shape, dtype), g.const("w", w), strides, pads, dilations))
    module = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
    return [get_backend(b).compile(module) for b in backends], dict(g.weights)


def calls_pack(mod) -> bool:
    pack = native.load("window").pack
    return any(v is pack for f in mod.functions for v in f.namespace.values())


CASES = [  # batch, channels, filters, image (h, w), kernel (kh, kw), stride, pads, dilation
    (1, 1, 4, (9, 9), (3, 3), 1, (1, 1, 1, 1), 1),
    (2, 3, 8, (16, 16), (3, 3), 1, (1, 1, 1, 1), 1),  # batch 2: one GEMM per image
    (1, 64, 8, (16, 16), (3, 3), 1, (1, 1, 1, 1), 1),  # ResNet's "same" 3x3: flat row blocks
    (1, 16, 16, (4, 4), (3, 3), 1, (1, 1, 1, 1), 1),
    (2, 32, 4, (2, 2), (3, 3), 1, (1, 1, 1, 1), 1),  # 2x2 planes, most taps in the padding
    (1, 8, 8, (16, 16), (3, 3), 2, (1, 1, 1, 1), 1),
    (2, 5, 6, (13, 12), (3, 3), 2, (0, 1, 1, 0), 1),  # asymmetric
    (1, 3, 8, (32, 32), (7, 7), 2, (3, 3, 3, 3), 1),  # the stem
    (1, 4, 5, (11, 10), (5, 5), 1, (2, 1, 0, 3), 1),
    (1, 6, 4, (10, 10), (3, 3), 1, (0, 0, 0, 0), 1),  # no padding: the view itself
    (2, 8, 16, (8, 8), (1, 1), 2, (0, 0, 0, 0), 1),  # a 1x1 stride-2 projection: a subsample
    (1, 4, 4, (12, 11), (3, 3), 1, (2, 2, 2, 2), 2),  # dilation
    (1, 2, 3, (7, 9), (3, 1), 1, (1, 0, 1, 0), 1),  # non-square
    (1, 3, 2, (3, 3), (3, 3), 1, (3, 3, 3, 3), 1),  # padding wider than the image
    (1, 4, 4, (9, 8), (3, 3), 3, (1, 1, 1, 1), 1),  # stride 3
]


@pytest.mark.parametrize("n, c, f, hw, k, s, pads, d", CASES)
def test_matches_reference_and_numpy_form(n, c, f, hw, k, s, pads, d) -> None:
    x = RNG.standard_normal((n, c, *hw)).astype(np.float32)
    w = RNG.standard_normal((f, c, *k)).astype(np.float32)
    (nat, ref), weights = compiled(x.shape, w, (s, s), pads, (d, d))
    assert calls_pack(nat) and not calls_pack(ref)
    src = nat.source("main")
    assert "ascontiguousarray" not in src and "np.zeros(" not in src and "copyto" not in src
    got, want = (m.run("main", weights, [x])[0] for m in (nat, ref))
    np.testing.assert_allclose(got, conv_ref(x, w, (s, s), pads, (d, d)), rtol=1e-4, atol=1e-4)
    # (float32 sums in another order where the GEMM is gemm.c's: `kernels.small_gemm`)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.sqrt(c * k[0] * k[1]))


def test_float64_is_packed_too() -> None:
    x = RNG.standard_normal((2, 3, 9, 8))
    w = RNG.standard_normal((4, 3, 3, 3))
    (nat, ref), weights = compiled(x.shape, w, (2, 1), (1, 0, 1, 2), dtype="float64")
    assert calls_pack(nat)
    got = nat.run("main", weights, [x])[0]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, conv_ref(x, w, (2, 1), (1, 0, 1, 2)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, ref.run("main", weights, [x])[0], rtol=1e-12, atol=1e-12)


def test_matches_interpreter_on_a_tiny_shape() -> None:
    x = RNG.standard_normal((1, 2, 5, 4)).astype(np.float32)
    w = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)
    (nat, interp), weights = compiled(x.shape, w, (2, 1), (1, 1, 0, 1), backends=(NATIVE, "interp"))
    assert calls_pack(nat)
    got, want = (m.run("main", weights, [x])[0] for m in (nat, interp))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_an_output_that_is_not_fresh_is_added_to() -> None:
    """The convolution's output filled with 1.5 instead of 0 (the fill is kept): the GEMM's
    product is added to it."""
    from xdsl.dialects import arith
    from xdsl.dialects.builtin import FloatAttr
    from xdsl.dialects.linalg import ops as linalg
    from xdsl.rewriter import InsertPoint, Rewriter

    x = RNG.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    g = Graph("main")
    g.output(g.conv2d(g.data("x", x.shape, "float32"), g.const("w", w), (1, 1), (1, 1, 1, 1)))
    module = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
    conv = next(op for op in module.walk() if isinstance(op, linalg.GenericOp) and len(op.inputs) >= 2)
    fill = next(op for op in module.walk() if isinstance(op, linalg.FillOp) and op.outputs[0] is conv.outputs[0])
    value = arith.ConstantOp(FloatAttr(1.5, fill.inputs[0].type))
    Rewriter.insert_op(value, InsertPoint.before(fill))
    fill.operands[0] = value.result
    nat = get_backend(NATIVE).compile(module)
    assert calls_pack(nat) and "np.add(" in nat.source("main")
    np.testing.assert_allclose(nat.run("main", dict(g.weights), [x])[0], conv_ref(x, w, (1, 1), (1, 1, 1, 1)) + 1.5,
                               rtol=1e-5, atol=1e-5)


def test_onnx_conv_with_bias_and_relu_matches_onnxruntime() -> None:
    """Two padded convolutions, the first's bias and ReLU a fused tail on the GEMM's output
    as it is; against onnxruntime."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from wrc.onnx import import_onnx

    w1 = RNG.standard_normal((8, 3, 3, 3)).astype(np.float32)
    b1 = RNG.standard_normal(8).astype(np.float32)
    w2 = RNG.standard_normal((6, 8, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["y"], pads=[0, 1, 1, 0], strides=[2, 2])]
    graph = helper.make_graph(nodes, "main", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (2, 3, 10, 10))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    g = import_onnx(model)
    module = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
    nat = get_backend(NATIVE).compile(module)
    assert calls_pack(nat)
    x = RNG.standard_normal((2, 3, 10, 10)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(nat.run("main", dict(g.weights), [x])[0], sess.run(None, {"x": x})[0],
                               rtol=1e-4, atol=1e-4)


@pytest.fixture
def no_compiler(monkeypatch):
    """No C compiler: native kernels cannot be built (fresh loads, restored after)."""
    monkeypatch.setenv("CC", "/nonexistent/cc")
    native._load.cache_clear()
    yield
    native._load.cache_clear()


def test_without_a_compiler_the_numpy_form_runs(no_compiler) -> None:
    x = RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)
    w = RNG.standard_normal((5, 4, 3, 3)).astype(np.float32)
    assert native.load("window") is None
    (mod,), weights = compiled(x.shape, w, (1, 1), (1, 1, 1, 1), backends=(NATIVE,))
    src = mod.source("main")
    assert "np.ascontiguousarray(" in src and "np.zeros(" in src
    assert not any(getattr(v, "__name__", None) == "pack" for f in mod.functions for v in f.namespace.values())
    np.testing.assert_allclose(mod.run("main", weights, [x])[0], conv_ref(x, w, (1, 1), (1, 1, 1, 1)),
                               rtol=1e-4, atol=1e-4)


def pack_params(ext, xs, out_shape, pad=None, xoff=0):
    """`window.pack`'s params: the 8 slots' extents, x's offset and strides, no weights, the
    output C-contiguous over the slots; `pad`: (rows, cols, row0, col0, rsteps, csteps)."""
    cs = [int(v) for v in np.cumprod((1, *ext[::-1]))[:-1][::-1]]
    p = (0, *ext, xoff, *xs, *[0] * 9, 0, *cs)
    if pad is not None:
        rows, cols, row0, col0, rsteps, csteps = pad
        p += (rows, cols, row0, col0, *rsteps, *csteps)
    return p


def test_channels_innermost_run_tap_by_tap() -> None:
    """A packed layout whose innermost slot moves between planes (channels last: neither a
    row nor a column) reads each tap on its own; as NumPy's window view."""
    pack = native.load("window").pack
    c, h, w = 5, 6, 7
    x = RNG.standard_normal((c, h, w)).astype(np.float32)
    ext = (1, 1, 1, 3, 3, h, w, c)  # kh, kw, oh, ow, c: a 3x3 "same" window, channels last
    out = np.empty((3, 3, h, w, c), np.float32)
    pad = (h, w, -1, -1, (0, 0, 0, 1, 0, 1, 0, 0), (0, 0, 0, 0, 1, 0, 1, 0))
    pack(x, out, pack_params(ext, (0, 0, 0, 0, 0, 0, 0, h * w), out.shape, pad))
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    want = sliding_window_view(xp, (3, 3), axis=(1, 2)).transpose(3, 4, 1, 2, 0)
    np.testing.assert_array_equal(out, want)


def test_bad_pack_calls_are_refused() -> None:
    pack = native.load("window").pack
    x = np.zeros((2, 4, 4), np.float32)
    out = np.zeros((2, 3, 3, 4, 4), np.float32)
    pad = (4, 4, -1, -1, (0, 0, 0, 0, 1, 0, 1, 0), (0, 0, 0, 0, 0, 1, 0, 1))
    good = pack_params((1, 1, 1, 2, 3, 3, 4, 4), (0, 0, 0, 16, 0, 0, 0, 0), out.shape, pad)
    pack(x, out, good)
    with pytest.raises(ValueError, match="^x: the view reaches outside the buffer$"):
        pack(x[:1], out, good)
    with pytest.raises(ValueError, match="^out: the view reaches outside the buffer$"):
        pack(x, out[:1], good)
    with pytest.raises(ValueError, match="^out: expected items of format d, got f$"):
        pack(x.astype(np.float64), out, good)
    strided = list(good)
    strided[-17 - 8] = 2  # the output's innermost stride: not C-contiguous
    with pytest.raises(ValueError, match="^params: pack writes a fresh C-contiguous out, with no weights$"):
        pack(x, out, tuple(strided))
    with pytest.raises(ValueError, match="^params: pack writes a fresh C-contiguous out, with no weights$"):
        pack(x, out, (1, *good[1:]))  # accumulate
    with pytest.raises(ValueError, match="^x: expected a C-contiguous array$"):
        pack(np.zeros((2, 4, 8), np.float32)[:, :, ::2], out, good)
