"""The NumPy backend's erf (wrc/backends/erf.py) against Python's math.erf."""

import math

import numpy as np
import pytest
from test_models import check, compile_bundles

import wrc
from wrc.backends import erf as erf_module
from wrc.backends.erf import erf

EXACT = np.frompyfunc(math.erf, 1, 1)


def _exact(x: np.ndarray) -> np.ndarray:
    return EXACT(x.astype(np.float64)).astype(np.float64)


def test_float32_dense_grid_within_5e7() -> None:
    # every float32 in [-1/8, 1/8] is dense near 0; a linear grid covers the bulk and the
    # tails (erf rounds to ±1 beyond ~3.92, the clamp is at 4)
    x = np.concatenate([np.linspace(-7, 7, 1_400_001, dtype=np.float32),
                        np.float32([3.9, 3.92, 3.93, 4.0, 4.0001, 9.0, 1e30, -1e30, 3.4e38])])
    y = erf(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    err = np.abs(y.astype(np.float64) - _exact(x))
    assert err.max() < 5e-7, (err.max(), x[err.argmax()])


def test_float32_relative_error_near_zero() -> None:
    x = np.float32(2.0) ** -np.arange(1, 126, dtype=np.float32)  # normals down to 2^-125
    x = np.concatenate([x, -x])
    rel = np.abs(erf(x).astype(np.float64) / _exact(x) - 1)
    assert rel.max() < 1e-6


def test_special_values() -> None:
    y = erf(np.float32([0.0, -0.0, np.inf, -np.inf, np.nan]))
    assert y[0] == 0 and not np.signbit(y[0])
    assert y[1] == 0 and np.signbit(y[1])
    assert y[2] == 1 and y[3] == -1 and np.isnan(y[4])


def test_blocks_strides_and_dtypes() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, erf_module.BLOCK + 17)).astype(np.float32)  # more than one block
    ref = _exact(x)
    assert np.abs(erf(x) - ref).max() < 5e-7
    view = x[:, ::-3]  # a strided view is read, not modified
    before = x.copy()
    assert np.abs(erf(view) - ref[:, ::-3]).max() < 5e-7
    np.testing.assert_array_equal(x, before)
    half = x.astype(np.float16)
    y16 = erf(half)
    assert y16.dtype == np.float16
    np.testing.assert_allclose(y16.astype(np.float64), _exact(half), atol=1e-3)
    assert erf(np.zeros((0, 4), np.float32)).shape == (0, 4)
    assert erf(np.float32(0.5)).shape == ()


def test_float64_is_exact() -> None:
    x = np.linspace(-6, 6, 10_001)
    y = erf(x)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, _exact(x))
    assert erf(np.float64(0.3)) == math.erf(0.3)


def test_integer_input_is_rejected() -> None:
    with pytest.raises(TypeError, match="int32"):
        erf(np.arange(3, dtype=np.int32))


def test_gelu_graph_on_both_backends() -> None:
    x = np.float32([[-5, -3.3, -1, -0.25, 0], [1e-3, 0.7, 2, 3.95, 8]])
    g = wrc.Graph("gelu")
    a = g.data("x", x.shape)
    g.output(g.mul(a, g.mul(g.const("half", np.float32(0.5)),
                             g.add(g.erf(g.div(a, g.const("s", np.float32(math.sqrt(2))))),
                                   g.const("one", np.float32(1))))))
    ref = (x * 0.5 * (1 + _exact(x / np.float32(math.sqrt(2))))).astype(np.float32)
    check(compile_bundles(g, ["half"]), {"x": x}, [ref], tol=2e-6)


def test_out_argument_in_place_and_broadcast() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 7)).astype(np.float32)
    ref = _exact(x)
    y = x.copy()
    assert erf(y, out=y) is y  # in place
    assert np.abs(y - ref).max() < 5e-7
    row = x[:1]
    out = np.empty((3, 7), np.float32)
    assert erf(row, out=out) is out  # the input broadcast to out's shape
    assert np.abs(out - np.broadcast_to(ref[:1], (3, 7))).max() < 5e-7
    out64 = np.empty((3, 7))
    erf(row.astype(np.float64), out=out64)
    np.testing.assert_array_equal(out64, np.broadcast_to(_exact(row), (3, 7)))
    half = np.empty((5, 7), np.float16)
    erf(x.astype(np.float16), out=half)
    np.testing.assert_allclose(half, ref, atol=1e-3)
    strided = np.zeros((7, 5), np.float32).T  # a transposed view: filled through a temporary
    assert erf(x, out=strided) is strided
    assert np.abs(strided - ref).max() < 5e-7
    with pytest.raises(ValueError, match="writeable float32"):
        erf(x, out=np.empty((5, 7)))
    frozen = np.empty((5, 7), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable float32"):
        erf(x, out=frozen)


def test_out_overlapping_the_input_elsewhere_than_in_place() -> None:
    # as a ufunc's out may (the JIT writes erf's value into whatever array its plan gives):
    # shifted by a few elements across several blocks, every value is read before it is written
    n = 2 * erf_module.BLOCK + 10
    x = np.random.default_rng(2).normal(size=n).astype(np.float32)
    ref = _exact(x)
    for shift in (5, -5):
        buf = x.copy()
        src, dst = (buf[:-shift], buf[shift:]) if shift > 0 else (buf[-shift:], buf[:shift])
        want = ref[:-shift] if shift > 0 else ref[-shift:]
        assert erf(src, out=dst) is dst
        assert np.abs(dst - want).max() < 5e-7, shift


def test_small_arrays_in_place_match_the_blocked_path() -> None:
    # arrays of up to SMALL elements (the JIT's in-place calls on small activations) take
    # a shorter path: the same passes, so the same values as the blocked one, bit for bit
    x = np.concatenate([np.linspace(-7, 7, 200_001, dtype=np.float32),
                        np.float32([3.92, 4.0, 4.0001, 1e30, -3.4e38, 0.0, -0.0, np.inf, -np.inf, np.nan])])
    want = erf(x)  # more than SMALL elements: blocks
    assert x.size > erf_module.SMALL
    got = x.copy()
    for start in range(0, x.size, erf_module.SMALL):
        chunk = got[start:start + erf_module.SMALL].reshape(-1, 1)
        assert erf(chunk, out=chunk) is chunk
    np.testing.assert_array_equal(got, want)
    assert np.abs(got[:200_001] - _exact(x[:200_001])).max() < 5e-7
    small = x[:1000].reshape(10, 100)
    np.testing.assert_array_equal(erf(small), want[:1000].reshape(10, 100))  # a new array
    frozen = small.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable float32"):
        erf(frozen, out=frozen)
