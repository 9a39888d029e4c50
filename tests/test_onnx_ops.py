"""The ge ops added for ONNX models, built with `wrc.Graph`, on both backends against NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_models import check, compile_bundles

import wrc

RNG = np.random.default_rng(21)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def test_new_ops_both_backends_before_and_after_update():
    g = wrc.Graph("onnx_ops")
    x = g.data("x", (2, 3))
    i = g.data("i", (2, 2), "int64")
    n = g.data("n", (2, 3), "int32")
    w = g.const("w", rand(4, 3))
    e = g.const("e", np.abs(rand(3)) + 0.5)
    ax = g.abs(x)
    g.output(
        g.sqrt(ax), g.log(ax), g.neg(x), g.erf(x), g.pow(ax, e),
        g.maximum(x, g.slice(w, [0, 0], [2, 3])), g.minimum(x, e),
        g.reduce_max(x, [1]), g.reduce_max(n, [0], keepdims=True),
        g.cast(x, "int32"), g.cast(i, "float32"), g.cast(x, "bool"),
        g.where(g.cast(x, "bool"), x, e), g.concat([x, g.slice(w, [1, 0], [4, 3])], 0),
        g.slice(w, [1, 0], [4, 3], [2, 2]), g.expand(e, (2, 2, 3)),
        g.gather(w, i, 0), g.gather(x, g.cast(i, "int32"), 1),
    )

    erf = np.vectorize(math.erf, otypes=[np.float64])

    def ref(xv, iv, nv, wv, ev):
        a = np.abs(xv)
        return [np.sqrt(a), np.log(a), -xv, erf(xv).astype(np.float32), a ** ev,
                np.maximum(xv, wv[:2]), np.minimum(xv, ev), xv.max(1), nv.max(0, keepdims=True),
                xv.astype(np.int32), iv.astype(np.float32), xv != 0, np.where(xv != 0, xv, ev),
                np.concatenate([xv, wv[1:4]]), wv[1:4:2, 0:3:2], np.broadcast_to(ev, (2, 2, 3)),
                np.take(wv, iv, 0), np.take(xv, iv, 1)]

    xv = rand(2, 3)
    iv = np.array([[0, 2], [-1, 1]], np.int64)
    nv = RNG.integers(-50, 50, (2, 3)).astype(np.int32)
    bundles = compile_bundles(g, ["w", "e"])
    feeds = {"x": xv, "i": iv, "n": nv}
    check(bundles, feeds, ref(xv, iv, nv, g.weight("w"), g.weight("e")))
    new = {"w": rand(4, 3), "e": np.abs(rand(3)) + 0.5}
    for b in bundles.values():
        b.update(new)
    check(bundles, feeds, ref(xv, iv, nv, new["w"], new["e"]))


@pytest.mark.parametrize("bad, message", [
    (lambda g, x: g.slice(x, [0], [1]), "one start, end and step per dim"),
    (lambda g, x: g.slice(x, [0, 0], [1, 1], [1, -1]), "steps must be positive"),
    (lambda g, x: g.sqrt(g.cast(x, "int32")), "ge.sqrt: expects a floating-point tensor"),
    (lambda g, x: g.expand(x, (3, 3)), "do not broadcast"),
    (lambda g, x: g.gather(x, x), "indices must be i32 or i64"),
    (lambda g, x: g.concat([x, g.cast(x, "int32")], 0), "element types f32 and i32 differ"),
    (lambda g, x: g.where(x, x, x), "the condition must be an i1 tensor"),
])
def test_builder_errors_name_the_op(bad, message):
    g = wrc.Graph("bad")
    x = g.data("x", (2, 3))
    with pytest.raises(wrc.WrcError, match=message):
        bad(g, x)
