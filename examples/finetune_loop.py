"""An "hourly" fine-tune loop: a trainer swaps new weights into a live bundle while a serving
thread keeps answering requests.

    python examples/finetune_loop.py [--hours N]

The model (a small MLP regressor) is compiled once. Each "hour" the trainer runs a few SGD
steps on fresh data, saves a safetensors checkpoint and loads it into the serving bundle with
`Bundle.update_from_file`; nothing is recompiled. Meanwhile the server thread runs `infer` in a
loop and checks every answer against the outputs of each published weight version: each
answer must come from exactly one version (all-old or all-new weights, never a mix), and
versions only move forward.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import wrc
from wrc.weight_files import write_weights

IN, HIDDEN = 16, 32
rng = np.random.default_rng(1)
TRUE_W = (rng.standard_normal((IN, 1)) * 0.25).astype(np.float32)


def forward(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    return np.tanh(x @ w["w1"]) @ w["w2"]


def sgd(w: dict[str, np.ndarray], steps: int, lr: float = 0.05) -> float:
    """A few steps of plain NumPy SGD on fresh data; returns the last batch loss."""
    loss = 0.0
    for _ in range(steps):
        x = rng.standard_normal((64, IN)).astype(np.float32)
        y = np.sin(x @ TRUE_W)
        h = np.tanh(x @ w["w1"])
        err = h @ w["w2"] - y
        loss = float((err ** 2).mean())
        g2 = h.T @ err * (2 / len(x))
        g1 = x.T @ ((err @ w["w2"].T) * (1 - h ** 2)) * (2 / len(x))
        w["w1"] -= lr * g1
        w["w2"] -= lr * g2
    return loss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=6, help="fine-tuning rounds (default: 6)")
    hours = parser.parse_args().hours
    with tempfile.TemporaryDirectory(prefix="wrc-finetune-") as tmp:
        return run(hours, Path(tmp))


def run(hours: int, tmp: Path) -> int:

    w = {"w1": (rng.standard_normal((IN, HIDDEN)) * 0.3).astype(np.float32),
         "w2": (rng.standard_normal((HIDDEN, 1)) * 0.3).astype(np.float32)}
    g = wrc.Graph("regressor")
    x = g.data("x", (4, IN))
    g.output(g.matmul(g.tanh(g.matmul(x, g.const("w1", w["w1"]))), g.const("w2", w["w2"])))
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(g, ["w1", "w2"])
        model = wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_init_graph, {}),
                                        (graphs.var_update_graph, {})])
    bundle = wrc.load_bundle(model)
    bundle.init()

    request = rng.standard_normal((4, IN)).astype(np.float32)
    expected = [forward(request, w)]  # outputs of each published version, in order
    served: list[int] = []  # the version each answer came from
    stop = threading.Event()
    problems: list[str] = []

    def serve() -> None:
        last = 0
        while not stop.is_set():
            (y,) = bundle.infer({"x": request})
            diffs = [float(np.abs(y - e).max()) for e in list(expected)]
            version = int(np.argmin(diffs))
            if diffs[version] > 1e-5:
                problems.append("an answer matched no published weight version (a mix of weights?)")
                return
            if version < last:
                problems.append(f"version went back from {last} to {version}")
            last = version
            served.append(version)
            time.sleep(0.001)  # requests arrive now and then

    server = threading.Thread(target=serve, name="server")
    server.start()
    try:
        for hour in range(1, hours + 1):
            loss = sgd(w, steps=40)
            ckpt = tmp / f"hour-{hour}.safetensors"
            write_weights(ckpt, w)     # what a training job would hand over
            expected.append(forward(request, w))        # published before the swap: the server may see it
            bundle.update_from_file(ckpt)               # validated, atomic, no recompilation
            time.sleep(0.02)                            # serve a while with the new weights
            print(f"hour {hour}: train loss {loss:.4f}, swapped in {ckpt.name}, "
                  f"{len(served)} requests served so far")
    finally:
        stop.set()
        server.join()
    if problems:
        print("FAILED: " + "; ".join(problems))
        return 1
    versions = sorted(set(served))
    print(f"served {len(served)} requests across weight versions {versions[0]}..{versions[-1]}; "
          "every answer came from exactly one version")
    (y,) = bundle.infer({"x": request})
    assert np.allclose(y, expected[-1], rtol=1e-5, atol=1e-6)
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
