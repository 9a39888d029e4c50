"""A fleet of replicas on Ray serving one bundle, switched between weight versions at once
(docs/fleet.md). Needs Ray (`pip install 'wrc[ray]'`), imported only when a fleet is made.

Each replica is a Ray actor holding its own loaded `Bundle`; `infer` calls run on one
concurrency group (several threads: `Bundle.infer` takes no lock), control calls on another,
so publishing never waits behind requests. A publish puts the whole weight set into the object
store once, stages it on every replica (`Bundle.stage`: copied into the replica's spare
buffers while it keeps serving), and only when every replica staged it commits on all; a
response carries the fleet version of the weights that computed it (`Bundle.infer(...,
with_version=True)`), so no response mixes two weight sets. A request that started on the old
version finishes on it: its snapshot keeps the old arrays alive until it returns (the version
drains), and only then can they hold a later version. With `copy=False` a replica copies
nothing: its versions adopt the object store's read-only arrays (`Bundle.stage(copy=False)`),
shared by every replica on a node, and each set stays in the store while a version holds it.

Every wait on a replica or the registry is bounded (`timeout`): a replica that does not
answer fails the call with a `FleetError` naming it instead of hanging the controller.

The committed weight set (and the one it replaced) is also held by a small registry actor:
a replica that Ray restarts loads its bundle and applies the committed weights in its
constructor, before Ray hands it any request.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from wrc.errors import BackendUnavailableError, FleetError, InputError, VersionError
from wrc.model_buffer import ModelBuffer
from wrc.runtime import load_bundle, map_ahead_bytes
from wrc.weight_pack import WeightPack, packable, parcel
from wrc.weight_pack import prepare as prepare_parcels

INFER_GROUP, CONTROL_GROUP = "infer", "control"
"""The replicas' concurrency groups: requests, and publish / rollback calls."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError("wrc.fleet needs Ray: pip install 'wrc[ray]'") from None
    return ray


# A weight set in the registry: (fleet version, [ObjectRef]) — the reference inside a list so
# that Ray hands it on as a reference instead of fetching the weights.
Published = tuple[int, list[Any]]


PACK_BELOW = 64 << 10
"""`publish` (`pack="auto"`) copies the tensors smaller than this into one pack, and hands Ray
the others as they are (in pieces: `wrc.weight_pack.parcel`): below it, Ray's per-array costs
(~20 µs) exceed the pack's own copy of their bytes (measured: docs/performance.md)."""

RELEASE_WAIT_S = 1.0
"""How long `publish` waits for the previous weight set to be let go before putting the next:
beyond it the store holds three sets for a while instead of stalling the publish."""


COPY_NICE = 10
"""`Fleet(nice=...)`'s default in copy mode: how much lower the CPU priority (`nice`) of the
threads that copy weight sets is than the process's, so that a replica's staging and the
controller's pack and `ray.put` leave the cores to requests first. Zero-copy's default is 0:
with only the `ray.put` to copy, a lower priority made publishes longer and serving no better
(measured: docs/performance.md "issue 14, session 5")."""


def _pause_seconds(pause: Any, timeout: float, what: str) -> float:
    """`pause` (seconds from 0 to `timeout`) as a float; `InputError` naming `what` otherwise."""
    if isinstance(pause, bool) or not isinstance(pause, int | float) or not 0 <= pause <= timeout:
        raise InputError(f"{what}: pause must be a number of seconds from 0 to timeout ({timeout:g}), got {pause!r}")
    return float(pause)


def _lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by `nice` (Linux: `nice` is per thread;
    elsewhere, or where refused, it stays as it is: there a thread id may be another
    process's id)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except (AttributeError, OSError):
        pass


def _copier(nice: int) -> ThreadPoolExecutor | None:
    """One thread at a CPU priority `nice` lower, for the copies of weight sets (it cannot be
    raised again without privileges: a thread of its own, kept); None for 0."""
    if not nice:
        return None
    return ThreadPoolExecutor(1, thread_name_prefix="wrc-copy", initializer=_lower_priority, initargs=(nice,))


def _on(copier: ThreadPoolExecutor | None, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` on `copier`'s thread (None: on this one), waited for."""
    return fn(*args) if copier is None else copier.submit(fn, *args).result()


def _out_of_scope(entry: tuple[int, Any] | None) -> threading.Event:
    """An event set once Ray references the weight set of `entry` (version, ObjectRef)
    nowhere any more; set at once when there is none, or Ray cannot tell (an internal API of
    Ray's, for objects this process owns: those it put)."""
    done = threading.Event()
    ref = None if entry is None else entry[1]
    worker = _ray()._private.worker.global_worker
    watch = getattr(getattr(worker, "core_worker", None), "add_object_out_of_scope_callback", None)
    try:
        if ref is None or watch is None or not watch(ref, lambda _: done.set()):
            done.set()
    except (ValueError, TypeError):  # not owned here
        done.set()
    return done


class Registry:
    """The committed weight set and the one it replaced, for replicas that restart (an actor)."""

    def __init__(self) -> None:
        self.committed: Published | None = None
        self.previous: Published | None = None

    def set(self, committed: Published | None, previous: Published | None) -> None:
        self.committed, self.previous = committed, previous

    def get(self) -> Published | None:
        return self.committed


class Replica:
    """One loaded bundle in a Ray actor; versions are the fleet's, mapped to the bundle's own.
    `copy`: weight sets copied into the bundle's buffers, or adopted (zero-copy)."""

    def __init__(self, model: bytes, backend: str, registry: Any, copy: bool = True, timeout: float = 120.0,
                 nice: int = COPY_NICE, pause: float = 0.0, map_ahead: int | str = "target") -> None:
        ray = _ray()
        self.bundle = load_bundle(model, backend)
        prepare_parcels()  # (its compiled helper built before any request, not in the first publish)
        self.copy = copy
        self._map_ahead = map_ahead  # `init()`'s, when the replica serves version 0
        self._copier = _copier(nice)  # staging, below the requests' priority
        self._pause = pause  # how long a request waits at most for a stage to finish (the default)
        self._hold = 0.0  # that of the stage running now (0: none, or it holds no request)
        self._serving = threading.Event()  # cleared while a stage runs (with `pause`)
        self._serving.set()
        # bundle version → fleet version; only added to (an int pair per version), so that a
        # request finishing on an old snapshot still finds its version.
        self._fleet: dict[int, int] = {}
        self._staged: tuple[int, int] | None = None  # (fleet version, bundle version)
        self._replaced: int | None = None  # the fleet version `bundle.rollback()` returns to
        committed = ray.get(registry.get.remote(), timeout=timeout)
        # Catch up before taking requests: Ray sends none before the constructor returns.
        if committed is None:
            self._apply(0, None)
        else:
            self._apply(committed[0], ray.get(committed[1][0], timeout=timeout))

    def _apply(self, version: int, weights: Mapping[str, Any] | None) -> None:
        """Serve fleet `version` from `weights` (None: the weights compiled in, version 0)."""
        if weights is None:
            self.bundle.init(map_ahead=self._map_ahead)
        else:
            self.bundle.update(weights, copy=self.copy)
        self._fleet[self.bundle.version] = version
        self._staged = self._replaced = None

    def infer(self, inputs: Any) -> tuple[list[Any], int]:
        hold = self._hold
        if hold:
            self._serving.wait(hold)
        outputs, version = self.bundle.infer(inputs, with_version=True)
        return outputs, self._fleet[version]

    def version(self) -> int:
        return self._fleet[self.bundle.version]

    def stage(self, version: int, weights: Mapping[str, Any], pause: float | None = None) -> None:
        """Stage fleet `version`; requests arriving meanwhile wait for it at most `pause` seconds
        (None: the replica's `pause`)."""
        self._replaced = None  # staging gives up the bundle's previous version
        # copy: into the bundle's buffers, the store's arrays let go; else they are adopted
        hold = self._pause if pause is None else pause
        if hold:
            self._serving.clear()
            self._hold = hold
        try:
            local = _on(self._copier, self.bundle.stage, weights, self.copy)
        finally:
            self._hold = 0.0
            self._serving.set()
        self._fleet[local] = version
        self._staged = (version, local)

    def release(self) -> None:
        """Give up the retained (staged or previous) version: with `copy=False`, its weight
        set's arrays in the object store."""
        self.bundle.release()
        self._staged = self._replaced = None

    def commit(self, version: int) -> None:
        live = self.version()
        if live == version:  # already live: a replica restarted after the registry moved on
            return
        if self._staged is None or self._staged[0] != version:
            raise VersionError(f"replica: fleet version {version} is not staged (live: version {live})")
        self.bundle.commit(self._staged[1])
        self._staged, self._replaced = None, live

    def rollback(self, version: int, weights: list[Any], timeout: float) -> None:
        """Serve fleet `version` again: the bundle's retained version, else (a replica
        restarted since) the registry's weights, `[ObjectRef]` (`[None]`: version 0)."""
        if self._replaced == version:
            self.bundle.rollback()
            self._staged = self._replaced = None
        elif self.version() != version:
            self._apply(version, None if weights[0] is None else _ray().get(weights[0], timeout=timeout))


def _model_bytes(model: str | os.PathLike[str] | bytes | ModelBuffer) -> bytes:
    if isinstance(model, ModelBuffer):
        from wrc.bundle_format import bundle_bytes

        return bundle_bytes(model)
    if isinstance(model, bytes):
        return model
    if isinstance(model, str | os.PathLike):
        return Path(model).read_bytes()
    raise InputError(f"Fleet: model must be a bundle path, its bytes or a ModelBuffer, got {type(model).__name__}")


def _weight_set(weights: Mapping[str, Any] | str | os.PathLike[str]) -> Mapping[str, Any]:
    """The whole weight set as one dict (read from a `.safetensors`/`.npz` file if a path), or
    the `WeightPack` given."""
    if type(weights) is WeightPack:
        return weights
    if isinstance(weights, str | os.PathLike):
        from wrc.weight_files import read_weights

        return read_weights(weights)
    if not isinstance(weights, Mapping):
        raise InputError(f"publish() takes a mapping from weight name to array or a weight file, "
                         f"got {type(weights).__name__}")
    return dict(weights)


class Fleet:
    """`replicas` Ray actors serving one bundle; `publish` / `rollback` switch all of them.

    Calls `ray.init()` (Ray's defaults) unless Ray is initialized already. `weights` (a dict
    or a weight file): the fleet's first version, 1; without it each replica runs `init()`
    and serves version 0. `options`: Ray actor options for the replicas (e.g. `num_cpus`,
    `max_restarts`; restarts and task retries are unlimited by default), or a list of them,
    one per replica (e.g. to place each on a node). `copy=False`: zero-copy, replicas adopt
    the object store's arrays (docs/fleet.md "Zero-copy"). `timeout`: seconds any call waits
    for a replica (loading, staging, committing, a request) or the registry. `nice`: how much
    lower the CPU priority of the threads that copy weight sets is (replicas' staging, the
    controller's pack and put), so that requests keep the cores during a publish; 0: the same;
    None: `COPY_NICE` (10) with `copy=True`, 0 with `copy=False`. `pause`: seconds a request
    that reaches a replica while it stages waits at most for the stage to finish, so that
    the stage gets the replica's share of the cores (0: none; docs/fleet.md "Serving during
    a publish": a faster publish against slower requests meanwhile). `map_ahead`: each
    replica's `init(map_ahead=...)` when it serves version 0 (`Bundle.init`; "all": its first
    copy-mode publish writes into touched pages, for the memory of two weight sets from the
    start).
    """

    def __init__(self, model: str | os.PathLike[str] | bytes | ModelBuffer, replicas: int = 2, *,
                 backend: str = "numpy", weights: Mapping[str, Any] | str | os.PathLike[str] | None = None,
                 infer_threads: int = 2,
                 options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
                 copy: bool = True, timeout: float = 120.0, pack: bool | str = "auto",
                 nice: int | None = None, pause: float = 0.0, map_ahead: int | str = "target") -> None:
        ray = _ray()
        if not isinstance(replicas, int) or replicas < 1:
            raise InputError(f"Fleet: replicas must be a positive int, got {replicas!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise InputError(f"Fleet: timeout must be a positive number of seconds, got {timeout!r}")
        if not (isinstance(pack, bool) or pack == "auto"):
            raise InputError(f"Fleet: pack must be 'auto', True or False, got {pack!r}")
        if nice is None:
            nice = COPY_NICE if copy else 0
        if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= 19:
            raise InputError(f"Fleet: nice must be an int from 0 to 19, got {nice!r}")
        pause = _pause_seconds(pause, timeout, "Fleet")
        map_ahead_bytes(map_ahead, "Fleet: map_ahead")  # (checked here: a replica's error names an actor)
        self.copy, self.timeout, self.pack, self.nice = bool(copy), float(timeout), pack, nice
        self.pause = pause
        self._pack_buffer: Any = None  # the last pack's buffer, reused (touched pages)
        self._copier = _copier(nice)  # packs and puts, below the requests' priority
        each = [options or {}] * replicas if options is None or isinstance(options, Mapping) else list(options)
        if len(each) != replicas:
            raise InputError(f"Fleet: {len(each)} option sets for {replicas} replicas")
        self._lock = threading.Lock()  # one publish or rollback at a time
        self._registry = ray.remote(Registry).options(num_cpus=0).remote()
        self._committed: tuple[int, Any] | None = None  # (version, ObjectRef) of published sets
        self._previous: tuple[int, Any] | None = None
        self._version = self._last = 0
        if weights is not None:
            self._committed = (1, ray.put(self._packed(_weight_set(weights))))
            self._version = self._last = 1
            self._registry_set((1, [self._committed[1]]), None)
        actor = ray.remote(concurrency_groups={INFER_GROUP: infer_threads, CONTROL_GROUP: 1})(Replica)
        self._model = ray.put(_model_bytes(model))  # kept: a restarting replica loads it again
        self.replicas = [actor.options(**{"max_restarts": -1, "max_task_retries": -1, **opts}).remote(
            self._model, backend, self._registry, self.copy, self.timeout, nice, self.pause, map_ahead)
            for opts in each]
        self._all("version")  # every replica loaded (their errors surface here)
        self._next = itertools.count()

    @property
    def version(self) -> int:
        """The committed fleet version: every request admitted from now on is served by it
        (or by a newer one)."""
        return self._version

    def _all(self, method: str, *args: Any) -> list[Any]:
        """Call `method` on every replica's control group; wait for all (at most `timeout`);
        FleetError naming each replica that failed or did not answer."""
        results, problems = self._each(method, *args)
        if problems:
            raise FleetError(self._failed(method, problems))
        return results

    def _each(self, method: str, *args: Any) -> tuple[list[Any], dict[int, str]]:
        """`method` on every replica: the results, and the problem of each that failed."""
        ray = _ray()
        refs = [getattr(r, method).options(concurrency_group=CONTROL_GROUP).remote(*args) for r in self.replicas]
        ready = set(ray.wait(refs, num_returns=len(refs), timeout=self.timeout)[0])
        results: list[Any] = []
        problems: dict[int, str] = {}
        for i, ref in enumerate(refs):
            if ref not in ready:
                problems[i] = f"replica {i}: no answer within {self.timeout:g} s"
                continue
            try:
                results.append(ray.get(ref))
            except Exception as e:  # every replica answers before the caller decides
                cause = getattr(e, "cause", None) or e
                problems[i] = f"replica {i}: {type(cause).__name__}: {str(cause).strip().splitlines()[-1]}"
        return results, problems

    def _failed(self, method: str, problems: Mapping[int, str]) -> str:
        return (f"{method} failed on {len(problems)} of {len(self.replicas)} replica(s): "
                + "; ".join(problems.values()))

    def _registry_set(self, committed: Published | None, previous: Published | None) -> None:
        self._registry_wait(self._registry.set.remote(committed, previous))

    def _registry_wait(self, call: Any) -> None:
        """Wait (at most `timeout`) for the registry's `set` call `call` (an `ObjectRef`)."""
        try:
            _ray().get(call, timeout=self.timeout)
        except Exception as e:
            raise FleetError(f"the fleet's registry actor did not record the committed version: "
                             f"{type(e).__name__}: {e}") from None

    def publish(self, weights: Mapping[str, Any] | str | os.PathLike[str] | Any, *,
                pause: float | None = None) -> int:
        """Stage a weight set (a dict, a `WeightPack`, a `.safetensors`/`.npz` file, or the
        `ObjectRef` of a dict or pack already in the object store) on every replica, then
        commit it on all; returns its fleet version. One `ray.put` for the whole set (none for
        an `ObjectRef`), packed first as `pack` says (`_packed`). `pause`: this publish's
        `Fleet(pause=...)` (None: the fleet's), e.g. a few tenths of a second for an urgent
        set (a fix, a rollback target) that should take the cores from requests for as long as
        it copies, where the fleet's own stays 0 for the routine ones (docs/fleet.md "Serving
        during a publish").

        A failure while staging on any replica (`FleetError` naming each) commits nothing:
        every replica keeps serving the version it served.
        """
        ray = _ray()
        if pause is not None:
            pause = _pause_seconds(pause, self.timeout, "publish")
        given = weights if isinstance(weights, ray.ObjectRef) else None
        values = _weight_set(weights) if given is None else None
        with self._lock:
            # Retain only what serving needs: the committed set and the one staged (object
            # store: two weight sets). Replicas give up their previous version when staging;
            # adopting replicas must let its arrays go before the new set is put.
            version = self._last = self._last + 1
            try:
                if given is None:
                    self._release(replicas=not self.copy)
                    ref = _on(self._copier, self._put, values)
                    del values
                else:  # in the store already: nothing to make room for, and staging gives up
                    ref, self._previous = given, None  # each replica's retained version (3 round trips)
                self._all("stage", version, ref, pause)
                # The registry first: a replica restarting now starts on the new version.
                old = self._committed
                self._registry_set(self._published((version, ref)), self._published(old))
            except FleetError as e:
                raise FleetError(f"publish of version {version} aborted, every replica still serves "
                                 f"version {self._version}: {e}") from None
            self._committed, self._previous = (version, ref), old or (self._version, None)
            problems = self._each("commit", version)[1]
            if problems:  # a replica that did not switch must not serve: restarted, it starts on `version`
                self._restart(problems, version)
            self._version = version  # requests admitted from now on: this version
            if problems:
                raise FleetError(f"version {version} is committed, but {self._failed('commit', problems)}; "
                                 f"restarted {', '.join(f'replica {i}' for i in problems)} on it")
            return version

    def _put(self, values: Mapping[str, Any]) -> Any:
        return _ray().put(self._packed(values))

    def _packed(self, values: Mapping[str, Any]) -> Any:
        """The weight set as Ray should carry it: a `WeightParcel` (`wrc.weight_pack.parcel`),
        which each replica receives as one `WeightPack` over the object store's memory (with
        `copy=True` it copies that with one memcpy): the tensors under `PACK_BELOW` bytes packed
        (all with `pack=True`), the others, or a `WeightPack`'s buffer, as they are, in pieces
        Ray copies fastest. The dict as it is with `pack=False`, or holding arrays a pack
        cannot hold as given (left to the replicas' checks)."""
        if type(values) is WeightPack:
            return parcel(values)
        if not values or self.pack is False or not packable(values):
            return values
        sent = parcel(values, PACK_BELOW if self.pack == "auto" else 1 << 62, out=self._pack_buffer)
        # (Ray copies the pack into its store: its buffer serves the next publish)
        if sent.packed is not None and (self._pack_buffer is None or sent.packed.size > self._pack_buffer.size):
            self._pack_buffer = sent.packed
        return sent

    def _restart(self, replicas: Mapping[int, str], version: int) -> None:
        """Kill these replicas (Ray restarts them, on the registry's `version`) and wait until
        each serves it: until then the old process may still answer (on the old version)."""
        ray = _ray()
        for i in replicas:
            ray.kill(self.replicas[i], no_restart=False)
        deadline = time.monotonic() + self.timeout
        for i in replicas:
            while True:
                left = deadline - time.monotonic()
                try:
                    if left > 0 and ray.get(self.replicas[i].version.options(concurrency_group=CONTROL_GROUP)
                                            .remote(), timeout=left) == version:
                        break
                except ray.exceptions.RayError:  # a timeout, or the old process killed meanwhile: ask again
                    pass
                if time.monotonic() >= deadline:
                    raise FleetError(f"version {version} is committed, but replica {i} did not switch to it "
                                     f"nor come back on it within {self.timeout:g} s")
                time.sleep(0.01)  # (the old process answered: not killed yet, or Ray is restarting it)

    def release(self) -> None:
        """Give up the version retained for `rollback` everywhere now (as `publish` does
        first), so that a weight set the caller puts next finds its room in the object store.
        Waits (at most `RELEASE_WAIT_S`) until nothing references that set: a caller that
        published it as an `ObjectRef` drops its own reference first."""
        with self._lock:
            self._release(replicas=True)

    def _release(self, replicas: bool) -> None:
        """Drop the previous weight set: the controller's and registry's references, and the
        replicas' retained versions (`replicas`: needed when they adopt it). Waits (at most
        `RELEASE_WAIT_S`) until Ray references it nowhere, so that a set put next can take
        its memory in the store."""
        gone = _out_of_scope(self._previous)
        self._previous = None
        registry = self._registry.set.remote(self._published(self._committed), None)
        if replicas:  # (meanwhile: one round trip for both)
            self._all("release")
        self._registry_wait(registry)
        gone.wait(RELEASE_WAIT_S)

    @staticmethod
    def _published(entry: tuple[int, Any] | None) -> Published | None:
        return None if entry is None or entry[1] is None else (entry[0], [entry[1]])

    def rollback(self) -> int:
        """Make the version the last publish replaced live again on every replica (O(1) on
        each, re-applied on a replica restarted since); returns it. `VersionError` when
        none is retained (after a rollback, or once another publish started)."""
        with self._lock:
            if self._previous is None:
                raise VersionError(f"rollback(): no previous fleet version is retained (live: version "
                                   f"{self._version}); a rollback, or a new publish, gives it up")
            prev = self._previous
            self._registry_set(self._published(prev), None)
            self._all("rollback", prev[0], [prev[1]], self.timeout)
            self._committed, self._previous, self._version = (prev if prev[1] is not None else None), None, prev[0]
            return self._version

    def infer_async(self, inputs: Any) -> Any:
        """Send one request to the next replica (round robin): an ObjectRef of `(outputs, version)`."""
        return self._send(inputs)[1]

    def _send(self, inputs: Any) -> tuple[int, Any]:
        i = next(self._next) % len(self.replicas)
        return i, self.replicas[i].infer.options(concurrency_group=INFER_GROUP).remote(inputs)

    def infer(self, inputs: Any) -> tuple[list[Any], int]:
        """`(outputs, version)` of one request: the fleet version of the weights that computed it.
        `FleetError` when its replica does not answer within `timeout`."""
        ray = _ray()
        i, ref = self._send(inputs)
        try:
            return ray.get(ref, timeout=self.timeout)
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref)
            raise FleetError(f"infer: replica {i} did not answer within {self.timeout:g} s") from None

    def shutdown(self) -> None:
        """End the replicas and the registry (Ray itself keeps running)."""
        ray = _ray()
        for actor in [*self.replicas, self._registry]:
            ray.kill(actor, no_restart=True)
        self.replicas = []
        self._committed = self._previous = None  # the weight sets leave the store
        if self._copier is not None:
            self._copier.shutdown()
