"""An ONNX CNN in, its weights refreshed from a safetensors file: the path from an exported
model to a served, updated bundle.

    python examples/onnx_cnn.py [--out DIR]

Builds a small Conv-BatchNorm-ReLU-Pool-Gemm network with onnx's helper API (as an exporter
would write it), imports it with `wrc.onnx.import_onnx`, makes every initializer refreshable,
saves the bundle, then serves it: infer, write new weights to a .safetensors file, update
from that file, infer again. Every result is checked against `onnx.reference`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from safetensors.numpy import save_file

import wrc
import wrc.onnx

rng = np.random.default_rng(0)


def initializers(scale: float = 1.0) -> dict[str, np.ndarray]:
    def r(*shape: int, s: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * s * scale).astype(np.float32)

    return {"conv.weight": r(8, 3, 3, 3), "conv.bias": r(8), "bn.scale": 1 + r(8, s=0.1),
            "bn.bias": r(8), "bn.mean": r(8, s=0.1), "bn.var": 1 + np.abs(r(8, s=0.1)),
            "fc.weight": r(10, 8), "fc.bias": r(10)}


def cnn(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["b"]),
        helper.make_node("Relu", ["b"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="folder for the files (default: a temporary folder)")
    out = parser.parse_args().out or Path(tempfile.mkdtemp(prefix="wrc-onnx-cnn-"))
    out.mkdir(parents=True, exist_ok=True)

    w = initializers()
    model = cnn(w)
    onnx.save(model, out / "cnn.onnx")
    # The batch dimension is symbolic in the file; compiling needs it pinned.
    graph = wrc.onnx.import_onnx(out / "cnn.onnx", input_shapes={"x": (4, 3, 16, 16)})
    names = wrc.onnx.weight_names(graph)
    print(f"imported cnn.onnx: inputs {graph.inputs}, {len(names)} initializers")
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(graph, names)
        bundle_model = wrc.bundle_build_model([graphs.infer_graph, graphs.var_init_graph, graphs.var_update_graph])
        wrc.bundle_save_model(out / "cnn.wrcb", bundle_model)
    print(f"saved cnn.wrcb with {len(names)} refreshable weights: {', '.join(names)}")

    bundle = wrc.load_bundle(out / "cnn.wrcb")
    bundle.init()
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    (got,) = bundle.infer({"x": x})
    (want,) = ReferenceEvaluator(model).run(None, {"x": x})
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4), "infer != onnx.reference"
    print(f"infer matches onnx.reference (max |diff| {np.abs(got - want).max():.1e})")

    w2 = initializers(scale=1.5)
    save_file(w2, str(out / "retrained.safetensors"))          # e.g. the output of a training job
    bundle.update_from_file(out / "retrained.safetensors")     # checked by name/shape/dtype, then copied
    (got,) = bundle.infer({"x": x})
    (want,) = ReferenceEvaluator(cnn(w2)).run(None, {"x": x})
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4), "infer after update != onnx.reference"
    print("after update_from_file(retrained.safetensors): matches onnx.reference with the new weights")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
