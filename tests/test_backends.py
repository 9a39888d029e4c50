"""Backends on level-3 IR: the NumPy JIT and the xDSL interpreter against independent NumPy
formulas and against each other (docs/internals.md, "Backends").

Level-3 modules are written by hand here (so the backends are tested on their own), and
then produced from `ge` graphs by the real passes. Interpreter cases stay tiny: it costs
~50 µs per scalar multiply-add.
"""

from __future__ import annotations

import io
import threading
import tokenize
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser

from wrc import dtypes
from wrc.backends import BACKENDS, UnknownBackendError, get_backend
from wrc.context import make_context
from wrc.errors import InputError, LoweringError, WrcError

HOST_BACKENDS = sorted(n for n in BACKENDS if n != "cupy")
"""Backends whose compiled modules take host (NumPy) arrays: the `cupy` one takes CuPy
arrays at this level and is tested in test_cupy.py (on a GPU) and test_device_arrays.py."""

RNG = np.random.default_rng(1234)
TOL = 1e-5


def rand(*shape: int, dtype: type = np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def parse(text: str, verify: bool = True) -> ModuleOp:
    module = Parser(make_context(), text, "<test>").parse_module()
    if verify:
        module.verify()
    return module


def check_generated(source: str) -> None:
    """Generated code holds no literal: every name, shape, dtype, value is a generated name."""
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        assert tok.type not in (tokenize.STRING, tokenize.NUMBER), (tok, source)
        assert tok.type != tokenize.COMMENT, source


def run(backend: str, module: ModuleOp, graph: str, globals_: Mapping[str, np.ndarray],
        args: Sequence[np.ndarray | bool]) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Run on copies; check inputs are untouched and outputs fresh. Returns (outs, globals after)."""
    g = {k: v.copy() for k, v in globals_.items()}
    a = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
    compiled = get_backend(backend).compile(module)
    if backend == "numpy":
        for name in compiled.graphs:
            check_generated(compiled.source(name))  # type: ignore[attr-defined]
    outs = compiled.run(graph, g, a)
    for x, y in zip(a, args, strict=True):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)  # inputs are never written
    for o in outs:
        assert isinstance(o, np.ndarray)
        for other in [*g.values(), *(x for x in a if isinstance(x, np.ndarray))]:
            assert not np.shares_memory(o, other), "an output aliases an input or a global"
    return outs, g


def run_both(text: str | ModuleOp, graph: str = "var_infer_graph",
             globals_: Mapping[str, np.ndarray] | None = None,
             args: Sequence[np.ndarray | bool] = ()) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Both backends; asserts they agree (results and written globals); returns numpy's."""
    module = parse(text) if isinstance(text, str) else text
    before = module.clone()
    outs, g = run("numpy", module, graph, globals_ or {}, args)
    ref_outs, ref_g = run("interp", module, graph, globals_ or {}, args)
    assert str(module) == str(before), "compile modified the module"
    assert len(outs) == len(ref_outs)
    for o, r in zip(outs, ref_outs, strict=True):
        assert (o.shape, o.dtype) == (r.shape, r.dtype)
        np.testing.assert_allclose(o, r, rtol=TOL, atol=TOL)
    for k in g:
        np.testing.assert_allclose(g[k], ref_g[k], rtol=TOL, atol=TOL)
    return outs, g


def close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL)


def var(name: str, type_: str) -> str:
    return (f'"memref.global"() <{{sym_name = "{name}", sym_visibility = "public", '
            f'type = {type_}, initial_value}}> {{ge.variable}} : () -> ()')


def const(name: str, type_: str) -> str:
    return (f'"memref.global"() <{{sym_name = "{name}", sym_visibility = "private", '
            f'type = {type_}, constant, initial_value}}> {{ge.constant}} : () -> ()')


ID2 = "affine_map<(d0, d1) -> (d0, d1)>"
PAR2 = '["parallel", "parallel"]'

# ---------------------------------------------------------------- hand-written level 3

MLP = f"""
{var("w_var", "memref<4x3xf32>")}
{const("b", "memref<3xf32>")}
func.func @var_infer_graph(%x: memref<2x4xf32> {{ge.name = "x"}}) -> memref<2x3xf32> {{
  %w = memref.get_global @w_var : memref<4x3xf32>
  %b = memref.get_global @b : memref<3xf32>
  %zero = arith.constant 0.000000e+00 : f32
  %mm = memref.alloc() : memref<2x3xf32>
  linalg.fill ins(%zero : f32) outs(%mm : memref<2x3xf32>)
  linalg.generic {{indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]}} ins(%x, %w : memref<2x4xf32>, memref<4x3xf32>) outs(%mm : memref<2x3xf32>) {{
  ^bb0(%a: f32, %bb: f32, %acc: f32):
    %p = arith.mulf %a, %bb : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }}
  %y = memref.alloc() : memref<2x3xf32>
  linalg.generic {{indexing_maps = [{ID2}, affine_map<(d0, d1) -> (d1)>, {ID2}], iterator_types = {PAR2}}} ins(%mm, %b : memref<2x3xf32>, memref<3xf32>) outs(%y : memref<2x3xf32>) {{
  ^bb0(%a: f32, %c: f32, %o: f32):
    %s = arith.addf %a, %c : f32
    %z = arith.constant 0.000000e+00 : f32
    %r = arith.maximumf %s, %z : f32
    linalg.yield %r : f32
  }}
  func.return %y : memref<2x3xf32>
}}
"""


def test_mlp_layer() -> None:
    x, w, b = rand(2, 4), rand(4, 3), rand(3)
    (y,), g = run_both(MLP, globals_={"w_var": w, "b": b}, args=[x])
    close(y, np.maximum(x @ w + b, 0))
    np.testing.assert_array_equal(g["w_var"], w)  # read, not written


SOFTMAX = f"""
func.func @var_infer_graph(%x: memref<2x5xf32> {{ge.name = "x"}}) -> memref<2x5xf32> {{
  %ninf = arith.constant 0xFF800000 : f32
  %zero = arith.constant 0.000000e+00 : f32
  %m = memref.alloc() : memref<2xf32>
  linalg.fill ins(%ninf : f32) outs(%m : memref<2xf32>)
  linalg.generic {{indexing_maps = [{ID2}, affine_map<(d0, d1) -> (d0)>], iterator_types = ["parallel", "reduction"]}} ins(%x : memref<2x5xf32>) outs(%m : memref<2xf32>) {{
  ^bb0(%a: f32, %acc: f32):
    %r = arith.maximumf %acc, %a : f32
    linalg.yield %r : f32
  }}
  %e = memref.alloc() : memref<2x5xf32>
  linalg.generic {{indexing_maps = [{ID2}, affine_map<(d0, d1) -> (d0)>, {ID2}], iterator_types = {PAR2}}} ins(%x, %m : memref<2x5xf32>, memref<2xf32>) outs(%e : memref<2x5xf32>) {{
  ^bb0(%a: f32, %b: f32, %o: f32):
    %d = arith.subf %a, %b : f32
    %ex = math.exp %d : f32
    linalg.yield %ex : f32
  }}
  %s = memref.alloc() : memref<2xf32>
  linalg.fill ins(%zero : f32) outs(%s : memref<2xf32>)
  linalg.generic {{indexing_maps = [{ID2}, affine_map<(d0, d1) -> (d0)>], iterator_types = ["parallel", "reduction"]}} ins(%e : memref<2x5xf32>) outs(%s : memref<2xf32>) {{
  ^bb0(%a: f32, %acc: f32):
    %r = arith.addf %acc, %a : f32
    linalg.yield %r : f32
  }}
  %y = memref.alloc() : memref<2x5xf32>
  linalg.generic {{indexing_maps = [{ID2}, affine_map<(d0, d1) -> (d0)>, {ID2}], iterator_types = {PAR2}}} ins(%e, %s : memref<2x5xf32>, memref<2xf32>) outs(%y : memref<2x5xf32>) {{
  ^bb0(%a: f32, %b: f32, %o: f32):
    %q = arith.divf %a, %b : f32
    linalg.yield %q : f32
  }}
  func.return %y : memref<2x5xf32>
}}
"""


def test_softmax() -> None:
    x = rand(2, 5) * 3
    (y,), _ = run_both(SOFTMAX, args=[x])
    e = np.exp(x - x.max(axis=1, keepdims=True))
    close(y, e / e.sum(axis=1, keepdims=True))


TRANSPOSE = """
func.func @var_infer_graph(%x: memref<2x3x4xf32> {ge.name = "x"}) -> memref<4x2x3xf32> {
  %y = memref.alloc() : memref<4x2x3xf32>
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d1, d2, d0)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x : memref<2x3x4xf32>) outs(%y : memref<4x2x3xf32>) {
  ^bb0(%a: f32, %o: f32):
    linalg.yield %a : f32
  }
  func.return %y : memref<4x2x3xf32>
}
"""


def test_transpose() -> None:
    x = rand(2, 3, 4)
    (y,), _ = run_both(TRANSPOSE, args=[x])
    np.testing.assert_array_equal(y, x.transpose(2, 0, 1))


RESHAPE = f"""
func.func @var_infer_graph(%x: memref<2x3x4xf32> {{ge.name = "x"}}) -> (memref<4x6xf32>, memref<3x8xf32>) {{
  %c = memref.collapse_shape %x [[0, 1, 2]] : memref<2x3x4xf32> into memref<24xf32>
  %e = memref.expand_shape %c [[0, 1]] output_shape [4, 6] : memref<24xf32> into memref<4x6xf32>
  %y = memref.alloc() : memref<4x6xf32>
  linalg.generic {{indexing_maps = [{ID2}, {ID2}], iterator_types = {PAR2}}} ins(%e : memref<4x6xf32>) outs(%y : memref<4x6xf32>) {{
  ^bb0(%a: f32, %o: f32):
    %one = arith.constant 1.000000e+00 : f32
    %s = arith.addf %a, %one : f32
    linalg.yield %s : f32
  }}
  %f = memref.collapse_shape %y [[0, 1]] : memref<4x6xf32> into memref<24xf32>
  %z = memref.expand_shape %f [[0, 1]] output_shape [3, 8] : memref<24xf32> into memref<3x8xf32>
  func.return %y, %z : memref<4x6xf32>, memref<3x8xf32>
}}
"""


def test_reshape_views() -> None:
    """Views of the same fresh buffer returned twice: the second result is a copy."""
    x = rand(2, 3, 4)
    (y, z), _ = run_both(RESHAPE, args=[x])
    close(y, x.reshape(4, 6) + 1)
    close(z, x.reshape(3, 8) + 1)
    assert not np.shares_memory(y, z)


def conv_module(n: int, c: int, h: int, f: int, k: int, pad: int, stride: int, dil: int, groups: int) -> str:
    """NCHW conv with groups split by expand_shape (as convert-ge-to-linalg does), + bias."""
    cg, fg, hp = c // groups, f // groups, h + 2 * pad
    oh = (hp - dil * (k - 1) - 1) // stride + 1
    m8 = "affine_map<(d0, d1, d2, d3, d4, d5, d6, d7) -> ({})>"
    return f"""
{var("w", f"memref<{f}x{cg}x{k}x{k}xf32>")}
{const("bias", f"memref<{f}xf32>")}
func.func @var_infer_graph(%x: memref<{n}x{c}x{h}x{h}xf32> {{ge.name = "x"}}) -> memref<{n}x{f}x{oh}x{oh}xf32> {{
  %zero = arith.constant 0.000000e+00 : f32
  %p = memref.alloc() : memref<{n}x{c}x{hp}x{hp}xf32>
  linalg.fill ins(%zero : f32) outs(%p : memref<{n}x{c}x{hp}x{hp}xf32>)
  linalg.generic {{indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2 + {pad}, d3 + {pad})>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%x : memref<{n}x{c}x{h}x{h}xf32>) outs(%p : memref<{n}x{c}x{hp}x{hp}xf32>) {{
  ^bb0(%a: f32, %o: f32):
    linalg.yield %a : f32
  }}
  %xe = memref.expand_shape %p [[0], [1, 2], [3], [4]] output_shape [{n}, {groups}, {cg}, {hp}, {hp}] : memref<{n}x{c}x{hp}x{hp}xf32> into memref<{n}x{groups}x{cg}x{hp}x{hp}xf32>
  %w = memref.get_global @w : memref<{f}x{cg}x{k}x{k}xf32>
  %we = memref.expand_shape %w [[0, 1], [2], [3], [4]] output_shape [{groups}, {fg}, {cg}, {k}, {k}] : memref<{f}x{cg}x{k}x{k}xf32> into memref<{groups}x{fg}x{cg}x{k}x{k}xf32>
  %acc = memref.alloc() : memref<{n}x{groups}x{fg}x{oh}x{oh}xf32>
  linalg.fill ins(%zero : f32) outs(%acc : memref<{n}x{groups}x{fg}x{oh}x{oh}xf32>)
  linalg.generic {{indexing_maps = [{m8.format(f"d0, d1, d5, d3 * {stride} + d6 * {dil}, d4 * {stride} + d7 * {dil}")}, {m8.format("d1, d2, d5, d6, d7")}, {m8.format("d0, d1, d2, d3, d4")}], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction"]}} ins(%xe, %we : memref<{n}x{groups}x{cg}x{hp}x{hp}xf32>, memref<{groups}x{fg}x{cg}x{k}x{k}xf32>) outs(%acc : memref<{n}x{groups}x{fg}x{oh}x{oh}xf32>) {{
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  }}
  %conv = memref.collapse_shape %acc [[0], [1, 2], [3], [4]] : memref<{n}x{groups}x{fg}x{oh}x{oh}xf32> into memref<{n}x{f}x{oh}x{oh}xf32>
  %bias = memref.get_global @bias : memref<{f}xf32>
  %y = memref.alloc() : memref<{n}x{f}x{oh}x{oh}xf32>
  linalg.generic {{indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d1)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%conv, %bias : memref<{n}x{f}x{oh}x{oh}xf32>, memref<{f}xf32>) outs(%y : memref<{n}x{f}x{oh}x{oh}xf32>) {{
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  }}
  func.return %y : memref<{n}x{f}x{oh}x{oh}xf32>
}}
"""


def ref_conv(x: np.ndarray, w: np.ndarray, bias: np.ndarray, pad: int, stride: int, dil: int,
             groups: int) -> np.ndarray:
    """Direct loops over output positions and kernel taps, in float64."""
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, hp, _ = xp.shape
    f, cg, k, _ = w.shape
    fg = f // groups
    oh = (hp - dil * (k - 1) - 1) // stride + 1
    out = np.zeros((n, f, oh, oh))
    for o in range(f):
        g = o // fg
        for i in range(oh):
            for j in range(oh):
                win = xp[:, g * cg:(g + 1) * cg, i * stride:i * stride + dil * (k - 1) + 1:dil,
                         j * stride:j * stride + dil * (k - 1) + 1:dil]
                out[:, o, i, j] = (win * w[o]).sum(axis=(1, 2, 3))
    return (out + bias[None, :, None, None]).astype(np.float32)


@pytest.mark.parametrize(
    ("n", "c", "h", "f", "k", "pad", "stride", "dil", "groups"),
    [(2, 4, 5, 4, 3, 1, 2, 2, 2), (1, 2, 4, 3, 3, 1, 1, 1, 1)],
)
def test_conv(n: int, c: int, h: int, f: int, k: int, pad: int, stride: int, dil: int, groups: int) -> None:
    x, w, bias = rand(n, c, h, h), rand(f, c // groups, k, k), rand(f)
    (y,), _ = run_both(conv_module(n, c, h, f, k, pad, stride, dil, groups),
                       globals_={"w": w, "bias": bias}, args=[x])
    close(y, ref_conv(x, w, bias, pad, stride, dil, groups))


@pytest.mark.parametrize("groups", [1, 4])
def test_conv_numpy_larger(groups: int) -> None:
    """Sizes the interpreter would take minutes on: the JIT alone against the reference."""
    n, c, h, f = 3, 8, 12, 8
    x, w, bias = rand(n, c, h, h), rand(f, c // groups, 3, 3), rand(f)
    module = parse(conv_module(n, c, h, f, 3, 1, 2, 1, groups))
    (y,), _ = run("numpy", module, "var_infer_graph", {"w": w, "bias": bias}, [x])
    close(y, ref_conv(x, w, bias, 1, 2, 1, groups))


POOLS = """
func.func @var_infer_graph(%x: memref<1x2x5x5xf32> {ge.name = "x"}) -> (memref<1x2x3x3xf32>, memref<1x2x4x4xf32>) {
  %ninf = arith.constant 0xFF800000 : f32
  %zero = arith.constant 0.000000e+00 : f32
  %p = memref.alloc() : memref<1x2x7x7xf32>
  linalg.fill ins(%ninf : f32) outs(%p : memref<1x2x7x7xf32>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2 + 1, d3 + 1)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x : memref<1x2x5x5xf32>) outs(%p : memref<1x2x7x7xf32>) {
  ^bb0(%a: f32, %o: f32):
    linalg.yield %a : f32
  }
  %win = memref.alloc() : memref<3x3xf32>
  %mx = memref.alloc() : memref<1x2x3x3xf32>
  linalg.fill ins(%ninf : f32) outs(%mx : memref<1x2x3x3xf32>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2 * 2 + d4, d3 * 2 + d5)>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d4, d5)>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]} ins(%p, %win : memref<1x2x7x7xf32>, memref<3x3xf32>) outs(%mx : memref<1x2x3x3xf32>) {
  ^bb0(%a: f32, %unused: f32, %o: f32):
    %r = arith.maximumf %o, %a : f32
    linalg.yield %r : f32
  }
  %win2 = memref.alloc() : memref<2x2xf32>
  %sm = memref.alloc() : memref<1x2x4x4xf32>
  linalg.fill ins(%zero : f32) outs(%sm : memref<1x2x4x4xf32>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2 + d4, d3 + d5)>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d4, d5)>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]} ins(%x, %win2 : memref<1x2x5x5xf32>, memref<2x2xf32>) outs(%sm : memref<1x2x4x4xf32>) {
  ^bb0(%a: f32, %unused: f32, %o: f32):
    %r = arith.addf %o, %a : f32
    linalg.yield %r : f32
  }
  %avg = memref.alloc() : memref<1x2x4x4xf32>
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sm : memref<1x2x4x4xf32>) outs(%avg : memref<1x2x4x4xf32>) {
  ^bb0(%a: f32, %o: f32):
    %four = arith.constant 4.000000e+00 : f32
    %q = arith.divf %a, %four : f32
    linalg.yield %q : f32
  }
  func.return %mx, %avg : memref<1x2x3x3xf32>, memref<1x2x4x4xf32>
}
"""


def test_max_and_avg_pool() -> None:
    x = rand(1, 2, 5, 5)
    (mx, avg), _ = run_both(POOLS, args=[x])
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    ref_max = np.array([[[[xp[0, c, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max() for j in range(3)]
                          for i in range(3)] for c in range(2)]])
    ref_avg = (x[:, :, :-1, :-1] + x[:, :, 1:, :-1] + x[:, :, :-1, 1:] + x[:, :, 1:, 1:]) / 4
    close(mx, ref_max)
    close(avg, ref_avg)


REDUCTIONS = """
func.func @var_infer_graph(%x: memref<3x4x5xf32> {ge.name = "x"}) -> (memref<3x5xf32>, memref<3x4x1xf32>, memref<f32>) {
  %zero = arith.constant 0.000000e+00 : f32
  %s1 = memref.alloc() : memref<3x5xf32>
  linalg.fill ins(%zero : f32) outs(%s1 : memref<3x5xf32>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d2)>], iterator_types = ["parallel", "reduction", "parallel"]} ins(%x : memref<3x4x5xf32>) outs(%s1 : memref<3x5xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = arith.addf %o, %a : f32
    linalg.yield %r : f32
  }
  %one = arith.constant 1.000000e+00 : f32
  %p = memref.alloc() : memref<3x4x1xf32>
  linalg.fill ins(%one : f32) outs(%p : memref<3x4x1xf32>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, 0)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x : memref<3x4x5xf32>) outs(%p : memref<3x4x1xf32>) {
  ^bb0(%a: f32, %o: f32):
    %r = arith.mulf %o, %a : f32
    linalg.yield %r : f32
  }
  %tot = memref.alloc() : memref<f32>
  linalg.fill ins(%zero : f32) outs(%tot : memref<f32>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> ()>], iterator_types = ["reduction", "reduction", "reduction"]} ins(%x : memref<3x4x5xf32>) outs(%tot : memref<f32>) {
  ^bb0(%a: f32, %o: f32):
    %sq = arith.mulf %a, %a : f32
    %r = arith.addf %o, %sq : f32
    linalg.yield %r : f32
  }
  %mean = memref.alloc() : memref<f32>
  linalg.generic {indexing_maps = [affine_map<() -> ()>, affine_map<() -> ()>], iterator_types = []} ins(%tot : memref<f32>) outs(%mean : memref<f32>) {
  ^bb0(%a: f32, %o: f32):
    %n = arith.constant 6.000000e+01 : f32
    %q = arith.divf %a, %n : f32
    linalg.yield %q : f32
  }
  func.return %s1, %p, %mean : memref<3x5xf32>, memref<3x4x1xf32>, memref<f32>
}
"""


def test_reductions() -> None:
    x = rand(3, 4, 5)
    (s1, p, mean), _ = run_both(REDUCTIONS, args=[x])
    close(s1, x.sum(axis=1))
    close(p, x.prod(axis=2, keepdims=True))
    assert mean.shape == ()
    close(mean, (x.astype(np.float64) ** 2).mean())


ELEMENTWISE = f"""
func.func @var_infer_graph(%x: memref<2x3xf32> {{ge.name = "x"}}, %y: memref<2x3xf32> {{ge.name = "y"}}, %m: memref<2x3xi1> {{ge.name = "m"}}) -> (memref<2x3xf32>, memref<2x3xf32>, memref<2x3xf32>) {{
  %a = memref.alloc() : memref<2x3xf32>
  %b = memref.alloc() : memref<2x3xf32>
  linalg.generic {{indexing_maps = [{ID2}, {ID2}, {ID2}, {ID2}], iterator_types = {PAR2}}} ins(%x, %y : memref<2x3xf32>, memref<2x3xf32>) outs(%a, %b : memref<2x3xf32>, memref<2x3xf32>) {{
  ^bb0(%u: f32, %v: f32, %o1: f32, %o2: f32):
    %one = arith.constant 1.000000e+00 : f32
    %n = arith.negf %u : f32
    %e = math.exp %n : f32
    %d = arith.addf %one, %e : f32
    %sig = arith.divf %one, %d : f32
    %t = math.tanh %v : f32
    %df = arith.subf %sig, %t : f32
    %lt = arith.cmpf olt, %u, %v : f32
    %two = arith.constant 2.000000e+00 : f32
    %v2 = arith.mulf %v, %two : f32
    %sel = arith.select %lt, %u, %v2 : f32
    %mn = arith.minimumf %sel, %df : f32
    linalg.yield %df, %mn : f32, f32
  }}
  %c = memref.alloc() : memref<2x3xf32>
  linalg.generic {{indexing_maps = [{ID2}, {ID2}, {ID2}], iterator_types = {PAR2}}} ins(%m, %x : memref<2x3xi1>, memref<2x3xf32>) outs(%c : memref<2x3xf32>) {{
  ^bb0(%k: i1, %u: f32, %o: f32):
    %z = arith.constant 0.000000e+00 : f32
    %uge = arith.cmpf uge, %u, %z : f32
    %both = arith.andi %k, %uge : i1
    %r = arith.select %both, %u, %z : f32
    linalg.yield %r : f32
  }}
  func.return %a, %b, %c : memref<2x3xf32>, memref<2x3xf32>, memref<2x3xf32>
}}
"""


def test_elementwise_ops() -> None:
    x, y = rand(2, 3), rand(2, 3)
    mask = np.array([[True, False, True], [False, True, True]])
    (a, b, c), _ = run_both(ELEMENTWISE, args=[x, y, mask])
    df = 1 / (1 + np.exp(-x)) - np.tanh(y)
    close(a, df)
    close(b, np.minimum(np.where(x < y, x, 2 * y), df))
    close(c, np.where(mask & (x >= 0), x, 0))


INTEGERS = f"""
func.func @var_infer_graph(%x: memref<2x3xi32> {{ge.name = "x"}}, %y: memref<2x3xi32> {{ge.name = "y"}}) -> (memref<2x3xi32>, memref<2xi64>) {{
  %a = memref.alloc() : memref<2x3xi32>
  linalg.generic {{indexing_maps = [{ID2}, {ID2}, {ID2}], iterator_types = {PAR2}}} ins(%x, %y : memref<2x3xi32>, memref<2x3xi32>) outs(%a : memref<2x3xi32>) {{
  ^bb0(%u: i32, %v: i32, %o: i32):
    %s = arith.addi %u, %v : i32
    %p = arith.muli %s, %u : i32
    %q = arith.divsi %p, %v : i32
    %r = arith.subi %q, %v : i32
    linalg.yield %r : i32
  }}
  %zero = arith.constant 0 : i64
  %m = memref.alloc() : memref<2xi64>
  linalg.fill ins(%zero : i64) outs(%m : memref<2xi64>)
  linalg.generic {{indexing_maps = [{ID2}, affine_map<(d0, d1) -> (d0)>], iterator_types = ["parallel", "reduction"]}} ins(%x : memref<2x3xi32>) outs(%m : memref<2xi64>) {{
  ^bb0(%u: i32, %o: i64):
    %w = arith.extsi %u : i32 to i64
    %r = arith.addi %o, %w : i64
    linalg.yield %r : i64
  }}
  func.return %a, %m : memref<2x3xi32>, memref<2xi64>
}}
"""


def test_integer_ops() -> None:
    x = np.array([[7, -7, 5], [0, 9, -4]], np.int32)
    y = np.array([[2, 2, -3], [5, -4, 3]], np.int32)
    (a, m), _ = run_both(INTEGERS, args=[x, y])
    p = (x + y) * x
    np.testing.assert_array_equal(a, np.trunc(p / y).astype(np.int32) - y)  # C division
    np.testing.assert_array_equal(m, x.sum(axis=1, dtype=np.int64))


def matmul_module(lhs: tuple[int, ...], rhs: tuple[int, ...], lmap: str, rmap: str, omap: str,
                  out: tuple[int, ...], iters: str, fill: bool = True) -> str:
    """A multiply-accumulate generic (dims named d0..dn); `fill=False` accumulates into `acc`."""
    t = lambda s: "memref<" + "x".join(map(str, s)) + "xf32>" if s else "memref<f32>"  # noqa: E731
    n = iters.count('"')  // 2
    dims = ", ".join(f"d{i}" for i in range(n))
    init = (f"%zero = arith.constant 0.000000e+00 : f32\n  linalg.fill ins(%zero : f32) outs(%o : {t(out)})"
            if fill else f'"memref.copy"(%acc, %o) : ({t(out)}, {t(out)}) -> ()')
    return f"""
func.func @var_infer_graph(%a: {t(lhs)} {{ge.name = "a"}}, %b: {t(rhs)} {{ge.name = "b"}}, %acc: {t(out)} {{ge.name = "acc"}}) -> {t(out)} {{
  %o = memref.alloc() : {t(out)}
  {init}
  linalg.generic {{indexing_maps = [affine_map<({dims}) -> ({lmap})>, affine_map<({dims}) -> ({rmap})>, affine_map<({dims}) -> ({omap})>], iterator_types = [{iters}]}} ins(%a, %b : {t(lhs)}, {t(rhs)}) outs(%o : {t(out)}) {{
  ^bb0(%x: f32, %y: f32, %z: f32):
    %m = arith.mulf %x, %y : f32
    %s = arith.addf %z, %m : f32
    linalg.yield %s : f32
  }}
  func.return %o : {t(out)}
}}
"""


P, R = '"parallel"', '"reduction"'
CONTRACTIONS = {
    # name: (lhs, rhs, lmap, rmap, omap, out, iters, einsum)
    "batched": ((3, 4, 5), (3, 5, 2), "d0, d1, d3", "d0, d3, d2", "d0, d1, d2", (3, 4, 2),
                f"{P}, {P}, {P}, {R}", "bik,bkj->bij"),
    "transposed_b": ((4, 5), (3, 5), "d0, d2", "d1, d2", "d0, d1", (4, 3), f"{P}, {P}, {R}", "ik,jk->ij"),
    "matvec": ((4, 5), (5,), "d0, d1", "d1", "d0", (4,), f"{P}, {R}", "ik,k->i"),
    "dot": ((6,), (6,), "d0", "d0", "", (), R, "k,k->"),
    "transposed_out": ((4, 5), (5, 3), "d0, d2", "d2, d1", "d1, d0", (3, 4), f"{P}, {P}, {R}", "ik,kj->ji"),
    # k is summed in one operand only: no GEMM, multiply-then-reduce
    "one_sided": ((4, 5, 2), (5,), "d0, d1, d2", "d1", "d0", (4,), f"{P}, {R}, {R}", "ikl,k->i"),
    # weighted sum with a broadcast operand (2 parallel dims, output-only dim)
    "outer_acc": ((4,), (3,), "d0", "d1", "d0, d1", (4, 3), f"{P}, {P}", "i,j->ij"),
}


@pytest.mark.parametrize("fill", [True, False])
@pytest.mark.parametrize("name", sorted(CONTRACTIONS))
def test_contractions(name: str, fill: bool) -> None:
    lhs, rhs, lmap, rmap, omap, out, iters, spec = CONTRACTIONS[name]
    a, b, acc = rand(*lhs), rand(*rhs), rand(*out)
    (y,), _ = run_both(matmul_module(lhs, rhs, lmap, rmap, omap, out, iters, fill), args=[a, b, acc])
    close(y, np.einsum(spec, a, b) + (0 if fill else acc))


@pytest.mark.parametrize("name", sorted(CONTRACTIONS))
def test_contractions_numpy_larger(name: str) -> None:
    lhs, rhs, lmap, rmap, omap, out, iters, spec = CONTRACTIONS[name]
    scale = lambda s: tuple(d * 7 for d in s)  # noqa: E731
    lhs, rhs, out = scale(lhs), scale(rhs), scale(out)
    a, b, acc = rand(*lhs), rand(*rhs), rand(*out)
    module = parse(matmul_module(lhs, rhs, lmap, rmap, omap, out, iters, False))
    (y,), _ = run("numpy", module, "var_infer_graph", {}, [a, b, acc])
    np.testing.assert_allclose(y, np.einsum(spec, a, b) + acc, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- globals: init / update graphs

GRAPHS = f"""
{var("w_var", "memref<2x3xf32>")}
{const("w", "memref<2x3xf32>")}
func.func @var_init_graph() {{
  %c = memref.get_global @w : memref<2x3xf32>
  %v = memref.get_global @w_var : memref<2x3xf32>
  "memref.copy"(%c, %v) : (memref<2x3xf32>, memref<2x3xf32>) -> ()
  func.return
}}
func.func @var_update_graph(%d0: memref<2x3xf32> {{ge.name = "w_var_data", ge.optional}}, %p0: i1) {{
  scf.if %p0 {{
    %v = memref.get_global @w_var : memref<2x3xf32>
    "memref.copy"(%d0, %v) : (memref<2x3xf32>, memref<2x3xf32>) -> ()
  }}
  func.return
}}
func.func @var_infer_graph(%x: memref<2x3xf32> {{ge.name = "x"}}) -> (memref<2x3xf32>, memref<2x3xf32>) {{
  %v = memref.get_global @w_var : memref<2x3xf32>
  %y = memref.alloc() : memref<2x3xf32>
  linalg.generic {{indexing_maps = [{ID2}, {ID2}, {ID2}], iterator_types = {PAR2}}} ins(%x, %v : memref<2x3xf32>, memref<2x3xf32>) outs(%y : memref<2x3xf32>) {{
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.mulf %a, %b : f32
    linalg.yield %s : f32
  }}
  func.return %y, %v : memref<2x3xf32>, memref<2x3xf32>
}}
"""


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_init_update_infer(backend: str) -> None:
    compiled = get_backend(backend).compile(parse(GRAPHS))
    assert set(compiled.graphs) == {"var_init_graph", "var_update_graph", "var_infer_graph"}
    w0, w1, x = rand(2, 3), rand(2, 3), rand(2, 3)
    store = {"w": w0.copy(), "w_var": np.zeros((2, 3), np.float32)}
    w_var = store["w_var"]

    assert compiled.run("var_init_graph", store, []) == []
    assert store["w_var"] is w_var  # written in place
    np.testing.assert_array_equal(w_var, w0)
    np.testing.assert_array_equal(store["w"], w0)  # the constant is only read

    y, v = compiled.run("var_infer_graph", store, [x])
    close(y, x * w0)
    np.testing.assert_array_equal(v, w0)  # a global returned as it is comes back as a copy
    assert not np.shares_memory(v, w_var)

    data = w1.copy()
    compiled.run("var_update_graph", store, [data, False])  # flag false: keep
    np.testing.assert_array_equal(w_var, w0)
    compiled.run("var_update_graph", store, [data, True])
    np.testing.assert_array_equal(w_var, w1)
    np.testing.assert_array_equal(data, w1)
    close(compiled.run("var_infer_graph", store, [x])[0], x * w1)


def test_outputs_are_fresh_per_call() -> None:
    compiled = get_backend("numpy").compile(parse(MLP))
    g = {"w_var": rand(4, 3), "b": rand(3)}
    x = rand(2, 4)
    (y1,) = compiled.run("var_infer_graph", g, [x])
    (y2,) = compiled.run("var_infer_graph", g, [x])
    assert not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, y2)


def test_numpy_threads() -> None:
    """Buffers are per call: concurrent runs do not see each other's intermediates."""
    compiled = get_backend("numpy").compile(parse(SOFTMAX))
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(200):
                x = rng.standard_normal((2, 5)).astype(np.float32)
                (y,) = compiled.run("var_infer_graph", {}, [x])
                e = np.exp(x - x.max(axis=1, keepdims=True))
                np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), rtol=TOL, atol=TOL)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


# ---------------------------------------------------------------- errors and safety


def test_unknown_backend() -> None:
    with pytest.raises(UnknownBackendError, match="interp.*numpy") as info:
        get_backend("tvm")
    assert isinstance(info.value, WrcError)
    assert get_backend().name == "numpy"


def test_backend_options_are_spelled_like_pass_options() -> None:
    from wrc.backends.numpy_jit import JitOptions

    assert get_backend("numpy{reuse-buffers=false}").options == JitOptions(reuse_buffers=False)
    assert get_backend("numpy").options == JitOptions(reuse_buffers=True)
    with pytest.raises(UnknownBackendError, match="not found in expected arguments"):
        get_backend("numpy{reuse=false}")
    with pytest.raises(UnknownBackendError, match="'interp' takes no options"):
        get_backend("interp{reuse-buffers=false}")
    with pytest.raises(UnknownBackendError, match="choose one of"):
        get_backend("numpy{")


HOSTILE = 'x"); import os #'
HOSTILE_MODULE = r"""
"memref.global"() <{sym_name = "x\"); import os #", sym_visibility = "public", type = memref<3xf32>, initial_value}> {ge.variable} : () -> ()
func.func @var_infer_graph(%in: memref<3xf32> {ge.name = "x\"); import os #"}) -> memref<3xf32> {
  %g = memref.get_global @"x\"); import os #" : memref<3xf32>
  %y = memref.alloc() : memref<3xf32>
  linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} ins(%in, %g : memref<3xf32>, memref<3xf32>) outs(%y : memref<3xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  }
  func.return %y : memref<3xf32>
}
"""


def test_generated_source_has_no_ir_names() -> None:
    compiled = get_backend("numpy").compile(parse(HOSTILE_MODULE))
    src = compiled.source("var_infer_graph")
    assert "import" not in src and "os" not in src.replace("pos", "") and '"' not in src
    assert "var_infer_graph" not in src and "%" not in src
    x, g = rand(3), rand(3)
    (y,), _ = run_both(HOSTILE_MODULE, globals_={HOSTILE: g}, args=[x])
    close(y, x + g)


def test_missing_global_and_bad_calls() -> None:
    for backend in HOST_BACKENDS:
        compiled = get_backend(backend).compile(parse(GRAPHS))
        with pytest.raises(InputError, match="w_var"):
            compiled.run("var_infer_graph", {}, [rand(2, 3)])
        with pytest.raises(InputError, match="nope"):
            compiled.run("nope", {}, [])
        with pytest.raises(InputError, match="1 arguments"):
            compiled.run("var_infer_graph", {}, [])


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_wrong_argument_is_an_input_error(backend: str) -> None:
    compiled = get_backend(backend).compile(parse(TRANSPOSE))
    with pytest.raises(InputError, match="argument 0 is float64"):
        compiled.run("var_infer_graph", {}, [np.zeros((2, 3, 4))])
    with pytest.raises(InputError, match=r"argument 0 is float32\[3, 2, 4\]"):
        compiled.run("var_infer_graph", {}, [np.zeros((3, 2, 4), np.float32)])


def nan_module() -> str:
    """One output per cmpf predicate (false..true) and per NaN-sensitive max/min."""
    preds = ["false", "oeq", "ogt", "oge", "olt", "ole", "one", "ord",
             "ueq", "ugt", "uge", "ult", "ule", "une", "uno", "true"]
    m1 = "affine_map<(d0) -> (d0)>"
    body, outs = [], []
    for i, p in enumerate(preds):
        body.append(f"""  %c{i} = memref.alloc() : memref<5xi1>
  linalg.generic {{indexing_maps = [{m1}, {m1}, {m1}], iterator_types = ["parallel"]}} ins(%x, %y : memref<5xf32>, memref<5xf32>) outs(%c{i} : memref<5xi1>) {{
  ^bb0(%a: f32, %b: f32, %o: i1):
    %r = arith.cmpf {p}, %a, %b : f32
    linalg.yield %r : i1
  }}""")
        outs.append((f"%c{i}", "memref<5xi1>"))
    for j, op in enumerate(["maximumf", "minimumf", "maxnumf", "minnumf"]):
        body.append(f"""  %m{j} = memref.alloc() : memref<5xf32>
  linalg.generic {{indexing_maps = [{m1}, {m1}, {m1}], iterator_types = ["parallel"]}} ins(%x, %y : memref<5xf32>, memref<5xf32>) outs(%m{j} : memref<5xf32>) {{
  ^bb0(%a: f32, %b: f32, %o: f32):
    %r = arith.{op} %a, %b : f32
    linalg.yield %r : f32
  }}""")
        outs.append((f"%m{j}", "memref<5xf32>"))
    names, types = ", ".join(o for o, _ in outs), ", ".join(t for _, t in outs)
    return (f'func.func @var_infer_graph(%x: memref<5xf32> {{ge.name = "x"}}, %y: memref<5xf32> {{ge.name = "y"}}) -> ({types}) {{\n'
            + "\n".join(body) + f"\n  func.return {names} : {types}\n}}\n")


def test_comparisons_and_nan() -> None:
    x = np.array([1, np.nan, 2, 3, np.nan], np.float32)
    y = np.array([1, 1, np.nan, 2, np.nan], np.float32)
    outs, _ = run_both(nan_module(), args=[x, y])
    with np.errstate(invalid="ignore"):
        lt, gt, eq = x < y, x > y, x == y
    unord = np.isnan(x) | np.isnan(y)
    expected = [np.zeros(5, bool), eq, gt, gt | eq, lt, lt | eq, lt | gt, ~unord,
                eq | unord, gt | unord, gt | eq | unord, lt | unord, lt | eq | unord, ~eq, unord,
                np.ones(5, bool)]
    for i, (got, want) in enumerate(zip(outs[:16], expected, strict=True)):
        np.testing.assert_array_equal(got, want, err_msg=f"predicate {i}")
    mx, mn, mxn, mnn = outs[16:]
    np.testing.assert_array_equal(mx, np.maximum(x, y))  # NaN-propagating
    np.testing.assert_array_equal(mn, np.minimum(x, y))
    np.testing.assert_array_equal(mxn, np.fmax(x, y))  # NaN-ignoring
    np.testing.assert_array_equal(mnn, np.fmin(x, y))


UNSUPPORTED = """
func.func @var_infer_graph(%x: memref<3xf32> {ge.name = "x"}) -> memref<3xf32> {
  %y = memref.alloc() : memref<3xf32>
  linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} ins(%x : memref<3xf32>) outs(%y : memref<3xf32>) {
  ^bb0(%a: f32, %o: f32):
    %e = math.sin %a : f32
    linalg.yield %e : f32
  }
  func.return %y : memref<3xf32>
}
"""


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_unsupported_op_fails_at_compile_time(backend: str) -> None:
    with pytest.raises(LoweringError, match="math.sin"):
        get_backend(backend).compile(parse(UNSUPPORTED))


def test_out_of_bounds_map_is_rejected() -> None:
    """The verifier rejects this too; the JIT checks on its own (it builds raw views)."""
    text = TRANSPOSE.replace("(d1, d2, d0)>", "(d1, d2 + 1, d0)>")
    with pytest.raises(LoweringError, match="indexing map reaches"):
        get_backend("numpy").compile(parse(text, verify=False))


def test_dtypes_mapping() -> None:
    for dt in dtypes.SUPPORTED_DTYPES:
        assert dtypes.to_numpy_dtype(dtypes.to_element_type(dt)) == dt
    assert str(dtypes.to_element_type("bool")) == "i1"
    assert str(dtypes.to_element_type(np.float32)) == "f32"
    for bad in ("complex64", "uint8", ">f4", "object"):
        with pytest.raises(dtypes.UnsupportedDtypeError):
            dtypes.to_element_type(bad)
    assert issubclass(dtypes.UnsupportedDtypeError, WrcError)


# ---------------------------------------------------------------- through the real passes


def lowered(build, const_names: Sequence[str] | None = None) -> tuple[ModuleOp, dict[str, np.ndarray]]:
    """A `ge` graph built by `build(g)`, converted (optionally) and lowered to level 3."""
    from wrc import pipeline
    from wrc.graph import Graph

    g = Graph("main")
    build(g)
    module = g.module.clone()
    if const_names:
        pipeline.apply(module, pipeline.conversion_passes(const_names))
    pipeline.apply(module, pipeline.LOWER_TO_BUFFERS)
    return module, dict(g.weights)


def test_pipeline_weight_refreshable_mlp() -> None:
    w1, b1, w2 = rand(4, 5), rand(5), rand(5, 3)

    def build(g) -> None:
        x = g.data("x", (2, 4))
        h = g.relu(g.add(g.matmul(x, g.const("w1", w1)), g.const("b1", b1)))
        g.output(g.softmax(g.matmul(h, g.const("w2", w2)), axis=-1))

    module, weights = lowered(build, ["w1", "w2"])
    x = rand(2, 4)
    store = {**weights, "w1_var": np.zeros_like(w1), "w2_var": np.zeros_like(w2)}
    _, store = run_both(module, "var_init_graph", store, [])
    (y,), _ = run_both(module, "var_infer_graph", store, [x])

    def ref(w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
        z = np.maximum(x @ w1 + b1, 0) @ w2
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    close(y, ref(w1, w2))
    new_w2 = rand(5, 3)
    _, store = run_both(module, "var_update_graph", store,
                        [np.zeros_like(w1), False, new_w2, True])
    np.testing.assert_array_equal(store["w1_var"], w1)
    np.testing.assert_array_equal(store["w2_var"], new_w2)
    (y,), _ = run_both(module, "var_infer_graph", store, [x])
    close(y, ref(w1, new_w2))


def test_pipeline_cnn_ops() -> None:
    w, bias = rand(4, 1, 3, 3), rand(4)

    def build(g) -> None:
        x = g.data("x", (1, 2, 5, 5))
        c = g.conv2d(x, g.const("w", w), strides=(2, 2), pads=(1, 1, 1, 1), groups=2)
        c = g.add(c, g.reshape(g.const("bias", bias), (1, 4, 1, 1)))
        p = g.max_pool2d(c, (2, 2), (1, 1))
        a = g.avg_pool2d(x, (2, 2), (2, 2), pads=(0, 0, 1, 1))
        t = g.transpose(g.reduce_mean(a, (2, 3), keepdims=False), (1, 0))
        g.output(p, g.global_avg_pool(c), t, g.reduce_sum(g.tanh(g.sigmoid(x)), 1))

    module, weights = lowered(build)
    x = rand(1, 2, 5, 5)
    p, gap, t, s = run_both(module, "main", weights, [x])[0]
    c = ref_conv(x, w, bias, 1, 2, 1, 2)
    close(p, np.array([[[[c[0, f, i:i + 2, j:j + 2].max() for j in range(2)] for i in range(2)]
                        for f in range(4)]]))
    close(gap, c.mean(axis=(2, 3), keepdims=True))
    xp = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))
    cnt = np.pad(np.ones((5, 5)), ((0, 1), (0, 1)))
    sums = xp.reshape(1, 2, 3, 2, 3, 2).sum(axis=(3, 5))
    a = sums / cnt.reshape(3, 2, 3, 2).sum(axis=(1, 3))
    close(t, a.mean(axis=(2, 3)).T)
    close(s, np.tanh(1 / (1 + np.exp(-x))).sum(axis=1))


def test_pipeline_integers_and_scalars() -> None:
    def build(g) -> None:
        a, b = g.data("a", (2, 3), "int32"), g.data("b", (3,), "int32")
        s = g.data("s", (), "float32")
        g.output(g.div(g.add(a, b), b), g.sub(g.mul(a, b), a), g.reshape(g.reshape(s, (1, 1)), ()), g.exp(s))

    module, weights = lowered(build)
    a = np.array([[7, -7, 5], [0, 9, -4]], np.int32)
    b = np.array([2, -3, 4], np.int32)
    s = np.array(2.5, np.float32)
    (q, d, r, e), _ = run_both(module, "main", weights, [a, b, s])
    np.testing.assert_array_equal(q, np.trunc((a + b) / b).astype(np.int32))  # ONNX Div truncates
    np.testing.assert_array_equal(d, a * b - a)
    assert r.shape == () and r == s
    close(e, np.exp(s))


GATHER_L1 = """
builtin.module {
  func.func @g() -> tensor<2x3x4xf32> {
    %i = ge.data "i" index 0 : tensor<2x3xi64>
    %d = ge.const "d" : tensor<5x4xf32>
    %y = ge.gather %d, %i {axis = 0 : i64} : (tensor<5x4xf32>, tensor<2x3xi64>) -> tensor<2x3x4xf32>
    func.return %y : tensor<2x3x4xf32>
  }
}
"""


def _gather_module() -> ModuleOp:
    from wrc import pipeline

    return pipeline.apply(parse(GATHER_L1), pipeline.LOWER_TO_BUFFERS)


def test_gather_is_np_take_in_the_jit_with_the_one_hot_semantics() -> None:
    """The lowered gather carries `library_call = "wrc_gather"`: the JIT takes rows (no
    O(vocabulary) reduction; tests/filecheck/backends/numpy-gather.mlir) and must agree with
    the interpreter, which runs the one-hot body, on negative and out-of-range indices too."""
    module = _gather_module()
    data = rand(5, 4)
    idx = np.array([[0, -1, 4], [2, 7, -6]], np.int64)  # 7 and -6 are out of range: zeros
    norm = np.where(idx < 0, idx + 5, idx)
    ok = (norm >= 0) & (norm < 5)
    expected = np.where(ok[..., None], data[np.where(ok, norm, 0)], 0).astype(np.float32)
    compiled = get_backend("numpy").compile(module)
    assert "np.take(" in compiled.source("g")
    in_range = np.array([[0, -1, 4], [2, 3, -5]], np.int64)  # the unmasked path: np.take into the output
    for backend in HOST_BACKENDS:
        (y,) = get_backend(backend).compile(module).run("g", {"d": data}, [idx])
        np.testing.assert_array_equal(y, expected, err_msg=backend)
        (y,) = get_backend(backend).compile(module).run("g", {"d": data}, [in_range])
        np.testing.assert_array_equal(y, np.take(data, in_range, 0), err_msg=backend)


@pytest.mark.parametrize(("rows", "axis", "strided"), [
    (2, 1, True), (-1, 0, True), ([3], 1, True), ([1, 3, 5], 1, True), ([-4, -3], 0, True), ([-5, -4], 0, False), ([2, 2, 2], 1, True),
    ([0, 1, 2, 3, 4, 5], 1, True), ([0, 1], 1, False), ([3, 1], 1, False), ([0, 2, 3], 1, False), (6, 1, False),
    ([1, -7], 1, False), (np.zeros((1, 2), np.int64), 0, False)])
def test_a_gather_by_constant_rows_is_a_strided_read(rows: object, axis: int, strided: bool) -> None:
    """Constant indices reading rows `start + step * i` in range (negative ones from the end)
    are lowered as a copy of a strided view, as a slice (no `wrc_gather`); others (no such
    progression, a prefix of the rows, out of range: zeros) keep the gather. Both backends
    against NumPy's take (zeros where out of range)."""
    data = rand(5, 6, 2)
    idx = np.asarray(rows, np.int64)
    norm = np.where(idx < 0, idx + data.shape[axis], idx)
    ok = (norm >= 0) & (norm < data.shape[axis])
    picked = np.take(data, np.where(ok, norm, 0), axis)
    mask = ok.reshape((1,) * axis + ok.shape + (1,) * (data.ndim - axis - 1))
    expected = np.where(mask, picked, 0).astype(np.float32)
    out = f"tensor<{'x'.join(map(str, expected.shape))}xf32>" if expected.ndim else "tensor<f32>"
    dense = np.array2string(idx, separator=", ") if idx.ndim else str(int(idx))
    itype = f"tensor<{'x'.join(map(str, idx.shape))}xi64>" if idx.ndim else "tensor<i64>"
    text = f"""
    builtin.module {{
      func.func @g() -> {out} {{
        %d = ge.const "d" : tensor<5x6x2xf32>
        %i = ge.const "i" = dense<{dense}> : {itype}
        %y = ge.gather %d, %i {{axis = {axis} : i64}} : (tensor<5x6x2xf32>, {itype}) -> {out}
        func.return %y : {out}
      }}
    }}"""
    from wrc import pipeline

    module = pipeline.apply(parse(text), pipeline.LOWER_TO_BUFFERS)
    assert ("wrc_gather" not in str(module)) is strided
    for backend in HOST_BACKENDS:
        (y,) = get_backend(backend).compile(module).run("g", {"d": data, "i": idx}, [])
        assert y.shape == expected.shape and y.dtype == np.float32
        np.testing.assert_array_equal(y, expected, err_msg=backend)


def test_a_gather_call_that_does_not_fit_its_operands_is_a_lowering_error() -> None:
    from xdsl.dialects.builtin import IntegerAttr, i64
    from xdsl.dialects.linalg.ops import GenericOp

    module = _gather_module()
    generic = next(op for op in module.walk() if isinstance(op, GenericOp) and op.library_call is not None)
    generic.attributes["wrc.gather_axis"] = IntegerAttr(1, i64)  # a file claiming another axis
    with pytest.raises(LoweringError, match="along axis 1 are not a gather"):
        get_backend("numpy").compile(module)


SINK_L1 = """
builtin.module {
  ge.variable @v : tensor<4xf32>
  ge.variable @u : tensor<4xf32>
  func.func @set_v() {
    %x = ge.data "x" index 0 : tensor<4xf32>
    %y = ge.exp %x : tensor<4xf32>
    ge.assign @v, %y : tensor<4xf32>
    func.return
  }
  func.func @bump_u() {
    %x = ge.data "x" index 0 : tensor<4xf32>
    %u = ge.read_variable @u : tensor<4xf32>
    %y = ge.add %u, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
    ge.assign @u, %y : tensor<4xf32>
    func.return
  }
}
"""


def test_a_value_copied_whole_into_an_untouched_global_is_computed_in_place() -> None:
    """A global sink (no temporary, no copy: tests/filecheck/backends/numpy-global-sink.mlir)
    computes the same values as the copy it replaces."""
    from wrc import pipeline

    compiled = get_backend("numpy").compile(pipeline.apply(parse(SINK_L1), pipeline.LOWER_TO_BUFFERS))
    x = rand(4)
    v, u = np.zeros(4, np.float32), np.ones(4, np.float32)
    compiled.run("set_v", {"v": v}, [x])
    compiled.run("bump_u", {"u": u}, [x])
    np.testing.assert_allclose(v, np.exp(x), rtol=1e-6)
    np.testing.assert_allclose(u, 1 + x, rtol=1e-6)


def test_gather_calls_without_their_axis_and_unknown_library_calls_are_lowering_errors() -> None:
    from xdsl.dialects.builtin import StringAttr
    from xdsl.dialects.linalg.ops import GenericOp

    module = _gather_module()
    generic = next(op for op in module.walk() if isinstance(op, GenericOp) and op.library_call is not None)
    del generic.attributes["wrc.gather_axis"]
    with pytest.raises(LoweringError, match="wrc_gather takes data and indices, one output and an integer wrc.gather_axis"):
        get_backend("numpy").compile(module)
    generic.properties["library_call"] = StringAttr("my_blas_gemm")
    with pytest.raises(LoweringError, match="library_call 'my_blas_gemm' is not supported \\(only 'wrc_gather'\\)"):
        get_backend("numpy").compile(module)
