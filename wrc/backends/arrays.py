"""Where a backend's arrays live: the one seam between host (NumPy) and device (CuPy) code.

The NumPy JIT's generated code calls `np.<function>`; `np` is bound to `ArrayModule.xp`, so
one code generator serves the CPU (`numpy`) and, with CuPy's NumPy-compatible API, the GPU.
The runtime (`wrc/runtime.py`) never calls NumPy on a backend's arrays directly either: it
allocates, copies, freezes and converts them through the `ArrayModule` of the compiled
module (`CompiledModule.arrays`; NumPy's when a backend has none).

Host arrays are what users pass and get by default; device arrays are the backend's own
(for NumPy the two are the same thing, and every conversion is free).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wrc.backends.erf import erf as numpy_erf
from wrc.model_buffer import c_array


def _numpy_strided(shape: tuple[int, ...], dtype: np.dtype, base: np.ndarray, offset: int,
                   strides: tuple[int, ...]) -> np.ndarray:
    """A view of `base`'s memory (byte offset and strides), sharing it."""
    return np.ndarray(shape, dtype, base, offset, strides)


def _freeze(a: np.ndarray) -> None:
    a.flags.writeable = False


def _thaw(a: np.ndarray) -> None:
    a.flags.writeable = True


@functools.lru_cache(maxsize=256)
def _numpy_blank(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A read-only, C-contiguous stand-in for a skipped update input (never read).

    Contiguous, so a backend takes it as it is (a zero-stride view would be copied on every
    call: a partial update would cost a full one); `np.zeros` maps untouched zero pages, so
    it occupies no memory until read, and it never is.
    """
    out = np.zeros(shape, dtype)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class ArrayModule:
    """How one backend creates, copies and converts its arrays.

    * `xp`: the module generated code calls as `np` (NumPy, or CuPy on a GPU);
    * `strided(shape, dtype, base, byte_offset, byte_strides)`: a view of `base`'s memory;
    * `erf(x, out=None)`: elementwise error function (no NumPy ufunc exists; `out`, any
      writeable array of the result's dtype and shape, may be `x`);
    * `array_types`: what `update`/`infer` accept as this backend's own arrays (besides
      host `np.ndarray`s, which every backend accepts);
    * `to_device(host_or_device)`: a C-contiguous array of this backend holding the value
      (no copy when it already is one); `to_host(a)`: a NumPy array;
    * `empty`, `copy_into(dst, src)` (src host or device), `blank(shape, dtype)` (a stand-in
      that is never read), `host` (arrays are host NumPy arrays: no conversion needed),
      `freeze`/`thaw` (read-only flag where the array type has one),
      `errstate()` (a context for running generated code).
    """

    name: str
    xp: Any
    strided: Callable[..., Any]
    erf: Callable[[Any], Any]
    array_types: tuple[type, ...]
    to_device: Callable[[Any], Any]
    to_host: Callable[[Any], np.ndarray]
    empty: Callable[[tuple[int, ...], np.dtype], Any]
    copy_into: Callable[[Any, Any], None]
    blank: Callable[[tuple[int, ...], np.dtype], Any]
    host: bool = False
    """Its arrays are NumPy arrays in host memory: `to_host` is the identity."""
    freeze: Callable[[Any], None] = field(default=lambda a: None)
    thaw: Callable[[Any], None] = field(default=lambda a: None)
    errstate: Callable[[], contextlib.AbstractContextManager[Any]] = field(default=contextlib.nullcontext)

    def is_array(self, value: Any) -> bool:
        return isinstance(value, (np.ndarray, *self.array_types))


NUMPY = ArrayModule(
    name="numpy", xp=np, strided=_numpy_strided, erf=numpy_erf, array_types=(),
    to_device=c_array, to_host=np.asarray, empty=np.empty, copy_into=np.copyto, blank=_numpy_blank,
    host=True, freeze=_freeze, thaw=_thaw,
    # Overflow to inf / NaN is IEEE behaviour the interpreter also has: no warnings.
    errstate=lambda: np.errstate(all="ignore"),
)
"""Host memory: every conversion is free."""
