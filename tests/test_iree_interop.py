"""wrc's linalg-level (3) and loop-level (4) IR is upstream MLIR: `iree-opt` parses and verifies it.

Needs the optional extra `pip install -e '.[interop]'` (iree-base-compiler, which ships
`iree-opt`, an `mlir-opt` with IREE's dialects); skipped with that hint when it is absent.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import wrc
from wrc import pipeline

IREE_OPT = shutil.which("iree-opt") or shutil.which("iree-opt", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(
    IREE_OPT is None, reason="iree-opt not found: install the interop extra "
                             "(pip install -e '.[interop]', i.e. iree-base-compiler) to run these tests")

rng = np.random.default_rng(0)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def cnn() -> wrc.Graph:
    """Most ge ops: conv (padded, grouped), pools, reductions, reshape, transpose, softmax."""
    g = wrc.Graph("cnn")
    x = g.data("x", (2, 4, 8, 8))
    h = g.relu(g.conv2d(x, g.const("conv1", f32(8, 4, 3, 3)), pads=(1, 1, 1, 1)))
    h = g.conv2d(h, g.const("conv2", f32(8, 2, 3, 3)), strides=(2, 2), groups=4, pads=(0, 0, 1, 1))
    h = g.avg_pool2d(g.max_pool2d(g.sigmoid(h), (2, 2)), (2, 2), strides=(1, 1), pads=(0, 0, 1, 1))
    pooled = g.reduce_mean(h, axes=(2, 3))
    t = g.transpose(g.reshape(pooled, (2, 8, 1)), (0, 2, 1))
    logits = g.add(g.matmul(g.reshape(t, (2, 8)), g.const("fc", f32(8, 5))), g.const("bias", f32(5)))
    g.output(g.softmax(g.tanh(g.sub(logits, g.exp(g.div(logits, g.const("s", np.float32(4.0))))))))
    return g


def mlp() -> wrc.Graph:
    g = wrc.Graph("mlp")
    x = g.data("x", (3, 6))
    g.output(g.mul(g.relu(g.matmul(x, g.const("const_1", f32(6, 4)))), g.const("const_2", f32(4))))
    return g


def levels(graph: wrc.Graph, names: list[str]) -> dict[str, str]:
    module = graph.module.clone()
    pipeline.apply(module, pipeline.conversion_passes(names))
    pipeline.apply(module, pipeline.LOWER_TO_BUFFERS)
    level3 = str(module)
    pipeline.apply(module, pipeline.LOWER_TO_LOOPS)
    return {"level 3 (linalg on memref)": level3, "level 4 (loops)": str(module)}


@pytest.mark.parametrize(("graph", "names"), [(mlp, ["const_1", "const_2"]), (cnn, ["conv1", "fc"])])
def test_iree_opt_parses_and_verifies(graph, names, tmp_path) -> None:
    for level, text in levels(graph(), names).items():
        path = tmp_path / "ir.mlir"
        path.write_text(text)
        done = subprocess.run([IREE_OPT, str(path)], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"iree-opt rejects wrc's {level} IR:\n{done.stderr[:3000]}"
        assert "func.func @var_infer_graph" in done.stdout
        assert "memref.global" in done.stdout
