"""Adapter swap: one compiled bundle, one base model, a LoRA adapter per customer.

    python examples/adapter_swap.py

A classifier (`backbone`, `head`) is compiled once, *weight-stripped* (no weight values in
the file), with a rank-4 delta on both weights (`deltas=`): the bundle gets
`var_delta_graph`, which computes `W = W_base + s·B@A` on the backend. The base weights are
loaded once from `base.safetensors`; each customer's adapter is a PEFT-layout file
(`adapter_model.safetensors` with `lora_A` / `lora_B` factors, `adapter_config.json` with
`lora_alpha` and `r`), a few KB instead of the full weights. Requests are served from a
thread while adapters are switched: each answer names its version, and is checked against
the adapter that version holds. Going back to an adapter, or removing it, is bit for bit.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import wrc
from wrc.weight_files import write_weights

IN, HIDDEN, CLASSES, BATCH, RANK, ALPHA = 32, 64, 5, 4, 4, 8
CUSTOMERS = ("acme", "globex", "initech")
rng = np.random.default_rng(2)


def rand(*shape: int, scale: float = 0.2) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def reference(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    return np.maximum(x @ w["backbone"], 0) @ w["head"]


def adapted(base: dict[str, np.ndarray], lora: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """W0 + s·(B @ A)ᵀ: the weights are stored [in, out] (x @ W), PEFT's factors [r, in] / [out, r]."""
    s = np.float32(ALPHA / RANK)
    return {k: base[k] + s * (lora[f"base_model.model.{k}.lora_B.weight"] @ lora[f"base_model.model.{k}.lora_A.weight"]).T
            for k in base}


def main() -> int:
    base = {"backbone": rand(IN, HIDDEN), "head": rand(HIDDEN, CLASSES)}
    loras = {c: {f"base_model.model.{k}.lora_{f}.weight": rand(*shape, scale=0.3)
                 for k, (d_in, d_out) in (("backbone", (IN, HIDDEN)), ("head", (HIDDEN, CLASSES)))
                 for f, shape in (("A", (RANK, d_in)), ("B", (d_out, RANK)))} for c in CUSTOMERS}

    start = time.perf_counter()
    g = wrc.Graph("classifier")
    x = g.data("x", (BATCH, IN))
    g.output(g.matmul(g.relu(g.matmul(x, g.const("backbone", base["backbone"]))), g.const("head", base["head"])))
    model = wrc.compile_graph(g, init=False, deltas={"backbone": f"lora:{RANK}", "head": f"lora:{RANK}"})
    compile_ms = (time.perf_counter() - start) * 1e3
    print(f"compiled once in {compile_ms:.0f} ms: graphs {', '.join(model.graphs)} "
          f"(weight-stripped: {len(model.weights)} stored weights)")

    with tempfile.TemporaryDirectory(prefix="wrc-adapters-") as tmp:
        folder = Path(tmp)
        write_weights(folder / "base.safetensors", base)
        for c in CUSTOMERS:  # what PEFT's save_pretrained writes
            (folder / c).mkdir()
            write_weights(folder / c / "adapter_model.safetensors", loras[c])
            (folder / c / "adapter_config.json").write_text(json.dumps({"r": RANK, "lora_alpha": ALPHA}))
        adapter_kb = (folder / "acme" / "adapter_model.safetensors").stat().st_size / 1e3
        print(f"an adapter file: {adapter_kb:.1f} KB; the weights it changes: "
              f"{sum(w.nbytes for w in base.values()) / 1e3:.1f} KB")

        bundle = wrc.load_bundle(model)
        try:
            bundle.apply_adapter_file(folder / "acme" / "adapter_model.safetensors")
        except wrc.RuntimeStateError as e:
            print(f"before the base weights: {type(e).__name__}: {e}")
        bundle.update_from_file(folder / "base.safetensors")
        base_answer = bundle.infer({"x": (probe := rand(BATCH, IN))})[0]

        # Serve from a thread while switching adapters; check every answer against its version.
        holds: dict[int, str | None] = {bundle.version: None}  # version → customer (None: base)
        expected = {c: adapted(base, loras[c]) for c in CUSTOMERS} | {None: base}
        stop, answers, failures = threading.Event(), [0], []

        def serve() -> None:
            while not stop.is_set():
                xs = rand(BATCH, IN)
                (logits,), version = bundle.infer({"x": xs}, with_version=True)
                if not np.allclose(logits, reference(xs, expected[holds[version]]), atol=1e-4):
                    failures.append(f"version {version} did not use {holds[version]}'s weights")
                answers[0] += 1

        server = threading.Thread(target=serve)
        server.start()
        switch_s = 0.0
        order = [CUSTOMERS[i % len(CUSTOMERS)] for i in range(9)]
        first: dict[str, np.ndarray] = {}
        for c in order:
            t = time.perf_counter()
            v = bundle.apply_adapter_file(folder / c / "adapter_model.safetensors", c, stage=True)
            holds[v] = c  # known before any request can see it
            bundle.commit(v)
            switch_s += time.perf_counter() - t
            answer = bundle.infer({"x": probe})[0]
            if c in first and answer.tobytes() != first[c].tobytes():
                failures.append(f"back to {c}: not bit-identical")
            first.setdefault(c, answer)
            print(f"version {v}: adapter {bundle.adapter!r:9} -> classes {answer.argmax(1).tolist()}")
            time.sleep(0.01)
        v = bundle.remove_adapter(stage=True)
        holds[v] = None
        bundle.commit(v)
        stop.set()
        server.join()
        if bundle.infer({"x": probe})[0].tobytes() != base_answer.tobytes():
            failures.append("remove_adapter: not the base bit for bit")
        if failures:
            print("FAILED: " + "; ".join(failures[:3]))
            return 1
        print(f"{len(order)} adapter switches, {switch_s / len(order) * 1e3:.2f} ms each (read + apply); "
              f"{answers[0]} answers served meanwhile, each from one adapter; back to an adapter and "
              "remove_adapter() are bit for bit")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
