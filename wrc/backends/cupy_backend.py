"""The `cupy` backend: the NumPy JIT's code run by CuPy, variables in GPU memory.

There is no second code generator: `NumpyCompiledModule` compiles the level-3 IR with
`np` bound to `cupy` (docs/internals.md, "Backends"), and the runtime keeps its constants and
variable snapshots as CuPy arrays through the `ArrayModule` below. Host (NumPy) inputs and
weights are copied to the device; CuPy arrays are used as they are (weights are copied
device-to-device into the bundle's own buffers).

Machines without CuPy or without a CUDA device get a `BackendUnavailableError` naming what
is missing when the backend is asked for; importing wrc never imports CuPy.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from wrc.backends import BackendUnavailableError
from wrc.backends.arrays import ArrayModule
from wrc.backends.numpy_jit import NumpyCompiledModule

INSTALL_HINT = "pip install cupy-cuda12x (CUDA 12; cupy-cuda11x for CUDA 11)"


def _load_cupy() -> Any:
    try:
        import cupy
    except ImportError as e:
        raise BackendUnavailableError(
            f"backend 'cupy' needs CuPy, which is not installed ({e}); {INSTALL_HINT}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver or runtime missing: CuPy's own error type varies
        raise BackendUnavailableError(
            f"backend 'cupy': CuPy {cupy.__version__} is installed but CUDA is not usable: {e}") from None
    if count == 0:
        raise BackendUnavailableError(f"backend 'cupy': CuPy {cupy.__version__} finds no CUDA device")
    return cupy


@functools.cache
def cupy_arrays() -> ArrayModule:
    """The `ArrayModule` of CuPy on the current device (raises `BackendUnavailableError`)."""
    cupy = _load_cupy()
    from cupyx.scipy.special import erf

    def strided(shape: tuple[int, ...], dtype: np.dtype, base: Any, offset: int, strides: tuple[int, ...]) -> Any:
        return cupy.ndarray(shape, dtype, base.data + offset, strides)

    def to_device(a: Any) -> Any:
        if isinstance(a, cupy.ndarray):
            return cupy.ascontiguousarray(a)
        return cupy.asarray(np.ascontiguousarray(a))

    def to_host(a: Any) -> np.ndarray:
        return cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else np.asarray(a)

    def copy_into(dst: Any, src: Any) -> None:
        if isinstance(src, cupy.ndarray):
            cupy.copyto(dst, src)  # device to device
        else:
            dst.set(np.ascontiguousarray(src))  # host to device

    @functools.lru_cache(maxsize=256)
    def blank(shape: tuple[int, ...], dtype: np.dtype) -> Any:
        # Never read (its flag is False): one element broadcast, no device memory per input.
        return cupy.broadcast_to(cupy.zeros((), dtype), shape)

    return ArrayModule(
        name="cupy", xp=cupy, strided=strided, erf=erf, array_types=(cupy.ndarray,),
        to_device=to_device, to_host=to_host, empty=cupy.empty, copy_into=copy_into, blank=blank,
    )


class CupyBackend:
    """Level-3 IR on a CUDA GPU through CuPy (same generated code as `numpy`)."""

    name = "cupy"

    def __init__(self) -> None:
        self.arrays = cupy_arrays()  # fails here, with the reason, on a machine without a GPU

    def compile(self, module: ModuleOp) -> NumpyCompiledModule:
        return NumpyCompiledModule(module, self.arrays)
