"""The NumPy JIT's call-saving emissions (tests/filecheck/backends/numpy-fewer-passes.mlir):
reshape chains as one reshape, erf with `out=`, softmax's difference written into its
output, gathers that fall back to masking out-of-range indices (inline constant ones
checked when the code is generated); against NumPy formulas and the interpreter."""

from __future__ import annotations

import math

import numpy as np

from wrc import pipeline
from wrc.backends import get_backend
from wrc.graph import Graph

RNG = np.random.default_rng(21)
ERF = np.vectorize(math.erf)


def run(g: Graph, inputs: list[np.ndarray], backend: str) -> list[np.ndarray]:
    module = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
    return get_backend(backend).compile(module).run(g.name, dict(g.weights), inputs)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_reshape_chain_erf_and_softmax_match_numpy_and_the_interpreter() -> None:
    x = RNG.standard_normal((2, 6)).astype(np.float32)
    w = RNG.standard_normal((3, 4)).astype(np.float32)
    g = Graph("main")
    r = g.reshape(g.reshape(g.data("x", x.shape), (12,)), (4, 3))
    m = g.matmul(r, g.const("w", w))
    # erf's output is the matmul's buffer (in place); the softmax reads erf's value twice
    # (max, then x - max into its output): both must see the right values.
    g.output(g.softmax(g.erf(m)), g.add(m, g.softmax(g.mul(m, m), axis=0)))
    m64 = x.reshape(4, 3).astype(np.float64) @ w
    want = [softmax(ERF(m64)), m64 + softmax(m64 * m64, axis=0)]
    got = {b: run(g, [x], b) for b in ("numpy", "interp")}
    for b, outs in got.items():
        for o, ref in zip(outs, want, strict=True):
            np.testing.assert_allclose(o, ref, rtol=2e-5, atol=2e-6, err_msg=b)
    for o, i in zip(got["numpy"], got["interp"], strict=True):
        np.testing.assert_allclose(o, i, rtol=2e-6, atol=1e-6)


def test_gather_on_both_sides_of_the_index_range() -> None:
    data = RNG.standard_normal((5, 3)).astype(np.float32)
    g = Graph("main")
    g.output(g.gather(g.const("d", data), g.data("i", (2, 2), np.int64)))
    cases = {
        "in range, both ends": np.array([[-5, -1], [0, 4]]),
        "one just above": np.array([[0, 5], [1, 2]]),
        "one just below": np.array([[-6, 1], [2, 3]]),
    }
    for what, idx in cases.items():
        norm = np.where(idx < 0, idx + 5, idx)
        ok = (norm >= 0) & (norm < 5)
        want = np.where(ok[..., None], data[np.where(ok, norm, 0)], 0)
        for b in ("numpy", "interp"):
            (y,) = run(g, [idx], b)
            np.testing.assert_array_equal(y, want, err_msg=f"{what}, {b}")


def test_gathers_sharing_a_constant_index_test_its_range_once_on_both_sides() -> None:
    """Two gathers by one constant's indices read one range test (the first computes it;
    tests/filecheck/backends/numpy-gather-shared-index.mlir), a third by an input's has its
    own: all right whether the constant's indices are in range or not."""
    d, e = (RNG.standard_normal((5, 3)).astype(np.float32) for _ in range(2))

    def want(data: np.ndarray, idx: np.ndarray) -> np.ndarray:
        norm = np.where(idx < 0, idx + 5, idx)
        ok = (norm >= 0) & (norm < 5)
        return np.where(ok[..., None], data[np.where(ok, norm, 0)], 0)

    j = np.array([4, -5])
    for idx in (np.array([-5, 4]), np.array([1, 5]), np.array([-6, 0])):
        g = Graph("main")
        i, de = g.const("i", idx), g.const("e", e)
        g.output(g.gather(g.const("d", d), i), g.gather(de, i), g.gather(de, g.data("j", (2,), np.int64)))
        for b in ("numpy", "interp"):
            for y, ref in zip(run(g, [j], b), [want(d, idx), want(e, idx), want(e, j)], strict=True):
                np.testing.assert_array_equal(y, ref, err_msg=f"{idx}, {b}")
def test_gather_by_inline_constant_indices_checked_when_generated() -> None:
    # torchvision's q, k, v = proj[0], proj[1], proj[2] (0-d inline indices: slices), one
    # from the end, and both ends of the range: no fallback in the code; an index out of
    # range keeps it (zeros)
    data = RNG.standard_normal((3, 2, 4)).astype(np.float32)
    indices = {"i0": (0, 0), "i1": (1, 0), "i2": (2, 0), "last": (-1, 1), "ends": ([[-2, -1], [0, 1]], 1),
               "out": ([1, 4], 2)}
    g = Graph("main")
    d = g.data("d", data.shape)
    g.output(*(g.gather(d, g.const(n, np.array(i, np.int64), inline=True), axis=a) for n, (i, a) in indices.items()))
    out = data[:, :, [1, 1]]
    out[:, :, 1] = 0
    want = [data[0], data[1], data[2], data[:, 1], data[:, [[0, 1], [0, 1]]], out]
    module = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
    values = {n: np.array(i, np.int64) for n, (i, _) in indices.items()}  # what a bundle binds
    for b in ("numpy", "interp"):
        for o, ref in zip(get_backend(b).compile(module).run("main", values, [data]), want, strict=True):
            np.testing.assert_array_equal(o, ref, err_msg=b)
    source = get_backend("numpy").compile(module).source("main")
    assert "except IndexError" not in source and source.count("np.logical_and(") == 1  # `out` only, masked


def test_comparisons_written_with_out_and_a_cast_onto_its_own_array() -> None:
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    y = np.where(RNG.random((3, 4)) < 0.3, x, RNG.standard_normal((3, 4)).astype(np.float32))
    g = Graph("main")
    a, b = g.data("x", x.shape), g.data("y", y.shape)
    ne = g.logical_or(g.less(a, b), g.greater(a, b))
    g.output(g.cast(ne, "bool"), g.cast(g.logical_and(g.less_equal(a, b), g.greater_equal(a, b)), "float32"))
    want = [x != y, (x == y).astype(np.float32)]
    assert want[0].any() and not want[0].all()
    for backend in ("numpy", "interp"):
        for o, ref in zip(run(g, [x, y], backend), want, strict=True):
            assert o.dtype == ref.dtype
            np.testing.assert_array_equal(o, ref, err_msg=backend)
