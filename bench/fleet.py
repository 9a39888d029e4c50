"""Bench section `fleet` (bench/run.py): weight versions published to replicas on Ray
(wrc.fleet; docs/performance.md "Weight versions and the Ray fleet").

A weight-stripped bundle whose weights are `count` float32 tensors of `total` bytes in all
(infer reads one 16-value row of each, hoisted: serving is cheap, publishing copies all
bytes); `replicas` replicas on a local Ray with one CPU each at most, copying each set
(`copy=True`) or adopting the store's arrays (`copy=False`, zero-copy). Measured, in one run:
* publish (stage on every replica + commit) of the whole set while 4 client threads serve,
  vs `replicas` memcpys of the same bytes into touched buffers, divided by min(replicas, cores)
  (the copies the replicas make, run as parallel as the machine allows);
* the publish of a set the caller put (an `ObjectRef`, after `release()`: stage + commit, no
  put) while the clients serve, with the fleet's defaults and, in copy mode, as an urgent
  publish (`publish(ref, pause=urgent)`: requests reaching a replica wait while it copies);
  zero-copy: also with no requests;
* the same bytes in `many` tensors vs `count` (per-tensor overhead);
* request latency (p50, p99) and throughput while publishing once a second vs steady state:
  each second a trainer actor (the training loop, a process of its own as in a real setup)
  puts the next set into the store and the driver publishes its `ObjectRef`; the driver,
  whose 4 client threads send the requests, copies no weights (`--publisher driver`: the
  driver publishes a dict, its own `ray.put` in the serving process, as before session 7).
  Beside them, the same puts once a second with no publish: what making 1 GiB a second on
  the serving cores costs, whoever then uses it. The three states alternate in windows
  (`ROUNDS` of each), so that the shared VM's drift falls on all alike;
* object-store bytes (the store's touched shared memory, a high-water mark over the whole run:
  each fleet's peak includes those before it) and replicas' private RSS, sampled during
  publishes.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import wrc

MIB = 1 << 20
URGENT = 0.2
"""`publish(ref, pause=URGENT)`: the urgent publishes measured in copy mode (seconds a request
reaching a replica waits at most while it copies)."""
PUBLISHES = 9
"""Publishes timed while serving, per measurement (the first, which maps pages, apart)."""
ROUNDS = 4
"""Windows of each state measured at 1 Hz (steady, puts alone, publishes), alternating."""


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


def _store_bytes() -> int:
    """Memory the local object store has touched: the blocks of its shared-memory file (the
    raylet's open `/dev/shm/plasma*`), a high-water mark (freed objects' pages stay in it).
    Only this Ray session's store: other processes' shared memory is not counted."""
    import glob

    import ray

    session = ray._private.worker._global_node.session_name.encode()
    total = 0
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if not (args[0].endswith(b"raylet") and any(session in a for a in args)):
            continue
        for fd in glob.glob(cmdline.replace("cmdline", "fd/*")):
            try:
                if "plasma" in os.readlink(fd):
                    total += os.stat(fd).st_blocks * 512
            except OSError:
                continue
    return total


def _rss(pid: int) -> int:
    """A process's private memory (`RssAnon`: not the object store's shared pages it maps)."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))


class _Sampler:
    """Peak object-store bytes and summed replica RSS while running (every ~50 ms)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.store, self.rss = pids, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.store = max(self.store, _store_bytes())
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


def _available() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))


def _publish_times(fleet: Any, sets: list[Any], times: int) -> list[float]:
    out = []
    for i in range(times):
        t = time.perf_counter()
        fleet.publish(sets[i % 2])
        out.append(time.perf_counter() - t)
    return out


def _ref_publish_times(ray: Any, fleet: Any, sets: list[Any], times: int, pause: float | None = None) -> list[float]:
    """Publishes of sets put beforehand (as a trainer would: `release()`, then the put), timed
    from `publish(ObjectRef)` to its return: stage + commit."""
    out = []
    for i in range(times):
        fleet.release()
        ref = ray.put(fleet._packed(sets[i % 2]))  # noqa: SLF001 - as the fleet would put it
        t = time.perf_counter()
        if pause is None:  # (no `pause` argument: this bench also runs on trees before it)
            fleet.publish(ref)
        else:
            fleet.publish(ref, pause=pause)
        out.append(time.perf_counter() - t)
        del ref
    return out


def _trainer(ray: Any, names: list[str], n: int, pack: bool | str) -> Any:
    """A training loop's process (an actor) holding one weight set: each `put(i)` changes a
    value of it and puts it into the store as `Fleet(pack=pack)` would, returning
    `[ObjectRef]` (in a list: handed on, not fetched), which the driver publishes. (A class
    made here: Ray sends it by value, bench/ need not be importable in its workers.)"""

    class Trainer:
        def __init__(self) -> None:
            self.set = {name: np.full((n // 16, 16), 1.0, np.float32) for name in names}

        def put(self, i: int) -> list[Any]:
            from wrc.fleet import PACK_BELOW
            from wrc.weight_pack import parcel

            self.set[names[0]][0, 0] = i  # (a new version: a training step)
            sent = self.set if pack is False else parcel(self.set, PACK_BELOW if pack == "auto" else 1 << 62)
            return [ray.put(sent)]

    return ray.remote(num_cpus=0)(Trainer).remote()


def _publish_from(fleet: Any, trainer: Any) -> Callable[[int], None]:
    """A publish of what `trainer` puts: `fleet.release()` first (docs/fleet.md: the store then
    holds two sets), the trainer's put, `fleet.publish(ObjectRef)`."""
    import ray

    def publish(i: int) -> None:
        fleet.release()
        ref = ray.get(trainer.put.remote(i))[0]
        fleet.publish(ref)

    return publish


def bench_fleet(quick: bool, record: Callable[..., None], modes: tuple[bool, ...] = (True, False),
                total_mib: int | None = None, counts: tuple[int, ...] | None = None,
                packs: tuple[bool | str, ...] = ("auto",), publisher: str = "trainer",
                options: dict[str, Any] | None = None, urgent: float = URGENT) -> None:
    """`modes`: copy=True (replicas copy each set) and/or copy=False (zero-copy); `counts`:
    the tensor counts to run (default: 256 and 1,024, or 4,096 without `quick`); `packs`:
    `Fleet(pack=...)` settings, each a fleet of its own (False: a dict per publish);
    `publisher`: who puts the sets published at 1 Hz, a `"trainer"` actor or the `"driver"`;
    `options`: more `Fleet` keyword arguments (e.g. `pause`, `nice`); `urgent`: the
    `publish(pause=...)` of the urgent publishes measured in copy mode."""
    import ray

    from wrc.fleet import Fleet

    total = (total_mib or (256 if quick else 1024)) * MIB
    replicas, count, many = 4, 256, (1024 if quick else 4096)
    seconds = 8.0 if quick else 20.0  # per state at 1 Hz (steady, puts alone, publishes), in ROUNDS windows
    cores = os.cpu_count() or 1
    x = np.zeros((1, 16), np.float32)
    copy = _memcpy(total, 5)
    bound = replicas * copy / min(replicas, cores)
    record("fleet", f"{total // MIB}MiB", "memcpy of the weight set (min)", copy * 1e3, copy * 1e3)
    for tensors in counts or (count, many):
        model, names, n = _bundle(tensors, total)
        sets = [_weights(names, n, v) for v in (1.0, 2.0)]
        per_tensor = _memcpy_tensors(sets[0], 3)
        case = f"{total // MIB}MiB/{tensors}t"
        record("fleet", case, "memcpy tensor by tensor (min)", per_tensor * 1e3, per_tensor * 1e3)
        for mode, pack in ((m, p) for m in modes for p in packs):
            # copy: R private sets of 2 arrays + the store's 2-3 sets + the driver's 2 sets + a pack
            # (+ the trainer's set)
            need = (2 * replicas + 7 if mode else 7) * total + replicas * 200 * MIB
            label = f"{case}/{'copy' if mode else 'zero-copy'}{'' if pack == 'auto' else f'/pack={pack}'}"
            if _available() < need:
                record("fleet", label, "skipped: not enough memory", need / MIB, None, unit="MiB",
                       note=f"MemAvailable {_available() // MIB} MiB")
                continue
            # A fresh Ray (and store) per fleet. Freed objects deleted at once, not in the
            # raylet's 1 s batches: a new set then takes the old one's place in the store
            # (docs/fleet.md "Memory").
            ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
                     object_store_memory=int(3 * total + 256 * MIB),
                     _system_config={"free_objects_period_milliseconds": 0})
            try:
                _run_mode(ray, functools.partial(Fleet, pack=pack, **(options or {})), record, label, model, sets, mode, replicas, total, bound,
                          replicas * per_tensor / min(replicas, cores), x, seconds if tensors == count else 0,
                          None if publisher == "driver" else functools.partial(_trainer, ray, names, n, pack),
                          urgent)
            finally:
                ray.shutdown()


def _run_mode(ray: Any, fleet_class: Any, record: Callable[..., None], case: str, model: bytes, sets: list[Any],
              copy: bool, replicas: int, total: int, bound: float, by_tensor: float,
              x: np.ndarray, seconds: float, trainer: Callable[[], Any] | None = None, urgent: float = URGENT) -> None:
    """One fleet of `replicas` in one mode: publishes while serving, memory, and (`seconds`
    per state) serving steady, beside the puts alone once a second, and while publishing once
    a second (the sets `trainer()`'s actor puts, or None: the driver's `sets`)."""
    from wrc.fleet import _out_of_scope as out_of_scope

    # Loaded here first: the replicas (Ray runs them at nice 15) then find it in the load cache
    # instead of compiling it 4 times at once (a 4,096-tensor bundle took over 10 minutes so
    # on the loaded 2-core VM).
    wrc.load_bundle(model)
    fleet = fleet_class(model, replicas, weights=sets[0], options={"num_cpus": 0}, copy=copy, timeout=600.0)
    try:
        puts = []
        for _ in range(3):
            t = time.perf_counter()
            ref = ray.put(sets[1])
            puts.append(time.perf_counter() - t)
            gone = out_of_scope((0, ref))
            del ref
            gone.wait(1.0)  # (else the next put may come before the store frees this one)
            time.sleep(0.05)
        record("fleet", case, "ray.put of the set (one object)", float(np.median(puts)) * 1e3, min(puts) * 1e3)
        pids = ray.get([r.__ray_call__.remote(lambda _: os.getpid()) for r in fleet.replicas])
        loaded = sum(_rss(p) for p in pids)
        record("fleet", case, f"private RSS of {replicas} replicas, loaded", loaded / MIB, None,
               unit="MiB", note=f"{loaded / (replicas * total):.2f}x R*weight bytes")
        publish: list[float] = []
        with _Sampler(pids) as mem:
            _serve(fleet, x, 0.5, lambda: publish.extend(_publish_times(fleet, sets, PUBLISHES)))
        record("fleet", case, "first publish (maps the store's pages for a second set)", publish[0] * 1e3, None)

        def publishes(what: str, times: list[float]) -> None:
            med, mn = float(np.median(times)), min(times)
            record("fleet", case, what, med * 1e3, mn * 1e3,
                   note=f"{mn / bound:.2f}x / {med / bound:.2f}x R*memcpy/min(R,cores) (min / median), "
                        f"{mn / by_tensor:.2f}x tensor by tensor")

        publishes(f"publish to {replicas} replicas while serving", publish[1:])
        # Sets the caller put (after release(): the store keeps two sets): stage + commit.
        refs: list[float] = []
        _serve(fleet, x, 0.5, lambda: refs.extend(_ref_publish_times(ray, fleet, sets, PUBLISHES - 1)))
        publishes("publish of an ObjectRef while serving", refs)
        if copy:
            refs = []
            _serve(fleet, x, 0.5, lambda: refs.extend(_ref_publish_times(ray, fleet, sets, PUBLISHES - 1, urgent)))
            publishes(f"publish(ObjectRef, pause={urgent:g}) while serving", refs)
        else:
            refs = _ref_publish_times(ray, fleet, sets, PUBLISHES - 1)
            record("fleet", case, "publish of an ObjectRef, no requests", float(np.median(refs)) * 1e3, min(refs) * 1e3)
        record("fleet", case, "object store (shared memory) peak", mem.store / MIB, None, unit="MiB",
               note=f"{mem.store / total:.2f}x weight bytes")
        record("fleet", case, f"private RSS of {replicas} replicas, peak", mem.rss / MIB, None, unit="MiB",
               note=f"{mem.rss / (replicas * total):.2f}x R*weight bytes")
        if not seconds:
            return
        if trainer is None:
            def publish(i: int) -> None:
                fleet.publish(sets[i % 2])

            def put(i: int) -> None:
                ray.put(fleet._packed(sets[i % 2]))  # noqa: SLF001 - as publish puts it (dropped at once)
        else:
            actor = trainer()
            publish = _publish_from(fleet, actor)
            publish(0)  # (the trainer's first put maps its pages of the store)

            def put(i: int) -> None:
                ray.get(actor.put.remote(i))  # (the ObjectRef in the list dropped at once)

        # The states alternate (ROUNDS windows of each, `seconds` in all per state), so that a
        # drift of the shared VM's speed falls on all alike: steady; the puts alone once a
        # second (what making 1 GiB a second on these cores costs serving, whatever then uses
        # it: the part of the switching cost that is not the fleet's); whole publishes.
        window = seconds / ROUNDS

        def once_a_second(fn: Callable[[int], None]) -> Callable[[], None]:
            def run() -> None:
                start = time.perf_counter()
                for i in range(int(window)):
                    fn(i)
                    time.sleep(max(0.0, start + i + 1 - time.perf_counter()))
            return run

        states = {"steady": None, "puts alone at 1 Hz": once_a_second(put), "publish at 1 Hz": once_a_second(publish)}
        runs: dict[str, list[tuple[list[float], float]]] = {k: [] for k in states}
        for _ in range(ROUNDS):
            for what, during in states.items():
                runs[what].append(_serve(fleet, x, window, during))
        pooled = {k: [t for lat, _ in v for t in lat] for k, v in runs.items()}
        p99 = {k: float(np.percentile(lat, 99)) for k, lat in pooled.items()}
        rate = {k: float(np.mean([r for _, r in v])) for k, v in runs.items()}
        for what in runs:
            record("fleet", case, f"request p50, {what}", np.percentile(pooled[what], 50) * 1e3, None)
            record("fleet", case, f"request p99, {what}", p99[what] * 1e3, None)
            record("fleet", case, f"throughput, {what}", rate[what], None, unit="req/s")

        def by_window(what: str) -> str:
            pairs = [(np.percentile(w[0], 99) / np.percentile(s[0], 99), w[1] / s[1])
                     for s, w in zip(runs["steady"], runs[what], strict=True)]
            return (f"window by window: p99 {', '.join(f'{a:.2f}x' for a, _ in pairs)}, "
                    f"throughput {', '.join(f'{b:.2f}' for _, b in pairs)}")

        who = "driver" if trainer is None else "trainer actor"
        for what in ("puts alone at 1 Hz", "publish at 1 Hz"):
            record("fleet", case, f"p99 {what} / steady", p99[what] / p99["steady"], None, unit="x",
                   note=f"throughput {rate[what] / rate['steady']:.2f}x steady ({ROUNDS} windows of {window:g} s "
                        f"each, alternating; {by_window(what)}); sets put by the {who}")
        record("fleet", case, "p99 publish / puts alone at 1 Hz", p99["publish at 1 Hz"] / p99["puts alone at 1 Hz"],
               None, unit="x", note=f"throughput {rate['publish at 1 Hz'] / rate['puts alone at 1 Hz']:.2f}x: "
                                    "the fleet's own part of the switching cost")
    finally:
        fleet.shutdown()


if __name__ == "__main__":  # one mode or size on its own: python bench/fleet.py [--quick] [--mib N] [--modes zero]
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--mib", type=int, default=None, help="weight set size (default 1024, --quick 256)")
    parser.add_argument("--modes", default="copy,zero", help="copy, zero (zero-copy) or both")
    parser.add_argument("--counts", default=None, help="tensor counts, e.g. 256 (default: 256 and 1024 / 4096)")
    parser.add_argument("--pack", default="auto", help="Fleet(pack=...) settings: auto, true, false or several")
    parser.add_argument("--publisher", default="trainer", choices=("trainer", "driver"),
                        help="who puts the sets published at 1 Hz: a trainer actor, or the serving driver")
    parser.add_argument("--pause", type=float, default=None, help="Fleet(pause=...), seconds")
    parser.add_argument("--nice", type=int, default=None, help="Fleet(nice=...)")
    parser.add_argument("--urgent", type=float, default=URGENT,
                        help=f"publish(pause=...) of the urgent publishes measured in copy mode (default {URGENT})")
    args = parser.parse_args()
    options = {k: v for k, v in (("pause", args.pause),
                                 ("nice", args.nice)) if v is not None}

    def show(section: str, case: str, what: str, med: float, mn: float | None = None, unit: str = "ms",
             **extra: Any) -> None:
        print(f"{case:28s} {what:56s} {med:10.1f} {'' if mn is None else f'{mn:10.1f}'} {unit} "
              f"{extra.get('note', '')}", flush=True)

    bench_fleet(args.quick, show, tuple(m == "copy" for m in args.modes.split(",")), args.mib,
                None if args.counts is None else tuple(int(c) for c in args.counts.split(",")),
                tuple({"true": True, "false": False}.get(p, p) for p in args.pack.split(",")), args.publisher, options,
                args.urgent)
