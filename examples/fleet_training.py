"""A fleet of replicas on Ray keeps serving while a training loop publishes new weights every
few seconds; a bad checkpoint is caught by its validation loss and rolled back.

    python examples/fleet_training.py [--rounds N] [--every SECONDS] [--replicas R]

Needs Ray (`pip install 'wrc[ray]'`). The model (a small MLP regressor) is compiled once; each
replica loads the bundle. The training loop runs in an actor of its own (docs/fleet.md "Serving
during a publish"): each round it runs a few SGD steps and puts the whole weight set into the
object store itself (one `ray.put` of a parcel, in its process, not in the one serving the
clients), and the driver publishes that `ObjectRef` (`Fleet.publish`: staged on every replica,
then committed on all; no copy of the weights in the driver). Two client threads send
requests all the while; every response says which version computed it, and is checked at the
end against that version's weights (never a mix). Then a diverged checkpoint is published, its
validation loss (measured through the fleet) is far off, and `Fleet.rollback()` switches every
replica back.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np
import ray

import wrc
from wrc.bundle_format import bundle_bytes
from wrc.fleet import PACK_BELOW, Fleet
from wrc.weight_pack import parcel

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
        h = np.tanh(x @ w["w1"])
        err = h @ w["w2"] - np.sin(x @ TRUE_W)
        loss = float((err ** 2).mean())
        g2 = h.T @ err * (2 / len(x))
        g1 = x.T @ ((err @ w["w2"].T) * (1 - h ** 2)) * (2 / len(x))
        w["w1"] -= lr * g1
        w["w2"] -= lr * g2
    return loss


class Trainer:
    """The training loop, in a process of its own (a Ray actor): it holds the weights, trains
    them and puts each version into the object store itself."""

    def __init__(self, w: dict[str, np.ndarray]) -> None:
        self.w = {k: a.copy() for k, a in w.items()}

    def step(self, steps: int) -> tuple[float, list[ray.ObjectRef]]:
        """Train, then put the weights as `publish` would (a parcel); the reference in a list,
        so that Ray hands it on instead of fetching the weights."""
        loss = sgd(self.w, steps)
        return loss, [ray.put(parcel(self.w, PACK_BELOW))]

    def diverged(self) -> list[ray.ObjectRef]:
        """A checkpoint from a run that blew up (the trainer's own weights stay as they are)."""
        return [ray.put(parcel({k: a * 40 for k, a in self.w.items()}, PACK_BELOW))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="training rounds (default: 5)")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between publishes (default: 0.5)")
    parser.add_argument("--replicas", type=int, default=2, help="replicas (default: 2)")
    parser.add_argument("--zero-copy", action="store_true",
                        help="replicas adopt the object store's arrays instead of copying them (Fleet(copy=False))")
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        return run(args.rounds, args.every, args.replicas, not args.zero_copy)
    finally:
        ray.shutdown()


def run(rounds: int, every: float, replicas: int, copy: bool = True) -> int:
    w = {"w1": (rng.standard_normal((IN, HIDDEN)) * 0.3).astype(np.float32),
         "w2": (rng.standard_normal((HIDDEN, 1)) * 0.3).astype(np.float32)}
    g = wrc.Graph("regressor")
    x = g.data("x", (4, IN))
    g.output(g.matmul(g.tanh(g.matmul(x, g.const("w1", w["w1"]))), g.const("w2", w["w2"])))
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(g, ["w1", "w2"])
        model = wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_init_graph, {}),
                                        (graphs.var_update_graph, {})])
    data = bundle_bytes(model)
    wrc.load_bundle(data)  # compiled once, here: each replica finds it in the load cache
    fleet = Fleet(data, replicas, options={"num_cpus": 0}, copy=copy)  # version 0: the weights compiled in

    request = rng.standard_normal((4, IN)).astype(np.float32)
    target = np.sin(request @ TRUE_W)
    published = {0: {k: a.copy() for k, a in w.items()}}  # version → its weights
    responses: list[tuple[int, np.ndarray]] = []  # (version, output) of every request
    stop = threading.Event()
    rolled_back: int | None = None  # responses before the rollback had finished

    def client() -> None:
        while not stop.is_set() and len(responses) < 100_000:
            (y,), version = fleet.infer({"x": request})
            responses.append((version, y))
            time.sleep(0.002)  # requests arrive now and then

    def validation_loss() -> float:  # measured through the fleet, as a canary would
        (y,), _ = fleet.infer({"x": request})
        return float(((y - target) ** 2).mean())

    clients = [threading.Thread(target=client, name=f"client{i}") for i in range(2)]
    for c in clients:
        c.start()
    trainer = ray.remote(num_cpus=0)(Trainer).remote(w)

    def publish(ref: ray.ObjectRef) -> int:
        version = fleet.publish(ref)               # stage + commit: the set is in the store already
        published[version] = {k: a.copy() for k, a in ray.get(ref).items()}  # (for the check below)
        return version

    try:
        for r in range(1, rounds + 1):
            fleet.release()                        # the store then holds two sets, not three
            loss, (ref,) = ray.get(trainer.step.remote(40))
            version = publish(ref)
            del ref                                # (the fleet holds it from here on)
            print(f"round {r}: train loss {loss:.4f}, published version {version}, "
                  f"validation loss {validation_loss():.4f}, {len(responses)} requests served so far")
            time.sleep(every)
        good, good_loss = fleet.version, validation_loss()
        fleet.release()
        bad = publish(ray.get(trainer.diverged.remote())[0])
        bad_loss = validation_loss()
        print(f"published version {bad}: validation loss {bad_loss:.4f} (was {good_loss:.4f})")
        if bad_loss > 2 * good_loss:
            back = fleet.rollback()              # O(1) on every replica: the retained version
            print(f"rolled back to version {back}")
            assert back == good
        time.sleep(every)
        rolled_back = len(responses)
        time.sleep(0.1)
    finally:
        stop.set()
        for c in clients:
            c.join()
        fleet.shutdown()
    after = [] if rolled_back is None else responses[rolled_back:]

    mixed = [v for v, y in responses if not np.allclose(y, forward(request, published[v]), rtol=1e-4, atol=1e-5)]
    if mixed or not after or any(v != good for v, _ in after):
        print(f"FAILED: {len(mixed)} responses match no single version; after the rollback: "
              f"{sorted({v for v, _ in after})}")
        return 1
    counts = {v: sum(1 for s, _ in responses if s == v) for v in sorted({v for v, _ in responses})}
    print(f"served {len(responses)} requests by version {counts}; every response came from exactly "
          f"the version it names; after the rollback only version {good}")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
