"""Weight files: Bundle.update_from_file / export_weights with safetensors and .npz."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import wrc
from wrc.weight_files import WeightFileError, read_weights, write_weights

RNG = np.random.default_rng(7)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def make_bundle(init: bool = True) -> tuple[wrc.Bundle, dict[str, np.ndarray]]:
    w = {"const_1": rand(4, 3), "const_2": rand(3, 2)}
    g = wrc.Graph("mlp")
    x = g.data("x", (2, 4))
    g.output(g.matmul(g.relu(g.matmul(x, g.const("const_1", w["const_1"]))), g.const("const_2", w["const_2"])))
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(g, ["const_1", "const_2"])
        parts = [(graphs.infer_graph, {}), (graphs.var_update_graph, {})]
        if init:
            parts.insert(1, (graphs.var_init_graph, {}))
        model = wrc.bundle_build_model(parts)
    return wrc.load_bundle(model), w


def ref(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    return np.maximum(x @ w["const_1"], 0) @ w["const_2"]


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_export_then_update_round_trip(tmp_path, suffix: str) -> None:
    bundle, w = make_bundle()
    bundle.init()
    path = tmp_path / f"w{suffix}"
    bundle.export_weights(path)
    back = read_weights(path)
    assert sorted(back) == ["const_1", "const_2"]
    for k in w:
        np.testing.assert_array_equal(back[k], w[k])
        assert back[k].dtype == w[k].dtype

    new = {"const_1": rand(4, 3), "const_2": rand(3, 2)}
    write_weights(path, new)
    bundle.update_from_file(path)
    x = rand(2, 4)
    np.testing.assert_allclose(bundle.infer({"x": x})[0], ref(x, new), rtol=1e-5, atol=1e-6)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_partial_file_and_weight_stripped_bundle(tmp_path) -> None:
    bundle, w = make_bundle(init=False)
    with pytest.raises(wrc.RuntimeStateError, match="const_1, const_2 were never set"):
        bundle.export_weights(tmp_path / "w.npz")
    write_weights(tmp_path / "all.safetensors", w)
    bundle.update_from_file(tmp_path / "all.safetensors")
    new2 = rand(3, 2)
    write_weights(tmp_path / "part.npz", {"const_2": new2})
    bundle.update_from_file(tmp_path / "part.npz")  # const_1 unchanged
    x = rand(2, 4)
    np.testing.assert_allclose(bundle.infer([x])[0], ref(x, {**w, "const_2": new2}), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("bad", "message"), [
    ({"const_9": np.zeros((4, 3), np.float32)}, "unknown weight 'const_9'"),
    ({"const_1": np.zeros((3, 4), np.float32)}, r"weight 'const_1': expected shape \[4, 3\]"),
    ({"const_1": np.zeros((4, 3), np.float64)}, "weight 'const_1': expected dtype float32"),
])
def test_bad_entries_change_nothing(tmp_path, bad, message) -> None:
    bundle, w = make_bundle()
    bundle.init()
    path = tmp_path / "bad.safetensors"
    write_weights(path, {"const_2": rand(3, 2), **bad})  # one good entry too
    with pytest.raises(wrc.InputError, match=message) as e:
        bundle.update_from_file(path)
    assert "bad.safetensors" in str(e.value)
    for k, v in bundle.weights().items():
        np.testing.assert_array_equal(v, w[k])


def test_unreadable_files(tmp_path) -> None:
    with pytest.raises(WeightFileError, match=r"unknown weight file type '\.pt'"):
        read_weights(tmp_path / "w.pt")
    with pytest.raises(WeightFileError, match="unknown weight file format 'pickle'"):
        read_weights(tmp_path / "w.npz", format="pickle")
    with pytest.raises(WeightFileError, match="no such weight file"):
        read_weights(tmp_path / "missing.npz")
    (tmp_path / "junk.safetensors").write_bytes(b"\x05\x00junk")
    with pytest.raises(WeightFileError, match="cannot read this safetensors file"):
        read_weights(tmp_path / "junk.safetensors")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(WeightFileError, match="cannot read this npz file"):
        read_weights(tmp_path / "junk.npz")
    # A pickled object array is refused, never unpickled.
    np.savez(tmp_path / "obj.npz", w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(WeightFileError, match="obj.npz"):
        read_weights(tmp_path / "obj.npz")
    # A dtype NumPy has no type for (bfloat16): unreadable, or (when ml_dtypes is loaded)
    # read, then refused by the bundle's dtype check. Either way an InputError naming the file.
    header = json.dumps({"const_1": {"dtype": "BF16", "shape": [4, 3], "data_offsets": [0, 24]}}).encode()
    (tmp_path / "bf16.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 24)
    bundle, _ = make_bundle()
    with pytest.raises(wrc.InputError, match="bf16.safetensors"):
        bundle.update_from_file(tmp_path / "bf16.safetensors")
    assert issubclass(WeightFileError, wrc.InputError)


def test_safetensors_weights_are_read_into_private_arrays(tmp_path) -> None:
    """Reading copies each tensor into an array of its own (never a map of the file, which
    dies with SIGBUS when the file shrinks): rewriting the file after does not change them."""
    from safetensors.numpy import save_file

    from wrc.weight_files import read_weights

    w = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(5, np.int64),
         "empty": np.zeros((0, 3), np.float32)}
    save_file(w, str(tmp_path / "w.safetensors"))
    got = read_weights(tmp_path / "w.safetensors")
    assert not isinstance(got["a"], np.memmap) and got["a"].base is None and got["a"].flags.writeable
    (tmp_path / "w.safetensors").write_bytes(b"")
    for key, value in w.items():
        np.testing.assert_array_equal(got[key], value)
        assert got[key].dtype == value.dtype and got[key].shape == value.shape
