"""Chains of elementwise generics run as one native call (`numpy_jit/fuse.py`,
`wrc/backends/native/elementwise.c`): against NumPy formulas in float64, the interpreter,
and the JIT without native kernels (`numpy{native=false}`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from xdsl.dialects import func

from tests.test_jit_transformer import layer_norm, layer_norm64
from wrc import load_cache, pipeline
from wrc.backends import native
from wrc.backends.numpy_jit import JitOptions, NumpyBackend
from wrc.backends.numpy_jit import fuse as fuse_mod
from wrc.backends.numpy_jit.fuse import PASS
from wrc.backends.numpy_jit.kernels import Fused
from wrc.backends.numpy_jit.plan import plan_function
from wrc.graph import Graph

RNG = np.random.default_rng(4)
MODULE = native.load("elementwise")
needs_native = pytest.mark.skipif(MODULE is None, reason="no C compiler here: the JIT keeps its NumPy forms")


def lowered(g: Graph):
    return pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)


def run(g: Graph, inputs: list[np.ndarray], options: JitOptions | None = None, backend: str = "numpy"):
    module = lowered(g)
    if backend == "interp":
        from wrc.backends import get_backend

        return get_backend("interp").compile(module).run(g.name, dict(g.weights), inputs)
    return NumpyBackend(options or JitOptions()).compile(module).run(g.name, dict(g.weights), inputs)


def groups(g: Graph, options: JitOptions | None = None) -> list[Fused]:
    fn = next(op for op in lowered(g).ops if isinstance(op, func.FuncOp) and op.sym_name.data == g.name)
    return [k for k in plan_function(fn, options or JitOptions()).kernels.values() if isinstance(k, Fused)]


def check(g: Graph, inputs: list[np.ndarray], want: list[np.ndarray], tol: float = 2e-6,
          interp: bool = True) -> list[np.ndarray]:
    got = run(g, inputs)
    off = run(g, inputs, JitOptions(native=False))
    others = [off, run(g, inputs, backend="interp")] if interp else [off]
    for i, w in enumerate(want):
        np.testing.assert_allclose(got[i], w, rtol=tol, atol=tol)
        for o in others:
            np.testing.assert_allclose(got[i], o[i], rtol=tol, atol=tol)
    return got


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def erf64(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x.astype(np.float64))


@needs_native
def test_gelu_with_bias_is_one_call() -> None:
    # GELU's bias add, scale, erf, +1, two products: 6 generics, one call; the bias
    # broadcasts along the rows (stride 0)
    x = RNG.standard_normal((6, 16)).astype(np.float32) * 3
    b = RNG.standard_normal(16).astype(np.float32)
    g = Graph("gelu")
    h = g.add(g.data("x", x.shape), g.const("b", b))
    half, one, r2 = (g.const(n, np.float32(v)) for n, v in (("half", 0.5), ("one", 1.0), ("r2", math.sqrt(2))))
    g.output(g.mul(g.mul(h, g.add(g.erf(g.div(h, r2)), one)), half))
    h64 = x.astype(np.float64) + b
    check(g, [x], [0.5 * h64 * (1 + erf64(h64 / math.sqrt(2)))])
    [group] = groups(g)
    assert len(group.members) == 6
    assert groups(g, JitOptions(native=False)) == []


@needs_native
def test_layer_norm_between_its_row_means() -> None:
    # LayerNorm: the elementwise parts between the two row means (products with ones) are
    # groups; `x - mean` is read by both the square and the final scale (stored, not dead)
    x = (RNG.standard_normal((2, 5, 8)) * 3 + 1).astype(np.float32)
    gamma, beta = (RNG.standard_normal(8).astype(np.float32) for _ in range(2))
    g = Graph("ln")
    g.output(layer_norm(g, g.data("x", x.shape), gamma, beta))
    check(g, [x], [layer_norm64(x, gamma, beta)], tol=2e-5)
    [group] = groups(g)  # both row sums, the row values (sum / n, + eps, sqrt), the rest
    assert len(group.members) == 11


@needs_native
def test_softmax_and_intermediates_read_later() -> None:
    # softmax's exp(x - max) is a group; `t = 2 x` is read after its group (by a reduction
    # and as an output) so it is stored, `u` is read only inside and never reaches memory
    x = RNG.standard_normal((3, 7)).astype(np.float32)
    g = Graph("sm")
    a = g.data("x", x.shape)
    t = g.mul(a, g.const("two", np.float32(2)))
    u = g.exp(g.neg(t))
    w = g.add(u, t)
    g.output(g.softmax(w), t, g.reduce_sum(t, -1, keepdims=True))
    x64 = x.astype(np.float64)
    w64 = np.exp(-2 * x64) + 2 * x64
    e = np.exp(w64 - w64.max(-1, keepdims=True))
    check(g, [x], [e / e.sum(-1, keepdims=True), 2 * x64, (2 * x64).sum(-1, keepdims=True)], tol=1e-5)
    # 2x, -t, exp, + t, then softmax: maximum, exp(- max), sum, / sum: one call of three
    # passes over each row; the sum of t after it is not in it (t is read after the group)
    [group] = groups(g)
    assert len(group.members) == 8 and group.program.count(PASS) >= 2


@needs_native
def test_row_reductions_over_wide_rows_with_nan_and_inf() -> None:
    # rows of 600 (several blocks of the machine, a tail of 88), three dims: LayerNorm and
    # softmax in passes; a row holding a NaN is NaN throughout, a row of -inf's softmax NaN
    # (as NumPy); the mean, read after the group, is stored and stays out of it
    x = (RNG.standard_normal((2, 3, 600)) * 2).astype(np.float32)
    x[0, 1, 17] = np.nan
    x[1, 2] = -np.inf
    g = Graph("wide")
    a = g.data("x", x.shape)
    mean = g.reduce_mean(a, -1, keepdims=True)
    d = g.sub(a, mean)
    var = g.reduce_mean(g.mul(d, d), -1, keepdims=True)
    g.output(g.div(d, g.sqrt(g.add(var, g.const("eps", np.float32(1e-5))))), g.softmax(a), mean)
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        dd = x64 - x64.mean(-1, keepdims=True)
        ln = dd / np.sqrt((dd * dd).mean(-1, keepdims=True) + 1e-5)
        e = np.exp(x64 - x64.max(-1, keepdims=True))
        want = [ln, e / e.sum(-1, keepdims=True), x64.mean(-1, keepdims=True)]
        got = run(g, [x])
        off = run(g, [x], JitOptions(native=False))
    for i, w in enumerate(want):
        np.testing.assert_allclose(got[i], w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[i], off[i], rtol=1e-5, atol=1e-6)
    assert np.isnan(got[0][0, 1]).all() and np.isnan(got[1][1, 2]).all() and not np.isnan(got[1][1, 1]).any()
    assert groups(g)


@needs_native
def test_masks_computed_in_the_group_stay_registers() -> None:
    # sdpa's masked softmax: `where(isnan(p), 0, p)` after the softmax joins its group (the
    # i1 mask is a register); a mask from memory (an input) is no member's
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    mask = np.zeros((3, 4), np.float32)
    mask[1] = -np.inf
    mask[2, :2] = -np.inf
    keep = np.array([[True, False, True, True]] * 3)
    g = Graph("masked")
    p = g.softmax(g.add(g.data("x", x.shape), g.const("mask", mask)))
    filled = g.where(g.is_nan(p), g.const("zero", np.float32(0)), p)
    g.output(g.where(g.data("keep", keep.shape, "bool"), filled, g.neg(filled)))
    with np.errstate(invalid="ignore"):
        ref = softmax(x.astype(np.float64) + mask)
    ref[np.isnan(ref)] = 0
    got = check(g, [x, keep], [np.where(keep, ref, -ref)], tol=2e-6)
    assert not got[0][1].any()
    sizes = sorted(len(f.members) for f in groups(g))
    assert sizes[-1] >= 6  # + mask, softmax's four, isnan, select (the input mask's select: not)


UNARY = {
    "neg": (lambda g, v: g.neg(v), lambda v: -v),
    "exp": (lambda g, v: g.exp(v), np.exp),
    "log": (lambda g, v: g.log(g.abs(v)), lambda v: np.log(np.abs(v))),
    "sqrt": (lambda g, v: g.sqrt(g.abs(v)), lambda v: np.sqrt(np.abs(v))),
    "tanh": (lambda g, v: g.tanh(v), np.tanh),
    "sigmoid": (lambda g, v: g.sigmoid(v), lambda v: 1 / (1 + np.exp(-v))),
    "relu": (lambda g, v: g.relu(v), lambda v: np.maximum(v, 0)),
    "erf": (lambda g, v: g.erf(v), erf64),
}
BINARY = {
    "add": (Graph.add, np.add), "sub": (Graph.sub, np.subtract), "mul": (Graph.mul, np.multiply),
    "div": (Graph.div, np.divide), "max": (Graph.maximum, np.maximum), "min": (Graph.minimum, np.minimum),
    "pow": (lambda g, a, b: g.pow(g.abs(a), b), lambda a, b: np.abs(a) ** b),
}


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", sorted(UNARY) + sorted(BINARY))
def test_each_body_op(op: str, dtype: type) -> None:
    # op(x * 1.5 + c) with a [4, 1] column broadcast along the rows, then `* 0.5`: each op
    # inside a group of three or more generics
    x = (RNG.standard_normal((4, 9)) * 2).astype(dtype)
    c = RNG.standard_normal((4, 1)).astype(dtype)
    g = Graph("op")
    h = g.add(g.mul(g.data("x", x.shape, dtype), g.const("k", 1.5, dtype)), g.const("c", c))
    h64 = x.astype(np.float64) * 1.5 + c
    if op in UNARY:
        build, ref = UNARY[op]
        y, y64 = build(g, h), ref(h64)
    else:
        build2, ref2 = BINARY[op]
        other = RNG.standard_normal(9).astype(dtype)  # broadcast along the columns
        y, y64 = build2(g, h, g.const("o", other)), ref2(h64, other.astype(np.float64))
    g.output(g.mul(y, g.const("half", 0.5, dtype)))
    tol = 2e-6 if dtype == np.float32 else 1e-12
    check(g, [x], [0.5 * y64], tol=tol * (10 if op in ("pow", "exp", "sigmoid") else 1), interp=op != "erf")
    assert groups(g) and all(len(f.members) >= 3 for f in groups(g))


@needs_native
def test_transposed_and_strided_operands() -> None:
    # an input read transposed (stride ≠ 1 in the innermost dim) and an output written once
    x = RNG.standard_normal((5, 6)).astype(np.float32)
    y = RNG.standard_normal((6, 5)).astype(np.float32)
    g = Graph("tr")
    t = g.add(g.data("x", x.shape), g.transpose(g.data("y", y.shape), (1, 0)))
    g.output(g.tanh(g.mul(t, t)))
    t64 = x.astype(np.float64) + y.T
    check(g, [x, y], [np.tanh(t64 * t64)])
    assert groups(g)


@needs_native
def test_machine_functions_accuracy() -> None:
    # exp, tanh and erf of elementwise.c (float32, branch-free) against float64 over the
    # line, with infinities, NaN, subnormal results and tiny arguments
    x = np.concatenate([np.linspace(-110, 100, 20001), np.geomspace(1e-30, 10, 400),
                        -np.geomspace(1e-30, 10, 400), [0.0, -0.0, np.inf, -np.inf, np.nan]]).astype(np.float32)
    x64 = x.astype(np.float64)
    for code, ref in ((4, np.exp), (7, np.tanh), (8, erf64)):
        words = (0, 1, x.size, 2, 0, 0, 1, 1, 0, 1, 2, 3, 0, 0, 0, 0, 0, code, 1, 0, 0, 0, 1, 1, 1, 0, 0)
        out = np.empty_like(x)
        MODULE.run(fuse_mod.program_array(words), x, out)
        with np.errstate(over="ignore", invalid="ignore"):
            want = ref(x64)
            ok = np.isfinite(want.astype(np.float32))  # (exp's overflow to inf in float32)
        rel = np.abs(out[ok] - want[ok]) / np.maximum(np.abs(want[ok]), np.finfo(np.float32).tiny)
        assert rel.max() < (7e-7 if code == 8 else 3e-7), code  # erf: 7 ulp (erf.py's formula)
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(out[~ok], want[~ok].astype(np.float32))  # inf, nan


@needs_native
def test_machine_comparisons_and_select() -> None:
    # every arith.cmpf predicate (ordered ones false on NaN, unordered ones true), then
    # select(c, a, b): out = where(cmp(a, b), a, b)
    a = np.array([1, 2, 3, np.nan, 5, np.nan, -np.inf], np.float32)
    b = np.array([2, 2, 1, 0, np.nan, np.nan, 0], np.float32)
    with np.errstate(invalid="ignore"):
        uno = np.isnan(a) | np.isnan(b)
        ordered = [np.zeros_like(uno), a == b, a > b, a >= b, a < b, a <= b, (a < b) | (a > b), ~uno]
    want = ordered + [~ordered[k] for k in (6, 5, 4, 3, 2, 1, 7)] + [np.ones_like(uno)]  # ueq = ~one, ...
    for pred in range(16):
        words = (0, 1, 7, 3, 0, 0, 1, 0, 0, 1, 1, 0, 1, 3, 5,
                 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 19, 2, 0, 1, pred, 20, 2, 2, 0, 1, 1, 2, 2, 0, 0)
        out = np.empty_like(a)
        MODULE.run(fuse_mod.program_array(words), a, b, out)
        np.testing.assert_array_equal(out, np.where(want[pred], a, b), err_msg=str(pred))


@needs_native
def test_machine_checks_its_arguments() -> None:
    x = np.zeros(8, np.float32)
    words = (0, 1, 8, 2, 0, 0, 1, 1, 0, 1, 1, 2, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0)  # y = x
    prog = fuse_mod.program_array(words)
    MODULE.run(prog, np.arange(8, dtype=np.float32), x)
    np.testing.assert_array_equal(x, np.arange(8))
    with pytest.raises(TypeError, match="takes 2 arrays, got 1"):
        MODULE.run(prog, x)
    with pytest.raises(ValueError, match="array 1: the program reaches"):
        MODULE.run(prog, x, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="array 1: expected a C-contiguous writable array"):
        MODULE.run(prog, x, x.copy()[::2].repeat(2)[::2])
    with pytest.raises(ValueError, match="array 0: expected items of format f"):
        MODULE.run(prog, x.astype(np.float64), x)
    with pytest.raises(ValueError, match="malformed"):
        MODULE.run(fuse_mod.program_array(words[:-1]), x, x)
    with pytest.raises(ValueError, match="malformed"):  # a register out of range
        MODULE.run(fuse_mod.program_array(words[:12] + (0, 5) + words[14:]), x, x)


@needs_native
def test_generated_constants_are_load_cache_values() -> None:
    # the program (an int64 array) and the machine's function are what the load cache encodes
    g = Graph("c")
    a = g.data("x", (3, 4))
    g.output(g.exp(g.mul(g.add(a, a), a)))
    module = NumpyBackend().compile(lowered(g))
    [f] = module.functions
    values = [v for k, v in f.namespace.items() if k.startswith("k")]
    assert any(v is fuse_mod.native_module().run for v in values)
    for v in values:
        back = load_cache._decode(load_cache._encode(v))
        if isinstance(v, np.ndarray):
            assert back.dtype == v.dtype and np.array_equal(back, v, equal_nan=v.dtype.kind == "f")
        else:
            assert back is v or back == v


def test_without_native_nothing_is_grouped(monkeypatch) -> None:
    monkeypatch.setenv("WRC_NATIVE", "off")
    g = Graph("off")
    a = g.data("x", (3, 4))
    g.output(g.exp(g.mul(g.add(a, a), a)))
    assert groups(g) == []
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(run(g, [x])[0], np.exp((x + x) * x), rtol=1e-6)


def _program(ext: tuple[int, ...], operands: list[tuple[int, tuple[int, ...]]], regs: int,
             code: list[tuple[int, ...]]) -> np.ndarray:
    """elementwise.c's program: float32 over `ext`, operands as (written, strides)."""
    words = [0, len(ext), *ext, len(operands)]
    for written, strides in operands:
        words += [written, 0, *strides]
    words += [regs, len(code)]
    for ins in code:
        words += [*ins, *[0] * (5 - len(ins))]
    return fuse_mod.program_array(tuple(words))


@needs_native
@pytest.mark.parametrize("width", [1, 3, 16, 128, 129, 300])
@pytest.mark.parametrize("channels", [1, 5, 40])
def test_machine_uniform_operands_and_row_blocks(channels: int, width: int) -> None:
    # A per-channel value (stride 0 along the row), a scalar (stride 0 everywhere) and a
    # transposed operand, over [2, C, W]: rows of up to 128 run several to a block (the
    # per-channel value then differs along the block), longer ones block by block (then it
    # is uniform, as the scalar is). Each op with a uniform operand on either side, both
    # sides, a select mixing them, and a uniform value stored.
    x = RNG.standard_normal((2, channels, width)).astype(np.float32)
    b = RNG.standard_normal(channels).astype(np.float32)
    s = np.array(1.5, np.float32)
    t = RNG.standard_normal((2, width, channels)).astype(np.float32)
    c, w = channels, width
    prog = _program((2, c, w), [(0, (c * w, w, 1)), (0, (0, 1, 0)), (0, (0, 0, 0)), (0, (c * w, 1, c)),
                                (1, (c * w, w, 1)), (1, (c * w, w, 1))], 10, [
        (0, 0, 0), (0, 1, 1), (0, 2, 2), (0, 3, 3),  # x, b, s, t
        (10, 4, 1, 0),  # b + x
        (12, 5, 4, 2),  # (b + x) * s
        (12, 6, 1, 2),  # b * s
        (11, 7, 5, 3),  # - t
        (19, 8, 0, 1, 2),  # x > b
        (20, 9, 8, 7, 6),  # where(x > b, (b + x) * s - t, b * s)
        (1, 4, 9), (1, 5, 6)])
    out, out2 = np.empty_like(x), np.empty_like(x)
    MODULE.run(prog, x, b, s, t, out, out2)
    x64, b64, t64 = x.astype(np.float64), b.astype(np.float64)[:, None], t.astype(np.float64).transpose(0, 2, 1)
    np.testing.assert_allclose(out, np.where(x64 > b64, (b64 + x64) * 1.5 - t64, b64 * 1.5), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out2, np.broadcast_to(b[:, None] * s, x.shape))


@needs_native
@pytest.mark.parametrize("plane", [(1, 1), (2, 2), (4, 4), (7, 7), (16, 16)])
def test_cnn_tail_is_one_call(plane: tuple[int, int]) -> None:
    # a convolution's tail over NCHW planes from 1x1 to 16x16: per-channel bias and scale
    # (BatchNorm folded), HardSwish, then a squeeze-excite gate (a per-channel sigmoid)
    # and a residual add; the bias and gate broadcast over each plane (stride 0 along rows)
    c = 6
    x = RNG.standard_normal((1, c, *plane)).astype(np.float32) * 3
    r = RNG.standard_normal((1, c, *plane)).astype(np.float32)
    bias, scale, gate = (RNG.standard_normal((c, 1, 1)).astype(np.float32) for _ in range(3))
    g = Graph("tail")
    h = g.mul(g.add(g.data("x", x.shape), g.const("bias", bias)), g.const("scale", scale))
    three, zero, six = (g.const(n, np.float32(v)) for n, v in (("three", 3), ("zero", 0), ("six", 6)))
    hs = g.div(g.mul(h, g.minimum(g.maximum(g.add(h, three), zero), six)), six)
    g.output(g.add(g.mul(hs, g.sigmoid(g.const("gate", gate))), g.data("r", r.shape)))
    h64 = (x.astype(np.float64) + bias) * scale
    hs64 = h64 * np.clip(h64 + 3, 0, 6) / 6
    check(g, [x, r], [hs64 / (1 + np.exp(-gate.astype(np.float64))) + r], tol=1e-5)
    assert groups(g)


@needs_native
def test_one_op_with_a_broadcast_operand_is_a_call_of_the_machine() -> None:
    # a lone per-channel bias add (a projection convolution's) runs on the machine; a lone
    # add of two whole arrays stays NumPy's
    x = RNG.standard_normal((1, 5, 3, 4)).astype(np.float32)
    b = RNG.standard_normal((1, 5, 1, 1)).astype(np.float32)
    g = Graph("bias")
    g.output(g.add(g.data("x", x.shape), g.const("b", b)))
    check(g, [x], [x.astype(np.float64) + b])
    [group] = groups(g)
    assert len(group.members) == 1
    g2 = Graph("plain")
    g2.output(g2.add(g2.data("x", x.shape), g2.data("y", x.shape)))
    assert groups(g2) == []
