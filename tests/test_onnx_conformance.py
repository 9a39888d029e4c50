"""Conformance against ONNX's own node tests (the cases in `onnx.backend.test.case.node`).

Each case runs the whole pipeline: its inputs after the first become initializers (so weights;
a one-input case's input itself becomes the weight), then import, convert with every weight
refreshable, bundle build, save, load, init, infer (compared with the case's expected outputs),
update with new random values, infer (compared with `onnx.reference` on the updated model).

The cases are generated once into a cache folder (`.cache/onnx-node-tests/<onnx version>/`,
or $WRC_ONNX_TEST_CACHE), in the layout of `backend-test-tools generate-data` (`model.onnx` +
`test_data_set_0/input_*.pb, output_*.pb`); this onnx version's `generate-data` writes only the
model cases, so the node cases are collected in-process. Regenerate the table with

    .venv/bin/python tests/test_onnx_conformance.py      # writes docs/onnx-conformance.md
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import wrc
from wrc.onnx import OnnxImportError, compile_graph, import_onnx, weight_names

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("WRC_ONNX_TEST_CACHE", ROOT / ".cache" / "onnx-node-tests")) / onnx.__version__

OPS = [
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Neg", "Abs", "Erf", "Tanh", "Sigmoid",
    "Relu", "LeakyRelu", "Clip", "HardSigmoid", "Gelu", "Softmax", "LogSoftmax", "MatMul", "Gemm",
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "BatchNormalization", "LayerNormalization", "Reshape", "Flatten", "Transpose", "Concat", "Split",
    "Slice", "Gather", "Squeeze", "Unsqueeze", "Expand", "ReduceMean", "ReduceSum", "ReduceMax",
    "Min", "Max", "Where", "Cast", "Identity", "Sum", "Mean", "Dropout", "LRN", "PRelu", "Pad",
    "ConstantOfShape",
    "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor", "Not", "IsNaN", "IsInf",
    "Sign", "Mod",
]
"""The curated operators (issue 3's list, then issue 11's)."""
OPS += [
    "Reciprocal", "HardSwish", "Softplus", "Elu", "Selu", "Mish", "Celu", "ThresholdedRelu", "Softsign",
    "Resize", "InstanceNormalization", "GroupNormalization", "CumSum", "Trilu", "Einsum", "GatherElements",
    "GatherND", "ScatterND", "ScatterElements", "ArgMax", "ArgMin", "RNN", "GRU", "LSTM",
]
"""Issue 11's operators composed of ge ops (wrc/onnx.py)."""
OPS += ["Loop", "Scan", "TopK"]
"""Control flow unrolled at import, and TopK (wrc/onnx.py)."""

INTERP_MAX_ELEMENTS = 400
"""The interpreter runs the cases whose inputs and outputs are this small (it is ~50 µs/op)."""


def generate(cache: Path = CACHE) -> Path:
    """Write the node cases of `OPS` (not the `_expanded` function bodies) once into `cache`
    (again when `OPS` changed: `.complete` lists the operators written)."""
    done = cache / ".complete"
    if done.exists() and done.read_text().split() == sorted(OPS):
        return cache
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    for case in cases:
        if case.model is None or "_expanded" in case.name or case.model.graph.node[0].op_type not in OPS:
            continue
        out = cache / case.name
        (out / "test_data_set_0").mkdir(parents=True, exist_ok=True)
        (out / "model.onnx").write_bytes(case.model.SerializeToString())
        inputs, outputs = case.data_sets[0]
        for kind, values, infos in (("input", inputs, case.model.graph.input), ("output", outputs, case.model.graph.output)):
            for j, (v, info) in enumerate(zip(values, infos)):
                if not info.type.HasField("tensor_type"):  # sequences, optionals: no tensor data
                    continue
                proto = v if isinstance(v, onnx.TensorProto) else numpy_helper.from_array(np.asarray(v), info.name)
                (out / "test_data_set_0" / f"{kind}_{j}.pb").write_bytes(proto.SerializeToString())
    done.write_text("\n".join(sorted(OPS)) + "\n")
    return cache


def cases_of(op: str, cache: Path = CACHE) -> list[Path]:
    return sorted(d for d in cache.iterdir() if d.is_dir() and
                  onnx.load(str(d / "model.onnx"), load_external_data=False).graph.node[0].op_type == op)


def _read(path: Path) -> np.ndarray:
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def _weights_from_inputs(model: onnx.ModelProto, inputs: list[np.ndarray], first: int) -> tuple[onnx.ModelProto, dict]:
    model = copy.deepcopy(model)
    for info, value in zip(list(model.graph.input)[first:], inputs[first:]):
        model.graph.initializer.append(numpy_helper.from_array(value, info.name))
    kept = list(model.graph.input)[:first]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    return model, {i.name: v for i, v in zip(kept, inputs)}


@dataclass
class Result:
    case: str
    status: str  # pass | unsupported | fail
    detail: str = ""


def _close(got: list[np.ndarray], want: list[np.ndarray], what: str) -> None:
    if len(got) != len(want):
        raise AssertionError(f"{what}: {len(got)} outputs, expected {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        w = np.asarray(w)
        if g.shape != w.shape or g.dtype != w.dtype:
            raise AssertionError(f"{what} output {i}: {g.dtype}{list(g.shape)}, expected {w.dtype}{list(w.shape)}")
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=f"{what} output {i}")


def run_case(case_dir: Path, backends: tuple[str, ...] = ("numpy", "interp"), interp_limit: int | None = INTERP_MAX_ELEMENTS,
             seed: int = 0) -> Result:
    """Drive the whole pipeline on one node test case; never raises."""
    from onnx.reference import ReferenceEvaluator

    name = case_dir.name
    if name in NOT_COMPARED:
        return Result(name, "unsupported", f"not compared: {NOT_COMPARED[name]}")
    model = onnx.load(str(case_dir / "model.onnx"))
    n_in = len(model.graph.input)
    if any(not v.type.HasField("tensor_type") for v in [*model.graph.input, *model.graph.output]):
        return Result(name, "unsupported", "sequence or optional inputs/outputs (wrc takes tensors only)")
    inputs = [_read(case_dir / "test_data_set_0" / f"input_{j}.pb") for j in range(n_in)]
    expected = [_read(p) for p in sorted((case_dir / "test_data_set_0").glob("output_*.pb"), key=lambda p: int(p.stem[7:]))]
    original = model
    try:
        # Inputs after the first become initializers; when none of them ends up a weight (e.g.
        # they are axes, read at import time), or there is just one input, all inputs do.
        for first in (1, 0):
            model, feeds = _weights_from_inputs(original, inputs, first)
            graph = import_onnx(model)
            # the weights; else the initializers named explicitly (float scalars, integers)
            inits = {i.name for i in model.graph.initializer}
            names = weight_names(graph) or [n for n in graph.constants if n in inits]
            if names:
                break
        with wrc.BuildSession(), tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.wrcb"
            wrc.bundle_save_model(path, compile_graph(graph, names))
            data = path.read_bytes()
    except (OnnxImportError, wrc.BuildError, wrc.LoweringError, wrc.ShapeError, wrc.GraphError) as e:
        return Result(name, "unsupported", f"{type(e).__name__}: {str(e).splitlines()[-1].strip()[:160]}")
    except Exception as e:  # noqa: BLE001 - the table records it
        return Result(name, "fail", f"{type(e).__name__}: {str(e)[:160]}")
    rng = np.random.default_rng(seed)
    new = {n: rng.standard_normal(graph.weight(n).shape).astype(graph.weight(n).dtype)
           for n in names if graph.weight(n).dtype.kind == "f"}
    updated = copy.deepcopy(model)
    for init in updated.graph.initializer:
        if init.name in new:
            init.CopyFrom(numpy_helper.from_array(new[init.name], init.name))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            after = ReferenceEvaluator(updated).run(None, feeds)
    except Exception as e:  # noqa: BLE001
        return Result(name, "fail", f"onnx.reference failed on the updated model: {e}")
    size = sum(np.size(v) for v in [*inputs, *expected])
    ran = []
    for backend in backends:
        if backend == "interp" and interp_limit is not None and size > interp_limit:
            continue
        try:
            b = wrc.load_bundle(data, backend=backend)
            b.init()
            _close(b.infer(feeds), expected, f"{backend} before update")
            b.update(new)
            _close(b.infer(feeds), after, f"{backend} after update")
        except wrc.LoweringError as e:
            return Result(name, "unsupported", f"{backend}: {str(e)[:160]}")
        except Exception as e:  # noqa: BLE001
            return Result(name, "fail", f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}")
        ran.append(backend)
    return Result(name, "pass", "+".join(ran))


# ---------------------------------------------------------------- the suite

UNSUPPORTED_OPS: dict[str, str] = {
    "ConstantOfShape": "only folded at import time: its shape input must be a constant",
    **{op: "its node tests predate opset 13; tests/test_bool_ops.py checks it against onnxruntime"
       for op in ("And", "Or", "Xor", "Not")},
}
"""Curated operators without a passing case (docs/onnx-conformance.md lists why per case)."""
UNSUPPORTED_OPS["Trilu"] = ("every case is an int64 tensor, folded at import (nothing to make a weight); "
                            "tests/test_onnx_ops_extra.py covers it")

UNSUPPORTED_OPS["Loop"] = ("its node tests take the trip count as a run-time input or carry sequences; "
                           "tests/test_onnx_control_flow.py covers constant trip counts")

NOT_COMPARED = {
    f"test_resize_downsample_scales_{mode}_align_corners": (
        "expected output follows onnx.reference, which divides by the fractional output length scale * input "
        "length; the spec (`length_resized`) and onnxruntime use the integer one, as wrc does "
        "(tests/test_onnx_ops_extra.py checks it against onnxruntime)")
    for mode in ("linear", "cubic")
}
"""Cases whose expected outputs contradict the operator's spec: reported, not run."""


@pytest.fixture(scope="session")
def node_cases() -> Path:
    return generate()


@pytest.mark.parametrize("op", OPS)
def test_node_conformance(node_cases, op):
    """No case may fail (wrong results or crashes); unsupported forms must be reported as such
    (UnsupportedOpError / OnnxImportError / LoweringError), and every supported op passes some."""
    results = [run_case(case) for case in cases_of(op, node_cases)]
    failures = [f"{r.case}: {r.detail}" for r in results if r.status == "fail"]
    assert not failures, "\n".join(failures)
    if op not in UNSUPPORTED_OPS:
        assert any(r.status == "pass" for r in results), [(r.case, r.detail) for r in results]


# ---------------------------------------------------------------- the table


def write_table(path: Path = ROOT / "docs" / "onnx-conformance.md") -> None:
    cache = generate()
    rows, details = [], []
    totals = {"pass": 0, "unsupported": 0, "fail": 0}
    start = time.monotonic()
    for op in OPS:
        results = [run_case(c, interp_limit=None) for c in cases_of(op, cache)]
        count = {s: sum(r.status == s for r in results) for s in totals}
        for s in totals:
            totals[s] += count[s]
        rows.append(f"| {op} | {len(results)} | {count['pass']} | {count['unsupported']} | {count['fail']} |")
        details += [f"| {r.case} | {r.status} | {r.detail.replace('|', '/')} |" for r in results if r.status != "pass"]
        print(f"{op}: {count}", file=sys.stderr)
    text = f"""# ONNX node-test conformance

Generated by `.venv/bin/python tests/test_onnx_conformance.py` (onnx {onnx.__version__}, onnxruntime not
involved): every node test case of `onnx.backend.test.case.node` for the operators below
(`_expanded` function-body variants left out) through the whole pipeline — inputs after the
first turned into weights, import, conversion with every weight refreshable, bundle build, save,
load, init, infer (vs the case's expected outputs), update with new random weights, infer (vs
`onnx.reference` on the updated model) — on **both backends** (numpy and interp).
Tolerance: rtol 1e-4, atol 1e-5. The test suite runs the same cases (the interpreter only on
the small ones) in `tests/test_onnx_conformance.py`. Took {time.monotonic() - start:.0f} s.

Totals: {totals['pass']} pass, {totals['unsupported']} unsupported, {totals['fail']} fail.

Operators without a passing case: """ + "; ".join(f"{op} ({why})" for op, why in UNSUPPORTED_OPS.items()) + """.
The other unsupported cases are forms wrc does not take (reasons per case below): unsigned,
bfloat16, float8/4-bit and string element types; ops producing empty tensors; pooling with
dilations or 3-D inputs; training-mode BatchNormalization/Dropout; negative Slice steps;
sequences and optionals; Loops whose trip count is a run-time input; cases whose inputs are all
integers or bools read at import time (nothing left to make a weight). A case
without weights by `weight_names`' rule (its initializers are float scalars or integers) names
them explicitly.

| op | cases | pass | unsupported | fail |
|---|---|---|---|---|
""" + "\n".join(rows) + """

## Cases not passing, and why

| case | status | reason |
|---|---|---|
""" + "\n".join(details) + "\n"
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    write_table()
