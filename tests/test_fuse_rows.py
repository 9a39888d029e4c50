"""Short rows in the fused-chain machine (`wrc/backends/native/elementwise.c`): rows of at
most half a block run several per block (a transformer's LayerNorm and softmax rows of
16-64 elements). Each result is checked against NumPy in float64 over row counts that end
a block early, fill it, and cross the next-to-innermost dim; rows read and written
transposed (strided loads and stores), per-row operands from memory, reductions, row-
invariant ops and a select of row values; and the JIT's groups against the interpreter
and `numpy{native=false}`."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tests.test_fuse import RNG, check, groups, needs_native, softmax
from tests.test_jit_transformer import layer_norm, layer_norm64
from wrc.backends.numpy_jit import fuse as fuse_mod
from wrc.graph import Graph

LOAD, STORE, CONST, SQRT, EXP, ADD, SUB, MUL, DIV, CMP, SELECT = 0, 1, 2, 6, 4, 10, 11, 12, 13, 19, 20
SUM, MAX_OF, PASS = 21, 22, 23
GT = 2  # arith.cmpf "ogt"


def _bits(v: float) -> int:
    return struct.unpack("<q", struct.pack("<d", v))[0]


def _program(dtype: int, ext: tuple[int, ...], operands: list[tuple[int, tuple[int, ...]]],
             code: list[tuple[int, ...]]) -> np.ndarray:
    words = [dtype, len(ext), *ext, len(operands)]
    for written, strides in operands:
        words += [written, 0, *strides]
    words += [1 + max(ins[1] for ins in code if ins[0] not in (STORE, PASS)), len(code)]
    for ins in code:
        words += [*ins, *[0] * (5 - len(ins))]
    return fuse_mod.program_array(tuple(words))


# s = x + b (b one value per row); e = exp(s - max(s)); S = sum(e); out = e / (2 S), written
# transposed; per-row results sqrt(S) + b and max(S, 2) (a compare and a select of row
# values), stored along the row.
_SOFTMAX_ROWS = [
    (LOAD, 0, 0), (LOAD, 1, 1), (ADD, 2, 0, 1), (MAX_OF, 3, 2), (PASS,),
    (LOAD, 0, 0), (LOAD, 1, 1), (ADD, 2, 0, 1), (SUB, 4, 2, 3), (EXP, 5, 4), (SUM, 6, 5), (PASS,),
    (LOAD, 0, 0), (LOAD, 1, 1), (ADD, 2, 0, 1), (SUB, 4, 2, 3), (EXP, 5, 4),
    (CONST, 7, _bits(2.0)), (MUL, 8, 6, 7), (DIV, 9, 5, 8),
    (SQRT, 10, 6), (ADD, 11, 10, 1),
    (CMP, 12, 6, 7, GT), (SELECT, 13, 12, 6, 7),
    (STORE, 2, 9), (STORE, 3, 11), (STORE, 4, 13),
]


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_short_rows_in_blocks_against_numpy(dtype: type) -> None:
    run = fuse_mod.native_module().run
    for inner in (1, 3, 8, 17, 64, 128, 129, 300):
        for outer in (1, 2, 7, 8, 15, 16, 41):
            xt = RNG.standard_normal((inner, outer)).astype(dtype)  # read transposed
            b = RNG.standard_normal(outer).astype(dtype)
            if outer > 3:
                xt[inner // 2, 2] = np.nan
                xt[:, 3] = -np.inf
            out_t = np.full((inner, outer), 7, dtype)  # written transposed
            per_row, clipped = np.full((outer, inner), 7, dtype), np.full((outer, inner), 7, dtype)
            prog = _program(int(dtype == np.float64), (outer, inner),
                            [(0, (1, outer)), (0, (1, 0)), (1, (1, outer)), (1, (inner, 1)), (1, (inner, 1))],
                            _SOFTMAX_ROWS)
            with np.errstate(invalid="ignore"):
                run(prog, xt, b, out_t, per_row, clipped)
                s = xt.T.astype(np.float64) + b[:, None]
                e = np.exp(s - s.max(-1, keepdims=True))
                total = e.sum(-1, keepdims=True)
                want = [e / (2 * total), *np.broadcast_arrays(np.sqrt(total) + b[:, None],
                                                              np.where(total > 2, total, 2), s)[:2]]
            tol = 2e-6 if dtype == np.float32 else 1e-12
            for got, w in zip((out_t.T, per_row, clipped), want, strict=True):
                np.testing.assert_allclose(got, w, rtol=tol, atol=tol, err_msg=f"{outer} rows of {inner}")
            if outer > 3:  # a row with a NaN is NaN throughout; a row of -inf NaN (as NumPy)
                assert np.isnan(out_t[:, 2]).all() and np.isnan(out_t[:, 3]).all()
                assert not np.isnan(out_t[:, [0, 1]]).any()


@needs_native
def test_layer_norm_and_softmax_of_short_rows_across_dims() -> None:
    # [3, 37, 17]: 15 rows of 17 per block, blocks ending where dim 1 does; LayerNorm with a
    # per-row shift from an input ([3, 37, 1]), then softmax
    x = (RNG.standard_normal((3, 37, 17)) * 2).astype(np.float32)
    shift = RNG.standard_normal((3, 37, 1)).astype(np.float32)
    gamma, beta = (RNG.standard_normal(17).astype(np.float32) for _ in range(2))
    g = Graph("rows")
    h = g.add(g.data("x", x.shape), g.data("shift", shift.shape))
    g.output(g.softmax(layer_norm(g, h, gamma, beta)))
    want = softmax(layer_norm64((x + shift).astype(np.float64), gamma, beta))
    check(g, [x, shift], [want], tol=2e-5, interp=False)
    assert groups(g)


@needs_native
def test_short_rows_agree_with_the_interpreter() -> None:
    x = (RNG.standard_normal((2, 9, 5)) * 2).astype(np.float32)
    gamma, beta = (RNG.standard_normal(5).astype(np.float32) for _ in range(2))
    g = Graph("tiny")
    g.output(g.softmax(layer_norm(g, g.data("x", x.shape), gamma, beta)))
    check(g, [x], [softmax(layer_norm64(x, gamma, beta))], tol=2e-5)


def _opcodes(program: tuple[int, ...]) -> list[int]:
    ndim = program[1]
    at = 2 + ndim
    at += 1 + program[at] * (2 + ndim) + 1  # operands, then the register count
    return list(program[at + 1::5])


@needs_native
def test_a_row_of_one_block_computes_each_value_once() -> None:
    # softmax(x * 3): the machine keeps a block's registers from pass to pass, so where a row
    # is one block `x * 3` and exp(x * 3 - max) are computed once (pass 1 and 2), not again
    # in the pass that divides; rows of 600 (three blocks) compute them again
    for width, muls, exps in ((17, 1, 1), (600, 3, 2)):
        x = RNG.standard_normal((4, width)).astype(np.float32)
        g = Graph("sm")
        g.output(g.softmax(g.mul(g.data("x", x.shape), g.const("three", np.float32(3)))))
        check(g, [x], [softmax(3 * x.astype(np.float64))], tol=1e-6, interp=False)
        [group] = groups(g)
        ops = _opcodes(group.program)
        assert (ops.count(MUL), ops.count(EXP), ops.count(PASS)) == (muls, exps, 2), (width, ops)


@needs_native
def test_one_broadcasting_op_on_a_small_space_is_a_call() -> None:
    # a bias add along the rows (16 x 32: NumPy's broadcasting costs more than the machine's
    # call) is a group of one; on 256 x 768, or with no operand broadcast, it stays NumPy's
    for shape, grouped in (((16, 32), True), ((256, 768), False)):
        x = RNG.standard_normal(shape).astype(np.float32)
        bias = RNG.standard_normal(shape[1]).astype(np.float32)
        g = Graph("bias")
        g.output(g.add(g.data("x", shape), g.const("b", bias)))
        check(g, [x], [x.astype(np.float64) + bias], interp=shape == (16, 32))
        assert [len(f.members) for f in groups(g)] == ([1] if grouped else [])
    g = Graph("same")
    g.output(g.add(g.data("x", (16, 32)), g.data("y", (16, 32))))
    assert groups(g) == []
