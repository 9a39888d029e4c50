"""wrc's compiler passes, one per module; `PASSES` maps each name to a lazy loader.

Importing this package imports no pass: `wrc-opt` and the pipeline load a pass only when it
is used (the same scheme as `xdsl.transforms.get_all_passes`).
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.passes import ModulePass


def _const_to_var() -> type[ModulePass]:
    from wrc.passes.ge_const_to_var import GeConstToVarPass

    return GeConstToVarPass


def _split() -> type[ModulePass]:
    from wrc.passes.ge_split_weight_refreshable import GeSplitWeightRefreshablePass

    return GeSplitWeightRefreshablePass


def _add_delta() -> type[ModulePass]:
    from wrc.passes.ge_add_delta_graph import GeAddDeltaGraphPass

    return GeAddDeltaGraphPass


def _fold_scales() -> type[ModulePass]:
    from wrc.passes.ge_fold_weight_scales import GeFoldWeightScalesPass

    return GeFoldWeightScalesPass


def _hoist() -> type[ModulePass]:
    from wrc.passes.ge_hoist_weight_only import GeHoistWeightOnlyPass

    return GeHoistWeightOnlyPass


def _to_linalg() -> type[ModulePass]:
    from wrc.passes.convert_ge_to_linalg import ConvertGeToLinalgPass

    return ConvertGeToLinalgPass


def _bufferize() -> type[ModulePass]:
    from wrc.passes.ge_bufferize import GeBufferizePass

    return GeBufferizePass


PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "ge-const-to-var": _const_to_var,
    "ge-split-weight-refreshable": _split,
    "ge-add-delta-graph": _add_delta,
    "ge-fold-weight-scales": _fold_scales,
    "ge-hoist-weight-only": _hoist,
    "convert-ge-to-linalg": _to_linalg,
    "ge-bufferize": _bufferize,
}
