"""Small models for the device tests (tests/test_device_arrays.py on a simulated device,
tests/test_cupy.py on a real GPU): each is (graph, refreshable weights, inputs, new weights)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import wrc

F32 = np.float32


@dataclass
class Case:
    name: str
    graph: wrc.Graph
    weights: list[str]
    inputs: dict[str, np.ndarray]
    new: dict[str, np.ndarray]


def cases(seed: int = 0, batch: int = 8) -> Iterator[Case]:
    rng = np.random.default_rng(seed)

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(F32)

    # MLP: matmul + bias + relu, softmax
    g = wrc.Graph("mlp")
    x = g.data("x", (batch, 32))
    h = g.relu(g.add(g.matmul(x, g.const("w1", r(32, 64))), g.const("b1", r(64))))
    g.output(g.softmax(g.add(g.matmul(h, g.const("w2", r(64, 10))), g.const("b2", r(10)))))
    yield Case("mlp", g, ["w1", "b1", "w2", "b2"], {"x": r(batch, 32)},
               {"w1": r(32, 64), "b2": r(10)})

    # CNN with an inference-mode BatchNorm (folded into the conv by the build), pools, FC
    g = wrc.Graph("cnn")
    x = g.data("x", (batch, 3, 12, 12))
    c = g.add(g.conv2d(x, g.const("conv", r(8, 3, 3, 3)), pads=(1, 1, 1, 1)), g.const("cb", r(8, 1, 1)))
    k = g.div(g.const("gamma", r(8, 1, 1)), g.sqrt(g.add(g.const("var", np.abs(r(8, 1, 1)) + 0.5), g.const("eps", F32(1e-5)))))
    c = g.relu(g.add(g.mul(c, k), g.const("beta", r(8, 1, 1))))
    p = g.max_pool2d(c, (2, 2))
    v = g.reshape(g.global_avg_pool(p), (batch, 8))
    g.output(g.softmax(g.matmul(v, g.const("fc", r(8, 5)))))
    yield Case("cnn", g, ["conv", "cb", "gamma", "var", "beta", "fc"], {"x": r(batch, 3, 12, 12)},
               {"conv": r(8, 3, 3, 3), "gamma": r(8, 1, 1)})

    # attention block: Q/K/V projections of a transposed weight, scaled softmax, GELU (erf)
    g = wrc.Graph("attention")
    x = g.data("x", (batch, 16))
    q = g.matmul(x, g.transpose(g.const("wq", r(16, 16)), [1, 0]))
    kk = g.matmul(x, g.const("wk", r(16, 16)))
    a = g.softmax(g.mul(g.matmul(q, g.transpose(kk, [1, 0])), g.const("scale", F32(0.25))))
    y = g.matmul(a, g.matmul(x, g.const("wv", r(16, 16))))
    gelu = g.mul(g.mul(y, g.const("half", F32(0.5))),
                 g.add(g.erf(g.div(y, g.const("sqrt2", F32(np.sqrt(2))))), g.const("one", F32(1.0))))
    g.output(gelu)
    yield Case("attention", g, ["wq", "wk", "wv"], {"x": r(batch, 16)}, {"wq": r(16, 16), "wv": r(16, 16)})


def build(case: Case) -> wrc.ModelBuffer:
    with wrc.BuildSession():
        parts = wrc.convert_to_weight_refreshable_graphs(case.graph, case.weights)
        return wrc.bundle_build_model([parts.infer_graph, parts.var_update_graph, parts.var_init_graph])
