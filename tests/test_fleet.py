"""wrc.fleet on one local Ray instance shared by the module: publish (dict, file, ObjectRef),
rollback, aborted publishes, a replica that does not answer, a failed commit, a restarted
replica, clients running while versions switch, and a zero-copy fleet (`copy=False`).

The model is test_hoist's LoRA + BatchNorm layer (derived values recomputed on staging);
every response is checked against the NumPy formula for the weights of the version it reports.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import ray
from test_hoist import X, build, reference, weights

from wrc.bundle_format import bundle_bytes
from wrc.errors import BackendUnavailableError, FleetError, InputError, VersionError
from wrc.fleet import Fleet
from wrc.runtime import load_bundle
from wrc.weight_files import write_weights

REPLICAS = 3


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    model = bundle_bytes(build())
    load_bundle(model)  # compiled once, here: the replicas (at Ray's nice 15) find it in the load cache
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # num_cpus=0: three replicas (and the registry) fit a 2-CPU Ray.
        f = Fleet(model, REPLICAS, options={"num_cpus": 0})
        yield f
        f.shutdown()
    finally:
        ray.shutdown()


def test_wrc_does_not_import_ray_and_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import sys, wrc, wrc.fleet; assert 'ray' not in sys.modules, 'ray imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(BackendUnavailableError, match=r"wrc.fleet needs Ray: pip install 'wrc\[ray\]'"):
        Fleet(b"", 1)


seed_of = {0: 0}  # fleet version → the seed of its weights (weights(0): compiled in)


def _check(y: np.ndarray, version: int) -> None:
    np.testing.assert_allclose(y, reference(X, weights(seed_of[version])), rtol=1e-5, atol=1e-5)


def _each_replica(f: Fleet) -> list[tuple[np.ndarray, int]]:
    """One response from every replica (not round robin: each by its handle)."""
    answers = ray.get([r.infer.options(concurrency_group="infer").remote({"x": X}) for r in f.replicas])
    return [(outs[0], v) for outs, v in answers]


def _publish(f: Fleet, seed: int, source: object = None) -> int:
    v = f.publish(weights(seed) if source is None else source)
    seed_of[v] = seed
    return v


def test_publish_a_dict_and_files(fleet: Fleet, tmp_path) -> None:
    with pytest.raises(InputError, match="1 option sets for 2 replicas"):
        Fleet(b"", 2, options=[{}])
    for bad in (0, -1.5, True, "10"):
        with pytest.raises(InputError, match=rf"^Fleet: timeout must be a positive number of seconds, got {bad!r}$"):
            Fleet(b"", 2, timeout=bad)
    with pytest.raises(InputError, match=r"^Fleet: replicas must be a positive int, got 0$"):
        Fleet(b"", 0)
    assert fleet.version == 0
    for y, v in _each_replica(fleet):
        assert v == 0
        _check(y, v)
    assert _publish(fleet, 1) == 1
    for suffix, seed in [(".npz", 2), (".safetensors", 3)]:
        path = tmp_path / f"w{suffix}"
        write_weights(path, weights(seed))
        v = _publish(fleet, seed, path)
        assert fleet.version == v
        for y, served in _each_replica(fleet):
            assert served == v
            _check(y, v)
    outs, v = fleet.infer({"x": X})  # round robin
    assert v == fleet.version
    _check(outs[0], v)


def test_rollback_is_bit_identical(fleet: Fleet) -> None:
    before, v = _each_replica(fleet), fleet.version
    _publish(fleet, 4)
    assert fleet.rollback() == v and fleet.version == v
    after = _each_replica(fleet)
    for (y0, v0), (y1, v1) in zip(before, after, strict=True):
        assert v0 == v1 == v and np.array_equal(y0, y1)
    with pytest.raises(VersionError, match="no previous fleet version is retained"):
        fleet.rollback()


def test_publishing_a_stored_set_takes_three_round_trips(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """`publish(ObjectRef)` waits on the replicas' stage, the registry, the replicas' commit,
    nothing before (staging gives up each replica's retained version); a dict first has the
    registry let the set retained for rollback go, to make room for its put. Either way the
    version replaced stays retained for `rollback`, bit for bit."""
    waits: list[str] = []
    each, registry = fleet._each, fleet._registry_wait  # noqa: SLF001
    monkeypatch.setattr(fleet, "_each", lambda method, *args: (waits.append(method), each(method, *args))[1])
    monkeypatch.setattr(fleet, "_registry_wait", lambda call: (waits.append("registry"), registry(call))[1])
    before = _each_replica(fleet)
    ref = ray.put(weights(90))
    v = _publish(fleet, 90, ref)
    assert v == fleet.version and waits == ["stage", "registry", "commit"]
    del ref
    for y, served in _each_replica(fleet):
        assert served == v
        _check(y, served)
    waits.clear()
    assert _publish(fleet, 91) == v + 1 and waits == ["registry", "stage", "registry", "commit"]
    assert fleet.rollback() == v
    assert _publish(fleet, 92, ray.put(weights(92))) == v + 2
    assert fleet.rollback() == v
    monkeypatch.undo()
    for (y, served), (y0, _) in zip(_each_replica(fleet), before, strict=True):
        assert served == v and not np.array_equal(y, y0)
        _check(y, served)


def test_a_failed_stage_on_any_replica_aborts_the_publish(fleet: Fleet) -> None:
    v = fleet.version
    bad = {**weights(5), "w": np.zeros((2, 2), np.float32)}
    with pytest.raises(FleetError, match=rf"publish of version \d+ aborted, every replica still serves version {v}"
                                         r": stage failed on 3 of 3 replica\(s\): replica 0: InputError"):
        fleet.publish(bad)
    with pytest.raises(InputError, match="publish.. takes a mapping"):
        fleet.publish([1, 2])  # type: ignore[arg-type]

    def fail_once(replica: object) -> None:  # runs inside replica 1
        bundle = replica.bundle  # type: ignore[attr-defined]
        real = bundle.stage

        def stage(w: object, copy: bool = True) -> int:
            bundle.stage = real
            raise MemoryError("injected on one replica")

        bundle.stage = stage

    ray.get(fleet.replicas[1].__ray_call__.options(concurrency_group="control").remote(fail_once))
    with pytest.raises(FleetError, match=r"stage failed on 1 of 3 replica\(s\): replica 1: MemoryError: injected"):
        fleet.publish(weights(6))
    assert fleet.version == v
    for y, served in _each_replica(fleet):  # the two that staged it did not commit it
        assert served == v
        _check(y, v)
    v2 = _publish(fleet, 7)
    assert all(served == v2 for _, served in _each_replica(fleet))


def test_a_restarted_replica_catches_up_first(fleet: Fleet) -> None:
    prev = fleet.version
    v = _publish(fleet, 8)
    pid = ray.get(fleet.replicas[0].__ray_call__.remote(lambda _: __import__("os").getpid()))
    ray.kill(fleet.replicas[0], no_restart=False)  # Ray restarts it
    y, served = _each_replica(fleet)[0]  # the first request it takes
    assert served == v
    _check(y, v)
    assert ray.get(fleet.replicas[0].__ray_call__.remote(lambda _: __import__("os").getpid())) != pid
    assert fleet.rollback() == prev  # the restarted one re-applies it; the others switch back
    for y, served in _each_replica(fleet):
        assert served == prev
        _check(y, prev)


def _matches(y: np.ndarray, seed: int) -> bool:
    return np.allclose(y, reference(X, weights(seed)), rtol=1e-5, atol=1e-5)


def test_clients_never_get_a_mixed_or_stale_response(fleet: Fleet) -> None:
    """Two client threads send requests while versions are published; each response is
    checked against its version's weights, and must be of the version committed when it was
    admitted or a later one; every version published is served."""
    order = [fleet.version]  # commit order (no rollback here)
    failures: list[str] = []
    served: set[int] = set()
    done = [0]  # responses so far
    stop = threading.Event()

    def client() -> None:
        try:
            for _ in range(2000):
                admitted = fleet.version
                (y,), v = fleet.infer({"x": X})
                if v not in order or order.index(v) < order.index(admitted):
                    failures.append(f"version {v} served a request admitted at {admitted}")
                elif not _matches(y, seed_of[v]):
                    failures.append(f"version {v}: a result of other weights")
                served.add(v)
                done[0] += 1
                if failures or stop.is_set():
                    return
        except Exception as e:  # a crashing thread is otherwise only a pytest warning
            failures.append(f"client: {e!r}")

    def responses(count: int) -> None:  # wait for `count` more responses (at most 20 s)
        target, deadline = done[0] + count, time.monotonic() + 20
        while done[0] < target and time.monotonic() < deadline and not failures:
            time.sleep(0.001)

    def publisher() -> None:
        try:
            for seed in range(10, 18):
                responses(20)
                coming = fleet._last + 1  # noqa: SLF001 - known before any response carries it
                seed_of[coming] = seed
                order.append(coming)
                assert fleet.publish(weights(seed)) == coming
            responses(20)
        except Exception as e:
            failures.append(f"publisher: {e!r}")
        finally:
            stop.set()

    threads = [threading.Thread(target=client) for _ in range(2)] + [threading.Thread(target=publisher)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    stop.set()
    assert not any(t.is_alive() for t in threads), "threads did not finish in time"
    assert not failures, failures[:3]
    assert served == set(order), (order, sorted(served))  # each one had >= 18 requests of its own
    assert time.monotonic() - start < 60


def test_the_check_detects_per_tensor_updates(fleet: Fleet) -> None:
    """Negative control: without versions (each tensor updated on its own, as per-tensor
    weight pushes do), a client on the same replica gets results of mixed weight sets, and
    the check above rejects them."""
    replica = fleet.replicas[0]
    seeds = (20, 21)

    def per_tensor(r: object, sets: list[dict[str, np.ndarray]], rounds: int) -> None:
        import time  # (runs inside the replica, on its control group)

        for i in range(rounds):
            for name, value in sets[i % 2].items():
                r.bundle.update({name: value})  # type: ignore[attr-defined]
                time.sleep(0.002)

    def infer(r: object, x: np.ndarray) -> np.ndarray:  # the bundle's result, without versions
        return r.bundle.infer({"x": x})[0]  # type: ignore[attr-defined]

    pushing = replica.__ray_call__.options(concurrency_group="control").remote(per_tensor, [weights(s) for s in seeds], 40)
    mixed = total = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        y = ray.get(replica.__ray_call__.options(concurrency_group="infer").remote(infer, X))
        total += 1
        mixed += not any(_matches(y, s) for s in seeds)
        if ray.wait([pushing], timeout=0)[0]:
            break
    ray.get(pushing)
    assert total > 20 and mixed > 0, (total, mixed)
    # The replica's own weights were changed behind its back: give it the fleet's again.
    live = fleet.version
    ray.get(replica.__ray_call__.options(concurrency_group="control").remote(
        lambda r, v, w: r._apply(v, w), live, weights(seed_of[live])))
    v = _publish(fleet, 22)  # every replica on one version again
    assert all(served == v for _, served in _each_replica(fleet))


def test_a_replica_that_does_not_answer_fails_the_call(fleet: Fleet) -> None:
    """Bounded waits: a stage that hangs aborts the publish after `timeout`; a commit that
    fails restarts that replica, which comes back on the committed version."""
    v = fleet.version

    def hang_once(replica: object) -> None:
        import time  # (runs inside replica 2)

        bundle = replica.bundle  # type: ignore[attr-defined]
        real = bundle.stage

        def stage(w: object, copy: bool = True) -> int:
            bundle.stage = real
            time.sleep(1.5)
            raise MemoryError("gave up")

        bundle.stage = stage

    ray.get(fleet.replicas[2].__ray_call__.options(concurrency_group="control").remote(hang_once))
    fleet.timeout = 0.3
    try:
        with pytest.raises(FleetError, match=rf"aborted, every replica still serves version {v}: stage failed on 1 "
                                             r"of 3 replica\(s\): replica 2: no answer within 0.3 s"):
            fleet.publish(weights(50))
    finally:
        fleet.timeout = 120.0
    assert fleet.version == v and all(served == v for _, served in _each_replica(fleet))

    def fail_commit(replica: object) -> None:
        def commit(version: int) -> None:
            raise MemoryError("commit lost")

        replica.bundle.commit = commit  # type: ignore[attr-defined]

    ray.get(fleet.replicas[0].__ray_call__.options(concurrency_group="control").remote(fail_commit))
    coming = fleet._last + 1  # noqa: SLF001
    seed_of[coming] = 51
    with pytest.raises(FleetError, match=rf"version {coming} is committed, but commit failed on 1 of 3 replica\(s\): "
                                         rf"replica 0: MemoryError: commit lost; restarted replica 0 on it"):
        fleet.publish(weights(51))
    assert fleet.version == coming
    for y, served in _each_replica(fleet):  # replica 0 restarted on it
        assert served == coming
        _check(y, coming)


def test_zero_copy_replicas_adopt_the_object_store_arrays(fleet: Fleet) -> None:
    """copy=False: every replica serves from the store's one copy of each set (no copy of
    its own), checks what it adopts (a publish it cannot adopt is aborted), rolls back, and
    the set a version no longer needs goes out of scope."""
    from wrc.fleet import _out_of_scope

    def in_object_store(replica: object) -> list[bool]:  # (runs inside a replica)
        """Per weight of the live version: read-only memory of the object store's shared mapping."""
        snap = replica.bundle._snapshot  # type: ignore[attr-defined]
        maps = []
        with open("/proc/self/maps") as f:
            for line in f:
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                maps.append((lo, hi, "plasma" in line))
        out = []
        for name in ("w_var", "lora_a_var", "lora_b_var", "gamma_var", "var_var"):
            a = snap[name]
            out.append(not a.flags.writeable and any(lo <= a.ctypes.data < hi and shm for lo, hi, shm in maps))
        return out

    zero = Fleet(bundle_bytes(build()), 2, weights=weights(60), options={"num_cpus": 0}, copy=False)
    try:
        # zero-copy's default priority: the same as requests' (nothing but the put to copy)
        assert zero.nice == 0 and zero._copier is None  # noqa: SLF001
        assert ray.get([r.__ray_call__.remote(lambda self: self._copier is None) for r in zero.replicas]) == [True] * 2
        seed_of_zero = {1: 60}
        v2 = zero.publish(weights(61))
        seed_of_zero[v2] = 61
        for r in zero.replicas:
            assert all(ray.get(r.__ray_call__.remote(in_object_store))), "a weight is not the store's"
        for y, v in _each_replica(zero):
            assert v == v2
            np.testing.assert_allclose(y, reference(X, weights(61)), rtol=1e-5, atol=1e-5)
        fortran = {**weights(62), "w": np.asfortranarray(weights(62)["w"])}
        with pytest.raises(FleetError, match=rf"every replica still serves version {v2}: stage failed on 2 of 2 "
                                             r"replica\(s\): replica 0: InputError: .*'w': copy=False needs a C-contiguous"):
            zero.publish(fortran)
        first = _out_of_scope(zero._committed)  # noqa: SLF001 - version 2's set
        v4 = zero.publish(ray.put(weights(63)))  # an ObjectRef: no put of the fleet's own
        seed_of_zero[v4] = 63
        assert not first.is_set()  # retained for rollback
        before = _each_replica(zero)
        assert zero.rollback() == v2
        after = _each_replica(zero)
        for y, v in after:
            assert v == v2
            np.testing.assert_allclose(y, reference(X, weights(61)), rtol=1e-5, atol=1e-5)
        assert zero.publish(weights(64)) == v4 + 1
        zero.release()
        with pytest.raises(VersionError, match="no previous fleet version is retained"):
            zero.rollback()
        assert first.wait(10), "the retired set is still referenced"
        assert all(v == v4 for _, v in before)
        for y, v in _each_replica(zero):
            assert v == v4 + 1
            np.testing.assert_allclose(y, reference(X, weights(64)), rtol=1e-5, atol=1e-5)
    finally:
        zero.shutdown()


def test_a_publish_travels_as_one_pack_that_each_replica_copies_whole(fleet: Fleet) -> None:
    """copy=True: the set arrives from the store as one `WeightPack` (a parcel), each
    replica copies its buffer at once into one slab of its own; a bad tensor inside the pack
    aborts the publish naming it. A dict (`pack=False`): Ray lays its arrays out back to back
    in the store, and each replica copies that span at once, as a pack."""
    from wrc.weight_pack import WeightPack

    def slabs(replica: object) -> tuple[int, bool]:  # (runs inside a replica)
        snap = replica.bundle._snapshot  # type: ignore[attr-defined]
        arrays = [snap[n] for n in ("w_var", "lora_a_var", "lora_b_var", "gamma_var", "var_var")]
        owners = {id(a if a.base is None else a.base) for a in arrays}
        return len(owners), all(a.flags.writeable is False for a in arrays)

    v = _publish(fleet, 70)
    sent = ray.get(fleet._committed[1])  # noqa: SLF001 - what the store holds for version v
    assert isinstance(sent, WeightPack) and sorted(sent) == sorted(weights(70))
    assert all(np.array_equal(sent[k], a) for k, a in weights(70).items())
    del sent
    for r in fleet.replicas:
        assert ray.get(r.__ray_call__.remote(slabs)) == (1, True)
    for y, served in _each_replica(fleet):
        assert served == v
        _check(y, v)
    fleet.pack = False
    try:
        v = _publish(fleet, 72)
        assert type(ray.get(fleet._committed[1])) is dict  # noqa: SLF001
        for r in fleet.replicas:
            assert ray.get(r.__ray_call__.remote(slabs)) == (1, True)
        for y, served in _each_replica(fleet):
            assert served == v
            _check(y, v)
    finally:
        fleet.pack = "auto"
    bad = {**weights(71), "gamma": weights(71)["gamma"].astype(np.float64)}
    with pytest.raises(FleetError, match=rf"every replica still serves version {v}: stage failed on 3 of 3 "
                                         r"replica\(s\): replica 0: InputError: .*'gamma': expected dtype float32"):
        fleet.publish(bad)
    for y, served in _each_replica(fleet):
        assert served == v
        _check(y, v)
    with pytest.raises(InputError, match=r"^Fleet: pack must be 'auto', True or False, got 'yes'$"):
        Fleet(b"", 1, pack="yes")


def test_copies_run_below_the_priority_of_requests(fleet: Fleet) -> None:
    """Each replica stages, and the controller packs and puts a set, on a thread of its own
    whose CPU priority is `nice` (10) lower than the threads serving requests (Linux: per
    thread), so that requests keep the cores during a publish."""
    import os

    from wrc.fleet import COPY_NICE, _copier

    def where() -> tuple[int, int]:
        tid = threading.get_native_id()
        return tid, os.getpriority(os.PRIO_PROCESS, tid)

    def spy(replica: object) -> None:  # (runs inside a replica)
        bundle = replica.bundle  # type: ignore[attr-defined]
        stage = bundle.stage

        def recorded(*args: object, **kwargs: object) -> object:
            bundle.staged_on = where()
            return stage(*args, **kwargs)

        bundle.stage = recorded

    def seen(replica: object) -> tuple[tuple[int, int], tuple[int, int]]:
        bundle = replica.bundle  # type: ignore[attr-defined]
        del bundle.stage
        return bundle.staged_on, where()

    for r in fleet.replicas:
        ray.get(r.__ray_call__.remote(spy))
    put = fleet._put  # noqa: SLF001
    at: list[tuple[int, int]] = []
    fleet._put = lambda values: (at.append(where()), put(values))[1]  # noqa: SLF001
    try:
        _publish(fleet, 73)
    finally:
        del fleet._put  # noqa: SLF001
    me = where()
    assert fleet.nice == COPY_NICE
    assert at[0][0] != me[0] and at[0][1] == min(me[1] + COPY_NICE, 19)
    for r in fleet.replicas:
        staged, caller = ray.get(r.__ray_call__.remote(seen))
        assert staged[0] != caller[0] and staged[1] == min(caller[1] + COPY_NICE, 19)
    for y, served in _each_replica(fleet):
        _check(y, served)
    assert _copier(0) is None
    for bad in (-1, 20, 2.5, True):
        with pytest.raises(InputError, match=rf"^Fleet: nice must be an int from 0 to 19, got {bad!r}$"):
            Fleet(b"", 1, nice=bad)


def test_what_a_publish_packs() -> None:
    """`pack="auto"` (either mode): a parcel whose pack holds copies of the tensors under
    PACK_BELOW bytes, the others sent as they are (pieces of the caller's arrays); `pack=True`:
    every tensor copied; `pack=False`, or arrays a pack cannot hold as given: the dict as it
    is; a caller's `WeightPack`: its buffer as it is."""
    import pickle

    from wrc.fleet import PACK_BELOW
    from wrc.weight_pack import WeightParcel, pack_weights

    small = {f"s{i}": np.ones(16, np.float32) for i in range(4)}
    values = {**small, "big": np.ones(PACK_BELOW // 4, np.float32)}
    fortran = {"w": np.asfortranarray(np.ones((4, 4), np.float32))}
    for copy, pack, given, copied in [(True, "auto", values, set(small)), (False, "auto", values, set(small)),
                                      (False, True, values, set(values)), (True, False, values, None),
                                      (True, "auto", fortran, None)]:
        f = object.__new__(Fleet)
        f.copy, f.pack, f._pack_buffer = copy, pack, None  # noqa: SLF001
        sent = f._packed(given)  # noqa: SLF001
        if copied is None:
            assert sent is given, (copy, pack)
            continue
        assert isinstance(sent, WeightParcel), (copy, pack)
        assert {k for k, a in given.items() if not any(np.shares_memory(p, a) for p in sent.pieces)} == copied
        assert f._pack_buffer is sent.packed  # noqa: SLF001 - reused by the next publish
        arrived = pickle.loads(pickle.dumps(sent))
        assert all(np.array_equal(arrived[k], a) for k, a in given.items())
    f.pack = "auto"
    ours = pack_weights(values)
    sent = f._packed(ours)  # noqa: SLF001
    assert isinstance(sent, WeightParcel) and all(np.shares_memory(p, ours.buffer) for p in sent.pieces)


def test_pause_holds_a_replicas_requests_while_it_stages(fleet: Fleet) -> None:
    """`Fleet(pause=s)`, or `publish(..., pause=s)` for one publish: a request that reaches a
    replica while it stages waits until the stage is done, at most `s` seconds (then it runs
    beside it); by default (0) it runs at once. (The functions run inside a replica: nested,
    so that Ray sends them by value.)"""

    def slow_stage(replica: object, default: float, sleep: float) -> None:  # (runs inside a replica)
        import threading
        import time

        replica._pause = default  # type: ignore[attr-defined]  # as Fleet(pause=...) sets it
        bundle = replica.bundle  # type: ignore[attr-defined]
        stage, infer = bundle.stage, bundle.infer
        log = replica.log = {"staging": threading.Event()}  # type: ignore[attr-defined]

        def slow(*args: object, **kwargs: object) -> object:
            log["staging"].set()
            time.sleep(sleep)
            try:
                return stage(*args, **kwargs)
            finally:
                log["done"] = time.monotonic()

        def recorded(*args: object, **kwargs: object) -> object:
            log["ran"] = time.monotonic()
            return infer(*args, **kwargs)

        bundle.stage, bundle.infer = slow, recorded

    def staging(replica: object) -> bool:
        return replica.log["staging"].wait(30)  # type: ignore[attr-defined]

    def stage_log(replica: object) -> tuple[float, float, float]:
        del replica.bundle.stage, replica.bundle.infer  # type: ignore[attr-defined]
        replica._pause = 0.0  # type: ignore[attr-defined]
        return replica.log["ran"], replica.log["done"], replica._hold  # type: ignore[attr-defined]

    assert fleet.pause == 0.0
    replica = fleet.replicas[1]
    # (the fleet's pause, this publish's, the stage's duration): the pause that holds is the
    # publish's where given, else the fleet's
    for default, pause, sleep in ((0.0, None, 1.0), (30.0, None, 1.0), (0.0, 30.0, 1.0), (30.0, 0.3, 2.0),
                                  (30.0, 0.0, 1.0)):
        ray.get(replica.__ray_call__.remote(slow_stage, default, sleep))
        seed = 80 + len(seed_of)
        publishing = threading.Thread(target=lambda s=seed, p=pause: seed_of.update({fleet.publish(weights(s), pause=p): s}))
        publishing.start()
        assert ray.get(replica.__ray_call__.remote(staging))
        sent = time.monotonic()
        (y,), served = ray.get(replica.infer.options(concurrency_group="infer").remote({"x": X}))
        waited = time.monotonic() - sent
        publishing.join()
        ran, done, hold = ray.get(replica.__ray_call__.remote(stage_log))
        _check(y, served)
        assert hold == 0.0  # nothing held once the stage is done
        held = default if pause is None else pause
        if held == 30.0:
            assert ran >= done, (default, pause, "the request ran before the stage was done")
        else:
            assert ran < done, (default, pause, "the request waited for the whole stage")
            assert waited >= held, (default, pause, waited)
    for bad in (-1, True, 121):
        with pytest.raises(InputError, match=r"^Fleet: pause must be a number of seconds from 0 to timeout"):
            Fleet(b"", 1, pause=bad)
        live = fleet.version
        with pytest.raises(InputError, match=rf"^publish: pause must be a number of seconds from 0 to timeout "
                                             rf"\(120\), got {bad!r}$"):
            fleet.publish(weights(1), pause=bad)
        assert fleet.version == live and {v for _, v in _each_replica(fleet)} == {live}  # nothing staged


def test_map_ahead_is_each_replicas_init_option(fleet: Fleet) -> None:
    """`Fleet(map_ahead=...)` is what each replica's `init()` maps ahead (this small model's
    default, "target", maps all of its first update's buffers; 0 none); checked before any
    actor starts."""

    def spare(replica: object) -> list[str]:  # (runs inside a replica)
        return sorted(replica.bundle._spare)  # type: ignore[attr-defined]

    model = bundle_bytes(build())  # (`fleet`: the module's Ray)
    b = load_bundle(model)
    b.init()
    mapped = sorted(b._spare)  # noqa: SLF001
    assert mapped
    for map_ahead, want in [(0, []), ("all", mapped)]:
        f = Fleet(model, 1, options={"num_cpus": 0}, map_ahead=map_ahead)
        try:
            assert ray.get(f.replicas[0].__ray_call__.remote(spare)) == want, map_ahead
            v = f.publish(weights(70))
            for y, served in _each_replica(f):
                assert served == v
                np.testing.assert_allclose(y, reference(X, weights(70)), rtol=1e-5, atol=1e-5)
        finally:
            f.shutdown()
    for bad in ("some", -1, True):
        with pytest.raises(InputError, match=rf"^Fleet: map_ahead takes 'target' or 'all' or a number of bytes "
                                             rf">= 0, got {bad!r}$"):
            Fleet(b"", 1, map_ahead=bad)
