"""wrc: a weight-refreshable compiler — compile a graph once, replace its weights at run time.

The workflow of the CANN Graph Engine, in Python on xDSL (see README.md and docs/spec.md, the product contract):

    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(graph, ["const_1", "const_2"])
        model = wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_init_graph, {}),
                                        (graphs.var_update_graph, {})])
        wrc.bundle_save_model("model.wrcb", model)
    bundle = wrc.load_bundle("model.wrcb")
    bundle.init(); y = bundle.infer({"x": x}); bundle.update({"const_1": w1})
"""

from wrc.errors import (
    BuildError,
    BundleFormatError,
    ConversionError,
    InputError,
    LoweringError,
    RuntimeStateError,
    ShapeError,
    UnrunnableBundleError,
    WrcError,
)
from wrc.graph import Graph, GraphError, Tensor
from wrc.model_buffer import ModelBuffer
from wrc.runtime import Bundle, VariableInfo, load_bundle
from wrc.workflow import (
    BuildSession,
    WeightRefreshableGraphs,
    build_finalize,
    build_initialize,
    bundle_build_model,
    bundle_save_model,
    compile_graph,
    convert_to_weight_refreshable_graphs,
)

__version__ = "0.1.0"

__all__ = [
    "BuildError", "BuildSession", "Bundle", "BundleFormatError", "ConversionError", "Graph",
    "GraphError", "InputError", "LoweringError", "ModelBuffer", "RuntimeStateError", "ShapeError",
    "Tensor", "UnrunnableBundleError", "VariableInfo", "WeightRefreshableGraphs", "WrcError", "build_finalize",
    "build_initialize", "bundle_build_model", "bundle_save_model", "compile_graph",
    "convert_to_weight_refreshable_graphs", "load_bundle",
]


def __getattr__(name: str):
    # `wrc.onnx` imports the onnx package (slow): load it on first use, so `import wrc` stays light.
    if name == "onnx":
        import importlib

        return importlib.import_module("wrc.onnx")
    raise AttributeError(f"module 'wrc' has no attribute {name!r}")
