"""The checked-in real models (tests/models/, made by tests/models/make_models.py from PyTorch
modules): each compiles with all its initializers as refreshable weights and matches
onnxruntime within 1e-4 before and after an update with new random weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from test_onnx import check_model

from wrc.onnx import weight_names

MODELS = Path(__file__).parent / "models"
RNG = np.random.default_rng(11)

CASES = {
    "mlp": ({"x": RNG.standard_normal((2, 16)).astype(np.float32)}, ("numpy", "interp")),
    "resnet": ({"x": RNG.standard_normal((1, 3, 16, 16)).astype(np.float32)}, ("numpy",)),
    "bert": ({"input_ids": RNG.integers(0, 64, (1, 8))}, ("numpy",)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_model_matches_onnxruntime_before_and_after_update(name):
    feeds, backends = CASES[name]
    model = onnx.load(str(MODELS / f"{name}.onnx"))
    graph = check_model(model, feeds, backends=backends, rng=np.random.default_rng(5))
    # the weights are the float initializers (of more than one element), under their ONNX names
    floats = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and np.prod(i.dims) > 1}
    assert set(weight_names(graph)) == floats and floats


def test_bert_exports_what_the_importer_must_fold():
    ops = {n.op_type for n in onnx.load(str(MODELS / "bert.onnx")).graph.node}
    assert {"Shape", "ConstantOfShape", "Equal", "Where", "Gather", "LayerNormalization", "Erf"} <= ops
