"""wrc.fleet across nodes: a 3-node `ray.cluster_utils.Cluster` on this machine, 4 zero-copy
replicas (`copy=False`: each adopts its node's copy of a set) spread over it, 10,000 requests from 4 client threads while 12 versions are published and a
replica is killed (Ray restarts it): no response of mixed weights, none older than the version
committed at its admission, no failed request.

Responses are checked against the NumPy formula of the weights of the version each reports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from test_hoist import X, build, reference, weights

from wrc.bundle_format import bundle_bytes
from wrc.fleet import Fleet
from wrc.runtime import load_bundle

CLIENTS, REQUESTS, VERSIONS = 4, 2500, 12  # requests per client


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    model = bundle_bytes(build())
    load_bundle(model)  # compiled once, here: the replicas (at Ray's nice 15) find it in the load cache
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        assert len(nodes) == 3
        place = [{"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(nodes[i % 3], soft=False)}
                 for i in range(4)]  # replicas 0 and 3 on one node, 1 and 2 on the others
        f = Fleet(model, 4, options=place, copy=False)  # zero-copy: each node adopts its copy
        yield f
        f.shutdown()
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_ten_thousand_requests_while_versions_switch(fleet: Fleet) -> None:
    nodes = ray.get([r.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id())
                     for r in fleet.replicas])
    assert len(set(nodes)) == 3, nodes
    expected = {0: reference(X, weights(0))}  # version → its result (known before it is committed)
    order = [0]  # commit order
    failures: list[str] = []
    counts = [0] * CLIENTS
    by_version: dict[int, int] = {}
    lock = threading.Lock()

    def client(k: int) -> None:
        try:
            for _ in range(REQUESTS):
                admitted = fleet.version
                (y,), v = fleet.infer({"x": X})
                if v not in expected or order.index(v) < order.index(admitted):
                    failures.append(f"version {v} served a request admitted at {admitted}")
                elif not np.allclose(y, expected[v], rtol=1e-5, atol=1e-5):
                    failures.append(f"version {v}: a result of other weights")
                with lock:
                    by_version[v] = by_version.get(v, 0) + 1
                counts[k] += 1
                if failures:
                    return
        except Exception as e:  # a failed request; a crashing thread is otherwise only a warning
            failures.append(f"client {k}: {e!r}")

    def responses(count: int) -> None:  # wait for `count` more responses (at most 20 s)
        target, deadline = sum(counts) + count, time.monotonic() + 20
        while sum(counts) < target and time.monotonic() < deadline and not failures:
            time.sleep(0.002)

    def publisher() -> None:
        try:
            for i in range(VERSIONS):
                responses(400)
                coming = fleet._last + 1  # noqa: SLF001 - known before any response carries it
                expected[coming] = reference(X, weights(30 + i))
                order.append(coming)
                assert fleet.publish(weights(30 + i)) == coming
                if i == VERSIONS // 2:  # Ray restarts it; its requests are retried there
                    ray.kill(fleet.replicas[1], no_restart=False)
        except Exception as e:
            failures.append(f"publisher: {e!r}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    threads.append(threading.Thread(target=publisher))
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=75)
    assert not any(t.is_alive() for t in threads), "threads did not finish in time"
    assert not failures, failures[:3]
    assert sum(counts) == CLIENTS * REQUESTS
    assert len(order) == VERSIONS + 1 and set(by_version) == set(order), (order, by_version)
    assert time.monotonic() - start < 75
