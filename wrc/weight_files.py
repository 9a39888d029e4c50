"""Weight files: read and write a bundle's refreshable weights as safetensors or NumPy `.npz`.

Files map weight names (the original constant names that `Bundle.update` takes, e.g.
`const_1`) to arrays. Reading only produces arrays; the checks (unknown name, shape, dtype)
are the model's weight signature's (`wrc.abi.WeightSignature.check`, what `Bundle.update`
runs), done on every entry before any weight changes.

* safetensors (`.safetensors`): validated with `safetensors.safe_open`, then memory-mapped:
  each tensor is copied once, from the file's pages into the bundle's storage (the file is
  never read whole into memory first). Written with `safetensors.numpy.save_file`.
* NumPy (`.npz`): read with `np.load(..., allow_pickle=False)` (never executes file content);
  written uncompressed with `np.savez`.

Writing is crash-safe like bundle saving: a temporary file in the target's folder, fsync,
rename over the target.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from wrc.abi import INIT_GRAPH, plan
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


def read_weights(path: str | os.PathLike[str], format: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of a weight file, by name (no check against any bundle yet)."""
    fmt = file_format(path, format)
    name = os.fspath(path)
    if not Path(path).is_file():
        raise WeightFileError(f"{name}: no such weight file")
    try:
        if fmt == "safetensors":
            return _map_safetensors(name)
        npz = np.load(name, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise WeightFileError(f"{name}: a single .npy array, not an .npz archive of named weights")
        with npz:
            return {key: npz[key] for key in npz.files}
    except WeightFileError:
        raise
    except Exception as e:
        # safetensors raises its own SafetensorError (and TypeError for dtypes NumPy lacks,
        # such as bfloat16); np.load raises ValueError/OSError/BadZipFile on bad archives.
        raise WeightFileError(f"{name}: cannot read this {fmt} file: {type(e).__name__}: "
                              f"{str(e)[:300]}") from None


_SAFETENSORS_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8,
                       "I16": np.int16, "I32": np.int32, "I64": np.int64, "BOOL": np.bool_}
"""safetensors dtype names wrc supports (the format stores little-endian values)."""


def _map_safetensors(name: str) -> dict[str, np.ndarray]:
    """Read-only memory-mapped arrays over the file's tensors: no copy here, so an update from
    the file copies each weight once (into the bundle). `safe_open` validates the file first
    (header, offsets within the file, no overlaps); the offsets come from its JSON header."""
    from safetensors import safe_open

    with safe_open(name, framework="numpy") as f:
        keys = list(f.keys())
    with open(name, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
    arrays = {}
    for key in keys:
        info = header[key]
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise WeightFileError(f"{name}: weight {key!r} has dtype {info['dtype']}, which wrc does not "
                                  f"support ({', '.join(_SAFETENSORS_DTYPES)})")
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if end == begin:  # np.memmap cannot map zero bytes
            arrays[key] = np.zeros(shape, dtype)
        else:
            arrays[key] = np.memmap(name, dtype=np.dtype(dtype).newbyteorder("<"), mode="r",
                                    offset=8 + size + begin, shape=shape)
    return arrays


def write_weights(path: str | os.PathLike[str], weights: Mapping[str, np.ndarray],
                  format: str | None = None) -> None:
    """Write `weights` (name → array) to `path` crash-safely; `.npz` or `.safetensors`."""
    fmt = file_format(path, format)
    target = Path(path)
    arrays = {k: np.ascontiguousarray(v) for k, v in weights.items()}
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        os.close(fd)
        if fmt == "safetensors":
            from safetensors.numpy import save_file

            save_file(arrays, tmp)  # streams from the arrays (no file-sized buffer)
        else:
            with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
                np.savez(f, **arrays)
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
    values = read_weights(path, format)
    try:
        new = plan(model.module, model.graphs).weights.check(values)
    except InputError as e:
        raise InputError(f"{os.fspath(path)}: {e}") from None
    weights = dict(model.weights)
    for w, value in new:
        if w.initial not in weights:
            raise InputError(f"{what}: the initial value of weight {w.name!r} is not a stored weight "
                             "of the file (inline in the IR or computed): it cannot be replaced")
        weights[w.initial] = np.array(value, order="C")  # a copy: never a view of the (mapped) file
    return ModelBuffer(module=model.module, graphs=model.graphs, weights=weights)
