"""Hardening, round two (issue 13, docs/SECURITY.md): tampered IR that writes the caller's
arrays, weight names that collide with file-format keywords, weight files changing under a
read, scalar weights, hostile `.npz`/`.npy` headers, non-regular files, hostile header fields."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from test_abi import F32, B, W, build
from xdsl.dialects.builtin import StringAttr

import wrc
from wrc import bundle_format as bf
from wrc.bundle_info import describe
from wrc.context import make_context
from wrc.dialects import ge as ge_dialect
from wrc.errors import BundleFormatError, WeightFileError
from wrc.ir_text import parse_module
from wrc.model_buffer import ModelBuffer
from wrc.weight_files import read_weights, write_weights

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


# --------------------------------------------------------------------------- weight files


def weights_bundle(names: dict[str, np.ndarray], n: int = 2) -> wrc.Bundle:
    """y = x + sum of the weights `names` (each broadcast to x's shape [n])."""
    g = wrc.Graph("g")
    y = g.data("x", (n,))
    for name, value in names.items():
        y = g.add(y, g.const(name, value))
    g.output(y)
    with wrc.BuildSession({"wrc.hoist_weight_only": "false"}):
        graphs = wrc.convert_to_weight_refreshable_graphs(g, list(names))
        return wrc.load_bundle(wrc.bundle_build_model(
            [graphs.infer_graph, graphs.var_update_graph, graphs.var_init_graph]))


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_weights_named_like_format_keywords_round_trip(suffix: str, tmp_path: Path) -> None:
    """Row 2: names that were `np.savez` keyword arguments, and a 0-d weight (row 4), are
    written under their names and read back unchanged; export then update is the identity."""
    values = {"allow_pickle": np.array([1, 2], F32), "file": np.array([3, 4], F32),
              "scalar": np.array(5, F32), "args": np.array([6, 7], F32)}
    b = weights_bundle(values)
    b.init()
    path = tmp_path / f"w{suffix}"
    b.export_weights(path)
    back = read_weights(path)
    assert sorted(back) == sorted(values)
    for k, v in values.items():
        assert back[k].shape == v.shape and back[k].dtype == v.dtype and np.array_equal(back[k], v)
    b.update({"allow_pickle": np.zeros(2, F32), "scalar": np.array(-1, F32)})
    b.update_from_file(path)  # the bundle's own file: the identity
    assert all(np.array_equal(b.weights()[k], v) for k, v in values.items())
    assert np.array_equal(b.infer({"x": np.zeros(2, F32)})[0], np.array([15, 18], F32))


def test_a_weight_named_like_safetensors_metadata_is_refused_by_name(tmp_path: Path) -> None:
    """Row 2: `__metadata__` cannot be a safetensors tensor: a `WeightFileError` naming it,
    and no file; `.npz` stores it."""
    b = weights_bundle({"__metadata__": np.array([1, 2], F32)})
    b.init()
    with pytest.raises(WeightFileError, match="cannot write weight '__metadata__' to a safetensors file"):
        b.export_weights(tmp_path / "w.safetensors")
    assert list(tmp_path.iterdir()) == []
    b.export_weights(tmp_path / "w.npz")
    assert list(read_weights(tmp_path / "w.npz")) == ["__metadata__"]
    with pytest.raises(WeightFileError, match="holds a NUL character"):
        write_weights(tmp_path / "n.npz", {"a\0b": np.zeros(2, F32)})


def test_scalar_weight_through_the_cli(tmp_path: Path, capsys) -> None:
    """Row 4: `wrc export-weights` of a 0-d weight, then `wrc update` and `wrc run --update`
    with that file."""
    from wrc.cli import main

    g = wrc.Graph("g")
    g.output(g.add(g.data("x", (2,)), g.const("s", np.array(2, F32))))
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(g, ["s"])
        model = wrc.bundle_build_model([graphs.infer_graph, graphs.var_update_graph, graphs.var_init_graph])
    bf.write_bundle(tmp_path / "m.wrcb", model)
    np.save(tmp_path / "x.npy", np.ones(2, F32))
    for suffix in (".npz", ".safetensors"):
        w = tmp_path / f"s{suffix}"
        assert main(["export-weights", str(tmp_path / "m.wrcb"), str(w)]) == 0
        assert read_weights(w)["s"].shape == ()
        assert main(["update", str(tmp_path / "m.wrcb"), str(w), "-o", str(tmp_path / "m2.wrcb")]) == 0
        assert main(["run", str(tmp_path / "m2.wrcb"), "--input", f"x={tmp_path / 'x.npy'}",
                     "--update", str(w)]) == 0
        assert "[3., 3.]" in capsys.readouterr().out


def zeros_npz(path: Path, members: list[tuple[str, tuple[int, ...]]]) -> None:
    """An .npz of deflated zero arrays: tiny files that decompress to the shapes given."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, shape in members:
            with z.open(name + ".npy", "w", force_zip64=True) as f:
                header = np.lib.format.header_data_from_array_1_0(np.zeros(0, F32))
                header["shape"] = shape
                np.lib.format.write_array_header_1_0(f, header)
                left = int(np.prod(shape)) * 4
                chunk = bytes(1 << 20)
                while left:
                    f.write(chunk[:min(left, len(chunk))])
                    left -= min(left, len(chunk))


@pytest.mark.parametrize(("members", "message"), [
    ([("nope", (4096, 4096))], "unknown weight 'nope'"),
    ([("w", (4096, 4096))], r"weight 'w': expected shape \[2\], got \[4096, 4096\]"),
])
def test_npz_members_are_checked_from_their_headers_before_decompressing(
        members, message, tmp_path: Path) -> None:
    """Row 5: a small `.npz` whose member inflates to 64 MiB is refused from its name or
    header: nothing near its size is allocated (traced peak under 1 MiB)."""
    import tracemalloc

    b = weights_bundle({"w": np.array([1, 2], F32)})
    b.init()
    path = tmp_path / "bomb.npz"
    zeros_npz(path, members)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(wrc.InputError, match=message):
            b.update_from_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak
    assert np.array_equal(b.weights()["w"], [1, 2])


def test_npz_member_with_more_data_than_its_header_or_twice_is_refused(tmp_path: Path) -> None:
    """Rows 5 and 11: a member whose data is longer than its header says, and an archive
    holding one name twice (np.load: the last wins), are `WeightFileError`s."""
    import warnings
    import zipfile

    b = weights_bundle({"w": np.array([1, 2], F32)})
    b.init()
    path = tmp_path / "long.npz"
    with zipfile.ZipFile(path, "w") as z, z.open("w.npy", "w") as f:
        np.lib.format.write_array(f, np.array([5, 6], F32))
        f.write(bytes(4096))
    with pytest.raises(WeightFileError, match="weight 'w': the header says float32\\[2\\] but the member holds"):
        b.update_from_file(path)
    path = tmp_path / "twice.npz"
    with zipfile.ZipFile(path, "w") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate: that is the point
        for v in ([5, 6], [7, 8]):
            with z.open("w.npy", "w") as f:
                np.lib.format.write_array(f, np.array(v, F32))
    with pytest.raises(WeightFileError, match="weight 'w' is in the archive twice"):
        b.update_from_file(path)
    # The same in a safetensors header: two "w" keys (json.loads keeps the last).
    path = tmp_path / "twice.safetensors"
    write_weights(path, {"w": np.array([5, 6], F32)})
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n].rstrip(b" ")
    header = header[:-1] + b"," + header[1:]  # {"w": ...,"w": ...}
    path.write_bytes(len(header).to_bytes(8, "little") + header + data[8 + n:])
    with pytest.raises(WeightFileError, match="weight 'w' is in the header twice"):
        b.update_from_file(path)
    assert np.array_equal(b.weights()["w"], [1, 2])


def test_empty_arrays_keep_a_weight_only_with_its_dtype(tmp_path: Path) -> None:
    """Row 14: a zero-size array of another shape ([0, 2] for [2]) or dtype is an error, in
    `update` and `update_from_file`; shape [0] and the weight's dtype still means "keep"."""
    b = weights_bundle({"w": np.array([1, 2], F32), "v": np.array([3, 4], F32)})
    b.init()
    for bad in (np.zeros((0, 2), F32), np.zeros(0, np.float64)):
        with pytest.raises(wrc.InputError, match="weight 'w': an empty array keeps the weight only with "
                                                 "shape \\[0\\] and dtype float32"):
            b.update({"w": bad, "v": np.array([0, 0], F32)})
        write_weights(tmp_path / "e.npz", {"w": bad})
        with pytest.raises(wrc.InputError, match="e.npz: .*an empty array keeps"):
            b.update_from_file(tmp_path / "e.npz")
    assert np.array_equal(b.weights()["v"], [3, 4])
    b.update({"w": np.zeros(0, F32), "v": np.array([0, 0], F32)})
    assert np.array_equal(b.weights()["w"], [1, 2]) and np.array_equal(b.weights()["v"], [0, 0])


def test_safetensors_file_changed_while_being_read(tmp_path: Path) -> None:
    """Row 3, deterministic: truncated after its header was read, or rewritten between the
    reads of two tensors: a `WeightFileError` and no update."""
    import os

    from wrc import weight_files

    b = weights_bundle({"w": np.array([1, 2], F32), "v": np.array([3, 4], F32)})
    b.init()
    path = tmp_path / "w.safetensors"
    write_weights(path, {"w": np.array([5, 6], F32), "v": np.array([7, 8], F32)})
    with weight_files.WeightFile(path) as f:
        os.truncate(path, 20)
        with pytest.raises(WeightFileError, match="the data ends early"):
            f.read("w")
    write_weights(path, {"w": np.array([5, 6], F32), "v": np.array([7, 8], F32)})
    real_read = weight_files.WeightFile.read

    def read_then_rewrite(self, key: str) -> np.ndarray:
        out = real_read(self, key)
        with open(path, "r+b") as g:  # in place, same size: only the mtime tells
            g.seek(-8, os.SEEK_END)
            g.write(np.array([9, 9], F32).tobytes())
        return out

    weight_files.WeightFile.read = read_then_rewrite
    try:
        with pytest.raises(WeightFileError, match="changed while being read: nothing was updated"):
            b.update_from_file(path)
    finally:
        weight_files.WeightFile.read = real_read
    assert np.array_equal(b.weights()["w"], [1, 2]) and np.array_equal(b.weights()["v"], [3, 4])


_REWRITER = r'''
import os, sys, threading, time
import numpy as np
sys.path.insert(0, sys.argv[2])
from test_security_hardening import weights_bundle
from wrc.weight_files import write_weights
from wrc.errors import WeightFileError

path = sys.argv[1]
n = 1 << 18
versions = []
for v in (1, 2):
    write_weights(path, {"w": np.full(n, v, np.float32), "v": np.full(n, -v, np.float32)})
    versions.append(open(path, "rb").read())
b = weights_bundle({"w": np.zeros(n, np.float32), "v": np.zeros(n, np.float32)}, n)
b.init()
stop, rng = time.monotonic() + float(sys.argv[3]), np.random.default_rng(0)

def rewrite():
    while time.monotonic() < stop:
        data = versions[rng.integers(2)]
        with open(path, "r+b") as f:  # in place: truncate (maybe half way), then write it all
            f.truncate(int(rng.integers(0, len(data))))
            f.seek(0)
            f.write(data)
            f.truncate(len(data))
        time.sleep(rng.uniform(0, 0.06))

t = threading.Thread(target=rewrite)
t.start()
counts = {"v1": 0, "v2": 0, "changed": 0}
while time.monotonic() < stop:
    try:
        b.update_from_file(path)
    except WeightFileError:
        counts["changed"] += 1
        continue
    w, v = b.weights()["w"], b.weights()["v"]
    for k in (1, 2):
        if (w == k).all() and (v == -k).all():
            counts[f"v{k}"] += 1
            break
    else:
        print("MIXED", np.unique(w), np.unique(v))
        sys.exit(3)
t.join()
print(counts)
'''


def test_safetensors_file_rewritten_in_place_during_updates(tmp_path: Path) -> None:
    """Row 3: a thread truncates and rewrites the file in place while `update_from_file`
    reads it in a loop (the memory-mapped reader died with SIGBUS within 2 s): the process
    lives, and every update applied one whole version of the file."""
    import subprocess
    import sys

    path = tmp_path / "w.safetensors"
    r = subprocess.run([sys.executable, "-c", _REWRITER, str(path), str(Path(__file__).parent), "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr[-2000:])
    counts = eval(r.stdout.strip().splitlines()[-1], {})  # the dict the script printed
    assert sum(counts.values()) >= 10 and counts["v1"] + counts["v2"] >= 1, counts


# --------------------------------------------------------------------------- the command line and files


def test_npy_input_claiming_terabytes_is_refused_before_allocating(tmp_path: Path, capsys) -> None:
    """Row 8: `wrc run --input x=f.npy` where the header claims 2^20 x 2^20 floats: one
    line naming the file, no `MemoryError`; the data must be exactly what the header says."""
    from wrc.cli import main

    bf.write_bundle(tmp_path / "m.wrcb", build())
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (1 << 20, 1 << 20)})
    assert huge.stat().st_size < 200
    short = tmp_path / "short.npy"
    np.save(short, np.ones((2, 4), F32))
    short.write_bytes(short.read_bytes()[:-4])
    for path, message in ((huge, r"header says float32\[1048576, 1048576\] \(4398046511104 bytes\) but the "
                                 r"file holds 0 bytes"), (short, "but the file holds 28 bytes")):
        assert main(["run", str(tmp_path / "m.wrcb"), "--input", f"x={path}"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and "--input x" in err, err
        assert re.search(message, err), err
    good = tmp_path / "x.npy"
    np.save(good, np.asfortranarray(np.arange(8, dtype=F32).reshape(2, 4)))
    out = tmp_path / "out" / "o.txt"
    out.parent.mkdir()
    assert main(["run", str(tmp_path / "m.wrcb"), "--input", f"x={good}", "--output", str(out)]) == 0
    # Row 13: the outputs go to the name reported, not o.txt.npz.
    assert f"to {out}\n" in capsys.readouterr().out and sorted(p.name for p in out.parent.iterdir()) == ["o.txt"]
    x = np.arange(8, dtype=F32).reshape(2, 4)
    np.testing.assert_allclose(read_weights(out, format="npz")["output_0"], np.maximum(x @ W + B, 0), rtol=1e-6)


def test_fifos_are_refused_not_waited_on(tmp_path: Path, capsys) -> None:
    """Row 10: a FIFO given as a bundle (`load_bundle`, `read_bundle`, `wrc inspect`, `wrc
    graph`), a weight file or an `.npy` input is refused at once (the reader used to block
    forever waiting for a writer)."""
    import os
    import threading

    from wrc.cli import main

    fifo = tmp_path / "f.wrcb"
    os.mkfifo(fifo)
    results: list[object] = []

    def attempts() -> None:
        for read in (wrc.load_bundle, bf.read_bundle, describe):
            with pytest.raises(BundleFormatError, match="not a regular file"):
                read(fifo)
        for args in (["inspect", str(fifo)], ["graph", str(fifo)]):
            assert main(args) == 1 and "not a regular file" in capsys.readouterr().err
        for suffix in (".npz", ".safetensors"):
            os.mkfifo(tmp_path / f"w{suffix}")
            with pytest.raises(WeightFileError, match="not a regular file"):
                read_weights(tmp_path / f"w{suffix}")
        bf.write_bundle(tmp_path / "m.wrcb", build())
        assert main(["run", str(tmp_path / "m.wrcb"), "--input", f"x={fifo}"]) == 1
        assert "not a regular file" in capsys.readouterr().err
        results.append("done")

    t = threading.Thread(target=attempts, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "a reader blocked on the FIFO"
    assert results == ["done"], "an attempt failed (see the thread's exception above)"


ESCAPES = "\x1b[2J\x1b]0;pwned\x07\u202e"


@pytest.mark.parametrize("producer", [{"name": ESCAPES, "version": "\ud800"}, "wrc", ["wrc"], 7, None,
                                      {"name": 1, "version": {"a": ESCAPES}}])
def test_hostile_names_and_producer_are_escaped_in_human_output(producer, tmp_path: Path, capsys) -> None:
    """Rows 6 and 9: weight, input and producer names holding terminal escapes or a lone
    surrogate, and a `producer` header field of any JSON type: `wrc inspect` and `wrc graph`
    print them escaped (valid UTF-8, no ESC/BEL byte) and exit 0; `load_bundle` ignores the
    informational field."""
    from wrc.cli import main
    from wrc.tools.wrc_fuzz import _split, reseal_header

    name = "w" + ESCAPES
    g = wrc.Graph("g")
    g.output(g.add(g.data("x" + ESCAPES, (2,)), g.const(name, np.array([1, 2], F32))))
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(g, [name])
        model = wrc.bundle_build_model([graphs.infer_graph, graphs.var_update_graph, graphs.var_init_graph])
    data = bf.bundle_bytes(model)
    doc = _split(data)[0]
    doc["producer"] = producer
    path = tmp_path / "m.wrcb"
    path.write_bytes(reseal_header(doc, data))
    b = wrc.load_bundle(path)
    b.init()
    assert np.array_equal(b.infer([np.zeros(2, F32)])[0], [1, 2])
    for args in (["inspect", str(path)], ["graph", str(path)]):
        assert main(args) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        out.encode("utf-8")  # no lone surrogate left
        assert not set(out) & {"\x1b", "\x07", "\u202e"}, args
        assert "\\x1b[2J" in out and "\\u202e" in out, args
        if args[0] == "inspect" and isinstance(producer, dict) and producer["name"] == ESCAPES:
            assert "\\ud800" in out
    assert main(["inspect", "--json", str(path)]) == 0
    info = __import__("json").loads(capsys.readouterr().out)
    assert info["producer"] == ({"name": ESCAPES, "version": "\ud800"} if isinstance(producer, dict)
                                and producer["name"] == ESCAPES else {})
    assert info["variables"][0]["weight"] == name


# --------------------------------------------------------------------------- GE status codes


def test_ge_calls_return_status_codes_that_match_the_cause(tmp_path: Path) -> None:
    """Rows 7 and 12: malformed build options and a NUL in a path are GRAPH_PARAM_INVALID
    (were ValueError); a bytes path is a path (was read as the file's content); a missing
    backend is FEATURE_UNSUPPORTED (was PARSE_MODEL); a model size past the data is
    MODEL_SIZE_INVALID (was a success)."""
    import wrc.ge as ge

    g = wrc.Graph("g")
    g.output(g.add(g.data("x", (2,)), g.const("w", np.array([1, 2], F32))))
    assert ge.aclgrphBuildInitialize({}) == ge.GRAPH_SUCCESS
    try:
        graphs = ge.WeightRefreshableGraphs()
        assert ge.aclgrphConvertToWeightRefreshableGraphs(g, ["w"], graphs) == ge.GRAPH_SUCCESS
        model = ge.ModelBufferData()
        for bad_options in (["not", "a", "map"], 5):
            entries = [ge.GraphWithOptions(graphs.infer_graph, bad_options)]
            assert ge.aclgrphBundleBuildModel(entries, model) == ge.GRAPH_PARAM_INVALID
        assert model.data is None
        entries = [ge.GraphWithOptions(x) for x in (graphs.infer_graph, graphs.var_init_graph, graphs.var_update_graph)]
        assert ge.aclgrphBundleBuildModel(entries, model) == ge.GRAPH_SUCCESS
        assert ge.aclgrphBundleSaveModel(str(tmp_path / "a\0b.wrcb"), model) == ge.GRAPH_PARAM_INVALID
        path = tmp_path / "m.wrcb"
        assert ge.aclgrphBundleSaveModel(str(path), model) == ge.GRAPH_SUCCESS
    finally:
        assert ge.aclgrphBuildFinalize() == ge.GRAPH_SUCCESS
    bundle_id, ret = ge.aclmdlBundleLoadFromFile(bytes(path))
    assert ret == ge.ACL_SUCCESS and ge.aclmdlBundleGetModelNum(bundle_id) == (3, ge.ACL_SUCCESS)
    assert ge.aclmdlBundleUnload(bundle_id) == ge.ACL_SUCCESS
    assert ge.aclmdlBundleLoadFromFile(bytes(tmp_path / "missing")) == (0, ge.ACL_ERROR_INVALID_FILE)
    assert ge.aclmdlBundleLoadFromFile(str(path), backend="nope") == (0, ge.ACL_ERROR_INVALID_PARAM)
    try:
        __import__("cupy")
    except ImportError:  # the machine this suite runs on: no CuPy
        assert ge.aclmdlBundleLoadFromFile(str(path), backend="cupy") == (0, ge.ACL_ERROR_FEATURE_UNSUPPORTED)
    data = path.read_bytes()
    for size in (10**20, len(data) + 1, 0, -1, 2.0):
        assert ge.aclmdlBundleLoadFromMem(data, size) == (0, ge.ACL_ERROR_MODEL_SIZE_INVALID), size
    assert ge.aclmdlBundleLoadFromMem(data, len(data) - 1)[1] == ge.ACL_ERROR_PARSE_MODEL
    bundle_id, ret = ge.aclmdlBundleLoadFromMem(bytearray(data), len(data))
    assert ret == ge.ACL_SUCCESS and ge.aclmdlBundleUnload(bundle_id) == ge.ACL_SUCCESS


def test_ge_execute_racing_unload_says_invalid_model_id(monkeypatch) -> None:
    """Row 12: an `aclmdlExecute` whose bundle another thread unloads right after the call
    looked the model id up returns ACL_SUCCESS (it ran first) or INVALID_MODEL_ID, never
    INVALID_PARAM or a `KeyError`. The unload is started from inside the lookup and given
    0.5 s: it completes there unless the lookup holds the tables' lock."""
    import threading

    import wrc.ge as ge

    bundle_id, _ = ge.aclmdlBundleLoadFromMem(bf.bundle_bytes(build()))
    infer = ge.aclmdlBundleGetModelId(bundle_id, 0)[0]
    assert ge.aclmdlGetModelName(ge.aclmdlBundleGetModelId(bundle_id, 2)[0])[0] == "var_init_graph"
    assert ge.aclmdlExecute(ge.aclmdlBundleGetModelId(bundle_id, 2)[0], [])[1] == ge.ACL_SUCCESS
    unloads: list[threading.Thread] = []

    class UnloadOnLookup(dict):
        def _race(self) -> None:
            if not unloads:
                unloads.append(threading.Thread(target=ge.aclmdlBundleUnload, args=(bundle_id,)))
                unloads[0].start()
                unloads[0].join(0.5)

        def __contains__(self, key: object) -> bool:
            found = super().__contains__(key)
            self._race()
            return found

        def get(self, key, default=None):
            found = super().get(key, default)
            self._race()
            return found

    monkeypatch.setattr(ge, "_models", UnloadOnLookup(ge._models))
    outputs, ret = ge.aclmdlExecute(infer, [np.zeros((2, 4), F32)])
    unloads[0].join()
    assert ret in (ge.ACL_SUCCESS, ge.ACL_ERROR_INVALID_MODEL_ID), ret
    assert ge.aclmdlExecute(infer, []) == ([], ge.ACL_ERROR_INVALID_MODEL_ID)
    assert ge.aclmdlBundleGetModelNum(bundle_id) == (0, ge.ACL_ERROR_INVALID_PARAM)


# --------------------------------------------------------------------------- wrc-opt, lone surrogates

FORMER_INTERNAL_ERRORS = {
    "ge.data in a nested module": (
        'builtin.module {\n  builtin.module {\n    func.func @g() -> tensor<2xf32> {\n'
        '      %x = ge.data "x" index 0 : tensor<2xf32>\n      func.return %x : tensor<2xf32>\n    }\n  }\n}\n',
        ["-p", "ge-bufferize"], 'ge.data "x": a graph input must be in the body of a func.func at the top level'),
    "unknown iterator type": (
        "func.func @f(%a: memref<2xf32>, %b: memref<2xf32>) {\n  linalg.generic {indexing_maps = "
        "[affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = [\"par>llel\"]} "
        "ins(%a : memref<2xf32>) outs(%b : memref<2xf32>) {\n  ^bb0(%i: f32, %o: f32):\n"
        "    linalg.yield %i : f32\n  }\n  func.return\n}\n",
        [], "'par>llel' is not a valid IteratorType"),
    "a 5000-digit integer": (
        "func.func @f() {\n  %0 = arith.constant " + "9" * 5000 + " : i32\n  func.return\n}\n",
        [], "Exceeds the limit (4300 digits)"),
}


@pytest.mark.parametrize("case", list(FORMER_INTERNAL_ERRORS))
def test_wrc_opt_reports_these_inputs_as_located_diagnostics(case: str, tmp_path: Path) -> None:
    """Inputs the wrc-opt fuzzer saw end in `internal error: KeyError/ValueError: ...`: each is
    now a user-level diagnostic (with the input's line and column for parse errors)."""
    from wrc.tools.wrc_fuzz import run_wrc_opt

    text, extra, message = FORMER_INTERNAL_ERRORS[case]
    rc, stderr = run_wrc_opt(text, extra, tmp_path)
    assert rc == 1 and stderr.startswith("wrc-opt: error: "), stderr[:2000]
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr[:2000]
    assert message in stderr, stderr[:2000]
    if "ge.data" not in message:
        assert re.search(r"input\.mlir:\d+:\d+", stderr), stderr[:300]


@pytest.mark.parametrize("where", ["graph", "input", "constant", "parsed constant"])
def test_a_lone_surrogate_in_a_name_is_a_graph_error_naming_it(where: str) -> None:
    """A Python str may hold a lone surrogate, which no IR, bundle or weight file can store:
    the Graph builder refuses it by name (it used to fail at bundle save with xDSL's or the
    binary IR writer's `UnicodeEncodeError`)."""
    with pytest.raises(wrc.GraphError, match=rf"{where.split()[-1]} name .*\\ud800.* lone surrogate"):
        if where == "graph":
            wrc.Graph("g\ud800")
        elif where == "input":
            wrc.Graph("g").data("x\ud800", (2,))
        elif where == "constant":
            wrc.Graph("g").const("w\ud800", np.ones(2, np.float32))
        else:  # a module built or edited in Python, wrapped with Graph.from_module
            g = wrc.Graph("g")
            g.output(g.add(g.data("x", (2,)), g.const("w", np.ones(2, np.float32))))
            const = next(op for op in g.module.walk() if isinstance(op, ge_dialect.ConstOp))
            const.const_name = StringAttr("w\ud800")
            wrc.Graph.from_module(g.module, {"w\ud800": np.ones(2, np.float32)})
