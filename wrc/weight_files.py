"""Weight files: read and write a bundle's refreshable weights as safetensors or NumPy `.npz`.

Files map weight names (the original constant names that `Bundle.update` takes, e.g.
`const_1`) to arrays. Reading only produces arrays; the checks (unknown name, shape, dtype)
are the model's weight signature's (`wrc.abi.WeightSignature.check`, what `Bundle.update`
runs), done on every entry before any weight changes.

Reading is header-first: `WeightFile` parses the safetensors JSON header or each `.npz`
member's `.npy` header (names, dtypes, shapes, sizes; duplicate names and object dtypes are
refused) without touching any tensor's bytes, so `checked_weights` rejects a bad file before
decompressing or allocating anything. Tensors are then read with `read()` from one open
descriptor into private arrays, never memory-mapped: a file truncated or rewritten during the
read is a `WeightFileError` (short read, or size / mtime / ctime changed: a file written in
the last 25 ms is first given time to show a new mtime on any further write), not a SIGBUS;
one replaced by rename is read whole from its old version.

Writing is crash-safe like bundle saving: a temporary file in the target's folder, fsync,
rename over the target. Every weight is written under its own name (the `.npz` is written
member by member, so a weight named `file` or `allow_pickle` is no keyword argument) or the
write fails with a `WeightFileError` naming it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from wrc import files
from wrc.abi import INIT_GRAPH, WeightSignature, plan
from wrc.bundle_format import check_model
from wrc.errors import InputError, WeightFileError
from wrc.model_buffer import ModelBuffer

FORMATS = {".safetensors": "safetensors", ".npz": "npz"}
"""File suffix → format name."""


def file_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The format of `path`: `format` if given, else from the suffix (`.safetensors`, `.npz`)."""
    if format is None:
        format = FORMATS.get(Path(path).suffix.lower())
        if format is None:
            raise WeightFileError(
                f"{os.fspath(path)}: unknown weight file type {Path(path).suffix!r}: use a "
                f"{' or '.join(FORMATS)} file name, or pass format= ({', '.join(FORMATS.values())})")
    elif format not in FORMATS.values():
        raise WeightFileError(f"{os.fspath(path)}: unknown weight file format {format!r} "
                              f"(formats: {', '.join(FORMATS.values())})")
    return format


def _open_regular(path: str | os.PathLike[str], what: str) -> IO[bytes]:
    """`path` opened unbuffered (every read sees the file as it is now) if it is a regular
    file, else a `WeightFileError` (a FIFO would block forever)."""
    name = os.fspath(path)
    try:
        return files.open_regular(path, buffering=0)
    except FileNotFoundError:
        raise WeightFileError(f"{name}: no such {what}") from None
    except OSError as e:
        raise WeightFileError(f"{name}: cannot open this {what}: {e.strerror or e}") from None


FRESH_WRITE_NS = 25_000_000
"""A file modified less than this long ago may still be being written within one tick of
the kernel's coarse file clock (1-10 ms): later writes could leave its mtime unchanged."""


def _version(f: IO[bytes], settle: bool = False) -> tuple[int, ...]:
    """What identifies one version of the open file: inode, size, mtime and ctime. With
    `settle`, first wait until its mtime is a clock tick old, so that any write from then
    on changes the mtime."""
    st = os.fstat(f.fileno())
    age = time.time_ns() - st.st_mtime_ns
    if settle and 0 <= age < FRESH_WRITE_NS:
        time.sleep((FRESH_WRITE_NS - age) / 1e9)
        st = os.fstat(f.fileno())
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


_CHUNK = 1 << 18
"""Bytes per read: a zip member's reader copies what it returns twice (cache-sized pieces)."""


def _fill(f: IO[bytes], array: np.ndarray, name: str, what: str) -> None:
    """Read `array.nbytes` bytes from `f` into `array` (C-contiguous), or raise."""
    view, done = memoryview(array.reshape(-1).view(np.uint8)), 0
    while done < len(view):
        n = f.readinto(view[done:done + _CHUNK])
        if not n:
            raise WeightFileError(f"{name}: {what}: the data ends early (truncated, or changed while being read)")
        done += n


Spec = tuple[tuple[int, ...], np.dtype]


# --------------------------------------------------------------------------- .npy headers


def read_npy_header(f: IO[bytes], name: str, what: str) -> tuple[Spec, bool]:
    """((shape, dtype), Fortran order) from the `.npy` header at `f`'s position: no pickled
    objects, and a size that fits in memory arithmetic (the caller compares it with the
    bytes that follow)."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise WeightFileError(f"{name}: {what}: not a readable .npy array: {str(e)[:200]}") from None
    if dtype.hasobject:
        raise WeightFileError(f"{name}: {what}: dtype {dtype} holds Python objects (pickles are never loaded)")
    return (tuple(shape), dtype), fortran


def _nbytes(spec: Spec) -> int:
    return math.prod(spec[0]) * spec[1].itemsize


def read_npy(path: str | os.PathLike[str], what: str = "array") -> np.ndarray:
    """The array of the `.npy` file `path`, after checking that its header's size is exactly
    the bytes the file holds (a 144-byte file claiming terabytes allocates nothing)."""
    name = os.fspath(path)
    with _open_regular(path, ".npy file") as f:
        (shape, dtype), fortran = read_npy_header(f, name, what)
        left = os.fstat(f.fileno()).st_size - f.tell()
        if _nbytes((shape, dtype)) != left:
            raise WeightFileError(f"{name}: {what}: the header says {dtype}{list(shape)} "
                                  f"({_nbytes((shape, dtype))} bytes) but the file holds {left} bytes of data")
        return _read_array(f, shape, dtype, fortran, name, what)


def _read_array(f: IO[bytes], shape: tuple[int, ...], dtype: np.dtype, fortran: bool, name: str,
                what: str) -> np.ndarray:
    out = np.empty(shape[::-1] if fortran else shape, dtype)
    _fill(f, out, name, what)
    return out.T if fortran else out


# --------------------------------------------------------------------------- reading


_SAFETENSORS_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8,
                       "I16": np.int16, "I32": np.int32, "I64": np.int64, "BOOL": np.bool_}
"""safetensors dtype names wrc supports (the format stores little-endian values)."""
_SAFETENSORS_OTHER = {"BF16", "F8_E4M3", "F8_E5M2", "U8", "U16", "U32", "U64", "C64", "F4", "F6_E2M3",
                      "F6_E3M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ"}
"""Other dtypes of the safetensors format (wrc refuses them, naming the weight)."""
SAFETENSORS_METADATA = "__metadata__"
"""The safetensors header key of the file's metadata: no tensor can have this name."""
MAX_SAFETENSORS_HEADER = 100_000_000
"""safetensors' own limit on its JSON header."""


class WeightFile:
    """An open weight file whose headers were read and checked: `specs` (name → shape,
    dtype) in file order; `read(name)` reads one tensor into a private array. Use as a
    context manager; `done()` checks that the file did not change since it was opened."""

    def __init__(self, path: str | os.PathLike[str], format: str | None = None) -> None:
        self.format = file_format(path, format)
        self.name = os.fspath(path)
        self._file = _open_regular(path, "weight file")
        self._zip: zipfile.ZipFile | None = None
        self._where: dict[str, Any] = {}
        self.specs: dict[str, Spec] = {}
        try:
            self._version = _version(self._file, settle=True)
            if self.format == "safetensors":
                self._safetensors_header()
            else:
                self._npz_headers()
        except WeightFileError:
            self.close()
            raise
        except Exception as e:  # zipfile and json report bad files with many exception types
            self.close()
            raise WeightFileError(f"{self.name}: cannot read this {self.format} file: {type(e).__name__}: "
                                  f"{str(e)[:300]}") from None

    def __enter__(self) -> WeightFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        self._file.close()

    def _bad(self, message: str) -> WeightFileError:
        return WeightFileError(f"{self.name}: {message}")

    def _unique(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        """A JSON object without repeated keys (json.loads would keep the last silently)."""
        out = dict(pairs)
        if len(out) != len(pairs):
            twice = next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i]))
            raise self._bad(f"weight {twice!r} is in the header twice")
        return out

    def _safetensors_header(self) -> None:
        """The checks `safetensors.safe_open` makes: a bounded JSON object of tensors with
        known dtypes, sizes matching shapes, offsets that tile the data section exactly."""
        size = self._version[1]
        prefix = self._file.read(8)
        n = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if n < 2 or n > min(MAX_SAFETENSORS_HEADER, size - 8):
            raise self._bad("cannot read this safetensors file: bad header length")
        raw = np.empty(n, np.uint8)
        _fill(self._file, raw, self.name, "header")
        header = json.loads(raw.tobytes().decode("utf-8"), object_pairs_hook=self._unique)
        if not isinstance(header, dict):
            raise self._bad("cannot read this safetensors file: the header is not a JSON object")
        meta = header.pop(SAFETENSORS_METADATA, None)
        if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
            raise self._bad(f"cannot read this safetensors file: {SAFETENSORS_METADATA} is not a map of strings")
        spans = []
        for key, info in header.items():
            what = f"weight {key!r}"
            if not (isinstance(info, dict) and isinstance(info.get("dtype"), str)
                    and isinstance(info.get("shape"), list) and isinstance(info.get("data_offsets"), list)
                    and all(type(d) is int and d >= 0 for d in info["shape"])
                    and len(info["data_offsets"]) == 2 and all(type(o) is int for o in info["data_offsets"])):
                raise self._bad(f"cannot read this safetensors file: {what}: bad entry {str(info)[:200]}")
            dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
            if dtype is None:
                known = "" if info["dtype"] in _SAFETENSORS_OTHER else " (not a safetensors dtype)"
                raise self._bad(f"{what} has dtype {info['dtype']}{known}, which wrc does not support "
                                f"({', '.join(_SAFETENSORS_DTYPES)})")
            spec = (tuple(info["shape"]), np.dtype(dtype).newbyteorder("<"))
            begin, end = info["data_offsets"]
            if end - begin != _nbytes(spec):
                raise self._bad(f"cannot read this safetensors file: {what}: offsets {[begin, end]} do not "
                                f"hold {spec[1].name}{list(spec[0])}")
            spans.append((begin, end, key))
            self.specs[key] = spec
            self._where[key] = 8 + n + begin
        at = 0
        for begin, end, key in sorted(spans):
            if begin != at:
                raise self._bad(f"cannot read this safetensors file: weight {key!r}: its data does not "
                                "follow the previous tensor's (gap or overlap)")
            at = end
        if 8 + n + at != size:
            raise self._bad(f"cannot read this safetensors file: the tensors take {at} bytes but the file "
                            f"holds {size - 8 - n} after the header")

    def _npz_headers(self) -> None:
        """Member names from the zip directory (unique, `.npy`), then each member's `.npy`
        header (a few hundred bytes decompressed), compared with its declared size."""
        self._zip = zipfile.ZipFile(self._file)
        for info in self._zip.infolist():
            if not info.filename.endswith(".npy"):
                raise self._bad(f"member {info.filename!r} is not a .npy array")
            key = info.filename[:-4]
            if key in self.specs:
                raise self._bad(f"weight {key!r} is in the archive twice")
            with self._zip.open(info) as member:
                spec, fortran = read_npy_header(member, self.name, f"weight {key!r}")
                if member.tell() + _nbytes(spec) != info.file_size:
                    raise self._bad(f"weight {key!r}: the header says {spec[1]}{list(spec[0])} but the "
                                    f"member holds {info.file_size - member.tell()} bytes of data")
            self.specs[key] = spec
            self._where[key] = (info, fortran)

    def read(self, key: str) -> np.ndarray:
        """The tensor `key` in a fresh array (only its declared bytes are read)."""
        shape, dtype = self.specs[key]
        what = f"weight {key!r}"
        try:
            if self.format == "safetensors":
                self._file.seek(self._where[key])
                out = np.empty(shape, dtype)
                _fill(self._file, out, self.name, what)
                return out
            info, fortran = self._where[key]
            with self._zip.open(info) as member:  # type: ignore[union-attr]
                read_npy_header(member, self.name, what)
                out = _read_array(member, shape, dtype, fortran, self.name, what)
                if member.read(1):  # also makes zipfile check the member's CRC
                    raise self._bad(f"{what}: more data than its header says")
                return out
        except WeightFileError:
            raise
        except Exception as e:
            raise self._bad(f"{what}: cannot read it: {type(e).__name__}: {str(e)[:300]}") from None

    def done(self) -> None:
        """Raise if the file changed since it was opened (what was read may mix versions)."""
        if _version(self._file) != self._version:
            raise self._bad("the file changed while being read: nothing was updated; read it again")


def read_weights(path: str | os.PathLike[str], format: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of a weight file, by name (no check against any bundle yet)."""
    with WeightFile(path, format) as f:
        out = {key: f.read(key) for key in f.specs}
        f.done()
    return out


def checked_weights(path: str | os.PathLike[str], signature: WeightSignature,
                    format: str | None = None) -> dict[str, np.ndarray]:
    """The entries of a weight file to apply to a model with `signature`: names, dtypes and
    shapes are checked from the headers (one `InputError` naming the file and every problem)
    before any tensor is read; empty "keep" entries are left out."""
    with WeightFile(path, format) as f:
        # Zero-stride stand-ins of each declared shape and dtype: the checks, no memory.
        stand_ins = {k: np.broadcast_to(np.zeros((), dtype), shape) for k, (shape, dtype) in f.specs.items()}
        try:
            wanted = signature.check(stand_ins)
        except InputError as e:
            raise InputError(f"{f.name}: {e}") from None
        out = {w.name: f.read(w.name) for w, _ in wanted}
        f.done()
    return out


# --------------------------------------------------------------------------- writing


def _write_npz(f: IO[bytes], arrays: Mapping[str, np.ndarray]) -> None:
    """An uncompressed `.npz` with one `<name>.npy` member per array (what `np.savez` writes,
    without passing names as keyword arguments)."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for key, value in arrays.items():
            with z.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, value, allow_pickle=False)


def _unwritable(fmt: str, key: object) -> str | None:
    """Why the weight name `key` cannot be stored in a `fmt` file under that name, or None."""
    if not isinstance(key, str):
        return "is not a string"
    if fmt == "safetensors" and key == SAFETENSORS_METADATA:
        return "is the safetensors header's metadata key"
    if "\0" in key:  # zip names end at a NUL; JSON keeps it, but no tool writes it: refuse both
        return "holds a NUL character"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid unicode (a lone surrogate)"
    return None


def write_weights(path: str | os.PathLike[str], weights: Mapping[str, np.ndarray],
                  format: str | None = None) -> None:
    """Write `weights` (name → array) to `path` crash-safely; `.npz` or `.safetensors`. Every
    weight is stored under its name (0-d arrays stay 0-d), or nothing is written and a
    `WeightFileError` names the weight."""
    fmt = file_format(path, format)
    target = Path(path)
    for key in weights:
        why = _unwritable(fmt, key)
        if why is not None:
            raise WeightFileError(f"{os.fspath(path)}: cannot write weight {key!r} to a {fmt} file: its name {why}")
    # np.require keeps 0-d arrays 0-d (np.ascontiguousarray would make them [1]).
    arrays = {k: np.require(v, requirements="C") for k, v in weights.items()}
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        os.close(fd)
        if fmt == "safetensors":
            from safetensors.numpy import save_file

            save_file(arrays, tmp)  # streams from the arrays (no file-sized buffer)
        else:
            with open(tmp, "wb") as f:
                _write_npz(f, arrays)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def bake_weights(model: ModelBuffer, path: str | os.PathLike[str], what: str = "bundle",
                 format: str | None = None) -> ModelBuffer:
    """`model` with the initial values of the weights in the file `path` replaced.

    The stored constants that `var_init_graph` copies into the variables get the file's
    values; nothing is compiled or run. The entries are checked against the model's weight
    signature first (unknown name, shape, dtype: what `Bundle.update` checks), so a bad file
    changes nothing.
    """
    if INIT_GRAPH not in model.graphs:
        raise InputError(f"{what} is weight-stripped (no {INIT_GRAPH}): it stores no initial weights "
                         "to replace; give it weights at run time with Bundle.update_from_file")
    check_model(model)
    signature = plan(model.module, model.graphs).weights
    new = [(signature.weights[k], v) for k, v in checked_weights(path, signature, format).items()]
    weights = dict(model.weights)
    for w, value in new:
        if w.initial not in weights:
            raise InputError(f"{what}: the initial value of weight {w.name!r} is not a stored weight "
                             "of the file (inline in the IR or computed): it cannot be replaced")
        weights[w.initial] = np.require(value, requirements="C")  # private; a Fortran-order .npy is copied
    return ModelBuffer(module=model.module, graphs=model.graphs, weights=weights)
