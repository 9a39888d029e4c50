"""Issue 11's ONNX operators composed of ge ops (wrc/onnx.py) against onnxruntime (`check_model`: compiled
with every initializer refreshable, before and after an update with new random weights), on
the NumPy backend; a tiny model of them on the interpreter too."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto
from onnx.reference import ReferenceEvaluator
from test_onnx import F, Y, assert_close, check_model, make, node, rand, with_initializers

import wrc
import wrc.onnx as wrc_onnx
from wrc.bundle_format import bundle_bytes
from wrc.onnx import UnsupportedOpError, import_onnx, sampling_taps, weight_names
from wrc.workflow import compile_graph

I64 = TensorProto.INT64
RNG = np.random.default_rng(11)


def outputs(k: int) -> list:
    return [(f"y{i}", F, None) for i in range(k)]


def test_activations():
    ops = [("Reciprocal", {}), ("HardSwish", {}), ("Softplus", {}), ("Elu", {"alpha": 0.7}), ("Selu", {}),
           ("Mish", {}), ("Celu", {"alpha": 1.3}), ("ThresholdedRelu", {"alpha": 0.2}), ("Softsign", {})]
    nodes = [node("Add", ["x", "w"], ["t"])] + [node(op, ["t"], [f"y{i}"], **a) for i, (op, a) in enumerate(ops)]
    m = make(nodes, [("x", F, [2, 3, 4])], outputs(len(ops)), {"w": rand(4)})
    check_model(m, {"x": 6 * rand(2, 3, 4)})


def test_softplus_does_not_overflow():
    m = make([node("Add", ["x", "w"], ["t"]), node("Softplus", ["t"])], [("x", F, [4])], [Y], {"w": rand(4)})
    check_model(m, {"x": np.array([200, -200, 0, 3e38], np.float32)})


def test_argmax_argmin_with_ties():
    x = rand(3, 4, 5)
    x[0, 1, :] = 1.0  # ties: the first index, or the last with select_last_index
    nodes = [node("Add", ["x", "w"], ["t"]), node("ArgMax", ["t"], ["y0"], axis=1),
             node("ArgMin", ["t"], ["y1"], axis=-1, keepdims=0), node("ArgMax", ["t"], ["y2"], axis=2, select_last_index=1),
             node("ArgMin", ["i"], ["y3"], axis=0)]
    m = make(nodes, [("x", F, [3, 4, 5]), ("i", I64, [3, 4])], [(f"y{k}", I64, None) for k in range(4)],
             {"w": np.zeros(5, np.float32)})
    check_model(m, {"x": x, "i": RNG.integers(-3, 3, (3, 4))}, tol=0)


@pytest.mark.parametrize("mode", ["edge", "reflect", "wrap"])
def test_pad_modes(mode):
    m = make([node("Add", ["x", "w"], ["t"]), node("Pad", ["t", "pads"], mode=mode)], [("x", F, [1, 2, 5, 6])], [Y],
             {"w": rand(6), "pads": np.array([0, 0, 2, 1, 0, 1, 3, -1], np.int64)}, opset=19)
    check_model(m, {"x": rand(1, 2, 5, 6)})


@pytest.mark.parametrize("coord", ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"])
def test_resize_every_mode(coord):
    """Nearest (each nearest_mode), linear and cubic; up- and downsampling by scales, and sizes."""
    forms = [("nearest", nm) for nm in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")]
    forms += [("linear", None), ("cubic", None)]
    inits = {"w": rand(6), "up": np.array([1, 1, 2, 1.5], np.float32), "down": np.array([1, 1, 0.6, 0.5], np.float32),
             "sizes": np.array([1, 2, 8, 3], np.int64)}
    nodes, k = [node("Add", ["x", "w"], ["t"])], 0
    for mode, nm in forms:
        for operands in (["t", "", "up"], ["t", "", "down"], ["t", "", "", "sizes"]):
            attrs = {"nearest_mode": nm} if nm else {}
            nodes.append(node("Resize", operands, [f"y{k}"], mode=mode, coordinate_transformation_mode=coord, **attrs))
            k += 1
    m = make(nodes, [("x", F, [1, 2, 5, 6])], outputs(k), inits, opset=19)
    check_model(m, {"x": rand(1, 2, 5, 6)})


def test_resize_axes_policy_exclude_outside_and_symmetric():
    nodes = [node("Add", ["x0", "w"], ["x"]),
             node("Resize", ["x", "", "", "s2"], ["y0"], mode="linear", axes=[3, 2], keep_aspect_ratio_policy="not_larger"),
             node("Resize", ["x", "", "up"], ["y1"], mode="cubic", exclude_outside=1, cubic_coeff_a=-0.5),
             node("Resize", ["x", "", "up"], ["y2"], mode="linear", coordinate_transformation_mode="half_pixel_symmetric"),
             # 4 * 0.6 and 5 * 0.7 are fractional: align_corners divides by the integer output length
             node("Resize", ["x", "", "down"], ["y3"], mode="linear", coordinate_transformation_mode="align_corners")]
    inits = {"w": rand(5), "s2": np.array([9, 7], np.int64), "up": np.array([1, 1, 1.7, 2.5], np.float32),
             "down": np.array([1, 1, 0.6, 0.7], np.float32)}
    m = make(nodes, [("x0", F, [1, 2, 4, 5])], outputs(4), inits, opset=19)
    check_model(m, {"x0": rand(1, 2, 4, 5)})


def test_resize_antialias_and_tf_crop_and_resize():
    """Antialias (linear, cubic; down- and upsampling) and tf_crop_and_resize (every mode, a roi
    reaching outside the input: extrapolation_value there)."""
    inits = {"w": rand(7), "down": np.array([1, 1, 0.6, 0.45], np.float32), "up": np.array([1, 1, 1.7, 2], np.float32),
             "roi": np.array([0, 0, 0.2, -0.1, 1, 1, 0.9, 1.2], np.float32), "sz": np.array([1, 2, 4, 5], np.int64)}
    nodes, k = [node("Add", ["x", "w"], ["t"])], 0
    for mode in ("linear", "cubic"):
        for scales in ("down", "up"):
            nodes.append(node("Resize", ["t", "", scales], [f"y{k}"], mode=mode, antialias=1))
            k += 1
    for mode in ("nearest", "linear", "cubic"):
        nodes.append(node("Resize", ["t", "roi", "", "sz"], [f"y{k}"], mode=mode,
                          coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=-3.0))
        k += 1
    m = make(nodes, [("x", F, [1, 2, 6, 7])], outputs(k), inits, opset=19)
    check_model(m, {"x": rand(1, 2, 6, 7)})


def test_resize_taps_are_a_convex_combination_of_edge_clamped_pixels():
    index, weights = sampling_taps("linear", 4, 9, 9 / 4)
    assert index.shape == weights.shape == (9, 2) and index.min() == 0 and index.max() == 3
    np.testing.assert_allclose(weights.sum(1), 1)
    index, weights = sampling_taps("nearest", 4, 2, 0.5, "asymmetric", "floor")
    assert index.ravel().tolist() == [0, 2] and weights.ravel().tolist() == [1, 1]


@pytest.mark.parametrize("opset, mode", [(7, "nearest"), (9, "linear"), (9, "nearest")])
def test_upsample_of_old_opsets(monkeypatch, opset, mode):
    """Upsample has asymmetric coordinates: linear results differ from those of a Resize with
    the default half_pixel ones (what onnx.version_converter makes of it)."""
    monkeypatch.setattr(wrc_onnx, "MIN_OPSET", 7)  # the importer's floor, whatever it is
    scales = [1.0, 1.0, 2.5, 1.5]
    operands, inits, attrs = ["t"], {"w": rand(3)}, {}
    if opset == 9:
        operands, inits["s"] = ["t", "s"], np.array(scales, np.float32)
    else:
        attrs["scales"] = scales
    m = make([node("Add", ["x", "w"], ["t"]), node("Upsample", operands, mode=mode, **attrs)],
             [("x", F, [1, 2, 3, 3])], [Y], inits, opset=opset)
    m.ir_version = 7
    check_model(m, {"x": rand(1, 2, 3, 3)})


def test_instance_and_group_normalization():
    x = ("x", F, [2, 4, 3, 5])
    nodes = [node("InstanceNormalization", ["x", "s", "b"], ["y0"], epsilon=1e-3),
             node("GroupNormalization", ["x", "s", "b"], ["y1"], epsilon=1e-3, num_groups=2)]
    m = make(nodes, [x], outputs(2), {"s": rand(4), "b": rand(4)}, opset=21)
    check_model(m, {"x": rand(2, 4, 3, 5)})


@pytest.mark.parametrize("attrs", [{}, {"exclusive": 1}, {"reverse": 1}, {"exclusive": 1, "reverse": 1}])
def test_cumsum(attrs):
    m = make([node("Add", ["x", "w"], ["t"]), node("CumSum", ["t", "ax"], **attrs)], [("x", F, [2, 3, 7])], [Y],
             {"w": rand(7), "ax": np.array(-1, np.int64)})
    check_model(m, {"x": rand(2, 3, 7)})


def test_cumsum_of_integers_is_exact_and_trilu():
    nodes = [node("Add", ["i", "w"], ["s"]), node("CumSum", ["s", "ax"], ["y0"]),
             node("Trilu", ["x", "k"], ["y1"]), node("Trilu", ["x", "k"], ["y2"], upper=0), node("Trilu", ["x"], ["y3"]),
             node("Trilu", ["s"], ["y4"], upper=0)]
    inits = {"w": np.array([2**40, -3, 5, 1, 0, 7, -1], np.int64), "ax": np.array(1, np.int64),
             "k": np.array(-1, np.int64)}
    m = make([node("Add", ["x0", "v"], ["x"])] + nodes, [("i", I64, [3, 7]), ("x0", F, [2, 3, 5])],
             [("y0", I64, None), *outputs(4)[1:], ("y4", I64, None)], {**inits, "v": rand(5)})
    check_model(m, {"i": RNG.integers(-100, 100, (3, 7)), "x0": rand(2, 3, 5)}, tol=0)


@pytest.mark.parametrize("equation, a, b", [
    ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)), ("bhqd,bhkd->bhqk", (1, 2, 3, 4), (1, 2, 5, 4)),
    ("bhqk,bkhd->bqhd", (2, 3, 4, 5), (2, 5, 3, 6)), ("...ij,jk", (2, 3, 4), (4, 5)),
    ("i,j->ij", (3,), (4,)), ("bid,bjd->bij", (2, 3, 4), (1, 5, 4)), ("ij,ij->i", (3, 4), (3, 4)),
    ("ij->ji", (3, 4), None), ("ijk->", (2, 3, 4), None), ("bij->bj", (2, 3, 4), None),
])
def test_einsum(equation, a, b):
    if b is None:
        m = make([node("Add", ["x", "w"], ["t"]), node("Einsum", ["t"], equation=equation)], [("x", F, list(a))], [Y],
                 {"w": rand(a[-1])})
    else:
        m = make([node("Einsum", ["x", "w"], equation=equation)], [("x", F, list(a))], [Y], {"w": rand(*b)})
    check_model(m, {"x": rand(*a)})


def test_gather_elements_and_gather_nd_with_constant_and_runtime_indices():
    ints = RNG.integers
    nodes = [node("GatherElements", ["x", "ci"], ["y0"], axis=1),
             node("GatherElements", ["w", "ri"], ["y1"], axis=-1),
             node("GatherND", ["w", "rn"], ["y2"]),
             node("GatherND", ["x", "cn"], ["y3"], batch_dims=1)]
    inits = {"ci": ints(-4, 4, (3, 2, 5)), "w": rand(3, 4, 5),
             "cn": np.array([[[1, 0], [3, -1], [-1, 2]], [[0, 4], [2, 2], [3, 1]], [[1, 1], [0, 0], [2, 3]]], np.int64)}
    m = make(nodes, [("x", F, [3, 4, 5]), ("ri", I64, [3, 4, 2]), ("rn", I64, [2, 3, 2])],
             outputs(4), inits)
    check_model(m, {"x": rand(3, 4, 5), "ri": ints(-5, 5, (3, 4, 2)), "rn": ints(-3, 3, (2, 3, 2))})


def test_scatter_nd_and_scatter_elements_with_constant_indices():
    nodes = [node("ScatterND", ["x", "i", "u"], ["y0"]), node("ScatterElements", ["z", "j", "v"], ["y1"], axis=1),
             node("ScatterND", ["x", "i1", "u1"], ["y2"])]
    inits = {"i": np.array([[1, 2], [3, 0], [-1, 4]], np.int64), "u": rand(3, 6),
             "j": np.array([[1, 2], [3, 0], [-1, 4]], np.int64), "v": rand(3, 2),
             "i1": np.array([[2], [0]], np.int64), "u1": rand(2, 5, 6)}
    m = make(nodes, [("x", F, [4, 5, 6]), ("z", F, [3, 5])], outputs(3), inits)
    check_model(m, {"x": rand(4, 5, 6), "z": rand(3, 5)})


def test_scatter_nd_and_scatter_elements_with_runtime_indices():
    """Distinct indices (ONNX leaves duplicates undefined), negative ones, ScatterElements indices
    shorter than the data on the other axes; a tiny one on the interpreter too."""
    perm = RNG.permutation
    rows = np.stack([perm(4)[:3] - 4 * (np.arange(3) % 2), perm(5)[:3]], -1)  # 3 distinct (i, j) pairs
    cols = np.stack([perm(5)[:2] for _ in range(3)])  # per row, 2 distinct columns
    cols[0, 0] -= 5
    nodes = [node("ScatterND", ["x", "i2", "u2"], ["y0"]), node("ScatterND", ["x", "i1", "u1"], ["y1"]),
             node("ScatterElements", ["z", "j", "v"], ["y2"], axis=1),
             node("ScatterElements", ["z", "jt", "vt"], ["y3"], axis=0)]
    m = make(nodes, [("x", F, [4, 5, 6]), ("z", F, [4, 5]), ("i2", I64, [3, 2]), ("i1", I64, [2, 1]),
                     ("j", I64, [3, 2]), ("jt", I64, [2, 3])], outputs(4),
             {"u2": rand(3, 6), "u1": rand(2, 5, 6), "v": rand(3, 2), "vt": rand(2, 3)})
    feeds = {"x": rand(4, 5, 6), "z": rand(4, 5), "i2": rows, "i1": np.array([[-1], [1]], np.int64), "j": cols,
             "jt": np.stack([perm(4)[:2] for _ in range(3)], -1)}
    check_model(m, feeds)
    m = make([node("ScatterElements", ["z", "j", "v"], ["y0"], axis=1), node("ScatterND", ["z", "i", "w"], ["y1"])],
             [("z", F, [2, 3]), ("j", I64, [2, 1]), ("i", I64, [1, 1])], outputs(2), {"v": rand(2, 1), "w": rand(1, 3)})
    check_model(m, {"z": rand(2, 3), "j": np.array([[2], [-3]], np.int64), "i": np.array([[1]], np.int64)},
                backends=("numpy", "interp"))


@pytest.mark.parametrize("reduction", ["add", "mul", "max", "min"])
def test_scatter_reductions_with_duplicate_runtime_and_constant_indices(reduction):
    """Duplicates are well defined with a reduction: every update landing on a position counts."""
    nodes = [node("ScatterND", ["x", "i", "u"], ["y0"], reduction=reduction),
             node("ScatterElements", ["z", "j", "v"], ["y1"], axis=1, reduction=reduction),
             node("ScatterElements", ["z", "cj", "v"], ["y2"], axis=0, reduction=reduction)]
    m = make(nodes, [("x", F, [4, 5, 3]), ("z", F, [3, 5]), ("i", I64, [4, 2]), ("j", I64, [2, 3])], outputs(3),
             {"u": rand(4, 3), "v": rand(2, 3), "cj": np.array([[0, 2, -1], [0, 1, 2]], np.int64)}, opset=18)
    feeds = {"x": rand(4, 5, 3), "z": rand(3, 5), "i": np.array([[1, 2], [3, -1], [1, 2], [0, 0]], np.int64),
             "j": np.array([[4, 4, 0], [1, -1, 1]], np.int64)}
    check_model(m, feeds)


def test_tiny_model_of_the_new_ops_on_interp():
    nodes = [node("Add", ["x", "w"], ["t"]), node("HardSwish", ["t"], ["h"]), node("Mish", ["h"], ["m"]),
             node("Pad", ["m", "pads"], ["p"], mode="reflect"),
             node("Resize", ["p", "", "sc"], ["r"], mode="linear"),
             node("InstanceNormalization", ["r", "s", "b"], ["n"]), node("CumSum", ["n", "ax"], ["c"]),
             node("Trilu", ["c"], ["tr"]), node("Einsum", ["tr", "e"], ["y0"], equation="bcij,jk->bcik"),
             node("GatherElements", ["y0", "gi"], ["y1"], axis=3)]
    inits = {"w": rand(3), "pads": np.array([0, 0, 1, 1, 0, 0, 0, 1], np.int64),
             "sc": np.array([1, 1, 1.5, 1], np.float32), "s": rand(1), "b": rand(1), "ax": np.array(2, np.int64),
             "e": rand(5, 2), "gi": np.array([[[[1], [0], [1]]]], np.int64)}
    m = make(nodes, [("x", F, [1, 1, 2, 3])], outputs(2), inits)
    check_model(m, {"x": rand(1, 1, 2, 3)}, backends=("numpy", "interp"))


def test_unsupported_forms_are_listed():
    nodes = [node("Resize", ["x", "", "s"], ["y0"], mode="linear"), node("Pad", ["x", "p"], ["y1"], mode="bogus"),
             node("ScatterND", ["x", "i", "x"], ["y2"], reduction="bogus")]
    m = make(nodes, [("x", F, [1, 2]), ("s", F, [2]), ("i", I64, [1, 2, 2])], outputs(3),
             {"p": np.array([1, 1, 1, 1], np.int64)})
    with pytest.raises(UnsupportedOpError) as e:
        import_onnx(m)
    text = str(e.value)
    assert "3 unsupported" in text and "Pad mode 'bogus'" in text
    assert "Resize (node 'Resize_y0'): input 2 (s) must be a constant, but is computed at run time" in text
    assert "ScatterND (node 'ScatterND_y2'): ScatterND with reduction 'bogus'" in text


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["reverse", "bidirectional"])  # bidirectional runs forward too
def test_recurrent_layers_unrolled(kind, direction):
    """Biases, initial states and (LSTM) peepholes given; GRU in both linear_before_reset forms;
    reverse ones with a clip on the gate inputs."""
    steps, batch, size, hidden = 4, 2, 3, 5
    dirs, gates = 2 if direction == "bidirectional" else 1, {"RNN": 1, "GRU": 3, "LSTM": 4}[kind]
    inits = {"W": rand(dirs, gates * hidden, size) * 0.5, "R": rand(dirs, gates * hidden, hidden) * 0.5,
             "B": rand(dirs, 2 * gates * hidden), "h0": rand(dirs, batch, hidden)}
    operands, outs = ["x", "W", "R", "B", "", "h0"], ["y0", "y1"]
    if kind == "LSTM":
        inits |= {"c0": rand(dirs, batch, hidden), "P": rand(dirs, 3 * hidden)}
        operands, outs = [*operands, "c0", "P"], [*outs, "y2"]
    clip = {"clip": 0.8} if direction == "reverse" else {}
    nodes = [node(kind, operands, outs, hidden_size=hidden, direction=direction, **clip)]
    if kind == "GRU":  # the other form, without initial state: the first step has no recurrent matmul
        nodes.append(node(kind, ["x", "W", "R", "B"], ["y2", "y3"], hidden_size=hidden, direction=direction,
                          linear_before_reset=1))
        outs = [*outs, "y2", "y3"]
    m = make(nodes, [("x", F, [steps, batch, size])], outputs(len(outs)), inits, opset=14)
    check_model(m, {"x": rand(steps, batch, size)})


def test_lstm_batch_first_against_onnx_reference():
    """onnxruntime has no layout=1 LSTM: compared with onnx.reference (which gets clip wrong, so
    none here), before and after an update."""
    inits = {"W": rand(1, 8, 3), "R": rand(1, 8, 2), "B": rand(1, 16)}
    m = make([node("LSTM", ["x", "W", "R", "B"], ["y0", "y1", "y2"], hidden_size=2, layout=1)],
             [("x", F, [2, 4, 3])], outputs(3), inits, opset=14)
    feeds = {"x": 2 * rand(2, 4, 3)}
    graph = import_onnx(m)
    bundle = wrc.load_bundle(bundle_bytes(compile_graph(graph, weight_names(graph))))
    bundle.init()
    assert_close(bundle.infer(feeds), ReferenceEvaluator(m).run(None, feeds), 1e-5, "before update")
    new = {k: rand(*v.shape) for k, v in inits.items()}
    bundle.update(new)
    assert_close(bundle.infer(feeds), ReferenceEvaluator(with_initializers(m, new)).run(None, feeds), 1e-5, "after")


@pytest.mark.parametrize("axis,largest", [(-1, 1), (1, 0), (0, 1)])
def test_top_k_with_ties_lower_index_first(axis, largest):
    """Ties (rounded values) keep the lower index first; values, indices; float and int inputs."""
    x = np.round(2 * rand(4, 5, 6)).astype(np.float32)
    nodes = [node("Add", ["x", "w"], ["t"]), node("TopK", ["t", "k"], ["y0", "i0"], axis=axis, largest=largest),
             node("TopK", ["n", "k"], ["y1", "i1"], axis=axis, largest=largest)]
    m = make(nodes, [("x", F, [4, 5, 6]), ("n", I64, [4, 5, 6])],
             [("y0", F, None), ("i0", I64, None), ("y1", I64, None), ("i1", I64, None)],
             {"w": np.zeros(6, np.float32), "k": np.array([3], np.int64)})
    check_model(m, {"x": x, "n": RNG.integers(-2, 3, (4, 5, 6))}, tol=0)


def test_top_k_on_interp_and_refused_forms():
    m = make([node("Add", ["x", "w"], ["t"]), node("TopK", ["t", "k"], ["y0", "i0"], largest=0)],
             [("x", F, [2, 4])], [("y0", F, None), ("i0", I64, None)],
             {"w": rand(4), "k": np.array([2], np.int64)})
    check_model(m, {"x": rand(2, 4)}, backends=("numpy", "interp"), tol=0)
    m = make([node("TopK", ["x", "k"], ["y0", "i0"]), node("TopK", ["x", "r"], ["y1", "i1"])],
             [("x", F, [2, 4]), ("r", I64, [1])], [("y0", F, None), ("i0", I64, None), ("y1", F, None), ("i1", I64, None)],
             {"k": np.array([5], np.int64)})
    with pytest.raises(UnsupportedOpError) as e:
        import_onnx(m)
    assert "TopK with k=5 along an axis of 4" in str(e.value) and "input 1 (r) must be a constant" in str(e.value)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_mod_is_exact_with_onnx_special_cases(dtype):
    """Mod of floats (fmod 0 and 1) vs np.mod / np.fmod (onnx.reference's definition), bit for bit
    up to the sign of zero (float64: within |a| * 2**-50, the rounding of q * b): mixed signs,
    quotients up to 2**22, zeros, infinities, NaN."""
    elem = {np.float16: TensorProto.FLOAT16, np.float32: F, np.float64: TensorProto.DOUBLE}[dtype]
    specials = np.array([0, -0.0, np.inf, -np.inf, np.nan, 5, -5, 3, 0, 7], dtype)
    divisors = np.array([3, -3, 2, 2, 1, np.inf, np.inf, -np.inf, 0, np.nan], dtype)
    big = (RNG.standard_normal(30) * 2.0 ** RNG.integers(0, 20, 30)).astype(dtype) if dtype != np.float16 \
        else RNG.standard_normal(30).astype(dtype) * 50
    a = np.concatenate([specials, big, RNG.standard_normal(20).astype(dtype)])
    b = np.concatenate([divisors, RNG.uniform(0.3, 3, 30).astype(dtype) * RNG.choice([-1, 1], 30).astype(dtype),
                        RNG.standard_normal(20).astype(dtype)])
    m = make([node("Mod", ["a", "b"], ["y0"], fmod=0), node("Mod", ["a", "b"], ["y1"], fmod=1)],
             [("a", elem, [60])], [("y0", elem, None), ("y1", elem, None)], {"b": b})
    graph = import_onnx(m)
    data = bundle_bytes(compile_graph(graph, ["b"]))
    with np.errstate(all="ignore"):
        want = [np.mod(a, b), np.fmod(a, b)]
    for backend in ("numpy", "interp"):
        bundle = wrc.load_bundle(data, backend=backend)
        bundle.init()
        for got, w in zip(bundle.infer({"a": a}), want):
            assert got.dtype == dtype
            if dtype == np.float64:
                bound = np.where(np.isfinite(a), np.abs(a), 0) * 2.0 ** -50
                with np.errstate(invalid="ignore"):
                    ok = (got == w) | (np.isnan(got) & np.isnan(w)) | (np.abs(got - w) <= bound)
                assert ok.all(), (backend, got[~ok], w[~ok])
            else:
                np.testing.assert_array_equal(got, w, err_msg=backend)
