"""The `wrc` command line: inspect, graph, export-weights, update (in-process, via cli.main)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import wrc
from wrc import cli, dot
from wrc.weight_files import read_weights, write_weights

RNG = np.random.default_rng(5)
W = {"const_1": RNG.standard_normal((4, 3)).astype(np.float32),
     "bias": RNG.standard_normal(3).astype(np.float32),
     "const_2": RNG.standard_normal((3, 2)).astype(np.float32)}


def graph() -> wrc.Graph:
    g = wrc.Graph("mlp")
    x = g.data("x", (2, 4))
    h = g.relu(g.add(g.matmul(x, g.const("const_1", W["const_1"])), g.const("bias", W["bias"])))
    g.output(g.matmul(h, g.const("const_2", W["const_2"])))
    return g


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("cli")
    with wrc.BuildSession():
        gs = wrc.convert_to_weight_refreshable_graphs(graph(), ["const_1", "const_2"])
        wrc.bundle_save_model(d / "full.wrcb", wrc.bundle_build_model(
            [(gs.infer_graph, {}), (gs.var_init_graph, {}), (gs.var_update_graph, {})]))
        wrc.bundle_save_model(d / "stripped.wrcb", wrc.bundle_build_model(
            [(gs.infer_graph, {}), (gs.var_update_graph, {})]))
    (d / "g.mlir").write_text(graph().to_mlir())
    return {"dir": str(d), "full": str(d / "full.wrcb"), "stripped": str(d / "stripped.wrcb"),
            "mlir": str(d / "g.mlir")}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_text_json_and_alias(files, capsys) -> None:
    code, out, _ = run(capsys, "inspect", files["full"])
    assert code == 0
    assert "format version 2" in out
    assert "var_update_graph(const_1_var_data: float32[4, 3] optional" in out
    assert re.search(r"const_1_var\s+const_1\s+\[4, 3\]\s+float32\s+48\s+stored \(const_1\)", out)
    assert re.search(r"bias\s+\[3\]\s+float32\s+12", out)
    code, out, _ = run(capsys, "inspect", "--json", files["stripped"])
    info = json.loads(out)
    assert info["weight_stripped"] and [g["name"] for g in info["graphs"]] == ["var_infer_graph", "var_update_graph"]
    assert {v["name"]: v["initial_value"] for v in info["variables"]} == {"const_1_var": "stripped",
                                                                        "const_2_var": "stripped"}
    assert sum(info["sections"].values()) == info["file_size"]
    assert info["graphs"][0]["outputs"] == [{"shape": [2, 2], "dtype": "float32"}]
    assert run(capsys, "info", files["full"])[0] == 0


def test_inspect_bad_file(files, capsys, tmp_path) -> None:
    bad = tmp_path / "bad.wrcb"
    bad.write_bytes(open(files["full"], "rb").read()[:-1])
    code, out, err = run(capsys, "inspect", str(bad))
    assert code == 1 and out == ""
    assert err.startswith("wrc: error: bundle: file is") and err.count("\n") == 1


def test_graph_dot(files, capsys, tmp_path) -> None:
    code, out, _ = run(capsys, "graph", files["mlir"])
    assert code == 0 and out.startswith('digraph "g.mlir" {') and out.rstrip().endswith("}")
    assert 'label="@mlp"' in out and "cylinder" not in out
    code, out, _ = run(capsys, "graph", files["mlir"], "--convert", "const_1,const_2")
    clusters = re.findall(r'label="(original|converted): @(\w+)"', out)
    assert clusters == [("original", "mlp"), ("converted", "var_init_graph"),
                        ("converted", "var_update_graph"), ("converted", "var_infer_graph")]
    assert out.count("shape=cylinder") == 2  # one node per variable, shared by the 3 graphs
    assert out.count('color="#d32f2f"') >= 4  # init + update writes
    code, out, _ = run(capsys, "graph", files["full"], "-o", str(tmp_path / "b.dot"))
    text = (tmp_path / "b.dot").read_text()
    assert code == 0 and "memref.get_global @const_1_var" in text and "(empty = keep)" in text
    assert "const_1_var_data is non-empty" in text
    assert text.count("{") == text.count("}")


def test_graph_errors(files, capsys, monkeypatch, tmp_path) -> None:
    code, _, err = run(capsys, "graph", files["full"], "--convert", "const_1")
    assert code == 1 and "--convert takes a ge graph" in err
    code, _, err = run(capsys, "graph", files["mlir"], "--convert", "nope")
    assert code == 1 and '"nope" is not a ge.const' in err
    (tmp_path / "bad.mlir").write_text("this is not IR")
    code, _, err = run(capsys, "graph", str(tmp_path / "bad.mlir"))
    assert code == 1 and "not a bundle, and not valid ge IR" in err
    code, _, err = run(capsys, "graph", files["mlir"], "-o", str(tmp_path / "g.pdf"))
    assert code == 1 and "unknown output format 'pdf'" in err
    monkeypatch.setattr(dot.shutil, "which", lambda name: None)
    code, _, err = run(capsys, "graph", files["mlir"], "-o", str(tmp_path / "g.svg"))
    assert code == 1 and "needs Graphviz's `dot` program" in err


@pytest.mark.skipif(dot.shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graph_svg_with_graphviz(files, capsys, tmp_path) -> None:
    assert run(capsys, "graph", files["mlir"], "--convert", "const_1", "-o", str(tmp_path / "g.svg"))[0] == 0
    assert "<svg" in (tmp_path / "g.svg").read_text()


def test_dot_quoting() -> None:
    assert dot.quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_export_weights_and_update(files, capsys, tmp_path) -> None:
    out = tmp_path / "w.safetensors"
    code, stdout, _ = run(capsys, "export-weights", files["full"], str(out))
    assert code == 0 and "wrote 2 weight(s)" in stdout
    got = read_weights(out)
    for k in ("const_1", "const_2"):
        np.testing.assert_array_equal(got[k], W[k])
    new1 = np.full((4, 3), 0.5, np.float32)
    write_weights(tmp_path / "new.npz", {"const_1": new1})
    assert run(capsys, "update", files["full"], str(tmp_path / "new.npz"), "-o", str(tmp_path / "new.wrcb"))[0] == 0
    b = wrc.load_bundle(tmp_path / "new.wrcb")
    b.init()
    np.testing.assert_array_equal(b.weights()["const_1"], new1)
    np.testing.assert_array_equal(b.weights()["const_2"], W["const_2"])
    # Bad entries: nothing written.
    write_weights(tmp_path / "bad.npz", {"const_1": np.zeros((4, 4), np.float32)})
    code, _, err = run(capsys, "update", files["full"], str(tmp_path / "bad.npz"), "-o", str(tmp_path / "x.wrcb"))
    assert code == 1 and "bad.npz" in err and "expected shape [4, 3]" in err
    assert not (tmp_path / "x.wrcb").exists()
    code, _, err = run(capsys, "update", files["stripped"], str(tmp_path / "new.npz"), "-o", str(tmp_path / "x.wrcb"))
    assert code == 1 and "weight-stripped" in err
    code, _, err = run(capsys, "export-weights", files["stripped"], str(tmp_path / "s.npz"))
    assert code == 1 and "weight-stripped" in err
    code, _, err = run(capsys, "export-weights", files["full"], str(tmp_path / "w.bin"))
    assert code == 1 and "unknown weight file type '.bin'" in err


def test_help_texts(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for command in ("inspect", "graph", "export-weights", "update", "demo"):
        assert command in out
    for command in ("inspect", "graph", "export-weights", "update"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "usage: wrc " + command in capsys.readouterr().out
