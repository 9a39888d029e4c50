"""The one place where wrc's passes are put in order (used by the API, the backends and docs).

Each stage is a pass pipeline string that `wrc-opt -p` accepts as it is, so every step the
API takes can be replayed and inspected with `wrc-opt`.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline
from xdsl.transforms import get_all_passes

from wrc.context import make_context
from wrc.passes import PASSES

WEIGHT_ONLY = "ge-fold-weight-scales,ge-hoist-weight-only"
"""Level 1 → level 1: scales and shifts folded into the weights before them, then the
weight-only work of read-only graphs moved into derive functions."""

LOWER_TO_BUFFERS = "convert-ge-to-linalg,ge-bufferize"
"""ge (level 1) → linalg on memrefs with module-level globals (level 3)."""

BUILD = f"{WEIGHT_ONLY},{LOWER_TO_BUFFERS}"
"""What `bundle_build_model` runs: level 1 → the level 3 that bundles hold."""

LOWER_TO_LOOPS = "convert-linalg-to-loops"
"""level 3 → scf/memref/arith loops (level 4): what the interpreter runs."""


_GC_LOCK = threading.Lock()
_GC_PAUSES = 0
_GC_WAS_ENABLED = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run a compile step with Python's cyclic garbage collector paused (nestable, thread-safe).

    xDSL IR is made of reference cycles (parents, uses), so a compile allocates millions of
    tracked objects; each automatic full collection walks all of them, which made building a
    graph of n ops take O(n²) time (docs/performance.md). Nothing is leaked: the collector
    is re-enabled (if it was on) when the outermost pause ends and reclaims the cycles then.
    """
    global _GC_PAUSES, _GC_WAS_ENABLED
    with _GC_LOCK:
        if _GC_PAUSES == 0:
            _GC_WAS_ENABLED = gc.isenabled()
            gc.disable()
        _GC_PAUSES += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_PAUSES -= 1
            if _GC_PAUSES == 0 and _GC_WAS_ENABLED:
                _promote_young()
                gc.enable()


PROMOTED_LIMIT = 1_000_000
"""Objects `paused_gc` may move to the oldest generation between two full collections."""

_PROMOTED = 0
_FULL_COLLECTIONS = 0


def _promote_young() -> None:
    """Move the objects a paused step left young to the oldest generation, without a walk.

    They are nearly all the IR the step returns: the next young collection, then the next
    middle one, would walk them all (0.1-0.15 s each after building a 2,000-op graph) to
    find little garbage. `gc.freeze(); gc.unfreeze()` moves every tracked object to the
    oldest generation in constant time; the step's garbage cycles then wait for a full
    collection. CPython starts those by the objects its middle collections promote, which
    these are not, so a full collection runs here once `PROMOTED_LIMIT` objects were moved
    this way since the last one. Skipped where objects are frozen (a host that froze its heap,
    e.g. before forking, keeps it frozen).
    """
    global _PROMOTED, _FULL_COLLECTIONS
    if gc.get_freeze_count():
        return
    full = gc.get_stats()[-1]["collections"]
    if full != _FULL_COLLECTIONS:
        _PROMOTED, _FULL_COLLECTIONS = 0, full
    _PROMOTED += gc.get_count()[0]  # (the youngest generation's net allocations)
    gc.freeze()
    gc.unfreeze()
    if _PROMOTED > PROMOTED_LIMIT:
        gc.collect()


def conversion_passes(const_names: Sequence[str], deltas: Sequence[str] = ()) -> list[ModulePass]:
    """`ge-const-to-var{names=...}` then `ge-split-weight-refreshable` (docs/spec.md §2), then
    `ge-add-delta-graph{deltas=...}` when `deltas` (`NAME=KIND` entries) are given."""
    passes = [
        PASSES["ge-const-to-var"]()(names=tuple(const_names)),
        PASSES["ge-split-weight-refreshable"]()(),
    ]
    if deltas:
        passes.append(PASSES["ge-add-delta-graph"]()(deltas=tuple(deltas)))
    return passes


def parse_pipeline(spec: str) -> list[ModulePass]:
    """Instantiate a `wrc-opt -p` style pipeline string with wrc's and xDSL's passes."""
    available = {**get_all_passes(), **PASSES}
    return list(PassPipeline.parse_spec(available, spec).passes)


def apply(module: ModuleOp, passes: str | Sequence[ModulePass]) -> ModuleOp:
    """Run `passes` (a pipeline string or pass objects) over `module` in place."""
    if isinstance(passes, str):
        passes = parse_pipeline(passes)
    ctx = make_context()
    with paused_gc():
        for p in passes:
            p.apply(ctx, module)
    return module
