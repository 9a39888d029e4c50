"""Adapter swap: one compiled bundle, several weight sets (e.g. one per customer).

    python examples/adapter_swap.py

A classifier's shared backbone (`backbone`) and its per-customer head (`head`) are both
refreshable. The bundle is compiled once, *weight-stripped* (no init graph, no weight values
in the file). The backbone is loaded once from `base.safetensors`; then each request switches
to its customer's head with a partial `update_from_file` (only `head` changes) — a copy of
one small weight instead of a recompilation. Alternatively, load one bundle per customer from
the same file: bundles never share variables.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import wrc
from wrc.weight_files import write_weights

IN, HIDDEN, CLASSES, BATCH = 32, 64, 5, 4
CUSTOMERS = ("acme", "globex", "initech")
rng = np.random.default_rng(2)


def rand(*shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.2).astype(np.float32)


def reference(x: np.ndarray, backbone: np.ndarray, head: np.ndarray) -> np.ndarray:
    return np.maximum(x @ backbone, 0) @ head


def main() -> int:
    backbone = rand(IN, HIDDEN)
    heads = {c: rand(HIDDEN, CLASSES) for c in CUSTOMERS}

    start = time.perf_counter()
    g = wrc.Graph("classifier")
    x = g.data("x", (BATCH, IN))
    g.output(g.matmul(g.relu(g.matmul(x, g.const("backbone", backbone))), g.const("head", heads["acme"])))
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(g, ["backbone", "head"])
        model = wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_update_graph, {})])
    compile_ms = (time.perf_counter() - start) * 1e3
    print(f"compiled once in {compile_ms:.0f} ms (weight-stripped: {len(model.weights)} stored weights)")

    with tempfile.TemporaryDirectory(prefix="wrc-adapters-") as tmp:
        folder = Path(tmp)
        write_weights(folder / "base.safetensors", {"backbone": backbone})
        for c in CUSTOMERS:  # one adapter file per customer: just its head
            write_weights(folder / f"{c}.safetensors", {"head": heads[c]})

        bundle = wrc.load_bundle(model)
        try:
            bundle.infer({"x": rand(BATCH, IN)})
        except wrc.RuntimeStateError as e:
            print(f"before any weights: {type(e).__name__}: {e}")
        bundle.update_from_file(folder / "base.safetensors")

        requests = [CUSTOMERS[i % len(CUSTOMERS)] for i in range(9)]
        current, swaps, swap_s = None, 0, 0.0
        for i, customer in enumerate(requests):
            if customer != current:
                t = time.perf_counter()
                bundle.update_from_file(folder / f"{customer}.safetensors")  # only `head` changes
                swap_s += time.perf_counter() - t
                current, swaps = customer, swaps + 1
            xs = rand(BATCH, IN)
            (logits,) = bundle.infer({"x": xs})
            if not np.allclose(logits, reference(xs, backbone, heads[customer]), atol=1e-5):
                print(f"FAILED: request {i} for {customer} did not use {customer}'s head")
                return 1
            print(f"request {i}: {customer:8s} -> classes {logits.argmax(1).tolist()}")
        print(f"{swaps} adapter swaps, {swap_s / swaps * 1e3:.2f} ms each on average "
              f"(compiling took {compile_ms:.0f} ms)")

        # Or one live bundle per customer, all from the same compiled model: separate variables.
        per_customer = {c: wrc.load_bundle(model) for c in CUSTOMERS}
        xs = rand(BATCH, IN)
        for c, b in per_customer.items():
            b.update_from_file(folder / "base.safetensors")
            b.update_from_file(folder / f"{c}.safetensors")
        for c, b in per_customer.items():
            assert np.allclose(b.infer({"x": xs})[0], reference(xs, backbone, heads[c]), atol=1e-5)
        print(f"{len(per_customer)} bundles loaded side by side keep their own heads")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
