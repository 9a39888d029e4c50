"""The GE build workflow in Python (docs/spec.md §1):

build_initialize → convert_to_weight_refreshable_graphs → bundle_build_model →
bundle_save_model → build_finalize.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import MemRefType, ModuleOp
from xdsl.utils.exceptions import VerifyException

from wrc import ir_verify, pipeline
from wrc.abi import (
    DELTA_GRAPH,
    INFER_GRAPH,
    INIT_GRAPH,
    UPDATE_GRAPH,
    module_funcs,
    module_globals,
    stored_weight_names,
)
from wrc.bundle_format import write_bundle
from wrc.dialects import ge
from wrc.dtypes import to_numpy_dtype
from wrc.errors import BuildError
from wrc.graph import Graph, inline_value, verify_graph_module
from wrc.ir_read import clone
from wrc.model_buffer import ModelBuffer, c_array

Options = Mapping[str, str]

HOIST_OPTION = "wrc.hoist_weight_only"
"""`build_initialize` option: "true" (default) runs `ge-fold-weight-scales` and
`ge-hoist-weight-only` when building bundles (weight-only work moves out of inference);
"false" keeps the graphs as they are."""

DELTAS_OPTION = "wrc.deltas"
"""`build_initialize` option: comma-separated `NAME=KIND` entries (`w=lora:16,b=dense`, NAME may
be a glob such as `*`): the conversion adds `var_delta_graph` for those weights (issue 16,
`ge-add-delta-graph`), unless `convert_to_weight_refreshable_graphs` is given `deltas=`."""

SUPPORTED_GLOBAL_OPTIONS: frozenset[str] = frozenset({HOIST_OPTION, DELTAS_OPTION})
"""Keys accepted by `build_initialize` (an unknown key is an error, not ignored)."""

_BOOLEAN_OPTIONS = frozenset({HOIST_OPTION})

SUPPORTED_GRAPH_OPTIONS: frozenset[str] = frozenset()
"""Keys accepted per graph by `bundle_build_model`."""

class _Session:
    """Process-wide build state between build_initialize and build_finalize (as in GE)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = False
        self.options: dict[str, str] = {}


_SESSION = _Session()


def _check_options(options: Options | None, supported: frozenset[str], where: str) -> dict[str, str]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise BuildError(f"{where}: options must be a dict[str, str], got {type(options).__name__}")
    for key, value in options.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise BuildError(f"{where}: option {key!r}: keys and values must be str, got {value!r}")
        if key not in supported:
            known = ", ".join(sorted(supported)) or "none yet"
            raise BuildError(f"{where}: unknown option {key!r} (supported: {known})")
        if key in _BOOLEAN_OPTIONS and value not in ("true", "false"):
            raise BuildError(f"{where}: option {key!r} must be \"true\" or \"false\", got {value!r}")
    return dict(options)


def build_initialize(options: Options | None = None) -> None:
    """Start a build span (GE `aclgrphBuildInitialize`); options are `dict[str, str]`."""
    checked = _check_options(options, SUPPORTED_GLOBAL_OPTIONS, "build_initialize")
    with _SESSION.lock:
        if _SESSION.active:
            raise BuildError("build_initialize: a build session is already active; call build_finalize first")
        _SESSION.active, _SESSION.options = True, checked


def build_finalize() -> None:
    """End the build span (GE `aclgrphBuildFinalize`); build APIs fail until the next initialize."""
    with _SESSION.lock:
        if not _SESSION.active:
            raise BuildError("build_finalize: no build session is active (call build_initialize first)")
        _SESSION.active, _SESSION.options = False, {}


class BuildSession:
    """`with wrc.BuildSession(options): ...` = build_initialize ... build_finalize."""

    def __init__(self, options: Options | None = None):
        self.options = options

    def __enter__(self) -> BuildSession:
        build_initialize(self.options)
        return self

    def __exit__(self, *exc: object) -> None:
        build_finalize()

    @staticmethod
    def is_open() -> bool:
        """Whether a build session (`build_initialize` ... `build_finalize`) is open."""
        return _SESSION.active


def _require_session(api: str) -> None:
    if not _SESSION.active:
        raise BuildError(f"{api}: no build session is active; call wrc.build_initialize() first "
                         "(or use `with wrc.BuildSession():`)")


@dataclass(frozen=True)
class WeightRefreshableGraphs:
    """GE's WeightRefreshableGraphs: three graphs sharing the variables `<const>_var`, and the
    delta graph of the adapted weights when deltas were asked for (wrc's addition)."""

    var_init_graph: Graph
    var_update_graph: Graph
    infer_graph: Graph
    var_delta_graph: Graph | None = None

    @property
    def var_infer_graph(self) -> Graph:
        return self.infer_graph


Deltas = Mapping[str, str] | Sequence[str] | str
"""Which weights get a delta and of which kind: {name: kind}, `NAME=KIND` entries, or those
entries comma-separated in one string (kinds: `dense`, `lora:R`, `lora:R:out_in|in_out`)."""


def delta_entries(deltas: Deltas | None, where: str) -> tuple[str, ...]:
    """`deltas` as the `NAME=KIND` entries of `ge-add-delta-graph` (not checked against a graph yet)."""
    if deltas is None:
        return ()
    if isinstance(deltas, str):
        return tuple(e.strip() for e in deltas.split(",") if e.strip())
    if isinstance(deltas, Mapping):
        items = list(deltas.items())
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in items):
            raise BuildError(f"{where}: deltas must map weight names to kinds (str), got {deltas!r}")
        return tuple(f"{k}={v}" for k, v in items)
    if isinstance(deltas, Sequence) and all(isinstance(e, str) for e in deltas):
        return tuple(deltas)
    raise BuildError(f"{where}: deltas must be a dict {{name: kind}}, a list of NAME=KIND or a str, "
                     f"got {type(deltas).__name__}")


def convert_to_weight_refreshable_graphs(graph: Graph, const_names: Sequence[str],
                                         deltas: Deltas | None = None) -> WeightRefreshableGraphs:
    """Make the named constants of `graph` refreshable (GE `aclgrphConvertToWeightRefreshableGraphs`).

    Raises `ConversionError` (nothing modified) for an empty list, an empty, duplicated or
    unknown name. `graph` itself is never changed. `deltas` (default: the session's
    `wrc.deltas` option) adds `var_delta_graph` for those weights (`ge-add-delta-graph`;
    a bad name, kind, rank or shape is a `ConversionError` naming the weight).
    """
    _require_session("convert_to_weight_refreshable_graphs")
    if not isinstance(graph, Graph):
        raise BuildError(f"convert_to_weight_refreshable_graphs: expected a wrc.Graph, got {type(graph).__name__}")
    if isinstance(const_names, str) or not all(isinstance(n, str) for n in const_names):
        raise BuildError("convert_to_weight_refreshable_graphs: const_names must be a list of str "
                         f"(got {const_names!r})")
    with pipeline.paused_gc():  # linear time (docs/performance.md, compile time)
        # Verified once here: the passes keep the IR valid, so the three results are not
        # verified again (bundle_build_model verifies what it is given).
        entries = delta_entries(deltas if deltas is not None else _SESSION.options.get(DELTAS_OPTION),
                                "convert_to_weight_refreshable_graphs")
        verify_graph_module(graph.module)
        module = clone(graph.module)
        pipeline.apply(module, pipeline.conversion_passes(list(const_names), entries))
        variables = [op for op in module.ops if isinstance(op, ge.VariableOp)]
        funcs = module_funcs(module)

        def part(name: str) -> Graph:  # `module` is a scratch copy: its functions are moved
            funcs[name].detach()
            body = [clone(v) for v in variables] + [funcs[name]]
            return Graph._of_verified(ModuleOp(body), graph.weights)

        return WeightRefreshableGraphs(part(INIT_GRAPH), part(UPDATE_GRAPH), part(INFER_GRAPH),
                                       part(DELTA_GRAPH) if entries else None)


def _graph_list(graphs_and_options: Sequence) -> list[Graph]:
    if isinstance(graphs_and_options, Graph) or not isinstance(graphs_and_options, Sequence):
        raise BuildError("bundle_build_model: expected a list of (graph, options) pairs")
    graphs = []
    for i, item in enumerate(graphs_and_options):
        graph, options = item, None
        if isinstance(item, tuple | list) and len(item) == 2:
            graph, options = item
        if not isinstance(graph, Graph):
            raise BuildError(f"bundle_build_model: entry {i} is not a wrc.Graph or a (Graph, options) pair")
        _check_options(options, SUPPORTED_GRAPH_OPTIONS, f"bundle_build_model: graph {graph.name!r}")
        graphs.append(graph)
    if len(graphs) < 2:
        raise BuildError(f"bundle_build_model: a bundle needs at least 2 graphs, got {len(graphs)}")
    names = [g.name for g in graphs]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise BuildError(f"bundle_build_model: several graphs are named {', '.join(map(repr, dups))}")
    return graphs


def _merged_module(graphs: list[Graph]) -> ModuleOp:
    """One module: the graphs' variables merged by name, then every graph's function."""
    variables: dict[str, tuple[ge.VariableOp, str]] = {}
    for g in graphs:
        for op in g.module.ops:
            if not isinstance(op, ge.VariableOp):
                continue
            name = op.sym_name.data
            if name in variables and variables[name][0].type != op.type:
                first, where = variables[name]
                raise BuildError(
                    f"bundle_build_model: variable {name!r} is {first.type} in graph {where!r} "
                    f"but {op.type} in graph {g.name!r}"
                )
            variables.setdefault(name, (op, g.name))
    body = [clone(op) for op, _ in variables.values()] + [clone(g.func) for g in graphs]
    return ModuleOp(body)


def _weights(module: ModuleOp, graphs: list[Graph]) -> dict[str, np.ndarray]:
    """Values of the constant globals that have no inline value, looked up in the graphs."""
    weights: dict[str, np.ndarray] = {}
    constants = [(g, g.constants) for g in graphs]  # one walk per graph, not one per weight
    globals_ = module_globals(module)
    for name in stored_weight_names(module):
        op = globals_[name]
        owners = [g for g, consts in constants if name in consts]
        values = [g.weights[name] if name in g.weights else inline_value(consts[name])
                  for g, consts in constants
                  if name in consts and (name in g.weights or consts[name].value is not None)]
        if not values:
            raise BuildError(f"bundle_build_model: constant {name!r} has no value in the weight table of graph(s) "
                             f"{', '.join(repr(g.name) for g in owners)}")
        for other in values[1:]:
            if other.shape != values[0].shape or other.dtype != values[0].dtype or not np.array_equal(other, values[0]):
                raise BuildError(f"bundle_build_model: constant {name!r} has different values in graphs "
                                 f"{', '.join(repr(g.name) for g in owners)}")
        assert isinstance(op.type, MemRefType)
        expected = (tuple(op.type.get_shape()), to_numpy_dtype(op.type.element_type))
        value = values[0]
        if (value.shape, value.dtype) != expected:
            raise BuildError(f"bundle_build_model: weight {name!r} is {value.dtype}{list(value.shape)} but the graph "
                             f"declares {expected[1]}{list(expected[0])}")
        weights[name] = c_array(value)
    return weights


def bundle_build_model(graphs_and_options: Sequence) -> ModelBuffer:
    """Compile several graphs into one in-memory bundle (GE `aclgrphBundleBuildModel`).

    `graphs_and_options` is a list of `(graph, options)` pairs (or plain graphs); graphs
    share variables by name. Needs at least 2 graphs.
    """
    _require_session("bundle_build_model")
    graphs = _graph_list(graphs_and_options)
    with pipeline.paused_gc():  # linear time (docs/performance.md, compile time)
        module = _merged_module(graphs)
        try:
            ir_verify.verify(module)
        except VerifyException as e:
            raise BuildError(f"bundle_build_model: the merged graphs do not verify: {e}") from None
        hoist = _SESSION.options.get(HOIST_OPTION, "true") == "true"
        pipeline.apply(module, pipeline.BUILD if hoist else pipeline.LOWER_TO_BUFFERS)
        return ModelBuffer(module=module, graphs=tuple(g.name for g in graphs), weights=_weights(module, graphs))


def bundle_save_model(path: str | os.PathLike, model: ModelBuffer) -> None:
    """Write the bundle to `path`, crash-safely (GE `aclgrphBundleSaveModel`)."""
    _require_session("bundle_save_model")
    if not isinstance(model, ModelBuffer):
        raise BuildError(f"bundle_save_model: expected the ModelBuffer of bundle_build_model, got {type(model).__name__}")
    write_bundle(path, model)


def compile_graph(graph: Graph, const_names: Sequence[str] | None = None, init: bool = True,
                  deltas: Deltas | None = None) -> ModelBuffer:
    """The whole build in one call: convert `graph` (making `const_names` refreshable, by
    default `graph.weight_names()`) and build a bundle of the infer and update graphs, plus the
    init graph unless `init=False` (a weight-stripped bundle) and the delta graph of `deltas`
    (see `convert_to_weight_refreshable_graphs`). Opens a build session for the call when none
    is open, else builds with the open session's options."""
    names = graph.weight_names() if const_names is None else list(const_names)
    if not names:
        raise BuildError(f"graph {graph.name!r} has no weights to make refreshable "
                         "(name the constants to make refreshable in const_names)")

    def build() -> ModelBuffer:
        parts = convert_to_weight_refreshable_graphs(graph, names, deltas)
        graphs = [parts.infer_graph, parts.var_update_graph] + ([parts.var_init_graph] if init else [])
        if parts.var_delta_graph is not None:
            graphs.append(parts.var_delta_graph)
        return bundle_build_model(graphs)

    if BuildSession.is_open():
        return build()
    with BuildSession():
        return build()
