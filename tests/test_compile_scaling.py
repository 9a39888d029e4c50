"""Compiling stays linear in the graph size: no Python function is called more than about 4×
as often for 4× the layers, over building the graph + convert + build + save (docs/performance.md, "Issue 12:
compile time of large graphs"). Call counts are deterministic, unlike times on a shared machine,
and a step that rescans a block or the module per op shows up as a function whose count grows
~16× (ge-hoist-weight-only's scan of the block per derive function gave 5.4-7.6× here, and
`Graph.const`'s walk of the graph per new constant more). The
cyclic collector, the other source of super-linear time, is covered by test_compile_gc.py."""

import cProfile
import pstats

import numpy as np

import wrc
from wrc.bundle_format import bundle_bytes


def layered(n: int) -> wrc.Graph:
    """`n` layers of relu(h @ (w * s) + b): `w * s` reads only weights, so each layer also gets
    a derive function (ge-hoist-weight-only) besides its lowered compute."""
    rng = np.random.default_rng(0)
    g = wrc.Graph(f"layered{n}")
    h = g.data("x", (2, 4))
    for i in range(n):
        w = g.const(f"w{i}", rng.standard_normal((4, 4)).astype(np.float32))
        s = g.const(f"s{i}", rng.standard_normal((4, 4)).astype(np.float32))
        b = g.const(f"b{i}", rng.standard_normal(4).astype(np.float32))
        h = g.relu(g.add(g.matmul(h, g.mul(w, s)), b))
    g.output(h)
    return g


def compile_calls(n: int) -> tuple[dict[str, int], int]:
    """(calls per function, derive functions made) of making, converting, building and saving
    `layered(n)`."""
    profile = cProfile.Profile()
    with wrc.BuildSession():
        profile.enable()
        g = layered(n)
        gs = wrc.convert_to_weight_refreshable_graphs(g, list(g.constants))
        model = wrc.bundle_build_model([gs.infer_graph, gs.var_init_graph, gs.var_update_graph])
        bundle_bytes(model)
        profile.disable()
    derives = sum(1 for op in model.module.ops if "ge.derive" in op.attributes)
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    return {f"{file}:{line}({name})": entry[1] for (file, line, name), entry in stats.items()}, derives


def test_no_function_is_called_superlinearly_often():
    compile_calls(4)  # imports and first-use caches out of the counts
    small, small_derives = compile_calls(25)
    large, large_derives = compile_calls(100)
    assert (small_derives, large_derives) == (25, 100)  # the hoisting pass had work to do
    assert sum(large.values()) > 3.5 * sum(small.values())  # the counts measure the compile
    # A constant term for functions of a fixed or small count; linear ones grow by 4.0-4.1.
    worst = {f: (small.get(f, 0), calls) for f, calls in large.items() if calls > 4.5 * small.get(f, 0) + 100}
    assert not worst, worst
