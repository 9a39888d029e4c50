"""wrc's benchmarks: one command, one table, one JSON file.

    .venv/bin/python bench/run.py [--quick] [--json bench.json] [--only infer,update,...]

Sections (docs/performance.md explains each and records a run):
  infer    wrc numpy (refreshable) vs wrc with weights frozen as constants vs onnxruntime
           (weights as initializers, and as graph inputs), 1 and 2 threads
  hoist    a model with weight-only work (Gemm transB=1 + BatchNorm): wrc with and without
           ge-hoist-weight-only vs frozen vs onnxruntime; update cost with derived values
  onnx     the ResNet- and BERT-style PyTorch exports of tests/models vs onnxruntime
  gather   an embedding lookup at BERT-base vocabulary size: np.take vs the one-hot reduction
  resample Resize, Pad reflect and CumSum (ONNX ops composed of constant-index gathers, slices)
  interp   xDSL interpreter vs the NumPy JIT on a small MLP
  update   full / partial Bundle.update vs np.copyto of the same bytes vs rebuilding the
           bundle vs a new onnxruntime session with the new weights
  compile  convert + lower + JIT (and load from bytes) for graphs of 100, 500, 1000, 2000 ops,
           3 times each (median, min)
  bundle   save / load time, file size vs raw weight bytes (normal and weight-stripped)
  rss      peak RSS growth when loading a bundle, in a fresh subprocess each

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
import models  # noqa: E402

import wrc  # noqa: E402
from wrc.backends import numpy_jit  # noqa: E402

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
        if err > 1e-4:
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
    cases = [models.mlp(1), models.mlp(32), models.cnn(1), models.cnn(8), models.transformer()]
    rounds, calls = (3, 5) if quick else (7, 20)
    for m in cases:
        mb = build_bundle(m)
        b = wrc.load_bundle(mb)
        b.init()
        numpy_jit.REUSE_BUFFERS = False  # the JIT before buffer reuse, for its measured effect
        b_noreuse = wrc.load_bundle(mb)
        numpy_jit.REUSE_BUFFERS = True
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


def bench_resample(quick: bool) -> None:
    """Ops composed of constant-index gathers (issue 11, wrc/onnx.py) on YOLO-neck-sized tensors:
    Resize nearest/linear ×2 of 1x128x40x40, Pad reflect of 1x64x80x80, CumSum of 1x128x768,
    each vs onnxruntime and hand-written NumPy (where NumPy has it)."""
    from onnx import TensorProto, helper, numpy_helper

    from wrc.onnx import compile_graph, import_onnx, weight_names

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
        bundle = wrc.load_bundle(compile_graph(graph, weight_names(graph)).to_bytes())
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
            data = mb.to_bytes()
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


_RSS_CHILD = """
import sys
import numpy, wrc
from wrc.backends import numpy_jit
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
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


SECTIONS = {"infer": bench_infer, "hoist": bench_hoist, "onnx": bench_onnx, "gather": bench_gather,
            "resample": bench_resample, "interp": bench_interp, "update": bench_update,
            "compile": bench_compile, "bundle": bench_bundle, "rss": bench_rss}


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
