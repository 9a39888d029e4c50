"""The NumPy JIT's per-signature memos (access analysis, GEMM planning) give exactly what
the unmemoized code gives, on models that repeat ops (a chain, a small ResNet and BERT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.dialects.linalg import ops as linalg

import wrc
from tests.test_ir_verify import chain
from wrc.backends.numpy_jit import access, compile_functions, gemm
from wrc.onnx import import_onnx

MODELS = Path(__file__).parent / "models"
SHAPES = {"resnet": {"x": (1, 3, 16, 16)}, "bert": {"input_ids": (1, 8)}}


class _Forgetful(dict):
    """A memo that keeps nothing: every lookup computes afresh."""

    def __setitem__(self, key, value) -> None:
        pass


@pytest.fixture(scope="module", params=["chain", "resnet", "bert"])
def module(request) -> ModuleOp:
    if request.param == "chain":
        g = chain(12)
    else:
        g = import_onnx(onnx.load(str(MODELS / f"{request.param}.onnx")), SHAPES[request.param])
    return wrc.compile_graph(g).module


def sources(module: ModuleOp) -> list[str]:
    return [src.text() for _, src in compile_functions(module)]


def test_memoized_analysis_equals_a_fresh_one(module, monkeypatch):
    generics = [op for op in module.walk() if isinstance(op, linalg.GenericOp) and op.library_call is None]
    memo: dict = {}
    monkeypatch.setattr(access, "_LOOPS", memo)
    memoized = [access.analyze(op) for op in generics]
    assert len(memo) < len(generics)  # ops share signatures: the memo is hit
    monkeypatch.setattr(access, "_LOOPS", _Forgetful())
    fresh = [access.analyze(op) for op in generics]
    assert memoized == fresh
    # each analysis holds its own op's values, not those of the op that filled the memo
    assert all(a.value is v for g, op in zip(memoized, generics, strict=True)
               for a, v in zip(g.accesses, [*op.inputs, *op.outputs], strict=True))


def test_generated_source_is_the_same_without_the_memos(module, monkeypatch):
    memoized = sources(module)
    monkeypatch.setattr(access, "_LOOPS", _Forgetful())
    monkeypatch.setattr(gemm, "_plan_gemm", gemm._plan_gemm.__wrapped__)
    assert sources(module) == memoized


def test_memoized_chain_runs_as_numpy_computes_it():
    g = chain(12)
    weights = dict(g.weights)
    b = wrc.load_bundle(wrc.compile_graph(g))
    b.init()
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    h = x
    for i in range(12):
        h = np.maximum(h @ weights[f"w{i}"] + weights[f"b{i}"], 0)
    np.testing.assert_allclose(b.infer({"x": x})[0], h, rtol=1e-5, atol=1e-5)
