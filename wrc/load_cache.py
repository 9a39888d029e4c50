"""The load cache: what `load_bundle` derives from a bundle's IR, kept on disk under the IR's
SHA-256 so that a bundle loads without decoding, verifying or compiling its IR again
(docs/bundle-format.md "The load cache").

A load checks the bundle's container (prelude, header, layout, the IR section's SHA-256)
as always, then looks up the entry of its key: the IR section's SHA-256, the bundle's
format version and graphs, the backend and its options, and this wrc (a hash of its
source files), Python, NumPy and xDSL. An entry holds what the first, complete load of
that IR derived and checked:

* the `IRFacts` the header is checked against (stored weights, variables, largest buffer),
* the runtime's `Analysis` (graph signatures and effects, inline constants),
* for the `numpy` backend, each function's generated source, constants and code object.

A hit reads the header and the weights, checks them against the facts, and runs; the
module is decoded (and verified) only if something asks for it (`LazyModelBuffer`).

The cache is written only by wrc, from what it generated itself, never taken from a bundle;
like Python's `__pycache__` it is trusted (its code objects are run): it lives in a
directory of the user's own (`WRC_CACHE_DIR`, else `$XDG_CACHE_HOME/wrc`, else
`~/.cache/wrc`), created 0700, and is not used when another user owns it or may write to
it. `WRC_CACHE_DIR=off` disables it. Entries are written atomically and checked on read
(magic, SHA-256 of the content, the key); anything wrong with the cache makes a load
a cold one, never a failed one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import json
import marshal
import os
import pkgutil
import stat
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

import numpy as np

from wrc.abi import FunctionPlan, Input, Plan, Weight, WeightSignature, Write
from wrc.analysis import Analysis
from wrc.backends import native
from wrc.bundle_format import Container, IRFacts
from wrc.ir_binary import gc_paused

CACHE_VERSION = 1
ENV = "WRC_CACHE_DIR"
"""Where the cache lives; `off` disables it."""
_MAGIC = b"\x89WRC-LOADCACHE\r\n"
_HEAD = struct.Struct("<16s32s")  # magic, sha256 of the body: marshal of (key, entry)
assert len(_MAGIC) == 16


@functools.lru_cache(maxsize=1)
def _dataclasses() -> dict[str, type]:
    """The classes an entry holds, by name (nothing else is ever constructed from one)."""
    from wrc.backends.numpy_jit import GeneratedFunction

    return {c.__name__: c for c in (FunctionPlan, Input, Plan, Weight, WeightSignature, Write,
                                    Analysis, IRFacts, GeneratedFunction, StoredFunction, Entry)}


class _Unencodable(Exception):
    """A value the cache cannot store (the load is then not cached)."""


# --------------------------------------------------------------------------- where


def cache_dir() -> Path | None:
    """The cache directory the environment names, or None when `WRC_CACHE_DIR=off`."""
    value = os.environ.get(ENV, "")
    if value.strip().lower() == "off":
        return None
    if value:
        return Path(value)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "wrc"


def _private(path: Path) -> bool:
    """A directory only this user can write (POSIX; elsewhere: a directory)."""
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        return False
    if hasattr(os, "getuid"):
        return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    return True


def cache_subdir(name: str, create: bool) -> Path | None:
    """The folder `name` of the cache directory, usable (both made 0700 if `create`), or None
    (the cache is off, or a folder is not this user's alone)."""
    base = cache_dir()
    if base is None:
        return None
    path = base / name
    try:
        if create:
            os.makedirs(base, mode=0o700, exist_ok=True)  # (only the last level gets the mode)
            os.makedirs(path, mode=0o700, exist_ok=True)
        return path if _private(base) and _private(path) else None
    except OSError:
        return None


def _entries_dir(create: bool) -> Path | None:
    """The directory of the entries, usable (made 0700 if `create`), or None."""
    return cache_subdir(f"load-v{CACHE_VERSION}", create)


# --------------------------------------------------------------------------- the key


SOURCE_PACKAGES = ("wrc", "wrc.dialects", "wrc.passes")
"""The packages whose sources `_sources_hash` covers."""


def _sources_hash() -> str:
    """SHA-256 over the source files of wrc (code generator, analysis, dialects, the passes
    that lower a graph: each package where it lies, inside `wrc/` or, in a source checkout,
    beside it)."""
    h = hashlib.sha256()
    for name in SOURCE_PACKAGES:
        root = Path(importlib.import_module(name).__file__ or "").parent
        for path in sorted(p for pattern in ("*.py", "*.c") for p in root.rglob(pattern)):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _environment() -> dict[str, str]:
    return {"cache": str(CACHE_VERSION), "wrc": _sources_hash(), "python": sys.version,
            "implementation": sys.implementation.cache_tag or "", "numpy": np.__version__,
            "xdsl": _xdsl_version()}


def _xdsl_version() -> str:
    """xDSL's version, from the name of its dist-info folder beside it when there is one
    (`importlib.metadata` scans every installed package: ~0.2 s, as long as a load)."""
    import xdsl

    found = sorted(p.name for p in Path(xdsl.__file__).parents[1].glob("xdsl-*.dist-info"))
    return found[0] if len(found) == 1 else str(xdsl.__version__)


def backend_id(backend: Any) -> str:
    """A backend and its options, as a key."""
    return f"{backend.name}:{getattr(backend, 'options', None)!r}"


def _key(container: Container, backend: str) -> str:
    return json.dumps({**_environment(), "bundle_version": container.version, "ir_sha256": container.ir_sha256,
                       "graphs": list(container.graphs), "backend": backend,
                       "native": native.enabled()}, sort_keys=True)


def _entry_name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest() + ".wrcc"


# --------------------------------------------------------------------------- values


@functools.lru_cache(maxsize=1)
def _named_modules() -> tuple[ModuleType, ...]:
    """The modules whose functions generated code may name: NumPy and the NumPy backend's."""
    from wrc.backends import numpy_jit

    names = ["wrc.backends.arrays", "wrc.backends.erf",
             *(f"{numpy_jit.__name__}.{m.name}" for m in pkgutil.iter_modules(numpy_jit.__path__)
               if m.name != "target")]  # (wrc-opt's `-t numpy`, not run by generated code)
    return (np, *map(importlib.import_module, names))


def _named(value: Any) -> bool:
    return callable(value) or isinstance(value, ModuleType)


@functools.lru_cache(maxsize=1)
def _names() -> dict[int, str]:
    """id → `module.attribute` of every function and module of `_named_modules()` (the first
    name of each); made when an entry is written."""
    out: dict[int, str] = {id(np): "numpy"}
    for mod in _named_modules():
        for attr, value in vars(mod).items():
            if not attr.startswith("__") and _named(value):
                out.setdefault(id(value), f"{mod.__name__}.{attr}")
    return out


@functools.cache
def _by_name(name: str) -> Any:
    """The function or module `_names` calls `name` (a `KeyError` for any other name)."""
    if name == "numpy":
        return np
    module, _, attr = name.rpartition(".")
    for mod in _named_modules():
        if mod.__name__ == module and not attr.startswith("__"):
            value = vars(mod)[attr]
            if _named(value):
                return value
    raise KeyError(name)


_NATIVE_SCALARS = (type(None), bool, int, float, str)


def _native(v: Any) -> bool:
    """Whether `v` is stored as it is: a scalar, or a tuple, frozenset or dict of such values
    (not a list, not bytes: a list is a tagged value)."""
    t = type(v)
    if t in _NATIVE_SCALARS:
        return True
    if t is tuple or t is frozenset:
        return all(map(_native, v))
    if t is dict:
        return all(map(_native, v.keys())) and all(map(_native, v.values()))
    return False


def _encode(v: Any) -> Any:
    """`v` as values `marshal` writes: a native value (`_native`) as it is, anything else a
    list whose first item is a bytes tag; decoding walks only the lists, so a shape or a
    name costs nothing to decode."""
    t = type(v)
    if _native(v):
        return v
    if t in _SEQUENCES:
        return [_SEQUENCES[t], [_encode(x) for x in v]]
    if t is dict:
        if _native(tuple(v)):  # (names): the keys stored as they are
            return [b"dk", tuple(v), [_encode(x) for x in v.values()]]
        return [b"d", [(_encode(k), _encode(x)) for k, x in v.items()]]
    if isinstance(v, np.dtype):
        return [b"dt", _dtype(v)]
    if isinstance(v, np.generic):
        return [b"sc", _dtype(v.dtype), v.tobytes()]
    if t is np.ndarray:
        return [b"a", _dtype(v.dtype), v.shape, bool(v.flags.writeable), np.ascontiguousarray(v).tobytes()]
    if t is bytes:
        return [b"b", v]
    if t is slice:
        return [b"sl", _encode(v.start), _encode(v.stop), _encode(v.step)]
    if t is CodeType:
        return [b"code", v]
    if _dataclasses().get(t.__name__) is t:
        return [b"dc", t.__name__, [_encode(getattr(v, f.name)) for f in dataclasses.fields(v)]]
    name = _names().get(id(v))
    if name is not None:
        return [b"r", name]
    compiled = native.function_name(v)
    if compiled is None:
        raise _Unencodable(f"{t.__name__} {v!r}"[:200])
    return [b"nat", *compiled]


_SEQUENCES: dict[type, bytes] = {tuple: b"t", list: b"l", frozenset: b"fs"}


def _dtype(d: np.dtype) -> str:
    if d.fields is not None or d.subdtype is not None or d.hasobject:
        raise _Unencodable(f"dtype {d}")
    return d.str


def _decode(v: Any) -> Any:
    """The inverse of `_encode` (malformed input raises; the caller treats it as a miss)."""
    if type(v) is not list:
        return v
    return _DECODERS[v[0]](v)


def _decode_all(items: Any) -> list[Any]:
    return [x if type(x) is not list else _DECODERS[x[0]](x) for x in items]


def _dataclass(v: list[Any]) -> Any:
    """A dataclass of `_dataclasses()` with its stored fields, set as `__init__` would set
    them (none of these classes computes or checks anything there) at a fraction of the
    cost of a frozen dataclass's `__init__`."""
    cls, names = _fields()[v[1]]
    values = _decode_all(v[2])
    if len(values) != len(names):
        raise ValueError(f"{v[1]}: {len(values)} fields stored, {len(names)} expected")
    obj = object.__new__(cls)
    obj.__dict__.update(zip(names, values))
    return obj


@functools.lru_cache(maxsize=1)
def _fields() -> dict[str, tuple[type, tuple[str, ...]]]:
    return {name: (c, tuple(f.name for f in dataclasses.fields(c))) for name, c in _dataclasses().items()}


@functools.cache
def _np_dtype(text: str) -> np.dtype:
    return np.dtype(text)


def _array(v: list[Any]) -> np.ndarray:
    a = np.frombuffer(v[4], _np_dtype(v[1])).reshape(v[2]).copy()
    a.flags.writeable = v[3]
    return a


def _exact(kind: type) -> Callable[[list[Any]], Any]:
    def read(v: list[Any]) -> Any:
        if type(v[1]) is not kind:
            raise ValueError(f"a {type(v[1]).__name__} tagged {v[0]!r}")
        return v[1]
    return read


_DECODERS: dict[bytes, Callable[[Any], Any]] = {
    b"t": lambda v: tuple(_decode_all(v[1])),
    b"l": lambda v: _decode_all(v[1]),
    b"fs": lambda v: frozenset(_decode_all(v[1])),
    b"d": lambda v: {_decode(k): _decode(x) for k, x in v[1]},
    b"dk": lambda v: dict(zip(v[1], _decode_all(v[2]), strict=True)),
    b"dc": _dataclass,
    b"dt": lambda v: _np_dtype(v[1]),
    b"sc": lambda v: np.frombuffer(v[2], _np_dtype(v[1]))[0],
    b"a": _array,
    b"sl": lambda v: slice(*_decode_all(v[1:])),
    b"b": _exact(bytes),
    b"code": _exact(CodeType),
    b"r": lambda v: _by_name(v[1]),
    b"nat": lambda v: native.function(v[1], v[2]),  # a KeyError where it cannot be built here: a miss
}
"""Each tag's decoder; an unknown tag is a `KeyError`."""


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class StoredFunction:
    """A generated function as an entry holds it: its name and arity, and the rest (source,
    constants, code object) as an encoded value of its own, decoded only when the function
    is first run or read (`numpy_jit.NumpyCompiledModule`): a load decodes what it runs.
    The entry's SHA-256 was checked when it was read."""

    name: str
    arity: int
    data: bytes  # marshal of the encoded numpy_jit.GeneratedFunction

    def load(self) -> Any:
        f = _decode(marshal.loads(self.data))
        if type(f) is not _dataclasses()["GeneratedFunction"] or (f.name, f.arity) != (self.name, self.arity):
            raise ValueError(f"load cache: function {self.name!r} does not match its entry")
        return f


def _stored(f: Any) -> StoredFunction:
    return StoredFunction(f.name, f.arity, marshal.dumps(_encode(f)))


@dataclass(frozen=True)
class Entry:
    """What a complete load of an IR derived (see the module docstring)."""

    facts: IRFacts
    analysis: Analysis
    functions: tuple[StoredFunction, ...] | None  # for the numpy backend

    def compiled(self, backend: Any, module_of: Callable[[], Any]) -> Any:
        """The backend's compiled module made from the entry's functions (None: none kept);
        `module_of()`: the IR's module, from which a function whose part of the entry fails
        to decode is generated again (a cache problem never fails a load, nor a run)."""
        if self.functions is None:
            return None
        from wrc.backends.numpy_jit import NumpyCompiledModule

        return NumpyCompiledModule(None, options=backend.options, functions=self.functions, module_of=module_of)


def lookup(container: Container, backend: Any) -> Entry | None:
    """The entry of this bundle's IR for `backend`, or None (no cache, no entry, or an
    entry that is unreadable, corrupt or another key's)."""
    directory = _entries_dir(create=False)
    if directory is None:
        return None
    try:
        key = _key(container, backend_id(backend))
        with open(directory / _entry_name(key), "rb") as f:
            data = f.read()
        magic, digest = _HEAD.unpack_from(data)
        body = memoryview(data)[_HEAD.size :]
        if magic != _MAGIC or hashlib.sha256(body).digest() != digest:
            return None
        with gc_paused():  # thousands of small objects, little garbage
            stored_key, value = marshal.loads(body)
            if stored_key != key:
                return None
            entry = _decode(value)
        return entry if type(entry) is Entry else None
    except Exception:  # a cache problem is never the load's: load cold instead
        return None


def store(container: Container, backend: Any, entry: Callable[[], Entry]) -> None:
    """Write the entry `entry()` of this bundle's IR for `backend` (atomically; silently not
    when the cache is off or unusable, or the entry holds something it cannot store)."""
    directory = _entries_dir(create=True)
    if directory is None:
        return
    try:
        key = _key(container, backend_id(backend))
        body = marshal.dumps((key, _encode(entry())))
    except Exception:  # e.g. a constant of a new kind (_Unencodable): this load is not cached
        return
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(_HEAD.pack(_MAGIC, hashlib.sha256(body).digest()) + body)
        os.replace(tmp, directory / _entry_name(key))
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def entry_for(facts: IRFacts, analysis: Analysis, compiled: Any) -> Entry:
    """The entry of a complete load: its facts, analysis and, when the backend generated
    host code (`numpy`), its functions."""
    from wrc.backends.arrays import NUMPY
    from wrc.backends.numpy_jit import NumpyCompiledModule

    cacheable = type(compiled) is NumpyCompiledModule and compiled.arrays is NUMPY
    return Entry(facts, analysis, tuple(map(_stored, compiled.functions)) if cacheable else None)
