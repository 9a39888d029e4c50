"""The bundle file format, version 2 (specified in docs/bundle-format.md).

    prelude (56 B) | header (UTF-8 JSON) | IR section | weight sections (64-byte aligned)

The IR section is binary IR (`wrc.ir_binary`) in version 2 and the printed module in
version 1, which is still read (and written on request, for older readers).

The writer streams sections straight from the arrays (nothing builds the whole file in
memory) and replaces the target atomically. The reader never executes anything taken from
the file, validates every size, offset and checksum before it allocates or parses, and turns
every failure into `BundleFormatError`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
import re
import stat
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from xdsl.dialects.builtin import MemRefType, ModuleOp, ShapedType, TensorType, VectorType
from xdsl.dialects.linalg.ops import GenericOp, YieldOp
from xdsl.dialects.memref import GlobalOp
from xdsl.ir import Attribute, Operation

from wrc import ir_verify
from wrc.abi import (
    element_dtype,
    global_spec,
    is_variable,
    module_funcs,
    module_globals,
    stored_weight_names,
)
from wrc.context import make_context
from wrc.dtypes import SUPPORTED_DTYPES
from wrc.errors import BundleFormatError, WrcError
from wrc.files import open_regular
from wrc.ir_binary import decode_module, encode_module, gc_paused
from wrc.ir_read import first_base, walk
from wrc.ir_text import parse_module
from wrc.model_buffer import LazyModelBuffer, ModelBuffer, c_array

MAGIC = b"\x89WRC\r\n\x1a\n"
"""PNG-style: a high byte (catches 7-bit transfers), CRLF and ^Z/LF (catch newline mangling)."""

FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
TEXT_IR_VERSION = 1
"""The last version whose IR section is text (xDSL's printed module)."""
ALIGN = 64
assert len(MAGIC) == 8
_PRELUDE = struct.Struct("<8sIIQ32s")  # magic, version, flags, header nbytes, sha256(header)
PRELUDE_SIZE = _PRELUDE.size  # 56

MAX_HEADER_BYTES = 64 << 20
MAX_RANK = 32
MAX_INLINE_ELEMENTS = 1 << 24
"""Inline `dense<...>` constants are for small tensors; the cap stops a tampered splat such as
`dense<0.0> : tensor<99999999999xf32>` from making the IR parser allocate its expansion."""
MAX_IR_BYTES = 256 << 20
"""The IR holds no weight bytes (only small inline constants), so real IR sections are far
smaller; the cap bounds the time and memory xDSL's parser can be made to spend."""
MAX_IR_NESTING = 64
"""Deepest `{ ( [ <` nesting the IR may have (wrc's own IR needs about 10). xDSL's parser
recurses several frames per level and hit Python's recursion limit from about 97 nested
`{`: the cap keeps every nesting the check admits parseable, with room for the caller's
stack (tests/test_security_fuzz.py checks each bracket at the cap)."""
MAX_TENSOR_BYTES = 1 << 34
"""Largest buffer (variable, constant, intermediate or argument) a bundle may declare: 16 GiB.
Variables and intermediates have no bytes in the file, so without a cap a 100-byte IR edit
could make the runtime allocate a terabyte. `WRC_MAX_TENSOR_BYTES` (bytes) overrides it."""

DTYPES = frozenset(d.name for d in SUPPORTED_DTYPES)
"""Weight dtypes a bundle may declare (stored little-endian)."""


def _le(dtype: np.dtype) -> np.dtype:
    return np.dtype(dtype).newbyteorder("<")


def _fail(message: str) -> BundleFormatError:
    return BundleFormatError(f"bundle: {message}")


def max_tensor_bytes() -> int:
    """`MAX_TENSOR_BYTES`, or the `WRC_MAX_TENSOR_BYTES` environment variable when set."""
    value = os.environ.get("WRC_MAX_TENSOR_BYTES", "")
    return int(value) if value.isdigit() else MAX_TENSOR_BYTES


@functools.lru_cache(maxsize=64)
def dtype_name(dtype: np.dtype) -> str:
    """`dtype.name`, which NumPy derives anew on each read (~10 µs: a bundle's header and checks
    read it for every weight)."""
    return dtype.name


def _buffer_bytes(t: Attribute) -> int:
    """Bytes of a static shaped type (elements of unknown width count 8 bytes); 0 otherwise."""
    if not isinstance(t, MemRefType | TensorType | VectorType):
        return 0
    shape = t.get_shape()
    if any(d < 0 for d in shape):
        return 0
    dtype = element_dtype(t.get_element_type())
    return math.prod(shape) * (dtype.itemsize if dtype is not None else 8)


def _buffers(module: ModuleOp) -> Iterator[tuple[Operation, str, Attribute, int]]:
    """(op, "result" | "global" | "argument", type, bytes) of every buffer `module` declares:
    op results, globals, block arguments, in walk order."""
    size = _Sizes()
    for op in walk(module):
        yield from _op_buffers(op, size)


class _Sizes(dict[int, int]):
    """id(type) -> bytes: a module shares few type objects among many values (each `t` stays
    alive in the module meanwhile)."""

    def __call__(self, t: Attribute) -> int:
        known = self.get(id(t))
        if known is None:
            known = self[id(t)] = _buffer_bytes(t)
        return known


def _fit(op: Operation, is_global: bool, fits: set[int], size: _Sizes, limit: int) -> bool:
    """Every buffer `op` declares is within `limit` bytes (`_op_buffers`' types, read without
    a generator: this runs for every op; `fits` holds the ids of types known to fit)."""
    types = [r.type for r in op.results]
    if is_global:
        types.append(op.type)
    for region in op.regions:
        for block in region.blocks:
            types += block.arg_types
    for t in types:
        if id(t) not in fits:
            if size(t) > limit:
                return False
            fits.add(id(t))
    return True


def _op_buffers(op: Operation, size: _Sizes) -> Iterator[tuple[Operation, str, Attribute, int]]:
    for r in op.results:
        yield op, "result", r.type, size(r.type)
    if isinstance(op, GlobalOp):
        yield op, "global", op.type, size(op.type)
    for region in op.regions:
        for block in region.blocks:
            for a in block.args:
                yield op, "argument", a.type, size(a.type)


# --------------------------------------------------------------------------- model checks


def check_model(model: ModelBuffer) -> None:
    """The invariants of a bundle, checked before writing and after reading.

    Graphs exist as functions; every global has a static shape and a supported dtype;
    `weights` holds exactly the stored constants, each with the global's shape and dtype.
    """
    if not isinstance(model.module, ModuleOp):
        raise _fail(f"module must be a ModuleOp, got {type(model.module).__name__}")
    _check_ir(model.module, model.graphs, model.weights)
    expected = stored_weight_names(model.module)
    globals_ = module_globals(model.module)
    for name in expected:
        value = model.weights[name]
        spec = global_spec(globals_[name])
        assert spec is not None  # checked above
        if not isinstance(value, np.ndarray):
            raise _fail(f"weight {name!r} is a {type(value).__name__}, not a numpy array")
        if value.shape != spec[0] or dtype_name(value.dtype) != dtype_name(spec[1]):
            raise _fail(f"weight {name!r} is {value.dtype.name}{list(value.shape)} but the IR "
                        f"declares {spec[1].name}{list(spec[0])}")


def _check_ir(module: ModuleOp, graphs: Sequence[str], weight_names: Iterable[str]) -> None:
    """Graphs are functions, globals have static shapes and supported dtypes, generic bodies
    match their operands, `weight_names` are exactly the stored constants, and no buffer is
    larger than `max_tensor_bytes()`: checked in that order (one walk finds the bodies' and the
    buffers' faults)."""
    funcs = module_funcs(module)
    if len(set(graphs)) != len(graphs):
        raise _fail(f"graph names are not unique: {list(graphs)}")
    for g in graphs:
        if g not in funcs:
            raise _fail(f"graph {g!r} is not a function of the IR (functions: {sorted(funcs)})")
    for name, op in module_globals(module).items():
        if global_spec(op) is None:
            raise _fail(f"global {name!r} has type {op.type}: a bundle needs static shapes and one "
                        f"of the dtypes {sorted(DTYPES)}")
    oversized = _check_ops(module)
    expected, names = stored_weight_names(module), list(weight_names)
    expected_set, names_set = set(expected), set(names)
    missing = [n for n in expected if n not in names_set]
    extra = [n for n in names if n not in expected_set]
    if missing or extra:
        raise _fail(f"weights do not match the IR's stored constants (missing: {missing}, "
                    f"not constants of the IR: {extra})")
    if oversized is not None:
        raise oversized


def _check_ops(module: ModuleOp) -> BundleFormatError | None:
    """Raises for the first `linalg.generic` whose body does not take and yield the element
    types of its operands, which xDSL 0.74 does not verify (the fuzzer made one yield a whole
    buffer, a crash at run time); returns the error of the first global, argument or op result
    larger than `max_tensor_bytes()` (nothing is allocated here: types only), or None."""
    limit, size = max_tensor_bytes(), _Sizes()
    oversized = None
    fits: set[int] = set()  # ids of the types seen within the limit (each stays alive in the module)
    elements: dict[int, Attribute] = {}  # id(operand type) → its element type
    for op in walk(module):
        kind = first_base(type(op), (GlobalOp, GenericOp))
        is_global, is_generic = kind is GlobalOp, kind is GenericOp
        # (types first: only a type not seen before may be oversized; then the buffer at fault)
        if oversized is None and not _fit(op, is_global, fits, size, limit):
            for _, kind, t, nbytes in _op_buffers(op, size):
                if nbytes > limit:
                    # (a memref.global has no results, regions or arguments: its one buffer is itself)
                    what = f"global @{op.sym_name.data[:200]}" if isinstance(op, GlobalOp) else f"{kind} of {op.name}"
                    oversized = _fail(f"{what} is {t} ({nbytes} bytes), more than the "
                                      f"{limit}-byte limit per buffer (WRC_MAX_TENSOR_BYTES)")
                    break
        if not is_generic:
            continue
        want = [_element(v.type, elements) for v in op.operands]
        blocks = list(op.body.blocks)
        term = blocks[0].last_op if len(blocks) == 1 else None
        takes = list(blocks[0].arg_types) if len(blocks) == 1 else None
        yields = [v.type for v in term.operands] if isinstance(term, YieldOp) else None
        if takes != want or yields != want[len(op.inputs):]:  # types compare as values
            takes = [str(t) for t in takes] if takes is not None else "not one block"
            yields = [str(t) for t in yields] if yields is not None else "no linalg.yield"
            want = [str(t) for t in want]
            raise _fail(f"a linalg.generic's body takes {takes} and yields {yields}, but its "
                        f"operands' element types are {want} (the last {len(op.outputs)} yielded)")
    return oversized


def _element(t: Attribute, known: dict[int, Attribute]) -> Attribute:
    """A shaped type's element type, else the type (`known`: by the type's id; each type
    stays alive in the module meanwhile)."""
    e = known.get(id(t))
    if e is None:
        e = known[id(t)] = t.get_element_type() if isinstance(t, ShapedType) else t
    return e


def _variables(module: ModuleOp) -> dict[str, dict[str, Any]]:
    out = {}
    for name, op in module_globals(module).items():
        spec = global_spec(op)
        if is_variable(op) and spec is not None:
            out[name] = {"shape": list(spec[0]), "dtype": dtype_name(spec[1])}
    return out


# --------------------------------------------------------------------------- writing


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _producer() -> dict[str, str]:
    from importlib import metadata

    info = {"name": "wrc"}
    for dist in ("wrc", "xdsl"):
        try:
            info[dist if dist != "wrc" else "version"] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return info


@dataclass
class _Plan:
    version: int
    header: bytes
    data_start: int
    sections: list[tuple[int, Any]]  # (offset, buffer) in file order


def _plan(model: ModelBuffer, version: int = FORMAT_VERSION, digests: bool = True) -> _Plan:
    """Lay the file out: hashes every section once (unless not `digests`: then the header has
    placeholders of the same length), copies no weight (unless byte-swapped)."""
    if version not in SUPPORTED_VERSIONS:
        raise _fail(f"cannot write format version {version}: this wrc writes version(s) "
                    f"{', '.join(map(str, SUPPORTED_VERSIONS))}")
    with gc_paused():  # walking and encoding a large module allocates much and frees little
        check_model(model)
        ir = str(model.module).encode("utf-8") if version == TEXT_IR_VERSION else encode_module(model.module)
    blobs: list[tuple[str, np.ndarray, np.ndarray]] = []  # name, array, its bytes as uint8
    for name in stored_weight_names(model.module):
        a = c_array(model.weights[name], _le(model.weights[name].dtype))
        blobs.append((name, a, a.reshape(-1).view(np.uint8)))
    if digests:
        hashes = [hashlib.sha256(ir).hexdigest()] + [hashlib.sha256(b).hexdigest() for _, _, b in blobs]
    else:
        hashes = ["0" * 64] * (1 + len(blobs))

    def header_for(data_start: int) -> tuple[bytes, list[int], int]:
        offsets, pos = [], data_start
        for size in [len(ir)] + [b.nbytes for _, _, b in blobs]:
            pos = _align(pos)
            offsets.append(pos)
            pos += size
        doc = {
            "producer": _producer(),
            "graphs": list(model.graphs),
            "ir": {"offset": offsets[0], "nbytes": len(ir), "sha256": hashes[0]},
            "weights": [
                {"name": name, "dtype": dtype_name(a.dtype), "shape": list(a.shape),
                 "offset": off, "nbytes": b.nbytes, "sha256": h}
                for (name, a, b), off, h in zip(blobs, offsets[1:], hashes[1:], strict=True)
            ],
            "variables": _variables(model.module),
            "file_size": pos,
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return text.encode("ascii"), offsets, pos

    # Offsets are printed in the header, so its length moves them: iterate to a fixed point
    # (offsets only grow, so this settles after a step or two).
    data_start = _align(PRELUDE_SIZE)
    for _ in range(16):
        header, offsets, _size = header_for(data_start)
        if _align(PRELUDE_SIZE + len(header)) == data_start:
            break
        data_start = _align(PRELUDE_SIZE + len(header))
    else:  # pragma: no cover - offsets grow monotonically, so this cannot happen
        raise WrcError("bundle: header layout did not converge")
    return _Plan(version, header, data_start, list(zip(offsets, [ir] + [b for _, _, b in blobs], strict=True)))


def _write_plan(f: BinaryIO, plan: _Plan) -> None:
    f.write(_PRELUDE.pack(MAGIC, plan.version, 0, len(plan.header),
                          hashlib.sha256(plan.header).digest()))
    f.write(plan.header)
    pos = PRELUDE_SIZE + len(plan.header)
    for offset, buf in plan.sections:
        f.write(b"\0" * (offset - pos))
        f.write(buf)
        pos = offset + memoryview(buf).nbytes


def bundle_bytes(model: ModelBuffer, version: int = FORMAT_VERSION) -> bytes:
    """The bundle file as bytes (for small models, tests and `load_bundle(bytes)`); `version`
    1 writes the text IR section that wrc before format version 2 reads."""
    out = io.BytesIO()
    _write_plan(out, _plan(model, version))
    return out.getvalue()


def bundle_size(model: ModelBuffer) -> int:
    """The size in bytes of the bundle file of `model`, computed from its layout: no weight
    is hashed or written."""
    offset, last = _plan(model, digests=False).sections[-1]
    return offset + memoryview(last).nbytes


TEMP_SUFFIX = ".wrctmp"
"""Temporary files of a save are `.<target name>.<writer pid>.<random>.wrctmp` in the target's
folder: recognizable, so that the next save of the same target removes those a killed writer
left behind (see `_remove_stale_temps`)."""


def write_bundle(path: str | os.PathLike[str], model: ModelBuffer) -> None:
    """Write `model` to `path` crash-safely: the target is the old file or the new one, whole.

    Writes a unique temporary file in the target's folder, fsyncs it, renames it over the
    target and fsyncs the folder. On any error the temporary file is removed and the old
    target is left as it was; temporary files of earlier saves that were killed are removed.
    Model errors raise `BundleFormatError`, I/O errors `OSError`.
    """
    plan = _plan(model)  # validate the model before touching the disk
    target = os.path.abspath(os.fspath(path))
    folder, base = os.path.split(target)
    try:  # keep an existing file's permissions; new files get the usual 0644
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = 0o644
    _remove_stale_temps(folder, base)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{base}.{os.getpid()}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_plan(f, plan)
            f.flush()
            if hasattr(os, "fchmod"):  # POSIX only
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def _remove_stale_temps(folder: str, base: str) -> None:
    """Remove temporary files of saves of `base` whose writing process no longer exists.

    A SIGKILLed save cannot clean up after itself; its file never replaced the target, so
    it is garbage. Files of live writers (another process or thread saving the same target
    right now) are left alone. The check is by process id, so it is skipped where it cannot
    be made safely (not POSIX) or is meaningless (a folder shared between hosts: a file of
    another host's writer whose pid is free here would be removed; its rename then fails
    with `FileNotFoundError` and that save must be retried).
    """
    if os.name != "posix":
        return
    prefix = f".{base}."
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(TEMP_SUFFIX)):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or _process_exists(int(pid)):
            continue
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass  # another save removed it first, or no permission: harmless either way


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: an existence check, nothing is sent (POSIX)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def _fsync_dir(folder: str) -> None:
    """Make the rename durable (POSIX); folders cannot be opened for fsync on some systems."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# --------------------------------------------------------------------------- reading


class _Source:
    """Random access to the bundle's bytes: an in-memory buffer or an open file."""

    def __init__(self, data: bytes | None = None, file: BinaryIO | None = None) -> None:
        self.data, self.file = data, file
        self.size = len(data) if data is not None else os.fstat(file.fileno()).st_size  # type: ignore[union-attr]

    def read(self, offset: int, n: int, what: str) -> bytes:
        if self.data is not None:
            out = self.data[offset : offset + n]
        else:
            assert self.file is not None
            self.file.seek(offset)
            out = self.file.read(n)
        if len(out) != n:
            raise _fail(f"{what}: file truncated at offset {offset + len(out)} (wanted {n} bytes "
                        f"at offset {offset})")
        return out

    def read_array(self, offset: int, nbytes: int, what: str) -> np.ndarray:
        """`nbytes` at `offset` as a read-only uint8 array (a view of in-memory data)."""
        if self.data is not None:
            buf = np.frombuffer(self.data, np.uint8, nbytes, offset) if nbytes else np.empty(0, np.uint8)
        else:
            assert self.file is not None
            buf = np.empty(nbytes, np.uint8)
            self.file.seek(offset)
            view, got = memoryview(buf), 0
            while got < nbytes:
                n = self.file.readinto(view[got:])
                if not n:
                    raise _fail(f"{what}: file truncated at offset {offset + got}")
                got += n
        buf.flags.writeable = False
        return buf


@contextmanager
def _open(source: Any) -> Iterator[_Source]:
    if isinstance(source, bytes | bytearray | memoryview):
        # Copy mutable buffers: the weights are views of these bytes and must not change.
        yield _Source(data=source if isinstance(source, bytes) else bytes(source))
        return
    if not isinstance(source, str | os.PathLike):
        raise _fail(f"expected a path or bytes, got {type(source).__name__}")
    try:
        f = open_regular(source)  # a FIFO or device would block or never end
    except OSError as e:
        raise _fail(f"cannot open {os.fspath(source)!r}: {e.strerror or e}") from e
    try:
        yield _Source(file=f)
    except OSError as e:
        raise _fail(f"cannot read {os.fspath(source)!r}: {e.strerror or e}") from e
    finally:
        f.close()


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _bad_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise _fail(f"header: {where} has no {key!r}")
    value = obj[key]
    # bool is an int in Python; JSON true/false is never a valid size or offset.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _fail(f"header: {where}.{key} must be {getattr(kind, '__name__', kind)}, "
                    f"got {type(value).__name__}")
    return value


def _uint(obj: Any, key: str, where: str) -> int:
    value = _field(obj, key, int, where)
    if value < 0 or value >= 1 << 63:
        raise _fail(f"header: {where}.{key} = {value} is out of range")
    return value


def _digest(obj: Any, where: str) -> str:
    value = _field(obj, "sha256", str, where)
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise _fail(f"header: {where}.sha256 is not a hex sha256 digest")
    return value


def _shape(obj: Any, where: str) -> tuple[int, ...]:
    dims = _field(obj, "shape", list, where)
    if len(dims) > MAX_RANK or not all(type(d) is int and 0 <= d < 1 << 63 for d in dims):
        raise _fail(f"header: {where}.shape must be at most {MAX_RANK} integers >= 0, got "
                    f"{str(dims)[:200]}")
    return tuple(dims)


def _dtype(obj: Any, where: str) -> np.dtype:
    name = _field(obj, "dtype", str, where)
    if name not in DTYPES:
        raise _fail(f"header: {where}.dtype {name[:50]!r} is not one of {sorted(DTYPES)}")
    return _le(np.dtype(name))


@dataclass(frozen=True)
class _Section:
    what: str
    offset: int
    nbytes: int
    sha256: str


@dataclass(frozen=True)
class _WeightEntry:
    section: _Section
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates,
                         parse_constant=_bad_constant)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError too
        raise _fail(f"header (offset {PRELUDE_SIZE}) is not valid UTF-8 JSON: {str(e)[:200]}") from None
    if not isinstance(doc, dict):
        raise _fail("header must be a JSON object")
    return doc


def _weight_entries(doc: dict[str, Any]) -> list[_WeightEntry]:
    out, seen = [], set()
    for i, w in enumerate(_field(doc, "weights", list, "header")):
        where = f"weights[{i}]"
        name = _field(w, "name", str, where)
        if not name or name in seen:
            raise _fail(f"header: {where}.name {name!r} is empty or duplicated")
        seen.add(name)
        where = f"weight {name!r}"
        dtype, shape = _dtype(w, where), _shape(w, where)
        nbytes = _uint(w, "nbytes", where)
        # Checked without forming a possibly enormous product: stop once past nbytes.
        size = 0 if 0 in shape else dtype.itemsize
        for i, d in enumerate(shape):
            size *= d
            if size > nbytes and i + 1 < len(shape):
                raise _fail(f"{where}: shape {list(shape)} of {dtype.name} needs more than the "
                            f"{nbytes} bytes declared (nbytes)")
        if size != nbytes:
            raise _fail(f"{where}: shape {list(shape)} of {dtype.name} needs {size} bytes but "
                        f"nbytes is {nbytes}")
        section = _Section(where, _uint(w, "offset", where), nbytes, _digest(w, where))
        out.append(_WeightEntry(section, name, dtype, shape))
    return out


def _check_layout(src: _Source, data_start: int, sections: list[_Section]) -> None:
    """Sections are aligned, inside the file, disjoint, and separated only by zero padding.

    With the prelude and the checksummed header, that accounts for every byte of the file.
    """
    for s in sections:
        if s.offset + s.nbytes > src.size:
            raise _fail(f"{s.what}: bytes {s.offset}..{s.offset + s.nbytes} lie past the end of "
                        f"the file ({src.size} bytes)")
        if s.offset % ALIGN:
            raise _fail(f"{s.what}: offset {s.offset} is not {ALIGN}-byte aligned")
    pos = data_start
    for s in sorted(sections, key=lambda s: (s.offset, s.nbytes)):
        if s.offset < pos:
            raise _fail(f"{s.what}: bytes {s.offset}..{s.offset + s.nbytes} overlap the header or "
                        f"another section (which end at {pos})")
        if s.offset - pos >= ALIGN:
            raise _fail(f"{s.what}: {s.offset - pos} unexplained bytes before offset {s.offset}")
        if any(src.read(pos, s.offset - pos, "padding")):
            raise _fail(f"padding before {s.what} (offset {pos}) is not zero")
        pos = s.offset + s.nbytes
    if pos != src.size:
        raise _fail(f"{src.size - pos} unexplained bytes after offset {pos} (end of the last section)")


def _check_sha(data: Any, section: _Section) -> None:
    if hashlib.sha256(data).hexdigest() != section.sha256:
        raise _fail(f"{section.what} (offset {section.offset}, {section.nbytes} bytes): "
                    f"sha256 mismatch (corrupted or tampered)")


_IR_TOKENS = re.compile(
    # A string literal (names may hold anything), matched to its end of line when unclosed so
    # that no match ever fails after its quote: one pass, linear time.
    rb'"(?:[^"\\\n]|\\[^\n])*(?:"|\\?(?=\n)|\\?\Z)'
    rb"|->"  # not a closing `>`
    rb"|[{(\[<})\]>]"
    # An inline constant's element count, looked ahead at (its brackets are counted too).
    # `[^<>]*`, not `[^>]*`: keeps the scan linear on text like "dense<dense<dense<...".
    rb"|(?=dense<[^<>]*>\s*:\s*(?:tensor|vector|memref)<([0-9x]*))"
)


def parse_ir(text: str, name: str = "<bundle IR>") -> ModuleOp:
    """Parse a level-3 module printed by `str(module)` (not verified) with `wrc.ir_text`'s
    parser: linear-time on hostile text, and any name round-trips."""
    return parse_module(make_context(), text, name)


def _check_ir_text(raw: bytes, section: _Section) -> None:
    """Bounds on what the parser is given, checked on the bytes in one linear pass: no inline
    constant over `MAX_INLINE_ELEMENTS`, no nesting deeper than `MAX_IR_NESTING`."""
    depth = 0
    for m in _IR_TOKENS.finditer(raw):
        token, dims = m.group(), m.group(1)
        if dims is not None:
            count = math.prod(int(d) for d in dims.split(b"x") if d)
            if count > MAX_INLINE_ELEMENTS:
                raise _fail(f"IR section: inline constant at offset {section.offset + m.start()} "
                            f"has {count} elements (more than {MAX_INLINE_ELEMENTS})")
        elif token in (b"{", b"(", b"[", b"<"):
            depth += 1
            if depth > MAX_IR_NESTING:
                raise _fail(f"IR section: nesting deeper than {MAX_IR_NESTING} levels at offset "
                            f"{section.offset + m.start()}")
        elif token in (b"}", b")", b"]", b">"):
            depth = max(depth - 1, 0)  # unbalanced text is the parser's to report


def _parse_ir(raw: bytes, section: _Section, version: int) -> ModuleOp:
    if version == TEXT_IR_VERSION:
        _check_ir_text(raw, section)
    else:  # binary IR: raises its own errors, naming the byte at fault
        module = decode_module(raw, make_context(), MAX_INLINE_ELEMENTS, section.offset)
    try:
        with gc_paused():
            if version == TEXT_IR_VERSION:
                module = parse_ir(raw.decode("utf-8"))
            # xDSL's checks, each op signature's IRDL constraints once, the structure binary
            # IR's decoder guarantees not checked again
            ir_verify.verify(module, decoded=version != TEXT_IR_VERSION)
    except Exception as e:  # any xDSL failure on untrusted IR is a format error
        raise _fail(f"IR section (offset {section.offset}) does not parse and verify: "
                    f"{type(e).__name__}: {str(e)[:2000]}") from None
    return module


def read_bundle(source: str | os.PathLike[str] | bytes) -> ModelBuffer:
    """Read and validate a bundle file (a path) or its bytes. Never executes file content.

    Every problem raises `BundleFormatError` naming the section, offset or weight.
    """
    with open_bundle(source) as c:
        return c.model(c.module())


@contextmanager
def open_bundle(source: str | os.PathLike[str] | bytes) -> Iterator[Container]:
    """A bundle whose prelude, header, layout and IR checksum are checked, its IR not yet
    decoded: `c.model(c.module())` reads it as `read_bundle` does; `c.model_known(facts)`
    skips the IR when the load cache (`wrc.load_cache`) knows it by its SHA-256."""
    with _open(source) as src:
        yield _read_container(src)


@dataclass(frozen=True)
class IRFacts:
    """What a header is checked against, derived from its verified IR: the load cache keeps
    them so that a bundle whose IR it knows is checked without decoding the IR."""

    stored: Mapping[str, tuple[tuple[int, ...], str, str]]  # stored constant → shape, dtype, type
    variables: Mapping[str, Any]  # as the header's "variables" says them
    largest_buffer: int  # bytes of the IR's largest buffer (checked against max_tensor_bytes())


def ir_facts(module: ModuleOp) -> IRFacts:
    """The `IRFacts` of a verified module."""
    globals_ = module_globals(module)
    stored = {}
    for name in stored_weight_names(module):
        spec = global_spec(globals_[name])
        assert spec is not None  # checked by _check_ir
        stored[name] = (spec[0], dtype_name(spec[1]), str(globals_[name].type))
    largest = max((size for _, _, _, size in _buffers(module)), default=0)
    return IRFacts(stored, _variables(module), largest)


@dataclass(frozen=True)
class Container:
    """A bundle's checked container (`open_bundle`): its IR section is checksummed on first
    use (reading weights again, `StoredWeights`, needs only the header), not decoded."""

    src: _Source
    version: int
    graphs: tuple[str, ...]
    ir: _Section
    weights: list[_WeightEntry]
    variables: dict[str, Any]
    header_sha256: bytes  # the prelude's digest of the header, which covers every weight's own

    @functools.cached_property
    def raw_ir(self) -> bytes:
        """The IR section's bytes, checked against its SHA-256 (while the container is open)."""
        raw = self.src.read(self.ir.offset, self.ir.nbytes, self.ir.what)
        _check_sha(raw, self.ir)
        return raw

    @property
    def ir_sha256(self) -> str:
        """The IR section's SHA-256 (hex), checked against its bytes."""
        self.raw_ir  # noqa: B018 (reads and checks the section)
        return self.ir.sha256

    def module(self) -> ModuleOp:
        """The IR, decoded (or parsed) and verified."""
        return _parse_ir(self.raw_ir, self.ir, self.version)

    def model(self, module: ModuleOp) -> ModelBuffer:
        """The bundle, its header checked against `module` (this bundle's `module()`)."""
        # The header must describe the IR it carries: same stored weights, types and variables.
        globals_, stored = module_globals(module), set(stored_weight_names(module))
        for w in self.weights:
            op = globals_.get(w.name)
            spec = global_spec(op) if op is not None else None
            if op is None or w.name not in stored:
                raise _fail(f"weight {w.name!r} (offset {w.section.offset}) is not a stored constant "
                            f"of the IR")
            if spec is None or spec[0] != w.shape or dtype_name(spec[1]) != dtype_name(w.dtype):
                raise _fail(f"weight {w.name!r}: header says {w.dtype.name}{list(w.shape)} but the IR "
                            f"declares {op.type}")
        if self.variables != _variables(module):
            raise _fail(f"header variables {sorted(self.variables)} do not match the IR's "
                        f"{sorted(_variables(module))}")
        _check_ir(module, self.graphs, [w.name for w in self.weights])
        return ModelBuffer(module=module, graphs=self.graphs, weights=self.read_weights())

    def model_known(self, facts: IRFacts) -> ModelBuffer | None:
        """The bundle, its header checked against the `IRFacts` of its IR (those of an IR with
        this SHA-256 that `model` accepted before, with the same graphs); the module is decoded
        and verified on first use. None when the facts alone cannot decide (a buffer over
        today's `max_tensor_bytes()`): `model(module())` then reports it."""
        if facts.largest_buffer > max_tensor_bytes():
            return None
        for w in self.weights:  # the same checks and messages as `model`
            known = facts.stored.get(w.name)
            if known is None:
                raise _fail(f"weight {w.name!r} (offset {w.section.offset}) is not a stored constant "
                            f"of the IR")
            if known[:2] != (w.shape, dtype_name(w.dtype)):
                raise _fail(f"weight {w.name!r}: header says {w.dtype.name}{list(w.shape)} but the IR "
                            f"declares {known[2]}")
        if self.variables != facts.variables:
            raise _fail(f"header variables {sorted(self.variables)} do not match the IR's "
                        f"{sorted(facts.variables)}")
        names = [w.name for w in self.weights]
        missing = [n for n in facts.stored if n not in names]
        if missing:  # (every name given is stored: checked above)
            raise _fail(f"weights do not match the IR's stored constants (missing: {missing}, "
                        f"not constants of the IR: [])")
        raw, section, version = self.raw_ir, self.ir, self.version
        return LazyModelBuffer(lambda: _parse_ir(raw, section, version), self.graphs, self.read_weights())

    def read_weights(self, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Every weight (or those named), read into private arrays (no mmap) and checked
        against its SHA-256 (what a load from the cache reads)."""
        values = {}
        wanted = None if names is None else set(names)
        for w in self.weights:  # everything is validated: now allocate and read
            if wanted is not None and w.name not in wanted:
                continue
            buf = self.src.read_array(w.section.offset, w.section.nbytes, w.section.what)
            _check_sha(buf, w.section)
            values[w.name] = buf.view(w.dtype).reshape(w.shape)
        return values


def _read_container(src: _Source) -> Container:
    if src.size < PRELUDE_SIZE:
        raise _fail(f"file is {src.size} bytes, too short for the {PRELUDE_SIZE}-byte prelude")
    magic, version, flags, header_len, header_sha = _PRELUDE.unpack(src.read(0, PRELUDE_SIZE, "prelude"))
    if magic != MAGIC:
        raise _fail(f"not a wrc bundle: bad magic {magic!r} at offset 0 (expected {MAGIC!r})")
    if version not in SUPPORTED_VERSIONS:
        raise _fail(f"format version {version} is not supported: this wrc reads version(s) "
                    f"{', '.join(map(str, SUPPORTED_VERSIONS))}")
    if flags:
        raise _fail(f"unknown flags {flags:#x} at offset 12 (version {version} defines none)")
    if not 0 < header_len <= min(MAX_HEADER_BYTES, src.size - PRELUDE_SIZE):
        raise _fail(f"header length {header_len} (offset 16) does not fit the file "
                    f"({src.size} bytes)")
    raw = src.read(PRELUDE_SIZE, header_len, "header")
    if hashlib.sha256(raw).digest() != header_sha:
        raise _fail(f"header (offset {PRELUDE_SIZE}, {header_len} bytes): sha256 mismatch "
                    f"(corrupted or tampered)")
    doc = _parse_header(raw)

    file_size = _uint(doc, "file_size", "header")
    if file_size != src.size:
        raise _fail(f"file is {src.size} bytes but its header says {file_size} (truncated or extended)")
    graphs = _field(doc, "graphs", list, "header")
    if not all(isinstance(g, str) for g in graphs):
        raise _fail("header: graphs must be a list of strings")
    ir_doc = _field(doc, "ir", dict, "header")
    ir = _Section("IR section", _uint(ir_doc, "offset", "ir"), _uint(ir_doc, "nbytes", "ir"),
                  _digest(ir_doc, "ir"))
    if ir.nbytes > MAX_IR_BYTES:
        raise _fail(f"IR section (offset {ir.offset}) is {ir.nbytes} bytes, more than the "
                    f"{MAX_IR_BYTES} a bundle may hold")
    weights = _weight_entries(doc)
    variables = _field(doc, "variables", dict, "header")
    for name, v in variables.items():  # fail fast, before parsing, on absurd variables
        where = f"variable {name[:200]!r}"
        shape, dtype = _shape(v, where), _dtype(v, where)
        if math.prod(shape) * dtype.itemsize > max_tensor_bytes():
            raise _fail(f"header: {where} declares {dtype.name}{list(shape)}, more than the "
                        f"{max_tensor_bytes()}-byte limit per buffer (WRC_MAX_TENSOR_BYTES)")
    _check_layout(src, PRELUDE_SIZE + header_len, [ir] + [w.section for w in weights])
    return Container(src, version, tuple(graphs), ir, weights, variables, header_sha)


@dataclass(frozen=True)
class StoredWeights:
    """Where the stored weights of a bundle file can be read again: the file, and the sha256
    of the header it had when loaded (which covers every weight's own sha256)."""

    path: str
    header_sha256: bytes

    def read(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """The named weights, read again into private arrays (no mmap) and checked against
        the digests of the header seen at load: the bytes loaded then, or `BundleFormatError`."""
        with self.reader() as read:
            return read(names)

    @contextmanager
    def reader(self) -> Iterator[Callable[[Iterable[str]], dict[str, np.ndarray]]]:
        """`read` for several calls on the file opened, and its header checked, once."""
        with open_bundle(self.path) as c:
            if c.header_sha256 != self.header_sha256:
                raise _fail(f"{self.path!r} changed since it was loaded (its header differs)")
            yield c.read_weights
