"""Hardening, round two (issue 13, docs/SECURITY.md): tampered IR that writes the caller's
arrays, weight names that collide with file-format keywords, weight files changing under a
read, scalar weights, hostile `.npz`/`.npy` headers, non-regular files, hostile header fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import wrc
from wrc import bundle_format as bf
from wrc.bundle_info import describe
from wrc.context import make_context
from wrc.errors import BundleFormatError
from wrc.ir_text import parse_module
from wrc.model_buffer import ModelBuffer

F32 = np.float32
W = np.arange(12, dtype=F32).reshape(4, 3) / 8
B = np.array([1, -2, 3], F32)


def build() -> ModelBuffer:
    """y = relu(x @ w + b) with the refreshable weights w and b."""
    g = wrc.Graph("g")
    x = g.data("x", (2, 4))
    g.output(g.relu(g.add(g.matmul(x, g.const("w", W)), g.const("b", B))))
    with wrc.BuildSession({"wrc.hoist_weight_only": "false"}):
        graphs = wrc.convert_to_weight_refreshable_graphs(g, ["w", "b"])
        return wrc.bundle_build_model([graphs.infer_graph, graphs.var_update_graph, graphs.var_init_graph])


# --------------------------------------------------------------------------- 1: IR writing its arguments

_ZERO = "%z = arith.constant 0.000000e+00 : f32\n"
ARGUMENT_WRITES = {
    "infer fill": ("func.func @var_infer_graph(%0: memref<2x4xf32> {ge.name = \"x\"}) -> memref<2x3xf32> {\n",
                   _ZERO + "linalg.fill ins(%z : f32) outs(%0 : memref<2x4xf32>)\n", "x"),
    "infer store": ("func.func @var_infer_graph(%0: memref<2x4xf32> {ge.name = \"x\"}) -> memref<2x3xf32> {\n",
                    _ZERO + "%i = arith.constant 0 : index\nmemref.store %z, %0[%i, %i] : memref<2x4xf32>\n", "x"),
    "infer copy into a view": (
        "func.func @var_infer_graph(%0: memref<2x4xf32> {ge.name = \"x\"}) -> memref<2x3xf32> {\n",
        "%v = memref.collapse_shape %0 [[0, 1]] : memref<2x4xf32> into memref<8xf32>\n"
        "%a = memref.alloc() : memref<8xf32>\n\"memref.copy\"(%a, %v) : (memref<8xf32>, memref<8xf32>) -> ()\n",
        "x"),
    "infer fill through scf.if": (
        "func.func @var_infer_graph(%0: memref<2x4xf32> {ge.name = \"x\"}) -> memref<2x3xf32> {\n",
        _ZERO + "%t = arith.constant true\n%r = scf.if %t -> (memref<2x4xf32>) {\nscf.yield %0 : memref<2x4xf32>\n"
        "} else {\nscf.yield %0 : memref<2x4xf32>\n}\nlinalg.fill ins(%z : f32) outs(%r : memref<2x4xf32>)\n", "x"),
    "update after the copy": (
        "\"memref.copy\"(%0, %4) : (memref<4x3xf32>, memref<4x3xf32>) -> ()\n",
        _ZERO + "linalg.fill ins(%z : f32) outs(%0 : memref<4x3xf32>)\n", "w_var_data"),
}


def tampered(model: ModelBuffer, anchor: str, insert: str) -> ModelBuffer:
    text = str(model.module)
    lines = [line.strip() + "\n" for line in text.splitlines()]
    at = lines.index(anchor) + 1
    module = parse_module(make_context(), "".join(lines[:at] + [insert] + lines[at:]))
    return ModelBuffer(module, model.graphs, model.weights)


@pytest.mark.parametrize("case", list(ARGUMENT_WRITES))
def test_ir_that_writes_an_argument_is_rejected_at_load(case: str, tmp_path: Path) -> None:
    """Row 1: a tampered bundle whose graph writes into an input (the caller's array, handed
    to generated code without a copy) is a `BundleFormatError` for `load_bundle` and `wrc
    inspect`, on a file and in memory."""
    anchor, insert, name = ARGUMENT_WRITES[case]
    model = build()
    bad = tampered(model, anchor, insert)
    path = tmp_path / "bad.wrcb"
    bf.write_bundle(path, bad)
    message = f"writes its input {name!r}; inputs are read-only"
    for read in (describe, wrc.load_bundle, lambda p: wrc.load_bundle(bf.read_bundle(p))):
        with pytest.raises(BundleFormatError, match=message):
            read(path)
    # The untampered model loads and leaves the caller's arrays alone.
    b = wrc.load_bundle(model)
    b.init()
    x = np.ones((2, 4), F32)
    w = W + 1
    b.update({"w": w})
    b.infer({"x": x})
    assert np.array_equal(x, np.ones((2, 4), F32)) and np.array_equal(w, W + 1)
