"""The `cupy` backend on a real GPU: same results as `numpy`, variables on the device.

Skipped, with the reason, on machines without CuPy or a CUDA device (CI has none); the same
runtime paths run everywhere on a simulated device in tests/test_device_arrays.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from device_models import build, cases

import wrc
from wrc.backends import BackendUnavailableError

try:
    from wrc.backends.cupy_backend import cupy_arrays

    cupy_arrays()
    GPU, WHY = True, ""
except BackendUnavailableError as e:
    GPU, WHY = False, str(e)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not GPU, reason=f"no GPU backend here: {WHY}")]

CASES = {c.name: c for c in cases()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_cupy_matches_numpy_before_and_after_update(name: str) -> None:
    import cupy

    case = CASES[name]
    model = build(case)
    ref, gpu = wrc.load_bundle(model), wrc.load_bundle(model, backend="cupy")
    for b in (ref, gpu):
        b.init()
    assert all(isinstance(a, cupy.ndarray) for a in gpu._snapshot.values())  # noqa: SLF001
    for a, b in zip(ref.infer(case.inputs), gpu.infer(case.inputs), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    for b in (ref, gpu):
        b.update(case.new)
    out = gpu.infer({k: cupy.asarray(v) for k, v in case.inputs.items()}, output="device")
    assert all(isinstance(o, cupy.ndarray) for o in out)
    for a, b in zip(ref.infer(case.inputs), out, strict=True):
        np.testing.assert_allclose(cupy.asnumpy(b), a, rtol=1e-4, atol=1e-5)


def test_cupy_device_weights_update_and_a_b_a() -> None:
    import cupy

    case = CASES["mlp"]
    b = wrc.load_bundle(build(case), backend="cupy")
    b.init()
    ya = b.infer(case.inputs)[0]
    b.update({k: cupy.asarray(v) for k, v in case.new.items()})
    yb = b.infer(case.inputs)[0]
    assert not np.array_equal(ya, yb)
    b.init()
    assert np.array_equal(b.infer(case.inputs)[0], ya)
