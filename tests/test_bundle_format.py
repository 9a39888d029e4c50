"""The bundle file format (docs/bundle-format.md): round trip, crash-safe save, and malformed
files, which must all give `BundleFormatError` quickly (never another exception or a hang).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from xdsl.parser import Parser

import wrc
from wrc import bundle_format as bf
from wrc.bundle_format import bundle_bytes, read_bundle, write_bundle
from wrc.context import make_context
from wrc.errors import BundleFormatError
from wrc.model_buffer import ModelBuffer

IR = """builtin.module {
  "memref.global"() <{sym_name = "const_1_var", sym_visibility = "public", type = memref<4x3xf32>, initial_value}> {ge.variable} : () -> ()
  "memref.global"() <{sym_name = "const_1", sym_visibility = "private", type = memref<4x3xf32>, constant, initial_value}> {ge.constant} : () -> ()
  "memref.global"() <{sym_name = "c_f16", sym_visibility = "private", type = memref<2xf16>, constant, initial_value}> {ge.constant} : () -> ()
  "memref.global"() <{sym_name = "c_f64", sym_visibility = "private", type = memref<f64>, constant, initial_value}> {ge.constant} : () -> ()
  "memref.global"() <{sym_name = "c_i8", sym_visibility = "private", type = memref<5xi8>, constant, initial_value}> {ge.constant} : () -> ()
  "memref.global"() <{sym_name = "c_i32", sym_visibility = "private", type = memref<2x2xi32>, constant, initial_value}> {ge.constant} : () -> ()
  "memref.global"() <{sym_name = "c_i64", sym_visibility = "private", type = memref<0x3xi64>, constant, initial_value}> {ge.constant} : () -> ()
  "memref.global"() <{sym_name = "c_bool", sym_visibility = "private", type = memref<3xi1>, constant, initial_value}> {ge.constant} : () -> ()
  "memref.global"() <{sym_name = "b", sym_visibility = "private", type = memref<3xf32>, constant, initial_value = dense<[5.000000e-01, -1.000000e+00, 2.000000e+00]> : tensor<3xf32>}> {ge.constant} : () -> ()
  func.func @var_init_graph() {
    %c = memref.get_global @const_1 : memref<4x3xf32>
    %v = memref.get_global @const_1_var : memref<4x3xf32>
    "memref.copy"(%c, %v) : (memref<4x3xf32>, memref<4x3xf32>) -> ()
    func.return
  }
  func.func @var_infer_graph(%x: memref<4xf32> {ge.name = "x"}) -> memref<4xf32> {
    %o = memref.alloc() : memref<4xf32>
    "memref.copy"(%x, %o) : (memref<4xf32>, memref<4xf32>) -> ()
    func.return %o : memref<4xf32>
  }
}
"""

WEIGHTS = {
    "const_1": np.arange(12, dtype=np.float32).reshape(4, 3),
    "c_f16": np.array([1.5, -2], np.float16),
    "c_f64": np.array(np.pi),
    "c_i8": np.array([-128, -1, 0, 1, 127], np.int8),
    "c_i32": np.array([[1, 2], [3, -4]], np.int32),
    "c_i64": np.zeros((0, 3), np.int64),
    "c_bool": np.array([True, False, True]),
}


def model(weights: dict[str, np.ndarray] | None = None) -> ModelBuffer:
    module = Parser(make_context(), IR).parse_module()
    return ModelBuffer(module, ("var_infer_graph", "var_init_graph"), dict(weights or WEIGHTS))


def assert_same(a: ModelBuffer, b: ModelBuffer) -> None:
    assert str(a.module) == str(b.module)
    assert a.graphs == b.graphs
    assert list(a.weights) == list(b.weights)
    for name, value in a.weights.items():
        other = b.weights[name]
        assert (other.shape, other.dtype) == (value.shape, value.dtype), name
        assert other.tobytes() == value.tobytes(), name


# --------------------------------------------------------------------------- round trip


def test_round_trip_bytes_and_file(tmp_path: Path) -> None:
    m = model()
    data = bundle_bytes(m)
    assert data == bundle_bytes(m) == bundle_bytes(model())  # deterministic
    assert data[:8] == bf.MAGIC and struct.unpack_from("<I", data, 8)[0] == bf.FORMAT_VERSION
    assert_same(m, read_bundle(data))
    path = tmp_path / "m.wrcb"
    write_bundle(path, m)
    assert path.read_bytes() == data
    loaded = read_bundle(path)
    assert_same(m, loaded)
    assert_same(m, read_bundle(str(path)))
    assert_same(m, read_bundle(bytearray(data)))
    assert str(loaded.module) == IR.rstrip("\n")  # the IR as written, printed back the same
    # Sections are 64-byte aligned and the header describes the file.
    doc = header(data)
    assert doc["file_size"] == len(data)
    assert all(s["offset"] % bf.ALIGN == 0 for s in [doc["ir"], *doc["weights"]])
    assert doc["variables"] == {"const_1_var": {"shape": [4, 3], "dtype": "float32"}}


def test_loaded_weights_are_read_only(tmp_path: Path) -> None:
    for source in (bundle_bytes(model()), write_and_path(tmp_path, model())):
        w = read_bundle(source).weights["const_1"]
        with pytest.raises(ValueError):
            w[0, 0] = 1


def test_non_native_and_non_contiguous_weights_are_stored_little_endian() -> None:
    weights = dict(WEIGHTS)
    weights["const_1"] = WEIGHTS["const_1"].astype(">f4")
    weights["c_i32"] = np.asfortranarray(WEIGHTS["c_i32"])
    loaded = read_bundle(bundle_bytes(model(weights)))
    assert_same(model(), loaded)


def test_weight_stripped_bundle_round_trip() -> None:
    ir = "\n".join(line for line in IR.splitlines() if "initial_value}" not in line or "ge.variable" in line)
    ir = ir.replace(IR[IR.index("  func.func @var_init_graph"):IR.index("  func.func @var_infer")], "")
    m = ModelBuffer(Parser(make_context(), ir).parse_module(), ("var_infer_graph",), {})
    loaded = read_bundle(bundle_bytes(m))
    assert_same(m, loaded)
    assert header(bundle_bytes(m))["weights"] == []


def test_invalid_model_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "m.wrcb"
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in WEIGHTS.items() if k != "c_i8"}, "missing: ['c_i8']"),
        ({**WEIGHTS, "extra": np.zeros(1)}, "not constants of the IR: ['extra']"),
        ({**WEIGHTS, "const_1": WEIGHTS["const_1"].T}, "weight 'const_1' is float32[3, 4]"),
        ({**WEIGHTS, "c_i8": WEIGHTS["c_i8"].astype(np.int16)}, "weight 'c_i8' is int16[5]"),
        ({**WEIGHTS, "c_i8": [1, 2, 3, 4, 5]}, "not a numpy array"),
    ]
    for weights, message in cases:
        with pytest.raises(BundleFormatError) as e:
            write_bundle(path, model(weights))
        assert message in str(e.value)
    with pytest.raises(BundleFormatError, match="graph 'main' is not a function"):
        bundle_bytes(ModelBuffer(model().module, ("main",), WEIGHTS))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- crash-safe save


def write_and_path(tmp_path: Path, m: ModelBuffer) -> Path:
    path = tmp_path / "m.wrcb"
    write_bundle(path, m)
    return path


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_leaves_old_file_and_no_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    path = write_and_path(tmp_path, model())
    old = path.read_bytes()
    os.chmod(path, 0o640)
    real = bf._write_plan

    def failing(f, plan) -> None:  # a crash after part of the new file is on disk
        f.write(b"\x89WRC partial new file")
        f.flush()
        raise error

    monkeypatch.setattr(bf, "_write_plan", failing)
    new = model({**WEIGHTS, "const_1": -WEIGHTS["const_1"]})
    with pytest.raises(type(error)):
        write_bundle(path, new)
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.wrcb"]

    monkeypatch.setattr(bf, "_write_plan", real)
    monkeypatch.setattr(bf.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("rename failed")))
    with pytest.raises(OSError, match="rename failed"):
        write_bundle(path, new)
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.wrcb"]

    monkeypatch.undo()
    write_bundle(path, new)  # a successful save replaces it whole and keeps its permissions
    assert_same(new, read_bundle(path))
    assert (path.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.wrcb"]


# --------------------------------------------------------------------------- malformed files


def header(data: bytes) -> dict[str, Any]:
    n = struct.unpack_from("<Q", data, 16)[0]
    return json.loads(data[bf.PRELUDE_SIZE : bf.PRELUDE_SIZE + n])


def assemble(
    ir: bytes,
    weights: dict[str, bytes],
    doc: dict[str, Any],
    mutate: Callable[[dict[str, Any]], None] | None = None,
    version: int = bf.FORMAT_VERSION,
    flags: int = 0,
) -> bytes:
    """An independent writer (from the spec): lays `ir` and `weights` out as version 1 does,
    then lets `mutate` tamper with the header, whose checksum it then seals correctly."""

    def align(n: int) -> int:
        return -(-n // bf.ALIGN) * bf.ALIGN

    start = align(bf.PRELUDE_SIZE)
    for _ in range(10):
        d = json.loads(json.dumps(doc))
        pos, offsets = start, []
        for blob in [ir, *weights.values()]:
            offsets.append(align(pos))
            pos = offsets[-1] + len(blob)
        d["ir"].update(offset=offsets[0], nbytes=len(ir), sha256=hashlib.sha256(ir).hexdigest())
        for w, off in zip(d["weights"], offsets[1:], strict=True):
            blob = weights[w["name"]]
            w.update(offset=off, nbytes=len(blob), sha256=hashlib.sha256(blob).hexdigest())
        d["file_size"] = pos
        if mutate:
            mutate(d)
        h = json.dumps(d).encode()
        if align(bf.PRELUDE_SIZE + len(h)) == start:
            break
        start = align(bf.PRELUDE_SIZE + len(h))
    out = bytearray(struct.pack("<8sIIQ32s", bf.MAGIC, version, flags, len(h), hashlib.sha256(h).digest()))
    out += h
    for blob, off in zip([ir, *weights.values()], offsets, strict=True):
        out += b"\0" * (off - len(out)) + blob
    return bytes(out)


def parts(data: bytes) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
    doc = header(data)
    ir = data[doc["ir"]["offset"] : doc["ir"]["offset"] + doc["ir"]["nbytes"]]
    weights = {w["name"]: data[w["offset"] : w["offset"] + w["nbytes"]] for w in doc["weights"]}
    return ir, weights, doc


def tampered(mutate: Callable[[dict[str, Any]], None] | None = None, ir: bytes | None = None,
             version: int = bf.FORMAT_VERSION, **kw: Any) -> bytes:
    good_ir, weights, doc = parts(bundle_bytes(model(), version if version in bf.SUPPORTED_VERSIONS else bf.FORMAT_VERSION))
    return assemble(good_ir if ir is None else ir, weights, doc, mutate, version, **kw)


def test_independent_writer_matches() -> None:
    data = bundle_bytes(model())
    assert_same(model(), read_bundle(tampered()))
    assert parts(tampered())[:2] == parts(data)[:2]


@functools.cache
def _warm_cache(cache_dir: str) -> None:
    """The load cache knows `model()`'s IR (tampered headers of it are then checked against
    the cached facts, not the decoded IR: tests/test_load_cache.py)."""
    wrc.load_bundle(bundle_bytes(model()))
    wrc.load_bundle(bundle_bytes(model(), version=1))


def expect_error(data: bytes, message: str = "") -> BundleFormatError:
    """`read_bundle` and `load_bundle` (with a warm load cache) both refuse `data`."""
    _warm_cache(os.environ.get("WRC_CACHE_DIR", ""))
    for read in (read_bundle, wrc.load_bundle):
        with pytest.raises(BundleFormatError) as e:
            read(data)
        assert message in str(e.value), f"{read.__name__}: {e.value}"
    return e.value


def test_truncation_at_every_offset(tmp_path: Path) -> None:
    data = bundle_bytes(model())
    start = time.monotonic()
    for n in range(len(data)):
        expect_error(data[:n])
    path = tmp_path / "t.wrcb"
    for n in (0, 7, 55, 56, 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:n])
        expect_error(path)  # type: ignore[arg-type]
    assert time.monotonic() - start < 60
    expect_error(data + b"\0", "header says")


def test_bit_flips_in_every_byte() -> None:
    data = bundle_bytes(model())
    doc = header(data)
    where = {  # every region of the file is covered by a check
        "prelude": range(0, bf.PRELUDE_SIZE),
        "header": range(bf.PRELUDE_SIZE, bf.PRELUDE_SIZE + 10),
        "IR": range(doc["ir"]["offset"], doc["ir"]["offset"] + doc["ir"]["nbytes"]),
        "weights": range(doc["weights"][0]["offset"], len(data)),
    }
    start = time.monotonic()
    for i in range(len(data)):
        for bit in (0, 7):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            expect_error(bytes(flipped))
    assert time.monotonic() - start < 60
    expect_error(bytes([data[0]]) + b"X" + data[2:], "bad magic")
    expect_error(data[: where["IR"][5]] + b"#" + data[where["IR"][6] :], "IR section")
    expect_error(data[:-1] + bytes([data[-1] ^ 1]), "sha256 mismatch")


def test_prelude_errors() -> None:
    data = bundle_bytes(model())
    expect_error(b"", "too short")
    expect_error(b"PK\x03\x04" + data[4:], "not a wrc bundle: bad magic")
    expect_error(tampered(version=3), "format version 3 is not supported: this wrc reads version(s) 1, 2")
    expect_error(tampered(version=0), "format version 0")
    expect_error(tampered(flags=1), "unknown flags 0x1")
    for n in (0, 2**63, 2**64 - 1, len(data)):
        expect_error(data[:16] + struct.pack("<Q", n) + data[24:], "header length")
    expect_error(data[:24] + b"\0" * 32 + data[56:], "header (offset 56")


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        obj = d
        keys = path.split(".")
        for k in keys[:-1]:
            obj = obj[int(k)] if isinstance(obj, list) else obj[k]
        last: Any = int(keys[-1]) if isinstance(obj, list) else keys[-1]
        if value is _DELETE:
            del obj[last]
        else:
            obj[last] = value

    return mutate


_DELETE = object()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set("weights.0.nbytes", 2**62), "weight 'const_1'"),
        (_set("weights.0.nbytes", 2**64), "out of range"),
        (_set("weights.0.shape", [2**40]), "float32 needs 4398046511104 bytes but nbytes is 48"),
        (_set("weights.0.shape", [4, 3, 2**62, 2**62, 2**62]), "needs more than the 48 bytes declared"),
        (_set("weights.0.shape", [-1, -12]), "integers >= 0"),
        (_set("weights.0.shape", [4.0, 3]), "integers >= 0"),
        (_set("weights.0.shape", [True, 12]), "integers >= 0"),
        (_set("weights.0.shape", [1] * 40), "at most 32"),
        (_set("weights.0.shape", "4x3"), "must be list"),
        (_set("weights.0.dtype", "object"), "dtype 'object' is not one of"),
        (_set("weights.0.dtype", "<U3"), "is not one of"),
        (_set("weights.0.dtype", "float64"), "shape [4, 3] of float64 needs 96 bytes but nbytes is 48"),
        (_set("weights.0.offset", 3), "not 64-byte aligned"),
        (_set("weights.0.offset", True), "must be int"),
        (_set("weights.0.offset", 0), "overlap"),
        (_set("weights.0.offset", 2**62), "weight 'const_1': bytes 4611686018427387904.."),
        (_set("weights.0.sha256", "00" * 32), "sha256 mismatch"),
        (_set("weights.0.sha256", "zz"), "not a hex sha256"),
        (_set("weights.0.name", "const_2"), "weight 'const_2' (offset"),
        (_set("weights.0.name", ""), "empty or duplicated"),
        (_set("weights.1.name", "const_1"), "empty or duplicated"),
        (_set("weights.0.name", "const_1_var"), "not a stored constant"),
        (_set("weights.0.name", "b"), "not a stored constant"),
        (_set("weights.0", _DELETE), "unexplained bytes"),
        (_set("weights", {}), "weights must be list"),
        (_set("ir.nbytes", 10), "unexplained bytes"),
        (_set("ir.offset", -64), "out of range"),
        (_set("ir.sha256", "11" * 32), "IR section (offset"),
        (_set("ir", _DELETE), "header has no 'ir'"),
        (_set("graphs", ["var_infer_graph", "main"]), "graph 'main' is not a function"),
        (_set("graphs", ["var_infer_graph", "var_infer_graph"]), "not unique"),
        (_set("graphs", [1]), "list of strings"),
        (_set("variables", {}), "header variables [] do not match"),
        (_set("variables.const_1_var.shape", [3, 4]), "do not match"),
        (_set("variables.const_1_var.dtype", "complex64"), "is not one of"),
        (_set("file_size", 10**30), "out of range"),
        (_set("file_size", 1), "but its header says 1"),
        (lambda d: d.clear(), "has no"),
    ],
)
def test_tampered_header(mutate: Callable[[dict[str, Any]], None], message: str) -> None:
    expect_error(tampered(mutate), message)


def test_malformed_header_json() -> None:
    def with_header(h: bytes) -> bytes:
        return struct.pack("<8sIIQ32s", bf.MAGIC, 1, 0, len(h), hashlib.sha256(h).digest()) + h

    for h, message in [
        (b"\xff\xfe", "not valid UTF-8 JSON"),
        (b"{", "not valid UTF-8 JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"a": NaN}', "NaN is not allowed"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid UTF-8 JSON"),
        (b'{"file_size": 1' + b"0" * 5000 + b"}", "not valid UTF-8 JSON"),
    ]:
        expect_error(with_header(h), message)


def test_tampered_text_ir_section() -> None:
    """Version 1 files hold the IR as text (binary IR: tests/test_ir_binary.py)."""
    good = parts(bundle_bytes(model(), version=1))[0]
    for ir, message in [
        (b"\xff\xfe", "does not parse"),
        (b"builtin.module {", "does not parse"),
        (b"this is not IR", "does not parse"),
        (b"builtin.module {}", "not a stored constant"),
        (b"{" * 5000, "nesting deeper than 64 levels at offset"),
        (b"builtin.module {" + b'"test.op"() ({' * 3000, "nesting deeper than 64"),
        (b"builtin.module {" + b'"test.op"() ({' * 31, "does not parse"),  # under the cap
        (good.replace(b'"c_i8"', b'"' + b"{([<" * 100 + b'"'),  # brackets in strings don't nest
         "weight 'c_i8' (offset"),
        (good.replace(b"memref<4x3xf32>, constant", b"memref<4x3xf64>, constant"), "declares memref<4x3xf64>"),
        (good.replace(b"memref<4x3xf32>, initial_value", b"memref<4x4xf32>, initial_value"), "do not match"),
        (good.replace(b"@var_infer_graph", b"@other"), "graph 'var_infer_graph' is not a function"),
        (good.replace(b"memref<3xi1>", b"memref<3xbf16>"), "the IR declares memref<3xbf16>"),
        (good.replace(b'"memref.copy"(%c, %v) : (memref<4x3xf32>, memref<4x3xf32>)',
                      b'"memref.copy"(%c, %v) : (memref<4x3xf32>, memref<4x3xi32>)'), "does not parse"),
        (good.replace(b"dense<[5.000000e-01, -1.000000e+00, 2.000000e+00]> : tensor<3xf32>",
                      b"dense<0.0> : tensor<99999999999xf32>"), "inline constant"),
    ]:
        start = time.monotonic()
        expect_error(tampered(ir=ir, version=1), message)
        assert time.monotonic() - start < 30


def test_header_missing_a_stored_weight() -> None:
    ir, weights, doc = parts(bundle_bytes(model()))
    del weights["const_1"]
    doc["weights"] = doc["weights"][1:]
    expect_error(assemble(ir, weights, doc), "missing: ['const_1']")


def test_bad_sources(tmp_path: Path) -> None:
    expect_error(tmp_path / "missing.wrcb", "cannot open")  # type: ignore[arg-type]
    expect_error(tmp_path, "cannot")  # type: ignore[arg-type]
    expect_error(42, "expected a path or bytes")  # type: ignore[arg-type]
