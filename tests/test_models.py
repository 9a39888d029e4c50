"""Whole models through the whole pipeline: both backends against independent NumPy formulas
and against each other (the interpreter is the oracle)."""

from __future__ import annotations

import numpy as np
import pytest

import wrc
from wrc.bundle_format import bundle_bytes

RNG = np.random.default_rng(7)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- independent references


def ref_pad(x: np.ndarray, pads, value: float) -> np.ndarray:
    top, left, bottom, right = pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def ref_conv(x, w, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), groups=1):
    x = ref_pad(x, pads, 0.0).astype(np.float64)
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    sh, sw = strides
    dh, dw = dilations
    oh = (h - dh * (kh - 1) - 1) // sh + 1
    ow = (wd - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, f, oh, ow))
    fg = f // groups
    for g in range(groups):
        xs = x[:, g * cg:(g + 1) * cg]
        ws = w[g * fg:(g + 1) * fg].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
                out[:, g * fg:(g + 1) * fg] += np.einsum("nchw,fc->nfhw", patch, ws[:, :, i, j])
    return out.astype(np.float32)


def ref_pool(x, kernel, strides, pads, kind, count_include_pad=False):
    fill = -np.inf if kind == "max" else 0.0
    xp = ref_pad(x, pads, fill)
    ones = ref_pad(np.ones_like(x), pads, 1.0 if count_include_pad else 0.0)
    kh, kw = kernel
    sh, sw = strides
    oh = (xp.shape[2] - kh) // sh + 1
    ow = (xp.shape[3] - kw) // sw + 1
    out = np.empty(x.shape[:2] + (oh, ow), np.float64)
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            if kind == "max":
                out[:, :, i, j] = win.max(axis=(2, 3))
            else:
                out[:, :, i, j] = win.sum(axis=(2, 3)) / ones[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].sum(axis=(2, 3))
    return out.astype(np.float32)


def ref_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


# ---------------------------------------------------------------- helpers


def compile_bundles(graph: wrc.Graph, names: list[str]) -> dict[str, wrc.Bundle]:
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(graph, names)
        model = wrc.bundle_build_model([graphs.infer_graph, graphs.var_init_graph, graphs.var_update_graph])
    data = bundle_bytes(model)
    bundles = {backend: wrc.load_bundle(data, backend=backend) for backend in ("numpy", "interp")}
    for b in bundles.values():
        b.init()
    return bundles


def check(bundles, inputs, expected, tol=1e-5):
    outs = {name: b.infer(inputs) for name, b in bundles.items()}
    for name, got in outs.items():
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.dtype == e.dtype and g.shape == e.shape, name
            np.testing.assert_allclose(g, e, rtol=tol, atol=tol, err_msg=f"backend {name}")
    for a, b in zip(outs["numpy"], outs["interp"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- models


def test_mlp_both_backends_before_and_after_update():
    w = {"const_1": rand(6, 5), "b1": rand(5), "const_2": rand(5, 4), "b2": rand(4)}
    g = wrc.Graph("mlp")
    x = g.data("x", (2, 6))
    h = g.relu(g.add(g.matmul(x, g.const("const_1", w["const_1"])), g.const("b1", w["b1"])))
    y = g.softmax(g.add(g.matmul(h, g.const("const_2", w["const_2"])), g.const("b2", w["b2"])), axis=1)
    g.output(y)

    def ref(x, w):
        return ref_softmax(np.maximum(x @ w["const_1"] + w["b1"], 0) @ w["const_2"] + w["b2"], 1)

    bundles = compile_bundles(g, ["const_1", "const_2", "b2"])
    xv = rand(2, 6)
    check(bundles, {"x": xv}, [ref(xv, w)])
    new = {"const_1": rand(6, 5), "const_2": rand(5, 4), "b2": rand(4)}
    for b in bundles.values():
        b.update(new)
    check(bundles, {"x": xv}, [ref(xv, {**w, **new})])


def test_cnn_both_backends_before_and_after_update():
    w = {"conv1": rand(3, 2, 3, 3), "cb": rand(3, 1, 1), "fc": rand(3, 4)}
    g = wrc.Graph("cnn")
    x = g.data("x", (1, 2, 6, 6))
    c = g.conv2d(x, g.const("conv1", w["conv1"]), strides=(1, 1), pads=(1, 1, 1, 1))
    c = g.relu(g.add(c, g.const("cb", w["cb"])))
    p = g.max_pool2d(c, (2, 2))
    v = g.reshape(g.global_avg_pool(p), (1, 3))
    g.output(g.softmax(g.matmul(v, g.const("fc", w["fc"]))), p)

    def ref(x, w):
        c = np.maximum(ref_conv(x, w["conv1"], pads=(1, 1, 1, 1)) + w["cb"], 0)
        p = ref_pool(c, (2, 2), (2, 2), (0, 0, 0, 0), "max")
        v = p.mean(axis=(2, 3))
        return [ref_softmax(v @ w["fc"]), p]

    bundles = compile_bundles(g, ["conv1", "fc"])
    xv = rand(1, 2, 6, 6)
    check(bundles, {"x": xv}, ref(xv, w))
    new = {"conv1": rand(3, 2, 3, 3), "fc": rand(3, 4)}
    for b in bundles.values():
        b.update(new)
    check(bundles, {"x": xv}, ref(xv, {**w, **new}))


@pytest.mark.parametrize(
    "strides, pads, dilations, groups",
    [((2, 2), (0, 0, 0, 0), (1, 1), 1), ((1, 2), (1, 0, 2, 1), (2, 1), 2), ((1, 1), (0, 0, 0, 0), (1, 1), 4)],
)
def test_conv_variants(strides, pads, dilations, groups):
    wv = rand(4, 4 // groups, 3, 2)
    g = wrc.Graph("conv")
    x = g.data("x", (2, 4, 7, 6))
    g.output(g.conv2d(x, g.const("w", wv), strides=strides, pads=pads, dilations=dilations, groups=groups))
    bundles = compile_bundles(g, ["w"])
    xv = rand(2, 4, 7, 6)
    check(bundles, {"x": xv}, [ref_conv(xv, wv, strides, pads, dilations, groups)], tol=1e-4)


def test_pools_and_reductions():
    g = wrc.Graph("pools")
    x = g.data("x", (1, 2, 5, 5))
    k = g.const("k", np.float32(2.0))
    xs = g.mul(x, k)
    g.output(
        g.avg_pool2d(xs, (3, 3), strides=(2, 2), pads=(1, 1, 1, 1)),
        g.avg_pool2d(xs, (2, 2), strides=(1, 1), pads=(1, 1, 0, 0), count_include_pad=True),
        g.max_pool2d(xs, (3, 3), strides=(2, 2), pads=(1, 1, 1, 1)),
        g.reduce_sum(xs, [1, 3]),
        g.reduce_mean(xs, [2], keepdims=True),
    )
    bundles = compile_bundles(g, ["k"])
    xv = rand(1, 2, 5, 5)
    xs = 2 * xv
    check(bundles, {"x": xv}, [
        ref_pool(xs, (3, 3), (2, 2), (1, 1, 1, 1), "avg"),
        ref_pool(xs, (2, 2), (1, 1), (1, 1, 0, 0), "avg", count_include_pad=True),
        ref_pool(xs, (3, 3), (2, 2), (1, 1, 1, 1), "max"),
        xs.sum(axis=(1, 3)),
        xs.mean(axis=2, keepdims=True),
    ])


def test_elementwise_and_layout_ops():
    g = wrc.Graph("ew")
    a = g.data("a", (2, 3, 4))
    b = g.data("b", (3, 1))
    c = g.const("c", rand(4))
    s = g.sub(g.div(a, g.exp(b)), c)
    g.output(
        g.sigmoid(s),
        g.tanh(s),
        g.transpose(s, (2, 0, 1)),
        g.reshape(g.transpose(s, (0, 2, 1)), (4, -1)),
        g.softmax(s, axis=1),
        g.matmul(a, g.const("m", rand(2, 4, 3))),
    )
    bundles = compile_bundles(g, ["c"])
    av, bv = rand(2, 3, 4), rand(3, 1)
    wc = g.weight("c")
    wm = g.weight("m")
    sv = av / np.exp(bv) - wc
    check(bundles, {"a": av, "b": bv}, [
        1 / (1 + np.exp(-sv)),
        np.tanh(sv),
        sv.transpose(2, 0, 1),
        sv.transpose(0, 2, 1).reshape(4, -1),
        ref_softmax(sv, 1),
        av @ wm,
    ])
