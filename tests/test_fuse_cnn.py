"""The fused-chain machine on CNN tails (fuse.py, wrc/backends/native/elementwise.c): its
sigmoid and multiply-add instructions, channel values broadcast over planes (squeeze-excite gates), against
NumPy formulas in float64, `numpy{native=false}` and the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_fuse import MODULE, check, groups, needs_native, run
from wrc.backends.numpy_jit import JitOptions
from wrc.backends.numpy_jit import fuse as fuse_mod
from wrc.backends.numpy_jit.fuse import MULADD, OPCODES, SIGMOID
from wrc.graph import Graph

RNG = np.random.default_rng(12)
TINY = float(np.finfo(np.float32).tiny)


def _one_op(code: int, x: np.ndarray) -> np.ndarray:
    """`code` applied by the machine to each element of the 1-d array `x`."""
    words = (0 if x.dtype == np.float32 else 1, 1, x.size, 2, 0, 0, 1, 1, 0, 1,
             2, 3, 0, 0, 0, 0, 0, code, 1, 0, 0, 0, 1, 1, 1, 0, 0)
    out = np.empty_like(x)
    MODULE.run(fuse_mod.program_array(words), x, out)
    return out


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in units of float32's spacing at want (want in float64, a normal float32)."""
    return np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want.astype(np.float32))).astype(np.float64)


def _opcode_words(program: tuple[int, ...]) -> list[int]:
    """The opcodes of a program's instructions (after its header: elementwise.c's layout)."""
    n = program[1]
    at = 2 + n + 1 + program[2 + n] * (2 + n)
    return [program[at + 2 + 5 * i] for i in range(program[at + 1])]


@needs_native
def test_machine_sigmoid_exp_tanh_within_ulps_over_a_dense_sweep() -> None:
    # float32 sigmoid and tanh (from e^-|x| and e^-2|x|: never overflow) and exp against
    # float64 NumPy, 440k points: within 2.5, 1.5 and 2 ulp where the result is a normal
    # float, within one subnormal step below; inf, -inf and NaN as the formula gives them
    x = np.concatenate([np.linspace(-120, 100, 400_001), np.geomspace(1e-30, 30, 20_000),
                        -np.geomspace(1e-30, 30, 20_000)]).astype(np.float32)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        for code, want, bound in ((SIGMOID, 1 / (1 + np.exp(-x64)), 2.5), (4, np.exp(x64), 1.5),
                                  (7, np.tanh(x64), 2.0)):
            got = _one_op(code, x)
            normal = (np.abs(want) >= TINY) & (want < np.finfo(np.float32).max)
            assert _ulps(got[normal], want[normal]).max() < bound, code
            low = ~normal & (np.abs(want) < 1)
            assert not low.any() or np.abs(got[low] - want[low]).max() <= 2.0 ** -149, code
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 104.0, -104.0], np.float32)
    np.testing.assert_array_equal(_one_op(SIGMOID, special),
                                  np.array([1, 0, np.nan, 0.5, 0.5, 1, 6.8e-46], np.float32))
    np.testing.assert_array_equal(_one_op(7, special), np.array([1, -1, np.nan, 0, 0, 1, -1], np.float32))
    x64 = RNG.standard_normal(1000) * 30
    np.testing.assert_allclose(_one_op(SIGMOID, x64), 1 / (1 + np.exp(-x64)), rtol=1e-15)


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_silu_with_bias_runs_the_sigmoid_instruction(dtype: type) -> None:
    # SiLU after a per-channel bias (EfficientNet's tail): one call, the sigmoid one
    # instruction of the program, no exp left
    x = (RNG.standard_normal((1, 6, 5, 5)) * 20).astype(dtype)
    b = RNG.standard_normal((1, 6, 1, 1)).astype(dtype)
    g = Graph("silu")
    h = g.add(g.data("x", x.shape, dtype=dtype), g.const("b", b))
    g.output(g.mul(h, g.sigmoid(h)))
    h64 = x.astype(np.float64) + b
    check(g, [x], [h64 / (1 + np.exp(-h64))], tol=1e-6, interp=dtype == np.float32)
    [group] = groups(g)
    assert _opcode_words(group.program).count(SIGMOID) == 1 and 4 not in _opcode_words(group.program)


@needs_native
def test_sigmoid_steps_read_elsewhere_stay_instructions() -> None:
    # 1 / (1 + exp(-x)) written out, its exp also an output: the exp is stored, so the chain
    # keeps its four instructions (the sigmoid instruction would not compute it)
    x = (RNG.standard_normal((4, 9)) * 5).astype(np.float32)
    g = Graph("steps")
    one = g.const("one", np.float32(1))
    e = g.exp(g.neg(g.data("x", x.shape)))
    g.output(g.div(one, g.add(one, e)), e)
    x64 = x.astype(np.float64)
    check(g, [x], [1 / (1 + np.exp(-x64)), np.exp(-x64)])
    [group] = groups(g)
    assert SIGMOID not in _opcode_words(group.program) and 4 in _opcode_words(group.program)


def _gate_graph(shape: tuple[int, ...], hard: bool) -> Graph:
    """x * gate(s + b), the gate over [1, C, 1, 1]: a sigmoid, or a hard sigmoid clip(s / 6 +
    1/2, 0, 1) (MobileNetV3's)."""
    g = Graph("se")
    c = shape[1]
    s = g.add(g.data("s", (1, c, 1, 1)), g.const("b", RNG.standard_normal((1, c, 1, 1)).astype(np.float32)))
    if hard:
        sixth, half, zero, one = (g.const(n, np.float32(v)) for n, v in (("k", 1 / 6), ("h", 0.5), ("z", 0), ("o", 1)))
        gate = g.maximum(g.minimum(g.add(g.mul(s, sixth), half), one), zero)
    else:
        gate = g.sigmoid(s)
    g.output(g.mul(g.data("x", shape), gate))
    return g


@needs_native
@pytest.mark.parametrize("plane", [(1, 1), (2, 2), (4, 4), (7, 7), (16, 16), (24, 24)])
@pytest.mark.parametrize("hard", [False, True])
def test_squeeze_excite_gate_is_a_member_broadcast_over_planes(plane: tuple[int, int], hard: bool) -> None:
    # the gate (bias add, sigmoid or hard sigmoid over the channels) and the product over the
    # planes are one call: a member over the leading dims, read at stride 0 along the others
    # (rows of up to 128 several to a block: 4x4 planes, 16 channels a block)
    c = 40
    g = _gate_graph((1, c, *plane), hard)
    x = RNG.standard_normal((1, c, *plane)).astype(np.float32)
    s = (RNG.standard_normal((1, c, 1, 1)) * 4).astype(np.float32)
    s64 = s.astype(np.float64) + g.weights["b"]
    gate = np.clip(s64 / 6 + 0.5, 0, 1) if hard else 1 / (1 + np.exp(-s64))
    got = check(g, [s, x], [x * gate], interp=plane == (2, 2))
    [group] = groups(g)
    assert len(group.members) == (6 if hard else 3)
    if hard:  # IEEE adds, products and clips: the machine is NumPy's to the bit
        np.testing.assert_array_equal(got[0], run(g, [s, x], JitOptions(native=False))[0])


@needs_native
@pytest.mark.parametrize("width", [1, 3, 16, 128, 300])
@pytest.mark.parametrize("channels", [5, 40])
def test_machine_per_row_registers(channels: int, width: int) -> None:
    # Over [2, C, W], two per-channel operands (stride 0 along the row): with rows of up to 128
    # several to a block they are per-row registers (one value a row), else uniform ones. Ops
    # on per-row and uniform operands, a comparison and a select of them, a product with a
    # full operand (the per-row value spread), a per-row value stored along its row, and the
    # row sum of a per-row value; against NumPy in float64.
    c, w = channels, width
    x = RNG.standard_normal((2, c, w)).astype(np.float32)
    b, b2 = RNG.standard_normal(c).astype(np.float32), RNG.standard_normal(c).astype(np.float32)
    s = np.array(0.75, np.float32)
    full, chan = (c * w, w, 1), (0, 1, 0)
    words = [0, 3, 2, c, w, 6]
    for written, strides in [(0, full), (0, chan), (0, chan), (0, (0, 0, 0)), (1, full), (1, full)]:
        words += [written, 0, *strides]
    code = [(0, 0, 0), (0, 1, 1), (0, 2, 2), (0, 3, 3),  # x, b, b2, s
            (12, 4, 1, 3),  # b * s
            (10, 5, 1, 2),  # b + b2
            (SIGMOID, 6, 4),  # sigmoid(b * s)
            (19, 7, 4, 5, 2),  # b * s > b + b2
            (20, 8, 7, 6, 3),  # where(b * s > b + b2, sigmoid(b * s), s)
            (12, 9, 0, 8),  # x * that
            (1, 4, 9), (1, 5, 8)]
    words += [10, len(code)]
    for ins in code:
        words += [*ins, *[0] * (5 - len(ins))]
    out, out2 = np.empty_like(x), np.empty_like(x)
    MODULE.run(fuse_mod.program_array(tuple(words)), x, b, b2, s, out, out2)
    b64, b264 = b.astype(np.float64)[:, None], b2.astype(np.float64)[:, None]
    gate = np.where(b64 * 0.75 > b64 + b264, 1 / (1 + np.exp(-b64 * 0.75)), 0.75)
    np.testing.assert_allclose(out, x * gate, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out2, np.broadcast_to(gate, x.shape), rtol=1e-6)
    # the row sum of a per-channel value, then that sum times x: w * b along each row
    words = [0, 3, 2, c, w, 3, 0, 0, *full, 0, 0, *chan, 1, 0, *full, 3, 6,
             0, 1, 1, 0, 0, 21, 2, 1, 0, 0, 23, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 2, 0, 1, 2, 0, 0, 0]
    MODULE.run(fuse_mod.program_array(tuple(words)), x, b, out)
    np.testing.assert_allclose(out, x * (w * b64), rtol=1e-5)


@needs_native
def test_one_op_with_a_constant_over_a_small_space_is_a_call_of_the_machine() -> None:
    # a squeeze-excite's ReLU and a pool's mean (x / 16) over the channels: machine calls, to
    # the bit NumPy's; the same ReLU over a large space stays NumPy's
    x = RNG.standard_normal((1, 24, 1, 1)).astype(np.float32)
    for name, make, want in (("relu", lambda g, t: g.relu(t), np.maximum(x, 0)),
                             ("mean", lambda g, t: g.div(t, g.const("n", np.float32(16))), x / np.float32(16))):
        g = Graph(name)
        g.output(make(g, g.data("x", x.shape)))
        got = check(g, [x], [want.astype(np.float64)], interp=False)
        np.testing.assert_array_equal(got[0], want)
        assert len(groups(g)) == 1
    g = Graph("big")
    g.output(g.relu(g.data("x", (1, 8, 64, 64))))
    assert groups(g) == []


@needs_native
@pytest.mark.parametrize("plane", [(1, 1), (4, 4), (7, 7), (24, 24)])
@pytest.mark.parametrize("form", ["scale_shift", "shift_first", "full", "uniform", "used_twice"])
def test_a_product_only_a_sum_reads_is_one_muladd_rounded_as_numpy(plane: tuple[int, int], form: str) -> None:
    # A convolution's BatchNorm left on its output (`ge-fold-weight-scales` on a refreshable
    # weight): relu(x * k + b), k and b per channel, is one MULADD (the product rounded, then
    # the sum: NumPy's bits, no fused multiply-add) over planes from 1x1 (uniform registers)
    # and 4x4 (per-row) to 24x24 (rows a block); the sum written the other way round, three
    # full operands, a scalar scale; a product also stored stays a MULF and an ADDF.
    c = 16
    x = (RNG.standard_normal((1, c, *plane)) * 3).astype(np.float32)
    k, b = (RNG.standard_normal((c, 1, 1)).astype(np.float32) for _ in range(2))
    g = Graph(form)
    xs = g.data("x", x.shape)
    inputs = [x]
    if form == "full":
        y, z = (RNG.standard_normal(x.shape).astype(np.float32) for _ in range(2))
        inputs += [y, z]
        prod, shift, want = g.mul(xs, g.data("y", y.shape)), g.data("z", z.shape), x * y + z
    elif form == "uniform":
        prod, shift, want = g.mul(g.const("k", np.float32(0.3)), xs), g.const("b", b), x * np.float32(0.3) + b
    else:
        prod, shift, want = g.mul(xs, g.const("k", k)), g.const("b", b), x * k + b
    out = g.add(shift, prod) if form == "shift_first" else g.add(prod, shift)
    g.output(g.relu(out), *([prod] if form == "used_twice" else []))
    got = check(g, inputs, [np.maximum(want.astype(np.float64), 0)], tol=1e-5, interp=plane == (4, 4))
    np.testing.assert_array_equal(got[0], np.maximum(want, 0))  # float32 NumPy, step by step
    np.testing.assert_array_equal(got[0], run(g, inputs, JitOptions(native=False))[0])
    [group] = groups(g)
    ops = _opcode_words(group.program)
    if form == "used_twice":
        assert MULADD not in ops and OPCODES["arith.mulf"] in ops
    else:
        assert ops.count(MULADD) == 1 and OPCODES["arith.mulf"] not in ops and OPCODES["arith.addf"] not in ops


@needs_native
def test_muladd_never_contracts_to_an_fma() -> None:
    # products whose rounding a fused multiply-add would skip (x * k near -b): the machine's
    # bits are NumPy's float32 multiply, then add, for every element
    x = RNG.standard_normal(4096).astype(np.float32)
    k = np.float32(1.1)
    b = -(x * k) + RNG.standard_normal(4096).astype(np.float32) * np.float32(1e-6)
    words = (0, 1, x.size, 4, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1,  # x, k (stride 0), b, out
             4, 5, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 2, 2, 0, 0,  # registers, loads
             MULADD, 3, 0, 1, 2, 1, 3, 3, 0, 0)  # x * k + b, stored
    out = np.empty_like(x)
    MODULE.run(fuse_mod.program_array(words), x, np.full(1, k), b, out)
    np.testing.assert_array_equal(out, x * k + b)
    assert not np.array_equal(out, (x.astype(np.float64) * k + b).astype(np.float32))  # an FMA's bits differ
