"""`ge-fold-weight-scales` numerics: every rewrite it makes (and every case it must leave
alone) gives the results of a NumPy formula, on both backends, with and without the passes.

Each case is a small graph whose weights are all refreshable, or all but the matmul's or
convolution's weight `w` (a constant: the one a scale is folded into); the bundle is updated to
a second weight set so derived values are recomputed, not just computed at init.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from xdsl.dialects import func as func_dialect
from xdsl.dialects import memref
from xdsl.dialects.linalg.ops import GenericOp

import wrc
from wrc.abi import INFER_GRAPH, module_funcs

F32 = np.float32
RNG = np.random.default_rng(42)
X = RNG.standard_normal((3, 5)).astype(F32)
XC = RNG.standard_normal((2, 3, 6, 6)).astype(F32)
XS = RNG.standard_normal((1, 3, 3, 3)).astype(F32)  # an image smaller than a 4x3x3x3 filter


def weights(seed: int, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(0.5, 1.5, s).astype(F32) for k, s in shapes.items()}


def conv(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """3x3 convolution, pad 1, stride 1, NCHW / FCHW."""
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd), np.float64)
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,fc->nfhw", xp[:, :, i:i + h, j:j + wd], w[:, :, i, j])
    return out.astype(F32)


Case = tuple[dict[str, tuple[int, ...]], Callable[[wrc.Graph, dict], object], Callable[[dict], np.ndarray], np.ndarray]

CASES: dict[str, Case] = {
    # Gemm transB + bias + BatchNorm: scale into W's rows under the transpose, shifts merged.
    "gemm_transB_bn": (
        {"w": (4, 5), "b": (4,), "k": (4,), "s": (4,)},
        lambda g, c: g.add(g.mul(g.add(g.matmul(g.data("x", (3, 5)), g.transpose(c["w"], [1, 0])), c["b"]), c["k"]), c["s"]),
        lambda w: (X @ w["w"].T + w["b"]) * w["k"] + w["s"],
        X,
    ),
    # Scale on the left, subtraction both ways round: distributes, merges with the right signs.
    "sub_shifts": (
        {"w": (5, 4), "m": (4,), "k": (4,), "s": (4,)},
        lambda g, c: g.sub(g.mul(c["k"], g.sub(g.matmul(g.data("x", (3, 5)), c["w"]), c["m"])), c["s"]),
        lambda w: w["k"] * (X @ w["w"] - w["m"]) - w["s"],
        X,
    ),
    # A per-row scale is not a column of W: left as it is (and still right).
    "row_scale": (
        {"w": (5, 4), "r": (3, 1)},
        lambda g, c: g.mul(g.matmul(g.data("x", (3, 5)), c["w"]), c["r"]),
        lambda w: (X @ w["w"]) * w["r"],
        X,
    ),
    # Conv + bias + a [1, C, 1, 1] per-channel scale: into the filter.
    "conv_channel_scale": (
        {"w": (4, 3, 3, 3), "b": (4, 1, 1), "k": (1, 4, 1, 1)},
        lambda g, c: g.mul(g.add(g.conv2d(g.data("x", (2, 3, 6, 6)), c["w"], pads=(1, 1, 1, 1)), c["b"]), c["k"]),
        lambda w: (conv(XC, w["w"]) + w["b"]) * w["k"],
        XC,
    ),
    # The same over an image smaller than the filter: a refreshable filter keeps its scale on
    # the result (a scaled copy would be larger than what it spares).
    "conv_small_image": (
        {"w": (4, 3, 3, 3), "b": (4, 1, 1), "k": (1, 4, 1, 1)},
        lambda g, c: g.mul(g.add(g.conv2d(g.data("x", (1, 3, 3, 3)), c["w"], pads=(1, 1, 1, 1)), c["b"]), c["k"]),
        lambda w: (conv(XS, w["w"]) + w["b"]) * w["k"],
        XS,
    ),
    # A scale that also varies over the image (not per channel): left alone.
    "conv_pixel_scale": (
        {"w": (4, 3, 3, 3), "k": (6, 6)},
        lambda g, c: g.mul(g.conv2d(g.data("x", (2, 3, 6, 6)), c["w"], pads=(1, 1, 1, 1)), c["k"]),
        lambda w: conv(XC, w["w"]) * w["k"],
        XC,
    ),
    # A pre-activation BatchNorm's scale, then an affine Mul, before a ReLU (DenseNet): one scale.
    "scale_scale_relu": (
        {"k1": (1, 3, 1, 1), "k2": (3, 1, 1), "s": (3, 1, 1)},
        lambda g, c: g.relu(g.add(g.mul(c["k2"], g.mul(g.data("x", (2, 3, 6, 6)), c["k1"])), c["s"])),
        lambda w: np.maximum(XC * w["k1"] * w["k2"] + w["s"], 0),
        XC,
    ),
}


def build(name: str, hoist: bool, frozen: tuple[str, ...] = ()) -> wrc.ModelBuffer:
    """The case's bundle, the weights named in `frozen` left constants."""
    shapes, make, _, _ = CASES[name]
    w0 = weights(0, shapes)
    g = wrc.Graph(name)
    g.output(make(g, {k: g.const(k, v) for k, v in w0.items()}))
    with wrc.BuildSession({"wrc.hoist_weight_only": "true" if hoist else "false"}):
        parts = wrc.convert_to_weight_refreshable_graphs(g, [k for k in shapes if k not in frozen])
        return wrc.bundle_build_model([parts.infer_graph, parts.var_update_graph, parts.var_init_graph])


def _frozen_variants(name: str) -> list[tuple[str, ...]]:
    return [(), ("w",)] if "w" in CASES[name][0] else [()]


@pytest.mark.parametrize("backend", ["numpy", "interp"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_folded_graphs_compute_the_formula(name: str, backend: str) -> None:
    shapes, _, ref, x = CASES[name]
    for hoist in (True, False):
        for frozen in _frozen_variants(name):
            b = wrc.load_bundle(build(name, hoist, frozen), backend=backend)
            b.init()
            np.testing.assert_allclose(b.infer([x])[0], ref(weights(0, shapes)), rtol=1e-5, atol=1e-5)
            new = {k: v for k, v in weights(1, shapes).items() if k not in frozen}
            b.update(new)
            np.testing.assert_allclose(b.infer([x])[0], ref({**weights(0, shapes), **new}), rtol=1e-5, atol=1e-5)


def _infer_generics(model: wrc.ModelBuffer) -> int:
    fn = module_funcs(model.module)[INFER_GRAPH]
    assert isinstance(fn, func_dialect.FuncOp)
    return sum(isinstance(op, GenericOp) for op in fn.walk())


@pytest.mark.parametrize(("name", "frozen", "saved"), [
    ("gemm_transB_bn", ("w",), 2), ("sub_shifts", ("w",), 2), ("conv_small_image", ("w",), 1),
    # A refreshable weight at least as large as the result keeps the scale on the result (only
    # the shifts merge); a smaller one takes it.
    ("gemm_transB_bn", (), 1), ("sub_shifts", (), 1), ("conv_small_image", (), 0), ("conv_channel_scale", (), 1),
    ("row_scale", (), 0), ("conv_pixel_scale", (), 0), ("scale_scale_relu", (), 1)])
def test_folding_removes_activation_passes_only_where_it_may(name: str, frozen: tuple[str, ...], saved: int) -> None:
    """Ops on activations left in the infer graph, with the passes vs without."""
    assert _infer_generics(build(name, False, frozen)) - _infer_generics(build(name, True, frozen)) == saved


def _derived_elements(model: wrc.ModelBuffer) -> list[int]:
    """The sizes of the derived variables (`ge-hoist-weight-only`'s) of a bundle."""
    return [int(np.prod(v.type.get_shape())) for v in model.module.ops
            if isinstance(v, memref.GlobalOp) and ".hoisted" in v.sym_name.data]


@pytest.mark.parametrize("name", ["gemm_transB_bn", "sub_shifts", "conv_small_image"])
def test_no_scaled_copy_of_a_refreshable_weight(name: str) -> None:
    """A refreshable weight at least as large as its result is not stored twice (raw and
    scaled): the derived values are the per-channel vectors only; a constant weight takes the
    scale (a derived copy of its size), and so does a refreshable one smaller than its result."""
    w = int(np.prod(CASES[name][0]["w"]))
    assert max(_derived_elements(build(name, True))) < w
    assert max(_derived_elements(build(name, True, ("w",)))) == w
    assert max(_derived_elements(build("conv_channel_scale", True))) == np.prod(CASES["conv_channel_scale"][0]["w"])
