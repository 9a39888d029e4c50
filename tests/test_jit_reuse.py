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


def bundles(graph: wrc.Graph, reuse: bool, backend: str = "numpy") -> wrc.Bundle:
    with wrc.BuildSession():
        gs = wrc.convert_to_weight_refreshable_graphs(graph, list(graph.constants))
        model = wrc.bundle_build_model([gs.infer_graph, gs.var_init_graph, gs.var_update_graph])
    b = wrc.load_bundle(model, backend=backend if reuse else f"{backend}{{reuse-buffers=false}}")
    b.init()
    return b


@pytest.mark.parametrize("make", [mlp, cnn, attention])
def test_reuse_is_bit_identical_and_matches_interpreter(make):
    graph, inputs = make()
    on, off = bundles(graph, True), bundles(graph, False)
    got, ref = on.infer(inputs), off.infer(inputs)
    for a, b in zip(got, ref, strict=True):
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


def test_reused_buffers_are_per_call_under_threads():
    graph, inputs = attention()
    b = bundles(graph, True)
    xs = [rand(4, 8) for _ in range(8)]
    expected = [b.infer({"x": x})[0] for x in xs]
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
