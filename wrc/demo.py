"""The README's first command: GE's weight-update sample on a small real task.

A 64-32-10 MLP classifies scikit-learn's 8x8 digits. Its two weight matrices, `const_1` and
`const_2`, are made refreshable (as in GE's sample); the graph is compiled once, then its
weights are replaced by a second, better-trained set without recompiling.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

import wrc

T = TypeVar("T")
HIDDEN = 32


def step(what: str, fn: Callable[[], T]) -> T:
    """Run one step of the demo, printing what it did and how long it took."""
    start = time.perf_counter()
    result = fn()
    ms = (time.perf_counter() - start) * 1e3
    print(f"  [{ms:8.1f} ms] {what}")
    return result


def load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        sys.exit("the demo needs scikit-learn (it ships the digits data): run it with `./dev demo`")
    digits = sk_load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    n_train = 1347
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def train(x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> dict[str, np.ndarray]:
    """Plain NumPy SGD on the graph's function: softmax(relu(x @ W1) @ W2)."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((x.shape[1], HIDDEN)) * np.sqrt(2 / x.shape[1])).astype(np.float32)
    w2 = (rng.standard_normal((HIDDEN, 10)) * np.sqrt(1 / HIDDEN)).astype(np.float32)
    onehot = np.eye(10, dtype=np.float32)[y]
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(len(x)), len(x) // 32):
            xb, tb = x[batch], onehot[batch]
            h = np.maximum(xb @ w1, 0)
            logits = h @ w2
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            g = (p - tb) / len(batch)
            gw2 = h.T @ g
            gw1 = xb.T @ ((g @ w2.T) * (h > 0))
            w1 -= 0.5 * gw1
            w2 -= 0.5 * gw2
    return {"const_1": w1, "const_2": w2}


def build_graph(batch: int, weights: dict[str, np.ndarray]) -> wrc.Graph:
    """GE's `GenGraph`: the original inference graph with constants const_1 and const_2."""
    g = wrc.Graph("digits_mlp")
    x = g.data("x", (batch, 64))
    w1 = g.const("const_1", weights["const_1"])
    w2 = g.const("const_2", weights["const_2"])
    g.output(g.softmax(g.matmul(g.relu(g.matmul(x, w1)), w2), axis=-1))
    return g


def accuracy(bundle: wrc.Bundle, x: np.ndarray, y: np.ndarray) -> float:
    (probs,) = bundle.infer({"x": x})
    return float((probs.argmax(1) == y).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wrc demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="folder for the bundle files (default: a temporary folder)")
    parser.add_argument("--backend", default="numpy", help="runtime backend (default: numpy)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="wrc-demo-"))
    out.mkdir(parents=True, exist_ok=True)

    print("wrc demo: GE's weight-update sample on scikit-learn's digits (8x8 images, 10 classes)")
    print("\n1. Data and two trained weight sets (NumPy SGD)")
    x_train, y_train, x_test, y_test = step("load the digits data set", load_digits)
    weak = step("train weight set A (1 epoch)", lambda: train(x_train, y_train, epochs=1, seed=1))
    strong = step("train weight set B (30 epochs)", lambda: train(x_train, y_train, epochs=30, seed=2))

    print("\n2. Build: compile once")
    graph = step(f"build graph 'digits_mlp' (x: {len(x_test)}x64 -> probabilities {len(x_test)}x10)",
                 lambda: build_graph(len(x_test), weak))
    path, stripped_path = out / "digits.wrcb", out / "digits-stripped.wrcb"
    with wrc.BuildSession():
        graphs = step("convert_to_weight_refreshable_graphs(graph, ['const_1', 'const_2'])",
                      lambda: wrc.convert_to_weight_refreshable_graphs(graph, ["const_1", "const_2"]))
        model = step("bundle_build_model([infer, init, update])", lambda: wrc.bundle_build_model(
            [(graphs.infer_graph, {}), (graphs.var_init_graph, {}), (graphs.var_update_graph, {})]))
        step(f"bundle_save_model -> {path}", lambda: wrc.bundle_save_model(path, model))
        stripped = step("bundle_build_model([infer, update]) (weight-stripped: no init graph)",
                        lambda: wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_update_graph, {})]))
        step(f"bundle_save_model -> {stripped_path}", lambda: wrc.bundle_save_model(stripped_path, stripped))
    print(f"  bundle sizes: full {path.stat().st_size:,} bytes, weight-stripped {stripped_path.stat().st_size:,} bytes")

    print(f"\n3. Serve: load, init, infer, update, infer (backend {args.backend!r})")
    bundle = step("load_bundle(digits.wrcb)", lambda: wrc.load_bundle(path, backend=args.backend))
    print(f"  graphs: {', '.join(bundle.graphs)}; variables: "
          + ", ".join(f"{n} {v.dtype}{list(v.shape)}" for n, v in bundle.variables.items()))
    step("init() (variables := weight set A)", bundle.init)
    acc_a = step("infer(x_test)", lambda: accuracy(bundle, x_test, y_test))
    print(f"  accuracy with weight set A: {acc_a:.1%}")
    step("update({'const_1': B1, 'const_2': B2}) (no recompilation)", lambda: bundle.update(strong))
    acc_b = step("infer(x_test)", lambda: accuracy(bundle, x_test, y_test))
    print(f"  accuracy with weight set B: {acc_b:.1%}")
    step("update({'const_2': A2}) (partial: const_1 stays B1)", lambda: bundle.update({"const_2": weak["const_2"]}))
    acc_mix = step("infer(x_test)", lambda: accuracy(bundle, x_test, y_test))
    print(f"  accuracy with B1 + A2: {acc_mix:.1%}")

    print("\n4. The weight-stripped bundle")
    lean = step("load_bundle(digits-stripped.wrcb)", lambda: wrc.load_bundle(stripped_path, backend=args.backend))
    try:
        lean.infer({"x": x_test})
    except wrc.WrcError as e:
        print(f"  infer before the first update fails, as it should:\n    {type(e).__name__}: {e}")
    else:
        raise SystemExit("error: inferring on a weight-stripped bundle before its first update should fail")
    step("update(weight set B)", lambda: lean.update(strong))
    acc_lean = step("infer(x_test)", lambda: accuracy(lean, x_test, y_test))
    print(f"  accuracy: {acc_lean:.1%} (same weights as the full bundle's set B: {acc_b:.1%})")
    print(f"\nDone. Bundles are in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
