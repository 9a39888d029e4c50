"""A GE-compatible porting layer: GE's C/C++ function names, status codes and out-parameters.

For code ported from the CANN Graph Engine (see docs/ge-porting.md). Each call returns a
status code instead of raising: on failure it logs the reason on the `wrc.ge` logger (the
`logging` module) and returns `GRAPH_PARAM_INVALID` (bad arguments: wrong types, malformed
options, unknown or duplicated constant names, wrong input shapes) or `GRAPH_FAILED` (anything
else: no build session, a bundle conflict, an I/O error); no call raises. New code should use the Pythonic API
(`wrc.build_initialize`, ... which raise `wrc.WrcError`).

Out-parameters, modelled two ways, after GE's own two APIs:

* the build calls (`ge_ir_build.h`, C++) take the output object and fill it, as in the C++
  sample: `aclgrphConvertToWeightRefreshableGraphs(graph, names, out)` sets the three graph
  fields of a `WeightRefreshableGraphs()`; `aclgrphBundleBuildModel(graph_and_options, model)`
  sets `model.data` / `model.length` of a `ModelBufferData()`.
* the runtime calls (`acl_mdl.h`) follow pyACL, GE's Python binding: C out-parameters become
  leading return values, the status code comes last: `bundle_id, ret =
  aclmdlBundleLoadFromFile(path)`; `outputs, ret = aclmdlExecute(model_id, inputs)`.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wrc import workflow
from wrc.bundle_format import bundle_size
from wrc.errors import BackendUnavailableError, ConversionError, InputError, ShapeError, WrcError
from wrc.graph import Graph, GraphError
from wrc.model_buffer import ModelBuffer
from wrc.runtime import Bundle, load_bundle

log = logging.getLogger("wrc.ge")

# ge/ge_error_codes.h (graphStatus, uint32)
GRAPH_SUCCESS = 0
GRAPH_FAILED = 0xFFFFFFFF
GRAPH_PARAM_INVALID = 50331649

# acl/acl_base.h (aclError, int)
ACL_SUCCESS = 0
ACL_ERROR_INVALID_PARAM = 100000
ACL_ERROR_INVALID_FILE = 100003
ACL_ERROR_INVALID_MODEL_ID = 100011
ACL_ERROR_PARSE_MODEL = 100013
ACL_ERROR_READ_MODEL_FAILURE = 100014
ACL_ERROR_MODEL_SIZE_INVALID = 100015
ACL_ERROR_MODEL_INPUT_NOT_MATCH = 100017
ACL_ERROR_FEATURE_UNSUPPORTED = 200006
ACL_ERROR_FAILURE = 500001

_PARAM_ERRORS = (ConversionError, InputError, ShapeError, GraphError, TypeError, ValueError)
"""Bad arguments: ValueError too (malformed options, a NUL in a path)."""


@dataclass
class WeightRefreshableGraphs:
    """Out-parameter of `aclgrphConvertToWeightRefreshableGraphs` (GE's struct of the same name)."""

    var_init_graph: Graph | None = None
    var_update_graph: Graph | None = None
    infer_graph: Graph | None = None


@dataclass
class GraphWithOptions:
    """One entry of `aclgrphBundleBuildModel`'s list (GE's `ge::GraphWithOptions`)."""

    graph: Graph
    build_options: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ModelBufferData:
    """Out-parameter of `aclgrphBundleBuildModel` (GE's `ge::ModelBufferData`).

    `data` is the built `wrc.ModelBuffer`; `length` the size in bytes of its file form.
    """

    data: ModelBuffer | None = None
    length: int = 0


def _call(api: str, fn: Callable[[], Any]) -> int:
    """Run `fn`, turning exceptions into a logged GE status code."""
    try:
        fn()
    except _PARAM_ERRORS as e:
        log.error("%s failed (GRAPH_PARAM_INVALID): %s", api, e)
        return GRAPH_PARAM_INVALID
    except (WrcError, OSError) as e:
        log.error("%s failed (GRAPH_FAILED): %s", api, e)
        return GRAPH_FAILED
    except Exception:  # the contract is a status code, never an exception: log the traceback
        log.exception("%s failed (GRAPH_FAILED) unexpectedly", api)
        return GRAPH_FAILED
    return GRAPH_SUCCESS


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise TypeError(message)


# ----------------------------------------------------------------------------- build (ge_ir_build.h)


def aclgrphBuildInitialize(global_options: Mapping[str, str] | None = None) -> int:
    """`graphStatus aclgrphBuildInitialize(std::map<AscendString, AscendString> global_options)`."""
    return _call("aclgrphBuildInitialize", lambda: workflow.build_initialize(global_options or {}))


def aclgrphConvertToWeightRefreshableGraphs(origin_graph: Graph, const_names: Sequence[str],
                                            weight_refreshable_graphs: WeightRefreshableGraphs) -> int:
    """Fill `weight_refreshable_graphs` with the three graphs (left untouched on failure)."""
    def run() -> None:
        _require(isinstance(weight_refreshable_graphs, WeightRefreshableGraphs),
                 "the third argument must be a wrc.ge.WeightRefreshableGraphs() to fill")
        _require(isinstance(origin_graph, Graph), f"origin_graph must be a wrc.Graph, got "
                                                  f"{type(origin_graph).__name__}")
        _require(not isinstance(const_names, str) and all(isinstance(n, str) for n in const_names),
                 f"const_names must be a list of str, got {const_names!r}")
        out = workflow.convert_to_weight_refreshable_graphs(origin_graph, const_names)
        weight_refreshable_graphs.var_init_graph = out.var_init_graph
        weight_refreshable_graphs.var_update_graph = out.var_update_graph
        weight_refreshable_graphs.infer_graph = out.infer_graph
    return _call("aclgrphConvertToWeightRefreshableGraphs", run)


def aclgrphBundleBuildModel(graph_and_options: Sequence[GraphWithOptions], model: ModelBufferData) -> int:
    """Compile the graphs into one bundle; fills `model.data` and `model.length`."""
    def run() -> None:
        _require(isinstance(model, ModelBufferData), "the second argument must be a "
                                                     "wrc.ge.ModelBufferData() to fill")
        pairs = []
        for i, item in enumerate(graph_and_options):
            _require(isinstance(item, GraphWithOptions) and isinstance(item.graph, Graph),
                     f"entry {i} must be a wrc.ge.GraphWithOptions(graph, options) with a built graph "
                     "(did aclgrphConvertToWeightRefreshableGraphs succeed?)")
            pairs.append((item.graph, dict(item.build_options)))
        built = workflow.bundle_build_model(pairs)
        model.data, model.length = built, bundle_size(built)
    return _call("aclgrphBundleBuildModel", run)


def aclgrphBundleSaveModel(output_file: str | os.PathLike[str], model: ModelBufferData) -> int:
    """Write the built bundle to `output_file` (crash-safe)."""
    def run() -> None:
        _require(isinstance(model, ModelBufferData) and model.data is not None,
                 "model must be the ModelBufferData filled by a successful aclgrphBundleBuildModel")
        workflow.bundle_save_model(output_file, model.data)
    return _call("aclgrphBundleSaveModel", run)


def aclgrphBuildFinalize() -> int:
    """`graphStatus aclgrphBuildFinalize()`."""
    return _call("aclgrphBuildFinalize", workflow.build_finalize)


# ----------------------------------------------------------------------------- runtime (acl_mdl.h, pyACL style)

_lock = threading.Lock()
_ids = itertools.count(1)
_bundles: dict[int, Bundle] = {}
_models: dict[int, tuple[int, str]] = {}  # model id → (bundle id, graph name)


def _acl(api: str, fn: Callable[[], Any], default: Any, failure: int) -> tuple[Any, int]:
    """(result, ACL_SUCCESS), or (default, code) with the reason logged."""
    try:
        return fn(), ACL_SUCCESS
    except _AclError as e:
        log.error("%s failed (%d): %s", api, e.code, e)
        return default, e.code
    except BackendUnavailableError as e:  # e.g. backend="cupy" without CuPy or a GPU
        log.error("%s failed (%d): %s", api, ACL_ERROR_FEATURE_UNSUPPORTED, e)
        return default, ACL_ERROR_FEATURE_UNSUPPORTED
    except (TypeError, ValueError) as e:  # arguments of the wrong kind (an unknown backend too)
        log.error("%s failed (%d): %s", api, ACL_ERROR_INVALID_PARAM, e)
        return default, ACL_ERROR_INVALID_PARAM
    except (WrcError, OSError) as e:
        log.error("%s failed (%d): %s", api, failure, e)
        return default, failure
    except Exception:  # a status code, never an exception: log the traceback
        log.exception("%s failed (%d) unexpectedly", api, ACL_ERROR_FAILURE)
        return default, ACL_ERROR_FAILURE


class _AclError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _load(source: str | os.PathLike[str] | bytes, backend: str) -> int:
    bundle = load_bundle(source, backend=backend)
    with _lock:
        bundle_id = next(_ids)
        _bundles[bundle_id] = bundle
        for name in bundle.graphs:
            _models[next(_ids)] = (bundle_id, name)
    return bundle_id


def _bundle(bundle_id: int) -> Bundle:
    bundle = _bundles.get(bundle_id)
    if bundle is None:
        raise _AclError(ACL_ERROR_INVALID_PARAM, f"no loaded bundle has id {bundle_id!r}")
    return bundle


def aclmdlBundleLoadFromFile(model_path: str | os.PathLike[str], backend: str = "numpy") -> tuple[int, int]:
    """`bundle_id, ret = aclmdlBundleLoadFromFile(path)`: load a bundle file (bundle_id 0 on failure)."""
    def run() -> int:
        if not isinstance(model_path, str | bytes | os.PathLike):
            raise _AclError(ACL_ERROR_INVALID_PARAM, f"model_path must be a path, got {type(model_path).__name__}")
        path = os.fsdecode(model_path)  # bytes are a path here (C's const char*), never file content
        if not os.path.isfile(path):
            raise _AclError(ACL_ERROR_INVALID_FILE, f"{path}: no such file")
        return _load(path, backend)
    return _acl("aclmdlBundleLoadFromFile", run, 0, ACL_ERROR_PARSE_MODEL)


def aclmdlBundleLoadFromMem(model: bytes, model_size: int | None = None,
                            backend: str = "numpy") -> tuple[int, int]:
    """`bundle_id, ret = aclmdlBundleLoadFromMem(data, size)`: load a bundle from its bytes."""
    def run() -> int:
        if not isinstance(model, bytes | bytearray | memoryview):
            raise _AclError(ACL_ERROR_INVALID_PARAM, f"model must be bytes, got {type(model).__name__}")
        if model_size is not None and (type(model_size) is not int or not 0 < model_size <= memoryview(model).nbytes):
            raise _AclError(ACL_ERROR_MODEL_SIZE_INVALID, f"model_size {model_size!r} is not the size of "
                                                          f"the {memoryview(model).nbytes} bytes given")
        data = bytes(model if model_size is None else memoryview(model).cast("B")[:model_size])
        return _load(data, backend)
    return _acl("aclmdlBundleLoadFromMem", run, 0, ACL_ERROR_PARSE_MODEL)


def aclmdlBundleGetModelNum(bundle_id: int) -> tuple[int, int]:
    """`model_num, ret = aclmdlBundleGetModelNum(bundle_id)`: how many graphs the bundle has."""
    return _acl("aclmdlBundleGetModelNum", lambda: len(_bundle(bundle_id).graphs), 0,
                ACL_ERROR_INVALID_PARAM)


def aclmdlBundleGetModelId(bundle_id: int, index: int) -> tuple[int, int]:
    """`model_id, ret = aclmdlBundleGetModelId(bundle_id, index)`; index in build order."""
    def run() -> int:
        graphs = _bundle(bundle_id).graphs
        if not isinstance(index, int) or not 0 <= index < len(graphs):
            raise _AclError(ACL_ERROR_INVALID_PARAM, f"index {index!r} out of range: bundle {bundle_id} "
                                                     f"has {len(graphs)} models ({', '.join(graphs)})")
        with _lock:
            return next(m for m, (b, g) in _models.items() if b == bundle_id and g == graphs[index])
    return _acl("aclmdlBundleGetModelId", run, 0, ACL_ERROR_INVALID_PARAM)


def aclmdlGetModelName(model_id: int) -> tuple[str, int]:
    """`name, ret`: the graph a model id runs (wrc's addition: GE reads it from the model desc)."""
    def run() -> str:
        if model_id not in _models:
            raise _AclError(ACL_ERROR_INVALID_MODEL_ID, f"no loaded model has id {model_id!r}")
        return _models[model_id][1]
    return _acl("aclmdlGetModelName", run, "", ACL_ERROR_INVALID_MODEL_ID)


def aclmdlExecute(model_id: int, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], int]:
    """`outputs, ret = aclmdlExecute(model_id, inputs)`: run one graph of a loaded bundle.

    `inputs` plays GE's input dataset (arrays in input order, or a dict by input name); the
    output dataset is returned. For the update graph an empty array leaves that weight as it is.
    """
    def run() -> list[np.ndarray]:
        with _lock:  # one look at both tables: an unload racing this call unloads the model id too
            bundle_id, graph = _models.get(model_id, (None, ""))
            bundle = _bundles.get(bundle_id)  # type: ignore[arg-type]
        if bundle is None:
            raise _AclError(ACL_ERROR_INVALID_MODEL_ID, f"no loaded model has id {model_id!r}")
        try:
            return bundle.run(graph, inputs)
        except InputError as e:
            raise _AclError(ACL_ERROR_MODEL_INPUT_NOT_MATCH, str(e)) from None
    return _acl("aclmdlExecute", run, [], ACL_ERROR_FAILURE)


def aclmdlBundleUnload(bundle_id: int) -> int:
    """`ret = aclmdlBundleUnload(bundle_id)`: forget the bundle and its model ids."""
    def run() -> None:
        with _lock:
            _bundle(bundle_id)
            del _bundles[bundle_id]
            for m in [m for m, (b, _) in _models.items() if b == bundle_id]:
                del _models[m]
    return _acl("aclmdlBundleUnload", run, None, ACL_ERROR_INVALID_PARAM)[1]
