"""Section `zoo-tf`: the transformer models of the zoo (tests/zoo: BERT, DistilBERT, GPT-2,
Llama, T5 encoder, Whisper encoder, two ViTs; both exporters, with and without masks) and
the pre-LN encoder block of bench/models.py, in wrc vs onnxruntime, one thread.

* every zoo transformer: wrc's `infer` (every weight refreshable, as tests/test_zoo.py
  compiles them) vs an onnxruntime session of the same file, and how many NumPy calls the
  generated infer function makes (what bounds wrc on these tiny models: ~1-2 µs each);
* the encoder block (`encoder_ln_gelu`, d=256, seq 128): wrc vs onnxruntime vs the same
  block written by hand in NumPy (same erf), which tells wrc's overhead from NumPy's limit.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import models
import numpy as np
import onnxruntime as ort
from threadpoolctl import threadpool_limits

import wrc
from wrc.backends.erf import erf
from wrc.onnx import import_onnx, weight_names
from wrc.workflow import compile_graph

TESTS = Path(__file__).resolve().parent.parent / "tests"
FAMILIES = ("bert", "distilbert", "gpt2", "llama", "t5_encoder", "whisper_encoder", "vit_timm", "vit_torchvision")
_CALL = re.compile(r"\b(?:np\.[\w.]+|k\d+|_nd)\(|\.(?:reshape|min|max)\(|\bv\d+\[k\d+\]")

Record = Callable[..., None]
Interleaved = Callable[[dict[str, Callable[[], object]], int, int], dict[str, tuple[float, float]]]


def numpy_calls(source: str) -> int:
    """Calls on the common path of a generated function (views by slicing included):
    argument checks and the fallbacks (`else`, `except IndexError`: a gather's out-of-range
    indices) left out."""
    n, skip = 0, None
    for line in source.splitlines()[1:]:
        ind = len(line) - len(line.lstrip())
        if skip is not None and ind > skip:
            continue
        skip = None
        text = line.strip()
        if text in ("else:", "except IndexError:"):
            skip = ind
        elif not text.startswith(("a", "_bad_arg", "if a")):
            n += len(_CALL.findall(text))
    return n


def session(proto: bytes) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    return ort.InferenceSession(proto, so, providers=["CPUExecutionProvider"])


def bench_zoo_models(quick: bool, record: Record, interleaved: Interleaved) -> None:
    sys.path.insert(0, str(TESTS))
    from test_zoo import ZOO_CASES, load_case

    rounds, calls = (3, 20) if quick else (7, 50)
    for case in sorted(c for c in ZOO_CASES if c.split("-")[0] in FAMILIES):
        model, feeds = load_case(case)
        graph = import_onnx(model, {k: v.shape for k, v in feeds.items()})
        b = wrc.load_bundle(compile_graph(graph, weight_names(graph)))
        b.init()
        s = session(model.SerializeToString())
        got, want = b.infer(feeds)[0], s.run(None, feeds)[0]
        err = float(np.abs(got - want).max() / np.abs(want).max())
        if not err <= 1e-4:  # (NaN too)
            raise SystemExit(f"{case}: wrc differs from onnxruntime (relative error {err:.2e})")
        n = numpy_calls(b.source("var_infer_graph"))
        with threadpool_limits(1):
            res = interleaved({"wrc": lambda b=b, f=feeds: b.infer(f),
                               "ort": lambda s=s, f=feeds: s.run(None, f)}, rounds, calls)
        for what, (med, mn) in res.items():
            record("zoo-tf", case, what, med, mn, note=f"{n} NumPy calls" if what == "wrc" else "")


def encoder_by_hand(m: models.Model) -> Callable[[], np.ndarray]:
    """`encoder_ln_gelu` written directly in NumPy: BLAS matmuls, in-place elementwise ops,
    LayerNorm's variance as a row-wise dot product, the same erf as wrc."""
    w, x = m.weights, m.inputs["x"]
    seq, d = x.shape
    heads = 4
    dh = d // heads

    def ln(h: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = h - h.mean(-1, keepdims=True)
        std = np.einsum("ij,ij->i", out, out)[:, None]
        std /= d
        std += np.float32(1e-5)
        np.sqrt(std, out=std)
        out /= std
        out *= g
        out += b
        return out

    def lin(h: np.ndarray, n: str) -> np.ndarray:
        y = h @ w[f"w{n}"]
        y += w[f"b{n}"]
        return y

    def run() -> np.ndarray:
        a = ln(x, w["ln1_g"], w["ln1_b"])
        q = lin(a, "q").reshape(seq, heads, dh).transpose(1, 0, 2)
        k = lin(a, "k").reshape(seq, heads, dh).transpose(1, 2, 0)
        v = lin(a, "v").reshape(seq, heads, dh).transpose(1, 0, 2)
        s = np.matmul(q, k)
        s *= np.float32(1 / np.sqrt(dh))
        np.subtract(s, s.max(-1, keepdims=True), out=s)
        np.exp(s, out=s)
        s /= s.sum(-1, keepdims=True)
        h = lin(np.matmul(s, v).transpose(1, 0, 2).reshape(seq, d), "o")
        h += x
        f = lin(ln(h, w["ln2_g"], w["ln2_b"]), "1")
        e = f * np.float32(1 / np.sqrt(2))
        erf(e, out=e)
        e += 1
        f *= e
        f *= np.float32(0.5)
        y = lin(f, "2")
        y += h
        return y

    return run


def bench_encoder(quick: bool, record: Record, interleaved: Interleaved) -> None:
    m = models.encoder_ln_gelu()
    with wrc.BuildSession():
        gs = wrc.convert_to_weight_refreshable_graphs(m.build(m.weights), list(m.weights))
        b = wrc.load_bundle(wrc.bundle_build_model([gs.infer_graph, gs.var_update_graph, gs.var_init_graph]))
    b.init()
    s = session(m.onnx(m.weights, False).SerializeToString())
    hand = encoder_by_hand(m)
    want = s.run(None, m.inputs)[0]
    for name, got in (("wrc", b.infer(m.inputs)[0]), ("hand", hand())):
        err = float(np.abs(got - want).max() / np.abs(want).max())
        if not err <= 1e-4:  # (NaN too)
            raise SystemExit(f"{m.name}: {name} differs from onnxruntime (relative error {err:.2e})")
    rounds, calls = (3, 10) if quick else (7, 20)
    with threadpool_limits(1):
        res = interleaved({"wrc": lambda: b.infer(m.inputs), "ort": lambda: s.run(None, m.inputs),
                           "hand-written NumPy": hand}, rounds, calls)
    for what, (med, mn) in res.items():
        record("zoo-tf", m.name, what, med, mn, note=m.note)


def bench(quick: bool, record: Record, interleaved: Interleaved) -> None:
    bench_encoder(quick, record, interleaved)
    bench_zoo_models(quick, record, interleaved)
