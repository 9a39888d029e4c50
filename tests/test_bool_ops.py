"""Bool tensors end to end: comparisons, logic, NaN/inf tests, masks (builder, both backends,
bundle I/O, ONNX import against onnxruntime)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from test_models import check, compile_bundles
from test_onnx import check_model, make, node, ort_run

import wrc
from wrc.cli import main
from wrc.context import make_context
from wrc.ir_text import parse_module

RNG = np.random.default_rng(11)
F, B, I64 = TensorProto.FLOAT, TensorProto.BOOL, TensorProto.INT64

# Floats with the values comparisons and tests must get right: NaN, both infinities, ties.
SPECIAL = np.array([[1, np.nan, np.inf], [-np.inf, 2, 0]], np.float32)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- builder, both backends


def test_comparisons_logic_and_tests_both_backends_before_and_after_update():
    g = wrc.Graph("bools")
    x, y = g.data("x", (2, 3)), g.data("y", (3,))
    i, j = g.data("i", (2, 3), "int64"), g.data("j", (1, 3), "int64")
    m = g.data("m", (2, 1), "bool")
    w = g.const("w", rand(3))
    keep = g.const("keep", np.array([True, False, True]))  # a bool weight: a bool variable
    lt = g.less(x, y)
    g.output(
        g.equal(x, y), g.less(x, w), g.less_equal(x, y), g.greater(i, j), g.greater_equal(i, j),
        g.equal(i, j), g.greater_equal(w, x), g.logical_and(m, lt), g.logical_or(m, g.equal(i, j)),
        g.logical_xor(m, g.greater(x, y)), g.logical_not(m), g.is_nan(x), g.is_inf(x),
        g.equal(m, lt), g.logical_and(keep, m), g.reduce_max(g.logical_and(m, lt), [1]),
        g.where(g.logical_not(lt), x, w),
        # weight-only: ge-hoist-weight-only computes this mask once per update (a derived bool variable)
        g.where(g.logical_and(g.logical_not(keep), g.logical_not(g.is_nan(w))), x, w),
    )

    def ref(xv, yv, iv, jv, mv, wv, kv):
        lt = xv < yv
        return [xv == yv, xv < wv, xv <= yv, iv > jv, iv >= jv, iv == jv, wv >= xv, mv & lt, mv | (iv == jv),
                mv ^ (xv > yv), ~mv, np.isnan(xv), np.isinf(xv), mv == lt, kv & mv, (mv & lt).any(1),
                np.where(~lt, xv, wv), np.where(~kv & ~np.isnan(wv), xv, wv)]

    feeds = {"x": SPECIAL, "y": np.array([1, np.nan, 0], np.float32),
             "i": RNG.integers(-2, 2, (2, 3)), "j": RNG.integers(-2, 2, (1, 3)), "m": np.array([[True], [False]])}
    bundles = compile_bundles(g, ["w", "keep"])
    with np.errstate(invalid="ignore"):
        check(bundles, feeds, ref(*feeds.values(), g.weight("w"), g.weight("keep")))
        new = {"w": np.array([np.nan, 5, -1], np.float32), "keep": np.array([False, True, True])}
        for b in bundles.values():
            b.update(new)
        check(bundles, feeds, ref(*feeds.values(), new["w"], new["keep"]))


def test_sign_and_integer_mod_both_backends():
    g = wrc.Graph("sign_mod")
    a, b = g.data("a", (2, 4), "int64"), g.data("b", (4,), "int64")
    x, k = g.data("x", (2, 4)), g.data("k", (4,), "int32")
    w = g.const("w", rand(4))
    g.output(g.floor_mod(a, b), g.fmod(a, b), g.sign(g.add(x, w)), g.sign(a), g.sign(k), g.floor_mod(k, g.sign(k)))
    feeds = {"a": np.array([[7, -7, 7, -7], [0, 5, -3, 2**40 + 1]]), "b": np.array([3, 3, -3, -3]),
             "x": SPECIAL.repeat(2, 1)[:, :4], "k": np.array([5, -2, 0, 7], np.int32)}
    bundles = compile_bundles(g, ["w"])
    with np.errstate(invalid="ignore", divide="ignore"):  # k % sign(k) divides by 0 once: 0 (NumPy's fmod)
        for wv in (g.weight("w"), np.array([-1, 0, 1, np.nan], np.float32)):
            if wv is not g.weight("w"):
                for bd in bundles.values():
                    bd.update({"w": wv})
            a_, b_, x_, k_ = feeds.values()
            check(bundles, feeds, [a_ % b_, np.fmod(a_, b_), np.sign(x_ + wv), np.sign(a_), np.sign(k_),
                                   np.fmod(k_, np.sign(k_))])


@pytest.mark.parametrize("bad, message", [
    (lambda g, x, m: g.less(m, m), "ge.less: expects numeric tensors, got i1"),
    (lambda g, x, m: g.logical_and(x, m), "ge.logical_and: expects bool \\(i1\\) tensors"),
    (lambda g, x, m: g.logical_not(x), "ge.logical_not: expects bool \\(i1\\) tensors"),
    (lambda g, x, m: g.is_nan(m), "ge.is_nan: expects a floating-point tensor"),
    (lambda g, x, m: g.equal(x, m), "ge.equal: element types f32 and i1 differ"),
    (lambda g, x, m: g.logical_or(m, g.data("n", (3, 2), "bool")), "do not broadcast"),
    (lambda g, x, m: g.sign(m), "ge.sign: expects a numeric tensor"),
    (lambda g, x, m: g.fmod(x, x), "ge.fmod: expects integer tensors, got f32"),
    (lambda g, x, m: g.floor_mod(m, m), "ge.floor_mod: expects integer tensors, got i1"),
])
def test_builder_errors_name_the_op(bad, message):
    g = wrc.Graph("bad")
    x, m = g.data("x", (2, 3)), g.data("m", (2, 3), "bool")
    with pytest.raises(wrc.ShapeError, match=message):
        bad(g, x, m)


def test_bool_input_output_and_variable_survive_save_and_load(tmp_path):
    g = wrc.Graph("masks")
    m = g.data("m", (2, 4), "bool")
    x = g.data("x", (2, 4))
    keep = g.const("keep", np.array([True, True, False, True]))
    mask = g.logical_and(m, keep)
    g.output(mask, g.where(mask, x, g.const("fill", np.float32(-1e9), inline=True)))
    with wrc.BuildSession():
        parts = wrc.convert_to_weight_refreshable_graphs(g, ["keep"])
        wrc.bundle_save_model(tmp_path / "m.wrcb", wrc.bundle_build_model(
            [parts.infer_graph, parts.var_init_graph, parts.var_update_graph]))
    mv, xv = RNG.random((2, 4)) < 0.5, rand(2, 4)
    for backend in ("numpy", "interp"):
        b = wrc.load_bundle(tmp_path / "m.wrcb", backend=backend)
        info = b.variables["keep_var"]
        assert (info.shape, info.dtype) == ((4,), np.dtype(bool))
        b.init()
        for kv in (g.weight("keep"), np.array([False, True, True, False])):
            if kv is not g.weight("keep"):
                b.update({"keep": kv})
            got_mask, got_y = b.infer({"m": mv, "x": xv})
            assert got_mask.dtype == bool
            np.testing.assert_array_equal(got_mask, mv & kv)
            np.testing.assert_array_equal(got_y, np.where(mv & kv, xv, np.float32(-1e9)))
        with pytest.raises(wrc.WrcError, match="keep"):
            b.update({"keep": np.ones(4, np.float32)})  # a bool weight takes bools only


def test_non_finite_dense_values_round_trip_through_the_ir_text():
    """xDSL prints inf/NaN elements as hex bit patterns but read them back as integers: a
    mask's inline -inf fill became -4.3e9 in a loaded bundle (wrc.ir_text reads the bits)."""
    text = ("builtin.module attributes {a = dense<[0x7f800000, 0xff800000, 0x7fc00000, 1.500000e+00]> : tensor<4xf32>, "
            "b = dense<0xfc00> : tensor<2xf16>, c = dense<0x7ff0000000000000> : tensor<f64>, d = dense<16> : tensor<2xi32>} {\n}")
    module = parse_module(make_context(), text)
    values = [module.attributes[k].get_values() for k in "abcd"]  # type: ignore[attr-defined]
    assert values[0][:2] == (np.inf, -np.inf) and np.isnan(values[0][2]) and values[0][3] == 1.5
    assert values[1:] == [(-np.inf, -np.inf), (np.inf,), (16, 16)]
    assert str(module) == text
    with pytest.raises(Exception, match="hexadecimal literal does not fit f32"):
        parse_module(make_context(), "builtin.module attributes {a = dense<0x7f80000000> : tensor<f32>} {}")


# ---------------------------------------------------------------- ONNX import vs onnxruntime


def test_onnx_comparison_and_logic_ops_match_onnxruntime():
    ops = [("Equal", "a", "b"), ("Less", "a", "w"), ("LessOrEqual", "a", "b"), ("Greater", "i", "j"),
           ("GreaterOrEqual", "a", "b"), ("Equal", "i", "j"), ("Equal", "p", "q"), ("And", "p", "q"),
           ("Or", "p", "q"), ("Xor", "p", "q")]
    nodes = [node("Add", ["x", "w"], ["a"])] + [node(op, [u, v], [f"y{k}"]) for k, (op, u, v) in enumerate(ops)]
    unary = [node("Not", ["p"], ["u0"]), node("IsNaN", ["x"], ["u1"]), node("IsInf", ["x"], ["u2"]),
             node("IsInf", ["x"], ["u3"], detect_negative=0), node("IsInf", ["x"], ["u4"], detect_positive=0),
             node("IsInf", ["x"], ["u5"], detect_positive=0, detect_negative=0),
             node("Cast", ["a"], ["u6"], to=B), node("Cast", ["p"], ["u7"], to=F), node("Cast", ["p"], ["u8"], to=I64),
             node("Cast", ["i"], ["c"], to=B), node("Where", ["c", "a", "b"], ["u9"])]
    outputs = [(f"y{k}", B) for k in range(len(ops))] + [(f"u{k}", B) for k in range(7)] + [("u7", F), ("u8", I64), ("u9", F)]
    m = make(nodes + unary,
             [("x", F, [2, 3]), ("b", F, [3]), ("i", I64, [2, 3]), ("j", I64, [1, 3]), ("p", B, [2, 1]), ("q", B, [2, 3])],
             [(o, t, None) for o, t in outputs], {"w": np.array([0, 1, -2], np.float32)})
    feeds = {"x": SPECIAL, "b": np.array([1, np.nan, 0], np.float32), "i": RNG.integers(-2, 2, (2, 3)),
             "j": RNG.integers(-2, 2, (1, 3)), "p": np.array([[True], [False]]), "q": RNG.random((2, 3)) < 0.5}
    with np.errstate(invalid="ignore"):
        check_model(m, feeds, backends=("numpy", "interp"))


def test_onnx_sign_and_mod_match_onnxruntime():
    nodes = [node("Add", ["x", "w"], ["t"]), node("Sign", ["t"], ["y0"]), node("Sign", ["i"], ["y1"]),
             node("Mod", ["i", "j"], ["y2"]), node("Mod", ["i", "j"], ["y3"], fmod=1),
             node("Mod", ["x", "w"], ["y4"], fmod=1)]
    m = make(nodes[:5], [("x", F, [2, 3]), ("i", I64, [2, 3]), ("j", I64, [3])],
             [("y0", F, None)] + [(f"y{k}", I64, None) for k in (1, 2, 3)], {"w": np.array([0, 1, -2], np.float32)})
    feeds = {"x": SPECIAL, "i": np.array([[7, -7, 0], [-5, 5, 9]]), "j": np.array([3, -3, 4])}
    check_model(m, feeds, backends=("numpy", "interp"))
    float_mod = make(nodes[5:], [("x", F, [2, 3])], [("y4", F, None)], {"w": rand(3)})
    check_model(float_mod, {"x": 5 * rand(2, 3)})  # floats at run time (tests/test_onnx_ops_extra.py: exactness)


def _mask_model(seq: int, dim: int) -> tuple:
    """One attention head masked the ways transformers exports masks, from an int64
    `attention_mask` [1, seq]: (1) the SDPA export — a causal mask (LessOrEqual over constant
    aranges, folded at import) And the padding mask (Not(Equal(mask, 0))), made additive by
    Where(keep, 0, -inf), softmax, and Where(IsNaN(p), 0, p) guarding fully masked rows; (2) the
    eager export — Cast to float, 1 - m, Cast to bool, Where(b, finfo.min, 1 - m)."""
    f32min = np.float32(np.finfo(np.float32).min)
    nodes = [
        node("MatMul", ["x", "wq"], ["q"]), node("MatMul", ["x", "wk"], ["k"]), node("MatMul", ["x", "wv"], ["v"]),
        node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]), node("MatMul", ["q", "kt"], ["s0"]),
        node("Mul", ["s0", "scale"], ["s"]),
        # (1) SDPA: causal And padding
        node("Range", ["zero", "n", "one"], ["ar"]), node("Unsqueeze", ["ar", "ax1"], ["qi"]),
        node("Unsqueeze", ["ar", "ax0"], ["ki"]), node("LessOrEqual", ["ki", "qi"], ["causal"]),
        node("Equal", ["attention_mask", "zero"], ["pad"]), node("Not", ["pad"], ["valid"]),
        node("And", ["causal", "valid"], ["keep"]),
        node("Where", ["keep", "f0", "ninf"], ["add1"]), node("Add", ["s", "add1"], ["t1"]),
        node("Softmax", ["t1"], ["p1"], axis=-1), node("IsNaN", ["p1"], ["nan"]),
        node("Where", ["nan", "f0", "p1"], ["p1g"]), node("MatMul", ["p1g", "v"], ["y1"]),
        # (2) eager: 1 - mask as float, masked_fill with finfo.min
        node("Unsqueeze", ["attention_mask", "ax1"], ["m3"]), node("Cast", ["m3"], ["mf"], to=F),
        node("Sub", ["f1", "mf"], ["inv"]), node("Cast", ["inv"], ["invb"], to=B),
        node("Where", ["invb", "fmin", "inv"], ["add2"]), node("Add", ["s", "add2"], ["t2"]),
        node("Softmax", ["t2"], ["p2"], axis=-1), node("MatMul", ["p2", "v"], ["y2"]),
    ]
    consts = {"zero": np.array(0, np.int64), "one": np.array(1, np.int64), "n": np.array(seq, np.int64),
              "ax0": np.array([0], np.int64), "ax1": np.array([1], np.int64),
              "f0": np.array(0, np.float32), "f1": np.array(1, np.float32), "ninf": np.array(-np.inf, np.float32),
              "fmin": f32min, "scale": np.array(dim ** -0.5, np.float32)}
    weights = {n: rand(dim, dim) for n in ("wq", "wk", "wv")}
    nodes = [helper.make_node("Constant", [], [k], value=helper.make_tensor(k, helper.np_dtype_to_tensor_dtype(v.dtype),
                                                                            v.shape, v.reshape(-1).tolist()))
             for k, v in consts.items()] + nodes
    return make(nodes, [("x", F, [1, seq, dim]), ("attention_mask", I64, [1, seq])],
                [("y1", F, None), ("y2", F, None)], weights)


def test_transformers_attention_masks_match_onnxruntime():
    model = _mask_model(seq=4, dim=4)
    # a left-padded batch: query 0 sees only the padded key 0, so its row is fully masked (NaN
    # softmax, zeroed by the IsNaN guard)
    feeds = {"x": rand(1, 4, 4), "attention_mask": np.array([[0, 1, 1, 1]], np.int64)}
    want = ort_run(model, feeds)
    assert np.all(want[0][0, 0] == 0) and np.isfinite(want[0]).all()  # the pattern is exercised
    graph = check_model(model, feeds, backends=("numpy", "interp"))
    ops = {op.name for op in graph.func.walk()}
    assert {"ge.logical_and", "ge.logical_not", "ge.equal", "ge.is_nan", "ge.where"} <= ops
    assert "ge.less_equal" not in ops  # the causal mask over constant aranges is folded


def test_masked_model_through_wrc_compile_and_run(tmp_path):
    """The attention-mask model through the command line: int64 mask from a .npy file; a bool
    output written to the .npz as bool."""
    model = _mask_model(seq=4, dim=4)
    m2 = make([node("Not", ["p"], ["q"]), node("Add", ["x", "w"], ["y"])], [("p", B, [3]), ("x", F, [3])],
              [("q", B, None), ("y", F, None)], {"w": rand(3)})
    feeds = [{"x": rand(1, 4, 4), "attention_mask": np.array([[0, 1, 1, 1]], np.int64)},
             {"p": np.array([True, False, True]), "x": rand(3)}]
    for k, (m, feed) in enumerate(zip((model, m2), feeds)):
        (tmp_path / f"m{k}.onnx").write_bytes(m.SerializeToString())
        args = []
        for name, value in feed.items():
            np.save(tmp_path / f"{name}{k}.npy", value)
            args += ["--input", f"{name}={tmp_path / f'{name}{k}.npy'}"]
        assert main(["compile", str(tmp_path / f"m{k}.onnx"), "-o", str(tmp_path / f"m{k}.wrcb"), "-q"]) == 0
        assert main(["run", str(tmp_path / f"m{k}.wrcb"), *args, "--output", str(tmp_path / f"o{k}.npz")]) == 0
        got = np.load(tmp_path / f"o{k}.npz")
        for i, want in enumerate(ort_run(m, feed)):
            assert got[f"output_{i}"].dtype == want.dtype
            np.testing.assert_allclose(got[f"output_{i}"], want, rtol=1e-4, atol=1e-5)
