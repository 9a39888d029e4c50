"""Fuzzers for wrc's untrusted inputs: bundle files and `wrc-opt` input (docs/SECURITY.md).

The test suite runs each with a small, fixed budget (tests/test_security_fuzz.py); run them
longer locally:

    python -m wrc.tools.wrc_fuzz bundle --seconds 600       # mutation fuzzing of .wrcb files
    python -m wrc.tools.wrc_fuzz hypothesis --seconds 600   # property-based (hypothesis)
    python -m wrc.tools.wrc_fuzz wrc-opt --seconds 600      # mutated .mlir through wrc-opt
    python -m wrc.tools.wrc_fuzz save-kill --seconds 600    # SIGKILL during saves
    python -m wrc.tools.wrc_fuzz weights --seconds 600      # mutated .safetensors / .npz updates

Each prints what it ran and exits 1 with the first findings (and the input, saved under
`--out`) if any: a bundle that fails with anything but `BundleFormatError`, takes longer
than `--case-seconds`, a loaded bundle that writes its (read-only) inputs or weights or whose
`wrc inspect` text holds a raw escape, a FIFO, directory or device given as a bundle path and
not refused at once, a weight file that makes `update_from_file` fail with anything but a
`WrcError` (or, rewritten in place during the read, gives an update mixing two versions),
or a `wrc-opt` run that prints a traceback or exits with another code than 0/1. Cases are
drawn from `random.Random(seed)`, so `--seed` replays a run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import wrc
from wrc import bundle_format as bf
from wrc import ir_binary
from wrc.abi import INFER_GRAPH, INIT_GRAPH, UPDATE_GRAPH
from wrc.errors import BundleFormatError, WrcError

# --------------------------------------------------------------------------- seed inputs


def seed_model(hidden: int = 8, names: tuple[str, str] = ("w1", "b1"), deltas: bool = False) -> wrc.ModelBuffer:
    """A small real bundle (init/update/infer graphs, several ops, an inline constant; with
    `deltas`, the delta graph of adapters too: a low-rank and a dense delta)."""
    rng = np.random.default_rng(0)
    g = wrc.Graph("seed")
    x = g.data("x", (2, 4))
    h = g.add(g.matmul(x, g.const(names[0], rng.standard_normal((4, hidden)).astype(np.float32))),
              g.const(names[1], rng.standard_normal(hidden).astype(np.float32)))
    h = g.relu(h)
    scale = g.const("scale", np.array([0.5], np.float32), inline=True)
    g.output(g.softmax(g.mul(h, scale)), g.reduce_sum(h, axes=[1]))
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(
            g, list(names), {names[0]: "lora:2", names[1]: "dense"} if deltas else None)
        extra = [(graphs.var_delta_graph, {})] if graphs.var_delta_graph is not None else []
        return wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_init_graph, {}),
                                       (graphs.var_update_graph, {}), *extra])


def seed_bundles() -> list[bytes]:
    """Bundles of the current format version (binary IR), then of version 1 (text IR)."""
    models = [seed_model(), seed_model(3, ('w "1"\n}', "b.ü"), deltas=True)]
    return [bf.bundle_bytes(m) for m in models] + [bf.bundle_bytes(m, version=1) for m in models]


# --------------------------------------------------------------------------- bundle mutations


def _align(n: int) -> int:
    return -(-n // bf.ALIGN) * bf.ALIGN


def _encode(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()  # as the writer does


def _prelude(header: bytes, version: int) -> bytes:
    return struct.pack("<8sIIQ32s", bf.MAGIC, version, 0, len(header), hashlib.sha256(header).digest())


def _version(data: bytes) -> int:
    return struct.unpack_from("<I", data, 8)[0] if len(data) >= 12 else bf.FORMAT_VERSION


def _split(data: bytes) -> tuple[dict, bytes, list[bytes]] | None:
    """(header, IR, weight blobs) of a bundle written by `bundle_bytes`, or None."""
    try:
        n = struct.unpack_from("<Q", data, 16)[0]
        doc = json.loads(data[bf.PRELUDE_SIZE:bf.PRELUDE_SIZE + n])
        ir = data[doc["ir"]["offset"]:doc["ir"]["offset"] + doc["ir"]["nbytes"]]
        blobs = [data[w["offset"]:w["offset"] + w["nbytes"]] for w in doc["weights"]]
        return doc, ir, blobs
    except Exception:
        return None


def reseal_header(doc: object, data: bytes) -> bytes:
    """`data` with header `doc`, its checksum correct. The sections keep their bytes; if the
    header's padded length changes, every integer offset and `file_size` shift with them,
    so a mutation of one field stays the only defect."""
    old_len = struct.unpack_from("<Q", data, 16)[0]
    old_start = _align(bf.PRELUDE_SIZE + old_len)
    h = _encode(doc)
    delta = _align(bf.PRELUDE_SIZE + len(h)) - old_start
    if delta and isinstance(doc, dict):
        doc = json.loads(json.dumps(doc))
        for section in [doc.get("ir"), *(doc.get("weights") or [])] if isinstance(doc.get("weights"), list) else [doc.get("ir")]:
            if isinstance(section, dict) and type(section.get("offset")) is int:
                section["offset"] += delta
        if type(doc.get("file_size")) is int:
            doc["file_size"] += delta
        h = _encode(doc)
    body = data[old_start:]
    head = _prelude(h, _version(data)) + h
    return head + b"\0" * (_align(len(head)) - len(head)) + body


def relayout(doc: dict, ir: bytes, blobs: list[bytes], version: int = bf.FORMAT_VERSION) -> bytes:
    """A consistent bundle of `doc` with a new IR section (offsets, sizes, checksums redone):
    text IR for `version` 1, binary IR for later versions."""
    doc = json.loads(json.dumps(doc))
    start = _align(bf.PRELUDE_SIZE + len(_encode(doc)))
    for _ in range(8):
        pos, offsets = start, []
        for blob in [ir, *blobs]:
            offsets.append(_align(pos))
            pos = offsets[-1] + len(blob)
        doc["ir"].update(offset=offsets[0], nbytes=len(ir), sha256=hashlib.sha256(ir).hexdigest())
        for w, off in zip(doc["weights"], offsets[1:], strict=True):
            w["offset"] = off
        doc["file_size"] = pos
        h = _encode(doc)
        if _align(bf.PRELUDE_SIZE + len(h)) == start:
            break
        start = _align(bf.PRELUDE_SIZE + len(h))
    out = bytearray(_prelude(h, version) + h)
    for blob, off in zip([ir, *blobs], offsets, strict=True):
        out += b"\0" * (off - len(out)) + blob
    return bytes(out)


_HOSTILE_STRINGS = ["\ud800", "\x1b[2J", "\x1b]0;pwned\x07", "\u202e", "\x00", "\r"]
"""Header strings a reader must not print raw or choke on: a lone surrogate (JSON can escape
one), terminal escapes, a bidi override, a NUL."""
_ABSURD = [0, 1, -1, 63, 64, 2**31, 2**32, 2**40, 2**62, 2**63, 2**64, 10**30, 0.5, True, None,
           "", "x" * 300, [], {}, [2**40], [1] * 40, "float32", "object", "NaN", *_HOSTILE_STRINGS,
           {"name": "\x1b[2J", "version": "\ud800"}]


def _mutate_json(rng: random.Random, value: object) -> object:
    """`value` with one leaf or container replaced, deleted or duplicated (a fresh copy)."""
    value = json.loads(json.dumps(value))
    path: list[tuple[object, object]] = []
    node = value
    while isinstance(node, dict | list) and node and (not path or rng.random() < 0.8):
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        node = node[key]  # type: ignore[index]
    if not path:
        return rng.choice(_ABSURD)
    parent, key = path[-1]
    r = rng.random()
    if r < 0.15:
        del parent[key]  # type: ignore[arg-type]
    elif r < 0.25 and isinstance(node, int) and not isinstance(node, bool):
        parent[key] = node + rng.choice([-64, -1, 1, 64, 2**32])  # type: ignore[index]
    elif r < 0.35 and isinstance(node, str):
        parent[key] = node[: rng.randrange(len(node) + 1)] + rng.choice(["", "_var", "é", '"', "\n", *_HOSTILE_STRINGS])  # type: ignore[index]
    elif r < 0.45 and isinstance(parent, list):
        parent.append(json.loads(json.dumps(node)))
    else:
        parent[key] = rng.choice(_ABSURD)  # type: ignore[index]
    return value


_IR_EDITS = [b"f32", b"f64", b"i1", b"i64", b"bf16", b"x", b"?", b"0", b"99999999999", b"-1",
             b"{", b"}", b"(", b")", b"<", b">", b'"', b"\\", b"\n", b"@", b"%", b"^bb0",
             b"ge.variable", b"constant", b"initial_value", b"memref.copy", b"func.call @var_infer_graph() : () -> ()",
             b"scf.for", b"dense<1.0>", b"\xc3", b"\xff", b"linalg.yield", b"affine_map<(d0) -> (d0 * 4)>"]


_WORDS = [0, 1, 2, 3, 8, 9, 63, 64, 255, 2**16, 2**31, 2**32 - 1]


def mutate_binary_ir(rng: random.Random, ir: bytes) -> bytes:
    """One edit of a binary IR section (`wrc.ir_binary`): words set to small or absurd values
    or moved by one, words inserted or deleted (the word count in its prefix kept or fixed),
    string bytes changed; the section's checksum is the caller's to reseal."""
    prefix = ir_binary.PREFIX_SIZE
    if len(ir) <= prefix:
        return ir + rng.randbytes(rng.randrange(1, 16))
    n_words = (len(ir) - prefix) // 4
    out = bytearray(ir)
    kind = rng.randrange(4)
    if kind < 2 and n_words:
        for _ in range(rng.choice([1, 1, 2, 5])):
            i = prefix + 4 * rng.randrange(n_words)
            old = struct.unpack_from("<I", out, i)[0]
            new = rng.choice(_WORDS) if kind == 0 else (old + rng.choice([-1, 1])) % 2**32
            struct.pack_into("<I", out, i, new)
        return bytes(out)
    if kind == 2 and n_words:  # insert or delete a few words
        i = prefix + 4 * rng.randrange(n_words)
        if rng.random() < 0.5:
            out[i:i] = b"".join(struct.pack("<I", rng.choice(_WORDS)) for _ in range(rng.randrange(1, 4)))
        else:
            del out[i:i + 4 * rng.randrange(1, 4)]
        if rng.random() < 0.8:  # keep the prefix consistent so that the decoder goes deeper
            words = (len(out) - prefix - (len(ir) - prefix - 4 * n_words)) // 4
            struct.pack_into("<I", out, 8, max(words, 0))
        return bytes(out)
    i = rng.randrange(prefix + 4 * n_words, len(out)) if len(out) > prefix + 4 * n_words else rng.randrange(len(out))
    out[i] = rng.choice([0, ord('"'), ord("%"), 0xC3, 0xFF, rng.randrange(256)])
    return bytes(out)


_ARGUMENT = re.compile(r"(%[\w.]+) ?: memref<((?:\d+x)*)(f16|f32|f64|i1|i8|i16|i32|i64)>")


def write_an_argument(rng: random.Random, data: bytes) -> bytes:
    """The bundle with one function made to write one of its memref arguments (a
    `linalg.fill` or a `memref.store` of 1, at the top of its body or just before its
    return), the IR re-encoded and resealed: the reader must refuse it (promise 8). `data`
    unchanged if it has no such argument or is no longer well formed."""
    from wrc.context import make_context
    from wrc.ir_text import parse_module

    parts = _split(data)
    if parts is None:
        return data
    doc, ir, blobs = parts
    version, ctx = _version(data), make_context()
    try:
        text = ir.decode() if version == bf.TEXT_IR_VERSION else str(
            ir_binary.decode_module(ir, ctx, bf.MAX_INLINE_ELEMENTS))
    except Exception:
        return data
    headers = list(re.finditer(r"func\.func @[\w.]+\(([^\n]*)\)[^\n]*\{\n", text))
    candidates = [(h, a) for h in headers for a in _ARGUMENT.finditer(h.group(1))]
    if not candidates:
        return data
    header, arg = rng.choice(candidates)
    value, dims, etype = arg.groups()
    one = "true" if etype == "i1" else "1" if etype[0] == "i" else "1.0"
    tag = rng.randrange(10**6)
    write = f"%wa{tag} = arith.constant {one} : {etype}\n"
    if rng.random() < 0.5:
        write += f"linalg.fill ins(%wa{tag} : {etype}) outs({value} : memref<{dims}{etype}>)\n"
    else:
        write += (f"%wi{tag} = arith.constant 0 : index\nmemref.store %wa{tag}, {value}["
                  + ", ".join([f"%wi{tag}"] * dims.count("x")) + f"] : memref<{dims}{etype}>\n")
    ret = text.find("func.return", header.end())
    at = header.end() if ret < 0 or rng.random() < 0.5 else text.rfind("\n", 0, ret) + 1
    text = text[:at] + write + text[at:]
    try:
        new_ir = text.encode() if version == bf.TEXT_IR_VERSION else ir_binary.encode_module(parse_module(ctx, text))
    except Exception:
        return data
    return relayout(doc, new_ir, blobs, version)


def mutate_bundle(rng: random.Random, data: bytes) -> bytes:
    """One random mutation of a bundle: raw (truncate, flip, overwrite, insert, delete,
    append, absurd integers) or structured and resealed (header JSON, the IR: text edits in
    version 1, word edits in binary IR, a write into a function's argument)."""
    kind = rng.randrange(11)
    n = len(data)
    if n < 16:  # an earlier mutation truncated it: only junk can follow
        return data + rng.randbytes(rng.randrange(1, 64))
    if kind == 0:
        return data[: rng.randrange(n)]
    if kind == 1:
        out = bytearray(data)
        for _ in range(rng.choice([1, 1, 2, 8])):
            out[rng.randrange(n)] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == 2:
        i = rng.randrange(n)
        return data[:i] + rng.randbytes(rng.randrange(1, 16)) + data[i + rng.randrange(0, 16):]
    if kind == 3:
        return data + rng.choice([b"\0", b"\0" * 64, rng.randbytes(rng.randrange(1, 200)), data])
    if kind == 4:  # an absurd little-endian integer in the prelude or anywhere
        i = rng.choice([8, 12, 16]) if rng.random() < 0.5 else rng.randrange(n - 8)
        v = rng.choice([0, 1, 2**31, 2**32 - 1, 2**63 - 1, 2**64 - 1, n, n + 1])
        width = 4 if i in (8, 12) else 8
        return data[:i] + v.to_bytes(8, "little")[:width] + data[i + width:]
    parts = _split(data)
    if parts is None:
        return data[::-1]
    doc, ir, blobs = parts
    if kind == 10:
        return write_an_argument(rng, data)
    if kind in (5, 6, 7):  # structured header damage, checksums resealed
        return reseal_header(_mutate_json(rng, doc), data)
    version = _version(data)
    if version != bf.TEXT_IR_VERSION:
        return relayout(doc, mutate_binary_ir(rng, ir), blobs, version)
    # IR text damage, resealed: insert, delete or replace a piece at a random place.
    out = bytearray(ir)
    for _ in range(rng.choice([1, 1, 3])):
        i, j = sorted(rng.randrange(len(out) + 1) for _ in range(2))
        j = min(j, i + rng.choice([0, 1, 4, 40]))
        piece = rng.choice(_IR_EDITS) if rng.random() < 0.8 else bytes(out[j:j + 30])
        out[i:j] = piece
    return relayout(doc, bytes(out), blobs, version)


# --------------------------------------------------------------------------- checks


@dataclass
class Report:
    name: str
    cases: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)  # worth a look, not a broken promise

    def count(self, outcome: str) -> None:
        self.cases += 1
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def __str__(self) -> str:
        top = sorted(self.outcomes.items(), key=lambda kv: -kv[1])[:8]
        return (f"{self.name}: {self.cases} cases, {len(self.findings)} findings; outcomes: "
                + ", ".join(f"{k} x{v}" for k, v in top))


def check_bundle_bytes(data: bytes, case_seconds: float = 10.0) -> str:
    """Load `data` (as bytes) and report the outcome; raises AssertionError on a finding.

    A file that loads is also run (init, infer on zeros) on the numpy backend: a tampered
    but self-consistent file is a different valid model, and may fail with any `WrcError`.
    `load_bundle(data)` goes through the load cache (warm with the seeds' IR while fuzzing:
    header and weight mutations are then checked against the cached facts) and must refuse
    what `read_bundle` refuses, with the same message.
    """
    start = time.monotonic()
    try:
        bf.read_bundle(data)
    except BundleFormatError as e:
        outcome = "rejected: " + re.sub(r"[0-9]+", "N", str(e))[:60]
        try:
            wrc.load_bundle(data)
        except BundleFormatError as cached:
            if str(cached) != str(e):
                raise AssertionError(f"load_bundle refused it otherwise: {cached} (read_bundle: {e})"[:2000]) from None
        except BaseException as cached:
            raise AssertionError(f"load_bundle raised {type(cached).__name__}: {cached}"[:2000]) from cached
        else:
            raise AssertionError(f"load_bundle accepted a bundle read_bundle refuses ({e})"[:2000])
    except BaseException as e:
        raise AssertionError(f"read_bundle raised {type(e).__name__}: {e}"[:2000]) from e
    else:
        outcome = "loaded"
        try:
            b = wrc.load_bundle(data)  # through the load cache
            if INIT_GRAPH in b.graphs:
                b.init()
            inputs = {n: np.zeros(s, d) for n, s, d in b.inputs(INFER_GRAPH)
                      if int(np.prod(s)) < 1 << 20} if INFER_GRAPH in b.graphs else {}
            for a in inputs.values():  # a graph writing its inputs must have been refused
                a.flags.writeable = False
            if INFER_GRAPH in b.graphs:
                b.infer(inputs)
            if any(a.any() for a in inputs.values()):
                raise AssertionError("infer wrote into its input arrays")
            if UPDATE_GRAPH in b.graphs:  # the update graph must not write the caller's weights
                new = {n: np.ones(a.shape, a.dtype) for n, a in b.weights().items() if 0 < a.size < 1 << 20}
                for a in new.values():
                    a.flags.writeable = False
                b.update(new)
                if not all((a == 1).all() for a in new.values()):
                    raise AssertionError("update wrote into its weight arrays")
            _check_inspect_text(data)
            outcome = "loaded and ran"
        except WrcError as e:
            outcome = f"loaded, then {type(e).__name__}"
        except Exception as e:  # a backend/runtime robustness problem, not a format one
            raise AssertionError(f"a loaded bundle failed to run with {type(e).__name__}: "
                                 f"{e}"[:2000]) from e
    elapsed = time.monotonic() - start
    if elapsed > case_seconds:
        raise AssertionError(f"took {elapsed:.1f} s (limit {case_seconds} s)")
    return outcome


def _check_inspect_text(data: bytes) -> None:
    """`wrc inspect`'s text of a bundle: valid UTF-8 with no terminal control character."""
    from wrc.bundle_info import describe, format_text

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.wrcb"
        path.write_bytes(data)
        text = format_text(describe(path))
    text.encode("utf-8")
    bad = sorted({c for c in text if not c.isprintable() and c != "\n"})
    if bad:
        raise AssertionError(f"wrc inspect printed raw control characters {bad!r}")


def check_non_regular_path(rng: random.Random, folder: Path, case_seconds: float = 10.0) -> str:
    """A bundle path that is a FIFO, a directory, a character device, or a symbolic link to
    one of them: `load_bundle` and `wrc inspect`'s `describe` refuse it with
    `BundleFormatError`, at once (a FIFO with no writer used to block them forever)."""
    import os
    import threading

    from wrc.bundle_info import describe

    kind = rng.choice(["fifo", "directory", "device", "link to fifo"])
    path = folder / f"nonregular-{rng.randrange(10**9)}.wrcb"
    if kind == "directory":
        path.mkdir()
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        os.mkfifo(path if kind == "fifo" else path.with_suffix(".fifo"))
        if kind == "link to fifo":
            path.symlink_to(path.with_suffix(".fifo"))
    outcomes: list[str] = []

    def attempt() -> None:
        for read in (wrc.load_bundle, describe):
            try:
                read(path)
                outcomes.append(f"{read.__name__} accepted a {kind}")
            except BundleFormatError:
                outcomes.append("refused")
            except BaseException as e:
                outcomes.append(f"{read.__name__} raised {type(e).__name__}: {e}")

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(case_seconds)
    if t.is_alive():  # unblock the reader: open and close the FIFO's writing end (an EOF)
        with contextlib.suppress(OSError):
            os.close(os.open(path.with_suffix(".fifo") if kind == "link to fifo" else path, os.O_WRONLY | os.O_NONBLOCK))
        raise AssertionError(f"reading a {kind} did not return within {case_seconds} s")
    bad = [o for o in outcomes if o != "refused"]
    if bad:
        raise AssertionError("; ".join(bad)[:2000])
    return f"non-regular file ({kind}) refused"


def fuzz_bundles(seconds: float | None = None, cases: int | None = None, seed: int = 0,
                 out: Path | None = None, case_seconds: float = 10.0) -> Report:
    """Random mutations of the seed bundles until `seconds` pass or `cases` are done, with a
    load cache of their own, warm with the seeds (never the user's cache); one case in 100
    gives the bundle path as a non-regular file instead."""
    rng, seeds, report = random.Random(seed), seed_bundles(), Report("bundle mutation fuzz")
    with tempfile.TemporaryDirectory() as cache, _environ(WRC_CACHE_DIR=cache):
        for data in seeds:
            wrc.load_bundle(data)
        _fuzz_bundles(rng, seeds, report, seconds, cases, out, case_seconds)
    return report


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    import os

    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _fuzz_bundles(rng: random.Random, seeds: list[bytes], report: Report, seconds: float | None,
                  cases: int | None, out: Path | None, case_seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for _ in _until(seconds, cases):
            if rng.random() < 0.01:
                try:
                    report.count(check_non_regular_path(rng, Path(tmp), case_seconds))
                except AssertionError as e:
                    report.findings.append(str(e))
                continue
            base = rng.choice(seeds)
            mutated = base
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                mutated = mutate_bundle(rng, mutated)
            try:
                report.count(check_bundle_bytes(mutated, case_seconds))
            except AssertionError as e:
                report.findings.append(str(e))
                _save(out, "bundle", mutated, str(e))


# --------------------------------------------------------------------------- weight files

_WEIGHT_NAMES = ["w1", "b1", "__metadata__", "allow_pickle", "file", "w1.npy", "", "é\x1b[2J", "b1" * 200]
"""Names a mutated weight file may use: the bundle's own, format keywords, odd ones."""


def seed_weight_files(model: wrc.ModelBuffer, folder: Path) -> list[Path]:
    """The model's weights as .safetensors and .npz (written by wrc), one with a 0-d extra."""
    from wrc.weight_files import write_weights

    b = wrc.load_bundle(model)
    b.init()
    out = []
    for suffix in (".safetensors", ".npz"):
        out.append(folder / f"seed{suffix}")
        write_weights(out[-1], b.weights())
    out.append(folder / "extra.npz")
    write_weights(out[-1], {**b.weights(), "allow_pickle": np.array(1.0, np.float32)})
    return out


def _mutate_weight_file(rng: random.Random, data: bytes, npz: bool) -> bytes:
    """Raw damage (truncate, flip, overwrite, absurd integers), or for safetensors a header
    JSON edit with a correct length prefix, or for .npz a member renamed, duplicated or given
    another .npy header."""
    kind = rng.randrange(6)
    n = len(data)
    if n < 16:
        return data + rng.randbytes(16)
    if kind == 0:
        return data[: rng.randrange(n)]
    if kind == 1:
        out = bytearray(data)
        for _ in range(rng.choice([1, 2, 8])):
            out[rng.randrange(n)] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == 2:
        i = rng.randrange(n - 8)
        v = rng.choice([0, 1, 2**31, 2**32 - 1, 2**63 - 1, 2**64 - 1, n, n + 1])
        return data[:i] + v.to_bytes(8, "little") + data[i + 8:]
    if npz:
        import zipfile

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                members = [(i.filename, z.read(i)) for i in z.infolist()]
        except Exception:
            return data[::-1]
        if not members:
            return data[::-1]
        name, body = rng.choice(members)
        r = rng.random()
        if r < 0.3:
            members.append((rng.choice(_WEIGHT_NAMES) + ".npy", body))
        elif r < 0.6:
            members = [((rng.choice(_WEIGHT_NAMES) + rng.choice([".npy", ""])) or ".npy" if m == name else m, b)
                       for m, b in members]
        else:  # another shape or dtype in the .npy header, the data left as it was
            header = {"descr": rng.choice(["<f4", "<f8", "|b1", "<i8", "|O", ">f4"]),
                      "fortran_order": rng.random() < 0.2,
                      "shape": rng.choice([(), (0,), (4, 8), (8,), (2**20, 2**20), (1,) * 40])}
            head = io.BytesIO()
            np.lib.format.write_array_header_1_0(head, header)
            members = [(m, head.getvalue() + b[128:] if m == name else b) for m, b in members]
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])) as z, \
                __import__("warnings").catch_warnings():
            __import__("warnings").simplefilter("ignore")  # duplicate names are the point
            for m, b in members:
                z.writestr(m, b)
        return out.getvalue()
    try:
        size = struct.unpack_from("<Q", data)[0]
        doc = json.loads(data[8:8 + size])
        body = data[8 + size:]
    except Exception:
        return data[::-1]
    if rng.random() < 0.3 and doc:
        key = rng.choice([k for k in doc if k != "__metadata__"] or ["x"])
        doc[rng.choice(_WEIGHT_NAMES)] = doc.get(key, {})
        header = json.dumps(doc).encode()
    elif rng.random() < 0.2 and doc:  # every name twice in the JSON text
        header = json.dumps(doc).encode()
        header = header[:-1] + b"," + header[1:]
    else:
        header = json.dumps(_mutate_json(rng, doc)).encode()
    return struct.pack("<Q", len(header)) + header + body


def _rewrite_in_place(path: Path, versions: list[bytes], stop: threading.Event, seed: int) -> None:
    """Until `stop`: truncate `path` in place (maybe half way), write one of `versions`."""
    rng = random.Random(seed)
    while not stop.is_set():
        data = rng.choice(versions)
        with open(path, "r+b") as f:
            f.truncate(rng.randrange(len(data)))
            f.seek(0)
            f.write(data)
            f.truncate(len(data))
        time.sleep(rng.uniform(0, 0.005))


def update_while_rewritten(rng: random.Random, b: wrc.Bundle, path: Path, versions: list[bytes],
                           expected: list[dict[str, np.ndarray]]) -> str:
    """`update_from_file(path)` in a loop for up to 0.3 s while a thread rewrites the file in
    place with one of `versions` (whose weights are `expected`): each update applies one whole
    version, or fails with a `WrcError` and changes nothing (a memory-mapped reader died here
    with SIGBUS)."""
    path.write_bytes(versions[0])
    stop = threading.Event()
    writer = threading.Thread(target=_rewrite_in_place, args=(path, versions, stop, rng.randrange(2**32)))
    writer.start()
    refused = 0
    try:
        deadline = time.monotonic() + rng.uniform(0.02, 0.3)
        while time.monotonic() < deadline:
            before = {k: v.copy() for k, v in b.weights().items()}
            try:
                b.update_from_file(path)
            except WrcError as e:
                refused += 1
                if any(not np.array_equal(v, before[k], equal_nan=True) for k, v in b.weights().items()):
                    raise AssertionError("a failed update of a file rewritten during the read changed weights") from e
                continue
            after = b.weights()
            if not any(all(np.array_equal(after[k], v) for k, v in e.items()) for e in expected):
                raise AssertionError("an update from a file rewritten during the read mixed versions")
    finally:
        stop.set()
        writer.join()
    return f"rewritten during reads: {'some refused' if refused else 'every update whole'}"


def fuzz_weight_files(seconds: float | None = None, cases: int | None = None, seed: int = 0,
                      out: Path | None = None, case_seconds: float = 10.0) -> Report:
    """`update_from_file` of mutated weight files: each updates or raises a `WrcError`
    (bundle unchanged), quickly, never allocating much beyond the file's declared weights.
    Two bundles: one with ordinary weight names, one whose weights are named like keyword
    arguments of `np.savez`/`np.load` (`file`, `allow_pickle`). One case in 20 rewrites a
    valid file in place (truncated, then one of two versions) while the update reads it."""
    from wrc.weight_files import write_weights

    rng, report = random.Random(seed), Report("weight file mutation fuzz")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subjects = []
        for i, model in enumerate([seed_model(), seed_model(3, ("file", "allow_pickle"))]):
            (folder / str(i)).mkdir()
            seeds = [(p.read_bytes(), p.suffix) for p in seed_weight_files(model, folder / str(i))]
            b = wrc.load_bundle(model)
            b.init()
            versions = {}
            expected = [b.weights(), {k: v + 1 for k, v in b.weights().items()}]
            for suffix in (".safetensors", ".npz"):
                pair = []
                for weights in expected:
                    write_weights(folder / str(i) / f"v{suffix}", weights)
                    pair.append((folder / str(i) / f"v{suffix}").read_bytes())
                versions[suffix] = pair
            subjects.append((b, seeds, versions, expected))
        for _ in _until(seconds, cases):
            b, seeds, versions, expected = rng.choice(subjects)
            if rng.random() < 0.05:
                suffix = rng.choice([".safetensors", ".npz"])
                try:
                    report.count(update_while_rewritten(rng, b, folder / f"rewritten{suffix}",
                                                        versions[suffix], expected))
                except AssertionError as e:
                    report.findings.append(str(e))
                except BaseException as e:
                    report.findings.append(f"update_from_file of a file being rewritten raised {type(e).__name__}: {e}"[:2000])
                continue
            data, suffix = rng.choice(seeds)
            for _ in range(rng.choice([1, 1, 2])):
                data = _mutate_weight_file(rng, data, suffix == ".npz")
            path = folder / f"case{suffix}"
            path.write_bytes(data)
            before = {k: v.copy() for k, v in b.weights().items()}
            start = time.monotonic()
            try:
                b.update_from_file(path)
                outcome = "updated"
            except WrcError as e:
                outcome = f"{type(e).__name__}: " + re.sub(r"[0-9]+", "N", str(e).replace(str(path), "F"))[:50]
                changed = [k for k, v in b.weights().items() if not np.array_equal(v, before[k], equal_nan=True)]
                if changed:
                    report.findings.append(f"a failed update changed {changed}")
                    _save(out, "weights" + suffix, data, report.findings[-1])
            except BaseException as e:
                report.findings.append(f"update_from_file raised {type(e).__name__}: {e}"[:2000])
                _save(out, "weights" + suffix, data, report.findings[-1])
                continue
            if time.monotonic() - start > case_seconds:
                report.findings.append(f"took {time.monotonic() - start:.1f} s")
                _save(out, "weights" + suffix, data, report.findings[-1])
            report.count(outcome)
    return report


def _until(seconds: float | None, cases: int | None) -> Iterator[int]:
    deadline = time.monotonic() + seconds if seconds is not None else None
    i = 0
    while (cases is None or i < cases) and (deadline is None or time.monotonic() < deadline):
        yield i
        i += 1


def _save(out: Path | None, kind: str, data: bytes, finding: str) -> None:
    """Keep a finding's input (and what went wrong, in a `.txt` next to it) for replay."""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        name = f"{kind}-{hashlib.sha256(data).hexdigest()[:16]}"
        (out / name).write_bytes(data)
        (out / f"{name}.txt").write_text(finding)


# --------------------------------------------------------------------------- hypothesis


def hypothesis_property(max_examples: int, seed: int | None = None) -> Callable[[], None]:
    """A hypothesis test: any list of mutations of a seed bundle loads or is rejected with
    `BundleFormatError` (hypothesis shrinks a failure to a minimal list of mutations)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    seeds = seed_bundles()

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=seed is not None,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(range(len(seeds))), st.lists(st.integers(0, 2**32), min_size=1, max_size=4))
    def prop(which: int, mutation_seeds: list[int]) -> None:
        data = seeds[which]
        for s in mutation_seeds:
            data = mutate_bundle(random.Random(s), data)
        check_bundle_bytes(data)

    return hseed(seed)(prop) if seed is not None else prop


# --------------------------------------------------------------------------- wrc-opt


def filecheck_inputs(root: Path) -> list[tuple[str, list[str]]]:
    """(text, extra wrc-opt arguments) for every file of tests/filecheck: its text and each
    `-p` pipeline its RUN lines use."""
    out = []
    for path in sorted(root.rglob("*.mlir")):
        text = path.read_text()
        pipelines = sorted(set(re.findall(r"-p\s+'([^']*)'|-p\s+(\S+)", text)))
        args = [["-p", a or b] for a, b in pipelines] or [[]]
        for extra in args + [[]]:
            out.append((text, extra))
    return out


def mutate_text(rng: random.Random, text: str) -> str:
    """Random edits: delete, duplicate or swap spans, insert MLIR punctuation or junk."""
    out = text
    for _ in range(rng.choice([1, 1, 2, 4])):
        i, j = sorted(rng.randrange(len(out) + 1) for _ in range(2))
        j = min(j, i + rng.choice([1, 3, 10, 80]))
        r = rng.random()
        if r < 0.3:
            out = out[:i] + out[j:]
        elif r < 0.5:
            out = out[:i] + out[i:j] * rng.choice([2, 30]) + out[j:]
        elif r < 0.8:
            piece = rng.choice(["{", "}", "(", ")", "<", ">", "[", "]", '"', "%", "@", "^", ":",
                                "->", "?", "0", "-1", "99999999999", "f32", "i1", "x", "\n",
                                "// -----\n", "\\", "é", "\x00", "#map", "!foo", "dense<1.0>",
                                "tensor<*xf32>", "memref<?xf32>", "ge.const", "ge.data"])
            out = out[:i] + piece + out[j:]
        else:
            out = out[:i] + "".join(rng.choice("{}()<>[]\"%@:,=0x ") for _ in range(j - i + 1)) + out[j:]
    return out


def run_wrc_opt(text: str, extra: list[str], folder: Path) -> tuple[int, str]:
    """Run `wrc-opt` in this process on `text`; (exit code, stderr)."""
    from wrc.tools.wrc_opt import main

    path = folder / "input.mlir"
    path.write_text(text, errors="surrogateescape")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            rc = main([str(path), "--split-input-file", *extra])
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else 1
    return rc, stderr.getvalue()


def check_wrc_opt(rc: int, stderr: str) -> str:
    if "Traceback (most recent call last)" in stderr or rc not in (0, 1) or (rc == 1 and "error" not in stderr.lower()):
        raise AssertionError(f"exit code {rc}, stderr:\n{stderr[-3000:]}")
    if rc == 0:
        return "accepted"
    return "internal error" if "internal error" in stderr else "diagnostic"


def fuzz_wrc_opt(root: Path, seconds: float | None = None, cases: int | None = None, seed: int = 0,
                 out: Path | None = None, case_seconds: float = 20.0) -> Report:
    rng, inputs, report = random.Random(seed), filecheck_inputs(root), Report("wrc-opt fuzz")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in _until(seconds, cases):
            text, extra = rng.choice(inputs)
            if rng.random() < 0.05:  # pure junk now and then
                text = "".join(rng.choice("{}()<>\"%@:=,-x0123456789abcfgilmnrst. \n") for _ in range(200))
            else:
                text = mutate_text(rng, text)
            start = time.monotonic()
            rc, err = run_wrc_opt(text, extra, Path(tmp))
            try:
                outcome = check_wrc_opt(rc, err)
                report.count(outcome)
                if outcome == "internal error":  # a diagnostic, but from a non-wrc exception
                    line = re.sub(r"[0-9]+", "N", err.splitlines()[0])[:150]
                    report.notes[line] = report.notes.get(line, 0) + 1
                if time.monotonic() - start > case_seconds:
                    raise AssertionError(f"took {time.monotonic() - start:.1f} s")
            except AssertionError as e:
                report.findings.append(f"{e} (args {extra})")
                _save(out, "wrc-opt", text.encode(errors="surrogateescape"), report.findings[-1])
    return report


# --------------------------------------------------------------------------- SIGKILL during save

_SAVER = """
import sys, wrc
from wrc.bundle_format import read_bundle
old, new = read_bundle(sys.argv[1]), read_bundle(sys.argv[2])
print("ready", flush=True)
with wrc.BuildSession():
    while True:  # save the two models over the target, alternately, until killed
        wrc.bundle_save_model(sys.argv[3], new)
        wrc.bundle_save_model(sys.argv[3], old)
"""


def large_model_files(folder: Path, megabytes: int) -> tuple[Path, Path]:
    """Two bundles of one large model (two weights of `megabytes` / 2 each), weights differ."""
    n = max(1, megabytes * (1 << 20) // 8 // 1024)
    out = []
    for i, sign in enumerate((1.0, -1.0)):
        g = wrc.Graph("big")
        x = g.data("x", (1, 1024))
        w = np.full((1024, n), sign, np.float32)
        h = g.matmul(x, g.const("w1", w))
        g.output(g.matmul(h, g.const("w2", np.full((n, 1024), sign * 0.5, np.float32))))
        with wrc.BuildSession():
            graphs = wrc.convert_to_weight_refreshable_graphs(g, ["w1", "w2"])
            model = wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_init_graph, {}),
                                            (graphs.var_update_graph, {})])
            path = folder / f"model{i}.wrcb"
            wrc.bundle_save_model(path, model)
        out.append(path)
    return out[0], out[1]


def kill_during_saves(folder: Path, kills: int, megabytes: int = 64, seed: int = 0,
                      seconds: float | None = None) -> Report:
    """SIGKILL a process saving two versions of a large bundle over one target, at random
    moments; after each kill the target is byte-identical to one of them, and only temporary
    files of dead writers are left, which the next save removes."""
    rng, report = random.Random(seed), Report("SIGKILL during save")
    old, new = large_model_files(folder, megabytes)
    digests = {hashlib.sha256(p.read_bytes()).hexdigest(): name for p, name in ((old, "old"), (new, "new"))}
    target = folder / "target.wrcb"
    target.write_bytes(old.read_bytes())
    script = folder / "saver.py"
    script.write_text(_SAVER)
    for _ in _until(seconds, kills):
        proc = subprocess.Popen([sys.executable, str(script), str(old), str(new), str(target)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready", \
                proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(rng.uniform(0.0, 1.0))  # somewhere inside a save (each takes ~0.1-1 s)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        state = digests.get(hashlib.sha256(target.read_bytes()).hexdigest())
        temps = [p.name for p in folder.iterdir() if p.name.endswith(bf.TEMP_SUFFIX)]
        if state is None:
            report.findings.append("target is neither the old nor the new bundle")
        report.count(f"{state}, {len(temps)} temp file(s) left")
    # A later save removes the dead writers' temporary files and replaces the target.
    with wrc.BuildSession():
        wrc.bundle_save_model(target, bf.read_bundle(new))
    left = [p.name for p in folder.iterdir() if p.name.endswith(bf.TEMP_SUFFIX)]
    if left or hashlib.sha256(target.read_bytes()).hexdigest() not in digests:
        report.findings.append(f"after a clean save: temp files {left}")
    return report


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=["bundle", "hypothesis", "wrc-opt", "save-kill", "weights"])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock")
    parser.add_argument("--case-seconds", type=float, default=30.0)
    parser.add_argument("--megabytes", type=int, default=256, help="save-kill: model size")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    start = time.monotonic()
    if args.target == "bundle":
        report = fuzz_bundles(args.seconds, seed=seed, out=args.out, case_seconds=args.case_seconds)
    elif args.target == "weights":
        report = fuzz_weight_files(args.seconds, seed=seed, out=args.out, case_seconds=args.case_seconds)
    elif args.target == "wrc-opt":
        root = Path(__file__).resolve().parent.parent / "tests" / "filecheck"
        report = fuzz_wrc_opt(root, args.seconds, seed=seed, out=args.out, case_seconds=args.case_seconds)
    elif args.target == "save-kill":
        with tempfile.TemporaryDirectory() as tmp:
            report = kill_during_saves(Path(tmp), None, args.megabytes, seed, args.seconds)  # type: ignore[arg-type]
    else:
        report = Report("hypothesis")
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            try:
                hypothesis_property(200, seed)()
            except Exception as e:  # hypothesis re-raises the shrunk failure
                report.findings.append(f"{type(e).__name__}: {e}"[:3000])
                break
            report.count("200 examples passed")
            seed = seed + 1
    print(f"{report} (seed {seed}, {time.monotonic() - start:.0f} s)")
    for note, n in sorted(report.notes.items(), key=lambda kv: -kv[1])[:10]:
        print(f"note x{n}: {note}")
    for f in report.findings[:5]:
        print("FINDING:", f[:3000])
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
