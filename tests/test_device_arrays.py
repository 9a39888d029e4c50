"""The host/device seam (`wrc/backends/arrays.py`) on a simulated device, on every machine.

`SimDevice` is an `ArrayModule` whose arrays are `DeviceArray`s (a NumPy subclass standing for
GPU memory) and which counts host↔device copies. The NumPy JIT compiled against it must give
bit-identical results to the `numpy` backend while every variable, constant, temporary and
output stays a `DeviceArray`; this is the same path the `cupy` backend takes on a GPU
(tests/test_cupy.py runs it there).
"""

from __future__ import annotations

import sys
import types
from collections import Counter
from typing import Any

import numpy as np
import pytest
from device_models import build, cases
from xdsl.dialects.builtin import ModuleOp

import wrc
import wrc.backends
from wrc.backends import BackendUnavailableError
from wrc.backends.arrays import NUMPY, ArrayModule
from wrc.backends.numpy_jit import NumpyCompiledModule
from wrc.bundle_format import bundle_bytes
from wrc.errors import InputError

CASES = {c.name: c for c in cases()}


class DeviceArray(np.ndarray):
    """Memory of the simulated device."""


def _dev(a: np.ndarray) -> DeviceArray:
    return a.view(DeviceArray)


class SimDevice:
    """Creation functions return device arrays; transfers are counted in `bytes`."""

    def __init__(self) -> None:
        self.bytes: Counter[str] = Counter()
        # What generated code calls as `np`: NumPy, with array creation on the device.
        xp = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
        for name in ("empty", "zeros", "array", "asarray", "ascontiguousarray"):
            xp.__dict__[name] = (lambda f: lambda *a, **k: _dev(f(*a, **k)))(getattr(np, name))
        self.arrays = ArrayModule(
            name="simdev", xp=xp,
            strided=lambda shape, dtype, base, off, strides: _dev(np.ndarray(shape, dtype, base, off, strides)),
            erf=lambda x, out=None: _dev(NUMPY.erf(x, out=out)),  # the same values as the host's
            array_types=(DeviceArray,), to_device=self.to_device, to_host=self.to_host,
            empty=lambda shape, dtype: _dev(np.empty(shape, dtype)), copy_into=self.copy_into,
            blank=lambda shape, dtype: _dev(np.broadcast_to(np.zeros((), dtype), shape)),
        )

    def to_device(self, a: Any) -> DeviceArray:
        if isinstance(a, DeviceArray):
            return a if a.flags.c_contiguous else _dev(np.ascontiguousarray(a))
        self.bytes["h2d"] += a.nbytes
        return _dev(np.array(a, order="C"))

    def to_host(self, a: Any) -> np.ndarray:
        if isinstance(a, DeviceArray):
            self.bytes["d2h"] += a.nbytes
            return np.array(a).view(np.ndarray)
        return np.asarray(a)

    def copy_into(self, dst: DeviceArray, src: Any) -> None:
        if not isinstance(src, DeviceArray):
            self.bytes["h2d"] += src.nbytes
        np.copyto(dst, src)

    def compile(self, module: ModuleOp) -> NumpyCompiledModule:
        return NumpyCompiledModule(module, self.arrays)


@pytest.fixture
def device(monkeypatch: pytest.MonkeyPatch) -> SimDevice:
    dev = SimDevice()
    dev.name = "simdev"  # type: ignore[attr-defined]
    monkeypatch.setitem(wrc.backends.BACKENDS, "simdev", lambda: dev)
    return dev


def _snapshot(b: wrc.Bundle) -> dict[str, Any]:
    return dict(b._snapshot)  # noqa: SLF001 - where the variables live is the point


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_results_as_numpy_with_everything_on_the_device(device: SimDevice, name: str) -> None:
    case = CASES[name]
    model = build(case)
    # the same generated code: a device runs no native (host) kernels
    ref, dev = wrc.load_bundle(model, backend="numpy{native=false}"), wrc.load_bundle(model, backend="simdev")
    for b in (ref, dev):
        b.init()
    assert all(isinstance(a, DeviceArray) for a in _snapshot(dev).values())
    assert all(type(a) is np.ndarray for a in _snapshot(ref).values())

    out = dev.infer(case.inputs, output="device")
    assert all(isinstance(o, DeviceArray) for o in out)
    host = dev.infer(case.inputs)  # output="numpy", the default
    assert all(type(o) is np.ndarray for o in host)
    for a, b in zip(ref.infer(case.inputs), host, strict=True):
        assert np.array_equal(a, b)

    for b in (ref, dev):
        b.update(case.new)
    assert all(isinstance(a, DeviceArray) for a in _snapshot(dev).values())  # derived ones too
    for a, b in zip(ref.infer(case.inputs), dev.infer(case.inputs), strict=True):
        assert np.array_equal(a, b)


def test_transfers_happen_once_and_device_weights_stay_on_the_device(device: SimDevice) -> None:
    case = CASES["mlp"]
    b = wrc.load_bundle(build(case), backend="simdev")
    b.init()
    device.bytes.clear()
    b.update(case.new)  # host weights: each copied to the device once
    assert device.bytes["h2d"] == sum(a.nbytes for a in case.new.values())
    device.bytes.clear()
    b.update({k: _dev(v * 2) for k, v in case.new.items()})  # device weights: device to device
    assert device.bytes["h2d"] == 0
    device.bytes.clear()
    x = _dev(case.inputs["x"].copy())
    out = b.infer({"x": x}, output="device")
    assert device.bytes == Counter()  # input and output never crossed the bus
    weights = b.weights()  # host copies for the user
    assert type(weights["w1"]) is np.ndarray and np.array_equal(weights["w1"], case.new["w1"] * 2)
    assert isinstance(out[0], DeviceArray)


def test_bad_output_kind_and_foreign_arrays_are_input_errors(device: SimDevice) -> None:
    case = CASES["mlp"]
    b = wrc.load_bundle(build(case), backend="simdev")
    b.init()
    with pytest.raises(InputError, match="output must be one of 'numpy', 'device', got 'gpu'"):
        b.infer(case.inputs, output="gpu")
    with pytest.raises(InputError, match=r"must be a numpy array or a test_device_arrays\.DeviceArray, got list"):
        b.infer({"x": case.inputs["x"].tolist()})


def test_numpy_backend_output_kinds_are_both_numpy() -> None:
    case = CASES["mlp"]
    b = wrc.load_bundle(build(case))
    b.init()
    a, d = b.infer(case.inputs)[0], b.infer(case.inputs, output="device")[0]
    assert type(a) is np.ndarray and type(d) is np.ndarray and np.array_equal(a, d)


def test_cupy_backend_without_cupy_names_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from wrc.backends import cupy_backend

    cupy_backend.cupy_arrays.cache_clear()
    monkeypatch.setitem(sys.modules, "cupy", None)  # as on a machine without CuPy
    with pytest.raises(BackendUnavailableError, match=r"backend 'cupy' needs CuPy, which is not installed.*pip install cupy-cuda12x"):
        wrc.backends.get_backend("cupy")
    path = tmp_path / "m.wrcb"
    path.write_bytes(bundle_bytes(build(CASES["mlp"])))
    with pytest.raises(BackendUnavailableError, match="needs CuPy"):
        wrc.load_bundle(path, backend="cupy")
    assert "cupy" in wrc.backends.BACKENDS  # a known backend, not an unknown name


@pytest.mark.parametrize(("count", "message"), [
    (RuntimeError("cudaErrorInsufficientDriver"), r"CuPy 99\.0 is installed but CUDA is not usable: cudaErrorInsufficientDriver"),
    (0, r"CuPy 99\.0 finds no CUDA device"),
])
def test_cupy_backend_without_a_usable_gpu_says_so(monkeypatch: pytest.MonkeyPatch, count: Any, message: str) -> None:
    from wrc.backends import cupy_backend

    def device_count() -> int:
        if isinstance(count, Exception):
            raise count
        return count

    fake = types.SimpleNamespace(__version__="99.0", cuda=types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=device_count)))
    cupy_backend.cupy_arrays.cache_clear()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(BackendUnavailableError, match=message):
        wrc.backends.get_backend("cupy")
    cupy_backend.cupy_arrays.cache_clear()
