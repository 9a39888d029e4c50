"""Small float32 GEMMs as the compiled `gemm.matmul` (`wrc/backends/native/gemm.c`,
`emit.py` `matmul_into`, `kernels.small_gemm`): the kernel alone against float64 NumPy over
block and panel edges, and through the JIT (a matmul, a 1x1 convolution, a packed 3x3 one)
against float64 references, `numpy{native=false}` (and `WRC_NATIVE=off`) and the
interpreter; large or narrow GEMMs stay `np.matmul`; bad calls refused."""

from __future__ import annotations

import numpy as np
import pytest
from conv_refs import conv_ref

from wrc import pipeline
from wrc.backends import get_backend, native
from wrc.backends.numpy_jit import JitOptions, NumpyBackend
from wrc.backends.numpy_jit.kernels import small_gemm
from wrc.graph import Graph

RNG = np.random.default_rng(7)


def matmul():
    return native.load("gemm").matmul


@pytest.mark.parametrize("m", [1, 4, 6, 7, 13])
@pytest.mark.parametrize("k", [1, 5, 37])
@pytest.mark.parametrize("n", [1, 8, 15, 16, 17, 50])
def test_kernel_matches_float64_numpy(m: int, k: int, n: int) -> None:
    # rows in blocks of 6 and the last 1-5, columns in panels of 16 and the last (padded) one
    a = RNG.standard_normal((m, k)).astype(np.float32)
    b = RNG.standard_normal((k, n)).astype(np.float32)
    out = np.full((m, n), np.nan, np.float32)
    matmul()(a, b, out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5, atol=1e-5 * np.sqrt(k))


@pytest.mark.parametrize("m", [8, 16])
def test_kernel_over_a_deep_inner_dim(m: int) -> None:
    # few rows (`kernels.FEW_ROWS`) over hundreds of products per output, three panels and a last one
    a = RNG.standard_normal((m, 300)).astype(np.float32)
    b = RNG.standard_normal((300, 70)).astype(np.float32)
    out = np.full((m, 70), np.nan, np.float32)
    matmul()(a, b, out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5, atol=1e-5 * np.sqrt(300))


@pytest.mark.parametrize(("m", "k", "n"), [(1, 8, 8), (1, 96, 104), (3, 37, 5), (5, 40, 1), (16, 56, 4)])
def test_dot_products_of_a_transposed_or_narrow_right_side(m: int, k: int, n: int) -> None:
    # b the transpose of a C-contiguous [n, k] (a squeeze-excite weight), or fewer than 8
    # columns (then copied as rows), a with leading dims of its rows (a pool's [1, C, H*W])
    a = RNG.standard_normal((1, m, k)).astype(np.float32)
    for b in (RNG.standard_normal((n, k)).astype(np.float32).T, RNG.standard_normal((k, n)).astype(np.float32)):
        out = np.full((1, m, n), np.nan, np.float32)
        matmul()(a, b, out)
        np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5,
                                   atol=1e-5 * np.sqrt(k))


def test_kernel_on_views_and_an_output_over_its_operand() -> None:
    # C-contiguous views at an offset; out written over a (as np.matmul: the product first)
    buf = RNG.standard_normal(200).astype(np.float32)
    a, b = buf[3:3 + 40].reshape(5, 8), buf[50:50 + 64].reshape(8, 8)
    want = a.astype(np.float64) @ b.astype(np.float64)
    matmul()(a, b, a)
    np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-5)


def test_bad_calls_are_refused() -> None:
    mm = matmul()
    a, b, out = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32), np.empty((2, 4), np.float32)
    with pytest.raises(ValueError, match="^a: expected items of format f, got d$"):
        mm(a.astype(np.float64), b, out)
    with pytest.raises(ValueError, match="^b: expected a 2-d array$"):
        mm(a, b.reshape(3, 2, 2), out)
    with pytest.raises(ValueError, match="^a: expected a 2-d or more array$"):
        mm(a.reshape(6), b, out)
    with pytest.raises(ValueError, match=r"^matmul: shapes \[2, 3\] @ \[3, 4\] into \[4, 2\]$"):
        mm(a, b, out.reshape(4, 2))
    with pytest.raises(ValueError, match="^b: expected a C-contiguous array$"):
        mm(a, np.ones((3, 8), np.float32)[:, ::2], out)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="^out: expected a C-contiguous writable array$"):
        mm(a, b, out)
    with pytest.raises(TypeError):
        mm(a, b)


def test_the_size_rule() -> None:
    assert small_gemm(4, 16, 225) and small_gemm(256, 1152, 16)  # few products; few columns
    assert small_gemm(8, 576, 256) and small_gemm(16, 256, 3136)  # few rows, deep
    assert not small_gemm(64, 576, 256) and not small_gemm(17, 576, 256)  # BLAS's: large, wide
    assert not small_gemm(16, 64, 3136) and not small_gemm(2, 512, 512)  # shallow, or one or two rows: BLAS's
    assert small_gemm(16, 56, 4) and small_gemm(1, 576, 144, transposed=True)  # dot products
    assert not small_gemm(1000, 512, 1) and not small_gemm(64, 64, 64, transposed=True)


def compiled(g: Graph, options: JitOptions | None = None):
    return NumpyBackend(options or JitOptions()).compile(pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS))


def calls_matmul(module) -> int:
    return sum(getattr(v, "__name__", None) == "matmul" and getattr(v, "__module__", "") == "_wrc_gemm"
               for f in module.functions for v in f.namespace.values())


def check(g: Graph, inputs: list[np.ndarray], want: np.ndarray, gemms: int, interp: bool = False) -> None:
    """numpy (with `gemms` compiled GEMMs), numpy{native=false} (none) and the interpreter
    all match `want`."""
    on = compiled(g)
    assert calls_matmul(on) == gemms
    np.testing.assert_allclose(on.run(g.name, dict(g.weights), inputs)[0], want, rtol=1e-4, atol=1e-4)
    off = compiled(g, JitOptions(native=False))
    assert calls_matmul(off) == 0 and "np.matmul(" in off.source(g.name)
    np.testing.assert_allclose(off.run(g.name, dict(g.weights), inputs)[0], want, rtol=1e-4, atol=1e-4)
    if interp:
        lowered = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
        ref = get_backend("interp").compile(lowered).run(g.name, dict(g.weights), inputs)[0]
        np.testing.assert_allclose(on.run(g.name, dict(g.weights), inputs)[0], ref, rtol=1e-4, atol=1e-4)


def test_small_matmuls_through_the_jit() -> None:
    # [3, 5] @ [5, 20], then @ [20, 4] (4 columns: dot products), then @ w3.T (a transposed
    # weight), all compiled; then @ [6, 300] (1,800 products a row, 5,400 in all: dot
    # products would be slower) BLAS's
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    w1 = RNG.standard_normal((5, 20)).astype(np.float32)
    w2 = RNG.standard_normal((20, 4)).astype(np.float32)
    w3 = RNG.standard_normal((6, 4)).astype(np.float32)
    w4 = RNG.standard_normal((6, 300)).astype(np.float32)
    g = Graph("mm")
    y = g.matmul(g.matmul(g.data("x", x.shape), g.const("w1", w1)), g.const("w2", w2))
    y = g.matmul(g.matmul(y, g.transpose(g.const("w3", w3), (1, 0))), g.const("w4", w4))
    g.output(y)
    want = x.astype(np.float64) @ w1 @ w2 @ w3.T.astype(np.float64) @ w4
    check(g, [x], want, gemms=4, interp=True)


def test_global_average_pool_is_dot_products() -> None:
    x = RNG.standard_normal((1, 6, 5, 7)).astype(np.float32)
    g = Graph("gap")
    g.output(g.global_avg_pool(g.data("x", x.shape)))
    check(g, [x], x.astype(np.float64).mean(axis=(2, 3), keepdims=True), gemms=1)


@pytest.mark.parametrize(("shape", "kernel", "pads", "strides"), [
    ((1, 6, 9, 9), 1, (0, 0, 0, 0), (1, 1)),    # a 1x1 convolution: [F, C] @ [C, H*W]
    ((1, 4, 8, 8), 3, (1, 1, 1, 1), (1, 1)),    # packed im2col, then the compiled GEMM
    ((2, 3, 11, 9), 3, (0, 1, 2, 1), (2, 1)),   # batch 2 (a batched GEMM: BLAS's)
    ((1, 32, 18, 18), 3, (1, 1, 1, 1), (1, 1)),  # [5, 288] @ [288, 324]: few rows, deep (FEW_ROWS)
])
def test_convolutions_with_bias_and_relu(shape, kernel, pads, strides) -> None:
    x = RNG.standard_normal(shape).astype(np.float32)
    w = RNG.standard_normal((5, shape[1], kernel, kernel)).astype(np.float32)
    b = RNG.standard_normal((1, 5, 1, 1)).astype(np.float32)
    g = Graph("conv")
    g.output(g.relu(g.add(g.conv2d(g.data("x", x.shape), g.const("w", w), strides, pads), g.const("b", b))))
    want = np.maximum(conv_ref(x, w, strides, pads) + b, 0)
    check(g, [x], want, gemms=0 if shape[0] > 1 else 1)


def test_native_off_keeps_np_matmul(monkeypatch) -> None:
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    w = RNG.standard_normal((5, 20)).astype(np.float32)
    g = Graph("mm")
    g.output(g.matmul(g.data("x", x.shape), g.const("w", w)))
    monkeypatch.setenv("WRC_NATIVE", "off")
    module = compiled(g)
    assert calls_matmul(module) == 0
    np.testing.assert_allclose(module.run("mm", dict(g.weights), [x])[0], x.astype(np.float64) @ w,
                               rtol=1e-5, atol=1e-5)


def test_a_sum_over_every_dim_stays_np_matmul() -> None:
    # the pool's product with ones over a 1-d value (no leading rows): np.matmul's 1-d form
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    g = Graph("all")
    g.output(g.reduce_sum(g.data("x", x.shape), (0, 1, 2), keepdims=True))
    check(g, [x], x.astype(np.float64).sum(keepdims=True), gemms=0)
