"""The NumPy JIT's buffer reuse (dead temporaries, in-place elementwise chains) changes no
result: bit-identical to the same JIT without reuse, and equal to the interpreter."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import wrc

RNG = np.random.default_rng(5)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def mlp() -> tuple[wrc.Graph, dict[str, np.ndarray]]:
    g = wrc.Graph("mlp")
    x = g.data("x", (3, 6))
    h = g.relu(g.add(g.matmul(x, g.const("w0", rand(6, 6))), g.const("b0", rand(6))))
    h2 = g.relu(g.add(g.matmul(h, g.const("w1", rand(6, 6))), h))  # residual: h read twice
    s = g.softmax(g.add(g.matmul(h2, g.const("w2", rand(6, 4))), g.const("b2", rand(4))), axis=1)
    g.output(s, h2, g.sigmoid(h))  # intermediate buffers returned too
    return g, {"x": rand(3, 6)}


def cnn() -> tuple[wrc.Graph, dict[str, np.ndarray]]:
    g = wrc.Graph("cnn")
    x = g.data("x", (2, 2, 6, 6))
    c = g.relu(g.add(g.conv2d(x, g.const("c1", rand(3, 2, 3, 3)), pads=(1, 1, 1, 1)), g.const("cb", rand(3, 1, 1))))
    c = g.relu(g.conv2d(c, g.const("c2", rand(3, 3, 3, 3)), strides=(2, 2), pads=(1, 1, 1, 1)))
    p = g.max_pool2d(c, (2, 2))
    g.output(g.matmul(g.reshape(g.global_avg_pool(p), (2, 3)), g.const("fc", rand(3, 4))))
    return g, {"x": rand(2, 2, 6, 6)}


def attention() -> tuple[wrc.Graph, dict[str, np.ndarray]]:
    g = wrc.Graph("attn")
    x = g.data("x", (4, 8))
    q = g.transpose(g.reshape(g.matmul(x, g.const("wq", rand(8, 8))), (4, 2, 4)), (1, 0, 2))
    k = g.transpose(g.reshape(g.matmul(x, g.const("wk", rand(8, 8))), (4, 2, 4)), (1, 2, 0))
    v = g.transpose(g.reshape(g.matmul(x, g.const("wv", rand(8, 8))), (4, 2, 4)), (1, 0, 2))
    a = g.matmul(g.softmax(g.mul(g.matmul(q, k), g.const("s", np.array(0.5, np.float32))), axis=-1), v)
    g.output(g.add(x, g.reshape(g.transpose(a, (1, 0, 2)), (4, 8))))
    return g, {"x": rand(4, 8)}


def bundles(graph: wrc.Graph, reuse: bool, backend: str = "numpy", pool_all: bool = False,
            init: bool = True) -> wrc.Bundle:
    """`pool_all`: buffers of any size may take pooled arrays (by default from 128 KiB)."""
    with wrc.BuildSession():
        gs = wrc.convert_to_weight_refreshable_graphs(graph, list(graph.constants))
        model = wrc.bundle_build_model([gs.infer_graph, gs.var_init_graph, gs.var_update_graph])
    if not reuse:
        backend = f"{backend}{{reuse-buffers=false}}"
    elif pool_all and backend == "numpy":
        backend = "numpy{pool-min-bytes=0}"
    b = wrc.load_bundle(model, backend=backend)
    if init:
        b.init()
    return b


@pytest.mark.parametrize("make", [mlp, cnn, attention])
def test_reuse_is_bit_identical_and_matches_interpreter(make):
    graph, inputs = make()
    on, off = bundles(graph, True), bundles(graph, False)
    got, ref = on.infer(inputs), off.infer(inputs)
    for a, b in zip(got, ref, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    # Hoisted (arenas, views made once: the default) or every statement per call: the same.
    for a, b in zip(got, bundles(graph, True, "numpy{hoist=false}").infer(inputs), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    if make is not cnn:  # the interpreter takes minutes on the convolutions
        for a, b in zip(got, bundles(graph, True, "interp").infer(inputs), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # Outputs are distinct fresh arrays, even when their buffers were recycled ones.
    again = on.infer(inputs)
    for a, b in zip(got, again, strict=True):
        assert a is not b and not np.shares_memory(a, b)
    assert len({id(a) for a in got}) == len(got)
    assert not any(np.shares_memory(a, b) for i, a in enumerate(got) for b in got[i + 1:])


@pytest.mark.parametrize("make", [attention, cnn])
def test_reused_buffers_are_per_call_under_threads(make):
    """Concurrent calls on one bundle each take an arena of their own (`reader`'s pool):
    each thread's results are its inputs', and no two results share memory."""
    graph, inputs = make()
    b = bundles(graph, True)
    xs = [rand(*inputs["x"].shape) for _ in range(8)]
    expected = [b.infer({"x": x})[0] for x in xs]
    assert not any(np.shares_memory(a, c) for i, a in enumerate(expected) for c in expected[i + 1:])
    errors: list[object] = []

    def worker(i: int) -> None:
        try:
            for _ in range(50):
                if not np.array_equal(b.infer({"x": xs[i]})[0], expected[i]):
                    errors.append(i)
        except Exception as e:  # a crashing worker is otherwise only a pytest warning
            errors.append(f"worker {i}: {e!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and not errors, errors[:3]


def widening(rows: int = 64, unit: int = 16) -> tuple[wrc.Graph, dict[str, np.ndarray]]:
    """A chain whose buffers all differ in shape (as DenseNet's growing concatenations): only
    pooled arrays (one flat array for buffers of several shapes) can be reused."""
    g = wrc.Graph("widening")
    x = g.data("x", (rows, 2 * unit))
    h, width = x, 2 * unit
    for i, w in enumerate(unit * m for m in (3, 5, 4, 7, 6, 9, 2)):
        h = g.relu(g.add(g.matmul(h, g.const(f"w{i}", rand(width, w) / np.float32(np.sqrt(width)))), g.const(f"b{i}", rand(w))))
        width = w
    g.output(h)
    return g, {"x": rand(rows, 2 * unit)}


def test_pooled_arrays_are_bit_identical_and_bound_the_peak(monkeypatch):
    import tracemalloc

    graph, inputs = widening()
    on, off = bundles(graph, True, pool_all=True), bundles(graph, False)
    src = on._compiled.source("var_infer_graph")
    assert "].reshape(" in src  # buffers as views of a flat array's start
    assert "].reshape(" not in bundles(graph, True)._compiled.source("var_infer_graph")  # all < 128 KiB
    got, ref = on.infer(inputs)[0], off.infer(inputs)[0]
    assert got.dtype == ref.dtype and np.array_equal(got, ref)
    small, small_inputs = widening(2, 2)  # the interpreter takes minutes on the large one
    np.testing.assert_allclose(bundles(small, True, pool_all=True).infer(small_inputs)[0],
                               bundles(small, True, "interp").infer(small_inputs)[0], rtol=1e-5, atol=1e-5)
    assert got.base is None and not np.shares_memory(got, on.infer(inputs)[0])  # a result of its own

    def peak(b: wrc.Bundle) -> int:
        """Of a fresh bundle's `init()`: its warm-up is the first infer, which makes the arena
        later calls reuse (nothing mapped ahead for updates here; the constants are shared)."""
        tracemalloc.start()
        try:
            b.init()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    monkeypatch.setattr(wrc.runtime, "PREFAULT_BYTES", 0)
    # Without reuse every layer's buffer lives to the end: 7 arrays of 64 x (48..144) floats;
    # pooled, two flat arrays (the layer being computed and the one it reads) and the result.
    widest = 64 * 144 * 4
    assert peak(bundles(graph, False, init=False)) > 5 * widest
    assert peak(bundles(graph, True, pool_all=True, init=False)) < 3.2 * widest


def dense_block() -> tuple[wrc.Graph, dict[str, np.ndarray]]:
    """DenseNet's pattern (each layer concatenates its input with new features, read again
    by the next layers) and a slice: each concatenation's result and the slice are parts of
    the buffer they were copied from (`MemoryPlan.parts`)."""
    g = wrc.Graph("dense")
    x = g.data("x", (1, 2, 3, 3))
    h = x
    for i in range(3):
        f = g.relu(g.add(h, g.const(f"b{i}", rand(1, 2 + 2 * i, 1, 1))))
        h = g.concat([h, g.slice(f, [0, 0, 0, 0], [1, 2, 3, 3])], axis=1)
        h = g.add(h, g.relu(h))  # the concatenation read twice, once by an op writing a new buffer
    g.output(h)
    return g, {"x": rand(1, 2, 3, 3)}


def test_parts_of_dead_buffers_are_bit_identical_and_match_interpreter():
    graph, inputs = dense_block()
    on, off = bundles(graph, True), bundles(graph, False)
    # (without forwarding: the elementwise readers of a concatenation would read it through
    # views of its copies' source instead, and the count below would mean nothing)
    plain = wrc.load_bundle(on.model, "numpy{reuse-buffers=false forward-copies=false}")
    copies = [b._compiled.source("var_infer_graph").count("np.copyto(") for b in (on, plain)]
    assert copies[1] - copies[0] == 8  # the three concatenations' copies out, the three slices and two of the
    # concatenations' first operands (computed into their part: `find_concat_parts`) are views
    got, ref = on.infer(inputs)[0], off.infer(inputs)[0]
    assert np.array_equal(got, ref)
    np.testing.assert_allclose(got, bundles(graph, True, "interp").infer(inputs)[0], rtol=1e-5, atol=1e-5)
    again = on.infer(inputs)[0]
    assert np.array_equal(again, got) and not np.shares_memory(again, got)
