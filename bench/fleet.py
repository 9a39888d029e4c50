"""Bench section `fleet` (bench/run.py): weight versions published to replicas on Ray
(wrc.fleet; docs/performance.md "Weight versions and the Ray fleet").

A weight-stripped bundle whose weights are `count` float32 tensors of `total` bytes in all
(infer reads one 16-value row of each, hoisted: serving is cheap, publishing copies all
bytes); `replicas` replicas on a local Ray with one CPU each at most. Measured, in one run:
* publish (stage on every replica + commit) of the whole set while 4 client threads serve,
  vs `replicas` memcpys of the same bytes into touched buffers, divided by min(replicas, cores)
  (the copies the replicas make, run as parallel as the machine allows);
* the same bytes in `many` tensors vs `count` (per-tensor overhead);
* request latency (p50, p99) and throughput while publishing once a second vs steady state;
* object-store bytes (shared memory in use) and replicas' private RSS, sampled during publishes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import wrc

MIB = 1 << 20


def _bundle(count: int, total: int) -> tuple[bytes, list[str], int]:
    """A weight-stripped bundle (no weight bytes in it) and its weights' names and size."""
    from wrc.bundle_format import bundle_bytes

    n = total // 4 // count
    g = wrc.Graph("fleet_bench")
    x = g.data("x", (1, 16))
    row = g.const("row", np.zeros(1, np.int32), inline=True)
    acc = None
    for i in range(count):  # one row of each (a hoisted np.take: it reads only that row)
        part = g.gather(g.const(f"w{i}", np.zeros((n // 16, 16), np.float32)), row)
        acc = part if acc is None else g.add(acc, part)
    g.output(g.add(x, acc))
    names = [f"w{i}" for i in range(count)]
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(g, names)
        model = wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_update_graph, {})])
    return bundle_bytes(model), names, n


def _weights(names: list[str], n: int, value: float) -> dict[str, np.ndarray]:
    return {name: np.full((n // 16, 16), value, np.float32) for name in names}


def _shmem_bytes() -> int:
    """The machine's shared memory in use (/proc/meminfo `Shmem`): Ray's object store lives
    there; measured from a baseline taken before Ray starts. (The store keeps the pages it
    touched, so this is its high-water mark.)"""
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("Shmem:"))


def _rss(pid: int) -> int:
    """A process's private memory (`RssAnon`: not the object store's shared pages it maps)."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))


class _Sampler:
    """Peak object-store bytes and summed replica RSS while running (every ~50 ms)."""

    def __init__(self, pids: list[int], base: int) -> None:
        self.pids, self.base, self.store, self.rss = pids, base, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.store = max(self.store, _shmem_bytes() - self.base)
            self.rss = max(self.rss, sum(_rss(p) for p in self.pids))
            time.sleep(0.05)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _memcpy(total: int, rounds: int) -> float:
    src = np.ones(total // 4, np.float32)
    dst = np.zeros_like(src)  # touched: a replica's buffers are reused, already faulted in
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t)
    return min(times)


def _memcpy_tensors(weights: dict[str, np.ndarray], rounds: int) -> float:
    """The same copies tensor by tensor, into touched buffers of their own (what staging does)."""
    dst = {k: np.zeros_like(a) for k, a in weights.items()}
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for k, a in weights.items():
            np.copyto(dst[k], a)
        times.append(time.perf_counter() - t)
    return min(times)


def _serve(fleet: Any, x: np.ndarray, seconds: float, during: Callable[[], None] | None) -> tuple[list[float], float]:
    """4 client threads for `seconds`; `during` runs meanwhile on this thread. Latencies, rate."""
    latencies: list[float] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            fleet.infer({"x": x})
            latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=client) for _ in range(4)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    if during is not None:
        during()
    while time.perf_counter() - start < seconds:
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    return latencies, len(latencies) / (time.perf_counter() - start)


def bench_fleet(quick: bool, record: Callable[..., None]) -> None:
    import ray

    from wrc.fleet import Fleet

    total = (256 if quick else 1024) * MIB
    replicas, count, many = 4, 256, (1024 if quick else 4096)
    seconds = 4.0 if quick else 10.0
    cores = os.cpu_count() or 1
    base = _shmem_bytes()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
             object_store_memory=int(3 * total + 256 * MIB))
    try:
        x = np.zeros((1, 16), np.float32)
        copy = _memcpy(total, 5)
        bound = replicas * copy / min(replicas, cores)
        record("fleet", f"{total // MIB}MiB", "memcpy of the weight set (min)", copy * 1e3, copy * 1e3)
        for tensors in (count, many):
            model, names, n = _bundle(tensors, total)
            sets = [_weights(names, n, v) for v in (1.0, 2.0)]
            per_tensor = _memcpy_tensors(sets[0], 3)
            case = f"{total // MIB}MiB/{tensors}t"
            record("fleet", case, "memcpy tensor by tensor (min)", per_tensor * 1e3, per_tensor * 1e3)
            fleet = Fleet(model, replicas, weights=sets[0], options={"num_cpus": 0})
            try:
                pids = ray.get([r.__ray_call__.remote(lambda _: os.getpid()) for r in fleet.replicas])
                loaded = sum(_rss(p) for p in pids)
                record("fleet", case, f"private RSS of {replicas} replicas, loaded", loaded / MIB, None,
                       unit="MiB", note=f"{loaded / (replicas * total):.2f}x R*weight bytes")
                publish: list[float] = []

                def publish_some(times: int = 4, fleet: Any = fleet, sets: list[Any] = sets,
                                 publish: list[float] = publish) -> None:
                    for i in range(times):
                        t = time.perf_counter()
                        fleet.publish(sets[i % 2])
                        publish.append(time.perf_counter() - t)

                with _Sampler(pids, base) as mem:
                    _serve(fleet, x, 0.5, publish_some)
                med, mn = float(np.median(publish)), min(publish)
                by_tensor = replicas * per_tensor / min(replicas, cores)
                record("fleet", case, f"publish to {replicas} replicas while serving", med * 1e3, mn * 1e3,
                       note=f"min: {mn / bound:.2f}x R*memcpy/min(R,cores), "
                            f"{mn / by_tensor:.2f}x tensor by tensor")
                record("fleet", case, "object store (shared memory) peak", mem.store / MIB, None, unit="MiB",
                       note=f"{mem.store / total:.2f}x weight bytes")
                record("fleet", case, f"private RSS of {replicas} replicas, peak", mem.rss / MIB, None, unit="MiB",
                       note=f"{mem.rss / (replicas * total):.2f}x R*weight bytes")
                if tensors != count:
                    continue
                steady, rate0 = _serve(fleet, x, seconds, None)

                def once_a_second(fleet: Any = fleet, sets: list[Any] = sets) -> None:
                    start = time.perf_counter()
                    for i in range(int(seconds)):
                        fleet.publish(sets[i % 2])
                        time.sleep(max(0.0, start + i + 1 - time.perf_counter()))

                switching, rate1 = _serve(fleet, x, seconds, once_a_second)
                for what, lat, rate in (("steady", steady, rate0), ("publish at 1 Hz", switching, rate1)):
                    p50, p99 = np.percentile(lat, 50) * 1e3, np.percentile(lat, 99) * 1e3
                    record("fleet", case, f"request p50, {what}", p50, None)
                    record("fleet", case, f"request p99, {what}", p99, None)
                    record("fleet", case, f"throughput, {what}", rate, None, unit="req/s")
                record("fleet", case, "p99 switching / steady", np.percentile(switching, 99) / np.percentile(steady, 99),
                       None, unit="x", note=f"throughput {rate1 / rate0:.2f}x steady")
            finally:
                fleet.shutdown()
    finally:
        ray.shutdown()
