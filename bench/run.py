"""wrc's benchmarks: one command, one table, one JSON file.

    .venv/bin/python bench/run.py [--quick] [--json bench.json] [--only infer,update,...]

Sections (docs/performance.md explains each and records a run):
  infer    wrc numpy (refreshable) vs wrc with weights frozen as constants vs onnxruntime
           (weights as initializers, and as graph inputs), 1 and 2 threads
  hoist    a model with weight-only work (Gemm transB=1 + BatchNorm): wrc with and without
           ge-hoist-weight-only vs frozen vs onnxruntime; update cost with derived values
  onnx     the ResNet- and BERT-style PyTorch exports of tests/models vs onnxruntime
  gather   an embedding lookup at BERT-base vocabulary size: np.take vs the one-hot reduction
  kernels  pools and (depthwise) convolutions of real CNNs, one op each: wrc's window kernels
           vs the kernels they replaced vs hand-written NumPy vs onnxruntime
  resample Resize, Pad reflect and CumSum (ONNX ops composed of constant-index gathers, slices)
  interp   xDSL interpreter vs the NumPy JIT on a small MLP
  update   full / partial Bundle.update vs np.copyto of the same bytes vs rebuilding the
           bundle vs a new onnxruntime session with the new weights
  compile  convert + lower + JIT (and load from bytes) for graphs of 100, 500, 1000, 2000 ops,
           3 times each (median, min)
  bundle   save / load time, file size vs raw weight bytes (normal and weight-stripped)
  load     load_bundle from a file: from the load cache, and without it by format (2: binary
           IR, 1: text IR), vs a new onnxruntime session of the same model and vs reading the
           weights (tests/models, bench models, zoo exports); a 2,000-op chain compiled, saved
           and loaded
  rss      peak RSS growth when loading a bundle, in a fresh subprocess each
  gelu     the exact GELU x/2 (1 + erf(x / sqrt 2)), erf alone and x ** 3 on a ViT-B FFN
           activation (197 x 3072): wrc vs hand-written NumPy (same erf) vs onnxruntime vs
           the old np.vectorize(math.erf) / np.power
  zoo-infer the zoo (tests/zoo, onnx's light CNNs) vs onnxruntime, one thread (bench/zoo_infer.py)
  first    first vs steady infer and update, load and init time, peak RSS after each step
           (fresh subprocess per model: ResNet/BERT exports, encoder LN+GELU, a ViT-B-sized
           stack of 340 MB); peak RSS of building that stack
  steps    CPU seconds of graph / import, convert + build, save and load for a 2,000-op chain
           and four zoo models, each in a fresh process (bench/compile_steps.py)
  zoo-tf   the zoo's transformers (tests/zoo) vs onnxruntime, with their NumPy calls per
           infer; the encoder LN+GELU block vs onnxruntime vs hand-written NumPy
  fleet    wrc.fleet on Ray (bench/fleet.py): publish of a 1 GiB weight set (256 MiB with
           --quick) to 4 replicas while they serve vs memcpy, copy and zero-copy, 256 vs 4096
           tensors, request p50/p99 and throughput while publishing at 1 Hz vs steady and vs
           the trainer's puts alone (alternating windows), object store and RSS
  zoo      the model zoo (tests/zoo, onnx's light CNNs) vs onnxruntime: load, infer, update,
           first calls and peak RSS in fresh processes (bench/zoo.py; --quick: 9 models)
  adapters rank-8/16/64 LoRA adapters on every projection of the encoder block and a ViT-B
           stack: apply_adapter vs a full update vs NumPy W0 + s·B@A then update, bytes passed
           (bench/adapters.py)
  depthwise one depthwise convolution at ShuffleNet/MobileNet/EfficientNet shapes: wrc vs
           onnxruntime vs four hand-written NumPy forms (bench/depthwise.py)

Timings: every contender of a group runs in the same rounds, interleaved (the order rotates
each round); the median and minimum of all calls are reported, in ms. The machine's BLAS
(threadpoolctl) is logged with every result. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are
dropped from this process's environment before NumPy loads (they make OpenBLAS pick slower
kernels); tests never do this.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import adapters as adapters_bench  # noqa: E402
import child  # noqa: E402
import compile_steps  # noqa: E402
import depthwise  # noqa: E402
import fleet as fleet_bench  # noqa: E402
import models  # noqa: E402
import zoo  # noqa: E402
import zoo_infer  # noqa: E402
import zoo_tf  # noqa: E402

import wrc  # noqa: E402
from wrc.bundle_format import bundle_bytes  # noqa: E402

ROWS: list[dict[str, Any]] = []


def blas() -> list[dict[str, Any]]:
    return [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for i in threadpool_info()]


def record(section: str, case: str, what: str, med: float, mn: float | None = None,
           unit: str = "ms", **extra: Any) -> None:
    ROWS.append({"section": section, "case": case, "what": what, "median": med, "min": mn,
                 "unit": unit, "blas": blas(), **extra})


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, calls: int) -> dict[str, tuple[float, float]]:
    """{name: (median ms, min ms)} over `rounds` rounds of `calls` calls of each fn."""
    samples: dict[str, list[float]] = {n: [] for n in fns}
    names = list(fns)
    for f in fns.values():  # warm-up
        f()
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            f = fns[n]
            for _ in range(calls):
                t = time.perf_counter()
                f()
                samples[n].append(time.perf_counter() - t)
    return {n: (1e3 * float(np.median(s)), 1e3 * min(s)) for n, s in samples.items()}


def agree(model: str, ref: np.ndarray, results: dict[str, np.ndarray]) -> None:
    """Stop before timing anything that does not compute what onnxruntime computes."""
    for name, got in results.items():
        err = float(np.abs(got - ref).max() / (np.abs(ref).max() + 1e-30))
        if not err <= 1e-4:  # (NaN too)
            raise SystemExit(f"{model}: {name} differs from onnxruntime (relative error {err:.2e})")


# ---------------------------------------------------------------------------- building


def build_bundle(m: models.Model, init: bool = True, hoist: bool = True) -> wrc.ModelBuffer:
    g = m.build(m.weights)
    with wrc.BuildSession({"wrc.hoist_weight_only": "true" if hoist else "false"}):
        gs = wrc.convert_to_weight_refreshable_graphs(g, list(m.weights))
        parts = [gs.infer_graph, gs.var_update_graph] + ([gs.var_init_graph] if init else [])
        return wrc.bundle_build_model(parts)


def frozen_bundle(m: models.Model) -> tuple[wrc.Bundle, str]:
    """The same model with every weight a constant (no variables): the 'frozen' reference."""
    g = m.build(m.weights)
    dummy = wrc.Graph("unused")
    dummy.output(dummy.relu(dummy.data("z", (1,))))
    with wrc.BuildSession():
        mb = wrc.bundle_build_model([g, dummy])
    return wrc.load_bundle(mb), g.name


def ort_session(m: models.Model, threads: int, as_inputs: bool, weights: dict[str, np.ndarray] | None = None,
                proto: bytes | None = None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if proto is None:
        proto = m.onnx(weights or m.weights, as_inputs).SerializeToString()
    return ort.InferenceSession(proto, so, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------------------- sections


def bench_infer(quick: bool) -> None:
    cases = [models.mlp(1), models.mlp(32), models.cnn(1), models.cnn(8), models.transformer(),
             models.encoder_ln_gelu()]
    rounds, calls = (3, 5) if quick else (7, 20)
    for m in cases:
        mb = build_bundle(m)
        b = wrc.load_bundle(mb)
        b.init()
        b_noreuse = wrc.load_bundle(mb, "numpy{reuse-buffers=false}")  # reuse's measured effect
        b_noreuse.init()
        fb, fname = frozen_bundle(m)
        ref = ort_session(m, 1, False).run(None, m.inputs)[0]
        agree(m.name, ref, {"wrc": b.infer(m.inputs)[0], "wrc frozen": fb.run(fname, m.inputs)[0]})
        feeds = {**m.inputs, **m.weights}
        for threads in (1, 2):
            s_init = ort_session(m, threads, False)
            s_in = ort_session(m, threads, True)
            extra = {"wrc, no buffer reuse": lambda b=b_noreuse, m=m: b.infer(m.inputs)} if threads == 1 else {}
            with threadpool_limits(threads):
                res = interleaved({
                    **extra,
                    "wrc": lambda b=b, m=m: b.infer(m.inputs),
                    "wrc frozen": lambda fb=fb, m=m, fname=fname: fb.run(fname, m.inputs),
                    "ort": lambda s=s_init, m=m: s.run(None, m.inputs),
                    "ort weights-as-inputs": lambda s=s_in, f=feeds: s.run(None, f),
                }, rounds, calls)
                for what, (med, mn) in res.items():
                    record("infer", m.name, what, med, mn, threads=threads, note=m.note)


def bench_hoist(quick: bool) -> None:
    """A model with weight-only work: hoisted, not hoisted, frozen (folded), onnxruntime."""
    rounds, calls = (3, 5) if quick else (7, 20)
    for m in (models.mlp_bn(1), models.mlp_bn(32)):
        b = wrc.load_bundle(build_bundle(m))
        b.init()
        b_plain = wrc.load_bundle(build_bundle(m, hoist=False))
        b_plain.init()
        fb, fname = frozen_bundle(m)
        s_init, s_in = ort_session(m, 1, False), ort_session(m, 1, True)
        ref = s_init.run(None, m.inputs)[0]
        agree(m.name, ref, {"wrc": b.infer(m.inputs)[0], "wrc, no hoisting": b_plain.infer(m.inputs)[0],
                            "wrc frozen": fb.run(fname, m.inputs)[0]})
        feeds = {**m.inputs, **m.weights}
        with threadpool_limits(1):
            res = interleaved({
                "wrc": lambda b=b, m=m: b.infer(m.inputs),
                "wrc, no hoisting": lambda b=b_plain, m=m: b.infer(m.inputs),
                "wrc frozen": lambda fb=fb, m=m, fname=fname: fb.run(fname, m.inputs),
                "ort": lambda s=s_init, m=m: s.run(None, m.inputs),
                "ort weights-as-inputs": lambda s=s_in, f=feeds: s.run(None, f),
            }, rounds, calls)
        for what, (med, mn) in res.items():
            record("hoist", m.name, what, med, mn, note=m.note)
        if m.name.endswith("b1"):  # what an update costs with the derived values recomputed
            w2 = {k: v.copy() for k, v in m.weights.items()}
            total = sum(v.nbytes for v in w2.values())
            dst = {k: np.empty_like(v) for k, v in w2.items()}
            proto = m.onnx(w2, False).SerializeToString()
            with threadpool_limits(1):
                res = interleaved({
                    "update all (+ recompute derived)": lambda b=b, w=w2: b.update(w),
                    "update all, no hoisting": lambda b=b_plain, w=w2: b.update(w),
                    "np.copyto all": lambda w=w2, d=dst: [np.copyto(d[k], v) for k, v in w.items()],
                    "new ort session": lambda m=m, p=proto: ort_session(m, 1, False, proto=p),
                }, rounds, calls)
            for what, (med, mn) in res.items():
                record("hoist", m.name, what, med, mn, note=f"{total / 1e6:.2f} MB")


REAL_MODELS = Path(__file__).resolve().parent.parent / "tests" / "models"


def _weights_as_inputs(proto: Any) -> bytes:
    """The ONNX model with every float initializer turned into a graph input."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(proto)
    keep = []
    for init in m.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            m.graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        else:
            keep.append(init)
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    return m.SerializeToString()


def bench_onnx(quick: bool) -> None:
    """The checked-in PyTorch exports (tests/models): wrc (all weights refreshable, with and
    without hoisting) vs onnxruntime, one thread."""
    import onnx
    from onnx import numpy_helper

    from wrc.onnx import import_onnx, weight_names

    rng = np.random.default_rng(0)
    cases = {"resnet": {"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)},
             "bert": {"input_ids": rng.integers(0, 64, (1, 8))}}
    rounds, calls = (3, 5) if quick else (7, 20)
    for name, feeds in cases.items():
        path = REAL_MODELS / f"{name}.onnx"
        if not path.exists():
            continue
        proto = onnx.load(str(path))
        graph = import_onnx(proto)
        bundles = {}
        for label, hoist in (("wrc", "true"), ("wrc, no hoisting", "false")):
            with wrc.BuildSession({"wrc.hoist_weight_only": hoist}):
                parts = wrc.convert_to_weight_refreshable_graphs(graph, weight_names(graph))
                bundles[label] = wrc.load_bundle(wrc.bundle_build_model(
                    [parts.infer_graph, parts.var_update_graph, parts.var_init_graph]))
            bundles[label].init()
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        s_init = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        s_in = ort.InferenceSession(_weights_as_inputs(proto), so, providers=["CPUExecutionProvider"])
        floats = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer
                  if i.data_type == onnx.TensorProto.FLOAT}
        ref = s_init.run(None, feeds)[0]
        agree(name, ref, {label: b.infer(feeds)[0] for label, b in bundles.items()})
        with threadpool_limits(1):
            res = interleaved({
                **{label: lambda b=b, f=feeds: b.infer(f) for label, b in bundles.items()},
                "ort": lambda s=s_init, f=feeds: s.run(None, f),
                "ort weights-as-inputs": lambda s=s_in, f={**feeds, **floats}: s.run(None, f),
            }, rounds, calls)
        for what, (med, mn) in res.items():
            record("onnx", f"{name}.onnx", what, med, mn, note="tests/models, PyTorch export")


def bench_gather(quick: bool) -> None:
    """A BERT-base-sized embedding lookup (vocabulary 30522 × 256, 128 tokens): wrc's `np.take`
    path vs the one-hot reduction it replaced (the same IR without its `library_call`) vs ort."""
    from onnx import TensorProto, helper, numpy_helper
    from xdsl.dialects.linalg.ops import GenericOp

    from wrc import pipeline
    from wrc.backends import get_backend

    vocab, dim, tokens = 30522, 256, 128
    rng = np.random.default_rng(0)
    table = rng.standard_normal((vocab, dim)).astype(np.float32)
    ids = rng.integers(0, vocab, (1, tokens))
    g = wrc.Graph("embedding")
    g.output(g.gather(g.const("table", table), g.data("ids", (1, tokens), "int64"), 0))
    module = pipeline.apply(g.copy().module, pipeline.BUILD)
    take = get_backend("numpy").compile(module)
    for op in module.walk():
        if isinstance(op, GenericOp) and op.library_call is not None:
            op.properties.pop("library_call")
    one_hot = get_backend("numpy").compile(module)
    proto = helper.make_model(helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)], "embedding",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, tokens])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(table, "table")]), opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"ids": ids})[0]
    agree("embedding", ref, {"wrc": take.run(g.name, {"table": table}, [ids])[0]})
    with threadpool_limits(1):
        res = interleaved({"wrc (np.take)": lambda: take.run(g.name, {"table": table}, [ids]),
                           "ort": lambda: sess.run(None, {"ids": ids})}, 3 if quick else 7, 5 if quick else 20)
        res |= interleaved({"one-hot reduction (before)": lambda: one_hot.run(g.name, {"table": table}, [ids])}, 1, 1)
    for what, (med, mn) in res.items():
        record("gather", "embedding 30522x256", what, med, mn, note="128 tokens")


def _kernel_cases() -> list[tuple[str, Callable[..., Any], Any, Callable[..., np.ndarray], tuple[int, ...], dict[str, np.ndarray]]]:
    """(name, wrc builder, ONNX node, hand-written NumPy, input shape, weights): layers of
    SqueezeNet, ResNet-18, Inception and MobileNet/EfficientNet at batch 1."""
    from numpy.lib.stride_tricks import sliding_window_view
    from onnx import helper

    rng = np.random.default_rng(0)

    def padded(x: np.ndarray, p: int, value: float) -> np.ndarray:
        return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=value) if p else x

    def shifted(x: np.ndarray, k: int, s: int, oh: int, ow: int):  # (i, j, view) per window point
        return [(i, j, x[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s]) for i in range(k) for j in range(k)]

    def max_pool(k: int, s: int, p: int) -> Callable[[np.ndarray], np.ndarray]:
        def f(x: np.ndarray) -> np.ndarray:
            xp = padded(x, p, -np.inf)
            oh, ow = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
            views = shifted(xp, k, s, oh, ow)
            out = np.maximum(views[0][2], views[1][2])
            for _, _, v in views[2:]:
                np.maximum(out, v, out=out)
            return out
        return f

    def avg_pool(x: np.ndarray) -> np.ndarray:  # 3x3, stride 1, pad 1, count_include_pad=0
        xp = padded(x, 1, 0)
        views = shifted(xp, 3, 1, x.shape[2], x.shape[3])
        out = views[0][2] + views[1][2]
        for _, _, v in views[2:]:
            np.add(out, v, out=out)
        counts = sliding_window_view(padded(np.ones((1, 1, *x.shape[2:]), np.float32), 1, 0), (3, 3), axis=(2, 3)).sum(axis=(4, 5))
        return np.divide(out, counts, out=out)

    def depthwise(w: np.ndarray, s: int, p: int) -> Callable[[np.ndarray], np.ndarray]:
        k = w.shape[2]

        def f(x: np.ndarray) -> np.ndarray:
            xp = padded(x, p, 0)
            oh, ow = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
            views = shifted(xp, k, s, oh, ow)
            out = views[0][2] * w[None, :, 0, 0, 0, None, None]
            tmp = np.empty_like(out)
            for i, j, v in views[1:]:
                np.multiply(v, w[None, :, 0, i, j, None, None], out=tmp)
                np.add(out, tmp, out=out)
            return out
        return f

    def conv_gemm(w: np.ndarray, p: int) -> Callable[[np.ndarray], np.ndarray]:  # im2col + one GEMM
        f_, c, k, _ = w.shape
        wm = w.reshape(f_, c * k * k)

        def f(x: np.ndarray) -> np.ndarray:
            cols = sliding_window_view(padded(x, p, 0), (k, k), axis=(2, 3))[0]  # C, OH, OW, K, K
            oh, ow = cols.shape[1:3]
            return (wm @ np.ascontiguousarray(cols.transpose(0, 3, 4, 1, 2)).reshape(c * k * k, oh * ow)).reshape(1, f_, oh, ow)
        return f

    dw3 = rng.standard_normal((144, 1, 3, 3)).astype(np.float32)
    dw5 = rng.standard_normal((240, 1, 5, 5)).astype(np.float32)
    c3 = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)

    def conv(name: str, w: np.ndarray, s: int, p: int, groups: int):
        return (lambda g, x: g.conv2d(x, g.const(name, w), (s, s), (p,) * 4, groups=groups),
                helper.make_node("Conv", ["x", name], ["y"], strides=[s, s], pads=[p] * 4, group=groups))

    return [
        ("MaxPool 3x3/2 96x109x109 (SqueezeNet)", lambda g, x: g.max_pool2d(x, (3, 3), (2, 2)),
         helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2]),
         max_pool(3, 2, 0), (1, 96, 109, 109), {}),
        ("MaxPool 3x3/2 pad 1 64x112x112 (ResNet)", lambda g, x: g.max_pool2d(x, (3, 3), (2, 2), (1, 1, 1, 1)),
         helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
         max_pool(3, 2, 1), (1, 64, 112, 112), {}),
        ("AvgPool 3x3/1 pad 1 192x28x28 (Inception)", lambda g, x: g.avg_pool2d(x, (3, 3), (1, 1), (1, 1, 1, 1)),
         helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]),
         avg_pool, (1, 192, 28, 28), {}),
        ("depthwise 3x3 144x56x56 (MobileNetV2)", *conv("dw3", dw3, 1, 1, 144), depthwise(dw3, 1, 1),
         (1, 144, 56, 56), {"dw3": dw3}),
        ("depthwise 5x5/2 240x28x28 (EfficientNet)", *conv("dw5", dw5, 2, 2, 240), depthwise(dw5, 2, 2),
         (1, 240, 28, 28), {"dw5": dw5}),
        ("conv 3x3 64->64 56x56 (ResNet-18)", *conv("c3", c3, 1, 1, 1), conv_gemm(c3, 1),
         (1, 64, 56, 56), {"c3": c3}),
    ]


def bench_kernels(quick: bool) -> None:
    """Pools and convolutions of real CNNs, one op each: wrc (window kernels), wrc with the
    kernels they replaced (`numpy{window-kernels=false}`: strided `.reduce`, im2col GEMM),
    hand-written NumPy, onnxruntime; one thread."""
    from onnx import TensorProto, helper, numpy_helper

    from wrc import pipeline
    from wrc.backends import get_backend

    rng = np.random.default_rng(1)
    for name, build, node, by_hand, shape, weights in _kernel_cases():
        g = wrc.Graph("op")
        g.output(build(g, g.data("x", shape)))
        module = pipeline.apply(g.copy().module, pipeline.BUILD)
        new, old = (get_backend(b).compile(module) for b in ("numpy", "numpy{window-kernels=false}"))
        proto = helper.make_model(helper.make_graph(
            [node], "op", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()]),
            opset_imports=[helper.make_opsetid("", 17)])
        proto.ir_version = 8
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        x = rng.standard_normal(shape).astype(np.float32)
        fns = {"wrc": functools.partial(new.run, g.name, dict(g.weights), [x]),
               "wrc, kernels before": functools.partial(old.run, g.name, dict(g.weights), [x]),
               "hand-written numpy": functools.partial(by_hand, x),
               "ort": functools.partial(sess.run, None, {"x": x})}
        ref = sess.run(None, {"x": x})[0]
        agree(name, ref, {what: np.asarray(fn()[0] if what.startswith("wrc") else fn()) for what, fn in fns.items()
                          if what != "ort"})
        with threadpool_limits(1):
            res = interleaved(fns, 3 if quick else 7, 3 if quick else 10)
        for what, (med, mn) in res.items():
            record("kernels", name, what, med, mn)
def bench_resample(quick: bool) -> None:
    """Ops composed of constant-index gathers (issue 11, wrc/onnx.py) on YOLO-neck-sized tensors:
    Resize nearest/linear ×2 of 1x128x40x40, Pad reflect of 1x64x80x80, CumSum of 1x128x768,
    each vs onnxruntime and hand-written NumPy (where NumPy has it)."""
    from onnx import TensorProto, helper, numpy_helper

    from wrc.onnx import import_onnx, weight_names

    rng = np.random.default_rng(0)

    def measure(name: str, shape: list[int], op: str, consts: dict[str, np.ndarray], operands: list[str],
                by_hand: Callable[[np.ndarray], object] | None, **attrs: Any) -> None:
        w = rng.standard_normal(shape[-1]).astype(np.float32)
        x = rng.standard_normal(shape).astype(np.float32)
        proto = helper.make_model(helper.make_graph(
            [helper.make_node("Add", ["x", "w"], ["t"]), helper.make_node(op, ["t", *operands], ["y"], **attrs)], op,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(v, k) for k, v in {"w": w, **consts}.items()]),
            opset_imports=[helper.make_opsetid("", 19)])
        proto.ir_version = 9
        graph = import_onnx(proto)
        bundle = wrc.load_bundle(bundle_bytes(wrc.compile_graph(graph, weight_names(graph))))
        bundle.init()
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        agree(name, sess.run(None, {"x": x})[0], {"wrc": bundle.infer({"x": x})[0]})
        fns = {"wrc": lambda: bundle.infer({"x": x}), "ort": lambda: sess.run(None, {"x": x})}
        if by_hand is not None:
            fns["NumPy by hand"] = lambda: by_hand(x + w)
        with threadpool_limits(1):
            res = interleaved(fns, 3 if quick else 7, 5 if quick else 20)
        for what, (med, mn) in res.items():
            record("resample", name, what, med, mn, note="x".join(map(str, shape)))

    scales = {"s": np.array([1, 1, 2, 2], np.float32)}
    measure("Resize nearest x2", [1, 128, 40, 40], "Resize", scales, ["", "s"],
            lambda t: np.repeat(np.repeat(t, 2, 2), 2, 3), mode="nearest")
    measure("Resize linear x2", [1, 128, 40, 40], "Resize", scales, ["", "s"], None, mode="linear")
    measure("Pad reflect 3", [1, 64, 80, 80], "Pad", {"p": np.array([0, 0, 3, 3, 0, 0, 3, 3], np.int64)}, ["p"],
            lambda t: np.pad(t, ((0, 0), (0, 0), (3, 3), (3, 3)), mode="reflect"), mode="reflect")
    measure("CumSum axis 1", [1, 128, 768], "CumSum", {"a": np.array(1, np.int64)}, ["a"], lambda t: np.cumsum(t, 1))


def bench_interp(quick: bool) -> None:
    m = models.small_mlp()
    mb = build_bundle(m)
    bi, bn = wrc.load_bundle(mb, backend="interp"), wrc.load_bundle(mb)
    bi.init()
    bn.init()
    np.testing.assert_allclose(bi.infer(m.inputs)[0], bn.infer(m.inputs)[0], rtol=1e-5, atol=1e-5)
    res = interleaved({"interp": lambda: bi.infer(m.inputs), "numpy": lambda: bn.infer(m.inputs)},
                      2 if quick else 3, 1)
    for what, (med, mn) in res.items():
        record("interp", m.name, what, med, mn)


def bench_update(quick: bool) -> None:
    cases = [models.mlp(1), models.cnn(1), models.transformer(), models.wide_chain()]
    rounds, calls = (3, 5) if quick else (7, 20)
    for m in cases:
        mb = build_bundle(m)
        b = wrc.load_bundle(mb)
        b.init()
        rng = np.random.default_rng(1)
        new = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in m.weights.items()}
        big = max(m.weights, key=lambda k: m.weights[k].nbytes)
        dst = {k: np.empty_like(v) for k, v in new.items()}

        def copy_all(new: dict[str, np.ndarray] = new, dst: dict[str, np.ndarray] = dst) -> None:
            for k, v in new.items():
                np.copyto(dst[k], v)

        one = {big: new[big]}
        fns: dict[str, Callable[[], object]] = {
            "update all": lambda b=b, new=new: b.update(new),
            "np.copyto all": copy_all,
            f"update 1 ({big})": lambda b=b, one=one: b.update(one),
            f"np.copyto 1 ({big})": lambda d=dst[big], v=new[big]: np.copyto(d, v),
        }
        if m.onnx_ok:
            proto = m.onnx(new, False).SerializeToString()
            fns["new ort session"] = lambda m=m, p=proto: ort_session(m, 1, False, proto=p)
        with threadpool_limits(1):
            res = interleaved(fns, rounds, calls)
        for what, (med, mn) in res.items():
            record("update", m.name, what, med, mn, weight_bytes=m.weight_bytes)
        # Rebuilding from the graph: convert + lower + load + init (seconds; a few rounds).
        res = interleaved({"rebuild bundle": lambda m=m: wrc.load_bundle(build_bundle(m)).init()},
                          1 if quick else 3, 1)
        record("update", m.name, "rebuild bundle", *res["rebuild bundle"], weight_bytes=m.weight_bytes)
        # A->B->A gives back A's results bit for bit.
        b.update(m.weights)
        ref = b.infer(m.inputs)[0]
        b.update(new)
        b.update(m.weights)
        if not np.array_equal(ref, b.infer(m.inputs)[0]):
            raise SystemExit(f"{m.name}: update A, B, A is not bit-identical to A")


def bench_compile(quick: bool) -> None:
    """Scaling: time(2000)/time(500) ≈ 4 when every stage is linear (docs/performance.md).

    Each size is compiled `reps` times (fresh graph each time); the median and the minimum
    are reported: one run on a shared 2-core machine varies by up to 1.5×."""
    reps = 1 if quick else 3
    for n in (100, 500) if quick else (100, 500, 1000, 2000):
        times: dict[str, list[float]] = {}
        for _ in range(reps):
            g = models.chain(n)
            names = list(g.constants)
            ops = sum(1 for op in g.func.walk() if op.name.startswith("ge.") and op.name not in ("ge.const", "ge.data"))
            t0 = time.perf_counter()
            with wrc.BuildSession():
                gs = wrc.convert_to_weight_refreshable_graphs(g, names)
                t1 = time.perf_counter()
                mb = wrc.bundle_build_model([gs.infer_graph, gs.var_init_graph, gs.var_update_graph])
            t2 = time.perf_counter()
            wrc.load_bundle(mb)
            t3 = time.perf_counter()
            data = bundle_bytes(mb)
            t4 = time.perf_counter()
            wrc.load_bundle(data)
            t5 = time.perf_counter()
            for what, sec in (("convert", t1 - t0), ("lower (bundle_build_model)", t2 - t1),
                              ("load + JIT", t3 - t2), ("total", t3 - t0),
                              ("load from bytes (parse + verify + JIT)", t5 - t4)):
                times.setdefault(what, []).append(1e3 * sec)
        for what, ts in times.items():
            record("compile", f"chain {ops} ops", what, float(np.median(ts)), min(ts), ops=ops, reps=reps)


def bench_bundle(quick: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for m in (models.mlp(1), models.cnn(1), models.transformer(), models.wide_chain()):
            for stripped in (False, True):
                mb = build_bundle(m, init=not stripped)
                path = Path(tmp) / "b.wrcb"
                kind = "stripped" if stripped else "normal"

                def save(mb: wrc.ModelBuffer = mb, path: Path = path) -> None:
                    with wrc.BuildSession():
                        wrc.bundle_save_model(path, mb)

                save()
                res = interleaved({"save": save, "load": lambda path=path: wrc.load_bundle(path)},
                                  2 if quick else 5, 1)
                for what, (med, mn) in res.items():
                    record("bundle", m.name, f"{what} ({kind})", med, mn)
                size = path.stat().st_size
                record("bundle", m.name, f"file size ({kind})", size / 1e6, None, unit="MB",
                       ratio_to_weights=size / m.weight_bytes)


_RSS_CHILD = child.PRELUDE + """
import sys
import numpy, wrc
from wrc.backends import numpy_jit
base = status("VmRSS")
reset_peak()
b = wrc.load_bundle(sys.argv[1])
loaded = status("VmHWM")
if sys.argv[2] == "init":
    b.init()
print(base, loaded, status("VmHWM"))
"""


def bench_rss(quick: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for m in (models.mlp(1), models.wide_chain()):
            for stripped in (False, True):
                path = Path(tmp) / "b.wrcb"
                mb = build_bundle(m, init=not stripped)
                with wrc.BuildSession():
                    wrc.bundle_save_model(path, mb)
                out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(path), "load" if stripped else "init"],
                                     check=True, capture_output=True, text=True).stdout.split()
                base, loaded, after = map(int, out)
                kind = "stripped" if stripped else "normal"
                record("rss", m.name, f"peak RSS growth at load ({kind})", (loaded - base) / 1e6, None,
                       unit="MB", weight_mb=m.weight_bytes / 1e6, ratio_to_weights=(loaded - base) / m.weight_bytes)
                if not stripped:
                    record("rss", m.name, "peak RSS growth at load + init", (after - base) / 1e6, None,
                           unit="MB", ratio_to_weights=(after - base) / m.weight_bytes)


LOAD_ZOO = ("resnet18-torchscript", "mobilenet_v3-torchscript", "efficientnet-torchscript",
            "squeezenet-torchscript", "convnext-torchscript", "vit_timm-torchscript",
            "gpt2-sdpa_mask-torchscript", "whisper_encoder-eager-torchscript", "t5_encoder-eager_nomask-torchscript")
"""Exports of tests/zoo whose loads the `load` section also times (cold and from the cache)."""


def _with_cache(where: str, fn: Callable[[], object]) -> Callable[[], object]:
    """`fn` run with WRC_CACHE_DIR=`where` (a folder, or "off")."""
    def run() -> object:
        old, os.environ["WRC_CACHE_DIR"] = os.environ.get("WRC_CACHE_DIR"), where
        try:
            return fn()
        finally:
            if old is None:
                del os.environ["WRC_CACHE_DIR"]
            else:
                os.environ["WRC_CACHE_DIR"] = old
    return run


def bench_load(quick: bool) -> None:
    """`load_bundle(path)` from the load cache (warm) and without it (cold: read, decode or
    parse the IR, verify, JIT) by bundle format version, against a new onnxruntime session of
    the same model (one thread) and against reading the file's weights; then a chain of 2,000
    ops (500 with --quick) end to end, each step once."""
    from wrc import bundle_format as bf
    from wrc import ir_binary
    from wrc.context import make_context
    from wrc.onnx import import_onnx, weight_names

    def onnx_case(path: Path, v1: bool) -> tuple[str, Any, bytes, bool]:
        graph = import_onnx(path)
        with wrc.BuildSession():
            gs = wrc.convert_to_weight_refreshable_graphs(graph, weight_names(graph))
            mb = wrc.bundle_build_model([gs.infer_graph, gs.var_update_graph, gs.var_init_graph])
        return path.name.removesuffix(".onnx").removesuffix("-torchscript"), mb, path.read_bytes(), v1

    cases = [onnx_case(REAL_MODELS / f"{name}.onnx", True) for name in ("resnet", "bert")]
    for m in (models.transformer(), models.cnn(1)):
        cases.append((m.name, build_bundle(m), m.onnx(m.weights, False).SerializeToString(), True))
    zoo = REAL_MODELS.parent / "zoo"
    for name in LOAD_ZOO[:3] if quick else LOAD_ZOO:
        try:
            cases.append(onnx_case(zoo / f"{name}.onnx", False))
        except wrc.WrcError as e:  # an export wrc does not import (yet): not a load case
            print(f"# load: {name} skipped: {e}"[:200])
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    rounds = 2 if quick else 5
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        cache = str(Path(tmp) / "cache")  # this run's load cache: never the user's
        paths = {v: Path(tmp) / f"v{v}.wrcb" for v in (1, 2)}
        warm_ratios = []
        for case, mb, proto, v1 in cases:
            for v, path in paths.items():
                path.write_bytes(bf.bundle_bytes(mb, v))
            module, raw_ir, text_ir = mb.module, ir_binary.encode_module(mb.module), str(mb.module)

            def verify(module: Any = module) -> None:
                with ir_binary.gc_paused():
                    module.verify()

            def read_weights() -> object:
                with bf.open_bundle(paths[2]) as c:
                    return c.read_weights()

            fns: dict[str, Callable[[], object]] = {
                "load_bundle, format 2, from the cache": _with_cache(cache, lambda: wrc.load_bundle(paths[2])),
                "load_bundle, format 2, no cache": _with_cache("off", lambda: wrc.load_bundle(paths[2])),
                "load_bundle, format 1, no cache": _with_cache("off", lambda: wrc.load_bundle(paths[1])),
                "  read_bundle, format 2 (no JIT)": lambda: bf.read_bundle(paths[2]),
                "  read the file's bytes": lambda: paths[2].read_bytes(),
                "  open + read + SHA-256 the weights": read_weights,
                "  decode the IR (format 2)": lambda r=raw_ir: ir_binary.decode_module(
                    r, make_context(), bf.MAX_INLINE_ELEMENTS),
                "  parse the IR text (format 1)": lambda t=text_ir: bf.parse_ir(t),
                "  verify the IR": verify,
                "  Bundle(model): analysis, derive, JIT": lambda m=mb: wrc.load_bundle(m),
                "new ort session": lambda p=proto: ort.InferenceSession(p, so, providers=["CPUExecutionProvider"]),
            }
            if not v1:  # zoo models: the loads against ort and the weights only
                fns = {k: f for k, f in fns.items() if "format 1" not in k and not k.startswith("  ")
                       or k == "  open + read + SHA-256 the weights"}
            res = interleaved(fns, rounds, 1)
            ops = sum(1 for _ in mb.module.walk())
            for what, (med, mn) in res.items():
                record("load", case, what, med, mn, ops=ops, note=f"{ops} level-3 ops")
            ort_ms, weights_ms = res["new ort session"][0], res["  open + read + SHA-256 the weights"][0]
            warm = res["load_bundle, format 2, from the cache"][0]
            warm_ratios.append(warm / ort_ms)
            record("load", case, "from the cache / ort session", warm / ort_ms, None, unit="x")
            record("load", case, "from the cache / reading the weights", warm / weights_ms, None, unit="x")
            for v in (2, 1) if v1 else (2,):
                record("load", case, f"format {v}, no cache / ort session",
                       res[f"load_bundle, format {v}, no cache"][0] / ort_ms, None, unit="x")
        record("load", "all", "median of (from the cache / ort session)", float(np.median(warm_ratios)), None,
               unit="x", note=f"{len(warm_ratios)} models")

        n = 500 if quick else 2000
        g = models.chain(n)
        steps: dict[str, float] = {}
        t0 = time.perf_counter()
        with wrc.BuildSession():
            gs = wrc.convert_to_weight_refreshable_graphs(g, list(g.constants))
            mb = wrc.bundle_build_model([gs.infer_graph, gs.var_init_graph, gs.var_update_graph])
        t1 = time.perf_counter()
        bf.write_bundle(paths[2], mb)
        t2 = time.perf_counter()
        _with_cache(cache, lambda: wrc.load_bundle(paths[2]))()  # cold, fills the cache
        t3 = time.perf_counter()
        steps.update({"compile (convert + bundle_build_model)": t1 - t0, "save, format 2": t2 - t1,
                      "load_bundle, format 2, no cache (+ its store)": t3 - t2,
                      "compile + save + load, format 2": t3 - t0})
        t4 = time.perf_counter()
        _with_cache(cache, lambda: wrc.load_bundle(paths[2]))()
        steps["load_bundle, format 2, from the cache"] = time.perf_counter() - t4
        t4 = time.perf_counter()
        bf.read_bundle(paths[2])
        steps["  read_bundle, format 2 (no JIT)"] = time.perf_counter() - t4
        paths[1].write_bytes(bf.bundle_bytes(mb, 1))
        t5 = time.perf_counter()
        _with_cache("off", lambda: wrc.load_bundle(paths[1]))()
        steps["load_bundle, format 1, no cache"] = time.perf_counter() - t5
        ops = sum(1 for _ in mb.module.walk())
        for what, sec in steps.items():
            record("load", f"chain {n}", what, 1e3 * sec, None, note=f"{ops} level-3 ops, once")


def bench_gelu(quick: bool) -> None:
    """The exact GELU (ViT-B FFN activation, 197 x 3072 float32) and erf alone: wrc vs the
    same chain hand-written with `out=` buffers and wrc's erf vs onnxruntime."""
    import math

    from onnx import TensorProto, helper, numpy_helper

    from wrc.backends.erf import erf

    shape = (197, 3072)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    root_half = np.float32(math.sqrt(0.5))
    g = wrc.Graph("gelu")
    a = g.data("x", shape)
    g.output(g.mul(g.mul(a, g.const("half", np.float32(0.5), inline=True)),
                   g.add(g.erf(g.mul(a, g.const("r", root_half, inline=True))), g.const("one", np.float32(1), inline=True))))
    e = wrc.Graph("erf")
    e.output(e.erf(e.data("x", shape)))
    cube = wrc.Graph("cube")  # x ** 3, as in the tanh GELU: multiplications since the pow lowering
    cube.output(cube.pow(cube.data("x", shape), cube.const("three", np.float32(3), inline=True)))
    with wrc.BuildSession():
        b = wrc.load_bundle(wrc.bundle_build_model([g, e, cube]))

    def session(nodes: list[Any], consts: dict[str, np.ndarray]) -> ort.InferenceSession:
        proto = helper.make_model(helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()]), opset_imports=[helper.make_opsetid("", 17)])
        proto.ir_version = 8
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])

    # as PyTorch exports nn.GELU(): Div, Erf, Add, Mul, Mul (onnxruntime fuses it into one Gelu)
    ort_gelu = session([helper.make_node("Div", ["x", "s"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
                        helper.make_node("Add", ["e", "one"], ["p"]), helper.make_node("Mul", ["x", "p"], ["m"]),
                        helper.make_node("Mul", ["m", "half"], ["y"])],
                       {"s": np.float32(math.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)})
    ort_erf = session([helper.make_node("Erf", ["x"], ["y"])], {})
    buf = np.empty(shape, np.float32)

    def numpy_gelu(t: np.ndarray = buf) -> np.ndarray:
        np.multiply(x, root_half, out=t)
        erf(t, out=t)
        t += 1
        t *= x
        t *= 0.5
        return t

    ref = ort_gelu.run(None, {"x": x})[0]
    agree("gelu", ref, {"wrc": b.run("gelu", {"x": x})[0], "numpy": numpy_gelu().copy()})
    agree("erf", ort_erf.run(None, {"x": x})[0], {"wrc": b.run("erf", {"x": x})[0]})
    rounds, calls = (3, 5) if quick else (7, 20)
    with threadpool_limits(1):
        res = interleaved({"wrc": lambda: b.run("gelu", {"x": x}), "hand-written NumPy (wrc's erf, out=)": numpy_gelu,
                           "ort": lambda: ort_gelu.run(None, {"x": x})}, rounds, calls)
        for what, (med, mn) in res.items():
            record("gelu", "GELU 197x3072", what, med, mn)
        res = interleaved({"wrc": lambda: b.run("erf", {"x": x}), "wrc erf(x, out=)": lambda: erf(x, out=buf),
                           "np.tanh (for scale)": lambda: np.tanh(x, out=buf),
                           "ort": lambda: ort_erf.run(None, {"x": x})}, rounds, calls)
        res |= interleaved({"np.vectorize(math.erf) (before)": lambda: np.vectorize(math.erf, otypes=[np.float32])(x)}, 1, 1)
        for what, (med, mn) in res.items():
            record("gelu", "erf 197x3072", what, med, mn)
        three = np.float32(3)
        ort_pow = session([helper.make_node("Pow", ["x", "three"], ["y"])], {"three": three})
        agree("pow", ort_pow.run(None, {"x": x})[0], {"wrc": b.run("cube", {"x": x})[0]})
        res = interleaved({"wrc": lambda: b.run("cube", {"x": x}),
                           "np.power(x, 3, out=)": lambda: np.power(x, three, out=buf),
                           "x * x * x (out=)": lambda: np.multiply(np.multiply(x, x, out=buf), x, out=buf),
                           "ort": lambda: ort_pow.run(None, {"x": x})}, rounds, calls)
        for what, (med, mn) in res.items():
            record("gelu", "x**3 197x3072", what, med, mn)


_FIRST_CHILD = child.PRELUDE + """
import json, sys, time
import numpy as np
import wrc
path, steady = sys.argv[1], int(sys.argv[2])
out, box = {}, {}
base = status("VmRSS")
reset_peak()
out["load"] = ms(lambda: box.setdefault("b", wrc.load_bundle(path)))
b = box["b"]
out["rss load"] = status("VmHWM") - base
out["init"] = ms(b.init)
out["rss init"] = status("VmHWM") - base
rng = np.random.default_rng(0)
feeds = {n: rng.standard_normal(s).astype(d) if d.kind == "f" else np.zeros(s, d) for n, s, d in b.inputs("var_infer_graph")}
out["first infer"] = ms(lambda: b.infer(feeds))
out["steady infer"] = float(np.median([ms(lambda: b.infer(feeds)) for _ in range(steady)]))
out["rss infer"] = status("VmHWM") - base
def update():  # the current values, as views: the caller holds no copy of the weights
    w = b.weights()
    b.update(w)
out["first update"] = ms(update)
out["rss first update"] = status("VmHWM") - base
times = [ms(update) for _ in range(max(4, steady))]
out["second update"] = times[0]
out["steady update"] = float(np.median(times[1:]))
out["rss updates"] = status("VmHWM") - base
out["weight bytes"] = sum(v.nbytes for v in b.weights().values())
print(json.dumps(out))
"""

_BUILD_CHILD = child.PRELUDE + """
import json, sys
sys.path.insert(0, sys.argv[1])
import models, wrc
base = status("VmRSS")
m = models.vit_stack(int(sys.argv[2]))
g = m.build(m.weights)  # the graph holds its own copy of each weight (Graph.const copies)
with wrc.BuildSession():
    gs = wrc.convert_to_weight_refreshable_graphs(g, list(m.weights))
    wrc.bundle_save_model(sys.argv[3], wrc.bundle_build_model([gs.infer_graph, gs.var_update_graph, gs.var_init_graph]))
print(json.dumps({"rss build": status("VmHWM") - base, "weight bytes": m.weight_bytes}))
"""


def bench_first(quick: bool) -> None:
    """First calls and memory, each model in a fresh process (one BLAS thread)."""
    from wrc.onnx import import_onnx, weight_names

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    layers = 4 if quick else 12
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name in ("resnet", "bert"):
            g = import_onnx(str(REAL_MODELS / f"{name}.onnx"))
            paths[f"{name}.onnx"] = (g, weight_names(g))
        m = models.encoder_ln_gelu()
        paths[m.name] = (m.build(m.weights), list(m.weights))
        for i, (case, (g, names)) in enumerate(list(paths.items())):
            with wrc.BuildSession():
                gs = wrc.convert_to_weight_refreshable_graphs(g, names)
                path = str(Path(tmp) / f"{i}.wrcb")
                wrc.bundle_save_model(path, wrc.bundle_build_model([gs.infer_graph, gs.var_update_graph, gs.var_init_graph]))
            paths[case] = path  # type: ignore[assignment]
        vit = f"ViT-B stack {layers}L"
        paths[vit] = str(Path(tmp) / "vit.wrcb")  # type: ignore[assignment]
        out = subprocess.run([sys.executable, "-c", _BUILD_CHILD, str(Path(__file__).resolve().parent), str(layers),
                              paths[vit]], env=env, check=True, capture_output=True, text=True).stdout
        built = json.loads(out)
        record("first", vit, "peak RSS growth: build + save", built["rss build"] / 1e6, None, unit="MB",
               ratio_to_weights=built["rss build"] / built["weight bytes"])
        for case, path in paths.items():
            out = subprocess.run([sys.executable, "-c", _FIRST_CHILD, str(path), "5" if case == vit else "20"],
                                 env=env, check=True, capture_output=True, text=True).stdout
            r = json.loads(out)
            wb = r.pop("weight bytes")
            for what, v in r.items():
                if what.startswith("rss"):
                    record("first", case, f"peak RSS growth after {what[4:]}", v / 1e6, None, unit="MB",
                           ratio_to_weights=v / wb)
                else:
                    record("first", case, what, v, None, weight_mb=wb / 1e6)


SECTIONS = {"infer": bench_infer, "hoist": bench_hoist, "onnx": bench_onnx, "gather": bench_gather, "kernels": bench_kernels, "interp": bench_interp, "update": bench_update,
            "compile": bench_compile, "bundle": bench_bundle, "rss": bench_rss, "gelu": bench_gelu,
            "first": bench_first, "load": bench_load, "resample": bench_resample}
# Sections in their own modules, one line each:
SECTIONS["steps"] = functools.partial(compile_steps.bench_steps, record=record)
SECTIONS["zoo-tf"] = lambda quick: zoo_tf.bench(quick, record, interleaved)
SECTIONS["fleet"] = functools.partial(fleet_bench.bench_fleet, record=record)
SECTIONS["zoo-infer"] = lambda quick: zoo_infer.bench(quick, record)
SECTIONS["zoo"] = lambda quick: zoo.bench_zoo(quick, record, interleaved)
SECTIONS["adapters"] = lambda quick: adapters_bench.bench(quick, record, interleaved)
SECTIONS["depthwise"] = lambda quick: depthwise.bench(quick, interleaved, record)


def table() -> str:
    lines = [f"{'section':8} {'case':16} {'what':44} {'thr':>3} {'median':>10} {'min':>10}  unit  note"]
    for r in ROWS:
        mn = "" if r["min"] is None else f"{r['min']:10.3f}"
        note = r.get("note", "")
        if "ratio_to_weights" in r:
            note = f"{r['ratio_to_weights']:.2f}x weight bytes"
        lines.append(f"{r['section']:8} {r['case']:16} {r['what']:44} {r.get('threads', 1):>3} "
                     f"{r['median']:10.3f} {mn:>10}  {r['unit']:4}  {note}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer rounds, no 1000- and 2000-op compile")
    ap.add_argument("--json", type=Path, help="write every result (with BLAS info) here")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    args = ap.parse_args()
    for name in args.only.split(","):
        if name not in SECTIONS:
            ap.error(f"unknown section {name!r} (sections: {', '.join(SECTIONS)})")
        SECTIONS[name](args.quick)
    machine = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
               "numpy": np.__version__, "onnxruntime": ort.__version__, "blas": threadpool_info()}
    print(f"# {machine['platform']}, {machine['cpus']} cpus, numpy {np.__version__}, onnxruntime {ort.__version__}")
    for i in blas():
        print(f"# BLAS: {i['internal_api']} {i['version']} {i['architecture']} (max threads {i['num_threads']})")
    print(table())
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "command": sys.argv, "results": ROWS}, indent=1))


if __name__ == "__main__":
    main()
