"""Section `depthwise`: one depthwise convolution (3x3 / 5x5 / 7x7, stride 1 / 2, pads k // 2)
at the shapes of ShuffleNet, MobileNet, EfficientNet and ConvNeXt, one thread: wrc (the kernel
its plan picks: the compiled one where it can be built), wrc with NumPy forms only
(`numpy{native=false}`), onnxruntime, and by hand on the padded input the compiled kernel
alone (`native`: `window.conv`, wrc.backends.native; `native unpadded`: the same on the
unpadded input, the padding read as zeros) and the NumPy forms a kernel could take:

* `im2col`: the window copy and one batched GEMM (`[C, 1, K] @ [C, K, OH*OW]`: wrc's Gemm);
* `taps`: per window point, `out += x shifted * w[:, i, j]` over strided views (2 calls a point);
* `wide`: `taps` over whole padded rows (stride 1 only: wrc's WindowReduce `rows`);
* `rows`: per window row, a batched `[1, k] @ [k, OW]` matmul over a strided view (no copy).

Then one pool (MaxPool / AveragePool at the shapes of ResNet, SqueezeNet, Inception,
DenseNet): wrc, wrc with NumPy forms only, onnxruntime.

    .venv/bin/python bench/depthwise.py [--quick]     # or: bench/run.py --only depthwise
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
from numpy.lib.stride_tricks import as_strided
from onnx import TensorProto, helper, numpy_helper
from threadpoolctl import threadpool_limits

import wrc
from wrc import pipeline
from wrc.backends import get_backend, native
from wrc.onnx import import_onnx, weight_names
from wrc.workflow import compile_graph

SHAPES = [(240, 28, 1, 3), (240, 56, 2, 3), (480, 14, 1, 3), (480, 28, 2, 3), (960, 7, 1, 3),
          (72, 16, 1, 3), (96, 28, 1, 3), (144, 56, 1, 3), (32, 112, 1, 3), (672, 14, 1, 5), (672, 14, 2, 5),
          (96, 16, 1, 7), (384, 4, 1, 7), (768, 7, 1, 7)]
"""(channels, image side, stride, kernel side)."""


def model(w: np.ndarray, side: int, stride: int) -> onnx.ModelProto:
    c, _, k, _ = w.shape
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=c, strides=[stride] * 2, pads=[k // 2] * 4)
    graph = helper.make_graph([node], "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, side, side])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def by_hand(x: np.ndarray, w: np.ndarray, stride: int) -> dict[str, Callable[[], np.ndarray]]:
    """The NumPy forms (module docstring) of one depthwise convolution of `x` [1, C, H, W]."""
    c, _, k, _ = w.shape
    p = k // 2
    xp = np.pad(x[0], ((0, 0), (p, p), (p, p)))
    hp = xp.shape[1]
    oh = (hp - k) // stride + 1
    i4 = xp.itemsize
    out, tmp = np.empty((c, oh, oh), np.float32), np.empty((c, oh, oh), np.float32)
    taps = [(i, j) for i in range(k) for j in range(k)]
    wk = w.reshape(c, k, k)
    ws = [wk[:, i, j].reshape(c, 1, 1) for i, j in taps]

    def im2col() -> np.ndarray:
        cols = as_strided(xp, (c, k, k, oh, oh), (hp * hp * i4, hp * i4, i4, stride * hp * i4, stride * i4))
        np.matmul(wk.reshape(c, 1, k * k), np.ascontiguousarray(cols).reshape(c, k * k, oh * oh),
                  out=out.reshape(c, 1, oh * oh))
        return out

    views = [as_strided(xp[:, i:, j:], (c, oh, oh), (hp * hp * i4, stride * hp * i4, stride * i4)) for i, j in taps]

    def shifted() -> np.ndarray:
        np.multiply(views[0], ws[0], out=out)
        for v, wv in zip(views[1:], ws[1:], strict=True):
            np.multiply(v, wv, out=tmp)
            np.add(out, tmp, out=out)
        return out

    def rows() -> np.ndarray:
        for i in range(k):
            r = np.matmul(wk[:, i, :].reshape(c, 1, 1, k),
                          as_strided(xp[:, i:, :], (c, oh, k, oh), (hp * hp * i4, stride * hp * i4, i4, stride * i4)))
            if i == 0:
                np.copyto(out, r.reshape(c, oh, oh))
            else:
                np.add(out, r.reshape(c, oh, oh), out=out)
        return out

    forms = {"im2col": im2col, "taps": shifted, "rows": rows}
    kernels = native.load("window")
    if kernels is not None:  # window.conv's params: kernels.NativeWindow, emit.py
        params = (0, 1, 1, c, oh, oh, 1, k, k, 0, 0, 0, hp * hp, stride * hp, stride, 0, hp, 1,
                  0, 0, 0, k * k, 0, 0, 0, k, 1, 0, 0, 0, oh * oh, oh, 1, 0, 0, 0)
        forms["native"] = lambda: (kernels.conv(xp, wk, out, params), out)[1]
        side = x.shape[2]  # the unpadded image: planes of side², the first window at (-p, -p)
        unpadded = (0, 1, 1, c, oh, oh, 1, k, k, 0, 0, 0, side * side, 0, 0, 0, 0, 0,
                    0, 0, 0, k * k, 0, 0, 0, k, 1, 0, 0, 0, oh * oh, oh, 1, 0, 0, 0,
                    side, side, -p, -p, 0, 0, 0, stride, 0, 0, 1, 0, 0, 0, 0, 0, stride, 0, 0, 1)
        forms["native unpadded"] = lambda: (kernels.conv(x, wk, out, unpadded), out)[1]
    if stride == 1:
        span = (oh - 1) * hp + oh
        flat = xp.reshape(c, hp * hp)
        wide, wtmp = np.empty((c, span), np.float32), np.empty((c, span), np.float32)
        wviews = [flat[:, i * hp + j:i * hp + j + span] for i, j in taps]

        def wide_rows() -> np.ndarray:
            np.multiply(wviews[0], ws[0].reshape(c, 1), out=wide)
            for v, wv in zip(wviews[1:], ws[1:], strict=True):
                np.multiply(v, wv.reshape(c, 1), out=wtmp)
                np.add(wide, wtmp, out=wide)
            np.copyto(out, as_strided(wide, (c, oh, oh), (span * i4, hp * i4, i4)))
            return out

        forms["wide"] = wide_rows
    return forms


def bench(quick: bool, interleaved: Callable[..., dict[str, tuple[float, float]]],
          record: Callable[..., None]) -> None:
    rng = np.random.default_rng(0)
    rounds, calls = (3, 5) if quick else (7, 10)
    for c, side, stride, k in SHAPES:
        case = f"{c}x{side}^2 {k}x{k}/{stride}"
        x = rng.standard_normal((1, c, side, side), dtype=np.float32)
        w = rng.standard_normal((c, 1, k, k), dtype=np.float32)
        m = model(w, side, stride)
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        graph = import_onnx(m, {"x": x.shape})
        bundle = compile_graph(graph, weight_names(graph))
        b, bn = wrc.load_bundle(bundle), wrc.load_bundle(bundle, "numpy{native=false}")
        b.init()
        bn.init()
        want = sess.run(None, {"x": x})[0]
        fns = {"wrc": lambda b=b, x=x: b.infer({"x": x}), "wrc numpy forms": lambda b=bn, x=x: b.infer({"x": x}),
               "ort": lambda s=sess, x=x: s.run(None, {"x": x})}
        for name, f in by_hand(x, w, stride).items():
            fns[f"numpy {name}"] = f
        for name, f in fns.items():
            got = f()
            got = got[0] if isinstance(got, list) else got
            if not np.allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-4):
                raise SystemExit(f"{case}: {name} differs from onnxruntime")
        with threadpool_limits(1):
            res = interleaved(fns, rounds, calls)
        for what, (med, mn) in res.items():
            record("depthwise", case, what, med, mn)
    bench_pools(quick, interleaved, record)


POOLS = [("MaxPool", 64, 112, 3, 2, 1, 0), ("MaxPool", 24, 112, 3, 2, 1, 0), ("MaxPool", 96, 109, 3, 2, 0, 1),
         ("MaxPool", 192, 56, 3, 2, 0, 1), ("AveragePool", 192, 28, 3, 1, 1, 0), ("AveragePool", 256, 56, 2, 2, 0, 0)]
"""(op, channels, image side, kernel side, stride, pads, ceil_mode): ResNet, ShuffleNet, SqueezeNet,
Inception (two), DenseNet."""


def pool_model(op: str, c: int, side: int, k: int, stride: int, pad: int, ceil: int) -> onnx.ModelProto:
    node = helper.make_node(op, ["x"], ["y"], kernel_shape=[k, k], strides=[stride] * 2, pads=[pad] * 4,
                            ceil_mode=ceil)
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, side, side])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def bench_pools(quick: bool, interleaved: Callable[..., dict[str, tuple[float, float]]],
                record: Callable[..., None]) -> None:
    rng = np.random.default_rng(0)
    rounds, calls = (3, 5) if quick else (7, 10)
    for op, c, side, k, stride, pad, ceil in POOLS:
        case = f"{op[:3]} {c}x{side}^2 {k}x{k}/{stride}"
        x = rng.standard_normal((1, c, side, side), dtype=np.float32)
        m = pool_model(op, c, side, k, stride, pad, ceil)
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        g = import_onnx(m, {"x": x.shape})  # no weights, so no bundle: the lowered module compiled
        module = pipeline.apply(g.module.clone(), pipeline.LOWER_TO_BUFFERS)
        b, bn = (get_backend(name).compile(module) for name in ("numpy", "numpy{native=false}"))
        want = sess.run(None, {"x": x})[0]
        fns = {"wrc": lambda b=b, x=x: b.run("pool", {}, [x]), "wrc numpy forms": lambda b=bn, x=x: b.run("pool", {}, [x]),
               "ort": lambda s=sess, x=x: s.run(None, {"x": x})}
        for name, f in fns.items():
            if not np.allclose(f()[0], want, rtol=1e-4, atol=1e-4):
                raise SystemExit(f"{case}: {name} differs from onnxruntime")
        with threadpool_limits(1):
            res = interleaved(fns, rounds, calls)
        for what, (med, mn) in res.items():
            record("pool", case, what, med, mn)


def main() -> None:
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    bench(args.quick, run.interleaved, run.record)
    print(run.table())


if __name__ == "__main__":
    main()
