"""The NumPy JIT's transformer kernels: attention's head transposes read through views by the
GEMMs (`numpy_jit/forward.py`); against NumPy formulas, the interpreter, and the JIT with
the option off."""

from __future__ import annotations

import numpy as np
import pytest

from wrc import pipeline
from wrc.backends import get_backend
from wrc.backends.numpy_jit import JitOptions, NumpyBackend
from wrc.graph import Graph, Tensor

RNG = np.random.default_rng(12)


def run(g: Graph, inputs: list[np.ndarray], backend: str, options: JitOptions | None = None) -> list[np.ndarray]:
    module = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
    compiler = NumpyBackend(options) if options is not None else get_backend(backend)
    return compiler.compile(module).run(g.name, dict(g.weights), inputs)


def source(g: Graph, options: JitOptions | None = None) -> str:
    module = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
    return NumpyBackend(options or JitOptions()).compile(module).source(g.name)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(seq: int = 5, heads: int = 2, dh: int = 3, scaled: bool = False) -> tuple[Graph, np.ndarray, np.ndarray]:
    """Self-attention with the exporters' head transposes: q, k, v [seq, heads*dh] viewed as
    [heads, seq, dh] (k as [heads, dh, seq]), and the heads' outputs transposed back;
    `scaled`: q and k each multiplied by a scale after their transposes (as sdpa exports)."""
    d = heads * dh
    x = RNG.standard_normal((seq, d)).astype(np.float32)
    w = {n: RNG.standard_normal((d, d)).astype(np.float32) / 2 for n in "qkvo"}
    g = Graph("attn")
    a = g.data("x", x.shape)

    def proj(n: str, perm: tuple[int, ...]) -> object:
        return g.transpose(g.reshape(g.add(g.matmul(a, g.const(f"w{n}", w[n])), a), (seq, heads, dh)), perm)

    q, k, v = proj("q", (1, 0, 2)), proj("k", (1, 2, 0)), proj("v", (1, 0, 2))
    if scaled:
        c = g.const("c", np.float32(0.5))
        q, k = g.mul(q, c), g.mul(k, c)
    p = g.softmax(g.matmul(q, k))
    o = g.reshape(g.transpose(g.matmul(p, v), (1, 0, 2)), (seq, d))
    g.output(g.matmul(o, g.const("wo", w["o"])))
    x64 = x.astype(np.float64)

    def heads_of(n: str) -> np.ndarray:
        return (x64 @ w[n] + x64).reshape(seq, heads, dh).transpose(1, 0, 2)

    s = heads_of("q") @ heads_of("k").transpose(0, 2, 1) * (0.25 if scaled else 1)
    ref = (softmax(s) @ heads_of("v")).transpose(1, 0, 2).reshape(seq, d) @ w["o"]
    return g, x, ref


@pytest.mark.parametrize("scaled", [False, True])
def test_head_transposes_read_through_views(scaled: bool) -> None:
    # scaled: the multiplies read q and k through the views (they do the transposes)
    g, x, ref = attention(scaled=scaled)
    got = run(g, [x], "numpy")[0]
    off = run(g, [x], "numpy", JitOptions(forward_copies=False))[0]
    interp = run(g, [x], "interp")[0]
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(got, interp, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(got, off, rtol=1e-6, atol=1e-6)
    # q's, k's and v's copies are gone (the heads' outputs, read by a GEMM as one row of
    # all heads, keep theirs)
    on, before = source(g), source(g, JitOptions(forward_copies=False))
    assert on.count("np.copyto(") == 1 and before.count("np.copyto(") == 4


def layer_norm(g: Graph, a: Tensor, gamma: np.ndarray, beta: np.ndarray) -> Tensor:
    """LayerNorm over the last axis as the importer spells it (two row means, eps 1e-5)."""
    d = g.sub(a, g.reduce_mean(a, -1, keepdims=True))
    var = g.reduce_mean(g.mul(d, d), -1, keepdims=True)
    return g.add(g.mul(g.div(d, g.sqrt(g.add(var, g.const("eps", np.float32(1e-5))))), g.const("g", gamma)),
                 g.const("b", beta))


def layer_norm64(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    dd = x64 - x64.mean(-1, keepdims=True)
    return dd / np.sqrt((dd * dd).mean(-1, keepdims=True) + 1e-5) * gamma + beta


def test_layer_norm_row_sums_as_products_with_ones() -> None:
    # LayerNorm's two row means and softmax's row sums: a product with a column of ones
    # (`FuncEmitter.row_sum`); a sum over a non-innermost axis stays a reduction
    x = (RNG.standard_normal((2, 5, 8)) * 3 + 1).astype(np.float32)
    gamma, beta = (RNG.standard_normal(8).astype(np.float32) for _ in range(2))
    g = Graph("ln")
    a = g.data("x", x.shape)
    y = layer_norm(g, a, gamma, beta)
    g.output(y, g.softmax(y), g.reduce_sum(a, 1, keepdims=True))
    ref = layer_norm64(x, gamma, beta)
    want = [ref, softmax(ref), x.astype(np.float64).sum(1, keepdims=True)]
    got, interp = run(g, [x], "numpy"), run(g, [x], "interp")
    for o, i, w in zip(got, interp, want, strict=True):
        np.testing.assert_allclose(o, w, rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(o, i, rtol=2e-5, atol=2e-5)
    src = source(g, JitOptions(native=False))  # (with native kernels, fused: tests/test_fuse.py)
    assert src.count("np.add.reduce(") == 1 and src.count("np.matmul(") == 3  # 2 means, softmax's sum


def test_masked_softmax_nan_rows_filled_in_place() -> None:
    # sdpa's masked softmax: a fully masked row is NaN, then `where(isnan(p), 0, p)`:
    # `isnan` is one ufunc with `out=` (not `isnan(p) | isnan(p)`), and the fill writes only
    # the masked elements into p's own array (`copyto(..., where=)`)
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    mask = np.zeros((3, 4), np.float32)
    mask[1] = -np.inf
    mask[2, :2] = -np.inf
    g = Graph("masked")
    p = g.softmax(g.add(g.data("x", x.shape), g.const("mask", mask)))
    g.output(g.where(g.is_nan(p), g.const("zero", np.float32(0)), p))
    with np.errstate(invalid="ignore"):
        ref = softmax(x.astype(np.float64) + mask)
    ref[np.isnan(ref)] = 0
    got, interp = run(g, [x], "numpy")[0], run(g, [x], "interp")[0]
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(got, interp, rtol=2e-6, atol=1e-7)
    assert not got[1].any()
    src = source(g, JitOptions(native=False))  # (with native kernels, fused: tests/test_fuse.py)
    assert "np.isnan(" in src and "np.logical_or(" not in src and "where=" in src
