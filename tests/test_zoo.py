"""The model zoo (docs/zoo.md) against onnxruntime: public architectures exported by both of
PyTorch's exporters (tests/zoo/, made by tests/zoo/make_zoo.py) and onnx's own `light` CNNs
(read in place from the installed onnx package, their constant-filled weights made random).

Every model either imports, compiles with all its weights refreshable, and matches onnxruntime
after `init()` and after a full weight update, or fails with exactly the reason recorded in
BLOCKED: a ratchet, so a model that starts to import (or fails differently) fails this test
until BLOCKED is updated. `python tests/test_zoo.py --report` prints every model's current
result and a BLOCKED table to paste here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from safetensors.numpy import save_file
from test_onnx import ort_run, with_initializers

import wrc
from wrc.cli import main as wrc_main
from wrc.onnx import UnsupportedOpError, import_onnx, weight_names
from wrc.workflow import compile_graph

ZOO = Path(__file__).parent / "zoo"
MANIFEST = json.loads((ZOO / "manifest.json").read_text())
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
TOL = 1e-4  # on max |wrc - onnxruntime| / max |onnxruntime|

# The models wrc does not import yet: model -> (error class, blocker). For UnsupportedOpError the
# blocker is the sorted list of every unsupported op type (it must match exactly); otherwise it
# is a substring of the error message. Refresh with `python tests/test_zoo.py --report`.
BLOCKED: dict[str, tuple[type[Exception], str]] = {}


# ---------------------------------------------------------------- the cases

ZOO_CASES = {Path(e["file"]).stem: e for e in MANIFEST["models"] if e["file"]}
LIGHT_CASES = sorted(p.stem for p in LIGHT.glob("light_*.onnx"))
CASES = sorted(ZOO_CASES) + LIGHT_CASES


def seed(case: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(case.encode()))


def zoo_feeds(entry: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs by the manifest: floats standard normal, token ids in [0, high), attention
    masks ones followed by some zeros (padding)."""
    feeds = {}
    for inp in entry["inputs"]:
        shape = tuple(inp["shape"])
        if inp["kind"] == "float":
            feeds[inp["name"]] = rng.standard_normal(shape).astype(np.float32)
        elif inp["kind"] == "tokens":
            feeds[inp["name"]] = rng.integers(0, inp["high"], shape, dtype=np.int64)
        else:
            mask = np.ones(shape, np.int64)
            mask[..., shape[-1] - int(rng.integers(1, shape[-1] // 2)):] = 0
            feeds[inp["name"]] = mask
    return feeds


def light_model(path: Path, rng: np.random.Generator) -> onnx.ModelProto:
    """A `light` model with sane random weights. The files keep only the small tensors (trained
    BatchNorm statistics, biases) and replace every large one by its shape: an int64
    initializer `W__SHAPE` feeding `ConstantOfShape(value=0.02) -> W`. Each such node becomes an
    initializer `W`, and every float initializer gets random values drawn by its role
    (`light_weight`): trained statistics next to random convolutions would blow activations up
    (ShuffleNet's running variances go down to 5e-14). The logits (the input of the final
    Softmax) become a second output, so a saturated softmax cannot hide their errors."""
    model = onnx.load(str(path))
    graph = model.graph
    shapes = {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.name.endswith("__SHAPE")}
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, slot))

    def draw(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        node, slot = consumers[name][0]
        while node.op_type in ("Unsqueeze", "Reshape", "Identity"):  # decomposed BatchNorms
            node, slot = consumers[node.output[0]][0]
        return numpy_helper.from_array(light_weight(node, slot, shape, rng), name)

    nodes, filled = [], []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:
            filled.append(draw(node.output[0], tuple(int(d) for d in shapes[node.input[0]])))
        else:
            nodes.append(node)
    stored = [draw(i.name, tuple(i.dims)) if i.data_type == onnx.TensorProto.FLOAT and i.name in consumers else i
              for i in graph.initializer if i.name not in shapes]
    graph.ClearField("node")
    graph.node.extend(nodes)
    graph.ClearField("initializer")
    graph.initializer.extend(stored + filled)
    listed = {i.name for i in graph.input}  # IR < 4: initializers are graph inputs too
    inputs = [i for i in graph.input if i.name not in shapes]
    inputs += [onnx.helper.make_tensor_value_info(w.name, w.data_type, w.dims) for w in filled
               if f"{w.name}__SHAPE" in listed]
    graph.ClearField("input")
    graph.input.extend(inputs)
    outputs = {o.name for o in graph.output}
    graph.output.extend(onnx.helper.make_empty_tensor_value_info(n.input[0]) for n in nodes
                        if n.op_type == "Softmax" and n.output[0] in outputs)
    return model


def light_weight(consumer: onnx.NodeProto, slot: int, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Conv and Gemm weights: He normal (fan-in); scales and variances (BatchNormalization's
    scale and var, Mul): uniform in [0.5, 1.5]; biases, means, shifts: N(0, 0.1)."""
    op = consumer.op_type
    if op in ("Conv", "Gemm") and slot == 1:
        trans_b = any(a.name == "transB" and a.i for a in consumer.attribute)
        fan_in = shape[1] if op == "Gemm" and trans_b else shape[0] if op == "Gemm" else int(np.prod(shape[1:]))
        return rng.standard_normal(shape, np.float32) * np.float32(np.sqrt(2.0 / fan_in))
    if (op == "BatchNormalization" and slot in (1, 4)) or op == "Mul":
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    return rng.normal(0.0, 0.1, shape).astype(np.float32)


def load_case(case: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The model of a case and its inputs (seeded by the case name)."""
    rng = seed(case)
    if case in ZOO_CASES:
        entry = ZOO_CASES[case]
        return onnx.load(str(ZOO / entry["file"])), zoo_feeds(entry, rng)
    model = light_model(LIGHT / f"{case}.onnx", rng)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for inp in model.graph.input:
        if inp.name not in inits:
            shape = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim)
            feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return model, feeds


# ---------------------------------------------------------------- the check

def new_weights(model: onnx.ModelProto, names: list[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A full update: every refreshable ONNX initializer, float tensors moved by small noise
    around their values (multiplicative 10 % plus 10 % of their spread, so zero biases change
    too; positive tensors, such as variances, by a factor exp(0.1 N(0, 1))). Scalars
    (exponents, epsilons) and mask fill values (|x| >= 1e30) are sent unchanged: noise there
    would only make NaNs."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    new = {}
    for name in names:
        if name not in inits:
            continue
        old = inits[name]
        if old.dtype.kind != "f" or old.size <= 1:
            new[name] = old
            continue
        fill = np.abs(old) >= 1e30
        values = old[~fill] if fill.any() else old
        spread = (float(np.std(values, dtype=np.float64)) or float(np.max(np.abs(values)))) if values.size else 0.0
        noise = rng.standard_normal(old.shape, np.float32) * np.float32(0.1)
        if np.all(old > 0):  # scales, variances: stay positive
            noisy = old * np.exp(noise)
        else:
            noisy = old * (1 + noise) + np.float32(spread or 1.0) * rng.standard_normal(old.shape, np.float32) * np.float32(0.1)
        new[name] = np.where(fill, old, noisy).astype(old.dtype) if fill.any() else noisy.astype(old.dtype)
    return new


def assert_matches(got: list[np.ndarray], want: list[np.ndarray], what: str) -> float:
    """Shapes and dtypes equal, max |got - want| <= TOL * max |want|; returns that relative
    error."""
    assert len(got) == len(want), what
    worst = 0.0
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype, f"{what} output {i}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}"
        scale = float(np.max(np.abs(w)))
        assert np.isfinite(scale) and scale > 0, f"{what} output {i}: onnxruntime gives {scale}: a degenerate test"
        err = float(np.max(np.abs(g.astype(np.float64) - w)) / scale)
        assert err <= TOL, f"{what} output {i}: relative error {err:.3g} > {TOL}"
        worst = max(worst, err)
    return worst


def check(case: str) -> tuple[float, float]:
    """Import, compile with every weight refreshable, compare with onnxruntime after `init()`
    and after a full update; returns the two relative errors."""
    model, feeds = load_case(case)
    graph = import_onnx(model, {k: v.shape for k, v in feeds.items()})
    names = weight_names(graph)
    floats = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    bundle = wrc.load_bundle(compile_graph(graph, names))  # the file format: test_wrc_compile_and_run
    bundle.init()
    before = ort_run(model, feeds)
    err_init = assert_matches(bundle.infer(feeds), before, f"{case} after init()")
    new = new_weights(model, names, seed(case + "/update"))
    assert set(new) & floats, f"{case}: no float initializer is refreshable"
    bundle.update(new)
    after = ort_run(with_initializers(model, new), feeds)
    err_update = assert_matches(bundle.infer(feeds), after, f"{case} after update")
    moved = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(after, before))
    assert moved > 100 * TOL, f"{case}: the update hardly changed the outputs ({moved:.2g})"
    return err_init, err_update


def blocker(exc: Exception) -> str:
    """What BLOCKED records for an error: the unsupported op types, or the message."""
    if isinstance(exc, UnsupportedOpError):
        return ", ".join(sorted({p.split(" ", 1)[0] for p in exc.problems}))
    return str(exc).splitlines()[0].removeprefix("<ModelProto>: ")


@pytest.mark.parametrize("case", CASES)
def test_zoo_model_matches_onnxruntime_or_fails_as_recorded(case):
    if case not in BLOCKED:
        check(case)
        return
    cls, expected = BLOCKED[case]
    with pytest.raises(Exception) as info:
        check(case)
    got = blocker(info.value)
    assert type(info.value) is cls, f"{case}: now {type(info.value).__name__}: {got}"
    if cls is UnsupportedOpError:
        assert got == expected, f"{case}: now blocked by {got}, BLOCKED says {expected}"
    else:
        assert expected in got, f"{case}: now {got!r}, BLOCKED says {expected!r}"


def test_blocked_table_names_only_zoo_models():
    assert set(BLOCKED) <= set(CASES)
    assert all(issubclass(cls, Exception) and text for cls, text in BLOCKED.values())


def test_manifest_matches_the_files():
    import hashlib

    for entry in MANIFEST["models"]:
        if entry["file"] is None:
            assert entry["error"], entry  # a failed export records why
            continue
        data = (ZOO / entry["file"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"]), entry["file"]
        model = onnx.load_from_string(data)
        inits = {i.name for i in model.graph.initializer}
        declared = [(i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in model.graph.input
                    if i.name not in inits]
        assert declared == [(i["name"], i["shape"]) for i in entry["inputs"]], entry["file"]
    assert sum(e.get("size", 0) for e in MANIFEST["models"]) < 8e6


# ---------------------------------------------------------------- through the CLI

def outputs(path: Path, n: int) -> list[np.ndarray]:
    with np.load(path) as out:
        assert sorted(out.files) == sorted(f"output_{i}" for i in range(n)), out.files
        return [out[f"output_{i}"] for i in range(n)]


@pytest.mark.parametrize("case", CASES)
def test_wrc_compile_and_run(tmp_path, case):
    """Every model also through the command line: `wrc compile` of the ONNX file, `wrc run`
    after init and `wrc run --update` with a safetensors file of new weights."""
    if case in BLOCKED:
        pytest.skip(f"{case} is blocked ({BLOCKED[case][1]}): test_zoo_model_matches_onnxruntime_or_fails_as_recorded checks how")
    model, feeds = load_case(case)
    if case in ZOO_CASES:
        path = ZOO / ZOO_CASES[case]["file"]
    else:  # a light model with the random weights load_case gave it
        path = tmp_path / f"{case}.onnx"
        onnx.save(model, str(path))
    bundle = tmp_path / "m.wrcb"
    shapes = [f"--input-shape={k}={','.join(map(str, v.shape))}" for k, v in feeds.items()]
    assert wrc_main(["compile", str(path), "-o", str(bundle), "-q", *shapes]) == 0
    inputs = []
    for i, (name, value) in enumerate(feeds.items()):  # (input names may hold a '/')
        np.save(tmp_path / f"input_{i}.npy", value)
        inputs += ["--input", f"{name}={tmp_path / f'input_{i}.npy'}"]
    out = tmp_path / "out.npz"
    assert wrc_main(["run", str(bundle), *inputs, "--output", str(out)]) == 0
    want = ort_run(model, feeds)
    assert_matches(outputs(out, len(want)), want, f"{case} wrc run")
    # what `wrc compile` makes refreshable by default (not scalars, not mask fills)
    names = weight_names(import_onnx(model, {k: v.shape for k, v in feeds.items()}))
    new = new_weights(model, names, seed(case + "/cli"))
    save_file(new, str(tmp_path / "w.safetensors"))
    assert wrc_main(["run", str(bundle), *inputs, "--update", str(tmp_path / "w.safetensors"), "--output", str(out)]) == 0
    want = ort_run(with_initializers(model, new), feeds)
    assert_matches(outputs(out, len(want)), want, f"{case} wrc run --update")


# ---------------------------------------------------------------- python tests/test_zoo.py --report

def report() -> None:
    """Every case's current result, then a BLOCKED table for the failures."""
    table = {}
    for case in CASES:
        start = time.perf_counter()
        try:
            errs = check(case)
            result = f"ok (relative error {errs[0]:.1g} / {errs[1]:.1g} after init / update)"
        except Exception as exc:  # reported, not raised: this is the table's input
            table[case] = (type(exc).__name__, blocker(exc))
            result = f"{type(exc).__name__}: {blocker(exc)}"
        print(f"{case:40} {time.perf_counter() - start:6.1f} s  {result}", flush=True)
    print("\nBLOCKED: dict[str, tuple[type[Exception], str]] = {")
    for case, (cls, text) in table.items():
        print(f"    {case!r}: ({cls}, {text!r}),")
    print("}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="print every zoo model's result against onnxruntime")
    parser.add_argument("--report", action="store_true", required=True)
    parser.parse_args()
    sys.exit(report())
