"""`wrc compile` / `wrc run` on the checked-in real models, against onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from safetensors.numpy import save_file
from test_onnx import ort_run, with_initializers

from wrc.cli import main

MODELS = Path(__file__).parent / "models"
RNG = np.random.default_rng(2)


def wrc(*argv: object) -> int:
    return main([str(a) for a in argv])


@pytest.mark.parametrize("name, feed", [
    ("mlp", ("x", RNG.standard_normal((2, 16)).astype(np.float32))),
    ("resnet", ("x", RNG.standard_normal((1, 3, 16, 16)).astype(np.float32))),
    ("bert", ("input_ids", RNG.integers(0, 64, (1, 8)))),
])
def test_compile_and_run_real_models(tmp_path, name, feed):
    model = onnx.load(str(MODELS / f"{name}.onnx"))
    np.save(tmp_path / "in.npy", feed[1])
    assert wrc("compile", MODELS / f"{name}.onnx", "-o", tmp_path / "m.wrcb", "-q") == 0
    assert wrc("run", tmp_path / "m.wrcb", "--input", f"{feed[0]}={tmp_path / 'in.npy'}", "--output", tmp_path / "out.npz") == 0
    want = ort_run(model, {feed[0]: feed[1]})[0]
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["output_0"], want, rtol=1e-4, atol=1e-4)
    # new weights from a safetensors file, by ONNX initializer name
    floats = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    new = {k: RNG.standard_normal(v.shape).astype(np.float32) for k, v in list(floats.items())[:3]}
    save_file(new, str(tmp_path / "w.safetensors"))
    assert wrc("run", tmp_path / "m.wrcb", "--input", f"{feed[0]}={tmp_path / 'in.npy'}",
               "--update", tmp_path / "w.safetensors", "--output", tmp_path / "out2.npz") == 0
    want = ort_run(with_initializers(model, new), {feed[0]: feed[1]})[0]
    np.testing.assert_allclose(np.load(tmp_path / "out2.npz")["output_0"], want, rtol=1e-4, atol=1e-4)


def test_weight_stripped_partial_weights_and_errors(tmp_path, capsys):
    src = MODELS / "mlp.onnx"
    model = onnx.load(str(src))
    x = RNG.standard_normal((2, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "s.wrcb"
    assert wrc("compile", src, "-o", out, "--weights", "net.0.weight,net.4.bias", "--no-init") == 0
    assert "compiling (2 refreshable weights)" in capsys.readouterr().err
    # a weight-stripped bundle needs its weights before inference
    assert wrc("run", out, "--input", f"x={tmp_path / 'x.npy'}") == 1
    assert "uninitialized" in capsys.readouterr().err
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    save_file({k: weights[k] for k in ("net.0.weight", "net.4.bias")}, str(tmp_path / "w.safetensors"))
    assert wrc("run", out, "--input", f"x={tmp_path / 'x.npy'}", "--update", tmp_path / "w.safetensors") == 0
    assert "output_0: float32[2, 10]" in capsys.readouterr().out
    # errors: one line on stderr naming the culprit, exit code 1
    save_file({"net.0.weight": np.zeros((3, 3), np.float32)}, str(tmp_path / "bad.safetensors"))
    for argv, message in [
        (("compile", src, "-o", out, "--weights", "net.0.weight,nope"), "'nope' not initializer"),
        (("compile", tmp_path / "missing.onnx", "-o", out), "no such file"),
        (("run", out, "--update", tmp_path / "bad.safetensors"), "net.0.weight"),
        (("run", out, "--input", f"x={tmp_path / 'x.npy'}", "--input", f"y={tmp_path / 'x.npy'}",
          "--update", tmp_path / "w.safetensors"), "unknown input"),
        (("run", out, "--update", tmp_path / "w.safetensors"), "input 'x' is missing"),
        (("run", out, "--input", f"x={tmp_path / 'nope.npy'}"), "cannot read"),
    ]:
        assert wrc(*argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)


def test_dynamic_dims_name_the_flag_and_errors_end_the_progress_line(tmp_path, capsys):
    from test_onnx import F, Y, make, node, rand

    path, out = tmp_path / "dyn.onnx", tmp_path / "dyn.wrcb"
    onnx.save(make([node("MatMul", ["ids", "w"])], [("ids", F, ["batch", 4])], [Y], {"w": rand(4, 2)}), str(path))
    assert wrc("compile", path, "-o", out) == 1
    err = capsys.readouterr().err
    assert "--input-shape ids=<batch>,4" in err and "input_shapes" not in err and "Traceback" not in err, err
    assert wrc("compile", path, "-o", out, "--input-shape", "ids=3,4") == 0
    assert "1 refreshable weight" in capsys.readouterr().out
    # `wrc inspect` lists what is refreshable: the weight, by its ONNX name
    assert wrc("inspect", out, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert [v["weight"] for v in info["variables"] if v["weight"]] == ["w"]
    # an import error: the progress line ends before the error line
    onnx.save(make([onnx.helper.make_node("Det", ["x"], ["y"], name="det1")], [("x", F, [3, 3])], [Y]), str(path))
    assert wrc("compile", path, "-o", out) == 1
    err = capsys.readouterr().err
    assert f"wrc: importing {path} ... failed\nwrc: error: 1 unsupported node(s):" in err, err
