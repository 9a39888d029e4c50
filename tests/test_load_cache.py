"""The load cache (`wrc.load_cache`, docs/bundle-format.md "The load cache"): a load from the
cache runs exactly as a cold load, skips the IR, and any problem with the cache makes a cold
load, never a failed or a different one.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_hoist import X, build, weights

import wrc
from wrc import load_cache
from wrc.abi import INFER_GRAPH
from wrc.bundle_format import bundle_bytes
from wrc.errors import BundleFormatError
from wrc.model_buffer import LazyModelBuffer
from wrc.onnx import import_onnx, weight_names

MODELS = Path(__file__).parent / "models"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache of this test's own."""
    path = tmp_path / "cache"
    monkeypatch.setenv("WRC_CACHE_DIR", str(path))
    return path


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("load-v*/*.wrcc"))


def is_hit(b: wrc.Bundle) -> bool:
    """Loaded from the cache: a lazily decoded module, not decoded by the load."""
    return type(b.model) is LazyModelBuffer and "module" not in vars(b.model)


def onnx_bundle(name: str) -> bytes:
    graph = import_onnx(MODELS / name)
    with wrc.BuildSession():
        gs = wrc.convert_to_weight_refreshable_graphs(graph, weight_names(graph))
        return bundle_bytes(wrc.bundle_build_model([gs.infer_graph, gs.var_update_graph, gs.var_init_graph]))


def run(b: wrc.Bundle, seed: int = 0) -> list[bytes]:
    """Outputs (as bytes) after init and after an update of every weight with random values."""
    rng = np.random.default_rng(seed)
    inputs = {n: rng.standard_normal(s).astype(d) for n, s, d in b.inputs(INFER_GRAPH)}
    b.init()
    out = [o.tobytes() for o in b.infer(inputs)]
    b.update({k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in b.weights().items()})
    return out + [o.tobytes() for o in b.infer(inputs)]


@pytest.fixture(scope="module")
def resnet() -> bytes:
    return onnx_bundle("resnet.onnx")


def test_a_hit_runs_bit_identically_to_a_cold_load(cache: Path, resnet: bytes,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for data in (resnet, onnx_bundle("mlp.onnx"), bundle_bytes(build())):
        cold = wrc.load_bundle(data)  # fills the cache
        assert not is_hit(cold)
        warm = wrc.load_bundle(data)
        assert is_hit(warm)
        assert [warm.source(g) for g in warm.graphs] == [cold.source(g) for g in cold.graphs]
        monkeypatch.setenv("WRC_CACHE_DIR", "off")
        reference = run(wrc.load_bundle(data))
        monkeypatch.setenv("WRC_CACHE_DIR", str(cache))
        assert run(warm) == reference == run(cold)
        assert is_hit(warm)  # init, infer and update never needed the module
        assert str(warm.model.module) == str(cold.model.module)  # decoded when asked
    assert len(entries(cache)) == 3


def test_hoisted_model_from_the_cache_on_both_backends(cache: Path) -> None:
    """Derive functions and inline constants (folded at load) come from the cache too; the
    interpreter (which needs the module) gets the cached analysis and decodes the module."""
    data = bundle_bytes(build())
    for backend in ("numpy", "interp"):
        wrc.load_bundle(data, backend)
        warm = wrc.load_bundle(data, backend)
        assert type(warm.model) is LazyModelBuffer
        memory = wrc.load_bundle(build(), backend)  # in memory: never the cache
        for b in (warm, memory):
            b.init()
        assert warm.infer({"x": X})[0].tobytes() == memory.infer({"x": X})[0].tobytes()
        for b in (warm, memory):
            b.update(weights(1))
        assert warm.infer({"x": X})[0].tobytes() == memory.infer({"x": X})[0].tobytes()
    assert len(entries(cache)) == 2  # one per backend


def test_stripped_bundles_and_backend_options_have_their_own_entries(cache: Path) -> None:
    stripped = bundle_bytes(build(stripped=True))
    wrc.load_bundle(stripped)
    b = wrc.load_bundle(stripped)
    assert is_hit(b)
    b.update(weights(2))
    assert b.infer({"x": X})[0].shape == (4, 5)
    plain = wrc.load_bundle(stripped, "numpy{reuse-buffers=false}")
    assert not is_hit(plain)  # other options: other code
    assert is_hit(wrc.load_bundle(stripped, "numpy{reuse-buffers=false}"))
    assert len(entries(cache)) == 2


def _corruptions(entry: Path, other: Path) -> list[tuple[str, Callable[[], None]]]:
    good, foreign = entry.read_bytes(), other.read_bytes()

    def write(data: bytes) -> Callable[[], None]:
        return lambda: entry.write_bytes(data)

    def flip(i: int) -> Callable[[], None]:
        return write(good[:i] + bytes([good[i] ^ 0x40]) + good[i + 1:])

    def directory() -> None:
        entry.unlink()
        entry.mkdir()

    import hashlib
    import marshal

    def resealed(value: object) -> bytes:  # a well-formed entry of the wrong content
        body = marshal.dumps(value)
        return good[:16] + hashlib.sha256(body).digest() + body

    key = marshal.loads(good[48:])[0]
    return [("empty", write(b"")), ("truncated", write(good[: len(good) // 2])),
            ("last byte gone", write(good[:-1])), ("bit flip in the head", flip(3)),
            ("bit flip in the body", flip(len(good) // 2)), ("foreign entry", write(foreign)),
            ("junk", write(os.urandom(len(good)))), ("a directory", directory),
            ("resealed junk", write(resealed((key, [b"zz", 1])))),
            ("resealed wrong type", write(resealed((key, [b"b", [1, 2]])))),
            ("resealed unknown callable", write(resealed((key, [b"r", "os.system"])))),
            ("resealed native value", write(resealed((key, (b"r", "os.system"))))),
            ("resealed bad marshal", write(good[:16] + hashlib.sha256(b"\xff").digest() + b"\xff"))]


def test_a_bad_entry_is_ignored_and_rebuilt(cache: Path) -> None:
    data, other = bundle_bytes(build()), bundle_bytes(build(stripped=True))
    reference = run(wrc.load_bundle(data))
    (entry,) = entries(cache)
    wrc.load_bundle(other)
    (foreign,) = [p for p in entries(cache) if p != entry]
    for what, corrupt in _corruptions(entry, foreign):
        corrupt()
        b = wrc.load_bundle(data)
        assert not is_hit(b), what
        assert run(b) == reference, what
        if entry.is_dir():  # not replaced by the store: removed by hand, then rebuilt
            entry.rmdir()
            wrc.load_bundle(data)
        assert is_hit(wrc.load_bundle(data)), f"{what}: not rebuilt"


def test_a_function_that_fails_to_decode_is_generated_again(cache: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A function's part of the entry is decoded when first used, after the load: one that
    fails then (resealed to name `os.system`, or junk) is generated again from the IR, and
    runs as a cold load's does; the name is never looked up outside the table."""
    import hashlib
    import marshal

    data = bundle_bytes(build())
    reference = run(wrc.load_bundle(data))
    (entry,) = entries(cache)
    good = entry.read_bytes()
    key, value = marshal.loads(good[48:])
    looked_up: list[str] = []
    by_name = load_cache._by_name.__wrapped__
    monkeypatch.setattr(load_cache, "_by_name", lambda name: looked_up.append(name) or by_name(name))
    made = []
    for bad in (marshal.dumps([b"r", "os.system"]), b"junk"):
        functions = value[2][2]  # Entry(facts, analysis, functions): [b"t", [StoredFunction, ...]]
        for f in functions[1]:
            f[2][2] = [b"b", bad]  # StoredFunction(name, arity, data)
        body = marshal.dumps((key, value))
        entry.write_bytes(good[:16] + hashlib.sha256(body).digest() + body)
        b = wrc.load_bundle(data)
        assert is_hit(b)
        assert run(b) == reference
        assert "module" in vars(b.model)  # decoded for the functions generated again
        made.append(set(b._compiled._fns))  # noqa: SLF001 - the functions run
    assert looked_up.count("os.system") == len(made[0]) > 3  # once per function run, refused
    assert {n for n in looked_up if not n.startswith("numpy.")} == {"os.system"}


def test_a_tampered_ir_misses_the_cache_and_is_validated(cache: Path) -> None:
    """A bundle whose IR differs from a cached one is decoded and verified as always."""
    from test_security_hardening import ARGUMENT_WRITES, build, tampered

    good = bundle_bytes(build())
    wrc.load_bundle(good)
    assert is_hit(wrc.load_bundle(good))
    for anchor, insert, name in ARGUMENT_WRITES.values():
        with pytest.raises(BundleFormatError, match=f"writes its input {name!r}"):
            wrc.load_bundle(bundle_bytes(tampered(build(), anchor, insert)))
    assert len(entries(cache)) == 1


def test_a_tampered_header_is_checked_against_the_cached_facts(cache: Path) -> None:
    """Header edits that keep the IR (a hit) fail as on a cold load: test_bundle_format's
    `expect_error` checks every tampered file on `load_bundle` with a warm cache too."""
    import test_bundle_format as tbf

    data = bundle_bytes(tbf.model())
    wrc.load_bundle(data)
    assert is_hit(wrc.load_bundle(data))
    for mutate, message in [(tbf._set("weights.0.name", "const_1_var"), "not a stored constant"),
                            (tbf._set("weights.0.name", "b"), "not a stored constant"),
                            (tbf._set("variables", {}), "header variables [] do not match"),
                            (tbf._set("variables.const_1_var.shape", [3, 4]), "do not match")]:
        with pytest.raises(BundleFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
            wrc.load_bundle(tbf.tampered(mutate))


def test_a_lower_buffer_cap_is_enforced_on_a_hit(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bundle_bytes(build())
    wrc.load_bundle(data)
    monkeypatch.setenv("WRC_MAX_TENSOR_BYTES", "16")
    with pytest.raises(BundleFormatError, match="WRC_MAX_TENSOR_BYTES"):
        wrc.load_bundle(data)


def test_disabled_or_unsafe_caches_are_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bundle_bytes(build())
    monkeypatch.setenv("WRC_CACHE_DIR", "off")
    wrc.load_bundle(data)
    assert not is_hit(wrc.load_bundle(data))
    assert load_cache.cache_dir() is None
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # anyone could plant entries: not a cache of ours
    monkeypatch.setenv("WRC_CACHE_DIR", str(shared))
    wrc.load_bundle(data)
    assert not is_hit(wrc.load_bundle(data)) and not entries(shared)
    afile = tmp_path / "a-file"
    afile.write_text("x")
    monkeypatch.setenv("WRC_CACHE_DIR", str(afile))
    assert not is_hit(wrc.load_bundle(data))
    monkeypatch.setenv("WRC_CACHE_DIR", str(tmp_path / "fresh" / "wrc"))
    wrc.load_bundle(data)
    for path in (tmp_path / "fresh" / "wrc", *(tmp_path / "fresh" / "wrc").iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert is_hit(wrc.load_bundle(data))


def test_default_location_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WRC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert load_cache.cache_dir() == tmp_path / "wrc"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not absolute: ignored (XDG spec)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_cache.cache_dir() == tmp_path / "home" / ".cache" / "wrc"


def test_another_wrc_misses(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key holds a hash of wrc's sources (and Python's, NumPy's, xDSL's versions)."""
    data = bundle_bytes(build())
    wrc.load_bundle(data)
    env = dict(load_cache._environment())
    monkeypatch.setattr(load_cache, "_environment", lambda: {**env, "wrc": "0" * 64})
    assert not is_hit(wrc.load_bundle(data))
    assert len(entries(cache)) == 2


def test_the_key_covers_the_dialects_and_the_passes_wherever_they_lie(monkeypatch: pytest.MonkeyPatch) -> None:
    """A change to a lowering pass changes what a bundle compiles to: its source is in the
    key as wrc's own are, also in a source checkout, where `passes/` and `dialects/` lie
    beside `wrc/` (pyproject's package-dir), not in it."""
    import wrc.dialects
    import wrc.passes
    from wrc.passes import convert_ge_to_linalg

    read: list[Path] = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self) or real(self))
    load_cache._sources_hash()
    assert Path(convert_ge_to_linalg.__file__) in read and Path(wrc.dialects.__file__) in read
    assert Path(wrc.passes.__file__) in read and Path(load_cache.__file__) in read


def test_marshal_reads_only_entries_wrc_wrote(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The only `marshal.loads` of a load reads an entry file of the cache folder, whole:
    never bytes of the bundle."""
    import marshal

    read: list[bytes] = []
    loads = marshal.loads

    def spy(data: bytes) -> object:
        if sys._getframe(1).f_globals["__name__"] == load_cache.__name__:  # (not imports' .pyc)
            read.append(bytes(data))
        return loads(data)

    monkeypatch.setattr(load_cache.marshal, "loads", spy)
    data = bundle_bytes(build())
    wrc.load_bundle(data)
    assert not read  # cold: nothing to read
    b = wrc.load_bundle(data)
    assert is_hit(b)
    (entry,) = entries(cache)
    body = entry.read_bytes()[48:]
    assert read == [body]
    run(b)  # each function run decodes its part of the entry (StoredFunction)
    made = b._compiled._fns  # noqa: SLF001 - the functions run, each decoded once
    assert len(read) == 1 + len(made) > 3 and all(r in body for r in read[1:])


def test_a_hit_makes_each_function_when_first_used(cache: Path) -> None:
    """A load from the cache decodes no generated function; each is made (decoded, its
    code object run) when it is first run or read, and then runs as a cold load's does."""
    data = bundle_bytes(build())
    cold = wrc.load_bundle(data)
    b = wrc.load_bundle(data)
    assert is_hit(b)
    made = b._compiled._fns  # noqa: SLF001 - which functions were made
    assert list(made) == [] and b._compiled.graphs == cold._compiled.graphs
    assert b.source("var_update_graph") == cold.source("var_update_graph")
    assert "var_update_graph" not in made  # its source was decoded, its code not run
    b.init()  # the derive functions and the infer graph run (warm-up), the update graph made ready
    assert set(made) == {INFER_GRAPH, "var_update_graph", *(d.name for d in b._derives)}  # noqa: SLF001
    assert b.infer({"x": X})[0].tobytes() == (cold.init() or cold.infer({"x": X}))[0].tobytes()
    b.update(weights(2))
    cold.update(weights(2))
    assert b.infer({"x": X})[0].tobytes() == cold.infer({"x": X})[0].tobytes()
    assert "var_init_graph" not in made  # never run: it only copies the stored weights


def test_threads_first_running_a_hits_function_agree(cache: Path) -> None:
    import threading

    data = bundle_bytes(build())
    cold = wrc.load_bundle(data)
    cold.init()
    want = cold.infer({"x": X})[0].tobytes()
    for _ in range(3):
        b = wrc.load_bundle(data)
        b.init()
        got: list[bytes] = []
        start = threading.Barrier(4)

        def infer(b: wrc.Bundle = b, got: list[bytes] = got, start: threading.Barrier = start) -> None:
            start.wait()
            got.append(b.infer({"x": X})[0].tobytes())

        threads = [threading.Thread(target=infer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert got == [want] * 4


def test_what_the_cache_cannot_hold_is_not_cached(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated code naming a function outside the table (say a new kernel elsewhere) makes
    the load an uncached one, not a failed one."""
    monkeypatch.setattr(load_cache, "_names", dict)
    data = bundle_bytes(build())
    reference = run(wrc.load_bundle(data))
    assert not entries(cache)
    b = wrc.load_bundle(data)
    assert not is_hit(b) and run(b) == reference
