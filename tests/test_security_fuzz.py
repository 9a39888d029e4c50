"""Fuzzing untrusted inputs (docs/SECURITY.md): bundle files and `wrc-opt` input.

The suite runs each fuzzer with a small fixed budget (deterministic seeds). For a longer
local run set `WRC_FUZZ_SECONDS` (each fuzzer then runs that long, from a clock seed), or use
`python -m wrc.tools.wrc_fuzz {bundle,hypothesis,wrc-opt,save-kill} --seconds N`.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wrc import bundle_format as bf
from wrc.context import make_context
from wrc.errors import BundleFormatError
from wrc.ir_text import parse_module
from wrc.tools import wrc_fuzz
from wrc.weight_files import write_weights

FILECHECK = Path(__file__).parent / "filecheck"
LONG = float(os.environ.get("WRC_FUZZ_SECONDS", "0") or 0)
SEED = int(time.time()) if LONG else 0


def budget(cases: int) -> dict:
    return {"seconds": LONG, "seed": SEED} if LONG else {"cases": cases, "seed": SEED}


def assert_clean(report: wrc_fuzz.Report) -> None:
    print(report)
    assert not report.findings, f"seed {SEED}: " + "\n\n".join(report.findings[:3])


# --------------------------------------------------------------------------- bundle files


def test_bundle_mutation_fuzz() -> None:
    """Hundreds of random truncations, bit flips, overwrites, absurd integers, appended
    garbage and resealed header/IR edits: each loads or raises BundleFormatError, quickly."""
    report = wrc_fuzz.fuzz_bundles(**budget(500), case_seconds=10)
    assert_clean(report)
    assert report.cases >= (1 if LONG else 500)
    assert len(report.outcomes) > 20  # many different checks were reached


def test_weight_file_mutation_fuzz() -> None:
    """Truncated, bit-flipped and re-headed .safetensors / .npz files (names that are format
    keywords, duplicates, absurd shapes, object dtypes): each updates or raises a `WrcError`
    and changes nothing."""
    report = wrc_fuzz.fuzz_weight_files(**budget(300), case_seconds=10)
    assert_clean(report)
    assert report.cases >= (1 if LONG else 300)
    assert len(report.outcomes) > 12, report.outcomes  # many different checks were reached


def test_fuzzers_generate_the_inputs_issue_13_found_missing(tmp_path: Path) -> None:
    """The generators added for issue 13, each checked to produce its class of input and the
    reader to refuse it: IR writing a function's argument (both format versions, every
    graph), FIFO / directory / device bundle paths, weight files rewritten during the read."""
    import random

    import wrc

    rng = random.Random(0)
    written = set()
    for data in wrc_fuzz.seed_bundles():
        for _ in range(6):
            mutated = wrc_fuzz.write_an_argument(rng, data)
            assert mutated != data
            with pytest.raises(BundleFormatError, match=r"graph '(\w+)': writes its input") as e:
                wrc.load_bundle(bf.read_bundle(mutated))
            written.add(str(e.value).split("'")[1])
    assert written == {"var_infer_graph", "var_update_graph", "var_delta_graph"}, written
    kinds = {wrc_fuzz.check_non_regular_path(rng, tmp_path, case_seconds=10) for _ in range(20)}
    assert len(kinds) == 4, kinds
    model = wrc_fuzz.seed_model()
    b = wrc.load_bundle(model)
    b.init()
    expected = [b.weights(), {k: v + 1 for k, v in b.weights().items()}]
    for suffix in (".safetensors", ".npz"):
        versions = []
        for weights in expected:
            write_weights(tmp_path / f"v{suffix}", weights)
            versions.append((tmp_path / f"v{suffix}").read_bytes())
        outcome = wrc_fuzz.update_while_rewritten(rng, b, tmp_path / f"r{suffix}", versions, expected)
        assert outcome.startswith("rewritten during reads"), outcome


def test_bundle_hypothesis() -> None:
    """Property-based: any list of mutations of a seed bundle (hypothesis shrinks failures)."""
    if LONG:
        deadline = time.monotonic() + LONG
        seed = SEED
        while time.monotonic() < deadline:
            wrc_fuzz.hypothesis_property(200, seed)()
            seed += 1
    else:
        wrc_fuzz.hypothesis_property(60, SEED)()


def test_every_seed_bundle_mutation_kind_reaches_deep_checks() -> None:
    """The resealing mutators keep checksums right, so the structural checks are exercised."""
    import random

    seeds = wrc_fuzz.seed_bundles()
    data = seeds[3]  # version 1: text IR
    doc, ir, blobs = wrc_fuzz._split(data)  # type: ignore[misc]
    assert wrc_fuzz.relayout(doc, ir, blobs, 1) == data and wrc_fuzz.reseal_header(doc, data) == data
    rng = random.Random(3)
    messages = set()
    for _ in range(60):
        try:
            bf.read_bundle(wrc_fuzz.relayout(doc, wrc_fuzz.mutate_text(rng, ir.decode()).encode(),
                                             blobs, 1))
        except BundleFormatError as e:
            messages.add(str(e)[:40])
    assert any("does not parse" in m or "IR section" in m for m in messages), messages

    data = seeds[1]  # binary IR
    doc, ir, blobs = wrc_fuzz._split(data)  # type: ignore[misc]
    assert wrc_fuzz.relayout(doc, ir, blobs) == data and wrc_fuzz.reseal_header(doc, data) == data
    messages = set()
    for _ in range(200):
        try:
            bf.read_bundle(wrc_fuzz.relayout(doc, wrc_fuzz.mutate_binary_ir(rng, ir), blobs))
        except BundleFormatError as e:
            messages.add(str(e).split("(at byte")[0][:60])
    assert sum("IR section:" in m for m in messages) > 10, messages


def _with_ir(ir: bytes) -> bytes:
    """A version 1 bundle (text IR) holding `ir`."""
    doc, _, blobs = wrc_fuzz._split(wrc_fuzz.seed_bundles()[2])  # type: ignore[misc]
    return wrc_fuzz.relayout(doc, ir, blobs, version=1)


def test_ir_strings_lex_in_linear_time() -> None:
    """xDSL 0.74's string lexer backtracks exponentially on an unterminated literal (a
    40-character one would hang for hours); wrc's parser does not (wrc.ir_text)."""
    for text in ['"' + "x" * 5000 + "\n", '"' + "\\" * 4001, '"' + "ab\\" * 2000 + "\n"]:
        start = time.monotonic()
        with pytest.raises(BundleFormatError, match="does not parse"):
            bf.read_bundle(_with_ir(b"builtin.module attributes {a = " + text.encode() + b"} {}"))
        with pytest.raises(Exception, match="string literal"):
            parse_module(make_context(), "builtin.module attributes {a = " + text + "} {}")
        assert time.monotonic() - start < 5


def test_non_ascii_names_round_trip_through_the_ir_text() -> None:
    text = 'builtin.module attributes {a = "\\C3\\A9\\22\\0A", b = "\\FF"} {\n}'
    module = parse_module(make_context(), text)
    assert module.attributes["a"].data == 'é"\n'  # type: ignore[attr-defined]
    assert module.attributes["b"].data == b"\xff"  # type: ignore[attr-defined]  # not UTF-8: bytes
    assert str(module) == text


def test_ir_section_size_and_nesting_are_bounded_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    good = wrc_fuzz._split(wrc_fuzz.seed_bundles()[0])[1]  # type: ignore[index]
    monkeypatch.setattr(bf, "MAX_IR_BYTES", len(good) - 1)
    with pytest.raises(BundleFormatError, match=f"is {len(good)} bytes, more than the"):
        bf.read_bundle(_with_ir(good))
    monkeypatch.undo()
    nestings = {  # depth → IR text nested that deep (the module's own `{` counts)
        "[": lambda d: b"builtin.module attributes {a = " + b"[" * (d - 1) + b"]" * (d - 1) + b"} {}",
        "{": lambda d: b"builtin.module attributes {a = " + b"{a = " * (d - 1) + b"unit" + b"}" * (d - 1) + b"} {}",
        "({": lambda d: b"builtin.module {\n" + b'"scf.execute_region"() ({\n' * ((d - 1) // 2)
        + b'"scf.yield"() : () -> ()\n' + b"}) : () -> ()\n" * ((d - 1) // 2) + b"}",
    }
    for kind, text in nestings.items():
        # At the cap the parser succeeds (the IR, a different model, then fails the weight
        # check or the verifier), never with a RecursionError; one level more is refused.
        with pytest.raises(BundleFormatError) as e:
            bf.read_bundle(_with_ir(text(bf.MAX_IR_NESTING)))
        expected = "VerifyException: Operation scf.execute_region" if kind == "({" else "weight 'w1'"
        assert expected in str(e.value) and "Recursion" not in str(e.value), (kind, str(e.value))
        with pytest.raises(BundleFormatError, match="nesting deeper than 64 levels"):
            bf.read_bundle(_with_ir(text(bf.MAX_IR_NESTING + 1)))


def test_absurd_declared_sizes_fail_fast_without_allocating() -> None:
    """A variable, an intermediate buffer or an argument of a terabyte: rejected at load
    (types are checked, nothing is allocated)."""
    data = wrc_fuzz.seed_bundles()[0]
    doc, _, _ = wrc_fuzz._split(data)  # type: ignore[misc]
    start = time.monotonic()
    bad = json.loads(json.dumps(doc))  # the header's variable summary, checked before parsing
    bad["variables"]["w1_var"]["shape"] = [2**40]
    with pytest.raises(BundleFormatError, match="variable 'w1_var' declares float32"):
        bf.read_bundle(wrc_fuzz.reseal_header(bad, data))
    tb = "memref<1099511627776xf32>"
    bare = {**doc, "graphs": ["g"], "variables": {}, "weights": []}
    for what, body in [("result of memref.alloc", f"func.func @g() {{\n    %o = memref.alloc() : {tb}\n    func.return\n  }}"),
                       ("argument of func.func", f'func.func @g(%x: {tb} {{ge.name = "x"}}) {{\n    func.return\n  }}')]:
        ir = f"builtin.module {{\n  {body}\n}}".encode()
        with pytest.raises(BundleFormatError, match=f"{what} is {tb} \\(4398046511104 bytes\\), more than"):
            bf.read_bundle(wrc_fuzz.relayout(bare, ir, [], version=1))
    assert time.monotonic() - start < 10


def test_buffer_cap_applies_to_writing_too(monkeypatch: pytest.MonkeyPatch) -> None:
    model = wrc_fuzz.seed_model()
    monkeypatch.setenv("WRC_MAX_TENSOR_BYTES", "16")
    with pytest.raises(BundleFormatError, match="more than the 16-byte limit per buffer"):
        bf.bundle_bytes(model)
    monkeypatch.setenv("WRC_MAX_TENSOR_BYTES", str(1 << 20))
    assert bf.read_bundle(bf.bundle_bytes(model)).graphs == model.graphs


def test_header_prelude_claims_are_checked_before_reading() -> None:
    data = wrc_fuzz.seed_bundles()[0]
    for n in (2**40, 2**63, 2**64 - 1):  # a huge header length is not allocated
        with pytest.raises(BundleFormatError, match="header length"):
            bf.read_bundle(data[:16] + struct.pack("<Q", n) + data[24:])
    h = json.dumps({"file_size": 10**18}).encode()
    with pytest.raises(BundleFormatError):
        bf.read_bundle(struct.pack("<8sIIQ32s", bf.MAGIC, 1, 0, len(h), hashlib.sha256(h).digest()) + h)


# --------------------------------------------------------------------------- wrc-opt


def test_wrc_opt_fuzz_in_process() -> None:
    """Mutated copies of tests/filecheck/**.mlir and random junk, through wrc-opt with the
    pipelines those files use: exit code 0 or 1 with a diagnostic, never a traceback."""
    report = wrc_fuzz.fuzz_wrc_opt(FILECHECK, **budget(100))
    assert_clean(report)
    assert report.outcomes.get("diagnostic", 0) > 10


def test_wrc_opt_subprocess_spot_checks(tmp_path: Path) -> None:
    """The installed command (a real process): diagnostics and exit code 1, no traceback."""
    texts = [
        'builtin.module attributes {a = "' + "x" * 200 + "\n} {}",  # exponential in xDSL's lexer
        "builtin.module {" + "(" * 100_000,
        "\x00\xff junk }}}",
        'func.func @f() {\n  %0 = ge.const "w" : tensor<99999999999x99999999999xf32>\n'
        "  func.return\n}",
    ]
    path = tmp_path / "bad.mlir"
    path.write_text("\n// -----\n".join(texts), errors="surrogateescape")
    for args in (["--split-input-file"], ["--split-input-file", "-p", "convert-ge-to-linalg,ge-bufferize"]):
        r = subprocess.run([sys.executable, "-m", "wrc.tools.wrc_opt", str(path), *args],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "WRC_DEBUG": ""})
        assert r.returncode == 1, r.stderr
        assert "Traceback" not in r.stderr and r.stderr.startswith("wrc-opt: error:"), r.stderr[:500]
