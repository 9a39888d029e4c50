"""Conformance against ONNX's own node tests (the cases in `onnx.backend.test.case.node`).

Each case runs the whole pipeline: its inputs after the first become initializers (so weights;
a one-input case's input itself becomes the weight), then import, convert with every weight
refreshable, bundle build, save, load, init, infer (compared with the case's expected outputs),
update with new random values, infer (compared with `onnx.reference` on the updated model).

The cases are generated once into a cache folder (`.cache/onnx-node-tests/<onnx version>/`,
or $WRC_ONNX_TEST_CACHE), in the layout of `backend-test-tools generate-data` (`model.onnx` +
`test_data_set_0/input_*.pb, output_*.pb`); this onnx version's `generate-data` writes only the
model cases, so the node cases are collected in-process.

docs/onnx-conformance.md is pinned: every case it does not list as unsupported must pass, every
case it lists must still be unsupported (the importer's refusal: `UnsupportedOpError`, an
unsupported element type or opset; a shape, graph or lowering error, at import or after, is a
failure), and its per-operator counts and totals must match. After
changing an operator (or the onnx version), regenerate it with

    .venv/bin/python tests/test_onnx_conformance.py      # writes docs/onnx-conformance.md

and review its diff.
"""

from __future__ import annotations

import copy
import os
import re
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
from wrc.errors import UnsupportedDtypeError
from wrc.onnx import OnnxImportError, import_onnx, weight_names
from wrc.workflow import compile_graph

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "onnx-conformance.md"
REGENERATE = "regenerate docs/onnx-conformance.md with `.venv/bin/python tests/test_onnx_conformance.py` and review its diff"
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
    # Only the importer's own refusals mean "unsupported"; an error after import (shape
    # inference, conversion, lowering, saving, loading, running) is a failure.
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
    except OnnxImportError as e:
        # The importer wraps an error raised inside an operator's handler: a refused element
        # type is unsupported, a shape, graph or lowering error there is a failure.
        inner = e.__context__
        if isinstance(inner, wrc.WrcError) and not isinstance(inner, OnnxImportError | UnsupportedDtypeError):
            return Result(name, "fail", f"import: {type(inner).__name__}: {str(e).splitlines()[-1].strip()[:160]}")
        return Result(name, "unsupported", f"{type(e).__name__}: {str(e).splitlines()[-1].strip()[:160]}")
    except Exception as e:  # noqa: BLE001 - the table records it
        return Result(name, "fail", f"import: {type(e).__name__}: {str(e)[:160]}")
    if not names:
        return Result(name, "unsupported", f"no weights: graph {graph.name!r} has no initializer to make refreshable, and a bundle needs one")
    try:
        with wrc.BuildSession(), tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.wrcb"
            wrc.bundle_save_model(path, compile_graph(graph, names))
            data = path.read_bytes()
    except Exception as e:  # noqa: BLE001 - the table records it
        return Result(name, "fail", f"build: {type(e).__name__}: {str(e).strip().splitlines()[0][:160]}")
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
        except Exception as e:  # noqa: BLE001 - a built bundle must run: no "unsupported" here
            return Result(name, "fail", f"{backend}: {type(e).__name__}: {str(e).strip().splitlines()[0][:200]}")
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


@dataclass
class Documented:
    """What docs/onnx-conformance.md states: counts per operator, the status of each case
    that does not pass, and the totals line."""
    counts: dict[str, dict[str, int]]  # op -> {"cases", "pass", "unsupported", "fail"}
    not_passing: dict[str, str]  # case -> status
    totals: dict[str, int]


def read_documented(path: Path = DOC) -> Documented:
    text = path.read_text()
    counts, not_passing = {}, {}
    for op, *numbers in re.findall(r"^\| (\w+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", text, re.M):
        counts[op] = dict(zip(("cases", "pass", "unsupported", "fail"), map(int, numbers)))
    for case, status in re.findall(r"^\| (test_\w+) \| (\w+) \|", text, re.M):
        not_passing[case] = status
    found = re.search(r"^Totals: (\d+) pass, (\d+) unsupported, (\d+) fail\.$", text, re.M)
    assert found, f"docs/onnx-conformance.md has no totals line; {REGENERATE}"
    totals = dict(zip(("pass", "unsupported", "fail"), map(int, found.groups())))
    return Documented(counts, not_passing, totals)


@pytest.fixture(scope="session")
def node_cases() -> Path:
    return generate()


@pytest.fixture(scope="session")
def documented() -> Documented:
    return read_documented()


def test_documented_totals(documented):
    """The doc covers exactly `OPS`, its totals are the sums of its rows and of its per-case
    list, nothing fails, and every operator not in `UNSUPPORTED_OPS` passes some case."""
    assert list(documented.counts) == OPS, f"the doc's operators are not OPS; {REGENERATE}"
    for status, total in documented.totals.items():
        rows = sum(c[status] for c in documented.counts.values())
        assert rows == total, f"the doc's {status} total is {total}, its rows add up to {rows}; {REGENERATE}"
    for op, c in documented.counts.items():
        assert c["pass"] + c["unsupported"] + c["fail"] == c["cases"], f"{op}: {c}; {REGENERATE}"
    listed = list(documented.not_passing.values())
    assert listed.count("unsupported") == documented.totals["unsupported"], \
        f"the doc lists {listed.count('unsupported')} unsupported cases, its total says {documented.totals['unsupported']}"
    assert documented.totals["fail"] == 0 and "fail" not in listed, "the doc records failing cases"
    without_pass = [op for op, c in documented.counts.items() if not c["pass"]]
    assert without_pass == list(UNSUPPORTED_OPS), f"operators without a passing case: {without_pass}; {REGENERATE}"


@pytest.mark.parametrize("op", OPS)
def test_node_conformance(node_cases, documented, op):
    """Every case has the status the doc gives it (pass unless listed as unsupported), and the
    operator has the documented number of cases: a regression, a newly passing case or a new
    case all fail here until the doc is regenerated."""
    results = [run_case(case) for case in cases_of(op, node_cases)]
    changed = [f"{r.case}: documented {documented.not_passing.get(r.case, 'pass')}, got {r.status}: {r.detail}"
               for r in results if r.status != documented.not_passing.get(r.case, "pass")]
    assert not changed, "\n".join(changed) + f"\n(a regression is a bug; an intended change: {REGENERATE})"
    want = documented.counts.get(op)
    got = {"cases": len(results), **{s: sum(r.status == s for r in results) for s in ("pass", "unsupported", "fail")}}
    assert got == want, f"{op}: documented {want}, got {got}; {REGENERATE}"


# ---------------------------------------------------------------- the table


def write_table(path: Path = DOC) -> None:
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

Regenerate after changing an operator or the onnx version (`tests/test_onnx_conformance.py` pins
every case's status and the totals below, and fails until this file matches):

    .venv/bin/python tests/test_onnx_conformance.py      # rewrites this file; review its diff

Generated by that command (onnx {onnx.__version__}, onnxruntime not
involved): every node test case of `onnx.backend.test.case.node` for the operators below
(`_expanded` function-body variants left out) through the whole pipeline — inputs after the
first turned into weights, import, conversion with every weight refreshable, bundle build, save,
load, init, infer (vs the case's expected outputs), update with new random weights, infer (vs
`onnx.reference` on the updated model) — on **both backends** (numpy and interp).
Tolerance: rtol 1e-4, atol 1e-5. The test suite runs the same cases (the interpreter only on
the small ones) in `tests/test_onnx_conformance.py`. Took {time.monotonic() - start:.0f} s.
Unsupported means the importer refused the case (`UnsupportedOpError`, an unsupported element
type or opset); a shape, graph or lowering error, at import or after, is a failure.

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
