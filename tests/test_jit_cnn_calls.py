"""A small CNN's per-call work in the generated code (issue 12, session 5): GEMM operands
as their buffers reshaped (or transposed) instead of strided views, a 1x1 convolution's
GEMM writing its output's rows, and sums over trailing dims (a global average pool) as one
BLAS call. Numbers against NumPy formulas in float64, `numpy{native=false}` and, on tiny
shapes, the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects import func

from wrc import pipeline
from wrc.backends import get_backend
from wrc.backends.numpy_jit import JitOptions, NumpyBackend
from wrc.backends.numpy_jit.gemm import Gemm
from wrc.backends.numpy_jit.plan import plan_function
from wrc.graph import Graph

RNG = np.random.default_rng(12)


def compiled(g: Graph, options: JitOptions | None = None):
    return NumpyBackend(options or JitOptions()).compile(pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS))


def check(g: Graph, inputs: list[np.ndarray], want: np.ndarray, tol: float, interp: bool = True) -> str:
    """The generated source, after checking numpy (native on and off) and the interpreter."""
    module = compiled(g)
    got = module.run(g.name, dict(g.weights), inputs)[0]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    off = compiled(g, JitOptions(native=False)).run(g.name, dict(g.weights), inputs)[0]
    np.testing.assert_allclose(off, want, rtol=tol, atol=tol)
    if interp:
        lowered = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
        ref = get_backend("interp").compile(lowered).run(g.name, dict(g.weights), inputs)[0]
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
    return module.source(g.name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_convolution_reads_and_writes_reshaped_buffers(dtype: type) -> None:
    # a 1x1 convolution (+ bias, relu): [F, C] @ [C, H*W] into [F, H*W], all three the
    # buffers reshaped; the GEMM writes rows (its output is not a transposed view)
    x = RNG.standard_normal((1, 5, 6, 7)).astype(dtype)
    w = RNG.standard_normal((4, 5, 1, 1)).astype(dtype)
    b = RNG.standard_normal((1, 4, 1, 1)).astype(dtype)
    g = Graph("pw")
    g.output(g.relu(g.add(g.conv2d(g.data("x", x.shape, dtype), g.const("w", w)), g.const("b", b))))
    want = np.maximum(np.einsum("fc,nchw->nfhw", w[:, :, 0, 0].astype(np.float64), x) + b, 0)
    src = check(g, [x], want, 1e-5 if dtype == np.float32 else 1e-12)
    assert "_nd(" not in src and "ascontiguousarray" not in src
    assert src.count(".reshape(") >= 3
    fn = next(op for op in pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS).ops
              if isinstance(op, func.FuncOp))
    [gemm] = [k for k in plan_function(fn, JitOptions()).kernels.values() if isinstance(k, Gemm)]
    assert gemm.cost == 0


@pytest.mark.parametrize("n", [6, 8])
def test_transposed_matrix_operand_is_a_reshape_and_transpose(n: int) -> None:
    # x @ w.T with w a [N, K] weight: its [K, N] view is the weight reshaped, transposed
    # (a square one too, whose transposed shape is its own)
    x = RNG.standard_normal((3, 8)).astype(np.float32)
    w = RNG.standard_normal((n, 8)).astype(np.float32)
    g = Graph("xt")
    g.output(g.matmul(g.data("x", x.shape), g.transpose(g.const("w", w), (1, 0))))
    src = check(g, [x], x.astype(np.float64) @ w.T.astype(np.float64), 1e-5)
    assert "_nd(" not in src


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (2, 6, 7, 7), (2, 3, 1, 9)])
def test_global_average_pool_is_one_product_with_ones(shape: tuple[int, ...]) -> None:
    x = RNG.standard_normal(shape).astype(np.float32)
    g = Graph("gap")
    g.output(g.global_avg_pool(g.data("x", x.shape)))
    src = check(g, [x], x.astype(np.float64).mean(axis=(2, 3), keepdims=True), 1e-6, interp=x.size < 200)
    # (a small product: the compiled gemm.matmul where it builds, tests/test_native_gemm.py)
    calls = {getattr(v, "__name__", None) for f in compiled(g).functions for v in f.namespace.values()}
    assert ".reduce(" not in src and ("np.matmul(" in src or "matmul" in calls)


def test_sum_over_three_trailing_dims() -> None:
    x = RNG.standard_normal((3, 4, 5, 6)).astype(np.float64)
    g = Graph("s3")
    g.output(g.reduce_sum(g.data("x", x.shape, np.float64), (1, 2, 3), keepdims=True))
    src = check(g, [x], x.sum(axis=(1, 2, 3), keepdims=True), 1e-12)
    assert ".reduce(" not in src


@pytest.mark.parametrize("n", [1, 2])
def test_fire_module_computes_into_its_concatenation(n: int) -> None:
    # SqueezeNet's fire module: the two expand convolutions (GEMM, bias, relu in place) are
    # computed straight into their halves of the concatenation's buffer (`find_concat_parts`):
    # no copy in. With two images a half is not contiguous in it: the copies stay.
    from conv_refs import conv_ref

    x = RNG.standard_normal((n, 6, 7, 7)).astype(np.float32)
    ws = {k: RNG.standard_normal(s).astype(np.float32) for k, s in
          (("ws", (3, 6, 1, 1)), ("w1", (4, 3, 1, 1)), ("w3", (5, 3, 3, 3)), ("wo", (2, 9, 1, 1)))}
    bs = {k: RNG.standard_normal((1, f, 1, 1)).astype(np.float32) for k, f in (("bs", 3), ("b1", 4), ("b3", 5))}
    g = Graph("fire")

    def conv(h, w, b, pads=(0, 0, 0, 0)):
        return g.relu(g.add(g.conv2d(h, g.const(w, ws[w]), pads=pads), g.const(b, bs[b])))

    s = conv(g.data("x", x.shape), "ws", "bs")
    cat = g.concat([conv(s, "w1", "b1"), conv(s, "w3", "b3", (1, 1, 1, 1))], axis=1)
    g.output(g.conv2d(cat, g.const("wo", ws["wo"])))

    def ref(h, w, b, pads=(0, 0, 0, 0)):
        return np.maximum(conv_ref(h, ws[w].astype(np.float64), (1, 1), pads) + bs[b], 0)

    r = ref(x.astype(np.float64), "ws", "bs")
    want = conv_ref(np.concatenate([ref(r, "w1", "b1"), ref(r, "w3", "b3", (1, 1, 1, 1))], axis=1),
                    ws["wo"].astype(np.float64), (1, 1), (0, 0, 0, 0))
    src = check(g, [x], want, 1e-4)
    assert src.count("np.copyto(") == (0 if n == 1 else 2)
    plain = compiled(g, JitOptions(reuse_buffers=False)).run(g.name, dict(g.weights), [x])[0]
    assert np.array_equal(compiled(g).run(g.name, dict(g.weights), [x])[0], plain)
