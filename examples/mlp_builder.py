"""An MLP from the graph builder, compiled once, served, its weights replaced: wrc in 60 lines.

    python examples/mlp_builder.py [--out DIR]

GE's sample step by step: build the graph (`GenGraph`), make `fc1` and `fc2` refreshable,
bundle the three graphs, save, load, infer, update the weights, infer again. Every result is
checked against plain NumPy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import wrc

rng = np.random.default_rng(0)
BATCH, IN, HIDDEN, OUT = 8, 64, 32, 10


def weights() -> dict[str, np.ndarray]:
    return {"fc1": rng.standard_normal((IN, HIDDEN)).astype(np.float32) * 0.1,
            "fc2": rng.standard_normal((HIDDEN, OUT)).astype(np.float32) * 0.1}


def reference(x: np.ndarray, w: dict[str, np.ndarray], bias: np.ndarray) -> np.ndarray:
    logits = np.maximum(x @ w["fc1"] + bias, 0) @ w["fc2"]
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="folder for mlp.wrcb (default: a temporary folder)")
    out = parser.parse_args().out or Path(tempfile.mkdtemp(prefix="wrc-mlp-"))
    out.mkdir(parents=True, exist_ok=True)

    w, bias = weights(), np.full(HIDDEN, 0.01, np.float32)
    g = wrc.Graph("mlp")                                           # GE: Graph + GenGraph
    x = g.data("x", (BATCH, IN))
    h = g.relu(g.add(g.matmul(x, g.const("fc1", w["fc1"])), g.const("bias", bias)))
    g.output(g.softmax(g.matmul(h, g.const("fc2", w["fc2"]))))
    print(f"built graph {g.name!r}: inputs {g.inputs}, constants {sorted(g.constants)}")

    with wrc.BuildSession():                                       # aclgrphBuildInitialize/Finalize
        graphs = wrc.convert_to_weight_refreshable_graphs(g, ["fc1", "fc2"])   # bias stays a constant
        model = wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_init_graph, {}),
                                        (graphs.var_update_graph, {})])
        wrc.bundle_save_model(out / "mlp.wrcb", model)
    print(f"saved {out / 'mlp.wrcb'} ({(out / 'mlp.wrcb').stat().st_size:,} bytes)")

    bundle = wrc.load_bundle(out / "mlp.wrcb")
    print(f"loaded: graphs {list(bundle.graphs)}, variables {sorted(bundle.variables)}")
    bundle.init()
    xs = rng.standard_normal((BATCH, IN)).astype(np.float32)
    (probs,) = bundle.infer({"x": xs})
    assert np.allclose(probs, reference(xs, w, bias), atol=1e-5), "infer != NumPy reference"
    print(f"infer with the compiled-in weights matches NumPy (max |diff| "
          f"{np.abs(probs - reference(xs, w, bias)).max():.1e})")

    w2 = weights()
    bundle.update(w2)                                              # a copy, no recompilation
    (probs,) = bundle.infer({"x": xs})
    assert np.allclose(probs, reference(xs, w2, bias), atol=1e-5), "infer after update != reference"
    print("infer after update({'fc1', 'fc2'}) matches NumPy with the new weights")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
